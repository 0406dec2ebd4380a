"""Reads over two AXI4 ports at once: one transfer split into chunks read alternately by two DMA
read engines, merged back in order, two bus words per output word.

A transfer ``(addr, length)`` (``length`` a multiple of two bus words) is cut into chunks of
:data:`CHUNK_BURSTS` maximal bursts; chunk ``k`` (counted over all transfers) goes to reader
``k mod 2``, each reader on its own port (``axi0``, ``axi1``: on the ZCU104 two HP ports that do
not share a DDR controller port). Each reader's packed words are paired into double words and
queued per reader; the merger takes chunks from the two queues in the same alternating order,
so the output is the transfer's bytes in order, ``2 × axi_bytes`` a word, at up to one word a
cycle — twice one port's rate.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import axi4_from_config
from rtl.bus.dma import LENGTH_WIDTH, DMAReader, descriptor_layout
from rtl.config import AccelConfig

__all__ = ["SplitReader", "CHUNK_BURSTS", "chunk_bytes", "split_chunks"]

CHUNK_BURSTS = 2


def chunk_bytes(cfg: AccelConfig) -> int:
    """Bytes per chunk (two maximal bursts)."""
    return CHUNK_BURSTS * cfg.max_burst_beats * cfg.axi_bytes


def split_chunks(cfg: AccelConfig, addr: int, length: int, first_port: int = 0):
    """Reference of the split: ``[(port, addr, length), …]`` for one transfer whose first chunk
    goes to ``first_port``."""
    size, out, port = chunk_bytes(cfg), [], first_port
    for off in range(0, length, size):
        out.append((port, addr + off, min(size, length - off)))
        port ^= 1
    return out


class SplitReader(wiring.Component):
    """Two DMA read engines behind one descriptor stream.

    Parameters
    ----------
    cfg : AccelConfig
        ``axi_masters`` must be 2.

    Attributes
    ----------
    desc : In(stream of :func:`rtl.bus.dma.descriptor_layout`); the length must be a multiple
        of ``2 × axi_bytes`` (the loader's words are)
    data : Out(stream of ``{data}``, ``2 × axi_data_width`` bits): the transfer's bytes in order
    axi0, axi1 : Out(AXI4 manager), read channels only (the write channels are tied idle)
    busy : Out(1), a chunk is being split, read or merged
    error : Out(1), either engine latched a non-OKAY read response (sticky until
        ``clear_error``)
    clear_error : In(1)
    beats : Out(range(3)), bus words of the output this cycle (0 or 2)

    Raises
    ------
    ValueError
        ``cfg.axi_masters`` is not 2.
    """

    def __init__(self, cfg: AccelConfig):
        if cfg.axi_masters != 2:
            raise ValueError(f"SplitReader needs axi_masters == 2, got {cfg.axi_masters}")
        self.cfg = cfg
        self.readers = [DMAReader(cfg), DMAReader(cfg)]
        w = 2 * cfg.axi_data_width
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout(cfg))),
            "data": Out(stream.Signature(unsigned(w))),
            "axi0": Out(axi4_from_config(cfg)), "axi1": Out(axi4_from_config(cfg)),
            "busy": Out(1), "error": Out(1), "clear_error": In(1), "beats": Out(range(3)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        size = chunk_bytes(cfg)
        pairs = size // (2 * cfg.axi_bytes)
        queues, waiting = [], []
        for i, (rd, port) in enumerate(zip(self.readers, (self.axi0, self.axi1))):
            m.submodules[f"reader{i}"] = rd
            wiring.connect(m, rd.axi, wiring.flipped(port))
            m.d.comb += rd.clear_error.eq(self.clear_error)
            q, odd = self._pairs(m, rd, i, 2 * pairs)
            queues.append(q)
            waiting.append(odd)
        chunking = self._split(m, size)
        turn = Signal()                       # the queue whose chunk is next on ``data``
        q = queues
        head_last = Mux(turn, q[1].r_data[-1], q[0].r_data[-1])
        m.d.comb += [self.data.valid.eq(Mux(turn, q[1].r_rdy, q[0].r_rdy)),
                     self.data.payload.eq(Mux(turn, q[1].r_data, q[0].r_data)[:-1]),
                     q[0].r_en.eq(~turn & self.data.ready), q[1].r_en.eq(turn & self.data.ready)]
        fire = self.data.valid & self.data.ready
        with m.If(fire & head_last):
            m.d.sync += turn.eq(~turn)
        m.d.comb += [
            self.beats.eq(Mux(fire, 2, 0)),
            self.error.eq(self.readers[0].error | self.readers[1].error),
            self.busy.eq(chunking | self.readers[0].busy | self.readers[1].busy
                         | q[0].r_rdy | q[1].r_rdy | waiting[0] | waiting[1]),
        ]
        return m

    def _split(self, m, size):
        """Chunks of the accepted transfer to the readers, alternating over all transfers."""
        addr = Signal(self.cfg.axi_addr_width)
        left = Signal(LENGTH_WIDTH)
        port = Signal()
        active = Signal()
        m.d.comb += self.desc.ready.eq(~active)
        with m.If(self.desc.valid & ~active):
            m.d.sync += [addr.eq(self.desc.payload.addr), left.eq(self.desc.payload.length),
                         active.eq(self.desc.payload.length != 0)]
        n = Mux(left > size, size, left)
        for i, rd in enumerate(self.readers):
            m.d.comb += [rd.desc.valid.eq(active & (port == i)), rd.desc.payload.addr.eq(addr),
                         rd.desc.payload.length.eq(n)]
        taken = Mux(port, self.readers[1].desc.ready, self.readers[0].desc.ready)
        with m.If(active & taken):
            m.d.sync += [addr.eq(addr + n), left.eq(left - n), port.eq(~port)]
            with m.If(left <= size):
                m.d.sync += active.eq(0)
        return active

    def _pairs(self, m, rd, i, depth):
        """Reader ``i``'s words paired (first word low) into its queue, the chunk's last pair
        marked."""
        w = self.cfg.axi_data_width
        q = m.submodules[f"queue{i}"] = fifo.SyncFIFOBuffered(width=2 * w + 1, depth=depth)
        low = Signal(w, name=f"low{i}")
        odd = Signal(name=f"odd{i}")          # a first word waits for its partner
        m.d.comb += rd.data.ready.eq(~odd | q.w_rdy)
        with m.If(rd.data.valid & rd.data.ready):
            m.d.sync += odd.eq(~odd)
            with m.If(~odd):
                m.d.sync += low.eq(rd.data.payload.data)
        m.d.comb += [q.w_en.eq(rd.data.valid & odd & q.w_rdy),
                     q.w_data.eq(Cat(low, rd.data.payload.data, rd.data.payload.last))]
        return q, odd
