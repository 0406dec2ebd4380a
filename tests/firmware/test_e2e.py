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
    meta = {k: v for k, v in image.meta.items() if k not in ("macs", "listing")}  # 2 instrs
    ModelImage(image.fingerprint, meta, b"\xff" * 64, image.data).save(bad)
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


def test_original_checkpoint_with_upheads_runs_end_to_end(tmp_path, capsys):
    """An original-layout checkpoint (per-rank directory) → ``golden.checkpoint import`` →
    integer model → image; the backbone and the up-head's LayerNorm run on the simulated
    accelerator bit-exact, the up-head's convolutions on the PS (``--uphead``) give the integer
    reference's predictions exactly."""
    import torch

    from firmware.cli import main
    from firmware.compiler import compile_model
    from golden.checkpoint import main as checkpoint_main
    from golden.config import get_config
    from golden.model import M3ViT
    from golden.quant.ptq import quantize_model
    from rtl.config import NANO

    torch.manual_seed(5)
    cfg = get_config("nano", head_type="uphead")
    source = M3ViT(cfg).eval()
    sd = {"module." + k: v for k, v in source.state_dict().items()}
    ckpt_dir = tmp_path / "best_model.pth.tar"
    ckpt_dir.mkdir()
    half = cfg.experts // 2
    for r in range(2):
        shard = {k: (v[r * half:(r + 1) * half] if ".mlp.experts." in k else v)
                 for k, v in sd.items() if r == 0 or ".mlp.experts." in k}
        torch.save({"epoch": 1, "state_dict": shard, "optimizer": {}}, ckpt_dir / f"{r}.pth")
    ours = tmp_path / "ours.pt"
    assert checkpoint_main(["import", str(ckpt_dir), "--config", "nano", "--out", str(ours)]) == 0
    capsys.readouterr()

    int_model = quantize_model(source, torch.rand(4, 3, *cfg.img_size))
    image_path = tmp_path / "up.m3vimg"
    compile_model(int_model, NANO).image.save(image_path)
    pixels = np.random.default_rng(2).integers(0, 256, (3, *cfg.img_size), dtype=np.uint8)
    np.save(tmp_path / "frame.npy", pixels)
    common = ["run", "--backend", "sim", "--sim", os.environ.get("M3VIT_FIRMWARE_SIM", "verilator"),
              "--model", str(image_path), "--task", "all", "--out", str(tmp_path / "o"),
              "--no-progress", "--no-panel", str(tmp_path / "frame.npy")]
    assert main(common) == 2
    assert "--uphead CHECKPOINT" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.manual_seed(6)
    from golden.checkpoint import save_checkpoint
    save_checkpoint(other, M3ViT(cfg))
    assert main([*common, "--uphead", str(other)]) == 2   # not the head the image was built with
    assert "not the one this model image was compiled with" in capsys.readouterr().err
    code = main([*common, "--uphead", str(ours)])
    assert code == 0, capsys.readouterr().err
    for task in cfg.task_names:
        raw = np.load(tmp_path / "o" / f"frame_{task}_raw.npy")
        np.testing.assert_array_equal(raw, int_model.infer(pixels, task), err_msg=task)
        np.testing.assert_array_equal(np.load(tmp_path / "o" / f"frame_{task}.npy"),
                                      int_model.predict(pixels, task), err_msg=task)
