"""Online softmax unit vs ``ops.softmax_online``: bit for bit, and cycle for cycle against
:func:`rtl.units.softmax.softmax_schedule`."""

import gc
import warnings

import numpy as np
import pytest

from golden.quant import ops
from rtl.units.softmax import SOFTMAX_FILL_LATENCY, Softmax
from tests.rtl.helpers import collect_beats, run

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def simulate(dut: Softmax, groups, ready_prob=1.0, seed=0, valid_prob=1.0):
    """Stream row groups ([lanes, L] each) through ``dut``; return outputs [lanes, L] per group,
    the cycle of the first accepted score, the cycle of the last output, and stalled cycles."""
    total = sum(g.shape[1] for g in groups)
    got, info = [], {"stalls": 0}

    async def feeder(ctx):
        rng = np.random.default_rng(seed + 1)
        cyc = 0
        for g in groups:
            for col in range(g.shape[1]):
                while valid_prob < 1.0 and rng.random() >= valid_prob:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                    cyc += 1
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"t": [int(v) for v in g[:, col]],
                                        "last": int(col == g.shape[1] - 1)})
                while True:
                    *_, ready = await ctx.tick().sample(dut.i.ready)
                    cyc += 1
                    if ready:
                        break
                info.setdefault("first", cyc - 1)
        ctx.set(dut.i.valid, 0)

    async def collector(ctx):
        beats = await collect_beats(ctx, dut.o, total, "p", dut.lanes, info, ready_prob, seed)
        pos = 0
        for g in groups:
            n = g.shape[1]
            chunk = beats[pos:pos + n]
            pos += n
            lasts = [b[1] for b in chunk]
            assert lasts == [0] * (n - 1) + [1], f"row of {n}: last flags {lasts}"
            got.append(np.array([b[0] for b in chunk]).T)

    # A generous bound turns a hang into a failure (missing outputs) instead of a stuck test.
    budget = dut.schedule([g.shape[1] for g in groups])[-1][1]
    run(dut, feeder, collector, name="softmax", deadline=(3 * budget + 500) * 1e-8)
    assert len(got) == len(groups), f"only {len(got)} of {len(groups)} rows came out"
    return got, info


def check(dut: Softmax, groups, ready_prob=1.0, seed=0, valid_prob=1.0):
    got, info = simulate(dut, groups, ready_prob, seed, valid_prob)
    for r, (g, out) in enumerate(zip(groups, got)):
        want = ops.softmax_online(g, dut.out_frac, dut.out_bits)
        bad = np.argwhere(out != want)
        assert bad.size == 0, (f"row group {r} (L={g.shape[1]}): first mismatch at lane "
                               f"{bad[0][0]} column {bad[0][1]}: got {out[tuple(bad[0])]}, want "
                               f"{want[tuple(bad[0])]}; logits {g[bad[0][0]].tolist()}")
    sched = dut.schedule([g.shape[1] for g in groups])
    formula = sched[-1][1] - sched[0][0] + 1
    cycles = info["last"] - info["first"] + 1
    if ready_prob >= 1.0 and valid_prob >= 1.0:
        assert cycles == formula, f"{cycles} cycles, formula {formula}"
    else:
        assert cycles >= formula, f"{cycles} cycles beat the formula {formula}"
        if valid_prob >= 1.0:
            assert cycles <= formula + info["stalls"], \
                f"{cycles} cycles > formula {formula} + {info['stalls']} stalled cycles"
    return info


def random_rows(rng, lanes, n, sigma):
    return np.round(rng.normal(0, sigma, (lanes, n)) * np.log2(np.e) * 65536).astype(np.int64)


def test_random_rows_q8_two_lanes():
    rng = np.random.default_rng(10)
    dut = Softmax(max_len=24, lanes=2)
    groups = [random_rows(rng, 2, n, s) for n, s in
              ((24, 1.0), (5, 4.0), (17, 0.3), (1, 2.0), (24, 8.0), (9, 20.0), (13, 0.05))]
    check(dut, groups)


def test_adversarial_rows():
    rng = np.random.default_rng(11)
    L = 16
    huge = np.full((1, L), -1000)
    huge[0, 7] = I32_MAX
    groups = [
        np.full((1, L), 12345),                                  # all equal
        np.full((1, L), I32_MIN),                                # negative extreme, all equal
        np.full((1, L), I32_MAX),
        huge,                                                    # one huge score
        np.array([[I32_MIN, I32_MAX] * (L // 2)]),               # alternating extremes
        np.array([[I32_MAX] + [I32_MIN] * (L - 1)]),             # maximum first
        np.array([[I32_MIN] * (L - 1) + [I32_MAX]]),             # maximum last: K jumps
        np.array([[I32_MIN]]), np.array([[I32_MAX]]), np.array([[0]]),   # rows of length 1
        np.arange(L)[None] * (3 << 16),                          # steadily growing K
        -np.arange(L)[None] * 70000,
        rng.integers(I32_MIN, I32_MAX, (1, L), endpoint=True),
        np.array([[-65536, -65535, -1, 0, 1, 65535, 65536, 65537] * 2]),   # ceil boundaries
    ]
    check(Softmax(max_len=L), groups)


def test_gate_format_q16_and_back_pressure():
    rng = np.random.default_rng(12)
    dut = Softmax(max_len=16, out_frac=16, out_bits=16, banks=2)
    groups = [random_rows(rng, 1, 16, s) for s in (0.1, 1.0, 4.0, 8.0)]
    groups += [np.zeros((1, 1), np.int64), np.full((1, 16), 77)]
    check(dut, groups, ready_prob=0.45, seed=5)


def test_back_pressure_and_input_gaps_two_lanes():
    rng = np.random.default_rng(13)
    dut = Softmax(max_len=12, lanes=2, banks=2)
    groups = [random_rows(rng, 2, n, 3.0) for n in (12, 1, 7, 12, 3, 2)]
    check(dut, groups, ready_prob=0.6, seed=7, valid_prob=0.7)


@pytest.mark.parametrize("banks", [2, 3])
def test_throughput_equal_rows(banks):
    """Steady state: 2 L + 28 + SOFTMAX_FILL_LATENCY cycles per two rows with two banks, L per
    row with three."""
    rng = np.random.default_rng(14)
    L, rows = 40, 7
    dut = Softmax(max_len=L, banks=banks)
    info = check(dut, [random_rows(rng, 1, L, 2.0) for _ in range(rows)])
    ends = [end for _, end in dut.schedule([L] * rows)]
    if banks == 2:
        assert ends[-1] - ends[-3] == 2 * L + 28 + SOFTMAX_FILL_LATENCY, ends
    else:
        assert ends[-1] - ends[-2] == L and ends[-2] - ends[-3] == L, ends
    assert info["last"] == ends[-1]


def test_overflow_flag():
    dut = Softmax(max_len=4)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for col in range(6):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"t": [col], "last": int(col == 5)})
            await ctx.tick().until(dut.i.ready)
            if col == 3:
                seen["before"] = ctx.get(dut.overflow)
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        seen["after"] = ctx.get(dut.overflow)

    run(dut, tb, name="softmax_overflow")
    assert seen == {"before": 0, "after": 1}


def test_parameter_validation():
    """Bad parameters raise ValueError (the half-built components are discarded quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"max_len": 0}, {"max_len": 4, "lanes": 0}, {"max_len": 4, "banks": 1},
                   {"max_len": 4, "in_width": 48}, {"max_len": 4, "out_frac": 40}):
            with pytest.raises(ValueError):
                Softmax(**kw)
        gc.collect()


def test_maximum_length_attention_rows():
    """Rows of 1025 scores (the longest attention row) and of 129 (tiny)."""
    rng = np.random.default_rng(15)
    dut = Softmax(max_len=1025)
    check(dut, [random_rows(rng, 1, 1025, 3.0), random_rows(rng, 1, 129, 3.0),
                np.full((1, 1025), I32_MIN)], ready_prob=0.8, seed=3)


def test_tiny_attention_rows():
    """Rows of 129 (the tiny model's token count) at max_len 129, including the extremes."""
    rng = np.random.default_rng(16)
    dut = Softmax(max_len=129)
    big = random_rows(rng, 1, 129, 6.0)
    big[0, 128] = I32_MAX
    check(dut, [random_rows(rng, 1, 129, 3.0), big, np.full((1, 129), I32_MIN)])


def test_many_random_rows_two_lanes_back_pressure():
    rng = np.random.default_rng(17)
    dut = Softmax(max_len=300, lanes=2)
    groups = [random_rows(rng, 2, int(rng.integers(1, 301)), float(rng.choice([0.1, 1, 4, 30])))
              for _ in range(20)]
    check(dut, groups, ready_prob=0.7, seed=11)
