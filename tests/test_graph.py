"""The layer graph: topological order, consumers, unused layers and the networkx view."""

from pathlib import Path

import networkx as nx

from archcheck.graph import build_graph
from archcheck.spec import expand, load_spec
from archcheck.yamlsrc import load_text

ROOT = Path(__file__).resolve().parents[1]


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
