"""Layers that move, copy or select values: ``flatten``, ``reshape``, ``zeropad``, ``upsample``,
``identity``, ``dropout``, ``slice``, the shuffles. None has weights or MACs; FLOPs are zero unless noted."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from archcheck.layers.base import (
    MAX_DIM,
    Dim,
    Layer,
    NonNeg,
    Pair,
    PerAxis,
    ShapeError,
    Step,
    axis_label,
    axis_names,
    fmt_shape,
    per_axis,
    spatial_input,
    window_padding,
)


class _Rearranging(Layer):
    """Layers that move, pad, copy or drop values but compute nothing new from them: linear, no
    weights, no activation. Each declares whether it upsamples, passes values on unchanged, and keeps
    positions apart."""

    category = "reshape"
    weighted = False
    linear = True
    normalises = False
    activation = False
    window = False
    global_pool = False
    gate = False


class Flatten(_Rearranging):
    """Flatten ``(C, ...)`` to ``(C * ...,)`` in C order (as PyTorch's ``flatten(1)``).
    The receptive field becomes the whole input."""

    type: ClassVar[str] = "flatten"
    upsamples = False
    passes = True
    pointwise = False

    def output_shape(self, inputs):
        return (math.prod(inputs[0]),)

    def rf_steps(self, inputs, out):
        return "global" if len(inputs[0]) > 1 else None

    def forward(self, xs, params, ctx):
        return xs[0].reshape(xs[0].shape[0], -1), xs[0].shape

    def backward(self, dy, shape, params):
        return [dy.reshape(shape)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Flatten", inputs, output, axis=1)


class Reshape(_Rearranging):
    """Reshape to ``shape`` (batch axis excluded); one entry may be -1."""

    type: ClassVar[str] = "reshape"
    upsamples = False
    passes = True
    pointwise = False
    shorthand: ClassVar[str] = "shape"

    shape: Annotated[list[Dim | Literal[-1]],
                     Field(min_length=1, max_length=4, description="a list of 1 to 4 sizes, one of which may be -1")]

    def output_shape(self, inputs):
        total = math.prod(inputs[0])
        known = math.prod(d for d in self.shape if d != -1)
        if self.shape.count(-1) > 1:
            raise ShapeError(f"shape {self.shape} has more than one -1", "give all sizes but one")
        if -1 in self.shape:
            if total % known:
                raise ShapeError(f"cannot reshape {fmt_shape(inputs[0])} ({total:,} values) to {self.shape}: "
                                 f"{total:,} is not divisible by {known:,}", "change the target shape")
            return tuple(total // known if d == -1 else d for d in self.shape)
        if known != total:
            raise ShapeError(f"cannot reshape {fmt_shape(inputs[0])} ({total:,} values) to {fmt_shape(self.shape)} "
                             f"({known:,} values)", "make the sizes multiply to the same total, or use -1 once")
        return tuple(self.shape)

    def rf_steps(self, inputs, out):
        return None if inputs[0][1:] == out[1:] else "global"

    def forward(self, xs, params, ctx):
        x = xs[0]
        return x.reshape(x.shape[0], *self.output_shape([x.shape[1:]])), x.shape

    def backward(self, dy, shape, params):
        return [dy.reshape(shape)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Reshape", [inputs[0], b.ints("shape", [0, *out_shape])], output)  # 0 keeps the batch size


class ZeroPad(_Rearranging):
    """Pad every spatial axis with zeros: an int, one per axis, or ``[before, after]`` pairs."""

    type: ClassVar[str] = "zeropad"
    upsamples = False
    passes = True
    pointwise = False
    shorthand: ClassVar[str] = "padding"

    padding: Annotated[NonNeg | list[NonNeg | Pair],
                       Field(description="a whole number >= 0, or one per spatial axis (each a number or "
                                         "[before, after])")] = 1

    def zero_padding(self, shape):
        _, sizes = spatial_input(self, shape)
        return window_padding(self.padding, len(sizes), (), (), (), sizes)

    def output_shape(self, inputs):
        shape = inputs[0]
        return (shape[0], *(n + pb + pa for n, (pb, pa) in zip(shape[1:], self.zero_padding(shape))))

    def rf_steps(self, inputs, out):
        return [Step(Fraction(1), Fraction(1), Fraction(pb)) for pb, _ in self.zero_padding(inputs[0])]

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x = xs[0]
        pads = self.zero_padding(x.shape[1:])
        return kernels.pad(x, pads), pads

    def backward(self, dy, pads, params):
        from archcheck import kernels

        return [kernels.crop(dy, pads)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        pads = b.pads(((0, 0), (0, 0), *self.zero_padding(in_shapes[0])))  # batch and channels unpadded
        b.op("Pad", [inputs[0], b.ints("pads", pads)], output, mode="constant")


class Upsample(_Rearranging):
    """Upsample spatial axes by an integer ``scale`` (``nearest`` or ``linear``: bi/tri-linear,
    half-pixel centres as PyTorch's ``align_corners=False``). FLOPs: 0 for nearest, 2^rank per
    output value for linear. Receptive-field step: stride ``1/scale``."""

    type: ClassVar[str] = "upsample"
    upsamples = True
    passes = False
    pointwise = False
    shorthand: ClassVar[str] = "scale"

    scale: PerAxis = 2
    mode: Literal["nearest", "linear"] = "nearest"

    def output_shape(self, inputs):
        channels, sizes = spatial_input(self, inputs[0])
        scale = per_axis(self.scale, len(sizes), "scale")
        return (channels, *(n * f for n, f in zip(sizes, scale)))

    def flops(self, inputs, out):
        return 0 if self.mode == "nearest" else 2 ** (len(out) - 1) * math.prod(out)

    def rf_steps(self, inputs, out):
        scale = per_axis(self.scale, len(inputs[0]) - 1, "scale")
        if self.mode == "nearest":
            return [Step(Fraction(1), Fraction(1, f), Fraction(0)) for f in scale]
        # output j reads the two inputs around (j + 0.5)/f - 0.5
        return [Step(Fraction(2), Fraction(1, f), Fraction(1, 2) - Fraction(1, 2 * f)) for f in scale]

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x = xs[0]
        return kernels.upsample(x, per_axis(self.scale, x.ndim - 2, "scale"), self.mode), None

    def backward(self, dy, cache, params):
        from archcheck import kernels

        return [kernels.upsample_grad(dy, per_axis(self.scale, dy.ndim - 2, "scale"), self.mode)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """Resize by integer scales: nearest copies input floor(i / scale) (``asymmetric``/``floor``);
        linear uses half-pixel centres, as PyTorch with ``align_corners=False``."""
        scales = b.const("scales", [1.0, 1.0, *per_axis(self.scale, len(in_shapes[0]) - 1, "scale")])
        if self.mode == "nearest":
            b.op("Resize", [inputs[0], "", scales], output, mode="nearest",
                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            b.op("Resize", [inputs[0], "", scales], output, mode="linear", coordinate_transformation_mode="half_pixel")


class Identity(_Rearranging):
    """Pass the input through unchanged (a named tap, or an explicit identity shortcut)."""

    type: ClassVar[str] = "identity"
    upsamples = False
    passes = True
    pointwise = True

    def forward(self, xs, params, ctx):
        return xs[0], None

    def backward(self, dy, cache, params):
        return [dy], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Identity", inputs, output)


class Dropout(_Rearranging):
    """Zero each value with probability ``rate`` during training (inverted dropout, scaled by
    1/(1-rate)); the identity at inference."""

    type: ClassVar[str] = "dropout"
    category = "regularizer"
    upsamples = False
    passes = True
    pointwise = True
    shorthand: ClassVar[str] = "rate"
    per_sample: ClassVar[bool] = False  # draws one keep-or-drop per sample (a whole branch), not one per value

    rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5

    def forward(self, xs, params, ctx):
        x = xs[0]
        if not ctx.train or self.rate == 0:
            return x, None
        from archcheck import kernels

        whole = (kernels.batch_samples(len(x)), *self.draws(x)[1:])  # drawn for the whole batch (a part takes its rows)
        mask = kernels.batch_shared(lambda: (ctx.rng.random(whole, dtype=x.dtype) >= self.rate)
                                    / x.dtype.type(1 - self.rate))[kernels.batch_rows(len(x))]
        return x * mask, mask

    def draws(self, x) -> tuple[int, ...]:
        """The shape of the random draws, broadcast over ``x``: one per value, or one per sample."""
        return (x.shape[0],) + (1,) * (x.ndim - 1) if self.per_sample else x.shape

    def backward(self, dy, mask, params):
        return [dy if mask is None else dy * mask], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Identity", inputs, output)  # inference: dropout does nothing


class DropPath(Dropout):
    """Stochastic depth: during training drop each sample's whole branch with probability ``rate``
    and scale the kept ones by 1/(1-rate) (torchvision's StochasticDepth, mode "row"); the identity
    at inference. Dropout with one draw per sample."""

    type: ClassVar[str] = "droppath"
    per_sample = True

    rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1


class ChannelShuffle(_Rearranging):
    """ShuffleNet's channel shuffle (PyTorch's ``ChannelShuffle``): view the C channels as
    ``(groups, C / groups)``, transpose, flatten, so channel ``g * C/groups + i`` moves to ``i * groups + g``
    and the next grouped convolution's groups each read from every group of the last. Any rank."""

    type: ClassVar[str] = "channelshuffle"
    upsamples = False
    passes = True
    pointwise = True  # a permutation of the channels at each position
    shorthand: ClassVar[str] = "groups"

    groups: Dim

    def output_shape(self, inputs):
        channels = inputs[0][0]
        if channels % self.groups:
            raise ShapeError(f"groups={self.groups} does not divide the {channels} input channels",
                             f"use groups that divide {channels}, or give the layer before it a multiple of "
                             f"{self.groups} channels")
        return inputs[0]

    def forward(self, xs, params, ctx):
        x = xs[0]
        return x.reshape(x.shape[0], self.groups, -1, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape), None

    def backward(self, dy, cache, params):
        return [dy.reshape(dy.shape[0], -1, self.groups, *dy.shape[2:]).swapaxes(1, 2).reshape(dy.shape)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        channels, *rest = in_shapes[0]
        split = b.op("Reshape", [inputs[0], b.ints("groups", [0, self.groups, channels // self.groups, *rest])])
        swapped = b.op("Transpose", [split], perm=[0, 2, 1, *range(3, len(rest) + 3)])
        b.op("Reshape", [swapped, b.ints("shape", [0, *in_shapes[0]])], output)


class Slice(_Rearranging):
    """Keep the contiguous range ``start:stop`` of one axis (``axis`` 0 = the channels, counted over the
    non-batch axes as ``concat``'s): ShuffleNetV2's channel split, ``x.chunk(2, dim=1)``, is two slices.
    Negative ``start``/``stop`` count from the end, as in Python; a range that is empty or reaches past
    the axis is refused rather than clamped, since it is never what a design means.

    Receptive field: a channel slice keeps it. A crop of a spatial axis keeps the kernel and stride and
    moves the offset: output ``i`` is input ``i + start``, so ``P`` falls by ``start`` (a step with
    padding ``-start``, the opposite of ``zeropad``)."""

    type: ClassVar[str] = "slice"
    upsamples = False
    passes = True  # the values of the range, unchanged

    start: Annotated[int, Field(ge=-MAX_DIM, le=MAX_DIM)] = 0
    stop: Annotated[int | None, Field(ge=-MAX_DIM, le=MAX_DIM, description="a whole number, or null for the "
                                                                           "end of the axis")] = None
    axis: Annotated[int, Field(ge=0, le=3)] = 0

    @property
    def pointwise(self) -> bool:
        return self.axis == 0  # a spatial crop moves every position by start

    def bounds(self, shape) -> tuple[int, int]:
        """``(start, stop)`` along ``axis`` of ``shape``, counted from 0; a ShapeError when the range is not
        a non-empty part of the axis."""
        if self.axis >= len(shape):
            raise ShapeError(f"axis {self.axis} does not exist in an input with {len(shape)} "
                             f"ax{'is' if len(shape) == 1 else 'es'}",
                             f"use an axis from 0 (channels) to {len(shape) - 1}")
        n, label = shape[self.axis], axis_label(shape, self.axis)
        name = label if self.axis == 0 else f"positions along {label}"
        given = {"start": self.start, "stop": n if self.stop is None else self.stop}
        for arg, value in given.items():
            if not -n <= value <= n:
                raise ShapeError(f"{arg}={value} is outside the {n} {name}: expected from -{n} to {n}",
                                 f"give a {arg} from -{n} to {n}" + (", or leave it out for the end"
                                                                     if arg == "stop" else ""))
        start, stop = (v + n if v < 0 else v for v in given.values())
        if stop <= start:
            raise ShapeError(f"start={self.start}, stop={given['stop']} keep nothing of the {n} {name} "
                             f"(from {start} to {stop}): expected a start below the stop",
                             f"give a start below the stop (start: 0, stop: {n // 2} keeps the first half)"
                             if n > 1 else "remove the slice: the axis has one entry")
        return start, stop

    def output_shape(self, inputs):
        start, stop = self.bounds(inputs[0])
        return tuple(stop - start if i == self.axis else d for i, d in enumerate(inputs[0]))

    def rf_steps(self, inputs, out):
        shape = inputs[0]
        if self.axis == 0 or len(shape) < 2:
            return None
        start, _ = self.bounds(shape)
        return [Step(Fraction(1), Fraction(1), Fraction(-start if a == self.axis else 0))
                for a in range(1, len(shape))]

    def _index(self, shape) -> tuple:
        return (slice(None),) * (self.axis + 1) + (slice(*self.bounds(shape[1:])),)

    def forward(self, xs, params, ctx):
        x = xs[0]
        return x[self._index(x.shape)], x.shape

    def backward(self, dy, shape, params):
        import numpy as np

        dx = np.zeros(shape, dy.dtype)
        dx[self._index(shape)] = dy
        return [dx], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        start, stop = self.bounds(in_shapes[0])
        b.op("Slice", [inputs[0], b.ints("starts", [start]), b.ints("ends", [stop]), b.ints("axes", [self.axis + 1])],
             output)


def _blocks(rank: int) -> list[int]:
    """The axes of ``(N, C, r_1..r_d, S_1..S_d)`` in the order ``(N, C, S_1, r_1, ..., S_d, r_d)``."""
    return [0, 1, *(a for k in range(rank) for a in (2 + rank + k, 2 + k))]


def _unblocks(rank: int) -> list[int]:
    """The inverse of ``_blocks``: from ``(N, C, S_1, r_1, ..., S_d, r_d)`` back to ``(N, C, r_1..r_d, S_1..S_d)``."""
    blocks = _blocks(rank)
    return [blocks.index(a) for a in range(len(blocks))]


def _to_space(x, r: int):
    """``(N, C r^d, *S)`` -> ``(N, C, *S r)``: channel ``c r^d + (i_1 ... i_d in base r)`` goes to offset
    ``(i_1, ..., i_d)`` of block ``c``, as PyTorch's ``pixel_shuffle``."""
    n, c, *sizes = x.shape
    d = len(sizes)
    split = x.reshape(n, c // r**d, *(r,) * d, *sizes)
    return split.transpose(_blocks(d)).reshape(n, c // r**d, *(s * r for s in sizes))


def _to_depth(x, r: int):
    """The inverse of ``_to_space``: ``(N, C, *S)`` -> ``(N, C r^d, *S / r)`` (PyTorch's ``pixel_unshuffle``)."""
    n, c, *sizes = x.shape
    d = len(sizes)
    split = x.reshape(n, c, *(a for s in sizes for a in (s // r, r)))
    return split.transpose(_unblocks(d)).reshape(n, c * r**d, *(s // r for s in sizes))


class PixelShuffle(_Rearranging):
    """Sub-pixel upsampling (ESPCN; PyTorch's ``PixelShuffle``): ``(C r^2, H, W)`` -> ``(C, H r, W r)``, each
    group of r^2 channels spread over one r x r block. 1-D and 3-D do the same with r and r^3 channels per
    block (``(C r, L)`` -> ``(C, L r)``); PyTorch has those only as 2-D. Receptive-field step: stride 1/r,
    as nearest upsampling."""

    type: ClassVar[str] = "pixelshuffle"
    upsamples = True
    passes = True  # the values are only moved
    pointwise = False
    shorthand: ClassVar[str] = "factor"

    factor: Dim

    def output_shape(self, inputs):
        channels, sizes = spatial_input(self, inputs[0])
        r, d = self.factor, len(sizes)
        if channels % r**d:
            block = "x".join([str(r)] * d)
            near = sorted({max(channels // r**d, 1) * r**d, (channels // r**d + 1) * r**d})
            raise ShapeError(f"the {channels} input channels are not divisible by factor^{d} = {r**d} (factor {r} "
                             f"over {d} spatial ax{'is' if d == 1 else 'es'}), so they do not fill {block} blocks",
                             f"give the layer before it a multiple of {r**d} channels "
                             f"({' or '.join(map(str, near))}: {r**d} per output channel), or change the factor")
        return (channels // r**d, *(n * r for n in sizes))

    def rf_steps(self, inputs, out):
        return [Step(Fraction(1), Fraction(1, self.factor), Fraction(0))] * (len(inputs[0]) - 1)

    def forward(self, xs, params, ctx):
        return _to_space(xs[0], self.factor), None

    def backward(self, dy, cache, params):
        return [_to_depth(dy, self.factor)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """2-D: ``DepthToSpace`` in ``CRD`` mode (PyTorch's order; the default ``DCR`` is TensorFlow's);
        1-D and 3-D: ``Reshape`` -> ``Transpose`` -> ``Reshape``, which DepthToSpace is in 2-D."""
        channels, *sizes = in_shapes[0]
        r, d = self.factor, len(sizes)
        if d == 2:
            b.op("DepthToSpace", inputs, output, blocksize=r, mode="CRD")
            return
        split = b.op("Reshape", [inputs[0], b.ints("blocks", [0, channels // r**d, *(r,) * d, *sizes])])
        b.op("Reshape", [b.op("Transpose", [split], perm=_blocks(d)), b.ints("shape", [0, *out_shape])], output)


class PixelUnshuffle(_Rearranging):
    """The inverse of ``pixelshuffle`` (PyTorch's ``PixelUnshuffle``): ``(C, H, W)`` -> ``(C r^2, H/r, W/r)``,
    each r x r block stacked into r^2 channels; 1-D and 3-D likewise. Receptive-field step: kernel r,
    stride r."""

    type: ClassVar[str] = "pixelunshuffle"
    upsamples = False
    passes = True
    pointwise = False
    shorthand: ClassVar[str] = "factor"

    factor: Dim

    def output_shape(self, inputs):
        channels, sizes = spatial_input(self, inputs[0])
        r = self.factor
        for axis, n in zip(axis_names(len(sizes)), sizes):
            if n % r:
                near = sorted({max(n // r, 1) * r, (n // r + 1) * r})
                raise ShapeError(f"{axis} = {n} is not divisible by the factor {r}, so the input does not split into "
                                 f"{r}-wide blocks along {axis}",
                                 f"pad or crop {axis} to a multiple of {r} ({' or '.join(map(str, near))}) before "
                                 f"this layer, or use a factor that divides {n}")
        return (channels * r ** len(sizes), *(n // r for n in sizes))

    def rf_steps(self, inputs, out):
        r = Fraction(self.factor)
        return [Step(r, r, Fraction(0))] * (len(inputs[0]) - 1)

    def forward(self, xs, params, ctx):
        return _to_depth(xs[0], self.factor), None

    def backward(self, dy, cache, params):
        return [_to_space(dy, self.factor)], {}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """``Reshape`` -> ``Transpose`` -> ``Reshape``: ONNX's ``SpaceToDepth`` orders the channels as TensorFlow
        does (block offset first), PyTorch's unshuffle puts the input channel first."""
        channels, *sizes = in_shapes[0]
        r = self.factor
        split = b.op("Reshape", [inputs[0], b.ints("blocks", [0, channels, *(a for s in sizes for a in (s // r, r))])])
        b.op("Reshape", [b.op("Transpose", [split], perm=_unblocks(len(sizes))), b.ints("shape", [0, *out_shape])],
             output)
