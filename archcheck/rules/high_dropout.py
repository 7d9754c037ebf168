"""## What it does
Flags a `dropout` layer whose rate is above `max_rate`, and a dropout placed before a batch
normalisation (anywhere upstream of it).

## Why is this bad?
Dropout at 0.5 is the well-tested default for dense layers; above it, most of the signal is zeroed
at every step, training slows down and the network underfits. Placed before batch normalisation,
dropout changes the variance of the values the batchnorm sees during training, but not at inference
(dropout is off then), so the running statistics batchnorm learned no longer match: a "variance
shift" that costs accuracy.

Where it does not apply: rates above 0.5 on inputs with heavy redundancy (dropout on a wide input
layer, spatial dropout in some segmentation nets) can be deliberate. Dropout after the last
batchnorm, in the classifier head, is the recommended place and is not flagged. Stochastic depth
(`droppath`), which drops a residual branch for a whole sample rather than single values, is not
flagged before a batchnorm: the stochastic-depth ResNets (Huang et al., 2016) and EfficientNet (Tan &
Le, 2019) use it between batchnorms by design.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - dropout: 0.3          # before a batchnorm
  - batchnorm
  - relu
  - globalavgpool
  - dropout: 0.8          # too high
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - globalavgpool
  - dropout: 0.5
  - dense: 10
```

## Options
- `max_rate` (default 0.5): the highest dropout rate accepted.

## References
- The blog post *Forward and Backward Propagation using Convolution operation*: a dropout probability of 0.5 is
  stated to be good.
- UMLAUT (Schoop et al., 2021): dropout rate too high. NeuraLint (Nikanjam et al., 2021): dropout before batch
  normalisation.
- Li et al., *Understanding the Disharmony between Dropout and Batch Normalization by Variance Shift* (2019).
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import used

CODE = "AC701"
SLUG = "high-dropout"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"max_rate": 0.5}
SUMMARY = "Dropout rate above 0.5, or dropout before batch normalisation."


def _norms_below(analysis) -> dict[str, str | None]:
    """Per layer, a batchnorm somewhere downstream of it (the nearest along some path), or None."""
    g = analysis.graph
    below: dict[str, str | None] = {}
    for node in reversed(g.order):
        found = None
        for c in g.consumers[node.name]:
            layer = g.nodes[c].layer
            found = c if layer.normalises and layer.running_statistics else below[c]
            if found:
                break
        below[node.name] = found
    return below


def validate(options):
    if not 0 <= options["max_rate"] <= 1:
        raise ValueError("max_rate", "a rate from 0 to 1")


def check(analysis, options):
    below = None
    for node in used(analysis):
        if node.layer.category != "regularizer":
            continue
        rate = node.layer.rate
        if rate > options["max_rate"]:
            yield Report(
                node,
                f"drops {rate:.0%} of the values at each step (expected at most {options['max_rate']:.0%}): most of "
                f"the signal is lost and the network underfits",
                f"use `dropout: {options['max_rate']:g}` or less",
            )
        if below is None:
            below = _norms_below(analysis)
        norm = below[node.name]
        if norm is not None and not node.layer.per_sample:
            yield Report(
                node,
                f"comes before the batch normalisation '{norm}': the batchnorm's running statistics are learned "
                f"with dropout on and used with it off, a variance shift at inference (expected dropout only after "
                f"the last batchnorm)",
                "move this dropout after the last batchnorm (into the classifier head), or remove it",
            )
