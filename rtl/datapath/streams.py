"""Generic stream plumbing of the datapath: a demultiplexer and a fixed-priority merge."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamDemux", "PriorityMerge"]


class StreamDemux(wiring.Component):
    """One stream to the output ``sel`` names; ``sel == n`` (none) takes and drops every beat.

    Parameters
    ----------
    layout : shape-castable
        The payload (broadcast to every output; only the selected one sees ``valid``).
    n : int
        Outputs.

    Attributes
    ----------
    i : In(stream); o : list of Out(stream), ``o0 … o{n-1}``; sel : In(range(n + 1))
    """

    def __init__(self, layout, n: int):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        super().__init__({"i": In(stream.Signature(layout)), "sel": In(range(n + 1)),
                          **{f"o{k}": Out(stream.Signature(layout)) for k in range(n)}})
        self.o = [getattr(self, f"o{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        for o in self.o:
            m.d.comb += o.payload.eq(self.i.payload)
        m.d.comb += self.i.ready.eq(1)
        with m.Switch(self.sel):
            for k, o in enumerate(self.o):
                with m.Case(k):
                    m.d.comb += [o.valid.eq(self.i.valid), self.i.ready.eq(o.ready)]
        return m


class PriorityMerge(wiring.Component):
    """Two streams into one; ``hi`` wins whenever it is valid, ``lo`` waits (its ``ready`` is low
    while ``hi`` is valid, whatever the output's).

    Attributes
    ----------
    hi, lo : In(stream); o : Out(stream)
    """

    def __init__(self, layout):
        super().__init__({"hi": In(stream.Signature(layout)), "lo": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.hi.valid):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(self.hi.payload),
                         self.hi.ready.eq(self.o.ready)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(self.lo.valid), self.o.payload.eq(self.lo.payload),
                         self.lo.ready.eq(self.o.ready)]
        return m
