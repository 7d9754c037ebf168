"""## What it does
Flags `sigmoid` and `tanh` activations in hidden layers, that is, anywhere but at an output of the
network or as a gate feeding a `multiply`.

## Why is this bad?
Sigmoid and tanh saturate: for large inputs their gradient is almost zero, and even at best it is
0.25 (sigmoid) or 1 (tanh). Backpropagation multiplies these factors layer after layer, so the
gradient reaching the early layers shrinks exponentially with depth and they barely learn (the
vanishing gradient problem). Sigmoid's outputs are also all positive, which slows learning further.
ReLU and its relatives do not saturate for positive inputs and train much faster (AlexNet reported 6
times faster than tanh).

Where it does not apply: at the output (sigmoid for binary or multi-label outputs, tanh for outputs
in [-1, 1]) and as a gate whose output multiplies another tensor (squeeze-and-excitation,
attention, LSTM-style gating), where the bounded range is the point.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - sigmoid
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: sigmoid and tanh cause the
  vanishing gradient problem; ReLU passes positive values only.
- The blog post *Forward and Backward Propagation using Convolution operation*: n hidden layers of sigmoid
  multiply n small derivatives, so the gradient decreases exponentially towards the first layers; AlexNet's
  ReLU trained 6 times faster than tanh.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition* (activation functions) and Krizhevsky
  et al., *ImageNet Classification with Deep Convolutional Neural Networks* (2012): ReLU is a good starting
  point; avoid sigmoid and tanh.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import after, is_activation, is_softmax, passes, used

CODE = "AC402"
SLUG = "saturating-activation"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Sigmoid or tanh in a hidden layer (vanishing gradients)."


def check(analysis, options):
    for node in used(analysis):
        if not (is_activation(node) and node.layer.saturating) or is_softmax(node):
            continue  # a softmax is an output (classifier-head checks where it sits)
        hidden = [n for n in after(analysis, node, passes) if not n.layer.gate]
        if not hidden:
            continue
        yield Report(
            node,
            f"is a saturating activation in a hidden layer (feeding '{hidden[0].name}'): its gradient is at most "
            f"{node.layer.peak_gradient:g} and vanishes for large inputs, so the layers before it learn slowly "
            f"(expected relu or a non-saturating relative)",
            f"replace `{node.type}` with `relu` (or leaky_relu, elu, gelu, swish); keep {node.type} for outputs "
            f"and gates",
        )
