"""Pooling: ``maxpool``, ``avgpool``, ``globalavgpool``, ``globalmaxpool`` (1-D, 2-D, 3-D)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar

from archcheck.layers.base import (
    Geometry,
    Layer,
    Padding,
    PerAxis,
    ShapeError,
    Step,
    WindowLayer,
    per_axis,
    spatial_input,
    window_out,
    window_padding,
)


class _Pool(WindowLayer):
    """Window pooling. ``stride`` defaults to ``kernel``; ``ceil_mode`` keeps a last partial window
    (PyTorch rule: it must start inside the input or the left padding)."""

    shorthand: ClassVar[str] = "kernel"
    category = "pool"
    weighted = False
    normalises = False
    activation = False
    window = True
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = False

    kernel: PerAxis = 2
    stride: PerAxis | None = None
    padding: Padding = 0
    ceil_mode: bool = False

    def _geometry(self, shape):
        channels, sizes = spatial_input(self, shape)
        rank = len(sizes)
        k = per_axis(self.kernel, rank, "kernel")
        s = per_axis(self.stride if self.stride is not None else self.kernel, rank, "stride")
        d = (1,) * rank
        pads = window_padding(self.padding, rank, k, s, d, sizes)
        for ki, (pb, pa) in zip(k, pads):
            if max(pb, pa) * 2 > ki:
                raise ShapeError(f"padding {max(pb, pa)} is more than half the {ki}-wide window, so a window "
                                 "could see only padding", f"use padding of at most {ki // 2}")
        return Geometry(channels, sizes, k, s, d, pads, window_out(self, sizes, k, s, d, pads, self.ceil_mode))

    def output_shape(self, inputs):
        g = self.geometry(inputs[0])
        return (g.channels, *g.out_sizes)

    def rf_steps(self, inputs, out):
        g = self.geometry(inputs[0])
        return [Step(Fraction(ki), Fraction(si), Fraction(p[0])) for ki, si, p in zip(g.kernel, g.stride, g.pads)]

    @staticmethod
    def overhang(g: Geometry) -> tuple[int, ...]:
        """Per axis, how far the last window ``ceil_mode`` keeps reaches past the padded input.

        ONNX writes these windows as extra end padding with ``ceil_mode=0``: its own ceil rule has
        changed between versions (whether a window may start in the end padding), this one has not."""
        return tuple(max(0, (o - 1) * si + ki - (n + pb + pa))
                     for n, ki, si, (pb, pa), o in zip(g.in_sizes, g.kernel, g.stride, g.pads, g.out_sizes))


class MaxPool(_Pool):
    """Max pooling. FLOPs: ``prod(kernel) - 1`` comparisons per output value."""

    type: ClassVar[str] = "maxpool"
    linear = False

    def flops(self, inputs, out):
        return (math.prod(self.geometry(inputs[0]).kernel) - 1) * math.prod(out)

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x, g = xs[0], ctx.geometry
        y, index = kernels.max_pool(x, g.kernel, g.stride, g.pads, g.out_sizes, keep_index=ctx.grad)
        return y, (g, index)

    def backward(self, dy, cache, params):
        """The gradient goes to the (first) maximum of each window."""
        from archcheck import kernels

        g, index = cache
        return [kernels.max_pool_grad(dy, index, g.in_sizes, g.kernel, g.stride, g.pads, g.out_sizes)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        g = b.geometry
        pads = [(pb, pa + extra) for (pb, pa), extra in zip(g.pads, self.overhang(g))]  # max ignores pads
        b.op("MaxPool", inputs, output, kernel_shape=list(g.kernel), strides=list(g.stride), pads=b.pads(pads))


class AvgPool(_Pool):
    """Average pooling; ``count_include_pad`` as in PyTorch. FLOPs: ``prod(kernel)`` per output value
    (adds and one divide)."""

    type: ClassVar[str] = "avgpool"
    linear = True

    count_include_pad: bool = True

    def flops(self, inputs, out):
        return math.prod(self.geometry(inputs[0]).kernel) * math.prod(out)

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x, g = xs[0], ctx.geometry
        return kernels.avg_pool(x, g.kernel, g.stride, g.pads, g.out_sizes, self.count_include_pad), g

    def backward(self, dy, g, params):
        from archcheck import kernels

        return [kernels.avg_pool_grad(dy, g.in_sizes, g.kernel, g.stride, g.pads, g.out_sizes,
                                      self.count_include_pad)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """A window that ``ceil_mode`` keeps averages what it covers of the padded input (PyTorch's rule), never
        its overhang: with padding that counts, the padding is written out as zeros first."""
        g = b.geometry
        extra = self.overhang(g)
        counted = self.count_include_pad and any(pb or pa for pb, pa in g.pads)
        if counted and any(extra):
            zeros = ((0, 0), (0, 0), *g.pads)  # batch and channels unpadded
            inputs = [b.op("Pad", [inputs[0], b.ints("pads", b.pads(zeros))], mode="constant")]
            pads = [(0, e) for e in extra]
        else:
            pads = [(pb, pa + e) for (pb, pa), e in zip(g.pads, extra)]
        b.op("AveragePool", inputs, output, kernel_shape=list(g.kernel), strides=list(g.stride), pads=b.pads(pads),
             count_include_pad=int(self.count_include_pad and not any(extra)))


class _GlobalPool(Layer):
    """Pool each channel over all spatial positions: ``(C, ...)`` to ``(C,)``, or ``(C, 1, ...)``
    with ``keepdims``. FLOPs: one per input value. The receptive field becomes the whole input."""

    category = "pool"
    weighted = False
    normalises = False
    activation = False
    window = False
    upsamples = False
    global_pool = True
    gate = False
    passes = False
    pointwise = False

    keepdims: bool = False

    def output_shape(self, inputs):
        channels, sizes = spatial_input(self, inputs[0])
        return (channels, *(1,) * len(sizes)) if self.keepdims else (channels,)

    def flops(self, inputs, out):
        return math.prod(inputs[0])

    def rf_steps(self, inputs, out):
        return "global"

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        if self.keepdims:
            b.op(self.onnx_op, inputs, output)
        else:
            b.op("Flatten", [b.op(self.onnx_op, inputs)], output, axis=1)


class GlobalAvgPool(_GlobalPool):
    __doc__ = _GlobalPool.__doc__
    type: ClassVar[str] = "globalavgpool"
    linear = True
    onnx_op: ClassVar[str] = "GlobalAveragePool"

    def forward(self, xs, params, ctx):
        x = xs[0]
        return x.mean(axis=tuple(range(2, x.ndim)), keepdims=self.keepdims), x.shape

    def backward(self, dy, shape, params):
        import numpy as np

        g = dy.reshape(*shape[:2], *(1,) * (len(shape) - 2)) / np.prod(shape[2:], dtype=dy.dtype)
        return [np.broadcast_to(g, shape).copy()], {}


class GlobalMaxPool(_GlobalPool):
    __doc__ = _GlobalPool.__doc__
    type: ClassVar[str] = "globalmaxpool"
    linear = False
    onnx_op: ClassVar[str] = "GlobalMaxPool"

    def forward(self, xs, params, ctx):
        x = xs[0]
        flat = x.reshape(*x.shape[:2], -1)
        y = flat.max(axis=2)
        cache = (x.shape, flat.argmax(axis=2)) if ctx.grad else None
        return (y.reshape(*x.shape[:2], *(1,) * (x.ndim - 2)) if self.keepdims else y), cache

    def backward(self, dy, cache, params):
        """The gradient goes to the (first) maximum of each channel."""
        import numpy as np

        shape, index = cache
        dx = np.zeros((*shape[:2], int(np.prod(shape[2:]))), dy.dtype)
        np.put_along_axis(dx, index[..., None], dy.reshape(*shape[:2], 1), axis=2)
        return [dx.reshape(shape)], {}
