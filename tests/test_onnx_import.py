"""``archcheck import``'s core, ``read_onnx``: every sample exported to ONNX and read back gives the same
analysis and, with the imported weights, the same outputs; torch.onnx-style patterns built by hand; files
that are broken or hostile are refused with a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="importing needs onnx (pip install 'archcheck[test]')")

from onnx import helper  # noqa: E402

from archcheck.executor import forward, init_params  # noqa: E402
from archcheck.graph import build_graph  # noqa: E402
from archcheck.importers.load import document  # noqa: E402
from archcheck.importers.onnx import layer_name, read_onnx  # noqa: E402
from archcheck.onnx_export import export_model  # noqa: E402
from archcheck.pipeline import analyze  # noqa: E402
from archcheck.propagate import propagate  # noqa: E402
from archcheck.spec import expand  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))
HEAVY = {"vgg16", "alexnet"}  # their executor runs take seconds: shapes and numbers only


def imported_analysis(imported, file):
    return propagate(build_graph(expand(document(imported, str(file)), str(file))))


def randomised(analysis, seed=1):
    """The executor's initial weights with biases and statistics randomised, so a swapped array shows."""
    rng = np.random.default_rng(seed)
    params = init_params(analysis, seed=seed)
    for name, array in params.items():
        if name.endswith((".bias", ".running_mean")):
            params[name] = rng.standard_normal(array.shape).astype(np.float32) * 0.1
        elif name.endswith((".running_var", "layerscale_1.weight")) or ".weight" in name and array.ndim == 1:
            params[name] = (rng.random(array.shape) + 0.5).astype(np.float32)
    return params


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_round_trip_gives_the_same_analysis_and_outputs(sample, tmp_path):
    source = analyze(sample)
    params = randomised(source)
    path = tmp_path / f"{sample.stem}.onnx"
    onnx.save_model(export_model(source, params), str(path))
    imported = read_onnx(path)
    result = imported_analysis(imported, path)

    needed = source.graph.upstream(list(source.graph.outputs))
    ours = [n.name for n in source.graph.order if n.name in needed]
    theirs = [n.name for n in result.graph.order]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        fa, fb = source.layers[a], result.layers[b]
        assert (fa.shape, fa.params, fa.buffers, fa.macs, fa.rf) == (fb.shape, fb.params, fb.buffers, fb.macs,
                                                                    fb.rf), (a, b)
        if b != "input":
            assert imported.origin[b].startswith(a), (a, b)
    assert (result.totals.params, result.totals.non_trainable, result.totals.macs) == \
        (source.totals.params, source.totals.non_trainable, source.totals.macs)

    if sample.stem in HEAVY:
        return
    x = np.random.default_rng(0).standard_normal((2, *source.spec.input)).astype(np.float32)
    want = forward(source, params, x)
    got = forward(result, imported.weights, x)
    for a, b in zip(source.graph.outputs, result.graph.outputs):
        scale = np.abs(want[a]).max()
        assert np.abs(got[b] - want[a]).max() <= 1e-5 * scale + 1e-7, (a, b)


def test_layer_names_are_readable():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="/layer1/layer1.0/conv1/Conv")
    assert layer_name(node) == "layer1_0_conv1"
    assert layer_name(helper.make_node("Relu", ["x"], ["y"], name="stage_1.relu_2:Relu")) == "stage_1_relu_2"
    assert layer_name(helper.make_node("Relu", ["x"], ["features.3"])) == "features_3"
