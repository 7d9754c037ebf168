"""Benchmark the NumPy executor against PyTorch on the CPU and ONNX Runtime (run by hand; not a test).

    python benchmarks/bench_executor.py [--nets resnet18 resnet50 mobilenetv2 efficientnet_b0]
                                        [--threads 1 2] [--batch 8] [--runs 7] [--json out.json]

Needs torch, torchvision and onnxruntime beside archcheck (archcheck itself never imports torch).

One worker process per thread count, started with ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
``MKL_NUM_THREADS`` set before anything imports NumPy, so that NumPy's BLAS, torch
(``torch.set_num_threads``) and ONNX Runtime (``intra_op_num_threads``) each really use that many threads.
In each worker, at batch ``--batch``, 224x224, float32:

- the machine's ceiling: NumPy's float32 matrix product of two 2048x2048 matrices, best of 5, in GFLOP/s;
- per network, forward at inference: the executor (``forward``, batchnorms folded and Winograd's weights
  made once with ``fold_weights``, activations in place, the batch cut into one part per thread, as
  ``archcheck run`` does), torchvision's model of the
  same design in ``eval()`` under ``torch.inference_mode()``, and ONNX Runtime on archcheck's export of the
  spec. The same weights everywhere: ``init_params`` (seed 0), copied into torchvision's model in
  state_dict order (every shape checked); the logits of torch and ONNX Runtime are compared with the
  executor's, kept from one more forward after the timed ones (``on_layer``: a report of every layer, which
  ``run`` makes, is not what is timed);
- ResNet-18 forward + backward in training mode (batch statistics), cross-entropy loss on fixed labels:
  ``executor.gradients`` (one part of the batch per thread, walked forward and backward, as ``archcheck train`` runs it;
  without the gradient with respect to the batch, which torch does not compute either)
  against torch's ``loss.backward()`` (gradients zeroed first);
- the executor's peak memory in one inference forward at each thread count, measured with tracemalloc (NumPy
  reports its array allocations to it; the input batch was allocated before tracing began and is added), against the
  propagator's prediction ``totals.peak_activation_bytes``.

Each timing: one warm-up call each, then ``--runs`` rounds in which the runtimes take turns (a busy
machine slows them alike); medians, and the ratios of medians. The machine is shared: the load average
is printed before and after.

Goals (issue 13): ResNet-18/50 forward exe/torch <= 1 at 1 and 2 threads, exe/ORT <= 1.5; MobileNetV2 and
EfficientNet-B0 forward exe/torch <= 1.5; ResNet-18 forward + backward exe/torch <= 1.3; measured peak
within 10 % of the prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCHVISION = {"resnet18": "resnet18", "resnet50": "resnet50", "mobilenetv2": "mobilenet_v2",
               "efficientnet_b0": "efficientnet_b0"}
NETS = list(TORCHVISION)
TRAINED = "resnet18"  # the network timed forward + backward


# -- the worker: one thread count --------------------------------------------------------------
def timed(fns: dict, runs: int) -> dict[str, float]:
    """Median seconds of each function over ``runs`` rounds after a warm-up call, taking turns in a round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def sgemm_gflops(np) -> float:
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def torch_model(name: str, params, torch, torchvision):
    """torchvision's model of the same design with archcheck's weights: layer by layer in order, each
    array by its state_dict suffix (every shape checked)."""
    model = getattr(torchvision.models, TORCHVISION[name])()
    theirs = _by_layer(k for k in model.state_dict() if not k.endswith("num_batches_tracked"))
    ours = _by_layer(params)
    if len(ours) != len(theirs):
        raise SystemExit(f"{name}: archcheck has {len(ours)} layers with weights, torchvision {len(theirs)}")
    state = model.state_dict()
    copied = {}
    for (mine, my_keys), (module, keys) in zip(ours.items(), theirs.items()):
        if sorted(my_keys) != sorted(keys):
            raise SystemExit(f"{name}: archcheck's {mine} has {my_keys}, torchvision's {module} {keys}")
        for suffix in keys:
            array, key = params[f"{mine}.{suffix}"], f"{module}.{suffix}"
            if tuple(state[key].shape) != array.shape:
                raise SystemExit(f"{name}: torchvision's {key} {tuple(state[key].shape)} meets {array.shape}")
            copied[key] = torch.from_numpy(array.copy())
    model.load_state_dict(copied, strict=False)
    return model


def _by_layer(names) -> dict[str, list[str]]:
    layers: dict[str, list[str]] = {}
    for name in names:
        layer, suffix = name.rsplit(".", 1)
        layers.setdefault(layer, []).append(suffix)
    return layers


def worker(args) -> dict:
    import numpy as np
    import torch

    threads = args.threads[0]
    torch.set_num_threads(threads)
    out = {"threads": threads, "sgemm_gflops": sgemm_gflops(np), "nets": {}, "load_before": os.getloadavg()[0]}
    for name in args.nets:
        print(f"  [{threads} thread(s)] {name}", file=sys.stderr, flush=True)
        out["nets"].update(bench_net(name, threads, args))
    out["load_after"] = os.getloadavg()[0]
    return out


def bench_net(name: str, threads: int, args) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision

    from archcheck import executor
    from archcheck.onnx_export import export_model
    from archcheck.pipeline import analyze

    analysis = analyze(ROOT / "samples" / f"{name}.yaml", batch=args.batch)
    rng = np.random.default_rng(3)
    params = executor.init_params(analysis, seed=0)
    for key, array in params.items():  # batchnorm statistics other than the initial 0 and 1, so folding shows
        if key.endswith("running_mean"):
            array[...] = rng.normal(0, 0.1, array.shape)
        elif key.endswith("running_var"):
            array[...] = rng.uniform(0.5, 1.5, array.shape)
    x = np.random.default_rng(1).standard_normal((args.batch, *analysis.spec.input)).astype(np.float32)
    output = analysis.spec.outputs[0]
    head = analysis.graph.nodes[output]
    logits = head.inputs[0] if head.type == "softmax" else head.name

    folded = executor.fold_weights(analysis, params, "float32")
    model = torch_model(name, params, torch, torchvision).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # ONNX Runtime's idle workers spin, by default, waiting for the next operator, and go on spinning after a run:
    # measured here, that took a core from the runtime timed next (the executor at 2 threads: 0.38 s instead of
    # 0.33 s) and saved ONNX Runtime nothing (0.128 s either way)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(export_model(analysis, params, outputs=[logits]).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    xt = torch.from_numpy(x)
    results = {}

    kept = np.empty((args.batch, *analysis.layers[logits].shape), np.float32)

    def keep_logits(node, y, _seconds, rows=slice(None)):
        if node.name == logits:
            kept[rows] = y  # (a softmax after it may write over it)

    def run_exe():  # (the logits are kept by one more pass, after: a report of every layer is not what is timed)
        executor.forward(analysis, params, x, fold=folded, threads=threads)

    def run_torch():
        with torch.inference_mode():
            results["torch"] = model(xt).numpy()

    def run_ort():
        results["ort"] = session.run([logits], {"input": x})[0]

    times = timed({"exe": run_exe, "torch": run_torch, "ort": run_ort}, args.runs)
    executor.forward(analysis, params, x, fold=folded, on_layer=keep_logits, threads=threads)
    results["exe"] = kept
    plan = executor.plan_for(analysis, batch=executor.batch_parts(args.batch, threads)[0].stop, dtype=np.float32)
    ours = results["exe"]  # as run: batchnorms folded, Winograd's convolutions
    scale = float(np.abs(ours).max())
    row = {"exe": times["exe"], "torch": times["torch"], "ort": times["ort"],
           "torch_err": float(np.abs(results["torch"] - ours).max()) / scale,
           "ort_err": float(np.abs(results["ort"] - ours).max()) / scale,
           "folded": len(plan.folds), "in_place": len(plan.in_place), "halved": len(plan.halved),
           "kernels": len(plan.kernels)}
    row.update(peak_memory(analysis, params, x, folded, threads))
    rows = {name: row}
    if name != TRAINED:
        return rows

    labels = np.random.default_rng(2).integers(0, 1000, args.batch)
    targets = {output: labels}
    model.train()
    loss_fn, lt = torch.nn.CrossEntropyLoss(), torch.from_numpy(labels)

    def exe_train():
        executor.gradients(analysis, params, x, targets, input_grad=False,  # as torch: the batch needs no gradient
                           threads=threads)

    def torch_train():
        model.zero_grad(set_to_none=True)
        loss_fn(model(xt), lt).backward()

    times = timed({"exe": exe_train, "torch": torch_train}, args.runs)
    rows[f"{name} train"] = {"exe": times["exe"], "torch": times["torch"]}
    return rows


def peak_memory(analysis, params, x, folded, threads) -> dict:
    import gc
    import tracemalloc

    from archcheck import executor

    gc.collect()
    tracemalloc.start()
    executor.forward(analysis, params, x, fold=folded, threads=threads)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"peak": peak + x.nbytes, "predicted": analysis.totals.peak_activation_bytes}


# -- the parent: one worker per thread count, one table -------------------------------------------
def run_worker(threads: int, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, __file__, "--worker", "--threads", str(threads), "--all-threads",
               *map(str, args.threads), "--batch", str(args.batch), "--runs", str(args.runs), "--nets", *args.nets]
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def table(results: list[dict], nets: list[str]) -> list[str]:
    rows = [n for n in nets] + ([f"{TRAINED} train"] if TRAINED in nets else [])
    head = f"{'':<22}" + "".join(f"| {r['threads']} thr: exe s   torch s   ORT s   exe/torch  exe/ORT "
                                 for r in results)
    lines = [head, "-" * len(head)]
    for row in rows:
        label = f"{row.replace(' train', '')} {'fwd+bwd' if row.endswith('train') else 'forward'}"
        cells = ""
        for r in results:
            v = r["nets"][row]
            ort = v.get("ort")
            cells += (f"| {v['exe']:>11.3f} {v['torch']:>9.3f} {ort if ort is None else f'{ort:7.3f}'!s:>7} "
                      f"{ratio(v['exe'], v['torch']):>10} {ratio(v['exe'], ort):>8} ")
        lines.append(f"{label:<22}" + cells)
    lines.append("")
    lines.append("numpy sgemm (2048^3, best of 5): " + ", ".join(f"{r['sgemm_gflops']:.0f} GFLOP/s at {r['threads']} "
                                                                   f"thread(s)" for r in results))
    for r in results:
        for name in nets:
            v = r["nets"][name]
            lines.append(f"{name} forward at {r['threads']} thread(s): peak memory measured {v['peak'] / 2**20:,.1f} "
                         f"MiB, predicted {v['predicted'] / 2**20:,.1f} MiB ({v['peak'] / v['predicted']:.3f}x); "
                         f"{v['folded']} batchnorms folded, {v['in_place']} layers in place, {v['halved']} reading "
                         f"their input halved, {v['kernels']} by Winograd; logits as run vs torch "
                         f"{v['torch_err']:.1e}, vs ORT {v['ort_err']:.1e} "
                         "(max abs diff / max |logit|)")
    lines.append("load average (1 min) before/after each worker: " + ", ".join(
        f"{r['load_before']:.2f}/{r['load_after']:.2f}" for r in results))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=NETS, choices=NETS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--all-threads", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(worker(args)))
        return
    print(f"{os.cpu_count()} CPUs; batch {args.batch}, 224x224, float32; median of {args.runs} runs each, "
          f"runtimes taking turns; one process per thread count", flush=True)
    results = [run_worker(t, args) for t in args.threads]
    print("\n".join(table(results, args.nets)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
