"""## What it does
During `archcheck run --grad`, compares the gradient of the loss with respect to the weights of the
first weighted (conv or dense) layer with that of the last one, as AUTOTRAINER does, and flags the
network when the first layer's weight-gradient norm is more than `max_ratio` times the last one's.

## Why is this bad?
Backpropagation multiplies the derivatives of every layer on the way back to the input; when those
factors are larger than one (weights initialised too large, no normalisation), the gradient grows
exponentially towards the first layers. Their updates are then far larger than the later layers'
and than the weights themselves: the loss jumps about, and a few steps later the values overflow
to Inf and NaN (see `non-finite-values`).

Where it does not apply: the first step after a deliberate re-initialisation of the early layers
can show a large ratio that settles within a few steps, and optimizers that normalise each
parameter's step (Adam) soften the effect. Confirm on a few batches before acting.

## Example
```yaml
input: [2, 6, 6]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - flatten
  - dense: 3
```
run with weights initialised on the wrong scale: `conv_1`'s a thousand times too small, those of
`conv_2` to `conv_4` ten times too large, so the backward signal grows a thousandfold on its way
to `conv_1`:
```console
$ archcheck run net.yaml --grad --batch 2 --weights custom_init.npz
net.yaml:3:5: AC804 exploding-gradient [warning] layer 'conv_1': the weight-gradient norm of the first weighted layer 'conv_1' is 1.15e+03, 176 times that of the last, 'dense_1' (6.57): above 70, so early layers take huge steps
  = fix: add normalisation, lower the learning rate or the initial weight scale, or clip gradients
```

## Use instead
```yaml
input: [2, 6, 6]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - flatten
  - dense: 3
```
with archcheck's default initialisation (He-normal before ReLUs, Glorot otherwise: every layer
keeps the signal's scale), where the ratio is about 0.2. Lowering the learning rate or clipping
the gradient norm limits the damage of a large ratio; note that batch normalisation after a layer
whose weights are far too small makes that layer's gradient larger still.

## Options
- `max_ratio` (default 70.0): the largest accepted ratio of the first to the last weighted layer's
  weight-gradient norm (AUTOTRAINER's β3).

## References
- The blog post *Forward and Backward Propagation using Convolution operation*: by the chain rule the derivatives
  of each layer are multiplied down the network, from the final layer to the initial one.
- AUTOTRAINER (Zhang et al., *AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System*,
  ICSE 2021): the exploding-gradient detector, its ratio of the first to the last layer's gradient and its
  default threshold β3 = 70.
- Pascanu et al., *On the difficulty of training recurrent neural networks* (2013): gradient clipping.
"""  # noqa: E501 (the console block quotes a finding verbatim)

from __future__ import annotations

from archcheck.findings import Report
from archcheck.rules._gradient_flow import describe

CODE = "AC804"
SLUG = "exploding-gradient"
SEVERITY = "warning"
KIND = "dynamic"
OPTIONS = {"max_ratio": 70.0}
SUMMARY = "The first layer's gradient is huge next to the last layer's."


def validate(options):
    if options["max_ratio"] <= 0:
        raise ValueError("max_ratio", "a ratio above 0")


def check(run, options):
    flow = run.gradient_ratio() if run.finite else None  # non-finite gradients are non-finite-values' business
    if flow is None or flow.ratio <= options["max_ratio"]:
        return
    yield Report(
        flow.first,
        f"{describe(flow)}: above {options['max_ratio']:g}, so early layers take huge steps",
        "add normalisation, lower the learning rate or the initial weight scale, or clip gradients",
    )
