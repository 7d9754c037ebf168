"""Hostile and malformed files: refused with a clear message, quickly, without exhausting memory.

"Quickly" is checked by construction, not by timing: each hostile input here is so large once
expanded (10^100 values, 10,000 levels, 10^14 layers, a 4 GiB file) that only a refusal before
doing the work can finish at all, and the tests count the work or the memory where they can.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcheck import spec as spec_module
from archcheck.cli import main
from archcheck.errors import EXIT_USAGE, SpecError
from archcheck.spec import MAX_LAYERS, load_spec
from archcheck.yamlsrc import MAX_BYTES, MAX_DEPTH, MAX_NODES, load_text


def summary(tmp_path, monkeypatch, content: str | bytes, name: str = "spec.yaml") -> str:
    """`archcheck summary` on a file with ``content``: exit 2, no traceback; the problems printed."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = CliRunner().invoke(main, ["summary", name])
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.exit_code == EXIT_USAGE, result.output
    return result.stderr


def refused(text: str) -> str:
    """The problems ``load_text`` raises for ``text`` (it must raise)."""
    with pytest.raises(SpecError) as info:
        load_text(text, "spec.yaml")
    return str(info.value)


def peak_memory(fn) -> int:
    """Peak bytes Python allocates while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
    except SpecError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# -- tags: never construct objects ---------------------------------------------------------------
@pytest.mark.parametrize("value, shown", [
    ('!!python/object/apply:os.system ["touch pwned"]', "!!python/object/apply:os.system"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!!python/object:collections.OrderedDict {}", "!!python/object:collections.OrderedDict"),
    ('!!python/object/new:subprocess.Popen [["touch", "pwned"]]', "!!python/object/new:subprocess.Popen"),
    ("!!binary aGVsbG8=", "!!binary"),
    ("!!set {a: null}", "!!set"),
    ("!custom value", "!custom"),
    ("!<tag:example.com,2000:app/x> value", "!<tag:example.com,2000:app/x>"),
])
def test_object_tags_are_refused(tmp_path, monkeypatch, value, shown):
    stderr = summary(tmp_path, monkeypatch, f"input: [3, 32, 32]\nname: {value}\nlayers: [relu]\n")
    assert (f"spec.yaml:2:7: error: invalid-yaml: the tag '{shown}' is not allowed: a spec holds only plain "
            "mappings, lists, numbers and strings") in stderr
    assert f"= fix: remove '{shown}'; archcheck never constructs objects from a spec" in stderr
    assert not (tmp_path / "pwned").exists()


def test_standard_tags_still_work(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text('name: !!str 123\ninput: [3, !!int "32", 32]\nlayers:\n  - dropout: {rate: !!float "0.5"}\n')
    spec = load_spec(path)
    assert spec.name == "123" and spec.input == (3, 32, 32) and spec.nodes[1].layer.rate == 0.5


def test_a_standard_tag_on_a_wrong_value(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, 'input: [3, !!int "thirty-two", 32]\nlayers: [relu]\n')
    assert "spec.yaml:1:12: error: invalid-yaml: 'thirty-two' is not a valid !!int" in stderr


# -- aliases: a billion laughs, and worse ---------------------------------------------------------
def bomb(levels: int, width: int = 10) -> str:
    """``width ** levels`` values once aliases expand, in a few kilobytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "metadata:\n" + "".join(f"  {line}\n" for line in lines) + "input: [3, 32, 32]\nlayers: [relu]\n"


def test_billion_laughs_is_refused(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, bomb(9))
    assert (f"error: invalid-yaml: the document expands to more than {MAX_NODES:,} values (aliases included)"
            in stderr)
    assert "= fix: remove the alias chain; archcheck refuses documents that grow when aliases expand" in stderr
    line = [ln for ln in stderr.splitlines() if "invalid-yaml" in ln][0]
    assert line.startswith("spec.yaml:")  # at the alias that crosses the limit


def test_alias_bomb_of_a_googol_values_is_refused_without_expanding_it():
    assert "expands to more than" in refused(bomb(100))  # 10^100 values: only counting can finish
    assert peak_memory(lambda: load_text(bomb(100))) < 5 * 2**20


def test_one_large_anchor_repeated_is_refused():
    """Quadratic blow-up: a list of 2,000 values aliased 2,000 times."""
    text = "big: &big [" + ", ".join(["x"] * 2000) + "]\nmany: [" + ", ".join(["*big"] * 2000) + "]\n"
    assert "expands to more than" in refused(text)


def test_aliases_in_layers_are_counted_too(tmp_path, monkeypatch):
    text = "a: &a [relu, relu, relu, relu, relu, relu, relu, relu, relu, relu]\n"
    text += "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6))
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nmetadata:\n" +
                     "".join(f"  {line}\n" for line in text.splitlines()) + "layers: *g\n")
    assert "expands to more than" in stderr


def test_ordinary_anchors_and_merge_keys_work(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("""\
input: [3, 32, 32]
metadata:
  conv3: &conv3 {kernel: 3, padding: 1, bias: false}
layers:
  - conv: {<<: *conv3, filters: 8}
  - conv: {<<: *conv3, filters: 16, kernel: 5, padding: 2}
  - conv: *conv3
""")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    # the first two are fine (explicit keys win over merged ones); the third lacks filters
    [problem] = info.value.problems
    assert problem.layer == "conv_3" and "missing the required argument 'filters'" in problem.message


def test_undefined_alias(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers: [*nothing]\n")
    assert "spec.yaml:2:10: error: invalid-yaml: unknown alias '*nothing'" in stderr
    assert "= fix: define the anchor '&name' first" in stderr


# -- nesting ---------------------------------------------------------------------------------------
DEEP = {
    "flow-lists": "input: [3, 32, 32]\nlayers: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "flow-mappings": "input: [3, 32, 32]\nlayers: [relu]\nmetadata: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
    "block-lists": "input: [3, 32, 32]\nlayers:\n" + "- " * 10_000 + "relu\n",
    "block-mappings": "input: [3, 32, 32]\nlayers: [relu]\nmetadata:\n" +
                      "".join(" " * (i + 1) + f"k{i}:\n" for i in range(1_000)),
    "branches": "input: [3, 32, 32]\nlayers:\n  - " + "concat: [[" * 200 + "relu" + "]]" * 200 + "\n",
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_deep_nesting_is_refused(tmp_path, monkeypatch, text):
    """A recursive parser or builder would overflow the stack long before 10,000 levels."""
    stderr = summary(tmp_path, monkeypatch, text)
    assert f"error: invalid-yaml: lists and mappings nest deeper than {MAX_DEPTH} levels here; a spec needs " \
           "about 10" in stderr
    assert "= fix: flatten the structure; use blocks instead of deeply nested branches" in stderr
    assert peak_memory(lambda: load_text(text)) < 5 * 2**20


def test_deeply_nested_expression_is_refused(tmp_path, monkeypatch):
    expression = "(" * 5_000 + "1" + ")" * 5_000
    stderr = summary(tmp_path, monkeypatch, f'input: [3, 32, 32]\nlayers:\n  - dense: "${{{expression}}}"\n')
    assert "spec.yaml:3:12: error: invalid-spec: layer 'dense_1': an expression of 10,001 characters is too long " \
           "(at most 500)" in stderr


@pytest.mark.parametrize("expression, message", [
    ("9**9**9", "exponent 387420489 is too large"),
    ("((3**64)**64)**64", "gives a number of more than 64 bits"),
    ("'a' * 10**9", "arithmetic needs numbers, received 'a' and 1000000000"),
    ("'a' < 1", "cannot compare 'a' with 1"),
    ("__import__('os')", "calls __import__; expressions call only min, max, abs, floor, ceil, int, make_divisible"),
    ("x.__class__", "reads 'x.__class__'; only the incoming shape, `input`, has axes to read"),
    ("min(*[1])", "uses something expressions cannot"),
    ("[1][0]", "uses something expressions cannot"),
])
def test_hostile_expressions_are_refused(tmp_path, monkeypatch, expression, message):
    stderr = summary(tmp_path, monkeypatch, f"""\
input: [3, 32, 32]
blocks:
  b:
    args: {{x: 1}}
    layers:
      - dense: "${{{expression}}}"
layers:
  - flatten
  - b
""")
    assert "spec.yaml:6:16 (from the block used at line 9:5): error: invalid-spec: layer 'b_1.dense_1': " in stderr
    assert message in stderr


# -- huge repeat counts ----------------------------------------------------------------------------
@pytest.mark.parametrize("count", ["1000000000", "1" + "0" * 30, "1e300", "-5"])
def test_huge_or_negative_repeat_is_refused(tmp_path, monkeypatch, count):
    stderr = summary(tmp_path, monkeypatch, f"input: [3, 32, 32]\nlayers:\n  - relu:\n    repeat: {count}\n")
    assert f"spec.yaml:4:13: error: invalid-spec: layer 'relu_1': `repeat` must be a whole number from 0 to " \
           f"{MAX_LAYERS:,}, received " in stderr
    assert "= fix: write a count such as `repeat: 3`; for long stacks repeat a block" in stderr


NESTED_REPEATS = f"""\
input: [3, 32, 32]
blocks:
  inner:
    layers:
      - conv: {{filters: 3, kernel: 1}}
        repeat: {MAX_LAYERS}
  middle:
    layers:
      - inner:
        repeat: {MAX_LAYERS}
layers:
  - middle:
    repeat: {MAX_LAYERS}
"""


def test_nested_repeats_are_refused_after_a_few_layers(tmp_path, monkeypatch):
    """50,000^3 layers: refused once the first few show what every repetition will add."""
    made = []
    layer = spec_module._Expander.layer
    monkeypatch.setattr(spec_module._Expander, "layer", lambda self, *a: made.append(1) or layer(self, *a))
    stderr = summary(tmp_path, monkeypatch, NESTED_REPEATS)
    assert len(made) < 10
    # reported at the repeat that would add the most
    assert "spec.yaml:13:13: error: invalid-spec: layer 'middle_1': the spec expands to at least " in stderr
    assert f"(`repeat: {MAX_LAYERS:,}` here); archcheck accepts at most {MAX_LAYERS:,}" in stderr


def test_too_many_listed_layers_are_refused_before_expansion(tmp_path, monkeypatch):
    made = []
    layer = spec_module._Expander.layer
    monkeypatch.setattr(spec_module._Expander, "layer", lambda self, *a: made.append(1) or layer(self, *a))
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers:\n" + "- relu\n" * (MAX_LAYERS + 1))
    assert not made
    assert f"spec.yaml:3:1: error: invalid-spec: {MAX_LAYERS + 1:,} layers are listed here; archcheck accepts " \
           f"at most {MAX_LAYERS:,}" in stderr


# -- size, encoding and the file itself ------------------------------------------------------------
def test_multi_megabyte_file_is_refused(tmp_path, monkeypatch):
    text = "input: [3, 32, 32]\nlayers:\n" + "  - conv: {filters: 64, kernel: 3, padding: 1}\n" * 70_000
    stderr = summary(tmp_path, monkeypatch, text)
    assert (f"spec.yaml:1:1: error: invalid-yaml: the file is {len(text):,} bytes; specs are limited to "
            f"{MAX_BYTES:,} bytes (2 MiB)") in stderr
    assert "= fix: use blocks and `repeat` instead of spelling every layer out, or split the network" in stderr


def test_huge_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    """4 GiB (sparse, so it costs no disk): refused from its size; reading it could not finish here."""
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "huge.yaml", "wb") as fh:
        fh.write(b"input: [3, 32, 32]\n")
        fh.truncate(4 * 2**30)
    result = CliRunner().invoke(main, ["summary", "huge.yaml"])
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output
    assert f"huge.yaml:1:1: error: invalid-yaml: the file is {4 * 2**30:,} bytes" in result.stderr
    assert "      1 | input: [3, 32, 32]" in result.stderr


def test_huge_text_is_refused_before_parsing():
    text = "x" * (MAX_BYTES + 1)
    assert peak_memory(lambda: refused(text)) < 2**20
    assert f"the file is {MAX_BYTES + 1:,} bytes" in refused(text)


def test_a_very_long_line_is_cut_in_the_excerpt(tmp_path, monkeypatch):
    text = '{input: [3, 32, 32], metadata: {notes: "' + "x" * 1_000_000 + '"}, layers: [relux]}'
    stderr = summary(tmp_path, monkeypatch, text)
    assert f"spec.yaml:1:{text.index('relux') + 1:}: error: invalid-spec: unknown layer type 'relux'" in stderr
    excerpt = [ln for ln in stderr.splitlines() if ln.startswith("      1 | ")][0]
    assert excerpt.startswith("      1 | ...") and excerpt.endswith("relux]}") and len(excerpt) < 120
    caret = stderr.splitlines()[stderr.splitlines().index(excerpt) + 1]
    assert caret.index("^") == excerpt.index("relux]")


@pytest.mark.parametrize("content, where, message", [
    (b"input: [3, 32, 32]\nname: caf\xe9\nlayers: [relu]\n", "spec.yaml:2:10",
     "the file is not UTF-8 text: byte 0xe9 at offset 28 (invalid continuation byte)"),
    ("input: [3, 32, 32]\nlayers: [relu]\n".encode("utf-16"), "spec.yaml:1:1",
     "the file is not UTF-8 text: byte 0xff at offset 0 (invalid start byte)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "spec.yaml:1:1", "the file is not UTF-8 text: byte 0x89 at offset 0"),
])
def test_file_that_is_not_utf8(tmp_path, monkeypatch, content, where, message):
    stderr = summary(tmp_path, monkeypatch, content)
    assert f"{where}: error: invalid-yaml: {message}" in stderr
    assert "= fix: save the spec as UTF-8" in stderr


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_control_characters_are_located_and_not_echoed(tmp_path, monkeypatch, char):
    stderr = summary(tmp_path, monkeypatch, f'input: [3, 32, 32]\nname: "net{char}[2J"\nlayers: [relu]\n')
    assert (f"spec.yaml:2:11: error: invalid-yaml: the file contains the character U+{ord(char):04X}, which YAML "
            "does not allow") in stderr
    assert char not in stderr  # shown as a replacement character, never sent to the terminal
    assert '      2 | name: "net\N{REPLACEMENT CHARACTER}[2J"' in stderr


def test_byte_order_mark_and_windows_line_ends_are_fine(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, b"\xef\xbb\xbfinput: [3, 32, 32]\r\nlayers:\r\n  - relux\r\n")
    assert "spec.yaml:3:5: error: invalid-spec: unknown layer type 'relux' (did you mean 'relu'?)" in stderr
    assert "      3 |   - relux\n" in stderr


@pytest.mark.parametrize("content", ["", "\n\n   \n", "# only a comment\n", "---\n...\n"],
                         ids=["empty", "blank", "comment", "empty-document"])
def test_empty_file(tmp_path, monkeypatch, content):
    stderr = summary(tmp_path, monkeypatch, content)
    assert ("spec.yaml:1:1: error: invalid-spec: a spec must be a mapping with `input` and `layers`, the file is "
            "empty") in stderr
    assert "= fix: start from a sample: `input: [3, 224, 224]` and `layers: [...]`" in stderr


def test_several_documents(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers: [relu]\n---\ninput: [1, 8]\n")
    assert "spec.yaml:3:1: error: invalid-yaml: the file holds more than one YAML document" in stderr
    assert "= fix: keep one network per file; remove the extra '---' section" in stderr


def test_mapping_as_a_key(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, "input: [3, 32, 32]\nlayers: [relu]\n? [a, b]\n: 1\n")
    assert "spec.yaml:3:3: error: invalid-yaml: a mapping key must be a plain value, not a list or mapping" in stderr


def test_directory_and_missing_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    for path, message in [
        ("specs", "'specs' is a directory"),
        ("missing.yaml", "error: invalid-yaml: cannot read 'missing.yaml': No such file or directory"),
        ("specs/missing.yaml", "cannot read 'specs/missing.yaml'"),
    ]:
        result = CliRunner().invoke(main, ["summary", path])
        assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output
        assert message in result.stderr


EMPTY_REPEATS = f"""\
input: [3, 8, 8]
blocks:
  nothing:
    layers:
      - relu:
        when: false
  many:
    layers:
      - nothing:
        repeat: {MAX_LAYERS}
layers:
  - relu
  - many:
    repeat: {MAX_LAYERS}
"""

FAILING_REPEATS = f"""\
input: [3, 8, 8]
blocks:
  broken:
    layers:
      - flatten: 1
        repeat: {MAX_LAYERS}
layers:
  - broken:
    repeat: {MAX_LAYERS}
"""


def test_repeats_that_make_no_layers_are_refused_by_their_count(tmp_path, monkeypatch):
    """2.5 billion repetitions that each make nothing: refused by counting repetitions, not layers."""
    stderr = summary(tmp_path, monkeypatch, EMPTY_REPEATS)
    assert ("spec.yaml:14:13: error: invalid-spec: layer 'many_1': the `repeat` counts multiply to more than "
            "200,000 repetitions (`repeat: 50,000` here), whether or not they make layers") in stderr
    assert stderr.endswith("1 problem found\n")


def test_a_failing_repetition_is_reported_once_and_not_repeated(tmp_path, monkeypatch):
    stderr = summary(tmp_path, monkeypatch, FAILING_REPEATS)
    assert "layer 'broken_1.flatten_1': flatten takes no shorthand value, received 1" in stderr
    assert stderr.endswith("1 problem found\n")


# -- files that are not regular files (issue 7) ------------------------------------------------------
def test_a_spec_that_is_dev_zero_is_refused_after_the_byte_limit(tmp_path, monkeypatch):
    """st_size of /dev/zero is 0: the limit is counted while reading, so this cannot read until MemoryError."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    result = CliRunner().invoke(main, ["summary", "zero.yaml"])
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output
    assert "zero.yaml:1:1: error: invalid-yaml: 'zero.yaml' is a character device, not a regular file" in result.stderr


def test_a_fifo_spec_is_refused_without_waiting_for_a_writer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe.yaml")
    result = CliRunner().invoke(main, ["summary", "pipe.yaml"])
    assert result.exit_code == EXIT_USAGE
    assert "'pipe.yaml' is a named pipe (FIFO), not a regular file" in result.stderr


def test_lint_reports_special_files_in_a_directory_and_checks_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a_zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "specs" / "b_pipe.yaml")
    (tmp_path / "specs" / "c_good.yaml").write_text("input: [3, 32, 32]\nlayers: [relu]\n")
    result = CliRunner().invoke(main, ["lint", "--no-config", "--format", "json", "specs"])
    found = {(Path(f["file"]).name, f["rule"]) for f in json.loads(result.stdout)["findings"]}
    assert ("a_zero.yaml", "invalid-yaml") in found and ("b_pipe.yaml", "invalid-yaml") in found
    assert json.loads(result.stdout)["summary"]["files_checked"] == 3
