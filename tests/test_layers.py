"""Per layer type: input shape -> output shape, parameters, buffers, MACs, receptive-field step."""

import itertools
import math
from collections import Counter
from fractions import Fraction as F
from typing import ClassVar, get_args

import pytest

from archcheck.layers import CATALOGUE, ShapeError
from archcheck.layers.base import ACTIVATION_KINDS, KINDS, NORM_KINDS, Category, Geometry, Layer, count


def make(kind, **args):
    return CATALOGUE[kind].model_validate(args)


# (type, args, input shapes, output shape, params, buffers, MACs)
TABLE = [
    # the seeds' hand-checked cases
    ("conv", dict(filters=6, kernel=5), [(3, 32, 32)], (6, 28, 28), 456, 0, 6 * 28 * 28 * 3 * 25),
    ("maxpool", dict(kernel=2), [(64, 7, 7)], (64, 3, 3), 0, 0, 0),
    ("conv", dict(filters=96, kernel=11, stride=4), [(3, 227, 227)], (96, 55, 55), 34_944, 0,
     96 * 55 * 55 * 3 * 121),
    # convolution variants, 1-D / 2-D / 3-D
    ("conv", dict(filters=16, kernel=3, padding=1), [(8, 50)], (16, 50), 16 * 8 * 3 + 16, 0, 16 * 50 * 8 * 3),
    ("conv", dict(filters=16, kernel=3, padding=1, bias=False), [(8, 4, 10, 10)], (16, 4, 10, 10),
     16 * 8 * 27, 0, 16 * 400 * 8 * 27),
    ("conv", dict(filters=8, kernel=[1, 7], padding=[0, 3]), [(4, 9, 9)], (8, 9, 9), 8 * 4 * 7 + 8, 0,
     8 * 81 * 4 * 7),
    ("conv", dict(filters=8, kernel=3, padding="same", stride=2), [(4, 9, 9)], (8, 5, 5), 8 * 4 * 9 + 8, 0,
     8 * 25 * 4 * 9),
    ("conv", dict(filters=8, kernel=3, padding="valid"), [(4, 9, 9)], (8, 7, 7), 8 * 4 * 9 + 8, 0, 8 * 49 * 36),
    ("conv", dict(filters=8, kernel=3, dilation=2, padding=2), [(4, 9, 9)], (8, 9, 9), 8 * 4 * 9 + 8, 0,
     8 * 81 * 36),
    ("conv", dict(filters=32, kernel=3, padding=1, groups="depthwise", bias=False), [(32, 8, 8)], (32, 8, 8),
     32 * 9, 0, 32 * 64 * 9),
    ("conv", dict(filters=64, kernel=3, padding=1, groups=4), [(32, 8, 8)], (64, 8, 8), 64 * 8 * 9 + 64, 0,
     64 * 64 * 8 * 9),
    ("conv", dict(filters=8, kernel=3, padding=[[0, 1], [2, 0]]), [(2, 6, 6)], (8, 5, 6), 8 * 18 + 8, 0,
     8 * 30 * 18),
    ("convtranspose", dict(filters=16, kernel=4, stride=2, padding=1), [(32, 8, 8)], (16, 16, 16),
     32 * 16 * 16 + 16, 0, 32 * 64 * 16 * 16),
    ("convtranspose", dict(filters=4, kernel=3, stride=2, padding=1, output_padding=1), [(8, 5)], (4, 10),
     8 * 4 * 3 + 4, 0, 8 * 5 * 4 * 3),
    ("locallyconnected", dict(filters=4, kernel=3), [(2, 6, 6)], (4, 4, 4), 4 * 16 * 2 * 9 + 4 * 16, 0,
     4 * 16 * 2 * 9),
    # pooling
    ("maxpool", dict(kernel=3, stride=2, padding=1), [(64, 112, 112)], (64, 56, 56), 0, 0, 0),
    ("maxpool", dict(kernel=3, stride=2, ceil_mode=True), [(64, 112, 112)], (64, 56, 56), 0, 0, 0),
    ("maxpool", dict(kernel=2, ceil_mode=True), [(8, 7, 7)], (8, 4, 4), 0, 0, 0),
    ("avgpool", dict(kernel=2), [(8, 16)], (8, 8), 0, 0, 0),
    ("maxpool", dict(kernel=[1, 2, 2]), [(8, 16, 32, 32)], (8, 16, 16, 16), 0, 0, 0),
    ("globalavgpool", {}, [(512, 7, 7)], (512,), 0, 0, 0),
    ("adaptiveavgpool", dict(size=7), [(512, 7, 7)], (512, 7, 7), 0, 0, 0),  # VGG's, at 224: the identity
    ("adaptiveavgpool", dict(size=7), [(512, 10, 13)], (512, 7, 7), 0, 0, 0),
    ("adaptiveavgpool", dict(size=[None, 3]), [(8, 5, 9)], (8, 5, 3), 0, 0, 0),
    ("adaptivemaxpool", dict(size=1), [(16, 6, 6, 6)], (16, 1, 1, 1), 0, 0, 0),
    ("adaptivemaxpool", dict(size=4), [(8, 10)], (8, 4), 0, 0, 0),
    ("globalmaxpool", dict(keepdims=True), [(512, 7, 7)], (512, 1, 1), 0, 0, 0),
    # dense, norm, reshape family
    ("dense", dict(units=10), [(84,)], (10,), 850, 0, 840),
    ("dense", dict(units=4096, bias=False), [(25088,)], (4096,), 25088 * 4096, 0, 25088 * 4096),
    ("batchnorm", {}, [(64, 56, 56)], (64, 56, 56), 128, 128, 0),
    ("batchnorm", dict(affine=False), [(64,)], (64,), 0, 128, 0),
    ("batchnorm", dict(scale=False), [(32, 8, 8)], (32, 8, 8), 32, 64, 0),
    ("batchnorm", dict(center=False), [(32, 8)], (32, 8), 32, 64, 0),
    ("batchnorm", dict(affine=False, center=False), [(32,)], (32,), 0, 64, 0),
    ("groupnorm", dict(groups=32), [(256, 14, 14)], (256, 14, 14), 512, 0, 0),
    ("groupnorm", dict(groups=2, affine=False), [(8,)], (8,), 0, 0, 0),
    ("instancenorm", {}, [(64, 32, 32)], (64, 32, 32), 0, 0, 0),
    ("instancenorm", dict(affine=True), [(16, 10)], (16, 10), 32, 0, 0),
    ("layerscale", {}, [(96, 56, 56)], (96, 56, 56), 96, 0, 0),
    ("layerscale", {"init": 0.1}, [(8,)], (8,), 8, 0, 0),
    ("layernorm", {}, [(96, 56, 56)], (96, 56, 56), 192, 0, 0),
    ("layernorm", dict(over="all"), [(4, 5, 5)], (4, 5, 5), 200, 0, 0),
    ("flatten", {}, [(512, 7, 7)], (25088,), 0, 0, 0),
    ("reshape", dict(shape=[16, -1]), [(4, 8, 8)], (16, 16), 0, 0, 0),
    ("zeropad", dict(padding=[1, [2, 3]]), [(3, 10, 10)], (3, 12, 15), 0, 0, 0),
    ("upsample", dict(scale=2), [(3, 10, 10)], (3, 20, 20), 0, 0, 0),
    ("upsample", dict(scale=[1, 2, 2], mode="linear"), [(3, 4, 10, 10)], (3, 4, 20, 20), 0, 0, 0),
    ("identity", {}, [(3, 10)], (3, 10), 0, 0, 0),
    ("dropout", dict(rate=0.2), [(100,)], (100,), 0, 0, 0),
    ("channelshuffle", dict(groups=4), [(116, 28, 28)], (116, 28, 28), 0, 0, 0),
    ("channelshuffle", dict(groups=3), [(12,)], (12,), 0, 0, 0),
    ("pixelshuffle", dict(factor=3), [(27, 10, 12)], (3, 30, 36), 0, 0, 0),
    ("pixelshuffle", dict(factor=2), [(8, 5)], (4, 10), 0, 0, 0),
    ("pixelshuffle", dict(factor=2), [(16, 2, 3, 4)], (2, 4, 6, 8), 0, 0, 0),
    ("pixelunshuffle", dict(factor=2), [(3, 10, 12)], (12, 5, 6), 0, 0, 0),
    ("pixelunshuffle", dict(factor=3), [(2, 9)], (6, 3), 0, 0, 0),
    ("slice", dict(stop=58), [(116, 28, 28)], (58, 28, 28), 0, 0, 0),
    ("slice", dict(start=-58), [(116, 28, 28)], (58, 28, 28), 0, 0, 0),
    ("slice", dict(start=2, stop=-3, axis=2), [(3, 8, 10)], (3, 8, 5), 0, 0, 0),
    ("slice", dict(start=1, axis=1), [(4, 6, 2, 2)], (4, 5, 2, 2), 0, 0, 0),
    ("slice", dict(start=3, stop=5), [(10,)], (2,), 0, 0, 0),
    ("droppath", dict(rate=0.2), [(96, 56, 56)], (96, 56, 56), 0, 0, 0),
    # merges
    ("add", {}, [(64, 8, 8), (64, 8, 8)], (64, 8, 8), 0, 0, 0),
    ("multiply", {}, [(64, 8, 8), (64, 1, 1)], (64, 8, 8), 0, 0, 0),
    ("concat", {}, [(64, 8, 8), (32, 8, 8), (16, 8, 8)], (112, 8, 8), 0, 0, 0),
    ("concat", dict(axis=2), [(4, 8, 3), (4, 8, 5)], (4, 8, 8), 0, 0, 0),
] + [(act, {}, [(16, 4, 4)], (16, 4, 4), 0, 0, 0)
     for act in ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh", "hardswish", "swish",
                 "softmax", "hardsigmoid", "mish")]


@pytest.mark.parametrize("kind,args,ins,out,params,buffers,macs", TABLE,
                         ids=[f"{t[0]}-{i}" for i, t in enumerate(TABLE)])
def test_layer_facts(kind, args, ins, out, params, buffers, macs):
    layer = make(kind, **args)
    assert layer.output_shape(ins) == out
    assert count(layer.weight_shapes(ins)) == params
    assert count(layer.buffer_shapes(ins)) == buffers
    assert layer.macs(ins, out) == macs
    assert layer.flops(ins, out) >= 2 * macs


def test_every_layer_type_is_in_the_table():
    assert {row[0] for row in TABLE} == set(CATALOGUE)


def test_weight_layouts_follow_pytorch():
    assert make("conv", filters=8, kernel=3, groups=2).weight_shapes([(4, 9, 9)]) == {
        "weight": (8, 2, 3, 3), "bias": (8,)}
    assert make("convtranspose", filters=8, kernel=4, groups=2).weight_shapes([(4, 9, 9)]) == {
        "weight": (4, 4, 4, 4), "bias": (8,)}
    assert make("dense", units=10).weight_shapes([(84,)]) == {"weight": (10, 84), "bias": (10,)}
    assert make("batchnorm").buffer_shapes([(6, 2, 2)]) == {"running_mean": (6,), "running_var": (6,)}


@pytest.mark.parametrize("kind,args,ins,steps", [
    ("conv", dict(filters=1, kernel=3, stride=2, padding=1), [(1, 8, 8)], [(3, 2, 1)] * 2),
    ("conv", dict(filters=1, kernel=3, dilation=3, padding=3), [(1, 16)], [(7, 1, 3)]),
    ("maxpool", dict(kernel=3, stride=2, padding=1), [(1, 8, 8)], [(3, 2, 1)] * 2),
    ("convtranspose", dict(filters=1, kernel=4, stride=2, padding=1), [(1, 8)], [(F(5, 2), F(1, 2), 1)]),
    ("upsample", dict(scale=2), [(1, 8)], [(1, F(1, 2), 0)]),
    ("zeropad", dict(padding=2), [(1, 8)], [(1, 1, 2)]),
    ("adaptiveavgpool", dict(size=7), [(1, 14, 14)], [(2, 2, 0)] * 2),  # divisible: kernel = stride = n/m
    ("adaptivemaxpool", dict(size=7), [(1, 8)], [(2, 1, 0)]),  # cells [i, i+2): one sliding window, exact
    ("adaptiveavgpool", dict(size=7), [(1, 10)], [(3, F(10, 7), 0)]),  # widths 2 or 3: the widest, n/m apart
    ("adaptiveavgpool", dict(size=[None, 2]), [(1, 5, 4)], [(1, 1, 0), (2, 2, 0)]),
    ("pixelshuffle", dict(factor=2), [(4, 8, 8)], [(1, F(1, 2), 0)] * 2),
    ("pixelunshuffle", dict(factor=3), [(1, 9)], [(3, 3, 0)]),
    ("slice", dict(start=2, stop=-3, axis=2), [(1, 8, 10)], [(1, 1, 0), (1, 1, -2)]),  # a crop moves the offset
    ("slice", dict(start=-4, axis=1), [(1, 9)], [(1, 1, -5)]),
])
def test_receptive_field_steps(kind, args, ins, steps):
    layer = make(kind, **args)
    got = layer.rf_steps(ins, layer.output_shape(ins))
    assert [(s.kernel, s.stride, s.pad) for s in got] == [tuple(F(x) for x in step) for step in steps]


@pytest.mark.parametrize("kind", ["globalavgpool", "flatten"])
def test_global_layers_make_the_field_the_whole_input(kind):
    layer = make(kind)
    assert layer.rf_steps([(8, 4, 4)], layer.output_shape([(8, 4, 4)])) == "global"


@pytest.mark.parametrize("kind", ["adaptiveavgpool", "adaptivemaxpool"])
def test_an_adaptive_pool_to_one_makes_the_field_the_whole_input(kind):
    assert make(kind, size=1).rf_steps([(8, 5, 7)], (8, 1, 1)) == "global"
    assert make(kind, size=[1, 2]).rf_steps([(8, 5, 7)], (8, 1, 2)) != "global"


@pytest.mark.parametrize("n,m,cells", [
    (10, 7, ((0, 2), (1, 3), (2, 5), (4, 6), (5, 8), (7, 9), (8, 10))),  # by hand: [floor(10i/7), ceil(10(i+1)/7))
    (14, 7, tuple((2 * i, 2 * i + 2) for i in range(7))),
    (5, 3, ((0, 2), (1, 4), (3, 5))),
    (6, 1, ((0, 6),)),
    (4, 4, ((0, 1), (1, 2), (2, 3), (3, 4))),
])
def test_adaptive_cells_follow_pytorch(n, m, cells):
    g = make("adaptiveavgpool", size=m).geometry((2, n))
    assert g.cells == (cells,)
    assert g.kernel == (max(b - a for a, b in cells),) and g.stride == (n // m,)
    widths, starts = {b - a for a, b in cells}, [a for a, _ in cells]
    assert g.slides == (len(widths) == 1 and starts == [i * (n // m) for i in range(m)])


@pytest.mark.parametrize("size,ins", [(4, (3, 8, 8)), (7, (3, 10, 13)), ([None, 2, 1], (2, 5, 4, 6)), (1, (4, 9))])
def test_adaptive_pool_flops_count_each_cell_as_the_window_pools_do(size, ins):
    """Average: each cell's volume per output (its adds and a divide, as avgpool); max: one less (comparisons,
    as maxpool). Where the cells slide, exactly the figure of the window pooling they are."""
    avg, top = make("adaptiveavgpool", size=size), make("adaptivemaxpool", size=size)
    g = avg.geometry(ins)
    volumes = [math.prod(b - a for a, b in spans) for spans in itertools.product(*g.cells)]
    assert avg.flops([ins], None) == ins[0] * sum(volumes)
    assert top.flops([ins], None) == ins[0] * sum(v - 1 for v in volumes)
    if g.slides:
        out = avg.output_shape([ins])
        assert avg.flops([ins], None) == make("avgpool", kernel=list(g.kernel), stride=list(g.stride)).flops([ins], out)
        assert top.flops([ins], None) == make("maxpool", kernel=list(g.kernel), stride=list(g.stride)).flops([ins], out)


@pytest.mark.parametrize("kind,args,ins,message", [
    ("conv", dict(filters=8, kernel=5), [(3, 4, 4)],
     "the 5-wide window does not fit the padded input along H: input 4 + padding 0+0 = 4 < 5"),
    ("conv", dict(filters=8, kernel=3, dilation=3), [(3, 6, 6)], "the 3-wide window (dilated to 7)"),
    ("conv", dict(filters=8, groups=3), [(4, 8, 8)], "groups=3 does not divide the 4 input channels"),
    ("conv", dict(filters=8, kernel=[3, 3]), [(4, 8)], "'kernel' has 2 values [3, 3] but the input has 1 spatial axis"),
    ("conv", dict(filters=8), [(100,)], "conv expects a 1-D, 2-D or 3-D feature map"),
    ("dense", dict(units=10), [(8, 4, 4)], "dense expects a flat vector (F,), not a feature map"),
    ("maxpool", dict(kernel=2, padding=2), [(8, 4, 4)], "padding 2 is more than half the 2-wide window"),
    ("add", {}, [(8, 4, 4), (16, 4, 4)], "the inputs differ along channels (8 vs 16)"),
    ("concat", {}, [(8, 4, 4), (8, 2, 2)], "the inputs differ along H (4 vs 2); only the concat axis (channels)"),
    ("reshape", dict(shape=[3, -1]), [(4, 2)], "8 is not divisible by 3"),
    ("convtranspose", dict(filters=2, kernel=1, padding=2), [(2, 2)], "the output size would be -2"),
    ("channelshuffle", dict(groups=4), [(6, 8, 8)], "groups=4 does not divide the 6 input channels"),
    ("pixelshuffle", dict(factor=2), [(6, 3, 3)], "the 6 input channels are not divisible by factor^2 = 4"),
    ("pixelshuffle", dict(factor=2), [(8,)], "pixelshuffle expects a 1-D, 2-D or 3-D feature map"),
    ("pixelunshuffle", dict(factor=2), [(3, 4, 5)], "W = 5 is not divisible by the factor 2"),
    ("slice", dict(stop=30), [(24, 8, 8)], "stop=30 is outside the 24 channels: expected from -24 to 24"),
    ("slice", dict(start=-9, axis=1), [(2, 8)], "start=-9 is outside the 8 positions along L: expected from -8 to 8"),
    ("slice", dict(start=12, stop=-12), [(24, 8, 8)], "start=12, stop=-12 keep nothing of the 24 channels"),
    ("slice", dict(axis=2), [(24, 8)], "axis 2 does not exist in an input with 2 axes"),
    ("adaptiveavgpool", dict(size=7), [(512, 6, 6)],
     "size 7 asks for a larger output than its input (7 along H from 6, 7 along W from 6): an adaptive pool would "
     "repeat input positions there instead of pooling them (expected at most 6x6)"),
    ("adaptivemaxpool", dict(size=[None, 4]), [(8, 9, 3)], "size [~, 4] asks for a larger output than its input "
     "(4 along W from 3)"),
    ("adaptivemaxpool", dict(size=[2, 2, 2]), [(4, 8, 8)], "'size' has 3 values [2, 2, 2] but the input has 2 spatial"),
    ("adaptiveavgpool", dict(size=2), [(64,)], "adaptiveavgpool expects a 1-D, 2-D or 3-D feature map"),
])
def test_shape_errors_say_what_is_wrong(kind, args, ins, message):
    with pytest.raises(ShapeError) as err:
        make(kind, **args).output_shape(ins)
    assert message in err.value.message
    assert err.value.fix


def test_a_channel_slice_keeps_the_field_and_positions():
    layer = make("slice", start=4)
    assert layer.rf_steps([(8, 4, 4)], (4, 4, 4)) is None and layer.pointwise
    assert not make("slice", axis=1).pointwise  # a crop moves positions


def test_softmax_axis_must_exist():
    with pytest.raises(ShapeError) as err:
        make("softmax", axis=1).output_shape([(10,)])
    assert err.value.message == "axis 1 does not exist in an input with 1 axis"
    assert make("softmax", axis=1).output_shape([(10, 4)]) == (10, 4)


# -- kinds: what rules and the executor know about a layer type -----------------------------------

def _declared(cls, names):
    return [name for name in names if not hasattr(cls, name)]


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_every_layer_type_declares_its_kinds(kind):
    """A type that leaves a kind out fails here, rather than meeting every rule as "none of the above"."""
    cls = CATALOGUE[kind]
    assert not _declared(cls, KINDS), f"{kind} leaves kinds undeclared: {_declared(cls, KINDS)}"
    assert cls.category in get_args(Category)
    layer = make(kind, **EXAMPLE_ARGS.get(kind, {}))
    for name in KINDS[1:]:
        assert isinstance(getattr(layer, name), bool), (kind, name)
    if cls.normalises:
        assert not _declared(cls, NORM_KINDS), f"{kind} leaves norm kinds undeclared: {_declared(cls, NORM_KINDS)}"
    if cls.activation:
        assert not _declared(cls, ACTIVATION_KINDS), \
            f"{kind} leaves activation kinds undeclared: {_declared(cls, ACTIVATION_KINDS)}"
        low, high = layer.output_range
        assert low < high and layer.peak_gradient > 0


def test_a_new_layer_type_without_kinds_is_caught():
    class Bare(Layer):
        type: ClassVar[str] = "bare"

    assert _declared(Bare, KINDS) == list(KINDS)


EXAMPLE_ARGS = {"conv": {"filters": 4}, "convtranspose": {"filters": 4}, "locallyconnected": {"filters": 4},
                "dense": {"units": 4}, "reshape": {"shape": [4]}, "groupnorm": {"groups": 1},
                "channelshuffle": {"groups": 2}, "pixelshuffle": {"factor": 2}, "pixelunshuffle": {"factor": 2},
                "adaptiveavgpool": {"size": 2}, "adaptivemaxpool": {"size": 2}}

# Each kind against the layer types that have it: a wrong declaration changes what every rule sees.
HAVE = {
    "weighted": {"conv", "convtranspose", "locallyconnected", "dense"},
    "window": {"conv", "convtranspose", "locallyconnected", "maxpool", "avgpool", "adaptiveavgpool", "adaptivemaxpool"},
    "upsamples": {"convtranspose", "upsample", "pixelshuffle"},
    "global_pool": {"globalavgpool", "globalmaxpool"},
    "normalises": {"batchnorm", "layernorm", "groupnorm", "instancenorm"},
    "gate": {"multiply"},
    "passes": {"identity", "dropout", "droppath", "flatten", "reshape", "zeropad", "channelshuffle", "pixelshuffle",
               "pixelunshuffle", "slice"},
    "activation": {"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "hardswish", "sigmoid", "tanh",
                   "softmax", "hardsigmoid", "mish"},
    "linear": {"conv", "convtranspose", "locallyconnected", "dense", "avgpool", "adaptiveavgpool", "globalavgpool",
               "batchnorm", "add",
               "concat", "layerscale", "identity", "dropout", "droppath", "flatten", "reshape", "zeropad", "upsample",
               "channelshuffle", "pixelshuffle", "pixelunshuffle", "slice"},
}


@pytest.mark.parametrize("name", sorted(HAVE))
def test_kinds_name_the_right_layer_types(name):
    assert {t for t, cls in CATALOGUE.items() if getattr(cls, name)} == HAVE[name]


@pytest.mark.parametrize("kind", sorted(t for t, cls in CATALOGUE.items() if cls.activation and t != "softmax"))
def test_activation_range_and_peak_gradient_match_the_function(kind):
    """output_range and peak_gradient, checked against the NumPy function and its derivative on a fine grid."""
    np = pytest.importorskip("numpy")
    layer = make(kind)
    x = np.linspace(-40, 40, 800_001)
    y = layer.fn(x)
    dy = layer.fn_grad(x, y, np.ones_like(x))
    low, high = layer.output_range
    assert low - 1e-9 <= y.min() and y.max() <= high + 1e-9
    # a finite bound is reached; an infinite one is still being approached at the grid's end
    assert y[0] < y[1] if np.isinf(low) else y.min() == pytest.approx(low, abs=1e-6)
    assert y[-1] > y[-2] if np.isinf(high) else y.max() == pytest.approx(high, abs=1e-6)
    assert dy.max() == pytest.approx(layer.peak_gradient, rel=1e-6)


@pytest.mark.parametrize("kind", sorted(t for t, cls in CATALOGUE.items() if cls.activation and cls.reads_half))
def test_an_activation_that_begins_by_halving_gives_the_same_values_from_a_halved_input(kind):
    """``of_half(h)``, written over ``h``, is ``fn(2 * h)`` to the last bit (float32 and float64, across the
    blocks the function works in): the inference plan folds the halving into the layer before, exactly."""
    np = pytest.importorskip("numpy")
    assert kind in {"swish", "sigmoid"}
    layer = make(kind)
    for dtype in ("float32", "float64"):
        x = np.random.default_rng(5).standard_normal(300_001).astype(dtype) * 12
        h = x * 0.5
        y = layer.of_half(h)
        assert y is h or np.shares_memory(y, h)
        np.testing.assert_array_equal(y, layer.fn(x))


def test_gelu_takes_its_erfs_a_block_at_a_time():
    """GELU's exact erf is one Python float per value (NumPy has none of its own): made a block at a time, so that
    what it holds beside its output stays small (a whole tensor's would be eight times the tensor)."""
    np = pytest.importorskip("numpy")
    import math
    import tracemalloc

    x = np.random.default_rng(7).standard_normal(2**21).astype(np.float32) * 3
    tracemalloc.start()
    y = make("gelu").fn(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * x.nbytes
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[:: 997].astype(float)])
    np.testing.assert_allclose(y[:: 997], exact, rtol=1e-6, atol=1e-7)


def test_a_window_geometry_is_a_named_record():
    assert make("conv", filters=8, kernel=3, stride=2, padding="same").geometry((4, 9, 9)) == Geometry(
        channels=4, in_sizes=(9, 9), kernel=(3, 3), stride=(2, 2), dilation=(1, 1), pads=((1, 1), (1, 1)),
        out_sizes=(5, 5))
    assert make("maxpool", kernel=3, stride=2, ceil_mode=True).geometry((8, 8)) == Geometry(
        8, (8,), (3,), (2,), (1,), ((0, 0),), (4,))
    assert make("relu").geometry((8, 4, 4)) is None and make("globalavgpool").geometry((8, 4, 4)) is None
    assert make("adaptivemaxpool", size=[7, 2]).geometry((8, 10, 4)) == Geometry(
        8, (10, 4), kernel=(3, 2), stride=(1, 2), dilation=(1, 1), pads=((0, 0), (0, 0)), out_sizes=(7, 2),
        cells=(((0, 2), (1, 3), (2, 5), (4, 6), (5, 8), (7, 9), (8, 10)), ((0, 2), (2, 4))))


WINDOWS = ["conv", "convtranspose", "locallyconnected", "maxpool", "avgpool", "adaptivemaxpool", "adaptiveavgpool"]


def test_each_window_is_worked_out_once_and_read_from_the_facts(tmp_path, monkeypatch):
    """The propagator, the layer's own figures, the executor (forward and backward) and the ONNX export
    all read one Geometry per node; none works it out again."""
    import numpy as np

    from archcheck.executor import gradients, init_params, random_targets
    from archcheck.onnx_export import export_model
    from archcheck.pipeline import analyze
    from archcheck.propagate import param_shapes

    worked_out = Counter()

    def counting(compute):
        def counted(self, shape):
            worked_out[id(self)] += 1
            return compute(self, shape)
        return counted

    for cls in {c for layer in CATALOGUE.values() for c in layer.__mro__ if "_geometry" in vars(c)}:
        monkeypatch.setattr(cls, "_geometry", counting(vars(cls)["_geometry"]))
    spec = tmp_path / "net.yaml"
    spec.write_text("""name: windows
input: [3, 12, 12]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 3, stride: 2, ceil_mode: true}
  - convtranspose: {filters: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1}
  - locallyconnected: {filters: 4, kernel: 3, stride: 2}
  - adaptivemaxpool: [3, ~]
  - avgpool: {kernel: 2, padding: 1}
  - adaptiveavgpool: 1
  - flatten
  - dense: 3
""")
    analysis = analyze(spec)
    param_shapes(analysis)
    params = init_params(analysis)
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype("float32")
    gradients(analysis, params, x, random_targets(analysis, 2, "cross-entropy", np.random.default_rng(0)))
    export_model(analysis, params)
    windows = [f for f in analysis.layers.values() if f.node.type in WINDOWS]
    assert len(windows) == len(WINDOWS)
    assert all(f.geometry is f.node.layer.geometry(f.in_shapes[0]) for f in windows)
    assert all(f.geometry is None for f in analysis.layers.values() if f.node.type not in WINDOWS)
    assert sorted(worked_out.values()) == [1] * len(WINDOWS)
