"""``archcheck train``: the "overfit one small batch" sanity check.

A network that can learn at all drives its loss on one small batch towards zero within a
few dozen steps; one that cannot (dead units, vanishing gradients, a bug in the wiring)
leaves it flat, and a bad learning rate makes it diverge.

Verdict: the check passes when every loss is finite and the final loss (the mean of the last
tenth of the steps) is at most ``FALL`` (one half) of the loss before the first update.
"""

from __future__ import annotations

import math
import sys

import click

from archcheck.commands import execution_options, reported_errors, spec_argument
from archcheck.commands._execution import prepare, targets_for
from archcheck.errors import EXIT_FINDINGS, EXIT_OK
from archcheck.render import escape
from archcheck.render.progress import progress_bar

FALL = 0.5
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "adam": 0.001}
MOMENTUM, BETA1, BETA2, ADAM_EPS = 0.9, 0.9, 0.999, 1e-8


class Optimizer:
    """SGD, SGD with momentum (PyTorch's form: v = 0.9 v + g; w -= lr v) or Adam (default betas)."""

    def __init__(self, kind: str, lr: float):
        self.kind, self.lr, self.t = kind, lr, 0
        self.m: dict = {}
        self.v: dict = {}

    def step(self, params: dict, grads: dict) -> None:
        import numpy as np

        self.t += 1
        for name, g in grads.items():
            w = params[name]
            if self.kind == "sgd":
                w -= self.lr * g
            elif self.kind == "momentum":
                v = self.v[name] = MOMENTUM * self.v.get(name, 0) + g
                w -= self.lr * v
            else:
                m = self.m[name] = BETA1 * self.m.get(name, 0) + (1 - BETA1) * g
                v = self.v[name] = BETA2 * self.v.get(name, 0) + (1 - BETA2) * g * g
                m_hat, v_hat = m / (1 - BETA1 ** self.t), v / (1 - BETA2 ** self.t)
                w -= (self.lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)).astype(w.dtype, copy=False)


def final_loss(losses: list[float]) -> tuple[float, str]:
    """The figure the verdict judges, the mean of the last tenth of the steps, and how to print it
    (it is a mean, and says so: the curve's last point is the last step alone)."""
    tail = losses[-max(1, len(losses) // 10):]
    final = sum(tail) / len(tail)
    return final, f"{final:.4g} (the mean of the last {len(tail)} steps)" if len(tail) > 1 else f"{final:.4g}"


def verdict(losses: list[float], steps: int) -> tuple[bool, str]:
    """Whether the loss fell as a trainable network's should, and why (see the module docstring)."""
    if not all(math.isfinite(v) for v in losses):
        at = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        return False, (f"the loss became {losses[at]} at step {at}: training diverged (lower --lr, check the "
                       "initialisation and normalisation)")
    first = losses[0]
    final, last = final_loss(losses)
    ratio = final / first if first > 0 else 0.0
    if ratio <= FALL:
        return True, (f"the loss fell from {first:.4g} at step 0 to {last}, {ratio:.1%} of the start, in {steps} "
                      "steps: the network can fit a small batch")
    return False, (f"the loss went from {first:.4g} at step 0 to {last}, {ratio:.1%} of the start (a trainable "
                   f"network reaches {FALL:.0%} or less), in {steps} steps: look for dead or saturated units and "
                   "vanishing gradients (`archcheck run --grad`), or try another --lr or more --steps")


def curve(losses: list[float], width: int = 60, height: int = 10) -> str:
    """The loss per step as a text chart: one column per step (or per group of steps)."""
    finite = [v for v in losses if math.isfinite(v)]
    if not finite:
        return "(no finite loss to plot)"
    cols = min(width, len(losses))
    groups = [losses[i * len(losses) // cols:(i + 1) * len(losses) // cols] for i in range(cols)]
    points = [sum(g) / len(g) for g in groups]
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    rows = []
    for r in range(height - 1, -1, -1):
        level_lo = lo + span * r / height
        line = "".join("*" if math.isfinite(p) and level_lo <= p <= level_lo + span / height + 1e-12 else
                       ("!" if not math.isfinite(p) and r == height - 1 else " ") for p in points)
        label = f"{hi:>10.4g} |" if r == height - 1 else f"{lo:>10.4g} |" if r == 0 else " " * 11 + "|"
        rows.append(label + line.rstrip())
    rows.append(" " * 11 + "+" + "-" * cols)
    rows.append(" " * 12 + f"step 0{' ' * max(1, cols - 6 - len(str(len(losses) - 1)))}{len(losses) - 1}")
    return "\n".join(rows)


@click.command()
@spec_argument
@click.option("--steps", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Training steps.")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam"]), default="momentum", show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None,
              help="Learning rate [default: 0.01 for sgd and momentum, 0.001 for adam].")
@execution_options(batch_default=4)
def train(spec, steps, optimizer, lr, data, batch, weights, labels, loss_kind, seed, dtype, max_memory):
    """Overfit one small batch: train SPEC on it for --steps and check that the loss falls.

    Prints the loss curve and a verdict: pass when every loss is finite and the mean loss of
    the last tenth of the steps is at most half the first loss.

    Exit 0 when the loss fell as a trainable network's should; 1 when it did not; 2 for an
    invalid spec, data, weights or labels; 3 for an internal error.
    """
    with reported_errors():
        import numpy as np

        from archcheck import executor
        from archcheck.propagate import param_shapes

        if batch is None and not data:
            batch = 4
        analysis, x, _, params, source = prepare(spec, data, batch, weights, seed, dtype, max_memory, training=True)
        targets = targets_for(analysis, labels, len(x), loss_kind, seed)
        lr = lr if lr is not None else DEFAULT_LR[optimizer]
        opt = Optimizer(optimizer, lr)
        trainable = [k for k, (_, t) in param_shapes(analysis).items() if t]
        click.echo(escape.terminal(f"{analysis.spec.name}: {steps} steps of {optimizer} (lr {lr:g}) on {source}; "
                                   f"{loss_kind}; {sum(params[k].size for k in trainable):,} trainable parameters; "
                                   f"{dtype}"))  # the spec's name and the data's file name are the user's text
        bar = progress_bar(steps, 3 * analysis.totals.macs * len(x) * steps)
        losses = []
        try:
            with np.errstate(all="ignore"):  # a diverging loss is the verdict, not a warning
                for step in range(steps):
                    value, _, grads = executor.gradients(analysis, params, x, targets, loss_kind, seed=seed + step)
                    losses.append(value)
                    if bar is not None:
                        bar.update(bar.task_ids[0], advance=1, description=f"loss {value:.4g}")
                    if not math.isfinite(value):
                        break
                    opt.step(params, {k: grads.params[k] for k in trainable})
        finally:
            if bar is not None:
                bar.stop()
        marks = sorted({0, *range(0, len(losses), max(1, len(losses) // 5)), len(losses) - 1})
        click.echo("loss: " + ", ".join(f"step {i}: {losses[i]:.4g}" for i in marks)
                   + f"; final {final_loss(losses)[1]}")
        click.echo(curve(losses))
        passed, why = verdict(losses, len(losses))
        click.echo(f"{'PASS' if passed else 'FAIL'}: {why}")
        sys.exit(EXIT_OK if passed else EXIT_FINDINGS)
