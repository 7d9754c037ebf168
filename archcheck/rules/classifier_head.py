"""## What it does
Checks the classifier at the end of the network:

- the last layer with weights before each output has as many outputs as the spec's `classes`;
- `softmax` is the last layer (nothing but dropout or reshaping after it), appears once on a path,
  and does not directly follow another activation.

Whether the output activation fits what the output is (softmax for probabilities, none for logits)
is `output-layer` (AC505).

## Why is this bad?
A final layer whose width differs from the number of classes cannot be trained against the labels;
it is almost always a stale number after a dataset change. Softmax turns the last layer's scores
into class probabilities: anywhere but last it squashes values that later layers then have to undo,
twice is a bug (the second flattens the probabilities towards uniform), and an activation right
before it (relu) clips the scores it needs: negative logits become 0 and the probabilities lose
their ordering.

Where it does not apply: specs without `classes` (regression, embeddings) are only checked for
misplaced softmax.

## Example
```yaml
input: [3, 32, 32]
classes: 10
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 100            # 100 outputs for 10 classes
  - relu                  # clips the scores softmax needs
  - softmax
```

## Use instead
```yaml
input: [3, 32, 32]
classes: 10
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
  - softmax
```

## Options
None.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition* and LeCun et al., *Gradient-Based
  Learning Applied to Document Recognition* (1998): the number of units in the last layer equals the number of
  classes when it is activated by softmax.
- NeuraLint (Nikanjam et al., 2021) and UMLAUT (Schoop et al., 2021): last layer width, missing or misplaced
  softmax, activation before softmax.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import after, before, channels, final, is_activation, is_softmax, is_weight, passes, used

CODE = "AC501"
SLUG = "classifier-head"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Classifier head: width differs from classes; softmax misplaced or doubled."


def check(analysis, options):
    classes = analysis.spec.classes
    for node in used(analysis):
        if not is_softmax(node):
            continue
        nxt = next(after(analysis, node, passes), None)
        if nxt is not None and not is_softmax(nxt):  # a doubled softmax is reported at the second
            yield Report(node, f"is followed by '{nxt.name}' ({nxt.type}): softmax is not the last layer (expected "
                               f"it at the output only)",
                         "remove this softmax, or move it to the end of the network")
        prev = next((p for p in before(analysis, node, passes) if is_activation(p)), None)
        if prev is not None:
            what = "a second softmax" if is_softmax(prev) else f"{prev.type} right before softmax"
            yield Report(node, f"follows the activation '{prev.name}' ({prev.type}): {what} distorts the class "
                               f"scores (expected the last dense or convolution to feed softmax directly)",
                         f"remove `{prev.type}` before the softmax")
    if classes is None:
        return
    for output in analysis.graph.outputs:
        last = final(analysis, output)
        weights = last if is_weight(last) else next(before(analysis, last, lambda n: not is_weight(n)), None)
        if weights is not None and is_weight(weights) and channels(analysis, weights) != classes:
            yield Report(weights, f"has {channels(analysis, weights)} outputs but the spec declares classes: "
                                  f"{classes} (expected the last layer with weights to have one output per class)",
                         f"set it to {classes} units (filters), or correct `classes`")
