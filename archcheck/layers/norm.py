"""Normalisation: ``batchnorm``, ``layernorm``, ``groupnorm`` and ``instancenorm``."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from archcheck.layers.base import Layer, ShapeError

Eps = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Normalisation(Layer):
    """Rescales its input by statistics of it, position by position; each type says whether it is linear
    at inference, subtracts each channel's mean, and keeps running statistics."""

    category = "norm"
    weighted = False
    normalises = True
    activation = False
    window = False
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = True


class BatchNorm(_Normalisation):
    """Batch normalisation over the channel axis (axis 0 of ``(C, ...)``; a vector's features).

    Trainable ``weight`` (C, with ``scale``) and ``bias`` (C, with ``center``); non-trainable buffers
    ``running_mean`` and ``running_var`` (C each), counted apart from parameters.
    ``scale`` and ``center`` (TF-Slim's names) each default to ``affine``; ``affine: false``
    with ``scale: true`` or ``center: true`` is refused as a contradiction.
    FLOPs: 2 per output value (inference: a folded scale and shift).
    """

    type: ClassVar[str] = "batchnorm"
    linear = True  # at inference: a per-channel scale and shift
    centres_channels = True
    running_statistics = True
    overwrites = True
    flops_per_output: ClassVar[int] = 2

    eps: Eps = 1e-5
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    affine: bool = True
    scale: bool | None = None
    center: bool | None = None

    @property
    def _scaled(self) -> bool:
        return self.affine if self.scale is None else self.scale

    @property
    def _centred(self) -> bool:
        return self.affine if self.center is None else self.center

    def output_shape(self, inputs):
        wanted = [k for k in ("scale", "center") if getattr(self, k)]
        if not self.affine and wanted:
            raise ShapeError(f"affine: false contradicts {' and '.join(f'{k}: true' for k in wanted)}",
                             "drop `affine: false` and set `scale` and `center` alone (each defaults to true)")
        return inputs[0]

    def weight_shapes(self, inputs):
        c = inputs[0][0]
        return {**({"weight": (c,)} if self._scaled else {}), **({"bias": (c,)} if self._centred else {})}

    def buffer_shapes(self, inputs):
        c = inputs[0][0]
        return {"running_mean": (c,), "running_var": (c,)}

    def init(self, inputs, rng, relu, dtype):
        """Weight 1, bias 0, running mean 0, running variance 1 (the identity at inference)."""
        import numpy as np

        c = inputs[0][0]
        out = {"running_mean": np.zeros(c, dtype), "running_var": np.ones(c, dtype)}
        if self._scaled:
            out["weight"] = np.ones(c, dtype)
        if self._centred:
            out["bias"] = np.zeros(c, dtype)
        return out

    def forward(self, xs, params, ctx):
        """Training: normalise with the batch statistics and update the running ones in place
        (``momentum``, unbiased variance, as PyTorch does); inference: the running statistics.

        In training the input is centred once: the variance is the per-channel dot product of the centred values
        with themselves, and the output is made from them (kept, for ``backward``, in place of the input). A part of
        a batch walked on a thread of its own takes the whole batch's statistics (``kernels.batch_total``); the
        first part updates the running ones."""
        import numpy as np

        from archcheck import kernels

        x = xs[0]
        shape = (1, -1, *(1,) * (x.ndim - 2))
        if not ctx.train:
            inv, scale, shift = self._affine(params["running_mean"], params["running_var"], params)
            y = np.multiply(x, scale.reshape(shape), out=x if ctx.in_place else None)
            y += shift.reshape(shape)
            return y, ((x, inv, False) if ctx.grad else None)
        n, m = kernels.channel_count(x), self.momentum
        mean = kernels.batch_total(kernels.channel_sums(x)) / n
        centred = np.empty_like(x)

        def centre(rows):  # (the samples worked side by side on the threads of a training pass; one pass over each)
            c = np.subtract(x[rows], mean.reshape(shape), out=centred[rows])
            return kernels.channel_dot(c, c)

        var = kernels.batch_total(kernels.summed(len(x), centre)) / n
        if kernels.first_part():
            params["running_mean"][...] = (1 - m) * params["running_mean"] + m * mean
            params["running_var"][...] = (1 - m) * params["running_var"] + m * var * (n / max(n - 1, 1))
        inv, scale, _ = self._affine(mean, var, params)
        y = np.empty_like(x) if ctx.grad else centred

        def normalise(rows):
            np.multiply(centred[rows], scale.reshape(shape), out=y[rows])
            if self._centred:
                y[rows] += params["bias"].reshape(shape)

        kernels.side_by_side(len(x), normalise)
        return y, ((centred, inv, True) if ctx.grad else None)

    def _affine(self, mean, var, params):
        """(1 / std, scale, shift) of normalising by ``mean`` and ``var``: y = x * scale + shift."""
        import numpy as np

        inv = 1 / np.sqrt(var + self.eps)
        scale = inv * params["weight"] if self._scaled else inv
        shift = params["bias"] - mean * scale if self._centred else -mean * scale
        return inv, scale, shift

    def inference_affine(self, params) -> tuple:
        """The per-channel (scale, shift) this layer applies at inference, with its running statistics."""
        _, scale, shift = self._affine(params["running_mean"], params["running_var"], params)
        return scale, shift

    def backward(self, dy, cache, params):
        """``cache``: the input and ``1 / std`` at inference; in training the centred input (``x - mean``),
        whose product with ``dy`` gives the weight's gradient and the batch statistics' share of ``dx``. A part of a
        batch (``forward``) gives its share of the weights' gradients and takes the whole batch's sums for ``dx``."""
        import numpy as np

        from archcheck import kernels

        x, inv, train = cache
        shape = (1, -1, *(1,) * (x.ndim - 2))
        sum_dy = kernels.channel_sums(dy)
        if train:
            sum_dy_xhat = kernels.channel_dot(dy, x) * inv
        else:
            xhat = np.subtract(x, params["running_mean"].reshape(shape))
            xhat *= inv.reshape(shape)
            sum_dy_xhat = kernels.channel_dot(dy, xhat)
        grads = {}
        if self._scaled:
            grads["weight"] = sum_dy_xhat
        if self._centred:
            grads["bias"] = sum_dy
        scale = inv * params["weight"] if self._scaled else inv
        if not train:
            return [dy * scale.reshape(shape)], grads
        # the batch statistics depend on x too: dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat))
        n = kernels.channel_count(x)
        sum_dy, sum_dy_xhat = kernels.batch_total(np.stack([sum_dy, sum_dy_xhat]))  # (the parts meet once for both)
        dx = np.empty_like(x)

        def grad(rows):
            d = np.multiply(x[rows], (-sum_dy_xhat * inv / n).reshape(shape), out=dx[rows])
            d += dy[rows]
            d -= (sum_dy / n).reshape(shape)
            d *= scale.reshape(shape)

        kernels.side_by_side(len(dy), grad)
        return [dx], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        c = in_shapes[0][0]
        scale = b.param("weight") if self._scaled else b.const("ones", [1.0] * c)
        shift = b.param("bias") if self._centred else b.const("zeros", [0.0] * c)
        b.op("BatchNormalization", [inputs[0], scale, shift, b.param("running_mean"), b.param("running_var")],
             output, epsilon=self.eps)


class LayerNorm(_Normalisation):
    """Layer normalisation of each sample.

    ``over: channels`` (default) normalises the channel values at each position, with
    ``weight``/``bias`` of size C (as ConvNeXt does); ``over: all`` normalises all of
    ``(C, ...)`` together with per-value ``weight``/``bias`` (PyTorch ``LayerNorm(shape)``).
    FLOPs: 5 per output value (mean, variance, normalise, scale, shift).
    """

    type: ClassVar[str] = "layernorm"
    linear = False  # divides by a statistic of its input
    centres_channels = False
    running_statistics = False
    flops_per_output: ClassVar[int] = 5

    eps: Eps = 1e-5
    over: Literal["channels", "all"] = "channels"
    affine: bool = True

    def weight_shapes(self, inputs):
        shape = (inputs[0][0],) if self.over == "channels" else inputs[0]
        return {"weight": shape, "bias": shape} if self.affine else {}

    def init(self, inputs, rng, relu, dtype):
        import numpy as np

        shapes = self.weight_shapes(inputs)
        return {"weight": np.ones(shapes["weight"], dtype), "bias": np.zeros(shapes["bias"], dtype)} if shapes else {}

    def _axes(self, ndim: int):
        """(normalised axes, axes the weights are shared over) of a batched array."""
        if self.over == "channels":
            return (1,), (0, *range(2, ndim))
        return tuple(range(1, ndim)), (0,)

    def forward(self, xs, params, ctx):
        import numpy as np

        x = xs[0]
        axes, _ = self._axes(x.ndim)
        mean = x.mean(axis=axes, keepdims=True)
        inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + self.eps)
        xhat = (x - mean) * inv
        if not self.affine:
            return xhat, ((xhat, inv) if ctx.grad else None)
        shape = (1, -1, *(1,) * (x.ndim - 2)) if self.over == "channels" else (1, *x.shape[1:])
        y = xhat * params["weight"].reshape(shape) + params["bias"].reshape(shape)
        return y, ((xhat, inv) if ctx.grad else None)

    def backward(self, dy, cache, params):
        xhat, inv = cache
        axes, shared = self._axes(dy.ndim)
        grads = {}
        if self.affine:
            shape = (1, -1, *(1,) * (dy.ndim - 2)) if self.over == "channels" else (1, *dy.shape[1:])
            grads = {"weight": (dy * xhat).sum(axis=shared), "bias": dy.sum(axis=shared)}
            dy = dy * params["weight"].reshape(shape)
        dx = inv * (dy - dy.mean(axis=axes, keepdims=True) - xhat * (dy * xhat).mean(axis=axes, keepdims=True))
        return [dx], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """ONNX normalises trailing axes: over channels of a feature map, move them last and back."""
        import numpy as np

        shape = in_shapes[0]
        if not self.affine:  # LayerNormalization's first stage, without a scale as large as what it normalises
            axes = list(range(1, len(shape) + 1)) if self.over == "all" else [1]
            mean = b.op("ReduceMean", inputs, axes=axes, keepdims=1)
            centred = b.op("Sub", [inputs[0], mean])
            var = b.op("ReduceMean", [b.op("Mul", [centred, centred])], axes=axes, keepdims=1)
            std = b.op("Sqrt", [b.op("Add", [var, b.const("eps", np.float32(self.eps))])])
            b.op("Div", [centred, std], output)
            return
        scale, shift = b.param("weight"), b.param("bias")
        if self.over == "all" or len(shape) == 1:
            b.op("LayerNormalization", [inputs[0], scale, shift], output, axis=1, epsilon=self.eps)
            return
        rank = len(shape) + 1
        last = b.op("Transpose", inputs, perm=[0, *range(2, rank), 1])
        normed = b.op("LayerNormalization", [last, scale, shift], axis=-1, epsilon=self.eps)
        b.op("Transpose", [normed], output, perm=[0, rank - 1, *range(1, rank - 1)])


class _GroupStatistics(_Normalisation):
    """Normalises each sample's channels in groups, each group over its channels and all positions;
    ``weight``/``bias`` of size C with ``affine``. FLOPs: 5 per output value (mean, variance,
    normalise, scale, shift). Training and inference are the same."""

    linear = False  # divides by a statistic of its input
    running_statistics = False
    flops_per_output: ClassVar[int] = 5

    eps: Eps = 1e-5

    def n_groups(self, channels: int) -> int:
        raise NotImplementedError

    def weight_shapes(self, inputs):
        c = inputs[0][0]
        return {"weight": (c,), "bias": (c,)} if self.affine else {}

    def init(self, inputs, rng, relu, dtype):
        import numpy as np

        c = inputs[0][0]
        return {"weight": np.ones(c, dtype), "bias": np.zeros(c, dtype)} if self.affine else {}

    def forward(self, xs, params, ctx):
        import numpy as np

        x = xs[0]
        g = x.reshape(x.shape[0], self.n_groups(x.shape[1]), -1)
        inv = 1 / np.sqrt(g.var(axis=2, keepdims=True) + self.eps)
        xhat = ((g - g.mean(axis=2, keepdims=True)) * inv).reshape(x.shape)
        if not self.affine:
            return xhat, ((xhat, inv) if ctx.grad else None)
        shape = (1, -1, *(1,) * (x.ndim - 2))
        return xhat * params["weight"].reshape(shape) + params["bias"].reshape(shape), \
            ((xhat, inv) if ctx.grad else None)

    def backward(self, dy, cache, params):
        xhat, inv = cache
        grads = {}
        if self.affine:
            shared = (0, *range(2, dy.ndim))
            grads = {"weight": (dy * xhat).sum(axis=shared), "bias": dy.sum(axis=shared)}
            dy = dy * params["weight"].reshape(1, -1, *(1,) * (dy.ndim - 2))
        grouped = (dy.shape[0], inv.shape[1], -1)
        d, xh = dy.reshape(grouped), xhat.reshape(grouped)
        dx = inv * (d - d.mean(axis=2, keepdims=True) - xh * (d * xh).mean(axis=2, keepdims=True))
        return [dx.reshape(dy.shape)], grads

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """Opset 17 has no GroupNormalization: reshape to (N, G, -1), InstanceNormalization, reshape back,
        then the per-channel affine."""
        shape = in_shapes[0]
        g = self.n_groups(shape[0])
        grouped = b.op("Reshape", [inputs[0], b.ints("groups", [0, g, -1])])
        normed = b.op("InstanceNormalization", [grouped, b.const("ones", [1.0] * g), b.const("zeros", [0.0] * g)],
                      epsilon=self.eps)
        if not self.affine:
            b.op("Reshape", [normed, b.ints("shape", [0, *shape])], output)
            return
        back = b.op("Reshape", [normed, b.ints("shape", [0, *shape])])
        per_channel = b.ints("per_channel", [shape[0], *(1,) * (len(shape) - 1)])
        scaled = b.op("Mul", [back, b.op("Reshape", [b.param("weight"), per_channel])])
        b.op("Add", [scaled, b.op("Reshape", [b.param("bias"), per_channel])], output)


class GroupNorm(_GroupStatistics):
    """Group normalisation (Wu and He, 2018; PyTorch ``GroupNorm``): ``groups`` must divide the channels.

    ``centres_channels`` is false: a group's mean is removed, which cancels a per-channel bias before it
    only when each group is one channel (``groups`` equal to the channels; write ``instancenorm`` then).
    """

    type: ClassVar[str] = "groupnorm"
    centres_channels = False

    groups: Annotated[int, Field(ge=1)]
    affine: bool = True

    def n_groups(self, channels: int) -> int:
        return self.groups

    def output_shape(self, inputs):
        c = inputs[0][0]
        if c % self.groups:
            divisors = [d for d in range(1, c + 1) if c % d == 0]
            near = min(divisors, key=lambda d: (abs(d - self.groups), d))
            raise ShapeError(f"groups={self.groups} does not divide the {c} input channels",
                             f"use a number of groups that divides {c}, e.g. {near}")
        return inputs[0]


class InstanceNorm(_GroupStatistics):
    """Instance normalisation (PyTorch ``InstanceNorm1d/2d/3d``): each channel of each sample over its
    positions; ``affine`` defaults to false, as in PyTorch. No ``track_running_stats``: left out."""

    type: ClassVar[str] = "instancenorm"
    centres_channels = True

    affine: bool = False

    def n_groups(self, channels: int) -> int:
        return channels

    def output_shape(self, inputs):
        if len(inputs[0]) < 2:
            raise ShapeError("instancenorm normalises each channel over its positions, but a vector has none",
                             "use batchnorm or layernorm on a vector, or place instancenorm before the flatten")
        return inputs[0]


class LayerScale(Layer):
    """A learnable per-channel scale (ConvNeXt's layer scale, CaiT): ``weight`` of size C, initially
    ``init``. Not a normalisation and not ``weighted`` in the rules' sense: a per-channel scale folds into
    its neighbour. MACs 0; FLOPs: 1 per output value."""

    type: ClassVar[str] = "layerscale"
    category = "norm"
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
    flops_per_output: ClassVar[int] = 1

    init_value: float = Field(1e-6, alias="init")

    def weight_shapes(self, inputs):
        return {"weight": (inputs[0][0],)}

    def init(self, inputs, rng, relu, dtype):
        import numpy as np

        return {"weight": np.full(inputs[0][0], self.init_value, dtype)}

    def forward(self, xs, params, ctx):
        x = xs[0]
        return x * params["weight"].reshape(1, -1, *(1,) * (x.ndim - 2)), (x if ctx.grad else None)

    def backward(self, dy, cache, params):
        x = cache
        shape = (1, -1, *(1,) * (x.ndim - 2))
        return [dy * params["weight"].reshape(shape)], {"weight": (dy * x).sum(axis=(0, *range(2, x.ndim)))}

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        shape = in_shapes[0]
        per_channel = b.ints("per_channel", [shape[0], *(1,) * (len(shape) - 1)])
        b.op("Mul", [inputs[0], b.op("Reshape", [b.param("weight"), per_channel])], output)
