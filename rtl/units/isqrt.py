"""Sequential digit-by-digit integer square root (``ops.isqrt``) for LayerNorm."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IntSqrt"]


class IntSqrt(wiring.Component):
    """``floor(sqrt(v))``, one root bit per cycle (non-restoring digit-by-digit, radix 4 input).

    Each step shifts two radicand bits into the remainder and tries ``(root << 2) | 1``. A
    radicand is accepted in one cycle and the root is offered :meth:`cycles` cycles later; the
    next radicand is accepted the cycle after the root is taken.

    Parameters
    ----------
    width : int
        Radicand width (rounded up to even internally); the root has ``ceil(width / 2)`` bits.

    Attributes
    ----------
    i : In(stream.Signature(unsigned(width)))
    o : Out(stream.Signature(unsigned(ceil(width / 2))))
    """

    def __init__(self, width: int):
        if width < 1:
            raise ValueError("width must be >= 1")
        self.width = width
        self.digits = (width + 1) // 2
        super().__init__({
            "i": In(stream.Signature(unsigned(width))),
            "o": Out(stream.Signature(unsigned(self.digits))),
        })

    def cycles(self) -> int:
        """Cycles from the radicand's acceptance to the root's ``o.valid``."""
        return self.digits + 1

    def elaborate(self, platform):
        m = Module()
        nd = self.digits
        v = Signal(2 * nd)
        rem = Signal(nd + 2)
        root = Signal(nd)
        count = Signal(range(nd + 1))
        busy = Signal()
        m.d.comb += [self.i.ready.eq(~busy & ~self.o.valid), self.o.payload.eq(root)]

        cur = Signal(nd + 4)
        trial = Signal(nd + 3)
        m.d.comb += [cur.eq(Cat(v[-2:], rem)), trial.eq(Cat(1, 0, root))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [v.eq(self.i.payload), rem.eq(0), root.eq(0), count.eq(nd),
                         busy.eq(1)]
        with m.If(busy):
            with m.If(cur >= trial):
                m.d.sync += [rem.eq(cur - trial), root.eq(Cat(1, root[:-1]))]
            with m.Else():
                m.d.sync += [rem.eq(cur), root.eq(Cat(0, root[:-1]))]
            m.d.sync += [v.eq(v << 2), count.eq(count - 1)]
            with m.If(count == 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
