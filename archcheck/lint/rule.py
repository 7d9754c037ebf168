"""What a rule is to the engine (``Rule``), and the engine's own codes.

The engine owns AC000-AC009: spec problems (AC001-AC003, errors: the rules skip a file that cannot
be read or is not a valid spec, and check the layers that fit in one with shape errors), a rule that
crashed (AC000) and suppression comments that do nothing (AC004).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    code: str
    slug: str
    severity: str  # the default; configuration may override it
    summary: str
    doc: str  # Markdown, in the fixed sections
    options: dict = field(default_factory=dict)  # defaults
    check: Callable | None = None  # None for the engine's own codes
    origin: str = "built-in"
    kind: str = "static"  # or "dynamic": checks a run record, not an Analysis
    validate: Callable | None = None  # validate(options) raises ValueError(key, expected) for bad values
    scope: str = "network"  # layer, path or network: how it runs on the part of a spec that fits


SPEC_REFERENCE = "The spec language in the README; `archcheck summary` reports the same problems."


def _doc(what: str, why: str, example: str, instead: str, references: str = SPEC_REFERENCE) -> str:
    return (f"## What it does\n{what}\n\n## Why is this bad?\n{why}\n\n## Example\n{example}\n\n"
            f"## Use instead\n{instead}\n\n## Options\nNone.\n\n## References\n{references}")


ENGINE = {r.code: r for r in (
    Rule("AC000", "internal-error", "error", "A rule crashed on this spec; the other rules still ran.", _doc(
        "Reports a rule whose `check` raised an exception (or yielded something other than a `Report`) on "
        "this spec. The rule's findings for this file are lost; every other rule and file is still checked.",
        "It is a bug in the rule, not in the spec, but the spec was not fully checked, so it counts as an error.",
        "```\nmodel.yaml:1:1: AC000 internal-error [error] rule AC101 pool-too-early crashed at "
        "pool_too_early.py:40: ZeroDivisionError: division by zero\n```",
        "Report the bug with the spec. Meanwhile skip that rule for the file with `per-file-ignores`.",
        "docs/lint.md, *Custom rules*: the contract a rule module follows.")),
    Rule("AC001", "invalid-yaml", "error", "The file cannot be read or is not valid YAML/JSON.", _doc(
        "Reports a spec file that cannot be read (missing, not UTF-8, too large) or parsed (syntax errors, "
        "duplicate keys, tags, alias bombs, several documents).",
        "Nothing else can be checked: the rules are skipped for this file.",
        "```yaml\nlayers:\n  - conv: {filters: 64\n```", "```yaml\nlayers:\n  - conv: {filters: 64}\n```")),
    Rule("AC002", "invalid-spec", "error", "The spec's structure, names or layer arguments are wrong.", _doc(
        "Reports what the spec language rejects: unknown keys, layer types and arguments, wrong argument "
        "types, unknown layer names in `inputs`, cycles, bad blocks.",
        "The network is not defined, so it cannot be checked: the rules are skipped for this file.",
        "```yaml\nlayers:\n  - conv: {filter: 64}\n```", "```yaml\nlayers:\n  - conv: {filters: 64}\n```")),
    Rule("AC003", "shape-error", "error", "A layer cannot accept the shape that reaches it.", _doc(
        "Reports layers whose input shapes do not fit: a window larger than the padded input, mismatched "
        "merge shapes, a spatial layer after `flatten`.",
        "The network would fail at its first forward pass. The rules still check the layers that fit: "
        "everything upstream of the broken layer and every branch independent of it (a rule that needs the "
        "whole network waits for the fix; see `SCOPE` in docs/lint.md).",
        "```yaml\ninput: [3, 4, 4]\nlayers:\n  - conv: {filters: 8, kernel: 7}\n```",
        "```yaml\ninput: [3, 4, 4]\nlayers:\n  - conv: {filters: 8, kernel: 3, padding: 1}\n```")),
    Rule("AC004", "unused-suppression", "warning", "An `# archcheck:` comment suppresses nothing.", _doc(
        "Reports suppression comments that match no finding, name an unknown rule, or are not a directive "
        "archcheck knows (`ignore`, `ignore-file`).",
        "A stale or misspelt suppression hides nothing today but will silently hide a real finding later, "
        "and a misspelt one does not hide what it was meant to. Suppressions of rules that are not enabled "
        "for the file are not reported.",
        "```yaml\n  - maxpool: 2   # archcheck: ignore[pool-to-early]\n```",
        "```yaml\n  - maxpool: 2   # archcheck: ignore[pool-too-early]\n```",
        "ruff's `unused-noqa` (RUF100) does the same for `# noqa` comments.")),
)}
FIXED = {"AC000", "AC001", "AC002", "AC003"}  # always on, always errors, never suppressed
PROBLEM_CODES = {"invalid-yaml": "AC001", "invalid-spec": "AC002", "shape-error": "AC003"}
UNUSED = "AC004"
