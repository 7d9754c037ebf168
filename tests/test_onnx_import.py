"""``archcheck import``'s core, ``read_onnx``: every sample exported to ONNX and read back gives the same
analysis and, with the imported weights, the same outputs; torch.onnx-style patterns built by hand; files
that are broken or hostile are refused with a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="importing needs onnx (pip install 'archcheck[test]')")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcheck.executor import forward, init_params  # noqa: E402
from archcheck.graph import build_graph  # noqa: E402
from archcheck.importers import ImportProblem  # noqa: E402
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


# -- torch.onnx-style graphs, built by hand ----------------------------------------------------------------

def _init(rng, name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)


def _int(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def torch_style_model():
    """What torch.onnx writes for a small MobileNetV3-like network: Conv + BatchNormalization, Pad before Conv,
    Clip as ReLU6, x * HardSigmoid(x), x * Sigmoid(x), a squeeze-and-excitation gate, global pooling and a
    flatten computed by Shape -> Gather -> Unsqueeze -> Concat -> Reshape, then Gemm."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    inits = [
        _init(rng, "conv1.weight", 8, 3, 3, 3), _init(rng, "bn1.weight", 8), _init(rng, "bn1.bias", 8),
        _init(rng, "bn1.running_mean", 8),
        numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "bn1.running_var"),
        _init(rng, "conv2.weight", 8, 1, 3, 3), _init(rng, "conv2.bias", 8),
        _init(rng, "se.fc.weight", 8, 8, 1, 1), _init(rng, "se.fc.bias", 8),
        _init(rng, "fc.weight", 10, 8), _init(rng, "fc.bias", 10),
        _int("pads", [0, 0, 1, 1, 0, 0, 1, 1]), _int("zero", 0), _int("axes0", [0]), _int("minus1", [-1]),
        numpy_helper.from_array(np.array(0.0, np.float32), "clip_min"),
        numpy_helper.from_array(np.array(6.0, np.float32), "clip_max"),
    ]
    nodes = [
        n("Conv", ["x", "conv1.weight"], ["c1"], name="/conv1/Conv", kernel_shape=[3, 3], strides=[2, 2],
          pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], ["b1"],
          name="/bn1/BatchNormalization", epsilon=1e-3),
        n("Clip", ["b1", "clip_min", "clip_max"], ["r1"], name="/act1/Clip"),
        n("Pad", ["r1", "pads"], ["p2"], name="/conv2/Pad", mode="constant"),
        n("Conv", ["p2", "conv2.weight", "conv2.bias"], ["c2"], name="/conv2/Conv", kernel_shape=[3, 3], group=8),
        n("HardSigmoid", ["c2"], ["hs"], name="/act2/HardSigmoid", alpha=1 / 6, beta=0.5),
        n("Mul", ["c2", "hs"], ["h2"], name="/act2/Mul"),
        n("Sigmoid", ["h2"], ["sg"], name="/act3/Sigmoid"),
        n("Mul", ["h2", "sg"], ["s3"], name="/act3/Mul"),
        n("GlobalAveragePool", ["s3"], ["sq"], name="/se/avgpool/GlobalAveragePool"),
        n("Conv", ["sq", "se.fc.weight", "se.fc.bias"], ["ex"], name="/se/fc/Conv", kernel_shape=[1, 1]),
        n("Sigmoid", ["ex"], ["gate"], name="/se/gate/Sigmoid"),
        n("Mul", ["s3", "gate"], ["scaled"], name="/se/Mul"),
        n("GlobalAveragePool", ["scaled"], ["pooled"], name="/avgpool/GlobalAveragePool"),
        n("Shape", ["pooled"], ["shape"], name="/Shape"),
        n("Gather", ["shape", "zero"], ["batch"], name="/Gather", axis=0),
        n("Unsqueeze", ["batch", "axes0"], ["batch1"], name="/Unsqueeze"),
        n("Concat", ["batch1", "minus1"], ["target"], name="/Concat", axis=0),
        n("Reshape", ["pooled", "target"], ["flat"], name="/Reshape"),
        n("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(nodes, "torchish", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8)


def test_torch_style_patterns_are_read_as_layers(tmp_path):
    path = tmp_path / "torchish.onnx"
    onnx.save_model(torch_style_model(), str(path))
    imported = read_onnx(path)
    kinds = [next(iter(item)) for item in imported.doc["layers"]]
    assert kinds == ["conv", "batchnorm", "relu6", "conv", "hardswish", "swish", "globalavgpool", "conv", "sigmoid",
                     "multiply", "globalavgpool", "dense"]  # the pool before the computed flatten keeps no 1x1 axes
    names = [item["name"] for item in imported.doc["layers"]]
    assert names[:4] == ["conv1", "bn1", "act1", "conv2"]
    assert imported.doc["layers"][3]["conv"] == {"filters": 8, "kernel": 3, "padding": 1, "groups": "depthwise"}
    assert imported.origin["conv2"] == "/conv2/Conv"

    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    analysis = imported_analysis(imported, path)
    got = forward(analysis, imported.weights, x)[analysis.graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_matmul_add_is_a_dense_layer_and_flatten_after_global_pool_keeps_nothing(tmp_path):
    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [n("GlobalAveragePool", ["x"], ["g"], name="/pool/GlobalAveragePool"),
             n("Flatten", ["g"], ["f"], name="/flatten/Flatten"),
             n("MatMul", ["f", "w"], ["m"], name="/head/MatMul"), n("Add", ["m", "b"], ["y"], name="/head/Add")]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [_init(rng, "w", 4, 3), _init(rng, "b", 3)])
    path = tmp_path / "mm.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    imported = read_onnx(path)
    assert [next(iter(i)) for i in imported.doc["layers"]] == ["globalavgpool", "dense"]
    w = numpy_helper.to_array(graph.initializer[0])
    np.testing.assert_array_equal(imported.weights["head.weight"], w.T)


def _model_with(nodes, inits=(), name="m", out_shape=(1, 4, 5, 5)):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)],
                              list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)])


def test_every_unsupported_operator_is_reported_at_once(tmp_path):
    n = helper.make_node
    nodes = [n("Relu", ["x"], ["a"], name="relu"), n("Einsum", ["a"], ["b"], name="e1", equation="ij->ij"),
             n("Einsum", ["a"], ["c"], name="e2", equation="ij->ij"),
             n("Fancy", ["a"], ["d"], name="fancy1", domain="com.acme"), n("Erf", ["a"], ["e"], name="erf"),
             n("Sum", ["b", "c", "d", "e"], ["y"], name="sum")]
    path = tmp_path / "odd.onnx"
    onnx.save_model(_model_with(nodes), str(path))
    with pytest.raises(ImportProblem) as info:
        read_onnx(path)
    text = info.value.message
    assert "4 nodes cannot be imported (3 kinds)" in text
    assert "Einsum: 2 nodes ('e1', 'e2')" in text
    assert "custom operator com.acme.Fancy: 1 node ('fancy1')" in text
    assert "Erf: 1 node ('erf')" in text
    assert "and 1 node after them, not checked" in text  # the Sum of their outputs: nothing to judge it by
    assert "custom-domain" in info.value.fix and "catalogue" in info.value.fix


# -- broken and hostile files ------------------------------------------------------------------------------

def _relu_model():
    return _model_with([helper.make_node("Relu", ["x"], ["y"], name="relu")])


def _refused(path, *words):
    with pytest.raises(ImportProblem) as info:
        read_onnx(path)
    for word in words:
        assert word in info.value.message, info.value.message
    return info.value


def test_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "cut.onnx"
    onnx.save_model(torch_style_model(), str(path))
    path.write_bytes(path.read_bytes()[:777])
    _refused(path, "not a readable ONNX model")


def test_garbage_and_empty_files_are_refused(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 1000)
    _refused(tmp_path / "junk.onnx", "junk.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    _refused(tmp_path / "empty.onnx", "no ONNX graph")
    _refused(tmp_path / "missing.onnx", "no such file")


def test_external_data_outside_the_folder_is_refused(tmp_path):
    model = torch_style_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    (tmp_path / "secret").write_bytes(b"\0" * 4096)
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../secret"
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "outside.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(path, "conv1.weight", "not a file inside the model's folder")


def test_external_data_inside_the_folder_is_read(tmp_path):
    model = torch_style_model()
    want = numpy_helper.to_array(model.graph.initializer[0])
    tensor = model.graph.initializer[0]
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    (tmp_path / "ext.onnx.data").write_bytes(b"\0" * 16 + data)
    for key, value in (("location", "ext.onnx.data"), ("offset", "16"), ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    (tmp_path / "ext.onnx").write_bytes(model.SerializeToString())
    imported = read_onnx(tmp_path / "ext.onnx")
    np.testing.assert_array_equal(imported.weights["conv1.weight"], want)


def test_a_cycle_is_refused(tmp_path):
    n = helper.make_node
    nodes = [n("Add", ["x", "b"], ["a"], name="first"), n("Relu", ["a"], ["b"], name="second"),
             n("Relu", ["b"], ["y"], name="third")]
    path = tmp_path / "cycle.onnx"
    path.write_bytes(_model_with(nodes).SerializeToString())
    _refused(path, "cycle", "'first'", "'second'")


def test_a_tensor_nobody_makes_is_refused(tmp_path):
    path = tmp_path / "dangling.onnx"
    path.write_bytes(_model_with([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]).SerializeToString())
    _refused(path, "'ghost' (read by node 'add')")


def test_a_billion_element_initializer_is_refused_before_allocation(tmp_path):
    model = _relu_model()
    huge = model.graph.initializer.add()
    huge.name, huge.data_type = "huge", TensorProto.FLOAT
    huge.dims.extend([1000, 1000, 1000])
    path = tmp_path / "huge.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(path, "'huge' has 1,000,000,000 elements")


def test_an_initializer_shorter_than_its_dims_is_refused(tmp_path):
    model = _relu_model()
    short = model.graph.initializer.add()
    short.name, short.data_type, short.raw_data = "short", TensorProto.FLOAT, b"\0" * 8
    short.dims.extend([4, 4])
    path = tmp_path / "short.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(path, "'short'", "cannot be read")


def test_the_cli_imports_and_refuses(tmp_path):
    from click.testing import CliRunner

    from archcheck.cli import main

    path = tmp_path / "torchish.onnx"
    onnx.save_model(torch_style_model(), str(path))
    out, weights = tmp_path / "t.yaml", tmp_path / "t.npz"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(out), "--weights-out", str(weights)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Imported by archcheck from torchish.onnx, produced by pytorch")
    assert "  - conv: {filters: 8, padding: 1, groups: depthwise}  # conv2" in out.read_text()  # its source name
    run = CliRunner().invoke(main, ["run", str(out), "--weights", str(weights)])
    assert run.exit_code == 0, run.output
    direct = CliRunner().invoke(main, ["run", str(path)])
    # the same numbers (the written spec names its output by its type, the model by its node)
    assert direct.output.splitlines()[-1].split(":")[1] == run.output.splitlines()[-1].split(":")[1]

    (tmp_path / "cut.onnx").write_bytes(path.read_bytes()[:500])
    refused = CliRunner().invoke(main, ["import", str(tmp_path / "cut.onnx"), "-o", str(tmp_path / "cut.yaml")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert not (tmp_path / "cut.yaml").exists()
    summary = CliRunner().invoke(main, ["summary", str(tmp_path / "cut.onnx")])
    assert summary.exit_code == 2 and "not a readable ONNX model" in summary.output


# -- every layer type: the oracle's table of small networks, exported and read back --------------------------

def _layer_cases():
    import importlib.util
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    spec = importlib.util.spec_from_file_location("oracle_cases", Path(__file__).parent / "test_onnx_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LAYER_CASES


pytest.importorskip("onnxruntime", reason="the table of layer cases lives with the ONNX Runtime oracle")
LAYER_CASES = _layer_cases()
# what archcheck's exporter writes that is not read back yet (docs/onnx.md, "Not imported yet")
NOT_IMPORTED = {"locallyconnected-1d", "locallyconnected-2d", "locallyconnected-3d"}
IMPORTED_OTHERWISE = {"avgpool-2d-include-pad-ceil"}  # zeropad + avgpool: the same outputs, one layer more


@pytest.mark.parametrize("shape,layers", [c[1:] for c in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_every_layer_case_round_trips(request, tmp_path, shape, layers):
    import yaml

    case = request.node.callspec.id
    spec = tmp_path / "net.yaml"
    spec.write_text(yaml.safe_dump({"input": shape, "layers": layers}))
    source = analyze(spec)
    params = randomised(source, seed=3)
    path = tmp_path / "net.onnx"
    onnx.save_model(export_model(source, params), str(path))
    if case in NOT_IMPORTED:
        with pytest.raises(ImportProblem, match="cannot be imported"):
            read_onnx(path)
        return
    imported = read_onnx(path)
    result = imported_analysis(imported, path)
    if case not in IMPORTED_OTHERWISE:
        needed = source.graph.upstream(list(source.graph.outputs))
        ours = [source.layers[n.name] for n in source.graph.order if n.name in needed]
        theirs = [result.layers[n.name] for n in result.graph.order]
        assert [(f.shape, f.params, f.buffers, f.macs, f.rf) for f in ours] == \
            [(f.shape, f.params, f.buffers, f.macs, f.rf) for f in theirs]
    x = np.random.default_rng(0).standard_normal((2, *source.layers["input"].shape)).astype(np.float32) * 4
    for a, b in zip(source.graph.outputs, result.graph.outputs):
        want, got = forward(source, params, x)[a], forward(result, imported.weights, x)[b]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_random_byte_flips_never_escape_as_a_traceback(tmp_path):
    """A file damaged anywhere is refused with a message or read: never an exception that is not an
    ArchcheckError (a fixed sample of what a 3,000-file run found: non-UTF-8 names, short node inputs,
    attributes of the wrong type)."""
    from archcheck.errors import ArchcheckError

    data = torch_style_model().SerializeToString()
    rng = np.random.default_rng(0)
    path = tmp_path / "flipped.onnx"
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            damaged[rng.integers(len(damaged))] = rng.integers(256)
        path.write_bytes(bytes(damaged))
        try:
            with np.errstate(all="ignore"):
                imported_analysis(read_onnx(path), path)
        except ArchcheckError:
            pass


def test_an_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    from archcheck.importers import onnx as importer

    path = tmp_path / "big.onnx"
    onnx.save_model(torch_style_model(), str(path))
    monkeypatch.setattr(importer, "MAX_FILE_BYTES", 1000)
    _refused(path, "is over 1,000 bytes")


def test_findings_on_a_model_point_at_its_nodes(tmp_path):
    import json

    from click.testing import CliRunner

    from archcheck.cli import main

    source = analyze(ROOT / "samples" / "resnet18.yaml")
    path = tmp_path / "resnet18.onnx"
    onnx.save_model(export_model(source, init_params(source)), str(path))
    text = CliRunner().invoke(main, ["lint", str(path), "--no-config"]).output
    assert f"{path}: node 'basic_7.add_1.1.conv_1:Conv': AC202 uneven-stride-coverage" in text
    sarif = json.loads(CliRunner().invoke(main, ["lint", str(path), "--no-config", "-f", "sarif"]).output)
    location = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "AC202")["locations"][0]
    assert "region" not in location["physicalLocation"]
    assert location["logicalLocations"][0]["name"].endswith(":Conv")
    found = json.loads(CliRunner().invoke(main, ["lint", str(path), "--no-config", "-f", "json"]).output)
    assert found["findings"][0]["line"] is None and found["findings"][0]["node"]


def test_import_never_overwrites_the_model(tmp_path):
    from click.testing import CliRunner

    from archcheck.cli import main

    path = tmp_path / "m.onnx"
    onnx.save_model(torch_style_model(), str(path))
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(path)])
    assert result.exit_code == 2 and path.read_bytes() == before


def test_torch_style_gelu_permuted_layernorm_chunk_and_mean(tmp_path):
    """torch.onnx's GELU (opset < 20), ConvNeXt's permute -> LayerNorm -> permute, ``x.chunk(2, 1)`` as Split and
    ``x.mean((2, 3))`` as ReduceMean."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    f32 = lambda name, value: numpy_helper.from_array(np.asarray(value, np.float32), name)  # noqa: E731
    inits = [_init(rng, "norm.weight", 4), _init(rng, "norm.bias", 4), f32("sqrt2", 1.4142135), f32("one", 1.0),
             f32("half", 0.5), _int("halves", [2, 2]), _int("mean_axes", [2, 3])]
    nodes = [
        n("Transpose", ["x"], ["t1"], name="/block/Transpose", perm=[0, 2, 3, 1]),
        n("LayerNormalization", ["t1", "norm.weight", "norm.bias"], ["ln"], name="/block/norm/LayerNormalization",
          axis=-1, epsilon=1e-6),
        n("Transpose", ["ln"], ["t2"], name="/block/Transpose_1", perm=[0, 3, 1, 2]),
        n("Div", ["t2", "sqrt2"], ["d"], name="/block/act/Div"), n("Erf", ["d"], ["e"], name="/block/act/Erf"),
        n("Add", ["e", "one"], ["a"], name="/block/act/Add"), n("Mul", ["t2", "a"], ["m"], name="/block/act/Mul"),
        n("Mul", ["m", "half"], ["g"], name="/block/act/Mul_1"),
        n("Split", ["g", "halves"], ["s1", "s2"], name="/Split", axis=1),
        n("Mul", ["s1", "s2"], ["p"], name="/Mul"),
        n("ReduceMean", ["p"], ["y"], name="/ReduceMean", axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "convnextish", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                   [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits[:-1])
    path = tmp_path / "convnextish.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    imported = read_onnx(path)
    assert [next(iter(i)) for i in imported.doc["layers"]] == ["layernorm", "gelu", "slice", "slice", "multiply",
                                                               "globalavgpool"]
    assert imported.doc["layers"][0]["layernorm"] == {"eps": 1e-6}
    ort = pytest.importorskip("onnxruntime")
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    analysis = imported_analysis(imported, path)
    got = forward(analysis, imported.weights, x)[analysis.graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_a_concat_of_one_tensor_is_that_tensor(tmp_path):
    """torch.cat([x]) (DenseNet's first layer of each block) exports a Concat with one input."""
    path = tmp_path / "cat1.onnx"
    onnx.save_model(_model_with([helper.make_node("Concat", ["x"], ["c"], name="cat", axis=1),
                                 helper.make_node("Relu", ["c"], ["y"], name="relu")]), str(path))
    imported = read_onnx(path)
    assert [next(iter(item)) if isinstance(item, dict) else item for item in imported.doc["layers"]] == \
        ["identity", "relu"]


def test_export_of_a_model_file_keeps_its_weights(tmp_path):
    """`archcheck export model.onnx` writes the model's own weights, not initial ones."""
    import onnxruntime as ort
    from click.testing import CliRunner

    from archcheck.cli import main

    path, out = tmp_path / "m.onnx", tmp_path / "again.onnx"
    onnx.save_model(torch_style_model(), str(path))
    result = CliRunner().invoke(main, ["export", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    before = ort.InferenceSession(str(path)).run(None, {ort.InferenceSession(str(path)).get_inputs()[0].name: x})[0]
    after = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5 * np.abs(before).max())


def test_a_channels_last_block_is_read_as_channels_first_layers(tmp_path):
    """torch's ConvNeXt block: Transpose to channels-last -> LayerNorm -> Linear (MatMul, then Add with the bias
    first) -> GELU in torch's order -> Linear -> Transpose back -> layer scale written first -> residual add."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    c = helper.make_tensor
    nodes = [
        n("Transpose", ["x"], ["t"], name="/block/permute/Transpose", perm=[0, 2, 3, 1]),
        n("LayerNormalization", ["t", "g", "beta"], ["ln"], name="/block/norm/LayerNormalization", axis=-1,
          epsilon=1e-6),
        n("MatMul", ["ln", "w1"], ["m1"], name="/block/fc1/MatMul"),
        n("Add", ["b1", "m1"], ["a1"], name="/block/fc1/Add"),
        n("Constant", [], ["sqrt2"], value=c("s", TensorProto.FLOAT, [], [2 ** 0.5])),
        n("Div", ["a1", "sqrt2"], ["d"], name="/block/act/Div"), n("Erf", ["d"], ["e"], name="/block/act/Erf"),
        n("Constant", [], ["one"], value=c("o", TensorProto.FLOAT, [], [1.0])),
        n("Add", ["e", "one"], ["e1"], name="/block/act/Add"), n("Mul", ["a1", "e1"], ["p"], name="/block/act/Mul"),
        n("Constant", [], ["half"], value=c("h", TensorProto.FLOAT, [], [0.5])),
        n("Mul", ["p", "half"], ["gl"], name="/block/act/Mul_1"),
        n("MatMul", ["gl", "w2"], ["m2"], name="/block/fc2/MatMul"),
        n("Add", ["b2", "m2"], ["a2"], name="/block/fc2/Add"),
        n("Transpose", ["a2"], ["back"], name="/block/permute_back/Transpose", perm=[0, 3, 1, 2]),
        n("Mul", ["scale", "back"], ["s"], name="/block/Mul"), n("Add", ["s", "x"], ["y"], name="/block/Add")]
    inits = [_init(rng, "g", 4), _init(rng, "beta", 4), _init(rng, "w1", 4, 16), _init(rng, "b1", 16),
             _init(rng, "w2", 16, 4), _init(rng, "b2", 4), _init(rng, "scale", 4, 1, 1)]
    path = tmp_path / "cnx.onnx"
    onnx.save_model(_model_with(nodes, inits), str(path))
    imported = read_onnx(path)
    assert [next(iter(i)) for i in imported.doc["layers"]] == ["layernorm", "conv", "gelu", "conv", "layerscale", "add"]
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(1).standard_normal((1, 4, 5, 5)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    analysis = imported_analysis(imported, path)
    got = forward(analysis, imported.weights, x)[analysis.graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
