"""The tiled matmul alone with ``a_gated``: each row tile starts only once ``a_rows`` covers its
rows; results bit-exact (A·Bᵀ) and the last row where :func:`rtl.array.tiler.matmul_cycles`
with those ready cycles puts it; under output back-pressure bit-exact and at most one cycle
later per stalled cycle (a stall while a row tile waits for its rows costs nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtl.array.tiler import TiledMatmul, a_pitch, command_layout, matmul_cycles
from rtl.sim import StreamSource, make_bench
from rtl.sim.bench import Model
from tests.rtl.datapath.harness import ReadySink, Recorder, pack_value, unpack_value

R, C, WB = 4, 4, 2           # array rows, columns, A word bytes
MAX_M, MAX_K, MAX_N = 16, 16, 12


class RowsIn(Model):
    """``a_gated`` high; ``a_rows`` rises to ``rows[t]`` at cycle ``start + ready[t]`` (the
    command is offered at ``start``)."""

    def __init__(self, start: int, steps: list[tuple[int, int]]):
        self.start, self.steps = start, steps

    def drive(self, io):
        t = io.cycle - self.start
        io.set("a_gated", 1)
        io.set("a_rows", max([r for c, r in self.steps if t >= c], default=0))


def _loads(dut, a, b):
    """A words into the A banks and weight words into the B banks, before the command."""
    m, k = a.shape
    pitch = a_pitch(k, C)
    al = dut.a_load.payload.shape()
    a_items = []
    for r in range(m):
        row = np.zeros(pitch, np.uint8)
        row[:k] = a[r].astype(np.int64) & 0xFF
        for w in range(pitch // WB):
            value = int.from_bytes(bytes(row[w * WB:(w + 1) * WB]), "little")
            a_items.append(pack_value(al, {"bank": r % R,
                                           "addr": ((r // R) * pitch) // WB + w, "value": value}))
    bl = dut.b_word.payload.shape()
    n = b.shape[0]
    b_items = []
    for tn in range(math.ceil(n / C)):
        for kk in range(k):
            data = [int(b[tn * C + j, kk]) if tn * C + j < n else 0 for j in range(C)]
            b_items.append(pack_value(bl, {"addr": tn * k + kk, "mask": (1 << C) - 1,
                                           "data": data}))
    return a_items, b_items


@pytest.mark.parametrize("m, k, n, ready", [
    (13, 9, 6, [30, 31, 80, 140]),    # every row tile waits
    (13, 9, 6, [1, 2, 3, 4]),         # rows in before they are needed: no wait
    (5, 16, 3, [57, 200]),            # one column tile: each row tile waits
])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["ready", "stalls"])
def test_row_tiles_wait_for_their_a_rows(m, k, n, ready, stall):
    rng = np.random.default_rng(m * k + n)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (n, k))
    dut = TiledMatmul(R, C, MAX_M, MAX_K, MAX_N, a_word_bytes=WB, a_align=C)
    bench = make_bench(dut, "amaranth")
    a_items, b_items = _loads(dut, a, b)
    start = len(a_items) + len(b_items) + 4              # loads done by then
    cmd = pack_value(command_layout(MAX_M, MAX_K, MAX_N, dut.b_depth),
                     {"m": m, "k": k, "n": n, "a_signed": 1, "b_offset": 0})
    steps = [(c, min(m, (tm + 1) * R)) for tm, c in enumerate(ready)]
    sink = ReadySink("out", stall=stall, seed=k)
    rec = Recorder(("cmd__valid", "cmd__ready"), ("out__valid", "out__ready"))
    bench.add(StreamSource("a_load", a_items), StreamSource("b_word", b_items),
              _Delayed(StreamSource("cmd", [cmd]), start), RowsIn(start, steps), sink, rec)
    rows = m * math.ceil(n / C)
    bench.run(lambda: len(sink.items) == rows, max_cycles=5000)
    got = np.zeros((m, math.ceil(n / C) * C), np.int64)
    for raw in sink.items:
        v = unpack_value(dut.out.payload.shape(), raw)
        got[v["m"], v["tn"] * C:(v["tn"] + 1) * C] = v["acc"]
    want = a @ b.T
    bad = np.argwhere(got[:, :n] != want)
    assert not len(bad), f"first mismatch at {tuple(bad[0])}: {got[tuple(bad[0])]} != " \
                         f"{want[tuple(bad[0])]}"
    accepted = rec.high[("cmd__valid", "cmd__ready")][0]
    last = rec.high[("out__valid", "out__ready")][-1]
    want_cycles = matmul_cycles(m, k, n, R, C, ready)
    if stall:   # a stalled cycle adds one, unless it falls while a row tile waits anyway
        assert want_cycles <= last - accepted <= want_cycles + sink.waits
        assert sink.waits > 0
    else:
        assert last - accepted == want_cycles


class _Delayed(Model):
    """Runs ``inner`` from cycle ``start`` on."""

    def __init__(self, inner, start):
        self.inner, self.start = inner, start

    def drive(self, io):
        if io.cycle >= self.start:
            self.inner.drive(io)
        else:
            io.set(self.inner.prefix + "__valid", 0)

    def sample(self, io):
        if io.cycle >= self.start:
            self.inner.sample(io)
