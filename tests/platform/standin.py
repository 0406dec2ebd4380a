"""A stand-in for ``rtl.accelerator.Accelerator`` with the same top-level interface.

Used by the platform tests while (or where) the real accelerator is not available: the register
block :class:`rtl.control.csr.CSR` on ``csr`` and one :class:`rtl.bus.dma.DMAReader` per AXI4 master. Writing
``CONTROL.start`` reads ``TOKEN_BUF_BYTES`` bytes from ``DATA_BASE`` on every master; the run is
``done`` when the last word has arrived, which raises ``irq`` if enabled.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import axi4_from_config, axi4_lite_from_config
from rtl.config import AccelConfig
from rtl.control.csr import CSR
from rtl.bus.dma import DMAReader

__all__ = ["StandInAccelerator"]


class StandInAccelerator(wiring.Component):
    """``csr``, ``m_axi0`` (… ``m_axi<n-1>``), ``irq`` like the real accelerator."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        members = {"csr": In(axi4_lite_from_config(cfg)), "irq": Out(1)}
        members.update({f"m_axi{i}": Out(axi4_from_config(cfg)) for i in range(cfg.axi_masters)})
        super().__init__(members)

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        csr = m.submodules.csr = CSR(cfg)
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)
        m.d.comb += self.irq.eq(csr.irq)
        busy = Signal(cfg.axi_masters)
        lasts = []
        for i in range(cfg.axi_masters):
            dma = m.submodules[f"dma{i}"] = DMAReader(cfg)
            wiring.connect(m, dma.axi, wiring.flipped(getattr(self, f"m_axi{i}")))
            m.d.comb += [
                dma.desc.valid.eq(csr.control_start),
                dma.desc.payload.addr.eq(Cat(csr.data_base_lo_addr, csr.data_base_hi_addr)),
                dma.desc.payload.length.eq(cfg.token_buffer_bytes),
                dma.data.ready.eq(1),
                busy[i].eq(dma.busy),
            ]
            lasts.append(dma.data.valid & dma.data.payload.last)
        m.d.comb += [csr.status_busy.eq(busy.any()), csr.status_done_set.eq(Cat(*lasts).any()),
                     csr.perf_cycles_inc.eq(1), csr.perf_busy_cycles_inc.eq(busy.any())]
        return m
