"""Gradients against central finite differences, in float64: for every layer case of
``test_executor`` (the input and every parameter), for the losses on whole networks, and the
convolution's input gradient (a full convolution with the rotated filter) as the adjoint of the
convolution.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml
from test_executor import CASES, build, random_params

from archcheck import kernels
from archcheck.executor import Tape, backward, forward, gradients, loss, random_targets
from archcheck.pipeline import analyze
from archcheck.propagate import param_shapes

H = 1e-6


def check_fd(f, array, grad, rng, samples=10, name=""):
    """Compare ``grad`` with central differences of ``f`` at up to ``samples`` entries of ``array``."""
    assert grad.shape == array.shape, name
    flat, g = array.reshape(-1), grad.reshape(-1)
    for i in rng.choice(flat.size, size=min(samples, flat.size), replace=False):
        keep = flat[i]
        flat[i] = keep + H
        up = f()
        flat[i] = keep - H
        down = f()
        flat[i] = keep
        fd = (up - down) / (2 * H)
        assert abs(fd - g[i]) <= 1e-6 + 1e-5 * abs(fd), f"{name}[{i}]: finite difference {fd}, gradient {g[i]}"


def check_network(analysis, params, x, train=True, seed=0):
    """Gradients of a random projection of the first output, for the input and every weight."""
    rng = np.random.default_rng(seed)
    out = analysis.graph.outputs[0]
    weights = rng.standard_normal((x.shape[0], *analysis.layers[out].shape))

    def value():
        return float((forward(analysis, params, x, train=train, seed=seed)[out] * weights).sum())

    tape = Tape()
    forward(analysis, params, x, train=train, tape=tape, seed=seed)
    grads = backward(analysis, params, tape, {out: weights})
    assert not tape.caches  # every cache consumed
    check_fd(value, x, grads.input, rng, name="input")
    trainable = [k for k, (_, t) in param_shapes(analysis).items() if t]
    assert sorted(grads.params) == sorted(trainable)
    for key in trainable:
        check_fd(value, params[key], grads.params[key], rng, name=key)


@pytest.mark.parametrize("case_id,input_shape,layers", CASES, ids=[c[0] for c in CASES])
def test_layer_gradients(tmp_path, case_id, input_shape, layers):
    analysis = build(tmp_path, input_shape, layers)
    params = random_params(analysis)
    x = np.random.default_rng(1).standard_normal((2, *input_shape))
    check_network(analysis, params, x)


@pytest.mark.parametrize("layers", [["batchnorm"], [{"layernorm": {"over": "all"}}, {"dropout": 0.5}],
                                    [{"batchnorm": {"affine": False}}], [{"droppath": 0.5}],
                                    [{"batchnorm": {"scale": False}}], [{"batchnorm": {"center": False}}]])
def test_inference_mode_gradients(tmp_path, layers):
    analysis = build(tmp_path, [3, 4, 4], layers)
    check_network(analysis, random_params(analysis), np.random.default_rng(2).standard_normal((3, 3, 4, 4)),
                  train=False)


def test_training_mode_gradient_flows_through_the_batch_statistics(tmp_path):
    """With batch statistics, shifting every sample of a channel changes nothing: the gradient of
    each channel sums to zero over the batch and positions."""
    analysis = build(tmp_path, [3, 4, 4], ["batchnorm", "tanh"])
    params = random_params(analysis)
    x = np.random.default_rng(0).standard_normal((4, 3, 4, 4))
    tape = Tape()
    forward(analysis, params, x, train=True, tape=tape)
    grads = backward(analysis, params, tape, {"tanh_1": np.random.default_rng(1).standard_normal(x.shape)})
    np.testing.assert_allclose(grads.input.sum(axis=(0, 2, 3)), 0, atol=1e-12)


NETWORKS = {
    "softmax-head": ([1, 8, 8], [{"conv": {"filters": 3, "kernel": 3}}, "relu", "maxpool", "flatten",
                                 {"dense": 4}, "softmax"], None),
    "logits-per-position": ([2, 5, 5], [{"conv": {"filters": 4, "kernel": 3, "padding": 1}}], None),
    "two-outputs": ([2, 6], [{"conv": {"filters": 3, "kernel": 3}, "name": "features"}, "globalavgpool",
                             {"dense": 3, "name": "logits"}, {"softmax": None, "name": "probs"}],
                    ["features", "probs"]),
}


@pytest.mark.parametrize("kind", ["cross-entropy", "mse"])
@pytest.mark.parametrize("net", list(NETWORKS))
def test_loss_gradients(tmp_path, net, kind):
    input_shape, layers, outputs = NETWORKS[net]
    path = tmp_path / "net.yaml"
    doc = {"input": input_shape, "layers": layers, **({"outputs": outputs} if outputs else {})}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    analysis = analyze(path)
    params = random_params(analysis)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *input_shape))
    targets = random_targets(analysis, 3, kind, rng, dtype="float64")
    value, outputs_, grads = gradients(analysis, params, x, targets, kind)
    assert np.isfinite(value) and value > 0

    def f():
        return loss(analysis, forward(analysis, params, x, train=True), targets, kind)[0]

    assert f() == pytest.approx(value)
    check_fd(f, x, grads.input, rng, name="input")
    for key, grad in grads.params.items():
        check_fd(f, params[key], grad, rng, samples=5, name=key)


def test_cross_entropy_of_a_softmax_head_is_stable(tmp_path):
    """Probabilities that underflow to zero still give a finite loss and the exact gradient
    (p - onehot) / N at the logits."""
    analysis = build(tmp_path, [2, 1], ["flatten", {"dense": 3}, "softmax"])
    params = {"dense_1.weight": np.array([[1000.0, 0], [0, 0], [-1000.0, 0]]), "dense_1.bias": np.zeros(3)}
    x = np.array([[[1.0], [0.0]]])
    out = forward(analysis, params, x)
    value, seeds = loss(analysis, out, {"softmax_1": np.array([2])})
    assert np.isfinite(value) and value > 700
    np.testing.assert_allclose(seeds["dense_1"], [[1.0, 0.0, -1.0]], atol=1e-300)


def conv_out(sizes, kernel, stride, dilation, pads):
    """The convolution's output sizes, which the kernels are given rather than derive."""
    return tuple((n + pb + pa - d * (k - 1) - 1) // s + 1
                 for n, k, s, d, (pb, pa) in zip(sizes, kernel, stride, dilation, pads))


@pytest.mark.parametrize("sizes,kernel,stride,dilation,pads,groups", [
    ((9,), (3,), (2,), (1,), [(1, 1)], 1),
    ((8, 7), (3, 2), (2, 3), (1, 2), [(2, 0), (1, 3)], 2),
    ((6, 6), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 4),  # depthwise
    ((5, 4, 6), (2, 3, 3), (2, 1, 2), (1, 1, 2), [(0, 1), (1, 1), (2, 2)], 1),
    ((6, 5), (3, 3), (1, 1), (1, 1), [(1, 1), (0, 2)], 2),  # a small map at stride 1: scattered, samples side by side
    ((30, 30), (3, 3), (2, 2), (1, 1), [(1, 1), (1, 1)], 1),  # 15x15 outputs a sample: a product each
])
def test_input_gradient_is_the_adjoint_of_the_convolution(sizes, kernel, stride, dilation, pads, groups):
    """<conv(x), dy> = <x, full convolution of dy with the rotated filter>, for any x and dy."""
    rng = np.random.default_rng(0)
    channels, filters = 4, 8
    x = rng.standard_normal((2, channels, *sizes))
    w = rng.standard_normal((filters, channels // groups, *kernel))
    y = kernels.conv(x, w, stride, dilation, pads, conv_out(sizes, kernel, stride, dilation, pads), groups)
    dy = rng.standard_normal(y.shape)
    dx = kernels.conv_grad_input(dy, w, sizes, stride, dilation, pads, groups)
    assert dx.shape == x.shape
    assert np.vdot(y, dy) == pytest.approx(np.vdot(x, dx), rel=1e-12)
    np.testing.assert_array_equal(kernels.conv_grad_input(dy, w, sizes, stride, dilation, pads, groups, kept=True), dx)


@pytest.mark.parametrize("sizes,kernel,stride,dilation,pads,groups", [
    ((9,), (3,), (2,), (1,), [(1, 1)], 1),
    ((8, 7), (3, 2), (2, 3), (1, 2), [(2, 0), (1, 3)], 2),
    ((9, 9), (3, 3), (2, 2), (1, 1), [(1, 1), (1, 1)], 4),  # depthwise
    ((11, 10), (7, 7), (2, 2), (1, 1), [(3, 3), (3, 3)], 1),  # ResNet's stem
])
def test_strided_input_gradient_is_the_seeds_full_convolution(sizes, kernel, stride, dilation, pads, groups):
    """Literally the seeds' construction: spread the output gradient out with stride - 1 zeros,
    pad it for a full convolution, and correlate with the filter rotated by 180 degrees (input and
    output channels swapped within each group)."""
    rng = np.random.default_rng(1)
    channels, filters = 4, 8
    x = rng.standard_normal((2, channels, *sizes))
    w = rng.standard_normal((filters, channels // groups, *kernel))
    out = conv_out(sizes, kernel, stride, dilation, pads)
    dy = rng.standard_normal(kernels.conv(x, w, stride, dilation, pads, out, groups).shape)
    spread = np.zeros((*dy.shape[:2], *((o - 1) * s + 1 for o, s in zip(out, stride))))
    spread[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = dy
    full = [(d * (k - 1) - pb, n + pb - 1 - (o - 1) * s)
            for n, o, k, s, d, (pb, _) in zip(sizes, out, kernel, stride, dilation, pads)]
    rotated = np.flip(w, axis=tuple(range(2, w.ndim))).reshape(groups, filters // groups, channels // groups, *kernel)
    rotated = rotated.swapaxes(1, 2).reshape(channels, filters // groups, *kernel)
    expected = kernels.conv(spread, rotated, (1,) * len(sizes), dilation, full, sizes, groups)
    np.testing.assert_allclose(kernels.conv_grad_input(dy, w, sizes, stride, dilation, pads, groups), expected,
                               rtol=1e-12, atol=1e-12)


def test_a_convolution_asked_for_more_outputs_than_fit_refuses_rather_than_reading_past_its_input():
    """The kernels are given the output size; the strided view of the windows would not notice one too large."""
    x, w = np.ones((1, 2, 7, 7)), np.ones((3, 2, 3, 3))
    assert kernels.conv(x, w, (2, 2), (1, 1), [(0, 0), (0, 0)], (3, 3)).shape == (1, 3, 3, 3)
    with pytest.raises(ValueError, match="4 windows of kernel 3, stride 2, dilation 1 do not fit 7 padded positions"):
        kernels.conv(x, w, (2, 2), (1, 1), [(0, 0), (0, 0)], (4, 3))


def _window_cases(n: int = int(os.environ.get("ARCHCHECK_SWEEP", 48)), seed: int = 11):
    """Convolutions, transposed convolutions, locally connected layers and poolings with unusual arguments:
    strides, dilations, output_padding, groups, ceil_mode, count_include_pad, 'same' and asymmetric
    [before, after] padding, no bias, 1-D to 3-D, odd sizes, after a pooling. The issue-7 case
    (output_padding with dilation) first. ARCHCHECK_SWEEP=2000 runs a larger sweep by hand."""
    rng = np.random.default_rng(seed)
    cases = [("convtranspose-output-padding-dilation", [1, 2],
              ["identity", {"convtranspose": {"filters": 1, "kernel": 2, "output_padding": 1, "dilation": 2}}]),
             ("convtranspose-after-maxpool", [1, 8],
              [{"maxpool": 2}, {"convtranspose": {"filters": 1, "kernel": 2, "output_padding": 1, "dilation": 2}}])]
    while len(cases) < n:
        rank = int(rng.integers(1, 4 if len(cases) % 4 == 0 else 3))
        kernel, stride, dilation = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        sizes = [int(rng.integers(3, 8)) for _ in range(rank)]
        kind = ["conv", "convtranspose", "maxpool", "avgpool", "locallyconnected"][len(cases) % 5]
        if kind in ("conv", "locallyconnected"):
            groups = int(rng.choice([1, 2])) if kind == "conv" else 1
            pad = [[int(rng.integers(0, kernel)), int(rng.integers(0, kernel))] for _ in sizes]
            padding = "same" if stride == 1 and rng.random() < 0.3 else pad if rng.random() < 0.4 else pad[0][0]
            layer = {kind: {"filters": 2 * groups, "kernel": kernel, "stride": stride, "dilation": dilation,
                            "padding": padding, "bias": bool(rng.random() < 0.7)}}
            if kind == "conv":
                layer[kind]["groups"] = groups
            channels = 2 * groups
        elif kind == "convtranspose":
            groups = int(rng.choice([1, 2]))
            layer = {"convtranspose": {"filters": 2 * groups, "kernel": kernel, "stride": stride,
                                       "dilation": dilation, "groups": groups,
                                       "padding": int(rng.integers(0, kernel)),
                                       "output_padding": int(rng.integers(0, max(stride, dilation)))}}
            channels = 2 * groups
        else:
            args = {"kernel": kernel, "stride": stride, "padding": int(rng.integers(0, kernel // 2 + 1)),
                    "ceil_mode": bool(rng.random() < 0.6)}
            if kind == "avgpool":
                args["count_include_pad"] = bool(rng.random() < 0.5)
            layer, channels = {kind: args}, 2
        cases.append((f"{kind}-{len(cases)}", [channels, *sizes], [layer]))
    return cases


@pytest.mark.parametrize("case_id,input_shape,layers", _window_cases(), ids=[c[0] for c in _window_cases()])
def test_window_layer_gradients_sweep(tmp_path, case_id, input_shape, layers):
    """A silent wrong gradient is the worst bug an executor can have: every configuration the spec language
    accepts is checked against finite differences (shape errors are refused before)."""
    from archcheck.errors import SpecError

    try:
        analysis = build(tmp_path, input_shape, layers)
    except SpecError:
        return
    params = random_params(analysis)
    x = np.random.default_rng(3).standard_normal((2, *input_shape))
    check_network(analysis, params, x)


def _adaptive_cases(n: int = int(os.environ.get("ARCHCHECK_SWEEP", 24)) // 2, seed: int = 13):
    """Adaptive poolings of random sizes: cells that slide, overlap or keep the axis (~), pools to 1, 1-D to 3-D."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        sizes = [int(rng.integers(1, 10)) for _ in range(int(rng.integers(1, 4)))]
        size = [None if rng.random() < 0.15 else int(rng.integers(1, s + 1)) for s in sizes]
        kind = ["adaptiveavgpool", "adaptivemaxpool"][len(cases) % 2]
        cases.append((f"{kind}-{len(cases)}", [2, *sizes], [{kind: size}]))
    return cases


@pytest.mark.parametrize("case_id,input_shape,layers", _adaptive_cases(), ids=[c[0] for c in _adaptive_cases()])
def test_adaptive_pool_gradients_sweep(tmp_path, case_id, input_shape, layers):
    analysis = build(tmp_path, input_shape, layers)
    check_network(analysis, {}, np.random.default_rng(4).standard_normal((2, *input_shape)))


@pytest.mark.parametrize("shape,size", [((2, 5, 4), [3, 2]), ((1, 7), [3]), ((2, 3, 5, 4), [2, 3, 3])])
def test_adaptive_max_pool_sends_a_tied_gradient_to_the_first_maximum(tmp_path, shape, size):
    """PyTorch's rule: of equal maxima in a cell, the first in row-major order takes the gradient; cells that
    overlap on it add up. Here most cells hold ties (values 0 and 1 only)."""
    analysis = build(tmp_path, list(shape), [{"adaptivemaxpool": size}])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, *shape)).astype(float)
    tape = Tape()
    forward(analysis, {}, x, tape=tape)
    dy = rng.standard_normal((2, shape[0], *size))
    dx = backward(analysis, {}, tape, {"adaptivemaxpool_1": dy}).input
    expected = np.zeros_like(x)
    for n, c, *o in np.ndindex(*dy.shape):
        starts = [i * s // m for i, s, m in zip(o, shape[1:], size)]
        cell = x[(n, c, *(slice(a, -(-(i + 1) * s // m)) for a, i, s, m in zip(starts, o, shape[1:], size)))]
        first = np.unravel_index(cell.argmax(), cell.shape)  # numpy's argmax: the first in row-major order
        expected[(n, c, *(a + f for a, f in zip(starts, first)))] += dy[(n, c, *o)]
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("shape,args", [((2, 7, 7), {"kernel": 3, "stride": 2, "padding": 1}),
                                        ((1, 8, 9), {"kernel": 3, "stride": 2, "ceil_mode": True}),
                                        ((2, 9), {"kernel": 4, "stride": 1, "padding": 2}),
                                        ((1, 4, 5, 5), {"kernel": [2, 3, 2], "stride": [1, 2, 1]}),
                                        ((1, 13, 13), {"kernel": 12, "stride": 1})])  # 144 offsets: past int8
def test_max_pool_sends_a_tied_gradient_to_the_first_maximum(tmp_path, shape, args):
    """As PyTorch: of equal maxima in a window, the first in row-major order takes the gradient, and windows that
    overlap on it add theirs up (here most windows hold ties: values 0 and 1 only). A gradient that is infinite or
    NaN reaches its own maximum and no other input."""
    analysis = build(tmp_path, list(shape), [{"maxpool": args}])
    g = analysis.layers["maxpool_1"].geometry
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, *shape)).astype(float)
    tape = Tape()
    forward(analysis, {}, x, tape=tape)
    dy = rng.standard_normal((2, *analysis.layers["maxpool_1"].shape))
    dy[(0, 0, *(0,) * len(g.kernel))], dy[(1, 0, *(-1,) * len(g.kernel))] = np.inf, np.nan
    dx = backward(analysis, {}, tape, {"maxpool_1": dy}).input
    expected = np.zeros_like(x)
    for n, c, *o in np.ndindex(*dy.shape):
        starts = [i * s - pb for i, s, (pb, _) in zip(o, g.stride, g.pads)]
        window = tuple(slice(max(a, 0), a + k) for a, k in zip(starts, g.kernel))  # (padding never wins)
        cell = x[(n, c, *window)]
        first = np.unravel_index(cell.argmax(), cell.shape)  # numpy's argmax: the first in row-major order
        expected[(n, c, *(w.start + f for w, f in zip(window, first)))] += dy[(n, c, *o)]
    np.testing.assert_array_equal(dx, expected)
    assert np.isinf(dx).sum() == 1 and np.isnan(dx).sum() == 1


def test_a_wrong_shaped_input_gradient_fails_loudly(tmp_path, monkeypatch):
    """The executor checks each input gradient against its input's shape: the issue-7 convtranspose bug
    (one position too many, silently) now stops the backward pass with the layer named."""
    from archcheck.layers.conv import ConvTranspose

    right = ConvTranspose.backward

    def one_too_many(self, dy, cache, params):
        dxs, grads = right(self, dy, cache, params)
        return [np.concatenate([dxs[0], dxs[0][..., :1]], axis=-1)], grads

    monkeypatch.setattr(ConvTranspose, "backward", one_too_many)
    analysis = build(tmp_path, [1, 2], ["identity", {"convtranspose": {"filters": 1, "kernel": 2}}])
    x = np.random.default_rng(0).standard_normal((1, 1, 2))
    with pytest.raises(RuntimeError, match=r"the input gradient of layer 'convtranspose_1' \(convtranspose\) has "
                                           r"shape \(1, 3\), but its input 'identity_1' has \(1, 2\)"):
        check_network(analysis, random_params(analysis), x)


@pytest.mark.parametrize("sizes,kernel,stride,dilation,pads,groups,filters", [
    ((9, 9), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 1, 8),  # im2col + GEMM; stride 1: the input gradient a conv
    ((11, 10), (7, 7), (2, 2), (1, 1), [(3, 3), (3, 3)], 1, 8),  # ResNet's stem: the scattered input gradient
    ((6, 50), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 4, 4),  # depthwise, long rows (flat lines)
    ((9, 9), (5, 5), (2, 2), (1, 1), [(2, 2), (2, 2)], 4, 8),  # depthwise, banded, a channel multiplier
    ((8, 7), (3, 2), (2, 3), (1, 2), [(2, 0), (1, 3)], 2, 8),  # grouped
])
def test_convolutions_cut_over_threads_compute_what_one_thread_does(sizes, kernel, stride, dilation, pads, groups,
                                                                    filters):
    """With ``kernels.threads``, a convolution, its weight gradient and its input gradient cut the batch into runs of
    samples worked side by side (odd runs: 7 samples over 3 threads), the scratch shared, with the one-thread
    values (float64, to rounding: a weight gradient adds the runs' sums)."""
    rng = np.random.default_rng(2)
    channels = 4
    x = rng.standard_normal((7, channels, *sizes))
    w = rng.standard_normal((filters, channels // groups, *kernel))
    b = rng.standard_normal(filters)
    out = conv_out(sizes, kernel, stride, dilation, pads)

    def every():
        y = kernels.conv(x, w, stride, dilation, pads, out, groups, b)
        dy = np.cos(y)
        return (y, kernels.conv_grad_weight(x, dy, kernel, stride, dilation, pads, groups),
                kernels.conv_grad_input(dy, w, sizes, stride, dilation, pads, groups))

    one = every()
    seen = set()
    work = kernels.side_by_side

    def spy(n, fn):
        results = work(n, fn)
        seen.add(len(results))
        return results

    with kernels.threads(3), pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "side_by_side", spy)
        cut = every()
    assert seen == {3}
    for a, c in zip(one, cut):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())
