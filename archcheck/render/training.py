"""Printing ``archcheck train``'s losses: a line of the losses at a few steps, and the curve as a text chart."""

from __future__ import annotations

import math

from archcheck.training import final_loss


def loss_line(losses: list[float]) -> str:
    """``loss: step 0: 2.3, step 10: 1.1, ...; final 0.52 (the mean of the last 5 steps)``."""
    marks = sorted({0, *range(0, len(losses), max(1, len(losses) // 5)), len(losses) - 1})
    return "loss: " + ", ".join(f"step {i}: {losses[i]:.4g}" for i in marks) + f"; final {final_loss(losses)[1]}"


def curve(losses: list[float], width: int = 60, height: int = 10) -> str:
    """The loss per step as a text chart: one column per step (or per group of steps)."""
    finite = [v for v in losses if math.isfinite(v)]
    if not finite:
        return "(no finite loss to plot)"
    cols = min(width, len(losses))
    groups = [losses[i * len(losses) // cols:(i + 1) * len(losses) // cols] for i in range(cols)]
    points = [sum(g) / len(g) for g in groups]
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    rows = []
    for r in range(height - 1, -1, -1):
        level_lo = lo + span * r / height
        line = "".join("*" if math.isfinite(p) and level_lo <= p <= level_lo + span / height + 1e-12 else
                       ("!" if not math.isfinite(p) and r == height - 1 else " ") for p in points)
        label = f"{hi:>10.4g} |" if r == height - 1 else f"{lo:>10.4g} |" if r == 0 else " " * 11 + "|"
        rows.append(label + line.rstrip())
    rows.append(" " * 11 + "+" + "-" * cols)
    rows.append(" " * 12 + f"step 0{' ' * max(1, cols - 6 - len(str(len(losses) - 1)))}{len(losses) - 1}")
    return "\n".join(rows)
