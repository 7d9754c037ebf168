"""One way to draw a table, for every report: rich on a terminal, aligned plain text otherwise.

A table is its columns and rows of cell text. The report decides which columns hold figures
(right-aligned) and which may wrap on a terminal (rich never cuts the others), and escapes the
user's text for its output; ``terminal`` says whether there is a terminal to draw on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # figures
    wrap: bool = False  # rich may wrap the cells of this column
    ratio: int | None = None  # rich: this column's share of the spare width
    style: str | None = None


def terminal():
    """A rich console when standard output is a terminal, else None (piped, redirected: plain text)."""
    if not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console()


def plain(columns: list[Column], rows, *, underline: bool = False) -> list[str]:
    """The table as lines of text: each cell padded to its column's widest, two spaces apart, trailing
    blanks dropped. ``underline`` puts a line of dashes under the header; the header then keeps the
    table's full width, as its underline does."""
    table = [[c.header for c in columns], *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if col.right else c.ljust(w) for c, w, col in zip(cells, widths, columns))

    head = [line(table[0]), "  ".join("-" * w for w in widths)] if underline else [line(table[0]).rstrip()]
    return head + [line(row).rstrip() for row in table[1:]]


def rich(columns: list[Column], rows, styles=None, title: str | None = None, **options):
    """The table for rich (``console.print`` it): a bold header, the title on the left; ``styles`` gives
    each row's style (None for none), ``options`` go to ``rich.table.Table`` (``box``, ...). Cells and the
    title are printed as they are: escape the user's text with ``escape.rich`` first."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold", **options)
    for c in columns:
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=not c.wrap, ratio=c.ratio,
                         style=c.style)
    for i, cells in enumerate(rows):
        table.add_row(*cells, style=styles[i] if styles else None)
    return table
