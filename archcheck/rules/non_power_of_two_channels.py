"""## What it does
Flags a convolution whose number of filters is neither a power of two nor a multiple of `multiple`
(default 8): 100, 6 or 84 filters, say.

## Why is this bad?
GPUs and their libraries process channels in tiles: tensor cores work on multiples of 8 (16 for
some data types), and kernels are tuned for the usual 32, 64, 128... A layer with 100 channels pays
for 104 or 128 lanes and uses 100; it can also fall off the fast paths entirely. It usually also
breaks the doubling pattern (32, 64, 128, ...) that the rest of the network follows.

Where it does not apply: widths that are multiples of 8 are accepted even when they are not powers
of two (AlexNet's 192 and 384, GoogLeNet's 208 and 832, MobileNet's 24 and 960, all chosen to be
hardware-friendly). The last layer with weights is not checked: its width is the number of classes
or outputs the task dictates. Dense layers are not checked: this rule is about channels. Nor are the
convolutions of a gate branch (squeeze-and-excitation): they work on a 1x1 map, where width costs
nothing, and their width is a fixed fraction of the gated channels by design (EfficientNet's 4, 10
and 20). Nor is a depthwise convolution that keeps its input's width: the layer that made that width
chose it, and is the one to change (ShuffleNetV2's 58-channel branches are flagged at their 1x1
convolutions, not again at the depthwise one between them).

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 100, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 128, kernel: 3, padding: 1}   # or 96, 104: multiples of 8
  - relu
  - globalavgpool
  - dense: 10
```

## Options
- `multiple` (default 8): filter counts that are multiples of this are accepted too.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: channel counts are mostly 2^n
  because hardware handles them much better.
- Simonyan and Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition* (2015): filters
  typically double layer after layer: 32, 64, 128, 256.
- NVIDIA, *Deep Learning Performance Guide* (tensor cores): channel counts that are multiples of 8.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import channels, depthwise, gate_branch, is_conv, is_weight, longest_after, used

CODE = "AC301"
SLUG = "non-power-of-two-channels"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"multiple": 8}
SUMMARY = "Convolution filter count that is neither a power of two nor a multiple of 8."


def validate(options):
    if options["multiple"] < 1:
        raise ValueError("multiple", "a channel count of at least 1")


def check(analysis, options):
    later = longest_after(analysis, is_weight)
    m = options["multiple"]
    gated = gate_branch(analysis)
    for node in used(analysis):
        if not is_conv(node) or later[node.name] == 0 or node.name in gated:
            continue
        c = channels(analysis, node)
        inherited = depthwise(analysis, node) and analysis.layers[node.name].in_shapes[0][0] == c
        if c & (c - 1) == 0 or c % m == 0 or inherited:
            continue
        power = 1 << (c.bit_length() - 1)
        near = sorted({power, power * 2, max(m, round(c / m) * m)}, key=lambda x: (abs(x - c), -x))[:2]
        yield Report(
            node,
            f"has {c} filters, neither a power of two nor a multiple of {m} (expected e.g. {near[0]} or {near[1]})",
            f"use {near[0]} or {near[1]} filters",
        )
