"""``archcheck run``: execute a spec in NumPy on a sample batch and show what each layer does to it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from archcheck.commands import config_options, execution_options, reported_errors, setup, spec_argument
from archcheck.commands._execution import prepare, refuse_overwrite, targets_for, thread_count
from archcheck.errors import EXIT_FINDINGS, EXIT_OK, ArchcheckError
from archcheck.findings import SEVERITIES
from archcheck.render.progress import progress_bar
from archcheck.render.run import FORMATS, show


def dynamic_plan(spec, config_path=None, no_config=False, no_custom_rules=False):
    """The dynamic rules (AC801-AC805 and any custom ones) as the project configuration, found from
    the spec's directory as `lint` finds it, selects and sets them, and its `fail-on`: (plan, fail_on);
    a broken configuration or rule is exit 2."""
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


@click.command()
@spec_argument
@execution_options(batch_default=1)
@click.option("--grad", is_flag=True,
              help="Also back-propagate the loss (training mode): gradient norms and dynamic findings.")
@click.option("--save", type=click.Path(dir_okay=False), metavar="OUT.npz",
              help="Write the outputs (and, with --grad, the gradients) to an .npz file.")
@click.option("--save-activations", is_flag=True, help="With --save, also write every layer's output.")
@click.option("--no-fold", is_flag=True,
              help="At inference, run every layer as written: no batchnorm folded into the conv or dense layer "
                   "before it (whose own output then gets a row), no layer writing its output over its input, "
                   "no Winograd convolution.")
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Classes listed per sample for a softmax output.")
@click.option("--format", "-f", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True,
              help="Output format; `table` is plain text when not on a terminal.")
@click.option("--fail-on", type=click.Choice(SEVERITIES),
              help="With --grad, exit 1 when a finding has this severity or a higher one [default: the "
                   "configuration's `fail-on`, else warning].")
@config_options
def run(spec, data, batch, weights, seed, dtype, max_memory, threads, grad, labels, loss_kind, save, save_activations,
        no_fold, top_k, fmt, fail_on, config_path, no_config, no_custom_rules):
    """Run SPEC in NumPy on a batch and print, per layer, the output shape, mean and standard
    deviation, the share of zeros (dead ReLUs) and of saturated values (sigmoid/tanh), NaN/Inf
    counts and time; then the outputs (top-k classes for a softmax head).

    With --grad the batch runs in training mode (batch statistics, dropout) and a loss is
    back-propagated: per-layer gradient norms and dynamic findings (AC801-AC805) in lint's format,
    selected, configured and suppressed as lint does (the configuration is found from SPEC).

    At inference each batchnorm that is the only reader of a conv or dense layer is folded into it (one
    row, under the batchnorm's name), and element-wise layers write over an input that dies there; the
    output says so. In float32, 3x3 convolutions with 32 channels or more run by Winograd's F(4x4, 3x3)
    (Lavin & Gray, 2016), which rounds to about 1e-5 of the largest output instead of 1e-7; float64 runs
    every convolution directly. None of these changes a value beyond rounding, nor anything --grad
    computes; --no-fold runs every layer as written.

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
        threads = thread_count(threads)
        parts = executor.batch_parts(len(x), threads, train=grad, keep=save_activations, grad=grad)
        counted: dict[tuple[str, int], tuple] = {}  # per layer and part: its output's moments and seconds
        bar = progress_bar(len(parts) * (len(analysis.graph.order) - 1), analysis.totals.macs * len(x))

        def on_layer(node, y, seconds, rows=parts[0]):  # (from the thread running that part of the batch)
            counted[node.name, rows.start] = executor.moments(node, y, margin), seconds
            if bar is not None:
                bar.advance(bar.task_ids[0])

        tape = executor.Tape() if grad else None
        inference = executor.plan_for(analysis, train=grad, grad=grad, keep=save_activations, fold=not no_fold,
                                      batch=parts[0].stop, dtype=x.dtype)
        try:
            with np.errstate(all="ignore"):  # NaN and Inf are counted per layer and reported as AC805
                values = executor.forward(analysis, params, x, train=grad, keep=save_activations, tape=tape,
                                          seed=seed, on_layer=on_layer, fold=not no_fold, threads=threads)
                stats = {INPUT: executor.layer_stats(analysis.graph.nodes[INPUT], x, 0.0, margin)}
                for name in dict.fromkeys(name for name, _ in counted):  # in the order the layers ran
                    made = [counted[name, rows.start] for rows in parts]  # the parts in the order of their samples
                    counts = sum((m for m, _ in made[1:]), made[0][0])
                    seconds = max(s for _, s in made)  # the parts ran side by side
                    stats[name] = executor.summary(analysis.graph.nodes[name], counts, seconds)
                grads = loss_value = None
                backward_seconds = 0.0
                checked = Result([])
                if grad:
                    loss_value, seeds = executor.loss(analysis, values, targets, loss_kind)
                    start = time.perf_counter()
                    grads = executor.backward(analysis, params, tape, seeds, threads=threads)
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
                      dtype=dtype, mode="training" if grad else "inference", seconds=seconds, threads=len(parts),
                      findings=findings,
                      suppressed=checked.suppressed, backward_seconds=backward_seconds, inference=inference,
                      as_written="--no-fold" if no_fold else "--save-activations" if save_activations else None,
                      gradient_kernels=analysis.gradient_kernels(x.dtype) if grad else {})
        show(report, fmt)
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
