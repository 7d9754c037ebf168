"""A reader that closes the pipe early (`archcheck lint | head -1`) is normal use: every command stops
quietly, with the exit code it had decided on, and never reports an internal error."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG = "input: [3, 32, 32]\nlayers:\n" + "  - conv: {filters: 8, kernel: 3, padding: 1}\n  - relu\n" * 1500

COMMANDS = {  # each prints far more than a pipe buffer (64 KiB) holds, or streams
    "summary": (["summary", "{long}"], 0),
    "summary-json": (["summary", "{long}", "--format", "json"], 0),
    "lint": (["lint", "--no-config", "{long}"], 1),  # findings stay findings when the reader leaves
    "lint-sarif": (["lint", "--no-config", "--format", "sarif", "{long}"], 1),
    "rules": (["rules", "--no-config"], 0),
    "explain": (["explain", "--no-config", "AC101"], 0),
    "run": (["run", str(ROOT / "samples" / "lenet5.yaml")], 0),
    "train": (["train", str(ROOT / "samples" / "lenet5.yaml"), "--steps", "3"], None),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_closed_pipe_is_a_quiet_stop(tmp_path, name):
    (tmp_path / "long.yaml").write_text(LONG)
    args, code = COMMANDS[name]
    args = [a.format(long=tmp_path / "long.yaml") for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "archcheck", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.read(1)  # the first byte, then the reader leaves
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    returncode = proc.wait(timeout=120)
    assert "internal error" not in stderr and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert returncode in ((0, 1) if code is None else (code,)), stderr
