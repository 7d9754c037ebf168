"""## What it does
Flags a convolution with an even kernel size (2x2, 4x4, ...) on some axis.

## Why is this bad?
An even kernel has no centre pixel and no axis of symmetry: its output sits between input pixels.
Padding that keeps the size must then be lopsided (one pixel before, two after for a 4x4 kernel), so
every such layer shifts the features by half a pixel, and the shifts add up through the network.
Odd kernels (3x3, 5x5) keep features aligned with the pixels they came from; a 4x4 field is better
had from two stacked 3x3 convolutions (5x5) with fewer weights.

Where it does not apply: pooling windows (2x2 is the standard pooling) and transposed convolutions,
where a kernel divisible by the stride (4x4 with stride 2) is exactly what avoids checkerboard
artefacts, are not checked. Kernels of 1 are odd and fine. Nor is an even kernel whose windows are centred on
the cells they step over: kernel minus stride even, and half of it as padding on each side, so the
map shrinks by exactly the stride. That is a *patchify* convolution, whose kernel equals its stride
(ConvNeXt's 4x4/4 stem and 2x2/2 downsampling, a vision transformer's patch embedding: windows that
do not overlap need no centre), and DCGAN's 4x4 stride-2 convolutions with padding 1. Nor is a
kernel that covers its whole input map, a dense layer written as a convolution.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 4, padding: same}
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: 3x3 kernels are used mostly for
  their axis of symmetry; a 4x4 kernel loses the fine detail a 3x3 keeps, and two stacked 3x3 convolutions
  cover a 4x4 behaviour and more.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: by convention the filter size is odd, so that "same" padding `(f - 1) / 2` is whole.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import covers_map, is_conv, size, used, wide, window

CODE = "AC204"
SLUG = "even-kernel"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Convolution with an even kernel size (no centre pixel)."


def check(analysis, options):
    for node in used(analysis):
        if not is_conv(node) or node.layer.upsamples:
            continue
        g = window(analysis, node)
        kernels = g.kernel
        if all(k % 2 for k in kernels) or covers_map(analysis, node) or all(
                (k - s) % 2 == 0 and b == a == (k - s) // 2 for k, s, (b, a) in zip(g.kernel, g.stride, g.pads)):
            continue  # odd; a dense layer; or windows centred on the cells they step over (4x4/2 pad 1, 4x4/4)
        odd = [k if k % 2 else max(k - 1, 3) for k in kernels]
        yield Report(
            node,
            f"has a {wide(kernels)} kernel, even along some axis: it has no centre pixel and 'same' padding must be "
            f"lopsided (expected odd kernel sizes)",
            f"use the odd kernel {size(odd)} (`kernel: {odd[0] if len(set(odd)) == 1 else odd}`, padding "
            f"{max(odd) // 2}); for a wider field, stack two 3x3 convolutions",
        )
