"""Driver logic against a register-level fake of the simulated accelerator: identification,
loading, the per-frame protocol, task switches, error status, timeouts, bad requests."""

import numpy as np
import pytest

from firmware import layout
from firmware.backends.sim import SimBackend
from firmware.driver import Accelerator, RegisterFile
from firmware.errors import (EXIT_ACCELERATOR, EXIT_IMAGE, EXIT_TIMEOUT, EXIT_USAGE,
                             AcceleratorError, AcceleratorTimeout, IncompatibleImageError,
                             UsageError)
from rtl.config import NANO
from rtl.control.registers import ERROR_CODES, ID_MAGIC, firmware_register_map
from rtl.control.version import VERSION

from .conftest import make_accel
from .fakes import FAKE_CFG, fake_output, make_image

PIX = np.random.default_rng(1).integers(0, 256, (3, 8, 16), dtype=np.uint8)


def writes(fake, since=0):
    return [(n, v) for kind, n, v, _ in fake.log[since:] if kind == "w"]


def test_open_identifies_and_resets_once():
    accel, fake = make_accel()
    accel.open()
    assert fake.soft_resets == 1
    assert accel.version == VERSION and accel.fingerprint == FAKE_CFG.fingerprint()
    assert accel.config_known and accel.clock_hz == FAKE_CFG.clock_mhz * 1e6
    info = accel.info()
    assert info["id"] == f"{ID_MAGIC:#010x}" and info["config_name"] == "small-test"
    assert info["readback"]["CONFIG0"]["array_rows"] == FAKE_CFG.array_rows
    assert set(info["counters"]) >= {"PERF_CYCLES", "PERF_BUSY_CYCLES"}


def test_open_finds_config_from_fingerprint():
    accel, _ = make_accel(NANO, accel_config=None)
    accel.open()
    assert accel.config == NANO and accel.config_known


def test_wrong_id():
    accel, _ = make_accel(ident=0xDEADBEEF)
    with pytest.raises(AcceleratorError, match="ID register reads 0xdeadbeef, expected "
                                               "0x4d335654") as e:
        accel.open()
    assert e.value.exit_code == EXIT_ACCELERATOR


def test_wrong_version():
    accel, fake = make_accel()
    fake.val["VERSION"] = 7 << 16
    with pytest.raises(AcceleratorError, match="register-map version 7.0 is not supported"):
        accel.open()


def test_load_places_sections(image):
    accel, fake = make_accel()
    accel.open()
    m = accel.load(image)
    for addr in (m.data_addr, m.program_addr, m.input_addr, m.output_addr):
        assert addr % 4096 == 0
    assert fake.read_mem(m.data_addr, len(image.data)) == image.data
    assert fake.read_mem(m.program_addr, len(image.program)) == image.program
    assert fake._addr("DATA_BASE") == m.data_addr
    assert fake._addr("PROGRAM_BASE") == m.program_addr
    assert fake._addr("INPUT_BASE") == m.input_addr
    assert fake._addr("OUTPUT_BASE") == m.output_addr
    assert fake.val["PROGRAM_LEN"] == image.instructions == 3
    assert m.input_bytes == layout.input_bytes(image.meta)
    assert m.output_bytes == max(layout.output_bytes(image.meta, t) for t in ("semseg", "depth"))
    assert m.tasks == ["semseg", "depth"]


def test_load_refuses_other_fingerprint():
    accel, _ = make_accel()
    bad = make_image(fingerprint=0x12345678)
    with pytest.raises(IncompatibleImageError) as e:
        accel.load(bad)
    assert e.value.exit_code == EXIT_IMAGE
    assert (f"image built for accelerator config fingerprint 0x12345678, this accelerator "
            f"reports {FAKE_CFG.fingerprint():#010x}") in str(e.value)
    assert accel.model is None


def test_load_detects_bad_ddr(image):
    accel, fake = make_accel()
    real = fake.write_mem
    fake.write_mem = lambda addr, data: real(addr, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(AcceleratorError, match="DDR check failed: the data section"):
        accel.load(image)


@pytest.mark.parametrize("completion", ["irq", "poll"])
def test_frames_and_protocol(image, completion):
    accel, fake = make_accel(completion=completion)
    accel.open()
    m = accel.load(image)
    results = []
    for task in ("semseg", "depth", "depth", 0):
        since = len(fake.log)
        res = accel.run_frame(PIX, task)
        results.append(res)
        # the bytes the fake read as input start with the packed pixels
        packed = layout.pack_input(image.meta, PIX)
        assert fake.read_mem(m.input_addr, len(packed)) == packed
        n_in = min(m.output_addr - m.input_addr, 4096)
        raw = fake_output(fake.read_mem(m.input_addr, n_in), res.task_id, 768)
        expect = layout.decode_output(image.meta, res.task, raw[:layout.output_bytes(
            image.meta, res.task)])
        np.testing.assert_array_equal(res.output, expect)
        assert res.output.dtype == np.int16
        assert res.busy_cycles == 200
        assert res.done_cycle - res.start_cycle >= 200
        w = [n for n, _ in writes(fake, since)]
        assert w == ["TASK_ID", "STATUS", "PERF_CONTROL", "CONTROL"]
        ctrl = dict(writes(fake, since))["CONTROL"]
        assert ctrl & 1 and bool(ctrl & 4) == (completion == "irq")
        assert dict(writes(fake, since))["STATUS"] == 0b110
    assert [r.task for r in results] == ["semseg", "depth", "depth", "semseg"]
    assert [r.task_id for r in results] == [0, 1, 1, 0]
    assert results[0].output.shape == (3, 8, 16) and results[1].output.shape == (1, 8, 16)
    assert not np.array_equal(results[0].output[:1], results[1].output)


def test_task_switch_changes_only_task_id(image):
    accel, fake = make_accel()
    accel.open()
    accel.load(image)
    seqs = []
    for task in ("semseg", "depth"):
        since = len(fake.log)
        accel.run_frame(PIX, task)
        seqs.append(writes(fake, since))
    diff = [(a, b) for a, b in zip(*seqs) if a != b]
    assert len(seqs[0]) == len(seqs[1]) and diff == [(("TASK_ID", 0), ("TASK_ID", 1))]


def test_error_status(image):
    accel, fake = make_accel(behaviour="error", error_code=3)
    accel.open()
    accel.load(image)
    with pytest.raises(AcceleratorError) as e:
        accel.run_frame(PIX, "semseg")
    assert e.value.exit_code == EXIT_ACCELERATOR and e.value.error_code == 3
    assert f"accelerator error 3: {ERROR_CODES[3]} (task semseg" in str(e.value)
    resets = fake.soft_resets
    fake.behaviour = "ok"
    accel.run_frame(PIX, "semseg")                    # recovers after a soft reset
    assert fake.soft_resets == resets + 1


def test_unknown_error_code(image):
    accel, _ = make_accel(behaviour="error", error_code=200)
    accel.load(image)
    with pytest.raises(AcceleratorError, match="unknown error code 200"):
        accel.run_frame(PIX, "depth")


@pytest.mark.parametrize("completion", ["irq", "poll"])
def test_timeout(image, completion):
    accel, fake = make_accel(behaviour="hang", timeout=2e-6, completion=completion)
    accel.open()
    accel.load(image)
    resets = fake.soft_resets
    with pytest.raises(AcceleratorTimeout) as e:
        accel.run_frame(PIX, "depth")
    assert e.value.exit_code == EXIT_TIMEOUT
    assert "timeout: task depth did not finish within 2e-06 s of accelerator time" in str(e.value)
    assert "busy=1" in str(e.value) and "soft-reset" in str(e.value)
    assert fake.soft_resets > resets and not fake.busy
    clock = FAKE_CFG.clock_mhz * 1e6
    assert fake.counters["PERF_BUSY_CYCLES"] >= 2e-6 * clock - 1   # waited the full timeout


def test_bad_requests(image):
    accel, _ = make_accel()
    accel.open()
    with pytest.raises(UsageError, match="no model loaded") as e:
        accel.run_frame(PIX, "semseg")
    assert e.value.exit_code == EXIT_USAGE
    accel.load(image)
    with pytest.raises(UsageError, match="unknown task 'normals': the loaded model has tasks "
                                         "semseg, depth") as e:
        accel.run_frame(PIX, "normals")
    assert e.value.exit_code == EXIT_USAGE
    with pytest.raises(UsageError, match="unknown task 5"):
        accel.run_frame(PIX, 5)
    with pytest.raises(UsageError, match="input is 3x16x8, the model takes 3x8x16"):
        accel.run_frame(PIX.transpose(0, 2, 1), "depth")
    with pytest.raises(UsageError, match="integers in 0..255"):
        accel.run_frame(PIX.astype(np.float32) / 255, "depth")
    res = accel.run_frame(PIX.astype(np.int64), "depth")        # integer pixels are fine
    assert res.output.shape == (1, 8, 16)


def test_busy_before_start(image):
    accel, fake = make_accel()
    accel.load(image)
    fake.busy, fake.behaviour = True, "hang"
    with pytest.raises(AcceleratorError, match="busy before start"):
        accel.run_frame(PIX, "semseg")


def test_completion_mode_checks():
    fake_backend = SimBackend(FAKE_CFG, sim=object())
    with pytest.raises(UsageError, match="completion must be one of"):
        Accelerator(fake_backend, FAKE_CFG, completion="sometimes")
    with pytest.raises(UsageError, match="timeout must be positive"):
        Accelerator(fake_backend, FAKE_CFG, timeout=0)


class _Backend:
    """Minimal backend for RegisterFile tests: registers in a dict."""

    name = "dict"

    def __init__(self):
        self.regs = {}

    def read32(self, off):
        return self.regs.get(off, 0)

    def write32(self, off, v):
        self.regs[off] = v


def test_counters_enumerated_generically():
    rmap = firmware_register_map(FAKE_CFG)
    expected = sorted((n[:-3] for n, r in rmap["registers"].items()
                       if n.endswith("_LO") and r["fields"].get("count", {}).get("access")
                       == "counter"), key=lambda n: rmap["registers"][n + "_LO"]["offset"])
    regs = RegisterFile(_Backend(), rmap)
    assert regs.counter_names() == expected and "PERF_BUSY_CYCLES" in expected
    extra = {**rmap, "registers": {**rmap["registers"],
                                   "PERF_NEW_UNIT_LO": {"offset": 0x800, "reset": 0, "doc": "",
                                                        "fields": {"count": {
                                                            "lsb": 0, "width": 32,
                                                            "access": "counter", "reset": 0}}},
                                   "PERF_NEW_UNIT_HI": {"offset": 0x804, "reset": 0, "doc": "",
                                                        "fields": {"count": {
                                                            "lsb": 0, "width": 32,
                                                            "access": "counter", "reset": 0}}}}}
    be = _Backend()
    be.regs[0x800], be.regs[0x804] = 5, 2
    regs = RegisterFile(be, extra)
    assert regs.counter_names()[-1] == "PERF_NEW_UNIT"
    assert regs.read_counters()["PERF_NEW_UNIT"] == (2 << 32) | 5


def test_64bit_counter(image):
    accel, fake = make_accel()
    accel.open()
    fake.counters["PERF_WEIGHT_STALL_CYCLES"] = (3 << 32) + 17
    assert accel.counters()["PERF_WEIGHT_STALL_CYCLES"] == (3 << 32) + 17


def test_register_field_checks():
    regs = RegisterFile(_Backend(), firmware_register_map(FAKE_CFG))
    with pytest.raises(AcceleratorError, match="does not fit"):
        regs.write_fields("TASK_ID", task=256)
    with pytest.raises(AcceleratorError, match="has no field"):
        regs.write_fields("TASK_ID", nope=1)
    with pytest.raises(AcceleratorError, match="has no register NOPE"):
        regs.read("NOPE")
    with pytest.raises(AcceleratorError, match="does not fit the accelerator's 40-bit"):
        regs.write_addr("DATA_BASE", 1 << 40)
    regs.write_addr("DATA_BASE", (1 << 39) + 0x1000)
    assert regs.read_addr("DATA_BASE") == (1 << 39) + 0x1000
    assert regs.error_text(3) == ERROR_CODES[3]


class _PersistentSim(SimBackend):
    persistent = True

    def buffer_at(self, addr, size):
        from firmware.backends import Buffer
        return Buffer(self, addr, size)


def test_attach_to_a_loaded_model(image):
    accel, fake = make_accel()
    accel.open()
    model = accel.load(image)
    state = model.to_state()
    backend2 = _PersistentSim(FAKE_CFG, sim=fake, ddr_base=fake.ddr_base,
                              ddr_bytes=len(fake.mem))
    again = Accelerator(backend2, None, timeout=1e-3)
    again.attach(type(model).from_state(state))
    assert again.run_frame(PIX, "depth").output.shape == (1, 8, 16)
    # the model's DDR contents were overwritten since: refused
    fake.mem[model.data_addr - fake.ddr_base] ^= 0xFF
    with pytest.raises(AcceleratorError, match="DDR check failed: the data section"):
        Accelerator(backend2, None).attach(type(model).from_state(state))
    fake.mem[model.data_addr - fake.ddr_base] ^= 0xFF
    # the registers point elsewhere (someone loaded another model): refused
    fake.val["PROGRAM_LEN"] = 99
    with pytest.raises(AcceleratorError, match="PROGRAM_LEN = 0x63 \\(expected 0x3\\).*load the "
                                               "model again"):
        Accelerator(backend2, None).attach(type(model).from_state(state))
    # a plain simulator keeps nothing: attach is refused with a hint
    fake.val["PROGRAM_LEN"] = 3
    with pytest.raises(UsageError, match="keeps nothing between processes"):
        make_accel()[0].attach(type(model).from_state(state))
