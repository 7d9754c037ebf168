"""Helpers shared by the test rules (not a rule: the name starts with _)."""


def convs(analysis):
    return [n for n in analysis.graph.order if n.type == "conv"]
