"""The lint engine: load the rules, choose them, run them over specs, honour suppressions.

A rule is a module: ``CODE``, ``SLUG``, ``SEVERITY``, ``OPTIONS``, ``SUMMARY``, a
docstring in fixed sections and ``check(analysis, options)`` yielding ``Report`` s.
A rule of ``KIND = "dynamic"`` checks one forward and backward pass instead:
``check(run, options)`` on the executor's run record (``archcheck.executor.Run``); ``lint``
runs the static rules, ``run --grad`` the dynamic ones (``check_run``), each through a
``Plan`` made for its kind.
Rules come from three places and load alike into one ``{code: Rule}`` registry (the
yamllint way): the built-in ``archcheck.rules`` package (``archcheck/rules/``),
a configured directory of custom rule modules, and the ``archcheck.rules``
entry-point group of installed plugins. Modules named ``_*`` are helpers, not rules.

The engine owns AC000-AC009: spec problems (AC001-AC003, errors whose file the rules
then skip), a rule that crashed (AC000) and suppression comments that do nothing
(AC004). Rules read the ``Analysis`` only; the engine reads the spec's raw lines for
``# archcheck: ignore[...]`` comments, never its YAML.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import math
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from archcheck.config import Config, ConfigError
from archcheck.errors import Loc, did_you_mean
from archcheck.findings import SEVERITIES, Finding, Report


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
        "The network would fail at its first forward pass; the rules are skipped for this file.",
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
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
REQUIRED = ("CODE", "SLUG", "SEVERITY", "OPTIONS", "SUMMARY", "check")
KINDS = ("static", "dynamic")
CONTRACT = ("a rule module defines CODE, SLUG, SEVERITY, OPTIONS, SUMMARY, a docstring and "
            "check(analysis, options) yielding archcheck.findings.Report (with KIND = \"dynamic\", "
            "check(run, options)), optionally validate(options) raising ValueError(key, expected); "
            "see docs/lint.md")


# -- loading ----------------------------------------------------------------------------
def rule_from_module(module, origin: str) -> Rule:
    """Check a module against the rule contract and describe it."""
    name = getattr(module, "__name__", repr(module))
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    if missing:
        raise ConfigError(f"{origin}: the rule module '{name}' lacks {', '.join(missing)}", CONTRACT)
    code, slug, severity, options, summary = (getattr(module, a) for a in REQUIRED[:5])
    wrong = []
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{1,8}[0-9]{1,4}", code):
        wrong.append(f"CODE must be capital letters then digits like 'AC101', received {code!r}")
    elif re.fullmatch(r"AC00[0-9]", code):
        wrong.append(f"CODE {code} is reserved for the engine (AC000-AC009)")
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        wrong.append(f"SLUG must be lower-case words joined by '-', received {slug!r}")
    if severity not in SEVERITIES:
        wrong.append(f"SEVERITY must be one of {', '.join(SEVERITIES)}, received {severity!r}")
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        wrong.append(f"OPTIONS must be a dict of option names to defaults, received {options!r}")
    if not isinstance(summary, str) or not summary.strip():
        wrong.append("SUMMARY must be a one-line description")
    if not callable(module.check):
        wrong.append("check must be a function check(analysis, options)")
    kind = getattr(module, "KIND", "static")
    if kind not in KINDS:
        wrong.append(f"KIND must be one of {', '.join(KINDS)}, received {kind!r}")
    validate = getattr(module, "validate", None)
    if validate is not None and not callable(validate):
        wrong.append(f"validate must be a function validate(options), received {validate!r}")
    if wrong:
        raise ConfigError(f"{origin}: the rule module '{name}': " + "; ".join(wrong), CONTRACT)
    return Rule(code, slug, severity, summary.strip(), inspect.cleandoc(module.__doc__ or ""), dict(options),
                module.check, origin, kind, validate)


def _import(name: str, origin: str):
    written = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # never leave __pycache__ behind in a checkout's rules directory
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a broken rule module must not look like a broken spec
        raise ConfigError(f"{origin}: cannot import the rule module '{name}'{_where(exc)}: {type(exc).__name__}: "
                          f"{exc}", "fix the module at that line") from None
    finally:
        sys.dont_write_bytecode = written


def _where(exc: Exception) -> str:
    """`` (at file:line)`` of the innermost frame outside the import machinery."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _package_rules(package, origin: str) -> list[Rule]:
    rules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            rules.append(rule_from_module(_import(f"{package.__name__}.{info.name}", origin), origin))
    return rules


def _custom_package(directory: Path):
    """The directory as an importable package, so its rules can import their ``_helpers``."""
    import hashlib
    from importlib.machinery import ModuleSpec
    from importlib.util import module_from_spec

    name = "archcheck_custom_rules_" + hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        package = module_from_spec(spec)
        package.__path__ = [str(directory)]
        sys.modules[name] = package
    return sys.modules[name]


def _plugin_rules() -> list[Rule]:
    """Rules of installed plugins: entry points naming a rule module, or a package of them."""
    from importlib.metadata import entry_points

    rules = []
    for ep in entry_points(group="archcheck.rules"):
        dist = ep.dist.name if ep.dist else "an unknown package"
        origin = f"plugin '{ep.name} = {ep.value}' (from {dist})"
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"{origin} failed to load: {type(exc).__name__}: {exc}",
                              f"fix or reinstall {dist}, or uninstall it (`pip uninstall {dist}`)") from None
        if hasattr(obj, "__path__") and not hasattr(obj, "CODE"):
            rules += _package_rules(obj, origin)
        else:
            rules.append(rule_from_module(obj, origin))
    return rules


def load_rules(custom: Path | None = None) -> dict[str, Rule]:
    """Every rule, by code: the engine's, built-in, custom (``custom``) and plugins'."""
    import archcheck.rules

    registry = dict(ENGINE)
    slugs = {r.slug: r for r in ENGINE.values()}
    found = _package_rules(archcheck.rules, "built-in")
    if custom is not None:
        found += _package_rules(_custom_package(custom), f"custom rules in {custom}")
    for rule in found + _plugin_rules():
        clash = registry.get(rule.code) or slugs.get(rule.slug)
        if clash:
            raise ConfigError(f"{rule.origin}: rule {rule.code} {rule.slug} clashes with rule {clash.code} "
                              f"{clash.slug} from {clash.origin}", "give each rule a code and a slug of its own")
        registry[rule.code], slugs[rule.slug] = rule, rule
    return dict(sorted(registry.items()))


# -- choosing -----------------------------------------------------------------------------
def find_rule(name: str, rules: dict[str, Rule]) -> Rule | None:
    """A rule by code (any case) or slug."""
    name = name.strip()
    return rules.get(name.upper()) or next((r for r in rules.values() if r.slug == name), None)


def _names(rules: dict[str, Rule]) -> list[str]:
    return [*rules, *(r.slug for r in rules.values())]


def match(selector: str, rules: dict[str, Rule], where: str, lenient: bool = False) -> set[str]:
    """Codes a selector names: a code, a slug or a code prefix (``AC1``).

    ``lenient``: an unknown name names nothing (with custom rules switched off, it may be one of them)."""
    rule = find_rule(selector, rules)
    if rule:
        return {rule.code}
    if re.fullmatch(r"[A-Za-z]+[0-9]*", selector):
        codes = {c for c in rules if c.startswith(selector.upper())}
        if codes:
            return codes
    if lenient:
        return set()
    raise ConfigError(f"{where}: unknown rule '{selector}'{did_you_mean(selector, _names(rules))}",
                      "name rules by code (AC101), slug (pool-too-early) or code prefix (AC1); "
                      "`archcheck rules` lists them")


def _ignorable(selector: str, rules: dict[str, Rule], where: str, lenient: bool = False) -> set[str]:
    codes = match(selector, rules, where, lenient)
    if codes and codes <= FIXED:
        rule = rules[min(codes)]
        raise ConfigError(f"{where}: {rule.code} {rule.slug} cannot be ignored: it means the spec could not be "
                          "checked", "fix the spec, or leave the file out of the paths you lint")
    return codes - FIXED


def _option_ok(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):  # nan compares false with everything: the rule would go quiet
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(default))


TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
              list: "an array", dict: "a table"}


@dataclass
class Plan:
    """What a run does: the rules on (of one kind), their severities and options, and which files they skip."""

    rules: dict[str, Rule]  # every known rule
    enabled: set[str]
    severity: dict[str, str]
    options: dict[str, dict]
    per_file: list[tuple[str, set[str]]] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    root: Path = field(default_factory=Path.cwd)

    def active(self, path: str) -> list[Rule]:
        """Enabled rules minus this file's per-file ignores, by code."""
        off = set()
        for pattern, codes in self.per_file:
            if _path_matches(path, pattern, self.root):
                off |= codes
        return [r for c, r in self.rules.items() if c in self.enabled and c not in off]

    def excluded(self, path: str) -> bool:
        return any(_path_matches(path, p, self.root) for p in self.exclude)


def make_plan(cfg: Config, rules: dict[str, Rule], select: list[str] | None = None,
              ignore: list[str] | None = None, kind: str = "static") -> Plan:
    """Resolve the configuration (and the command line's --select/--ignore, which replace it) against the rules.

    Only rules of ``kind`` are enabled (with the engine's fixed codes); selectors may still name the
    others, so one configuration serves ``lint`` and ``run --grad``."""
    lenient = cfg.custom_rules_off  # the configuration may name custom rules that were not loaded
    chosen = set(rules)
    if select is not None or cfg.select is not None:
        where = "--select" if select is not None else cfg.where("select")
        chosen = set().union(*(match(s, rules, where, lenient and select is None)
                               for s in (select if select is not None else cfg.select)))
    where = "--ignore" if ignore is not None else cfg.where("ignore")
    ignored = set().union(*(_ignorable(s, rules, where, lenient and ignore is None)
                            for s in (ignore if ignore is not None else cfg.ignore)))
    enabled = {c for c in chosen - ignored if rules[c].kind == kind} | FIXED

    severity: dict[str, str] = {}
    # broader selectors first, so `AC1 = "info"` with `pool-too-early = "error"` gives the latter its own
    entries = [(_ignorable(k, rules, cfg.where("severity", k), lenient), v) for k, v in cfg.severity.items()]
    for codes, value in sorted(entries, key=lambda e: -len(e[0])):
        severity.update(dict.fromkeys(codes, value))

    options = {code: dict(rule.options) for code, rule in rules.items()}
    for name, values in cfg.rules.items():
        where = cfg.where("rules", name)
        rule = find_rule(name, rules)
        if rule is None and lenient:
            continue
        if rule is None:
            raise ConfigError(f"{where}: unknown rule '{name}'{did_you_mean(name, _names(rules))}",
                              "name the rule by code or slug; `archcheck rules` lists them")
        for key, value in values.items():
            if key not in rule.options:
                have = ", ".join(rule.options) or "none"
                raise ConfigError(f"{cfg.where('rules', name, key)}: rule {rule.code} {rule.slug} has no option "
                                  f"'{key}'{did_you_mean(key, rule.options)}", f"its options are: {have}")
            default = rule.options[key]
            if not _option_ok(value, default):
                kind = TYPE_NAMES.get(type(default), type(default).__name__)
                raise ConfigError(f"{cfg.where('rules', name, key)}: must be {kind} (default {default!r}), received "
                                  f"{value!r}", f"write `{key} = {_toml(default)}`")
            options[rule.code][key] = float(value) if isinstance(default, float) else value
    tables = {find_rule(name, rules).code: name for name in cfg.rules if find_rule(name, rules)}
    for code in sorted(enabled):
        _validate(rules[code], options[code], cfg, tables.get(code))

    per_file = [(pattern, set().union(*(_ignorable(s, rules, cfg.where("per-file-ignores", pattern), lenient)
                                        for s in names)))
                for pattern, names in cfg.per_file_ignores.items()]
    return Plan(rules, enabled, severity, options, per_file, list(cfg.exclude), cfg.root)


def _validate(rule: Rule, options: dict, cfg: Config, table: str | None) -> None:
    """The rule's own check of its option values: ``validate`` raises ``ValueError(key, expected)``."""
    if rule.validate is None:
        return
    try:
        rule.validate(dict(options))
    except ValueError as exc:
        key, expected = exc.args if len(exc.args) == 2 and exc.args[0] in options else (None, str(exc))
        if key is None:  # a plain ValueError("...") cannot name its key: name the rule's table
            where = cfg.where("rules", table) if table else rule.origin
            raise ConfigError(f"{where}: rule {rule.code} {rule.slug} rejects its options: {expected}",
                              f"fix the values under `[rules.{table or rule.slug}]`") from None
        default, value = rule.options[key], options[key]
        if table is None or key not in cfg.rules[table]:  # the module's own default is bad
            raise ConfigError(f"{rule.origin}: rule {rule.code} {rule.slug}: the default of option '{key}' must be "
                              f"{expected}, received {value!r}", "fix OPTIONS in the rule module") from None
        raise ConfigError(f"{cfg.where('rules', table, key)}: rule {rule.code} {rule.slug} expects {expected}, "
                          f"received {_toml(cfg.rules[table][key])}",
                          f"write e.g. `{key} = {_toml(default)}` (the default)") from None
    except Exception as exc:  # a broken validate must not look like bad configuration, nor crash
        raise ConfigError(f"{rule.origin}: the validate function of rule {rule.code} {rule.slug} crashed"
                          f"{_where(exc)}: {type(exc).__name__}: {exc}", "fix the module at that line") from None


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


# -- files ----------------------------------------------------------------------------------
def _path_matches(path: str, pattern: str, root: Path) -> bool:
    """fnmatch on the path relative to ``root`` (``*`` crosses ``/``); a pattern without ``/``
    also matches the file name."""
    full = Path(path).resolve()
    try:
        rel = full.relative_to(root).as_posix()
    except ValueError:
        rel = Path(path).as_posix()
    return fnmatch(rel, pattern) or ("/" not in pattern and fnmatch(full.name, pattern))


def _walk(directory: str, plan: Plan) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.normpath(os.path.join(dirpath, name))
            if name.endswith(SPEC_SUFFIXES) and not name.startswith(".") and not plan.excluded(path):
                found.append(path)
    return found


def _glob(pattern: str) -> list[str]:
    """``pattern``'s matches, hidden names left out as in a directory walk. pathlib's ``**`` does not
    descend into symlinked directories, where ``glob.glob``'s follows a link to a parent round and round."""
    anchor = Path(Path(pattern).anchor or ".")
    named = set(Path(pattern).parts)  # a hidden name written in the pattern is wanted
    matches = []
    for m in anchor.glob(str(Path(pattern).relative_to(anchor))):
        if not any(part.startswith(".") and part not in named for part in m.relative_to(anchor).parts):
            matches.append(os.path.normpath(m))
    return sorted(matches)


def collect(paths: list[str], plan: Plan) -> list[str]:
    """Spec files named by ``paths``: files as given, directories walked (skipping hidden ones and
    ``exclude``), glob patterns expanded. Names that lead nowhere are a ``ConfigError``."""
    files: list[str] = []
    for arg in paths:
        if os.path.isdir(arg):
            found = _walk(arg, plan)
            if not found:
                raise ConfigError(f"{arg}: no spec files (*.yaml, *.yml, *.json) in this directory or below",
                                  "give spec files, or a directory that holds some")
        elif os.path.lexists(arg):
            found = [arg]
        elif glob.has_magic(arg):
            found = []
            for m in _glob(arg):
                if os.path.isdir(m):
                    found += _walk(m, plan)
                elif m.endswith(SPEC_SUFFIXES) and not plan.excluded(m):
                    found.append(os.path.normpath(m))
            if not found:
                raise ConfigError(f"{arg}: no spec file matches this pattern", "check the pattern")
        else:
            raise ConfigError(f"{arg}: no such file or directory", "check the path")
        files += found
    seen, unique = set(), []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


# -- running ------------------------------------------------------------------------------
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
    """Check one spec: its spec problems, or every active rule's findings less the suppressed ones."""
    from archcheck.errors import SpecError
    from archcheck.pipeline import analyze

    try:
        analysis = analyze(path)
    except SpecError as exc:
        findings = []
        for p in exc.problems:
            code = PROBLEM_CODES.get(p.code, "AC002")
            findings.append(Finding(code, ENGINE[code].slug, "error", p.message, p.loc or Loc(path, 1, 1), p.layer,
                                    p.fix))
        return Result(sorted(findings, key=_order))
    return _check(analysis, path, plan)


def check_run(run, plan: Plan) -> Result:
    """The dynamic rules' findings on a run record (``archcheck.executor.Run``) of the spec
    ``run.analysis.spec.file``, less the suppressed ones; ``plan`` made with ``kind="dynamic"``."""
    return _check(run, run.analysis.spec.file, plan)


def _check(subject, path: str, plan: Plan) -> Result:
    """Every active rule's findings on ``subject`` (an Analysis or a run record), less the suppressed ones."""
    active = plan.active(path)
    findings = []
    for rule in active:
        if rule.check is not None:
            findings += _run(rule, subject, plan, path)
    return _suppress(findings, path, plan, {r.code for r in active})


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


# -- suppression comments ------------------------------------------------------------------
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


def _marks(path: str, plan: Plan, report) -> list[_Mark]:
    """Parse the spec's ``# archcheck:`` comments; ``report(loc, message, fix)`` the malformed ones.

    A comment alone on its line covers the next line that is not blank or a comment; a
    comment after a layer covers its own line."""
    from archcheck.errors import SpecError
    from archcheck.yamlsrc import load_file_text

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


def _suppress(findings: list[Finding], path: str, plan: Plan, active: set[str]) -> Result:
    notes: list[Finding] = []
    unused = plan.rules[UNUSED]
    severity = plan.severity.get(UNUSED, unused.severity)

    def report(loc: Loc, message: str, fix: str) -> None:
        if UNUSED in active:
            notes.append(Finding(UNUSED, unused.slug, severity, message, loc, None, fix))

    marks = _marks(path, plan, report)
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
    return Result(sorted(kept + notes, key=_order), suppressed)
