"""## What it does
Flags a chain of more than `max_dense` dense layers in a row (counted along the longest path since
the last convolution).

## Why is this bad?
After the convolutions have extracted the features, one to three fully connected layers are enough
to classify them. More dense layers add parameters (each one a full matrix) and depth without
spatial structure to exploit, are hard to train without normalisation, and overfit. If the features
are not separable after three dense layers, the convolutional part is what needs more capacity.

Where it does not apply: multi-layer perceptrons on non-image data are not what this linter is for;
raise `max_dense` for them. Dense layers inside attention or gating branches that merge back (a
squeeze-and-excitation block's two dense layers) break the chain when they merge.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 256
  - relu
  - dense: 128
  - relu
  - dense: 64
  - relu
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 256
  - relu
  - dense: 10
```

## Options
- `max_dense` (default 3): the most dense layers accepted in a row.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: the number of fully connected layers
  is usually between 1 and 3; the most important is the last one.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*; deeplearning.ai course *Convolutional
  Neural Networks*: the pattern `[FC -> RELU]*K -> OUTPUT` with K typically 0 to 2 before the output layer.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import is_conv, longest, used

CODE = "AC503"
SLUG = "too-many-dense"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"max_dense": 3}
SUMMARY = "More than 3 dense layers in a row in the head."


def validate(options):
    if options["max_dense"] < 1:
        raise ValueError("max_dense", "a layer count of at least 1")


def check(analysis, options):
    count = longest(analysis, step=lambda n: n.layer.category == "dense", reset=is_conv)
    limit = options["max_dense"]
    for node in used(analysis):
        if node.layer.category == "dense" and count[node.name] == limit + 1:
            yield Report(
                node,
                f"is dense layer number {limit + 1} in a row since the last convolution (expected at most {limit})",
                "remove hidden dense layers (1 to 3 are enough after the convolutions), or give the convolutional "
                "part more capacity instead",
            )
