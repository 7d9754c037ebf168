"""## What it does
Flags a downsampling pooling (`maxpool`, `avgpool` or an adaptive pooling with a stride above 1) followed by fewer than
`min_layers` layers with weights (convolutions and dense layers, the classifier included) on its
way to the output.

## Why is this bad?
Pooling discards pixels. Done right before the classifier, it discards them where the prediction is
made, and no later layer can make use of the detail that was dropped. Keep the last pooling two or
three convolutions away from the output, and let those layers work on the pooled map.

Dense layers count: a dense layer on a flattened map is a convolution whose kernel is the whole map
(fully convolutional networks rewrite VGG's first dense layer as a 7x7 convolution). So VGG-16 and
AlexNet, which pool straight into `flatten` and then three dense layers, are not flagged: the
layers after their last pooling still work on the pooled 7x7 (6x6) grid.

Where it does not apply: global pooling (`globalavgpool`, `globalmaxpool`, or a pooling to 1x1 such as
`adaptiveavgpool: 1`) is the head itself and is never flagged, nor is pooling with stride 1 (torchvision
VGG's `adaptiveavgpool: 7` on its 7x7 map keeps the map as it is). A network that ends on a pooling (a feature extractor
without a classifier) is flagged: say so with a suppression comment if it is meant.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2            # 16x16 -> 8x8, then straight to the classifier
  - flatten
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
- `min_layers` (default 2): layers with weights (convolutions, dense layers) expected after a
  pooling, the classifier included, counted along the longest path to the output. 2 means at least
  one layer besides the classifier; 3 asks for two.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: do not max-pool towards the
  output; keep pooling at least 2 or 3 convolution layers away from it (in fully convolutional networks, where
  the last of them is the classifier), or the last layer has little information left to predict from.
- Long, Shelhamer and Darrell, *Fully Convolutional Networks for Semantic Segmentation* (2015): dense layers
  on a feature map are convolutions covering the whole map.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import is_weight, longest_after, plural, pooling, size, spatial

CODE = "AC102"
SLUG = "pool-near-output"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS = {"min_layers": 2}
SUMMARY = "Pooling followed by fewer than 2 layers with weights (classifier included) before the output."


def validate(options):
    if options["min_layers"] < 1:
        raise ValueError("min_layers", "a layer count of at least 1 (the classifier counts)")


def check(analysis, options):
    remaining = longest_after(analysis, is_weight)
    for node in analysis.graph.order:
        if node.name not in analysis.graph.used or not pooling(analysis, node):
            continue
        follow = remaining[node.name]
        if follow >= options["min_layers"]:
            continue
        facts = analysis.layers[node.name]
        yield Report(
            node,
            f"pools {size(spatial(facts.in_shapes[0]))} -> {size(spatial(facts.shape))} and only "
            f"{plural(follow, 'layer')} with weights follow{'s' if follow == 1 else ''} it to the output (expected at "
            f"least {options['min_layers']}, the classifier included): the prediction is made straight from the "
            f"pooled map",
            f"add {plural(options['min_layers'] - follow, 'convolution')} after this pooling (3x3, padding 1, with "
            f"an activation), or move the pooling before the last convolutions",
        )
