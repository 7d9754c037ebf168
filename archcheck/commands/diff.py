"""``archcheck diff OLD NEW``: what changed between two versions of a network, for reviewers and CI."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from archcheck.commands import (
    batch_option,
    config_options,
    decided,
    dtype_option,
    input_option,
    reported_errors,
    setup,
)
from archcheck.errors import EXIT_FINDINGS, EXIT_OK
from archcheck.propagate import OPTIMIZER_STATES
from archcheck.render.diff import FORMATS


def _arguments(specs: tuple[str, ...], rev: str | None) -> tuple[str, str]:
    """(OLD, NEW) from the command line: two specs, or with --rev one file at REV and as it is now."""
    if rev is not None:
        if len(specs) != 1:
            raise click.UsageError(f"--rev {rev} compares one file at that revision with the working copy, so it takes "
                                   f"one PATH; received {len(specs)} ({' '.join(specs) or 'none'}). Give one, e.g. "
                                   f"`archcheck diff --rev {rev} model.yaml`, or two specs without --rev")
        if specs[0] == "-":
            raise click.UsageError(f"--rev {rev} reads a file of the repository at that revision; '-' (standard "
                                   "input) has none. Give the file's path, e.g. `archcheck diff --rev "
                                   f"{rev} model.yaml`")
        return f"{rev}:{specs[0]}", specs[0]
    if len(specs) != 2:
        raise click.UsageError(f"expected two specs, OLD and NEW, received {len(specs)} "
                               f"({' '.join(specs) or 'none'}); e.g. `archcheck diff old.yaml new.yaml`, "
                               "`archcheck diff HEAD~1:model.yaml model.yaml` or `archcheck diff --rev HEAD~1 "
                               "model.yaml`")
    if specs == ("-", "-"):
        raise click.UsageError("standard input ('-') can be one of OLD and NEW, not both; give the other as a file "
                               "or REV:PATH")
    return specs


def _figures(ctx, param, value) -> list[str]:
    """``--fail-on-increase params,macs`` -> ['params', 'macs']."""
    from archcheck.diff import GROWTH
    from archcheck.errors import did_you_mean

    figures = [v.strip() for v in (value or "").split(",") if v.strip()]
    for figure in figures:
        if figure not in GROWTH:
            raise click.BadParameter(f"unknown figure '{figure}'{did_you_mean(figure, GROWTH)}; expected a "
                                     f"comma-separated list of: {', '.join(GROWTH)}")
    return figures


@click.command()
@click.argument("specs", nargs=-1, metavar="OLD NEW")
@click.option("--rev", metavar="REV", help="Compare the one PATH given at git revision REV with the working copy "
              "(the same as `REV:PATH PATH`).")
@batch_option
@dtype_option
@input_option
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
              help="Optimizer whose state counts in training memory.")
@click.option("--format", "-f", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True,
              help="Output format: `table` (plain text when not on a terminal), `markdown` for a pull request "
                   "comment, `json` (archcheck/schemas/diff.schema.json).")
@click.option("--fail-on-increase", "fail_on", callback=_figures, metavar="FIGURES",
              help="Exit 1 when one of these grew from OLD to NEW, comma-separated: params, macs, flops, memory "
                   "(peak inference), training-memory, findings (a finding added).")
@config_options
def diff(specs, rev, batch, dtype, input_shape, optimizer, fmt, fail_on, config_path, no_config, no_custom_rules):
    """Compare two versions of a network: per-layer and total changes and the lint findings added and removed.

    OLD and NEW are each a spec (YAML or JSON) or model file (.onnx, .keras); REV:PATH, the file at
    PATH (relative to the current directory) as it is at a git revision, read with git in the file's
    repository (`HEAD~1:model.yaml`, `main:specs/net.yaml`); or `-`, a spec read from standard input
    (one side at most), which stands for the other side's file. A path that exists is always a path.

    \b
      archcheck diff old.yaml new.yaml
      archcheck diff HEAD~1:model.yaml model.yaml
      archcheck diff --rev main model.yaml --format markdown > comment.md
      git show HEAD~1:model.yaml | archcheck diff - model.yaml

    Layers are matched by the names written in the spec, then the rest by aligning the two execution
    orders (by type and output shape, or by type and generated name: whichever lists fewer layers);
    added, removed and changed layers are listed with old -> new figures, unchanged ones counted.
    Findings are those of `archcheck lint` (at the specs' own input), both sides checked with the
    configuration found for NEW's path, and matched by rule and layer, not by line.

    Exit 0 when the specs were compared; 1 when a figure named by --fail-on-increase grew; 2 for bad
    input (a spec, a revision, a configuration, an option), each problem with its place
    (HEAD~1:model.yaml:12:5) and a fix.
    """
    old_arg, new_arg = _arguments(specs, rev)
    with reported_errors():
        from archcheck.diff import compare
        from archcheck.lint import make_plan
        from archcheck.render.diff import growth_note, show_diff
        from archcheck.sources import parse, path_of

        old_src = parse(old_arg, stands_for=path_of(new_arg))
        new_src = parse(new_arg, stands_for=path_of(old_arg))
        cfg, rules = setup(config_path, no_config, Path(new_src.path).parent, no_custom_rules)
        plan = make_plan(cfg, rules)
        sides = [_side(src, plan, batch, dtype, input_shape, optimizer) for src in (old_src, new_src)]
        (old, old_found), (new, new_found) = sides
        result = compare(old, new, old_src.name, new_src.name, old_found, new_found)
        grown = result.grown(fail_on)
        decided(EXIT_FINDINGS if grown else EXIT_OK)
        show_diff(result, fmt)
        if grown:
            click.echo(growth_note(result, grown), err=True)
            sys.exit(EXIT_FINDINGS)


def _side(source, plan, batch, dtype, input_shape, optimizer):
    """(analysis at the command's settings, lint findings) of one side; SpecError for a spec that is not valid."""
    from archcheck.graph import build_graph
    from archcheck.lint import lint_analysis
    from archcheck.pipeline import require_used
    from archcheck.propagate import propagate
    from archcheck.sources import read, text_of

    graph = build_graph(read(source))
    analysis = propagate(graph, batch, dtype, input_shape, optimizer)
    require_used(analysis)
    linted = analysis if (batch, dtype, input_shape) == (1, "float32", None) else propagate(graph)  # lint's settings
    return analysis, lint_analysis(linted, plan, text_of(source), source.path).findings
