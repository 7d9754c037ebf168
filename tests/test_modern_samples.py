"""The modern reference samples, MobileNetV3-Large and ShuffleNetV2 1.0x: torchvision 0.29.1's exact
figures at 224x224 (trainable parameters, batchnorm running statistics, conv and dense MACs), and the
network run small (3x64x64) in the NumPy executor and, exported, in ONNX Runtime (the oracle's helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archcheck.executor import forward, init_params
from archcheck.pipeline import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SMALL = (3, 64, 64)

# name: (trainable params, buffers, MACs), as torchvision 0.29.1 counts them at 224x224
TORCHVISION = {
    "mobilenet_v3_large": (5_483_032, 24_400, 216_589_760),
    "shufflenet_v2_x1_0": (2_278_604, 16_180, 144_907_992),
}
# the receptive field (r, S, P) of the last feature map on both axes, as the README's table gives it
FIELD = {"mobilenet_v3_large": (595, 32, 297), "shufflenet_v2_x1_0": (527, 32, 263)}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_totals_match_torchvision(name):
    totals = analyze(SAMPLES / f"{name}.yaml").totals
    assert (totals.trainable, totals.non_trainable, totals.macs) == TORCHVISION[name]
    _, field = totals.receptive_field
    assert [(a.r, a.S, a.P) for a in field.axes] == [FIELD[name]] * 2 and field.note is None


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_runs_in_the_executor_at_a_small_input(name):
    analysis = analyze(SAMPLES / f"{name}.yaml", input_shape=SMALL)
    x = np.random.default_rng(0).standard_normal((2, *SMALL)).astype(np.float32)
    (out,) = analysis.graph.outputs
    logits = forward(analysis, init_params(analysis), x)[out]
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_onnx_runtime_agrees_at_a_small_input(name):
    oracle = pytest.importorskip("test_onnx_oracle")  # skips without onnx / onnxruntime, as the oracle does
    analysis = analyze(SAMPLES / f"{name}.yaml", input_shape=SMALL)
    ours, theirs = oracle.run_both(analysis, batch=2, check=True)
    oracle.assert_agree(analysis, ours, theirs)
