"""Safe YAML (and JSON) loading that keeps the line and column of every value.

The document is built from libyaml's event stream with an explicit stack, so it
cannot recurse out of control, and it refuses what a spec never needs:
language-specific tags (``!!python/object``), documents whose aliases expand
beyond a node budget (billion-laughs), nesting deeper than ``MAX_DEPTH``,
duplicate keys and multi-document files.

Mappings load as ``YMap`` and sequences as ``YSeq``: a plain ``dict``/``list``
with ``loc`` (where the node starts) and ``locs`` (where each value starts), so
later stages can point at the exact argument that is wrong.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml

from archcheck.errors import Loc, Problem, SpecError

MAX_BYTES = 2 * 1024 * 1024  # ResNet-50 takes 3 kB; a 10,000-layer spec written out in full, under 1 MB
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # after alias expansion

_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
_INT = re.compile(r"^[-+]?[0-9][0-9_]*$")  # 007 is 7, as in YAML 1.1 and 1.2
_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {"null": None, "Null": None, "NULL": None, "~": None, "": None,
            "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
            ".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".Inf": math.inf, "-.Inf": -math.inf,
            ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}


class YMap(dict):
    """A mapping that knows where it and each of its values start."""

    loc: Loc
    locs: dict
    key_locs: dict


class YSeq(list):
    """A sequence that knows where it and each of its items start."""

    loc: Loc
    locs: list


def loc_of(container, key, default: Loc) -> Loc:
    """Location of ``container[key]`` if known, else ``default``."""
    locs = getattr(container, "locs", None)
    if locs is None:
        return default
    try:
        return locs[key]
    except (KeyError, IndexError, TypeError):
        return default


def key_loc_of(container, key, default: Loc) -> Loc:
    """Location of the key ``key`` in a mapping if known, else ``default``."""
    try:
        return container.key_locs[key]
    except (AttributeError, KeyError, TypeError):
        return default


def _resolve_plain(text: str):
    if text in _SPECIAL:
        return _SPECIAL[text]
    if _INT.match(text) or _HEX.match(text):
        if len(text) > 100:  # no size is this long; Python also refuses to convert over 4,300 digits
            return -math.inf if text.startswith("-") else math.inf
        return int(text.replace("_", ""), 16 if "x" in text else 10)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text.replace("_", ""))
    return text


def _size(value) -> int:
    """Nodes in ``value``, counting shared (aliased) parts every time they appear."""
    return getattr(value, "_size", 1)


def load_text(text: str, file: str = "<string>"):
    """Parse YAML/JSON text into YMap/YSeq/scalars; raise SpecError on bad input."""

    def fail(message: str, line: int, col: int, fix: str | None = None):
        raise SpecError([Problem("invalid-yaml", message, Loc(file, line, col), None, fix)])

    if len(text) > MAX_BYTES:
        fail(_too_big(len(text)), 1, 1, _TOO_BIG_FIX)

    anchors: dict[str, object] = {}
    stack: list[list] = []  # frames: [container, pending_key, pending_key_loc, anchor]
    root = _NOTHING = object()
    documents = 0
    nodes = 0

    def here(mark) -> Loc:
        return Loc(file, mark.line + 1, mark.column + 1)

    def attach(value, loc: Loc, size: int, count: int) -> None:
        """Put ``value`` (``size`` nodes once expanded) into the open container."""
        nonlocal root, nodes
        nodes += count
        if nodes > MAX_NODES:
            fail(f"the document expands to more than {MAX_NODES:,} values (aliases included)", loc.line, loc.col,
                 "remove the alias chain; archcheck refuses documents that grow when aliases expand")
        if not stack:
            root = value
            return
        frame = stack[-1]
        container = frame[0]
        container._size += size
        if isinstance(container, YSeq):
            container.append(value)
            container.locs.append(loc)
        elif frame[1] is _NOTHING:
            if isinstance(value, (YMap, YSeq)):
                fail("a mapping key must be a plain value, not a list or mapping", loc.line, loc.col)
            if value in container and value not in container.merged:
                first = container.key_locs[value]
                fail(f"duplicate key '{value}' (first at line {first.line}, column {first.col})", loc.line, loc.col,
                     "remove one of the two entries")
            frame[1], frame[2] = value, loc
        elif frame[1] == "<<":  # a merge key: `<<: *defaults` copies the keys the mapping does not set itself
            for source in value if isinstance(value, YSeq) else [value]:
                if not isinstance(source, YMap):
                    fail("`<<` merges mappings into this one, received something else", loc.line, loc.col,
                         "write `<<: *name` where `&name` marks a mapping, or `<<: [*a, *b]`")
                for k, v in source.items():
                    if k not in container:
                        container[k], container.locs[k], container.key_locs[k] = v, source.locs[k], source.key_locs[k]
                        container.merged.add(k)
            frame[1] = _NOTHING
        else:
            key = frame[1]
            container[key] = value
            container.locs[key] = loc
            container.key_locs[key] = frame[2]
            container.merged.discard(key)  # a key written out overrides a merged one
            frame[1] = _NOTHING

    def check_tag(event) -> None:
        tag = getattr(event, "tag", None)
        if tag and tag not in _STANDARD_TAGS and tag != "!":
            loc = here(event.start_mark)
            shown = _shown(tag)
            fail(f"the tag '{shown}' is not allowed: a spec holds only plain mappings, lists, numbers and strings",
                 loc.line, loc.col, f"remove '{shown}'; archcheck never constructs objects from a spec")

    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                check_tag(event)
                loc = here(event.start_mark)
                if event.tag in _TYPED:  # an explicit !!int, !!float, !!bool or !!null
                    value = _resolve_plain(event.value)
                    kind_ = _TYPED[event.tag]
                    if isinstance(value, bool) != (kind_ is bool) or not isinstance(value, kind_):
                        fail(f"'{event.value}' is not a valid {_shown(event.tag)}", loc.line, loc.col,
                             f"remove the tag {_shown(event.tag)} or correct the value")
                    value = float(value) if event.tag == _YAML_TAG + "float" else value
                elif event.tag is None and event.implicit[0]:  # a plain scalar: a number, true, null...
                    value = _resolve_plain(event.value)
                else:  # quoted, or tagged !!str or !
                    value = event.value
                if event.anchor:
                    anchors[event.anchor] = value
                attach(value, loc, 1, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                check_tag(event)
                loc = here(event.start_mark)
                if len(stack) >= MAX_DEPTH:
                    fail(f"lists and mappings nest deeper than {MAX_DEPTH} levels here; a spec needs about 10",
                         loc.line, loc.col, "flatten the structure; use blocks instead of deeply nested branches")
                node = YMap() if kind is yaml.MappingStartEvent else YSeq()
                node.loc, node._size = loc, 1
                node.locs = {} if isinstance(node, YMap) else []
                if isinstance(node, YMap):
                    node.key_locs, node.merged = {}, set()
                stack.append([node, _NOTHING, None, event.anchor])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                node, _, _, anchor = stack.pop()
                if anchor:
                    anchors[anchor] = node
                attach(node, node.loc, node._size, 1)
            elif kind is yaml.AliasEvent:
                loc = here(event.start_mark)
                if event.anchor not in anchors:
                    fail(f"unknown alias '*{event.anchor}'", loc.line, loc.col, "define the anchor '&name' first")
                value = anchors[event.anchor]
                attach(value, loc, _size(value), _size(value))
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    loc = here(event.start_mark)
                    fail("the file holds more than one YAML document", loc.line, loc.col,
                         "keep one network per file; remove the extra '---' section")
    except yaml.MarkedYAMLError as exc:
        # Some parser versions refuse deep nesting themselves, scanning ahead past our own limit before
        # emitting an event; the refusal is ours to word, whatever the parser's version.
        deep = _too_deep(text, exc.problem_mark.index if exc.problem_mark else len(text))
        if deep is not None:
            fail(f"lists and mappings nest deeper than {MAX_DEPTH} levels here; a spec needs about 10",
                 text.count("\n", 0, deep) + 1, deep - text.rfind("\n", 0, deep),
                 "flatten the structure; use blocks instead of deeply nested branches")
        message, mark, fix = _syntax_error(exc, text)
        fail(message, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, fix)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. NUL
        at = exc.position if isinstance(exc.position, int) else 0
        line = text.count("\n", 0, at) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        fail(f"the file contains the character U+{char:04X}, which YAML does not allow ({exc.reason})",
             line, at - text.rfind("\n", 0, at), "remove it; a spec is plain text")
    except yaml.YAMLError as exc:
        fail(f"YAML error: {exc}", 1, 1)
    return None if root is _NOTHING else root


_YAML_TAG = "tag:yaml.org,2002:"
_TYPED = {_YAML_TAG + "int": int, _YAML_TAG + "float": (int, float), _YAML_TAG + "bool": bool,
          _YAML_TAG + "null": type(None)}


def _shown(tag: str) -> str:
    """A tag as it is written: ``!!python/object``, ``!local``, ``!<tag:example.com,2000:x>``."""
    if tag.startswith(_YAML_TAG):
        return "!!" + tag[len(_YAML_TAG):]
    return tag if tag.startswith("!") else f"!<{tag}>"
_TOO_BIG_FIX = "use blocks and `repeat` instead of spelling every layer out, or split the network"


def _too_big(size: int) -> str:
    return f"the file is {size:,} bytes; specs are limited to {MAX_BYTES:,} bytes ({MAX_BYTES // 2**20} MiB)"


def _too_deep(text: str, end: int) -> int | None:
    """Offset of the first bracket that opens level ``MAX_DEPTH + 1`` of flow nesting before ``end``, if any.

    Brackets inside quotes and comments do not count. Used only to word a parser's refusal, so an
    approximate reading of an already broken file costs nothing.
    """
    depth, quote, comment = 0, "", False
    for i, c in enumerate(text[:end]):
        if comment:
            comment = c != "\n"
        elif quote:
            quote = "" if c == quote else quote
        elif c in "'\"" and (i == 0 or text[i - 1] in " \t\n[{,:"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            comment = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif c in "]}":
            depth = max(depth - 1, 0)
    return None


_OPENED = {"a flow mapping": "the '{' mapping", "a flow sequence": "the '[' list",
           "a quoted scalar": "the quoted text"}


def _syntax_error(exc, text: str):
    """(message, mark, fix) for a parser error: where it is, what the parser was reading, a likely fix.

    An error at the end of the file is reported where the unclosed bracket or quote starts.
    """
    problem, mark, context, start = exc.problem or str(exc), exc.problem_mark, exc.context, exc.context_mark
    if mark is not None and start is not None and mark.index >= len(text.rstrip()):
        what = context.replace("while parsing ", "").replace("while scanning ", "")
        what = _OPENED.get(what, what)
        return f"YAML syntax error: the file ends before {what} that starts here is closed", start, \
            f"close {what}"
    if start is not None and mark is not None and start.line != mark.line:
        context = f"{context} that starts at line {start.line + 1}, column {start.column + 1}"
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
    if mark is not None and text[mark.index:mark.index + 1] == "\t":
        fix = "YAML indents with spaces, not tabs: replace the tab with spaces"
    elif "${" in line:
        fix = 'quote an expression written inside braces: `{filters: "${width * 2}"}`'
    elif "mapping values are not allowed" in problem:
        fix = ("to give a layer keys, end its type with a colon (`- relu:` then `repeat: 2` indented under it); "
               "quote a value that contains ': '")
    else:
        fix = "check the indentation and brackets at that position"
    return message, mark, fix


def load_file(path: str | Path):
    """Read and parse a spec file; unreadable files become SpecError too."""
    return load_text(load_file_text(path), str(path))


def load_file_text(path: str | Path) -> str:
    """A spec file's text: a regular file of at most MAX_BYTES of UTF-8, else SpecError."""
    from archcheck.files import FileProblem, open_regular

    path = Path(path)
    try:
        with open_regular(path, quoted=True) as fh:
            data = fh.read(MAX_BYTES + 1)  # the size on disk may lie (/proc, a growing file): count what is read
        size = os.stat(path).st_size if len(data) > MAX_BYTES else None
    except FileProblem as exc:
        loc = Loc(str(path), 1, 1) if exc.exists else None
        raise SpecError([Problem("invalid-yaml", exc.message, loc, None, "check the path: SPEC is a YAML or JSON spec "
                                 "file")]) from None
    except OSError as exc:
        raise SpecError([Problem("invalid-yaml", f"cannot read '{path}': {exc.strerror or exc}", None, None,
                                 "check the path: SPEC is a YAML or JSON spec file")]) from None
    return decode(data, str(path), size)


def decode(data: bytes, file: str, size: int | None = None) -> str:
    """A spec's bytes as text, else SpecError at ``file``: those of a file, a git revision or standard input, of
    which at most ``MAX_BYTES + 1`` are read (``size``: the whole size, when known)."""
    if len(data) > MAX_BYTES:
        size = max(len(data), size or 0)
        raise SpecError([Problem("invalid-yaml", _too_big(size) if size > MAX_BYTES + 1 else
                                 f"the file is over {MAX_BYTES:,} bytes; specs are limited to {MAX_BYTES:,} "
                                 f"bytes ({MAX_BYTES // 2**20} MiB)", Loc(file, 1, 1), None, _TOO_BIG_FIX)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = data.count(b"\n", 0, exc.start) + 1, exc.start - data.rfind(b"\n", 0, exc.start)
        raise SpecError([Problem("invalid-yaml", f"the file is not UTF-8 text: byte {data[exc.start]:#04x} at "
                                 f"offset {exc.start:,} ({exc.reason})", Loc(file, line, col), None,
                                 "save the spec as UTF-8 (editors offer it under 'Save with encoding')")]) from None
