"""## What it does
Flags a classifier head (global pooling or flatten) that receives a feature map far from about 7x7:
smaller than `target / factor` or larger than `target x factor` along its height or width.

## Why is this bad?
The convolutional part of a classifier is meant to reduce the image to a small grid of rich
features. Well-tuned networks at 224x224 all end near 7x7 (VGG, ResNet, GoogLeNet, MobileNet). A
much larger final map means the network stopped downsampling early: its last features are local,
and a dense head on them is huge. A much smaller one (1x1, 2x2) means it downsampled past the point
where positions carry information, wasting the last stages on a few pixels.

Where it does not apply: 1-D networks (time series, text) are not checked; for 3-D inputs only the
height and width are. A head on the raw input (no feature extraction at all) is `dense-on-image`'s
finding, not this one. Small inputs end on smaller maps (a CIFAR network at 32x32 ends at 8x8 or
4x4, within the default range). Dense prediction networks (segmentation, detection) keep large maps
on purpose; they have no global head and are not checked.

## Example
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
    repeat: 3             # 224 -> 28
  - globalavgpool         # averages a 28x28 map
  - dense: 10
```

## Use instead
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
    repeat: 5             # 224 -> 7
  - globalavgpool
  - dense: 10
```

## Options
- `target` (default 7): the final map size aimed at, per side.
- `factor` (default 2): how far from `target` a size may be, as a factor either way (with the
  defaults: 4 to 14).

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: networks start from 224x224 and
  like a 7x7 map in the last layer, consistently across architectures.
"""

from __future__ import annotations

import math

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import before, heads, passes, size, spatial

CODE = "AC209"
SLUG = "final-map-size"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"target": 7, "factor": 2.0}
SUMMARY = "Feature map entering the classifier head far from about 7x7."


def validate(options):
    if options["target"] < 1:
        raise ValueError("target", "a map size of at least 1")
    if options["factor"] < 1:
        raise ValueError("factor", "a factor of at least 1 (1 accepts only `target` itself)")


def check(analysis, options):
    low = math.ceil(options["target"] / options["factor"])
    high = math.floor(options["target"] * options["factor"])
    for node in heads(analysis):
        sizes = spatial(analysis.layers[node.name].in_shapes[0])
        if len(sizes) < 2 or any(p.name == INPUT for p in before(analysis, node, passes)):
            continue  # 1-D, or the raw input flattened: dense-on-image's business
        plane = sizes[-2:]
        if all(low <= s <= high for s in plane):
            continue
        larger = max(plane) > high
        yield Report(
            node,
            f"receives a {size(sizes)} feature map (expected about {options['target']}x{options['target']}: "
            f"{low} to {high} per side)",
            ("downsample further before the head: add a stage of convolutions ending in `maxpool: 2`"
             if larger else "downsample less: remove a pooling or a stride, or feed a larger input"),
        )
