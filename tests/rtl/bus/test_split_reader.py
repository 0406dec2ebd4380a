"""The two-port reader alone: transfers split into chunks alternating between two DMA engines on
two AXI ports (each under the protocol checker), merged back byte for byte in order under DDR
stalls and output back-pressure; chunk k of the whole stream on port k mod 2; twice one port's
rate when nothing stalls."""

from __future__ import annotations

import dataclasses
import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.bus.dma import descriptor_layout
from rtl.bus.split_reader import SplitReader, chunk_bytes, split_chunks
from rtl.config import DEFAULT, NANO, SMALL_TEST
from rtl.sim import AxiChecker, DDRModel, StreamSink, StreamSource, make_bench, pack
from tests.rtl.datapath.harness import Recorder

CFG = dataclasses.replace(SMALL_TEST, axi_masters=2, axi_data_width=32)
MEM = 3 * 4096


def _run(cfg, transfers, *, stall, seed, latency=6):
    dut = SplitReader(cfg)
    bench = make_bench(dut, "amaranth")
    mem = np.random.default_rng(seed).integers(0, 256, MEM, dtype=np.uint8)
    ddrs = []
    for i, port in enumerate(("axi0", "axi1")):
        ddr = DDRModel(port, MEM, cfg.axi_data_width, read_latency=latency, stall=stall,
                       seed=seed + i)
        ddr.mem = mem
        ddrs.append(ddr)
    src = StreamSource("desc", [pack(descriptor_layout(cfg), addr=a, length=n)
                                for a, n in transfers], stall=stall, seed=seed + 2)
    sink = StreamSink("data", stall=stall, seed=seed + 3)
    rec = Recorder(("data__valid", "data__ready"))
    bench.add(*ddrs, AxiChecker("axi0", cfg.axi_data_width),
              AxiChecker("axi1", cfg.axi_data_width), src, sink, rec)
    words = sum(n for _, n in transfers) // (2 * cfg.axi_bytes)
    bench.run(lambda: len(sink.items) == words, max_cycles=100_000)
    return mem, ddrs, sink, rec


def _check(cfg, mem, transfers, sink):
    nb2 = 2 * cfg.axi_bytes
    got = b"".join(w.to_bytes(nb2, "little") for w in sink.items)
    want = b"".join(mem[a:a + n].tobytes() for a, n in transfers)
    if got != want:
        i = next(j for j in range(len(want)) if got[j] != want[j])
        raise AssertionError(f"first mismatch at byte {i}: got {got[i]:#04x}, want {want[i]:#04x}")


@pytest.mark.parametrize("seed, stall", [(1, 0.0), (2, 0.3)], ids=["no-stall", "stalls"])
def test_bytes_in_order(seed, stall):
    rng = random.Random(seed)
    nb2 = 2 * CFG.axi_bytes
    transfers = [(rng.randrange(0, MEM - 600), nb2 * rng.randrange(1, 40)) for _ in range(10)]
    transfers += [(4096 - 12, nb2 * 9), (1, chunk_bytes(CFG))]
    mem, ddrs, sink, _ = _run(CFG, transfers, stall=stall, seed=seed)
    _check(CFG, mem, transfers, sink)
    # the chunks alternate over the whole stream: each port read exactly its chunks' bursts
    nb, port, per_port = CFG.axi_bytes, 0, [0, 0]
    for a, n in transfers:
        for p, ca, cn in split_chunks(CFG, a, n, port):
            per_port[p] += (ca + cn - 1) // nb - ca // nb + 1
        port ^= len(split_chunks(CFG, a, n)) % 2
    assert [d.read_beats for d in ddrs] == per_port


def test_twice_one_port():
    """One long aligned transfer, nothing stalling: one output word (two bus words) a cycle
    in steady state, after the latency and a cycle per chunk and reader."""
    n = 32 * chunk_bytes(CFG)
    mem, ddrs, sink, rec = _run(CFG, [(0, n)], stall=0.0, seed=3)
    _check(CFG, mem, [(0, n)], sink)
    fired = rec.high[("data__valid", "data__ready")]
    words = n // (2 * CFG.axi_bytes)
    span = fired[-1] - fired[0] + 1
    chunk_words = chunk_bytes(CFG) // CFG.axi_bytes
    assert span <= words * (chunk_words + 1) // chunk_words + 8, (span, words)


def test_read_error_on_the_second_port_is_latched():
    """An SLVERR on a chunk that port 1 reads sets ``error`` (sticky); the data still flows."""
    dut = SplitReader(CFG)
    bench = make_bench(dut, "amaranth")
    size = chunk_bytes(CFG)
    ddrs = [DDRModel(p, MEM, CFG.axi_data_width, read_latency=3,
                     error_ranges=[(size, 2 * size)] if p == "axi1" else [])
            for p in ("axi0", "axi1")]
    ddrs[1].mem = ddrs[0].mem
    src = StreamSource("desc", [pack(descriptor_layout(CFG), addr=0, length=2 * size)])
    sink = StreamSink("data")
    rec = Recorder("error")
    bench.add(*ddrs, src, sink, rec)
    bench.run(lambda: len(sink.items) == 2 * size // (2 * CFG.axi_bytes), max_cycles=5000)
    high = rec.high["error"]
    assert high, "the second port's SLVERR was not latched"
    assert high[-1] - high[0] + 1 == len(high), "error did not stay set"


def test_init_wrong_masters():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="axi_masters == 2"):
            SplitReader(NANO)
        gc.collect()


def test_init():
    Fragment.get(SplitReader(DEFAULT), None)
