"""Generated inputs for the fuzz harness: specs built from the layer catalogue with valid, boundary and
hostile values, mutations of the bundled samples, and hostile files. Every generator takes a
``random.Random``, so a case is reproduced from its seed, and hypothesis can drive the same code
(``st.randoms()``) in the test suite."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archcheck.layers import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))

GOOD_INTS = [1, 1, 2, 2, 3, 3, 4, 8, 16]
HOSTILE = [0, -1, -7, 10**12, 2**31 - 1, 2**63, 10**400, 1e300, 0.5, -0.0, float("inf"), float("nan"), True,
           False, None, "", "x", "same", "valid", "$x", "${1/0}", "${2**999}", "a" * 300, "\x1b]0;t\x07", "é🙂",
           [], [1], [2, 2], [0, 3], [1, 2, 3, 4, 5], {}, {"a": 1}, {1: 2}]
FIELD_VALUES = {  # plausible values per argument name; others draw from ints and HOSTILE
    "padding": [0, 1, 2, "same", "valid", [1, 0], [[0, 1], [1, 0]]], "mode": ["nearest", "linear", "cubic"],
    "over": ["channels", "all", "x"], "rate": [0.0, 0.1, 0.5, 0.99, 1.0], "eps": [1e-5, 1e-3],
    "momentum": [0.1, 0.9], "slope": [0.01, 0.2], "alpha": [1.0, 0.5], "axis": [0, 1, -1, 3],
    "shape": [[-1], [2, -1], [1, 1, -1], [4, 4]], "scale": [1, 2, 3, [2, 1]], "groups": [1, 2, 4],
    "output_padding": [0, 1, 2], "ceil_mode": [True, False], "count_include_pad": [True, False],
    "bias": [True, False], "affine": [True, False], "keepdims": [True, False],
    "size": [1, 2, 3, 7, [2, None], [None, 1], [1, 2, 3]],
}


@dataclass
class Case:
    """One generated input: the spec text and any extra files, the command lines to run on them."""

    spec: str | bytes
    files: dict[str, bytes] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    kind: str = "spec"


WILD = [0.15]  # the share of hostile values: per spec, a tame one (mostly valid, so it runs) or a wild one


def _value(rng: random.Random, name: str):
    roll = rng.random()
    if roll < WILD[0]:
        return rng.choice(HOSTILE)
    if name in FIELD_VALUES and rng.random() < 0.8:
        return rng.choice(FIELD_VALUES[name])
    return rng.choice(GOOD_INTS)


def _layer(rng: random.Random, depth: int, block_names: list[str]):
    if block_names and rng.random() < 0.15:
        name = rng.choice(block_names)
        return name if rng.random() < 0.5 else {name: {"w": _value(rng, "filters")}}
    kind = rng.choice(list(CATALOGUE) + ["conv"] * 4 + ["relu"] * 3 + ["maxpool"] * 2)
    cls = CATALOGUE.get(kind)
    if cls is not None and cls.max_inputs > 1 and depth < 3 and rng.random() < 0.8:
        branches = [[_layer(rng, depth + 1, block_names) for _ in range(rng.randint(0, 3))]
                    for _ in range(rng.randint(1 if WILD[0] else 2, 3))]
        entry = {kind: branches}
    elif cls is not None and cls.model_fields and (rng.random() < 0.8 or not WILD[0]):
        fields = list(cls.model_fields)
        if cls.shorthand and rng.random() < 0.3 and (WILD[0] or cls.shorthand in ("filters", "units", "kernel")):
            entry = {kind: _value(rng, cls.shorthand)}
        else:
            required = [f for f, info in cls.model_fields.items() if info.is_required()]
            chosen = set(rng.sample(fields, rng.randint(1, len(fields)))) | (set() if WILD[0] else set(required))
            entry = {kind: {f: _value(rng, f) for f in fields if f in chosen}}
    else:
        entry = kind if rng.random() < 0.7 else {kind: None}
    if isinstance(entry, dict) and rng.random() < (0.2 if WILD[0] else 0.05):
        extra = rng.choice([("repeat", rng.choice([0, 1, 2, 3, -1, 10**9, "x"])),
                            ("when", rng.choice([True, False, 1])),
                            ("name", rng.choice(["a", "b", "a.b", "", "x" * 200, 5] if WILD[0] else ["a", "b"])),
                            ("inputs", rng.choice([["input"], ["a"], "input", [1]]))])
        entry[extra[0]] = extra[1]
    return entry


def random_spec(rng: random.Random) -> dict:
    WILD[0] = rng.choice([0.0, 0.0, 0.02, 0.15])
    rank = rng.choice([0, 1, 2, 2, 2, 3])  # 0: a plain feature vector, input: [F]
    size = rng.choice([1, 2, 3, 5, 8, 8, 16, 16, 32])
    doc: dict = {"input": [rng.choice([1, 2, 3, 4]) if rank else rng.choice([1, 4, 20])] + [size] * rank}
    if rng.random() < 0.05:
        doc["input"] = rng.choice(HOSTILE)
    block_names = []
    if rng.random() < 0.3:
        doc["blocks"] = {}
        for i in range(rng.randint(1, 3)):
            name = f"b{i}"
            layers = [_layer(rng, 1, block_names) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.5:
                layers.append({"conv": {"filters": "$w", "kernel": 3, "padding": 1}})
            doc["blocks"][name] = {"args": {"w": rng.choice([8, None, "$w", 4])}, "layers": layers}
            block_names.append(name)
    doc["layers"] = [_layer(rng, 0, block_names) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.3:
        doc["layers"] += ["flatten", {"dense": rng.choice([2, 10, 0, 2_000_000_000])}]
    if rng.random() < 0.1:
        doc["outputs"] = rng.choice([["input"], ["nope"], [], "x"])
    if rng.random() < 0.2:  # what the output is: the kinds, a range, and wrong values
        doc["output"] = rng.choice(["logits", "probabilities", "binary", "regression", "logit", 3, ["a"],
                                    {"kind": "regression", "range": rng.choice([[0, 1], [1, 0], [0, ".inf"], [0]])},
                                    {"kind": "binary", "range": [0, 1]}, {"range": [0, 1]}, {"kind": "x", "y": 1}])
    return doc


def dump(doc) -> str:
    """YAML text of ``doc``; keys that YAML cannot sort stay in order."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


YAML_TRICKS = [
    "x: &a [1, 2]\ny: *a\n", "<<: {input: [1, 8, 8]}\n", "!!python/object:os.system ls\n", "--- \n---\n",
    "input: !!float 3\n", "\t- relu\n", "layers: [" * 80, "}\n", "a: b: c\n", "? [1, 2]\n: x\n", "%YAML 1.1\n",
    "input: [3, 0x10, 010]\n", "input: [1e3, .inf]\n", "\x00", "\ufeff", "layers:\n  - relu: {x: *undefined}\n",
]


def mutate_sample(rng: random.Random) -> str:
    """A bundled sample with a few line-level changes: deleted, duplicated or swapped lines, numbers
    changed, YAML features injected."""
    lines = rng.choice(SAMPLES).read_text().splitlines(keepends=True)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(lines))
        if op < 0.2:
            del lines[i]
        elif op < 0.35:
            lines.insert(i, lines[i])
        elif op < 0.5:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op < 0.8:
            digits = [k for k, c in enumerate(lines[i]) if c.isdigit()]
            if digits:
                k = rng.choice(digits)
                new = str(rng.choice([0, 1, 2, 7, 9, 99, 10**9, -1]))
                lines[i] = lines[i][:k] + new + lines[i][k + 1:]
        else:
            lines.insert(i, rng.choice(YAML_TRICKS))
        if not lines:
            lines = ["\n"]
    return "".join(lines)


def hostile_bytes(rng: random.Random) -> bytes:
    choices = [
        b"", b"\n\n", b"\xff\xfe\x00i", b"\x89PNG\r\n\x1a\n" + bytes(40), bytes(rng.randrange(256) for _ in range(64)),
        b"input: [3, 8, 8]\nlayers: [" + b"relu, " * 2000 + b"relu]\n", b"# " + b"x" * 100_000 + b"\n",
        b"input: [3, 8, 8]\nlayers:\n" + b"  - relu\n" * 3, "input: [1, 4]\nlayers: [relu]\n".encode("utf-16"),
        b"{\"input\": [1, 4], \"layers\": [\"relu\"]}", b"input: [1, 4]\r\nlayers: [relu]\r\n",
    ]
    return rng.choice(choices)


def npy(rng: random.Random, shape) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    choice = rng.random()
    if choice < 0.5:
        np.save(buf, rng.choice([np.float32, np.float64, np.int64])(0) + np.zeros(shape))
    elif choice < 0.7:
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(buf, np.zeros(shape, np.float32))
        data = buf.getvalue()
        return data[: rng.randrange(len(data))]
    return buf.getvalue()


COMMANDS = [
    ["summary"], ["summary", "--format", "json"], ["summary", "--format", "markdown"], ["summary", "--format", "csv"],
    ["summary", "--batch", "3", "--dtype", "float16"], ["lint", "--no-config"],
    ["lint", "--no-config", "--format", "json"], ["lint", "--no-config", "--format", "sarif"],
    ["lint", "--no-config", "--format", "github"], ["lint", "--no-config", "--format", "markdown"],
    ["run", "--max-memory", "256MiB"], ["run", "--grad", "--max-memory", "256MiB"],
    ["run", "--format", "json", "--max-memory", "256MiB"], ["train", "--steps", "1", "--max-memory", "256MiB"],
    ["export", "-o", "out.onnx", "--max-memory", "256MiB"],
]


def case(rng: random.Random) -> Case:
    """One case: an input and two to four commands on it."""
    roll = rng.random()
    if roll < 0.55:
        spec, kind = dump(random_spec(rng)), "generated"
    elif roll < 0.85:
        spec, kind = mutate_sample(rng), "mutated"
    else:
        spec, kind = hostile_bytes(rng), "hostile"
    commands = [list(c) for c in rng.sample(COMMANDS, rng.randint(2, 4))]
    files = {}
    for command in commands:
        if command[0] == "run" and rng.random() < 0.3:
            files["data.npy"] = npy(rng, (2, 1, 4, 4))
            command += ["--data", "data.npy"]
    if rng.random() < 0.05:
        commands.append(["explain", rng.choice(["AC101", "pool-too-early", "nope", "", "\x1b[2J", "AC" + "9" * 50])])
    return Case(spec, files, commands, kind)
