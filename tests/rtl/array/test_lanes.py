"""The vector lanes alone: requantised rows bit-exact and in order under random input gaps and
output back-pressure, the pipeline latency, and the output buffer's contract (``held`` is a
register and means the input is not taken; no row is lost or repeated)."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest

from golden.quant import ops
from rtl.array.lanes import VECTOR_LATENCY, Aux, OutBits, VectorLanes
from tests.rtl.helpers import run

C = 4


def _drive(dut, acc, consts, *, ready_prob, valid_prob, seed):
    """Rows ``acc`` through ``dut`` (INT8 requantisation by ``consts``); returns the accept
    cycle of each row and ``(cycle, m, values)`` for each row out."""
    rng = np.random.default_rng(seed)
    accepted, got, stats = [], [], {"held": 0}

    async def tb(ctx):
        ctx.set(dut.const_load.valid, 1)
        ctx.set(dut.const_load.payload, {"addr": 0, "value": consts})
        await ctx.tick()
        ctx.set(dut.const_load.valid, 0)
        ctx.set(dut.mode, {"const_base": 0, "out_bits": OutBits.INT8, "gelu": 0, "act_mult": 0,
                           "act_shift": 0, "residual": 0, "scatter": 0, "aux": Aux.NONE})
        offered, cycle = False, 0
        while len(got) < len(acc):
            assert cycle < 50 * len(acc), f"stuck: {len(got)} of {len(acc)} rows out"
            r = len(accepted)
            if not offered and r < len(acc) and rng.random() < valid_prob:
                offered = True
                ctx.set(dut.i.payload, {"m": r, "tn": 0, "acc": [int(v) for v in acc[r]]})
            ctx.set(dut.i.valid, offered)
            ready = bool(rng.random() < ready_prob)
            ctx.set(dut.out.ready, ready)
            i_ready, held = ctx.get(dut.i.ready), ctx.get(dut.held)
            assert held == (not i_ready), f"cycle {cycle}: held {held}, input ready {i_ready}"
            stats["held"] += held
            if offered and i_ready:
                accepted.append(cycle)
                offered = False
            if ctx.get(dut.out.valid) and ready:
                out = ctx.get(dut.out.payload)
                got.append((cycle, int(out.m), [int(out.values[j]) for j in range(C)]))
            await ctx.tick()
            cycle += 1

    run(dut, tb, name="lanes")
    return accepted, got, stats["held"]


@pytest.mark.parametrize("ready_prob, valid_prob", [(1.0, 1.0), (1.0, 0.6), (0.5, 0.7),
                                                    (0.2, 1.0)],
                         ids=["streaming", "input-gaps", "both", "heavy-back-pressure"])
def test_rows_bit_exact_in_order(ready_prob, valid_prob):
    """Every row once, in order, equal to ``ops.requantize(acc + bias, M, sh, 8)``; with an
    always-ready sink each row leaves exactly ``VECTOR_LATENCY`` cycles after it entered."""
    rng = np.random.default_rng(int(ready_prob * 10 + valid_prob * 100))
    rows = 48
    acc = rng.integers(-(1 << 30), 1 << 30, (rows, C))
    bias = rng.integers(-3000, 3000, C)
    mult = rng.integers(1 << 14, 1 << 15, C)
    shift = rng.integers(10, 24, C)
    consts = [{"bias": int(b), "mult": int(mm), "shift": int(s)}
              for b, mm, s in zip(bias, mult, shift)]
    accepted, got, held = _drive(VectorLanes(C, 64, 1, 2), acc, consts, ready_prob=ready_prob,
                           valid_prob=valid_prob, seed=5)
    want = ops.requantize(acc + bias, mult, shift, 8)
    assert [m for _, m, _ in got] == list(range(rows)), [m for _, m, _ in got]
    for r, (_, _, values) in enumerate(got):
        assert values == [int(v) for v in want[r]], f"row {r}: got {values}, want {want[r]}"
    assert (held > 0) == (ready_prob < 1.0), held       # only a refusing sink holds them
    if ready_prob == 1.0:
        lat = [cycle - accepted[r] for r, (cycle, _, _) in enumerate(got)]
        assert set(lat) == {VECTOR_LATENCY}, lat


def test_init():
    """The ports follow the parameters: C accumulators in, C values out, ``held`` out."""
    from amaranth.hdl import Fragment
    dut = VectorLanes(C, 16, 2, 4)
    assert len(dut.i.payload.acc) == C and len(dut.out.payload.values) == C
    assert len(dut.held) == 1
    Fragment.get(dut, None)


@pytest.mark.parametrize("field", ["cols", "max_m", "max_tn", "const_depth"])
def test_init_wrong_sizes(field):
    kwargs = {"cols": C, "max_m": 16, "max_tn": 2, "const_depth": 4} | {field: 0}
    with warnings.catch_warnings():          # the half-built component is discarded quietly
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=field):
            VectorLanes(**kwargs)
        gc.collect()
