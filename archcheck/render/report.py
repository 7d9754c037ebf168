"""The HTML report of ``archcheck report``: one self-contained page that opens offline.

Sections: the header, the totals and conventions (the summary's own lines), the architecture diagram
(``archcheck.render.drawing``), the lint findings, where the cost goes (parameters, MACs and output memory
per layer or per block), the live memory over the execution order (the propagator's lifetimes, the peak and
the tensors alive at it), the receptive field's growth, and with weights or data the executor section
(``archcheck.probe``).

Plots are Bokeh's (hover, zoom, pan), embedded with Bokeh's JavaScript inline: no request leaves the page.
Images are PNG data URIs written here with zlib (no imaging library needed to write them). Every figure
comes from the ``Analysis``, the findings or the ``Probe``; this module lays them out and formats them.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib

import numpy as np

from archcheck import __version__
from archcheck.findings import Finding
from archcheck.layers.base import axis_names
from archcheck.propagate import Analysis, alive_at, live_memory
from archcheck.render import escape
from archcheck.render.fmt import commas, field, human_bytes, shape
from archcheck.render.summary import FLOP_CONVENTION, MAC_CONVENTION, MEMORY_ASSUMPTIONS, totals_lines
from archcheck.spec import INPUT

BLOCK_BARS_FROM = 150  # layers: from this many on, the cost opens per block (when the network has blocks)
LABELLED_BARS = 40  # per-block bars named under the axis up to this many, numbered beyond
ALIVE_ROWS = 60  # tensors listed at the peak; the rest are counted
OPEN_FINDINGS = 25  # findings shown unfolded up to this many
FINDING_COLUMNS = ["rule", "severity", "layer", "line", "message", "fix"]
MiB = 2**20
SI_TICKS = """
for (const [scale, unit] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]])
    if (Math.abs(tick) >= scale) return String(Number((tick / scale).toPrecision(3))) + unit;
return String(tick);
"""  # axis ticks as the summary writes counts (1.2M, 4.09G)


# -- images --------------------------------------------------------------------------------------
def png(pixels: np.ndarray) -> str:
    """A ``data:image/png`` URI of ``pixels``: uint8 (H, W) grey or (H, W, 3) RGB (PNG's IHDR, IDAT, IEND)."""
    h, w = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = np.ascontiguousarray(pixels, np.uint8).reshape(h, -1)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _unit(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to [0, 1] (a constant array is mid-grey)."""
    a = np.nan_to_num(a.astype(np.float64))
    lo, hi = a.min(), a.max()
    return np.full(a.shape, 0.5) if hi <= lo else (a - lo) / (hi - lo)


def _viridis() -> np.ndarray:
    from bokeh.palettes import Viridis256

    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in Viridis256], np.uint8)


def _colour(a: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as RGB through ``palette`` (256 colours)."""
    return palette[np.clip((a * 255).round().astype(int), 0, 255)]


def _diverging(a: np.ndarray) -> np.ndarray:
    """Signed values as RGB, symmetric about 0: blue below, white at 0, red above."""
    scale = np.abs(a).max() or 1.0
    t = np.clip(a / scale, -1, 1)[..., None]
    red, blue, white = np.array([178, 24, 43]), np.array([33, 102, 172]), np.array([247, 247, 247])
    rgb = np.where(t >= 0, white + (red - white) * t, white + (blue - white) * -t)
    return rgb.round().astype(np.uint8)


def _sample_rgb(sample: np.ndarray) -> np.ndarray:
    """The first sample as a picture: RGB for 3 channels, grey for 1, else its mean over channels."""
    if sample.shape[0] == 3:
        return (_unit(sample.transpose(1, 2, 0)) * 255).astype(np.uint8)
    return (_unit(sample[0] if sample.shape[0] == 1 else sample.mean(axis=0)) * 255).astype(np.uint8)


def _filter_grid(weight: np.ndarray) -> np.ndarray:
    """Filters (F, C, kh, kw) side by side with a one-pixel gap, each scaled to [0, 1] on its own: RGB when
    they read 3 channels, else their first channel in grey."""
    f, c, kh, kw = weight.shape
    cols = math.ceil(math.sqrt(f))
    rows = math.ceil(f / cols)
    rgb = c == 3
    grid = np.full((rows * (kh + 1) + 1, cols * (kw + 1) + 1, 3) if rgb else (rows * (kh + 1) + 1, cols * (kw + 1) + 1),
                   255, np.uint8)
    for i in range(f):
        r, q = divmod(i, cols)
        tile = _unit(weight[i].transpose(1, 2, 0) if rgb else weight[i, 0])
        top, left = 1 + r * (kh + 1), 1 + q * (kw + 1)
        grid[top:top + kh, left:left + kw] = (tile * 255).astype(np.uint8)
    return grid


def _img(uri: str, width: int, alt: str, title: str = "") -> str:
    return (f'<img src="{uri}" width="{width}" alt="{escape.html(alt)}" title="{escape.html(title or alt)}" '
            'class="px">')


# -- plots -----------------------------------------------------------------------------------------
def _per_layer_source(analysis: Analysis):
    """One data source for every per-layer plot, indexed by the execution order (the input is step 0)."""
    from bokeh.models import ColumnDataSource

    order = analysis.graph.order
    facts = [analysis.layers[n.name] for n in order]
    steps = live_memory(analysis.graph, analysis.layers)
    rank = len(facts[0].shape) - 1
    data = {
        "x": np.arange(len(order)),
        "name": [n.name for n in order], "type": [n.type for n in order], "shape": [shape(f.shape) for f in facts],
        "params": np.array([f.params for f in facts], np.float64),
        "macs": np.array([f.macs for f in facts], np.float64),
        "mem": np.array([f.out_bytes / MiB for f in facts]),
        "live": np.array([live / MiB for _, live in steps]),
        "params_t": [commas(f.params) + (f" (+{commas(f.buffers)} buffers)" if f.buffers else "") for f in facts],
        "macs_t": [commas(f.macs) for f in facts], "mem_t": [human_bytes(f.out_bytes) for f in facts],
        "live_t": [human_bytes(live) for _, live in steps], "rf_t": [field(f.rf) for f in facts],
    }
    for axis in range(rank):
        data[f"r{axis}"] = np.array([math.nan if f.rf.is_global or not f.rf.axes else float(f.rf.axes[axis].r)
                                     for f in facts])
        data[f"S{axis}"] = np.array([math.nan if f.rf.is_global or not f.rf.axes else float(f.rf.axes[axis].S)
                                     for f in facts])
    return ColumnDataSource(data, name="layers"), steps


def _blocks(analysis: Analysis) -> list[tuple[str, str, list[str]]]:
    """The network's top-level units in order: (name, kind, member layers): each block instance, and each layer
    outside blocks."""
    units, seen = [], set()
    for node in analysis.graph.order[1:]:
        group = node.group
        if group is None:
            units.append((node.name, node.type, [node.name]))
        elif group not in seen:
            seen.add(group)
            units.append((group, "block", analysis.groups[group].layers))
    return units


def _per_block_source(analysis: Analysis):
    from bokeh.models import ColumnDataSource

    units = _blocks(analysis)
    # a block's subtotals are the propagator's (GroupFacts); a layer outside blocks is its own
    totals = [analysis.groups.get(name) or analysis.layers[name] for name, _, _ in units]
    params, buffers, macs = ([getattr(t, k) for t in totals] for k in ("params", "buffers", "macs"))
    mem = [sum(analysis.layers[m].out_bytes for m in ms) for _, _, ms in units]
    return ColumnDataSource({
        "x": np.arange(1, len(units) + 1), "name": [u[0] for u in units], "type": [u[1] for u in units],
        "layers": [len(u[2]) for u in units],
        "params": np.array(params, np.float64), "macs": np.array(macs, np.float64), "mem": np.array(mem) / MiB,
        "params_t": [commas(p) + (f" (+{commas(b)} buffers)" if b else "") for p, b in zip(params, buffers)],
        "macs_t": [commas(m) for m in macs], "mem_t": [human_bytes(m) for m in mem],
    }, name="blocks")


def _figure(title: str, y_label: str, x_label: str, height: int = 190, **kw):
    from bokeh.plotting import figure

    p = figure(title=title, height=height, sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,save",
               active_drag="box_zoom", toolbar_location="right", **kw)
    p.yaxis.axis_label, p.xaxis.axis_label = y_label, x_label
    p.title.text_font_size = "12px"
    p.min_border_left = 70
    return p


def _cost_column(source, tooltips_head: list[tuple[str, str]], x_label: str, names: list[str] | None = None):
    """Three bar charts over one x range; ``names``: label the bars (a few blocks), else number them."""
    from bokeh.layouts import column
    from bokeh.models import CustomJSTickFormatter, HoverTool

    plots, x_range = [], None
    for key, title, label in (("params", "Parameters (trainable)", "parameters"), ("macs", "MACs", "MACs"),
                              ("mem", "Output memory", "MiB")):
        p = _figure(title, label, x_label, **({"x_range": x_range} if x_range else {}))
        x_range = x_range or p.x_range
        bars = p.vbar(x="x", top=key, width=0.8, source=source, color="#4c78a8")
        p.add_tools(HoverTool(renderers=[bars], tooltips=[*tooltips_head, ("parameters", "@params_t"),
                                                          ("MACs", "@macs_t"), ("output memory", "@mem_t")]))
        if key != "mem":
            p.yaxis.formatter = CustomJSTickFormatter(code=SI_TICKS)
        if names:
            p.xaxis.ticker = list(range(1, len(names) + 1))
            p.xaxis.major_label_overrides = {i: name for i, name in enumerate(names, 1)}
            p.xaxis.major_label_orientation = 0.6
        p.y_range.start = 0
        plots.append(p)
    return column(*plots, sizing_mode="stretch_width")


def _cost(analysis: Analysis, layers_source):
    """Bars per layer, and per block when the network has blocks (the view that opens first when it is long)."""
    from bokeh.models import TabPanel, Tabs

    per_layer = _cost_column(layers_source, [("layer", "@name"), ("type", "@type"), ("output", "@shape")],
                             "layer (execution order)")
    if not analysis.groups:
        return per_layer
    blocks = _per_block_source(analysis)
    names = blocks.data["name"] if len(blocks.data["name"]) <= LABELLED_BARS else None
    per_block = _cost_column(blocks, [("unit", "@name"), ("kind", "@type"), ("layers", "@layers")],
                             "block or layer (execution order)", names)
    panels = [TabPanel(child=per_block, title="per block"), TabPanel(child=per_layer, title="per layer")]
    if len(analysis.layers) < BLOCK_BARS_FROM:
        panels.reverse()
    return Tabs(tabs=panels, sizing_mode="stretch_width")


def _timeline(analysis: Analysis, source, steps):
    from bokeh.models import HoverTool, Label, Span

    t = analysis.totals
    p = _figure("Live activation memory while the layers run", "MiB", "layer (execution order)", height=260)
    p.varea_step(x="x", y1=0, y2="live", step_mode="center", source=source, fill_color="#9ecae1", fill_alpha=0.7)
    line = p.step(x="x", y="live", mode="center", source=source, color="#3182bd")
    p.add_tools(HoverTool(renderers=[line], mode="vline", tooltips=[
        ("layer", "@name"), ("type", "@type"), ("live", "@live_t"), ("its output", "@mem_t")]))
    at = next(i for i, (name, _) in enumerate(steps) if name == t.peak_at)
    p.add_layout(Span(location=at, dimension="height", line_color="#d62728", line_dash="dashed", line_width=2))
    p.add_layout(Label(x=at, y=t.peak_activation_bytes / MiB, text=f" peak {human_bytes(t.peak_activation_bytes)}",
                       text_color="#d62728", text_font_size="12px", y_offset=-16))
    p.y_range.start = 0
    return p


def _field_plot(analysis: Analysis, source):
    """r and S per layer (log scale) against the input's size per axis; where r first covers the input."""
    from bokeh.models import HoverTool, Label, Legend, Span

    inp = analysis.layers[INPUT].shape
    rank = len(inp) - 1
    names = axis_names(rank)
    data = source.data
    groups: dict[tuple, list[int]] = {}  # axes alike in size, field and stride share a line
    for a in range(rank):
        key = (inp[a + 1], data[f"r{a}"].tobytes(), data[f"S{a}"].tobytes())
        groups.setdefault(key, []).append(a)
    p = _figure("Receptive field r and stride S per layer", "pixels of the input (log)", "layer (execution order)",
                height=280, y_axis_type="log")
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c")
    items, lines, sizes = [], [], []
    for colour, axes in zip(colours, groups.values()):
        a = axes[0]
        label = ", ".join(names[i] for i in axes)
        suffix = f" ({label})" if len(groups) > 1 else ""
        r = p.line(x="x", y=f"r{a}", source=source, color=colour, line_width=2)
        s = p.line(x="x", y=f"S{a}", source=source, color=colour, line_dash="dotted", line_width=2)
        items += [(f"r{suffix}", [r]), (f"S{suffix}", [s])]
        lines.append(r)
        size = inp[a + 1]
        sizes.append(size)
        p.add_layout(Span(location=size, dimension="width", line_color=colour, line_alpha=0.5, line_dash="dashed"))
        p.add_layout(Label(x=0, y=size, text=f"input {label} = {size}", text_font_size="11px", text_color=colour,
                           y_offset=3))
    p.add_tools(HoverTool(renderers=lines, mode="vline", tooltips=[("layer", "@name"), ("r / S / P", "@rf_t")]))
    cover = covering_step(analysis)
    # in view: the input sizes with their labels, and the layer that covers the input (a global one has no r)
    p.scatter(x=[0] * len(sizes) + ([cover] if cover is not None else []),
              y=[1.6 * s for s in sizes] + ([sizes[0]] if cover is not None else []), alpha=0)
    p.add_layout(Legend(items=items, location="top_left", click_policy="hide"), "right")
    if cover is not None:
        drawn = np.flatnonzero(~np.isnan(data["r0"])) if rank else np.array([0])
        late = cover > 0.6 * max(cover, int(drawn.max()) if drawn.size else 0)  # its label goes left of the line
        p.add_layout(Span(location=cover, dimension="height", line_color="#2ca02c", line_width=2))
        p.add_layout(Label(x=cover, y=inp[1], text="covers the input ", text_color="#2ca02c", text_font_size="12px",
                           y_offset=-18, text_align="right" if late else "left", x_offset=-4 if late else 4))
    return p


def covering_step(analysis: Analysis) -> int | None:
    """The first step of the execution order whose field is at least the input's size on every axis (or the
    whole input), None when no layer's does."""
    inp = analysis.layers[INPUT].shape
    for i, node in enumerate(analysis.graph.order[1:], 1):
        rf = analysis.layers[node.name].rf
        if rf.is_global or (rf.axes and all(a.r >= n for a, n in zip(rf.axes, inp[1:]))):
            return i
    return None


# -- sections --------------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _header(analysis: Analysis) -> str:
    spec = analysis.spec
    inp = shape(analysis.layers[INPUT].shape)
    desc = f"<p>{escape.html(spec.description)}</p>" if getattr(spec, "description", None) else ""
    return (f'<header><h1>{escape.html(spec.name)}</h1>{desc}<dl class="meta"><dt>file</dt><dd>'
            f"{escape.html(spec.file)}</dd><dt>input</dt><dd>{inp}</dd><dt>layers</dt>"
            f"<dd>{commas(len(analysis.layers) - 1)}</dd><dt>archcheck</dt><dd>{__version__}</dd></dl></header>")


def _totals(analysis: Analysis) -> str:
    rows = "".join(f"<tr><th>{escape.html(k)}</th><td>{escape.html(v)}</td></tr>" for k, v in totals_lines(analysis))
    notes = "".join(f"<li>{escape.html(text)}.</li>" for text in (MAC_CONVENTION, FLOP_CONVENTION,
                                                                   "memory: " + MEMORY_ASSUMPTIONS))
    return (f'<section id="totals"><h2>Totals</h2><table class="totals">{rows}</table>'
            f'<h3>Conventions</h3><ul class="notes">{notes}</ul></section>')


def _findings(findings: list[Finding], suppressed: int) -> str:
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no findings"
    if suppressed:
        summary += f" ({suppressed} suppressed)"
    rows = []
    for f in findings:
        where = f"{f.loc.line}:{f.loc.col}" if f.loc and f.loc.line > 0 else escape.html(str(f.loc or ""))
        if f.loc and f.loc.via:  # a layer made by a block: the line inside the block, then where it is used
            where += f'<br><span class="via">block used at {", ".join(f"{u.line}:{u.col}" for u in f.loc.via)}</span>'

        rows.append([f"<code>{f.code}</code><br>{escape.html(f.rule)}",
                     f'<span class="sev {f.severity}">{f.severity}</span>',
                     f"<code>{escape.html(f.layer)}</code>" if f.layer else "", where, escape.html(f.message),
                     escape.html(f.fix or "")])
    table = ""
    if rows:  # a long table starts folded, so the plots stay a scroll away
        table = (f"<details{' open' if len(rows) <= OPEN_FINDINGS else ''}><summary>the {len(rows)} finding"
                 f"{'s' if len(rows) != 1 else ''}</summary>"
                 f'<div class="wide">{_table(FINDING_COLUMNS, rows, "findings")}</div></details>')
    return (f'<section id="findings"><h2>Lint findings</h2><p>{summary}, as <code>archcheck lint</code> reports '
            f"them (configuration and suppressions included).</p>{table}</section>")


def _alive(analysis: Analysis) -> str:
    t = analysis.totals
    names = alive_at(analysis.graph, t.peak_at, analysis.layers)
    rows = [[f"<code>{escape.html(n)}</code>", escape.html(analysis.graph.nodes[n].type),
             shape(analysis.layers[n].shape), human_bytes(analysis.layers[n].out_bytes)] for n in names[:ALIVE_ROWS]]
    more = f"<p>… and {len(names) - ALIVE_ROWS} more.</p>" if len(names) > ALIVE_ROWS else ""
    return (f"<p>The peak, {human_bytes(t.peak_activation_bytes)} of activations while "
            f"<code>{escape.html(t.peak_at)}</code> runs (plus {human_bytes(t.param_bytes)} of parameters: "
            f"{human_bytes(t.peak_inference_bytes)}), is held by {len(names)} tensor{'s' if len(names) != 1 else ''}:"
            f"</p>{_table(['tensor (the layer that made it)', 'type', 'shape', 'memory'], rows, 'alive')}{more}")


def _field_text(analysis: Analysis) -> str:
    inp = analysis.layers[INPUT].shape
    cover = covering_step(analysis)
    final = analysis.totals.receptive_field
    if cover is not None:
        node = analysis.graph.order[cover]
        text = (f"The field first reaches the input's size ({'×'.join(map(str, inp[1:]))}) at "
                f"<code>{escape.html(node.name)}</code>, layer {cover} of {len(analysis.graph.order) - 1}.")
    else:
        text = (f"No layer's field reaches the input's size ({'×'.join(map(str, inp[1:]))}): the last map's units see "
                "part of it.")
    if final:
        text += (f" The last feature map's field, at <code>{escape.html(final[0])}</code>, is r / S / P = "
                 f"{field(final[1])} (a unit <i>i</i> sees input pixels [<i>i</i>·S − P, <i>i</i>·S − P + r − 1]).")
    return f"<p>{text} Dotted: the stride S, the input pixels between neighbouring units.</p>"


def _executor(analysis: Analysis, probe) -> str:
    parts = [f"<p>Samples: {escape.html(probe.source)}. Weights: {escape.html(probe.weights)}.</p>"]
    if probe.filters is not None:
        w = probe.filters.weight
        how = "RGB" if w.shape[1] == 3 else "each filter's first input channel, grey"
        grid = _filter_grid(w)
        parts.append(f"<h3>Filters of the first convolution, <code>{escape.html(probe.filters.layer)}</code></h3>"
                     f"<p>{w.shape[0]} filters of {w.shape[2]}×{w.shape[3]} ({how}), each scaled to its own range.</p>"
                     + _img(png(grid), min(640, max(160, grid.shape[1] * 8)), f"filters of {probe.filters.layer}"))
    parts.append(f"<h3>Activation maps of sample <code>{escape.html(probe.sample_name)}</code></h3>"
                 f"<p>Per layer, the {max(len(m.channels) for m in probe.maps)} channels of largest spatial spread "
                 "(all of them when it has fewer), each scaled to its own range (viridis: dark low, yellow high).</p>"
                 if probe.maps else "")
    palette = _viridis()
    sample = _img(png(_sample_rgb(probe.sample)), 192, f"sample {probe.sample_name}")
    for m in probe.maps:
        tiles = "".join(f'<figure>{_img(png(_colour(_unit(a), palette)), 96, f"{m.layer} channel {c}")}'
                        f"<figcaption>{c}</figcaption></figure>" for c, a in zip(m.channels, m.maps))
        parts.append(f'<div class="maps"><div class="maps-head"><code>{escape.html(m.layer)}</code> {m.type} '
                     f"{shape(m.shape)}</div>{tiles}</div>")
    if probe.erf is not None:
        parts.append(_erf(analysis, probe, palette))
    if probe.occlusion is not None:
        parts.append(_occlusion(probe, sample))
    parts += [f'<p class="note">{escape.html(n)}.</p>' for n in probe.notes]
    return "".join(parts)


def _erf(analysis: Analysis, probe, palette) -> str:
    e = probe.erf
    h, w = e.gradient.shape
    top, left, bottom, right = e.box
    # the view holds the image and the whole theoretical box, which may reach past the input's edges
    x0, y0 = min(0.0, left - 0.5), min(0.0, top - 0.5)
    x1, y1 = max(float(w), right + 0.5), max(float(h), bottom + 0.5)
    pad = 0.02 * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    scale = 360 / max(x1 - x0, y1 - y0)
    unit = max(x1 - x0, y1 - y0)
    image = png(_colour(_unit(np.sqrt(e.gradient)), palette))
    svg = (f'<svg class="overlay" viewBox="{x0:g} {y0:g} {x1 - x0:g} {y1 - y0:g}" width="{(x1 - x0) * scale:.0f}" '
           f'height="{(y1 - y0) * scale:.0f}" role="img" aria-label="effective receptive field of '
           f'{escape.html(e.layer)}"><rect x="{x0:g}" y="{y0:g}" width="{x1 - x0:g}" height="{y1 - y0:g}" '
           f'fill="#f2f4f7"/><image href="{image}" x="0" y="0" width="{w}" height="{h}" '
           'style="image-rendering:pixelated" preserveAspectRatio="none"/>'
           f'<rect x="{left - 0.5:g}" y="{top - 0.5:g}" width="{right - left + 1:g}" height="{bottom - top + 1:g}" '
           f'fill="none" stroke="#e0301e" stroke-width="{unit / 180:.2f}" stroke-dasharray="{unit / 45:.1f}"/>'
           f'<circle cx="{(left + right) / 2:g}" cy="{(top + bottom) / 2:g}" r="{unit / 120:.2f}" fill="#e0301e"/>'
           "</svg>")
    past = " (it reaches past the input's edges, into the padding)" if x0 < -pad or y0 < -pad else ""
    return (f"<h3>Effective receptive field of <code>{escape.html(e.layer)}</code></h3>"
            f"<p>How strongly each input pixel moves the central unit ({e.unit[0]}, {e.unit[1]}) of "
            f"<code>{escape.html(e.layer)}</code> {shape(analysis.layers[e.layer].shape)}: |∂unit/∂input| summed over "
            f"channels, averaged over {e.samples} sample{'s' if e.samples != 1 else ''} (square root, viridis). The "
            f"red dashed box is the theoretical field of that unit (r / S / P = {field(analysis.layers[e.layer].rf)})"
            f"{past}; {e.inside:.0%} of the gradient falls inside it. The effective field is the bright core, usually "
            "far smaller than the theoretical one (Luo, Li, Urtasun &amp; Zemel, <i>Understanding the Effective "
            f"Receptive Field in Deep Convolutional Neural Networks</i>, NeurIPS 2016).</p>{svg}")


def _occlusion(probe, sample: str) -> str:
    o = probe.occlusion
    rows, cols = o.drops.shape
    heat = _img(png(_diverging(o.drops)), 192, "occlusion sensitivity")
    scored = (f"the logit <code>{escape.html(o.scored)}</code> before the softmax <code>{escape.html(o.output)}</code>"
              if o.scored != o.output else f"<code>{escape.html(o.output)}</code>")
    return (f"<h3>Occlusion sensitivity of sample <code>{escape.html(probe.sample_name)}</code></h3>"
            f"<p>A {o.patch[0]}×{o.patch[1]} patch of {escape.html(o.fill)} slides over the sample on a {rows}×{cols} "
            f"grid; each cell shows how much the score of the predicted class {o.label} ({scored}, {o.score:.4g} on "
            "the whole sample) falls when the patch covers it: "
            "red falls, blue rises, white no change (largest change "
            f"{float(np.abs(o.drops).max()):.3g}). Zeiler &amp; Fergus, <i>Visualizing and Understanding "
            f"Convolutional Networks</i>, ECCV 2014.</p><div class=\"pair\">{sample}{heat}</div>")


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#fff}
main{max-width:1200px;margin:0 auto;padding:0 20px 40px}
header h1{margin:18px 0 4px;font-size:24px}
nav{position:sticky;top:0;background:#f5f7fa;border-bottom:1px solid #dde3ea;padding:6px 20px;z-index:10}
nav a{margin-right:14px;color:#2b5d9b;text-decoration:none}
h2{margin:28px 0 8px;font-size:19px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}
dl.meta dt{color:#5a6675}dl.meta dd{margin:0}
table{border-collapse:collapse;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:3px 10px;border-bottom:1px solid #e8ecf1}
table.totals th{color:#5a6675;font-weight:normal;white-space:nowrap}
table.findings{width:100%}
table.findings td:nth-child(3){min-width:200px;max-width:340px;overflow-wrap:anywhere}
table.findings td:nth-child(4){min-width:100px}
table.findings td:nth-child(5),table.findings td:nth-child(6){min-width:180px}
.wide{overflow-x:auto}
summary{cursor:pointer;color:#2b5d9b}
.sev{padding:0 6px;border-radius:3px;font-size:12px}
.sev.error{background:#fde0dd;color:#a50f15}.sev.warning{background:#fff3cd;color:#8a5a00}
.sev.info{background:#e3eefa;color:#1f4e8c}
ul.notes{color:#5a6675;margin:4px 0;padding-left:20px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f4f7;padding:0 3px;border-radius:3px}
img.px{image-rendering:pixelated;border:1px solid #dde3ea;background:#fff}
.maps{display:flex;flex-wrap:wrap;align-items:flex-end;gap:6px;margin:8px 0}
.maps-head{width:100%;font-size:13px}
figure{margin:0;text-align:center}figcaption{font-size:11px;color:#5a6675}
.pair{display:flex;gap:12px;align-items:flex-start}
svg.overlay{border:1px solid #dde3ea}
.note{color:#5a6675;font-style:italic}
.via{color:#5a6675;font-size:12px}
"""


def render(analysis: Analysis, findings: list[Finding], suppressed: int, probe=None,
           executor_note: str | None = None) -> str:
    """The page: ``findings`` and ``suppressed`` as lint gives them; ``probe`` the executor section's results
    (``archcheck.probe.Probe``), or ``executor_note`` saying why there is none."""
    from bokeh.embed import components
    from bokeh.resources import Resources

    from archcheck.render.drawing import html_section

    source, steps = _per_layer_source(analysis)
    plots = {"cost": _cost(analysis, source), "timeline": _timeline(analysis, source, steps)}
    spatial = len(analysis.layers[INPUT].shape) > 1
    if spatial:
        plots["field"] = _field_plot(analysis, source)
    script, divs = components(plots)
    field_section = (f"{_field_text(analysis)}{divs['field']}" if spatial else
                     "<p>The input has no spatial axes, so there is no receptive field.</p>")
    executor = ""
    if probe is not None or executor_note:
        body = _executor(analysis, probe) if probe is not None else f'<p class="note">{escape.html(executor_note)}</p>'
        executor = f'<section id="executor"><h2>What the network looks at</h2>{body}</section>'
    links = [("totals", "Totals"), ("diagram", "Diagram"), ("findings", "Findings"), ("cost", "Cost"),
             ("memory", "Memory"), ("field", "Receptive field")] + ([("executor", "Executor")] if executor else [])
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in links)
    resources = Resources(mode="inline", components=["bokeh"])  # Tabs and plots need only the core bundle
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape.html(analysis.spec.name)}: archcheck report</title>",
        f"<style>{STYLE}</style>", resources.render_js(), script, "</head><body>",
        f"<nav>{nav}</nav><main>", _header(analysis), _totals(analysis),
        html_section(analysis, findings), _findings(findings, suppressed),
        f'<section id="cost"><h2>Where the cost goes</h2><p>Per layer, or per block instance (the sum of its '
        f"layers): trainable parameters, MACs and the memory of the outputs (batch {analysis.batch}, "
        f"{analysis.dtype}). Drag to zoom, hover for the figures.</p>{divs['cost']}</section>",
        f'<section id="memory"><h2>Live memory</h2><p>Activation memory held while each layer runs: its inputs, '
        "its output and every earlier output a later layer still reads, as `archcheck run` executes it (the input "
        "throughout; a tensor freed after its last reader; a batchnorm folded into the convolution before it; "
        "an element-wise layer writing over an input that dies there).</p>"
        f"{divs['timeline']}{_alive(analysis)}</section>",
        f'<section id="field"><h2>Receptive field growth</h2>{field_section}</section>',
        executor, "</main></body></html>", ""])
