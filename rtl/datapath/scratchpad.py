"""An on-chip memory with its one read port and one write port behind explicit selectors.

Several engines read the activation memory (the A-operand loader, the B-mover) and several write
it (the ACT sink, the byte packer, the loader's image loads). :class:`Scratchpad` owns the memory
and gives each a named port; ``rd_sel``/``wr_sel`` (driven by the dispatcher from the instruction
being executed) connect exactly one of them, so two engines cannot use a port in the same cycle by
construction. Read data goes to every reader (only the selected one's request was served).
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.config import AccelConfig

__all__ = ["Scratchpad", "act_write_signature", "read_signature", "write_signature"]


def read_signature(depth: int, shape) -> wiring.Signature:
    """A synchronous read request, as its user sees it: ``addr``/``en`` out, ``data`` (one cycle
    after an enabled request, held otherwise) in."""
    return wiring.Signature({"addr": Out(max(1, ceil_log2(depth))), "en": Out(1),
                             "data": In(shape)})


def write_signature(depth: int, shape) -> wiring.Signature:
    """A write request, as its user sees it: ``addr``, ``data``, ``en`` out."""
    return wiring.Signature({"addr": Out(max(1, ceil_log2(depth))), "data": Out(shape),
                             "en": Out(1)})


def act_write_signature(cfg: AccelConfig) -> wiring.Signature:
    """A write of one ACT word (``array_cols`` bytes), as the engines that fill ACT see it."""
    return write_signature(cfg.act_words, data.ArrayLayout(unsigned(8), cfg.array_cols))


class Scratchpad(wiring.Component):
    """One memory, named read and write ports, one of each selected.

    Parameters
    ----------
    cfg : AccelConfig
        Marks the memory for UltraRAM when it is large (:meth:`AccelConfig.mark_memory`).
    shape : shape-castable
        One word.
    depth : int
        Words.
    readers, writers : tuple of str
        Names of the engines that read / write it (ports ``rd_<name>`` / ``wr_<name>``).

    Attributes
    ----------
    rd_<name> : In(:func:`read_signature`), wr_<name> : In(:func:`write_signature`)
    rd_sel, wr_sel : In(range(len(readers))), In(range(len(writers))): the served port
    mem : :class:`amaranth.lib.memory.Memory`

    Raises
    ------
    ValueError
        No reader or writer, or a name used twice.
    """

    def __init__(self, cfg: AccelConfig, shape, depth: int, readers: tuple[str, ...],
                 writers: tuple[str, ...]):
        if not readers or not writers:
            raise ValueError("a scratchpad needs at least one reader and one writer")
        if len(set(readers)) != len(readers) or len(set(writers)) != len(writers):
            raise ValueError(f"port names must be unique: {readers}, {writers}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        Shape.cast(shape)
        self.readers, self.writers = tuple(readers), tuple(writers)
        self.mem = memory.Memory(shape=shape, depth=depth, init=[])
        cfg.mark_memory(self.mem)
        super().__init__({
            **{f"rd_{n}": In(read_signature(depth, shape)) for n in readers},
            **{f"wr_{n}": In(write_signature(depth, shape)) for n in writers},
            "rd_sel": In(range(len(readers))), "wr_sel": In(range(len(writers))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        rd = self.mem.read_port(transparent_for=())
        wr = self.mem.write_port()
        self._select(m, rd, [getattr(self, f"rd_{n}") for n in self.readers], self.rd_sel,
                     ("addr", "en"))
        self._select(m, wr, [getattr(self, f"wr_{n}") for n in self.writers], self.wr_sel,
                     ("addr", "data", "en"))
        for n in self.readers:
            m.d.comb += getattr(self, f"rd_{n}").data.eq(rd.data)
        return m

    @staticmethod
    def _select(m, port, requests, sel, fields):
        if len(requests) == 1:
            m.d.comb += [getattr(port, f).eq(getattr(requests[0], f)) for f in fields]
            return
        m.d.comb += port.en.eq(0)
        with m.Switch(sel):
            for i, req in enumerate(requests):
                with m.Case(i):
                    m.d.comb += [getattr(port, f).eq(getattr(req, f)) for f in fields]
