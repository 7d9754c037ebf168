"""What the documentation promises: the exit-code contract holds for every command, and sources are
cited by titles a reader can look up."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcheck.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
GOOD = "input: [1, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, padding: 1}\n  - relu\n  - flatten\n  - dense: 2\n"
BAD = "input: [1, 8, 8]\nlayers:\n  - conv: {kernel: 3}\n"

# (command line, exit code, the README row it exercises); {good}/{bad}/{tmp} are filled in per test.
CASES = [
    ("summary {good}", 0), ("summary {bad}", 2), ("summary {good} --bogus", 2),
    ("lint {good} --fail-on error", 0), ("lint {bad} --fail-on error", 1), ("lint {bad} {good} --fail-on error", 1),
    ("lint {root}/samples/bad_pool_early.yaml --fail-on warning", 1), ("lint {tmp}/nothing-here", 2),
    ("lint {good} --fail-on bogus", 2),
    ("rules", 0), ("rules --format bogus", 2),
    ("explain AC101", 0), ("explain no-such-rule", 2),
    ("run {good}", 0), ("run {bad}", 2), ("run {good} --batch 0", 2),
    ("run {root}/samples/bad_sigmoid.yaml --grad", 1), ("run {good} --grad --fail-on error", 0),
    ("train {good} --steps 20", 0), ("train {bad}", 2),
    ("export {good} -o {tmp}/g.onnx", 0), ("export {bad} -o {tmp}/b.onnx", 2),
    ("report {good} -o {tmp}/g.html", 0), ("report {bad} -o {tmp}/b.html", 2), ("report {good}", 2),
    ("diff {good} {good}", 0), ("diff {root}/samples/lenet5.yaml {good}", 0), ("diff {good} {bad}", 2),
    ("diff {good}", 2), ("diff {good} {root}/samples/lenet5.yaml --fail-on-increase params", 1),
    ("diff {root}/samples/lenet5.yaml {good} --fail-on-increase params,macs,findings", 0),
    ("diff {good} {good} --fail-on-increase bogus", 2),
]


def _readme_codes() -> dict[str, set[str]]:
    """README's exit-code table: code -> the commands its last column names (`all` for every command)."""
    section = (ROOT / "README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            named = set(re.findall(r"`(\w+)", cells[2]))
            rows[cells[0]] = set(COMMANDS) if cells[2] == "all" else named
    return rows


@pytest.mark.parametrize("line,code", CASES, ids=[c[0].split(" {")[0] + f"->{c[1]}" for c in CASES])
def test_exit_codes_are_the_documented_ones(tmp_path, line, code):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    args = line.format(good=tmp_path / "good.yaml", bad=tmp_path / "bad.yaml", tmp=tmp_path, root=ROOT).split()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    if code:
        assert result.output.strip() or result.stderr.strip()  # a nonzero exit always says why
    table = _readme_codes()
    assert args[0] in table[str(code)], f"README's exit-code table does not list `{args[0]}` under {code}"


def test_every_code_of_the_contract_is_in_the_top_level_help():
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert "0 success" in text and "1 findings" in text and "2 invalid input" in text
    assert "3 internal error" in text
    assert set(_readme_codes()) == {"0", "1", "2", "3"}


SOURCE_FILE_NAME = re.compile(r"\bseed\s*0\d\d\b|\bseeds?/|[0-9a-f]{16}\.txt", re.I)


def _user_facing_texts():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        yield path.name, path.read_text()
    for code in re.findall(r"^(\w+)\s", CliRunner().invoke(main, ["rules", "--format", "plain"]).output, re.M):
        yield f"explain {code}", CliRunner().invoke(main, ["explain", code]).output


@pytest.mark.parametrize("where,text", list(_user_facing_texts()), ids=lambda v: v if len(v) < 40 else "")
def test_sources_are_cited_by_public_titles(where, text):
    """The design notes behind the rules are cited by title (the CS231n notes, the EVA wiki page), never by
    an internal file name a reader cannot look up."""
    assert not SOURCE_FILE_NAME.search(text), SOURCE_FILE_NAME.search(text).group(0)
