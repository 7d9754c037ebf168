"""The NumPy executor: run a spec's network forward and backward on real arrays.

It walks the graph the propagator analysed and calls each layer type's own ``forward`` /
``backward`` (beside its shape rule in ``archcheck.layers``; windowed kernels in
``archcheck.kernels``). It never re-derives a shape: every layer's output is checked against
the propagator's (``ShapeMismatch``, a bug in archcheck, if they differ). Arrays are batched,
``(N, *shape)``; float32 by default, float64 on request.

API
---
``init_params(analysis, seed=0, dtype="float32") -> {name: array}``
    Every layer's weights and buffers under state_dict names ``<layer>.<suffix>``, in PyTorch
    layouts. ``weight``: He-normal for layers followed by a ReLU-family activation (looking
    through normalisation, pooling, merges and the like), Glorot-uniform otherwise; biases 0;
    normalisation weight 1, bias 0; running mean 0, running variance 1.

``forward(analysis, params, x, *, train=False, keep=False, tape=None, seed=0, on_layer=None, fold=True, threads=1)``
    Runs the graph on ``x`` of shape ``(N, *input)``; returns ``{output name: array}`` (every
    node's output, the input included, with ``keep``). Inference uses batchnorm running
    statistics and no dropout; ``train`` uses batch statistics (updating the running ones in
    ``params`` in place, as PyTorch does) and dropout drawn from ``seed``. Activations are freed
    after their last consumer unless ``keep``. With a ``Tape``, each layer's cache is recorded
    for ``backward``. ``on_layer(node, output, seconds)`` is called after each layer. With
    ``threads`` > 1, inference that keeps and records nothing runs the batch in parts
    (``batch_parts``), one per thread, BLAS held to one thread meanwhile; ``on_layer`` is then called
    per part, from its thread, with the part's output and its rows of the batch (a slice) as a fourth
    argument.

``backward(analysis, params, tape, seeds) -> Gradients``
    ``seeds`` maps node names to dL/d(that node's output), usually the network outputs. Walks
    the tape in reverse, summing gradients where a tensor feeds several layers. Returns
    ``Gradients``: ``input`` (dL/dx), ``params`` (dL/dw for every trainable weight, zeros where
    no gradient flows) and ``norms`` (the L2 norm of dL/d(output) per layer reached; under
    ``"input"``, of dL/dx).

``loss(analysis, outputs, targets, kind="cross-entropy") -> (value, seeds)``
    Summed over the network outputs. ``cross-entropy`` takes integer labels ``(N,)`` (or
    ``(N, *spatial)`` for feature-map outputs); a softmax head is seeded at its input with
    ``(p - onehot) / M`` (exact and stable), any other output is taken as logits. ``mse`` takes
    targets shaped like the output.

``gradients(analysis, params, x, targets, kind="cross-entropy", *, train=True, seed=0, input_grad=True, threads=1)``
    One forward and backward pass: ``(loss value, outputs, Gradients)``; with ``threads`` > 1 the batch is cut into
    one part per thread, each walked forward and backward on its own thread, meeting where the samples do.

Dynamic checks (``archcheck run --grad``): ``layer_stats`` summarises an activation (``moments`` of parts of a
batch add up, ``summary`` reports them) and
``record`` gathers the statistics, weight-gradient norms and the loss of one pass into a ``Run``,
which the dynamic rules (``archcheck/rules/``, KIND = "dynamic", AC801-AC805) check through the lint engine
(``archcheck.lint.check_run``).
"""

from __future__ import annotations

import itertools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from archcheck import blas, kernels
from archcheck.errors import ArchcheckError
from archcheck.graph import NO_PLAN, InferencePlan
from archcheck.layers.base import Geometry, Layer, fmt_shape
from archcheck.propagate import DTYPES, Analysis, param_shapes
from archcheck.spec import INPUT, Node


class ShapeMismatch(RuntimeError):
    """A layer's array does not have the shape the propagator computed: a bug in archcheck, so not an
    ``ArchcheckError`` (it ends a command as an internal error, exit 3)."""


class InputError(ArchcheckError, ValueError):
    """The batch given to ``forward`` does not fit the spec (wrong shape or type)."""


@dataclass
class Context:
    """What a layer's ``forward`` may consult: the mode, whether to keep a cache, randomness, and the
    geometry the propagator worked out for the window of the layer being run (None for other layers)."""

    train: bool = False
    grad: bool = False
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    geometry: Geometry | None = None
    in_place: bool = False  # write the output over the first input (the inference plan says it may)
    kernel: str | None = None  # the faster algorithm the inference plan runs the layer by (prepared weights)
    planned: bool = False  # an inference plan runs, not every layer as written: a bias may be added within a product
    halved: bool = False  # the input holds half its values (the inference plan folded the halving into its maker)


@dataclass
class Tape:
    """Caches recorded by ``forward`` for ``backward``, by node name."""

    caches: dict = field(default_factory=dict)
    x_shape: tuple = ()
    dtype: np.dtype | None = None


@dataclass
class Gradients:
    input: np.ndarray | None  # None when not asked for (``backward``'s ``input_grad``)
    params: dict[str, np.ndarray]
    norms: dict[str, float]


# -- weights -------------------------------------------------------------------------------
def _feeds_relu(analysis: Analysis, node: Node) -> bool:
    """Whether a ReLU-family activation follows, looking through layers without weights
    (normalisation, pooling, merges, reshapes, dropout) and stopping at the next weighted layer."""
    def through(n: Node) -> bool:
        return not (n.layer.activation or n.layer.weighted)

    return any(n.layer.activation and n.layer.relu_family for n in analysis.graph.after(node, through))


def init_params(analysis: Analysis, seed: int = 0, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Initial weights and buffers for every layer (see the module docstring), seeded."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    params = {}
    for node in analysis.graph.order[1:]:
        ins = analysis.layers[node.name].in_shapes
        if not node.layer.weight_shapes(ins) and not node.layer.buffer_shapes(ins):
            continue
        for suffix, array in node.layer.init(ins, rng, _feeds_relu(analysis, node), dt).items():
            params[f"{node.name}.{suffix}"] = array
    return params


def _layer_params(analysis: Analysis, params: dict, dtype=None) -> dict[str, dict[str, np.ndarray]]:
    """Per node, its arrays by suffix (in ``dtype``; None: as given); missing or misshapen arrays raise
    WeightsError."""
    from archcheck.weights import check

    shapes = param_shapes(analysis)
    check(analysis, params, expected=shapes)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in shapes:
        node, suffix = name.rsplit(".", 1)
        array = np.asarray(params[name])
        out.setdefault(node, {})[suffix] = array if dtype is None else array.astype(dtype, copy=False)
    return out


@dataclass
class Folded:
    """The weights of every layer the inference plan changes (``Analysis.inference``): a batchnorm folded into
    it, the halving of the activation after it, or a faster kernel's arrays beside its weights (``prepare``), and
    of every layer whose forward reads them laid out otherwise (``Layer.laid_out``: a convolution's bias beside its
    weights), by layer and suffix, in ``dtype``. Made once per set of weights by ``fold_weights`` and handed to
    ``forward``; stale once they change."""

    layers: dict[str, dict[str, np.ndarray]]
    dtype: np.dtype
    kernels: frozenset[str] = frozenset()  # the layers prepared for a faster kernel


def fold_weights(analysis: Analysis, params: dict, dtype="float32", batch: int | None = None) -> Folded:
    """Fold each batchnorm of the inference plan into the layer before it (that layer's weights times the
    batchnorm's per-channel scale, its bias the batchnorm's shift of the old bias) and the halving of each
    activation that reads its input halved into the layer that makes it (``InferencePlan.halved``), then prepare
    what the faster kernels of the plan for batches of ``batch`` (by default the analysis's) read. Worked out in
    float64 and rounded once to ``dtype``, then laid out as the plan's forward reads them (``Layer.laid_out``)."""
    given = _layer_params(analysis, params)

    def exact(name: str) -> dict[str, np.ndarray]:  # (a layer's weights in float64: only those worked on)
        return {suffix: w.astype(np.float64, copy=False) for suffix, w in given.get(name, {}).items()}

    nodes = analysis.graph.nodes
    plan = analysis.inference_at(batch or analysis.batch, np.dtype(dtype).name)
    halves = set(plan.halved.values())  # the layers that make an activation's input halved: a power of two, exact
    layers = {}
    for name, bn in plan.folds.items():
        scale, shift = nodes[bn].layer.inference_affine(exact(bn))
        if name in halves:
            scale, shift = scale / 2, shift / 2
        layers[name] = nodes[name].layer.fold(exact(name), scale, shift)
    for name in halves - plan.folds.keys():
        channels = analysis.layers[name].shape[0]
        layers[name] = nodes[name].layer.fold(exact(name), np.full(channels, 0.5), np.zeros(channels))
    for name in plan.kernels:
        own = layers[name] if name in layers else exact(name)
        layers[name] = {**own, **nodes[name].layer.prepare(own)}
    for name in given.keys() - layers.keys():  # the weights of the others, where the plan reads them laid out
        if type(nodes[name].layer).laid_out is not Layer.laid_out:
            layers[name] = given[name]
    return Folded({name: nodes[name].layer.laid_out({suffix: w.astype(dtype) for suffix, w in arrays.items()})
                   for name, arrays in layers.items()}, np.dtype(dtype), frozenset(plan.kernels))


def plan_for(analysis: Analysis, *, train: bool = False, grad: bool = False, keep: bool = False,
             fold: bool | Folded = True, batch: int | None = None, dtype=None) -> InferencePlan:
    """The inference plan a ``forward`` with these arguments on ``batch`` samples in ``dtype`` (by default the
    analysis's) runs: ``Analysis.inference_at`` for inference that neither keeps every output nor records for
    ``backward``, with ``fold`` on; else every layer as written."""
    if fold is False or train or grad or keep:
        return NO_PLAN
    return analysis.inference_at(batch or analysis.batch, np.dtype(dtype or analysis.dtype).name)


# -- forward / backward --------------------------------------------------------------------
def check_input(analysis: Analysis, x) -> None:
    expected = tuple(analysis.layers[INPUT].shape)  # the spec's input, or the shape it was analysed with
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise InputError(f"the input batch must be a floating-point array, received {kind}")
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected or x.shape[0] < 1:
        raise InputError(f"the input batch has shape {fmt_shape(x.shape)} but the spec takes (N, "
                         f"{', '.join(map(str, expected))}): a batch of {fmt_shape(expected)} samples")


def forward(analysis: Analysis, params: dict, x: np.ndarray, *, train: bool = False, keep: bool = False,
            tape: Tape | None = None, seed: int = 0, on_layer=None, fold: bool | Folded = True,
            threads: int = 1) -> dict[str, np.ndarray]:
    """Run the network on a batch; see the module docstring."""
    check_input(analysis, x)
    per_layer = _layer_params(analysis, params, x.dtype)
    parts = batch_parts(len(x), threads, train=train, keep=keep, grad=tape is not None)
    largest = parts[0].stop
    plan = plan_for(analysis, train=train, grad=tape is not None, keep=keep, fold=fold, batch=largest, dtype=x.dtype)
    if plan is not NO_PLAN and not (isinstance(fold, Folded) and fold.dtype == x.dtype
                                    and fold.kernels >= plan.kernels.keys()):
        fold = fold_weights(analysis, params, x.dtype, largest)
    changed = fold.layers if plan is not NO_PLAN else {}  # (a plan's forward always has its Folded weights)
    if tape is not None:
        tape.x_shape, tape.dtype = x.shape, x.dtype
    if len(parts) == 1:
        ctx = Context(train=train, grad=tape is not None, rng=np.random.default_rng(seed))
        with kernel_threads(threads, len(x)):
            return _walk(analysis, x, per_layer, changed, plan, ctx, tape, keep, on_layer)

    def run(rows: slice) -> dict[str, np.ndarray]:  # (under the caller's error state, with its share of scratch)
        part = x[rows]
        report = None if on_layer is None else lambda node, y, seconds: on_layer(node, y, seconds, rows)
        return _walk(analysis, part, per_layer, changed, plan_for(analysis, fold=fold, batch=len(part), dtype=x.dtype),
                     Context(), None, False, report)

    with kernel_threads(len(parts), len(x)):
        return _joined(analysis, kernels.side_by_side(len(x), run))


def _joined(analysis: Analysis, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The network's outputs of a batch from its parts' outputs, in the order of the samples."""
    if len(parts) == 1:
        return {name: parts[0][name] for name in analysis.graph.outputs}
    return {name: np.concatenate([part[name] for part in parts]) for name in analysis.graph.outputs}


def batch_parts(n: int, threads: int = 1, *, train: bool = False, keep: bool = False,
                grad: bool = False) -> list[slice]:
    """The runs of consecutive samples, one per thread, that ``forward`` with these arguments cuts a batch of ``n``
    into, the larger first: several only for inference that neither keeps every output nor records for
    ``backward``, with ``threads`` > 1 and a BLAS that can be held to one thread meanwhile (``blas.threads()``)."""
    return kernels.runs(n, threads if threads > 1 and not (train or keep or grad) and blas.threads() else 1)


@contextmanager
def kernel_threads(threads: int, samples: int):
    """BLAS held to one thread and Python's switch interval short (``blas``), and ``threads`` for
    ``kernels.side_by_side``: the parts of a threaded inference, or,
    where a pass of ``samples`` is not cut into parts (training, gradients, ``keep``), the convolutions, batchnorms
    and max-pools cutting their own batch. Nothing for one sample (BLAS's own threads serve it better), nor where
    BLAS's threads cannot be held."""
    if threads > 1 and samples > 1 and blas.threads():
        with blas.single_threaded(), blas.short_switches(), kernels.threads(threads):
            yield
    else:
        yield


# An inference pass gives each layer's kernels, for their scratch, the room the predicted peak leaves free while it
# runs (``Analysis.headroom``) and this share of the peak besides, at least ``ROOM_LEAST`` bytes: their scratch then
# stays within the peak wherever that is, but for the least products that pay (``kernels.ROOM_COLUMNS``,
# ``Conv.WINOGRAD_LEAST``). Before, fixed budgets took VGG-16's forward to 1.16-1.29x its predicted peak at batch 8,
# Inception-v3's to 1.22-1.35x; now 1.06x and 1.05x. With 1/32, MobileNetV2's depthwise blocks at its peak were halved:
# 1.03x the time at two threads
ROOM_SHARE = 1 / 16
ROOM_LEAST = 3 * 2**16


def rooms(analysis: Analysis, samples: int, itemsize: int) -> dict[str, int]:
    """The bytes of scratch an inference pass of ``samples`` samples of ``itemsize`` bytes gives each layer's
    kernels (``kernels.set_room``)."""
    share = int(analysis.totals.peak_activation_bytes * ROOM_SHARE) // (analysis.batch * DTYPES[analysis.dtype])
    return {name: max(ROOM_LEAST, (free + share) * samples * itemsize) for name, free in analysis.headroom().items()}


def _walk(analysis: Analysis, x, per_layer, changed, plan: InferencePlan, ctx: Context, tape: Tape | None,
          keep: bool, on_layer) -> dict[str, np.ndarray]:
    """``forward``'s walk over the graph, on one batch (or part of one) and one thread; an inference plan's within
    the ``rooms`` of scratch the predicted peak leaves."""
    graph = analysis.graph
    values = {INPUT: x}
    ctx.planned = plan is not NO_PLAN
    room = rooms(analysis, len(x), x.itemsize) if plan is not NO_PLAN else {}
    before = kernels.set_room(None)
    try:
        for node in graph.order[1:]:
            kernels.set_room(room.get(node.name))
            if node.name not in plan.folded:  # a folded batchnorm ran with the layer before it
                made = graph.nodes[plan.folds[node.name]] if node.name in plan.folds else node
                ctx.geometry = analysis.layers[node.name].geometry
                ctx.in_place = node.name in plan.in_place
                ctx.halved = node.name in plan.halved
                ctx.kernel = plan.kernels.get(node.name)
                weights = changed[node.name] if node.name in changed else per_layer.get(node.name, {})
                start = time.perf_counter()
                y, cache = node.layer.forward([values[src] for src in node.inputs], weights, ctx)
                seconds = time.perf_counter() - start
                expected = (x.shape[0], *analysis.layers[made.name].shape)
                if y.shape != expected:
                    raise ShapeMismatch(f"layer '{node.name}' ({node.type}, {node.loc}) produced an array of shape "
                                        f"{fmt_shape(y.shape)} but the propagator computed {fmt_shape(expected)}: the "
                                        "executor and the shape rule of this layer type disagree (a bug in archcheck)")
                if tape is not None:
                    tape.caches[node.name] = cache
                values[made.name] = y
                if on_layer is not None:  # (a tensor made halved is reported as the layer makes it: exactly twice that)
                    on_layer(made, y * 2 if made.name in plan.made_halved else y, seconds)
            if keep:
                continue
            for name in graph.released[node.name]:  # the lifetimes the propagator's peak memory counts
                values.pop(name, None)  # a layer folded into the batchnorm after it made no tensor
        return values if keep else {name: values[name] for name in graph.outputs}
    finally:
        kernels.set_room(before)


def backward(analysis: Analysis, params: dict, tape: Tape, seeds: dict[str, np.ndarray], *,
             input_grad: bool = True, threads: int = 1) -> Gradients:
    """Back-propagate ``seeds`` through the recorded forward pass; see the module docstring. Without
    ``input_grad`` the gradient with respect to the batch is not computed (``Gradients.input`` is None), as
    training needs none: the layers that read only the batch give their weights' gradients alone. ``threads`` as
    for ``forward`` (``kernel_threads``)."""
    with kernel_threads(threads, tape.x_shape[0] if tape.x_shape else 1):
        return _backward(analysis, params, tape, seeds, input_grad)


def _backward(analysis: Analysis, params: dict, tape: Tape, seeds: dict[str, np.ndarray],
              input_grad: bool) -> Gradients:
    per_layer = _layer_params(analysis, params, tape.dtype)
    grads = dict(seeds)
    out_params: dict[str, np.ndarray] = {}
    norms: dict[str, float] = {}
    for node in reversed(analysis.graph.order[1:]):
        g = grads.pop(node.name, None)
        cache = tape.caches.pop(node.name, None)
        if g is None:
            continue
        norms[node.name] = float(np.linalg.norm(g.ravel()))
        if not input_grad and set(node.inputs) == {INPUT}:
            dxs, dps = [], node.layer.weight_grads(g, cache, per_layer.get(node.name, {}))
        else:
            dxs, dps = node.layer.backward(g, cache, per_layer.get(node.name, {}))
        for suffix, d in dps.items():
            out_params[f"{node.name}.{suffix}"] = d
        for src, dx in zip(node.inputs, dxs):
            want = analysis.layers[src].shape
            if dx.shape[1:] != tuple(want):  # a wrong shape here would be a wrong number downstream, silently
                raise RuntimeError(f"the input gradient of layer '{node.name}' ({node.type}) has shape "
                                   f"{dx.shape[1:]}, but its input '{src}' has {tuple(want)}")
            grads[src] = grads[src] + dx if src in grads else dx
    for node_name, arrays in per_layer.items():
        for suffix in analysis.graph.nodes[node_name].layer.weight_shapes(analysis.layers[node_name].in_shapes):
            if f"{node_name}.{suffix}" not in out_params:
                out_params[f"{node_name}.{suffix}"] = np.zeros_like(arrays[suffix])
    dx = grads.pop(INPUT, None)
    if not input_grad:
        return Gradients(None, out_params, norms)
    dx = np.zeros(tape.x_shape, tape.dtype) if dx is None else dx
    norms[INPUT] = float(np.linalg.norm(dx.ravel()))
    return Gradients(dx, out_params, norms)


# -- losses --------------------------------------------------------------------------------
def _softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def loss(analysis: Analysis, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
         kind: str = "cross-entropy") -> tuple[float, dict[str, np.ndarray]]:
    """The loss summed over the network outputs, and the gradient seeds for ``backward``."""
    total, seeds = 0.0, {}
    for name in analysis.graph.outputs:
        y, t = outputs[name], targets[name]
        if kind == "mse":
            diff = y - t.astype(y.dtype, copy=False)
            total += float(np.mean(diff * diff, dtype=np.float64))
            seeds[name] = diff * y.dtype.type(2 / diff.size)
            continue
        node = analysis.graph.nodes[name]
        head = node.layer.activation and node.layer.probabilities and node.layer.axis == 0
        p = y if head else _softmax(y)
        labels = t.astype(np.intp, copy=False)[:, None]
        picked = np.take_along_axis(p, labels, axis=1)
        total += float(-np.log(np.maximum(picked.astype(np.float64), np.finfo(np.float64).tiny)).mean())
        g = p.copy()
        np.put_along_axis(g, labels, picked - 1, axis=1)
        g /= g.dtype.type(g.size // g.shape[1])
        at = node.inputs[0] if head else name
        seeds[at] = seeds[at] + g if at in seeds else g
    return total, seeds


def random_targets(analysis: Analysis, batch: int, kind: str, rng: np.random.Generator,
                   dtype="float32") -> dict[str, np.ndarray]:
    """Random targets every network output can reach: class labels (cross-entropy); for mse,
    one-hot vectors of random classes after a softmax, values in [0, 1) otherwise."""
    out = {}
    for name in analysis.graph.outputs:
        shape = analysis.layers[name].shape
        labels = rng.integers(0, shape[0], (batch, *shape[1:]))
        if kind != "mse":
            out[name] = labels
        elif (layer := analysis.graph.nodes[name].layer).activation and layer.probabilities:
            out[name] = (np.arange(shape[0]).reshape(1, -1, *(1,) * (len(shape) - 1)) == labels[:, None]).astype(dtype)
        else:
            out[name] = rng.random((batch, *shape)).astype(dtype)
    return out


def gradients(analysis: Analysis, params: dict, x: np.ndarray, targets: dict[str, np.ndarray],
              kind: str = "cross-entropy", *, train: bool = True, seed: int = 0, input_grad: bool = True,
              threads: int = 1):
    """One forward and backward pass: (loss value, outputs, Gradients); ``input_grad`` as for ``backward``.

    With ``threads`` > 1 (and BLAS held to one thread meanwhile, as ``kernel_threads``), the batch is cut into one
    part per thread, each walked forward and backward on a thread of its own. The parts meet only where their
    samples do: batchnorm's batch statistics and the sums of its gradient are the whole batch's
    (``kernels.batch_total``), dropout's draws are made once for the whole batch (``kernels.batch_shared``), the
    loss is taken on the whole batch's outputs, and the parts' shares of each weight's gradient are added in the
    order of their samples. The values are those of one walk but for the order of those sums."""
    check_input(analysis, x)
    per_layer = _layer_params(analysis, params, x.dtype)
    rng = np.random.default_rng(seed)  # (only the first part draws from it: ``batch_shared``)
    tapes: dict[int, Tape] = {}

    def walk(rows: slice) -> dict[str, np.ndarray]:
        tape = tapes[rows.start] = Tape(x_shape=x[rows].shape, dtype=x.dtype)
        return _walk(analysis, x[rows], per_layer, {}, NO_PLAN, Context(train=train, grad=True, rng=rng), tape,
                     False, None)

    def back(rows: slice) -> Gradients:
        share = {name: seed_[rows] for name, seed_ in seeds.items()}
        return _backward(analysis, params, tapes.pop(rows.start), share, input_grad)

    with kernel_threads(threads, len(x)):
        outputs = _joined(analysis, kernels.side_by_side(len(x), walk))
        value, seeds = loss(analysis, outputs, targets, kind)
        shares = kernels.side_by_side(len(x), back)
    return value, outputs, _added(shares)


def _added(shares: list[Gradients]) -> Gradients:
    """The gradients of a batch from its parts' (``gradients``): each weight's shares added in the order of the
    samples, the input gradients joined, each norm the root of the sum of the parts' squares.

    The sums are made in the first part's arrays (a layer's weight gradients are arrays of its own, never views of
    its inputs, weights or caches), the values cut into runs added side by side on the parts' threads: a fresh
    result would map and zero as many pages as the weights hold, on one thread (ResNet-18 at two threads: 6 ms on
    one thread in place, against 20 ms into new arrays)."""
    if len(shares) == 1:
        return shares[0]
    first = shares[0]
    params = {name: d if d.flags.writeable and d.flags.c_contiguous else np.array(d)
              for name, d in first.params.items()}
    flat = [(d.reshape(-1), [share.params[name].reshape(-1) for share in shares[1:]]) for name, d in params.items()]
    starts = list(itertools.accumulate((len(d) for d, _ in flat), initial=0))

    def add(values: slice):
        for (d, others), start in zip(flat, starts):
            run = slice(max(values.start - start, 0), min(values.stop - start, len(d)))
            for other in others if run.start < run.stop else ():
                np.add(d[run], other[run], out=d[run])

    kernels.side_by_side(starts[-1], add)
    norms = {name: math.sqrt(sum(share.norms.get(name, 0.0) ** 2 for share in shares))
             for name in dict.fromkeys(name for share in shares for name in share.norms)}
    dx = None if first.input is None else np.concatenate([share.input for share in shares])
    return Gradients(dx, params, norms)


# -- statistics and the run record -----------------------------------------------------------
@dataclass
class LayerStats:
    name: str
    type: str
    shape: tuple
    mean: float
    std: float
    zeros: float  # share of values exactly zero
    saturated: float | None  # share within the margin of a bound (bounded activations only)
    nan: int
    inf: int
    seconds: float
    dead_units: int = 0  # channels (features) zero for every sample and position
    units: int = 0


@dataclass(frozen=True)
class Moments:
    """What ``layer_stats`` counts in a layer's output, for one part of the batch: a threaded forward summarises
    each part where it is made, and the parts add up (``+``, in the order of their samples)."""

    shape: tuple  # the part's, (samples, ...)
    mean: float  # non-finite values counted as 0, as in the mean and spread reported
    squares: float  # the sum of squared deviations from ``mean``
    zeros: int
    saturated: int | None  # values within the margin of a bound (bounded activations only)
    nan: int
    inf: int
    live: np.ndarray  # per unit (axis 1): whether any of its values is nonzero

    def __add__(self, other: Moments) -> Moments:
        n, m = math.prod(self.shape), math.prod(other.shape)
        mean = (n * self.mean + m * other.mean) / (n + m) if n + m else 0.0
        squares = self.squares + other.squares + (other.mean - self.mean) ** 2 * n * m / max(n + m, 1)  # Chan et al.
        saturated = None if self.saturated is None else self.saturated + other.saturated
        return Moments((self.shape[0] + other.shape[0], *self.shape[1:]), mean, squares, self.zeros + other.zeros,
                       saturated, self.nan + other.nan, self.inf + other.inf, self.live | other.live)


def moments(node: Node, y: np.ndarray, margin: float) -> Moments:
    """The counts behind ``layer_stats`` of the output ``y`` (N, ...) of ``node``; ``margin`` is the share of a
    bounded activation's range next to each bound that counts as saturated."""
    finite = np.isfinite(y)
    nan = inf = 0
    if not finite.all():
        nan = int(np.isnan(y).sum())
        inf = int(y.size - finite.sum()) - nan
        y = np.where(finite, y, 0)
    zero = y == 0
    live = ~zero.all(axis=(0, *range(2, y.ndim))) if y.ndim > 1 else np.ones(0, bool)
    layer = node.layer
    saturated = None
    if layer.activation and layer.saturating and not layer.probabilities:  # a softmax's outputs share one sum
        lo, hi = layer.output_range
        width = margin * (hi - lo)
        saturated = int(((y <= lo + width) | (y >= hi - width)).sum())
    return Moments(tuple(y.shape), float(y.mean()), float(y.var()) * y.size, int(zero.sum()), saturated, nan, inf,
                   live)


def summary(node: Node, m: Moments, seconds: float) -> LayerStats:
    """The statistics ``m`` counted (of one batch, or of all its parts added up)."""
    size = max(math.prod(m.shape), 1)
    return LayerStats(node.name, node.type, m.shape, m.mean, math.sqrt(m.squares / size), m.zeros / size,
                      None if m.saturated is None else m.saturated / size, m.nan, m.inf, seconds,
                      int((~m.live).sum()), m.shape[1] if len(m.shape) > 1 else 0)


def layer_stats(node: Node, y: np.ndarray, seconds: float, margin: float) -> LayerStats:
    """Summarise one layer's output ``y`` (N, ...); ``margin`` is the share of a bounded
    activation's range next to each bound that counts as saturated."""
    return summary(node, moments(node, y, margin), seconds)


@dataclass(frozen=True)
class GradientRatio:
    """AUTOTRAINER's measure of gradient flow: the weight-gradient norm of the first weighted
    (conv/dense) layer over that of the last."""

    first: Node
    last: Node
    first_norm: float
    last_norm: float

    @property
    def ratio(self) -> float:
        if self.last_norm > 0:
            return self.first_norm / self.last_norm
        return math.inf if self.first_norm > 0 else 1.0


@dataclass
class Run:
    """One forward and backward pass as the dynamic rules (AC801-AC805) read it: plain numbers,
    no arrays, so the rules need no NumPy. Made by ``record``."""

    analysis: Analysis
    stats: dict[str, LayerStats]  # per layer in execution order, the input first
    loss: float
    grad_norms: dict[str, float]  # per trainable array (``<layer>.<suffix>``): the L2 norm of dL/dw
    grad_finite: dict[str, bool]  # per trainable array: dL/dw holds no NaN or Inf

    @property
    def finite(self) -> bool:
        """The loss and every weight gradient are finite."""
        return math.isfinite(self.loss) and all(self.grad_finite.values())

    def gradient_ratio(self) -> GradientRatio | None:
        """The first and last conv/dense layers' weight gradients; None with fewer than two such layers.
        Layers on dangling branches (no path to an output) are left out: no gradient reaches them."""
        graph = self.analysis.graph
        weighted = [n for n in graph.order if n.name in graph.used
                    and n.layer.weighted and f"{n.name}.weight" in self.grad_norms]
        if len(weighted) < 2:
            return None
        first, last = weighted[0], weighted[-1]
        return GradientRatio(first, last, self.grad_norms[f"{first.name}.weight"],
                             self.grad_norms[f"{last.name}.weight"])


def record(analysis: Analysis, stats: dict[str, LayerStats], grads: Gradients, loss_value: float) -> Run:
    """The run record of one pass: ``stats`` from ``layer_stats``, ``grads`` from ``backward``."""
    norms, finite = {}, {}
    for name, g in grads.params.items():
        v = g.ravel().astype(np.float64, copy=False)  # float32 squares overflow long before the values do
        norms[name] = math.sqrt(float(np.dot(v, v)))
        finite[name] = bool(np.isfinite(v).all())
    return Run(analysis, stats, loss_value, norms, finite)
