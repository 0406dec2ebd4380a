"""Row gather: copy an expert's token queue out of the token memory into the A banks."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowGather", "gather_cycles"]


def gather_cycles(m: int, k: int) -> int:
    """Cycles from the command to ``done``: one byte per cycle plus the read latency."""
    return m * k + 2


class RowGather(wiring.Component):
    """Builds the A operand of an expert's matmul from its token queue.

    For queue entry ``m`` (token ``t``) and ``k < K`` it reads byte ``t*K + k`` of the token memory
    (row-major, one byte per word, one-cycle read latency) and writes it as A[m][k]: bank ``m % R``,
    address ``(m // R) * K + k`` through the tiler's ``a_load`` stream. One byte per cycle.

    Parameters
    ----------
    rows : int
        The mesh's R (number of A banks).
    max_m, max_k, max_tokens : int
        Largest queue, row length, and token count.

    Attributes
    ----------
    cmd : In(stream) of ``{m, k}``; then ``queue`` supplies ``m`` token indices
    queue : Memory-like read interface: ``queue_addr`` → ``queue_token`` (combinational)
    mem_addr, mem_en : Out, the token memory read port; ``mem_data`` In, one cycle later
    a_load : Out(stream) to :class:`rtl.tiler.TiledMatmul` ``a_load``
    busy : Out(1)
    """

    def __init__(self, rows: int, max_m: int, max_k: int, max_tokens: int, a_depth: int):
        if min(rows, max_m, max_k, max_tokens, a_depth) < 1:
            raise ValueError("RowGather parameters must be positive")
        self.rows, self.max_m, self.max_k, self.max_tokens = rows, max_m, max_k, max_tokens
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({
                "m": unsigned(max_m.bit_length()), "k": unsigned(max_k.bit_length())}))),
            "queue_addr": Out(range(max_m)),
            "queue_token": In(range(max_tokens)),
            "mem_addr": Out(range(max_tokens * max_k)),
            "mem_en": Out(1),
            "mem_data": In(8),
            "a_load": Out(stream.Signature(data.StructLayout({
                "bank": unsigned(max(1, (rows - 1).bit_length())),
                "addr": unsigned(max(1, (a_depth - 1).bit_length())),
                "value": unsigned(8)}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R = self.rows
        m_len = Signal.like(self.cmd.payload.m)
        k_len = Signal.like(self.cmd.payload.k)
        row = Signal(range(self.max_m + 1))
        col = Signal(range(self.max_k + 1))
        bank = Signal(range(R))
        row_base = Signal(range(self.max_m * self.max_k + 1))   # (row // R) * K
        running = Signal()
        # The write happens one cycle after the read (memory latency).
        w_valid = Signal()
        w_bank = Signal.like(bank)
        w_addr = Signal.like(row_base)
        m.d.comb += [
            self.cmd.ready.eq(~running & ~w_valid),
            self.queue_addr.eq(row),
            self.mem_addr.eq(self.queue_token * k_len + col),
            self.mem_en.eq(running),
            self.a_load.valid.eq(w_valid),
            self.a_load.payload.bank.eq(w_bank),
            self.a_load.payload.addr.eq(w_addr),
            self.a_load.payload.value.eq(self.mem_data),
            self.busy.eq(running | w_valid),
        ]
        m.d.sync += [w_valid.eq(running), w_bank.eq(bank), w_addr.eq(row_base + col)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [m_len.eq(self.cmd.payload.m), k_len.eq(self.cmd.payload.k), row.eq(0),
                         col.eq(0), bank.eq(0), row_base.eq(0),
                         running.eq((self.cmd.payload.m != 0) & (self.cmd.payload.k != 0))]
        with m.Elif(running):
            with m.If(col + 1 < k_len):
                m.d.sync += col.eq(col + 1)
            with m.Else():
                m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.If(bank == R - 1):
                    m.d.sync += [bank.eq(0), row_base.eq(row_base + k_len)]
                with m.Else():
                    m.d.sync += bank.eq(bank + 1)
                with m.If(row + 1 == m_len):
                    m.d.sync += running.eq(0)
        return m
