"""Printing findings: ``text``, ``json``, ``sarif``, ``github`` and ``markdown``.

``render(findings, fmt, files_checked=..., suppressed=...)`` is the one entry point,
shared by ``archcheck lint`` and any command that reports findings (the executor's
dynamic rules). Renderers only present: every fact comes from the ``Finding`` s
and the rule descriptions handed in.
"""

from __future__ import annotations

import json
import os

from archcheck import __version__
from archcheck.findings import SEVERITIES, Finding
from archcheck.render import escape

JSON_SCHEMA = "archcheck.lint/1"
SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}
COLORS = {"error": "red", "warning": "yellow", "info": "blue"}


def resolve(fmt: str) -> str:
    """``auto`` is ``github`` inside GitHub Actions (``GITHUB_ACTIONS`` set), else ``text``."""
    if fmt == "auto":
        return "github" if os.environ.get("GITHUB_ACTIONS") else "text"
    return fmt


def counts(findings: list[Finding]) -> dict[str, int]:
    by = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        by[f.severity] += 1
    return by


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 or word == 'info' else 's'}"


def summary_line(findings: list[Finding], files_checked: int, suppressed: int) -> str:
    """``3 findings (1 error, 2 warnings, 0 info) in 7 files; 2 suppressed``."""
    by = counts(findings)
    parts = ", ".join(_plural(by[s], s) for s in reversed(SEVERITIES))
    return (f"{_plural(len(findings), 'finding')} ({parts}) in {_plural(files_checked, 'file')}; "
            f"{suppressed} suppressed")


def render(findings: list[Finding], fmt: str = "text", *, files_checked: int, suppressed: int = 0,
           rules=None, color: bool = False) -> str:
    """The findings in ``fmt`` (one of ``FORMATS``), ending with the run's summary.

    ``rules`` (optional) maps codes to rule descriptions (``archcheck.lint.Rule``: code,
    slug, severity, summary, doc) for SARIF's rule metadata; without it SARIF lists the
    codes and slugs of the findings only. ``color`` styles the text format for a terminal.
    """
    fmt = resolve(fmt)
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](findings, files_checked, suppressed, rules=rules, color=color)


def _headline(f: Finding) -> str:
    layer = f"layer '{f.layer}': " if f.layer else ""
    return f"{layer}{f.message}"


# -- text ---------------------------------------------------------------------------------
def _text(findings, files_checked, suppressed, color=False, **_) -> str:
    import click

    from archcheck.render.problems import excerpt

    def style(text, **kw):
        return click.style(text, **kw) if color else text

    blocks = []
    for f in findings:
        sev = style(f"[{f.severity}]", fg=COLORS[f.severity], bold=True)
        where = f"{style(escape.terminal(str(f.loc)), bold=True)}: " if f.loc else ""
        lines = [f"{where}{style(f.code, bold=True)} {f.rule} {sev} {escape.terminal(_headline(f))}"]
        snippet = excerpt(f.loc)
        if snippet:
            lines.append(snippet)
        for use in f.loc.via if f.loc else ():
            lines.append(f"  = in the block used at line {use.line}:{use.col}")
        if f.fix:
            lines.append(f"  = fix: {escape.terminal(f.fix)}")
        blocks.append("\n".join(lines))
    blocks.append(summary_line(findings, files_checked, suppressed))
    return "\n\n".join(blocks)


# -- json ---------------------------------------------------------------------------------
def _json(findings, files_checked, suppressed, **_) -> str:
    return json.dumps(to_json(findings, files_checked, suppressed), indent=2)


def finding_json(f: Finding) -> dict:
    """One finding as the documented JSON has it (also in ``archcheck diff``'s)."""
    return {
        "code": f.code, "rule": f.rule, "severity": f.severity, "message": f.message, "fix": f.fix,
        "layer": f.layer, "file": f.loc.file if f.loc else None,
        "line": f.loc.line if f.loc and f.loc.line >= 1 else None,
        "column": f.loc.col if f.loc and f.loc.line >= 1 else None,
        "via": [{"line": u.line, "column": u.col} for u in (f.loc.via if f.loc else ())],
        **({"node": f.loc.node} if f.loc and f.loc.node else {}),  # a finding in an imported model
    }


def to_json(findings, files_checked, suppressed) -> dict:
    """The documented JSON (archcheck/schemas/lint.schema.json)."""
    return {
        "schema": JSON_SCHEMA,
        "archcheck_version": __version__,
        "findings": [finding_json(f) for f in findings],
        "summary": {"findings": len(findings), "by_severity": counts(findings), "files_checked": files_checked,
                    "suppressed": suppressed},
    }


# -- sarif ----------------------------------------------------------------------------------
def _sarif(findings, files_checked, suppressed, rules=None, **_) -> str:
    return json.dumps(to_sarif(findings, files_checked, suppressed, rules), indent=2)


def _uri(file: str) -> str:
    """Relative to the working directory when the file is under it, else a file:// URI."""
    from pathlib import Path
    from urllib.parse import quote

    full = Path(os.path.abspath(file))
    try:
        return quote(full.relative_to(Path.cwd()).as_posix())
    except ValueError:
        return full.as_uri()


def _sarif_rule(code, slug, rule) -> dict:
    entry = {"id": code, "name": slug}
    if rule is not None:
        entry.update({
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.doc or rule.summary},
            "help": {"text": f"{rule.summary} `archcheck explain {code}` prints the documentation.",
                     "markdown": rule.doc or rule.summary},
            "defaultConfiguration": {"level": SARIF_LEVELS[rule.severity]},
        })
    return entry


def to_sarif(findings, files_checked, suppressed, rules=None) -> dict:
    """SARIF 2.1.0: one run, the rules' documentation in ``tool.driver.rules``."""
    rules = dict(rules or {})
    listed = sorted(set(rules) | {f.code for f in findings})
    slugs = {f.code: f.rule for f in findings}
    index = {code: i for i, code in enumerate(listed)}
    results = []
    for f in findings:
        text = _headline(f) + (f"\nFix: {f.fix}" if f.fix else "")
        result = {"ruleId": f.code, "ruleIndex": index[f.code], "level": SARIF_LEVELS[f.severity],
                  "message": {"text": text}}
        if f.loc:
            physical = {"artifactLocation": {"uri": _uri(f.loc.file)}}
            if f.loc.line >= 1:
                physical["region"] = {"startLine": f.loc.line, "startColumn": f.loc.col}
            result["locations"] = [{"physicalLocation": physical}]
            if f.loc.node:  # an imported model has no lines: the finding is at a node of its graph
                result["locations"][0]["logicalLocations"] = [{"name": f.loc.node, "kind": "element"}]
        result["properties"] = {"rule": f.rule, "layer": f.layer, "fix": f.fix}
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "archcheck", "version": __version__, "semanticVersion": __version__,
                "rules": [_sarif_rule(c, rules[c].slug if c in rules else slugs[c], rules.get(c)) for c in listed],
            }},
            "results": results,
            "properties": {"filesChecked": files_checked, "suppressed": suppressed},
        }],
    }


# -- github ---------------------------------------------------------------------------------
def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _github(findings, files_checked, suppressed, **_) -> str:
    lines = []
    for f in findings:
        props = []
        if f.loc:
            props.append(f"file={_escape_property(f.loc.file)}")
            props += [f"line={f.loc.line}", f"col={f.loc.col}"] if f.loc.line >= 1 else []
        props.append(f"title={_escape_property(f'{f.code} {f.rule}')}")
        text = _headline(f) + (f"\nFix: {f.fix}" if f.fix else "")
        lines.append(f"::{GITHUB_LEVELS[f.severity]} {','.join(props)}::{_escape_data(text)}")
    lines.append(summary_line(findings, files_checked, suppressed))
    return "\n".join(lines)


# -- markdown -------------------------------------------------------------------------------
def _markdown(findings, files_checked, suppressed, **_) -> str:
    out = [f"### archcheck: {summary_line(findings, files_checked, suppressed)}"]
    if findings:
        out += ["", "| Severity | Location | Rule | Layer | Message |", "|---|---|---|---|---|"]
        for f in findings:
            where = escape.markdown_code(str(f.loc)) if f.loc else ""
            message = escape.markdown(f.message) + (f"<br>**Fix:** {escape.markdown(f.fix)}" if f.fix else "")
            layer = escape.markdown_code(f.layer) if f.layer else ""
            out.append(f"| {f.severity} | {where} | {f.code} {escape.markdown_code(f.rule)} | {layer} | {message} |")
    return "\n".join(out)


RENDERERS = {"text": _text, "json": _json, "sarif": _sarif, "github": _github, "markdown": _markdown}
FORMATS = ("auto", *RENDERERS)  # `auto` is one of the others, chosen by `resolve`
