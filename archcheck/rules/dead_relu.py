"""## What it does
During `archcheck run --grad`, flags a ReLU (`relu`, `relu6`) whose output is exactly zero for at
least `dead_share` of its values on the batch. The message also counts the channels (or units) that
are zero for every sample and position: units that are dead, not just quiet.

## Why is this bad?
A ReLU passes only positive values, and no gradient where its output is zero. A unit whose input
is negative for every sample receives no gradient at all, so its weights never change again and
it stays dead for the rest of training ("dying ReLU"). The usual causes are a large negative bias,
often left behind by one step with too high a learning rate, and weights or inputs on the wrong
scale. When most of a layer is dead, the network has lost most of its capacity there and the
layers before it learn through the few units still alive.

Where it does not apply: a healthy ReLU outputs zero for about half of its values, and sparse
activations are normal. A batch of a few samples can make a rare feature look dead: confirm on a
representative batch (`--data`, `--batch`) before acting.

## Example
```yaml
input: [2, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3}
  - relu
  - conv: {filters: 4, kernel: 3}
  - relu
  - flatten
  - dense: 3
```
run with weights in which three of `conv_1`'s four biases have been driven to -50:
```console
$ archcheck run net.yaml --grad --batch 2 --weights diverged.npz
net.yaml:4:5: AC801 dead-relu [warning] layer 'relu_1': 89% of this ReLU's outputs are zero on the batch (3 of 4 channels are zero for every sample), so little gradient flows back through it (threshold 70%)
  = fix: check the initialisation and the biases of the layer before it (a large negative shift kills ReLUs), normalise before the activation, or use leaky_relu
```

## Use instead
```yaml
input: [2, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3}
  - batchnorm               # re-centres what reaches the ReLU, whatever the bias
  - relu
  - conv: {filters: 4, kernel: 3}
  - relu
  - flatten
  - dense: 3
```
With the same weights, about half of `relu_1`'s outputs are zero. Alternatively lower the learning
rate, fix the initialisation, or use `leaky_relu`, which passes a small gradient for negative
inputs.

## Options
- `dead_share` (default 0.7): the share of zero outputs at or above which a ReLU is reported
  (AUTOTRAINER's γ).

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: ReLU passes only positive
  values through; leaky ReLU is the listed alternative.
- AUTOTRAINER (Zhang et al., *AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System*,
  ICSE 2021): the dying-ReLU detector and its default threshold γ = 0.7.
- Lu et al., *Dying ReLU and Initialization: Theory and Numerical Examples* (2020).
"""  # noqa: E501 (the console block quotes a finding verbatim)

from __future__ import annotations

from archcheck.findings import Report

CODE = "AC801"
SLUG = "dead-relu"
SEVERITY = "warning"
KIND = "dynamic"
OPTIONS = {"dead_share": 0.7}
SUMMARY = "A ReLU layer outputs zero for most values of the batch."


def validate(options):
    if not 0 < options["dead_share"] <= 1:
        raise ValueError("dead_share", "a share above 0 and at most 1")


def check(run, options):
    threshold = options["dead_share"]
    for name, s in run.stats.items():
        layer = run.analysis.graph.nodes[name].layer
        if not (layer.activation and layer.dies) or s.zeros < threshold:
            continue
        units = "channels" if len(s.shape) > 2 else "units"
        yield Report(
            run.analysis.graph.nodes[name],
            f"{s.zeros:.0%} of this ReLU's outputs are zero on the batch ({s.dead_units} of {s.units} {units} are "
            f"zero for every sample), so little gradient flows back through it (threshold {threshold:.0%})",
            "check the initialisation and the biases of the layer before it (a large negative shift kills ReLUs), "
            "normalise before the activation, or use leaky_relu",
        )
