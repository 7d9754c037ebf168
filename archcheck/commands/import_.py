"""``archcheck import``: read a model (ONNX, Keras, PyTorch) and write it as a spec a person keeps, and its
weights as an .npz."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import parse_shape, reported_errors
from archcheck.errors import ArchcheckError


def read(model: str, input_shape):
    """The imported model: a PyTorch target (``package.module:factory``, ``file.py:factory``) or a model file
    by its suffix."""
    from archcheck.importers.torch import is_target

    if is_target(model) and not Path(model).exists():
        from archcheck.importers.torch import read_torch

        return read_torch(model, input_shape)
    from archcheck.importers.load import read_model

    return read_model(model, input_shape)


def written(imported, names: dict) -> str:
    """The spec file's text: the header comment, then the document with blocks and repeats; ``names``
    receives each flat layer name's name in the written spec."""
    from archcheck.importers.write import compact

    return compact(imported.doc, imported.header, names_out=names)


def renamed(weights: dict, names: dict) -> dict:
    """Weights keyed ``<flat layer>.<suffix>`` under the written spec's layer names."""
    out = {}
    for key, array in weights.items():
        layer, _, suffix = key.partition(".")
        out[f"{names.get(layer, layer)}.{suffix}"] = array
    return out


@click.command(name="import")
@click.argument("model", type=str)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="SPEC",
              help="Where to write the spec, e.g. model.yaml.")
@click.option("--weights-out", type=click.Path(dir_okay=False, path_type=Path), metavar="W.npz",
              help="Also write the model's weights under the spec's layer names, for `archcheck run SPEC --weights`.")
@click.option("--input", "input_shape", callback=parse_shape, metavar="C,H,W",
              help="The input size, channels first, without the batch axis: the size a PyTorch model is traced at, "
                   "or the sizes a Keras model leaves open.")
def import_(model, output, weights_out, input_shape):
    """Read MODEL and write it as an archcheck spec with blocks and repeats.

    MODEL is an ONNX file (`model.onnx`, the `onnx` extra), a Keras 3 file (`model.keras`; weights with
    the `keras` extra), or a PyTorch model named `package.module:factory` or `file.py:factory` (the
    `torch` extra; give --input C,H,W, the size it is traced at). Every operator archcheck's layers
    cover is read, with the patterns exporters write (Conv + BatchNormalization, Flatten + Gemm, Clip as
    ReLU6, x * Sigmoid(x) as swish, ...). What cannot be imported is reported as a whole: every
    unsupported operator or layer with where it is. Exit 0 written; 2 when the model cannot be read or
    imported, or the files cannot be written.
    """
    with reported_errors():
        import numpy as np

        from archcheck.files import same_file, write_atomic
        from archcheck.spec import expand
        from archcheck.yamlsrc import load_text

        for target in (output, weights_out):
            if target is not None and target.exists() and Path(model).exists() and same_file(target, model):
                raise ArchcheckError(f"{target} is the model being imported; writing it would destroy it",
                                     "write the spec and the weights to other paths")
        if not Path(model).exists() and ":" not in model:
            raise ArchcheckError(f"{model}: no such file", "give an .onnx or .keras file, or a PyTorch model as "
                                 "package.module:factory")
        imported = read(model, input_shape)
        names: dict = {}
        text = written(imported, names)
        spec = expand(load_text(text, str(output)), str(output))  # what is written reads back as a spec
        weights = renamed(imported.weights, names)
        try:
            write_atomic(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            if weights_out is not None:
                def save(tmp: Path) -> None:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, **weights)
                write_atomic(weights_out, save)
        except OSError as exc:
            raise ArchcheckError(f"cannot write {exc.filename or output}: {exc.strerror or exc}") from None
    saved = f" and {len(weights):,} arrays to {weights_out}" if weights_out else ""
    lines = text.count("\n")
    click.echo(f"wrote {output}: {len(spec.nodes) - 1:,} layers in {lines:,} lines from {Path(model).name}{saved}")
