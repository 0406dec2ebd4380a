"""Frame input and output layouts in DDR, as the compiler lays them out (numpy and the
integer reference's ``patch_rows`` only: this runs on the board).

Input: the image's patch rows ``[P, 3·p·p]`` uint8 (channel, row, column order inside a patch —
the patch-embedding convolution flattened), each row zero-padded to ``row_bytes``.

Output: each head matrix multiply writes its int16 results in the order the array emits them:
for every row tile ``tm`` (``R`` tokens), for every column tile ``tn`` (``C`` channels), the tile's
rows in order — ``C`` little-endian int16 each. A head may be split into column chunks; chunk
``i`` covers channels ``[n0, n0 + n)`` at byte ``offset`` of the output buffer. :func:`decode_output`
undoes both and the pixel shuffle, giving exactly ``IntM3ViT.infer``'s ``[channels, H, W]``.
"""

from __future__ import annotations

import numpy as np

from golden.quant.ops import patch_rows

__all__ = ["patch_rows", "input_bytes", "pack_input", "output_bytes", "decode_output",
           "emission_order"]


def input_bytes(meta: dict) -> int:
    spec = meta["input"]
    return spec["rows"] * spec["row_bytes"]


def pack_input(meta: dict, pixels: np.ndarray) -> bytes:
    """The bytes the firmware writes at INPUT_BASE for one frame."""
    spec = meta["input"]
    pixels = np.asarray(pixels)
    want = (3, *spec["image"])
    if pixels.shape != want:
        raise ValueError(f"expected a {want[0]}x{want[1]}x{want[2]} image, got "
                         f"{'x'.join(map(str, pixels.shape))}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    rows = patch_rows(pixels, spec["patch"])
    out = np.zeros((spec["rows"], spec["row_bytes"]), np.uint8)
    out[:, :rows.shape[1]] = rows
    return out.tobytes()


def _task(meta: dict, task: str) -> dict:
    for t in meta["tasks"]:
        if t["name"] == task:
            return t
    names = ", ".join(t["name"] for t in meta["tasks"])
    raise KeyError(f"unknown task {task!r}; this model has: {names}")


def output_bytes(meta: dict, task: str) -> int:
    return sum(c["bytes"] for c in _task(meta, task)["chunks"])


def emission_order(m: int, tiles_n: int, rows: int) -> np.ndarray:
    """``[(row, column tile)]`` in the order the array emits result rows."""
    order = []
    for tm in range(-(-m // rows)):
        for tn in range(tiles_n):
            for r in range(rows):
                if tm * rows + r < m:
                    order.append((tm * rows + r, tn))
    return np.array(order, np.int64).reshape(-1, 2)


def decode_output(meta: dict, task: str, raw: bytes) -> np.ndarray:
    """Raw output bytes of one frame → int16 ``[channels, H, W]``."""
    spec = _task(meta, task)
    need = output_bytes(meta, task)
    if len(raw) < need:
        raise ValueError(f"output of task {task!r} needs {need} bytes, got {len(raw)}")
    rows, cols = meta["array"]["rows"], meta["array"]["cols"]
    tokens = spec["tokens"]
    full = np.zeros((tokens, spec["width"]), np.int16)
    for chunk in spec["chunks"]:
        tiles_n = -(-chunk["n"] // cols)
        data = np.frombuffer(raw, "<i2", count=chunk["bytes"] // 2, offset=chunk["offset"])
        data = data.reshape(-1, cols)
        grid = np.zeros((tokens, tiles_n * cols), np.int16)
        order = emission_order(tokens, tiles_n, rows)
        for (row, tn), values in zip(order, data):
            grid[row, tn * cols:(tn + 1) * cols] = values
        full[:, chunk["n0"]:chunk["n0"] + chunk["n"]] = grid[:, :chunk["n"]]
    gh, gw = spec["grid"]
    p, c = spec["patch"], spec["channels"]
    return full.reshape(gh, gw, c, p, p).transpose(2, 0, 3, 1, 4).reshape(c, gh * p, gw * p)
