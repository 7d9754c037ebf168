"""Suppression comments: ``# archcheck: ignore[...]`` and ``# archcheck: ignore-file[...]``, read
from the spec's raw lines (never its YAML); a comment that suppresses nothing is an AC004 finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from archcheck.errors import Loc, did_you_mean
from archcheck.findings import Finding
from archcheck.lint.plan import Plan, _names, find_rule
from archcheck.lint.rule import FIXED, UNUSED

_MARK = re.compile(r"(?:^|\s)(#\s*archcheck:\s*(?P<kind>[\w-]*)\s*(?:\[(?P<names>[^\]]*)\])?)")
DIRECTIVES = ("ignore", "ignore-file")
MAX_UNKNOWN_NAMES = 10  # per comment, reported one by one


@dataclass
class _Mark:
    loc: Loc  # the comment
    whole_file: bool
    target: int  # the line it covers
    codes: list[str]  # empty: every rule
    used: set[str] = field(default_factory=set)


def _marks(path: str, plan: Plan, report, text: str | None = None) -> list[_Mark]:
    """Parse the spec's ``# archcheck:`` comments (in ``text``, else the file at ``path``); ``report(loc,
    message, fix)`` the malformed ones.

    A comment alone on its line covers the next line that is not blank or a comment; a
    comment after a layer covers its own line."""
    from archcheck.errors import SpecError
    from archcheck.yamlsrc import load_file_text

    if text is None:
        try:
            text = load_file_text(path)  # the spec was read once already; a special file was refused there
        except SpecError:
            return []
    if "archcheck:" not in text:
        return []
    lines = text.splitlines()
    marks = []
    for i, line in enumerate(lines):
        m = _MARK.search(line)
        if m is None:
            continue
        loc = Loc(path, i + 1, m.start(1) + 1)
        kind = m["kind"]
        if kind not in DIRECTIVES:
            report(loc, f"unknown directive 'archcheck: {kind}'{did_you_mean(kind, DIRECTIVES)}",
                   "write `# archcheck: ignore[rule, ...]` or `# archcheck: ignore-file[rule, ...]`")
            continue
        codes, unknown = [], []
        for name in ([] if m["names"] is None else m["names"].split(",")):
            rule = find_rule(name, plan.rules) if name.strip() else None
            if rule is None:
                unknown.append(name.strip())
            else:
                codes.append(rule.code)
        for name in unknown[:MAX_UNKNOWN_NAMES]:  # a suggestion each for a few; a count for the rest
            report(loc, f"the suppression names an unknown rule '{name[:80]}'{did_you_mean(name, _names(plan.rules))}",
                   "name rules by code (AC101) or slug (pool-too-early); `archcheck rules` lists them")
        if len(unknown) > MAX_UNKNOWN_NAMES:
            report(loc, f"the suppression names {len(unknown) - MAX_UNKNOWN_NAMES:,} more unknown rules",
                   "name rules by code (AC101) or slug (pool-too-early); `archcheck rules` lists them")
        if m["names"] is not None and not codes:
            continue
        target = i + 1
        if line.lstrip().startswith("#"):
            target = next((j + 1 for j in range(i + 1, len(lines))
                           if lines[j].strip() and not lines[j].lstrip().startswith("#")), i + 1)
        marks.append(_Mark(loc, kind == "ignore-file", target, codes))
    return marks


def suppress(findings: list[Finding], path: str, plan: Plan, active: set[str],
             text: str | None = None) -> tuple[list[Finding], int]:
    """The findings left once the comments (of ``text``, else of the file at ``path``) have suppressed theirs,
    with the AC004 notes; and how many were suppressed."""
    notes: list[Finding] = []
    unused = plan.rules[UNUSED]
    severity = plan.severity.get(UNUSED, unused.severity)

    def report(loc: Loc, message: str, fix: str) -> None:
        if UNUSED in active:
            notes.append(Finding(UNUSED, unused.slug, severity, message, loc, None, fix))

    marks = _marks(path, plan, report, text)
    kept, suppressed = [], 0
    for f in findings:
        lines = {f.loc.line, *(u.line for u in f.loc.via)} if f.loc and f.loc.file == path else set()
        hits = [m for m in marks if (m.whole_file or m.target in lines) and (not m.codes or f.code in m.codes)]
        for m in hits:
            m.used.add(f.code)
        if hits and f.code not in FIXED:
            suppressed += 1
        else:
            kept.append(f)
    for m in marks:
        scope = "in this file" if m.whole_file else f"on line {m.target}"
        if not m.codes and not m.used:
            report(m.loc, f"the suppression matches no finding {scope}", "remove the comment")
        for code in m.codes:
            if code not in m.used and code in active:
                rule = plan.rules[code]
                report(m.loc, f"the suppression of {rule.code} {rule.slug} matches no finding {scope}",
                       f"remove '{rule.slug}' from the comment")
    return kept + notes, suppressed
