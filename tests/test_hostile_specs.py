"""Specs built to crash, hang or exhaust archcheck (issue 7's fuzzing findings): each is a clear
problem with its place, exit 2, in bounded time and memory."""

from __future__ import annotations

import tracemalloc

import pytest
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.errors import EXIT_USAGE, closest
from archcheck.spec import MAX_BLOCK_DEPTH, MAX_COPIED, MAX_FULL_NAME, MAX_NAME


def refused(tmp_path, monkeypatch, text: str, *args: str, command: str = "summary") -> str:
    """Run a command on ``text``; check exit 2, no traceback, bounded memory; return stderr."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, [command, "spec.yaml", *args])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exit_code == EXIT_USAGE, result.output
    assert peak < 300 * 2**20, f"{peak / 2**20:.0f} MiB"
    return result.stderr


def test_non_string_keys_name_the_key_and_what_the_layer_takes(tmp_path, monkeypatch):
    stderr = refused(tmp_path, monkeypatch, "input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, 5: 1}\n"
                     "  - relu: {1: 2}\n")
    assert ("spec.yaml:3:35: error: invalid-spec: layer 'conv_1': conv argument names are text, received the key 5 "
            "(a number)\n") in stderr
    assert "= fix: write the argument's name (`filters: ...`); conv takes: filters, kernel," in stderr
    assert "layer 'relu_1': relu argument names are text, received the key 1 (a number)" in stderr
    assert "= fix: relu takes no arguments: remove the key" in stderr


def test_non_string_key_in_a_block_call(tmp_path, monkeypatch):
    stderr = refused(tmp_path, monkeypatch, "input: [3, 8, 8]\nblocks:\n  b:\n    args: {c: ~}\n    layers:\n"
                     "      - conv: {filters: $c, kernel: 3}\nlayers:\n  - b: {1: 8}\n")
    assert ("spec.yaml:8:9: error: invalid-spec: layer 'b_1': block 'b' argument names are text, received the key 1 "
            "(a number)") in stderr
    assert "block 'b' needs the argument c, which has no default" in stderr


def test_non_string_key_in_a_block_call_does_not_stop_lint(tmp_path, monkeypatch):
    (tmp_path / "good.yaml").write_text("input: [3, 8, 8]\nlayers: [relu]\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("input: [3, 8, 8]\nblocks:\n  b:\n    args: {c: 8}\n    layers: [relu]\n"
                                       "layers:\n  - b: {1: 8}\n")
    result = CliRunner().invoke(main, ["lint", "--no-config", "bad.yaml", "good.yaml"])
    assert result.exit_code == 1 and "internal error" not in result.output
    assert ("bad.yaml:7:9: AC002 invalid-spec [error] layer 'b_1': block 'b' argument names are text, received the "
            "key 1 (a number)") in result.output
    assert "in 2 files" in result.output


def test_non_finite_arguments_are_refused(tmp_path, monkeypatch):
    stderr = refused(tmp_path, monkeypatch, "input: [3, 8, 8]\nlayers:\n  - elu: {alpha: .inf}\n"
                     "  - dropout: .nan\n  - batchnorm: {eps: -.inf}\n")
    assert "spec.yaml:3:18: error: invalid-spec: layer 'elu_1': elu argument 'alpha' received inf" in stderr
    assert "expected a finite number" in stderr
    assert "layer 'dropout_1': dropout argument 'rate' received nan, expected a finite number" in stderr
    assert "layer 'batchnorm_1': batchnorm argument 'eps' received -inf" in stderr


def test_blocks_and_branches_nest_to_a_limit(tmp_path, monkeypatch):
    """30 blocks each nesting 12 `add` branches once ended in RecursionError."""
    text = "input: [3, 8, 8]\nblocks:\n"
    for i in range(31):
        inner = f"b{i - 1}" if i else "relu"
        for _ in range(12):
            inner = f"add: [[{inner}], []]"
        text += f"  b{i}:\n    layers:\n      - {inner}\n"
    stderr = refused(tmp_path, monkeypatch, text + "layers:\n  - b30\n")
    assert f"blocks and branches nest more than {MAX_BLOCK_DEPTH} levels deep" in stderr
    assert "= fix: use fewer levels of blocks and branches" in stderr


def test_interpolated_text_is_bounded_as_it_grows(tmp_path, monkeypatch):
    """`$t$t$t$t` through 20 blocks is 4^20 characters: refused at the level that passes the limit."""
    text = "input: [3, 8, 8]\nblocks:\n  b0:\n    args: {t: ~}\n    layers:\n      - relu: {}\n        name: \"$t\"\n"
    for i in range(1, 21):
        text += f"  b{i}:\n    args: {{t: ~}}\n    layers:\n      - b{i - 1}: {{t: \"$t$t$t$t\"}}\n"
    stderr = refused(tmp_path, monkeypatch, text + "layers:\n  - b20: {t: x}\n")
    assert "'$t$t$t$t' grows to more than 1,000 characters once its references are replaced" in stderr
    assert "= fix: keep texts short; repeated `$name` inside a text doubles it at every block level" in stderr


def test_a_list_cannot_be_interpolated_into_text(tmp_path, monkeypatch):
    text = ("input: [3, 8, 8]\nblocks:\n  b:\n    args: {t: [1, 2]}\n    layers:\n      - relu: {}\n"
            "        name: \"x$t\"\nlayers:\n  - b\n")
    stderr = refused(tmp_path, monkeypatch, text)
    assert "'$t' is a list and cannot be written inside a text" in stderr


def test_expansion_work_is_counted_before_it_is_done(tmp_path, monkeypatch):
    """A 300 kB spec whose aliased value is copied into every use of a block, 10 wide and 5 deep, even into
    entries that `when: false` drops, ran for minutes."""
    big = ", ".join(["[1, 2, 3, 4, 5, 6, 7, 8, 9]"] * 10_000)
    text = (f"input: [3, 8, 8]\nmetadata:\n  big: &big [{big}]\nblocks:\n"
            "  b0:\n    layers:\n      - relu: {}\n        when: false\n        meta: *big\n")
    for i in range(1, 6):
        text += f"  b{i}:\n    layers: [{', '.join([f'b{i - 1}'] * 10)}]\n"
    stderr = refused(tmp_path, monkeypatch, text + "layers:\n  - b5\n")
    assert f"expanding the spec copies more than {MAX_COPIED:,} values (each use of a block copies" in stderr


def test_layer_names_are_bounded(tmp_path, monkeypatch):
    text = "input: [3, 8, 8]\nlayers:\n  - relu: {}\n    name: " + "a" * 100_000 + "\n"
    stderr = refused(tmp_path, monkeypatch, text)
    assert f"spec.yaml:4:11: error: invalid-spec: a layer name is at most {MAX_NAME} characters, received 100,000" \
        in stderr


def test_scoped_names_are_bounded(tmp_path, monkeypatch):
    """Each block level prefixes its name: long block names nested deep make names every output repeats."""
    long = "x" * 120
    text = "input: [3, 8, 8]\nblocks:\n"
    for i in range(12):
        text += f"  {long}{i}:\n    layers:\n      - {f'{long}{i - 1}' if i else 'relu'}\n"
    stderr = refused(tmp_path, monkeypatch, text + f"layers:\n  - {long}11\n")
    assert f"characters long (block and branch prefixes included); at most {MAX_FULL_NAME:,} are accepted" in stderr


def test_many_unknown_names_are_answered_in_bounded_time(tmp_path, monkeypatch):
    """150,000 unknown `inputs` names: a did-you-mean for the first few, a plain list for the rest, and the
    printed problems capped (once 20-45 s)."""
    names = ", ".join(f"n{i}" for i in range(150_000))
    stderr = refused(tmp_path, monkeypatch, f"input: [3, 8, 8]\nlayers:\n  - relu\n  - concat: [{names}]\n")
    assert "unknown layer name 'n0'" in stderr
    assert "more problems not shown" in stderr
    assert stderr.rstrip().endswith("problems found")


def test_closest_is_bounded_for_long_words_and_huge_lists():
    assert closest("x" * 10_000, ["x" * 10_000]) is None
    assert closest("conv_12", [f"conv_{i}" for i in range(200_000)]) is not None


def test_unknown_type_in_a_branch_names_the_branch_item(tmp_path, monkeypatch):
    stderr = refused(tmp_path, monkeypatch, "input: [3, 8, 8]\nlayers:\n  - add: [[relu, multiply: [[], []], "
                     "hardtanh], []]\n")
    assert ("spec.yaml:3:38: error: invalid-spec: layer 'add_1.0.hardtanh_1': unknown layer type 'hardtanh'"
            in stderr)


def test_input_override_must_keep_the_rank(tmp_path, monkeypatch):
    stderr = refused(tmp_path, monkeypatch, "input: [3, 224, 224]\nlayers: [relu]\n", "--input", "3,160")
    assert ("spec.yaml:1:8: error: invalid-spec: --input 3,160 gives 2 sizes, but the spec's input [3, 224, 224] has "
            "3 (channels and 2 spatial axes); a different number would build a 1-D network from a 2-D design") in stderr
    assert "= fix: give 3 sizes, e.g. --input 3,224,224; to change the rank, edit `input` in the spec" in stderr


@pytest.mark.parametrize("call", ["{a: 1, 1: 2}", "{1: ~}", "{a: 1, true: 2}"])
def test_a_block_argument_name_must_be_text(tmp_path, monkeypatch, call):
    """A number as a block argument's name reached the expression lookup, whose listing of names crashed."""
    text = ("input: [3, 8, 8]\nblocks:\n  b:\n    args: {a: 1}\n    layers:\n      - conv: {filters: $a, kernel: 1}\n"
            f"layers:\n  - b: {call}\n")
    stderr = refused(tmp_path, monkeypatch, text)
    assert ": error: invalid-spec: layer 'b_1': block 'b' argument names are text, received the key" in stderr
    assert stderr.startswith("spec.yaml:8:")
    assert "= fix: write the argument's name; 'b' declares: a" in stderr
