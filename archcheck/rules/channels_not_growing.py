"""## What it does
Compares the width of each stage of the network (the channels of the map it hands to the next
downsampling, or to the head) with the stage before it, and flags a downsampling after which the
channels do not grow.

## Why is this bad?
Each downsampling divides the positions by 4 (2x2). Unless the channels grow, typically doubling,
every stage holds less information than the one before and the network narrows into a bottleneck
before reaching the classifier. Doubling the channels when halving the map also keeps the cost of
each stage about the same, the rule VGG and ResNet are built on.

Where it does not apply:
- Stages already at `cap` channels (512 by default) need not grow: VGG doubles "until it reaches
  512" and then stays there, as doubling again would multiply the weights of its last stage by 4.
- A stem that downsamples without working at that resolution (a strided convolution straight into
  a pooling, as in ResNet and AlexNet) is not a stage; the comparison starts at the first stage
  with stride-1 convolutions.
- Encoder-decoder networks (anything that upsamples) shrink channels on the way up by design; they
  are not checked.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}   # the map is 4x smaller, the width the same
  - relu
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 128, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
- `cap` (default 512): stages with at least this many channels are not expected to grow.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: most of the time the number of
  channels doubles (32, 64, 128, 256, 512).
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: filters are typically doubled layer
  after layer.
- The blog post *Forward and Backward Propagation using Convolution operation*: the number of filters increases as
  the network goes deeper (ZFNet).
- He et al., *Deep Residual Learning for Image Recognition* (2015): when the map is halved the number of
  filters is doubled. Simonyan and Zisserman (2014): widths double until 512.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import channels, collapses, downsamples, is_conv, longest, size, spatial, upsamples, used

CODE = "AC302"
SLUG = "channels-not-growing"
SEVERITY = "warning"
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"cap": 512}
SUMMARY = "Channels do not grow when the feature map is downsampled."


def validate(options):
    if options["cap"] < 1:
        raise ValueError("cap", "a channel count of at least 1")


def _source(analysis, nodes):
    """The map a stage hands to its downsampling: the input of the one downsampling layer, or the nearest
    layer every one of them reads from (the block input a strided convolution and its shortcut share, an
    Inception module's concatenation), so that widening inside the block does not count as the stage's."""
    g = analysis.graph
    if len(nodes) == 1:
        return g.nodes[nodes[0].inputs[0]]
    common = set.intersection(*(g.upstream(n.inputs) for n in nodes))
    position = {n.name: i for i, n in enumerate(g.order)}
    return g.nodes[max(common, key=position.__getitem__)]


def check(analysis, options):
    nodes = used(analysis)
    if any(upsamples(analysis, n) for n in nodes):
        return
    stage = longest(analysis, step=lambda n: downsamples(analysis, n))
    working, width, entry, crossing = set(), {}, {}, {}
    for node in nodes:
        k = stage[node.name]
        facts = analysis.layers[node.name]
        if is_conv(node) and not downsamples(analysis, node) and any(d > 1 for d in spatial(facts.shape)):
            working.add(k)  # a convolution with a 1x1 output is a dense layer (a fully convolutional head)
        if downsamples(analysis, node):
            entry.setdefault(k, node)
            crossing.setdefault(k, []).append(node)
        elif collapses(analysis, node):
            width[k] = max(width.get(k, 0), facts.in_shapes[0][0])
    for k, nodes_k in crossing.items():
        width[k - 1] = max(width.get(k - 1, 0), channels(analysis, _source(analysis, nodes_k)))
    stages = sorted(k for k in working if k in width)
    for a, b in zip(stages, stages[1:]):
        if width[b] > width[a] or width[a] >= options["cap"]:
            continue
        node = entry[a + 1]
        facts = analysis.layers[node.name]
        yield Report(
            node,
            f"downsamples {size(spatial(facts.in_shapes[0]))} -> {size(spatial(facts.shape))} but the channels do "
            f"not grow: {width[a]} before it, {width[b]} at the end of the next stage (expected more, typically "
            f"{2 * width[a]})",
            f"widen the convolutions after this downsampling to {2 * width[a]} filters",
        )
