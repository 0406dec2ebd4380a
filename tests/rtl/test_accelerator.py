"""The whole accelerator end to end: a compiled model image in simulated DDR, frames started by
the firmware driver, outputs compared bit for bit with the integer reference.

``nano`` and ``tiny`` (on the default ZCU104 config) run in Verilator on the compiled harness
(default suite: one build each, cached; a ``tiny`` frame takes ~45 s); ``nano`` also in
Amaranth's simulator (``-m slow``, ~15 min).
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware.backends.sim import SIM_DDR_BASE, SimBackend
from firmware.driver import Accelerator as Driver
from firmware.errors import AcceleratorError
from firmware.compiler import compile_model
from rtl.config import DEFAULT, NANO
from rtl.control.registers import ERROR_CODES
from rtl.sim.accel_sim import AcceleratorSim
from rtl.sim.models import int_model_for

DDR_BYTES = 1 << 22


def _error_code(name: str) -> int:
    return next(code for code, text in ERROR_CODES.items() if name in text)


def _pixels(model, seed: int) -> np.ndarray:
    h, w = model.cfg.img_size
    return np.random.default_rng(seed).integers(0, 256, (3, h, w), dtype=np.uint8)


def _assert_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} of {want.size} values differ; first at "
                             f"{first}: accelerator {got[first]}, integer reference {want[first]}")


class Rig:
    """One simulated accelerator + DDR, the firmware driver and a loaded model."""

    def __init__(self, model_name: str, cfg, backend: str, ddr_bytes: int = DDR_BYTES):
        self.model = int_model_for(model_name)
        self.compiled = compile_model(self.model, cfg)
        self.sim = AcceleratorSim(cfg, backend=backend, ddr_base=SIM_DDR_BASE, ddr_bytes=ddr_bytes)
        self.backend = SimBackend(cfg, simulator=backend, ddr_base=SIM_DDR_BASE,
                                  ddr_bytes=ddr_bytes, sim=self.sim)
        self.driver = Driver(self.backend, cfg, timeout=0.05).open()
        self.loaded = self.driver.load(self.compiled.image)
        self.regs = self.driver.regs

    def frame(self, pixels: np.ndarray, task: str):
        result = self.driver.run_frame(pixels, task)
        _assert_equal(result.output, self.model.infer(pixels, task), f"{task} output")
        return result

    def start_raw(self, task_id: int = 0) -> None:
        """Start a frame by register writes only (for error paths the driver would refuse)."""
        self.regs.write_fields("TASK_ID", task=task_id)
        self.regs.write_fields("STATUS", done=1, error=1)
        self.regs.write_fields("CONTROL", start=1)

    def wait_status(self, max_cycles: int = 2_000_000, poll: int = 2_000) -> dict:
        """Poll STATUS until done or error; a hang fails the test instead of waiting forever."""
        for _ in range(0, max_cycles, poll):
            status = self.regs.read_fields("STATUS")
            if status["done"] or status["error"]:
                return status
            self.sim.step(poll)
        raise AssertionError(f"no done/error within {max_cycles} cycles: {status}")

    def recover(self) -> None:
        self.driver.soft_reset()


@pytest.fixture(scope="module")
def nano():
    return Rig("nano", NANO, "verilator")


def test_nano_tasks_back_to_back_bit_exact_and_switch_free(nano):
    a, b = _pixels(nano.model, 1), _pixels(nano.model, 2)
    seg1 = nano.frame(a, "semseg")
    dep = nano.frame(a, "depth")
    seg2 = nano.frame(a, "semseg")
    nano.frame(b, "depth")
    # Switching depth → semseg left nothing behind: the same frame costs the same cycles.
    assert seg2.busy_cycles == seg1.busy_cycles
    # Between frames only the host's register accesses: the same count in both directions.
    gap_to_depth = dep.start_cycle - seg1.done_cycle
    gap_to_semseg = seg2.start_cycle - dep.done_cycle
    assert gap_to_depth == gap_to_semseg < 200, (gap_to_depth, gap_to_semseg)
    # The accelerator is busy from the start write to its interrupt, nothing more.
    for f in (seg1, dep, seg2):
        assert 0 <= (f.done_cycle - f.start_cycle) - f.busy_cycles < 16


def test_nano_corrupt_program_word_is_an_error(nano):
    from firmware.image import ModelImage
    image = nano.compiled.image
    program = bytearray(image.program)
    program[7 * 32] = 0xEE                      # opcode byte of instruction 7: not an Op
    bad = ModelImage(image.fingerprint, image.meta, bytes(program), image.data)
    nano.driver.load(bad)
    try:
        with pytest.raises(AcceleratorError) as info:
            nano.driver.run_frame(_pixels(nano.model, 1), "semseg")
        assert info.value.error_code == _error_code("malformed")
    finally:
        nano.loaded = nano.driver.load(image)


@pytest.mark.parametrize("pointer, expected", [("DATA_BASE", "read"),
                                                ("OUTPUT_BASE", "write")])
def test_nano_out_of_range_address_is_a_dma_error(nano, pointer, expected):
    good = nano.regs.read_addr(pointer)
    nano.regs.write_addr(pointer, 0x40_0000_0000)      # no memory answers there (DECERR)
    try:
        nano.start_raw(0)
        status = nano.wait_status()
        assert status["error"] and not status["done"]
        assert expected in ERROR_CODES[status["error_code"]].lower()
        assert not nano.regs.read_fields("STATUS")["busy"]     # drained, no AXI left behind
    finally:
        nano.regs.write_addr(pointer, good)
        nano.recover()


def test_nano_start_while_busy_is_an_error_then_recovers(nano):
    pixels = _pixels(nano.model, 3)
    nano.backend.mem_write(nano.loaded.input_addr,
                           bytes(nano.driver.layout.pack_input(nano.loaded.meta, pixels)))
    nano.start_raw(0)
    nano.sim.step(500)
    assert nano.regs.read_fields("STATUS")["busy"]
    nano.regs.write_fields("CONTROL", start=1)
    status = nano.wait_status()
    assert status["error"] and status["error_code"] == _error_code("while a program was running")
    nano.recover()
    nano.frame(pixels, "depth")                 # and the next frame is exact again


def test_nano_unknown_task_id_is_an_error(nano):
    nano.start_raw(len(nano.model.cfg.task_names))
    status = nano.wait_status()
    assert status["error"] and status["error_code"] == _error_code("task")
    nano.recover()


@pytest.mark.slow
def test_nano_amaranth_simulator_bit_exact():
    rig = Rig("nano", NANO, "amaranth")
    rig.frame(_pixels(rig.model, 1), "depth")


@pytest.fixture(scope="module")
def tiny():
    return Rig("tiny", DEFAULT, "verilator", ddr_bytes=1 << 25)


def test_tiny_tasks_back_to_back_bit_exact_and_switch_free(tiny):
    pixels = _pixels(tiny.model, 1)
    seg = tiny.frame(pixels, "semseg")
    dep = tiny.frame(pixels, "depth")
    # The switch costs only the host's register accesses between the frames.
    gap = dep.start_cycle - seg.done_cycle
    assert 0 < gap < 200, gap
    for f in (seg, dep):
        assert 0 <= (f.done_cycle - f.start_cycle) - f.busy_cycles < 16
