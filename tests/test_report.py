"""`archcheck report`: the page's sections and figures against the analysis and lint, the executor section,
the atomic write, and the message for every bad input (text checked, exit 2, no traceback). The page in a real
browser: tests/test_report_browser.py."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from html_page import remote

from archcheck.cli import main
from archcheck.executor import init_params
from archcheck.pipeline import analyze
from archcheck.propagate import alive_at, live_memory
from archcheck.render.fmt import human_bytes
from archcheck.render.summary import totals_lines

pytest.importorskip("bokeh", reason="the report extra: pip install 'archcheck[report]'")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
LENET = SAMPLES / "lenet5.yaml"
IMAGES = SAMPLES / "images"


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def report(tmp_path, spec, *args, name="report.html"):
    out = tmp_path / name
    result = cli("report", spec, "-o", out, *args)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8"), result


def bad(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    return result.output


def column(html: str, name: str, source: str = "layers") -> np.ndarray:
    """A float column of the page's Bokeh data source ``source`` (an ndarray, base64 of gzip, as Bokeh embeds it)."""
    at = html.index(f'"attributes":{{"name":"{source}"')
    found = re.search(r'\["' + name + r'",(\{"type":"ndarray".*?"order":"little"\})\]', html[at:])
    assert found, f"no column {name}"
    spec = json.loads(found.group(1))
    data = base64.b64decode(spec["array"]["data"])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return np.frombuffer(data, spec["dtype"])


# -- the page --------------------------------------------------------------------------------------
def test_the_page_has_every_section_and_requests_nothing(tmp_path):
    html, result = report(tmp_path, LENET)
    assert result.output.startswith(f"wrote {tmp_path / 'report.html'} (")
    assert result.output.rstrip().endswith("lenet5, 13 layers, 3 findings")
    for section in ("totals", "findings", "cost", "memory", "field"):
        assert f'<section id="{section}">' in html
    assert '<section id="diagram" class="dg-section">' in html
    assert '<section id="executor">' not in html  # no --weights, no --data
    assert remote(html) == []
    assert "cdn.bokeh.org" not in html and "<script src=" not in html
    assert "<title>lenet5: archcheck report</title>" in html


def test_the_remote_check_sees_what_a_page_would_fetch():
    page = ('<script src="https://cdn.bokeh.org/bokeh.min.js"></script><a href="#totals">t</a>'
            '<img src="data:image/png;base64,AAAA"><link href="//fonts.example/x.css" rel="stylesheet">'
            "<style>body{background:url('https://example.org/a.png')}</style><svg><image href=\"x.png\"/></svg>")
    assert remote(page) == ["https://cdn.bokeh.org/bokeh.min.js", "//fonts.example/x.css", "x.png", "url('https://"]


def test_totals_and_conventions_are_the_summarys(tmp_path):
    html, _ = report(tmp_path, SAMPLES / "resnet18.yaml", "--batch", "4", "--dtype", "float16")
    analysis = analyze(SAMPLES / "resnet18.yaml", 4, "float16")
    import html as htmllib

    for key, value in totals_lines(analysis):
        assert f"<tr><th>{htmllib.escape(key)}</th><td>{htmllib.escape(value)}</td></tr>" in html
    assert "MACs: multiply-accumulates of conv" in html
    assert "<tr><th>training memory (adam)</th>" in html and "<tr><th>settings</th><td>batch 4, float16</td>" in html


def test_the_timeline_is_the_propagators_and_its_peak_the_summarys(tmp_path):
    spec = SAMPLES / "resnet50.yaml"
    html, _ = report(tmp_path, spec)
    analysis = analyze(spec)
    t = analysis.totals
    live = column(html, "live")
    steps = live_memory(analysis.graph, analysis.layers)
    assert len(live) == len(analysis.graph.order)
    assert np.allclose(live * 2**20, [b for _, b in steps])
    assert round(live.max() * 2**20) == t.peak_activation_bytes
    assert steps[int(live.argmax())][0] == t.peak_at
    # the tensors named at the peak hold the peak
    alive = alive_at(analysis.graph, t.peak_at, analysis.layers)
    assert sum(analysis.layers[n].out_bytes for n in alive) == t.peak_activation_bytes
    assert f"is held by {len(alive)} tensors" in html
    for name in alive:
        assert f"<code>{name}</code>" in html
    assert f"peak {human_bytes(t.peak_activation_bytes)}" in html


def test_alive_at_matches_the_lifetimes_of_a_skip_connection(tmp_path):
    path = tmp_path / "skip.yaml"
    path.write_text("input: [1, 4, 4]\nlayers:\n  - relu:\n    name: a\n  - relu:\n    name: b\n  - add: [a, b]\n")
    analysis = analyze(path)
    # the caller holds the input; b cannot write over a, which the add still reads; the add writes over a
    assert live_memory(analysis.graph, analysis.layers) == [("input", 64), ("a", 128), ("b", 192), ("add_1", 192)]
    assert alive_at(analysis.graph, "a", analysis.layers) == ["input", "a"]
    assert alive_at(analysis.graph, "b", analysis.layers) == ["input", "a", "b"]
    assert alive_at(analysis.graph, "add_1", analysis.layers) == ["input", "b", "add_1"]


def test_cost_bars_per_layer_and_per_block(tmp_path):
    spec = SAMPLES / "resnet50.yaml"
    html, _ = report(tmp_path, spec)
    analysis = analyze(spec)
    order = analysis.graph.order
    assert column(html, "params").tolist() == [analysis.layers[n.name].params for n in order]
    assert column(html, "macs").tolist() == [analysis.layers[n.name].macs for n in order]
    # the per-block source: every block instance's subtotals, layers outside blocks on their own; the sum is the total
    per_block = column(html, "params", "blocks")
    assert per_block.sum() == analysis.totals.trainable
    assert len(per_block) == len(analysis.groups) + sum(1 for n in order[1:] if n.group is None)
    assert per_block.max() == max(g.params for g in analysis.groups.values())
    assert column(html, "macs", "blocks").sum() == analysis.totals.macs
    assert '"title":"per block"' in html and '"title":"per layer"' in html


def test_receptive_field_growth(tmp_path):
    spec = SAMPLES / "vgg16.yaml"
    html, _ = report(tmp_path, spec)
    analysis = analyze(spec)
    r = column(html, "r0")
    expected = [np.nan if f.rf.is_global else float(f.rf.axes[0].r) for f in
                (analysis.layers[n.name] for n in analysis.graph.order)]
    assert np.allclose(r, expected, equal_nan=True)
    facts = [analysis.layers[n.name] for n in analysis.graph.order]
    first = next(i for i, f in enumerate(facts) if f.rf.is_global or all(a.r >= 224 for a in f.rf.axes))
    assert not any(x >= 224 for x in r[:first] if not np.isnan(x))  # VGG-16's maps never reach 224: pooling does
    assert (f"reaches the input's size (224×224) at <code>{analysis.graph.order[first].name}</code>, layer {first} of "
            f"{len(analysis.graph.order) - 1}") in html
    assert "is r / S / P = 212 / 32 / 90" in html  # the README's figure for VGG-16's last feature map


def test_a_vector_input_has_no_field_plot(tmp_path):
    path = tmp_path / "mlp.yaml"
    path.write_text("name: mlp\ninput: [20]\nlayers:\n  - dense: 10\n  - relu\n  - dense: 2\n")
    html, _ = report(tmp_path, path)
    assert "The input has no spatial axes, so there is no receptive field." in html


def test_findings_are_lints_with_its_configuration_and_suppressions(tmp_path):
    (tmp_path / "archcheck.toml").write_text('ignore = ["AC210"]\n')
    text = (SAMPLES / "bad_sigmoid.yaml").read_text()
    spec = tmp_path / "net.yaml"
    spec.write_text(text)
    linted = json.loads(cli("lint", spec, "--format", "json").stdout)
    html, _ = report(tmp_path, spec)
    findings = linted["findings"]
    assert findings, "the sample has findings"
    rows = re.findall(r"<tr><td><code>(AC\d+)</code><br>.*?</td><td>.*?</td><td>(?:<code>(.*?)</code>)?</td>"
                      r"<td>(\d+):(\d+)(?:<br><span class=\"via\">block used at (.*?)</span>)?</td>", html)
    assert [(c, layer, int(line), int(col), via) for c, layer, line, col, via in rows] == [
        (f["code"], f["layer"] or "", f["line"], f["column"], ", ".join(f"{u['line']}:{u['column']}" for u in
                                                                        f.get("via", []))) for f in findings]
    assert any(f.get("via") for f in findings)  # the sample's findings inside blocks name their use sites
    assert "AC210" not in html.split('<section id="findings">')[1].split("</section>")[0]
    # --no-config: the ignored rule is back, as with lint
    html, _ = report(tmp_path, spec, "--no-config", name="all.html")
    assert len(re.findall(r"<tr><td><code>AC\d+", html)) == len(
        json.loads(cli("lint", spec, "--no-config", "--format", "json").stdout)["findings"])


def test_a_suppression_is_counted(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 4, padding: 1}  "
                    "# archcheck: ignore[even-kernel]\n  - relu\n  - conv: {filters: 8, kernel: 4, padding: 1}\n")
    linted = json.loads(cli("lint", spec, "--no-config", "--format", "json").stdout)
    assert linted["summary"]["suppressed"] == 1
    html, _ = report(tmp_path, spec, "--no-config")
    assert f"{text(linted['summary']['findings'])} ({linted['summary']['suppressed']} suppressed), as " in html
    assert [f["layer"] for f in linted["findings"] if f["code"] == "AC204"] == ["conv_2"]
    table = html.split('<section id="findings">')[1].split("</section>")[0]
    assert "<code>conv_2</code>" in table and "<code>conv_1</code>" not in table


def text(n: int) -> str:
    return f"{n} info" if n == 1 else f"{n} infos"


def test_spec_text_is_escaped(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text('name: "<script>alert(1)</script>"\ndescription: "<img src=x onerror=alert(1)>"\n'
                    "input: [1, 8, 8]\nlayers:\n  - conv: 4\n  - relu\n")
    html, _ = report(tmp_path, spec)
    data = re.compile(r'<script type="application/json"[^>]*>(.*?)</script>', re.S)
    assert all("</" not in d.replace("<\\/", "") for d in data.findall(html))  # data no text can close
    markup = data.sub("", html)
    assert "<script>alert(1)" not in markup and "<img src=x" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert remote(html) == []


def test_a_model_file_reports_too(tmp_path):
    pytest.importorskip("onnx")
    onnx_path = tmp_path / "lenet.onnx"
    assert cli("export", LENET, "-o", onnx_path).exit_code == 0
    html, _ = report(tmp_path, onnx_path)
    assert '<section id="cost">' in html


# -- the executor section ----------------------------------------------------------------------------
def test_the_executor_section_with_images(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    html, _ = report(tmp_path, LENET, "--data", IMAGES)
    section = html.split('<section id="executor">')[1]
    assert (f"Samples: {IMAGES} (5 samples). Weights: the spec&#x27;s initial weights (seed 0; no --weights)."
            in section)
    assert "Filters of the first convolution, <code>stage_1.conv_1</code>" in section
    assert "6 filters of 5×5 (each filter's first input channel, grey)" in section
    uris = re.findall(r'(?:src|href)="data:image/png;base64,([^"]+)"', section)
    images = [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]
    assert images[0].size == (3 * 6 + 1, 2 * 6 + 1)  # 6 filters of 5x5 in 3 columns, a pixel apart
    analysis = analyze(LENET)
    maps = [n.name for n in analysis.graph.order if len(analysis.layers[n.name].shape) == 3
            and analysis.graph.nodes[n.name].layer.activation]
    for name in maps:  # lenet has 2 activated maps: both shown
        assert f'<div class="maps-head"><code>{name}</code>' in section
    assert "averaged over 5 samples" in section
    assert "Occlusion sensitivity of sample <code>astronaut.jpg</code>" in section
    assert "the logit <code>dense_3</code> before the softmax <code>softmax_1</code>" in section


def test_layers_choose_the_activation_maps(tmp_path):
    weights = tmp_path / "w.npz"
    np.savez(weights, **init_params(analyze(LENET), seed=3))
    html, _ = report(tmp_path, LENET, "--weights", weights, "--layers", "stage_2.conv_1")
    assert re.findall(r'<div class="maps-head"><code>(.*?)</code>', html) == ["stage_2.conv_1"]
    assert f"Weights: {weights}." in html
    assert "random normal, seed 0 (no --data: the effective receptive field on random input" in html


def test_the_executor_section_on_a_1d_network_says_why_it_is_empty(tmp_path):
    spec = SAMPLES / "timeseries1d.yaml"
    weights = tmp_path / "w.npz"
    np.savez(weights, **init_params(analyze(spec)))
    html, _ = report(tmp_path, spec, "--weights", weights)
    assert "The executor section draws 2-D maps; this network&#x27;s input [3, 128] is not (C, H, W)." in html


def test_the_effective_field_lies_inside_the_theoretical_one(tmp_path):
    from archcheck import probe

    path = tmp_path / "net.yaml"
    path.write_text("input: [1, 32, 32]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n  - relu\n"
                    "  - conv: {filters: 4, kernel: 3, stride: 2}\n  - relu\n  - conv: {filters: 4, kernel: 3}\n")
    analysis = analyze(path)
    params = init_params(analysis, seed=1)
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype("float32")
    layer = probe.erf_layer(analysis)
    erf = probe.effective_field(analysis, params, x, layer, chunk=2)
    # r = 1 + 2 + 2 + 2*2 = 9, S = 2, P = 0; the output is 11x11 and its central unit (5, 5) sees rows 10..18
    assert (layer, erf.unit, erf.box, erf.samples) == ("conv_3", (5, 5), (10.0, 10.0, 18.0, 18.0), 3)
    outside = erf.gradient.copy()
    outside[10:19, 10:19] = 0
    assert erf.gradient[10:19, 10:19].sum() > 0 and not outside.any() and erf.inside == 1.0


def test_occlusion_drops_are_the_scores_without_the_patch(tmp_path):
    from archcheck import executor, probe

    analysis = analyze(LENET)
    params = init_params(analysis, seed=2)
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype("float32")
    occ = probe.occlusion(analysis, params, x, "softmax_1", np.zeros(1, "float32"), "zeros", 2**30)
    assert occ.drops.shape == (16, 16) and occ.patch == (4, 4) and occ.scored == "dense_3"
    kept = {}
    executor.forward(analysis, params, x, on_layer=lambda node, y, s: kept.update({node.name: y}))
    assert occ.label == int(kept["dense_3"][0].argmax())
    covered = x.copy()
    covered[0, :, 17:21, 5:9] = 0  # cell (9, 3): pixels 18-19 x 6-7, the 4x4 patch centred on them
    executor.forward(analysis, params, covered, on_layer=lambda node, y, s: kept.update({node.name: y}))
    assert np.isclose(occ.drops[9, 3], occ.score - kept["dense_3"][0, occ.label], atol=1e-5)


def test_png_round_trips():
    pytest.importorskip("PIL")
    from PIL import Image

    from archcheck.render.report import png

    rng = np.random.default_rng(0)
    for pixels in (rng.integers(0, 256, (5, 7), dtype=np.uint8), rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)):
        uri = png(pixels)
        assert uri.startswith("data:image/png;base64,")
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
        assert np.array_equal(decoded, pixels)


# -- writing -------------------------------------------------------------------------------------------
def test_the_report_is_written_atomically(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the old report")
    spec = tmp_path / "broken.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 4, kernal: 3}\n")
    err = bad("report", spec, "-o", out)
    assert "conv has no argument 'kernal' (did you mean 'kernel'?)" in err
    assert out.read_text() == "the old report"

    def fail(self, text, encoding=None):
        with open(self, "w") as fh:
            fh.write(text[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", fail)
    err = bad("report", LENET, "-o", out)
    assert f"cannot write the report to {out}: No space left on device" in err
    monkeypatch.undo()
    assert out.read_text() == "the old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "report.html"]  # no temporary file left


def test_the_report_gets_a_new_files_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        report(tmp_path, LENET)
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644


def test_without_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bokeh", None)  # makes `import bokeh` fail
    err = bad("report", LENET, "-o", tmp_path / "r.html")
    assert "archcheck report needs the report extra: pip install 'archcheck[report]'" in err
    assert not (tmp_path / "r.html").exists()


def test_summary_and_lint_do_not_import_the_report_libraries():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom archcheck.cli import main\n"
            f"CliRunner().invoke(main, ['summary', {str(LENET)!r}])\n"
            f"CliRunner().invoke(main, ['lint', {str(LENET)!r}])\n"
            "print(sorted(m for m in ('bokeh', 'pygraphviz', 'archcheck.render.report', 'archcheck.probe') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]", done.stderr


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_options(tmp_path):
    out = tmp_path / "r.html"
    err = bad("report", LENET, "-o", out, "--data", IMAGES, "--layers", "stage_1.conv1")
    assert "--layers: lenet5 has no layer 'stage_1.conv1' (did you mean 'stage_1.conv_1'" in err
    assert "fix: give layer names as `archcheck summary` lists them, comma-separated" in err
    err = bad("report", LENET, "-o", out, "--data", IMAGES, "--layers", "dense_1")
    assert "--layers: layer 'dense_1' outputs (120), not a 2-D map (C, H, W), so it has no activation maps" in err
    assert "e.g. stage_2.maxpool_1" in err
    assert "--layers chooses the executor section's activation maps: give --data or --weights too" in \
        bad("report", LENET, "-o", out, "--layers", "relu_1")
    assert "expected layer names separated by commas, received ','" in bad("report", LENET, "-o", out, "--data",
                                                                            IMAGES, "--layers", ",")
    assert "the executor section (--data, --weights) runs the network at the spec's input; leave out --input" in \
        bad("report", LENET, "-o", out, "--data", IMAGES, "--input", "1,64,64")
    assert f"{LENET} is also an input of this command ({LENET}); writing it would destroy it" in \
        bad("report", LENET, "-o", LENET)
    assert "Missing option '--output'" in bad("report", LENET)
    assert not out.exists()


def test_bad_data_and_weights(tmp_path):
    out = tmp_path / "r.html"
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), "float32"))
    err = bad("report", LENET, "-o", out, "--data", tmp_path / "x.npy")
    assert "holds an array of shape (2, 3, 32, 32), but the spec's input is (1, 32, 32)" in err
    np.savez(tmp_path / "w.npz", nothing=np.zeros(3))
    err = bad("report", LENET, "-o", out, "--weights", tmp_path / "w.npz")
    assert f"{tmp_path / 'w.npz'} does not match the spec" in err
    assert "images need an input of 1 or 3 channels and two spatial axes (C, H, W); this spec's input is (3, 128)" in \
        bad("report", SAMPLES / "timeseries1d.yaml", "-o", out, "--data", IMAGES)
    assert not out.exists()


def test_a_broken_configuration_is_exit_2(tmp_path):
    (tmp_path / "archcheck.toml").write_text("select = 3\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(LENET.read_text())
    err = bad("report", spec, "-o", tmp_path / "r.html")
    assert "select" in err and "archcheck.toml" in err
