"""firmware/addrmap.py: the address map shared by the build and the firmware."""

import json
import subprocess
import sys

import pytest

from firmware import addrmap
from tests.conftest import ROOT


def test_imports_nothing_heavy_on_the_board():
    # Load the file by path so that firmware/__init__ (another engineer's) plays no part.
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('addrmap', r'{ROOT}/firmware/addrmap.py'); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(sorted({n.split('.')[0] for n in sys.modules} & "
            "{'amaranth', 'numpy', 'torch', 'rtl', 'golden', 'platform'}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("width, size", [(2, 0x1000), (12, 0x1000), (13, 0x2000), (16, 0x10000)])
def test_csr_window(width, size):
    w = addrmap.csr_window(width)
    assert (w.base, w.size) == (addrmap.CSR_BASE, size)
    assert w.base % w.size == 0
    assert addrmap.HPM0_FPD_WINDOW.contains(w.base, w.size)


@pytest.mark.parametrize("width", [1, 29, 40])
def test_csr_window_rejects_bad_widths(width):
    with pytest.raises(ValueError):
        addrmap.csr_window(width)


def test_dma_window_is_ps_ddr():
    assert addrmap.DMA_WINDOW == addrmap.PS_DDR == addrmap.Window(0, 2 << 30)
    assert addrmap.DMA_WINDOW.contains(0x7FFF_F000, 0x1000)
    assert not addrmap.DMA_WINDOW.contains(0x7FFF_F000, 0x1001)
    assert not addrmap.DMA_WINDOW.contains(addrmap.CSR_BASE)


def test_hp_ports():
    assert [addrmap.hp_port(i) for i in range(2)] == ["S_AXI_HP0_FPD", "S_AXI_HP1_FPD"]
    with pytest.raises(ValueError):
        addrmap.hp_port(4)


def test_reading_masters_reach_different_ddr_controller_ports():
    """Both masters read (rtl.bus.split_reader): their HP ports must not share a DDRC port."""
    from rtl.config import DEFAULT
    ports = [addrmap.hp_port(i) for i in range(DEFAULT.axi_masters)]
    assert DEFAULT.axi_masters == 2
    assert len({addrmap.HP_DDRC_PORT[p] for p in ports}) == len(ports), ports


def test_address_map_and_cli(capsys):
    amap = addrmap.address_map(12, 2)
    assert amap["csr"] == {"port": "M_AXI_HPM0_FPD", "base": 0xA000_0000, "size": 0x1000,
                           "data_width": 32, "addr_width": 12}
    assert [d["port"] for d in amap["dma"]] == ["S_AXI_HP0_FPD", "S_AXI_HP1_FPD"]
    assert amap["irq"]["gic_spi"] == 89 and amap["irq"]["gic_id"] == 121
    assert addrmap.main(["--csr-addr-width", "12", "--masters", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == amap
