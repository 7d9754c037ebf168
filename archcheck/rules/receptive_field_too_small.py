"""## What it does
Flags a global pooling head (or a pooling to 1x1, such as `adaptiveavgpool: 1`) whose input features each
see less than `min_share` of the input along some axis: the receptive field of the last feature map does
not cover the image.

## Why is this bad?
Global pooling averages (or maxes) features that each look at one window of the input. If that
window is smaller than the image, no single feature ever sees the object whole or relates its
distant parts; the classifier can only vote among local views. And the theoretical field is an upper
bound: the effective field, where most of the weight lies, is considerably smaller. Classification
networks at 224x224 have fields of 400 pixels and more (ResNet-50: 427).

Where it does not apply: heads that flatten the map into dense layers combine every position and
see the whole input (VGG, AlexNet, LeNet); they are not checked. Nor are networks without a global
head (segmentation), which need local context rather than the whole image.

## Example
```yaml
input: [3, 64, 64]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - globalavgpool         # each feature sees 8x8 of the 64x64 input
  - dense: 10
```

## Use instead
More stages before the head, until the field covers the input (`archcheck summary` shows the field
of every layer):
```yaml
input: [3, 64, 64]
blocks:
  stage:
    args: {filters: ~}
    layers:
      - conv: {filters: $filters, kernel: 3, padding: 1}
      - relu
      - conv: {filters: $filters, kernel: 3, padding: 1}
      - relu
      - maxpool: 2
layers:
  - stage: {filters: 16}
  - stage: {filters: 32}
  - stage: {filters: 64}
  - conv: {filters: 128, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 128, kernel: 3, padding: 1}
  - relu
  - globalavgpool         # each feature sees 68x68: the whole input
  - dense: 10
```

## Options
- `min_share` (default 1.0): the share of the input, per axis, the last features must see.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*, citing *Computing Receptive
  Fields of Convolutional Neural Networks* (Araujo, Norris and Sim, Distill 2019): the field should cover the
  input for classification; accuracy grows with it.
- Luo et al., *Understanding the Effective Receptive Field in Deep Convolutional Neural Networks* (2016): the
  effective field is a fraction of the theoretical one.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import heads, pools_whole_map, size, spatial

CODE = "AC210"
SLUG = "receptive-field-too-small"
SEVERITY = "warning"
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"min_share": 1.0}
SUMMARY = "Receptive field of the last features does not cover the input."


def validate(options):
    if not 0 < options["min_share"] <= 1:
        raise ValueError("min_share", "a share above 0 and at most 1")


def check(analysis, options):
    image = spatial(analysis.layers[INPUT].shape)
    for node in heads(analysis):
        if not pools_whole_map(analysis, node):
            continue
        rf = analysis.layers[node.inputs[0]].rf
        if rf.is_global or len(rf.axes) != len(image):
            continue
        seen = [int(a.r) for a in rf.axes]
        if all(r >= options["min_share"] * n for r, n in zip(seen, image)):
            continue
        share = min(r / n for r, n in zip(seen, image))
        step = 2 * max(int(a.S) for a in rf.axes)
        yield Report(
            node,
            f"pools features that each see {size(seen)} positions of the {size(image)} input ({share:.0%} along the "
            f"narrowest axis; expected at least {options['min_share']:.0%}): no feature sees the whole input",
            f"add convolutions or another downsampling stage before the head (a 3x3 convolution here widens the field "
            f"by {step}); `archcheck summary` shows the field of every layer",
        )
