"""Whole-process timing of `archcheck lint` (start-up included), as a user or CI sees it.

    python benchmarks/bench_lint.py [--runs 5]

1. every spec in samples/ in one process (target <= 0.5 s);
2. a generated spec of 10,000 layers written out one by one: residual units of
   conv -> batchnorm -> add (the unit's input) -> relu (target <= 3 s).

Prints the best and median wall time of several runs and the findings counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def big_spec(units: int = 2500) -> str:
    """4 layers per unit, named so each add takes the unit's input: 10,000 layers for 2,500 units."""
    lines = ["name: generated", "input: [32, 16, 16]", "classes: 10", "layers:"]
    previous = "input"
    for i in range(units):
        lines += ["  - conv: {filters: 32, kernel: 3, padding: 1, bias: false}",
                  "  - batchnorm:",
                  f"    name: bn{i}",
                  f"  - add: [bn{i}, {previous}]",
                  "  - relu:",
                  f"    name: out{i}"]
        previous = f"out{i}"
    lines += ["  - globalavgpool", "  - dense: 10", "  - softmax"]
    return "\n".join(lines) + "\n"


def timed(args: list[str], runs: int) -> tuple[list[float], dict]:
    times, report = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "archcheck", "lint", "--no-config", "--format", "json", *args],
                              cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            sys.exit(f"archcheck lint failed (exit {done.returncode}):\n{done.stderr}")
        report = json.loads(done.stdout)["summary"]
    return times, report


def show(label: str, times: list[float], summary: dict, target: float) -> bool:
    best, median = min(times), statistics.median(times)
    ok = best <= target
    print(f"{label}: best {best:.3f} s, median {median:.3f} s over {len(times)} runs (target <= {target} s: "
          f"{'met' if ok else 'MISSED'}); {summary['files_checked']} files, {summary['findings']} findings "
          f"{summary['by_severity']}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    ok = show("lint samples/", *timed(["samples"], runs), 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.yaml"
        path.write_text(big_spec())
        ok &= show("lint 10,000-layer spec", *timed([str(path)], max(1, runs // 2)), 3.0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
