"""The spec writer: every sample, flattened as an importer would list it, is written back with blocks and
read again; the network it expands to is the sample's, layer for layer, and runs to the same outputs
with the same (renamed) weights."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from torchvision_flat import inception_v3, resnet50

from archcheck.executor import forward, init_params
from archcheck.graph import build_graph
from archcheck.importers.flat import flatten
from archcheck.importers.write import compact, write_flat
from archcheck.propagate import propagate
from archcheck.spec import expand, load_spec
from archcheck.yamlsrc import load_text

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.yaml"))
# small enough for NumPy in a test, and covering residuals, inverted residuals, gates, Inception
# branches, channel splits and a U-Net's nested skips
RUN = {"lenet5", "resnet18", "mobilenetv2", "googlenet", "shufflenet_v2_x1_0", "mobilenet_v3_large",
       "efficientnet_b0", "regnet_y_400mf", "timeseries1d", "video3d"}


def _round_trip(path: Path):
    spec = load_spec(path)
    flat_names: dict[str, str] = {}
    doc = flatten(spec, flat_names)
    names: dict[str, str] = {}
    text = compact(doc, [f"flattened from {path.name}"], names)
    again = expand(load_text(text, "compact.yaml"), "compact.yaml")
    rename = {old: names[flat] for old, flat in flat_names.items() if old != "input"}
    return spec, again, rename, text, doc


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_the_written_spec_is_the_flat_network(path):
    spec, again, rename, text, _ = _round_trip(path)
    a, b = propagate(build_graph(spec)), propagate(build_graph(again))
    assert sorted(rename.values()) == sorted(n for n in b.layers if n != "input")
    for old, new in rename.items():
        fa, fb = a.layers[old], b.layers[new]
        assert fa.node.type == fb.node.type and fa.node.layer == fb.node.layer, old
        assert [rename.get(i, i) for i in fa.node.inputs] == fb.node.inputs, old
        assert (fa.shape, fa.params, fa.buffers, fa.macs, fa.flops, fa.rf) == \
               (fb.shape, fb.params, fb.buffers, fb.macs, fb.flops, fb.rf), old
    assert [rename[o] for o in spec.outputs] == again.outputs
    ta, tb = dataclasses.asdict(a.totals), dataclasses.asdict(b.totals)
    for key in ("peak_at", "receptive_field"):  # they name a layer: compare through the renaming
        ta.pop(key), tb.pop(key)
    assert ta == tb
    if a.totals.receptive_field is not None:
        assert rename[a.totals.receptive_field[0]] == b.totals.receptive_field[0]
        assert a.totals.receptive_field[1] == b.totals.receptive_field[1]
    assert (spec.name, spec.input, spec.classes, spec.output, spec.metadata) == \
           (again.name, again.input, again.classes, again.output, again.metadata)


@pytest.mark.parametrize("path", [p for p in SAMPLES if p.stem in RUN], ids=lambda p: p.stem)
def test_renamed_weights_give_the_same_outputs(path):
    spec, again, rename, _, _ = _round_trip(path)
    a, b = propagate(build_graph(spec)), propagate(build_graph(again))
    params = init_params(a, seed=1)
    moved = {}
    for key, array in params.items():
        node, suffix = key.rsplit(".", 1)
        moved[f"{rename[node]}.{suffix}"] = array
    x = np.random.default_rng(2).standard_normal((1, *spec.input)).astype("float32")
    out_a, out_b = forward(a, params, x), forward(b, moved, x)
    assert [rename[k] for k in out_a] == list(out_b)
    for k, v in out_a.items():
        np.testing.assert_array_equal(v, out_b[rename[k]])


def _same_network(doc: dict, names: dict[str, str], text: str) -> None:
    """The flat document, written out as it is, and the compact text analyse to the same figures per layer."""
    flat = propagate(build_graph(expand(load_text(write_flat(doc)), "flat.yaml")))
    short = propagate(build_graph(expand(load_text(text), "compact.yaml")))
    assert sorted(names.values()) == sorted(n for n in short.layers if n != "input")
    for name, facts in flat.layers.items():
        other = short.layers[names.get(name, name)]
        assert (facts.node.layer, facts.shape, facts.params, facts.macs, facts.rf) == \
               (other.node.layer, other.shape, other.params, other.macs, other.rf), name
        assert [names.get(i, i) for i in facts.node.inputs] == other.node.inputs, name
    assert (flat.totals.params, flat.totals.macs) == (short.totals.params, short.totals.macs)


@pytest.mark.parametrize("make", [resnet50, inception_v3])
def test_torchvision_models_as_an_importer_lists_them(make):
    doc = make()
    names: dict[str, str] = {}
    text = compact(doc, [f"torchvision.models.{doc['name']}"], names)
    _same_network(doc, names, text)
    assert len(text.splitlines()) < {"resnet50": 45, "inception_v3": 90}[doc["name"]]
    # the source's names name the instances
    assert "# layer1" in text if doc["name"] == "resnet50" else "# Mixed_5b" in text


def test_resnet50_reads_like_the_hand_written_sample():
    _, _, _, text, doc = _round_trip(SAMPLES[0].parent / "resnet50.yaml")
    assert len(text.splitlines()) <= 48  # the hand-written file has 40; the flat list has 175 layers
    assert len(write_flat(doc).splitlines()) > 300
    assert "repeat:" in text and "- []" in text and "${filters * 4}" in text


def test_names_the_source_gives_are_kept_where_layers_are_referenced():
    doc = {"name": "skip", "input": [3, 32, 32], "layers": [
        {"conv": {"filters": 8, "padding": 1}, "name": "stem"},
        {"relu": {}, "name": "act"},
        {"conv": {"filters": 8, "padding": 1}, "name": "mid"},
        {"maxpool": 2, "name": "down"},
        {"upsample": {}, "name": "up"},
        {"concat": {}, "name": "join", "inputs": ["up", "act"]},
        {"conv": {"filters": 4, "kernel": 1}, "name": "head"},
        {"globalavgpool": {}, "name": "pool", "inputs": ["mid"]},
    ], "outputs": ["head", "pool"]}
    names: dict[str, str] = {}
    text = compact(doc, ["from a test"], names)
    spec = expand(load_text(text), "t.yaml")
    assert text.startswith("# from a test\n")
    assert set(names) == {e["name"] for e in doc["layers"]}
    assert [names["head"], names["pool"]] == spec.outputs
    assert "name: mid" in text and "name: act" in text


def test_bad_flat_documents_are_refused_with_the_layer_named():
    with pytest.raises(ValueError, match="'b' reads \\['c'\\]"):
        compact({"input": [3, 8, 8], "layers": [{"relu": {}, "name": "a"}, {"relu": {}, "name": "b", "inputs": ["c"]},
                                                {"relu": {}, "name": "c"}]})
    with pytest.raises(ValueError, match="unknown type 'frobnicate'"):
        compact({"input": [3, 8, 8], "layers": ["frobnicate"]})


def _chain(blocks: int) -> dict:
    """A plain residual network of ``blocks`` blocks of five layers, with torch-like names."""
    layers = [{"conv": {"filters": 16, "padding": 1}, "name": "stem"}]
    prev = "stem"
    for i in range(blocks):
        p = f"blocks_{i}"
        width = 16 * 2 ** (i * 4 // blocks)
        layers += [{"conv": {"filters": width, "padding": 1, "bias": False}, "name": f"{p}_conv1"},
                   {"batchnorm": {}, "name": f"{p}_bn1"}, {"relu": {}, "name": f"{p}_relu"},
                   {"conv": {"filters": width, "padding": 1, "bias": False}, "name": f"{p}_conv2"},
                   {"add": {}, "name": f"{p}_add", "inputs": [f"{p}_conv2", prev]}]
        if width != 16 * 2 ** ((i - 1) * 4 // blocks) and i:
            layers[-5]["inputs"] = [prev]
            layers[-1]["inputs"] = [f"{p}_conv2", f"{p}_proj"]
            layers.insert(-1, {"conv": {"filters": width, "kernel": 1}, "name": f"{p}_proj", "inputs": [prev]})
        prev = f"{p}_add"
    return {"name": "deep", "input": [3, 16, 16], "layers": layers}


def test_two_thousand_layers_take_seconds_not_minutes():
    doc = _chain(400)
    assert len(doc["layers"]) > 2000
    start = time.perf_counter()
    names: dict[str, str] = {}
    text = compact(doc, names_out=names)
    assert time.perf_counter() - start < 20  # 0.2 s here
    assert len(text.splitlines()) < 40
    _same_network(doc, names, text)


def test_what_is_not_a_set_of_branches_is_written_with_names():
    """DenseNet's connections (each layer reads every earlier one) and a layer nothing reads."""
    layers, seen = [{"conv": {"filters": 8, "padding": 1}, "name": "stem"}], ["stem"]
    for i in range(4):
        if i:
            layers.append({"concat": {}, "name": f"cat{i}", "inputs": list(seen)})
        layers += [{"batchnorm": {}, "name": f"bn{i}"}, {"relu": {}, "name": f"relu{i}"},
                   {"conv": {"filters": 4, "padding": 1}, "name": f"conv{i}"}]
        seen.append(f"conv{i}")
    layers.append({"sigmoid": {}, "name": "unused", "inputs": ["bn0"]})
    doc = {"name": "dense", "input": [3, 16, 16], "layers": layers, "outputs": ["conv3"]}
    names: dict[str, str] = {}
    text = compact(doc, names_out=names)
    _same_network(doc, names, text)
    assert "name: stem" in text and "inputs: [stem, conv0]" in text and "inputs: [bn0]" in text


def test_source_names_are_made_valid_where_they_are_written():
    """ONNX names have slashes and dots; a name like `conv_2` could meet a layer archcheck names itself."""
    doc = {"name": "onnx", "input": [3, 8, 8], "layers": [
        {"conv": {"filters": 4, "padding": 1}, "name": "/stem/Conv.0"},
        {"conv": {"filters": 4, "padding": 1}, "name": "conv_2"},
        {"conv": {"filters": 4, "padding": 1}, "name": "conv_1"},
        {"add": {}, "name": "/add", "inputs": ["conv_1", "/stem/Conv.0"]},
        {"add": {}, "name": "sum", "inputs": ["/add", "conv_2"]},
    ]}
    names: dict[str, str] = {}
    text = compact(doc, ["line one\nline two"], names)
    assert text.startswith("# line one\n# line two\n")
    assert "name: stem_Conv_0" in text and "name: conv_2_x" in text
    spec = expand(load_text(text), "t.yaml")
    assert sorted(names.values()) == sorted(n.name for n in spec.nodes[1:])
