"""The architecture as a diagram: which boxes a picture of the layer graph shows, and its text forms.

A layer's dotted name says which block instances hold it (``stage_1.bottleneck_2.conv_1`` sits in
the blocks ``stage_1`` and ``stage_1.bottleneck_2``; a merge's numbered branches are not blocks).
Those blocks nest into a tree, and a picture of the network is a *view* of one block (the whole
network at the root) unfolded to some depth: blocks nested deeper are folded into one box each,
carrying their totals. A block with more direct parts than a picture can hold is cut into runs of
consecutive parts (``layers 1-500``), so a 10,000-layer chain is a few dozen boxes at the top.

``views`` picks the views a reader moves between: every depth of the root that stays within the
budget, then, for each block still folded in the most detailed of them, that block's own views;
every layer is drawn in at least one view. Mermaid and DOT text are written here (they need no
library); the drawn SVG and the report's interactive diagram are ``archcheck.render.drawing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcheck.propagate import Analysis
from archcheck.render.fmt import field as rf_text
from archcheck.render.fmt import human_bytes, shape, si

BUDGET = 400  # boxes in one view: what a reader can follow and Graphviz lays out in a blink
MERMAID_EDGES = 500  # mermaid's default maxEdges, which GitHub keeps
MERMAID_TEXT = 50_000  # mermaid's default maxTextSize
# The drawn layout, in inches as Graphviz takes them: a box holds three lines of text, a cluster's
# margin leaves room for its title.
WIDTH, HEIGHT, BLOCK_HEIGHT, STUB = 2.1, 0.62, 0.72, 0.28
NODESEP, RANKSEP, CLUSTER_MARGIN = 0.25, 0.32, 18  # the margin is in points


@dataclass
class Block:
    """A block instance (or a run of a crowded block's parts): its parts in execution order."""

    key: str
    label: str
    parent: str | None
    parts: list[str] = field(default_factory=list)  # layer names and block keys
    layers: list[str] = field(default_factory=list)  # every layer inside, in execution order


@dataclass
class Tree:
    analysis: Analysis
    blocks: dict[str, Block]  # "" is the root: the whole network
    owner: dict[str, str]  # layer name -> the innermost block holding it

    def is_block(self, key: str) -> bool:
        return key in self.blocks

    def path(self, key: str) -> list[str]:
        """The blocks from the root down to ``key`` (a block key or a layer name), both ends included."""
        chain = [key]
        parent = self.owner.get(key) if key not in self.blocks else self.blocks[key].parent
        while parent is not None:
            chain.append(parent)
            parent = self.blocks[parent].parent
        return chain[::-1]


def _owners(names: list[str]) -> dict[str, list[str]]:
    """Per layer, the block keys holding it from the outside in: the dotted prefixes that are not
    themselves layers (a merge is a layer; its branches' numbers are not blocks)."""
    layers = set(names)
    owners = {}
    for name in names:
        parts = name.split(".")
        owners[name] = [".".join(parts[:k]) for k in range(1, len(parts))
                        if not parts[k - 1].isdigit() and ".".join(parts[:k]) not in layers]
    return owners


def tree(analysis: Analysis) -> Tree:
    names = list(analysis.layers)
    blocks = {"": Block("", analysis.spec.name, None)}
    owner = {}
    for name, chain in _owners(names).items():
        parent = ""
        for key in chain:
            if key not in blocks:
                blocks[key] = Block(key, key.rsplit(".", 1)[-1], parent)
                blocks[parent].parts.append(key)
            parent = key
        blocks[parent].parts.append(name)
        owner[name] = parent
        for key in ["", *chain]:
            blocks[key].layers.append(name)
    for key in list(blocks):
        _split(blocks, owner, key)
    return Tree(analysis, blocks, owner)


def _split(blocks: dict[str, Block], owner: dict[str, str], key: str) -> None:
    """Cut a block with more parts than a view holds into runs of consecutive parts: each run is a block
    of its own (keys ``key#1``, ``key#2``, ...), and so on again while the runs are too many."""
    block = blocks[key]
    while len(block.parts) > BUDGET:
        size = BUDGET
        while -(-len(block.parts) // size) > BUDGET:
            size *= BUDGET
        runs, parts = [], block.parts
        for i in range(0, len(parts), size):
            run = Block(f"{key}#{len(runs) + 1}" if key else f"#{len(runs) + 1}", "", key, parts[i:i + size])
            for part in run.parts:
                if part in blocks:
                    blocks[part].parent = run.key
                    run.layers += blocks[part].layers
                else:
                    run.layers.append(part)
                    owner[part] = run.key
            run.label = f"layers {block.layers.index(run.layers[0]) + 1}\u2013{block.layers.index(run.layers[-1]) + 1}"
            blocks[run.key] = run
            runs.append(run.key)
        block.parts = runs


# -- views --------------------------------------------------------------------------------------------
@dataclass
class View:
    """Block ``scope`` unfolded ``depth`` levels: its parts, and theirs down to that depth; deeper blocks
    folded."""

    scope: str
    depth: int
    boxes: list[str]  # layer names and folded block keys, in execution order
    unfolded: list[str]  # blocks drawn open (clusters), outermost first
    deepest: bool  # nothing is folded: every layer of the scope is a box
    order: list[str]  # boxes and unfolded blocks as they come in the spec


def view(t: Tree, scope: str, depth: int) -> View:
    boxes, unfolded, folded, order = [], [], False, []
    stack = [(part, 1) for part in reversed(t.blocks[scope].parts)]
    while stack:
        part, level = stack.pop()
        order.append(part)
        if part not in t.blocks:
            boxes.append(part)
        elif level <= depth:
            unfolded.append(part)
            stack += [(p, level + 1) for p in reversed(t.blocks[part].parts)]
        else:
            boxes.append(part)
            folded = True
    return View(scope, depth, boxes, unfolded, not folded, order)


def views(t: Tree, scope: str = "", budget: int = BUDGET) -> list[View]:
    """The views of ``scope`` from folded to the most detail within ``budget`` boxes, then the views of the
    blocks still folded in the last of them, so that every layer is drawn somewhere."""
    out = [view(t, scope, 0)]
    while not out[-1].deepest:
        deeper = view(t, scope, out[-1].depth + 1)
        if len(deeper.boxes) > budget:
            break
        out.append(deeper)
    for box in out[-1].boxes:
        if box in t.blocks:
            out += views(t, box, budget)
    return out


@dataclass
class Edge:
    src: str  # a box, or "<" + layer name for a tensor coming from outside the scope
    dst: str  # a box, or ">" + layer name for a consumer outside the scope


def edges(t: Tree, v: View) -> list[Edge]:
    """The connections between a view's boxes (once per pair), and with the layers outside its scope."""
    graph = t.analysis.graph
    inside = set(t.blocks[v.scope].layers)
    box_of = {}
    for box in v.boxes:
        for name in (t.blocks[box].layers if box in t.blocks else [box]):
            box_of[name] = box
    seen, out = set(), []
    for name in t.blocks[v.scope].layers:
        dst = box_of[name]
        for src in graph.nodes[name].inputs:
            pair = (box_of[src] if src in inside else "<" + src, dst)
            if pair[0] != pair[1] and pair not in seen:
                seen.add(pair)
                out.append(Edge(*pair))
        for consumer in graph.consumers[name]:
            if consumer not in inside and (dst, ">" + consumer) not in seen:
                seen.add((dst, ">" + consumer))
                out.append(Edge(dst, ">" + consumer))
    return out


# -- what a box says ----------------------------------------------------------------------------------
FIGURES = {"params": "parameters", "macs": "MACs", "memory": "output memory", "rf": "receptive field r / S / P"}


@dataclass
class Facts:
    """What a box shows: its title, type and output shape, and the figures the reader picks between."""

    title: str
    kind: str  # the layer type, or "block"
    shape: str
    figures: dict[str, str]  # FIGURES key -> text
    layers: int  # 1 for a layer
    loc: str  # file:line where it is written


def facts(t: Tree, box: str, scope: str = "") -> Facts:
    a = t.analysis
    if box in t.blocks:
        b = t.blocks[box]
        last = a.layers[b.layers[-1]]
        params = sum(a.layers[n].params for n in b.layers)
        buffers = sum(a.layers[n].buffers for n in b.layers)
        macs = sum(a.layers[n].macs for n in b.layers)
        first = a.layers[b.layers[0]].node.loc
        return Facts(b.label or box, "block", shape(last.shape),
                     _figures(params, buffers, macs, last.out_bytes, last.rf), len(b.layers),
                     f"{first.file}:{first.line}" if first else "")
    f = a.layers[box]
    title = box[len(scope) + 1:] if scope and box.startswith(scope + ".") else box
    loc = f.node.loc
    return Facts(title, f.node.type, shape(f.shape), _figures(f.params, f.buffers, f.macs, f.out_bytes, f.rf), 1,
                 f"{loc.file}:{loc.line}" if loc and loc.line else (loc.file if loc else ""))


def _figures(params: int, buffers: int, macs: int, out_bytes: int, rf) -> dict[str, str]:
    return {"params": si(params) + (f" (+{si(buffers)})" if buffers else ""), "macs": si(macs) if macs else "-",
            "memory": human_bytes(out_bytes), "rf": rf_text(rf)}


def short_name(t: Tree, box: str, v: View) -> str:
    """A box's name within its view: the part after its enclosing block's name."""
    holder = t.blocks[box].parent if box in t.blocks else t.owner[box]
    while holder and holder not in v.unfolded and holder != v.scope:
        holder = t.blocks[holder].parent
    name = t.blocks[box].label if box in t.blocks and "#" in box else box
    return name[len(holder) + 1:] if holder and name.startswith(holder + ".") else name


# -- text forms ----------------------------------------------------------------------------------------
def _nest(t: Tree, v: View) -> dict[str | None, list[str]]:
    """Per unfolded block (None for the view itself), the boxes and unfolded blocks drawn directly in it."""
    inside: dict[str | None, list[str]] = {None: []}
    for key in v.unfolded:
        inside[key] = []
    for key in v.order:
        holder = t.blocks[key].parent if key in t.blocks else t.owner[key]
        while holder not in inside and holder != v.scope:
            holder = t.blocks[holder].parent
        inside[None if holder == v.scope else holder].append(key)
    return inside


def mermaid(a: Analysis) -> str:
    """A Mermaid flowchart (top to bottom) with blocks as subgraphs, unfolded as deep as GitHub renders:
    at most 500 edges and 50,000 characters; deeper blocks are folded into one box with their totals."""
    t = tree(a)
    v = view(t, "", 0)
    text = _mermaid(t, v)
    while not v.deepest:
        v = view(t, "", v.depth + 1)
        deeper = _mermaid(t, v)
        if len(deeper) > MERMAID_TEXT or len(edges(t, v)) > MERMAID_EDGES:
            break
        text = deeper
    return text


def _mermaid_text(s: str) -> str:
    """Text inside a quoted Mermaid label: its entity codes stand for the characters it would read."""
    return "".join(f"#{ord(c)};" if c in '"#<>' else c for c in s)


def _mermaid(t: Tree, v: View) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(v.boxes)} | {key: f"g{i}" for i, key in enumerate(v.unfolded)}
    inside = _nest(t, v)
    folded = sum(1 for b in v.boxes if b in t.blocks)
    lines = [f"%% {t.analysis.spec.name}: generated by archcheck"
             + (f"; {folded} blocks folded to stay within GitHub's limits" if folded else ""), "flowchart TD"]

    def emit(holder, indent):
        for key in inside[holder]:
            if key in inside:
                lines.append(f'{indent}subgraph {ids[key]}["{_mermaid_text(short_name(t, key, v))}"]')
                emit(key, indent + "  ")
                lines.append(f"{indent}end")
            else:
                f = facts(t, key, v.scope)
                what = f"block, {f.layers} layers" if f.kind == "block" else f.kind
                label = f"{_mermaid_text(short_name(t, key, v))}<br/>{what} · {_mermaid_text(f.shape)}"
                lines.append(f'{indent}{ids[key]}["{label}"]' if f.kind != "block" else
                             f'{indent}{ids[key]}[["{label}"]]')

    emit(None, "  ")
    lines += [f"  {ids[e.src]} --> {ids[e.dst]}" for e in edges(t, v)]
    return "\n".join(lines) + "\n"


def _dot_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_ids(v: View, links: list[Edge]) -> dict[str, str]:
    """The DOT name of every box (``n``), unfolded block (``cluster_``) and outside end (``s``) of a view."""
    ids = {key: f"n{i}" for i, key in enumerate(v.boxes)} | {key: f"cluster_{i}" for i, key in enumerate(v.unfolded)}
    for e in links:
        for end in (e.src, e.dst):
            if end[0] in "<>" and end not in ids:
                ids[end] = f"s{len(ids)}"
    return ids


def dot(a: Analysis, v: View | None = None, layout: bool = False, t: Tree | None = None) -> str:
    """Graphviz DOT of a view (default: every layer, blocks as clusters). With ``layout``, the text that
    ``drawing`` lays out: fixed-size boxes without text, so Graphviz needs no fonts and the geometry is
    the same on every machine; the SVG writes the text."""
    t = t or tree(a)
    if v is None:
        v = view(t, "", 10**9)
    inside = _nest(t, v)
    links = edges(t, v)
    ids = dot_ids(v, links)
    lines = [f"digraph {_dot_string(t.analysis.spec.name)} {{", "  rankdir=TB; newrank=true;"]
    if layout:
        lines.append(f"  nodesep={NODESEP}; ranksep={RANKSEP};")
        lines.append(f'  node [shape=box, fixedsize=true, label="", width={WIDTH}, height={HEIGHT}];')
    else:
        lines.append('  node [shape=box, style="rounded", fontname="Helvetica", fontsize=10];')
        lines.append('  graph [fontname="Helvetica", fontsize=11];')

    def emit(holder, indent):
        for key in inside[holder]:
            if key in inside:
                lines.append(f"{indent}subgraph {ids[key]} {{")
                if layout:
                    lines.append(f"{indent}  margin={CLUSTER_MARGIN};")
                else:
                    lines.append(f"{indent}  label={_dot_string(short_name(t, key, v))}; style=dashed;")
                emit(key, indent + "  ")
                lines.append(f"{indent}}}")
            elif layout:
                lines.append(f"{indent}{ids[key]}" + (f" [height={BLOCK_HEIGHT}]" if key in t.blocks else "") + ";")
            else:
                f = facts(t, key, v.scope)
                what = f"block, {f.layers} layers" if f.kind == "block" else f.kind
                label = f"{short_name(t, key, v)}\n{what} \u00b7 {f.shape}\nparams {f.figures['params']}"
                extra = ", peripheries=2" if f.kind == "block" else ""
                lines.append(f"{indent}{ids[key]} [label={_dot_string(label)}, tooltip={_dot_string(key)}{extra}];")

    emit(None, "  ")
    for end, name in ids.items():
        if end[0] in "<>":
            what = f"width={STUB}, height={STUB}" if layout else f"label={_dot_string(end[1:])}, style=dotted"
            lines.append(f"  {name} [shape=ellipse, {what}];")
    lines += [f"  {ids[e.src]} -> {ids[e.dst]};" for e in links]
    lines.append("}")
    return "\n".join(lines) + "\n"
