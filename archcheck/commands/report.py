"""``archcheck report``: one self-contained HTML page of a spec's figures, findings and, with weights or data,
what the network looks at."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import (
    batch_option,
    config_options,
    dtype_option,
    input_option,
    max_memory_option,
    reported_errors,
    setup,
    spec_argument,
)
from archcheck.errors import ArchcheckError
from archcheck.propagate import OPTIMIZER_STATES

EXTRA = "archcheck report needs the report extra: pip install 'archcheck[report]'"


def _layers(ctx, param, value):
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"expected layer names separated by commas, received '{value}'")
    return names


def _need_extra() -> None:
    """The report's libraries, or exit 2 saying how to install them."""
    try:
        import bokeh  # noqa: F401
        import pygraphviz  # noqa: F401
    except ImportError as exc:
        raise ArchcheckError(f"{EXTRA} ({exc.name or exc} is not installed)",
                             "install the extra into the environment archcheck runs in") from None


@click.command()
@spec_argument
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="FILE",
              help="Where to write the page, e.g. report.html.")
@batch_option
@dtype_option
@input_option
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
              help="Optimizer whose state counts in training memory.")
@click.option("--weights", type=click.Path(dir_okay=False), metavar="W.npz",
              help="Weights under state_dict names: adds the executor section (filters, activation maps, effective "
                   "receptive field, occlusion) [default: a model file's own, else initialised, seed 0].")
@click.option("--data", type=click.Path(), metavar="PATH",
              help="A .npy/.npz array (N, *input), an image, or a directory of images: adds the executor section, "
                   "on its first 8 samples [default with --weights: random normal input].")
@click.option("--layers", callback=_layers, metavar="NAME,...",
              help="Layers whose activation maps the executor section shows [default: four spread across depth].")
@max_memory_option
@config_options
def report(spec, output, batch, dtype, input_shape, optimizer, weights, data, layers, max_memory, config_path,
           no_config, no_custom_rules):
    """Write an HTML report of SPEC to FILE: totals and conventions, the architecture, lint findings,
    where the cost goes (per layer and per block), live memory over the execution order with its peak,
    receptive-field growth, and with --weights or --data what the network looks at (first-layer filters,
    activation maps, effective receptive field, occlusion sensitivity).

    The page is one file that opens offline: no request leaves it. The findings are `archcheck lint`'s
    on SPEC, with the configuration found from SPEC as lint finds it. Needs the report extra:
    pip install 'archcheck[report]'.

    Exit 0 on success; 2 for an invalid spec, data, weights, option or configuration, or without the extra.
    """
    if layers and not (weights or data):
        raise click.UsageError("--layers chooses the executor section's activation maps: give --data or --weights too")
    if input_shape and (weights or data):
        raise click.UsageError("the executor section (--data, --weights) runs the network at the spec's input; "
                               "leave out --input, or write the size into the spec's `input`")
    with reported_errors():
        _need_extra()
        from archcheck.commands._execution import refuse_overwrite
        from archcheck.files import write_atomic
        from archcheck.lint import lint_analysis, lint_file, make_plan
        from archcheck.pipeline import analyze
        from archcheck.render.report import render

        refuse_overwrite(output, spec, weights, data)
        analysis = analyze(spec, batch, dtype, input_shape, optimizer)
        cfg, rules = setup(config_path, no_config, Path(spec).parent, no_custom_rules)
        plan = make_plan(cfg, rules)
        # lint's findings are of the spec at its own input; batch and dtype change no rule's verdict (budgets
        # name their own), so the analysis made above serves unless --input changed the shapes
        linted = lint_analysis(analysis, plan, None, spec) if input_shape is None else lint_file(spec, plan)
        probe = note = None
        if weights or data:
            probe, note = _probe(spec, data, weights, layers, max_memory)
        page = render(analysis, linted.findings, linted.suppressed, probe, note)
        try:
            write_atomic(output, lambda tmp: tmp.write_text(page, encoding="utf-8"))
        except OSError as exc:
            raise ArchcheckError(f"cannot write the report to {output}: {exc.strerror or exc}",
                                 "choose a path in a writable directory") from None
    click.echo(f"wrote {output} ({len(page.encode()) / 2**20:.1f} MiB): {analysis.spec.name}, "
               f"{len(analysis.layers) - 1:,} layers, {len(linted.findings)} finding"
               f"{'s' if len(linted.findings) != 1 else ''}")


def _probe(spec, data, weights, layers, max_memory):
    """The executor section's results, or why there are none: (probe, note)."""
    from archcheck import probe as probing
    from archcheck.commands._execution import prepare
    from archcheck.data import IMAGE_SUFFIXES
    from archcheck.importers import is_model

    analysis, x, names, params, source = prepare(spec, data, probing.MAX_SAMPLES, weights, 0, "float32", max_memory,
                                                 at_most=True)
    if not probing.spatial_2d(analysis):
        return None, (f"The executor section draws 2-D maps; this network's input {list(analysis.spec.input)} is not "
                      "(C, H, W).")
    chosen = probing.choose_layers(analysis, layers)
    images = bool(data) and (Path(data).is_dir() or Path(data).suffix.lower() in IMAGE_SUFFIXES)
    if not data:
        source += " (no --data: the effective receptive field on random input, as Luo et al. also show it)"
    own = weights is None and is_model(spec)
    described = weights or ("the model file's own" if own else "the spec's initial weights (seed 0; no --weights)")
    return probing.probe(analysis, params, x, names, source, described, chosen, images, max_memory), None
