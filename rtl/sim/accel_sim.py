"""The whole accelerator in simulation, behind a register/memory interface.

:class:`AcceleratorSim` wraps :class:`rtl.accelerator.Accelerator` in either simulator with a
DDR model on every AXI4 master (plus protocol checkers) and an AXI4-Lite master on the CSR port:
register reads and writes are real bus transactions and cost cycles. The firmware's simulation
backend and the end-to-end tests drive it exactly like the board.
"""

from __future__ import annotations

from typing import Callable

from ..accelerator import Accelerator
from ..config import AccelConfig
from .axi_checker import AxiChecker
from .axil_master import AxiLiteMaster
from .bench import Model, SimTimeout, make_bench
from .ddr import DDRModel

__all__ = ["AcceleratorSim", "TraceRecorder", "SimTimeout"]


class TraceRecorder(Model):
    """Records ``(cycle, pc)`` of every issued instruction from the ``trace`` port and the
    interrupt line's level."""

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


class AcceleratorSim:
    """One simulated accelerator with its DDR.

    Parameters
    ----------
    cfg : AccelConfig
    backend : ``"amaranth"`` or ``"verilator"``
    ddr_base, ddr_bytes : int
        Physical address range of the simulated DDR (shared by every master, like the PS's).
    read_latency, write_latency : int
        DDR latencies in cycles.
    check_protocol : bool
        Attach AXI protocol checkers to every port (they raise on a violation).
    """

    def __init__(self, cfg: AccelConfig, *, backend: str = "amaranth", ddr_base: int = 0,
                 ddr_bytes: int = 1 << 24, read_latency: int = 20, write_latency: int = 8,
                 check_protocol: bool = True, vcd: str | None = None):
        self.cfg = cfg
        self.dut = Accelerator(cfg)
        kwargs = {"vcd": vcd} if vcd and backend == "amaranth" else {}
        self.bench = make_bench(self.dut, backend, **kwargs)
        self.ddr_base, self.ddr_bytes = ddr_base, ddr_bytes
        ports = ["m_axi0"] + (["m_axi1"] if cfg.axi_masters == 2 else [])
        self.ddr = DDRModel(ports[0], ddr_bytes, cfg.axi_data_width, base=ddr_base,
                            read_latency=read_latency, write_latency=write_latency)
        self.ddrs = [self.ddr]
        for p in ports[1:]:
            # A second port sees the same memory (one DDR behind the PS).
            other = DDRModel(p, 0, cfg.axi_data_width, base=ddr_base, read_latency=read_latency,
                             write_latency=write_latency)
            other.mem = self.ddr.mem
            self.ddrs.append(other)
        self.lite = AxiLiteMaster("csr")
        self.trace = TraceRecorder()
        self.bench.add(self.lite, *self.ddrs, self.trace)
        if check_protocol:
            for p in ports:
                self.bench.add(AxiChecker(p, cfg.axi_data_width))
            self.bench.add(AxiChecker("csr", 32, lite=True))

    # ---- the backend interface the firmware uses
    @property
    def cycle(self) -> int:
        return self.bench.cycle

    @property
    def irq(self) -> bool:
        """The interrupt line as of the last simulated cycle."""
        return bool(self.trace.irq)

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
        self.ddr.mem[a:a + len(data)] = memoryview(bytes(data))

    def read_mem(self, addr: int, length: int) -> bytes:
        a = self._check_range(addr, length)
        return self.ddr.mem[a:a + length].tobytes()

    def step(self, cycles: int) -> None:
        target = self.bench.cycle + cycles
        self.bench.run(lambda: self.bench.cycle >= target - 1, max_cycles=cycles + 1)

    def run_until(self, predicate: Callable[[], bool], max_cycles: int,
                  progress: Callable[[int], None] | None = None, chunk: int = 20_000) -> int:
        """Advance until ``predicate()`` (checked every ``chunk`` cycles and at the end of each
        chunk's cycles) or raise :class:`SimTimeout` after ``max_cycles``."""
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
