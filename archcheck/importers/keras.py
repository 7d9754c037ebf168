"""Keras 3 ``.keras`` files read as a flat archcheck spec, without TensorFlow or Keras.

A ``.keras`` file is a zip of ``config.json`` (the model: a Functional or Sequential model whose
layers carry ``class_name``, ``config`` and ``inbound_nodes``), ``metadata.json`` and
``model.weights.h5`` (each layer's variables under ``layers/<snake_case class>[_N]/vars/<i>``, the
group's ``vars`` carrying the layer's name). The config is read with ``zipfile`` and ``json``; the
weights need ``h5py`` (``pip install 'archcheck[keras]'``) and are skipped, with a header line
saying so, without it.

Keras works channels-last, archcheck channels-first: an input ``(H, W, C)`` becomes ``[C, H, W]``,
a concatenation along ``-1`` becomes one along archcheck's channel axis 0, and kernels move to
PyTorch's layouts. A Flatten of an ``(H, W, C)`` map orders its values ``h, w, c`` where archcheck's
orders them ``c, h, w``: the Dense that reads it gets its kernel's rows permuted, so both compute
the same function. Layers archcheck cannot express are all collected and refused in one error.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import zipfile
from pathlib import Path

from archcheck.errors import ArchcheckError
from archcheck.importers import Imported

MAX_CONFIG = 32 * 2**20  # bytes of config.json: a 5,000-layer model's is a few MiB
MAX_WEIGHTS = 8 * 2**30  # bytes of model.weights.h5, uncompressed
MAX_MEMBERS = 10_000
MAX_LAYERS = 50_000  # the spec language's limit
MAX_DIM = 2**31  # a size along one axis
INSTALL = "pip install 'archcheck[keras]' (h5py)"
REFUSED_FIX = ("replace these layers in the Keras model with ones archcheck's catalogue covers (README, *Layer "
               "catalogue*), or write the spec by hand from the imported part")


class KerasError(ArchcheckError):
    """A ``.keras`` file archcheck cannot read."""


def _snake(name: str) -> str:
    """Keras' ``to_snake_case``: the weight file's group for a layer class (``Conv2D`` -> ``conv2d``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _tuple(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def _one(values: tuple):
    """One number when every axis agrees, as a spec would write it."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else list(values)


class _Refused(Exception):
    """A layer (or a configuration of one) archcheck cannot express; ``reason`` says which part."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------------- the zip


def _open(path) -> tuple[zipfile.ZipFile, dict, dict]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise KerasError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from None
    if magic.startswith(b"\x89HDF"):
        raise KerasError(f"{path} is an HDF5 file (a Keras 2 `.h5` model), not a Keras 3 `.keras` zip",
                         "load it in Keras and save it again with `model.save('model.keras')`")
    try:
        zf = zipfile.ZipFile(path)
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise KerasError(f"{path} is not a zip archive ({exc}); a `.keras` file is a zip of config.json, "
                         "metadata.json and model.weights.h5", "save the model with `model.save('model.keras')`"
                         ) from None
    if len(members) > MAX_MEMBERS:
        raise KerasError(f"{path} holds {len(members):,} members; a `.keras` file holds three",
                         "save the model with `model.save('model.keras')`")
    names = {m.filename: m for m in members}
    if "config.json" not in names:
        listed = ", ".join(sorted(names)[:5]) or "nothing"
        raise KerasError(f"{path} has no config.json (it holds {listed}); it is not a Keras 3 `.keras` file",
                         "save the model with `model.save('model.keras')` (Keras 3)")
    config = _json(zf, names["config.json"], path)
    metadata = _json(zf, names["metadata.json"], path) if "metadata.json" in names else {}
    return zf, config, metadata if isinstance(metadata, dict) else {}


def _bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path) -> bytes:
    """A member's bytes, refused before decompression when its stated size is over ``limit`` and
    while decompressing when it grows past it (the stated size can lie)."""
    if info.file_size > limit:
        raise KerasError(f"{path}: {info.filename} would be {info.file_size:,} bytes uncompressed, more than the "
                         f"{limit:,} archcheck reads", "check the file: a model's config is a few MiB at most")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise KerasError(f"{path}: cannot read {info.filename} from the zip ({exc})",
                         "save the model again with `model.save('model.keras')`") from None
    if len(data) > limit:
        raise KerasError(f"{path}: {info.filename} decompresses to more than {limit:,} bytes (its header says "
                         f"{info.file_size:,}): refused as a zip bomb", "check where the file came from")
    return data


def _json(zf, info, path):
    data = _bounded(zf, info, MAX_CONFIG, path)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KerasError(f"{path}: {info.filename} is not JSON ({exc})",
                         "save the model again with `model.save('model.keras')`") from None
    except RecursionError:
        raise KerasError(f"{path}: {info.filename} is nested too deeply to be a model's config",
                         "check where the file came from") from None


# ----------------------------------------------------------------------------------------- the layer graph


class _KLayer:
    """One Keras layer: its class, config, the layers it reads and its input shape (channels-last, no batch)."""

    def __init__(self, cls: str, name: str, config: dict, inbound: list[str], in_shapes: list | None,
                 where: str = ""):
        self.cls, self.name, self.config, self.inbound, self.in_shapes = cls, name, config, inbound, in_shapes
        self.where = where + name  # inside a model used as a layer: `model/layer`
        self.op = False  # an operation written on tensors (`x + 3.0`), saved as a layer of keras.src.ops
        self.constants: list = []  # the numbers among its arguments


def _tensors(value, found: list, constants: list | None = None) -> None:
    """The ``keras_history`` of every Keras tensor in a node's args, in order (and, given ``constants``,
    the numbers among them: an operation such as ``x + 3.0``)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config") if isinstance(value.get("config"), dict) else {}
            found.append((cfg.get("keras_history"), cfg.get("shape")))
            return
        for v in value.values():
            _tensors(v, found)
    elif isinstance(value, list):
        for v in value:
            _tensors(v, found, constants)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and constants is not None:
        constants.append(value)


def _shape(value):
    """A batch shape ``[None, ...]`` without its batch axis; None unless every size is a whole number
    (or None, unknown) within archcheck's bounds."""
    if isinstance(value, list) and value and all(d is None or (type(d) is int and 1 <= d <= MAX_DIM) for d in value):
        return tuple(value[1:])
    return None


def _build_shapes(entry: dict) -> list | None:
    build = entry.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if isinstance(shape, list) and shape and isinstance(shape[0], list):
        return [_shape(s) for s in shape]
    return [_shape(shape)] if shape is not None else None


def _inbound(entry: dict, name: str, refused: dict) -> tuple[list[str], list, list]:
    nodes = entry.get("inbound_nodes") or []
    if not isinstance(nodes, list):
        raise KerasError(f"layer '{name}': inbound_nodes is {type(nodes).__name__}, expected a list",
                         "save the model again with `model.save('model.keras')`")
    if len(nodes) > 1:
        refused.setdefault("a layer called more than once (shared weights)", []).append(name)
    if not nodes:
        return [], [], []
    node = nodes[0]
    found: list = []
    constants: list = []
    if isinstance(node, list):  # Keras 2's format: [[layer, node, tensor, kwargs], ...]
        found = [(item[:3], None) for item in node if isinstance(item, list) and len(item) >= 3]
    elif isinstance(node, dict):
        _tensors(node.get("args"), found, constants)
        _tensors(node.get("kwargs"), found)
    names, shapes = [], []
    for history, shape in found:
        if not (isinstance(history, list) and len(history) >= 3 and isinstance(history[0], str)):
            raise KerasError(f"layer '{name}': an input has no readable keras_history ({history!r})",
                             "save the model again with `model.save('model.keras')`")
        if history[1] != 0 or history[2] != 0:
            refused.setdefault("reads a second call or a second output of a layer", []).append(name)
        names.append(history[0])
        shapes.append(_shape(shape))
    return names, shapes, constants


MODELS = ("Functional", "Sequential", "Model")
MAX_NESTING = 8  # models inside models


def _model(config, path) -> tuple[str, list[_KLayer], list[str], dict]:
    """The model's name, its layers in a valid order (models used as layers inlined), its output layer
    names, and refused structure."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise KerasError(f"{path}: config.json does not describe a model (no `config` mapping)",
                         "save the model with `model.save('model.keras')`")
    refused: dict[str, list[str]] = {}
    alias: dict[str, str] = {}  # a nested model's name -> its output layer; its input layer -> what feeds it
    layers: list[_KLayer] = []
    outputs = _collect(config, None, layers, alias, refused, path, 0)
    if layers[0].cls != "InputLayer":
        body = config["config"]
        shape = body.get("build_input_shape") or layers[0].config.get("batch_input_shape") or \
            layers[0].config.get("batch_shape")
        if _shape(shape) is None:
            raise KerasError(f"{path}: the Sequential model has no input shape (it was never built)",
                             "build it first: `model.build((None, H, W, C))` or start it with keras.Input")
        layers.insert(0, _KLayer("InputLayer", "input_layer", {"batch_shape": shape}, [], None))
        layers[1].inbound = ["input_layer"]
    by_name: dict[str, _KLayer] = {}
    for layer in layers:
        if layer.name in by_name or layer.name in alias:
            raise KerasError(f"{path}: two layers are named '{layer.name}'", "give every layer a unique name")
        by_name[layer.name] = layer

    def resolve(name):
        for _ in range(MAX_NESTING + 2):
            if not isinstance(name, str) or name not in alias:
                return name
            name = alias[name]
        return name

    for layer in layers:
        layer.inbound = [resolve(src) for src in layer.inbound]
        for src in layer.inbound:
            if src not in by_name:
                raise KerasError(f"{path}: layer '{layer.name}' reads '{src}', which is not a layer of the model",
                                 "save the model again with `model.save('model.keras')`")
    outputs = [resolve(o) for o in outputs]
    for o in outputs:
        if not isinstance(o, str) or o not in by_name:
            raise KerasError(f"{path}: the model's output '{o}' is not one of its layers",
                             "save the model again with `model.save('model.keras')`")
    return str(config["config"].get("name") or "keras_model"), _fused(_ordered(layers, path), outputs), outputs, \
        refused


def _fused(layers: list[_KLayer], outputs: list[str]) -> list[_KLayer]:
    """``ReLU(6.0)(x + 3.0) * (1 / 6)``, Keras' MobileNetV3 hard sigmoid written with operations on
    constants, as one ``HardSigmoid`` layer (archcheck's hardsigmoid is that function)."""
    readers: dict[str, list[_KLayer]] = {}
    for layer in layers:
        for src in layer.inbound:
            readers.setdefault(src, []).append(layer)

    def only_reader(layer):
        found = readers.get(layer.name, [])
        return found[0] if len(found) == 1 and layer.name not in outputs else None

    dropped = set()
    for add in layers:
        if not (add.op and add.cls == "Add" and add.constants == [3.0] and len(add.inbound) == 1):
            continue
        relu = only_reader(add)
        if relu is None or relu.cls != "ReLU" or relu.config.get("max_value") != 6 or \
                relu.config.get("negative_slope") or relu.config.get("threshold"):
            continue
        mul = only_reader(relu)
        if mul is None or not (mul.op and mul.cls == "Multiply" and len(mul.inbound) == 1 and
                               len(mul.constants) == 1 and abs(mul.constants[0] - 1 / 6) < 1e-6):
            continue
        mul.cls, mul.inbound, mul.op, mul.constants = "HardSigmoid", add.inbound, False, []
        dropped |= {add.name, relu.name}
    return [layer for layer in layers if layer.name not in dropped]


def _collect(config, feeds: list[str] | None, layers: list, alias: dict, refused: dict, path, depth: int,
             where: str = "") -> list:
    """Append a (possibly nested) model's layers; return its output layer names. ``feeds``: for a model used
    as a layer, the layers it reads (its input layers become aliases of them)."""
    kind, body = config.get("class_name"), config.get("config")
    raw = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw:
        raise KerasError(f"{path}: the model ({kind}) lists no layers", "save a built model")
    if len(raw) + len(layers) > MAX_LAYERS:
        raise KerasError(f"{path}: the model lists more than {MAX_LAYERS:,} layers, the most archcheck reads",
                         "check the file")
    sequential = kind == "Sequential"
    first = len(layers)
    inputs = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise KerasError(f"{path}: layer {i + 1} of the model is not a mapping with `class_name` and `config`",
                             "save the model again with `model.save('model.keras')`")
        name = entry.get("name") or entry["config"].get("name")
        if not isinstance(name, str) or not name:
            raise KerasError(f"{path}: layer {i + 1} ({entry.get('class_name')}) has no name",
                             "save the model again with `model.save('model.keras')`")
        cls = str(entry.get("class_name"))
        previous = layers[-1].name if len(layers) > first else None
        constants = []
        if sequential:
            inbound = [previous] if previous else list(feeds or [])
            shapes = _build_shapes(entry)
        else:
            inbound, shapes, constants = _inbound(entry, name, refused)
            shapes = _build_shapes(entry) or shapes
        if cls == "InputLayer" and feeds is not None:  # a nested model's input: what feeds the model
            inputs.append(name)
            continue
        if cls in MODELS:
            if depth >= MAX_NESTING:
                raise KerasError(f"{path}: models are nested more than {MAX_NESTING} deep", "check the file")
            inner = _collect({"class_name": cls, "config": entry["config"]}, inbound, layers, alias, refused, path,
                             depth + 1, f"{where}{name}/")
            if len(inner) != 1:
                refused.setdefault("a model used as a layer with several outputs", []).append(name)
            alias[name] = inner[0]
            continue
        layers.append(_KLayer(cls, name, entry["config"], inbound, shapes, where))
        layers[-1].op = str(entry.get("module", "")).startswith("keras.src.ops")
        layers[-1].constants = constants
    if feeds is not None:
        if not sequential:
            names = [ref[0] if isinstance(ref, list) else ref for ref in _refs(body.get("input_layers"))]
            inputs = [n for n in names if isinstance(n, str)] or inputs
        if len(inputs) > len(feeds):
            refused.setdefault("a model used as a layer with more inputs than it is given", []).append(
                str(body.get("name")))
        alias.update(zip(inputs, feeds))
    if sequential:
        return [layers[-1].name] if len(layers) > first else list(feeds or [])
    return [ref[0] if isinstance(ref, list) and ref else ref for ref in _refs(body.get("output_layers"))] or \
        [layers[-1].name]


def _refs(refs) -> list:
    """A Functional model's ``input_layers``/``output_layers``: ``[name, 0, 0]`` for one, a list of those for more."""
    refs = refs or []
    return [refs] if refs and isinstance(refs[0], str) else refs


def _ordered(layers: list[_KLayer], path) -> list[_KLayer]:
    """The layers with every layer after the ones it reads (Kahn's algorithm); a cycle is named."""
    waiting = {layer.name: len(set(layer.inbound)) for layer in layers}
    readers: dict[str, list[_KLayer]] = {}
    for layer in layers:
        for src in set(layer.inbound):
            readers.setdefault(src, []).append(layer)
    ready = [layer for layer in layers if not waiting[layer.name]]
    order = []
    while ready:
        layer = ready.pop(0)
        order.append(layer)
        for r in readers.get(layer.name, []):
            waiting[r.name] -= 1
            if not waiting[r.name]:
                ready.append(r)
    if len(order) < len(layers):
        stuck = [layer.name for layer in layers if waiting[layer.name]]
        shown = ", ".join(f"'{n}'" for n in stuck[:8]) + (", ..." if len(stuck) > 8 else "")
        raise KerasError(f"{path}: the layers {shown} read each other in a cycle; a model's layers form a graph "
                         "without cycles", "check where the file came from: Keras never saves a cycle")
    return order


# ------------------------------------------------------------------------------------------ layer by layer

ACTIVATIONS = {
    "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "elu": "elu",
    "selu": "selu", "gelu": "gelu", "swish": "swish", "silu": "swish", "hard_swish": "hardswish",
    "hard_silu": "hardswish", "hard_sigmoid": "hardsigmoid", "mish": "mish", "leaky_relu": "leaky_relu",
}
ACTIVATION_ARGS = {"leaky_relu": {"slope": 0.2}}  # keras.activations.leaky_relu's default negative slope
POOLS = {f"{op}Pooling{d}D": kind for op, kind in (("Max", "maxpool"), ("Average", "avgpool")) for d in (1, 2, 3)}
POOLS.update({f"{op}Pool{d}D": POOLS[f"{op}Pooling{d}D"] for op in ("Max", "Average") for d in (1, 2, 3)})
GLOBAL_POOLS = {f"Global{op}Pooling{d}D": kind for op, kind in (("Max", "globalmaxpool"), ("Average", "globalavgpool"))
                for d in (1, 2, 3)}
GLOBAL_POOLS.update({f"Global{op}Pool{d}D": GLOBAL_POOLS[f"Global{op}Pooling{d}D"] for op in ("Max", "Average")
                     for d in (1, 2, 3)})
DROPOUTS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")  # identities at inference
ELEMENTWISE = (*DROPOUTS, "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax")
PREPROCESSING = ("Rescaling", "Normalization")


def _activation(value) -> tuple[str, dict] | None:
    """archcheck's (type, args) for a Keras activation name; None for ``linear``."""
    if value in (None, "linear"):
        return None
    if isinstance(value, dict):  # a serialised function: {"class_name": "function", "config": "relu"}
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    if value not in ACTIVATIONS:
        raise _Refused(f"activation '{value}'")
    kind = ACTIVATIONS[value]
    return kind, dict(ACTIVATION_ARGS.get(kind, {}))


def _same_order(shape) -> bool:
    """Whether a channels-last shape holds its values in the same order as archcheck's channels-first one."""
    return len(shape) == 1 or shape[-1] == 1 or math.prod(shape[:-1]) == 1


def _channels_first(shape) -> list:
    return [shape[-1], *shape[:-1]]


def _flat_order(shape):
    """For each value of archcheck's flatten of a channels-last ``shape`` map, its index in Keras' flatten."""
    import numpy as np

    rank = len(shape)
    return np.arange(math.prod(shape)).reshape(shape).transpose(rank - 1, *range(rank - 1)).ravel()


def _kernel(w):
    """A Keras convolution kernel ``(*k, in, out)`` in PyTorch's layout ``(out, in, *k)``; the same move takes
    a transposed convolution's ``(*k, out, in)`` to PyTorch's ``(in, out, *k)``."""
    rank = w.ndim - 2
    return w.transpose(rank + 1, rank, *range(rank))


class _Converter:
    def __init__(self, given=None):
        self.given = given  # the input shape the caller gives, channels-first
        self.layers: list[dict] = []
        self.origin: dict[str, str] = {}
        self.taken = {"input"}
        self.out: dict[str, str] = {}  # Keras layer -> the archcheck layer holding its output
        self.flat: dict[str, tuple] = {}  # Keras layer -> the channels-last map whose Keras flatten it holds
        self.convert: dict[str, tuple] = {}  # Keras layer -> (number of variables, arrays -> archcheck weights)
        self.notes: list[str] = []
        self.input_shape: tuple | None = None
        self.known: dict[str, tuple] = {}  # archcheck layer -> its shape, once propagated

    def unique(self, name: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:100] or "layer"
        base, n = name, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def add(self, kl: _KLayer, kind: str, args: dict, inputs: list[str], name: str | None = None) -> str:
        name = self.unique(name or kl.name)
        self.layers.append({kind: args, "name": name, "inputs": inputs})
        self.origin[name] = kl.where
        return name

    def activation(self, kl: _KLayer, src: str, value) -> str:
        act = _activation(value)
        return src if act is None else self.add(kl, act[0], act[1], [src], f"{kl.name}_{act[0]}")

    def weights(self, kl: _KLayer, count: int, fn) -> None:
        self.convert[kl.name] = (count, fn)

    # ------------------------------------------------------------------ one Keras layer
    def layer(self, kl: _KLayer) -> None:
        cfg = kl.config
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise _Refused(f"data_format '{cfg.get('data_format')}' (archcheck converts channels-last models)")
        srcs = [self.out[s] for s in kl.inbound]
        flat = [self.flat.get(s) for s in kl.inbound]
        cls = kl.cls
        if kl.op and kl.constants:
            raise _Refused(f"an operation on a constant ({cls.lower()} with {kl.constants}); archcheck "
                           "fuses only MobileNetV3's hard sigmoid, relu6(x + 3) / 6")
        if cls == "InputLayer":
            self.out[kl.name] = self.input(kl)
            return
        if cls in PREPROCESSING:
            self.out[kl.name] = self.preprocessing(kl, srcs)
            return
        if cls in ELEMENTWISE:  # a Flatten's order passes through them to the Dense that reads it
            out = self.elementwise(kl, srcs[0])
            if flat[0] is not None:
                self.flat[kl.name] = flat[0]
            self.out[kl.name] = out
            return
        if any(f is not None for f in flat) and cls != "Dense":
            raise _Refused("reads a Flatten of a channels-last map, whose values Keras orders (h, w, c) and "
                           "archcheck (c, h, w); only a Dense (after Dropout or activations) can read it")
        method = getattr(self, f"k_{cls}", None)
        if method is None:
            kind = POOLS.get(cls) or GLOBAL_POOLS.get(cls)
            if kind is None:
                raise _Refused("")
            method = self.pool if cls in POOLS else self.global_pool
        self.out[kl.name] = method(kl, srcs, self.shape_of(kl))

    def shape_of(self, kl: _KLayer) -> tuple:
        """The layer's (first) input shape, channels-last: from the config, else from archcheck's own
        propagation of the layers converted so far (a Sequential model records it only for layers
        with weights)."""
        shape = kl.in_shapes[0] if kl.in_shapes else None
        if shape and all(isinstance(d, int) and d >= 1 for d in shape):
            return tuple(shape)
        src = self.out[kl.inbound[0]]
        if src not in self.known:
            self.known = self.propagated()
        shape = self.known[src]
        return tuple(shape) if len(shape) == 1 else (*shape[1:], shape[0])

    def propagated(self) -> dict[str, tuple]:
        from archcheck.graph import build_graph
        from archcheck.propagate import propagate
        from archcheck.spec import expand
        from archcheck.yamlsrc import load_text

        shapes = {"input": tuple(_channels_first(self.input_shape))}
        if self.layers:
            doc = {"input": shapes["input"], "layers": self.layers}
            try:
                analysis = propagate(build_graph(expand(load_text(json.dumps(doc), "<keras>"), "<keras>")))
            except ArchcheckError as exc:
                raise _Refused(f"its input's shape is unknown: the layers before it do not propagate ({exc})"
                               ) from None
            shapes.update({name: tuple(info.shape) for name, info in analysis.layers.items()})
        return shapes

    def input(self, kl: _KLayer) -> str:
        """The input shape, channels-last; sizes the model leaves open (``keras.Input((None, None, 3))``)
        come from ``given``, archcheck's channels-first shape."""
        if self.input_shape is not None:
            raise _Refused("a second input (archcheck's networks have one input)")
        shape = _shape(kl.config.get("batch_shape") or kl.config.get("batch_input_shape"))
        if not shape or len(shape) > 4:
            raise _Refused(f"input shape {shape} (archcheck takes [F], [C, L], [C, H, W] or [C, D, H, W])")
        if self.given is not None:
            given = tuple(self.given[1:]) + (self.given[0],) if len(self.given) > 1 else tuple(self.given)
            if len(given) != len(shape) or any(d is not None and d != g for d, g in zip(shape, given)):
                raise _Refused(f"input shape {shape} (channels-last) does not agree with the given "
                               f"{list(self.given)} (channels-first)")
            shape = given
        if None in shape:
            open_ = "x".join("?" if d is None else str(d) for d in shape)
            raise _Refused(f"input shape {open_} leaves sizes open (give them: read_keras(path, "
                           f"input_shape=[C, H, W]), channels-first)")
        self.input_shape = tuple(shape)
        self.origin["input"] = kl.name
        return "input"

    def preprocessing(self, kl: _KLayer, srcs: list[str]) -> str:
        if srcs != ["input"]:
            raise _Refused("preprocessing inside the network (archcheck takes it only on the input)")
        cfg = kl.config
        what = (f"scale {cfg.get('scale')}, offset {cfg.get('offset')}" if kl.cls == "Rescaling"
                else f"mean {cfg.get('mean')}, variance {cfg.get('variance')}")
        self.notes.append(f"{kl.cls} '{kl.name}' ({what}) is preprocessing and was left out: feed archcheck "
                          "data that is already preprocessed")
        self.convert[kl.name] = (None, lambda arrays: {})
        return srcs[0]

    def elementwise(self, kl: _KLayer, src: str) -> str:
        cfg, cls = kl.config, kl.cls
        if cls in DROPOUTS:
            return self.add(kl, "dropout", {"rate": cfg.get("rate", 0.5)}, [src])
        if cls == "Activation":
            act = _activation(cfg.get("activation"))
            return self.add(kl, "identity", {}, [src]) if act is None else self.add(kl, act[0], act[1], [src])
        if cls == "ReLU":
            top, slope, threshold = cfg.get("max_value"), cfg.get("negative_slope") or 0, cfg.get("threshold") or 0
            if threshold:
                raise _Refused(f"threshold {threshold}")
            if top is None:
                return self.add(kl, "leaky_relu", {"slope": slope}, [src]) if slope else self.add(kl, "relu", {}, [src])
            if top == 6 and not slope:
                return self.add(kl, "relu6", {}, [src])
            raise _Refused(f"max_value {top} with negative_slope {slope} (archcheck has relu, relu6, leaky_relu)")
        if cls == "LeakyReLU":
            slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
            return self.add(kl, "leaky_relu", {"slope": slope}, [src])
        if cls == "ELU":
            return self.add(kl, "elu", {"alpha": cfg.get("alpha", 1.0)}, [src])
        axis = cfg.get("axis", -1)  # Softmax
        if axis not in (-1, [-1]):
            raise _Refused(f"softmax along axis {axis} (archcheck's softmax is along the channels, Keras' -1)")
        return self.add(kl, "softmax", {}, [src])

    # ------------------------------------------------------------------ convolutions
    def window(self, kl: _KLayer, rank: int, pool: bool = False) -> dict:
        """kernel, stride, dilation and padding as archcheck writes them."""
        cfg = kl.config
        kernel = _tuple(cfg["pool_size"] if pool else cfg["kernel_size"], rank)
        stride = _tuple(cfg.get("strides") or kernel, rank)
        padding = cfg.get("padding", "valid")
        causal = padding == "causal" and rank == 1 and not pool
        if padding not in ("valid", "same") and not causal:
            raise _Refused(f"padding '{padding}' (archcheck converts 'valid' and 'same', and 'causal' in 1-D)")
        args = {"kernel": _one(kernel)}
        if stride != (kernel if pool else (1,) * rank):  # archcheck's defaults: the kernel for pooling, else 1
            args["stride"] = _one(stride)
        dilation = (1,) * rank if pool else _tuple(cfg.get("dilation_rate", 1), rank)
        if any(d != 1 for d in dilation):
            args["dilation"] = _one(dilation)
        if padding == "same":
            args["padding"] = "same"
        elif causal:  # every output sees only the present and the past: the whole dilated window before
            args["padding"] = [[dilation[0] * (kernel[0] - 1), 0]]
        return args

    def conv(self, kl: _KLayer, srcs, shape) -> str:
        cfg = kl.config
        args = {"filters": cfg["filters"], **self.window(kl, len(shape) - 1)}
        groups = cfg.get("groups", 1)
        if groups != 1:
            args["groups"] = groups
        bias = cfg.get("use_bias", True)
        if not bias:
            args["bias"] = False
        name = self.add(kl, "conv", args, srcs)
        self.weights(kl, 1 + bias, lambda a: {f"{name}.weight": _kernel(a[0]),
                                              **({f"{name}.bias": a[1]} if bias else {})})
        return self.activation(kl, name, cfg.get("activation"))

    k_Conv1D = k_Conv2D = k_Conv3D = k_Convolution1D = k_Convolution2D = k_Convolution3D = conv

    def depthwise(self, kl: _KLayer, srcs, shape, name: str | None = None, bias: bool | None = None):
        """A depthwise convolution: archcheck's conv with ``groups: depthwise`` and ``in x multiplier`` filters.
        Keras' kernel ``(*k, in, multiplier)`` becomes ``(in * multiplier, 1, *k)``: output channel
        ``c * multiplier + m`` in both."""
        cfg = kl.config
        channels, mult = shape[-1], cfg.get("depth_multiplier", 1)
        bias = cfg.get("use_bias", True) if bias is None else bias
        args = {"filters": channels * mult, **self.window(kl, len(shape) - 1), "groups": "depthwise"}
        if not bias:
            args["bias"] = False
        name = self.add(kl, "conv", args, srcs, name)

        def weight(w):
            rank = w.ndim - 2
            return w.transpose(rank, rank + 1, *range(rank)).reshape(channels * mult, 1, *w.shape[:rank])
        return name, weight, bias

    def k_DepthwiseConv2D(self, kl, srcs, shape):
        name, weight, bias = self.depthwise(kl, srcs, shape)
        self.weights(kl, 1 + bias, lambda a: {f"{name}.weight": weight(a[0]),
                                              **({f"{name}.bias": a[1]} if bias else {})})
        return self.activation(kl, name, kl.config.get("activation"))

    k_DepthwiseConv1D = k_DepthwiseConv2D

    def k_SeparableConv2D(self, kl, srcs, shape):
        """A depthwise convolution (no bias) then a 1x1 convolution: the two stages Keras computes."""
        cfg = kl.config
        dw, weight, _ = self.depthwise(kl, srcs, shape, f"{kl.name}_depthwise", bias=False)
        bias = cfg.get("use_bias", True)
        args = {"filters": cfg["filters"], "kernel": 1} | ({} if bias else {"bias": False})
        pw = self.add(kl, "conv", args, [dw])
        self.weights(kl, 2 + bias, lambda a: {f"{dw}.weight": weight(a[0]), f"{pw}.weight": _kernel(a[1]),
                                              **({f"{pw}.bias": a[2]} if bias else {})})
        return self.activation(kl, pw, cfg.get("activation"))

    k_SeparableConv1D = k_SeparableConv2D

    def transposed(self, kl, srcs, shape) -> str:
        """Keras' output size is ``n * s`` for 'same' and ``n * s + max(k - s, 0)`` for 'valid'; PyTorch's is
        ``(n - 1) s + k - pads + output_padding``: the pads (Keras crops the smaller half before) or the
        output padding make up the difference."""
        cfg = kl.config
        rank = len(shape) - 1
        if cfg.get("output_padding") is not None:
            raise _Refused(f"output_padding {cfg.get('output_padding')}")
        if any(d != 1 for d in _tuple(cfg.get("dilation_rate", 1), rank)):
            raise _Refused("dilation_rate other than 1")
        kernel, stride = _tuple(cfg["kernel_size"], rank), _tuple(cfg.get("strides", 1), rank)
        same = cfg.get("padding", "valid") == "same"
        pads, extra = [], []
        for k, s in zip(kernel, stride):
            total = k - s if same else min(k - s, 0)
            pads.append([max(total, 0) // 2, max(total, 0) - max(total, 0) // 2])
            extra.append(max(-total, 0))
        bias = cfg.get("use_bias", True)
        args = {"filters": cfg["filters"], "kernel": _one(kernel), "stride": _one(stride)}
        if any(p != [0, 0] for p in pads):
            args["padding"] = pads
        if any(extra):
            args["output_padding"] = _one(extra)
        if not bias:
            args["bias"] = False
        name = self.add(kl, "convtranspose", args, srcs)
        self.weights(kl, 1 + bias, lambda a: {f"{name}.weight": _kernel(a[0]),
                                              **({f"{name}.bias": a[1]} if bias else {})})
        return self.activation(kl, name, cfg.get("activation"))

    k_Conv1DTranspose = k_Conv2DTranspose = k_Conv3DTranspose = transposed

    # ------------------------------------------------------------------ dense and normalisation
    def k_Dense(self, kl, srcs, shape) -> str:
        cfg = kl.config
        if len(shape) > 1:
            return self.pointwise(kl, srcs, shape)
        flat = self.flat.get(kl.inbound[0])
        bias = cfg.get("use_bias", True)
        args = {"units": cfg["units"]} | ({} if bias else {"bias": False})
        name = self.add(kl, "dense", args, srcs)

        def weight(a):
            if flat is not None and math.prod(flat) != len(a[0]):
                raise ValueError(f"a kernel of {len(a[0]):,} rows reads a flattened {flat} map")
            kernel = a[0][_flat_order(flat)] if flat is not None else a[0]
            return {f"{name}.weight": kernel.T, **({f"{name}.bias": a[1]} if bias else {})}
        self.weights(kl, 1 + bias, weight)
        if flat is not None:
            self.notes.append(f"Dense '{kl.name}' reads a Flatten of a {'x'.join(map(str, flat))} channels-last map: "
                              "its kernel's rows are reordered to archcheck's channels-first flatten")
        return self.activation(kl, name, cfg.get("activation"))

    def pointwise(self, kl, srcs, shape) -> str:
        """A Dense on a map mixes the channels at each position: a 1x1 convolution (ConvNeXt's MLP)."""
        cfg = kl.config
        bias = cfg.get("use_bias", True)
        args = {"filters": cfg["units"], "kernel": 1} | ({} if bias else {"bias": False})
        name = self.add(kl, "conv", args, srcs)
        ones = (1,) * (len(shape) - 1)
        self.weights(kl, 1 + bias, lambda a: {f"{name}.weight": a[0].T.reshape(*a[0].T.shape, *ones),
                                              **({f"{name}.bias": a[1]} if bias else {})})
        return self.activation(kl, name, cfg.get("activation"))

    def k_LayerScale(self, kl, srcs, shape) -> str:
        """keras.applications.convnext's LayerScale: a learned scale per channel (``init_values``)."""
        name = self.add(kl, "layerscale", {"init": kl.config.get("init_values", 1e-6)}, srcs)
        self.weights(kl, 1, lambda a: {f"{name}.weight": a[0]})
        return name

    def channel_axis(self, kl, shape) -> None:
        axis = kl.config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(shape)):
            raise _Refused(f"axis {axis} (archcheck normalises the channels, Keras' axis -1)")

    def k_BatchNormalization(self, kl, srcs, shape) -> str:
        """Keras' running statistics follow ``new = m * old + (1 - m) * batch``, PyTorch's ``momentum`` is 1 - m."""
        cfg = kl.config
        self.channel_axis(kl, shape)
        if cfg.get("renorm"):
            raise _Refused("renorm")
        scale, center = cfg.get("scale", True), cfg.get("center", True)
        args = {"eps": cfg.get("epsilon", 1e-3), "momentum": round(1 - cfg.get("momentum", 0.99), 12)}
        if not (scale and center):
            args |= {"affine": False} if not (scale or center) else {"scale": scale, "center": center}
        name = self.add(kl, "batchnorm", args, srcs)
        names = [s for s, kept in (("weight", scale), ("bias", center)) if kept] + ["running_mean", "running_var"]
        self.weights(kl, len(names), lambda a: {f"{name}.{s}": v for s, v in zip(names, a)})
        return name

    def k_LayerNormalization(self, kl, srcs, shape) -> str:
        cfg = kl.config
        rank = len(shape)
        axis = cfg.get("axis", -1)
        axes = sorted(a % (rank + 1) for a in (axis if isinstance(axis, list) else [axis]))
        if cfg.get("rms_scaling"):
            raise _Refused("rms_scaling")
        scale, center = cfg.get("scale", True), cfg.get("center", True)
        if scale != center:
            raise _Refused(f"scale={scale} with center={center} (archcheck's layernorm has both or neither)")
        if axes == [rank]:
            over = "channels"
        elif axes == list(range(1, rank + 1)):
            over = "all"
        else:
            raise _Refused(f"axis {axis} (archcheck normalises the channels or the whole sample)")
        args = {"eps": cfg.get("epsilon", 1e-3)} | ({"over": "all"} if over == "all" and rank > 1 else {})
        if not scale:
            args["affine"] = False
        name = self.add(kl, "layernorm", args, srcs)

        def weight(a):
            if over == "all" and rank > 1:  # per-value weights, stored channels-last
                a = [v.reshape(shape).transpose(rank - 1, *range(rank - 1)) for v in a]
            return {f"{name}.weight": a[0], f"{name}.bias": a[1]} if scale else {}
        self.weights(kl, 2 if scale else 0, weight)
        return name

    # ------------------------------------------------------------------ pooling and reshaping
    def pool(self, kl, srcs, shape) -> str:
        """Keras' average over a 'same' window divides by the values inside the input only."""
        kind = POOLS[kl.cls]
        args = self.window(kl, len(shape) - 1, pool=True)
        if kind == "avgpool" and args.get("padding") == "same":
            args["count_include_pad"] = False
        return self.add(kl, kind, args, srcs)

    def global_pool(self, kl, srcs, shape) -> str:
        keep = bool(kl.config.get("keepdims", False))
        return self.add(kl, GLOBAL_POOLS[kl.cls], {"keepdims": True} if keep else {}, srcs)

    def k_Flatten(self, kl, srcs, shape) -> str:
        name = self.add(kl, "flatten", {}, srcs)
        if not _same_order(shape):
            self.flat[kl.name] = tuple(shape)
        return name

    def k_Reshape(self, kl, srcs, shape) -> str:
        """Keras reshapes its channels-last values, archcheck its channels-first ones: the same only where
        both orders agree (a vector, one channel, or a single position), or into a vector (a Flatten)."""
        target = list(kl.config.get("target_shape") or [])
        total = math.prod(shape)
        if target.count(-1) == 1:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = total // known if known else 0
        if math.prod(target) != total or not target:
            raise _Refused(f"target_shape {kl.config.get('target_shape')} of input {shape}")
        if len(target) == 1:
            return self.k_Flatten(kl, srcs, shape)
        if not (_same_order(shape) and _same_order(target)):
            raise _Refused(f"reshaping {tuple(shape)} to {tuple(target)} reorders channels-last values "
                           "differently from channels-first ones")
        return self.add(kl, "reshape", {"shape": _channels_first(target)}, srcs)

    def k_ZeroPadding1D(self, kl, srcs, shape) -> str:
        rank = len(shape) - 1
        padding = kl.config.get("padding", 1)
        pairs = [list(p) if isinstance(p, (list, tuple)) else [p, p]
                 for p in (_tuple(padding, rank) if rank > 1 or not isinstance(padding, list) else [padding])]
        return self.add(kl, "zeropad", {"padding": pairs if len({tuple(p) for p in pairs}) > 1 or
                                        pairs[0][0] != pairs[0][1] else pairs[0][0]}, srcs)

    k_ZeroPadding2D = k_ZeroPadding3D = k_ZeroPadding1D

    def k_Cropping1D(self, kl, srcs, shape) -> str:
        """Cropping of each spatial axis: a ``slice`` per cropped axis."""
        rank = len(shape) - 1
        cropping = kl.config.get("cropping", 1)
        if rank == 1 and isinstance(cropping, list) and not isinstance(cropping[0], list):
            cropping = [cropping]
        pairs = [list(c) if isinstance(c, (list, tuple)) else [c, c] for c in _tuple(cropping, rank)]
        out = srcs[0]
        cropped = [(axis, a, b) for axis, (a, b) in enumerate(pairs, 1) if a or b]
        for i, (axis, a, b) in enumerate(cropped):
            last = i == len(cropped) - 1
            args = {"axis": axis} | ({"start": a} if a else {}) | ({"stop": -b} if b else {})
            out = self.add(kl, "slice", args, [out], None if last else f"{kl.name}_axis{axis}")
        return out if cropped else self.add(kl, "identity", {}, srcs)

    k_Cropping2D = k_Cropping3D = k_Cropping1D

    def k_UpSampling2D(self, kl, srcs, shape) -> str:
        cfg = kl.config
        mode = cfg.get("interpolation", "nearest")
        modes = {"nearest": "nearest", "bilinear": "linear", "trilinear": "linear"}
        if mode not in modes:
            raise _Refused(f"interpolation '{mode}' (archcheck upsamples nearest or linear)")
        args = {"scale": _one(_tuple(cfg.get("size", 2), len(shape) - 1))}
        return self.add(kl, "upsample", args | ({"mode": "linear"} if modes[mode] == "linear" else {}), srcs)

    k_UpSampling1D = k_UpSampling3D = k_UpSampling2D

    def k_HardSigmoid(self, kl, srcs, shape) -> str:
        return self.add(kl, "hardsigmoid", {}, srcs)

    def k_Identity(self, kl, srcs, shape) -> str:
        return self.add(kl, "identity", {}, srcs)

    # ------------------------------------------------------------------ merges
    def k_Add(self, kl, srcs, shape) -> str:
        return self.add(kl, "add" if kl.cls == "Add" else "multiply", {}, srcs)

    k_Multiply = k_Add

    def k_Concatenate(self, kl, srcs, shape) -> str:
        """Keras' axis -1 (the channels) is archcheck's 0; a spatial axis keeps its number."""
        axis = kl.config.get("axis", -1)
        rank = len(shape)
        if axis == -1 or (rank is not None and axis == rank):
            axis = 0
        elif 1 <= axis < rank or -rank <= axis < -1:
            axis = axis % (rank + 1)
        else:
            raise _Refused(f"axis {axis} of {rank}-axis inputs")
        return self.add(kl, "concat", {"axis": axis} if axis else {}, srcs)


# ------------------------------------------------------------------------------------------------- weights


def _h5_arrays(zf, path, layers: list[_KLayer], limit: int) -> dict[str, list]:
    """Keras layer name -> its variables, in order, from model.weights.h5."""
    import h5py

    info = next((m for m in zf.infolist() if m.filename == "model.weights.h5"), None)
    if info is None:
        raise KerasError(f"{path} holds no model.weights.h5", "save the model with its weights (`model.save`)")
    if info.file_size > limit:
        raise KerasError(f"{path}: model.weights.h5 would be {info.file_size:,} bytes uncompressed, more than the "
                         f"{limit:,} archcheck reads", "check the file")
    with tempfile.TemporaryFile() as tmp:
        try:
            with zf.open(info) as src:
                copied = 0
                while chunk := src.read(2**20):
                    copied += len(chunk)
                    if copied > limit:
                        raise KerasError(f"{path}: model.weights.h5 decompresses to more than {limit:,} bytes "
                                         "(more than its header says): refused as a zip bomb",
                                         "check where the file came from")
                    tmp.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise KerasError(f"{path}: cannot read model.weights.h5 from the zip ({exc})",
                             "save the model again") from None
        tmp.seek(0)
        try:
            h5 = h5py.File(tmp, "r")
        except OSError as exc:
            raise KerasError(f"{path}: model.weights.h5 is not an HDF5 file ({exc})", "save the model again") from None
        with h5:
            groups = h5.get("layers")
            if not isinstance(groups, h5py.Group):
                raise KerasError(f"{path}: model.weights.h5 has no `layers` group (not Keras 3's weights layout)",
                                 "save the model with Keras 3")
            fallback = {}  # Keras' own group names: snake_case class, then _1, _2, ... in layer order
            counts: dict[str, int] = {}
            for layer in layers:
                base = _snake(layer.cls)
                counts[base] = n = counts.get(base, 0) + 1
                fallback[base if n == 1 else f"{base}_{n - 1}"] = layer.name
            found: dict[str, list] = {}
            _h5_walk(h5py, groups, fallback, found, path, 0)
    return found


def _h5_walk(h5py, groups, fallback: dict, found: dict, path, depth: int) -> None:
    """Every layer's variables under ``groups``, a nested model's under its own ``layers`` group."""
    import numpy as np

    for key, group in groups.items():
        if not isinstance(group, h5py.Group):
            continue
        inner = group.get("layers")
        if isinstance(inner, h5py.Group) and depth < MAX_NESTING:
            _h5_walk(h5py, inner, {}, found, path, depth + 1)
        vars_ = group.get("vars")
        if not isinstance(vars_, h5py.Group):
            continue
        owner = vars_.attrs.get("name", fallback.get(key))
        owner = owner.decode() if isinstance(owner, bytes) else owner
        arrays = []
        for i in range(len(vars_)):
            link = vars_.get(str(i), getlink=True)
            ds = vars_.get(str(i)) if isinstance(link, h5py.HardLink) else None
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise KerasError(f"{path}: weights of '{owner}': variable {i} is missing, a link, or not numbers",
                                 "save the model again")
            if ds.external or ds.is_virtual:  # its values would come from other files on this machine
                raise KerasError(f"{path}: weights of '{owner}': variable {i} is stored outside the file",
                                 "save the model again with `model.save('model.keras')`")
            arrays.append(np.asarray(ds[()]))
        if arrays or str(owner) not in found:
            found[str(owner)] = arrays


def _weights(conv: _Converter, arrays: dict[str, list], path) -> dict:
    out = {}
    for kname, (count, fn) in conv.convert.items():
        got = arrays.get(kname, [])
        if count is not None and len(got) != count:
            raise KerasError(f"{path}: layer '{kname}' has {len(got)} weight arrays in model.weights.h5, expected "
                             f"{count}", "save the model again with `model.save('model.keras')`")
        try:
            out.update(fn(got))
        except (ValueError, IndexError, TypeError) as exc:
            raise KerasError(f"{path}: the weights of layer '{kname}' do not fit its config ({exc})",
                             "save the model again with `model.save('model.keras')`") from None
    return out


def h5py_missing() -> str | None:
    """What to install to read weights, or None when h5py is there."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return f"reading a .keras file's weights needs h5py: {INSTALL}"
    return None


# --------------------------------------------------------------------------------------------------- the file


def read_keras(path, weights: bool = True, limit: int = MAX_WEIGHTS, input_shape=None) -> Imported:
    """The model in a Keras 3 ``.keras`` file as a flat spec and, when ``weights`` and h5py is
    installed, its weights in archcheck's names and PyTorch's layouts. ``input_shape`` (channels-first,
    as archcheck's ``input``) fills the sizes a fully convolutional model leaves open."""
    zf, config, metadata = _open(path)
    with zf:
        try:
            name, layers, outputs, refused = _model(config, path)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise KerasError(f"{path}: config.json is not a Keras model's config as Keras 3 writes it "
                             f"({type(exc).__name__}: {exc})", "save the model with `model.save('model.keras')`"
                             ) from None
        conv = _Converter(input_shape)
        for kl in layers:
            try:
                conv.layer(kl)
            except _Refused as exc:
                key = f"{kl.cls}: {exc.reason}" if exc.reason else kl.cls
                refused.setdefault(key, []).append(kl.name)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                refused.setdefault(f"{kl.cls}: a config archcheck cannot read ({type(exc).__name__}: {exc})",
                                   []).append(kl.name)
            if kl.name not in conv.out:  # later layers still get converted, to find every refusal
                conv.out[kl.name] = "input"
        if conv.input_shape is None and not refused:
            refused["no InputLayer"] = [name]
        if refused:
            lines = [f"{what}: {len(names)} layer{'s' if len(names) != 1 else ''} ("
                     + ", ".join(f"'{n}'" for n in names[:5]) + (", ..." if len(names) > 5 else "") + ")"
                     for what, names in sorted(refused.items(), key=lambda kv: -len(kv[1]))]
            raise KerasError(f"{path}: {sum(map(len, refused.values())):,} layers cannot be imported, "
                             f"{len(refused)} kind{'s' if len(refused) != 1 else ''}:"
                             + "".join(f"\n  {line}" for line in lines), REFUSED_FIX)
        doc = {"name": name, "input": _channels_first(conv.input_shape), "layers": conv.layers,
               "metadata": {"source": "keras", "file": Path(path).name,
                            "keras_version": str(metadata.get("keras_version", "unknown"))}}
        if not conv.layers:
            raise KerasError(f"{path}: the model has no layers after its input", "import a model with layers")
        outs = [conv.out[o] for o in outputs]
        if outs != [conv.layers[-1]["name"]]:
            doc["outputs"] = outs
        header = [f"imported from {Path(path).name} (Keras {metadata.get('keras_version', 'unknown')}, "
                  f"{config.get('class_name')} model '{name}') by archcheck",
                  "channels-last converted to channels-first: input and kernels transposed"] + conv.notes
        arrays = {}
        if weights:
            missing = h5py_missing()
            if missing:
                header.append(f"weights not read: {missing}")
            else:
                arrays = _weights(conv, _h5_arrays(zf, path, layers, limit), path)
    return Imported(doc, arrays, conv.origin, header)
