"""The A-operand loader: copies a matmul's A rows from ACT into the array's A banks.

Row ``r`` (of ``m``) is ACT row ``a_addr + r·a_stride``, or, with ``gather``, ACT row
``a_addr + token·a_stride`` of the ``r``-th entry ``(token, prob)`` of the expert queue (entries
from ``qstart``); gathered entries are also copied into the lanes' queue memory, which the
expert's fc2 (``scatter``) reads. Row ``r`` goes to A bank ``r mod R`` at the row tile's base,
one A word (``a_word_bytes``) per cycle.

Timing: two cycles for the first row (reading its queue entry, then computing its address and
reading its first ACT word; three when gathering: the token × stride product is registered
between the two), then ``W = ceil(k / C) × (C / a_word_bytes)`` cycles per row writing A words,
rows back to back: the next row's queue entry is read in the cycle the current row starts, its
product registered while the current row's words go out and its first ACT word read in the
cycle of the current row's last word (a gathered row of a single word takes two cycles: its
product is registered in the previous row's only cycle): :func:`a_load_cycles`. No path runs
from the queue memory through the multiplier into the ACT address in one cycle. ``rows`` counts the rows written so far, for a tiler that starts a row
tile as soon as its rows are in.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.config import (AccelConfig, KN_BITS, QUEUE_BITS, STRIDE_BITS, TOKEN_BITS,
                        WORD_ADDR_BITS)
from rtl.datapath.scratchpad import read_signature

__all__ = ["ALoader", "a_load_cycles", "a_load_words", "a_load_layout", "queue_entry_layout"]


def a_load_words(cfg: AccelConfig, k: int) -> int:
    """A words (cycles) per row of reduction length ``k``."""
    return math.ceil(k / cfg.array_cols) * cfg.a_ratio


def a_load_cycles(cfg: AccelConfig, m: int, k: int, gather: bool = False) -> int:
    """Cycles from the start to the last A word (the engine's ``done`` cycle included)."""
    w = a_load_words(cfg, k)
    if gather and w == 1:
        return 2 + 2 * m
    return 2 + int(gather) + m * w


def queue_entry_layout(cfg: AccelConfig) -> data.StructLayout:
    """One expert-queue entry: the token and its gate probability (Q16)."""
    return data.StructLayout({"token": unsigned(cfg.token_bits), "prob": unsigned(16)})


def a_load_layout(cfg: AccelConfig) -> data.StructLayout:
    """What one A load needs: rows, reduction length, source rows, the queue slice."""
    return data.StructLayout({"m": unsigned(TOKEN_BITS), "k": unsigned(KN_BITS),
                              "a_addr": unsigned(WORD_ADDR_BITS), "a_stride": unsigned(STRIDE_BITS),
                              "gather": 1, "qstart": unsigned(QUEUE_BITS)})


class ALoader(wiring.Component):
    """A rows from ACT (optionally gathered through the expert queue) into the A banks.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`a_load_layout`, accepted when idle (``m`` >= 1, ``k`` >= 1)
    act : Out(read) of ACT words; queue : Out(read) of :func:`queue_entry_layout`
    a_load : Out(stream) of ``{bank, addr, value}`` (the tiler's A-bank writes; the tiler always
        takes them, the loader waits when it does not)
    queue_load : Out(stream) of ``{addr, value}`` (the lanes' queue copy; likewise)
    busy : Out(1); done : Out(1), the cycle the last A word is written
    rows : Out(range(max_tokens + 1)), rows completely written since the command
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C = cfg.array_cols
        super().__init__({
            "cmd": In(stream.Signature(a_load_layout(cfg))),
            "act": Out(read_signature(cfg.act_words, data.ArrayLayout(unsigned(8), C))),
            "queue": Out(read_signature(cfg.max_tokens * cfg.top_k, queue_entry_layout(cfg))),
            "a_load": Out(stream.Signature(data.StructLayout({
                "bank": unsigned(max(1, ceil_log2(cfg.array_rows))),
                "addr": unsigned(max(1, ceil_log2(cfg.a_bank_words))),
                "value": unsigned(8 * cfg.a_word_bytes)}))),
            "queue_load": Out(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(cfg.max_tokens))),
                "value": queue_entry_layout(cfg)}))),
            "busy": Out(1), "done": Out(1), "rows": Out(range(cfg.max_tokens + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, R = cfg.array_cols, cfg.array_rows
        ratio = cfg.a_ratio
        job = Signal.like(self.cmd.payload)
        busy = Signal()
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy)]

        kw = Signal(range(cfg.max_k // C + 2))
        m.d.comb += kw.eq((job.k + C - 1) // C)
        row = Signal(range(cfg.max_tokens + 1))
        bank = Signal(range(R))
        tile_base = Signal(len(self.a_load.payload.addr) + 1)
        word = Signal(range(cfg.max_k // C + 2))
        sub = Signal(range(ratio))
        row_addr = Signal(24)
        lin_addr = Signal(24)             # a_addr + row × a_stride, kept as a running sum
        phase = Signal(2)                 # 0: read queue, 3: product, 1: row address, 2: words
        prod = Signal(24)                 # token × a_stride of the entry on queue.data, registered
        m.d.sync += prod.eq(self.queue.data.token * job.a_stride)
        word_addr = Signal(len(self.a_load.payload.addr) + 1)
        m.d.comb += word_addr.eq(tile_base + word * ratio + sub)
        act_data = self.act.data.as_value()
        m.d.comb += [
            self.a_load.payload.bank.eq(bank),
            self.a_load.payload.addr.eq(word_addr),
            self.a_load.payload.value.eq(act_data.word_select(sub, 8 * cfg.a_word_bytes)
                                         if ratio > 1 else act_data),
            self.queue_load.payload.value.eq(self.queue.data),
        ]

        with m.If(self.cmd.valid & ~busy):
            new = self.cmd.payload
            m.d.sync += [job.eq(new), busy.eq(1), row.eq(0), bank.eq(0), tile_base.eq(0),
                         word.eq(0), sub.eq(0), phase.eq(0), lin_addr.eq(new.a_addr)]
        m.d.comb += self.rows.eq(row)
        with m.If(busy):
            with m.Switch(phase):
                with m.Case(0, 3):
                    m.d.comb += [self.queue.addr.eq(job.qstart + row), self.queue.en.eq(1)]
                    m.d.sync += phase.eq(Mux(job.gather & (phase == 0), 3, 1))
                with m.Case(1):
                    with m.If(self._start_row(m, job, row, lin_addr, row_addr, prod)):
                        m.d.sync += [word.eq(0), sub.eq(0), phase.eq(2)]
                with m.Default():
                    self._words(m, job, kw, row, bank, tile_base, word, sub, row_addr, lin_addr,
                                prod, phase, busy)
        return m

    def _start_row(self, m, job, row, lin_addr, row_addr, prod):
        """Row ``row``'s address (through its queue entry's registered product ``prod`` when
        gathering), the read of its first ACT word and its queue copy (the entry, on
        ``queue.data``); once started (the lanes took the copy), the next row's entry is read;
        returns that condition."""
        addr = Signal(24)
        m.d.comb += [addr.eq(Mux(job.gather, job.a_addr + prod, lin_addr)),
                     self.act.addr.eq(addr), self.act.en.eq(1),
                     self.queue_load.valid.eq(job.gather), self.queue_load.payload.addr.eq(row)]
        ok = ~job.gather | self.queue_load.ready
        with m.If(ok):
            m.d.sync += row_addr.eq(addr)
            m.d.comb += [self.queue.addr.eq(job.qstart + row + 1), self.queue.en.eq(1)]
        return ok

    def _words(self, m, job, kw, row, bank, tile_base, word, sub, row_addr, lin_addr, prod,
               phase, busy):
        """Phase 2: one A word per cycle taken; the next ACT word is read with the last
        sub-word, and with the row's last word the next row's first."""
        R, ratio = self.cfg.array_rows, self.cfg.a_ratio
        m.d.comb += self.a_load.valid.eq(1)
        more = row + 1 < job.m
        with m.If(more):     # the next row's queue entry stays on ``queue.data`` (its product
            # on ``prod`` from the row's second cycle) until that row starts
            m.d.comb += [self.queue.addr.eq(job.qstart + row + 1), self.queue.en.eq(1)]
        one_word = (kw == 1) if ratio == 1 else False      # the row's second cycle on
        with m.If(~self.a_load.ready):
            pass                                          # hold: the word stays offered
        with m.Elif(sub != ratio - 1):
            m.d.sync += sub.eq(sub + 1)
        with m.Elif(word + 1 < kw):
            m.d.sync += [sub.eq(0), word.eq(word + 1)]
            m.d.comb += [self.act.addr.eq(row_addr + word + 1), self.act.en.eq(1)]
        with m.Else():
            next_lin = lin_addr + job.a_stride
            m.d.sync += [row.eq(row + 1), lin_addr.eq(next_lin), sub.eq(0), word.eq(0)]
            with m.If(bank == R - 1):
                m.d.sync += [bank.eq(0), tile_base.eq(tile_base + kw * ratio)]
            with m.Else():
                m.d.sync += bank.eq(bank + 1)
            with m.If(~more):
                m.d.comb += self.done.eq(1)
                m.d.sync += busy.eq(0)
            with m.Elif(job.gather & one_word):
                m.d.sync += phase.eq(1)                   # its product is registered now
            with m.Else():
                with m.If(~self._start_row(m, job, row + 1, next_lin, row_addr, prod)):
                    m.d.sync += phase.eq(1)               # the lanes did not take the copy
