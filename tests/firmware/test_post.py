"""Post-processing: upsampling, argmax ties, maps, pictures and input loading."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from firmware.errors import EXIT_USAGE, UsageError
from firmware.post import (argmax_lowest, colorize, load_image, save_outputs, save_panel, task_map,
                           task_spec, upsample)
from golden.quant import ops
from golden.visualize import PALETTE

SEG = {"name": "semseg", "kind": "segmentation", "channels": 3, "out_scale": 1.0}
DEPTH = {"name": "depth", "kind": "regression", "channels": 1, "out_scale": 0.01}


def test_upsample_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.integers(-500, 500, (3, 5, 7)).astype(np.int16)
    t = torch.from_numpy(x.astype(np.float32))[None]
    for size in [(10, 14), (16, 9), (3, 4), (5, 7)]:
        got = upsample(x, size, "bilinear")
        want = F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
        near = upsample(x, size, "nearest")
        np.testing.assert_array_equal(near, F.interpolate(t, size=size, mode="nearest")[0]
                                      .numpy().astype(np.int16))
        assert near.dtype == np.int16
    assert upsample(x, (5, 7)) is x
    with pytest.raises(ValueError, match="mode must be"):
        upsample(x, (10, 14), "cubic")


def test_argmax_lowest_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, (6, 20, 30)).astype(np.int16)     # many ties
    np.testing.assert_array_equal(argmax_lowest(x), ops.argmax_lowest(x, axis=0))
    assert argmax_lowest(np.array([[5], [5], [1]]))[0] == 0


def test_task_maps():
    out = np.zeros((3, 2, 2), np.int16)
    out[2, 0, 0] = 7
    out[1, 1, 1] = 7
    out[2, 1, 1] = 7                                          # tie: class 1 wins
    labels = task_map(out, SEG)
    np.testing.assert_array_equal(labels, [[2, 0], [0, 1]])
    assert task_map(out, SEG, (4, 4)).shape == (4, 4)
    assert task_map(out, SEG, (4, 4), "bilinear").shape == (4, 4)
    depth = task_map(np.full((1, 2, 2), 300, np.int16), DEPTH, (4, 4))
    assert depth.shape == (4, 4) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 3.0)
    normals = task_map(np.ones((3, 2, 2), np.int16), {"kind": "regression", "out_scale": 0.5})
    assert normals.shape == (3, 2, 2)
    assert task_spec({"tasks": [SEG, DEPTH]}, "depth") is DEPTH
    with pytest.raises(UsageError, match="unknown task 'x'"):
        task_spec({"tasks": [SEG]}, "x")


def test_colorize():
    labels = np.array([[0, 1], [2, 5]])
    np.testing.assert_array_equal(colorize(SEG, labels), PALETTE[labels])
    depth = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    pic = colorize(DEPTH, depth)
    assert pic.shape == (2, 2, 3) and pic.dtype == np.uint8
    assert (pic[0, 0] == 0).all()                              # invalid depth is black
    normals = colorize({"kind": "regression"}, np.stack([np.ones((2, 2))] * 3))
    assert normals.shape == (2, 2, 3)


def test_save_outputs_and_panel(tmp_path):
    rng = np.random.default_rng(2)
    seg = rng.integers(-100, 100, (3, 8, 16)).astype(np.int16)
    paths = save_outputs(tmp_path, "img", SEG, seg, size=(16, 32))
    np.testing.assert_array_equal(np.load(paths["raw"]), seg)
    labels = np.load(paths["map"])
    assert labels.dtype == np.uint8 and labels.shape == (16, 32)
    np.testing.assert_array_equal(labels[::2, ::2], argmax_lowest(seg))
    assert Image.open(paths["png"]).size == (32, 16)
    d = save_outputs(tmp_path, "img", DEPTH, rng.integers(0, 900, (1, 8, 16)).astype(np.int16))
    assert np.load(d["map"]).dtype == np.float32
    pixels = rng.integers(0, 256, (3, 8, 16), dtype=np.uint8)
    panel = save_panel(tmp_path / "panel.png", pixels, [("semseg", paths["picture"]),
                                                        ("depth", d["picture"])], scale=2)
    w, h = Image.open(panel).size
    assert w == 3 * 32 + 2 * 4 and h == 16 + 14


def test_load_image(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", (8, 16)), rgb.transpose(2, 0, 1))
    np.save(tmp_path / "a.npy", rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(load_image(tmp_path / "a.npy", (8, 16)), rgb.transpose(2, 0, 1))
    with pytest.raises(UsageError, match=r"a.png is 16x8 \(WxH\); the model takes 32x16: pass "
                                         r"--resize") as e:
        load_image(tmp_path / "a.png", (16, 32))
    assert e.value.exit_code == EXIT_USAGE
    assert load_image(tmp_path / "a.png", (16, 32), resize=True).shape == (3, 16, 32)
    assert load_image(tmp_path / "a.npy", (16, 32), resize=True).shape == (3, 16, 32)
    with pytest.raises(UsageError, match="does not exist"):
        load_image(tmp_path / "missing.png", (8, 16))
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    with pytest.raises(UsageError, match="cannot read image"):
        load_image(tmp_path / "junk.png", (8, 16))
    np.save(tmp_path / "hwc.npy", rgb)
    with pytest.raises(UsageError, match="expected a uint8 array 3 x H x W, got shape 8x16x3"):
        load_image(tmp_path / "hwc.npy", (8, 16))
    np.save(tmp_path / "f.npy", rgb.transpose(2, 0, 1) / 255.0)
    with pytest.raises(UsageError, match="expected uint8 pixels"):
        load_image(tmp_path / "f.npy", (8, 16))
