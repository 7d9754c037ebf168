"""``archcheck rules``: the rule catalogue."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from archcheck.commands import reported_errors
from archcheck.commands.lint import config_options
from archcheck.render import escape


def catalogue(rules) -> list[dict]:
    return [{"code": r.code, "slug": r.slug, "kind": r.kind, "severity": r.severity, "summary": r.summary,
             "options": r.options, "origin": r.origin} for r in rules.values()]


def _options(options: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


@click.command()
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "plain", "json"]), default="table",
              show_default=True, help="Output format; `table` is plain text when not on a terminal.")
@config_options
def rules(fmt, config_path, no_config, no_custom_rules):
    """List every rule: code, slug, kind, default severity, summary and options.

    Static rules check a spec (`archcheck lint`); dynamic ones check a forward and backward
    pass (`archcheck run --grad`). Custom rules (the configuration's `custom-rules`, found from the current directory)
    and installed plugins are listed with the built-in ones. `archcheck explain CODE`
    prints a rule's documentation.
    """
    from archcheck.commands.lint import setup

    with reported_errors():
        _, registry = setup(config_path, no_config, Path.cwd(), no_custom_rules)
        rows = catalogue(registry)
        if fmt == "json":
            click.echo(json.dumps(rows, indent=2))
        elif fmt == "table" and sys.stdout.isatty():
            from rich.console import Console
            from rich.table import Table

            console = Console()
            table = Table(box=None, header_style="bold")
            for name in ("code", "slug", "kind", "severity"):  # never cut: a slug is what you type
                table.add_column(name, no_wrap=True)
            table.add_column("summary", ratio=2)
            wide = console.width >= 140  # else the options follow the summary, and the summary wraps
            if wide:
                table.add_column("options", ratio=1)
            for r in rows:
                options = _options(r["options"])
                cells = [r["code"], r["slug"], r["kind"], r["severity"]]
                cells += [r["summary"], options] if wide else [r["summary"] + (f" [{options}]" if options else "")]
                table.add_row(*map(escape.rich, cells))
            console.print(table)
        else:
            width = max(len(r["slug"]) for r in rows)
            for r in rows:
                options = f"  [{_options(r['options'])}]" if r["options"] else ""
                click.echo(escape.terminal(f"{r['code']:<6} {r['slug']:<{width}}  {r['kind']:<7}  {r['severity']:<7}  "
                                           f"{r['summary']}{options}"))  # a custom rule's text is the user's
