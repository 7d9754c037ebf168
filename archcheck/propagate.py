"""Propagate shapes through the graph and derive every per-layer and total figure.

Per layer: output shape, parameters (trainable) and buffers (non-trainable), MACs,
FLOPs, output bytes, receptive field and, for layers that slide a window, its geometry.
In total: the sums, parameter bytes, peak inference memory from tensor lifetimes, and
training memory. Each layer type owns its own numbers (``archcheck.layers``); this module
only walks the graph and adds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from archcheck.errors import Collector, Problem, SpecError
from archcheck.graph import InferencePlan, LayerGraph
from archcheck.layers import Shape, ShapeError, fmt_shape
from archcheck.layers.base import Geometry, count, number
from archcheck.spec import INPUT, Node, bind

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}  # bytes per element
EXECUTOR_DTYPES = ("float32", "float64")  # the ones the NumPy executor computes in (run, train)
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # extra copies of the parameters
MAX_VALUES = 2**48  # more values than this in one tensor is not a real network
MAX_BATCH = 1_000_000  # the largest batch the memory figures are asked for (`summary --batch`, budgets)


@dataclass(frozen=True)
class Field:
    """Receptive field along one axis: unit i sees input pixels [i*S - P, i*S - P + r - 1]."""

    r: Fraction
    S: Fraction
    P: Fraction

    def center(self) -> Fraction:
        return (self.r - 1) / 2 - self.P

    def step(self, kernel: Fraction, stride: Fraction, pad: Fraction) -> Field:
        return Field(self.r + (kernel - 1) * self.S, self.S * stride, self.P + pad * self.S)


GLOBAL = "global"


@dataclass
class RF:
    """A layer's receptive field: one ``Field`` per spatial axis, or the whole input."""

    axes: tuple[Field, ...] | str
    note: str | None = None  # paths into a merge that disagree in stride or alignment

    @property
    def is_global(self) -> bool:
        return self.axes == GLOBAL


@dataclass
class LayerFacts:
    node: Node
    in_shapes: list[Shape]
    shape: Shape
    params: int
    buffers: int
    macs: int
    flops: int
    out_bytes: int
    rf: RF
    geometry: Geometry | None = None  # conv and window pooling: read by rules, the executor and the export

    @property
    def name(self) -> str:
        return self.node.name


@dataclass
class GroupFacts:
    """A block instance's subtotals; its output is its last layer's."""

    name: str
    layers: list[str]
    params: int
    buffers: int
    macs: int
    flops: int
    shape: Shape
    rf: RF


@dataclass
class Totals:
    params: int
    trainable: int
    non_trainable: int
    macs: int
    flops: int
    param_bytes: int
    activation_bytes: int  # every layer output at once, the naive sum
    peak_activation_bytes: int
    peak_inference_bytes: int
    peak_at: str
    training_bytes: dict[str, int]
    receptive_field: tuple[str, RF] | None


@dataclass
class Analysis:
    graph: LayerGraph
    layers: dict[str, LayerFacts]
    totals: Totals
    batch: int
    dtype: str
    optimizer: str  # whose state counts in the training memory shown; all three are in totals
    groups: dict[str, GroupFacts]  # outermost block instances, in order
    # A partial analysis (``SpecError.partial``) covers the layers that fit: ``broken`` holds the layers
    # left out (a shape error and everything downstream of it), ``before_broken`` the analysed layers
    # upstream of one, whose view of what follows them is cut short.
    broken: frozenset[str] = frozenset()
    before_broken: frozenset[str] = frozenset()
    _plans: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # by (batch, dtype)
    _headroom: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def spec(self):
        return self.graph.spec

    @property
    def inference(self) -> InferencePlan:
        """How an inference pass runs the graph at the analysis's batch and element type: batchnorms folded,
        layers writing over their input, faster kernels."""
        return self.inference_at(self.batch, self.dtype)

    def inference_at(self, batch: int, dtype: str) -> InferencePlan:
        """The inference plan for a batch of ``batch`` in ``dtype`` (only the faster kernels depend on them)."""
        key = (batch, str(dtype))
        if key not in self._plans:
            self._plans[key] = _plan(self.graph, self.layers, *key)
        return self._plans[key]

    def headroom(self) -> dict[str, int]:
        """Per layer of an inference pass, the values per sample that the predicted peak leaves free while it runs
        (``live_memory``): what its kernels' scratch may take without raising the peak."""
        if self._headroom is None:
            peak, scale = self.totals.peak_activation_bytes, self.batch * DTYPES[self.dtype]
            self._headroom = {name: (peak - live) // scale for name, live in live_memory(self.graph, self.layers)}
        return self._headroom

    def gradient_kernels(self, dtype: str) -> dict[str, str]:
        """The layers a pass for gradients in ``dtype`` runs by a faster algorithm (``gradient_kernel``), by name."""
        return {node.name: kernel for node in self.graph.order[1:]
                if (kernel := node.layer.gradient_kernel([self.layers[src].shape for src in node.inputs], str(dtype)))}


def _spatial_fields(node: Node, facts: dict[str, LayerFacts], shape) -> list[RF]:
    """The fields a layer's output follows: its inputs', less those broadcast over the map (a 1x1 or
    vector gate multiplying it, as in squeeze-and-excitation), which scale each channel but move
    nothing. Their field is the whole input, and keeping it would make every later field global."""
    def broadcast(src: str) -> bool:
        return len(shape) > 1 and all(s == 1 for s in facts[src].shape[1:]) and any(s > 1 for s in shape[1:])

    kept = [facts[src].rf for src in node.inputs if not broadcast(src)]
    return kept or [facts[src].rf for src in node.inputs]


def _merge_fields(node: Node, fields: list[RF]) -> RF:
    """Union of the input fields of a merge; note when paths disagree."""
    if any(f.is_global for f in fields):
        return RF(GLOBAL)
    axes, notes = [], []
    for axis in zip(*(f.axes for f in fields)):
        strides = {a.S for a in axis}
        if len(strides) > 1:
            notes.append(f"inputs have different effective strides {sorted(map(number, strides))}")
        elif len({a.center() for a in axis}) > 1:
            notes.append(f"input fields are not centred alike (offsets {sorted({number(a.center()) for a in axis})})")
        P = max(a.P for a in axis)
        end = max(a.r - 1 - a.P for a in axis)
        axes.append(Field(end + P + 1, max(a.S for a in axis), P))
    inherited = [f.note for f in fields if f.note]
    note = "; ".join(dict.fromkeys(notes)) or (inherited[0] if inherited else None)
    return RF(tuple(axes), note)


def propagate(graph: LayerGraph, batch: int = 1, dtype: str = "float32", input_shape: Shape | None = None,
              optimizer: str = "adam") -> Analysis:
    """Compute every figure; raise SpecError listing every layer whose shapes do not fit."""
    col = Collector()
    width = DTYPES[dtype]
    written = tuple(graph.spec.input)
    if input_shape is not None and len(input_shape) != len(written):
        sizes = ",".join(map(str, input_shape))
        raise SpecError([Problem(
            "invalid-spec", f"--input {sizes} gives {len(input_shape)} sizes, but the spec's input {list(written)} has "
            f"{len(written)} (channels and {len(written) - 1} spatial axes); a different number would build a "
            f"{len(input_shape) - 1}-D network from a {len(written) - 1}-D design", graph.nodes[INPUT].loc, None,
            f"give {len(written)} sizes, e.g. --input {','.join(map(str, written))}; to change the rank, edit `input` "
            "in the spec")])
    shape0 = tuple(input_shape or written)
    facts: dict[str, LayerFacts] = {}
    bound: dict[str, Node] = {}
    for node in graph.order:
        if node.name == INPUT:
            rf = RF(tuple(Field(Fraction(1), Fraction(1), Fraction(0)) for _ in shape0[1:]))
            facts[INPUT] = LayerFacts(node, [], shape0, 0, 0, 0, 0, batch * math.prod(shape0) * width, rf)
            continue
        if any(src not in facts for src in node.inputs):
            continue  # an upstream layer failed; its problem is already reported
        ins = [facts[src].shape for src in node.inputs]
        if node.recipe is not None:  # arguments that read a shape: made now, at this run's sizes
            node = bind(node, lambda name: facts[name].shape if name in facts else None, col)
            if node is None:
                continue
            bound[node.name] = node
        try:
            layer = node.layer
            geometry = layer.geometry(ins[0])  # once: the layer's own figures below read the same record
            shape = layer.output_shape(ins)
            if math.prod(shape) * batch > MAX_VALUES:
                raise ShapeError(f"the output {fmt_shape(shape)} holds {math.prod(shape) * batch:.3g} values, more "
                                 f"than archcheck's limit of 2^48 per tensor (batch included)",
                                 "check the sizes: this is far beyond any real network")
            params = count(layer.weight_shapes(ins))
            buffers = count(layer.buffer_shapes(ins))
            macs = layer.macs(ins, shape)
            flops = layer.flops(ins, shape)
            in_rfs = _spatial_fields(node, facts, shape)
            rf = _merge_fields(node, in_rfs) if len(in_rfs) > 1 else in_rfs[0]
            steps = layer.rf_steps(ins, shape)
            if steps == GLOBAL or (steps is not None and rf.is_global):
                rf = RF(GLOBAL)
            elif steps is not None:
                rf = RF(tuple(f.step(s.kernel, s.stride, s.pad) for f, s in zip(rf.axes, steps)), rf.note)
        except ShapeError as exc:
            received = " and ".join(fmt_shape(s) for s in ins)
            col.add("shape-error", f"{node.type} on input {received}: {exc.message}", node.loc, node.name, exc.fix)
            continue
        facts[node.name] = LayerFacts(node, ins, shape, params, buffers, macs, flops,
                                      batch * math.prod(shape) * width, rf, geometry)
    if bound:
        graph = graph.with_nodes(bound)
    if col.problems:
        raise SpecError(col.problems, _partial(graph, facts, width, batch, dtype, optimizer))
    return Analysis(graph, facts, _totals(graph, facts, width), batch, dtype, optimizer, _groups(facts))


def _partial(graph: LayerGraph, facts: dict[str, LayerFacts], width: int, batch: int, dtype: str,
             optimizer: str) -> Analysis:
    """The analysis of the layers that fit: everything upstream of a shape error and every branch
    independent of it, so lint still checks them (a shape error in the head does not hide a
    pooling mistake in the stem)."""
    part = graph.part(set(facts))
    broken = frozenset(graph.nodes) - set(facts)
    before_broken = frozenset(graph.upstream(c for b in broken for c in graph.nodes[b].inputs) & set(facts))
    return Analysis(part, facts, _totals(part, facts, width), batch, dtype, optimizer, _groups(facts), broken,
                    before_broken)


def _groups(facts: dict[str, LayerFacts]) -> dict[str, GroupFacts]:
    members: dict[str, list[LayerFacts]] = {}
    for f in facts.values():
        if f.node.group is not None:
            members.setdefault(f.node.group, []).append(f)
    return {name: GroupFacts(name, [m.name for m in ms], sum(m.params for m in ms), sum(m.buffers for m in ms),
                             sum(m.macs for m in ms), sum(m.flops for m in ms), ms[-1].shape, ms[-1].rf)
            for name, ms in members.items()}


def _totals(graph: LayerGraph, facts: dict[str, LayerFacts], width: int) -> Totals:
    trainable = sum(f.params for f in facts.values())
    buffers = sum(f.buffers for f in facts.values())
    param_bytes = (trainable + buffers) * width
    peak, peak_at = _peak_activations(graph, facts)
    activations = sum(f.out_bytes for f in facts.values())
    training = {opt: activations + param_bytes + trainable * width * (1 + k) for opt, k in OPTIMIZER_STATES.items()}
    return Totals(
        params=trainable + buffers, trainable=trainable, non_trainable=buffers,
        macs=sum(f.macs for f in facts.values()), flops=sum(f.flops for f in facts.values()),
        param_bytes=param_bytes, activation_bytes=activations, peak_activation_bytes=peak,
        peak_inference_bytes=param_bytes + peak, peak_at=peak_at, training_bytes=training,
        receptive_field=_final_field(graph, facts))


def _plan(graph: LayerGraph, facts: dict[str, LayerFacts], batch: int | None = None,
          dtype: str = "float32") -> InferencePlan:
    """The graph's inference plan; without a ``batch``, without its kernels (all the memory figures need)."""
    return graph.inference({name: f.shape for name, f in facts.items()}, batch, dtype)


def live_memory(graph: LayerGraph, facts: dict[str, LayerFacts]) -> list[tuple[str, int]]:
    """Per step of the execution order (the input first): the layer run and the bytes of the tensors live
    while it runs: its inputs, its output, and every earlier tensor a later layer still reads.

    The lifetimes are the graph's (``LayerGraph.released``) and the folding and overwriting its inference
    plan's (``LayerGraph.inference``): the executor frees and runs by both, so the predicted peak is the one a
    run holds; the summary's peak and the report's timeline both read this.
    """
    plan = _plan(graph, facts)
    out_bytes = {name: f.out_bytes for name, f in facts.items()}
    live = out_bytes[INPUT]
    steps = [(INPUT, live)]
    for node in graph.order[1:]:
        live += plan.new_bytes(node.name, out_bytes)
        steps.append((node.name, live))
        for name in graph.released[node.name]:
            live -= plan.freed_bytes(name, out_bytes)
    return steps


def alive_at(graph: LayerGraph, step: str, facts: dict[str, LayerFacts]) -> list[str]:
    """The tensors live while layer ``step`` runs (the ones ``live_memory`` counts there), in the order they
    were made: a batchnorm folded into the layer before it is made by that layer, and a layer that writes
    over its input takes that input's place."""
    plan = _plan(graph, facts)
    out_bytes = {name: f.out_bytes for name, f in facts.items()}
    alive = {INPUT: None}
    for node in graph.order[1:]:
        if node.name in plan.in_place:
            del alive[plan.in_place[node.name]]
            alive[node.name] = None
        elif node.name not in plan.folded:
            alive[plan.folds.get(node.name, node.name)] = None
        if node.name == step:
            break
        for name in graph.released[node.name]:
            if plan.freed_bytes(name, out_bytes):
                del alive[name]
    return list(alive)


def _peak_activations(graph: LayerGraph, facts: dict[str, LayerFacts]) -> tuple[int, str]:
    """Largest sum of live tensors while running the layers in order for inference, and the layer running
    then (the first step that reaches it; a layer with a batchnorm folded into it makes that batchnorm's
    tensor)."""
    peak_at, peak = INPUT, -1
    for name, live in live_memory(graph, facts):
        if live > peak:
            peak, peak_at = live, name
    return peak, peak_at


def peak_inference_at(analysis: Analysis, batch: int, dtype: str) -> int:
    """Peak inference memory at another batch and element type, exactly as ``propagate`` at those gives it.

    Every tensor holds batch x values x width bytes and every parameter width bytes, so the live sum at
    each step scales by the same factor and the peak stays at the same layer: both parts scale exactly."""
    t, width = analysis.totals, DTYPES[analysis.dtype]
    values = t.peak_activation_bytes // (analysis.batch * width)  # live values at the peak, per sample
    return t.param_bytes // width * DTYPES[dtype] + values * batch * DTYPES[dtype]


def _final_field(graph: LayerGraph, facts: dict[str, LayerFacts]) -> tuple[str, RF] | None:
    """The receptive field of the last feature map before the field becomes the whole input."""
    for node in reversed(graph.order):
        f = facts[node.name]
        if node.name in graph.used and not f.rf.is_global and len(f.shape) > 1 and node.name != INPUT:
            return node.name, f.rf
    return None


def param_shapes(analysis: Analysis) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Every array a network needs, a static fact of its layers: state_dict name -> (shape, trainable)."""
    out = {}
    for node in analysis.graph.order[1:]:
        ins = analysis.layers[node.name].in_shapes
        for suffix, shape in node.layer.weight_shapes(ins).items():
            out[f"{node.name}.{suffix}"] = (tuple(shape), True)
        for suffix, shape in node.layer.buffer_shapes(ins).items():
            out[f"{node.name}.{suffix}"] = (tuple(shape), False)
    return out
