"""The SCORE sink: int32 attention-score rows of ``Q·Kᵀ`` into the score memory (row ``m``,
column tile ``tn`` at SCORE word ``m·W + tn``, ``W = ceil(max_tokens / C)``); a row per cycle."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.config import AccelConfig
from rtl.datapath.score_feeder import score_word_layout
from rtl.datapath.scratchpad import write_signature

__all__ = ["ScoreSink"]


class ScoreSink(wiring.Component):
    """Lanes rows → SCORE words.

    Attributes
    ----------
    i : In(stream) of :func:`rtl.array.lanes.lane_out_layout` (always ready)
    score : Out(write) of :func:`rtl.datapath.score_feeder.score_word_layout`
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(lane_out_layout(cfg.array_cols, cfg.token_bits,
                                                     cfg.tn_bits))),
            "score": Out(write_signature(cfg.max_tokens * cfg.score_row_words,
                                         score_word_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        row = self.i.payload
        m.d.comb += [self.i.ready.eq(1), self.score.en.eq(self.i.valid),
                     self.score.addr.eq(row.m * self.cfg.score_row_words + row.tn),
                     self.score.data.eq(row.values)]
        return m
