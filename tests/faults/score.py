"""Score archcheck's lint against the labelled-fault corpus in this directory.

The corpus (README.md here): every ``<id>.yaml`` is a faulty design translated from a published program,
its label in ``metadata``; ``<id>.fixed.yaml`` is its fixed twin; ``inexpressible.yaml`` lists labelled
faults the spec language cannot express yet (they count in no figure).

One lint run covers the corpus: ``python -m archcheck lint --format json --no-config --no-custom-rules``
over every faulty spec and every twin, so the figures are those of the default rules and options.

Matching. A finding *matches* a labelled fault F of spec S when

1. it was reported on S, with severity warning or error (info findings count nowhere);
2. its layer is one of F's ``layers``, or lies inside one of them (``name.<anything>``: a layer made
   by the block instance ``name``); a finding on the network input is on the layer ``input``;
3. its code is one of F's ``rule`` codes, or its rule slug equals F's ``kind`` -- so a rule added later
   under the kind's name matches before anyone edits the label.

F is *found* when at least one finding matches it.

Figures.

- recall: found faults / labelled faults, over the expressible corpus; each entry of a spec's ``faults``
  is one fault. Also per kind, per origin (published programs vs the benchmarks' synthesized ones) and
  for the specs that also contain a shape error.
- precision: matching findings / all findings on the faulty specs, leaving out the *expected shape
  errors* -- AC003 at the layer a spec names as ``shape_error`` that matches no label: the program's
  deliberate error, which the label is not about. Every other finding (generic advice included)
  counts against precision.
- twins: every finding left on a fixed twin. The target is none.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COUNTED = ("warning", "error")
SHAPE_ERROR = "AC003"

# The fault kinds, named like rules (after the problem). Grouped as in issue 9: the output against the
# task, the faults that come with a shape error, and design faults inside the network.
VOCABULARY = {
    # the output against the task
    "softmax-single-unit": "softmax over a single unit: it always outputs 1 (a binary output wants a sigmoid)",
    "sigmoid-multiclass": "sigmoid (or one unit) over mutually exclusive classes that want a softmax over K units",
    "softmax-multilabel": "softmax over labels that are not mutually exclusive (multi-label wants sigmoids)",
    "head-width-vs-classes": "the last layer's width differs from the number of classes",
    "output-activation-vs-task": "an output activation whose range cannot reach the targets (relu on class "
                                 "scores or a mask, sigmoid or relu on an unbounded regression)",
    "missing-output-activation": "raw scores fed to a loss that expects probabilities (no softmax or sigmoid)",
    "double-activation": "two activations back to back (a second softmax on probabilities)",
    "softmax-before-logits-loss": "a softmax output fed to a loss that applies the softmax itself (softmax twice)",
    "dropout-after-output": "dropout after the output activation",
    "norm-at-output": "normalisation at the output",
    # faults that show as a shape error
    "missing-flatten": "a dense layer on a feature map: the flatten is missing",
    "map-too-small": "the feature map shrinks below a window: too much downsampling for the input",
    "input-layout": "the input's axes in the wrong order (channels-last, a transposed signal, a typo)",
    # design faults inside the network
    "channels-not-growing": "filter counts that shrink or stay flat while the map is downsampled",
    "kernel-shrinking-with-depth": "convolution windows that shrink with depth",
    "dense-widths-growing": "fully connected widths that grow towards the output",
    "first-conv-too-many-filters": "far more filters in the first convolution than the input can feed",
    "dropout-before-batchnorm": "dropout right before a batch normalisation",
    "dropout-before-pooling": "dropout between a convolution and its pooling",
    "high-dropout": "a dropout rate far above 0.5",
    "missing-activation": "two linear layers with no activation between them",
    "saturating-hidden-activation": "sigmoid or tanh in hidden layers",
    "unused-layer": "a layer computed but never read on the way to the output",
    "pool-too-early": "pooling before two convolutions",
    "pool-near-output": "pooling right before the classifier",
    "pool-after-every-conv": "pooling after every convolution of a deep network",
    "heterogeneous-conv-blocks": "convolution blocks whose layers differ in window and width",
    "too-many-dense": "a long stack of dense layers in the head",
}


@dataclass(frozen=True)
class Fault:
    kind: str
    layers: tuple[str, ...]
    rules: tuple[str, ...]  # archcheck codes that should report it today; empty: a gap


@dataclass(frozen=True)
class Entry:
    id: str
    path: Path
    twin: Path
    source: str
    origin: str
    task: dict
    faults: tuple[Fault, ...]
    shape_error: str | None


def _rules(value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_corpus(directory: Path = HERE) -> list[Entry]:
    """Every faulty spec in ``directory`` with its label and its twin's path."""
    entries = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name.endswith(".fixed.yaml") or path.name == "inexpressible.yaml":
            continue
        meta = yaml.safe_load(path.read_text(encoding="utf-8")).get("metadata") or {}
        faults = tuple(Fault(f["kind"], tuple(f["layers"]), _rules(f.get("rule"))) for f in meta.get("faults", ()))
        entries.append(Entry(path.stem, path, path.with_name(f"{path.stem}.fixed.yaml"), meta.get("source", ""),
                             meta.get("origin", ""), meta.get("task") or {}, faults, meta.get("shape_error")))
    return entries


def load_inexpressible(directory: Path = HERE) -> list[dict]:
    return yaml.safe_load((directory / "inexpressible.yaml").read_text(encoding="utf-8")) or []


def run_lint(paths: list[Path]) -> dict[Path, list[dict]]:
    """One lint run over ``paths``: the findings of each file, by resolved path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "archcheck", "lint", "--format", "json", "--no-config", "--no-custom-rules",
           *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"lint exited {done.returncode}: {done.stderr.strip()}")
    by_file: dict[Path, list[dict]] = {Path(p).resolve(): [] for p in paths}
    for finding in json.loads(done.stdout)["findings"]:
        by_file.setdefault(Path(finding["file"]).resolve(), []).append(finding)
    return by_file


def on_layers(finding: dict, layers: tuple[str, ...]) -> bool:
    layer = finding.get("layer") or ""
    return any(layer == name or layer.startswith(f"{name}.") for name in layers)


def matches(finding: dict, fault: Fault) -> bool:
    """The matching rule of the module docstring (severity is checked by the caller)."""
    return on_layers(finding, fault.layers) and (finding["code"] in fault.rules or finding["rule"] == fault.kind)


@dataclass
class Score:
    found: dict = field(default_factory=dict)  # (entry id, fault index) -> bool
    matched: int = 0  # findings on faulty specs that match a label
    unmatched: list = field(default_factory=list)  # (entry id, finding): findings on faulty specs that match none
    expected_shape_errors: list = field(default_factory=list)  # (entry id, finding)
    twins: list = field(default_factory=list)  # (entry id, finding): findings left on fixed twins
    info: int = 0

    @property
    def recall(self) -> float:
        return sum(self.found.values()) / len(self.found) if self.found else 0.0

    @property
    def precision(self) -> float:
        counted = self.matched + len(self.unmatched)
        return self.matched / counted if counted else 1.0


def score(entries: list[Entry], findings: dict[Path, list[dict]]) -> Score:
    result = Score()
    for entry in entries:
        got = findings.get(entry.path.resolve(), [])
        for i, fault in enumerate(entry.faults):
            result.found[entry.id, i] = any(f["severity"] in COUNTED and matches(f, fault) for f in got)
        for f in got:
            if f["severity"] not in COUNTED:
                result.info += 1
            elif any(matches(f, fault) for fault in entry.faults):
                result.matched += 1
            elif f["code"] == SHAPE_ERROR and entry.shape_error and on_layers(f, (entry.shape_error,)):
                result.expected_shape_errors.append((entry.id, f))
            else:
                result.unmatched.append((entry.id, f))
        for f in findings.get(entry.twin.resolve(), []):
            if f["severity"] in COUNTED:
                result.twins.append((entry.id, f))
            else:
                result.info += 1
    return result


def measure(directory: Path = HERE) -> tuple[list[Entry], Score]:
    """Load the corpus, lint it once, score it."""
    entries = load_corpus(directory)
    paths = [p for e in entries for p in (e.path, e.twin)]
    return entries, score(entries, run_lint(paths))


def sketches_that_load(inexpressible: list[dict]) -> list[str]:
    """Ids of inexpressible entries whose sketch is now a valid spec (the language grew: move them in)."""
    from archcheck.errors import SpecError
    from archcheck.spec import load_spec

    loaded = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in inexpressible:
            if not item.get("sketch"):
                continue
            path = Path(tmp, f"{item['id']}.yaml")
            path.write_text(item["sketch"], encoding="utf-8")
            try:
                load_spec(path)
            except SpecError:
                continue
            loaded.append(item["id"])
    return loaded


def _layers(names: list[str]) -> str:
    """Layer names, a long run shortened to its first three and a count."""
    return ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])} and {len(names) - 3} more"


def _pct(num: int, den: int) -> str:
    return f"{num}/{den} ({100 * num / den:.0f}%)" if den else "0/0"


def report(entries: list[Entry], result: Score, inexpressible: list[dict], every: bool = False) -> str:
    """The text ``python -m tests.faults`` prints; ``every`` lists the twins' findings one a line."""
    faults = {(e.id, i): (e, f) for e in entries for i, f in enumerate(e.faults)}
    lines = [f"labelled-fault corpus: {len(entries)} faulty designs with {len(faults)} labelled faults "
             f"(+{len(inexpressible)} not expressible yet); {len(entries)} fixed twins", ""]
    found = sum(result.found.values())
    lines.append(f"recall     {_pct(found, len(faults))}")
    counted = result.matched + len(result.unmatched)
    lines.append(f"precision  {_pct(result.matched, counted)} of the warnings and errors on the faulty specs "
                 f"match a label ({len(result.expected_shape_errors)} expected shape errors apart, "
                 f"{result.info} info findings not counted)")
    lines.append(f"twins      {len(result.twins)} findings left on {len({i for i, _ in result.twins})} of "
                 f"{len(entries)} fixed twins (target: none)")

    def group(title, key):
        tally = defaultdict(lambda: [0, 0])
        for k, (entry, fault) in faults.items():
            cell = tally[key(entry, fault)]
            cell[0] += result.found[k]
            cell[1] += 1
        lines.extend(["", title])
        width = max(map(len, tally), default=0)
        for name, (hit, total) in sorted(tally.items()):
            lines.append(f"  {name:<{width}}  {_pct(hit, total)}")

    rules = defaultdict(set)
    for _, fault in faults.values():
        rules[fault.kind].update(fault.rules or ("-",))
    group("recall by kind (rule that should find it; '-': no rule yet)",
          lambda e, f: f"{f.kind} [{', '.join(sorted(rules[f.kind]))}]")
    group("recall by origin", lambda e, f: e.origin)
    group("recall in specs with and without a shape error",
          lambda e, f: "with a shape error" if e.shape_error else "without")

    missed = [(e.id, f) for k, (e, f) in faults.items() if not result.found[k]]
    lines.extend(["", f"missed ({len(missed)})"])
    lines.extend(f"  {eid}: {f.kind} at {', '.join(f.layers)}" for eid, f in missed)

    by_code = Counter(f["code"] + " " + f["rule"] for _, f in result.unmatched)
    lines.extend(["", f"findings on faulty specs that match no label ({len(result.unmatched)}), by rule"])
    lines.extend(f"  {n:4d}  {code}" for code, n in by_code.most_common())

    lines.extend(["", f"findings left on fixed twins ({len(result.twins)}), every one: twin, then rule and layers"])
    per_twin = defaultdict(lambda: defaultdict(list))
    for eid, f in result.twins:
        per_twin[eid][f"{f['code']} {f['rule']}"].append(f.get("layer") or "-")
    for eid, by_rule in sorted(per_twin.items()):
        total = sum(map(len, by_rule.values()))
        if every:
            lines.extend(f"  {eid}.fixed: {rule} at {name}" for rule, names in by_rule.items() for name in names)
        else:
            lines.append(f"  {eid}.fixed ({total}): " + "; ".join(f"{rule} at {_layers(names)}"
                                                             for rule, names in by_rule.items()))

    gaps = sorted({f.kind for _, f in faults.values() if not f.rules})
    lines.extend(["", f"kinds with labels no rule covers today ({len(gaps)}): {', '.join(gaps)}"])

    lines.extend(["", f"not expressible yet ({len(inexpressible)}), by what the language lacks"])
    lacking = defaultdict(Counter)
    for item in inexpressible:
        lacking[item["missing"]][item["kind"]] += 1
    for missing, kinds in sorted(lacking.items()):
        lines.append(f"  {missing} ({sum(kinds.values())}): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    now = sketches_that_load(inexpressible)
    if now:
        lines.append(f"  these sketches now load, move them into the corpus: {', '.join(now)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="list the fixed twins' findings one a line")
    args = parser.parse_args(argv)
    entries, result = measure()
    print(report(entries, result, load_inexpressible(), every=args.all))
    return 0
