"""Printing ``archcheck run``'s report: per layer, the output's statistics and time (and with ``--grad``
its gradient norm), the outputs with their top classes, the loss, and the dynamic findings.

A report is the keyword arguments the command gathers (``analysis``, ``stats``, ``grads``, ...).
``FORMATS`` maps each ``--format`` to its text renderer; ``show`` prints one, the ``table`` drawn with
rich on a terminal wide enough for it."""

from __future__ import annotations

import json
import math

import click

from archcheck.render import escape, table


def _num(v) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def _rows(stats, grads):
    for s in stats.values():
        cells = [s.name, s.type, "(" + ", ".join(map(str, s.shape)) + ")", _num(s.mean), _num(s.std),
                 f"{s.zeros:.1%}", "-" if s.saturated is None else f"{s.saturated:.1%}",
                 f"{s.nan}/{s.inf}" if s.nan or s.inf else "0", "-" if s.type == "input" else f"{s.seconds * 1000:.2f}"]
        if grads is not None:
            cells.append(_num(grads.norms.get(s.name)))
        yield cells


HEADERS = ["layer", "type", "output shape", "mean", "std", "zeros", "saturated", "NaN/Inf", "ms"]


def _columns(grads) -> list[table.Column]:
    """The layer's name may wrap; the figures (from the mean on) are right-aligned."""
    headers = HEADERS + (["grad norm"] if grads is not None else [])
    return [table.Column(h, right=i >= 3, wrap=i == 0) for i, h in enumerate(headers)]


def _header_line(analysis, source, weights, dtype, mode, **_) -> str:
    return (f"{analysis.spec.name}: {mode} on {source}; weights {weights}; {dtype}")


def _inference_line(mode, inference, as_written, threads, **_) -> list[str]:
    """What an inference pass ran differently from the layers as written (``Analysis.inference``), and on how many
    threads."""
    if mode != "inference":
        return []
    side = [f"the batch cut into {threads} parts run side by side"] if threads > 1 else []
    if as_written is not None:
        return ["; ".join([f"inference: every layer as written ({as_written})", *side])]
    parts, plan = [], inference
    if plan.folds:
        n = len(plan.folds)
        parts.append(f"{n} batchnorm{'s' if n != 1 else ''} folded into the layer before {'them' if n != 1 else 'it'} "
                     "(one row each, under the batchnorm's name)")
    if plan.in_place:
        n = len(plan.in_place)
        parts.append(f"{n} layer{'s' if n != 1 else ''} writing over {'their' if n != 1 else 'its'} input")
    if plan.halved:
        n = len(plan.halved)
        parts.append(f"{n} activation{'s' if n != 1 else ''} reading {'their' if n != 1 else 'its'} input halved by "
                     "the layer before (folded into its weights)")
    parts += by_kernel(plan.kernels)
    if not parts:
        return ["inference: " + side[0]] if side else []
    line = "inference: " + "; ".join(parts) + " (--no-fold runs every layer as written)"
    return ["; ".join([line, *side])]


def _gradient_line(mode, gradient_kernels, **_) -> list[str]:
    if mode != "training" or not gradient_kernels:
        return []
    return [gradient_line(gradient_kernels)]


def gradient_line(kernels: dict[str, str]) -> str:
    """The layers a pass for gradients ran by a faster algorithm (``Analysis.gradient_kernels``)."""
    return "gradients: " + "; ".join(by_kernel(kernels)) + " (rounding as the layers as written do)"


def by_kernel(kernels: dict[str, str]) -> list[str]:
    """``N layers by <algorithm>`` for each algorithm of ``kernels`` (by layer name)."""
    counts = {kernel: sum(k == kernel for k in kernels.values()) for kernel in sorted(set(kernels.values()))}
    return [f"{n} layer{'s' if n != 1 else ''} by {kernel}" for kernel, n in counts.items()]


def _outputs_lines(heads, names, stats, **_) -> list[str]:
    lines = []
    for name, head in heads.items():
        s = stats[name]
        lines.append(f"output '{name}' {'(' + ', '.join(map(str, s.shape)) + ')'}: mean {_num(s.mean)}, std "
                     f"{_num(s.std)}")
        for sample, top in zip(names, head or []):
            classes = ", ".join(f"{c} ({p:.1%})" for c, p in top)
            lines.append(f"  {sample}: {classes}")
    return lines


def _loss_line(loss_value, loss_kind, grads, backward_seconds, **_) -> list[str]:
    if grads is None:
        return []
    return [f"{loss_kind} loss {_num(loss_value)}; gradient norm at the input {_num(grads.norms['input'])}; "
            f"backward {backward_seconds:.3f} s"]


def _findings_text(findings, suppressed, color=False) -> str:
    from archcheck.render.findings import render

    return render(findings, "text", files_checked=1, suppressed=suppressed, color=color)


def render_plain(**r) -> str:
    lines = [_header_line(**r), "", *table.plain(_columns(r["grads"]), list(_rows(r["stats"], r["grads"])))]
    lines.append(f"total {r['seconds']:.3f} s in the layers")
    lines += _inference_line(**r)
    lines += _gradient_line(**r)
    lines += ["", *_outputs_lines(**r)]
    lines += _loss_line(**r)
    if r["grads"] is not None:
        lines += ["", _findings_text(r["findings"], r["suppressed"])]
    return escape.terminal_lines("\n".join(lines))  # names and file names from the user


def _fits(plain: str) -> bool:
    """Whether the terminal is wide enough for the table (rich would squeeze it unreadably)."""
    import shutil

    body = plain.split("\n\n", 2)[1] if plain.count("\n\n") >= 1 else plain
    return max(map(len, body.splitlines()), default=0) + 6 <= shutil.get_terminal_size().columns


def render_rich(console, **r) -> None:
    from rich import box

    rows = list(_rows(r["stats"], r["grads"]))
    styles = ["red" if s.nan or s.inf else None for s in (r["stats"][cells[0]] for cells in rows)]
    console.print(table.rich(_columns(r["grads"]), [list(map(escape.rich, cells)) for cells in rows], styles,
                             title=escape.rich(_header_line(**r)), box=box.SIMPLE_HEAD))
    console.print(f"total {r['seconds']:.3f} s in the layers", highlight=False)
    for line in _inference_line(**r) + _gradient_line(**r):
        console.print(escape.rich(line), highlight=False)
    console.print(escape.rich("\n".join(_outputs_lines(**r))), highlight=False)
    for line in _loss_line(**r):
        console.print(line, highlight=False)
    if r["grads"] is not None:
        click.echo("\n" + _findings_text(r["findings"], r["suppressed"], color=True))


def _finite(v):
    return v if v is None or math.isfinite(v) else None


def to_dict(analysis, stats, grads, loss_value, loss_kind, heads, names, source, weights, dtype, mode, seconds,
            threads, findings, suppressed, backward_seconds, inference, as_written, gradient_kernels) -> dict:
    """The report as ``--format json`` prints it (``archcheck.run/1``)."""
    from archcheck.render.findings import to_json

    layers = []
    for s in stats.values():
        row = {"name": s.name, "type": s.type, "shape": list(s.shape), "mean": _finite(s.mean), "std": _finite(s.std),
               "zeros": s.zeros, "saturated": s.saturated, "nan": s.nan, "inf": s.inf, "ms": s.seconds * 1000}
        if grads is not None:
            row["grad_norm"] = _finite(grads.norms.get(s.name))
        layers.append(row)
    out = {
        "schema": "archcheck.run/1", "spec": analysis.spec.file, "name": analysis.spec.name, "mode": mode,
        "data": source, "weights": weights, "dtype": dtype, "samples": names, "seconds": seconds, "layers": layers,
        "outputs": {name: {"shape": list(stats[name].shape),
                           "top_k": None if head is None else [[{"class": c, "p": p} for c, p in top] for top in head]}
                    for name, head in heads.items()},
    }
    if mode == "inference":  # the layers folded into others have no entry of their own
        out["inference"] = {"folded": [{"batchnorm": bn, "into": layer} for layer, bn in inference.folds.items()],
                            "in_place": sorted(inference.in_place), "kernels": inference.kernels,
                            "halved": dict(sorted(inference.halved.items())),
                            "as_written": as_written, "threads": threads}
    if grads is not None:
        out["loss"] = {"kind": loss_kind, "value": _finite(loss_value)}
        out["backward_seconds"] = backward_seconds
        out["gradient_kernels"] = gradient_kernels
        out["findings"] = to_json(findings, 1, suppressed)
    return out


def render_json(**r) -> str:
    return json.dumps(to_dict(**r), indent=2)


FORMATS = {"table": render_plain, "json": render_json}


def show(report: dict, fmt: str) -> None:
    """Print ``report`` in ``fmt``, a key of ``FORMATS``: on a terminal wide enough for it, the table is rich's."""
    console = table.terminal() if fmt == "table" else None
    text = FORMATS[fmt](**report)
    if console is not None and _fits(text):
        render_rich(console, **report)
    else:
        click.echo(text)
