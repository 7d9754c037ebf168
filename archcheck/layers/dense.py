"""Fully connected layer: ``dense``."""

from __future__ import annotations

import math
from typing import ClassVar

from archcheck.layers.base import Dim, Layer, ShapeError


class Dense(Layer):
    """Fully connected layer on a vector ``(F,)`` giving ``(units,)``.

    Weights ``(units, F)`` as in PyTorch's ``Linear``; MACs ``F x units``; FLOPs
    ``2 x MACs`` plus one add per output for the bias. A feature map must be flattened
    (or globally pooled) first: archcheck does not silently apply dense to the last axis.
    """

    type: ClassVar[str] = "dense"
    category = "dense"
    weighted = True
    linear = True
    normalises = False
    activation = False
    window = False
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = False
    shorthand: ClassVar[str] = "units"
    folds_affine = True

    units: Dim
    bias: bool = True

    def output_shape(self, inputs):
        shape = inputs[0]
        if len(shape) != 1:
            raise ShapeError("dense expects a flat vector (F,), not a feature map",
                             f"add `flatten` before it (giving {math.prod(shape):,} features) or "
                             f"`globalavgpool` (giving {shape[0]} features)")
        return (self.units,)

    def weight_shapes(self, inputs):
        shapes = {"weight": (self.units, inputs[0][0])}
        if self.bias:
            shapes["bias"] = (self.units,)
        return shapes

    def macs(self, inputs, out):
        return inputs[0][0] * self.units

    def flops(self, inputs, out):
        return 2 * self.macs(inputs, out) + (self.units if self.bias else 0)

    def forward(self, xs, params, ctx):
        x = xs[0]
        y = x @ params["weight"].T
        if "bias" in params:
            y += params["bias"]
        return y, (x if ctx.grad else None)

    def fold(self, params, scale, shift):
        """Weights that compute this layer followed by ``y * scale + shift`` per unit."""
        bias = params["bias"] * scale if self.bias else 0
        return {"weight": params["weight"] * scale.reshape(-1, 1), "bias": bias + shift}

    def backward(self, dy, x, params):
        grads = {"weight": dy.T @ x}
        if self.bias:
            grads["bias"] = dy.sum(axis=0)
        return [dy @ params["weight"]], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        weights = [b.param("weight")] + ([b.param("bias")] if self.bias else [])
        b.op("Gemm", [inputs[0], *weights], output, transB=1)
