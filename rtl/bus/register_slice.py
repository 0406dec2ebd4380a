"""A register slice: one stream in, the same stream out one cycle later, at full throughput, with
every output (``o.valid``, ``o.payload`` and ``i.ready``) driven by a flip-flop.

It cuts a stream's combinational paths in both directions (the producer's logic no longer reaches
the consumer's in one cycle, nor the consumer's ``ready`` the producer's), which is what the
timing report asks for where a stream crosses between deep pieces of logic. Two entries: the
output register and a skid register that catches the beat the producer sends in the cycle the
consumer stops (``i.ready`` is registered, so it can only fall one cycle late).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice", "output_skid"]


def output_skid(m, out, pipe, pipe_valid, skid_full) -> None:
    """A one-beat skid buffer after a pipeline's last stage (``pipe``, ``pipe_valid``) onto
    the stream ``out``, so ``out.ready`` reaches no pipeline enable: the pipeline advances
    while ``~skid_full`` (a register). A beat the consumer does not take moves into the buffer
    while the pipeline advances once more, then the pipeline waits until it has left. Beats
    leave in the same cycles as without the buffer; only a stall comes one cycle later."""
    skid = Signal.like(out.payload, name=f"{skid_full.name}_beat")
    m.d.comb += [out.valid.eq(skid_full | pipe_valid),
                 out.payload.eq(Mux(skid_full, skid, pipe))]
    with m.If(skid_full):
        with m.If(out.ready):
            m.d.sync += skid_full.eq(0)
    with m.Elif(pipe_valid & ~out.ready):
        m.d.sync += [skid.eq(pipe), skid_full.eq(1)]


class RegisterSlice(wiring.Component):
    """A stream delayed by one cycle, every output registered, one beat a cycle.

    Parameters
    ----------
    layout : shape-castable
        The payload.

    Attributes
    ----------
    i : In(stream of ``layout``); ``i.ready`` is low only while the skid register is full
    o : Out(stream of ``layout``); a beat accepted on ``i`` in cycle ``t`` is valid on ``o``
        from cycle ``t + 1`` (later only if ``o`` was stalled), beats in order, none dropped
    busy : Out(1), a beat is held (either register full)
    """

    def __init__(self, layout):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        skid = Signal.like(i.payload, name="skid")
        skid_valid = Signal()
        m.d.comb += [i.ready.eq(~skid_valid), self.busy.eq(o.valid | skid_valid)]
        with m.If(o.ready | ~o.valid):
            # The output register takes the skid register's beat, else the input's.
            m.d.sync += [o.payload.eq(Mux(skid_valid, skid, i.payload)),
                         o.valid.eq(skid_valid | i.valid), skid_valid.eq(0)]
        with m.Elif(i.valid & ~skid_valid):
            m.d.sync += [skid.eq(i.payload), skid_valid.eq(1)]
        return m
