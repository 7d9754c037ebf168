"""## What it does
Flags a block of convolutions that mixes kernel sizes: in a plain chain (no merge, no branch) of
stride-1 convolutions between two changes of resolution (a downsampling pooling or convolution, an
upsampling, the input, the classifier head), a convolution whose kernel differs from the block's
first. It reports once per block, at the first convolution that differs. 1x1 convolutions, grouped
and depthwise convolutions and factorised 1xk/kx1 kernels are left out of the comparison.

## Why is this bad?
A deep CNN is easiest to reason about, scale and tune when it is built from blocks of two, three or
four homogeneous convolutions, one block per resolution (VGG's blocks of 3x3 convolutions, repeated
with more filters after each pooling). A block that goes 3x3, 4x4, 5x5 mixes receptive-field steps
at one resolution without a reason a reader can see, spends the weights of the large kernels where
two stacked small ones would see as far, and makes the next block's design guesswork.

Where it does not apply: multi-branch blocks mix kernel sizes on purpose (Inception's 1x1, 3x3 and
5x5 branches meet at a concatenation; residual blocks meet at an addition) and are not checked, nor
are bottlenecks' 1x1 convolutions, depthwise-separable blocks (MobileNet, EfficientNet), factorised
1x7/7x1 pairs (Inception-v3), or a kernel as large as its input map (a dense layer written as a
convolution). A stem that changes kernel at each resolution (AlexNet's 11x11, 5x5, then three 3x3)
has one kind of convolution per block and stays quiet.

## Example
```yaml
input: [3, 64, 64]
layers:
  - conv: {filters: 64, kernel: 3, padding: same}
  - relu
  - conv: {filters: 64, kernel: 5, padding: same}   # a 5x5 in a block of 3x3
  - relu
  - maxpool: 2
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 64, 64]
layers:
  - conv: {filters: 64, kernel: 3, padding: same}
  - relu
  - conv: {filters: 64, kernel: 3, padding: same}
  - relu
  - maxpool: 2
  - globalavgpool
  - dense: 10
```

## Options
None.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021), rule f026: a deep CNN should favour blocks of 2, 3 or even 4
  homogeneous convolutional layers with similar characteristics.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: the pattern
  `[[CONV -> RELU]*N -> POOL?]*M`, and VGG's blocks of 3x3 convolutions.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import collapses, covers_map, downsamples, is_conv, upsamples, used, wide, window

CODE = "AC603"
SLUG = "uneven-conv-blocks"
SEVERITY = "warning"
SCOPE = "path"  # a block is judged whole, up to the next change of resolution (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Plain block of stride-1 convolutions that mixes kernel sizes."


def _grouped(node) -> bool:
    return getattr(node.layer, "groups", 1) != 1


def check(analysis, options):
    g = analysis.graph

    def boundary(node) -> bool:
        """A layer that changes the resolution: a block ends before it and the next starts after it."""
        return downsamples(analysis, node) or upsamples(analysis, node) or collapses(analysis, node)

    def compared(node) -> bool:
        """A convolution whose kernel a block's kernels are compared by."""
        if not is_conv(node) or node.layer.upsamples or _grouped(node) or covers_map(analysis, node):
            return False
        w = window(analysis, node)
        return max(w.stride) == 1 and min(w.kernel) > 1

    block: dict[str, str] = {INPUT: INPUT}  # per layer, the layer that starts its block
    plain: dict[str, bool] = {INPUT: len([c for c in g.consumers[INPUT] if c in g.used]) <= 1}
    members: dict[str, list] = {INPUT: []}
    for node in used(analysis):
        ins = {block[i] for i in node.inputs}
        if len(node.inputs) > 1:
            for s in ins:
                plain[s] = False  # a merge: the blocks meeting here are not plain chains
        if boundary(node):
            block[node.name] = node.name
            plain[node.name], members[node.name] = True, []
        else:
            block[node.name] = block[node.inputs[0]]
        if len([c for c in g.consumers[node.name] if c in g.used]) > 1:
            plain[block[node.name]] = False  # a branch
        if compared(node):
            members[block[node.name]].append(node)
    for start, convs in members.items():
        if not plain[start] or len(convs) < 2:
            continue
        first = window(analysis, convs[0]).kernel
        odd = next((c for c in convs if window(analysis, c).kernel != first), None)
        if odd is None:
            continue
        kernels = ", ".join(wide(window(analysis, c).kernel) for c in convs)
        where = "the input" if start == INPUT else f"'{start}'"
        yield Report(
            odd,
            f"has a {wide(window(analysis, odd).kernel)} kernel in a block of {wide(first)} convolutions (the "
            f"{len(convs)} stride-1 convolutions after {where}: {kernels}), a block that mixes kernel sizes at one "
            f"resolution (expected 2 to 4 convolutions of one kind per block, as VGG's 3x3 blocks)",
            f"use {wide(first)} kernels throughout the block, like '{convs[0].name}' (two stacked see further than one "
            f"larger kernel), or put a pooling before this convolution to start a new block",
        )
