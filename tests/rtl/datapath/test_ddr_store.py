"""The DDR store alone: result rows become int16 words in DDR in emission order, through the
AXI4 writer, checked by the protocol checker, with W-channel stalls back-pressuring the rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO, SMALL_TEST
from rtl.datapath.ddr_store import DdrStore, store_layout
from rtl.sim import AxiChecker, DDRModel, StreamSource, make_bench
from tests.rtl.datapath.harness import Recorder, pack_value


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST], ids=["nano", "small-test"])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_rows_land_in_ddr(cfg, stall):
    C = cfg.array_cols
    rng = random.Random(6)
    rows = [{"m": i, "tn": 0, "values": [rng.randrange(-2**15, 2**15) for _ in range(C)]}
            for i in range(9)]
    addr = 0x240
    job = {"ddr_addr": addr, "length": len(rows) * 2 * C, "beats": len(rows) * cfg.store_ratio}
    dut = DdrStore(cfg)
    bench = make_bench(dut, "amaranth")
    ddr = DDRModel("axi", 1 << 14, cfg.axi_data_width, stall=stall, seed=2)
    rec = Recorder("done")
    bench.add(StreamSource("cmd", [pack_value(store_layout(cfg), job)]),
              StreamSource("i", [pack_value(dut.i.payload.shape(), r) for r in rows]),
              ddr, AxiChecker("axi", cfg.axi_data_width), rec)
    bench.run(lambda: len(rec.high["done"]) > 0 and rec.high["done"][-1] > 5 and ddr.idle(),
              max_cycles=5000)
    got = np.frombuffer(ddr.read(addr, job["length"]).tobytes(), "<i2").reshape(len(rows), C)
    want = np.array([r["values"] for r in rows], np.int16)
    bad = np.argwhere(got != want)
    assert not len(bad), f"{len(bad)} values differ; first at {tuple(bad[0])}"


def test_init():
    Fragment.get(DdrStore(NANO), None)
