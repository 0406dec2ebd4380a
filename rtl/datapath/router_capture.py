"""The router capture: the router's outputs into the expert queue and the expert list.

Queue entries ``(token, prob)`` arrive expert-major, one per cycle, and go to QUEUE words
``0, 1, …``; each non-empty expert arrives once with its queue length, in visiting order (the
sequencer's expert loop reads ``ne_count``/``ne_expert``/``ne_length``). ``done`` rises after the
frame's final queue entry.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.config import AccelConfig
from rtl.datapath.a_loader import queue_entry_layout
from rtl.datapath.scratchpad import write_signature

__all__ = ["RouterCapture"]


class RouterCapture(wiring.Component):
    """Router queue and expert list → QUEUE memory and the non-empty-expert registers.

    Attributes
    ----------
    start : In(1), a routing begins (clears the list and the queue pointer)
    queue_in : In(stream) of the router's ``queue`` (always ready)
    experts_in : In(stream) of the router's ``experts_out`` (always ready)
    queue : Out(write) of :func:`rtl.datapath.a_loader.queue_entry_layout`
    ne_count, ne_expert, ne_length : Out — the last routing's non-empty experts
    done : Out(1), level: the final queue entry was written
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        E = cfg.experts
        lw = max(1, ceil_log2(cfg.max_tokens + 1))        # the router's token and length width
        super().__init__({
            "start": In(1),
            "queue_in": In(stream.Signature(data.StructLayout({
                "expert": range(E), "token": unsigned(lw), "prob": unsigned(16),
                "last": 1, "final": 1}))),
            "experts_in": In(stream.Signature(data.StructLayout({
                "expert": range(E), "length": unsigned(lw), "last": 1}))),
            "queue": Out(write_signature(cfg.max_tokens * cfg.top_k, queue_entry_layout(cfg))),
            "ne_count": Out(range(E + 1)),
            "ne_expert": Out(data.ArrayLayout(unsigned(max(1, ceil_log2(E))), E)),
            "ne_length": Out(data.ArrayLayout(unsigned(lw), E)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        E = self.cfg.experts
        count = Signal.like(self.ne_count)
        wp = Signal(range(self.cfg.max_tokens * self.cfg.top_k + 1))
        final = Signal()
        m.d.comb += [self.queue_in.ready.eq(1), self.experts_in.ready.eq(1),
                     self.ne_count.eq(count), self.done.eq(final),
                     self.queue.addr.eq(wp), self.queue.data.token.eq(self.queue_in.payload.token),
                     self.queue.data.prob.eq(self.queue_in.payload.prob),
                     self.queue.en.eq(self.queue_in.valid)]
        with m.If(self.queue_in.valid):
            m.d.sync += wp.eq(wp + 1)
            with m.If(self.queue_in.payload.final):
                m.d.sync += final.eq(1)
        with m.If(self.experts_in.valid):
            m.d.sync += count.eq(count + 1)
            for i in range(E):
                with m.If(count == i):
                    m.d.sync += [self.ne_expert[i].eq(self.experts_in.payload.expert),
                                 self.ne_length[i].eq(self.experts_in.payload.length)]
        with m.If(self.start):
            m.d.sync += [final.eq(0), count.eq(0), wp.eq(0)]
        return m
