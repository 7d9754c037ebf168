"""The spec language: validate a loaded document and expand it into a flat list of layers.

A spec is ``input``, ``layers`` and optionally ``name``, ``classes``, ``output``,
``description``, ``metadata``, ``blocks`` and ``outputs``. Expansion resolves blocks (with ``$arg``
substitution and several inputs), ``repeat`` (of one entry or of a run of entries), ``when`` and
merge branches into ``Node`` s: one per layer, with a unique dotted name, its validated layer
object, the names of its inputs and its location (through block uses). Problems are collected,
not raised one by one.

A layer whose arguments read the incoming shape (``"${input.channels // 2}"``) cannot be validated
while the spec expands: its node keeps a ``Recipe`` and ``bind`` makes the layer once propagation
knows the shape (at the input size of that run, so ``--input`` re-evaluates it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archcheck import expr
from archcheck.errors import Collector, Loc, closest, did_you_mean, show
from archcheck.expr import Deferred
from archcheck.layers import CATALOGUE, KNOWN_AS, Input, Layer
from archcheck.layers.base import MAX_DIM
from archcheck.yamlsrc import YMap, YSeq, key_loc_of, load_file, loc_of

MAX_LAYERS = 50_000  # the expansion stops here, so a hostile `repeat` costs at most this much work
MAX_REPEAT = MAX_LAYERS
MAX_STEPS = 4 * MAX_LAYERS  # repetitions expanded, counting those that make no layer (`when: false`, errors)
MAX_BLOCK_DEPTH = 32  # levels of blocks and branches together
MAX_NAME = 128  # characters in a written layer or block name
MAX_FULL_NAME = 1024  # characters in a scoped name, prefixes included
# Values copied while expanding: ResNet-50 copies about 1,200, a two-layer block repeated up to MAX_LAYERS
# about 175,000; ten per layer leaves room for rich blocks and refuses an aliased large value in seconds.
MAX_COPIED = 10 * MAX_LAYERS
MAX_SUGGESTIONS = 20  # unknown names that get a did-you-mean; the rest are listed plainly
ENTRY_KEYS = ("name", "inputs", "repeat", "when")  # the keys of a layer entry besides its type
INPUT = "input"
RUN = "layers"  # `- layers: [...]`: a run of entries, repeated together
INDEX = "index"  # in an entry's values, the number of its repetition, from 0
_READS_INDEX = re.compile(r"\$(?:index\b|\{[^{}]*\bindex\b)")


class BlockDef(BaseModel):
    """A reusable, parametrised group of layers."""

    model_config = ConfigDict(extra="forbid", strict=True)
    args: dict[str, Any] = Field({}, description="a mapping of argument name to default value (~ for required)")
    inputs: Annotated[list[Annotated[str, Field(pattern=r"^[^.]+$", max_length=MAX_NAME)]], Field(
        min_length=1, max_length=64)] | None = Field(
        None, description="a list of names for the block's inputs, without dots (the first is also `input`)")
    layers: Annotated[list[Any], Field(min_length=1, description="a non-empty list of layers")]
    description: str | None = Field(None, description="a text")


OutputKind = Literal["logits", "probabilities", "binary", "regression"]
OUTPUT_EXPECTED = "logits, probabilities, binary or regression"


class OutputDoc(BaseModel):
    """``output: {kind: regression, range: [low, high]}``: what the network's output values are."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: OutputKind = Field(description=OUTPUT_EXPECTED)
    range: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[low, high], the range of the targets (.inf for no bound)")


@dataclass(frozen=True)
class Output:
    """What the network's outputs are, as the loss sees them (README: "What the output is").

    ``logits``: scores the loss turns into probabilities itself (softmax or sigmoid); ``probabilities``:
    a distribution over mutually exclusive classes; ``binary``: independent probabilities, one per value
    (binary and multi-label classification, masks); ``regression``: real values within ``range``."""

    kind: str
    range: tuple[float, float] = (-math.inf, math.inf)


class SpecDoc(BaseModel):
    """The top level of a spec file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = None
    description: str | None = None
    input: Annotated[list[Annotated[int, Field(ge=1, le=MAX_DIM)]], Field(
        min_length=1, max_length=4, description="the input shape without the batch axis: [F] (a vector of "
                                                "features), [C, L], [C, H, W] or [C, D, H, W], each a whole "
                                                "number >= 1")]
    classes: Annotated[int, Field(ge=1, le=MAX_DIM)] | None = Field(
        None, description="the number of output classes, a whole number >= 1")
    output: Any = None  # checked by _output, which names the key at fault inside a mapping
    metadata: dict[str, Any] = Field({}, description="a mapping of free-form information")
    blocks: dict[str, Any] = Field({}, description="a mapping of block name to {args, layers}")
    layers: Annotated[list[Any], Field(min_length=1, description="a non-empty list of layers")]
    outputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="a non-empty list of layer names")


@dataclass(frozen=True)
class Recipe:
    """A layer waiting for its input's shape: its type and its arguments, some of them ``Deferred``."""

    cls: type[Layer]
    args: Any


@dataclass
class Node:
    """One layer of the expanded network.

    ``layer`` is None while a ``recipe`` waits for the input's shape; the analysis' graph holds the
    node ``bind`` made from it."""

    name: str
    layer: Layer | None
    inputs: list[str]
    loc: Loc
    group: str | None = None  # the outermost block instance it belongs to
    recipe: Recipe | None = None

    @property
    def type(self) -> str:
        return self.layer.type if self.layer is not None else self.recipe.cls.type


@dataclass
class Spec:
    """An expanded spec: nodes in definition order (the input first)."""

    name: str
    file: str
    input: tuple[int, ...]
    nodes: list[Node]
    outputs: list[str]
    classes: int | None = None
    description: str | None = None
    metadata: dict = field(default_factory=dict)
    output: Output | None = None  # as written; rules/_walk.output_of adds what the head implies


@dataclass
class _Scope:
    """Names visible to the layers of one block instance or branch."""

    prefix: str
    input: str
    parent: _Scope | None = None
    names: dict[str, tuple[str, Loc]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # a block's named inputs: local name -> full name

    def auto_name(self, kind: str) -> str:
        while True:
            self.counters[kind] = self.counters.get(kind, 0) + 1
            local = f"{kind}_{self.counters[kind]}"
            if local not in self.names:
                return local

    def resolve(self, local: str) -> str | None:
        scope = self
        while scope is not None:
            if local == INPUT:
                return scope.input
            if local in scope.inputs:
                return scope.inputs[local]
            if local in scope.names:
                return scope.names[local][0]
            scope = scope.parent
        return None

    def visible(self) -> list[str]:
        out, scope = [INPUT], self
        while scope is not None:
            out += [*scope.inputs, *scope.names]
            scope = scope.parent
        return out


def pydantic_problems(col: Collector, exc: ValidationError, container, loc: Loc, what: str, layer: str | None,
                      fields: dict, code: str = "invalid-spec", noun: str = "argument",
                      skip: frozenset = frozenset()) -> int:
    """Turn a pydantic ValidationError into problems pointing at the offending values; return how many.

    ``fields`` is the model's ``model_fields``: a field's ``description`` says what is expected. Errors
    about the fields in ``skip`` (left out, to be checked later) are not reported.
    """
    by_field: dict[Any, list[dict]] = {}
    for err in exc.errors():
        if not (err["loc"] and err["loc"][0] in skip and err["type"] == "missing"):
            by_field.setdefault(err["loc"][0] if err["loc"] else None, []).append(err)
    start = len(col.problems)
    # a misspelt key is reported once, as the misspelling, not also as the key it was meant to be
    meant = {closest(name, fields) for name, errs in by_field.items() if errs[0]["type"] == "extra_forbidden"} - {None}
    for name, errs in by_field.items():
        kinds = {e["type"] for e in errs}
        if "missing" in kinds and name in meant:
            continue
        if "invalid_key" in kinds or not isinstance(name, (str, type(None))):
            col.add(code, f"{what} {noun} names are text, received the key {show(name)} "
                    f"({'true or false' if isinstance(name, bool) else 'a number'})",
                    _within(key_loc_of(container, name, loc), loc), layer,
                    f"write the {noun}'s name (`{next(iter(fields))}: ...`); {what} takes: {', '.join(fields)}"
                    if fields else f"{what} takes no {noun}s: remove the key")
        elif "missing" in kinds:
            col.add(code, f"{what} is missing the required {noun} '{name}'", loc, layer,
                    f"add `{name}: <value>`")
        elif "extra_forbidden" in kinds:
            choices = ", ".join(fields) or f"no {noun}s"
            misplaced = (f"; `{name}` belongs to the entry: indent it like the type, on its own line after "
                         f"`- {what}: {{...}}`" if noun == "argument" and name in ENTRY_KEYS else "")
            col.add(code, f"{what} has no {noun} '{name}'{did_you_mean(name, fields)}",
                    _within(key_loc_of(container, name, loc), loc), layer, f"{what} takes: {choices}{misplaced}")
        else:
            received = container.get(name) if isinstance(container, dict) else errs[0].get("input")
            info = fields.get(name)
            expected = info.description if info is not None and info.description else \
                " or ".join(dict.fromkeys(_expected(e) for e in errs[:4]))
            col.add(code, f"{what} {noun} '{name}' received {show(received)}, expected {expected}",
                    _within(_deepest(container, [e["loc"] for e in errs], loc), loc), layer,
                    f"set `{name}` to {expected}")
    return len(col.problems) - start


def _validation_problems(col: Collector, exc: ValidationError, args, loc: Loc, kind: str, layer: str,
                         cls: type[Layer], skip: frozenset = frozenset()) -> int:
    """A layer's invalid arguments, named as the spec writes them (an alias where a field's name is
    taken, as layerscale's `init`)."""
    fields = {info.alias or name: info for name, info in cls.model_fields.items()}
    return pydantic_problems(col, exc, args, loc, kind, layer, fields, skip=skip)


_EXPECTED = {"bool_type": "true or false", "bool_parsing": "true or false", "int_type": "a whole number",
             "int_parsing": "a whole number", "int_from_float": "a whole number", "float_type": "a number",
             "float_parsing": "a number", "string_type": "a text", "list_type": "a list", "dict_type": "a mapping"}


def _expected(err: dict) -> str:
    """What a pydantic error says was expected, in the words of a spec ("true or false", "less than 1")."""
    if err["type"] in _EXPECTED:
        return _EXPECTED[err["type"]]
    msg = err["msg"]
    msg = msg[len("Input should be "):] if msg.startswith("Input should be ") else msg[0].lower() + msg[1:]
    return f"a number {msg}" if err["type"] in ("less_than", "less_than_equal", "greater_than",
                                                  "greater_than_equal") else msg


def _within(where: Loc, loc: Loc) -> Loc:
    """``where`` reached through the block uses of ``loc``."""
    return Loc(where.file, where.line, where.col, loc.via)


def _deepest(container, paths: list[tuple], default: Loc) -> Loc:
    """Where the values at ``paths`` start, as deep as the paths agree and exist in the document.

    Pydantic's paths also hold union member tags ('int', 'list[...]'), which stop the walk.
    """
    where, node = default, container
    for parts in zip(*paths):
        part = parts[0]
        if any(p != part for p in parts) or isinstance(part, bool):
            break
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) \
                and 0 <= part < len(node):
            where, node = loc_of(node, part, where), node[part]
        else:
            break
    return where


def _kind(item) -> str | None:
    """The layer or block type of an entry (``relu`` or ``{conv: ..., name: ...}``), if it has exactly one."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        kinds = [k for k in item if k not in ENTRY_KEYS]
        if len(kinds) == 1 and isinstance(kinds[0], str):
            return kinds[0]
    return None


def _leaves(value):
    """The scalar values inside mappings and lists (a ``Deferred`` is one), depth first."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _waiting(value) -> Deferred | None:
    """The first value inside ``value`` that waits for a shape (``Deferred``), if any."""
    return next((v for v in _leaves(value) if isinstance(v, Deferred)), None)


def _reads_index(value) -> bool:
    """Whether an entry's values read `index`, the number of the repetition."""
    return any(isinstance(v, str) and "$" in v and _READS_INDEX.search(v) is not None for v in _leaves(value))


def _waits(value) -> bool:
    return _waiting(value) is not None


def _anchored(value, anchor: str):
    """``value`` with each ``Deferred`` in it that reads its own layer's input reading ``anchor``'s output."""
    if isinstance(value, Deferred):
        return replace(value, anchor=anchor) if value.anchor is None else value
    return _mapped(value, lambda v: _anchored(v, anchor))


def _mapped(value, fn):
    """A copy of a mapping or list with ``fn`` applied to each value, keeping the locations; other
    values as they are."""
    if isinstance(value, dict):
        out = type(value)((k, fn(v)) for k, v in value.items())
    elif isinstance(value, list):
        out = type(value)(fn(v) for v in value)
    else:
        return value
    out.__dict__.update(getattr(value, "__dict__", {}))
    return out


class _Skip(Exception):
    """An entry already reported as wrong; expansion goes on without it."""


@dataclass
class _Repeat:
    """An open `repeat` (of more than one) as ``over_limit`` reads it, updated at each repetition."""

    loc: Loc  # the `repeat` key
    count: int  # the `repeat` value
    layer: str = ""  # the full name of the current repetition
    left: int = 0  # repetitions still to come after the current one
    nodes_before: int = 0  # layers made before the current repetition
    steps_before: int = 0  # expansion steps taken before the current repetition


class _Expander:
    def __init__(self, file: str, blocks: dict[str, BlockDef], raw_blocks: YMap, col: Collector):
        self.file, self.blocks, self.raw_blocks, self.col = file, blocks, raw_blocks, col
        self.nodes: list[Node] = []
        self.pending: list[tuple[Node, list[tuple[str, Loc, bool]], _Scope, str]] = []
        self.by_name: dict[str, Node] = {}
        self.using: list[str] = []  # the blocks being expanded, outermost first
        self.too_big = False  # the layer limit was reached (reported once); expansion stops
        self.copied = 0  # values copied by substitution, see subst
        self.steps = 0  # repetitions expanded so far: each costs work even when it makes no layer
        self.repeating: list[_Repeat] = []  # the open repeats, outermost first

    # -- helpers -------------------------------------------------------------------------
    def over_limit(self, loc: Loc, layer: str) -> bool:
        """Whether the expansion will pass ``MAX_LAYERS``: reported once, at the `repeat` that makes it so.

        Repetitions of an entry are identical, so each one still to come adds at least as many layers
        (and expansion steps) as the current one has added so far: nested repeats are refused after a
        few layers of work, including repeats of entries that make no layer at all.
        """
        if self.too_big:
            return True
        n = len(self.nodes)
        extra = [(r.left * (n - r.nodes_before), r) for r in self.repeating]
        total = n + sum(e[0] for e in extra)
        if total > MAX_LAYERS:
            self.too_big = True
            if extra:
                _, r = max(extra, key=lambda e: e[0])
                self.fail(f"the spec expands to at least {total:,} layers (`repeat: {r.count:,}` here); archcheck "
                          f"accepts at most {MAX_LAYERS:,}", r.loc, r.layer,
                          "reduce the `repeat` counts: no real network has this many layers")
            else:
                self.fail(f"the spec expands to more than {MAX_LAYERS:,} layers", loc, layer,
                          "use blocks and `repeat`, or split the network: no real network has this many layers")
            return True
        steps = [(r.left * (self.steps - r.steps_before), r) for r in self.repeating]
        if self.steps + sum(e[0] for e in steps) > MAX_STEPS:
            self.too_big = True
            _, r = max(steps, key=lambda e: e[0])
            self.fail(f"the `repeat` counts multiply to more than {MAX_STEPS:,} repetitions (`repeat: {r.count:,}` "
                      "here), whether or not they make layers", r.loc, r.layer,
                      "reduce the `repeat` counts: no real network needs this many")
            return True
        return False

    def fail(self, message: str, loc: Loc, layer: str | None = None, fix: str | None = None) -> None:
        self.col.add("invalid-spec", message, loc, layer, fix)

    def own(self, mark: int, layer: str | None) -> None:
        """Problems found since ``mark`` without a layer belong to ``layer`` (the entry being expanded)."""
        if layer is not None:
            probs = self.col.problems
            probs[mark:] = [p if p.layer else replace(p, layer=layer) for p in probs[mark:]]

    def subst(self, value, env: dict, loc: Loc, via: tuple):
        """Substitute block arguments everywhere in ``value``, keeping locations.

        Every value copied counts against ``MAX_COPIED`` as it is copied, before any work past it: an
        alias of a large value inside a block used many times is copied once per use, even in an entry
        that `when: false` drops afterwards."""
        self.copied += 1
        if self.copied > MAX_COPIED:
            if not self.too_big:
                self.too_big = True
                self.fail(f"expanding the spec copies more than {MAX_COPIED:,} values (each use of a block copies "
                          "its layers, their arguments and any aliased values in them)", loc,
                          fix="use aliases of small values only; a large value repeated through blocks is copied at "
                              "every use")
            raise _Skip
        if isinstance(value, str) and expr.has_reference(value):
            try:
                return expr.substitute(value, env)
            except expr.NeedsShape:
                return Deferred(value, env, loc)
            except expr.ExprError as exc:
                message, fix = str(exc), exc.fix
                if exc.unbound and not self.using:
                    message = f"'${exc.unbound}' refers to a block argument, but this layer is not inside a block"
                    fix = "write the value itself, or move the layer into a block that declares it in `args`"
                elif exc.unbound:
                    block = self.using[-1]
                    declared = ", ".join(env) or "no arguments"
                    message = (f"'${exc.unbound}' is not an argument of block '{block}'"
                               f"{did_you_mean(exc.unbound, env)}; it declares {declared}")
                self.fail(message, loc, fix=fix)
                raise _Skip from None
        if isinstance(value, YMap):
            out = YMap()
            out.loc, out.locs, out.key_locs = value.loc, {}, value.key_locs
            for k, v in value.items():
                where = self.at(value.locs[k], via)
                out[k] = self.subst(v, env, where, via)
                out.locs[k] = where
            out.loc = self.at(value.loc, via)
            return out
        if isinstance(value, YSeq):
            out = YSeq(self.subst(v, env, self.at(at, via), via) for v, at in zip(value, value.locs))
            out.loc, out.locs = self.at(value.loc, via), [self.at(at, via) for at in value.locs]
            return out
        return value

    @staticmethod
    def at(loc: Loc, via: tuple) -> Loc:
        return Loc(loc.file, loc.line, loc.col, via) if via else loc

    def register(self, scope: _Scope, local: str, full: str, loc: Loc) -> bool:
        if local in scope.names or local == INPUT or local in scope.inputs:
            first = scope.names.get(local, (None, None))[1]
            earlier = (f" (first defined at line {first.line})" if first else " ('input' is reserved)"
                       if local == INPUT else " (it names an input of the block)")
            self.fail(f"duplicate layer name '{local}'{earlier}", loc, local, "give each layer a unique name")
            return False
        scope.names[local] = (full, loc)
        return True

    # -- expansion -------------------------------------------------------------------------
    def sequence(self, items, locs, scope: _Scope, prev: str, env: dict, via: tuple, group: str | None,
                 depth: int) -> str:
        for item, loc in zip(items, locs):
            prev = self.entry(item, self.at(loc, via), scope, prev, env, via, group, depth)
        return prev

    def entry(self, item, loc: Loc, scope: _Scope, prev: str, env: dict, via: tuple, group, depth: int) -> str:
        if self.too_big:
            return prev
        mark = len(self.col.problems)
        raw, numbered = item, _reads_index(item)  # values that read `index` are made again per repetition
        try:
            item = self.subst(item, {**env, INDEX: 0} if numbered else env, loc, via)
        except _Skip:  # name the layer the entry would have made, so its problem says which one
            kind, name = _kind(item), item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and "$" not in name:
                self.own(mark, scope.prefix + name)
            elif name is None and (kind in CATALOGUE or kind in self.blocks):
                self.own(mark, scope.prefix + scope.auto_name(kind))
            return prev
        kind = _kind(item)
        if kind is None:
            kinds = [k for k in item if k not in ENTRY_KEYS] if isinstance(item, YMap) else []
            if len(kinds) > 1:
                self.fail(f"a layer entry has several types: {', '.join(map(str, kinds))}", loc,
                          fix="write each layer as its own list item (`- conv: ...` then `- relu`)")
            elif kinds:
                self.fail(f"a layer type must be a name, received {show(kinds[0])}", loc,
                          fix=f"use a layer type ({', '.join(CATALOGUE)}) or a block defined under `blocks:`")
            elif isinstance(item, YMap):
                self.fail(f"a layer entry has no type, only {', '.join(map(str, item))}", loc,
                          fix=f"add the layer type, e.g. `- conv: {{filters: 64}}`; layer types: "
                              f"{', '.join(CATALOGUE)}")
            elif isinstance(item, YSeq):
                self.fail("a list is not a layer", loc,
                          fix="write branches as arguments of a merge layer: `- concat: [[...], [...]]`")
            else:
                self.fail(f"a layer must be a type name or a `type: {{args}}` mapping, received {show(item)}", loc,
                          fix="write `- relu` or `- conv: {filters: 64}`")
            return prev
        if isinstance(item, str):
            args, meta = None, YMap()
            meta.loc, meta.locs, meta.key_locs = loc, {}, {}
        else:
            args, meta = item[kind], item
        for key in ENTRY_KEYS:
            if _waits(meta.get(key)):
                written = meta.get("name")
                self.fail(f"`{key}` reads the incoming shape ({show(_waiting(meta[key]).text)}), which is known "
                          f"only once shapes propagate, but `{key}` decides which layers exist and how they "
                          "connect before that", loc_of(meta, key, loc),
                          scope.prefix + (written if isinstance(written, str) and key != "name" else
                                          scope.auto_name(kind)),
                          "compute it from block arguments, or pass it as one; layer arguments may read the shape")
                return prev
        if kind not in CATALOGUE and kind not in self.blocks and kind != RUN:
            hint = KNOWN_AS.get(kind.lower().replace("_", "").replace("-", ""))
            mean = f" (did you mean '{hint}'?)" if hint else did_you_mean(kind, [*CATALOGUE, *self.blocks])
            spaced = (" (a type is one word: is the next list item indented too far, or its '- ' missing?)"
                      if not mean and " " in kind.strip() else "")
            written = item.get("name") if isinstance(item, dict) else None
            # inside a branch or a block, name this item: the entry around it is not the one that is wrong
            layer = (scope.prefix + (written if isinstance(written, str) and written else scope.auto_name(kind))
                     if scope.prefix else None)
            self.fail(f"unknown layer type '{kind}'{mean}{spaced}", loc, layer,
                      fix=f"use a layer type ({', '.join(CATALOGUE)}) or a block defined under `blocks:`")
            return prev

        name = meta.get("name")
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            self.fail(f"a layer name must be a non-empty text without dots, received {show(name)}",
                      loc_of(meta, "name", loc), fix="use letters, digits and '_', e.g. `name: stem_conv`")
            name = None
        elif name is not None and len(name) > MAX_NAME:
            self.fail(f"a layer name is at most {MAX_NAME} characters, received {len(name):,}",
                      loc_of(meta, "name", loc), fix="use a short name, e.g. `name: stem_conv`")
            return prev
        when = meta.get("when", True)
        if not isinstance(when, bool):
            self.fail(f"`when` must be true or false, received {show(when)}", loc_of(meta, "when", loc),
                      scope.prefix + (name or scope.auto_name(kind)),
                      "write a condition such as `when: ${stride != 1}`")
            return prev
        if not when:
            return prev
        repeat = meta.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat <= MAX_REPEAT:
            self.fail(f"`repeat` must be a whole number from 0 to {MAX_REPEAT:,}, received {show(repeat)}",
                      loc_of(meta, "repeat", loc), scope.prefix + (name or scope.auto_name(kind)),
                      "write a count such as `repeat: 3`; for long stacks repeat a block")
            return prev

        if repeat > 1 and (why := self.pointless_repeat(kind, meta)):
            self.fail(f"`repeat: {repeat}` {why[0]}", loc_of(meta, "repeat", loc),
                      scope.prefix + (name or scope.auto_name(kind)), why[1].replace("N", str(repeat)))
            return prev

        frame = _Repeat(loc_of(meta, "repeat", loc), repeat)  # see over_limit
        if repeat > 1:
            self.repeating.append(frame)
        try:
            for i in range(repeat):
                auto = "group" if kind == RUN else kind
                local = scope.auto_name(auto) if name is None else (name if repeat == 1 else f"{name}.{i}")
                frame.layer, frame.left = scope.prefix + local, repeat - 1 - i
                frame.nodes_before, frame.steps_before = len(self.nodes), self.steps
                self.steps += 1
                mark = len(self.col.problems)
                if len(scope.prefix) + len(local) > MAX_FULL_NAME:  # a prefix per level; every output repeats it
                    self.fail(f"the layer's full name is {len(scope.prefix) + len(local):,} characters long (block "
                              f"and branch prefixes included); at most {MAX_FULL_NAME:,} are accepted", loc,
                              (scope.prefix + local)[:60] + "...",
                              "use shorter block and layer names, or fewer levels of nesting")
                    return prev
                if numbered and i:
                    try:
                        args = self.subst(raw, {**env, INDEX: i}, loc, via)[kind]
                    except _Skip:
                        self.own(mark, scope.prefix + local)
                        return prev
                if kind in CATALOGUE:
                    prev = self.layer(kind, args, meta, loc, scope, prev, local, via, group, depth, env)
                elif kind == RUN:
                    prev = self.run(args, meta, loc, scope, prev, local, via, group, depth, env)
                else:
                    prev = self.block(kind, args, meta, loc, scope, prev, local, via, group, depth)
                failed = len(self.col.problems) > mark
                self.own(mark, scope.prefix + local)
                if failed or self.over_limit(loc, scope.prefix + local):
                    return prev  # the repetitions to come are identical: they would only repeat the problems
        finally:
            if repeat > 1:
                self.repeating.pop()
        if name is not None and repeat > 1:
            scope.names.setdefault(name, (prev, loc))  # the name of a repeated entry is its last repetition
        return prev

    def pointless_repeat(self, kind: str, meta) -> tuple[str, str] | None:
        """Why repeating this entry cannot be what was meant, and the fix, or None: a `repeat` placed on
        the wrong entry would otherwise build a different network, often with the same totals."""
        if meta.get("inputs") is not None:
            return ("with `inputs` makes copies that all read the same layers, side by side: only the last one "
                    "is read by what follows", "remove `repeat` (one layer reads those inputs), or write the "
                    "copies out with the inputs each should read")
        cls = CATALOGUE.get(kind)
        what = None if cls is None else (
            "an activation" if cls.activation else "a normalisation" if cls.normalises else
            "a global pooling" if cls.global_pool else "dropout" if cls.category == "regularizer" else None)
        if what is None:
            return None
        return (f"applies {kind}, {what}, several times in a row, which no network needs",
                "`repeat` repeats its own entry only; to repeat a run of entries, list them under one: "
                "`- layers: [conv: 64, batchnorm, relu]` with `repeat: N` beside `layers`")

    def run(self, items, meta, loc, scope, prev, local, via, group, depth, env) -> str:
        """``- layers: [...]``: a run of entries, as if written out, in a scope of its own so that names
        given inside stay unique across repetitions; its name refers to its last layer."""
        full = scope.prefix + local
        if not isinstance(items, list) or not items:
            self.fail(f"`layers` takes a non-empty list of entries, received {show(items)}", loc,
                      fix="write `- layers: [conv: 64, batchnorm, relu]`, with `repeat: N` beside `layers`")
            return prev
        if meta.get("inputs") is not None:
            self.fail("a run of entries takes its input from the previous layer; `inputs` is for single layers "
                      "and blocks", loc_of(meta, "inputs", loc), full,
                      "give `inputs: [name]` to the run's first entry instead")
            return prev
        if depth >= MAX_BLOCK_DEPTH:
            self.fail(f"blocks and branches nest more than {MAX_BLOCK_DEPTH} levels deep", loc, full,
                      fix="use fewer levels of blocks and branches")
            return prev
        registered = self.register(scope, local, full, loc)
        inner = _Scope(full + ".", prev, parent=scope)
        out = self.sequence(items, getattr(items, "locs", [loc] * len(items)), inner, prev, env, via, group or full,
                            depth + 1)
        if registered:
            scope.names[local] = (out, loc)
        return out

    def layer(self, kind, args, meta, loc, scope, prev, local, via, group, depth, env) -> str:
        cls = CATALOGUE[kind]
        full = scope.prefix + local
        self.register(scope, local, full, loc)  # even if the layer is wrong: later references to it are fine
        refs: list[tuple[str, Loc, bool]] = []  # (name, where, already a full name)
        inputs_meta = meta.get("inputs")
        if inputs_meta is not None:
            if not isinstance(inputs_meta, list) or not all(isinstance(x, str) for x in inputs_meta):
                self.fail(f"`inputs` must be a list of layer names, received {show(inputs_meta)}",
                          loc_of(meta, "inputs", loc), fix="write `inputs: [name]` or `inputs: [a, b]`")
                return prev
            refs = [(x, loc_of(inputs_meta, i, loc), False) for i, x in enumerate(inputs_meta)]
        branches = []
        if cls.max_inputs > 1:
            listed = args
            if isinstance(args, YMap) and "branches" in args:
                listed = args["branches"]
                args = YMap({k: v for k, v in args.items() if k != "branches"})
                args.loc, args.locs = meta.loc, {}
            if isinstance(listed, list):
                if refs:
                    self.fail(f"{kind} lists its inputs twice: in `inputs` and as its value", loc,
                              fix=f"keep one: `- {kind}: [a, b]` or `inputs: [a, b]`")
                for i, x in enumerate(listed):
                    where = loc_of(listed, i, loc)
                    if isinstance(x, str):
                        refs.append((x, where, False))
                    elif isinstance(x, list):
                        branches.append((x, where))
                    else:
                        self.fail(f"{kind} takes layer names or branches (lists of layers), received {show(x)}",
                                  where, fix=f"write `- {kind}: [a, b]` or `- {kind}: [[conv: 8], []]`")
                args = None if listed is args else args
        elif isinstance(args, list) and cls.shorthand is None:
            self.fail(f"{kind} takes a mapping of arguments, received a list", loc,
                      fix=f"write `- {kind}: {{...}}`")
            return prev
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            if cls.shorthand is None:
                self.fail(f"{kind} takes no shorthand value, received {show(args)}", loc,
                          fix=f"write `- {kind}` or `- {kind}: {{argument: value}}`")
                return prev
            value = args
            args = YMap({cls.shorthand: value})
            args.loc, args.locs = loc, {cls.shorthand: loc}
        recipe = None
        if _waits(args):  # checked as far as it can be now, the rest once the shape is known (``bind``)
            waiting = frozenset(k for k, v in args.items() if _waits(v))
            recipe = Recipe(cls, args)
            try:
                cls.model_validate({k: v for k, v in args.items() if k not in waiting})
            except ValidationError as exc:
                if _validation_problems(self.col, exc, args, loc, kind, full, cls, skip=waiting):
                    return prev
            layer = None
        else:
            try:
                layer = cls.model_validate(args)
            except ValidationError as exc:
                _validation_problems(self.col, exc, args, loc, kind, full, cls)
                return prev

        if branches and depth >= MAX_BLOCK_DEPTH:  # each branch level is a level of nesting, like a block's
            self.fail(f"blocks and branches nest more than {MAX_BLOCK_DEPTH} levels deep", loc, full,
                      fix="use fewer levels of blocks and branches")
            return prev
        for b, (items, where) in enumerate(branches):
            sub = _Scope(f"{full}.{b}.", prev, parent=scope)
            out = self.sequence(items, getattr(items, "locs", [where] * len(items)), sub, prev, env, via, group,
                                depth + 1)
            refs.append((out, where, True))
        node = Node(full, layer, [], loc, group, recipe)
        n_refs = len(refs) or 1
        if not (cls.min_inputs <= n_refs <= cls.max_inputs):
            want = (f"{cls.min_inputs} to {cls.max_inputs}" if cls.max_inputs > cls.min_inputs
                    else str(cls.min_inputs))
            self.fail(f"{kind} takes {want} inputs, received {n_refs}", loc, full,
                      fix=f"list its inputs: `- {kind}: [a, b]`, or give branches" if cls.max_inputs > 1
                      else "give one input in `inputs: [name]`")
        self.nodes.append(node)
        self.by_name[full] = node
        # branch outputs are already full names; named references resolve once the scope is complete
        self.pending.append((node, refs, scope, prev))
        return full

    def block(self, kind, args, meta, loc, scope, prev, local, via, group, depth) -> str:
        full = scope.prefix + local
        registered = self.register(scope, local, full, loc)  # a placeholder until the block's output is known
        if kind in self.using:
            chain = " -> ".join([*self.using[self.using.index(kind):], kind])
            self.fail(f"block '{kind}' uses itself: {chain}", loc,
                      fix="a block must not use itself, directly or through another block")
            return prev
        if depth >= MAX_BLOCK_DEPTH:
            self.fail(f"blocks and branches nest more than {MAX_BLOCK_DEPTH} levels deep", loc,
                      fix="use fewer levels of blocks and branches")
            return prev
        block = self.blocks[kind]
        inputs = self.block_inputs(kind, block, meta, loc, scope, prev, full)
        if inputs is None:
            return prev
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.fail(f"block '{kind}' takes a mapping of its arguments, received {show(args)}", loc,
                      fix=f"write `- {kind}: {{{', '.join(f'{a}: ...' for a in block.args)}}}`")
            return prev
        env = dict(block.args)
        meant = set()  # declared arguments that a misspelt one was probably meant to be
        refused = False  # a key that is not text
        for key, value in args.items():
            if not isinstance(key, str):  # kept out of env: every name lookup and listing assumes text
                self.fail(f"block '{kind}' argument names are text, received the key {show(key)} "
                          f"({'true or false' if isinstance(key, bool) else 'a number'})",
                          _within(key_loc_of(args, key, loc), loc),
                          fix=f"write the argument's name; '{kind}' declares: "
                              f"{', '.join(block.args) or 'no arguments'}")
                refused = True
                continue
            if key not in block.args:
                self.fail(f"block '{kind}' has no argument '{key}'{did_you_mean(key, block.args)}",
                          _within(key_loc_of(args, key, loc), loc),
                          fix=f"'{kind}' declares: {', '.join(block.args) or 'no arguments'}")
                meant.add(closest(key, block.args))
            env[key] = _anchored(value, inputs[0][1])  # `input` in a value passed to a block: the block's input
        meant.discard(None)
        missing = [k for k, v in env.items() if v is None and k not in meant]
        if missing:
            self.fail(f"block '{kind}' needs the argument{'s' if len(missing) > 1 else ''} "
                      f"{', '.join(missing)}, which {'have' if len(missing) > 1 else 'has'} no default", loc,
                      fix=f"pass it: `- {kind}: {{{missing[0]}: ...}}`")
        if missing or meant or refused:
            return prev
        inner = _Scope(full + ".", inputs[0][1], inputs={n: f for n, f in inputs if n != INPUT})
        raw_layers = self.raw_blocks[kind]["layers"]
        use = Loc(loc.file, loc.line, loc.col)
        self.using.append(kind)
        try:
            out = self.sequence(raw_layers, raw_layers.locs, inner, inputs[0][1], env,
                                (*loc.via, use) if via else (use,), group or full, depth + 1)
        finally:
            self.using.pop()
        if registered:
            scope.names[local] = (out, loc)
        return out

    def block_inputs(self, kind: str, block: BlockDef, meta, loc: Loc, scope: _Scope, prev: str,
                     full: str) -> list[tuple[str, str]] | None:
        """The block's inputs, (declared name, full name of the layer given) in declared order, or None
        when `inputs` does not fit the block (reported). Without `inputs`, the first input is the previous
        layer; `inputs: [a, b]` lists them all, `inputs: {skip: a}` names some (the first defaults to the
        previous layer)."""
        declared = block.inputs or [INPUT]
        given, where = meta.get("inputs"), loc_of(meta, "inputs", loc)
        names = ", ".join(declared)
        takes = f"block '{kind}' takes {len(declared)} input{'s' if len(declared) > 1 else ''} ({names})"
        example = f"`inputs: {{{declared[-1]}: <layer name>}}`"
        if given is None:
            if len(declared) > 1:
                self.fail(f"{takes}, received 1 (the previous layer)", loc, full,
                          f"name the others: {example} (the first, {declared[0]}, is the previous layer unless "
                          f"named), or list all {len(declared)}: `inputs: [a, b]`")
                return None
            return [(declared[0], prev)]
        if isinstance(given, list) and all(isinstance(x, str) for x in given):
            if len(given) != len(declared):
                self.fail(f"{takes}, received {len(given)}: {show(given)}", where, full,
                          f"list {len(declared)} layer names, one for each of {names}, or name some: {example}")
                return None
            refs = [(d, ref, loc_of(given, i, where)) for i, (d, ref) in enumerate(zip(declared, given))]
        elif isinstance(given, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
            unknown = [k for k in given if k not in declared]
            for k in unknown:
                self.fail(f"block '{kind}' has no input '{k}'{did_you_mean(k, declared)}",
                          _within(key_loc_of(given, k, where), where), full, f"'{kind}' takes: {names}")
            meant = {closest(k, declared) for k in unknown}  # a misspelt input is reported once, as the misspelling
            missing = [d for d in declared[1:] if d not in given and d not in meant]
            if missing:
                self.fail(f"{takes}; `inputs` does not name {', '.join(missing)}", where, full,
                          f"add `{missing[0]}: <layer name>` to `inputs`")
            if unknown or missing:
                return None
            refs = [(d, given[d], loc_of(given, d, where)) if d in given else (d, None, loc) for d in declared]
        else:
            self.fail(f"`inputs` of block '{kind}' must list layer names or map its inputs to layer names, "
                      f"received {show(given)}", where, full,
                      f"write `inputs: [a, b]`, or name them: {example}")
            return None
        out = []
        for declared_name, ref, at in refs:
            target = prev if ref is None else scope.resolve(ref)
            if target is None:
                visible = [n for n in scope.visible() if scope.resolve(n) != full]
                self.fail(f"unknown layer name '{str(ref)[:80]}'{did_you_mean(ref, visible)}", at, full,
                          fix=f"give a layer defined before the block: {', '.join(visible[:12])}"
                              f"{', ...' if len(visible) > 12 else ''}")
                return None
            out.append((declared_name, target))
        return out

    def resolve(self) -> None:
        unknown = 0
        for node, refs, scope, prev in self.pending:
            inputs = []
            for ref, where, is_full in refs:
                if is_full:  # a branch output
                    inputs.append(ref)
                    continue
                full = scope.resolve(ref)
                if full is None:
                    unknown += 1
                    if unknown > MAX_SUGGESTIONS:  # each suggestion searches every name: a few, not thousands
                        self.fail(f"unknown layer name '{str(ref)[:80]}'", where, node.name,
                                  fix="refer to a layer named in this block or above it")
                        continue
                    visible = [n for n in scope.visible() if scope.resolve(n) != node.name]
                    shown = ", ".join(visible[:12]) + (", ..." if len(visible) > 12 else "")
                    self.fail(f"unknown layer name '{str(ref)[:80]}'{did_you_mean(ref, visible)}", where, node.name,
                              fix=f"refer to a layer named in this block or above it: {shown} (`input` is the "
                                  "input of the network, or of the block)")
                    continue
                inputs.append(full)
            node.inputs = inputs if refs else [prev]


def expand(doc, file: str) -> Spec:
    """Validate the document's structure and expand it; raise SpecError with every problem found."""
    col = Collector()
    top = Loc(file, 1, 1)
    if not isinstance(doc, YMap):
        kind = "empty" if doc is None else "a list" if isinstance(doc, list) else f"the single value {show(doc)}"
        col.add("invalid-spec", f"a spec must be a mapping with `input` and `layers`, the file is {kind}", top,
                fix="start from a sample: `input: [3, 224, 224]` and `layers: [...]`")
        col.raise_if_any()
    try:
        parsed = SpecDoc.model_validate(doc)
    except ValidationError as exc:
        pydantic_problems(col, exc, doc, doc.loc, "the spec", None, SpecDoc.model_fields, noun="key")
        failed = {e["loc"][0] for e in exc.errors() if e["loc"]}
        if failed & {"layers", "blocks"}:
            col.raise_if_any()
        # the layers can still be checked: report their problems too
        parsed = SpecDoc.model_construct(**{k: v for k, v in doc.items() if k in SpecDoc.model_fields and
                                            k not in failed})
    blocks = {}
    for bname, raw in parsed.blocks.items():
        where = loc_of(doc["blocks"], bname, top)
        if bname in CATALOGUE or bname == RUN:
            col.add("invalid-spec", f"block name '{bname}' is a layer type" if bname in CATALOGUE else
                    f"block name '{bname}' is reserved for runs of entries (`- layers: [...]`)",
                    key_loc_of(doc["blocks"], bname, where), fix=f"rename the block, e.g. '{bname}_block'")
        if not isinstance(raw, YMap):
            col.add("invalid-spec", f"block '{bname}' must be a mapping with `layers` (and `args`), received "
                    f"{show(raw)}", where, fix=f"write `{bname}: {{args: {{...}}, layers: [...]}}`")
            continue
        try:
            blocks[bname] = BlockDef.model_validate(raw)
        except ValidationError as exc:
            pydantic_problems(col, exc, raw, where, f"block '{bname}'", None, BlockDef.model_fields, noun="key")
            continue
        if INDEX in blocks[bname].args:
            col.add("invalid-spec", f"block '{bname}' declares an argument '{INDEX}', a name the language keeps for "
                    "the number of a repetition (`${index}` in a repeated entry)",
                    key_loc_of(raw["args"], INDEX, loc_of(raw, "args", where)), fix="rename the argument")
    if len(blocks) < len(parsed.blocks):
        col.raise_if_any()  # layers using a broken block would only repeat its problems
    for owner in [doc, *parsed.blocks.values()]:
        if len(owner["layers"]) > MAX_LAYERS:  # refused before any work
            col.add("invalid-spec", f"{len(owner['layers']):,} layers are listed here; archcheck accepts at most "
                    f"{MAX_LAYERS:,}", loc_of(owner, "layers", top),
                    fix="use blocks and `repeat`, or split the network: no real network has this many layers")
            col.raise_if_any()

    expander = _Expander(file, blocks, doc.get("blocks", {}), col)
    root = _Scope("", INPUT)
    input_node = Node(INPUT, Input(), [], loc_of(doc, "input", top))
    expander.nodes.append(input_node)
    expander.by_name[INPUT] = input_node
    last = expander.sequence(doc["layers"], doc["layers"].locs, root, INPUT, {}, (), None, 0)
    expander.resolve()

    outputs = [last]
    if parsed.outputs:
        outputs = []
        for i, ref in enumerate(parsed.outputs):
            full = root.resolve(ref) or (ref if ref in expander.by_name else None)
            if full is None:
                col.add("invalid-spec", f"unknown output layer '{ref}'{did_you_mean(ref, expander.by_name)}",
                        loc_of(doc["outputs"], i, top), fix="list names of layers defined in `layers`")
            elif full in outputs:
                col.add("invalid-spec", f"'{ref}' is listed twice in `outputs`", loc_of(doc["outputs"], i, top),
                        fix="list each output layer once")
            else:
                outputs.append(full)
    if last == INPUT and not col.problems:
        col.add("invalid-spec", "the spec has no layers (every entry was dropped by `when` or repeated 0 times)",
                loc_of(doc, "layers", top), fix="add at least one layer")
    output = _output(parsed.output, doc, top, col)
    col.raise_if_any()
    name = parsed.name or Path(file).stem
    return Spec(name, file, tuple(parsed.input), expander.nodes, outputs, parsed.classes, parsed.description,
                dict(parsed.metadata), output)


def _output(written, doc, top: Loc, col: Collector) -> Output | None:
    """The ``output`` key as an Output: a kind, or ``{kind, range}`` where a range is a real interval and
    belongs to regression."""
    if written is None:
        return None
    at = loc_of(doc, "output", top)
    if not isinstance(written, dict):
        if written not in get_args(OutputKind):
            col.add("invalid-spec", f"the spec key 'output' received {show(written)}, expected {OUTPUT_EXPECTED}"
                    f"{did_you_mean(written, get_args(OutputKind)) if isinstance(written, str) else ''}", at,
                    fix="write `output: logits` when the loss applies softmax or sigmoid itself (PyTorch's "
                        "CrossEntropyLoss), `probabilities` for softmax outputs, `binary` for sigmoid outputs, "
                        "`regression` for real values (`{kind: regression, range: [low, high]}` when bounded)")
            return None
        return Output(written)
    try:
        written = OutputDoc.model_validate(written)
    except ValidationError as exc:
        pydantic_problems(col, exc, doc["output"], at, "`output`", None, OutputDoc.model_fields, noun="key")
        return None
    if written.range is None:
        return Output(written.kind)
    where = loc_of(doc["output"], "range", top)
    low, high = written.range
    if written.kind != "regression":
        col.add("invalid-spec", f"`output` gives a range for {written.kind} outputs, whose range is fixed",
                where, fix="remove `range`, or use `kind: regression` for real-valued targets")
    elif not low < high:
        col.add("invalid-spec", f"`output` range [{low:g}, {high:g}] is empty: its low end must be below its high "
                f"end", where, fix="write `range: [low, high]` with low < high (.inf for no bound)")
    return Output(written.kind, (low, high))


def bind(node: Node, shape_of, col: Collector) -> Node | None:
    """The node with its layer made from its recipe, now that shapes are known (``shape_of(name)``
    gives a layer's output shape, None if not known); None when its arguments do not fit (reported
    to ``col``). A value reads ``input`` as its layer's own input, or as the input of the block it
    was passed to."""
    failed = False

    def compute(v: Deferred):
        anchor = v.anchor or (node.inputs[0] if len(node.inputs) == 1 else None)
        if anchor is None:
            raise expr.ExprError(f"{show(v.text)} reads the incoming shape, but {node.type} has {len(node.inputs)} "
                                 "inputs", "read the shape in a block argument, where `input` is the block's input, "
                                           "or write the value")
        shape = shape_of(anchor)
        if shape is None:
            raise expr.ExprError(f"{show(v.text)} reads the shape of '{anchor}', which is not known before this "
                                 "layer", "make the layer depend on it, or pass the value as an argument")
        env = {k: compute(a) if isinstance(a, Deferred) else a for k, a in v.env.items()}
        return expr.substitute(v.text, {**env, expr.SHAPE: shape})

    def concrete(v, key: str):
        nonlocal failed
        if not isinstance(v, Deferred):
            return _mapped(v, lambda item: concrete(item, key))
        try:
            return compute(v)
        except expr.ExprError as exc:
            failed = True
            col.add("invalid-spec", f"{node.type} argument '{key}': {exc.message}", v.loc, node.name, exc.fix)
            return None

    args = node.recipe.args
    written = _mapped(args, lambda v: v)
    for key in args:
        written[key] = concrete(args[key], key)
    if failed:
        return None
    try:
        layer = node.recipe.cls.model_validate(written)
    except ValidationError as exc:
        _validation_problems(col, exc, written, node.loc, node.type, node.name, node.recipe.cls)
        return None
    return replace(node, layer=layer, recipe=None)


def load_spec(path) -> Spec:
    """Read, validate and expand a spec file (YAML or JSON)."""
    return expand(load_file(path), str(path))
