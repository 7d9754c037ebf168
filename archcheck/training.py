"""The "overfit one small batch" sanity check behind ``archcheck train``.

A network that can learn at all drives its loss on one small batch towards zero within a
few dozen steps; one that cannot (dead units, vanishing gradients, a bug in the wiring)
leaves it flat, and a bad learning rate makes it diverge.

Verdict: the check passes when every loss is finite and the final loss (the mean of the last
tenth of the steps) is at most ``FALL`` (one half) of the loss before the first update.

The optimizers are those whose state ``archcheck summary`` counts in training memory
(``propagate.OPTIMIZER_STATES``).
"""

from __future__ import annotations

import math

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


def trainable(analysis) -> list[str]:
    """The names of the weights an optimizer updates (not the buffers such as running statistics)."""
    from archcheck.propagate import param_shapes

    return [k for k, (_, t) in param_shapes(analysis).items() if t]


def overfit(analysis, params: dict, x, targets, loss_kind: str, optimizer: Optimizer, steps: int, seed: int,
            on_step=None, threads: int = 1) -> list[float]:
    """Train ``params`` in place on the one batch ``x`` for ``steps``: the loss before each update. It stops at
    the first loss that is not finite (the verdict's business, not a warning); ``on_step(loss)`` after each;
    ``threads`` as for ``executor.gradients``."""
    import numpy as np

    from archcheck import executor

    names = trainable(analysis)
    losses = []
    with np.errstate(all="ignore"):
        for step in range(steps):
            value, _, grads = executor.gradients(analysis, params, x, targets, loss_kind, seed=seed + step,
                                                  input_grad=False, threads=threads)
            losses.append(value)
            if on_step is not None:
                on_step(value)
            if not math.isfinite(value):
                break
            optimizer.step(params, {k: grads.params[k] for k in names})
    return losses


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
