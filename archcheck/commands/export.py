"""``archcheck export``: write a spec as a standard ONNX model."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import max_memory_option, reported_errors, spec_argument
from archcheck.errors import ArchcheckError


@click.command()
@spec_argument
@click.option("--to", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="Model format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              metavar="FILE", help="Where to write the model, e.g. model.onnx.")
@click.option("--weights", "-w", type=click.Path(dir_okay=False, path_type=str), metavar="NPZ",
              help="Weights (.npz) with state_dict names and PyTorch layouts [default: a model file's own, else "
                   "initialised with --seed].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights without --weights.")
@max_memory_option
def export(spec, fmt, output, weights, seed, max_memory):
    """Write SPEC as a standard ONNX model (opset 17) that opens in Netron and runs in ONNX Runtime.

    The graph input is `input` with a symbolic batch axis; there is one output per network
    output, named after its layer; weights are initializers named `<layer>.<suffix>` as in a
    PyTorch state_dict. Exit 0 on success, 2 when the spec or the weights are invalid, the
    model cannot be written, or the `onnx` package is missing.
    """
    with reported_errors():
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ArchcheckError("exporting to ONNX needs the `onnx` package: pip install 'archcheck[onnx]'") from None
        from archcheck.executor import init_params
        from archcheck.files import human, same_file, write_atomic
        from archcheck.onnx_export import OPSET, export_model, save_model
        from archcheck.pipeline import analyze_model
        from archcheck.weights import load

        for source in (spec, weights):
            if source and output.exists() and same_file(output, source):
                raise ArchcheckError(f"{output} is also an input of this command ({source}); writing it would destroy "
                                     "it", "write the model to another path, e.g. model.onnx")
        analysis, own = analyze_model(spec)  # a model file brings its own weights
        need = 3 * analysis.totals.param_bytes  # the weights, their ONNX copy, and the serialised model
        if need > max_memory:
            raise ArchcheckError(f"exporting {analysis.spec.name} needs about {human(need)} for its "
                                 f"{analysis.totals.params:,} weights, more than --max-memory ({human(max_memory)})",
                                 "export a smaller network, or raise --max-memory if this machine has the memory")
        params = load(weights, analysis, limit=max_memory) if weights else own if own is not None else \
            init_params(analysis, seed=seed)
        model = export_model(analysis, params)
        try:  # the model is checked before it replaces anything: a failure leaves no file, or the old one
            write_atomic(output, lambda tmp: save_model(model, tmp, output.name))
        except OSError as exc:
            raise ArchcheckError(f"cannot write the model to {output}: {exc.strerror or exc}") from None
    def batched(name):
        return f"'{name}' (batch, {', '.join(map(str, analysis.layers[name].shape))})"

    click.echo(f"wrote {output}: ONNX opset {OPSET}, {len(model.graph.node)} nodes, "
               f"{analysis.totals.params:,} weights; input {batched('input')} -> "
               + ", ".join(batched(name) for name in analysis.spec.outputs))
