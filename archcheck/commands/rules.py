"""``archcheck rules``: the rule catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import config_options, reported_errors, setup
from archcheck.render.rules import FORMATS, catalogue, show


@click.command()
@click.option("--format", "-f", "fmt", type=click.Choice(list(FORMATS)), default="table",
              show_default=True, help="Output format; `table` is plain text when not on a terminal.")
@config_options
def rules(fmt, config_path, no_config, no_custom_rules):
    """List every rule: code, slug, kind, default severity, summary and options.

    Static rules check a spec (`archcheck lint`); dynamic ones check a forward and backward
    pass (`archcheck run --grad`). Custom rules (the configuration's `custom-rules`, found from the current directory)
    and installed plugins are listed with the built-in ones. `archcheck explain CODE`
    prints a rule's documentation.
    """

    with reported_errors():
        _, registry = setup(config_path, no_config, Path.cwd(), no_custom_rules)
        show(catalogue(registry), fmt)
