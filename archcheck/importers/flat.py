"""The plain writer of an imported document: the flat spec as YAML, one layer per line.

A stand-in for ``archcheck.importers.write.compact`` (blocks and ``repeat`` found in the flat list):
``archcheck import`` calls whichever ``compact`` it imports, and a written spec is the same network either way.
"""

from __future__ import annotations

import yaml

TOP_ORDER = ("name", "description", "input", "classes", "output", "metadata", "outputs", "layers")


def _line(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=2**20)
    return text.removesuffix("...\n").strip()  # a lone scalar is dumped as a document with an end marker


def compact(doc: dict) -> str:
    """``doc`` as YAML: the top-level keys in a readable order, each layer one flow-style line."""
    keys = [k for k in TOP_ORDER if k in doc] + [k for k in doc if k not in TOP_ORDER]
    lines = []
    for key in keys:
        if key == "layers":
            lines.append("layers:")
            lines += [f"  - {_line(item)}" for item in doc["layers"]]
        elif key == "metadata":
            lines.append(yaml.safe_dump({key: doc[key]}, sort_keys=False, width=2**20).rstrip())
        else:
            lines.append(f"{_line(key)}: {_line(doc[key])}")
    return "\n".join(lines) + "\n"
