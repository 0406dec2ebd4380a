"""``python -m firmware``: every bad input gives a clear message and its documented exit code;
the commands work end to end over the fake simulated accelerator."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import firmware.backends.sim as simmod
from firmware import layout
from firmware.cli import main
from firmware.errors import EXIT_CODES

from .fakes import FAKE_CFG, FakeAcceleratorSim, make_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def files(tmp_path):
    img = make_image()
    img.save(tmp_path / "model.m3vimg")
    pix = np.random.default_rng(7).integers(0, 256, (3, 8, 16), dtype=np.uint8)
    np.save(tmp_path / "frame.npy", pix)
    return tmp_path, img, pix


@pytest.fixture
def fake_sim(monkeypatch):
    """Make ``--backend sim`` build a :class:`FakeAcceleratorSim`; returns its settings/log."""
    state = {"kw": {}, "made": []}

    def factory(cfg, *, backend, ddr_base, ddr_bytes):
        sim = FakeAcceleratorSim(cfg, ddr_base=ddr_base, ddr_bytes=ddr_bytes, output_bytes=768,
                                 frame_cycles=200, **state["kw"])
        state["made"].append(sim)
        return sim

    monkeypatch.setattr(simmod, "_default_factory", factory)
    return state


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_exit_codes(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for k, text in EXIT_CODES.items():
        assert f"  {k}  {text}" in out
    code, out, _ = run(capsys, "run", "--help")
    assert code == 0 and "--task" in out and "--resize" in out and "exit codes" in out


def test_usage_errors(capsys, files, fake_sim):
    d, _, _ = files
    assert run(capsys, "run", "--backend", "sim", str(d / "frame.npy"))[0] == 2   # no --task
    code, _, err = run(capsys, "run", "--backend", "sim", "--task", "semseg",
                       str(d / "frame.npy"))
    assert code == 2 and "pass --model MODEL_IMAGE" in err
    code, _, err = run(capsys, "info", "--backend", "sim", "--accel", "huge")
    assert code == 2 and "unknown accelerator config 'huge'" in err
    assert fake_sim["made"] == []


def test_missing_model_image(capsys, files, fake_sim):
    d, _, _ = files
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "nope.m3vimg"),
                       "--task", "semseg", str(d / "frame.npy"))
    assert code == 2 and f"error: model image {d / 'nope.m3vimg'} does not exist" in err


@pytest.mark.parametrize("damage,msg", [
    (lambda b: b[:-10], "truncated: expected"),
    (lambda b: b[:5000] + bytes([b[5000] ^ 1]) + b[5001:], "payload checksum mismatch"),
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "header checksum mismatch"),
    (lambda b: b"GARBAGE!" + b[8:], "bad magic"),
])
def test_corrupt_model_image(capsys, files, fake_sim, damage, msg):
    d, _, _ = files
    bad = d / "bad.m3vimg"
    bad.write_bytes(damage((d / "model.m3vimg").read_bytes()))
    for cmd in (["load", str(bad)], ["run", "--model", str(bad), "--task", "semseg",
                                     str(d / "frame.npy")]):
        code, _, err = run(capsys, *cmd, "--backend", "sim")
        assert code == 3 and msg in err and str(bad) in err
    assert fake_sim["made"] == []


def test_wrong_model_image(capsys, files, fake_sim):
    d, _, _ = files
    other = make_image(fingerprint=0xABCDEF01)
    other.save(d / "other.m3vimg")
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "other.m3vimg"),
                       "--task", "depth", str(d / "frame.npy"))
    assert code == 3
    assert (f"image built for accelerator config fingerprint 0xabcdef01, this accelerator "
            f"reports {FAKE_CFG.fingerprint():#010x}") in err
    # the same refusal with the accelerator config named explicitly
    code, _, err = run(capsys, "load", "--backend", "sim", "--accel", "small-test",
                       str(d / "other.m3vimg"))
    assert code == 3 and "fingerprint 0xabcdef01" in err


def test_unknown_task(capsys, files, fake_sim):
    d, _, _ = files
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                       "--task", "semseg,normals", str(d / "frame.npy"))
    assert code == 2 and "unknown task 'normals': the model has tasks semseg, depth" in err
    assert fake_sim["made"] == []                     # refused before building a simulator


def test_bad_inputs(capsys, files, fake_sim, tmp_path):
    d, _, pix = files
    model = str(d / "model.m3vimg")
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", model, "--task", "depth",
                       str(d / "missing.png"))
    assert code == 2 and "input image" in err and "does not exist" in err
    np.save(d / "big.npy", np.zeros((3, 16, 32), np.uint8))
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", model, "--task", "depth",
                       str(d / "big.npy"))
    assert code == 2 and "the model takes 16x8: pass --resize" in err
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", model, "--task", "depth")
    assert code == 2 and "no input" in err


def test_run_writes_outputs(capsys, files, fake_sim):
    d, img, pix = files
    out = d / "out"
    code, stdout, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                            "--task", "all", "--out", str(out), "--output-size", "16x32",
                            "--json", str(d / "frame.npy"))
    assert code == 0, err
    sim = fake_sim["made"][0]
    for task in ("semseg", "depth"):
        raw = np.load(out / f"frame_{task}_raw.npy")
        assert raw.dtype == np.int16 and raw.shape[1:] == (8, 16)
        assert np.load(out / f"frame_{task}.npy").shape == (16, 32)
        assert (out / f"frame_{task}.png").is_file()
    # the last frame's output is what the accelerator left in DDR, decoded
    outaddr = sim._addr("OUTPUT_BASE")
    n = layout.output_bytes(img.meta, "depth")
    np.testing.assert_array_equal(np.load(out / "frame_depth_raw.npy"),
                                  layout.decode_output(img.meta, "depth",
                                                       sim.read_mem(outaddr, n)))
    assert (out / "frame_panel.png").is_file()
    assert "semseg: 200 cycles" in stdout and "(task switch)" in stdout
    report = json.loads(stdout[stdout.index("{"):])
    assert report["tasks"]["depth"]["busy_cycles"] == [200]
    assert report["switch"]["switches"] == 1


def test_accelerator_error_status(capsys, files, fake_sim):
    d, _, _ = files
    fake_sim["kw"] = {"behaviour": "error", "error_code": 5}
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                       "--task", "depth", "--out", str(d / "o"), str(d / "frame.npy"))
    assert code == 4
    assert "accelerator error 5: TASK_ID is not a task of the loaded program" in err


@pytest.mark.parametrize("completion", ["irq", "poll"])
def test_timeout(capsys, files, fake_sim, completion):
    d, _, _ = files
    fake_sim["kw"] = {"behaviour": "hang"}
    code, _, err = run(capsys, "bench", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                       "--timeout", "1e-5", "--completion", completion)
    assert code == 5 and "did not finish within 1e-05 s of accelerator time" in err


def test_info_load_bench(capsys, files, fake_sim):
    d, _, _ = files
    code, out, _ = run(capsys, "info", "--backend", "sim", "--model", str(d / "model.m3vimg"))
    assert code == 0 and f"fingerprint {FAKE_CFG.fingerprint():#010x}" in out
    assert "config small-test" in out and "PERF_BUSY_CYCLES" in out
    code, out, _ = run(capsys, "info", "--backend", "sim", "--accel", "small-test", "--json")
    assert code == 0 and json.loads(out)["config_name"] == "small-test"
    code, out, _ = run(capsys, "load", "--backend", "sim", str(d / "model.m3vimg"))
    assert code == 0 and "3 instructions" in out and "pass --model" in out
    code, out, _ = run(capsys, "bench", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                       "--frames", "2")
    assert code == 0
    assert "overhead +0.0 cycles (1 switches, 2 repeats)" in out
    assert "semseg" in out and "PERF_BUSY_CYCLES" in out
    code, out, _ = run(capsys, "bench", "--backend", "sim", "--model", str(d / "model.m3vimg"),
                       "--frames", "1", "--task", "depth", "--json")
    assert code == 0 and json.loads(out)["tasks"]["depth"]["frames"] == 1


def test_process_exit_code(files):
    d, _, _ = files
    bad = d / "bad.m3vimg"
    bad.write_bytes(b"M3VITIMG" + bytes(100))
    r = subprocess.run([sys.executable, "-m", "firmware", "load", "--backend", "sim", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "error:" in r.stderr and "unsupported image version 0" in r.stderr


def test_board_load_persists(capsys, files, monkeypatch):
    """``load`` on a board with persistent memory, then ``run`` in another "process" without
    --model: the state file leads the driver back to the model (board stand-in: the fake
    accelerator behind a backend that keeps its memory)."""
    import firmware.backends as backends
    from firmware.backends import Buffer
    from firmware.backends.sim import SimBackend

    d, _, _ = files
    fake = FakeAcceleratorSim(FAKE_CFG, ddr_bytes=1 << 20, output_bytes=768, frame_cycles=100)

    class Board(SimBackend):
        persistent = True

        def buffer_at(self, addr, size):
            return Buffer(self, addr, size)

    def open_backend(name, **kw):
        assert name == "board"
        return Board(FAKE_CFG, sim=fake, ddr_base=fake.ddr_base, ddr_bytes=len(fake.mem))

    monkeypatch.setattr(backends, "open_backend", open_backend)
    state = d / "state.json"
    code, _, err = run(capsys, "run", "--backend", "board", "--state", str(state), "--task",
                       "depth", str(d / "frame.npy"))
    assert code == 2 and "run 'python -m firmware load MODEL_IMAGE' first" in err
    code, out, err = run(capsys, "load", "--backend", "board", "--state", str(state),
                         str(d / "model.m3vimg"))
    assert code == 0 and "stays loaded" in out and state.is_file()
    code, out, err = run(capsys, "run", "--backend", "board", "--state", str(state), "--task",
                         "depth", "--out", str(d / "o"), str(d / "frame.npy"))
    assert code == 0, err
    assert "using the model loaded from" in err and (d / "o" / "frame_depth.png").is_file()
    fake.val["PROGRAM_BASE_LO"] += 4096                # someone else reprogrammed it
    code, _, err = run(capsys, "bench", "--backend", "board", "--state", str(state))
    assert code == 4 and "do not point at the model" in err


def test_board_side_imports_no_torch_or_amaranth():
    """What runs on the board imports neither torch nor amaranth (nor matplotlib, tqdm), and of
    golden only the numpy-only integer ops (the input patch layout is defined there), the
    standard-library argument types every CLI shares and the Pillow-only picture-header reader."""
    code = ("import sys, firmware.cli, firmware.driver, firmware.scheduler, firmware.post, "
            "firmware.image, firmware.layout, firmware.addrmap, firmware.backends.board, "
            "firmware.backends.sim\n"
            "bad = [m for m in ('torch', 'amaranth', 'matplotlib', 'tqdm') if m in sys.modules]\n"
            "bad += [m for m in sys.modules if m.startswith('golden') and "
            "m not in ('golden', 'golden.argtypes', 'golden.pictures', 'golden.quant', "
            "'golden.quant.ops')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sim_timeout_default():
    import argparse

    from firmware.cli import SIM_TIMEOUT_MIN_CYCLES, _timeout
    from rtl.config import NANO

    args = argparse.Namespace(timeout=None, backend="sim")
    img = make_image()
    img.meta["macs"] = [16_000_000, -1, 0]
    img.meta["array"] = {"rows": 4, "cols": 4}
    assert _timeout(args, img, NANO) == pytest.approx(20 * 1_000_000 / 100e6)
    img.meta["macs"] = [16]
    assert _timeout(args, img, NANO) == pytest.approx(SIM_TIMEOUT_MIN_CYCLES / 100e6)
    del img.meta["macs"]
    assert _timeout(args, img, NANO) == 0.2
    assert _timeout(argparse.Namespace(timeout=None, backend="board"), img, NANO) == 10.0


def test_image_without_layout(capsys, files, fake_sim):
    from firmware.image import ModelImage
    d, _, _ = files
    ModelImage(FAKE_CFG.fingerprint(), {"tasks": [{"name": "a"}], "accel": FAKE_CFG.to_dict()},
               bytes(32)).save(d / "nolayout.m3vimg")
    code, _, err = run(capsys, "run", "--backend", "sim", "--model", str(d / "nolayout.m3vimg"),
                       "--task", "a", str(d / "frame.npy"))
    assert code == 3 and "meta['array'] is missing" in err  # refused at load, by the schema


def test_scene_panels_put_each_tasks_ground_truth_after_its_prediction():
    """--scene inputs: the panel row is input | semseg | semseg truth | depth | depth truth."""
    import argparse

    from firmware import cli
    from firmware.post import colorize
    meta = {"tasks": [{"name": "semseg", "kind": "segmentation", "channels": 6},
                      {"name": "depth", "kind": "regression", "channels": 1}]}
    size = (32, 64)
    pixels = cli.scene_pixels(3, size)
    inputs = [("photo", pixels, None), ("scene3", pixels, None)]
    pred = np.zeros((*size, 3), np.uint8)
    pictures = {"photo": [("semseg", pred)], "scene3": [("semseg", pred), ("depth", pred)]}
    cli._add_truth(argparse.Namespace(scene=[3]), inputs, meta, ["semseg", "depth"], pictures)
    assert [t for t, _ in pictures["photo"]] == ["semseg"]  # a file input has no ground truth
    assert [t for t, _ in pictures["scene3"]] == ["semseg", "semseg truth", "depth", "depth truth"]
    truth = cli.scene_truth(3, size)
    assert np.array_equal(pictures["scene3"][1][1], colorize(meta["tasks"][0], truth["semseg"]))
    assert np.array_equal(pictures["scene3"][3][1], colorize(meta["tasks"][1], truth["depth"]))
