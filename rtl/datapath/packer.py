"""The byte packer: LayerNorm / softmax output bytes into ACT words.

The units emit ``n`` bytes per cycle (LayerNorm ``ln_lanes``, softmax one) with ``last`` on a
row's final bytes; the packer collects them into ``C``-byte words and writes each full word (or a
row's last, partial one) to ACT at ``d_addr + r·d_stride + w``. Bytes of a partial word past the
row's end keep what the word register held. It always takes its input; a word is written in the
cycle its last byte arrives.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig, STRIDE_BITS, TOKEN_BITS, WORD_ADDR_BITS
from rtl.datapath.scratchpad import act_write_signature

__all__ = ["Packer", "pack_layout", "pack_input_layout"]


def pack_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"d_addr": unsigned(WORD_ADDR_BITS), "d_stride": unsigned(STRIDE_BITS),
                              "rows": unsigned(TOKEN_BITS)})


def pack_input_layout(lanes: int) -> data.StructLayout:
    return data.StructLayout({"bytes": data.ArrayLayout(unsigned(8), lanes),
                              "n": range(lanes + 1), "last": 1})


class Packer(wiring.Component):
    """Bytes in, ACT words out.

    Parameters
    ----------
    cfg : AccelConfig
    lanes : int
        Most bytes per input beat.

    Attributes
    ----------
    cmd : In(stream) of :func:`pack_layout` (always accepted: it restarts the row and word
        counters)
    i : In(stream) of :func:`pack_input_layout` (always ready)
    enable : In(1), the input belongs to the current instruction
    act : Out(write) of ACT words
    done : Out(1), level: ``rows`` rows are written
    """

    def __init__(self, cfg: AccelConfig, lanes: int):
        if not 1 <= lanes <= cfg.array_cols:
            raise ValueError(f"lanes must be in 1..array_cols, got {lanes}")
        self.cfg, self.lanes = cfg, lanes
        super().__init__({
            "cmd": In(stream.Signature(pack_layout(cfg))),
            "i": In(stream.Signature(pack_input_layout(lanes))),
            "enable": In(1),
            "act": Out(act_write_signature(cfg)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = self.cfg.array_cols
        job = Signal.like(self.cmd.payload)
        word = Signal(data.ArrayLayout(unsigned(8), C))
        pos = Signal(range(C + 1))
        w = Signal(16)
        row = Signal(12)
        row_base = Signal(24)
        m.d.comb += [self.cmd.ready.eq(1), self.i.ready.eq(1), self.done.eq(row == job.rows)]
        with m.If(self.cmd.valid):
            m.d.sync += [job.eq(self.cmd.payload), pos.eq(0), w.eq(0), row.eq(0),
                         row_base.eq(0)]
        beat = self.i.payload
        merged = Signal.like(word)
        m.d.comb += merged.eq(word)
        for j in range(C):
            for lane in range(self.lanes):
                with m.If((pos + lane == j) & (lane < beat.n)):
                    m.d.comb += merged[j].eq(beat.bytes[lane])
        full = (pos + beat.n >= C) | beat.last
        with m.If(self.i.valid & self.enable):
            m.d.sync += word.eq(merged)
            with m.If(full):
                m.d.comb += [self.act.en.eq(1), self.act.addr.eq(job.d_addr + row_base + w),
                             self.act.data.eq(merged)]
                m.d.sync += [pos.eq(0), w.eq(w + 1)]
                with m.If(beat.last):
                    m.d.sync += [w.eq(0), row.eq(row + 1), row_base.eq(row_base + job.d_stride)]
            with m.Else():
                m.d.sync += pos.eq(pos + beat.n)
        return m
