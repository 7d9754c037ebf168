"""Import a PyTorch module: build it, let torch's own ONNX exporter trace it, and read that.

Why through ONNX rather than torch.fx or torch.export: the exporter runs the module's Python at the
given input size, so control flow, ``x.mean([2, 3])``, ``torch.flatten`` and the other functional calls
come out as the same few dozen operators whatever the code looks like (torch.fx would need a mapping of
every torch function and fails on data-dependent control flow); it names every node by its module path
(``/layer1/layer1.0/conv1/Conv``) and every weight by its state_dict name; and the ONNX reader that
results is the one ``archcheck import model.onnx`` already uses, so one mapping is maintained, not two.
torch's TorchScript exporter is used with ``training=PRESERVE`` on a model in eval mode: batch
normalisation stays a ``BatchNormalization`` node with its running statistics (the default folds it into
the convolution, and parameters and buffers would no longer be torch's); the dynamo exporter names nodes
without module paths and writes opset 18.

``torch`` is an optional extra (``pip install 'archcheck[torch]'``); nothing on the static path imports
this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

from archcheck.importers import Imported, ImportProblem

OPSET = 17


def is_target(text: str) -> bool:
    """``package.module:factory`` or ``file.py:factory``: a PyTorch model to build, not a file to read."""
    head, sep, tail = str(text).rpartition(":")
    return bool(sep and head and tail.isidentifier() and (head.endswith(".py") or
                                                         all(p.isidentifier() for p in head.split("."))))


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportProblem("importing a PyTorch model needs the `torch` package",
                            "pip install 'archcheck[torch]' (or export the model to ONNX yourself and import the "
                            ".onnx file)") from None
    return torch


def build(target: str):
    """The module ``target`` names: ``factory`` called with no arguments (a class or a function), or an
    ``nn.Module`` object of that name."""
    torch = _torch()
    where, _, name = target.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ImportProblem(f"{where}: no such Python file", "give the path of the file that defines the model, "
                                "e.g. models/net.py:Net")
        spec = importlib.util.spec_from_file_location(f"archcheck_model_{abs(hash(path.resolve()))}", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # the file's own imports of its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: any failure is theirs to see, with its type
            raise ImportProblem(f"{where} failed while it was imported: {type(exc).__name__}: {exc}",
                                "run the file with python to see the whole error") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise ImportProblem(f"cannot import the module '{where}': {type(exc).__name__}: {exc}",
                                "give an importable module (installed, or on PYTHONPATH), e.g. "
                                "torchvision.models:resnet50, or a file: models/net.py:Net") from None
    if not hasattr(module, name):
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
        raise ImportProblem(f"'{where}' has no '{name}'", f"name a class, a function or a module object it "
                            f"defines: {', '.join(public)}")
    made = getattr(module, name)
    if not isinstance(made, torch.nn.Module):
        try:
            made = made()
        except Exception as exc:
            raise ImportProblem(f"{target}() failed: {type(exc).__name__}: {exc}",
                                "name a factory that builds the model without arguments (wrap one that needs "
                                "them in a small function)") from None
    if not isinstance(made, torch.nn.Module):
        raise ImportProblem(f"{target} is {type(made).__name__}, not a torch.nn.Module",
                            "name a class or function that returns the model")
    return made


def read_torch(target: str, input_shape) -> Imported:
    """The model ``target`` names, traced at ``input_shape`` (without the batch axis) and read as a flat spec,
    its weights under archcheck's names and each layer's module path."""
    from archcheck.importers.onnx import read_onnx

    torch = _torch()
    if not input_shape:
        raise ImportProblem(f"{target}: a PyTorch module does not say what size of input it takes",
                            "give it: --input 3,224,224 (channels first, without the batch axis)")
    model = build(target).eval()
    x = torch.zeros(1, *input_shape)
    with tempfile.TemporaryDirectory(prefix="archcheck-torch-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notes
                torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET,
                                  training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                                  output_names=["output"], dynamic_axes={"input": {0: "batch"}})
        except Exception as exc:
            raise ImportProblem(f"torch could not trace {target} at input {list(input_shape)}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                "check that the model runs on a tensor of that shape; a model torch cannot export "
                                "to ONNX cannot be imported this way") from None
        imported = read_onnx(path)
    name = target.rpartition(":")[2]
    imported.doc["name"] = name
    imported.doc.setdefault("metadata", {})["source"] = f"PyTorch {target}"
    imported.origin = {layer: _module_path(node) for layer, node in imported.origin.items()}
    imported.header = [f"Imported from the PyTorch model {target} (torch {torch.__version__}), traced at input "
                       f"{list(input_shape)} by torch's ONNX exporter (opset {OPSET}, batchnorm kept)."]
    return imported


def _module_path(node: str) -> str:
    """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``: the module a torch.onnx node belongs to (its
    scope without the operator)."""
    from archcheck.importers.onnx import module_path

    return module_path(str(node).rpartition("/")[0]) or str(node).strip("/")
