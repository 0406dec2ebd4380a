"""Cycle causes: what every cycle of a frame is spent on (one source for the RTL, the register
map, the frame report and the docs).

While a program runs, each cycle is attributed to exactly one :class:`Cause` by a priority rule
(:class:`rtl.datapath.attribution.CauseEncoder` for the compute datapath, the sequencer's state
otherwise), and each cause has its own performance counter ``PERF_<CAUSE>_CYCLES``, so the cause
counters sum to ``PERF_BUSY_CYCLES`` exactly. ``ARRAY`` cycles are split further by the
``PERF_MACS`` counter: ``PERF_MACS / (R × C)`` of them did useful work, the rest multiplied
padding (the rows of a tile beyond the matrix's last row, the columns beyond its last column).
"""

from __future__ import annotations

from rtl.control.textenum import TextIntEnum

__all__ = ["Cause", "counted_causes", "cause_counter"]


class Cause(TextIntEnum):
    """A cycle's cause; ``text`` is the documented meaning. A plain :class:`enum.IntEnum`
    (Amaranth takes it as a shape; the register map imports it without Amaranth)."""

    NONE = 0, "no program running (not counted)"
    ARRAY = 1, "the array steps through K (useful MACs and tile padding: see PERF_MACS)"
    TILE_PERIOD = 2, ("a tile padded to the tile period (K shorter than the array's rows or "
                      "columns)")
    FILL_DRAIN = 3, "the array's last tile and the lanes' pipeline draining"
    A_MOVE = 4, "the A operand copied from ACT (or the expert queue) into the array's banks"
    SOFTMAX = 5, "SOFTMAX instructions"
    LAYERNORM = 6, "LAYERNORM instructions"
    B_MOVER = 7, "BLOAD: activations moved into the B banks"
    ROUTER = 8, "the router holding up a gate matmul (back-pressure, sorting the queues)"
    LANES = 9, "LANES instructions, and matmul rows held up by an on-chip sink"
    STORE = 10, "the DDR output store holding up a matmul (back-pressure, write responses)"
    WEIGHT_STALL = 11, "the compute datapath idle while the sequencer waits for a DDR load"
    ACT_LOAD = 12, "LOADs into ACT or the residual rows (they occupy the compute datapath)"
    SEQUENCER = 13, ("instruction read from the program memory, decode and issue, with the "
                     "compute datapath idle")
    FETCH = 14, "the program copied from DDR into the program memory"


def counted_causes() -> tuple[Cause, ...]:
    """Every cause with a counter (all but NONE), in counter order."""
    return tuple(c for c in Cause if c is not Cause.NONE)


def cause_counter(cause: Cause) -> str:
    """The register name of ``cause``'s counter."""
    return f"PERF_{cause.name}_CYCLES"
