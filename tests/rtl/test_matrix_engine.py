"""Matrix engine (tiler + mesh + vector lanes) vs the integer reference, bit for bit and cycle
for cycle."""

import math

import numpy as np
import pytest

from golden.quant import ops
from golden.quant.ptq import quantize_multiplier
from rtl.config import SMALL_TEST
from rtl.matrix_engine import MatrixEngine, engine_cycles
from tests.rtl.engine_harness import Job, compare, reference, simulate

R, C = SMALL_TEST.array_rows, SMALL_TEST.array_cols
MAX = 24


def make_engine(max_tokens=None):
    return MatrixEngine(SMALL_TEST, max_m=MAX, max_k=MAX, max_n=MAX, const_depth=16,
                        max_tokens=max_tokens)


def identity_job(a, b, bias=None, **kw):
    n = b.shape[0]
    return Job(a, b, np.zeros(n, np.int64) if bias is None else bias,
               np.full(n, 1 << 14), np.full(n, 14), **kw)


def check(engine, jobs, ready_prob=1.0, seed=0, residual=None, moe_acc=None):
    results = simulate(engine, jobs, residual=residual, moe_acc=moe_acc, ready_prob=ready_prob,
                       seed=seed)
    for job, got in zip(jobs, results):
        want = reference(job, residual, moe_acc)
        residual, moe_acc = want["residual"], want["moe_acc"]
        compare(job, got, want, C)
        m_, k_ = job.a.shape
        formula = engine_cycles(m_, k_, job.b.shape[0], R, C, gather=job.gather)
        # Without back-pressure the count is exact; each stalled output cycle costs at most one
        # (the mesh keeps computing while the lanes stall, if it has no row to hand over).
        assert formula <= got.cycles <= formula + got.stalls, \
            f"{m_}x{k_}x{job.b.shape[0]}: {got.cycles} cycles, formula {formula} " \
            f"(+ up to {got.stalls} stalls)"
    return results


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (4, 4, 4), (9, 7, 6), (4, 13, 9),
                                   (17, 3, 5), (24, 24, 24)])
def test_random_shapes_exact_and_cycle_formula(shape):
    m_, k_, n_ = shape
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(-128, 128, (m_, k_))
    b = rng.integers(-128, 128, (n_, k_))
    bias = rng.integers(-(1 << 20), 1 << 20, n_)
    check(make_engine(), [identity_job(a, b, bias)])


def test_extremes_and_requant_saturation():
    k_ = 24
    jobs = []
    for av, bv in ((-128, -128), (127, -128), (-128, 127), (127, 127)):
        a = np.full((5, k_), av)
        b = np.full((6, k_), bv)
        jobs.append(identity_job(a, b))
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (7, k_))
    b = rng.integers(-128, 128, (5, k_))
    mult, shift = quantize_multiplier(rng.uniform(0.001, 0.05, 5))
    jobs.append(Job(a, b, rng.integers(-5000, 5000, 5), mult, shift, out_bits=8))
    jobs.append(Job(a, b, np.zeros(5, np.int64), mult, shift, out_bits=16))
    check(make_engine(), jobs)
    sat = reference(jobs[4], None, None)["rows"]
    assert any(abs(int(v)) >= 127 for row in sat.values() for v in row), "saturation exercised"


def test_unsigned_operand_a():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (6, 11))
    a[0] = 255
    b = rng.integers(-128, 128, (7, 11))
    check(make_engine(), [identity_job(a, b, a_signed=False)])


def test_random_back_pressure_costs_exactly_the_stalls():
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (10, 9))
    b = rng.integers(-128, 128, (7, 9))
    results = check(make_engine(), [identity_job(a, b)], ready_prob=0.4, seed=5)
    assert results[0].stalls > 0


def test_back_to_back_tiles_have_no_bubbles():
    """Many tiles with K >= R, C: the cycle count grows by exactly K per extra tile."""
    rng = np.random.default_rng(2)
    k_ = 9
    counts = []
    for m_ in (4, 8, 16):
        a = rng.integers(-128, 128, (m_, k_))
        b = rng.integers(-128, 128, (8, k_))
        counts.append(check(make_engine(), [identity_job(a, b)])[0].cycles)
    tiles = [math.ceil(m_ / R) * 2 for m_ in (4, 8, 16)]
    assert counts[1] - counts[0] == (tiles[1] - tiles[0]) * k_
    assert counts[2] - counts[1] == (tiles[2] - tiles[1]) * k_


def test_gelu_lane_matches_reference():
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (9, 16))
    b = rng.integers(-128, 128, (6, 16))
    # First requantisation into Q10 (int16) with a range that covers the whole GELU table.
    mult, shift = quantize_multiplier(np.full(6, 0.5))
    act_mult, act_shift = quantize_multiplier(2.0 ** -14 / (6 / 127))
    job = Job(a, b, rng.integers(-3000, 3000, 6), mult, shift, out_bits=16, gelu=True,
              act_mult=int(act_mult[0]), act_shift=int(act_shift[0]))
    check(make_engine(), [job])
    pre = ops.requantize(ops.matmul(a, b.T, job.bias), mult, shift, 16)
    assert pre.min() < -(8 << 10) and pre.max() > 8 << 10, "inputs beyond both table ends"


def test_residual_add_lane_updates_memory():
    rng = np.random.default_rng(9)
    tokens, n_ = 10, 7
    residual = rng.integers(-32768, 32768, (tokens, n_))
    residual[0] = 32767
    a = rng.integers(-128, 128, (tokens, 12))
    b = rng.integers(-128, 128, (n_, 12))
    mult, shift = quantize_multiplier(np.full(n_, 0.3))
    first = Job(a, b, rng.integers(-100, 100, n_), mult, shift, out_bits=16, residual=True)
    second = Job(a[::-1].copy(), b, rng.integers(-100, 100, n_), mult, shift, out_bits=16,
                 residual=True)
    check(make_engine(), [first, second], residual=residual)


def test_scatter_accumulate_expert_queues():
    """Three experts' token queues gathered from the token matrix (rows gathered on the input),
    overlapping on some tokens, accumulated into a token-indexed memory (scattered on the
    output); one queue is out of order and one has a single token."""
    rng = np.random.default_rng(13)
    tokens, n_, k_ = 12, 6, 10
    moe_acc = np.zeros((tokens, n_), np.int64)
    x = rng.integers(-128, 128, (tokens, k_))
    mult, shift = quantize_multiplier(np.full(n_, 0.8))
    jobs = []
    for queue in (np.array([7, 2, 11, 0, 5]), np.array([2]), np.array([3, 4, 9, 10, 1, 6])):
        b = rng.integers(-128, 128, (n_, k_))
        probs = rng.integers(0, 65536, len(queue))
        jobs.append(Job(x[queue], b, rng.integers(-500, 500, n_), mult, shift, out_bits=16,
                        scatter=True, tokens=queue, probs=probs, gather=True, token_matrix=x))
    check(make_engine(max_tokens=tokens), jobs, moe_acc=moe_acc, ready_prob=0.7, seed=3)


def test_memories_filled_through_the_load_streams():
    """Operands, constants, queue and tokens written through the engine's load streams (what the
    DMA will use) instead of the simulator's direct memory access."""
    from golden.quant.ptq import quantize_multiplier as qm
    from rtl.vector import OutBits
    from tests.rtl.sim import run, stream_get, stream_put

    eng = make_engine(max_tokens=8)
    rng = np.random.default_rng(21)
    m_, k_, n_ = 5, 6, 5
    tokens = rng.integers(-128, 128, (8, k_))
    queue = np.array([6, 1, 3, 0, 7])
    a_direct = rng.integers(-128, 128, (m_, k_))
    b = rng.integers(-128, 128, (n_, k_))
    bias = rng.integers(-999, 999, n_)
    mult, shift = qm(np.full(n_, 0.01))
    probs = np.full(m_, 1 << 15)
    got = {}

    async def bench(ctx):
        for nn in range(n_):
            for kk in range(k_):
                await stream_put(ctx, eng.b_load, {"bank": nn % C, "addr": (nn // C) * k_ + kk,
                                                   "value": int(b[nn, kk])})
        for tn in range(math.ceil(n_ / C)):
            consts = [{"bias": int(bias[n]), "mult": int(mult[n]), "shift": int(shift[n])}
                      if n < n_ else {"bias": 0, "mult": 0, "shift": 1}
                      for n in range(tn * C, tn * C + C)]
            await stream_put(ctx, eng.const_load, {"addr": tn, "value": consts})
        for i, t in enumerate(queue):
            await stream_put(ctx, eng.queue_load, {"addr": i, "value": {"token": int(t),
                                                                        "prob": int(probs[i])}})
        for t in range(8):
            for kk in range(k_):
                await stream_put(ctx, eng.token_load, {"addr": t * k_ + kk,
                                                       "value": int(tokens[t, kk]) & 0xFF})
        for gather, label in ((1, "gathered"), (0, "direct")):
            if not gather:
                for mm in range(m_):
                    for kk in range(k_):
                        await stream_put(ctx, eng.a_load, {
                            "bank": mm % R, "addr": (mm // R) * k_ + kk,
                            "value": int(a_direct[mm, kk]) & 0xFF})
            await stream_put(ctx, eng.cmd, {
                "mm": {"m": m_, "k": k_, "n": n_, "a_signed": 1},
                "lanes": {"const_base": 0, "out_bits": OutBits.INT8, "gelu": 0, "act_mult": 0,
                          "act_shift": 1, "residual": 0, "scatter": 0},
                "gather": gather})
            rows = {}
            while len(rows) < m_ * math.ceil(n_ / C):
                p = await stream_get(ctx, eng.out)
                rows[(int(p.m), int(p.tn))] = [int(v) for v in p.values]
            got[label] = rows

    run(eng, bench, name="engine_load_streams")
    for label, a in (("gathered", tokens[queue]), ("direct", a_direct)):
        want = ops.requantize(ops.matmul(a, b.T, bias), mult, shift, 8)
        for mm in range(m_):
            for nn in range(n_):
                assert got[label][(mm, nn // C)][nn % C] == want[mm, nn], (label, mm, nn)
