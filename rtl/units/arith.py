"""Expression helpers shared by the softmax, LayerNorm and router units.

They build plain Amaranth expressions (no state) that reproduce the shared conventions of
:mod:`golden.quant.ops` bit for bit, so every unit rounds and saturates the same way.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Value, signed
from amaranth.lib import data, memory
from amaranth.utils import ceil_log2

__all__ = ["round_shift", "round_shift_var", "shift_for_round", "round_saturate", "saturate", "saturate_unsigned", "ceil_q16",
           "bits_for", "banked_row_schedule", "interpolation_rom"]


def interpolation_rom(table, entry_shape) -> memory.Memory:
    """A ROM for linear interpolation in ``table`` (``n + 1`` points): word ``i`` (of ``n``)
    holds ``t = table[i]`` (``entry_shape``) beside ``d = table[i + 1] - table[i]`` (signed, as
    wide as the largest step needs), so one read gives both neighbours without an ``i + 1``
    adder or a subtract."""
    table = [int(v) for v in table]
    diffs = [b - a for a, b in zip(table, table[1:])]
    layout = data.StructLayout({"t": entry_shape,
                                "d": signed(max(abs(d) for d in diffs).bit_length() + 1)})
    return memory.Memory(shape=layout, depth=len(diffs),
                         init=[{"t": t, "d": d} for t, d in zip(table, diffs)])


def bits_for(value: int) -> int:
    """Width of an unsigned signal that holds ``0 .. value``."""
    return max(1, ceil_log2(int(value) + 1))


def round_shift(v: Value, shift: int) -> Value:
    """``ops.round_shift`` by a constant ``shift >= 1``: ``(v + 2**(shift-1)) >> shift``.

    Written as ``((v >> (shift-1)) + 1) >> 1``, which is the same integer (the dropped low bits
    cannot carry into bit ``shift``) and needs no wide constant.
    """
    if shift < 1:
        raise ValueError("round_shift needs shift >= 1")
    return ((v >> (shift - 1)) + 1) >> 1


def round_shift_var(v: Value, shift: Value) -> Value:
    """``ops.round_shift`` by a signal ``shift >= 1`` (same identity as :func:`round_shift`)."""
    return (shift_for_round(v, shift) + 1) >> 1


def shift_for_round(v: Value, shift: Value) -> Value:
    """``v >> (shift - 1)`` for a signal ``shift >= 1``: the barrel-shift half of
    :func:`round_shift_var`, for a pipeline that registers it and finishes with
    :func:`round_saturate` (or ``(s + 1) >> 1``) one stage later."""
    return v >> (shift - 1)[:len(shift)]


def round_saturate(s: Value, bits: int) -> Value:
    """``saturate((s + 1) >> 1, bits)``: the second half of a ``round_shift`` (``s`` from
    :func:`shift_for_round`) and its saturation, with the range checks on ``s`` beside the
    increment rather than after it. With ``r = floor((s + 1) / 2)``: ``r > hi`` exactly when
    ``s >= 2·hi + 1``, and ``r < lo`` exactly when ``s <= 2·lo - 2``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(s >= 2 * hi + 1, hi, Mux(s <= 2 * lo - 2, lo, (s + 1) >> 1))


def saturate(v: Value, bits: int) -> Value:
    """``ops.saturate(v, bits, signed=True)``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def saturate_unsigned(v: Value, bits: int) -> Value:
    """``ops.saturate(v, bits, signed=False)``."""
    hi = (1 << bits) - 1
    return Mux(v > hi, hi, Mux(v < 0, 0, v))


def ceil_q16(t: Value) -> Value:
    """``ceil(t / 2**16)`` for a signed Q16 value (``-((-t) >> 16)``, as ``ops._ceil_q``)."""
    return -((-t) >> 16)


def banked_row_schedule(lengths: list[int], banks: int, fill_latency: int, scalar_cycles: int,
                        out_latency: int, spans: list[int] | None = None,
                        gap: int = 0, scalar_stages: int = 1) -> list[tuple[int, int]]:
    """Cycle formula shared by the banked row units (softmax, LayerNorm).

    Such a unit writes a row (``lengths[r]`` beats) into one of ``banks`` row banks while
    accumulating its statistics, runs one sequential per-row computation (``scalar_cycles``
    from its start to its result), then re-reads the bank to emit the row (loading the next
    ready row in the cycle of the current row's last read, so rows leave back to back). With
    the input always valid and the output always ready, and the first beat accepted in cycle
    0, it returns per row (cycle of the first accepted beat, cycle of the last output beat)::

        a_r    = max(a_{r-1} + S_{r-1} + gap, free_{r-banks})  first beat accepted
        f_r    = a_r + S_r - 1 + fill_latency                 bank filled (statistics final)
        x_r    = max(f_r, y_{r-P} + 1, x_{r-1} + 1)           per-row computation starts
        y_r    = x_r + scalar_cycles                          its result is ready
        z_r    = max(y_r + 1, z_{r-1} + L_{r-1})              emit pass loads the row's constants
        free_r = z_r + L_r + 1                                bank reusable
        last output beat of row r: z_r + L_r + out_latency - 1

    ``S_r`` (``spans``, default ``L_r``) is the cycles row ``r``'s input takes from its first to
    just after its last beat, and ``gap`` the idle cycles between rows: a feeder with read
    cycles between its words (the score feeder) offers its rows that way. ``P``
    (``scalar_stages``) copies of the per-row computation take rows in turn, in row order.
    """
    if banks < 1 or scalar_stages < 1:
        raise ValueError("banks and scalar_stages must be >= 1")
    spans = list(lengths) if spans is None else list(spans)
    a, x, y, z, free, out = [], [], [], [], [], []
    for r, n in enumerate(lengths):
        if n < 1:
            raise ValueError("rows have at least one beat")
        ar = 0 if r == 0 else a[-1] + spans[r - 1] + gap
        if r >= banks:
            ar = max(ar, free[r - banks])
        fr = ar + spans[r] - 1 + fill_latency
        xr = fr if r == 0 else max(fr, x[-1] + 1)
        if r >= scalar_stages:
            xr = max(xr, y[r - scalar_stages] + 1)
        yr = xr + scalar_cycles
        zr = yr + 1 if r == 0 else max(yr + 1, z[-1] + lengths[r - 1])
        a.append(ar), x.append(xr), y.append(yr), z.append(zr), free.append(zr + n + 1)
        out.append((ar, zr + n + out_latency - 1))
    return out
