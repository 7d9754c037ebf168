"""`archcheck report` pages in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Every sample's report opens with no console error and no request leaving the file, draws its plots (Bokeh's
roots rendered, the timeline's data the propagator's) and is not blank; the executor section's images load;
the report of a 10,000-layer spec opens too. One browser for the session; each page is opened once
(``open_report``) and every check reads that record; ``check_diagram`` reads the diagram's nodes.

Without Chromium or Playwright the tests skip, except in CI (``CI=true``), where they fail: `.ci/run` installs
Chromium.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from html_page import remote

from archcheck.cli import main
from archcheck.pipeline import analyze
from archcheck.propagate import live_memory

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))
IMAGES = ROOT / "samples" / "images"
CHROMIUM = os.environ.get("ARCHCHECK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for module in ("bokeh", "playwright"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = _unavailable()
    if missing:
        if IN_CI:
            pytest.fail(f"the browser tests must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Opened:
    """One report as the browser showed it."""

    path: Path
    errors: list[str]  # console errors and uncaught exceptions
    requests: list[str]  # every URL the page asked for, itself included
    screenshot: bytes  # the first screen, PNG
    roots: int  # Bokeh's document roots
    rendered: int  # of the roots' elements, those drawn (with something inside)
    canvases: int
    live: list[float]  # the timeline's data as the page holds it (MiB)
    images: list[dict] = field(default_factory=list)  # every <img>: its alt and natural width
    diagram: dict = field(default_factory=dict)  # the diagram's layer nodes, per view, with their findings


READ = """() => {
    const doc = Bokeh.documents[0];
    const hosts = [...document.querySelectorAll('[data-root-id]')];
    return {
        roots: doc.roots().length,
        rendered: hosts.filter(h => h.children.length > 0 || (h.shadowRoot && h.shadowRoot.childElementCount > 0)
                                    || h.nextElementSibling).length,
        live: Array.from(doc.get_model_by_name('layers').data.live),
        images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, complete: i.complete})),
        diagram: {present: !!document.getElementById('diagram'),
                  shown: document.querySelectorAll('#diagram .dg-canvas g.node').length,
                  views: [...document.querySelectorAll('#diagram template.dg-view')].map(t =>
                      [...t.content.querySelectorAll('g.node.layer')].map(
                          g => [g.getAttribute('data-layer'), g.getAttribute('data-findings') || ''])),
                 },
    };
}"""


def open_report(browser, path: Path) -> Opened:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))  # a spec's text ran as code
    try:
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                               timeout=60_000)
        facts = page.evaluate(READ)
        shot = page.screenshot()
        canvases = page.locator("canvas").count()  # Playwright's CSS locators pierce Bokeh's shadow roots
    finally:
        page.close()
    return Opened(path, errors, requests, shot, facts["roots"], facts["rendered"], canvases, facts["live"],
                  facts["images"], facts["diagram"])


def write_report(out: Path, spec, *args) -> Path:
    result = CliRunner().invoke(main, ["report", str(spec), "-o", str(out), *map(str, args)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def pages(browser, tmp_path_factory):
    """Every sample's report, opened once."""
    folder = tmp_path_factory.mktemp("reports")
    return {spec.stem: open_report(browser, write_report(folder / f"{spec.stem}.html", spec)) for spec in SAMPLES}


def not_blank(png: bytes) -> float:
    """The spread of the screenshot's grey levels: 0 for a blank page."""
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float64)
    return float(grey.std())


def check_page(opened: Opened, plots: int) -> None:
    assert remote(opened.path.read_text(encoding="utf-8")) == []  # nothing to fetch in the file...
    assert opened.errors == [], opened.errors
    assert [u for u in opened.requests if not u.startswith(("file://", "data:"))] == []  # ...nor in the browser
    assert opened.requests[0] == opened.path.as_uri()
    assert (opened.roots, opened.rendered) == (plots, plots)
    assert opened.canvases >= plots
    assert not_blank(opened.screenshot) > 20
    assert opened.diagram["present"] and opened.diagram["shown"] > 0


def check_diagram(opened: Opened, analysis, findings: list[dict]) -> None:
    """One node per layer: every layer (the input included) is a node of some view of the diagram, once per
    view, and the view shown first draws some; each node carries exactly its layer's findings."""
    views = opened.diagram["views"]
    assert opened.diagram["shown"] > 0
    assert set().union(*({name for name, _ in v} for v in views)) == set(analysis.layers)
    for v in views:
        names = [name for name, _ in v]
        assert len(names) == len(set(names))
    codes = {}
    for f in findings:
        codes.setdefault(f["layer"], set()).add(f["code"])
    for v in views:
        for name, marked in v:
            assert set(marked.split()) == codes.get(name, set()), name


@pytest.mark.parametrize("spec", SAMPLES, ids=lambda p: p.stem)
def test_every_samples_report_opens_cleanly(pages, spec):
    opened = pages[spec.stem]
    analysis = analyze(spec)
    check_page(opened, plots=3)  # cost, live memory, receptive field: every sample has spatial axes
    live = [b for _, b in live_memory(analysis.graph, analysis.layers)]
    assert np.allclose(np.array(opened.live) * 2**20, live)
    assert round(max(opened.live) * 2**20) == analysis.totals.peak_activation_bytes
    linted = CliRunner().invoke(main, ["lint", str(spec), "--format", "json"])  # the findings lint reports
    check_diagram(opened, analysis, json.loads(linted.stdout)["findings"])


RGB_NET = """name: small_rgb
input: [3, 48, 48]
classes: 10
layers:
  - conv: {filters: 16, kernel: 5, padding: 2}
  - relu
  - maxpool: 2
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - globalavgpool
  - dense: 10
  - softmax
"""


def test_the_executor_sections_images_load(browser, tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "rgb.yaml").write_text(RGB_NET)
    for spec, first in ((ROOT / "samples" / "lenet5.yaml", "stage_1.conv_1"), (tmp_path / "rgb.yaml", "conv_1")):
        opened = open_report(browser, write_report(tmp_path / f"{spec.stem}.html", spec, "--data", IMAGES))
        check_page(opened, plots=3)
        alts = [i["alt"] for i in opened.images]
        assert alts[0] == f"filters of {first}"
        assert "sample astronaut.jpg" in alts and "occlusion sensitivity" in alts
        assert all(i["complete"] and i["width"] > 0 for i in opened.images), opened.images


def test_a_specs_text_stays_text(browser, tmp_path):
    spec = tmp_path / "hostile.yaml"
    spec.write_text('name: "<script>alert(1)</script>"\ndescription: "<img src=x onerror=alert(2)>"\n'
                    "input: [1, 8, 8]\nlayers:\n  - conv: 4\n  - relu\n  - globalavgpool\n")
    opened = open_report(browser, write_report(tmp_path / "hostile.html", spec))
    check_page(opened, plots=3)  # no dialog, no error, no request for "x"


def test_the_report_of_a_10000_layer_spec_opens(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_lint import big_spec
    finally:
        sys.path.pop(0)
    spec = tmp_path / "big.yaml"
    spec.write_text(big_spec())
    opened = open_report(browser, write_report(tmp_path / "big.html", spec, "--no-config"))
    check_page(opened, plots=3)
    assert len(opened.live) == 10_004  # the input and 10,003 layers
