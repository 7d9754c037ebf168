"""Sample batches and targets for the executor: arrays, images, or random data.

- ``.npy``: a floating-point array ``(N, *input)``, or one sample ``(*input)``.
- ``.npz``: its only array, or the one named ``input`` (or ``x``).
- an image file, or a directory of them (``.png .jpg .jpeg .bmp .gif .tif .tiff .webp``, by
  name): decoded with Pillow (the ``images`` extra), converted to RGB or grey levels as the
  input has 3 or 1 channels, resized so it covers ``(H, W)`` with its aspect ratio kept and
  centre-cropped (torchvision's Resize + CenterCrop), scaled to [0, 1] and normalised with
  ImageNet's mean and standard deviation (grey levels: their averages).
- random: standard normal values, seeded.

Every batch is checked: its shape against the spec's input, a floating-point type, and no
NaN or Inf. Problems raise ``DataError`` with what was received, what was expected and a fix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from archcheck.errors import ArchcheckError
from archcheck.layers.base import fmt_shape

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(ArchcheckError):
    """Input data that does not fit the spec."""


def random_batch(input_shape, batch: int, seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype(dtype)


MAX_PIXELS = 64_000_000  # decoded pixels per image (a 17 kB PNG can claim 144 Mpx)
MAX_ASPECT = 16  # resizing to cover the input first: a 1 x 100,000 image would become 224 x 22,400,000


def load(path: str, input_shape, dtype: str = "float32", rows: int | None = None,
         limit: int = 2**62) -> tuple[np.ndarray, list[str]]:
    """A batch from ``path`` and a name per sample (file names for images, indices otherwise): the
    first ``rows`` samples only when given, read within ``limit`` bytes."""
    from archcheck.files import FileProblem

    p = Path(path)
    if not p.exists():
        raise DataError(f"{path} does not exist", "give a .npy or .npz array, an image, or a directory of images")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise DataError(f"the directory {path} holds no images ({' '.join(IMAGE_SUFFIXES)})",
                            "point --data at a directory of images, an image file, or a .npy/.npz array")
        files = files[:rows]  # --batch before decoding: a directory of 10,000 images reads only what is asked
        return _images(files, input_shape, dtype, limit), [f.name for f in files]
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _images([p], input_shape, dtype, limit), [p.name]
    if p.suffix.lower() in (".npy", ".npz"):
        try:
            x = _array(p, input_shape, rows, limit)
        except FileProblem as exc:
            raise DataError(exc.message, exc.fix) from None
        return check(x, input_shape, str(path)).astype(dtype, copy=False), [str(i) for i in range(len(x))]
    raise DataError(f"{path}: unknown data format '{p.suffix}'",
                    f"give a .npy or .npz array, an image ({', '.join(IMAGE_SUFFIXES)}) or a directory of images")


def _array(p: Path, input_shape, rows: int | None, limit: int) -> np.ndarray:
    from archcheck.files import read_arrays

    def choose(names):
        name = next((n for n in ("input", "x") if n in names), names[0] if len(names) == 1 else None)
        if name is None:
            raise DataError(f"{p} holds {len(names)} arrays ({', '.join(names[:10]) or 'none'}) and none is "
                            "named 'input'", "name the batch 'input': numpy.savez(path, input=batch)")
        return [name]

    # one sample (*input) is read whole; of a batch (N, *input), only the first `rows` samples
    [x] = read_arrays(p, limit, choose, rows=rows, batch_ndim=len(input_shape) + 1).values()
    if x.ndim == len(input_shape):
        x = x[None]  # one sample
    if x.ndim and len(x) == 0:  # a 0-d array is the shape error check() reports
        raise DataError(f"{p} holds no samples (an array of shape {fmt_shape(x.shape)})",
                        "save at least one sample")
    return x


def check(x: np.ndarray, input_shape, source: str) -> np.ndarray:
    """Reject a batch of the wrong shape or type, or holding NaN/Inf."""
    expected = (*input_shape,)
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise DataError(f"{source} holds an array of shape {fmt_shape(x.shape)}, but the spec's input is "
                        f"{fmt_shape(expected)}: expected (N, {', '.join(map(str, expected))}) or "
                        f"{fmt_shape(expected)}", "reshape the data to the spec's input (channels first), or change "
                        "the spec's `input`")
    if x.dtype.kind != "f":
        raise DataError(f"{source} holds {x.dtype} values; the executor needs floating-point input",
                        "convert it, e.g. x.astype('float32') (scaled and normalised as the network expects)")
    bad = ~np.isfinite(x)
    if bad.any():
        nan = int(np.isnan(x).sum())
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{source} holds {nan:,} NaN and {int(bad.sum()) - nan:,} Inf values (the first at index "
                        f"{first})", "clean the data: replace or drop the samples with missing values")
    return x


def _images(files, input_shape, dtype, limit: int = 2**62) -> np.ndarray:
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise DataError(f"images need an input of 1 or 3 channels and two spatial axes (C, H, W); this spec's input "
                        f"is {fmt_shape(input_shape)}",
                        f"give a .npy array of shape (N, {', '.join(map(str, input_shape))}) instead")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("decoding images needs Pillow, which is not installed",
                        "pip install 'archcheck[images]' (or pass a .npy array)") from None
    channels, height, width = input_shape
    mean = np.array(IMAGENET_MEAN if channels == 3 else [np.mean(IMAGENET_MEAN)], np.float32)
    std = np.array(IMAGENET_STD if channels == 3 else [np.mean(IMAGENET_STD)], np.float32)
    batch = np.empty((len(files), *input_shape), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:  # reads the header only: the size is checked before decoding
                pixels = im.width * im.height
                if pixels > MAX_PIXELS or pixels * 4 * 4 > limit:
                    raise DataError(f"{f} is a {im.width:,} x {im.height:,} image ({pixels / 1e6:,.0f} Mpx); archcheck "
                                    f"decodes at most {MAX_PIXELS / 1e6:.0f} Mpx within --max-memory",
                                    f"resize it to about {width} x {height} first")
                scale = max(height / im.height, width / im.width)
                size = (max(width, round(im.width * scale)), max(height, round(im.height * scale)))
                if size[0] * size[1] > MAX_ASPECT * width * height:
                    raise DataError(f"{f} is {im.width:,} x {im.height:,} pixels: resized to cover {width} x {height} "
                                    f"it would be {size[0]:,} x {size[1]:,} before the centre crop (expected an "
                                    f"aspect ratio up to about {MAX_ASPECT}:1)",
                                    "crop the image to the region of interest first")
                im = im.convert("RGB" if channels == 3 else "L")
                im = im.resize(size, Image.BILINEAR)
                left, top = (size[0] - width) // 2, (size[1] - height) // 2
                pixels = np.asarray(im.crop((left, top, left + width, top + height)), np.float32) / 255
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{f} cannot be decoded as an image ({exc})",
                            "remove the file or replace it with a valid PNG/JPEG image") from None
        pixels = pixels.reshape(height, width, -1).transpose(2, 0, 1)
        batch[i] = (pixels - mean[:, None, None]) / std[:, None, None]
    return batch.astype(dtype, copy=False)


def load_targets(value: str, analysis, batch: int, kind: str) -> dict[str, np.ndarray]:
    """Labels or targets for every network output from ``--labels``: comma-separated class indices
    (one output), or a .npy (one output) / .npz (by output name) file. Cross-entropy takes integer
    class indices ``(N,)`` (``(N, *spatial)`` for a feature-map output); MSE takes arrays shaped
    like the output."""
    outputs = analysis.graph.outputs
    path = Path(value)
    if path.suffix.lower() in (".npy", ".npz") or path.exists():
        if not path.exists():
            raise DataError(f"the labels file {value} does not exist", "give comma-separated class indices or a "
                            ".npy/.npz file")
        from archcheck.files import FileProblem, read_arrays

        try:  # labels are one per sample (and position): at most what the outputs hold, with room
            bound = 64 * batch * sum(math.prod(analysis.layers[o].shape) for o in outputs) + 2**20
            arrays = read_arrays(path, bound, lambda names: [n for n in names if n in outputs or n == ""])
        except FileProblem as exc:
            raise DataError(exc.message, exc.fix) from None
        if "" in arrays:
            if len(outputs) != 1:
                raise DataError(f"the network has {len(outputs)} outputs ({', '.join(outputs)}) but {value} holds one "
                                "array", "give an .npz with one array per output name")
            arrays = {outputs[0]: arrays[""]}
        else:
            missing = [o for o in outputs if o not in arrays]
            if missing:
                raise DataError(f"{value} has no labels for the output{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)} (it holds {', '.join(arrays) or 'nothing'})",
                                "name the arrays after the network outputs")
    else:
        if len(outputs) != 1:
            raise DataError(f"the network has {len(outputs)} outputs; comma-separated labels fit one",
                            "give an .npz with one array per output name")
        try:
            arrays = {outputs[0]: np.array([int(v) for v in value.replace(" ", "").split(",") if v])}
        except ValueError:
            raise DataError(f"--labels expects comma-separated class indices such as 3,0,7, received '{value}'",
                            "give whole numbers, or a .npy file") from None
    return {name: _check_target(name, arrays[name], analysis.layers[name].shape, batch, kind) for name in outputs}


def _check_target(name, t, shape, batch, kind):
    if kind == "mse":
        expected = (batch, *shape)
        if tuple(t.shape) != expected or t.dtype.kind not in "fiu":
            raise DataError(f"MSE targets for '{name}' must be numbers of shape {fmt_shape(expected)}, received "
                            f"{t.dtype} values of shape {fmt_shape(t.shape)}", "give one target per output value")
        return t.astype(np.float64)
    expected = (batch, *shape[1:])
    if tuple(t.shape) != expected or t.dtype.kind not in "iu":
        what = "class index per sample" if len(shape) == 1 else "class index per sample and position"
        raise DataError(f"labels for '{name}' must be whole numbers of shape {fmt_shape(expected)} (one {what}), "
                        f"received {t.dtype} values of shape {fmt_shape(t.shape)}",
                        f"give {batch} label{'s' if batch != 1 else ''}, one per sample of the batch")
    if t.size and (t.min() < 0 or t.max() >= shape[0]):
        bad = int(t.min()) if t.min() < 0 else int(t.max())
        raise DataError(f"label {bad} for '{name}' is not a class index: the output has {shape[0]} classes (0 to "
                        f"{shape[0] - 1})", "use class indices from 0 to the number of classes minus one")
    return t
