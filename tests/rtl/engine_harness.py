"""Drive a :class:`rtl.matrix_engine.MatrixEngine` in Amaranth's simulator and model it with the
integer reference (``golden.quant.ops``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from golden.quant import ops
from rtl.vector import OutBits
from tests.rtl.sim import run

__all__ = ["Job", "reference", "simulate"]


@dataclass
class Job:
    """One engine command with its operands and lane constants."""
    a: np.ndarray                      # [M, K] int8 (or uint8 with a_signed=False)
    b: np.ndarray                      # [N, K] int8 (weights, torch layout)
    bias: np.ndarray                   # [N] int32
    mult: np.ndarray                   # [N] 15-bit
    shift: np.ndarray                  # [N] 1..62
    out_bits: int = 32
    a_signed: bool = True
    gelu: bool = False
    act_mult: int = 0
    act_shift: int = 1
    residual: bool = False
    scatter: bool = False
    tokens: np.ndarray | None = None   # [M] token per row (scatter)
    probs: np.ndarray | None = None    # [M] Q16 (scatter)
    const_base: int = 0
    gather: bool = False               # A rows come from token_matrix[tokens] (row gather)
    token_matrix: np.ndarray | None = None


def reference(job: Job, residual: np.ndarray, moe_acc: np.ndarray) -> dict:
    """Expected output rows {(m or token, tn): values[:N-part]} and updated state memories."""
    a = job.token_matrix[job.tokens] if job.gather else job.a
    acc = ops.matmul(a, job.b.T, job.bias, a_signed=job.a_signed)
    y = ops.requantize(acc, job.mult, job.shift, job.out_bits)
    if job.gelu:
        y = ops.requantize(ops.gelu_q10(y), job.act_mult, job.act_shift, 8)
    if job.residual:
        new = ops.residual_add(residual[: len(y)], y)
        residual = residual.copy()
        residual[: len(y)] = new
        y = new
    if job.scatter:
        moe_acc = ops.moe_accumulate(moe_acc, job.tokens, y, job.probs)
        y = moe_acc[job.tokens]
    keys = job.tokens if job.scatter else np.arange(len(y))
    return {"rows": {int(k): y[i] for i, k in enumerate(keys)}, "residual": residual,
            "moe_acc": moe_acc}


@dataclass
class SimResult:
    rows: dict = field(default_factory=dict)      # (m, tn) -> list of C values
    cycles: int = 0                               # accept .. last output transfer, inclusive
    stalls: int = 0                               # cycles with out.valid & ~out.ready


def simulate(engine, jobs: list[Job], residual=None, moe_acc=None, ready_prob: float = 1.0,
             seed: int = 0, name: str = "engine") -> list[SimResult]:
    """Run ``jobs`` one after another; returns per job its output rows and cycle counts."""
    cols = engine.cfg.array_cols
    rows_ = engine.cfg.array_rows
    tiler, lanes = engine.tiler, engine.lanes
    rng = np.random.default_rng(seed)
    results = [SimResult() for _ in jobs]

    async def bench(ctx):
        # Token-indexed lane memories: row (token, column tile), zero-padded to C lanes.
        for matrix, mem in ((residual, lanes.residual), (moe_acc, lanes.moe_acc)):
            if matrix is None:
                continue
            for tok in range(matrix.shape[0]):
                for tn in range(math.ceil(matrix.shape[1] / cols)):
                    vals = [int(v) for v in matrix[tok, tn * cols:(tn + 1) * cols]]
                    ctx.set(mem.data[(tok << lanes.tn_bits) | tn], vals + [0] * (cols - len(vals)))
        for job, res in zip(jobs, results):
            m_, k_ = job.a.shape
            n_ = job.b.shape[0]
            if job.gather:
                for tok in range(job.token_matrix.shape[0]):
                    for kk in range(k_):
                        ctx.set(engine.tokens.data[tok * k_ + kk],
                                int(job.token_matrix[tok, kk]) & 0xFF)
                for mm in range(m_):  # stale A contents must not leak into the result
                    for kk in range(k_):
                        ctx.set(tiler.a_banks[mm % rows_].data[(mm // rows_) * k_ + kk], 0x55)
            else:
                for mm in range(m_):
                    for kk in range(k_):
                        ctx.set(tiler.a_banks[mm % rows_].data[(mm // rows_) * k_ + kk],
                                int(job.a[mm, kk]) & 0xFF)
            for nn in range(n_):
                for kk in range(k_):
                    ctx.set(tiler.b_banks[nn % cols].data[(nn // cols) * k_ + kk],
                            int(job.b[nn, kk]))
            for tn in range(math.ceil(n_ / cols)):
                consts = []
                for j in range(cols):
                    nn = tn * cols + j
                    if nn < n_:
                        consts.append({"bias": int(job.bias[nn]), "mult": int(job.mult[nn]),
                                       "shift": int(job.shift[nn])})
                    else:
                        consts.append({"bias": 0, "mult": 0, "shift": 1})
                ctx.set(lanes.constants.data[job.const_base + tn], consts)
            if job.scatter or job.gather:
                for mm in range(m_):
                    ctx.set(lanes.queue.data[mm], {"token": int(job.tokens[mm]),
                                                   "prob": int(job.probs[mm])})
            bits = {8: OutBits.INT8, 16: OutBits.INT16, 32: OutBits.INT32}[job.out_bits]
            ctx.set(engine.cmd.payload, {
                "mm": {"m": m_, "k": k_, "n": n_, "a_signed": int(job.a_signed)},
                "lanes": {"const_base": job.const_base, "out_bits": bits, "gelu": int(job.gelu),
                          "act_mult": job.act_mult, "act_shift": job.act_shift,
                          "residual": int(job.residual), "scatter": int(job.scatter)},
                "gather": int(job.gather)})
            ctx.set(engine.cmd.valid, 1)
            await ctx.tick().until(engine.cmd.ready)
            ctx.set(engine.cmd.valid, 0)
            expected_rows = m_ * math.ceil(n_ / cols)
            cycle = 0
            while len(res.rows) < expected_rows:
                ready = rng.random() < ready_prob
                ctx.set(engine.out.ready, int(ready))
                cycle += 1
                valid = ctx.get(engine.out.valid)
                if valid and ready:
                    p = ctx.get(engine.out.payload)
                    key = (int(p.m), int(p.tn))
                    assert key not in res.rows, f"row {key} emitted twice"
                    res.rows[key] = [int(v) for v in p.values]
                elif valid:
                    res.stalls += 1
                await ctx.tick()
                assert cycle < 200_000, "engine hung"
            res.cycles = cycle
            ctx.set(engine.out.ready, 0)
            for _ in range(3):
                await ctx.tick()
                assert not ctx.get(engine.out.valid), "extra output rows"

    run(engine, bench, name=name)
    return results


def compare(job: Job, got: SimResult, want: dict, cols: int) -> None:
    """Assert bit-exact equality; the message names the first mismatching element."""
    n_ = job.b.shape[0]
    tiles = math.ceil(n_ / cols)
    for key, row in want["rows"].items():
        for tn in range(tiles):
            g = got.rows.get((key, tn))
            assert g is not None, f"missing output row {key}, column tile {tn}"
            for j in range(cols):
                nn = tn * cols + j
                if nn < n_ and g[j] != int(row[nn]):
                    raise AssertionError(f"first mismatch at row {key}, column {nn}: "
                                         f"engine {g[j]}, reference {int(row[nn])}")
    assert len(got.rows) == len(want["rows"]) * tiles, "unexpected extra rows"
