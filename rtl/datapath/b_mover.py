"""The B-mover: copies attention's second operand from ACT into the array's weight banks.

*Direct* (values, ``P·V``): token row ``r`` (``words`` ACT words from ``src + r·stride``) becomes
B rows ``r`` of successive column tiles: one ACT read, then one B word written to every bank —
two cycles per word. *Transposed* (keys, ``Q·Kᵀ``): ``C`` tokens at a time, their word ``w`` read
one per cycle into a buffer, then byte ``b`` of all of them written into bank ``token mod C`` in one
cycle — ``2C`` cycles per ``C × C`` block (a partial block reads fewer tokens). See
:func:`b_move_cycles`.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.config import AccelConfig, ROW_WORDS_BITS, STRIDE_BITS, TOKEN_BITS, WORD_ADDR_BITS
from rtl.datapath.scratchpad import read_signature

__all__ = ["BMover", "b_move_cycles", "b_move_layout", "b_word_layout"]


def b_move_cycles(cfg: AccelConfig, rows: int, words: int, transpose: bool) -> int:
    """Cycles from the start to the last B word (``done`` included; 1 when ``rows`` is 0)."""
    C = cfg.array_cols
    if rows == 0:
        return 1
    if not transpose:
        return 2 * rows * words
    blocks = math.ceil(rows / C)
    last = rows - (blocks - 1) * C
    # per block and word: one read per token, two cycles to turn around, C byte writes
    per_word = [C + 2 + C] * (blocks - 1) + [last + 2 + C]
    return words * sum(per_word)


def b_move_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"src": unsigned(WORD_ADDR_BITS), "stride": unsigned(STRIDE_BITS),
                              "rows": unsigned(TOKEN_BITS), "words": unsigned(ROW_WORDS_BITS),
                              "transpose": 1, "b_offset": unsigned(WORD_ADDR_BITS)})


def b_word_layout(cfg: AccelConfig) -> data.StructLayout:
    """One write of every weight bank: ``data[j]`` into bank ``j`` at ``addr`` where ``mask[j]``."""
    C = cfg.array_cols
    return data.StructLayout({"addr": unsigned(max(1, ceil_log2(cfg.b_words))),
                              "mask": unsigned(C), "data": data.ArrayLayout(signed(8), C)})


class BMover(wiring.Component):
    """ACT token rows into the weight banks, directly or transposed.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`b_move_layout` (``b_offset``: ping-pong parity applied),
        accepted when idle
    act : Out(read) of ACT words
    b_word : Out(stream) of :func:`b_word_layout` (the weight banks always take it; the mover
        waits when they do not)
    busy : Out(1); done : Out(1), the cycle of the last B word
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C = cfg.array_cols
        super().__init__({
            "cmd": In(stream.Signature(b_move_layout(cfg))),
            "act": Out(read_signature(cfg.act_words, data.ArrayLayout(unsigned(8), C))),
            "b_word": Out(stream.Signature(b_word_layout(cfg))),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = self.cfg.array_cols
        job = Signal.like(self.cmd.payload)
        busy = Signal()
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy)]
        st = _MoverState(C)
        with m.If(self.cmd.valid & ~busy):
            new = self.cmd.payload
            m.d.sync += [job.eq(new), busy.eq(1), st.row.eq(0), st.word.eq(0), st.byte.eq(0),
                         st.have.eq(0), st.row_addr.eq(new.src), st.tbase.eq(new.b_offset),
                         st.waddr.eq(new.b_offset), st.tp_write.eq(0), st.tp_have.eq(0),
                         st.tp_rd_addr.eq(new.src), st.tp_left.eq(new.rows),
                         st.empty.eq(new.rows == 0)]
        # Registered comparisons: each is read at least two cycles after ``word`` / ``row``
        # last changed (a direct word takes two cycles, a block's write phase C), so the
        # control sees no adder or comparator between two of its registers.
        m.d.sync += [st.last_word.eq(st.word + 1 >= job.words),
                     st.last_row.eq(st.row + 1 == job.rows),
                     st.last_block.eq(st.tp_left <= C)]
        write = Signal()          # a B word goes out this cycle (byte phase or a direct word)
        m.d.comb += write.eq(busy & ~st.empty & Mux(job.transpose, st.tp_write, st.have))
        bw = self.b_word.payload
        m.d.comb += self.b_word.valid.eq(write)
        with m.If(job.transpose):
            m.d.comb += bw.addr.eq(st.tbase + st.word * C + st.byte)
            for j in range(C):
                m.d.comb += [bw.mask[j].eq(st.tp_left > j), bw.data[j].eq(st.tp_buf[j][st.byte])]
        with m.Else():
            m.d.comb += [bw.addr.eq(st.waddr), bw.mask.eq((1 << C) - 1)]
            for j in range(C):
                m.d.comb += bw.data[j].eq(self.act.data[j])

        finish = Signal()
        with m.If(finish):
            m.d.comb += self.done.eq(1)
            m.d.sync += busy.eq(0)
        with m.If(busy):
            with m.If(st.empty):
                m.d.comb += finish.eq(1)
            with m.Elif(write & ~self.b_word.ready):
                pass                                      # hold: the word stays offered
            with m.Elif(job.transpose & ~st.tp_write):
                self._gather_block(m, job, st)
            with m.Elif(job.transpose):
                self._write_block(m, job, st, finish)
            with m.Else():
                self._direct(m, job, st, finish)
        return m

    def _gather_block(self, m, job, st):
        """Transposed, phase 1: read word ``word`` of the block's tokens, one per cycle."""
        C = self.cfg.array_cols
        with m.If(st.tp_have):
            m.d.sync += Array(st.tp_buf)[st.tp_have_i].eq(self.act.data)
        reading = (st.byte < C) & (st.byte < st.tp_left)
        with m.If(reading):
            m.d.comb += [self.act.addr.eq(st.tp_rd_addr + st.word), self.act.en.eq(1)]
            m.d.sync += [st.tp_have.eq(1), st.tp_have_i.eq(st.byte), st.byte.eq(st.byte + 1),
                         st.tp_rd_addr.eq(st.tp_rd_addr + job.stride)]
        with m.Else():
            m.d.sync += st.tp_have.eq(0)
            with m.If(~st.tp_have):
                m.d.sync += [st.tp_write.eq(1), st.byte.eq(0)]

    def _write_block(self, m, job, st, finish):
        """Transposed, phase 2: byte ``byte`` of every buffered token into its bank."""
        C = self.cfg.array_cols
        with m.If(st.byte != C - 1):
            m.d.sync += st.byte.eq(st.byte + 1)
        with m.Else():
            m.d.sync += [st.tp_write.eq(0), st.byte.eq(0)]
            with m.If(~st.last_word):
                m.d.sync += [st.word.eq(st.word + 1), st.tp_rd_addr.eq(st.row_addr)]
            with m.Else():
                m.d.sync += [st.word.eq(0), st.tp_left.eq(st.tp_left - C),
                             st.row_addr.eq(st.row_addr + job.stride * C),
                             st.tp_rd_addr.eq(st.row_addr + job.stride * C),
                             st.tbase.eq(st.tbase + job.words * C)]
                with m.If(st.last_block):
                    m.d.comb += finish.eq(1)

    def _direct(self, m, job, st, finish):
        """Direct: read a token's word, then write it to every bank."""
        with m.If(~st.have):
            m.d.comb += [self.act.addr.eq(st.row_addr + st.word), self.act.en.eq(1)]
            m.d.sync += st.have.eq(1)
        with m.Else():
            m.d.sync += st.have.eq(0)
            with m.If(~st.last_word):
                m.d.sync += [st.word.eq(st.word + 1), st.waddr.eq(st.waddr + job.rows)]
            with m.Else():
                # next token: its words restart at column 0
                m.d.sync += [st.word.eq(0), st.row.eq(st.row + 1),
                             st.row_addr.eq(st.row_addr + job.stride),
                             st.waddr.eq(job.b_offset + st.row + 1)]
                with m.If(st.last_row):
                    m.d.comb += finish.eq(1)


class _MoverState:
    """The mover's registers (shared by its three phases)."""

    def __init__(self, C: int):
        self.row = Signal(range(4096 + C), name="row")  # direct: the token at hand
        self.word = Signal(8, name="word")
        self.byte = Signal(range(C + 1), name="byte")
        self.row_addr = Signal(24, name="row_addr")
        self.have = Signal(name="have")
        self.waddr = Signal(24, name="waddr")          # direct: b_offset + word*rows + row
        self.tbase = Signal(24, name="tbase")          # transposed: first token's block base
        self.tp_buf = [Signal(data.ArrayLayout(unsigned(8), C), name=f"tp_buf_{j}")
                       for j in range(C)]
        self.tp_write = Signal(name="tp_write")        # 0: reading the tokens, 1: writing bytes
        self.tp_rd_addr = Signal(24, name="tp_rd_addr")
        self.tp_have = Signal(name="tp_have")          # last cycle's read is on act.data
        self.tp_have_i = Signal(range(C), name="tp_have_i")
        self.tp_left = Signal(13, name="tp_left")      # tokens of the block still to come
        self.empty = Signal(name="empty")              # the job has no rows
        self.last_word = Signal(name="last_word")      # word + 1 >= words
        self.last_row = Signal(name="last_row")        # row + 1 == rows (direct)
        self.last_block = Signal(name="last_block")    # tp_left <= C (transposed)
