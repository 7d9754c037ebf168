"""Read an ONNX model as a flat archcheck spec, its weights under archcheck's names, and their origins.

Two passes over the nodes in topological order. The first finds the multi-node patterns exporters write
(``x * Sigmoid(x)`` is swish, Transpose -> LayerNormalization -> Transpose a layernorm over channels,
Reshape -> Transpose -> Reshape a channel shuffle, Pad before Conv, MatMul + Add, ...) by looking back from
each pattern's last node, and marks the nodes it absorbs. The second writes one layer per remaining node
(or pattern), computing each layer's output shape with archcheck's own layer classes, and evaluates
constant subgraphs (initializers, ``Constant``, the ``Shape -> Gather -> Concat`` chains computing a
Reshape target) with NumPy. Every operator that has no layer is collected and reported at once.

The file is distrusted: its size is capped before parsing, external data must stay inside the model's
folder, an initializer's element count is checked against its dims before any array is made, and a
cycle or a tensor nobody produces is refused with a message, never a traceback.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from archcheck.importers import Imported, ImportProblem
from archcheck.spec import INPUT, MAX_NAME

MAX_FILE_BYTES = 2**31  # one protobuf cannot be larger
MAX_ELEMENTS = 2**28  # per initializer: 1 GiB of float32, four times VGG-16's largest weight
MAX_TOTAL_ELEMENTS = 2**30
MAX_NODES = 100_000
BATCH = 1  # the batch size constant-folded shapes use; a leading 1 or 0 of a Reshape target is the batch
NAME_LIMIT = 64

FIX_MODEL = "export the model again (torch.onnx.export, tf2onnx) and check it with onnx.checker.check_model"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportProblem("importing ONNX needs the `onnx` package", "pip install 'archcheck[onnx]'") from None
    return onnx


# -- loading a distrusted file ---------------------------------------------------------------------------

def load(path):
    """The ModelProto of ``path``, with external data read from inside its folder only."""
    onnx = _onnx()
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        if not path.is_file():
            raise ImportProblem(f"{path}: {'not a regular file' if path.exists() else 'no such file'}",
                                "give the path of an .onnx model file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportProblem(f"cannot read {path}: {exc.strerror or exc}",
                            "check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImportProblem(f"{path} is over {MAX_FILE_BYTES:,} bytes, more than one ONNX protobuf can hold",
                            "save large weights as external data next to the model (onnx.save_model(..., "
                            "save_as_external_data=True))")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ImportProblem(f"{path} is not a readable ONNX model: the protobuf does not decode ({exc})",
                            FIX_MODEL + "; a truncated download is a common cause") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ImportProblem(f"{path} holds no ONNX graph (no nodes)", FIX_MODEL)
    _check_text(model, path)
    _check_tensors(model, path)
    return model


def _check_text(model, path: Path) -> None:
    """Names are text: protobuf hands back a string that is not UTF-8 as bytes, which no name can be."""
    g = model.graph
    texts = [model.producer_name, model.producer_version, g.name, *(v.name for v in (*g.input, *g.output)),
             *(t.name for t in g.initializer)]
    for node in g.node:
        texts += [node.name, node.op_type, node.domain, *node.input, *node.output, *(a.name for a in node.attribute)]
    if any(not isinstance(t, str) for t in texts):
        raise ImportProblem(f"{path} holds names that are not UTF-8 text", FIX_MODEL)


def _tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def _check_tensors(model, path: Path) -> None:
    """Element counts from dims, before any array exists; external data inside the model's folder."""
    onnx = _onnx()
    folder = path.resolve().parent
    total = 0
    for t in _tensors(model.graph):
        if any(d < 0 for d in t.dims):
            raise ImportProblem(f"{path}: tensor '{t.name}' has a negative size {list(t.dims)}", FIX_MODEL)
        count = math.prod(t.dims)
        total += count
        if count > MAX_ELEMENTS or total > MAX_TOTAL_ELEMENTS:
            raise ImportProblem(f"{path}: tensor '{t.name}' has {count:,} elements (shape {list(t.dims)}); archcheck "
                                f"reads at most {MAX_ELEMENTS:,} per tensor and {MAX_TOTAL_ELEMENTS:,} in all",
                                "no convolutional network needs weights this large; check the file's origin")
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            where = (folder / info.get("location", "")).resolve()
            if not info.get("location") or not where.is_relative_to(folder) or not where.is_file():
                raise ImportProblem(f"{path}: tensor '{t.name}' keeps its data in '{info.get('location', '')}', "
                                    "which is not a file inside the model's folder",
                                    "keep the external data file next to the model, under its own name")
            try:
                offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
            except ValueError:
                raise ImportProblem(f"{path}: tensor '{t.name}' has an unreadable external data offset or length",
                                    FIX_MODEL) from None
            itemsize = _itemsize(t.data_type)
            end = offset + (length if length >= 0 else count * itemsize)
            if offset < 0 or end > where.stat().st_size or (length >= 0 and length != count * itemsize):
                raise ImportProblem(f"{path}: tensor '{t.name}' needs bytes {offset:,}..{end:,} of '{where.name}', "
                                    "which does not hold them", "copy the complete external data file next to the "
                                    "model")
            with open(where, "rb") as fh:
                fh.seek(offset)
                t.raw_data = fh.read(count * itemsize)
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT


def _itemsize(data_type: int) -> int:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except (KeyError, TypeError):
        return 1


def _array(t, where: str) -> np.ndarray:
    from onnx import numpy_helper

    try:
        return np.asarray(numpy_helper.to_array(t))
    except Exception as exc:  # wrong raw_data length, unknown type, ...: a broken file, never a traceback
        raise ImportProblem(f"{where}: tensor '{t.name}' (shape {list(t.dims)}) cannot be read: {exc}",
                            FIX_MODEL) from None


# -- names -------------------------------------------------------------------------------------------------

def layer_name(node) -> str:
    """A readable archcheck name for a node: torch.onnx's ``/layer1/layer1.0/conv1/Conv`` -> ``layer1_0_conv1``,
    archcheck's ``stage_1.conv_1:Conv`` -> ``stage_1_conv_1``; the output's name when the node has none."""
    raw = node.name or (node.output[0] if node.output else node.op_type)
    raw = re.sub(rf"[:/]{re.escape(node.op_type)}(_\d+)?$", "", raw)
    name = re.sub(r"[^A-Za-z0-9_\-]+", "_", module_path(raw)).strip("_") or node.op_type.lower()
    return name[:NAME_LIMIT]


def module_path(scope: str) -> str:
    """torch.onnx's scope ``/layer1/layer1.0/conv1`` -> ``layer1.0.conv1``, the module's state_dict path: a
    container's children are named with the container's name as prefix (``block`` then ``block.3``), other
    modules by their attribute name."""
    parts: list[str] = []
    for part in (p for p in scope.split("/") if p):
        if parts and part.startswith(parts[-1] + "."):
            parts[-1] = part
        else:
            parts.append(part)
    return ".".join(parts)


class _Names:
    def __init__(self):
        self.taken = {INPUT}

    def unique(self, name: str) -> str:
        base, i = name[:MAX_NAME - 8], 1
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


# -- the graph ---------------------------------------------------------------------------------------------

class _Ref:
    """A tensor a layer makes: the layer's name and its shape without the batch axis."""

    __slots__ = ("name", "shape")

    def __init__(self, name: str, shape: tuple):
        self.name, self.shape = name, tuple(shape)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _order(graph, known: set, where: str) -> list:
    """The nodes in topological order; a cycle or an input nobody produces is refused."""
    producer = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                producer[out] = i
    waiting = [0] * len(graph.node)
    users = defaultdict(list)
    unknown = []
    for i, node in enumerate(graph.node):
        for name in node.input:
            if not name or name in known and name not in producer:
                continue
            if name not in producer:
                unknown.append((node.name or node.op_type, name))
                continue
            waiting[i] += 1
            users[producer[name]].append(i)
    if unknown:
        listed = ", ".join(f"'{t}' (read by node '{n}')" for n, t in unknown[:10])
        raise ImportProblem(f"{where}: {len(unknown)} tensor{'s' if len(unknown) != 1 else ''} read by the graph "
                            f"{'are' if len(unknown) != 1 else 'is'} neither an input, an initializer nor a node's "
                            f"output: {listed}", FIX_MODEL)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) < len(graph.node):
        stuck = [graph.node[i].name or graph.node[i].op_type for i, w in enumerate(waiting) if w][:10]
        raise ImportProblem(f"{where}: the graph has a cycle through {len(graph.node) - len(order)} nodes "
                            f"({', '.join(repr(s) for s in stuck)}); an ONNX graph must be acyclic", FIX_MODEL)
    return [graph.node[i] for i in _file_order(graph, producer)]


def _file_order(graph, producer) -> list:
    """Topological order preferring file order (a depth-first walk from each node in file order)."""
    done, order = set(), []
    for start in range(len(graph.node)):
        stack = [(start, False)]
        while stack:
            i, expanded = stack.pop()
            if i in done:
                continue
            if expanded:
                done.add(i)
                order.append(i)
                continue
            stack.append((i, True))
            for name in reversed(graph.node[i].input):
                j = producer.get(name)
                if j is not None and j not in done:
                    stack.append((j, False))
    return order


# -- the importer ------------------------------------------------------------------------------------------

CATALOGUE_GAP = ("archcheck's layer catalogue has no layer for these operators; if the model is one archcheck "
                 "should read, open an issue with the operator and the layer it computes")
CUSTOM_FIX = "a custom-domain operator has no archcheck layer: export with standard operators only"

# operators evaluated on constants (shapes, weights reshaped by the exporter)
_FOLD = {
    "Identity": lambda a, x: x,
    "Cast": lambda a, x: x.astype(_np_type(a.get("to", 1))),
    "Unsqueeze": lambda a, x, axes=None: np.expand_dims(x, tuple(int(i) for i in (axes if axes is not None
                                                                                  else a["axes"]))),
    "Squeeze": lambda a, x, axes=None: np.squeeze(x, tuple(int(i) for i in (axes if axes is not None
                                                                            else a.get("axes", ()))) or None),
    "Gather": lambda a, x, i: np.take(x, i.astype(np.int64), axis=a.get("axis", 0)),
    "Concat": lambda a, *xs: np.concatenate([np.atleast_1d(x) for x in xs], axis=a.get("axis", 0)),
    "Reshape": lambda a, x, s: x.reshape([x.shape[i] if d == 0 else int(d) for i, d in enumerate(s)]),
    "Transpose": lambda a, x: np.transpose(x, a.get("perm")),
    "Add": lambda a, x, y: x + y, "Sub": lambda a, x, y: x - y, "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x // y if x.dtype.kind in "iu" else x / y,
    "Sqrt": lambda a, x: np.sqrt(x), "Neg": lambda a, x: -x,
    "Slice": lambda a, x, s, e, ax=None, st=None: x[_slices(x, s, e, ax, st)],
}


def _np_type(onnx_type: int):
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(onnx_type)


def _slices(x, starts, ends, axes, steps):
    index = [slice(None)] * x.ndim
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[int(ax)] = slice(int(s), int(min(e, 2**62)) if e >= 0 else int(e), int(st))
    return tuple(index)


def _per_axis(values):
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def _padding(pads, rank: int):
    """ONNX's [b1, b2, ..., a1, a2, ...] -> archcheck's padding argument (a number when it can be)."""
    pads = [int(p) for p in pads] if pads else [0] * 2 * rank
    pairs = list(zip(pads[:rank], pads[rank:]))
    if all(b == a for b, a in pairs):
        return _per_axis([b for b, _ in pairs])
    return [list(p) for p in pairs]


def _f32(value) -> float:
    """A float attribute (stored as float32) as the shortest decimal that is that float32: 1e-06, not 9.99e-07."""
    return float(str(np.float32(value)))


def _per_axis_list(value, rank: int) -> list:
    return list(value) if isinstance(value, list) else [value] * rank


def _scalar(value, default=None):
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    return default


class _Importer:
    def __init__(self, model, file: str):
        self.model, self.file, self.graph = model, file, model.graph
        self.names = _Names()
        self.layers: list[dict] = []
        self.weights: dict = {}
        self.origin: dict = {}
        self.values: dict = {}
        self.unsupported: dict = defaultdict(list)
        self.absorbed: set = set()
        self.fused: dict = {}  # id(last node of a pattern) -> (handler, its data)
        self.skipped = 0

    # -- building blocks ------------------------------------------------------------------------------------
    def run(self) -> Imported:
        graph = self.graph
        if len(graph.node) > MAX_NODES:
            raise ImportProblem(f"{self.file}: {len(graph.node):,} nodes; archcheck imports at most {MAX_NODES:,}",
                                "no convolutional network has this many operators; check the file's origin")
        initial = {t.name for t in graph.initializer}
        for t in graph.initializer:
            self.values[t.name] = _array(t, self.file)
        inputs = [v for v in graph.input if v.name not in initial]
        if len(inputs) != 1:
            raise ImportProblem(f"{self.file}: the graph has {len(inputs)} inputs "
                                f"({', '.join(repr(v.name) for v in inputs) or 'none'}); archcheck imports networks "
                                "with one input", "export the model with a single input tensor")
        shape = self._input_shape(inputs[0])
        self.values[inputs[0].name] = _Ref(INPUT, shape)
        self.nodes = _order(graph, initial | {inputs[0].name}, self.file)
        # a Shape node reads no values: a tensor it measures still has one reader for the patterns
        self.consumers = Counter(name for node in self.nodes if node.op_type != "Shape" for name in node.input if name)
        for out in graph.output:
            self.consumers[out.name] += 1
        self.producer = {out: node for node in self.nodes for out in node.output if out}
        for node in self.nodes:
            try:
                self._match(node)
            except MALFORMED:  # a pattern's node out of its operator's spec: judged alone in the second pass
                pass
        for node in self.nodes:
            if id(node) in self.absorbed:
                continue
            if any(self.values.get(i) is _FAILED for i in node.input if i):
                self.skipped += 1  # downstream of a node that failed: nothing to judge it by
                self.values.update(dict.fromkeys(node.output, _FAILED))
                continue
            try:
                self._convert(node)
            except _Unsupported as exc:
                self.unsupported[exc.what].append(node.name or node.op_type)
                self.values.update(dict.fromkeys(node.output, _FAILED))
            except MALFORMED as exc:  # wrong number of inputs, attributes of the wrong type or size, ...
                self.unsupported[f"malformed {node.op_type} ({type(exc).__name__}: {str(exc)[:80]})"].append(
                    node.name or node.op_type)
                self.values.update(dict.fromkeys(node.output, _FAILED))
        if self.unsupported:
            raise self._problem()
        outputs = []
        for out in graph.output:
            value = self.values.get(out.name)
            if not isinstance(value, _Ref) or value.name == INPUT:
                raise ImportProblem(f"{self.file}: graph output '{out.name}' is not made by a layer",
                                    "export a network whose outputs are computed from its input")
            outputs.append(value.name)
        # exporters' generic graph names (torch's main_graph, torch_jit) say less than the file's
        named = graph.name if graph.name and graph.name not in GENERIC_GRAPH_NAMES else Path(self.file).stem
        doc = {"name": re.sub(r"[^A-Za-z0-9_\-.]+", "_", named)[:MAX_NAME],
               "input": list(shape), "metadata": {"source": self._source()}, "layers": self.layers}
        if outputs != [self.layers[-1]["name"]]:
            doc["outputs"] = outputs
        producer = f", produced by {self.model.producer_name} {self.model.producer_version}".rstrip() \
            if self.model.producer_name else ""
        header = [f"Imported by archcheck from {Path(self.file).name}{producer}",
                  f"ONNX opset {self._opset()}, {len(graph.node):,} nodes -> {len(self.layers):,} layers"]
        return Imported(doc, self.weights, self.origin, header)

    def _source(self) -> str:
        return f"{Path(self.file).name} (ONNX opset {self._opset()})"

    def _opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def _input_shape(self, value) -> tuple:
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(shape) < 2 or any(d is None or d < 1 for d in shape[1:]):
            raise ImportProblem(f"{self.file}: input '{value.name}' has shape {shape}; archcheck needs a batch axis "
                                "and fixed sizes for the others",
                                "export with a fixed input size (dynamic axes only for the batch)")
        return tuple(shape[1:])

    def _problem(self) -> ImportProblem:
        lines, custom = [], False
        for what, nodes in sorted(self.unsupported.items(), key=lambda kv: -len(kv[1])):
            custom |= what.startswith("custom")
            shown = ", ".join(repr(n) for n in nodes[:5]) + (f", ... ({len(nodes) - 5} more)" if len(nodes) > 5 else "")
            lines.append(f"{what}: {len(nodes)} node{'s' if len(nodes) != 1 else ''} ({shown})")
        total, kinds = sum(len(n) for n in self.unsupported.values()), len(lines)
        if self.skipped:
            lines.append(f"and {self.skipped} node{'s' if self.skipped != 1 else ''} after them, not checked")
        fix = CATALOGUE_GAP + ("; " + CUSTOM_FIX if custom else "")
        return ImportProblem(f"{self.file}: {total} node{'s' if total != 1 else ''} cannot be imported "
                             f"({kinds} kind{'s' if kinds != 1 else ''}):" +
                             "".join(f"\n  {line}" for line in lines), fix)

    def const(self, name: str):
        value = self.values.get(name)
        return value if isinstance(value, np.ndarray) else None

    def static(self, name: str):
        """A constant known before any layer exists (initializers, Constant nodes), for pattern matching."""
        if name in self.values and isinstance(self.values[name], np.ndarray):
            return self.values[name]
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and "value" in _attrs(node):
            return _array(_attrs(node)["value"], self.file)
        if node is not None and node.op_type == "Identity" and node.input:  # torch's shared initializers
            return self.static(node.input[0])
        return None

    def single(self, name: str, op: str | None = None):
        """The node making ``name`` if it has exactly one reader (and is ``op``), else None."""
        node = self.producer.get(name)
        if node is None or self.consumers[name] != 1 or (op and node.op_type != op) or id(node) in self.absorbed:
            return None
        return node

    def emit(self, kind: str, args: dict, inputs: list, node, weights: dict | None = None, output: str | None = None,
             suffix: str = "") -> _Ref:
        from archcheck.layers import CATALOGUE, ShapeError

        refs = [self.values[i] for i in inputs]
        try:
            layer = CATALOGUE[kind].model_validate(args)
            shape = layer.output_shape([r.shape for r in refs])
        except (ShapeError, ValueError) as exc:  # arguments archcheck's layer refuses: one kind of gap
            reason = str(getattr(exc, "message", exc)).splitlines()[0]
            raise _Unsupported(f"{node.op_type} as `{kind}` {args}, which archcheck refuses: {reason}") from None
        name = self.names.unique(layer_name(node) + suffix)
        item = {kind: args or None, "name": name}
        previous = self.layers[-1]["name"] if self.layers else INPUT
        if [r.name for r in refs] != [previous]:
            item["inputs"] = [r.name for r in refs]
        self.layers.append(item)
        for suffix, array in (weights or {}).items():
            self.weights[f"{name}.{suffix}"] = np.asarray(array, dtype=np.float32)
        self.origin[name] = node.name or node.output[0]
        ref = _Ref(name, shape)
        self.values[output or node.output[0]] = ref
        return ref

    # -- pass 1: patterns, from their last node ---------------------------------------------------------------
    def _match(self, node) -> None:
        op, ins = node.op_type, list(node.input)
        if op == "Mul" and len(ins) == 2:
            for x, other in ((ins[0], ins[1]), (ins[1], ins[0])):
                gate = self.single(other)
                if gate is None:
                    continue
                if gate.op_type == "Sigmoid" and gate.input[0] == x:
                    return self._fuse(node, [gate], "swish", {}, x)
                if gate.op_type == "HardSigmoid" and gate.input[0] == x and _is_torch_hardsigmoid(gate):
                    return self._fuse(node, [gate], "hardswish", {}, x)
                if gate.op_type == "Tanh":
                    soft = self.single(gate.input[0], "Softplus")
                    if soft is not None and soft.input[0] == x:
                        return self._fuse(node, [gate, soft], "mish", {}, x)
            gelu = self._gelu(node)
            if gelu:
                return self._fuse(node, gelu[0], "gelu", {}, gelu[1])
        if op == "Div" and len(ins) == 2:  # LayerNormalization's first stage written out (a layernorm without affine)
            sqrt = self.single(ins[1], "Sqrt")
            add = sqrt and self.single(sqrt.input[0], "Add")
            var = add and self.single(add.input[0], "ReduceMean")
            square = var and self.single(var.input[0], "Mul")
            sub = self.producer.get(ins[0])
            mean = sub is not None and sub.op_type == "Sub" and self.single(sub.input[1], "ReduceMean")
            if square and mean and list(square.input) == [ins[0], ins[0]] and mean.input[0] == sub.input[0] \
                    and _attrs(mean).get("axes") == _attrs(var).get("axes") and self.static(add.input[1]) is not None:
                return self._fuse(node, [sqrt, add, var, square, sub, mean], "standardised", (mean, add),
                                  sub.input[0])
        if op == "Transpose":
            norm = self.single(ins[0], "LayerNormalization")
            first = norm and self.single(norm.input[0], "Transpose")
            if first is not None:
                rank = len(_attrs(first).get("perm", []))
                if (rank > 2 and _attrs(first)["perm"] == [0, *range(2, rank), 1]
                        and _attrs(node).get("perm") == [0, rank - 1, *range(1, rank - 1)]
                        and _attrs(norm).get("axis", -1) in (-1, rank - 1)):
                    return self._fuse(node, [norm, first], "layernorm_channels", norm, first.input[0])
            region = self._channels_last(node)
            if region is not None:
                return self._fuse(node, region[0], "channels_last", region, region[1].input[0])
        if op == "Reshape":
            swap = self.single(ins[0], "Transpose")
            split = swap and self.single(swap.input[0], "Reshape")
            if split is not None:
                return self._fuse(node, [swap, split], "rearranged", (split, swap), split.input[0])
        if op == "Reshape":
            norm = self.single(ins[0], "InstanceNormalization")
            grouped = norm and self.single(norm.input[0], "Reshape")
            if grouped is not None:
                return self._fuse(node, [norm, grouped], "groupnorm", (grouped, norm, None), grouped.input[0])
        if op == "Add" and len(ins) == 2:
            scaled = self.single(ins[0], "Mul")
            back = scaled and self.producer.get(scaled.input[0])
            if back is not None and self.consumers[scaled.input[0]] == 1 and \
                    self.fused.get(id(back), ("",))[0] == "groupnorm":
                _, (grouped, norm, _), x, absorbed = self.fused.pop(id(back))
                return self._fuse(node, [scaled, back, *absorbed], "groupnorm", (grouped, norm, (scaled, node)), x)
            pad = self.producer.get(ins[0])
            if pad is not None and self.consumers[ins[0]] == 1 and \
                    self.fused.get(id(pad), ("",))[0] == "convtranspose" and self.static(ins[1]) is None:
                _, (ct, pads, _), x, absorbed = self.fused.pop(id(pad))
                return self._fuse(node, [pad, *absorbed], "convtranspose", (ct, pads, node), x)
        if op == "Pad":
            ct = self.single(ins[0], "ConvTranspose")
            pads = ct and self._zero_pads(node)
            if pads and not any(pads[:len(pads) // 2]):
                return self._fuse(node, [ct], "convtranspose", (ct, pads[len(pads) // 2:], None), ct.input[0])
        if op == "Mul" and len(ins) == 2 and self.static(ins[0]) is None and self.static(ins[1]) is None:
            inner = self.single(ins[0], "Mul")
            if inner is not None and id(inner) not in self.fused and not any(self.static(i) is not None
                                                                               for i in inner.input):
                return self._fuse(node, [inner], "product", [*inner.input, ins[1]], inner.input[0])
            if inner is not None and self.fused.get(id(inner), ("",))[0] == "product":
                parts = self.fused.pop(id(inner))[1]
                return self._fuse(node, [inner], "product", [*parts, ins[1]], parts[0])
        if op in ("Flatten", "Reshape", "Squeeze"):
            pool = self.single(ins[0])
            if pool is not None and pool.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
                return self._fuse(node, [pool], "globalpool", pool, pool.input[0])
        if op == "Add" and len(ins) == 2:
            for x, bias in ((ins[0], ins[1]), (ins[1], ins[0])):
                mm = self.single(x, "MatMul")
                if mm is not None and self.static(bias) is not None and self.static(mm.input[1]) is not None:
                    return self._fuse(node, [mm], "matmul_add", (mm, bias), mm.input[0])
        if op == "Concat" and len(ins) >= 2:
            found = self._cells(node)
            if found:
                return found
        if op in ("Conv", "MaxPool", "AveragePool"):
            pad = self.single(ins[0], "Pad")
            if pad is not None and (op == "Conv" or _attrs(node).get("count_include_pad", 0)):
                pads = self._zero_pads(pad)
                if pads is not None:
                    return self._fuse(node, [pad], "padded", pads, pad.input[0])
        return None

    def _cells(self, node):
        """archcheck's adaptive pooling whose cells do not slide: along one axis, one ``Slice`` -> ``ReduceMean`` (or
        ``ReduceMax``) per cell, ``Concat``ed; an earlier axis' stage feeding it is merged in."""
        axis, reduced, cells, x = _attrs(node).get("axis"), None, [], None
        for name in node.input:
            reduce = self.single(name)
            if reduce is None or reduce.op_type not in ("ReduceMean", "ReduceMax") or \
                    reduced not in (None, reduce.op_type) or _attrs(reduce).get("axes") != [axis] or \
                    not _attrs(reduce).get("keepdims", 1):
                return None
            reduced = reduce.op_type
            cut = self.single(reduce.input[0], "Slice")
            bounds = cut and [self.static(i) for i in cut.input[1:4]]
            if cut is None or len(cut.input) != 4 or any(b is None or b.size != 1 for b in bounds) or \
                    int(bounds[2].reshape(())) != axis or x not in (None, cut.input[0]):
                return None
            x = cut.input[0]
            cells.append((int(bounds[0].reshape(())), int(bounds[1].reshape(()))))
        parts = [n for name in node.input for n in (self.producer[name], self.producer[self.producer[name].input[0]])]
        per_axis = {axis: cells}
        earlier = self.producer.get(x)
        if earlier is not None and self.consumers[x] == len(cells) and \
                self.fused.get(id(earlier), ("",))[0] == "adaptive" and self.fused[id(earlier)][1][0] == reduced:
            _, (_, before), x, absorbed = self.fused.pop(id(earlier))
            per_axis, parts = {**before, **per_axis}, [*parts, earlier, *absorbed]
        return self._fuse(node, parts, "adaptive", (reduced, per_axis), x)

    def _fuse(self, last, absorbed: list, kind: str, data, x: str) -> None:
        self.absorbed.update(id(n) for n in absorbed)
        self.fused[id(last)] = (kind, data, x, absorbed)

    def _zero_pads(self, pad):
        """The spatial pads of a constant-zero Pad, or None."""
        a = _attrs(pad)
        if a.get("mode", b"constant") not in (b"constant", "constant"):
            return None
        pads = self.static(pad.input[1]) if len(pad.input) > 1 else np.array(a.get("pads", []))
        value = self.static(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
        if pads is None or value is None or value.size != 1 or float(value.reshape(())) != 0 or pads.size % 2:
            return None
        rank = pads.size // 2
        if len(pad.input) > 3 and pad.input[3] or pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
            return None  # pads the batch or channels: not a zero padding of the map
        return [int(p) for p in pads[2:rank]] + [int(p) for p in pads[rank + 2:]]

    def _channels_last(self, last):
        """Transpose to channels-last -> per-position work on the channels -> Transpose back (torch's ConvNeXt
        block: LayerNorm, Linear, GELU, Linear): ``(nodes in order, first Transpose, GELUs)``, or None."""
        rank = len(_attrs(last).get("perm", []))
        if rank < 3 or _attrs(last)["perm"] != [0, rank - 1, *range(1, rank - 1)]:
            return None
        inside, stack, first = {}, [last.input[0]], None
        while stack:
            name = stack.pop()
            node = self.producer.get(name)
            if node is None:  # patterns inside the region (MatMul + Add, GELU) are taken over below
                return None
            if node.op_type == "Transpose" and _attrs(node).get("perm") == [0, *range(2, rank), 1]:
                if first is not None and first is not node or self.consumers[name] != 1:
                    return None
                first = node
                continue
            if id(node) in inside:
                continue
            if len(inside) >= MAX_REGION:
                return None
            inside[id(node)] = node
            stack += [i for i in node.input if i and self.static(i) is None]
        if first is None or not inside:
            return None
        outputs = {o for n in inside.values() for o in n.output}
        readers = Counter(i for n in [*inside.values(), last] for i in n.input)
        if any(self.consumers[o] != readers[o] for o in outputs):  # a value also read outside the region
            return None
        nodes = [n for n in self.nodes if id(n) in inside]
        gelus = {}
        for n in nodes:
            fused = self.fused.get(id(n))
            if fused is not None and fused[0] == "gelu":
                gelus[id(n)] = (fused[3], fused[2])
            elif n.op_type == "Mul" and (found := self._gelu(n)):
                gelus[id(n)] = found
        for n in nodes:  # the region's own handler makes these layers
            self.fused.pop(id(n), None)
        return [*nodes, first], first, nodes, gelus

    def _gelu(self, node):
        """0.5·x·(1 + Erf(x/√2)) in the orders exporters write it: archcheck's Mul(Mul(x, .5), Add(Erf(Div(x, √2)),
        1)) and torch's Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), .5)."""
        def erf_of(name):  # Add(Erf(Div(x, sqrt2)), 1) -> (x, nodes)
            add = self.single(name, "Add")
            if add is None:
                return None
            for e, one in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
                erf = self.single(e, "Erf")
                div = erf and self.single(erf.input[0], "Div")
                if div is not None and _near(self.static(one), 1) and _near(self.static(div.input[1]), 2 ** 0.5):
                    return div.input[0], [add, erf, div]
            return None

        a, b = node.input
        for half_x, rest in ((a, b), (b, a)):
            inner = self.single(half_x, "Mul")
            found = erf_of(rest)
            if inner is not None and found:
                x, nodes = found
                if set(inner.input) == {x, inner.input[1] if inner.input[0] == x else inner.input[0]} and \
                        any(_near(self.static(i), 0.5) for i in inner.input) and x in inner.input:
                    return [inner, *nodes], x
        for half, prod in ((a, b), (b, a)):
            inner = self.single(prod, "Mul")
            if inner is None or not _near(self.static(half), 0.5):
                continue
            for x, rest in ((inner.input[0], inner.input[1]), (inner.input[1], inner.input[0])):
                found = erf_of(rest)
                if found and found[0] == x:
                    return [inner, *found[1]], x
        return None

    # -- pass 2: one layer per node or pattern -----------------------------------------------------------------
    def _convert(self, node) -> None:
        op = node.op_type
        if id(node) in self.fused:
            kind, data, x, absorbed = self.fused[id(node)]
            self._layer_input(x, node)
            return getattr(self, f"_fused_{kind}")(node, data, x, absorbed)
        if node.domain not in ("", "ai.onnx"):
            raise _Unsupported(f"custom operator {node.domain}.{op}")
        values = [self.values.get(i) if i else None for i in node.input]
        if op == "Constant":
            attrs = _attrs(node)
            if "value" not in attrs:
                raise _Unsupported("Constant (other than a tensor value)")
            self.values[node.output[0]] = _array(attrs["value"], self.file)
            return
        if op == "Shape" and values[0] is None:
            values[0] = self._pooled(node.input[0])
        if op == "Shape" and isinstance(values[0], _Ref):
            shape = np.array([BATCH, *values[0].shape], dtype=np.int64)
            a = _attrs(node)
            self.values[node.output[0]] = shape[a.get("start", 0):a.get("end", len(shape))]
            return
        if op in _FOLD and all(v is None or isinstance(v, np.ndarray) for v in values) and values and \
                isinstance(values[0], np.ndarray):
            try:
                self.values[node.output[0]] = np.asarray(_FOLD[op](_attrs(node), *[v for v in values]))
            except Exception as exc:  # a constant computation the file gets wrong
                raise ImportProblem(f"{self.file}: node '{node.name}' ({op}) on constants fails: {exc}",
                                    FIX_MODEL) from None
            return
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise _Unsupported(op)
        if op == "Mul" and len(values) == 2 and isinstance(values[0], np.ndarray) and isinstance(values[1], _Ref):
            values = values[::-1]  # a scale written first (torch's layer_scale * x): the tensor is the layer input
            node = _swapped(node)
        x = node.input[0]
        self._layer_input(x, node)
        handler(node, values, _attrs(node))

    def _pooled(self, name: str):
        """The shape of a global pool's output that a pattern absorbed (torch.onnx measures it for the flatten)."""
        pool = self.producer.get(name)
        if pool is not None and pool.op_type in ("GlobalAveragePool", "GlobalMaxPool") and \
                isinstance(self.values.get(pool.input[0]), _Ref):
            shape = self.values[pool.input[0]].shape
            return _Ref("", (shape[0], *(1,) * (len(shape) - 1)))
        return None

    def _layer_input(self, name: str, node) -> None:
        if not isinstance(self.values.get(name), _Ref):
            raise _Unsupported(f"{node.op_type} on a constant input")

    def _ref(self, name: str) -> _Ref:
        value = self.values.get(name)
        if not isinstance(value, _Ref):
            raise _Unsupported("an operator mixing constants and tensors")
        return value

    # convolutions and pooling
    def _conv(self, node, values, a, extra_pads=None):
        x, w = self._ref(node.input[0]), values[1]
        if not isinstance(w, np.ndarray) or w.ndim < 3:
            raise _Unsupported("Conv with a computed weight")
        rank = w.ndim - 2
        pads = list(a.get("pads", [0] * 2 * rank))
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"", ""):
            raise _Unsupported("Conv with auto_pad")
        if extra_pads:
            pads = [p + e for p, e in zip(pads, extra_pads)]
        args = {"filters": int(w.shape[0]), "kernel": _per_axis(w.shape[2:]),
                "stride": _per_axis(a.get("strides", [1] * rank)), "padding": _padding(pads, rank)}
        if any(d != 1 for d in a.get("dilations", [1])):
            args["dilation"] = _per_axis(a["dilations"])
        if a.get("group", 1) != 1:
            args["groups"] = "depthwise" if a["group"] == x.shape[0] == w.shape[0] else int(a["group"])
        weights = {"weight": w}
        if len(values) > 2 and isinstance(values[2], np.ndarray):
            weights["bias"] = values[2]
        else:
            args["bias"] = False
        for key in ("stride", "padding"):
            if args[key] in (0, 1) and args[key] == (1 if key == "stride" else 0):
                del args[key]
        self.emit("conv", args, [node.input[0]], node, weights)

    def _op_Conv(self, node, values, a):  # noqa: N802
        self._conv(node, values, a)

    def _fused_convtranspose(self, node, data, x, absorbed):
        """archcheck's ConvTranspose whose output_padding reaches past the end padding: the rest padded with
        zeros, then the bias added."""
        ct, beyond, add = data
        values = [self.values.get(i) if i else None for i in ct.input]
        if add is not None:
            bias = next((self.const(i) for i in add.input if self.const(i) is not None), None)
            if bias is None or len(values) > 2 and values[2] is not None:
                raise _Unsupported("ConvTranspose -> Pad -> Add other than a bias")
            values = [*values[:2], bias.reshape(-1)]
        self._op_ConvTranspose(ct, values, _attrs(ct), beyond, node)

    def _op_ConvTranspose(self, node, values, a, beyond=None, last=None):  # noqa: N802
        w = values[1]
        if not isinstance(w, np.ndarray) or w.ndim < 3 or a.get("output_shape"):
            raise _Unsupported("ConvTranspose with a computed weight or output_shape")
        rank, group = w.ndim - 2, int(a.get("group", 1))
        args = {"filters": int(w.shape[1]) * group, "kernel": _per_axis(w.shape[2:]),
                "stride": _per_axis(a.get("strides", [1] * rank)),
                "padding": _padding(a.get("pads", [0] * 2 * rank), rank)}
        extra = [int(o) for o in a.get("output_padding", [0] * rank)]
        if beyond:
            extra = [o + e for o, e in zip(extra, beyond)]
        if any(extra):
            args["output_padding"] = _per_axis(extra)
        if any(d != 1 for d in a.get("dilations", [1])):
            args["dilation"] = _per_axis(a["dilations"])
        if group != 1:
            args["groups"] = group
        weights = {"weight": w}
        if len(values) > 2 and isinstance(values[2], np.ndarray):
            weights["bias"] = values[2]
        else:
            args["bias"] = False
        self.emit("convtranspose", args, [node.input[0]], last or node, weights)

    def _pool(self, kind, node, a, extra_pads=None):
        kernel = a.get("kernel_shape", [])
        rank = len(kernel)
        if any(d != 1 for d in a.get("dilations", [1])) or a.get("storage_order", 0):
            raise _Unsupported(f"{node.op_type} with dilations")
        pads = list(a.get("pads", [0] * 2 * rank))
        if extra_pads:
            pads = [p + e for p, e in zip(pads, extra_pads)]
        args = {"kernel": _per_axis(kernel), "stride": _per_axis(a.get("strides", [1] * rank)),
                "padding": _padding(pads, rank)}
        if a.get("ceil_mode", 0):
            args["ceil_mode"] = True
        if kind == "avgpool" and not a.get("count_include_pad", 0) and any(pads):
            args["count_include_pad"] = False
        if any(after > before for before, after in zip(pads[:rank], pads[rank:])) and not args.get("ceil_mode"):
            args = self._ceil_mode(kind, args, pads, rank, node)
        if args["padding"] == 0:
            del args["padding"]
        if args["stride"] == args["kernel"]:
            del args["stride"]
        self.emit(kind, args, [node.input[0]], node)

    def _ceil_mode(self, kind, args, pads, rank, node) -> dict:
        """archcheck's exporter writes ``ceil_mode`` as extra end padding: the same pooling with the start padding
        on both sides and ``ceil_mode`` when that gives the same output (what ONNX computes with those pads)."""
        from archcheck.layers import CATALOGUE

        shape = self._ref(node.input[0]).shape
        k = _per_axis_list(args["kernel"], rank)
        s = _per_axis_list(args["stride"], rank)
        want = tuple((n + b + a - kk) // ss + 1 for n, b, a, kk, ss in zip(shape[1:], pads[:rank], pads[rank:], k, s))
        candidate = dict(args, padding=_padding(pads[:rank] * 2, rank), ceil_mode=True)
        try:
            if tuple(CATALOGUE[kind].model_validate(candidate).output_shape([shape]))[1:] == want:
                return candidate
        except ValueError:
            pass
        return args

    def _op_MaxPool(self, node, values, a):  # noqa: N802
        if len(node.output) > 1 and node.output[1]:
            raise _Unsupported("MaxPool with indices")
        self._pool("maxpool", node, a)

    def _op_AveragePool(self, node, values, a):  # noqa: N802
        self._pool("avgpool", node, a)

    def _op_GlobalAveragePool(self, node, values, a):  # noqa: N802
        self.emit("globalavgpool", {"keepdims": True}, [node.input[0]], node)

    def _op_GlobalMaxPool(self, node, values, a):  # noqa: N802
        self.emit("globalmaxpool", {"keepdims": True}, [node.input[0]], node)

    # dense
    def _op_Gemm(self, node, values, a):  # noqa: N802
        w = values[1]
        if not isinstance(w, np.ndarray) or w.ndim != 2 or a.get("transA", 0):
            raise _Unsupported("Gemm with a computed weight or transA")
        weight = (w if a.get("transB", 0) else w.T) * a.get("alpha", 1.0)
        weights = {"weight": weight}
        args = {"units": int(weight.shape[0])}
        bias = values[2] if len(values) > 2 else None
        if isinstance(bias, np.ndarray):
            weights["bias"] = np.broadcast_to(bias * a.get("beta", 1.0), (weight.shape[0],))
        else:
            args["bias"] = False
        self.emit("dense", args, [node.input[0]], node, weights)

    def _op_MatMul(self, node, values, a):  # noqa: N802
        w = values[1]
        if not isinstance(w, np.ndarray) or w.ndim != 2:
            raise _Unsupported("MatMul of two tensors")
        self.emit("dense", {"units": int(w.shape[1]), "bias": False}, [node.input[0]], node, {"weight": w.T})

    # normalisation
    def _op_BatchNormalization(self, node, values, a):  # noqa: N802
        if len(node.output) > 1 and any(node.output[1:]) or a.get("training_mode", 0):
            raise _Unsupported("BatchNormalization in training mode")
        scale, bias, mean, var = values[1:5]
        if not all(isinstance(v, np.ndarray) for v in (scale, bias, mean, var)):
            raise _Unsupported("BatchNormalization with computed statistics")
        args = {} if abs(a.get("epsilon", 1e-5) - 1e-5) < 1e-12 else {"eps": _f32(a["epsilon"])}
        weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
        if self._constant(node.input[1], 1):
            args["scale"] = False
            del weights["weight"]
        if self._constant(node.input[2], 0):
            args["center"] = False
            del weights["bias"]
        if args.get("scale") is False and args.get("center") is False:
            args = {k: v for k, v in args.items() if k not in ("scale", "center")} | {"affine": False}
        self.emit("batchnorm", args, [node.input[0]], node, weights)

    def _constant(self, name: str, value: float) -> bool:
        """A constant archcheck's exporter wrote for a normalisation without that weight (``<layer>/ones``):
        a model's own weights that happen to be ones stay weights."""
        array = self.const(name)
        return self.model.producer_name == "archcheck" and "/" in name and array is not None and \
            bool(np.all(array == value))

    def _op_LayerNormalization(self, node, values, a):  # noqa: N802
        x = self._ref(node.input[0])
        axis = a.get("axis", -1) % (len(x.shape) + 1)
        if axis != 1:
            raise _Unsupported("LayerNormalization over trailing axes other than all or the channels")
        self._layernorm(node, values, a, "all" if len(x.shape) > 1 else "channels", node.input[0], node.input[1])

    def _layernorm(self, node, values, a, over, x, scale_name):
        scale = values[1]
        bias = values[2] if len(values) > 2 else None
        if not isinstance(scale, np.ndarray):
            raise _Unsupported("LayerNormalization with a computed scale")
        bias = bias if isinstance(bias, np.ndarray) else np.zeros_like(scale)
        args = {} if over == "channels" else {"over": "all"}
        if self._constant(scale_name, 1):
            args["affine"] = False
            return self.emit("layernorm", args, [x], node)
        if abs(a.get("epsilon", 1e-5) - 1e-5) > 1e-12:
            args["eps"] = _f32(a["epsilon"])
        self.emit("layernorm", args, [x], node, {"weight": scale.reshape(-1) if over == "channels" else scale,
                                                 "bias": bias.reshape(scale.shape).reshape(-1) if over == "channels"
                                                 else bias.reshape(scale.shape)})

    # activations
    def _simple(kind, args=None):  # noqa: N805
        def handler(self, node, values, a):
            self.emit(kind, dict(args or {}), [node.input[0]], node)
        return handler

    _op_Relu = _simple("relu")
    _op_Sigmoid = _simple("sigmoid")
    _op_Tanh = _simple("tanh")
    _op_Selu = _simple("selu")
    _op_HardSwish = _simple("hardswish")
    _op_Identity = _simple("identity")

    def _op_Dropout(self, node, values, a):  # noqa: N802
        self.emit("dropout", {}, [node.input[0]], node)

    def _op_LeakyRelu(self, node, values, a):  # noqa: N802
        self.emit("leaky_relu", {"slope": _f32(a.get("alpha", 0.01))}, [node.input[0]], node)

    def _op_Elu(self, node, values, a):  # noqa: N802
        self.emit("elu", {} if a.get("alpha", 1.0) == 1.0 else {"alpha": _f32(a["alpha"])}, [node.input[0]], node)

    def _op_HardSigmoid(self, node, values, a):  # noqa: N802
        if not _is_torch_hardsigmoid(node):
            raise _Unsupported("HardSigmoid with alpha and beta other than 1/6 and 0.5")
        self.emit("hardsigmoid", {}, [node.input[0]], node)

    def _op_Softmax(self, node, values, a):  # noqa: N802
        x = self._ref(node.input[0])
        axis = a.get("axis", -1) % (len(x.shape) + 1)
        if axis == 0:
            raise _Unsupported("Softmax over the batch axis")
        self.emit("softmax", {} if axis == 1 else {"axis": axis - 1}, [node.input[0]], node)

    def _op_Clip(self, node, values, a):  # noqa: N802
        low = values[1] if len(values) > 1 and node.input[1] else a.get("min")
        high = values[2] if len(values) > 2 and node.input[2] else a.get("max")
        low = _scalar(low, low) if low is not None else None
        high = _scalar(high, high) if high is not None else None
        if low == 0 and high == 6:
            return self.emit("relu6", {}, [node.input[0]], node)
        if low == 0 and (high is None or high == math.inf):
            return self.emit("relu", {}, [node.input[0]], node)
        raise _Unsupported(f"Clip to [{low}, {high}] (only [0, 6], relu6, and [0, inf), relu)")

    # merges and shape operators
    def _op_Sum(self, node, values, a):  # noqa: N802
        if len(node.input) == 1:
            return self.emit("identity", {}, [node.input[0]], node)
        [self._ref(i) for i in node.input]
        self.emit("add", {}, list(node.input), node)

    def _op_Add(self, node, values, a):  # noqa: N802
        if not all(isinstance(v, _Ref) for v in values):
            raise _Unsupported("Add of a constant (a bias not after MatMul)")
        self.emit("add", {}, list(node.input), node)

    def _op_Mul(self, node, values, a):  # noqa: N802
        if all(isinstance(v, _Ref) for v in values):
            return self.emit("multiply", {}, list(node.input), node)
        x, scale = values
        if isinstance(scale, np.ndarray) and scale.ndim == len(x.shape) and scale.shape[0] == x.shape[0] and \
                scale.size == x.shape[0]:
            return self.emit("layerscale", {}, [node.input[0]], node, {"weight": scale.reshape(-1)})
        raise _Unsupported("Mul by a constant other than a per-channel scale")

    def _op_Concat(self, node, values, a):  # noqa: N802
        refs = [self._ref(i) for i in node.input]
        axis = a.get("axis", 1) % (len(refs[0].shape) + 1)
        if axis == 0:
            raise _Unsupported("Concat on the batch axis")
        if len(refs) == 1:  # torch.cat([x]) (DenseNet's first layer of a block): x itself
            self.emit("identity", {}, list(node.input), node)
            return
        self.emit("concat", {} if axis == 1 else {"axis": axis - 1}, list(node.input), node)

    def _op_Flatten(self, node, values, a):  # noqa: N802
        if a.get("axis", 1) != 1:
            raise _Unsupported("Flatten other than after the batch axis")
        self.emit("flatten", {}, [node.input[0]], node)

    def _op_Reshape(self, node, values, a):  # noqa: N802
        x, target = self._ref(node.input[0]), values[1]
        if not isinstance(target, np.ndarray):
            raise _Unsupported("Reshape to a computed shape")
        target = [int(t) for t in target.reshape(-1)]
        if not target or target[0] not in (0, BATCH, -1 if len(target) == 1 else 0):
            raise _Unsupported("Reshape of the batch axis")
        rest = [x.shape[i - 1] if d == 0 and i > 0 else d for i, d in enumerate(target)][1:]
        if len(rest) == 1 and rest[0] in (-1, math.prod(x.shape)):
            return self.emit("flatten", {}, [node.input[0]], node)
        self.emit("reshape", {"shape": rest}, [node.input[0]], node)

    def _op_Squeeze(self, node, values, a):  # noqa: N802
        x = self._ref(node.input[0])
        if len(x.shape) > 1 and all(d == 1 for d in x.shape[1:]):
            return self.emit("flatten", {}, [node.input[0]], node)
        raise _Unsupported("Squeeze other than of a 1x1 map")

    def _op_Slice(self, node, values, a):  # noqa: N802
        x = self._ref(node.input[0])
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 and node.input[3] else np.arange(len(starts))
        steps = values[4] if len(values) > 4 and node.input[4] else np.ones(len(starts), np.int64)
        if not all(isinstance(v, np.ndarray) for v in (starts, ends, axes, steps)) or starts.size != 1 or \
                int(steps.reshape(-1)[0]) != 1:
            raise _Unsupported("Slice other than a step-1 range of one axis")
        axis = int(axes.reshape(-1)[0]) % (len(x.shape) + 1)
        if axis == 0:
            raise _Unsupported("Slice of the batch axis")
        n = x.shape[axis - 1]
        start, stop, _ = slice(int(starts.reshape(-1)[0]), int(min(ends.reshape(-1)[0], n)), 1).indices(n)
        args = {"start": start, "stop": stop}
        if axis != 1:
            args["axis"] = axis - 1
        self.emit("slice", args, [node.input[0]], node)

    def _op_Split(self, node, values, a):  # noqa: N802
        """torch.onnx's ``x.chunk(n, dim)`` / ``split``: one ``slice`` per output."""
        x = self._ref(node.input[0])
        axis = a.get("axis", 0) % (len(x.shape) + 1)
        if axis == 0:
            raise _Unsupported("Split of the batch axis")
        n, outputs = x.shape[axis - 1], [o for o in node.output]
        sizes = values[1] if len(values) > 1 and node.input[1] else a.get("split")
        if sizes is None:
            per = -(-n // len(outputs))
            sizes = [min(per, n - i * per) for i in range(len(outputs))]
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if len(sizes) != len(outputs) or sum(sizes) != n or min(sizes) < 1:
            raise _Unsupported("Split into sizes that do not cover the axis")
        start = 0
        for i, (out, size) in enumerate(zip(outputs, sizes), 1):
            args = {"start": start, "stop": start + size} | ({"axis": axis - 1} if axis != 1 else {})
            if out:
                self.emit("slice", args, [node.input[0]], node, output=out, suffix=f"_{i}")
            start += size

    def _op_ReduceMean(self, node, values, a, kind="globalavgpool"):  # noqa: N802
        """``x.mean((2, 3))`` over every spatial axis: a global pool."""
        x = self._ref(node.input[0])
        axes = values[1] if len(values) > 1 and node.input[1] else a.get("axes")
        rank = len(x.shape) + 1
        if axes is None or sorted(int(v) % rank for v in np.asarray(axes).reshape(-1)) != list(range(2, rank)):
            raise _Unsupported(f"{node.op_type} other than over every spatial axis")
        self.emit(kind, {"keepdims": True} if a.get("keepdims", 1) else {}, [node.input[0]], node)

    def _op_ReduceMax(self, node, values, a):  # noqa: N802
        self._op_ReduceMean(node, values, a, "globalmaxpool")

    def _op_Pad(self, node, values, a):  # noqa: N802
        pads = self._zero_pads(node)
        if pads is None:
            raise _Unsupported("Pad other than zeros around the spatial axes")
        rank = len(pads) // 2
        self.emit("zeropad", {"padding": _padding(pads, rank)}, [node.input[0]], node)

    def _op_Resize(self, node, values, a):  # noqa: N802
        x = self._ref(node.input[0])
        scales = values[2] if len(values) > 2 and node.input[2] else None
        if (scales is None or not scales.size) and len(values) > 3 and isinstance(values[3], np.ndarray):
            scales = values[3][2:] / np.array(x.shape[1:])
            scales = np.concatenate([[1, 1], scales])
        if not isinstance(scales, np.ndarray) or scales.size != len(x.shape) + 1 or \
                any(s != int(s) or s < 1 for s in scales) or any(scales[:2] != 1):
            raise _Unsupported("Resize other than by whole scales of the spatial axes")
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        args = {"scale": _per_axis(scales[2:])}
        if mode == "linear":
            args["mode"] = "linear"
        elif mode != "nearest":
            raise _Unsupported(f"Resize in {mode} mode")
        self.emit("upsample", args, [node.input[0]], node)

    def _op_DepthToSpace(self, node, values, a):  # noqa: N802
        mode = a.get("mode", b"DCR")
        if mode not in (b"CRD", "CRD"):
            raise _Unsupported("DepthToSpace in DCR mode (TensorFlow's channel order)")
        self.emit("pixelshuffle", {"factor": int(a["blocksize"])}, [node.input[0]], node)

    # fused patterns
    def _fused_swish(self, node, data, x, absorbed):
        self.emit("swish", {}, [x], node)

    def _fused_hardswish(self, node, data, x, absorbed):
        self.emit("hardswish", {}, [x], node)

    def _fused_mish(self, node, data, x, absorbed):
        self.emit("mish", {}, [x], node)

    def _fused_gelu(self, node, data, x, absorbed):
        self.emit("gelu", {}, [x], node)

    def _fused_layernorm_channels(self, node, norm, x, absorbed):
        values = [self.values.get(i) for i in norm.input]
        self._layernorm(node, values, _attrs(norm), "channels", x, norm.input[1])

    def _fused_standardised(self, node, data, x, absorbed):
        """x - mean over the channels (or every axis), over the root of the variance plus eps: ``layernorm``
        without affine, as archcheck exports it."""
        mean, add = data
        rank = len(self._ref(x).shape) + 1
        axes = sorted(int(v) % rank for v in _attrs(mean).get("axes", []))
        over = "all" if axes == list(range(1, rank)) else "channels" if axes == [1] else None
        if over is None or not _attrs(mean).get("keepdims", 1):
            raise _Unsupported("a standardisation over axes other than the channels or all of them")
        eps = float(self.static(add.input[1]).reshape(-1)[0])
        args = ({"over": "all"} if over == "all" else {}) | {"affine": False} | \
            ({} if abs(eps - 1e-5) < 1e-12 else {"eps": _f32(eps)})
        self.emit("layernorm", args, [x], node)

    def _fused_channels_last(self, node, data, x, absorbed):
        """The channels-last region as layers on the channels-first map: LayerNormalization over the last axis
        is ``layernorm`` over the channels, MatMul (+ Add) by a constant a 1x1 ``conv``, GELU ``gelu``."""
        _, first, nodes, gelus = data
        self.values[first.output[0]] = self._ref(x)
        skip = {id(g) for found in gelus.values() for g in found[0]}
        biased = {}
        for n in nodes:
            if n.op_type == "MatMul":
                adds = [m for m in nodes if m.op_type == "Add" and n.output[0] in m.input]
                if len(adds) == 1:
                    other = next(i for i in adds[0].input if i != n.output[0])
                    if self.const(other) is not None and self.const(other).size == self.const(n.input[1]).shape[-1]:
                        biased[id(n)] = (adds[0], self.const(other).reshape(-1))
                        skip.add(id(adds[0]))
        last = x
        for n in nodes:
            if id(n) in gelus:
                self.emit("gelu", {}, [gelus[id(n)][1]], n)
                last = n.output[0]
                continue
            if id(n) in skip:
                continue
            if n.op_type == "LayerNormalization":
                self._layernorm(n, [self.values.get(i) for i in n.input], _attrs(n), "channels", n.input[0],
                                n.input[1])
            elif n.op_type == "MatMul" and self.const(n.input[1]) is not None and self.const(n.input[1]).ndim == 2:
                w = self.const(n.input[1])
                add, bias = biased.get(id(n), (None, None))
                weights = {"weight": w.T.reshape(*w.T.shape, *(1,) * (len(self._ref(n.input[0]).shape) - 1))}
                if bias is not None:
                    weights["bias"] = bias
                self.emit("conv", {"filters": int(w.shape[1]), "kernel": 1} | ({} if add else {"bias": False}),
                          [n.input[0]], n, weights, output=(add or n).output[0])
                last = (add or n).output[0]
                continue
            elif n.op_type in ("Relu", "Sigmoid", "Tanh"):
                self.emit(n.op_type.lower(), {}, [n.input[0]], n)
            else:
                raise _Unsupported(f"{n.op_type} between Transposes to and from channels-last")
            last = n.output[0]
        self.values[node.output[0]] = self._ref(last)

    def _fused_rearranged(self, node, data, x, absorbed):
        """Reshape -> Transpose -> Reshape: the channel shuffle or pixel (un)shuffle that moves every value where
        these three operators do, found by running each candidate layer on the values' indices."""
        from archcheck.executor import Context
        from archcheck.layers import CATALOGUE

        split, swap = data
        shape = self._ref(x).shape
        first, last = self.const(split.input[1]), self.const(node.input[1])
        if first is None or last is None or math.prod(shape) > MAX_ELEMENTS:
            raise _Unsupported("Reshape -> Transpose -> Reshape to computed shapes")
        index = np.arange(math.prod(shape)).reshape(1, *shape)
        try:
            moved = _FOLD["Reshape"]({}, _FOLD["Transpose"](_attrs(swap), _FOLD["Reshape"]({}, index, first)), last)
        except ValueError:
            raise _Unsupported("Reshape -> Transpose -> Reshape that does not fit its input") from None
        c, rank = shape[0], len(shape) - 1
        candidates = [("channelshuffle", {"groups": g}) for g in range(2, c + 1) if c % g == 0]
        for r in range(2, max(shape) + 1):
            if c % r**rank == 0:
                candidates.append(("pixelshuffle", {"factor": r}))
            if all(n % r == 0 for n in shape[1:]):
                candidates.append(("pixelunshuffle", {"factor": r}))
        for kind, args in candidates:
            layer = CATALOGUE[kind].model_validate(args)
            try:
                if tuple(layer.output_shape([shape])) != moved.shape[1:]:
                    continue
            except ValueError:
                continue
            if np.array_equal(layer.forward([index], {}, Context())[0], moved):
                return self.emit(kind, args, [x], node)
        raise _Unsupported("Reshape -> Transpose -> Reshape that is no channel or pixel shuffle")

    def _fused_groupnorm(self, node, data, x, absorbed):
        """Reshape to (N, G, -1) -> InstanceNormalization -> Reshape back [-> Mul by weight -> Add bias]:
        ``groupnorm`` with G groups (``instancenorm`` with one group per channel)."""
        grouped, norm, affine = data
        shape, target = self._ref(x).shape, self.const(grouped.input[1])
        scale, shift = self.const(norm.input[1]), self.const(norm.input[2])
        if target is None or target.size != 3 or scale is None or shift is None or \
                not (np.all(scale == 1) and np.all(shift == 0)):
            raise _Unsupported("InstanceNormalization other than inside a group normalisation")
        groups = int(target.reshape(-1)[1])
        eps = _attrs(norm).get("epsilon", 1e-5)
        args = {} if abs(eps - 1e-5) < 1e-12 else {"eps": _f32(eps)}
        kind = "instancenorm" if groups == shape[0] else "groupnorm"
        if kind == "groupnorm":
            args["groups"] = groups
        weights = {}
        if affine is not None:
            mul, add = affine
            weight = next((self.const(i) for i in mul.input if self.const(i) is not None), None)
            bias = next((self.const(i) for i in add.input if self.const(i) is not None), None)
            if weight is None or bias is None or weight.size != shape[0] or bias.size != shape[0]:
                raise _Unsupported("group normalisation with a scale or shift that is not per channel")
            weights = {"weight": weight.reshape(-1), "bias": bias.reshape(-1)}
            if kind == "instancenorm":
                args["affine"] = True
        elif kind == "groupnorm":
            args["affine"] = False
        self.emit(kind, args, [x], node, weights)

    def _fused_adaptive(self, node, data, x, absorbed):
        from archcheck.layers.pool import adaptive_cells

        reduced, per_axis = data
        shape = self._ref(x).shape
        size = []
        for axis, n in enumerate(shape[1:], start=2):
            cells = per_axis.get(axis)
            if cells is not None and tuple(cells) != adaptive_cells(n, len(cells)):
                raise _Unsupported(f"Slice -> {reduced} -> Concat whose cells are not adaptive pooling's")
            size.append(None if cells is None else len(cells))
        size = size[0] if len(set(size)) == 1 and size[0] is not None else size
        kind = "adaptiveavgpool" if reduced == "ReduceMean" else "adaptivemaxpool"
        self.emit(kind, {"size": size}, [x], node)

    def _fused_product(self, node, parts, x, absorbed):
        [self._ref(p) for p in parts]
        self.emit("multiply", {}, parts, node)

    def _fused_globalpool(self, node, pool, x, absorbed):
        kind = "globalavgpool" if pool.op_type == "GlobalAveragePool" else "globalmaxpool"
        self.emit(kind, {}, [x], node)

    def _fused_matmul_add(self, node, data, x, absorbed):
        mm, bias = data
        w, b = self.values.get(mm.input[1]), self.values.get(bias)
        if not isinstance(w, np.ndarray) or not isinstance(b, np.ndarray) or w.ndim != 2:
            raise _Unsupported("MatMul + Add other than a dense layer")
        self.emit("dense", {"units": int(w.shape[1])}, [x], node,
                  {"weight": w.T, "bias": np.broadcast_to(b, (w.shape[1],))})

    def _fused_padded(self, node, pads, x, absorbed):
        a = _attrs(node)
        values = [self.values.get(i) if i else None for i in node.input]
        saved = node.input[0]
        self.values[saved] = self._ref(x)  # the Pad's output stands for its input, its pads added below
        if node.op_type == "Conv":
            self._conv(node, values, a, pads)
        else:
            self._pool("maxpool" if node.op_type == "MaxPool" else "avgpool", node, a, pads)


MALFORMED = (ValueError, TypeError, IndexError, KeyError, AttributeError, ZeroDivisionError, OverflowError)
_FAILED = object()  # the value of a tensor made by a node that could not be imported


def _swapped(node):
    """A copy of a two-input node with its inputs in the other order (same name and outputs)."""
    from onnx import helper

    return helper.make_node(node.op_type, list(node.input)[::-1], list(node.output), name=node.name,
                            domain=node.domain or None)


MAX_REGION = 64  # nodes between a channels-last Transpose and the one back
GENERIC_GRAPH_NAMES = {"main_graph", "torch_jit", "torch-jit-export", "tf2onnx", "graph", "model"}


class _Unsupported(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _near(value, target: float) -> bool:
    return isinstance(value, np.ndarray) and value.size == 1 and abs(float(value.reshape(())) - target) < 1e-6


def _is_torch_hardsigmoid(node) -> bool:
    a = _attrs(node)
    return abs(a.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(a.get("beta", 0.5) - 0.5) < 1e-6


def read_onnx(path) -> Imported:
    """Import the ONNX model at ``path``: a flat spec document, its weights, and each layer's source node."""
    model = load(path)
    with np.errstate(all="ignore"):  # a damaged file's NaN or overflowing scale is its problem, not a warning of ours
        return _Importer(model, str(path)).run()
