"""Printing spec problems: location, code, layer, message, the spec line and the fix."""

from __future__ import annotations

import os
import stat
import sys
from functools import lru_cache

import click

from archcheck.errors import ArchcheckError, Loc, Problem, SpecError
from archcheck.render import escape

WIDTH = 100  # longest excerpt shown; longer lines are cut around the column


@lru_cache(maxsize=8)
def _lines(path: str, mtime: int, size: int) -> tuple[str, ...]:
    """A file's lines as it is now (the key includes its time and size); at most 2 MiB, the spec size limit."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return tuple(fh.read(2 * 2**20).splitlines())
    except OSError:
        return ()


def _line(file: str, number: int) -> str | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end: no excerpt
        return None
    lines = _lines(os.path.realpath(file), st.st_mtime_ns, st.st_size)
    return lines[number - 1] if number <= len(lines) else None


def excerpt(loc: Loc | None, note: str = "") -> str:
    """The spec line at ``loc`` with a caret (and ``note``) under the column, or an empty string."""
    if loc is None or loc.line < 1:
        return ""
    text = _line(loc.file, loc.line)
    if text is None:
        return ""
    col = max(loc.col - 1, 0)
    start = max(0, min(col - WIDTH // 2, len(text) - WIDTH))
    shown = text[start:start + WIDTH]
    # control characters (a NUL, an escape sequence) are shown, not sent to the terminal; a tab is one
    # column to the parser, so one space keeps the caret in place
    shown = "".join(c if c.isprintable() else " " if c == "\t" else "\N{REPLACEMENT CHARACTER}" for c in shown)
    if start:
        shown, col = "..." + shown[3:], col - start
    if start + WIDTH < len(text):
        shown = shown[:-3] + "..."
    return f"   {loc.line:>4} | {shown}\n        | {' ' * col}^{' ' + note if note else ''}"


_SEVERITY = "{severity}"


def format_problem(problem: Problem, color: bool = False) -> str:
    severity = click.style("error", fg="red", bold=True) if color else "error"
    parts = [escape.terminal(problem.headline(_SEVERITY)).replace(_SEVERITY, severity)]  # spec text, never obeyed
    if problem.loc is not None:
        # a layer made by a block: its line in the block, then where the block is used
        sites = [(problem.loc, "")] + [(use, "the block is used here") for use in reversed(problem.loc.via)]
        parts += [snippet for loc, note in sites if (snippet := excerpt(loc, note))]
    if problem.fix:
        parts.append(f"  = fix: {escape.terminal(problem.fix)}")
    return "\n".join(parts)


MAX_SHOWN = 100  # problems printed in full; past that, fixing the first ones usually fixes the rest


def print_problems(problems: list[Problem]) -> None:
    color = sys.stderr.isatty()
    for p in problems[:MAX_SHOWN]:
        click.echo(format_problem(p, color), err=True)
    n = len(problems)
    if n > MAX_SHOWN:
        click.echo(f"... and {n - MAX_SHOWN:,} more problems not shown", err=True)
    click.echo(f"{n:,} problem{'s' if n != 1 else ''} found", err=True)


def print_error(exc: ArchcheckError) -> None:
    """An error on stderr: a spec's problems each with its place, anything else as one message and its fix."""
    if isinstance(exc, SpecError):
        print_problems(exc.problems)
    else:
        click.echo(f"archcheck: error: {exc.message}" + (f"\n  = fix: {exc.fix}" if exc.fix else ""), err=True)
