"""Renderers for ``archcheck diff``: a table (rich on a terminal, plain text when piped), Markdown for a pull
request comment, and JSON (versioned schema, ``archcheck/schemas/diff.schema.json``). They only present the
``Diff``; every match, delta and ratio comes from ``archcheck.diff``."""

from __future__ import annotations

import json

from archcheck import __version__
from archcheck.diff import GROWTH, Change, Diff, LayerDiff
from archcheck.errors import show
from archcheck.findings import Finding
from archcheck.render import escape, table
from archcheck.render.fmt import commas, compact, field, human_bytes, number, shape
from archcheck.render.summary import FLOP_CONVENTION, MAC_CONVENTION, MEMORY_ASSUMPTIONS, rf_json

SCHEMA = "archcheck.diff/1"
SIGNS = {"changed": "~", "added": "+", "removed": "-"}  # the statuses listed; "field" ones are counted
STYLES = {"changed": "yellow", "added": "green", "removed": "red"}
DETAILS_AFTER = 10  # markdown: more layer rows than this fold into a <details>
MARKDOWN_ROWS = 200  # and more than this are cut: a GitHub comment holds at most 65,536 characters
ARROW = " \u2192 "



# -- cells ------------------------------------------------------------------------------------------------------
def _pair(old: str | None, new: str | None) -> str:
    """One value when both sides agree (or one side is absent), else ``old → new``."""
    if old is None or new is None or old == new:
        return new if new is not None else old or ""
    return old + ARROW + new


def _side(layer: LayerDiff, text) -> str:
    return _pair(text(layer.old) if layer.old else None, text(layer.new) if layer.new else None)


def _notes(layer: LayerDiff) -> str:
    """What changed that the figures do not show: arguments and rewired inputs."""
    def value(v):
        return "(default)" if v is None else show(v, 30)  # an argument left unwritten takes the layer's default

    parts = [f"{k} {value(a)}{ARROW}{value(b)}" for k, a, b in layer.arguments]
    if layer.inputs:
        parts.append(f"inputs {', '.join(layer.inputs[0])}{ARROW}{', '.join(layer.inputs[1])}")
    return "; ".join(parts)


def layer_cells(layer: LayerDiff) -> list[str]:
    """The row of one layer; spec text (names, arguments) unescaped: each renderer escapes for its format."""
    return [
        SIGNS[layer.status],
        _side(layer, lambda f: f.name),
        _side(layer, lambda f: f.node.type),
        _side(layer, lambda f: shape(f.shape)),
        _side(layer, lambda f: commas(f.params + f.buffers)),
        _side(layer, lambda f: commas(f.macs) if f.macs else "-"),
        _side(layer, lambda f: human_bytes(f.out_bytes)),
        _side(layer, lambda f: field(f.rf)),
        _notes(layer),
    ]


COLUMNS = [table.Column(""), table.Column("layer"), table.Column("type"), table.Column("output", wrap=True),
           table.Column("params", right=True), table.Column("MACs", right=True), table.Column("memory", right=True),
           table.Column("RF r / S / P", wrap=True), table.Column("changes", wrap=True)]


def _signed(delta, fmt) -> str:
    if not delta:
        return "0"
    return ("+" if delta > 0 else "-") + fmt(abs(delta))


def _relative(change: Change) -> str:
    r = change.relative
    if r is None or not change.delta:
        return ""
    text = f"{r:+.2%}"
    return f" ({'+' if r > 0 else '-'}<0.01%)" if text in ("+0.00%", "-0.00%") else f" ({text})"


def _count(n) -> str:
    return commas(n)


TOTAL_ROWS = [("params", "params", _count), ("macs", "MACs", _count), ("flops", "FLOPs", _count),
              ("peak_inference_bytes", "peak inference memory", human_bytes), ("training_bytes", "training memory",
                                                                             human_bytes)]


def _final_field(side) -> str:
    if side is None:
        return "-"
    layer, rf = side
    return f"{field(rf)} at {layer}"


def totals_rows(d: Diff) -> list[list[str]]:
    """(label, old, new, change) per total; layer names in the receptive field row are the spec's text."""
    rows = []
    for key, label, fmt in TOTAL_ROWS:
        c = d.totals[key]
        if key == "training_bytes":
            label += f" ({d.new.optimizer})"
        rows.append([label, fmt(c.old), fmt(c.new), _signed(c.delta, fmt) + _relative(c)])
    rf = d.receptive_field
    change = "-"
    if rf.r is not None:
        deltas = [_signed(c.delta, compact) for c in rf.r]
        change = deltas[0] if len(set(deltas)) == 1 else "x".join(deltas)
    rows.append(["receptive field r / S / P", _final_field(rf.old), _final_field(rf.new), change])
    return rows


def growth_note(d: Diff, grown: list[str]) -> str:
    """Why --fail-on-increase fails the command: each figure that grew, by how much."""
    rows = {key: (label, fmt) for key, label, fmt in TOTAL_ROWS}
    parts = []
    for figure in grown:
        if figure == "findings":
            parts.append(f"{len(d.findings.added):,} finding{'s' if len(d.findings.added) != 1 else ''} added")
            continue
        label, fmt = rows[GROWTH[figure]]
        change = d.totals[GROWTH[figure]]
        parts.append(f"{label} grew by {_signed(change.delta, fmt)}{_relative(change)}")
    return f"archcheck: {'; '.join(parts)} (--fail-on-increase {','.join(grown)})"


TOTAL_COLUMNS = [table.Column("total"), table.Column("old", right=True, wrap=True),
                 table.Column("new", right=True, wrap=True), table.Column("change", right=True)]


def listed(d: Diff) -> list[LayerDiff]:
    return [layer for layer in d.layers if layer.status in SIGNS]


def layers_line(d: Diff) -> str:
    if not d.layers:
        return f"layers: no changes ({d.unchanged:,} unchanged)"
    counts = ", ".join(f"{d.count(s):,} {s}" for s in SIGNS)
    field_only = f"; {d.count('field'):,} with only a new receptive field" if d.count("field") else ""
    return f"layers: {counts}{field_only}; {d.unchanged:,} unchanged"


def findings_line(d: Diff) -> str:
    f = d.findings
    if f is None:
        return "findings: not compared"
    if not f.added and not f.removed:
        return f"findings: no changes ({f.unchanged:,} unchanged)"
    return f"findings: {len(f.added):,} added, {len(f.removed):,} removed, {f.unchanged:,} unchanged"


def _finding_text(f: Finding) -> str:
    where = f"{f.loc}: " if f.loc else ""
    layer = f"layer '{f.layer}': " if f.layer else ""
    return f"{where}{f.code} {f.rule} [{f.severity}] {layer}{f.message}"


def finding_rows(d: Diff) -> list[tuple[str, Finding]]:
    if d.findings is None:
        return []
    return [("+", f) for f in d.findings.added] + [("-", f) for f in d.findings.removed]


def title(d: Diff) -> str:
    return f"{d.old_name}{ARROW}{d.new_name} (batch {d.new.batch}, {d.new.dtype})"


def headline(d: Diff) -> str:
    return "no changes" if d.identical else layers_line(d)


# -- plain text -------------------------------------------------------------------------------------------------
def render_plain(d: Diff) -> str:
    out = [escape.terminal(title(d)), "", headline(d)]
    if listed(d):
        out += table.plain(COLUMNS, [[*map(escape.terminal, layer_cells(r))] for r in listed(d)], underline=True)
    out.append("")
    out += table.plain(TOTAL_COLUMNS, [[*map(escape.terminal, r)] for r in totals_rows(d)], underline=True)
    out += ["", findings_line(d)]
    out += [f"{sign} {escape.terminal(_finding_text(f))}" for sign, f in finding_rows(d)]
    out += ["", MAC_CONVENTION + "."]
    return "\n".join(out)


# -- rich -------------------------------------------------------------------------------------------------------
def render_rich(d: Diff, console) -> None:
    console.print(f"[bold]{escape.rich(title(d))}[/bold]\n", highlight=False)
    console.print(headline(d), highlight=False)
    if listed(d):
        console.print(table.rich(COLUMNS, [[*map(escape.rich, layer_cells(r))] for r in listed(d)],
                                 [STYLES[r.status] for r in listed(d)]))
    console.print(table.rich(TOTAL_COLUMNS, [[*map(escape.rich, r)] for r in totals_rows(d)]))
    console.print(findings_line(d), highlight=False)
    for sign, f in finding_rows(d):
        color = "green" if sign == "+" else "red"
        console.print(f"[{color}]{sign}[/] {escape.rich(_finding_text(f))}", highlight=False)
    console.print(f"[dim]{MAC_CONVENTION}.[/dim]", highlight=False)


# -- markdown ---------------------------------------------------------------------------------------------------
def _md_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_layer(layer: LayerDiff) -> str:
    cells = layer_cells(layer)
    names = dict.fromkeys(f.name for f in (layer.old, layer.new) if f is not None)
    return _md_row([cells[0], ARROW.join(map(escape.markdown_code, names)), *map(escape.markdown, cells[2:])])


def render_markdown(d: Diff) -> str:
    out = [f"### archcheck diff: {escape.markdown_code(d.old_name)}{ARROW}{escape.markdown_code(d.new_name)}", "",
           f"**{headline(d)}** (batch {d.new.batch}, {d.new.dtype})", "",
           _md_row(c.header or " " for c in TOTAL_COLUMNS), "|---|---:|---:|---:|"]
    out += [_md_row(escape.markdown(c) for c in row) for row in totals_rows(d)]
    out += ["", f"**{findings_line(d)}**"]
    if finding_rows(d):
        out.append("")
        for sign, f in finding_rows(d):
            layer = f" layer {escape.markdown_code(f.layer)}:" if f.layer else ""
            where = f" ({escape.markdown(str(f.loc))})" if f.loc else ""
            out.append(f"- {'added' if sign == '+' else 'removed'}: `{f.code}` {f.rule} ({f.severity}){layer} "
                       f"{escape.markdown(f.message)}{where}")
    if listed(d):
        rows = [_md_row(c.header or " " for c in COLUMNS), "|" + "---|" * len(COLUMNS)]
        rows += [_md_layer(layer) for layer in listed(d)[:MARKDOWN_ROWS]]
        if len(listed(d)) > MARKDOWN_ROWS:
            rows += ["", f"_... and {len(listed(d)) - MARKDOWN_ROWS:,} more layers: `--format json` lists every one._"]
        out += ["", "**Layers**", ""]
        if len(listed(d)) > DETAILS_AFTER:  # a long list folds away; GitHub needs the blank line after <summary>
            out += [f"<details><summary>{len(listed(d)):,} layers added, removed or changed</summary>", "", *rows,
                    "", "</details>"]
        else:
            out += rows
    out += ["", f"_{MAC_CONVENTION}._"]
    return "\n".join(out)


# -- json -------------------------------------------------------------------------------------------------------
def _change_json(c: Change) -> dict:
    return {"old": c.old, "new": c.new, "delta": c.delta, "relative": c.relative}


def _layer_side(f) -> dict | None:
    if f is None:
        return None
    return {"name": f.name, "type": f.node.type, "file": f.node.loc.file, "line": f.node.loc.line,
            "args": f.node.layer.args(), "output_shape": list(f.shape), "params": f.params + f.buffers,
            "macs": f.macs, "output_bytes": f.out_bytes, "receptive_field": rf_json(f.rf), "inputs": f.node.inputs}


def _field_side(side) -> dict | None:
    return None if side is None else {"layer": side[0], **rf_json(side[1])}


def to_dict(d: Diff) -> dict:
    from archcheck.render.findings import finding_json
    from archcheck.spec import INPUT

    rf = d.receptive_field
    findings = None
    if d.findings is not None:
        findings = {"added": [finding_json(f) for f in d.findings.added],
                    "removed": [finding_json(f) for f in d.findings.removed], "unchanged": d.findings.unchanged}
    return {
        "schema": SCHEMA,
        "archcheck_version": __version__,
        "old": {"source": d.old_name, "name": d.old.spec.name, "input": list(d.old.layers[INPUT].shape)},
        "new": {"source": d.new_name, "name": d.new.spec.name, "input": list(d.new.layers[INPUT].shape)},
        "settings": {"batch": d.new.batch, "dtype": d.new.dtype, "optimizer": d.new.optimizer},
        "conventions": {"macs": MAC_CONVENTION, "flops": FLOP_CONVENTION, "memory": MEMORY_ASSUMPTIONS},
        "identical": d.identical,
        "layers": {
            "changed": d.count("changed"), "added": d.count("added"), "removed": d.count("removed"),
            "field": d.count("field"), "unchanged": d.unchanged,
            "rows": [{
                "status": r.status, "matched_by": r.matched_by, "changes": list(r.aspects),
                "old": _layer_side(r.old), "new": _layer_side(r.new),
                "params": _change_json(r.params), "macs": _change_json(r.macs),
                "output_bytes": _change_json(r.output_bytes),
                "arguments": [{"name": k, "old": a, "new": b} for k, a, b in r.arguments],
            } for r in d.layers],
        },
        "totals": {
            **{k: _change_json(c) for k, c in d.totals.items()},
            "receptive_field": {"old": _field_side(rf.old), "new": _field_side(rf.new),
                                "delta_r": None if rf.r is None else [number(c.delta) for c in rf.r]},
        },
        "findings": findings,
    }


def render_json(d: Diff) -> str:
    return json.dumps(to_dict(d), indent=2)


FORMATS = {"table": render_plain, "markdown": render_markdown, "json": render_json}


def show_diff(d: Diff, fmt: str) -> None:
    """Print the diff in ``fmt``, a key of ``FORMATS``; the table drawn with rich on a terminal wide enough."""
    import click

    console = table.terminal() if fmt == "table" else None
    if console is None or _width(d) + len(COLUMNS) + 2 > console.width:  # rich's borders and padding
        click.echo(FORMATS[fmt](d))  # on a narrow terminal, the plain table: rich would squeeze every column
    else:
        render_rich(d, console)


def _width(d: Diff) -> int:
    """Columns the widest table needs in the plain layout."""
    lines = table.plain(COLUMNS, [layer_cells(r) for r in listed(d)]) + table.plain(TOTAL_COLUMNS, totals_rows(d))
    return max(len(line) for line in lines)
