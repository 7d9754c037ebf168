"""## What it does
Flags an input whose spatial size is not divisible by the network's total downsampling factor (the
product of all its strides, e.g. 32 for five stride-2 stages).

## Why is this bad?
Every stride-2 layer halves the map. When a size is odd at that point, the half is rounded, and a
row or column at the border is dropped or padded differently on each side; after several stages the
maps no longer line up with the input grid (a feature's position stops being `stride x index`), and
skip connections or upsampling paths must crop or pad to fit. Sizes divisible by 2 as often as the
network downsamples (224 = 7 x 32) avoid all of it.

Where it does not apply: networks meant to run at many input sizes handle the rounding on purpose
(with `ceil_mode` or "same" padding); check the sizes you actually deploy with
`archcheck summary --input`. Nor does it apply when every downsampling window tiles its padded
input exactly, as unpadded designs arrange (Inception-v3's 299: 299 -> 149 -> 147 -> 73, OverFeat's
231): nothing is rounded, whatever the total factor.

## Example
```yaml
input: [3, 225, 225]      # five 2x2 poolings: 225 is not divisible by 32
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2, ceil_mode: true}
    repeat: 5
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 224, 224]      # 224 = 7 x 32
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
    repeat: 5
  - globalavgpool
  - dense: 10
```

## Options
None.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the input size should be divisible by 2 many times (32, 64, 96, 224, 384, 512).
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import downsamples, per_axis, size, spatial, used, window

CODE = "AC208"
SLUG = "input-not-divisible"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "network"  # needs the whole network (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Input size not divisible by the network's total downsampling factor."


def _rounds(g) -> bool:
    """Whether a downsampling window's last positions fall off its padded input (floor rounds them away);
    never for the cells of an adaptive pooling that do not slide, which tile the input exactly."""
    return g is not None and g.slides and any((n + b + a - d * (k - 1) - 1) % s
                                 for n, (b, a), k, s, d in zip(g.in_sizes, g.pads, g.kernel, g.stride, g.dilation))


def check(analysis, options):
    sizes = spatial(analysis.layers[INPUT].shape)
    deepest, where = [1] * len(sizes), [None] * len(sizes)
    for node in used(analysis):
        if not downsamples(analysis, node):
            continue  # the total stride only grows at downsampling layers
        rf = analysis.layers[node.name].rf
        if rf.is_global or len(rf.axes) != len(sizes):
            continue
        for i, axis in enumerate(rf.axes):
            if axis.S > deepest[i] and axis.S.denominator == 1:
                deepest[i], where[i] = int(axis.S), node.name
    bad = [i for i, (n, s) in enumerate(zip(sizes, deepest)) if n % s]
    if not bad or not any(_rounds(window(analysis, n)) for n in used(analysis) if downsamples(analysis, n)):
        return  # divisible, or every downsampling window tiles its padded input exactly: nothing is rounded
    i = bad[0]
    fits = [(n // s) * s or s for n, s in zip(sizes, deepest)]
    bigger = [(n // s + 1) * s for n, s in zip(sizes, deepest)]
    yield Report(
        analysis.graph.nodes[INPUT],
        f"the input {size(sizes)} is not divisible by the network's total downsampling {per_axis(deepest)} (reached at "
        f"'{where[i]}'): {sizes[i]} / {deepest[i]} = {sizes[i] / deepest[i]:.4g}, so sizes are rounded at the "
        f"downsampling layers (expected a multiple of {deepest[i]})",
        f"use an input of {size(fits)} or {size(bigger)}",
    )
