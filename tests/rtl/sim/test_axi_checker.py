"""The protocol checker accepts legal traffic and raises on each deliberately broken rule."""

from __future__ import annotations

import pytest

from rtl.sim import AxiChecker, AxiProtocolError
from rtl.sim.bench import IO

NB = 8


class TraceIO(IO):
    """A plain dict standing in for a DUT port: drive one cycle at a time by hand."""

    def __init__(self):
        self.v = {}
        for ch in ("aw", "w", "b", "ar", "r"):
            for f in ("valid", "ready", "id", "addr", "len", "size", "burst", "data", "strb",
                      "last", "resp"):
                self.v[f"p__{ch}__{f}"] = 0

    def get(self, name):
        return self.v[name]

    def set(self, name, value):
        self.v[name] = value


def cycle(chk, io, **chans):
    """One cycle: ``chans`` maps a channel to a dict of its fields (valid implied)."""
    for k in list(io.v):
        if k.endswith("__valid") or k.endswith("__ready"):
            io.v[k] = 0
    for ch, fields in chans.items():
        io.v[f"p__{ch}__valid"] = 1
        for f, val in fields.items():
            io.v[f"p__{ch}__{f}"] = val
    chk.sample(io)
    io.cycle += 1


def ar(addr, beats, ready=1, **kw):
    return dict(addr=addr, len=beats - 1, size=3, burst=1, id=kw.get("id", 0), ready=ready)


def test_legal_traffic_passes():
    chk, io = AxiChecker("p", 64), TraceIO()
    cycle(chk, io, ar=ar(0x100, 2, ready=0))
    cycle(chk, io, ar=ar(0x100, 2))
    cycle(chk, io, r=dict(id=0, last=0, ready=1))
    cycle(chk, io, r=dict(id=0, last=1, ready=1))
    # W data before its AW, then the AW, then B.
    cycle(chk, io, w=dict(last=0, strb=0xFF, ready=1))
    cycle(chk, io, w=dict(last=1, strb=0xFF, ready=1))
    cycle(chk, io, aw=ar(0xFF0, 2))
    cycle(chk, io, b=dict(id=0, ready=1))
    assert chk.idle() and chk.transfers == 7


@pytest.mark.parametrize("name,steps,match", [
    ("valid dropped", [dict(ar=ar(0, 1, ready=0)), dict()], "VALID dropped"),
    ("payload changed", [dict(ar=ar(0, 1, ready=0)), dict(ar=ar(8, 1, ready=0))],
     "payload changed.*addr"),
    ("4 KB crossing", [dict(ar=ar(4096 - 16, 4))], "crosses a 4 KB"),
    ("size too wide", [dict(ar=dict(ar(0, 1), size=4))], "wider than"),
    ("reserved burst", [dict(ar=dict(ar(0, 1), burst=3))], "reserved"),
    ("early RLAST", [dict(ar=ar(0, 2)), dict(r=dict(id=0, last=1, ready=1))], "RLAST=1"),
    ("missing RLAST", [dict(ar=ar(0, 1)), dict(r=dict(id=0, last=0, ready=1))], "RLAST=0"),
    ("R without AR", [dict(r=dict(id=1, last=1, ready=1))], "no outstanding read"),
    ("wrong RID", [dict(ar=ar(0, 1, id=2)), dict(r=dict(id=3, last=1, ready=1))],
     "no outstanding"),
    ("early WLAST", [dict(aw=ar(0, 3)), dict(w=dict(last=1, ready=1))], "WLAST=1"),
    ("late WLAST", [dict(aw=ar(0, 1)), dict(w=dict(last=0, ready=1))], "WLAST=0"),
    ("W/AW length mismatch", [dict(w=dict(last=1, ready=1)), dict(aw=ar(0, 2))], "AW says 2"),
    ("B before data", [dict(aw=ar(0, 1)), dict(b=dict(id=0, ready=1))], "before its AW"),
    ("W data changed", [dict(aw=ar(0, 1)), dict(w=dict(last=1, data=1)),
                        dict(w=dict(last=1, data=2))], "data: 0x1 -> 0x2"),
])
def test_broken_traffic_raises(name, steps, match):
    chk, io = AxiChecker("p", 64), TraceIO()
    with pytest.raises(AxiProtocolError, match=match):
        for s in steps:
            cycle(chk, io, **s)


def test_lite_rules():
    chk, io = AxiChecker("p", 32, lite=True), TraceIO()
    cycle(chk, io, ar=dict(addr=0, ready=1))
    cycle(chk, io, r=dict(ready=1))
    with pytest.raises(AxiProtocolError, match="without an outstanding read"):
        cycle(chk, io, r=dict(ready=1))
    chk, io = AxiChecker("p", 32, lite=True), TraceIO()
    cycle(chk, io, aw=dict(addr=0, ready=1))
    with pytest.raises(AxiProtocolError, match="before both address and data"):
        cycle(chk, io, b=dict(ready=1))


def test_checker_catches_a_broken_dut_in_simulation():
    """A manager that withdraws ARVALID after one cycle, in a real Amaranth simulation."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out
    from rtl.bus.axi import axi4_signature
    from rtl.sim import DDRModel, make_bench

    class Flaky(wiring.Component):
        def __init__(self):
            super().__init__({"axi": Out(axi4_signature(32, 64, 2))})

        def elaborate(self, platform):
            m = Module()
            t = Signal(4)
            m.d.sync += t.eq(t + 1)
            m.d.comb += [self.axi.ar.valid.eq(t == 1), self.axi.ar.size.eq(3),
                         self.axi.ar.burst.eq(1), self.axi.r.ready.eq(1), self.axi.b.ready.eq(1)]
            return m
    bench = make_bench(Flaky())
    # The DDR never accepts on the first try (stall=1.0 would never accept; 0.999 with a seed
    # whose first draw stalls), so the withdrawal is visible.
    bench.add(DDRModel("axi", 4096, 64, stall=0.999, seed=1), AxiChecker("axi", 64))
    with pytest.raises(AxiProtocolError, match="VALID dropped"):
        bench.run(lambda: False, max_cycles=20)
