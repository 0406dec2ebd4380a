"""The datapath's plumbing alone: the stream demultiplexer, the priority merge, the lanes' input
selector and the scratchpad's port selectors (one served port by construction)."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.hdl import Fragment, unsigned
from amaranth.lib import data

from rtl.config import NANO
from rtl.datapath.lanes_input import LanesInput, LanesSource
from rtl.datapath.scratchpad import Scratchpad
from rtl.datapath.streams import PriorityMerge, StreamDemux
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import Clocked, Driver, ReadySink, unpack_value
from rtl.sim.bench import Model


@pytest.mark.parametrize("sel", [0, 2, 3])
def test_demux_routes_to_the_selected_output_or_drops(sel):
    dut = StreamDemux(unsigned(8), 3)
    bench = make_bench(Clocked(dut), "amaranth")
    sinks = [ReadySink(f"o{k}", stall=0.3, seed=k) for k in range(3)]
    src = StreamSource("i", range(20), stall=0.2, seed=9)
    bench.add(Driver(sel=sel), src, *sinks)
    bench.run(lambda: src.idle(), max_cycles=500)
    for k, s in enumerate(sinks):
        assert s.items == (list(range(20)) if k == sel else [])


def test_merge_prefers_hi_and_holds_lo():
    dut = PriorityMerge(unsigned(8))
    bench = make_bench(Clocked(dut), "amaranth")
    hi = StreamSource("hi", [100 + i for i in range(5)], stall=0.5, seed=1)
    lo = StreamSource("lo", range(10))
    out = ReadySink("o", stall=0.2, seed=2)
    bench.add(hi, lo, out)
    bench.run(lambda: hi.idle() and lo.idle(), max_cycles=500)
    assert sorted(out.items) == sorted([100 + i for i in range(5)] + list(range(10)))
    assert [x for x in out.items if x < 100] == list(range(10))     # lo keeps its order


def test_lanes_input_offsets_array_rows_and_passes_the_others():
    cfg = NANO
    dut = LanesInput(cfg)
    bench = make_bench(Clocked(dut), "amaranth")
    row = dut.tiler.payload.shape()
    from tests.rtl.datapath.harness import pack_value
    rows = [pack_value(row, {"m": i, "tn": 1, "acc": [i, -i, 2 * i, 3]}) for i in range(4)]
    drv = Driver(sel=LanesSource.TILER.value, m_offset=10)
    src = StreamSource("tiler", rows)
    other = StreamSource("loader", [pack_value(row, {"m": 1, "tn": 0, "acc": [9, 9, 9, 9]})])
    out = ReadySink("o", stall=0.3, seed=3)
    bench.add(drv, src, other, out)
    bench.run(lambda: src.idle(), max_cycles=200)
    got = [unpack_value(dut.o.payload.shape(), x) for x in out.items]
    assert [(g["m"], g["acc"]) for g in got] == [(10 + i, [i, -i, 2 * i, 3]) for i in range(4)]
    assert other.sent == 0                  # the unselected source waits
    drv.set(sel=LanesSource.LOADER.value)
    bench.run(lambda: other.idle(), max_cycles=50)
    assert unpack_value(dut.o.payload.shape(), out.items[-1])["acc"] == [9, 9, 9, 9]


def test_scratchpad_serves_only_the_selected_ports():
    cfg = NANO
    dut = Scratchpad(cfg, unsigned(8), 16, readers=("a", "b"), writers=("x", "y"))
    bench = make_bench(dut, "amaranth")

    class Ports(Model):
        def __init__(self):
            self.cycle, self.seen = 0, []

        def drive(self, io):
            c = io.cycle
            # both writers write every cycle; only the selected one lands
            io.set("wr_x__en", 1), io.set("wr_x__addr", c % 16), io.set("wr_x__data", 0x10 + c)
            io.set("wr_y__en", 1), io.set("wr_y__addr", c % 16), io.set("wr_y__data", 0x80 + c)
            io.set("wr_sel", 0 if c < 16 else 1)
            io.set("rd_a__en", c >= 32), io.set("rd_a__addr", (c - 32) % 16)
            io.set("rd_sel", 0)

        def sample(self, io):
            if io.cycle >= 33:
                self.seen.append(io.get("rd_b__data"))     # read data reaches every reader
    p = bench.add(Ports())
    bench.run(lambda: len(p.seen) == 16, max_cycles=100)
    assert p.seen == [0x80 + 16 + a for a in range(16)]


def test_scratchpad_init_wrong():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="unique"):
            Scratchpad(NANO, unsigned(8), 4, readers=("a", "a"), writers=("x",))
        with pytest.raises(ValueError, match="at least one"):
            Scratchpad(NANO, unsigned(8), 4, readers=(), writers=("x",))
        gc.collect()


def test_init():
    for dut in (StreamDemux(data.ArrayLayout(8, 2), 2), PriorityMerge(unsigned(4)),
                LanesInput(NANO)):
        Fragment.get(dut, None)
