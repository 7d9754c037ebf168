"""NumPy kernels shared by the windowed layer types (conv, convtranspose, locallyconnected,
pooling, upsample): padding, sliding windows, im2col + GEMM, and their gradients.

Imported only by executor-time code (the layer types' ``forward``/``backward``), never on
the static path. Arrays are batched, ``(N, C, *spatial)`` with 1, 2 or 3 spatial axes; the
window geometry (kernel, stride, dilation, ``(before, after)`` padding and output size per axis)
comes from the propagator's ``Geometry`` through the layer types: kernels never derive it.
Loops run over kernel offsets (``prod(kernel)`` iterations) or batch chunks, never over pixels
or channels (adaptive pooling builds its small per-axis tables of cells in a loop, then indexes at once).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np

# Largest im2col buffer (and product of one): a batch whose columns would be larger runs in chunks of
# samples, a sample whose columns would be, in runs of output rows. Small beside the tensors a network
# holds, which are all the propagator's peak memory counts.
CHUNK_BYTES = 2 * 2**20
# A depthwise convolution's block of output, worked over every kernel offset while it stays in the cache;
# rows at least this long are worked by offsets, shorter ones as banded products (``_depthwise``)
CACHE_BYTES = 2**18
DEPTHWISE_ROW = 48
# Output positions of a sample from which the product of a 1x1 convolution is wide enough for BLAS on its own: its
# columns are then the sample itself, never copied side by side with other samples'
WIDE_ENOUGH = 128
# Columns the products of a convolution's gradients take at least, in whole samples of small maps, within 4x
# CHUNK_BYTES: a weight gradient adds up one product per chunk, and each product packs the weights anew. The forward
# of a pass recorded for gradients takes as many (an inference forward keeps to the budget its peak memory counts)
GRADIENT_COLUMNS = 384
# Columns (samples x output positions) from which a weight gradient is made transposed, columns @ dy^T, and then
# transposed back: OpenBLAS makes that product 5-25 % faster than dy @ columns^T, which pays for the copy once the
# product is this long (float32, one thread: 0.8x the time on 56x56 maps; on 7x7 maps, whose products are short, 1.1x)
TRANSPOSED_COLUMNS = 1024
TRANSPOSE_BAND = 32  # rows of a band of ``transpose``
# Largest scratch array a thread keeps from one call of a kernel to the next (``lent``): im2col's columns and
# Winograd's buffers in a pass for gradients (ResNet-18's on 14x14 maps need 15 MiB: a training step on two threads
# took 0.89-0.96x the time with 16 MiB kept instead of 8, 0.95 with 32)
KEPT_BYTES = 8 * CHUNK_BYTES
# Multiply-adds up to which OpenBLAS makes a product by its kernel for small matrices, which packs neither operand:
# Winograd's transforms (a 16x16 matrix times a chunk's tiles) take 6-9 ns a column in blocks within it, 11-13 ns in
# one product beyond it (float32, one thread). ``_in_blocks`` cuts their columns so
SMALL_PRODUCT = 10**6
# Buffers of one budget (``scratch``) a kernel holds at once, at most: im2col's padded input, its columns and their
# product; Winograd's two chunks of tiles (two budgets' worth) and its padded input and output, which together take
# about one more (a sample of 13x13 maps: 0.56 and 0.44 of a chunk). A room (``set_room``) is shared out among them
ROOM_BUFFERS = 3
# Columns an im2col product keeps however small the room: a narrower one packs its weights anew for few columns
# (AlexNet's 5x5 convolution, 192 x 1600 weights, on 15 columns at a time: 3x the time)
ROOM_COLUMNS = 256


# -- geometry ----------------------------------------------------------------------------
def pad(x, pads, value=0.0):
    """Pad the spatial axes of ``(N, C, *S)`` by ``(before, after)`` per axis; negative amounts crop."""
    if all(b == 0 and a == 0 for b, a in pads):
        return x
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for n, (b, a) in zip(x.shape[2:], pads))
    x = x[(slice(None), slice(None), *crop)]
    grow = [(max(b, 0), max(a, 0)) for b, a in pads]
    if not any(b or a for b, a in grow):
        return x
    shape = (*x.shape[:2], *(n + b + a for n, (b, a) in zip(x.shape[2:], grow)))
    out = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, x.dtype)
    out[(slice(None), slice(None), *(slice(b, b + n) for n, (b, _) in zip(x.shape[2:], grow)))] = x
    return out


def _padded(x, pads, kernel, stride, dilation, out):
    """``(first sample, first output row, output rows, the input they read, padded)`` over runs of ``x``'s samples
    whose padded copy stays within this thread's share of ``CHUNK_BYTES``, or, where one sample's is larger, over
    bands of one sample's output rows (along the first spatial axis): a copy of a whole batch, or of a large
    sample, would be alive beside the tensors the propagator's peak memory counts (ResNeXt-50's grouped
    convolutions: 1.34x the predicted peak of a forward). Without padding, the whole of ``x``, not copied."""
    if all(b <= 0 and a <= 0 for b, a in pads):
        yield 0, 0, out[0], pad(x, pads)
        return
    padded = [n + max(b, 0) + max(a, 0) for n, (b, a) in zip(x.shape[2:], pads)]
    per = x.itemsize * x.shape[1] * math.prod(padded)
    (before, _), reach = pads[0], (kernel[0] - 1) * dilation[0] + 1  # (input rows the last output row reads)
    least = -(-ROOM_COLUMNS // math.prod(out[1:]))  # (output rows: a band's products at least that wide)
    budget = scratch(CHUNK_BYTES, least=((least - 1) * stride[0] + reach) * (per // padded[0]))
    n = _chunk(len(x), per, budget)
    if n > 1 or per <= budget or any(b < 0 or a < 0 for b, a in pads):
        for n0 in range(0, len(x), n):
            yield n0, 0, out[0], pad(x[n0:n0 + n], pads)
        return
    rows = max(1, min(out[0], (budget // (per // padded[0]) - reach) // stride[0] + 1))
    for n0 in range(len(x)):
        for r0 in range(0, out[0], rows):
            r = min(rows, out[0] - r0)
            lo, hi = r0 * stride[0] - before, (r0 + r - 1) * stride[0] + reach - before  # (unpadded rows)
            band = x[n0:n0 + 1, :, max(lo, 0):min(hi, x.shape[2])]
            yield n0, r0, r, pad(band, [(max(-lo, 0), max(hi - x.shape[2], 0)), *pads[1:]])


def taps(kernel, stride, dilation, out):
    """(flat offset index, spatial slices) for every kernel offset: the input values that
    offset reads for all output positions at once."""
    for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        yield t, tuple(slice(o * d, o * d + s * (m - 1) + 1, s) for o, s, d, m in zip(offset, stride, dilation, out))


def windows(xp, kernel, stride, dilation, out):
    """A read-only strided view ``(N, C, *kernel, *out)`` of the padded input: every window, no copy."""
    for n, k, s, d, o in zip(xp.shape[2:], kernel, stride, dilation, out):
        if (o - 1) * s + d * (k - 1) + 1 > n:  # as_strided would read past the array, never raise
            raise ValueError(f"{o} windows of kernel {k}, stride {s}, dilation {d} do not fit {n} padded positions")
    sn, sc, *ss = xp.strides
    shape = (*xp.shape[:2], *kernel, *out)
    strides = (sn, sc, *(st * d for st, d in zip(ss, dilation)), *(st * s for st, s in zip(ss, stride)))
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


# -- threads ------------------------------------------------------------------------------
_local = threading.local()  # per thread: its share of the scratch budgets, its kept scratch, its workers


def runs(n: int, k: int) -> list[slice]:
    """``n`` samples cut into ``k`` runs of consecutive samples (at most ``n``, at least one), the larger first."""
    k = max(1, min(k, n))
    sizes = [n // k + (i < n % k) for i in range(k)]
    starts = [sum(sizes[:i]) for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


@contextmanager
def scratch_share(parts: int):
    """Inside the block, this thread's kernels keep their scratch (``CHUNK_BYTES``, Winograd's chunks) to a
    ``parts``-th of its size: threads working side by side on parts of one batch hold what one thread would."""
    before = getattr(_local, "parts", 1)
    _local.parts = parts
    try:
        yield
    finally:
        _local.parts = before


def set_room(nbytes: int | None) -> int | None:
    """From now on, this thread's kernels keep their scratch within ``nbytes`` in all (``scratch``), besides their
    budgets; None: within their budgets alone. The room set before is returned. An inference pass gives each layer
    the room the predicted peak leaves it (``executor``), so that its kernels' scratch stays within the peak."""
    before = getattr(_local, "room", None)
    _local.room = nbytes
    return before


def within_room(nbytes: int, buffers: int = ROOM_BUFFERS) -> int:
    """``nbytes``, or ``buffers`` ``ROOM_BUFFERS``-ths of this thread's room (``set_room``) where that is less."""
    room = getattr(_local, "room", None)
    return nbytes if room is None else max(1, min(nbytes, buffers * room // ROOM_BUFFERS))


def scratch(nbytes: int, buffers: int = 1, least: int = 0) -> int:
    """This thread's share of a scratch budget of ``nbytes`` (``scratch_share``), for a kernel holding ``buffers``
    of its size at once: within a ``ROOM_BUFFERS``-th of the thread's room each, but never, for the room, below
    ``least`` (what keeps the kernel's products wide enough to pay)."""
    share = max(1, nbytes // getattr(_local, "parts", 1))
    return max(min(share, least), within_room(share, buffers))


@contextmanager
def lent(key: str, size: int, dtype):
    """Inside the block, a flat scratch array of ``size`` values of ``dtype`` (uninitialised), lent by this thread:
    the array lent under ``key`` before, when large enough, and kept for the next call when at most ``KEPT_BYTES``.

    A kernel's scratch is then memory the process already holds, not fresh pages the system maps at the first write
    of every call: the allocator returns a large array freed between two calls to the system once the memory free
    at the top of its heap is large enough, which is often in a training step that frees the activations one by one.
    An array is lent to one block at a time (a second block under the same key, while the first is open, gets a new
    one); a thread's arrays go with it."""
    kept = _local.__dict__.setdefault("kept", {})
    nbytes = size * np.dtype(dtype).itemsize
    buffer = kept.pop(key, None)
    if buffer is None or buffer.nbytes < nbytes:
        if buffer is not None:
            kept[key] = buffer  # (kept, unless the new one is kept instead)
        buffer = np.empty(nbytes, np.uint8)
    try:
        yield buffer[:nbytes].view(dtype)
    finally:
        if buffer.nbytes <= KEPT_BYTES and buffer.nbytes >= getattr(kept.get(key), "nbytes", 0):
            kept[key] = buffer


@contextmanager
def threads(k: int):
    """Inside the block, this thread's kernels that work a batch sample by sample (convolutions and both their
    gradients, batchnorm in training, max-pool with its index and gradient) cut it into ``k`` runs of samples
    worked side by side (``side_by_side``), on ``k - 1`` threads of their own and this one. The calling thread keeps
    those threads for its next block: they keep their scratch (``lent``) and the memory their allocator holds (a
    training step on two threads took 0.96x the time for it, alternating processes). NumPy
    lets go of Python's lock in its loops and BLAS calls; BLAS itself should be held to one thread meanwhile
    (``blas.single_threaded``). The workers' own kernels do not cut again. (A walk of the graph cut into parts
    runs on them too: threaded inference, a training step.)"""
    if k <= 1:
        yield
        return
    process, pools = getattr(_local, "pools", (None, {}))
    if process != os.getpid():  # (a forked child has none of its parent's threads)
        pools = {}
        _local.pools = os.getpid(), pools
    if k not in pools:
        pools[k] = ThreadPoolExecutor(k - 1)
    pool = pools[k]
    _local.pool = k, pool
    try:
        yield
    finally:
        _local.pool = None


def side_by_side(n: int, work) -> list:
    """``work(rows)`` for runs of ``n`` samples, side by side on this thread's ``threads`` (one call without them),
    each under the caller's NumPy error state and with its share of the scratch; the results in sample order.
    (The executor's threaded inference and training passes run a whole walk of the graph so, one per part.)

    Within a part, ``batch_total`` and ``batch_shared`` meet the other parts where their samples meet. A part that
    fails stops the others at their next meeting; the call raises its error once every part has stopped."""
    k, pool = getattr(_local, "pool", None) or (1, None)
    parts = runs(n, k)
    if len(parts) == 1:
        return [work(parts[0])]
    errors, joined = np.geterr(), _Joined(parts)

    def run(index):
        before = getattr(_local, "joined", None)
        _local.pool, _local.joined = None, (joined, index)  # a part's own kernels do not cut again
        try:
            with np.errstate(**errors), scratch_share(len(parts)):
                return work(parts[index]), None
        except BaseException as error:  # noqa: BLE001 (re-raised below, once every part has stopped)
            joined.abort()  # the others stop at their next meeting instead of waiting for this part
            return None, error
        finally:
            _local.pool, _local.joined = (k, pool), before

    others = [pool.submit(run, index) for index in range(1, len(parts))]
    done = [run(0), *(f.result() for f in others)]
    failed = [error for _, error in done if error is not None]
    if failed:  # the part that failed, not one the failure stopped at a meeting
        raise next((e for e in failed if not isinstance(e, threading.BrokenBarrierError)), failed[0])
    return [result for result, _ in done]


class _Joined:
    """The parts of one batch worked ``side_by_side``, where they meet: each hands in a value, and every part takes
    the same combination of them once the last has arrived.

    A part that arrives before the last waits at a gate of its own (a lock) that the last part opens: one wake-up a
    part, where a barrier's condition takes several (two threads meeting 2,000 times with nothing between: 140 us a
    meeting with two barriers, one before and one after combining). The values of two meetings in turn sit in two
    lists, so that no part waits for the others to have combined them: a part can only hand in the next meeting's
    value, and can reach the one after only once every part has reached the next."""

    def __init__(self, parts: list[slice]):
        self.parts = parts
        self.lock = threading.Lock()
        self.gates = [threading.Lock() for _ in parts]
        for gate in self.gates:
            gate.acquire()  # (closed: a waiting part blocks on its own until it is opened)
        self.values: list[list] = [[None] * len(parts), [None] * len(parts)]
        self.meetings = [0] * len(parts)  # per part, its meetings so far
        self.waiting: list[int] = []  # the parts that have arrived at this meeting, at their gates
        self.broken = False

    def meet(self, index: int, value, combine):
        values = self.values[self.meetings[index] % 2]
        self.meetings[index] += 1
        values[index] = value
        with self.lock:
            if self.broken:
                raise threading.BrokenBarrierError
            last = len(self.waiting) == len(self.parts) - 1
            if last:
                for other in self.waiting:
                    self.gates[other].release()
                self.waiting.clear()
            else:
                self.waiting.append(index)
        if not last:
            self.gates[index].acquire()
            if self.broken:
                raise threading.BrokenBarrierError
        return combine(values)

    def abort(self):
        """A part failed: the parts waiting are let go, and every part stops at its next meeting
        (``threading.BrokenBarrierError``)."""
        with self.lock:
            self.broken = True
            for other in self.waiting:
                self.gates[other].release()
            self.waiting.clear()


def batch_total(value):
    """The sum over the whole batch of ``value``, this part's sum over its own samples (an array or a number): the
    parts' sums added in the order of their samples, the same in every part. ``value`` itself outside parts."""
    part = getattr(_local, "joined", None)
    if part is None:
        return value
    joined, index = part
    return joined.meet(index, value, lambda values: sum(values[1:], values[0]))


def batch_shared(make):
    """``make()`` for the whole batch, made once, by the first part, and the same object in every part (random
    draws for the whole batch: every part takes its rows of them, ``batch_rows``). ``make()`` outside parts."""
    part = getattr(_local, "joined", None)
    if part is None:
        return make()
    joined, index = part
    return joined.meet(index, make() if index == 0 else None, lambda values: values[0])


def batch_samples(n: int) -> int:
    """The samples of the whole batch of which this part holds ``n`` (``n`` outside parts)."""
    part = getattr(_local, "joined", None)
    return n if part is None else part[0].parts[-1].stop


def batch_rows(n: int) -> slice:
    """This part's rows of the whole batch (all ``n`` outside parts)."""
    part = getattr(_local, "joined", None)
    return slice(0, n) if part is None else part[0].parts[part[1]]


def first_part() -> bool:
    """Whether this is the first part of a batch worked ``side_by_side`` (or no part at all): the one that updates
    what is kept once for the whole batch (batchnorm's running statistics)."""
    part = getattr(_local, "joined", None)
    return part is None or part[1] == 0


def _chunk(n_samples: int, bytes_per_sample: int, budget: int | None = None) -> int:
    """Samples a chunk holds within ``budget`` (this thread's share of ``CHUNK_BYTES`` by default), at least one."""
    budget = scratch(CHUNK_BYTES) if budget is None else budget
    return max(1, min(n_samples, budget // max(bytes_per_sample, 1)))


def im2col(xp, kernel, stride, dilation, out, products=0, split=True, ones=False, columns=0):
    """Yield ``(first sample, samples, positions, columns)`` over chunks of the batch: ``columns`` is
    ``(C * prod(kernel), samples * len(positions))``, the columns of the chunk's samples side by side (so
    that one matrix product serves them all), and ``positions`` the slice of each sample's flattened output
    positions it covers.

    A chunk holds as many samples as keep its columns, and the ``products`` rows a product makes of them,
    within ``CHUNK_BYTES``; when one sample is more than that (and ``split``), a sample is cut into runs
    of whole output rows (along the first spatial axis). With a 1x1, stride-1 window, the columns of one sample
    are the input itself (no copy), for a sample of at least ``WIDE_ENOUGH`` positions or more than half the
    budget. Otherwise one buffer is reused for every chunk; with ``columns`` (a pass for gradients), the thread keeps it
    for its next call (``lent``), and an inference pass holds only its own, as its peak memory figure counts.

    With ``ones``, the columns have one more row, of ones, under them: a product whose weights have the bias as
    one more column adds it on the way. A 1x1 sample that is its own columns is then copied under a row of
    ones only where that copy is smaller than the pass adding a bias to its product would be (fewer than half as
    many rows as ``products``, and within the budget); elsewhere it comes without the row. With ``columns``, a
    chunk of whole samples takes as many more as make that many columns, within four times the budget.
    """
    N, C = xp.shape[:2]
    rows, P = C * math.prod(kernel), math.prod(out)
    inner = math.prod(out[1:])
    view = windows(xp, kernel, stride, dilation, out)
    extra = int(ones)
    per_sample = max(rows + extra, products) * P * xp.itemsize
    budget = scratch(CHUNK_BYTES, least=max(rows + extra, products) * ROOM_COLUMNS * xp.itemsize)
    if math.prod(kernel) == 1 and all(s == 1 for s in stride) and (P >= WIDE_ENOUGH or per_sample > budget // 2):
        if not ones or 2 * rows >= products or (rows + 1) * P * xp.itemsize > budget:
            for n0 in range(N):  # no copy, however large; two samples would fit no better
                yield n0, 1, slice(0, P), xp[n0].reshape(rows, P)
            return
        cols = np.ones((rows + 1, P), xp.dtype)
        for n0 in range(N):
            np.copyto(cols[:rows], xp[n0].reshape(rows, P))
            yield n0, 1, slice(0, P), cols
        return
    r = len(kernel)
    order = (1, *range(2, 2 + r), 0, *range(2 + r, 2 + 2 * r))  # (C, *kernel, n, *out): sample-major columns
    if per_sample <= budget or not split:
        n = max(_chunk(N, per_sample, budget), min(N, -(-columns // P), 4 * budget // per_sample))
        chunks = [(n0, min(n, N - n0), 0, out[0]) for n0 in range(0, N, n)]
    else:
        step = min(out[0], max(1, budget // (max(rows + extra, products) * inner * xp.itemsize)))
        chunks = [(n0, 1, r0, min(out[0], r0 + step)) for n0 in range(N) for r0 in range(0, out[0], step)]
    size = max((rows + extra) * m * (r1 - r0) * inner for _, m, r0, r1 in chunks)
    with _buffers("im2col", [(size,)], xp.dtype, bool(columns)) as (store,):
        ones_at = None  # where the row of ones is in place
        for n0, m, r0, r1 in chunks:
            width = m * (r1 - r0) * inner
            whole = (slice(n0, n0 + m), *(slice(None),) * (r + 1), slice(r0, r1))
            np.copyto(store[:rows * width].reshape(C, *kernel, m, r1 - r0, *out[1:]), view[whole].transpose(order))
            if ones and ones_at != width:  # (the chunks' copies never reach it)
                store[rows * width:(rows + 1) * width] = 1
                ones_at = width
            yield n0, m, slice(r0 * inner, r1 * inner), store[:(rows + extra) * width].reshape(rows + extra, width)


def transpose(a):
    """A copy of ``a`` with its last two axes swapped, made a band of rows at a time: NumPy's copy of a transposed
    view strides through memory (a 4608x512 float32 matrix takes 10 ms, in bands of 32 rows 2 ms)."""
    out = np.empty((*a.shape[:-2], a.shape[-1], a.shape[-2]), a.dtype)
    for r0 in range(0, a.shape[-2], TRANSPOSE_BAND):
        np.copyto(out[..., r0:r0 + TRANSPOSE_BAND], a[..., r0:r0 + TRANSPOSE_BAND, :].swapaxes(-1, -2))
    return out


def _put(dst, src, shift=None):
    """``dst[...] = src (+ shift)``."""
    if shift is None:
        np.copyto(dst, src)
    else:
        np.add(src, shift, out=dst)


def col2im(dcols, dxp, kernel, stride, dilation, out):
    """Scatter-add columns ``(n, C, *kernel, *out)`` back into the padded input gradient ``dxp``."""
    everything = (slice(None), slice(None))
    for t, sl in taps(kernel, stride, dilation, out):
        offset = np.unravel_index(t, kernel)
        dxp[(*everything, *sl)] += dcols[(*everything, *offset)]


# -- convolution -------------------------------------------------------------------------
def conv(x, w, stride, dilation, pads, out, groups=1, bias=None, bias_in_product=False, columns=0, product=None):
    """Cross-correlation, as every framework computes a convolution:
    ``y[n, f, o] = sum_{c, k} w[f, c, k] * x_pad[n, group(f) * C_g + c, o * stride + k * dilation]``
    for the ``out`` positions per axis, plus ``bias[f]`` when given.

    im2col + one BLAS matmul per chunk of samples (per group), ``(F, C*K) @ (C*K, n*P)``: a chunk's
    samples share one wide product instead of one small product each. A one-sample chunk writes its
    output in place; a wider one is transposed into it, the bias added on the way. Groups with a single
    input or output channel each (depthwise) are a multiply-add per kernel offset instead.

    With ``bias_in_product`` (and one group), the bias is one more column of the weights and the columns have a
    row of ones under them (``im2col``'s ``ones``), so that the product adds it instead of a pass over the
    output. A BLAS may round that differently from adding it after (OpenBLAS, which adds a dot product's last
    term last, does not); only an inference plan asks for it, and may hand in that matrix made once, ``product``
    (``(F, C * prod(kernel) + 1)``, ``Conv.laid_out``). Without it the weights are copied together on the call, where
    the output has more values per filter than the weights (not a squeeze-and-excitation's on a 1x1 map, whose
    bias is added after). ``columns``: as for ``im2col`` (an input gradient).
    """
    N = x.shape[0]
    F, Cg, *K = w.shape
    G, Fg = groups, F // groups
    P = math.prod(out)
    if G > 1 and Cg == 1:
        return _depthwise(x, w.reshape(G, Fg, -1), K, stride, dilation, pads, out, bias, bias_in_product)
    if G > 1 and Fg == 1:
        y = _conv_by_offsets(pad(x, pads), w.reshape(G, Fg, Cg, -1), K, stride, dilation, out).reshape(N, F, *out)
        return y if bias is None else add_bias(y, bias)
    y = np.empty((N, F, *out), x.dtype)
    flat = y.reshape(N, F, P)
    inner = math.prod(out[1:])  # (output positions in a row)
    rows = Cg * math.prod(K)
    wg = w.reshape(G, Fg, rows)
    biased = None  # (made here only for an output larger than the weights: else adding the bias after costs less)
    if bias is not None and bias_in_product and G == 1 and (product is not None or N * P > rows):
        biased = (with_bias(w, bias) if product is None else product).reshape(1, F, rows + 1)

    def products(samples):
        for s0, r0, r, xp in _padded(x[samples], pads, K, stride, dilation, out):
            padded(samples.start + s0, r0 * inner, xp, (r, *out[1:]))

    def padded(start, offset, xp, band):
        for n0, m, at, cols in im2col(xp, K, stride, dilation, band, products=F, ones=biased is not None,
                                      columns=columns):
            n0, at = n0 + start, slice(at.start + offset, at.stop + offset)
            weights, shift = (biased, None) if len(cols) > G * rows else (wg, bias)  # (the row of ones under them)
            cols = cols.reshape(G, -1, cols.shape[-1])
            if m == 1:
                dst = flat[n0, :, at]  # (F, positions): a matrix BLAS writes in place
                np.matmul(weights, cols, out=dst.reshape(G, Fg, -1))
                if shift is not None:
                    dst += shift.reshape(F, 1)
                continue
            product = np.matmul(weights, cols).reshape(F, m, P).transpose(1, 0, 2)
            _put(flat[n0:n0 + m], product, None if shift is None else shift.reshape(1, F, 1))

    side_by_side(N, products)
    return y


def with_bias(w, bias):
    """The weights ``(F, ...)``, each filter's flattened, with the bias as one more column, ``(F, weights per filter +
    1)``: the matrix by which ``conv``'s products add the bias (``bias_in_product``)."""
    return np.concatenate([w.reshape(len(w), -1), bias.reshape(-1, 1)], axis=1)


# Winograd's minimal filtering F(m x m, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
# CVPR 2016): an (m + 2) x (m + 2) tile of input gives an m x m tile of output with (m + 2)^2 multiplications per
# channel pair instead of 9 m^2. Y = A^T [(G g G^T) * (B^T d B)] A.
class Winograd:
    """One F(m x m, 3x3): its transforms, as Kronecker products that act on flattened tiles."""

    def __init__(self, m: int, g, bt, at):
        self.m, self.tile = m, m + 2
        self.g = np.kron(g, g)  # (tile^2, 9): a flattened 3x3 filter into the tile's domain
        self.bb = np.kron(bt, bt)  # (tile^2, tile^2): an input tile
        self.aa = np.kron(at, at)  # (m^2, tile^2): a product back to an output tile


# Interpolation points 0, 1, -1 and infinity: the transforms of input and output only add and subtract, and the
# filter's halves its sums, so it rounds as the direct product does (float32, measured on ResNet-18's 3x3
# convolutions: 4-8e-7 of the largest value, forward and both gradients, as the direct product's 4-9e-7)
F2X2 = Winograd(2, np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
                np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
                np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float))
# Points 0, 1, -1, 2, -2 and infinity: 16/36 of im2col's multiplications, but about 1e-5 of the largest output
F4X4 = Winograd(4,
                np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                          [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
                np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                          [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
                np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float))


def winograd_weights(w, f: Winograd = F4X4, rotated: bool = False):
    """The filters ``(F, C, 3, 3)`` in the domain of ``f``, ``(tile^2, C, F)``: ``G g G^T`` for every pair, one
    product per input channel by the weights made ``(C, 9, F)`` (``transpose``). Made once per set of weights
    (``executor.fold_weights``; a pass for gradients, per pass), in the weights' precision.

    ``rotated``: those of the filters rotated by 180 degrees, input and output channels swapped, ``(tile^2, F, C)``
    (an input gradient's full correlation): the 9 values of a filter reversed are the columns of ``G (x) G``
    reversed, so one product reads the weights as they lie (256 channels: 0.8 ms, against 2.1 ms and 0.9-1.4 ms for
    the filters and their rotation by one product of the weights turned ``(9, C, F)``, float32)."""
    F, C = w.shape[:2]
    g = f.g.astype(w.dtype)
    if rotated:
        return np.matmul(g[:, ::-1], w.reshape(F * C, 9).T).reshape(f.tile ** 2, F, C)
    u = np.empty((f.tile ** 2, C, F), w.dtype)
    np.matmul(g, transpose(w.reshape(F, C * 9)).reshape(C, 9, F), out=u.transpose(1, 0, 2))
    return u


class _Tiles:
    """The input tiles of ``winograd`` and ``winograd_grad_weight``: a chunk of samples (or a band of one sample's
    rows, where ``padded`` holds fewer than its map's) copied with their channels last into a padded buffer
    (``padded``, zeroed here: the zeros of the padding stay), so that a copy of a tile's
    value reads and writes a run of channels, not of tiles (a row of a map holds few), and a view of every tile
    of it, ``(tile, tile, samples, rows, columns, C)``, overlapping by 2. A chunk's tiles are copied into ``copy``
    and transformed into ``into`` (flat buffers), through views made once per chunk of the call: a chunk's
    products take tens of microseconds, and Python's lock is taken again after each, so the time spent between
    them also decides how long another thread waits for it (two threads side by side: 0.94x the time of the
    forward at 64 channels on 56x56 maps). The loops keep their own views the same way, inline: one method making
    and keeping every chunk's views, called per chunk, took ResNet-18's training step 1.02-1.03x the time at two
    threads."""

    @staticmethod
    def shape(x, out, f: Winograd, samples: int, rows: int = 0) -> tuple:
        """The shape of the padded buffer for ``samples`` samples of ``x``, or for a band of ``rows`` rows of tiles of
        one sample."""
        return (samples, f.m * (rows or -(-out[0] // f.m)) + 2, f.m * -(-out[1] // f.m) + 2, x.shape[1])

    @staticmethod
    def grid(out, f: Winograd, chunk: int) -> tuple:
        """``(rows of tiles, columns of tiles, rows a chunk holds)`` of a map of ``out`` outputs cut into chunks of
        at most ``chunk`` tiles (at least one row of one sample), as even as whole rows make them (a map of 14 rows
        in two chunks of 7, not 13 and 1)."""
        th, tw = (-(-o // f.m) for o in out)
        most = max(1, min(th, chunk // tw))
        return th, tw, -(-th // -(-th // most))

    @staticmethod
    def samples(grid: tuple, chunk: int, n: int) -> int:
        """The samples the padded buffer holds at once, of ``n``: as many whole samples as ``chunk`` tiles take when
        a chunk holds whole samples, else one."""
        th, tw, rows = grid
        return max(1, min(n, chunk // (th * tw))) if rows == th else 1

    def __init__(self, x, pads, out, f: Winograd, padded, copy, into):
        m, a = f.m, f.tile
        self.x, self.padded, self.bt, self.m, self.top = x, padded, f.bb.astype(x.dtype), m, pads[0][0]
        self.buffers, self.views = (copy, into), {}
        th, tw = self.tiles = tiles = [-(-o // m) for o in out]
        self.banded = len(padded) == 1 and len(padded[0]) < m * th + 2  # (a band of a sample's rows at a time)
        padded.fill(0)
        self.inside = tuple(slice(0, min(size, m * t + 2 - pb)) for size, t, (pb, _) in zip(x.shape[2:], tiles, pads))
        self.into = tuple(slice(pb, pb + s.stop) for s, (pb, _) in zip(self.inside, pads))
        sn, sh, sw, sc = padded.strides
        self.view = np.lib.stride_tricks.as_strided(padded, (a, a, len(padded), (padded.shape[1] - 2) // m, tw,
                                                             x.shape[1]), (sh, sw, sn, m * sh, m * sw, sc),
                                                    writeable=False)

    def chunks(self, rows: int):
        """``(first sample, samples, first row of tiles, rows, tiles)`` of each chunk: the buffer's samples at a
        time, loaded as they come, ``rows`` rows of tiles at a time (of a buffer holding a band of them, the band
        loaded as it comes)."""
        th, tw = self.tiles
        for n0 in range(0, len(self.x), len(self.padded)):
            k = min(len(self.padded), len(self.x) - n0)
            if not self.banded:
                samples = self.x[(slice(n0, n0 + k), slice(None), *self.inside)]
                self.padded[(slice(0, k), *self.into)] = samples.transpose(0, 2, 3, 1)
            for r0 in range(0, th, rows):
                r = min(rows, th - r0)
                if self.banded:
                    self._load(n0, r0, r)
                yield n0, k, r0, r, k * r * tw

    def _load(self, n: int, r0: int, r: int):
        """The band of sample ``n``'s padded rows that ``r`` rows of tiles from ``r0`` read, into the buffer's top,
        zeros where they are padding."""
        lo = r0 * self.m - self.top  # (the sample's row at the band's first)
        reach = min(self.m * r + 2, self.inside[0].stop - lo)  # (the band's rows that hold the sample's)
        skip = max(-lo, 0)
        band = self.padded[0]
        band[:skip] = 0
        band[max(reach, skip):] = 0
        if reach > skip:
            band[skip:reach, self.into[1]] = self.x[n, :, lo + skip:lo + reach, self.inside[1]].transpose(1, 2, 0)

    def transformed(self, k: int, r0: int, r: int):
        """A chunk's tiles ``(tile^2, tiles, C)``: copied and transformed by ``B^T (x) B^T``."""
        b0 = 0 if self.banded else r0  # (the chunk's first row of tiles in the buffer)
        views = self.views.get((k, b0, r))
        if views is None:
            (a, *_, C), (copy, into) = self.view.shape, self.buffers
            t = k * r * self.tiles[1]
            d = copy[:a * a * t * C].reshape(a, a, k, r, self.tiles[1], C)
            v = into[:a * a * t * C].reshape(a * a, t, C)
            views = self.views[k, b0, r] = (self.view[:, :, :k, b0:b0 + r], d, v,
                                            *_in_blocks(a * a, d.reshape(a * a, t * C), v.reshape(a * a, t * C)))
        tiles, d, v, flat, flat_v = views
        np.copyto(d, tiles)
        np.matmul(self.bt, flat, out=flat_v)
        return v


def _in_blocks(rows: int, flat, out):
    """The right-hand side ``flat`` ``(k, n)`` of a product by a ``(rows, k)`` matrix, and ``out`` ``(rows, n)``, as
    stacks of blocks of their columns, ``(blocks, k, n / blocks)`` and ``(blocks, rows, n / blocks)``: the fewest equal
    blocks each within ``SMALL_PRODUCT``. One ``np.matmul`` makes them all, one small product each."""
    k, n = flat.shape
    most = max(1, SMALL_PRODUCT // (rows * k))
    blocks = next(b for b in range(-(-n // most), n + 1) if n % b == 0)
    return tuple(a.reshape(len(a), blocks, n // blocks).swapaxes(0, 1) for a in (flat, out))


@contextmanager
def _buffers(key: str, shapes: list[tuple], dtype, kept: bool):
    """Arrays of these shapes (uninitialised, each on a 64-byte line), carved from one flat scratch array: lent by
    this thread with ``kept`` (a pass for gradients: ``lent``), else its own (an inference pass holds only its own,
    as its peak memory figure counts)."""
    sizes = [-(-math.prod(shape) // 16) * 16 for shape in shapes]
    with lent(key, sum(sizes), dtype) if kept else nullcontext(np.empty(sum(sizes), dtype)) as flat:
        starts = itertools.accumulate(sizes, initial=0)
        yield [flat[at:at + math.prod(shape)].reshape(shape) for at, shape in zip(starts, shapes)]


def winograd(x, u, pads, out, bias=None, chunk=2**10, f: Winograd = F4X4, kept=False):
    """``conv`` of a 3x3 filter at stride 1 (``u``: its ``winograd_weights`` for ``f``) by Winograd's ``f``.

    For a chunk of tiles (``_Tiles``): their copy ``(tile^2, tiles, C)``, transformed by one product with
    ``B^T (x) B^T``; one product ``(tiles, C) @ (C, F)`` per position in a tile; the outputs' transform by
    ``A^T (x) A^T`` and a scatter into the chunk's samples' output, channels last, the bias added on the way;
    once a chunk's samples are whole, their output turned channels first, within the map. A chunk holds at most
    ``chunk`` tiles, or one row of tiles of one sample, in two buffers of ``tile^2`` values per tile and channel
    (tiles and their products, then transforms and outputs). Where a sample has more tiles than a chunk, its padded
    input and its output are held a band of ``rows`` rows of tiles at a time, not whole (VGG-16's on 224x224 maps:
    26 MB a sample, beside 8 MiB of chunks). The samples are worked ``side_by_side`` (a pass for gradients on
    threads); ``kept`` as for ``_buffers``."""
    m, a = f.m, f.tile
    N, C = x.shape[:2]
    F = u.shape[2]
    th, tw, rows = grid = _Tiles.grid(out, f, chunk)
    y = np.empty((N, F, *out), x.dtype)
    at = f.aa.astype(x.dtype)

    def work(samples):
        xs = x[samples]
        n = _Tiles.samples(grid, chunk, len(xs))
        size = a * a * max(C, F) * n * rows * tw
        band = rows if rows < th else 0  # (rows of tiles the buffers of input and output hold: all, or a band's)
        shapes = [_Tiles.shape(xs, out, f, n, band), (size,), (size,), (n, band or th, m, tw, m, F)]
        with _buffers("winograd", shapes, x.dtype, kept) as (padded, first, second, last):  # (last: channels last)
            tiles, views = _Tiles(xs, pads, out, f, padded, first, second), {}
            for n0, k, r0, r, t in tiles.chunks(rows):
                v = tiles.transformed(k, r0, r)
                b0 = 0 if band else r0  # (the chunk's first row of tiles in ``last``)
                if (k, b0, r) not in views:  # (the chunk's views, as ``_Tiles`` makes its own)
                    p, o = first[:a * a * t * F].reshape(a * a, t, F), second[:m * m * t * F].reshape(m, m, k, r, tw, F)
                    views[k, b0, r] = (p, o, *_in_blocks(m * m, p.reshape(a * a, t * F), o.reshape(m * m, t * F)),
                                       last[:k, b0:b0 + r].transpose(2, 4, 0, 1, 3, 5))  # (m, m, k, r, tw, F)
                p, o, flat_p, flat_o, into = views[k, b0, r]
                np.matmul(v, u, out=p)
                np.matmul(at, flat_p, out=flat_o)
                _put(into, o, bias)
                start = samples.start + n0
                if band:  # the band's outputs (those within the map)
                    rows_out = min(m * (r0 + r), out[0]) - m * r0
                    made = last[0, :r].reshape(m * r, m * tw, F)[:rows_out, :out[1]]
                    np.copyto(y[start, :, m * r0:m * r0 + rows_out], made.transpose(2, 0, 1))
                elif r0 + r == th:  # the chunk's samples are whole
                    made = last[:k].reshape(k, m * th, m * tw, F)[:, :out[0], :out[1]]
                    np.copyto(y[start:start + k], made.transpose(0, 3, 1, 2))

    side_by_side(N, work)
    return y


def winograd_grad_weight(x, dy, pads, chunk, f: Winograd = F2X2):
    """Gradient of ``winograd``'s correlation with respect to its 3x3 filters, ``(F, C, 3, 3)``, in the domain of
    ``f``: each output tile is ``A^T [U * V] A`` for the filter's ``U = G g G^T`` and the input tile's ``V``, so
    ``dU`` is the sum over the tiles of ``V * (A dY A^T)``, one product ``(F, tiles) @ (tiles, C)`` per position in
    a tile, and the filter's gradient is ``G^T dU G``. The output gradient's tiles are ``m x m``, side by side,
    zero past the output. Chunks of tiles as ``winograd``'s, the thread's scratch kept (``lent``); the samples
    are worked ``side_by_side``."""
    m, a = f.m, f.tile
    N, C = x.shape[:2]
    F, out = dy.shape[1], dy.shape[2:]
    th, tw, rows = grid = _Tiles.grid(out, f, chunk)
    am = f.aa.T.astype(x.dtype)

    def work(samples):
        xs, dys = x[samples], dy[samples]
        n = _Tiles.samples(grid, chunk, len(xs))
        t_most = n * rows * tw
        several = len(xs) > n or th > rows  # (chunks: their products are added up in another buffer)
        shapes = [_Tiles.shape(xs, out, f, n), (n, m * th, m * tw, F), (a * a * t_most * max(C, F),),
                  (a * a * t_most * C,), (m * m * t_most * F,), (a * a, F, C) if several else (0,)]
        du = None
        with _buffers("winograd", shapes, x.dtype, True) as (padded, grads, d, v, e, product):
            g = d  # (the tiles' copy is spent once they are transformed)
            tiles, views = _Tiles(xs, pads, out, f, padded, d, v), {}
            grads.fill(0)  # the output gradient, channels last (the zeros past the output stay)
            sn, sh, sw, sc = grads.strides
            grad_tiles = np.lib.stride_tricks.as_strided(grads, (m, m, n, th, tw, F),
                                                         (sh, sw, sn, m * sh, m * sw, sc), writeable=False)
            for n0, k, r0, r, t in tiles.chunks(rows):
                if r0 == 0:  # the chunk's samples, just loaded
                    grads[:k, :out[0], :out[1]] = dys[n0:n0 + k].transpose(0, 2, 3, 1)
                vv = tiles.transformed(k, r0, r)
                if (k, r0) not in views:  # (the chunk's views, as ``_Tiles`` makes its own)
                    ee, gg = e[:m * m * t * F].reshape(m, m, k, r, tw, F), g[:a * a * t * F].reshape(a * a, t, F)
                    views[k, r0] = (grad_tiles[:, :, :k, r0:r0 + r], ee, gg.transpose(0, 2, 1),
                                    *_in_blocks(a * a, ee.reshape(m * m, t * F), gg.reshape(a * a, t * F)))
                grad_tile, ee, gg_t, flat_e, flat_g = views[k, r0]
                np.copyto(ee, grad_tile)
                np.matmul(am, flat_e, out=flat_g)
                if du is None:
                    du = np.matmul(gg_t, vv)
                else:
                    du += np.matmul(gg_t, vv, out=product)
        return du

    du = summed(N, work)
    return np.matmul(du.reshape(a * a, F * C).T, f.g.astype(x.dtype)).reshape(F, C, 3, 3)


def _depthwise(x, wg, K, stride, dilation, pads, out, bias, bias_in_product=False):
    """Correlation with one input channel per group (``wg``: (G, Fg, prod(K)), Fg outputs per group). Three
    layouts, by the length of the output's rows:
    - rows of at least ``DEPTHWISE_ROW`` outputs: per kernel offset, the input's values times that offset's weight,
      added up in the output, a block at a time (a sample's few channels) small enough to stay in the cache
      over all the offsets. With one output per channel, each channel's padded map (or each of its phases, with
      a stride) is one flat line: an offset's inputs for every output are one contiguous slice of it, the
      output is made on the padded width, and the columns past the map are dropped when the block is stored
      (``_depthwise_wide``); with several, a row at a time (``_depthwise_rows``);
    - shorter rows, where NumPy's loops would be short: one BLAS product per channel with banded weights
      (``_depthwise_banded``), which with ``bias_in_product`` adds the bias in the product (as ``conv``).
    """
    if any(pb < 0 or pa < 0 for pb, pa in pads):  # (an input gradient's full correlation may crop)
        x = pad(x, [(min(pb, 0), min(pa, 0)) for pb, pa in pads])
        pads = [(max(pb, 0), max(pa, 0)) for pb, pa in pads]
    N, G = x.shape[:2]
    Fg = wg.shape[1]
    banded = out[-1] < DEPTHWISE_ROW
    work = _depthwise_banded if banded else _depthwise_wide if Fg == 1 else _depthwise_rows
    more = (bias_in_product,) if banded else ()
    y = np.empty((N, G * Fg, *out), x.dtype)
    side_by_side(N, lambda rows: work(x[rows], wg, K, stride, dilation, pads, out, bias, y[rows], *more))
    return y


def _depthwise_wide(x, wg, K, stride, dilation, pads, out, bias, y):
    """``_depthwise`` with one output channel per group: flat lines. At stride 1 each channel's padded map is one
    flat line. With a stride, the padded map is split into its phases (per axis, the positions ``phase + stride *
    m``), each a flat line: a kernel offset ``o`` reads phase ``o * dilation % stride`` shifted by ``o * dilation //
    stride``, a correlation at stride 1 again, so that every offset's inputs are one contiguous slice."""
    G, sizes = x.shape[1], x.shape[2:]
    offsets = list(itertools.product(*(range(k) for k in K)))
    lengths = [o + (k - 1) * d // s for o, k, d, s in zip(out, K, dilation, stride)]  # of a phase, per axis
    lengths[0] += 1  # a row more: the slices of the last offsets run past the last row (into columns dropped)
    row = math.prod(lengths[1:])
    span = out[0] * row  # the outputs of one channel on the phases' width
    strides = [math.prod(lengths[i + 1:]) for i in range(len(lengths))]
    phase_of = [tuple(o * d % s for o, d, s in zip(offset, dilation, stride)) for offset in offsets]
    phases = sorted(set(phase_of))
    reads = [(phases.index(p), sum(o * d // s * st for o, d, s, st in zip(offset, dilation, stride, strides)))
             for offset, p in zip(offsets, phase_of)]
    copies = [(i, *_phase_runs(sizes, pads, stride, phase, lengths)) for i, phase in enumerate(phases)]
    per = (len(phases) * math.prod(lengths) + 2 * span) * x.itemsize  # (a channel's phases, sum and term)
    block = max(1, min(G, CACHE_BYTES // (span * x.itemsize), within_room(G * per) // per))
    xb = np.zeros((len(phases), block, *lengths), x.dtype)  # one block of input's phases (the zeros stay)
    flat = xb.reshape(len(phases), block, -1)
    acc, part = np.empty((block, span), x.dtype), np.empty((block, span), x.dtype)
    keep = (slice(None), *(slice(0, o) for o in out))
    w = wg[:, 0, :]
    # Every view a block's calls read or write, made once for all the samples: each call is short (a block in the
    # cache), and at two threads what a call spends holding Python's lock is what the other thread waits for
    blocks = []
    for g0 in range(0, G, block):
        g1 = min(G, g0 + block)
        b = g1 - g0
        a = acc[:b]
        terms = [(flat[i, :b, start:start + span], w[g0:g1, t:t + 1]) for t, (i, start) in enumerate(reads)]
        fills = [((i, slice(0, b), *dst), (slice(g0, g1), *src)) for i, dst, src in copies]
        shift = None if bias is None else bias[g0:g1].reshape(b, *(1,) * len(out))
        made = a.reshape(b, out[0], *lengths[1:])[keep]
        blocks.append((slice(g0, g1), fills, a, part[:b], *terms[0], terms[1:], made, shift))
    multiply, add = np.multiply, np.add
    for n in range(len(x)):
        xn, yn = x[n], y[n]
        for channels, fills, a, t_, s0, w0, rest, made, shift in blocks:
            for dst, src in fills:
                xb[dst] = xn[src]
            multiply(s0, w0, a)  # (``out`` by position: a keyword costs each call a parse)
            for s, wt in rest:
                multiply(s, wt, t_)
                add(a, t_, a)
            if shift is None:
                yn[channels] = made
            else:
                add(made, shift, yn[channels])


def _depthwise_rows(x, wg, K, stride, dilation, pads, out, bias, y):
    """``_depthwise``, channels first: a few channels of a sample at a time."""
    G, sizes = x.shape[1], x.shape[2:]
    Fg, rank = wg.shape[1], len(out)
    y = y.reshape(len(x), G, Fg, *out)
    offsets = list(taps(K, stride, dilation, out))
    b = None if bias is None else bias.reshape(G, Fg)
    padded = tuple(n + pb + pa for n, (pb, pa) in zip(sizes, pads))
    inner = tuple(slice(pb, pb + n) for n, (pb, _) in zip(sizes, pads))
    block = max(1, CACHE_BYTES // (Fg * math.prod(out) * x.itemsize))
    tmp = np.empty((block, Fg, *out), x.dtype)
    xb = np.zeros((block, 1, *padded), x.dtype)  # one block of input, padded (the zeros stay)
    for n in range(len(x)):
        for g0 in range(0, G, block):
            g1 = min(G, g0 + block)
            acc, part, xp = y[n, g0:g1], tmp[:g1 - g0], xb[:g1 - g0]
            xp[(slice(None), 0, *inner)] = x[n, g0:g1]
            for t, sl in offsets:
                wt = wg[g0:g1, :, t].reshape(g1 - g0, Fg, *(1,) * rank)
                np.multiply(xp[(slice(None), slice(None), *sl)], wt, out=acc if t == 0 else part)
                if t:
                    acc += part
            if b is not None:
                acc += b[g0:g1].reshape(g1 - g0, Fg, *(1,) * rank)


def _depthwise_banded(x, wg, K, stride, dilation, pads, out, bias, y, bias_in_product=False):
    """``_depthwise`` for short rows: BLAS products with banded weights.

    Along the last axis, a row of outputs is the padded row of input it reads times a banded matrix (the weight of
    offset ``k`` on the input ``j * stride + k * dilation`` of output ``j``). The input rows the other offsets
    read are copied side by side, so that one product per channel, ``(samples * rows, taps * width) @ (taps *
    width, out[-1])``, makes every output of the chunk's samples. The band multiplies ``width / kernel[-1]``
    times as many values as the correlation needs; for rows this short, BLAS still does that faster than a
    multiply-add per offset. Chunks of channels (and of samples, when a channel is too large) keep the padded
    input, its copied rows and the bands within ``CHUNK_BYTES`` and the room (``set_room``), the whole of it in each
    part of a batch worked side by side (not a share, as other kernels keep): rows this short are a network's small
    maps, late and far from its peak (the measured peaks did not move), and a part's products are then half as many,
    each waiting for Python's lock once (MobileNetV2 forward at two threads: 0.97x the time). With
    ``bias_in_product``, the copied rows end in a one and the bands in a row holding the bias: the product adds it.
    """
    N, G, *sizes = x.shape
    Fg, r = wg.shape[1], len(out)
    padded = [n + pb + pa for n, (pb, pa) in zip(sizes, pads)]
    width, rows, taps = padded[-1], math.prod(out[:-1]), math.prod(K[:-1])
    fused = bias is not None and bias_in_product
    length = taps * width + fused  # of a copied row: the inputs every offset reads (and the one)
    per = (rows * length + math.prod(padded) + Fg * rows * out[-1]) * x.itemsize  # one channel of one sample
    budget = within_room(CHUNK_BYTES)  # (the whole of it in each part: above)
    n = _chunk(N, per, budget)
    gc = max(1, min(G, budget // (per * n + Fg * length * out[-1] * x.itemsize)))
    xb = np.zeros((gc, n, *padded), x.dtype)  # the zeros of the padding stay
    cols = np.ones((gc, n, *out[:-1], length), x.dtype)  # (so do the ones)
    band = np.zeros((gc, Fg, length, out[-1]), x.dtype)
    made = np.empty((gc, Fg, n * rows, out[-1]), x.dtype)
    copied = cols[..., :taps * width].reshape(gc, n, *out[:-1], *K[:-1], width)
    sg, sn, *ss = xb.strides
    view = np.lib.stride_tricks.as_strided(
        xb, copied.shape, (sg, sn, *(st * s for st, s in zip(ss, stride[:-1])),
                           *(st * d for st, d in zip(ss, dilation[:-1])), ss[-1]), writeable=False)
    inner = tuple(slice(pb, pb + m) for m, (pb, _) in zip(sizes, pads))
    # offset k's weight sits at (j * stride + k * dilation, j) of a band (width, out): every (stride * out + 1)-th
    # value of the flat band from k * dilation * out, a plain strided view
    diagonals = band[:, :, :taps * width].reshape(gc, Fg, taps, width * out[-1])
    wk = wg.reshape(G, Fg, taps, K[-1])
    shift = None if bias is None or fused else bias.reshape(G * Fg, *(1,) * r)
    for g0 in range(0, G, gc):
        b = min(gc, G - g0)
        for k in range(K[-1]):  # the same places in every chunk: the zeros stay
            first = k * dilation[-1] * out[-1]
            diagonals[:b, :, :, first::stride[-1] * out[-1] + 1][..., :out[-1]] = wk[g0:g0 + b, :, :, k, None]
        if fused:
            band[:b, :, -1] = bias[g0 * Fg:(g0 + b) * Fg].reshape(b, Fg, 1)
        for n0 in range(0, N, n):
            m = min(n, N - n0)
            xb[(slice(0, b), slice(0, m), *inner)] = x[n0:n0 + m, g0:g0 + b].swapaxes(0, 1)
            np.copyto(copied[:b, :m], view[:b, :m])
            p = made[:b, :, :m * rows]
            np.matmul(cols[:b, :m].reshape(b, 1, m * rows, length), band[:b], out=p)
            dst = y[n0:n0 + m, g0 * Fg:(g0 + b) * Fg]
            _put(dst, p.reshape(b * Fg, m, *out).swapaxes(0, 1),
                 None if shift is None else shift[g0 * Fg:(g0 + b) * Fg])


def _conv_by_offsets(xp, wg, K, stride, dilation, out):
    """Grouped correlation with few channels per group: per kernel offset, a broadcast multiply
    (one input channel per group) or a short weighted sum (one output channel per group)."""
    N, C = xp.shape[:2]
    G, Fg, Cg, _ = wg.shape
    P = math.prod(out)
    y = np.zeros((N, G, Fg, P), xp.dtype)
    for t, sl in taps(K, stride, dilation, out):
        xt = xp[(slice(None), slice(None), *sl)].reshape(N, G, Cg, P)
        wt = wg[..., t]
        if Cg == 1:
            y += wt[None, :, :, :] * xt  # (1, G, Fg, 1) * (N, G, 1, P)
        else:
            y += np.einsum("gc,ngcp->ngp", wt[:, 0, :], xt)[:, :, None, :]
    return y


def conv_grad_weight(x, dy, kernel, stride, dilation, pads, groups=1, algorithm: Winograd | None = None, chunk=0):
    """Gradient of ``conv`` with respect to its weights: each output gradient times the input
    window it came from, summed over the batch and positions (``dy @ columns^T``). With a Winograd ``algorithm``
    (a 3x3 filter at stride 1, ungrouped), in its domain (``winograd_grad_weight``)."""
    if algorithm is not None:
        return winograd_grad_weight(x, dy, pads, chunk, algorithm)
    N, C = x.shape[:2]
    F, out = dy.shape[1], dy.shape[2:]
    G, Fg, Cg = groups, F // groups, C // groups
    P, Kn = math.prod(out), math.prod(kernel)

    def by_offsets(rows):
        xp, dy4 = pad(x[rows], pads), dy[rows].reshape(-1, G, Fg, P)
        dw = np.empty((G, Fg, Cg, Kn), dy.dtype)
        for t, sl in taps(kernel, stride, dilation, out):
            xt = xp[(slice(None), slice(None), *sl)].reshape(len(xp), G, Cg, P)
            dw[..., t] = np.einsum("ngfp,ngcp->gfc", dy4, xt)
        return dw

    transposed = N * P >= TRANSPOSED_COLUMNS

    def products(rows):
        dy4 = dy[rows].reshape(-1, G, Fg, P)
        dw = None  # (the first chunk's product: as many values as the weights, not zeroed and added to)
        for n0, m, at, cols in im2col(pad(x[rows], pads), kernel, stride, dilation, out, products=F,
                                      columns=GRADIENT_COLUMNS):
            d = dy4[n0, :, :, at] if m == 1 else np.ascontiguousarray(dy4[n0:n0 + m].transpose(1, 2, 0, 3))
            d, cols = d.reshape(G, Fg, -1), cols.reshape(G, Cg * Kn, -1)
            product = np.matmul(cols, d.swapaxes(-1, -2)) if transposed else np.matmul(d, cols.swapaxes(-1, -2))
            dw = product if dw is None else np.add(dw, product, out=dw)
        return dw

    if G > 1 and (Cg == 1 or Fg == 1):
        return summed(N, by_offsets).reshape(F, Cg, *kernel)
    dw = summed(N, products)
    return (transpose(dw) if transposed else dw).reshape(F, Cg, *kernel)


def conv_grad_input(dy, w, sizes, stride, dilation, pads, groups=1, algorithm: Winograd | None = None,
                    chunk=0, kept=False):
    """Gradient of ``conv`` with respect to its input, as the seeds describe it: a *full*
    convolution of the output gradient with the filter rotated by 180 degrees.

    Padding by ``dilation * (kernel - 1) - pad_before`` makes the correlation "full"; the rotated
    filter swaps input and output channels within each group. ``sizes`` are the input's spatial
    sizes (a strided convolution may ignore the last rows of its input). With a stride, the
    output gradient would first be spread out with ``stride - 1`` zeros between values; most of
    that work multiplies zeros, so strided convolutions compute the same full convolution by
    scattering instead (``_scatter_input_grad``), as do small maps (fewer than ``WIDE_ENOUGH`` output positions a
    sample, neither input nor output one channel a group), whose samples share one product there. This is also a
    transposed convolution's forward. With a Winograd ``algorithm`` (a 3x3 filter at stride 1, ungrouped, padded by
    at most 2), the full correlation runs by it, in chunks of ``chunk`` tiles (``winograd``). ``kept``: a pass for
    gradients, whose scratch the thread keeps (``lent``; an inference pass, a transposed convolution's forward,
    holds only its own).
    """
    _, F, *out = dy.shape
    _, Cg, *K = w.shape
    G, Fg = groups, F // groups
    if any(s > 1 for s in stride) or (math.prod(out) < WIDE_ENOUGH and Cg > 1 and Fg > 1):
        return _scatter_input_grad(dy, w, sizes, stride, dilation, pads, groups, kept)
    full = [(d * (k - 1) - pb, n + pb - 1 - (o - 1)) for n, o, k, d, (pb, _) in zip(sizes, out, K, dilation, pads)]
    rank = len(K)
    if algorithm is not None:
        return winograd(dy, winograd_weights(w, algorithm, rotated=True), full, sizes, chunk=chunk, f=algorithm,
                        kept=kept)
    rotated = np.flip(w, axis=tuple(range(2, 2 + rank))).reshape(G, Fg, Cg, *K).swapaxes(1, 2)
    return conv(dy, rotated.reshape(G * Cg, Fg, *K), stride, dilation, full, sizes, groups,
                columns=GRADIENT_COLUMNS if kept else 0)


def _scatter_input_grad(dy, w, sizes, stride, dilation, pads, groups, kept):
    """The full convolution with the rotated filter, computed as a scatter: each output gradient
    goes back through the filter (``w^T @ dy``, one matmul per chunk) onto the input values its
    window read (``col2im``). No zeros are multiplied, whatever the stride. Samples of fewer than
    ``WIDE_ENOUGH`` output positions share one product, side by side (at least ``GRADIENT_COLUMNS`` columns within
    four times the budget; with ``kept``, in the thread's kept scratch), rather than one narrow product each."""
    N, F, *out = dy.shape
    _, Cg, *K = w.shape
    G, Fg, C = groups, F // groups, groups * Cg
    P, Kn = math.prod(out), math.prod(K)
    dxp = np.zeros((N, C, *(n + pb + pa for n, (pb, pa) in zip(sizes, pads))), dy.dtype)
    wt = w.reshape(G, Fg, Cg * Kn).transpose(0, 2, 1)  # (G, Cg*K, Fg)
    wide = Fg > 1 and P < WIDE_ENOUGH
    per_sample = C * Kn * P * dy.itemsize
    rank = len(K)
    samples_first = (rank + 1, 0, *range(1, rank + 1), *range(rank + 2, 2 * rank + 2))  # (C, *K, m, *out): m first

    def scatter(rows):
        n = _chunk(rows.stop - rows.start, per_sample)
        if wide:
            n = max(n, min(rows.stop - rows.start, -(-GRADIENT_COLUMNS // P), 4 * scratch(CHUNK_BYTES) // per_sample))
        for n0 in range(rows.start, rows.stop, n):
            n1 = min(n0 + n, rows.stop)
            d = dy[n0:n1].reshape(-1, G, Fg, P)
            if not wide:
                dcols = wt[None] * d if Fg == 1 else np.matmul(wt, d)  # (m, G, Cg*K, P)
                col2im(dcols.reshape(len(d), C, *K, *out), dxp[n0:n1], K, stride, dilation, out)
                continue
            side = np.ascontiguousarray(d.transpose(1, 2, 0, 3)).reshape(G, Fg, -1)  # the samples side by side
            with _buffers("scatter", [(G, Cg * Kn, side.shape[-1])], dy.dtype, kept) as (store,):
                dcols = np.matmul(wt, side, out=store)
                col2im(dcols.reshape(C, *K, len(d), *out).transpose(samples_first), dxp[n0:n1], K, stride, dilation,
                       out)

    side_by_side(N, scatter)
    return crop(dxp, pads)


def add_bias(y, b):
    y += b.reshape(-1, *(1,) * (y.ndim - 2))
    return y


def summed(n: int, work):
    """The sum of ``work(rows)`` over runs of ``n`` samples worked ``side_by_side`` (partial sums of a reduction)."""
    parts = side_by_side(n, work)
    return sum(parts[1:], parts[0])


# -- per-channel reductions ------------------------------------------------------------------
def map_sums(x):
    """The sum of every map of ``(N, C, *S)``, ``(N, C)``: one BLAS matrix-vector product, several times faster
    than NumPy's reduction over the trailing axes."""
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    return np.matmul(flat, np.ones(flat.shape[1], x.dtype)).reshape(x.shape[:2])


def channel_sums(x):
    """Per channel, the sum of ``(N, C, *S)`` over the batch and every position (a bias's gradient, a batchnorm's
    mean), the samples worked ``side_by_side``."""
    return summed(len(x), lambda rows: map_sums(x[rows]).sum(axis=0))


def channel_count(x) -> int:
    """Per channel, the values of ``(N, C, *S)`` over the whole batch (a part's batch is the whole batch's share:
    ``batch_samples``): what a batch statistic's sums are divided by."""
    return batch_samples(len(x)) * math.prod(x.shape[2:])


def channel_dot(a, b):
    """Per channel, the sum of ``a * b`` over the batch and every position (``(N, C, *S)`` each): one pass, no
    temporary array, the samples worked ``side_by_side``."""
    def dot(rows):
        n, c = a[rows].shape[:2]
        return np.einsum("ncp,ncp->c", a[rows].reshape(n, c, -1), b[rows].reshape(n, c, -1))

    return summed(len(a), dot)


# -- locally connected ---------------------------------------------------------------------
def local(x, w, stride, dilation, pads):
    """Unshared convolution: ``w`` is ``(F, *out, C, *kernel)``, one filter bank per output position.
    One matmul per chunk, batched over positions: ``(P, F, CK) @ (P, CK, n)``."""
    xp = pad(x, pads)
    F, *rest = w.shape
    out, K = rest[:(len(rest) - 1) // 2], rest[(len(rest) + 1) // 2:]
    P = math.prod(out)
    wp = w.reshape(F, P, -1).transpose(1, 0, 2)
    y = np.empty((x.shape[0], F, P), x.dtype)
    for n0, m, _, cols in im2col(xp, K, stride, dilation, out, split=False):
        y[n0:n0 + m] = np.matmul(wp, cols.reshape(-1, m, P).transpose(2, 0, 1)).transpose(2, 1, 0)
    return y.reshape(x.shape[0], F, *out)


def local_grads(x, dy, w, stride, dilation, pads):
    """Gradients of ``local``: (input gradient, weight gradient)."""
    xp = pad(x, pads)
    F, *rest = w.shape
    out, K = tuple(rest[:(len(rest) - 1) // 2]), tuple(rest[(len(rest) + 1) // 2:])
    C, P = rest[len(out)], math.prod(out)
    wp = w.reshape(F, P, -1).transpose(1, 0, 2)
    dyp = dy.reshape(dy.shape[0], F, P).transpose(2, 1, 0)  # (P, F, N)
    dw = np.zeros_like(wp)
    dxp = np.zeros_like(xp)
    for n0, m, _, cols in im2col(xp, K, stride, dilation, out, split=False):
        d = dyp[:, :, n0:n0 + m]
        dw += np.matmul(d, cols.reshape(-1, m, P).transpose(2, 1, 0))
        dcols = np.matmul(wp.transpose(0, 2, 1), d).transpose(2, 1, 0)  # (m, CK, P)
        col2im(dcols.reshape(m, C, *K, *out), dxp[n0:n0 + m], K, stride, dilation, out)
    return crop(dxp, pads), dw.transpose(1, 0, 2).reshape(w.shape)


def crop(xp, pads):
    """Undo ``pad``: the gradient of padding is the interior of the padded gradient."""
    return pad(xp, [(-b, -a) for b, a in pads])


# -- pooling -------------------------------------------------------------------------------
def pool_pads(sizes, kernel, stride, pads, out):
    """Padding that fits every window, including a last partial window kept by ``ceil_mode``."""
    return [(pb, max(pa, (o - 1) * s + k - n - pb)) for n, k, s, (pb, pa), o in zip(sizes, kernel, stride, pads, out)]


def _separable(x, kernel, stride, pads, out, op, fill):
    """Reduce every window with a binary ufunc (``np.maximum`` or ``np.add``), one spatial axis at a
    time: max and sum are separable, so this takes ``sum(kernel)`` vectorised operations. Padding is
    never materialised: each kernel offset only updates the outputs whose tap lands in the input
    (``fill``, the identity of ``op``, stands for the padding)."""
    y = x
    for axis, (k, s, (pb, _), o) in enumerate(zip(kernel, stride, pads, out), start=2):
        n = y.shape[axis]
        acc = np.full((*y.shape[:axis], o, *y.shape[axis + 1:]), fill, y.dtype)
        for offset in range(k):
            lo = max(0, -(-(pb - offset) // s))  # first output whose tap o*s + offset - pb >= 0
            hi = min(o - 1, (n - 1 + pb - offset) // s)  # last one whose tap is < n
            if hi < lo:
                continue
            first = lo * s + offset - pb
            src, dst = [slice(None)] * y.ndim, [slice(None)] * y.ndim
            src[axis] = slice(first, first + s * (hi - lo) + 1, s)
            dst[axis] = slice(lo, hi + 1)
            target = acc[tuple(dst)]
            op(target, y[tuple(src)], out=target)
        y = acc
    return y


def _by_chunks(x, out, pool, y=None):
    """``pool`` (a function of a batch) over chunks of samples whose input is at most ``CHUNK_BYTES`` (of channels
    of one sample, when one is larger), into one output ``(N, C, *out)`` (``y`` when given): the intermediate
    results of a separable pooling are a chunk's, not a batch's."""
    N, C = x.shape[:2]
    c = max(1, min(C, scratch(CHUNK_BYTES) // max(x[0, 0].nbytes, 1)))
    n = _chunk(N, x[0].nbytes) if c == C else 1
    if n == N and y is None:
        return pool(x)
    y = np.empty((N, C, *out), x.dtype) if y is None else y
    for n0 in range(0, N, n):
        for c0 in range(0, C, c):
            y[n0:n0 + n, c0:c0 + c] = pool(x[n0:n0 + n, c0:c0 + c])
    return y


def _phase_runs(sizes, pads, stride, phase, lengths) -> tuple[tuple, tuple]:
    """Where in a ``phase`` of the input padded by ``pads`` (per axis, the padded positions ``phase + stride * m``
    for ``m`` below ``lengths``) the input's values lie, and where in the input they come from: ``(dst, src)``,
    slices per spatial axis (empty where the phase holds only padding)."""
    dst, src = [], []
    for ph, s, n, (pb, _), length in zip(phase, stride, sizes, pads, lengths):
        m0, m1 = max(0, -(-(pb - ph) // s)), min(length, (n - 1 + pb - ph) // s + 1)  # inside the input
        m1 = max(m0, m1)
        dst.append(slice(m0, m1))
        src.append(slice(ph + s * m0 - pb, ph + s * m0 - pb + s * (m1 - m0), s))
    return tuple(dst), tuple(src)


def _phases(x, stride, pads, fill):
    """``x`` padded by ``pads`` with ``fill`` and cut into the phases of ``stride``, ``(*stride, N, C, *cells)``:
    phase ``r`` holds the padded values at ``r + stride * cell`` (``fill`` past the padded map's end). A window's
    value at a kernel offset is then, for every output, a run of one phase (``offset % stride``, from cell
    ``offset // stride``), not a strided view of the padded input."""
    N, C, *sizes = x.shape
    cells = [-(-(n + pb + pa) // s) for n, (pb, pa), s in zip(sizes, pads, stride)]
    phases = np.empty((*stride, N, C, *cells), x.dtype)
    everything = (slice(None), slice(None))
    for residues in itertools.product(*(range(s) for s in stride)):
        phase = phases[residues]
        dst, src = _phase_runs(sizes, pads, stride, residues, cells)
        for axis, inside in enumerate(dst):  # (the padding around the input's values)
            for outside in (slice(0, inside.start), slice(inside.stop, None)):
                phase[(*everything, *dst[:axis], outside)] = fill
        phase[(*everything, *dst)] = x[(*everything, *src)]
    return phases


def max_pool(x, kernel, stride, pads, out, keep_index=False):
    """Max over each window (padding never wins). With ``keep_index``, also the offset of each
    maximum (the first one on ties), for ``max_pool_grad``; then the samples are worked side by side on the
    threads of a training pass (``threads``): the input padded and cut into its stride's phases (``_phases``, one
    copy, as large as the padded input), a running maximum over the kernel's offsets in order, each offset's values
    a run of one phase, and where an offset's value is greater, the index set to that offset (0.7x the time of
    finding each maximum again among strided views: ResNet's 3x3 max-pool at stride 2, 4 samples of 64 channels on
    112x112 maps, one thread; its training step 0.986x at one thread, 0.98-0.99x at two; a sample at a time,
    0.99-1.0x: more calls)."""
    def pool(x):
        return _separable(x, kernel, stride, pads, out, np.maximum, -np.inf)

    if not keep_index:
        return _by_chunks(x, out, pool), None
    y = np.empty((*x.shape[:2], *out), x.dtype)
    offsets = math.prod(kernel)
    index = np.zeros(y.shape, np.int8 if offsets <= 2**7 else np.int16 if offsets <= 2**15 else np.int32)
    full = pool_pads(x.shape[2:], kernel, stride, pads, out)

    def work(rows):
        yr, ir = y[rows], index[rows]
        phases = _phases(x[rows], stride, full, -np.inf)
        hit, step = np.empty(yr.shape, bool), np.empty(yr.shape, ir.dtype)
        ones = hit.view(np.int8) if ir.dtype == np.int8 else hit  # (a bool's byte is 0 or 1: no cast for int8)
        for t, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
            at = tuple(slice(d // s, d // s + o) for d, s, o in zip(offset, stride, out))
            v = phases[(*(d % s for d, s in zip(offset, stride)), slice(None), slice(None), *at)]
            if t == 0:
                np.copyto(yr, v)
                continue
            np.greater(v, yr, out=hit)  # (strictly: the first maximum keeps its offset)
            np.maximum(yr, v, out=yr)
            np.subtract(t, ir, out=step)  # t - index where the offset is greater (arithmetic beats a masked write)
            np.multiply(step, ones, out=step)
            ir += step

    side_by_side(len(x), work)
    return y, index


def max_pool_grad(dy, index, sizes, kernel, stride, pads, out):
    """Each output's gradient added to the input its window's maximum came from (``index``: the kernel offset of
    each maximum), in the order of the outputs, as PyTorch adds them where windows overlap: one ``np.add.at``
    per chunk of samples, at positions worked out from the offsets, the samples worked side by side on the
    threads of a training pass (``threads``)."""
    N, C = dy.shape[:2]
    full = pool_pads(sizes, kernel, stride, pads, out)
    padded = [n + b + a for n, (b, a) in zip(sizes, full)]
    steps = [math.prod(padded[i + 1:]) for i in range(len(padded))]  # of each spatial axis in a padded map
    at_offset = np.array([sum(k * st for k, st in zip(offset, steps))
                          for offset in itertools.product(*(range(k) for k in kernel))], np.intp)
    corner = sum((np.arange(o, dtype=np.intp) * s * st).reshape(o, *(1,) * (len(out) - 1 - axis))
                 for axis, (o, s, st) in enumerate(zip(out, stride, steps)))  # of each output's window
    plane = math.prod(padded)
    dxp = np.zeros((N, C, *padded), dy.dtype)
    flat = dxp.reshape(-1)

    def work(rows):
        n = _chunk(rows.stop - rows.start, C * math.prod(out) * np.dtype(np.intp).itemsize)
        for n0 in range(rows.start, rows.stop, n):
            n1 = min(rows.stop, n0 + n)
            where = at_offset.take(index[n0:n1])
            where += corner
            where += (np.arange(n0 * C, n1 * C, dtype=np.intp) * plane).reshape(n1 - n0, C, *(1,) * len(out))
            np.add.at(flat, where.reshape(-1), dy[n0:n1].reshape(-1))

    side_by_side(N, work)
    return crop(dxp, full)


def avg_divisor(sizes, kernel, stride, pads, out, count_include_pad, dtype):
    """Values averaged by each window, ``(1, 1, *out)``: PyTorch's rule (padding counts when
    ``count_include_pad``; the part of a ``ceil_mode`` window beyond the padding never does)."""
    full = pool_pads(sizes, kernel, stride, pads, out)
    mask = np.ones((1, 1, *sizes), dtype)
    if count_include_pad:
        mask = pad(mask, pads, 1.0)
        mask = pad(mask, [(0, a - pa) for (_, a), (_, pa) in zip(full, pads)])
    else:
        mask = pad(mask, full)
    return sum(mask[(slice(None), slice(None), *sl)] for _, sl in taps(kernel, stride, (1,) * len(kernel), out))


def avg_pool(x, kernel, stride, pads, out, count_include_pad):
    y = _by_chunks(x, out, lambda x: _separable(x, kernel, stride, pads, out, np.add, 0))
    y /= avg_divisor(x.shape[2:], kernel, stride, pads, out, count_include_pad, x.dtype)
    return y


def avg_pool_grad(dy, sizes, kernel, stride, pads, out, count_include_pad):
    full = pool_pads(sizes, kernel, stride, pads, out)
    g = dy / avg_divisor(sizes, kernel, stride, pads, out, count_include_pad, dy.dtype)
    dxp = np.zeros((*dy.shape[:2], *(n + b + a for n, (b, a) in zip(sizes, full))), dy.dtype)
    for _, sl in taps(kernel, stride, (1,) * len(kernel), out):
        dxp[(slice(None), slice(None), *sl)] += g
    return crop(dxp, full)


# -- adaptive pooling -----------------------------------------------------------------------
# ``cells`` gives per spatial axis the [start, end) input span of each output position (the propagator's
# ``Geometry.cells``). Average and max are separable over a box of cells, so both pool one axis at a time;
# an axis whose output keeps every position is skipped.
def _averaging(spans, n, dtype):
    """The ``(m, n)`` matrix that averages each cell of an axis: row i holds 1/width over its span."""
    a = np.zeros((len(spans), n), dtype)
    for i, (lo, hi) in enumerate(spans):
        a[i, lo:hi] = 1 / (hi - lo)
    return a


def adaptive_avg_pool(x, cells):
    for axis, spans in enumerate(cells, start=2):
        if len(spans) < x.shape[axis]:
            x = np.moveaxis(np.moveaxis(x, axis, -1) @ _averaging(spans, x.shape[axis], x.dtype).T, -1, axis)
    return x


def adaptive_avg_pool_grad(dy, cells, sizes):
    for axis, (spans, n) in enumerate(zip(cells, sizes), start=2):
        if len(spans) < n:
            dy = np.moveaxis(np.moveaxis(dy, axis, -1) @ _averaging(spans, n, dy.dtype), -1, axis)
    return dy


def adaptive_max_pool(x, cells, keep_index=False):
    """Max over each cell, the last axis first: on ties the first maximum in row-major order wins (the first
    row holding the maximum, then its first column), as in PyTorch. With ``keep_index``, also per pooled axis
    ``(axis, input size, input position of each output's maximum)``, for ``adaptive_max_pool_grad``."""
    index = []
    for axis in reversed(range(2, x.ndim)):
        spans, n = cells[axis - 2], x.shape[axis]
        if len(spans) == n:
            continue
        width = max(hi - lo for lo, hi in spans)
        # the positions each cell reads, (m, width): a narrower cell repeats its last one, which never wins a tie
        taps = np.array([[min(lo + j, hi - 1) for j in range(width)] for lo, hi in spans])
        v = np.moveaxis(x, axis, -1)[..., taps]  # (..., m, width)
        first = v.argmax(axis=-1)
        x = np.moveaxis(np.take_along_axis(v, first[..., None], axis=-1)[..., 0], -1, axis)
        if keep_index:
            index.append((axis, n, taps[np.arange(len(spans)), first]))
    return x, index if keep_index else None


def adaptive_max_pool_grad(dy, index):
    """Each output's gradient to the input position of its maximum, undoing the last pooled axis first;
    overlapping cells that share a maximum add up."""
    for axis, n, positions in reversed(index):
        d = np.moveaxis(dy, axis, -1)
        lead, m = d.shape[:-1], d.shape[-1]
        flat = (np.arange(math.prod(lead))[:, None] * n + positions.reshape(-1, m)).reshape(-1)
        dx = np.bincount(flat, weights=d.reshape(-1), minlength=math.prod(lead) * n).astype(dy.dtype)
        dy = np.moveaxis(dx.reshape(*lead, n), -1, axis)
    return dy


# -- upsampling ----------------------------------------------------------------------------
def _linear_phases(f: int):
    """For output ``j = f * i + r``: the source ``(j + 0.5) / f - 0.5 = i + t`` (half-pixel centres)
    reads inputs ``i + lo`` and ``i + lo + 1`` with weights ``(1 - frac, frac)``."""
    for r in range(f):
        t = (r + 0.5) / f - 0.5
        lo = math.floor(t)
        yield r, lo, t - lo


def upsample(x, scale, mode):
    """Nearest: repeat each value; linear: separable half-pixel interpolation with edges clamped
    (PyTorch's ``align_corners=False``), one shifted multiply-add per phase and axis."""
    y = x
    for axis, f in enumerate(scale, start=2):
        if f == 1:
            continue
        if mode == "nearest":
            y = np.repeat(y, f, axis=axis)
            continue
        n = y.shape[axis]
        edge = [(0, 0)] * (y.ndim - 2)
        edge[axis - 2] = (1, 1)
        yp = np.pad(y, [(0, 0), (0, 0), *edge], mode="edge")
        out = np.empty((*y.shape[:axis], n * f, *y.shape[axis + 1:]), y.dtype)
        for r, lo, frac in _linear_phases(f):
            a = np.take(yp, range(lo + 1, lo + 1 + n), axis=axis)
            b = np.take(yp, range(lo + 2, lo + 2 + n), axis=axis)
            dst = [slice(None)] * y.ndim
            dst[axis] = slice(r, None, f)
            out[tuple(dst)] = a * (1 - frac) + b * frac if frac else a
        y = out
    return y


def upsample_grad(dy, scale, mode):
    g = dy
    for axis, f in reversed(list(enumerate(scale, start=2))):
        if f == 1:
            continue
        n = g.shape[axis] // f
        if mode == "nearest":
            g = g.reshape(*g.shape[:axis], n, f, *g.shape[axis + 1:]).sum(axis=axis + 1)
            continue
        shape = list(g.shape)
        shape[axis] = n + 2
        gp = np.zeros(shape, g.dtype)
        for r, lo, frac in _linear_phases(f):
            src = [slice(None)] * g.ndim
            src[axis] = slice(r, None, f)
            part = g[tuple(src)]
            for offset, weight in ((lo + 1, 1 - frac), (lo + 2, frac)):
                if weight:
                    dst = [slice(None)] * g.ndim
                    dst[axis] = slice(offset, offset + n)
                    gp[tuple(dst)] += part * weight
        # fold the clamped edges back onto the first and last inputs
        first, last, inner = ([slice(None)] * g.ndim for _ in range(3))
        first[axis], last[axis], inner[axis] = slice(0, 1), slice(n + 1, n + 2), slice(1, n + 1)
        g = gp[tuple(inner)].copy()
        head, tail = [slice(None)] * g.ndim, [slice(None)] * g.ndim
        head[axis], tail[axis] = slice(0, 1), slice(n - 1, n)
        g[tuple(head)] += gp[tuple(first)]
        g[tuple(tail)] += gp[tuple(last)]
    return g
