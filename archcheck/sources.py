"""Where a spec is read from: a file, a file at a git revision (``REV:PATH``), or standard input (``-``).

``archcheck diff`` compares two versions of a spec, which need not both be on disk. A ``Source`` is read
whole, once. Its ``name`` is what messages and locations call it (``HEAD~1:model.yaml:12:5``); its
``path`` is the file it is, or stands for, in the working copy: where the configuration is looked for,
which ``per-file-ignores`` apply, and whose suffix tells a model file (``.onnx``, ``.keras``) from a spec.
A spec refers to nothing outside itself (the language has no includes), so a spec read from a revision
or from standard input means exactly what it would on disk.

A revision is read by running git (``git rev-parse``, ``git cat-file``) in the repository that holds
the file, so it works from any directory. ``PATH`` is relative to the current directory, as ``./PATH``
is to git: ``HEAD~1:model.yaml`` and ``model.yaml`` name one file at two times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from archcheck.errors import ArchcheckError

STDIN = "-"
STDIN_NAME = "<stdin>"


class SourceError(ArchcheckError):
    """A spec that cannot be fetched: git missing, not a repository, no such revision or file (exit 2)."""


@dataclass(frozen=True)
class Source:
    name: str  # what messages call it: the path, REV:PATH or <stdin>
    path: str  # the file it is, or stands for, in the working copy
    data: bytes | None = None  # its content when it is not the file at ``path`` (a revision, standard input)


def _split(arg: str) -> tuple[str | None, str]:
    """(revision, path) of ``REV:PATH``, (None, path) of a path: an existing path is a path, so a file
    name with a colon is a file."""
    if os.path.lexists(arg) or ":" not in arg:
        return None, arg
    rev, path = arg.split(":", 1)
    return rev, path


def path_of(arg: str) -> str | None:
    """The working-copy file an argument names (``REV:PATH``'s PATH), without reading it; None for ``-``."""
    return None if arg == STDIN else _split(arg)[1]


def parse(arg: str, stands_for: str | None = None) -> Source:
    """The source an argument names, read: ``-`` standard input (standing for the file ``stands_for``),
    ``REV:PATH`` a file at a git revision, else a path (which the reader reports if it is missing)."""
    if arg == STDIN:
        return Source(STDIN_NAME, stands_for or STDIN_NAME, _stdin(stands_for))
    rev, path = _split(arg)
    return Source(arg, arg) if rev is None else at_revision(rev, path)


def _stdin(stands_for: str | None) -> bytes:
    from archcheck.importers import is_model
    from archcheck.yamlsrc import MAX_BYTES

    if sys.stdin.isatty():
        raise SourceError("'-' reads a spec from standard input, which is a terminal here",
                          "pipe a spec in, e.g. `git show HEAD~1:model.yaml | archcheck diff - model.yaml`")
    # a spec is at most MAX_BYTES (one byte more tells that it is over); a model file is read whole, as from disk
    return sys.stdin.buffer.read() if stands_for and is_model(stands_for) else sys.stdin.buffer.read(MAX_BYTES + 1)


def _git(args: list[str], cwd: Path, name: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        raise SourceError(f"{name}: reading a file at a revision needs git, and no `git` program was found on "
                          "PATH", f"install git, or save that version as a file (`git show {name} > old.yaml`) and "
                          "compare the two files") from None


def _first_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ") if lines else "no message"


def at_revision(rev: str, path: str) -> Source:
    """``path`` (relative to the current directory) as it is at git revision ``rev``, read in its repository."""
    name = f"{rev}:{path}"
    if not rev:
        raise SourceError(f"'{name}' names no revision before the colon",
                          f"write REV:PATH, e.g. HEAD:{path}; for a file whose name has a colon, give its path "
                          "as it exists on disk")
    if not path:
        raise SourceError(f"'{name}' names no file after the colon", f"write REV:PATH, e.g. {rev}:model.yaml")
    if rev.startswith("-"):
        raise SourceError(f"'{name}': '{rev}' is not a revision (it starts with '-')",
                          "write REV:PATH with a commit, branch or tag, e.g. HEAD~1:model.yaml")
    given = os.path.abspath(path)
    full = Path(os.path.realpath(os.path.dirname(given))) / os.path.basename(given)
    here = next(d for d in full.parents if d.is_dir())  # the file, or even its folder, may be gone from the checkout
    top = _git(["rev-parse", "--show-toplevel"], here, name)
    if top.returncode:
        raise SourceError(f"{name}: {here} is not in a git repository (git: {_first_line(top.stderr)})",
                          "give REV:PATH for a file in a git checkout, or compare two files")
    root = Path(top.stdout.decode().strip())
    rel = full.relative_to(root).as_posix()
    commit = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root, name)
    if commit.returncode:
        raise SourceError(f"{name}: there is no revision '{rev}' in the repository at {root}",
                          "give a commit, branch or tag that exists; `git log --oneline` lists recent commits")
    sha = commit.stdout.decode().strip()
    kind = _git(["cat-file", "-t", f"{sha}:{rel}"], root, name)
    if kind.returncode:
        raise SourceError(f"{name}: '{rel}' does not exist at {rev} (commit {sha[:12]}) in the repository at {root}",
                          f"check the path, which is relative to the current directory; `git ls-tree -r "
                          f"--name-only {rev}` lists the files at that revision")
    kind = kind.stdout.decode().strip()
    if kind != "blob":
        what = {"tree": "a directory", "commit": "a submodule"}.get(kind, f"a git {kind}")
        raise SourceError(f"{name}: '{rel}' is {what} at {rev}, not a file",
                          f"name a spec file, e.g. {rev}:{path.rstrip('/')}/model.yaml")
    # cat-file, not show: the blob's bytes as committed, whatever textconv or pager the user's git config sets
    blob = _git(["cat-file", "blob", f"{sha}:{rel}"], root, name)
    if blob.returncode:
        raise SourceError(f"{name}: git could not read '{rel}' at {rev}: {_first_line(blob.stderr)}",
                          "check the repository with `git fsck`")
    return Source(name, path, blob.stdout)


def text_of(source: Source) -> str | None:
    """A spec source's text (None for a file on disk, which is read where it is; empty for a model file)."""
    from archcheck.importers import is_model
    from archcheck.yamlsrc import decode

    if source.data is None:
        return None
    return "" if is_model(source.path) else decode(source.data, source.name)


def read(source: Source):
    """The expanded Spec of a source; SpecError (or ImportProblem for a model file) naming ``source.name``."""
    from archcheck.importers import is_model
    from archcheck.pipeline import read_spec

    if source.data is None:
        return read_spec(source.path)
    if is_model(source.path):
        return _model(source)
    from archcheck.spec import expand
    from archcheck.yamlsrc import load_text

    return expand(load_text(text_of(source), source.name), source.name)


def _model(source: Source):
    """A model file's bytes imported as its importer reads a file: from a temporary copy under its own name
    (an ONNX model's external data is not fetched with it), its messages naming the source."""
    import tempfile

    from archcheck.importers import ImportProblem
    from archcheck.importers.load import document, read_model
    from archcheck.spec import expand

    with tempfile.TemporaryDirectory(prefix="archcheck-") as tmp:
        copy = Path(tmp) / Path(source.path).name
        copy.write_bytes(source.data)
        try:
            imported = read_model(copy)
        except ArchcheckError as exc:  # ImportProblem, or the Keras reader's own
            raise ImportProblem(exc.message.replace(str(copy), source.name),
                                exc.fix.replace(str(copy), source.name) if exc.fix else None) from None
    return expand(document(imported, source.name), source.name)
