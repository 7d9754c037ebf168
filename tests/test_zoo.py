"""The zoo of published designs: every spec matches the totals published for its network.

Every spec under tests/zoo/designs/ is a published CNN whose `metadata.published` holds the reference
figures (their source is in the spec's header).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from archcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "zoo"
SPECS = sorted(p.relative_to(ROOT).as_posix() for p in (ZOO / "designs").glob("*.yaml"))
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


def run(*args) -> dict:
    result = CliRunner().invoke(main, [*map(str, args), "--format", "json"])
    assert "Traceback" not in result.output
    return json.loads(result.output)


def test_the_zoo_is_complete():
    assert len(SPECS) >= 20


def matches(published, value: int) -> bool:
    """An exact count, or a figure as published: "5.713 G" is `value` rounded to thousandths of 10**9."""
    if isinstance(published, int):
        return value == published
    number, unit = published.split()
    decimals = len(number.partition(".")[2])
    return round(value / UNITS[unit], decimals) == float(number)


@pytest.mark.parametrize("spec", SPECS)
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
    if "macs" in published:  # layers the publisher's count leaves out (an auxiliary head at inference)
        skipped = [layer["macs"] for layer in summary["layers"]
                   if any(fnmatch.fnmatchcase(layer["name"], p) for p in metadata.get("macs_exclude", []))]
        assert matches(published["macs"], totals["macs"] - sum(skipped)), (published, totals["macs"], sum(skipped))
