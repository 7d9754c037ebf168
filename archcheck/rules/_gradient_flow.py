"""What the gradient-flow rules (vanishing-gradient, exploding-gradient) say about AUTOTRAINER's measure,
the first weighted layer's weight-gradient norm over the last one's (``Run.gradient_ratio()``)."""

from __future__ import annotations


def describe(flow) -> str:
    """The measure in words, as the findings of both rules begin."""
    return (f"the weight-gradient norm of the first weighted layer '{flow.first.name}' is {flow.first_norm:.3g}, "
            f"{flow.ratio:.3g} times that of the last, '{flow.last.name}' ({flow.last_norm:.3g})")
