"""The accelerator's hardware parameters: one dataclass, the single source of truth.

Every RTL component takes its sizes from an :class:`AccelConfig`; the register map the firmware
uses and the on-chip memory report are generated from it. Never copy one of these numbers into a
second place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["AccelConfig", "DEFAULT", "SMALL_TEST"]


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one accelerator build.

    Parameters
    ----------
    array_rows, array_cols : int
        Systolic array shape R × C (int8 MACs).
    operand_width : int
        Matrix operand width in bits (8: two MACs per DSP48E2).
    acc_width : int
        Accumulator width in bits.
    axi_data_width : int
        Data width of the AXI4 master ports (the Zynq UltraScale+ HP ports are 128 bits).
    axi_addr_width : int
        Address width of the AXI4 master ports.
    axi_id_width : int
        ID width of the AXI4 master ports.
    axi_masters : int
        Number of AXI4 master ports (HP ports) the DMA spreads over.
    max_burst_beats : int
        Longest INCR burst the DMA issues (1..256; bursts never cross 4 KB).
    max_outstanding_reads : int
        Read bursts in flight per master.
    csr_addr_width : int
        AXI4-Lite address width of the register block.
    weight_buffer_bytes : int
        Size of *each* of the two ping-pong weight buffers (one expert matrix must fit).
    token_buffer_bytes : int
        On-chip token (activation) memory.
    clock_mhz : float
        Target fabric clock.
    """

    array_rows: int = 32
    array_cols: int = 32
    operand_width: int = 8
    acc_width: int = 32
    axi_data_width: int = 128
    axi_addr_width: int = 40
    axi_id_width: int = 6
    axi_masters: int = 2
    max_burst_beats: int = 16
    max_outstanding_reads: int = 4
    csr_addr_width: int = 12
    weight_buffer_bytes: int = 384 * 384
    token_buffer_bytes: int = 512 * 1024
    clock_mhz: float = 250.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("array_rows", "array_cols", "operand_width", "acc_width", "axi_masters",
                     "max_outstanding_reads", "weight_buffer_bytes", "token_buffer_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.axi_data_width not in (32, 64, 128, 256, 512, 1024):
            problems.append(f"axi_data_width {self.axi_data_width} is not an AXI width")
        if not 1 <= self.max_burst_beats <= 256:
            problems.append("max_burst_beats must be in 1..256")
        if self.max_burst_beats * self.axi_data_width // 8 > 4096:
            problems.append("a maximal burst would exceed 4 KB")
        if self.acc_width < 2 * self.operand_width:
            problems.append("acc_width must hold at least one product")
        if problems:
            raise ValueError("invalid accelerator config: " + "; ".join(problems))

    @property
    def axi_bytes(self) -> int:
        return self.axi_data_width // 8

    def replace(self, **changes) -> "AccelConfig":
        return dataclasses.replace(self, **changes)


DEFAULT = AccelConfig()
# Small parameters for Amaranth-simulator unit tests.
SMALL_TEST = AccelConfig(array_rows=4, array_cols=4, axi_data_width=64, axi_masters=1,
                         max_burst_beats=8, weight_buffer_bytes=4096, token_buffer_bytes=16384)
