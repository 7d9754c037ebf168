"""Output formats of `archcheck lint`: golden outputs for each, SARIF validated against the official
2.1.0 schema, JSON against archcheck's own schema, GitHub escaping, Markdown cells, `auto` and colour.

The goldens come from tests/data/lint (its own rules, specs and archcheck.toml) run in a temporary
working directory, so they hold relative paths only. Regenerate them after an intended change with
ARCHCHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_lint_formats.py, and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from archcheck import __version__
from archcheck.cli import main
from archcheck.errors import Loc
from archcheck.findings import Finding
from archcheck.render.findings import render

TESTS = Path(__file__).parent
DATA = TESTS / "data" / "lint"
GOLDEN = TESTS / "golden"
ROOT = TESTS.parent
SARIF_SCHEMA = json.loads((TESTS / "data" / "sarif-schema-2.1.0.json").read_text())
LINT_SCHEMA = json.loads((ROOT / "archcheck" / "schemas" / "lint.schema.json").read_text())
GOLDENS = {"text": "lint.txt", "json": "lint.json", "sarif": "lint.sarif", "github": "lint.github.txt",
           "markdown": "lint.md"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(DATA, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return tmp_path


def lint(*args):
    return CliRunner().invoke(main, ["lint", *args])


@pytest.mark.parametrize("fmt", list(GOLDENS))
def test_golden_output(project, fmt):
    result = lint("specs", "--format", fmt)
    assert result.exit_code == 1
    assert str(project) not in result.stdout  # no absolute paths
    out = result.stdout.replace(f'"{__version__}"', '"VERSION"')
    golden = GOLDEN / GOLDENS[fmt]
    if os.environ.get("ARCHCHECK_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out)
    assert out == golden.read_text()


def test_sarif_is_valid_and_carries_rule_metadata(project):
    sarif = json.loads(lint("specs", "--format", "sarif").stdout)
    jsonschema.validate(sarif, SARIF_SCHEMA)
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["AC000", "AC001", "AC002", "AC003", "AC004", "XT101", "XT102"]
    wide = rules[5]
    assert wide["name"] == "wide-conv"
    assert wide["shortDescription"]["text"] == "A convolution is wider than max_filters."
    assert wide["fullDescription"]["text"].startswith("A custom rule for the engine's tests.\n\n## What it does\n")
    assert wide["help"]["markdown"] == wide["fullDescription"]["text"]
    assert wide["defaultConfiguration"] == {"level": "warning"}
    assert rules[6]["defaultConfiguration"] == {"level": "note"}
    by_rule = {r["ruleId"]: r for r in run["results"]}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    wide_result = by_rule["XT101"]
    assert wide_result["level"] == "warning"
    assert wide_result["message"]["text"] == ("layer 'pair_1.conv_1': 256 filters, more than the 64 allowed\n"
                                              "Fix: use at most 64 filters")
    assert wide_result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "specs/model.yaml"}, "region": {"startLine": 8, "startColumn": 9}}
    assert by_rule["XT102"]["level"] == "note"
    assert run["properties"] == {"filesChecked": 3, "suppressed": 1}


def test_json_matches_its_schema(project):
    data = json.loads(lint("specs", "--format", "json").stdout)
    jsonschema.Draft202012Validator(LINT_SCHEMA).validate(data)
    assert data["summary"] == {"findings": 4, "by_severity": {"info": 1, "warning": 2, "error": 1},
                               "files_checked": 3, "suppressed": 1}


def test_classic_samples_give_valid_sarif_and_json(monkeypatch):
    """The built-in rules' real documentation and findings, through both machine formats."""
    monkeypatch.chdir(ROOT)
    samples = ["samples/vgg16.yaml", "samples/resnet18.yaml", "samples/bad_pool_early.yaml",
               "samples/bad_sigmoid.yaml"]
    sarif = json.loads(lint("--no-config", "--format", "sarif", *samples).stdout)
    jsonschema.validate(sarif, SARIF_SCHEMA)
    for rule in sarif["runs"][0]["tool"]["driver"]["rules"]:
        assert rule["fullDescription"]["text"] and rule["shortDescription"]["text"]
    data = json.loads(lint("--no-config", "--format", "json", *samples).stdout)
    jsonschema.Draft202012Validator(LINT_SCHEMA).validate(data)


FINDING = Finding("XT101", "wide-conv", "warning", "100% of 3,4: too wide\r\nreally", Loc("dir,a/m:1.yaml", 3, 5),
                  "conv_1", "use | fewer <filters>")


def test_github_annotations_escape_data_and_properties():
    out = render([FINDING], "github", files_checked=1).splitlines()
    assert out[0] == ("::warning file=dir%2Ca/m%3A1.yaml,line=3,col=5,title=XT101 wide-conv::layer 'conv_1': "
                      "100%25 of 3,4: too wide%0D%0Areally%0AFix: use | fewer <filters>")
    assert out[1] == "1 finding (0 errors, 1 warning, 0 info) in 1 file; 0 suppressed"


def test_markdown_escapes_table_cells():
    out = render([FINDING], "markdown", files_checked=2, suppressed=3)
    assert out.splitlines()[0] == "### archcheck: 1 finding (0 errors, 1 warning, 0 info) in 2 files; 3 suppressed"
    assert out.splitlines()[-1] == ("| warning | `dir,a/m:1.yaml:3:5` | XT101 `wide-conv` | `conv_1` | 100% of 3,4: "
                                    "too wide<br>really<br>**Fix:** use \\| fewer &lt;filters&gt; |")
    assert render([], "markdown", files_checked=2) == \
        "### archcheck: 0 findings (0 errors, 0 warnings, 0 info) in 2 files; 0 suppressed"


def test_render_without_rule_metadata_for_other_commands(tmp_path, monkeypatch):
    """How `archcheck run` reports its dynamic findings: no registry, still valid SARIF."""
    monkeypatch.chdir(tmp_path)
    finding = Finding("AC801", "exploding-gradients", "error", "gradient norm 1e9", Loc(str(tmp_path / "m.yaml"), 4, 3),
                      "dense_1")
    sarif = json.loads(render([finding], "sarif", files_checked=1))
    jsonschema.validate(sarif, SARIF_SCHEMA)
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["rules"] == [{"id": "AC801", "name": "exploding-gradients"}]
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "m.yaml"
    outside = Finding("AC801", "exploding-gradients", "error", "x", Loc("/elsewhere/m x.yaml", 1, 1))
    uri = json.loads(render([outside], "sarif", files_checked=1))["runs"][0]["results"][0]["locations"][0]
    assert uri["physicalLocation"]["artifactLocation"]["uri"] == "file:///elsewhere/m%20x.yaml"


def test_auto_picks_github_inside_actions(project, monkeypatch):
    assert lint("specs", "--format", "auto").stdout.startswith("specs/broken.yaml:4:5: AC003 shape-error")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert lint("specs").stdout.startswith("::error file=specs/broken.yaml,line=4,col=5,title=AC003 shape-error::")
    assert lint("specs", "--format", "text").stdout.startswith("specs/broken.yaml:4:5:")


def test_colour_only_when_asked():
    plain = render([FINDING], "text", files_checked=1)
    assert "\x1b[" not in plain
    coloured = render([FINDING], "text", files_checked=1, color=True)
    assert "\x1b[" in coloured
    assert coloured.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[33m", "") == plain


def test_lint_output_has_no_colour_when_not_a_terminal(project):
    assert "\x1b[" not in lint("specs").stdout


def test_summary_line_counts():
    findings = [FINDING, Finding("AC003", "shape-error", "error", "m", None)]
    lines = render(findings, "text", files_checked=7, suppressed=2).splitlines()
    assert "AC003 shape-error [error] m" in lines  # no location: no prefix
    assert lines[-1] == "2 findings (1 error, 1 warning, 0 info) in 7 files; 2 suppressed"
