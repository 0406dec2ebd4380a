"""Float M³ViT: the accuracy reference of the project.

A multi-task vision transformer whose odd-indexed blocks replace the MLP by a mixture of experts
with one gate per task (Liang et al., "M³ViT", NeurIPS 2022). Two forward paths exist:

* :meth:`M3ViT.forward` — the *training* path: every task, each token through its top-k experts
  only (sparse, as FastMoE trains the original), differentiable. Inside
  :meth:`M3ViT.dense_moe` it evaluates every expert on every token weighted by the (mostly zero)
  gate matrix instead: the reference the sparse path is tested against (same values and
  gradients) and the FLOP baseline of "the same model run densely";
* :meth:`M3ViT.infer` — the *per-task sparse* path the hardware follows: only the chosen task's
  gate runs, tokens are grouped into per-expert queues, each non-empty expert is applied to its
  queue (experts in index order, tokens in index order), results are accumulated back per token
  weighted by the gate probability, and only that task's head runs.

State-dict names follow the original repository (VITA-Group/M3ViT) so its checkpoints map onto
ours (after stripping the ``module.`` prefix and concatenating per-GPU expert shards):

==========================================  =========================================  ===========
ours                                        original                                   shape
==========================================  =========================================  ===========
``backbone.cls_token``                      same                                       [1, 1, D]
``backbone.pos_embed``                      same                                       [1, 1+P, D]
``backbone.patch_embed.proj.{weight,bias}`` same (Conv2d patch×patch, stride patch)    [D, 3, p, p]
``backbone.blocks.N.norm1/norm2.*``         same (LayerNorm, eps 1e-6)                 [D]
``backbone.blocks.N.attn.qkv.*``            same (with bias)                           [3D, D]
``backbone.blocks.N.attn.proj.*``           same                                       [D, D]
``backbone.blocks.N.mlp.fc1/fc2.*``         same (dense MLP, even N)                   [H, D]/[D, H]
``backbone.blocks.N.mlp.gate.<t>.w_gate``   same (``multi_gate``, odd N), x @ w_gate   [D, E]
``backbone.blocks.N.mlp.gate.w_gate``       same (shared gate on [x, onehot(task)])    [D+T, E]
``backbone.blocks.N.mlp.experts.htoh4.*``   same (FMoELinear: weight [E, out, in])     [E, Hx, D]
``backbone.blocks.N.mlp.experts.h4toh.*``   same                                       [E, D, Hx]
``decoders.<task>.norm/fc1/fc2.*``          ``head_type="linear"``: ours, per-token    see
                                            MLP head, runs on the accelerator          TaskHead
``decoders.<task>.norm/conv_0..4/``         ``head_type="uphead"``: same (the          see
``syncbn_fc_0..3.*``                        original's ``VisionTransformerUpHead``)    UpHead
==========================================  =========================================  ===========

:mod:`golden.original` reads the original's checkpoint files (one file or a directory of per-rank
files) and maps them onto this model.

The original's V-MoE gate (``noisy_vmoe``) semantics are kept: softmax over *all* experts, keep the
top-k probabilities without renormalising, add N(0, (noise_std/E)²) noise to the logits only while
training, and a balancing loss (cv²(importance) + cv²(load)) × 0.01 per gate, whose load estimate
is by default computed exactly as the original does (``ModelConfig.load_estimate``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

__all__ = [
    "M3ViT", "MoEMlp", "TaskGate", "SharedTaskGate", "TaskHead", "UpHead", "UPHEAD_CHANNELS",
    "Routing",
    "top_k_routing", "resize_pos_embed", "load_state_dict_resized", "IMAGENET_MEAN", "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def top_k_routing(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k experts per token with a deterministic tie-break: the lower expert index wins.

    Parameters
    ----------
    probs : Tensor [N, E]
        Gate probabilities (softmax over all experts).
    k : int
        Experts kept per token.

    Returns
    -------
    indices : LongTensor [N, k]
        Selected experts, best first.
    values : Tensor [N, k]
        Their probabilities, *not* renormalised.
    """
    values, indices = torch.sort(probs, dim=-1, descending=True, stable=True)
    return indices[:, :k], values[:, :k]


def _cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation, the original's balancing statistic (0 for one expert)."""
    if x.numel() <= 1:
        return x.new_zeros(())
    x = x.float()
    return x.var() / (x.mean() ** 2 + 1e-10)


@dataclass
class Routing:
    """What one MoE layer's gate decided for one task.

    Attributes
    ----------
    indices : LongTensor [N, k]
        Selected experts per token (best first, lower index wins ties).
    weights : Tensor [N, k]
        Their gate probabilities (softmax over all E, not renormalised).
    logits : Tensor [N, E]
        Gate logits (noisy while training).
    """

    indices: torch.Tensor
    weights: torch.Tensor
    logits: torch.Tensor

    def queues(self, experts: int) -> list[torch.Tensor]:
        """Per-expert token queues: for each expert, the token indices routed to it, ascending."""
        return [torch.nonzero((self.indices == e).any(dim=-1)).flatten() for e in range(experts)]

    def load(self, experts: int) -> torch.Tensor:
        """Tokens per expert (queue lengths)."""
        return torch.bincount(self.indices.flatten(), minlength=experts)


class TaskGate(nn.Module):
    """One task's gate (the original's ``NoisyGate_VMoE`` with ``multi_gate``): logits = x @ w_gate."""

    def __init__(self, dim: int, experts: int):
        super().__init__()
        self.w_gate = nn.Parameter(torch.empty(dim, experts))
        nn.init.kaiming_uniform_(self.w_gate, a=math.sqrt(5))

    def weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.w_gate, None


class SharedTaskGate(nn.Module):
    """The original's shared gate on ``[x, onehot(task)]``.

    ``[x, e_t] @ w_gate == x @ w_gate[:D] + w_gate[D + t]``: a shared weight plus a per-task logit
    bias, which is the form the hardware implements.
    """

    def __init__(self, dim: int, experts: int, tasks: int):
        super().__init__()
        self.dim = dim
        self.w_gate = nn.Parameter(torch.empty(dim + tasks, experts))
        nn.init.kaiming_uniform_(self.w_gate, a=math.sqrt(5))

    def weight_and_bias(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.w_gate[: self.dim], self.w_gate[self.dim + task]


class Experts(nn.Module):
    """E two-layer experts stored as stacked tensors, in the original FMoELinear layout."""

    def __init__(self, experts: int, dim: int, hidden: int):
        super().__init__()
        self.htoh4 = _StackedLinear(experts, dim, hidden)
        self.h4toh = _StackedLinear(experts, hidden, dim)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert ``e`` applied to rows ``x`` [n, D]: Linear → exact GELU → Linear."""
        h = F.linear(x, self.htoh4.weight[e], self.htoh4.bias[e])
        return F.linear(F.gelu(h), self.h4toh.weight[e], self.h4toh.bias[e])


class _StackedLinear(nn.Module):
    def __init__(self, experts: int, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(experts, fan_out))
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)


class MoEMlp(nn.Module):
    """The MoE replacement of a block's MLP, with one gate per task.

    ``forward`` (training) and ``forward_sparse`` (inference, the hardware's order) evaluate each
    expert only on its queue; ``forward_dense`` evaluates every expert on every token, the
    reference they are tested against. All three return the same values.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.experts_count = cfg.experts
        self.top_k = cfg.top_k
        self.noise_std = cfg.noise_std
        self.balance_weight = cfg.balance_weight
        self.load_estimate = cfg.load_estimate
        self.gate_type = cfg.gate_type
        if cfg.gate_type == "multi":
            self.gate = nn.ModuleList(TaskGate(cfg.dim, cfg.experts) for _ in cfg.tasks)
        else:
            self.gate = SharedTaskGate(cfg.dim, cfg.experts, len(cfg.tasks))
        self.experts = Experts(cfg.experts, cfg.dim, cfg.expert_hidden)
        self.loss: torch.Tensor | None = None  # balancing loss of the last training forward
        self.dense = False  # forward runs forward_dense (M3ViT.dense_moe)

    def gate_weight_and_bias(self, task: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Task ``task``'s gate as (W [D, E], b [E] or None): logits = x @ W (+ b)."""
        if self.gate_type == "multi":
            return self.gate[task].weight_and_bias()
        return self.gate.weight_and_bias(task)

    def route(self, x: torch.Tensor, task: int) -> Routing:
        """Gate for one task over tokens ``x`` [N, D] (noise only in training mode)."""
        w, b = self.gate_weight_and_bias(task)
        clean = x @ w
        if b is not None:
            clean = clean + b
        logits = clean
        noise_scale = self.noise_std / self.experts_count
        noisy = self.training and noise_scale > 0
        if noisy:
            logits = clean + torch.randn_like(clean) * noise_scale
        probs = torch.softmax(logits, dim=-1)
        indices, weights = top_k_routing(probs, self.top_k)
        self.loss = (self.balance_weight * self._balancing_loss(
            probs, indices, weights, clean, logits, noise_scale if noisy else 0.0)
            if self.training else None)
        return Routing(indices, weights, logits)

    def _balancing_loss(self, probs, indices, weights, clean, noisy_logits, noise_scale):
        gates = torch.zeros_like(probs).scatter(1, indices, weights)
        importance = gates.sum(0)
        e, k = self.experts_count, self.top_k
        if k < e and abs(noise_scale) > 1e-6:
            # Smooth load estimate: probability that each expert stays in the top k under a new
            # draw of the noise, given the other logits (Shazeer et al., 2017). The original takes
            # the thresholds from the top k+1 softmax probabilities and compares raw logits with
            # them ("original"); "logit" takes them from the noisy logits.
            ranked = probs if self.load_estimate == "original" else noisy_logits
            top, _ = torch.sort(ranked, dim=-1, descending=True)
            threshold_in = top[:, k : k + 1]   # the (k+1)-th value: to beat if we are in
            threshold_out = top[:, k - 1 : k]  # the k-th value: to beat if we are out
            is_in = noisy_logits > threshold_in
            normal = torch.distributions.Normal(0.0, 1.0)
            prob_in = normal.cdf((clean - threshold_in) / noise_scale)
            prob_out = normal.cdf((clean - threshold_out) / noise_scale)
            load = torch.where(is_in, prob_in, prob_out).sum(0)
        else:
            load = (gates > 0).sum(0).float()
        return _cv_squared(importance) + _cv_squared(load)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Training path, sparse as FastMoE is in the original: each token through its top-k
        experts only (k/E of the dense path's expert work). Same values and gradients as
        :meth:`forward_dense` up to float rounding (:meth:`M3ViT.dense_moe` selects that)."""
        if self.dense:
            return self.forward_dense(x, task)
        return self.forward_sparse(x, task)[0]

    def forward_dense(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Every expert on every token, weighted by the sparse gate matrix (the reference that the
        sparse path is tested against; E/k times its expert work)."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        routing = self.route(x, task)
        gates = torch.zeros(x.shape[0], self.experts_count, dtype=x.dtype, device=x.device)
        gates = gates.scatter(1, routing.indices, routing.weights)
        ex = self.experts
        h = torch.einsum("nd,ehd->enh", x, ex.htoh4.weight) + ex.htoh4.bias[:, None, :]
        y = torch.einsum("enh,edh->end", F.gelu(h), ex.h4toh.weight) + ex.h4toh.bias[:, None, :]
        out = torch.einsum("ne,end->nd", gates, y)
        return out.reshape(shape)

    def forward_sparse(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, Routing]:
        """Hardware order: gate → per-expert queues (tokens ascending) → each non-empty expert over
        its queue → weighted accumulate per token. Returns the output and the routing (for load
        statistics). Differentiable: the training path."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        routing = self.route(x, task)
        k = routing.indices.shape[1]
        # Stable sort of the (token, slot) pairs by expert: each expert's queue, tokens ascending.
        order = torch.argsort(routing.indices.flatten(), stable=True)
        tokens = torch.div(order, k, rounding_mode="floor")
        probs = routing.weights.flatten()[order, None]
        counts = routing.load(self.experts_count).tolist()
        out = torch.zeros_like(x)
        start = 0
        for e, n in enumerate(counts):
            if n:  # an empty queue costs nothing: no weights loaded, no MACs
                queue = tokens[start:start + n]
                out = out.index_add(0, queue, probs[start:start + n] *
                                    self.experts.expert(e, x[queue]))
            start += n
        return out.reshape(shape), routing


class Mlp(nn.Module):
    """Dense MLP of the even blocks: Linear → exact GELU → Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a biased qkv projection, scale head_dim^-½."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block; odd-indexed blocks carry the MoE MLP."""

    def __init__(self, cfg: ModelConfig, moe: bool):
        super().__init__()
        self.moe = moe
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.attn = Attention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.mlp = MoEMlp(cfg) if moe else Mlp(cfg.dim, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + (self.mlp(self.norm2(x), task) if self.moe else self.mlp(self.norm2(x)))

    def forward_sparse(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, Routing | None]:
        x = x + self.attn(self.norm1(x))
        if not self.moe:
            return x + self.mlp(self.norm2(x)), None
        y, routing = self.mlp.forward_sparse(self.norm2(x), task)
        return x + y, routing


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Backbone(nn.Module):
    """The ViT-MoE encoder. No final LayerNorm: each task head starts with its own."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg, moe=(i % 2 == 1)) for i in range(cfg.depth))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if (h, w) != tuple(self.cfg.img_size):
            raise ValueError(f"model {self.cfg.name!r} is built for {self.cfg.img_size[0]}x"
                             f"{self.cfg.img_size[1]} images, got {h}x{w}; build it for this size "
                             f"(position embeddings are resized once, at build/load time)")
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


class TaskHead(nn.Module):
    """Per-token head: LayerNorm → (Linear → GELU →) Linear to patch²×C, pixel-shuffled to full
    resolution (the "linear decoder" of SETR-naive/Segmenter, matrix work the engine can run)."""

    def __init__(self, cfg: ModelConfig, channels: int):
        super().__init__()
        self.grid = cfg.grid
        self.patch = cfg.patch_size
        self.channels = channels
        out = cfg.patch_size ** 2 * channels
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        if cfg.head_hidden:
            self.fc1 = nn.Linear(cfg.dim, cfg.head_hidden)
            self.fc2 = nn.Linear(cfg.head_hidden, out)
        else:
            self.fc1 = None
            self.fc2 = nn.Linear(cfg.dim, out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, P, D] (class token removed) → maps [B, C, H, W]."""
        x = self.norm(tokens)
        if self.fc1 is not None:
            x = F.gelu(self.fc1(x))
        x = self.fc2(x)
        return pixel_shuffle_tokens(x, self.grid, self.patch, self.channels)


UPHEAD_CHANNELS = 256  # the original's conv width (hard-wired in its VisionTransformerUpHead)


class UpHead(nn.Module):
    """The original's convolutional up-head (``VisionTransformerUpHead``, ``num_conv=4``,
    ``num_upsampe_layer=4``, bilinear, ``align_corners=False``), state-dict names kept.

    LayerNorm on the patch tokens → grid → three times (3×3 conv → BatchNorm → ReLU → ×2) → 3×3
    conv → BatchNorm → ReLU → 1×1 conv to the task's channels → ×2; then resized to the input
    size as the original's ``MultiTaskModel`` does (the identity for 16-pixel patches).
    """

    def __init__(self, cfg: ModelConfig, channels: int):
        super().__init__()
        self.grid = cfg.grid
        self.img_size = tuple(cfg.img_size)
        self.channels = channels
        w = UPHEAD_CHANNELS
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.conv_0 = nn.Conv2d(cfg.dim, w, 3, 1, 1)
        self.conv_1 = nn.Conv2d(w, w, 3, 1, 1)
        self.conv_2 = nn.Conv2d(w, w, 3, 1, 1)
        self.conv_3 = nn.Conv2d(w, w, 3, 1, 1)
        self.conv_4 = nn.Conv2d(w, channels, 1, 1)
        for i in range(4):
            self.add_module(f"syncbn_fc_{i}", nn.BatchNorm2d(w))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, P, D] (class token removed) → maps [B, C, H, W]."""
        return self.decode(self.norm(tokens))

    @classmethod
    @torch.no_grad()
    def apply_post(cls, cfg: ModelConfig, channels: int, post: dict, features, scale: float):
        """The up-head after its LayerNorm (the PS's part) on the accelerator's int16 features.

        Parameters
        ----------
        post : dict
            The head's state dict without ``norm.*`` (arrays or tensors).
        features : array [D, gh, gw]
            int16 LayerNorm output of the patch tokens; real value = q × ``scale``.

        Returns
        -------
        numpy.ndarray
            float32 [C, H, W].
        """
        head = cls(cfg, channels)
        state = {k: torch.as_tensor(v) for k, v in post.items()}
        missing = sorted(set(head.state_dict()) - set(state) - {"norm.weight", "norm.bias"})
        if missing:
            raise ValueError(f"up-head weights incomplete: missing {', '.join(missing[:4])}")
        head.load_state_dict(state, strict=False)
        return head.decode_features(features, scale)

    @torch.no_grad()
    def decode_features(self, features, scale: float):
        """:meth:`decode` of int16 features [D, gh, gw] (real = q × ``scale``) → float32 [C, H, W]."""
        feats = torch.as_tensor(features.astype("float32") * float(scale))
        d, gh, gw = feats.shape
        if (gh, gw) != tuple(self.grid) or d != self.norm.normalized_shape[0]:
            raise ValueError(f"up-head built for {self.norm.normalized_shape[0]} features on a "
                             f"{self.grid[0]}x{self.grid[1]} grid, got {d} on {gh}x{gw}")
        return self.eval().decode(feats.reshape(d, gh * gw).T[None])[0].numpy()

    def decode(self, normed: torch.Tensor) -> torch.Tensor:
        """Everything after the LayerNorm (what the PS runs when the accelerator did the norm)."""
        b, _, d = normed.shape
        x = normed.transpose(1, 2).reshape(b, d, *self.grid)
        for i in range(4):
            conv, bn = getattr(self, f"conv_{i}"), getattr(self, f"syncbn_fc_{i}")
            x = F.relu(bn(conv(x)))
            if i < 3:
                x = _upsample2(x)
        x = _upsample2(self.conv_4(x))
        if tuple(x.shape[-2:]) != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode="bilinear", align_corners=False)
        return x


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="bilinear",
                         align_corners=False)


def pixel_shuffle_tokens(x: torch.Tensor, grid: tuple[int, int], patch: int,
                         channels: int) -> torch.Tensor:
    """[B, gh*gw, patch*patch*C] (per token: C-major, then rows, then columns) → [B, C, H, W]."""
    b = x.shape[0]
    gh, gw = grid
    x = x.reshape(b, gh, gw, channels, patch, patch)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, gh * patch, gw * patch)


class M3ViT(nn.Module):
    """Multi-task MoE ViT: ``backbone`` + ``decoders[task]``.

    Parameters
    ----------
    cfg : ModelConfig
        The model configuration (see :mod:`golden.config`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        head = UpHead if cfg.head_type == "uphead" else TaskHead
        self.decoders = nn.ModuleDict({t.name: head(cfg, t.channels) for t in cfg.tasks})
        mean = IMAGENET_MEAN if cfg.input_norm == "imagenet" else (0.0, 0.0, 0.0)
        std = IMAGENET_STD if cfg.input_norm == "imagenet" else (1.0, 1.0, 1.0)
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] → the network's input normalisation."""
        return (images - self.input_mean) / self.input_std

    def _task_index(self, task: str | int) -> int:
        return task if isinstance(task, int) else self.cfg.task_index(task)

    def encode(self, images: torch.Tensor, task: str | int) -> torch.Tensor:
        """Training-path encoder for one task: tokens [B, 1+P, D]."""
        t = self._task_index(task)
        x = self.backbone.embed(self.normalize(images))
        for blk in self.backbone.blocks:
            x = blk(x, t)
        return x

    def forward(self, images: torch.Tensor, tasks=None) -> dict[str, torch.Tensor]:
        """Training path: for each task (default: all) the backbone runs with that task's gates
        (as in the original ``multi_gate`` code) and the task's head decodes it.

        Returns ``{task: [B, C, H, W]}``; each MoE layer's balancing loss is in :meth:`aux_loss`.
        """
        tasks = self.cfg.task_names if tasks is None else tasks
        outputs, losses = {}, []
        for name in tasks:
            tokens = self.encode(images, name)
            losses.extend(m.loss for m in self.moe_layers() if m.loss is not None)
            outputs[name] = self.decoders[name](tokens[:, 1:])
        self._aux_loss = torch.stack(losses).sum() if losses else None
        return outputs

    def aux_loss(self) -> torch.Tensor:
        """Sum of the balancing losses of the last training forward (0 in eval mode)."""
        loss = getattr(self, "_aux_loss", None)
        return loss if loss is not None else torch.zeros(())

    def moe_layers(self) -> list[MoEMlp]:
        return [blk.mlp for blk in self.backbone.blocks if blk.moe]

    @contextmanager
    def dense_moe(self):
        """Within this context :meth:`forward` runs every expert on every token
        (:meth:`MoEMlp.forward_dense`: what a naive implementation computes; the reference the
        sparse path is tested against)."""
        layers = self.moe_layers()
        for m in layers:
            m.dense = True
        try:
            yield self
        finally:
            for m in layers:
                m.dense = False

    @torch.no_grad()
    def infer(self, images: torch.Tensor, task: str | int,
              return_routing: bool = False):
        """Per-task sparse inference, the hardware's order of work.

        Only ``task``'s gates run; MoE layers go expert by expert over per-expert token queues
        (tokens of all images in the batch pooled, as one frame's tokens are on chip); experts with
        empty queues are skipped; only ``task``'s head runs.

        Returns the maps [B, C, H, W], and with ``return_routing`` also the list of
        :class:`Routing` (one per MoE layer).
        """
        t = self._task_index(task)
        name = self.cfg.task_names[t]
        x = self.backbone.embed(self.normalize(images))
        routings = []
        for blk in self.backbone.blocks:
            x, routing = blk.forward_sparse(x, t)
            if routing is not None:
                routings.append(routing)
        out = self.decoders[name](x[:, 1:])
        return (out, routings) if return_routing else out

    @staticmethod
    def predictions(task_kind: str, output: torch.Tensor) -> torch.Tensor:
        """Head output → prediction: class map (argmax) for segmentation, values for regression."""
        if task_kind == "segmentation":
            return output.argmax(dim=1)
        return output[:, 0] if output.shape[1] == 1 else output


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int],
                     new_grid: tuple[int, int]) -> torch.Tensor:
    """Resize position embeddings [1, 1+gh*gw, D] to another (possibly non-square) patch grid.

    The class token's embedding is kept; the grid part is interpolated bilinearly with
    ``align_corners=False``, exactly as the original does once when it builds a model for another
    input size.
    """
    n_old = old_grid[0] * old_grid[1]
    if pos_embed.shape[1] != 1 + n_old:
        raise ValueError(f"pos_embed has {pos_embed.shape[1]} positions, expected 1 + "
                         f"{old_grid[0]}x{old_grid[1]} = {1 + n_old}")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat([cls, grid], dim=1)


def load_state_dict_resized(model: M3ViT, state_dict: dict, source_cfg: ModelConfig) -> None:
    """Load a state dict trained for ``source_cfg`` into ``model`` built for another input size:
    position embeddings are resized once here, never at inference."""
    state = dict(state_dict)
    if source_cfg.img_size != model.cfg.img_size:
        if source_cfg.patch_size != model.cfg.patch_size:
            raise ValueError("cannot load weights across patch sizes "
                             f"({source_cfg.patch_size} vs {model.cfg.patch_size})")
        if model.cfg.head_hidden != source_cfg.head_hidden:
            raise ValueError("head widths differ between checkpoint and model")
        key = "backbone.pos_embed"
        state[key] = resize_pos_embed(state[key], source_cfg.grid, model.cfg.grid)
    model.load_state_dict(state)
