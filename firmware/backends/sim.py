"""Simulation backend: the driver runs unchanged against the cycle-accurate simulated accelerator.

Adapts :class:`rtl.sim.accel_sim.AcceleratorSim` (the whole accelerator in Amaranth's simulator
or in Verilator, with the simulated DDR) to :class:`firmware.backends.Backend`:

* register reads and writes go over the simulated AXI4-Lite bus, so they cost cycles, as on the
  board;
* DDR buffers come from a page-aligned bump allocator over the simulated DDR window
  ``[ddr_base, ddr_base + ddr_bytes)``; the host's copies into and out of DDR are backdoor
  accesses (the board's CPU writes DDR without the accelerator noticing either);
* time is simulated time: :meth:`SimBackend.now` is ``cycle / clock``; :meth:`SimBackend.sleep`
  advances the clock; :meth:`SimBackend.wait_irq` runs until the interrupt line rises.

The simulator keeps no state between processes: a model must be loaded in the process that runs
it. ``rtl`` (and with it Amaranth) is imported only when a simulator is created.
"""

from __future__ import annotations

from typing import Any, Callable

from . import PAGE, Backend, Buffer, BumpAllocator
from ..errors import AcceleratorError, UsageError

__all__ = ["SimBackend", "SIM_DDR_BASE", "SIMULATORS", "ddr_bytes_for"]

#: bus address of the simulated DDR window (not 0, so that a missing base address shows)
SIM_DDR_BASE = 0x1000_0000
SIMULATORS = ("verilator", "amaranth")
_CHUNK_CYCLES = 20_000      # progress-bar granularity while waiting for the interrupt


def ddr_bytes_for(*sizes: int, slack: int = 64 * 1024) -> int:
    """DDR window size that holds buffers of ``sizes`` bytes, each page aligned, plus ``slack``."""
    total = sum((max(s, 1) + PAGE - 1) // PAGE * PAGE for s in sizes) + slack
    return (total + PAGE - 1) // PAGE * PAGE


def _default_factory(cfg, *, backend: str, ddr_base: int, ddr_bytes: int):
    try:
        from rtl.sim.accel_sim import AcceleratorSim
    except ModuleNotFoundError as exc:
        raise AcceleratorError(
            f"the simulated accelerator is not available ({exc}): rtl/sim/accel_sim.py and "
            f"rtl/accelerator.py are needed for --backend sim") from exc
    return AcceleratorSim(cfg, backend=backend, ddr_base=ddr_base, ddr_bytes=ddr_bytes)


class SimBackend(Backend):
    """The simulated accelerator behind the backend interface.

    Parameters
    ----------
    accel_config : rtl.config.AccelConfig
        The accelerator configuration to simulate.
    simulator : str
        ``"verilator"`` (fast, builds once and caches) or ``"amaranth"``.
    ddr_base, ddr_bytes : int
        The simulated DDR window.
    sim : object, optional
        An already created simulator with the :class:`rtl.sim.accel_sim.AcceleratorSim`
        interface (tests pass fakes); ``accel_config``/``simulator`` are then only recorded.
    factory : callable, optional
        ``factory(cfg, backend=, ddr_base=, ddr_bytes=)`` creating the simulator (default:
        ``AcceleratorSim``).
    """

    name = "sim"
    simulated = True
    persistent = False

    def __init__(self, accel_config=None, *, simulator: str = "verilator",
                 ddr_base: int = SIM_DDR_BASE, ddr_bytes: int = 1 << 20, sim: Any = None,
                 factory: Callable | None = None):
        if simulator not in SIMULATORS:
            raise UsageError(f"unknown simulator {simulator!r}; choose one of "
                             f"{', '.join(SIMULATORS)}")
        if accel_config is None and sim is None:
            raise UsageError("the sim backend needs an accelerator config")
        self.accel_config, self.simulator = accel_config, simulator
        self.ddr_base, self.ddr_bytes = ddr_base, ddr_bytes
        self._alloc = BumpAllocator(ddr_base, ddr_bytes, "simulated DDR")
        if sim is None:
            sim = (factory or _default_factory)(accel_config, backend=simulator,
                                                ddr_base=ddr_base, ddr_bytes=ddr_bytes)
        self.sim = sim
        clock_mhz = getattr(accel_config, "clock_mhz", None) or 100.0
        self.clock_hz = float(clock_mhz) * 1e6
        self.name = f"sim ({simulator})"

    # ------------------------------------------------------------------ registers
    def read32(self, offset: int) -> int:
        try:
            return int(self.sim.read_reg(offset)) & 0xFFFF_FFFF
        except RuntimeError as exc:           # the bus answered SLVERR/DECERR
            raise AcceleratorError(f"register read at {offset:#x} failed: {exc}") from exc

    def write32(self, offset: int, value: int) -> None:
        try:
            self.sim.write_reg(offset, int(value) & 0xFFFF_FFFF)
        except RuntimeError as exc:
            raise AcceleratorError(f"register write at {offset:#x} failed: {exc}") from exc

    # ------------------------------------------------------------------ memory
    def alloc(self, size: int, align: int = PAGE) -> Buffer:
        return Buffer(self, self._alloc.alloc(size, align), size)

    def free_all(self) -> None:
        self._alloc.reset()

    def _check(self, addr: int, length: int) -> None:
        if addr < self.ddr_base or addr + length > self.ddr_base + self.ddr_bytes:
            raise AcceleratorError(f"[{addr:#x}, {addr + length:#x}) is outside the simulated "
                                   f"DDR [{self.ddr_base:#x}, {self.ddr_base + self.ddr_bytes:#x})")

    def mem_write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data))
        self.sim.write_mem(addr, bytes(data))

    def mem_read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return bytes(self.sim.read_mem(addr, length))

    # ------------------------------------------------------------------ time and interrupts
    @property
    def cycle(self) -> int:
        return int(self.sim.cycle)

    def now(self) -> float:
        return self.cycle / self.clock_hz

    def sleep(self, seconds: float, progress: Any = None) -> None:
        cycles = max(1, round(seconds * self.clock_hz))
        self.sim.step(cycles)
        if progress is not None:
            progress.update(cycles)

    @property
    def irq_available(self) -> bool:
        return True

    def wait_irq(self, timeout: float, progress: Any = None) -> bool:
        """Run the simulation until the interrupt line is high, at most ``timeout`` simulated
        seconds; returns whether it rose."""
        budget = max(1, round(timeout * self.clock_hz))
        start = self.cycle
        while not self.sim.irq:
            left = budget - (self.cycle - start)
            if left <= 0:
                return False
            before = self.cycle
            try:
                self.sim.run_until(lambda: bool(self.sim.irq), max_cycles=min(left, _CHUNK_CYCLES))
            except Exception as exc:      # a simulator that raises when max_cycles runs out
                if type(exc).__name__ not in ("SimTimeout", "TimeoutError"):
                    raise
            if progress is not None:
                progress.update(self.cycle - before)
            if self.cycle == before and not self.sim.irq:
                self.sim.step(1)          # never spin without advancing time
        return True

    def describe(self) -> str:
        return (f"simulated accelerator ({self.simulator}), DDR [{self.ddr_base:#x}, "
                f"{self.ddr_base + self.ddr_bytes:#x}), clock {self.clock_hz / 1e6:g} MHz")

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if callable(close):
            close()
