"""## What it does
Flags a convolution or dense layer whose output reaches the next convolution or dense layer with no
activation in between: only normalisation, pooling, dropout, reshaping or merges.

## Why is this bad?
Convolutions and dense layers are linear, and so are normalisation, average pooling, reshapes and
sums. Two of them with nothing non-linear between compose into one linear map: the second layer adds
parameters and compute but no expressive power, and the network is shallower than it looks. (Max
pooling is non-linear across positions, but passes each feature through unchanged in sign and
scale, so the layer before it still lacks a non-linearity of its own.)

Where it does not apply: a *linear bottleneck*, where the first layer narrows the channels and the
next widens them again (MobileNetV2's projection convolutions), is a deliberate low-rank
factorisation and is not flagged. Nor is a transposed convolution used as a learned upsampling
before the next convolution (U-Net's "up-convolution"): it plays the part of an `upsample`, which
is just as linear. The classifier's final dense layer has no activation besides
softmax, which is fine: it is not followed by another linear layer.

## Example
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - batchnorm
  - conv: {filters: 64, kernel: 3, padding: 1}   # conv -> batchnorm -> conv: one linear map
  - relu
```

## Use instead
```yaml
input: [3, 32, 32]
layers:
  - conv: {filters: 64, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
```

## Options
None.

## References
- EVA wiki, *First Neural Networks: Weights, Kernels, Activations and Layers*: without activation functions
  all layers collapse into one, since a linear combination of linear functions is still linear.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: a convolution is a linear operation;
  non-linearity keeps the network from being a linear classifier.
- NeuraLint (Nikanjam et al., 2021) and UMLAUT (Schoop et al., 2021): missing activation between layers.
- Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks* (2018).
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import after, channels, is_weight, used

CODE = "AC401"
SLUG = "missing-activation"
SEVERITY = "warning"
OPTIONS: dict = {}
SUMMARY = "Two linear layers with no activation between them (they collapse into one)."


def _linear(node) -> bool:
    """Layers that add no activation of their own: normalisation, pooling, reshapes, dropout, sums,
    concatenation (not a gate, whose product is a non-linearity)."""
    layer = node.layer
    return not (layer.weighted or layer.activation or layer.gate)


def check(analysis, options):
    for node in used(analysis):
        if not is_weight(node) or node.layer.upsamples:
            continue
        nxt = next((n for n in after(analysis, node, _linear) if is_weight(n)), None)
        if nxt is None:
            continue
        width, wider = channels(analysis, node), analysis.layers[node.name].in_shapes[0][0]
        if width < wider and width < channels(analysis, nxt):
            continue  # a linear bottleneck
        yield Report(
            node,
            f"feeds '{nxt.name}' ({nxt.type}) with no activation between them: the two linear layers compose into "
            f"one linear map (expected an activation, such as relu, after this {node.type})",
            f"add `- relu` after this {node.type} (after its normalisation, if it has one)",
        )
