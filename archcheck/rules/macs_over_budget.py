"""## What it does
Flags a network that needs more multiply-accumulates (MACs) for one sample than the project's budget,
`max-macs` in the configuration's `[budgets]` table. The finding sits on the layer that needs the most.

## Why is this bad?
MACs are the work of one forward pass: on a given device, latency and energy per image follow them
closely for convolutions and dense layers. A real-time or battery-powered target has a ceiling, and a
design that passes it is found out only on the device, unless the check runs on every change.

Where it does not apply: nothing is checked until a project sets `max-macs`. MACs do not count the
element-wise work (activations, normalisation, pooling) nor memory traffic, which dominate some
networks' latency (depthwise convolutions): a MAC budget is a first gate, not a latency measurement.

## Example
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 32, kernel: 3, padding: 1}   # 462M MACs at full resolution
  - relu
  - globalavgpool
  - dense: 10
```
with the budget
```toml
[budgets]
max-macs = "200M"
```

## Use instead
Downsample early, as classification networks do in their stem:
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 32, kernel: 3, stride: 2, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 32, kernel: 3, padding: 1}   # 29M MACs at 56x56
  - relu
  - globalavgpool
  - dense: 10
```

## Options
None. The limit is `max-macs` in the configuration's `[budgets]` table: a whole number or a string
with a suffix k, M, G or T (`"4.5G"`). MACs are counted as `archcheck summary` counts them (the
torchvision and fvcore convention; 1 MAC = 2 FLOPs), for one sample.

## References
- Howard et al., *MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications*
  (2017): multiply-adds as the measure of a design's computation, traded against accuracy.
- Canziani, Paszke and Culurciello, *An Analysis of Deep Neural Network Models for Practical
  Applications* (2016): inference time and power grow with the operations count.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.render.fmt import si

from ._walk import heaviest

CODE = "AC902"
SLUG = "macs-over-budget"
SEVERITY = "error"  # a budget is a gate the project set (docs/lint.md, Budgets)
SCOPE = "network"  # a total of the whole network (docs/lint.md, SCOPE)
OPTIONS = {}  # the limit comes from [budgets] as the option `budget` (archcheck.budgets)
SUMMARY = "The network needs more multiply-accumulates per sample than its budget (max-macs)."


def check(analysis, options):
    budget = options.get("budget")
    total = analysis.totals.macs
    if budget is None or total <= budget.limit:
        return
    biggest, held = heaviest(analysis, "macs")
    yield Report(
        biggest,
        f"the network needs {total:,} MACs ({si(total)}) per sample, {total - budget.limit:,} over the budget of "
        f"{budget.limit:,} ({budget.where()}); this layer needs the most of them, {held:,} ({held / total:.0%})",
        "make this layer cheaper first (downsample before it, fewer filters, a depthwise-separable or grouped "
        f"convolution), or raise `{budget.key}`",
    )
