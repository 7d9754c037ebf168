"""The rule catalogue: the module contract, and for every rule a spec that triggers it and one that does not.

Rules are called directly (``check(analysis, {**OPTIONS})``), without the lint engine. Each failing
case names the layers flagged with their spec line and the numbers the message must state. The
dynamic rules (KIND = "dynamic", AC8xx) are called on crafted run records, and their documented
examples are run through the executor.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
import textwrap
from pathlib import Path

import archcheck.rules
import pytest

from archcheck.findings import SEVERITIES, Report
from archcheck.pipeline import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ALL = {info.name: importlib.import_module(f"archcheck.rules.{info.name}")
       for info in pkgutil.iter_modules(archcheck.rules.__path__) if not info.name.startswith("_")}
MODULES = {name: m for name, m in ALL.items() if getattr(m, "KIND", "static") == "static"}
DYNAMIC = {name: m for name, m in ALL.items() if getattr(m, "KIND", "static") == "dynamic"}
SECTIONS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Options", "## References")


def run(module, tmp_path: Path, text: str, **options) -> list[Report]:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return list(module.check(analyze(path), {**module.OPTIONS, **options}))


def found(reports: list[Report]) -> list[tuple[str, int]]:
    return [(r.layer.name, r.layer.loc.line) for r in reports]


# rule: (spec that triggers it, [(layer, line, [text the message (or, after "fix: ", the fix) must contain])],
#        spec that does not)
CASES = {
    "pool_too_early": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 10
        """, [("maxpool_1", 5, ["32x32 -> 16x16", "after 1 convolution since the input", "expected at least 2",
                                "span only 3 pixels"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - maxpool: {kernel: 3, stride: 1, padding: 1}   # not downsampling
          - globalavgpool
          - dense: 10
        """),
    "pool_near_output": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - flatten
          - dense: 10
        """, [("maxpool_1", 7, ["32x32 -> 16x16", "only 1 layer with weights", "expected at least 2"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - flatten                 # VGG's head: hidden dense layers work on the pooled map
          - dense: 64
          - relu
          - dense: 10
        """),
    "pool_window": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 4
          - globalavgpool
          - dense: 10
        """, [("maxpool_1", 5, ["window 4x4 and stride 4 (expected window/stride 2/2 or 3/2)"])], """
        input: [3, 16, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: [1, 2, 2]
          - maxpool: {kernel: 3, stride: 2}
          - maxpool: {kernel: 3, stride: 1, padding: 1}
          - globalavgpool
          - dense: 10
        """),
    "strided_conv": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 64, kernel: 3, stride: 2, padding: 1}
          - relu
        """, [("conv_2", 5, ["32x32 -> 16x16", "kernel 3x3 and stride 2", "1 in 4 positions", "1 to 4 times"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - convtranspose: {filters: 16, kernel: 4, stride: 2, padding: 1}
        """),
    "uneven_stride_coverage": ("""
        input: [8, 16, 16]
        layers:
          - conv: {filters: 16, kernel: 1, stride: 2}
          - relu
          - convtranspose: {filters: 8, kernel: 3, stride: 2, padding: 1, output_padding: 1}
        """, [("conv_1", 3, ["1x1 window with stride 2", "never reads 75%"]),
              ("convtranspose_1", 5, ["3x3 kernel and stride 2", "receive 1 or 2 contributions", "checkerboard"])], """
        input: [8, 16, 16]
        layers:
          - conv: {filters: 16, kernel: 3, stride: 2, padding: 1}   # uneven but complete: strided-conv's business
          - relu
          - convtranspose: {filters: 8, kernel: 4, stride: 2, padding: 1}
        """),
    "dropped_border": ("""
        input: [3, 28, 28]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
        """, [("maxpool_3", 6, ["2x2 window with stride 2 maps 7x7 to 3x3", "1 along H, 1 along W"])], """
        input: [3, 224, 224]
        layers:
          - conv: {filters: 16, kernel: 7, stride: 2, padding: 3}   # the dropped row is padding
          - maxpool: {kernel: 3, stride: 2, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: {kernel: 2, stride: 2, ceil_mode: true}      # 7 -> 4, the last window is partial
        """),
    "even_kernel": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 4, padding: same}
          - relu
        """, [("conv_1", 3, ["4x4 kernel", "expected odd kernel sizes"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - maxpool: 2
          - convtranspose: {filters: 16, kernel: 4, stride: 2, padding: 1}
        """),
    "large_kernel": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 7, padding: 3}
          - relu
        """, [("conv_2", 5, ["7x7 kernel after 1 earlier convolution", "at most 5", "3 stacked 3x3",
                             "45% fewer weights"])], """
        input: [3, 224, 224]
        layers:
          - conv: {filters: 32, kernel: 7, stride: 2, padding: 3}   # the first convolution
          - relu
          - conv: {filters: 32, kernel: 7, padding: 3, groups: depthwise}
          - conv: {filters: 64, kernel: 5, padding: 2}
        """),
    "shrinking_conv": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3}
          - relu
        """, [("conv_1", 3, ["3x3 kernel shrinks 32x32 to 30x30", "expected 32x32", "12% of the positions"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - conv: {filters: 32, kernel: 1}
          - conv: {filters: 32, kernel: 3, stride: 2, padding: same}
        """),
    "dilation_gridding": ("""
        input: [3, 64, 64]
        layers:
          - conv: {filters: 32, kernel: 3, dilation: 2, padding: 2}
          - relu
          - conv: {filters: 32, kernel: 3, dilation: 4, padding: 4}
        """, [("conv_2", 5, ["dilation 4 right after 'conv_1' with dilation 2", "share the factor 2"])], """
        input: [3, 64, 64]
        layers:
          - conv: {filters: 32, kernel: 3, dilation: 1, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 3, dilation: 2, padding: 2}
          - relu
          - conv: {filters: 32, kernel: 3, dilation: 5, padding: 5}
        """),
    "input_not_divisible": ("""
        input: [3, 36, 36]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
        """, [("input", 1, ["36x36 is not divisible", "total downsampling 8 (reached at 'maxpool_3')", "36 / 8 = 4.5",
                            "expected a multiple of 8"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
        """),
    "final_map_size": ("""
        input: [3, 224, 224]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
          - globalavgpool
          - dense: 10
        """, [("globalavgpool_1", 7, ["28x28 feature map", "expected about 7x7", "4 to 14"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - flatten
          - dense: 10
        """),
    "receptive_field_too_small": ("""
        input: [3, 64, 64]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 10
        """, [("globalavgpool_1", 8, ["see 8x8 positions of the 64x64 input", "12%", "expected at least 100%",
                                      "fix: widens the field by 4"])], """
        input: [3, 64, 64]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - flatten                 # a dense layer on the whole map sees everything
          - dense: 10
        """),
    "non_power_of_two_channels": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 100, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 10, kernel: 1}    # the classifier: its width is the task's
        """, [("conv_1", 3, ["100 filters", "multiple of 8", "expected e.g. 96 or 128"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 64, kernel: 3, padding: 1}
          - conv: {filters: 96, kernel: 3, padding: 1}
          - conv: {filters: 10, kernel: 1}
        """),
    "channels_not_growing": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 10
        """, [("maxpool_1", 5, ["32x32 -> 16x16", "64 before it, 64 at the end of the next stage", "typically 128"])],
        """
        input: [3, 224, 224]
        layers:
          - conv: {filters: 64, kernel: 7, stride: 2, padding: 3}   # a stem, not a stage
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - maxpool: 2
          - conv: {filters: 128, kernel: 3, padding: 1}
          - maxpool: 2
          - conv: {filters: 512, kernel: 3, padding: 1}
          - maxpool: 2
          - conv: {filters: 512, kernel: 3, padding: 1}          # capped at 512
          - globalavgpool
          - dense: 10
        """),
    "missing_activation": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 64, kernel: 3, padding: 1}
          - batchnorm
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
        """, [("conv_1", 3, ["feeds 'conv_2' (conv) with no activation", "compose into one linear map"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 16, kernel: 1}     # a linear bottleneck (MobileNetV2)
          - batchnorm
          - conv: {filters: 64, kernel: 1}
          - relu
          - globalavgpool
          - dense: 10
          - softmax
        """),
    "saturating_activation": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - tanh
          - globalavgpool
          - dense: 1
          - sigmoid
        """, [("tanh_1", 4, ["feeding 'globalavgpool_1'", "at most 1 and vanishes"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
            name: features
          - globalavgpool: {keepdims: true}
          - conv: {filters: 16, kernel: 1}
          - sigmoid:
            name: gate                         # a squeeze-and-excitation gate
          - multiply: [features, gate]
          - relu
          - globalavgpool
          - dense: 1
          - dropout: 0.1
          - sigmoid                            # a binary output
        """),
    "double_activation": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - dropout: 0.1
          - relu
        """, [("relu_2", 6, ["applies relu directly to the output of 'relu_1' (relu)"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - batchnorm
          - relu
          - globalavgpool
          - dense: 10
          - relu
          - softmax                            # classifier-head's business
        """),
    "classifier_head": ("""
        input: [3, 32, 32]
        classes: 10
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 100
          - relu
          - softmax
          - dense: 10
        """, [("softmax_1", 9, ["followed by 'dense_2' (dense)", "not the last layer"]),
              ("softmax_1", 9, ["follows the activation 'relu_2' (relu)", "relu right before softmax"]),
              ("dense_2", 10, ["produces the output 'dense_2' as dense, not softmax", "10 classes"])], """
        input: [3, 32, 32]
        classes: 10
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 10
          - softmax
          - dropout: 0.0
        """),
    "dense_dominates": ("""
        input: [3, 64, 64]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - flatten
          - dense: 512
          - relu
          - dense: 10
        """, [("dense_1", 6, ["holds 33,554,944 of the network's 33,560,522", "100%", "flattened (16, 64, 64) map",
                              "expected at most 50%"])], """
        input: [3, 64, 64]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 512
          - relu
          - dense: 10
        """),
    "too_many_dense": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - globalavgpool
          - dense: 64
          - relu
          - dense: 64
          - relu
          - dense: 64
          - relu
          - dense: 10
        """, [("dense_4", 11, ["dense layer number 4 in a row", "expected at most 3"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - globalavgpool
          - dense: 64
          - relu
          - dense: 64
          - relu
          - dense: 10
        """),
    "dense_on_image": ("""
        input: [3, 32, 32]
        layers:
          - flatten
          - dense: 512
          - relu
          - dense: 10
        """, [("dense_1", 4, ["flattened (3, 32, 32) input (3,072 values)", "no convolution before it"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - flatten
          - dense: 10
        """),
    "deep_plain_network": ("""
        input: [3, 32, 32]
        blocks:
          conv_relu:
            layers:
              - conv: {filters: 16, kernel: 3, padding: 1}
              - relu
        layers:
          - conv_relu:
            repeat: 21
        """, [("conv_relu_21.conv_1", 5, ["layer number 21 with weights", "no skip connection", "at most 20"])], """
        input: [3, 32, 32]
        blocks:
          residual:
            layers:
              - add:
                  - - conv: {filters: 16, kernel: 3, padding: 1}
                    - relu
                    - conv: {filters: 16, kernel: 3, padding: 1}
                  - []
              - relu
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - residual:
            repeat: 15
        """),
    "unused_layer": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
            name: features
          - conv: {filters: 16, kernel: 1}
            name: side
          - globalavgpool:
            inputs: [features]
          - dense: 10
        """, [("side", 5, ["reaches no output", "272 parameters"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
            name: features
          - conv: {filters: 16, kernel: 1}
            name: side
          - add: [features, side]
          - globalavgpool
          - dense: 10
        """),
    "high_dropout": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - dropout: 0.3
          - batchnorm
          - relu
          - globalavgpool
          - dropout: 0.8
          - dense: 10
        """, [("dropout_1", 4, ["before the batch normalisation 'batchnorm_1'", "variance shift"]),
              ("dropout_2", 8, ["drops 80%", "expected at most 50%"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - batchnorm
          - relu
          - globalavgpool
          - dropout: 0.5
          - dense: 10
        """),
    "bias_before_norm": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - batchnorm
          - relu
        """, [("conv_1", 3, ["bias that the batch normalisation 'batchnorm_1'", "16 parameters wasted"])], """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1, bias: false}
          - batchnorm
          - relu
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
        """),
}


def test_every_rule_has_cases():
    assert set(CASES) == set(MODULES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_triggers(name, tmp_path):
    module = MODULES[name]
    bad, expected, _ = CASES[name]
    reports = run(module, tmp_path, bad)
    assert found(reports) == [(layer, line) for layer, line, _ in expected]
    for report, (_, _, texts) in zip(reports, expected):
        for text in texts:
            if text.startswith("fix: "):
                assert text[5:] in report.fix
            else:
                assert text in report.message
        assert report.fix and len(report.fix) > 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_passes(name, tmp_path):
    module = MODULES[name]
    _, _, good = CASES[name]
    assert run(module, tmp_path, good) == []


# -- options and exemptions ---------------------------------------------------------------------

def test_pool_too_early_accepts_one_large_convolution(tmp_path):
    stem = """
        input: [3, 224, 224]
        layers:
          - conv: {filters: 64, kernel: 7, stride: 2, padding: 3}
          - relu
          - maxpool: {kernel: 3, stride: 2, padding: 1}
        """
    module = MODULES["pool_too_early"]
    assert run(module, tmp_path, stem) == []
    strict = run(module, tmp_path, stem, min_span=1000)
    assert found(strict) == [("maxpool_1", 5)]
    assert "span only 7 pixels" in strict[0].message


def test_pool_near_output_counts_the_longest_path(tmp_path):
    spec = """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - maxpool: 2
          - add:
              - - conv: {filters: 32, kernel: 3, padding: 1}
                - relu
                - conv: {filters: 32, kernel: 3, padding: 1}
              - []
          - globalavgpool
          - dense: 10
        """
    module = MODULES["pool_near_output"]
    assert run(module, tmp_path, spec) == []  # 3 layers with weights on the residual path
    assert found(run(module, tmp_path, spec, min_layers=4)) == [("maxpool_1", 4)]


def test_window_pool_over_the_whole_map_is_a_head(tmp_path):
    spec = """
        input: [3, 28, 28]
        layers:
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
          - maxpool: 2
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - conv: {filters: 64, kernel: 3, padding: 1}
          - relu
          - avgpool: 14             # old-style global pooling: 14x14 -> 1x1
          - flatten
          - dense: 10
        """
    for name in ("pool_too_early", "pool_near_output", "pool_window"):
        assert run(MODULES[name], tmp_path, spec) == [], name
    assert run(MODULES["final_map_size"], tmp_path, spec) == []


def test_final_map_size_too_small(tmp_path):
    spec = """
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
          - maxpool: 2
          - globalavgpool
          - dense: 10
        """
    reports = run(MODULES["final_map_size"], tmp_path, spec)
    assert found(reports) == [("globalavgpool_1", 8)]
    assert "2x2 feature map" in reports[0].message and "downsample less" in reports[0].fix
    assert run(MODULES["final_map_size"], tmp_path, spec, target=2, factor=1.5) == []


def test_options_change_thresholds(tmp_path):
    dense = CASES["too_many_dense"][0]
    assert run(MODULES["too_many_dense"], tmp_path, dense, max_dense=4) == []
    plain = CASES["deep_plain_network"][0]
    assert run(MODULES["deep_plain_network"], tmp_path, plain, max_depth=21) == []
    assert found(run(MODULES["high_dropout"], tmp_path, CASES["high_dropout"][2], max_rate=0.4)) == [("dropout_1", 7)]
    assert run(MODULES["non_power_of_two_channels"], tmp_path, CASES["non_power_of_two_channels"][0], multiple=4) == []
    rf = CASES["receptive_field_too_small"][0]
    assert run(MODULES["receptive_field_too_small"], tmp_path, rf, min_share=0.1) == []
    assert run(MODULES["large_kernel"], tmp_path, CASES["large_kernel"][0], max_kernel=7) == []
    assert run(MODULES["pool_window"], tmp_path, CASES["pool_window"][0], allowed=[[4, 4]]) == []
    assert run(MODULES["channels_not_growing"], tmp_path, CASES["channels_not_growing"][0], cap=64) == []
    assert run(MODULES["dense_dominates"], tmp_path, CASES["dense_dominates"][0], min_params=10**8) == []


def test_pool_window_rejects_malformed_pairs():
    with pytest.raises(ValueError) as err:
        MODULES["pool_window"].validate({"allowed": [2, 3]})
    assert err.value.args == ("allowed", "[window, stride] pairs of whole numbers of at least 1, such as "
                                         "[[2, 2], [3, 2]]")


def test_dense_on_pooled_input_is_not_dense_on_image(tmp_path):
    spec = """
        input: [3, 32, 32]
        layers:
          - globalavgpool
          - dense: 10
        """
    assert run(MODULES["dense_on_image"], tmp_path, spec) == []


def test_classifier_width_and_doubled_softmax(tmp_path):
    spec = """
        input: [3, 32, 32]
        classes: 10
        layers:
          - conv: {filters: 16, kernel: 3, padding: 1}
          - relu
          - globalavgpool
          - dense: 100
          - softmax
          - softmax
        """
    reports = run(MODULES["classifier_head"], tmp_path, spec)
    assert found(reports) == [("softmax_2", 9), ("dense_1", 7)]  # the doubled softmax reported once
    assert "follows the activation 'softmax_1' (softmax): a second softmax" in reports[0].message
    assert "has 100 outputs but the spec declares classes: 10" in reports[1].message


def test_learned_upsampling_is_not_a_missing_activation(tmp_path):
    spec = """
        input: [64, 16, 16]
        layers:
          - convtranspose: {filters: 32, kernel: 2, stride: 2}   # U-Net's up-convolution
          - conv: {filters: 32, kernel: 3, padding: 1}
          - relu
        """
    assert run(MODULES["missing_activation"], tmp_path, spec) == []


def test_final_map_size_leaves_a_flattened_input_to_dense_on_image(tmp_path):
    spec = CASES["dense_on_image"][0]
    assert run(MODULES["final_map_size"], tmp_path, spec) == []
    assert run(MODULES["dense_on_image"], tmp_path, spec)


def test_layers_in_blocks_report_the_block_line(tmp_path):
    reports = run(MODULES["even_kernel"], tmp_path, """
        input: [3, 32, 32]
        blocks:
          conv_relu:
            args: {filters: ~}
            layers:
              - conv: {filters: $filters, kernel: 2, padding: same}
              - relu
        layers:
          - conv_relu: {filters: 16}
          - conv_relu: {filters: 32}
        """)
    assert found(reports) == [("conv_relu_1.conv_1", 6), ("conv_relu_2.conv_1", 6)]
    assert [r.layer.loc.via[0].line for r in reports] == [9, 10]


# -- the module contract ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL))
def test_contract(name):
    module = ALL[name]
    assert module.SLUG == name.replace("_", "-")
    assert re.fullmatch(r"AC8\d\d" if name in DYNAMIC else r"AC[1-7]\d\d", module.CODE)
    assert getattr(module, "KIND", "static") in ("static", "dynamic")
    assert module.SEVERITY in SEVERITIES
    assert isinstance(module.OPTIONS, dict)
    assert module.SUMMARY.strip() and "\n" not in module.SUMMARY
    doc = module.__doc__
    positions = [doc.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), f"sections missing or out of order: {positions}"
    options_doc = doc[doc.index("## Options"):doc.index("## References")]
    for option in module.OPTIONS:
        assert f"`{option}`" in options_doc
    if not module.OPTIONS:
        assert "None." in options_doc
    why = doc[doc.index("## Why is this bad?"):doc.index("## Example")]
    assert "not apply" in why, "say where the practice does not apply"
    assert "```yaml" in doc[doc.index("## Example"):doc.index("## Use instead")]
    assert callable(module.check)


def _yaml(doc: str, section: str) -> str:
    part = doc[doc.index(section):]
    return re.search(r"```yaml\n(.*?)```", part, re.S).group(1)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documented_examples(name, tmp_path):
    """The docs' Example triggers the rule and its Use instead does not: both are complete specs."""
    module = MODULES[name]
    assert run(module, tmp_path, _yaml(module.__doc__, "## Example"))
    assert run(module, tmp_path, _yaml(module.__doc__, "## Use instead")) == []


def test_codes_and_slugs_are_unique():
    assert set(DYNAMIC) == {"dead_relu", "saturated_activation_runtime", "vanishing_gradient", "exploding_gradient",
                            "non_finite_values"}
    codes = [m.CODE for m in ALL.values()]
    slugs = [m.SLUG for m in ALL.values()]
    assert len(set(codes)) == len(codes) and len(set(slugs)) == len(slugs)


# -- the samples ----------------------------------------------------------------------------------

def _sample_findings(sample: str) -> dict[str, list[str]]:
    analysis = analyze(SAMPLES / f"{sample}.yaml")
    out: dict[str, list[str]] = {}
    for module in MODULES.values():
        for report in module.check(analysis, dict(module.OPTIONS)):
            out.setdefault(f"{module.SEVERITY} {module.SLUG}", []).append(report.layer.name)
    return out


PROJECTIONS18 = ["basic_3.add_1.1.conv_1", "basic_5.add_1.1.conv_1", "basic_7.add_1.1.conv_1"]
PROJECTIONS50 = [f"stage_{i}.bottleneck_1.add_1.1.conv_1" for i in (2, 3, 4)]

# What the catalogue says about the classic networks: no errors, and only warnings a reviewer accepts.
CLASSICS = {
    "vgg16": {"warning dense-dominates": ["dense_1"]},  # fc6 holds 74% of the parameters
    "alexnet": {"warning dense-dominates": ["dense_1"], "info strided-conv": ["conv_relu_1.conv_1"]},
    "resnet18": {"warning uneven-stride-coverage": PROJECTIONS18, "info strided-conv": 7},  # ResNet-D's fix
    "resnet50": {"warning uneven-stride-coverage": PROJECTIONS50, "info strided-conv": 7},
    "googlenet": {"info strided-conv": ["basic_conv_1.conv_1"]},
    "mobilenetv2": {"info strided-conv": 5},
    "lenet5": {"warning shrinking-conv": ["stage_1.conv_1", "stage_2.conv_1"],  # valid 5x5 convolutions
               "warning non-power-of-two-channels": ["stage_1.conv_1"]},  # 6 filters
}


@pytest.mark.parametrize("sample", sorted(CLASSICS))
def test_classic_samples(sample):
    got = _sample_findings(sample)
    assert not [key for key in got if key.startswith("error")]
    expected = CLASSICS[sample]
    assert set(got) == set(expected)
    for key, layers in expected.items():
        assert (len(got[key]) if isinstance(layers, int) else got[key]) == layers


@pytest.mark.parametrize("sample, slug", [
    ("bad_pool_early", "pool-too-early"), ("bad_pool_near_output", "pool-near-output"),
    ("bad_strided", "strided-conv"), ("bad_even_kernel", "even-kernel"),
    ("bad_channels", "non-power-of-two-channels"), ("bad_sigmoid", "saturating-activation"),
])
def test_bad_samples_trigger_their_rule(sample, slug):
    assert any(key.endswith(f" {slug}") for key in _sample_findings(sample))


# -- the dynamic rules on crafted run records -------------------------------------------------------

NET = """
    input: [2, 8, 8]
    layers:
      - conv: {filters: 4, kernel: 3}
      - relu
      - conv: {filters: 4, kernel: 3}
      - sigmoid
      - flatten
      - dense: 3
    """


@pytest.fixture
def record(tmp_path):
    """``record(stats={layer: {field: value}}, norms={array: norm}, bad=[array], loss=1.0)``: a run
    record of NET (batch 2) that is healthy except where told."""
    from archcheck.executor import LayerStats, Run

    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(NET).lstrip("\n"))
    analysis = analyze(path)

    def make(stats=None, norms=None, bad=(), loss=1.0):
        healthy = {"relu": {"zeros": 0.5}, "sigmoid": {"saturated": 0.1}}
        out = {}
        for node in analysis.graph.order:
            shape = (2, *analysis.layers[node.name].shape)
            fields = {"zeros": 0.0, "saturated": None, "nan": 0, "inf": 0, **healthy.get(node.type, {}),
                      **(stats or {}).get(node.name, {})}
            out[node.name] = LayerStats(node.name, node.type, shape, 0.1, 1.0, fields.pop("zeros"),
                                        fields.pop("saturated"), fields.pop("nan"), fields.pop("inf"), 0.001,
                                        units=shape[1], **fields)
        grads = {"conv_1.weight": 1.0, "conv_1.bias": 0.5, "conv_2.weight": 1.0, "conv_2.bias": 0.5,
                 "dense_1.weight": 2.0, "dense_1.bias": 0.5, **(norms or {})}
        return Run(analysis, out, loss, grads, {name: name not in bad for name in grads})
    return make


def check(name, run, **options) -> list[Report]:
    module = DYNAMIC[name]
    return list(module.check(run, {**module.OPTIONS, **options}))


def test_healthy_run_has_no_dynamic_findings(record):
    for name in DYNAMIC:
        assert check(name, record()) == [], name


def test_dead_relu(record):
    run = record(stats={"relu_1": {"zeros": 0.8, "dead_units": 3}})
    reports = check("dead_relu", run)
    assert found(reports) == [("relu_1", 4)]
    assert reports[0].message == ("80% of this ReLU's outputs are zero on the batch (3 of 4 channels are zero for "
                                  "every sample), so little gradient flows back through it (threshold 70%)")
    assert "leaky_relu" in reports[0].fix
    assert found(check("dead_relu", record(stats={"relu_1": {"zeros": 0.7}}))) == [("relu_1", 4)]  # at the threshold
    assert check("dead_relu", record(stats={"relu_1": {"zeros": 0.69}})) == []
    assert check("dead_relu", run, dead_share=0.9) == []
    assert check("dead_relu", record(stats={"flatten_1": {"zeros": 0.9}})) == []  # not a ReLU


def test_saturated_activation_runtime(record):
    run = record(stats={"sigmoid_1": {"saturated": 0.75}})
    reports = check("saturated_activation_runtime", run)
    assert found(reports) == [("sigmoid_1", 6)]
    assert reports[0].message == ("75% of this sigmoid's outputs are within 1% of its bounds, where its gradient "
                                  "almost vanishes (threshold 50%)")
    assert "within 5% of its bounds" in check("saturated_activation_runtime", run, margin=0.05)[0].message
    assert check("saturated_activation_runtime", run, saturated_share=0.8) == []
    assert check("saturated_activation_runtime", record(stats={"sigmoid_1": {"saturated": 0.49}})) == []


def test_vanishing_gradient(record):
    run = record(norms={"conv_1.weight": 5e-5})
    reports = check("vanishing_gradient", run)
    assert found(reports) == [("conv_1", 3)]
    assert reports[0].message == ("the weight-gradient norm of the first weighted layer 'conv_1' is 5e-05, 2.5e-05 "
                                  "times that of the last, 'dense_1' (2): below 0.001 (and below 0.0001), so the "
                                  "early layers barely learn")
    assert check("vanishing_gradient", run, min_norm=1e-5) == []
    assert check("vanishing_gradient", run, min_ratio=1e-5) == []
    # a tiny ratio with a first-layer gradient that is not tiny in absolute terms: AUTOTRAINER's beta 2
    assert check("vanishing_gradient", record(norms={"conv_1.weight": 2e-4, "dense_1.weight": 100.0})) == []
    assert check("vanishing_gradient", record(norms={"conv_1.weight": 5e-5}, bad=["conv_2.bias"])) == []
    assert check("vanishing_gradient", record(norms={"conv_1.weight": 5e-5}, loss=math.nan)) == []


def test_exploding_gradient(record):
    run = record(norms={"conv_1.weight": 300.0})
    reports = check("exploding_gradient", run)
    assert found(reports) == [("conv_1", 3)]
    assert reports[0].message == ("the weight-gradient norm of the first weighted layer 'conv_1' is 300, 150 times "
                                  "that of the last, 'dense_1' (2): above 70, so early layers take huge steps")
    assert check("exploding_gradient", run, max_ratio=200) == []
    assert check("exploding_gradient", record(norms={"conv_1.weight": 140.0})) == []  # exactly 70
    assert found(check("exploding_gradient", record(norms={"dense_1.weight": 0.0}))) == [("conv_1", 3)]  # inf
    assert check("exploding_gradient", record(norms={"conv_1.weight": 0.0, "dense_1.weight": 0.0})) == []
    assert check("exploding_gradient", record(norms={"conv_1.weight": math.inf}, bad=["conv_1.weight"])) == []


def test_non_finite_values(record):
    run = record(stats={"conv_2": {"inf": 8}, "sigmoid_1": {"nan": 8}}, bad=["dense_1.weight", "conv_1.bias"],
                 loss=math.nan)
    reports = check("non_finite_values", run)
    assert found(reports) == [("conv_2", 5), ("dense_1", 8)]  # the first layer only; the gradients once
    assert reports[0].message == ("the output of this conv layer holds 0 NaN and 8 Inf values (of 128); they first "
                                  "appear here")
    assert reports[1].message == "the gradient of dense_1.weight and 1 other arrays holds NaN or Inf values"
    loss_only = check("non_finite_values", record(loss=math.inf))
    assert [(r.layer, r.message) for r in loss_only] == [(None, "the loss holds NaN or Inf values")]


def test_dynamic_rules_import_no_numpy():
    """Lint loads every rule module and must not import NumPy; the run record is plain Python."""
    import subprocess
    import sys

    code = ("import sys\n" + "".join(f"import archcheck.rules.{name}\n" for name in DYNAMIC) +
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the dynamic rules' documented examples, through the executor ----------------------------------

def _scale(**factors):
    def edit(params):
        for name, factor in factors.items():
            params[name] *= factor
    return edit


def _positive(name, factor):
    """Weights of one sign, so an overflow gives Inf whatever order the BLAS sums in (mixed signs: Inf - Inf)."""
    def edit(params):
        params[name][...] = abs(params[name]) * factor
    return edit


def _bias(params):
    params["conv_1.bias"][:3] = -50.0


# rule: (batch, data transform, weight edit for the Example, weight edit for Use instead), as the docs state them
DYNAMIC_EXAMPLES = {
    "dead_relu": (2, None, _bias, _bias),
    "saturated_activation_runtime": (2, lambda x: (x * 64 + 128).clip(0, 255), None, None),
    "vanishing_gradient": (2, None, None, None),
    "exploding_gradient": (2, None, _scale(**{"conv_1.weight": 1e-3, "conv_2.weight": 10, "conv_3.weight": 10,
                                              "conv_4.weight": 10}), None),
    "non_finite_values": (1, None, lambda p: (_scale(**{"conv_1.weight": 1e20})(p),
                                              _positive("conv_2.weight", 1e20)(p)), None),
}


def _execute(tmp_path, text, batch, data, edit):
    """One ``run --grad`` pass (random data, seed 0) as a run record."""
    import numpy as np

    from archcheck import executor
    from archcheck.spec import INPUT

    path = tmp_path / "spec.yaml"
    path.write_text(text)
    analysis = analyze(path)
    params = executor.init_params(analysis, seed=0)
    if edit:
        edit(params)
    x = np.random.default_rng(0).standard_normal((batch, *analysis.spec.input)).astype(np.float32)
    x = data(x) if data else x
    margin = DYNAMIC["saturated_activation_runtime"].OPTIONS["margin"]
    stats = {INPUT: executor.layer_stats(analysis.graph.nodes[INPUT], x, 0.0, margin)}
    tape = executor.Tape()
    with np.errstate(all="ignore"):
        outputs = executor.forward(analysis, params, x, train=True, tape=tape, on_layer=lambda node, y, seconds:
                                   stats.__setitem__(node.name, executor.layer_stats(node, y, seconds, margin)))
        targets = executor.random_targets(analysis, batch, "cross-entropy", np.random.default_rng(1))
        value, seeds = executor.loss(analysis, outputs, targets)
        return executor.record(analysis, stats, executor.backward(analysis, params, tape, seeds), value)


@pytest.mark.parametrize("name", sorted(DYNAMIC))
def test_documented_dynamic_examples(name, tmp_path):
    """The Example, run as its text says, triggers the rule (with the finding its console block shows);
    the Use instead does not. Both are complete specs."""
    module = DYNAMIC[name]
    batch, data, example_edit, instead_edit = DYNAMIC_EXAMPLES[name]
    reports = check(name, _execute(tmp_path, _yaml(module.__doc__, "## Example"), batch, data, example_edit))
    assert reports
    shown = re.search(r"```console\n\$ [^\n]*\n(.*?)\n```", module.__doc__, re.S).group(1)
    assert shown.count(f": {module.CODE} ") == len(reports)
    for r in reports:
        assert (f".yaml:{r.layer.loc.line}:{r.layer.loc.col}: {module.CODE} {module.SLUG} [{module.SEVERITY}] layer "
                f"'{r.layer.name}': {r.message}\n  = fix: {r.fix}") in shown
    assert check(name, _execute(tmp_path, _yaml(module.__doc__, "## Use instead"), batch, data, instead_edit)) == []
