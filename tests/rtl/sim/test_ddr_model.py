"""The DDR model: read latency, bandwidth cap, stalls on every channel, error responses."""

from __future__ import annotations

import numpy as np
import pytest

from rtl.config import SMALL_TEST
from rtl.bus.dma import DMAReader, descriptor_layout
from rtl.sim import AxiChecker, DDRModel, StreamSink, StreamSource, make_bench, pack
from rtl.sim.bench import Model

CFG = SMALL_TEST
NB = CFG.axi_bytes


class Probe(Model):
    """Records handshake cycles and the cycles each channel's READY/VALID was withheld."""

    def __init__(self):
        self.ar, self.r, self.rresp = [], [], []
        self.ar_wait = self.r_hold = 0
        self.first_rvalid = None

    def sample(self, io):
        g = io.get
        if g("axi__ar__valid"):
            if g("axi__ar__ready"):
                self.ar.append(io.cycle)
            else:
                self.ar_wait += 1
        if g("axi__r__valid") and self.first_rvalid is None:
            self.first_rvalid = io.cycle
        if g("axi__r__valid") and g("axi__r__ready"):
            self.r.append(io.cycle)
            self.rresp.append(g("axi__r__resp"))


def read(transfers, **ddr_kw):
    bench = make_bench(DMAReader(CFG))
    ddr = DDRModel("axi", 8192, CFG.axi_data_width, **ddr_kw)
    lay = descriptor_layout(CFG)
    src = StreamSource("desc", [pack(lay, addr=a, length=n) for a, n in transfers])
    sink, probe = StreamSink("data"), Probe()
    bench.add(ddr, AxiChecker("axi", CFG.axi_data_width), src, sink, probe)
    total = sum(-(-n // NB) for _, n in transfers)
    cycles = bench.run(lambda: len(probe.r) == total, max_cycles=20_000)
    return cycles, ddr, probe


@pytest.mark.parametrize("latency", [1, 5, 17])
def test_read_latency_is_exact(latency):
    _, _, probe = read([(0, 8)], read_latency=latency)
    assert probe.first_rvalid - probe.ar[0] == latency


def test_bandwidth_cap():
    cap = 2.0                      # bytes per cycle = a quarter of the 8-byte bus
    cycles, ddr, probe = read([(0, 4096)], read_latency=4, bytes_per_cycle=cap)
    span = probe.r[-1] - probe.r[0] + 1
    rate = 4096 / span
    assert 0.9 * cap <= rate <= 1.05 * cap, f"{rate:.2f} bytes/cycle with a {cap} cap"
    full, _, p2 = read([(0, 4096)], read_latency=4)
    assert (p2.r[-1] - p2.r[0] + 1) < span / 3


def test_random_stalls_are_seeded_and_present():
    c1, _, p1 = read([(0, 2048)], read_latency=3, stall=0.4, seed=3)
    c2, _, p2 = read([(0, 2048)], read_latency=3, stall=0.4, seed=3)
    c3, _, _ = read([(0, 2048)], read_latency=3, stall=0.4, seed=4)
    assert (c1, p1.r) == (c2, p2.r), "same seed must give the same run"
    assert c1 != c3
    assert p1.ar_wait > 0                      # ARREADY withheld at times
    gaps = np.diff(p1.r)
    assert (gaps > 1).any()                    # RVALID withheld at times


def test_out_of_range_is_decerr():
    _, _, probe = read([(8192 - 16, 32)], read_latency=2)
    assert probe.rresp[:2] == [0, 0] and set(probe.rresp[2:]) == {3}


def test_load_and_read_helpers():
    ddr = DDRModel("axi", 64, 64, base=0x1000)
    ddr.load(0x1004, b"\x01\x02\x03")
    assert list(ddr.read(0x1003, 5)) == [0, 1, 2, 3, 0]
    with pytest.raises(ValueError):
        DDRModel("axi", 64, 64, read_latency=0)
