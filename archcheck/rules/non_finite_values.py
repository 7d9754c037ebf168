"""## What it does
During `archcheck run --grad`, reports NaN or Inf values: in a layer's output (once, at the first
layer in execution order where they appear, with their counts), and in the weight gradients or the
loss (naming the first array, in backward order, that holds them).

## Why is this bad?
One NaN spreads to everything computed from it: the loss becomes NaN, every gradient becomes NaN,
and one update writes NaN into every weight, after which the network only ever outputs NaN.
Inf values come from overflow (float32 ends near 3.4e38), usually from weights or inputs on a huge
scale, a learning rate that made training diverge, or a division by a value near zero; NaN then
follows from Inf - Inf or 0 x Inf. The first layer where they appear is where to look.

Where it does not apply: nowhere; the run's numbers are meaningless from that layer on. This is
why the rule is an error, and why `vanishing-gradient` and `exploding-gradient` say nothing about a
run with non-finite gradients.

## Example
```yaml
input: [2, 6, 6]
layers:
  - conv: {filters: 4, kernel: 3}
  - relu
  - conv: {filters: 4, kernel: 3}
  - flatten
  - dense: 2
```
run on one sample with the weights of a training run that diverged, in which both
convolutions' weights have grown to about 1e20 (the second's all positive):
```console
$ archcheck run net.yaml --grad --weights diverged.npz
net.yaml:5:5: AC805 non-finite-values [error] layer 'conv_2': the output of this conv layer holds 0 NaN and 16 Inf values (of 16); they first appear here
  = fix: look for an overflow here: large weights or inputs, a too high learning rate, or a division by a value near zero
net.yaml:7:5: AC805 non-finite-values [error] layer 'dense_1': the gradient of dense_1.weight and 5 other arrays holds NaN or Inf values
  = fix: lower the learning rate or the initial weight scale; check the input for extreme values
```

## Use instead
```yaml
input: [2, 6, 6]
layers:
  - conv: {filters: 4, kernel: 3}
  - relu
  - conv: {filters: 4, kernel: 3}
  - flatten
  - dense: 2
```
with weights from before the divergence, or freshly initialised ones; then train again with a
lower learning rate (or gradient clipping), and check the input for extreme values.

## Options
None.

## References
- AUTOTRAINER (Zhang et al., *AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System*,
  ICSE 2021): NaN in the loss or the weights is the first symptom it checks.
- IEEE 754: float32's largest finite value is about 3.4e38; Inf - Inf and 0 x Inf give NaN.
"""  # noqa: E501 (the console block quotes a finding verbatim)

from __future__ import annotations

import math

from archcheck.findings import Report

CODE = "AC805"
SLUG = "non-finite-values"
SEVERITY = "error"
KIND = "dynamic"
OPTIONS: dict = {}
SUMMARY = "NaN or Inf in an activation, a gradient or the loss."

FIX_GRADIENT = "lower the learning rate or the initial weight scale; check the input for extreme values"


def check(run, options):
    nodes = run.analysis.graph.nodes
    first = next((s for s in run.stats.values() if s.nan or s.inf), None)
    if first is not None:
        yield Report(
            nodes[first.name],
            f"the output of this {first.type} layer holds {first.nan:,} NaN and {first.inf:,} Inf values (of "
            f"{math.prod(first.shape):,}); they first appear here",
            "look for an overflow here: large weights or inputs, a too high learning rate, or a division by a value "
            "near zero",
        )
    bad = [name for name, finite in run.grad_finite.items() if not finite]
    if bad:
        depth = {node.name: i for i, node in enumerate(run.analysis.graph.order)}
        bad.sort(key=lambda array: -depth[array.rsplit(".", 1)[0]])  # backward order: where backpropagation met it
        others = f" and {len(bad) - 1} other arrays" if len(bad) > 1 else ""
        yield Report(nodes[bad[0].rsplit(".", 1)[0]], f"the gradient of {bad[0]}{others} holds NaN or Inf values",
                     FIX_GRADIENT)
    elif not math.isfinite(run.loss):
        yield Report(None, "the loss holds NaN or Inf values", FIX_GRADIENT)

