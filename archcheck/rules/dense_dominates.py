"""## What it does
Flags a dense layer that holds more than `max_share` of the network's trainable parameters (and at
least `min_params` of them), typically the first dense layer after flattening a large feature map.

## Why is this bad?
A dense layer on a flattened map has one weight per input value per unit: flattening 512x7x7 into
4096 units costs 103 million weights, three quarters of VGG-16. Those weights learn nothing about
images that the convolutions have not already extracted; they make the model large, slow to load
and prone to overfitting, and they tie the network to one input size. Global average pooling
before the dense layer reduces its input to the channel count (512 instead of 25,088 values).

Where it does not apply: VGG-16 and AlexNet are flagged, correctly: this is the best-known weakness
of their design, which GoogLeNet and ResNet removed with global pooling. Small networks (below
`min_params` in the layer, e.g. LeNet-5's 48,000) are not flagged; the share matters when the memory
does.

## Example
```yaml
input: [512, 7, 7]        # the map the convolutions deliver
layers:
  - flatten
  - dense: 4096           # 102.8M parameters
  - relu
  - dense: 1000
```

## Use instead
```yaml
input: [512, 7, 7]
layers:
  - globalavgpool
  - dense: 1000           # 0.5M parameters
```

## Options
- `max_share` (default 0.5): the largest share of all trainable parameters one dense layer may hold.
- `min_params` (default 1000000): dense layers with fewer parameters are not reported.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: fully connected layers on images need
  a huge number of parameters, which parameter sharing in convolutions avoids.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: flattening images into dense layers
  loses their spatial structure and gives the network too many parameters.
- Lin, Chen and Yan, *Network In Network* (2013): global average pooling in place of dense layers.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.layers.base import fmt_shape

from ._walk import before, flattens, keeps_shape, passes, used

CODE = "AC502"
SLUG = "dense-dominates"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "network"  # needs the whole network (docs/lint.md, SCOPE)
OPTIONS = {"max_share": 0.5, "min_params": 1_000_000}
SUMMARY = "One dense layer holds most of the network's parameters."


def validate(options):
    if not 0 < options["max_share"] <= 1:
        raise ValueError("max_share", "a share above 0 and at most 1")
    if options["min_params"] < 0:
        raise ValueError("min_params", "a parameter count of at least 0")


def check(analysis, options):
    total = analysis.totals.trainable
    for node in used(analysis):
        if node.layer.category != "dense":
            continue
        params = analysis.layers[node.name].params
        if params < options["min_params"] or params <= options["max_share"] * total:
            continue
        units = analysis.layers[node.name].shape[0]
        source = next(before(analysis, node, lambda n: passes(n) and keeps_shape(analysis, n)), None)
        fix = "use fewer units, or reduce its input"
        where = ""
        if source is not None and flattens(analysis, source):
            shape = analysis.layers[source.name].in_shapes[0]
            where = f", reading the flattened {fmt_shape(shape)} map"
            if len(shape) > 1:
                pooled = shape[0] * units + units * bool(node.layer.bias)
                fix = (f"replace `flatten` with `globalavgpool` ({shape[0]:,} inputs: {pooled:,} parameters), or "
                       f"downsample the map further before flattening")
        yield Report(
            node,
            f"holds {params:,} of the network's {total:,} trainable parameters ({params / total:.0%}{where}; "
            f"expected at most {options['max_share']:.0%})",
            fix,
        )
