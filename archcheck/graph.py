"""The layer graph: nodes in a topological order, with their producers and consumers.

Sequential specs give a chain; ``inputs`` and merge branches make a DAG. The graph is
kept as plain adjacency (what propagation and the executor walk); ``to_networkx()``
gives a ``networkx.DiGraph`` for analyses that want graph algorithms, imported only
then, so ``summary`` does not pay networkx's start-up cost.

The graph's own queries live here, so every module asks them one way: ``upstream`` (what
some layers depend on), ``after`` / ``before`` (the nearest layers downstream / upstream,
walking through those a predicate passes) and ``released`` (tensor lifetimes, which both the
propagator's peak memory and the executor's freeing read).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

from archcheck.errors import Collector, SpecError
from archcheck.spec import INPUT, Node, Spec


@dataclass(frozen=True)
class InferencePlan:
    """How an inference pass runs the graph (``LayerGraph.inference``)."""

    folds: dict[str, str]  # layer -> the batchnorm folded into it
    in_place: dict[str, str]  # layer -> the input it writes its output over
    kernels: dict[str, str] = field(default_factory=dict)  # layer -> the faster algorithm it runs
    halved: dict[str, str] = field(default_factory=dict)  # activation -> the layer that makes its input halved

    def new_bytes(self, name: str, out_bytes: dict[str, int]) -> int:
        """Bytes the layer ``name`` allocates for its output when it runs."""
        if name in self.in_place or name in self.folded:
            return 0
        return out_bytes[self.folds.get(name, name)]

    def freed_bytes(self, name: str, out_bytes: dict[str, int]) -> int:
        """Bytes given back when the tensor ``name`` dies: none for a layer's output folded away (never made)
        or written over (its buffer lives on as the output of the layer that overwrote it)."""
        return 0 if name in self.folds or name in self.overwritten else out_bytes[name]

    @cached_property
    def folded(self) -> frozenset[str]:
        """The batchnorms folded into the layer before them."""
        return frozenset(self.folds.values())

    @cached_property
    def overwritten(self) -> frozenset[str]:
        """The tensors a layer writes its output over."""
        return frozenset(self.in_place.values())

    @cached_property
    def made_halved(self) -> frozenset[str]:
        """The tensors made at half their values, for the activation that reads them (``halved``)."""
        return frozenset(self.in_place[activation] for activation in self.halved)


NO_PLAN = InferencePlan({}, {})  # every layer as written


@dataclass
class LayerGraph:
    spec: Spec
    order: list[Node]  # topological; definition order where the graph allows
    outputs: list[str] | None = None  # the spec's outputs (fewer in a part, see ``part``)
    nodes: dict[str, Node] = field(init=False)
    consumers: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        if self.outputs is None:
            self.outputs = self.spec.outputs
        self.nodes = {n.name: n for n in self.order}
        self.consumers = _consumers(self.order)  # in execution order, the order the walks below take them in

    def part(self, names: set[str]) -> LayerGraph:
        """The graph of the nodes ``names`` (the input and whatever follows from it), with the outputs among
        them; ``used`` keeps its meaning in the whole graph: a node upstream of a left-out output is used."""
        part = LayerGraph(self.spec, [n for n in self.order if n.name in names],
                          [o for o in self.outputs if o in names])
        part.used = self.used & names
        return part

    def with_nodes(self, nodes: dict[str, Node]) -> LayerGraph:
        """The same graph with the nodes in ``nodes`` (by name) replaced: the layers made once their
        arguments could read a shape (``archcheck.spec.bind``)."""
        spec = replace(self.spec, nodes=[nodes.get(n.name, n) for n in self.spec.nodes])
        return LayerGraph(spec, [nodes.get(n.name, n) for n in self.order], self.outputs)

    @cached_property
    def used(self) -> set[str]:
        """Names of the nodes whose output reaches an output."""
        return self.upstream(self.outputs)

    def upstream(self, names: Iterable[str]) -> set[str]:
        """``names`` and the names of every node their outputs depend on."""
        seen, stack = set(), list(names)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.nodes[name].inputs)
        return seen

    def after(self, node: Node, through: Callable[[Node], bool]) -> Iterator[Node]:
        """The first layers downstream of ``node`` that ``through`` does not pass, each once."""
        seen, stack = set(), list(self.consumers[node.name])
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            nxt = self.nodes[name]
            if through(nxt):
                stack.extend(self.consumers[name])
            else:
                yield nxt

    def before(self, node: Node, through: Callable[[Node], bool]) -> Iterator[Node]:
        """The nearest layers upstream of ``node`` that ``through`` does not pass, each once; the
        input ends every walk."""
        seen, stack = set(), list(node.inputs)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            prev = self.nodes[name]
            if through(prev) and prev.name != INPUT:
                stack.extend(prev.inputs)
            else:
                yield prev

    @cached_property
    def released(self) -> dict[str, tuple[str, ...]]:
        """Per node, in execution order: the tensors no longer needed once it has run.

        A tensor lives from the layer that makes it until its last reader has run; one nobody
        reads (a dangling branch) goes as soon as it is made; the network's outputs stay, and so does
        its input (the caller's batch, which the caller holds). A layer's inputs and its output are live
        together, unless the inference plan (``inference``) has the layer write over an input. The input's
        entry is empty: every layer reads something, so some layer reads the input. The propagator's
        peak memory and the executor's freeing both read this, so the prediction is what runs.
        """
        last = {}
        for node in self.order:
            for src in node.inputs:
                last[src] = node.name
        released: dict[str, tuple[str, ...]] = dict.fromkeys(self.nodes, ())
        kept = {*self.outputs, INPUT}
        for name in self.nodes:
            if name not in kept:
                released[last.get(name, name)] += (name,)
        return released

    def inference(self, shapes: dict[str, tuple], batch: int | None = None, dtype: str = "float32") -> InferencePlan:
        """What an inference pass (no training, no gradients) does differently from the layers as written,
        given every node's output shape: the executor runs this plan, and the propagator's peak memory
        counts it (``archcheck.propagate``), so the prediction stays what runs.

        - A batchnorm with running statistics whose only input is a layer that can take a per-channel
          scale and shift into its weights (``folds_affine``: conv, dense), read by it alone and not an
          output, is folded into that layer: the pair runs as one layer and the layer's own output is never
          made. The folded output is made where the layer stands in the order.
        - A layer that can write its output over its first input (``overwrites``: element-wise activations,
          an inference batchnorm, add, multiply) does so when that input dies there (``released``), has the
          output's shape, is read once by it, and is neither the network's input (the caller's array) nor
          made by a layer that passes values on (which may hand on a view of a tensor still in use).
        - An activation whose function begins by halving its input (``reads_half``: swish, sigmoid), writing over
          that input, reads it made halved by the layer that makes it (a batchnorm folded into it: that layer), one
          that takes a scale into its weights (``folds_affine``) and whose output the activation alone reads:
          the halving is folded into its weights (exact, a power of two), and the activation's pass that halved
          is never made.
        - Given a ``batch``, a layer with a faster algorithm for its shapes, that batch and ``dtype``
          (``inference_kernel``) runs it. Without one, the plan has no kernels: what is alive, all the static
          path's memory figures read, does not depend on them.
        """
        folds = {}
        for node in self.order[1:]:
            layer = node.layer
            if not (layer.normalises and layer.running_statistics and layer.linear and len(node.inputs) == 1):
                continue
            src = self.nodes[node.inputs[0]]
            if (src.name != INPUT and src.layer.folds_affine and self.consumers[src.name] == [node.name]
                    and src.name not in self.outputs):
                folds[src.name] = node.name
        in_place = {}
        for node in self.order[1:]:
            if not node.layer.overwrites or node.name in folds.values():
                continue
            src = node.inputs[0]
            if (src != INPUT and not self.nodes[src].layer.passes and src in self.released[node.name]
                    and node.inputs.count(src) == 1 and tuple(shapes[src]) == tuple(shapes[node.name])):
                in_place[node.name] = src
        folded_into = {bn: layer for layer, bn in folds.items()}
        halved = {}
        for name, src in in_place.items():
            maker = folded_into.get(src, src)
            if (self.nodes[name].layer.reads_half and self.nodes[maker].layer.folds_affine
                    and self.consumers[src] == [name] and src not in self.outputs):
                halved[name] = maker
        kernels = {} if batch is None else {
            node.name: kernel for node in self.order[1:]
            if (kernel := node.layer.inference_kernel([shapes[src] for src in node.inputs], batch, dtype))}
        return InferencePlan(folds, in_place, kernels, halved)

    def unused(self) -> list[Node]:
        """Layers whose output reaches no output of the network (dangling side branches)."""
        return [n for n in self.order if n.name not in self.used]

    def to_networkx(self):
        """A networkx DiGraph with an edge per connection; node attribute ``node`` is the Node."""
        import networkx as nx

        g = nx.DiGraph()
        for n in self.order:
            g.add_node(n.name, node=n)
            for src in n.inputs:
                g.add_edge(src, n.name)
        return g


def build_graph(spec: Spec) -> LayerGraph:
    """Order the spec's nodes topologically; report cycles with the names on them."""
    index = {n.name: i for i, n in enumerate(spec.nodes)}
    by_name = {n.name: n for n in spec.nodes}
    waiting = {n.name: len(n.inputs) for n in spec.nodes}
    consumers = _consumers(spec.nodes)  # in definition order: the sort only counts them
    ready = [index[n] for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = spec.nodes[heapq.heappop(ready)]
        order.append(node)
        for c in consumers[node.name]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, index[c])
    if len(order) < len(spec.nodes):
        col = Collector()
        stuck = {name for name, k in waiting.items() if k > 0}
        # walk inputs among the stuck nodes until one repeats: that is a cycle
        start = min(stuck, key=index.__getitem__)
        path, seen = [start], {start: 0}
        while True:
            nxt = next(s for s in by_name[path[-1]].inputs if s in stuck)
            if nxt in seen:
                cycle = path[seen[nxt]:] + [nxt]
                break
            seen[nxt] = len(path)
            path.append(nxt)
        first = by_name[cycle[0]]
        col.add("invalid-spec", "layers form a cycle: " + " <- ".join(cycle), first.loc, first.name,
                "a layer's `inputs` must name layers that do not depend on it; break the loop")
        raise SpecError(col.problems)
    assert order[0].name == INPUT
    return LayerGraph(spec, order)


def _consumers(nodes: list[Node]) -> dict[str, list[str]]:
    """Per node, the nodes that read its output, in the order given (once per reference)."""
    out: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for src in n.inputs:
            out[src].append(n.name)
    return out
