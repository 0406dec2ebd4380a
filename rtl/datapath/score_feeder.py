"""The score feeder: streams attention-score rows from SCORE into the softmax unit.

Row ``r`` is SCORE words ``r·W …`` (``W = ceil(max_tokens / C)`` words per row, ``C`` int32
scores each); its first ``length`` scores go to the softmax one per cycle, the last one marked.
Each word costs one read cycle before its scores: :func:`feed_cycles`.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig, TOKEN_BITS
from rtl.datapath.scratchpad import read_signature

__all__ = ["ScoreFeeder", "feed_cycles", "feed_layout", "score_word_layout"]


def feed_cycles(cfg: AccelConfig, rows: int, length: int) -> int:
    """Cycles from the start to ``done`` when the softmax always takes a score (1 when empty)."""
    if rows == 0 or length == 0:
        return 1
    return rows * (length + math.ceil(length / cfg.array_cols))


def feed_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"rows": unsigned(TOKEN_BITS), "length": unsigned(TOKEN_BITS)})


def score_word_layout(cfg: AccelConfig) -> data.ArrayLayout:
    return data.ArrayLayout(signed(32), cfg.array_cols)


class ScoreFeeder(wiring.Component):
    """SCORE rows, one score per cycle, into the softmax.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`feed_layout`, accepted when idle
    score : Out(read) of :func:`score_word_layout`
    o : Out(stream) of the softmax input ``{t: ArrayLayout(signed(32), 1), last}``
    busy : Out(1); done : Out(1), the cycle the last score is taken (or the first, when empty)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(feed_layout(cfg))),
            "score": Out(read_signature(cfg.max_tokens * cfg.score_row_words,
                                        score_word_layout(cfg))),
            "o": Out(stream.Signature(data.StructLayout({
                "t": data.ArrayLayout(signed(32), 1), "last": 1}))),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C = cfg.array_cols
        job = Signal.like(self.cmd.payload)
        busy = Signal()
        row = Signal(12)
        word = Signal(8)
        j = Signal(range(C))
        base = Signal(24)
        have = Signal()               # the word being fed is on ``score.data``
        col = Signal(12)
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy), col.eq(word * C + j)]
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += [job.eq(self.cmd.payload), busy.eq(1), row.eq(0), word.eq(0), j.eq(0),
                         base.eq(0), have.eq(0)]
        pick = Signal(signed(32))
        with m.Switch(j):
            for k in range(C):
                with m.Case(k):
                    m.d.comb += pick.eq(self.score.data[k])
        m.d.comb += [self.o.payload.t[0].eq(pick), self.o.payload.last.eq(col == job.length - 1)]

        finish = Signal()
        with m.If(busy & ~have):
            m.d.comb += [self.score.addr.eq(base + word), self.score.en.eq(1)]
            m.d.sync += [have.eq(1), j.eq(0)]
            with m.If((job.rows == 0) | (job.length == 0)):
                m.d.comb += finish.eq(1)
        with m.Elif(busy):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                with m.If(col == job.length - 1):
                    m.d.sync += [have.eq(0), word.eq(0), row.eq(row + 1),
                                 base.eq(base + cfg.score_row_words)]
                    with m.If(row + 1 == job.rows):
                        m.d.comb += finish.eq(1)
                with m.Elif(j == C - 1):
                    m.d.sync += [have.eq(0), word.eq(word + 1)]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
        with m.If(finish):
            m.d.comb += self.done.eq(1)
            m.d.sync += busy.eq(0)
        return m
