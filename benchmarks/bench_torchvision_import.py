"""Check and time the ONNX importer on torchvision's classifiers (run by hand; not a test).

    python benchmarks/bench_torchvision_import.py DIR [--models resnet18,vgg16] [--variant bn|folded]
                                                      [--runs 3] [--tol 1e-4] [--json results.json]

DIR holds, per model, what the reference script made with PyTorch (torch 2.14.1, torchvision 0.29.1,
random weights, eval mode): ``<name>.onnx`` (exported with BatchNormalization kept), ``<name>.folded.onnx``
(batchnorm folded into the convolutions by the exporter), ``<name>.json`` (torch's figures: trainable
parameters, batchnorm running statistics, output shape, conv + linear MACs measured with forward hooks)
and ``<name>.npz`` (an input ``x`` and torch's eval output ``y``). No PyTorch is needed here.

For each model: ``archcheck.importers.onnx.read_onnx`` (timed: median of ``--runs``), the document
expanded (``archcheck.spec.expand``), its graph built and propagated at batch 1; the totals compared with
torch's (trainable parameters, buffers, conv + dense MACs, the output's shape without the batch); then
``archcheck.executor.forward`` with the imported weights on ``x``, compared with ``y`` by the largest
relative error ``max|out - y| / max|y|`` (ok below ``--tol``). One model's failure is a row naming the
stage that failed, never a crash. With ``--variant folded`` the parameter and buffer counts are expected
to differ from torch's (the batchnorms are gone, each conv before one gains a bias); the row says so.

Exit status: 0 when every row is ok, 1 when any check failed, 2 when the importer is not there.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = ("model", "nodes", "layers", "import s", "params ok", "buffers ok", "MACs ok", "shape ok",
           "max rel err")


def load_importer():
    """``read_onnx``, or None (and why) when the importer is not installed."""
    try:
        from archcheck.importers.onnx import read_onnx
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("archcheck"):
            return None, f"archcheck has no ONNX importer here ({exc.name} is missing)"
        raise
    return read_onnx, None


def to_document(imported, file: str):
    """The imported doc as ``expand`` wants it (mappings and lists that know their place)."""
    try:
        from archcheck.importers.load import document
    except ImportError:
        document = None
    if document is not None:
        return document(imported, file)
    from archcheck.errors import Loc
    from archcheck.yamlsrc import YMap, YSeq

    top = Loc(file, 0, 0)

    def convert(value):
        if isinstance(value, dict):
            out = YMap({k: convert(v) for k, v in value.items()})
            out.loc, out.locs, out.key_locs = top, dict.fromkeys(value, top), dict.fromkeys(value, top)
            return out
        if isinstance(value, (list, tuple)):
            out = YSeq(convert(v) for v in value)
            out.loc, out.locs = top, [top] * len(value)
            return out
        return value

    return convert(imported.doc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def verdict(got, want) -> str:
    return "yes" if got == want else "NO"


def check_model(name: str, folder: Path, variant: str, runs: int, tol: float, read_onnx) -> dict:
    from archcheck.executor import forward
    from archcheck.graph import build_graph
    from archcheck.propagate import propagate
    from archcheck.spec import expand

    row = {"model": name, "stage": None, "error": None, "details": []}
    ref = json.loads((folder / f"{name}.json").read_text())
    if "error" in ref:
        row.update(stage="reference", error=f"the reference script failed: {ref['error'][:160]}")
        return row
    path = folder / (f"{name}.onnx" if variant == "bn" else f"{name}.folded.onnx")
    row["nodes"] = ref.get("exports", {}).get(variant, {}).get("nodes")
    stage = "import"
    try:
        times = []
        imported = None
        for _ in range(runs):
            imported = None
            gc.collect()
            start = time.perf_counter()
            imported = read_onnx(path)
            times.append(time.perf_counter() - start)
        row["import_s"] = statistics.median(times)
        row["layers"] = len(imported.doc.get("layers", []))

        stage = "expand"
        start = time.perf_counter()
        spec = expand(to_document(imported, str(path)), str(path))
        stage = "graph"
        graph = build_graph(spec)
        stage = "propagate"
        analysis = propagate(graph, 1)
        row["analyse_s"] = time.perf_counter() - start

        stage = "compare"
        totals = analysis.totals
        out_name = analysis.graph.outputs[0] if hasattr(analysis.graph, "outputs") else spec.outputs[0]
        got = {"params": totals.trainable, "buffers": totals.non_trainable, "macs": totals.macs,
               "shape": list(analysis.layers[out_name].shape)}
        want = {"params": ref["trainable_params"], "buffers": ref["buffers"], "macs": ref["macs"],
                "shape": list(ref["output_shape"][1:])}
        for key in got:
            row[f"{key}_ok"] = verdict(got[key], want[key])
            if got[key] != want[key]:
                diff = f" ({got[key] - want[key]:+,})" if isinstance(got[key], int) else ""
                row["details"].append(f"{key}: archcheck {got[key]:,} vs torch {want[key]:,}{diff}"
                                      if isinstance(got[key], int) else
                                      f"{key}: archcheck {got[key]} vs torch {want[key]}")
        row["got"], row["want"] = got, want
        if len(spec.outputs) != 1:
            row["details"].append(f"{len(spec.outputs)} outputs: {spec.outputs}")

        stage = "forward"
        data = np.load(folder / f"{name}.npz")
        x, y = data["x"].astype(np.float32), data["y"].astype(np.float32)
        start = time.perf_counter()
        outputs = forward(analysis, imported.weights, x)
        row["forward_s"] = time.perf_counter() - start
        out = outputs[out_name] if out_name in outputs else next(iter(outputs.values()))
        if out.shape != y.shape:
            raise ValueError(f"the executor's output has shape {out.shape}, torch's {y.shape}")
        err = float(np.abs(out.astype(np.float64) - y).max() / max(float(np.abs(y).max()), 1e-30))
        row["max_rel_err"] = err
        if not err < tol:
            row["details"].append(f"max relative error {err:.3g} is not below {tol:g}")
        stage = None
    except Exception as exc:  # noqa: BLE001 - one model's failure is its row
        row["stage"], row["error"] = stage, first_line(exc)
        lines = str(exc).strip().splitlines()
        # the table cuts the message; an ImportProblem lists the unsupported nodes below its first line
        more = lines[:7] if lines and len(lines[0]) > 120 else lines[1:7]
        row["details"].extend(f"{stage}: {line.strip()}" for line in more if line.strip())
        row["traceback"] = traceback.format_exc()[-4000:]
    return row


def row_ok(row: dict, variant: str, tol: float) -> bool:
    if row["error"]:
        return False
    keys = ["macs_ok", "shape_ok"] + (["params_ok", "buffers_ok"] if variant == "bn" else [])
    return all(row.get(k) == "yes" for k in keys) and row.get("max_rel_err", 1.0) < tol


def cells(row: dict) -> list[str]:
    def num(key, fmt):
        return format(row[key], fmt) if row.get(key) is not None else "-"

    return [row["model"], num("nodes", "d"), num("layers", "d"), num("import_s", ".3f"),
            row.get("params_ok", "-"), row.get("buffers_ok", "-"), row.get("macs_ok", "-"),
            row.get("shape_ok", "-"),
            num("max_rel_err", ".2e") if not row["error"] else f"FAILED at {row['stage']}: {row['error']}"]


def print_table(rows: list[dict]) -> None:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    n = len(COLUMNS) - 1  # the last column is free width
    widths = [max(len(t[i]) for t in table if len(t) > i) for i in range(n)]
    for t in table:
        print("  ".join(c.ljust(widths[i]) if i < n and i < len(t) - 1 else c for i, c in enumerate(t)).rstrip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="the reference folder, e.g. /work/data/tv_onnx")
    ap.add_argument("--models", default="", help="comma-separated names (default: every <name>.json in the folder)")
    ap.add_argument("--variant", choices=("bn", "folded"), default="bn",
                    help="bn: <name>.onnx, batchnorm kept (default); folded: <name>.folded.onnx")
    ap.add_argument("--runs", type=int, default=3, help="timed imports per model; the median is shown")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest accepted relative error of the output")
    ap.add_argument("--json", type=Path, help="also write every row (with tracebacks) here")
    args = ap.parse_args(argv)

    read_onnx, missing = load_importer()
    if read_onnx is None:
        print(f"bench_torchvision_import: {missing}; this benchmark runs once "
              "archcheck/importers/onnx.py (read_onnx) has landed", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"bench_torchvision_import: {args.folder} is not a folder", file=sys.stderr)
        return 2
    names = [n for n in args.models.split(",") if n] or sorted(
        p.stem for p in args.folder.glob("*.json") if not p.stem.endswith(".folded"))
    if not names:
        print(f"bench_torchvision_import: no <name>.json in {args.folder}", file=sys.stderr)
        return 2

    rows = []
    for name in names:
        if not (args.folder / f"{name}.json").is_file():
            rows.append({"model": name, "stage": "reference", "error": f"no {name}.json in {args.folder}",
                         "details": []})
        else:
            rows.append(check_model(name, args.folder, args.variant, max(1, args.runs), args.tol, read_onnx))
        print(f"  {name}: {'ok' if row_ok(rows[-1], args.variant, args.tol) else 'NOT ok'}", file=sys.stderr,
              flush=True)
        gc.collect()

    print(f"ONNX import of torchvision classifiers ({args.variant} export, {args.folder}), import time the median "
          f"of {max(1, args.runs)}; max rel err = max|archcheck - torch| / max|torch|, ok below {args.tol:g}")
    if args.variant == "folded":
        print("folded export: the batchnorms are folded into the convolutions, so params/buffers differ from "
              "torch's by design")
    print_table(rows)
    notes = [(r["model"], d) for r in rows for d in r["details"]]
    if notes:
        print("\ndifferences and errors:")
        for model, d in notes:
            print(f"  {model}: {d}")
    good = sum(row_ok(r, args.variant, args.tol) for r in rows)
    print(f"\n{good}/{len(rows)} models ok")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0 if good == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
