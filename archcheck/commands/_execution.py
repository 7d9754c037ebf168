"""What ``run`` and ``train`` share before they execute a spec: the analysis, the batch, the weights and the
targets, loaded (or made) under ``--max-memory``, and refusals of outputs that would overwrite inputs."""

from __future__ import annotations

from pathlib import Path

from archcheck.errors import ArchcheckError
from archcheck.propagate import DTYPES


def needed_bytes(analysis, batch: int, dtype: str, training: bool) -> int:
    """The memory an execution needs, from the propagator's figures (computed for batch 1, float32):
    the weights, and the activations alive at the peak (inference) or every layer's output kept for
    the backward pass plus a gradient of each (training), with the weights' gradients and optimizer
    state."""
    t = analysis.totals
    scale = DTYPES[dtype] // DTYPES["float32"]
    if training:
        return scale * (3 * t.param_bytes + 2 * batch * t.activation_bytes)
    return scale * (t.param_bytes + batch * t.peak_activation_bytes)


def refuse_if_too_big(analysis, batch: int, dtype: str, training: bool, limit: int) -> None:
    """An execution that would need more than ``limit`` bytes is refused before anything is allocated."""
    from archcheck.files import human

    need = needed_bytes(analysis, batch, dtype, training)
    if need > limit:
        t = analysis.totals
        raise ArchcheckError(f"running {analysis.spec.name} at batch {batch} in {dtype} needs about {human(need)} "
                             f"({t.params:,} weights, {human(t.activation_bytes * batch)} of layer outputs"
                             f"{' kept for the backward pass' if training else ''}), more than --max-memory "
                             f"({human(limit)})",
                             "use a smaller --batch or network, or raise --max-memory if this machine has the memory")


def refuse_overwrite(path, *inputs) -> None:
    """Writing ``path`` is refused when it is one of the command's inputs."""
    from archcheck.files import same_file

    for source in inputs:
        if source and Path(path).exists() and same_file(path, source):
            raise ArchcheckError(f"{path} is also an input of this command ({source}); writing it would destroy it",
                                 "write to another path")


def prepare(spec, data, batch, weights, seed, dtype, max_memory=2**62, training=False, at_most=False):
    """Analyse the spec and load (or make) the batch and the weights: (analysis, x, names, params, source).

    With ``data``, ``batch`` is the number of samples to take, an error when the data hold fewer, or with
    ``at_most`` the most to take. What would not fit in ``max_memory`` is refused before it is read or allocated."""
    from archcheck import data as datamod
    from archcheck.executor import init_params
    from archcheck.pipeline import analyze_model
    from archcheck.weights import load

    analysis, own = analyze_model(spec)  # a model file (.onnx) brings its own weights
    refuse_if_too_big(analysis, batch or 1, dtype, training, max_memory)
    if data:
        x, names = datamod.load(data, analysis.spec.input, dtype, rows=batch, limit=max_memory)
        refuse_if_too_big(analysis, len(x), dtype, training, max_memory)
        if batch is not None:
            if batch > len(x) and not at_most:
                raise datamod.DataError(f"--batch {batch} asks for more samples than {data} holds ({len(x)})",
                                        f"use --batch {len(x)} or less")
            x, names = x[:batch], names[:batch]
        source = f"{data} ({len(x)} sample{'s' if len(x) != 1 else ''})"
    else:
        batch = batch or 1
        x, names = datamod.random_batch(analysis.spec.input, batch, seed, dtype), [str(i) for i in range(batch)]
        source = f"random normal, seed {seed}"
    if weights:
        params = load(weights, analysis, dtype, max_memory)
    elif own is not None:
        params = {name: array.astype(dtype) for name, array in own.items()}
    else:
        params = init_params(analysis, seed, dtype)
    return analysis, x, names, params, source


def targets_for(analysis, labels, batch, kind, seed):
    """The labels or targets of the loss: read from ``labels``, else random (seeded)."""
    import numpy as np

    from archcheck import data as datamod
    from archcheck.executor import random_targets

    if labels is None:
        return random_targets(analysis, batch, kind, np.random.default_rng(seed + 1))
    return datamod.load_targets(labels, analysis, batch, kind)


def thread_count(threads: int | None) -> int:
    """``--threads``, by default as many as NumPy's BLAS runs on (one where that cannot be read)."""
    from archcheck import blas

    return threads or blas.threads() or 1
