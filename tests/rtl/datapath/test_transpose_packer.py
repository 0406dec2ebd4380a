"""The transposing packer alone: query-group beats (one key for ``softmax_lanes`` queries) into
row-major ACT words at ``d_addr + q·d_stride + w``, bit-exact; the last write where
:func:`rtl.datapath.transpose_packer.last_write_cycle` puts it, for dense and gapped input; no
beat ever waits in those patterns; correct words (only) when a pattern does make it wait."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.packer import pack_layout
from rtl.datapath.transpose_packer import (TransposePacker, last_write_cycle,
                                           softmax_output_layout)
from rtl.sim import StreamSource, make_bench
from rtl.sim.bench import Model
from tests.rtl.datapath.harness import (Recorder, WriteMem, first_mismatch, pack_value,
                                       unpack_value)

SMALL_2 = dataclasses.replace(SMALL_TEST, softmax_lanes=2)


class EnableAfter(Model):
    """``enable`` high from cycle ``n`` on (the instruction's command comes first)."""

    def __init__(self, n: int):
        self.n = n

    def drive(self, io):
        io.set("enable", int(io.cycle >= self.n))


def _run(cfg, rows, length, gaps, seed=0):
    """Packer over random probabilities; returns (probabilities [query][key], ACT memory, beat
    acceptance cycles, stalled cycles, cycle ``done`` rose, command cycle)."""
    L = cfg.softmax_lanes
    rng = random.Random(seed)
    groups = math.ceil(rows / L)
    probs = [[rng.randrange(256) for _ in range(length)] for _ in range(groups * L)]
    beats = [pack_value(softmax_output_layout(cfg),
                        {"p": [probs[g * L + j][k] for j in range(L)],
                         "last": int(k == length - 1)})
             for g in range(groups) for k in range(length)]
    job = {"d_addr": 5, "d_stride": math.ceil(length / cfg.array_cols) + 1, "rows": rows}
    dut = TransposePacker(cfg)
    bench = make_bench(dut, "amaranth")
    act = WriteMem("act")
    rec = Recorder(("i__valid", "i__ready"), "stall", "done", "cmd__valid")
    bench.add(StreamSource("cmd", [pack_value(pack_layout(cfg), job)]), EnableAfter(2),
              StreamSource("i", beats, stall=gaps, seed=seed + 1), act, rec)
    bench.run(lambda: bool(rec.high["cmd__valid"]) and
              any(c > rec.high["cmd__valid"][0] for c in rec.high["done"]), max_cycles=20000)
    cmd = rec.high["cmd__valid"][0]
    done = min(c for c in rec.high["done"] if c > cmd)
    return probs, job, act, rec.high[("i__valid", "i__ready")], rec.high["stall"], done, dut


def _check_words(cfg, rows, length, probs, job, act, dut):
    C = cfg.array_cols
    word = dut.act.data.shape()
    for q in range(rows):
        for w in range(math.ceil(length / C)):
            addr = job["d_addr"] + q * job["d_stride"] + w
            assert addr in act.mem, f"query {q} word {w} (ACT {addr}) never written"
            got = unpack_value(word, act.mem[addr])[:min(C, length - w * C)]
            want = probs[q][w * C:(w + 1) * C]
            assert got == want, f"query {q} word {w}: {first_mismatch(got, want)}"
    writes = rows * math.ceil(length / C)
    assert len(act.log) == writes, f"{len(act.log)} ACT writes, want {writes}"


@pytest.mark.parametrize("cfg, rows, length", [
    (SMALL_TEST, 11, 19), (SMALL_TEST, 8, 8), (NANO, 5, 9), (NANO, 33, 33), (SMALL_2, 5, 17),
    (SMALL_2, 1, 1)], ids=["small-11x19", "small-8x8", "nano-5x9", "nano-33x33",
                           "small2-5x17", "small2-1x1"])
@pytest.mark.parametrize("gaps", [0.0, 0.5], ids=["dense", "gaps"])
def test_words_and_cycles(cfg, rows, length, gaps):
    probs, job, act, accepted, stalls, done, dut = _run(cfg, rows, length, gaps)
    _check_words(cfg, rows, length, probs, job, act, dut)
    assert stalls == [], f"the input waited in cycles {stalls[:5]}"
    last = last_write_cycle(cfg, rows, length, accepted)
    assert act.log[-1][0] == last, f"last write in cycle {act.log[-1][0]}, formula {last}"
    assert done == last + 1


def test_back_pressure_keeps_words():
    """Short groups back to back (not the softmax's pattern): blocks of 2 beats need 8 write
    cycles, so the input waits; every word still lands."""
    cfg, rows, length = SMALL_TEST, 48, 2
    probs, job, act, accepted, stalls, done, dut = _run(cfg, rows, length, 0.0, seed=4)
    assert stalls, "this pattern should have made the input wait"
    _check_words(cfg, rows, length, probs, job, act, dut)


def test_no_rows_is_done_at_once():
    probs, job, act, accepted, stalls, done, dut = _run(SMALL_TEST, 0, 5, 0.0)
    assert act.log == [] and done >= 0


def test_init():
    Fragment.get(TransposePacker(NANO), None)
