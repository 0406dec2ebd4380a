"""LayerNorm unit vs ``ops.layer_norm``: bit for bit, and cycle for cycle against
:meth:`rtl.units.layernorm.LayerNorm.schedule`."""

import gc
import warnings

import numpy as np
import pytest

from golden.quant import ops
from rtl.units.layernorm import LayerNorm
from tests.rtl.helpers import collect_beats, run

G = 10


def simulate(dut: LayerNorm, tokens, gamma, beta, eps, ready_prob=1.0, seed=0):
    """Load γ/β, then stream ``tokens`` (list of int16 vectors); return outputs and timing."""
    NL = dut.lanes
    got, info = [], {"stalls": 0}
    total = sum(len(t) // NL for t in tokens)
    start = {}

    async def feeder(ctx):
        ctx.set(dut.eps, eps)
        cyc = 0
        for a in range(len(gamma) // NL):
            ctx.set(dut.params.valid, 1)
            ctx.set(dut.params.payload, {"addr": a, "gamma_beta": {
                "gamma": [int(v) for v in gamma[a * NL:(a + 1) * NL]],
                "beta": [int(v) for v in beta[a * NL:(a + 1) * NL]]}})
            await ctx.tick()
            cyc += 1
        ctx.set(dut.params.valid, 0)
        start["cycle"] = cyc
        for tok in tokens:
            beats = len(tok) // NL
            for b in range(beats):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"r": [int(v) for v in tok[b * NL:(b + 1) * NL]],
                                        "last": int(b == beats - 1)})
                while True:
                    *_, ready = await ctx.tick().sample(dut.i.ready)
                    cyc += 1
                    if ready:
                        break
                info.setdefault("first", cyc - 1)
        ctx.set(dut.i.valid, 0)

    async def collector(ctx):
        beats = await collect_beats(ctx, dut.o, total, "y", NL, info, ready_prob, seed)
        pos = 0
        for tok in tokens:
            n = len(tok) // NL
            chunk = beats[pos:pos + n]
            pos += n
            assert [b[1] for b in chunk] == [0] * (n - 1) + [1], "last flags"
            got.append(np.concatenate([b[0] for b in chunk]))

    budget = dut.schedule([len(t) // NL for t in tokens])[-1][1] + len(gamma)
    run(dut, feeder, collector, name="layernorm", deadline=(3 * budget + 500) * 1e-8)
    assert len(got) == len(tokens), f"only {len(got)} of {len(tokens)} tokens came out"
    return got, info


def check(dut, tokens, gamma, beta, eps, ready_prob=1.0, seed=0):
    got, info = simulate(dut, tokens, gamma, beta, eps, ready_prob, seed)
    for t, (tok, out) in enumerate(zip(tokens, got)):
        d = len(tok)
        want = ops.layer_norm(np.asarray(tok)[None], gamma[:d], beta[:d], eps, G)[0]
        bad = np.nonzero(out != want)[0]
        assert bad.size == 0, (f"token {t} (D={d}): first mismatch at element {bad[0]}: got "
                               f"{out[bad[0]]}, want {want[bad[0]]}")
    sched = dut.schedule([len(t) // dut.lanes for t in tokens])
    formula = sched[-1][1] - sched[0][0] + 1
    cycles = info["last"] - info["first"] + 1
    if ready_prob >= 1.0:
        assert cycles == formula, f"{cycles} cycles, formula {formula}"
    else:
        assert formula <= cycles <= formula + info["stalls"], \
            f"{cycles} cycles; formula {formula} (+ up to {info['stalls']} stalls)"
    return info


def constants(rng, d, scale=1.0):
    s_out = 0.05
    gamma = np.round(rng.normal(1.0, 0.3, d) * scale / s_out * 2 ** G).astype(np.int64)
    beta = np.round(rng.normal(0, 0.5, d) * scale / s_out * 2 ** (16 + G)).astype(np.int64)
    return gamma, beta


def test_random_tokens_two_lanes():
    rng = np.random.default_rng(20)
    D = 16
    dut = LayerNorm(max_dim=D, lanes=2, banks=2)
    gamma, beta = constants(rng, D)
    toks = [rng.integers(-(1 << 15), 1 << 15, D), rng.normal(0, 300, D).astype(np.int64),
            rng.integers(-5, 6, 6), rng.integers(-(1 << 15), 1 << 15, 2),
            rng.normal(1000, 20, D).astype(np.int64)]
    check(dut, toks, gamma, beta, eps=3)


def test_adversarial_tokens():
    rng = np.random.default_rng(21)
    D = 12
    dut = LayerNorm(max_dim=D)
    gamma, beta = constants(rng, D, scale=4.0)
    gamma[0], gamma[1] = (1 << 24) - 1, -(1 << 24) + 1
    one = np.zeros(D, np.int64)
    one[5] = 32767
    toks = [np.full(D, 1234), np.full(D, -32768), np.full(D, 32767),   # all equal: V = eps
            np.array([-32768, 32767] * (D // 2)),                      # alternating extremes
            one, -one, np.array([-32768] + [32767] * (D - 1)),
            np.array([5]), np.array([-32768]),                        # D = 1
            rng.integers(-(1 << 15), 1 << 15, D)]
    check(dut, toks, gamma, beta, eps=1)
    check(LayerNorm(max_dim=D), toks[:5], gamma, beta, eps=(1 << 32) - 1)


@pytest.mark.parametrize("eps", [1, 4, 5, 20, 21])
def test_eps_at_square_boundaries(eps):
    """Small-variance tokens where eps moves V across a perfect square (isqrt changes)."""
    rng = np.random.default_rng(25)
    D = 12
    gamma, beta = constants(rng, D)
    tiny = np.zeros(D, np.int64)
    tiny[-1] = 1                     # V = 11 + eps: 15/16 and 24/25/... straddle squares
    check(LayerNorm(max_dim=D), [tiny, -tiny, np.array([0, 1]), np.array([3, 3, 4, 4])],
          gamma, beta, eps=eps)


def test_back_pressure():
    rng = np.random.default_rng(22)
    D = 8
    dut = LayerNorm(max_dim=D, lanes=2, banks=3)
    gamma, beta = constants(rng, D)
    toks = [rng.integers(-(1 << 15), 1 << 15, D) for _ in range(4)] + [np.full(2, 9)]
    check(dut, toks, gamma, beta, eps=77, ready_prob=0.5, seed=9)


def test_steady_state_period():
    """Equal tokens, bank-bound: 2 B + 4 + scalar_cycles per two tokens with two banks."""
    rng = np.random.default_rng(23)
    D, NL = 96, 2
    B = D // NL
    dut = LayerNorm(max_dim=D, lanes=NL, banks=2)
    gamma, beta = constants(rng, D)
    info = check(dut, [rng.integers(-3000, 3000, D) for _ in range(5)], gamma, beta, eps=5)
    ends = [e for _, e in dut.schedule([B] * 5)]
    assert info["last"] - info["first"] == ends[-1]
    S = dut.scalar_cycles()
    assert 2 * B + 4 + S > 2 * (S + 1) and ends[-1] - ends[-3] == 2 * B + 4 + S, ends
    assert dut.schedule([B])[0][1] + 1 == 2 * B + 9 + S


def test_full_rate_with_three_banks():
    """Three banks, B >= scalar_cycles + 1: one beat per cycle in steady state."""
    rng = np.random.default_rng(26)
    D = 80
    dut = LayerNorm(max_dim=D, banks=3)
    assert D >= dut.scalar_cycles() + 1
    gamma, beta = constants(rng, D)
    info = check(dut, [rng.integers(-20000, 20000, D) for _ in range(5)], gamma, beta, eps=2)
    ends = [e for _, e in dut.schedule([D] * 5)]
    assert ends[-1] - ends[-2] == D and ends[-2] - ends[-3] == D, ends
    assert info["last"] - info["first"] == ends[-1]


def test_parameter_validation():
    """Bad parameters raise ValueError (the half-built components are discarded quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"max_dim": 10, "lanes": 3}, {"max_dim": 0}, {"max_dim": 2048},
                   {"max_dim": 8, "banks": 1}, {"max_dim": 8, "eps_width": 0}):
            with pytest.raises(ValueError):
                LayerNorm(**kw)
        gc.collect()


def test_tiny_width_tokens():
    """D = 192 (tiny), two lanes, three tokens with back-pressure."""
    rng = np.random.default_rng(24)
    D = 192
    dut = LayerNorm(max_dim=D, lanes=2)
    gamma, beta = constants(rng, D)
    toks = [rng.normal(0, s, D).astype(np.int64) for s in (100, 3000, 12000)]
    check(dut, [np.clip(t, -32768, 32767) for t in toks], gamma, beta, eps=40, ready_prob=0.8)


def test_small_model_width_four_lanes_back_pressure():
    """D = 384 (the `small` model), four lanes, random token widths and scales."""
    rng = np.random.default_rng(27)
    D = 384
    dut = LayerNorm(max_dim=D, lanes=4)
    gamma, beta = constants(rng, D, scale=2.0)
    toks = [np.clip(rng.normal(rng.normal(0, 500), s, 4 * int(rng.integers(1, D // 4 + 1))),
                    -32768, 32767).astype(np.int64)
            for s in (1, 30, 3000, 20000, 9, 400, 12000, 70)]
    check(dut, toks, gamma, beta, eps=int(rng.integers(1, 1 << 20)), ready_prob=0.7, seed=2)


def test_scalar_stages_tiny_width_eight_lanes():
    """D = 192, 8 lanes, 4 scalar stages, 6 banks (the default config's unit): bit- and
    cycle-exact, and in steady state a token every max(B, (scalar_cycles + 1) / 4) = 24 cycles."""
    rng = np.random.default_rng(28)
    D, NL = 192, 8
    dut = LayerNorm(max_dim=D, lanes=NL, banks=6, scalar_stages=4)
    B = D // NL
    assert (dut.scalar_cycles() + 1) / 4 <= B
    gamma, beta = constants(rng, D)
    toks = [np.clip(rng.normal(0, s, D), -32768, 32767).astype(np.int64)
            for s in (40, 900, 3000, 12000, 7, 20000, 500, 2500, 60, 16000)]
    info = check(dut, toks, gamma, beta, eps=33)
    ends = [e for _, e in dut.schedule([B] * len(toks))]
    assert all(b - a == B for a, b in zip(ends[3:], ends[4:])), ends
    assert info["last"] - info["first"] == ends[-1]


def test_scalar_stages_back_pressure_and_mixed_widths():
    """Three stages over five banks, tokens of random widths, output back-pressure."""
    rng = np.random.default_rng(29)
    D, NL = 64, 4
    dut = LayerNorm(max_dim=D, lanes=NL, banks=5, scalar_stages=3)
    gamma, beta = constants(rng, D)
    toks = [np.clip(rng.normal(0, s, NL * int(rng.integers(1, D // NL + 1))), -32768,
                    32767).astype(np.int64) for s in (5, 300, 9000, 30000, 70, 1200, 4)]
    check(dut, toks, gamma, beta, eps=9, ready_prob=0.6, seed=4)


def test_scalar_stages_validation():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"max_dim": 8, "scalar_stages": 0}, {"max_dim": 8, "banks": 2,
                                                       "scalar_stages": 3}):
            with pytest.raises(ValueError, match="scalar_stages"):
                LayerNorm(**kw)
        gc.collect()
