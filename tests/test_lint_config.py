"""Lint configuration: where it is found, what overrides what, and the text of every kind of error
(a broken configuration is exit 2 with the file, the key and the fix; never ignored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcheck.cli import main

DATA = Path(__file__).parent / "data" / "lint"
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


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The test rules in tmp/rules, a spec at tmp/m.yaml and tmp/sub/n.yaml; no configuration yet."""
    shutil.copytree(DATA / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "m.yaml").write_text(SPEC)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "n.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(*args):
    return CliRunner().invoke(main, ["lint", *args])


def codes(*args) -> list[str]:
    result = lint("--format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return sorted(f["code"] for f in json.loads(result.stdout)["findings"])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- discovery -----------------------------------------------------------------------------------
def test_archcheck_toml_is_found_walking_up(project):
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["wide-conv"]\n')
    assert codes("sub/n.yaml") == ["XT101"]


def test_nearest_configuration_wins(project):
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["wide-conv"]\n')
    write(project / "sub" / "archcheck.toml", 'custom-rules = "../rules"\nselect = ["strided"]\n')
    assert codes("sub/n.yaml") == ["XT102"]
    assert codes("m.yaml") == ["XT101"]


def test_pyproject_table_and_precedence_in_one_directory(project):
    write(project / "pyproject.toml", '[project]\nname = "x"\n\n[tool.archcheck]\ncustom-rules = "rules"\n'
                                      'select = ["XT102"]\n')
    assert codes("m.yaml") == ["XT102"]
    # a pyproject.toml without [tool.archcheck] is passed over on the way up
    write(project / "sub" / "pyproject.toml", '[project]\nname = "y"\n')
    assert codes("sub/n.yaml") == ["XT102"]
    # archcheck.toml wins over pyproject.toml in the same directory
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["XT101"]\n')
    assert codes("m.yaml") == ["XT101"]


def test_explicit_config_and_no_config(project):
    write(project / "archcheck.toml", 'select = ["nothing-like-this"]\n')  # would fail if read
    cfg = write(project / "other.toml", 'custom-rules = "rules"\nselect = ["XT101"]\n')
    assert codes("m.yaml", "--config", str(cfg)) == ["XT101"]
    result = lint("m.yaml", "--no-config", "--format", "json")
    assert result.exit_code == 0 or result.exit_code == 1  # built-in rules only
    assert "XT1" not in result.stdout


# -- command line overrides ------------------------------------------------------------------------
def test_command_line_overrides_configuration(project):
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["XT101"]\nfail-on = "error"\n'
                                      'format = "json"\nignore = ["strided"]\n')
    result = lint("m.yaml")
    assert result.exit_code == 0  # a warning, but fail-on = error
    assert json.loads(result.stdout)["findings"][0]["code"] == "XT101"  # format = json
    assert lint("m.yaml", "--fail-on", "warning").exit_code == 1
    assert lint("m.yaml", "--format", "text").stdout.startswith("m.yaml:3:5: XT101 wide-conv")
    assert codes("--select", "XT", "m.yaml") == ["XT101"]  # the configuration's ignore still applies
    assert codes("--select", "XT", "--ignore", "XT101", "m.yaml") == ["XT102"]  # --ignore replaces it


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text, message", [
    ("archcheck.toml", "selct = ['AC1']\n",
     "archcheck.toml: key 'selct': unknown key (did you mean 'select'?)\n  = fix: the keys are: select, ignore, "),
    ("pyproject.toml", "[tool.archcheck]\nfail_on = 'error'\n",
     "pyproject.toml: key 'tool.archcheck.fail_on': unknown key (did you mean 'fail-on'?)"),
    ("archcheck.toml", "select = 'AC1'\n",
     "archcheck.toml: key 'select': must be an array, received 'AC1'\n  = fix: write `select = [\"AC1\", "
     "\"strided-conv\"]`"),
    ("archcheck.toml", "select = [1]\n", "archcheck.toml: key 'select': entries must be strings, received 1"),
    ("archcheck.toml", "fail-on = 'warn'\n",
     "archcheck.toml: key 'fail-on': must be one of info, warning, error, received 'warn' (did you mean 'warning'?)"),
    ("archcheck.toml", "format = 'sarif2'\n", "archcheck.toml: key 'format': must be one of auto, text, json, "
     "sarif, github, markdown, received 'sarif2' (did you mean 'sarif'?)"),
    ("archcheck.toml", "[severity]\nwide-conv = 'fatal'\n",
     "archcheck.toml: key 'severity.wide-conv': must be one of info, warning, error, received 'fatal'"),
    ("archcheck.toml", "select = [\n", "archcheck.toml: invalid TOML: "),
    ("archcheck.toml", "custom-rules = 'nowhere'\n",
     "archcheck.toml: key 'custom-rules': 'nowhere' is not a directory"),
    ("archcheck.toml", "[per-file-ignores]\n'a.yaml' = 'AC1'\n",
     "archcheck.toml: key 'per-file-ignores.a.yaml': entries must be arrays, received 'AC1'"),
])
def test_broken_configuration_names_file_and_key(project, name, text, message):
    write(project / name, text)
    result = lint("m.yaml")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("archcheck: error: ")
    assert message in result.stderr


@pytest.mark.parametrize("text, message", [
    ("select = ['XT1O1']\n", "archcheck.toml: key 'select': unknown rule 'XT1O1' (did you mean 'XT101'?)"),
    ("ignore = ['wide-cnov']\n", "archcheck.toml: key 'ignore': unknown rule 'wide-cnov' (did you mean "
     "'wide-conv'?)"),
    ("[severity]\nstrided-conf = 'info'\n", "key 'severity.strided-conf': unknown rule 'strided-conf'"),
    ("[rules.wide-conv]\nmax_filter = 3\n", "archcheck.toml: key 'rules.wide-conv.max_filter': rule XT101 "
     "wide-conv has no option 'max_filter' (did you mean 'max_filters'?)\n  = fix: its options are: max_filters"),
    ("[rules.wide-conv]\nmax_filters = 'many'\n", "archcheck.toml: key 'rules.wide-conv.max_filters': must be a "
     "whole number (default 64), received 'many'\n  = fix: write `max_filters = 64`"),
    ("[rules.wide-conv]\nmax_filters = true\n", "must be a whole number (default 64), received True"),
    ("[rules.wide-conf]\nmax_filters = 3\n", "archcheck.toml: key 'rules.wide-conf': unknown rule 'wide-conf' "
     "(did you mean 'wide-conv'?)"),
    ("[rules.strided]\nanything = 1\n", "rule XT102 strided has no option 'anything'\n  = fix: its options are: "
     "none"),
    ("[per-file-ignores]\n'*.yaml' = ['invalid-yaml']\n", "archcheck.toml: key 'per-file-ignores.*.yaml': AC001 "
     "invalid-yaml cannot be ignored"),
])
def test_configuration_naming_unknown_rules_or_options(project, text, message):
    write(project / "archcheck.toml", 'custom-rules = "rules"\n' + text)
    result = lint("m.yaml")
    assert result.exit_code == 2
    assert message in result.stderr


def test_command_line_unknown_rule(project):
    result = lint("m.yaml", "--no-config", "--select", "wide-conv")
    assert result.exit_code == 2
    assert "archcheck: error: --select: unknown rule 'wide-conv'" in result.stderr


def test_missing_config_file_and_pyproject_without_table(project):
    result = lint("m.yaml", "--config", "nope.toml")
    assert result.exit_code == 2 and "nope.toml: no such configuration file" in result.stderr
    write(project / "pyproject.toml", "[project]\nname = 'x'\n")
    result = lint("m.yaml", "--config", "pyproject.toml")
    assert result.exit_code == 2 and "pyproject.toml: there is no [tool.archcheck] table" in result.stderr


def test_float_option_accepts_integers(project):
    write(project / "rules" / "ratio.py", '"""Ratio test rule."""\nfrom archcheck.findings import Report\n'
          "CODE = 'XT110'\nSLUG = 'ratio'\nSEVERITY = 'info'\nOPTIONS = {'share': 0.5}\nSUMMARY = 'Ratio.'\n"
          "def check(analysis, options):\n    yield Report(None, f\"share {options['share']!r}\")\n")
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["ratio"]\n[rules.XT110]\nshare = 1\n')
    data = json.loads(lint("m.yaml", "--format", "json").stdout)
    assert [(f["message"], f["line"], f["layer"]) for f in data["findings"]] == [("share 1.0", 1, None)]



@pytest.mark.parametrize("table, message", [
    ("[tool.archcheck.rules.pool-window]\nallowed = [2, 2]\n",
     "pyproject.toml: key 'tool.archcheck.rules.pool-window.allowed': rule AC103 pool-window expects [window, "
     "stride] pairs of whole numbers of at least 1, such as [[2, 2], [3, 2]], received [2, 2]\n"
     "  = fix: write e.g. `allowed = [[2, 2], [3, 2]]` (the default)"),
    ("[tool.archcheck.rules.final-map-size]\nfactor = 0\n",
     "pyproject.toml: key 'tool.archcheck.rules.final-map-size.factor': rule AC209 final-map-size expects a factor "
     "of at least 1 (1 accepts only `target` itself), received 0\n  = fix: write e.g. `factor = 2.0` (the default)"),
    # nan compares false with every number, so the rule would never fire; inf is no threshold either
    ("[tool.archcheck.rules.final-map-size]\nfactor = nan\n",
     "pyproject.toml: key 'tool.archcheck.rules.final-map-size.factor': must be a finite number (default 2.0), "
     "received nan\n  = fix: write `factor = 2.0`"),
    ("[tool.archcheck.rules.high-dropout]\nmax_rate = -inf\n",
     "key 'tool.archcheck.rules.high-dropout.max_rate': must be a finite number (default 0.5), received -inf"),
    ("[tool.archcheck.rules.non-power-of-two-channels]\nmultiple = 0\n",
     "pyproject.toml: key 'tool.archcheck.rules.non-power-of-two-channels.multiple': rule AC301 "
     "non-power-of-two-channels expects a channel count of at least 1, received 0\n"
     "  = fix: write e.g. `multiple = 8` (the default)"),
])
def test_out_of_range_option_is_a_configuration_error(project, table, message):
    write(project / "pyproject.toml", "[tool.archcheck]\n" + table)
    result = lint("m.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.stderr


SHARE_RULE = ('"""Share test rule."""\nfrom archcheck.findings import Report\n'
              "CODE = 'XT111'\nSLUG = 'share'\nSEVERITY = 'info'\nOPTIONS = {'share': 0.5}\nSUMMARY = 'Share.'\n"
              "def validate(options):\n{body}\n"
              "def check(analysis, options):\n    yield Report(None, f\"share {options['share']!r}\")\n")
SHARE_AT_MOST_1 = "    if options['share'] > 1:\n        raise ValueError('share', 'at most 1')"


def share_project(project, body: str, select: str = "share", share: int = 2) -> None:
    write(project / "rules" / "share.py", SHARE_RULE.replace("{body}", body))
    write(project / "archcheck.toml",
          f'custom-rules = "rules"\nselect = ["{select}"]\n[rules.share]\nshare = {share}\n')


def test_custom_rule_validate_is_honoured(project):
    share_project(project, SHARE_AT_MOST_1)
    result = lint("m.yaml")
    assert result.exit_code == 2
    assert ("archcheck.toml: key 'rules.share.share': rule XT111 share expects at most 1, received 2\n"
            "  = fix: write e.g. `share = 0.5` (the default)") in result.stderr
    share_project(project, SHARE_AT_MOST_1, share=1)
    assert codes("m.yaml") == ["XT111"]
    share_project(project, SHARE_AT_MOST_1, select="XT101")  # a rule that is not enabled is not validated
    assert lint("m.yaml").exit_code in (0, 1)


@pytest.mark.parametrize("body, message", [
    ("    raise ValueError('share must not exceed 1')",
     "archcheck.toml: key 'rules.share': rule XT111 share rejects its options: share must not exceed 1\n"
     "  = fix: fix the values under `[rules.share]`"),
    ("    return 1 / 0", "rules: the validate function of rule XT111 share crashed (at "),
    ("    return 1 / 0", "share.py:9): ZeroDivisionError: division by zero\n  = fix: fix the module at that line"),
])
def test_custom_rule_validate_without_a_key_or_crashing(project, body, message):
    share_project(project, body)
    result = lint("m.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.stderr


def test_custom_rule_validate_must_be_callable(project):
    share_project(project, "    pass")
    path = project / "rules" / "share.py"
    path.write_text(path.read_text().replace("def validate(options):\n    pass", "validate = 3"))
    result = lint("m.yaml")
    assert result.exit_code == 2 and "validate must be a function validate(options), received 3" in result.stderr

# -- the documentation's examples ------------------------------------------------------------------
DOCS = (Path(__file__).resolve().parent.parent / "docs" / "lint.md").read_text()


def _block(after: str, fence: str) -> str:
    """The first code block opened by ``fence`` after the text ``after``."""
    ticks = fence[:len(fence) - len(fence.lstrip("`"))]
    start = DOCS.index(fence, DOCS.index(after)) + len(fence)
    return DOCS[start:DOCS.index("\n" + ticks + "\n", start) + 1]


def test_documented_configuration_is_valid(project):
    (project / "tools" / "archcheck_rules").mkdir(parents=True)
    write(project / "archcheck.toml", _block("### `archcheck.toml`", "```toml\n"))
    result = lint("m.yaml")
    assert result.exit_code in (0, 1), result.stderr
    (project / "archcheck.toml").unlink()
    write(project / "pyproject.toml", _block("### `pyproject.toml`", "```toml\n"))
    result = lint("m.yaml")
    assert result.exit_code in (0, 1), result.stderr


def test_documented_custom_rule_works(project):
    rules = project / "tools" / "archcheck_rules"
    rules.mkdir(parents=True)
    write(rules / "weight_buffer.py", _block("A complete example", "````python\n"))
    write(project / "archcheck.toml", 'custom-rules = "tools/archcheck_rules"\nselect = ["ORG"]\n'
                                      "[rules.layer-over-weight-buffer]\nmax_layer_params = 5_000\n")
    data = json.loads(lint("m.yaml", "--format", "json").stdout)
    # conv_1 3*9*128+128 = 3,584; conv_2 128*9*8+8 = 9,224; dense 8*10+10 = 90
    assert [(f["code"], f["layer"], f["line"]) for f in data["findings"]] == [("ORG101", "conv_2", 5)]
    assert data["findings"][0]["message"] == ("holds 9,224 weights, 4,224 more than the buffer's 5,000: it runs in 2 "
                                              "tiles streamed from DRAM")
    write(project / "archcheck.toml", 'custom-rules = "tools/archcheck_rules"\n[rules.ORG101]\nmax_layer_params = 0\n')
    result = lint("m.yaml")
    assert result.exit_code == 2
    assert ("archcheck.toml: key 'rules.ORG101.max_layer_params': rule ORG101 layer-over-weight-buffer expects a "
            "parameter count of at least 1, received 0") in result.stderr
    explained = CliRunner().invoke(main, ["explain", "ORG101"]).stdout
    assert "## Why is this bad?\nOur NPU keeps at most `max_layer_params` weights of one layer on chip" in explained


# -- hostile configurations and the trust model (issue 7) ------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("select = " + "[" * 5000 + "]" * 5000 + "\n",
     "archcheck.toml: invalid TOML: arrays or tables nest too deeply\n  = fix: a configuration needs two levels"),
    ("[per-file-ignores]\n'[' = ['AC1']\n",
     "archcheck.toml: key 'per-file-ignores.[': the pattern '[' opens a '[' at position 1 that is never closed\n"
     "  = fix: write a glob such as `experiments/*.yaml`; `[[]` matches a literal '['"),
    ("exclude = ['models/[ab.yaml']\n", "archcheck.toml: key 'exclude': the pattern 'models/[ab.yaml' opens a '['"),
    ("exclude = ['']\n", "archcheck.toml: key 'exclude': the pattern '' is empty"),
])
def test_hostile_configuration_is_a_clear_usage_error(project, text, message):
    write(project / "archcheck.toml", text)
    result = lint("m.yaml")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "internal error" not in result.output


def test_valid_bracket_globs_are_accepted(project):
    write(project / "archcheck.toml", "exclude = ['[!m].yaml', '[]]x.yaml', 'a[[]b.yaml']\n")
    assert lint("m.yaml").exit_code in (0, 1)


def test_configuration_that_is_not_a_regular_file(project):
    import os

    os.mkfifo(project / "archcheck.toml")  # would block a reader forever
    result = lint("--config", "archcheck.toml", "m.yaml")
    assert result.exit_code == 2
    assert ("archcheck.toml: cannot use the configuration: archcheck.toml is a named pipe (FIFO), not a regular "
            "file") in result.stderr


def test_discovery_stops_at_the_project_root(project):
    """A configuration above the checkout (the first directory holding .git) is not read: it could
    name custom rules, which run code."""
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["wide-conv"]\n')
    (project / "sub" / ".git").mkdir()
    result = lint("--format", "json", "sub/n.yaml")
    assert "XT101" not in result.stdout
    assert codes("m.yaml") == ["XT101"]  # from the directory that holds it, it is found


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_custom_rules_imports_nothing_from_the_checkout(project, how, monkeypatch):
    write(project / "rules" / "boom.py", "raise SystemExit('custom rule code ran')\n")
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["AC1", "wide-conv"]\n'
                                      '[severity]\nXT101 = "error"\n[rules.wide-conv]\nmax_filters = 4\n')
    args = ["--no-custom-rules"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("ARCHCHECK_NO_CUSTOM_RULES", "1")
    for command in (["lint", *args, "m.yaml"], ["rules", *args], ["explain", *args, "AC101"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code in (0, 1), result.output  # the configuration's custom names stay unresolved
        assert "custom rule code ran" not in result.output and "XT101" not in result.stdout
    assert not (project / "rules" / "__pycache__").exists()


def test_custom_rules_leave_no_bytecode_in_the_checkout(project):
    write(project / "archcheck.toml", 'custom-rules = "rules"\nselect = ["wide-conv"]\n')
    assert codes("m.yaml") == ["XT101"]
    assert not (project / "rules" / "__pycache__").exists()


def test_no_config_and_config_on_every_command_that_reads_it(project):
    write(project / "archcheck.toml", "selct = 1\n")  # broken: read means exit 2
    for command in (["rules"], ["explain", "AC101"], ["run", "m.yaml", "--grad"]):
        assert CliRunner().invoke(main, command).exit_code == 2
        assert CliRunner().invoke(main, [*command, "--no-config"]).exit_code in (0, 1)
