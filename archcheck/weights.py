"""Weight files: ``.npz`` archives of arrays under PyTorch state_dict names and layouts.

Names are ``<layer name>.<suffix>`` (``conv_1.weight``, ``batchnorm_1.running_var``, ...),
so a PyTorch state_dict converts by renaming keys::

    np.savez("w.npz", **{ours: t.numpy() for ours, t in zip(names, model.state_dict().values())})

PyTorch's ``num_batches_tracked`` counters are ignored. A file that does not match the spec
is reported array by array: missing, extra and wrongly shaped arrays, each with the expected
and found shapes.
"""

from __future__ import annotations

from archcheck.errors import ArchcheckError
from archcheck.layers.base import fmt_shape

IGNORED_SUFFIXES = (".num_batches_tracked",)


class WeightsError(ArchcheckError):
    """Weights that do not fit the spec: one line per problem, and how to fix it."""

    def __init__(self, source: str, problems: list[str], fix: str):
        super().__init__(f"{source} does not match the spec ({len(problems)} problem{'s' if len(problems) != 1 else ''}"
                         "):" + "".join(f"\n  {p}" for p in problems), fix)
        self.source, self.problems = source, problems


def _where(analysis, name: str) -> str:
    node = analysis.graph.nodes.get(name.rsplit(".", 1)[0])
    return f" (layer at {node.loc})" if node is not None else ""


def mismatches(analysis, arrays: dict, expected: dict | None = None) -> list[str]:
    """Problems with ``arrays`` (name -> array) as the weights of ``analysis``'s network
    (``expected``: ``propagate.param_shapes(analysis)``, when already at hand)."""
    from archcheck.propagate import param_shapes

    expected = expected if expected is not None else param_shapes(analysis)
    problems = []
    for name, (shape, _) in expected.items():
        if name not in arrays:
            problems.append(f"missing: {name}, expected shape {fmt_shape(shape)}{_where(analysis, name)}")
        elif tuple(arrays[name].shape) != shape:
            problems.append(f"wrong shape: {name} is {fmt_shape(arrays[name].shape)}, expected {fmt_shape(shape)}"
                            f"{_where(analysis, name)}")
        elif arrays[name].dtype.kind not in "fiu":
            problems.append(f"wrong type: {name} holds {arrays[name].dtype} values, expected floating point")
    for name in arrays:
        if name not in expected and not name.endswith(IGNORED_SUFFIXES):
            problems.append(f"extra: {name} (shape {fmt_shape(arrays[name].shape)}) is not a weight of this network")
    return problems


FIX = ("store each array as `<layer>.<suffix>` in PyTorch's layout, with the shapes above; `archcheck summary SPEC` "
       "lists the layer names")


def check(analysis, params: dict, source: str = "the weights", expected: dict | None = None) -> None:
    problems = mismatches(analysis, params, expected)
    if problems:
        raise WeightsError(source, problems, FIX)


def load(path: str, analysis, dtype: str = "float32", limit: int = 2**62) -> dict:
    """Read an ``.npz`` of weights for ``analysis``'s network, converted to ``dtype``.

    Member names are checked before any array is decompressed (an extra 3 GiB member is named, never
    read), and each array's header before its data, within ``limit`` bytes."""
    from archcheck.files import FileProblem, read_arrays
    from archcheck.propagate import param_shapes

    expected = param_shapes(analysis)
    extra: list[str] = []

    def choose(names):
        extra.extend(n for n in names if n not in expected and not n.endswith(IGNORED_SUFFIXES))
        return [n for n in names if n in expected]  # an extra member is named, never decompressed

    try:
        arrays = read_arrays(path, limit, choose)
    except FileProblem as exc:
        problem = exc.message.removeprefix(f"{path} ")
        raise WeightsError(path, ["the file does not exist" if not exc.exists and "No such file" in problem
                                  else problem], exc.fix) from None
    if "" in arrays:  # an .npy: one array, no names
        raise WeightsError(path, ["holds a single array, not named weights"],
                           "write weights with numpy.savez, one array per state_dict name")
    problems = mismatches(analysis, arrays, expected)
    problems += [f"extra: {n} is not a weight of this network (not read)" for n in extra[:20]]
    problems += [f"... and {len(extra) - 20:,} more extra arrays"] if len(extra) > 20 else []
    if problems:
        raise WeightsError(path, problems, FIX)
    return {name: array.astype(dtype) for name, array in arrays.items()}
