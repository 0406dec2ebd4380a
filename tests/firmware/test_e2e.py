"""End to end: the CLI runs the compiled ``nano`` model on the simulated accelerator (Verilator)
for both tasks on a generated scene, and the outputs equal the integer reference's bit for bit.

Skips (with the reason) until the accelerator RTL, the compiler and the simulation wrapper exist.
"""

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ["rtl/accelerator.py", "rtl/compiler.py", "rtl/sim/accel_sim.py"]
MISSING = [p for p in NEEDED if not (ROOT / p).is_file()]

pytestmark = pytest.mark.skipif(bool(MISSING), reason="the firmware's end-to-end test needs "
                                f"{', '.join(MISSING)} (not written yet)")

SCENE = 0


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    from rtl.compiler import compile_model
    from rtl.config import NANO
    from rtl.sim.models import int_model_for
    model = int_model_for("nano")
    image = compile_model(model, NANO).image
    path = tmp_path_factory.mktemp("nano") / "nano.m3vimg"
    image.save(path)
    return model, image, path


def _budget_s(image) -> float:
    """A generous timeout: 10x the cycles the useful MACs need on the array, at the clock."""
    cfg = image.meta["accel"]
    macs = sum(m for m in image.meta.get("macs", []) if m > 0) or 10_000_000
    cycles = 10 * macs / (cfg["array_rows"] * cfg["array_cols"])
    return max(cycles, 2_000_000) / (cfg["clock_mhz"] * 1e6)



def test_cli_nano_two_tasks_equal_integer_reference(nano, tmp_path, capsys):
    from firmware.cli import main
    from golden.data import render_scene
    from golden.eval import HELD_OUT_SEED
    from golden.quant.ptq import pixels_from_image

    model, image, path = nano
    out = tmp_path / "out"
    argv = ["run", "--backend", "sim", "--sim", os.environ.get("M3VIT_FIRMWARE_SIM", "verilator"),
            "--model", str(path), "--task", "semseg", "--task", "depth", "--scene", str(SCENE),
            "--out", str(out), "--timeout", f"{_budget_s(image):.6f}", "--no-progress", "--json"]
    code = main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    img, _, _ = render_scene(HELD_OUT_SEED, SCENE, model.cfg.img_size)
    pixels = pixels_from_image(img)
    for task in ("semseg", "depth"):
        got = np.load(out / f"scene{SCENE}_{task}_raw.npy")
        np.testing.assert_array_equal(got, model.infer(pixels, task), err_msg=task)
        assert (out / f"scene{SCENE}_{task}.png").is_file()
    np.testing.assert_array_equal(np.load(out / f"scene{SCENE}_semseg.npy"),
                                  model.predict(pixels, "semseg"))
    assert (out / f"scene{SCENE}_panel.png").is_file()
    assert "semseg:" in stdout and "(task switch)" in stdout


def test_cli_real_accelerator_error_and_timeout(nano, tmp_path, capsys):
    """The simulated RTL's own error status and a too-short timeout: exit codes 4 and 5."""
    from firmware.cli import main
    from firmware.image import ModelImage

    _, image, path = nano
    bad = tmp_path / "badprog.m3vimg"
    ModelImage(image.fingerprint, image.meta, b"\xff" * 64, image.data).save(bad)
    pixels = np.zeros((3, *image.meta["model"]["img_size"]), np.uint8)
    np.save(tmp_path / "black.npy", pixels)
    common = ["--backend", "sim", "--sim", os.environ.get("M3VIT_FIRMWARE_SIM", "verilator"),
              "--task", "depth", "--out", str(tmp_path / "o"), "--no-progress",
              str(tmp_path / "black.npy")]
    code = main(["run", "--model", str(bad), *common])
    err = capsys.readouterr().err
    assert code == 4 and "accelerator error 3: malformed program" in err
    code = main(["run", "--model", str(path), "--timeout", "1e-5", *common])
    err = capsys.readouterr().err
    assert code == 5 and "did not finish within 1e-05 s of accelerator time" in err
