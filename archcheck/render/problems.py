"""Printing spec problems: location, code, layer, message, the spec line and the fix."""

from __future__ import annotations

from functools import lru_cache

import click

from archcheck.errors import Loc, Problem


@lru_cache(maxsize=64)
def _lines(file: str) -> tuple[str, ...]:
    try:
        with open(file, encoding="utf-8") as fh:
            return tuple(fh.read().splitlines())
    except (OSError, UnicodeDecodeError):
        return ()


def excerpt(loc: Loc | None) -> str:
    """The spec line at ``loc`` with a caret under the column, or an empty string."""
    if loc is None:
        return ""
    lines = _lines(loc.file)
    if not 1 <= loc.line <= len(lines):
        return ""
    text = lines[loc.line - 1]
    return f"   {loc.line:>4} | {text}\n        | {' ' * (loc.col - 1)}^"


def format_problem(problem: Problem, color: bool = False) -> str:
    parts = [problem.headline(click.style("error", fg="red", bold=True) if color else "error")]
    snippet = excerpt(problem.loc)
    if snippet:
        parts.append(snippet)
    if problem.fix:
        parts.append(f"  = fix: {problem.fix}")
    return "\n".join(parts)


def print_problems(problems: list[Problem]) -> None:
    color = click.get_text_stream("stderr").isatty()
    for p in problems:
        click.echo(format_problem(p, color), err=True)
    n = len(problems)
    click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
