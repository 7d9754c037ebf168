"""The NumPy executor's forward pass, layer type by layer type, against slow and obviously correct
references written here (explicit loops over tiny inputs), plus initialisation, shape checking,
memory release and the static path staying free of NumPy.

Each case is a tiny spec; the executor runs it keeping every activation, and each layer's output is
compared with its reference computed from the layer's own (kept) inputs.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest
import yaml

from archcheck import executor, kernels
from archcheck.executor import InputError, ShapeMismatch, forward, gradients, init_params, random_targets
from archcheck.layers.activation import Relu
from archcheck.layers.conv import Conv
from archcheck.pipeline import analyze
from archcheck.propagate import live_memory
from archcheck.rules._gradient_flow import describe
from archcheck.spec import INPUT

ROOT = Path(__file__).resolve().parent.parent


def build(tmp_path, input_shape, layers, name="net"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"input": list(input_shape), "layers": layers}, sort_keys=False))
    return analyze(path)


def random_params(analysis, seed=0, dtype="float64"):
    """Initial weights with every bias and statistic made non-trivial (they start at 0 and 1)."""
    rng = np.random.default_rng(seed + 100)
    params = init_params(analysis, seed=seed, dtype=dtype)
    for key, value in params.items():
        if key.endswith("running_var"):
            params[key] = (rng.random(value.shape) + 0.5).astype(dtype)
        elif not key.endswith(".weight") or "norm" in key:
            params[key] = rng.standard_normal(value.shape).astype(dtype)
    return params


def layer_params(params, name):
    return {k.rsplit(".", 1)[1]: v for k, v in params.items() if k.rsplit(".", 1)[0] == name}


# -- slow references -----------------------------------------------------------------------
def window_slices(o, k, s, d):
    return tuple(slice(oi * si, oi * si + di * (ki - 1) + 1, di) for oi, ki, si, di in zip(o, k, s, d))


def ref_conv(x, w, b, s, d, pads, groups):
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    N, F, Cg, K = x.shape[0], w.shape[0], w.shape[1], w.shape[2:]
    Fg = F // groups
    osz = [(xp.shape[2 + i] - d[i] * (K[i] - 1) - 1) // s[i] + 1 for i in range(len(K))]
    y = np.zeros((N, F, *osz))
    for n, f in itertools.product(range(N), range(F)):
        g = f // Fg
        for o in np.ndindex(*osz):
            window = xp[n, g * Cg:(g + 1) * Cg][(slice(None), *window_slices(o, K, s, d))]
            y[(n, f, *o)] = (window * w[f]).sum() + (b[f] if b is not None else 0)
    return y


def ref_convtranspose(x, w, b, s, d, pads, groups, out):
    N, Cin, *isz = x.shape
    Fg, K = w.shape[1], w.shape[2:]
    Cg = Cin // groups
    size = [max((i - 1) * si + di * (ki - 1) + 1, pb + o) for i, si, di, ki, (pb, _), o in zip(isz, s, d, K, pads, out)]
    full = np.zeros((N, groups * Fg, *size))
    for n, c in itertools.product(range(N), range(Cin)):
        g = c // Cg
        for i in np.ndindex(*isz):
            for k in np.ndindex(*K):
                pos = tuple(ii * si + ki * di for ii, si, ki, di in zip(i, s, k, d))
                full[(n, slice(g * Fg, (g + 1) * Fg), *pos)] += x[(n, c, *i)] * w[(c, slice(None), *k)]
    y = full[(slice(None), slice(None), *(slice(pb, pb + o) for (pb, _), o in zip(pads, out)))]
    return y + (b.reshape(-1, *(1,) * len(K)) if b is not None else 0)


def ref_local(x, w, b, s, d, pads):
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    rank = x.ndim - 2
    F, osz, K = w.shape[0], w.shape[1:1 + rank], w.shape[2 + rank:]
    y = np.zeros((x.shape[0], F, *osz))
    for n, f in itertools.product(range(x.shape[0]), range(F)):
        for o in np.ndindex(*osz):
            window = xp[n][(slice(None), *window_slices(o, K, s, d))]
            y[(n, f, *o)] = (window * w[(f, *o)]).sum() + (b[(f, *o)] if b is not None else 0)
    return y


def pool_window(o, k, s, pb, n):
    start = o * s - pb
    return max(start, 0), min(start + k, n), start


def ref_pool(x, layer, kind):
    g = layer.geometry(x.shape[1:])
    sizes, K, S, pads, osz = g.in_sizes, g.kernel, g.stride, g.pads, g.out_sizes
    y = np.zeros((*x.shape[:2], *osz))
    for o in np.ndindex(*osz):
        bounds = [pool_window(oi, ki, si, pb, n) for oi, ki, si, (pb, _), n in zip(o, K, S, pads, sizes)]
        window = x[(slice(None), slice(None), *(slice(lo, hi) for lo, hi, _ in bounds))]
        if kind == "max":
            y[(slice(None), slice(None), *o)] = window.max(axis=tuple(range(2, x.ndim)))
            continue
        if layer.count_include_pad:  # the window clipped to the padded input
            count = math.prod(min(st + k, n + pa) - max(st, -pb)
                              for (_, _, st), k, n, (pb, pa) in zip(bounds, K, sizes, pads))
        else:
            count = math.prod(hi - lo for lo, hi, _ in bounds)
        y[(slice(None), slice(None), *o)] = window.sum(axis=tuple(range(2, x.ndim))) / count
    return y


def ref_adaptive_pool(x, out_shape, kind):
    """Every output cell on its own, PyTorch's bounds worked out here: [floor(i n / m), ceil((i + 1) n / m))."""
    y = np.zeros((*x.shape[:2], *out_shape[1:]))
    for o in np.ndindex(*out_shape[1:]):
        cell = x[(slice(None), slice(None), *(slice(math.floor(i * n / m), math.ceil((i + 1) * n / m))
                                              for i, n, m in zip(o, x.shape[2:], out_shape[1:])))]
        pooled = cell.max(axis=tuple(range(2, x.ndim))) if kind == "max" else cell.mean(axis=tuple(range(2, x.ndim)))
        y[(slice(None), slice(None), *o)] = pooled
    return y


def ref_upsample(x, scale, mode):
    y = x
    for axis, f in enumerate(scale, start=2):
        n = y.shape[axis]
        parts = []
        for j in range(n * f):
            if mode == "nearest":
                parts.append(np.take(y, [j // f], axis=axis))
                continue
            src = max((j + 0.5) / f - 0.5, 0.0)
            i0 = int(math.floor(src))
            i1, lam = min(i0 + 1, n - 1), src - i0
            parts.append((1 - lam) * np.take(y, [i0], axis=axis) + lam * np.take(y, [i1], axis=axis))
        y = np.concatenate(parts, axis=axis)
    return y


def scalar(fn, x):
    return np.array([fn(v) for v in x.ravel()]).reshape(x.shape)


SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805
ACTIVATIONS = {
    "relu": lambda v, a: max(v, 0.0),
    "relu6": lambda v, a: min(max(v, 0.0), 6.0),
    "leaky_relu": lambda v, a: v if v > 0 else a.slope * v,
    "elu": lambda v, a: v if v > 0 else a.alpha * (math.exp(v) - 1),
    "selu": lambda v, a: SELU_S * (v if v > 0 else SELU_A * (math.exp(v) - 1)),
    "gelu": lambda v, a: v * 0.5 * (1 + math.erf(v / math.sqrt(2))),
    "sigmoid": lambda v, a: 1 / (1 + math.exp(-v)),
    "tanh": lambda v, a: math.tanh(v),
    "hardswish": lambda v, a: v * min(max(v + 3, 0.0), 6.0) / 6,
    "swish": lambda v, a: v / (1 + math.exp(-v)),
    "hardsigmoid": lambda v, a: min(max(v + 3, 0.0), 6.0) / 6,
    "mish": lambda v, a: v * math.tanh(math.log1p(math.exp(v))),
}


def reference(node, xs, p, out_shape, train=False):
    """The output of ``node`` for inputs ``xs`` and weights ``p``, computed slowly."""
    layer, x, t = node.layer, xs[0], node.type
    if t == "conv":
        g = layer.geometry(x.shape[1:])
        return ref_conv(x, p["weight"], p.get("bias"), g.stride, g.dilation, g.pads, layer.n_groups(g.channels))
    if t == "convtranspose":
        g = layer.geometry(x.shape[1:])
        return ref_convtranspose(x, p["weight"], p.get("bias"), g.stride, g.dilation, g.pads, layer.groups,
                                 g.out_sizes)
    if t == "locallyconnected":
        g = layer.geometry(x.shape[1:])
        return ref_local(x, p["weight"], p.get("bias"), g.stride, g.dilation, g.pads)
    if t in ("maxpool", "avgpool"):
        return ref_pool(x, layer, t[:3])
    if t in ("adaptiveavgpool", "adaptivemaxpool"):
        return ref_adaptive_pool(x, out_shape, t[8:11])
    if t in ("globalavgpool", "globalmaxpool"):
        y = np.zeros(x.shape[:2])
        for n, c in np.ndindex(*x.shape[:2]):
            y[n, c] = x[n, c].max() if t == "globalmaxpool" else x[n, c].sum() / x[n, c].size
        return y.reshape(*y.shape, *(1,) * (x.ndim - 2)) if layer.keepdims else y
    if t == "dense":
        y = np.zeros((x.shape[0], layer.units))
        for n, u in np.ndindex(*y.shape):
            y[n, u] = sum(x[n, i] * p["weight"][u, i] for i in range(x.shape[1])) + (p["bias"][u] if layer.bias else 0)
        return y
    if t == "batchnorm":
        y = np.empty_like(x)
        for c in range(x.shape[1]):
            v = x[:, c]
            mean, var = (v.mean(), v.var()) if train else (p["running_mean"][c], p["running_var"][c])
            w, b = p.get("weight", [1.0] * x.shape[1])[c], p.get("bias", [0.0] * x.shape[1])[c]
            y[:, c] = (v - mean) / math.sqrt(var + layer.eps) * w + b
        return y
    if t == "layernorm":
        y = np.empty_like(x)
        groups = [(n, slice(None), *i) for n in range(x.shape[0]) for i in np.ndindex(*x.shape[2:])] \
            if layer.over == "channels" and x.ndim > 2 else [(n,) for n in range(x.shape[0])]
        for index in groups:
            v = x[index]
            y[index] = (v - v.mean()) / math.sqrt(v.var() + layer.eps)
        if layer.affine:
            shape = (1, -1, *(1,) * (x.ndim - 2)) if layer.over == "channels" else (1, *x.shape[1:])
            y = y * p["weight"].reshape(shape) + p["bias"].reshape(shape)
        return y
    if t == "layerscale":
        return x * p["weight"].reshape(1, -1, *(1,) * (x.ndim - 2))
    if t in ("groupnorm", "instancenorm"):
        y = np.empty_like(x)
        size = x.shape[1] // layer.groups if t == "groupnorm" else 1
        for n, start in np.ndindex(x.shape[0], x.shape[1] // size):
            v = x[n, start * size:(start + 1) * size]
            y[n, start * size:(start + 1) * size] = (v - v.mean()) / math.sqrt(v.var() + layer.eps)
        if layer.affine:
            shape = (1, -1, *(1,) * (x.ndim - 2))
            y = y * p["weight"].reshape(shape) + p["bias"].reshape(shape)
        return y
    if t in ACTIVATIONS:
        return scalar(lambda v: ACTIVATIONS[t](v, layer), x)
    if t == "softmax":
        axis = layer.axis + 1
        y = np.empty_like(x)
        for index in np.ndindex(*(n for i, n in enumerate(x.shape) if i != axis)):
            sl = (*index[:axis], slice(None), *index[axis:])
            e = np.array([math.exp(v) for v in x[sl]])
            y[sl] = e / e.sum()
        return y
    if t in ("add", "multiply"):
        shape = np.broadcast_shapes(*(v.shape for v in xs))
        y = np.zeros(shape) if t == "add" else np.ones(shape)
        for index in np.ndindex(*shape):
            for v in xs:
                value = v[tuple(i if n > 1 else 0 for i, n in zip(index, v.shape))]
                y[index] = y[index] + value if t == "add" else y[index] * value
        return y
    if t == "concat":
        return np.concatenate(xs, axis=layer.axis + 1)
    if t in ("flatten", "reshape"):
        flat = np.array([x[(n, *i)] for n in range(x.shape[0]) for i in np.ndindex(*x.shape[1:])])
        return flat.reshape(x.shape[0], *out_shape)
    if t == "zeropad":
        pads = layer.zero_padding(x.shape[1:])
        y = np.zeros((*x.shape[:2], *(n + b + a for n, (b, a) in zip(x.shape[2:], pads))))
        for index in np.ndindex(*x.shape):
            y[(*index[:2], *(i + b for i, (b, _) in zip(index[2:], pads)))] = x[index]
        return y
    if t == "upsample":
        scale = layer.scale if isinstance(layer.scale, list) else [layer.scale] * (x.ndim - 2)
        return ref_upsample(x, scale, layer.mode)
    if t in ("identity", "dropout", "droppath"):
        return x
    if t == "slice":  # Python's slicing, which clamps, agrees with the layer wherever the layer accepts the range
        stop = x.shape[layer.axis + 1] if layer.stop is None else layer.stop
        return x[(slice(None),) * (layer.axis + 1) + (slice(layer.start, stop),)]
    if t == "channelshuffle":  # output channel i * groups + g is input channel g * (C / groups) + i
        per = x.shape[1] // layer.groups
        return x[:, [g * per + i for i in range(per) for g in range(layer.groups)]]
    if t in ("pixelshuffle", "pixelunshuffle"):  # input channel c r^d + offset in base r <-> block c at offset
        r, d = layer.factor, (x.ndim - 2 if t == "pixelunshuffle" else len(out_shape) - 1)
        space, depth = (np.zeros((x.shape[0], *out_shape)), x) if t == "pixelshuffle" else (x, None)
        if depth is None:
            depth = np.zeros((x.shape[0], *out_shape))
        for c, *pos in np.ndindex(*space.shape[1:]):
            channel = c * r**d + sum(p % r * r ** (d - 1 - k) for k, p in enumerate(pos))
            block = (slice(None), channel, *(p // r for p in pos))
            if t == "pixelshuffle":
                space[(slice(None), c, *pos)] = depth[block]
            else:
                depth[block] = space[(slice(None), c, *pos)]
        return space if t == "pixelshuffle" else depth
    raise AssertionError(f"no reference for {t}")


# -- the cases: (id, input shape, layers) ----------------------------------------------------
CASES = [
    ("conv1d", [3, 11], [{"conv": {"filters": 4, "kernel": 3, "stride": 2, "padding": 1}}]),
    ("conv1d-dilation-same", [2, 9], [{"conv": {"filters": 3, "kernel": 3, "dilation": 2, "padding": "same"}}]),
    ("conv2d", [3, 7, 8], [{"conv": {"filters": 4, "kernel": 3}}]),
    ("conv2d-groups-dilation-asymmetric", [4, 9, 8],
     [{"conv": {"filters": 6, "kernel": [3, 2], "stride": [2, 1], "dilation": [1, 2],
                "padding": [[1, 2], [0, 1]], "groups": 2}}]),
    ("conv2d-same-stride", [2, 7, 7], [{"conv": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    ("conv2d-depthwise", [4, 6, 6], [{"conv": {"filters": 4, "kernel": 3, "padding": 1, "groups": "depthwise"}}]),
    ("conv2d-depthwise-multiplier", [3, 6, 5], [{"conv": {"filters": 6, "kernel": 3, "groups": "depthwise"}}]),
    ("conv2d-one-input-per-group", [6, 5, 5], [{"conv": {"filters": 2, "kernel": 3, "groups": 2, "stride": 2}}]),
    ("conv2d-1x1", [5, 4, 4], [{"conv": {"filters": 3, "kernel": 1, "bias": False}}]),
    ("conv2d-1x1-stride", [5, 5, 5], [{"conv": {"filters": 3, "kernel": 1, "stride": 2}}]),
    ("conv2d-wide-padding", [2, 4, 4], [{"conv": {"filters": 2, "kernel": 2, "padding": 3}}]),
    ("conv3d", [2, 5, 6, 5], [{"conv": {"filters": 3, "kernel": 3, "stride": [1, 2, 2], "padding": 1}}]),
    ("convtranspose2d", [3, 4, 5], [{"convtranspose": {"filters": 2, "kernel": 4, "stride": 2, "padding": 1}}]),
    ("convtranspose2d-groups-output-padding", [4, 3, 3],
     [{"convtranspose": {"filters": 6, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2}}]),
    ("convtranspose1d-dilation", [2, 5], [{"convtranspose": {"filters": 3, "kernel": 3, "dilation": 2, "stride": 3}}]),
    ("convtranspose3d", [2, 3, 3, 3], [{"convtranspose": {"filters": 2, "kernel": 2, "stride": 2, "bias": False}}]),
    ("locallyconnected2d", [2, 6, 5], [{"locallyconnected": {"filters": 3, "kernel": 3, "stride": [1, 2],
                                                               "padding": 1}}]),
    ("locallyconnected1d", [3, 8], [{"locallyconnected": {"filters": 2, "kernel": 2, "stride": 2, "bias": False}}]),
    ("locallyconnected3d", [2, 3, 4, 3], [{"locallyconnected": {"filters": 2, "kernel": 2, "dilation": [1, 2, 1]}}]),
    ("maxpool2d", [2, 7, 7], [{"maxpool": {"kernel": 3, "stride": 2, "padding": 1}}]),
    ("maxpool2d-ceil", [2, 8, 8], [{"maxpool": {"kernel": 3, "stride": 2, "ceil_mode": True}}]),
    ("maxpool1d", [3, 9], ["maxpool"]),
    ("maxpool3d", [2, 4, 5, 5], [{"maxpool": {"kernel": [1, 2, 2]}}]),
    ("avgpool2d-include-pad", [2, 7, 7], [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1}}]),
    ("avgpool2d-exclude-pad-ceil", [2, 8, 7],
     [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}}]),
    ("avgpool2d-include-pad-ceil", [2, 8, 7],
     [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}}]),
    ("avgpool1d", [3, 10], [{"avgpool": {"kernel": 3, "stride": 2}}]),
    ("avgpool3d", [2, 4, 4, 4], [{"avgpool": 2}]),
    ("adaptiveavgpool2d", [2, 10, 7], [{"adaptiveavgpool": [7, 3]}]),  # cells overlap along H, slide along W
    ("adaptiveavgpool2d-divisible", [2, 8, 6], [{"adaptiveavgpool": [4, 3]}]),
    ("adaptiveavgpool1d", [3, 9], [{"adaptiveavgpool": 4}]),
    ("adaptiveavgpool3d-keep-and-one", [2, 3, 5, 4], [{"adaptiveavgpool": [None, 3, 1]}]),
    ("adaptiveavgpool-identity", [2, 4, 4], [{"adaptiveavgpool": 4}]),
    ("adaptivemaxpool2d", [2, 10, 7], [{"adaptivemaxpool": [7, 3]}]),
    ("adaptivemaxpool1d-to-one", [3, 7], [{"adaptivemaxpool": 1}]),
    ("adaptivemaxpool3d", [2, 5, 4, 6], [{"adaptivemaxpool": [3, 2, 4]}]),
    ("globalavgpool2d", [3, 4, 5], ["globalavgpool"]),
    ("globalavgpool3d-keepdims", [3, 2, 3, 4], [{"globalavgpool": {"keepdims": True}}]),
    ("globalmaxpool1d", [3, 7], ["globalmaxpool"]),
    ("globalmaxpool2d-keepdims", [3, 4, 4], [{"globalmaxpool": {"keepdims": True}}]),
    ("dense", [2, 3], ["flatten", {"dense": 4}, {"dense": {"units": 3, "bias": False}}]),
    ("batchnorm2d", [3, 4, 4], ["batchnorm"]),
    ("batchnorm1d-no-affine", [3, 6], [{"batchnorm": {"affine": False}}]),
    ("batchnorm-vector", [5, 1], ["flatten", "batchnorm"]),
    ("batchnorm3d", [2, 2, 3, 3], ["batchnorm"]),
    ("batchnorm-no-scale", [3, 4, 4], [{"batchnorm": {"scale": False}}]),
    ("batchnorm-no-center", [3, 6], [{"batchnorm": {"center": False}}]),
    ("groupnorm2d", [6, 3, 3], [{"groupnorm": {"groups": 3}}]),
    ("groupnorm-vector-no-affine", [4, 1], ["flatten", {"groupnorm": {"groups": 2, "affine": False}}]),
    ("groupnorm1d-one-group", [4, 5], [{"groupnorm": {"groups": 1, "eps": 0.01}}]),
    ("instancenorm2d", [3, 4, 4], ["instancenorm"]),
    ("instancenorm1d-affine", [3, 6], [{"instancenorm": {"affine": True}}]),
    ("instancenorm3d", [2, 2, 3, 3], ["instancenorm"]),
    ("layerscale2d", [3, 4, 4], [{"layerscale": {"init": 0.5}}]),
    ("layerscale-vector", [5, 1], ["flatten", "layerscale"]),
    ("layernorm-channels", [3, 4, 4], ["layernorm"]),
    ("layernorm-all", [3, 4, 4], [{"layernorm": {"over": "all"}}]),
    ("layernorm-vector-no-affine", [6, 1], ["flatten", {"layernorm": {"affine": False}}]),
    ("layernorm3d", [2, 3, 3, 3], ["layernorm"]),
    *[(f"activation-{a}", [3, 4, 4], [a]) for a in ACTIVATIONS],
    ("leaky_relu-slope", [3, 5], [{"leaky_relu": 0.2}]),
    ("elu-alpha", [3, 5], [{"elu": 0.5}]),
    ("softmax", [5, 1], ["flatten", "softmax"]),
    ("softmax-channels-of-map", [4, 3, 3], ["softmax"]),
    ("softmax-axis1", [3, 4, 2], [{"softmax": {"axis": 1}}]),
    ("add-residual", [3, 5, 5], [{"add": [[{"conv": {"filters": 3, "kernel": 3, "padding": 1}}], []]}]),
    ("add-broadcast-three", [3, 4, 4], [{"globalavgpool": {"keepdims": True}, "name": "g"},
                                        {"add": ["input", "g", "input"]}]),
    ("multiply-gate", [3, 4, 4], [{"globalavgpool": {"keepdims": True}, "name": "g"}, {"sigmoid": None, "name": "s"},
                                  {"multiply": ["input", "s"]}]),
    ("concat-channels", [2, 4, 4], [{"concat": [[{"conv": {"filters": 3, "kernel": 1}}], []]}]),
    ("concat-axis1", [2, 3, 4], [{"concat": {"branches": [[], [{"maxpool": {"kernel": [1, 1]}}]], "axis": 1}}]),
    ("flatten", [2, 3, 4], ["flatten", {"dense": 2}]),
    ("reshape", [2, 3, 4], [{"reshape": [4, -1]}]),
    ("zeropad2d", [2, 3, 4], [{"zeropad": [[1, 2], 0]}]),
    ("zeropad1d", [2, 5], [{"zeropad": 2}]),
    ("zeropad3d", [2, 2, 3, 2], [{"zeropad": [1, [0, 1], 2]}]),
    ("upsample2d-nearest", [2, 3, 4], [{"upsample": {"scale": [2, 3]}}]),
    ("upsample2d-linear", [2, 3, 4], [{"upsample": {"scale": [2, 3], "mode": "linear"}}]),
    ("upsample1d-linear", [2, 5], [{"upsample": {"scale": 4, "mode": "linear"}}]),
    ("upsample3d-linear", [1, 2, 3, 2], [{"upsample": {"scale": [2, 1, 3], "mode": "linear"}}]),
    ("identity-dropout", [3, 4], ["identity", "dropout"]),
    ("channelshuffle2d", [6, 3, 2], [{"channelshuffle": 3}]),
    ("channelshuffle-vector", [4, 2], ["flatten", {"channelshuffle": 2}]),
    ("pixelshuffle2d", [8, 2, 3], [{"pixelshuffle": 2}]),
    ("pixelshuffle1d", [6, 4], [{"pixelshuffle": 3}]),
    ("pixelshuffle3d", [16, 2, 1, 2], [{"pixelshuffle": 2}]),
    ("pixelunshuffle2d", [2, 4, 6], [{"pixelunshuffle": 2}]),
    ("pixelunshuffle1d", [2, 6], [{"pixelunshuffle": 3}]),
    ("pixelunshuffle3d", [1, 2, 4, 2], [{"pixelunshuffle": 2}]),
    ("droppath", [2, 3, 4], [{"droppath": 0.3}]),
    ("slice-channels", [6, 3, 2], [{"slice": {"start": 2, "stop": -1}}]),
    ("slice-crop2d", [2, 5, 4], [{"slice": {"start": 1, "stop": 3, "axis": 2}}]),
    ("slice-crop1d", [2, 7], [{"slice": {"start": -4, "axis": 1}}]),
    ("slice-crop3d", [1, 3, 4, 2], [{"slice": {"stop": 2, "axis": 1}}]),
    ("slice-vector", [4, 2], ["flatten", {"slice": {"start": 3, "stop": 7}}]),
    ("slice-split", [4, 3, 3], [{"concat": [[{"slice": {"stop": 2}}],
                                            [{"slice": {"start": 2}}, {"conv": {"filters": 2, "kernel": 1}}]]}]),
]


def run_case(tmp_path, input_shape, layers, *, batch=2, train=False, dtype="float64", seed=0):
    analysis = build(tmp_path, input_shape, layers)
    params = random_params(analysis, seed, dtype)
    x = (np.random.default_rng(seed).standard_normal((batch, *input_shape)) * 2).astype(dtype)
    return analysis, params, x, forward(analysis, params, x, keep=True, train=train)


@pytest.mark.parametrize("case_id,input_shape,layers", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_reference(tmp_path, case_id, input_shape, layers):
    analysis, params, x, values = run_case(tmp_path, input_shape, layers)
    for node in analysis.graph.order[1:]:
        expected = reference(node, [values[s] for s in node.inputs], layer_params(params, node.name),
                             analysis.layers[node.name].shape)
        assert values[node.name].dtype == np.float64
        np.testing.assert_allclose(values[node.name], expected, rtol=1e-10, atol=1e-12, err_msg=node.name)


@pytest.mark.parametrize("layers", [["batchnorm"], [{"batchnorm": {"affine": False, "momentum": 0.3}}]])
def test_batchnorm_training_uses_batch_statistics_and_updates_running_ones(tmp_path, layers):
    analysis = build(tmp_path, [3, 4, 4], layers)
    params = random_params(analysis)
    before = {k: v.copy() for k, v in params.items()}
    x = np.random.default_rng(1).standard_normal((4, 3, 4, 4)) * 3 + 1
    values = forward(analysis, params, x, keep=True, train=True)
    node = analysis.graph.order[1]
    expected = reference(node, [x], layer_params(before, node.name), (3, 4, 4), train=True)
    np.testing.assert_allclose(values[node.name], expected, atol=1e-12)
    m, n = node.layer.momentum, 4 * 4 * 4
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(params[f"{node.name}.running_mean"], (1 - m) * before[f"{node.name}.running_mean"]
                               + m * mean)
    np.testing.assert_allclose(params[f"{node.name}.running_var"], (1 - m) * before[f"{node.name}.running_var"]
                               + m * var)


def test_dropout_in_training_zeroes_and_rescales(tmp_path):
    analysis = build(tmp_path, [50, 40], [{"dropout": 0.3}])
    x = np.random.default_rng(0).random((4, 50, 40)) + 1
    y = forward(analysis, {}, x, train=True, seed=3)["dropout_1"]
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    assert 0.25 < 1 - kept.mean() < 0.35
    np.testing.assert_array_equal(forward(analysis, {}, x, train=True, seed=3)["dropout_1"], y)  # seeded
    np.testing.assert_array_equal(forward(analysis, {}, x)["dropout_1"], x)  # inference: identity


def test_droppath_in_training_drops_whole_samples_and_rescales(tmp_path):
    analysis = build(tmp_path, [3, 4, 4], [{"droppath": 0.3}])
    x = np.random.default_rng(0).random((400, 3, 4, 4)) + 1
    y = forward(analysis, {}, x, train=True, seed=3)["droppath_1"]
    kept = (y != 0).reshape(len(x), -1)
    assert (kept.all(axis=1) | ~kept.any(axis=1)).all()  # a sample is kept or dropped as a whole
    np.testing.assert_allclose(y[kept.all(axis=1)], x[kept.all(axis=1)] / 0.7)
    assert 0.23 < 1 - kept.all(axis=1).mean() < 0.37
    np.testing.assert_array_equal(forward(analysis, {}, x)["droppath_1"], x)  # inference: identity


@pytest.mark.parametrize("chunk", [1, 600, 6000])  # one output row; a few rows of a sample; a few samples
def test_chunked_im2col_gives_the_same_result(tmp_path, monkeypatch, chunk):
    layers = [{"conv": {"filters": 4, "kernel": 3, "stride": 2, "padding": 1}}, {"conv": {"filters": 5, "kernel": 1}},
              {"locallyconnected": {"filters": 2, "kernel": 2}}]
    analysis, params, x, whole = run_case(tmp_path, [3, 9, 9], layers, batch=5)
    targets = random_targets(analysis, 5, "mse", np.random.default_rng(1), dtype="float64")
    grads = gradients(analysis, params, x, targets, "mse")[2]
    monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk)
    chunked = forward(analysis, params, x, keep=True)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-12)
    for name, g in gradients(analysis, params, x, targets, "mse")[2].params.items():
        np.testing.assert_allclose(g, grads.params[name], rtol=1e-12, atol=1e-15, err_msg=name)


FOLDABLE = [{"conv": {"filters": 6, "kernel": 3, "padding": 1, "bias": False}}, "batchnorm",
            {"relu": None, "name": "r"}, {"conv": {"filters": 6, "kernel": 3, "padding": 1}}, "batchnorm", "swish",
            {"conv": {"filters": 6, "kernel": 1, "groups": "depthwise"}}, {"batchnorm": {"affine": False}},
            {"add": ["r", "batchnorm_3"]}, "hardswish", "globalavgpool", {"dense": 7}, "batchnorm", "sigmoid"]


def test_folding_and_writing_in_place_change_nothing_beyond_rounding(tmp_path):
    """Inference with batchnorms folded and layers writing over their inputs gives the values of every layer
    run as written (float64: to rounding), touches neither the weights nor the caller's batch, and a folding
    made once (fold_weights) serves any number of passes."""
    analysis = build(tmp_path, [4, 6, 6], FOLDABLE)
    plan = analysis.inference
    assert plan.folds == {"conv_1": "batchnorm_1", "conv_2": "batchnorm_2", "conv_3": "batchnorm_3",
                          "dense_1": "batchnorm_4"}
    assert set(plan.in_place) == {"r", "swish_1", "add_1", "hardswish_1", "sigmoid_1"}
    params = random_params(analysis)
    before = {k: v.copy() for k, v in params.items()}
    x = np.random.default_rng(0).standard_normal((3, 4, 6, 6))
    x0 = x.copy()
    written = forward(analysis, params, x, fold=False)["sigmoid_1"]
    assert plan.halved == {"swish_1": "conv_2", "sigmoid_1": "dense_1"}  # (their halving folded in too)
    reported = {}
    forward(analysis, params, x, on_layer=lambda node, y, s: reported.setdefault(node.name, y.copy()))
    as_written = {}
    forward(analysis, params, x, fold=False, on_layer=lambda node, y, s: as_written.setdefault(node.name, y.copy()))
    for name in ("batchnorm_2", "batchnorm_4"):  # made halved, reported as the layers as written make them
        np.testing.assert_allclose(reported[name], as_written[name], rtol=1e-14, atol=1e-15)
    folded = executor.fold_weights(analysis, params, "float64")
    for name in ("conv_1", "conv_2"):  # one group, a bias after folding: weights and bias laid out side by side
        arrays = folded.layers[name]
        assert arrays["product"].shape == (6, arrays["weight"][0].size + 1)
        assert np.shares_memory(arrays["weight"], arrays["product"]) and arrays["bias"].base is arrays["product"]
    assert "product" not in folded.layers["conv_3"]  # (depthwise: the bias is not one column of a product)
    for fold in (True, folded, folded):
        np.testing.assert_allclose(forward(analysis, params, x, fold=fold)["sigmoid_1"], written, rtol=1e-14,
                                   atol=1e-15)
    np.testing.assert_array_equal(x, x0)
    for k, v in params.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_an_activation_reads_its_input_halved_by_a_layer_with_no_batchnorm_to_fold(tmp_path):
    """With nothing else to fold, the plan still takes the halving into the layer before a swish or a sigmoid."""
    analysis = build(tmp_path, [3, 9, 9], [{"conv": {"filters": 5, "kernel": 3}}, "swish", "globalavgpool",
                                           {"dense": 4}, "sigmoid"])
    plan = analysis.inference
    assert not plan.folds and not plan.kernels and plan.halved == {"swish_1": "conv_1", "sigmoid_1": "dense_1"}
    params = random_params(analysis)
    x = np.random.default_rng(2).standard_normal((3, 3, 9, 9))
    np.testing.assert_allclose(forward(analysis, params, x)["sigmoid_1"],
                               forward(analysis, params, x, fold=False)["sigmoid_1"], rtol=1e-14, atol=1e-15)


def test_training_and_gradients_run_every_layer_as_written(tmp_path):
    analysis = build(tmp_path, [4, 6, 6], FOLDABLE)
    assert executor.plan_for(analysis) is analysis.inference
    for kwargs in ({"train": True}, {"grad": True}, {"keep": True}, {"fold": False}):
        plan = executor.plan_for(analysis, **kwargs)
        assert not plan.folds and not plan.in_place and not plan.kernels
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((3, 4, 6, 6))
    targets = random_targets(analysis, 3, "mse", np.random.default_rng(1), dtype="float64")
    seen = []
    for train in (True, False):
        value, _, grads = gradients(analysis, params, x, targets, "mse", train=train)
        tape = executor.Tape()
        outputs = forward(analysis, params, x, train=train, tape=tape, fold=True,
                          on_layer=lambda node, y, s: seen.append(node.name))
        again = executor.backward(analysis, params, tape, executor.loss(analysis, outputs, targets, "mse")[1])
        for k, g in grads.params.items():
            np.testing.assert_array_equal(again.params[k], g, err_msg=k)
    assert "conv_1" in seen  # every layer ran as written


def direct_and_winograd(rng, n, c, f, sizes, pads, dtype, bias=True, chunk=2**10):
    x = rng.standard_normal((n, c, *sizes)).astype(dtype)
    w = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    out = tuple(s + pb + pa - 2 for s, (pb, pa) in zip(sizes, pads))
    return (kernels.conv(x, w, (1, 1), (1, 1), pads, out, bias=b),
            kernels.winograd(x, kernels.winograd_weights(w), pads, out, b, chunk))


@pytest.mark.parametrize("budget", [1, 2, 3, 10**6])  # tiles a chunk: a row of tiles; a few rows or samples; all
@pytest.mark.parametrize("n, c, f, sizes, pads", [
    (2, 3, 5, (7, 9), ((1, 1), (1, 1))),  # output 7x9: the last tiles partly outside
    (3, 4, 2, (8, 8), ((0, 0), (0, 0))),  # 'valid': 6x6
    (1, 2, 3, (13, 5), ((2, 0), (0, 1))),  # asymmetric padding
    (2, 8, 8, (4, 4), ((1, 1), (1, 1))),  # exactly one tile
    (1, 3, 4, (3, 3), ((0, 0), (0, 0))),  # a 1x1 output
    (3, 2, 3, (4, 4), ((0, 0), (0, 0))),  # one tile a sample: chunks of 2 samples leave a last one of 1
])
def test_winograd_computes_the_correlation(budget, n, c, f, sizes, pads):
    """Winograd's F(4x4, 3x3) gives the direct correlation to float64 rounding, in any chunking, with or without
    a bias; the output has the propagator's shape."""
    rng = np.random.default_rng(n * 100 + c)
    for bias in (True, False):
        direct, fast = direct_and_winograd(rng, n, c, f, sizes, pads, np.float64, bias, budget)
        assert fast.shape == direct.shape
        np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-13 * np.abs(direct).max())


def test_winograd_in_float32_rounds_within_its_bound():
    """In float32 its rounding error stays within 1e-5 of the largest output (the direct product's is ~1e-7):
    the bound the inference plan's choice of float32 only rests on."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64, 20, 20))
    w = rng.standard_normal((64, 64, 3, 3)) / 24
    exact = kernels.conv(x, w, (1, 1), (1, 1), ((1, 1), (1, 1)), (20, 20))
    fast = kernels.winograd(x.astype(np.float32), kernels.winograd_weights(w).astype(np.float32), ((1, 1), (1, 1)),
                            (20, 20))
    assert np.abs(fast - exact).max() <= 1e-5 * np.abs(exact).max()


@pytest.mark.parametrize("conv, batch, dtype, chosen", [
    ({"filters": 32, "kernel": 3, "padding": 1}, 2, "float32", True),
    ({"filters": 32, "kernel": 3}, 2, "float32", True),  # unpadded: 14x14
    ({"filters": 31, "kernel": 3, "padding": 1}, 2, "float32", False),  # too few output channels
    ({"filters": 32, "kernel": 3, "padding": 1}, 2, "float64", False),  # float64: every conv direct
    ({"filters": 32, "kernel": 3, "padding": 1}, 1, "float32", False),  # 16 tiles of 4x4: too few
    ({"filters": 32, "kernel": 3, "padding": 1, "stride": 2}, 8, "float32", False),
    ({"filters": 32, "kernel": 3, "padding": 2, "dilation": 2}, 2, "float32", False),
    ({"filters": 32, "kernel": 3, "padding": 1, "groups": 2}, 2, "float32", False),
    ({"filters": 32, "kernel": 5, "padding": 2}, 2, "float32", False),
    ({"filters": 16384, "kernel": 3, "padding": 1}, 2, "float32", False),  # a row of tiles: 2 x 36 x 16384 x 4 x 4 B
])
def test_the_inference_plan_runs_winograd_where_it_pays(tmp_path, conv, batch, dtype, chosen):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [32, 16, 16], "layers": [{"conv": conv}]}))
    plan = analyze(path, batch=batch, dtype=dtype).inference
    assert plan.kernels == ({"conv_1": "Winograd F(4x4, 3x3)"} if chosen else {})


@pytest.mark.parametrize("batch, chosen", [(4, True), (2, False)])
def test_winograd_needs_fewer_tiles_in_a_batch_of_several_samples(tmp_path, batch, chosen):
    """Four samples of 8x8 maps make 16 tiles of 4x4, enough for Winograd where a batch's parts run BLAS on one
    thread each; one sample needs 32 (the test above: 16 tiles of one 16x16 map run as written)."""
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [32, 8, 8], "layers": [{"conv": {"filters": 32, "kernel": 3,
                                                                               "padding": 1}}]}))
    plan = analyze(path, batch=batch, dtype="float32").inference
    assert plan.kernels == ({"conv_1": "Winograd F(4x4, 3x3)"} if chosen else {})


def test_a_forward_with_winograd_agrees_with_every_layer_as_written(tmp_path):
    """The inference plan's Winograd convolutions (with a batchnorm folded in, a bias, a 'same' border) give the
    layers' values as written to float32 rounding, whether the weights are prepared once or per pass."""
    layers = [{"conv": {"filters": 40, "kernel": 3, "padding": 1, "bias": False}}, "batchnorm", "relu",
              {"conv": {"filters": 48, "kernel": 3, "padding": "same"}}, "relu", "globalavgpool", {"dense": 5}]
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [3, 18, 18], "layers": [{"conv": {"filters": 36, "kernel": 3}}, *layers]}))
    analysis = analyze(path, batch=4)
    assert sorted(analysis.inference.kernels) == ["conv_2", "conv_3"]
    params = {k: v.astype(np.float32) for k, v in random_params(analysis).items()}
    x = np.random.default_rng(0).standard_normal((4, 3, 18, 18)).astype(np.float32)
    written = forward(analysis, params, x, fold=False)["dense_1"]
    prepared = executor.fold_weights(analysis, params, "float32")
    assert set(prepared.layers["conv_3"]) == {"weight", "bias", "winograd"}
    fast = forward(analysis, params, x, fold=prepared)["dense_1"]
    np.testing.assert_allclose(fast, written, rtol=0, atol=1e-5 * np.abs(written).max())
    np.testing.assert_array_equal(forward(analysis, params, x)["dense_1"], fast)


def direct_and_f2(rng, n, c, f, sizes, pads, dtype, chunk):
    """The correlation, its input gradient and its filters' gradient, as written and by Winograd's F(2x2, 3x3)."""
    x = rng.standard_normal((n, c, *sizes)).astype(dtype)
    w = (rng.standard_normal((f, c, 3, 3)) / (3 * c ** 0.5)).astype(dtype)
    out = tuple(s + pb + pa - 2 for s, (pb, pa) in zip(sizes, pads))
    dy = rng.standard_normal((n, f, *out)).astype(dtype)
    geometry = (1, 1), (1, 1), pads
    direct = (kernels.conv(x, w, *geometry, out), kernels.conv_grad_input(dy, w, sizes, *geometry),
              kernels.conv_grad_weight(x, dy, (3, 3), *geometry))
    fast = (kernels.winograd(x, kernels.winograd_weights(w, kernels.F2X2), pads, out, None, chunk, kernels.F2X2, True),
            kernels.conv_grad_input(dy, w, sizes, *geometry, algorithm=kernels.F2X2, chunk=chunk),
            kernels.conv_grad_weight(x, dy, (3, 3), *geometry, algorithm=kernels.F2X2, chunk=chunk))
    return direct, fast


@pytest.mark.parametrize("chunk", [1, 3, 10**6])  # tiles a chunk: a row of tiles; a few rows or samples; all
@pytest.mark.parametrize("n, c, f, sizes, pads", [
    (2, 3, 5, (7, 9), ((1, 1), (1, 1))),  # odd output 7x9: the last tiles partly outside
    (3, 4, 2, (8, 8), ((0, 0), (0, 0))),  # 'valid': 6x6
    (1, 2, 3, (13, 5), ((2, 0), (0, 1))),  # asymmetric padding
    (2, 3, 4, (6, 6), ((2, 2), (2, 2))),  # padded by 2: the input gradient's correlation is unpadded
    (1, 3, 4, (3, 3), ((0, 0), (0, 0))),  # a 1x1 output
    (3, 2, 3, (4, 4), ((0, 0), (0, 0))),  # one tile a sample: chunks of 2 samples leave a last one of 1
])
def test_winograd_f2_computes_the_correlation_and_both_gradients(chunk, n, c, f, sizes, pads):
    """Winograd's F(2x2, 3x3), the forward, the input gradient (a full correlation with the rotated filter) and
    the filters' gradient (in its domain), give the direct ones to float64 rounding in any chunking."""
    direct, fast = direct_and_f2(np.random.default_rng(n * 100 + c), n, c, f, sizes, pads, np.float64, chunk)
    for name, a, b in zip(("forward", "input gradient", "weight gradient"), direct, fast):
        assert b.shape == a.shape, name
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-13 * np.abs(a).max(), err_msg=name)


def test_products_in_blocks_of_columns_within_the_small_product_bound(monkeypatch):
    """``_in_blocks`` cuts a product's columns into the fewest equal blocks within ``SMALL_PRODUCT`` (35 columns,
    at most 6 a block: 7 blocks of 5), and one ``np.matmul`` of the stack makes the whole product."""
    monkeypatch.setattr(kernels, "SMALL_PRODUCT", 2 * 3 * 6)
    rng = np.random.default_rng(0)
    a, b, out = rng.standard_normal((2, 3)), rng.standard_normal((3, 35)), np.zeros((2, 35))
    blocks, into = kernels._in_blocks(2, b, out)
    assert blocks.shape == (7, 3, 5) and into.shape == (7, 2, 5)
    np.matmul(a, blocks, out=into)
    np.testing.assert_allclose(out, a @ b, rtol=1e-15)


@pytest.mark.parametrize("small", [16 * 16 * 5, 16 * 4 * 7, 1])  # blocks of the transforms' columns, down to one
def test_winograd_f2_with_its_transforms_in_blocks(monkeypatch, small):
    """Winograd's transforms made in blocks of columns give the direct correlation and both gradients."""
    monkeypatch.setattr(kernels, "SMALL_PRODUCT", small)
    direct, fast = direct_and_f2(np.random.default_rng(1), 2, 3, 4, (7, 9), ((1, 1), (1, 1)), np.float64, 3)
    for name, a, b in zip(("forward", "input gradient", "weight gradient"), direct, fast):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-13 * np.abs(a).max(), err_msg=name)


def test_winograd_f2_in_float32_rounds_as_the_direct_product():
    """In float32, F(2x2, 3x3)'s forward and gradients are as close to the exact values as the direct ones (within
    2x their error; F(4x4, 3x3)'s is ~50x): a pass for gradients may run it without rounding differently."""
    rng = np.random.default_rng(0)
    exact, _ = direct_and_f2(rng, 4, 64, 64, (20, 20), ((1, 1), (1, 1)), np.float64, 64)
    direct, fast = direct_and_f2(np.random.default_rng(0), 4, 64, 64, (20, 20), ((1, 1), (1, 1)), np.float32, 64)
    for name, e, a, b in zip(("forward", "input gradient", "weight gradient"), exact, direct, fast):
        scale = np.abs(e).max()
        assert np.abs(b - e).max() / scale <= 2 * np.abs(a - e).max() / scale + 1e-7, name


@pytest.mark.parametrize("input_, conv, dtype, chosen", [
    ([32, 10, 10], {"filters": 32, "kernel": 3, "padding": 1}, "float32", True),
    ([32, 12, 12], {"filters": 32, "kernel": 3}, "float32", True),  # unpadded: 10x10
    ([32, 8, 8], {"filters": 32, "kernel": 3, "padding": 2}, "float32", True),  # 10x10, padded by 2
    ([32, 9, 9], {"filters": 32, "kernel": 3, "padding": 1}, "float32", False),  # 9x9 maps: too small
    ([32, 10, 10], {"filters": 32, "kernel": 3, "padding": 1}, "float64", False),  # float64: as written
    ([32, 10, 10], {"filters": 31, "kernel": 3, "padding": 1}, "float32", False),  # too few channels
    ([32, 20, 20], {"filters": 32, "kernel": 3, "padding": 1, "stride": 2}, "float32", False),
    ([32, 12, 12], {"filters": 32, "kernel": 3, "padding": 2, "dilation": 2}, "float32", False),
    ([32, 10, 10], {"filters": 32, "kernel": 3, "padding": 1, "groups": 2}, "float32", False),
    ([32, 6, 6], {"filters": 32, "kernel": 3, "padding": 3}, "float32", False),  # a full correlation would crop
    ([32, 10, 10], {"filters": 32, "kernel": 5, "padding": 2}, "float32", False),
])
def test_a_pass_for_gradients_runs_winograd_f2_where_it_pays(tmp_path, input_, conv, dtype, chosen):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": input_, "layers": [{"conv": conv}]}))
    assert analyze(path, dtype=dtype).gradient_kernels(dtype) == ({"conv_1": "Winograd F(2x2, 3x3)"} if chosen else {})


@pytest.mark.parametrize("threads", [1, 2])
def test_a_training_step_with_winograd_f2_rounds_as_every_layer_as_written(tmp_path, monkeypatch, threads):
    """A float32 training step whose 3x3 convolutions run by F(2x2, 3x3) stays within float32's rounding of the exact
    (float64) step, as the same step with every layer as written does: the loss, the outputs and every gradient
    within 1e-6 of their largest value, or 4x the error of the step as written where that is larger (which BLAS
    rounds how differs between versions; F(4x4, 3x3)'s larger error shows on larger maps, the test above)."""
    layers = [{"conv": {"filters": 32, "kernel": 3, "padding": 1, "bias": False}}, "batchnorm", "relu",
              {"conv": {"filters": 40, "kernel": 3, "padding": 1}}, "relu", "globalavgpool", {"dense": 5}]
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [3, 12, 12], "layers": [{"conv": {"filters": 32, "kernel": 1}}, *layers]}))
    analysis = analyze(path, batch=4)
    assert sorted(analysis.gradient_kernels("float32")) == ["conv_2", "conv_3"]
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12))
    targets = random_targets(analysis, 4, "cross-entropy", np.random.default_rng(1))
    exact = gradients(analysis, params, x, targets, threads=threads)
    as_float32 = {k: v.astype(np.float32) for k, v in params.items()}
    fast = gradients(analysis, as_float32, x.astype(np.float32), targets, threads=threads)
    monkeypatch.setattr(Conv, "WINOGRAD_GRADIENT_SIDE", 10**6)  # every convolution as written
    assert analysis.gradient_kernels("float32") == {}
    written = gradients(analysis, as_float32, x.astype(np.float32), targets, threads=threads)

    def error(a, b):
        return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30)

    def within(a, b, exact):
        return error(a, exact) <= max(4 * error(b, exact), 1e-6)

    assert within(fast[0], written[0], exact[0])  # the loss
    assert within(fast[1]["dense_1"], written[1]["dense_1"], exact[1]["dense_1"])
    for name, g in exact[2].params.items():
        assert within(fast[2].params[name], written[2].params[name], g), name


@pytest.mark.parametrize("channels, multiplier, sizes, kernel, stride, dilation, pads", [
    (4, 1, (30, 50), 3, 1, 1, 1),  # flat padded lines (stride 1, rows of 48 or more)
    (4, 1, (30, 52), 3, 1, 2, 2),  # ... dilated
    (5, 1, (29, 53), 5, 1, 1, (0, 2)),  # ... a 5x5 kernel, asymmetric padding
    (2, 1, (6, 7, 50), 3, 1, 1, 1),  # ... in 3-D
    (3, 1, (60,), 3, 1, 1, 1),  # ... in 1-D
    (3, 2, (30, 50), 3, 1, 1, 1),  # two outputs per channel: a row at a time
    (3, 2, (30, 101), 3, 2, 1, 1),  # ... strided
    (4, 1, (60, 100), 3, 2, 1, 1),  # stride 2: flat lines of the input's phases
    (4, 1, (31, 103), 5, 2, 1, (2, 1)),  # ... 5x5, asymmetric padding, an odd size
    (3, 1, (40, 110), 3, 2, 2, 0),  # ... dilated (one phase per axis), the last column never read
    (2, 1, (9, 7, 100), 3, 2, 1, 1),  # ... in 3-D
    (3, 1, (160,), 4, 3, 1, 1),  # ... stride 3 in 1-D, an even kernel
    (4, 1, (10, 9), 3, 1, 1, 1),  # short rows: banded products
    (3, 2, (11, 13), 5, 2, 1, (2, 1)),  # ... strided, two outputs per channel, asymmetric padding
    (5, 1, (12, 20), 3, 1, 2, 0),  # ... dilated, unpadded
    (2, 1, (5, 6, 7), 3, 1, 1, 1),  # ... in 3-D
    (3, 3, (40,), 7, 3, 1, 3),  # ... in 1-D
])
def test_depthwise_layouts_compute_the_correlation(channels, multiplier, sizes, kernel, stride, dilation, pads):
    """Each of the depthwise convolution's layouts gives the per-offset weighted sum of ``_conv_by_offsets`` (the
    grouped correlation written out)."""
    rng = np.random.default_rng(channels)
    r = len(sizes)
    pads = [pads if isinstance(pads, tuple) else (pads, pads)] * r
    x = rng.standard_normal((3, channels, *sizes))
    w = rng.standard_normal((channels * multiplier, 1, *(kernel,) * r))
    b = rng.standard_normal(channels * multiplier)
    out = tuple((n + pb + pa - dilation * (kernel - 1) - 1) // stride + 1 for n, (pb, pa) in zip(sizes, pads))
    expected = kernels._conv_by_offsets(kernels.pad(x, pads), w.reshape(channels, multiplier, 1, -1), (kernel,) * r,
                                        (stride,) * r, (dilation,) * r, out)
    expected = expected.reshape(3, -1, *out) + b.reshape(-1, *(1,) * r)
    got = kernels.conv(x, w, (stride,) * r, (dilation,) * r, pads, out, groups=channels, bias=b)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels, filters, sizes, kernel, groups, chunk", [
    (6, 20, (12, 12), 1, 1, None),  # a 1x1 expansion multiplied as it is: copied under a row of ones
    (20, 6, (12, 12), 1, 1, None),  # ... a reduction: no copy, the bias added after
    (6, 20, (5, 5), 1, 1, None),  # ... small maps: samples side by side, the row free
    (6, 20, (70, 70), 1, 1, 40000),  # ... beyond the budget: not copied, the bias added after
    (3, 8, (9, 11), 3, 1, None),  # im2col, every sample in one chunk
    (3, 8, (9, 11), 3, 1, 50000),  # ... chunks of two samples, the last of one (the row of ones moves)
    (3, 8, (9, 11), 3, 1, 6000),  # ... one sample in runs of two output rows, the last of one
    (4, 8, (9, 11), 3, 2, None),  # grouped: the bias added after
    (5, 5, (9, 11), 3, 5, None),  # depthwise on short rows: the bands end in the bias
    (5, 10, (7, 9), 3, 5, 2000),  # ... two outputs per channel, in chunks
    (4, 4, (6, 60), 3, 4, None),  # ... on long rows: the bias added as the output is stored
])
def test_a_bias_added_within_the_product_is_the_bias_added_after(monkeypatch, channels, filters, sizes, kernel,
                                                                  groups, chunk):
    """An inference plan's convolutions add the bias within the matrix product (a row of ones under the
    columns, the bias one more column of the weights) where a copy makes that free or small: the same values as
    adding it after the product, in every layout and chunking."""
    rng = np.random.default_rng(len(sizes) * channels + filters)
    x = rng.standard_normal((5, channels, *sizes))
    w = rng.standard_normal((filters, channels // groups, kernel, kernel))
    b = rng.standard_normal(filters)
    pads = [(kernel // 2, kernel // 2)] * 2
    if chunk is not None:
        monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk)
    after = kernels.conv(x, w, (1, 1), (1, 1), pads, sizes, groups, b)
    within = kernels.conv(x, w, (1, 1), (1, 1), pads, sizes, groups, b, bias_in_product=True)
    np.testing.assert_allclose(within, after, rtol=1e-13, atol=1e-13)
    if groups == 1:  # the weights and bias laid out as one matrix once (Conv.laid_out), not on every call
        product = np.concatenate([w.reshape(filters, -1), b.reshape(-1, 1)], axis=1)
        made_once = kernels.conv(x, w, (1, 1), (1, 1), pads, sizes, groups, b, bias_in_product=True, product=product)
        np.testing.assert_array_equal(made_once, within)
    reference = kernels.conv(x, w, (1, 1), (1, 1), pads, sizes, groups) + b.reshape(-1, 1, 1)
    np.testing.assert_allclose(within, reference, rtol=1e-13, atol=1e-13)


def test_a_bias_is_added_after_a_product_whose_output_is_smaller_than_its_weights(monkeypatch):
    """A squeeze-and-excitation's 1x1 convolution on a 1x1 map makes fewer values per filter than it has weights:
    copying the weights together with the bias would cost more than adding the bias after, so it is added after,
    unless the inference plan laid them out once (``product``)."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((4, 96, 1, 1)), rng.standard_normal((24, 96, 1, 1)), rng.standard_normal(24)
    reference = (w.reshape(24, 96) @ x.reshape(4, 96).T).T.reshape(4, 24, 1, 1) + b.reshape(1, 24, 1, 1)
    copies = []
    concatenate = np.concatenate
    monkeypatch.setattr(np, "concatenate", lambda arrays, **kw: copies.append(kw) or concatenate(arrays, **kw))
    y = kernels.conv(x, w, (1, 1), (1, 1), [(0, 0)] * 2, (1, 1), 1, b, bias_in_product=True)
    np.testing.assert_allclose(y, reference, rtol=1e-13, atol=1e-13)
    assert copies == []
    wide, w3 = rng.standard_normal((4, 96, 24, 24)), rng.standard_normal((24, 96, 3, 3))
    kernels.conv(wide, w3, (1, 1), (1, 1), [(1, 1)] * 2, (24, 24), 1, b, bias_in_product=True)
    assert len(copies) == 1  # (2,304 values per filter against 864 weights: copied together, under im2col's ones)


def test_a_convolution_pads_its_input_a_run_of_samples_at_a_time(monkeypatch):
    """im2col's convolutions pad a run of samples within the chunk budget at a time (at least one sample), not the
    whole batch: a padded copy of the batch would be alive beside the tensors the predicted peak counts."""
    import tracemalloc

    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 32, 40, 40)).astype(np.float32)
    w = rng.standard_normal((32, 8, 3, 3)).astype(np.float32)  # (4 groups: not by Winograd, nor depthwise)
    reference = kernels.conv(x, w, (1, 1), (1, 1), [(1, 1)] * 2, (40, 40), 4)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 2**18)  # (a padded sample is 226 KB: one at a time)
    tracemalloc.start()
    y = kernels.conv(x, w, (1, 1), (1, 1), [(1, 1)] * 2, (40, 40), 4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)  # (other chunks: float32 rounding)
    padded_batch = 6 * 32 * 42 * 42 * 4
    assert peak - y.nbytes < padded_batch / 2  # (one padded sample, the columns and a product: about 1 MB)


@pytest.mark.parametrize("sizes, kernel, stride, dilation, pads, groups", [
    ((23, 17), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 1),
    ((23, 17), (5, 3), (2, 1), (1, 1), [(2, 1), (0, 3)], 2),  # (asymmetric pads, a stride along the rows)
    ((24, 9), (3, 3), (1, 2), (2, 1), [(2, 2), (1, 1)], 4),  # (dilated along the rows)
    ((31,), (7,), (3,), (1,), [(3, 2)], 1),  # 1-D
    ((9, 8, 7), (3, 3, 3), (1, 1, 1), (1, 1, 1), [(1, 1)] * 3, 2),  # 3-D
])
def test_a_sample_larger_than_the_budget_is_padded_a_band_of_output_rows_at_a_time(monkeypatch, sizes, kernel,
                                                                                  stride, dilation, pads, groups):
    """Where one padded sample is larger than the chunk budget, the convolution pads bands of its output rows
    (with the rows each band's windows reach) and writes each band's outputs in place: the values of the whole
    sample padded at once, in every geometry."""
    rng = np.random.default_rng(len(sizes) * 10 + groups)
    x = rng.standard_normal((3, 8, *sizes))
    w = rng.standard_normal((8, 8 // groups, *kernel))
    b = rng.standard_normal(8)
    out = tuple((n + pb + pa - d * (k - 1) - 1) // s + 1 for n, (pb, pa), k, s, d in zip(sizes, pads, kernel, stride,
                                                                                          dilation))
    whole = kernels.conv(x, w, stride, dilation, pads, out, groups, b, bias_in_product=True)
    bands = []
    padded = kernels.pad
    monkeypatch.setattr(kernels, "pad", lambda v, p, *a: bands.append(v.shape) or padded(v, p, *a))
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 8 * 8 * math.prod(n + 4 for n in sizes[1:]) * 5)  # (a few rows)
    banded = kernels.conv(x, w, stride, dilation, pads, out, groups, b, bias_in_product=True)
    np.testing.assert_allclose(banded, whole, rtol=1e-12, atol=1e-12)
    assert len(bands) > 3 and all(shape[0] == 1 and shape[2] < sizes[0] for shape in bands)


def test_a_thread_keeps_its_workers_for_its_next_block():
    """``threads``: the calling thread's workers are the same from one block to the next, also after a part failed,
    and another calling thread has its own."""
    def workers():
        with kernels.threads(3):
            def name(rows):
                kernels.batch_total(1)  # (every part at once: a meeting)
                return threading.current_thread().name

            return set(kernels.side_by_side(3, name))

    def fail(rows):
        if rows.start:
            raise ValueError("a part failed")
        return rows

    first = workers()
    assert len(first) == 3 and threading.current_thread().name in first
    with kernels.threads(3), pytest.raises(ValueError, match="a part failed"):
        kernels.side_by_side(3, fail)
    assert workers() == first
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(workers()))
    thread.start()
    thread.join()
    assert len(elsewhere[0]) == 3 and not elsewhere[0] & first


@pytest.mark.skipif(sys.platform != "linux", reason="forks")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # (Python 3.12+, as meant)
def test_a_forked_child_gets_workers_of_its_own():
    """The workers a thread keeps are not its forked child's: the child's block starts its own instead of waiting
    on threads it does not have."""
    import multiprocessing

    with kernels.threads(2):
        kernels.side_by_side(2, lambda rows: kernels.batch_total(1))
    child = multiprocessing.get_context("fork").Process(target=_a_block_on_two_threads)
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def _a_block_on_two_threads():
    with kernels.threads(2):
        assert kernels.side_by_side(2, lambda rows: kernels.batch_total(1)) == [2, 2]


def test_a_thread_lends_its_scratch_again_one_block_at_a_time(monkeypatch):
    """``lent``: a key's array comes back to the thread's next block when large enough, never to two open blocks at
    once, never to another thread, and is not kept beyond ``KEPT_BYTES``; im2col's columns in a pass for gradients
    are such an array."""
    monkeypatch.setattr(kernels, "KEPT_BYTES", 4000)
    with kernels.lent("k", 100, np.float32) as a:
        assert a.shape == (100,) and a.dtype == np.float32
        with kernels.lent("k", 100, np.float32) as nested:
            assert not np.shares_memory(a, nested)
    with kernels.lent("k", 50, np.float64) as again:  # (the same 400 bytes)
        assert np.shares_memory(again, a) and again.dtype == np.float64
    with kernels.lent("k", 200, np.float32) as larger:
        assert not np.shares_memory(larger, a)
    with kernels.lent("k", 10, np.float32) as small:
        assert np.shares_memory(small, larger)
    with kernels.lent("k", 2000, np.float32) as huge:  # 8000 bytes: lent, not kept
        pass
    with kernels.lent("k", 200, np.float32) as after:
        assert not np.shares_memory(after, huge) and np.shares_memory(after, larger)
    elsewhere = []

    def other_thread():
        with kernels.lent("k", 10, np.float32) as theirs:
            elsewhere.append(np.shares_memory(theirs, larger))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert elsewhere == [False]
    monkeypatch.setattr(kernels, "KEPT_BYTES", 2**30)  # (whatever the thread keeps from the tests before)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    first, second, inference = ([cols for *_, cols in kernels.im2col(x, (3, 3), (1, 1), (1, 1), (4, 4), columns=c)]
                                for c in (kernels.GRADIENT_COLUMNS, kernels.GRADIENT_COLUMNS, 0))
    assert np.shares_memory(first[0], second[0])  # a pass for gradients: the thread's columns again
    assert not np.shares_memory(first[0], inference[0])  # an inference pass: its own, as its peak memory counts

    def kept_after(kept):  # what a new thread keeps after one input gradient (or transposed convolution's forward)
        found = []

        def run():
            dy, w = np.ones((2, 6, 4, 4)), np.ones((6, 3, 3, 3))
            kernels.conv_grad_input(dy, w, (8, 8), (2, 2), (1, 1), ((1, 0), (1, 0)), kept=kept)
            found.extend(kernels._local.__dict__.get("kept", {}))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return found

    assert kept_after(True) == ["scatter"] and kept_after(False) == []


@pytest.mark.parametrize("samples, chunk, widths", [(5, None, 1), (5, 30000, 2), (2, 5000, 2)])
def test_im2col_puts_a_row_of_ones_under_every_chunk_of_columns(monkeypatch, samples, chunk, widths):
    """With ``ones``, each chunk's columns (whole samples side by side, or runs of a sample's output rows) are
    the columns without it over one row of ones, however the chunks' widths change."""
    x = np.random.default_rng(samples).standard_normal((samples, 3, 9, 11))
    if chunk is not None:
        monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk)
    plain = [(n0, m, at, cols.copy()) for n0, m, at, cols in kernels.im2col(x, (3, 3), (1, 1), (1, 1), (7, 9),
                                                                             products=8)]
    with_ones = [(n0, m, at, cols.copy()) for n0, m, at, cols in kernels.im2col(x, (3, 3), (1, 1), (1, 1), (7, 9),
                                                                                 products=8, ones=True)]
    assert [(n0, m, at) for n0, m, at, _ in with_ones] == [(n0, m, at) for n0, m, at, _ in plain]
    assert len({cols.shape[1] for *_, cols in with_ones}) == widths
    for (*_, cols), (*_, ones) in zip(plain, with_ones):
        np.testing.assert_array_equal(ones[:-1], cols)
        np.testing.assert_array_equal(ones[-1], 1.0)


@pytest.mark.parametrize("chunk, columns, samples", [(3600, 0, [1] * 8), (3600, 50, [2] * 4), (3600, 200, [4, 4]),
                                                     (7200, 0, [2] * 4), (7200, 200, [8])])
def test_a_gradients_products_take_whole_samples_of_a_small_map(monkeypatch, chunk, columns, samples):
    """A convolution's gradients ask im2col for at least ``GRADIENT_COLUMNS`` columns per product: more whole samples
    of a small map than the budget holds, up to four times it; the gradients are the same however cut."""
    rng = np.random.default_rng(chunk + columns)
    x, dy = rng.standard_normal((8, 2, 5, 5)), rng.standard_normal((8, 3, 5, 5))
    pads = [(1, 1), (1, 1)]
    monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk)  # a sample's columns: 18 rows of 25 values, 3,600 bytes
    chunks = kernels.im2col(kernels.pad(x, pads), (3, 3), (1, 1), (1, 1), (5, 5), products=3, columns=columns)
    assert [m for _, m, _, _ in chunks] == samples
    wide = kernels.conv_grad_weight(x, dy, (3, 3), (1, 1), (1, 1), pads)
    monkeypatch.setattr(kernels, "GRADIENT_COLUMNS", 0)
    np.testing.assert_allclose(wide, kernels.conv_grad_weight(x, dy, (3, 3), (1, 1), (1, 1), pads), rtol=1e-13)
    np.testing.assert_allclose(wide[:, :, 1, 1], np.einsum("nfhw,nchw->fc", dy, x), rtol=1e-12)  # (no padding read)


@pytest.mark.parametrize("groups", [1, 2])
def test_a_weight_gradient_made_transposed_is_the_same(monkeypatch, groups):
    """From ``TRANSPOSED_COLUMNS`` columns a weight gradient is the product ``columns @ dy^T`` transposed back (in
    bands of rows, a band cut short at the end): the same gradient as ``dy @ columns^T``, and as the sum it stands for
    (float64, to rounding; grouped too)."""
    rng = np.random.default_rng(groups)
    x, dy = rng.standard_normal((3, 4, 6, 5)), rng.standard_normal((3, 6, 3, 3))
    pads, stride = [(1, 0), (2, 1)], (2, 2)
    xp = kernels.pad(x, pads)
    c, fg = 4 // groups, 6 // groups
    want = np.stack([np.einsum("nhw,nchw->c", dy[:, f], xp[:, f // fg * c:(f // fg + 1) * c, i:i + 5:2, j:j + 5:2])
                     for f in range(6) for i in range(3) for j in range(3)]).reshape(6, 3, 3, c).transpose(0, 3, 1, 2)
    made, seen, transpose = {}, [], kernels.transpose
    monkeypatch.setattr(kernels, "transpose", lambda a: seen.append(a.shape) or transpose(a))
    monkeypatch.setattr(kernels, "TRANSPOSE_BAND", 5)  # 4*9/groups rows: bands of 5 and a shorter last one
    for threshold in (0, 10**9):
        monkeypatch.setattr(kernels, "TRANSPOSED_COLUMNS", threshold)
        seen.clear()
        made[threshold] = kernels.conv_grad_weight(x, dy, (3, 3), stride, (1, 1), pads, groups)
        assert seen == ([(groups, 36 // groups, 6 // groups)] if threshold == 0 else [])
        np.testing.assert_allclose(made[threshold], want, rtol=1e-12, atol=1e-12)
    assert made[0].flags.c_contiguous
    np.testing.assert_allclose(made[0], made[10**9], rtol=1e-13)


def test_the_forward_of_a_pass_for_gradients_takes_as_many_columns(tmp_path, monkeypatch):
    """A forward recorded for ``backward`` asks im2col for ``GRADIENT_COLUMNS`` columns per product, as the gradients
    do; an inference forward keeps to the budget its peak memory counts. The outputs are the same."""
    analysis = build(tmp_path, [3, 6, 6], [{"conv": {"filters": 4, "kernel": 3, "padding": 1}, "name": "c"}])
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((5, 3, 6, 6))
    asked = []
    im2col = kernels.im2col
    monkeypatch.setattr(kernels, "im2col", lambda *a, **k: asked.append(k.get("columns", 0)) or im2col(*a, **k))
    plain = forward(analysis, params, x, fold=False)["c"]
    recorded = forward(analysis, params, x, tape=executor.Tape())["c"]
    assert asked == [0, kernels.GRADIENT_COLUMNS]
    np.testing.assert_array_equal(recorded, plain)


@pytest.mark.parametrize("chunk", [1, 20000, 150000])
def test_banded_depthwise_in_chunks_of_channels_and_samples(monkeypatch, chunk):
    """The banded products give the same correlation however the batch and the channels are cut into chunks (one
    sample of one channel; three samples of one channel; four channels of every sample)."""
    rng = np.random.default_rng(chunk)
    x = rng.standard_normal((5, 7, 9, 10))
    w, b = rng.standard_normal((14, 1, 3, 3)), rng.standard_normal(14)
    pads, out = [(1, 1), (1, 1)], (9, 10)
    expected = kernels.conv(x, w, (1, 1), (1, 1), pads, out, groups=7, bias=b)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk)
    got = kernels.conv(x, w, (1, 1), (1, 1), pads, out, groups=7, bias=b)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    reference = kernels._conv_by_offsets(kernels.pad(x, pads), w.reshape(7, 2, 1, -1), (3, 3), (1, 1), (1, 1), out)
    np.testing.assert_allclose(got, reference.reshape(5, 14, *out) + b.reshape(-1, 1, 1), rtol=1e-12, atol=1e-12)


def test_gradients_without_the_input_gradient_are_the_same_weight_gradients(tmp_path):
    """Training needs no gradient with respect to the batch: without it the first layers (here a conv and a dense
    branch reading the input) give their weights' gradients alone, the same as with it."""
    layers = [{"conv": {"filters": 4, "kernel": 3, "stride": 2}, "name": "c"}, "relu", "flatten",
              {"dense": 3, "name": "d"}, {"flatten": None, "inputs": ["input"], "name": "f"}, {"dense": 3, "name": "e"},
              {"add": ["d", "e"]}]
    analysis = build(tmp_path, [2, 7, 7], layers)
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((3, 2, 7, 7))
    targets = random_targets(analysis, 3, "mse", np.random.default_rng(1), dtype="float64")
    _, _, full = gradients(analysis, params, x, targets, "mse")
    _, _, lean = gradients(analysis, params, x, targets, "mse", input_grad=False)
    assert full.input.shape == x.shape and lean.input is None and INPUT not in lean.norms
    assert lean.params.keys() == full.params.keys()
    for name, g in full.params.items():
        np.testing.assert_array_equal(lean.params[name], g, err_msg=name)


def test_float32_by_default_close_to_float64(tmp_path):
    layers = [{"conv": {"filters": 8, "kernel": 3, "padding": 1}}, "batchnorm", "relu", "maxpool",
              {"conv": {"filters": 8, "kernel": 3, "groups": "depthwise"}}, "globalavgpool", {"dense": 5}, "softmax"]
    analysis = build(tmp_path, [4, 12, 12], layers)
    p64 = random_params(analysis, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 4, 12, 12))
    y64 = forward(analysis, p64, x)["softmax_1"]
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    y32 = forward(analysis, p32, x.astype(np.float32))["softmax_1"]
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-6)


def test_every_catalogue_type_has_a_case():
    from archcheck.layers import CATALOGUE

    covered = {next(k for k in (layer if isinstance(layer, dict) else {layer: None}) if k != "name")
               for _, _, layers in CASES for layer in layers}
    covered |= {"conv"}  # used inside branches
    assert set(CATALOGUE) <= covered


# -- initialisation ----------------------------------------------------------------------------
def test_init_he_before_relu_glorot_otherwise(tmp_path):
    layers = [{"conv": {"filters": 64, "kernel": 3, "bias": False}}, "batchnorm", "relu",
              {"conv": {"filters": 64, "kernel": 3}}, "tanh", "flatten", {"dense": 10}, "softmax"]
    analysis = build(tmp_path, [32, 12, 12], layers)
    params = init_params(analysis, seed=1)
    assert all(v.dtype == np.float32 for v in params.values())
    he = params["conv_1.weight"]
    assert abs(he.std() / math.sqrt(2 / (32 * 9)) - 1) < 0.02
    glorot = params["conv_2.weight"]
    limit = math.sqrt(6 / (64 * 9 + 64 * 9))
    assert glorot.max() <= limit and glorot.min() >= -limit and glorot.max() > 0.95 * limit
    dense = params["dense_1.weight"]
    assert np.abs(dense).max() <= math.sqrt(6 / (10 + dense.shape[1]))
    np.testing.assert_array_equal(params["conv_2.bias"], 0)
    np.testing.assert_array_equal(params["batchnorm_1.weight"], 1)
    np.testing.assert_array_equal(params["batchnorm_1.bias"], 0)
    np.testing.assert_array_equal(params["batchnorm_1.running_mean"], 0)
    np.testing.assert_array_equal(params["batchnorm_1.running_var"], 1)
    assert sorted(params) == sorted(executor.param_shapes(analysis))
    again = init_params(analysis, seed=1, dtype="float64")
    np.testing.assert_allclose(again["conv_1.weight"], he, rtol=1e-6)
    assert not np.allclose(init_params(analysis, seed=2)["conv_1.weight"], he)


@pytest.mark.parametrize("name", ["lenet5", "timeseries1d", "video3d", "googlenet", "mobilenetv2"])
def test_init_shapes_match_the_analysis(name):
    analysis = analyze(ROOT / "samples" / f"{name}.yaml")
    params = init_params(analysis)
    for key, (shape, _) in executor.param_shapes(analysis).items():
        assert params[key].shape == shape, key


# -- checks ------------------------------------------------------------------------------------
def test_a_wrong_layer_shape_is_reported_loudly(tmp_path, monkeypatch):
    analysis = build(tmp_path, [3, 4], ["relu"])
    monkeypatch.setattr(Relu, "fn", lambda self, x: x[:, :2])
    with pytest.raises(ShapeMismatch) as err:
        forward(analysis, {}, np.ones((2, 3, 4)))
    message = str(err.value)
    assert "layer 'relu_1'" in message and "(2, 2, 4)" in message and "(2, 3, 4)" in message
    assert "bug in archcheck" in message


@pytest.mark.parametrize("x,expected", [
    (np.ones((2, 3, 5)), "the input batch has shape (2, 3, 5) but the spec takes (N, 3, 4)"),
    (np.ones((3, 4)), "the input batch has shape (3, 4) but the spec takes (N, 3, 4)"),
    (np.ones((2, 3, 4), dtype=np.int64), "must be a floating-point array, received int64"),
])
def test_bad_batches_are_rejected_with_their_shape(tmp_path, x, expected):
    analysis = build(tmp_path, [3, 4], ["relu"])
    with pytest.raises(InputError, match=None) as err:
        forward(analysis, {}, x)
    assert expected in str(err.value)


def test_activations_are_freed_after_their_last_consumer(tmp_path):
    layers = [{"conv": {"filters": 3, "kernel": 1}}, "relu", {"add": [[{"conv": {"filters": 3, "kernel": 1}}], []]},
              "relu", "flatten"]
    analysis = build(tmp_path, [3, 4, 4], layers)
    params = init_params(analysis, dtype="float64")
    refs = {}
    forward(analysis, params, np.ones((2, 3, 4, 4)), on_layer=lambda node, y, s: refs.setdefault(node.name,
                                                                                                   weakref.ref(y)))
    alive = {name for name, ref in refs.items() if ref() is not None}
    assert alive <= {"flatten_1", "relu_2"}  # the output (and the input it is a view of)
    kept = forward(analysis, params, np.ones((2, 3, 4, 4)), keep=True)
    assert set(kept) == {INPUT, *refs}


@pytest.mark.parametrize("name", ["branching", "googlenet", "resnet18"])
def test_the_executor_holds_the_memory_the_propagator_predicts(tmp_path, name):
    """At every layer forward holds exactly the tensors the graph's lifetimes and inference plan keep (a
    batchnorm folded into the conv before it, a tensor overwritten by the layer reading it last), so its
    measured peak (the bytes of the buffers it holds) is the predicted one, at the predicted layer."""
    if name == "branching":  # a skip, a tensor read twice, dangling layers, two outputs (one read further on)
        path = tmp_path / "net.yaml"
        path.write_text(yaml.safe_dump({"input": [2, 4, 4], "outputs": ["head", "b"], "layers": [
            {"relu": None, "name": "a"}, {"relu": None, "name": "side"}, {"relu": None, "name": "b", "inputs": ["a"]},
            {"add": ["b", "b"]}, {"add": ["a", "add_1"], "name": "c"},
            {"identity": None, "name": "probe", "inputs": ["b"]}, {"relu": None, "name": "head", "inputs": ["c"]}]},
            sort_keys=False))
        analysis = analyze(path)
    else:
        analysis = analyze(ROOT / "samples" / f"{name}.yaml", input_shape=(3, 32, 32))
    graph, plan = analysis.graph, analysis.inference
    assert bool(plan.folds) == (name != "branching") and plan.in_place
    order = [n.name for n in graph.order]
    x = np.zeros((1, *analysis.layers[INPUT].shape), np.float32)  # the batch and dtype analysed
    live, held, done = {INPUT}, {INPUT: x.nbytes}, [1]  # done: the position in the order released up to

    def release(upto):
        for name in order[done[0]:upto]:
            live.difference_update(n for n in graph.released[name] if n not in plan.folds)  # never made
        done[0] = upto

    def on_layer(node, y, seconds):
        frame = sys._getframe(1).f_locals  # what forward holds while this layer's output is new
        release(order.index(frame["node"].name))
        live.add(node.name)
        assert set(frame["values"]) == live, node.name
        shared = [plan.in_place[n] for n in live if plan.in_place.get(n) in live]  # one buffer, two names
        held[node.name] = sum(frame["values"][n].nbytes for n in live) - sum(frame["values"][n].nbytes
                                                                             for n in shared)

    out = forward(analysis, init_params(analysis), x, on_layer=on_layer)
    release(len(order))
    assert set(out) | {INPUT} == live == {*graph.outputs, INPUT}  # the caller holds the input
    peak_at = max(held, key=held.get)  # the first layer where the most is held
    assert (held[peak_at], peak_at) == (analysis.totals.peak_activation_bytes, analysis.totals.peak_at)


@pytest.mark.parametrize("name, side, batch, threads", [
    ("vgg_stem", 224, 1, 1),  # VGG-16's first stages, Winograd on 224x224 maps: a sample held a band at a time
    ("resnet18", 128, 8, 2),  # two parts, each within its share of the room
    ("regnet_y_400mf", 128, 8, 1),  # a 1x1 stride-2 shortcut's columns and product
    ("mobilenetv2", 160, 4, 2),  # depthwise blocks at the peak
])
def test_an_inference_forward_keeps_its_scratch_within_the_room_its_peak_leaves(tmp_path, name, side, batch, threads):
    """The kernels' scratch stays within what the predicted peak leaves free at each layer, plus 1/16 of the peak
    (``executor.rooms``): the measured peak of a forward, the input included, is within that of the prediction
    (before the rooms, 1.15-2.3x on these)."""
    import gc
    import tracemalloc

    if name == "vgg_stem":  # (VGG-16's weights would be 0.5 GB)
        conv = [{"conv": {"filters": f, "kernel": 3, "padding": 1}} for f in (64, 64, 128, 128)]
        path = tmp_path / "net.yaml"
        path.write_text(yaml.safe_dump({"input": [3, side, side], "layers": [
            conv[0], "relu", conv[1], "relu", {"maxpool": 2}, conv[2], "relu", conv[3], "relu", {"globalavgpool": None},
            "flatten", {"dense": 10}]}, sort_keys=False))
    else:
        path = ROOT / "samples" / f"{name}.yaml"
    analysis = analyze(path, input_shape=(3, side, side), batch=batch)
    params = init_params(analysis)
    folded = executor.fold_weights(analysis, params, "float32")
    x = np.random.default_rng(0).standard_normal((batch, 3, side, side)).astype(np.float32)
    forward(analysis, params, x, fold=folded, threads=threads)  # (the threads and their pools made)
    gc.collect()
    tracemalloc.start()
    try:
        forward(analysis, params, x, fold=folded, threads=threads)
        peak = tracemalloc.get_traced_memory()[1] + x.nbytes
    finally:
        tracemalloc.stop()
    predicted = analysis.totals.peak_activation_bytes
    assert predicted <= peak <= (1 + executor.ROOM_SHARE + 0.03) * predicted


def test_a_layers_room_is_what_the_predicted_peak_leaves_it(tmp_path):
    """``Analysis.headroom``: per sample, the peak less the bytes live while the layer runs (none at the peak's
    layer); ``rooms`` adds 1/16 of the peak and scales to the samples and element size of a pass."""
    analysis = build(tmp_path, [8, 16, 16], [{"conv": {"filters": 16, "kernel": 3, "padding": 1}}, "relu",
                                             {"maxpool": 2}, {"conv": {"filters": 4, "kernel": 1}}])
    free = analysis.headroom()
    peak = analysis.totals.peak_activation_bytes
    assert free[analysis.totals.peak_at] == 0
    for name, live in live_memory(analysis.graph, analysis.layers):
        assert free[name] == (peak - live) // (analysis.batch * 4)
    share = peak // 16 // 4  # (values per sample: the analysis is at batch 1, float32)
    rooms = executor.rooms(analysis, 3, 8)
    assert rooms == {name: max(executor.ROOM_LEAST, (f + share) * 3 * 8) for name, f in free.items()}


def test_a_room_bounds_the_scratch_but_never_below_a_product_that_pays():
    """``scratch``: a budget's share, within a third of the room per buffer, but not below ``least``; a forward
    gives each layer its room and restores the thread's after."""
    assert kernels.scratch(2**20) == 2**20
    before = kernels.set_room(3 * 2**16)
    try:
        assert kernels.scratch(2**20) == 2**16
        assert kernels.scratch(2**20, buffers=2) == 2**17
        assert kernels.scratch(2**20, least=5 * 2**16) == 5 * 2**16
        assert kernels.scratch(2**10, least=2**20) == 2**10  # (never above the budget)
        with kernels.scratch_share(2):
            assert kernels.scratch(2**17) == 2**16
    finally:
        kernels.set_room(before)
    assert kernels.set_room(None) is None


def test_a_forward_gives_each_layer_its_room_and_restores_the_threads(tmp_path, monkeypatch):
    analysis = build(tmp_path, [8, 128, 128], [{"conv": {"filters": 16, "kernel": 3, "padding": 1}}, "relu",
                                               {"conv": {"filters": 8, "kernel": 3}}])
    seen = []
    conv = Conv.forward
    monkeypatch.setattr(Conv, "forward", lambda self, xs, p, ctx: seen.append(kernels._local.room) or conv(self, xs,
                                                                                                          p, ctx))
    x = np.ones((4, 8, 128, 128), np.float32)
    forward(analysis, init_params(analysis), x)
    rooms = executor.rooms(analysis, 4, 4)
    assert seen == [rooms["conv_1"], rooms["conv_2"]] and seen[0] != seen[1]
    assert kernels.set_room(None) is None
    seen.clear()
    forward(analysis, init_params(analysis), x, fold=False)  # every layer as written: no plan, no room
    assert seen == [None, None]


def test_a_winograd_sample_larger_than_a_chunk_holds_a_band_of_its_rows(monkeypatch):
    """Its padded input and output are held a band of rows of tiles at a time, not whole: the scratch of a chunk
    of a 96x96 sample of 32 channels is a small part of the sample's."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 32, 96, 96)).astype(np.float32)
    u = kernels.winograd_weights(rng.standard_normal((32, 32, 3, 3)).astype(np.float32))
    whole = kernels.winograd(x, u, [(1, 1)] * 2, (96, 96), None, 10**6)  # (a chunk of both samples)
    tracemalloc.start()
    try:
        banded = kernels.winograd(x, u, [(1, 1)] * 2, (96, 96), None, 48)  # (two rows of tiles a chunk)
        held = tracemalloc.get_traced_memory()[1] - banded.nbytes
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(banded, whole)
    assert banded.flags.c_contiguous and banded.shape == x.shape
    assert held < 2 * 36 * 32 * 48 * 4 + x[0].nbytes / 4  # (the chunks, and bands of input and output)


def test_fold_weights_lays_out_a_convolutions_bias_without_a_batchnorm_to_fold(tmp_path):
    analysis = build(tmp_path, [3, 8, 8], [{"conv": {"filters": 4, "kernel": 3}}, "relu", "flatten",
                                           {"dense": 2}])
    params = init_params(analysis)
    folded = executor.fold_weights(analysis, params, "float32")
    laid = folded.layers["conv_1"]
    np.testing.assert_array_equal(laid["product"], np.concatenate([params["conv_1.weight"].reshape(4, -1),
                                                                   params["conv_1.bias"][:, None]], axis=1))
    assert np.shares_memory(laid["weight"], laid["product"]) and "dense_1" not in folded.layers


def test_fold_weights_works_in_float64_only_on_the_layers_it_changes(tmp_path):
    """A dense layer the plan leaves as it is is neither copied nor made float64 (1.8 M weights: 15 MB)."""
    import tracemalloc

    analysis = build(tmp_path, [3, 32, 32], [{"conv": {"filters": 8, "kernel": 3}}, "relu", "flatten",
                                             {"dense": 256}])
    params = init_params(analysis)
    tracemalloc.start()
    try:
        folded = executor.fold_weights(analysis, params, "float32")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(folded.layers) == {"conv_1"} and peak < params["dense_1.weight"].nbytes / 8


def test_static_path_does_not_import_numpy():
    code = ("import sys; from archcheck.pipeline import analyze; analyze('samples/resnet18.yaml');"
            "from archcheck.cli import main\n"
            "for args in (['summary', 'samples/lenet5.yaml'], ['lint', 'samples/lenet5.yaml']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "assert 'numpy' not in sys.modules, 'numpy imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["lenet5", "timeseries1d", "mobilenetv2", "googlenet", "video3d", "alexnet"])
def test_samples_run_and_every_shape_agrees(name):
    analysis = analyze(ROOT / "samples" / f"{name}.yaml")
    x = np.random.default_rng(0).standard_normal((1, *analysis.spec.input)).astype(np.float32)
    out = forward(analysis, init_params(analysis), x)
    for key, y in out.items():
        assert y.shape == (1, *analysis.layers[key].shape)
        assert np.isfinite(y).all()


def test_layer_stats_count_zeros_dead_channels_saturation_and_non_finite_values(tmp_path):
    analysis = build(tmp_path, [2, 3], [{"conv": {"filters": 2, "kernel": 1}}, "sigmoid"])
    node = analysis.graph.nodes["sigmoid_1"]
    y = np.array([[[0.0, 0.005, 0.5], [0.0, 0.0, 0.995]], [[0.98, 0.5, 0.5], [0.0, np.nan, np.inf]]])
    s = executor.layer_stats(node, y, 0.1, margin=0.01)
    assert (s.shape, s.nan, s.inf, s.units) == ((2, 2, 3), 1, 1, 2)
    assert s.zeros == pytest.approx(6 / 12)  # NaN and Inf counted as zero once set aside
    assert s.dead_units == 0
    assert s.saturated == pytest.approx(8 / 12)  # 0, 0.005, 0.995 and the zeroed NaN/Inf; not 0.98
    assert executor.layer_stats(node, y, 0.1, margin=0.05).saturated == pytest.approx(9 / 12)
    y[:, 0] = 0
    assert executor.layer_stats(node, y, 0.1, margin=0.01).dead_units == 1
    relu = executor.layer_stats(analysis.graph.nodes["conv_1"], y, 0.1, margin=0.01)
    assert relu.saturated is None  # unbounded


def test_the_counts_of_parts_of_a_batch_add_up_to_those_of_the_whole(tmp_path):
    """A threaded forward summarises each part of the batch where it is made: the parts' moments, added in any
    split, give the statistics of the whole batch (mean and spread, zeros, saturation, dead units, NaN/Inf)."""
    analysis = build(tmp_path, [2, 3], [{"conv": {"filters": 3, "kernel": 1}}, "sigmoid"])
    node = analysis.graph.nodes["sigmoid_1"]
    y = np.random.default_rng(0).random((7, 3, 5)) * 100 + 50  # a large mean: the spread must not cancel
    y[y < 60] = 0
    y[:, 1] = 0  # a dead unit in every part
    y[0, 0, :2] = 0.001
    y[3, 2, 1], y[5, 0, 4] = np.nan, -np.inf
    whole = executor.layer_stats(node, y, 0.5, margin=0.01)
    for cuts in ([3], [1, 4], [2, 3, 6]):
        parts = [executor.moments(node, part, 0.01) for part in np.split(y, cuts)]
        merged = executor.summary(node, sum(parts[1:], parts[0]), 0.5)
        assert (merged.shape, merged.nan, merged.inf, merged.dead_units, merged.units) == ((7, 3, 5), 1, 1, 1, 3)
        for field in ("mean", "std", "zeros", "saturated"):
            assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-12), field


BRANCHED = [{"conv": {"filters": 8, "kernel": 3, "padding": 1}}, "batchnorm", {"relu": None, "name": "r"},
            {"conv": {"filters": 8, "kernel": 3, "padding": 1}}, "batchnorm", {"add": ["r", "batchnorm_2"]}, "relu",
            {"maxpool": 2}, {"conv": {"filters": 8, "kernel": 3, "groups": "depthwise", "padding": 1}}, "swish",
            "globalavgpool", {"dense": 5}, "softmax"]


def test_batch_parts_cut_only_an_inference_that_keeps_and_records_nothing():
    if executor.blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one, so batches are never cut")
    sizes = lambda parts: [p.stop - p.start for p in parts]  # noqa: E731
    assert sizes(executor.batch_parts(7, 3)) == [3, 2, 2]
    assert sizes(executor.batch_parts(2, 4)) == [1, 1]  # never an empty part
    assert executor.batch_parts(8, 2)[1] == slice(4, 8)
    for kwargs in ({}, {"train": True}, {"keep": True}, {"grad": True}):
        threads = 1 if kwargs == {} else 4
        assert sizes(executor.batch_parts(8, threads, **kwargs)) == [8], kwargs
    before, interval = executor.blas.threads(), sys.getswitchinterval()
    short = min(interval, executor.blas.SWITCH_INTERVAL)
    with executor.kernel_threads(4, 8):  # training: the kernels cut their batch, BLAS on one thread each
        assert executor.blas.threads() == 1 and executor.kernels.runs(8, 4) == executor.batch_parts(8, 4)
        assert sys.getswitchinterval() == pytest.approx(short)  # Python's lock changes hands sooner
        with executor.kernel_threads(2, 8):  # nested (or concurrent): held once, given back by the last to close
            assert executor.blas.threads() == 1 and sys.getswitchinterval() == pytest.approx(short)
        assert executor.blas.threads() == 1 and sys.getswitchinterval() == pytest.approx(short)
    assert executor.blas.threads() == before and sys.getswitchinterval() == interval
    with executor.kernel_threads(4, 1):  # one sample: BLAS's own threads, the interval as it was
        assert executor.blas.threads() == before and sys.getswitchinterval() == interval


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_threaded_forward_agrees_with_one_thread_and_reports_each_part(tmp_path, dtype):
    """Parts of the batch on threads of their own give the values of one pass over the whole batch (to the
    rounding of a product over fewer samples), report every layer once per part with its rows, and leave BLAS
    with the threads it had."""
    if executor.blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one, so batches are never cut")
    analysis = build(tmp_path, [3, 12, 12], BRANCHED)
    params = random_params(analysis, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((5, 3, 12, 12)).astype(dtype)
    whole = forward(analysis, params, x)["softmax_1"]
    before, interval = executor.blas.threads(), sys.getswitchinterval()
    seen = []
    parts = forward(analysis, params, x, threads=3, on_layer=lambda node, y, s, rows: seen.append((node.name, rows,
                                                                                                   y.shape[0])))
    assert executor.blas.threads() == before and sys.getswitchinterval() == interval
    np.testing.assert_allclose(parts["softmax_1"], whole, rtol=1e-12 if dtype == "float64" else 1e-5,
                               atol=1e-15 if dtype == "float64" else 1e-7)
    ran = [name for name, rows, _ in seen if rows.start == 0]
    assert len(ran) == len(set(ran)) and "softmax_1" in ran and "conv_1" not in ran  # (folded into batchnorm_1)
    assert sorted((rows.start, rows.stop) for name, rows, _ in seen if name == "softmax_1") == [(0, 2), (2, 4), (4, 5)]
    assert all(n == rows.stop - rows.start for _, rows, n in seen)


def test_training_on_threads_computes_what_one_thread_does(tmp_path, monkeypatch):
    """A training pass cuts the batch into one part per thread, each walked forward and backward on its own thread
    (odd parts: 5 samples over 3 threads). They meet where the samples do: batchnorm's batch statistics and its
    gradient's sums are the whole batch's, dropout's draws the same as one walk's, and the running statistics are
    updated once. The loss, outputs, gradients and running statistics are one walk's (float64, to the order of
    the sums); BLAS is given back after."""
    if executor.blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one")
    analysis = build(tmp_path, [3, 12, 12], [*BRANCHED[:-2], {"dropout": 0.4}, *BRANCHED[-2:]])
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((5, 3, 12, 12))
    targets = random_targets(analysis, 5, "cross-entropy", np.random.default_rng(1))
    before = executor.blas.threads()
    walked = []
    walk = executor._walk
    monkeypatch.setattr(executor, "_walk", lambda analysis, x, *rest: walked.append(len(x)) or walk(analysis, x, *rest))
    one, cut = ({k: v.copy() for k, v in params.items()} for _ in range(2))
    value, outputs, grads = gradients(analysis, one, x, targets, seed=7)
    again, outputs_cut, grads_cut = gradients(analysis, cut, x, targets, seed=7, threads=3)
    assert walked[0] == 5 and sorted(walked[1:]) == [1, 2, 2]  # one walk, then three parts
    assert executor.blas.threads() == before
    assert again == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(outputs_cut["softmax_1"], outputs["softmax_1"], rtol=1e-12)
    np.testing.assert_allclose(grads_cut.input, grads.input, rtol=1e-11, atol=1e-13 * np.abs(grads.input).max())
    largest = max(np.abs(g).max() for g in grads.params.values())  # (a conv's bias before a batchnorm: 0, to rounding)
    for k, g in grads.params.items():
        np.testing.assert_allclose(grads_cut.params[k], g, rtol=1e-10, atol=1e-13 * largest, err_msg=k)
    for k in grads.norms:
        assert grads_cut.norms[k] == pytest.approx(grads.norms[k], rel=1e-12), k
    for k in params:
        if k.endswith(("running_mean", "running_var")):
            assert not np.array_equal(one[k], params[k]), k  # (updated, once: the same as one walk)
            np.testing.assert_allclose(cut[k], one[k], rtol=1e-13, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_parts_shares_of_each_weight_are_added_in_the_order_of_the_samples(threads):
    """A threaded pass's weight gradients: each weight's shares added in the order of the samples, ``(s0 + s1) +
    s2``, bitwise, however the values are cut into runs for the threads (runs across the arrays' ends); the sums in
    the first part's arrays, or in a copy of one that cannot be written (a broadcast); the input gradients joined
    and the norms the root of the sum of squares."""
    rng = np.random.default_rng(0)
    shapes = {"a.weight": (7, 3), "b.weight": (5,), "c.bias": (2, 2, 2)}
    shares = [executor.Gradients(rng.standard_normal((2, 3)), {k: rng.standard_normal(s) for k, s in shapes.items()},
                                 {"a": 3.0, **({"b": 4.0} if i else {})}) for i in range(3)]
    shares[0].params["b.weight"] = np.broadcast_to(np.float64(1.5), (5,))
    expected = {k: (shares[0].params[k] + shares[1].params[k]) + shares[2].params[k] for k in shapes}
    first = dict(shares[0].params)
    with kernels.threads(threads):
        total = executor._added(shares)
    for k in shapes:
        assert np.array_equal(total.params[k], expected[k]), k
    assert total.params["a.weight"] is first["a.weight"]  # (summed where the first part's share was)
    assert np.array_equal(first["b.weight"], np.full(5, 1.5))  # (a broadcast: summed into a copy)
    assert np.array_equal(total.input, np.concatenate([share.input for share in shares]))
    assert total.norms == {"a": pytest.approx(math.sqrt(27.0)), "b": pytest.approx(math.sqrt(32.0))}


def test_a_training_part_that_fails_stops_the_others_at_their_next_meeting(tmp_path, monkeypatch):
    """The second part fails before a batchnorm, where the first waits for it: the first stops there, and the pass
    ends with the second part's error, not with the meeting it broke; BLAS gets its threads back."""
    if executor.blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one")
    import threading

    analysis = build(tmp_path, [3, 12, 12], BRANCHED)
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12))
    targets = random_targets(analysis, 4, "cross-entropy", np.random.default_rng(1))
    conv = analysis.graph.nodes["conv_1"].layer
    forward_ = type(conv).forward

    caller = []

    def failing(self, xs, params, ctx):
        if self is conv and threading.current_thread() not in caller:  # (the first part runs on the caller's)
            raise ValueError("the second part fails in conv_1")
        return forward_(self, xs, params, ctx)

    monkeypatch.setattr(type(conv), "forward", failing)
    before = executor.blas.threads()
    ended = []

    def attempt():
        caller.append(threading.current_thread())
        with pytest.raises(ValueError, match="the second part fails in conv_1"):
            gradients(analysis, params, x, targets, threads=2)
        ended.append(True)

    runner = threading.Thread(target=attempt, daemon=True)
    runner.start()
    runner.join(60)
    assert ended == [True]  # (not waiting at the batchnorm for a part that will never come)
    assert executor.blas.threads() == before


def test_parts_meet_many_times_in_turn_and_a_failure_lets_the_waiting_ones_go():
    """Three parts meet 300 times, each arriving at its own pace (a part may hand in a meeting's value while another
    still combines the last one's): every part takes, at every meeting, the sum of that meeting's values in the
    order of the parts, and ``batch_shared`` the first part's. Then a part fails at its 50th meeting while the
    others wait there: they are let go, and the call ends with its error, not hanging."""
    import threading

    def work(rows):
        index = rows.start  # (one sample a part)
        pace = np.random.default_rng(index)
        got = []
        for meeting in range(300):
            if pace.random() < 0.3:
                time.sleep(pace.random() * 1e-4)
            got.append(kernels.batch_total(np.array([meeting * 10.0 + index])))
            assert kernels.batch_shared(lambda m=meeting: m) == meeting
        return got

    with kernels.threads(3):
        parts = kernels.side_by_side(3, work)
    expected = [np.array([meeting * 30.0 + 3]) for meeting in range(300)]
    for got in parts:
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))

    def failing(rows):
        for meeting in range(100):
            if rows.start == 2 and meeting == 50:
                time.sleep(0.05)  # (the others are waiting at the 50th meeting)
                raise ValueError("the third part fails at its 50th meeting")
            kernels.batch_total(1)

    ended = []

    def attempt():
        with kernels.threads(3), pytest.raises(ValueError, match="the third part fails"):
            kernels.side_by_side(3, failing)
        ended.append(True)

    runner = threading.Thread(target=attempt, daemon=True)
    runner.start()
    runner.join(60)
    assert ended == [True]


def test_a_threaded_forward_keeps_the_callers_error_state_and_gives_back_blas_when_a_part_fails(tmp_path):
    """NumPy's error state is per thread: the parts run under the caller's (``run`` counts NaN and Inf itself).
    A part that fails ends the forward with its error, and BLAS gets its threads back."""
    if executor.blas.threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its threads cannot be held to one, so batches are never cut")
    analysis = build(tmp_path, [2, 4], [{"relu": None, "name": "r"}, {"multiply": ["r", "r"]}, "flatten",
                                        {"dense": 2}])
    params = init_params(analysis, dtype="float32")
    x = np.full((4, 2, 4), 3e30, np.float32)  # its square overflows: NumPy's "overflow encountered in multiply"
    before = executor.blas.threads()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = forward(analysis, params, x, threads=2)["dense_1"]
    assert not np.isfinite(out).all()

    def fail(node, y, seconds, rows):
        if rows.start > 0 and node.name == "multiply_1":
            raise ValueError("stop at multiply_1")

    with pytest.raises(ValueError, match="stop at multiply_1"), np.errstate(all="ignore"):
        forward(analysis, params, x, threads=2, on_layer=fail)
    assert executor.blas.threads() == before


def test_run_record_holds_plain_numbers(tmp_path):
    analysis = build(tmp_path, [2, 4], [{"conv": {"filters": 3, "kernel": 3}}, "relu", "flatten", {"dense": 2}])
    grads = executor.Gradients(np.zeros((1, 2, 4)), {
        "conv_1.weight": np.full((3, 2, 3), 1e30, np.float32),  # its squares overflow float32
        "conv_1.bias": np.array([0, np.nan, 0], np.float32),
        "dense_1.weight": np.full((2, 6), 0.5, np.float32),
        "dense_1.bias": np.zeros(2, np.float32)}, {})
    run = executor.record(analysis, {}, grads, 0.7)
    assert run.grad_norms["conv_1.weight"] == pytest.approx(1e30 * math.sqrt(18), rel=1e-6)
    assert run.grad_norms["dense_1.weight"] == pytest.approx(0.5 * math.sqrt(12))
    assert run.grad_finite == {"conv_1.weight": True, "conv_1.bias": False, "dense_1.weight": True,
                               "dense_1.bias": True}
    assert all(type(v) is float for v in run.grad_norms.values()) and not run.finite
    flow = run.gradient_ratio()
    assert (flow.first.name, flow.last.name) == ("conv_1", "dense_1")
    assert flow.ratio == pytest.approx(1e30 * math.sqrt(18) / (0.5 * math.sqrt(12)), rel=1e-6)
    assert describe(flow).startswith("the weight-gradient norm of the first weighted layer 'conv_1' is 4.24e+30, ")


def test_gradient_ratio_leaves_out_dangling_branches(tmp_path):
    # 'side' comes first in order and 'probe' last, but neither reaches the output: their gradients are 0
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [2, 8], "outputs": ["head"], "layers": [
        {"conv": {"filters": 3, "kernel": 1}, "name": "side"},
        {"conv": {"filters": 3, "kernel": 3}, "name": "features", "inputs": ["input"]},
        {"flatten": None, "name": "flat"},
        {"dense": 2, "name": "head"},
        {"dense": 4, "name": "probe", "inputs": ["flat"]},
    ]}, sort_keys=False))
    analysis = analyze(path)
    assert {"side", "probe"}.isdisjoint(analysis.graph.used)
    norms = {"side.weight": 0.0, "features.weight": 2.0, "head.weight": 0.5, "probe.weight": 0.0}
    run = executor.Run(analysis, {}, 1.0, norms, {k: True for k in norms})
    flow = run.gradient_ratio()
    assert (flow.first.name, flow.last.name) == ("features", "head")
    assert flow.ratio == pytest.approx(4.0)
