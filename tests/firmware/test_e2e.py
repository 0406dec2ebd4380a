"""End to end: the CLI (``demo``, the README's main command) runs the compiled ``nano`` model on
the simulated accelerator (Verilator) for both tasks on a generated scene, and the outputs equal
the integer reference's bit for bit; the real RTL's error status and a timeout give exit codes.
"""

import os

import numpy as np
import pytest

SCENE = 0


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    from firmware.compiler import compile_model
    from rtl.config import NANO
    from rtl.sim.models import int_model_for
    model = int_model_for("nano")
    image = compile_model(model, NANO).image
    path = tmp_path_factory.mktemp("nano") / "nano.m3vimg"
    image.save(path)
    return model, image, path


def test_cli_nano_two_tasks_equal_integer_reference(nano, tmp_path, capsys):
    """The README's main command, ``python -m firmware demo``, bit for bit."""
    from firmware.cli import main
    from golden.data import render_scene
    from golden.eval import HELD_OUT_SEED
    from golden.quant.ptq import pixels_from_image

    model, _, _ = nano
    out = tmp_path / "out"
    argv = ["demo", "--sim", os.environ.get("M3VIT_FIRMWARE_SIM", "verilator"),
            "--scene", str(SCENE), "--out", str(out), "--no-progress"]
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
