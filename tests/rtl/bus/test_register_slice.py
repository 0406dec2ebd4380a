"""The register slice alone: every beat once and in order under random gaps and back-pressure,
one cycle of latency and one beat a cycle when nothing stalls, and outputs that no input reaches
in the same cycle."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment, unsigned

from rtl.bus.register_slice import RegisterSlice
from tests.rtl.helpers import run


def _drive(valid_prob, ready_prob, beats=200, seed=3):
    """Beats ``0 .. beats-1`` through a slice; returns the accept and output cycles of each."""
    dut = RegisterSlice(unsigned(16))
    rng = np.random.default_rng(seed)
    accepted, got = [], []

    async def tb(ctx):
        offered, cycle = False, 0
        while len(got) < beats:
            assert cycle < 40 * beats, f"stuck: {len(got)} of {beats} beats out"
            before = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload))
            if not offered and len(accepted) < beats and rng.random() < valid_prob:
                offered = True
            ready = bool(rng.random() < ready_prob)
            ctx.set(dut.i.valid, offered)
            ctx.set(dut.i.payload, len(accepted) if offered else 0xDEAD)
            ctx.set(dut.o.ready, ready)
            after = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload))
            assert after == before, f"cycle {cycle}: outputs {before} -> {after} (combinational)"
            i_ready, o_valid, o_data = after
            if offered and i_ready:
                accepted.append(cycle)
                offered = False
            if o_valid and ready:
                got.append((cycle, o_data))
            assert ctx.get(dut.busy) == (o_valid or not i_ready), f"cycle {cycle}: busy"
            await ctx.tick()
            cycle += 1

    run(dut, tb, name="register_slice")
    return accepted, got


@pytest.mark.parametrize("valid_prob, ready_prob", [(1.0, 1.0), (0.6, 1.0), (1.0, 0.5),
                                                    (0.7, 0.3)],
                         ids=["streaming", "input-gaps", "back-pressure", "both"])
def test_sim(valid_prob, ready_prob):
    """Beats leave once each, in order; with a ready sink each leaves one cycle after it was
    accepted, and a continuous stream moves one beat every cycle."""
    accepted, got = _drive(valid_prob, ready_prob)
    data = [d for _, d in got]
    first = next((k for k, d in enumerate(data) if d != k), None)
    assert first is None, f"beat {first}: got {data[first]}, want {first}"
    if ready_prob == 1.0:
        lat = [c - accepted[k] for k, (c, _) in enumerate(got)]
        assert set(lat) == {1}, lat
    if valid_prob == ready_prob == 1.0:
        cycles = [c for c, _ in got]
        assert cycles == list(range(1, len(got) + 1)), cycles[:10]


def test_init():
    dut = RegisterSlice(unsigned(12))
    assert len(dut.i.payload) == len(dut.o.payload) == 12
    Fragment.get(dut, None)
