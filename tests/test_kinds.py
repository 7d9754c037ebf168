"""A new layer type meets every rule by declaring its kinds.

Every built-in type is swapped for a twin: the same class under a type name that no rule, executor
path or exporter has seen. Specs written with the old names then build twins, and lint must find
exactly what it found before. A rule that compares type names fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar  # noqa: F401  (resolves the twins' annotations)

import pytest
import yaml
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.layers import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))


def _fixture_specs(directory: Path) -> list[Path]:
    """Every static spec of the rules' fixture files (tests/rules/), written out as files."""
    out = []
    for fixture in sorted((ROOT / "tests" / "rules").glob("*.yaml")):
        for i, case in enumerate(yaml.safe_load(fixture.read_text())["cases"]):
            if "run" not in case:
                out.append(directory / f"{fixture.stem}_{i}.yaml")
                out[-1].write_text(case["spec"])
    return out


def _lint(paths) -> list[tuple]:
    result = CliRunner().invoke(main, ["lint", *map(str, paths), "--format", "json", "--no-config", "--select", "AC"])
    assert result.exit_code in (0, 1), result.output
    return sorted((f["file"], f["line"], f["column"], f["code"], f["severity"], f["layer"],
                   re.sub(r"twin_", "", f"{f['message']} {f['fix']}")) for f in json.loads(result.stdout)["findings"])


@pytest.fixture
def twins(monkeypatch):
    for name, cls in list(CATALOGUE.items()):
        twin = type(f"Twin{cls.__name__}", (cls,), {"__annotations__": {"type": "ClassVar[str]"},
                                                    "type": f"twin_{name}", "__module__": __name__})
        monkeypatch.setitem(CATALOGUE, name, twin)


def test_twins_of_every_layer_type_get_the_same_findings(request, tmp_path):
    specs = [*SAMPLES, *_fixture_specs(tmp_path)]
    before = _lint(specs)
    static = {p.stem for p in (ROOT / "tests" / "rules").glob("*.yaml") if p.stem < "AC800"}
    assert {f[3] for f in before} >= static  # every static rule fires somewhere
    request.getfixturevalue("twins")
    assert all(cls.type.startswith("twin_") for cls in CATALOGUE.values())
    assert _lint(specs) == before
