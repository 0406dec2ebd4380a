"""The row generator alone: (row0 + r, tn) row-major, one per cycle taken."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO
from rtl.datapath.row_gen import RowGen, row_gen_cycles, row_gen_layout
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import ReadySink, Recorder, pack_value, unpack_value


@pytest.mark.parametrize("rows, words", [(5, 3), (1, 1), (0, 2), (3, 0)])
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["no-stall", "stalls"])
def test_rows_and_cycles(rows, words, stall):
    dut = RowGen(NANO)
    bench = make_bench(dut, "amaranth")
    sink = ReadySink("o", stall=stall, seed=rows)
    rec = Recorder(("cmd__valid", "cmd__ready"), "done")
    bench.add(StreamSource("cmd", [pack_value(row_gen_layout(NANO),
                                              {"row0": 4, "rows": rows, "row_words": words})]),
              sink, rec)
    bench.run(lambda: bool(rec.high["done"]), max_cycles=1000)
    got = [tuple(unpack_value(dut.o.payload.shape(), x).values()) for x in sink.items]
    want = [(4 + r, t) for r in range(rows) for t in range(words)] if rows and words else []
    assert got == want
    cycles = rec.high["done"][0] - rec.high[("cmd__valid", "cmd__ready")][0]
    assert cycles == row_gen_cycles(rows, words) + sink.waits


def test_init():
    Fragment.get(RowGen(NANO), None)
