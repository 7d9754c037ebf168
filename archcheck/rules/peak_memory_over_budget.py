"""## What it does
Flags a network whose peak inference memory, at the batch and element type the budget names, is more
than the project's budget, `max-peak-memory` in the configuration's `[budgets]` table (measured at
`peak-memory-batch`, default 1, and `peak-memory-dtype`, default float32). The finding sits on the
layer at which the memory peaks.

## Why is this bad?
Inference needs the weights plus every activation still waiting for a consumer; the largest such sum
over the forward pass is the memory a device must have free, and a batch that does not fit does not
run. Most of it is usually the widest feature maps near the input, at full resolution, multiplied by
the batch: a few early channels more can double it while adding almost no parameters.

Where it does not apply: nothing is checked until a project sets `max-peak-memory`. The figure is
`archcheck summary`'s peak inference memory at that batch and element type: tensors freed after their
last consumer, no in-place operations, no framework workspace or allocator overhead, so keep a margin
below the device's memory.

## Example
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}   # 64x224x224 values per sample
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```
with the budget
```toml
[budgets]
max-peak-memory = "64 MiB"
peak-memory-batch = 32
peak-memory-dtype = "float16"
```

## Use instead
Downsample in the first layer and widen later, where the maps are small:
```yaml
input: [3, 224, 224]
layers:
  - conv: {filters: 32, kernel: 3, stride: 2, padding: 1}   # 32x112x112
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
```

## Options
None. The budget is `max-peak-memory` in the configuration's `[budgets]` table, a size as `--max-memory`
takes it (`"2 GiB"`, `"500MB"`, or a whole number of bytes; KiB, MiB, GiB and TiB are powers of 1024,
kB, MB, GB and TB powers of 1000), with `peak-memory-batch` (default 1) and `peak-memory-dtype`
(default `float32`; float16, bfloat16, float64, int8) saying at what it is measured.

## References
- Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks* (2018), *Memory efficient
  inference*: the memory inference needs is the largest total size of the tensors alive at once.
- Canziani, Paszke and Culurciello, *An Analysis of Deep Neural Network Models for Practical
  Applications* (2016): memory use against batch size for published networks.
"""

from __future__ import annotations

from archcheck.findings import Report
from archcheck.propagate import peak_inference_at
from archcheck.render.fmt import human_bytes

CODE = "AC903"
SLUG = "peak-memory-over-budget"
SEVERITY = "error"  # a budget is a gate the project set (docs/lint.md, Budgets)
SCOPE = "network"  # a total of the whole network (docs/lint.md, SCOPE)
OPTIONS = {}  # the limit comes from [budgets] as the option `budget` (archcheck.budgets)
SUMMARY = "Peak inference memory is more than its budget (max-peak-memory)."


def check(analysis, options):
    budget = options.get("budget")
    if budget is None:
        return
    peak = peak_inference_at(analysis, budget.batch, budget.dtype)
    if peak <= budget.limit:
        return
    at = analysis.totals.peak_at  # the same layer at every batch and dtype: every tensor scales alike
    over = peak - budget.limit
    yield Report(
        analysis.layers[at].node,
        f"peak inference memory at batch {budget.batch} in {budget.dtype} is {peak:,} bytes ({human_bytes(peak)}: "
        f"the weights and the activations alive here), {over:,} bytes ({human_bytes(over)}) over the budget of "
        f"{budget.limit:,} bytes ({human_bytes(budget.limit)}; {budget.where()})",
        "make the activations alive here smaller (fewer channels, or downsample earlier) or the weights fewer; "
        f"or measure at a smaller `peak-memory-batch`, or raise `{budget.key}`",
    )
