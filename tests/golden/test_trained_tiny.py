"""The shipped ``tiny`` checkpoint: beats trivial predictors on held-out scenes, its integer model
stays within the fidelity targets, and the file says how it was made."""

import pytest

from golden.checkpoint import default_checkpoint, load_checkpoint, load_model
from golden.data import SceneDataset
from golden.eval import HELD_OUT_SEED, TRAIN_SEED, baseline_metrics, evaluate, expert_loads
from golden.quant.compare import compare
from golden.quant.ptq import quantize_model

MAX_BYTES = 40 << 20  # the size cap for a shipped checkpoint


@pytest.fixture(scope="module")
def tiny():
    return load_model(default_checkpoint("tiny"))


@pytest.fixture(scope="module")
def held_out(tiny):
    return SceneDataset(60, HELD_OUT_SEED, tiny.cfg.img_size).tensors()


def test_shipped_tiny_beats_trivial_baselines_on_held_out_scenes(tiny, held_out):
    images, targets = held_out
    metrics = evaluate(tiny, images, targets)
    base = baseline_metrics(tiny, targets, load_checkpoint(default_checkpoint("tiny"))["train_stats"])
    assert metrics["semseg"]["mIoU"] > base["semseg"]["mIoU"] + 50, (metrics, base)
    assert metrics["semseg"]["pixel_acc"] > base["semseg"]["pixel_acc"] + 20, (metrics, base)
    assert metrics["depth"]["rmse"] < 0.5 * base["depth"]["rmse"], (metrics, base)
    assert metrics["depth"]["abs_rel"] < 0.5 * base["depth"]["abs_rel"], (metrics, base)


def test_shipped_tiny_routes_over_many_experts(tiny, held_out):
    """The balancing loss kept experts in use: every MoE layer feeds several experts per frame
    (random weights send almost every token to one or two)."""
    images, _ = held_out
    for task, per in expert_loads(tiny, images[:16]).items():
        used = (per > 0).sum(-1).float().mean(0)  # per layer, mean over frames
        assert (used >= 4).all(), f"{task}: experts used per layer {used.tolist()}"


def test_shipped_tiny_integer_model_within_fidelity_targets(tiny):
    """mIoU within 1.0 point and depth RMSE within 5 % of the float model (the issue's targets),
    on the 50 held-out scenes of the README's ``golden.quant eval`` command; calibrated like the
    simulator's integer model (rtl.sim.models)."""
    calib, _ = SceneDataset(8, TRAIN_SEED, tiny.cfg.img_size).tensors()
    int_model = quantize_model(tiny, calib)
    images, targets = SceneDataset(50, HELD_OUT_SEED, tiny.cfg.img_size).tensors()
    result = compare(tiny, int_model, images, targets)
    seg, depth = result["semseg"], result["depth"]
    assert abs(seg["int"]["mIoU"] - seg["float"]["mIoU"]) <= 1.0, seg
    assert depth["int"]["rmse"] <= 1.05 * depth["float"]["rmse"], depth
    assert min(seg["topk_set_match_per_moe_layer"]) > 0.8, seg


def test_shipped_tiny_records_how_it_was_made():
    path = default_checkpoint("tiny")
    assert path.stat().st_size <= MAX_BYTES, f"{path}: {path.stat().st_size:,} bytes"
    ckpt = load_checkpoint(path)
    assert ckpt["command"].startswith("python -m golden.train --config tiny")
    assert ckpt["steps"] > 0 and ckpt["train_seconds"] > 0
    assert ckpt["storage_dtype"] == "float16"
    assert ckpt["history"] and {"step", "semseg", "depth", "balance"} <= set(ckpt["history"][-1])
    assert "optimizer" not in ckpt, "the shipped checkpoint is weights only"
