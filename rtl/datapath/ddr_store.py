"""The DDR store: int16 result rows of a matmul (the task heads) to DDR through an AXI4 writer.

The store's descriptor (the whole result: ``m`` rows × ``ceil(n / C)`` column tiles × ``2C``
bytes, in emission order from ``ddr_addr``) goes out when it starts; each row's ``C`` int16
values wait in a FIFO of ``store_fifo_rows`` rows and leave as ``2C / axi_bytes`` AXI words, so
a tile's burst of rows (one a cycle) does not hold the lanes and the array while the W channel
takes ``2C / axi_bytes`` cycles a row; only a full FIFO does. ``done`` once every beat is written and
answered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.bus.axi import axi4_from_config
from rtl.bus.dma import DMAWriter
from rtl.config import AccelConfig

__all__ = ["DdrStore", "store_layout"]


def store_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"ddr_addr": unsigned(cfg.axi_addr_width),
                              "length": unsigned(32), "beats": unsigned(32)})


class DdrStore(wiring.Component):
    """Lanes rows → AXI4 writes.

    Attributes
    ----------
    cmd : In(stream) of :func:`store_layout` (``length`` bytes, ``beats`` AXI words), accepted
        when idle
    i : In(stream) of :func:`rtl.array.lanes.lane_out_layout`
    axi : Out(AXI4 manager), write channels
    done : Out(1), level: the last started store is complete
    error : Out(1), a write was answered with an error (sticky until reset)
    busy : Out(1), the writer has work
    writer : :class:`rtl.bus.dma.DMAWriter`
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.writer = DMAWriter(cfg)
        super().__init__({
            "cmd": In(stream.Signature(store_layout(cfg))),
            "i": In(stream.Signature(lane_out_layout(cfg.array_cols, cfg.token_bits,
                                                     cfg.tn_bits))),
            "axi": Out(axi4_from_config(cfg)),
            "done": Out(1), "error": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, ratio = cfg.array_cols, cfg.store_ratio
        m.submodules.writer = writer = self.writer
        wiring.connect(m, writer.axi, wiring.flipped(self.axi))
        m.d.comb += [self.error.eq(writer.error), self.busy.eq(writer.busy)]
        job = Signal.like(self.cmd.payload)
        active = Signal()             # a store was started (its descriptor goes out once)
        sub = Signal(range(max(2, ratio)))
        sent = Signal()               # the descriptor was taken
        left = Signal(32)             # AXI words still to send
        m.d.comb += self.cmd.ready.eq(1)
        with m.If(self.cmd.valid):
            m.d.sync += [job.eq(self.cmd.payload), active.eq(1), sub.eq(0), sent.eq(0),
                         left.eq(self.cmd.payload.beats)]
        m.d.comb += [writer.desc.valid.eq(active & ~sent),
                     writer.desc.payload.addr.eq(job.ddr_addr),
                     writer.desc.payload.length.eq(job.length)]
        with m.If(writer.desc.valid & writer.desc.ready):
            m.d.sync += sent.eq(1)
        rows = m.submodules.rows = fifo.SyncFIFOBuffered(width=16 * C,
                                                         depth=cfg.store_fifo_rows)
        m.d.comb += [rows.w_data.eq(Cat(*(self.i.payload.values[j][:16] for j in range(C)))),
                     rows.w_en.eq(self.i.valid & rows.w_rdy), self.i.ready.eq(rows.w_rdy)]
        packed = rows.r_data
        m.d.comb += [writer.data.valid.eq(rows.r_rdy),
                     writer.data.payload.data.eq(packed.word_select(sub, 8 * cfg.axi_bytes)
                                                 if ratio > 1 else packed),
                     writer.data.payload.keep.eq((1 << cfg.axi_bytes) - 1),
                     writer.data.payload.last.eq(left == 1),
                     rows.r_en.eq(writer.data.ready & (sub == ratio - 1))]
        with m.If(writer.data.valid & writer.data.ready):
            m.d.sync += [sub.eq(Mux(sub == ratio - 1, 0, sub + 1)), left.eq(left - 1)]
        m.d.comb += self.done.eq(sent & (left == 0) & ~writer.busy)
        return m
