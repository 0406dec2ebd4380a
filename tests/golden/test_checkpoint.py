import pytest
import torch

from golden.checkpoint import load_checkpoint, load_model, save_checkpoint
from golden.config import get_config
from golden.model import M3ViT


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = M3ViT(get_config("nano", gate_type="shared")).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, note="hello")
    loaded = load_model(path)
    assert loaded.cfg == model.cfg
    assert load_checkpoint(path)["note"] == "hello"
    x = torch.rand(2, 3, *model.cfg.img_size)
    for task in model.cfg.task_names:
        assert torch.equal(loaded.infer(x, task), model.infer(x, task))


def test_bad_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not one of our M3ViT checkpoints.*config=NAME"):
        load_checkpoint(foreign)
