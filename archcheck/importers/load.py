"""Model files as specs: the commands' SPEC may be a model file, imported in memory by its suffix."""

from __future__ import annotations

from archcheck.importers import Imported


def read_model(path, input_shape=None) -> Imported:
    """Read a model file by its suffix (``MODEL_SUFFIXES``). ``input_shape`` fills the sizes a Keras model
    leaves open; an ONNX model's sizes are its own."""
    from pathlib import Path

    from archcheck.importers import ImportProblem

    if Path(str(path)).suffix.lower() == ".keras":
        from archcheck.importers.keras import read_keras

        return read_keras(path, input_shape=input_shape)
    if input_shape is not None:
        raise ImportProblem(f"{path}: an ONNX model's input size is its own; --input does not apply to it",
                            "leave out --input (summary's --input can then change the size the spec is analysed at)")
    from archcheck.importers.onnx import read_onnx

    return read_onnx(path)


def document(imported: Imported, file: str):
    """``imported.doc`` as the spec loader's document: mappings and lists that know their place, which for
    an imported model is the source node of each layer (an ONNX file has no lines)."""
    from archcheck.errors import Loc
    from archcheck.yamlsrc import YMap, YSeq

    top = Loc(file, 0, 0)

    def convert(value, loc):
        if isinstance(value, dict):
            out = YMap({k: convert(v, loc) for k, v in value.items()})
            out.loc, out.locs, out.key_locs = loc, dict.fromkeys(value, loc), dict.fromkeys(value, loc)
            return out
        if isinstance(value, (list, tuple)):
            out = YSeq(convert(v, loc) for v in value)
            out.loc, out.locs = loc, [loc] * len(value)
            return out
        return value

    doc = convert({k: v for k, v in imported.doc.items() if k != "layers"}, top)
    layers = YSeq()
    layers.loc, layers.locs = top, []
    for item in imported.doc["layers"]:
        name = item.get("name") if isinstance(item, dict) else None
        where = Loc(file, 0, 0, node=imported.origin.get(name)) if name in imported.origin else top
        layers.append(convert(item, where))
        layers.locs.append(where)
    doc["layers"] = layers
    doc.locs["layers"] = doc.key_locs["layers"] = top
    return doc


def load_model_spec(path):
    """The expanded Spec of a model file, imported in memory."""
    from archcheck.spec import expand

    return expand(document(read_model(path), str(path)), str(path))
