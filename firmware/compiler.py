"""Compiler: integer M³ViT (:class:`golden.quant.model.IntM3ViT`) → model image for one
accelerator config.

The image (:class:`firmware.image.ModelImage`) holds

* the **data section** (DATA_BASE points at its byte 0): every weight matrix in the B-bank layout
  (column tile by column tile, one ``C``-byte word per reduction index), per-channel lane
  constants, LayerNorm γ/β, the class token + position embeddings; MoE experts at a fixed
  stride (one expert = its fc1 and fc2, loaded together) and the gates of all tasks at a fixed
  stride, so the **same program** runs every task: the sequencer adds ``TASK_ID × stride`` to the
  gate loads and ``TASK_JUMP`` picks the task's head code;
* the **program**: 256-bit instructions (:mod:`rtl.control.isa`), one listing line per instruction in
  ``meta["listing"]`` (the layer each belongs to, for cycle reports);
* **meta**: model and accelerator configs, input/output layouts (:mod:`firmware.layout`).

Weights of consecutive dense matrices alternate between the two halves of the B banks: while
one matrix multiplies, the next one is prefetched. Inside a MoE layer the expert loop does the
same with the router's non-empty experts (``next_expert`` loads, ping-pong ``parity``).

``python -m firmware.compiler --config nano --out nano.m3vimg`` compiles a model.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.image import ModelImage
from golden.argtypes import out_file
from golden.quant import ops
from golden.quant.model import IntLinear, IntM3ViT, IntMlp, Requant, post_digest

from rtl.array.lanes import Aux, OutBits
from rtl.config import CONST_RECORD_BYTES, LNP_RECORD_BYTES, AccelConfig
from rtl.control.isa import MAX_TASKS, Base, Dest, Op, OutDest, Unit, encode
from rtl.control.version import ISA_DIGEST, ISA_VERSION, VERSION

__all__ = ["compile_model", "CompiledModel", "CompileError", "COMPILER_VERSION"]

COMPILER_VERSION = "1"
_ALIGN = 64
_OUT_BITS = {8: OutBits.INT8, 16: OutBits.INT16, 32: OutBits.INT32}


class CompileError(ValueError):
    """The model does not fit this accelerator config (the message says what and why)."""


@dataclass
class CompiledModel:
    image: ModelImage
    listing: list[str]
    macs: list[int] = field(default_factory=list)      # useful MACs per instruction

    def program_text(self) -> str:
        return "\n".join(f"{i:5d}  {line}" for i, line in enumerate(self.listing))


class _Data:
    """The DDR data section being built."""

    def __init__(self):
        self.buf = bytearray()

    def add(self, blob: bytes) -> int:
        pad = -len(self.buf) % _ALIGN
        self.buf += bytes(pad)
        off = len(self.buf)
        self.buf += blob
        return off


def _b_words(w: np.ndarray, C: int) -> bytes:
    """Weights ``[K, N]`` (x @ W) → B-bank words: column tile by tile, a word per k."""
    k, n = w.shape
    tiles = -(-n // C)
    pad = np.zeros((k, tiles * C), np.int8)
    pad[:, :n] = w
    return pad.reshape(k, tiles, C).transpose(1, 0, 2).astype(np.int8).tobytes()


_CONST_DTYPE = np.dtype([("bias", "<i4"), ("mult", "<u2"), ("shift", "u1"), ("pad", "u1")])
assert _CONST_DTYPE.itemsize == CONST_RECORD_BYTES


def _const_rows(bias, req: Requant, n: int, C: int) -> bytes:
    tiles = -(-n // C)
    rec = np.zeros(tiles * C, _CONST_DTYPE)
    rec["shift"] = 1
    rec["bias"][:n] = np.broadcast_to(np.asarray(bias, np.int64), (n,))
    rec["mult"][:n] = np.broadcast_to(np.asarray(req.mult, np.int64), (n,))
    rec["shift"][:n] = np.broadcast_to(np.asarray(req.shift, np.int64), (n,))
    return rec.tobytes()


class _Program:
    def __init__(self):
        self.items: list[tuple[Op, dict, str]] = []
        self.labels: dict[str, int] = {}
        self.macs: list[int] = []

    def emit(self, op: Op, note: str, macs: int = 0, **fields) -> int:
        self.items.append((op, fields, note))
        self.macs.append(macs)
        return len(self.items) - 1

    def label(self, name: str) -> None:
        self.labels[name] = len(self.items)

    def assemble(self) -> tuple[bytes, list[str]]:
        words, listing = [], []
        for op, fields, note in self.items:
            f = {k: (self.labels[v] if isinstance(v, str) and k in ("target",) else v)
                 for k, v in fields.items()}
            if op == Op.TASK_JUMP:
                f["targets"] = [self.labels[t] for t in f["targets"]]
            words.append(encode(op, **f))
            desc = " ".join(f"{k}={_short(v)}" for k, v in f.items())
            listing.append(f"{op.name:<12} {note:<28} {desc}")
        return b"".join(words), listing


def _short(v):
    if hasattr(v, "name"):
        return v.name
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


class _Compiler:
    def __init__(self, model: IntM3ViT, cfg: AccelConfig):
        self.model, self.cfg = model, cfg
        self.mc = mc = model.cfg
        self.C, self.R = cfg.array_cols, cfg.array_rows
        self.words = cfg.memory_words()
        self.b_half = cfg.b_half_words
        self.c_half = cfg.const_half_rows
        self.c_static = 2 * self.c_half
        self.data = _Data()
        self.prog = _Program()
        self.ln_loaded = None        # the LayerNorm whose γ/β are already loaded (ahead)
        self.T = mc.num_patches + 1
        self.P = mc.num_patches
        self.D = mc.dim
        self.hd = mc.dim // mc.heads
        self.check()
        C, T = self.C, self.T
        self.dw = self.D // C
        self.pw = -(-T // C)
        self.kwp = -(-(3 * mc.patch_size ** 2) // C)
        hidden = [mc.mlp_hidden, mc.expert_hidden] + ([mc.head_hidden] if mc.head_hidden else [])
        self.hw = max(-(-h // C) for h in hidden)
        # ACT: X (LayerNorm outputs; reused for attention contexts) then one shared region.
        self.act_x = 0
        self.act_r = T * self.dw
        self.act_qkv = self.act_r
        self.act_p = self.act_qkv + T * 3 * self.dw
        self.act_hid = self.act_r
        self.act_in = self.act_r
        need = self.act_r + T * max(3 * self.dw + self.pw, self.hw, self.kwp)
        if need > self.words["act"]:
            raise CompileError(f"activations need {need * C} bytes of on-chip scratchpad, the "
                               f"config has token_buffer_bytes={cfg.token_buffer_bytes}")
        self.b_scratch = 2 * self.b_half
        self.dense_count = 0
        self.pending: tuple | None = None       # prefetched matrix (key, b_off, c_off)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        cfg, mc, C = self.cfg, self.mc, self.C
        problems = []
        if self.T > cfg.max_tokens:
            problems.append(f"{self.T} tokens > max_tokens {cfg.max_tokens}")
        if self.D > cfg.max_dim:
            problems.append(f"dim {self.D} > max_dim {cfg.max_dim}")
        if self.D % C or self.hd % C:
            problems.append(f"dim {self.D} and head dim {self.hd} must be multiples of "
                            f"array_cols {C}")
        if mc.experts != cfg.experts or mc.top_k != cfg.top_k:
            problems.append(f"model has {mc.experts} experts / top-{mc.top_k}, the router is "
                            f"built for {cfg.experts} / top-{cfg.top_k}")
        if len(mc.tasks) > MAX_TASKS:
            problems.append(f"{len(mc.tasks)} tasks > {MAX_TASKS}")
        for name, k in (("patch", 3 * mc.patch_size ** 2), ("mlp", mc.mlp_hidden),
                        ("expert", mc.expert_hidden), ("tokens", self.T)):
            if k > cfg.max_k:
                problems.append(f"{name} reduction length {k} > max_k {cfg.max_k}")
        for n in (3 * self.D, mc.mlp_hidden, mc.expert_hidden, self.T):
            if n > cfg.max_n:
                problems.append(f"output width {n} > max_n {cfg.max_n}")
        e_words = -(-mc.expert_hidden // C) * self.D + -(-self.D // C) * mc.expert_hidden
        if e_words > self.b_half:
            problems.append(f"one expert ({e_words * C} bytes) does not fit a weight buffer "
                            f"({cfg.weight_buffer_bytes} bytes)")
        if -(-mc.expert_hidden // C) + -(-self.D // C) > self.c_half:
            problems.append("one expert's constants do not fit half of const_words")
        for blk in self.model.blocks:
            for ln in (blk.ln1, blk.ln2):
                if ln.gamma_frac != ops.LN_GAMMA_FRAC or not 0 < ln.eps < 2 ** 32:
                    problems.append("LayerNorm gamma_frac/eps outside the unit's format")
        if problems:
            raise CompileError("model does not fit the accelerator config: " +
                               "; ".join(problems))

    # ------------------------------------------------------------------ emit helpers
    def load(self, note, dest: Dest, addr: int, words: int, offset: int, **extra) -> None:
        self.prog.emit(Op.LOAD, note, dest=dest, addr=addr, words=words, base=Base.DATA,
                       offset=offset, **extra)

    def wait(self, note, units: Unit) -> None:
        self.prog.emit(Op.WAIT, note, mask=int(units))

    def matrix(self, lin: IntLinear, n_slice: slice | None = None) -> dict:
        """Put one weight matrix (optionally a column slice) and its constants in DDR."""
        w, bias = lin.weight, lin.bias
        mult, shift = np.asarray(lin.out.mult), np.asarray(lin.out.shift)
        if n_slice is not None:
            w, bias = w[:, n_slice], bias[n_slice]
            mult = mult[n_slice] if mult.ndim else mult
            shift = shift[n_slice] if shift.ndim else shift
        k, n = w.shape
        req = Requant(mult, shift, lin.out.bits)
        return {"k": k, "n": n, "bits": lin.out.bits,
                "b_off": self.data.add(_b_words(w, self.C)), "b_words": -(-n // self.C) * k,
                "c_off": self.data.add(_const_rows(bias, req, n, self.C)),
                "c_words": -(-n // self.C)}

    def _load_matrix(self, note, mat, half) -> tuple[int, int]:
        b_addr, c_addr = half * self.b_half, half * self.c_half
        if mat["b_words"] > self.b_half or mat["c_words"] > self.c_half:
            raise CompileError(f"{note}: matrix does not fit a weight buffer half")
        self.load(note + ".w", Dest.B, b_addr, mat["b_words"], mat["b_off"],
                  task_stride=mat.get("task_stride", 0))
        self.load(note + ".c", Dest.CONST, c_addr, mat["c_words"], mat["c_off"],
                  task_stride=mat.get("task_stride_c", 0))
        return b_addr, c_addr

    def need(self, note, mat) -> tuple[int, int]:
        """Make ``mat`` resident (waiting for its prefetch, or loading it now)."""
        if self.pending is not None and self.pending[0] is mat:
            _, b, c = self.pending
        else:
            half = self.dense_count % 2
            self.dense_count += 1
            b, c = self._load_matrix(note, mat, half)
        self.pending = None
        self.wait(note + ".wait", Unit.LOADER)
        return b, c

    def prefetch(self, note, mat) -> None:
        half = self.dense_count % 2
        self.dense_count += 1
        b, c = self._load_matrix(note + ".prefetch", mat, half)
        self.pending = (mat, b, c)

    def matmul(self, note, *, m, k, n, a_addr, a_stride, b_offset, const_base, bits, dest,
               a_signed=1, d_addr=0, d_stride=0, residual=0, gelu=0, act: Requant | None = None,
               macs=None, **extra) -> None:
        fields = dict(m=m, k=k, n=n, a_addr=a_addr, a_stride=a_stride, a_signed=a_signed,
                      b_offset=b_offset, const_base=const_base, out_bits=_OUT_BITS[bits],
                      residual=residual, gelu=gelu, dest=dest, d_addr=d_addr, d_stride=d_stride,
                      **extra)
        if act is not None:
            fields.update(act_mult=int(act.mult), act_shift=int(act.shift))
        self.prog.emit(Op.MATMUL, note, macs=m * k * n if macs is None else macs, **fields)

    def dense(self, note, mat, nxt, *, a_addr, a_stride, m, **kw) -> None:
        """A matmul on DDR weights: make them resident, issue, prefetch the next matrix."""
        b, c = self.need(note, mat)
        self.matmul(note, m=m, k=mat["k"], n=mat["n"], a_addr=a_addr, a_stride=a_stride,
                    b_offset=b, const_base=c, bits=mat["bits"], **kw)
        if nxt is not None:
            self.prefetch(note + "->next", nxt)

    def _task_meta(self, spec, head, tokens: int, width: int, chunks: list) -> dict:
        """The model image's description of one task's output buffer."""
        mc = self.model.cfg
        meta = {"name": spec.name, "kind": spec.kind, "channels": spec.channels,
                "out_scale": float(head.out_scale), "tokens": tokens, "width": width,
                "grid": list(mc.grid), "patch": mc.patch_size, "chunks": chunks,
                "head": head.kind}
        if head.kind == "uphead":  # D LayerNorm features per token; the PS runs the convolutions
            meta.update(channels=width, patch=1, classes=spec.channels,
                        image_size=list(mc.img_size), post_sha256=post_digest(head.post))
        return meta

    def layernorm_params(self, note, ln) -> None:
        """Load a LayerNorm's γ/β and wait for them (alone: nothing else is queued behind)."""
        rec = np.zeros(self.D, [("gamma", "<i4"), ("pad", "<i4"), ("beta", "<i8")])
        rec["gamma"], rec["beta"] = ln.gamma, ln.beta
        assert rec.dtype.itemsize == LNP_RECORD_BYTES
        off = self.data.add(rec.tobytes())
        self.load(note + ".params", Dest.LNP, 0, self.D // self.cfg.ln_lanes, off)
        self.wait(note + ".params", Unit.LOADER)
        self.ln_loaded = note

    def layernorm(self, note, ln, row0, rows, d_addr) -> None:
        if self.ln_loaded != note:
            self.layernorm_params(note, ln)
        self.ln_loaded = None
        self.prog.emit(Op.LAYERNORM, note, row0=row0, rows=rows, row_words=self.dw,
                       d_addr=d_addr, d_stride=self.dw, eps=int(ln.eps))

    def scalar_consts(self, req: Requant, n: int) -> int:
        return self.data.add(_const_rows(0, req, n, self.C))

    # ------------------------------------------------------------------ the model
    def run(self) -> CompiledModel:
        model, mc, cfg = self.model, self.mc, self.cfg
        C, T, P, D, hd = self.C, self.T, self.P, self.D, self.hd
        dw = self.dw
        prog = self.prog
        ident_row = self.c_static
        logit_row = ident_row + 1
        ctx_row = logit_row + math.ceil(cfg.max_tokens / C)

        # Matrices in program order (the list drives the prefetch of "the next one").
        patch = self.matrix(model.embed.patch)
        blocks = []
        for blk in model.blocks:
            b = {"qkv": self.matrix(blk.attn.qkv), "proj": self.matrix(blk.attn.proj)}
            if blk.moe is None:
                b["fc1"] = self.matrix(blk.mlp.fc1)
                b["fc2"] = self.matrix(blk.mlp.fc2)
            else:
                gates = [self.matrix(g) for g in blk.moe.gates]
                g0 = gates[0]
                g0["task_stride"] = gates[1]["b_off"] - g0["b_off"] if len(gates) > 1 else 0
                g0["task_stride_c"] = gates[1]["c_off"] - g0["c_off"] if len(gates) > 1 else 0
                for t, g in enumerate(gates):
                    if (g["b_off"] != g0["b_off"] + t * g0["task_stride"] or
                            g["c_off"] != g0["c_off"] + t * g0["task_stride_c"]):
                        raise AssertionError("gate sections are not at a fixed stride")
                b["gate"] = g0
                b["experts"] = self.experts(blk.moe.experts)
            blocks.append(b)

        # ---- embedding: input patches → ACT, class token + positions → residual, patch matmul
        prog.label("start")
        ident = self.data.add(_const_rows(0, Requant(np.int64(1 << 14), np.int64(14), 16),
                                          C, C))
        self.load("embed.identity", Dest.CONST, ident_row, 1, ident)
        res0 = np.concatenate([model.embed.cls[None], np.zeros((P, D), np.int64)], 0)
        res0[1:] = model.embed.pos
        res_off = self.data.add(np.asarray(res0, "<i2").tobytes())
        prog.emit(Op.LOAD, "embed.input", dest=Dest.ACT, addr=self.act_in, words=P * self.kwp,
                  base=Base.INPUT, offset=0)
        self.wait("embed.identity", Unit.LOADER)
        self.load("embed.pos", Dest.RES, 0, T * dw, res_off, row_words=dw, const_row=ident_row)
        self.dense("embed.patch", patch, blocks[0]["qkv"], a_addr=self.act_in, a_stride=self.kwp,
                   m=P, a_signed=0, residual=1, dest=OutDest.NONE, m_offset=1)

        for i, (blk, b) in enumerate(zip(model.blocks, blocks)):
            nb = f"block{i}"
            nxt_block = blocks[i + 1]["qkv"] if i + 1 < len(blocks) else None
            attn = blk.attn
            self.layernorm(nb + ".ln1", blk.ln1, 0, T, self.act_x)
            self.dense(nb + ".qkv", b["qkv"], None, a_addr=self.act_x, a_stride=dw, m=T,
                       dest=OutDest.ACT, d_addr=self.act_qkv, d_stride=3 * dw)
            # attention constants (scalars broadcast to the rows they need)
            lc = self.scalar_consts(attn.logits, T)
            cc = self.scalar_consts(attn.context, hd)
            self.prefetch(nb + ".proj", b["proj"])
            self.load(nb + ".attn.consts", Dest.CONST, logit_row, self.pw, lc)
            self.load(nb + ".attn.consts", Dest.CONST, ctx_row, hd // C, cc)
            self.wait(nb + ".attn.consts", Unit.LOADER)
            for h in range(mc.heads):
                nh = f"{nb}.head{h}"
                q = self.act_qkv + h * hd // C
                k = self.act_qkv + (D + h * hd) // C
                v = self.act_qkv + (2 * D + h * hd) // C
                # the scores transposed, Sᵀ = K·Qᵀ: a SCORE word is one key against C
                # queries, so the softmax takes softmax_lanes queries side by side
                prog.emit(Op.BLOAD, nh + ".queries", src=q, stride=3 * dw, rows=T,
                          words=hd // C, transpose=1, b_offset=self.b_scratch)
                self.matmul(nh + ".logits", m=T, k=hd, n=T, a_addr=k, a_stride=3 * dw,
                            b_offset=self.b_scratch, const_base=logit_row, bits=32,
                            dest=OutDest.SCORE)
                prog.emit(Op.SOFTMAX, nh + ".softmax", rows=T, length=T, d_addr=self.act_p,
                          d_stride=self.pw)
                prog.emit(Op.BLOAD, nh + ".values", src=v, stride=3 * dw, rows=T,
                          words=hd // C, transpose=0, b_offset=self.b_scratch)
                self.matmul(nh + ".context", m=T, k=T, n=hd, a_addr=self.act_p,
                            a_stride=self.pw, a_signed=0, b_offset=self.b_scratch,
                            const_base=ctx_row, bits=8, dest=OutDest.ACT,
                            d_addr=self.act_x + h * hd // C, d_stride=dw)
            after_proj = b["fc1"] if blk.moe is None else b["gate"]
            self.dense(nb + ".proj", b["proj"], after_proj, a_addr=self.act_x, a_stride=dw,
                       m=T, residual=1, dest=OutDest.NONE)
            self.layernorm(nb + ".ln2", blk.ln2, 0, T, self.act_x)
            if blk.moe is None:
                mlp = blk.mlp
                self.dense(nb + ".mlp.fc1", b["fc1"], b["fc2"], a_addr=self.act_x, a_stride=dw,
                           m=T, gelu=1, act=mlp.act_out, dest=OutDest.ACT,
                           d_addr=self.act_hid, d_stride=self.hw)
                self.dense(nb + ".mlp.fc2", b["fc2"], nxt_block, a_addr=self.act_hid,
                           a_stride=self.hw, m=T, residual=1, dest=OutDest.NONE)
            else:
                self.dense(nb + ".moe.gate", b["gate"], None, a_addr=self.act_x, a_stride=dw,
                           m=T, dest=OutDest.ROUTER)
                self.expert_loop(nb + ".moe", blk.moe, b["experts"])
                if nxt_block is not None:
                    # the next LN1's γ/β first: its wait must not sit behind the qkv weights
                    self.layernorm_params(f"block{i + 1}.ln1", model.blocks[i + 1].ln1)
                    self.prefetch(nb + "->next", nxt_block)

        # ---- task heads
        tasks_meta = []
        names = list(mc.task_names)
        prog.emit(Op.TASK_JUMP, "heads", tasks=len(names),
                  targets=[f"head.{t}" for t in names])
        gh, gw = mc.grid
        for t in names:
            head = model.heads[t]
            spec = mc.task(t)
            prog.label(f"head.{t}")
            self.pending = None
            self.dense_count = 0
            self.layernorm(f"head.{t}.ln", head.ln, 1, P, self.act_x)
            last = head.mlp.fc2 if head.mlp is not None else head.fc
            width = last.weight.shape[1]
            if head.mlp is not None:
                fc1 = self.matrix(head.mlp.fc1)
                self.dense(f"head.{t}.fc1", fc1, None, a_addr=self.act_x, a_stride=dw, m=P,
                           gelu=1, act=head.mlp.act_out, dest=OutDest.ACT,
                           d_addr=self.act_hid, d_stride=self.hw)
                a_addr, a_stride = self.act_hid, self.hw
            else:
                a_addr, a_stride = self.act_x, dw
            k = last.weight.shape[0]
            n_chunk = min(self.b_half // k * C, self.c_half * C, cfg.max_n) // C * C
            if n_chunk < C:
                raise CompileError(f"head {t}: K={k} leaves no room for a {C}-column chunk")
            chunk_mats = [(n0, self.matrix(last, slice(n0, min(width, n0 + n_chunk))))
                          for n0 in range(0, width, n_chunk)]
            chunks, out_off = [], 0
            for ci, (n0, mat) in enumerate(chunk_mats):
                nxt = chunk_mats[ci + 1][1] if ci + 1 < len(chunk_mats) else None
                self.dense(f"head.{t}.out{ci}", mat, nxt, a_addr=a_addr, a_stride=a_stride, m=P,
                           dest=OutDest.DDR, base=Base.OUTPUT, offset=out_off)
                nbytes = P * -(-mat["n"] // C) * 2 * C
                chunks.append({"n0": n0, "n": mat["n"], "offset": out_off, "bytes": nbytes})
                out_off += nbytes
            prog.emit(Op.END, f"head.{t}.end")
            tasks_meta.append(self._task_meta(spec, head, P, width, chunks))

        program, listing = prog.assemble()
        if len(listing) > cfg.imem_words:
            raise CompileError(f"program has {len(listing)} instructions, the instruction "
                               f"memory holds {cfg.imem_words}")
        meta = {
            "compiler": COMPILER_VERSION,
            "hw_version": list(VERSION),
            "isa": [ISA_VERSION, ISA_DIGEST],
            "model": mc.to_dict(),
            "accel": cfg.to_dict(),
            "array": {"rows": self.R, "cols": C},
            "tasks": tasks_meta,
            "input": {"image": list(mc.img_size), "patch": mc.patch_size, "rows": P,
                      "row_bytes": self.kwp * C},
            "listing": [line.split()[1] for line in listing],
            "macs": prog.macs,
        }
        image = ModelImage(fingerprint=cfg.fingerprint(), meta=meta, program=program,
                           data=bytes(self.data.buf))
        return CompiledModel(image, listing, prog.macs)

    def experts(self, mlp: IntMlp) -> dict:
        """All experts at one stride: per expert [fc1 B | fc2 B] and [fc1 C | fc2 C]."""
        E = mlp.fc1.weight.shape[0]
        C = self.C
        b_parts, c_parts = [], []
        for e in range(E):
            ex = mlp.select(e)
            b = _b_words(ex.fc1.weight, C) + _b_words(ex.fc2.weight, C)
            c = (_const_rows(ex.fc1.bias, ex.fc1.out, ex.fc1.weight.shape[1], C) +
                 _const_rows(ex.fc2.bias, ex.fc2.out, ex.fc2.weight.shape[1], C))
            b_parts.append(b + bytes(-len(b) % _ALIGN))
            c_parts.append(c + bytes(-len(c) % _ALIGN))
        hidden, D = mlp.fc1.weight.shape[2], mlp.fc1.weight.shape[1]
        return {"b_off": self.data.add(b"".join(b_parts)), "b_stride": len(b_parts[0]),
                "c_off": self.data.add(b"".join(c_parts)), "c_stride": len(c_parts[0]),
                "fc1_words": -(-hidden // C) * D, "fc2_words": -(-D // C) * hidden,
                "fc1_rows": -(-hidden // C), "fc2_rows": -(-D // C), "hidden": hidden,
                "act": mlp.act_out}

    def expert_loop(self, note, moe, ex) -> None:
        """gate → queues → for each non-empty expert: fc1+GELU over its gathered queue, fc2 and
        the probability-weighted scatter into the MoE accumulator, the next expert's weights
        loading meanwhile → residual += accumulator."""
        prog, T, dw, D = self.prog, self.T, self.dw, self.D
        hidden = ex["hidden"]
        self.pending = None
        prog.emit(Op.LANES, note + ".clear", aux=Aux.ACC_CLEAR.value, row0=0, rows=T,
                  row_words=dw)
        prog.emit(Op.EXPERT_FIRST, note + ".first", target=note + ".done")

        def load_expert(tag, **flags):
            self.load(f"{note}.{tag}.w", Dest.B, 0, ex["fc1_words"] + ex["fc2_words"],
                      ex["b_off"], expert_stride=ex["b_stride"], parity=1, **flags)
            self.load(f"{note}.{tag}.c", Dest.CONST, 0, ex["fc1_rows"] + ex["fc2_rows"],
                      ex["c_off"], expert_stride=ex["c_stride"], parity=1, **flags)

        load_expert("expert", per_expert=1)
        prog.label(note + ".loop")
        self.wait(note + ".expert.wait", Unit.LOADER)
        load_expert("next", next_expert=1)
        self.matmul(note + ".fc1", m=0, m_from_queue=1, gather=1, k=D, n=hidden,
                    a_addr=self.act_x, a_stride=dw, b_offset=0, const_base=0, parity=1,
                    bits=16, gelu=1, act=ex["act"], dest=OutDest.ACT, d_addr=self.act_hid,
                    d_stride=self.hw, macs=0)
        self.matmul(note + ".fc2", m=0, m_from_queue=1, k=hidden, n=D, a_addr=self.act_hid,
                    a_stride=self.hw, b_offset=ex["fc1_words"], const_base=ex["fc1_rows"],
                    parity=1, bits=16, scatter=1, dest=OutDest.NONE, macs=0)
        self.wait(note + ".expert.done", Unit.COMPUTE)
        prog.emit(Op.EXPERT_NEXT, note + ".next", target=note + ".loop")
        prog.label(note + ".done")
        prog.emit(Op.LANES, note + ".commit", aux=Aux.ACC_COMMIT.value, row0=0, rows=T,
                  row_words=dw)
        self.dense_count = 0


def compile_model(model: IntM3ViT, cfg: AccelConfig) -> CompiledModel:
    """Compile ``model`` for accelerator ``cfg`` (raises :class:`CompileError` if it cannot)."""
    return _Compiler(model, cfg).run()


def _out_problem(out: Path) -> str | None:
    """Why the model image cannot be written to ``out`` (``None``: it can), checked before the
    model is compiled (:func:`golden.argtypes.out_file`)."""
    try:
        out_file(str(out))
    except argparse.ArgumentTypeError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    from golden.config import CONFIGS as MODEL_CONFIGS
    from rtl.config import CONFIGS

    ap = argparse.ArgumentParser(prog="python -m firmware.compiler",
                                 description="Compile an integer M3ViT into a model image.")
    ap.add_argument("--config", default="nano", choices=sorted(MODEL_CONFIGS),
                    help="model config (default: nano)")
    ap.add_argument("--int-model", type=Path,
                    help="integer model .npz (python -m golden.quant quantize); default: the "
                         "config's shipped checkpoint quantised (nano, tiny), else random weights")
    ap.add_argument("--accel", default=None, choices=sorted(CONFIGS),
                    help="accelerator config (default: the one named like the model, else "
                         "'default')")
    ap.add_argument("--out", type=Path, required=True,
                    help="model image file to write (replaced atomically; not a folder)")
    ap.add_argument("--listing", action="store_true", help="print the program")
    args = ap.parse_args(argv)
    problem = _out_problem(args.out)
    if problem:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    from rtl.sim.cache import atomic_write
    from rtl.sim.models import int_model_for
    try:
        model = IntM3ViT.load(args.int_model) if args.int_model else int_model_for(args.config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: --int-model: {exc}", file=sys.stderr)
        return 2
    cfg = CONFIGS[args.accel or (args.config if args.config in CONFIGS else "default")]
    try:
        compiled = compile_model(model, cfg)
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:       # atomically; the temporary file beside it is removed whatever happens
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, compiled.image.to_bytes())
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.listing:
        print(compiled.program_text())
    img = compiled.image
    print(f"{args.out}: {len(compiled.listing)} instructions, {len(img.data)} data bytes, "
          f"fingerprint {img.fingerprint:#010x}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
