"""Cycle causes: the encoder's priority rule on random inputs, and every instruction's cycles
split by cause on the compute datapath (the counts each cause must have, summing to the
instruction's cycles; the array's useful MACs)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl.array.lanes import OutBits
from rtl.array.tiler import tile_period
from rtl.config import NANO, SMALL_TEST
from rtl.control.causes import Cause, cause_counter, counted_causes
from rtl.control.isa import Op, OutDest
from rtl.control.registers import register_map
from rtl.datapath.attribution import CauseEncoder
from rtl.datapath.dispatcher import Phase, Sink
from rtl.datapath.timing import ACCEPT_CYCLES, a_wait_cycles
from tests.rtl.datapath.compute_rig import ComputeRig
from tests.rtl.datapath.test_compute import _matmul, _matmul_operands

_IN = ("busy", "tiler_busy", "a_wait", "k_step", "period_pad", "stalled", "lanes_busy", "lanes_held")


def _reference(v: dict) -> Cause:
    """The documented priority rule (rtl.datapath.attribution), written out."""
    if not v["busy"]:
        return Cause.NONE
    if v["op"] != Op.MATMUL:
        return {Op.LAYERNORM: Cause.LAYERNORM, Op.SOFTMAX: Cause.SOFTMAX, Op.BLOAD: Cause.B_MOVER,
                Op.LANES: Cause.LANES, Op.LOAD: Cause.ACT_LOAD}.get(v["op"], Cause.SEQUENCER)
    held = {Sink.DDR: Cause.STORE, Sink.ROUTER: Cause.ROUTER}.get(v["sink"], Cause.LANES)
    if v["phase"] in (Phase.DECODE, Phase.ISSUE):
        return Cause.SEQUENCER
    if (v["stalled"] if v["tiler_busy"] else v["lanes_held"]):
        return held
    if v["tiler_busy"] and v["a_wait"]:
        return Cause.A_MOVE
    if v["tiler_busy"] and v["k_step"]:
        return Cause.ARRAY
    if v["tiler_busy"] and v["period_pad"]:
        return Cause.TILE_PERIOD
    if v["tiler_busy"] or v["lanes_busy"]:
        return Cause.FILL_DRAIN
    return held if held is not Cause.LANES else Cause.FILL_DRAIN


def test_init():
    enc = CauseEncoder()
    assert set(enc.signature.members) == {*_IN, "op", "phase", "sink", "cause"}
    Fragment.get(enc, None)


def test_every_cause_has_a_counter():
    names = {r.name for r in register_map(NANO)}
    assert {cause_counter(c) for c in counted_causes()} <= names
    assert Cause.NONE not in counted_causes() and len(counted_causes()) == len(Cause) - 1


def test_sim_priority_rule_on_random_inputs():
    dut = CauseEncoder()
    rng = random.Random(3)
    ops, phases, sinks = list(Op), list(Phase), list(Sink)
    cases = [{**{k: rng.random() < 0.5 for k in _IN}, "busy": rng.random() < 0.9,
              "op": rng.choice(ops) if rng.random() < 0.4 else Op.MATMUL,
              "phase": rng.choice(phases), "sink": rng.choice(sinks)} for _ in range(600)]
    seen = set()

    async def bench(ctx):
        for i, v in enumerate(cases):
            for k, x in v.items():
                ctx.set(getattr(dut, k), x)
            got, want = Cause(ctx.get(dut.cause)), _reference(v)
            assert got == want, f"case {i} {v}: RTL {got.name}, rule {want.name}"
            seen.add(got)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    sequencer_only = {Cause.WEIGHT_STALL, Cause.FETCH}     # the accelerator's, compute idle
    assert seen == set(Cause) - sequencer_only, f"never produced: {set(Cause) - seen}"


@pytest.fixture(scope="module", params=[NANO, SMALL_TEST], ids=["nano", "small-test"])
def rig(request):
    return ComputeRig(request.param)


def _check_sum(rig, cycles, what):
    got = sum(rig.tally.counts.values())
    assert got == cycles, f"{what}: causes sum to {got}, the instruction took {cycles} cycles " \
        f"({dict(rig.tally.counts)})"


@pytest.mark.parametrize("m, k, n", [(9, 13, 5), (5, 2, 7), (4, 4, 4)])
def test_matmul_cycles_by_cause(rig, m, k, n):
    """A matmul into ACT: ARRAY = tiles x K, TILE_PERIOD = tiles x (period - K), A_MOVE = the
    cycles row tiles wait for their A rows, the decode and issue cycles, the rest filling/draining; the
    useful MACs are M x K x N."""
    cfg = rig.cfg
    R, C = cfg.array_rows, cfg.array_cols
    _matmul_operands(rig, np.random.default_rng(m + k), m, k, n)
    cycles = _matmul(rig, m, k, n, OutBits.INT8, OutDest.ACT, a_signed=1)
    tiles = math.ceil(m / R) * math.ceil(n / C)
    got = rig.tally.counts
    want = {Cause.ARRAY: tiles * k, Cause.TILE_PERIOD: tiles * (tile_period(k, R, C) - k),
            Cause.A_MOVE: a_wait_cycles(cfg, m, k, n), Cause.SEQUENCER: ACCEPT_CYCLES}
    assert want[Cause.A_MOVE] > 0
    for cause, n_want in want.items():
        assert got[cause] == n_want, f"{cause.name}: {got[cause]} cycles, expected {n_want}"
    assert set(got) <= {*want, Cause.FILL_DRAIN}, dict(got)
    _check_sum(rig, cycles, "matmul")
    assert rig.tally.macs == m * k * n


def test_matmul_to_ddr_counts_the_store(rig):
    """Output rows held by the DDR writer are STORE cycles, never ARRAY ones."""
    C = rig.cfg.array_cols
    m, k, n = 9, 8, 2 * C
    _matmul_operands(rig, np.random.default_rng(7), m, k, n)
    cycles = _matmul(rig, m, k, n, OutBits.INT16, OutDest.DDR, a_signed=1, ddr_addr=0x800)
    got = rig.tally.counts
    R = rig.cfg.array_rows
    assert got[Cause.STORE] > 0 and got[Cause.ARRAY] == math.ceil(m / R) * 2 * k
    _check_sum(rig, cycles, "matmul to DDR")
    assert rig.tally.macs == m * k * n


def test_unit_instructions_are_their_units_cause(rig):
    """SOFTMAX and BLOAD spend every cycle in their unit."""
    C = rig.cfg.array_cols
    rows, length = 3, 2 * C
    rig.load_act(0, np.random.default_rng(2).integers(-128, 128, (rows, length)))
    cycles = rig.instr(Op.BLOAD, src=0, stride=2, rows=rows, words=2, transpose=0)
    assert dict(rig.tally.counts) == {Cause.B_MOVER: cycles}
    cycles = rig.instr(Op.SOFTMAX, rows=rows, length=length, d_addr=200, d_stride=1)
    assert dict(rig.tally.counts) == {Cause.SOFTMAX: cycles}
