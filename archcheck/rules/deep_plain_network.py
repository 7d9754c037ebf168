"""## What it does
Flags a straight chain of more than `max_depth` layers with weights (convolutions and dense layers)
with no branch or merge anywhere along it: a deep "plain" network without skip connections.

## Why is this bad?
Plain networks get *worse* as they get deeper past about 20 layers, in training error as well as
test error: the gradient reaching the early layers through a long product of layer Jacobians
vanishes or explodes, and the optimiser cannot find even the solution a shallower network has.
Residual (skip) connections give the gradient a direct path around each block; ResNet trains 152
layers this way. Dense or inception-style branches also shorten the paths.

Where it does not apply: VGG-19 (19 layers with weights) is within the default. The count restarts at
every branch or merge, so residual networks, DenseNets and Inception networks are not flagged;
neither are networks where batch normalisation makes a somewhat deeper plain stack trainable, if
you raise `max_depth`.

## Example
```yaml
input: [3, 32, 32]
blocks:
  conv_relu:
    layers:
      - conv: {filters: 64, kernel: 3, padding: 1}
      - relu
layers:
  - conv_relu:
    repeat: 30            # 30 plain convolutions in a row
```

## Use instead
```yaml
input: [3, 32, 32]
blocks:
  residual:
    args: {filters: ~}
    layers:
      - add:
          - - conv: {filters: $filters, kernel: 3, padding: 1}
            - relu
            - conv: {filters: $filters, kernel: 3, padding: 1}
          - []            # the shortcut
      - relu
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - residual: {filters: 64}
    repeat: 15
```

## Options
- `max_depth` (default 20): the most layers with weights accepted in a chain without a skip
  connection.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: stacking deeper layers on a plain
  network is an optimisation problem, not overfitting; residual blocks fit `F(x) + x` instead.
- The blog post *Forward and Backward Propagation using Convolution operation*: plain networks got higher training
  and test error as layers were added; skip connections form a gradient highway to the first layers.
- He et al., *Deep Residual Learning for Image Recognition* (2015).
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import is_weight, used

CODE = "AC601"
SLUG = "deep-plain-network"
SEVERITY = "warning"
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"max_depth": 20}
SUMMARY = "More than 20 layers with weights in a chain without a skip connection."


def validate(options):
    if options["max_depth"] < 1:
        raise ValueError("max_depth", "a layer count of at least 1")


def check(analysis, options):
    g = analysis.graph
    run = {INPUT: 0}
    limit = options["max_depth"]
    for node in g.order[1:]:
        straight = len(node.inputs) == 1 and len(g.consumers[node.inputs[0]]) == 1
        run[node.name] = (run[node.inputs[0]] if straight else 0) + is_weight(node)
    for node in used(analysis):
        if is_weight(node) and run[node.name] == limit + 1:
            yield Report(
                node,
                f"is layer number {limit + 1} with weights in a chain with no skip connection (expected at most "
                f"{limit}): gradients through a plain stack this deep vanish, and deeper plain networks train worse",
                "add residual connections (`add: [[...layers...], []]` around pairs of convolutions, as in ResNet), "
                "or make the network shallower",
            )
