"""Board backend: the accelerator in the ZCU104's programmable logic, driven from Linux on the PS.

Registers
    ``pynq.MMIO`` when the ``pynq`` package is installed (PYNQ images), otherwise a ``/dev/mem``
    mapping of the CSR window (root needed). The window's address and size come from
    :mod:`firmware.addrmap` (generated with the bitstream by the platform build) unless given.

DMA memory
    A physically contiguous buffer the accelerator's AXI masters read and write:

    * **u-dma-buf** (``/dev/udmabuf0``; the out-of-tree ``u-dma-buf`` kernel module, e.g.
      ``insmod u-dma-buf.ko udmabuf0=67108864``): its physical address and size are read from
      sysfs, it is mapped uncached (``O_SYNC``) so CPU and accelerator see the same bytes, and
      it outlives the process, so ``python -m firmware load`` persists;
    * **pynq.allocate** (PYNQ's CMA allocator): cached, flushed/invalidated around every
      access; freed when the process exits, so load and run must happen in one process.

Interrupt
    Through a UIO device (``/dev/uioN`` bound to the accelerator's PL-to-PS interrupt with
    ``generic-uio``): unmask by writing 1, ``select`` with the timeout, read the count. Without a
    UIO device the driver polls STATUS.

Board-side module: the standard library and numpy only at import; ``pynq`` when chosen.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import select
import struct
from pathlib import Path
from typing import Any

import numpy as np

from . import PAGE, Backend, Buffer, BumpAllocator
from ..errors import AcceleratorError, UsageError

__all__ = ["BoardBackend", "DevMemWindow", "PynqWindow", "UdmaBuf", "PynqMemory", "UioIrq",
           "csr_window_from_addrmap", "dma_window_from_addrmap", "pynq_available",
           "UDMABUF_SYSFS"]

UDMABUF_SYSFS = ("/sys/class/u-dma-buf", "/sys/class/udmabuf")


def _import_pynq(option: str):
    """``pynq``, or a usage error saying how to get it (it ships with PYNQ board images)."""
    try:
        import pynq
    except ImportError as exc:
        raise UsageError(f"{option} needs the pynq package, which is not installed ({exc}): "
                         f"use a PYNQ board image or 'pip install pynq', or choose "
                         f"{'--registers devmem' if 'registers' in option else '--memory udmabuf'}"
                         ) from None
    return pynq


def pynq_available() -> bool:
    """True when the ``pynq`` package can be imported (without importing it)."""
    return importlib.util.find_spec("pynq") is not None


def _addrmap():
    try:
        from .. import addrmap
    except ModuleNotFoundError as exc:
        raise AcceleratorError(
            f"firmware/addrmap.py (the board address map shared with the platform build) is not "
            f"available ({exc}); pass --csr-base and --csr-size") from exc
    return addrmap


def csr_window_from_addrmap(csr_addr_width: int) -> tuple[int, int]:
    """(base, size) of the accelerator's CSR window on the PS bus, from :mod:`firmware.addrmap`
    (``csr_window`` of the build's ``csr_addr_width``).

    Raises
    ------
    AcceleratorError
        The address map is missing or refuses the width.
    """
    try:
        window = _addrmap().csr_window(csr_addr_width)
    except (AttributeError, ValueError) as exc:
        raise AcceleratorError(f"no CSR window for csr_addr_width {csr_addr_width} in "
                               f"firmware/addrmap.py: {exc}") from exc
    return int(window[0]), int(window[1])


def dma_window_from_addrmap() -> tuple[int, int] | None:
    """(base, size) of what the accelerator's AXI masters can reach, or None if unknown."""
    try:
        window = _addrmap().DMA_WINDOW
    except (AcceleratorError, AttributeError):
        return None
    return int(window[0]), int(window[1])


# ---------------------------------------------------------------------------- registers

class DevMemWindow:
    """A device register window mapped from ``/dev/mem`` (32-bit accesses only).

    Parameters
    ----------
    base, size : int
        Physical address and size of the window.
    path : str
        The memory device (tests use a regular file).
    """

    def __init__(self, base: int, size: int, path: str = "/dev/mem"):
        if size <= 0 or base < 0:
            raise UsageError(f"bad CSR window {base:#x}+{size:#x}")
        self.base, self.size, self.path = base, size, path
        page_base = base // PAGE * PAGE
        self._delta = base - page_base
        length = (self._delta + size + PAGE - 1) // PAGE * PAGE
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_SYNC", 0))
        except OSError as exc:
            raise AcceleratorError(f"cannot open {path} for the CSR window: {exc.strerror} "
                                   f"(run as root, or install pynq)") from exc
        try:
            self._mm = mmap.mmap(fd, length, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE, offset=page_base)
        except (OSError, ValueError) as exc:
            raise AcceleratorError(f"cannot map {path} at {base:#x}: {exc}") from exc
        finally:
            os.close(fd)
        self._words = np.frombuffer(self._mm, np.uint32)

    def _index(self, offset: int) -> int:
        if offset % 4 or not 0 <= offset < self.size:
            raise AcceleratorError(f"register offset {offset:#x} outside or misaligned in the "
                                   f"{self.size:#x}-byte CSR window")
        return (self._delta + offset) >> 2

    def read(self, offset: int) -> int:
        return int(self._words[self._index(offset)])

    def write(self, offset: int, value: int) -> None:
        self._words[self._index(offset)] = value & 0xFFFF_FFFF

    def close(self) -> None:
        self._words = None
        self._mm.close()


class PynqWindow:
    """The CSR window through ``pynq.MMIO``."""

    def __init__(self, base: int, size: int):
        pynq = _import_pynq("--registers pynq")
        self._mmio = pynq.MMIO(base, size)
        self.base, self.size = base, size

    def read(self, offset: int) -> int:
        return int(self._mmio.read(offset)) & 0xFFFF_FFFF

    def write(self, offset: int, value: int) -> None:
        self._mmio.write(offset, value & 0xFFFF_FFFF)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- memory

class UdmaBuf:
    """A u-dma-buf device: a physically contiguous, uncached buffer that outlives the process.

    Parameters
    ----------
    name : str
        Device name (``udmabuf0``).
    dev_dir : str
        Where the device node is (``/dev``).
    sysfs : sequence of str
        Class directories holding ``<name>/phys_addr`` and ``<name>/size``.
    """

    def __init__(self, name: str = "udmabuf0", dev_dir: str = "/dev",
                 sysfs: tuple[str, ...] = UDMABUF_SYSFS):
        self.name = name
        attrs = next((Path(d) / name for d in sysfs if (Path(d) / name / "phys_addr").exists()),
                     None)
        if attrs is None:
            raise AcceleratorError(
                f"no u-dma-buf device {name}: none of {', '.join(f'{d}/{name}' for d in sysfs)} "
                f"exists (load the u-dma-buf module, e.g. 'insmod u-dma-buf.ko "
                f"{name}=67108864', or install pynq)")
        try:
            self.phys_addr = int((attrs / "phys_addr").read_text().strip(), 0)
            self.size = int((attrs / "size").read_text().strip(), 0)
        except (OSError, ValueError) as exc:
            raise AcceleratorError(f"cannot read {attrs}/phys_addr and size: {exc}") from exc
        path = os.path.join(dev_dir, name)
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_SYNC", 0))   # O_SYNC: uncached
        except OSError as exc:
            raise AcceleratorError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            self._mm = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as exc:
            raise AcceleratorError(f"cannot map {path} ({self.size} bytes): {exc}") from exc
        finally:
            os.close(fd)
        if self.phys_addr % PAGE:
            raise AcceleratorError(f"{name} physical address {self.phys_addr:#x} is not page "
                                   f"aligned")

    def _offset(self, addr: int, length: int) -> int:
        off = addr - self.phys_addr
        if off < 0 or off + length > self.size:
            raise AcceleratorError(f"[{addr:#x}, {addr + length:#x}) is outside {self.name} "
                                   f"[{self.phys_addr:#x}, {self.phys_addr + self.size:#x})")
        return off

    def write(self, addr: int, data: bytes) -> None:
        off = self._offset(addr, len(data))
        self._mm[off:off + len(data)] = data

    def read(self, addr: int, length: int) -> bytes:
        off = self._offset(addr, length)
        return bytes(self._mm[off:off + length])

    def close(self) -> None:
        self._mm.close()


class PynqMemory:
    """Buffers from ``pynq.allocate`` (cached: flushed after writes, invalidated before reads)."""

    def __init__(self):
        pynq = _import_pynq("--memory pynq")
        self._allocate = pynq.allocate
        self._bufs: list[tuple[int, int, Any, int]] = []

    def alloc(self, size: int, align: int = PAGE) -> int:
        buf = self._allocate(shape=(max(size, 1) + align,), dtype=np.uint8)
        phys = int(getattr(buf, "device_address", None) or buf.physical_address)
        start = (phys + align - 1) // align * align
        self._bufs.append((start, size, buf, start - phys))
        return start

    def _find(self, addr: int, length: int):
        for start, size, buf, skew in self._bufs:
            if start <= addr and addr + length <= start + max(size, 1):
                return buf, skew + addr - start
        raise AcceleratorError(f"[{addr:#x}, {addr + length:#x}) is in no pynq buffer")

    def write(self, addr: int, data: bytes) -> None:
        buf, off = self._find(addr, len(data))
        buf[off:off + len(data)] = np.frombuffer(data, np.uint8)
        buf.flush()

    def read(self, addr: int, length: int) -> bytes:
        buf, off = self._find(addr, length)
        buf.invalidate()
        return bytes(buf[off:off + length])

    def free_all(self) -> None:
        for _, _, buf, _ in self._bufs:
            buf.freebuffer()
        self._bufs.clear()

    def close(self) -> None:
        self.free_all()


# ---------------------------------------------------------------------------- interrupt

class UioIrq:
    """The accelerator's interrupt through a UIO device (``/dev/uioN``)."""

    def __init__(self, path: str):
        try:
            self.fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise AcceleratorError(f"cannot open the interrupt device {path}: {exc.strerror}") \
                from exc
        self.path = path

    def arm(self) -> None:
        """Unmask the interrupt (UIO re-masks it after each one) and drop a stale count."""
        r, _, _ = select.select([self.fd], [], [], 0)
        if r:
            os.read(self.fd, 4)
        os.write(self.fd, struct.pack("<I", 1))

    def wait(self, timeout: float) -> bool:
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return False
        os.read(self.fd, 4)
        return True

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------------------- backend

class BoardBackend(Backend):
    """The real accelerator on the board.

    Parameters
    ----------
    csr_base, csr_size : int, optional
        The CSR window (default: from :mod:`firmware.addrmap`).
    csr_addr_width : int
        The build's CSR address width (``AccelConfig.csr_addr_width``), which sizes the window.
    registers : str
        ``"auto"`` (pynq if installed, else /dev/mem), ``"pynq"`` or ``"devmem"``.
    memory : str
        ``"auto"`` (u-dma-buf if its device exists, else pynq), ``"udmabuf"`` or ``"pynq"``.
    udmabuf : str
        u-dma-buf device name.
    uio : str, optional
        UIO device of the accelerator's interrupt (``/dev/uio0``); polling without it.
    devmem : str
        Memory device for the ``"devmem"`` register window.
    dev_dir, sysfs
        Where u-dma-buf's device node and sysfs attributes are (tests point them elsewhere).
    """

    name = "board"

    def __init__(self, *, csr_base: int | None = None, csr_size: int | None = None,
                 csr_addr_width: int = 12, registers: str = "auto", memory: str = "auto", udmabuf: str = "udmabuf0",
                 uio: str | None = None, devmem: str = "/dev/mem", dev_dir: str = "/dev",
                 sysfs: tuple[str, ...] = UDMABUF_SYSFS):
        if csr_base is None or csr_size is None:
            base, size = csr_window_from_addrmap(csr_addr_width)
            csr_base = base if csr_base is None else csr_base
            csr_size = size if csr_size is None else csr_size
        if registers not in ("auto", "pynq", "devmem"):
            raise UsageError(f"registers must be auto, pynq or devmem, not {registers!r}")
        if memory not in ("auto", "udmabuf", "pynq"):
            raise UsageError(f"memory must be auto, udmabuf or pynq, not {memory!r}")
        if registers == "auto":
            registers = "pynq" if pynq_available() else "devmem"
        if memory == "auto":
            memory = ("udmabuf" if os.path.exists(os.path.join(dev_dir, udmabuf))
                      or not pynq_available() else "pynq")
        self._window = (PynqWindow(csr_base, csr_size) if registers == "pynq"
                        else DevMemWindow(csr_base, csr_size, devmem))
        self._udmabuf: UdmaBuf | None = None
        self._pynq_mem: PynqMemory | None = None
        if memory == "udmabuf":
            self._udmabuf = UdmaBuf(udmabuf, dev_dir, sysfs)
            dma = dma_window_from_addrmap()
            if dma is not None and not (dma[0] <= self._udmabuf.phys_addr and
                                        self._udmabuf.phys_addr + self._udmabuf.size
                                        <= dma[0] + dma[1]):
                raise AcceleratorError(
                    f"u-dma-buf {udmabuf} at {self._udmabuf.phys_addr:#x}+"
                    f"{self._udmabuf.size:#x} lies outside the accelerator's DMA window "
                    f"{dma[0]:#x}+{dma[1]:#x}")
            self._alloc = BumpAllocator(self._udmabuf.phys_addr, self._udmabuf.size,
                                        f"u-dma-buf {udmabuf}")
            self.persistent = True
        else:
            self._pynq_mem = PynqMemory()
            self.persistent = False
        self._irq = UioIrq(uio) if uio else None
        self.registers_kind, self.memory_kind = registers, memory
        self.csr_base, self.csr_size = csr_base, csr_size

    # ------------------------------------------------------------------ registers
    def read32(self, offset: int) -> int:
        return self._window.read(offset)

    def write32(self, offset: int, value: int) -> None:
        self._window.write(offset, value)

    # ------------------------------------------------------------------ memory
    def alloc(self, size: int, align: int = PAGE) -> Buffer:
        if self._udmabuf is not None:
            return Buffer(self, self._alloc.alloc(size, align), size)
        return Buffer(self, self._pynq_mem.alloc(size, align), size)

    def buffer_at(self, addr: int, size: int) -> Buffer:
        """A buffer a previous process allocated (u-dma-buf only: it persists)."""
        if self._udmabuf is None:
            raise UsageError("pynq.allocate buffers do not outlive their process: load the "
                             "model in the same run (--model), or use u-dma-buf")
        self._udmabuf._offset(addr, size)
        self._alloc.next = max(self._alloc.next, addr + max(size, 1))
        return Buffer(self, addr, size)

    def free_all(self) -> None:
        if self._udmabuf is not None:
            self._alloc.reset()
        else:
            self._pynq_mem.free_all()

    def mem_write(self, addr: int, data: bytes) -> None:
        (self._udmabuf or self._pynq_mem).write(addr, data)

    def mem_read(self, addr: int, length: int) -> bytes:
        return (self._udmabuf or self._pynq_mem).read(addr, length)

    # ------------------------------------------------------------------ interrupt
    @property
    def irq_available(self) -> bool:
        return self._irq is not None

    def arm_irq(self) -> None:
        if self._irq is not None:
            self._irq.arm()

    def wait_irq(self, timeout: float, progress: Any = None) -> bool:
        if self._irq is None:
            return super().wait_irq(timeout, progress)
        return self._irq.wait(timeout)

    def describe(self) -> str:
        mem = (f"u-dma-buf {self._udmabuf.name} at {self._udmabuf.phys_addr:#x} "
               f"({self._udmabuf.size} bytes)" if self._udmabuf else "pynq.allocate")
        irq = f"interrupt {self._irq.path}" if self._irq else "polling"
        return (f"board: CSR window {self.csr_base:#x}+{self.csr_size:#x} via "
                f"{self.registers_kind}, memory {mem}, {irq}")

    def close(self) -> None:
        for part in (self._irq, self._udmabuf, self._pynq_mem, self._window):
            if part is not None:
                part.close()
        self._irq = self._udmabuf = self._pynq_mem = None
