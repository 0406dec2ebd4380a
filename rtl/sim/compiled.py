"""The compiled whole-frame harness: Verilator model and cycle models in one C++ loop.

:class:`CompiledBench` runs the Verilated design with the C++ twins (``harness/models.h``) of the
DDR model, the AXI protocol checkers, the AXI4-Lite manager and the trace recorder, so a frame
advances millions of cycles per call into Python instead of one. Python still drives registers,
loads and reads the simulated DDR (a numpy array the C++ DDR model reads and writes in place) and
reads results; :class:`rtl.sim.accel_sim.AcceleratorSim` hides which harness it runs on.

Equivalence with the Python models (``tests/rtl/sim/test_compiled.py``): the same random draws
(CPython's generator reproduced), the same rules and messages; a whole ``nano`` frame gives the
same cycles, counters and output on both, with and without random stalls.

``run(until, max_cycles)`` has the semantics of :meth:`rtl.sim.bench.Bench.run` for predicates
that depend only on what the harness reports -- the AXI4-Lite operations' completion, the
interrupt line and the trace: it evaluates ``until`` after the first cycle and after every cycle
in which one of those changed, which is when such a predicate can change value.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .axi_checker import AxiProtocolError
from .bench import SimTimeout
from .verilator import Owned, build, load

__all__ = ["CompiledBench", "LiteOp", "DdrHandle"]

_FIRST, _EVENTS = 1, 2
_EXCEPTIONS = {"AxiProtocolError": AxiProtocolError, "AssertionError": AssertionError,
               "IndexError": IndexError, "ValueError": ValueError}


@dataclass
class LiteOp:
    """A queued AXI4-Lite access (the fields of :class:`rtl.sim.axil_master.LiteOp` that a
    caller reads): ``resp``, ``rdata`` and ``done_cycle`` are ``None`` until it completes."""
    kind: str
    addr: int
    data: int = 0
    resp: int | None = None
    rdata: int | None = None
    done_cycle: int | None = None
    _index: int = -1


class DdrHandle:
    """A compiled DDR model: ``mem`` is the memory it serves (shared with Python), the traffic
    counters are read from C++."""

    def __init__(self, bench, index: int, mem: np.ndarray, base: int):
        self._bench, self._i, self.mem, self.base = bench, index, mem, base

    def _counters(self) -> tuple[int, int, int]:
        out = (ctypes.c_uint64 * 3)()
        self._bench.lib.h_ddr_counters(self._i, out)
        return tuple(out)

    @property
    def read_beats(self) -> int:
        return self._counters()[0]

    @property
    def write_beats(self) -> int:
        return self._counters()[1]

    @property
    def read_bursts(self) -> int:
        return self._counters()[2]


class _Lite:
    def __init__(self, bench, index: int):
        self._bench, self._i = bench, index
        self.pending: list[LiteOp] = []
        self.done: list[LiteOp] = []

    def read(self, addr: int) -> LiteOp:
        return self._push(LiteOp("read", addr), 0, 0, 0xF, 0, 0)

    def write(self, addr: int, data: int, strb: int = 0xF, *, aw_delay: int = 0,
              w_delay: int = 0) -> LiteOp:
        return self._push(LiteOp("write", addr, data), 1, data, strb, aw_delay, w_delay)

    def _push(self, op, write, data, strb, aw_delay, w_delay):
        op._index = self._bench.lib.h_lite_push(self._i, write, op.addr, data, strb, aw_delay,
                                                w_delay)
        self.pending.append(op)
        return op

    def _sync(self) -> None:
        out = (ctypes.c_uint64 * 3)()
        still = []
        for op in self.pending:
            if self._bench.lib.h_lite_result(self._i, op._index, out):
                op.resp, op.rdata, op.done_cycle = int(out[0]), int(out[1]), int(out[2])
                if op.kind == "write":
                    op.rdata = None
                self.done.append(op)
            else:
                still.append(op)
        self.pending = still


class _Trace:
    def __init__(self, bench, index: int):
        self._bench, self._i = bench, index
        self.events: list[tuple[int, int]] = []
        self.irq = 0
        self._buf = (ctypes.c_uint64 * 65536)()

    def _sync(self) -> None:
        irq = ctypes.c_uint64()
        while True:
            n = self._bench.lib.h_trace_fetch(self._i, self._buf, len(self._buf), irq)
            words = self._buf[:n]
            self.events.extend(zip(words[0::2], words[1::2]))
            if n < len(self._buf):
                break
        self.irq = int(irq.value)


class CompiledBench(Owned):
    """A Verilated ``dut`` with compiled cycle models attached by the ``add_*`` methods (in the
    order they run each cycle, like :meth:`rtl.sim.bench.Bench.add`)."""

    backend = "verilator"

    def __init__(self, dut, *, design_key=None):
        path, ports = build(dut, design_key=design_key)
        self.lib, self.path, self.ports = load(path), path, ports
        self._claim(path)
        self.lib.h_init()
        self._synced: list = []
        self._keep: list = []          # numpy buffers the C++ side points into

    # ------------------------------------------------------------------ models
    def _check(self, index: int) -> int:
        if index < 0:
            raise ValueError(self.lib.h_failure_message().decode())
        return index

    def add_ddr(self, prefix: str, mem: np.ndarray, data_width: int, *, base: int = 0,
                read_latency: int = 10, write_latency: int = 4, stall: float = 0.0,
                bytes_per_cycle: float | None = None, seed: int = 0,
                error_ranges=()) -> DdrHandle:
        """A DDR model serving ``mem`` (a contiguous ``uint8`` array, used in place); the
        parameters are those of :class:`rtl.sim.ddr.DDRModel`."""
        if read_latency < 1 or write_latency < 1:
            raise ValueError("latencies must be >= 1 cycle")
        if mem.dtype != np.uint8 or not mem.flags.c_contiguous:
            raise ValueError("mem must be a contiguous uint8 array")
        self._keep.append(mem)
        i = self._check(self.lib.h_add_ddr(
            prefix.encode(), mem.ctypes.data, len(mem), base, data_width, read_latency,
            write_latency, stall, bytes_per_cycle is not None, bytes_per_cycle or 0.0, seed))
        for lo, hi in error_ranges:
            self.lib.h_ddr_error_range(i, lo, hi)
        return DdrHandle(self, i, mem, base)

    def add_checker(self, prefix: str, data_width: int, *, lite: bool = False) -> int:
        """An AXI4 (or AXI4-Lite) protocol checker on ``prefix``; a violation raises
        :class:`rtl.sim.axi_checker.AxiProtocolError` from :meth:`run`."""
        return self._check(self.lib.h_add_checker(prefix.encode(), data_width, int(lite)))

    def add_lite(self, prefix: str, *, stall: float = 0.0, seed: int = 0) -> _Lite:
        """An AXI4-Lite manager (``read``/``write`` queue operations, like
        :class:`rtl.sim.axil_master.AxiLiteMaster`)."""
        lite = _Lite(self, self._check(self.lib.h_add_lite(prefix.encode(), stall, seed)))
        self._synced.append(lite)
        return lite

    def add_trace(self, prefix: str = "trace", irq: str = "irq") -> _Trace:
        """Records ``(cycle, payload)`` of the always-ready stream ``prefix`` and the level of
        the ``irq`` output."""
        trace = _Trace(self, self._check(self.lib.h_add_trace(prefix.encode(), irq.encode())))
        self._synced.append(trace)
        return trace

    def add_script(self, names: list[str], rows: list[list[int]]) -> int:
        """Sets input ports ``names`` from ``rows`` (row ``i`` in cycle ``i``; afterwards the
        ports keep their last values), like :class:`rtl.sim.bench.Script`."""
        widths = {name: width for name, width, _ in self.ports}
        nwords = [(widths[n] + 31) // 32 if widths[n] > 64 else (2 if widths[n] > 32 else 1)
                  for n in names]
        words = []
        for row in rows:
            for value, n in zip(row, nwords):
                words.extend((int(value) >> (32 * k)) & 0xFFFF_FFFF for k in range(n))
        table = np.array(words, dtype=np.uint32)
        self._keep.append(table)
        cnames = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
        return self._check(self.lib.h_add_script(
            len(names), cnames, table.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
            len(words)))

    # ------------------------------------------------------------------ running
    @property
    def cycle(self) -> int:
        return int(self.lib.h_cycle())

    def _step(self, limit: int, flags: int) -> None:
        self._check_owner(self.path)
        code = self.lib.h_run(limit, flags)
        for model in self._synced:
            model._sync()
        if code == 2:
            kind = self.lib.h_failure_kind().decode()
            raise _EXCEPTIONS.get(kind, RuntimeError)(self.lib.h_failure_message().decode())

    def run(self, until: Callable[[], bool], *, max_cycles: int = 100_000) -> int:
        """Simulate until ``until()`` holds after a cycle (see the module docstring for when it
        is evaluated) and return the cycles taken; :class:`SimTimeout` after ``max_cycles``."""
        start = self.cycle
        limit = start + max_cycles
        flags = _FIRST | _EVENTS
        while True:
            self._step(limit, flags)
            flags = _EVENTS
            now = self.cycle
            if until():
                self.lib.h_finish()
                return now - start
            self.lib.h_finish()
            if now - start >= max_cycles:
                raise SimTimeout(f"{self.backend}: no end condition after {max_cycles} cycles")

    def advance(self, cycles: int) -> None:
        """Simulate exactly ``cycles`` (>= 1) cycles."""
        self._step(self.cycle + max(1, cycles) - 1, 0)
        self.lib.h_finish()
