"""Cycle models for testing the datapath engines alone: memory ports, recorders and payload
packing for nested ``lib.data`` layouts (on either simulator, through :mod:`rtl.sim.bench`)."""

from __future__ import annotations

import random

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from rtl.sim.bench import Model

__all__ = ["Clocked", "pack_value", "unpack_value", "ReadMem", "WriteMem", "Recorder", "Driver",
           "ReadySink", "first_mismatch"]


class Clocked(wiring.Component):
    """A purely combinational component in a design with a clock (the simulator needs one):
    the same ports, passed straight through."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__(inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        tick = Signal()
        m.d.sync += tick.eq(~tick)
        inner = dict(((p, v) for p, _, v in self.inner.signature.flatten(self.inner)))
        for path, member, value in self.signature.flatten(self):
            if member.flow == In:
                m.d.comb += inner[path].eq(value)
            else:
                m.d.comb += value.eq(inner[path])
        return m


def _width(shape) -> int:
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def pack_value(shape, value) -> int:
    """A Python value (int, list for arrays, dict for structs) → the layout's integer (an int
    for a layout is taken as its raw bits)."""
    if isinstance(value, int) and not isinstance(shape, (int, range)) and \
            isinstance(shape, data.Layout):
        return value & ((1 << shape.size) - 1)
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        out = 0
        for i, v in enumerate(value):
            out |= (pack_value(shape.elem_shape, v) & ((1 << w) - 1)) << (i * w)
        return out
    if isinstance(shape, data.StructLayout):
        out = 0
        for name, field in shape:
            v = value.get(name, 0)
            out |= (pack_value(field.shape, v) & ((1 << field.width) - 1)) << field.offset
        return out
    return int(getattr(value, "value", value)) & ((1 << _width(shape)) - 1)


def unpack_value(shape, raw: int):
    """Inverse of :func:`pack_value`; signed elements come back signed."""
    if isinstance(shape, data.ArrayLayout):
        w = _width(shape.elem_shape)
        return [unpack_value(shape.elem_shape, (raw >> (i * w)) & ((1 << w) - 1))
                for i in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: unpack_value(f.shape, (raw >> f.offset) & ((1 << f.width) - 1))
                for name, f in shape}
    s = Shape.cast(shape)
    raw &= (1 << s.width) - 1
    return raw - (1 << s.width) if s.signed and raw >> (s.width - 1) else raw


class ReadMem(Model):
    """A synchronous read port: ``data`` one cycle after an enabled ``addr`` (held otherwise).
    ``mem`` maps addresses to packed words (missing: 0)."""

    def __init__(self, prefix: str, mem: dict):
        self.p, self.mem, self.q = prefix, mem, 0
        self.reads = 0

    def drive(self, io):
        io.set(self.p + "__data", self.q)

    def sample(self, io):
        if io.get(self.p + "__en"):
            self.q = self.mem.get(io.get(self.p + "__addr"), 0)
            self.reads += 1


class WriteMem(Model):
    """A write port: every enabled write lands in ``mem`` and in ``log`` (cycle, addr, word)."""

    def __init__(self, prefix: str):
        self.p, self.mem, self.log = prefix, {}, []

    def sample(self, io):
        if io.get(self.p + "__en"):
            addr, word = io.get(self.p + "__addr"), io.get(self.p + "__data")
            self.mem[addr] = word
            self.log.append((io.cycle, addr, word))


class Recorder(Model):
    """Cycles at which each named 1-bit signal -- or every signal of a tuple of names (a
    handshake) -- was high: ``high[name or tuple]``."""

    def __init__(self, *specs):
        self.specs = specs
        self.high = {s: [] for s in specs}

    def sample(self, io):
        for s in self.specs:
            names = s if isinstance(s, tuple) else (s,)
            if all(io.get(n) for n in names):
                self.high[s].append(io.cycle)


class Driver(Model):
    """Holds input ports at values (``set``) from the next cycle on."""

    def __init__(self, **values):
        self.values = dict(values)

    def set(self, **values):
        self.values.update(values)

    def drive(self, io):
        for n, v in self.values.items():
            io.set(n, v)


class ReadySink(Model):
    """Takes a stream's beats with READY high at random (``stall``: probability of low) and
    counts the cycles VALID waited."""

    def __init__(self, prefix: str, *, stall: float = 0.0, seed: int = 0):
        self.p, self.stall, self.rng = prefix, stall, random.Random(seed)
        self.items, self.waits, self._ready = [], 0, 1

    def drive(self, io):
        self._ready = int(self.stall <= 0 or self.rng.random() >= self.stall)
        io.set(self.p + "__ready", self._ready)

    def sample(self, io):
        if io.get(self.p + "__valid"):
            if self._ready:
                self.items.append(io.get(self.p + "__payload"))
            else:
                self.waits += 1


def first_mismatch(got: list, want: list) -> str:
    """'' when equal, else the first differing index with both values (for assertion text)."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"first mismatch at {i}: got {g!r}, want {w!r}"
    if len(got) != len(want):
        return f"lengths differ: got {len(got)}, want {len(want)}"
    return ""
