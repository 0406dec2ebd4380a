"""CSR block: register round trips, strobes, side effects and bus error responses."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from rtl.config import SMALL_TEST, DEFAULT
from rtl.control.csr import CSR
from rtl.control.registers import ID_MAGIC, firmware_register_map, main as registers_main, markdown
from rtl.sim import AxiChecker, AxiLiteMaster, make_bench
from rtl.sim.bench import Model

CFG = SMALL_TEST
MAP = firmware_register_map(CFG)["registers"]
OKAY, SLVERR, DECERR = 0, 2, 3
ROOT = str(Path(__file__).resolve().parents[3])


class Pins(Model):
    """Drives the CSR's hardware-side inputs from ``values`` and records its pulse outputs."""

    def __init__(self, values: dict, watch=()):
        self.values, self.watch = values, watch
        self.seen = {w: [] for w in watch}

    def drive(self, io):
        for k, v in self.values.items():
            io.set(k, v)

    def sample(self, io):
        for w in self.watch:
            if io.get(w):
                self.seen[w].append(io.cycle)


def make(cfg=CFG, *, stall=0.0, seed=0, pins=None, watch=()):
    bench = make_bench(CSR(cfg))
    master = AxiLiteMaster("bus", stall=stall, seed=seed)
    pins = Pins(pins or {}, watch)
    bench.add(master, AxiChecker("bus", 32, lite=True), pins)
    return bench, master, pins


def off(name):
    return MAP[name]["offset"]


def test_reset_values_and_identity():
    bench, master, _ = make()
    ops = {name: master.read(r["offset"]) for name, r in MAP.items()}
    bench.run(max_cycles=2000)
    assert ops["ID"].rdata == ID_MAGIC == 0x4D335654
    c0 = ops["CONFIG0"].rdata
    assert (c0 & 0xFF, c0 >> 8 & 0xFF, c0 >> 16 & 0xFF) == (
        CFG.array_rows, CFG.array_cols, CFG.axi_bytes)
    assert ops["CONFIG1"].rdata & 0x1FF == CFG.max_burst_beats
    assert ops["WEIGHT_BUF_BYTES"].rdata == CFG.weight_buffer_bytes
    for name, op in ops.items():
        assert op.resp == OKAY, f"{name}: resp {op.resp}"
        if not name.startswith("PERF_CYCLES"):
            assert op.rdata == MAP[name]["reset"], f"{name}: {op.rdata:#x}"


@pytest.mark.parametrize("seed", [1, 2])
def test_rw_round_trip_with_strobes_and_timing(seed):
    rng = random.Random(seed)
    bench, master, _ = make(stall=0.3, seed=seed)
    rw = {n: sum(((1 << f["width"]) - 1) << f["lsb"] for f in r["fields"].values()
                 if f["access"] == "rw") for n, r in MAP.items()}
    rw = {n: mask for n, mask in rw.items() if mask}
    shadow = {n: MAP[n]["reset"] for n in rw}
    for batch in range(5):
        # Writes complete in queue order; reads (issued concurrently with the next batch's
        # writes would race) follow each batch.
        for _ in range(8):
            name = rng.choice(sorted(rw))
            data, strb = rng.getrandbits(32), rng.choice([0xF, 0xF, 0x1, 0x6, 0x8, 0x0, 0x3])
            # Address before data, data before address, or both together.
            master.write(off(name), data, strb, aw_delay=rng.randrange(3),
                         w_delay=rng.randrange(3))
            lanes = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
            shadow[name] = (shadow[name] & ~(lanes & rw[name])) | (data & lanes & rw[name])
        bench.run(max_cycles=2000)
        reads = {n: master.read(off(n)) for n in rw}
        bench.run(max_cycles=2000)
        for n, op in reads.items():
            assert op.resp == OKAY
            assert op.rdata == shadow[n], f"batch {batch}: {n} read {op.rdata:#x}, " \
                                          f"expected {shadow[n]:#x}"
    assert all(o.resp == OKAY for o in master.done)


def test_simultaneous_read_and_write():
    bench, master, _ = make(stall=0.5, seed=9)
    task = off("TASK_ID")
    for i in range(20):
        master.write(task, i, aw_delay=i % 3, w_delay=(i // 3) % 3)
        master.read(off("ID"))
    bench.run(max_cycles=3000)
    assert len(master.done) == 40
    assert all(o.resp == OKAY for o in master.done)
    assert all(o.rdata == ID_MAGIC for o in master.done if o.kind == "read")
    last = master.read(task)
    bench.run(max_cycles=100)
    assert last.rdata == 19


def test_error_responses_have_no_effect():
    bench, master, _ = make(stall=0.2, seed=5)
    task = off("TASK_ID")
    master.write(task, 0x5A)
    bad_w = [master.write(task + 1, 0xFF),             # misaligned → SLVERR
             master.write(0xFFC, 0xFF),                 # unmapped → DECERR
             master.write(off("ID"), 0),                # read-only register → SLVERR
             master.write(off("PERF_CYCLES_LO"), 0)]    # counter → SLVERR
    bad_r = [master.read(task + 2), master.read(0x7F0), master.read(0x300)]
    good = master.read(task)
    ident = master.read(off("ID"))
    bench.run(max_cycles=3000)
    assert [o.resp for o in bad_w] == [SLVERR, DECERR, SLVERR, SLVERR]
    assert [o.resp for o in bad_r] == [SLVERR, DECERR, DECERR]
    assert all(o.rdata == 0 for o in bad_r)
    assert good.rdata == 0x5A and ident.rdata == ID_MAGIC


def test_w1p_w1c_irq_and_counters():
    pins = {"status_busy": 1, "status_error_code": 0x42, "perf_cycles_inc": 1,
            "perf_bytes_moved_inc": 3, "perf_busy_cycles_inc": 0, "perf_stall_cycles_inc": 1,
            "status_done_set": 0, "status_error_set": 0}
    bench, master, p = make(pins=pins, watch=("control_start", "control_soft_reset", "irq"))
    master.write(off("CONTROL"), 0b101)                   # start + irq_enable
    bench.run(max_cycles=100)
    assert len(p.seen["control_start"]) == 1, "start must pulse exactly one cycle"
    assert p.seen["control_soft_reset"] == []
    p.values["status_done_set"] = 1
    bench.run(lambda: True, max_cycles=5)
    p.values["status_done_set"] = 0
    st = master.read(off("STATUS"))
    bench.run(max_cycles=100)
    assert st.rdata == 0x42 << 8 | 0b011, hex(st.rdata)
    assert p.seen["irq"], "irq not raised on done with irq_enable"
    master.write(off("STATUS"), 0b010, strb=0x2)          # strobe excludes the done bit: no-op
    bench.run(max_cycles=100)
    st_kept = master.read(off("STATUS"))
    bench.run(max_cycles=100)
    master.write(off("STATUS"), 0b010)                    # W1C
    bench.run(max_cycles=100)
    st2 = master.read(off("STATUS"))
    lo1, hi1 = master.read(off("PERF_CYCLES_LO")), master.read(off("PERF_CYCLES_HI"))
    lo2 = master.read(off("PERF_CYCLES_LO"))
    by = master.read(off("PERF_BYTES_MOVED_LO"))
    bench.run(max_cycles=300)
    assert st_kept.rdata & 0b010 and not st2.rdata & 0b010
    assert hi1.rdata == 0 and 0 < lo1.rdata < lo2.rdata <= bench.cycle + 1
    assert by.rdata > 0 and by.rdata % 3 == 0
    master.write(off("PERF_CONTROL"), 1)
    bench.run(max_cycles=100)
    after = master.read(off("PERF_CYCLES_LO"))
    bench.run(max_cycles=100)
    assert after.rdata < 10, f"counters not cleared: {after.rdata}"


def test_register_map_generation(tmp_path, capsys):
    fw = firmware_register_map(DEFAULT)
    offsets = [r["offset"] for r in fw["registers"].values()]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    assert fw["registers"]["PROGRAM_BASE_HI"]["fields"]["addr"]["width"] == \
        DEFAULT.axi_addr_width - 32
    assert registers_main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["registers"]["ID"]["reset"] == ID_MAGIC
    with open(os.path.join(ROOT, "docs", "registers.md")) as f:
        assert f.read() == markdown(DEFAULT), \
            "docs/registers.md is stale: run python -m rtl.control.registers --markdown > docs/registers.md"
    with pytest.raises(ValueError):
        firmware_register_map(DEFAULT.replace(csr_addr_width=8))
