"""Graph queries several rules share: what a node is, walks that skip the layers in between,
and per-node counts along the longest path.

Everything reads the ``Analysis`` (the graph, each layer's arguments and kinds, and the
propagated shapes); nothing here parses YAML, recomputes a shape or compares type names:
what a layer is comes from the kinds its type declares (``archcheck.layers.base.KINDS``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from archcheck.lint.memo import memo
from archcheck.spec import INPUT, Output


def is_weight(node) -> bool:
    """Convolutions (incl. transposed, locally connected) and dense layers."""
    return node.layer.weighted


def is_conv(node) -> bool:
    """A layer with weights that slides a window: a convolution, transposed or locally connected."""
    return node.layer.weighted and node.layer.window


def depthwise(analysis, node) -> bool:
    """A convolution whose every output reads one input channel (groups equal to the channels)."""
    if not is_conv(node):
        return False
    facts = analysis.layers[node.name]
    return node.layer.weight_shapes(facts.in_shapes)["weight"][1] == 1 < facts.in_shapes[0][0]


def is_window_pool(node) -> bool:
    """A pooling that slides a window (max or average), as opposed to a global one."""
    return node.layer.window and not node.layer.weighted


def is_activation(node) -> bool:
    return node.layer.activation


def is_softmax(node) -> bool:
    """An activation that outputs a distribution over the channels."""
    return node.layer.activation and node.layer.probabilities


def outputs_probability(node) -> bool:
    """An activation whose every output lies in [0, 1] (softmax, sigmoid): a classifier's last layer."""
    if not node.layer.activation:
        return False
    low, high = node.layer.output_range
    return low >= 0 and high <= 1


def channels(analysis, node) -> int:
    return analysis.layers[node.name].shape[0]


def spatial(shape) -> tuple[int, ...]:
    """The spatial sizes of a feature map ``(C, *spatial)``; ``()`` for a vector."""
    return tuple(shape[1:])


def size(sizes) -> str:
    """(7, 7) -> '7x7'."""
    return "x".join(str(s) for s in sizes)


def wide(kernels) -> str:
    """A window's size as an adjective: (3, 3) -> '3x3', (5,) -> '5-wide'."""
    return f"{kernels[0]}-wide" if len(kernels) == 1 else size(kernels)


def per_axis(values) -> str:
    """A per-axis setting as written: (2, 2) -> '2', (1, 2, 2) -> '1x2x2'."""
    return str(values[0]) if len(set(values)) == 1 else size(values)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _memo(analysis) -> dict:
    """Facts every rule asks for, worked out once per analysis and run: kept in the memo the engine
    hangs on the analysis for its run (``archcheck.lint.memo``), so nothing here holds an analysis."""
    return memo(analysis)


def heaviest(analysis, figure: str):
    """The used layer with the most of a per-layer figure (``params``, ``macs``) and that amount: where a
    budget on the total is best spent first."""
    node = max(used(analysis), key=lambda n: getattr(analysis.layers[n.name], figure))
    return node, getattr(analysis.layers[node.name], figure)


def used(analysis) -> list:
    """The nodes whose output reaches an output, in topological order, without the input."""
    memo = _memo(analysis)
    if "used" not in memo:
        g = analysis.graph
        memo["used"] = [n for n in g.order if n.name in g.used and n.name != INPUT]
    return memo["used"]


def window(analysis, node):
    """The ``Geometry`` of a conv or window pool (kernel, stride, dilation, pads, in and out sizes per
    spatial axis), as the propagator worked it out; None for other layers."""
    return analysis.layers[node.name].geometry


def covers_map(analysis, node) -> bool:
    """A window over its whole input map: a 1x1 output from a larger map (VGG's fc6 written as a 7x7
    convolution over the 7x7 map). As a convolution, it is a dense layer."""
    g = window(analysis, node)
    return g is not None and all(o == 1 for o in g.out_sizes) and any(n > 1 for n in g.in_sizes)


def explicit_padding(analysis, node) -> tuple[tuple[int, int], ...]:
    """The zeros that ``zeropad`` layers add just before ``node`` (through layers that keep each position:
    activations, normalisations, dropout), ``(before, after)`` per spatial axis: a window layer's padding
    done one layer early, as Keras and TF-Slim write it."""
    rank = len(spatial(analysis.layers[node.name].in_shapes[0]))
    total = [(0, 0)] * rank
    prev = node
    while len(prev.inputs) == 1 and prev.inputs[0] != INPUT:
        prev = analysis.graph.nodes[prev.inputs[0]]
        facts = analysis.layers[prev.name]
        pads = prev.layer.zero_padding(facts.in_shapes[0])
        if pads is not None and len(pads) == rank:
            total = [(b + pb, a + pa) for (b, a), (pb, pa) in zip(total, pads)]
        elif not (prev.layer.pointwise and keeps_shape(analysis, prev)):
            break
    return tuple(total)


def downsamples(analysis, node) -> bool:
    """A convolution or window pooling with a stride above 1 on some axis (transposed convolutions
    upsample)."""
    if node.layer.upsamples:
        return False
    w = window(analysis, node)
    return w is not None and max(w.stride) > 1


@dataclass(frozen=True)
class Coverage:
    """How many taps of a sliding window land on each position of one stride period (away from the
    borders): 1 or 2 for a 3-wide window with stride 2; 1 or 0 for a 1-wide one."""

    low: int  # fewest taps on a position (0: some positions are never read)
    high: int
    counts: frozenset  # the distinct tap counts
    read: float  # the share of positions read at least once


def coverage(kernel: int, stride: int, dilation: int = 1) -> Coverage:
    """The window's coverage, in constant time whatever the kernel, stride or dilation.

    Tap ``j`` lands on position ``j * dilation mod stride``, which repeats every ``period`` taps and
    visits ``period`` distinct positions once per cycle: ``kernel = q * period + r`` taps put
    ``q + 1`` on ``r`` positions and ``q`` on the other ``period - r``."""
    period = stride // math.gcd(dilation, stride)
    q, r = divmod(kernel, period)
    per_position = Counter({q + 1: r, q: period - r})
    counts = {n for n, positions in per_position.items() if positions and n}
    read = min(kernel, period)
    counts |= {0} if read < stride else set()
    return Coverage(min(counts), max(counts), frozenset(counts), read / stride)


def upsamples(analysis, node) -> bool:
    """A layer that enlarges the map: one that computes new positions (upsample, transposed convolution) or
    one declared to upsample by moving values (pixel shuffle), not one that only pads or reshapes."""
    facts = analysis.layers[node.name]
    ins, out = spatial(facts.in_shapes[0]) if facts.in_shapes else (), spatial(facts.shape)
    return (len(ins) == len(out) > 0 and any(o > i for i, o in zip(ins, out))
            and (node.layer.upsamples or not node.layer.passes))


def collapses(analysis, node) -> bool:
    """A layer that turns a feature map into a vector (or a 1x1 map): global pooling, flatten, a
    reshape to a vector, or a window over the whole map (a pooling, or a convolution that is a dense
    layer written as one, as VGG's fully convolutional fc6). Its input is the map the classifier head
    receives. A map that is already 1x1 has nothing left to collapse."""
    facts = analysis.layers[node.name]
    before = spatial(facts.in_shapes[0]) if facts.in_shapes else ()
    if not any(s > 1 for s in before):
        return False
    if node.layer.global_pool or flattens(analysis, node):
        return True
    after = spatial(facts.shape)
    return node.layer.window and len(after) == len(before) and all(s == 1 for s in after)


def keeps_shape(analysis, node) -> bool:
    """The output has the shape of the (first) input."""
    facts = analysis.layers[node.name]
    return bool(facts.in_shapes) and facts.in_shapes[0] == facts.shape


def flattens(analysis, node) -> bool:
    """A layer that hands a feature map on as a vector, unchanged (flatten, a reshape to a vector)."""
    facts = analysis.layers[node.name]
    return node.layer.passes and len(facts.shape) == 1 and bool(facts.in_shapes) and len(facts.in_shapes[0]) > 1


def pools_whole_map(analysis, node) -> bool:
    """A layer that pools each channel's whole map to one value: global pooling, or a pooling whose one
    window covers the map (the old-style `avgpool: 7` on a 7x7 map, an adaptive pooling to 1)."""
    return node.layer.global_pool or is_window_pool(node) and collapses(analysis, node)


def pooling(analysis, node) -> bool:
    """A window pooling that downsamples and leaves a map (not one that pools the whole map to 1x1,
    which acts as global pooling)."""
    return is_window_pool(node) and downsamples(analysis, node) and not collapses(analysis, node)


def heads(analysis) -> list:
    """The used layers where a feature map becomes a vector (the first on each path: not a
    ``flatten`` after a global pooling), leaving out gates: a squeeze-and-excitation branch pools the
    map to weigh its channels, and is no classifier."""
    gated = gate_branch(analysis)
    return [n for n in used(analysis) if collapses(analysis, n) and n.name not in gated
            and not any(collapses(analysis, p) for p in before(analysis, n, passes) if p.name != INPUT)]


def gate_branch(analysis) -> set[str]:
    """The layers that only compute gates: every path from them ends as the broadcast input of a gate
    (a 1x1 or vector signal multiplying a larger map, as squeeze-and-excitation does)."""
    facts = _memo(analysis)
    if "gated" not in facts:
        g, layers = analysis.graph, analysis.layers

        def signal(src: str, gate: str) -> bool:
            out = layers[gate].shape
            return all(s == 1 for s in layers[src].shape[1:]) and any(s > 1 for s in out[1:])

        gated: set[str] = set()
        for node in reversed(g.order):
            consumers = g.consumers[node.name]
            if consumers and all(signal(node.name, c) if g.nodes[c].layer.gate else c in gated for c in consumers):
                gated.add(node.name)
        facts["gated"] = gated
    return facts["gated"]


def longest(analysis, step: Callable, reset: Callable | None = None) -> dict[str, int]:
    """Per node, the largest sum of ``step(node)`` over the layers on any path from the input (or
    from the last node where ``reset(node)`` holds, which restarts at 0) up to and including it."""
    order = analysis.graph.order
    out: dict[str, int] = {INPUT: 0}
    for node in order[1:]:
        if reset is not None and reset(node):
            out[node.name] = 0
        else:
            ins = node.inputs
            out[node.name] = (out[ins[0]] if len(ins) == 1 else max(out[i] for i in ins)) + step(node)
    return out


def longest_after(analysis, step: Callable) -> dict[str, int]:
    """Per node, the largest sum of ``step(node)`` over the layers on any path from it (excluded)
    to an output."""
    g = analysis.graph
    counts = {n.name: step(n) for n in g.order}
    out: dict[str, int] = {}
    for node in reversed(g.order):
        out[node.name] = max((out[c] + counts[c] for c in g.consumers[node.name]), default=0)
    return out


def after(analysis, node, through: Callable) -> Iterator:
    """The first layers downstream of ``node`` that ``through`` does not pass, each once."""
    return analysis.graph.after(node, through)


def before(analysis, node, through: Callable) -> Iterator:
    """The nearest layers upstream of ``node`` that ``through`` does not pass, each once."""
    return analysis.graph.before(node, through)


def passes(node) -> bool:
    """Hands values on unchanged (identity, dropout, flatten, reshape, zeropad, slice, the shuffles)."""
    return node.layer.passes


def final(analysis, output: str):
    """The layer that produces an output, looking through dropout and reshapes."""
    node = analysis.graph.nodes[output]
    return node if not passes(node) else next(before(analysis, node, passes), node)


def output_of(analysis, output: str) -> tuple[Output | None, bool]:
    """What an output is, and whether the spec says so: the spec's ``output`` when written, else what
    the layer producing it implies (softmax: probabilities; sigmoid: binary; another activation: values in
    its range; a layer with weights and declared ``classes``: logits), else None."""
    if analysis.spec.output is not None:
        return analysis.spec.output, True
    last = final(analysis, output)
    if is_softmax(last):
        return Output("probabilities"), False
    if outputs_probability(last):
        return Output("binary"), False
    if is_activation(last):
        return Output("regression", last.layer.output_range), False
    if is_weight(last) and analysis.spec.classes is not None:
        return Output("logits"), False
    return None, False
