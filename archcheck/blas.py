"""How many threads NumPy's BLAS runs a product on, and a way to hold it to one for a while.

The executor's threaded inference (``executor.forward(..., threads=n)``) runs parts of a batch on threads of
its own, each calling BLAS; BLAS's own workers would then compete with them for the cores, so while the parts
run, BLAS is held to one thread. NumPy has no call for this, so it is found in the BLAS library NumPy loaded:
OpenBLAS, as NumPy's wheels bundle it (``openblas_set_num_threads``, with the prefix and suffix the wheels give
their symbols). Any other BLAS (MKL, Accelerate, a BLAS without threads) is left alone: ``threads()`` is None,
and the executor runs one part at a time.

Imported only by executor-time code, never on the static path.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from contextlib import contextmanager
from pathlib import Path

_PREFIXES = ("scipy_openblas", "openblas")  # NumPy 2's wheels, then NumPy 1's and system libraries
_SUFFIXES = ("64_", "")  # the 64-bit integer interface of the wheels, then the plain one
_lock = threading.Lock()
_held = 0  # holds open now: nested or concurrent ones (threaded forwards from several threads) restore once
_before = 1  # the count the first of them found


@functools.cache
def _openblas():
    """``(get, set)`` of the OpenBLAS NumPy loaded, or None."""
    import numpy as np

    for path in _candidates(np):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    return None


def _candidates(np) -> list[str]:
    """Paths of the OpenBLAS NumPy's wheel bundles, then of those this process has loaded (Linux: a NumPy linked
    to the system's OpenBLAS). The wheel's come first: another library (a deep-learning framework) may have
    loaded an OpenBLAS of its own, whose threads are not NumPy's."""
    home = Path(np.__file__).parent
    found = []
    for folder in (home.parent / "numpy.libs", home / ".dylibs", home / ".libs"):
        found += sorted(glob.glob(str(folder / "*openblas*")))
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if "openblas" in Path(path).name.lower() and path not in found:
                    found.append(path)
    return found


def threads() -> int | None:
    """The number of threads NumPy's BLAS runs a product on (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or the
    cores), or None if that cannot be read (a BLAS other than OpenBLAS)."""
    calls = _openblas()
    return None if calls is None else max(1, calls[0]())


@contextmanager
def single_threaded():
    """Hold BLAS to one thread inside the block (for every thread of the process), then give it back the count
    it had. Does nothing where ``threads()`` is None."""
    global _held, _before
    calls = _openblas()
    if calls is None:
        yield
        return
    get, put = calls
    with _lock:
        if _held == 0:
            _before = get()
            put(1)
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0:
                put(_before)
