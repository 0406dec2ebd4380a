"""Where the accelerator sits in the ZCU104's Zynq UltraScale+ address map: the one source shared
by the board build (``python -m platform.build zcu104`` assigns these addresses in the Vivado block
design) and the firmware running on the board's ARM cores.

Pure Python on purpose (no Amaranth, no NumPy): it is imported on the board.

Layout
------
* **CSR** — the accelerator's AXI4-Lite register block (``docs/registers.md``) is reached from the
  PS through ``M_AXI_HPM0_FPD`` (32-bit data, AXI4 → AXI4-Lite in a SmartConnect) at
  :data:`CSR_BASE`; its span is :func:`csr_span` of the build's ``csr_addr_width`` (2**width
  bytes, at least Vivado's 4 KB minimum segment).
* **DMA** — accelerator master ``m_axi<i>`` is wired to PS slave port :func:`hp_port` ``(i)``
  (``S_AXI_HP0_FPD``, then ``HP1`` …), each at the build's AXI data width (32, 64 or 128 bits),
  and sees :data:`DMA_WINDOW`: the ZCU104's 2 GB of PS DDR4 at the bottom of the address map
  (``DDR_LOW``). Every buffer the accelerator reads or writes (program, weights, images,
  outputs) must lie inside it; the HP ports are not cache coherent, so the firmware flushes or
  invalidates the CPU caches around a run (or uses non-cached buffers).
* **Interrupt** — the accelerator's ``irq`` (level, active high) drives ``pl_ps_irq0[0]``:
  GIC SPI :data:`IRQ_GIC_SPI` (interrupt ID :data:`IRQ_GIC_ID`), device tree
  ``interrupts = <0 89 4>``.

``python -m firmware.addrmap [--csr-addr-width N] [--masters N]`` prints the map as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NamedTuple

__all__ = ["Window", "CSR_BASE", "HPM0_FPD_WINDOW", "MIN_SEGMENT", "PS_DDR", "DMA_WINDOW",
           "HP_PORTS", "HP_DDRC_PORT", "HP_DATA_WIDTHS", "HP_ID_WIDTH", "CSR_PORT", "CSR_DATA_WIDTH",
           "IRQ_PIN", "IRQ_GIC_SPI", "IRQ_GIC_ID", "csr_span", "csr_window", "hp_port",
           "address_map"]


class Window(NamedTuple):
    """A byte address range ``[base, base + size)``."""
    base: int
    size: int

    @property
    def end(self) -> int:
        """First address after the window."""
        return self.base + self.size

    def contains(self, addr: int, length: int = 1) -> bool:
        """Whether ``[addr, addr + length)`` lies inside the window."""
        return self.base <= addr and addr + max(length, 1) <= self.end


MIN_SEGMENT = 0x1000
"""Smallest address segment Vivado assigns (4 KB)."""

CSR_PORT = "M_AXI_HPM0_FPD"
"""PS master port that reaches the accelerator's registers."""

CSR_DATA_WIDTH = 32
"""Data width of :data:`CSR_PORT` in the build (AXI4-Lite registers are 32 bits)."""

HPM0_FPD_WINDOW = Window(0xA000_0000, 0x1000_0000)
"""The 256 MB low aperture of ``M_AXI_HPM0_FPD`` (Zynq UltraScale+ TRM, UG1085)."""

CSR_BASE = 0xA000_0000
"""Byte address of register offset 0 (the ``ID`` register) as seen from the PS."""

PS_DDR = Window(0x0000_0000, 0x8000_0000)
"""The ZCU104's PS DDR4: 2 GB (four 4 Gb x16 components, 64-bit bus) in ``DDR_LOW``."""

DMA_WINDOW = PS_DDR
"""What the accelerator's AXI4 masters can reach (mapped 1:1 onto the HP ports' ``DDR_LOW``)."""

HP_PORTS = ("S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD")
"""PS slave ports for accelerator masters ``m_axi0``, ``m_axi1``, … in that order (both masters
read: the first two never share a DDR controller port, :data:`HP_DDRC_PORT`)."""

HP_DDRC_PORT = {"S_AXI_HP0_FPD": 3, "S_AXI_HP1_FPD": 4, "S_AXI_HP2_FPD": 4,
                "S_AXI_HP3_FPD": 5}
"""The PS DDR controller's AXI port each HP port reaches (UG1085, "PS-PL AXI Interfaces": HP1
and HP2 share one, so two reading masters must not be that pair)."""

HP_DATA_WIDTHS = (32, 64, 128)
"""Data widths an HP port can be configured to."""

HP_ID_WIDTH = 6
"""AXI ID bits an HP port accepts from the PL."""

IRQ_PIN = "pl_ps_irq0[0]"
IRQ_GIC_SPI = 89
"""GIC shared peripheral interrupt number of ``pl_ps_irq0[0]`` (device tree ``<0 89 4>``)."""
IRQ_GIC_ID = IRQ_GIC_SPI + 32
"""GIC interrupt ID of ``pl_ps_irq0[0]`` (121)."""


def csr_span(csr_addr_width: int) -> int:
    """Bytes of address space given to the register block of a ``csr_addr_width``-bit CSR port."""
    if not 2 <= csr_addr_width <= 28:
        raise ValueError(f"csr_addr_width must be in 2..28 to fit the HPM0 window, "
                         f"not {csr_addr_width}")
    return max(MIN_SEGMENT, 1 << csr_addr_width)


def csr_window(csr_addr_width: int) -> Window:
    """The registers' window: :data:`CSR_BASE` and :func:`csr_span`."""
    window = Window(CSR_BASE, csr_span(csr_addr_width))
    if CSR_BASE % window.size or not HPM0_FPD_WINDOW.contains(window.base, window.size):
        raise ValueError(f"CSR window {window} is not aligned inside {HPM0_FPD_WINDOW}")
    return window


def hp_port(master: int) -> str:
    """PS slave port of accelerator master ``m_axi<master>``."""
    if not 0 <= master < len(HP_PORTS):
        raise ValueError(f"the PS has {len(HP_PORTS)} HP ports; no port for master {master}")
    return HP_PORTS[master]


def address_map(csr_addr_width: int = 12, axi_masters: int = 2) -> dict:
    """The whole map as JSON-ready data (also written by the build as ``build_info.json``)."""
    csr = csr_window(csr_addr_width)
    return {
        "csr": {"port": CSR_PORT, "base": csr.base, "size": csr.size,
                "data_width": CSR_DATA_WIDTH, "addr_width": csr_addr_width},
        "dma": [{"master": f"m_axi{i}", "port": hp_port(i), "base": DMA_WINDOW.base,
                 "size": DMA_WINDOW.size} for i in range(axi_masters)],
        "irq": {"pin": IRQ_PIN, "gic_spi": IRQ_GIC_SPI, "gic_id": IRQ_GIC_ID,
                "sensitivity": "level-high"},
        "ps_ddr": {"base": PS_DDR.base, "size": PS_DDR.size},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware.addrmap",
                                 description="Print the accelerator's address map as JSON.")
    ap.add_argument("--csr-addr-width", type=int, default=12)
    ap.add_argument("--masters", type=int, default=2)
    args = ap.parse_args(argv)
    json.dump(address_map(args.csr_addr_width, args.masters), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
