"""Write an analysed spec as a standard ONNX model (export-time only: imports onnx and NumPy).

The graph input is ``input`` with shape ``(batch, *spec input)``, the batch axis symbolic;
there is one graph output per network output, named after its layer. Every layer's
output tensor carries the layer's name and its shape from the Analysis (so Netron shows
the same names and shapes as ``archcheck summary``), and every weight is an initializer
named with its state_dict key ``<layer>.<suffix>`` in PyTorch's layout. The model has
inference semantics: batchnorm uses its running statistics, dropout is the identity.

Each layer type writes itself (``Layer.to_onnx``) with the small ``Builder`` below;
this module only walks the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from archcheck import __version__
from archcheck.spec import INPUT

OPSET = 17
IR_VERSION = 8  # the IR that came with opset 17 (onnx 1.12); a newer onnx package would stamp its own, which
#                 older runtimes refuse ("Unsupported model IR version") although every operator is theirs
DTYPE = np.float32  # ONNX Runtime's CPU convolutions are float32 only
BATCH = "batch"  # the symbolic batch dimension
PROTOBUF_LIMIT = 2**31 - 1  # beyond this the weights must live in a side file


class Builder:
    """Collects the nodes and initializers of a graph and makes unique names.

    Layers call ``op`` to add a node, ``param`` for one of their weights, ``const`` and
    ``ints`` for constants. ``layer`` is the layer being written: its weights are
    ``<layer>.<suffix>``, its intermediate tensors ``<layer>/<hint>``; ``geometry`` is its
    window as the propagator worked it out (None for layers without one).
    """

    def __init__(self, params: dict):
        self.params = params
        self.layer = ""
        self.geometry = None
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._taken: set[str] = {INPUT}

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._taken:
            i += 1
            name = f"{hint}_{i}"
        self._taken.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        """Add one node; return its output name (``output``, or a fresh ``<layer>/<op>``)."""
        if output is None:
            output = self.fresh(f"{self.layer}/{op_type.lower()}")
        else:
            self._taken.add(output)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.fresh(f"{output}:{op_type}"),
                                           **attrs))
        return output

    def param(self, suffix: str) -> str:
        """The initializer holding the current layer's weight ``<layer>.<suffix>``, as given in params."""
        key = f"{self.layer}.{suffix}"
        if key not in self.params:
            raise KeyError(f"no array '{key}' among the weights")
        if key not in self.initializers:
            self._add(key, self.params[key])
        return key

    def const(self, hint: str, value) -> str:
        """A floating-point constant of the model's dtype."""
        return self._add(self.fresh(f"{self.layer}/{hint}"), np.asarray(value, dtype=DTYPE))

    def ints(self, hint: str, values) -> str:
        """An int64 constant (shapes, pads)."""
        return self._add(self.fresh(f"{self.layer}/{hint}"), np.asarray(values, dtype=np.int64))

    def _add(self, name: str, array: np.ndarray) -> str:
        self._taken.add(name)
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    @staticmethod
    def pads(pads) -> list[int]:
        """archcheck's ((before, after), ...) per axis -> ONNX's [b1, b2, ..., a1, a2, ...]."""
        return [p[0] for p in pads] + [p[1] for p in pads]


def _value_info(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])


def export_model(analysis, params: dict, outputs: list[str] | None = None) -> onnx.ModelProto:
    """Build the ONNX model of ``analysis`` with weights ``params`` (state_dict names and layouts,
    as ``archcheck.executor.init_params`` returns them).

    ``outputs`` names the layers exposed as graph outputs (default: the network's outputs);
    only the layers they depend on are written.
    """
    graph = analysis.graph
    outputs = list(outputs or graph.outputs)
    needed = graph.upstream(outputs)
    b = Builder({k: np.asarray(v, dtype=DTYPE) for k, v in params.items()})
    for node in graph.order:
        if node.name == INPUT or node.name not in needed:
            continue
        facts = analysis.layers[node.name]
        b.layer, b.geometry = node.name, facts.geometry
        node.layer.to_onnx(b, list(node.inputs), node.name, facts.in_shapes, facts.shape)
    _check_weights(analysis, needed, b)
    inner = [n for n in graph.order if n.name in needed and n.name != INPUT and n.name not in outputs]
    model_graph = helper.make_graph(
        b.nodes, analysis.spec.name or "archcheck",
        [_value_info(INPUT, analysis.layers[INPUT].shape)],
        [_value_info(name, analysis.layers[name].shape) for name in outputs],
        initializer=list(b.initializers.values()),
        value_info=[_value_info(n.name, analysis.layers[n.name].shape) for n in inner],
        doc_string=analysis.spec.description or "",
    )
    model = helper.make_model(model_graph, producer_name="archcheck", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    model.doc_string = f"Exported by archcheck {__version__} from {analysis.spec.file}"
    return model


def _check_weights(analysis, needed: set[str], b: Builder) -> None:
    """Every weight and buffer the propagator expects of the written layers was written, with its shape."""
    from archcheck.propagate import param_shapes

    for key, (shape, _) in param_shapes(analysis).items():
        name = key.rsplit(".", 1)[0]
        if name not in needed:
            continue
        found = tuple(b.initializers[key].dims) if key in b.initializers else None
        if found != shape:
            raise ValueError(f"layer '{name}': weight '{key}' should have shape {shape}, "
                             f"{'found ' + str(found) if found else 'it was not written'}")


def save_model(model: onnx.ModelProto, path, name: str | None = None) -> None:
    """Save and check ``model``; weights too large for one protobuf go to ``<name>.data`` beside it (``name``:
    the file's final name, when ``path`` is a temporary file renamed to it afterwards)."""
    path = Path(path)
    if sum(len(t.raw_data) for t in model.graph.initializer) > PROTOBUF_LIMIT - 2**26:
        onnx.save_model(model, str(path), save_as_external_data=True, location=f"{name or path.name}.data")
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
