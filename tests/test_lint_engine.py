"""The lint engine through `archcheck lint`: rule loading (custom directory, plugins), spec problems as
findings, isolation of a crashing rule, suppression comments, selection, paths and exit codes.

The engine is tested with small rule modules of its own (tests/data/lint/rules, or written here),
so these tests do not depend on what the built-in rules find: the test project's configuration
selects only its own rules (XT...) and the engine's codes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcheck.cli import main

DATA = Path(__file__).parent / "data" / "lint"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of tests/data/lint (rules/, specs/, archcheck.toml) as the working directory."""
    shutil.copytree(DATA, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(*args):
    return CliRunner().invoke(main, ["lint", *args])


def findings(*args) -> list[dict]:
    result = lint("--format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)["findings"]


def write_rule(directory: Path, module: str, code: str, slug: str, body: str, severity: str = "warning",
               options: str = "{}") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(
        f'"""Test rule {slug}."""\n'
        "from archcheck.findings import Report\n"
        f"CODE = {code!r}\nSLUG = {slug!r}\nSEVERITY = {severity!r}\nOPTIONS = {options}\n"
        f"SUMMARY = 'Test rule {slug}.'\n\n"
        "def check(analysis, options):\n" + "".join(f"    {line}\n" for line in body.splitlines()))


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


# -- custom rules, options, severities -----------------------------------------------------------
def test_custom_rule_directory_reports_layer_line_and_fix(project):
    (project / "m.yaml").write_text(SPEC)
    result = lint("m.yaml")
    assert result.exit_code == 1
    assert "m.yaml:3:5: XT101 wide-conv [warning] layer 'conv_1': 128 filters, more than the 64 allowed" \
        in result.stdout
    assert "  = fix: use at most 64 filters" in result.stdout
    assert "m.yaml:5:5: XT102 strided [info] layer 'conv_2': stride 2, expected 1" in result.stdout
    assert result.stdout.rstrip().endswith("2 findings (0 errors, 1 warning, 1 info) in 1 file; 0 suppressed")


def test_rule_options_and_severity_from_configuration(project):
    (project / "m.yaml").write_text(SPEC)
    (project / "archcheck.toml").write_text('custom-rules = "rules"\nselect = ["XT"]\n'
                                            'severity = { XT = "error", strided = "warning" }\n'
                                            '[rules.wide-conv]\nmax_filters = 256\n')
    got = {(f["code"], f["severity"]) for f in findings("m.yaml")}
    assert got == {("XT102", "warning")}  # 128 <= 256 now; the exact name beats the prefix


def test_fail_on_sets_the_exit_code(project):
    (project / "m.yaml").write_text(SPEC)
    assert lint("m.yaml", "--select", "strided").exit_code == 0  # one info finding, fail-on warning
    assert lint("m.yaml", "--select", "strided", "--fail-on", "info").exit_code == 1
    assert lint("m.yaml", "--fail-on", "error").exit_code == 0
    assert lint("specs/good.yaml").exit_code == 0


def test_select_and_ignore_by_code_slug_and_prefix(project):
    (project / "m.yaml").write_text(SPEC)
    codes = lambda *args: sorted(f["code"] for f in findings("m.yaml", *args))  # noqa: E731
    assert codes() == ["XT101", "XT102"]
    assert codes("--select", "XT101") == ["XT101"]
    assert codes("--select", "strided") == ["XT102"]
    assert codes("--select", "XT1", "--ignore", "wide-conv") == ["XT102"]
    assert codes("--select", "XT101,XT102", "--ignore", "xt102") == ["XT101"]


def test_per_file_ignores(project):
    (project / "exp").mkdir()
    (project / "exp" / "a.yaml").write_text(SPEC)
    (project / "b.yaml").write_text(SPEC)
    (project / "archcheck.toml").write_text('custom-rules = "rules"\nselect = ["XT"]\n'
                                            '[per-file-ignores]\n"exp/*.yaml" = ["wide-conv"]\n"b.yaml" = ["XT1"]\n')
    got = sorted((f["file"], f["code"]) for f in findings("exp", "b.yaml"))
    assert got == [("exp/a.yaml", "XT102")]


# -- spec problems -------------------------------------------------------------------------------
def test_spec_problems_become_error_findings_and_skip_the_rules(project):
    (project / "syntax.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 128\n")
    (project / "unknown.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 128}\n  - globalavgpool\n"
                                          "  - dense: {unit: 3}\n")
    paths = ("specs/broken.yaml", "syntax.yaml", "unknown.yaml")
    result = lint(*paths, "--fail-on", "error")
    assert result.exit_code == 1
    out = result.stdout
    assert "specs/broken.yaml:4:5: AC003 shape-error [error] layer 'conv_1': conv on input (3, 4, 4): the 7-wide " \
           "window does not fit the padded input along H" in out
    assert "syntax.yaml:3:11: AC001 invalid-yaml [error] YAML syntax error: " in out
    assert "AC002 invalid-spec [error] layer 'dense_1': dense " in out
    got = [(f["file"], f["line"], f["code"], f["severity"]) for f in findings(*paths)]
    # the conv with 128 filters is not checked (no XT101): the rules are skipped when the spec does not load
    assert [g for g in got if g[0] != "unknown.yaml"] == [("specs/broken.yaml", 4, "AC003", "error"),
                                                          ("syntax.yaml", 3, "AC001", "error")]
    assert {g[1:] for g in got if g[0] == "unknown.yaml"} == {(5, "AC002", "error")}


def test_unreadable_file_is_a_finding_and_other_files_still_run(project):
    (project / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    (project / "m.yaml").write_text(SPEC)
    result = lint("binary.yaml", "m.yaml")
    assert "binary.yaml:1:1: AC001 invalid-yaml [error] the file is not UTF-8 text" in result.stdout
    assert "m.yaml:3:5: XT101 wide-conv" in result.stdout
    assert result.exit_code == 1


# -- a rule that crashes -------------------------------------------------------------------------
def test_crashing_rule_is_an_internal_error_for_that_rule_and_file(project):
    write_rule(project / "rules", "boom", "XT900", "boom",
               "import fractions\nif analysis.spec.name == 'a':\n    fractions.Fraction(1, 0)\nyield from ()")
    write_rule(project / "rules", "bad_yield", "XT901", "bad-yield", "yield ('not', 'a report')")
    (project / "a.yaml").write_text("name: a\n" + SPEC)
    (project / "b.yaml").write_text("name: b\n" + SPEC)
    result = lint("a.yaml", "b.yaml", "--select", "XT")
    out = result.stdout
    # the line in the rule, not the one inside the library that raised
    assert "a.yaml:1:1: AC000 internal-error [error] rule XT900 boom crashed at boom.py:12: ZeroDivisionError: " \
           "Fraction(1, 0)" in out
    assert "b.yaml:1:1: AC000 internal-error [error] rule XT900 boom" not in out
    assert "rule XT901 bad-yield yielded tuple ('not', 'a report'), not an archcheck.findings.Report" in out
    # the other rules still ran, on both files
    assert "a.yaml:4:5: XT101 wide-conv" in out and "b.yaml:4:5: XT101 wide-conv" in out
    assert "per-file-ignores" in out
    assert result.exit_code == 1


# -- dynamic rules ------------------------------------------------------------------------------------
def test_lint_runs_static_rules_only(project):
    """A dynamic rule (KIND = "dynamic") checks run records: lint neither runs it nor lists it in SARIF,
    and a suppression naming it is not reported as unused."""
    write_rule(project / "rules", "every_run", "XT850", "every-run", "yield Report(None, 'a run')")
    path = project / "rules" / "every_run.py"
    path.write_text(path.read_text().replace("SUMMARY =", "KIND = 'dynamic'\nSUMMARY ="))
    (project / "m.yaml").write_text(SPEC.replace("  - relu\n", "  - relu   # archcheck: ignore[every-run]\n", 1))
    result = lint("m.yaml")  # the test project selects XT and AC004
    assert "XT850" not in result.stdout and "XT101 wide-conv" in result.stdout and "AC004" not in result.stdout
    sarif = json.loads(lint("m.yaml", "--format", "sarif").stdout)
    assert "XT850" not in {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    listed = json.loads(CliRunner().invoke(main, ["rules", "--format", "json"]).stdout)
    assert {(r["code"], r["kind"]) for r in listed} >= {("XT850", "dynamic"), ("XT101", "static"),
                                                         ("AC801", "dynamic")}


def test_rule_kind_must_be_known(project):
    write_rule(project / "rules", "odd", "XT950", "odd", "yield from ()")
    path = project / "rules" / "odd.py"
    path.write_text(path.read_text() + "KIND = 'runtime'\n")
    result = lint("specs/good.yaml")
    assert result.exit_code == 2
    assert "KIND must be one of static, dynamic, received 'runtime'" in result.stderr


def test_rules_and_explain_show_the_dynamic_rules(project):
    plain = CliRunner().invoke(main, ["rules", "--format", "plain"]).stdout
    assert re.search(r"AC801  dead-relu +dynamic  warning  A ReLU layer outputs zero for most values of the batch\.  "
                     r"\[dead_share=0\.7\]", plain)
    assert re.search(r"XT101  wide-conv +static   warning", plain)
    result = CliRunner().invoke(main, ["explain", "dead-relu"])
    assert result.exit_code == 0
    assert result.stdout.startswith("AC801 dead-relu (default severity: warning; options: dead_share = 0.7; dynamic: "
                                    "checked by `archcheck run --grad`)\nA ReLU layer outputs zero for most values")
    assert "## Options\n- `dead_share` (default 0.7)" in result.stdout


# -- suppression comments ------------------------------------------------------------------------
SUPPRESSED = """\
input: [3, 32, 32]
blocks:
  wide:
    layers:
      - conv: {filters: 100, kernel: 3, padding: 1}
layers:
  - conv: {filters: 128, kernel: 3, padding: 1}   # archcheck: ignore[wide-conv]
  # archcheck: ignore[XT101, strided]

  - conv: {filters: 128, kernel: 3, stride: 2, padding: 1}
  - wide   # archcheck: ignore
  - wide
  - conv: {filters: 8, kernel: 3, padding: 1}   # archcheck: ignore[wide-conv]
  - conv: {filters: 8, kernel: 3, padding: 1}   # archcheck: ignore[wide-con]
  - conv: {filters: 8, kernel: 3, padding: 1}   # archcheck: ignroe[wide-conv]
  - globalavgpool
  - dense: 10
"""


def test_inline_suppressions_are_counted_and_unused_ones_reported(project):
    (project / "s.yaml").write_text(SUPPRESSED)
    result = lint("s.yaml")
    out = result.stdout
    assert "s.yaml:5:9: XT101 wide-conv [warning] layer 'wide_2.conv_1': 100 filters" in out  # line 12's use
    assert "= in the block used at line 12:5" in out
    assert "s.yaml:13:49: AC004 unused-suppression [warning] the suppression of XT101 wide-conv matches no " \
           "finding on line 13" in out
    assert "s.yaml:14:49: AC004 unused-suppression [warning] the suppression names an unknown rule 'wide-con' " \
           "(did you mean 'wide-conv'?)" in out
    assert "s.yaml:15:49: AC004 unused-suppression [warning] unknown directive 'archcheck: ignroe' " \
           "(did you mean 'ignore'?)" in out
    assert out.rstrip().endswith("4 findings (0 errors, 4 warnings, 0 info) in 1 file; 4 suppressed")


def test_suppression_counts_exactly(project):
    (project / "s.yaml").write_text(SUPPRESSED)
    data = json.loads(lint("s.yaml", "--format", "json").stdout)
    got = sorted((f["line"], f["code"]) for f in data["findings"])
    assert got == [(5, "XT101"), (13, "AC004"), (14, "AC004"), (15, "AC004")]
    # suppressed: line 7 wide-conv, line 10 wide-conv and strided, line 11's block conv (bare ignore)
    assert data["summary"]["suppressed"] == 4


def test_whole_file_suppression_and_rules_not_enabled(project):
    (project / "f.yaml").write_text("# archcheck: ignore-file[wide-conv]\n" + SPEC.replace(
        "  - relu\n", "  - relu   # archcheck: ignore[strided]\n", 1))
    data = json.loads(lint("f.yaml", "--format", "json").stdout)
    # wide-conv is suppressed file-wide; the misplaced strided suppression (line 5, finding on line 6) is unused
    assert [(f["line"], f["code"], f["message"]) for f in data["findings"]] == [
        (5, "AC004", "the suppression of XT102 strided matches no finding on line 5"),
        (6, "XT102", "stride 2, expected 1")]
    assert data["summary"]["suppressed"] == 1
    # a suppression of a rule that is not enabled is not reported as unused
    data = json.loads(lint("f.yaml", "--format", "json", "--select", "XT101,AC004").stdout)
    assert data["findings"] == [] and data["summary"]["suppressed"] == 1


def test_spec_errors_cannot_be_suppressed_or_ignored(project):
    (project / "e.yaml").write_text("# archcheck: ignore-file\ninput: [3, 4, 4]\nlayers:\n"
                                    "  - conv: {filters: 8, kernel: 7}   # archcheck: ignore\n")
    result = lint("e.yaml")
    assert "e.yaml:4:5: AC003 shape-error" in result.stdout and result.exit_code == 1
    result = lint("e.yaml", "--ignore", "shape-error")
    assert result.exit_code == 2
    assert "--ignore: AC003 shape-error cannot be ignored: it means the spec could not be checked" in result.stderr


# -- plugins ---------------------------------------------------------------------------------------
def _plugins(monkeypatch, tmp_path, *entries):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    eps = [EntryPoint(name, value, "archcheck.rules") for name, value in entries]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None, **kw: [e for e in eps
                                                                                     if e.group == group])
    return site


def test_plugin_rules_load_like_built_ins(project, monkeypatch):
    site = _plugins(monkeypatch, project, ("single", "xtplug_one"), ("pack", "xtplug_pack"))
    write_rule(site, "xtplug_one", "XP101", "plugin-dense", "for n in analysis.graph.order:\n"
               "    if n.type == 'dense':\n        yield Report(n, f'{n.layer.units} units')", severity="info")
    (site / "xtplug_pack").mkdir()
    (site / "xtplug_pack" / "__init__.py").write_text("")
    write_rule(site / "xtplug_pack", "relus", "XP201", "plugin-relu", "for n in analysis.graph.order:\n"
               "    if n.type == 'relu':\n        yield Report(n, 'a relu')")
    (project / "m.yaml").write_text(SPEC)
    got = sorted((f["code"], f["line"]) for f in findings("m.yaml", "--select", "XP"))
    assert got == [("XP101", 8), ("XP201", 4), ("XP201", 6)]
    listed = json.loads(CliRunner().invoke(main, ["rules", "--format", "json"]).stdout)
    assert {"code": "XP101", "slug": "plugin-dense", "kind": "static", "severity": "info",
            "summary": "Test rule plugin-dense.", "options": {},
            "origin": "plugin 'single = xtplug_one' (from an unknown package)"} in listed


def test_broken_plugin_is_a_clear_usage_error(project, monkeypatch):
    site = _plugins(monkeypatch, project, ("broken", "xtplug_broken"))
    (site / "xtplug_broken.py").write_text("import no_such_module_anywhere\n")
    (project / "m.yaml").write_text(SPEC)
    result = lint("m.yaml")
    assert result.exit_code == 2
    assert "archcheck: error: plugin 'broken = xtplug_broken' (from an unknown package) failed to load: " \
           "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in result.stderr
    assert "uninstall it" in result.stderr


def test_plugin_breaking_the_contract_is_named(project, monkeypatch):
    site = _plugins(monkeypatch, project, ("half", "xtplug_half"))
    (site / "xtplug_half.py").write_text("CODE = 'XP301'\nSLUG = 'half'\ndef check(a, o):\n    return []\n")
    result = lint("specs/good.yaml")
    assert result.exit_code == 2
    assert "plugin 'half = xtplug_half' (from an unknown package): the rule module 'xtplug_half' lacks SEVERITY, " \
           "OPTIONS, SUMMARY" in result.stderr


@pytest.mark.parametrize("attrs, message", [
    ("CODE = 'AC005'", "CODE AC005 is reserved for the engine (AC000-AC009)"),
    ("CODE = 'x1'", "CODE must be capital letters then digits like 'AC101', received 'x1'"),
    ("SEVERITY = 'fatal'", "SEVERITY must be one of info, warning, error, received 'fatal'"),
    ("SLUG = 'Bad_Slug'", "SLUG must be lower-case words joined by '-', received 'Bad_Slug'"),
    ("OPTIONS = [1]", "OPTIONS must be a dict of option names to defaults, received [1]"),
])
def test_custom_rule_contract_violations(project, attrs, message):
    write_rule(project / "rules", "odd", "XT950", "odd", "yield from ()")
    path = project / "rules" / "odd.py"
    path.write_text(path.read_text() + attrs + "\n")
    result = lint("specs/good.yaml")
    assert result.exit_code == 2
    assert "the rule module '" in result.stderr and message in result.stderr


def test_rules_with_the_same_code_or_slug_clash(project):
    write_rule(project / "rules", "again", "XT101", "again", "yield from ()")
    result = lint("specs/good.yaml")
    assert result.exit_code == 2
    assert "rule XT101 wide-conv clashes with rule XT101 again from custom rules in " in result.stderr


def test_custom_rule_that_fails_to_import(project):
    (project / "rules" / "typo.py").write_text("CODE = 'XT960'\ndef check(:\n")
    (project / "rules" / "raises.py").write_text("CODE = 'XT961'\n\nraise RuntimeError('no GPU here')\n")
    result = lint("specs/good.yaml")
    assert result.exit_code == 2
    assert re.search(r"cannot import the rule module '\S+\.raises' \(at \S+/rules/raises\.py:3\): RuntimeError: "
                     "no GPU here", result.stderr)
    (project / "rules" / "raises.py").unlink()
    result = lint("specs/good.yaml")
    assert re.search(r"cannot import the rule module '\S+\.typo' \(at \S+/rules/typo\.py:2\): SyntaxError",
                     result.stderr)


# -- paths -------------------------------------------------------------------------------------------
def test_directories_globs_and_duplicates(project):
    (project / "specs" / "deep" / ".hidden").mkdir(parents=True)
    (project / "specs" / "deep" / "c.yml").write_text(SPEC)
    (project / "specs" / "deep" / ".hidden" / "h.yaml").write_text("not: a spec\n")
    (project / "specs" / "notes.txt").write_text("not a spec")
    result = lint("specs", "specs/good.yaml", "--format", "json")
    files = sorted({f["file"] for f in json.loads(result.stdout)["findings"]})
    assert files == ["specs/broken.yaml", "specs/deep/c.yml", "specs/model.yaml"]
    assert json.loads(result.stdout)["summary"]["files_checked"] == 4  # good.yaml once
    result = lint("specs/*.yaml", "--format", "json")
    assert json.loads(result.stdout)["summary"]["files_checked"] == 3


def test_globs_and_walks_do_not_follow_symlinked_directories(project):
    # Two links back up make glob.glob's '**' visit 2**depth paths before the OS gives up.
    (project / "specs" / "loop").symlink_to(".")
    (project / "specs" / "deep").mkdir()
    (project / "specs" / "deep" / "up").symlink_to("..")
    (project / "specs" / "deep" / "c.yml").write_text(SPEC)
    for arg in ("specs/**/*.y*ml", str(project / "specs" / "**" / "*.y*ml"), "specs"):
        files = json.loads(lint(arg, "--format", "json").stdout)["findings"]
        assert sorted({Path(f["file"]).relative_to(project) if Path(f["file"]).is_absolute() else Path(f["file"])
                       for f in files}) == [Path("specs/broken.yaml"), Path("specs/deep/c.yml"),
                                            Path("specs/model.yaml")]


def test_exclude_applies_to_directory_walks(project):
    (project / "archcheck.toml").write_text('custom-rules = "rules"\nexclude = ["specs/broken.yaml"]\n')
    data = json.loads(lint("specs", "--format", "json", "--select", "XT").stdout)
    assert data["summary"]["files_checked"] == 2
    assert "broken" not in json.dumps(data["findings"])


@pytest.mark.parametrize("arg, message", [
    ("missing.yaml", "missing.yaml: no such file or directory"),
    ("empty", "empty: no spec files (*.yaml, *.yml, *.json) in this directory or below"),
    ("nothing*.yaml", "nothing*.yaml: no spec file matches this pattern"),
])
def test_paths_that_lead_nowhere_are_usage_errors(project, arg, message):
    (project / "empty").mkdir()
    (project / "empty" / "readme.txt").write_text("no specs here")
    result = lint(arg)
    assert result.exit_code == 2
    assert f"archcheck: error: {message}" in result.stderr


def test_no_paths_is_a_usage_error():
    result = lint()
    assert result.exit_code == 2 and "Missing argument 'PATH...'" in result.output


# -- rules and explain ------------------------------------------------------------------------------
def test_rules_lists_engine_and_custom_rules(project):
    out = CliRunner().invoke(main, ["rules", "--format", "plain"]).stdout
    assert "AC004  unused-suppression" in out
    assert "XT101  wide-conv" in out and "A convolution is wider than max_filters.  [max_filters=64]" in out
    listed = json.loads(CliRunner().invoke(main, ["rules", "--format", "json"]).stdout)
    codes = [r["code"] for r in listed]
    assert codes == sorted(codes) and {"AC000", "AC001", "AC002", "AC003", "XT101", "XT102"} <= set(codes)


def test_explain_prints_the_documentation(project):
    result = CliRunner().invoke(main, ["explain", "wide-conv"])
    assert result.exit_code == 0
    assert result.stdout.startswith("XT101 wide-conv (default severity: warning; options: max_filters = 64; "
                                    "from custom rules in ")
    assert "## Why is this bad?\nThe test project's target device is small." in result.stdout
    assert CliRunner().invoke(main, ["explain", "ac003"]).stdout.startswith(
        "AC003 shape-error (default severity: error)\nA layer cannot accept the shape that reaches it.")


def test_explain_unknown_rule_suggests(project):
    result = CliRunner().invoke(main, ["explain", "wide-cnv"])
    assert result.exit_code == 2
    assert "archcheck: error: unknown rule 'wide-cnv' (did you mean 'wide-conv'?)" in result.stderr


# -- the built-in catalogue and start-up ----------------------------------------------------------
def test_classic_samples_lint_without_errors():
    result = CliRunner().invoke(main, ["lint", "--no-config", "--format", "json", "--fail-on", "error",
                                       *(str(ROOT / "samples" / f"{n}.yaml") for n in
                                         ("vgg16", "resnet18", "resnet50", "alexnet", "googlenet", "mobilenetv2",
                                          "lenet5"))])
    data = json.loads(result.stdout)
    assert data["summary"]["by_severity"]["error"] == 0, data["findings"]
    assert result.exit_code == 0


def test_lint_does_not_import_numpy():
    code = ("import sys\nfrom archcheck.cli import main\n"
            "try:\n    main(['lint', '--no-config', 'samples'])\nexcept SystemExit:\n    pass\n"
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


# -- bounded work on hostile specs (issue 7) ------------------------------------------------------------
def _peak(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_strides_kernels_and_dilations_cost_nothing_extra(tmp_path):
    """Rule helpers work per layer, not per stride step (a list per step once took 1.6 GB)."""
    spec = tmp_path / "s.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n"
                    "  - conv: {filters: 4, kernel: 3, stride: 2147483647, padding: 1}\n"
                    "  - conv: {filters: 4, kernel: 1, stride: 100000000, dilation: 99999999}\n"
                    "  - convtranspose: {filters: 2, kernel: 3, stride: 100000000}\n")
    result = None

    def run():
        nonlocal result
        result = CliRunner().invoke(main, ["lint", "--no-config", "--format", "json", str(spec)])

    assert _peak(run) < 50 * 2**20
    assert result.exit_code == 1, result.output
    codes = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert {"uneven-stride-coverage", "strided-conv"} <= codes


@pytest.mark.parametrize("kernel, stride, dilation", [(k, s, d) for k in (1, 2, 3, 5, 7) for s in (1, 2, 3, 4, 6)
                                                      for d in (1, 2, 3)])
def test_coverage_counts_every_tap(kernel, stride, dilation):
    from archcheck.rules._walk import coverage

    taps = [0] * stride
    for j in range(kernel):
        taps[j * dilation % stride] += 1
    c = coverage(kernel, stride, dilation)
    assert (c.low, c.high, set(c.counts), c.read) == (min(taps), max(taps), set(taps),
                                                      sum(1 for t in taps if t) / stride)


def test_a_suppression_naming_150k_rules_is_answered_briefly(tmp_path):
    spec = tmp_path / "s.yaml"
    names = ",".join(f"rule{i}" for i in range(150_000))
    spec.write_text(f"input: [1, 8, 8]\nlayers:\n  - relu  # archcheck: ignore[{names}]\n")
    result = CliRunner().invoke(main, ["lint", "--no-config", "--format", "json", str(spec)])
    notes = [f["message"] for f in json.loads(result.stdout)["findings"] if f["rule"] == "unused-suppression"]
    assert len(notes) == 11
    assert notes[0].startswith("the suppression names an unknown rule 'rule0'")
    assert notes[-1] == "the suppression names 149,990 more unknown rules"


# -- the facts rules share: one memo per analysis and run (issue 8, item 6) ------------------------------
def _probe_plan(check):
    """A plan that runs one rule, ``check``, besides the engine's fixed codes."""
    from archcheck.lint import ENGINE, Plan, Rule
    from archcheck.lint.rule import FIXED

    rules = {**ENGINE, "XT900": Rule("XT900", "probe", "info", "A probe.", "", {}, check)}
    return Plan(rules, {"XT900", *FIXED}, {}, {code: {} for code in rules})


def test_analyses_linted_interleaved_keep_their_own_facts():
    """A run on B inside the run on A (a rule on A lints B), and runs that end out of order: each
    analysis's facts come from its own memo, worked out once per run. The module-global memo this
    replaces held one analysis at a time, so B's run threw away A's facts in the middle of A's."""
    from archcheck.lint import lint_file
    from archcheck.lint.memo import memo, memo_for
    from archcheck.pipeline import analyze
    from archcheck.rules._walk import used, window

    small, large = str(ROOT / "samples" / "lenet5.yaml"), str(ROOT / "samples" / "vgg16.yaml")
    seen = {}

    def check(analysis, options):
        first = used(analysis)
        if analysis.spec.file == small:
            assert lint_file(large, plan).findings == []  # B's whole run inside A's
        seen[analysis.spec.file] = first, used(analysis), memo(analysis)
        yield from ()

    plan = _probe_plan(check)
    assert lint_file(small, plan).findings == []  # the probe's asserts held (a failing one is an AC000)
    (a_first, a_again, a_memo), (b_first, b_again, b_memo) = seen[small], seen[large]
    assert a_again is a_first and b_again is b_first
    assert a_memo is not b_memo and a_memo["used"] is a_first
    for path, nodes in ((small, a_first), (large, b_first)):
        assert [n.name for n in nodes] == [n.name for n in used(analyze(path))]

    a, b = analyze(small), analyze(large)
    run_a, run_b = memo_for(a), memo_for(b)
    run_a.__enter__()
    run_b.__enter__()
    conv_a, conv_b = (next(n for n in used(x) if n.type == "conv") for x in (a, b))
    window_b = window(b, conv_b)
    assert window(a, conv_a) != window_b  # lenet5's 5x5 unpadded convolution, vgg16's 3x3 padded one
    run_a.__exit__(None, None, None)  # A's run ends while B's goes on
    assert memo(a) == {} and "_lint_memo" not in vars(a)
    assert window(b, conv_b) is window_b and memo(b)["used"] is used(b)
    run_b.__exit__(None, None, None)
    assert memo(b) == {} and "_lint_memo" not in vars(b)


def test_no_analysis_outlives_its_lint_run(monkeypatch):
    """Once `lint` returns, nothing holds an analysis it made: not the engine, not a rule module (the
    module-global memo in rules/_walk.py kept the last one alive)."""
    import gc
    import weakref

    import archcheck.pipeline

    made = []
    analyze = archcheck.pipeline.analyze

    def analyze_and_watch(path, *args, **kwargs):
        analysis = analyze(path, *args, **kwargs)
        made.append(weakref.ref(analysis))
        return analysis

    monkeypatch.setattr(archcheck.pipeline, "analyze", analyze_and_watch)
    samples = [str(ROOT / "samples" / f"{name}.yaml") for name in ("lenet5", "resnet18")]
    result = CliRunner().invoke(main, ["lint", "--no-config", "--format", "json", *samples])
    assert result.exit_code in (0, 1), result.output
    assert len(json.loads(result.stdout)["findings"]) > 0  # the rules ran, and asked the shared helpers
    gc.collect()
    assert len(made) == 2 and [ref() for ref in made] == [None, None]


# -- a spec with shape errors: the rules check the layers that fit -------------------------------------------

BROKEN_HEAD = """\
input: [3, 64, 64]
classes: 10
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2                          # pool-too-early: after one convolution
  - conv: {filters: 64, kernel: 3, padding: 1, bias: true}
  - batchnorm
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2                          # pool-near-output: only the (broken) dense follows
  - dense: 10                           # a feature map into a dense layer: a shape error
  - softmax
"""


def test_a_shape_error_in_the_head_does_not_hide_the_stem(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(BROKEN_HEAD)
    found = [(f["code"], f["layer"]) for f in findings(str(spec), "--no-config")]
    assert ("AC003", "dense_1") in found  # the shape error itself
    assert ("AC101", "maxpool_1") in found  # a layer-scope rule on the layers that fit
    assert ("AC702", "conv_2") not in found  # a path-scope rule: conv_2 is upstream of the broken dense
    assert ("AC102", "maxpool_2") not in found  # what follows maxpool_2 is unknown: no guess
    assert not any(code == "AC000" for code, _ in found)


def test_rules_that_need_the_whole_network_wait_for_the_fix(tmp_path):
    """dense-dominates needs the total parameter count; a custom rule that declares no SCOPE is skipped too,
    and one that declares `SCOPE = "layer"` runs on every layer that fits."""
    spec = tmp_path / "net.yaml"
    spec.write_text(BROKEN_HEAD)
    body = "for node in analysis.graph.order[1:]:\n    yield Report(node, 'seen')"
    write_rule(tmp_path / "rules", "unscoped", "ORG100", "unscoped", body)
    write_rule(tmp_path / "rules", "scoped", "ORG102", "scoped", body)
    path = tmp_path / "rules" / "scoped.py"
    path.write_text(path.read_text().replace("SUMMARY", "SCOPE = 'layer'\nSUMMARY"))
    (tmp_path / "archcheck.toml").write_text('custom-rules = "rules"\n')
    found = {(f["code"], f["layer"]) for f in findings(str(spec), "--config", str(tmp_path / "archcheck.toml"))}
    assert not any(code in ("AC502", "ORG100") for code, _ in found)
    assert {layer for code, layer in found if code == "ORG102"} == {
        "conv_1", "relu_1", "maxpool_1", "conv_2", "batchnorm_1", "relu_2", "conv_3", "relu_3", "maxpool_2"}


def test_a_suppression_of_a_rule_that_could_not_run_is_not_unused(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(BROKEN_HEAD.replace("  - maxpool: 2                          # pool-near-output",
                                        "  - maxpool: 2   # archcheck: ignore[pool-near-output]"))
    found = [(f["code"], f["layer"]) for f in findings(str(spec), "--no-config")]
    assert not any(code == "AC004" for code, _ in found)


def test_a_bad_scope_is_refused(tmp_path):
    write_rule(tmp_path / "rules", "badscope", "ORG101", "badscope", "yield from ()")
    path = tmp_path / "rules" / "badscope.py"
    path.write_text(path.read_text().replace("SUMMARY", "SCOPE = 'everywhere'\nSUMMARY"))
    (tmp_path / "archcheck.toml").write_text('custom-rules = "rules"\n')
    result = lint(str(ROOT / "samples" / "lenet5.yaml"), "--config", str(tmp_path / "archcheck.toml"))
    assert result.exit_code == 2
    assert "SCOPE must be one of layer, path, network, received 'everywhere'" in result.output
