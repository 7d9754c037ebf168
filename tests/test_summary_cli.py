"""`archcheck summary`: formats, options, the JSON schema, and memory figures checked by hand."""

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from archcheck.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "archcheck" / "schemas" / "summary.schema.json").read_text())
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))


def summary(*args):
    result = CliRunner().invoke(main, ["summary", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def as_json(*args):
    result = summary(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_json_output_follows_the_schema(path):
    doc = as_json(path)
    jsonschema.validate(doc, SCHEMA)
    assert sum(layer["params"] for layer in doc["layers"]) == doc["totals"]["trainable_params"]
    assert sum(layer["macs"] for layer in doc["layers"]) == doc["totals"]["macs"]


def test_the_schema_and_the_options_list_the_propagators_dtypes_and_optimizers():
    from archcheck.commands.summary import summary
    from archcheck.commands.train import train
    from archcheck.propagate import DTYPES, OPTIMIZER_STATES
    from archcheck.training import DEFAULT_LR

    settings = SCHEMA["properties"]["settings"]["properties"]
    assert settings["dtype"]["enum"] == list(DTYPES)
    assert settings["optimizer"]["enum"] == list(OPTIMIZER_STATES)
    assert SCHEMA["properties"]["totals"]["properties"]["training_bytes"]["required"] == list(OPTIMIZER_STATES)
    choices = {p.name: list(p.type.choices) for p in summary.params if hasattr(p.type, "choices")}
    assert choices["dtype"] == list(DTYPES) and choices["optimizer"] == list(OPTIMIZER_STATES)
    assert list(next(p for p in train.params if p.name == "optimizer").type.choices) == list(OPTIMIZER_STATES)
    assert list(DEFAULT_LR) == list(OPTIMIZER_STATES)  # train has a learning rate for each


def test_plain_table_when_piped(tmp_path):
    result = summary(ROOT / "samples" / "resnet18.yaml")
    assert result.exit_code == 0
    out = result.output
    assert "\x1b[" not in out  # no colour codes when not on a terminal
    assert "params                     11,699,112 (trainable 11,689,512, non-trainable 9,600)" in out
    assert "MACs                       1,814,073,344 (1.81G)" in out
    assert "receptive field r / S / P  435 / 32 / 217 at basic_8.relu_1" in out
    assert "the torchvision/fvcore convention" in out  # the convention is printed next to the numbers
    # grouped by block: a group row with the block's subtotal, then its layers indented
    assert any(line.startswith("basic_1 ") and "block" in line and "73,984" in line for line in out.splitlines())
    assert "  add_1.0.conv_1" in out


def test_markdown_and_csv():
    md = summary(ROOT / "samples" / "lenet5.yaml", "--format", "markdown").output
    assert md.startswith("### lenet5: input (1, 32, 32)")
    assert "| params | 61,706 (trainable 61,706, non-trainable 0) |" in md
    rows = list(csv.DictReader(io.StringIO(summary(ROOT / "samples" / "lenet5.yaml", "--format", "csv").output)))
    assert sum(int(r["params"]) for r in rows) == 61_706
    assert rows[1]["rf_r"] == "5x5"  # one value per spatial axis


def spec(tmp_path, text):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return path


def test_peak_memory_follows_tensor_lifetimes(tmp_path):
    # input 64 B (held by the caller throughout) -> conv 128 B -> relu 128 B, written over the conv's output
    path = spec(tmp_path, "input: [1, 4, 4]\nlayers:\n  - conv: {filters: 2, padding: 1}\n  - relu\n")
    totals = as_json(path)["totals"]
    assert totals["activation_bytes"] == 64 + 128 + 128
    assert totals["peak_activation_bytes"] == 192
    assert totals["peak_at"] == "conv_1"
    params = 2 * 9 + 2
    assert totals["param_bytes"] == params * 4
    assert totals["peak_inference_bytes"] == 192 + params * 4
    # training: all outputs kept + params + grads (+ 1x / 2x for momentum / adam)
    assert totals["training_bytes"] == {"sgd": 320 + params * 8, "momentum": 320 + params * 12,
                                        "adam": 320 + params * 16}


def test_a_skip_connection_keeps_its_source_alive(tmp_path):
    # a (64 B) feeds both b and the add, so it stays live while b runs
    path = spec(tmp_path, """input: [1, 4, 4]
layers:
  - relu:
    name: a
  - relu:
    name: b
  - add: [a, b]
""")
    totals = as_json(path)["totals"]
    # the input stays (the caller holds it); a + b live with it (192): b cannot write over a, which the add
    # reads after it; the add writes over a (its last reader), adding nothing
    assert totals["peak_activation_bytes"] == 192
    assert totals["peak_at"] == "b"


def test_batch_dtype_and_input_override(tmp_path):
    base = as_json(ROOT / "samples" / "lenet5.yaml")["totals"]
    big = as_json(ROOT / "samples" / "lenet5.yaml", "--batch", "8", "--dtype", "float16")["totals"]
    assert big["activation_bytes"] == base["activation_bytes"] * 8 // 2
    assert big["param_bytes"] == base["param_bytes"] // 2
    doc = as_json(ROOT / "samples" / "resnet50.yaml", "--input", "3,160,160")
    assert doc["spec"]["input"] == [3, 160, 160]
    assert doc["totals"]["trainable_params"] == 25_557_032
    assert doc["totals"]["macs"] < 4_089_184_256


def test_bad_input_override_is_a_usage_error():
    result = summary(ROOT / "samples" / "lenet5.yaml", "--input", "3,abc")
    assert result.exit_code == 2
    assert "expected sizes like 3,224,224, received '3,abc'" in result.output


def test_receptive_field_notes_misaligned_paths(tmp_path):
    path = spec(tmp_path, """input: [1, 16]
layers:
  - concat:
      - [conv: {filters: 1, kernel: 3}, zeropad: 1]
      - [conv: {filters: 1, kernel: 2, padding: [[0, 1]]}]
""")
    field = as_json(path)["layers"][-1]["receptive_field"]
    assert field["note"].startswith("input fields are not centred alike")
    assert field["axes"] == [{"r": 3, "S": 1, "P": 1}]


def test_a_broadcast_gate_keeps_the_field_of_the_map(tmp_path):
    """Squeeze-and-excitation multiplies the map by a 1x1 gate pooled from all of it: the product's field
    is the map's (the gate scales channels), so the fields after it stay spatial."""
    path = spec(tmp_path, """input: [3, 32, 32]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
  - {name: map, identity}
  - globalavgpool: {keepdims: true}
  - conv: {filters: 8, kernel: 1}
  - sigmoid
  - {name: gated, multiply, inputs: [map, sigmoid_1]}
  - conv: {filters: 8, kernel: 3, padding: 1}
""")
    layers = {layer["name"]: layer["receptive_field"] for layer in as_json(path)["layers"]}
    assert layers["sigmoid_1"]["global"]
    assert layers["gated"]["axes"] == [{"r": 3, "S": 1, "P": 1}] * 2
    assert layers["conv_3"]["axes"] == [{"r": 5, "S": 1, "P": 2}] * 2


def test_every_command_has_help():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for name in ("summary",):
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_an_output_listed_twice_is_refused(tmp_path):
    path = spec(tmp_path, "input: [1, 8]\nlayers:\n  - relu:\n    name: a\noutputs: [a, a]\n")
    result = summary(path)
    assert result.exit_code == 2
    assert "net.yaml:5:14: error: invalid-spec: 'a' is listed twice in `outputs`" in result.output


def test_receptive_fields_beyond_any_float_render_in_every_format(tmp_path):
    """1,100 stride-2 layers give a stride of 2^1100, which no float holds."""
    spec = tmp_path / "deep.yaml"
    spec.write_text("input: [1, 8]\nlayers:\n" + "  - conv: {filters: 1, kernel: 1, stride: 2}\n" * 1100)
    for fmt in ("table", "markdown", "csv"):
        result = summary(spec, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "1.3583e+331" in result.output
    doc = as_json(spec)
    jsonschema.validate(doc, SCHEMA)
    assert doc["layers"][-1]["receptive_field"]["axes"][0]["S"] == 2**1100  # exact in JSON


def _on_a_terminal(args, columns: int) -> str:
    """What a command prints on a real (pseudo-)terminal ``columns`` wide."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "archcheck", *map(str, args)], stdout=follower,
                            stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_a_narrow_terminal_gets_a_layout_that_fits():
    """At 80 columns rich squeezed the name column to nothing and cut the figures (`118…`)."""
    import re

    out = re.sub(r"\x1b\[[0-9;]*m", "", _on_a_terminal(["summary", ROOT / "samples" / "resnet50.yaml"], 80))
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "conv_1  conv  (64, 112, 112)\n    params 9,408   MACs 118.01M   memory 3.06 MiB   RF 7 / 2 / 3" in out
    wide = re.sub(r"\x1b\[[0-9;]*m", "", _on_a_terminal(["summary", ROOT / "samples" / "resnet50.yaml"], 200))
    assert "118.01M" in wide and "│" in wide  # the table, when it fits


HOSTILE = "evil\x1b]0;owned\x07[red]x![i](http://e/i.png)@octocat=HYPERLINK(1)"


def test_hostile_names_are_escaped_in_every_format(tmp_path):
    import json as json_module

    spec = tmp_path / "s.yaml"
    spec.write_text(f'input: [1, 4, 4]\nname: "{HOSTILE[:4]}\\x1b"\nlayers:\n  - relu: {{}}\n'
                    f'    name: "=HYPERLINK(1)![i](http://e/i)@octocat\\x1b]0;t\\x07"\n')
    plain = summary(spec).output
    assert "\x1b" not in plain and "\\x1b]0;t\\x07" in plain
    md = summary(spec, "--format", "markdown").output
    assert "`=HYPERLINK(1)![i](http://e/i)@octocat\\x1b]0;t\\x07`" in md  # a code span: nothing renders
    rows = list(csv.reader(io.StringIO(summary(spec, "--format", "csv").output)))
    assert rows[2][0].startswith("'=HYPERLINK(1)")
    doc = json_module.loads(summary(spec, "--format", "json").output)
    assert doc["layers"][1]["name"].endswith("@octocat\x1b]0;t\x07")  # JSON carries the text exactly
    lint = CliRunner().invoke(main, ["lint", "--no-config", "--format", "markdown", "--select", "AC1", str(spec)])
    assert "\x1b" not in lint.output
    text = CliRunner().invoke(main, ["run", str(spec)]).output
    assert "\x1b" not in text and "\\x1b]0;t\\x07" in text


def test_markdown_escapes_what_renders():
    from archcheck.render import escape

    assert escape.markdown("![i](http://e/i.png) @octocat #12 <b> `x` a|b www.e.com") == \
        "!\\[i\\](http\\://e/i.png) \\@octocat \\#12 &lt;b&gt; \\`x\\` a\\|b www\\.e.com"
    assert escape.markdown_code("a``b") == "```a``b```"
    assert escape.terminal("a\x1b[2Jb\u202ec") == "a\\x1b[2Jb\\u202ec"
    assert [escape.csv_cell(c) for c in ("=1+1", "+1", "-x", "@SUM(A1)", "conv_1")] == \
        ["'=1+1", "'+1", "'-x", "'@SUM(A1)", "conv_1"]


def test_rules_on_a_narrow_terminal_never_cut_a_slug():
    import re

    out = re.sub(r"\x1b\[[0-9;]*m", "", _on_a_terminal(["rules", "--no-config"], 80))
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "non-power-of-two-channels" in out and "receptive-field-too-small" in out
