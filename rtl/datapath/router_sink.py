"""The router feed: gate-logit rows into the router, one logit per cycle.

Each row's first ``E`` values are a token's gate logits; the router takes them one at a time,
expert ``e`` in cycle ``e`` of the row, ``last`` on the final token's last expert. A row is
released after its ``E``-th logit: ``E`` cycles per token.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.config import AccelConfig, TOKEN_BITS

__all__ = ["RouterSink", "router_sink_layout"]


def router_sink_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"m": unsigned(TOKEN_BITS)})


class RouterSink(wiring.Component):
    """Lanes rows → router logits.

    Attributes
    ----------
    cmd : In(stream) of :func:`router_sink_layout` (always accepted: tokens of the frame)
    i : In(stream) of :func:`rtl.array.lanes.lane_out_layout`
    o : Out(stream) of the router input ``{t: signed(32), last}``
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(router_sink_layout(cfg))),
            "i": In(stream.Signature(lane_out_layout(cfg.array_cols, cfg.token_bits,
                                                     cfg.tn_bits))),
            "o": Out(stream.Signature(data.StructLayout({"t": signed(32), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        E = self.cfg.experts
        job = Signal.like(self.cmd.payload)
        e = Signal(range(E))
        m.d.comb += self.cmd.ready.eq(1)
        with m.If(self.cmd.valid):
            m.d.sync += [job.eq(self.cmd.payload), e.eq(0)]
        row = self.i.payload
        pick = Signal(signed(32))
        with m.Switch(e):
            for k in range(E):
                with m.Case(k):
                    m.d.comb += pick.eq(row.values[k])
        m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.t.eq(pick),
                     self.o.payload.last.eq((row.m == job.m - 1) & (e == E - 1)),
                     self.i.ready.eq(self.o.ready & (e == E - 1))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += e.eq(Mux(e == E - 1, 0, e + 1))
        return m
