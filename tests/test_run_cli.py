"""`archcheck run` and `archcheck train`: output, --grad findings, --save, weights and data
formats, and the message for every kind of bad input (text checked, exit 2, no traceback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from archcheck import blas
from archcheck.cli import main
from archcheck.executor import forward, init_params
from archcheck.pipeline import analyze

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "samples" / "lenet5.yaml")
IMAGES = ROOT / "samples" / "images"
LINT_SCHEMA = json.loads((ROOT / "archcheck" / "schemas" / "lint.schema.json").read_text())


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def spec(tmp_path, input_shape, layers, name="net"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "input": input_shape, "layers": layers}, sort_keys=False))
    return path


def weights_file(tmp_path, path, edit=None, name="w.npz"):
    params = init_params(analyze(path), seed=0)
    if edit:
        edit(params)
    out = tmp_path / name
    np.savez(out, **params)
    return out


# -- run ---------------------------------------------------------------------------------------
def test_run_prints_the_layer_table_and_top_k():
    result = cli("run", LENET, "--batch", "3", "--top-k", "2")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("lenet5: inference on random normal, seed 0; weights initialised, seed 0; float32")
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "type", "output", "shape", "mean", "std", "zeros", "saturated", "NaN/Inf", "ms"]
    assert "stage_1.conv_1     conv     (3, 6, 28, 28)" in out
    assert "output 'softmax_1' (3, 10)" in out
    tops = [line for line in out.splitlines() if line.startswith("  0:") or line.startswith("  2:")]
    assert len(tops) == 2 and all(line.count("%") == 2 for line in tops)
    assert "\x1b[" not in out  # plain when piped


def test_run_json_has_every_layer_and_agrees_with_the_executor():
    result = cli("run", LENET, "--batch", "2", "--format", "json", "--seed", "4")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    analysis = analyze(LENET)
    assert doc["schema"] == "archcheck.run/1" and doc["mode"] == "inference"
    assert [layer["name"] for layer in doc["layers"]] == [n.name for n in analysis.graph.order]
    for layer in doc["layers"]:
        assert layer["shape"] == [2, *analysis.layers[layer["name"]].shape]
    x = np.random.default_rng(4).standard_normal((2, 1, 32, 32)).astype(np.float32)
    probs = forward(analysis, init_params(analysis, seed=4), x, threads=blas.threads() or 1)["softmax_1"]  # as run
    top = doc["outputs"]["softmax_1"]["top_k"]
    assert [t[0]["class"] for t in top] == list(probs.argmax(axis=1))
    assert top[0][0]["p"] == pytest.approx(float(probs[0].max()), rel=1e-6)


def test_run_folds_batchnorms_at_inference_says_so_and_no_fold_runs_every_layer():
    resnet = str(ROOT / "samples" / "resnet18.yaml")
    analysis = analyze(resnet)
    plan = analysis.inference
    folded = cli("run", resnet, "--format", "json")
    as_written = cli("run", resnet, "--format", "json", "--no-fold")
    assert folded.exit_code == as_written.exit_code == 0
    doc, every = json.loads(folded.stdout), json.loads(as_written.stdout)
    assert [layer["name"] for layer in every["layers"]] == [n.name for n in analysis.graph.order]
    assert [layer["name"] for layer in doc["layers"]] == [n.name for n in analysis.graph.order
                                                         if n.name not in plan.folds]  # the pair is one row
    assert doc["inference"]["folded"][0] == {"batchnorm": "batchnorm_1", "into": "conv_1"}
    assert len(doc["inference"]["folded"]) == 20 and every["inference"]["as_written"] == "--no-fold"
    assert doc["inference"]["halved"] == {}  # (relu does not begin by halving its input)
    rows = {layer["name"]: layer for layer in every["layers"]}
    for layer in doc["layers"]:  # the same values, to float32 rounding
        assert layer["mean"] == pytest.approx(rows[layer["name"]]["mean"], rel=1e-4, abs=1e-6), layer["name"]
    text = cli("run", resnet).stdout
    assert ("inference: 20 batchnorms folded into the layer before them (one row each, under the batchnorm's "
            "name); 25 layers writing over their input; 7 layers by Winograd F(4x4, 3x3) (--no-fold runs every layer "
            "as written)") in text
    # at batch 1 the 3x3 convolutions on 56x56 and 28x28 maps (the 14x14 and 7x7 ones have too few tiles)
    assert doc["inference"]["kernels"] == dict.fromkeys(plan.kernels, "Winograd F(4x4, 3x3)")
    assert sorted(plan.kernels) == sorted(name for name, facts in analysis.layers.items() if facts.geometry
                                          and facts.geometry.kernel == (3, 3) and facts.geometry.stride == (1, 1)
                                          and facts.shape[1] >= 28)
    assert "Winograd" not in cli("run", resnet, "--dtype", "float64").stdout  # float64 runs every conv directly
    assert "inference: every layer as written (--no-fold)" in cli("run", resnet, "--no-fold").stdout
    training = cli("run", resnet, "--grad").stdout
    assert "inference:" not in training  # no inference plan: no folding, nothing overwritten
    # its 3x3 convolutions at stride 1 on maps of 10 or more a side: by Winograd's F(2x2, 3x3)
    fast = analysis.gradient_kernels("float32")
    assert sorted(fast) == sorted(name for name, facts in analysis.layers.items() if facts.geometry
                                  and facts.geometry.kernel == (3, 3) and facts.geometry.stride == (1, 1)
                                  and facts.shape[1] >= 10)
    assert (f"gradients: {len(fast)} layers by Winograd F(2x2, 3x3) (rounding as the layers as written do)"
            in training.splitlines())
    trained = json.loads(cli("run", resnet, "--grad", "-f", "json").stdout)
    assert trained["gradient_kernels"] == fast and "inference" not in trained
    assert "gradients:" not in cli("run", resnet, "--grad", "--dtype", "float64").stdout


def test_run_says_which_activations_read_their_input_halved_and_reports_it_as_made(tmp_path):
    """Swish and sigmoid begin by halving their input: the layer that makes it takes the halving into its weights.
    The run says so, lists them in its JSON, and reports the halved tensors as the layers as written make them."""
    spec = tmp_path / "se.yaml"
    spec.write_text("""input: [3, 16, 16]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1, bias: false}
  - batchnorm
  - swish
  - globalavgpool
  - dense: 4
  - sigmoid
""")
    doc = json.loads(cli("run", str(spec), "--format", "json", "--batch", "3").stdout)
    every = json.loads(cli("run", str(spec), "--format", "json", "--batch", "3", "--no-fold").stdout)
    assert doc["inference"]["halved"] == {"swish_1": "conv_1", "sigmoid_1": "dense_1"}
    rows = {layer["name"]: layer for layer in every["layers"]}
    for layer in doc["layers"]:
        for figure in ("mean", "std"):
            assert layer[figure] == pytest.approx(rows[layer["name"]][figure], rel=1e-5, abs=1e-7), layer["name"]
    assert ("2 activations reading their input halved by the layer before (folded into its weights)"
            in cli("run", str(spec), "--batch", "3").stdout)


def test_run_on_threads_reports_what_one_thread_does_and_says_so(tmp_path):
    """--threads cuts an inference batch into parts run side by side; the table (each layer's statistics over the
    whole batch) is one thread's, to rounding, and the inference line and the JSON say how many parts ran."""
    from archcheck import blas

    if blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one, so batches are never cut")
    net = spec(tmp_path, [3, 10, 10], [{"conv": {"filters": 8, "kernel": 3}}, "batchnorm", "relu",
                                       {"conv": {"filters": 6, "kernel": 1}}, "sigmoid", "flatten", {"dense": 4},
                                       "softmax"])
    one, three = (json.loads(cli("run", net, "-b", "5", "--threads", n, "-f", "json").stdout) for n in (1, 3))
    assert (one["inference"]["threads"], three["inference"]["threads"]) == (1, 3)
    assert [layer["name"] for layer in three["layers"]] == [layer["name"] for layer in one["layers"]]
    for a, b in zip(one["layers"], three["layers"]):
        assert b["shape"] == a["shape"] and b["nan"] == a["nan"] == 0, a["name"]
        assert (b["saturated"] is None) == (a["saturated"] is None), a["name"]
        for key in ("mean", "std", "zeros") + (("saturated",) if a["saturated"] is not None else ()):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["name"], key)
    by_name = {layer["name"]: layer for layer in three["layers"]}
    assert by_name["relu_1"]["zeros"] > 0.2 and by_name["sigmoid_1"]["saturated"] is not None
    text = cli("run", net, "-b", "5", "--threads", "3").stdout
    assert "as written); the batch cut into 3 parts run side by side" in text
    assert "parts" not in cli("run", net, "-b", "5", "--threads", "3", "--grad").stdout  # training: one part
    assert "parts" not in cli("run", net, "-b", "1", "--threads", "3").stdout  # one sample: one part


def test_run_on_the_sample_images_names_each_sample():
    pytest.importorskip("PIL")
    result = cli("run", LENET, "--data", IMAGES)  # grey 32x32 from colour photos
    assert result.exit_code == 0, result.output
    for name in ("astronaut.jpg", "camera.png", "chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        assert f"  {name}: " in result.stdout
    single = cli("run", ROOT / "samples" / "resnet18.yaml", "--data", IMAGES / "chelsea.jpg", "--top-k", "1")
    assert single.exit_code == 0 and "input                        input          (1, 3, 224, 224)" in single.stdout


def test_run_on_arrays(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "one.npy", x[0])
    np.savez(tmp_path / "x.npz", input=x, other=x[:1])
    for data, n in (("x.npy", 4), ("one.npy", 1), ("x.npz", 4)):
        result = cli("run", LENET, "--data", tmp_path / data, "-f", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["layers"][0]["shape"] == [n, 1, 32, 32]
    first_two = json.loads(cli("run", LENET, "--data", tmp_path / "x.npy", "-b", "2", "-f", "json").stdout)
    assert first_two["samples"] == ["0", "1"]


def test_run_with_weights_gives_the_same_outputs_as_the_same_initialisation(tmp_path):
    w = weights_file(tmp_path, LENET, lambda p: p.update({"dense_3.bias": np.arange(10, dtype=np.float32)}))
    out = tmp_path / "out.npz"
    assert cli("run", LENET, "--weights", w, "--save", out).exit_code == 0
    analysis = analyze(LENET)
    params = dict(np.load(w))
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(np.load(out)["softmax_1"], forward(analysis, params, x)["softmax_1"], rtol=1e-6)


def test_pytorch_batch_counters_are_ignored(tmp_path):
    path = spec(tmp_path, [3, 8, 8], [{"conv": 4}, "batchnorm", "relu"])
    w = weights_file(tmp_path, path, lambda p: p.update({"batchnorm_1.num_batches_tracked": np.array(7)}))
    assert cli("run", path, "--weights", w).exit_code == 0


def test_save_outputs_activations_and_gradients(tmp_path):
    out = tmp_path / "o.npz"
    assert cli("run", LENET, "-b", "2", "--save", out).exit_code == 0
    assert set(np.load(out).files) == {"softmax_1"}
    assert cli("run", LENET, "-b", "2", "--save", out, "--save-activations", "--grad").exit_code == 0
    files = set(np.load(out).files)
    names = {n.name for n in analyze(LENET).graph.order}
    assert names <= files
    assert {"grad:input", "grad:stage_1.conv_1.weight", "grad:dense_3.bias"} <= files
    assert np.load(out)["grad:input"].shape == (2, 1, 32, 32)


def test_grad_adds_norms_loss_and_findings_summary():
    result = cli("run", LENET, "-b", "4", "--grad", "--labels", "1,2,3,4")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("lenet5: training on")
    assert next(line for line in out.splitlines() if line.startswith("layer")).endswith("grad norm")
    assert "cross-entropy loss " in out and "gradient norm at the input" in out
    assert "0 findings (0 errors, 0 warnings, 0 info) in 1 file" in out
    doc = json.loads(cli("run", LENET, "-b", "2", "--grad", "--loss", "mse", "-f", "json").stdout)
    assert doc["loss"]["kind"] == "mse" and doc["loss"]["value"] > 0
    assert all(layer["grad_norm"] is not None for layer in doc["layers"][:-1])
    jsonschema.validate(doc["findings"], LINT_SCHEMA)


def test_vanishing_gradient_through_stacked_sigmoids():
    result = cli("run", ROOT / "samples" / "bad_sigmoid.yaml", "-b", "2", "--grad")
    assert result.exit_code == 1
    assert "AC803 vanishing-gradient [warning] layer 'conv_sigmoid_1.conv_1': the weight-gradient norm of the first " \
           "weighted layer 'conv_sigmoid_1.conv_1' is" in result.stdout
    assert "bad_sigmoid.yaml:11:9: " in result.stdout
    assert "1 finding (0 errors, 1 warning, 0 info)" in result.stdout


def test_exploding_gradient(tmp_path):
    layers = [{"conv": {"filters": 8, "kernel": 3, "padding": 1}}, "relu"] * 4 + ["flatten", {"dense": 3}]
    path = spec(tmp_path, [2, 6, 6], layers)

    def scale(p):  # the backward signal grows 1000-fold on its way to conv_1 (whose output is tiny)
        p["conv_1.weight"] *= 1e-3
        for key in ("conv_2.weight", "conv_3.weight", "conv_4.weight"):
            p[key] *= 10
    result = cli("run", path, "--grad", "-b", "2", "--weights", weights_file(tmp_path, path, scale))
    assert result.exit_code == 1
    assert "AC804 exploding-gradient [warning] layer 'conv_1'" in result.stdout
    assert "above 70, so early layers take huge steps" in result.stdout


def test_dead_relu_and_saturated_sigmoid(tmp_path):
    layers = [{"conv": {"filters": 4, "kernel": 3}}, "relu", {"conv": {"filters": 4, "kernel": 3}}, "sigmoid",
              "flatten", {"dense": 3}]
    path = spec(tmp_path, [2, 8, 8], layers)

    def break_it(p):
        p["conv_1.bias"][:3] = -50.0  # three of four channels never fire
        p["conv_2.weight"] *= 100  # the sigmoid sits at 0 or 1
    result = cli("run", path, "--grad", "-b", "2", "--weights", weights_file(tmp_path, path, break_it))
    assert result.exit_code == 1
    assert "AC801 dead-relu [warning] layer 'relu_1': " in result.stdout
    assert "(3 of 4 channels are zero for every sample)" in result.stdout
    assert "AC802 saturated-activation-runtime [warning] layer 'sigmoid_1': " in result.stdout


def test_non_finite_values_are_an_error_at_the_first_layer(tmp_path):
    path = spec(tmp_path, [2, 6, 6], [{"conv": 3}, "relu", {"conv": 3}, "flatten", {"dense": 2}])
    w = weights_file(tmp_path, path, lambda p: p["conv_2.weight"].__setitem__((0, 0, 0, 0), np.inf))
    result = cli("run", path, "--grad", "--weights", w)
    assert result.exit_code == 1
    assert "AC805 non-finite-values [error] layer 'conv_2': the output of this conv layer holds" in result.stdout
    table = cli("run", path, "--weights", w)
    assert table.exit_code == 0
    assert any(line.startswith("conv_2") and "/" in line.split()[-2] for line in table.stdout.splitlines())


def _broken_relu_and_sigmoid(tmp_path):
    """The spec and weights of test_dead_relu_and_saturated_sigmoid."""
    layers = [{"conv": {"filters": 4, "kernel": 3}}, "relu", {"conv": {"filters": 4, "kernel": 3}}, "sigmoid",
              "flatten", {"dense": 3}]
    path = spec(tmp_path, [2, 8, 8], layers)

    def break_it(p):
        p["conv_1.bias"][:3] = -50.0
        p["conv_2.weight"] *= 100
    return path, weights_file(tmp_path, path, break_it)


def test_grad_findings_follow_the_configuration(tmp_path):
    path, w = _broken_relu_and_sigmoid(tmp_path)
    (tmp_path / "archcheck.toml").write_text('[rules.dead-relu]\ndead_share = 0.95\n\n'
                                             '[severity]\nsaturated-activation-runtime = "error"\n')
    result = cli("run", path, "--grad", "-b", "2", "--weights", w)
    assert result.exit_code == 1
    assert "AC801" not in result.stdout
    assert "AC802 saturated-activation-runtime [error] layer 'sigmoid_1': " in result.stdout
    assert "1 finding (1 error, 0 warnings, 0 info) in 1 file; 0 suppressed" in result.stdout
    (tmp_path / "archcheck.toml").write_text('ignore = ["AC8"]\n')
    result = cli("run", path, "--grad", "-b", "2", "--weights", w)
    assert result.exit_code == 0 and "0 findings (0 errors, 0 warnings, 0 info)" in result.stdout


def test_grad_exit_code_follows_fail_on(tmp_path):
    path, w = _broken_relu_and_sigmoid(tmp_path)  # two warnings
    args = ("run", path, "--grad", "-b", "2", "--weights", w)
    (tmp_path / "archcheck.toml").write_text('fail-on = "error"\n')
    result = cli(*args)
    assert result.exit_code == 0 and "2 findings (0 errors, 2 warnings, 0 info)" in result.stdout
    assert cli(*args, "--fail-on", "warning").exit_code == 1  # the option overrides the configuration
    (tmp_path / "archcheck.toml").write_text('fail-on = "info"\n[severity]\ndead-relu = "info"\n'
                                             'saturated-activation-runtime = "info"\n')
    assert cli(*args).exit_code == 1  # info findings fail when fail-on is info
    assert cli(*args, "--fail-on", "warning").exit_code == 0
    assert cli("run", path, "--weights", w, "--fail-on", "info").exit_code == 0  # no findings without --grad


def test_saturation_margin_sets_the_table_and_the_finding(tmp_path):
    path, w = _broken_relu_and_sigmoid(tmp_path)
    column = {}
    for margin in (0.01, 0.4):
        (tmp_path / "archcheck.toml").write_text(f"[rules.saturated-activation-runtime]\nmargin = {margin}\n")
        result = cli("run", path, "--grad", "-b", "2", "--weights", w, "-f", "json")
        doc = json.loads(result.stdout)
        column[margin] = next(layer["saturated"] for layer in doc["layers"] if layer["name"] == "sigmoid_1")
        message = next(f["message"] for f in doc["findings"]["findings"] if f["code"] == "AC802")
        assert f"within {margin * 100:g}% of its bounds" in message
    assert 0.5 <= column[0.01] < column[0.4] <= 1


def test_grad_findings_can_be_suppressed_in_the_spec(tmp_path):
    path, w = _broken_relu_and_sigmoid(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("- relu\n", "- relu   # archcheck: ignore[dead-relu]\n"))
    result = cli("run", path, "--grad", "-b", "2", "--weights", w)
    assert "AC801" not in result.stdout and "AC802" in result.stdout
    assert "1 finding (0 errors, 1 warning, 0 info) in 1 file; 1 suppressed" in result.stdout


def test_a_crashing_dynamic_rule_is_an_internal_error_finding(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "boom.py").write_text(
        '"""A dynamic test rule."""\nCODE = "XT880"\nSLUG = "boom"\nSEVERITY = "warning"\nKIND = "dynamic"\n'
        'OPTIONS = {}\nSUMMARY = "Crashes."\n\n\ndef check(run, options):\n    yield run.loss / 0\n')
    (tmp_path / "archcheck.toml").write_text('custom-rules = "rules"\n')
    path, w = _broken_relu_and_sigmoid(tmp_path)
    result = cli("run", path, "--grad", "-b", "2", "--weights", w)
    assert result.exit_code == 1
    assert f"{path}:1:1: AC000 internal-error [error] rule XT880 boom crashed at boom.py:11: ZeroDivisionError: " \
        in result.stdout
    assert "AC801 dead-relu" in result.stdout and "AC802 saturated-activation-runtime" in result.stdout


def test_a_broken_configuration_is_a_usage_error(tmp_path):
    path = spec(tmp_path, [2, 6, 6], [{"conv": 3}, "relu", "flatten", {"dense": 2}])
    (tmp_path / "archcheck.toml").write_text("[rules.dead-relu]\ndead_shar = 0.9\n")
    err = bad("run", path, "--grad")
    assert f"archcheck: error: {tmp_path / 'archcheck.toml'}: key 'rules.dead-relu.dead_shar': rule AC801 dead-relu " \
           "has no option 'dead_shar' (did you mean 'dead_share'?)\n  = fix: its options are: dead_share" in err


def test_plain_run_reads_no_configuration_nor_rules(tmp_path):
    path, w = _broken_relu_and_sigmoid(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "broken.py").write_text("raise ImportError('broken rule')\n")
    (tmp_path / "archcheck.toml").write_text('custom-rules = "rules"\n[rules.saturated-activation-runtime]\n'
                                             'margin = 0.4\nmargn = 1\n')
    assert bad("run", path, "--grad", "-b", "2", "--weights", w).startswith("archcheck: error: ")
    result = cli("run", path, "-b", "2", "--weights", w, "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (tmp_path / "archcheck.toml").unlink()
    default = json.loads(cli("run", path, "-b", "2", "--weights", w, "-f", "json").stdout)
    assert doc["layers"] == [{**layer, "ms": row["ms"]} for layer, row in zip(default["layers"], doc["layers"])]


# -- bad input ------------------------------------------------------------------------------------
def bad(*args):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    return result.stderr


def test_data_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    err = bad("run", LENET, "--data", tmp_path / "x.npy")
    assert f"archcheck: error: {tmp_path / 'x.npy'} holds an array of shape (2, 3, 32, 32), but the spec's input is " \
           "(1, 32, 32): expected (N, 1, 32, 32) or (1, 32, 32)" in err
    assert "= fix: reshape the data to the spec's input" in err


def test_data_of_the_wrong_type(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 32, 32), np.uint8))
    assert "holds uint8 values; the executor needs floating-point input" in bad("run", LENET, "--data",
                                                                               tmp_path / "x.npy")


def test_nan_in_the_input(tmp_path):
    x = np.zeros((2, 1, 32, 32), np.float32)
    x[1, 0, 3, 4] = np.nan
    x[0, 0, 0, 1] = np.inf
    err = bad("run", LENET, "--data", tmp_path / "x.npy") if np.save(tmp_path / "x.npy", x) is None else ""
    assert "holds 1 NaN and 1 Inf values (the first at index (0, 0, 0, 1))" in err
    assert "= fix: clean the data" in err


@pytest.mark.parametrize("make,expected", [
    (lambda d: d / "missing.npy", "missing.npy does not exist"),
    (lambda d: (d / "x.txt").write_text("1 2 3") and d / "x.txt", "x.txt: unknown data format '.txt'"),
    (lambda d: (d / "x.npy").write_bytes(b"not numpy") and d / "x.npy",
     "x.npy cannot be read as a NumPy .npy file or an .npz archive"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "empty holds no images (.png .jpg"),
    (lambda d: np.savez(d / "two.npz", a=np.zeros(3), b=np.zeros(3)) or d / "two.npz",
     "two.npz holds 2 arrays (a, b) and none is named 'input'"),
])
def test_unreadable_data(tmp_path, make, expected):
    assert expected in bad("run", LENET, "--data", make(tmp_path))


def test_unreadable_image(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    err = bad("run", LENET, "--data", tmp_path)
    assert f"{tmp_path / 'broken.png'} cannot be decoded as an image" in err
    assert "= fix: remove the file or replace it with a valid PNG/JPEG image" in err


def test_images_need_an_image_shaped_input():
    err = bad("run", ROOT / "samples" / "timeseries1d.yaml", "--data", IMAGES)
    assert ("images need an input of 1 or 3 channels and two spatial axes (C, H, W); this spec's input is "
            "(3, 128)") in err


def test_images_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    err = bad("run", LENET, "--data", IMAGES / "camera.png")
    assert "decoding images needs Pillow, which is not installed" in err
    assert "pip install 'archcheck[images]'" in err


def test_more_samples_than_the_data_holds(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 32, 32), np.float32))
    assert "--batch 5 asks for more samples than" in bad("run", LENET, "--data", tmp_path / "x.npy", "-b", "5")


def test_weights_that_do_not_match(tmp_path):
    def edit(p):
        del p["dense_3.bias"]
        p["dense_1.weight"] = p["dense_1.weight"].T
        p["fc.weight"] = np.zeros((2, 3))
    err = bad("run", LENET, "--weights", weights_file(tmp_path, LENET, edit))
    lines = err.splitlines()
    assert lines[0] == f"archcheck: error: {tmp_path / 'w.npz'} does not match the spec (3 problems):"
    assert "  wrong shape: dense_1.weight is (400, 120), expected (120, 400) (layer at " in err
    assert "  missing: dense_3.bias, expected shape (10) (layer at " in err
    assert "  extra: fc.weight is not a weight of this network (not read)" in err
    assert "= fix: store each array as `<layer>.<suffix>` in PyTorch's layout" in err


@pytest.mark.parametrize("content,expected", [
    (b"garbage", "cannot be read as a NumPy .npy file or an .npz archive"),
    (None, "holds a single array, not named weights"),
])
def test_unreadable_weights(tmp_path, content, expected):
    path = tmp_path / "w.npz"
    if content is None:
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    else:
        path.write_bytes(content)
    assert expected in bad("run", LENET, "--weights", path)
    assert "the file does not exist" in bad("run", LENET, "--weights", tmp_path / "none.npz")


@pytest.mark.parametrize("labels,expected", [
    ("1,2,3", "labels for 'softmax_1' must be whole numbers of shape (2) (one class index per sample), received "
              "int64 values of shape (3)"),
    ("1,12", "label 12 for 'softmax_1' is not a class index: the output has 10 classes (0 to 9)"),
    ("a,b", "--labels expects comma-separated class indices such as 3,0,7, received 'a,b'"),
])
def test_bad_labels(labels, expected):
    assert expected in bad("run", LENET, "-b", "2", "--grad", "--labels", labels)


def test_labels_from_files(tmp_path):
    np.save(tmp_path / "y.npy", np.array([3, 4]))
    assert cli("run", LENET, "-b", "2", "--grad", "--labels", tmp_path / "y.npy").exit_code == 0
    np.save(tmp_path / "t.npy", np.zeros((2, 10)))
    assert cli("run", LENET, "-b", "2", "--grad", "--loss", "mse", "--labels", tmp_path / "t.npy").exit_code == 0
    assert "MSE targets for 'softmax_1' must be numbers of shape (2, 10)" in bad(
        "run", LENET, "-b", "2", "--grad", "--loss", "mse", "--labels", tmp_path / "y.npy")


def test_option_combinations_are_usage_errors():
    assert "--labels is for --grad" in bad("run", LENET, "--labels", "1")
    assert "--save-activations needs --save OUT.npz" in bad("run", LENET, "--save-activations")


def test_an_invalid_spec_is_reported_with_its_location(tmp_path):
    path = spec(tmp_path, [3, 8, 8], [{"conv": 4}, {"dense": 2}])
    err = bad("run", path)
    assert f"{path}:" in err and "dense expects a flat vector (F,)" in err


# -- train ------------------------------------------------------------------------------------------
def test_train_overfits_a_small_batch():
    result = cli("train", LENET, "--steps", "20")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("lenet5: 20 steps of momentum (lr 0.01) on random normal, seed 0; cross-entropy; 61,706 "
                          "trainable parameters; float32")
    assert "loss: step 0: " in out and "step 19: " in out
    assert "+" + "-" * 20 in out  # the chart's axis, one column per step
    assert "PASS: the loss fell from " in out and "the network can fit a small batch" in out
    assert "gradients:" not in out  # 5x5 convolutions: every layer as written


def test_train_says_which_layers_run_by_a_faster_algorithm(tmp_path):
    path = spec(tmp_path, [3, 12, 12], [{"conv": {"filters": 32, "kernel": 3, "padding": 1}}, "relu",
                                        {"conv": {"filters": 32, "kernel": 3, "padding": 1}}, "relu", "globalavgpool",
                                        {"dense": 3}])
    result = cli("train", path, "--steps", "20", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == ("gradients: 1 layer by Winograd F(2x2, 3x3) (rounding as the layers as "
                                             "written do)")  # (the first has 3 input channels)


def test_train_prints_one_final_loss():
    out = cli("train", LENET, "--steps", "20").stdout
    final = re.search(r"; final (\S+) \(the mean of the last 2 steps\)\n", out).group(1)
    assert f" to {final} (the mean of the last 2 steps), " in out  # the verdict judges the figure printed


def test_train_into_a_closed_pipe_exits_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as `| head -1` is after it
    try:
        result = subprocess.run([sys.executable, "-m", "archcheck", "train", LENET, "--steps", "5"], stdout=write,
                                stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_with_other_optimizers(tmp_path, optimizer):
    path = spec(tmp_path, [2, 6, 6], [{"conv": 8}, "batchnorm", "relu", "flatten", {"dense": 3}, "softmax"])
    result = cli("train", path, "--steps", "40", "--optimizer", optimizer, "--lr", "0.05" if optimizer == "sgd" else
                 "0.01", "--loss", "mse")
    assert result.exit_code == 0, result.stdout
    assert f"40 steps of {optimizer}" in result.stdout


def test_train_fails_when_the_loss_does_not_fall():
    result = cli("train", ROOT / "samples" / "bad_sigmoid.yaml", "--steps", "10")
    assert result.exit_code == 1
    assert "FAIL: the loss went from " in result.stdout
    assert "a trainable network reaches 50% or less), in 10 steps" in result.stdout


def test_train_reports_divergence(tmp_path):
    path = spec(tmp_path, [2, 6, 6], [{"conv": 8}, "relu", "flatten", {"dense": 3}])
    result = cli("train", path, "--steps", "30", "--lr", "1e6", "--loss", "mse")
    assert result.exit_code == 1
    assert "training diverged (lower --lr" in result.stdout


def test_train_bad_input_is_exit_2(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    assert "holds an array of shape (2, 3, 32, 32)" in bad("train", LENET, "--data", tmp_path / "x.npy")


def test_save_to_an_unwritable_place(tmp_path):
    err = bad("run", LENET, "--save", tmp_path / "missing" / "out.npz")
    assert "cannot write " in err and "= fix: choose a path in a writable directory" in err


def test_a_vector_input_runs_end_to_end(tmp_path):
    """`input: [F]`: a multi-layer perceptron is summarised, linted, run with gradients and exported."""
    path = spec(tmp_path, [20], [{"dense": 64}, "relu", {"dense": 3}, "softmax"])
    summary = json.loads(cli("summary", path, "--format", "json").output)
    assert summary["totals"]["trainable_params"] == 20 * 64 + 64 + 64 * 3 + 3
    assert summary["layers"][-1]["output_shape"] == [3]
    assert cli("lint", path, "--no-config").exit_code == 0
    ran = cli("run", path, "--grad", "--batch", "4", "--format", "json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["outputs"]["softmax_1"]["shape"] == [4, 3]
    pytest.importorskip("onnx")
    assert cli("export", path, "-o", tmp_path / "mlp.onnx").exit_code == 0
