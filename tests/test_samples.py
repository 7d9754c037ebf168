"""The sample specs: every one analyses, and the reference networks match their published totals.

Parameters are trainable ones (batchnorm running statistics excluded); MACs count convolutions and
dense layers only, the torchvision / fvcore convention. The figures are torchvision's.

The modern samples state their figures in `metadata.published`, which tests/test_zoo.py compares with
archcheck's totals (for every sample that has one); here TORCHVISION pins what those figures must be.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from archcheck.pipeline import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

# torchvision 0.29.1 at 224x224 RGB, batch 1, exactly: (trainable parameters, buffers = batchnorm's running
# mean and variance, conv + dense MACs). Each sample's metadata.published states the same figures, which
# test_zoo.py compares with the analysis too.
TORCHVISION = {
    "efficientnet_b0": (5_288_548, 42_016, 385_814_752),
    "mobilenet_v3_large": (5_483_032, 24_400, 216_589_760),
    "convnext_tiny": (28_589_128, 0, 4_455_531_264),  # layer scale counted as parameters
    "regnet_y_400mf": (4_344_144, 27_152, 401_842_848),
    "shufflenet_v2_x1_0": (2_278_604, 16_180, 144_907_992),
    "resnext50_32x4d": (25_028_904, 68_224, 4_230_479_872),
}

# name: (trainable params, buffers (batchnorm's running mean and variance), MACs, receptive field (r, S, P)
# on every spatial axis of the last spatial layer, or None where not checked)
PUBLISHED = {
    "lenet5": (61_706, 0, 416_520, None),  # MACs by hand: 117,600 + 240,000 + 48,000 + 10,080 + 840
    "alexnet": (61_100_840, 0, 714_188_480, None),
    "vgg16": (138_357_544, 0, 15_470_264_320, (212, 32, 90)),
    "googlenet": (6_624_904, 14_560, 1_498_376_192, None),
    "resnet18": (11_689_512, 9_600, 1_814_073_344, None),
    "resnet50": (25_557_032, 53_120, 4_089_184_256, (427, 32, 213)),
    "mobilenetv2": (3_504_872, 34_112, 300_774_272, None),
    **{name: (*figures, None) for name, figures in TORCHVISION.items()},
    "mobilenet_v3_large": (*TORCHVISION["mobilenet_v3_large"], (595, 32, 297)),
    "shufflenet_v2_x1_0": (*TORCHVISION["shufflenet_v2_x1_0"], (527, 32, 263)),
    # 256x256, padded: MACs by hand, sum over levels of H*W*9*C_in*C_out, the up-convolutions' H*W*C_in*C_out*4
    # at their input size and the 1x1 classifier
    "unet": (31_030_658, 0, 48_096_083_968, (215, 1, 107)),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_figures_are_published_exactly(name):
    published = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())["metadata"]["published"]
    assert published == dict(zip(("params", "buffers", "macs"), TORCHVISION[name]))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_totals(name):
    params, buffers, macs, rf = PUBLISHED[name]
    totals = analyze(SAMPLES / f"{name}.yaml").totals
    assert totals.trainable == params
    assert totals.non_trainable == buffers
    if macs is not None:
        assert totals.macs == macs
    if rf is not None:
        _, field = totals.receptive_field
        expected = tuple(Fraction(v) for v in rf)
        assert field.axes and all((a.r, a.S, a.P) == expected for a in field.axes)


@pytest.mark.parametrize("side,macs,field", [
    (224, 15_470_264_320, (212, 32, 90)),  # the published figures: the adaptive pool is the identity on 7x7
    (256, 20_168_212_480, (244, 32, 90)),  # 8x8 -> 7x7: 2x2 cells, stride 1
    (320, 31_443_288_064, (276, Fraction(320, 7), 90)),  # 10x10 -> 7x7: cells 2 or 3 wide, 10/7 apart
])
def test_vgg16_keeps_its_classifier_at_other_input_sizes(side, macs, field):
    """torchvision's VGG-16 pools its last map adaptively to 7x7, so the classifier, and every parameter, is
    the same at any input of 224 or more; the convolutions' MACs grow with the input's area."""
    analysis = analyze(SAMPLES / "vgg16.yaml", input_shape=(3, side, side))
    assert analysis.totals.trainable == 138_357_544
    assert analysis.layers["adaptiveavgpool_1"].shape == (512, 7, 7)
    dense = sum(f.macs for f in analysis.layers.values() if f.node.type == "dense")
    assert dense == 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert (macs - dense) * 224**2 == (15_470_264_320 - dense) * side**2
    assert analysis.totals.macs == macs
    _, rf = analysis.totals.receptive_field
    assert all((a.r, a.S, a.P) == tuple(Fraction(v) for v in field) for a in rf.axes)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_sample_analyses(path):
    analysis = analyze(path)
    assert analysis.totals.trainable > 0
    assert analysis.totals.macs > 0


def test_reference_samples_exist():
    names = {p.stem for p in SAMPLES.glob("*.yaml")}
    assert set(PUBLISHED) <= names
    assert {"timeseries1d", "video3d", "bad_pool_early", "bad_pool_near_output", "bad_strided",
            "bad_even_kernel", "bad_channels", "bad_sigmoid"} <= names
