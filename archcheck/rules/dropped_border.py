"""## What it does
Flags a convolution or pooling whose windows do not reach the end of its (padded) input, so the last
rows or columns of the input are silently ignored: a 2x2 pooling with stride 2 on a 7x7 map gives
3x3 and never looks at the 7th row and column.

## Why is this bad?
The output size is rounded down, and the rounding is paid for with real input pixels along the
bottom and right borders. Nothing reports it; the network simply never sees that strip, and the
error compounds through every later downsampling (the sizes drift off by one at each stage).

Where it does not apply: rows that are only padding do not count (a 3x3 stride-2 convolution with
padding 1 on 224 pixels skips one padding row, not an input row; nor do the rows a `zeropad` just
before the window added), and neither do `ceil_mode`
poolings whose last, partial window covers the border, nor adaptive poolings (their cells always end at
the border). Windows narrower than their stride skip pixels everywhere, not only at the border:
`uneven-stride-coverage` reports those.

## Example
```yaml
input: [3, 28, 28]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - relu
  - maxpool: 2            # 28 -> 14
  - maxpool: 2            # 14 -> 7
  - maxpool: 2            # 7 -> 3: the 7th row and column are dropped
```

## Use instead
`ceil_mode` (or an input size that divides evenly, or `zeropad` to an even size first):
```yaml
input: [3, 28, 28]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - maxpool: 2
  - maxpool: {kernel: 2, stride: 2, ceil_mode: true}   # 7 -> 4, every pixel used
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: max-pooling an odd-sized map
  ignores the last rows and columns: 7x7 pooled to 3x3 drops the last column.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the output size `floor((n + 2p - f) / s) + 1` rounds down.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.layers.base import axis_names

from ._walk import explicit_padding, per_axis, size, used, wide, window

CODE = "AC203"
SLUG = "dropped-border"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Window and stride that do not tile the input: the last rows/columns are never read."


def check(analysis, options):
    for node in used(analysis):
        if not node.layer.window or node.layer.upsamples:
            continue
        g = window(analysis, node)
        if not g.slides:
            continue  # cells of varying width that tile the input (adaptive pooling): the arithmetic below is moot
        dropped = []
        extra = explicit_padding(analysis, node)  # rows a `zeropad` added at the end hold no data
        for k, s, d, (before, _), n, o, (_, zeros) in zip(g.kernel, g.stride, g.dilation, g.pads, g.in_sizes,
                                                          g.out_sizes, extra):
            span = d * (k - 1) + 1
            if span < s:
                continue  # skips pixels throughout: uneven-stride-coverage
            last_read = (o - 1) * s + span - before  # input rows read: [0, last_read)
            dropped.append(max(n - last_read - zeros, 0))
        if not any(dropped):
            continue
        axes = axis_names(len(g.in_sizes))
        lost = ", ".join(f"{n} along {a}" for n, a in zip(dropped, axes) if n)
        yield Report(
            node,
            f"a {wide(g.kernel)} window with stride {per_axis(g.stride)} maps {size(g.in_sizes)} to "
            f"{size(g.out_sizes)} and never reads the last input rows/columns ({lost}; expected every input pixel to "
            "be read)",
            "make the input size fit the windows (n - kernel + padding divisible by the stride), pad the map first "
            "(`zeropad`), or use `ceil_mode: true` on a pooling",
        )
