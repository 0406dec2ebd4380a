"""The integer model: reordering changes no bit, save/load round trip, fidelity to the float model."""

import copy
import json

import numpy as np
import pytest
import torch

from golden.checkpoint import default_checkpoint, load_model
from golden.config import get_config
from golden.data import SceneDataset
from golden.eval import HELD_OUT_SEED, TRAIN_SEED
from golden.model import M3ViT
from golden.quant import __main__ as quant_cli
from golden.quant.compare import compare
from golden.quant.model import IntM3ViT
from golden.quant.ptq import pixels_from_image, quantize_model, quantize_multiplier


def _mismatch(a, b) -> str:
    bad = np.argwhere(np.asarray(a) != np.asarray(b))
    return "equal" if not len(bad) else f"first mismatch at {tuple(bad[0])}: " \
        f"{a[tuple(bad[0])]} vs {b[tuple(bad[0])]}"


@pytest.fixture(scope="module")
def nano():
    model = load_model(default_checkpoint("nano"))
    calib, _ = SceneDataset(16, TRAIN_SEED, model.cfg.img_size).tensors()
    return model, quantize_model(model, calib)


@pytest.fixture(scope="module")
def scenes():
    return SceneDataset(40, HELD_OUT_SEED, get_config("nano").img_size).tensors()


def test_expert_order_equals_token_order_bit_for_bit(nano, scenes):
    _, im = nano
    images, _ = scenes
    for i in range(4):
        px = pixels_from_image(images[i])
        for task in im.cfg.task_names:
            a, ra = im.encode(px, task, order="expert")
            b, rb = im.encode(px, task, order="token")
            assert np.array_equal(a, b), f"{task}, image {i}: " + _mismatch(a, b)
            assert all(np.array_equal(x.indices, y.indices) for x, y in zip(ra, rb))


def test_reordering_with_adversarial_routing(nano, scenes):
    """All tokens to one expert pair (the others empty), and a task whose gates tie everywhere."""
    im = copy.deepcopy(nano[1])
    px = pixels_from_image(scenes[0][0])
    for moe in (blk.moe for blk in im.blocks if blk.moe is not None):
        gate = moe.gates[0]
        gate.weight = np.zeros_like(gate.weight)
        gate.bias = np.array([0, 5, 0, 5]) << 20           # experts 1 and 3 win for every token
        moe.gates[1].weight = np.zeros_like(moe.gates[1].weight)
        moe.gates[1].bias = np.zeros_like(moe.gates[1].bias)  # all tie: experts 0 and 1
    for task, expected in ((0, [1, 3]), (1, [0, 1])):
        a, routings = im.encode(px, task, order="expert")
        b, _ = im.encode(px, task, order="token")
        assert np.array_equal(a, b), _mismatch(a, b)
        for r in routings:
            loads = r.load(4)
            assert sorted(np.nonzero(loads)[0].tolist()) == expected
            assert loads[expected].tolist() == [im.cfg.num_tokens] * 2


def test_integer_outputs_are_integers_in_range(scenes):
    model = load_model(default_checkpoint("nano"))
    im = quantize_model(model, scenes[0][:8])
    px = pixels_from_image(scenes[0][9])
    for task in im.cfg.task_names:
        out = im.infer(px, task)
        assert out.dtype == np.int64 and out.min() >= -32768 and out.max() <= 32767
        assert out.shape == (im.cfg.task(task).channels, *im.cfg.img_size)
    with pytest.raises(ValueError, match="uint8 image"):
        im.infer(px[:, :16], "semseg")


def test_save_load_round_trip(tmp_path, scenes):
    model = load_model(default_checkpoint("nano"))
    im = quantize_model(model, scenes[0][:8])
    path = tmp_path / "nano_int.npz"
    im.save(path)
    back = IntM3ViT.load(path)
    assert back.cfg == im.cfg and back.res_scale == im.res_scale
    px = pixels_from_image(scenes[0][3])
    for task in im.cfg.task_names:
        assert np.array_equal(back.infer(px, task), im.infer(px, task))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not an integer M3ViT model"):
        IntM3ViT.load(bad)
    with pytest.raises(FileNotFoundError):
        IntM3ViT.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("gate_type", ["multi", "shared"])
def test_both_gate_variants_quantise_and_reorder_exactly(gate_type):
    torch.manual_seed(3)
    model = M3ViT(get_config("nano", gate_type=gate_type)).eval()
    images, _ = SceneDataset(6, 5, model.cfg.img_size).tensors()
    im = quantize_model(model, images[:4])
    px = pixels_from_image(images[5])
    for task in model.cfg.task_names:
        a, _ = im.encode(px, task, "expert")
        b, _ = im.encode(px, task, "token")
        assert np.array_equal(a, b), _mismatch(a, b)
    result = compare(model, im, images[4:])
    for task, r in result.items():
        assert r["cosine_final_tokens"] > 0.99, (task, r)


def test_quantize_multiplier_precision_and_limits():
    m = 2.0 ** np.linspace(-40, 13, 500)
    mult, shift = quantize_multiplier(m)
    assert (mult >= 1 << 14).all() and (mult < 1 << 15).all()
    assert (shift >= 1).all() and (shift <= 62).all()
    assert np.abs(mult * 2.0 ** -shift.astype(float) / m - 1).max() <= 2.0 ** -15
    with pytest.raises(ValueError, match="too large"):
        quantize_multiplier(2.0 ** 14)
    assert quantize_multiplier(0.0)[0][0] == 0


def test_nano_fidelity_meets_the_issue_targets(nano):
    """mIoU within 1.0 point and depth RMSE within 5 % of the float model on held-out scenes."""
    model, im = nano
    images, targets = SceneDataset(100, HELD_OUT_SEED, model.cfg.img_size).tensors()
    result = compare(model, im, images, targets)
    seg, depth = result["semseg"], result["depth"]
    assert abs(seg["int"]["mIoU"] - seg["float"]["mIoU"]) < 1.0, seg
    assert abs(depth["int"]["rmse"] / depth["float"]["rmse"] - 1) < 0.05, depth
    assert seg["pixel_agreement"] > 0.99
    assert min(seg["topk_set_match_per_moe_layer"]) > 0.9


def test_cli_quantize_eval_units(tmp_path, capsys):
    out = tmp_path / "nano_int.npz"
    assert quant_cli.main(["quantize", "--out", str(out), "--calib", "8"]) == 0
    assert out.exists()
    capsys.readouterr()
    assert quant_cli.main(["eval", "--int-model", str(out), "--scenes", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["results"]) == {"semseg", "depth"}
    assert quant_cli.main(["units", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["unit"].startswith("GELU") and r["max_err"] < 1.5e-4 for r in rows)
    assert quant_cli.main(["eval", "--config", "tiny", "--int-model", str(out)]) == 2
    assert "quantised from config 'nano'" in capsys.readouterr().err
