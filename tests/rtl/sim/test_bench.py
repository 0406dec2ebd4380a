"""The simulation bench itself: a run that stops on an exception (a timeout) leaves the
simulation where a later run continues, cycle for cycle, on both backends; internal probes."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from rtl.sim.bench import Model, SimTimeout, make_bench


class Counter(wiring.Component):
    count: Out(16)

    def elaborate(self, platform):
        m = Module()
        self.inner = Signal(16, name="inner")
        m.d.sync += [self.count.eq(self.count + 1), self.inner.eq(self.count + 2)]
        return m


class Recorder(Model):
    """Every sample: (cycle, count). Sampling one cycle twice would repeat a cycle."""

    def __init__(self):
        self.seen = []

    def sample(self, io):
        self.seen.append((io.cycle, io.get("count")))


@pytest.mark.parametrize("backend", ["amaranth", "verilator"])
def test_run_continues_after_a_timeout(backend):
    bench = make_bench(Counter(), backend)
    rec = bench.add(Recorder())
    for _ in range(3):
        with pytest.raises(SimTimeout):
            bench.run(lambda: False, max_cycles=4)
    bench.run(lambda: rec.seen[-1][1] >= 20, max_cycles=100)
    cycles = [c for c, _ in rec.seen]
    assert cycles == list(range(len(cycles))), f"cycles sampled twice or skipped: {cycles}"
    counts = [v for _, v in rec.seen]
    assert counts == [c + counts[0] for c in cycles]


def test_amaranth_probe_reads_an_internal_signal():
    dut = Counter()
    bench = make_bench(dut, "amaranth")
    bench.probe("inner")
    got = []

    class Peek(Model):
        def sample(self, io):
            got.append((io.get("count"), io.get("inner")))
    bench.add(Peek())
    bench.run(lambda: len(got) >= 5, max_cycles=10)
    assert all(inner == (count + 1) % 65536 for count, inner in got[1:])
    with pytest.raises(KeyError, match="no signal 'nowhere.x'"):
        bench.probe("nowhere.x")
