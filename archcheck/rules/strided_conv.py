"""## What it does
Reports each convolution with a stride above 1: a layer that downsamples by computing only every
second (third, ...) position instead of leaving the downsampling to a pooling layer.

## Why is this bad?
A strided convolution shrinks the map in the same step that extracts features, so it discards
information a stride-1 convolution followed by pooling would keep: a 3x3 convolution with stride 2
computes a quarter of the positions, and covers the input pixels unevenly (some once, some twice,
some four times), blurring strong responses into their neighbours. Stride-1 convolutions that keep
the size, with pooling doing the downsampling, are the default advice.

Where it does not apply: strided convolutions save memory and compute where resources are tight,
and they learn their downsampling instead of fixing it. Many well-known networks rely on them
deliberately: ResNet's and GoogLeNet's 7x7 stride-2 stems, ResNet's stride-2 convolutions and
projection shortcuts at each stage, AlexNet's 11x11 stride-4 stem, MobileNet's stride-2 depthwise
convolutions, and the all-convolutional networks that replace pooling altogether. Because it is a
trade-off rather than a mistake, the rule reports **information**, not a warning; raise its
severity in the configuration if your project wants pooling-only downsampling.

Transposed convolutions (which upsample) are not reported here; see `uneven-stride-coverage`.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, stride: 2, padding: 1}   # 32x32 -> 16x16
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2                                              # 32x32 -> 16x16
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: convolve with stride 1; a
  stride of 2 or more shrinks the map drastically, throws away information and covers pixels unevenly, and is
  useful mainly on resource-constrained hardware.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: a stride of 1 is the default and works
  well; pooling downsamples without parameters.
- Springenberg et al., *Striving for Simplicity: The All Convolutional Net* (2015), the case for strided
  convolutions instead of pooling (cited in the CS231n notes).
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import coverage, downsamples, is_conv, per_axis, size, used, window

CODE = "AC201"
SLUG = "strided-conv"
SEVERITY = "info"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Convolution with a stride above 1 (downsampling inside the convolution)."


def check(analysis, options):
    for node in used(analysis):
        if not is_conv(node) or not downsamples(analysis, node):
            continue
        g = window(analysis, node)
        counts = [coverage(k, s, d) for k, s, d in zip(g.kernel, g.stride, g.dilation)]
        low, high = math.prod(c.low for c in counts), math.prod(c.high for c in counts)
        uneven = f", and reads input pixels unevenly ({low} to {high} times)" if low and low != high else ""
        yield Report(
            node,
            f"convolves {size(g.in_sizes)} -> {size(g.out_sizes)} with kernel {size(g.kernel)} and stride "
            f"{per_axis(g.stride)}: it computes 1 in {math.prod(g.stride)} positions{uneven} (expected stride 1, with "
            "pooling to downsample)",
            "use stride 1 (with padding that keeps the size) and a `maxpool: 2` after the convolutions, unless the "
            "stride is a deliberate saving of memory and compute",
        )
