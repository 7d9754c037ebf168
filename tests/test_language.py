"""The spec language's modern features: blocks with several inputs, expressions that read the incoming
shape (and make_divisible), runs of entries repeated together, and the guard against a misplaced `repeat`.

Each builds a small network and checks the graph and the figures it must give; the messages for
wrong uses are in test_bad_input.py.
"""

from __future__ import annotations

import textwrap

import pytest

from archcheck import expr
from archcheck.errors import SpecError
from archcheck.pipeline import analyze


def spec(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def layers(analysis) -> list[tuple[str, str, tuple, list[str]]]:
    return [(n.name, n.type, analysis.layers[n.name].shape, n.inputs) for n in analysis.graph.order[1:]]


# -- blocks with several inputs ---------------------------------------------------------------------------
UNET_STEP = """
    input: [1, 32, 32]
    blocks:
      up:                              # upsample, concatenate the encoder's skip, convolve
        inputs: [below, skip]
        args: {filters: ~}
        layers:
          - convtranspose: {filters: $filters, kernel: 2, stride: 2}
          - concat: [convtranspose_1, skip]
          - conv: {filters: $filters, kernel: 3, padding: 1}
    layers:
      - conv: {filters: 8, kernel: 3, padding: 1}
        name: enc1
      - maxpool: 2
      - conv: {filters: 16, kernel: 3, padding: 1}
        name: bottom
      - up: {filters: 8}
        inputs: %s
"""


@pytest.mark.parametrize("inputs", ["{skip: enc1}", "[bottom, enc1]", "{below: bottom, skip: enc1}"])
def test_a_block_takes_several_inputs_by_position_or_by_name(tmp_path, inputs):
    analysis = analyze(spec(tmp_path, UNET_STEP % inputs))
    assert layers(analysis)[-3:] == [
        ("up_1.convtranspose_1", "convtranspose", (8, 32, 32), ["bottom"]),
        ("up_1.concat_1", "concat", (16, 32, 32), ["up_1.convtranspose_1", "enc1"]),
        ("up_1.conv_1", "conv", (8, 32, 32), ["up_1.concat_1"]),
    ]


def test_a_single_input_block_may_name_where_its_input_comes_from(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        blocks:
          head: {layers: [globalavgpool, dense: 4]}
        layers:
          - conv: {filters: 8, kernel: 3}
            name: early
          - conv: {filters: 8, kernel: 3}
          - head:
            inputs: [early]
        """))
    assert layers(analysis)[2][3] == ["early"]
    assert analysis.graph.outputs == ["head_1.dense_1"]


# -- expressions that read the incoming shape ---------------------------------------------------------------
def test_densenet_transition_halves_the_channels_it_receives(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 32, 32]
        blocks:
          transition:
            layers:
              - batchnorm
              - relu
              - conv: {filters: "${input.channels // 2}", kernel: 1, bias: false}
              - avgpool: 2
        layers:
          - conv: {filters: 96, kernel: 3, padding: 1}
          - transition
          - conv: {filters: 20, kernel: 3, padding: 1}
          - transition
        """))
    convs = [(name, shape) for name, kind, shape, _ in layers(analysis) if name.endswith("conv_1") and "." in name]
    assert convs == [("transition_1.conv_1", (48, 32, 32)), ("transition_2.conv_1", (10, 16, 16))]
    assert analysis.layers["transition_1.conv_1"].params == 96 * 48


SLIM_POOL = """
    input: [3, %d, %d]
    layers:
      - conv: {filters: 4, kernel: 3, padding: 1}
      - avgpool: {kernel: ["${min(input.height, 8)}", "${min(input.width, 8)}"], stride: 1}
"""


@pytest.mark.parametrize("size, out", [((32, 32), (4, 25, 25)), ((5, 12), (4, 1, 5)), ((6, 6), (4, 1, 1))])
def test_a_window_shrinks_to_a_small_input_as_tf_slim_writes_it(tmp_path, size, out):
    path = spec(tmp_path, SLIM_POOL % size)
    assert analyze(path).layers["avgpool_1"].shape == out


def test_shape_expressions_follow_an_input_override(tmp_path):
    """The value is computed at the sizes of the run: `--input` gives a different window."""
    path = spec(tmp_path, SLIM_POOL % (32, 32))
    assert analyze(path, input_shape=(3, 6, 6)).layers["avgpool_1"].shape == (4, 1, 1)
    assert analyze(path).layers["avgpool_1"].shape == (4, 25, 25)  # the spec itself is unchanged


def test_input_in_a_value_passed_to_a_block_is_the_blocks_input(tmp_path):
    """`input` means the layer's own input in a layer's argument, and the block's input in a value passed to a
    block, even when a layer inside the block, further on, reads another shape."""
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        blocks:
          widen:
            args: {filters: ~}
            layers:
              - conv: {filters: 5, kernel: 1}
              - conv: {filters: $filters, kernel: 1}
              - conv: {filters: "${filters + input.channels}", kernel: 1}
        layers:
          - conv: {filters: 12, kernel: 1}
          - widen: {filters: "${input.channels * 2}"}
        """))
    shapes = {name: shape[0] for name, _, shape, _ in layers(analysis)}
    assert shapes["widen_1.conv_2"] == 24  # the block's input has 12 channels
    assert shapes["widen_1.conv_3"] == 24 + 24  # filters (24) plus this layer's own input's 24


@pytest.mark.parametrize("value, divisor, expected", [
    # widths as MobileNetV2/V3 and EfficientNet round them (torchvision's figures)
    (32 * 0.75, 8, 24), (16 * 1.4, 8, 24), (960 / 4, 8, 240), (72 / 4, 8, 24), (1280 * 0.35, 8, 448),
    (20, 8, 24), (12, 8, 16), (3, 8, 8), (100, 16, 96), (90, 16, 96),
])
def test_make_divisible_rounds_widths_as_mobilenet_does(value, divisor, expected):
    assert expr.evaluate(f"make_divisible({value}, {divisor})", {}) == expected


def test_make_divisible_keeps_at_least_ninety_percent():
    """Rounding never loses more than 10 % of the width: one multiple higher instead."""
    for tenths in range(10, 5000):
        v = tenths / 10
        got = expr.make_divisible(v, 8)
        assert got % 8 == 0 and got >= 0.9 * v and got >= 8


# -- runs of entries ------------------------------------------------------------------------------------
def test_a_run_of_entries_repeats_together(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        layers:
          - layers:
              - conv: {filters: 8, kernel: 3, padding: 1}
              - batchnorm
              - relu
            repeat: 3
          - globalavgpool
        """))
    assert [(name, kind) for name, kind, _, _ in layers(analysis)] == [
        *[(f"group_{i}.{kind}_1", kind) for i in (1, 2, 3) for kind in ("conv", "batchnorm", "relu")],
        ("globalavgpool_1", "globalavgpool")]
    assert [inputs for *_, inputs in layers(analysis)][3] == ["group_1.relu_1"]


def test_a_named_run_names_its_repetitions_and_its_name_is_its_last_layer(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        layers:
          - layers:
              - conv: {filters: 3, kernel: 3, padding: 1}
                name: c
              - add: [input, c]
            name: res
            repeat: 2
          - relu:
            inputs: [res]
        """))
    names = [name for name, *_ in layers(analysis)]
    assert names == ["res.0.c", "res.0.add_1", "res.1.c", "res.1.add_1", "relu_1"]
    assert analysis.graph.nodes["res.1.add_1"].inputs == ["res.0.add_1", "res.1.c"]  # `input`: the run's input
    assert analysis.graph.nodes["relu_1"].inputs == ["res.1.add_1"]


def test_a_run_dropped_by_when_or_repeated_zero_times_makes_nothing(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        layers:
          - layers: [conv: 4, relu]
            when: false
          - layers: [conv: 4, relu]
            repeat: 0
          - flatten
        """))
    assert [name for name, *_ in layers(analysis)] == ["flatten_1"]


def test_a_repeated_block_of_layers_and_a_run_build_the_same_network(tmp_path):
    block = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        blocks:
          cbr: {layers: [conv: {filters: 8, kernel: 3, padding: 1}, batchnorm, relu]}
        layers:
          - cbr:
            repeat: 3
        """))
    run = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        layers:
          - layers: [conv: {filters: 8, kernel: 3, padding: 1}, batchnorm, relu]
            repeat: 3
        """))
    assert [(k, s) for _, k, s, _ in layers(block)] == [(k, s) for _, k, s, _ in layers(run)]
    figures = ("params", "macs", "flops", "peak_activation_bytes", "training_bytes")
    assert [getattr(block.totals, f) for f in figures] == [getattr(run.totals, f) for f in figures]
    assert block.totals.receptive_field[1] == run.totals.receptive_field[1]


@pytest.mark.parametrize("entry", ["relu", "batchnorm", "dropout", "globalavgpool"])
def test_repeating_a_layer_that_gains_nothing_from_repetition_is_refused(tmp_path, entry):
    with pytest.raises(SpecError, match="several times in a row, which no network needs"):
        analyze(spec(tmp_path, f"""
            input: [3, 16, 16]
            layers:
              - conv: {{filters: 8, kernel: 3}}
              - {entry}:
                repeat: 2
            """))


def test_repeating_weighted_layers_and_pooling_stays_allowed(tmp_path):
    analysis = analyze(spec(tmp_path, """
        input: [3, 16, 16]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
            repeat: 2
          - maxpool: 2
            repeat: 2
        """))
    assert [s for _, _, s, _ in layers(analysis)] == [(8, 16, 16), (8, 16, 16), (8, 8, 8), (8, 4, 4)]


# -- the number of a repetition -----------------------------------------------------------------------------
def test_index_numbers_the_repetitions_of_an_entry(tmp_path):
    """Stochastic depth grows with the block's depth (EfficientNet, ConvNeXt): `index` counts from 0."""
    analysis = analyze(spec(tmp_path, """
        input: [3, 8, 8]
        blocks:
          res:
            args: {rate: ~}
            layers: [add: [[], [conv: {filters: 3, kernel: 1}, droppath: $rate]]]
          stage:
            args: {first: ~, n: ~}
            layers:
              - res: {rate: "${0.1 * (first + index) / 5}"}
                repeat: $n
        layers:
          - stage: {first: 0, n: 2}
          - stage: {first: 2, n: 3}
          - layers: [conv: {filters: "${4 * (index + 1)}", kernel: 1}]
            repeat: 2
        """))
    rates = [n.layer.rate for n in analysis.graph.order if n.type == "droppath"]
    assert rates == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    assert [s[0] for name, kind, s, _ in layers(analysis) if name.startswith("group_")] == [4, 8]


def test_index_is_not_a_block_argument_name(tmp_path):
    with pytest.raises(SpecError, match="block 'b' declares an argument 'index', a name the language keeps for the "
                                        "number of a repetition"):
        analyze(spec(tmp_path, """
            input: [3, 8, 8]
            blocks:
              b: {args: {index: 0}, layers: [relu]}
            layers: [b]
            """))
