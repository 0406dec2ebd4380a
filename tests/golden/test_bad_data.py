"""Data folders that do not match the documented format are refused; empty metrics say "n/a".

Folder format (README "Your own data"): images/NAME.png|jpg, semseg/NAME.png (8-bit class ids, L or
P mode, 255 = ignore), depth/NAME.png (16-bit millimetres, I;16, 0 = invalid).
"""

import json
import math
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from golden import eval as golden_eval, train
from golden.data import MAX_PICTURE_SIDE, FolderDataset
from golden.metrics import RegressionMeter, SegmentationMeter

W, H = 16, 8  # tiny pictures; the loader resizes them to the model's input size


def _image(rng, w=W, h=H):
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _semseg(rng, w=W, h=H, classes=6):
    ids = rng.integers(0, classes, (h, w), dtype=np.uint8)
    ids[0, 0] = 255
    return Image.fromarray(ids)  # mode L


def _depth(rng, w=W, h=H):
    mm = rng.integers(500, 20000, (h, w)).astype(np.uint16)
    mm[0, :3] = 0
    return Image.fromarray(mm)  # mode I;16


def make_folder(root, names=("a", "b"), semseg=True, depth=True, seed=0):
    """A valid folder: images, 8-bit semseg and 16-bit depth of the same size."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "semseg", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        _image(rng).save(root / "images" / f"{name}.png")
        if semseg:
            _semseg(rng).save(root / "semseg" / f"{name}.png")
        if depth:
            _depth(rng).save(root / "depth" / f"{name}.png")
    return root


def run_eval(capsys, *args):
    rc = golden_eval.main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_refused(rc, out, err, *parts):
    assert rc == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def png_with_header_size(path, width, height):
    """A real 1x1 grey PNG whose IHDR claims width x height (CRC fixed): tiny on disk."""
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


# --- a correct folder ---------------------------------------------------------------------------

def test_correct_folder_evaluates_with_coverage(tmp_path, capsys):
    folder = make_folder(tmp_path, names=("a", "b", "c"))
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert rc == 0, err
    assert "n/a" not in out
    assert "semseg (mIoU, pixel_acc): 3 of 3 scenes" in out
    assert "depth (rmse, abs_rel): 3 of 3 scenes" in out
    assert "valid pixels" in out
    rc, out, _ = run_eval(capsys, "--data", str(folder), "--json")
    result = json.loads(out)
    assert result["coverage"]["semseg"]["scenes"] == 3
    # nano's input is 64x32 (WxH): the one 255 pixel of a 16x8 label becomes a 4x4 block
    assert result["coverage"]["semseg"]["pixels"] == 3 * (32 * 64 - 16)
    assert result["metrics"]["depth"]["rmse"] > 0


def test_palette_semseg_uses_the_index_as_class_id(tmp_path, capsys):
    folder = make_folder(tmp_path, names=("a",))
    ids = np.asarray(Image.open(folder / "semseg" / "a.png"))
    pal = Image.fromarray(ids, mode="L").convert("P")  # palette identity on the grey levels
    pal.putpalette([255 - v for v in range(256)] * 3)  # colours are not the ids: ignored
    pal.save(folder / "semseg" / "a.png")
    assert Image.open(folder / "semseg" / "a.png").mode == "P"
    loaded = FolderDataset(folder, classes=6)[0][1]["semseg"]
    assert torch.equal(loaded, torch.from_numpy(ids.astype(np.int64)))
    rc, _, err = run_eval(capsys, "--data", str(folder))
    assert rc == 0, err


# --- label formats ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_depth_that_is_not_16_bit_is_refused(tmp_path, capsys, mode):
    folder = make_folder(tmp_path)
    bad = folder / "depth" / "b.png"
    Image.new(mode, (W, H), 10).save(bad)
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), f"mode {mode}", "16-bit grey", "I;16")


@pytest.mark.parametrize("mode,array", [("I;16", np.full((H, W), 3, np.uint16)),
                                        ("RGB", np.full((H, W, 3), 3, np.uint8))])
def test_semseg_that_is_not_8_bit_single_channel_is_refused(tmp_path, capsys, mode, array):
    folder = make_folder(tmp_path)
    bad = folder / "semseg" / "a.png"
    Image.fromarray(array).save(bad)
    assert Image.open(bad).mode == mode
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), f"mode {mode}", "8-bit single-channel", "L", "P")


def test_jpeg_labels_are_refused(tmp_path, capsys):
    folder = make_folder(tmp_path)
    (folder / "semseg" / "a.png").unlink()
    bad = folder / "semseg" / "a.jpg"
    Image.new("L", (W, H), 1).save(bad)
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), "PNG")
    # a JPEG file named .png is refused too
    Image.new("L", (W, H), 1).save(folder / "semseg" / "a.png", format="JPEG")
    bad.unlink()
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, "a.png", "JPEG", "PNG")


def test_class_id_above_the_models_classes_is_refused(tmp_path, capsys):
    folder = make_folder(tmp_path)
    bad = folder / "semseg" / "b.png"
    ids = np.asarray(Image.open(bad)).copy()
    ids[2, 3], ids[4, 5] = 9, 7
    Image.fromarray(ids).save(bad)
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), "class id 9", "6 classes", "0..5")


def test_unreadable_and_truncated_pictures_are_refused(tmp_path, capsys):
    folder = make_folder(tmp_path)
    bad = folder / "depth" / "a.png"
    bad.write_bytes(b"not a picture at all")
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), "not a readable picture")
    make_folder(folder)  # repair
    img = folder / "images" / "b.png"
    img.write_bytes(img.read_bytes()[:60])  # header intact, pixel data cut
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(img), "cannot decode")


# --- sizes --------------------------------------------------------------------------------------

def test_label_of_another_size_is_refused_unless_resize_labels(tmp_path, capsys):
    folder = make_folder(tmp_path)
    bad = folder / "depth" / "a.png"
    _depth(np.random.default_rng(1), w=W * 2, h=H * 2).save(bad)
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert_refused(rc, out, err, str(bad), f"{2 * W}x{2 * H}", f"{W}x{H}", "--resize-labels")
    rc, out, err = run_eval(capsys, "--data", str(folder), "--resize-labels")
    assert rc == 0, err
    assert "resized 1 label file(s)" in out and str(bad) in out
    rc, out, err = run_eval(capsys, "--data", str(folder), "--resize-labels", "--json")
    assert rc == 0 and "resized 1 label file(s)" in err
    json.loads(out)


def test_resize_labels_needs_a_folder(capsys):
    rc, out, err = run_eval(capsys, "--resize-labels", "--scenes", "2")
    assert_refused(rc, out, err, "--resize-labels", "--data")
    assert train.main(["--resize-labels"]) == 2
    assert "--data" in capsys.readouterr().err


def test_resized_labels_are_nearest_neighbour(tmp_path):
    folder = make_folder(tmp_path, names=("a",))
    ids = np.arange(4, dtype=np.uint8).reshape(2, 2)  # 2x2 ids for a 16x8 image
    Image.fromarray(ids).save(folder / "semseg" / "a.png")
    label = FolderDataset(folder, resize_labels=True)[0][1]["semseg"].numpy()
    assert label.shape == (H, W)
    assert set(np.unique(label)) == {0, 1, 2, 3}
    assert (label[: H // 2, : W // 2] == 0).all() and (label[H // 2 :, W // 2 :] == 3).all()


@pytest.mark.parametrize("sub,width,height", [
    ("images", 20000, 20000),          # beyond Pillow's own bomb limit
    ("depth", 20000, 20000),
    ("images", MAX_PICTURE_SIDE + 1, 1),  # beyond our limit only
    ("semseg", 1, MAX_PICTURE_SIDE + 1),
])
def test_huge_picture_header_is_refused_before_decoding(tmp_path, capsys, sub, width, height):
    folder = make_folder(tmp_path)
    bad = png_with_header_size(folder / sub / "a.png", width, height)
    assert bad.stat().st_size < 100
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        rc, out, err = run_eval(capsys, "--data", str(folder))
    line = assert_refused(rc, out, err, str(bad), str(MAX_PICTURE_SIDE))
    assert "cannot decode" not in line  # refused from the header, nothing was decoded
    if width * height < 2 * Image.MAX_IMAGE_PIXELS:
        assert f"{width}x{height}" in line


# --- missing labels and empty metrics ------------------------------------------------------------

def test_folder_without_labels_reports_na_with_an_explanation(tmp_path, capsys):
    folder = make_folder(tmp_path, semseg=False, depth=False)
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert rc == 0, err
    assert "| depth | rmse | n/a |" in out and "| semseg | mIoU | n/a |" in out
    assert "0.000" not in out
    assert ("depth: no valid pixels in any of the 2 scenes (no depth/ label files): "
            "rmse, abs_rel undefined (n/a)") in out
    assert "semseg: no valid pixels in any of the 2 scenes (no semseg/ label files)" in out
    rc, out, _ = run_eval(capsys, "--data", str(folder), "--json")
    result = json.loads(out)  # strict JSON: undefined is null, not NaN
    assert result["metrics"]["depth"] == {"rmse": None, "abs_rel": None}
    assert result["coverage"]["depth"]["pixels"] == 0
    assert "undefined" in result["coverage"]["depth"]["note"]


def test_labels_with_no_valid_pixel_and_partial_labels(tmp_path, capsys):
    folder = make_folder(tmp_path, names=("a", "b", "c"))
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((H, W), np.uint16)).save(folder / "depth" / f"{name}.png")
    (folder / "semseg" / "c.png").unlink()
    rc, out, err = run_eval(capsys, "--data", str(folder))
    assert rc == 0, err
    assert "| depth | rmse | n/a |" in out
    assert "its 3 depth/ file(s) hold only 0 = invalid" in out
    assert "semseg (mIoU, pixel_acc): 2 of 3 scenes" in out
    assert "1 scene(s) without a valid semseg pixel not counted" in out


def test_meters_without_valid_pixels_are_undefined_not_perfect():
    m = RegressionMeter()
    m.update(torch.ones(2, 4, 4), torch.zeros(2, 4, 4))
    assert all(math.isnan(v) for v in m.summary().values())
    assert m.coverage() == {"images": 2, "scenes": 0, "pixels": 0}
    s = SegmentationMeter(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        s.update(torch.zeros(2, 4, 4, dtype=torch.long), torch.full((2, 4, 4), 255))
        assert all(math.isnan(v) for v in s.summary().values())
    target = torch.full((2, 4, 4), 255)
    target[1, 0, :2] = 1
    s.update(torch.ones(2, 4, 4, dtype=torch.long), target)
    assert s.coverage() == {"images": 4, "scenes": 1, "pixels": 2}
    assert s.summary()["pixel_acc"] == 100.0


# --- train shares the loader ---------------------------------------------------------------------

def _train_args(folder, tmp_path, *extra):
    return ["--data", str(folder), "--out", str(tmp_path / "run.pt"), "--steps", "1",
            "--batch-size", "2", "--save-every", "1", "--eval-scenes", "0", *extra]


def test_train_refuses_bad_folders(tmp_path, capsys):
    folder = make_folder(tmp_path / "d")
    bad = folder / "depth" / "a.png"
    Image.new("L", (W, H), 10).save(bad)
    rc = train.main(_train_args(folder, tmp_path))
    cap = capsys.readouterr()
    assert_refused(rc, cap.out, cap.err, str(bad), "mode L", "I;16")
    unlabelled = make_folder(tmp_path / "u", semseg=False)
    rc = train.main(_train_args(unlabelled, tmp_path))
    cap = capsys.readouterr()
    assert_refused(rc, cap.out, cap.err, "no valid semseg pixels", "no semseg/ label files")
    assert not (tmp_path / "run.pt").exists()


def test_train_resizes_labels_on_request(tmp_path, capsys):
    folder = make_folder(tmp_path / "d")
    _semseg(np.random.default_rng(2), w=W // 2, h=H // 2).save(folder / "semseg" / "b.png")
    rc = train.main(_train_args(folder, tmp_path))
    cap = capsys.readouterr()
    assert_refused(rc, cap.out, cap.err, "b.png", "--resize-labels")
    assert train.main(_train_args(folder, tmp_path, "--resize-labels")) == 0
    assert "resized 1 label file(s)" in capsys.readouterr().out
    assert (tmp_path / "run.pt").exists()
