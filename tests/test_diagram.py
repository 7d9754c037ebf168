"""The diagram: which boxes each view shows (every layer somewhere, folded blocks carrying their totals),
the Mermaid and DOT text, and the SVG drawn from Graphviz's layout."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.pipeline import analyze
from archcheck.render import diagram as dg

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_lint import big_spec  # noqa: E402


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "generated.yaml"
    path.write_text(big_spec())
    return analyze(path)


def _layers_drawn(t: dg.Tree, views: list[dg.View]) -> list[str]:
    return [box for v in views for box in v.boxes if box not in t.blocks]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_is_drawn_whole_in_its_most_detailed_view(path):
    a = analyze(path)
    t = dg.tree(a)
    views = dg.views(t)
    root = [v for v in views if not v.scope]
    assert root[-1].deepest and sorted(root[-1].boxes) == sorted(a.layers)  # one box per layer
    assert len(views) == len(root)  # nothing left to open elsewhere
    assert [v.depth for v in root] == list(range(len(root)))


def test_blocks_nest_by_name_and_merge_branches_are_not_blocks():
    t = dg.tree(analyze(ROOT / "samples" / "resnet50.yaml"))
    assert t.blocks["stage_1"].parent == ""
    assert t.blocks["stage_1.bottleneck_1"].parent == "stage_1"
    assert "stage_1.bottleneck_1.add_1.0" not in t.blocks  # a merge's numbered branch
    assert t.owner["stage_1.bottleneck_1.add_1.0.conv_1"] == "stage_1.bottleneck_1"
    assert t.path("stage_1.bottleneck_1.relu_1") == ["", "stage_1", "stage_1.bottleneck_1",
                                                      "stage_1.bottleneck_1.relu_1"]


def test_folded_view_shows_blocks_with_their_totals():
    a = analyze(ROOT / "samples" / "resnet50.yaml")
    t = dg.tree(a)
    top = dg.view(t, "", 0)
    assert top.boxes == ["input", "conv_1", "batchnorm_1", "relu_1", "maxpool_1", "stage_1", "stage_2", "stage_3",
                         "stage_4", "globalavgpool_1", "dense_1", "softmax_1"]
    stage = dg.facts(t, "stage_1")
    assert stage.kind == "block" and stage.layers == len(t.blocks["stage_1"].layers) == 32
    assert stage.shape == "(256, 56, 56)"
    params = sum(a.layers[n].params for n in t.blocks["stage_1"].layers)
    assert params == a.groups["stage_1"].params == 215_808  # torchvision's layer1, batchnorm buffers aside
    assert stage.figures["params"].startswith("215.81K")
    links = [(e.src, e.dst) for e in dg.edges(t, top)]
    assert ("maxpool_1", "stage_1") in links and ("stage_1", "stage_2") in links and len(links) == len(set(links))


def test_a_10000_layer_chain_is_cut_into_runs(big):
    t = dg.tree(big)
    views = dg.views(t)
    top = views[0]
    assert not top.scope and len(top.boxes) == 26 and all(len(v.boxes) <= dg.BUDGET for v in views)
    assert t.blocks["#1"].label == "layers 1\u2013400" and len(t.blocks["#1"].layers) == 400
    drawn = _layers_drawn(t, views)
    assert sorted(drawn) == sorted(big.layers)  # every layer once, in the view of its run
    run = next(v for v in views if v.scope == "#2")
    links = dg.edges(t, run)
    assert links[0].src == "<" + t.blocks["#1"].layers[-1]  # the tensor coming in from the run before
    assert links[-1].dst.startswith(">")


def test_mermaid_stays_within_githubs_limits(big):
    a = analyze(ROOT / "samples" / "resnet50.yaml")
    text = dg.mermaid(a)
    lines = text.splitlines()
    assert lines[1] == "flowchart TD"
    assert sum(1 for x in lines if re.match(r"\s+n\d+\[", x)) == 176  # one node per layer
    assert sum(1 for x in lines if x.strip().startswith("subgraph")) == 20
    assert sum(1 for x in lines if "-->" in x) == sum(len(f.node.inputs) for f in a.layers.values()) == 191
    assert '["stage_1"]' in text and 'n1["conv_1<br/>conv · (64, 112, 112)"]' in text
    folded = dg.mermaid(big)
    assert "26 blocks folded to stay within GitHub's limits" in folded.splitlines()[0]
    assert len(folded) <= dg.MERMAID_TEXT and folded.count("-->") <= dg.MERMAID_EDGES
    assert 'n0[["layers 1–400<br/>block, 400 layers · (32, 16, 16)"]]' in folded


def test_mermaid_escapes_what_would_end_a_label():
    assert dg._mermaid_text('a"b<c>#') == "a#34;b#60;c#62;#35;"


def test_dot_is_graphviz_text_with_a_node_per_layer():
    pgv = pytest.importorskip("pygraphviz")
    a = analyze(ROOT / "samples" / "googlenet.yaml")
    g = pgv.AGraph(string=dg.dot(a))
    assert g.number_of_nodes() == len(a.layers)
    assert g.number_of_edges() == sum(len(f.node.inputs) for f in a.layers.values())
    labels = {g.get_node(n).attr["tooltip"] for n in g.nodes()}
    assert labels == set(a.layers)


def test_svg_draws_one_box_per_layer_and_the_layout_keeps_order():
    pytest.importorskip("pygraphviz")
    from archcheck.render import drawing

    a = analyze(ROOT / "samples" / "unet.yaml")
    t = dg.tree(a)
    v = dg.views(t)[-1]
    placed = drawing.place(t, v)
    assert set(placed.boxes) == set(a.layers)
    y = {k: r[1] for k, r in placed.boxes.items()}
    for name, f in a.layers.items():  # top to bottom: every layer below its inputs
        assert all(y[src] < y[name] for src in f.node.inputs)
    for key in v.unfolded:  # each open block's frame holds its layers
        cx, cy, cw, ch = placed.clusters[key]
        for name in t.blocks[key].layers:
            x, yy, w, h = placed.boxes[name]
            assert cx <= x and x + w <= cx + cw and cy <= yy and yy + h <= cy + ch
    text = drawing.svg(t, placed)
    assert text.count('class="node layer') == len(a.layers)
    assert text.count('class="edge"') == len(dg.edges(t, v))


@pytest.mark.parametrize("fmt, start", [("mermaid", "%% lenet5"), ("dot", 'digraph "lenet5"'), ("svg", "<svg")])
def test_summary_draws(fmt, start):
    if fmt == "svg":
        pytest.importorskip("pygraphviz")
    result = CliRunner().invoke(main, ["summary", str(ROOT / "samples" / "lenet5.yaml"), "--format", fmt])
    assert result.exit_code == 0 and result.stdout.startswith(start)


def test_svg_without_graphviz_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    result = CliRunner().invoke(main, ["summary", str(ROOT / "samples" / "lenet5.yaml"), "--format", "svg"])
    assert result.exit_code == 2
    assert "drawing the diagram needs Graphviz's Python binding, which is not installed" in result.stderr
    assert "pip install 'archcheck[report]'" in result.stderr


def test_report_section_marks_the_boxes_of_the_layers_with_findings():
    pytest.importorskip("pygraphviz")
    from archcheck.config import load_config
    from archcheck.lint.load import load_rules
    from archcheck.lint.plan import make_plan
    from archcheck.lint.run import lint_file
    from archcheck.render import drawing

    path = ROOT / "samples" / "resnet50.yaml"
    findings = lint_file(str(path), make_plan(load_config(None), load_rules())).findings
    expected = {}
    for f in findings:
        expected.setdefault(f.layer, []).append(f.code)
    assert "stage_2.bottleneck_1.add_1.1.conv_1" in expected  # the 1x1 stride-2 projection (AC201, AC202)
    html = drawing.html_section(analyze(path), findings)
    views = re.findall(r'<template class="dg-view" data-i="(\d+)">(.*?)</template>', html, re.S)
    deepest = views[-1][1]  # the most detailed view of the whole network
    marked = dict(re.findall(r'<g class="node layer[^"]*has-findings[^"]*" data-layer="([^"]+)" data-type="[^"]+" '
                             r'data-findings="([^"]+)"', deepest))
    assert {k: v.split() for k, v in marked.items()} == expected
    tip = re.search(r'data-layer="stage_2.bottleneck_1.add_1.1.conv_1".*?<title>(.*?)</title>', deepest, re.S).group(1)
    assert "AC202 uneven-stride-coverage (warning, line 18): slides a 1x1 window with stride 2" in tip
    folded = views[0][1]  # stages folded: a stage carries the findings of the layers inside it
    stage = re.search(r'<g class="node block has-findings warning" data-block="stage_2" data-findings="([^"]+)"',
                      folded)
    assert sorted(stage.group(1).split()) == ["AC201", "AC201", "AC202"]
