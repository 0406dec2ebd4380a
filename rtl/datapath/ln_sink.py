"""The LayerNorm feed: residual rows (``C`` int16 values) into LayerNorm ``ln_lanes`` at a time.

A row takes ``C / ln_lanes`` cycles; ``last`` marks the final beat of a token (its column tile
``row_words - 1``). It also holds the instruction's ``eps`` for the unit.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.config import AccelConfig, ROW_WORDS_BITS

__all__ = ["LnSink", "ln_sink_layout"]


def ln_sink_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"row_words": unsigned(ROW_WORDS_BITS), "eps": unsigned(32)})


class LnSink(wiring.Component):
    """Lanes rows → LayerNorm beats.

    Attributes
    ----------
    cmd : In(stream) of :func:`ln_sink_layout` (always accepted: column tiles per token, eps)
    i : In(stream) of :func:`rtl.array.lanes.lane_out_layout`
    o : Out(stream) of the LayerNorm input ``{r: ArrayLayout(signed(16), ln_lanes), last}``
    eps : Out(32), the LayerNorm's epsilon
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(ln_sink_layout(cfg))),
            "i": In(stream.Signature(lane_out_layout(cfg.array_cols, cfg.token_bits,
                                                     cfg.tn_bits))),
            "o": Out(stream.Signature(data.StructLayout({
                "r": data.ArrayLayout(signed(16), cfg.ln_lanes), "last": 1}))),
            "eps": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        lanes, ratio = cfg.ln_lanes, cfg.ln_ratio
        job = Signal.like(self.cmd.payload)
        sub = Signal(range(max(2, ratio)))
        m.d.comb += [self.cmd.ready.eq(1), self.eps.eq(job.eps)]
        with m.If(self.cmd.valid):
            m.d.sync += [job.eq(self.cmd.payload), sub.eq(0)]
        row = self.i.payload
        last_sub = sub == ratio - 1
        for j in range(lanes):
            with m.Switch(sub):
                for s in range(ratio):
                    with m.Case(s):
                        m.d.comb += self.o.payload.r[j].eq(row.values[s * lanes + j][:16])
        m.d.comb += [self.o.valid.eq(self.i.valid),
                     self.o.payload.last.eq(last_sub & (row.tn == job.row_words - 1)),
                     self.i.ready.eq(self.o.ready & last_sub)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += sub.eq(Mux(last_sub, 0, sub + 1))
        return m
