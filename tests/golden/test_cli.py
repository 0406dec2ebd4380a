"""Smoke runs of the golden CLIs on ``nano`` (in-process through their ``main``)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import cost, demo, eval as golden_eval, train
from golden.checkpoint import default_checkpoint, load_checkpoint, load_model
from golden.data import SceneDataset, export_folder


def test_train_then_resume_continues_where_it_stopped(tmp_path, capsys):
    out = tmp_path / "run.pt"
    args = ["--config", "nano", "--out", str(out), "--scenes", "16", "--batch-size", "4",
            "--save-every", "3", "--eval-scenes", "4", "--seed", "5"]
    assert train.main(args + ["--steps", "6", "--stop-at", "3"]) == 0
    assert load_checkpoint(out)["step"] == 3
    assert train.main(args + ["--steps", "6", "--resume", str(out)]) == 0
    resumed = load_checkpoint(out)
    assert resumed["step"] == 6
    straight = tmp_path / "straight.pt"
    assert train.main(["--config", "nano", "--out", str(straight), "--scenes", "16",
                       "--batch-size", "4", "--save-every", "3", "--eval-scenes", "0",
                       "--seed", "5", "--steps", "6"]) == 0
    ref = load_checkpoint(straight)["state_dict"]
    for key, value in resumed["state_dict"].items():
        assert torch.allclose(value, ref[key], atol=1e-6), f"resume diverged at {key}"
    assert "held-out scenes" in capsys.readouterr().out


def test_train_init_starts_from_exported_weights_and_records_the_stages(tmp_path, capsys):
    """--init: the exported weights of one run start another (fresh optimizer and schedule);
    with zero learning rate nothing moves, and the new checkpoint keeps the first command."""
    first, export = tmp_path / "a.pt", tmp_path / "a_export.pt"
    common = ["--config", "nano", "--scenes", "8", "--batch-size", "2", "--eval-scenes", "0"]
    assert train.main(common + ["--steps", "2", "--out", str(first), "--export", str(export),
                                "--export-dtype", "float32"]) == 0
    second, export2 = tmp_path / "b.pt", tmp_path / "b_export.pt"
    assert train.main(common + ["--steps", "2", "--lr", "1e-12", "--weight-decay", "0",
                                "--init", str(export), "--out", str(second),
                                "--export", str(export2)]) == 0
    start = load_checkpoint(export)["state_dict"]
    for key, value in load_checkpoint(second)["state_dict"].items():
        assert torch.allclose(value, start[key], atol=1e-5), f"{key} moved"
    stages = load_checkpoint(export2)["stages"]
    assert len(stages) == 1 and stages[0]["steps"] == 2
    assert stages[0]["command"] == load_checkpoint(export)["command"]
    assert train.main(common + ["--init", str(export), "--resume", str(first)]) == 2
    assert "--init starts a new run" in capsys.readouterr().err


def test_train_init_refuses_another_config(tmp_path, capsys):
    assert train.main(["--config", "tiny", "--init", str(default_checkpoint("nano")),
                       "--steps", "1", "--out", str(tmp_path / "x.pt")]) == 2
    assert "differs from --config tiny" in capsys.readouterr().err


def test_train_refuses_bad_resume(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_json_on_shipped_checkpoint(capsys):
    assert golden_eval.main(["--scenes", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["metrics"]) == {"semseg", "depth"}
    assert 0 <= result["metrics"]["semseg"]["mIoU"] <= 100


def test_eval_on_a_folder_and_dense_path_match(tmp_path, capsys):
    export_folder(SceneDataset(6, 42, (32, 64)), tmp_path)
    assert golden_eval.main(["--data", str(tmp_path), "--json"]) == 0
    sparse = json.loads(capsys.readouterr().out)["metrics"]
    assert golden_eval.main(["--data", str(tmp_path), "--json", "--dense"]) == 0
    dense = json.loads(capsys.readouterr().out)["metrics"]
    assert sparse["semseg"]["pixel_acc"] == pytest.approx(dense["semseg"]["pixel_acc"], abs=0.1)
    assert sparse["depth"]["rmse"] == pytest.approx(dense["depth"]["rmse"], rel=1e-4)


def test_eval_plot_names_the_checkpoint_file_not_its_folder(tmp_path, monkeypatch):
    """The expert-load plot's title carries the checkpoint's file name: a committed plot must
    not depend on where the repository was checked out."""
    titles = []
    monkeypatch.setattr(golden_eval, "plot_loads", lambda loads, title, path: titles.append(title))
    assert golden_eval.main(["--scenes", "2", "--plot", str(tmp_path)]) == 0
    ckpt = Path(default_checkpoint("nano"))
    assert len(titles) == 1 and f"({ckpt.name})" in titles[0], titles
    assert str(ckpt.parent) not in titles[0], titles


def test_eval_missing_checkpoint_is_an_error(tmp_path, capsys):
    assert golden_eval.main(["--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert golden_eval.main(["--config", "small"]) == 2
    assert "no checkpoint ships for config 'small'" in capsys.readouterr().err


def test_demo_writes_pictures_and_prints_macs(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "semseg" in text and "depth" in text and "M MACs" in text
    assert (tmp_path / "panel.png").stat().st_size > 0
    model = load_model(default_checkpoint("nano"))
    assert np.load(tmp_path / "semseg.npy").shape == (model.cfg.task("semseg").channels,
                                                       *model.cfg.img_size)


def test_cost_cli_on_nano(tmp_path, capsys):
    assert cost.main(["--config", "nano", "--plot", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| nano | semseg |" in text and "| nano | depth |" in text
    assert (tmp_path / "expert_load_nano.png").exists()


def test_cost_numbers_follow_the_model():
    from golden.config import get_config
    from golden.model import M3ViT
    cfg = get_config("nano")
    model = M3ViT(cfg).eval()
    image = torch.rand(1, 3, *cfg.img_size)
    costs = cost.measure(model, image)
    n, d = cfg.num_tokens, cfg.dim
    expert_macs = n * cfg.top_k * 2 * d * cfg.expert_hidden
    gate_macs = n * d * cfg.experts
    for c in costs:
        assert c.sparse_parts["moe"] == len(cfg.moe_blocks) * (expert_macs + gate_macs)
        # the dense path also combines all E outputs per token as a matmul: n x E x D MACs
        dense_moe = len(cfg.moe_blocks) * (n * cfg.experts * 2 * d * cfg.expert_hidden
                                           + gate_macs + n * cfg.experts * d)
        assert c.dense_single_macs - c.sparse_macs == dense_moe - c.sparse_parts["moe"]
        assert sum(sum(load) for load in c.loads) == len(cfg.moe_blocks) * n * cfg.top_k
    assert costs[0].dense_all_macs == sum(c.dense_single_macs for c in costs)
