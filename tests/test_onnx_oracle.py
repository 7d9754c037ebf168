"""The NumPy executor against an independent runtime: every sample and every layer type runs through
``archcheck.executor.forward`` and, exported to ONNX, through ONNX Runtime, with the same weights and
inputs; every layer's output must agree.

Both sides compute in float32 (the executor's default, and what ONNX Runtime's CPU kernels support for
convolutions). Agreement means ``|executor - ort| <= 1e-4 * |ort| + 1e-4 * max|ort|`` per layer output:
1e-4 relative, with the absolute part scaled by the tensor's magnitude so that values near zero from a
cancelling sum (where float32 rounding of different summation orders dominates) do not fail alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx", reason="the oracle tests need onnx (pip install 'archcheck[test]')")
ort = pytest.importorskip("onnxruntime", reason="the oracle tests need onnxruntime (pip install 'archcheck[test]')")

from archcheck.executor import forward, init_params  # noqa: E402
from archcheck.onnx_export import export_model  # noqa: E402
from archcheck.pipeline import analyze  # noqa: E402
from archcheck.spec import INPUT  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RTOL = 1e-4
# the large ImageNet networks run at batch 1, the rest at batch 3
BATCH = {"alexnet": 1, "vgg16": 1, "googlenet": 1, "resnet18": 1, "resnet50": 1, "mobilenetv2": 1,
         "video3d": 1, "efficientnet_b0": 1, "convnext_tiny": 1, "regnet_y_400mf": 1, "resnext50_32x4d": 1,
         "unet": 1, "mobilenet_v3_large": 1, "shufflenet_v2_x1_0": 1}
# the modern networks run on a small input that each allows (a multiple of 32, of 16 for the U-Net), to keep
# the suite quick: every layer still runs, on maps of 32x32 down to 2x2
SMALL_INPUT = {"efficientnet_b0": (3, 64, 64), "convnext_tiny": (3, 64, 64), "regnet_y_400mf": (3, 64, 64),
               "resnext50_32x4d": (3, 64, 64), "unet": (1, 64, 64), "mobilenet_v3_large": (3, 64, 64),
               "shufflenet_v2_x1_0": (3, 64, 64)}


def perturbed(analysis, seed: int) -> dict:
    """The executor's initial weights, with biases and batchnorm statistics made non-trivial (initially
    they are 0 and 1, which would hide a swapped or ignored array)."""
    rng = np.random.default_rng(seed)
    params = init_params(analysis, seed=seed)
    for key, value in params.items():
        layer, suffix = key.rsplit(".", 1)
        if suffix == "running_var":
            new = rng.uniform(0.5, 2.0, value.shape)
        elif suffix in ("bias", "running_mean"):
            new = rng.normal(0.0, 0.2, value.shape)
        elif suffix == "weight" and analysis.graph.nodes[layer].type in ("batchnorm", "layernorm", "groupnorm",
                                                                                 "instancenorm", "layerscale"):
            new = rng.uniform(0.5, 1.5, value.shape)
        else:
            continue
        params[key] = new.astype(value.dtype)
    return params


def run_both(analysis, batch: int, seed: int = 0, scale: float = 1.0, check: bool = False):
    """Every layer's output from the executor and from ONNX Runtime, by layer name; ``check`` also runs
    the ONNX checker with full shape inference (which compares every inferred shape with ours)."""
    params = perturbed(analysis, seed)
    shape = analysis.layers[INPUT].shape  # the spec's input, or the size it was analysed at
    x = (np.random.default_rng(seed + 1).standard_normal((batch, *shape)) * scale).astype(np.float32)
    ours = forward(analysis, params, x, keep=True)
    names = [n.name for n in analysis.graph.order if n.name != INPUT and n.name in analysis.graph.used]
    model = export_model(analysis, params, outputs=names)
    if check:
        onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    theirs = dict(zip(names, session.run(names, {INPUT: x})))
    return ours, theirs


def assert_agree(analysis, ours, theirs):
    for name, want in theirs.items():  # in graph order: the first layer that disagrees is reported
        got = ours[name]
        assert got.shape == want.shape, f"layer '{name}': executor {got.shape}, ONNX Runtime {want.shape}"
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        err = np.abs(got.astype(np.float64) - want)
        bound = RTOL * np.abs(want) + RTOL * scale
        if not np.all(err <= bound):
            worst = np.unravel_index(np.argmax(err - bound), err.shape)
            pytest.fail(f"layer '{name}' ({analysis.graph.nodes[name].type}): executor and ONNX Runtime differ "
                        f"by up to {err.max():.3g} (max |value| {scale:.3g}); at {worst}: executor {got[worst]!r}, "
                        f"ONNX Runtime {want[worst]!r}")


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_sample(path):
    """Every layer of every sample. The slowest is vgg16 (~10 s: 138 M weights are initialised, serialised
    for ONNX Runtime and loaded by it); the exported models are checked by test_export_cli."""
    analysis = analyze(path, input_shape=SMALL_INPUT.get(path.stem))
    ours, theirs = run_both(analysis, BATCH.get(path.stem, 3))
    assert set(analysis.spec.outputs) <= set(theirs)
    assert_agree(analysis, ours, theirs)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "unet", "googlenet"])
def test_sample_as_run(name):
    """Inference as ``archcheck run`` runs it (batchnorms folded, layers writing over their inputs, Winograd's
    3x3 convolutions) agrees with ONNX Runtime layer by layer as closely as the layers run as written."""
    path = SAMPLES / f"{name}.yaml"
    batch = BATCH.get(name, 3)
    analysis = analyze(path, input_shape=SMALL_INPUT.get(name), batch=batch)
    assert analysis.inference.kernels
    params = perturbed(analysis, 0)
    x = np.random.default_rng(1).standard_normal((batch, *analysis.layers[INPUT].shape)).astype(np.float32)
    made = {}
    forward(analysis, params, x, on_layer=lambda node, y, _: made.__setitem__(node.name, y.copy()))
    model = export_model(analysis, params, outputs=list(made))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert_agree(analysis, made, dict(zip(made, session.run(list(made), {INPUT: x}))))


def conv(filters, **args):
    return {"conv": {"filters": filters, **args}}


# (id, input shape, layers): every layer type, 1-D / 2-D / 3-D, and the arguments that are easy to get wrong
LAYER_CASES = [
    # convolution
    ("conv-1d", [3, 17], [conv(4, kernel=3, padding=1)]),
    ("conv-2d-stride-dilation", [3, 11, 13], [conv(5, kernel=3, stride=2, dilation=2, padding=2)]),
    ("conv-2d-same-even-kernel", [4, 9, 10], [conv(3, kernel=4, stride=2, padding="same")]),
    ("conv-2d-same-stride1", [2, 7, 8], [conv(3, kernel=[2, 5], padding="same", bias=False)]),
    ("conv-2d-asymmetric-pads", [2, 6, 7], [conv(3, kernel=[2, 3], padding=[[0, 1], [2, 0]])]),
    ("conv-2d-groups", [8, 6, 6], [conv(12, kernel=3, groups=4, padding=1)]),
    ("conv-2d-depthwise", [6, 7, 7], [conv(12, kernel=3, stride=2, groups="depthwise")]),
    ("conv-3d", [2, 5, 6, 7], [conv(3, kernel=[3, 1, 3], stride=[1, 2, 1], padding=[1, 0, 1])]),
    ("conv-3d-dilation-groups", [4, 6, 6, 6], [conv(4, kernel=2, dilation=[1, 2, 2], groups=2, bias=False)]),
    # transposed convolution
    ("convtranspose-1d-output-padding", [4, 5], [{"convtranspose": {"filters": 3, "kernel": 3, "stride": 2,
                                                                     "padding": 1, "output_padding": 1}}]),
    ("convtranspose-2d-groups", [4, 5, 6], [{"convtranspose": {"filters": 6, "kernel": 4, "stride": 2,
                                                              "padding": 1, "groups": 2}}]),
    ("convtranspose-2d-dilation", [3, 4, 5], [{"convtranspose": {"filters": 2, "kernel": 3, "stride": [2, 1],
                                                                "dilation": 2, "padding": [[1, 0], 2],
                                                                "output_padding": [1, 0], "bias": False}}]),
    ("convtranspose-3d", [2, 3, 4, 4], [{"convtranspose": {"filters": 2, "kernel": 2, "stride": 2}}]),
    # locally connected
    ("locallyconnected-1d", [3, 10], [{"locallyconnected": {"filters": 4, "kernel": 3, "stride": 2}}]),
    ("locallyconnected-2d", [2, 6, 7], [{"locallyconnected": {"filters": 3, "kernel": [3, 2], "padding": 1,
                                                              "dilation": [1, 2]}}]),
    ("locallyconnected-3d", [2, 4, 4, 4], [{"locallyconnected": {"filters": 2, "kernel": 2, "bias": False}}]),
    # pooling
    ("maxpool-1d-ceil", [4, 10], [{"maxpool": {"kernel": 3, "stride": 2, "ceil_mode": True}}]),
    ("maxpool-2d-padding", [3, 9, 9], [{"maxpool": {"kernel": 3, "stride": 2, "padding": 1}}]),
    ("maxpool-2d-ceil", [3, 8, 8], [{"maxpool": {"kernel": 3, "stride": 2, "ceil_mode": True}}]),
    ("maxpool-3d", [2, 4, 6, 6], [{"maxpool": [1, 2, 2]}]),
    ("avgpool-1d", [3, 9], [{"avgpool": 2}]),
    ("avgpool-2d-exclude-pad", [3, 8, 8], [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1,
                                                        "count_include_pad": False}}]),
    ("avgpool-2d-include-pad-ceil", [3, 8, 8], [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1,
                                                             "ceil_mode": True}}]),
    ("avgpool-2d-exclude-pad-ceil", [3, 8, 8], [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1,
                                                             "ceil_mode": True, "count_include_pad": False}}]),
    ("avgpool-2d-same", [3, 7, 7], [{"avgpool": {"kernel": 2, "padding": "same", "count_include_pad": False}}]),
    ("avgpool-3d", [2, 4, 4, 5], [{"avgpool": {"kernel": 2, "stride": 1}}]),
    ("adaptiveavgpool-2d-overlapping", [3, 10, 7], [{"adaptiveavgpool": [7, 3]}]),  # Slice/ReduceMean/Concat
    ("adaptivemaxpool-2d-overlapping", [3, 10, 13], [{"adaptivemaxpool": [7, 5]}]),
    ("adaptiveavgpool-3d-keep", [2, 4, 5, 6], [{"adaptiveavgpool": [None, 3, 4]}]),
    ("adaptiveavgpool-2d-divisible", [3, 8, 6], [{"adaptiveavgpool": [4, 3]}]),  # AveragePool 2x2
    ("adaptivemaxpool-1d-sliding", [3, 8], [{"adaptivemaxpool": 7}]),  # MaxPool, kernel 2, stride 1
    ("adaptivepools-3d-to-one", [2, 3, 4, 5], [{"adaptiveavgpool": 1, "name": "avg"},
                                               {"adaptivemaxpool": 1, "inputs": ["input"]},
                                               {"add": ["avg", "adaptivemaxpool_1"]}]),
    ("globalpools-1d", [3, 9], [{"globalavgpool": None, "name": "avg"}, {"globalmaxpool": None, "inputs": ["input"]},
                                {"add": ["avg", "globalmaxpool_1"]}]),
    ("globalpools-2d-keepdims", [3, 5, 6], [{"concat": [[{"globalavgpool": {"keepdims": True}}],
                                                       [{"globalmaxpool": {"keepdims": True}}]]}]),
    ("globalpools-3d", [3, 2, 3, 4], [{"multiply": [["globalmaxpool"], ["globalavgpool"]]}]),
    # dense
    ("dense", [5, 4, 4], ["flatten", {"dense": 7}, {"dense": {"units": 3, "bias": False}}]),
    # normalisation
    ("batchnorm-1d", [4, 9], ["batchnorm"]),
    ("batchnorm-2d", [4, 5, 6], [{"batchnorm": {"eps": 0.001}}]),
    ("batchnorm-3d-no-affine", [3, 2, 3, 4], [{"batchnorm": {"affine": False}}]),
    ("batchnorm-vector", [4, 3, 3], ["flatten", "batchnorm"]),
    ("batchnorm-no-scale", [4, 5, 6], [{"batchnorm": {"scale": False}}]),
    ("batchnorm-no-center", [4, 5, 6], [{"batchnorm": {"center": False}}]),
    ("layernorm-channels-1d", [4, 9], ["layernorm"]),
    ("layernorm-channels-2d", [4, 5, 6], ["layernorm"]),
    ("layernorm-channels-3d-no-affine", [3, 2, 3, 4], [{"layernorm": {"affine": False}}]),
    ("layernorm-all-2d", [4, 5, 6], [{"layernorm": {"over": "all", "eps": 0.01}}]),
    ("layernorm-all-no-affine", [3, 7], [{"layernorm": {"over": "all", "affine": False}}]),
    ("layernorm-all-no-affine-3d", [2, 3, 4, 5], [{"layernorm": {"over": "all", "affine": False, "eps": 0.1}}]),
    ("layernorm-vector-no-affine", [6], [{"layernorm": {"affine": False}}]),
    ("layernorm-vector", [4, 3, 3], ["flatten", "layernorm"]),
    ("groupnorm-2d", [6, 5, 4], [{"groupnorm": {"groups": 3}}]),
    ("groupnorm-3d-no-affine", [4, 2, 3, 3], [{"groupnorm": {"groups": 2, "affine": False, "eps": 0.01}}]),
    ("groupnorm-vector", [4, 3, 3], ["flatten", {"groupnorm": {"groups": 4}}]),
    ("instancenorm-1d", [4, 9], ["instancenorm"]),
    ("layerscale-2d", [4, 5, 6], [{"layerscale": {"init": 0.5}}]),
    ("layerscale-3d", [3, 2, 3, 4], ["layerscale"]),
    ("layerscale-vector", [4, 3, 3], ["flatten", "layerscale"]),
    ("instancenorm-2d-affine", [4, 5, 6], [{"instancenorm": {"affine": True, "eps": 0.001}}]),
    # activations (inputs scaled by 4 so relu6, the saturating ones and hardswish's corners are reached)
    *[(f"{act}", [4, 5, 6], [act]) for act in
      ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh", "hardswish", "swish", "softmax",
       "hardsigmoid", "mish")],
    ("leaky_relu-slope", [4, 6], [{"leaky_relu": 0.2}]),
    ("elu-alpha", [4, 6], [{"elu": 0.5}]),
    ("softmax-vector", [4, 3, 3], ["flatten", "softmax"]),
    ("softmax-spatial-axis", [4, 5, 6], [{"softmax": {"axis": 2}}]),
    ("softmax-1d", [3, 5], ["softmax"]),
    # merges
    ("add-residual", [4, 6, 6], [{"add": [[conv(4, padding=1), "relu"], []]}]),
    ("add-three-broadcast", [4, 6, 6], [{"add": [[conv(4, padding=1)], [{"globalavgpool": {"keepdims": True}}],
                                                 []]}]),
    ("multiply-channel-gate", [4, 6, 6], [{"multiply": [[], [{"globalavgpool": {"keepdims": True}}, "sigmoid"]]}]),
    ("multiply-hardsigmoid-gate", [4, 6, 6], [{"multiply": [[], [{"globalavgpool": {"keepdims": True}},
                                                                  "hardsigmoid"]]}]),
    ("multiply-spatial-gate", [4, 6, 6], [{"multiply": [[conv(1, kernel=1), "sigmoid"], []]}]),
    ("multiply-1d-three", [3, 8], [{"multiply": [[], ["tanh"], [{"globalmaxpool": {"keepdims": True}}]]}]),
    ("concat-channels", [3, 6, 6], [{"concat": [[conv(4, padding=1)], [{"maxpool": {"kernel": 3, "stride": 1,
                                                                                   "padding": 1}}], []]}]),
    ("concat-spatial-axis", [3, 4, 6], [{"concat": {"axis": 2, "branches": [[conv(3, kernel=[1, 3])], []]}}]),
    ("concat-3d-depth", [2, 3, 4, 4], [{"concat": {"axis": 1, "branches": [[], ["relu"]]}}]),
    # reshaping
    ("flatten-reshape", [4, 4, 4], ["flatten", {"reshape": [16, -1]}, {"reshape": [2, 8, 4]}]),
    ("zeropad-1d", [3, 5], [{"zeropad": [[1, 2]]}]),
    ("zeropad-2d", [3, 4, 5], [{"zeropad": [1, [2, 0]]}]),
    ("zeropad-3d", [2, 2, 3, 3], [{"zeropad": 1}]),
    ("upsample-nearest-1d", [3, 5], [{"upsample": 3}]),
    ("upsample-nearest-2d", [3, 4, 5], [{"upsample": [2, 3]}]),
    ("upsample-nearest-3d", [2, 2, 3, 3], [{"upsample": [1, 2, 2]}]),
    ("upsample-linear-1d", [3, 5], [{"upsample": {"scale": 2, "mode": "linear"}}]),
    ("upsample-linear-2d", [3, 4, 5], [{"upsample": {"scale": [2, 3], "mode": "linear"}}]),
    ("upsample-linear-3d", [2, 2, 3, 3], [{"upsample": {"scale": [2, 1, 2], "mode": "linear"}}]),
    ("identity-dropout", [3, 5, 5], ["identity", {"dropout": 0.3}, "flatten", "dropout"]),
    ("channelshuffle-1d", [6, 5], [{"channelshuffle": 2}]),
    ("channelshuffle-2d", [12, 3, 4], [{"channelshuffle": 3}]),
    ("channelshuffle-3d-vector", [8, 2, 2, 3], [{"channelshuffle": 4}, "flatten", {"channelshuffle": 6}]),
    ("pixelshuffle-1d", [6, 5], [{"pixelshuffle": 3}]),
    ("pixelshuffle-2d", [12, 3, 4], [{"pixelshuffle": 2}]),
    ("pixelshuffle-2d-factor3", [18, 2, 3], [{"pixelshuffle": 3}]),
    ("pixelshuffle-3d", [16, 2, 3, 2], [{"pixelshuffle": 2}]),
    ("pixelunshuffle-1d", [2, 6], [{"pixelunshuffle": 3}]),
    ("pixelunshuffle-2d", [3, 4, 6], [{"pixelunshuffle": 2}]),
    ("pixelunshuffle-3d", [2, 4, 2, 6], [{"pixelunshuffle": 2}]),
    ("pixelunshuffle-pixelshuffle", [3, 6, 4], [{"pixelunshuffle": 2}, {"pixelshuffle": 2}]),
    ("droppath", [3, 5, 5], [{"droppath": 0.2}]),
    ("slice-channels", [6, 4, 4], [{"slice": {"start": -4, "stop": 5}}]),
    ("slice-crop-1d", [2, 9], [{"slice": {"start": 2, "axis": 1}}]),
    ("slice-crop-2d", [2, 6, 5], [{"slice": {"start": 1, "stop": -1, "axis": 2}}]),
    ("slice-crop-3d", [2, 3, 4, 4], [{"slice": {"stop": 2, "axis": 1}}]),
    ("slice-vector", [3, 2, 2], ["flatten", {"slice": {"start": 5}}]),
]


def write_spec(folder: Path, shape, layers) -> Path:
    path = folder / "net.yaml"
    path.write_text(yaml.safe_dump({"input": shape, "layers": layers}))
    return path


def test_every_layer_type_has_a_case(tmp_path):
    from archcheck.layers import CATALOGUE

    used = {node.type for _, shape, layers in LAYER_CASES
            for node in analyze(write_spec(tmp_path, shape, layers)).graph.order}
    assert set(CATALOGUE) <= used, f"no oracle case for {sorted(set(CATALOGUE) - used)}"


@pytest.mark.parametrize("shape,layers", [c[1:] for c in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_layer(tmp_path, shape, layers):
    analysis = analyze(write_spec(tmp_path, shape, layers))
    ours, theirs = run_both(analysis, batch=2, seed=3, scale=4.0, check=True)
    assert_agree(analysis, ours, theirs)


def _pool_cases(n: int = int(os.environ.get("ARCHCHECK_SWEEP", 40)), seed: int = 7):
    """Window pooling configurations, ceil_mode's awkward ones included: a last window that starts in the end
    padding (dropped) or past the input, asymmetric 'same' padding, windows wider than the stride.
    ARCHCHECK_SWEEP=2000 runs a larger sweep by hand."""
    rng = np.random.default_rng(seed)
    cases = [("issue-7", [1, 6], {"maxpool": {"kernel": 2, "stride": 3, "ceil_mode": True}}),
             ("issue-7-avg", [1, 6], {"avgpool": {"kernel": 2, "stride": 3, "ceil_mode": True}})]
    while len(cases) < n:
        rank = int(rng.integers(1, 4))
        kernel = int(rng.integers(1, 5))
        stride = int(rng.integers(1, 5))
        padding = "same" if rng.random() < 0.15 else int(rng.integers(0, kernel // 2 + 1))
        sizes = [int(rng.integers(kernel, kernel + 9)) for _ in range(rank)]
        kind = "maxpool" if rng.random() < 0.5 else "avgpool"
        args = {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": bool(rng.random() < 0.7)}
        if kind == "avgpool":
            args["count_include_pad"] = bool(rng.random() < 0.5)
        cases.append((f"{kind}-{len(cases)}", [2, *sizes], {kind: args}))
    return cases


@pytest.mark.parametrize("shape,layer", [c[1:] for c in _pool_cases()], ids=[c[0] for c in _pool_cases()])
def test_pooling_agrees_with_onnx_in_shape_and_value(tmp_path, shape, layer):
    """archcheck's shape rule = ONNX shape inference = ONNX Runtime's output = the executor's, for every
    configuration the spec language accepts (or archcheck refuses it as a shape error)."""
    from archcheck.errors import SpecError

    try:
        analysis = analyze(write_spec(tmp_path, shape, [layer]))
    except SpecError:
        return  # refused with a message, never exported
    ours, theirs = run_both(analysis, batch=2, seed=5, scale=4.0, check=True)
    assert_agree(analysis, ours, theirs)


def _adaptive_cases(n: int = int(os.environ.get("ARCHCHECK_SWEEP", 40)) // 2, seed: int = 9):
    """Adaptive poolings of random sizes, 1-D to 3-D: cells that slide, overlap, keep the axis (~) or pool to 1."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        sizes = [int(rng.integers(1, 12)) for _ in range(int(rng.integers(1, 4)))]
        size = [None if rng.random() < 0.15 else int(rng.integers(1, s + 1)) for s in sizes]
        kind = ["adaptiveavgpool", "adaptivemaxpool"][len(cases) % 2]
        cases.append((f"{kind}-{len(cases)}", [2, *sizes], {kind: size}))
    return cases


@pytest.mark.parametrize("shape,layer", [c[1:] for c in _adaptive_cases()], ids=[c[0] for c in _adaptive_cases()])
def test_adaptive_pooling_agrees_with_onnx_in_shape_and_value(tmp_path, shape, layer):
    analysis = analyze(write_spec(tmp_path, shape, [layer]))
    ours, theirs = run_both(analysis, batch=2, seed=5, scale=4.0, check=True)
    assert_agree(analysis, ours, theirs)


@pytest.mark.parametrize("size,ins,ops", [
    (1, [3, 5, 6], {"GlobalAveragePool"}),
    ([4, 3], [3, 8, 6], {"AveragePool"}),
    (7, [3, 7, 7], {"AveragePool"}),  # VGG's at 224: a 1x1 window
    ([7, 3], [3, 10, 7], {"Slice", "ReduceMean", "Concat"}),
])
def test_adaptive_pooling_exports_as_the_simplest_operators_that_fit(tmp_path, size, ins, ops):
    from archcheck.executor import init_params

    analysis = analyze(write_spec(tmp_path, ins, [{"adaptiveavgpool": size}]))
    assert {n.op_type for n in export_model(analysis, init_params(analysis)).graph.node} == ops


def test_export_of_a_ceil_mode_window_starting_in_the_padding_is_a_valid_model(tmp_path):
    """Issue 7: this spec exited 3 and left a 277-byte model that ONNX's shape inference rejected."""
    from click.testing import CliRunner

    from archcheck.cli import main

    spec = write_spec(tmp_path, [1, 6], [{"maxpool": {"kernel": 2, "stride": 3, "ceil_mode": True}}])
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "(batch, 1, 6) -> 'maxpool_1' (batch, 1, 2)" in result.output
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0]
    assert [d.dim_value for d in inferred.type.tensor_type.shape.dim][1:] == [1, 2]


@pytest.mark.parametrize("shape,layer", [
    ([1, 2], {"convtranspose": {"filters": 1, "kernel": 2, "output_padding": 1, "dilation": 2}}),
    ([2, 4, 5], {"convtranspose": {"filters": 4, "kernel": 3, "dilation": 3, "output_padding": 2, "groups": 2,
                                   "padding": 1}}),
    ([2, 4], {"convtranspose": {"filters": 2, "kernel": 2, "stride": 2, "dilation": 3, "output_padding": 2,
                                "bias": False}}),
    ([2, 3], {"convtranspose": {"filters": 2, "kernel": 3, "dilation": 2, "output_padding": 1, "padding": 2}}),
], ids=["issue-7", "grouped-2d", "no-bias", "padding-covers-it"])
def test_convtranspose_output_padding_up_to_the_dilation_runs_in_onnx_runtime(tmp_path, shape, layer):
    """PyTorch accepts output_padding below the dilation, ONNX Runtime only below the stride: the export
    writes it so that ONNX Runtime runs it and agrees with the executor."""
    analysis = analyze(write_spec(tmp_path, shape, [layer]))
    ours, theirs = run_both(analysis, batch=2, seed=5, check=True)
    assert_agree(analysis, ours, theirs)


def _window_cases():
    from test_gradients import _window_cases as cases

    return cases()


@pytest.mark.parametrize("shape,layers", [c[1:] for c in _window_cases()], ids=[c[0] for c in _window_cases()])
def test_window_layers_agree_with_onnx_in_shape_and_value(tmp_path, shape, layers):
    """The gradient sweep's convolutions, transposed convolutions, locally connected layers and poolings,
    exported: the checker accepts every model and ONNX Runtime agrees with the executor."""
    from archcheck.errors import SpecError

    try:
        analysis = analyze(write_spec(tmp_path, shape, layers))
    except SpecError:
        return  # refused with a message, never exported
    ours, theirs = run_both(analysis, batch=2, seed=5, check=True)
    assert_agree(analysis, ours, theirs)
