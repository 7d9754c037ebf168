"""## What it does
Flags a network with more trainable parameters than the project's budget, `max-params` in the
configuration's `[budgets]` table. The finding sits on the layer that holds the most parameters.

## Why is this bad?
The parameter count fixes the size of the weights file, the memory that holds the weights while the
network runs, and what a device must download to update it. A project that ships to a phone or a
microcontroller has a ceiling; a design that passes it fails late, after training, unless the check runs
on every change. The budget turns that ceiling into a gate in CI.

Where it does not apply: nothing is checked until a project sets `max-params`. Networks that are never
deployed as they are (a teacher distilled into a smaller student, an experiment) can be left out with
`per-file-ignores`.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - flatten
  - dense: 256            # 64x8x8 inputs: 1,048,832 parameters
  - relu
  - dense: 10
```
with the budget
```toml
[budgets]
max-params = "1M"
```

## Use instead
Pool globally before the dense layers:
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 256            # 64 inputs: 16,640 parameters
  - relu
  - dense: 10
```

## Options
None. The limit is `max-params` in the configuration's `[budgets]` table: a whole number (`25_000_000`)
or a string with a suffix k, M, G or T (`"25M"`). It counts trainable parameters, as `archcheck
summary` does (`trainable` in its params line); normalisation statistics are buffers and do not count.

## References
- Howard et al., *MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications*
  (2017): parameters and multiply-adds as the two budgets a mobile design is chosen under.
- Canziani, Paszke and Culurciello, *An Analysis of Deep Neural Network Models for Practical
  Applications* (2016): accuracy against parameters, operations and memory of published networks.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import heaviest

CODE = "AC901"
SLUG = "params-over-budget"
SEVERITY = "error"  # a budget is a gate the project set (docs/lint.md, Budgets)
SCOPE = "network"  # a total of the whole network (docs/lint.md, SCOPE)
OPTIONS = {}  # the limit comes from [budgets] as the option `budget` (archcheck.budgets)
SUMMARY = "The network has more trainable parameters than its budget (max-params)."


def check(analysis, options):
    budget = options.get("budget")
    total = analysis.totals.trainable
    if budget is None or total <= budget.limit:
        return
    biggest, held = heaviest(analysis, "params")
    yield Report(
        biggest,
        f"the network has {total:,} trainable parameters, {total - budget.limit:,} over the budget of "
        f"{budget.limit:,} ({budget.where()}); this layer holds the most of them, {held:,} ({held / total:.0%})",
        "shrink this layer first (fewer filters or units; global pooling instead of flattening before a dense "
        f"layer), or raise `{budget.key}`",
    )
