"""Data, weights and output files built to crash, hang or exhaust `run`, `train` and `export` (issue 7):
each is a clear message and exit 2, read within bounds, and no output file is ever left half-written."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from archcheck.cli import main

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "samples" / "lenet5.yaml"  # input (1, 32, 32)
SMALL = "input: [1, 4, 4]\nlayers:\n  - conv: {filters: 2, kernel: 3, padding: 1}\n  - flatten\n  - dense: 3\n"


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result


def refused(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    return result.stderr


def npy_bytes(shape, dtype="<f4", data: bytes = b"") -> bytes:
    """An .npy header claiming ``shape`` and ``dtype``, followed by ``data`` (possibly far less)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue() + data


def zip_of(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# -- unreadable data, labels and weights -----------------------------------------------------------
def test_zero_samples(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((0, 1, 32, 32), np.float32))
    assert "x.npy holds no samples (an array of shape (0, 1, 32, 32))" in refused("run", LENET, "--data",
                                                                                  tmp_path / "x.npy")


@pytest.mark.parametrize("option", ["--data", "--labels", "--weights"])
def test_object_arrays_are_never_unpickled(tmp_path, option):
    name = {"--data": "input", "--labels": "softmax_1", "--weights": "stage_1.conv_1.weight"}[option]
    np.savez(tmp_path / "o.npz", **{name: np.array([{"a": 1}, None], dtype=object)})
    args = ["run", LENET, "--grad", option, tmp_path / "o.npz"] if option == "--labels" else \
        ["run", LENET, option, tmp_path / "o.npz"]
    err = refused(*args)
    assert "holds object values; archcheck reads numbers only (no objects, text or records: those would need " \
           "pickle)" in err


def test_object_array_in_weights_under_a_weight_name(tmp_path):
    zip_of(tmp_path / "w.npz", {"stage_1.conv_1.weight.npy": npy_bytes((2,), "|O")})
    assert "holds object values" in refused("run", LENET, "--weights", tmp_path / "w.npz")


def test_truncated_and_corrupt_archives(tmp_path):
    np.savez(tmp_path / "x.npz", input=np.zeros((4, 1, 32, 32), np.float32))
    data = (tmp_path / "x.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert "cut.npz cannot be read as an .npz archive" in refused("run", LENET, "--data", tmp_path / "cut.npz")
    np.savez_compressed(tmp_path / "z.npz", input=np.random.default_rng(0).standard_normal((4, 1, 32, 32)))
    raw = bytearray((tmp_path / "z.npz").read_bytes())
    raw[200:260] = b"\xff" * 60  # inside the deflate stream
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    err = refused("run", LENET, "--data", tmp_path / "bad.npz")
    assert "bad.npz" in err and ("cannot be read as an .npz archive" in err or "is not a NumPy array" in err)


def test_header_claiming_71_gib_is_refused_before_reading(tmp_path):
    (tmp_path / "x.npy").write_bytes(npy_bytes((71 * 2**28, 1, 32, 32)))
    err = refused("run", LENET, "--data", tmp_path / "x.npy", "--batch", "1")
    assert "x.npy is truncated: its header promises 4,096 bytes of data, the file holds 0" in err  # one sample
    err = refused("run", LENET, "--data", tmp_path / "x.npy", "--batch", "100000", "--max-memory", "1GiB")
    assert "more than --max-memory (1.00 GiB)" in err


def test_small_npz_of_a_large_array_reads_only_the_batch(tmp_path):
    """A deflated archive of zeros is tiny whatever its size: --batch limits what is decompressed."""
    with zipfile.ZipFile(tmp_path / "big.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("input.npy", "w") as member:
            member.write(npy_bytes((16_384, 1, 32, 32)))
            chunk = bytes(2**20)
            for _ in range(64):  # 64 MiB of zeros
                member.write(chunk)
    assert (tmp_path / "big.npz").stat().st_size < 2**20
    result = cli("run", LENET, "--data", tmp_path / "big.npz", "--batch", "1", "--max-memory", "16MiB")
    assert result.exit_code == 0, result.output
    err = refused("run", LENET, "--data", tmp_path / "big.npz", "--max-memory", "16MiB")
    assert "holds an array of shape (16384, 1, 32, 32) (float32): reading it needs 64.00 MiB, more than " \
           "--max-memory (16.00 MiB)" in err


def test_extra_weight_members_are_named_never_decompressed(tmp_path):
    from archcheck.executor import init_params
    from archcheck.pipeline import analyze

    arrays = {f"{k}.npy": npy_bytes(v.shape, "<f4", v.astype("<f4").tobytes())
              for k, v in init_params(analyze(LENET)).items()}
    arrays["junk.npy"] = npy_bytes((3 * 2**30,), "|u1")  # claims 3 GiB, holds nothing
    zip_of(tmp_path / "w.npz", arrays)
    err = refused("run", LENET, "--weights", tmp_path / "w.npz")
    assert "  extra: junk is not a weight of this network (not read)" in err


def test_labels_that_claim_too_much(tmp_path):
    (tmp_path / "y.npy").write_bytes(npy_bytes((2**40,), "<i8"))
    assert "reading it needs" in refused("run", LENET, "--grad", "--labels", tmp_path / "y.npy")


# -- images --------------------------------------------------------------------------------------
PIL = pytest.importorskip("PIL.Image", reason="image tests need Pillow")


def test_image_with_too_many_pixels_is_refused_from_its_header(tmp_path):
    PIL.new("1", (9000, 9000)).save(tmp_path / "huge.png")
    assert (tmp_path / "huge.png").stat().st_size < 200_000
    err = refused("run", ROOT / "samples" / "resnet18.yaml", "--data", tmp_path / "huge.png")
    assert "huge.png is a 9,000 x 9,000 image (81 Mpx); archcheck decodes at most 64 Mpx" in err


def test_extreme_aspect_ratio_is_refused_before_resizing(tmp_path):
    PIL.new("RGB", (100_000, 1)).save(tmp_path / "line.png")
    err = refused("run", ROOT / "samples" / "resnet18.yaml", "--data", tmp_path / "line.png")
    assert "line.png is 100,000 x 1 pixels: resized to cover 224 x 224 it would be 22,400,000 x 224" in err


def test_batch_applies_before_decoding_a_directory(tmp_path):
    for i in range(5):
        PIL.new("L", (40, 40), color=i * 40).save(tmp_path / f"{i}.png")
    (tmp_path / "z_broken.png").write_bytes(b"not a png")  # sorted last: never decoded with --batch 5
    assert cli("run", LENET, "--data", tmp_path, "--batch", "5").exit_code == 0
    assert "z_broken.png cannot be decoded as an image" in refused("run", LENET, "--data", tmp_path)


# -- special files -------------------------------------------------------------------------------
def test_fifo_and_device_as_data_or_weights(tmp_path):
    os.mkfifo(tmp_path / "pipe.npy")
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    assert "pipe.npy is a named pipe (FIFO), not a regular file" in refused("run", LENET, "--data",
                                                                            tmp_path / "pipe.npy")
    assert "is a character device, not a regular file" in refused("run", LENET, "--weights", tmp_path / "zero.npz")


# -- what is written -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["file", "allow_pickle", "args"])
def test_save_takes_any_layer_name(tmp_path, name):
    """numpy.savez takes array names as keyword arguments: `file` truncated the output, `allow_pickle`
    wrote an empty archive."""
    spec = tmp_path / "s.yaml"
    spec.write_text(f"input: [1, 4, 4]\nlayers:\n  - relu: {{}}\n    name: {name}\n  - flatten\n")
    result = cli("run", spec, "--save", tmp_path / "out.npz", "--save-activations")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out.npz") as saved:
        assert name in saved.files and saved[name].shape == (1, 1, 4, 4)


def test_a_failed_save_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    from archcheck.commands import run as run_module

    (tmp_path / "s.yaml").write_text(SMALL)
    (tmp_path / "out.npz").write_bytes(b"the previous results")

    def broken(path, arrays):
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_module, "_savez", broken)
    err = refused("run", tmp_path / "s.yaml", "--save", tmp_path / "out.npz")
    assert "cannot write" in err and "No space left on device" in err
    assert (tmp_path / "out.npz").read_bytes() == b"the previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "s.yaml"]


def test_outputs_never_overwrite_inputs(tmp_path):
    (tmp_path / "s.yaml").write_text(SMALL)
    err = refused("export", tmp_path / "s.yaml", "-o", tmp_path / "s.yaml")
    assert "s.yaml is also an input of this command" in err and (tmp_path / "s.yaml").read_text() == SMALL
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 4, 4), np.float32))
    err = refused("run", tmp_path / "s.yaml", "--data", tmp_path / "x.npy", "--save", tmp_path / "x.npy")
    assert "x.npy is also an input of this command" in err


def test_a_failed_export_leaves_no_model(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from archcheck import onnx_export

    (tmp_path / "s.yaml").write_text(SMALL)

    def broken(model, path, name=None):
        Path(path).write_bytes(b"277 bytes of an invalid model")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(onnx_export, "save_model", broken)
    refused("export", tmp_path / "s.yaml", "-o", tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# -- too big to run --------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["run"], ["run", "--grad"], ["train", "--steps", "1"], ["export", "-o", "m.onnx"]])
def test_valid_but_too_big_to_execute(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("input: [1, 8]\nlayers:\n  - flatten\n  - dense: 2000000000\n")
    err = refused(command[0], "s.yaml", *command[1:])
    assert "more than --max-memory" in err and "Unable to allocate" not in err
    assert not (tmp_path / "m.onnx").exists()
    err = refused(command[0], tmp_path / "s.yaml", *command[1:], "--max-memory", "lots")
    assert "expected a size such as 8GiB, 500MB or 2000000, received 'lots'" in err


def test_a_scalar_is_not_a_batch(tmp_path):
    np.save(tmp_path / "s.npy", np.float32(3))
    assert "s.npy holds an array of shape (), but the spec's input is (1, 32, 32)" in \
        refused("run", LENET, "--data", tmp_path / "s.npy")
