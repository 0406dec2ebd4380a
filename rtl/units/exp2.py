"""``2**-u`` for Q16 ``u >= 0``: the table + interpolation unit of ``ops.exp2_neg``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.units.arith import round_shift, round_shift_var

__all__ = ["Exp2Neg"]


class Exp2Neg(wiring.Component):
    """Pipelined ``ops.exp2_neg``: one result per enabled cycle, latency :attr:`LATENCY`.

    Stage 1 reads the 257-entry table ``round(2**(-i/256) * 2**16)`` at ``i`` and ``i + 1`` (the
    top 8 fraction bits); stage 2 interpolates on the low 8 bits (rounded) and applies the rounded
    right shift by the integer part ``n`` (``n >= 18`` gives 0). The table is a ROM built from
    ``ops.exp2_table()`` so it can never drift from the specification.

    Parameters
    ----------
    u_width : int
        Width of the unsigned Q16 argument (at least 17).

    Attributes
    ----------
    u : In(unsigned(u_width))
        Argument, Q16, sampled when ``en`` is high.
    en : In(1)
        Pipeline advance: both stages hold their contents while it is low.
    result : Out(unsigned(17))
        ``exp2_neg(u)`` in Q16 (``0 .. 2**16``), :attr:`LATENCY` enabled cycles after ``u``.
    """

    LATENCY = 2

    def __init__(self, u_width: int):
        if u_width < ops.EXP_FRAC + 1:
            raise ValueError(f"u_width must be >= {ops.EXP_FRAC + 1}, got {u_width}")
        self.u_width = u_width
        self.table = memory.Memory(shape=unsigned(ops.EXP_FRAC + 1),
                                   depth=(1 << ops.EXP_TABLE_BITS) + 1,
                                   init=[int(v) for v in ops.exp2_table()])
        super().__init__({
            "u": In(unsigned(u_width)),
            "en": In(1),
            "result": Out(unsigned(ops.EXP_FRAC + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = self.table
        low_bits = ops.EXP_FRAC - ops.EXP_TABLE_BITS
        rd0 = self.table.read_port(transparent_for=())
        rd1 = self.table.read_port(transparent_for=())
        index = self.u[low_bits:ops.EXP_FRAC]
        m.d.comb += [rd0.addr.eq(index), rd1.addr.eq(index + 1),
                     rd0.en.eq(self.en), rd1.en.eq(self.en)]

        # Stage 1: integer part (clamped to 18: any larger shift of a value <= 2**16 rounds to
        # 0) and the interpolation weight, alongside the table reads.
        n = Signal(range(19))
        lo = Signal(low_bits)
        n_full = self.u[ops.EXP_FRAC:]
        with m.If(self.en):
            m.d.sync += [n.eq(Mux(n_full > 18, 18, n_full)), lo.eq(self.u[:low_bits])]

        # Stage 2: interpolate, shift.
        frac = Signal(signed(ops.EXP_FRAC + 3))
        m.d.comb += frac.eq(rd0.data + round_shift((rd1.data - rd0.data) * lo, low_bits))
        with m.If(self.en):
            m.d.sync += self.result.eq(Mux(n == 0, frac, round_shift_var(frac, n)))
        return m
