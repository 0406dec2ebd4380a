"""DMA read/write engines against the DDR model, byte for byte, under random stalls."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rtl.config import SMALL_TEST
from rtl.bus.dma import DMAReader, DMAWriter, descriptor_layout, split_bursts, word_layout
from rtl.sim import AxiChecker, DDRModel, StreamSink, StreamSource, make_bench, pack, unpack

CFG = SMALL_TEST
MEM = 3 * 4096


def _first_mismatch(got: np.ndarray, want: np.ndarray) -> str:
    if len(got) != len(want):
        return f"length {len(got)} != {len(want)}"
    bad = np.nonzero(got != want)[0]
    if len(bad):
        i = int(bad[0])
        return f"first mismatch at byte {i}: got {got[i]:#04x}, want {want[i]:#04x}"
    return ""


def unpack_words(cfg, words: list[int]) -> list[bytes]:
    """Split the packed output stream into per-descriptor byte strings (honouring keep/last)."""
    lay, out, cur = word_layout(cfg), [], bytearray()
    for w in words:
        f = unpack(lay, w)
        n = bin(f["keep"]).count("1")
        assert f["keep"] == (1 << n) - 1, f"keep {f['keep']:#x} is not a low-lane mask"
        assert n == cfg.axi_bytes or f["last"], "partial word without last"
        cur += f["data"].to_bytes(cfg.axi_bytes, "little")[:n]
        if f["last"]:
            out.append(bytes(cur))
            cur = bytearray()
    assert not cur, "trailing words without last"
    return out


def random_transfers(rng: random.Random, n: int, max_len: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        length = rng.choice([1, 2, rng.randrange(1, 17), rng.randrange(1, max_len)])
        addr = rng.randrange(0, MEM - length)
        out.append((addr, length))
    return out


def run_reads(backend: str, transfers, *, stall: float, latency: int, seed: int,
              cfg=CFG, max_cycles=60_000):
    dut = DMAReader(cfg)
    bench = make_bench(dut, backend)
    ddr = DDRModel("axi", MEM, cfg.axi_data_width, read_latency=latency, stall=stall, seed=seed)
    ddr.mem[:] = np.random.default_rng(seed).integers(0, 256, MEM, dtype=np.uint8)
    lay = descriptor_layout(cfg)
    src = StreamSource("desc", [pack(lay, addr=a, length=n) for a, n in transfers],
                       stall=stall, seed=seed + 1)
    sink = StreamSink("data", stall=stall, seed=seed + 2)
    checker = AxiChecker("axi", cfg.axi_data_width)
    bench.add(ddr, checker, src, sink)
    want = [t for t in transfers if t[1]]
    bench.run(lambda: sum(unpack(word_layout(cfg), w)["last"] for w in sink.items) == len(want)
              and ddr.idle(), max_cycles=max_cycles)
    got = unpack_words(cfg, sink.items)
    for i, ((a, n), g) in enumerate(zip(want, got)):
        msg = _first_mismatch(np.frombuffer(g, np.uint8), ddr.read(a, n))
        assert not msg, f"transfer {i} (addr {a:#x}, length {n}): {msg}"
    return bench, ddr


def test_split_bursts_reference():
    # Never crosses 4 KB, never exceeds max beats, covers exactly the range.
    rng = random.Random(1)
    nb = CFG.axi_bytes
    for _ in range(500):
        addr, length = rng.randrange(0, 1 << 20), rng.randrange(1, 5000)
        bursts = split_bursts(CFG, addr, length)
        assert bursts[0][0] == addr & ~(nb - 1)
        for (a, n), (a2, _) in zip(bursts, bursts[1:]):
            assert a + n * nb == a2
        for a, n in bursts:
            assert 1 <= n <= CFG.max_burst_beats and a // 4096 == (a + n * nb - 1) // 4096
        a, n = bursts[-1]
        assert a <= addr + length - 1 < a + n * nb


@pytest.mark.parametrize("seed,stall", [(1, 0.0), (2, 0.3)])
def test_read_random_alignment_under_stalls(seed, stall):
    rng = random.Random(seed)
    transfers = random_transfers(rng, 12, 300) + [(4096 - 5, 40), (0, 0), (8192 - 64, 128)]
    run_reads("amaranth", transfers, stall=stall, latency=rng.randrange(1, 12), seed=seed)


def test_read_bursts_are_split_like_reference():
    transfers = [(4096 - 24, 200), (3, 1000)]
    _, ddr = run_reads("amaranth", transfers, stall=0.0, latency=5, seed=7)
    want = sum(len(split_bursts(CFG, a, n)) for a, n in transfers)
    assert ddr.read_bursts == want


def test_read_error_latched():
    cfg = CFG
    dut = DMAReader(cfg)
    bench = make_bench(dut)
    ddr = DDRModel("axi", MEM, cfg.axi_data_width, read_latency=3,
                   error_ranges=[(4096, 4096 + 64)])
    lay = descriptor_layout(cfg)
    src = StreamSource("desc", [pack(lay, addr=0, length=64), pack(lay, addr=4096, length=64)])
    sink = StreamSink("data")
    bench.add(ddr, AxiChecker("axi", cfg.axi_data_width), src, sink)

    class Watch:
        error = resp = 0
        first_error_word = None

        def drive(self, io):
            pass

        def sample(self, io):
            if io.get("error") and not self.error:
                self.error, self.resp = 1, io.get("error_resp")
                self.first_error_word = len(sink.items)
    watch = Watch()
    bench.add(watch)
    bench.run(lambda: len(sink.items) == 16, max_cycles=2000)
    assert watch.error == 1 and watch.resp == 2, "SLVERR not latched"
    assert watch.first_error_word >= 8, "error raised before the failing transfer's data"


def run_writes(transfers, *, stall: float, seed: int, cfg=CFG, backend: str = "amaranth"):
    dut = DMAWriter(cfg)
    bench = make_bench(dut, backend)
    ddr = DDRModel("axi", MEM, cfg.axi_data_width, write_latency=3, stall=stall, seed=seed)
    rng = np.random.default_rng(seed)
    ddr.mem[:] = rng.integers(0, 256, MEM, dtype=np.uint8)
    want = ddr.mem.copy()
    dlay, wlay, nb = descriptor_layout(cfg), word_layout(cfg), cfg.axi_bytes
    descs, words = [], []
    for a, n in transfers:
        payload = rng.integers(0, 256, n, dtype=np.uint8)
        want[a:a + n] = payload
        descs.append(pack(dlay, addr=a, length=n))
        padded = payload.tobytes() + bytes(-n % nb)
        for k in range(0, len(padded), nb):
            words.append(pack(wlay, data=int.from_bytes(padded[k:k + nb], "little"),
                              keep=(1 << min(nb, n - k)) - 1, last=int(k + nb >= n)))
    src = StreamSource("desc", descs, stall=stall, seed=seed + 1)
    dsrc = StreamSource("data", words, stall=stall, seed=seed + 2)
    checker = AxiChecker("axi", cfg.axi_data_width)
    bench.add(ddr, checker, src, dsrc)
    nbursts = sum(len(split_bursts(cfg, a, n)) for a, n in transfers)

    class BCount:
        n = 0

        def drive(self, io):
            pass

        def sample(self, io):
            self.n += io.get("axi__b__valid") & io.get("axi__b__ready")
    bc = BCount()
    bench.add(bc)
    bench.run(lambda: bc.n == nbursts and src.idle() and dsrc.idle(), max_cycles=60_000)
    msg = _first_mismatch(ddr.mem, want)
    assert not msg, msg
    return bench, ddr


@pytest.mark.parametrize("seed,stall", [(3, 0.0), (4, 0.3)])
def test_write_random_alignment_under_stalls(seed, stall):
    rng = random.Random(seed)
    # Non-overlapping transfers so the expected image does not depend on order.
    transfers, used = [], np.zeros(MEM, bool)
    while len(transfers) < 12:
        a, n = random_transfers(rng, 1, 300)[0]
        if not used[a:a + n].any():
            used[a:a + n] = True
            transfers.append((a, n))
    if not used[4093:4113].any():
        transfers.append((4096 - 3, 20))      # straddles a 4 KB boundary
    run_writes(transfers, stall=stall, seed=seed)


def test_config_validation():
    import gc
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the half-built component is never elaborated
        with pytest.raises(TypeError):
            DMAReader({"axi_data_width": 64})
        gc.collect()


@pytest.mark.parametrize("variant", [
    dict(max_burst_beats=1, max_outstanding_reads=1),
    dict(axi_data_width=32, max_burst_beats=256, max_outstanding_reads=2),
    dict(axi_data_width=128, array_cols=16, max_burst_beats=3, max_outstanding_reads=3),
], ids=["1beat-1outstanding", "32bit-256beats", "128bit-3beats"])
def test_read_and_write_config_edges(variant):
    cfg = CFG.replace(**variant)
    rng = random.Random(21)
    transfers = random_transfers(rng, 6, 700) + [(4096 - 1, 2)]
    run_reads("amaranth", transfers, stall=0.2, latency=4, seed=21, cfg=cfg)
    run_writes([(1, 700), (4096 - 1, 2), (5000, 33)], stall=0.2, seed=22, cfg=cfg)
