"""AXI4 DMA engines: a read engine (descriptors in, packed byte stream out) and a write engine
(descriptors and a packed stream in, bursts with edge strobes out).

Both split a transfer of any byte address and length into full-width INCR bursts of at most
``cfg.max_burst_beats`` beats that never cross a 4 KB boundary, and latch the first non-OKAY
RRESP/BRESP into ``error``/``error_resp`` until ``clear_error``. Data streams are *packed*: word
``k`` of a transfer holds bytes ``8k … 8k+B-1`` of it in lanes ``0 … B-1`` whatever the address
alignment (a barrel shift over two beats does the realignment), with ``keep`` marking the valid
low lanes of the final word and ``last`` on the final word of each descriptor.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.bus.axi import AXI_4K, Burst, Resp, axi4_from_config, size_for_width
from rtl.config import AccelConfig

__all__ = ["DMAReader", "DMAWriter", "descriptor_layout", "word_layout", "LENGTH_WIDTH",
           "split_bursts"]

LENGTH_WIDTH = 32
"""Width of a descriptor's byte length (transfers up to 4 GiB - 1)."""


def descriptor_layout(cfg: AccelConfig) -> data.StructLayout:
    """``{addr, length}``: byte address and byte length of one transfer (length 0: no-op)."""
    return data.StructLayout({"addr": unsigned(cfg.axi_addr_width),
                              "length": unsigned(LENGTH_WIDTH)})


def word_layout(cfg: AccelConfig) -> data.StructLayout:
    """One packed data word: ``data``, ``keep`` (valid low byte lanes), ``last``."""
    return data.StructLayout({"data": unsigned(cfg.axi_data_width),
                              "keep": unsigned(cfg.axi_bytes), "last": unsigned(1)})


def split_bursts(cfg: AccelConfig, addr: int, length: int) -> list[tuple[int, int]]:
    """Reference of the engines' burst split: ``[(aligned address, beats), …]``."""
    nb = cfg.axi_bytes
    if length == 0:
        return []
    cur, last = addr & ~(nb - 1), (addr + length - 1) & ~(nb - 1)
    out = []
    while cur <= last:
        n = min((last - cur) // nb + 1, (AXI_4K - cur % AXI_4K) // nb, cfg.max_burst_beats)
        out.append((cur, n))
        cur += n * nb
    return out


def _validate(cfg: AccelConfig) -> None:
    if not isinstance(cfg, AccelConfig):
        raise TypeError(f"expected an AccelConfig, not {cfg!r}")
    if cfg.max_burst_beats * cfg.axi_bytes > AXI_4K:
        raise ValueError("a maximal burst would exceed 4 KB")


class _BurstSplitter:
    """Shared address arithmetic: the next burst's beat count from ``cur`` and ``last``, one
    register stage at a time (no cycle has two wide adders or compares in series).

    The caller loads ``cur``/``last`` (aligned first and last word addresses) with ``start``
    high; two cycles later ``n`` holds the first burst's beats and ``ready`` is high. When the
    caller issues the burst (``fire``, only while ``ready``), ``cur`` and the beats ``left``
    advance, and ``n`` of the next burst is ready one cycle later (so bursts issue at most every
    second cycle; a burst moves up to ``max_burst_beats`` words). ``final``: ``n`` is the last
    burst.
    """

    def __init__(self, m: Module, cfg: AccelConfig, cur: Signal, last: Signal, prefix: str):
        lg = size_for_width(cfg.axi_data_width)
        self.start = Signal(name=f"{prefix}_start")
        self.fire = Signal(name=f"{prefix}_fire")
        self.ready = Signal(name=f"{prefix}_ready")
        self.left = Signal(cfg.axi_addr_width - lg + 1, name=f"{prefix}_beats_left")
        self.n = Signal(range(cfg.max_burst_beats + 1), name=f"{prefix}_beats")
        self.final = Signal(name=f"{prefix}_final")
        to4k = Signal(range(AXI_4K // cfg.axi_bytes + 1), name=f"{prefix}_to4k")
        phase = Signal(range(3), name=f"{prefix}_phase")     # 1: count the beats; 2: size n
        m.d.comb += [to4k.eq((AXI_4K - cur[:12]) >> lg), self.final.eq(self.n == self.left)]
        with m.If(self.start):
            m.d.sync += [phase.eq(1), self.ready.eq(0)]
        with m.Elif(phase == 1):
            m.d.sync += [self.left.eq((last >> lg) - (cur >> lg) + 1), phase.eq(2)]
        with m.Elif(phase == 2):
            m.d.sync += [self.ready.eq(1), phase.eq(0)]
            with m.If((self.left <= cfg.max_burst_beats) & (self.left <= to4k)):
                m.d.sync += self.n.eq(self.left)
            with m.Elif(to4k <= cfg.max_burst_beats):
                m.d.sync += self.n.eq(to4k)
            with m.Else():
                m.d.sync += self.n.eq(cfg.max_burst_beats)
        with m.Elif(self.fire):
            m.d.sync += [cur.eq(cur + (self.n << lg)), self.left.eq(self.left - self.n),
                         self.ready.eq(0), phase.eq(Mux(self.final, 0, 2))]


def _keep(m: Module, nbytes: int, left: Signal, name: str) -> Signal:
    """Byte-lane mask of ``min(left, nbytes)`` low lanes."""
    keep = Signal(nbytes, name=name)
    with m.If(left >= nbytes):
        m.d.comb += keep.eq((1 << nbytes) - 1)
    with m.Else():
        m.d.comb += keep.eq((C(1, nbytes + 1) << left[:ceil_log2(nbytes) or 1]) - 1)
    return keep


class DMAReader(wiring.Component):
    """AXI4 read engine with several bursts in flight.

    One fixed ARID is used, so read data returns in order; up to ``cfg.max_outstanding_reads``
    bursts are outstanding. A descriptor is accepted while the previous one's bursts are being
    issued only after those are all issued (one descriptor's bursts at a time), but the data of
    earlier descriptors may still be in flight, so back-to-back descriptors stream without gaps
    beyond one cycle per descriptor.

    Parameters
    ----------
    cfg : AccelConfig
        AXI widths, ``max_burst_beats`` and ``max_outstanding_reads``.

    Attributes
    ----------
    desc : In(stream of :func:`descriptor_layout`)
    data : Out(stream of :func:`word_layout`) — packed words, ``last`` per descriptor
    axi : Out(AXI4 manager); the write channels are tied idle
    busy : Out(1) — a descriptor, a burst or data is still in flight
    error, error_resp : Out — first non-OKAY RRESP (sticky) and its code
    clear_error : In(1)
    beats : Out(1) — one data word left on ``data`` this cycle (for byte counters)
    """

    def __init__(self, cfg: AccelConfig):
        _validate(cfg)
        self.cfg = cfg
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout(cfg))),
            "data": Out(stream.Signature(word_layout(cfg))),
            "axi": Out(axi4_from_config(cfg)),
            "busy": Out(1),
            "error": Out(1),
            "error_resp": Out(2),
            "clear_error": In(1),
            "beats": Out(1),
        })

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        nb, lg, w = cfg.axi_bytes, size_for_width(cfg.axi_data_width), cfg.axi_data_width
        axi = self.axi
        m.d.comb += [axi.aw.valid.eq(0), axi.w.valid.eq(0), axi.b.ready.eq(1)]

        # Descriptors queued for the realigner (alignment offset and length).
        qdepth = max(2, cfg.max_outstanding_reads)
        q = m.submodules.realign_q = fifo.SyncFIFOBuffered(width=lg + LENGTH_WIDTH, depth=qdepth)

        # -- AR issue -------------------------------------------------------------------------
        active = Signal()
        cur = Signal(cfg.axi_addr_width)
        last = Signal(cfg.axi_addr_width)
        outstanding = Signal(range(cfg.max_outstanding_reads + 1))
        split = _BurstSplitter(m, cfg, cur, last, "ar")
        desc = self.desc.payload
        end = Signal(cfg.axi_addr_width + 1)
        m.d.comb += end.eq(desc.addr + desc.length - 1)
        m.d.comb += self.desc.ready.eq(~active & q.w_rdy)
        with m.If(self.desc.valid & self.desc.ready & (desc.length != 0)):
            m.d.sync += [active.eq(1), cur.eq(desc.addr & ~(nb - 1)),
                         last.eq(end[:cfg.axi_addr_width] & ~(nb - 1))]
            m.d.comb += split.start.eq(1)
            m.d.comb += [q.w_en.eq(1), q.w_data.eq(Cat(desc.addr[:lg], desc.length))]

        ar_fire = Signal()
        r_last_fire = Signal()
        m.d.comb += [
            axi.ar.valid.eq(active & split.ready & (outstanding < cfg.max_outstanding_reads)),
            axi.ar.addr.eq(cur), axi.ar.len.eq(split.n - 1), axi.ar.size.eq(lg),
            axi.ar.burst.eq(Burst.INCR), axi.ar.id.eq(0),
            ar_fire.eq(axi.ar.valid & axi.ar.ready),
            r_last_fire.eq(axi.r.valid & axi.r.ready & axi.r.last),
        ]
        m.d.comb += split.fire.eq(ar_fire)
        with m.If(ar_fire):
            with m.If(split.final):
                m.d.sync += active.eq(0)
        m.d.sync += outstanding.eq(outstanding + ar_fire - r_last_fire)

        # -- R realignment ----------------------------------------------------------------------
        loaded = Signal()
        off = Signal(lg)
        out_left = Signal(LENGTH_WIDTH)
        in_left = Signal(LENGTH_WIDTH - lg + 1)
        prev = Signal(w)
        have_prev = Signal()
        m.d.comb += q.r_en.eq(~loaded & q.r_rdy)
        with m.If(q.r_en):
            q_off, q_len = q.r_data[:lg], q.r_data[lg:]
            m.d.sync += [loaded.eq(1), off.eq(q_off), out_left.eq(q_len), have_prev.eq(0),
                         in_left.eq(((q_off + q_len - 1) >> lg) + 1)]

        out = self.data
        keep = _keep(m, nb, out_left, "keep")
        combined = Signal(w)
        m.d.comb += combined.eq(Cat(prev, Mux(in_left == 0, 0, axi.r.data)) >> Cat(C(0, 3), off))
        out_fire = Signal()
        m.d.comb += [out.payload.keep.eq(keep), out.payload.last.eq(out_left <= nb),
                     out_fire.eq(out.valid & out.ready)]
        with m.If(loaded):
            with m.If(off == 0):
                m.d.comb += [out.payload.data.eq(axi.r.data), out.valid.eq(axi.r.valid),
                             axi.r.ready.eq(out.ready)]
            with m.Elif(~have_prev):
                m.d.comb += axi.r.ready.eq(1)
                with m.If(axi.r.valid):
                    m.d.sync += [prev.eq(axi.r.data), have_prev.eq(1), in_left.eq(in_left - 1)]
            with m.Elif(in_left != 0):
                m.d.comb += [out.payload.data.eq(combined), out.valid.eq(axi.r.valid),
                             axi.r.ready.eq(out.ready)]
                with m.If(out_fire):
                    m.d.sync += prev.eq(axi.r.data)
            with m.Else():
                m.d.comb += [out.payload.data.eq(combined), out.valid.eq(1)]
            with m.If(out_fire):
                m.d.sync += out_left.eq(out_left - nb)
                with m.If(in_left != 0):
                    m.d.sync += in_left.eq(in_left - 1)
                with m.If(out_left <= nb):
                    m.d.sync += loaded.eq(0)

        # -- status -------------------------------------------------------------------------------
        with m.If(self.clear_error):
            m.d.sync += self.error.eq(0)
        with m.Elif(axi.r.valid & axi.r.ready & (axi.r.resp != Resp.OKAY) & ~self.error):
            m.d.sync += [self.error.eq(1), self.error_resp.eq(axi.r.resp)]
        m.d.comb += [self.busy.eq(active | loaded | q.r_rdy | (outstanding != 0)),
                     self.beats.eq(out_fire)]
        return m


class DMAWriter(wiring.Component):
    """AXI4 write engine: one descriptor at a time, AW issued ahead of its W data.

    For a descriptor ``(addr, length)`` it consumes ``ceil(length / B)`` packed words from
    ``data`` (``keep``/``last`` are ignored: the descriptor's length rules), shifts them onto the
    bus lanes of ``addr`` and writes them with WSTRB clearing the lanes outside the range on the
    first and last beat. Bursts follow :func:`split_bursts`; every B response is awaited
    (``busy``) and a non-OKAY BRESP is latched in ``error``.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    desc : In(stream of :func:`descriptor_layout`)
    data : In(stream of :func:`word_layout`)
    axi : Out(AXI4 manager); the read channels are tied idle
    busy, error, error_resp : Out; clear_error : In
    """

    def __init__(self, cfg: AccelConfig):
        _validate(cfg)
        self.cfg = cfg
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout(cfg))),
            "data": In(stream.Signature(word_layout(cfg))),
            "axi": Out(axi4_from_config(cfg)),
            "busy": Out(1),
            "error": Out(1),
            "error_resp": Out(2),
            "clear_error": In(1),
        })

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        nb, lg, w = cfg.axi_bytes, size_for_width(cfg.axi_data_width), cfg.axi_data_width
        axi = self.axi
        m.d.comb += [axi.ar.valid.eq(0), axi.r.ready.eq(1), axi.b.ready.eq(1)]
        bq = m.submodules.burst_q = fifo.SyncFIFOBuffered(
            width=ceil_log2(cfg.max_burst_beats + 1), depth=4)

        aw_active = Signal()
        w_active = Signal()
        cur = Signal(cfg.axi_addr_width)
        last = Signal(cfg.axi_addr_width)
        off = Signal(lg)
        end_lane = Signal(lg + 1)          # lanes < end_lane are valid on the last beat
        beats_total = Signal(LENGTH_WIDTH - lg + 1)
        in_left = Signal(LENGTH_WIDTH - lg + 1)
        beat = Signal(LENGTH_WIDTH - lg + 1)
        split = _BurstSplitter(m, cfg, cur, last, "aw")
        desc = self.desc.payload
        end = Signal(cfg.axi_addr_width + 1)
        m.d.comb += [end.eq(desc.addr + desc.length - 1),
                     self.desc.ready.eq(~aw_active & ~w_active)]
        with m.If(self.desc.valid & self.desc.ready & (desc.length != 0)):
            m.d.sync += [
                aw_active.eq(1), w_active.eq(1),
                cur.eq(desc.addr & ~(nb - 1)), last.eq(end[:cfg.axi_addr_width] & ~(nb - 1)),
                off.eq(desc.addr[:lg]), end_lane.eq(end[:lg] + 1),
                beats_total.eq(((desc.addr[:lg] + desc.length - 1) >> lg) + 1),
                in_left.eq(((desc.length - 1) >> lg) + 1), beat.eq(0),
            ]
            m.d.comb += split.start.eq(1)

        # -- AW ---------------------------------------------------------------------------------
        aw_fire = Signal()
        b_out = Signal(range(32))
        m.d.comb += [
            # At most 31 writes wait for B: ``b_out`` cannot overflow and ``busy`` stays exact.
            axi.aw.valid.eq(aw_active & split.ready & bq.w_rdy & (b_out < 31)),
            axi.aw.addr.eq(cur), axi.aw.len.eq(split.n - 1), axi.aw.size.eq(lg),
            axi.aw.burst.eq(Burst.INCR), axi.aw.id.eq(0),
            aw_fire.eq(axi.aw.valid & axi.aw.ready),
            bq.w_en.eq(aw_fire), bq.w_data.eq(split.n),
        ]
        m.d.comb += split.fire.eq(aw_fire)
        with m.If(aw_fire):
            with m.If(split.final):
                m.d.sync += aw_active.eq(0)
        b_fire = Signal()
        m.d.comb += b_fire.eq(axi.b.valid & axi.b.ready)
        m.d.sync += b_out.eq(b_out + aw_fire - b_fire)

        # -- W ----------------------------------------------------------------------------------
        burst_left = Signal(range(cfg.max_burst_beats + 1))
        prev = Signal(w)
        need = Signal()
        w_fire = Signal()
        m.d.comb += bq.r_en.eq((burst_left == 0) & bq.r_rdy)
        with m.If(bq.r_en):
            m.d.sync += burst_left.eq(bq.r_data)
        m.d.comb += need.eq(in_left != 0)
        word = Mux(need, self.data.payload.data, 0)
        shifted = Signal(w)
        m.d.comb += shifted.eq((Cat(prev, word) >> Cat(C(0, 3), nb - off))[:w])
        strb = Signal(nb)
        first_mask = Signal(nb)
        last_mask = Signal(nb)
        m.d.comb += [
            first_mask.eq(Mux(beat == 0, ((1 << nb) - 1) << off, (1 << nb) - 1)),
            last_mask.eq(Mux(beat == beats_total - 1,
                             (C(1, nb + 1) << end_lane) - 1, (1 << nb) - 1)),
            strb.eq(first_mask & last_mask),
            axi.w.valid.eq((burst_left != 0) & (~need | self.data.valid)),
            axi.w.data.eq(shifted), axi.w.strb.eq(strb), axi.w.last.eq(burst_left == 1),
            w_fire.eq(axi.w.valid & axi.w.ready),
            self.data.ready.eq((burst_left != 0) & need & axi.w.ready),
        ]
        with m.If(w_fire):
            m.d.sync += [burst_left.eq(burst_left - 1), beat.eq(beat + 1)]
            with m.If(need):
                m.d.sync += [prev.eq(self.data.payload.data), in_left.eq(in_left - 1)]
            with m.If(beat == beats_total - 1):
                m.d.sync += [w_active.eq(0), prev.eq(0)]

        with m.If(self.clear_error):
            m.d.sync += self.error.eq(0)
        with m.Elif(b_fire & (axi.b.resp != Resp.OKAY) & ~self.error):
            m.d.sync += [self.error.eq(1), self.error_resp.eq(axi.b.resp)]
        m.d.comb += self.busy.eq(aw_active | w_active | (b_out != 0) | (burst_left != 0))
        return m
