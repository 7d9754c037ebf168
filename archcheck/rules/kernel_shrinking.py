"""## What it does
Flags a stride-1 convolution whose kernel is smaller than that of the nearest stride-1 convolution
upstream of it on its path, when that upstream kernel is larger than `max_kernel`. Only spatial
filters at stride 1 are compared: convolutions with a stride of 1 and a kernel above 1 that do not
cover their whole input map. A kernel's size is the geometric mean of its per-axis sizes, so a
factorised 1x7 counts as about 2.6.

## Why is this bad?
The local window a convolution filters should generally grow or stay the same with depth: deeper
layers combine larger structures, and the receptive field already grows with each layer. A large
kernel early followed by smaller ones spends most of the weights where the features are simplest
(a 9x9 filter on raw pixels holds 9 times the weights of a 3x3) and then narrows the view where the
network needs it widest. A stack of small kernels reaches the same field with fewer weights and more
non-linearities.

Where it does not apply: stems that shrink the map while they filter it are deliberate (AlexNet's
11x11 at stride 4 then 5x5 then 3x3, ZFNet's 7x7/2, ResNet's and GoogLeNet's 7x7/2): strided
convolutions are not compared. Kernels up to `max_kernel` (5x5 then 3x3, as in many LeNet-style
and Inception designs) are common and not flagged, nor are 1x1 convolutions, factorised 1xk/kx1
kernels (Inception-v3), transposed convolutions, or a kernel as large as its input map (a dense
layer written as a convolution, as VGG's fc6).

## Example
```yaml
input: [1, 28, 28]
layers:
  - conv: {filters: 32, kernel: 9, padding: same}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: same}   # 3x3 after a 9x9
  - relu
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [1, 28, 28]
layers:
  - conv: {filters: 32, kernel: 3, padding: same}
  - relu
  - conv: {filters: 32, kernel: 3, padding: same}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: same}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
- `max_kernel` (default 5): an upstream kernel up to this size may be followed by a smaller one;
  the same limit as `large-kernel` (AC205).

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021), rule f016: the local window size for spatial filtering should
  generally increase or stay the same throughout the convolutional layers.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: prefer a stack of small
  (3x3) filters to one convolution with a large receptive field.
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import covers_map, is_conv, used, wide, window

CODE = "AC211"
SLUG = "kernel-shrinking"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"max_kernel": 5}
SUMMARY = "Stride-1 convolution with a smaller kernel than a larger-than-5 one before it."


def _extent(kernel) -> float:
    """A kernel's size on one axis, whatever its rank: the geometric mean (a 1x7 is about 2.6)."""
    return math.prod(kernel) ** (1 / len(kernel))


def validate(options):
    if options["max_kernel"] < 1:
        raise ValueError("max_kernel", "a kernel size of at least 1")


def check(analysis, options):
    def filters(node) -> bool:
        """A spatial filter at stride 1: what this rule compares."""
        if not is_conv(node) or node.layer.upsamples:
            return False
        g = window(analysis, node)
        return max(g.stride) == 1 and max(g.kernel) > 1 and not covers_map(analysis, node)

    # the widest stride-1 filter upstream of each layer with no other filter between, in one pass over the
    # graph (a walk per layer would revisit a residual chain's whole skip path: quadratic in its depth)
    g = analysis.graph
    widest: dict[str, tuple[float, object] | None] = {}
    for node in g.order:
        found = [(_extent(window(analysis, up).kernel), up) if filters(up) else widest.get(up.name)
                 for up in (g.nodes[src] for src in node.inputs)]
        found = [f for f in found if f is not None]
        widest[node.name] = max(found, key=lambda f: f[0]) if found else None

    for node in used(analysis):
        if not filters(node) or widest[node.name] is None:
            continue
        here = window(analysis, node).kernel
        extent, up = widest[node.name]
        there = window(analysis, up).kernel
        if extent > options["max_kernel"] and _extent(here) < extent:
            yield Report(
                node,
                f"filters with a {wide(here)} kernel after the {wide(there)} one of '{up.name}' (both at stride "
                f"1): the window shrinks with depth (expected kernels that stay the same or grow with depth, "
                f"shrinking only from at most {options['max_kernel']} wide)",
                f"split '{up.name}' into a stack of convolutions at most {options['max_kernel']} wide (together "
                f"they see as far with fewer weights), or give this convolution a kernel of at least "
                f"{wide(there)}",
            )
