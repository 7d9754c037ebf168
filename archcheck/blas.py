"""How many threads NumPy's BLAS runs a product on, and a way to hold it to one for a while; and Python's switch
interval, held short meanwhile.

The executor's threaded inference (``executor.forward(..., threads=n)``) runs parts of a batch on threads of
its own, each calling BLAS; BLAS's own workers would then compete with them for the cores, so while the parts
run, BLAS is held to one thread. NumPy has no call for this, so it is found in the BLAS library NumPy loaded:
OpenBLAS, as NumPy's wheels bundle it (``openblas_set_num_threads``, with the prefix and suffix the wheels give
their symbols). Any other BLAS (MKL, Accelerate, a BLAS without threads) is left alone: ``threads()`` is None,
and the executor runs one part at a time.

The parts hand Python's lock back and forth: each takes it back after every NumPy call, and waits while the other
holds it. A thread that asks for it while the other makes calls in quick succession can miss it at every hand-off
until the switch interval (5 ms by default) has passed and it asks the other to let go, so while the parts run the
interval is held to ``SWITCH_INTERVAL`` (``short_switches``).

Imported only by executor-time code, never on the static path.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import sys
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

_PREFIXES = ("scipy_openblas", "openblas")  # NumPy 2's wheels, then NumPy 1's and system libraries
_SUFFIXES = ("64_", "")  # the 64-bit integer interface of the wheels, then the plain one
# Python's switch interval while parts of a batch run side by side, in seconds. 0.1-0.2 ms against the default 5 ms,
# two threads: EfficientNet-B0's, MobileNetV2's and ResNet-18's inference forwards 0.96-0.98x the time (alternating in
# one process; 0.97-0.98x in alternating processes), ResNet-18's training step 0.99-1.0x; 0.03 ms no better than 0.1
SWITCH_INTERVAL = 1e-4


class _Held:
    """A process-wide setting (``get``, ``put``) held to a value inside blocks: nested or concurrent blocks
    (threaded forwards from several threads) set it once, and the last to close gives back the value the first
    found."""

    def __init__(self, get, put):
        self.get, self.put = get, put
        self.lock = threading.Lock()
        self.open = 0  # blocks open now
        self.before = None  # the value the first of them found

    @contextmanager
    def at(self, value):
        with self.lock:
            if self.open == 0:
                self.before = self.get()
                self.put(value)
            self.open += 1
        try:
            yield
        finally:
            with self.lock:
                self.open -= 1
                if self.open == 0:
                    self.put(self.before)


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
    held = _blas_threads()
    with nullcontext() if held is None else held.at(1):
        yield


@functools.cache
def _blas_threads() -> _Held | None:
    calls = _openblas()
    return None if calls is None else _Held(*calls)


_switches = _Held(sys.getswitchinterval, sys.setswitchinterval)


def short_switches():
    """Hold Python's switch interval (for the whole process) to at most ``SWITCH_INTERVAL`` inside the block."""
    return _switches.at(min(SWITCH_INTERVAL, sys.getswitchinterval()))
