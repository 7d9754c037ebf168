"""Run one generated case through archcheck's commands, in process, and check the contract:

- the exit code is one the command documents (0 success; 1 findings, for lint, run --grad and train;
  2 invalid input) and never 3;
- nothing says "internal error" or shows a traceback, and a nonzero exit says why;
- JSON and SARIF outputs parse;
- a command that failed left no output file behind;
- each command ends within ``TIMEOUT`` seconds (memory is bounded by the caller: the by-hand runner
  sets an address-space limit, so a blow-up is a MemoryError, which the contract catches as exit 3).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from archcheck.cli import main

from .cases import Case

TIMEOUT = 20  # seconds per command; the slowest legitimate case (train on a sample) takes about 2
EXPECTED = {"summary": {0, 2}, "lint": {0, 1, 2}, "run": {0, 1, 2}, "train": {0, 1, 2}, "export": {0, 2},
            "explain": {0, 2}, "rules": {0, 2}}


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that archcheck's own handlers cannot swallow it."""


@dataclass
class Failure:
    kind: str  # what broke the contract: exit-3, traceback, exit-code, no-message, bad-json, left-file, hang
    command: list[str]
    detail: str

    def key(self) -> tuple:
        """Failures with the same kind and the same last line of detail are one defect."""
        lines = self.detail.strip().splitlines() or [""]
        return self.kind, self.command[0], lines[-1][:120]


def _alarm(signum, frame):
    raise Hang


def run_case(case: Case) -> list[Failure]:
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "spec.yaml"
        spec.write_bytes(case.spec if isinstance(case.spec, bytes) else case.spec.encode("utf-8", "surrogatepass"))
        for name, data in case.files.items():
            (root / name).write_bytes(data)
        before = set(os.listdir(root))
        for command in case.commands:
            failure = run_command(root, command)
            if failure:
                failures.append(failure)
            left = set(os.listdir(root)) - before - {"out.onnx", "out.onnx.data"}
            if left:
                failures.append(Failure("left-file", command, f"files left behind: {sorted(left)}"))
                break
    return failures


def run_command(root: Path, command: list[str]) -> Failure | None:
    name = command[0]
    args = [command[0], *(["spec.yaml"] if name not in ("explain", "rules") else []), *command[1:]]
    cwd = os.getcwd()
    os.chdir(root)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    out = root / "out.onnx"
    out.unlink(missing_ok=True)
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=True)
    except Hang:
        return Failure("hang", command, f"no answer within {TIMEOUT} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        detail = "".join(traceback.format_exception(result.exception))
        return Failure("traceback", command, detail)
    if result.exit_code == 3 or "internal error" in text:
        return Failure("exit-3", command, text[-2000:])
    if "Traceback (most recent call last)" in text:
        return Failure("traceback", command, text[-2000:])
    if result.exit_code not in EXPECTED[name] or (result.exit_code == 1 and name == "run" and "--grad" not in args):
        return Failure("exit-code", command, f"exit {result.exit_code}\n{text[-2000:]}")
    if result.exit_code and not text.strip():
        return Failure("no-message", command, f"exit {result.exit_code} with no output")
    if result.exit_code in (0, 1) and ("json" in args or "sarif" in args):
        def not_json(constant):  # NaN and Infinity: Python reads them, JSON has no such values
            raise ValueError(f"{constant} is not JSON")

        try:
            json.loads(result.stdout, parse_constant=not_json)
        except ValueError as exc:
            return Failure("bad-json", command, f"{exc}\n{result.stdout[:500]}")
    if name == "export" and result.exit_code != 0 and out.exists():
        return Failure("left-file", command, f"exit {result.exit_code} but out.onnx was written")
    return None
