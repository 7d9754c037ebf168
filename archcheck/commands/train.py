"""``archcheck train``: the "overfit one small batch" sanity check (``archcheck.training``)."""

from __future__ import annotations

import sys

import click

from archcheck.commands import execution_options, reported_errors, spec_argument
from archcheck.commands._execution import prepare, targets_for, thread_count
from archcheck.errors import EXIT_FINDINGS, EXIT_OK
from archcheck.propagate import OPTIMIZER_STATES
from archcheck.render import escape
from archcheck.render.progress import progress_bar
from archcheck.render.run import gradient_line
from archcheck.render.training import curve, loss_line
from archcheck.training import DEFAULT_LR, Optimizer, overfit, trainable, verdict


@click.command()
@spec_argument
@click.option("--steps", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Training steps.")
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="momentum", show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None,
              help="Learning rate [default: 0.01 for sgd and momentum, 0.001 for adam].")
@execution_options(batch_default=4)
def train(spec, steps, optimizer, lr, data, batch, weights, labels, loss_kind, seed, dtype, max_memory, threads):
    """Overfit one small batch: train SPEC on it for --steps and check that the loss falls.

    Prints the loss curve and a verdict: pass when every loss is finite and the mean loss of
    the last tenth of the steps is at most half the first loss.

    Exit 0 when the loss fell as a trainable network's should; 1 when it did not; 2 for an
    invalid spec, data, weights or labels; 3 for an internal error.
    """
    with reported_errors():
        if batch is None and not data:
            batch = 4
        analysis, x, _, params, source = prepare(spec, data, batch, weights, seed, dtype, max_memory, training=True)
        targets = targets_for(analysis, labels, len(x), loss_kind, seed)
        lr = lr if lr is not None else DEFAULT_LR[optimizer]
        click.echo(escape.terminal(f"{analysis.spec.name}: {steps} steps of {optimizer} (lr {lr:g}) on {source}; "
                                   f"{loss_kind}; {sum(params[k].size for k in trainable(analysis)):,} trainable "
                                   f"parameters; {dtype}"))  # the spec's name and the data's file name are the user's
        if kernels := analysis.gradient_kernels(x.dtype):
            click.echo(gradient_line(kernels))
        bar = progress_bar(steps, 3 * analysis.totals.macs * len(x) * steps)

        def on_step(loss):
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, description=f"loss {loss:.4g}")

        try:
            losses = overfit(analysis, params, x, targets, loss_kind, Optimizer(optimizer, lr), steps, seed, on_step,
                             threads=thread_count(threads))
        finally:
            if bar is not None:
                bar.stop()
        click.echo(loss_line(losses))
        click.echo(curve(losses))
        passed, why = verdict(losses, len(losses))
        click.echo(f"{'PASS' if passed else 'FAIL'}: {why}")
        sys.exit(EXIT_OK if passed else EXIT_FINDINGS)
