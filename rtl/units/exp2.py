"""``2**-u`` for Q16 ``u >= 0``: the table + interpolation unit of ``ops.exp2_neg``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.units.arith import interpolation_rom, round_shift, round_shift_var

__all__ = ["Exp2Neg"]


class Exp2Neg(wiring.Component):
    """Pipelined ``ops.exp2_neg``: one result per enabled cycle, latency :attr:`LATENCY`.

    Stage 1 reads entry ``i`` (the top 8 fraction bits) of a 256-entry ROM holding
    ``t[i] = round(2**(-i/256) * 2**16)`` beside the difference ``t[i + 1] - t[i]`` (one read
    port instead of two, no ``i + 1`` adder, no subtract); stage 2 interpolates on the low 8 bits
    (rounded); stage 3 applies the rounded right shift by the integer part ``n`` (``n >= 18``
    gives 0). The ROM is built from ``ops.exp2_table()`` so it can never drift from the
    specification; each stage is one arithmetic step (timing).

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

    LATENCY = 3

    def __init__(self, u_width: int):
        if u_width < ops.EXP_FRAC + 1:
            raise ValueError(f"u_width must be >= {ops.EXP_FRAC + 1}, got {u_width}")
        self.u_width = u_width
        self.table = interpolation_rom(ops.exp2_table(), unsigned(ops.EXP_FRAC + 1))
        super().__init__({
            "u": In(unsigned(u_width)),
            "en": In(1),
            "result": Out(unsigned(ops.EXP_FRAC + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = self.table
        low_bits = ops.EXP_FRAC - ops.EXP_TABLE_BITS
        rd = self.table.read_port(transparent_for=())
        m.d.comb += [rd.addr.eq(self.u[low_bits:ops.EXP_FRAC]), rd.en.eq(self.en)]

        # Stage 1: integer part (clamped to 18: any larger shift of a value <= 2**16 rounds to
        # 0) and the interpolation weight, alongside the table read.
        n = Signal(range(19))
        lo = Signal(low_bits)
        n_full = self.u[ops.EXP_FRAC:]
        with m.If(self.en):
            m.d.sync += [n.eq(Mux(n_full > 18, 18, n_full)), lo.eq(self.u[:low_bits])]

        # Stage 2: interpolate (2**-f in Q16, (2**15, 2**16]).
        frac = Signal(unsigned(ops.EXP_FRAC + 1))
        n2 = Signal.like(n)
        with m.If(self.en):
            m.d.sync += [frac.eq(rd.data.t + round_shift(rd.data.d * lo, low_bits)), n2.eq(n)]

        # Stage 3: shift.
        with m.If(self.en):
            m.d.sync += self.result.eq(Mux(n2 == 0, frac, round_shift_var(frac, n2)))
        return m
