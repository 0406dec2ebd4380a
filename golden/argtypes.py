"""argparse types shared by every CLI of the project (standard library only: the board imports it).

Each validates its value when the command line is parsed, so a bad number is a usage error
(exit 2, one line) before any long work starts, never a traceback later.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["int_at_least", "positive_int", "nonneg_int", "positive_float", "nonneg_float",
           "finite_float", "size_hw", "out_dir", "out_file", "MAX_SIDE"]


def int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def finite_float(text: str) -> float:
    value = _float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text!r}")
    return value


def nonneg_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text!r}")
    return value


MAX_SIDE = 16384   # pixels a side of any size given on a command line


def size_hw(text: str) -> tuple[int, int]:
    """``HxW`` with both sides in 1..:data:`MAX_SIDE` (e.g. ``256x512``)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 1 or w < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 256x512), not {text!r}") \
            from None
    if max(h, w) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"size {text} is larger than {MAX_SIDE} a side")
    return h, w


def out_dir(text: str) -> str:
    """An output folder that exists as a folder or can be created, and is writable (checked
    when the command line is parsed, before any long work; nothing is left behind)."""
    import os
    import tempfile
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise argparse.ArgumentTypeError(f"{text}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not writable ({probe}: "
                                         f"{exc.strerror or exc})") from None
    return text


def out_file(text: str) -> str:
    """An output file: not an existing folder, in a folder that is (or can be created) writable;
    checked when the command line is parsed, so a long run cannot fail at its last step."""
    import os
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if os.path.lexists(text) and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a regular file")
    out_dir(os.path.dirname(os.path.abspath(text)))
    return text
