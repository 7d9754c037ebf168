"""Importers: other frameworks' model files read as archcheck specs and weights.

Every importer returns an ``Imported``: a flat spec document as plain data (what the spec loader
reads), the weights under archcheck's names and PyTorch's layouts, the source name of every layer
(for messages) and comment lines saying where the document came from. ``onnx.read_onnx`` reads an ONNX
model, ``keras.read_keras`` a ``.keras`` file, ``torch.read_torch`` a PyTorch module (through torch's ONNX
exporter); ``load`` turns a model file into a Spec for the commands. ``write.compact`` turns a flat
document into a spec a person keeps (blocks, repeats, branches); ``flat.flatten`` makes one from a spec.
This module stays light: reading a YAML spec never imports onnx, h5py or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archcheck.errors import ArchcheckError

MODEL_SUFFIXES = (".onnx", ".keras")


@dataclass
class Imported:
    """A model read from another format.

    ``doc``: a flat spec document as plain data (``name``, ``input``, ``layers``, ``outputs``, ``metadata``);
    ``weights``: state_dict name (``<layer>.<suffix>``) -> array; ``origin``: layer name -> the source node
    or layer it came from (messages, SARIF logical locations); ``header``: comment lines for a written spec."""

    doc: dict
    weights: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    header: list = field(default_factory=list)


class ImportProblem(ArchcheckError):
    """A model file that cannot be imported: what is wrong with it (all of it at once) and what to do."""


def is_model(path) -> bool:
    return Path(str(path)).suffix.lower() in MODEL_SUFFIXES
