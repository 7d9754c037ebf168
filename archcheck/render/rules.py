"""Printing the rule catalogue (``archcheck rules``): a table, a plain listing, or JSON.

``FORMATS`` maps each ``--format`` to its text renderer; ``show`` prints one, the ``table``
drawn with rich on a terminal. A custom rule's text is the user's: it is escaped for each output."""

from __future__ import annotations

import json

from archcheck.render import escape, table


def catalogue(rules) -> list[dict]:
    """One entry per rule of the registry: code, slug, kind, severity, summary, options, origin."""
    return [{"code": r.code, "slug": r.slug, "kind": r.kind, "severity": r.severity, "summary": r.summary,
             "options": r.options, "origin": r.origin} for r in rules.values()]


def _options(options: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


def render_plain(rows: list[dict]) -> str:
    """One line per rule, the code first (for grep and cut)."""
    width = max(len(r["slug"]) for r in rows)
    return "\n".join(escape.terminal(f"{r['code']:<6} {r['slug']:<{width}}  {r['kind']:<7}  {r['severity']:<7}  "
                                     f"{r['summary']}" + (f"  [{_options(r['options'])}]" if r["options"] else ""))
                     for r in rows)


def render_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)


FORMATS = {"table": render_plain, "plain": render_plain, "json": render_json}


def render_rich(rows: list[dict], console) -> None:
    """The code, slug, kind and severity are never cut (a slug is what you type); on a terminal narrower
    than 140 columns the options follow the summary, which wraps."""
    columns = [table.Column(name) for name in ("code", "slug", "kind", "severity")]
    columns.append(table.Column("summary", wrap=True, ratio=2))
    wide = console.width >= 140
    if wide:
        columns.append(table.Column("options", wrap=True, ratio=1))
    cells = []
    for r in rows:
        options = _options(r["options"])
        line = [r["code"], r["slug"], r["kind"], r["severity"]]
        line += [r["summary"], options] if wide else [r["summary"] + (f" [{options}]" if options else "")]
        cells.append(list(map(escape.rich, line)))
    console.print(table.rich(columns, cells, box=None))


def show(rows: list[dict], fmt: str) -> None:
    """Print the catalogue in ``fmt``, a key of ``FORMATS``: the table is rich's on a terminal."""
    import click

    console = table.terminal() if fmt == "table" else None
    if console is None:
        click.echo(FORMATS[fmt](rows))
    else:
        render_rich(rows, console)
