"""The zoo of published designs: their published totals, and exactly the findings lint reports on them.

Every spec under tests/zoo/designs/, and every sample under samples/ that has one, carries the published
figures in `metadata.published` (their source is in the spec's header). tests/zoo/expected.yaml lists, for
each design and for the reference samples (read in place), every finding lint reports today, each either
justified (`why`) or marked as a false warning (`false`). A rule change that adds, drops or moves a finding
fails here: a fix deletes its `false` entries, a new warning on a published design needs a reason to exist.
`python -m tests.test_zoo` prints the tally per rule code (justified / false, by severity).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from archcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "zoo"
EXPECTED = yaml.safe_load((ZOO / "expected.yaml").read_text())
SPECS = sorted(p.relative_to(ROOT).as_posix() for p in (ZOO / "designs").glob("*.yaml"))
# the designs, and the samples that state published figures
PUBLISHED = [*SPECS, *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "samples").glob("*.yaml"))
                       if "published" in (yaml.safe_load(p.read_text()).get("metadata") or {}))]
KINDS = ("why", "false")
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


def entries(design: str) -> list[dict]:
    """The design's entries; a `false:` key is YAML's boolean false, read back as the word."""
    return [{("false" if key is False else key): value for key, value in entry.items()} for entry in EXPECTED[design]]


def expectations(design: str) -> list[tuple[str, str, str, str]]:
    """(code, layer, kind, text) per listed finding."""
    rows = []
    for entry in entries(design):
        (kind,) = [k for k in KINDS if k in entry]
        layers = entry["layers"] if "layers" in entry else [entry["layer"]]
        rows += [(entry["code"], layer, kind, entry[kind]) for layer in layers]
    return rows


def run(*args) -> dict:
    result = CliRunner().invoke(main, [*map(str, args), "--format", "json"])
    assert "Traceback" not in result.output
    return json.loads(result.output)


def lint(design: str) -> list[dict]:
    return run("lint", ROOT / design, "--no-config")["findings"]


def test_the_zoo_is_complete():
    assert len(EXPECTED) >= 30 and len(PUBLISHED) >= 20
    assert {d for d in EXPECTED if d.startswith("tests/")} == set(SPECS), "every design needs its expectations"
    assert all((ROOT / d).is_file() for d in EXPECTED), "a key of expected.yaml names no spec"


@pytest.mark.parametrize("design", list(EXPECTED))
def test_expectations_are_well_formed(design):
    for entry in entries(design):
        assert re.fullmatch(r"AC\d{3}", entry["code"]), entry
        assert sum(k in entry for k in KINDS) == 1, f"{entry}: give exactly one of `why:` or `false:`"
        assert ("layer" in entry) != ("layers" in entry), f"{entry}: give `layer:` or `layers:`"
        text = entry["why" if "why" in entry else "false"]
        assert isinstance(text, str) and text.strip() and "\n" not in text, f"{entry}: the reason is one line"
        assert set(entry) <= {"code", "layer", "layers", *KINDS}, entry


@pytest.mark.parametrize("design", list(EXPECTED))
def test_findings_are_exactly_the_expected_ones(design):
    findings = lint(design)
    found = Counter((f["code"], f["layer"]) for f in findings)
    expected = Counter((code, layer) for code, layer, _, _ in expectations(design))
    new = [f"  {f['code']} {f['layer']}: {f['message']}" for f in findings
           if (f["code"], f["layer"]) in found - expected]
    gone = [f"  {code} {layer}" for code, layer in expected - found]
    assert found == expected, "\n".join([
        f"{design}: lint's findings differ from tests/zoo/expected.yaml",
        *(["new findings (justify them, or fix the rule):", *new] if new else []),
        *(["listed but no longer reported (delete them):", *gone] if gone else [])])


def matches(published, value: int) -> bool:
    """An exact count, or a figure as published: "5.713 G" is `value` rounded to thousandths of 10**9."""
    if isinstance(published, int):
        return value == published
    number, unit = published.split()
    decimals = len(number.partition(".")[2])
    return round(value / UNITS[unit], decimals) == float(number)


@pytest.mark.parametrize("spec", PUBLISHED)
def test_published_totals(spec):
    metadata = yaml.safe_load((ROOT / spec).read_text())["metadata"]
    published = metadata["published"]
    assert {"params", "params_with_buffers"} & set(published), "publish a parameter count"
    summary = run("summary", ROOT / spec)
    totals = summary["totals"]
    if "params" in published:
        assert matches(published["params"], totals["trainable_params"]), (published, totals["trainable_params"])
    if "params_with_buffers" in published:  # Keras counts batchnorm's moving statistics as parameters
        assert matches(published["params_with_buffers"], totals["params"]), (published, totals["params"])
    if "buffers" in published:  # PyTorch's buffers: batchnorm's running mean and variance
        assert matches(published["buffers"], totals["non_trainable_params"]), (published, totals)
    if "macs" in published:  # layers the publisher's count leaves out (an auxiliary head at inference)
        skipped = [layer["macs"] for layer in summary["layers"]
                   if any(fnmatch.fnmatchcase(layer["name"], p) for p in metadata.get("macs_exclude", []))]
        assert matches(published["macs"], totals["macs"] - sum(skipped)), (published, totals["macs"], sum(skipped))


def tally() -> str:
    """Findings on the zoo per rule code and severity: justified, false, and not listed at all."""
    rows: Counter = Counter()
    for design in EXPECTED:
        kinds = {(code, layer): kind for code, layer, kind, _ in expectations(design)}
        for f in lint(design):
            rows[f["code"], f["severity"], kinds.get((f["code"], f["layer"]), "unlisted")] += 1
    for (_, severity, kind), n in list(rows.items()):
        rows["all", severity, kind] += n
    lines = [f"{len(EXPECTED)} designs", f"{'code':6} {'severity':8} {'why':>5} {'false':>5} {'unlisted':>8}"]
    for code, severity in sorted({(c, s) for c, s, _ in rows}, key=lambda cs: (cs[0] == "all", cs)):
        why, false, unlisted = (rows[code, severity, kind] for kind in (*KINDS, "unlisted"))
        lines.append(f"{code:6} {severity:8} {why:5} {false:5} {unlisted:8}")
    return "\n".join(lines)


def _listed(line: str) -> str | None:
    """The layer a line of expected.yaml lists (`    layer: x` or `      - x`), else None."""
    if line.startswith("    layer: "):
        return line.split(":", 1)[1].strip()
    return line[len("      - "):].strip() if line.startswith("      - ") else None


def prune() -> int:
    """Delete from tests/zoo/expected.yaml the findings lint no longer reports (a fixed false warning),
    keeping every other line and comment; return how many went. It never adds: a new finding needs a
    reason written by hand."""
    path = ZOO / "expected.yaml"
    found = {design: {(f["code"], f["layer"]) for f in lint(design)} for design in EXPECTED}
    out: list[str] = []
    entry: list[str] = []  # the lines of one `  - code:` entry
    design, removed = None, 0

    def close() -> None:
        nonlocal removed
        code = entry[0].split(":", 1)[1].strip()
        kept = [ln for ln in entry if _listed(ln) is None or (code, _listed(ln)) in found[design]]
        removed += sum(_listed(ln) is not None for ln in entry) - sum(_listed(ln) is not None for ln in kept)
        if any(_listed(ln) is not None for ln in kept):
            out.extend(kept)
        entry.clear()

    for line in path.read_text().splitlines(keepends=True):
        if entry and (line.startswith("  - code:") or not line.startswith("    ")):
            close()
        if line.startswith("  - code:") or entry:
            entry.append(line)
            continue
        if line.strip() and not line.startswith((" ", "#")):
            design = line.rstrip().removesuffix(":")
        out.append(line)
    if entry:
        close()
    for i, line in enumerate(out):  # a design left with no entries lists none
        if line.endswith(":\n") and not line.startswith((" ", "#")) and not (
                i + 1 < len(out) and out[i + 1].startswith("  - ")):
            out[i] = line[:-2] + ": []\n"
    path.write_text("".join(out))
    return removed


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--prune"]:
        print(f"{prune()} findings no longer reported were deleted from tests/zoo/expected.yaml")
    print(tally())
