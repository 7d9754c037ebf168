"""``archcheck explain CODE|SLUG``: a rule's documentation."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import config_options, reported_errors, setup
from archcheck.render import escape


def explanation(rule) -> str:
    """A header (code, slug, default severity, options, kind), the summary and the documentation (Markdown)."""
    facts = [f"default severity: {rule.severity}"]
    if rule.options:
        facts.append("options: " + ", ".join(f"{k} = {v!r}" for k, v in rule.options.items()))
    if rule.kind == "dynamic":
        facts.append("dynamic: checked by `archcheck run --grad`")
    if rule.origin != "built-in":
        facts.append(f"from {rule.origin}")
    doc = rule.doc or "(This rule has no documentation.)"
    return f"{rule.code} {rule.slug} ({'; '.join(facts)})\n{rule.summary}\n\n{doc}"


@click.command()
@click.argument("rule")
@config_options
def explain(rule, config_path, no_config, no_custom_rules):
    """Print the documentation of RULE, given by code (AC101) or slug (pool-too-early).

    Exit 2 when no rule has that name.
    """
    from archcheck.config import ConfigError
    from archcheck.errors import did_you_mean
    from archcheck.lint import find_rule

    with reported_errors():
        _, registry = setup(config_path, no_config, Path.cwd(), no_custom_rules)
        found = find_rule(rule, registry)
        if found is None:
            names = [*registry, *(r.slug for r in registry.values())]
            raise ConfigError(f"unknown rule '{rule}'{did_you_mean(rule, names)}", "`archcheck rules` lists the rules")
        click.echo(escape.terminal_lines(explanation(found)))  # a custom rule's text is the user's
