"""Cycle formulas of the compute instructions, as the datapath runs them today (one instruction
at a time; ``tests/rtl/datapath/test_compute.py`` asserts each against the RTL).

Every instruction pays one cycle from its acceptance to its first phase and one to see its
last effect drained; in between (``C`` = array columns, ``R`` = rows, ``VECTOR_LATENCY`` = 8):

* MATMUL: the A-operand copy from ACT into the array's banks
  (:func:`rtl.datapath.a_loader.a_load_cycles`: per row 2 + ceil(K / C) × C / a_word_bytes
  cycles), one cycle to issue the array's command, the array
  (:func:`rtl.array.tiler.matmul_cycles`), the lanes' pipeline. A ROUTER sink is bound by the
  router (``Router.frame_cycles``, ``E`` cycles per token) from the first row on. A DDR sink
  moves a row in ``2C / axi_bytes`` (at least 2) AXI beats, so it back-pressures the lanes and,
  through their clock enable, the whole array; the cycles that adds depend on how the stalls
  fall against the tile period (they are hidden when a tile's K steps are longer than its
  rows' beats): :func:`store_matmul_bounds` brackets them.
* BLOAD: the B-mover (:func:`rtl.datapath.b_mover.b_move_cycles`).
* LANES: one row per cycle through the lanes.
* LAYERNORM: the LayerNorm unit's banked-row schedule behind the lanes.
* SOFTMAX: the softmax unit's schedule with the score feeder's read cycles.
"""

from __future__ import annotations

import math

from rtl.array.lanes import VECTOR_LATENCY
from rtl.array.tiler import matmul_cycles
from rtl.config import AccelConfig
from rtl.datapath.a_loader import a_load_cycles
from rtl.datapath.b_mover import b_move_cycles
from rtl.datapath.row_gen import row_gen_cycles

__all__ = ["matmul_instr_cycles", "router_matmul_cycles", "store_matmul_bounds",
           "bload_cycles", "lanes_cycles", "layernorm_cycles", "softmax_cycles"]


def matmul_instr_cycles(cfg: AccelConfig, m: int, k: int, n: int) -> int:
    """MATMUL into ACT, SCORE or only the lanes' state (no back-pressure)."""
    return (1 + a_load_cycles(cfg, m, k) + 1
            + matmul_cycles(m, k, n, cfg.array_rows, cfg.array_cols) + VECTOR_LATENCY)


def store_matmul_bounds(cfg: AccelConfig, m: int, k: int, n: int, w_stalls: int,
                        write_latency: int) -> tuple[int, int]:
    """MATMUL into DDR: (fewest, most) cycles, given the ``w_stalls`` cycles a result row
    waited for the writer and the DDR's write-response latency: at least the matmul and the
    last response, at most every stall on top."""
    base = matmul_instr_cycles(cfg, m, k, n) + write_latency
    return base + 1, base + w_stalls


def router_matmul_cycles(cfg: AccelConfig, m: int, k: int, router) -> int:
    """MATMUL of the gate logits into the router: the first row reaches it after the A copy,
    the array's first row (``k + C + 1``) and the lanes, then the router sets the pace."""
    return (1 + a_load_cycles(cfg, m, k) + k + cfg.array_cols + 1 + VECTOR_LATENCY
            + router.frame_cycles(m))


def bload_cycles(cfg: AccelConfig, rows: int, words: int, transpose: bool) -> int:
    return b_move_cycles(cfg, rows, words, transpose) + 1


def lanes_cycles(rows: int, row_words: int) -> int:
    return row_gen_cycles(rows, row_words) + VECTOR_LATENCY + 1


def layernorm_cycles(cfg: AccelConfig, layernorm, rows: int, row_words: int) -> int:
    """Residual rows through the lanes into LayerNorm (``ln_lanes`` elements a beat), the
    results packed into ACT."""
    beats = row_words * cfg.array_cols // cfg.ln_lanes
    return 1 + VECTOR_LATENCY + layernorm.schedule([beats] * rows)[-1][1] + 1


def softmax_cycles(cfg: AccelConfig, softmax, rows: int, length: int) -> int:
    """Score rows fed one score a cycle, one read cycle before each SCORE word."""
    words = math.ceil(length / cfg.array_cols)
    sched = softmax.schedule([length] * rows, spans=[length + words - 1] * rows, gap=1)
    return 2 + sched[-1][1] + 1
