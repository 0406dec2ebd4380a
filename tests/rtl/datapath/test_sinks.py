"""The lanes-output sinks alone (ACT, SCORE, router feed, LayerNorm feed), against plain models,
under random back-pressure where the sink has it."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.act_sink import ACT_SINK_LATENCY, ActSink, act_sink_layout
from rtl.datapath.ln_sink import LnSink, ln_sink_layout
from rtl.datapath.router_sink import RouterSink, router_sink_layout
from rtl.datapath.score_sink import ScoreSink
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import (Clocked, ReadySink, Recorder, WriteMem, first_mismatch,
                                       pack_value, unpack_value)


def _rows(cfg, n, seed, lo=-2**31, hi=2**31):
    rng = random.Random(seed)
    return [{"m": rng.randrange(cfg.max_tokens), "tn": rng.randrange(3),
             "values": [rng.randrange(lo, hi) for _ in range(cfg.array_cols)]} for _ in range(n)]


def _source(dut, rows, stall=0.0):
    layout = dut.i.payload.shape()
    return StreamSource("i", [pack_value(layout, r) for r in rows], stall=stall, seed=1)


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
def test_act_sink(cfg):
    rows = _rows(cfg, 12, 1)
    dut = ActSink(cfg)
    bench = make_bench(dut, "amaranth")
    act = WriteMem("act")
    rec = Recorder(("i__valid", "i__ready"), "busy")
    job = {"d_addr": 11, "d_stride": 7}
    bench.add(StreamSource("cmd", [pack_value(act_sink_layout(cfg), job)]),
              _source(dut, rows, stall=0.3), act, rec)
    bench.run(lambda: len(act.log) == len(rows), max_cycles=500)
    got = [(a, unpack_value(dut.act.data.shape(), w)) for _, a, w in act.log]
    want = [(job["d_addr"] + r["m"] * job["d_stride"] + r["tn"], [v & 0xFF for v in r["values"]])
            for r in rows]
    assert got == want, first_mismatch(got, want)
    # Each row is written ACT_SINK_LATENCY cycles after it was taken, and busy covers it.
    taken = rec.high[("i__valid", "i__ready")]
    assert [c for c, _, _ in act.log] == [t + ACT_SINK_LATENCY for t in taken], (taken, act.log)
    in_flight = sorted({t + d for t in taken for d in range(1, ACT_SINK_LATENCY + 1)})
    assert [c for c in rec.high["busy"] if c <= act.log[-1][0]] == in_flight, rec.high["busy"]


def test_score_sink():
    cfg = SMALL_TEST
    rows = _rows(cfg, 9, 2)
    dut = ScoreSink(cfg)
    bench = make_bench(Clocked(dut), "amaranth")
    score = WriteMem("score")
    bench.add(_source(dut, rows, stall=0.3), score)
    bench.run(lambda: len(score.log) == len(rows), max_cycles=500)
    got = [(a, unpack_value(dut.score.data.shape(), w)) for _, a, w in score.log]
    want = [(r["m"] * cfg.score_row_words + r["tn"], r["values"]) for r in rows]
    assert got == want, first_mismatch(got, want)


@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["no-stall", "stalls"])
def test_router_sink_feeds_the_first_e_values_one_per_cycle(stall):
    cfg = SMALL_TEST
    E, tokens = cfg.experts, 5
    rows = [dict(r, m=i) for i, r in enumerate(_rows(cfg, tokens, 3))]
    dut = RouterSink(cfg)
    bench = make_bench(dut, "amaranth")
    out = ReadySink("o", stall=stall, seed=4)
    bench.add(StreamSource("cmd", [pack_value(router_sink_layout(cfg), {"m": tokens})]),
              _source(dut, rows), out)
    bench.run(lambda: len(out.items) == tokens * E, max_cycles=1000)
    got = [tuple(unpack_value(dut.o.payload.shape(), x).values()) for x in out.items]
    want = [(r["values"][e], int(i == tokens - 1 and e == E - 1))
            for i, r in enumerate(rows) for e in range(E)]
    assert got == want, first_mismatch(got, want)
    # a row is released only after its E-th logit: tokens × E cycles plus the stalls
    assert out.waits == 0 or stall > 0


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["no-stall", "stalls"])
def test_ln_sink_splits_rows_into_ln_lanes_beats(cfg, stall):
    row_words = 2
    rows = [{"m": t, "tn": w, "values": v["values"]}
            for t in range(3) for w, v in zip(range(row_words), _rows(cfg, row_words, t,
                                                                       -2**15, 2**15))]
    dut = LnSink(cfg)
    bench = make_bench(dut, "amaranth")
    out = ReadySink("o", stall=stall, seed=5)
    bench.add(StreamSource("cmd", [pack_value(ln_sink_layout(cfg),
                                              {"row_words": row_words, "eps": 123})]),
              _source(dut, rows), out)
    lanes, ratio = cfg.ln_lanes, cfg.ln_ratio
    bench.run(lambda: len(out.items) == len(rows) * ratio, max_cycles=2000)
    got = [tuple((v["r"], v["last"])) for v in
           (unpack_value(dut.o.payload.shape(), x) for x in out.items)]
    want = [(r["values"][s * lanes:(s + 1) * lanes], int(s == ratio - 1 and r["tn"] == row_words - 1))
            for r in rows for s in range(ratio)]
    assert got == want, first_mismatch(got, want)


def test_init():
    for cls in (ActSink, ScoreSink, RouterSink, LnSink):
        Fragment.get(cls(NANO), None)
