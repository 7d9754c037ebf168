"""Running the rules: every active rule over each spec (or a run record), each isolated so that a
crash is a finding (AC000) and one file's trouble is that file's finding; spec problems become
AC001-AC003; then the suppression comments apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from archcheck.errors import Loc
from archcheck.findings import SEVERITIES, Finding, Report
from archcheck.lint.memo import memo_for
from archcheck.lint.plan import Plan
from archcheck.lint.rule import ENGINE, PROBLEM_CODES, Rule
from archcheck.lint.suppress import suppress


@dataclass
class Result:
    findings: list[Finding]
    suppressed: int = 0


def fails(findings: list[Finding], threshold: str) -> bool:
    """Whether a finding reaches ``threshold`` (a severity: `fail-on`), so the command exits 1."""
    return any(SEVERITIES.index(f.severity) >= SEVERITIES.index(threshold) for f in findings)


def _order(f: Finding):
    return (f.loc.line, f.loc.col, f.code) if f.loc else (0, 0, f.code)


def lint_file(path: str, plan: Plan) -> Result:
    """Check one spec: every active rule's findings less the suppressed ones; its spec problems instead when
    it cannot be analysed, and with them when only shapes are wrong (the rules check the layers that fit)."""
    from archcheck.errors import SpecError
    from archcheck.importers import ImportProblem
    from archcheck.pipeline import analyze

    try:
        analysis = analyze(path)
    except ImportProblem as exc:  # a model file that cannot be imported: one finding, all its problems in it
        message = exc.message.replace(":\n  ", ": ").replace("\n  ", "; ")  # a finding is one line
        return Result([Finding("AC002", ENGINE["AC002"].slug, "error", message, Loc(path, 0, 0), None, exc.fix)])
    except SpecError as exc:
        findings = []
        for p in exc.problems:
            code = PROBLEM_CODES.get(p.code, "AC002")
            findings.append(Finding(code, ENGINE[code].slug, "error", p.message, p.loc or Loc(path, 1, 1), p.layer,
                                    p.fix))
        if exc.partial is None:
            return Result(sorted(findings, key=_order))
        with memo_for(exc.partial):  # shape errors: the rules still check the layers that fit
            result = _check(exc.partial, path, plan)
        return Result(sorted(findings + result.findings, key=_order), result.suppressed)
    with memo_for(analysis):  # the facts its rules share, for this run only
        return _check(analysis, path, plan)


def lint_analysis(analysis, plan: Plan, text: str | None, stands_for: str) -> Result:
    """The findings on a spec analysed already (``archcheck diff`` analyses each side once), which may have
    been read from elsewhere than its file (a git revision, standard input): ``text`` is the spec's, for its
    suppression comments (empty for a model file; None: read the file), ``stands_for`` the file it is in
    the checkout, whose ``per-file-ignores`` apply. Messages name ``analysis.spec.file``."""
    with memo_for(analysis):
        return _check(analysis, analysis.spec.file, plan, text, stands_for)


def check_run(run, plan: Plan) -> Result:
    """The dynamic rules' findings on a run record (``archcheck.executor.Run``) of the spec
    ``run.analysis.spec.file``, less the suppressed ones; ``plan`` made with ``kind="dynamic"``."""
    with memo_for(run.analysis):
        return _check(run, run.analysis.spec.file, plan)


def _check(subject, path: str, plan: Plan, text: str | None = None, stands_for: str | None = None) -> Result:
    """Every active rule's findings on ``subject`` (an Analysis or a run record), less the suppressed ones.
    On a partial analysis (a spec with shape errors) each rule runs as its ``scope`` allows. ``text`` and
    ``stands_for``: as for ``lint_analysis``, for a spec not read from ``path``."""
    active = plan.active(stands_for or path)
    cut = getattr(subject, "before_broken", None) if getattr(subject, "broken", None) else None
    if cut is not None:
        active = [r for r in active if r.scope != "network" or r.check is None]
    findings = []
    for rule in active:
        if rule.check is not None:
            found = _run(rule, subject, plan, path)
            if cut is not None and rule.scope == "path":
                found = [f for f in found if f.layer is not None and f.layer not in cut]
            findings += found
    # a rule that could not look everywhere cannot tell that a suppression comment is unused
    whole = {r.code for r in active if cut is None or r.scope == "layer" or r.check is None}
    kept, suppressed = suppress(findings, path, plan, whole, text)
    return Result(sorted(kept, key=_order), suppressed)


def lint_paths(files: list[str], plan: Plan) -> Result:
    """Every file's findings: whatever happens in one file is that file's finding, never the end of the run."""
    total = Result([])
    for path in files:
        try:
            result = lint_file(path, plan)
        except Exception as exc:  # a bug in archcheck on this file; the other files are still checked
            result = Result([Finding(
                "AC000", ENGINE["AC000"].slug, "error", f"archcheck failed on this file: {type(exc).__name__}: {exc}",
                Loc(path, 1, 1), None, "this is a bug in archcheck: please report it with this spec")])
        total.findings += result.findings
        total.suppressed += result.suppressed
    return total


def _run(rule: Rule, subject, plan: Plan, path: str) -> list[Finding]:
    import traceback

    severity = plan.severity.get(rule.code, rule.severity)
    try:
        reports = list(rule.check(subject, dict(plan.options[rule.code])))
        crash = None
    except Exception as exc:  # isolate the rule: report it, keep checking with the others
        # the innermost frame in the rule's own directory (its module or helpers), not in a library
        home = os.path.dirname(getattr(getattr(rule.check, "__code__", None), "co_filename", ""))
        frames = traceback.extract_tb(exc.__traceback__)[1:]
        frames = [f for f in frames if home and f.filename.startswith(home)] or frames
        at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        crash = f"crashed{at}: {type(exc).__name__}: {exc}"
    else:
        bad = next((r for r in reports if not isinstance(r, Report)), None)
        if bad is not None:
            crash = f"yielded {type(bad).__name__} {bad!r:.60}, not an archcheck.findings.Report"
    if crash:
        return [Finding("AC000", "internal-error", "error", f"rule {rule.code} {rule.slug} {crash}",
                        Loc(path, 1, 1), None,
                        f"this is a bug in the rule ({rule.origin}): please report it with this spec; meanwhile "
                        f"skip the rule here with per-file-ignores = {{ \"{Path(path).name}\" = [\"{rule.slug}\"] }}")]
    out = []
    for r in reports:
        loc = r.loc or getattr(r.layer, "loc", None) or Loc(path, 1, 1)
        out.append(Finding(rule.code, rule.slug, severity, r.message, loc, getattr(r.layer, "name", None), r.fix))
    return out
