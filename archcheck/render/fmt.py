"""Number formatting shared by the renderers."""

from __future__ import annotations

from archcheck.layers.base import fmt_shape as shape
from archcheck.layers.base import number

__all__ = ["commas", "compact", "field", "human_bytes", "number", "shape", "si"]


def commas(n: int) -> str:
    return f"{n:,}"


def si(n: float) -> str:
    """1234567 -> '1.23M' (powers of 1000, for counts)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def human_bytes(n: float) -> str:
    """Bytes in binary units: 1536 -> '1.50 KiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def compact(x) -> str:
    """A Fraction for a table cell: as ``%g`` writes it (``0.5``, ``1e+06``), for numbers of any size."""
    if abs(x) < 1e300:
        return f"{float(x):g}"
    from decimal import Decimal

    mantissa, exponent = f"{Decimal(x.numerator) / Decimal(x.denominator):.5e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def field(rf) -> str:
    """Receptive field as 'r / S / P', per axis joined with 'x' when the axes differ."""
    if rf.is_global:
        return "whole input"
    if not rf.axes:
        return "-"
    parts = []
    for attr in ("r", "S", "P"):
        values = [compact(getattr(a, attr)) for a in rf.axes]
        parts.append(values[0] if len(set(values)) == 1 else "x".join(values))
    return " / ".join(parts)
