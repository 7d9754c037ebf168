"""`archcheck import package.module:factory`: a PyTorch model traced by torch's ONNX exporter and read back.

torch is an optional extra and not in the test environment (it is gigabytes): without it, the command's
refusal is tested; with it, a small model built from a file round-trips to torch's own outputs. The
whole torchvision list runs from benchmarks/bench_torchvision_import.py.
"""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.importers.torch import _module_path, is_target

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize("text, target", [("torchvision.models:resnet50", True), ("models/net.py:Net", True),
                                          ("model.onnx", False), ("C:/models/net.onnx", False), ("a.b:c d", False)])
def test_a_pytorch_model_is_named_module_colon_factory(text, target):
    assert is_target(text) is target


@pytest.mark.parametrize("node, path", [("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
                                        ("/features/features.1/features.1.0/block/block.3/MatMul",
                                         "features.1.0.block.3"),
                                        ("/Flatten", "Flatten")])
def test_node_names_become_module_paths(node, path):
    assert _module_path(node) == path


@pytest.mark.skipif(HAVE_TORCH, reason="torch is installed")
def test_without_torch_the_import_says_what_to_install(tmp_path):
    result = CliRunner().invoke(main, ["import", "torchvision.models:resnet18", "--input", "3,64,64",
                                       "-o", str(tmp_path / "r.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "importing a PyTorch model needs the `torch` package" in result.output
    assert "pip install 'archcheck[torch]'" in result.output
    assert not (tmp_path / "r.yaml").exists()


@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch (the `torch` extra)")
def test_a_model_from_a_file_reproduces_torchs_outputs(tmp_path):
    import torch

    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
                self.head = nn.Linear(8, 5)

            def forward(self, x):
                return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stem(x), 1), 1))
        """))
    spec, weights = tmp_path / "net.yaml", tmp_path / "net.npz"
    torch.manual_seed(0)  # the model built by the import and the one built below get the same weights
    result = CliRunner().invoke(main, ["import", f"{tmp_path / 'net.py'}:Net", "--input", "3,16,16", "-o", str(spec),
                                       "--weights-out", str(weights)])
    assert result.exit_code == 0, result.output
    from archcheck.executor import forward
    from archcheck.pipeline import analyze
    from archcheck.weights import load

    analysis = analyze(spec)
    params = load(weights, analysis)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ours = next(iter(forward(analysis, params, x).values()))
    from archcheck.importers.torch import build

    torch.manual_seed(0)
    model = build(f"{tmp_path / 'net.py'}:Net").eval()
    theirs = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
