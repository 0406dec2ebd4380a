import numpy as np
import pytest
import torch

from golden.config import SCENE_CLASSES
from golden.data import MAX_DEPTH, FolderDataset, SceneDataset, export_folder, render_scene


def test_scenes_are_deterministic_and_seed_dependent():
    a = render_scene(7, 3, (32, 64))
    b = render_scene(7, 3, (32, 64))
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    c = render_scene(8, 3, (32, 64))
    assert not np.array_equal(a[0], c[0])
    d = render_scene(7, 4, (32, 64))
    assert not np.array_equal(a[0], d[0])


@pytest.mark.parametrize("size", [(32, 64), (17, 23), (128, 256)])
def test_scene_contents_at_any_size(size):
    image, label, depth = render_scene(0, 1, size)
    assert image.shape == (3, *size) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    assert label.shape == size and label.min() >= 0 and label.max() < len(SCENE_CLASSES)
    assert depth.shape == size and depth.min() >= 0 and depth.max() <= MAX_DEPTH
    assert (depth[label == 0] == 0).all(), "sky has no depth"
    assert (depth[label >= 2] > 0).all(), "objects have depth"


def test_scene_statistics_cover_every_class():
    counts = np.zeros(len(SCENE_CLASSES), np.int64)
    for i in range(40):
        counts += np.bincount(render_scene(0, i)[1].ravel(), minlength=len(SCENE_CLASSES))
    assert (counts > 0).all(), counts


def test_depth_grows_towards_the_horizon_on_the_ground():
    _, label, depth = render_scene(0, 2, (64, 128))
    col = 5
    ground_rows = [r for r in range(64) if label[r, col] == 1]
    values = [depth[r, col] for r in ground_rows if depth[r, col] > 0]
    assert values == sorted(values, reverse=True), "ground is farther higher up in the image"


def test_dataset_items_and_tensors_agree():
    ds = SceneDataset(5, 3, (32, 64))
    images, targets = ds.tensors()
    image, t = ds[4]
    assert torch.equal(images[4], image)
    assert torch.equal(targets["semseg"][4], t["semseg"])
    assert torch.equal(targets["depth"][4], t["depth"])
    with pytest.raises(IndexError):
        ds[5]


def test_folder_round_trip(tmp_path):
    ds = SceneDataset(3, 11, (32, 64))
    export_folder(ds, tmp_path)
    folder = FolderDataset(tmp_path)
    assert len(folder) == 3
    for i in range(3):
        (img_a, tgt_a), (img_b, tgt_b) = ds[i], folder[i]
        assert torch.allclose(img_a, img_b, atol=0.5 / 255 + 1e-6)
        assert torch.equal(tgt_a["semseg"], tgt_b["semseg"])
        assert torch.allclose(tgt_a["depth"], tgt_b["depth"], atol=0.0005 + 1e-6)
    resized = FolderDataset(tmp_path, size=(16, 32))[0]
    assert resized[0].shape == (3, 16, 32) and resized[1]["semseg"].shape == (16, 32)


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'images/' folder"):
        FolderDataset(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png/.jpg images"):
        FolderDataset(tmp_path)
