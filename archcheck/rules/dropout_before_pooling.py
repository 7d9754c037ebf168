"""## What it does
Flags a dropout layer (rate above 0) whose output reaches a downsampling window pooling (`maxpool`
or `avgpool` with a stride above 1) through nothing but activations, normalisations and other
pass-through layers: dropout placed before the pooling instead of after it.

## Why is this bad?
Dropout before a pooling is mostly undone by it. A max pooling picks the largest surviving value
of each window, so a dropped value is simply replaced by its neighbour and the window's output
rarely changes; an average pooling averages the zeros back in with the survivors. Either way the
noise that reaches the next layer is far weaker than the rate says, while the dropout runs on a map
several times larger than the pooled one. Placed after the pooling, the same rate removes whole
pooled features, as intended.

Where it does not apply: dropout before a global pooling or in the classifier head is not flagged,
nor before a pooling that does not downsample (stride 1). A dropout with rate 0 (switched off) is
left alone.

## Example
```yaml
input: [1, 28, 28]
layers:
  - conv: {filters: 32, kernel: 5, padding: same}
  - relu
  - dropout: 0.3
  - maxpool: 2            # the dropout above is mostly undone here
  - flatten
  - dense: 10
```

## Use instead
```yaml
input: [1, 28, 28]
layers:
  - conv: {filters: 32, kernel: 5, padding: same}
  - relu
  - maxpool: 2
  - dropout: 0.3
  - flatten
  - dense: 10
```

## Options
None.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021), rule f018: a dropout layer must be placed after the pooling layer to
  be more effective.
- Tompson et al., *Efficient Object Localization Using Convolutional Networks* (CVPR 2015): neighbouring
  values of a feature map are strongly correlated, so dropping single values of a map is largely made
  up for by their neighbours.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import after, per_axis, pooling, size, spatial, used, window

CODE = "AC703"
SLUG = "dropout-before-pooling"
SEVERITY = "warning"
SCOPE = "layer"  # a finding needs only the layers up to the pooling, analysed whenever it is found
OPTIONS: dict = {}
SUMMARY = "Dropout before a downsampling pooling, which mostly undoes it."


def _through(node) -> bool:
    """Layers between a dropout and a pooling that keep each value where it is."""
    layer = node.layer
    return len(node.inputs) == 1 and not layer.weighted and (layer.activation or layer.normalises or layer.passes)


def check(analysis, options):
    for node in used(analysis):
        if node.layer.category != "regularizer" or not node.layer.rate > 0:
            continue
        pool = next((n for n in after(analysis, node, _through) if pooling(analysis, n)), None)
        if pool is None:
            continue
        g, facts = window(analysis, pool), analysis.layers[pool.name]
        yield Report(
            node,
            f"drops {node.layer.rate:.0%} of the values before the {size(g.kernel)}/{per_axis(g.stride)} pooling "
            f"'{pool.name}' ({size(spatial(facts.in_shapes[0]))} -> {size(spatial(facts.shape))}), which "
            f"{'averages the zeros in with the survivors' if pool.layer.linear else 'keeps the largest survivor'} of "
            f"each window and mostly undoes the dropout (expected dropout after the pooling)",
            f"move this dropout after '{pool.name}'",
        )
