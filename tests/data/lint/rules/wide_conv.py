"""A custom rule for the engine's tests.

## What it does
Flags convolutions with more filters than `max_filters`.

## Why is this bad?
The test project's target device is small.

## Example
```yaml
- conv: {filters: 512}
```

## Use instead
```yaml
- conv: {filters: 64}
```

## Options
- `max_filters` (default 64): the widest convolution allowed.

## References
None: a test fixture.
"""

from archcheck.findings import Report

from ._shared import convs

CODE = "XT101"
SLUG = "wide-conv"
SEVERITY = "warning"
OPTIONS = {"max_filters": 64}
SUMMARY = "A convolution is wider than max_filters."


def check(analysis, options):
    for node in convs(analysis):
        if node.layer.filters > options["max_filters"]:
            yield Report(node, f"{node.layer.filters} filters, more than the {options['max_filters']} allowed",
                         f"use at most {options['max_filters']} filters")
