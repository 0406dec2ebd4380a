"""The cycle cause of the compute datapath (:mod:`rtl.control.causes`): one per cycle, from the
dispatcher's instruction and phase, the array's activity and the lanes.

A MATMUL is, in priority order: the dispatcher's decode and issue cycles (``SEQUENCER``), the
array held by back-pressure (``STORE`` into DDR, ``ROUTER`` into the router, ``LANES`` into an
on-chip sink), a row tile waiting for its A rows from the A-operand loader (``A_MOVE``),
stepping through K (``ARRAY``), padding a tile to its period (``TILE_PERIOD``), the array or the
lanes draining (``FILL_DRAIN``), and last the wait for the DDR writes' responses or the router's queues (``STORE`` / ``ROUTER``). Every other instruction is its
unit's cause for all its cycles. ``NONE`` while the dispatcher is idle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.control.causes import Cause
from rtl.control.isa import Op
from rtl.datapath.dispatcher import Phase, Sink

__all__ = ["CauseEncoder"]

_UNIT_CAUSE = ((Op.LAYERNORM, Cause.LAYERNORM), (Op.SOFTMAX, Cause.SOFTMAX),
               (Op.BLOAD, Cause.B_MOVER), (Op.LANES, Cause.LANES), (Op.LOAD, Cause.ACT_LOAD))


class CauseEncoder(wiring.Component):
    """Combinational: the compute datapath's cause of this cycle.

    Attributes
    ----------
    busy : In(1), the dispatcher holds an instruction; op : In(Op); phase : In(Phase);
        sink : In(Sink)
    tiler_busy, a_wait, k_step, period_pad, stalled : In(1), the array's activity
        (:class:`rtl.array.tiler.TiledMatmul`)
    lanes_busy : In(1), rows in the lanes or at their input; lanes_held : In(1), the lanes
        wait for their sink (``VectorLanes.held``: their output buffer holds a row)
    cause : Out(Cause)
    """

    def __init__(self):
        super().__init__({
            "busy": In(1), "op": In(Op), "phase": In(Phase), "sink": In(Sink),
            "tiler_busy": In(1), "a_wait": In(1), "k_step": In(1), "period_pad": In(1), "stalled": In(1),
            "lanes_busy": In(1), "lanes_held": In(1),
            "cause": Out(Cause),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(~self.busy):
            m.d.comb += self.cause.eq(Cause.NONE)
        with m.Elif(self.op == Op.MATMUL):
            self._matmul(m)
        with m.Else():
            m.d.comb += self.cause.eq(Cause.SEQUENCER)
            for op, cause in _UNIT_CAUSE:
                with m.If(self.op == op):
                    m.d.comb += self.cause.eq(cause)
        return m

    def _held_by_sink(self, m):
        with m.Switch(self.sink):
            with m.Case(Sink.DDR):
                m.d.comb += self.cause.eq(Cause.STORE)
            with m.Case(Sink.ROUTER):
                m.d.comb += self.cause.eq(Cause.ROUTER)
            with m.Default():
                m.d.comb += self.cause.eq(Cause.LANES)

    def _matmul(self, m):
        with m.If((self.phase == Phase.DECODE) | (self.phase == Phase.ISSUE)):
            m.d.comb += self.cause.eq(Cause.SEQUENCER)
        with m.Elif(Mux(self.tiler_busy, self.stalled, self.lanes_held)):
            self._held_by_sink(m)
        with m.Elif(self.tiler_busy & self.a_wait):
            m.d.comb += self.cause.eq(Cause.A_MOVE)
        with m.Elif(self.tiler_busy & self.k_step):
            m.d.comb += self.cause.eq(Cause.ARRAY)
        with m.Elif(self.tiler_busy & self.period_pad):
            m.d.comb += self.cause.eq(Cause.TILE_PERIOD)
        with m.Elif(self.tiler_busy | self.lanes_busy):
            m.d.comb += self.cause.eq(Cause.FILL_DRAIN)
        with m.Else():
            self._held_by_sink(m)
            with m.If((self.sink != Sink.DDR) & (self.sink != Sink.ROUTER)):
                m.d.comb += self.cause.eq(Cause.FILL_DRAIN)
