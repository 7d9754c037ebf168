"""Facts the rules share about one analysis, worked out once per run: the engine hands each run its
own memo, as yamllint hands each rule its per-run context, instead of rules keeping module globals.

``check(analysis, options)`` stays the whole rule contract: the engine hangs a fresh memo on the
analysis while its rules run (``memo_for``) and takes it off when they are done, and rule helpers
(``archcheck/rules/_walk.py``) keep what they work out in ``memo(analysis)``. So two analyses checked
side by side, or one inside the other's run, each have their own facts, and nothing outlives the
run: afterwards the analysis carries no memo, and no module holds an analysis.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_ATTR = "_lint_memo"


@contextmanager
def memo_for(analysis) -> Iterator[dict]:
    """A fresh memo on ``analysis`` while the block runs (a run already under way on it keeps its own)."""
    if hasattr(analysis, _ATTR):
        yield getattr(analysis, _ATTR)
        return
    setattr(analysis, _ATTR, {})
    try:
        yield getattr(analysis, _ATTR)
    finally:
        delattr(analysis, _ATTR)


def memo(analysis) -> dict:
    """The memo of the run under way on ``analysis``; outside a run (a rule called directly) an empty
    one that nothing keeps, so facts are worked out afresh and never go stale."""
    return getattr(analysis, _ATTR, {})
