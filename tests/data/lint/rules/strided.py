"""A custom rule for the engine's tests.

## What it does
Notes convolutions with a stride above 1.

## Why is this bad?
It is not: an informational test fixture.

## Example
```yaml
- conv: {filters: 8, stride: 2}
```

## Use instead
```yaml
- conv: {filters: 8}
- maxpool: 2
```

## Options
None.

## References
None: a test fixture.
"""

from archcheck.findings import Report

from ._shared import convs

CODE = "XT102"
SLUG = "strided"
SEVERITY = "info"
OPTIONS = {}
SUMMARY = "A convolution has a stride above 1."


def check(analysis, options):
    for node in convs(analysis):
        if node.layer.stride != 1:
            yield Report(node, f"stride {node.layer.stride}, expected 1", "pool instead")
