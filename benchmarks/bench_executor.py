"""Benchmark the NumPy executor's forward pass against ONNX Runtime and ONNX's reference evaluator
(run by hand; not a test).

    python benchmarks/bench_executor.py [--nets resnet18 resnet50] [--batch 8] [--runs 5] [--reference-batch 8]

For each network, in this one process, on the same float32 weights (``init_params``, seed 0) and the
same random batch (batch x 3 x 224 x 224):
- the executor (``archcheck.executor.forward``) and ONNX Runtime on the exported model
  (``intra_op_num_threads=2``): median and best of ``--runs`` timed passes each after a warm-up, taking
  turns so that other load on the machine slows both alike; the ratios use the best times, the figure
  least disturbed by other processes;
- ``onnx.reference.ReferenceEvaluator`` on the exported model: ONE timed pass, at ``--reference-batch``
  (it is pure Python/NumPy and slow); when that is smaller than ``--batch`` its time is scaled linearly
  to the full batch, and the output says so;
- the logits (the softmax head's input: random weights make the softmax nearly one-hot) of the executor
  and of the reference evaluator checked against ONNX Runtime's;
- the executor's peak memory in one forward pass, measured with tracemalloc (NumPy reports its array
  allocations to it), against the propagator's predicted peak activation memory
  (``totals.peak_activation_bytes``, which counts the input batch) and peak inference memory
  (``totals.peak_inference_bytes``, which adds parameters and buffers).

Targets (issue 4): executor within 3x of ONNX Runtime, at least 20x faster than the reference
evaluator, measured peak within 1.5x of the predicted one.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archcheck.executor import forward, init_params  # noqa: E402
from archcheck.onnx_export import export_model  # noqa: E402
from archcheck.pipeline import analyze  # noqa: E402


def timed(fns: dict, runs: int) -> dict[str, tuple[float, float]]:
    """(median, best) seconds of each function over ``runs`` rounds after a warm-up call; the functions
    take turns within a round, so a busy machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def bench(name: str, batch: int, runs: int, reference_batch: int) -> dict:
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    analysis = analyze(ROOT / "samples" / f"{name}.yaml", batch=batch)
    params = init_params(analysis, seed=0)
    x = np.random.default_rng(1).standard_normal((batch, *analysis.spec.input)).astype(np.float32)
    out = analysis.spec.outputs[0]
    # a softmax of random weights is nearly one-hot: compare its input, the logits, as well
    head = analysis.graph.nodes[out]
    logits = head.inputs[0] if head.type == "softmax" else out
    model = export_model(analysis, params, outputs=list(dict.fromkeys([out, logits])))
    print(f"\n{name}: batch {batch}, input {x.shape}, {analysis.totals.macs * batch / 1e9:.1f} GMACs per batch")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ours = forward(analysis, params, x, keep=True)[logits]
    theirs = session.run([logits], {"input": x})[0]
    times = timed({"executor": lambda: forward(analysis, params, x),
                   "onnxruntime": lambda: session.run([out], {"input": x})}, runs)
    (exe_med, exe_best), (ort_med, ort_best) = times["executor"], times["onnxruntime"]
    print(f"  executor            median {exe_med:8.3f} s   best {exe_best:8.3f} s")
    print(f"  onnxruntime (2 thr) median {ort_med:8.3f} s   best {ort_best:8.3f} s")
    print(f"  '{logits}': max |executor - onnxruntime| = {np.max(np.abs(ours - theirs)):.2e} "
          f"(max |value| {np.max(np.abs(theirs)):.2e})")

    reference = ReferenceEvaluator(model)
    xr = x[:reference_batch]
    start = time.perf_counter()
    ref_out = reference.run([out, logits], {"input": xr})[-1]
    ref_time = (time.perf_counter() - start) * batch / len(xr)
    scaled = f" (one pass at batch {len(xr)}, scaled x{batch / len(xr):g})" if len(xr) < batch else " (one pass)"
    print(f"  onnx.reference      {ref_time:8.1f} s{scaled}; max |reference - onnxruntime| "
          f"{np.max(np.abs(ref_out - theirs[:len(xr)])):.2e}")

    del model, reference
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    forward(analysis, params, x)
    _, forward_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t = analysis.totals
    weights = sum(a.nbytes for a in params.values())
    activations = forward_peak + x.nbytes  # the input batch was allocated before tracing began
    inference = activations + weights
    print(f"  peak activations    measured {mib(activations)} (forward's allocations + the input), predicted "
          f"{mib(t.peak_activation_bytes)} at '{t.peak_at}': {activations / t.peak_activation_bytes:.2f}x")
    print(f"  peak inference      measured {mib(inference)} (+ {mib(weights)} weights), predicted "
          f"{mib(t.peak_inference_bytes)}: {inference / t.peak_inference_bytes:.2f}x")
    print(f"  executor / onnxruntime {exe_best / ort_best:.2f}x (target <= 3x); "
          f"reference / executor {ref_time / exe_best:.0f}x (target >= 20x)  [best times]")
    return dict(exe=exe_best, ort=ort_best, ref=ref_time, mem=inference / t.peak_inference_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference-batch", type=int, default=8,
                        help="batch for the one reference-evaluator pass (time scaled to --batch)")
    args = parser.parse_args()
    print(f"numpy {np.__version__}; BLAS: {_blas()}; {os.cpu_count()} CPUs; load average {_load()}")
    rows = {name: bench(name, args.batch, args.runs, min(args.reference_batch, args.batch)) for name in args.nets}
    print(f"\nload average {_load()} (other processes running make every figure noisy)")
    print(f"\nbest of {args.runs} runs; reference: one run")
    print(f"{'network':<12}{'executor':>10}{'ort':>10}{'reference':>11}{'exe/ort':>9}{'ref/exe':>9}{'mem':>7}")
    for name, r in rows.items():
        print(f"{name:<12}{r['exe']:>9.3f}s{r['ort']:>9.3f}s{r['ref']:>10.1f}s{r['exe'] / r['ort']:>8.2f}x"
              f"{r['ref'] / r['exe']:>8.0f}x{r['mem']:>6.2f}x")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except (TypeError, KeyError):  # NumPy < 1.25
        return "unknown"


if __name__ == "__main__":
    main()
