"""Convolutions: ``conv``, ``convtranspose`` and ``locallyconnected`` (1-D, 2-D, 3-D by input rank)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from archcheck.layers.base import (
    Dim,
    Geometry,
    NonNeg,
    Padding,
    PerAxis,
    Shape,
    ShapeError,
    Step,
    WindowLayer,
    per_axis,
    spatial_input,
    window_out,
    window_padding,
)


class _Windowed(WindowLayer):
    """Arguments and arithmetic shared by layers that slide a kernel over the input."""

    filters: Dim
    kernel: PerAxis = 3
    stride: PerAxis = 1
    padding: Padding = 0
    dilation: PerAxis = 1
    bias: bool = True

    shorthand: ClassVar[str] = "filters"
    category = "conv"
    weighted = True
    linear = True
    normalises = False
    activation = False
    window = True
    global_pool = False
    gate = False
    passes = False
    pointwise = False

    def _geometry(self, shape: Shape) -> Geometry:
        channels, sizes = spatial_input(self, shape)
        rank = len(sizes)
        k = per_axis(self.kernel, rank, "kernel")
        s = per_axis(self.stride, rank, "stride")
        d = per_axis(self.dilation, rank, "dilation")
        pads = window_padding(self.padding, rank, k, s, d, sizes)
        return Geometry(channels, sizes, k, s, d, pads, window_out(self, sizes, k, s, d, pads))

    def rf_steps(self, inputs, out):
        g = self.geometry(inputs[0])
        return [Step(Fraction(di * (ki - 1) + 1), Fraction(si), Fraction(p[0]))
                for ki, si, di, p in zip(g.kernel, g.stride, g.dilation, g.pads)]

    def flops(self, inputs, out):
        """2 x MACs, plus one add per output value for the bias."""
        return 2 * self.macs(inputs, out) + (math.prod(out) if self.bias else 0)


class Conv(_Windowed):
    """Convolution (cross-correlation, as every framework computes it).

    Output size per axis: ``floor((n + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``.
    ``padding``: an int, one per axis, ``[before, after]`` pairs, ``same`` (TensorFlow rule) or ``valid``.
    ``groups``: an int dividing both channel counts, or ``depthwise`` (one group per input channel).
    Weights ``(filters, channels/groups, *kernel)``; MACs ``output values x channels/groups x prod(kernel)``.
    """

    type: ClassVar[str] = "conv"
    upsamples = False
    folds_affine = True

    groups: Annotated[Dim | Literal["depthwise"],
                      Field(description="a whole number >= 1 dividing both channel counts, or 'depthwise'")] = 1

    def n_groups(self, channels: int) -> int:
        return channels if self.groups == "depthwise" else self.groups

    def output_shape(self, inputs):
        geometry = self.geometry(inputs[0])
        channels = geometry.channels
        g = self.n_groups(channels)
        if channels % g:
            raise ShapeError(f"groups={g} does not divide the {channels} input channels",
                             f"use a number of groups that divides {channels}, e.g. 1 or {channels}")
        if self.filters % g:
            raise ShapeError(f"groups={g} does not divide filters={self.filters}",
                             f"use a multiple of {g} filters, e.g. {g * max(1, round(self.filters / g))}")
        return (self.filters, *geometry.out_sizes)

    def weight_shapes(self, inputs):
        g = self.geometry(inputs[0])
        shapes = {"weight": (self.filters, g.channels // self.n_groups(g.channels), *g.kernel)}
        if self.bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def macs(self, inputs, out):
        g = self.geometry(inputs[0])
        return math.prod(out) * (g.channels // self.n_groups(g.channels)) * math.prod(g.kernel)

    # Winograd's F(4x4, 3x3) at inference (``kernels.winograd``): from this many input and output channels, and
    # 4x4 output tiles in a batch of several samples (whose parts run BLAS on one thread each) or in a single
    # sample (whose products BLAS may thread itself, which favours the direct product), it beat im2col + GEMM on
    # every shape measured (float32)
    WINOGRAD_CHANNELS: ClassVar[int] = 32
    WINOGRAD_TILES: ClassVar[int] = 16
    WINOGRAD_TILES_ONE_SAMPLE: ClassVar[int] = 32
    WINOGRAD_SCRATCH: ClassVar[int] = 8 * 2**20  # bytes of a chunk of tiles, of which one row of tiles must fit
    # Tiles a chunk keeps however small the room an inference pass gives the layer (``kernels.set_room``): fewer
    # pack the weights of each product anew for too few tiles to beat im2col + GEMM (batch 8, one thread: 384 to 256
    # channels on 13x13 maps, 16 tiles a chunk 0.76x im2col's time, 64 tiles 0.50x; 192 to 384, 1.01x and 0.66x;
    # 128 to 128 on 28x28 maps, 0.66x and 0.52x; 64 to 64 on 56x56, 0.49x and 0.56x)
    WINOGRAD_LEAST: ClassVar[int] = 16

    def winograd_chunk(self, channels: int, itemsize: int = 4, scratch: int = WINOGRAD_SCRATCH) -> int:
        """Tiles of 4x4 outputs a chunk of ``kernels.winograd`` holds within ``scratch`` bytes: two buffers of 36
        values per tile and channel."""
        return scratch // self._tile_bytes(channels, itemsize)

    def _tile_bytes(self, channels: int, itemsize: int) -> int:
        return 2 * 36 * max(channels, self.filters) * itemsize

    def inference_kernel(self, inputs, batch, dtype):
        """Winograd's F(4x4, 3x3) for a 2-D 3x3 convolution at stride 1, ungrouped and undilated, with at least
        32 input and output channels and 16 output tiles in a batch of several samples (32 in one sample), and one
        row of tiles within its scratch (``winograd_chunk``), in float32. It rounds differently from the direct
        product (about 1e-5 of the largest output rather than 1e-7), so float64, the precision for checking values
        against another runtime, runs every convolution as written."""
        g = self.geometry(inputs[0])
        tiles = batch * math.prod(-(-n // 4) for n in g.out_sizes)
        if (dtype == "float32" and g.kernel == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1)
                and self.n_groups(g.channels) == 1 and min(g.channels, self.filters) >= self.WINOGRAD_CHANNELS
                and tiles >= (self.WINOGRAD_TILES if batch > 1 else self.WINOGRAD_TILES_ONE_SAMPLE)
                and self.winograd_chunk(g.channels) >= -(-g.out_sizes[-1] // 4)):
            return "Winograd F(4x4, 3x3)"
        return None

    # Winograd's F(2x2, 3x3) in a pass for gradients (``kernels.F2X2``: the forward and both gradients), which rounds
    # as the direct product does. From 32 input and output channels and 10 outputs a side, the three took 0.65-0.96x
    # im2col's time (float32, batch 8 on one thread, or 4 on each of two, with their own weights' transforms as in a
    # training step; 64 channels on 14x14 maps at two threads 1.07x); on 7x7 and 8x8 maps 0.73-1.25x: a few large
    # filters' transforms and, on odd maps, tiles past the map. A chunk holds as many tiles as channels, at least 192:
    # the transforms' buffers stay in the cache while the products stay long enough for BLAS, and a chunk's calls are
    # few (at two threads each call's end may wait for Python's lock: 64 channels on 56x56 maps, 4 samples a thread,
    # 0.86-0.88x the time of chunks of 64 tiles, the same at one thread; 252 tiles, 1.2-1.35x the time of 168 at one)
    WINOGRAD_GRADIENT_SIDE: ClassVar[int] = 10
    WINOGRAD_GRADIENT_TILES: ClassVar[int] = 192

    def _winograd_for_gradients(self, g, dtype) -> bool:
        """Whether a pass for gradients runs this layer by Winograd's F(2x2, 3x3): a 2-D 3x3 convolution at stride 1,
        ungrouped and undilated, padded by at most 2 on each side (so that its input gradient's full correlation
        needs no cropping), with at least 32 input and output channels and 10 outputs a side, in float32; float64,
        the precision for checking values against another runtime, runs every convolution as written."""
        return (str(dtype) == "float32" and g.kernel == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1)
                and self.n_groups(g.channels) == 1 and min(g.channels, self.filters) >= self.WINOGRAD_CHANNELS
                and min(g.out_sizes) >= self.WINOGRAD_GRADIENT_SIDE
                and all(0 <= p <= 2 for pair in g.pads for p in pair))

    def gradient_kernel(self, inputs, dtype):
        return "Winograd F(2x2, 3x3)" if self._winograd_for_gradients(self.geometry(inputs[0]), dtype) else None

    def _gradient_algorithm(self, g, dtype) -> tuple:
        """``(kernels.F2X2, tiles a chunk holds)`` where a pass for gradients runs this layer by it, else
        ``(None, 0)``: for its forward and both its gradients alike."""
        from archcheck import kernels

        if not self._winograd_for_gradients(g, dtype):
            return None, 0
        return kernels.F2X2, max(self.WINOGRAD_GRADIENT_TILES, g.channels, self.filters)

    def prepare(self, params):
        from archcheck import kernels

        return {"winograd": kernels.winograd_weights(params["weight"])}

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x, g = xs[0], ctx.geometry
        if ctx.kernel:  # the inference plan's Winograd, on weights prepared for it; never recorded for backward
            least = self.WINOGRAD_LEAST * self._tile_bytes(g.channels, x.itemsize)
            chunk = self.winograd_chunk(g.channels, x.itemsize, kernels.scratch(self.WINOGRAD_SCRATCH, 2, least))
            return kernels.winograd(x, params["winograd"], g.pads, g.out_sizes, params.get("bias"), chunk), None
        algorithm, chunk = self._gradient_algorithm(g, x.dtype) if ctx.grad else (None, 0)
        if algorithm is not None:
            u = kernels.winograd_weights(params["weight"], algorithm)
            return kernels.winograd(x, u, g.pads, g.out_sizes, params.get("bias"), chunk, algorithm, kept=True), (x, g)
        y = kernels.conv(x, params["weight"], g.stride, g.dilation, g.pads, g.out_sizes, self.n_groups(g.channels),
                         params.get("bias"), bias_in_product=ctx.planned, product=params.get("product"),
                         columns=kernels.GRADIENT_COLUMNS if ctx.grad else 0)  # (a pass for gradients: as theirs)
        return y, ((x, g) if ctx.grad else None)

    def fold(self, params, scale, shift):
        """Weights that compute this layer followed by ``y * scale + shift`` per output channel."""
        w = params["weight"]
        bias = params["bias"] * scale if self.bias else 0
        return {"weight": w * scale.reshape(-1, *(1,) * (w.ndim - 1)), "bias": bias + shift}

    def laid_out(self, arrays):
        """With one group and a bias, and no faster kernel: the weights and the bias side by side in one matrix,
        ``product`` (filters, weights per filter + 1), of which ``weight`` and ``bias`` are views. The inference
        plan's products add the bias as the weights' last column (``kernels.conv``'s ``bias_in_product``), which
        would otherwise be copied together on every forward (EfficientNet-B0's at batch 4: 15 MB, 2.3 ms)."""
        from archcheck import kernels

        if self.groups != 1 or "bias" not in arrays or "winograd" in arrays:
            return arrays
        w = arrays["weight"]
        product = kernels.with_bias(w, arrays["bias"])
        return {**arrays, "product": product, "weight": product[:, :-1].reshape(w.shape), "bias": product[:, -1]}

    def backward(self, dy, cache, params):
        from archcheck import kernels

        g = cache[1]
        dx = kernels.conv_grad_input(dy, params["weight"], g.in_sizes, g.stride, g.dilation, g.pads,
                                     self.n_groups(g.channels), *self._gradient_algorithm(g, dy.dtype), kept=True)
        return [dx], self.weight_grads(dy, cache, params)

    def weight_grads(self, dy, cache, params):
        from archcheck import kernels

        x, g = cache
        grads = {"weight": kernels.conv_grad_weight(x, dy, g.kernel, g.stride, g.dilation, g.pads,
                                                    self.n_groups(g.channels), *self._gradient_algorithm(g, dy.dtype))}
        if self.bias:
            grads["bias"] = kernels.channel_sums(dy)
        return grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        g = b.geometry
        weights = [b.param("weight")] + ([b.param("bias")] if self.bias else [])
        b.op("Conv", [inputs[0], *weights], output, kernel_shape=list(g.kernel), strides=list(g.stride),
             dilations=list(g.dilation), pads=b.pads(g.pads), group=self.n_groups(g.channels))


class ConvTranspose(_Windowed):
    """Transposed convolution ("deconvolution"), the gradient of a convolution.

    Output size per axis: ``(n - 1)*stride - pad_before - pad_after + dilation*(kernel-1) + output_padding + 1``.
    Weights ``(channels, filters/groups, *kernel)``; MACs ``input values x filters/groups x prod(kernel)``.
    Its receptive-field step has the fractional stride ``1/stride``.
    """

    type: ClassVar[str] = "convtranspose"
    upsamples = True

    output_padding: Annotated[NonNeg | list[NonNeg],
                              Field(description="a whole number >= 0, or one per spatial axis")] = 0
    groups: Dim = 1

    def _geometry(self, shape):
        channels, sizes = spatial_input(self, shape)
        rank = len(sizes)
        if self.padding in ("same", "valid"):
            raise ShapeError(f"convtranspose takes explicit padding, received '{self.padding}'",
                             "give padding as an int or one per axis (kernel 4, stride 2, padding 1 doubles the size)")
        k = per_axis(self.kernel, rank, "kernel")
        s = per_axis(self.stride, rank, "stride")
        d = per_axis(self.dilation, rank, "dilation")
        op = per_axis(self.output_padding, rank, "output_padding")
        pads = window_padding(self.padding, rank, k, s, d, sizes)
        out = []
        for n, ki, si, di, (pb, pa), o in zip(sizes, k, s, d, pads, op):
            if o >= max(si, di):
                raise ShapeError(f"output_padding {o} must be smaller than the stride {si} or the dilation {di}",
                                 "reduce output_padding")
            size = (n - 1) * si - pb - pa + di * (ki - 1) + o + 1
            if size < 1:
                raise ShapeError(f"the output size would be {size}: padding {pb}+{pa} removes more than the "
                                 f"transposed convolution produces from input size {n}", "reduce the padding")
            out.append(size)
        return Geometry(channels, sizes, k, s, d, pads, tuple(out))

    def output_shape(self, inputs):
        g = self.geometry(inputs[0])
        for what, n in (("input channels", g.channels), ("filters", self.filters)):
            if n % self.groups:
                raise ShapeError(f"groups={self.groups} does not divide the {n} {what}",
                                 "use a number of groups that divides both channel counts")
        return (self.filters, *g.out_sizes)

    def weight_shapes(self, inputs):
        g = self.geometry(inputs[0])
        shapes = {"weight": (g.channels, self.filters // self.groups, *g.kernel)}
        if self.bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def macs(self, inputs, out):
        g = self.geometry(inputs[0])
        return g.channels * math.prod(g.in_sizes) * (self.filters // self.groups) * math.prod(g.kernel)

    def rf_steps(self, inputs, out):
        g = self.geometry(inputs[0])
        return [Step(Fraction(di * (ki - 1), si) + 1, Fraction(1, si), Fraction(di * (ki - 1) - p[0], si))
                for ki, si, di, p in zip(g.kernel, g.stride, g.dilation, g.pads)]

    def fans(self, inputs):
        """A transposed convolution's output sums ``channels/groups x prod(kernel) / prod(stride)``
        inputs (on average), not the PyTorch-layout count."""
        g = self.geometry(inputs[0])
        field = math.prod(g.kernel)
        return (max(1, g.channels // self.groups * field // math.prod(g.stride)), self.filters // self.groups * field)

    def forward(self, xs, params, ctx):
        """The input gradient of the convolution it transposes (a full convolution with the rotated filter)."""
        from archcheck import kernels

        x, g = xs[0], ctx.geometry
        y = kernels.conv_grad_input(x, params["weight"], g.out_sizes, g.stride, g.dilation, g.pads, self.groups,
                                    kept=ctx.grad)
        if self.bias:
            kernels.add_bias(y, params["bias"])
        return y, ((x, g) if ctx.grad else None)

    def backward(self, dy, cache, params):
        """Its input gradient is the convolution it transposes; its weight gradient that convolution's."""
        from archcheck import kernels

        x, g = cache
        grads = {"weight": kernels.conv_grad_weight(dy, x, g.kernel, g.stride, g.dilation, g.pads, self.groups)}
        if self.bias:
            grads["bias"] = kernels.channel_sums(dy)
        # output_padding adds end positions that no input reached; the convolution would read them as if
        # an input had and run past the input there, so it is asked for the input's sizes only
        return [kernels.conv(dy, params["weight"], g.stride, g.dilation, g.pads, g.in_sizes, self.groups)], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """ONNX Runtime refuses an output_padding as large as the stride, which PyTorch accepts below the
        dilation. output_padding only crops less of the end, so it is written as less end padding; what is
        left lies past every window and holds the bias alone: zeros padded on, then the bias added."""
        g = b.geometry
        extra = per_axis(self.output_padding, len(g.kernel), "output_padding")
        beyond = [max(o - pa, 0) for (_, pa), o in zip(g.pads, extra)]
        pads = [(pb, max(pa - o, 0)) for (pb, pa), o in zip(g.pads, extra)]
        attrs = dict(kernel_shape=list(g.kernel), strides=list(g.stride), dilations=list(g.dilation),
                     pads=b.pads(pads), group=self.groups)
        if not any(beyond):
            bias = [b.param("bias")] if self.bias else []
            b.op("ConvTranspose", [inputs[0], b.param("weight"), *bias], output, **attrs)
            return
        y = b.op("ConvTranspose", [inputs[0], b.param("weight")], **attrs)
        zeros = ((0, 0), (0, 0), *((0, e) for e in beyond))  # batch and channels unpadded
        y = b.op("Pad", [y, b.ints("pads", b.pads(zeros))], None if self.bias else output, mode="constant")
        if self.bias:
            per_channel = b.op("Reshape", [b.param("bias"), b.ints("shape", [self.filters, *(1,) * len(g.kernel)])])
            b.op("Add", [y, per_channel], output)


class LocallyConnected(_Windowed):
    """Locally connected layer: a convolution whose weights are not shared across positions.

    Every output position has its own filters, as the seeds describe for inputs with a
    fixed, centred structure (faces). Weights ``(filters, *output, channels, *kernel)``,
    bias ``(filters, *output)``; MACs as for a convolution, parameters multiplied by the
    number of output positions.
    """

    type: ClassVar[str] = "locallyconnected"
    upsamples = False

    def output_shape(self, inputs):
        return (self.filters, *self.geometry(inputs[0]).out_sizes)

    def weight_shapes(self, inputs):
        g = self.geometry(inputs[0])
        shapes = {"weight": (self.filters, *g.out_sizes, g.channels, *g.kernel)}
        if self.bias:
            shapes["bias"] = (self.filters, *g.out_sizes)
        return shapes

    def macs(self, inputs, out):
        g = self.geometry(inputs[0])
        return math.prod(out) * g.channels * math.prod(g.kernel)

    def fans(self, inputs):
        g = self.geometry(inputs[0])
        return g.channels * math.prod(g.kernel), self.filters * math.prod(g.kernel)

    def forward(self, xs, params, ctx):
        from archcheck import kernels

        x, g = xs[0], ctx.geometry
        y = kernels.local(x, params["weight"], g.stride, g.dilation, g.pads)
        if self.bias:
            y += params["bias"]
        return y, ((x, g) if ctx.grad else None)

    def backward(self, dy, cache, params):
        from archcheck import kernels

        x, g = cache
        dx, dw = kernels.local_grads(x, dy, params["weight"], g.stride, g.dilation, g.pads)
        grads = {"weight": dw}
        if self.bias:
            grads["bias"] = dy.sum(axis=0)
        return [dx], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """Unfold the input into patches with a grouped convolution of one-hot kernels (output channel
        ``c * prod(kernel) + j`` copies input channel c at kernel offset j, the weight's own order),
        then one matrix product per output position."""
        import numpy as np

        g = b.geometry
        channels, k = g.channels, g.kernel
        taps, positions = math.prod(k), math.prod(g.out_sizes)
        one_hot = np.tile(np.eye(taps).reshape(taps, 1, *k), (channels, 1, *(1,) * len(k)))
        patches = b.op("Conv", [inputs[0], b.const("unfold", one_hot)], kernel_shape=list(k), strides=list(g.stride),
                       dilations=list(g.dilation), pads=b.pads(g.pads), group=channels)
        patches = b.op("Reshape", [patches, b.ints("patches_shape", [0, channels * taps, positions])])
        patches = b.op("Transpose", [patches], perm=[2, 0, 1])  # (positions, N, C*taps)
        weight = b.op("Reshape", [b.param("weight"), b.ints("weight_shape", [self.filters, positions, -1])])
        weight = b.op("Transpose", [weight], perm=[1, 2, 0])  # (positions, C*taps, filters)
        y = b.op("Transpose", [b.op("MatMul", [patches, weight])], perm=[1, 2, 0])  # (N, filters, positions)
        shape = b.ints("out_shape", [0, *out_shape])
        if self.bias:
            b.op("Add", [b.op("Reshape", [y, shape]), b.param("bias")], output)
        else:
            b.op("Reshape", [y, shape], output)
