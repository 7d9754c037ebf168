"""``archcheck summary``: the per-layer table and totals."""

from __future__ import annotations

import click

from archcheck.commands import batch_option, dtype_option, input_option, reported_errors, spec_argument
from archcheck.propagate import OPTIMIZER_STATES
from archcheck.render.summary import FORMATS, show


@click.command()
@spec_argument
@batch_option
@dtype_option
@input_option
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
              help="Optimizer whose state counts in training memory.")
@click.option("--format", "-f", "fmt", type=click.Choice(list(FORMATS)), default="table",
              show_default=True,
              help="Output format; `table` is plain text when not on a terminal. `mermaid` (renders in GitHub "
                   "markdown), `dot` (Graphviz) and `svg` (needs the report extra) draw the layer graph, blocks as "
                   "groups.")
def summary(spec, batch, dtype, input_shape, optimizer, fmt):
    """Print every layer's output shape, parameters, MACs, memory and receptive field, then totals.

    SPEC is a YAML or JSON spec file. Exit 0 on success, 2 when the spec is invalid
    (each problem printed with file:line:col and a fix).
    """
    from archcheck.pipeline import analyze, require_used

    with reported_errors():
        analysis = analyze(spec, batch, dtype, input_shape, optimizer)
        require_used(analysis)
        show(analysis, fmt)
