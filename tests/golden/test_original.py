"""Original M³ViT checkpoints: every layout the original writes, mapped onto ours exactly."""

import pytest
import torch

from golden.checkpoint import load_model, main as checkpoint_main
from golden.config import get_config
from golden.model import M3ViT, resize_pos_embed
from golden.original import import_original

CFG = get_config("nano", head_type="uphead")


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(11)
    model = M3ViT(CFG)
    for m in model.modules():  # non-trivial BatchNorm statistics, so a lost buffer shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    return model.eval()


def _original_files(model, ranks, *, prefix="module.", wrap="state_dict"):
    """The state dict as the original's training script saves it: per rank, experts sharded."""
    sd = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    sd[prefix + "tam_model0.layers0.0.weight"] = torch.zeros(4, 8, 3, 3)  # training-only module
    e_local = CFG.experts // ranks
    files = []
    for r in range(ranks):
        shard = {}
        for k, v in sd.items():
            if "mlp.experts.htoh4" in k or "mlp.experts.h4toh" in k:
                shard[k] = v[r * e_local:(r + 1) * e_local].clone()
            elif r == 0:
                shard[k] = v
        if wrap is None:
            files.append(shard)
        else:
            files.append({"epoch": 3, "backbone": "VisionTransformer_moe", wrap: shard,
                          "best_result": {"multi_task_performance": 0.5},
                          "optimizer": {"state": {}, "param_groups": [{"lr": 0.002}]}})
    return files


def _save_dir(tmp_path, files):
    d = tmp_path / "checkpoint.pth.tar"
    d.mkdir()
    for r, f in enumerate(files):
        torch.save(f, d / f"{r}.pth")
    return d


def _assert_same_outputs(a, b):
    torch.manual_seed(0)
    x = torch.rand(2, 3, *CFG.img_size)
    with torch.no_grad():
        for t in CFG.task_names:
            ya, yb = a.infer(x, t), b.infer(x, t)
            diff = (ya - yb).abs().max().item()
            assert torch.equal(ya, yb), f"task {t}: outputs differ by up to {diff}"


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_per_rank_directory_round_trip(tmp_path, source, ranks):
    d = _save_dir(tmp_path, _original_files(source, ranks))
    imported = import_original(d, "nano")
    assert imported.ranks == ranks and imported.model.cfg.head_type == "uphead"
    assert "training-only TAM modules" in imported.dropped
    _assert_same_outputs(source, imported.model)
    for k, v in source.state_dict().items():
        assert torch.equal(imported.model.state_dict()[k], v), k


@pytest.mark.parametrize("wrap, prefix", [("state_dict", "module."), ("model", "module."),
                                          (None, "module."), ("state_dict", "")])
def test_single_file_layouts(tmp_path, source, wrap, prefix):
    (obj,) = _original_files(source, 1, prefix=prefix, wrap=wrap)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(obj, path)
    _assert_same_outputs(source, load_model(path, config="nano"))


def test_cli_converts_once_and_prints_what_was_mapped(tmp_path, source, capsys):
    d = _save_dir(tmp_path, _original_files(source, 2))
    out = tmp_path / "ours.pt"
    assert checkpoint_main(["import", str(d), "--config", "nano", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "concatenated from 2 rank shards" in text and "training-only TAM" in text
    assert f"mapped {len(source.state_dict())} tensors" in text
    _assert_same_outputs(source, load_model(out))


def test_missing_rank_file_is_named(tmp_path, source):
    files = _original_files(source, 4)
    d = _save_dir(tmp_path, files)
    (d / "2.pth").unlink()
    with pytest.raises(ValueError, match=r"2\.pth missing"):
        import_original(d, "nano")


def test_ranks_with_different_expert_counts(tmp_path, source):
    files = _original_files(source, 2)
    for k, v in files[1]["state_dict"].items():
        files[1]["state_dict"][k] = v[:1]
    with pytest.raises(ValueError, match="different numbers of experts"):
        import_original(_save_dir(tmp_path, files), "nano")


def test_unknown_key_is_an_error(tmp_path, source):
    (obj,) = _original_files(source, 1)
    obj["state_dict"]["module.backbone.norm.weight"] = torch.ones(CFG.dim)
    torch.save(obj, tmp_path / "c.pth")
    with pytest.raises(ValueError, match=r"backbone\.norm\.weight"):
        import_original(tmp_path / "c.pth", "nano")


def test_partial_head_is_an_error_unless_backbone_only(tmp_path, source):
    (obj,) = _original_files(source, 1)
    del obj["state_dict"]["module.decoders.depth.conv_2.weight"]
    torch.save(obj, tmp_path / "c.pth")
    with pytest.raises(ValueError, match=r"decoders\.depth\.conv_2\.weight.*--backbone-only"):
        import_original(tmp_path / "c.pth", "nano")
    imported = import_original(tmp_path / "c.pth", "nano", backbone_only=True)
    assert imported.model.cfg.head_type == "linear"  # the config's own heads, freshly made
    assert "heads, backbone_only" in imported.dropped
    for k, v in source.state_dict().items():
        if k.startswith("backbone."):
            assert torch.equal(imported.model.state_dict()[k], v), k


def test_missing_backbone_tensor_is_named(tmp_path, source):
    (obj,) = _original_files(source, 1)
    del obj["state_dict"]["module.backbone.blocks.1.attn.proj.bias"]
    torch.save(obj, tmp_path / "c.pth")
    with pytest.raises(ValueError, match=r"blocks\.1\.attn\.proj\.bias"):
        import_original(tmp_path / "c.pth", "nano", backbone_only=True)


def test_structure_mismatch_names_the_override(tmp_path):
    torch.manual_seed(1)
    other = M3ViT(CFG.replace(expert_hidden=64))
    (obj,) = _original_files(other, 1)
    torch.save(obj, tmp_path / "c.pth")
    with pytest.raises(ValueError, match="--override expert_hidden=64"):
        import_original(tmp_path / "c.pth", "nano")
    imported = import_original(tmp_path / "c.pth", "nano", overrides={"expert_hidden": 64})
    _assert_same_outputs(other.eval(), imported.model)
    assert imported.model.cfg.expert_hidden == 64


def test_not_ours_without_config_says_how(tmp_path, source):
    d = _save_dir(tmp_path, _original_files(source, 2))
    with pytest.raises(ValueError, match="config=NAME"):
        load_model(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no per-rank files"):
        load_model(empty, config="nano")


def test_square_source_grid_resized_as_the_original(tmp_path, source):
    (obj,) = _original_files(source, 1)
    sd = obj["state_dict"]
    src = torch.randn(1, 1 + 16, CFG.dim)  # trained on a 4x4 grid
    sd["module.backbone.pos_embed"] = src
    torch.save(obj, tmp_path / "c.pth")
    imported = import_original(tmp_path / "c.pth", "nano")
    assert "4x4 to a 4x8" in imported.resized
    want = resize_pos_embed(src, (4, 4), CFG.grid)
    assert torch.equal(imported.model.backbone.pos_embed.data, want)
    sd["module.backbone.pos_embed"] = torch.randn(1, 1 + 24, CFG.dim)  # 4x6: not square
    torch.save(obj, tmp_path / "c.pth")
    with pytest.raises(ValueError, match="--source-size"):
        import_original(tmp_path / "c.pth", "nano")
    imported = import_original(tmp_path / "c.pth", "nano", source_img_size=(32, 48))
    assert "4x6 to a 4x8" in imported.resized


def test_gates_follow_the_original_task_order(tmp_path, source):
    """A config listing its tasks in another order still gets each task's own gate."""
    (obj,) = _original_files(source, 1)
    torch.save(obj, tmp_path / "c.pth")
    swapped = CFG.replace(tasks=CFG.tasks[::-1])
    model = import_original(tmp_path / "c.pth", swapped).model
    for i in CFG.moe_blocks:
        for t in CFG.task_names:
            ours = model.backbone.blocks[i].mlp.gate[swapped.task_index(t)].w_gate
            src = source.backbone.blocks[i].mlp.gate[CFG.task_index(t)].w_gate
            assert torch.equal(ours, src), (i, t)


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    assert checkpoint_main(["import", str(tmp_path / "nope"), "--config", "nano",
                            "--out", str(tmp_path / "o.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: --out must be a file
        checkpoint_main(["import", str(tmp_path), "--config", "nano", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "is a folder; give a file name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        checkpoint_main(["import", "x", "--config", "nano", "--out", "o.pt", "--override", "oops"])
    assert exc.value.code == 2


def test_uphead_shapes_and_post_split():
    """The up-head maps patch tokens to full-resolution maps; ``decode_features`` (the PS's part)
    equals the head after its LayerNorm."""
    torch.manual_seed(2)
    model = M3ViT(CFG).eval()
    head = model.decoders["semseg"]
    tokens = torch.randn(1, CFG.num_patches, CFG.dim)
    with torch.no_grad():
        out = head(tokens)
        normed = head.norm(tokens)[0]
    assert out.shape == (1, CFG.task("semseg").channels, *CFG.img_size)
    q = torch.round(normed / 0.01).to(torch.int64).T.reshape(CFG.dim, *CFG.grid).numpy()
    got = head.decode_features(q, 0.01)
    with torch.no_grad():
        want = head.decode((torch.as_tensor(q, dtype=torch.float32) * 0.01)
                           .reshape(CFG.dim, -1).T[None])[0].numpy()
    assert (got == want).all()
    with pytest.raises(ValueError, match="features"):
        head.decode_features(q[:, :2], 0.01)


def test_load_model_for_another_size_resizes_once(tmp_path, source):
    """An original checkpoint loaded for another image size: one resize, from its grid to the
    target's (not through the config's grid)."""
    (obj,) = _original_files(source, 1)
    torch.save(obj, tmp_path / "c.pth")
    model = load_model(tmp_path / "c.pth", img_size=(64, 64), config="nano")
    want = resize_pos_embed(source.backbone.pos_embed.data, CFG.grid, (8, 8))
    assert torch.equal(model.backbone.pos_embed.data, want)
    assert model.cfg.img_size == (64, 64)
