"""Normalisation: ``batchnorm`` and ``layernorm``."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from archcheck.layers.base import Layer

Eps = Annotated[float, Field(gt=0.0, lt=1.0)]


class BatchNorm(Layer):
    """Batch normalisation over the channel axis (axis 0 of ``(C, ...)``; a vector's features).

    Trainable ``weight`` and ``bias`` (C each, with ``affine``); non-trainable buffers
    ``running_mean`` and ``running_var`` (C each), counted apart from parameters.
    FLOPs: 2 per output value (inference: a folded scale and shift).
    """

    type: ClassVar[str] = "batchnorm"
    category: ClassVar[str] = "norm"
    flops_per_output: ClassVar[int] = 2

    eps: Eps = 1e-5
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    affine: bool = True

    def weight_shapes(self, inputs):
        c = inputs[0][0]
        return {"weight": (c,), "bias": (c,)} if self.affine else {}

    def buffer_shapes(self, inputs):
        c = inputs[0][0]
        return {"running_mean": (c,), "running_var": (c,)}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        c = in_shapes[0][0]
        if self.affine:
            scale, shift = b.param("weight"), b.param("bias")
        else:
            scale, shift = b.const("ones", [1.0] * c), b.const("zeros", [0.0] * c)
        b.op("BatchNormalization", [inputs[0], scale, shift, b.param("running_mean"), b.param("running_var")],
             output, epsilon=self.eps)


class LayerNorm(Layer):
    """Layer normalisation of each sample.

    ``over: channels`` (default) normalises the channel values at each position, with
    ``weight``/``bias`` of size C (as ConvNeXt does); ``over: all`` normalises all of
    ``(C, ...)`` together with per-value ``weight``/``bias`` (PyTorch ``LayerNorm(shape)``).
    FLOPs: 5 per output value (mean, variance, normalise, scale, shift).
    """

    type: ClassVar[str] = "layernorm"
    category: ClassVar[str] = "norm"
    flops_per_output: ClassVar[int] = 5

    eps: Eps = 1e-5
    over: Literal["channels", "all"] = "channels"
    affine: bool = True

    def weight_shapes(self, inputs):
        shape = (inputs[0][0],) if self.over == "channels" else inputs[0]
        return {"weight": shape, "bias": shape} if self.affine else {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """ONNX normalises trailing axes: over channels of a feature map, move them last and back."""
        import numpy as np

        shape = in_shapes[0]
        if self.affine:
            scale, shift = b.param("weight"), b.param("bias")
        else:
            size = (shape[0],) if self.over == "channels" else shape
            scale, shift = b.const("ones", np.ones(size)), b.const("zeros", np.zeros(size))
        if self.over == "all" or len(shape) == 1:
            b.op("LayerNormalization", [inputs[0], scale, shift], output, axis=1, epsilon=self.eps)
            return
        rank = len(shape) + 1
        last = b.op("Transpose", inputs, perm=[0, *range(2, rank), 1])
        normed = b.op("LayerNormalization", [last, scale, shift], axis=-1, epsilon=self.eps)
        b.op("Transpose", [normed], output, perm=[0, rank - 1, *range(1, rank - 1)])
