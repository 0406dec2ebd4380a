"""CSR block: register round trips, strobes, side effects and bus error responses."""

from __future__ import annotations

import gc
import json
import os
import random
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import UnusedElaboratable

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
    bad_w = [master.write(0xFFC, 0xFF),                 # unmapped → DECERR
             master.write(off("ID"), 0),                # read-only register → SLVERR
             master.write(off("PERF_CYCLES_LO"), 0)]    # counter → SLVERR
    bad_r = [master.read(0x7F0), master.read(0x300)]
    good = master.read(task)
    ident = master.read(off("ID"))
    bench.run(max_cycles=3000)
    assert [o.resp for o in bad_w] == [DECERR, SLVERR, SLVERR]
    assert [o.resp for o in bad_r] == [DECERR, DECERR]
    assert all(o.rdata == 0 for o in bad_r)
    assert good.rdata == 0x5A and ident.rdata == ID_MAGIC


# -- sub-word accesses ----------------------------------------------------------------------------
# CPUs (a Cortex-A9 STRB/STRH through the PS interconnect) and standard AXI4-Lite masters
# (cocotbext-axi) put the byte address of an 8- or 16-bit access on AxADDR and its byte lanes in
# WSTRB, with the data at those lane positions. The CSR decodes by word and applies the strobes.

RESP_NAME = {OKAY: "OKAY", 1: "EXOKAY", SLVERR: "SLVERR", DECERR: "DECERR"}


def lanes(strb):
    return sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)


def rw_mask(name):
    return sum(((1 << f["width"]) - 1) << f["lsb"] for f in MAP[name]["fields"].values()
               if f["access"] == "rw")


def check_resp(op, want, what):
    assert op.resp == want, f"{what}: {op.kind} at {op.addr:#x} answered " \
        f"{RESP_NAME.get(op.resp, op.resp)}, expected {RESP_NAME[want]}"


def lite_master_writes(addr, data: bytes):
    """The AXI4-Lite transfers a cocotbext-axi ``AxiLiteMaster.write(addr, data)`` issues:
    ``[(awaddr, wdata, wstrb)]`` — the first at the byte address itself, the rest word aligned."""
    out, pos = [], 0
    while pos < len(data):
        a = addr + pos
        n = min(4 - a % 4, len(data) - pos)
        wdata = sum(b << 8 * (a % 4 + i) for i, b in enumerate(data[pos:pos + n]))
        out.append((a, wdata, ((1 << n) - 1) << a % 4))
        pos += n
    return out


def lite_master_reads(addr, length):
    """``[(araddr, first_lane, n_bytes)]`` of a cocotbext-axi ``AxiLiteMaster.read``."""
    out, pos = [], 0
    while pos < length:
        a = addr + pos
        n = min(4 - a % 4, length - pos)
        out.append((a, a % 4, n))
        pos += n
    return out


@pytest.mark.parametrize("seed", [3, 4])
def test_byte_stores_at_each_offset(seed):
    """STRB at base+k, WSTRB=1<<k, data in lane k (other lanes garbage): only byte k changes."""
    rng = random.Random(seed)
    bench, master, _ = make(stall=0.3, seed=seed)
    reg = "PROGRAM_BASE_LO"                       # a plain 32-bit rw register
    base = off(reg)
    first = master.write(base, 0x11223344)
    bench.run(max_cycles=200)
    check_resp(first, OKAY, "aligned word store")
    value = 0x11223344
    for k in range(4):
        byte = rng.randrange(256)
        garbage = rng.getrandbits(32) & ~(0xFF << 8 * k)
        w = master.write(base + k, garbage | byte << 8 * k, 1 << k,
                         aw_delay=rng.randrange(3), w_delay=rng.randrange(3))
        bench.run(max_cycles=200)
        value = (value & ~(0xFF << 8 * k)) | byte << 8 * k
        r_word, r_byte = master.read(base), master.read(base + k)
        bench.run(max_cycles=200)
        check_resp(w, OKAY, f"8-bit store at offset {k}")
        check_resp(r_byte, OKAY, f"8-bit load at offset {k}")
        assert r_word.rdata == value, f"after the 8-bit store of {byte:#04x} at offset {k}: " \
            f"{reg} = {r_word.rdata:#010x}, expected {value:#010x} (only byte {k} changes)"
        assert r_byte.rdata == value, f"read at {base + k:#x} returned {r_byte.rdata:#010x}, " \
            f"expected the containing word {value:#010x}"


@pytest.mark.parametrize("seed", [5, 6])
def test_halfword_stores(seed):
    """STRH at base+0 (WSTRB=0x3) and base+2 (WSTRB=0xC) change only their half."""
    rng = random.Random(seed)
    bench, master, _ = make(stall=0.3, seed=seed)
    reg = "DATA_BASE_LO"
    base, value = off(reg), 0
    for k in (0, 2, 2, 0):
        half = rng.randrange(1 << 16)
        garbage = rng.getrandbits(32) & ~(0xFFFF << 8 * k)
        w = master.write(base + k, garbage | half << 8 * k, 0x3 << k,
                         aw_delay=rng.randrange(3), w_delay=rng.randrange(3))
        bench.run(max_cycles=200)
        value = (value & ~(0xFFFF << 8 * k)) | half << 8 * k
        r = master.read(base + k)
        bench.run(max_cycles=200)
        check_resp(w, OKAY, f"16-bit store at offset {k}")
        check_resp(r, OKAY, f"16-bit load at offset {k}")
        assert r.rdata == value, f"after the 16-bit store of {half:#06x} at offset {k}: " \
            f"{reg} = {r.rdata:#010x}, expected {value:#010x}"
    # A 16-bit field (PROGRAM_LEN.words) written a byte at a time ends up whole.
    plen = off("PROGRAM_LEN")
    ws = [master.write(plen + 1, 0xAB << 8, 0x2), master.write(plen, 0xCD, 0x1)]
    bench.run(max_cycles=300)
    r = master.read(plen + 1)
    bench.run(max_cycles=300)
    for w in ws:
        check_resp(w, OKAY, "8-bit store to PROGRAM_LEN")
    assert r.rdata == 0xABCD, f"PROGRAM_LEN = {r.rdata:#x} after two byte stores, expected 0xabcd"


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_standard_master_access_patterns(seed):
    """Random 1/2/4-byte stores and loads at every byte address of PROGRAM_BASE..DATA_BASE, split
    exactly as cocotbext-axi's AxiLiteMaster splits them (a 2-byte store at offset 3 becomes a
    WSTRB=0x8 transfer at the byte address and a WSTRB=0x1 transfer at the next word); checked
    against a byte-level model of the four rw registers."""
    rng = random.Random(seed)
    bench, master, _ = make(stall=0.25, seed=seed)
    regs = ["PROGRAM_BASE_LO", "PROGRAM_BASE_HI", "DATA_BASE_LO", "DATA_BASE_HI"]
    lo = off(regs[0])
    assert [off(n) for n in regs] == [lo + 4 * i for i in range(4)]
    mask = b"".join(rw_mask(n).to_bytes(4, "little") for n in regs)
    mem = bytearray(16)
    for step in range(40):
        size = rng.choice([1, 1, 2, 2, 4])
        a = rng.randrange(16 - size + 1)
        if rng.random() < 0.6:
            data = bytes(rng.randrange(256) for _ in range(size))
            ops = [master.write(lo + wa, wd, ws, aw_delay=rng.randrange(2),
                                w_delay=rng.randrange(2))
                   for wa, wd, ws in lite_master_writes(a, data)]
            for i, b in enumerate(data):
                mem[a + i] = b & mask[a + i]
            what = f"step {step}: {size}-byte store of {data.hex()} at +{a}"
            bench.run(max_cycles=500)
            for op in ops:
                check_resp(op, OKAY, what)
        else:
            parts = lite_master_reads(a, size)
            ops = [master.read(lo + ra) for ra, _, _ in parts]
            bench.run(max_cycles=500)
            got = bytearray()
            for op, (_, lane, n) in zip(ops, parts):
                check_resp(op, OKAY, f"step {step}: {size}-byte load at +{a}")
                got += op.rdata.to_bytes(4, "little")[lane:lane + n]
            assert got == mem[a:a + size], f"step {step}: {size}-byte load at +{a} returned " \
                f"{got.hex()}, expected {mem[a:a + size].hex()}"
    reads = {n: master.read(off(n)) for n in regs}
    bench.run(max_cycles=500)
    for i, n in enumerate(regs):
        want = int.from_bytes(mem[4 * i:4 * i + 4], "little")
        assert reads[n].rdata == want, f"{n} = {reads[n].rdata:#x}, expected {want:#x}"


def test_unaligned_reads_return_containing_word():
    bench, master, _ = make(stall=0.2, seed=11)
    master.write(off("TASK_ID"), 0x5A)
    bench.run(max_cycles=200)
    names = ["ID", "VERSION", "CONFIG0", "CONFIG1", "FINGERPRINT", "CONTROL", "TASK_ID"]
    ops = {(n, k): master.read(off(n) + k) for n in names for k in range(4)}
    bench.run(max_cycles=3000)
    for (n, k), op in ops.items():
        check_resp(op, OKAY, f"{n} read at offset {k}")
        assert op.rdata == ops[n, 0].rdata, f"{n} read at offset {k} returned " \
            f"{op.rdata:#010x}, the word reads {ops[n, 0].rdata:#010x}"
    assert ops["ID", 3].rdata == ID_MAGIC and ops["TASK_ID", 1].rdata == 0x5A
    # A counter pair read through unaligned addresses is still coherent (_LO snapshots _HI).
    p = {"perf_cycles_inc": 1}
    bench, master, _ = make(pins=p)
    bench.run(lambda: bench.cycle >= 60, max_cycles=100)
    lo, hi = master.read(off("PERF_CYCLES_LO") + 2), master.read(off("PERF_CYCLES_HI") + 1)
    bench.run(max_cycles=100)
    check_resp(lo, OKAY, "PERF_CYCLES_LO+2")
    check_resp(hi, OKAY, "PERF_CYCLES_HI+1")
    assert hi.rdata == 0 and 55 < lo.rdata <= lo.done_cycle + 1, (lo.rdata, hi.rdata)


def test_wstrb_zero_is_an_okay_no_op():
    pins = {"status_done_set": 0, "status_error_set": 0, "perf_cycles_inc": 1}
    bench, master, p = make(pins=pins, watch=("control_start", "control_soft_reset"))
    master.write(off("TASK_ID"), 0x66)
    master.write(off("CONTROL"), 0b100)                 # irq_enable
    bench.run(max_cycles=100)
    p.values.update(status_done_set=1, status_error_set=1)
    bench.run(lambda: True, max_cycles=3)
    p.values.update(status_done_set=0, status_error_set=0)
    p.seen["control_start"].clear()
    nops = [master.write(off("TASK_ID") + k, 0xFFFFFFFF, 0) for k in range(4)]
    nops += [master.write(off("CONTROL"), 0b011, 0), master.write(off("CONTROL") + 1, 0xFFFF, 0),
             master.write(off("STATUS"), 0b110, 0), master.write(off("STATUS") + 2, 0xFF, 0),
             master.write(off("PERF_CONTROL"), 1, 0),
             master.write(off("ID"), 0, 0), master.write(off("ID") + 3, 0, 0),
             master.write(off("PERF_CYCLES_HI") + 2, 0, 0)]
    bench.run(max_cycles=500)
    for op in nops:
        check_resp(op, OKAY, "WSTRB=0 write")
    dec = master.write(0x02C + 1, 0xFF, 0)              # unmapped stays DECERR, strobes or not
    bench.run(max_cycles=200)
    task, ctl = master.read(off("TASK_ID")), master.read(off("CONTROL"))
    st = master.read(off("STATUS"))
    cyc = master.read(off("PERF_CYCLES_LO"))
    bench.run(max_cycles=200)
    check_resp(dec, DECERR, "WSTRB=0 write to an unmapped address")
    assert task.rdata == 0x66, f"TASK_ID changed by WSTRB=0 writes: {task.rdata:#x}"
    assert ctl.rdata == 0b100, f"CONTROL changed by a WSTRB=0 write: {ctl.rdata:#x}"
    assert st.rdata & 0b110 == 0b110, f"STATUS done/error cleared by a WSTRB=0 write: {st.rdata:#x}"
    assert p.seen["control_start"] == [] and p.seen["control_soft_reset"] == [], \
        "a WSTRB=0 write to CONTROL pulsed start/soft_reset"
    assert cyc.rdata >= cyc.done_cycle - 2, \
        f"a WSTRB=0 write to PERF_CONTROL cleared the counters " \
        f"({cyc.rdata} at cycle {cyc.done_cycle})"


def test_sub_word_accesses_to_unmapped_addresses_answer_decerr():
    bench, master, _ = make(stall=0.2, seed=12)
    master.write(off("TASK_ID"), 0x5A)
    holes = [0x028, 0x02C, 0x060, 0x084, 0x300, 0xFFC]   # no register at these words
    ws = [master.write(h + k, 0xFFFFFFFF, strb) for h in holes
          for k, strb in ((0, 0x1), (1, 0x2), (2, 0xC), (3, 0x8))]
    rs = [master.read(h + k) for h in holes for k in range(4)]
    task = master.read(off("TASK_ID"))
    bench.run(max_cycles=3000)
    for op in ws + rs:
        check_resp(op, DECERR, "sub-word access to an unmapped address")
    assert all(o.rdata == 0 for o in rs), "DECERR reads must return 0"
    assert task.rdata == 0x5A


def test_side_effect_registers_act_per_strobed_lane():
    """w1p (CONTROL.start/soft_reset, PERF_CONTROL.clear) and w1c (STATUS.done/error) fire only
    when a store strobes their byte lane (lane 0) and writes 1 there; stores to other lanes of
    those registers answer OKAY and do nothing. Stores to registers without writable fields
    answer SLVERR whatever their size (documented rule)."""
    pins = {"status_busy": 0, "status_error_code": 0x42, "perf_cycles_inc": 1,
            "status_done_set": 0, "status_error_set": 0}
    bench, master, p = make(pins=pins, watch=("control_start", "control_soft_reset"))
    ctl, st, pc = off("CONTROL"), off("STATUS"), off("PERF_CONTROL")
    quiet = [master.write(ctl + 1, 0xFFFFFF07, 0x2),    # lanes 1..3 of CONTROL: nothing there
             master.write(ctl + 2, 0xFFFF0007, 0xC),
             master.write(ctl + 3, 0xFF000007, 0x8)]
    bench.run(max_cycles=300)
    assert p.seen["control_start"] == [] and p.seen["control_soft_reset"] == [], \
        "a store not strobing lane 0 of CONTROL pulsed start/soft_reset"
    go = master.write(ctl, 0b101, 0x1)                  # STRB at CONTROL+0: start + irq_enable
    bench.run(max_cycles=100)
    assert len(p.seen["control_start"]) == 1 and p.seen["control_soft_reset"] == [], p.seen
    c1 = master.read(ctl + 3)
    srst = master.write(ctl, 0xFFFFFF06, 0x3)           # STRH at +0: soft_reset, irq_enable kept
    bench.run(max_cycles=100)
    assert len(p.seen["control_start"]) == 1 and len(p.seen["control_soft_reset"]) == 1, p.seen
    c2 = master.read(ctl)
    bench.run(max_cycles=100)
    for op in quiet + [go, srst, c1]:
        check_resp(op, OKAY, "sub-word access to CONTROL")
    assert c1.rdata == 0b100 and c2.rdata == 0b100, (c1.rdata, c2.rdata)

    p.values.update(status_done_set=1, status_error_set=1)
    bench.run(lambda: True, max_cycles=3)
    p.values.update(status_done_set=0, status_error_set=0)
    keep = [master.write(st + 1, 0xFFFFFFFF, 0x2),      # error_code lane (ro): OKAY, no effect
            master.write(st + 2, 0xFFFFFFFF, 0xC)]
    bench.run(max_cycles=300)
    s1 = master.read(st + 1)
    bench.run(max_cycles=100)
    clr = master.write(st, 0xFFFFFF02, 0x1)             # STRB at STATUS+0: clears done only
    bench.run(max_cycles=100)
    s2 = master.read(st + 2)
    bench.run(max_cycles=100)
    for op in keep + [s1, clr, s2]:
        check_resp(op, OKAY, "sub-word access to STATUS")
    assert s1.rdata == 0x42 << 8 | 0b110, f"STATUS {s1.rdata:#x}: a store to lanes 1..3 changed it"
    assert s2.rdata == 0x42 << 8 | 0b100, f"STATUS {s2.rdata:#x}: expected done cleared only"

    noclr = master.write(pc + 1, 0xFFFFFFFF, 0x2)       # not lane 0: counters keep counting
    bench.run(max_cycles=100)
    before = master.read(off("PERF_CYCLES_LO"))
    bench.run(max_cycles=100)
    clear = master.write(pc, 0x01, 0x1)
    bench.run(max_cycles=100)
    after = master.read(off("PERF_CYCLES_LO") + 1)
    bench.run(max_cycles=100)
    check_resp(noclr, OKAY, "PERF_CONTROL+1")
    check_resp(clear, OKAY, "PERF_CONTROL+0")
    assert before.rdata >= before.done_cycle - 2, \
        f"a store to PERF_CONTROL lane 1 cleared the counters ({before.rdata})"
    assert after.rdata < 20, f"an 8-bit store of 1 at PERF_CONTROL+0 did not clear ({after.rdata})"

    ro = [master.write(off("ID") + 2, 0xFF << 16, 0x4), master.write(off("VERSION") + 1, 0, 0x6),
          master.write(off("PERF_CYCLES_HI") + 3, 0, 0x8)]
    ident = master.read(off("ID"))
    bench.run(max_cycles=300)
    for op in ro:
        check_resp(op, SLVERR, "sub-word store to a register without writable fields")
    assert ident.rdata == ID_MAGIC


def test_side_effect_fields_must_lie_in_one_byte_lane(monkeypatch):
    """A w1p/w1c field spanning byte lanes could fire on a half-written sub-word store: refused."""
    from rtl.control import csr as csr_mod
    from rtl.control.registers import Field, Register
    for f in (Field("go", 4, 8, "w1p"), Field("flags", 6, 4, "w1c")):
        monkeypatch.setattr(csr_mod, "register_map", lambda cfg, f=f: (Register("X", 0, "", (f,)),))
        with pytest.raises(ValueError, match="one byte lane"):
            CSR(CFG)
    with warnings.catch_warnings():                    # the refused CSRs were never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


@pytest.mark.parametrize("stall,seed", [(0.0, 0), (0.3, 13)])
def test_sub_word_access_timing_matches_word_access(stall, seed):
    """The same sequence with byte addresses +1..+3 completes on exactly the same cycles."""
    names = ["TASK_ID", "ID", "CONTROL", "PROGRAM_LEN", "PERF_CYCLES_LO", "STATUS", "0x2C"]
    results = []
    for k in (0, 1, 2, 3):
        bench, master, _ = make(stall=stall, seed=seed)
        for i, n in enumerate(names * 2):
            a = (0x2C if n == "0x2C" else off(n)) + k
            master.write(a, 0, 1 << k, aw_delay=i % 3, w_delay=(i // 3) % 3)
            master.read(a)
        bench.run(max_cycles=3000)
        results.append([(o.kind, o.addr & ~3, o.done_cycle, o.resp) for o in master.done])
    for k in (1, 2, 3):
        assert results[k] == results[0], f"byte offset {k}: cycles/responses differ from the " \
            f"word-aligned run:\n{results[k]}\n{results[0]}"
    if stall == 0:
        # Unchanged cycle timing: a lone read answers 1 cycle after AR, a write 1 cycle after
        # AW+W (the first entries of the run above, from reset).
        assert results[0][:2] == [("read", off("TASK_ID"), 1, OKAY),
                                  ("write", off("TASK_ID"), 2, OKAY)], results[0][:2]


def test_w1p_w1c_irq_and_counters():
    pins = {"status_busy": 1, "status_error_code": 0x42, "perf_cycles_inc": 1,
            "perf_bytes_moved_inc": 3, "perf_busy_cycles_inc": 0, "perf_weight_stall_cycles_inc": 1,
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


class _Pulses(Model):
    """``perf_bytes_moved_inc`` = 7 in the given cycles and three cycles after the one
    ``perf_control_clear`` is seen high."""

    def __init__(self, cycles):
        self.cycles, self.clear_at = set(cycles), []

    def drive(self, io):
        late = bool(self.clear_at) and io.cycle == self.clear_at[0] + 3
        io.set("perf_bytes_moved_inc", 7 if io.cycle in self.cycles or late else 0)

    def sample(self, io):
        if io.get("perf_control_clear"):
            self.clear_at.append(io.cycle)


def test_counter_increments_are_neither_lost_nor_doubled():
    """The registered increment: one-cycle pulses, back to back or apart, are each counted
    once; one shortly after a clear is counted from zero."""
    bench = make_bench(CSR(CFG))
    master = AxiLiteMaster("bus")
    pulses = _Pulses([3, 4, 10, 11, 12, 30])
    bench.add(master, AxiChecker("bus", 32, lite=True), pulses)
    bench.run(lambda: bench.cycle >= 60)
    before = master.read(off("PERF_BYTES_MOVED_LO"))
    bench.run(max_cycles=100)
    assert before.rdata == 6 * 7, f"counted {before.rdata}, expected 42"
    master.write(off("PERF_CONTROL"), 1)
    bench.run(lambda: bench.cycle >= 150)
    after = master.read(off("PERF_BYTES_MOVED_LO"))
    bench.run(max_cycles=100)
    assert len(pulses.clear_at) == 1 and after.rdata == 7, f"after the clear: {after.rdata}, expected 7"


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
