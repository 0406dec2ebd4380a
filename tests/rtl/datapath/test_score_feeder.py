"""The score feeder alone: transposed SCORE (a word per key, ``C`` queries) into the softmax as
query groups of ``softmax_lanes`` rows, a beat a cycle, ``last`` on each group's final key,
cycles equal to :func:`rtl.datapath.score_feeder.feed_cycles` plus stalls."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

import dataclasses

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.score_feeder import (ScoreFeeder, feed_cycles, feed_groups, feed_layout,
                                       score_word_layout)
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import (ReadMem, ReadySink, Recorder, first_mismatch, pack_value,
                                       unpack_value)


CONFIGS = [NANO, SMALL_TEST, dataclasses.replace(SMALL_TEST, softmax_lanes=2)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["nano", "small-test", "small-test-2-lanes"])
@pytest.mark.parametrize("rows, length", [(3, 9), (2, 1), (0, 5), (9, 0), (17, 4)])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_scores_and_cycles(cfg, rows, length, stall):
    rng = np.random.default_rng(length)
    C, W, L = cfg.array_cols, cfg.score_row_words, cfg.softmax_lanes
    rows, length = min(rows, cfg.max_tokens), min(length, cfg.max_tokens)
    scores = rng.integers(-2**31, 2**31, (cfg.max_tokens, W * C))   # [key, query]
    mem = {k * W + w: pack_value(score_word_layout(cfg), list(scores[k, w * C:(w + 1) * C]))
           for k in range(cfg.max_tokens) for w in range(W)}
    dut = ScoreFeeder(cfg)
    bench = make_bench(dut, "amaranth")
    sink = ReadySink("o", stall=stall, seed=rows)
    rec = Recorder(("cmd__valid", "cmd__ready"), "done")
    bench.add(StreamSource("cmd", [pack_value(feed_layout(cfg), {"rows": rows,
                                                                 "length": length})]),
              ReadMem("score", mem), sink, rec)
    bench.run(lambda: bool(rec.high["done"]), max_cycles=5000)
    got = [(list(v["t"]), v["last"]) for v in
           (unpack_value(dut.o.payload.shape(), x) for x in sink.items)]
    groups = feed_groups(cfg, rows) if length else 0
    want = [([int(scores[k, g * L + j]) for j in range(L)], int(k == length - 1))
            for g in range(groups) for k in range(length)]
    assert got == want, first_mismatch(got, want)
    cycles = rec.high["done"][0] - rec.high[("cmd__valid", "cmd__ready")][0]
    assert cycles == feed_cycles(cfg, rows, length) + sink.waits


def test_init():
    Fragment.get(ScoreFeeder(NANO), None)
