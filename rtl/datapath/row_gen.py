"""The row generator: addresses the lanes' state memories row by row without a matmul.

LAYERNORM streams the residual rows ``row0 …`` through the lanes (``Aux.RES_READ``) and LANES
commits or clears the MoE accumulator (``Aux.ACC_COMMIT`` / ``ACC_CLEAR``): both need the row
addresses ``(m, tn)`` for ``rows`` rows of ``row_words`` column tiles, one per cycle the lanes take
(:func:`row_gen_cycles` without back-pressure).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig, ROW_WORDS_BITS, TOKEN_BITS

__all__ = ["RowGen", "row_gen_cycles", "row_gen_layout"]


def row_gen_cycles(rows: int, row_words: int) -> int:
    """Cycles from the start to ``done`` when the lanes always take a row (1 for nothing)."""
    return rows * row_words if rows and row_words else 1


def row_gen_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"row0": unsigned(TOKEN_BITS), "rows": unsigned(TOKEN_BITS),
                              "row_words": unsigned(ROW_WORDS_BITS)})


class RowGen(wiring.Component):
    """``(row0 + r, tn)`` for ``r < rows``, ``tn < row_words``, row-major.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`row_gen_layout`, accepted when idle
    o : Out(stream) of ``{m, tn}`` (into the lanes' input)
    busy : Out(1); done : Out(1), the cycle the last row is taken (or the first, when empty)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(row_gen_layout(cfg))),
            "o": Out(stream.Signature(data.StructLayout({"m": unsigned(cfg.token_bits),
                                                         "tn": unsigned(cfg.tn_bits)}))),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        job = Signal.like(self.cmd.payload)
        busy = Signal()
        row = Signal(12)
        tn = Signal(8)
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy),
                     self.o.payload.m.eq(job.row0 + row), self.o.payload.tn.eq(tn)]
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += [job.eq(self.cmd.payload), busy.eq(1), row.eq(0), tn.eq(0)]
        empty = (job.rows == 0) | (job.row_words == 0)
        finish = Signal()
        with m.If(busy):
            m.d.comb += self.o.valid.eq(~empty)
            with m.If(self.o.ready):
                with m.If(tn + 1 < job.row_words):
                    m.d.sync += tn.eq(tn + 1)
                with m.Else():
                    m.d.sync += [tn.eq(0), row.eq(row + 1)]
                    with m.If(row + 1 >= job.rows):
                        m.d.comb += finish.eq(1)
            with m.If(empty):
                m.d.comb += finish.eq(1)
        with m.If(finish):
            m.d.comb += self.done.eq(1)
            m.d.sync += busy.eq(0)
        return m
