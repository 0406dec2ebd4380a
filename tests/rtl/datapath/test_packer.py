"""The byte packer alone: beats of ``n`` bytes into ACT words at ``d_addr + r·d_stride + w``;
a word is written in the cycle its last byte arrives; bytes of a partial last word beyond the
row keep the word register's previous contents."""

from __future__ import annotations

import gc
import random
import warnings

import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.packer import Packer, pack_input_layout, pack_layout
from rtl.sim import StreamSource, make_bench
from tests.rtl.datapath.harness import Driver, WriteMem, first_mismatch, pack_value, unpack_value


def model(C, rows, job):
    """Expected ACT words {addr: bytes} for rows of byte lists fed ``n`` at a time."""
    out, word = {}, [0] * C
    for r, (row, n) in enumerate(rows):
        pos, w = 0, 0
        for i in range(0, len(row), n):
            beat = row[i:i + n]
            for lane, b in enumerate(beat):
                word[pos + lane] = b
            last = i + n >= len(row)
            if pos + len(beat) >= C or last:
                out[job["d_addr"] + r * job["d_stride"] + w] = list(word)
                pos, w = 0, w + 1
            else:
                pos += len(beat)
    return out


@pytest.mark.parametrize("cfg, lanes", [(NANO, 1), (SMALL_TEST, 4), (SMALL_TEST, 1)],
                         ids=["nano-1", "small-4", "small-1"])
@pytest.mark.parametrize("gaps", [0.0, 0.4], ids=["dense", "input-gaps"])
def test_words(cfg, lanes, gaps):
    C = cfg.array_cols
    rng = random.Random(lanes)
    lengths = [3 * C, C + lanes, lanes]
    rows = [([rng.randrange(256) for _ in range(n)], lanes) for n in lengths]
    job = {"d_addr": 7, "d_stride": 5, "rows": len(rows)}
    beats = []
    for row, n in rows:
        for i in range(0, len(row), n):
            b = row[i:i + n]
            beats.append(pack_value(pack_input_layout(lanes),
                                    {"bytes": b, "n": len(b), "last": int(i + n >= len(row))}))
    dut = Packer(cfg, lanes=lanes)
    bench = make_bench(dut, "amaranth")
    act = WriteMem("act")
    bench.add(StreamSource("cmd", [pack_value(pack_layout(cfg), job)]), Driver(enable=1),
              StreamSource("i", beats, stall=gaps, seed=3), act)
    bench.run(lambda: len(act.log) == sum(-(-len(r) // C) for r, _ in rows), max_cycles=2000)
    word = dut.act.data.shape()
    got = {a: unpack_value(word, v) for a, v in act.mem.items()}
    want = model(C, rows, job)
    assert sorted(got) == sorted(want)
    for a in want:
        assert got[a] == want[a], f"ACT word {a}: {first_mismatch(got[a], want[a])}"


def test_init_wrong_lanes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the half-built component is never elaborated
        with pytest.raises(ValueError, match="lanes must be in 1..array_cols"):
            Packer(NANO, lanes=NANO.array_cols + 1)
        gc.collect()


def test_init():
    Fragment.get(Packer(NANO, lanes=1), None)
