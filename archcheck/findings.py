"""What lint rules (static, and the dynamic ones of `archcheck run --grad`) report.

A rule's ``check`` yields ``Report`` s; the engine stamps them with the rule's code,
slug and configured severity, giving ``Finding`` s that every output format renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from archcheck.errors import Loc

SEVERITIES = ("info", "warning", "error")  # in increasing order


class Report(NamedTuple):
    """What a rule says about one place: the layer (a ``Node``, or None for the whole spec),
    the message (with the numbers involved) and the suggested fix."""

    layer: object | None
    message: str
    fix: str | None = None
    loc: Loc | None = None  # defaults to the layer's location


@dataclass(frozen=True)
class Finding:
    code: str  # stable, e.g. AC101
    rule: str  # slug, e.g. pool-too-early
    severity: str  # one of SEVERITIES
    message: str
    loc: Loc | None
    layer: str | None = None
    fix: str | None = None
