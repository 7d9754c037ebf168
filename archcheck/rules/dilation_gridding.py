"""## What it does
Flags a dilated convolution that directly follows another dilated convolution (only normalisation,
activation or dropout between) when their dilation rates share a factor above 1 on some axis, such
as 2 then 2, or 2 then 4.

## Why is this bad?
A convolution with dilation 2 reads every second pixel. Stacked on another one with a rate that is
also even, it still only combines pixels on that grid of step 2: the pixels in between never meet,
and the output shows a grid pattern and misses local detail (the "gridding" problem). Rates without
a common factor (1, 2, 5 or 1, 2, 3, as in hybrid dilated convolution) fill the holes.

Where it does not apply: a single dilated convolution, or parallel dilated branches that are
concatenated (ASPP in DeepLab), are not stacks and are not flagged.

## Example
```yaml
input: [256, 64, 64]
layers:
  - conv: {filters: 256, kernel: 3, dilation: 2, padding: 2}
  - relu
  - conv: {filters: 256, kernel: 3, dilation: 2, padding: 2}
  - relu
```

## Use instead
```yaml
input: [256, 64, 64]
layers:
  - conv: {filters: 256, kernel: 3, dilation: 1, padding: 1}
  - relu
  - conv: {filters: 256, kernel: 3, dilation: 2, padding: 2}
  - relu
  - conv: {filters: 256, kernel: 3, dilation: 5, padding: 5}
  - relu
```

## Options
None.

## References
- Wang et al., *Understanding Convolution for Semantic Segmentation* (2018): the gridding effect of stacked
  dilated convolutions with a common rate, and hybrid dilated convolution.
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*, citing *Computing Receptive
  Fields of Convolutional Neural Networks* (Araujo, Norris and Sim, Distill 2019): dilation enlarges the field
  without covering it densely.
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import before, is_conv, per_axis, used, window

CODE = "AC207"
SLUG = "dilation-gridding"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Stacked dilated convolutions whose rates share a factor (gridding)."


def _between(node) -> bool:
    """Layers on one path that keep each position apart: normalisations, activations, dropout, identity."""
    return node.layer.pointwise and len(node.inputs) == 1


def check(analysis, options):
    for node in used(analysis):
        if not is_conv(node):
            continue
        rates = window(analysis, node).dilation
        if max(rates) == 1:
            continue
        for prev in before(analysis, node, _between):
            if not is_conv(prev):
                continue
            earlier = window(analysis, prev).dilation
            common = max(math.gcd(a, b) for a, b in zip(earlier, rates))
            if common == 1:
                continue
            yield Report(
                node,
                f"has dilation {per_axis(rates)} right after '{prev.name}' with dilation {per_axis(earlier)}: the "
                f"rates share the factor {common}, so the stack only combines pixels on a grid of step {common} "
                f"(expected rates without a common factor)",
                "use rates without a common factor along the stack, such as 1, 2, 5 (hybrid dilated convolution), or "
                "put an undilated convolution between them",
            )
