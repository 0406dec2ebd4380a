"""The router capture alone: queue entries into QUEUE words 0, 1, … and the non-empty experts
into the expert list, cleared by ``start``."""

from __future__ import annotations

from amaranth.hdl import Fragment

from rtl.config import SMALL_TEST
from rtl.datapath.router_capture import RouterCapture
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import Driver, Recorder, WriteMem, pack_value, unpack_value


def test_queue_and_expert_list():
    cfg = SMALL_TEST
    dut = RouterCapture(cfg)
    bench = make_bench(dut, "amaranth")
    entries = [(1, 3, 100), (1, 0, 200), (2, 5, 300)]
    q_layout = dut.queue_in.payload.shape()
    e_layout = dut.experts_in.payload.shape()
    queue = StreamSource("queue_in", [pack_value(q_layout, {
        "expert": e, "token": t, "prob": p, "last": 0, "final": int(i == len(entries) - 1)})
        for i, (e, t, p) in enumerate(entries)], stall=0.3, seed=1)
    experts = StreamSource("experts_in", [pack_value(e_layout, {"expert": 1, "length": 2}),
                                          pack_value(e_layout, {"expert": 2, "length": 1,
                                                                "last": 1})])
    mem = WriteMem("queue")
    rec = Recorder("done")
    start = Driver(start=1)
    bench.add(start, mem, rec)
    bench.run(lambda: True, max_cycles=1)
    start.set(start=0)
    bench.add(queue, experts)
    bench.run(lambda: bool(rec.high["done"]) and experts.idle(), max_cycles=200)
    got = [(a, tuple(unpack_value(dut.queue.data.shape(), w).values())) for _, a, w in mem.log]
    assert got == [(i, (t, p)) for i, (_, t, p) in enumerate(entries)]

    from rtl.sim.bench import Model

    class Read(Model):
        def sample(self, io):
            self.v = (io.get("ne_count"), io.get("ne_expert"), io.get("ne_length"))
    r = bench.add(Read())
    bench.run(lambda: True, max_cycles=1)
    count, ne_expert, ne_length = r.v
    ex = unpack_value(dut.ne_expert.shape(), ne_expert)
    ln = unpack_value(dut.ne_length.shape(), ne_length)
    assert count == 2 and ex[:2] == [1, 2] and ln[:2] == [2, 1]
    start.set(start=1)                        # a new routing clears the list and the pointer
    bench.run(lambda: True, max_cycles=1)
    start.set(start=0)
    bench.run(lambda: True, max_cycles=1)
    assert r.v[0] == 0


def test_init():
    Fragment.get(RouterCapture(SMALL_TEST), None)
