"""Post-training quantisation: float :class:`golden.model.M3ViT` → :class:`IntM3ViT`.

Floats live only here, where the integer constants are chosen:

* weights: symmetric int8 per output channel, ``s_w[c] = max|W[c]| / 127``;
* biases: int32 in accumulator units, ``round(b / (s_in * s_w[c]))``;
* activations: symmetric per tensor, from the maximum magnitude observed on calibration images
  (every task's pass, so shared layers see every task's routing): int8 operands
  ``s = max / 127``; the residual stream one int16 scale for the whole network with 25 % headroom
  (LayerNorm is scale-invariant, so one scale costs nothing but range); head outputs int16;
* every scale change is an integer multiplier and shift (:func:`quantize_multiplier`);
* input normalisation is folded into the patch embedding, which takes raw uint8 pixels.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from ..model import M3ViT
from . import ops
from .model import (IntAttention, IntBlock, IntEmbed, IntHead, IntLayerNorm, IntLinear, IntM3ViT,
                    IntMlp, IntMoE, Requant)

__all__ = ["quantize_multiplier", "calibrate", "quantize_model", "pixels_from_image"]

RESIDUAL_HEADROOM = 1.25
OUTPUT_HEADROOM = 1.25
LOG2E = 1.0 / math.log(2.0)


def quantize_multiplier(m) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers (> 0) → (M, sh) with ``M * 2**-sh ≈ m``, ``2**14 <= M < 2**15``.

    Multipliers below 2**-48 get sh = 62 and a small (possibly 0) M; multipliers >= 2**14 cannot
    be represented and raise.
    """
    m = np.atleast_1d(np.asarray(m, np.float64))
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("multipliers must be finite and >= 0")
    mult = np.zeros(m.shape, np.int64)
    shift = np.full(m.shape, 62, np.int64)
    for i, v in enumerate(m.ravel()):
        if v == 0:
            continue
        sh = ops.MULT_BITS - 1 - math.floor(math.log2(v))
        mm = round(v * 2.0 ** sh)
        if mm == 1 << ops.MULT_BITS:
            mm, sh = mm >> 1, sh - 1
        if sh < 1:
            raise ValueError(f"multiplier {v} is too large for a {ops.MULT_BITS}-bit requantiser")
        if sh > 62:
            mm, sh = round(v * 2.0 ** 62), 62
        mult.flat[i], shift.flat[i] = mm, sh
    return mult, shift


def pixels_from_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float image [3, H, W] in [0, 1] → the accelerator's uint8 pixels (as int64)."""
    x = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return np.clip(np.round(x * 255), 0, 255).astype(np.int64)


# ------------------------------------------------------------------------- calibration

class _Ranges:
    """Maximum magnitude per named tensor."""

    def __init__(self):
        self.max = defaultdict(float)

    def see(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if x.numel():
            self.max[name] = max(self.max[name], float(x.detach().abs().max()))
        return x


@torch.no_grad()
def calibrate(model: M3ViT, images: torch.Tensor) -> dict[str, float]:
    """Run the float model (per-task sparse path, every task) on ``images`` in [0, 1] (quantised
    to 8-bit pixels first, as the accelerator sees them) and record every quantised tensor's
    maximum magnitude."""
    model.eval()
    cfg = model.cfg
    rng = _Ranges()
    images = torch.round(images * 255) / 255
    for t, name in enumerate(cfg.task_names):
        for image in images:
            x = model.backbone.embed(model.normalize(image[None]))[0]
            rng.see("res", x)
            for i, blk in enumerate(model.backbone.blocks):
                h = rng.see(f"b{i}.ln1", blk.norm1(x))
                n, d = h.shape
                heads = blk.attn.heads
                q, k, v = blk.attn.qkv(h).reshape(n, 3, heads, d // heads).permute(1, 2, 0, 3)
                rng.see(f"b{i}.q", q), rng.see(f"b{i}.k", k), rng.see(f"b{i}.v", v)
                attn = torch.softmax(q @ k.transpose(-2, -1) * blk.attn.scale, -1)
                ctx = rng.see(f"b{i}.ctx", (attn @ v).transpose(0, 1).reshape(n, d))
                x = rng.see("res", x + blk.attn.proj(ctx))
                h = rng.see(f"b{i}.ln2", blk.norm2(x))
                if blk.moe:
                    moe = blk.mlp
                    routing = moe.route(h, t)
                    out = torch.zeros_like(h)
                    for e, queue in enumerate(routing.queues(cfg.experts)):
                        if queue.numel() == 0:
                            continue
                        ex = moe.experts
                        hid = F.gelu(F.linear(h[queue], ex.htoh4.weight[e], ex.htoh4.bias[e]))
                        rng.see(f"b{i}.hidden", hid)
                        y = rng.see("res", F.linear(hid, ex.h4toh.weight[e], ex.h4toh.bias[e]))
                        slot = (routing.indices[queue] == e).to(h.dtype)
                        out.index_add_(0, queue, (routing.weights[queue] * slot).sum(-1, True) * y)
                    x = rng.see("res", x + out)
                else:
                    hid = rng.see(f"b{i}.hidden", F.gelu(blk.mlp.fc1(h)))
                    x = rng.see("res", x + rng.see("res", blk.mlp.fc2(hid)))
            head = model.decoders[name]
            hn = rng.see(f"head.{name}.ln", head.norm(x[1:]))
            if cfg.head_type == "uphead":
                continue  # the accelerator runs the up-head's LayerNorm only
            if head.fc1 is not None:
                hn = rng.see(f"head.{name}.hidden", F.gelu(head.fc1(hn)))
            rng.see(f"head.{name}.out", head.fc2(hn))
    return dict(rng.max)


# ------------------------------------------------------------------------- quantisation

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] float → (int8 [K, N] for x @ W, per-output-channel scales [N])."""
    s = np.abs(w).max(axis=1) / 127
    s = np.where(s > 0, s, 1.0)
    q = np.clip(np.round(w / s[:, None]), -127, 127).astype(np.int64)
    return q.T.copy(), s


def _bias(b: np.ndarray | None, acc_scale: np.ndarray) -> np.ndarray:
    if b is None:
        return np.zeros(acc_scale.shape, np.int64)
    q = np.round(b / acc_scale)
    if np.any(np.abs(q) >= 2 ** 30):
        raise ValueError("bias does not fit the int32 accumulator with these scales")
    return q.astype(np.int64)


def _linear(w: np.ndarray, b: np.ndarray | None, s_in: float, out_scale, bits: int,
            signed: bool = True) -> IntLinear:
    """A quantised linear layer whose accumulator is requantised to ``out_scale`` (per channel or
    scalar) in ``bits``."""
    wq, sw = _weights(w)
    acc_scale = s_in * sw
    mult, shift = quantize_multiplier(acc_scale / np.broadcast_to(out_scale, acc_scale.shape))
    return IntLinear(wq, _bias(b, acc_scale), Requant(mult, shift, bits, signed))


def _identity(d: int, bits: int) -> IntLinear:
    """x @ I with the accumulator passed through unchanged (``acc · 2¹⁴ >> 14``)."""
    one = 1 << 14
    return IntLinear(np.eye(d, dtype=np.int64), np.zeros(d, np.int64),
                     Requant(np.full(d, one, np.int64), np.full(d, 14, np.int64), bits))


def _uphead(head, s_ln: float, s_res: float) -> IntHead:
    """The original's up-head: its LayerNorm on the accelerator (int8 tokens, stored through an
    identity matmul), its convolutions in float on the PS (``post``)."""
    post = {k: v.detach().cpu().numpy().copy() for k, v in head.state_dict().items()
            if not k.startswith("norm.")}  # their own dtypes (float32), as a checkpoint holds them
    return IntHead(_layer_norm(head.norm, s_ln, s_res), None, _identity(head.norm.normalized_shape[0],
                   16), s_ln, kind="uphead", post=post)


def _requant_scalar(m: float, bits: int, signed: bool = True) -> Requant:
    mult, shift = quantize_multiplier(m)
    return Requant(mult[0], shift[0], bits, signed)


def _layer_norm(ln: torch.nn.LayerNorm, s_out: float, s_res: float) -> IntLayerNorm:
    d = ln.normalized_shape[0]
    gamma = np.round(_np(ln.weight) / s_out * 2 ** ops.LN_GAMMA_FRAC).astype(np.int64)
    beta = np.round(_np(ln.bias) / s_out * 2 ** (ops.LN_FRAC + ops.LN_GAMMA_FRAC)).astype(np.int64)
    if np.any(np.abs(gamma) >= 2 ** 24) or np.any(np.abs(beta) >= 2 ** 47):
        raise ValueError("LayerNorm gamma/beta too large for their 24/48-bit integer forms")
    eps = max(1, round(d * d * ln.eps / s_res ** 2))
    return IntLayerNorm(gamma, beta, int(eps), ops.LN_GAMMA_FRAC)


def _mlp(fc1_w, fc1_b, fc2_w, fc2_b, s_in, s_hidden, s_out, out_bits) -> IntMlp:
    """fc1 → Q10 → GELU → Q14 → int8 (s_hidden) → fc2 → ``s_out`` in ``out_bits``."""
    fc1 = _linear(fc1_w, fc1_b, s_in, 2.0 ** -ops.GELU_FRAC, 16)
    act = _requant_scalar(2.0 ** -ops.GELU_OUT_FRAC / s_hidden, 8)
    fc2 = _linear(fc2_w, fc2_b, s_hidden, s_out, out_bits)
    return IntMlp(fc1, act, fc2)


def _stack(mlps: list[IntMlp]) -> IntMlp:
    def lin(ls):
        return IntLinear(np.stack([l.weight for l in ls]), np.stack([l.bias for l in ls]),
                         Requant(np.stack([l.out.mult for l in ls]),
                                 np.stack([l.out.shift for l in ls]), ls[0].out.bits))
    return IntMlp(lin([m.fc1 for m in mlps]), mlps[0].act_out, lin([m.fc2 for m in mlps]))


def _scale(ranges: dict, name: str, levels: int, headroom: float = 1.0) -> float:
    v = ranges.get(name, 0.0) * headroom
    return v / levels if v > 0 else 1.0 / levels


@torch.no_grad()
def quantize_model(model: M3ViT, calib_images: torch.Tensor) -> IntM3ViT:
    """Post-training quantisation of ``model`` calibrated on ``calib_images`` [N, 3, H, W]."""
    model.eval()
    cfg = model.cfg
    ranges = calibrate(model, calib_images)
    s_res = _scale(ranges, "res", 32767, RESIDUAL_HEADROOM)
    scales = {"res": s_res}

    def s8(name):
        scales[name] = _scale(ranges, name, 127)
        return scales[name]

    # Patch embedding on uint8 pixels: x_norm = (p/255 - mean)/std folded into W and b.
    bb = model.backbone
    w = _np(bb.patch_embed.proj.weight)                                  # [D, 3, p, p]
    mean = _np(model.input_mean).reshape(3)
    std = _np(model.input_std).reshape(3)
    w_fold = w / (255.0 * std[None, :, None, None])
    b_fold = _np(bb.patch_embed.proj.bias) - (w * (mean / std)[None, :, None, None]).sum((1, 2, 3))
    patch = _linear(w_fold.reshape(cfg.dim, -1), b_fold, 1.0, s_res, 16)
    pos = _np(bb.pos_embed[0])
    to_res = lambda v: np.clip(np.round(v / s_res), -32768, 32767).astype(np.int64)
    embed = IntEmbed(patch, to_res(pos[1:]), to_res(_np(bb.cls_token[0, 0]) + pos[0]))

    blocks = []
    for i, blk in enumerate(bb.blocks):
        s_ln1, s_ln2 = s8(f"b{i}.ln1"), s8(f"b{i}.ln2")
        s_q, s_k, s_v, s_ctx = s8(f"b{i}.q"), s8(f"b{i}.k"), s8(f"b{i}.v"), s8(f"b{i}.ctx")
        d = cfg.dim
        qkv_out = np.concatenate([np.full(d, s_q), np.full(d, s_k), np.full(d, s_v)])
        attn = IntAttention(
            heads=cfg.heads,
            qkv=_linear(_np(blk.attn.qkv.weight), _np(blk.attn.qkv.bias), s_ln1, qkv_out, 8),
            logits=_requant_scalar(s_q * s_k * blk.attn.scale * LOG2E * 2 ** ops.EXP_FRAC, 32),
            context=_requant_scalar(2.0 ** -8 * s_v / s_ctx, 8),
            proj=_linear(_np(blk.attn.proj.weight), _np(blk.attn.proj.bias), s_ctx, s_res, 16))
        s_hidden = s8(f"b{i}.hidden")
        int_blk = IntBlock(_layer_norm(blk.norm1, s_ln1, s_res), attn,
                           _layer_norm(blk.norm2, s_ln2, s_res))
        if blk.moe:
            moe = blk.mlp
            gates = []
            for t in range(len(cfg.tasks)):
                gw, gb = moe.gate_weight_and_bias(t)
                gates.append(_linear(_np(gw).T, None if gb is None else _np(gb), s_ln2,
                                     1.0 / (LOG2E * 2 ** ops.EXP_FRAC), 32))
            ex = moe.experts
            experts = _stack([_mlp(_np(ex.htoh4.weight[e]), _np(ex.htoh4.bias[e]),
                                   _np(ex.h4toh.weight[e]), _np(ex.h4toh.bias[e]),
                                   s_ln2, s_hidden, s_res, 16) for e in range(cfg.experts)])
            int_blk.moe = IntMoE(cfg.top_k, gates, experts)
        else:
            int_blk.mlp = _mlp(_np(blk.mlp.fc1.weight), _np(blk.mlp.fc1.bias),
                               _np(blk.mlp.fc2.weight), _np(blk.mlp.fc2.bias),
                               s_ln2, s_hidden, s_res, 16)
        blocks.append(int_blk)

    heads = {}
    for task in cfg.tasks:
        head = model.decoders[task.name]
        s_ln = s8(f"head.{task.name}.ln")
        if cfg.head_type == "uphead":
            heads[task.name] = _uphead(head, s_ln, s_res)
            continue
        s_out = _scale(ranges, f"head.{task.name}.out", 32767, OUTPUT_HEADROOM)
        scales[f"head.{task.name}.out"] = s_out
        ln = _layer_norm(head.norm, s_ln, s_res)
        if head.fc1 is not None:
            mlp = _mlp(_np(head.fc1.weight), _np(head.fc1.bias), _np(head.fc2.weight),
                       _np(head.fc2.bias), s_ln, s8(f"head.{task.name}.hidden"), s_out, 16)
            heads[task.name] = IntHead(ln, mlp, None, s_out)
        else:
            fc = _linear(_np(head.fc2.weight), _np(head.fc2.bias), s_ln, s_out, 16)
            heads[task.name] = IntHead(ln, None, fc, s_out)
    return IntM3ViT(cfg, embed, blocks, heads, s_res, scales)
