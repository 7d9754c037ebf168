"""``archcheck lint``: check spec files against the design rules, for CI."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import click

from archcheck.commands import config_options, decided, reported_errors, setup
from archcheck.errors import EXIT_FINDINGS, EXIT_OK
from archcheck.findings import SEVERITIES
from archcheck.render.findings import FORMATS


def _split(values: tuple[str, ...]) -> list[str] | None:
    """``--select AC1,AC2 --select AC3`` -> ['AC1', 'AC2', 'AC3']; not given -> None."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _start(arg: str) -> Path:
    """Where the configuration search starts for a PATH argument."""
    if glob.has_magic(arg) and not os.path.lexists(arg):
        arg = arg[:min(arg.index(c) for c in "*?[" if c in arg)]
        arg = arg if arg.endswith(("/", os.sep)) or not arg else os.path.dirname(arg)
    path = Path(arg or ".")
    return path if path.is_dir() else path.parent


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS),
              help="Output format [default: the configuration's `format`, else auto: github inside GitHub Actions, "
                   "else text].")
@click.option("--fail-on", type=click.Choice(SEVERITIES),
              help="Exit 1 when a finding has this severity or a higher one [default: the configuration's "
                   "`fail-on`, else warning].")
@click.option("--select", multiple=True, metavar="RULES",
              help="Rules to run: codes, slugs or code prefixes, comma-separated; replaces the configuration's.")
@click.option("--ignore", multiple=True, metavar="RULES",
              help="Rules not to run, as for --select; replaces the configuration's.")
@config_options
def lint(paths, fmt, fail_on, select, ignore, config_path, no_config, no_custom_rules):
    """Check specs against CNN design rules and print the findings.

    PATH is a spec file, a directory (searched recursively for *.yaml, *.yml and *.json,
    skipping hidden directories) or a glob pattern. The configuration is the nearest
    archcheck.toml, or pyproject.toml with [tool.archcheck], above the first PATH.

    Exit 0 when no finding reaches --fail-on; 1 when one does (spec errors always do);
    2 for a usage or configuration error.
    """
    with reported_errors():
        from archcheck.lint import collect, fails, lint_paths, make_plan
        from archcheck.render.findings import render, resolve

        cfg, rules = setup(config_path, no_config, _start(paths[0]), no_custom_rules)
        plan = make_plan(cfg, rules, _split(select), _split(ignore))
        files = collect(list(paths), plan)
        result = lint_paths(files, plan)
        fmt = resolve(fmt or cfg.format)
        color = fmt == "text" and sys.stdout.isatty()
        shown = {c: r for c, r in rules.items() if c in plan.enabled}
        code = EXIT_FINDINGS if fails(result.findings, fail_on or cfg.fail_on) else EXIT_OK
        decided(code)
        click.echo(render(result.findings, fmt, files_checked=len(files), suppressed=result.suppressed,
                          rules=shown, color=color))
        sys.exit(code)
