"""Benchmark `archcheck report` as whole processes (run by hand; not a test).

    python benchmarks/bench_report.py [--runs 7]

Measures, each as a fresh process (cold interpreter, warm file cache), writing to a temporary directory:
- `archcheck report samples/resnet50.yaml -o report.html`: wall time (median, min) and the page's size;
  target under 2 s;
- the report of the 10,000-layer spec of bench_lint.py (no target: it must open and stay usable, which
  tests/test_report_browser.py checks in a browser).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_lint import big_spec  # noqa: E402

TARGET = 2.0  # seconds, ResNet-50


def measure(args: list[str], runs: int) -> tuple[float, float]:
    """(median, min) wall seconds over ``runs`` fresh processes of ``archcheck args``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "archcheck", *args], cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"archcheck {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}")
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        med, best = measure(["report", str(ROOT / "samples" / "resnet50.yaml"), "-o", str(out)], args.runs)
        verdict = "ok" if med < TARGET else "OVER TARGET"
        print(f"archcheck report resnet50: median {med:.2f} s, min {best:.2f} s, {out.stat().st_size / 2**20:.2f} MiB "
              f"(target < {TARGET:.0f} s: {verdict})")
        spec = Path(tmp) / "big.yaml"
        spec.write_text(big_spec())
        med, best = measure(["report", str(spec), "-o", str(out), "--no-config"], max(3, args.runs // 2))
        print(f"archcheck report of 10,000 layers: median {med:.2f} s, min {best:.2f} s, "
              f"{out.stat().st_size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
