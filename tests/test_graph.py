"""The layer graph: topological order, consumers, unused layers, walks, tensor lifetimes, the networkx view
and networkx staying off the fast path."""

import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from archcheck.graph import build_graph
from archcheck.spec import INPUT, expand, load_spec
from archcheck.yamlsrc import load_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))


def graph_of(text: str):
    return build_graph(expand(load_text(text, "g.yaml"), "g.yaml"))


def test_order_is_topological_and_keeps_definition_order_where_it_can():
    g = graph_of("""input: [1, 8]
layers:
  - relu:
    name: late
    inputs: [early]
  - relu:
    name: early
    inputs: [input]
  - add: [late, early]
""")
    assert [n.name for n in g.order] == ["input", "early", "late", "add_1"]
    assert g.consumers["early"] == ["late", "add_1"]


def test_consumers_are_listed_in_execution_order():
    # the add is written before c2 but runs after it (it waits for b): walks meet c2 first
    g = graph_of("""input: [1, 8]
layers:
  - add: [a, b]
  - relu:
    name: a
    inputs: [input]
  - relu:
    name: c2
    inputs: [a]
  - relu:
    name: b
    inputs: [input]
""")
    assert [n.name for n in g.order] == ["input", "a", "c2", "b", "add_1"]
    assert g.consumers["a"] == ["c2", "add_1"]


def test_unused_layers_are_those_that_reach_no_output():
    g = graph_of("""input: [1, 8]
layers:
  - relu:
    name: a
  - relu:
    name: side
  - relu:
    inputs: [a]
""")
    assert [n.name for n in g.unused()] == ["side"]


def test_networkx_view_matches_the_graph():
    g = build_graph(load_spec(ROOT / "samples" / "resnet18.yaml"))
    d = g.to_networkx()
    assert nx.is_directed_acyclic_graph(d)
    assert d.number_of_nodes() == len(g.order)
    assert d.number_of_edges() == sum(len(n.inputs) for n in g.order)
    assert list(nx.topological_sort(d))[0] == "input"
    assert d.nodes["dense_1"]["node"] is g.nodes["dense_1"]
    # eight residual adds: each has two paths from the block input
    assert sum(1 for n in g.order if n.type == "add" and d.in_degree(n.name) == 2) == 8


# a skip connection (a), a tensor read twice by one layer (b), a dangling layer (side) and a dangling
# reader of an output (probe), and two outputs, one of which is read further on (b)
BRANCHING = """input: [2, 4, 4]
outputs: [head, b]
layers:
  - relu:
    name: a
  - relu:
    name: side
  - relu:
    name: b
    inputs: [a]
  - add: [b, b]
  - add: [a, add_1]
    name: c
  - identity:
    name: probe
    inputs: [b]
  - relu:
    name: head
    inputs: [c]
"""


def alive_at_each_step(g) -> dict[str, list[str]]:
    """The tensors live while each layer runs: its inputs and its output together, then the released go."""
    live, out = set(), {}
    for node in g.order:
        live.add(node.name)
        out[node.name] = sorted(live)
        live -= set(g.released[node.name])
    assert live == {*g.outputs, INPUT}  # the caller holds the input
    return out


def test_tensor_lifetimes_end_at_the_last_reader():
    g = graph_of(BRANCHING)
    assert [n.name for n in g.order] == ["input", "a", "side", "b", "add_1", "c", "probe", "head"]
    assert g.released == {"input": (), "a": (), "side": ("side",), "b": (), "add_1": (),
                          "c": ("a", "add_1"), "probe": ("probe",), "head": ("c",)}
    assert alive_at_each_step(g) == {  # the input throughout: the caller holds it
        "input": ["input"],
        "a": ["a", "input"],
        "side": ["a", "input", "side"],  # read by nobody: gone at once
        "b": ["a", "b", "input"],
        "add_1": ["a", "add_1", "b", "input"],  # b read twice here, and still an output
        "c": ["a", "add_1", "b", "c", "input"],  # a lives across the branch until the add that skips to it
        "probe": ["b", "c", "input", "probe"],
        "head": ["b", "c", "head", "input"],
    }


def test_inference_folds_a_batchnorm_into_its_only_reader_and_overwrites_tensors_that_die():
    g = graph_of("""input: [3, 8, 8]
layers:
  - conv: 4
  - batchnorm:
    name: bn
  - relu:
    name: r
  - conv: 4
    name: side
    inputs: [r]
  - batchnorm:
    name: shared
  - relu:
    name: s1
  - relu:
    name: s2
    inputs: [shared]
  - add: [s1, s2]
  - add: [add_1, r]
  - flatten
  - relu:
    name: after_view
""")
    shapes = {n.name: (4, 8, 8) for n in g.order}
    shapes |= {"input": (3, 8, 8), "flatten_1": (256,), "after_view": (256,)}
    plan = g.inference(shapes)
    assert plan.folds == {"conv_1": "bn", "side": "shared"}
    # r is read again by the second add; shared by two relus; the input is the caller's; a flatten's output
    # may be a view of a tensor still in use
    assert plan.in_place == {"r": "bn", "s2": "shared", "add_1": "s1", "add_2": "add_1"}


def test_inference_halves_the_input_of_an_activation_that_begins_by_halving_it_in_the_layer_that_makes_it():
    g = graph_of("""input: [3, 8, 8]
layers:
  - conv: 4
  - batchnorm
  - swish:
    name: through_bn
  - conv: 4
  - swish:
    name: own
  - relu:
    name: not_halving
  - swish:
    name: after_relu
  - conv: 4
    name: read_twice
  - sigmoid:
    name: gate
  - multiply: [gate, read_twice]
  - flatten
  - dense: 5
  - sigmoid:
    name: head
""")
    shapes = {n.name: (4, 8, 8) for n in g.order}
    shapes |= {"input": (3, 8, 8), "flatten_1": (256,), "dense_1": (5,), "head": (5,)}
    plan = g.inference(shapes)
    # the conv a batchnorm is folded into, a conv, a dense; not a relu's output (no weights to take the scale),
    # nor a tensor another layer reads too
    assert plan.halved == {"through_bn": "conv_1", "own": "conv_2", "head": "dense_1"}
    assert plan.made_halved == {"batchnorm_1", "conv_2", "dense_1"}
    assert set(plan.halved) <= set(plan.in_place)  # it writes over the tensor it reads: nothing else is alive


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_lifetimes_and_reachability_agree_with_networkx(path):
    g = build_graph(load_spec(path))
    d = g.to_networkx()
    position = {n.name: i for i, n in enumerate(g.order)}
    expected = {n.name: set() for n in g.order}
    for name in d:
        if name not in g.outputs and name != INPUT:  # the caller holds the input
            last = max((position[c] for c in d.successors(name)), default=position[name])
            expected[g.order[last].name].add(name)
    assert {name: set(released) for name, released in g.released.items()} == expected
    assert g.used == set().union(*(nx.ancestors(d, o) | {o} for o in g.outputs))
    middle = g.order[len(g.order) // 2].name
    assert g.upstream([middle]) == nx.ancestors(d, middle) | {middle}


def test_walks_pass_through_what_the_predicate_passes_and_stop_at_the_input():
    g = graph_of(BRANCHING)

    def names(walk):
        found = [n.name for n in walk]
        assert len(found) == len(set(found))  # each once
        return set(found)

    assert names(g.after(g.nodes["input"], lambda n: n.type == "relu")) == {"add_1", "c", "probe"}
    assert names(g.after(g.nodes["c"], lambda n: n.type == "relu")) == set()  # head ends the network
    assert names(g.before(g.nodes["c"], lambda n: n.type == "add")) == {"a", "b"}
    assert names(g.before(g.nodes["head"], lambda n: n.type in ("relu", "add"))) == {"input"}


def test_summary_and_lint_do_not_import_networkx():
    """networkx serves analyses off the fast path (``to_networkx``); the graph's own queries are plain."""
    code = ("import sys; from archcheck.cli import main\n"
            "for args in (['summary', 'samples/googlenet.yaml'], ['lint', 'samples/resnet50.yaml']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "assert 'networkx' not in sys.modules, 'networkx imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
