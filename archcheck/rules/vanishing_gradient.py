"""## What it does
During `archcheck run --grad`, compares the gradient of the loss with respect to the weights of the
first weighted (conv or dense) layer with that of the last one, as AUTOTRAINER does. It flags the
network when the first layer's weight-gradient norm is below `min_ratio` times the last one's and
also below `min_norm` in absolute terms.

## Why is this bad?
Backpropagation multiplies the derivatives of every layer on the way from the loss to the input.
When n hidden layers use an activation whose derivative is small, such as the sigmoid (at most
0.25), n small factors are multiplied together and the gradient shrinks exponentially towards the
first layers. Their weights then hardly change at each step, although the early layers are the
ones that find the basic elements of the input (edges, textures), so the whole network learns
slowly or not at all.

Where it does not apply: with pretrained, frozen early layers a small gradient there is
irrelevant, and a very shallow network has no depth for the gradient to vanish over. One batch is
one sample of the gradient: confirm on a few batches before redesigning.

## Example
```yaml
input: [3, 16, 16]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 16, kernel: 3, padding: 1}
  - sigmoid
  - globalavgpool
  - dense: 10
```
```console
$ archcheck run deep_sigmoid.yaml --grad --batch 2
deep_sigmoid.yaml:3:5: AC803 vanishing-gradient [warning] layer 'conv_1': the weight-gradient norm of the first weighted layer 'conv_1' is 5.72e-05, 4.23e-05 times that of the last, 'dense_1' (1.35): below 0.001 (and below 0.0001), so the early layers barely learn
  = fix: use ReLU-family activations, batchnorm, residual connections or He initialisation
```

## Use instead
```yaml
input: [3, 16, 16]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 16, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - globalavgpool
  - dense: 10
```
Residual connections (`add`) around pairs of convolutions help deeper networks the same way: they
give the gradient a direct path to the first layers.

## Options
- `min_ratio` (default 0.001): the smallest accepted ratio of the first to the last weighted
  layer's weight-gradient norm (AUTOTRAINER's β1).
- `min_norm` (default 0.0001): the first layer's weight-gradient norm must also be below this to be
  reported (AUTOTRAINER's β2).

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: sigmoid and tanh cause the
  vanishing gradient problem.
- The blog post *Forward and Backward Propagation using Convolution operation*: with n sigmoid hidden layers, n
  small derivatives are multiplied and the gradient decreases exponentially towards the initial layers; skip
  connections or other activations are the solution. ResNet's skip connections form a gradient highway to the
  first layer.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: ReLU is a good starting point; avoid
  sigmoid and tanh.
- AUTOTRAINER (Zhang et al., *AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System*,
  ICSE 2021): the vanishing-gradient detector, its ratio of the first to the last layer's gradient and its
  default thresholds β1 = 1e-3, β2 = 1e-4.
"""  # noqa: E501 (the console block quotes a finding verbatim)

from __future__ import annotations

from archcheck.findings import Report
from archcheck.rules._gradient_flow import describe

CODE = "AC803"
SLUG = "vanishing-gradient"
SEVERITY = "warning"
KIND = "dynamic"
OPTIONS = {"min_ratio": 0.001, "min_norm": 0.0001}
SUMMARY = "The first layer's gradient is tiny next to the last layer's."


def validate(options):
    if options["min_ratio"] <= 0:
        raise ValueError("min_ratio", "a ratio above 0")
    if options["min_norm"] <= 0:
        raise ValueError("min_norm", "a norm above 0")


def check(run, options):
    flow = run.gradient_ratio() if run.finite else None  # non-finite gradients are non-finite-values' business
    if flow is None or flow.ratio >= options["min_ratio"] or flow.first_norm >= options["min_norm"]:
        return
    yield Report(
        flow.first,
        f"{describe(flow)}: below {options['min_ratio']:g} (and below {options['min_norm']:g}), so the early "
        "layers barely learn",
        "use ReLU-family activations, batchnorm, residual connections or He initialisation",
    )
