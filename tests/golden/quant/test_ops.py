"""Property tests of every integer operation (hypothesis, derandomised: deterministic in CI)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden.quant import ops

settings.register_profile("deterministic", derandomize=True, max_examples=200, deadline=None)
settings.load_profile("deterministic")


def first_mismatch(got, want) -> str:
    got, want = np.asarray(got), np.asarray(want)
    bad = np.argwhere(got != want)
    if not len(bad):
        return "equal"
    i = tuple(bad[0])
    return f"first mismatch at {i}: got {got[i]}, want {want[i]}"


# ---------------------------------------------------------------- rounding, saturation, requant

def test_round_shift_ties_go_up():
    v = np.array([3, -3, 5, 6, -6, -5, 0, 1, -1])
    assert ops.round_shift(v, np.array([1, 1, 2, 2, 2, 2, 1, 1, 1])).tolist() == \
        [2, -1, 1, 2, -1, -1, 0, 1, 0]
    with pytest.raises(ValueError):
        ops.round_shift(5, 0)


@given(st.integers(-(1 << 61), (1 << 61) - 1), st.integers(1, 62))
def test_round_shift_is_floor_of_half_up(v, s):
    assert int(ops.round_shift(np.int64(v), s)) == (v + (1 << (s - 1))) // (1 << s)
    assert abs(int(ops.round_shift(np.int64(v), s)) - v / 2 ** s) <= 0.5


def test_saturate_edges():
    v = np.array([-(1 << 40), -129, -128, 127, 128, 1 << 40])
    assert ops.saturate(v, 8).tolist() == [-128, -128, -128, 127, 127, 127]
    assert ops.saturate(v, 8, signed=False).tolist() == [0, 0, 0, 127, 128, 255]
    assert ops.saturate(v, 16).tolist() == [-32768, -129, -128, 127, 128, 32767]


@given(st.integers(-(1 << 46), (1 << 46) - 1), st.integers(0, (1 << 15) - 1), st.integers(1, 62),
       st.sampled_from([(8, True), (16, True), (8, False), (32, True)]))
def test_requantize_matches_python_integers(acc, m, s, fmt):
    bits, signed = fmt
    want = (acc * m + (1 << (s - 1))) >> s
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    assert int(ops.requantize(np.int64(acc), m, s, bits, signed)) == min(max(want, lo), hi)


def test_requantize_rejects_bad_constants():
    with pytest.raises(ValueError, match="multiplier"):
        ops.requantize(np.array([1]), 1 << 15, 4, 8)
    with pytest.raises(OverflowError):
        ops.requantize(np.array([1 << 47]), 3, 4, 8)


# ------------------------------------------------------------------------------- matmul

def test_matmul_extremes_exact_and_unsigned_operand():
    k = 1000
    a = np.full((2, k), -128)
    b = np.full((k, 3), -128)
    assert ops.matmul(a, b).tolist() == [[k * 16384] * 3] * 2
    a = np.full((1, k), 255)
    b = np.full((k, 1), -128)
    assert int(ops.matmul(a, b, a_signed=False)[0, 0]) == -255 * 128 * k
    with pytest.raises(ValueError, match="operand a"):
        ops.matmul(a, b)  # 255 is not int8
    with pytest.raises(ValueError, match="operand b"):
        ops.matmul(np.ones((1, 1)).astype(int), np.array([[128]]))
    with pytest.raises(OverflowError):
        ops.matmul(np.full((1, 1 << 17), -128), np.full((1 << 17, 1), -128))
    with pytest.raises(TypeError):
        ops.matmul(np.ones((1, 1)), np.ones((1, 1)))


@given(st.integers(1, 9), st.integers(1, 40), st.integers(1, 9), st.integers(0, 2 ** 32))
def test_matmul_equals_python_sum(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-(1 << 20), 1 << 20, n)
    want = [[sum(int(a[i, j]) * int(b[j, c]) for j in range(k)) + int(bias[c]) for c in range(n)]
            for i in range(m)]
    assert ops.matmul(a, b, bias).tolist() == want


# --------------------------------------------------------------------------------- GELU

def test_gelu_whole_range():
    x = np.arange(-(1 << 15), 1 << 15)
    g = ops.gelu_q10(x)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x / 1024.0])
    err = np.abs(g / 2 ** 14 - exact)
    assert err.max() < 1.5e-4, f"max error {err.max()} at x={x[err.argmax()] / 1024}"
    assert g[x == 0][0] == 0
    assert (g[x >= 8 << 10] == x[x >= 8 << 10] << 4).all()
    assert (g[x < -(8 << 10)] == 0).all()
    assert g.max() < 1 << 19 and g.min() >= -(1 << 19), "output fits 20 bits"
    with pytest.raises(ValueError):
        ops.gelu_q10(np.array([1 << 15]))


# ---------------------------------------------------------------------- exp2 and softmax

def test_exp2_whole_range_and_ends():
    u = np.arange(0, 20 << 16)
    e = ops.exp2_neg(u)
    assert e[0] == 1 << 16
    assert (np.diff(e) <= 0).all(), "monotone non-increasing"
    assert e[16 << 16] == 1 and (e[18 << 16:] == 0).all()
    assert np.abs(e / 2 ** 16 - np.exp2(-u / 2 ** 16)).max() < 2e-5
    with pytest.raises(ValueError):
        ops.exp2_neg(np.array([-1]))


def softmax_scalar(row, out_frac, out_bits):
    """The documented algorithm, written independently with Python integers."""
    def ceil16(t):
        return -((-t) >> 16)

    def exp2(u):
        return int(ops.exp2_neg(np.array([u]))[0])

    k = ceil16(row[0])
    s = exp2((k << 16) - row[0])
    for t in row[1:]:
        k2 = max(k, ceil16(t))
        s = (s >> (k2 - k)) + exp2((k2 << 16) - t)
        k = k2
    r = (1 << 40) // s
    out = []
    for t in row:
        v = (exp2((k << 16) - t) * r + (1 << (40 - out_frac - 1))) >> (40 - out_frac)
        out.append(min(v, (1 << out_bits) - 1))
    return out


@given(st.lists(st.integers(-(1 << 24), 1 << 24), min_size=1, max_size=40),
       st.sampled_from([(8, 8), (16, 16)]))
def test_softmax_matches_scalar_definition(row, fmt):
    got = ops.softmax_online(np.array([row]), *fmt)[0].tolist()
    assert got == softmax_scalar(row, *fmt)


@pytest.mark.parametrize("length", [1, 2, 33, 129, 1025])
def test_softmax_all_equal_rows_are_uniform(length):
    for value in (0, -(1 << 30), 12345, 1 << 30):
        p = ops.softmax_online(np.full((1, length), value), 16, 16)[0]
        want = min(round(65536 / length), 65535)
        assert (p == p[0]).all() and abs(int(p[0]) - want) <= 1, (value, p[:4])


def test_softmax_one_huge_score_and_extremes():
    row = np.full((1, 50), -(1 << 30))
    row[0, 17] = 1 << 30
    p = ops.softmax_online(row, 8, 8)[0]
    assert p[17] == 255 and (np.delete(p, 17) == 0).all()
    p = ops.softmax_online(np.array([[7]]), 8, 8)
    assert p.tolist() == [[255]], "a row of length 1 saturates to the largest code"
    rng = np.random.default_rng(0)
    t = rng.integers(-(1 << 22), 1 << 22, (500, 129))
    exact = np.exp2(t / 65536 - (t / 65536).max(-1, keepdims=True))
    exact /= exact.sum(-1, keepdims=True)
    assert np.abs(ops.softmax_online(t, 16, 16) / 65536 - exact).max() < 1e-4
    assert np.abs(ops.softmax_online(t, 8, 8) / 256 - exact).max() <= 1 / 256


# ------------------------------------------------------------------------------ LayerNorm

@given(st.integers(0, (1 << 62) - 1))
def test_isqrt_exact(v):
    r = int(ops.isqrt(np.int64(v)))
    assert r == math.isqrt(v)


def test_isqrt_near_perfect_squares():
    roots = np.array([1, 2, 3, 1 << 20, (1 << 31) - 3, (1 << 31) - 1])
    for d in (-1, 0, 1):
        v = np.minimum(roots * roots + d, (1 << 62) - 1)
        assert ops.isqrt(v).tolist() == [math.isqrt(int(x)) for x in v]


def test_layer_norm_against_float_and_constant_rows():
    rng = np.random.default_rng(1)
    d, gfrac, s_out = 64, 10, 2.0 / 127
    r = rng.integers(-20000, 20000, (300, d))
    gamma, beta = rng.uniform(0.5, 1.5, d), rng.uniform(-0.3, 0.3, d)
    gq = np.round(gamma / s_out * 2 ** gfrac).astype(np.int64)
    bq = np.round(beta / s_out * 2 ** (16 + gfrac)).astype(np.int64)
    got = ops.layer_norm(r, gq, bq, 1, gfrac)
    x = r.astype(float)
    ref = ((x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True) * gamma + beta) / s_out
    assert np.abs(got - np.clip(ref, -128, 127)).max() <= 0.52, "within rounding, saturating"
    assert got.min() == -128 and got.max() == 127, "the sweep reaches saturation"
    const = ops.layer_norm(np.full((1, d), -32768), gq, bq, 1, gfrac)[0]
    assert const.tolist() == ops.saturate(ops.round_shift(bq, 16 + gfrac), 8).tolist()
    with pytest.raises(ValueError):
        ops.layer_norm(np.full((1, d), 1 << 15), gq, bq, 1, gfrac)
    with pytest.raises(ValueError):
        ops.layer_norm(r, gq, bq, 0, gfrac)


# ------------------------------------------------------------------------- router, combine

def test_gate_top_k_ties_lower_index_and_no_renormalisation():
    t = np.array([[5, 5, 5, 5], [1, 9, 1, 9], [0, -3, 0, 7]]) << 16
    idx, p = ops.gate_top_k(t, 2)
    assert idx.tolist() == [[0, 1], [1, 3], [3, 0]]
    full = ops.softmax_online(t, 16, 16)
    assert (p == np.take_along_axis(full, idx, -1)).all()
    assert (p.sum(-1) < 65536).all()
    idx1, _ = ops.gate_top_k(t, 1)
    assert idx1[:, 0].tolist() == [0, 1, 3]
    idx4, p4 = ops.gate_top_k(t, 4)
    assert idx4[0].tolist() == [0, 1, 2, 3] and abs(int(p4[0].sum()) - 65536) <= 4
    with pytest.raises(ValueError):
        ops.gate_top_k(t, 5)


@given(st.integers(0, 2 ** 32))
def test_moe_accumulate_is_order_independent(seed):
    rng = np.random.default_rng(seed)
    n, d, experts = 12, 5, 4
    queues = [np.sort(rng.choice(n, rng.integers(0, n + 1), replace=False)) for _ in range(experts)]
    ys = [rng.integers(-32768, 32768, (len(q), d)) for q in queues]
    ps = [rng.integers(0, 65536, len(q)) for q in queues]
    results = []
    for order in (range(experts), reversed(range(experts)), rng.permutation(experts)):
        acc = np.zeros((n, d), np.int64)
        for e in order:
            acc = ops.moe_accumulate(acc, queues[e], ys[e], ps[e])
        results.append(acc)
    assert all(np.array_equal(results[0], r) for r in results[1:])
    empty = ops.moe_accumulate(results[0], np.array([], int), np.zeros((0, d), int), np.array([], int))
    assert np.array_equal(empty, results[0])
