"""`archcheck export`: the model it writes (names, shapes, weights, symbolic batch), and every way it fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from archcheck.cli import main

onnx = pytest.importorskip("onnx", reason="export tests need onnx (pip install 'archcheck[test]')")
ort = pytest.importorskip("onnxruntime", reason="export tests need onnxruntime (pip install 'archcheck[test]')")

from archcheck import onnx_export  # noqa: E402
from archcheck.executor import forward, init_params  # noqa: E402
from archcheck.pipeline import analyze  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def export(*args):
    result = CliRunner().invoke(main, ["export", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_writes_a_checked_model_with_state_dict_names(tmp_path):
    out = tmp_path / "resnet18.onnx"
    result = export(SAMPLES / "resnet18.yaml", "--to", "onnx", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"wrote {out}: ONNX opset 17, 70 nodes, 11,699,112 weights; "
                             "input 'input' (batch, 3, 224, 224) -> 'softmax_1' (batch, 1000)\n")
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == onnx_export.OPSET
    (inp,), (output,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("input", ["batch", 3, 224, 224])
    assert output.name == "softmax_1"
    analysis = analyze(SAMPLES / "resnet18.yaml")
    expected = init_params(analysis, seed=0)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(stored) == set(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(stored[name], array, err_msg=name)
    # every layer's tensor carries its name and the propagator's shape, for Netron
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in model.graph.value_info}
    assert shapes["basic_3.add_1.1.conv_1"] == ["batch", 128, 28, 28]


def test_weights_file_and_any_batch_size(tmp_path):
    analysis = analyze(SAMPLES / "lenet5.yaml")
    params = init_params(analysis, seed=7)
    params["dense_3.bias"] = np.linspace(-1, 1, 10, dtype=np.float32)
    np.savez(tmp_path / "w.npz", **params)
    out = tmp_path / "lenet.onnx"
    result = export(SAMPLES / "lenet5.yaml", "-o", out, "--weights", tmp_path / "w.npz")
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)
        (probs,) = session.run(None, {"input": x})
        np.testing.assert_allclose(probs, forward(analysis, params, x)["softmax_1"], rtol=1e-4, atol=1e-6)


def test_seed_changes_the_weights(tmp_path):
    for seed in (1, 2):
        assert export(SAMPLES / "lenet5.yaml", "-o", tmp_path / f"{seed}.onnx", "--seed", seed).exit_code == 0
    first, second = (onnx.load(tmp_path / f"{seed}.onnx").graph.initializer[0] for seed in (1, 2))
    assert first.name == second.name and first.raw_data != second.raw_data


def test_bad_spec_prints_the_problems(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 11}\n")
    result = export(spec, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2
    assert (f"{spec}:3:5: error: shape-error: layer 'conv_1': conv on input (3, 8, 8): the 11-wide window"
            in result.stderr)
    assert not (tmp_path / "m.onnx").exists()


def test_weights_that_do_not_match_are_named(tmp_path):
    analysis = analyze(SAMPLES / "lenet5.yaml")
    params = init_params(analysis)
    params["stage_1.conv_1.weight"] = params["stage_1.conv_1.weight"][:3]
    del params["dense_1.bias"]
    np.savez(tmp_path / "w.npz", **params)
    result = export(SAMPLES / "lenet5.yaml", "-o", tmp_path / "m.onnx", "-w", tmp_path / "w.npz")
    assert result.exit_code == 2
    assert "does not match the spec" in result.stderr
    assert "wrong shape: stage_1.conv_1.weight is (3, 1, 5, 5), expected (6, 1, 5, 5)" in result.stderr
    assert "missing: dense_1.bias, expected shape (120)" in result.stderr


def test_unwritable_output(tmp_path):
    result = export(SAMPLES / "lenet5.yaml", "-o", tmp_path / "missing" / "m.onnx")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"archcheck: error: cannot write the model to {tmp_path / 'missing' / 'm.onnx'}: ")


def test_without_onnx_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    result = export(SAMPLES / "lenet5.yaml", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2
    assert result.stderr == ("archcheck: error: exporting to ONNX needs the `onnx` package: "
                             "pip install 'archcheck[onnx]'\n")


def test_only_onnx_is_a_target(tmp_path):
    result = export(SAMPLES / "lenet5.yaml", "--to", "tflite", "-o", tmp_path / "m.tflite")
    assert result.exit_code == 2
    assert "'tflite' is not 'onnx'" in result.output


def test_huge_weights_go_to_a_side_file(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PROTOBUF_LIMIT", 2**26 + 1000)  # as if lenet's 247 KB did not fit
    out = tmp_path / "lenet.onnx"
    assert export(SAMPLES / "lenet5.yaml", "-o", out).exit_code == 0
    assert (tmp_path / "lenet.onnx.data").stat().st_size > 200_000
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((2, 1, 32, 32), np.float32)})[0].shape == (2, 10)


def test_static_path_does_not_import_onnx():
    code = ("import sys; from archcheck.pipeline import analyze; analyze(sys.argv[1]); "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'archcheck.onnx_export') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "resnet50.yaml")], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_layer_that_writes_a_wrong_or_no_weight_is_caught():
    analysis = analyze(SAMPLES / "lenet5.yaml")
    b = onnx_export.Builder(init_params(analysis, seed=0))
    b._add("stage_1.conv_1.weight", np.zeros((6, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"^layer 'stage_1.conv_1': weight 'stage_1.conv_1.weight' should have "
                                         r"shape \(6, 1, 5, 5\), found \(6, 1, 3, 3\)$"):
        onnx_export._check_weights(analysis, {"input", "stage_1.conv_1"}, b)
    b.layer = "stage_1.conv_1"
    b.initializers.clear()
    b.param("weight")
    with pytest.raises(ValueError, match=r"weight 'stage_1.conv_1.bias' should have shape \(6,\), it was not written"):
        onnx_export._check_weights(analysis, {"input", "stage_1.conv_1"}, b)
    b.param("bias")
    onnx_export._check_weights(analysis, {"input", "stage_1.conv_1"}, b)  # the other layers are not needed
