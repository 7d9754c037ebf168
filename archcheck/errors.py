"""The errors archcheck reports, the exit codes, and the locations and problems of a spec.

Every error archcheck reports to the user is an ``ArchcheckError``: what is wrong and how to
fix it, and the exit code it ends a command with (``commands.reported_errors`` is the one
place that prints it and exits). Its subclasses name where the bad input came from.

Every stage (load, expand, graph, propagate) reports bad input as a ``Problem``: a
stable code, the spec location, the layer, what was received and what was expected,
and how to fix it. Stages collect problems and raise one ``SpecError`` holding all
of them, so independent mistakes in one file are reported together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Exit codes shared by every command (documented in the README).
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in archcheck: any exception that is not an ArchcheckError


class ArchcheckError(Exception):
    """Input archcheck cannot use: ``message`` says what is wrong, ``fix`` (if any) how to fix it.

    ``str()`` is the message alone; a command prints ``archcheck: error: <message>`` and
    ``  = fix: <fix>`` on stderr and exits with ``exit_code``.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message, self.fix = message, fix


@dataclass(frozen=True)
class Loc:
    """A place in a spec file; 1-based line and column.

    ``via`` lists the block use sites, outermost first, for layers made by a block:
    the layer itself sits at ``line:col`` inside the block definition.
    """

    file: str
    line: int
    col: int
    via: tuple[Loc, ...] = ()
    node: str | None = None  # in an imported model (no lines: line and col are 0), the source node

    def __str__(self) -> str:
        if self.line < 1:
            return f"{self.file}: node '{self.node}'" if self.node else self.file
        return f"{self.file}:{self.line}:{self.col}"

    def describe(self) -> str:
        """``file:line:col``, followed by the block use sites that produced it."""
        if not self.via:
            return str(self)
        uses = ", ".join(f"{u.line}:{u.col}" for u in self.via)
        return f"{self} (from the block used at line {uses})"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec.

    ``code`` is stable and groups problems: ``invalid-yaml``, ``invalid-spec``
    (structure, names, arguments) and ``shape-error`` (shapes do not fit).
    """

    code: str
    message: str
    loc: Loc | None = None
    layer: str | None = None
    fix: str | None = None

    def headline(self, severity: str = "error") -> str:
        """``file:line:col: error: code: layer 'x': message`` on one line."""
        where = f"{self.loc.describe()}: " if self.loc else ""
        layer = f"layer '{self.layer}': " if self.layer else ""
        return f"{where}{severity}: {self.code}: {layer}{self.message}"


class SpecError(ArchcheckError):
    """Raised by a stage that found one or more problems; each carries its own place and fix."""

    def __init__(self, problems: list[Problem], partial=None):
        super().__init__("\n".join(p.headline() + (f"\n  = fix: {p.fix}" if p.fix else "") for p in problems))
        self.problems = problems
        self.partial = partial  # for shape errors: the Analysis of the layers that do fit (lint checks those)


class Collector:
    """Gathers problems within a stage; ``raise_if_any`` ends the stage."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, code: str, message: str, loc: Loc | None = None, layer: str | None = None,
            fix: str | None = None) -> None:
        self.problems.append(Problem(code, message, loc, layer, fix))

    def raise_if_any(self) -> None:
        """Raise every problem so far, once each, in file order (problems without a place first).

        A mistake inside a block definition is found again at every use of the block (and
        an alias repeats its node): the same message at the same place is reported once,
        with the first use site.
        """
        if self.problems:
            unique = {}
            for p in self.problems:
                key = (p.code, p.message, p.fix) + ((p.loc.file, p.loc.line, p.loc.col) if p.loc else ())
                unique.setdefault(key, p)
            raise SpecError(sorted(unique.values(), key=lambda p: (p.loc.line, p.loc.col) if p.loc else (0, 0)))


def show(value, limit: int = 80) -> str:
    """A received value as the spec would write it (``true``, ``null``, ``'text'``, ``[1, 2]``), shortened."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        items = list(value.items())
        more = ", ..." if len(items) > 8 else ""
        text = "{" + ", ".join(f"{k}: {show(v, limit)}" for k, v in items[:8]) + more + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value[:8]) + (", ..." if len(value) > 8 else "") + "]"
    elif isinstance(value, float) and math.isinf(value):
        text = f"{value} (a number too large to represent)"
    elif isinstance(value, int) and value.bit_length() > 128:
        text = f"a {value.bit_length():,}-bit number"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


MAX_CHOICES = 1000


def closest(word, choices) -> str | None:
    """The choice ``word`` was most likely meant to be, if any is close."""
    import difflib

    word = str(word)
    if len(word) > 100:  # no name is this long; comparing it costs its length times every choice's
        return None
    names = [str(c) for c in choices]
    if len(names) > MAX_CHOICES:  # a close match has about the same length: compare those, a bounded few
        names = [n for n in names if abs(len(n) - len(word)) <= 2][:MAX_CHOICES]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""
