"""## What it does
Flags sliding windows whose stride does not fit their kernel:

- a transposed convolution whose kernel is not divisible by its stride: neighbouring output pixels
  receive different numbers of contributions (1 and 2 for a 3x3 kernel with stride 2), which prints
  a checkerboard pattern on everything it generates;
- a convolution or pooling whose window is smaller than its stride (or whose dilation shares a
  factor with it): some input pixels are never read at all (a 1x1 convolution with stride 2 sees one
  pixel in four).

## Why is this bad?
The checkerboard of a transposed convolution is built into the layer: training can only hide it by
learning carefully balanced weights, and it rarely does. Pixels that a strided window skips are lost
to the rest of the network; for a 1x1 stride-2 convolution that is three quarters of its input.

Where it does not apply: a forward convolution whose kernel is larger than its stride but not a
multiple of it (the ubiquitous 3x3 stride 2 of ResNet and MobileNet) also covers pixels unevenly, 1,
2 or 4 times; it loses nothing, the network learns around it, and `strided-conv` reports it as
information. ResNet's 1x1 stride-2 projection shortcuts *are* flagged: they ignore three quarters of
their input, which is what ResNet-D (an average pooling before a stride-1 projection) fixes.

## Example
```yaml
input: [512, 8, 8]
layers:
  - convtranspose: {filters: 256, kernel: 3, stride: 2, padding: 1, output_padding: 1}   # 8x8 -> 16x16
```

## Use instead
A kernel divisible by the stride, or `upsample: 2` followed by a 3x3 convolution:
```yaml
input: [512, 8, 8]
layers:
  - convtranspose: {filters: 256, kernel: 4, stride: 2, padding: 1}   # 8x8 -> 16x16
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: with stride 2 pixels are
  covered once, twice or more, never evenly, which distorts and blurs the information; and its reference
  *Deconvolution and Checkerboard Artifacts* (Odena, Dumoulin and Olah, Distill 2016): uneven overlap when the
  kernel is not divisible by the stride.
- He et al., *Bag of Tricks for Image Classification with Convolutional Neural Networks* (2019): the 1x1
  stride-2 shortcut ignores three quarters of its input (ResNet-D).
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import coverage, per_axis, used, wide, window

CODE = "AC202"
SLUG = "uneven-stride-coverage"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Stride that does not fit the kernel: checkerboard (transposed conv) or pixels never read."


def check(analysis, options):
    for node in used(analysis):
        if not node.layer.window:
            continue
        g = window(analysis, node)
        kernels, strides, dilations = g.kernel, g.stride, g.dilation
        counts = [coverage(k, s, d) for k, s, d in zip(kernels, strides, dilations)]
        if node.layer.upsamples:
            if all(c.low == c.high for c in counts):
                continue
            spread = sorted(set().union(*(c.counts for c in counts)))
            yield Report(
                node,
                f"upsamples with a {wide(kernels)} kernel and stride {per_axis(strides)}: the kernel is not "
                f"divisible by the stride, so neighbouring output pixels receive {' or '.join(map(str, spread))} "
                f"contributions, a checkerboard pattern (expected a kernel that is a multiple of the stride)",
                f"use kernel {2 * max(strides)} with stride {max(strides)} and padding {max(strides) // 2}, or "
                f"`upsample: {max(strides)}` followed by a 3x3 convolution",
            )
            continue
        # an axis of size 1 has its one position read whatever the stride (a 1xN map, a time series)
        read = math.prod(c.read for c, n in zip(counts, g.in_sizes) if n > 1)
        if read == 1:
            continue
        yield Report(
            node,
            f"slides a {wide(kernels)} window" + (f" (dilation {per_axis(dilations)})" if max(dilations) > 1 else "")
            + f" with stride {per_axis(strides)}: it never reads {1 - read:.0%} of its input positions (expected a "
            f"window at least as wide as the stride)",
            "give the window at least the stride's width (a 3x3 kernel for stride 2), or downsample first with "
            "`avgpool: 2` and use stride 1 (the ResNet-D shortcut)",
        )
