"""The cycle formulas' documentation is generated from ``rtl.datapath.timing`` and says what the
functions compute (the functions themselves are asserted against the RTL in test_compute.py)."""

from __future__ import annotations

import math
import pathlib

import pytest

from rtl.array.lanes import VECTOR_LATENCY
from rtl.array.tiler import matmul_cycles, tile_period
from rtl.config import AccelConfig
from rtl.datapath import timing

DOCS = pathlib.Path(__file__).resolve().parents[3] / "docs" / "engine.md"


def test_docs_formula_block_is_current():
    assert timing.formula_block() in DOCS.read_text(), (
        "docs/engine.md's cycle formulas are stale: paste the output of "
        "python -m rtl.datapath.timing")


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (5, 8, 9), (33, 64, 100), (129, 192, 576)])
def test_documented_matmul_formula(m, k, n):
    """The block's 'every row in at once' MATMUL line, read with this module's constants,
    equals :func:`rtl.array.tiler.matmul_cycles` (with and without ``a_ready``)."""
    cfg = AccelConfig()
    R, C = cfg.array_rows, cfg.array_cols
    tiles = math.ceil(m / R) * math.ceil(n / C)
    fill = timing.OPERAND_STAGES + timing.PE_LATENCY
    text = (tiles - 1) * tile_period(k, R, C) + k + C + fill + (m - 1) % R
    assert matmul_cycles(m, k, n, R, C) == text
    # ... and, with the matrix's rows all in the A banks, the instruction formula's value.
    ready = [0] * math.ceil(m / R)
    assert timing.ACCEPT_CYCLES + 1 + matmul_cycles(m, k, n, R, C, ready) + VECTOR_LATENCY == (
        timing.ACCEPT_CYCLES + 1 + text + VECTOR_LATENCY)
    block = timing.formula_block()
    assert f"(tiles − 1)·P + k + C + {fill} + (m − 1) mod R" in block
