"""The layer catalogue: spec type name -> layer class."""

from __future__ import annotations

import types
from typing import ClassVar

from archcheck.layers import activation, conv, dense, merge, norm, pool, reshape
from archcheck.layers.base import Layer, Shape, ShapeError, Step, fmt_shape


class Input(Layer):
    """The network input (not written in specs: it is the spec's ``input`` shape)."""

    type: ClassVar[str] = "input"
    category = "input"
    weighted = False
    linear = True
    normalises = False
    activation = False
    window = False
    upsamples = False
    global_pool = False
    gate = False
    passes = False
    pointwise = False
    min_inputs: ClassVar[int] = 0
    max_inputs: ClassVar[int] = 0


def _catalogue() -> dict[str, type[Layer]]:
    found: dict[str, type[Layer]] = {}
    for module in (conv, pool, dense, norm, activation, merge, reshape):
        for obj in vars(module).values():
            is_class = isinstance(obj, type) and not isinstance(obj, types.GenericAlias)  # tuple[int, ...] on 3.10
            if is_class and issubclass(obj, Layer) and "type" in vars(obj):
                found[obj.type] = obj
    return dict(sorted(found.items()))


CATALOGUE: dict[str, type[Layer]] = _catalogue()

# Names other tools use, to point people at ours in error messages.
KNOWN_AS = {
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "convolution": "conv", "depthwiseconv": "conv",
    "conv2dtranspose": "convtranspose", "deconv": "convtranspose", "convtranspose2d": "convtranspose",
    "linear": "dense", "fc": "dense", "fullyconnected": "dense", "bn": "batchnorm", "batchnorm2d": "batchnorm",
    "batchnormalization": "batchnorm", "maxpool2d": "maxpool", "maxpooling2d": "maxpool", "avgpool2d": "avgpool",
    "averagepooling2d": "avgpool", "globalaveragepooling2d": "globalavgpool",
    **{f"adaptive{op}pool{d}d": f"adaptive{op}pool" for op in ("avg", "max") for d in (1, 2, 3)},
    "adaptiveaveragepooling2d": "adaptiveavgpool", "adaptivemaxpooling2d": "adaptivemaxpool",
    "silu": "swish", "leakyrelu": "leaky_relu", "hard_swish": "hardswish", "localconv": "locallyconnected",
    "locallyconnected2d": "locallyconnected", "zeropadding2d": "zeropad", "pad": "zeropad", "cat": "concat",
    "sum": "add", "mul": "multiply", "upsampling2d": "upsample", "interpolate": "upsample",
}

__all__ = ["CATALOGUE", "KNOWN_AS", "Input", "Layer", "Shape", "ShapeError", "Step", "fmt_shape"]
