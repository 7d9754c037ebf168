"""Benchmark `archcheck summary` as whole processes (run by hand; not a test).

    python benchmarks/bench_summary.py [--runs 7] [--peer-python /path/to/python-with-torchinfo]

Measures, each as a fresh process (cold interpreter, warm file cache):
- `archcheck summary samples/resnet50.yaml`: wall time (median, min) and peak RSS; targets 0.3 s, 80 MiB;
- generated specs of 2,500 ... 20,000 layers: time per layer must stay flat (linear growth), 10,000 in 3 s;
- the peer, `torchinfo.summary` on torchvision's ResNet-50 at 1x3x224x224, when --peer-python names an
  interpreter that has torch, torchvision and torchinfo, so the ratio is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PEER = """
import torch, torchvision, torchinfo
model = torchvision.models.resnet50()
torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)
"""


def measure(cmd: list[str], runs: int) -> tuple[float, float]:
    """(median, min) wall seconds over ``runs`` fresh processes."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return statistics.median(times), min(times)


def peak_rss(cmd: list[str]) -> float | None:
    """Peak RSS in MiB of one process, via GNU time."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if not gnu_time:
        return None
    done = subprocess.run([gnu_time, "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def generated_spec(n_layers: int, folder: Path) -> Path:
    """A plain chain of conv/batchnorm/relu triples with n_layers layers in all."""
    lines = ["name: generated", "input: [16, 32, 32]", "layers:"]
    for _i in range(n_layers // 3):
        lines += ["  - conv: {filters: 16, kernel: 3, padding: 1, bias: false}", "  - batchnorm", "  - relu"]
    path = folder / f"chain_{n_layers}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--peer-python", help="a Python with torch, torchvision and torchinfo installed")
    args = parser.parse_args()
    exe = shutil.which("archcheck") or sys.exit("archcheck is not on PATH (pip install -e .)")

    resnet = [exe, "summary", str(ROOT / "samples" / "resnet50.yaml")]
    med, best = measure(resnet, args.runs)
    rss = peak_rss(resnet)
    print(f"archcheck summary resnet50: median {med:.3f} s, min {best:.3f} s, peak RSS "
          f"{rss:.1f} MiB (targets 0.3 s, 80 MiB)")

    with tempfile.TemporaryDirectory() as tmp:
        per_layer = []
        for n in (2_500, 5_000, 10_000, 20_000):
            path = generated_spec(n, Path(tmp))
            m, b = measure([exe, "summary", str(path), "--format", "json"], max(3, args.runs // 2))
            per_layer.append(b / n)
            print(f"generated {n:>6,} layers: median {m:.3f} s, min {b:.3f} s, {b / n * 1e6:.1f} us/layer")
        print(f"time per layer, 20,000 vs 2,500 layers: {per_layer[-1] / per_layer[0]:.2f}x (1.0 = linear)")

    if args.peer_python:
        peer = [args.peer_python, "-c", PEER]
        pm, pb = measure(peer, max(3, args.runs // 2))
        prss = peak_rss(peer)
        print(f"torchinfo.summary resnet50: median {pm:.3f} s, min {pb:.3f} s, peak RSS {prss:.1f} MiB")
        print(f"archcheck is {pm / med:.1f}x faster (medians) and uses {prss / rss:.1f}x less memory")


if __name__ == "__main__":
    main()
