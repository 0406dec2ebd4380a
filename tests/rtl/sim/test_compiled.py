"""The compiled whole-frame harness equals the Python cycle models: the same random draws, the
same cycles, counters and outputs on a whole ``nano`` frame (with and without DDR stalls and a
bandwidth cap), and the same protocol violations caught with the same messages."""

from __future__ import annotations

import ctypes
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from firmware.backends.sim import SIM_DDR_BASE, SimBackend
from firmware.driver import Accelerator as Driver
from rtl.bus.axi import axi4_lite_signature, axi4_signature
from firmware.compiler import compile_model
from rtl.config import NANO
from rtl.sim import AxiChecker, DDRModel, make_bench
from rtl.sim.accel_sim import AcceleratorSim
from rtl.sim.axi_checker import AxiProtocolError
from rtl.sim.bench import Script, SimTimeout
from rtl.sim.compiled import CompiledBench
from rtl.sim.models import int_model_for

WIDTH = 128          # the wide-payload paths (VlWide ports, 128-bit hex in messages)


def _all_in(sig: wiring.Signature) -> wiring.Signature:
    """``sig`` with every port an input: a monitor sees both sides of a bus."""
    return wiring.Signature({name: Out(_all_in(m.signature)) if m.is_signature else In(m.shape)
                             for name, m in sig.members.items()})


MONITOR = wiring.Signature({"axi": Out(_all_in(axi4_signature(40, WIDTH, 4))),
                            "lite": Out(_all_in(axi4_lite_signature(12))),
                            "alive": Out(1)})


class Monitor(wiring.Component):
    """Nothing but inputs: an AXI4 bus and an AXI4-Lite bus that scripts and models drive."""

    def __init__(self):
        super().__init__(MONITOR)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.alive.eq(~self.alive)
        return m


@pytest.fixture(scope="module")
def monitor_lib():
    return CompiledBench(Monitor()).lib


def test_random_draws_equal_cpythons(monitor_lib):
    for seed in (0, 1, 5, 12, 2**32 + 7, 2**63 + 3):
        out = (ctypes.c_double * 700)()         # past one MT19937 state refill (624 words)
        monitor_lib.h_random(seed, len(out), out)
        rng = random.Random(seed)
        want = [rng.random() for _ in range(len(out))]
        bad = next((i for i, (a, b) in enumerate(zip(out, want)) if a != b), None)
        assert bad is None, f"seed {seed}: draw {bad} is {out[bad]!r}, CPython {want[bad]!r}"


def _rows(steps: list[dict], names: list[str]) -> list[list[int]]:
    """Per-cycle rows from ``steps`` (each names only what changes; the rest carries over)."""
    cur = {n: 0 for n in names}
    rows = []
    for step in steps:
        cur.update(step)
        rows.append([cur[n] for n in names])
    return rows


def _ax(ch, *, valid=1, ready=1, id=0, addr=0, len=0, size=4, burst=1):
    p = f"axi__{ch}__"
    return {p + "valid": valid, p + "ready": ready, p + "id": id, p + "addr": addr,
            p + "len": len, p + "size": size, p + "burst": burst}


def _w(*, valid=1, ready=1, data=0, strb=0xFFFF, last=0):
    return {"axi__w__valid": valid, "axi__w__ready": ready, "axi__w__data": data,
            "axi__w__strb": strb, "axi__w__last": last}


def _r(*, valid=1, ready=1, id=0, data=0, resp=0, last=1):
    return {"axi__r__valid": valid, "axi__r__ready": ready, "axi__r__id": id,
            "axi__r__data": data, "axi__r__resp": resp, "axi__r__last": last}


IDLE = {f"axi__{c}__valid": 0 for c in ("aw", "w", "b", "ar", "r")}
OFF = dict(IDLE, **{f"lite__{c}__valid": 0 for c in ("aw", "w", "b", "ar", "r")})
# name: (cycles, expected message fragment or None for a clean run)
SCENARIOS = {
    "valid dropped": ([_ax("ar", ready=0), IDLE], "VALID dropped before READY"),
    "payload changed": ([_ax("ar", ready=0, addr=0x1000), _ax("ar", ready=0, addr=0x2000)],
                        "payload changed"),
    "wide payload changed": ([_w(ready=0, data=3 << 100), _w(ready=0, data=(3 << 100) | 5)],
                             "data: 0x30000000000000000000000000 -> "),
    "reserved burst": ([_ax("ar", burst=3)], "reserved burst type 3"),
    "size wider than the bus": ([_ax("aw", size=5)], "AxSIZE 32 bytes wider"),
    "INCR across 4 KB": ([_ax("ar", addr=0xFF0, len=1)], "crosses a 4 KB boundary"),
    "illegal WRAP": ([_ax("ar", burst=2, len=2)], "illegal WRAP burst (3 beats at 0x0)"),
    "long FIXED": ([_ax("ar", burst=0, len=16)], "FIXED burst of 17 beats (max 16)"),
    "WLAST early": ([dict(_ax("aw", id=1, len=1)), dict(IDLE, **_w(last=1))],
                    "WLAST=1 on beat 1 of a 2-beat burst"),
    "W before AW, lengths differ": ([_w(), _w(last=1), dict(_w(valid=0), **_ax("aw", len=2))],
                                    "earlier W burst had 2 beats, AW says 3"),
    "W without WLAST": ([_w()] * 257, "more than 256 W beats without WLAST"),
    "R without a read": ([_r(id=3)], "R beat with RID 3 but no outstanding read"),
    "RLAST early": ([_ax("ar", id=2, len=1), dict(IDLE, **_r(id=2, last=1))],
                    "RLAST=1 with 1 beats left in the burst"),
    "B before AW and W": ([{"axi__b__valid": 1, "axi__b__ready": 1}],
                          "B response with BID 0 before its AW and last W"),
    "lite read response unasked": ([{"lite__r__valid": 1, "lite__r__ready": 1}],
                                   "read response without an outstanding read"),
    "lite write response early": ([{"lite__aw__valid": 1, "lite__aw__ready": 1},
                                   {"lite__aw__valid": 0, "lite__b__valid": 1,
                                    "lite__b__ready": 1}],
                                  "write response before both address and data"),
    "lite valid dropped": ([{"lite__ar__valid": 1}, {"lite__ar__valid": 0}],
                           "VALID dropped before READY"),
    "clean write and read": ([dict(_ax("aw", len=1, addr=0x40)), dict(IDLE, **_w()),
                              dict(IDLE, **_w(last=1)), dict(IDLE, axi__b__valid=1,
                                                            axi__b__ready=1),
                              dict(IDLE, **_ax("ar", id=1, len=1, addr=0x80)),
                              dict(IDLE, **_r(id=1, last=0)), dict(IDLE, **_r(id=1)), IDLE],
                             None),
}


def _names() -> list[str]:
    return sorted("__".join(path) for path, _ in _members(MONITOR) if path != ("alive",))


def _members(sig, prefix=()):
    for name, m in sig.members.items():
        if m.is_signature:
            yield from _members(m.signature, prefix + (name,))
        else:
            yield prefix + (name,), m


def _run_python(steps):
    names = _names()
    bench = make_bench(Monitor(), "amaranth")
    checkers = [AxiChecker("axi", WIDTH), AxiChecker("lite", 32, lite=True)]
    bench.add(Script(names, _rows([OFF] + steps, names)), *checkers)
    return bench, checkers


def _run_compiled(steps):
    names = _names()
    bench = CompiledBench(Monitor())
    bench.add_script(names, _rows([OFF] + steps, names))
    checkers = [bench.add_checker("axi", WIDTH), bench.add_checker("lite", 32, lite=True)]
    return bench, checkers


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_checker_catches_the_same_violation(name, monitor_lib):
    steps, fragment = SCENARIOS[name]
    results = []
    for make in (_run_python, _run_compiled):
        bench, checkers = make(steps)
        try:
            bench.run(lambda: False, max_cycles=len(steps) + 3)
        except SimTimeout:
            results.append(("clean", bench.cycle))
        except AxiProtocolError as exc:
            results.append((str(exc), bench.cycle))
    python, compiled = results
    assert compiled == python, f"compiled {compiled!r} != Python {python!r}"
    if fragment is None:
        assert python[0] == "clean", python
    else:
        assert fragment in python[0], python


def test_ddr_model_refuses_narrow_bursts_alike():
    """The DDR model's own assertion (only full-width INCR bursts) has the same message."""
    names = [n for n in _names() if n.startswith("axi__ar__") and not n.endswith("ready")]
    narrow = _ax("ar", size=2)
    del narrow["axi__ar__ready"]            # the DDR model drives READY
    steps = [{n: 0 for n in names}, narrow]
    messages = []
    bench = make_bench(Monitor(), "amaranth")
    bench.add(Script(names, _rows(steps, names)),
              DDRModel("axi", 4096, WIDTH, read_latency=2))
    with pytest.raises(AssertionError) as py:
        bench.run(lambda: False, max_cycles=5)
    messages.append(str(py.value))
    cb = CompiledBench(Monitor())
    cb.add_script(names, _rows(steps, names))
    cb.add_ddr("axi", np.zeros(4096, np.uint8), WIDTH, read_latency=2)
    with pytest.raises(AssertionError) as cc:
        cb.run(lambda: False, max_cycles=5)
    messages.append(str(cc.value))
    assert messages[0] == messages[1] == ("DDR model only serves full-width INCR bursts "
                                          "(ARSIZE=4 bytes, ARBURST=1)")


def test_run_continues_after_a_timeout_like_the_python_bench():
    cycles = []
    for make in (lambda: make_bench(Monitor(), "amaranth"), lambda: CompiledBench(Monitor())):
        bench = make()
        for _ in range(3):
            with pytest.raises(SimTimeout):
                bench.run(lambda: False, max_cycles=4)
        cycles.append(bench.cycle)
    assert cycles[0] == cycles[1] == 15


def _frame(harness: str, task: str, **ddr):
    model = int_model_for("nano")
    image = compile_model(model, NANO).image
    sim = AcceleratorSim(NANO, backend="verilator", harness=harness, ddr_base=SIM_DDR_BASE,
                         ddr_bytes=1 << 22, **ddr)
    backend = SimBackend(NANO, simulator="verilator", ddr_base=SIM_DDR_BASE, ddr_bytes=1 << 22,
                         sim=sim)
    driver = Driver(backend, NANO, timeout=0.05).open()
    driver.load(image)
    h, w = model.cfg.img_size
    pixels = np.random.default_rng(7).integers(0, 256, (3, h, w), dtype=np.uint8)
    f = driver.run_frame(pixels, task)
    want = model.infer(pixels, task)
    assert np.array_equal(f.output, want), f"{harness}: output differs from the reference"
    return {"start": f.start_cycle, "done": f.done_cycle, "busy": f.busy_cycles,
            "counters": dict(f.counters), "output": f.output.tobytes(),
            "trace": list(sim.trace.events), "work": list(sim.work.events),
            "ddr": sim.ddr_counters(), "cycle": sim.cycle}


@pytest.mark.parametrize("task, ddr", [
    ("semseg", {}),
    ("depth", {"stall": 0.15, "bytes_per_cycle": 3.0, "seed": 9}),
], ids=["no-stalls", "stalls-and-bandwidth-cap"])
def test_nano_frame_identical_on_both_harnesses(task, ddr):
    python = _frame("python", task, **ddr)
    compiled = _frame("compiled", task, **ddr)
    for key in python:
        assert compiled[key] == python[key], (
            f"{key}: compiled {str(compiled[key])[:200]} != Python {str(python[key])[:200]}")
