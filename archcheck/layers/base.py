"""What every layer type provides, and the window arithmetic they share.

A layer type is one pydantic model: its fields are the spec arguments. Beside them
it owns its shape rule (``output_shape``), its weights (``weight_shapes``, from which
parameter counts derive), its MACs and FLOPs, its receptive-field step and, for the
executor, its NumPy ``forward``/``backward`` (which import NumPy themselves, so the
static path never loads it).

Shapes exclude the batch axis: ``(C, *spatial)`` for feature maps, ``(F,)`` for vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from archcheck.errors import ArchcheckError

Shape = tuple[int, ...]

# Argument types shared by layer types; each description is the "expected ..." of error messages.
MAX_DIM = 2**31 - 1
Dim = Annotated[int, Field(ge=1, le=MAX_DIM, description=f"a whole number from 1 to {MAX_DIM:,}")]
NonNeg = Annotated[int, Field(ge=0, le=MAX_DIM, description="a whole number >= 0")]
PerAxis = Annotated[Dim | list[Dim],
                    Field(description="a whole number >= 1, or a list with one per spatial axis")]
Pair = Annotated[list[NonNeg], Field(min_length=2, max_length=2)]
Padding = Annotated[NonNeg | Literal["same", "valid"] | list[NonNeg | Pair],
                    Field(description="a whole number >= 0, a list with one per spatial axis (each a number or "
                                      "[before, after]), 'same' or 'valid'")]

Category = Literal["input", "conv", "dense", "pool", "norm", "activation", "merge", "reshape", "regularizer"]
KINDS = ("category", "weighted", "linear", "normalises", "activation", "window", "upsamples", "global_pool", "gate",
         "passes", "pointwise")
# Declared by every normalisation (``normalises``):
#   centres_channels   - subtracts each channel's mean, so a per-channel bias before it cancels
#   running_statistics - keeps statistics learned in training and uses them at inference
NORM_KINDS = ("centres_channels", "running_statistics")
# Declared by every activation (``activation``):
#   saturating    - the gradient vanishes for large inputs of either sign
#   relu_family   - weights that feed it are He-initialised
#   dies          - outputs exactly zero on a half-line, so a unit can stop learning (a "dead" ReLU)
#   probabilities - outputs a distribution over the channel axis (softmax)
#   output_range  - (low, high) of its output values; the bounds it saturates at when ``saturating``
#   peak_gradient - the largest derivative of an output with respect to its input
ACTIVATION_KINDS = ("saturating", "relu_family", "dies", "probabilities", "output_range", "peak_gradient")


class ShapeError(ArchcheckError):
    """A layer cannot accept its input shapes: what went wrong and how to fix it."""


@dataclass(frozen=True)
class Step:
    """One layer's receptive-field step along one axis (Araujo et al., Distill 2019).

    ``kernel`` is the effective (dilated) window, ``stride`` and ``pad`` (left padding)
    are in the layer's input units; fractional strides describe upsampling.
    """

    kernel: Fraction
    stride: Fraction
    pad: Fraction


@dataclass(frozen=True)
class Geometry:
    """Where a sliding window (a convolution's or a pooling's) lands on one input, per spatial axis.

    The layer works it out from its arguments and the input shape (``geometry(shape)``), once; the
    propagator keeps it in the node's facts, and the rules, the executor (down to the NumPy kernels)
    and the ONNX export read it there instead of deriving it again.
    """

    channels: int  # of the input
    in_sizes: tuple[int, ...]  # spatial sizes of the input
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]  # 1 on every axis for pooling
    pads: tuple[tuple[int, int], ...]  # (before, after); 'same' and 'valid' resolved
    out_sizes: tuple[int, ...]  # spatial sizes of the output
    # Per axis, the input span [start, end) each output position reads, for windows that need not slide
    # by one stride (adaptive pooling); then ``kernel`` is the widest span and ``stride`` the smallest step
    # between spans. None: window i starts at i * stride - pads before.
    cells: tuple[tuple[tuple[int, int], ...], ...] | None = None

    @property
    def slides(self) -> bool:
        """Every window is ``kernel`` wide and starts ``stride`` after the previous one, so the sliding-window
        arithmetic (output sizes, what the last window reaches) holds."""
        return self.cells is None or all(sliding(c, k, s) for c, k, s in zip(self.cells, self.kernel, self.stride))


def sliding(spans, kernel: int, stride: int) -> bool:
    """Whether ``spans`` ([start, end) per output position along one axis) are one ``kernel``-wide window
    moved by ``stride``, from 0."""
    return all(span == (i * stride, i * stride + kernel) for i, span in enumerate(spans))


def axis_names(rank: int) -> tuple[str, ...]:
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(rank, tuple(f"axis{i}" for i in range(rank)))


def axis_label(shape: Shape, axis: int) -> str:
    """An axis of a shape without the batch axis as messages name it: channels, or L / H, W / D, H, W."""
    return "channels" if axis == 0 else axis_names(len(shape) - 1)[axis - 1] if len(shape) > 1 else f"axis {axis}"


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def number(x: Fraction) -> int | float:
    """A Fraction as an int when whole, else a float (JSON-friendly). A receptive field can outgrow
    any float (1,100 stride-2 layers give a stride of 2^1100): beyond 2^53 a fraction is rounded to
    the nearest whole number, which JSON carries exactly."""
    if x.denominator == 1:
        return int(x)
    return float(x) if abs(x) < 2**53 else round(x)


def per_axis(value, rank: int, arg: str) -> tuple:
    """Broadcast an int (or a list with one entry per spatial axis) to ``rank`` axes."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise ShapeError(f"'{arg}' has {len(value)} values {list(value)} but the input has {rank} spatial "
                             f"ax{'is' if rank == 1 else 'es'} ({', '.join(axis_names(rank))})",
                             f"give one value, or exactly {rank}")
        return tuple(value)
    return (value,) * rank


def spatial_input(layer: Layer, shape: Shape) -> tuple[int, tuple[int, ...]]:
    """Split a feature-map shape into channels and spatial sizes; reject vectors."""
    if len(shape) < 2 or len(shape) > 4:
        raise ShapeError(f"{layer.type} expects a 1-D, 2-D or 3-D feature map (C, L) / (C, H, W) / (C, D, H, W), "
                         f"received {fmt_shape(shape)}",
                         "apply it before `flatten`/`dense`, or reshape the input to have spatial axes")
    return shape[0], tuple(shape[1:])


def window_padding(padding, rank: int, kernels, strides, dilations, sizes) -> tuple[tuple[int, int], ...]:
    """Normalise a padding argument to (before, after) per axis.

    ``same`` follows the TensorFlow rule: output = ceil(input / stride), the extra
    pixel going after. ``valid`` is no padding.
    """
    if padding == "valid":
        return ((0, 0),) * rank
    if padding == "same":
        pads = []
        for n, k, s, d in zip(sizes, kernels, strides, dilations):
            out = -(-n // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    pads = per_axis(padding, rank, "padding")
    return tuple(tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in pads)


def window_out(layer: Layer, sizes, kernels, strides, dilations, pads, ceil_mode: bool = False) -> tuple[int, ...]:
    """Output sizes of a sliding window: floor((n + pads - d(k-1) - 1) / s) + 1 per axis."""
    out = []
    names = axis_names(len(sizes))
    for axis, n, k, s, d, (pb, pa) in zip(names, sizes, kernels, strides, dilations, pads):
        span = d * (k - 1) + 1
        padded = n + pb + pa
        if span > padded:
            dilated = f" (dilated to {span})" if d > 1 else ""
            raise ShapeError(f"the {k}-wide window{dilated} does not fit the padded input along {axis}: "
                             f"input {n} + padding {pb}+{pa} = {padded} < {span}, so the output would have no "
                             f"positions along {axis}",
                             "use a smaller kernel, add padding, or downsample less before this layer")
        if ceil_mode:
            o = -(-(padded - span) // s) + 1
            if (o - 1) * s >= n + pb:  # the last window must start inside the input or left padding
                o -= 1
        else:
            o = (padded - span) // s + 1
        out.append(o)
    return tuple(out)


class Layer(BaseModel):
    """Base of every layer type. Subclasses set the class variables and override methods."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True, allow_inf_nan=False)

    type: ClassVar[str]
    shorthand: ClassVar[str | None] = None  # the argument a bare scalar sets, e.g. `dense: 10`
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    flops_per_output: ClassVar[int] = 0  # element-wise FLOPs per output value (documented per type)

    # -- kinds: what the layer does to the values passing through ------------------------
    # Rules and the executor read these, never type names, so a new layer type meets every rule by
    # declaring them. The base leaves them undeclared on purpose: tests/test_layers.py fails for a type
    # (or its family's base class) that leaves one out, instead of it passing as "none of the above".
    category: ClassVar[Category]
    weighted: ClassVar[bool]  # learns a map that mixes values (conv, dense): "a layer with weights" to the rules;
    #                           a normalisation's per-channel scale and shift do not count
    linear: ClassVar[bool]  # affine in its input at inference: adds no non-linearity of its own
    normalises: ClassVar[bool]  # rescales its input by statistics of it (then also NORM_KINDS)
    activation: ClassVar[bool]  # an element-wise non-linearity (then also ACTIVATION_KINDS)
    window: ClassVar[bool]  # slides a window over the spatial axes: has a kernel, stride, dilation and pads
    upsamples: ClassVar[bool]  # enlarges the spatial sizes by a factor (transposed convolution, upsampling)
    global_pool: ClassVar[bool]  # reduces each channel's whole map to one value
    gate: ClassVar[bool]  # multiplies values by another input (squeeze-and-excitation, attention gates)
    passes: ClassVar[bool]  # hands values on unchanged: at most rearranged, padded, cropped or (in training) dropped
    pointwise: ClassVar[bool]  # each output position reads its own input position only: no spatial mixing
    # declared by every normalisation and every activation (NORM_KINDS, ACTIVATION_KINDS below)
    centres_channels: ClassVar[bool]
    running_statistics: ClassVar[bool]

    # -- at inference (``LayerGraph.inference``) ------------------------------------
    folds_affine: ClassVar[bool] = False  # can take a per-channel scale and shift into its weights (``fold``)
    overwrites: ClassVar[bool] = False  # can write its output over its first input (``forward`` with ctx.in_place)
    reads_half: ClassVar[bool] = False  # an activation whose function begins by halving x (``forward`` ctx.halved)

    def inference_kernel(self, inputs: list[Shape], batch: int, dtype: str) -> str | None:
        """The name of a faster algorithm this layer runs at inference on a batch of ``batch`` inputs of these
        shapes in ``dtype``, with weights made once by ``prepare``; None (the default): as written."""
        return None

    def gradient_kernel(self, inputs: list[Shape], dtype: str) -> str | None:
        """The name of a faster algorithm this layer runs in a pass for gradients (its forward and backward) on
        inputs of these shapes in ``dtype``, one that rounds as the layer as written does; None (the default): as
        written."""
        return None

    # -- static facts --------------------------------------------------------------
    def output_shape(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def weight_shapes(self, inputs: list[Shape]) -> dict[str, Shape]:
        """Trainable weights in PyTorch layout, by state_dict suffix (``weight``, ``bias``)."""
        return {}

    def buffer_shapes(self, inputs: list[Shape]) -> dict[str, Shape]:
        """Non-trainable state (batchnorm running statistics)."""
        return {}

    def macs(self, inputs: list[Shape], out: Shape) -> int:
        """Multiply-accumulates (the torchvision/fvcore convention): conv and dense only."""
        return 0

    def flops(self, inputs: list[Shape], out: Shape) -> int:
        """2 x MACs plus ``flops_per_output`` for every output value."""
        return 2 * self.macs(inputs, out) + self.flops_per_output * math.prod(out)

    def zero_padding(self, shape: Shape) -> tuple[tuple[int, int], ...] | None:
        """For a layer that only pads (``zeropad``): the zeros it adds, ``(before, after)`` per spatial axis.
        Rules read it to see the padding a convolution gets from the layer before it."""
        return None

    def rf_steps(self, inputs: list[Shape], out: Shape) -> list[Step] | Literal["global"] | None:
        """Receptive-field step per spatial axis; None keeps the field, 'global' makes it the whole input."""
        return None

    def geometry(self, shape: Shape) -> Geometry | None:
        """The window this layer slides over an input of ``shape`` (``WindowLayer``); None for other layers."""
        return None

    # -- execution (NumPy, imported by these methods) ----------------------------------
    def fans(self, inputs: list[Shape]) -> tuple[int, int]:
        """(fan_in, fan_out) of ``weight`` for initialisation, PyTorch's convention for its layout
        ``(out, in, *kernel)``: ``in x prod(kernel)`` and ``out x prod(kernel)``."""
        shape = self.weight_shapes(inputs)["weight"]
        field = math.prod(shape[2:])
        return shape[1] * field, shape[0] * field

    def init(self, inputs: list[Shape], rng, relu: bool, dtype) -> dict:
        """Initial weights and buffers by suffix: ``weight`` He-normal (std ``sqrt(2 / fan_in)``) when a
        ReLU-family activation follows (``relu``), Glorot-uniform (limit ``sqrt(6 / (fan_in + fan_out))``)
        otherwise; every other array zeros. Normalisation layers override this."""
        import numpy as np

        out = {}
        for suffix, shape in {**self.weight_shapes(inputs), **self.buffer_shapes(inputs)}.items():
            if suffix == "weight":
                fan_in, fan_out = self.fans(inputs)
                w = (rng.normal(0.0, math.sqrt(2.0 / fan_in), shape) if relu
                     else rng.uniform(-1.0, 1.0, shape) * math.sqrt(6.0 / (fan_in + fan_out)))
                out[suffix] = w.astype(dtype)
            else:
                out[suffix] = np.zeros(shape, dtype)
        return out

    def forward(self, xs: list, params: dict, ctx) -> tuple:
        """Run on batched arrays ``xs`` (``(N, *in_shape)``, one per input); return ``(output, cache)``.

        ``params`` maps this layer's weight and buffer suffixes to arrays; ``ctx`` carries ``train``
        (batch statistics, dropout), ``grad`` (return what ``backward`` needs as the cache, else None),
        ``rng``, the propagator's ``geometry`` of a window layer (which its cache hands to ``backward``),
        ``in_place`` (write the output over ``xs[0]``; only ever set for a layer that ``overwrites``) and ``halved``
        (``xs[0]`` holds half the input's values; only ever set, with ``in_place``, for one that ``reads_half``).
        """
        raise NotImplementedError(f"layer type '{self.type}' has no NumPy forward")

    def fold(self, params: dict, scale, shift) -> dict:
        """For a layer that ``folds_affine``: weights (by suffix) computing this layer followed by
        ``y * scale + shift`` per channel (a batchnorm at inference)."""
        raise NotImplementedError(f"layer type '{self.type}' takes no scale into its weights")

    def prepare(self, params: dict) -> dict:
        """For a layer with an ``inference_kernel``: the arrays (by suffix) that kernel reads beside the
        weights, worked out from them once per set of weights (``executor.fold_weights``)."""
        raise NotImplementedError(f"layer type '{self.type}' has no inference kernel")

    def laid_out(self, arrays: dict) -> dict:
        """The arrays (by suffix) the inference plan's forward reads for this layer, from its weights (folded or
        prepared, if the plan does so) in the plan's dtype (``executor.fold_weights``): the weights as they are, by
        default; a type that overrides it has every layer of its type laid out so."""
        return arrays

    def weight_grads(self, dy, cache, params: dict) -> dict:
        """The gradients of the trainable weights alone (by suffix), for a layer whose input gradients nobody
        reads (it reads only the network's input); a layer whose input gradient is costly overrides it."""
        return self.backward(dy, cache, params)[1]

    def backward(self, dy, cache, params: dict) -> tuple[list, dict]:
        """From the gradient of the output, the gradients of the inputs (a list, one per input) and
        of the trainable weights (by suffix)."""
        raise NotImplementedError(f"layer type '{self.type}' has no NumPy backward")

    # -- export ----------------------------------------------------------------------
    def to_onnx(self, b, inputs: list[str], output: str, in_shapes: list[Shape], out_shape: Shape) -> None:
        """Write this layer as ONNX nodes with ``b`` (an ``archcheck.onnx_export.Builder``): read the
        tensors named ``inputs`` (batched, ``(N, *in_shape)``) and produce the tensor named ``output``.
        ``in_shapes`` and ``out_shape`` are the propagator's shapes, without the batch axis, and
        ``b.geometry`` its geometry of a window layer."""
        raise NotImplementedError(f"layer type '{self.type}' has no ONNX export")

    # -- helpers ---------------------------------------------------------------------
    def args(self) -> dict:
        """The arguments as given (defaults omitted), for display."""
        return self.model_dump(exclude_defaults=True)


class WindowLayer(Layer):
    """Base of the layers that slide a window over a feature map: convolutions and window pooling.

    ``_geometry`` works out the ``Geometry`` for an input shape; ``geometry`` returns it, worked out once
    per input shape and kept on the (frozen) layer. Every static figure of these layers (output shape,
    weights, MACs, FLOPs, receptive-field step) derives from it: they take input shapes like every
    layer's, so the propagator, ``param_shapes`` and direct callers share one record rather than each
    working it out again.
    """

    def geometry(self, shape: Shape) -> Geometry:
        shape = tuple(shape)
        known = self._geometries
        if shape not in known:
            known[shape] = self._geometry(shape)
        return known[shape]

    def _geometry(self, shape: Shape) -> Geometry:
        raise NotImplementedError

    @cached_property
    def _geometries(self) -> dict[Shape, Geometry]:
        return {}  # not a field: equality, hashing and model_dump ignore it


def count(shapes: dict[str, Shape]) -> int:
    return sum(math.prod(s) for s in shapes.values())
