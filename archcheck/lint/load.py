"""Loading the rules from their three places, alike, into one ``{code: Rule}`` registry (the
yamllint way): the built-in ``archcheck.rules`` package (``archcheck/rules/``), a configured
directory of custom rule modules, and the ``archcheck.rules`` entry-point group of installed
plugins. Modules named ``_*`` are helpers, not rules.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

from archcheck.config import ConfigError
from archcheck.findings import SEVERITIES
from archcheck.lint.rule import ENGINE, Rule

REQUIRED = ("CODE", "SLUG", "SEVERITY", "OPTIONS", "SUMMARY", "check")
KINDS = ("static", "dynamic")
SCOPES = ("layer", "path", "network")  # what a static rule's findings depend on (docs/lint.md, SCOPE)
CONTRACT = ("a rule module defines CODE, SLUG, SEVERITY, OPTIONS, SUMMARY, a docstring and "
            "check(analysis, options) yielding archcheck.findings.Report (with KIND = \"dynamic\", "
            "check(run, options)), optionally validate(options) raising ValueError(key, expected); "
            "see docs/lint.md")


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
    scope = getattr(module, "SCOPE", "network")
    if scope not in SCOPES:
        wrong.append(f"SCOPE must be one of {', '.join(SCOPES)}, received {scope!r}")
    validate = getattr(module, "validate", None)
    if validate is not None and not callable(validate):
        wrong.append(f"validate must be a function validate(options), received {validate!r}")
    if wrong:
        raise ConfigError(f"{origin}: the rule module '{name}': " + "; ".join(wrong), CONTRACT)
    return Rule(code, slug, severity, summary.strip(), inspect.cleandoc(module.__doc__ or ""), dict(options),
                module.check, origin, kind, validate, scope)


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
