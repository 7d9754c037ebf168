"""## What it does
Flags a dense layer that reads the input feature map (image, signal or volume) with no convolution
before it: the network starts as a fully connected one on flattened pixels.

## Why is this bad?
A dense layer on pixels learns one weight per pixel, position and unit: it cannot share what it
learns at one position with another, ignores which pixels are neighbours, and needs a huge number of
weights (3,072 per unit for a 32x32 RGB image, 150,528 at 224x224). Convolutions exploit exactly the
structure images have, local patterns that recur anywhere, with a few shared weights. That is why
convolutional networks replaced fully connected ones for images.

Where it does not apply: inputs with no spatial extent (a feature vector) are not checked. A
locally connected layer (`locallyconnected`) counts as a convolution here.

## Example
```yaml
input: [3, 32, 32]
layers:
  - flatten
  - dense: 512
  - relu
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
None.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: flattening images for fully connected
  networks loses their spatial features and costs too many parameters; convolutional networks exist for that
  reason.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the parameter count of fully connected layers on images, and parameter sharing in
  convolutions.
"""

from __future__ import annotations

import math

from archcheck.findings import Report
from archcheck.layers.base import fmt_shape
from archcheck.spec import INPUT

from ._walk import before, is_weight, spatial, used

CODE = "AC504"
SLUG = "dense-on-image"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Dense layer on the flattened input with no convolution before it."


def check(analysis, options):
    image = analysis.layers[INPUT].shape
    if not any(s > 1 for s in spatial(image)):
        return
    for node in used(analysis):
        if node.layer.category != "dense" or analysis.layers[node.name].in_shapes[0][0] != math.prod(image):
            continue  # it does not read every input value
        if all(p.name == INPUT for p in before(analysis, node, lambda n: not is_weight(n))):
            yield Report(
                node,
                f"reads the flattened {fmt_shape(image)} input ({math.prod(image):,} values) with no convolution "
                f"before it: one weight per pixel and unit, nothing shared between positions (expected "
                f"convolutions before the dense layers)",
                "start with convolution stages (`conv: {filters: 32, kernel: 3, padding: 1}`, `relu`, `maxpool: 2`), "
                "then `globalavgpool` and the dense classifier",
            )
