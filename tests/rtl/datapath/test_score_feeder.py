"""The score feeder alone: SCORE rows into the softmax one score a cycle, ``last`` on each row's
final score, cycles equal to :func:`rtl.datapath.score_feeder.feed_cycles` plus stalls."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.score_feeder import ScoreFeeder, feed_cycles, feed_layout, score_word_layout
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import (ReadMem, ReadySink, Recorder, first_mismatch, pack_value,
                                       unpack_value)


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
@pytest.mark.parametrize("rows, length", [(3, 9), (2, 1), (0, 5)])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_scores_and_cycles(cfg, rows, length, stall):
    rng = np.random.default_rng(length)
    C, W = cfg.array_cols, cfg.score_row_words
    scores = rng.integers(-2**31, 2**31, (cfg.max_tokens, W * C))
    mem = {r * W + w: pack_value(score_word_layout(cfg), list(scores[r, w * C:(w + 1) * C]))
           for r in range(cfg.max_tokens) for w in range(W)}
    dut = ScoreFeeder(cfg)
    bench = make_bench(dut, "amaranth")
    sink = ReadySink("o", stall=stall, seed=rows)
    rec = Recorder(("cmd__valid", "cmd__ready"), "done")
    bench.add(StreamSource("cmd", [pack_value(feed_layout(cfg), {"rows": rows,
                                                                 "length": length})]),
              ReadMem("score", mem), sink, rec)
    bench.run(lambda: bool(rec.high["done"]), max_cycles=5000)
    got = [(v["t"][0], v["last"]) for v in
           (unpack_value(dut.o.payload.shape(), x) for x in sink.items)]
    want = [(int(scores[r, c]), int(c == length - 1)) for r in range(rows) for c in range(length)]
    assert got == want, first_mismatch(got, want)
    cycles = rec.high["done"][0] - rec.high[("cmd__valid", "cmd__ready")][0]
    assert cycles == feed_cycles(cfg, rows, length) + sink.waits


def test_init():
    Fragment.get(ScoreFeeder(NANO), None)
