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
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import SCENE_CLASSES

__all__ = ["render_scene", "SceneDataset", "FolderDataset", "export_folder", "MAX_DEPTH",
           "IGNORE_INDEX"]

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


class FolderDataset(torch.utils.data.Dataset):
    """A user's own multi-task data in a folder.

    Layout (file stems match)::

        ROOT/images/NAME.png|jpg    RGB image
        ROOT/semseg/NAME.png        8-bit class indices, 255 = ignore      (optional)
        ROOT/depth/NAME.png         16-bit depth in millimetres, 0 = invalid (optional)

    Images are resized (bilinear) to ``size`` = (H, W) when given; labels and depth with nearest
    neighbour. Missing targets are all-ignore / all-invalid.
    """

    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

    def __init__(self, root: str | Path, size: tuple[int, int] | None = None):
        self.root = Path(root)
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{self.root}: no 'images/' folder (expected images/, "
                                    f"semseg/, depth/ with matching file names)")
        self.files = sorted(p for p in image_dir.iterdir()
                            if p.suffix.lower() in self.IMAGE_SUFFIXES)
        if not self.files:
            raise FileNotFoundError(f"{image_dir}: no .png/.jpg images")
        self.size = tuple(size) if size else None

    def __len__(self) -> int:
        return len(self.files)

    def _resize(self, img: Image.Image, resample) -> Image.Image:
        if self.size is None:
            return img
        return img.resize((self.size[1], self.size[0]), resample)

    def __getitem__(self, i: int):
        path = self.files[i]
        img = self._resize(Image.open(path).convert("RGB"), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0)
        h, w = image.shape[1:]
        sem_path = self.root / "semseg" / (path.stem + ".png")
        if sem_path.exists():
            label = np.asarray(self._resize(Image.open(sem_path), Image.NEAREST), np.int64)
        else:
            label = np.full((h, w), IGNORE_INDEX, np.int64)
        depth_path = self.root / "depth" / (path.stem + ".png")
        if depth_path.exists():
            mm = np.asarray(self._resize(Image.open(depth_path), Image.NEAREST), np.float32)
            depth = mm / 1000.0
        else:
            depth = np.zeros((h, w), np.float32)
        if label.shape != (h, w) or depth.shape != (h, w):
            raise ValueError(f"{path.stem}: target sizes {label.shape}/{depth.shape} differ from "
                             f"the image's {(h, w)}")
        return image, {"semseg": torch.from_numpy(label), "depth": torch.from_numpy(depth)}


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
    ex.add_argument("--out", required=True, help="destination folder")
    ex.add_argument("--count", type=int, default=16, help="number of scenes (default 16)")
    ex.add_argument("--seed", type=int, default=0, help="scene family seed (default 0)")
    ex.add_argument("--size", type=int, nargs=2, default=(32, 64), metavar=("H", "W"),
                    help="image size (default 32 64)")
    args = parser.parse_args(argv)
    export_folder(SceneDataset(args.count, args.seed, tuple(args.size)), args.out)
    print(f"wrote {args.count} scenes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
