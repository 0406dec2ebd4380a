"""The model image file: everything the accelerator needs for one model, versioned and checksummed.

The compiler writes it (:meth:`ModelImage.save`); the firmware reads it (:meth:`ModelImage.load`),
refuses it with an :class:`ImageError` naming exactly what is wrong when it is corrupt, truncated
or of another version, and refuses it with an :class:`IncompatibleImageError` when it was built
for another accelerator configuration (:func:`check_compatible`).

File layout (version 1, little-endian)
--------------------------------------
A 64-byte header::

    offset size field
         0    8 magic           b"M3VITIMG"
         8    4 version         1
        12    4 header_bytes    64
        16    4 fingerprint     AccelConfig.fingerprint() of the accelerator it was built for
        20    4 flags           0 (reserved)
        24    8 total_bytes     length of the whole file
        32    4 meta_offset     \
        36    4 meta_bytes       |  three sections, each at a 4096-byte aligned file offset,
        40    4 program_offset   |  in this order, the gaps zero-filled
        44    4 program_bytes    |
        48    4 data_offset      |
        52    4 data_bytes      /
        56    4 payload_crc32   zlib.crc32(file[64:total_bytes])
        60    4 header_crc32    zlib.crc32(file[0:60])

then the sections: ``meta`` (UTF-8 JSON object: ``model``, ``tasks``, ``accel``, ``compiler``,
…), ``program`` (the layer program: 256-bit = 32-byte instructions) and ``data`` (the DDR data
region, weights and constants; DATA_BASE points at its byte 0).

This module imports only the standard library and ``rtl``'s plain-Python contract constants
(:mod:`rtl.config`, :mod:`rtl.control.version`), so the compiler and the board both use it.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from rtl.config import INSTR_BYTES
from rtl.control.version import ISA_DIGEST, ISA_VERSION

from .errors import ImageError, IncompatibleImageError
from .schema import validate_meta

__all__ = ["ModelImage", "ImageError", "IncompatibleImageError", "IMAGE_MAGIC", "IMAGE_VERSION",
           "HEADER_BYTES", "SECTION_ALIGN", "INSTRUCTION_BYTES", "check_compatible",
           "task_names"]

IMAGE_MAGIC = b"M3VITIMG"
IMAGE_VERSION = 1
HEADER_BYTES = 64
SECTION_ALIGN = 4096
INSTRUCTION_BYTES = INSTR_BYTES

_HEADER = struct.Struct("<8sIIIIQIIIIIIII")
assert _HEADER.size == HEADER_BYTES


def _align(n: int, a: int = SECTION_ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class ModelImage:
    """A compiled model: accelerator fingerprint, metadata, layer program and DDR data.

    Parameters
    ----------
    fingerprint : int
        32-bit fingerprint of the accelerator configuration the image was compiled for
        (``AccelConfig.fingerprint()``; the accelerator's FINGERPRINT register must match).
    meta : dict
        JSON-serialisable metadata (``model``, ``tasks``, ``accel``, ``compiler`` …).
    program : bytes
        The layer program, a whole number of 32-byte instructions.
    data : bytes
        The DDR data region (weights and constants); DATA_BASE points at its byte 0.
    """

    fingerprint: int
    meta: dict = field(default_factory=dict)
    program: bytes = b""
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= int(self.fingerprint) < 1 << 32:
            raise ImageError(f"fingerprint {self.fingerprint!r} is not a 32-bit unsigned value")
        self.fingerprint = int(self.fingerprint)
        if not isinstance(self.meta, dict):
            raise ImageError(f"meta must be a dict, not {type(self.meta).__name__}")
        self.program = bytes(self.program)
        self.data = bytes(self.data)
        if len(self.program) % INSTRUCTION_BYTES:
            raise ImageError(f"program length {len(self.program)} bytes is not a multiple of "
                             f"{INSTRUCTION_BYTES} (256-bit instructions)")

    @property
    def instructions(self) -> int:
        """Number of 32-byte instructions in the program (the PROGRAM_LEN register)."""
        return len(self.program) // INSTRUCTION_BYTES

    # ------------------------------------------------------------------ serialisation

    def to_bytes(self) -> bytes:
        """The file contents (see the module docstring for the layout)."""
        try:
            meta = json.dumps(self.meta, sort_keys=True, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ImageError(f"meta is not JSON-serialisable: {exc}") from exc
        meta_off = _align(HEADER_BYTES)
        prog_off = _align(meta_off + len(meta))
        data_off = _align(prog_off + len(self.program))
        total = data_off + len(self.data)
        if max(data_off, len(self.data)) >= 1 << 32:
            raise ImageError(f"image too large for 32-bit section offsets ({total} bytes)")
        blob = bytearray(total)
        blob[meta_off:meta_off + len(meta)] = meta
        blob[prog_off:prog_off + len(self.program)] = self.program
        blob[data_off:total] = self.data
        payload_crc = zlib.crc32(memoryview(blob)[HEADER_BYTES:])
        header = _HEADER.pack(IMAGE_MAGIC, IMAGE_VERSION, HEADER_BYTES, self.fingerprint, 0,
                              total, meta_off, len(meta), prog_off, len(self.program),
                              data_off, len(self.data), payload_crc, 0)
        header = header[:60] + struct.pack("<I", zlib.crc32(header[:60]))
        blob[:HEADER_BYTES] = header
        return bytes(blob)

    @classmethod
    def from_bytes(cls, blob: bytes, *, source: str = "<bytes>",
                   validate: bool = True) -> "ModelImage":
        """Parse and verify a model image; every defect raises :class:`ImageError`.

        Parameters
        ----------
        blob : bytes
            The file contents.
        source : str
            Where the bytes came from (a path), named in error messages.
        validate : bool
            Check the metadata against :mod:`firmware.schema` (types, ranges, consistency with
            the program, the data and the accelerator config it names).
        """
        blob = memoryview(bytes(blob) if not isinstance(blob, (bytes, bytearray)) else blob)
        n = len(blob)

        def fail(msg: str) -> ImageError:
            return ImageError(f"{source}: {msg}")

        if n < len(IMAGE_MAGIC) or bytes(blob[:len(IMAGE_MAGIC)]) != IMAGE_MAGIC:
            if not n:
                raise fail("empty file: not an M3ViT model image")
            raise fail(f"bad magic {bytes(blob[:len(IMAGE_MAGIC)])!r}: not an M3ViT model "
                       f"image (expected {IMAGE_MAGIC!r})")
        if n < HEADER_BYTES:
            raise fail(f"truncated: expected at least {HEADER_BYTES} header bytes, got {n}")
        (_, version, header_bytes, fingerprint, flags, total, meta_off, meta_n, prog_off,
         prog_n, data_off, data_n, payload_crc, header_crc) = _HEADER.unpack(blob[:HEADER_BYTES])
        if version != IMAGE_VERSION:
            raise fail(f"unsupported image version {version}: this firmware reads version "
                       f"{IMAGE_VERSION} (rebuild the image with a matching compiler)")
        actual = zlib.crc32(blob[:60])
        if header_crc != actual:
            raise fail(f"header checksum mismatch: stored {header_crc:#010x}, computed "
                       f"{actual:#010x} (header corrupt)")
        if header_bytes != HEADER_BYTES:
            raise fail(f"header_bytes {header_bytes} is not {HEADER_BYTES}")
        if flags != 0:
            raise fail(f"unknown flags {flags:#x} (this firmware knows none)")
        if n < total:
            raise fail(f"truncated: expected {total} bytes, got {n}")
        if n > total:
            raise fail(f"{n - total} unexpected bytes after the image's end: expected {total} "
                       f"bytes, got {n}")
        end = HEADER_BYTES
        for name, off, size in (("meta", meta_off, meta_n), ("program", prog_off, prog_n),
                                ("data", data_off, data_n)):
            if off % SECTION_ALIGN:
                raise fail(f"{name} section offset {off} is not {SECTION_ALIGN}-byte aligned")
            if off < end or off + size > total:
                raise fail(f"{name} section [{off}, {off + size}) overlaps another section or "
                           f"lies outside the {total}-byte image")
            end = off + size
        actual = zlib.crc32(blob[HEADER_BYTES:total])
        if payload_crc != actual:
            raise fail(f"payload checksum mismatch: stored {payload_crc:#010x}, computed "
                       f"{actual:#010x} (file corrupt)")
        if prog_n % INSTRUCTION_BYTES:
            raise fail(f"program length {prog_n} bytes is not a multiple of "
                       f"{INSTRUCTION_BYTES} (256-bit instructions)")
        try:
            meta = json.loads(bytes(blob[meta_off:meta_off + meta_n]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise fail(f"bad meta JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise fail(f"bad meta JSON: expected an object, got {type(meta).__name__}")
        if validate:
            try:
                validate_meta(meta, program_bytes=prog_n, data_bytes=data_n)
            except ImageError as exc:
                raise fail(str(exc)) from None
        return cls(fingerprint, meta, bytes(blob[prog_off:prog_off + prog_n]),
                   bytes(blob[data_off:data_off + data_n]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the image to ``path`` (atomically: a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = self.to_bytes()            # an ImageError here leaves nothing behind
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(blob)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelImage":
        """Read and verify a model image file.

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ImageError
            The file is not a valid model image (the message says why).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model image {path} does not exist")
        return cls.from_bytes(path.read_bytes(), source=str(path))

    # ------------------------------------------------------------------ metadata helpers

    def tasks(self) -> list[dict]:
        """``meta["tasks"]``, checked: a non-empty list of ``{"name", "kind", "channels", …}``."""
        return _tasks(self.meta)

    def describe(self) -> str:
        """One line about the image (model, tasks, sizes, fingerprint)."""
        model = self.meta.get("model", {}) or {}
        names = ", ".join(t.get("name", "?") for t in self.meta.get("tasks", []) or [])
        return (f"model {model.get('name', '?')} (tasks: {names or 'none'}), "
                f"{self.instructions} instructions, {len(self.data)} data bytes, "
                f"accelerator fingerprint {self.fingerprint:#010x}, "
                f"compiler {self.meta.get('compiler', '?')}")


def _tasks(meta: dict) -> list[dict]:
    tasks = meta.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ImageError("model image meta has no task list (meta['tasks'])")
    for i, t in enumerate(tasks):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ImageError(f"model image meta['tasks'][{i}] has no name")
    return tasks


def task_names(meta: dict) -> list[str]:
    """Task names of a model image's metadata, in task-index (TASK_ID) order."""
    return [t["name"] for t in _tasks(meta)]


def check_compatible(image: ModelImage, fingerprint: int,
                     version: tuple[int, int] | None = None,
                     isa: tuple[int, str] | None = (ISA_VERSION, ISA_DIGEST)) -> None:
    """Refuse an image that was not built for this accelerator.

    Parameters
    ----------
    image : ModelImage
        The image to check.
    fingerprint : int
        The accelerator's FINGERPRINT register.
    version : tuple of int, optional
        The accelerator's (major, minor) VERSION. When the image's meta records the
        ``hw_version`` it was compiled for, the major versions must agree.
    isa : (int, str), optional
        The instruction set (version, layout digest) this firmware and its accelerator speak
        (default: :mod:`rtl.control.version`'s). The image's ``meta["isa"]`` must equal it.

    Raises
    ------
    IncompatibleImageError
        Fingerprint, major version or instruction set differ, or the meta lacks a task list.
    """
    image_isa = image.meta.get("isa")
    if isa is not None and image_isa is not None and list(image_isa) != list(isa):
        raise IncompatibleImageError(
            f"image compiled for instruction set {image_isa!r}, this accelerator speaks "
            f"[{isa[0]}, {isa[1]!r}] (version, layout digest): recompile it with this "
            f"release's compiler")
    if image.fingerprint != fingerprint:
        model = (image.meta.get("model") or {}).get("name", "?")
        raise IncompatibleImageError(
            f"image built for accelerator config fingerprint {image.fingerprint:#010x}, "
            f"this accelerator reports {fingerprint:#010x} (model {model}: recompile it for "
            f"this accelerator's config)")
    hw = image.meta.get("hw_version")
    if version is not None and hw is not None:
        try:
            major = int(hw[0])
        except (TypeError, ValueError, IndexError):
            raise IncompatibleImageError(f"image meta hw_version {hw!r} is not [major, minor]")
        if major != version[0]:
            raise IncompatibleImageError(
                f"image compiled for accelerator version {major}.x, this accelerator is "
                f"version {version[0]}.{version[1]}")
    try:
        _tasks(image.meta)
    except ImageError as exc:
        raise IncompatibleImageError(str(exc)) from None
