"""The compute datapath one instruction at a time: MATMUL into every sink (ACT with and without
GELU, SCORE, DDR, the residual, the router, an expert's gather and scatter), LAYERNORM, SOFTMAX,
LANES (commit, clear), BLOAD (values, keys) -- each bit-exact against ``golden.quant.ops`` and
its cycles equal to :mod:`rtl.datapath.timing`'s formula."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from golden.quant import ops
from rtl.array.lanes import Aux, OutBits
from rtl.config import NANO, SMALL_TEST
from rtl.control.isa import Op, OutDest
from rtl.datapath import timing
from tests.rtl.datapath.compute_rig import ComputeRig
from tests.rtl.datapath.harness import Recorder

CONFIGS = pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
_BITS = {OutBits.INT8: 8, OutBits.INT16: 16, OutBits.INT32: 32}


def _assert_equal(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = np.argwhere(got != want)
    assert not len(bad), (f"{what}: {len(bad)} of {want.size} differ; first at {tuple(bad[0])}: "
                          f"RTL {got[tuple(bad[0])]}, reference {want[tuple(bad[0])]}")


@pytest.fixture(scope="module", params=[NANO, SMALL_TEST], ids=["nano", "small-test"])
def rig(request):
    return ComputeRig(request.param)


def _matmul_operands(rig, rng, m, k, n, a_signed=True):
    lo = -128 if a_signed else 0
    a = rng.integers(lo, lo + 256, (m, k))
    b = rng.integers(-128, 128, (n, k))
    bias = rng.integers(-3000, 3000, n)
    mult = rng.integers(1 << 14, 1 << 15, n)
    shift = rng.integers(10, 20, n)
    rig.load_act(0, a)
    rig.load_b(0, b)
    rig.load_const(0, bias, mult, shift)
    return a, b, ops.matmul(a, b.T, bias, a_signed=a_signed), mult, shift


def _matmul(rig, m, k, n, out_bits, dest, **fields):
    C = rig.cfg.array_cols
    return rig.instr(Op.MATMUL, m=m, a_addr=0, a_stride=math.ceil(k / C), k=k, n=n,
                     out_bits=out_bits.value, dest=dest, d_addr=300,
                     d_stride=math.ceil(n / C), **fields)


def _assert_act_result(rig, m, k, n, cycles, want, what):
    """The m×n result at ACT row 300 equals ``want`` and took the matmul formula's cycles."""
    _assert_equal(rig.act_rows(300, m, n, stride=math.ceil(n / rig.cfg.array_cols)), want, what)
    assert cycles == timing.matmul_instr_cycles(rig.cfg, m, k, n, to_act=True)


@pytest.mark.parametrize("m, k, n, a_signed", [(5, 8, 8, True), (9, 13, 5, False),
                                               (4, 4, 4, True)])
def test_matmul_to_act(rig, m, k, n, a_signed):
    rng = np.random.default_rng(m * k)
    _, _, acc, mult, shift = _matmul_operands(rig, rng, m, k, n, a_signed)
    cycles = _matmul(rig, m, k, n, OutBits.INT8, OutDest.ACT, a_signed=int(a_signed))
    _assert_act_result(rig, m, k, n, cycles, ops.requantize(acc, mult, shift, 8), "ACT rows")


def test_matmul_gelu_to_act(rig):
    rng = np.random.default_rng(5)
    m, k, n = 6, 8, 8
    _, _, acc, mult, shift = _matmul_operands(rig, rng, m, k, n)
    act_mult, act_shift = 23456, 20
    cycles = _matmul(rig, m, k, n, OutBits.INT16, OutDest.ACT, a_signed=1, gelu=1,
                     act_mult=act_mult, act_shift=act_shift)
    y = ops.requantize(acc, mult, shift, 16)
    want = ops.requantize(ops.gelu_q10(y), act_mult, act_shift, 8)
    _assert_act_result(rig, m, k, n, cycles, want, "GELU rows")


def test_matmul_to_score(rig):
    rng = np.random.default_rng(6)
    m, k, n = 7, 12, 9
    _, _, acc, mult, shift = _matmul_operands(rig, rng, m, k, n)
    cycles = _matmul(rig, m, k, n, OutBits.INT32, OutDest.SCORE, a_signed=1)
    _assert_equal(rig.scores(m, n), ops.requantize(acc, mult, shift, 32), "SCORE rows")
    assert cycles == timing.matmul_instr_cycles(rig.cfg, m, k, n)


def test_matmul_to_ddr(rig):
    """Result rows into DDR through the store's FIFO: bit-exact in emission order, within the
    cycle bounds; the array waits for the writer only when the rows outgrow the FIFO."""
    _ddr_store_case(rig)


def test_matmul_to_ddr_small_fifo():
    """A 4-row store FIFO: the lanes (and the array) wait for the writer."""
    _ddr_store_case(ComputeRig(dataclasses.replace(SMALL_TEST, store_fifo_rows=4)))


def _ddr_store_case(rig):
    rng = np.random.default_rng(7)
    C = rig.cfg.array_cols
    m, k, n = 9, 8, 2 * C
    _, _, acc, mult, shift = _matmul_operands(rig, rng, m, k, n)
    for name in ("sinks.i__valid", "sinks.i__ready"):
        rig.bench.probe(name)
    waits = rig.bench.add(Recorder("sinks.i__valid", ("sinks.i__valid", "sinks.i__ready")))
    cycles = _matmul(rig, m, k, n, OutBits.INT16, OutDest.DDR, a_signed=1, ddr_addr=0x800)
    stalls = len(waits.high["sinks.i__valid"]) - len(waits.high[("sinks.i__valid",
                                                                  "sinks.i__ready")])
    want = ops.requantize(acc, mult, shift, 16)
    raw = np.frombuffer(rig.ddr.read(0x800, m * n * 2).tobytes(), "<i2")
    # emission order: row tiles of R, column tiles of C, rows in order
    R, got = rig.cfg.array_rows, np.zeros((m, n), np.int64)
    i = 0
    for tm in range(math.ceil(m / R)):
        for tn in range(n // C):
            for r in range(tm * R, min(m, (tm + 1) * R)):
                got[r, tn * C:(tn + 1) * C] = raw[i * C:(i + 1) * C]
                i += 1
    _assert_equal(got, want, "DDR rows")
    lo, hi = timing.store_matmul_bounds(rig.cfg, m, k, n, stalls, rig.ddr.write_latency)
    assert lo <= cycles <= hi, (lo, cycles, hi)
    rows = m * (n // C)
    assert (stalls > 0) == (rows > rig.cfg.store_fifo_rows), (stalls, rows)


def test_matmul_residual_add(rig):
    rng = np.random.default_rng(8)
    C = rig.cfg.array_cols
    m, k, d = 5, 8, 2 * C
    res = rng.integers(-20000, 20000, (m, d))
    rig.load_residual(res, identity_row=rig.cfg.const_words)
    _, _, acc, mult, shift = _matmul_operands(rig, rng, m, k, d)
    cycles = _matmul(rig, m, k, d, OutBits.INT16, OutDest.NONE, a_signed=1, residual=1)
    y = ops.requantize(acc, mult, shift, 16)
    _assert_equal(rig.residual(m, d), ops.residual_add(res, y), "residual")
    assert cycles == timing.matmul_instr_cycles(rig.cfg, m, k, d)


def test_router_then_one_expert_gather_and_scatter(rig):
    """Gate logits → router queues; the first non-empty expert's fc1 gathers its tokens and an
    fc2 scatters its outputs into the MoE accumulator, weighted by the gate probabilities."""
    cfg = rig.cfg
    C, E = cfg.array_cols, cfg.experts
    rng = np.random.default_rng(9)
    tokens, k = 9, C
    x = rng.integers(-128, 128, (tokens, k))
    w_gate = rng.integers(-128, 128, (E, k))
    rig.load_act(0, x)
    rig.load_b(0, w_gate)
    rig.load_const(0, [0] * E, [1 << 14] * E, [8] * E)     # logits in Q16-ish: × 64
    cycles = rig.instr(Op.MATMUL, m=tokens, a_addr=0, a_stride=1, k=k, n=E, a_signed=1,
                       out_bits=OutBits.INT32.value, dest=OutDest.ROUTER)
    logits = ops.requantize(ops.matmul(x, w_gate.T), [1 << 14] * E, [8] * E, 32)
    idx, probs = ops.gate_top_k(logits, cfg.top_k)
    queues = [np.nonzero((idx == e).any(-1))[0] for e in range(E)]
    entries = [(int(t), int(probs[t][list(idx[t]).index(e)])) for e in range(E)
               for t in queues[e]]
    assert rig.queue(len(entries)) == entries
    assert cycles == timing.router_matmul_cycles(cfg, tokens, k, rig.dut.router)
    # the first non-empty expert
    e = next(i for i, q in enumerate(queues) if len(q))
    q = queues[e]
    qstart = sum(len(queues[i]) for i in range(e))
    hidden = C
    w1 = rng.integers(-128, 128, (hidden, k))
    rig.load_b(64, w1)
    rig.load_const(8, [0] * hidden, [1 << 14] * hidden, [10] * hidden)
    cycles = rig.instr(Op.MATMUL, m=len(q), qstart=qstart, gather=1, a_addr=0, a_stride=1,
                       k=k, n=hidden, a_signed=1, b_offset=64, const_base=8,
                       out_bits=OutBits.INT8.value, dest=OutDest.ACT, d_addr=500, d_stride=1)
    h = ops.requantize(ops.matmul(x[q], w1.T), [1 << 14] * hidden, [10] * hidden, 8)
    _assert_equal(rig.act_rows(500, len(q), hidden, stride=1), h, "gathered fc1 rows")
    assert cycles == timing.matmul_instr_cycles(cfg, len(q), k, hidden, gather=True,
                                                to_act=True)
    w2 = rng.integers(-128, 128, (k, hidden))
    rig.load_b(128, w2)
    rig.load_const(16, [0] * k, [1 << 14] * k, [6] * k)
    rig.instr(Op.LANES, aux=Aux.ACC_CLEAR.value, row0=0, rows=tokens, row_words=1)
    cycles = rig.instr(Op.MATMUL, m=len(q), a_addr=500, a_stride=1, k=hidden, n=k, a_signed=1,
                       b_offset=128, const_base=16, out_bits=OutBits.INT16.value,
                       dest=OutDest.NONE, scatter=1)
    y = ops.requantize(ops.matmul(h, w2.T), [1 << 14] * k, [6] * k, 16)
    p = np.array([pr for t, pr in entries[qstart:qstart + len(q)]])
    want = ops.moe_accumulate(np.zeros((tokens, k), np.int64), q, y, p)
    _assert_equal(rig.moe_acc(tokens, k), want, "MoE accumulator")
    assert cycles == timing.matmul_instr_cycles(cfg, len(q), hidden, k)
    # commit: residual += accumulator (saturated), accumulator cleared
    res = rng.integers(-30000, 30000, (tokens, k))
    rig.load_residual(res, identity_row=cfg.const_words)
    cycles = rig.instr(Op.LANES, aux=Aux.ACC_COMMIT.value, row0=0, rows=tokens, row_words=1)
    _assert_equal(rig.residual(tokens, k), ops.saturate(res + want, 16), "committed residual")
    _assert_equal(rig.moe_acc(tokens, k), np.zeros((tokens, k)), "accumulator after commit")
    assert cycles == timing.lanes_cycles(tokens, 1)


def test_lanes_clear_and_commit_of_zeros(rig):
    """ACC_CLEAR zeroes only its rows; committing zeros leaves the residual (the commit of a
    real accumulator is in the router test above)."""
    C = rig.cfg.array_cols
    rng = np.random.default_rng(10)
    t, d = 6, 2 * C
    res = rng.integers(-30000, 30000, (t, d))
    rig.load_residual(res, identity_row=rig.cfg.const_words)
    cycles = rig.instr(Op.LANES, aux=Aux.ACC_CLEAR.value, row0=0, rows=t, row_words=2)
    _assert_equal(rig.moe_acc(t, d), np.zeros((t, d)), "cleared accumulator")
    assert cycles == timing.lanes_cycles(t, 2)
    cycles = rig.instr(Op.LANES, aux=Aux.ACC_COMMIT.value, row0=1, rows=4, row_words=2)
    _assert_equal(rig.residual(t, d), res, "residual after committing zeros")
    assert cycles == timing.lanes_cycles(4, 2)


def test_layernorm(rig):
    cfg = rig.cfg
    C = cfg.array_cols
    rng = np.random.default_rng(11)
    t, d = 5, 2 * C
    res = rng.integers(-3000, 3000, (t, d))
    rig.load_residual(res, identity_row=cfg.const_words)
    gamma = rng.integers(-2**10, 2**10, d)
    beta = rng.integers(-2**20, 2**20, d)
    rig.load_lnp(gamma, beta)
    cycles = rig.instr(Op.LAYERNORM, row0=1, rows=3, row_words=2, d_addr=100, d_stride=3, eps=7)
    want = ops.layer_norm(res[1:4], gamma, beta, 7, ops.LN_GAMMA_FRAC)
    _assert_equal(rig.act_rows(100, 3, d, stride=3), want, "LayerNorm rows")
    assert cycles == timing.layernorm_cycles(cfg, rig.dut.layernorm, 3, 2)


@pytest.mark.parametrize("rows, length", [(3, None), (None, 5)], ids=["3-queries", "all-queries"])
def test_softmax(rig, rows, length):
    """SCORE holds the scores transposed (a matmul of keys by queries, ``Sᵀ = K·Qᵀ``); SOFTMAX
    writes each query's probabilities as a row."""
    cfg = rig.cfg
    C = cfg.array_cols
    rng = np.random.default_rng(12)
    rows = rows or cfg.max_tokens
    length = length or 2 * C + 1
    q = rng.integers(-128, 128, (rows, C))
    k = rng.integers(-128, 128, (length, C))
    rig.load_act(0, k)
    rig.load_b(0, q)
    rig.load_const(0, [0] * rows, [1 << 14] * rows, [14] * rows)
    rig.instr(Op.MATMUL, m=length, a_addr=0, a_stride=1, k=C, n=rows, a_signed=1,
              out_bits=OutBits.INT32.value, dest=OutDest.SCORE)
    stride = -(-length // C) + 1
    cycles = rig.instr(Op.SOFTMAX, rows=rows, length=length, d_addr=200, d_stride=stride)
    want = ops.softmax_online(q @ k.T, 8, 8)
    _assert_equal(rig.act_rows(200, rows, length, stride=stride, signed=False), want,
                  "probabilities")
    assert cycles == timing.softmax_cycles(cfg, rig.dut.softmax, rows, length)


@pytest.mark.parametrize("transpose", [False, True], ids=["values", "keys"])
def test_bload(rig, transpose):
    cfg = rig.cfg
    C = cfg.array_cols
    rng = np.random.default_rng(13)
    rows, words = C + 3, 2
    tokens = rng.integers(-128, 128, (rows, words * C))
    rig.load_act(40, tokens, stride=3)
    b_offset = 2 * cfg.b_half_words
    cycles = rig.instr(Op.BLOAD, src=40, stride=3, rows=rows, words=words, transpose=transpose,
                       b_offset=b_offset)
    if transpose:           # keys: B row n = token n, reduction index = the token's element
        count = math.ceil(rows / C) * words * C
        got = rig.b_words(b_offset, count)
        want = np.zeros_like(got)
        for t in range(rows):
            for kk in range(words * C):
                want[(t // C) * words * C + kk, t % C] = tokens[t, kk]
        for t in range(rows, math.ceil(rows / C) * C):      # masked lanes keep their value
            want[:, t % C] = np.where(np.arange(count) >= (rows // C) * words * C,
                                      got[:, t % C], want[:, t % C])
    else:                   # values: B row n = element n, reduction index = the token
        got = rig.b_words(b_offset, words * rows)
        want = np.array([tokens[t, w * C:(w + 1) * C] for w in range(words)
                         for t in range(rows)])
    _assert_equal(got, want, "B words")
    assert cycles == timing.bload_cycles(cfg, rows, words, transpose)
