"""## What it does
Flags a layer whose output reaches no output of the network: a dangling branch, or a layer left
behind after rewiring `inputs`.

## Why is this bad?
The layer is computed (and, with weights, trained) for nothing, or, more likely, the spec does not
say what its author meant: a branch that was supposed to be merged, or an output that was not
listed. Figures such as parameter counts and memory include it and mislead.

Where it does not apply: an auxiliary head that is meant to be an output (GoogLeNet's auxiliary
classifiers) must be listed under `outputs:`; then it is used and not flagged.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
    name: features
  - conv: {filters: 64, kernel: 1}
    name: side            # nothing reads it
  - globalavgpool:
    inputs: [features]
  - dense: 10
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - globalavgpool
  - dense: 10
```

## Options
None.

## References
- Common practice (a compiler's "unused variable"): every layer should contribute to an output.
"""

from __future__ import annotations

from archcheck.findings import Report

CODE = "AC602"
SLUG = "unused-layer"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Layer whose output reaches no output of the network."


def check(analysis, options):
    for node in analysis.graph.unused():
        params = analysis.layers[node.name].params if node.name in analysis.layers else 0
        weights = f" ({params:,} parameters trained for nothing)" if params else ""
        yield Report(
            node,
            f"its output reaches no output of the network{weights} (expected every layer to feed an output)",
            "use it as an input of a later layer, list it under `outputs:`, or remove it",
        )
