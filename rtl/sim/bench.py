"""Two-phase cycle simulation on top of either simulator.

Each clock cycle the bench calls, for every model in order:

1. ``model.drive(io)`` — set the model's outputs for this cycle from its *registered* state
   (a model must not look at the DUT here);
2. after all drives, ``model.sample(io)`` — read settled signals (combinational DUT outputs
   included), work out which handshakes happen at the coming clock edge, update state;

and then the clock ticks. ``io.get`` in ``sample`` therefore sees exactly the values the DUT's
flip-flops capture at the edge, on both backends.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable, Iterable

__all__ = ["IO", "Model", "AmaranthBench", "StreamSource", "StreamSink", "Script", "pack",
           "unpack", "make_bench", "SimTimeout"]


class SimTimeout(AssertionError):
    """The run did not reach its end condition within ``max_cycles``."""


class IO:
    """Port access by flattened name: ``get``, ``set`` and the current ``cycle``."""

    cycle: int = 0

    def get(self, name: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def set(self, name: str, value: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def has(self, name: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class Model:
    """Base class of cycle models; override :meth:`drive` and/or :meth:`sample`."""

    def drive(self, io: IO) -> None:
        pass

    def sample(self, io: IO) -> None:
        pass

    def idle(self) -> bool:
        """True when the model has nothing left to do (used by ``run(until_idle=...)``)."""
        return True


def pack(layout, **fields) -> int:
    """Pack ``fields`` into the integer value of an Amaranth ``data`` layout."""
    value = 0
    for name, field in layout:
        v = fields.pop(name, 0)
        value |= (int(v) & ((1 << field.width) - 1)) << field.offset
    if fields:
        raise KeyError(f"unknown fields {sorted(fields)} for layout {layout!r}")
    return value


def unpack(layout, value: int) -> dict:
    """Inverse of :func:`pack` (unsigned fields)."""
    return {name: (value >> field.offset) & ((1 << field.width) - 1) for name, field in layout}


def _rand_ready(rng: random.Random | None, p: float) -> int:
    return int(rng is None or p <= 0 or rng.random() >= p)


class StreamSource(Model):
    """Drives a ``lib.stream`` sink port (``<prefix>__valid/payload/ready``) from a queue.

    ``stall`` is the probability of idling a cycle (seeded); VALID is never withdrawn once
    raised and the payload stays stable until READY, as a stream producer must.
    """

    def __init__(self, prefix: str, items: Iterable[int] = (), *, stall: float = 0.0,
                 seed: int = 0):
        self.prefix, self.queue = prefix, deque(items)
        self.stall, self.rng = stall, random.Random(seed)
        self.sent = 0
        self._valid = False

    def push(self, item: int) -> None:
        self.queue.append(item)

    def drive(self, io: IO) -> None:
        if not self._valid and self.queue and _rand_ready(self.rng, self.stall):
            self._valid = True
        io.set(self.prefix + "__valid", int(self._valid))
        if self._valid:
            io.set(self.prefix + "__payload", self.queue[0])

    def sample(self, io: IO) -> None:
        if self._valid and io.get(self.prefix + "__ready"):
            self.queue.popleft()
            self.sent += 1
            self._valid = False

    def idle(self) -> bool:
        return not self.queue and not self._valid


class StreamSink(Model):
    """Accepts payloads from a ``lib.stream`` source port into ``items`` (READY random)."""

    def __init__(self, prefix: str, *, stall: float = 0.0, seed: int = 0):
        self.prefix, self.items = prefix, []
        self.stall, self.rng = stall, random.Random(seed)
        self._ready = 0

    def drive(self, io: IO) -> None:
        self._ready = _rand_ready(self.rng, self.stall)
        io.set(self.prefix + "__ready", self._ready)

    def sample(self, io: IO) -> None:
        if self._ready and io.get(self.prefix + "__valid"):
            self.items.append(io.get(self.prefix + "__payload"))


class Script(Model):
    """Sets input ports ``names`` from ``rows``: row ``i`` in cycle ``i`` (after the last row
    the ports keep their values). The twin of the compiled harness's ``Script``; tests drive
    protocol violations into the checkers with it."""

    def __init__(self, names: list[str], rows: list[list[int]]):
        self.names, self.rows = list(names), [list(r) for r in rows]

    def drive(self, io: IO) -> None:
        if io.cycle < len(self.rows):
            for name, value in zip(self.names, self.rows[io.cycle]):
                io.set(name, value)


class Bench:
    """Backend-independent part: model list and the run loop."""

    backend = "abstract"

    def __init__(self):
        self.models: list[Model] = []
        self.cycle = 0

    def add(self, *models: Model):
        self.models.extend(models)
        return models[0] if len(models) == 1 else models

    def _loop(self, io: IO, until, max_cycles: int):
        start = self.cycle
        while True:
            io.cycle = self.cycle
            for m in self.models:
                m.drive(io)
            io._settle()
            for m in self.models:
                m.sample(io)
            if until():
                return self.cycle - start
            if self.cycle - start >= max_cycles:
                raise SimTimeout(f"{self.backend}: no end condition after {max_cycles} cycles")
            yield
            self.cycle += 1


class _AmaranthIO(IO):
    def __init__(self, ctx, signals: dict):
        self.ctx, self.signals = ctx, signals

    def get(self, name):
        return self.ctx.get(self.signals[name])

    def set(self, name, value):
        self.ctx.set(self.signals[name], value)

    def has(self, name):
        return name in self.signals

    def _settle(self):
        pass  # testbench ``set`` settles combinational logic immediately


def port_signals(dut) -> dict:
    """``{flattened name: Value}`` of a ``wiring.Component``'s ports (Verilog port names)."""
    from amaranth.hdl import Value
    return {"__".join(map(str, path)): Value.cast(value)
            for path, _member, value in dut.signature.flatten(dut)}


class AmaranthBench(Bench):
    """Runs cycle models against ``dut`` in Amaranth's simulator (one async testbench).

    ``run(until, max_cycles)`` simulates until ``until()`` is true after a cycle's sample phase
    and returns the number of cycles taken; call it again to continue the same simulation.
    ``vcd`` names a trace file to write (for debugging).
    """

    backend = "amaranth"

    def __init__(self, dut, *, vcd: str | None = None):
        from amaranth.sim import Simulator
        super().__init__()
        self.dut = dut
        self.signals = port_signals(dut)
        self._segment = None
        self._result = None
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-8)
        self.sim.add_testbench(self._testbench)
        self._vcd = self.sim.write_vcd(vcd) if vcd else None
        if self._vcd is not None:
            self._vcd.__enter__()

    async def _testbench(self, ctx):
        self._ctx = ctx
        io = _AmaranthIO(ctx, self.signals)
        while True:
            if self._segment is None:
                await ctx.tick()
                continue
            until, max_cycles = self._segment
            loop = self._loop(io, until, max_cycles)
            while True:
                try:
                    next(loop)
                except StopIteration as stop:
                    self._result = stop.value
                    break
                except Exception as exc:    # SimTimeout, model assertions: raised by run()
                    self._result = exc
                    break
                await ctx.tick()
            self._segment = None
            self.cycle += 1       # the edge below ends the segment's last cycle
            await ctx.tick()

    def run(self, until: Callable[[], bool] | None = None, *, max_cycles: int = 100_000) -> int:
        if until is None:
            until = lambda: all(m.idle() for m in self.models)  # noqa: E731
        self._segment, self._result = (until, max_cycles), None
        while self._result is None:
            self.sim.advance()
        if isinstance(self._result, Exception):
            raise self._result
        return self._result

    def peek(self, value):
        """The current value of any signal, memory row (``memory.data[i]``) or expression of
        the design, between runs (for tests that check state no port shows)."""
        if getattr(self, "_ctx", None) is None:
            self.run(lambda: True, max_cycles=1)
        return self._ctx.get(value)

    def probe(self, path: str) -> str:
        """Make an internal signal readable by ``io.get(path)``: ``path`` is the dotted
        hierarchical name below the top (``"compute.tiler.busy"``), for debugging models."""
        *scope, name = path.split(".")
        design = self.sim._engine._design
        for info in design.fragments.values():
            if list(info.name[1:]) != scope:
                continue
            for signal, sname in info.signal_names.items():
                if sname == name:
                    self.signals[path] = signal
                    return path
        raise KeyError(f"no signal {path!r} in the design")

    def close(self) -> None:
        """Finish the VCD file, if any."""
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


def make_bench(dut, backend: str = "amaranth", **kwargs) -> Bench:
    """Create a bench for ``dut`` on ``"amaranth"`` or ``"verilator"``: same API on both."""
    if backend == "amaranth":
        return AmaranthBench(dut, **kwargs)
    if backend == "verilator":
        from .verilator import VerilatorBench
        return VerilatorBench(dut, **kwargs)
    raise ValueError(f"unknown simulator backend {backend!r} (amaranth or verilator)")
