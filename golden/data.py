"""Multi-task data: a deterministic procedural scene renderer and a loader for image folders.

No public dataset can be downloaded on the project's machines, so the golden model trains on
rendered scenes: simple 3D shapes (spheres, boxes, cylinders, cones) standing on a textured
ground plane under a sky, seen by a perspective pinhole camera, with exact occlusion (a per-pixel
z-buffer over analytic ray intersections). Every scene comes with a per-pixel semantic label and
metric depth. A scene is a pure function of ``(seed, index, size)``.

Conventions shared with the folder loader and the metrics:

* images: float32 [3, H, W] in [0, 1];
* semantic labels: int64 [H, W], classes :data:`golden.config.SCENE_CLASSES`, 255 = ignore;
* depth: float32 [H, W] in metres along the camera axis, 0 = invalid (sky, beyond
  :data:`MAX_DEPTH`), like NYUD's missing depth.

CLI: ``python -m golden.data export --out DIR --count N`` writes scenes in the folder format
:class:`FolderDataset` reads (``images/*.png``, ``semseg/*.png``, ``depth/*.png`` in millimetres).
"""

from __future__ import annotations

import argparse
import colorsys
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .argtypes import nonneg_int, out_dir, positive_int
from .config import SCENE_CLASSES
from .pictures import header

__all__ = ["render_scene", "SceneDataset", "FolderDataset", "export_folder", "MAX_DEPTH",
           "IGNORE_INDEX", "MAX_PICTURE_SIDE"]

MAX_DEPTH = 30.0
IGNORE_INDEX = 255
SKY, GROUND, SPHERE, BOX, CYLINDER, CONE = range(len(SCENE_CLASSES))
_BASE_HUE = {SPHERE: 0.0, BOX: 0.62, CYLINDER: 0.33, CONE: 0.13}


def _quadratic_hits(a, b, c, valid_fn):
    """Smallest positive root of a t² + b t + c = 0 per pixel that passes ``valid_fn(t)``."""
    t_best = np.full(np.broadcast(a, b, c).shape, np.inf)
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (np.abs(a) > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0.0))
    safe_a = np.where(ok, a, 1.0)
    for t in ((-b - sq) / (2 * safe_a), (-b + sq) / (2 * safe_a)):
        good = ok & (t > 1e-6) & valid_fn(t) & (t < t_best)
        t_best = np.where(good, t, t_best)
    return t_best


def _normalize(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _intersect(obj, o, d):
    """(t, normal) of a ray bundle o + t d (d [N, 3], o [3]) with one object; t = inf on a miss."""
    kind, p = obj["kind"], obj
    cx, cz = p["x"], p["z"]
    ox, oy, oz = o[0] - cx, o[1], o[2] - cz
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    if kind == SPHERE:
        r, cy = p["r"], p["r"]
        oc = np.array([ox, oy - cy, oz])
        a = (d * d).sum(1)
        b = 2 * (d @ oc)
        c = oc @ oc - r * r
        t = _quadratic_hits(a, b, c, lambda t: np.ones_like(t, bool))
        pts = o + t[:, None] * d
        n = (pts - np.array([cx, cy, cz])) / r
        return t, n
    if kind == CYLINDER:
        r, h = p["r"], p["h"]
        a = dx * dx + dz * dz
        b = 2 * (ox * dx + oz * dz)
        c = ox * ox + oz * oz - r * r
        t_side = _quadratic_hits(a, b, c, lambda t: (oy + t * dy >= 0) & (oy + t * dy <= h))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cap = (h - oy) / dy
        cap_ok = (t_cap > 1e-6) & ((ox + t_cap * dx) ** 2 + (oz + t_cap * dz) ** 2 <= r * r)
        t_cap = np.where(cap_ok, t_cap, np.inf)
        t = np.minimum(t_side, t_cap)
        px, pz = ox + t * dx, oz + t * dz
        side = np.stack([px, np.zeros_like(px), pz], 1) / r
        n = np.where((t_cap < t_side)[:, None], np.array([0.0, 1.0, 0.0]), side)
        return t, n
    if kind == CONE:
        r, h = p["r"], p["h"]
        k2 = (r / h) ** 2
        w0 = h - oy
        a = dx * dx + dz * dz - k2 * dy * dy
        b = 2 * (ox * dx + oz * dz + k2 * w0 * dy)
        c = ox * ox + oz * oz - k2 * w0 * w0
        t = _quadratic_hits(a, b, c, lambda t: (oy + t * dy >= 0) & (oy + t * dy <= h))
        tf = np.where(np.isfinite(t), t, 0.0)
        px, py, pz = ox + tf * dx, oy + tf * dy, oz + tf * dz
        n = _normalize(np.stack([px, k2 * (h - py), pz], 1))
        return t, n
    if kind == BOX:
        # Rotate into the box frame (yaw about the vertical axis); slabs in x, y, z.
        cs, sn = math.cos(p["yaw"]), math.sin(p["yaw"])
        lo_o = np.array([cs * ox - sn * oz, oy, sn * ox + cs * oz])
        lo_d = np.stack([cs * dx - sn * dz, dy, sn * dx + cs * dz], 1)
        lo = np.array([-p["sx"], 0.0, -p["sz"]])
        hi = np.array([p["sx"], p["h"], p["sz"]])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - lo_o) / lo_d
            t2 = (hi - lo_o) / lo_d
        t1 = np.nan_to_num(t1, nan=-np.inf)
        t2 = np.nan_to_num(t2, nan=np.inf)
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        t_enter, axis = tmin.max(1), tmin.argmax(1)
        t_exit = tmax.min(1)
        hit = (t_enter <= t_exit) & (t_enter > 1e-6)
        t = np.where(hit, t_enter, np.inf)
        n_local = np.zeros_like(lo_d)
        n_local[np.arange(len(axis)), axis] = -np.sign(lo_d[np.arange(len(axis)), axis])
        n = np.stack([cs * n_local[:, 0] + sn * n_local[:, 2], n_local[:, 1],
                      -sn * n_local[:, 0] + cs * n_local[:, 2]], 1)
        return t, n
    raise ValueError(f"unknown object kind {kind}")


def _sample_objects(rng: np.random.Generator, tan_half_fov: float) -> list[dict]:
    objects = []
    for _ in range(rng.integers(2, 7)):
        kind = int(rng.choice([SPHERE, BOX, CYLINDER, CONE]))
        z = float(rng.uniform(3.0, 14.0))
        x = float(rng.uniform(-0.9, 0.9) * z * tan_half_fov)
        hue = _BASE_HUE[kind] + rng.uniform(-0.06, 0.06)
        if rng.random() < 0.15:
            hue = rng.random()  # some objects in an off-class colour: shape must matter too
        colour = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.5, 0.95), rng.uniform(0.55, 1.0))
        obj = {"kind": kind, "x": x, "z": z, "colour": np.array(colour)}
        if kind == SPHERE:
            obj["r"] = float(rng.uniform(0.3, 1.0))
        elif kind == BOX:
            obj.update(sx=float(rng.uniform(0.3, 0.9)), sz=float(rng.uniform(0.3, 0.9)),
                       h=float(rng.uniform(0.5, 1.8)), yaw=float(rng.uniform(0, math.pi)))
        elif kind == CYLINDER:
            obj.update(r=float(rng.uniform(0.2, 0.6)), h=float(rng.uniform(0.6, 2.0)))
        else:
            obj.update(r=float(rng.uniform(0.3, 0.8)), h=float(rng.uniform(0.8, 2.0)))
        objects.append(obj)
    return objects


def render_scene(seed: int, index: int, size: tuple[int, int] = (32, 64)):
    """Render scene ``index`` of the family ``seed`` at ``size`` = (H, W).

    Returns
    -------
    image : float32 ndarray [3, H, W] in [0, 1]
    label : int64 ndarray [H, W]
    depth : float32 ndarray [H, W], metres, 0 where invalid
    """
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {size}")
    # Misses are t = inf; inf * 0 on axis-aligned rays makes NaNs that the z-test then discards.
    with np.errstate(invalid="ignore", divide="ignore"):
        return _render(np.random.default_rng([seed, index]), h, w)


def _render(rng: np.random.Generator, h: int, w: int):
    fov = math.radians(rng.uniform(60, 75))
    pitch = math.radians(rng.uniform(5, 15))
    cam = np.array([0.0, rng.uniform(1.2, 1.8), 0.0])
    f = (w / 2) / math.tan(fov / 2)
    jj, ii = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    dcam = np.stack([jj / f, -ii / f, np.ones_like(jj)], -1).reshape(-1, 3)
    # Camera tilted down by `pitch`: rows of the rotation are right, up, forward.
    right = np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, math.cos(pitch), math.sin(pitch)])
    fwd = np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    d = dcam[:, :1] * right + dcam[:, 1:2] * up + dcam[:, 2:3] * fwd  # z_cam of d is 1: t = depth

    n_px = h * w
    t_best = np.full(n_px, np.inf)
    label = np.full(n_px, SKY, np.int64)
    normal = np.zeros((n_px, 3))
    albedo = np.zeros((n_px, 3))

    t_ground = np.where(d[:, 1] < 0, -cam[1] / d[:, 1], np.inf)
    gx, gz = cam[0] + t_ground * d[:, 0], cam[2] + t_ground * d[:, 2]
    checker = ((np.floor(np.nan_to_num(gx, posinf=0)) + np.floor(np.nan_to_num(gz, posinf=0)))
               % 2).astype(float)
    ground_rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.4),
                                              rng.uniform(0.35, 0.6)))
    hit = np.isfinite(t_ground)
    t_best[hit] = t_ground[hit]
    label[hit] = GROUND
    normal[hit] = (0.0, 1.0, 0.0)
    albedo[hit] = ground_rgb * (0.8 + 0.25 * checker[hit, None])

    for obj in _sample_objects(rng, math.tan(fov / 2)):
        t, n = _intersect(obj, cam, d)
        closer = t < t_best
        t_best[closer] = t[closer]
        label[closer] = obj["kind"]
        normal[closer] = n[closer]
        albedo[closer] = obj["colour"]

    light = _normalize(np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.8, -0.2)]))
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0, 1)
    rgb = albedo * shade[:, None]
    sky = label == SKY
    sky_top = np.array(colorsys.hsv_to_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.3, 0.6), 0.95))
    elev = np.clip(d[:, 1] / np.linalg.norm(d, axis=1) * 3 + 0.3, 0, 1)
    rgb[sky] = (sky_top * elev[sky, None] + np.array([0.9, 0.9, 0.95]) * (1 - elev[sky, None]))
    rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)

    depth = np.where(sky | (t_best > MAX_DEPTH), 0.0, t_best)
    image = rgb.reshape(h, w, 3).transpose(2, 0, 1).astype(np.float32)
    return image, label.reshape(h, w), depth.reshape(h, w).astype(np.float32)


def _collate(samples):
    images, labels, depths = zip(*samples)
    return (torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels)),
            torch.from_numpy(np.stack(depths)))


class SceneDataset(torch.utils.data.Dataset):
    """``count`` procedural scenes of family ``seed`` at ``size``; item i = :func:`render_scene`.

    Training and evaluation use different seeds, so held-out scenes are never seen in training.
    Items are ``(image, {"semseg": label, "depth": depth})`` as torch tensors.
    """

    def __init__(self, count: int, seed: int, size: tuple[int, int] = (32, 64)):
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.count, self.seed, self.size = count, seed, tuple(size)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        if not 0 <= i < self.count:
            raise IndexError(i)
        image, label, depth = render_scene(self.seed, i, self.size)
        return torch.from_numpy(image), {"semseg": torch.from_numpy(label),
                                         "depth": torch.from_numpy(depth)}

    def tensors(self, progress: bool = False):
        """All scenes rendered at once: images [N, 3, H, W], {task: targets [N, H, W]}."""
        from tqdm import tqdm
        it = range(self.count)
        if progress:
            it = tqdm(it, desc=f"rendering {self.count} scenes", unit="scene", leave=False)
        images, labels, depths = _collate([render_scene(self.seed, i, self.size) for i in it])
        return images, {"semseg": labels, "depth": depths}


# Folder loader limits and accepted PNG modes (see FolderDataset).
MAX_PICTURE_SIDE = 8192  # pixels per side, checked from the header before decoding (64 Mpx)
LABEL_TASKS = ("semseg", "depth")
SEMSEG_MODES = ("L", "P")  # 8-bit single channel; for P the palette index is the class id
DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit grey (I: 32-bit, values 0..65535)
_NOT_IMAGE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
_OTHER_PICTURE_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_MODE_NAMES = {"1": "1-bit", "L": "8-bit grey", "P": "8-bit palette", "LA": "grey + alpha",
               "PA": "palette + alpha", "RGB": "8-bit RGB", "RGBA": "8-bit RGBA",
               "CMYK": "CMYK", "YCbCr": "YCbCr", "I;16": "16-bit grey", "I;16B": "16-bit grey",
               "I;16L": "16-bit grey", "I": "32-bit integer", "F": "32-bit float"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                  zlib.error)


def _mode(mode: str) -> str:
    return f"{mode} ({_MODE_NAMES[mode]})" if mode in _MODE_NAMES else mode


def _probe(path: Path) -> tuple[str, tuple[int, int], str | None]:
    """(mode, (width, height), format) from the header only; refuses oversized pictures."""
    try:
        mode, size, fmt = header(path)  # decodes nothing; Pillow's bomb limit is ours below
    except _DECODE_ERRORS as exc:
        raise ValueError(f"{path}: not a readable picture ({exc})") from None
    w, h = size
    if w > MAX_PICTURE_SIDE or h > MAX_PICTURE_SIDE:
        raise ValueError(f"{path}: header says {w}x{h} pixels; pictures may have at most "
                         f"{MAX_PICTURE_SIDE} pixels a side ({MAX_PICTURE_SIDE}x"
                         f"{MAX_PICTURE_SIDE}, 64 Mpx), so it was not decoded")
    return mode, size, fmt


def _decode(path: Path, expect_size: tuple[int, int]) -> Image.Image:
    """Fully decode ``path`` (checked by :func:`_probe` before); decoder errors name the file."""
    try:
        with Image.open(path) as img:
            size = img.size
            if size == expect_size:
                img.load()
                img = img.copy()
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: picture too large to open ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise ValueError(f"{path}: cannot decode ({exc})") from None
    if size != expect_size:
        raise ValueError(f"{path}: changed while loading ({size} instead of {expect_size})")
    return img


def _nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array to ``size`` = (H, W) (pixel centres)."""
    h, w = size
    if arr.shape == (h, w):
        return arr
    rows = np.minimum(((np.arange(h) + 0.5) * arr.shape[0] / h).astype(np.int64), arr.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * arr.shape[1] / w).astype(np.int64), arr.shape[1] - 1)
    return arr[rows][:, cols]


class FolderDataset(torch.utils.data.Dataset):
    """A user's own multi-task data in a folder.

    Layout (file stems match)::

        ROOT/images/NAME.png|jpg    RGB (or grey) 8-bit image
        ROOT/semseg/NAME.png        8-bit class ids, 255 = ignore                (optional)
        ROOT/depth/NAME.png         16-bit depth in millimetres, 0 = invalid     (optional)

    Accepted PNG modes (as PIL reports them): semseg ``L`` (grey value = class id) or ``P``
    (palette index = class id, the palette's colours are not looked at); depth ``I;16`` (16-bit
    grey) or ``I`` with values 0..65535. Anything else (8-bit or RGB depth, 16-bit or colour
    semseg, JPEG labels, 16-bit/float images) is refused with a :class:`ValueError` naming the
    file. Every picture's size is read from its header before decoding and refused above
    :data:`MAX_PICTURE_SIDE` pixels a side. A label must have its image's size unless
    ``resize_labels`` (then nearest neighbour; :attr:`resized` lists them). Class ids of
    ``classes`` or more (other than 255) are refused when ``classes`` is given.

    Images are resized (bilinear) to ``size`` = (H, W) when given; labels and depth with nearest
    neighbour. Missing targets are all-ignore / all-invalid (:attr:`label_files` counts the
    images that have each). Header problems are found in the constructor (all files scanned,
    the first problem reported); pixel problems (class ids, depth range) when an item is loaded.
    :attr:`notes` holds one-line notes for the user (resized labels, unmatched label files).
    """

    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

    def __init__(self, root: str | Path, size: tuple[int, int] | None = None, *,
                 classes: int | None = None, resize_labels: bool = False):
        self.root = Path(root)
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{self.root}: no 'images/' folder (expected images/, "
                                    f"semseg/, depth/ with matching file names)")
        self.files = sorted(p for p in image_dir.iterdir()
                            if p.suffix.lower() in self.IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise FileNotFoundError(f"{image_dir}: no .png/.jpg images")
        self.size = tuple(size) if size else None
        self.classes = classes
        self.resize_labels = resize_labels
        self._scan()

    @classmethod
    def for_config(cls, root: str | Path, cfg, *, resize_labels: bool = False) -> "FolderDataset":
        """The folder at ``cfg.img_size``, class ids checked against ``cfg``'s semseg task."""
        classes = next((t.channels for t in cfg.tasks
                        if t.name == "semseg" and t.kind == "segmentation"), None)
        return cls(root, cfg.img_size, classes=classes, resize_labels=resize_labels)

    def _scan(self) -> None:
        problems: list[str] = []
        seen: dict[str, Path] = {}
        for path in self.files:
            if path.stem in seen:
                problems.append(f"{path}: same name as {seen[path.stem]}; labels are matched by "
                                f"name, so image names must be unique")
            seen.setdefault(path.stem, path)
        index = {}
        for task in LABEL_TASKS:
            folder = self.root / task
            index[task] = {}
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    if p.is_file():
                        index[task].setdefault(p.stem, []).append(p)
        self.entries: list[dict] = []
        self.resized: list[Path] = []
        self.label_files = {task: 0 for task in LABEL_TASKS}
        for path in self.files:
            try:
                mode, size, _ = _probe(path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if mode in _NOT_IMAGE_MODES:
                problems.append(f"{path}: mode {_mode(mode)}; images must be 8-bit RGB or grey "
                                f"(a depth map in images/?)")
            entry = {"image": path, "size": size}
            for task in LABEL_TASKS:
                entry[task] = None
                candidates = index[task].get(path.stem, [])
                pngs = [p for p in candidates if p.suffix.lower() == ".png"]
                if len(pngs) > 1:
                    problems.append(f"{pngs[0]}: more than one {task} file for {path.name} "
                                    f"({', '.join(p.name for p in pngs)})")
                    continue
                if not pngs:
                    other = [p for p in candidates
                             if p.suffix.lower() in _OTHER_PICTURE_SUFFIXES]
                    if other:
                        problems.append(f"{other[0]}: labels must be lossless PNG files "
                                        f"({task}/{path.stem}.png)")
                    continue
                problem, label_size = self._check_label(task, pngs[0], size, path)
                if problem:
                    problems.append(problem)
                    continue
                entry[task], entry[task + "_size"] = pngs[0], label_size
                self.label_files[task] += 1
            self.entries.append(entry)
        if problems:
            extra = len(problems) - 1
            more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
            raise ValueError(problems[0] + more)
        self.notes: list[str] = []
        if self.resize_labels:
            self.notes.append(f"note: --resize-labels: resized {len(self.resized)} label file(s) "
                              f"to their image's size (nearest neighbour)"
                              + (f", e.g. {self.resized[0]}" if self.resized else ""))
        stems = {p.stem for p in self.files}
        for task in LABEL_TASKS:
            unmatched = [ps[0] for stem, ps in index[task].items() if stem not in stems
                         and ps[0].suffix.lower() == ".png"]
            if unmatched:
                self.notes.append(f"note: {len(unmatched)} {task}/ file(s) match no image and are "
                                  f"not used, e.g. {unmatched[0]}")

    def _check_label(self, task: str, path: Path, image_size, image_path: Path):
        """(the first problem of a label file's header or None, its size); records resizing."""
        try:
            mode, size, fmt = _probe(path)
        except ValueError as exc:
            return str(exc), None
        if fmt != "PNG":
            return f"{path}: a {fmt} file; labels must be lossless PNG", size
        if task == "semseg" and mode not in SEMSEG_MODES:
            return (f"{path}: mode {_mode(mode)}; semseg must be an 8-bit single-channel PNG of "
                    f"class ids (PIL mode L, or P with the palette index as the class id), "
                    f"255 = ignore"), size
        if task == "depth" and mode not in DEPTH_MODES:
            hint = ("; 8 bits cannot hold millimetres"
                    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA") else "")
            return (f"{path}: mode {_mode(mode)}; depth must be a 16-bit grey PNG in millimetres "
                    f"(PIL mode I;16, or I), 0 = invalid{hint}"), size
        if size != image_size:
            if not self.resize_labels:
                return (f"{path}: {size[0]}x{size[1]} but its image {image_path.name} is "
                        f"{image_size[0]}x{image_size[1]}; labels must have the image's size "
                        f"(--resize-labels resizes them, nearest neighbour)"), size
            self.resized.append(path)
        return None, size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        entry = self.entries[i]
        iw, ih = entry["size"]
        out = self.size or (ih, iw)
        img = _decode(entry["image"], entry["size"]).convert("RGB")
        if (ih, iw) != out:
            img = img.resize((out[1], out[0]), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0)
        sem_path = entry["semseg"]
        if sem_path is not None:
            ids = np.asarray(_decode(sem_path, entry["semseg_size"]), np.uint8)
            if self.classes is not None:
                used = ids[ids != IGNORE_INDEX]
                if used.size and int(used.max()) >= self.classes:
                    raise ValueError(
                        f"{sem_path}: class id {int(used.max())} found (max id in the file), but "
                        f"the model has {self.classes} classes, ids 0..{self.classes - 1} "
                        f"(255 = ignore)")
            label = _nearest(ids.astype(np.int64), out)
        else:
            label = np.full(out, IGNORE_INDEX, np.int64)
        depth_path = entry["depth"]
        if depth_path is not None:
            mm = np.asarray(_decode(depth_path, entry["depth_size"]))
            if mm.size and (int(mm.min()) < 0 or int(mm.max()) > 65535):
                raise ValueError(f"{depth_path}: depth values {int(mm.min())}..{int(mm.max())} "
                                 f"outside 0..65535 mm")
            depth = _nearest(mm.astype(np.float32), out) / 1000.0
        else:
            depth = np.zeros(out, np.float32)
        return image, {"semseg": torch.from_numpy(label), "depth": torch.from_numpy(depth)}

    def tensors(self):
        """All items at once: images [N, 3, H, W], {task: targets [N, H, W]} (needs ``size``
        or images of one size)."""
        samples = [self[i] for i in range(len(self))]
        shapes = {tuple(s[0].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"{self.root}: images of different sizes {sorted(shapes)} and no "
                             f"common size to resize them to")
        images = torch.stack([s[0] for s in samples])
        return images, {k: torch.stack([s[1][k] for s in samples]) for k in LABEL_TASKS}


def export_folder(dataset, root: str | Path) -> None:
    """Write a dataset in :class:`FolderDataset`'s layout (lossless: PNG, depth in mm)."""
    root = Path(root)
    for sub in ("images", "semseg", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        image, targets = dataset[i]
        name = f"{i:06d}.png"
        rgb = (image.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / name)
        Image.fromarray(targets["semseg"].numpy().astype(np.uint8)).save(root / "semseg" / name)
        mm = np.clip(np.round(targets["depth"].numpy() * 1000), 0, 65535).astype(np.uint16)
        Image.fromarray(mm).save(root / "depth" / name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.data",
                                     description="Procedural multi-task scenes.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write scenes as an image/label/depth folder")
    ex.add_argument("--out", type=out_dir, required=True, help="destination folder")
    ex.add_argument("--count", type=positive_int, default=16, help="number of scenes (default 16)")
    ex.add_argument("--seed", type=nonneg_int, default=0, help="scene family seed (default 0)")
    ex.add_argument("--size", type=positive_int, nargs=2, default=(32, 64), metavar=("H", "W"),
                    help="image size (default 32 64)")
    args = parser.parse_args(argv)
    export_folder(SceneDataset(args.count, args.seed, tuple(args.size)), args.out)
    print(f"wrote {args.count} scenes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
