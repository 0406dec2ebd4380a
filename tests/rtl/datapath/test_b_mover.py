"""The B-mover alone: keys transposed and values direct into the weight banks, against the
tiler's B layout (token ``t``, element ``k`` at bank ``t mod C``, word
``b_offset + (t div C)·K + k`` transposed; word ``b_offset + w·rows + t`` direct), cycles equal
to :func:`rtl.datapath.b_mover.b_move_cycles` plus exactly the stalled cycles."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.b_mover import BMover, b_move_cycles, b_move_layout
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import ReadMem, ReadySink, Recorder, pack_value, unpack_value


def expected(cfg, job, act):
    """{(bank, addr): byte} the move writes."""
    C, out = cfg.array_cols, {}
    for t in range(job["rows"]):
        row = job["src"] + t * job["stride"]
        for w in range(job["words"]):
            word = act[row + w]
            if job["transpose"]:
                for b in range(C):
                    k = w * C + b
                    out[(t % C, job["b_offset"] + (t // C) * job["words"] * C + k)] = word[b]
            else:
                for j in range(C):
                    out[(j, job["b_offset"] + w * job["rows"] + t)] = word[j]
    return out


def run(cfg, job, act, *, stall=0.0, seed=0):
    dut = BMover(cfg)
    bench = make_bench(dut, "amaranth")
    word = dut.act.data.shape()
    sink = ReadySink("b_word", stall=stall, seed=seed)
    rec = Recorder(("cmd__valid", "cmd__ready"), "done")
    bench.add(StreamSource("cmd", [pack_value(b_move_layout(cfg), job)]),
              ReadMem("act", {a: pack_value(word, v) for a, v in act.items()}), sink, rec)
    bench.run(lambda: bool(rec.high["done"]), max_cycles=50_000)
    written = {}
    for raw in sink.items:
        v = unpack_value(dut.b_word.payload.shape(), raw)
        for j in range(cfg.array_cols):
            if v["mask"] >> j & 1:
                written[(j, v["addr"])] = v["data"][j] & 0xFF
    return written, rec.high["done"][0] - rec.high[("cmd__valid", "cmd__ready")][0], sink.waits


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
@pytest.mark.parametrize("transpose", [False, True], ids=["values", "keys"])
@pytest.mark.parametrize("rows", [1, 11], ids=["one-token", "partial-block"])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_b_words_and_cycles(cfg, transpose, rows, stall):
    rng = np.random.default_rng(rows)
    C = cfg.array_cols
    act = {a: [int(b) for b in rng.integers(0, 256, C)] for a in range(200)}
    job = {"src": 3, "stride": 4, "rows": rows, "words": 2, "transpose": transpose,
           "b_offset": 9}
    got, cycles, waits = run(cfg, job, act, stall=stall, seed=5)
    want = expected(cfg, job, act)
    assert got == want, next(f"{k}: got {got.get(k)}, want {v}" for k, v in want.items()
                             if got.get(k) != v) if set(got) >= set(want) else \
        f"missing {sorted(set(want) - set(got))[:4]}, extra {sorted(set(got) - set(want))[:4]}"
    assert cycles == b_move_cycles(cfg, rows, 2, transpose) + waits


def test_empty_move_is_one_cycle():
    _, cycles, _ = run(NANO, {"src": 0, "stride": 1, "rows": 0, "words": 2, "transpose": 1,
                              "b_offset": 0}, {})
    assert cycles == b_move_cycles(NANO, 0, 2, True) == 1


def test_init():
    dut = BMover(SMALL_TEST)
    assert dut.b_word.payload.shape()["mask"].width == SMALL_TEST.array_cols
    Fragment.get(dut, None)
