"""Backends: the allocator and buffers, the simulation adapter, and the board backend's pieces
exercised with stand-ins (a regular file for /dev/mem, a fake sysfs for u-dma-buf, a fake pynq
module). Nothing here touches real hardware."""

import sys
import types

import numpy as np
import pytest

from firmware.backends import Buffer, BumpAllocator, open_backend
from firmware.backends.board import (BoardBackend, DevMemWindow, PynqMemory, PynqWindow, UdmaBuf,
                                     csr_window_from_addrmap)
from firmware.backends.sim import SimBackend, ddr_bytes_for
from firmware.driver import Accelerator
from firmware.errors import AcceleratorError, UsageError

from .fakes import FAKE_CFG, FakeAcceleratorSim


def test_bump_allocator():
    a = BumpAllocator(0x10000, 3 * 4096)
    assert a.alloc(10) == 0x10000
    assert a.alloc(4096) == 0x11000
    assert a.alloc(1, align=64) == 0x12000
    with pytest.raises(AcceleratorError, match="out of DMA memory: 8192 bytes requested"):
        a.alloc(8192)
    a.reset()
    assert a.alloc(0) == 0x10000 and a.used == 1
    with pytest.raises(ValueError, match="not 4096-byte aligned"):
        BumpAllocator(0x10001, 4096)


def test_buffer_bounds():
    fake = FakeAcceleratorSim()
    be = SimBackend(FAKE_CFG, sim=fake, ddr_base=fake.ddr_base, ddr_bytes=len(fake.mem))
    buf = be.alloc(100)
    buf.write(90, bytes(range(10)))
    assert buf.read(90, 10) == bytes(range(10))
    with pytest.raises(ValueError, match="outside the 100-byte buffer"):
        buf.write(95, bytes(10))
    with pytest.raises(AcceleratorError, match="outside the simulated DDR"):
        be.mem_read(fake.ddr_base - 4, 8)


def test_sim_time_and_irq():
    fake = FakeAcceleratorSim(frame_cycles=50)
    be = SimBackend(FAKE_CFG, sim=fake, ddr_base=fake.ddr_base, ddr_bytes=len(fake.mem))
    clock = FAKE_CFG.clock_mhz * 1e6
    assert be.cycle == 0 and be.simulated and not be.persistent
    be.sleep(100 / clock)
    assert be.cycle == 100 and be.now() == pytest.approx(100 / clock)
    assert be.wait_irq(30 / clock) is False and be.cycle == 130      # nothing running
    fake.val["CONTROL"] = 4                                            # irq_enable
    fake.val["INPUT_BASE_LO"], fake.val["OUTPUT_BASE_LO"] = fake.ddr_base, fake.ddr_base + 4096
    fake._pulse("CONTROL", "start")
    assert be.wait_irq(1e-3) is True and be.cycle == 180 and fake.irq


def test_sim_factory_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtl.sim.accel_sim", None)
    with pytest.raises(AcceleratorError, match="rtl/sim/accel_sim.py and rtl/accelerator.py are "
                                               "needed"):
        SimBackend(FAKE_CFG)


def test_sim_factory_and_names():
    made = {}

    def factory(cfg, **kw):
        made.update(kw, cfg=cfg)
        return FakeAcceleratorSim(cfg, **kw)

    be = open_backend("sim", accel_config=FAKE_CFG, simulator="amaranth", factory=factory,
                      ddr_bytes=ddr_bytes_for(5000, 100))
    assert made["backend"] == "amaranth" and made["cfg"] == FAKE_CFG
    assert made["ddr_bytes"] == 8192 + 4096 + 65536
    assert "amaranth" in be.describe()
    with pytest.raises(UsageError, match="unknown simulator 'spice'"):
        SimBackend(FAKE_CFG, simulator="spice")
    with pytest.raises(UsageError, match="unknown backend 'cloud'"):
        open_backend("cloud")


# ---------------------------------------------------------------------------- board pieces

def test_csr_window_from_addrmap():
    from firmware import addrmap
    assert csr_window_from_addrmap(12) == (addrmap.CSR_BASE, 4096)
    with pytest.raises(AcceleratorError, match="no CSR window for csr_addr_width 40"):
        csr_window_from_addrmap(40)


def test_devmem_window(tmp_path):
    path = tmp_path / "mem"
    path.write_bytes(bytes(3 * 4096))
    win = DevMemWindow(0x1010, 0x100, str(path))         # not page aligned on purpose
    win.write(0x8, 0xDEADBEEF)
    assert win.read(0x8) == 0xDEADBEEF
    win.close()
    raw = path.read_bytes()
    assert raw[0x1018:0x101C] == (0xDEADBEEF).to_bytes(4, "little")
    win = DevMemWindow(0x1010, 0x100, str(path))
    with pytest.raises(AcceleratorError, match="outside or misaligned"):
        win.read(0x2)
    with pytest.raises(AcceleratorError, match="outside or misaligned"):
        win.write(0x100, 0)
    win.close()
    with pytest.raises(AcceleratorError, match="cannot open .* for the CSR window"):
        DevMemWindow(0, 4096, str(tmp_path / "missing"))


def _udmabuf(tmp_path, phys="0x70000000", size=65536):
    sysfs = tmp_path / "sys" / "u-dma-buf" / "udmabuf0"
    sysfs.mkdir(parents=True)
    (sysfs / "phys_addr").write_text(phys + "\n")
    (sysfs / "size").write_text(f"{size}\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "udmabuf0").write_bytes(bytes(size))
    return str(dev), (str(tmp_path / "sys" / "u-dma-buf"),)


def test_udmabuf(tmp_path):
    dev, sysfs = _udmabuf(tmp_path)
    ub = UdmaBuf("udmabuf0", dev, sysfs)
    assert (ub.phys_addr, ub.size) == (0x7000_0000, 65536)
    ub.write(0x7000_0010, b"hello")
    assert ub.read(0x7000_0010, 5) == b"hello"
    with pytest.raises(AcceleratorError, match="outside udmabuf0"):
        ub.read(0x7000_0000 + 65530, 10)
    ub.close()
    with pytest.raises(AcceleratorError, match="no u-dma-buf device udmabuf1.*insmod"):
        UdmaBuf("udmabuf1", dev, sysfs)


def test_board_backend_with_stand_ins(tmp_path):
    dev, sysfs = _udmabuf(tmp_path)
    devmem = tmp_path / "devmem"
    devmem.write_bytes(bytes(2 * 4096))
    be = BoardBackend(csr_base=0x1000, csr_size=0x1000, registers="devmem", memory="udmabuf",
                      devmem=str(devmem), dev_dir=dev, sysfs=sysfs)
    assert be.persistent and not be.simulated and not be.irq_available and be.cycle is None
    buf = be.alloc(1000)
    assert buf.addr == 0x7000_0000
    buf.write(0, b"abc")
    assert be.buffer_at(buf.addr, 3).read(0, 3) == b"abc"
    assert be.alloc(10).addr == 0x7000_1000                 # after the attached buffer
    be.free_all()
    assert be.alloc(10).addr == 0x7000_0000
    assert "u-dma-buf udmabuf0 at 0x70000000" in be.describe() and "polling" in be.describe()
    be.write32(0, 0x12345678)
    assert be.read32(0) == 0x12345678
    # the registers are a plain file: no accelerator answers, and the driver says so
    with pytest.raises(AcceleratorError, match="no M3ViT accelerator answers: ID register reads "
                                               "0x12345678"):
        Accelerator(be, FAKE_CFG).open()
    with pytest.raises(UsageError, match="has no interrupt"):
        Accelerator(be, FAKE_CFG, completion="irq")
    be.close()


def test_board_udmabuf_outside_dma_window(tmp_path):
    dev, sysfs = _udmabuf(tmp_path, phys="0x880000000")
    devmem = tmp_path / "devmem"
    devmem.write_bytes(bytes(4096))
    with pytest.raises(AcceleratorError, match="outside the accelerator's DMA window"):
        BoardBackend(csr_base=0, csr_size=0x1000, registers="devmem", memory="udmabuf",
                     devmem=str(devmem), dev_dir=dev, sysfs=sysfs)


@pytest.fixture
def fake_pynq(monkeypatch):
    calls = []

    class MMIO:
        def __init__(self, base, size):
            self.words = {}
            calls.append(("mmio", base, size))

        def read(self, off):
            return self.words.get(off, 0)

        def write(self, off, v):
            self.words[off] = v

    class PynqBuffer(np.ndarray):
        def flush(self):
            calls.append("flush")

        def invalidate(self):
            calls.append("invalidate")

        def freebuffer(self):
            calls.append("free")

    def allocate(shape, dtype):
        buf = np.zeros(shape, dtype).view(PynqBuffer)
        buf.device_address = 0x3000_0100 + 0x10000 * len([c for c in calls if c == "alloc"])
        calls.append("alloc")
        return buf

    monkeypatch.setitem(sys.modules, "pynq", types.SimpleNamespace(MMIO=MMIO, allocate=allocate))
    return calls


def test_pynq_pieces(fake_pynq):
    win = PynqWindow(0xA000_0000, 0x1000)
    win.write(4, 7)
    assert win.read(4) == 7 and fake_pynq[0] == ("mmio", 0xA000_0000, 0x1000)
    mem = PynqMemory()
    addr = mem.alloc(100)
    assert addr % 4096 == 0 and 0x3000_0100 < addr
    mem.write(addr + 5, b"xyz")
    assert mem.read(addr + 5, 3) == b"xyz"
    assert fake_pynq[-2:] == ["flush", "invalidate"]
    with pytest.raises(AcceleratorError, match="in no pynq buffer"):
        mem.read(addr + 200, 1)
    mem.free_all()
    assert fake_pynq[-1] == "free"


def test_board_backend_pynq_is_not_persistent(fake_pynq):
    be = BoardBackend(csr_base=0xA000_0000, csr_size=0x1000, registers="pynq", memory="pynq")
    assert not be.persistent and be.describe().startswith("board: CSR window 0xa0000000")
    buf = be.alloc(64)
    assert isinstance(buf, Buffer)
    with pytest.raises(UsageError, match="do not outlive their process"):
        be.buffer_at(buf.addr, 64)
    be.close()
