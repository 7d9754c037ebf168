"""Budgets (docs/lint.md, *Budgets*): the [budgets] table read and refused, the figures against
`archcheck summary`'s, and the budget findings through the engine (selection, severity, suppression)
and every output format. Each budget firing and passing at its boundary is in tests/rules/AC90x.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from archcheck.budgets import parse_bytes, parse_count
from archcheck.cli import main
from archcheck.pipeline import analyze
from archcheck.propagate import peak_inference_at

TESTS = Path(__file__).parent
ROOT = TESTS.parent
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))
SARIF_SCHEMA = json.loads((TESTS / "data" / "sarif-schema-2.1.0.json").read_text())
LINT_SCHEMA = json.loads((ROOT / "archcheck" / "schemas" / "lint.schema.json").read_text())
# trainable 12,898 (conv_2 9,224); MACs 5,898,320 (conv_1 3,538,944); peak 596,360 bytes at conv_2 (batch 1,
# float32); final field 5 / 2 / 2 at relu_2
SPEC = """\
input: [3, 32, 32]
layers:
  - conv: {filters: 128, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 8, kernel: 3, stride: 2, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
"""
OVER = '[budgets]\nmax-params = 12_897\nmax-macs = "5.8M"\nmax-peak-memory = "512 KiB"\nmin-receptive-field = 6\n'


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "m.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return tmp_path


def lint(*args):
    return CliRunner().invoke(main, ["lint", *args])


def findings(*args) -> list[dict]:
    result = lint("--format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)["findings"]


# -- reading limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, count", [
    (25_000_000, 25_000_000), ("25M", 25_000_000), ("25 M", 25_000_000), ("4.5G", 4_500_000_000), ("1.2k", 1200),
    ("1.2K", 1200), ("2T", 2 * 10**12), ("25_000", 25_000), ("12.898k", 12_898), (4.5e9, 4_500_000_000),
])
def test_counts_read_exactly(value, count):
    assert parse_count(value) == count


@pytest.mark.parametrize("value, size", [
    (2_147_483_648, 2**31), ("2 GiB", 2**31), ("2GiB", 2**31), ("1.5 GiB", 3 * 2**29), ("500MB", 500 * 10**6),
    ("1.1MB", 1_100_000), ("64 KiB", 65_536), ("100", 100), ("1.1GiB", 1_181_116_006),
])
def test_sizes_read_exactly(value, size):
    assert parse_bytes(value) == size


# -- configuration ----------------------------------------------------------------------------------------
def test_budgets_in_pyproject_and_archcheck_toml(project):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.archcheck]\nselect = ["AC9"]\n\n'
                                            '[tool.archcheck.budgets]\nmax-params = 12_897\n')
    [f] = findings("m.yaml")
    assert (f["code"], f["rule"], f["severity"], f["layer"], f["line"]) == ("AC901", "params-over-budget", "error",
                                                                           "conv_2", 5)
    assert f["message"] == ("the network has 12,898 trainable parameters, 1 over the budget of 12,897 (max-params in "
                            "pyproject.toml); this layer holds the most of them, 9,224 (72%)")
    (project / "archcheck.toml").write_text('select = ["AC9"]\n[budgets]\nmax-params = "12.897k"\n')  # it wins
    [f] = findings("m.yaml")
    assert "over the budget of 12,897 (max-params in archcheck.toml)" in f["message"]


def test_budgets_that_pass_give_no_finding(project):
    (project / "archcheck.toml").write_text('[budgets]\nmax-params = 12_898\nmax-macs = "5.89832M"\n'
                                            'max-peak-memory = 596_360\nmin-receptive-field = 5\n')
    result = lint("m.yaml", "--select", "AC9")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("0 findings")


def test_every_budget_over_its_limit(project):
    (project / "archcheck.toml").write_text(OVER)
    result = lint("m.yaml", "--select", "AC9", "--format", "json")
    assert result.exit_code == 1
    got = [(f["code"], f["layer"], f["line"]) for f in json.loads(result.stdout)["findings"]]
    assert got == [("AC902", "conv_1", 3), ("AC901", "conv_2", 5), ("AC903", "conv_2", 5), ("AC904", "relu_2", 6)]


@pytest.mark.parametrize("name, text, message", [
    ("archcheck.toml", '[budgets]\nmax-parms = 5\n',
     "archcheck.toml: key 'budgets.max-parms': unknown budget (did you mean 'max-params'?)\n  = fix: the budgets "
     "are: max-params, max-macs, max-peak-memory, peak-memory-batch, peak-memory-dtype, min-receptive-field"),
    ("pyproject.toml", '[tool.archcheck.budgets]\nmax-params = 0\n',
     "pyproject.toml: key 'tool.archcheck.budgets.max-params': must be a whole number of at least 1, or a string of "
     'one with a suffix k, M, G or T (powers of 1000) such as "25M", received 0\n  = fix: write e.g. '
     '`max-params = "25M"`'),
    ("archcheck.toml", '[budgets]\nmax-macs = -4\n', "key 'budgets.max-macs': must be a whole number of at least 1, "
     'or a string of one with a suffix k, M, G or T (powers of 1000) such as "4.5G", received -4'),
    ("archcheck.toml", '[budgets]\nmax-params = "25m"\n',
     "received \"25m\" ('m' is not one of the suffixes; did you mean 'M'?)"),
    ("archcheck.toml", '[budgets]\nmax-params = "25 million"\n', 'received "25 million" (\'million\' is not one of '
     "the suffixes)"),
    ("archcheck.toml", '[budgets]\nmax-params = "1.2345k"\n',
     'received "1.2345k" (that is 1234.5, not a whole number)'),
    ("archcheck.toml", '[budgets]\nmax-params = true\n', "such as \"25M\", received true\n"),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "2 gigs"\n',
     "archcheck.toml: key 'budgets.max-peak-memory': must be a size of at least 1 byte such as \"2 GiB\" or "
     '"500MB", or a whole number of bytes (KiB, MiB, GiB and TiB are powers of 1024; kB, MB, GB and TB powers of '
     '1000), received "2 gigs"\n  = fix: write e.g. `max-peak-memory = "2 GiB"`'),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "0 GiB"\n', 'or a whole number of bytes (KiB, MiB, GiB and TiB '
     'are powers of 1024; kB, MB, GB and TB powers of 1000), received "0 GiB"'),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "1 GiB"\npeak-memory-dtype = "float17"\n',
     "archcheck.toml: key 'budgets.peak-memory-dtype': must be one of float32, float16, bfloat16, float64, int8, "
     "received \"float17\" (did you mean 'float16'?)\n  = fix: write e.g. `peak-memory-dtype = \"float16\"`"),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "1 GiB"\npeak-memory-batch = 2.5\n',
     "archcheck.toml: key 'budgets.peak-memory-batch': must be a whole number from 1 to 1,000,000, received 2.5\n"
     "  = fix: write e.g. `peak-memory-batch = 32`"),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "1 GiB"\npeak-memory-batch = "32"\n',
     "key 'budgets.peak-memory-batch': must be a whole number from 1 to 1,000,000, received \"32\""),
    ("archcheck.toml", '[budgets]\nmax-peak-memory = "1 GiB"\npeak-memory-batch = 0\n',
     "key 'budgets.peak-memory-batch': must be a whole number from 1 to 1,000,000, received 0"),
    ("archcheck.toml", '[budgets]\npeak-memory-batch = 32\n',
     "archcheck.toml: key 'budgets.peak-memory-batch': sets how peak memory is measured, but no max-peak-memory is "
     "set\n  = fix: add the limit, e.g. `max-peak-memory = \"2 GiB\"`, or remove `peak-memory-batch`"),
    ("archcheck.toml", '[budgets]\nmin-receptive-field = "inputs"\n',
     "archcheck.toml: key 'budgets.min-receptive-field': must be a whole number of pixels of at least 1, or "
     "\"input\", received \"inputs\" (did you mean 'input'?)\n  = fix: write e.g. `min-receptive-field = 224`"),
    ("archcheck.toml", '[budgets]\nmin-receptive-field = -224\n', 'or "input", received -224'),
    ("archcheck.toml", 'budgets = 5\n', "archcheck.toml: key 'budgets': must be a table, received 5"),
    ("archcheck.toml", '[rules.params-over-budget]\nlimit = 5\n',
     "archcheck.toml: key 'rules.params-over-budget.limit': rule AC901 params-over-budget has no option 'limit'\n"
     "  = fix: set its limit in the budgets table: `max-params = \"25M\"` under [budgets]"),
    ("pyproject.toml", '[tool.archcheck.rules.AC903]\nmax_peak_memory = 5\n',
     "rule AC903 peak-memory-over-budget has no option 'max_peak_memory'\n  = fix: set its limit in the budgets "
     "table: `max-peak-memory = \"2 GiB\"` under [tool.archcheck.budgets]"),
])
def test_bad_budgets_name_the_key(project, name, text, message):
    (project / name).write_text(text)
    result = lint("m.yaml")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("archcheck: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output


# -- the figures are summary's ----------------------------------------------------------------------------
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_peak_memory_at_any_batch_and_dtype_is_what_propagate_gives(sample):
    at_one = analyze(sample)
    for batch, dtype in [(1, "float32"), (32, "float16"), (7, "int8"), (3, "float64"), (256, "bfloat16")]:
        assert peak_inference_at(at_one, batch, dtype) == analyze(sample, batch, dtype).totals.peak_inference_bytes


@pytest.mark.parametrize("batch, dtype", [(32, "float16"), (5, "float64"), (1, "int8")])
def test_peak_memory_budget_reports_summary_figure(project, batch, dtype):
    """The budget's figure is what `archcheck summary --batch B --dtype D` prints as peak inference memory."""
    sample = str(ROOT / "samples" / "resnet18.yaml")
    summary = CliRunner().invoke(main, ["summary", sample, "--batch", str(batch), "--dtype", dtype, "--format", "json"])
    peak = json.loads(summary.stdout)["totals"]["peak_inference_bytes"]
    text = CliRunner().invoke(main, ["summary", sample, "--batch", str(batch), "--dtype", dtype, "--format", "table"])
    shown = next(line for line in text.stdout.splitlines() if line.startswith("peak inference memory"))
    human = shown.split()[3] + " " + shown.split()[4]  # "peak inference memory  1.02 GiB (activations ..."
    for limit, fires in [(peak, False), (peak - 1, True)]:
        (project / "archcheck.toml").write_text(f'[budgets]\nmax-peak-memory = {limit}\npeak-memory-batch = {batch}\n'
                                                f'peak-memory-dtype = "{dtype}"\n')
        got = findings(sample, "--config", "archcheck.toml", "--select", "peak-memory-over-budget")
        assert bool(got) == fires
    [f] = got
    assert f["message"].startswith(f"peak inference memory at batch {batch} in {dtype} is {peak:,} bytes ({human}: ")
    assert f"1 bytes (1 B) over the budget of {peak - 1:,} bytes" in f["message"]
    assert f["layer"] == json.loads(summary.stdout)["totals"]["peak_at"]


def test_params_macs_and_field_are_summary_figures(project):
    sample = str(ROOT / "samples" / "resnet50.yaml")
    totals = json.loads(CliRunner().invoke(main, ["summary", sample, "--format", "json"]).stdout)["totals"]
    field = totals["receptive_field"]
    r = field["axes"][0]["r"]
    (project / "archcheck.toml").write_text(f'[budgets]\nmax-params = {totals["trainable_params"] - 1}\n'
                                            f'max-macs = {totals["macs"] - 1}\nmin-receptive-field = {r + 1}\n')
    by_code = {f["code"]: f for f in findings(sample, "--config", "archcheck.toml", "--select", "AC9")}
    assert f"has {totals['trainable_params']:,} trainable parameters, 1 over" in by_code["AC901"]["message"]
    assert f"needs {totals['macs']:,} MACs" in by_code["AC902"]["message"]
    assert by_code["AC904"]["layer"] == field["layer"]
    assert f"is {r}x{r} pixels; along H it is 1 short of the budget of {r + 1:,}" in by_code["AC904"]["message"]
    (project / "archcheck.toml").write_text('[budgets]\nmin-receptive-field = "input"\n')  # 427 / 32 / 213 covers
    assert findings(sample, "--config", "archcheck.toml", "--select", "AC9") == []


# -- budget findings are findings ---------------------------------------------------------------------------
def test_select_ignore_severity_and_per_file_ignores(project):
    config = project / "archcheck.toml"
    config.write_text(OVER)
    assert {f["code"] for f in findings("m.yaml", "--select", "AC9")} == {"AC901", "AC902", "AC903", "AC904"}
    assert [f["code"] for f in findings("m.yaml", "--select", "macs-over-budget")] == ["AC902"]
    config.write_text('ignore = ["AC9"]\n' + OVER)
    assert not [f for f in findings("m.yaml") if f["code"].startswith("AC9")]
    config.write_text('select = ["AC1"]\n' + OVER)  # narrowing `select` does not switch a gate off
    assert {f["code"] for f in findings("m.yaml") if f["code"].startswith("AC9")} == {"AC901", "AC902", "AC903",
                                                                                       "AC904"}
    config.write_text('select = ["AC9"]\n[severity]\nAC9 = "info"\nAC904 = "warning"\n' + OVER)
    result = lint("m.yaml", "--format", "json")
    assert result.exit_code == 1  # AC904 is a warning, and fail-on is warning
    assert {f["code"]: f["severity"] for f in json.loads(result.stdout)["findings"]} == {
        "AC901": "info", "AC902": "info", "AC903": "info", "AC904": "warning"}
    config.write_text('select = ["AC9"]\n[per-file-ignores]\n"m.yaml" = ["AC901", "receptive-field-below-budget"]\n'
                      + OVER)
    assert sorted(f["code"] for f in findings("m.yaml")) == ["AC902", "AC903"]


def test_suppression_comments_cover_budget_findings(project):
    (project / "archcheck.toml").write_text('select = ["AC9", "AC004"]\n[budgets]\nmax-params = 12_897\n')
    lines = SPEC.splitlines()
    lines[4] += "   # archcheck: ignore[params-over-budget]"  # conv_2, where the finding is
    (project / "m.yaml").write_text("\n".join(lines) + "\n")
    result = lint("m.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["findings"] == [] and data["summary"]["suppressed"] == 1


def test_budgets_wait_for_shape_errors_to_be_fixed(project):
    (project / "archcheck.toml").write_text(OVER)
    (project / "m.yaml").write_text(SPEC.replace("globalavgpool", "conv: {filters: 8, kernel: 40}"))
    assert [f["code"] for f in findings("m.yaml", "--select", "AC9")] == ["AC003"]


def test_no_config_means_no_budgets(project):
    (project / "archcheck.toml").write_text(OVER)
    assert findings("m.yaml", "--no-config", "--select", "AC9") == []


# -- every output format -----------------------------------------------------------------------------------
MESSAGE = ("the network has 12,898 trainable parameters, 1 over the budget of 12,897 (max-params in archcheck.toml); "
           "this layer holds the most of them, 9,224 (72%)")


@pytest.fixture
def over(project):
    (project / "archcheck.toml").write_text('select = ["AC901"]\n[budgets]\nmax-params = 12_897\n')
    return project


def test_text_format(over):
    result = lint("m.yaml", "--format", "text")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"m.yaml:5:5: AC901 params-over-budget [error] layer 'conv_2': {MESSAGE}\n")
    assert "  = fix: shrink this layer first" in result.stdout
    assert result.stdout.endswith("1 finding (1 error, 0 warnings, 0 info) in 1 file; 0 suppressed\n")


def test_json_format(over):
    data = json.loads(lint("m.yaml", "--format", "json").stdout)
    jsonschema.Draft202012Validator(LINT_SCHEMA).validate(data)
    [f] = data["findings"]
    assert (f["code"], f["rule"], f["severity"], f["message"], f["line"], f["layer"]) == (
        "AC901", "params-over-budget", "error", MESSAGE, 5, "conv_2")


def test_sarif_format(over):
    sarif = json.loads(lint("m.yaml", "--format", "sarif").stdout)
    jsonschema.validate(sarif, SARIF_SCHEMA)
    run = sarif["runs"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "AC901")
    assert rule["name"] == "params-over-budget"
    assert rule["defaultConfiguration"] == {"level": "error"}
    assert rule["fullDescription"]["text"].startswith("## What it does\nFlags a network with more trainable")
    [result] = run["results"]
    assert result["ruleId"] == "AC901" and result["level"] == "error"
    assert result["message"]["text"].startswith(f"layer 'conv_2': {MESSAGE}\nFix: shrink this layer first")
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 5, "startColumn": 5}


def test_github_and_markdown_formats(over):
    github = lint("m.yaml", "--format", "github").stdout.splitlines()
    assert github[0].startswith("::error file=m.yaml,line=5,col=5,title=AC901 params-over-budget::layer 'conv_2': "
                                "the network has 12,898 trainable parameters, 1 over the budget of 12,897")
    markdown = lint("m.yaml", "--format", "markdown").stdout
    assert "AC901" in markdown and "params-over-budget" in markdown and "1 over the budget of 12,897" in markdown


def test_explain_and_rules_list_the_budgets():
    explained = CliRunner().invoke(main, ["explain", "peak-memory-over-budget"]).stdout
    assert explained.startswith("AC903 peak-memory-over-budget (default severity: error)\n")
    assert "`max-peak-memory`" in explained and "## Use instead" in explained
    listing = CliRunner().invoke(main, ["rules", "--format", "plain"]).stdout
    for code, slug in [("AC901", "params-over-budget"), ("AC902", "macs-over-budget"),
                       ("AC903", "peak-memory-over-budget"), ("AC904", "receptive-field-below-budget")]:
        assert any(line.split()[:4] == [code, slug, "static", "error"] for line in listing.splitlines())

