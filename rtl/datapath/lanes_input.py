"""The lanes' input: result rows of the array, generated row addresses, or loaded residual rows.

MATMUL feeds the lanes from the array (row ``m`` offset by ``m_offset``: a gate or head split into
row blocks), LAYERNORM and LANES from the row generator (no accumulators), a LOAD of the residual
from the loader. ``sel`` (the dispatcher's, per instruction) picks one; the others wait.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_in_layout
from rtl.config import AccelConfig

__all__ = ["LanesInput", "LanesSource"]


class LanesSource(enum.Enum, shape=2):
    TILER = 0
    ROWGEN = 1
    LOADER = 2


class LanesInput(wiring.Component):
    """Three row sources, one lanes input.

    Attributes
    ----------
    tiler : In(stream) of the array's rows ``{m, tn, acc}``
    rows : In(stream) of ``{m, tn}`` (the row generator)
    loader : In(stream) of ``{m, tn, acc}`` (residual rows from DDR)
    sel : In(LanesSource); m_offset : In(8), added to the array's row index
    o : Out(stream) of :func:`rtl.array.lanes.lane_in_layout`
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C = cfg.array_cols
        row = lane_in_layout(C, cfg.token_bits, cfg.tn_bits, cfg.acc_width)
        super().__init__({
            "tiler": In(stream.Signature(row)),
            "rows": In(stream.Signature(data.StructLayout({"m": unsigned(cfg.token_bits),
                                                           "tn": unsigned(cfg.tn_bits)}))),
            "loader": In(stream.Signature(lane_in_layout(C, cfg.token_bits, cfg.tn_bits, 32))),
            "sel": In(LanesSource), "m_offset": In(8),
            "o": Out(stream.Signature(row)),
        })

    def elaborate(self, platform):
        m = Module()
        o = self.o
        with m.Switch(self.sel):
            with m.Case(LanesSource.TILER):
                t = self.tiler
                m.d.comb += [o.valid.eq(t.valid), o.payload.m.eq(t.payload.m + self.m_offset),
                             o.payload.tn.eq(t.payload.tn), o.payload.acc.eq(t.payload.acc),
                             t.ready.eq(o.ready)]
            with m.Case(LanesSource.ROWGEN):
                r = self.rows
                m.d.comb += [o.valid.eq(r.valid), o.payload.m.eq(r.payload.m),
                             o.payload.tn.eq(r.payload.tn), r.ready.eq(o.ready)]
            with m.Default():
                ld = self.loader
                m.d.comb += [o.valid.eq(ld.valid), o.payload.m.eq(ld.payload.m),
                             o.payload.tn.eq(ld.payload.tn), o.payload.acc.eq(ld.payload.acc),
                             ld.ready.eq(o.ready)]
        return m
