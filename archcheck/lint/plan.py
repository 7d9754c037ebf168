"""The plan of a run: the rules on, of one kind, for each file, their severities and options,
resolved from the configuration and the command line's --select/--ignore. A budget rule's option
``budget`` is its ``Budget`` from the configuration's ``[budgets]`` table (``archcheck.budgets``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from archcheck.budgets import KEYS as BUDGET_KEYS
from archcheck.budgets import RULES as BUDGET_RULES
from archcheck.config import Config, ConfigError
from archcheck.errors import did_you_mean
from archcheck.lint.load import _where
from archcheck.lint.rule import FIXED, Rule


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


def _path_matches(path: str, pattern: str, root: Path) -> bool:
    """fnmatch on the path relative to ``root`` (``*`` crosses ``/``); a pattern without ``/``
    also matches the file name."""
    full = Path(path).resolve()
    try:
        rel = full.relative_to(root).as_posix()
    except ValueError:
        rel = Path(path).as_posix()
    return fnmatch(rel, pattern) or ("/" not in pattern and fnmatch(full.name, pattern))


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
        if select is None:  # a budget set in the configuration is a gate: its own `select` cannot drop it
            chosen |= {find_rule(BUDGET_RULES[key], rules).code for key in cfg.budgets}
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
                have = f"its options are: {', '.join(rule.options) or 'none'}"
                budget = next((k for k, slug in BUDGET_RULES.items() if slug == rule.slug), None)
                if budget is not None:  # its limit is a budget: one place to set it
                    have = f"set its limit in the budgets table: `{BUDGET_KEYS[budget]}` under [{cfg.table}budgets]"
                raise ConfigError(f"{cfg.where('rules', name, key)}: rule {rule.code} {rule.slug} has no option "
                                  f"'{key}'{did_you_mean(key, rule.options)}", have)
            default = rule.options[key]
            if not _option_ok(value, default):
                kind = TYPE_NAMES.get(type(default), type(default).__name__)
                raise ConfigError(f"{cfg.where('rules', name, key)}: must be {kind} (default {default!r}), received "
                                  f"{value!r}", f"write `{key} = {_toml(default)}`")
            options[rule.code][key] = float(value) if isinstance(default, float) else value
    for key, budget in cfg.budgets.items():  # a budget rule's limit comes from [budgets] (archcheck.budgets)
        options[find_rule(BUDGET_RULES[key], rules).code]["budget"] = budget
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
