"""The static path in one call: load -> expand -> graph -> propagate."""

from __future__ import annotations

from archcheck.errors import Collector
from archcheck.graph import build_graph
from archcheck.propagate import Analysis, propagate
from archcheck.spec import load_spec


def analyze(path, batch: int = 1, dtype: str = "float32", input_shape=None, optimizer: str = "adam") -> Analysis:
    """Analyse a spec file (or a model file, imported); raise SpecError with every problem found."""
    return propagate(build_graph(read_spec(path)), batch, dtype, input_shape, optimizer)


def analyze_model(path, batch: int = 1, dtype: str = "float32", input_shape=None, optimizer: str = "adam"):
    """``(analysis, weights)``: a model file's own weights with its analysis (None for a spec file, which has none)."""
    from archcheck.importers import is_model

    if not is_model(path):
        return analyze(path, batch, dtype, input_shape, optimizer), None
    from archcheck.importers.load import document, read_model
    from archcheck.spec import expand

    imported = read_model(path)
    spec = expand(document(imported, str(path)), str(path))
    return propagate(build_graph(spec), batch, dtype, input_shape, optimizer), imported.weights


def read_spec(path):
    """The expanded Spec of a spec file, or of a model file (``.onnx``) imported in memory: the one place
    a command's SPEC argument is told apart by its suffix (the importer, and onnx, load only for models)."""
    from archcheck.importers import is_model

    if is_model(path):
        from archcheck.importers.load import load_model_spec

        return load_model_spec(path)
    return load_spec(path)


def require_used(analysis: Analysis) -> None:
    """Refuse a network with layers whose output reaches no output (SpecError): its totals would count them.
    The calculator's commands (summary, diff) need this; lint reports them as findings instead."""
    col = Collector()
    for node in analysis.graph.unused():
        col.add("invalid-spec", "its output reaches no output of the network", node.loc, node.name,
                "use it as an input of a later layer, list it under `outputs:`, or remove it")
    col.raise_if_any()
