"""The A-operand loader alone: A words and queue copies against a Python model of the layout,
cycles equal to :func:`rtl.datapath.a_loader.a_load_cycles` plus exactly the stalled cycles."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.a_loader import ALoader, a_load_cycles, a_load_layout, queue_entry_layout
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import (ReadMem, ReadySink, Recorder, first_mismatch, pack_value,
                                       unpack_value)


def expected(cfg, job, act, queue):
    """(A writes [(bank, addr, value)], queue copies [(addr, entry)]) in issue order."""
    C, R, awb = cfg.array_cols, cfg.array_rows, cfg.a_word_bytes
    kw, ratio = math.ceil(job["k"] / C), cfg.a_ratio
    writes, copies = [], []
    for r in range(job["m"]):
        if job["gather"]:
            token, prob = queue[job["qstart"] + r]
            copies.append((r, {"token": token, "prob": prob}))
            row = job["a_addr"] + token * job["a_stride"]
        else:
            row = job["a_addr"] + r * job["a_stride"]
        base = (r // R) * kw * ratio
        for w in range(kw):
            word = act[row + w]
            for s in range(ratio):
                value = int.from_bytes(bytes(word[s * awb:(s + 1) * awb]), "little")
                writes.append((r % R, base + w * ratio + s, value))
    return writes, copies


def run(cfg, job, act, queue, *, stall=0.0, seed=0):
    dut = ALoader(cfg)
    bench = make_bench(dut, "amaranth")
    word = dut.act.data.shape()
    entry = queue_entry_layout(cfg)
    act_mem = ReadMem("act", {a: pack_value(word, v) for a, v in act.items()})
    q_mem = ReadMem("queue", {a: pack_value(entry, {"token": t, "prob": p})
                              for a, (t, p) in queue.items()})
    a_sink = ReadySink("a_load", stall=stall, seed=seed)
    q_sink = ReadySink("queue_load", stall=stall, seed=seed + 1)
    rec = Recorder(("cmd__valid", "cmd__ready"), "done")
    bench.add(StreamSource("cmd", [pack_value(a_load_layout(cfg), job)]), act_mem, q_mem,
              a_sink, q_sink, rec)
    bench.run(lambda: bool(rec.high["done"]), max_cycles=20_000)
    al = dut.a_load.payload.shape()
    got = [(v["bank"], v["addr"], v["value"]) for v in
           (unpack_value(al, x) for x in a_sink.items)]
    ql = dut.queue_load.payload.shape()
    copies = [(v["addr"], v["value"]) for v in (unpack_value(ql, x) for x in q_sink.items)]
    cycles = rec.high["done"][0] - rec.high[("cmd__valid", "cmd__ready")][0]
    return got, copies, cycles, a_sink.waits + q_sink.waits


def _operands(cfg, rng, rows=40):
    C = cfg.array_cols
    act = {a: [int(b) for b in rng.integers(0, 256, C)] for a in range(rows * 8)}
    queue = {i: (int(rng.integers(0, rows)), int(rng.integers(0, 1 << 16)))
             for i in range(cfg.max_tokens * cfg.top_k)}
    return act, queue


WIDE_A = dataclasses.replace(SMALL_TEST, a_word_bytes=8)     # one A word per C bytes


@pytest.mark.parametrize("cfg, k", [(NANO, 11), (SMALL_TEST, 23), (WIDE_A, 23), (WIDE_A, 5)],
                         ids=["nano", "small-test", "wide-a", "wide-a-one-word"])
@pytest.mark.parametrize("gather", [False, True], ids=["rows", "gather"])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_a_words_and_cycles(cfg, k, gather, stall):
    """Rows back to back (a row's words, then the next row's, with no gap; a gathered row of
    one word takes two cycles)."""
    rng = np.random.default_rng(3)
    act, queue = _operands(cfg, rng)
    job = {"m": 7, "k": k, "a_addr": 5, "a_stride": 3, "gather": gather, "qstart": 4}
    got, copies, cycles, waits = run(cfg, job, act, queue, stall=stall, seed=7)
    want, want_copies = expected(cfg, job, act, queue)
    assert got == want, first_mismatch(got, want)
    assert copies == want_copies, first_mismatch(copies, want_copies)
    assert cycles == a_load_cycles(cfg, job["m"], job["k"], gather) + waits
    assert (waits > 0) == (stall > 0)


def test_init():
    """The ports follow the config: one bank select per array row, A words of a_word_bytes."""
    from amaranth.hdl import Fragment
    dut = ALoader(SMALL_TEST)
    layout = dut.a_load.payload.shape()
    assert layout["bank"].width == 2 and layout["value"].width == 8 * SMALL_TEST.a_word_bytes
    Fragment.get(dut, None)
