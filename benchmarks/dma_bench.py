"""DMA read efficiency and simulator speed (a script, not a test).

    python benchmarks/dma_bench.py [--bytes N] [--latency L ...]

1. Sustained read bandwidth of :class:`rtl.bus.dma.DMAReader` for one long transfer with DDR latency
   but no stalls, as bytes/cycle and as a fraction of the bus peak (one full beat per cycle),
   measured from the descriptor handshake to the last output word (latency included) and over
   the steady state (first to last R beat).
2. Simulation speed on the same design (DMAReader + DDR model + protocol checker + stream
   drivers): Amaranth simulator vs. Verilator, in cycles per second of wall time, plus the bare
   Verilator model ticking without Python models.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rtl.config import DEFAULT, SMALL_TEST  # noqa: E402
from rtl.bus.dma import DMAReader, descriptor_layout  # noqa: E402
from rtl.sim import AxiChecker, DDRModel, StreamSink, StreamSource, make_bench, pack  # noqa: E402
from rtl.sim.bench import Model  # noqa: E402


class _Beats(Model):
    def __init__(self):
        self.first = self.last = None
        self.n = 0

    def sample(self, io):
        if io.get("axi__r__valid") and io.get("axi__r__ready"):
            self.first = io.cycle if self.first is None else self.first
            self.last = io.cycle
            self.n += 1


def read_run(cfg, nbytes: int, latency: int, backend: str):
    bench = make_bench(DMAReader(cfg), backend)
    ddr = DDRModel("axi", nbytes + 4096, cfg.axi_data_width, read_latency=latency)
    src = StreamSource("desc", [pack(descriptor_layout(cfg), addr=0, length=nbytes)])
    sink, beats = StreamSink("data"), _Beats()
    bench.add(ddr, AxiChecker("axi", cfg.axi_data_width), src, sink, beats)
    words = nbytes // cfg.axi_bytes
    t0 = time.perf_counter()
    cycles = bench.run(lambda: len(sink.items) == words, max_cycles=10 * words + 10_000)
    wall = time.perf_counter() - t0
    return cycles, beats, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=64 * 1024)
    ap.add_argument("--latency", type=int, nargs="*", default=[10, 40, 80])
    args = ap.parse_args(argv)

    print("== DMA read efficiency (long transfer, DDR latency, no stalls; Verilator) ==")
    print(f"{'config':>10} {'bus B':>5} {'burst':>5} {'outst':>5} {'lat':>4} {'bytes':>7} "
          f"{'cycles':>7} {'B/cyc':>6} {'of peak':>7} {'steady':>7}")
    for name, cfg in (("SMALL_TEST", SMALL_TEST), ("DEFAULT", DEFAULT)):
        for lat in args.latency:
            cycles, beats, _ = read_run(cfg, args.bytes, lat, "verilator")
            bpc = args.bytes / cycles
            steady = beats.n / (beats.last - beats.first + 1)
            print(f"{name:>10} {cfg.axi_bytes:>5} {cfg.max_burst_beats:>5} "
                  f"{cfg.max_outstanding_reads:>5} {lat:>4} {args.bytes:>7} {cycles:>7} "
                  f"{bpc:>6.2f} {bpc / cfg.axi_bytes:>7.1%} {steady:>7.1%}")

    print("\n== Simulation speed, DMAReader(DEFAULT) + DDR model + checker ==")
    # The same workload on both simulators (a transfer of 4 x --bytes).
    cycles, _, wall = read_run(DEFAULT, args.bytes * 4, 40, "amaranth")
    am = cycles / wall
    print(f"amaranth simulator : {cycles:>8} cycles in {wall:6.2f} s = {am:>10,.0f} cycles/s")
    cycles, _, wall = read_run(DEFAULT, args.bytes * 4, 40, "verilator")
    vl = cycles / wall
    print(f"verilator + models : {cycles:>8} cycles in {wall:6.2f} s = {vl:>10,.0f} cycles/s "
          f"({vl / am:.1f}x)")
    bench = make_bench(DMAReader(DEFAULT), "verilator")
    n = 2_000_000
    t0 = time.perf_counter()
    bench.lib.h_ticks(n)
    bare = n / (time.perf_counter() - t0)
    print(f"verilator bare     : {n:>8} cycles in {n / bare:6.2f} s = {bare:>10,.0f} cycles/s "
          "(C++ only, no Python models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
