"""The progress bar of long executions (``run``, ``train``): rich's, on standard error, on a terminal only."""

from __future__ import annotations

import sys

PROGRESS_MACS = 2e9  # show a progress bar (on a terminal) when a run does more work than this


def progress_bar(total: int, work: float):
    """A transient rich progress bar on a terminal for long runs, else None."""
    if work < PROGRESS_MACS or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    progress.start()
    progress.add_task("running", total=total)
    return progress
