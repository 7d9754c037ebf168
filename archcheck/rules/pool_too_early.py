"""## What it does
Flags a downsampling pooling (`maxpool` or `avgpool` with a stride above 1) that comes after fewer
than `min_convs` convolutions since the input or the previous pooling, when those convolutions are
also small: together they see fewer than `min_span` pixels of the map they work on.

## Why is this bad?
Pooling throws pixels away on purpose. It pays off once the convolutions before it have turned the
pixels into features (edges and gradients) that survive the downsampling; pooling after a single
3x3 convolution discards three quarters of the resolution before anything has been extracted from
it. Stacking a second convolution first costs little at the early, small-channel stage.

Where it does not apply: a single *large* convolution already sees as much as a stack of small ones.
The stems of AlexNet (11x11), ResNet and GoogLeNet (7x7) and LeNet (5x5) pool right after one
convolution on purpose, to cut the cost of the high-resolution layers, and are not flagged: their
one convolution spans at least `min_span` pixels. Non-downsampling pooling (stride 1, as in
Inception's pooling branch) is not checked.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2            # after one 3x3 convolution
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
- `min_convs` (default 2): convolutions expected between the input (or the previous pooling) and a
  pooling. Counted along the longest path, so a residual block's main path counts.
- `min_span` (default 5): a pooling after fewer convolutions is still accepted when they span at
  least this many pixels of the grid they work on (two stacked 3x3 convolutions span 5; one 7x7
  spans 7). Set it above any kernel size (e.g. 1000) to require `min_convs` convolutions always.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: max-pool only after convolving
  at least twice, once edges and gradients have formed; pool as early as that allows when the network must be
  small.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the usual pattern `[[CONV -> RELU]*N -> POOL?]*M`, with N of 2 or 3 in larger networks.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import is_conv, longest, plural, pooling, size, spatial

CODE = "AC101"
SLUG = "pool-too-early"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"min_convs": 2, "min_span": 5}
SUMMARY = "Pooling after fewer than 2 small convolutions since the input or the previous pooling."


def _span(analysis, node, start: str) -> int | None:
    """Pixels (of ``start``'s output grid) that the features entering ``node`` see, on the narrowest axis."""
    here, there = analysis.layers[node.inputs[0]].rf, analysis.layers[start].rf
    if here.is_global or there.is_global:
        return None
    return int(min((a.r - b.r) / b.S + 1 for a, b in zip(here.axes, there.axes)))


def _previous_pool(analysis, node, counts) -> str:
    """The pooling (or the input) that starts the deepest run of convolutions reaching ``node``."""
    g = analysis.graph
    name = max(node.inputs, key=counts.__getitem__)
    while name != INPUT and not pooling(analysis, g.nodes[name]):
        name = max(g.nodes[name].inputs, key=counts.__getitem__)
    return name


def validate(options):
    if options["min_convs"] < 1:
        raise ValueError("min_convs", "a convolution count of at least 1")
    if options["min_span"] < 1:
        raise ValueError("min_span", "a span of at least 1 pixel")


def check(analysis, options):
    counts = longest(analysis, step=is_conv, reset=lambda n: pooling(analysis, n))
    for node in analysis.graph.order:
        if node.name not in analysis.graph.used or not pooling(analysis, node):
            continue
        convs = max(counts[i] for i in node.inputs)
        if convs >= options["min_convs"]:
            continue
        start = _previous_pool(analysis, node, counts)
        span = _span(analysis, node, start)
        if span is None or span >= options["min_span"]:
            continue
        facts = analysis.layers[node.name]
        since = "the input" if start == INPUT else f"the previous pooling '{start}'"
        missing = options["min_convs"] - convs
        yield Report(
            node,
            f"pools {size(spatial(facts.in_shapes[0]))} -> {size(spatial(facts.shape))} after "
            f"{plural(convs, 'convolution')} since {since} (expected at least {options['min_convs']}); the features "
            f"it pools span only {span} pixels (expected at least {options['min_span']}, as two stacked 3x3 "
            f"convolutions give)",
            f"add {plural(missing, 'more 3x3 convolution')} (padding 1, followed by an activation) before this "
            f"pooling, or move the pooling after the next convolutions",
        )
