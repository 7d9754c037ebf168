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


class Relu6(Activation):
    """min(max(0, x), 6), as in MobileNet. 2 FLOPs per value."""

    type: ClassVar[str] = "relu6"
    flops_per_output: ClassVar[int] = 2


class LeakyRelu(Activation):
    """x if x > 0 else slope * x. 2 FLOPs per value."""

    type: ClassVar[str] = "leaky_relu"
    flops_per_output: ClassVar[int] = 2
    shorthand: ClassVar[str] = "slope"

    slope: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01


class Elu(Activation):
    """x if x > 0 else alpha * (exp(x) - 1). 3 FLOPs per value."""

    type: ClassVar[str] = "elu"
    flops_per_output: ClassVar[int] = 3
    shorthand: ClassVar[str] = "alpha"

    alpha: Annotated[float, Field(gt=0.0)] = 1.0


class Selu(Activation):
    """scale * elu(x, alpha) with the self-normalising constants. 4 FLOPs per value."""

    type: ClassVar[str] = "selu"
    flops_per_output: ClassVar[int] = 4


class Gelu(Activation):
    """x * Phi(x) (exact, erf form). 8 FLOPs per value."""

    type: ClassVar[str] = "gelu"
    flops_per_output: ClassVar[int] = 8


class Sigmoid(Activation):
    """1 / (1 + exp(-x)); saturates at both ends. 4 FLOPs per value."""

    type: ClassVar[str] = "sigmoid"
    flops_per_output: ClassVar[int] = 4
    saturating: ClassVar[bool] = True


class Tanh(Activation):
    """tanh(x); saturates at both ends. 5 FLOPs per value."""

    type: ClassVar[str] = "tanh"
    flops_per_output: ClassVar[int] = 5
    saturating: ClassVar[bool] = True


class Hardswish(Activation):
    """x * relu6(x + 3) / 6, as in MobileNetV3. 4 FLOPs per value."""

    type: ClassVar[str] = "hardswish"
    flops_per_output: ClassVar[int] = 4


class Swish(Activation):
    """x * sigmoid(x) (SiLU). 5 FLOPs per value."""

    type: ClassVar[str] = "swish"
    flops_per_output: ClassVar[int] = 5


class Softmax(Activation):
    """exp(x) / sum(exp(x)) along the channel axis (axis 0 of the per-sample shape).
    3 FLOPs per value (exp, sum, divide)."""

    type: ClassVar[str] = "softmax"
    flops_per_output: ClassVar[int] = 3
    saturating: ClassVar[bool] = True

    axis: Annotated[int, Field(ge=0, le=3)] = 0
