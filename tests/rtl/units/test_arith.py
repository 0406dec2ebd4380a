"""Shared arithmetic pieces (exp2 table unit, reciprocal divider, integer sqrt) vs
``golden.quant.ops``, bit for bit and cycle for cycle."""

import gc
import warnings

import numpy as np
import pytest

from golden.quant import ops
from rtl.units.divider import ReciprocalDivider
from rtl.units.exp2 import Exp2Neg
from rtl.units.isqrt import IntSqrt
from tests.rtl.helpers import run


def _first_mismatch(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, (f"{what}: first mismatch at index {bad[0]}: got {got[bad[0]]}, "
                           f"want {want[bad[0]]} ({bad.size} mismatches)")


def test_exp2_neg_exact_with_stalls():
    rng = np.random.default_rng(1)
    edge = [0, 1, 255, 256, 257, 0xFFFF, 0x10000, 0x10001, 17 << 16, (18 << 16) - 1, 18 << 16,
            (1 << 33) - 1, (1 << 32) + 12345]
    every_entry = [(i << 8) | lo for i in range(256) for lo in (0, 129, 255)]   # each ROM word
    us = np.concatenate([edge, every_entry, rng.integers(0, 1 << 16, 150),
                         rng.integers(0, 20 << 16, 150), rng.integers(0, 1 << 33, 40)])
    want = ops.exp2_neg(us)
    dut = Exp2Neg(u_width=33)
    got = []

    async def tb(ctx):
        # Feed one argument per enabled cycle; hold the pipeline with random gaps in `en`.
        en_rng = np.random.default_rng(2)
        pending = []
        for u in list(us) + [0] * Exp2Neg.LATENCY:
            while True:
                en = en_rng.random() < 0.7
                ctx.set(dut.en, en)
                ctx.set(dut.u, int(u))
                await ctx.tick()
                if en:
                    break
            pending.append(ctx.get(dut.result))
        # The value sampled after the LATENCY-th enabled edge belongs to the first argument.
        got.extend(pending[Exp2Neg.LATENCY - 1:Exp2Neg.LATENCY - 1 + len(us)])

    run(dut, tb, name="exp2")
    _first_mismatch(got, want, "exp2_neg")


def _stream_unit(dut, inputs, ready_prob, seed):
    """Send each input, collect each output with random back-pressure; return (results,
    cycles from acceptance to o.valid for each)."""
    results, latencies = [], []

    async def tb(ctx):
        rng = np.random.default_rng(seed)
        for x in inputs:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, int(x))
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            n = 0
            while not ctx.get(dut.o.valid):
                await ctx.tick()
                n += 1
            latencies.append(n + 1)
            while True:
                ready = rng.random() < ready_prob
                ctx.set(dut.o.ready, ready)
                *_, got = await ctx.tick().sample(dut.o.payload)
                if ready:
                    break
            ctx.set(dut.o.ready, 0)
            results.append(got)

    run(dut, tb, name="seq")
    return results, latencies


@pytest.mark.parametrize("qbits, dwidth, lo, hi", [(26, 27, (1 << 14) + 1, (1 << 27) - 1),
                                                   (41, 26, 1, (1 << 26) - 1)])
def test_reciprocal_divider(qbits, dwidth, lo, hi):
    rng = np.random.default_rng(qbits)
    ds = np.concatenate([[lo, lo + 1, hi, 1 << 15, (1 << 16) + 1],
                         rng.integers(lo, hi + 1, 40)])
    dut = ReciprocalDivider(40, dwidth, qbits)
    got, lat = _stream_unit(dut, ds, 0.6, 3)
    _first_mismatch(got, (np.int64(1) << 40) // ds, "floor(2**40/d)")
    assert set(lat) == {dut.cycles()}, f"latencies {set(lat)} != {dut.cycles()}"


@pytest.mark.parametrize("width", [49, 52])
def test_isqrt(width):
    rng = np.random.default_rng(width)
    top = (1 << width) - 1
    r = rng.integers(1, 1 << (width // 2), 20)
    vs = np.concatenate([[0, 1, 2, 3, 4, 15, 16, top, top - 1],
                         r * r, r * r - 1, rng.integers(0, top, 30)])
    vs = vs[vs >= 0]
    dut = IntSqrt(width)
    got, lat = _stream_unit(dut, vs, 0.6, 4)
    _first_mismatch(got, ops.isqrt(vs), "isqrt")
    assert set(lat) == {dut.cycles()}, f"latencies {set(lat)} != {dut.cycles()}"


def test_parameter_validation():
    """Bad parameters raise ValueError (the half-built components are discarded quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            Exp2Neg(u_width=8)
        with pytest.raises(ValueError):
            ReciprocalDivider(40, 16, 42)
        with pytest.raises(ValueError):
            IntSqrt(0)

        gc.collect()


def _rom_words(mem):
    """A ROM's words as (t, d) pairs, as the hardware holds them (the layout's constant: a field
    too narrow for its value would show here truncated)."""
    words = []
    for w in mem.init:
        c = mem.shape.const(w)
        words.append((int(c.t), int(c.d)))
    return words


@pytest.mark.parametrize("which", ["exp2", "gelu"])
def test_entry_and_difference_roms_match_the_tables(which):
    """Each word of the interpolation ROMs holds table entry ``i`` and ``T[i + 1] - T[i]``,
    with the difference field wide enough for every step, for every ``i`` the index can reach
    (exp2: 8 fraction bits; GELU: ``u >> 5`` for ``0 <= u < 2**14``)."""
    from rtl.array.lanes import VectorLanes
    with warnings.catch_warnings():          # the components are never elaborated
        warnings.simplefilter("ignore")
        if which == "exp2":
            mem, table = Exp2Neg(u_width=33).table, ops.exp2_table()
        else:
            mem, table = VectorLanes(2, 4, 1, 1).gelu_tables[1], ops.gelu_table()
        words = _rom_words(mem)
        del mem
        gc.collect()
    assert len(words) == len(table) - 1
    got_t = [t for t, _ in words]
    got_next = [t + d for t, d in words]
    _first_mismatch(got_t, table[:-1], f"{which} entries")
    _first_mismatch(got_next, table[1:], f"{which} entry + difference")


@pytest.mark.parametrize("bits", [4, 8])
def test_split_round_shift_and_saturate(bits):
    """``round_saturate(shift_for_round(v, sh), bits)`` (the lanes' two-stage requantisation)
    equals ``ops.saturate(ops.round_shift(v, sh), bits)`` for every 11-bit ``v`` and shift
    1..7, so both saturation bounds and every rounding tie are crossed."""
    from amaranth.hdl import Module, Signal, signed, unsigned
    from amaranth.sim import Simulator

    from rtl.units.arith import round_saturate, shift_for_round
    m = Module()
    v, sh = Signal(signed(11)), Signal(unsigned(3))
    s, out = Signal(signed(11)), Signal(signed(bits))
    m.d.comb += [s.eq(shift_for_round(v, sh)), out.eq(round_saturate(s, bits))]
    values = np.arange(-1024, 1024)
    got = {}

    async def tb(ctx):
        for shift in range(1, 8):
            ctx.set(sh, shift)
            row = []
            for x in values:
                ctx.set(v, int(x))
                row.append(ctx.get(out))
            got[shift] = row

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    for shift in range(1, 8):
        want = ops.saturate(ops.round_shift(values, shift), bits)
        _first_mismatch(got[shift], want, f"bits {bits}, shift {shift}")
