"""## What it does
Flags a convolution or dense layer whose output reaches the next convolution or dense layer with no
activation in between: only batch normalisation, pooling, dropout or reshaping.

## Why is this bad?
Convolutions and dense layers are linear, and so are batch normalisation at inference (a per-channel
scale and shift), average pooling and reshapes. Two of them with nothing non-linear between compose
into one linear map: the second layer adds parameters and compute but no expressive power, and the
network is shallower than it looks. (Max pooling is non-linear across positions, but passes each
feature through unchanged in sign and scale, so the layer before it still lacks a non-linearity of
its own.)

Where it does not apply: the walk stops at a merge (a residual sum or a concatenation adds a path
with its own non-linearities, so the layers on either side do not compose) and at a layer
normalisation, which divides by a statistic of its input and is not linear. Deliberate linear pairs
are not flagged: a depthwise convolution next to one that mixes channels, which factorises one
convolution on purpose (a *separable* convolution: depthwise then 1x1 as in Xception and MobileNet;
ConvNeXt's downsampling convolution before its depthwise one; a 1x1 depthwise convolution, a
per-channel scale such as ConvNeXt's layer scale, which folds into its neighbour); a *linear
bottleneck*, where the first layer narrows the channels and the next widens them again
(MobileNetV2's projection convolutions); and a transposed convolution used as a
learned upsampling before the next convolution (U-Net's "up-convolution"): it plays the part of an
`upsample`, which is just as linear. The classifier's final dense layer has no activation besides
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

from ._walk import after, channels, depthwise, is_weight, used

CODE = "AC401"
SLUG = "missing-activation"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Two linear layers with no activation between them (they collapse into one)."


def _linear(node) -> bool:
    """Layers on one path that add no non-linearity of their own: batch normalisation, pooling,
    reshapes, dropout. Not a merge (the other path brings its own), a gate (its product is a
    non-linearity) or a layer normalisation (it divides by a statistic of its input)."""
    layer = node.layer
    return not (layer.weighted or layer.activation or layer.gate or layer.category == "merge"
                or layer.normalises and not layer.linear)


def _deliberate(analysis, node, nxt) -> bool:
    """A linear pair made on purpose: a factorised (separable) convolution, a linear bottleneck."""
    if depthwise(analysis, node) or depthwise(analysis, nxt):
        return True  # spatial and channel mixing split on purpose; a 1x1 depthwise one is a per-channel scale
    width, wider = channels(analysis, node), analysis.layers[node.name].in_shapes[0][0]
    return width < wider and width < channels(analysis, nxt)  # a linear bottleneck


def check(analysis, options):
    for node in used(analysis):
        if not is_weight(node) or node.layer.upsamples:
            continue
        nxt = next((n for n in after(analysis, node, _linear) if is_weight(n)), None)
        if nxt is None or _deliberate(analysis, node, nxt):
            continue
        yield Report(
            node,
            f"feeds '{nxt.name}' ({nxt.type}) with no activation between them: the two linear layers compose into "
            f"one linear map (expected an activation, such as relu, after this {node.type})",
            f"add `- relu` after this {node.type} (after its normalisation, if it has one)",
        )
