"""Fuzz archcheck by hand: ``python -m tests.fuzz [--cases N] [--seconds S] [--seed K] [--out DIR]``.

Each case is made from ``random.Random(seed + i)``, so ``--seed K --cases 1 --first I`` replays case I.
Failures are written to DIR (spec, extra files, command, output) and summarised by kind at the end.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from .cases import case
from .harness import run_case


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="how many cases [1000]")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0, help="the first case's seed [0]")
    parser.add_argument("--first", type=int, default=0, help="start at this case number [0]")
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"), help="where failures go")
    parser.add_argument("--memory", type=int, default=4, help="address-space limit in GiB [4]")
    args = parser.parse_args(argv)
    limit = args.memory * 2**30  # a blow-up becomes a MemoryError, which the contract reports
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    start, seen, kinds, ran = time.monotonic(), {}, Counter(), 0
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=not sys.stderr.isatty()) as bar:
        task = bar.add_task("fuzzing", total=args.cases)
        for i in range(args.first, args.first + args.cases):
            if args.seconds and time.monotonic() - start > args.seconds:
                break
            c = case(random.Random(args.seed + i))
            kinds[c.kind] += 1
            for failure in run_case(c):
                key = failure.key()
                if key not in seen:
                    seen[key] = i
                    folder = args.out / f"{len(seen):03d}-{failure.kind}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / "spec.yaml").write_bytes(c.spec if isinstance(c.spec, bytes) else c.spec.encode(
                        "utf-8", "surrogatepass"))
                    for name, data in c.files.items():
                        (folder / name).write_bytes(data)
                    (folder / "README.txt").write_text(
                        f"case {i} (--seed {args.seed} --first {i} --cases 1): {failure.kind}\n"
                        f"archcheck {' '.join(failure.command)}  (on spec.yaml)\n\n{failure.detail}\n")
                    last = failure.detail.strip().splitlines()[-1][:150] if failure.detail.strip() else ""
                    bar.console.print(f"[red]{failure.kind}[/red] case {i}: archcheck {' '.join(failure.command)}: "
                                      f"{last}", markup=True, highlight=False)
            ran += 1
            bar.advance(task)
    elapsed = time.monotonic() - start
    print(f"{ran:,} cases ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}) in {elapsed:.0f} s; "
          f"{len(seen)} distinct failures" + (f", written to {args.out}/" if seen else ""))
    return 1 if seen else 0


if __name__ == "__main__":
    sys.exit(main())
