import pytest

from golden.config import CONFIGS, ModelConfig, TaskSpec, get_config


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_follow_design_table(name):
    cfg = get_config(name)
    assert cfg.name == name
    assert cfg.moe_blocks == tuple(range(1, cfg.depth, 2))
    assert cfg.num_tokens == cfg.num_patches + 1
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_tiny_and_small_numbers():
    tiny, small = get_config("tiny"), get_config("small")
    assert (tiny.img_size, tiny.patch_size, tiny.dim, tiny.depth, tiny.heads) == ((128, 256), 16, 192, 12, 3)
    assert (tiny.experts, tiny.top_k, tiny.expert_hidden, tiny.mlp_hidden) == (16, 2, 384, 768)
    assert tiny.num_tokens == 129 and tiny.task_names == ("semseg", "depth")
    assert (small.img_size, small.dim, small.heads, small.experts, small.top_k) == ((512, 512), 384, 12, 16, 4)
    assert (small.expert_hidden, small.mlp_hidden, len(small.tasks)) == (384, 1536, 5)


def test_unknown_config_and_task_are_clear_errors():
    with pytest.raises(KeyError, match="unknown model config 'huge'.*nano"):
        get_config("huge")
    with pytest.raises(KeyError, match="no task 'normals'"):
        get_config("nano").task("normals")


@pytest.mark.parametrize("change, message", [
    ({"img_size": (30, 64)}, "not a multiple of patch_size"),
    ({"heads": 3}, "not divisible by heads"),
    ({"top_k": 5}, "top_k 5 must be in 1..experts"),
    ({"gate_type": "bogus"}, "gate_type"),
    ({"tasks": ()}, "at least one task"),
])
def test_invalid_configs_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        get_config("nano", **change)


def test_task_spec_validation():
    with pytest.raises(ValueError, match="kind"):
        TaskSpec("x", "classification", 3)
