"""The flat spec document: every layer listed once, as an importer makes it.

``{name, input, layers, outputs?, metadata?, classes?, output?, description?}`` where each entry of
``layers`` is ``{TYPE: {args}, name: NAME, inputs: [NAMES]}`` (``inputs`` left out when the input is the
previous entry) or a bare ``TYPE`` for a layer without arguments and without a name.
"""

from __future__ import annotations

from archcheck.spec import INPUT, Spec

ENTRY = ("name", "inputs")


def flatten(spec: Spec, names_out: dict | None = None) -> dict:
    """The flat document of an expanded spec: one entry per layer, arguments without their defaults.

    Names are the expanded names with dots made underscores (a flat name has no scope); ``names_out``,
    when given, receives expanded name -> flat name. Layers whose arguments read the incoming shape are
    bound first (propagation knows the shapes), so the document holds numbers only."""
    nodes = spec.nodes
    if any(n.layer is None for n in nodes):
        from archcheck.graph import build_graph
        from archcheck.propagate import propagate

        facts = propagate(build_graph(spec)).layers
        nodes = [facts[n.name].node if n.layer is None else n for n in nodes]
    flat = {INPUT: INPUT}
    taken = {INPUT}
    for n in nodes[1:]:
        name = n.name.replace(".", "_")
        while name in taken:
            name += "_"
        flat[n.name] = name
        taken.add(name)
    layers, prev = [], INPUT
    for n in nodes[1:]:
        args = n.layer.model_dump(exclude_defaults=True, by_alias=True)
        entry = {n.type: args, "name": flat[n.name]}
        inputs = [flat[i] for i in n.inputs]
        if inputs != [prev]:
            entry["inputs"] = inputs
        layers.append(entry)
        prev = flat[n.name]
    doc = {"name": spec.name, "input": list(spec.input), "layers": layers}
    if spec.outputs != [nodes[-1].name]:
        doc["outputs"] = [flat[o] for o in spec.outputs]
    for key in ("classes", "description"):
        if getattr(spec, key) is not None:
            doc[key] = getattr(spec, key)
    if spec.output is not None:
        doc["output"] = (spec.output.kind if spec.output.range == (float("-inf"), float("inf"))
                         else {"kind": spec.output.kind, "range": list(spec.output.range)})
    if spec.metadata:
        doc["metadata"] = spec.metadata
    if names_out is not None:
        names_out.update(flat)
    return doc


def entries(doc: dict) -> list[tuple[str, str, dict, list[str]]]:
    """The layers of a flat document as (name, type, arguments as written, input names), in order."""
    out, prev, seen = [], INPUT, {INPUT}
    for i, entry in enumerate(doc["layers"]):
        if isinstance(entry, str):
            kind, args, meta = entry, {}, {}
        else:
            kinds = [k for k in entry if k not in ENTRY]
            if len(kinds) != 1:
                raise ValueError(f"flat layer {i} must have one type, received {sorted(map(str, kinds))}")
            kind, meta = kinds[0], entry
            args = entry[kind] if entry[kind] is not None else {}
        name = meta.get("name") or f"{kind}_{i + 1}"
        inputs = list(meta.get("inputs") or [prev])
        missing = [x for x in inputs if x not in seen]
        if missing:
            raise ValueError(f"flat layer '{name}' reads {missing}, which no earlier layer is called: list the "
                             "layers in an order where each comes after its inputs")
        if name in seen:
            raise ValueError(f"flat layer name '{name}' is used twice")
        seen.add(name)
        out.append((name, kind, args, inputs))
        prev = name
    return out
