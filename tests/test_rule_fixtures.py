"""Every rule's cases, one fixture file per rule code: ``tests/rules/<CODE>.yaml``.

Each case is linted the way ``archcheck lint`` does it (the rule's default severity and options, the
case's ``options`` merged in as a configuration would) and its findings are compared in the order
lint reports them. A fixture file holds::

    rule: pool-too-early              # the slug of the file's code, checked
    cases:
      - name: a pool after one small convolution   # unique in the file; the test id
        spec: |                       # a complete spec; finding lines count from its first line
          input: [3, 32, 32]
          ...
        options: {min_span: 1000}     # optional: the rule's options, as under [rules.<slug>]
        budgets: {max-params: 10k}    # optional: the [budgets] table (the budget rules, AC9xx)
        select: [AC101, AC504]        # optional: the rules to run (default: the file's rule)
        run: {}                       # dynamic rules only: the run record, see below
        findings:                     # every finding, in lint's order; [] for a quiet case
          - code: AC101
            severity: warning
            layer: maxpool_1          # null for a finding on the whole spec (line 1)
            line: 5
            via: [9]                  # optional: the block use sites' lines; absent means none
            message: ...              # the exact message, and/or
            message_contains: [...]   # parts it must contain (at least one of the two)
            fix: ...                  # optional, exact; fix_contains: [...] optional parts

Every finding must also carry a fix of more than 10 characters. Reuse a spec within a file with a
YAML anchor (``spec: &net |`` ... ``spec: *net``).

A dynamic rule (``KIND = "dynamic"``) checks a run record instead of the spec's analysis; its
cases give ``run``, a record of the spec on a batch of 2 that is healthy except where told:
``stats: {layer: {field: value}}`` (fields of ``archcheck.executor.LayerStats``: ``zeros``,
``saturated``, ``nan``, ``inf``, ``dead_units``), ``norms: {array: gradient norm}``, ``bad: [arrays whose
gradient is not finite]`` and ``loss`` (default 1.0). The healthy gradient norms (``HEALTHY_NORMS``) are
those of the small network every dynamic fixture uses (two 3x3 convolutions and a dense layer).

Every built-in rule has a fixture file with at least one case that triggers it and one quiet case.
What a static file cannot hold stays in Python, in tests/test_rules.py: the module contract, the
docs' examples, the samples, option validation, and the dynamic rules' documented examples, which
need the executor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from archcheck.budgets import parse as parse_budgets
from archcheck.config import Config
from archcheck.lint import Rule, check_run, lint_file, load_rules, make_plan

FIXTURES = Path(__file__).parent / "rules"
RULES = load_rules()
BUILT_IN = {code: rule for code, rule in RULES.items() if rule.origin == "built-in" and rule.check}  # not the engine's

CASE_KEYS = {"name", "spec", "options", "budgets", "select", "run", "findings"}
FINDING_KEYS = {"code", "severity", "layer", "line", "via", "message", "message_contains", "fix", "fix_contains"}
RUN_KEYS = {"stats", "norms", "bad", "loss"}
# the healthy run record: ReLU half zero, sigmoid 10% saturated, gradient norms alike from first to last
HEALTHY_STATS = {"relu": {"zeros": 0.5}, "sigmoid": {"saturated": 0.1}}
HEALTHY_NORMS = {"conv_1.weight": 1.0, "conv_1.bias": 0.5, "conv_2.weight": 1.0, "conv_2.bias": 0.5,
                 "dense_1.weight": 2.0, "dense_1.bias": 0.5}


def _load(path: Path) -> tuple[str, Rule, list[dict]]:
    """(code, rule, cases) of a fixture file, its keys checked so a misspelt one cannot go unnoticed."""
    code = path.stem
    data = yaml.safe_load(path.read_text())
    where = path.relative_to(FIXTURES.parent)
    assert code in BUILT_IN, f"{where}: no built-in rule has the code {code}"
    rule = BUILT_IN[code]
    assert set(data) == {"rule", "cases"}, f"{where}: the keys are rule and cases, found {sorted(data)}"
    assert data["rule"] == rule.slug, f"{where}: rule {code} is {rule.slug}, the file says {data['rule']}"
    names = [case.get("name") for case in data["cases"]]
    assert len(set(names)) == len(names), f"{where}: case names repeat"
    for case in data["cases"]:
        at = f"{where}, case {case.get('name')!r}"
        assert {"name", "spec", "findings"} <= set(case) <= CASE_KEYS, f"{at}: keys {sorted(case)}"
        assert ("run" in case) == (rule.kind == "dynamic"), f"{at}: `run` is for (and needed by) dynamic rules"
        assert set(case.get("run") or {}) <= RUN_KEYS, f"{at}: run keys {sorted(case['run'])}"
        for f in case["findings"]:
            assert {"code", "severity", "layer", "line"} <= set(f) <= FINDING_KEYS, f"{at}: finding keys {sorted(f)}"
            assert "message" in f or "message_contains" in f, f"{at}: say what the message holds"
    return code, rule, data["cases"]


FILES = [_load(path) for path in sorted(FIXTURES.glob("*.yaml"))]
CASES = [pytest.param(rule, case, id=f"{code}-{case['name']}") for code, rule, cases in FILES for case in cases]


def _record(analysis, run: dict):
    """The run record of ``analysis`` on a batch of 2: healthy, except what ``run`` says."""
    from archcheck.executor import LayerStats, Run

    given = run.get("stats", {})
    assert set(given) <= set(analysis.layers), f"no such layers: {set(given) - set(analysis.layers)}"
    stats = {}
    for node in analysis.graph.order:
        shape = (2, *analysis.layers[node.name].shape)
        fields = {"zeros": 0.0, "saturated": None, "nan": 0, "inf": 0, **HEALTHY_STATS.get(node.type, {}),
                  **given.get(node.name, {})}
        stats[node.name] = LayerStats(node.name, node.type, shape, 0.1, 1.0, fields.pop("zeros"),
                                      fields.pop("saturated"), fields.pop("nan"), fields.pop("inf"), 0.001,
                                      units=shape[1], **fields)
    norms = {**HEALTHY_NORMS, **run.get("norms", {})}
    assert set(norms) == set(HEALTHY_NORMS) >= set(run.get("bad", ())), "arrays of the fixtures' network only"
    assert all(isinstance(v, (int, float)) for v in norms.values()), "norms are numbers (YAML: 5.0e-5, not 5e-5)"
    return Run(analysis, stats, run.get("loss", 1.0), norms, {name: name not in run.get("bad", ()) for name in norms})


def _lint(rule, case: dict, path: Path):
    path.write_text(case["spec"])
    cfg = Config(select=case.get("select", [rule.code]), rules={rule.code: case.get("options", {})})
    cfg.budgets = parse_budgets(case.get("budgets", {}), cfg)
    plan = make_plan(cfg, RULES, kind=rule.kind)
    if rule.kind == "dynamic":
        from archcheck.pipeline import analyze

        return check_run(_record(analyze(path), case["run"]), plan).findings
    return lint_file(str(path), plan).findings


@pytest.mark.parametrize("rule, case", CASES)
def test_fixture(rule, case, tmp_path):
    findings = _lint(rule, case, tmp_path / "spec.yaml")
    got = [(f.code, f.severity, f.layer, f.loc.line, [u.line for u in f.loc.via]) for f in findings]
    expected = [(e["code"], e["severity"], e["layer"], e["line"], e.get("via", [])) for e in case["findings"]]
    assert got == expected, "\n".join(f"{f.code} {f.layer}:{f.loc.line}: {f.message}" for f in findings)
    for f, e in zip(findings, case["findings"]):
        assert f.message == e.get("message", f.message)
        for part in e.get("message_contains", []):
            assert part in f.message
        assert f.fix and len(f.fix) > 10
        assert f.fix == e.get("fix", f.fix)
        for part in e.get("fix_contains", []):
            assert part in f.fix


@pytest.mark.parametrize("code", sorted(BUILT_IN))
def test_every_rule_has_a_fixture(code):
    """A rule without a fixture file, or without a case that triggers it and one that does not, fails here."""
    assert (FIXTURES / f"{code}.yaml").is_file(), f"add tests/rules/{code}.yaml: a spec that triggers the rule, " \
                                                  "one that does not, and the findings expected"
    cases = next(cases for c, _, cases in FILES if c == code)
    assert any(any(f["code"] == code for f in case["findings"]) for case in cases), "no case triggers the rule"
    assert any(not case["findings"] and "options" not in case and "budgets" not in case for case in cases), \
        "no quiet case with the defaults"
