"""Layers that merge several inputs: ``add``, ``multiply``, ``concat``.

In a spec a merge layer takes its inputs by name (``add: [main, shortcut]``) or as
branches, lists of layers that each start from the merge's own input
(``concat: [[conv: 64], [conv: 32, relu]]``); an empty branch ``[]`` is the identity.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

from pydantic import Field

from archcheck.layers.base import Layer, ShapeError, axis_label


class _Elementwise(Layer):
    """Element-wise merge of inputs of one shape; NumPy broadcasting of size-1 axes is allowed
    (a squeeze-and-excitation gate ``(C, 1, 1)`` times a map ``(C, H, W)``).
    FLOPs: (inputs - 1) per output value."""

    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = 64
    category = "merge"
    weighted = False
    normalises = False
    activation = False
    window = False
    upsamples = False
    global_pool = False
    passes = False
    pointwise = True

    def output_shape(self, inputs):
        out = inputs[0]
        for other in inputs[1:]:
            if len(other) != len(out):
                raise ShapeError("the inputs have different numbers of axes",
                                 "flatten, pool or reshape one input so both have the same axes")
            merged = []
            for axis, (a, b) in enumerate(zip(out, other)):
                if a != b and 1 not in (a, b):
                    raise ShapeError(f"the inputs differ along {axis_label(out, axis)} ({a} vs {b})",
                                     "make the branches agree: a 1x1 conv projects channels, a stride or pooling "
                                     "matches spatial sizes")
                merged.append(max(a, b))
            out = tuple(merged)
        return out

    def flops(self, inputs, out):
        return (len(inputs) - 1) * math.prod(out)


def _unbroadcast(g, shape):
    """Sum a gradient over the axes an input was broadcast along (its size-1 axes)."""
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class Add(_Elementwise):
    __doc__ = "Sum of the inputs (a residual connection). " + _Elementwise.__doc__
    type: ClassVar[str] = "add"
    linear = True
    gate = False

    overwrites = True

    def forward(self, xs, params, ctx):
        import numpy as np

        y = np.add(xs[0], xs[1], out=xs[0] if ctx.in_place else None)
        for x in xs[2:]:
            y = y + x if y.shape != np.broadcast_shapes(y.shape, x.shape) else np.add(y, x, out=y)
        return y, [x.shape for x in xs]

    def backward(self, dy, shapes, params):
        return [_unbroadcast(dy, shape) for shape in shapes], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Sum", inputs, output)


class Multiply(_Elementwise):
    __doc__ = "Product of the inputs (gating, attention). " + _Elementwise.__doc__
    type: ClassVar[str] = "multiply"
    linear = False
    gate = True

    overwrites = True

    def forward(self, xs, params, ctx):
        import numpy as np

        y = np.multiply(xs[0], xs[1], out=xs[0] if ctx.in_place else None)
        for x in xs[2:]:
            y = y * x if y.shape != np.broadcast_shapes(y.shape, x.shape) else np.multiply(y, x, out=y)
        return y, (xs if ctx.grad else None)

    def backward(self, dy, xs, params):
        grads = []
        for i, x in enumerate(xs):
            g = dy
            for j, other in enumerate(xs):
                if j != i:
                    g = g * other
            grads.append(_unbroadcast(g, x.shape))
        return grads, {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        product = inputs[0]
        for i, other in enumerate(inputs[1:], 2):
            product = b.op("Mul", [product, other], output if i == len(inputs) else None)


class Concat(Layer):
    """Concatenate the inputs along ``axis`` (0, the channels, by default); every other axis must
    agree. No FLOPs."""

    type: ClassVar[str] = "concat"
    category = "merge"
    weighted = False
    linear = True
    normalises = False
    activation = False
    window = False
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = True
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = 64

    axis: Annotated[int, Field(ge=0, le=3)] = 0

    def output_shape(self, inputs):
        first = inputs[0]
        if self.axis >= len(first):
            raise ShapeError(f"axis {self.axis} does not exist in an input with {len(first)} axes",
                             "use axis 0 (channels)")
        for other in inputs[1:]:
            if len(other) != len(first):
                raise ShapeError("the inputs have different numbers of axes",
                                 "flatten or reshape one input so both have the same axes")
            for axis, (a, b) in enumerate(zip(first, other)):
                if axis != self.axis and a != b:
                    raise ShapeError(f"the inputs differ along {axis_label(first, axis)} ({a} vs {b}); only the "
                                     "concat axis "
                                     f"({axis_label(first, self.axis)}) may differ",
                                     "pad or resample the branches so their other axes agree")
        return tuple(sum(s[self.axis] for s in inputs) if i == self.axis else d for i, d in enumerate(first))

    def forward(self, xs, params, ctx):
        import numpy as np

        return np.concatenate(xs, axis=self.axis + 1), [x.shape[self.axis + 1] for x in xs]

    def backward(self, dy, sizes, params):
        import numpy as np

        return np.split(dy, np.cumsum(sizes)[:-1], axis=self.axis + 1), {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Concat", inputs, output, axis=self.axis + 1)
