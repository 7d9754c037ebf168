"""## What it does
Flags a spec input that looks written channels-last, with an image's 1 or 3 channels (or a
signal's few features) on a spatial axis, as if the shape were written `[H, W, C]` instead of
archcheck's `[C, H, W]`: a spatial axis of at most 3 and either more "channels" than positions (C
larger than the product of the spatial sizes: `[32, 3, 3]`, `[101, 1]`) or, on the last axis, as
many channels as another axis has positions (a square image: `[32, 32, 3]`). A map of 1 on every
axis (a vector written as a 1x1 map) is flagged only when a layer slides a wider window over it.

## Why is this bad?
archcheck, like PyTorch, reads the first size as the channels. `input: [32, 32, 3]` is then 32
channels of a 32x3 image: the first convolution mixes image rows as if they were colours, slides
over the colour axis, and the poolings run out of pixels after a layer or two (Keras users meet the
same fault the other way round, with `input_shape=(3, 32, 32)` in a channels-last model). The shape
error, if one comes, shows far from the cause.

Where it does not apply: a head trained on backbone features (`[512, 7, 7]`) has more channels than
positions on purpose, but its map is not that thin; a multichannel signal (`[9, 128]`, nine sensor
axes over 128 steps) has fewer channels than steps. A latent vector written as a 1x1 map
(`[100, 1, 1]`, DCGAN's generator, which upsamples it) is not flagged, nor a head on a backbone's
4x4 features (`[512, 4, 4]`). Data that really has many channels on a map 2 or 3 wide is flagged
too: silence the rule there with a suppression comment on `input`.

## Example
```yaml
input: [32, 32, 3]        # (H, W, C), as a Keras model would declare it
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]        # (C, H, W)
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
None.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021): programs whose input is declared in the other layout, reported there as
  layers that receive an insufficient feature space (rule f013).
- PyTorch's `Conv2d` documentation: the input is `(N, C, H, W)`, channels first, as archcheck reads it;
  Keras' `Conv2D` documentation: `data_format` defaults to `channels_last`, `(batch, height, width,
  channels)`, the layout such a shape is copied from.
"""

from __future__ import annotations

import math

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import size

CODE = "AC212"
SLUG = "channels-last-input"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the input and what reads it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Input shape that looks channels-last: a spatial axis of 1 to 3 where the channels should be."

SMALL = 3  # an image's channels (grey or RGB); a 4-wide map is a backbone's 4x4 features as often as RGBA


def _slides_over(analysis) -> bool:
    """Some layer reading the input (through pointwise layers) slides a window wider than 1 over it without
    upsampling. Read from the spec's layers, since the reader may be the layer that failed on it."""
    readers: dict[str, list] = {}
    for node in analysis.spec.nodes:
        for src in node.inputs:
            readers.setdefault(src, []).append(node)
    stack, seen = list(readers.get(INPUT, ())), set()
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        layer = node.layer
        if layer is None:  # its arguments read a shape that never came (a shape error upstream)
            continue
        if layer.window and not layer.upsamples:
            kernel = layer.kernel if isinstance(layer.kernel, (list, tuple)) else [layer.kernel]
            if max(kernel) > 1:
                return True
        elif layer.pointwise or layer.passes:
            stack.extend(readers.get(node.name, ()))
    return False


def check(analysis, options):
    shape = analysis.layers[INPUT].shape
    c, sizes = shape[0], list(shape[1:])
    if not sizes or min(sizes) > SMALL:
        return
    if c > math.prod(sizes):
        if max(sizes) == 1 and not _slides_over(analysis):
            return  # a vector written as a 1x1 map: a latent code or pooled features
        axis = max(i for i, s in enumerate(sizes) if s <= SMALL)
        why = f"more channels than positions ({c} > {math.prod(sizes)}) and an axis of {sizes[axis]}"
    elif len(sizes) > 1 and sizes[-1] <= SMALL < c and c in sizes[:-1]:
        axis = len(sizes) - 1
        why = f"a last axis of {sizes[-1]} and as many channels as another axis has positions ({c})"
    else:
        return
    intended = [sizes[axis], c, *sizes[:axis], *sizes[axis + 1:]]  # the small axis moved first
    grid = f"a {sizes[0]}-step signal" if len(sizes) == 1 else f"a {size(sizes)} map"
    yield Report(
        analysis.graph.nodes[INPUT],
        f"reads {list(shape)} as {c} channels of {grid}: {why}, where the channels land when the shape is "
        f"written channels-last (expected channels first: [C, H, W], or [C, L] for a signal)",
        f"write the channels first: `input: {intended}`; if the data really has {c} channels of {grid}, silence "
        f"this finding with `# archcheck: ignore[{SLUG}]` on the `input` line",
    )
