"""## What it does
Flags an unpadded convolution (`padding: 0` or `valid`) whose kernel is larger than 1, so the map
shrinks by `kernel - 1` pixels along each axis.

## Why is this bad?
Without padding, each convolution loses a border strip, and the pixels near the border take part in
fewer outputs than those in the middle, so features at the edges of the image are under-represented.
The loss compounds: a few unpadded layers eat a large share of a small map (14x14 to 10x10 is half
the positions), and the sizes stop lining up with the poolings. Zero padding of `(kernel - 1) / 2`
keeps the size and gives the border its share.

Where it does not apply: some classic designs shrink on purpose, with the padding done once on the
data instead (LeNet-5 takes 32x32 images padded from 28x28 digits, then uses valid 5x5
convolutions); segmentation networks such as the original U-Net use valid convolutions and crop.
Suppress the finding there. A `zeropad` right before the convolution (through activations,
normalisations or dropout) is its padding written one layer early, as Keras and TF-Slim do: the
convolution is judged on the map before that padding.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3}        # 32x32 -> 30x30
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}   # 32x32 -> 32x32
  - relu
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: add padding so that the
  convolution does not lose the size of the channel.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: each unpadded convolution shrinks the image and uses the border pixels less; pad with `p =
  (f - 1) / 2` ("same") so the conv layer does not alter the spatial dimensions.
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import covers_map, explicit_padding, is_conv, size, used, wide, window

CODE = "AC206"
SLUG = "shrinking-conv"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Unpadded convolution that shrinks the feature map."


def check(analysis, options):
    for node in used(analysis):
        if not is_conv(node) or node.layer.upsamples:
            continue
        g = window(analysis, node)
        if any(p for pair in g.pads for p in pair) or max(g.kernel) == 1 or covers_map(analysis, node):
            continue  # padded, 1x1, or a dense layer written as a convolution
        # a `zeropad` just before is this convolution's padding, written one layer early
        sizes = [n - b - a for n, (b, a) in zip(g.in_sizes, explicit_padding(analysis, node))]
        kept = [-(-n // s) for n, s in zip(sizes, g.stride)]  # what 'same' padding would give
        if all(o >= k for o, k in zip(g.out_sizes, kept)):
            continue
        lost = 1 - math.prod(g.out_sizes) / math.prod(kept)
        same = "x".join(str(d * (k - 1) // 2) for k, d in zip(g.kernel, g.dilation))
        yield Report(
            node,
            f"has no padding, so its {wide(g.kernel)} kernel shrinks {size(sizes)} to {size(g.out_sizes)} "
            f"(expected {size(kept)}; {lost:.0%} of the positions are lost at the borders)",
            f"pad it: `padding: {same if len(set(same.split('x'))) > 1 else same.split('x')[0]}` (or `padding: same`)",
        )
