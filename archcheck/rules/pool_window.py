"""## What it does
Flags a downsampling pooling (`maxpool` or `avgpool`) whose window and stride are not one of the
usual pairs: 2x2 with stride 2, or 3x3 with stride 2 (overlapping pooling).

## Why is this bad?
Pooling has no weights to compensate for a poor choice. A 2/2 window halves each side and sees
every pixel once; a 3/2 window (AlexNet's overlapping pooling) also halves it, a little more
smoothly. Larger windows or strides (4/4, 3/3, 5/2) discard most of the map in one step, and a
window smaller than its stride never looks at some pixels at all. Downsampling harder than 2 at once
is better done in two pooling stages with convolutions between them.

Where it does not apply: pooling with stride 1 (Inception's 3x3 pooling branch, spatial pyramid
pooling) does not downsample and is not checked, nor is global pooling. An axis with window 1 and
stride 1 is not pooled (C3D pools `[1, 2, 2]` to keep the time axis) and is accepted.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 4            # 4x4 window, stride 4: 15 of every 16 values dropped
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - globalavgpool
  - dense: 10
```

## Options
- `allowed` (default `[[2, 2], [3, 2]]`): the accepted `[window, stride]` pairs, per axis.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the pooling window and stride in common use are f=2, s=2 and f=3, s=2.
- Krizhevsky, Sutskever and Hinton, *ImageNet Classification with Deep Convolutional Neural Networks* (2012):
  overlapping 3/2 pooling.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import per_axis, pooling, size, used, window

CODE = "AC103"
SLUG = "pool-window"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"allowed": [[2, 2], [3, 2]]}
SUMMARY = "Pooling window and stride other than 2/2 or 3/2."


def validate(options):
    pairs = options["allowed"]
    if not all(isinstance(p, list) and len(p) == 2 and all(type(v) is int and v >= 1 for v in p) for p in pairs):
        raise ValueError("allowed", "[window, stride] pairs of whole numbers of at least 1, such as [[2, 2], [3, 2]]")


def check(analysis, options):
    allowed = {tuple(pair) for pair in options["allowed"]} | {(1, 1)}  # pairs checked by validate()
    shown = " or ".join(f"{k}/{s}" for k, s in sorted(allowed - {(1, 1)}))
    for node in used(analysis):
        if not pooling(analysis, node):
            continue
        g = window(analysis, node)
        if all(pair in allowed for pair in zip(g.kernel, g.stride)):
            continue
        pools = (f"pools with window {size(g.kernel)} and stride {per_axis(g.stride)}" if g.slides else
                 f"pools {size(g.in_sizes)} to {size(g.out_sizes)} adaptively, in cells up to {size(g.kernel)} wide "
                 f"and at least {per_axis(g.stride)} apart")
        yield Report(
            node,
            f"{pools} (expected window/stride {shown})",
            "use `maxpool: 2` (or `{kernel: 3, stride: 2}`); to downsample by more than 2, pool twice with "
            "convolutions in between",
        )
