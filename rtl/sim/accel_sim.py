"""The whole accelerator in simulation, behind a register/memory interface.

:class:`AcceleratorSim` wraps :class:`rtl.accelerator.Accelerator` in either simulator with a
DDR model on every AXI4 master (plus protocol checkers) and an AXI4-Lite master on the CSR port:
register reads and writes are real bus transactions and cost cycles. The firmware's simulation
backend and the end-to-end tests drive it exactly like the board.

Two harnesses, the same behaviour cycle for cycle (``tests/rtl/sim/test_compiled.py``):

* ``"compiled"`` (Verilator only, the default there): the cycle models run in C++ beside the
  Verilated model (:mod:`rtl.sim.compiled`), a whole frame in a few calls;
* ``"python"``: the Python cycle models of :mod:`rtl.sim` sample every cycle (the only choice on
  Amaranth's simulator).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..accelerator import Accelerator
from ..config import AccelConfig
from ..control.causes import Cause
from .axi_checker import AxiChecker
from .axil_master import AxiLiteMaster
from .bench import Model, SimTimeout, make_bench
from .ddr import DDRModel

__all__ = ["AcceleratorSim", "TraceRecorder", "SimTimeout", "HARNESSES", "work_spans"]

HARNESSES = ("compiled", "python")


class TraceRecorder(Model):
    """Records ``(cycle, payload)`` of every transfer on a trace port (``trace``: the issued
    instruction's pc; ``work``: see :func:`work_spans`) and the interrupt line's level."""

    def __init__(self, prefix: str = "trace"):
        self.p = prefix
        self.events: list[tuple[int, int]] = []
        self.irq = 0

    def drive(self, io) -> None:
        io.set(self.p + "__ready", 1)

    def sample(self, io) -> None:
        if io.get(self.p + "__valid"):
            self.events.append((io.cycle, io.get(self.p + "__payload")))
        self.irq = io.get("irq")


def work_spans(events) -> dict[tuple[int, Cause], int]:
    """Cycles per ``(pc, cause)`` from ``work`` events (``(cycle, pc | cause << 16)``, each
    holding until the next); spans with cause NONE are skipped.

    Raises
    ------
    ValueError
        The events do not end with the accelerator idle (cause NONE): the last span is open.
    """
    spans: dict[tuple[int, Cause], int] = {}
    for (cycle, value), (nxt, _) in zip(events, events[1:]):
        cause = Cause(value >> 16)
        if cause is not Cause.NONE:
            key = (value & 0xFFFF, cause)
            spans[key] = spans.get(key, 0) + nxt - cycle
    if events and Cause(events[-1][1] >> 16) is not Cause.NONE:
        raise ValueError(f"work trace ends in a busy span (cycle {events[-1][0]}): the run has "
                         "not finished")
    return spans


class AcceleratorSim:
    """One simulated accelerator with its DDR.

    Parameters
    ----------
    cfg : AccelConfig
    backend : ``"amaranth"`` or ``"verilator"``
    harness : ``"compiled"``, ``"python"`` or None
        Where the cycle models run (None: compiled on Verilator, Python on Amaranth).
    ddr_base, ddr_bytes : int
        Physical address range of the simulated DDR (shared by every master, like the PS's).
    read_latency, write_latency : int
        DDR latencies in cycles.
    stall : float
        Probability that each DDR channel idles in a cycle (seeded; 0: never).
    bytes_per_cycle : float or None
        DDR bandwidth cap shared by each port's reads and writes (None: one beat per cycle).
    seed : int
        Seed of master ``i``'s DDR model is ``seed + i``.
    check_protocol : bool
        Attach AXI protocol checkers to every port (they raise on a violation).

    Attributes
    ----------
    mem : numpy.ndarray
        The simulated DDR (``uint8``, byte 0 at ``ddr_base``).
    trace : TraceRecorder-like
        ``events`` (``(cycle, pc)`` of every issued instruction) and ``irq``.
    work : TraceRecorder-like
        ``events``: ``(cycle, pc | cause << 16)`` at every change of the cycle's instruction and
        :class:`~rtl.control.causes.Cause` (the accelerator's ``work`` port); see
        :func:`work_spans`.

    Raises
    ------
    ValueError
        Unknown harness, or the compiled harness on Amaranth's simulator.
    """

    def __init__(self, cfg: AccelConfig, *, backend: str = "amaranth", harness: str | None = None,
                 ddr_base: int = 0, ddr_bytes: int = 1 << 24, read_latency: int = 20,
                 write_latency: int = 8, stall: float = 0.0,
                 bytes_per_cycle: float | None = None, seed: int = 0,
                 check_protocol: bool = True, vcd: str | None = None):
        harness = harness or ("compiled" if backend == "verilator" else "python")
        if harness not in HARNESSES:
            raise ValueError(f"unknown harness {harness!r} ({', '.join(HARNESSES)})")
        if harness == "compiled" and backend != "verilator":
            raise ValueError("the compiled harness runs on Verilator only")
        self.cfg, self.harness = cfg, harness
        self.ddr_base, self.ddr_bytes = ddr_base, ddr_bytes
        self.mem = np.zeros(ddr_bytes, dtype=np.uint8)
        self.ports = ["m_axi0"] + (["m_axi1"] if cfg.axi_masters == 2 else [])
        ddr_kw = dict(base=ddr_base, read_latency=read_latency, write_latency=write_latency,
                      stall=stall, bytes_per_cycle=bytes_per_cycle)
        if harness == "compiled":
            self._init_compiled(ddr_kw, seed, check_protocol)
        else:
            self._init_python(backend, ddr_kw, seed, check_protocol, vcd)

    def _init_python(self, backend, ddr_kw, seed, check_protocol, vcd):
        cfg = self.cfg
        if backend == "amaranth":
            kwargs = {"vcd": vcd} if vcd else {}
            dut = Accelerator(cfg)
        else:       # built from the Verilog cache when the design is unchanged
            kwargs = {"design_key": self._design_key()}
            dut = lambda: Accelerator(cfg)     # noqa: E731
        self.bench = make_bench(dut, backend, **kwargs)
        self.ddrs = []
        for i, p in enumerate(self.ports):
            ddr = DDRModel(p, 0, cfg.axi_data_width, seed=seed + i, **ddr_kw)
            ddr.mem = self.mem          # every port sees the same memory (one DDR behind the PS)
            self.ddrs.append(ddr)
        self.lite = AxiLiteMaster("csr")
        self.trace = TraceRecorder()
        self.work = TraceRecorder("work")
        self.bench.add(self.lite, *self.ddrs, self.trace, self.work)
        if check_protocol:
            for p in self.ports:
                self.bench.add(AxiChecker(p, cfg.axi_data_width))
            self.bench.add(AxiChecker("csr", 32, lite=True))

    def _init_compiled(self, ddr_kw, seed, check_protocol):
        from .compiled import CompiledBench
        cfg = self.cfg
        self.bench = bench = CompiledBench(lambda: Accelerator(cfg),
                                           design_key=self._design_key())
        # The same models in the same order as the Python harness.
        self.lite = bench.add_lite("csr")
        self.ddrs = [bench.add_ddr(p, self.mem, cfg.axi_data_width, seed=seed + i, **ddr_kw)
                     for i, p in enumerate(self.ports)]
        self.trace = bench.add_trace("trace", "irq")
        self.work = bench.add_trace("work", "irq")
        if check_protocol:
            for p in self.ports:
                bench.add_checker(p, cfg.axi_data_width)
            bench.add_checker("csr", 32, lite=True)

    def _design_key(self):
        return ("rtl.accelerator.Accelerator", self.cfg.to_dict())

    # ---- the backend interface the firmware uses
    @property
    def cycle(self) -> int:
        return self.bench.cycle

    @property
    def irq(self) -> bool:
        """The interrupt line as of the last simulated cycle."""
        return bool(self.trace.irq)

    def ddr_counters(self) -> list[dict]:
        """Per master: the DDR model's ``read_beats``, ``write_beats`` and ``read_bursts``."""
        return [{k: getattr(d, k) for k in ("read_beats", "write_beats", "read_bursts")}
                for d in self.ddrs]

    def read_reg(self, offset: int) -> int:
        op = self.lite.read(offset)
        self.bench.run(lambda: op.done_cycle is not None, max_cycles=10_000)
        if op.resp != 0:
            raise RuntimeError(f"CSR read of {offset:#x} answered {op.resp} (not OKAY)")
        return op.rdata

    def write_reg(self, offset: int, value: int) -> None:
        op = self.lite.write(offset, value)
        self.bench.run(lambda: op.done_cycle is not None, max_cycles=10_000)
        if op.resp != 0:
            raise RuntimeError(f"CSR write of {offset:#x} answered {op.resp} (not OKAY)")

    def _check_range(self, addr: int, length: int) -> int:
        a = addr - self.ddr_base
        if a < 0 or a + length > self.ddr_bytes:
            raise ValueError(f"DDR access {addr:#x}+{length} outside the simulated "
                             f"{self.ddr_base:#x}+{self.ddr_bytes:#x}")
        return a

    def write_mem(self, addr: int, data: bytes) -> None:
        a = self._check_range(addr, len(data))
        self.mem[a:a + len(data)] = memoryview(bytes(data))

    def read_mem(self, addr: int, length: int) -> bytes:
        a = self._check_range(addr, length)
        return self.mem[a:a + length].tobytes()

    def step(self, cycles: int) -> None:
        """Advance ``cycles`` cycles (at least one)."""
        if self.harness == "compiled":
            self.bench.advance(cycles)
            return
        target = self.bench.cycle + cycles
        self.bench.run(lambda: self.bench.cycle >= target - 1, max_cycles=cycles + 1)

    def run_until(self, predicate: Callable[[], bool], max_cycles: int,
                  progress: Callable[[int], None] | None = None, chunk: int = 20_000) -> int:
        """Advance until ``predicate()`` (checked every ``chunk`` cycles and at the end of each
        chunk's cycles) or raise :class:`SimTimeout` after ``max_cycles``. On the compiled
        harness ``predicate`` may depend only on the interrupt line, register accesses and the
        trace (see :mod:`rtl.sim.compiled`)."""
        start = self.bench.cycle
        while not predicate():
            left = max_cycles - (self.bench.cycle - start)
            if left <= 0:
                raise SimTimeout(f"accelerator did not finish within {max_cycles} cycles")
            n = min(chunk, left)
            try:
                self.bench.run(predicate, max_cycles=n)
            except SimTimeout:
                pass
            if progress is not None:
                progress(self.bench.cycle - start)
        return self.bench.cycle - start
