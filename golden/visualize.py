"""Pictures a person can look at: coloured segmentation, depth heat maps, side-by-side panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["colorize_segmentation", "colorize_depth", "image_to_uint8", "save_panel", "PALETTE"]


def _palette(n: int = 256) -> np.ndarray:
    """PASCAL-VOC style bit-interleaved palette: distinct colours for the first classes."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


PALETTE = _palette()
# Our scene classes read better in natural colours: sky, ground, sphere, box, cylinder, cone.
PALETTE[:6] = [(135, 190, 235), (120, 100, 80), (220, 60, 60), (60, 90, 220), (60, 180, 80),
               (235, 200, 40)]
PALETTE[255] = (0, 0, 0)


def colorize_segmentation(labels: np.ndarray) -> np.ndarray:
    """Class map [H, W] → RGB uint8 [H, W, 3]."""
    return PALETTE[np.asarray(labels).astype(np.int64) & 255]


def colorize_depth(depth: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Depth map [H, W] (0 = invalid) → RGB uint8 heat map (near = bright); invalid pixels black."""
    import matplotlib
    depth = np.asarray(depth, np.float64)
    valid = depth > 0
    vmax = vmax or (float(depth[valid].max()) if valid.any() else 1.0)
    norm = np.clip(depth / max(vmax, 1e-9), 0, 1)
    rgb = (matplotlib.colormaps["magma_r"](norm)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """[3, H, W] float in [0, 1] → [H, W, 3] uint8."""
    return (np.clip(np.asarray(image).transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)


def save_panel(path: str | Path, tiles: list[tuple[str, np.ndarray]], scale: int = 4) -> None:
    """Save RGB tiles side by side, each upscaled by ``scale`` (nearest) with a caption above."""
    caption = 14
    imgs = [Image.fromarray(t).resize((t.shape[1] * scale, t.shape[0] * scale), Image.NEAREST)
            for _, t in tiles]
    width = sum(i.width for i in imgs) + 4 * (len(imgs) - 1)
    height = max(i.height for i in imgs) + caption
    panel = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    x = 0
    for (title, _), img in zip(tiles, imgs):
        draw.text((x + 2, 1), title, fill=(0, 0, 0))
        panel.paste(img, (x, caption))
        x += img.width + 4
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    panel.save(path)
