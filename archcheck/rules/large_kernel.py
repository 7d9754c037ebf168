"""## What it does
Flags a convolution with a kernel larger than `max_kernel` anywhere but in the first convolution
of the network.

## Why is this bad?
A stack of small convolutions sees as far as one large one with fewer weights and more
non-linearities: three 3x3 convolutions cover 7x7 with 27 weights per channel pair instead of 49,
and add two activations in between. Large kernels after the first layer cost parameters and
compute for a receptive field the network could grow more cheaply.

Where it does not apply: the first convolution sees raw pixels at full resolution and often uses a
large, strided kernel to cut the resolution early (AlexNet's 11x11, ResNet's and GoogLeNet's 7x7
stems); it is not checked. Depthwise convolutions are not checked either: their cost grows with the
kernel area only, and large depthwise kernels (ConvNeXt's 7x7) are a deliberate modern design. A
factorised kernel (Inception-v3's 1x7 and 7x1) has 7 weights per channel pair, fewer than the stack
of 1x3 convolutions that would replace it, and is not flagged; nor is a kernel that covers its
whole input map (VGG's fc6 written as a 7x7 convolution over the 7x7 map), which is a dense layer.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 7, padding: 3}
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}   # three 3x3 see 7x7 with 45% fewer weights
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
```

## Options
- `max_kernel` (default 5): the largest kernel size accepted after the first convolution.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: use small filters (3x3, at most 5x5); bigger filters are common only in the very first
  convolution; prefer a stack of small convolutions to one large one.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: filter sizes are usually 3x3 or 5x5;
  small sizes are usually better.
- Simonyan and Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition* (2014): stacks
  of 3x3 convolutions in place of larger kernels.
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import covers_map, depthwise, is_conv, longest, plural, size, used, wide, window

CODE = "AC205"
SLUG = "large-kernel"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"max_kernel": 5}
SUMMARY = "Convolution kernel larger than 5 after the first convolution."


def validate(options):
    if options["max_kernel"] < 1:
        raise ValueError("max_kernel", "a kernel size of at least 1")


def check(analysis, options):
    earlier = longest(analysis, step=is_conv)
    for node in used(analysis):
        if not is_conv(node) or depthwise(analysis, node):
            continue
        g = window(analysis, node)
        kernels = g.kernel
        big = max(kernels)
        before = earlier[node.name] - 1
        if big <= options["max_kernel"] or before == 0 or covers_map(analysis, node):
            continue  # small, the first convolution, or a dense layer written as one (it covers the whole map)
        stack, small = (big - 1) // 2, tuple(min(k, 3) for k in kernels)
        stacked, weights = stack * math.prod(small), math.prod(kernels)
        if stacked >= weights:
            continue  # a factorised kernel (1x7): already cheaper than a stack of small ones
        yield Report(
            node,
            f"has a {wide(kernels)} kernel after {plural(before, 'earlier convolution')} (expected at most "
            f"{options['max_kernel']} past the first convolution): {stack} stacked {size(small)} convolutions see the "
            f"same {size(kernels)} field with {1 - stacked / weights:.0%} fewer weights",
            f"replace it with {stack} {size(small)} convolutions (padding 1, an activation after each)",
        )
