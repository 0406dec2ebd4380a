"""The score feeder: streams attention scores from SCORE into the softmax, ``L`` rows at once.

SCORE holds the scores transposed (the compiler computes ``Sᵀ = K·Qᵀ``): word ``m·W + t``
(``W = ceil(max_tokens / C)`` words per key) holds the scores of key ``m`` against the ``C``
queries ``t·C … t·C + C − 1``. So one word feeds ``C`` query rows with one score each, and the
softmax takes ``L = softmax_lanes`` of them per cycle: query group ``g`` (queries
``g·L … g·L + L − 1``) reads words ``m·W + ⌊g·L / C⌋`` for ``m = 0 … length − 1`` and takes lanes
``(g·L mod C) …`` of each, the last key marked. Reads are pipelined (one word a cycle, held under
back-pressure): :func:`feed_cycles`.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig, TOKEN_BITS
from rtl.datapath.scratchpad import read_signature

__all__ = ["ScoreFeeder", "feed_cycles", "feed_groups", "feed_layout", "score_word_layout",
           "softmax_input_layout"]


def feed_groups(cfg: AccelConfig, rows: int) -> int:
    """Query groups of ``softmax_lanes`` rows a SOFTMAX of ``rows`` rows runs."""
    return math.ceil(rows / cfg.softmax_lanes)


def feed_cycles(cfg: AccelConfig, rows: int, length: int) -> int:
    """Cycles from the start to ``done`` when the softmax always takes a beat (1 when empty):
    one read cycle, then a beat (``softmax_lanes`` scores) every cycle."""
    if rows == 0 or length == 0:
        return 1
    return feed_groups(cfg, rows) * length + 1


def feed_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"rows": unsigned(TOKEN_BITS), "length": unsigned(TOKEN_BITS)})


def score_word_layout(cfg: AccelConfig) -> data.ArrayLayout:
    return data.ArrayLayout(signed(32), cfg.array_cols)


def softmax_input_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"t": data.ArrayLayout(signed(32), cfg.softmax_lanes), "last": 1})


class ScoreFeeder(wiring.Component):
    """SCORE words, ``softmax_lanes`` query rows side by side, into the softmax.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`feed_layout` (``rows`` queries, ``length`` keys), accepted when
        idle
    score : Out(read) of :func:`score_word_layout`
    o : Out(stream) of :func:`softmax_input_layout`, a query group's keys in order, ``last`` on
        its final key
    busy : Out(1); done : Out(1), the cycle the last beat is taken (or the first, when empty)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(feed_layout(cfg))),
            "score": Out(read_signature(cfg.max_tokens * cfg.score_row_words,
                                        score_word_layout(cfg))),
            "o": Out(stream.Signature(softmax_input_layout(cfg))),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, L, W = cfg.array_cols, cfg.softmax_lanes, cfg.score_row_words
        per_word = C // L
        job = Signal.like(self.cmd.payload)
        busy = Signal()
        issuing = Signal()                   # reads remain to be issued
        key = Signal(TOKEN_BITS)             # next read: key and query group
        group = Signal(TOKEN_BITS)
        tile = Signal(range(max(2, W)))      # the group's SCORE word within a key
        part = Signal(range(max(2, per_word)))
        addr = Signal.like(self.score.addr)  # key * W + tile
        have = Signal()                      # a word is on ``score.data``
        have_part = Signal.like(part)
        have_last = Signal()
        have_final = Signal()
        groups = Signal(TOKEN_BITS + 1)
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy),
                     groups.eq((job.rows + L - 1) // L)]
        empty = (self.cmd.payload.rows == 0) | (self.cmd.payload.length == 0)
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += [job.eq(self.cmd.payload), busy.eq(1), issuing.eq(~empty), key.eq(0),
                         group.eq(0), tile.eq(0), part.eq(0), addr.eq(0), have.eq(0)]

        advance = ~have | self.o.ready
        last_key = key == job.length - 1
        last_group = group == groups - 1
        with m.If(busy & advance):
            m.d.comb += [self.score.addr.eq(addr), self.score.en.eq(issuing)]
            m.d.sync += [have.eq(issuing), have_part.eq(part), have_last.eq(last_key),
                         have_final.eq(last_key & last_group)]
            with m.If(issuing):
                with m.If(~last_key):
                    m.d.sync += [key.eq(key + 1), addr.eq(addr + W)]
                with m.Else():
                    next_part = Mux(part == per_word - 1, 0, part + 1)
                    next_tile = Mux(part == per_word - 1, tile + 1, tile)
                    m.d.sync += [key.eq(0), group.eq(group + 1), part.eq(next_part),
                                 tile.eq(next_tile), addr.eq(next_tile),
                                 issuing.eq(~last_group)]

        with m.Switch(have_part):
            for k in range(per_word):
                with m.Case(k):
                    m.d.comb += [self.o.payload.t[j].eq(self.score.data[k * L + j])
                                 for j in range(L)]
        m.d.comb += [self.o.valid.eq(have), self.o.payload.last.eq(have_last)]

        finish = Signal()
        with m.If(busy & ~issuing & ~have):            # an empty job
            m.d.comb += finish.eq(1)
        with m.If(have & self.o.ready & have_final):
            m.d.comb += finish.eq(1)
        with m.If(finish):
            m.d.comb += self.done.eq(1)
            m.d.sync += busy.eq(0)
        return m
