"""## What it does
Flags a network whose final receptive field, that of its last feature map (the one `archcheck summary`
shows), is smaller along some spatial axis than the project's budget, `min-receptive-field` in the
configuration's `[budgets]` table: a number of input pixels, or `"input"`, for a field that covers the
input. The finding sits on that last feature map.

`"input"` asks that some feature of the last map see every pixel of the input along each axis. Unit
`i` sees pixels `i·S − P` to `i·S − P + r − 1` (field `r`, stride `S`, offset `P`), so that takes a
field of `n + P − i·S` for an input of `n` pixels, where `i` is the last unit that starts at or before
the first pixel: `n` without padding, up to `n + S − 1` with it. A field as wide as the input is not
always enough: padding shifts it off the image.

## Why is this bad?
A feature can only respond to what its field holds. A detector or classifier whose last features see
a part of the object cannot relate its distant parts, and the theoretical field is an upper bound:
the effective field, where most of the weight lies, is considerably smaller. A project that knows the
scale of its objects can require the field to reach it on every design.

Where it does not apply: nothing is checked until a project sets `min-receptive-field`. A network
whose features all see the whole input (it flattens or pools globally straight after the input) has
nothing smaller to report, and neither has a spec without spatial axes. Rule AC210
`receptive-field-too-small` checks the same coverage without a budget, for global pooling heads.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 10, kernel: 1}    # each output sees 8x8 of the 32x32 input
```
with the budget
```toml
[budgets]
min-receptive-field = "input"
```

## Use instead
More stages, until some feature of the last map sees the whole input (`archcheck summary` shows the
field of every layer). Three stages give a field of 36 pixels, wider than the input, yet with stride 8
and offset 14 no feature covers it (that takes 38); one more convolution does:
```yaml
input: [3, 32, 32]
blocks:
  stage:
    args: {filters: ~}
    layers:
      - conv: {filters: $filters, kernel: 3, padding: 1}
      - relu
      - conv: {filters: $filters, kernel: 3, padding: 1}
      - relu
      - maxpool: 2
layers:
  - stage: {filters: 16}
  - stage: {filters: 32}
  - stage: {filters: 64}
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 10, kernel: 1}    # each output sees 52x52: one sees all the input
```

## Options
None. The budget is `min-receptive-field` in the configuration's `[budgets]` table: a whole number of
input pixels, required along each spatial axis, or `"input"` (see above). The field is measured at the
spec's input size.

## References
- Araujo, Norris and Sim, *Computing Receptive Fields of Convolutional Neural Networks* (Distill, 2019):
  the field's size and offset, and why it should cover the relevant part of the input.
- Luo et al., *Understanding the Effective Receptive Field in Deep Convolutional Neural Networks* (2016): the
  effective field is a fraction of the theoretical one.
"""

from __future__ import annotations

import math

from archcheck.findings import Report
from archcheck.layers.base import axis_label, number
from archcheck.spec import INPUT

from ._walk import size, spatial

CODE = "AC904"
SLUG = "receptive-field-below-budget"
SEVERITY = "error"  # a budget is a gate the project set (docs/lint.md, Budgets)
SCOPE = "network"  # the field of the last feature map: needs the whole network (docs/lint.md, SCOPE)
OPTIONS = {}  # the limit comes from [budgets] as the option `budget` (archcheck.budgets)
SUMMARY = "The final receptive field is smaller than its budget (min-receptive-field)."


def covering(n: int, m: int, axis) -> int | None:
    """The field one of ``m`` units (stride ``axis.S``, offset ``axis.P``) needs to see all ``n`` input pixels;
    None when no unit starts at or before the first pixel (a network that crops the input never sees it)."""
    if axis.P < 0:
        return None
    last = min(m - 1, math.floor(axis.P / axis.S))  # the last unit that starts at or before pixel 0
    return math.ceil(n + axis.P - last * axis.S)


def check(analysis, options):
    budget = options.get("budget")
    final = analysis.totals.receptive_field
    if budget is None or final is None:  # no map after the input: every feature sees all of it
        return
    name, rf = final
    image, fmap = spatial(analysis.layers[INPUT].shape), spatial(analysis.layers[name].shape)
    if len(rf.axes) != len(image):
        return
    node, where = analysis.layers[name].node, budget.where(value=budget.limit == "input")
    shape = analysis.layers[INPUT].shape  # axis i of the map is axis i + 1 of a shape: the channels come first
    field = size(number(a.r) for a in rf.axes)
    if budget.limit == "input":
        limits = [covering(n, m, a) for n, m, a in zip(image, fmap, rf.axes)]
        cropped = next((i for i, limit in enumerate(limits) if limit is None), None)
        if cropped is not None:
            yield Report(
                node,
                f"the receptive field of this last feature map is {field} pixels, but no feature of it sees the first "
                f"{number(-rf.axes[cropped].P)} input pixels along {axis_label(shape, cropped + 1)}: the network crops "
                f"them ({where})",
                "crop after the layers that need the whole input, not before; `archcheck summary` shows the field "
                "of every layer",
            )
            return
    else:
        limits = [budget.limit] * len(image)
    short = [i for i, (a, limit) in enumerate(zip(rf.axes, limits)) if a.r < limit]
    if not short:
        return
    i = max(short, key=lambda j: limits[j] - rf.axes[j].r)  # the axis furthest from its limit; the first of equals
    a, limit, along = rf.axes[i], limits[i], axis_label(shape, i + 1)
    if budget.limit == "input":
        need = (f"no feature of it sees the whole {size(image)} input: along {along} that takes {limit} (its stride "
                f"is {number(a.S)} and its first feature starts {number(a.P)} before the input), "
                f"{number(limit - a.r)} more ({where})")
    else:
        need = f"along {along} it is {number(limit - a.r)} short of the budget of {limit:,} ({where})"
    yield Report(
        node,
        f"the receptive field of this last feature map is {field} pixels; {need}",
        "add convolutions or another downsampling stage before this layer (a 3x3 convolution here widens the field "
        f"by {number(2 * a.S)}), or lower `{budget.key}`; `archcheck summary` shows the field of every layer",
    )
