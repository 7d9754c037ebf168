"""Lint configuration: ``archcheck.toml`` or ``[tool.archcheck]`` in ``pyproject.toml``.

One configuration serves a run: the nearest file found walking up from the first
path being linted (``archcheck.toml`` wins over ``pyproject.toml`` in the same
directory; a ``pyproject.toml`` without ``[tool.archcheck]`` is passed over), or the
file given with ``--config``. The walk stops at the project root, the first directory
that holds ``.git``: a configuration above a checkout is not the checkout's, and a
configuration can name ``custom-rules`` that archcheck imports and runs. This module
checks the file's keys and value types (the ``budgets`` table's values in ``archcheck.budgets``);
the rule names inside are checked against the loaded rules by ``archcheck.lint``. Anything wrong
is a ``ConfigError`` naming the file and the key: never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archcheck.budgets import Budget
from archcheck.budgets import parse as parse_budgets
from archcheck.errors import ArchcheckError, did_you_mean
from archcheck.findings import SEVERITIES
from archcheck.render.findings import FORMATS

# key: (expected type, element type or None, example for the fix)
KEYS = {
    "select": (list, str, 'select = ["AC1", "strided-conv"]'),
    "ignore": (list, str, 'ignore = ["non-power-of-two-channels"]'),
    "severity": (dict, str, 'severity = { strided-conv = "info" }'),
    "fail-on": (str, None, 'fail-on = "error"'),
    "rules": (dict, dict, "[tool.archcheck.rules.pool-too-early] then `min_convs = 3`"),
    "per-file-ignores": (dict, list, 'per-file-ignores = { "experiments/*.yaml" = ["AC1"] }'),
    "exclude": (list, str, 'exclude = ["build/*", "*.json"]'),
    "custom-rules": (str, None, 'custom-rules = "tools/archcheck_rules"'),
    "format": (str, None, 'format = "github"'),
    "budgets": (dict, None, '[tool.archcheck.budgets] then `max-params = "25M"`'),
}
CHOICES = {"fail-on": SEVERITIES, "format": FORMATS}
TYPE_NAMES = {list: "an array", dict: "a table", str: "a string"}
PLURALS = {list: "arrays", dict: "tables", str: "strings"}


class ConfigError(ArchcheckError):
    """Configuration (or rule loading, or paths) that archcheck cannot use: exit 2."""


@dataclass
class Config:
    """Validated settings of one file (or the defaults when there is none)."""

    file: str | None = None  # as found; None = no configuration
    root: Path = field(default_factory=Path.cwd)  # relative paths and globs start here
    table: str = ""  # "tool.archcheck." in pyproject.toml, "" in archcheck.toml
    select: list[str] | None = None  # None = every rule
    ignore: list[str] = field(default_factory=list)
    severity: dict[str, str] = field(default_factory=dict)
    fail_on: str = "warning"
    rules: dict[str, dict] = field(default_factory=dict)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    custom_rules: Path | None = None
    custom_rules_off: bool = False  # --no-custom-rules: the directory is named but not imported
    format: str = "auto"
    budgets: dict[str, Budget] = field(default_factory=dict)  # by key: "max-params" -> Budget

    def where(self, *key: str) -> str:
        """``file: key 'tool.archcheck.severity.x'``, for messages."""
        dotted = (self.table + ".".join(key)).rstrip(".")
        return f"{self.file}: key '{dotted}'" if self.file else f"key '{dotted}'"

    def error(self, key: tuple[str, ...], message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"{self.where(*key)}: {message}", fix)


MAX_BYTES = 1024 * 1024  # a pyproject.toml is a few kB


def _read_toml(path: Path) -> dict:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, as a package, before Python 3.11
        import tomli as tomllib

    from archcheck.files import FileProblem, open_regular

    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{path}: the configuration is over {MAX_BYTES // 1024:,} KiB",
                              "keep archcheck's settings short; a configuration is a few lines")
        return tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", "fix the syntax at that position") from None
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nest too deeply",
                          "a configuration needs two levels at most; remove the extra brackets") from None
    except FileProblem as exc:
        raise ConfigError(f"{path}: cannot use the configuration: {exc.message}", "a configuration is a TOML "
                          "file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the file is not UTF-8 text ({exc.reason})", "save it as UTF-8") from None


def find_config(start: Path) -> Path | None:
    """The nearest ``archcheck.toml`` or ``pyproject.toml`` with ``[tool.archcheck]``, walking up to the
    project root (the first directory holding ``.git``) and no further."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "archcheck.toml"
        if candidate.is_file():
            return candidate
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            tool = _read_toml(candidate).get("tool", {})
            if isinstance(tool, dict) and "archcheck" in tool:
                return candidate
        if (directory / ".git").exists():
            return None
    return None


def glob_problem(pattern: str) -> str | None:
    """What is wrong with a path pattern, or None. fnmatch takes an unclosed ``[`` as a literal
    character, so a typo there would silently match nothing."""
    if not pattern.strip():
        return "is empty"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1 + (pattern[i + 1:i + 2] == "!")
            j += pattern[j:j + 1] == "]"  # a ']' first in the set is a member
            close = pattern.find("]", j)
            if close < 0:
                return f"opens a '[' at position {i + 1} that is never closed"
            i = close
        i += 1
    return None


def load_config(path: Path | str | None) -> Config:
    """Read and check a configuration file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file", "give the path of an archcheck.toml or a "
                          "pyproject.toml with a [tool.archcheck] table")
    data = _read_toml(path)
    cfg = Config(file=str(path), root=path.resolve().parent)
    if path.name == "pyproject.toml":
        cfg.table = "tool.archcheck."
        data = data.get("tool", {}).get("archcheck")
        if data is None:
            raise ConfigError(f"{path}: there is no [tool.archcheck] table", "add `[tool.archcheck]`, or name an "
                              "archcheck.toml with --config")
        if not isinstance(data, dict):
            raise cfg.error((), "must be a table", "write it as `[tool.archcheck]`")
    for key, value in data.items():
        if key not in KEYS:
            raise cfg.error((key,), f"unknown key{did_you_mean(key, KEYS)}", f"the keys are: {', '.join(KEYS)}")
        kind, item, example = KEYS[key]
        if not isinstance(value, kind):
            raise cfg.error((key,), f"must be {TYPE_NAMES[kind]}, received {value!r}", f"write `{example}`")
        if item is not None:
            values = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in values:
                if not isinstance(v, item):
                    sub = (key, str(k)) if isinstance(value, dict) else (key,)
                    raise cfg.error(sub, f"entries must be {PLURALS[item]}, received {v!r}", f"write `{example}`")
                if item is list and not all(isinstance(x, str) for x in v):
                    raise cfg.error((key, str(k)), f"must list rule names as strings, received {v!r}",
                                    f"write `{example}`")
        for pattern in value if key == "exclude" else value if key == "per-file-ignores" else ():
            problem = glob_problem(pattern)
            if problem:
                sub = (key, pattern) if key == "per-file-ignores" else (key,)
                raise cfg.error(sub, f"the pattern {pattern!r} {problem}",
                                "write a glob such as `experiments/*.yaml`; `[[]` matches a literal '['")
        if key in CHOICES and value not in CHOICES[key]:
            raise cfg.error((key,), f"must be one of {', '.join(CHOICES[key])}, received {value!r}"
                            f"{did_you_mean(value, CHOICES[key])}")
        if key == "severity":
            for rule, sev in value.items():
                if sev not in SEVERITIES:
                    raise cfg.error((key, rule), f"must be one of {', '.join(SEVERITIES)}, received {sev!r}"
                                    f"{did_you_mean(sev, SEVERITIES)}", "use `ignore` to turn a rule off")
        if key == "budgets":
            value = parse_budgets(value, cfg)
        setattr(cfg, key.replace("-", "_"), value)
    if cfg.custom_rules is not None:
        directory = cfg.root / cfg.custom_rules
        if not directory.is_dir():
            raise cfg.error(("custom-rules",), f"'{cfg.custom_rules}' is not a directory (looked for {directory})",
                            "give the directory of your rule modules, relative to the configuration file")
        cfg.custom_rules = directory
    return cfg
