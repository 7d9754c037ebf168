"""Element-wise activations and softmax. No weights, no MACs; FLOPs per value are
``flops_per_output`` (an estimate of the element-wise work, documented per type)."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

from pydantic import Field

from archcheck.layers.base import Layer, ShapeError

INF = math.inf


# Values per block of an activation worked in several passes: they stay in the cache. Each pass is one NumPy call, and
# a part of a batch worked beside another takes Python's lock back after each: 2**17 rather than 2**16 took
# EfficientNet-B0's forward 0.964x the time at two threads (MobileNetV3-Large 0.972x), the same at one, and left the
# peak memory as it was (the block's scratch is not alive at the peak)
BLOCK = 2**17


def _by_blocks(passes, x, out=None, block=BLOCK):
    """``passes(x, y, scratch)`` over blocks of ``block`` values of ``x``, into ``out`` (or a new array): the
    passes reuse each block while it is in the cache, and their scratch is one block, not a whole tensor."""
    import numpy as np

    y = np.empty_like(x) if out is None else out
    if not (x.flags.c_contiguous and y.flags.c_contiguous):
        passes(x, y, np.empty_like(x))
        return y
    xs, ys = x.reshape(-1), y.reshape(-1)
    scratch = np.empty(min(block, xs.size), x.dtype)
    for i in range(0, xs.size, block):
        passes(xs[i:i + block], ys[i:i + block], scratch[:min(block, xs.size - i)])
    return y


class Activation(Layer):
    """Base of the activations. Each declares the activation kinds (``ACTIVATION_KINDS`` in
    ``archcheck.layers.base``); a property where an argument decides one."""

    category = "activation"
    weighted = False
    linear = False
    normalises = False
    activation = True
    window = False
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = True
    flops_per_output: ClassVar[int] = 1

    saturating: ClassVar[bool]
    relu_family: ClassVar[bool]
    dies: ClassVar[bool]
    probabilities: ClassVar[bool]
    output_range: ClassVar[tuple[float, float]]
    peak_gradient: ClassVar[float]

    def fn(self, x, out=None):
        """The function of ``x``; into ``out`` (which may be ``x``) when given, for a type that ``overwrites``."""
        raise NotImplementedError(f"activation '{self.type}' has no NumPy function")

    def fn_grad(self, x, y, dy):
        """dL/dx from dL/dy, with the input x and output y at hand."""
        raise NotImplementedError(f"activation '{self.type}' has no NumPy derivative")

    def forward(self, xs, params, ctx):
        if ctx.halved:  # (the inference plan's: never recorded for backward)
            return self.of_half(xs[0]), None
        y = self.fn(xs[0], out=xs[0]) if ctx.in_place else self.fn(xs[0])
        return y, ((xs[0], y) if ctx.grad else None)

    def of_half(self, h):
        """For a type that ``reads_half``: the function of ``2 * h``, written over ``h``, rounding as ``fn`` does
        (its first pass halves the input, exactly)."""
        raise NotImplementedError(f"activation '{self.type}' does not begin by halving its input")

    def backward(self, dy, cache, params):
        x, y = cache
        return [self.fn_grad(x, y, dy)], {}


class Relu(Activation):
    """max(0, x). 1 FLOP per value."""

    type: ClassVar[str] = "relu"
    saturating = False
    relu_family = True
    dies = True
    probabilities = False
    output_range = (0.0, INF)
    peak_gradient = 1.0

    overwrites = True

    def fn(self, x, out=None):
        import numpy as np

        return np.maximum(x, 0, out=out)

    def fn_grad(self, x, y, dy):
        return dy * (x > 0)

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Relu", inputs, output)


class Relu6(Activation):
    """min(max(0, x), 6), as in MobileNet. 2 FLOPs per value."""

    type: ClassVar[str] = "relu6"
    flops_per_output: ClassVar[int] = 2
    saturating = False
    relu_family = True
    dies = True
    probabilities = False
    output_range = (0.0, 6.0)
    peak_gradient = 1.0

    overwrites = True

    def fn(self, x, out=None):
        import numpy as np

        return np.clip(x, 0, 6, out=out)

    def fn_grad(self, x, y, dy):
        return dy * ((x > 0) & (x < 6))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Clip", [inputs[0], b.const("min", 0.0), b.const("max", 6.0)], output)


class LeakyRelu(Activation):
    """x if x > 0 else slope * x. 2 FLOPs per value."""

    type: ClassVar[str] = "leaky_relu"
    flops_per_output: ClassVar[int] = 2
    shorthand: ClassVar[str] = "slope"

    slope: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01

    saturating = False
    relu_family = True
    probabilities = False
    peak_gradient = 1.0

    @property
    def dies(self) -> bool:
        return self.slope == 0

    @property
    def output_range(self) -> tuple[float, float]:
        return (0.0 if self.slope == 0 else -INF, INF)

    def fn(self, x, out=None):
        import numpy as np

        return np.where(x > 0, x, x * self.slope)

    def fn_grad(self, x, y, dy):
        import numpy as np

        return np.where(x > 0, dy, dy * self.slope)

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("LeakyRelu", inputs, output, alpha=self.slope)


class Elu(Activation):
    """x if x > 0 else alpha * (exp(x) - 1). 3 FLOPs per value."""

    type: ClassVar[str] = "elu"
    flops_per_output: ClassVar[int] = 3
    shorthand: ClassVar[str] = "alpha"

    alpha: Annotated[float, Field(gt=0.0)] = 1.0

    saturating = False
    relu_family = True
    dies = False
    probabilities = False

    @property
    def output_range(self) -> tuple[float, float]:
        return (-self.alpha, INF)

    @property
    def peak_gradient(self) -> float:
        return max(1.0, self.alpha)

    def fn(self, x, out=None):
        import numpy as np

        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def fn_grad(self, x, y, dy):
        import numpy as np

        return np.where(x > 0, dy, dy * (y + self.alpha))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Elu", inputs, output, alpha=self.alpha)


class Selu(Activation):
    """scale * elu(x, alpha) with the self-normalising constants. 4 FLOPs per value."""

    type: ClassVar[str] = "selu"
    flops_per_output: ClassVar[int] = 4

    alpha: ClassVar[float] = 1.6732632423543772
    scale: ClassVar[float] = 1.0507009873554805
    saturating = False
    relu_family = False
    dies = False
    probabilities = False
    output_range = (-scale * alpha, INF)
    peak_gradient = scale * alpha

    def fn(self, x, out=None):
        import numpy as np

        return self.scale * np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def fn_grad(self, x, y, dy):
        import numpy as np

        return np.where(x > 0, self.scale * dy, dy * (y + self.scale * self.alpha))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Selu", inputs, output)  # ONNX's default alpha and gamma are the self-normalising constants


class Gelu(Activation):
    """x * Phi(x) (exact, erf form). 8 FLOPs per value."""

    type: ClassVar[str] = "gelu"
    flops_per_output: ClassVar[int] = 8
    saturating = False
    relu_family = True
    dies = False
    probabilities = False
    output_range = (-0.16997120747940211, INF)  # at x = -0.7518
    peak_gradient = 1.1289041451825208  # at x = sqrt(2)

    def fn(self, x, out=None):
        """Exact, with libm's erf per value (NumPy has no vectorised erf): the slowest activation here. In blocks
        of 2**14 values (``_by_blocks``): the erfs of a block are an array of Python floats, eight times the
        block's bytes, which for a whole tensor would be the largest thing alive (ConvNeXt-T's forward: 4.4x the
        predicted peak; in blocks of 2**17, 1.06x, and 1.11x at two threads, each holding its own)."""
        import math

        import numpy as np

        erf = np.frompyfunc(math.erf, 1, 1)

        def block(x, y, phi):
            phi[...] = erf(np.divide(x, math.sqrt(2), out=phi))  # (as float as x: each erf rounded once)
            phi += 1
            phi *= 0.5
            np.multiply(x, phi, out=y)

        return _by_blocks(block, x, out, 2**14)

    def fn_grad(self, x, y, dy):
        import math

        import numpy as np

        density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        cdf = np.divide(y, x, out=np.full_like(x, 0.5), where=x != 0)
        return dy * (cdf + x * density)

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """0.5 x (1 + erf(x / sqrt 2)), spelled with Erf (the Gelu operator needs opset 20)."""
        erf = b.op("Erf", [b.op("Div", [inputs[0], b.const("sqrt2", 2**0.5)])])
        half_x = b.op("Mul", [inputs[0], b.const("half", 0.5)])
        b.op("Mul", [half_x, b.op("Add", [erf, b.const("one", 1.0)])], output)


class Sigmoid(Activation):
    """1 / (1 + exp(-x)); saturates at both ends. 4 FLOPs per value."""

    type: ClassVar[str] = "sigmoid"
    flops_per_output: ClassVar[int] = 4
    saturating = True
    relu_family = False
    dies = False
    probabilities = False
    output_range = (0.0, 1.0)
    peak_gradient = 0.25

    overwrites = True
    reads_half = True

    def fn(self, x, out=None):
        import numpy as np

        return self.of_half(np.multiply(x, 0.5, out=out))  # 0.5 * (1 + tanh(x / 2)), without overflow in exp

    def of_half(self, h):
        import numpy as np

        np.tanh(h, out=h)
        h += 1
        h *= 0.5
        return h

    def fn_grad(self, x, y, dy):
        return dy * y * (1 - y)

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Sigmoid", inputs, output)


class Tanh(Activation):
    """tanh(x); saturates at both ends. 5 FLOPs per value."""

    type: ClassVar[str] = "tanh"
    flops_per_output: ClassVar[int] = 5
    saturating = True
    relu_family = False
    dies = False
    probabilities = False
    output_range = (-1.0, 1.0)
    peak_gradient = 1.0

    def fn(self, x, out=None):
        import numpy as np

        return np.tanh(x)

    def fn_grad(self, x, y, dy):
        return dy * (1 - y * y)

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Tanh", inputs, output)


class Hardswish(Activation):
    """x * relu6(x + 3) / 6, as in MobileNetV3. 4 FLOPs per value."""

    type: ClassVar[str] = "hardswish"
    flops_per_output: ClassVar[int] = 4
    saturating = False
    relu_family = True
    dies = False
    probabilities = False
    output_range = (-0.375, INF)  # at x = -1.5
    peak_gradient = 1.5  # at x = 3

    overwrites = True

    def fn(self, x, out=None):
        import numpy as np

        def block(x, y, gate):
            np.add(x, 3, out=gate)
            np.clip(gate, 0, 6, out=gate)
            np.multiply(x, gate, out=y)
            y /= 6

        return _by_blocks(block, x, out)

    def fn_grad(self, x, y, dy):
        import numpy as np

        return dy * np.where(x < -3, 0, np.where(x > 3, 1, (2 * x + 3) / 6))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("HardSwish", inputs, output)


class Hardsigmoid(Activation):
    """relu6(x + 3) / 6, as in MobileNetV3 (PyTorch's Hardsigmoid). 4 FLOPs per value (add, max, min,
    scale). Saturating: its gradient is exactly 0 outside [-3, 3], so it saturates harder than sigmoid,
    and like sigmoid it is meant for gates (squeeze-and-excitation) and outputs. It outputs exactly 0
    below -3 but does not "die" as a ReLU does: that is its lower saturation (and it is stuck at 1
    above 3 just the same), which the saturation checks report."""

    type: ClassVar[str] = "hardsigmoid"
    flops_per_output: ClassVar[int] = 4
    saturating = True
    relu_family = False
    dies = False
    probabilities = False
    output_range = (0.0, 1.0)
    peak_gradient = 1 / 6

    def fn(self, x, out=None):
        import numpy as np

        return np.clip(x + 3, 0, 6) / 6

    def fn_grad(self, x, y, dy):
        return dy * ((x > -3) & (x < 3)) / 6

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("HardSigmoid", inputs, output, alpha=1 / 6, beta=0.5)  # ONNX's defaults are Keras's 0.2 and 0.5


class Mish(Activation):
    """x * tanh(softplus(x)) (Misra, 2019). 9 FLOPs per value (softplus 3, tanh 5, multiply)."""

    type: ClassVar[str] = "mish"
    flops_per_output: ClassVar[int] = 9
    saturating = False
    relu_family = True
    dies = False
    probabilities = False
    output_range = (-0.30884341301725043, INF)  # at x = -1.1924
    peak_gradient = 1.088498161251728  # at x = 1.4906

    def fn(self, x, out=None):
        import numpy as np

        return x * np.tanh(np.logaddexp(0, x))  # softplus without overflow in exp

    def fn_grad(self, x, y, dy):
        import numpy as np

        t = np.tanh(np.logaddexp(0, x))
        return dy * (t + x * (1 - t * t) * (0.5 * (1 + np.tanh(0.5 * x))))  # softplus' = sigmoid

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """Spelled with Softplus and Tanh (the Mish operator needs opset 18)."""
        b.op("Mul", [inputs[0], b.op("Tanh", [b.op("Softplus", inputs)])], output)


class Swish(Activation):
    """x * sigmoid(x) (SiLU). 5 FLOPs per value."""

    type: ClassVar[str] = "swish"
    flops_per_output: ClassVar[int] = 5
    saturating = False
    relu_family = True
    dies = False
    probabilities = False
    output_range = (-0.27846454275882637, INF)  # at x = -1.2785
    peak_gradient = 1.0998393201285284  # at x = 2.3994

    overwrites = True
    reads_half = True

    def fn(self, x, out=None):
        import numpy as np

        def block(x, y, half):  # x * sigmoid(x) = h * (1 + tanh(h)) with h = x / 2: four passes
            np.multiply(x, 0.5, out=half)
            np.tanh(half, out=y)
            y += 1
            y *= half

        return _by_blocks(block, x, out)

    def of_half(self, h):
        import numpy as np

        def block(h, y, t):  # (y is h): three passes
            np.tanh(h, out=t)
            t += 1
            np.multiply(h, t, out=y)

        return _by_blocks(block, h, h)

    def fn_grad(self, x, y, dy):
        import numpy as np

        s = 0.5 * (1 + np.tanh(0.5 * x))
        return dy * (s + y * (1 - s))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Mul", [inputs[0], b.op("Sigmoid", inputs)], output)


class Softmax(Activation):
    """exp(x) / sum(exp(x)) along the channel axis (axis 0 of the per-sample shape).
    3 FLOPs per value (exp, sum, divide)."""

    type: ClassVar[str] = "softmax"
    flops_per_output: ClassVar[int] = 3
    saturating = True
    relu_family = False
    dies = False
    probabilities = True
    output_range = (0.0, 1.0)
    peak_gradient = 0.25  # d p_i / d x_i = p_i (1 - p_i)

    axis: Annotated[int, Field(ge=0, le=3)] = 0

    def output_shape(self, inputs):
        if self.axis >= len(inputs[0]):
            raise ShapeError(f"axis {self.axis} does not exist in an input with {len(inputs[0])} "
                             f"ax{'is' if len(inputs[0]) == 1 else 'es'}",
                             "use axis 0 (the channels, or the features of a vector)")
        return inputs[0]

    def fn(self, x, out=None):
        import numpy as np

        axis = self.axis + 1
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        return e

    def fn_grad(self, x, y, dy):
        return y * (dy - (dy * y).sum(axis=self.axis + 1, keepdims=True))

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Softmax", inputs, output, axis=self.axis + 1)
