"""Benchmark ``read_onnx`` (run by hand; not a test).

    python benchmarks/bench_import.py [--runs 7]

Measures, in one process (the model file in the file cache):
- importing ResNet-50 exported by ``archcheck export`` (25.6 M weights): median and min seconds; target 2 s;
- also its analysis (``read_onnx`` and then expand + propagate, what ``archcheck summary model.onnx`` does);
- chains of conv -> batchnorm -> relu units, 1x, 2x and 4x as deep: seconds per node must stay flat (linear).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402

from archcheck.executor import init_params  # noqa: E402
from archcheck.importers.load import load_model_spec  # noqa: E402
from archcheck.importers.onnx import read_onnx  # noqa: E402
from archcheck.onnx_export import export_model  # noqa: E402
from archcheck.pipeline import analyze  # noqa: E402

CHAIN = """
name: chain{units}
input: [16, 32, 32]
blocks:
  unit:
    layers: [{{conv: {{filters: 16, kernel: 3, padding: 1, bias: false}}}}, batchnorm, relu]
layers:
  - unit:
    repeat: {units}
  - globalavgpool
  - dense: 10
"""


def export(spec: Path, out: Path) -> int:
    analysis = analyze(spec)
    model = export_model(analysis, init_params(analysis, seed=0))
    onnx.save_model(model, str(out))
    return len(model.graph.node)


def timed(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nodes = export(ROOT / "samples" / "resnet50.yaml", tmp / "resnet50.onnx")
        med, best = timed(lambda: read_onnx(tmp / "resnet50.onnx"), args.runs)
        print(f"resnet50: {nodes} nodes, read_onnx median {med:.3f} s, min {best:.3f} s (target 2 s)")
        med, best = timed(lambda: load_model_spec(tmp / "resnet50.onnx"), args.runs)
        print(f"resnet50: read_onnx + expand, median {med:.3f} s, min {best:.3f} s")
        for units in (250, 500, 1000):
            spec = tmp / f"chain{units}.yaml"
            spec.write_text(CHAIN.format(units=units))
            nodes = export(spec, tmp / f"chain{units}.onnx")
            path = tmp / f"chain{units}.onnx"
            med, best = timed(lambda path=path: read_onnx(path), args.runs)
            print(f"chain of {units:>4} units: {nodes:>5} nodes, median {med:.3f} s, "
                  f"{med / nodes * 1e6:.0f} us per node")


if __name__ == "__main__":
    main()
