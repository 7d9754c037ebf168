"""Importers: other frameworks' model files read as archcheck specs and weights.

Every importer returns an ``Imported``: a flat spec document as plain data (what the spec loader
reads), the weights under archcheck's names and PyTorch's layouts, the source name of every layer
(for messages) and comment lines saying where the document came from. ``write.compact`` turns a flat
document into a spec a person keeps (blocks, repeats, branches); ``flat.flatten`` makes one from a spec.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Imported:
    doc: dict          # a FLAT spec document as plain data: {name, input, layers: [{<type>: {args}, name: <n>, inputs: [..]}, ...], outputs?, metadata: {source: ...}}; archcheck's spec loader accepts it as is  # noqa: E501
    weights: dict      # name -> numpy array under archcheck's names `<layer name>.<suffix>` and PyTorch layouts
    origin: dict       # archcheck layer name -> source layer name (for messages)
    header: list[str]  # comment lines: where it came from
