"""Renderers for ``archcheck summary``: JSON (versioned schema), rich table, plain text,
Markdown and CSV. They only present the ``Analysis``; every number comes from it.

``FORMATS`` maps each ``--format`` to its text renderer; ``show`` prints one, the ``table``
drawn with rich on a terminal."""

from __future__ import annotations

import csv
import io
import json

from archcheck import __version__
from archcheck.propagate import Analysis, LayerFacts
from archcheck.render import diagram, escape, table
from archcheck.render.fmt import commas, compact, field, human_bytes, number, shape, si
from archcheck.spec import INPUT

SCHEMA = "archcheck.summary/1"
MAC_CONVENTION = ("MACs: multiply-accumulates of conv, transposed conv, locally connected and dense layers "
                  "(the torchvision/fvcore convention); 1 MAC = 2 FLOPs")
FLOP_CONVENTION = "FLOPs: 2 x MACs plus the element-wise work of every layer (bias, norm, activation, pooling, merge)"
MEMORY_ASSUMPTIONS = ("peak inference: live tensors by lifetime as `archcheck run` executes the network (the input "
                      "throughout, others freed after their last consumer; a batchnorm that is a conv or dense "
                      "layer's only reader folded into it; element-wise layers writing over an input that dies "
                      "there) "
                      "plus parameters and buffers; training: every layer output kept for backward, plus "
                      "parameters, gradients and optimizer state (momentum 1x, adam 2x the trainable parameters)")


def rf_json(rf) -> dict:
    if rf.is_global:
        return {"global": True, "axes": [], "note": rf.note}
    return {"global": False, "axes": [{"r": number(a.r), "S": number(a.S), "P": number(a.P)} for a in rf.axes],
            "note": rf.note}


def to_dict(a: Analysis) -> dict:
    t = a.totals
    spec = a.spec
    layers = []
    for f in a.layers.values():
        n = f.node
        layers.append({
            "name": n.name, "type": n.type, "group": n.group, "inputs": n.inputs,
            "file": n.loc.file, "line": n.loc.line, "column": n.loc.col,
            "args": n.layer.args(), "input_shapes": [list(s) for s in f.in_shapes], "output_shape": list(f.shape),
            "params": f.params, "buffers": f.buffers, "macs": f.macs, "flops": f.flops,
            "output_bytes": f.out_bytes, "receptive_field": rf_json(f.rf),
        })
    final = None
    if t.receptive_field:
        final = {"layer": t.receptive_field[0], **rf_json(t.receptive_field[1])}
    return {
        "schema": SCHEMA,
        "archcheck_version": __version__,
        "spec": {"name": spec.name, "file": spec.file, "input": list(a.layers[INPUT].shape), "classes": spec.classes,
                 "outputs": spec.outputs},
        "settings": {"batch": a.batch, "dtype": a.dtype, "optimizer": a.optimizer},
        "conventions": {"macs": MAC_CONVENTION, "flops": FLOP_CONVENTION, "memory": MEMORY_ASSUMPTIONS},
        "layers": layers,
        "groups": [{"name": g.name, "layers": g.layers, "params": g.params, "buffers": g.buffers, "macs": g.macs,
                    "flops": g.flops, "output_shape": list(g.shape), "receptive_field": rf_json(g.rf)}
                   for g in a.groups.values()],
        "totals": {
            "params": t.params, "trainable_params": t.trainable, "non_trainable_params": t.non_trainable,
            "macs": t.macs, "flops": t.flops, "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes, "peak_activation_bytes": t.peak_activation_bytes,
            "peak_inference_bytes": t.peak_inference_bytes, "peak_at": t.peak_at,
            "training_bytes": t.training_bytes, "receptive_field": final,
        },
    }


def render_json(a: Analysis) -> str:
    return json.dumps(to_dict(a), indent=2)


COLUMNS = [table.Column("layer", wrap=True), table.Column("type"), table.Column("output"),
           table.Column("params", right=True), table.Column("MACs", right=True), table.Column("memory", right=True),
           table.Column("RF r / S / P")]


def _params(params: int, buffers: int) -> str:
    """Trainable parameters, with the non-trainable buffers in parentheses."""
    return commas(params) + (f" (+{commas(buffers)})" if buffers else "")


def _cells(f: LayerFacts, indent: str = "") -> list[str]:
    """Layer names are the spec's text: each renderer escapes column 0 (and the group row's) for its format."""
    name = f.name if not f.node.group else f.name[len(f.node.group) + 1:]
    return [indent + name, f.node.type, shape(f.shape), _params(f.params, f.buffers), si(f.macs) if f.macs else "-",
            human_bytes(f.out_bytes), field(f.rf)]


def rows(a: Analysis):
    """(kind, cells) per table row: 'group' headers with subtotals, then 'layer' rows."""
    facts = list(a.layers.values())
    i = 0
    while i < len(facts):
        group = facts[i].node.group
        if group is None:
            yield "layer", _cells(facts[i])
            i += 1
            continue
        g = a.groups[group]
        yield "group", [group, "block", shape(g.shape), _params(g.params, g.buffers), si(g.macs), "", field(g.rf)]
        for name in g.layers:
            yield "layer", _cells(a.layers[name], "  ")
        i += len(g.layers)


def totals_lines(a: Analysis) -> list[tuple[str, str]]:
    t = a.totals
    rf = "-"
    if t.receptive_field:
        rf = f"{field(t.receptive_field[1])} at {t.receptive_field[0]}"
        if t.receptive_field[1].note:
            rf += f" ({t.receptive_field[1].note})"
    return [
        ("params", f"{commas(t.params)} (trainable {commas(t.trainable)}, non-trainable {commas(t.non_trainable)})"),
        ("MACs", f"{commas(t.macs)} ({si(t.macs)})"),
        ("FLOPs", f"{commas(t.flops)} ({si(t.flops)})"),
        ("parameter memory", human_bytes(t.param_bytes)),
        ("peak inference memory", f"{human_bytes(t.peak_inference_bytes)} (activations "
                                  f"{human_bytes(t.peak_activation_bytes)} at {t.peak_at}, + parameters)"),
        (f"training memory ({a.optimizer})", human_bytes(t.training_bytes[a.optimizer])),
        ("receptive field r / S / P", rf),
        ("settings", f"batch {a.batch}, {a.dtype}"),
    ]


def _title(a: Analysis) -> str:
    return f"{a.spec.name}: input {shape(a.layers[INPUT].shape)}"


def render_plain(a: Analysis) -> str:
    out = [escape.terminal(_title(a))]
    out += table.plain(COLUMNS, [[escape.terminal(cells[0]), *cells[1:]] for _, cells in rows(a)], underline=True)
    out.append("")
    label = max(len(k) for k, _ in totals_lines(a))
    out += [f"{k.ljust(label)}  {escape.terminal(v)}" for k, v in totals_lines(a)]
    out += ["", MAC_CONVENTION + ".", FLOP_CONVENTION + "."]
    return "\n".join(out)


def table_width(a: Analysis) -> int:
    """Columns the full table needs (the plain layout's widest row)."""
    return max(len(line) for line in render_plain(a).split("\n\n", 1)[0].splitlines()[1:])


def render_narrow(a: Analysis, width: int) -> str:
    """For a terminal too narrow for the table: each layer on one line of what identifies it, then one
    indented line of its figures, wrapped at ``width``; the totals as in the plain layout."""
    import textwrap

    out = [escape.terminal(_title(a)), ""]
    for _, cells in rows(a):
        name, type_, shape_, params, macs, memory, rf = cells
        indent = " " * (len(name) - len(name.lstrip(" ")))
        head = f"{indent}{escape.terminal(name.lstrip(' '))}  {type_}  {shape_}"
        out.append(head if len(head) <= width else head[:width - 1] + "\u2026")
        figures = f"params {params}   MACs {macs}" + (f"   memory {memory}" if memory else "") + f"   RF {rf}"
        out += textwrap.wrap(figures, width, initial_indent=indent + "    ", subsequent_indent=indent + "    ")
    out.append("")
    out += [f"{k}: {escape.terminal(v)}" for k, v in totals_lines(a)]
    out += ["", MAC_CONVENTION + ".", FLOP_CONVENTION + "."]
    return "\n".join(textwrap.fill(line, width, subsequent_indent="  ") if len(line) > width else line
                     for line in out)


def render_rich(a: Analysis, console) -> None:
    layers = list(rows(a))
    console.print(table.rich(COLUMNS, [list(map(escape.rich, cells)) for _, cells in layers],
                             [("bold cyan" if kind == "group" else None) for kind, _ in layers],
                             title=escape.rich(_title(a))))
    console.print(table.rich([table.Column("", wrap=True, style="bold"), table.Column("", wrap=True)],
                             [[k, escape.rich(v)] for k, v in totals_lines(a)],
                             show_header=False, box=None, pad_edge=False))
    console.print(f"[dim]{MAC_CONVENTION}.\n{FLOP_CONVENTION}.[/dim]")


def render_markdown(a: Analysis) -> str:
    out = [f"### {escape.markdown(_title(a))}", "", "| " + " | ".join(c.header for c in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
    for kind, cells in rows(a):
        name = cells[0]
        indent = "\u2003" * ((len(name) - len(name.lstrip(" "))) // 2)  # em spaces: GitHub keeps them in a cell
        cells = [indent + escape.markdown_code(name.lstrip(" ")), *(c.replace("|", "\\|") for c in cells[1:])]
        if kind == "group":
            cells[0] = f"**{cells[0]}**"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| total | |", "|---|---|"]
    out += [f"| {k} | {escape.markdown(v)} |" for k, v in totals_lines(a)]
    out += ["", f"_{MAC_CONVENTION}. {FLOP_CONVENTION}._"]
    return "\n".join(out)


def render_csv(a: Analysis) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "group", "output_shape", "params", "buffers", "macs", "flops", "output_bytes",
                "rf_r", "rf_S", "rf_P"])
    for f in a.layers.values():
        if f.rf.is_global or not f.rf.axes:
            r = s = p = "global" if f.rf.is_global else ""
        else:
            r, s, p = ("x".join(compact(getattr(ax, k)) for ax in f.rf.axes) for k in ("r", "S", "P"))
        w.writerow([escape.csv_cell(f.name), f.node.type, escape.csv_cell(f.node.group or ""),
                    "x".join(map(str, f.shape)), f.params, f.buffers, f.macs, f.flops, f.out_bytes, r, s, p])
    return buf.getvalue()


def render_svg(a: Analysis) -> str:
    from archcheck.render.drawing import standalone_svg  # Graphviz: the report extra, loaded for this format only

    return standalone_svg(a)


FORMATS = {"table": render_plain, "json": render_json, "markdown": render_markdown, "csv": render_csv,
           "mermaid": diagram.mermaid, "dot": diagram.dot, "svg": render_svg}


def show(a: Analysis, fmt: str) -> None:
    """Print the summary in ``fmt``, a key of ``FORMATS``. On a terminal the table is rich's, or, when
    the terminal is too narrow for it (rich would squeeze the name column to nothing and cut the
    figures), one layer per line."""
    import click

    console = table.terminal() if fmt == "table" else None
    if console is None:
        click.echo(FORMATS[fmt](a), nl=fmt != "csv")  # CSV ends its own last line
    elif table_width(a) + 8 <= console.width:  # borders and padding
        render_rich(a, console)
    else:
        click.echo(render_narrow(a, console.width))
