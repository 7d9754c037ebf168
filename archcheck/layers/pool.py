"""Pooling: ``maxpool``, ``avgpool``, ``adaptiveavgpool``, ``adaptivemaxpool``, ``globalavgpool``,
``globalmaxpool`` (1-D, 2-D, 3-D)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, ClassVar

from pydantic import Field

from archcheck.layers.base import (
    Dim,
    Geometry,
    Layer,
    Padding,
    PerAxis,
    ShapeError,
    Step,
    WindowLayer,
    axis_names,
    per_axis,
    sliding,
    spatial_input,
    window_out,
    window_padding,
)


class _Pooling(WindowLayer):
    """Pooling over windows of a feature map, with or without a kernel argument: the kinds they share."""

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


class _Pool(_Pooling):
    """Window pooling. ``stride`` defaults to ``kernel``; ``ceil_mode`` keeps a last partial window
    (PyTorch rule: it must start inside the input or the left padding)."""

    shorthand: ClassVar[str] = "kernel"

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


Size = Annotated[Dim | list[Dim | None],
                 Field(description="a whole number >= 1, or a list with one per spatial axis (a number, or ~ to "
                                   "keep that axis)")]


def adaptive_cells(n: int, m: int) -> tuple[tuple[int, int], ...]:
    """PyTorch's cells along an axis of ``n`` pooled to ``m``: output i reads input [floor(i n/m), ceil((i+1) n/m))."""
    return tuple((i * n // m, -(-(i + 1) * n // m)) for i in range(m))


class _AdaptivePool(_Pooling):
    """Adaptive pooling (PyTorch's ``AdaptiveAvgPool`` / ``AdaptiveMaxPool``): ``(C, *in)`` to ``(C, *size)``,
    ``~`` in ``size`` keeping an axis. Along an axis of n pooled to m, output i pools the cell
    [floor(i n/m), ceil((i+1) n/m)) (``adaptive_cells``); cells overlap where m does not divide n. An output
    larger than the input is refused (PyTorch would repeat input positions).

    Geometry: where the cells are one window sliding by one stride (always when m divides n: kernel =
    stride = n/m), it is that window, exact; elsewhere ``kernel`` is the widest cell and ``stride`` n // m,
    the smallest step, with the cells themselves in ``cells`` (the executor and the export read those).
    Receptive field: exact along sliding axes; along the others the widest cell as kernel and n/m as stride,
    which bounds the field's size (its position is the cells' average spacing, off by under a pixel).
    Pooling to 1 on every axis makes the field the whole input, as global pooling does."""

    shorthand: ClassVar[str] = "size"
    onnx_pool: ClassVar[str]  # the ONNX operators: of a sliding window, of a pool to 1, of one cell
    onnx_global: ClassVar[str]
    onnx_reduce: ClassVar[str]

    size: Size

    def _geometry(self, shape):
        channels, sizes = spatial_input(self, shape)
        rank, names = len(sizes), axis_names(len(sizes))
        out = tuple(n if m is None else m for n, m in zip(sizes, per_axis(self.size, rank, "size")))
        larger = [(a, n, m) for a, n, m in zip(names, sizes, out) if m > n]
        if larger:
            asked = ", ".join(f"{m} along {a} from {n}" for a, n, m in larger)
            most = "x".join(map(str, sizes))
            raise ShapeError(f"size {self._shown()} asks for a larger output than its input ({asked}): an adaptive "
                             f"pool would repeat input positions there instead of pooling them (expected at most "
                             f"{most})", f"use a size of at most {most} (`~` keeps an axis as it is), or give this "
                             "layer a larger map: downsample less before it, or use a larger input")
        cells = tuple(adaptive_cells(n, m) for n, m in zip(sizes, out))
        kernel = tuple(max(b - a for a, b in c) for c in cells)
        stride = tuple(n // m for n, m in zip(sizes, out))
        return Geometry(channels, sizes, kernel, stride, (1,) * rank, ((0, 0),) * rank, out, cells)

    def _shown(self) -> str:
        return str(self.size) if isinstance(self.size, int) else "[" + ", ".join(
            "~" if m is None else str(m) for m in self.size) + "]"

    def output_shape(self, inputs):
        g = self.geometry(inputs[0])
        return (g.channels, *g.out_sizes)

    def read(self, g: Geometry) -> int:
        """Values read over all output positions of one channel: the sum of the cell volumes."""
        return math.prod(sum(b - a for a, b in c) for c in g.cells)

    def rf_steps(self, inputs, out):
        g = self.geometry(inputs[0])
        if all(m == 1 for m in g.out_sizes):
            return "global"
        return [Step(Fraction(k), Fraction(s) if sliding(c, k, s) else Fraction(n, m), Fraction(0))
                for c, k, s, n, m in zip(g.cells, g.kernel, g.stride, g.in_sizes, g.out_sizes)]

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """Opset 17 has no adaptive pooling: a pool to 1 is the global pooling, sliding cells the window pooling
        (no padding), other cells one ``Slice`` and reduction per cell, concatenated, an axis at a time (average
        and max are separable over a box of cells)."""
        g = b.geometry
        if all(m == 1 for m in g.out_sizes):
            b.op(self.onnx_global, inputs, output)
            return
        if g.slides:
            b.op(self.onnx_pool, inputs, output, kernel_shape=list(g.kernel), strides=list(g.stride))
            return
        x = inputs[0]
        axes = [axis for axis, (c, n) in enumerate(zip(g.cells, g.in_sizes), start=2) if len(c) < n]
        for axis in axes:
            along = b.ints("axis", [axis])
            parts = [b.op(self.onnx_reduce, [b.op("Slice", [x, b.ints("start", [lo]), b.ints("end", [hi]), along])],
                          axes=[axis], keepdims=1) for lo, hi in g.cells[axis - 2]]
            x = b.op("Concat", parts, output if axis == axes[-1] else None, axis=axis)


class AdaptiveAvgPool(_AdaptivePool):
    """Adaptive average pooling (``_AdaptivePool``). FLOPs: each cell's volume per output value (its adds
    and one divide), as ``avgpool`` counts."""

    type: ClassVar[str] = "adaptiveavgpool"
    linear = True
    onnx_pool: ClassVar[str] = "AveragePool"
    onnx_global: ClassVar[str] = "GlobalAveragePool"
    onnx_reduce: ClassVar[str] = "ReduceMean"

    def flops(self, inputs, out):
        g = self.geometry(inputs[0])
        return g.channels * self.read(g)

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        g = ctx.geometry
        return kernels.adaptive_avg_pool(xs[0], g.cells), g

    def backward(self, dy, g, params):
        from archcheck import kernels

        return [kernels.adaptive_avg_pool_grad(dy, g.cells, g.in_sizes)], {}


class AdaptiveMaxPool(_AdaptivePool):
    """Adaptive max pooling (``_AdaptivePool``). FLOPs: each cell's volume less one per output value (its
    comparisons), as ``maxpool`` counts."""

    type: ClassVar[str] = "adaptivemaxpool"
    linear = False
    onnx_pool: ClassVar[str] = "MaxPool"
    onnx_global: ClassVar[str] = "GlobalMaxPool"
    onnx_reduce: ClassVar[str] = "ReduceMax"

    def flops(self, inputs, out):
        g = self.geometry(inputs[0])
        return g.channels * (self.read(g) - math.prod(g.out_sizes))

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        return kernels.adaptive_max_pool(xs[0], ctx.geometry.cells, keep_index=ctx.grad)

    def backward(self, dy, index, params):
        """The gradient goes to the first maximum of each cell in row-major order, as PyTorch's."""
        from archcheck import kernels

        return [kernels.adaptive_max_pool_grad(dy, index)], {}


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
        from archcheck import kernels

        x = xs[0]
        y = kernels.map_sums(x) / math.prod(x.shape[2:])
        return (y.reshape(*x.shape[:2], *(1,) * (x.ndim - 2)) if self.keepdims else y), x.shape

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
