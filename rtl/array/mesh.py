"""The R×C grid of processing elements."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.pe import PE_LATENCY, ProcessingElement

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """R×C output-stationary systolic array.

    Row ``i`` receives operand ``a`` (with the step flags) at its left edge, column ``j`` operand
    ``b`` at its top edge; inputs must already be skewed (row ``i`` ``i`` cycles late, column ``j``
    ``j`` cycles late) so that PE(i, j) sees step ``k`` of a tile at cycle ``t0 + k + i + j``.
    It finishes its sum ``PE_LATENCY`` cycles after that for ``k = K-1``: row ``i`` is complete
    ``C - 1`` cycles after PE(i, 0), and ``row0_done`` pulses in the first cycle row 0 is
    complete; row ``i`` is complete ``i`` cycles later.

    Parameters
    ----------
    rows, cols : int
        Array shape R × C.
    a_width, b_width, acc_width : int
        See :class:`ProcessingElement`.

    Attributes
    ----------
    a : in, ArrayLayout(signed(a_width), rows)
    valid, first, last : in, ArrayLayout(1, rows): flags per row, travelling with ``a``
    b : in, ArrayLayout(signed(b_width), cols)
    results : out, ArrayLayout(ArrayLayout(signed(acc_width), cols), rows)
    row0_done : out
    en : in, array-wide clock enable
    """

    def __init__(self, rows: int, cols: int, a_width: int = 9, b_width: int = 8,
                 acc_width: int = 32):
        if rows < 1 or cols < 1:
            raise ValueError(f"array shape must be positive, got {rows}x{cols}")
        self.rows, self.cols = rows, cols
        self.a_width, self.b_width, self.acc_width = a_width, b_width, acc_width
        super().__init__({
            "en": In(1),
            "a": In(data.ArrayLayout(signed(a_width), rows)),
            "valid": In(data.ArrayLayout(1, rows)),
            "first": In(data.ArrayLayout(1, rows)),
            "last": In(data.ArrayLayout(1, rows)),
            "b": In(data.ArrayLayout(signed(b_width), cols)),
            "results": Out(data.ArrayLayout(data.ArrayLayout(signed(acc_width), cols), rows)),
            "row0_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pes = [[ProcessingElement(self.a_width, self.b_width, self.acc_width)
                for _ in range(self.cols)] for _ in range(self.rows)]
        for i, row in enumerate(pes):
            for j, pe in enumerate(row):
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += pe.en.eq(self.en)
                if j == 0:
                    m.d.comb += [pe.a_in.eq(self.a[i]), pe.valid_in.eq(self.valid[i]),
                                 pe.first_in.eq(self.first[i]), pe.last_in.eq(self.last[i])]
                else:
                    left = row[j - 1]
                    m.d.comb += [pe.a_in.eq(left.a_out), pe.valid_in.eq(left.valid_out),
                                 pe.first_in.eq(left.first_out), pe.last_in.eq(left.last_out)]
                if i == 0:
                    m.d.comb += pe.b_in.eq(self.b[j])
                else:
                    m.d.comb += pe.b_in.eq(pes[i - 1][j].b_out)
                m.d.comb += self.results[i][j].eq(pe.result)
        # The corner's flags leave it one cycle after its last step; its sum is complete
        # PE_LATENCY cycles after that step.
        corner = pes[0][self.cols - 1]
        done = corner.valid_out & corner.last_out
        for d in range(PE_LATENCY - 1):
            nxt = Signal(name=f"row0_done_d{d}")
            with m.If(self.en):
                m.d.sync += nxt.eq(done)
            done = nxt
        m.d.comb += self.row0_done.eq(done)
        return m
