"""Test doubles for the firmware: a register-level fake of the simulated accelerator and a small
model image whose meta follows :mod:`firmware.layout`.

:class:`FakeAcceleratorSim` has the interface of ``rtl.sim.accel_sim.AcceleratorSim``
(``read_reg``/``write_reg`` costing bus cycles, ``write_mem``/``read_mem``, ``step``,
``run_until``, ``cycle``, ``irq``) and register semantics generated from the firmware register
map (``const``, ``rw``, ``w1p``, ``w1c``, ``ro``, ``counter``). A started "program" stays busy for
``frame_cycles`` cycles and then, by ``behaviour``: writes deterministic output bytes (``"ok"``),
stops with ``STATUS.error`` and ``error_code`` (``"error"``), or never finishes (``"hang"``).
It tests the driver's protocol, not the accelerator.
"""

from __future__ import annotations

import zlib

import numpy as np

from firmware.image import ModelImage
from rtl.config import SMALL_TEST, AccelConfig
from rtl.control.registers import firmware_register_map

FAKE_CFG = SMALL_TEST          # a known config: the driver finds it by its fingerprint


def make_meta(cfg: AccelConfig = FAKE_CFG, img=(8, 16), patch=4) -> dict:
    """Meta of a two-task model in the compiler's format (input/output layouts included)."""
    R, C = cfg.array_rows, cfg.array_cols
    gh, gw = img[0] // patch, img[1] // patch
    P = gh * gw
    tasks = []
    for name, kind, ch, scale in (("semseg", "segmentation", 3, 1.0),
                                  ("depth", "regression", 1, 0.01)):
        width = patch * patch * ch
        nbytes = P * -(-width // C) * 2 * C
        tasks.append({"name": name, "kind": kind, "channels": ch, "out_scale": scale,
                      "tokens": P, "width": width, "grid": [gh, gw], "patch": patch,
                      "chunks": [{"n0": 0, "n": width, "offset": 0, "bytes": nbytes}]})
    return {"compiler": "test", "accel": cfg.to_dict(),
            "model": {"name": "fake", "img_size": list(img), "patch_size": patch},
            "array": {"rows": R, "cols": C}, "tasks": tasks,
            "input": {"image": list(img), "patch": patch, "rows": P,
                      "row_bytes": -(-3 * patch * patch // C) * C}}


def make_image(cfg: AccelConfig = FAKE_CFG, fingerprint: int | None = None,
               instructions: int = 3, data_bytes: int = 5000, seed: int = 0) -> ModelImage:
    rng = np.random.default_rng(seed)
    return ModelImage(cfg.fingerprint() if fingerprint is None else fingerprint, make_meta(cfg),
                      rng.integers(0, 256, 32 * instructions, dtype=np.uint8).tobytes(),
                      rng.integers(0, 256, data_bytes, dtype=np.uint8).tobytes())


def fake_output(input_bytes: bytes, task_id: int, n: int) -> bytes:
    """What the fake accelerator writes: a pure function of the input and the task."""
    seed = zlib.crc32(input_bytes) ^ (task_id * 0x9E3779B9 & 0xFFFFFFFF)
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class BusError(RuntimeError):
    """An access the real bus would answer with SLVERR/DECERR."""


class FakeAcceleratorSim:
    """Register-level fake of ``AcceleratorSim`` (see the module docstring).

    Parameters
    ----------
    cfg : AccelConfig
    ddr_base, ddr_bytes : int
        The DDR window.
    frame_cycles : int
        Busy cycles of one run.
    behaviour : str
        ``"ok"``, ``"error"`` or ``"hang"``.
    error_code : int
        STATUS.error_code reported with ``behaviour="error"``.
    bus_cycles : int
        Cycles each register access costs.
    ident : int, optional
        Override of the ID register (to test identification).
    """

    def __init__(self, cfg: AccelConfig = FAKE_CFG, *, ddr_base: int = 0x1000_0000,
                 ddr_bytes: int = 1 << 20, frame_cycles: int = 1000, behaviour: str = "ok",
                 error_code: int = 3, bus_cycles: int = 4, ident: int | None = None,
                 fingerprint: int | None = None, output_bytes: int | None = None, **_):
        self.map = firmware_register_map(cfg)
        self.by_off = {r["offset"]: (name, r) for name, r in self.map["registers"].items()}
        self.val = {name: r["reset"] for name, r in self.map["registers"].items()}
        if ident is not None:
            self.val["ID"] = ident
        if fingerprint is not None:
            self.val["FINGERPRINT"] = fingerprint
        self.ddr_base, self.mem = ddr_base, bytearray(ddr_bytes)
        self.frame_cycles, self.behaviour, self.error_code = frame_cycles, behaviour, error_code
        self.bus_cycles = bus_cycles
        self.output_bytes = output_bytes
        self.cycle = 0
        self.counters = {n[:-3]: 0 for n in self.val if n.endswith("_LO") and n.startswith("PERF")}
        self._hi_snapshot: dict[str, int] = {}
        self.busy = False
        self._left = 0
        self.log: list[tuple[str, str, int, int]] = []     # (kind, name, value, cycle)
        self.starts = 0
        self.soft_resets = 0
        self.started_task = 0

    # ------------------------------------------------------------------ helpers
    def _fields(self, name):
        return self.map["registers"][name]["fields"]

    def _get(self, name, field):
        f = self._fields(name)[field]
        return (self.val[name] >> f["lsb"]) & ((1 << f["width"]) - 1)

    def _set(self, name, field, v):
        f = self._fields(name)[field]
        mask = ((1 << f["width"]) - 1) << f["lsb"]
        self.val[name] = (self.val[name] & ~mask) | ((v << f["lsb"]) & mask)

    def _addr(self, base):
        return self.val[base + "_LO"] | self.val[base + "_HI"] << 32

    @property
    def irq(self) -> bool:
        return bool(self._get("CONTROL", "irq_enable") and
                    (self._get("STATUS", "done") or self._get("STATUS", "error")))

    # ------------------------------------------------------------------ bus
    def read_reg(self, offset: int) -> int:
        self.step(self.bus_cycles)
        if offset not in self.by_off:
            raise BusError(f"DECERR at {offset:#x}")
        name, reg = self.by_off[offset]
        if name.endswith("_LO") and name[:-3] in self.counters:
            v = self.counters[name[:-3]]
            self._hi_snapshot[name[:-3]] = v >> 32
            value = v & 0xFFFF_FFFF
        elif name.endswith("_HI") and name[:-3] in self.counters:
            value = self._hi_snapshot.get(name[:-3], 0)
        else:
            if name == "STATUS":
                self._set("STATUS", "busy", int(self.busy))
            value = self.val[name]
        self.log.append(("r", name, value, self.cycle))
        return value

    def write_reg(self, offset: int, value: int) -> None:
        self.step(self.bus_cycles)
        if offset not in self.by_off:
            raise BusError(f"DECERR at {offset:#x}")
        name, reg = self.by_off[offset]
        self.log.append(("w", name, value, self.cycle))
        fields = reg["fields"]
        if not any(f["access"] in ("rw", "w1p", "w1c") for f in fields.values()):
            raise BusError(f"SLVERR: {name} is read-only")
        for fname, f in fields.items():
            v = (value >> f["lsb"]) & ((1 << f["width"]) - 1)
            if f["access"] == "rw":
                self._set(name, fname, v)
            elif f["access"] == "w1c" and v:
                self._set(name, fname, 0)
            elif f["access"] == "w1p" and v:
                self._pulse(name, fname)

    def _pulse(self, name, fname):
        if (name, fname) == ("CONTROL", "soft_reset"):
            self.soft_resets += 1
            self.busy = False
            self._left = 0
        elif (name, fname) == ("PERF_CONTROL", "clear"):
            for k in self.counters:
                self.counters[k] = 0
        elif (name, fname) == ("CONTROL", "start"):
            self.starts += 1
            if self.busy:
                self.busy = False
                self._finish_error(6)
                return
            self.busy, self._left = True, self.frame_cycles
            self.started_task = self._get("TASK_ID", "task")

    def _finish_error(self, code):
        self._set("STATUS", "error", 1)
        self._set("STATUS", "error_code", code)

    # ------------------------------------------------------------------ memory
    def _off(self, addr, n):
        off = addr - self.ddr_base
        if off < 0 or off + n > len(self.mem):
            raise BusError(f"[{addr:#x}, {addr + n:#x}) outside the fake DDR")
        return off

    def write_mem(self, addr: int, data: bytes) -> None:
        off = self._off(addr, len(data))
        self.mem[off:off + len(data)] = data

    def read_mem(self, addr: int, length: int) -> bytes:
        off = self._off(addr, length)
        return bytes(self.mem[off:off + length])

    # ------------------------------------------------------------------ time
    def step(self, cycles: int = 1) -> None:
        for _ in range(cycles):
            self._tick()

    def _tick(self):
        self.cycle += 1
        if "PERF_CYCLES" in self.counters:
            self.counters["PERF_CYCLES"] += 1
        if not self.busy:
            return
        self.counters["PERF_BUSY_CYCLES"] = self.counters.get("PERF_BUSY_CYCLES", 0) + 1
        if self.behaviour == "hang":
            return
        self._left -= 1
        if self._left > 0:
            return
        self.busy = False
        if self.behaviour == "error":
            self._finish_error(self.error_code)
            return
        inp = self._addr("INPUT_BASE")
        # the fake reads as many input bytes as fit before the output buffer
        n_in = min(self._addr("OUTPUT_BASE") - inp, 4096) if self._addr("OUTPUT_BASE") > inp \
            else 64
        data = self.read_mem(inp, n_in)
        n_out = self.output_bytes or 4096
        self.write_mem(self._addr("OUTPUT_BASE"), fake_output(data, self.started_task, n_out))
        self._set("STATUS", "done", 1)

    def run_until(self, predicate, max_cycles: int, progress=None) -> int:
        start = self.cycle
        while not predicate() and self.cycle - start < max_cycles:
            self._tick()
        return self.cycle - start
