"""``archcheck import``: read a model file (ONNX) and write it as a spec, and its weights as an .npz."""

from __future__ import annotations

from pathlib import Path

import click

from archcheck.commands import reported_errors
from archcheck.errors import ArchcheckError


def written(imported, output: Path) -> str:
    """The spec file's text: the header comment, then the document (``compact``: the one line to change for
    another writer)."""
    from archcheck.importers.flat import compact

    header = "".join(f"# {line}\n" for line in imported.header)
    return header + compact(imported.doc)


@click.command(name="import")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="SPEC",
              help="Where to write the spec, e.g. model.yaml.")
@click.option("--weights-out", type=click.Path(dir_okay=False, path_type=Path), metavar="W.npz",
              help="Also write the model's weights under archcheck's names, for `archcheck run SPEC --weights`.")
def import_(model, output, weights_out):
    """Read MODEL (an .onnx file) and write it as an archcheck spec.

    Every operator archcheck's layers cover is read, with the patterns exporters write (Conv +
    BatchNormalization, Flatten + Gemm, Clip as ReLU6, x * Sigmoid(x) as swish, ...). What cannot be
    imported is reported as a whole: every unsupported operator with its nodes. Exit 0 written; 2 when
    the model cannot be read or imported, or the files cannot be written.
    """
    with reported_errors():
        import numpy as np

        from archcheck.files import same_file, write_atomic
        from archcheck.importers.onnx import read_onnx
        from archcheck.spec import expand
        from archcheck.yamlsrc import load_text

        for target in (output, weights_out):
            if target is not None and target.exists() and same_file(target, model):
                raise ArchcheckError(f"{target} is the model being imported; writing it would destroy it",
                                     "write the spec and the weights to other paths")
        imported = read_onnx(model)
        text = written(imported, output)
        spec = expand(load_text(text, str(output)), str(output))  # what is written reads back as a spec
        try:
            write_atomic(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            if weights_out is not None:
                def save(tmp: Path) -> None:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, **imported.weights)
                write_atomic(weights_out, save)
        except OSError as exc:
            raise ArchcheckError(f"cannot write {exc.filename or output}: {exc.strerror or exc}") from None
    weights = f" and {len(imported.weights):,} arrays to {weights_out}" if weights_out else ""
    click.echo(f"wrote {output}: {len(imported.doc['layers']):,} layers from {len(spec.nodes) and Path(model).name}"
               f"{weights}")
