import pytest
import torch

from golden.config import get_config
from golden.model import (M3ViT, MoEMlp, load_state_dict_resized, resize_pos_embed,
                          top_k_routing)
from golden.train import task_loss


def _first_mismatch(a: torch.Tensor, b: torch.Tensor, atol: float) -> str:
    diff = (a - b).abs()
    idx = tuple(int(i) for i in torch.nonzero(diff > atol)[0]) if (diff > atol).any() else None
    return f"first mismatch at {idx}: {a[idx].item()} vs {b[idx].item()}" if idx else "equal"


@pytest.mark.parametrize("gate_type", ["multi", "shared"])
def test_nano_shapes_and_state_dict_names(gate_type):
    cfg = get_config("nano", gate_type=gate_type)
    model = M3ViT(cfg).eval()
    x = torch.rand(2, 3, *cfg.img_size)
    outs = model(x)
    for task in cfg.tasks:
        assert outs[task.name].shape == (2, task.channels, *cfg.img_size)
        assert model.infer(x, task.name).shape == (2, task.channels, *cfg.img_size)
    keys = model.state_dict().keys()
    assert "backbone.blocks.0.mlp.fc1.weight" in keys
    assert "backbone.blocks.1.attn.qkv.bias" in keys
    assert tuple(model.state_dict()["backbone.blocks.1.mlp.experts.htoh4.weight"].shape) == (
        cfg.experts, cfg.expert_hidden, cfg.dim)
    assert tuple(model.state_dict()["backbone.blocks.1.mlp.experts.h4toh.bias"].shape) == (
        cfg.experts, cfg.dim)
    if gate_type == "multi":
        assert tuple(model.state_dict()["backbone.blocks.1.mlp.gate.1.w_gate"].shape) == (
            cfg.dim, cfg.experts)
    else:
        assert tuple(model.state_dict()["backbone.blocks.1.mlp.gate.w_gate"].shape) == (
            cfg.dim + len(cfg.tasks), cfg.experts)
    assert not any(k.startswith("backbone.norm.") for k in keys), "no final backbone LayerNorm"


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_full_size_configs_run_once_at_batch_1(name):
    cfg = get_config(name)
    model = M3ViT(cfg).eval()
    x = torch.rand(1, 3, *cfg.img_size)
    task = cfg.tasks[0]
    out, routings = model.infer(x, task.name, return_routing=True)
    assert out.shape == (1, task.channels, *cfg.img_size)
    assert len(routings) == len(cfg.moe_blocks)
    for r in routings:
        assert r.indices.shape == (cfg.num_tokens, cfg.top_k)
        assert int(r.load(cfg.experts).sum()) == cfg.num_tokens * cfg.top_k


@pytest.mark.parametrize("gate_type", ["multi", "shared"])
def test_dense_and_sparse_paths_agree_for_every_task(gate_type):
    cfg = get_config("nano", gate_type=gate_type)
    model = M3ViT(cfg).eval()
    x = torch.rand(3, 3, *cfg.img_size)
    with torch.no_grad(), model.dense_moe():
        dense = model(x)
    for task in cfg.task_names:
        sparse = model.infer(x, task)
        assert torch.allclose(sparse, dense[task], atol=1e-5, rtol=1e-5), \
            f"{task}: " + _first_mismatch(sparse, dense[task], 1e-5)


def test_sparse_path_skips_empty_experts_and_matches_per_expert_queues():
    cfg = get_config("nano")
    moe = MoEMlp(cfg).eval()
    x = torch.randn(40, cfg.dim)
    with torch.no_grad():
        # Force every token to experts 0 and 2 through the gate: experts 1, 3 stay empty.
        moe.gate[0].w_gate.zero_()
        moe.gate[0].w_gate[:, 0] = 0.0
        x[:, 0] = 1.0
        moe.gate[0].w_gate[0, 0] = 5.0
        moe.gate[0].w_gate[0, 2] = 4.0
        calls = []
        original = moe.experts.expert
        moe.experts.expert = lambda e, rows: calls.append((e, len(rows))) or original(e, rows)
        out, routing = moe.forward_sparse(x, 0)
        moe.experts.expert = original
        assert calls == [(0, 40), (2, 40)]
        assert routing.load(cfg.experts).tolist() == [40, 0, 40, 0]
        assert torch.allclose(out, moe.forward_dense(x, 0), atol=1e-6)


def _loss_and_grads(model, x, y, seed):
    torch.manual_seed(seed)  # the same gate noise on both paths
    out = model(x)
    loss = sum(task_loss(t.kind, out[t.name], y[t.name]) for t in model.cfg.tasks)
    loss = loss + model.aux_loss()
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


@pytest.mark.parametrize("gate_type", ["multi", "shared"])
def test_sparse_training_has_the_dense_paths_loss_and_gradients(gate_type):
    """Training runs each token through its top-k experts only; loss and every gradient (gates
    with their noise and balancing loss, experts, the rest) equal the dense path's."""
    cfg = get_config("nano", gate_type=gate_type)
    torch.manual_seed(3)
    model = M3ViT(cfg).train()
    x = torch.rand(4, 3, *cfg.img_size)
    y = {"semseg": torch.randint(0, cfg.tasks[0].channels, (4, *cfg.img_size)),
         "depth": torch.rand(4, *cfg.img_size) * 10}
    sparse_loss, sparse = _loss_and_grads(model, x, y, seed=11)
    with model.dense_moe():
        dense_loss, dense = _loss_and_grads(model, x, y, seed=11)
    assert torch.allclose(sparse_loss, dense_loss, rtol=1e-5, atol=1e-6)
    assert sparse.keys() == dense.keys()
    expert_grads = [n for n in dense if ".experts." in n]
    assert expert_grads and any(".gate" in n for n in dense)
    for name in dense:
        assert torch.allclose(sparse[name], dense[name], rtol=1e-4, atol=1e-6), \
            f"{name}: " + _first_mismatch(sparse[name], dense[name], 1e-6)


def test_top_k_ties_lower_index_wins_and_no_renormalisation():
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25],
                          [0.1, 0.4, 0.1, 0.4],
                          [0.3, 0.2, 0.3, 0.2]])
    idx, val = top_k_routing(probs, 2)
    assert idx.tolist() == [[0, 1], [1, 3], [0, 2]]
    assert torch.equal(val, torch.gather(probs, 1, idx))  # kept probabilities, not renormalised
    idx1, _ = top_k_routing(probs, 1)
    assert idx1.flatten().tolist() == [0, 1, 0]
    idx4, val4 = top_k_routing(probs, 4)
    assert idx4[0].tolist() == [0, 1, 2, 3] and torch.allclose(val4.sum(-1), torch.ones(3))


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_gate_softmax_over_all_experts_then_top_k(top_k):
    cfg = get_config("nano", top_k=top_k)
    moe = MoEMlp(cfg).eval()
    x = torch.randn(16, cfg.dim)
    routing = moe.route(x, 1)
    probs = torch.softmax(x @ moe.gate[1].w_gate, dim=-1)
    ref_val, ref_idx = torch.sort(probs, dim=-1, descending=True, stable=True)
    assert torch.equal(routing.indices, ref_idx[:, :top_k])
    assert torch.allclose(routing.weights, ref_val[:, :top_k])
    if top_k < cfg.experts:
        assert (routing.weights.sum(-1) < 1).all()


def test_shared_gate_is_shared_weight_plus_task_bias():
    cfg = get_config("nano", gate_type="shared")
    moe = MoEMlp(cfg).eval()
    x = torch.randn(8, cfg.dim)
    for t in range(len(cfg.tasks)):
        onehot = torch.zeros(8, len(cfg.tasks))
        onehot[:, t] = 1
        concat_logits = torch.cat([x, onehot], -1) @ moe.gate.w_gate
        assert torch.allclose(moe.route(x, t).logits, concat_logits, atol=1e-6)


def test_noise_and_balancing_loss_only_while_training():
    cfg = get_config("nano")
    model = M3ViT(cfg)
    x = torch.rand(4, 3, *cfg.img_size)
    model.train()
    model(x)
    assert model.aux_loss().item() > 0
    moe = model.moe_layers()[0]
    tokens = torch.randn(32, cfg.dim)
    assert not torch.equal(moe.route(tokens, 0).logits, moe.route(tokens, 0).logits)
    model.eval()
    with torch.no_grad():
        model(x)
    assert model.aux_loss().item() == 0
    assert torch.equal(moe.route(tokens, 0).logits, moe.route(tokens, 0).logits)


def test_pos_embed_resize_keeps_class_token_and_constant_fields():
    d = 8
    pe = torch.randn(1, 1 + 4 * 8, d)
    assert resize_pos_embed(pe, (4, 8), (4, 8)) is pe
    const = torch.cat([pe[:, :1], torch.ones(1, 32, d) * 0.5], 1)
    out = resize_pos_embed(const, (4, 8), (6, 10))
    assert out.shape == (1, 1 + 60, d)
    assert torch.equal(out[:, 0], const[:, 0])
    assert torch.allclose(out[:, 1:], torch.full((1, 60, d), 0.5), atol=1e-6)
    # A column-only pattern stays column-only (rows are not mixed into columns) on a non-square grid.
    cols = torch.arange(8.0).repeat(4)[None, :, None].expand(1, 32, d)
    out = resize_pos_embed(torch.cat([pe[:, :1], cols], 1), (4, 8), (2, 8))
    grid = out[0, 1:, 0].reshape(2, 8)
    assert torch.allclose(grid[0], grid[1]) and torch.allclose(grid[0], torch.arange(8.0), atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        resize_pos_embed(pe, (5, 8), (4, 8))


def test_model_built_for_another_size_loads_resized_weights():
    src = M3ViT(get_config("nano")).eval()
    dst = M3ViT(get_config("nano", img_size=(48, 48))).eval()
    load_state_dict_resized(dst, src.state_dict(), src.cfg)
    assert dst.backbone.pos_embed.shape == (1, 1 + 36, src.cfg.dim)
    out = dst.infer(torch.rand(1, 3, 48, 48), "semseg")
    assert out.shape == (1, src.cfg.task("semseg").channels, 48, 48)
    with pytest.raises(ValueError, match="built for 32x64"):
        src.infer(torch.rand(1, 3, 48, 48), "semseg")


def test_pos_embed_resize_is_the_originals_bilinear_hand_computed():
    """2x2 → 4x4, bilinear, align_corners=False: source coordinate (i + 0.5) / 2 - 0.5, clamped.
    Per axis the weights are [1, 0], [.75, .25], [.25, .75], [0, 1]."""
    grid = torch.tensor([[0.0, 4.0], [8.0, 12.0]])
    cls = torch.tensor([[[-3.0]]])
    pe = torch.cat([cls, grid.reshape(1, 4, 1)], 1)
    out = resize_pos_embed(pe, (2, 2), (4, 4))
    want = torch.tensor([[0.0, 1.0, 3.0, 4.0],
                         [2.0, 3.0, 5.0, 6.0],
                         [6.0, 7.0, 9.0, 10.0],
                         [8.0, 9.0, 11.0, 12.0]])
    assert out[0, 0, 0].item() == -3.0  # class token kept
    got = out[0, 1:, 0].reshape(4, 4)
    assert torch.allclose(got, want, atol=1e-6), got


def _original_vmoe_loss(clean, noisy, k, noise_std):
    """NoisyGate_VMoE.forward + _prob_in_top_k + cv_squared of the original, step by step."""
    probs = torch.softmax(noisy, dim=1)
    top_logits, top_indices = probs.topk(min(k + 1, probs.shape[1]), dim=1)
    gates = torch.zeros_like(probs).scatter(1, top_indices[:, :k], top_logits[:, :k])
    m = top_logits.size(1)
    flat = top_logits.flatten()
    pos_in = torch.arange(clean.size(0)) * m + k
    thr_in = torch.gather(flat, 0, pos_in).unsqueeze(1)
    thr_out = torch.gather(flat, 0, pos_in - 1).unsqueeze(1)
    is_in = torch.gt(noisy, thr_in)
    normal = torch.distributions.Normal(torch.tensor([0.0]), torch.tensor([1.0]))
    prob = torch.where(is_in, normal.cdf((clean - thr_in) / noise_std),
                       normal.cdf((clean - thr_out) / noise_std))
    load, importance = prob.sum(0), gates.sum(0)

    def cv2(x):
        return x.float().var() / (x.float().mean() ** 2 + 1e-10)
    return cv2(importance) + cv2(load)


@pytest.mark.parametrize("estimate", ["original", "logit"])
def test_balancing_loss_load_estimate(estimate):
    cfg = get_config("nano", load_estimate=estimate)
    moe = MoEMlp(cfg).train()
    torch.manual_seed(3)
    x = torch.randn(40, cfg.dim)
    torch.manual_seed(4)
    routing = moe.route(x, 0)
    noise = cfg.noise_std / cfg.experts
    clean = x @ moe.gate[0].w_gate
    want = cfg.balance_weight * _original_vmoe_loss(clean, routing.logits, cfg.top_k, noise)
    if estimate == "original":
        assert torch.allclose(moe.loss, want, rtol=1e-6, atol=0), (moe.loss, want)
    else:  # thresholds in logit space: a different (consistent) statistic
        assert not torch.allclose(moe.loss, want, rtol=1e-3)


def test_balancing_loss_without_noise_counts_tokens():
    cfg = get_config("nano", noise_std=0.0)
    moe = MoEMlp(cfg).train()
    x = torch.randn(40, cfg.dim)
    routing = moe.route(x, 0)
    probs = torch.softmax(routing.logits, -1)
    gates = torch.zeros_like(probs).scatter(1, routing.indices, routing.weights)
    load = (gates > 0).sum(0).float()

    def cv2(v):
        return v.var() / (v.mean() ** 2 + 1e-10)
    assert torch.allclose(moe.loss, cfg.balance_weight * (cv2(gates.sum(0)) + cv2(load)))
