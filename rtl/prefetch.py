"""Ping-pong weight prefetcher: two on-chip buffers filled by the read DMA.

While the consumer (the matrix engine) reads one buffer, the next matrix — the next expert's
weights — streams into the other. Loads are requested in order on ``request``; buffer ``i`` is
filled, then raises ``ready[i]`` until the consumer pulses ``release[i]``. A load into a buffer
starts in the same cycle that buffer is released, so DDR never idles while a request is queued and
a buffer is free. The consumer uses the buffers in the same order (0, 1, 0, …).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from .config import AccelConfig
from .dma import LENGTH_WIDTH, DMAReader, descriptor_layout
from .axi import axi4_from_config

__all__ = ["PingPongPrefetcher"]


class PingPongPrefetcher(wiring.Component):
    """Two weight buffers of ``cfg.weight_buffer_bytes`` each behind one :class:`DMAReader`.

    Parameters
    ----------
    cfg : AccelConfig
        ``weight_buffer_bytes`` must be a multiple of the AXI beat size.

    Attributes
    ----------
    request : In(stream of ``{addr, length}``) — one matrix per request; a request longer than a
        buffer is dropped and flags ``too_long``
    axi : Out(AXI4 manager) — the DMA's port
    ready : Out(2) — buffer ``i`` holds a complete matrix
    length : Out(ArrayLayout(LENGTH_WIDTH, 2)) — byte length of each buffer's matrix
    release : In(2) — pulse to hand buffer ``i`` back
    rd_buf, rd_addr : In — read port (word address), ``rd_data`` one cycle later
    want : In(1) — the consumer is waiting for its next buffer
    stall_cycles : Out(32) — cycles with ``want`` high and that buffer not ready
    stall : Out(1) — this cycle is a stall cycle (for the CSR counter)
    error, too_long : Out(1) — DMA read error (sticky), oversize request (sticky)
    busy : Out(1) — a load is in progress
    """

    def __init__(self, cfg: AccelConfig):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"expected an AccelConfig, not {cfg!r}")
        if cfg.weight_buffer_bytes % cfg.axi_bytes:
            raise ValueError(f"weight_buffer_bytes ({cfg.weight_buffer_bytes}) must be a multiple"
                             f" of the AXI beat ({cfg.axi_bytes} bytes)")
        self.cfg = cfg
        self.depth = cfg.weight_buffer_bytes // cfg.axi_bytes
        super().__init__({
            "request": In(stream.Signature(descriptor_layout(cfg))),
            "axi": Out(axi4_from_config(cfg)),
            "ready": Out(2),
            "length": Out(data.ArrayLayout(unsigned(LENGTH_WIDTH), 2)),
            "release": In(2),
            "rd_buf": In(1),
            "rd_addr": In(range(self.depth)),
            "rd_data": Out(cfg.axi_data_width),
            "want": In(1),
            "stall_cycles": Out(32),
            "stall": Out(1),
            "error": Out(1),
            "too_long": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        dma = m.submodules.dma = DMAReader(cfg)
        connect(m, wiring.flipped(self.axi), dma.axi)
        bufs = [memory.Memory(shape=unsigned(cfg.axi_data_width), depth=self.depth, init=[])
                for _ in range(2)]
        m.submodules.buf0, m.submodules.buf1 = bufs
        wports = [b.write_port() for b in bufs]
        rports = [b.read_port() for b in bufs]

        fill = Signal()            # buffer the next/current load goes to
        filling = Signal()
        wptr = Signal(range(self.depth + 1))
        full = Signal(2)
        # A released buffer is free in the same cycle.
        free = Signal()
        m.d.comb += free.eq(~(full & ~self.release).bit_select(fill, 1) & ~filling)
        req = self.request
        oversize = Signal()
        m.d.comb += oversize.eq(req.payload.length > cfg.weight_buffer_bytes)
        m.d.comb += [
            dma.desc.payload.eq(req.payload),
            dma.desc.valid.eq(req.valid & free & ~oversize),
            req.ready.eq((dma.desc.ready & free) | oversize),
        ]
        with m.If(req.valid & oversize):
            m.d.sync += self.too_long.eq(1)
        with m.If(dma.desc.valid & dma.desc.ready & (req.payload.length != 0)):
            m.d.sync += [filling.eq(1), wptr.eq(0), self.length[fill].eq(req.payload.length)]

        # DMA words → buffer ``fill``.
        m.d.comb += dma.data.ready.eq(filling)
        for i, wp in enumerate(wports):
            m.d.comb += [wp.addr.eq(wptr), wp.data.eq(dma.data.payload.data),
                         wp.en.eq(dma.data.valid & filling & (fill == i))]
        set_full = Signal(2)
        with m.If(dma.data.valid & dma.data.ready):
            m.d.sync += wptr.eq(wptr + 1)
            with m.If(dma.data.payload.last):
                m.d.sync += [filling.eq(0), fill.eq(~fill)]
                m.d.comb += set_full.eq(Mux(fill, 0b10, 0b01))
        m.d.sync += full.eq((full & ~self.release) | set_full)
        m.d.comb += self.ready.eq(full)

        # Read port.
        rsel = Signal()
        m.d.sync += rsel.eq(self.rd_buf)
        for rp in rports:
            m.d.comb += rp.addr.eq(self.rd_addr)
        m.d.comb += self.rd_data.eq(Mux(rsel, rports[1].data, rports[0].data))

        # Stall accounting: the consumer takes buffers in order 0, 1, 0, …
        cons = Signal()
        with m.If(self.release.bit_select(cons, 1)):
            m.d.sync += cons.eq(~cons)
        m.d.comb += self.stall.eq(self.want & ~full.bit_select(cons, 1))
        with m.If(self.stall):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        m.d.comb += [self.error.eq(dma.error), self.busy.eq(filling | dma.busy)]
        return m
