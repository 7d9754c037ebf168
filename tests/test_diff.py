"""`archcheck diff`: layer matching, totals, findings added and removed, the sources (files, git revisions,
standard input), the bad-input messages, and the three formats (JSON validated against its schema)."""

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from archcheck.cli import main
from archcheck.diff import compare, generated
from archcheck.pipeline import analyze

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "archcheck" / "schemas" / "diff.schema.json").read_text())

# a small network with written names (stem, body, head) and generated ones (relu_1, conv_1, ...)
BASE = """\
name: small
input: [3, 32, 32]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
    name: stem
  - relu
  - conv: {filters: 32, kernel: 3, padding: 1}
    name: body
  - relu
  - maxpool: 2
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 10
    name: head
  - softmax
"""


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def diff(*args, input=None):
    result = CliRunner().invoke(main, ["diff", *map(str, args)], input=input)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result


def as_json(*args, input=None) -> dict:
    result = diff(*args, "--format", "json", input=input)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def write(tmp_path, name, text) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(doc, status=None):
    return [r for r in doc["layers"]["rows"] if status is None or r["status"] == status]


def name(row) -> str:
    return (row["new"] or row["old"])["name"]


# -- layer matching ---------------------------------------------------------------------------------------------

def test_a_widened_layer_is_one_changed_row_with_its_figures(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "filters: 32, kernel: 3, padding: 1}\n    name: body",
                                           "filters: 64, kernel: 3, padding: 1}\n    name: body"))
    doc = as_json(old, new)
    changed = {name(r): r for r in rows(doc, "changed")}
    body = changed["body"]
    assert body["matched_by"] == "name" and body["arguments"] == [{"name": "filters", "old": 32, "new": 64}]
    assert body["params"] == {"old": 16 * 9 * 32 + 32, "new": 16 * 9 * 64 + 64, "delta": 16 * 9 * 32 + 32,
                              "relative": 1.0}
    assert body["old"]["output_shape"] == [32, 32, 32] and body["new"]["output_shape"] == [64, 32, 32]
    assert {"arguments", "output_shape", "params", "macs", "output_bytes"} <= set(body["changes"])
    # the relu and pool after it carry the wider map; the next conv reads more channels: all changed in place
    assert set(changed) == {"body", "relu_2", "maxpool_1", "conv_1"}
    assert changed["conv_1"]["params"]["delta"] == 9 * 32 * 32
    assert doc["layers"]["added"] == doc["layers"]["removed"] == 0
    old_a, new_a = analyze(old), analyze(new)
    assert doc["totals"]["params"]["delta"] == new_a.totals.params - old_a.totals.params
    assert doc["totals"]["macs"] == {"old": old_a.totals.macs, "new": new_a.totals.macs,
                                     "delta": new_a.totals.macs - old_a.totals.macs,
                                     "relative": (new_a.totals.macs - old_a.totals.macs) / old_a.totals.macs}


def test_an_inserted_block_is_added_and_the_layers_after_it_keep_their_identity(tmp_path):
    old = write(tmp_path, "old.yaml", ROOT.joinpath("samples", "resnet18.yaml").read_text())
    new = write(tmp_path, "new.yaml", edit(old.read_text(), "  - basic: {filters: 256}\n",
                                           "  - basic: {filters: 256}\n  - basic: {filters: 256}\n"))
    doc = as_json(old, new)
    added = rows(doc, "added")
    # the new block's seven layers; every later block was renumbered (basic_7 -> basic_8), which is no change
    assert {r["new"]["name"].split(".")[0] for r in added} == {"basic_7"} and len(added) == 7
    assert doc["layers"]["changed"] == doc["layers"]["removed"] == 0
    assert doc["layers"]["field"] > 0  # the layers after it see more of the input
    assert all(r["changes"] == ["receptive_field"] for r in rows(doc, "field"))
    assert doc["totals"]["params"]["delta"] == sum(r["params"]["new"] for r in added)
    assert doc["totals"]["receptive_field"]["delta_r"] == [64, 64]
    assert doc["findings"]["added"] == doc["findings"]["removed"] == []  # the findings follow their layers


def test_a_network_widened_throughout_is_changed_in_place(tmp_path):
    """Every width doubled: no layer keeps its shape, yet each is the same layer, changed."""
    import re

    text = ROOT.joinpath("samples", "resnet18.yaml").read_text()
    head, body = text.split("\nlayers:\n")
    wide = head + "\nlayers:\n" + re.sub(r"filters: (\d+)", lambda m: f"filters: {2 * int(m.group(1))}", body)
    old, new = write(tmp_path, "old.yaml", text), write(tmp_path, "new.yaml", wide)
    doc = as_json(old, new)
    assert doc["layers"]["added"] == doc["layers"]["removed"] == 0
    assert all(r["old"]["name"] == r["new"]["name"] for r in rows(doc))
    convs = [r for r in rows(doc, "changed") if r["new"]["type"] == "conv"]
    assert len(convs) == sum(1 for f in analyze(old).layers.values() if f.node.type == "conv")
    assert all(r["new"]["output_shape"][0] == 2 * r["old"]["output_shape"][0] for r in convs)


def test_the_alignment_that_lists_fewer_layers_wins():
    """ResNet-50 -> ResNeXt-50 (32x4d): every bottleneck is wider and grouped, and shapes recur at other
    places (ResNeXt's 128-channel maps at 56x56 are ResNet's at 28x28), so aligning by content alone
    misleads; by place in the same blocks, every layer is changed in place and the softmax is gone."""
    from archcheck.diff import KEYS, _layer_rows, match_layers

    old, new = analyze(ROOT / "samples" / "resnet50.yaml"), analyze(ROOT / "samples" / "resnext50_32x4d.yaml")
    d = compare(old, new, "resnet50", "resnext50")
    assert d.count("added") == 0 and [r.old.name for r in d.layers if r.status == "removed"] == ["softmax_1"]
    assert all(r.old.name == r.new.name for r in d.layers if r.status == "changed")
    listed = {k: sum(r.status != "field" for r in _layer_rows(old, new, match_layers(old, new, by))[0])
              for k, by in KEYS.items()}
    assert sum(r.status != "field" for r in d.layers) == min(listed.values()) < listed["content"]


def test_a_removed_layer(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "  - maxpool: 2\n", ""))
    doc = as_json(old, new)
    removed = rows(doc, "removed")
    assert [r["old"]["name"] for r in removed] == ["maxpool_1"] and removed[0]["new"] is None
    assert removed[0]["params"] == {"old": 0, "new": None, "delta": 0, "relative": None}
    # the conv after it now works on a 32x32 map: four times the MACs, the same parameters
    conv = next(r for r in rows(doc, "changed") if name(r) == "conv_1")
    assert conv["macs"]["new"] == 4 * conv["macs"]["old"] and "params" not in conv["changes"]


def test_a_renamed_layer_is_matched_by_position(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "name: body", "name: trunk"))
    doc = as_json(old, new)
    assert doc["layers"]["added"] == doc["layers"]["removed"] == 0
    [row] = rows(doc)
    assert (row["old"]["name"], row["new"]["name"], row["matched_by"]) == ("body", "trunk", "position")
    assert row["changes"] == ["name"] and row["params"]["delta"] == 0
    out = diff(old, new).stdout
    assert "body → trunk" in out
    assert f"layers: 1 changed, 0 added, 0 removed; {len(analyze(old).layers) - 1} unchanged" in out


def test_a_renamed_and_widened_layer_pairs_with_the_layer_of_its_type(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "filters: 32, kernel: 3, padding: 1}\n    name: body",
                                           "filters: 48, kernel: 3, padding: 1}\n    name: trunk"))
    row = next(r for r in rows(as_json(old, new)) if r["old"] and r["old"]["name"] == "body")
    assert row["new"]["name"] == "trunk" and row["matched_by"] == "position"
    assert {"name", "arguments", "params"} <= set(row["changes"])


def test_a_rewired_skip_connection_is_an_input_change(tmp_path):
    text = """\
input: [8, 16, 16]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
    name: a
  - conv: {filters: 8, kernel: 3, padding: 1}
    name: b
  - conv: {filters: 8, kernel: 3, padding: 1}
    name: c
  - add: [c, a]
    name: join
  - globalavgpool
  - dense: 2
"""
    old = write(tmp_path, "old.yaml", text)
    new = write(tmp_path, "new.yaml", edit(text, "add: [c, a]", "add: [c, b]"))
    [row] = rows(as_json(old, new))
    assert name(row) == "join" and row["changes"] == ["inputs"]
    assert "inputs c, a → c, b" in diff(old, new).stdout


def test_an_inserted_layer_does_not_rewire_the_layer_after_it(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "    name: stem\n", "    name: stem\n  - batchnorm\n"))
    doc = as_json(old, new)
    assert [r["new"]["name"] for r in rows(doc, "added")] == ["batchnorm_1"]
    assert doc["layers"]["changed"] == 0  # relu_1 now reads batchnorm_1, which stands between it and stem


def test_identical_specs_say_no_changes(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", BASE.replace("layers:", "# a comment moves the lines\nlayers:"))
    result = diff(old, new)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[2] == "no changes"
    assert "findings: no changes" in result.stdout
    doc = as_json(old, new)
    assert doc["identical"] is True and doc["layers"]["rows"] == []
    assert doc["layers"]["unchanged"] == len(analyze(old).layers)
    assert all(doc["totals"][k]["delta"] == 0 for k in ("params", "macs", "flops", "peak_inference_bytes"))


def test_generated_names():
    assert generated("conv_3") and generated("basic_7.add_1.0.conv_1") and generated("stage-a_2")
    assert not generated("stem") and not generated("enc1.conv_1") and not generated("input")


def test_compare_on_analyses_directly(tmp_path):
    """The module works on analyses (no command line): the widened layer's deltas come from the two analyses."""
    old = analyze(write(tmp_path, "old.yaml", BASE))
    new = analyze(write(tmp_path, "new.yaml", edit(BASE, "dense: 10", "dense: 20")))
    d = compare(old, new, "old.yaml", "new.yaml")
    assert [r.new.name for r in d.layers] == ["head", "softmax_1"]  # and the softmax over its wider output
    head = d.layers[0]
    assert head.status == "changed" and head.params.delta == new.layers["head"].params - old.layers["head"].params
    assert d.findings is None


# -- findings ---------------------------------------------------------------------------------------------------

def lint_keys(path) -> list[tuple[str, str]]:
    result = CliRunner().invoke(main, ["lint", str(path), "--format", "json"])
    return sorted((f["code"], f["layer"]) for f in json.loads(result.stdout)["findings"])


def test_findings_added_and_removed_are_matched_by_code_and_layer_not_line(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    # a stride-2 conv (AC201 strided-conv) appears and the final map shrinks; a leading comment moves every line
    new_text = "# moved\n# down\n" + edit(BASE, "filters: 16, kernel: 3, padding: 1}", "filters: 16, kernel: 3, "
                                                                                        "padding: 1, stride: 2}")
    new = write(tmp_path, "new.yaml", new_text)
    doc = as_json(old, new)
    added = sorted((f["code"], f["layer"]) for f in doc["findings"]["added"])
    removed = sorted((f["code"], f["layer"]) for f in doc["findings"]["removed"])
    assert ("AC201", "stem") in added
    # exactly what `archcheck lint` reports on one side and not the other
    before, after = lint_keys(old), lint_keys(new)
    assert added == sorted(k for k in after if k not in before)
    assert removed == sorted(k for k in before if k not in after)
    assert doc["findings"]["unchanged"] == len(set(before) & set(after))
    assert {f["file"] for f in doc["findings"]["added"]} == {str(new)}
    # and back: the same finding is removed
    back = as_json(new, old)
    assert ("AC201", "stem") in [(f["code"], f["layer"]) for f in back["findings"]["removed"]]
    out = diff(old, new).stdout
    assert "+ " + str(new) + ":6:5: AC201 strided-conv [info] layer 'stem':" in out


def test_findings_follow_a_renamed_layer(tmp_path):
    text = edit(BASE, "filters: 16, kernel: 3, padding: 1}", "filters: 16, kernel: 3, padding: 1, stride: 2}")
    old = write(tmp_path, "old.yaml", text)
    new = write(tmp_path, "new.yaml", edit(text, "name: stem", "name: entry"))
    doc = as_json(old, new)
    assert doc["findings"]["added"] == doc["findings"]["removed"] == [] and doc["findings"]["unchanged"] >= 1


def test_findings_use_the_configuration_of_new(tmp_path):
    (tmp_path / "archcheck.toml").write_text('ignore = ["strided-conv"]\n')
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "padding: 1}\n    name: stem",
                                           "padding: 1, stride: 2}\n    name: stem"))
    assert "AC201" not in [f["code"] for f in as_json(old, new)["findings"]["added"]]
    assert "AC201" in [f["code"] for f in as_json(old, new, "--no-config")["findings"]["added"]]
    bad = diff(old, new, "--config", tmp_path / "missing.toml")
    assert bad.exit_code == 2 and "missing.toml: no such configuration file" in bad.output


# -- sources: git revisions and standard input ------------------------------------------------------------------

def git(repo: Path, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with two commits of specs/net.yaml (the second widens `head`); the working directory is specs/."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "specs").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "specs" / "net.yaml").write_text(BASE)
    git(root, "add", ".")
    git(root, "commit", "-qm", "one")
    (root / "specs" / "net.yaml").write_text(edit(BASE, "dense: 10", "dense: 20"))
    git(root, "commit", "-qam", "two")
    monkeypatch.chdir(root / "specs")
    return root


def _head_change(doc):
    [row] = [r for r in rows(doc) if name(r) == "head"]
    return row["params"]["old"], row["params"]["new"]


def test_rev_path_and_rev_option(repo):
    expected = (32 * 10 + 10, 32 * 20 + 20)
    doc = as_json("HEAD~1:net.yaml", "net.yaml")
    assert doc["old"]["source"] == "HEAD~1:net.yaml" and _head_change(doc) == expected
    assert _head_change(as_json("--rev", "HEAD~1", "net.yaml")) == expected
    assert _head_change(as_json("HEAD~1:net.yaml", "HEAD:net.yaml")) == expected
    assert as_json("HEAD:net.yaml", "net.yaml")["identical"] is True  # the working copy is HEAD's
    # PATH is relative to the current directory, from anywhere in the checkout (here: the repository's root)
    assert _head_change(as_json(f"HEAD~1:{repo / 'specs' / 'net.yaml'}", repo / "specs" / "net.yaml")) == expected


def test_a_deleted_file_is_still_read_at_its_revision(repo):
    git(repo, "rm", "-q", "specs/net.yaml")
    git(repo, "commit", "-qm", "three")
    assert _head_change(as_json("HEAD~2:net.yaml", "HEAD~1:net.yaml")) == (330, 660)


def test_stdin(repo):
    old = subprocess.run(["git", "show", "HEAD~1:specs/net.yaml"], cwd=repo, capture_output=True, check=True).stdout
    doc = as_json("-", "net.yaml", input=old)
    assert doc["old"]["source"] == "<stdin>" and _head_change(doc) == (330, 660)
    assert _head_change(as_json("HEAD~1:net.yaml", "-", input=(repo / "specs" / "net.yaml").read_bytes())) == \
        (330, 660)


def test_spec_errors_name_the_revision_with_line_and_column(repo):
    (repo / "specs" / "net.yaml").write_text(edit(BASE, "dense: 10", "dense: {units: 10, kernal: 3}"))
    git(repo, "commit", "-qam", "broken")
    (repo / "specs" / "net.yaml").write_text(BASE)
    result = diff("HEAD:net.yaml", "net.yaml")
    assert result.exit_code == 2
    assert "HEAD:net.yaml:14:24: error: invalid-spec: layer 'head': dense has no argument 'kernal'" in result.stderr


def test_spec_errors_from_stdin_name_stdin(tmp_path):
    new = write(tmp_path, "new.yaml", BASE)
    result = diff("-", new, input="input: [3, 8, 8]\nlayers:\n  - conv: {kernel: 3}\n")
    assert result.exit_code == 2 and "<stdin>:3:" in result.stderr and "invalid-spec" in result.stderr
    result = diff("-", new, input=b"input: [3, 8, 8]\n\xff\n")
    assert result.exit_code == 2 and "<stdin>:2:1: error: invalid-yaml: the file is not UTF-8 text" in result.stderr


def test_suppression_comments_and_per_file_ignores_apply_to_a_revision(repo):
    strided = edit(BASE, "padding: 1}\n    name: stem", "padding: 1, stride: 2}  # archcheck: ignore[strided-conv]\n"
                                                       "    name: stem")
    (repo / "specs" / "net.yaml").write_text(strided)
    git(repo, "commit", "-qam", "strided, suppressed")
    doc = as_json("HEAD~1:net.yaml", "HEAD:net.yaml")
    assert "AC201" not in [f["code"] for f in doc["findings"]["added"]]  # the comment in the revision's text
    assert "AC004" not in [f["code"] for f in doc["findings"]["added"]]  # and it is used
    (repo / "archcheck.toml").write_text('[per-file-ignores]\n"specs/net.yaml" = ["uneven-stride-coverage"]\n')
    plain = edit(BASE, "padding: 1}\n    name: stem", "padding: 1, stride: 2}\n    name: stem")
    (repo / "specs" / "net.yaml").write_text(plain.replace("kernel: 3, padding: 1, stride: 2", "kernel: 1, stride: 2"))
    git(repo, "commit", "-qam", "1x1 stride 2")
    codes = [f["code"] for f in as_json("HEAD~2:net.yaml", "HEAD:net.yaml")["findings"]["added"]]
    assert "AC201" in codes and "AC202" not in codes  # per-file-ignores matched the revision's file
    assert "AC202" in [f["code"] for f in as_json("HEAD~2:net.yaml", "HEAD:net.yaml", "--no-config")["findings"]
                       ["added"]]


@pytest.mark.parametrize("args,message", [
    (["HEAD~5:net.yaml", "net.yaml"], "archcheck: error: HEAD~5:net.yaml: there is no revision 'HEAD~5' in the "
                                      "repository at {root}"),
    (["HEAD:nope.yaml", "net.yaml"], "archcheck: error: HEAD:nope.yaml: 'specs/nope.yaml' does not exist at HEAD "
                                     "(commit "),
    (["HEAD:.", "net.yaml"], "archcheck: error: HEAD:.: 'specs' is a directory at HEAD, not a file"),
    ([":net.yaml", "net.yaml"], "archcheck: error: ':net.yaml' names no revision before the colon"),
    (["HEAD:", "net.yaml"], "archcheck: error: 'HEAD:' names no file after the colon"),
    (["--", "-p:net.yaml", "net.yaml"], "archcheck: error: '-p:net.yaml': '-p' is not a revision (it starts with "
                                        "'-')"),
    (["missing.yaml", "net.yaml"], "cannot read 'missing.yaml': No such file or directory"),
    (["net.yaml"], "expected two specs, OLD and NEW, received 1 (net.yaml)"),
    (["-", "-"], "standard input ('-') can be one of OLD and NEW, not both"),
    (["--rev", "HEAD", "a.yaml", "b.yaml"], "--rev HEAD compares one file at that revision with the working copy, so "
                                            "it takes one PATH; received 2 (a.yaml b.yaml)"),
    (["--rev", "HEAD", "-"], "--rev HEAD reads a file of the repository at that revision; '-' (standard input) has "
                             "none"),
    (["net.yaml", "net.yaml", "--format", "csv"], "Invalid value for '--format'"),
])
def test_bad_input_messages(repo, args, message):
    result = diff(*args)
    assert result.exit_code == 2
    assert message.format(root=repo.resolve()) in " ".join(result.output.split()), result.output


def test_outside_a_repository(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no checkout above tmp_path
    write(tmp_path, "net.yaml", BASE)
    result = diff("HEAD:net.yaml", "net.yaml")
    assert result.exit_code == 2
    assert f"archcheck: error: HEAD:net.yaml: {tmp_path.resolve()} is not in a git repository" in result.stderr
    assert "fix: give REV:PATH for a file in a git checkout, or compare two files" in result.stderr


def test_without_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    write(tmp_path, "net.yaml", BASE)
    result = diff("HEAD~1:net.yaml", "net.yaml")
    assert result.exit_code == 2
    assert ("archcheck: error: HEAD~1:net.yaml: reading a file at a revision needs git, and no `git` program was "
            "found on PATH") in result.stderr
    assert "`git show HEAD~1:net.yaml > old.yaml`" in result.stderr


def test_a_path_that_exists_is_a_path_even_with_a_colon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "v1:net.yaml", BASE)
    write(tmp_path, "net.yaml", BASE)
    assert as_json("v1:net.yaml", "net.yaml")["identical"] is True


def test_a_model_file_at_a_revision(repo):
    pytest.importorskip("onnx")
    assert CliRunner().invoke(main, ["export", "net.yaml", "-o", "net.onnx"]).exit_code == 0
    git(repo, "add", "specs/net.onnx")
    git(repo, "commit", "-qm", "model")
    doc = as_json("HEAD:net.onnx", "HEAD~1:net.yaml")
    assert doc["old"]["source"] == "HEAD:net.onnx"
    assert doc["totals"]["params"]["old"] == analyze(repo / "specs" / "net.yaml").totals.params
    (repo / "specs" / "broken.onnx").write_bytes(b"not a model")
    git(repo, "add", "specs/broken.onnx")
    git(repo, "commit", "-qm", "broken model")
    result = diff("HEAD:broken.onnx", "net.yaml")
    assert result.exit_code == 2 and "HEAD:broken.onnx is not a readable ONNX model" in result.stderr
    assert "/tmp" not in result.stderr.replace(str(repo), "")  # the temporary copy is never named


# -- formats ----------------------------------------------------------------------------------------------------

def test_markdown_for_a_pull_request(tmp_path):
    old = write(tmp_path, "old.yaml", ROOT.joinpath("samples", "resnet18.yaml").read_text())
    new = write(tmp_path, "new.yaml", edit(old.read_text(), "  - basic: {filters: 256}\n",
                                           "  - basic: {filters: 256}\n  - basic: {filters: 256}\n"))
    md = diff(old, new, "--format", "markdown").stdout
    assert md.startswith(f"### archcheck diff: `{old}` → `{new}`")
    assert "| params | 11,699,112 | 12,880,808 | +1,181,696 (+10.10%) |" in md
    assert "<details><summary>7 layers added, removed or changed</summary>\n\n|" not in md  # 7 rows: no fold
    assert "| + | `basic_7.add_1.0.conv_1` | conv | (256, 14, 14) | 589,824 |" in md
    longer = write(tmp_path, "longer.yaml", edit(new.read_text(), "  - basic: {filters: 256}\n",
                                                 "  - basic: {filters: 256}\n  - basic: {filters: 256}\n"))
    md = diff(old, longer, "--format", "markdown").stdout
    assert "<details><summary>14 layers added, removed or changed</summary>\n\n| " in md and "</details>" in md


def test_markdown_cuts_a_very_long_layer_list():
    from archcheck.render.diff import MARKDOWN_ROWS

    old, new = ROOT / "samples" / "resnet18.yaml", ROOT / "samples" / "efficientnet_b0.yaml"
    doc = as_json(old, new)
    listed = sum(1 for r in rows(doc) if r["status"] != "field")
    assert listed > MARKDOWN_ROWS
    md = diff(old, new, "--format", "markdown").stdout
    assert sum(1 for line in md.splitlines() if line.startswith(("| ~ |", "| + |", "| - |"))) == MARKDOWN_ROWS
    assert f"_... and {listed - MARKDOWN_ROWS:,} more layers: `--format json` lists every one._" in md
    assert len(md) < 65_536  # a GitHub comment's limit


def test_markdown_escapes_names(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "name: head", "name: '@team|[x](y)'"))
    md = diff(old, new, "--format", "markdown").stdout
    assert "`head` → `@team\\|[x](y)`" in md  # in code spans: no mention, link or extra cell


def test_table_is_plain_text_when_piped_and_explains_macs(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "dense: 10", "dense: 20"))
    out = diff(old, new).stdout
    assert "\x1b[" not in out
    assert out.splitlines()[0] == f"{old} → {new} (batch 1, float32)"
    assert "~  head" in out and "330 → 660" in out
    assert "params" in out and "+330 (+" in out
    assert "the torchvision/fvcore convention" in out


def test_batch_dtype_and_input_options(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "dense: 10", "dense: 20"))
    doc = as_json(old, new, "--batch", "4", "--dtype", "float16", "--input", "3,64,64", "--optimizer", "sgd")
    assert doc["settings"] == {"batch": 4, "dtype": "float16", "optimizer": "sgd"}
    assert doc["new"]["input"] == [3, 64, 64]
    a = analyze(new, 4, "float16", (3, 64, 64), "sgd")
    assert doc["totals"]["training_bytes"]["new"] == a.totals.training_bytes["sgd"]
    assert doc["totals"]["peak_inference_bytes"]["new"] == a.totals.peak_inference_bytes


def test_fail_on_increase(tmp_path):
    small = write(tmp_path, "small.yaml", BASE)
    wide = write(tmp_path, "wide.yaml", edit(BASE, "dense: 10", "dense: 20"))
    grown = diff(small, wide, "--fail-on-increase", "flops, params")
    assert grown.exit_code == 1
    assert grown.stdout.startswith(f"{small} → {wide}")  # the report is printed all the same
    before, after = analyze(small).totals, analyze(wide).totals
    flops, params = after.flops - before.flops, after.params - before.params
    assert grown.stderr.startswith(f"archcheck: FLOPs grew by +{flops:,} (+<0.01%); "  # 680 of 15 million
                                   f"params grew by +{params:,} (+{params / before.params:.2%})")
    assert flops / before.flops < 1e-4
    assert grown.stderr.strip().endswith("(--fail-on-increase flops,params)")
    assert diff(wide, small, "--fail-on-increase", "params,macs,flops,memory,training-memory").exit_code == 0
    assert diff(small, small, "--fail-on-increase", "findings").exit_code == 0
    strided = write(tmp_path, "strided.yaml", edit(BASE, "padding: 1}\n    name: stem",
                                                   "padding: 1, stride: 2}\n    name: stem"))
    found = diff(small, strided, "--fail-on-increase", "findings")
    n = len(as_json(small, strided)["findings"]["added"])
    assert found.exit_code == 1
    assert found.stderr == f"archcheck: {n} finding{'s' if n != 1 else ''} added (--fail-on-increase findings)\n"
    bad = diff(small, wide, "--fail-on-increase", "parms")
    assert bad.exit_code == 2
    assert ("unknown figure 'parms' (did you mean 'params'?); expected a comma-separated list of: params, macs, "
            "flops, memory, training-memory, findings") in " ".join(bad.output.split())


def test_help_documents_the_sources_and_exit_codes():
    text = " ".join(CliRunner().invoke(main, ["diff", "--help"]).output.split())
    assert "REV:PATH" in text and "`-`" in text and "--rev REV" in text
    assert "Exit 0 when the specs were compared" in text and "2 for bad input" in text


def test_an_argument_left_to_its_default_says_so(tmp_path):
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", edit(BASE, "filters: 32, kernel: 3, padding: 1}\n    name: body",
                                           "filters: 32, kernel: 3, padding: same}\n    name: body"))
    text = diff(old, new).stdout
    assert "padding 1 \u2192 'same'" in text
    new.write_text(edit(BASE, "filters: 32, kernel: 3, padding: 1}\n    name: body",
                        "filters: 32, kernel: 3}\n    name: body"))
    assert "padding 1 \u2192 (default)" in diff(old, new).stdout
