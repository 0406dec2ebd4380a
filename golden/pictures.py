"""Reading a picture's header without decoding it (Pillow and the standard library only, so the
board's firmware uses it too).

Pillow refuses pictures above its decompression-bomb limit when they are *opened*, with a message
that does not give the size; callers here apply their own, smaller caps to the header's size and
say what the header claims, so the limit is suspended while the header is read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

__all__ = ["header"]


def header(path: str | Path) -> tuple[str, tuple[int, int], str | None]:
    """``(mode, (width, height), format)`` from ``path``'s header; nothing is decoded.

    Raises whatever Pillow raises for an unreadable file (``OSError``,
    ``PIL.UnidentifiedImageError``, ``ValueError``, ``SyntaxError`` …); the caller checks the
    size against its cap before decoding.
    """
    from PIL import Image
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # lazy: reads the header only
                return img.mode, img.size, img.format
    finally:
        Image.MAX_IMAGE_PIXELS = limit
