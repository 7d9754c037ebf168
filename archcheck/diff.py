"""What changed between two versions of a network: ``compare(old, new, ...)``.

Layers are matched in two steps, so that a layer keeps its identity through edits around it:

1. **By name, for names written in the spec.** A layer named the same on both sides is the same layer,
   whatever else changed. Generated names (``conv_3``, ``basic_7.add_1.0.conv_1``: a type or block and a
   counter, a branch or repeat index) are not identities: inserting a layer renumbers every later one.
2. **By position, for the rest.** The two execution orders are aligned with difflib's ``SequenceMatcher``,
   each layer keyed by its name when step 1 matched it, else by one of two keys (``KEYS``): its type and
   output shape (its content, which survives renumbering: a block inserted), or its type and generated
   name (its place in the same structure, which survives a change everywhere: every stage widened). Both
   alignments are made; the one that lists fewer layers as changed, added or removed wins, the first on a
   tie. Within a stretch that does not align, layers of the same type pair up in order (a layer changed
   in place, e.g. widened); whatever is left was added or removed.

A matched layer is *changed* when its written name, type, arguments, output shape, parameters (trainable
and buffers), MACs, output memory or inputs differ; a generated name that changed is a renumbering, not a
change. A layer whose only change is its receptive field (every layer after a change of depth, kernel or
stride) has the status ``field``: renderers count those rather than list them. Inputs are compared through
the matching (a renamed input is the same input) and past added and removed layers (inserting a layer
after ``a`` does not rewire the layer that read ``a``); so a changed input is a real rewiring, such as a
skip connection taken from elsewhere.

Findings are matched by (code, layer), the old side's layer names read through the layer matching (a
finding on a renamed layer is the same finding), never by line number: lines move between versions.
Several findings with one key pair up by message first, then in order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from fractions import Fraction

from archcheck.findings import Finding
from archcheck.propagate import RF, Analysis, LayerFacts

# what can change about a matched layer, in the order reports list it
ASPECTS = ("name", "type", "arguments", "output_shape", "params", "macs", "output_bytes", "receptive_field", "inputs")


@dataclass(frozen=True)
class Change:
    """One figure on both sides; None on a side that lacks it (an added or removed layer, no receptive field)."""

    old: int | Fraction | None
    new: int | Fraction | None

    @property
    def delta(self) -> int | Fraction | None:
        if self.old is None and self.new is None:
            return None
        return (self.new or 0) - (self.old or 0)

    @property
    def relative(self) -> float | None:
        """The change as a fraction of the old value; None when there is none to divide by."""
        return float(self.delta / self.old) if self.old else None


@dataclass(frozen=True)
class LayerDiff:
    status: str  # "changed", "added", "removed", or "field" (only the receptive field changed)
    old: LayerFacts | None
    new: LayerFacts | None
    matched_by: str | None  # "name" (a written name) or "position" (aligned); None for an added or removed one
    aspects: tuple[str, ...]  # of ASPECTS, what differs (a changed layer)
    params: Change  # trainable parameters and buffers
    macs: Change
    output_bytes: Change
    arguments: tuple[tuple[str, object, object], ...]  # (name, old, new) of the arguments that differ
    inputs: tuple[tuple[str, ...], tuple[str, ...]] | None  # (old, new) input names when they were rewired


@dataclass(frozen=True)
class FieldDiff:
    """The final receptive field (the last feature map's) on both sides: (layer, RF) or None."""

    old: tuple[str, RF] | None
    new: tuple[str, RF] | None
    r: tuple[Change, ...] | None  # the size per spatial axis, when both sides have one to compare


@dataclass(frozen=True)
class FindingsDiff:
    added: list[Finding]  # in the new side's order
    removed: list[Finding]  # in the old side's order
    unchanged: int


@dataclass(frozen=True)
class Diff:
    old: Analysis
    new: Analysis
    old_name: str  # the sources' names: path, REV:PATH or <stdin>
    new_name: str
    layers: list[LayerDiff]  # in the new side's order, a removed layer where it was
    unchanged: int  # matched layers with nothing changed (not in ``layers``)
    totals: dict[str, Change]  # TOTALS
    receptive_field: FieldDiff
    findings: FindingsDiff | None  # None: not linted

    def count(self, status: str) -> int:
        return sum(1 for layer in self.layers if layer.status == status)

    def grown(self, figures) -> list[str]:
        """Which of ``figures`` (keys of ``GROWTH``) grew from old to new."""
        def grew(figure: str) -> bool:
            if figure == "findings":
                return self.findings is not None and bool(self.findings.added)
            return self.totals[GROWTH[figure]].delta > 0

        return [f for f in figures if grew(f)]

    @property
    def identical(self) -> bool:
        """No layer, total or finding changed."""
        return (not self.layers and not any(c.delta for c in self.totals.values())
                and (self.findings is None or not (self.findings.added or self.findings.removed)))


TOTALS = ("params", "macs", "flops", "peak_inference_bytes", "training_bytes")
# what --fail-on-increase can name: a total, or "findings" (a finding added)
GROWTH = {"params": "params", "macs": "macs", "flops": "flops", "memory": "peak_inference_bytes",
          "training-memory": "training_bytes", "findings": None}


def _totals(a: Analysis) -> dict[str, int]:
    t = a.totals
    return {"params": t.params, "macs": t.macs, "flops": t.flops, "peak_inference_bytes": t.peak_inference_bytes,
            "training_bytes": t.training_bytes[a.optimizer]}


_GENERATED = re.compile(r"[A-Za-z][\w-]*_[0-9]+|[0-9]+")  # one part of a generated name: conv_3, basic_7, 0


def generated(name: str) -> bool:
    """Whether a layer's name was made by archcheck (every dotted part a counter or an index), not written."""
    return all(_GENERATED.fullmatch(part) for part in name.split("."))


KEYS = {  # what lines up the layers that no written name matches, in the two alignments compare() tries
    "content": lambda f: (f.node.type, f.shape),
    "place": lambda f: (f.node.type, f.name),
}

Pair = tuple[LayerFacts | None, LayerFacts | None, str | None]


def match_layers(old: Analysis, new: Analysis, by=KEYS["content"]) -> list[Pair]:
    """(old, new, matched_by) for every layer of either side, in the new side's order with each removed
    layer where it was; matched_by is "name", "position" or None (added: no old; removed: no new). ``by``
    keys the layers that no written name matches."""
    olds, news = list(old.layers.values()), list(new.layers.values())
    named = {name for name in old.layers.keys() & new.layers.keys() if not generated(name)}

    def key(f: LayerFacts):
        return ("name", f.name) if f.name in named else ("at", *by(f))

    aligned = SequenceMatcher(None, [key(f) for f in olds], [key(f) for f in news], autojunk=False)
    out = []
    for tag, i1, i2, j1, j2 in aligned.get_opcodes():
        if tag == "equal":
            out += [(o, n, "name" if n.name in named else "position") for o, n in zip(olds[i1:i2], news[j1:j2])]
            continue
        # a layer matched by name sits here when layers moved: it is listed where it is now, once
        free_old = [f for f in olds[i1:i2] if f.name not in named]
        free_new = [f for f in news[j1:j2] if f.name not in named]
        by_type = SequenceMatcher(None, [f.node.type for f in free_old], [f.node.type for f in free_new],
                                  autojunk=False)
        paired = {}
        for block in by_type.get_matching_blocks():
            for k in range(block.size):
                paired[free_new[block.b + k].name] = free_old[block.a + k]
        taken = {f.name for f in paired.values()}
        out += [(f, None, None) for f in free_old if f.name not in taken]
        for f in news[j1:j2]:
            if f.name in named:
                out.append((old.layers[f.name], f, "name"))
            elif f.name in paired:
                out.append((paired[f.name], f, "position"))
            else:
                out.append((None, f, None))
    return out


def _through(name: str, analysis: Analysis, unmatched: set[str]) -> str | None:
    """The first matched layer at or above ``name``, following the first input of unmatched layers."""
    while name in unmatched:
        inputs = analysis.layers[name].node.inputs
        if not inputs:
            return None
        name = inputs[0]
    return name


def _arguments(o: LayerFacts, n: LayerFacts) -> tuple[tuple[str, object, object], ...]:
    if o.node.type != n.node.type:
        return ()  # different layers: their arguments do not compare
    a, b = o.node.layer.args(), n.node.layer.args()
    return tuple((k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k))


def _rf_key(rf: RF):
    return (rf.axes, rf.note)


def compare(old: Analysis, new: Analysis, old_name: str, new_name: str, old_findings: list[Finding] | None = None,
            new_findings: list[Finding] | None = None) -> Diff:
    """The differences between two analyses (and their findings, when both are given)."""
    tried = [_layer_rows(old, new, match_layers(old, new, by)) for by in KEYS.values()]
    rows, unchanged, renamed = min(tried, key=lambda t: sum(1 for r in t[0] if r.status != "field"))
    old_totals, new_totals = _totals(old), _totals(new)
    totals = {k: Change(old_totals[k], new_totals[k]) for k in TOTALS}
    findings = None
    if old_findings is not None and new_findings is not None:
        findings = compare_findings(old_findings, new_findings, renamed)
    return Diff(old, new, old_name, new_name, rows, unchanged, totals, _field(old, new), findings)


def _layer_rows(old: Analysis, new: Analysis, pairs: list[Pair]) -> tuple[list[LayerDiff], int, dict[str, str]]:
    """The rows of the layers that changed, the count of those that did not, and old name -> new name."""
    renamed = {o.name: n.name for o, n, _ in pairs if o and n}
    old_unmatched = {o.name for o, n, _ in pairs if n is None}
    new_unmatched = {n.name for o, n, _ in pairs if o is None}
    rows, unchanged = [], 0
    for o, n, by in pairs:
        params = Change(o.params + o.buffers if o else None, n.params + n.buffers if n else None)
        macs = Change(o.macs if o else None, n.macs if n else None)
        memory = Change(o.out_bytes if o else None, n.out_bytes if n else None)
        if o is None or n is None:
            rows.append(LayerDiff("added" if o is None else "removed", o, n, None, (), params, macs, memory, (), None))
            continue
        arguments = _arguments(o, n)
        sources_old = [renamed.get(s) for s in (_through(s, old, old_unmatched) for s in o.node.inputs)]
        sources_new = [_through(s, new, new_unmatched) for s in n.node.inputs]
        rewired = sources_old != sources_new
        differs = {
            "name": o.name != n.name and not (generated(o.name) and generated(n.name)),
            "type": o.node.type != n.node.type, "arguments": bool(arguments),
            "output_shape": o.shape != n.shape, "params": params.delta != 0, "macs": macs.delta != 0,
            "output_bytes": memory.delta != 0, "receptive_field": _rf_key(o.rf) != _rf_key(n.rf), "inputs": rewired,
        }
        aspects = tuple(a for a in ASPECTS if differs[a])
        if not aspects:
            unchanged += 1
            continue
        inputs = (tuple(o.node.inputs), tuple(n.node.inputs)) if rewired else None
        status = "field" if aspects == ("receptive_field",) else "changed"
        rows.append(LayerDiff(status, o, n, by, aspects, params, macs, memory, arguments, inputs))
    return rows, unchanged, renamed


def _field(old: Analysis, new: Analysis) -> FieldDiff:
    a, b = old.totals.receptive_field, new.totals.receptive_field
    r = None
    if a and b and len(a[1].axes) == len(b[1].axes):
        r = tuple(Change(x.r, y.r) for x, y in zip(a[1].axes, b[1].axes))
    return FieldDiff(a, b, r)


def compare_findings(old: list[Finding], new: list[Finding], renamed: dict[str, str] | None = None) -> FindingsDiff:
    """Findings added and removed, matched by (code, layer) with old layer names read through ``renamed``."""
    renamed = renamed or {}
    waiting: dict[tuple, list[Finding]] = defaultdict(list)
    for f in old:
        waiting[(f.code, renamed.get(f.layer, f.layer))].append(f)
    added, unchanged = [], 0
    for f in new:
        candidates = waiting.get((f.code, f.layer))
        if not candidates:
            added.append(f)
            continue
        same = next((c for c in candidates if c.message == f.message), candidates[0])
        candidates.remove(same)
        unchanged += 1
    left = {id(f) for group in waiting.values() for f in group}
    return FindingsDiff(added, [f for f in old if id(f) in left], unchanged)
