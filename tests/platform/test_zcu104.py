"""The ZCU104 platform: part, pins (against the Xilinx board file), amaranth-boards conventions."""

import pytest
from amaranth.build import DiffPairs, Pins

from platform.zcu104 import (BOARD_PART_PATTERN, HP_PS_NAMES, PART, PS_BOARD_SETTINGS,
                             ZCU104Platform, pin_constraints)
from firmware.addrmap import HP_PORTS

# Facts from XilinxBoardStore boards/Xilinx/zcu104/1.1/part0_pins.xml and the ZCU104 master XDC,
# written out again here as the test oracle.
BOARD_FILE = {
    ("led", 0): "D5", ("led", 1): "D6", ("led", 2): "A5", ("led", 3): "B5",
    ("button", 0): "B4", ("button", 1): "C4", ("button", 2): "B3", ("button", 3): "C3",
    ("switch", 0): "E4", ("switch", 1): "D4", ("switch", 2): "F5", ("switch", 3): "F4",
    ("rst", 0): "M11",
}


@pytest.fixture(scope="module")
def plat():
    return ZCU104Platform()


def test_part(plat):
    assert plat._part == PART == "xczu7ev-ffvc1156-2-e"
    assert plat.family == "ultrascaleplus"
    assert BOARD_PART_PATTERN.startswith("xilinx.com:zcu104:part0:")


@pytest.mark.parametrize("key", sorted(BOARD_FILE))
def test_user_io_pins(plat, key):
    assert pin_constraints(plat, *key) == [(BOARD_FILE[key], {"IOSTANDARD": "LVCMOS33"})]
    assert plat.lookup(*key).ios[0].dir == ("o" if key[0] == "led" else "i")


def test_clocks(plat):
    clk125 = plat.lookup("clk125", 0)
    assert isinstance(clk125.ios[0], DiffPairs)
    assert (clk125.ios[0].p.names, clk125.ios[0].n.names) == (["F23"], ["E23"])
    assert clk125.clock.frequency == 125e6 and clk125.attrs["IOSTANDARD"] == "LVDS"
    clk300 = plat.lookup("clk300", 0)
    assert (clk300.ios[0].p.names, clk300.ios[0].n.names) == (["AH18"], ["AH17"])
    assert clk300.clock.frequency == 300e6 and clk300.attrs["IOSTANDARD"] == "DIFF_SSTL12"
    assert plat.default_clk == "clk125" and plat.default_rst == "rst"


def test_no_pin_used_twice(plat):
    pins = []
    for res in plat.resources.values():
        for io in res.ios:
            if isinstance(io, Pins):
                pins += io.names
            elif isinstance(io, DiffPairs):
                pins += io.p.names + io.n.names
    assert len(pins) == len(set(pins))


def test_pin_constraints_rejects_differential(plat):
    with pytest.raises(ValueError, match="not a plain Pins"):
        pin_constraints(plat, "clk125", 0)


def test_ps_tables():
    assert set(HP_PS_NAMES) == set(HP_PORTS)
    for i, port in enumerate(HP_PORTS):
        use, width, clk, seg = HP_PS_NAMES[port]
        assert use == f"PSU__USE__S_AXI_GP{i + 2}" and width == f"PSU__SAXIGP{i + 2}__DATA_WIDTH"
        assert clk == f"saxihp{i}_fpd_aclk" and seg == f"SAXIGP{i + 2}/HP{i}_DDR_LOW"
    # The fallback preset configures the PS DDR the address map promises (2 GB, 64-bit bus).
    assert PS_BOARD_SETTINGS["PSU__DDRC__BUS_WIDTH"] == "64 Bit"
    assert PS_BOARD_SETTINGS["PSU__DDRC__DEVICE_CAPACITY"] == "4096 MBits"
    assert PS_BOARD_SETTINGS["PSU__DDRC__DRAM_WIDTH"] == "16 Bits"
