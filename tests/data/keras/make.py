"""Make the Keras fixtures: small models saved as .keras, with an input batch, Keras' output and parameter count.

Run with Keras 3 on the NumPy backend (not by the test suite):

    python3.11 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras h5py numpy scipy 'jax[cpu]'
    KERAS_BACKEND=numpy /tmp/kvenv/bin/python tests/data/keras/make.py

Each model NAME gives NAME.keras and NAME.npz (x: the input batch, y: model.predict(x), both
channels-last as Keras has them, params: model.count_params(), and xp: the output of a Rescaling
that starts the model, which is what archcheck's imported network receives). Batchnorm statistics and biases
are randomised so that the comparison sees them.
"""

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

HERE = Path(__file__).parent
rng = np.random.default_rng(0)


def sequential_cnn():
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.MaxPooling2D(),
        layers.Conv2D(6, 3, use_bias=False),
        layers.LeakyReLU(negative_slope=0.1),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ], name="sequential_cnn")


def residual():
    inp = keras.Input((12, 12, 4), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    y = layers.Conv2D(8, 3, padding="same", name="conv_a")(x)
    y = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn_a")(y)
    y = layers.ReLU(max_value=6.0, name="relu6_a")(y)
    y = layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="conv_b")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.Activation("swish", name="act")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(5, name="logits")(x)
    return keras.Model(inp, out, name="residual")


def depthwise():
    inp = keras.Input((15, 15, 6))
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu6")(inp)
    x = layers.SeparableConv2D(10, 3, padding="same", activation="elu")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.LayerNormalization()(x)
    x = layers.GlobalMaxPooling2D(keepdims=True)(x)
    x = layers.Reshape((10,))(x)
    out = layers.Dense(4, activation="sigmoid")(x)
    return keras.Model(inp, out, name="depthwise")


def concat():
    inp = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 1, activation="tanh")(inp)
    b = layers.ZeroPadding2D(((1, 0), (2, 1)))(inp)
    b = layers.Conv2D(5, (2, 4), activation="gelu")(b)
    c = layers.MaxPooling2D(2)(inp)
    c = layers.UpSampling2D(2)(c)
    x = layers.Concatenate(name="cat")([a, b, c])
    g = layers.GlobalAveragePooling2D(keepdims=True)(x)
    g = layers.Dense(12, activation="hard_sigmoid")(layers.Flatten()(g))
    g = layers.Reshape((1, 1, 12))(g)
    x = layers.Multiply()([x, g])
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(3, 2, strides=2)(x)
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Conv2D(2, 3, strides=4)(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="concat")


def conv1d():
    inp = keras.Input((40, 3))
    x = layers.Conv1D(4, 3, padding="causal", dilation_rate=2)(inp)  # WaveNet's: pads 4 before, none after
    x = layers.Conv1D(6, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(3, strides=2, padding="same")(x)
    x = layers.Conv1D(8, 3, groups=2)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out, name="conv1d")


def conv3d():
    inp = keras.Input((6, 8, 8, 2))
    x = layers.Conv3D(4, 3, padding="same", activation="relu")(inp)
    x = layers.AveragePooling3D(2)(x)
    x = layers.Conv3D(4, (1, 3, 3))(x)
    x = layers.GlobalAveragePooling3D()(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out, name="conv3d")


def nested():
    """A Sequential model used as a layer, a Dense on a map (a 1x1 convolution), cropping and ConvNeXt's LayerScale."""
    from keras.src.applications.convnext import LayerScale

    stem = keras.Sequential([layers.Conv2D(6, 2, strides=2), layers.LayerNormalization(epsilon=1e-6)], name="stem")
    inp = keras.Input((18, 18, 3))
    x = stem(inp)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.Dense(12, activation="gelu")(y)
    y = layers.Dense(6)(y)
    y = LayerScale(0.5, 6)(y)
    x = layers.Add()([x, y])
    x = layers.Cropping2D(((1, 2), (0, 3)))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out, name="nested")


def operations():
    """MobileNetV3's hard sigmoid written with operations on constants, ReLU(6)(x + 3) / 6, after a Rescaling
    (preprocessing, which archcheck leaves out: the .npz holds its output as xp)."""
    inp = keras.Input((10, 10, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    gate = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    x = layers.Multiply()([x, gate])
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out, name="operations")


def randomise(model):
    for layer in model.layers:
        values = []
        for v in layer.weights:
            value = np.asarray(v.numpy())
            if "variance" in v.path:
                value = rng.uniform(0.5, 2.0, value.shape)
            elif "gamma" in v.path:
                value = rng.uniform(0.5, 1.5, value.shape)
            elif value.ndim == 1 or "layer_scale" in v.path:
                value = rng.normal(0, 0.3, value.shape)
            values.append(value.astype(np.float32))
        if values:
            layer.set_weights(values)


def save(model, name, batch=2):
    randomise(model)
    x = rng.normal(size=(batch, *model.input_shape[1:])).astype(np.float32)
    y = model.predict(x, verbose=0)
    model.save(HERE / f"{name}.keras")
    extra = {}
    if isinstance(model.layers[1], layers.Rescaling):  # what the network after its preprocessing receives
        extra["xp"] = np.asarray(model.layers[1](x))
    np.savez_compressed(HERE / f"{name}.npz", x=x, y=y, params=model.count_params(), **extra)
    print(name, model.count_params(), os.path.getsize(HERE / f"{name}.keras"), y.shape)


if __name__ == "__main__":
    assert keras.backend.backend() == "numpy", "run with KERAS_BACKEND=numpy"
    keras.utils.set_random_seed(0)  # the same files on every run (layer names follow the order below)
    for make in (sequential_cnn, residual, depthwise, concat, conv1d, conv3d, nested, operations):
        save(make(), make.__name__)
