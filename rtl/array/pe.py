"""One processing element of the output-stationary systolic array."""

from __future__ import annotations

from amaranth.hdl import Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProcessingElement", "PE_LATENCY"]

#: Cycles from a step's operands at the PE's inputs to its sum in ``result`` (on ``last``).
PE_LATENCY = 2


class ProcessingElement(wiring.Component):
    """An int8 multiply-accumulate cell.

    Operand ``a`` (and the step flags travelling with it) enters from the left and leaves to the
    right one cycle later; operand ``b`` enters from above and leaves below. On a ``valid`` step
    the cell accumulates ``a·b`` (starting afresh on ``first``); on ``last`` it also copies the
    finished sum into ``result``, which stays stable while the next tile accumulates — this is
    what lets tiles run back to back. The product is registered before it is added
    (:data:`PE_LATENCY` = 2 cycles from a step's operands to the sum holding it: a DSP48E2 with
    its multiplier register, the accumulator beside it). Nothing changes while ``en`` is low
    (array-wide stall).

    Parameters
    ----------
    a_width : int
        Width of operand ``a``: 9 holds int8 and uint8 (pixels, probabilities) alike.
    b_width : int
        Width of operand ``b`` (int8 weights).
    acc_width : int
        Accumulator width (wraps, like the DSP's; the integer reference proves no overflow).

    Attributes
    ----------
    a_in, b_in, valid_in, first_in, last_in : in
    a_out, b_out, valid_out, first_out, last_out : out, registered copies
    result : out, the last finished sum
    en : in, clock enable of every register
    """

    def __init__(self, a_width: int = 9, b_width: int = 8, acc_width: int = 32):
        if min(a_width, b_width) < 2 or acc_width < a_width + b_width - 1:
            raise ValueError(f"unusable PE widths a={a_width}, b={b_width}, acc={acc_width}")
        self.acc_width = acc_width
        super().__init__({
            "en": In(1),
            "a_in": In(signed(a_width)), "b_in": In(signed(b_width)),
            "valid_in": In(1), "first_in": In(1), "last_in": In(1),
            "a_out": Out(signed(a_width)), "b_out": Out(signed(b_width)),
            "valid_out": Out(1), "first_out": Out(1), "last_out": Out(1),
            "result": Out(signed(acc_width)),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        acc = Signal(signed(self.acc_width))
        prod = Signal(signed(len(self.a_in) + len(self.b_in)))
        total = Signal(signed(self.acc_width))
        # The flags of the registered product are the registered copies passed on (a_out's).
        m.d.comb += total.eq(Mux(self.first_out, 0, acc) + prod)
        with m.If(self.en):
            m.d.sync += [
                self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                self.valid_out.eq(self.valid_in), self.first_out.eq(self.first_in),
                self.last_out.eq(self.last_in), prod.eq(self.a_in * self.b_in),
            ]
            with m.If(self.valid_out):
                m.d.sync += acc.eq(total)
                with m.If(self.last_out):
                    m.d.sync += self.result.eq(total)
        return m
