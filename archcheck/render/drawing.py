"""The architecture drawn: Graphviz's ``dot`` lays out each view (``archcheck.render.diagram``), and the
positions it gives become an SVG with archcheck's own text, colours and data attributes.

Graphviz comes from ``pygraphviz``, whose wheels carry the library, so the ``report`` extra installs with
pip alone and no ``dot`` program is needed. The layout is of fixed-size boxes without text (``diagram.dot``
with ``layout=True``), so it needs no fonts and is the same on every machine.

``svg`` draws one view as a standalone picture (``summary --format svg``); ``html_section`` draws every
view for the report, where the reader folds and unfolds blocks, picks the figure the boxes show, finds a
layer by name and clicks a box for its figures and findings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from archcheck.errors import ArchcheckError
from archcheck.findings import SEVERITIES
from archcheck.render import diagram as dg

PT = 72  # points per inch: Graphviz's sizes are inches, its positions points
FIGURE_PREFIX = {"params": "params", "macs": "MACs", "memory": "out", "rf": "RF"}


def asset(name: str) -> str:
    """A stylesheet or script the drawings carry inline (``archcheck/render/assets``), so a page opens offline."""
    from importlib.resources import files

    return (files("archcheck.render") / "assets" / name).read_text(encoding="utf-8")


def _pygraphviz():
    try:
        import pygraphviz
    except ImportError as exc:
        raise ArchcheckError(f"drawing the diagram needs Graphviz's Python binding, which is not installed "
                             f"({exc})", "pip install 'archcheck[report]'") from None
    return pygraphviz


@dataclass
class Placed:
    """A view laid out: boxes' and clusters' rectangles (x, y, w, h; y down) and edge paths, in points."""

    view: dg.View
    width: float
    height: float
    boxes: dict[str, tuple[float, float, float, float]]  # box key (or outside end "<name"/">name") -> rect
    clusters: dict[str, tuple[float, float, float, float]]
    paths: list[tuple[dg.Edge, str, tuple[float, float, float, float] | None]]  # edge, SVG path, arrow head


def place(t: dg.Tree, v: dg.View) -> Placed:
    pgv = _pygraphviz()
    links = dg.edges(t, v)
    ids = dg.dot_ids(v, links)
    g = pgv.AGraph(string=dg.dot(t.analysis, v, layout=True, t=t))
    g.layout(prog="dot")
    x0, y0, x1, y1 = map(float, g.graph_attr["bb"].split(","))
    height = y1 - y0

    def flip(x, y):
        return float(x) - x0, height - (float(y) - y0)

    boxes = {}
    for key, name in ids.items():
        if name.startswith("cluster_"):
            continue
        node = g.get_node(name)
        cx, cy = flip(*node.attr["pos"].split(","))
        w, h = float(node.attr["width"]) * PT, float(node.attr["height"]) * PT
        boxes[key] = (cx - w / 2, cy - h / 2, w, h)
    clusters = {}
    by_name = {name: key for key, name in ids.items()}
    stack = list(g.subgraphs())
    while stack:
        sub = stack.pop()
        stack += sub.subgraphs()
        lx, ly, ux, uy = map(float, sub.graph_attr["bb"].split(","))
        left, top = flip(lx, uy)
        clusters[by_name[sub.name]] = (left, top, ux - lx, uy - ly)
    paths = []
    for e in links:
        edge = g.get_edge(ids[e.src], ids[e.dst])
        d, head = _spline(edge.attr["pos"], flip)
        paths.append((e, d, head))
    return Placed(v, x1 - x0, height, boxes, clusters, paths)


def _spline(pos: str, flip) -> tuple[str, tuple[float, float, float, float] | None]:
    """Graphviz's edge ``pos`` ("e,x,y p0 p1 p2 p3 ...", a cubic B-spline in Bezier form) as an SVG path,
    and the arrow head's line (from the spline's end to the tip)."""
    tip, points = None, []
    for item in pos.split():
        if item.startswith("e,"):
            tip = flip(*item[2:].split(","))
        elif not item.startswith("s,"):
            points.append(flip(*item.split(",")))
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for i in range(1, len(points) - 2, 3):
        (ax, ay), (bx, by), (cx, cy) = points[i:i + 3]
        d += f"C{ax:.1f},{ay:.1f} {bx:.1f},{by:.1f} {cx:.1f},{cy:.1f}"
    head = (*points[-1], *tip) if tip else None
    return d, head


# -- SVG ---------------------------------------------------------------------------------------------------
def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def _text(x: float, y: float, text: str, cls: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}">{escape(text)}</text>'


def _box(t: dg.Tree, p: Placed, key: str, findings: dict[str, list], figure: str) -> str:
    """A box; ``findings`` maps a layer name to its lint findings, which mark it (and a folded block holding
    it) and are listed in its tooltip with their spec lines."""
    x, y, w, h = p.boxes[key]
    if key[0] in "<>":
        side = "from" if key[0] == "<" else "to"
        return (f'<g class="stub" data-target="{escape(key[1:])}"><title>{side} {escape(key[1:])}</title>'
                f'<ellipse cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}"/></g>')
    f = dg.facts(t, key, p.view.scope)
    block = key in t.blocks
    name = dg.short_name(t, key, p.view)
    if block:
        mine = [f for n in t.blocks[key].layers for f in findings.get(n, ())]
        cls, second = "node block", f"{f.layers} layers \u00b7 {f.shape}"
        ident = f'data-block="{escape(key)}"'
    else:
        mine = findings.get(key, [])
        category = t.analysis.layers[key].node.layer.category
        cls, second = f"node layer c-{category}", f"{f.kind} \u00b7 {f.shape}"
        ident = f'data-layer="{escape(key)}" data-type="{escape(f.kind)}"'
    if mine:
        cls += " has-findings " + max((f.severity for f in mine), key=SEVERITIES.index)
        ident += f' data-findings="{escape(" ".join(f.code for f in mine))}"'
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in f.figures.items())
    tip = "\n".join([key, second, *(f"{FIGURE_PREFIX[k]} {v}" for k, v in f.figures.items()), f"written at {f.loc}",
                     *(f"{x.code} {x.rule} ({x.severity}, line {x.loc.line}): {x.message}" for x in mine[:5]),
                     *([f"and {len(mine) - 5} more findings"] if len(mine) > 5 else [])])
    out = [f'<g class="{cls}" {ident} {data} data-shape="{escape(f.shape)}" data-loc="{escape(f.loc)}">',
           f"<title>{escape(tip)}</title>",
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5"/>',
           _text(x + 7, y + 14, ("\u25b8 " if block else "") + _clip(name, 26), "name"),
           _text(x + 7, y + 27, _clip(second, 29), "kind"),
           _text(x + 7, y + 40, f"{FIGURE_PREFIX[figure]} {f.figures[figure]}", "fig")]
    if mine:
        out.append(f'<circle cx="{x + w - 8:.1f}" cy="{y + 8:.1f}" r="6" class="mark"/>'
                   f'<text x="{x + w - 8:.1f}" y="{y + 11:.1f}" class="count">{len(mine)}</text>')
    out.append("</g>")
    return "".join(out)


def svg(t: dg.Tree, p: Placed, findings: dict[str, list] | None = None, figure: str = "params",
        standalone: bool = False) -> str:
    """One laid-out view as SVG: clusters (the unfolded blocks), edges, then boxes on top."""
    findings = findings or {}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dg" viewBox="-4 -4 {p.width + 8:.1f} {p.height + 8:.1f}" '
           f'width="{p.width + 8:.0f}" height="{p.height + 8:.0f}" data-scope="{escape(p.view.scope)}" '
           f'data-depth="{p.view.depth}">']
    if standalone:
        out.append(f"<style>{asset('diagram-svg.css')}</style>")
    out.append('<defs><marker id="dg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
               'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>')
    for key in p.view.unfolded:
        x, y, w, h = p.clusters[key]
        title = _text(x + 6, y + 12, "\u25be " + _clip(dg.short_name(t, key, p.view), max(8, int(w / 6.2))), "ctitle")
        out.append(f'<g class="cluster" data-block="{escape(key)}"><title>{escape(key)}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="7"/>{title}</g>')
    for _, d, head in p.paths:
        line = f'<line x1="{head[0]:.1f}" y1="{head[1]:.1f}" x2="{head[2]:.1f}" y2="{head[3]:.1f}" ' \
               f'marker-end="url(#dg-arrow)"/>' if head else ""
        out.append(f'<g class="edge"><path d="{d}"/>{line}</g>')
    out += [_box(t, p, key, findings, figure) for key in p.boxes]
    out.append("</svg>")
    return "".join(out)


def standalone_svg(analysis) -> str:
    """``summary --format svg``: the network unfolded as far as one picture holds (``diagram.BUDGET`` boxes)."""
    t = dg.tree(analysis)
    shown = [v for v in dg.views(t) if not v.scope][-1]
    return svg(t, place(t, shown), standalone=True)





# -- the report's diagram ------------------------------------------------------------------------------------
def _json(value) -> str:
    """JSON for a <script> element: '</' cannot close it."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def html_section(analysis, findings) -> str:
    """The report's diagram: every view laid out, the most detailed view of the whole network shown first.
    ``findings`` are lint's (``Finding``); those naming a layer mark its box and the blocks holding it."""
    t = dg.tree(analysis)
    vs = dg.views(t)
    by_layer: dict[str, list] = {}
    for f in findings:
        if f.layer in analysis.layers:
            by_layer.setdefault(f.layer, []).append(f)
    where: dict[str, int] = {}
    for i, v in enumerate(vs):
        for box in v.boxes:
            if box not in t.blocks and (box not in where or vs[where[box]].scope == v.scope):
                where[box] = i
    start = max(i for i, v in enumerate(vs) if not v.scope)
    data = {
        "views": [{"scope": v.scope, "depth": v.depth, "deepest": v.deepest} for v in vs],
        "parents": {k: b.parent for k, b in t.blocks.items()},
        "labels": {k: (b.label if "#" in k or not k else k) for k, b in t.blocks.items()},
        "where": where, "start": start, "figures": dg.FIGURES, "prefix": FIGURE_PREFIX,
        "findings": [{"code": f.code, "rule": f.rule, "severity": f.severity, "layer": f.layer,
                      "line": f.loc.line if f.loc else None, "message": f.message, "fix": f.fix}
                     for f in findings if f.layer in analysis.layers],
    }
    templates = "".join(f'<template class="dg-view" data-i="{i}">{svg(t, place(t, v), by_layer)}</template>'
                        for i, v in enumerate(vs))
    options = "".join(f'<option value="{k}">{escape(label)}</option>' for k, label in dg.FIGURES.items())
    return (f'<section id="diagram" class="dg-section"><h2>Architecture</h2>'
            f'<div class="dg-bar"><nav class="dg-crumbs" aria-label="blocks"></nav>'
            f'<button type="button" class="dg-fold" title="fold the innermost open blocks">\u2212 fold</button>'
            f'<button type="button" class="dg-unfold" title="unfold one more level of blocks">+ unfold</button>'
            f'<label>boxes show <select class="dg-figure">{options}</select></label>'
            f'<input class="dg-search" type="search" placeholder="find a layer by name" aria-label="find a layer">'
            f'<span class="dg-status" role="status"></span></div>'
            f'<p class="dg-help">Click a block (\u25b8) to unfold it and an open block\u2019s title (\u25be) to fold '
            f'it; click a layer for its figures and findings. Boxes ringed in orange have lint findings.</p>'
            f'<div class="dg-main"><div class="dg-canvas"></div><aside class="dg-panel">'
            f'<p class="dg-empty">Click a layer.</p></aside></div>'
            f'{templates}<script type="application/json" class="dg-data">{_json(data)}</script>'
            f"<style>{asset('diagram-svg.css')}{asset('diagram.css')}</style><script>{asset('diagram.js')}</script>"
            "</section>")
