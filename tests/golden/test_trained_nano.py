"""The shipped ``nano`` checkpoint must clearly beat trivial predictors on held-out scenes."""

from golden.checkpoint import default_checkpoint, load_checkpoint, load_model
from golden.data import SceneDataset
from golden.eval import HELD_OUT_SEED, baseline_metrics, evaluate


def test_shipped_nano_beats_trivial_baselines_on_held_out_scenes():
    path = default_checkpoint("nano")
    model = load_model(path)
    images, targets = SceneDataset(200, HELD_OUT_SEED, model.cfg.img_size).tensors()
    metrics = evaluate(model, images, targets)
    base = baseline_metrics(model, targets, load_checkpoint(path)["train_stats"])
    assert metrics["semseg"]["mIoU"] > base["semseg"]["mIoU"] + 50, (metrics, base)
    assert metrics["semseg"]["pixel_acc"] > base["semseg"]["pixel_acc"] + 20, (metrics, base)
    assert metrics["depth"]["rmse"] < 0.5 * base["depth"]["rmse"], (metrics, base)
    assert metrics["depth"]["abs_rel"] < 0.5 * base["depth"]["abs_rel"], (metrics, base)


def test_shipped_checkpoint_records_how_it_was_made():
    ckpt = load_checkpoint(default_checkpoint("nano"))
    assert ckpt["command"].startswith("python -m golden.train")
    assert ckpt["steps"] > 0 and ckpt["train_seconds"] > 0
    assert "optimizer" not in ckpt, "the shipped checkpoint is weights only"
