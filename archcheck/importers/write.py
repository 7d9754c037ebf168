"""Write a flat spec document (every layer listed, as an importer makes it) as a spec a person keeps.

How (docs/import.md says it for readers):

1. *Series-parallel decomposition.* The layers, in order, are cut where a single layer carries everything
   that later layers read. Between two cuts lies one layer, or a region from a fork to the merge that
   ends it (a residual block, an Inception module); a region whose merge inputs come from disjoint sets
   of layers becomes a merge with branches (``[]`` for a shortcut), each branch decomposed the same way.
   What does not decompose (a U-Net's long skips) is written layer by layer with ``name`` and ``inputs``.
   The result is an ordered tree, so two parts have the same structure exactly when their canonical
   keys (types and branch shapes, not argument values) are equal: no graph hashing or isomorphism
   search is needed, and the work is linear in the layers.
2. *Blocks.* Runs of items with equal keys, wherever they occur (the top level, branches, block
   bodies), are counted; the run that saves the most lines becomes a block. Argument values equal in
   every instance are written in the block; those that differ become block arguments (one argument per
   distinct column of values, an integer multiple of another written as ``${filters * 4}``, the most
   common value as its default). Consecutive identical uses become one ``repeat``, and the search goes
   on over the new items, so blocks nest (a stage: a projecting block, then a repeated block).
3. *Check.* The text is expanded again and matched layer by layer to the flat document (type,
   arguments, inputs): that gives the flat name -> expanded name map for renaming weights, and proves
   the text builds the same network.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from archcheck.importers.flat import entries
from archcheck.layers import CATALOGUE
from archcheck.spec import INPUT, RUN

MAX_RUN = 24  # items in a candidate block: long enough for any real block, and keeps the search linear
MIN_SAVING = 3  # lines a block must save to be made: a block of two or three layers used twice is noise
GENERIC = {"layer", "layers", "block", "blocks", "features", "feature", "model", "module", "net", "network",
           "seq", "sequential", "stage", "stages", "body", "main", "backbone", "trunk", "op", "ops", "x", "node"}
SHORT = {"batchnorm": "bn", "convtranspose": "upconv", "globalavgpool": "pool", "maxpool": "pool",
         "avgpool": "pool", "dense": "fc", "layernorm": "ln", "groupnorm": "gn"}


@dataclass(frozen=True)
class Param:
    """A block argument's value inside the block: ``$name``."""

    name: str


@dataclass(frozen=True)
class Scaled:
    """A block argument times a whole number, ``${name * factor}``, or halved, ``${name // 2}``
    (``factor`` 0: a kernel's 'same' padding)."""

    name: str
    factor: int


@dataclass(eq=False)
class Item:
    """One entry of a written sequence: a layer, a merge with branches, or the use of a block."""

    kind: str  # "layer", "merge" or "use"
    type: str  # the layer type or the block's name
    args: dict
    covers: list[str]  # the flat names of the layers it makes, in order
    branches: list[list[Item]] | None = None
    name: str | None = None  # written `name`
    inputs: list[str] | None = None  # written `inputs`
    repeat: object = 1  # uses only: a count, or a Param inside a block

    @property
    def out(self) -> str:
        return self.covers[-1]


@dataclass
class Block:
    name: str
    args: dict  # argument -> default (None: required)
    layers: list[Item]
    what: str  # a comment: the instances' source names


@dataclass
class _Net:
    """The flat layers as the writer reads them."""

    kind: dict[str, str] = field(default_factory=dict)
    args: dict[str, dict] = field(default_factory=dict)  # without defaults
    inputs: dict[str, list[str]] = field(default_factory=dict)
    pos: dict[str, int] = field(default_factory=dict)
    last_use: dict[str, float] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    needed: set = field(default_factory=set)  # names written references need


def compact(doc: dict, header: list[str] = (), names_out: dict | None = None) -> str:
    """The YAML text of a spec equivalent to the flat ``doc``, with blocks, ``repeat`` and branches.

    ``header`` lines open the file as comments (where the model came from). ``names_out``, when given,
    receives flat layer name -> the layer's name in the expanded spec (to rename weights keyed by
    flat names)."""
    net = _read(doc)
    order = list(net.kind)
    items = _sequence(net, order, INPUT)
    written = _name_needed(items, net)
    blocks: dict[str, Block] = {}
    _find_blocks(items, blocks)
    outputs = [written.get(o, o) for o in doc.get("outputs") or [order[-1]]]
    text = _render({**doc, "outputs": outputs}, header, items, blocks, len(order))
    mapping = _match(doc, net, text)
    if names_out is not None:
        names_out.update(mapping)
    return text


# -- reading ---------------------------------------------------------------------------------
def _canonical(kind: str, args, name: str) -> dict:
    cls = CATALOGUE.get(kind)
    if cls is None:
        raise ValueError(f"flat layer '{name}' has the unknown type '{kind}'")
    if not isinstance(args, dict):
        args = {cls.shorthand: args}
    layer = cls.model_validate(args)
    return layer.model_dump(exclude_defaults=True, by_alias=True)


def _read(doc: dict) -> _Net:
    net = _Net()
    for i, (name, kind, args, inputs) in enumerate(entries(doc)):
        net.kind[name], net.args[name], net.inputs[name], net.pos[name] = kind, _canonical(kind, args, name), \
            inputs, i
    net.pos[INPUT] = -1
    for name, ins in net.inputs.items():
        for x in ins:
            net.last_use[x] = max(net.last_use.get(x, -1), net.pos[name])
            net.consumers.setdefault(x, []).append(name)
    order = list(net.kind)
    outputs = list(doc.get("outputs") or [order[-1]])
    for o in outputs:
        if o not in net.kind:
            raise ValueError(f"flat output '{o}' is not a layer")
        if outputs != [order[-1]]:
            net.needed.add(o)  # `outputs` names it
        if o != order[-1]:
            net.last_use[o] = float("inf")  # read after the last layer: no cut after it
    return net


# -- 1. decomposition into sequences and branches -----------------------------------------------
def _sequence(net: _Net, nodes: list[str], entry: str) -> list[Item]:
    """``nodes`` (in order, all reached from ``entry``) as a sequence of items."""
    local = {n: i for i, n in enumerate(nodes)}
    items, start, reach = [], 0, -1
    # reach: the furthest position (within nodes) read by entry or the nodes before the current one
    for i in range(len(nodes)):
        u = (entry if start == 0 else nodes[start - 1]) if i == start else nodes[i - 1]
        reach = max(reach, _last_local(net, u, local))
        if reach <= i:  # a cut: nodes[start:i+1] hang between the previous cut and n
            seg_entry = entry if start == 0 else nodes[start - 1]
            items += _segment(net, nodes[start:i + 1], seg_entry)
            start, reach = i + 1, -1
    if start != len(nodes):  # outputs read after the end keep the last region open
        items += _fallback(net, nodes[start:], entry if start == 0 else nodes[start - 1])
    return items


def _last_local(net: _Net, u: str, local: dict) -> float:
    if net.last_use.get(u) == float("inf"):
        return float("inf")
    return max((local[c] for c in net.consumers.get(u, ()) if c in local), default=-1)


def _segment(net: _Net, seg: list[str], entry: str) -> list[Item]:
    exit_ = seg[-1]
    kind = net.kind[exit_]
    if len(seg) == 1 and all(x == entry for x in net.inputs[exit_]):
        if len(net.inputs[exit_]) == 1:
            return [Item("layer", kind, net.args[exit_], [exit_])]
        return [Item("merge", kind, net.args[exit_], [exit_], [[] for _ in net.inputs[exit_]])]
    if CATALOGUE[kind].max_inputs > 1:
        inside = set(seg[:-1])
        sets = []
        for x in net.inputs[exit_]:
            found, todo = set(), [x] if x != entry else []
            while todo:
                u = todo.pop()
                if u in found:
                    continue
                found.add(u)
                todo += [v for v in net.inputs[u] if v != entry]
            sets.append(found)
        if all(s <= inside for s in sets) and sum(map(len, sets)) == len(inside) and set().union(*sets) == inside:
            branches = [_sequence(net, [n for n in seg[:-1] if n in s], entry) for s in sets]
            return [Item("merge", kind, net.args[exit_], seg, branches)]
    return _fallback(net, seg, entry)


def _fallback(net: _Net, seg: list[str], entry: str) -> list[Item]:
    """Layer by layer, with ``inputs`` where a layer reads other than the one before it."""
    items, prev = [], entry
    for n in seg:
        item = Item("layer", net.kind[n], net.args[n], [n])
        if net.inputs[n] != [prev]:
            item.inputs = list(net.inputs[n])
            net.needed.update(net.inputs[n])
        items.append(item)
        prev = n
    return items


def _walk(items: list[Item]):
    for item in items:
        yield item
        for branch in item.branches or ():
            yield from _walk(branch)


def _name_needed(items: list[Item], net: _Net) -> dict[str, str]:
    """Write ``name`` on the items whose output something refers to; return flat name -> written name.

    A written name is a valid spec name (letters, digits and '_', no dots: ONNX's ``/layer1/conv/Conv``
    becomes ``layer1_conv_Conv``), unique, and never one archcheck would make itself (``conv_3``), which
    could meet an unnamed layer of the same type."""
    written, taken = {INPUT: INPUT}, {INPUT}
    for flat in sorted(net.needed - {INPUT}, key=net.pos.__getitem__):
        name = re.sub(r"[^A-Za-z0-9_]+", "_", flat).strip("_")[:100] or "layer"
        if re.fullmatch(r"[A-Za-z0-9]+_\d+", name) or name in taken:
            name = f"{name}_x"
        while name in taken:
            name += "x"
        written[flat] = name
        taken.add(name)
    for item in _walk(items):
        if item.out in written and item.out != INPUT:
            item.name = written[item.out]
        if item.inputs is not None:
            item.inputs = [written[x] for x in item.inputs]
    return written


# -- 2. blocks ------------------------------------------------------------------------------------
def _sequences(items: list[Item], blocks: dict[str, Block]) -> list[list[Item]]:
    out = []

    def visit(seq):
        out.append(seq)
        for item in seq:
            for branch in item.branches or ():
                visit(branch)

    visit(items)
    for block in blocks.values():
        visit(block.layers)
    return out


def _key(item: Item, memo: dict) -> tuple:
    if id(item) not in memo:
        if item.inputs is not None and len(item.inputs) > 1:
            memo[id(item)] = ("fixed", id(item))  # reads named layers: written where it is
        elif item.kind == "merge":
            memo[id(item)] = ("merge", item.type, item.name is not None, tuple(
                tuple(_key(i, memo) for i in branch) for branch in item.branches))
        else:
            memo[id(item)] = (item.kind, item.type, item.name is not None, item.inputs is not None)
    return memo[id(item)]


def _lines(item: Item) -> int:
    n = 1 + (item.name is not None) + (item.inputs is not None) + (item.repeat != 1)
    if item.kind == "merge":
        n += sum(max(1, sum(map(_lines, b))) for b in item.branches) + 2 * bool(item.args)
    return n


def _find_blocks(items: list[Item], blocks: dict[str, Block]) -> None:
    while True:
        _collapse_runs(_sequences(items, blocks))
        seqs = _sequences(items, blocks)
        memo, ids = {}, {}
        tokens = [[ids.setdefault(_key(i, memo), len(ids)) for i in seq] for seq in seqs]
        lines = [[_lines(i) for i in seq] for seq in seqs]
        found: dict[tuple, list[tuple[int, int]]] = {}
        for s, toks in enumerate(tokens):
            for i in range(len(toks)):
                for length in range(1, min(MAX_RUN, len(toks) - i) + 1):
                    if length > 1 and (seqs[s][i + length - 2].name is not None
                                       or seqs[s][i + length - 1].inputs is not None):
                        break  # a name inside, or `inputs` past the first item: not a block
                    found.setdefault(tuple(toks[i:i + length]), []).append((s, i))
        best = None
        for key, places in found.items():
            if any(len(key) % p == 0 and key == key[:p] * (len(key) // p) for p in range(1, len(key))):
                continue  # a run of a shorter block: that block, repeated, says it better
            chosen, end = [], {}
            for s, i in places:
                if i >= end.get(s, 0):
                    chosen.append((s, i))
                    end[s] = i + len(key)
            if len(chosen) < 2:
                continue
            s0, i0 = chosen[0]
            first, last = seqs[s0][i0], seqs[s0][i0 + len(key) - 1]
            if len(key) == 1 and first.kind == "use":
                continue  # a block of one block
            # the lines the block's body takes: a name or inputs stay at the use
            size = sum(lines[s0][i0:i0 + len(key)]) - (last.name is not None) - (first.inputs is not None)
            saving = len(chosen) * size - (size + 3 + len(chosen))
            rank = (saving, len(key), _starts_well(seqs[s0][i0]), -s0, -i0)
            if saving >= MIN_SAVING and (best is None or rank > best[0]):
                best = (rank, len(key), chosen)
        if best is None:
            return
        _, length, chosen = best
        _make_block([(seqs[s], i) for s, i in chosen], length, blocks)


def _starts_well(item: Item) -> bool:
    """Of two equally good runs shifted by one, the one starting at a block, a merge or a layer with weights
    (``add, relu`` rather than ``relu, add``; ``conv, bn, relu`` rather than ``bn, relu, conv``)."""
    return item.kind != "layer" or CATALOGUE[item.type].weighted


def _collapse_runs(seqs: list[list[Item]]) -> None:
    """Consecutive uses of a block with the same arguments: one use, repeated."""
    for seq in seqs:
        i = 0
        while i + 1 < len(seq):
            a, b = seq[i], seq[i + 1]
            if (a.kind == b.kind == "use" and a.type == b.type and a.args == b.args and a.name is None
                    and b.inputs is None and isinstance(a.repeat, int) and isinstance(b.repeat, int)
                    and a.inputs is None):
                seq[i:i + 2] = [Item("use", a.type, a.args, a.covers + b.covers, name=b.name,
                                     repeat=a.repeat + b.repeat)]
            else:
                i += 1


def _default(item: Item, key: str, blocks: dict[str, Block]):
    if item.kind == "use":
        return 1 if key == "repeat" else blocks[item.type].args[key]
    info = next((f for n, f in CATALOGUE[item.type].model_fields.items() if (f.alias or n) == key), None)
    return None if info is None or info.is_required() else info.default


def _slots(occurrences: list[list[Item]], blocks) -> list[tuple[list[Item], str, list]]:
    """The argument values of equal-keyed runs, walked together: (the items at one place, key, values)."""
    out = []

    def visit(group: list[Item]):
        keys = sorted(dict.fromkeys(k for it in group for k in it.args), key=lambda k: _order(group[0], k, blocks))
        for k in keys:
            out.append((group, k, [it.args.get(k, _default(it, k, blocks)) for it in group]))
        if group[0].kind == "use":
            out.append((group, "repeat", [it.repeat for it in group]))
        for b in range(len(group[0].branches or ())):
            for j in range(len(group[0].branches[b])):
                visit([it.branches[b][j] for it in group])

    for j in range(len(occurrences[0])):
        visit([occ[j] for occ in occurrences])
    return out


def _make_block(chosen: list[tuple[list[Item], int]], length: int, blocks: dict[str, Block]) -> None:
    occurrences = [seq[i:i + length] for seq, i in chosen]
    params: dict[str, tuple] = {}  # name -> the column of values it stands for
    defaults: dict[str, object] = {}
    values: dict[tuple[int, str], object] = {}  # (id of the first instance's item, key) -> value in the block
    for group, key, column in _slots(occurrences, blocks):
        inner = any(isinstance(v, (Param, Scaled)) for v in column)  # an enclosing block's argument: pass it on
        if not inner and all(v == column[0] and type(v) is type(column[0]) for v in column[1:]):
            values[id(group[0]), key] = column[0]
            continue
        column = tuple(column)
        same = next((p for p, c in params.items() if c == column), None)
        if same is None:
            related = next(((p, f) for p, c in params.items() if (f := _relation(c, column)) is not None), None)
            if related is not None:
                values[id(group[0]), key] = Scaled(*related)
                continue
            base = "n" if key == "repeat" else re.sub(r"_\d+$", "", key)  # `filters_2` passed on: filters_3
            same, k = base, 2
            while same in params:
                same, k = f"{base}_{k}", k + 1
            params[same] = column
            counts = Counter(map(repr, column))  # values may be lists
            shown, count = counts.most_common(1)[0]
            top = next(v for v in column if repr(v) == shown)
            ties = sum(1 for c in counts.values() if c == count)
            defaults[same] = top if count > 1 and ties == 1 and not isinstance(top, (Param, Scaled)) else None
        values[id(group[0]), key] = Param(same)
    name = _block_name(occurrences, blocks)
    body = [_template(item, values, blocks) for item in occurrences[0]]
    body[0].inputs, body[-1].name = None, None
    where = list(dict.fromkeys(filter(None, (_common(o) for o in occurrences))))
    blocks[name] = Block(name, defaults, body, ", ".join(where) if len(where) <= 3 else
                         f"{where[0]}, {where[1]} ... {where[-1]} ({len(occurrences)} instances)")
    for (seq, i), occ, n in sorted(zip(chosen, occurrences, range(len(chosen))), key=lambda c: -c[0][1]):
        args = {p: c[n] for p, c in params.items() if c[n] != defaults[p] or defaults[p] is None}
        seq[i:i + length] = [Item("use", name, args, [c for it in occ for c in it.covers], name=occ[-1].name,
                                  inputs=occ[0].inputs)]


def _relation(base: tuple, column: tuple) -> int | None:
    """How ``column`` follows from ``base``: a whole multiple (the factor), half (0), or not (None)."""
    if not all(type(v) is int and v >= 0 for v in base + column) or len(set(base)) < 2:
        return None
    if all(c == b // 2 for b, c in zip(base, column)):
        return 0
    factor = column[0] // base[0] if base[0] else 0
    return factor if factor >= 2 and all(c == b * factor for b, c in zip(base, column)) else None


def _template(item: Item, values: dict, blocks) -> Item:
    args = {}
    for key in item.args.keys() | {k for (i, k) in values if i == id(item)}:
        if (id(item), key) in values and key != "repeat":
            v = values[id(item), key]
            if isinstance(v, (Param, Scaled)) or v != _default(item, key, blocks):
                args[key] = v
    ordered = {k: args[k] for k in sorted(args, key=lambda k: _order(item, k, blocks))}
    branches = [[_template(i, values, blocks) for i in b] for b in item.branches] if item.branches is not None \
        else None
    repeat = values.get((id(item), "repeat"), item.repeat) if item.kind == "use" else 1
    return Item(item.kind, item.type, ordered, item.covers, branches, item.name, item.inputs, repeat)


def _order(item: Item, key: str, blocks) -> int:
    names = list(blocks[item.type].args) if item.kind == "use" else \
        [f.alias or n for n, f in CATALOGUE[item.type].model_fields.items()]
    return names.index(key) if key in names else len(names)


def _common(occurrence: list[Item]) -> str:
    """The source names' common part for one instance (``layer1_0`` for ``layer1_0_conv1``...)."""
    parts = [re.split(r"[._]", c) for it in occurrence for c in it.covers]
    common = []
    for column in zip(*parts):
        if any(p != column[0] for p in column):
            break
        common.append(column[0])
    if common and len(common) < min(map(len, parts)) and not re.search(r"\d", common[-1]):
        common.pop()  # `stage_1_bottleneck_1...`, `stage_1_bottleneck_2...`: the instance is `stage_1`
    return "_".join(common)


def _block_name(occurrences: list[list[Item]], blocks: dict[str, Block]) -> str:
    words = []
    for occ in occurrences:
        parts = [p for p in _common(occ).split("_") if p]
        while parts and re.search(r"\d", parts[-1]):
            parts.pop()
        word = []  # the words after the last numbered one: `inverted_residual` in `stage_2_inverted_residual_1`
        while parts and not re.search(r"\d", parts[-1]):
            word.insert(0, parts.pop())
        if not word and parts:  # torch's `layer1`: the word without its number
            word = [re.sub(r"\d+$", "", parts[-1])]
        words.append("_".join(word).lower())
    top = Counter(words).most_common(1)[0] if words else ("", 0)
    name = top[0] if 2 * top[1] >= len(occurrences) else ""  # what most instances are called
    if not re.fullmatch(r"[a-z][a-z_]{2,}", name) or name in GENERIC or name in CATALOGUE:
        name = _structural_name(occurrences[0])
    base, k = name, 2
    while name in blocks or name in CATALOGUE or name == RUN:
        name, k = f"{base}_{k}", k + 1
    return name


def _structural_name(items: list[Item]) -> str:
    merges = [i for i in items if i.kind == "merge"]
    uses = [i for i in items if i.kind == "use"]
    if len(items) > 1 and any(u.repeat != 1 for u in uses):
        return "stage"
    if merges:
        m = merges[0]
        if m.type == "add":
            return "residual" if any(not b for b in m.branches) else "residual_proj"
        return {"concat": "mixed", "multiply": "gate"}.get(m.type, m.type + "_block")
    names = [SHORT.get(i.type, i.type) for i in items]
    return "_".join(dict.fromkeys(names)) if len(set(names)) <= 3 else f"{names[0]}_block"


# -- rendering --------------------------------------------------------------------------------
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _scalar(v) -> str:
    if isinstance(v, Param):
        return f"${v.name}"
    if isinstance(v, Scaled):
        return f'"${{{v.name} * {v.factor}}}"' if v.factor else f'"${{{v.name} // 2}}"'
    if v is None:
        return "~"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return ".inf" if v == float("inf") else "-.inf" if v == float("-inf") else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_scalar(x)}" for k, x in v.items()) + "}"
    text = str(v)
    if _PLAIN.fullmatch(text) and text.lower() not in ("true", "false", "null"):
        return text
    return json.dumps(text)


def _head(item: Item) -> str:
    args = item.args
    cls = CATALOGUE.get(item.type) if item.kind != "use" else None
    if not args:
        return item.type
    if cls is not None and cls.shorthand and list(args) == [cls.shorthand] and not isinstance(
            args[cls.shorthand], (dict, list)):
        return f"{item.type}: {_scalar(args[cls.shorthand])}"
    return f"{item.type}: {_scalar(args)}"


def _emit(items: list[Item], indent: int, comments: bool) -> list[str]:
    pad, out = " " * indent, []
    for item in items:
        meta = []
        if item.name is not None:
            meta.append(f"name: {_scalar(item.name)}")
        if item.inputs is not None:
            meta.append(f"inputs: {_scalar(item.inputs)}")
        if item.repeat != 1:
            meta.append(f"repeat: {_scalar(item.repeat)}")
        note = ""
        if comments and item.kind == "use":
            note = _common([item])
        elif comments and item.kind == "layer" and item.name is None and item.out != item.type \
                and not re.search(rf"(^|_){item.type}_\d+$", item.out):  # `stage_1_conv_2` tells nothing
            note = item.out
        note = f"  # {note}" if note else ""
        if item.kind == "merge":
            out.append(f"{pad}- {item.type}:{note}")
            inner = indent + 4
            if item.args:
                for k, v in item.args.items():
                    out.append(f"{' ' * inner}{k}: {_scalar(v)}")
                out.append(f"{' ' * inner}branches:")
                inner += 2
            for branch in item.branches:
                if not branch:
                    out.append(f"{' ' * inner}- []")
                    continue
                lines = _emit(branch, inner + 2, False)
                lines[0] = f"{' ' * inner}- - {lines[0].lstrip()[2:]}"
                out += lines
        else:
            head = _head(item)
            out.append(f"{pad}- {head}{':' if meta and ':' not in head else ''}{note}")
        out += [f"{pad}  {m}" for m in meta]
    return out


def _render(doc: dict, header, items: list[Item], blocks: dict[str, Block], n: int) -> str:
    lines = [f"# {h}".rstrip() for line in header for h in str(line).splitlines() or [""]] or [
        f"# Written by archcheck from a flat list of {n} layers: repeated structure became blocks."]
    lines.append(f"name: {_scalar(doc.get('name') or 'model')}")
    for key in ("description", "input", "classes", "output", "metadata"):
        if doc.get(key) is not None and doc.get(key) != {}:
            lines.append(f"{key}: {_scalar(doc[key])}")
    if blocks:
        lines.append("blocks:")
        for block in blocks.values():
            lines.append(f"  {block.name}:{f'  # {block.what}' if block.what else ''}")
            if block.args:
                lines.append(f"    args: {_scalar(block.args)}")
            lines.append("    layers:")
            lines += _emit(block.layers, 6, False)
    lines.append("layers:")
    lines += _emit(items, 2, True)
    outputs = doc.get("outputs")
    if outputs and len(outputs) > 1 or outputs and outputs[0] != items[-1].out:
        lines.append(f"outputs: {_scalar(list(outputs))}")
    return "\n".join(lines) + "\n"


# -- 3. check ------------------------------------------------------------------------------------
def _match(doc: dict, net: _Net, text: str) -> dict[str, str]:
    """flat name -> expanded name, by walking the expanded text in graph order and finding each layer's
    flat twin (same type, arguments and inputs); raises if the text is not the flat network."""
    from archcheck.graph import build_graph
    from archcheck.spec import expand
    from archcheck.yamlsrc import load_text

    spec = expand(load_text(text, "<compact>"), "<compact>")
    twins: dict[tuple, list[str]] = {}
    for name in reversed(list(net.kind)):
        twins.setdefault((net.kind[name], _json(net.args[name]), tuple(net.inputs[name])), []).append(name)
    back = {INPUT: INPUT}
    for node in build_graph(spec).order[1:]:
        key = (node.type, _json(node.layer.model_dump(exclude_defaults=True, by_alias=True)),
               tuple(back.get(i, "?") for i in node.inputs))
        if not twins.get(key):
            raise AssertionError(f"the written spec's layer '{node.name}' has no twin in the flat document")
        back[node.name] = twins[key].pop()
    if len(back) != len(net.kind) + 1:
        raise AssertionError(f"the written spec has {len(back) - 1} layers, the flat document {len(net.kind)}")
    return {flat: expanded for expanded, flat in back.items() if flat != INPUT}


def _json(args: dict) -> str:
    return json.dumps(args, sort_keys=True, default=str)


def write_flat(doc: dict) -> str:
    """The flat document as YAML, one entry per layer with its name and inputs: what ``compact`` shortens."""
    items = []
    for name, kind, args, inputs in entries(doc):
        items.append(Item("layer", kind, _canonical(kind, args, name), [name], name=name,
                          inputs=list(inputs) if inputs != [items[-1].out if items else INPUT] else None))
    return _render({**doc, "outputs": doc.get("outputs")}, ["A flat spec: every layer listed."], items, {},
                   len(items))
