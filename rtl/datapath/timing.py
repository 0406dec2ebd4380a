"""Cycle formulas of the compute instructions, as the datapath runs them today (one instruction
at a time; ``tests/rtl/datapath/test_compute.py`` asserts each against the RTL).

Every instruction pays :data:`ACCEPT_CYCLES` = 2 cycles from its acceptance to its first phase
(the dispatcher latches the command, then decodes it from that register: DECODE) and one to
see its last effect drained; in between (``C`` = array columns, ``R`` = rows,
``VECTOR_LATENCY`` from :mod:`rtl.array.lanes`):

* MATMUL: one cycle to issue the array's command and the A-operand copy from ACT into the
  array's banks (:func:`rtl.datapath.a_loader.a_load_cycles`: 2 + rows × ceil(K / C) ×
  C / a_word_bytes cycles) at once; the array (:func:`rtl.array.tiler.matmul_cycles`) starts
  each row tile as soon as its rows are in (:func:`a_ready_cycles`), then the lanes' pipeline. A ROUTER sink is bound by the
  router (``Router.frame_cycles``, ``E`` cycles per token) from the first row on. A DDR sink
  moves a row in ``2C / axi_bytes`` (at least 2) AXI beats, so it back-pressures the lanes and,
  through their clock enable, the whole array; the cycles that adds depend on how the stalls
  fall against the tile period (they are hidden when a tile's K steps are longer than its
  rows' beats): :func:`store_matmul_bounds` brackets them.
* BLOAD: the B-mover (:func:`rtl.datapath.b_mover.b_move_cycles`).
* LANES: one row per cycle through the lanes.
* LAYERNORM: the LayerNorm unit's banked-row schedule behind the lanes.
* SOFTMAX: query groups of ``softmax_lanes`` rows through the softmax unit's schedule, then
  the transposing packer's write-out (:func:`softmax_cycles`).
"""

from __future__ import annotations

import math

from rtl.array.lanes import VECTOR_LATENCY
from rtl.array.pe import PE_LATENCY
from rtl.array.tiler import OPERAND_STAGES, matmul_cycles
from rtl.config import AccelConfig
from rtl.datapath.a_loader import a_load_cycles
from rtl.datapath.act_sink import ACT_SINK_LATENCY
from rtl.datapath.b_mover import b_move_cycles
from rtl.datapath.row_gen import row_gen_cycles
from rtl.datapath.score_feeder import feed_groups
from rtl.datapath.transpose_packer import last_write_cycle

__all__ = ["ACCEPT_CYCLES", "a_ready_cycles", "a_wait_cycles", "matmul_instr_cycles", "router_matmul_cycles",
           "store_matmul_bounds", "bload_cycles", "lanes_cycles", "layernorm_cycles", "softmax_cycles"]


#: Acceptance to first phase: the latch cycle and DECODE (:mod:`rtl.datapath.dispatcher`).
ACCEPT_CYCLES = 2


def a_ready_cycles(cfg: AccelConfig, m: int, k: int, gather: bool = False) -> list[int]:
    """Per row tile, the cycle (from the tiler's command) from which its A rows are in: the
    A-operand loader starts one cycle earlier and counts a row when its last word is written."""
    R = cfg.array_rows
    return [a_load_cycles(cfg, min(m, (tm + 1) * R), k, gather)
            for tm in range(math.ceil(m / R))]


def matmul_instr_cycles(cfg: AccelConfig, m: int, k: int, n: int, gather: bool = False,
                        to_act: bool = False) -> int:
    """MATMUL into ACT (``to_act``), SCORE or only the lanes' state (no back-pressure): the
    tiler's command in the first phase after acceptance, each row tile as soon as its A rows
    are in; into ACT the last row's write lands :data:`~rtl.datapath.act_sink.ACT_SINK_LATENCY`
    cycles after it left the lanes."""
    return (ACCEPT_CYCLES + 1 + matmul_cycles(m, k, n, cfg.array_rows, cfg.array_cols,
                              a_ready_cycles(cfg, m, k, gather)) + VECTOR_LATENCY
            + (ACT_SINK_LATENCY if to_act else 0))


def a_wait_cycles(cfg: AccelConfig, m: int, k: int, n: int, gather: bool = False) -> int:
    """Cycles the array waits for A rows in such a MATMUL (its ``A_MOVE`` cycles)."""
    R, C = cfg.array_rows, cfg.array_cols
    return (matmul_cycles(m, k, n, R, C, a_ready_cycles(cfg, m, k, gather))
            - matmul_cycles(m, k, n, R, C))


def store_matmul_bounds(cfg: AccelConfig, m: int, k: int, n: int, w_stalls: int,
                        write_latency: int) -> tuple[int, int]:
    """MATMUL into DDR: (fewest, most) cycles, given the ``w_stalls`` cycles a result row
    waited for the store's FIFO and the DDR's write-response latency: at least the matmul and
    the last response, at most every stall on top and the rows the FIFO still holds after the
    last one left the array, written out at ``store_ratio`` beats a row."""
    base = matmul_instr_cycles(cfg, m, k, n) + write_latency
    rows = m * math.ceil(n / cfg.array_cols)
    return base + 1, base + w_stalls + min(rows, cfg.store_fifo_rows) * cfg.store_ratio


def router_matmul_cycles(cfg: AccelConfig, m: int, k: int, router) -> int:
    """MATMUL of the gate logits into the router: the first row reaches it once the first row
    tile's A rows are in and the array's first row (``k + C + OPERAND_STAGES + PE_LATENCY``)
    and the lanes are through,
    then the router sets the pace."""
    first = max(1, a_ready_cycles(cfg, m, k)[0])
    return (ACCEPT_CYCLES - 1 + first + k + cfg.array_cols + OPERAND_STAGES + PE_LATENCY
            + VECTOR_LATENCY + router.frame_cycles(m))


def bload_cycles(cfg: AccelConfig, rows: int, words: int, transpose: bool) -> int:
    return b_move_cycles(cfg, rows, words, transpose) + ACCEPT_CYCLES


def lanes_cycles(rows: int, row_words: int) -> int:
    return row_gen_cycles(rows, row_words) + VECTOR_LATENCY + ACCEPT_CYCLES


def layernorm_cycles(cfg: AccelConfig, layernorm, rows: int, row_words: int) -> int:
    """Residual rows through the lanes into LayerNorm (``ln_lanes`` elements a beat), the
    results packed into ACT."""
    beats = row_words * cfg.array_cols // cfg.ln_lanes
    return ACCEPT_CYCLES + VECTOR_LATENCY + layernorm.schedule([beats] * rows)[-1][1] + 1


def softmax_cycles(cfg: AccelConfig, softmax, rows: int, length: int) -> int:
    """Query groups of ``softmax_lanes`` rows fed back to back after one read cycle
    (:mod:`rtl.datapath.score_feeder`), through the softmax unit's banked-row schedule, their
    probabilities written out by the transposing packer
    (:func:`rtl.datapath.transpose_packer.last_write_cycle`)."""
    if rows == 0 or length == 0:
        return ACCEPT_CYCLES + 2
    beats = [last - length + 1 + k
             for _, last in softmax.schedule([length] * feed_groups(cfg, rows))
             for k in range(length)]
    return ACCEPT_CYCLES + 1 + last_write_cycle(cfg, rows, length, beats) + 1


def formula_block() -> str:
    """The formulas above as the Markdown code block of ``docs/engine.md`` (generated from this
    module's constants, so the docs cannot drift: ``python -m rtl.datapath.timing``)."""
    a, v, f = ACCEPT_CYCLES, VECTOR_LATENCY, OPERAND_STAGES + PE_LATENCY - 1
    lines = [
        "```",
        f"MATMUL (SCORE, lanes only)       {a + 1} + matmul_cycles(m, k, n, ready) + {v}",
        f"  matmul_cycles = s_last + k + C + {f} + (m − 1) mod R, tiles started every P cycles "
        "from cycle 1,",
        "                  row tile tm's first no earlier than ready_tm = A(min(m, (tm+1)·R), k);",
        f"                  with every row in at once: (tiles − 1)·P + k + C + {f + 1} + "
        "(m − 1) mod R",
        f"MATMUL → ACT                     the SCORE formula + {ACT_SINK_LATENCY} (the ACT "
        "sink's address stages)",
        f"MATMUL → ROUTER                  {a - 1} + max(1, ready_0) + k + C + "
        f"{OPERAND_STAGES + PE_LATENCY} + {v} + Router.frame_cycles(m)",
        "MATMUL → DDR                     the SCORE formula + write-response latency + the "
        "cycles the",
        "                                 store FIFO was full + the rows still in it at the end",
        "                                 (bounded: store_matmul_bounds)",
        f"BLOAD                            b_move_cycles + {a} (values: 2·rows·words;",
        "                                 keys: words · Σ_blocks (tokens + 2 + C))",
        f"LANES                            rows · row_words + {v} + {a}",
        f"LAYERNORM                        {a} + {v} + LayerNorm.schedule(rows × "
        "C·row_words/ln_lanes)[-1] + 1",
        f"SOFTMAX                          {a + 2} + the transposing packer's last write, from",
        "                                 Softmax.schedule(ceil(rows / L) groups × length)",
        "                                 (L = softmax_lanes; blocks of ≤ C keys written out "
        "one query's",
        "                                 word a cycle after their last beat or the previous "
        "block's)",
        "```",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys
    sys.stdout.write(formula_block())
