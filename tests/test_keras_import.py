"""The Keras importer against Keras itself: each fixture in tests/data/keras was saved by Keras 3 with its
input batch, its output and its parameter count (tests/data/keras/make.py); the imported spec must
count the same parameters and, run by archcheck's executor on the imported weights, compute the same
output. Then the hostile and malformed files: each is one clear error, never a traceback."""

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from archcheck.errors import ArchcheckError
from archcheck.executor import forward
from archcheck.graph import build_graph
from archcheck.importers.keras import KerasError, read_keras
from archcheck.propagate import param_shapes, propagate
from archcheck.spec import expand
from archcheck.weights import mismatches
from archcheck.yamlsrc import load_text

DATA = Path(__file__).parent / "data" / "keras"
FIXTURES = sorted(p.stem for p in DATA.glob("*.keras"))


def analyse(doc):
    return propagate(build_graph(expand(load_text(json.dumps(doc), "k.json"), "k.json")))


def channels_first(a):
    return np.moveaxis(a, -1, 1) if a.ndim > 2 else a


def test_fixtures_exist():
    assert FIXTURES == ["concat", "conv1d", "conv3d", "depthwise", "nested", "operations", "residual",
                        "sequential_cnn"]


@pytest.mark.parametrize("name", FIXTURES)
def test_params_match_keras(name):
    imported = read_keras(DATA / f"{name}.keras", weights=False)
    analysis = analyse(imported.doc)
    total = sum(int(np.prod(shape)) for shape, _ in param_shapes(analysis).values())
    assert total == int(np.load(DATA / f"{name}.npz")["params"])  # Keras counts batchnorm statistics too
    assert imported.doc["metadata"]["source"] == "keras"
    assert set(imported.origin) >= {entry["name"] for entry in imported.doc["layers"]}


@pytest.mark.parametrize("name", FIXTURES)
def test_outputs_match_keras(name):
    pytest.importorskip("h5py", reason="reading weights needs h5py (pip install 'archcheck[keras]')")
    imported = read_keras(DATA / f"{name}.keras")
    analysis = analyse(imported.doc)
    assert mismatches(analysis, imported.weights) == []
    saved = np.load(DATA / f"{name}.npz")
    params = {k: v.astype(np.float64) for k, v in imported.weights.items()}
    x = saved["xp"] if "xp" in saved else saved["x"]  # after a Rescaling, which the import leaves out
    (y,) = forward(analysis, params, channels_first(x).astype(np.float64)).values()
    expected = channels_first(saved["y"])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_flatten_then_dense_reorders_the_kernel():
    """Keras flattens (6, 6, 6) as h, w, c; archcheck as c, h, w: without reordering the rows the outputs differ."""
    pytest.importorskip("h5py")
    imported = read_keras(DATA / "sequential_cnn.keras")
    analysis = analyse(imported.doc)
    saved = np.load(DATA / "sequential_cnn.npz")
    x = channels_first(saved["x"]).astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in imported.weights.items()}
    naive = dict(params)
    order = np.arange(216).reshape(6, 6, 6).transpose(2, 0, 1).ravel()  # archcheck's index -> Keras'
    naive["dense.weight"] = np.empty_like(params["dense.weight"])
    naive["dense.weight"][:, order] = params["dense.weight"]  # undo the reordering: Keras' rows as they are
    (good,) = forward(analysis, params, x).values()
    (bad,) = forward(analysis, naive, x).values()
    np.testing.assert_allclose(good, saved["y"], rtol=1e-4)
    assert np.abs(bad - saved["y"]).max() > 1e-2
    assert any("reordered" in line for line in imported.header)


def test_sequential_mapping():
    doc = read_keras(DATA / "sequential_cnn.keras", weights=False).doc
    assert doc["input"] == [3, 16, 16]
    assert [next(iter(e)) for e in doc["layers"]] == [
        "conv", "relu", "batchnorm", "relu", "maxpool", "conv", "leaky_relu", "flatten", "dropout", "dense", "softmax"]
    conv, act, bn = doc["layers"][:3]
    assert conv == {"conv": {"filters": 8, "kernel": 3, "padding": "same"}, "name": "conv2d",
                    "inputs": ["input"]}
    assert act["inputs"] == ["conv2d"]
    assert bn["batchnorm"] == {"eps": 0.001, "momentum": 0.01}  # Keras' momentum 0.99 is PyTorch's 0.01
    assert doc["layers"][5]["conv"]["bias"] is False
    assert doc["layers"][6]["leaky_relu"] == {"slope": pytest.approx(0.1)}
    assert "outputs" not in doc


def test_functional_mapping():
    imported = read_keras(DATA / "residual.keras", weights=False)
    layers = {e["name"]: e for e in imported.doc["layers"]}
    assert layers["add"] == {"add": {}, "name": "add", "inputs": ["stem_relu", "conv_b"]}
    assert layers["relu6_a"]["relu6"] == {}
    assert layers["conv_b"]["conv"]["dilation"] == 2
    assert layers["bn_a"]["batchnorm"] == {"eps": 1e-5, "momentum": 0.1}
    assert imported.origin["input"] == "image"
    depthwise = {e["name"]: e for e in read_keras(DATA / "depthwise.keras", weights=False).doc["layers"]}
    assert depthwise["depthwise_conv2d"]["conv"] == {"filters": 12, "kernel": 3, "stride": 2, "padding": "same",
                                                     "groups": "depthwise"}
    assert depthwise["separable_conv2d_depthwise"]["conv"]["bias"] is False
    assert depthwise["separable_conv2d"]["conv"] == {"filters": 10, "kernel": 1}
    assert depthwise["average_pooling2d"]["avgpool"]["count_include_pad"] is False
    concat = {e["name"]: e for e in read_keras(DATA / "concat.keras", weights=False).doc["layers"]}
    assert concat["cat"]["concat"] == {}  # Keras' axis -1 is archcheck's channel axis 0
    assert concat["zero_padding2d"]["zeropad"] == {"padding": [[1, 0], [2, 1]]}
    assert concat["reshape_1"]["reshape"] == {"shape": [12, 1, 1]}
    assert concat["conv2d_transpose"]["convtranspose"]["padding"] == [[0, 1], [0, 1]]


def test_causal_conv1d_pads_the_past():
    first = read_keras(DATA / "conv1d.keras", weights=False).doc["layers"][0]
    assert first["conv"] == {"filters": 4, "kernel": 3, "dilation": 2, "padding": [[4, 0]]}


def test_nested_model_dense_on_a_map_cropping_and_layer_scale():
    imported = read_keras(DATA / "nested.keras", weights=False)
    layers = {e["name"]: e for e in imported.doc["layers"]}
    assert layers["conv2d_5"]["inputs"] == ["input"]  # the nested Sequential's first layer reads the model's input
    assert imported.origin["conv2d_5"] == "stem/conv2d_5"
    assert layers["add"]["inputs"] == ["layer_normalization_1", "layer_scale"]  # `stem` is its last layer
    assert layers["dense_5"]["conv"] == {"filters": 12, "kernel": 1}
    assert layers["layer_scale"]["layerscale"] == {"init": 0.5}
    assert layers["cropping2d_axis1"]["slice"] == {"axis": 1, "start": 1, "stop": -2}
    assert layers["cropping2d"]["slice"] == {"axis": 2, "stop": -3}


def test_hard_sigmoid_operations_and_preprocessing():
    """ReLU(6)(x + 3) * (1 / 6), written with operations on constants, is one hardsigmoid; the Rescaling
    that starts the model is left out with a note."""
    imported = read_keras(DATA / "operations.keras", weights=False)
    kinds = [next(iter(e)) for e in imported.doc["layers"]]
    assert kinds == ["conv", "hardsigmoid", "multiply", "globalavgpool", "dense"]
    assert imported.doc["layers"][0]["inputs"] == ["input"]
    assert any(line.startswith("Rescaling 'rescaling' (scale 0.00784313725490196, offset -1.0) is preprocessing")
               for line in imported.header)


def test_operation_on_another_constant_is_refused(tmp_path):
    with zipfile.ZipFile(DATA / "operations.keras") as zf:
        config = json.loads(zf.read("config.json"))
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Add":
            layer["inbound_nodes"][0]["args"][1] = 2.0
    path = tmp_path / "ops.keras"
    with zipfile.ZipFile(DATA / "operations.keras") as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, json.dumps(config) if info.filename == "config.json" else src.read(info))
    message = error(path).message
    assert "2 layers cannot be imported, 2 kinds:" in message
    assert "Add: an operation on a constant (add with [2.0]); archcheck fuses only MobileNetV3's hard " \
           "sigmoid, relu6(x + 3) / 6: 1 layer ('add" in message
    assert "Multiply: an operation on a constant" in message


def test_without_h5py_the_architecture_still_imports(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    imported = read_keras(DATA / "residual.keras")
    assert imported.weights == {}
    assert any("pip install 'archcheck[keras]'" in line for line in imported.header)
    analyse(imported.doc)


# ----------------------------------------------------------------------------------- malformed and hostile


def rezip(tmp_path, config=None, *, members=None, name="m.keras"):
    """A .keras zip with ``config`` (a dict, or raw text/bytes) in place of the fixture's."""
    path = tmp_path / name
    with zipfile.ZipFile(DATA / "residual.keras") as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json" and config is not None:
                data = config if isinstance(config, (str, bytes)) else json.dumps(config)
            if members is None or info.filename in members:
                out.writestr(info.filename, data)
    return path


def residual_config():
    with zipfile.ZipFile(DATA / "residual.keras") as zf:
        return json.loads(zf.read("config.json"))


def error(path) -> KerasError:
    with pytest.raises(KerasError) as info:
        read_keras(path)
    assert isinstance(info.value, ArchcheckError) and info.value.fix
    return info.value


def test_not_a_zip(tmp_path):
    (tmp_path / "a.keras").write_text("hello")
    assert "is not a zip archive" in error(tmp_path / "a.keras").message
    (tmp_path / "b.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    err = error(tmp_path / "b.keras")
    assert "HDF5 file (a Keras 2 `.h5` model)" in err.message and "model.save('model.keras')" in err.fix
    assert "cannot read" in error(tmp_path / "missing.keras").message


def test_missing_config(tmp_path):
    err = error(rezip(tmp_path, members={"metadata.json"}))
    assert "has no config.json (it holds metadata.json)" in err.message


def test_config_not_json(tmp_path):
    assert "config.json is not JSON" in error(rezip(tmp_path, "{not json")).message
    assert "config.json is not JSON" in error(rezip(tmp_path, b"\xff\xfe")).message
    assert "nested too deeply" in error(rezip(tmp_path, "[" * 100_000 + "]" * 100_000)).message
    assert "does not describe a model" in error(rezip(tmp_path, "[1, 2]")).message


def test_zip_bomb(tmp_path):
    """40 MiB of spaces compress to a few KiB: refused from the size the zip states, before decompressing."""
    err = error(rezip(tmp_path, " " * (40 * 2**20)))
    assert "config.json would be 41,943,040 bytes uncompressed" in err.message


def test_lying_zip_header(tmp_path):
    """A member whose header understates its size is stopped while decompressing, at the limit."""
    path = rezip(tmp_path, " " * (40 * 2**20))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("config.json")
    true_size = (40 * 2**20).to_bytes(4, "little")
    small = (1000).to_bytes(4, "little")
    data = data.replace(true_size, small)  # in both the local and the central header
    path.write_bytes(bytes(data))
    message = error(path).message
    assert "zip bomb" in message or "cannot read config.json" in message
    assert info.file_size == 40 * 2**20


def test_cycle(tmp_path):
    config = residual_config()
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    history = layers["stem"]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
    history[0] = "add"  # stem reads add, which reads stem through the block
    err = error(rezip(tmp_path, config))
    assert "read each other in a cycle" in err.message and "'stem'" in err.message and "'add'" in err.message


def test_unknown_inbound_layer(tmp_path):
    config = residual_config()
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    layers["add"]["inbound_nodes"][0]["args"][0][1]["config"]["keras_history"][0] = "conv_c"
    assert "layer 'add' reads 'conv_c', which is not a layer of the model" in error(rezip(tmp_path, config)).message


def test_duplicate_names(tmp_path):
    config = residual_config()
    config["config"]["layers"][2]["name"] = "stem"
    assert "two layers are named 'stem'" in error(rezip(tmp_path, config)).message


def test_every_unsupported_layer_in_one_error(tmp_path):
    config = residual_config()
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    layers["conv_a"]["class_name"] = "Conv2DLSTM"
    layers["conv_b"]["class_name"] = "Conv2DLSTM"
    layers["act"]["config"]["activation"] = "softplus"
    layers["stem"]["config"]["padding"] = "causal"
    err = error(rezip(tmp_path, config))
    assert err.message.endswith("4 layers cannot be imported, 3 kinds:\n"
                                "  Conv2DLSTM: 2 layers ('conv_a', 'conv_b')\n"
                                "  Conv2D: padding 'causal' (archcheck converts 'valid' and 'same', and 'causal' "
                                "in 1-D): 1 layer ('stem')\n"
                                "  Activation: activation 'softplus': 1 layer ('act')")
    assert "layer catalogue" in err.fix.lower()


def test_malformed_layer_config_is_a_refusal(tmp_path):
    config = residual_config()
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    del layers["conv_a"]["config"]["filters"]
    layers["logits"]["config"]["units"] = "ten"
    message = error(rezip(tmp_path, config)).message
    assert "Conv2D: a config archcheck cannot read (KeyError: 'filters'): 1 layer ('conv_a')" in message


def test_weights_that_do_not_fit(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = rezip(tmp_path)
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("model.weights.h5")
    buffer = io.BytesIO(raw)
    with h5py.File(buffer, "r+") as h5:
        for group in h5["layers"].values():
            if group["vars"].attrs.get("name") == "logits":
                del group["vars"]["1"]
    members = {}
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    assert "layer 'logits' has 1 weight arrays in model.weights.h5, expected 2" in error(path).message
    members["model.weights.h5"] = b"not hdf5"
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    assert "model.weights.h5 is not an HDF5 file" in error(path).message


ODD_VALUES = [None, 0, -1, 1.5, "x", "same", [], {}, [1], [None, 2], {"a": 1}, True, 10**30, "__keras_tensor__",
              [[1, 2], [3, 4]], "input"]


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


@pytest.mark.parametrize("name", ["residual", "sequential_cnn", "nested", "operations"])
def test_mutated_configs_are_errors_not_tracebacks(tmp_path, name):
    """Any value of the config replaced by an odd one: the import succeeds or raises KerasError."""
    import copy
    import random

    rng = random.Random(name)
    with zipfile.ZipFile(DATA / f"{name}.keras") as zf:
        original = json.loads(zf.read("config.json"))
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    for case in range(60):
        config = copy.deepcopy(original)
        for _ in range(rng.randint(1, 3)):
            *parent, key = rng.choice(list(_paths(config))[1:])
            target = config
            for step in parent:
                target = target[step]
            target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        path = tmp_path / f"{case}.keras"
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, json.dumps(config) if member == "config.json" else data)
        try:
            imported = read_keras(path)
        except KerasError:
            continue
        try:
            analyse(imported.doc)
        except ArchcheckError:
            pass


def test_weights_over_the_limit(tmp_path):
    pytest.importorskip("h5py")
    message = error_with(lambda: read_keras(DATA / "residual.keras", limit=1000)).message
    assert "model.weights.h5 would be" in message and "more than the 1,000 archcheck reads" in message


def error_with(call) -> KerasError:
    with pytest.raises(KerasError) as info:
        call()
    return info.value


def test_sequential_built_without_an_input_layer(tmp_path):
    with zipfile.ZipFile(DATA / "sequential_cnn.keras") as zf:
        config = json.loads(zf.read("config.json"))
    config["config"]["layers"] = config["config"]["layers"][1:]
    config["config"]["build_input_shape"] = [None, 16, 16, 3]
    path = rezip(tmp_path, config)
    doc = read_keras(path, weights=False).doc
    assert doc["input"] == [3, 16, 16] and doc["layers"][0]["inputs"] == ["input"]
    del config["config"]["build_input_shape"]
    assert "has no input shape (it was never built)" in error(rezip(tmp_path, config, name="n.keras")).message


def test_channels_first_and_two_inputs_are_refused(tmp_path):
    config = residual_config()
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    layers["conv_a"]["config"]["data_format"] = "channels_first"
    extra = copy_layer(layers["image"], "image2")
    config["config"]["layers"].insert(1, extra)
    message = error(rezip(tmp_path, config)).message
    assert "Conv2D: data_format 'channels_first' (archcheck converts channels-last models): 1 layer ('conv_a')" \
        in message
    assert "InputLayer: a second input (archcheck's networks have one input): 1 layer ('image2')" in message


def copy_layer(layer, name):
    copied = json.loads(json.dumps(layer))
    copied["name"] = copied["config"]["name"] = name
    return copied


def test_weights_stored_outside_the_file_are_refused(tmp_path):
    """An HDF5 dataset may keep its values in another file, or be a link to one: never read."""
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(5, dtype=np.float32).tobytes())
    path = rezip(tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for how in ("external", "link"):
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as h5:
            for group in h5["layers"].values():
                if group["vars"].attrs.get("name") == "logits":
                    del group["vars"]["1"]
                    if how == "external":
                        group["vars"].create_dataset("1", shape=(5,), dtype="float32", external=[(str(secret), 0, 20)])
                    else:
                        group["vars"]["1"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
        out = tmp_path / f"{how}.keras"
        with zipfile.ZipFile(out, "w") as zf:
            for n, data in members.items():
                zf.writestr(n, buffer.getvalue() if n == "model.weights.h5" else data)
        message = error(out).message
        assert ("variable 1 is stored outside the file" if how == "external" else
                "variable 1 is missing, a link, or not numbers") in message


def test_h5py_missing_says_what_to_install(monkeypatch):
    from archcheck.importers.keras import h5py_missing

    monkeypatch.setitem(sys.modules, "h5py", None)
    assert h5py_missing() == "reading a .keras file's weights needs h5py: pip install 'archcheck[keras]' (h5py)"


def test_open_input_sizes_are_given(tmp_path):
    """A fully convolutional model (keras.Input((None, None, C))) imports once its sizes are given."""
    config = residual_config()
    for layer in config["config"]["layers"]:
        layer.pop("build_config", None)  # the shapes Keras recorded at build time would be open too
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, None, None, 4]
    path = rezip(tmp_path, config)
    assert "input shape ?x?x4 leaves sizes open (give them: read_keras(path, input_shape=[C, H, W])" \
        in error(path).message
    imported = read_keras(path, weights=False, input_shape=[4, 12, 12])
    assert imported.doc["input"] == [4, 12, 12]
    total = sum(int(np.prod(shape)) for shape, _ in param_shapes(analyse(imported.doc)).values())
    assert total == int(np.load(DATA / "residual.npz")["params"])
    with pytest.raises(KerasError, match=r"input shape \(None, None, 4\) \(channels-last\) does not agree with "
                                         r"the given \[3, 12, 12\] \(channels-first\)"):
        read_keras(path, weights=False, input_shape=[3, 12, 12])
