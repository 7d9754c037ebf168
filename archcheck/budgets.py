"""Architecture budgets: limits a project sets on every spec it lints, in the configuration's
``[budgets]`` table (``[tool.archcheck.budgets]`` in pyproject.toml)::

    max-params = "25M"            # trainable parameters
    max-macs = "4.5G"             # multiply-accumulates of one sample
    max-peak-memory = "2 GiB"     # peak inference memory ...
    peak-memory-batch = 32        # ... at this batch (default 1)
    peak-memory-dtype = "float16" # ... and element type (default float32)
    min-receptive-field = 224     # pixels along each spatial axis, or "input"

This module reads the table into ``Budget`` s (every bad value a ``ConfigError`` naming its key);
each budget is checked by its rule in ``archcheck/rules/`` (``RULES``), which the plan hands the
``Budget`` as the option ``budget``. A rule without a budget finds nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# budget key: the slug of the rule that checks it
RULES = {"max-params": "params-over-budget", "max-macs": "macs-over-budget",
         "max-peak-memory": "peak-memory-over-budget", "min-receptive-field": "receptive-field-below-budget"}
# every key of the table, with the example its fix shows
KEYS = {"max-params": 'max-params = "25M"', "max-macs": 'max-macs = "4.5G"',
        "max-peak-memory": 'max-peak-memory = "2 GiB"', "peak-memory-batch": "peak-memory-batch = 32",
        "peak-memory-dtype": 'peak-memory-dtype = "float16"', "min-receptive-field": "min-receptive-field = 224"}
SUFFIXES = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}  # as `summary` prints counts


@dataclass(frozen=True)
class Budget:
    """One budget as configured: the limit, as a number (parameters, MACs, bytes or pixels) or ``"input"``
    (min-receptive-field: the field must cover the input), and where it was set, for messages."""

    key: str  # "max-params"
    limit: int | str
    written: str  # as the configuration writes it: '"25M"', '224'
    file: str | None = None  # the configuration file; None when there is none (the API, tests)
    batch: int = 1  # max-peak-memory only: measured at this batch
    dtype: str = "float32"  # and this element type

    def where(self, value: bool = False) -> str:
        """``max-params in archcheck.toml``; with ``value``, ``max-params = "25M" in archcheck.toml``."""
        key = f"{self.key} = {self.written}" if value else self.key
        return f"{key} in {Path(self.file).name}" if self.file else key


EXPECTED = {  # what each limit must be, for messages
    "max-params": 'a whole number of at least 1, or a string of one with a suffix k, M, G or T (powers of 1000) '
                  'such as "25M"',
    "max-macs": 'a whole number of at least 1, or a string of one with a suffix k, M, G or T (powers of 1000) '
                'such as "4.5G"',
    "max-peak-memory": 'a size of at least 1 byte such as "2 GiB" or "500MB", or a whole number of bytes (KiB, MiB, '
                       'GiB and TiB are powers of 1024; kB, MB, GB and TB powers of 1000)',
    "min-receptive-field": 'a whole number of pixels of at least 1, or "input"',
}


def _whole(value):
    """A TOML integer, or a float that is one (``4.5e9``); None otherwise."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_count(value) -> int:
    """``25_000_000``, ``"25M"``, ``"4.5G"``, ``"1.2k"`` -> a whole number; ValueError(why) otherwise."""
    if _whole(value) is not None:
        return _whole(value)
    m = isinstance(value, str) and re.fullmatch(r"\s*([0-9]+(?:_[0-9]+)*(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
    if not m:
        raise ValueError("")
    if m.group(2) not in SUFFIXES:
        near = f"; did you mean '{m.group(2).upper()}'?" if m.group(2).upper() in SUFFIXES else ""
        raise ValueError(f" ('{m.group(2)}' is not one of the suffixes{near})")
    exact = Fraction(m.group(1).replace("_", "")) * SUFFIXES[m.group(2)]
    if exact.denominator != 1:
        raise ValueError(f" (that is {float(exact):g}, not a whole number)")
    return int(exact)


def parse_bytes(value) -> int:
    """``2147483648``, ``"2 GiB"``, ``"500MB"`` -> bytes, as ``--max-memory`` reads a size; ValueError otherwise."""
    from archcheck.files import parse_size

    if _whole(value) is not None:
        return _whole(value)
    if not isinstance(value, str):
        raise ValueError("")
    try:
        return parse_size(value)
    except ValueError:
        raise ValueError("") from None


def parse(table: dict, cfg) -> dict[str, Budget]:
    """The budgets of the configuration's ``[budgets]`` table, by key; ``cfg`` names the file in errors."""
    from archcheck.errors import did_you_mean
    from archcheck.propagate import DTYPES, MAX_BATCH

    def error(key: str, expected: str, value, note: str = ""):
        return cfg.error(("budgets", key), f"must be {expected}, received {_toml(value)}{note}",
                         f"write e.g. `{KEYS[key]}`")

    for key in table:
        if key not in KEYS:
            raise cfg.error(("budgets", key), f"unknown budget{did_you_mean(key, KEYS)}",
                            f"the budgets are: {', '.join(KEYS)}")
    batch = table.get("peak-memory-batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise error("peak-memory-batch", f"a whole number from 1 to {MAX_BATCH:,}", batch)
    dtype = table.get("peak-memory-dtype", "float32")
    if dtype not in DTYPES:
        raise error("peak-memory-dtype", f"one of {', '.join(DTYPES)}", dtype, did_you_mean(str(dtype), DTYPES))
    loose = [k for k in ("peak-memory-batch", "peak-memory-dtype") if k in table]
    if loose and "max-peak-memory" not in table:
        raise cfg.error(("budgets", loose[0]), "sets how peak memory is measured, but no max-peak-memory is set",
                        f"add the limit, e.g. `{KEYS['max-peak-memory']}`, or remove `{loose[0]}`")

    budgets = {}
    for key, value in table.items():
        if key not in RULES:
            continue
        if key == "min-receptive-field" and value == "input":
            limit = "input"
        else:
            try:
                limit = parse_bytes(value) if key == "max-peak-memory" else parse_count(value)
            except ValueError as exc:
                note = exc.args[0] or (did_you_mean(value, ["input"]) if key == "min-receptive-field" else "")
                raise error(key, EXPECTED[key], value, note) from None
            if limit < 1:
                raise error(key, EXPECTED[key], value)
        budgets[key] = Budget(key, limit, _toml(value), cfg.file, batch, dtype)
    return budgets


def _toml(value) -> str:
    """A value as the configuration writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else repr(value)
