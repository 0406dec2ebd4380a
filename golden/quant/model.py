"""The integer M³ViT: every constant the hardware needs, and integer inference built from
:mod:`golden.quant.ops` only.

Dataflow of one frame (formats in brackets; see ``docs/numerics.md``)::

    pixels [uint8] ─ patch matmul ─ requant ─ + pos ──> residual r [int16, scale s_res]
    per block:  r ─ LN1 [int8] ─ qkv matmul ─ requant ─ q, k, v [int8]
                q·kᵀ [int32] ─ requant → base-2 logits [Q16] ─ softmax ─ P [uint8 Q8]
                P·V [int32] ─ requant [int8] ─ proj matmul ─ requant [int16] ─ r += (sat16)
                r ─ LN2 [int8] ─ dense MLP or MoE ─ requant [int16] ─ r += (sat16)
       MLP:     fc1 [int32] ─ requant [Q10 int16] ─ GELU [Q14] ─ requant [int8] ─ fc2 [int32]
       MoE:     gate matmul ─ requant [Q16 base-2 logits] ─ top-k + softmax [Q16 probs]
                per expert with a non-empty queue: gather ─ MLP ─ requant [int16]
                ─ × prob, round ─ accumulate [int32]; then r += (sat16)
    per task head: LN [int8] ─ fc1 ─ GELU ─ fc2 ─ requant ─ outputs [int16, scale s_out]

:meth:`IntM3ViT.infer` evaluates MoE layers expert by expert over per-expert token queues, exactly
as the hardware orders it; ``order="token"`` evaluates them token by token instead, as a check
that the reordering changes no bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from . import ops

__all__ = ["Requant", "IntLinear", "IntLayerNorm", "IntAttention", "IntMlp", "IntMoE", "IntBlock",
           "IntHead", "IntEmbed", "IntM3ViT", "RoutingInt", "FORMAT_VERSION"]

FORMAT_VERSION = 1


@dataclass
class Requant:
    """acc → next format: ``saturate(round_shift(acc * mult, shift), bits, signed)``."""

    mult: np.ndarray
    shift: np.ndarray
    bits: int
    signed: bool = True

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        return ops.requantize(acc, self.mult, self.shift, self.bits, self.signed)

    def select(self, e: int) -> "Requant":
        """The expert-``e`` slice of a stacked (per-expert) requantiser."""
        return Requant(self.mult[e], self.shift[e], self.bits, self.signed)


@dataclass
class IntLinear:
    """int8 weights [K, N] (x @ W), int32 bias [N] in accumulator units, and the output requant.

    Expert layers stack a leading expert axis on all three; :meth:`select` picks one.
    """

    weight: np.ndarray
    bias: np.ndarray
    out: Requant

    def __call__(self, x: np.ndarray, a_signed: bool = True) -> np.ndarray:
        return self.out(ops.matmul(x, self.weight, self.bias, a_signed=a_signed))

    def select(self, e: int) -> "IntLinear":
        return IntLinear(self.weight[e], self.bias[e], self.out.select(e))


@dataclass
class IntLayerNorm:
    gamma: np.ndarray
    beta: np.ndarray
    eps: int
    gamma_frac: int

    def __call__(self, r: np.ndarray) -> np.ndarray:
        return ops.layer_norm(r, self.gamma, self.beta, self.eps, self.gamma_frac)


@dataclass
class IntAttention:
    heads: int
    qkv: IntLinear          # → int8 q | k | v (per-channel requant to three scales)
    logits: Requant         # q·kᵀ accumulator → base-2 logits, Q16 (scale and log2 e folded in)
    context: Requant        # P·V accumulator → int8 input of proj
    proj: IntLinear         # → residual format (int16)

    def __call__(self, x8: np.ndarray) -> np.ndarray:
        n, d = x8.shape
        hd = d // self.heads
        qkv = self.qkv(x8).reshape(n, 3, self.heads, hd).transpose(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]                              # [H, N, hd] int8
        ctx = np.empty((self.heads, n, hd), np.int64)
        for h in range(self.heads):
            t = self.logits(ops.matmul(q[h], k[h].T))                  # [N, N] Q16
            p = ops.softmax_online(t, out_frac=8, out_bits=8)          # uint8 Q8
            ctx[h] = self.context(ops.matmul(p, v[h], a_signed=False))
        return self.proj(ctx.transpose(1, 0, 2).reshape(n, d))


@dataclass
class IntMlp:
    """fc1 → requant to Q10 → GELU (Q14) → requant to int8 → fc2 → requant (residual format)."""

    fc1: IntLinear
    act_out: Requant
    fc2: IntLinear

    def __call__(self, x8: np.ndarray) -> np.ndarray:
        return self.fc2(self.act_out(ops.gelu_q10(self.fc1(x8))))

    def select(self, e: int) -> "IntMlp":
        return IntMlp(self.fc1.select(e), self.act_out, self.fc2.select(e))


@dataclass
class RoutingInt:
    indices: np.ndarray     # [N, k]
    probs: np.ndarray       # [N, k] Q16

    def queues(self, experts: int) -> list[np.ndarray]:
        """Per expert: the indices of the tokens routed to it, ascending."""
        return [np.nonzero((self.indices == e).any(-1))[0] for e in range(experts)]

    def load(self, experts: int) -> np.ndarray:
        return np.bincount(self.indices.ravel(), minlength=experts)


@dataclass
class IntMoE:
    top_k: int
    gates: list[IntLinear]  # per task: weight [D, E], bias [E], requant → Q16 base-2 logits
    experts: IntMlp         # stacked: weights [E, …]

    @property
    def num_experts(self) -> int:
        return self.experts.fc1.weight.shape[0]

    def route(self, x8: np.ndarray, task: int) -> RoutingInt:
        t = self.gates[task](x8)
        return RoutingInt(*ops.gate_top_k(t, self.top_k))

    def __call__(self, x8: np.ndarray, task: int, order: str = "expert"):
        routing = self.route(x8, task)
        acc = np.zeros(x8.shape, np.int64)
        if order == "expert":
            for e, queue in enumerate(routing.queues(self.num_experts)):
                if queue.size == 0:
                    continue                       # empty queue: no weights fetched, no MACs
                slot_p = np.where(routing.indices[queue] == e, routing.probs[queue], 0).sum(-1)
                y = self.experts.select(e)(x8[queue])
                acc = ops.moe_accumulate(acc, queue, y, slot_p)
        elif order == "token":
            for n in range(x8.shape[0]):
                for slot in range(self.top_k):
                    e = int(routing.indices[n, slot])
                    y = self.experts.select(e)(x8[n : n + 1])
                    acc = ops.moe_accumulate(acc, np.array([n]), y, routing.probs[n, slot : slot + 1])
        else:
            raise ValueError(f"order must be 'expert' or 'token', not {order!r}")
        return acc, routing


@dataclass
class IntBlock:
    ln1: IntLayerNorm
    attn: IntAttention
    ln2: IntLayerNorm
    mlp: IntMlp | None = None
    moe: IntMoE | None = None


def post_digest(post: dict) -> str:
    """SHA-256 of an up-head's PS-side tensors (names, dtypes, shapes, bytes): model images record
    it so the firmware can tell that ``--uphead`` brings the head the image was compiled with."""
    h = hashlib.sha256()
    for key in sorted(post):
        a = np.ascontiguousarray(np.asarray(post[key]))
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class IntHead:
    """One task head on the accelerator.

    ``kind="linear"``: LayerNorm → MLP or linear layer, per token, to patch²×C int16 values.
    ``kind="uphead"`` (the original's convolutional up-head): LayerNorm only, stored through an
    identity ``fc`` as D int16 features per token (int8 values); ``post`` holds the up-head's
    float convolution/BatchNorm tensors that the PS applies (:meth:`IntM3ViT.predict`).
    """

    ln: IntLayerNorm
    mlp: IntMlp | None       # fc1 → GELU → fc2 (when the head has a hidden layer)
    fc: IntLinear | None     # single linear layer otherwise
    out_scale: float         # int16 output → real value (used by the PS, not the accelerator)
    kind: str = "linear"
    post: dict | None = None  # uphead: float32 state dict of everything after its LayerNorm

    def __call__(self, r: np.ndarray) -> np.ndarray:
        x8 = self.ln(r)
        return self.mlp(x8) if self.mlp is not None else self.fc(x8)


@dataclass
class IntEmbed:
    patch: IntLinear        # uint8 pixels [P, 3*p*p] (normalisation folded in) → int16 residual
    pos: np.ndarray         # int16 [P, D] patch position embeddings, residual format
    cls: np.ndarray         # int16 [D]: class token + its position embedding

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        x = ops.residual_add(self.patch(patches, a_signed=False), self.pos)
        return np.concatenate([self.cls[None], x], 0)


@dataclass
class IntM3ViT:
    """Integer M³ViT: constants for every hardware operation plus integer inference."""

    cfg: ModelConfig
    embed: IntEmbed
    blocks: list[IntBlock]
    heads: dict[str, IntHead]
    res_scale: float                       # residual int16 → real (diagnostics only)
    scales: dict[str, float] = field(default_factory=dict)  # calibrated scales, for reference

    # ------------------------------------------------------------------ inference

    def patches(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 image [3, H, W] → [P, 3*p*p] patch rows (channel, row, column order)."""
        c, h, w = pixels.shape
        if (h, w) != tuple(self.cfg.img_size) or c != 3:
            raise ValueError(f"expected a 3x{self.cfg.img_size[0]}x{self.cfg.img_size[1]} "
                             f"uint8 image, got {pixels.shape}")
        return ops.patch_rows(ops._as_int(pixels), self.cfg.patch_size)

    def encode(self, pixels: np.ndarray, task: int | str, order: str = "expert"):
        """Residual stream after the last block [1+P, D] int16 and the routing of each MoE layer."""
        t = task if isinstance(task, int) else self.cfg.task_index(task)
        r = self.embed(self.patches(pixels))
        routings = []
        for blk in self.blocks:
            r = ops.residual_add(r, blk.attn(blk.ln1(r)))
            x8 = blk.ln2(r)
            if blk.moe is not None:
                acc, routing = blk.moe(x8, t, order)
                routings.append(routing)
                r = ops.residual_add(r, acc)
            else:
                r = ops.residual_add(r, blk.mlp(x8))
        return r, routings

    def infer(self, pixels: np.ndarray, task: int | str, order: str = "expert",
              return_routing: bool = False):
        """One frame, one task: int16 head outputs [C, H, W] (real value = q * out_scale)."""
        name = task if isinstance(task, str) else self.cfg.task_names[task]
        r, routings = self.encode(pixels, name, order)
        out = self.head_output(name, r)
        return (out, routings) if return_routing else out

    def head_output(self, task: str, r: np.ndarray) -> np.ndarray:
        """Task ``task``'s head on the encoder's residual stream ``r`` [1+P, D] → [C, H, W]
        (an up-head: its features [D, gh, gw])."""
        head = self.heads[task]
        out = head(r[1:])
        gh, gw = self.cfg.grid
        if head.kind == "uphead":  # [D, gh, gw] features for the PS's up-head
            return out.reshape(gh, gw, -1).transpose(2, 0, 1)
        p, c = self.cfg.patch_size, self.cfg.task(task).channels
        return out.reshape(gh, gw, c, p, p).transpose(2, 0, 3, 1, 4).reshape(c, gh * p, gw * p)

    def predict(self, pixels: np.ndarray, task: str) -> np.ndarray:
        """Class map (lowest class wins ties) or real-valued map, as the PS post-processes."""
        return self.prediction(task, self.infer(pixels, task))

    def prediction(self, task: str, out: np.ndarray) -> np.ndarray:
        """:meth:`predict` from a head output already computed."""
        if self.heads[task].kind == "uphead":
            out = self.uphead_output(task, out)
            if self.cfg.task(task).kind == "segmentation":
                return np.argmax(out, axis=0)  # float logits: first maximum wins, as numpy's
            return out[0] if out.shape[0] == 1 else out
        if self.cfg.task(task).kind == "segmentation":
            return ops.argmax_lowest(out, axis=0)
        real = out * self.heads[task].out_scale
        return real[0] if real.shape[0] == 1 else real

    def uphead_output(self, task: str, features: np.ndarray) -> np.ndarray:
        """An up-head task's float output [C, H, W] from its int16 features [D, gh, gw]."""
        from golden.model import UpHead  # torch: only for up-head models
        return UpHead.apply_post(self.cfg, self.cfg.task(task).channels, self.heads[task].post,
                                 features, self.heads[task].out_scale)

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        tree = _to_tree(self, arrays, "m")
        meta = {"format": FORMAT_VERSION, "tree": tree}
        buf = io.BytesIO()
        np.savez_compressed(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                            **arrays)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "IntM3ViT":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"integer model {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["__meta__"]).decode())
                arrays = {k: data[k] for k in data.files if k != "__meta__"}
        except Exception as exc:
            raise ValueError(f"{path} is not an integer M3ViT model: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: format {meta.get('format')} is not {FORMAT_VERSION}")
        return _from_tree(meta["tree"], arrays)


_TYPES = {c.__name__: c for c in (Requant, IntLinear, IntLayerNorm, IntAttention, IntMlp, IntMoE,
                                  IntBlock, IntHead, IntEmbed, IntM3ViT)}


def _to_tree(obj, arrays: dict, path: str):
    if isinstance(obj, ModelConfig):
        return {"__config__": obj.to_dict()}
    if dataclasses.is_dataclass(obj):
        return {"__type__": type(obj).__name__,
                **{f.name: _to_tree(getattr(obj, f.name), arrays, f"{path}.{f.name}")
                   for f in dataclasses.fields(obj)}}
    if isinstance(obj, np.ndarray):
        arrays[path] = obj
        return {"__array__": path}
    if isinstance(obj, list):
        return [_to_tree(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {"__dict__": {k: _to_tree(v, arrays, f"{path}.{k}") for k, v in obj.items()}}
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, np.integer):
        return int(obj)
    raise TypeError(f"cannot serialise {type(obj)} at {path}")


def _from_tree(node, arrays):
    if isinstance(node, list):
        return [_from_tree(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__config__" in node:
        return ModelConfig.from_dict(node["__config__"])
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__dict__" in node:
        return {k: _from_tree(v, arrays) for k, v in node["__dict__"].items()}
    kind = _TYPES[node["__type__"]]
    return kind(**{k: _from_tree(v, arrays) for k, v in node.items() if k != "__type__"})
