"""Importers: other formats read into a flat spec document (plain data), weights and their origins.

``archcheck.importers.onnx.read_onnx`` reads an ONNX model; ``archcheck.importers.load`` turns a model file
into a Spec for the commands (imported lazily: reading a YAML spec never imports onnx)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archcheck.errors import ArchcheckError

MODEL_SUFFIXES = (".onnx",)


@dataclass
class Imported:
    """A model read from another format.

    ``doc``: a flat spec document as plain data (``name``, ``input``, ``layers``, ``outputs``, ``metadata``);
    ``weights``: state_dict name (``<layer>.<suffix>``) -> array; ``origin``: layer name -> the source node
    it came from (messages, SARIF logical locations); ``header``: comment lines for a written spec."""

    doc: dict
    weights: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    header: list = field(default_factory=list)


class ImportProblem(ArchcheckError):
    """A model file that cannot be imported: what is wrong with it (all of it at once) and what to do."""


def is_model(path) -> bool:
    return Path(str(path)).suffix.lower() in MODEL_SUFFIXES
