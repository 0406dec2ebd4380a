"""Xilinx ZCU104 evaluation board (Zynq UltraScale+ XCZU7EV-2FFVC1156) in the amaranth-boards style.

amaranth-boards ships no ZCU104, so this module follows its conventions (compare its
``rfsoc4x2.py``, another Zynq UltraScale+ board): a :class:`~amaranth.vendor.XilinxPlatform`
subclass listing the PL-side resources a user touches. The accelerator build
(``python -m platform.build zcu104``) uses the resources only as a pin database for its XDC — the
accelerator is clocked and reset by the PS there — but the platform also works on its own for a
pure-PL design, e.g. ``ZCU104Platform().build(Blinky())`` on a machine with Vivado.

Pin data
--------
From Xilinx's ZCU104 board files (XilinxBoardStore ``boards/Xilinx/zcu104/1.1/part0_pins.xml``:
``GPIO_LED_*_LS``, ``GPIO_PB_SW*``, ``GPIO_DIP_SW*``, ``CPU_RESET``, ``CLK_300_P/N``) and the
ZCU104 master XDC / user guide UG1267 (``CLK_125_P/N`` on bank 28, LVDS, 1.8 V). The PS-side
facts in :data:`PS_BOARD_SETTINGS` (DDR4 components, MIO assignment, reference clock) come from
the same board files' ``preset.xml`` and UG1267.
"""

from __future__ import annotations

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import ButtonResources, LEDResources, SwitchResources

__all__ = ["ZCU104Platform", "PART", "BOARD_PART_PATTERN", "PS_BOARD_SETTINGS", "HP_PS_NAMES",
           "pin_constraints"]

PART = "xczu7ev-ffvc1156-2-e"
"""Vivado part name of the ZCU104's device."""

BOARD_PART_PATTERN = "xilinx.com:zcu104:part0:*"
"""Vivado board part of the ZCU104 (any file version); used when its board files are installed."""


class ZCU104Platform(XilinxPlatform):
    """ZCU104: user LEDs, push buttons, DIP switches, CPU reset and the two PL user clocks.

    The user I/O is 3.3 V (LVCMOS33), all active high (board file: "Active High" LEDs, buttons
    and CPU reset). ``clk125`` is the 125 MHz LVDS PL clock (bank 28, 1.8 V); ``clk300`` is the
    programmable 300 MHz clock (default frequency) meant for a PL DDR4 controller (bank 64, 1.2 V).
    """

    device = "xczu7ev"
    package = "ffvc1156"
    speed = "2-e"

    default_clk = "clk125"
    default_rst = "rst"

    resources = [
        # CPU_RESET push button, active high.
        Resource("rst", 0, Pins("M11", dir="i"), Attrs(IOSTANDARD="LVCMOS33")),

        Resource("clk125", 0, DiffPairs("F23", "E23", dir="i"), Clock(125e6),
                 Attrs(IOSTANDARD="LVDS")),
        Resource("clk300", 0, DiffPairs("AH18", "AH17", dir="i"), Clock(300e6),
                 Attrs(IOSTANDARD="DIFF_SSTL12")),

        # GPIO_LED_0_LS .. GPIO_LED_3_LS
        *LEDResources(pins="D5 D6 A5 B5", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        # GPIO_PB_SW0 .. GPIO_PB_SW3
        *ButtonResources(pins="B4 C4 B3 C3", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        # GPIO_DIP_SW0 .. GPIO_DIP_SW3
        *SwitchResources(pins="E4 D4 F5 F4", attrs=Attrs(IOSTANDARD="LVCMOS33")),
    ]
    connectors = []


HP_PS_NAMES = {
    # HP port: (zynq_ultra_ps_e "use" and "data width" properties, clock pin, DDR_LOW segment)
    "S_AXI_HP0_FPD": ("PSU__USE__S_AXI_GP2", "PSU__SAXIGP2__DATA_WIDTH", "saxihp0_fpd_aclk",
                      "SAXIGP2/HP0_DDR_LOW"),
    "S_AXI_HP1_FPD": ("PSU__USE__S_AXI_GP3", "PSU__SAXIGP3__DATA_WIDTH", "saxihp1_fpd_aclk",
                      "SAXIGP3/HP1_DDR_LOW"),
    "S_AXI_HP2_FPD": ("PSU__USE__S_AXI_GP4", "PSU__SAXIGP4__DATA_WIDTH", "saxihp2_fpd_aclk",
                      "SAXIGP4/HP2_DDR_LOW"),
    "S_AXI_HP3_FPD": ("PSU__USE__S_AXI_GP5", "PSU__SAXIGP5__DATA_WIDTH", "saxihp3_fpd_aclk",
                      "SAXIGP5/HP3_DDR_LOW"),
}
"""How the ``zynq_ultra_ps_e`` IP names each HP port (the IP calls HP0..3 ``S_AXI_GP2..5``)."""


PS_BOARD_SETTINGS = {
    # Bank voltages of the MIO banks.
    "PSU_BANK_0_IO_STANDARD": "LVCMOS18",
    "PSU_BANK_1_IO_STANDARD": "LVCMOS18",
    "PSU_BANK_2_IO_STANDARD": "LVCMOS18",
    "PSU__PSS_REF_CLK__FREQMHZ": "33.333333",
    # PS DDR4: 2 GB of components (4 x 4 Gb x16) on a 64-bit bus, DDR4-2133 at 1067 MHz.
    "PSU__DDRC__MEMORY_TYPE": "DDR 4",
    "PSU__DDRC__COMPONENTS": "Components",
    "PSU__DDRC__BUS_WIDTH": "64 Bit",
    "PSU__DDRC__DRAM_WIDTH": "16 Bits",
    "PSU__DDRC__DEVICE_CAPACITY": "4096 MBits",
    "PSU__DDRC__ECC": "Disabled",
    "PSU__DDRC__SPEED_BIN": "DDR4_2133P",
    "PSU__CRF_APB__DDR_CTRL__FREQMHZ": "1067",
    "PSU__DDRC__BG_ADDR_COUNT": "1",
    "PSU__DDRC__BANK_ADDR_COUNT": "2",
    "PSU__DDRC__ROW_ADDR_COUNT": "15",
    "PSU__DDRC__COL_ADDR_COUNT": "10",
    "PSU__DDRC__CL": "15",
    "PSU__DDRC__CWL": "14",
    "PSU__DDRC__T_RCD": "15",
    "PSU__DDRC__T_RP": "15",
    "PSU__DDRC__T_RC": "47.06",
    "PSU__DDRC__T_RAS_MIN": "33",
    "PSU__DDRC__T_FAW": "30.0",
    "PSU__DDRC__BRC_MAPPING": "ROW_BANK_COL",
    "PSU__DDRC__DM_DBI": "DM_NO_DBI",
    "PSU__DDRC__TRAIN_DATA_EYE": "1",
    "PSU__DDRC__TRAIN_READ_GATE": "1",
    "PSU__DDRC__TRAIN_WRITE_LEVEL": "1",
    # Boot and console peripherals on the MIO.
    "PSU__QSPI__PERIPHERAL__ENABLE": "1",
    "PSU__QSPI__PERIPHERAL__IO": "MIO 0 .. 5",
    "PSU__QSPI__PERIPHERAL__MODE": "Single",
    "PSU__QSPI__PERIPHERAL__DATA_MODE": "x4",
    "PSU__QSPI__GRP_FBCLK__ENABLE": "1",
    "PSU__I2C1__PERIPHERAL__ENABLE": "1",
    "PSU__I2C1__PERIPHERAL__IO": "MIO 16 .. 17",
    "PSU__UART0__PERIPHERAL__ENABLE": "1",
    "PSU__UART0__PERIPHERAL__IO": "MIO 18 .. 19",
    "PSU__UART1__PERIPHERAL__ENABLE": "1",
    "PSU__UART1__PERIPHERAL__IO": "MIO 20 .. 21",
    "PSU__SD1__PERIPHERAL__ENABLE": "1",
    "PSU__SD1__PERIPHERAL__IO": "MIO 46 .. 51",
    "PSU__SD1__GRP_CD__ENABLE": "1",
    "PSU__SD1__GRP_CD__IO": "MIO 45",
    "PSU__SD1__DATA_TRANSFER_MODE": "4Bit",
    "PSU__SD1__SLOT_TYPE": "SD 2.0",
    "PSU__USB0__PERIPHERAL__ENABLE": "1",
    "PSU__USB0__PERIPHERAL__IO": "MIO 52 .. 63",
    "PSU__ENET3__PERIPHERAL__ENABLE": "1",
    "PSU__ENET3__PERIPHERAL__IO": "MIO 64 .. 75",
    "PSU__ENET3__GRP_MDIO__ENABLE": "1",
    "PSU__ENET3__GRP_MDIO__IO": "MIO 76 .. 77",
}
"""ZCU104 PS configuration applied when Vivado has no ZCU104 board files (otherwise the board
preset is applied instead): enough for DDR, boot (QSPI / SD), console UART, USB and Ethernet."""


def pin_constraints(platform: XilinxPlatform, name: str, number: int) -> list[tuple[str, dict]]:
    """``[(package pin, {property: value})]`` of a single-ended resource, bit 0 first.

    Parameters
    ----------
    platform : XilinxPlatform
        The board (e.g. :class:`ZCU104Platform`).
    name, number : str, int
        The resource, e.g. ``("led", 2)``.
    """
    res = platform.lookup(name, number)
    if len(res.ios) != 1 or not isinstance(res.ios[0], Pins):
        raise ValueError(f"resource {name}#{number} is not a plain Pins resource")
    pins = res.ios[0]
    attrs = {k: v for k, v in res.attrs.items() if isinstance(v, str)}
    return [(pin, dict(attrs)) for pin in pins.names]
