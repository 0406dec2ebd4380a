"""Sequential restoring divider for the reciprocals ``floor(2**e / d)`` of softmax and LayerNorm."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ReciprocalDivider"]


class ReciprocalDivider(wiring.Component):
    """``floor(2**numerator_log2 / d)``, one quotient bit per cycle (restoring division).

    Only the low ``quotient_bits`` dividend bits are iterated: the caller guarantees
    ``2**numerator_log2 >> quotient_bits < d`` (equivalently, the quotient fits
    ``quotient_bits``), so the remainder starts at ``2**numerator_log2 >> quotient_bits``.
    A divisor is accepted in one cycle, the quotient is offered ``quotient_bits + 1`` cycles later
    (:meth:`cycles` from acceptance to ``o.valid``), and the next divisor is accepted the cycle
    after the quotient is taken. ``d = 0`` yields all ones (never used: the units prove d >= 1).

    Parameters
    ----------
    numerator_log2 : int
        ``e`` of the constant dividend ``2**e``.
    divisor_width : int
        Width of the unsigned divisor.
    quotient_bits : int
        Quotient width (and iteration count), ``1 .. numerator_log2 + 1``.

    Attributes
    ----------
    i : In(stream.Signature(unsigned(divisor_width)))
    o : Out(stream.Signature(unsigned(quotient_bits)))
    """

    def __init__(self, numerator_log2: int, divisor_width: int, quotient_bits: int):
        if numerator_log2 < 0:
            raise ValueError("numerator_log2 must be >= 0")
        if divisor_width < 1:
            raise ValueError("divisor_width must be >= 1")
        if not 1 <= quotient_bits <= numerator_log2 + 1:
            raise ValueError(f"quotient_bits must be in 1..{numerator_log2 + 1}, "
                             f"got {quotient_bits}")
        self.numerator_log2 = numerator_log2
        self.divisor_width = divisor_width
        self.quotient_bits = quotient_bits
        super().__init__({
            "i": In(stream.Signature(unsigned(divisor_width))),
            "o": Out(stream.Signature(unsigned(quotient_bits))),
        })

    def cycles(self) -> int:
        """Cycles from the divisor's acceptance to the quotient's ``o.valid``."""
        return self.quotient_bits + 1

    def elaborate(self, platform):
        m = Module()
        qb = self.quotient_bits
        numerator = 1 << self.numerator_log2
        rem = Signal(self.divisor_width + 1)
        d = Signal(self.divisor_width)
        low = Signal(qb)                       # dividend bits still to shift in, MSB first
        q = Signal(qb)
        count = Signal(range(qb + 1))
        busy = Signal()
        m.d.comb += [self.i.ready.eq(~busy & ~self.o.valid), self.o.payload.eq(q)]

        trial = Signal(self.divisor_width + 2)
        m.d.comb += trial.eq(Cat(low[-1], rem))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [rem.eq(numerator >> qb), low.eq(numerator & ((1 << qb) - 1)),
                         d.eq(self.i.payload), count.eq(qb), busy.eq(1)]
        with m.If(busy):
            with m.If(trial >= d):
                m.d.sync += [rem.eq(trial - d), q.eq(Cat(1, q[:-1]))]
            with m.Else():
                m.d.sync += [rem.eq(trial), q.eq(Cat(0, q[:-1]))]
            m.d.sync += [low.eq(low << 1), count.eq(count - 1)]
            with m.If(count == 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
