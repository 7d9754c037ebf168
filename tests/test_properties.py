"""Property tests: the closed-form shape and receptive-field rules agree with brute force.

The brute force slides windows explicitly over index ranges and traces, for an output
unit, the set of input positions it depends on, layer by layer.
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from archcheck.graph import build_graph
from archcheck.propagate import propagate
from archcheck.spec import expand
from archcheck.yamlsrc import load_text


def windows(n, k, s, pb, pa, d):
    """Start positions (in input coordinates) of every window that fits the padded input."""
    span = d * (k - 1) + 1
    return [start for start in range(-pb, n + pa - span + 1, s)]


conv_1d = st.fixed_dictionaries({
    "kernel": st.integers(1, 7), "stride": st.integers(1, 3), "padding": st.integers(0, 3),
    "dilation": st.integers(1, 3),
})


def analyse(spec: dict):
    return propagate(build_graph(expand(load_text(json.dumps(spec), "p.json"), "p.json")))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 64), conv=conv_1d)
def test_conv_output_size_matches_sliding_windows(n, conv):
    k, s, p, d = conv["kernel"], conv["stride"], conv["padding"], conv["dilation"]
    starts = windows(n, k, s, p, p, d)
    spec = {"input": [1, n], "layers": [{"conv": {"filters": 1, **conv}}]}
    if not starts:
        return  # the window does not fit; covered by the error tests
    assert analyse(spec).layers["conv_1"].shape == (1, len(starts))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 64), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2))
def test_ceil_mode_pooling_matches_its_definition(n, k, s, p):
    if 2 * p > k or n + 2 * p < k:
        return
    # ceil mode: windows every s positions of the padded input (length L) until one reaches past its
    # end, but none that starts in the right padding (PyTorch's rule)
    padded = n + 2 * p
    starts = [i * s for i in range(padded) if i * s <= padded - k + s - 1 and i * s < n + p]
    spec = {"input": [1, n], "layers": [{"maxpool": {"kernel": k, "stride": s, "padding": p, "ceil_mode": True}}]}
    assert analyse(spec).layers["maxpool_1"].shape == (1, len(starts))


def traced_field(convs, unit):
    """Input positions that output ``unit`` of a 1-D conv chain depends on, padding included."""
    positions = {unit}
    for conv in reversed(convs):
        k, s, p, d = conv["kernel"], conv["stride"], conv["padding"], conv["dilation"]
        positions = {j * s - p + m * d for j in positions for m in range(k)}
    return min(positions), max(positions)


@settings(max_examples=200, deadline=None)
@given(convs=st.lists(conv_1d, min_size=1, max_size=5))
def test_receptive_field_matches_traced_dependencies(convs):
    n = 256
    spec = {"input": [1, n], "layers": [{"conv": {"filters": 1, **c}} for c in convs]}
    sizes, size = [], n
    for c in convs:
        starts = windows(size, c["kernel"], c["stride"], c["padding"], c["padding"], c["dilation"])
        if not starts:
            return
        size = len(starts)
        sizes.append(size)
    facts = analyse(spec).layers[f"conv_{len(convs)}"]
    (field,) = facts.rf.axes
    for unit in {0, size // 2, size - 1}:
        lo, hi = traced_field(convs, unit)
        assert (lo, hi) == (unit * field.S - field.P, unit * field.S - field.P + field.r - 1)


@settings(max_examples=100, deadline=None)
@given(left=st.lists(conv_1d, min_size=1, max_size=3), right=st.lists(conv_1d, min_size=0, max_size=3))
def test_merged_field_is_the_union_over_paths(left, right):
    """On a DAG the field of an add is the hull of its inputs' fields (all stride-1 here)."""
    for c in left + right:
        c["stride"] = 1
        c["padding"] = c["dilation"] * (c["kernel"] - 1) // 2 if c["kernel"] % 2 else 0
        if c["kernel"] % 2 == 0:
            c["kernel"] += 1
            c["padding"] = c["dilation"] * (c["kernel"] - 1) // 2
    spec = {"input": [1, 64], "layers": [{"add": [[{"conv": {"filters": 1, **c}} for c in branch]
                                                  for branch in (left, right)]}]}
    (field,) = analyse(spec).layers["add_1"].rf.axes
    lo = min(traced_field(left, 10)[0], traced_field(right, 10)[0])
    hi = max(traced_field(left, 10)[1], traced_field(right, 10)[1])
    assert (lo, hi) == (10 * field.S - field.P, 10 * field.S - field.P + field.r - 1)
