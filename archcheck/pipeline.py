"""The static path in one call: load -> expand -> graph -> propagate."""

from __future__ import annotations

from archcheck.graph import build_graph
from archcheck.propagate import Analysis, propagate
from archcheck.spec import load_spec


def analyze(path, batch: int = 1, dtype: str = "float32", input_shape=None, optimizer: str = "adam") -> Analysis:
    """Analyse a spec file; raise SpecError with every problem found."""
    return propagate(build_graph(load_spec(path)), batch, dtype, input_shape, optimizer)
