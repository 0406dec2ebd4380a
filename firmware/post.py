"""Post-processing on the PS: head outputs → full-resolution maps, pictures and ``.npy`` files.

The accelerator returns each task head's int16 output [C, H, W] (real value = q × out_scale).
Here, in numpy only:

* :func:`upsample` — nearest or bilinear (half-pixel centres, edges clamped: PIL's and
  ``torch.nn.functional.interpolate(align_corners=False)``'s convention) to a requested size;
* :func:`argmax_lowest` — class map with ties going to the lowest class index, the semantics of
  ``golden.quant.ops.argmax_lowest`` and therefore of ``IntM3ViT.predict``;
* :func:`task_map` — a segmentation class map or a real-valued regression map;
* :func:`colorize` / :func:`save_outputs` — coloured segmentation and depth heat-map PNGs
  (colours from :mod:`golden.visualize`, shared with the golden demo) and ``.npy`` files;
* :func:`load_image` — an input picture (PNG/JPEG via Pillow, or ``.npy``) as uint8 [3, H, W].

Board-side module: numpy at import; Pillow and :mod:`golden.visualize` when pictures are made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from golden.argtypes import MAX_SIDE
from golden.pictures import header

from .errors import UsageError

__all__ = ["upsample", "argmax_lowest", "task_map", "uphead_output", "colorize", "save_outputs",
           "load_image", "save_panel", "task_spec", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".npy")


def _axis_nearest(n_in: int, n_out: int) -> np.ndarray:
    return (np.arange(n_out) * n_in) // n_out


def _axis_linear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def upsample(x: np.ndarray, size: tuple[int, int], mode: str = "nearest") -> np.ndarray:
    """Resize the last two axes of ``x`` ([..., H, W]) to ``size`` = (H', W').

    Parameters
    ----------
    x : numpy.ndarray
        Map(s) with the spatial axes last.
    size : tuple of int
        Output (height, width).
    mode : str
        ``"nearest"`` (keeps dtype; output pixel i takes input ``floor(i * H / H')``) or
        ``"bilinear"`` (float32; half-pixel centres, edges clamped).

    Returns
    -------
    numpy.ndarray
        ``x`` itself when it already has that size.
    """
    x = np.asarray(x)
    h, w = x.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"output size must be positive, got {size}")
    if (oh, ow) == (h, w):
        return x
    if mode == "nearest":
        return x[..., _axis_nearest(h, oh)[:, None], _axis_nearest(w, ow)[None, :]]
    if mode != "bilinear":
        raise ValueError(f"mode must be 'nearest' or 'bilinear', not {mode!r}")
    xf = x.astype(np.float32)
    y0, y1, fy = _axis_linear(h, oh)
    x0, x1, fx = _axis_linear(w, ow)
    rows = xf[..., y0, :] * (1 - fy[:, None]).astype(np.float32) + \
        xf[..., y1, :] * fy[:, None].astype(np.float32)
    return (rows[..., x0] * (1 - fx).astype(np.float32) +
            rows[..., x1] * fx.astype(np.float32)).astype(np.float32)


def argmax_lowest(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Index of the maximum along ``axis``; ties go to the lowest index."""
    return np.argmax(np.asarray(x), axis=axis)     # numpy returns the first maximum


def task_spec(meta: dict, task: str) -> dict:
    """``meta["tasks"]`` entry of ``task`` (``name``, ``kind``, ``channels``, ``out_scale``)."""
    for t in meta.get("tasks", []):
        if t.get("name") == task:
            return t
    raise UsageError(f"unknown task {task!r}: the model has tasks "
                     f"{', '.join(t.get('name', '?') for t in meta.get('tasks', []))}")


def task_map(output: np.ndarray, spec: dict, size: tuple[int, int] | None = None,
             mode: str | None = None) -> np.ndarray:
    """The picture-ready map of one head output.

    Parameters
    ----------
    output : numpy.ndarray
        int16 [C, H, W] head output.
    spec : dict
        The task's ``meta["tasks"]`` entry.
    size : tuple of int, optional
        Output size (default: the output's own).
    mode : str, optional
        Upsampling mode (default nearest for segmentation, bilinear for regression).

    Returns
    -------
    numpy.ndarray
        Segmentation: class map [H, W] (int64; bilinear upsamples the logits before the
        argmax, nearest the class map after it). Regression: real values (× out_scale),
        float32 [H, W] for one channel, else [C, H, W].
    """
    output = np.asarray(output)
    size = tuple(size) if size is not None else output.shape[-2:]
    if spec.get("kind") == "segmentation":
        mode = mode or "nearest"
        if mode == "nearest":
            return upsample(argmax_lowest(output, 0), size, "nearest")
        return argmax_lowest(upsample(output, size, mode), 0)
    real = upsample(output, size, mode or "bilinear").astype(np.float32) * \
        np.float32(spec.get("out_scale", 1.0))
    return real[0] if real.shape[0] == 1 else real


def uphead_output(features: np.ndarray, spec: dict, head) -> tuple[np.ndarray, dict]:
    """Apply a golden up-head (the original's convolutions, after its LayerNorm) on the PS.

    Parameters
    ----------
    features : numpy.ndarray
        The accelerator's int16 LayerNorm features [D, gh, gw] of an ``"uphead"`` task.
    spec : dict
        The task's ``meta["tasks"]`` entry.
    head : golden.model.UpHead
        The task's head (``--uphead CHECKPOINT``).

    Returns
    -------
    (numpy.ndarray, dict)
        float32 [C, H, W] head output and the spec describing it (for :func:`task_map`).
    """
    out = head.decode_features(features, spec["out_scale"])
    if out.shape[0] != spec["classes"]:
        raise ValueError(f"task {spec['name']!r}: the up-head gives {out.shape[0]} channels, the "
                         f"model image says {spec['classes']}")
    return out, {**spec, "channels": spec["classes"], "out_scale": 1.0}


def colorize(spec: dict, value_map: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] picture of a :func:`task_map` result.

    Segmentation: the shared class palette. One-channel regression (depth): a heat map, near =
    bright, values <= 0 black (matplotlib's ``magma_r`` via :mod:`golden.visualize`; a grey ramp
    when matplotlib is missing). Three channels (normals): (v / |v|) / 2 + 1/2 as RGB. Others:
    the first channel as a heat map.
    """
    from golden.visualize import colorize_segmentation
    if spec.get("kind") == "segmentation":
        return colorize_segmentation(value_map)
    v = np.asarray(value_map, np.float32)
    if v.ndim == 3 and v.shape[0] == 3:
        n = v / np.maximum(np.linalg.norm(v, axis=0, keepdims=True), 1e-9)
        return (np.clip(n * 0.5 + 0.5, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    if v.ndim == 3:
        v = v[0]
    try:
        from golden.visualize import colorize_depth
        return colorize_depth(v)
    except ImportError:                          # no matplotlib on the board: grey ramp
        valid = v > 0
        vmax = float(v[valid].max()) if valid.any() else 1.0
        g = ((1 - np.clip(v / max(vmax, 1e-9), 0, 1)) * 255).round().astype(np.uint8)
        g[~valid] = 0
        return np.repeat(g[..., None], 3, axis=2)


def save_outputs(out_dir: str | Path, stem: str, spec: dict, output: np.ndarray,
                 size: tuple[int, int] | None = None, mode: str | None = None,
                 raw: np.ndarray | None = None) -> dict[str, Path]:
    """Write one frame's results for one task.

    Files (``T`` = task name)::

        STEM_T_raw.npy   the accelerator's int16 head output [C, H, W], as read from DDR
                         (``raw``; default ``output``: for an up-head task, ``output`` is the
                         PS's float up-head output and ``raw`` the accelerator's features)
        STEM_T.npy       class map (uint8 if it fits, else int64) or real values (float32)
        STEM_T.png       coloured segmentation / depth heat map

    ``size`` and ``mode`` are :func:`task_map`'s (upsampling of the maps, not of the raw output).

    Returns
    -------
    dict
        ``{"raw": path, "map": path, "png": path}`` plus ``"picture"``: the RGB array.
    """
    from PIL import Image
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = spec["name"]
    value_map = task_map(output, spec, size, mode)
    if spec.get("kind") == "segmentation" and value_map.size and value_map.max() < 256:
        value_map = value_map.astype(np.uint8)
    paths = {"raw": out_dir / f"{stem}_{name}_raw.npy", "map": out_dir / f"{stem}_{name}.npy",
             "png": out_dir / f"{stem}_{name}.png"}
    np.save(paths["raw"], np.asarray(output if raw is None else raw))
    np.save(paths["map"], value_map)
    picture = colorize(spec, value_map)
    Image.fromarray(picture).save(paths["png"])
    return {**paths, "picture": picture}


def save_panel(path: str | Path, pixels: np.ndarray, pictures: list[tuple[str, np.ndarray]],
               scale: int | None = None) -> Path:
    """The input beside each task's picture in one PNG (:func:`golden.visualize.save_panel`);
    tiles enlarged ``scale`` times (default: to about 256 pixels on the longer side, at least 1)."""
    from golden.visualize import save_panel as _save_panel
    tiles = [("input", np.asarray(pixels, np.uint8).transpose(1, 2, 0))]
    size = tiles[0][1].shape[:2]
    if scale is None:
        scale = max(1, round(256 / max(size)))
    for title, pic in pictures:
        if pic.shape[:2] != size:
            pic = upsample(pic.transpose(2, 0, 1), size, "nearest").transpose(1, 2, 0)
        tiles.append((title, pic))
    _save_panel(path, tiles, scale=scale)
    return Path(path)


MAX_INPUT_SIDE = MAX_SIDE          # pixels per side of an input picture or array
MAX_INPUT_PIXELS = 64 * 10 ** 6
WIDE_MODES = {"I;16": "16-bit grey", "I;16B": "16-bit grey", "I;16L": "16-bit grey",
              "I;16N": "16-bit grey", "I": "32-bit integer", "F": "32-bit float",
              "RGBa": "premultiplied", "BGR;16": "16-bit", "BGR;24": "24-bit"}


def load_image(path: str | Path, size: tuple[int, int], *, resize: bool = False) -> np.ndarray:
    """An input picture as uint8 [3, H, W] of the model's ``size`` = (H, W).

    Parameters
    ----------
    path : str or Path
        PNG/JPEG/BMP/PPM (read with Pillow, converted to RGB) or ``.npy`` (uint8 [3, H, W]).
    size : tuple of int
        The model's input (height, width).
    resize : bool
        Resize (bilinear) a picture of another size instead of refusing it.

    Raises
    ------
    UsageError
        Missing or unreadable file, a picture of the wrong size/shape, larger than
        :data:`MAX_INPUT_SIDE` / :data:`MAX_INPUT_PIXELS` (checked from the header before
        decoding) or of more than 8 bits per channel (the message says).
    """
    path = Path(path)
    h, w = int(size[0]), int(size[1])
    if not path.is_file():
        raise UsageError(f"input image {path} does not exist")
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.shape[1:] != (h, w):
            if not resize:
                raise UsageError(f"{path} is {arr.shape[2]}x{arr.shape[1]} (WxH); the model "
                                 f"takes {w}x{h}: pass --resize to resize it")
            arr = _resize(arr.transpose(1, 2, 0), (h, w))
        return np.ascontiguousarray(arr)
    rgb = _load_picture(path)
    if rgb.shape[:2] != (h, w):
        if not resize:
            raise UsageError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]} (WxH); the model takes "
                             f"{w}x{h}: pass --resize to resize it")
        return _resize(rgb, (h, w))
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _check_side(path: Path, h: int, w: int) -> None:
    if h < 1 or w < 1 or max(h, w) > MAX_INPUT_SIDE or h * w > MAX_INPUT_PIXELS:
        raise UsageError(f"{path} claims {w}x{h} pixels; inputs are limited to "
                         f"{MAX_INPUT_SIDE} a side and {MAX_INPUT_PIXELS // 10 ** 6} MP "
                         f"(checked from the header, nothing decoded)")


def _load_npy(path: Path) -> np.ndarray:
    """A uint8 [3, H, W] array, its header checked before the data is read."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
    except (OSError, ValueError, SyntaxError) as exc:
        raise UsageError(f"cannot read {path} as a numpy array: {exc}") from None
    if len(shape) != 3 or shape[0] != 3:
        raise UsageError(f"{path}: expected a uint8 array 3 x H x W, got shape "
                         f"{'x'.join(map(str, shape))}")
    _check_side(path, shape[1], shape[2])
    if dtype.hasobject or not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise UsageError(f"{path}: expected uint8 pixels 0..255, got {dtype}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} as a numpy array: {exc}") from None
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise UsageError(f"{path}: expected uint8 pixels 0..255, got {arr.dtype} values "
                             f"{arr.min()}..{arr.max()}")
        arr = arr.astype(np.uint8)
    return arr


def _load_picture(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]: size and mode checked from the header before decoding; pictures
    of more than 8 bits per channel are refused rather than saturated."""
    from PIL import Image, UnidentifiedImageError
    try:
        mode, (w, h), _ = header(path)
        _check_side(path, h, w)
        if mode in WIDE_MODES:
            raise UsageError(f"{path} is a {WIDE_MODES[mode]} picture (mode {mode}); the "
                             f"accelerator takes 8-bit RGB: convert it first (8 bits per "
                             f"channel) rather than have it saturated")
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))   # grey, palette, alpha: converted explicitly
    except UsageError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).resize((size[1], size[0]),
                                                                       Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))
