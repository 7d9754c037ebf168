"""## What it does
Flags a convolution or dense layer with a bias (`bias: true`, the default) whose output goes only to
a batch normalisation.

## Why is this bad?
Batch normalisation subtracts each channel's mean, which removes any constant added per channel:
the bias is cancelled exactly, and batchnorm's own shift (`beta`) does its job. The bias parameters
are trained, stored and computed for nothing.

Where it does not apply: layer normalisation over the channels does not remove a per-channel bias
and is not checked, nor is a layer whose output also feeds something other than the batchnorm.
Locally connected layers have a bias per position, which batchnorm does not fully cancel.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - batchnorm
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1, bias: false}
  - batchnorm
  - relu
```

## Options
None.

## References
- Ioffe and Szegedy, *Batch Normalization* (2015): the bias of the preceding layer can be ignored, its effect
  is cancelled by the mean subtraction.
- NeuraLint (Nikanjam et al., 2021): redundant bias before batch normalisation. Common practice in
  torchvision's ResNet, GoogLeNet and MobileNet (`bias=False` before every batchnorm).
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import channels, is_weight, used

CODE = "AC702"
SLUG = "bias-before-norm"
SEVERITY = "info"  # advice: no labelled fault behind it (docs/lint.md, Severities)
SCOPE = "path"  # findings also depend on the layers towards the outputs (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Bias of a conv/dense layer cancelled by the batchnorm right after it."


def check(analysis, options):
    g = analysis.graph
    for node in used(analysis):
        if not is_weight(node) or not getattr(node.layer, "bias", False):
            continue
        nxt = [g.nodes[c] for c in g.consumers[node.name]]
        if not nxt or not all(n.layer.normalises and n.layer.centres_channels for n in nxt):
            continue
        yield Report(
            node,
            f"has a bias that the batch normalisation '{nxt[0].name}' right after it cancels (it subtracts each "
            f"channel's mean): {channels(analysis, node):,} parameters wasted (expected `bias: false` before "
            f"batchnorm)",
            f"set `bias: false` on this {node.type}",
        )
