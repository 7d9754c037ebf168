"""What a network looks at, computed with the NumPy executor for ``archcheck report``'s executor section.

- ``filters``: the first 2-D convolution's weights, the filters the CS231n notes suggest looking at
  (smooth, varied filters train well; noisy ones point to too little training or regularisation).
- ``activations``: the maps of chosen layers for the first sample.
- ``effective_field``: the gradient of the central unit of a feature map with respect to the input,
  in absolute value, summed over the input channels and averaged over the samples: the *effective*
  receptive field of Luo, Li, Urtasun & Zemel, *Understanding the Effective Receptive Field in Deep
  Convolutional Neural Networks* (NeurIPS 2016), against the theoretical one of the propagator, whose
  box for that unit is ``[i*S - P, i*S - P + r - 1]`` per axis.
- ``occlusion``: the drop of the predicted class's score as a patch at the data's mean slides over the
  first sample (Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014).

Every function takes the analysis, the weights and the batch the command prepared, and returns plain
arrays and numbers for the renderer; none of them draws. The work is bounded: at most ``MAX_SAMPLES``
samples, and the occlusion's grid is as fine as ``OCCLUSION_MACS`` multiply-accumulates allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from archcheck import executor
from archcheck.errors import ArchcheckError
from archcheck.layers.base import fmt_shape
from archcheck.propagate import Analysis
from archcheck.spec import INPUT

MAX_SAMPLES = 8  # the effective receptive field's average; the first sample for the rest
MAPS_PER_LAYER = 8  # activation maps shown per layer
DEFAULT_LAYERS = 4  # layers shown without --layers, spread across depth
OCCLUSION_MACS = 2e11  # the occlusion map's budget: a 7x7 grid for ResNet-50, 16x16 for small networks
OCCLUSION_GRID = 16  # the finest grid, cells per axis
CHUNK_BYTES = 1 << 30  # the effective field keeps every layer's output for the backward pass: samples per pass


@dataclass
class Filters:
    layer: str
    weight: np.ndarray  # (filters, channels per group, kh, kw)


@dataclass
class Maps:
    layer: str
    type: str
    shape: tuple
    channels: list[int]  # the channels shown: the largest spatial spread on the sample
    maps: np.ndarray  # (len(channels), H, W)


@dataclass
class EffectiveField:
    layer: str
    unit: tuple[int, int]  # the central unit (row, column) of the layer's map
    box: tuple[float, float, float, float]  # its theoretical field in input pixels: top, left, bottom, right
    gradient: np.ndarray  # (H, W): mean over samples of |d unit / d input|, summed over the input channels
    samples: int
    inside: float  # share of the gradient's mass inside the theoretical box


@dataclass
class Occlusion:
    output: str
    scored: str  # the layer whose value is the score: the logits before a softmax output, else the output
    label: int  # the class predicted on the whole sample
    score: float  # its score there
    drops: np.ndarray  # (rows, columns): score without occlusion minus score with the patch over that cell
    patch: tuple[int, int]  # the patch's size in pixels
    cell: tuple[float, float]  # the grid's step in pixels
    fill: str  # what the patch holds


@dataclass
class Probe:
    source: str  # where the samples came from
    weights: str  # where the weights came from
    sample: np.ndarray  # (C, H, W): the first sample, as fed to the network
    sample_name: str
    filters: Filters | None
    maps: list[Maps]
    erf: EffectiveField | None
    occlusion: Occlusion | None
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def spatial_2d(analysis: Analysis) -> bool:
    return len(analysis.layers[INPUT].shape) == 3


def choose_layers(analysis: Analysis, names: list[str] | None) -> list[str]:
    """The layers whose maps are shown: ``names`` (checked), else a few spread across depth, activations first."""
    maps = [n.name for n in analysis.graph.order[1:] if len(analysis.layers[n.name].shape) == 3]
    if names:
        for name in names:
            if name not in analysis.layers:
                import difflib

                close = difflib.get_close_matches(name, list(analysis.layers), 3)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                raise ArchcheckError(f"--layers: {analysis.spec.name} has no layer '{name}'{hint}",
                                     "give layer names as `archcheck summary` lists them, comma-separated")
            if name not in maps:
                raise ArchcheckError(f"--layers: layer '{name}' outputs {fmt_shape(analysis.layers[name].shape)}, "
                                     "not a 2-D map (C, H, W), so it has no activation maps to draw",
                                     f"choose layers before the network pools or flattens its maps, e.g. {maps[-1]}"
                                     if maps else "this network has no 2-D feature maps")
        return list(dict.fromkeys(names))
    activated = [m for m in maps if analysis.graph.nodes[m].layer.activation] or maps
    if len(activated) <= DEFAULT_LAYERS:
        return activated
    return [activated[round(i * (len(activated) - 1) / (DEFAULT_LAYERS - 1))] for i in range(DEFAULT_LAYERS)]


def first_conv(analysis: Analysis, params: dict) -> Filters | None:
    for node in analysis.graph.order[1:]:
        if node.type == "conv" and len(analysis.layers[node.name].shape) == 3:
            return Filters(node.name, np.asarray(params[f"{node.name}.weight"], np.float32))
    return None


def activation_maps(analysis: Analysis, params: dict, x: np.ndarray, layers: list[str]) -> list[Maps]:
    """The maps of ``layers`` for the sample ``x`` (1, C, H, W), the ``MAPS_PER_LAYER`` channels of largest spread."""
    wanted, kept = set(layers), {}

    def on_layer(node, y, seconds):
        if node.name in wanted:
            kept[node.name] = y[0]

    with np.errstate(all="ignore"):
        executor.forward(analysis, params, x, on_layer=on_layer)
    out = []
    for name in layers:
        y = kept[name].astype(np.float64)
        spread = y.reshape(len(y), -1).std(axis=1)
        channels = sorted(np.argsort(-spread, kind="stable")[:MAPS_PER_LAYER].tolist())
        out.append(Maps(name, analysis.graph.nodes[name].type, analysis.layers[name].shape, channels,
                        y[channels].astype(np.float32)))
    return out


def effective_field(analysis: Analysis, params: dict, x: np.ndarray, layer: str, chunk: int) -> EffectiveField:
    """Luo et al.'s effective receptive field of ``layer``'s central unit (every channel's, summed), averaged over
    the samples ``x``, ``chunk`` samples per forward and backward pass."""
    facts = analysis.layers[layer]
    _, h, w = facts.shape
    unit = ((h - 1) // 2, (w - 1) // 2)
    gradient = np.zeros(x.shape[2:], np.float64)
    for k in range(0, len(x), chunk):
        part = x[k:k + chunk]
        tape = executor.Tape()
        with np.errstate(all="ignore"):
            executor.forward(analysis, params, part, tape=tape)
            seed = np.zeros((len(part), *facts.shape), x.dtype)
            seed[:, :, unit[0], unit[1]] = 1
            grads = executor.backward(analysis, params, tape, {layer: seed})
        gradient += np.abs(grads.input.astype(np.float64)).sum(axis=(0, 1))
    gradient /= len(x)
    (ry, rx) = facts.rf.axes
    top, left = (float(i * a.S - a.P) for i, a in zip(unit, (ry, rx)))
    box = (top, left, top + float(ry.r) - 1, left + float(rx.r) - 1)
    rows = slice(max(0, math.ceil(box[0])), max(0, math.floor(box[2]) + 1))
    cols = slice(max(0, math.ceil(box[1])), max(0, math.floor(box[3]) + 1))
    total = gradient.sum()
    inside = float(gradient[rows, cols].sum() / total) if total > 0 else 0.0
    return EffectiveField(layer, unit, box, gradient.astype(np.float32), len(x), inside)


def erf_layer(analysis: Analysis) -> str | None:
    """The last 2-D feature map with a receptive field smaller than the whole input (the summary's final field)."""
    final = analysis.totals.receptive_field
    if final is None or len(analysis.layers[final[0]].shape) != 3:
        return None
    return final[0]


def class_output(analysis: Analysis) -> str | None:
    """The first output that is a vector of class scores, or None."""
    return next((o for o in analysis.graph.outputs if len(analysis.layers[o].shape) == 1), None)


def score_layer(analysis: Analysis, output: str) -> str:
    """Where a class's score is read: the logits before a softmax (a saturated probability hides every change),
    else the output itself."""
    node = analysis.graph.nodes[output]
    return node.inputs[0] if node.layer.activation and node.layer.probabilities else output


def occlusion(analysis: Analysis, params: dict, x: np.ndarray, output: str, fill: np.ndarray, fill_text: str,
              max_memory: int) -> Occlusion:
    """Slide a patch (``fill`` per channel, two grid cells wide) over the sample ``x`` (1, C, H, W), one grid
    cell at a time, and record the predicted class's score drop; the grid as fine as the budget allows."""
    _, _, h, w = x.shape
    at = score_layer(analysis, output)

    def scores(batch):
        kept = {}

        def on_layer(node, y, seconds):
            if node.name == at:
                kept["y"] = y

        with np.errstate(all="ignore"):
            executor.forward(analysis, params, batch, on_layer=on_layer)
        return kept["y"].astype(np.float64)

    macs = max(analysis.totals.macs, 1)
    cells = max(2, min(OCCLUSION_GRID, math.isqrt(max(4, int(OCCLUSION_MACS // macs))), h, w))
    step = (h / cells, w / cells)
    patch = (min(h, math.ceil(2 * step[0])), min(w, math.ceil(2 * step[1])))
    base = scores(x)[0]
    label = int(np.argmax(base))
    score = float(base[label])
    per_sample = max(analysis.totals.peak_activation_bytes, 1) * 2
    chunk = int(max(1, min(16, max_memory // per_sample)))
    starts = [(max(0, round((i + 0.5) * step[0] - patch[0] / 2)), max(0, round((j + 0.5) * step[1] - patch[1] / 2)))
              for i in range(cells) for j in range(cells)]
    drops = np.empty(len(starts), np.float64)
    for k in range(0, len(starts), chunk):
        part = starts[k:k + chunk]
        batch = np.repeat(x, len(part), axis=0)
        for b, (top, left) in enumerate(part):
            batch[b, :, top:top + patch[0], left:left + patch[1]] = fill[:, None, None]
        drops[k:k + len(part)] = score - scores(batch)[:, label]
    return Occlusion(output, at, label, score, drops.reshape(cells, cells).astype(np.float32), patch, step, fill_text)


def probe(analysis: Analysis, params: dict, x: np.ndarray, names: list[str], source: str, weights: str,
          layers: list[str], images: bool, max_memory: int) -> Probe:
    """Everything the executor section shows, for a 2-D network (``spatial_2d``), on the batch ``x``."""
    notes = []
    sample = x[:1]
    filters = first_conv(analysis, params)
    if filters is None:
        notes.append("no 2-D convolution, so no filters to show")
    maps = activation_maps(analysis, params, sample, layers)
    erf = None
    layer = erf_layer(analysis)
    if layer is None:
        notes.append("no 2-D feature map with a receptive field smaller than the input, so no effective receptive "
                     "field to draw")
    else:
        per_sample = max(analysis.totals.activation_bytes, 1) * 3  # outputs kept for backward, caches, gradients
        chunk = int(max(1, min(MAX_SAMPLES, min(CHUNK_BYTES, max_memory // 2) // per_sample)))
        erf = effective_field(analysis, params, x[:MAX_SAMPLES], layer, chunk)
    occ = None
    output = class_output(analysis)
    if output is None:
        notes.append("no output is a vector of class scores, so no occlusion map")
    else:
        fill = np.zeros(x.shape[1], x.dtype) if images else x.mean(axis=(0, 2, 3)).astype(x.dtype)
        text = ("the dataset's mean colour (0 after ImageNet normalisation: grey)" if images
                else "the batch's mean per channel")
        occ = occlusion(analysis, params, sample, output, fill, text, max_memory)
    return Probe(source, weights, sample[0], names[0], filters, maps, erf, occ, notes)
