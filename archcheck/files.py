"""Reading arrays and writing results without trusting the file: the executor's side of the disk.

- ``read_arrays`` opens ``.npy``/``.npz`` files as regular files only (a FIFO would block, a device
  never end), reads every array's header before its data, and refuses what does not fit before
  reading it: object arrays, non-numeric types, truncated files, headers that claim more bytes than
  ``limit`` (a 2 MB ``.npz`` can hold a 2 GiB array of zeros), and members it was not asked for.
  ``take`` reads only the first samples of the arrays named, so ``--batch 1`` reads one sample.
- ``write_atomic`` writes to a temporary file beside the target and renames it into place: a
  failure leaves the old file as it was and no partial file behind.
- ``parse_size`` and ``default_max_memory`` serve the commands' ``--max-memory``.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

from archcheck.errors import ArchcheckError


class FileProblem(ArchcheckError):
    """A file that cannot be used, and how to fix it; ``exists``: the path names something."""

    def __init__(self, message: str, fix: str, exists: bool = True):
        super().__init__(message, fix)
        self.exists = exists


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """``8GiB``, ``500MB``, ``2g``, ``1000000`` -> bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as 8GiB, 500MB or 2000000, received '{text}'")
    return int(Fraction(m.group(1)) * _UNITS[m.group(2).lower()])  # exact: "1.1GiB" is not rounded through a float


def default_max_memory() -> int:
    """Half of this machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def human(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


@contextmanager
def open_regular(path: str | Path, quoted: bool = False):
    """A regular file opened for reading, else FileProblem: never blocks on a FIFO (opened non-blocking)
    and never reads a device, whose size on disk says nothing."""
    shown = f"'{path}'" if quoted else str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileProblem(f"cannot read {shown}: No such file or directory", "check the path", exists=False) from None
    except OSError as exc:
        raise FileProblem(f"cannot read {shown}: {exc.strerror or exc}", "check the path and its permissions",
                          exists=False) from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileProblem(f"{shown} is {_kind(mode)}, not a regular file", "give the path of a file")
        os.set_blocking(fd, True)
        yield fh


def _header(stream, where: str):
    """(shape, dtype, fortran_order) of an .npy stream positioned at its start."""
    import numpy as np
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(stream, max_header_size=10_000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(stream, max_header_size=10_000)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, zipfile.BadZipFile, zlib.error) as exc:
        raise FileProblem(f"{where} is not a NumPy array ({exc})",
                          "write it with numpy.save (.npy) or numpy.savez (.npz)") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise FileProblem(f"{where} holds {dtype} values; archcheck reads numbers only (no objects, text or "
                          "records: those would need pickle)", "save a numeric array, e.g. x.astype('float32')")
    return tuple(int(n) for n in shape), np.dtype(dtype), fortran


def _read(stream, shape, dtype, fortran, rows: int | None, where: str):
    """The first ``rows`` along axis 0 (all when None) of an array whose header was just read."""
    import numpy as np

    if rows is not None and shape:
        shape = (min(rows, shape[0]), *shape[1:])
        if fortran and len(shape) > 1:
            raise FileProblem(f"{where} is stored in Fortran order, so its first samples are not contiguous",
                              "save it with numpy.save(path, np.ascontiguousarray(x))")
    count = math.prod(shape)
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise FileProblem(f"{where} is truncated: its header promises {count * dtype.itemsize:,} bytes of data, "
                          f"the file holds {len(data):,}", "write the file again")
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()  # writable, and detached from the bytes read


def read_arrays(path: str | Path, limit: int, names: Callable[[list[str]], list[str]] | None = None,
                rows: int | None = None, batch_ndim: int | None = None) -> dict:
    """Arrays of an ``.npy`` (under the name ``""``) or ``.npz`` file, checked before they are read.

    ``names(available)`` chooses the members to read (all by default); ``rows`` reads only the first
    samples of each array with ``batch_ndim`` axes (of any array when None); every array read must fit
    in ``limit`` bytes, from its header."""
    path = Path(path)
    with open_regular(path) as fh:
        magic = fh.read(6)
        fh.seek(0)
        if magic == b"\x93NUMPY":
            shape, dtype, fortran = _header(fh, str(path))
            take = rows if batch_ndim in (None, len(shape)) else None
            _fits(shape, dtype, take, limit, str(path))
            return {"": _read(fh, shape, dtype, fortran, take, str(path))}
        if not magic.startswith(b"PK"):
            raise FileProblem(f"{path} cannot be read as a NumPy .npy file or an .npz archive (it starts with "
                              "neither's signature)",
                              "write it with numpy.save (.npy) or numpy.savez (.npz)")
        try:
            with zipfile.ZipFile(fh) as archive:
                members = {info.filename[:-4] if info.filename.endswith(".npy") else info.filename: info
                           for info in archive.infolist()}
                chosen = names(list(members)) if names else list(members)
                out = {}
                for name in chosen:
                    where = f"{path} (array '{name}')"
                    with archive.open(members[name]) as stream:
                        shape, dtype, fortran = _header(stream, where)
                        take = rows if batch_ndim in (None, len(shape)) else None
                        _fits(shape, dtype, take, limit, where)
                        out[name] = _read(stream, shape, dtype, fortran, take, where)
                return out
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError) as exc:
            raise FileProblem(f"{path} cannot be read as an .npz archive ({type(exc).__name__}: {exc})",
                              "write it again with numpy.savez") from None


def _fits(shape, dtype, rows, limit: int, where: str) -> None:
    n = math.prod(shape[1:]) * min(rows, shape[0]) if rows is not None and shape else math.prod(shape)
    if n * dtype.itemsize > limit:
        raise FileProblem(f"{where} holds an array of shape {tuple(shape)} ({dtype}): reading it needs "
                          f"{human(n * dtype.itemsize)}, more than --max-memory ({human(limit)})",
                          "use fewer samples (--batch), a smaller array, or raise --max-memory")


def same_file(a: str | Path, b: str | Path | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place; on any failure the
    temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private (0600): give it a new file's permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the mask means setting it: put it back at once
    os.umask(mask)
    return mask
