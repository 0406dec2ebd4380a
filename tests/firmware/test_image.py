"""Model image file: round trip, layout, and every kind of corruption refused with a clear message."""

import json
import struct
import zlib

import pytest

from firmware.errors import EXIT_IMAGE, ImageError, IncompatibleImageError
from firmware.image import (HEADER_BYTES, IMAGE_MAGIC, IMAGE_VERSION, SECTION_ALIGN, ModelImage,
                            check_compatible, task_names)

from .fakes import make_image


@pytest.fixture
def image():
    return make_image(instructions=5, data_bytes=10_000)


def _reheader(blob: bytes, **fields) -> bytes:
    """Rewrite header fields and fix the header CRC (a well-formed header with other values)."""
    names = ["magic", "version", "header_bytes", "fingerprint", "flags", "total", "meta_off",
             "meta_n", "prog_off", "prog_n", "data_off", "data_n", "payload_crc", "header_crc"]
    values = dict(zip(names, struct.unpack("<8sIIIIQIIIIIIII", blob[:64])))
    values.update(fields)
    head = struct.pack("<8sIIIIQIIIIIIII", *(values[n] for n in names))[:60]
    return head + struct.pack("<I", zlib.crc32(head)) + blob[64:]


def test_round_trip(image, tmp_path):
    blob = image.to_bytes()
    back = ModelImage.from_bytes(blob)
    assert back == image
    path = tmp_path / "sub" / "m.m3vimg"
    image.save(path)
    assert ModelImage.load(path) == image
    assert path.read_bytes() == blob
    assert image.instructions == 5


def test_layout(image):
    blob = image.to_bytes()
    (magic, version, hb, fp, flags, total, meta_off, meta_n, prog_off, prog_n, data_off, data_n,
     pcrc, hcrc) = struct.unpack("<8sIIIIQIIIIIIII", blob[:HEADER_BYTES])
    assert (magic, version, hb, fp, flags) == (IMAGE_MAGIC, IMAGE_VERSION, 64, image.fingerprint, 0)
    assert total == len(blob)
    for off in (meta_off, prog_off, data_off):
        assert off % SECTION_ALIGN == 0
    assert meta_off >= 64 and prog_off >= meta_off + meta_n and data_off >= prog_off + prog_n
    assert json.loads(blob[meta_off:meta_off + meta_n]) == image.meta
    assert blob[prog_off:prog_off + prog_n] == image.program
    assert blob[data_off:data_off + data_n] == image.data
    assert pcrc == zlib.crc32(blob[64:total]) and hcrc == zlib.crc32(blob[:60])
    assert set(blob[64:meta_off]) == {0}                      # zero padding


def test_empty_sections_round_trip():
    img = ModelImage(0x1234, {"tasks": [{"name": "a"}]})
    assert ModelImage.from_bytes(img.to_bytes(), validate=False) == img  # container only
    with pytest.raises(ImageError, match=r"meta\['accel'\] is missing"):
        ModelImage.from_bytes(img.to_bytes())


@pytest.mark.parametrize("cut", [0, 7, 8, 40, 63, 64, 4096, -1, -100])
def test_truncated(image, cut):
    blob = image.to_bytes()
    short = blob[:cut] if cut >= 0 else blob[:len(blob) + cut]
    with pytest.raises(ImageError) as e:
        ModelImage.from_bytes(short, source="m.img")
    msg = str(e.value)
    assert msg.startswith("m.img: ")
    if len(short) >= 64:
        assert f"truncated: expected {len(blob)} bytes, got {len(short)}" in msg
    elif len(short) >= 8:
        assert "truncated" in msg
    assert e.value.exit_code == EXIT_IMAGE


def test_trailing_bytes(image):
    with pytest.raises(ImageError, match="unexpected bytes after the image's end"):
        ModelImage.from_bytes(image.to_bytes() + b"\0")


def test_every_header_byte_flip_is_refused(image):
    blob = bytearray(image.to_bytes())
    for i in range(HEADER_BYTES):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(ImageError) as e:
            ModelImage.from_bytes(bytes(bad))
        msg = str(e.value)
        if i < 8:
            assert "bad magic" in msg
        elif i < 12:
            assert "unsupported image version" in msg
        else:
            assert "header checksum mismatch" in msg


@pytest.mark.parametrize("where", ["meta", "program", "data", "padding"])
def test_flipped_payload_byte(image, where):
    blob = bytearray(image.to_bytes())
    _, _, _, _, _, _, mo, mn, po, pn, do, dn, _, _ = struct.unpack("<8sIIIIQIIIIIIII", blob[:64])
    i = {"meta": mo + mn // 2, "program": po + 7, "data": do + dn - 1, "padding": mo + mn + 1}[where]
    blob[i] ^= 0x80
    with pytest.raises(ImageError, match="payload checksum mismatch: stored 0x"):
        ModelImage.from_bytes(bytes(blob))


def test_bad_magic(image):
    blob = b"NOTANIMG" + image.to_bytes()[8:]
    with pytest.raises(ImageError, match=r"bad magic b'NOTANIMG': not an M3ViT model image"):
        ModelImage.from_bytes(blob)
    with pytest.raises(ImageError, match="empty file"):
        ModelImage.from_bytes(b"")


def test_wrong_version(image):
    blob = _reheader(image.to_bytes(), version=2)
    with pytest.raises(ImageError, match="unsupported image version 2: this firmware reads "
                                         "version 1"):
        ModelImage.from_bytes(blob)


def test_structural_errors(image):
    blob = image.to_bytes()
    with pytest.raises(ImageError, match="unknown flags"):
        ModelImage.from_bytes(_reheader(blob, flags=1))
    with pytest.raises(ImageError, match="header_bytes 32 is not 64"):
        ModelImage.from_bytes(_reheader(blob, header_bytes=32))
    _, _, _, _, _, _, mo, mn, po, pn, do, dn, _, _ = struct.unpack("<8sIIIIQIIIIIIII", blob[:64])
    with pytest.raises(ImageError, match=f"program section offset {po + 1} is not 4096-byte aligned"):
        ModelImage.from_bytes(_reheader(blob, prog_off=po + 1))
    with pytest.raises(ImageError, match="data section .* overlaps another section or lies "
                                         "outside"):
        ModelImage.from_bytes(_reheader(blob, data_n=dn + 1))
    with pytest.raises(ImageError, match="overlaps"):
        ModelImage.from_bytes(_reheader(blob, prog_off=mo))


def _with_sections(meta: bytes, program: bytes) -> bytes:
    """A correctly checksummed file with raw meta/program bytes (bypassing the writer)."""
    mo, po = 4096, 8192
    do = po + (len(program) + 4095) // 4096 * 4096
    blob = bytearray(do)
    blob[mo:mo + len(meta)] = meta
    blob[po:po + len(program)] = program
    head = struct.pack("<8sIIIIQIIIIIIII", IMAGE_MAGIC, 1, 64, 7, 0, len(blob), mo, len(meta),
                       po, len(program), do, 0, zlib.crc32(blob[64:]), 0)[:60]
    blob[:64] = head + struct.pack("<I", zlib.crc32(head))
    return bytes(blob)


def test_program_length_not_multiple_of_32():
    with pytest.raises(ImageError, match="program length 33 bytes is not a multiple of 32"):
        ModelImage.from_bytes(_with_sections(b"{}", bytes(33)))
    with pytest.raises(ImageError, match="not a multiple of 32"):
        ModelImage(1, {}, bytes(31))


@pytest.mark.parametrize("meta,msg", [(b"{not json", "bad meta JSON"),
                                      (b"[1, 2]", "expected an object, got list"),
                                      (b"\xff\xfe", "bad meta JSON")])
def test_bad_meta(meta, msg):
    with pytest.raises(ImageError, match=msg):
        ModelImage.from_bytes(_with_sections(meta, bytes(64)))


def test_unserialisable_meta():
    with pytest.raises(ImageError, match="not JSON-serialisable"):
        ModelImage(1, {"x": object()}).to_bytes()
    with pytest.raises(ImageError, match="32-bit"):
        ModelImage(1 << 32)


def test_load_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ModelImage.load(tmp_path / "nope.m3vimg")


def test_check_compatible(image):
    check_compatible(image, image.fingerprint, (0, 1))
    with pytest.raises(IncompatibleImageError) as e:
        check_compatible(image, image.fingerprint ^ 0xFF, (0, 1))
    assert (f"image built for accelerator config fingerprint {image.fingerprint:#010x}, this "
            f"accelerator reports {image.fingerprint ^ 0xFF:#010x}") in str(e.value)
    assert e.value.exit_code == EXIT_IMAGE
    image.meta["hw_version"] = [1, 0]
    with pytest.raises(IncompatibleImageError, match="compiled for accelerator version 1.x, "
                                                     "this accelerator is version 0.1"):
        check_compatible(image, image.fingerprint, (0, 1))
    check_compatible(image, image.fingerprint, None)
    notasks = ModelImage(image.fingerprint, {"model": {}})
    with pytest.raises(IncompatibleImageError, match="no task list"):
        check_compatible(notasks, image.fingerprint, (0, 1))


def test_task_names(image):
    assert task_names(image.meta) == ["semseg", "depth"]
    assert "tasks: semseg, depth" in image.describe()
