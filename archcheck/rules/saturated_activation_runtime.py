"""## What it does
During `archcheck run --grad`, flags a sigmoid or tanh layer for which at least `saturated_share`
of the outputs on the batch are saturated: within `margin` of the output range from one of its
bounds (for sigmoid, below 0.01 or above 0.99 by default). The same `margin` sets the `saturated`
column of the run table.

## Why is this bad?
Sigmoid and tanh squash a large input range into a small output range, so near their bounds a
large change in the input makes almost no change in the output: the derivative is close to zero
and the gradient flowing back through a saturated unit vanishes. The layers before it then barely
learn, and a saturated sigmoid at the output answers with full confidence whatever the loss says.
Saturation at run time comes from inputs on the wrong scale (raw pixel values in 0-255), weights
initialised too large, or a missing normalisation.

Where it does not apply: a sigmoid gate or output that has learnt to be decisive (a mask that is
really 0 or 1) saturates on purpose once trained. The check is meant for fresh or early weights,
where saturation means the signal is on the wrong scale.

## Example
```yaml
input: [3, 16, 16]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 4
  - sigmoid                 # multi-label output
```
run on raw pixel values (0-255):
```console
$ archcheck run tagger.yaml --grad --data raw_pixels.npy
tagger.yaml:7:5: AC802 saturated-activation-runtime [warning] layer 'sigmoid_1': 100% of this sigmoid's outputs are within 1% of its bounds, where its gradient almost vanishes (threshold 50%)
  = fix: normalise the input of the activation (batchnorm), scale the initial weights down, or use a ReLU-family activation in hidden layers
```

## Use instead
```yaml
input: [3, 16, 16]
layers:
  - batchnorm               # normalises the raw input
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 4
  - sigmoid
```
Or scale the data to a small range (mean 0, standard deviation 1) before it reaches the network.

## Options
- `saturated_share` (default 0.5): the share of saturated outputs at or above which a layer is
  reported.
- `margin` (default 0.01): the share of the output range next to each bound that counts as
  saturated.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: sigmoid and tanh cause the
  vanishing gradient problem.
- The blog post *Forward and Backward Propagation using Convolution operation*: the sigmoid squishes a large input
  space into a small one, so a large change in its input causes a small change in its output and its
  derivative becomes small.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition* (activation functions) and Krizhevsky
  et al., *ImageNet Classification with Deep Convolutional Neural Networks* (2012): avoid sigmoid and tanh;
  ReLU is a good starting point.
- AUTOTRAINER (Zhang et al., ICSE 2021) counts saturated activations among the symptoms of vanishing
  gradients. The static rule `saturating-activation` (AC402) flags sigmoid and tanh in hidden layers before
  anything runs.
"""  # noqa: E501 (the console block quotes a finding verbatim)

from __future__ import annotations

from archcheck.findings import Report

CODE = "AC802"
SLUG = "saturated-activation-runtime"
SEVERITY = "warning"
KIND = "dynamic"
OPTIONS = {"saturated_share": 0.5, "margin": 0.01}
SUMMARY = "A sigmoid/tanh layer sits mostly at its bounds."


def validate(options):
    if not 0 < options["saturated_share"] <= 1:
        raise ValueError("saturated_share", "a share above 0 and at most 1")
    if not 0 <= options["margin"] < 0.5:
        raise ValueError("margin", "a share of the output range from 0 to below 0.5 (each bound has its own margin)")


def check(run, options):
    threshold = options["saturated_share"]
    for name, s in run.stats.items():
        if s.saturated is None or s.saturated < threshold:
            continue
        yield Report(
            run.analysis.graph.nodes[name],
            f"{s.saturated:.0%} of this {s.type}'s outputs are within {options['margin'] * 100:g}% of its bounds, "
            f"where its gradient almost vanishes (threshold {threshold:.0%})",
            "normalise the input of the activation (batchnorm), scale the initial weights down, or use a "
            "ReLU-family activation in hidden layers",
        )
