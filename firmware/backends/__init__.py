"""Backends: how the driver reaches the accelerator's registers, DDR buffers, clock and interrupt.

The driver (:mod:`firmware.driver`) talks to one :class:`Backend`; the same driver code runs on
the board (:mod:`firmware.backends.board`: ``pynq`` MMIO/allocate, or ``/dev/mem`` + u-dma-buf)
and against the simulated accelerator (:mod:`firmware.backends.sim`).

Time is the backend's: :meth:`Backend.now` and :meth:`Backend.sleep` are wall seconds on the
board and *simulated* seconds (cycles at the accelerator clock) in simulation, so a driver
timeout means the same accelerator time on both.

Only the standard library is imported here; backends import what they need when created.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from ..errors import AcceleratorError, UsageError

__all__ = ["Buffer", "Backend", "BumpAllocator", "open_backend", "BACKENDS", "PAGE"]

PAGE = 4096
BACKENDS = ("board", "sim")


class Buffer:
    """A physically contiguous DDR buffer the accelerator can address.

    Attributes
    ----------
    addr : int
        Bus (physical) address of byte 0, as the accelerator's AXI masters see it.
    size : int
        Size in bytes.
    """

    def __init__(self, backend: "Backend", addr: int, size: int):
        self.backend, self.addr, self.size = backend, int(addr), int(size)

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"access [{offset}, {offset + length}) outside the {self.size}-byte "
                             f"buffer at {self.addr:#x}")

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` into the buffer at ``offset`` (visible to the accelerator afterwards)."""
        self._check(offset, len(data))
        self.backend.mem_write(self.addr + offset, bytes(data))

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (what the accelerator wrote)."""
        self._check(offset, length)
        return self.backend.mem_read(self.addr + offset, length)

    def __repr__(self) -> str:
        return f"Buffer(addr={self.addr:#x}, size={self.size})"


class BumpAllocator:
    """Page-aligned bump allocation over ``[base, base + size)``; :meth:`reset` frees everything.

    Parameters
    ----------
    base : int
        First usable address (page aligned).
    size : int
        Bytes available.
    what : str
        Name of the region for error messages.
    """

    def __init__(self, base: int, size: int, what: str = "DDR region"):
        if base % PAGE:
            raise ValueError(f"{what} base {base:#x} is not {PAGE}-byte aligned")
        self.base, self.size, self.what = base, size, what
        self.next = base

    def alloc(self, size: int, align: int = PAGE) -> int:
        if size < 0 or align < 1 or align & (align - 1):
            raise ValueError(f"bad allocation size {size} / alignment {align}")
        addr = (self.next + align - 1) // align * align
        end = addr + max(size, 1)
        if end > self.base + self.size:
            raise AcceleratorError(
                f"out of DMA memory: {size} bytes requested, {self.base + self.size - addr} "
                f"left of the {self.size}-byte {self.what} at {self.base:#x}")
        self.next = end
        return addr

    def reset(self) -> None:
        self.next = self.base

    @property
    def used(self) -> int:
        return self.next - self.base


class Backend(ABC):
    """What the driver needs from a platform.

    Subclasses implement register access (:meth:`read32`, :meth:`write32`), DDR access
    (:meth:`mem_write`, :meth:`mem_read`) and buffer allocation (:meth:`alloc`,
    :meth:`free_all`); time (:meth:`now`, :meth:`sleep`) and interrupts (:meth:`arm_irq`,
    :meth:`wait_irq`) have defaults for a real-time platform without interrupts.
    """

    #: short name shown in reports
    name: str = "?"
    #: True for the simulator (cycle-exact time, progress bars make sense)
    simulated: bool = False
    #: True when DDR contents and registers outlive the process (``load`` then ``run`` later)
    persistent: bool = False

    # ------------------------------------------------------------------ registers
    @abstractmethod
    def read32(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset`` of the CSR window."""

    @abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset`` of the CSR window."""

    # ------------------------------------------------------------------ memory
    @abstractmethod
    def alloc(self, size: int, align: int = PAGE) -> Buffer:
        """A physically contiguous, ``align``-aligned buffer of ``size`` bytes."""

    @abstractmethod
    def free_all(self) -> None:
        """Release every buffer allocated so far (a new model is about to be loaded)."""

    @abstractmethod
    def mem_write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at bus address ``addr`` (inside an allocated buffer)."""

    @abstractmethod
    def mem_read(self, addr: int, length: int) -> bytes:
        """Read ``length`` bytes at bus address ``addr`` (inside an allocated buffer)."""

    # ------------------------------------------------------------------ time and interrupts
    @property
    def cycle(self) -> int | None:
        """The accelerator clock cycle (simulation only; ``None`` on the board)."""
        return None

    def now(self) -> float:
        """Seconds on the backend's clock (wall time on the board, simulated time in sim)."""
        return time.monotonic()

    def sleep(self, seconds: float, progress: Any = None) -> None:
        """Let ``seconds`` of backend time pass (``progress``: a tqdm-like bar, or None)."""
        time.sleep(max(0.0, seconds))

    @property
    def irq_available(self) -> bool:
        """True when :meth:`wait_irq` can wait for the accelerator's interrupt."""
        return False

    def arm_irq(self) -> None:
        """Prepare to receive the next interrupt (called before the run is started)."""

    def wait_irq(self, timeout: float, progress: Any = None) -> bool:
        """Wait up to ``timeout`` backend seconds for the interrupt; True if it arrived."""
        raise UsageError(f"the {self.name} backend has no interrupt: use polling")

    def describe(self) -> str:
        """One line about the backend (shown by ``info``)."""
        return self.name

    def close(self) -> None:
        """Release the platform's resources."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_backend(name: str, **kwargs) -> Backend:
    """Create the backend called ``name`` (``"board"`` or ``"sim"``) with its options.

    Parameters
    ----------
    name : str
        ``"board"``: :class:`firmware.backends.board.BoardBackend`; ``"sim"``:
        :class:`firmware.backends.sim.SimBackend`.
    **kwargs
        Passed to the backend's constructor.
    """
    if name == "board":
        from .board import BoardBackend
        return BoardBackend(**kwargs)
    if name == "sim":
        from .sim import SimBackend
        return SimBackend(**kwargs)
    raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
