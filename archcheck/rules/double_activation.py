"""## What it does
Flags an activation applied directly to the output of another activation (with at most dropout,
identity or reshaping between them).

## Why is this bad?
Stacking two activations is almost always a leftover from editing: `relu` after `relu` is a no-op,
`relu` after `sigmoid` does nothing, and other pairs merely squash the values twice. Each adds compute
and memory for an activation tensor but no modelling power; the one that was meant should stay.

Where it does not apply: an activation right before `softmax` is reported by `classifier-head`
instead. Activations separated by normalisation (pre-activation blocks: relu, batchnorm, relu) or by
pooling are not back to back and are not flagged.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
```

## Options
None.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, 2021): redundant consecutive activations.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import before, is_activation, is_softmax, passes, used

CODE = "AC403"
SLUG = "double-activation"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Two activations back to back."


def check(analysis, options):
    for node in used(analysis):
        if not is_activation(node) or is_softmax(node):
            continue
        prev = next((p for p in before(analysis, node, passes) if is_activation(p) and not is_softmax(p)), None)
        if prev is None:
            continue
        yield Report(
            node,
            f"applies {node.type} directly to the output of '{prev.name}' ({prev.type}): two activations in a row "
            f"(expected one activation per layer)",
            f"remove one of the two (keep the {prev.type} or the {node.type}, not both)",
        )
