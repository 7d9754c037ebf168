"""Wrong specs: every problem is reported, never as a traceback.

Each problem names its place (file:line:col, and for a layer made by a block the use site too),
the layer, what was received, what was expected and how to fix it; `archcheck summary` exits 2.
The tests check the text itself: a message that is technically present but unreadable is a bug.
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.errors import EXIT_USAGE, SpecError
from archcheck.pipeline import analyze


def summary(tmp_path, monkeypatch, text: str, name: str = "spec.yaml", *args: str) -> str:
    """Run `archcheck summary` on ``text`` saved as ``name``; check exit 2 and no traceback; return stderr."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    result = CliRunner().invoke(main, ["summary", name, *args])
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stdout == ""  # nothing half-printed before the problems
    return result.stderr


def found(stderr: str) -> int:
    """The number in the closing 'N problems found' line."""
    last = stderr.strip().splitlines()[-1]
    assert last.endswith(("problem found", "problems found")), last
    return int(last.split()[0])


TYPES = ("use a layer type (adaptiveavgpool, adaptivemaxpool, add, avgpool, batchnorm, channelshuffle, concat, conv, "
         "convtranspose, dense")

# id: (spec, fragments that must all appear in stderr, number of problems)
CASES = {
    # -- YAML syntax ------------------------------------------------------------------------------
    "yaml-unclosed-bracket": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3
          - relu
        """, ["spec.yaml:3:11: error: invalid-yaml: YAML syntax error: the file ends before the '{' mapping "
              "that starts here is closed",
              "      3 |   - conv: {filters: 8, kernel: 3\n        |           ^",
              "= fix: close the '{' mapping"], 1),
    "yaml-unclosed-quote": ("""
        input: [3, 32, 32]
        name: "resnet
        layers: [relu]
        """, ["spec.yaml:2:7: error: invalid-yaml: YAML syntax error: the file ends before the quoted text that "
              "starts here is closed", "= fix: close the quoted text"], 1),
    "yaml-tab-indentation": ("input: [3, 32, 32]\nlayers:\n\t- relu\n",
                             ["spec.yaml:3:1: error: invalid-yaml: YAML syntax error: found character that cannot "
                              "start any token",
                              "= fix: YAML indents with spaces, not tabs: replace the tab with spaces"], 1),
    "yaml-keys-under-a-bare-type": ("""
        input: [3, 32, 32]
        layers:
          - relu
            repeat: 2
        """, ["spec.yaml:4:11: error: invalid-yaml: YAML syntax error: mapping values are not allowed in this "
              "context",
              "= fix: to give a layer keys, end its type with a colon (`- relu:` then `repeat: 2` indented under "
              "it)"], 1),
    "yaml-unquoted-expression-in-braces": ("""
        input: [3, 32, 32]
        blocks:
          wide:
            args: {width: 8}
            layers:
              - conv: {filters: ${width * 2}}
        layers:
          - wide
        """, ["spec.yaml:6:26: error: invalid-yaml: YAML syntax error: did not find expected ',' or '}'",
              '= fix: quote an expression written inside braces: `{filters: "${width * 2}"}`'], 1),
    "yaml-duplicate-key": ("""
        input: [3, 32, 32]
        layers: [relu]
        input: [3, 64, 64]
        """, ["spec.yaml:3:1: error: invalid-yaml: duplicate key 'input' (first at line 1, column 1)",
              "= fix: remove one of the two entries"], 1),
    # -- types and arguments ----------------------------------------------------------------------
    "unknown-type-from-another-framework": ("""
        input: [3, 32, 32]
        layers:
          - conv2d: {filters: 8}
        """, ["spec.yaml:3:5: error: invalid-spec: unknown layer type 'conv2d' (did you mean 'conv'?)",
              f"= fix: {TYPES}", "or a block defined under `blocks:`"], 1),
    "unknown-type-misspelt": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8}
          - batchnrom
        """, ["spec.yaml:4:5: error: invalid-spec: unknown layer type 'batchnrom' (did you mean 'batchnorm'?)"], 1),
    "unknown-type-from-bad-indentation": ("""
        input: [3, 32, 32]
        layers:
          - relu
            - relu
        """, ["spec.yaml:3:5: error: invalid-spec: unknown layer type 'relu - relu' (a type is one word: is the "
              "next list item indented too far, or its '- ' missing?)"], 1),
    "unknown-argument": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernal: 3}
        """, ["spec.yaml:3:24: error: invalid-spec: layer 'conv_1': conv has no argument 'kernal' "
              "(did you mean 'kernel'?)",
              "= fix: conv takes: filters, kernel, stride, padding, dilation, bias, groups"], 1),
    "argument-to-a-layer-without-arguments": ("""
        input: [3, 32, 32]
        layers:
          - relu: {alpha: 0.1}
        """, ["spec.yaml:3:12: error: invalid-spec: layer 'relu_1': relu has no argument 'alpha'",
              "= fix: relu takes: no arguments"], 1),
    "missing-argument": ("""
        input: [3, 32, 32]
        layers:
          - conv: {kernel: 3}
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'conv_1': conv is missing the required argument "
              "'filters'", "= fix: add `filters: <value>`"], 1),
    "wrong-type-text-for-number": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: eight}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters' received 'eight', "
              "expected a whole number from 1 to 2,147,483,647",
              "= fix: set `filters` to a whole number from 1 to 2,147,483,647"], 1),
    "wrong-type-fraction-for-whole-number": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3.5}
        """, ["spec.yaml:3:32: error: invalid-spec: layer 'conv_1': conv argument 'kernel' received 3.5, "
              "expected a whole number >= 1, or a list with one per spatial axis"], 1),
    "wrong-type-bool-and-range": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, bias: "yes"}
          - dropout: {rate: 1.5}
        """, ["spec.yaml:3:30: error: invalid-spec: layer 'conv_1': conv argument 'bias' received 'yes', "
              "expected true or false", "= fix: set `bias` to true or false",
              "spec.yaml:4:21: error: invalid-spec: layer 'dropout_1': dropout argument 'rate' received 1.5, "
              "expected a number less than 1"], 2),
    "wrong-padding-word": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, padding: full}
        """, ["spec.yaml:3:33: error: invalid-spec: layer 'conv_1': conv argument 'padding' received 'full', "
              "expected a whole number >= 0, a list with one per spatial axis (each a number or [before, after]), "
              "'same' or 'valid'"], 1),
    "droppath-rate-of-one": ("""
        input: [3, 32, 32]
        layers:
          - droppath: 1
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'droppath_1': droppath argument 'rate' received 1, "
              "expected a number less than 1", "= fix: set `rate` to a number less than 1"], 1),
    "true-is-not-a-number": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: true}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters' received true, "
              "expected a whole number"], 1),
    "kernel-list-for-the-wrong-rank": ("""
        input: [3, 16]
        layers:
          - conv: {filters: 8, kernel: [3, 3]}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (3, 16): 'kernel' has 2 values "
              "[3, 3] but the input has 1 spatial axis"], 1),
    # -- names and connections --------------------------------------------------------------------
    "unknown-layer-name": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
            name: stem
          - add: [stem, stme]
        """, ["spec.yaml:5:17: error: invalid-spec: layer 'add_1': unknown layer name 'stme' (did you mean 'stem'?)",
              "= fix: refer to a layer named in this block or above it: input, stem ("], 1),
    "duplicate-layer-name": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8}
            name: stem
          - conv: {filters: 8}
            name: stem
        """, ["spec.yaml:5:5: error: invalid-spec: layer 'stem': duplicate layer name 'stem' (first defined at "
              "line 3)", "= fix: give each layer a unique name"], 1),
    "input-is-reserved": ("""
        input: [3, 32, 32]
        layers:
          - relu:
            name: input
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'input': duplicate layer name 'input' ('input' is "
              "reserved)"], 1),
    "name-with-a-dot": ("""
        input: [3, 32, 32]
        layers:
          - relu:
            name: a.b
        """, ["spec.yaml:4:11: error: invalid-spec: a layer name must be a non-empty text without dots, received "
              "'a.b'", "= fix: use letters, digits and '_'"], 1),
    "inputs-not-a-list": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8}
            name: a
          - relu:
            inputs: a
        """, ["spec.yaml:6:13: error: invalid-spec: layer 'relu_1': `inputs` must be a list of layer names, "
              "received 'a'", "= fix: write `inputs: [name]`"], 1),
    "merge-with-one-input": ("""
        input: [3, 32, 32]
        layers:
          - add: [input]
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'add_1': add takes 2 to 64 inputs, received 1",
              "= fix: list its inputs: `- add: [a, b]`, or give branches"], 1),
    "cycle": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 3, kernel: 3, padding: 1}
            name: a
            inputs: [b]
          - conv: {filters: 3, kernel: 3, padding: 1}
            name: b
            inputs: [a]
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'a': layers form a cycle: a <- b <- a",
              "= fix: a layer's `inputs` must name layers that do not depend on it; break the loop"], 1),
    "unconnected-layer": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3}
            name: side
          - conv: {filters: 16, kernel: 3}
            inputs: [input]
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'side': its output reaches no output of the network",
              "= fix: use it as an input of a later layer, list it under `outputs:`, or remove it"], 1),
    "unknown-output": ("""
        input: [3, 32, 32]
        layers:
          - relu
        outputs: [relu_2]
        """, ["spec.yaml:4:11: error: invalid-spec: unknown output layer 'relu_2' (did you mean 'relu_1'?)"], 1),
    # -- shapes -----------------------------------------------------------------------------------
    "kernel-larger-than-input": ("""
        input: [3, 8, 8]
        layers:
          - conv: {filters: 8, kernel: 11}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (3, 8, 8): ",
              "11-wide window", "along H", "8 + padding 0+0 = 8 < 11", "= fix: use a smaller kernel"], 1),
    "batchnorm-affine-contradicts-scale": ("""
        input: [3, 4, 4]
        layers:
          - batchnorm: {affine: false, scale: true}
        """, ["spec.yaml:3:5: error: shape-error: layer 'batchnorm_1': batchnorm on input (3, 4, 4): "
              "affine: false contradicts scale: true",
              "= fix: drop `affine: false` and set `scale` and `center` alone (each defaults to true)"], 1),
    "groupnorm-groups-do-not-divide-channels": ("""
        input: [6, 4, 4]
        layers:
          - groupnorm: {groups: 4}
        """, ["spec.yaml:3:5: error: shape-error: layer 'groupnorm_1': groupnorm on input (6, 4, 4): "
              "groups=4 does not divide the 6 input channels",
              "= fix: use a number of groups that divides 6, e.g. 3"], 1),
    "instancenorm-on-a-vector": ("""
        input: [6]
        layers:
          - instancenorm
        """, ["spec.yaml:3:5: error: shape-error: layer 'instancenorm_1': instancenorm on input (6): "
              "instancenorm normalises each channel over its positions, but a vector has none",
              "= fix: use batchnorm or layernorm on a vector"], 1),
    "layerscale-init-not-a-number": ("""
        input: [4, 5, 5]
        layers:
          - layerscale: {init: abc}
        """, ["spec.yaml:3:24: error: invalid-spec: layer 'layerscale_1': layerscale argument 'init' received "
              "'abc', expected a number", "= fix: set `init` to a number"], 1),
    "layerscale-misspelt-init": ("""
        input: [4, 5, 5]
        layers:
          - layerscale: {inti: 0.1}
        """, ["spec.yaml:3:18: error: invalid-spec: layer 'layerscale_1': layerscale has no argument 'inti' "
              "(did you mean 'init'?)", "= fix: layerscale takes: init"], 1),
    "window-larger-than-padded-input": ("""
        input: [3, 4, 4]
        layers:
          - maxpool: {kernel: 7, padding: 1}
        """, ["spec.yaml:3:5: error: shape-error: layer 'maxpool_1': maxpool on input (3, 4, 4): ",
              "7-wide window", "4 + padding 1+1 = 6 < 7"], 1),
    "dilated-kernel-larger-than-input": ("""
        input: [3, 16]
        layers:
          - conv: {filters: 8, kernel: 3, dilation: 9}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (3, 16): ",
              "dilated to 19", "along L", "16 < 19"], 1),
    "spatial-size-reaches-zero": ("""
        input: [3, 16, 16]
        layers:
          - conv: {filters: 8, kernel: 3, stride: 2}
          - conv: {filters: 8, kernel: 3, stride: 2}
          - conv: {filters: 8, kernel: 3, stride: 2}
          - conv: {filters: 8, kernel: 3}
        """, ["spec.yaml:6:5: error: shape-error: layer 'conv_4': conv on input (8, 1, 1): ", "1 < 3",
              "downsample less"], 1),
    "transposed-conv-output-below-one": ("""
        input: [3, 1, 1]
        layers:
          - convtranspose: {filters: 4, kernel: 1, padding: 2}
        """, ["spec.yaml:3:5: error: shape-error: layer 'convtranspose_1': convtranspose on input (3, 1, 1): ",
              "-3", "= fix: reduce the padding"], 1),
    "add-differs-in-channels": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
            name: a
          - conv: {filters: 16, kernel: 3, padding: 1}
            name: b
          - add: [a, b]
        """, ["spec.yaml:7:5: error: shape-error: layer 'add_1': add on input (8, 32, 32) and (16, 32, 32): ",
              "channels (8 vs 16)", "1x1 conv"], 1),
    "add-differs-in-height": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
            name: a
          - conv: {filters: 8, kernel: 3, stride: 2, padding: 1}
            name: b
          - add: [a, b]
        """, ["spec.yaml:7:5: error: shape-error: layer 'add_1': add on input (8, 32, 32) and (8, 16, 16): ",
              "H (32 vs 16)"], 1),
    "concat-differs-off-its-axis": ("""
        input: [3, 32, 32]
        layers:
          - concat:
              - [conv: {filters: 8, kernel: 3}]
              - [conv: {filters: 8, kernel: 3, padding: 1}]
        """, ["spec.yaml:3:5: error: shape-error: layer 'concat_1': concat on input (8, 30, 30) and (8, 32, 32): ",
              "H (30 vs 32)", "channels"], 1),
    "groups-do-not-divide-channels": ("""
        input: [6, 16, 16]
        layers:
          - conv: {filters: 8, kernel: 3, groups: 4}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (6, 16, 16): ",
              "groups=4", "6 input channels"], 1),
    "groups-do-not-divide-filters": ("""
        input: [6, 16, 16]
        layers:
          - conv: {filters: 8, kernel: 3, groups: 3}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (6, 16, 16): ",
              "groups=3", "filters=8"], 1),
    "shuffle-groups-do-not-divide-channels": ("""
        input: [3, 16, 16]
        layers:
          - conv: {filters: 24, kernel: 1}
          - channelshuffle: 5
        """, ["spec.yaml:4:5: error: shape-error: layer 'channelshuffle_1': channelshuffle on input (24, 16, 16): "
              "groups=5 does not divide the 24 input channels",
              "= fix: use groups that divide 24, or give the layer before it a multiple of 5 channels"], 1),
    "pixelshuffle-channels-not-divisible-by-factor-squared": ("""
        input: [3, 16, 16]
        layers:
          - conv: {filters: 10, kernel: 3, padding: 1}
          - pixelshuffle: 2
        """, ["spec.yaml:4:5: error: shape-error: layer 'pixelshuffle_1': pixelshuffle on input (10, 16, 16): "
              "the 10 input channels are not divisible by factor^2 = 4 (factor 2 over 2 spatial axes), so they do "
              "not fill 2x2 blocks",
              "= fix: give the layer before it a multiple of 4 channels (8 or 12: 4 per output channel), or change "
              "the factor"], 1),
    "pixelunshuffle-size-not-divisible-by-factor": ("""
        input: [3, 15, 16]
        layers:
          - pixelunshuffle: 2
        """, ["spec.yaml:3:5: error: shape-error: layer 'pixelunshuffle_1': pixelunshuffle on input (3, 15, 16): "
              "H = 15 is not divisible by the factor 2, so the input does not split into 2-wide blocks along H",
              "= fix: pad or crop H to a multiple of 2 (14 or 16) before this layer, or use a factor that divides "
              "15"], 1),
    "slice-past-the-end": ("""
        input: [3, 16, 16]
        layers:
          - conv: {filters: 24, kernel: 1}
          - slice: {start: 12, stop: 30}
        """, ["spec.yaml:4:5: error: shape-error: layer 'slice_1': slice on input (24, 16, 16): stop=30 is outside "
              "the 24 channels: expected from -24 to 24",
              "= fix: give a stop from -24 to 24, or leave it out for the end"], 1),
    "slice-empty": ("""
        input: [3, 16, 16]
        layers:
          - slice: {start: -6, stop: 10, axis: 2}
        """, ["spec.yaml:3:5: error: shape-error: layer 'slice_1': slice on input (3, 16, 16): start=-6, stop=10 "
              "keep nothing of the 16 positions along W (from 10 to 10): expected a start below the stop",
              "= fix: give a start below the stop (start: 0, stop: 8 keeps the first half)"], 1),
    "slice-fractional-start": ("""
        input: [3, 16, 16]
        layers:
          - slice: {start: 1.5}
        """, ["spec.yaml:3:20: error: invalid-spec: layer 'slice_1': slice argument 'start' received 1.5, "
              "expected a whole number", "= fix: set `start` to a whole number"], 1),
    "adaptive-pool-larger-than-its-input": ("""
        input: [3, 192, 192]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
          - maxpool: 32
          - adaptiveavgpool: 7
        """, ["spec.yaml:5:5: error: shape-error: layer 'adaptiveavgpool_1': adaptiveavgpool on input (8, 6, 6): "
              "size 7 asks for a larger output than its input (7 along H from 6, 7 along W from 6): an adaptive pool "
              "would repeat input positions there instead of pooling them (expected at most 6x6)",
              "= fix: use a size of at most 6x6 (`~` keeps an axis as it is), or give this layer a larger map: "
              "downsample less before it, or use a larger input"], 1),
    "adaptive-pool-sizes-for-another-rank": ("""
        input: [3, 16]
        layers:
          - adaptivemaxpool: [4, 4]
        """, ["spec.yaml:3:5: error: shape-error: layer 'adaptivemaxpool_1': adaptivemaxpool on input (3, 16): "
              "'size' has 2 values [4, 4] but the input has 1 spatial axis (L)",
              "= fix: give one value, or exactly 1"], 1),
    "adaptive-pool-size-zero-or-negative": ("""
        input: [3, 16, 16]
        layers:
          - adaptiveavgpool: 0
          - adaptivemaxpool: {size: [4, -1]}
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'adaptiveavgpool_1': adaptiveavgpool argument 'size' "
              "received 0, expected a whole number >= 1, or a list with one per spatial axis (a number, or ~ to keep "
              "that axis)",
              "= fix: set `size` to a whole number >= 1, or a list with one per spatial axis",
              "spec.yaml:4:29: error: invalid-spec: layer 'adaptivemaxpool_1': adaptivemaxpool argument 'size' "
              "received [4, -1], expected a whole number >= 1"], 2),
    "adaptive-pool-under-pytorchs-name": ("""
        input: [3, 16, 16]
        layers:
          - AdaptiveAvgPool2d: 7
        """, ["spec.yaml:3:5: error: invalid-spec: unknown layer type 'AdaptiveAvgPool2d' (did you mean "
              "'adaptiveavgpool'?)"], 1),
    "dense-on-a-feature-map": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3}
          - dense: 10
        """, ["spec.yaml:4:5: error: shape-error: layer 'dense_1': dense on input (8, 30, 30): ",
              "not a feature map", "flatten", "7,200 features"], 1),
    # -- blocks -----------------------------------------------------------------------------------
    "unbound-block-argument": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: {width: 8}
            layers:
              - conv: {filters: $widht, kernel: 3}
        layers:
          - unit
        """, ["spec.yaml:6:25 (from the block used at line 8:5): error: invalid-spec: layer 'unit_1.conv_1': "
              "'$widht' is not an argument of block 'unit' (did you mean 'width'?); it declares width",
              "= fix: declare it in the block's `args` and pass it where the block is used"], 1),
    "block-argument-outside-a-block": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: $width}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': '$width' refers to a block argument, but this "
              "layer is not inside a block",
              "= fix: write the value itself, or move the layer into a block that declares it in `args`"], 1),
    "block-argument-not-passed": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: {width: ~}
            layers:
              - conv: {filters: $width}
        layers:
          - unit
        """, ["spec.yaml:8:5: error: invalid-spec: layer 'unit_1': block 'unit' needs the argument width, which "
              "has no default", "= fix: pass it: `- unit: {width: ...}`"], 1),
    "block-argument-misspelt": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: {width: ~}
            layers:
              - conv: {filters: $width}
        layers:
          - unit: {widht: 8}
        """, ["spec.yaml:8:12: error: invalid-spec: layer 'unit_1': block 'unit' has no argument 'widht' "
              "(did you mean 'width'?)", "= fix: 'unit' declares: width"], 1),
    "block-uses-itself": ("""
        input: [3, 32, 32]
        blocks:
          a:
            layers: [b]
          b:
            layers: [a]
        layers:
          - a
        """, ["error: invalid-spec: layer 'a_1.b_1.a_1': block 'a' uses itself: a -> b -> a",
              "spec.yaml:6:14 (from the block used at line 8:5, 4:14)"], 1),
    "expression-that-cannot-be-computed": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: {width: 8}
            layers:
              - conv: {filters: "${width / 0}"}
        layers:
          - unit
        """, ["spec.yaml:6:25 (from the block used at line 8:5): error: invalid-spec: layer 'unit_1.conv_1': "
              "'${width / 0}' cannot be computed: division by zero"], 1),
    "expression-on-text": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: {width: wide}
            layers:
              - conv: {filters: "${width * 2}"}
        layers:
          - unit
        """, ["layer 'unit_1.conv_1': '${width * 2}': arithmetic needs numbers, received 'wide' and 2"], 1),
    "bad-block-definition": ("""
        input: [3, 32, 32]
        blocks:
          unit:
            args: [width]
            layers: []
          conv:
            layers: [relu]
          other: 3
        layers: [relu]
        """, ["spec.yaml:4:11: error: invalid-spec: block 'unit' key 'args' received ['width'], expected a "
              "mapping of argument name to default value (~ for required)",
              "spec.yaml:5:13: error: invalid-spec: block 'unit' key 'layers' received [], expected a non-empty "
              "list of layers",
              "spec.yaml:6:3: error: invalid-spec: block name 'conv' is a layer type",
              "= fix: rename the block, e.g. 'conv_block'",
              "spec.yaml:8:10: error: invalid-spec: block 'other' must be a mapping with `layers` (and `args`), "
              "received 3"], 4),
    "when-not-a-condition": ("""
        input: [3, 32, 32]
        layers:
          - relu:
            when: maybe
        """, ["spec.yaml:4:11: error: invalid-spec: layer 'relu_1': `when` must be true or false, received 'maybe'",
              "= fix: write a condition such as `when: ${stride != 1}`"], 1),
    # -- absurd sizes -----------------------------------------------------------------------------
    "negative-size": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: -8}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters' received -8, "
              "expected a whole number from 1 to 2,147,483,647"], 1),
    "zero-size": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 0, stride: 0}
        """, ["spec.yaml:3:32: error: invalid-spec: layer 'conv_1': conv argument 'kernel' received 0, expected a "
              "whole number >= 1",
              "spec.yaml:3:43: error: invalid-spec: layer 'conv_1': conv argument 'stride' received 0"], 2),
    "zero-in-the-input-shape": ("""
        input: [3, 0, 32]
        layers: [relu]
        """, ["spec.yaml:1:12: error: invalid-spec: the spec key 'input' received [3, 0, 32], expected the input "
              "shape without the batch axis: [F] (a vector of features), [C, L], [C, H, W] or [C, D, H, W], each a "
              "whole number >= 1"], 1),
    "input-shape-of-the-wrong-rank": ("""
        input: [3, 32, 32, 32, 32]
        layers: [relu]
        """, ["spec.yaml:1:8: error: invalid-spec: the spec key 'input' received [3, 32, 32, 32, 32], expected"], 1),
    "window-layer-on-a-vector-input": ("""
        input: [20]
        layers:
          - conv: 8
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (20): conv expects a 1-D, 2-D or "
              "3-D feature map (C, L) / (C, H, W) / (C, D, H, W), received (20)",
              "= fix: apply it before `flatten`/`dense`, or reshape the input to have spatial axes"], 1),
    "number-beyond-64-bits": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 99999999999999999999999999}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters' received "
              "99999999999999999999999999, expected a whole number from 1 to 2,147,483,647"], 1),
    "number-beyond-floating-point": ("""
        input: [3, 32, 32]
        layers:
          - flatten
          - dense: 1e400
        """, ["spec.yaml:4:5: error: invalid-spec: layer 'dense_1': dense argument 'units' received inf (a number "
              "too large to represent), expected a whole number from 1 to 2,147,483,647"], 1),
    "number-with-thousands-of-digits": ("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 1" + "0" * 5000 + "}\n",
                                        ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument "
                                         "'filters' received inf (a number too large to represent)"], 1),
    "sizes-whose-product-overflows": ("""
        input: [2147483647, 2147483647, 2147483647]
        layers:
          - conv: {filters: 2147483647, kernel: 1}
        """, ["spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (2147483647, 2147483647, "
              "2147483647): the output (2147483647, 2147483647, 2147483647) holds 9.9e+27 values"], 1),
    "repeat-negative": ("""
        input: [3, 32, 32]
        layers:
          - relu:
            repeat: -1
        """, ["spec.yaml:4:13: error: invalid-spec: layer 'relu_1': `repeat` must be a whole number from 0 to "
              "50,000, received -1", "= fix: write a count such as `repeat: 3`"], 1),
    "repeat-not-whole": ("""
        input: [3, 32, 32]
        layers:
          - relu:
            repeat: 2.5
        """, ["spec.yaml:4:13: error: invalid-spec: layer 'relu_1': `repeat` must be a whole number from 0 to "
              "50,000, received 2.5"], 1),
    # -- blocks with several inputs, shape expressions, runs (issue 10) -------------------------------
    "block-inputs-missing": ("""
        input: [3, 32, 32]
        blocks:
          up:
            inputs: [x, skip]
            layers: [concat: [x, skip]]
        layers:
          - conv: {filters: 8, kernel: 1}
          - up
        """, ["spec.yaml:8:5: error: invalid-spec: layer 'up_1': block 'up' takes 2 inputs (x, skip), received 1 "
              "(the previous layer)", "= fix: name the others: `inputs: {skip: <layer name>}` (the first, x, is "
              "the previous layer unless named), or list all 2: `inputs: [a, b]`"], 1),
    "block-inputs-wrong-count": ("""
        input: [3, 32, 32]
        blocks:
          up:
            inputs: [x, skip]
            layers: [concat: [x, skip]]
        layers:
          - conv: {filters: 8, kernel: 1}
            name: a
          - up:
            inputs: [a, a, a]
        """, ["spec.yaml:10:13: error: invalid-spec: layer 'up_1': block 'up' takes 2 inputs (x, skip), received 3: "
              "['a', 'a', 'a']", "= fix: list 2 layer names, one for each of x, skip, or name some: "
              "`inputs: {skip: <layer name>}`"], 1),
    "block-input-misspelt": ("""
        input: [3, 32, 32]
        blocks:
          up:
            inputs: [x, skip]
            layers: [concat: [x, skip]]
        layers:
          - conv: {filters: 8, kernel: 1}
            name: a
          - up:
            inputs: {skp: a}
        """, ["spec.yaml:10:14: error: invalid-spec: layer 'up_1': block 'up' has no input 'skp' (did you mean "
              "'skip'?)", "= fix: 'up' takes: x, skip"], 1),
    "block-input-unknown-layer": ("""
        input: [3, 32, 32]
        blocks:
          up:
            inputs: [x, skip]
            layers: [concat: [x, skip]]
        layers:
          - conv: {filters: 8, kernel: 1}
            name: enc1
          - up:
            inputs: {skip: enc4}
        """, ["spec.yaml:10:20: error: invalid-spec: layer 'up_1': unknown layer name 'enc4' (did you mean "
              "'enc1'?)", "= fix: give a layer defined before the block: input, enc1"], 1),
    "block-inputs-not-a-list": ("""
        input: [3, 32, 32]
        blocks:
          b:
            layers: [relu]
        layers:
          - b:
            inputs: 3
        """, ["spec.yaml:7:13: error: invalid-spec: layer 'b_1': `inputs` of block 'b' must list layer names or "
              "map its inputs to layer names, received 3"], 1),
    "block-input-names-with-dots": ("""
        input: [3, 32, 32]
        blocks:
          b:
            inputs: [a.b]
            layers: [relu]
        layers: [b]
        """, ["spec.yaml:4:14: error: invalid-spec: block 'b' key 'inputs' received ['a.b'], expected a list of "
              "names for the block's inputs, without dots"], 1),
    "shape-expression-unknown-axis": ("""
        input: [3, 100]
        layers:
          - conv: {filters: "${input.height // 2}", kernel: 1}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters': '${input.height // 2}' "
              "reads input.height, but the input [3, 100] has no axis 'height' (its axes are channels, length)",
              "= fix: write one of input.channels, input.length"], 1),
    "shape-expression-gives-a-wrong-value": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: "${input.channels - 3}", kernel: 1}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': conv argument 'filters' received 0, expected "
              "a whole number from 1 to 2,147,483,647"], 1),
    "shape-expression-in-when": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 1}
            when: ${input.channels > 3}
        """, ["spec.yaml:4:11: error: invalid-spec: layer 'conv_1': `when` reads the incoming shape "
              "('${input.channels > 3}'), which is known only once shapes propagate, but `when` decides which "
              "layers exist and how they connect before that", "= fix: compute it from block arguments, or pass "
              "it as one; layer arguments may read the shape"], 1),
    "shape-expression-on-a-merge": ("""
        input: [3, 32, 32]
        layers:
          - concat:
              branches: [[conv: 4], [conv: 4]]
              axis: "${input.channels // 100}"
        """, ["spec.yaml:5:13: error: invalid-spec: layer 'concat_1': concat argument 'axis': "
              "'${input.channels // 100}' reads the incoming shape, but concat has 2 inputs"], 1),
    "shape-expression-whole-shape": ("""
        input: [3, 32, 32]
        layers:
          - dense: "${input}"
        """, ["spec.yaml:3:12: error: invalid-spec: layer 'dense_1': '${input}' reads the incoming shape as a "
              "whole; expressions read one axis of it"], 1),
    "function-not-allowed": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: "${len(8)}", kernel: 1}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': '${len(8)}' calls len; expressions call only "
              "min, max, abs, floor, ceil, int, make_divisible, with their arguments in order"], 1),
    "make-divisible-wrong-argument": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: "${make_divisible(20, 0)}", kernel: 1}
        """, ["spec.yaml:3:21: error: invalid-spec: layer 'conv_1': '${make_divisible(20, 0)}': make_divisible's "
              "divisor must be a whole number >= 1, received 0"], 1),
    "repeat-on-an-activation": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 3, padding: 1}
          - batchnorm
          - relu:
            repeat: 3
        """, ["spec.yaml:6:13: error: invalid-spec: layer 'relu_1': `repeat: 3` applies relu, an activation, "
              "several times in a row, which no network needs", "= fix: `repeat` repeats its own entry only; to "
              "repeat a run of entries, list them under one: `- layers: [conv: 64, batchnorm, relu]` with "
              "`repeat: 3` beside `layers`"], 1),
    "repeat-with-inputs": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 1}
            inputs: [input]
            repeat: 2
        """, ["spec.yaml:5:13: error: invalid-spec: layer 'conv_1': `repeat: 2` with `inputs` makes copies that "
              "all read the same layers, side by side: only the last one is read by what follows"], 1),
    "repeat-written-as-an-argument": ("""
        input: [3, 32, 32]
        layers:
          - conv: {filters: 8, kernel: 1, repeat: 2}
        """, ["spec.yaml:3:35: error: invalid-spec: layer 'conv_1': conv has no argument 'repeat'",
              "; `repeat` belongs to the entry: indent it like the type, on its own line after `- conv: {...}`"], 1),
    "run-not-a-list": ("""
        input: [3, 32, 32]
        layers:
          - layers: relu
            repeat: 2
        """, ["spec.yaml:3:5: error: invalid-spec: layer 'group_1': `layers` takes a non-empty list of entries, "
              "received 'relu'"], 1),
    "block-named-layers": ("""
        input: [3, 32, 32]
        blocks:
          layers: {layers: [relu]}
        layers: [relu]
        """, ["spec.yaml:3:3: error: invalid-spec: block name 'layers' is reserved for runs of entries "
              "(`- layers: [...]`)"], 1),
    # -- the document as a whole ------------------------------------------------------------------
    "top-level-keys-misspelt": ("""
        inputs: [3, 32, 32]
        layer: [relu]
        """, ["spec.yaml:1:1: error: invalid-spec: the spec has no key 'inputs' (did you mean 'input'?)",
              "spec.yaml:2:1: error: invalid-spec: the spec has no key 'layer' (did you mean 'layers'?)",
              "= fix: the spec takes: name, description, input, classes, output, metadata, blocks, layers, "
              "outputs"], 2),
    "top-level-key-missing": ("""
        input: [3, 32, 32]
        """, ["spec.yaml:1:1: error: invalid-spec: the spec is missing the required key 'layers'",
              "= fix: add `layers: <value>`"], 1),
    "empty-layer-list": ("""
        input: [3, 32, 32]
        layers: []
        """, ["spec.yaml:2:9: error: invalid-spec: the spec key 'layers' received [], expected a non-empty list "
              "of layers"], 1),
    "spec-is-a-list": ("""
        - conv: {filters: 8}
        - relu
        """, ["spec.yaml:1:1: error: invalid-spec: a spec must be a mapping with `input` and `layers`, the file "
              "is a list", "= fix: start from a sample: `input: [3, 224, 224]` and `layers: [...]`"], 1),
    "spec-is-a-single-value": ("just some text\n",
                               ["spec.yaml:1:1: error: invalid-spec: a spec must be a mapping with `input` and "
                                "`layers`, the file is the single value 'just some text'"], 1),
}


@pytest.mark.parametrize("spec, fragments, count", CASES.values(), ids=CASES.keys())
def test_bad_spec_is_reported(tmp_path, monkeypatch, spec, fragments, count):
    stderr = summary(tmp_path, monkeypatch, spec)
    for fragment in fragments:
        assert fragment in stderr
    assert found(stderr) == count


def test_every_message_has_a_place_and_a_fix(tmp_path, monkeypatch):
    """Across every case: each problem line starts with file:line:col and is followed by a fix."""
    for spec, _, _ in CASES.values():
        stderr = summary(tmp_path, monkeypatch, spec)
        heads = [line for line in stderr.splitlines() if ": error: " in line]
        assert heads
        for head in heads:
            where = head.split(": error: ")[0].split(" (from")[0]
            file, line, col = where.rsplit(":", 2)
            assert file == "spec.yaml" and int(line) >= 1 and int(col) >= 1
        assert stderr.count("= fix: ") == len(heads)


def test_independent_problems_are_all_reported(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, """
        input: [3, 32, 32]
        classes: 0
        layers:
          - conv2d: {filters: 8}
          - conv: {filters: 8, kernal: 3}
          - conv: {filters: -1}
          - maxpool: {kernel: 2}
            repeat: lots
          - add: [input, nowhere]
          - dense
        """)
    assert [line.split(": error: ")[0] for line in stderr.splitlines() if ": error: " in line] == [
        "spec.yaml:2:10", "spec.yaml:4:5", "spec.yaml:5:24", "spec.yaml:6:21", "spec.yaml:8:13", "spec.yaml:9:18",
        "spec.yaml:10:5"]
    assert "the spec key 'classes' received 0, expected the number of output classes" in stderr
    assert "layer 'dense_1': dense is missing the required argument 'units'" in stderr
    assert found(stderr) == 7


def test_independent_shape_problems_are_all_reported(tmp_path, monkeypatch):
    """Branches that fail do not hide each other; what follows a failed layer is not guessed at."""
    stderr = summary(tmp_path, monkeypatch, """
        input: [6, 16, 16]
        layers:
          - conv: {filters: 8, kernel: 3, groups: 4}
            name: a
            inputs: [input]
          - conv: {filters: 8, kernel: 3, groups: 3}
            name: b
            inputs: [input]
          - maxpool: {kernel: 20}
            inputs: [input]
            name: c
          - concat: [a, b, c]
          - dense: 10
        """)
    assert "spec.yaml:3:5: error: shape-error: layer 'a': " in stderr
    assert "spec.yaml:6:5: error: shape-error: layer 'b': " in stderr
    assert "spec.yaml:9:5: error: shape-error: layer 'c': " in stderr
    assert "concat_1" not in stderr and "dense_1" not in stderr
    assert found(stderr) == 3


BLOCK = """
    input: [6, 16, 16]
    blocks:
      res:
        args: {filters: ~}
        layers:
          - add:
              - [conv: {filters: $filters, kernel: 3, padding: 1}]
              - []
    layers:
      - res: {filters: 6}
      - res: {filters: 8}
    """


def test_problem_inside_a_block_points_at_the_block_line_and_the_use_site(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, BLOCK)
    assert ("spec.yaml:6:9 (from the block used at line 11:5): error: shape-error: layer 'res_2.add_1': "
            "add on input (8, 16, 16) and (6, 16, 16)") in stderr
    assert "      6 |       - add:\n        |         ^\n" in stderr
    assert "     11 |   - res: {filters: 8}\n        |     ^ the block is used here\n" in stderr
    assert found(stderr) == 1


def test_nested_blocks_list_every_use_site(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, """
        input: [3, 8, 8]
        blocks:
          inner:
            layers:
              - conv: {filters: 4, kernel: 9}
          outer:
            layers:
              - inner
        layers:
          - relu
          - outer
        """)
    assert ("spec.yaml:5:9 (from the block used at line 11:5, 8:9): error: shape-error: "
            "layer 'outer_1.inner_1.conv_1': conv on input (3, 8, 8)") in stderr
    outermost, innermost = stderr.index("     11 |   - outer"), stderr.index("      8 |       - inner")
    assert stderr.index("      5 |       - conv") < innermost < outermost


def test_a_wrong_block_is_reported_once_however_often_it_is_used(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, """
        input: [3, 32, 32]
        blocks:
          unit:
            layers:
              - conv: {filters: $width}
        layers:
          - unit
          - unit
          - unit:
            repeat: 100
        """)
    assert "spec.yaml:5:25 (from the block used at line 7:5): error: invalid-spec: layer 'unit_1.conv_1': " \
           "'$width' is not an argument of block 'unit'; it declares no arguments" in stderr
    assert found(stderr) == 1


JSON_SPEC = """\
{
  "input": [3, 32, 32],
  "layers": [
    {"conv": {"filters": 8, "kernal": 3}},
    {"conv": {"filters": "8"}},
    "relu",
    {"dense": {"units": 10}, "name": "head", "inputs": ["nope"]}
  ]
}
"""


def test_json_spec_reports_positions(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, JSON_SPEC, "spec.json")
    assert "spec.json:4:29: error: invalid-spec: layer 'conv_1': conv has no argument 'kernal' " \
           "(did you mean 'kernel'?)" in stderr
    assert "spec.json:5:26: error: invalid-spec: layer 'conv_2': conv argument 'filters' received '8', " \
           "expected a whole number" in stderr
    assert "spec.json:7:57: error: invalid-spec: layer 'head': unknown layer name 'nope'" in stderr
    assert found(stderr) == 3


def test_json_shape_error_has_a_position(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, '{"input": [3, 32, 32],\n "layers": [{"conv": 8}, {"dense": 10}]}',
                     "spec.json")
    assert "spec.json:2:26: error: shape-error: layer 'dense_1': dense on input (8, 30, 30)" in stderr


@pytest.mark.parametrize("args, message", [
    (["--input", "3,0,32"], "expected 2 to 4 positive sizes"),
    (["--input", "three"], "expected sizes like 3,224,224, received 'three'"),
    (["--batch", "0"], "0 is not in the range 1<=x<=1000000"),
    (["--dtype", "float8"], "'float8' is not one of"),
])
def test_bad_options_are_usage_errors(tmp_path, monkeypatch, args, message):
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers: [relu]\n", "spec.yaml", *args)
    assert message in stderr


def test_input_override_that_breaks_the_network(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers:\n  - conv: {filters: 4, kernel: 5}\n",
                     "spec.yaml", "--input", "3,4,4")
    assert "spec.yaml:3:5: error: shape-error: layer 'conv_1': conv on input (3, 4, 4): " in stderr


def test_missing_spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["summary", "nowhere.yaml"])
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output
    assert "error: invalid-yaml: cannot read 'nowhere.yaml': No such file or directory" in result.stderr
    assert "= fix: check the path: SPEC is a YAML or JSON spec file" in result.stderr


def test_directory_as_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    result = CliRunner().invoke(main, ["summary", "specs"])
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output
    assert "'specs' is a directory" in result.stderr


# -- every value of a real spec replaced by something wrong: a SpecError, never another exception -----
JUNK = [None, True, -1, 0, 2**40, 2.5, "", "x", [], [0], {}, {"a": 1}]
LENET = yaml.safe_load((Path(__file__).parents[1] / "samples" / "lenet5.yaml").read_text())


def _places(node, path=()):
    """Every (container path, key) in a loaded document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield path, key
        yield from _places(value, (*path, key))


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_any_value_replaced_by_junk_gives_problems_not_crashes(tmp_path, junk):
    path, refused = tmp_path / "spec.yaml", 0
    for where, key in _places(LENET):
        doc = copy.deepcopy(LENET)
        node = doc
        for part in where:
            node = node[part]
        node[key] = junk
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            analyze(path)
        except SpecError as exc:
            assert exc.problems and all(p.message and p.code and p.loc for p in exc.problems)
            refused += 1
    assert refused >= len(list(_places(LENET))) // 2  # most replacements are wrong; all wrong ones are reported
