"""The transposing packer: softmax probabilities, ``L`` query rows a beat, into row-major ACT.

The softmax emits one key's probabilities for ``L = softmax_lanes`` queries per beat (the score
feeder's query groups). ACT wants each query's row: word ``w`` of query ``q`` (keys ``w·C …
w·C + C − 1``) at ``d_addr + q·d_stride + w``. So the packer collects a *block* — up to ``C``
beats, one query group's keys ``w·C …`` — in one of :data:`BLOCKS` buffers of ``L × C`` bytes
(beat ``c`` into byte ``c`` of every query's word), and when the block is complete (``C`` beats,
or the group's last key) writes its words to ACT, one query a cycle, starting the cycle after
(or right after the previous block's words). Three buffers keep the input from ever waiting
when ``L <= C`` and a group's beats come back to back or at least ``L`` cycles apart (the
softmax's pattern); :func:`rtl.datapath.timing.softmax_cycles` models the write-out. Bytes of a
partial last word past the row's end hold what the buffer held before.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig, TOKEN_BITS, WORD_ADDR_BITS
from rtl.datapath.packer import pack_layout
from rtl.datapath.score_feeder import feed_groups
from rtl.datapath.scratchpad import act_write_signature

__all__ = ["TransposePacker", "BLOCKS", "softmax_output_layout", "last_write_cycle"]

BLOCKS = 3


def last_write_cycle(cfg: AccelConfig, rows: int, length: int, beats: list[int]) -> int:
    """The packer's cycle formula: the cycle of its last ACT write when beat ``i`` of the
    ``ceil(rows / L)·length`` beats (groups in order, keys in order) is accepted in cycle
    ``beats[i]`` and no beat waited for a buffer. A block's words go out one a cycle from the
    cycle after its last beat, or right after the previous block's; ``done`` rises the cycle
    after the last write. -1 when nothing is written."""
    C, L = cfg.array_cols, cfg.softmax_lanes
    written = -1
    for g in range(feed_groups(cfg, rows) if length else 0):
        queries = min(L, rows - g * L)
        for block in range(math.ceil(length / C)):
            complete = beats[g * length + min(C * (block + 1), length) - 1]
            written = max(complete + 1, written + 1) + queries - 1
    return written


def softmax_output_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"p": data.ArrayLayout(unsigned(8), cfg.softmax_lanes), "last": 1})


class TransposePacker(wiring.Component):
    """Query-group beats in, row-major ACT words out.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`rtl.datapath.packer.pack_layout` (always accepted: it restarts
        the packer; ``rows`` queries)
    i : In(stream) of :func:`softmax_output_layout`, ready while a buffer is free and
        ``enable`` is high
    enable : In(1), the input belongs to the current instruction
    act : Out(write) of ACT words
    done : Out(1), level: every word of the ``rows`` queries is written
    stall : Out(1), the input is offered but not taken (never, in the softmax's pattern)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(pack_layout(cfg))),
            "i": In(stream.Signature(softmax_output_layout(cfg))),
            "enable": In(1),
            "act": Out(act_write_signature(cfg)),
            "done": Out(1), "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, L = cfg.array_cols, cfg.softmax_lanes
        word = data.ArrayLayout(unsigned(8), C)
        bufs = [[Signal(word, name=f"buf{b}_q{j}") for j in range(L)] for b in range(BLOCKS)]
        full = Array([Signal(name=f"full{b}") for b in range(BLOCKS)])
        base = Array([Signal(WORD_ADDR_BITS, name=f"base{b}") for b in range(BLOCKS)])
        count = Array([Signal(range(L + 1), name=f"count{b}") for b in range(BLOCKS)])
        final = Array([Signal(name=f"final{b}") for b in range(BLOCKS)])

        job = Signal.like(self.cmd.payload)
        fill = Signal(range(BLOCKS))          # buffer being filled
        col = Signal(range(C))                # its next byte
        w = Signal(WORD_ADDR_BITS)            # the block's word within a row
        group_base = Signal(WORD_ADDR_BITS)   # d_addr + g·L·d_stride
        rows_left = Signal(TOKEN_BITS + 1)    # queries from this group on
        drain = Signal(range(BLOCKS))         # buffer being written out
        row = Signal(range(L))
        addr = Signal(WORD_ADDR_BITS)
        done = Signal()
        m.d.comb += [self.cmd.ready.eq(1), self.done.eq(done | (job.rows == 0))]

        # ---- fill: a beat's L bytes into byte ``col`` of the block's L words
        beat = self.i.payload
        m.d.comb += [self.i.ready.eq(self.enable & ~full[fill]),
                     self.stall.eq(self.i.valid & self.enable & full[fill])]
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            for b in range(BLOCKS):
                for c in range(C):
                    with m.If((fill == b) & (col == c)):
                        m.d.sync += [bufs[b][j][c].eq(beat.p[j]) for j in range(L)]
            complete = (col == C - 1) | beat.last
            with m.If(complete):
                m.d.sync += [full[fill].eq(1), base[fill].eq(group_base + w),
                             count[fill].eq(Mux(rows_left < L, rows_left, L)),
                             final[fill].eq(beat.last & (rows_left <= L)),
                             fill.eq(Mux(fill == BLOCKS - 1, 0, fill + 1)), col.eq(0)]
                with m.If(beat.last):
                    m.d.sync += [w.eq(0), group_base.eq(group_base + L * job.d_stride),
                                 rows_left.eq(rows_left - L)]
                with m.Else():
                    m.d.sync += w.eq(w + 1)
            with m.Else():
                m.d.sync += col.eq(col + 1)

        # ---- drain: the oldest complete buffer, one query's word a cycle
        words = Array([Array(bufs[b])[row] for b in range(BLOCKS)])
        first = Signal()                       # the first word of this buffer
        m.d.comb += first.eq(row == 0)
        with m.If(full[drain]):
            m.d.comb += [self.act.en.eq(1), self.act.addr.eq(Mux(first, base[drain], addr)),
                         self.act.data.eq(words[drain])]
            m.d.sync += [addr.eq(Mux(first, base[drain], addr) + job.d_stride), row.eq(row + 1)]
            with m.If(row == count[drain] - 1):
                m.d.sync += [full[drain].eq(0), row.eq(0),
                             drain.eq(Mux(drain == BLOCKS - 1, 0, drain + 1))]
                with m.If(final[drain]):
                    m.d.sync += done.eq(1)

        with m.If(self.cmd.valid):           # last: a new instruction restarts everything
            p = self.cmd.payload
            m.d.sync += [job.eq(p), fill.eq(0), col.eq(0), w.eq(0), group_base.eq(p.d_addr),
                         rows_left.eq(p.rows), drain.eq(0), row.eq(0), done.eq(0),
                         *[full[b].eq(0) for b in range(BLOCKS)]]
        return m
