"""Element-wise activations and softmax. No weights, no MACs; FLOPs per value are
``flops_per_output`` (an estimate of the element-wise work, documented per type)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from archcheck.layers.base import Layer


class Activation(Layer):
    """Base of the activations; ``saturating`` marks those whose gradient vanishes for large inputs."""

    category: ClassVar[str] = "activation"
    flops_per_output: ClassVar[int] = 1
    saturating: ClassVar[bool] = False


class Relu(Activation):
    """max(0, x). 1 FLOP per value."""

    type: ClassVar[str] = "relu"

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Relu", inputs, output)


class Relu6(Activation):
    """min(max(0, x), 6), as in MobileNet. 2 FLOPs per value."""

    type: ClassVar[str] = "relu6"
    flops_per_output: ClassVar[int] = 2

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Clip", [inputs[0], b.const("min", 0.0), b.const("max", 6.0)], output)


class LeakyRelu(Activation):
    """x if x > 0 else slope * x. 2 FLOPs per value."""

    type: ClassVar[str] = "leaky_relu"
    flops_per_output: ClassVar[int] = 2
    shorthand: ClassVar[str] = "slope"

    slope: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("LeakyRelu", inputs, output, alpha=self.slope)


class Elu(Activation):
    """x if x > 0 else alpha * (exp(x) - 1). 3 FLOPs per value."""

    type: ClassVar[str] = "elu"
    flops_per_output: ClassVar[int] = 3
    shorthand: ClassVar[str] = "alpha"

    alpha: Annotated[float, Field(gt=0.0)] = 1.0

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Elu", inputs, output, alpha=self.alpha)


class Selu(Activation):
    """scale * elu(x, alpha) with the self-normalising constants. 4 FLOPs per value."""

    type: ClassVar[str] = "selu"
    flops_per_output: ClassVar[int] = 4

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Selu", inputs, output)  # ONNX's default alpha and gamma are the self-normalising constants


class Gelu(Activation):
    """x * Phi(x) (exact, erf form). 8 FLOPs per value."""

    type: ClassVar[str] = "gelu"
    flops_per_output: ClassVar[int] = 8

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        """0.5 x (1 + erf(x / sqrt 2)), spelled with Erf (the Gelu operator needs opset 20)."""
        erf = b.op("Erf", [b.op("Div", [inputs[0], b.const("sqrt2", 2**0.5)])])
        half_x = b.op("Mul", [inputs[0], b.const("half", 0.5)])
        b.op("Mul", [half_x, b.op("Add", [erf, b.const("one", 1.0)])], output)


class Sigmoid(Activation):
    """1 / (1 + exp(-x)); saturates at both ends. 4 FLOPs per value."""

    type: ClassVar[str] = "sigmoid"
    flops_per_output: ClassVar[int] = 4
    saturating: ClassVar[bool] = True

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Sigmoid", inputs, output)


class Tanh(Activation):
    """tanh(x); saturates at both ends. 5 FLOPs per value."""

    type: ClassVar[str] = "tanh"
    flops_per_output: ClassVar[int] = 5
    saturating: ClassVar[bool] = True

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Tanh", inputs, output)


class Hardswish(Activation):
    """x * relu6(x + 3) / 6, as in MobileNetV3. 4 FLOPs per value."""

    type: ClassVar[str] = "hardswish"
    flops_per_output: ClassVar[int] = 4

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("HardSwish", inputs, output)


class Swish(Activation):
    """x * sigmoid(x) (SiLU). 5 FLOPs per value."""

    type: ClassVar[str] = "swish"
    flops_per_output: ClassVar[int] = 5

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Mul", [inputs[0], b.op("Sigmoid", inputs)], output)


class Softmax(Activation):
    """exp(x) / sum(exp(x)) along the channel axis (axis 0 of the per-sample shape).
    3 FLOPs per value (exp, sum, divide)."""

    type: ClassVar[str] = "softmax"
    flops_per_output: ClassVar[int] = 3
    saturating: ClassVar[bool] = True

    axis: Annotated[int, Field(ge=0, le=3)] = 0

    def to_onnx(self, b, inputs, output, in_shapes, out_shape):
        b.op("Softmax", inputs, output, axis=self.axis + 1)
