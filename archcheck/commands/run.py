"""``archcheck run``: execute a spec in NumPy on a sample batch and show what each layer does to it."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click

from archcheck.commands import execution_options, reported_errors, spec_argument
from archcheck.commands.lint import config_options
from archcheck.errors import EXIT_FINDINGS, EXIT_OK, ArchcheckError
from archcheck.findings import SEVERITIES
from archcheck.render import escape

PROGRESS_MACS = 2e9  # show a progress bar (on a terminal) when a run does more work than this


def needed_bytes(analysis, batch: int, dtype: str, training: bool) -> int:
    """The memory an execution needs, from the propagator's figures (computed for batch 1, float32):
    the weights, and the activations alive at the peak (inference) or every layer's output kept for
    the backward pass plus a gradient of each (training), with the weights' gradients and optimizer
    state."""
    t = analysis.totals
    scale = 2 if dtype == "float64" else 1
    if training:
        return scale * (3 * t.param_bytes + 2 * batch * t.activation_bytes)
    return scale * (t.param_bytes + batch * t.peak_activation_bytes)


def refuse_if_too_big(analysis, batch: int, dtype: str, training: bool, limit: int) -> None:
    from archcheck.files import human

    need = needed_bytes(analysis, batch, dtype, training)
    if need > limit:
        t = analysis.totals
        raise ArchcheckError(f"running {analysis.spec.name} at batch {batch} in {dtype} needs about {human(need)} "
             f"({t.params:,} weights, {human(t.activation_bytes * batch)} of layer outputs"
             f"{' kept for the backward pass' if training else ''}), more than --max-memory ({human(limit)})",
             "use a smaller --batch or network, or raise --max-memory if this machine has the memory")


def refuse_overwrite(path, *inputs) -> None:
    from archcheck.files import same_file

    for source in inputs:
        if source and Path(path).exists() and same_file(path, source):
            raise ArchcheckError(f"{path} is also an input of this command ({source}); writing it would destroy it",
                                 "write to another path")


def prepare(spec, data, batch, weights, seed, dtype, max_memory=2**62, training=False):
    """Analyse the spec and load (or make) the batch and the weights: (analysis, x, names, params, source).

    What would not fit in ``max_memory`` is refused before it is read or allocated."""
    from archcheck import data as datamod
    from archcheck.executor import init_params
    from archcheck.pipeline import analyze
    from archcheck.weights import load

    analysis = analyze(spec)
    refuse_if_too_big(analysis, batch or 1, dtype, training, max_memory)
    if data:
        x, names = datamod.load(data, analysis.spec.input, dtype, rows=batch, limit=max_memory)
        refuse_if_too_big(analysis, len(x), dtype, training, max_memory)
        if batch is not None:
            if batch > len(x):
                raise datamod.DataError(f"--batch {batch} asks for more samples than {data} holds ({len(x)})",
                                        f"use --batch {len(x)} or less")
            x, names = x[:batch], names[:batch]
        source = f"{data} ({len(x)} sample{'s' if len(x) != 1 else ''})"
    else:
        batch = batch or 1
        x, names = datamod.random_batch(analysis.spec.input, batch, seed, dtype), [str(i) for i in range(batch)]
        source = f"random normal, seed {seed}"
    params = load(weights, analysis, dtype, max_memory) if weights else init_params(analysis, seed, dtype)
    return analysis, x, names, params, source


def dynamic_plan(spec, config_path=None, no_config=False, no_custom_rules=False):
    """The dynamic rules (AC801-AC805 and any custom ones) as the project configuration, found from
    the spec's directory as `lint` finds it, selects and sets them, and its `fail-on`: (plan, fail_on);
    a broken configuration or rule is exit 2."""
    from archcheck.commands.lint import setup
    from archcheck.lint import make_plan

    cfg, rules = setup(config_path, no_config, Path(spec).parent, no_custom_rules)
    return make_plan(cfg, rules, kind="dynamic"), cfg.fail_on


def saturation_margin(plan) -> float:
    """What counts as saturated, in the table as in the findings: saturated-activation-runtime's margin,
    as configured with a plan (--grad), else its default (plain `run` reads no configuration)."""
    from archcheck.lint import find_rule
    from archcheck.rules.saturated_activation_runtime import OPTIONS, SLUG

    if plan is None:
        return OPTIONS["margin"]
    return plan.options[find_rule(SLUG, plan.rules).code]["margin"]


def targets_for(analysis, labels, batch, kind, seed):
    import numpy as np

    from archcheck import data as datamod
    from archcheck.executor import random_targets

    if labels is None:
        return random_targets(analysis, batch, kind, np.random.default_rng(seed + 1))
    return datamod.load_targets(labels, analysis, batch, kind)


def progress_bar(total: int, work: float):
    """A transient rich progress bar on a terminal for long runs, else None."""
    if work < PROGRESS_MACS or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    progress.start()
    progress.add_task("running", total=total)
    return progress


@click.command()
@spec_argument
@execution_options(batch_default=1)
@click.option("--grad", is_flag=True,
              help="Also back-propagate the loss (training mode): gradient norms and dynamic findings.")
@click.option("--save", type=click.Path(dir_okay=False), metavar="OUT.npz",
              help="Write the outputs (and, with --grad, the gradients) to an .npz file.")
@click.option("--save-activations", is_flag=True, help="With --save, also write every layer's output.")
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Classes listed per sample for a softmax output.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format; `table` is plain text when not on a terminal.")
@click.option("--fail-on", type=click.Choice(SEVERITIES),
              help="With --grad, exit 1 when a finding has this severity or a higher one [default: the "
                   "configuration's `fail-on`, else warning].")
@config_options
def run(spec, data, batch, weights, seed, dtype, max_memory, grad, labels, loss_kind, save, save_activations, top_k,
        fmt, fail_on, config_path, no_config, no_custom_rules):
    """Run SPEC in NumPy on a batch and print, per layer, the output shape, mean and standard
    deviation, the share of zeros (dead ReLUs) and of saturated values (sigmoid/tanh), NaN/Inf
    counts and time; then the outputs (top-k classes for a softmax head).

    With --grad the batch runs in training mode (batch statistics, dropout) and a loss is
    back-propagated: per-layer gradient norms and dynamic findings (AC801-AC805) in lint's format,
    selected, configured and suppressed as lint does (the configuration is found from SPEC).

    Exit 0 on success; 1 when --grad reports a finding that reaches --fail-on; 2 for an invalid
    spec, data, weights, labels or configuration; 3 for an internal error.
    """
    if save_activations and not save:
        raise click.UsageError("--save-activations needs --save OUT.npz")
    if labels is not None and not grad:
        raise click.UsageError("--labels is for --grad (the loss needs labels)")
    with reported_errors():
        import numpy as np

        from archcheck import executor
        from archcheck.lint import Result, check_run, fails
        from archcheck.spec import INPUT

        plan, configured_fail_on = (dynamic_plan(spec, config_path, no_config, no_custom_rules) if grad
                                    else (None, None))
        margin = saturation_margin(plan)
        if save:
            refuse_overwrite(save, spec, data, weights, labels)
        analysis, x, names, params, source = prepare(spec, data, batch, weights, seed, dtype, max_memory,
                                                     training=grad or save_activations)
        targets = targets_for(analysis, labels, len(x), loss_kind, seed) if grad else None
        stats = {INPUT: executor.layer_stats(analysis.graph.nodes[INPUT], x, 0.0, margin)}
        bar = progress_bar(len(analysis.graph.order) - 1, analysis.totals.macs * len(x))

        def on_layer(node, y, seconds):
            stats[node.name] = executor.layer_stats(node, y, seconds, margin)
            if bar is not None:
                bar.advance(bar.task_ids[0])

        tape = executor.Tape() if grad else None
        try:
            with np.errstate(all="ignore"):  # NaN and Inf are counted per layer and reported as AC805
                values = executor.forward(analysis, params, x, train=grad, keep=save_activations, tape=tape,
                                          seed=seed, on_layer=on_layer)
                grads = loss_value = None
                backward_seconds = 0.0
                checked = Result([])
                if grad:
                    loss_value, seeds = executor.loss(analysis, values, targets, loss_kind)
                    start = time.perf_counter()
                    grads = executor.backward(analysis, params, tape, seeds)
                    backward_seconds = time.perf_counter() - start
                    checked = check_run(executor.record(analysis, stats, grads, loss_value), plan)
        finally:
            if bar is not None:
                bar.stop()
        findings = checked.findings
        seconds = sum(s.seconds for s in stats.values())  # the layers' own time, not the statistics'
        outputs = {name: values[name] for name in analysis.graph.outputs}
        heads = {name: _top_k(analysis, name, y, top_k) for name, y in outputs.items()}
        if save:
            arrays = dict(values)
            if grads is not None:
                arrays["grad:input"] = grads.input
                arrays.update({f"grad:{k}": v for k, v in grads.params.items()})
            from archcheck.files import write_atomic

            try:  # exactly this path, whole or not at all
                write_atomic(save, lambda tmp: _savez(tmp, arrays))
            except OSError as exc:
                raise ArchcheckError(f"cannot write {save}: {exc.strerror or exc}",
                                     "choose a path in a writable directory") from None
        report = dict(analysis=analysis, stats=stats, grads=grads, loss_value=loss_value, loss_kind=loss_kind,
                      heads=heads, names=names, source=source, weights=weights or f"initialised, seed {seed}",
                      dtype=dtype, mode="training" if grad else "inference", seconds=seconds, findings=findings,
                      suppressed=checked.suppressed, backward_seconds=backward_seconds)
        plain = _plain(**report) if fmt == "table" else None
        if fmt == "json":
            click.echo(json.dumps(_json(**report), indent=2))
        elif sys.stdout.isatty() and _fits(plain):
            from rich.console import Console

            _rich(Console(), **report)
        else:
            click.echo(plain)
        if save:
            click.echo(f"wrote {save}", err=True)
        sys.exit(EXIT_FINDINGS if grad and fails(findings, fail_on or configured_fail_on) else EXIT_OK)


def _savez(path, arrays: dict) -> None:
    """An .npz numpy.load reads, with any array names: numpy.savez takes names as keyword arguments, so a
    layer named `file` or `allow_pickle` would collide with its own parameters."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _top_k(analysis, name, y, k):
    """Per sample, the k largest (class, probability) of a softmax over a vector, else None."""
    node = analysis.graph.nodes[name]
    if not (node.layer.activation and node.layer.probabilities) or y.ndim != 2:
        return None
    order = (-y).argsort(axis=1)[:, :k]
    return [[(int(c), float(row[c])) for c in classes] for row, classes in zip(y, order)]


# -- rendering -------------------------------------------------------------------------------
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


def _header_line(analysis, source, weights, dtype, mode, **_) -> str:
    return (f"{analysis.spec.name}: {mode} on {source}; weights {weights}; {dtype}")


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


def _plain(**r) -> str:
    headers = HEADERS + (["grad norm"] if r["grads"] is not None else [])
    rows = [headers, *_rows(r["stats"], r["grads"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    right = set(range(3, len(headers)))
    lines = [_header_line(**r), ""]
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     .rstrip())
    lines.append(f"total {r['seconds']:.3f} s in the layers")
    lines += ["", *_outputs_lines(**r)]
    lines += _loss_line(**r)
    if r["grads"] is not None:
        lines += ["", _findings_text(r["findings"], r["suppressed"])]
    return escape.terminal_lines("\n".join(lines))  # names and file names from the user


def _fits(plain: str) -> bool:
    """Whether the terminal is wide enough for the table (rich would squeeze it unreadably)."""
    import shutil

    table = plain.split("\n\n", 2)[1] if plain.count("\n\n") >= 1 else plain
    return max(map(len, table.splitlines()), default=0) + 6 <= shutil.get_terminal_size().columns


def _rich(console, **r) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=escape.rich(_header_line(**r)), title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD)
    headers = HEADERS + (["grad norm"] if r["grads"] is not None else [])
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i >= 3 else "left", no_wrap=i != 0)
    for cells in _rows(r["stats"], r["grads"]):
        s = r["stats"][cells[0]]
        style = "red" if s.nan or s.inf else None
        table.add_row(*map(escape.rich, cells), style=style)
    console.print(table)
    console.print(f"total {r['seconds']:.3f} s in the layers", highlight=False)
    console.print(escape.rich("\n".join(_outputs_lines(**r))), highlight=False)
    for line in _loss_line(**r):
        console.print(line, highlight=False)
    if r["grads"] is not None:
        click.echo("\n" + _findings_text(r["findings"], r["suppressed"], color=True))


def _finite(v):
    return v if v is None or math.isfinite(v) else None


def _json(analysis, stats, grads, loss_value, loss_kind, heads, names, source, weights, dtype, mode, seconds,
          findings, suppressed, backward_seconds) -> dict:
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
    if grads is not None:
        out["loss"] = {"kind": loss_kind, "value": _finite(loss_value)}
        out["backward_seconds"] = backward_seconds
        out["findings"] = to_json(findings, 1, suppressed)
    return out
