"""Bad input to every CLI: the documented exit code and a one-line message, never a traceback.

Each case runs the CLI's ``main`` in-process (fast) with stdout/stderr captured; an exception
escaping ``main`` — what the user would see as a traceback — fails the case, and so does a
"Traceback" in the output or more than one ``error`` line. The classes: wrong types,
out-of-range numbers, hostile sizes (headers claiming huge pictures or arrays), pictures of the
wrong mode, unwritable outputs, missing optional dependencies. Hostile model-image metadata has
its own schema tests and fuzz (tests/firmware/test_schema.py).
"""

from __future__ import annotations

import importlib
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ hostile files

def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A real 1x1 PNG whose IHDR then claims ``width`` x ``height`` (CRC fixed up)."""
    from PIL import Image
    Image.new("RGB", (1, 1)).save(path)
    blob = bytearray(path.read_bytes())
    blob[16:24] = struct.pack(">II", width, height)
    blob[29:33] = struct.pack(">I", zlib.crc32(bytes(blob[12:29])))
    path.write_bytes(bytes(blob))
    return path


def _npy_claiming(path: Path, shape, dtype="|u1") -> Path:
    """A .npy header claiming ``shape`` over a few bytes of data."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    header = header.ljust(118) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
                     + bytes(16))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image
    d = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.full((32, 64), 40000, np.uint16)).save(d / "grey16.png")
    _png_claiming(d / "huge.png", 20000, 20000)
    _npy_claiming(d / "huge.npy", (3, 100000, 100000))
    np.save(d / "float.npy", np.full((3, 32, 64), 0.5, np.float32))
    np.save(d / "ok.npy", np.zeros((3, 32, 64), np.uint8))
    (d / "afile").write_text("x")
    (d / "garbage.m3vimg").write_bytes(b"not an image")
    return d


# ----------------------------------------------------------------------------------- the cases

FW_RUN = ["run", "--backend", "sim", "--task", "depth"]

CASES = [
    # (module, argv, exit code, message regex); "{d}" is the fixture folder
    ("firmware.cli", [*FW_RUN, "--scene", "-1"], 2, r"--scene: must be >= 0, not -1"),
    ("firmware.cli", [*FW_RUN, "--scene", "one"], 2, r"--scene: .*integer"),
    ("firmware.cli", [*FW_RUN, "--timeout", "nan", "{d}/ok.npy"], 2,
     r"--timeout: must be a finite number"),
    ("firmware.cli", [*FW_RUN, "--timeout", "0", "{d}/ok.npy"], 2, r"--timeout: must be > 0"),
    ("firmware.cli", [*FW_RUN, "--out", "{d}/afile", "{d}/ok.npy"], 2,
     r"--out: .*exists and is not a folder"),
    ("firmware.cli", [*FW_RUN, "--out", "/proc/m3vit", "{d}/ok.npy"], 2,
     r"--out: .*not writable"),
    ("firmware.cli", [*FW_RUN, "--out", "{d}/afile/sub", "{d}/ok.npy"], 2,
     r"--out: .*afile is not a folder"),
    ("firmware.cli", [*FW_RUN, "--output-size", "0x5", "{d}/ok.npy"], 2, r"size must be HxW"),
    ("firmware.cli", [*FW_RUN, "--output-size", "100000x100000", "{d}/ok.npy"], 2,
     r"larger than 16384 a side"),
    ("firmware.cli", ["bench", "--backend", "sim", "--frames", "0"], 2, r"--frames: must be >= 1"),
    ("firmware.cli", [*FW_RUN, "--model", "{d}/garbage.m3vimg", "{d}/ok.npy"], 3, r"bad magic"),
    ("firmware.cli", [*FW_RUN, "--model", "{d}/missing.m3vimg", "{d}/ok.npy"], 2,
     r"does not exist"),
    ("firmware.cli", ["info", "--backend", "board", "--registers", "pynq"], 2,
     r"--registers pynq needs the pynq package"),
    ("firmware.cli", ["demo", "--scene", "-3"], 2, r"--scene: must be >= 0"),
    ("firmware.cli", ["demo", "--out", "{d}/afile"], 2, r"exists and is not a folder"),
    ("golden.demo", ["--scene", "-1"], 2, r"--scene: must be >= 0"),
    ("golden.demo", ["--out", "{d}/afile"], 2, r"exists and is not a folder"),
    ("golden.demo", ["--checkpoint", "{d}/afile"], 2, r"not a readable checkpoint"),
    ("golden.cost", ["--config", "nano", "--seed", "-5"], 2, r"--seed: must be >= 0"),
    ("golden.cost", ["--config", "huge"], 2, r"invalid choice"),
    ("golden.cost", ["--config", "nano", "--checkpoint", "{d}/afile"], 2,
     r"not a readable checkpoint"),
    ("golden.cost", ["--config", "nano", "--plot", "{d}/afile"], 2, r"exists and is not a folder"),
    ("firmware.compiler", ["--out", "/proc/x.m3vimg"], 2, r"--out .*not writable"),
    ("firmware.compiler", ["--int-model", "{d}/afile", "--out", "{d}/x.m3vimg"], 2,
     r"--int-model: .*not an integer M3ViT model"),
    ("golden.quant", ["eval", "--scenes", "0"], 2, r"--scenes: must be >= 1"),
    ("golden.quant", ["eval", "--calib", "-1"], 2, r"--calib: must be >= 1"),
    ("golden.quant", ["eval", "--int-model", "{d}/afile"], 2, r"not an integer M3ViT model"),
    ("golden.checkpoint", ["import", "{d}/missing", "--config", "nano", "--out", "{d}/o.pt"], 2,
     r"does not exist"),
    ("golden.checkpoint", ["import", "{d}/afile", "--config", "nano", "--out", "{d}/o.pt"], 2,
     r"not a readable checkpoint"),
    ("golden.checkpoint", ["import", "{d}/afile", "--config", "nano", "--out", "{d}/o.pt",
                           "--source-size", "12"], 2, r"size must be HxW"),
    ("benchmarks.frame_report", ["--clock-mhz", "inf"], 2, r"--clock-mhz: must be a finite"),
    ("benchmarks.frame_report", ["--seed", "-1"], 2, r"--seed: must be >= 0"),
]

# Input pictures and arrays: refused from their headers, before a model is built or simulated.
INPUT_CASES = [
    ("grey16.png", r"16-bit grey picture .*convert it first"),
    ("huge.png", r"claims 20000x20000 pixels"),
    ("huge.npy", r"claims 100000x100000 pixels"),
    ("float.npy", r"expected uint8 pixels 0\.\.255, got float32"),
    ("afile", r"cannot read image"),
]


def _main(module: str):
    if module.startswith("benchmarks."):
        sys.path.insert(0, str(ROOT))
    mod = importlib.import_module(module if module != "golden.quant" else "golden.quant.__main__")
    return mod.main


def _run(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    main = _main(module)
    try:
        code = main(argv)
    except SystemExit as exc:            # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 — what a user would see as a traceback
        out, err = capsys.readouterr()
        pytest.fail(f"{module} {argv}: traceback ({type(exc).__name__}: {exc})\n{err}")
    out, err = capsys.readouterr()
    return code, out, err


def _check(module, argv, code, message, capsys):
    got, out, err = _run(module, argv, capsys)
    assert "Traceback" not in out + err, err
    assert got == code, f"{module} {argv}: exit {got}, expected {code}\n{err}"
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, f"{module} {argv}: expected one error line, got:\n{err}"
    import re
    assert re.search(message, errors[0]), f"{module} {argv}: {errors[0]!r} !~ {message!r}"


@pytest.mark.parametrize("module, argv, code, message", CASES,
                         ids=[f"{m.split('.')[-1]}:{' '.join(a)[:40]}" for m, a, _, _ in CASES])
def test_cli_bad_input(files, capsys, module, argv, code, message):
    argv = [a.replace("{d}", str(files)) for a in argv]
    _check(module, argv, code, message, capsys)


@pytest.mark.parametrize("name, message", INPUT_CASES, ids=[n for n, _ in INPUT_CASES])
def test_firmware_input_checked_from_its_header(files, capsys, name, message, monkeypatch):
    """``firmware run`` refuses the picture with exit 2 before any simulator is built."""
    import firmware.backends.sim as simmod
    from tests.firmware.fakes import make_image

    def no_sim(*a, **k):
        raise AssertionError("a simulator was built for an input that should be refused")
    monkeypatch.setattr(simmod, "_default_factory", no_sim)
    make_image().save(files / "fake.m3vimg")
    _check("firmware.cli", [*FW_RUN, "--model", str(files / "fake.m3vimg"), str(files / name)],
           2, message, capsys)


def test_case_count_per_cli():
    """The suite covers every CLI (the count per CLI is what the issue's note reports)."""
    counts = Counter(m for m, *_ in CASES + TRAIN_EVAL_CASES)
    counts["firmware.cli"] += len(INPUT_CASES)
    assert set(counts) >= {"firmware.cli", "golden.demo", "golden.cost", "golden.quant",
                           "golden.checkpoint", "golden.train", "golden.eval", "golden.data",
                           "firmware.compiler", "benchmarks.frame_report"}
    print(dict(counts))


TRAIN_EVAL_CASES = [
    ("golden.train", ["--steps", "0"], 2, r"--steps: must be >= 1"),
    ("golden.train", ["--lr", "nan"], 2, r"--lr: must be a finite number"),
    ("golden.train", ["--batch-size", "-4"], 2, r"--batch-size: must be >= 1"),
    ("golden.train", ["--out", "{d}"], 2, r"--out: .* is a folder; give a file name"),
    ("golden.train", ["--out", "{d}/afile/x.pt"], 2, r"--out: .*afile exists and is not a folder"),
    ("golden.train", ["--resume", "{d}/afile"], 2, r"not a readable checkpoint"),
    ("golden.eval", ["--scenes", "0"], 2, r"--scenes: must be >= 1"),
    ("golden.eval", ["--data", "{d}/missing"], 2, r"missing"),
    ("golden.eval", ["--checkpoint", "{d}/garbage.m3vimg"], 2, r"not a readable checkpoint"),
    ("golden.data", ["export", "--out", "{d}/afile", "--count", "1"], 2,
     r"exists and is not a folder"),
    ("golden.data", ["export", "--out", "{d}/x", "--count", "0"], 2, r"--count: must be >= 1"),
    ("golden.quant", ["quantize", "--out", "{d}"], 2, r"is a folder; give a file name"),
]


@pytest.mark.parametrize("module, argv, code, message", TRAIN_EVAL_CASES,
                         ids=[f"{m.split('.')[-1]}:{' '.join(a)[:40]}"
                              for m, a, _, _ in TRAIN_EVAL_CASES])
def test_golden_cli_bad_input(files, capsys, module, argv, code, message):
    argv = [a.replace("{d}", str(files)) for a in argv]
    _check(module, argv, code, message, capsys)
