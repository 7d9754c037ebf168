"""``archcheck summary``: the per-layer table and totals."""

from __future__ import annotations

import sys

import click

from archcheck.commands import batch_option, dtype_option, input_option, reported_errors, spec_argument
from archcheck.errors import Collector


@click.command()
@spec_argument
@batch_option
@dtype_option
@input_option
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam"]), default="adam", show_default=True,
              help="Optimizer whose state counts in training memory.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json", "markdown", "csv"]), default="table",
              show_default=True, help="Output format; `table` is plain text when not on a terminal.")
def summary(spec, batch, dtype, input_shape, optimizer, fmt):
    """Print every layer's output shape, parameters, MACs, memory and receptive field, then totals.

    SPEC is a YAML or JSON spec file. Exit 0 on success, 2 when the spec is invalid
    (each problem printed with file:line:col and a fix).
    """
    from archcheck.pipeline import analyze
    from archcheck.render import summary as render

    with reported_errors():
        analysis = analyze(spec, batch, dtype, input_shape, optimizer)
        col = Collector()
        for node in analysis.graph.unused():
            col.add("invalid-spec", "its output reaches no output of the network", node.loc, node.name,
                    "use it as an input of a later layer, list it under `outputs:`, or remove it")
        col.raise_if_any()
        if fmt == "json":
            click.echo(render.render_json(analysis))
        elif fmt == "markdown":
            click.echo(render.render_markdown(analysis))
        elif fmt == "csv":
            click.echo(render.render_csv(analysis), nl=False)
        elif sys.stdout.isatty():
            from rich.console import Console

            console = Console()
            if render.table_width(analysis) + 8 <= console.width:  # borders and padding
                render.render_rich(analysis, console)
            else:  # rich would squeeze the name column to nothing and cut the figures
                click.echo(render.render_narrow(analysis, console.width))
        else:
            click.echo(render.render_plain(analysis))
