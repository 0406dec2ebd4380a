"""The accelerator driver: identify, load a model image, run frames, read counters.

Every register is accessed by name through the map generated from the hardware config
(:func:`rtl.control.registers.firmware_register_map`); no offset is written here. The same code drives the
board and the simulator through a :class:`firmware.backends.Backend`.

Run protocol of one frame (:meth:`Accelerator.run_frame`)::

    write the input pixels to the input buffer (firmware.layout.pack_input)
    TASK_ID <- task index            (a task switch changes nothing else)
    STATUS  <- done | error          (write 1 to clear)
    PERF_CONTROL.clear
    CONTROL <- start (| irq_enable)
    wait for STATUS.done or STATUS.error (interrupt or polling), at most `timeout` seconds
    read the counters, read and decode the output buffer (firmware.layout.decode_output)

Board-side module: imports the standard library, numpy and the pure-Python ``rtl.control.registers`` /
``rtl.config`` only.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtl.config import CONFIGS as ACCEL_CONFIGS, DEFAULT as DEFAULT_ACCEL, AccelConfig
from rtl.control.registers import firmware_register_map

from .backends import Backend
from .errors import (AcceleratorError, AcceleratorTimeout, ImageError, IncompatibleImageError,
                     UsageError)
from .image import ModelImage, check_compatible, task_names

__all__ = ["RegisterFile", "Accelerator", "LoadedModel", "FrameResult", "COMPLETION_MODES",
           "accel_config_from_meta", "known_accel_config", "input_shape"]

COMPLETION_MODES = ("auto", "irq", "poll")


# ---------------------------------------------------------------------------- registers

class RegisterFile:
    """Named access to the accelerator's registers, generated from the firmware register map.

    Parameters
    ----------
    backend : Backend
        Where the CSR window is.
    regmap : dict
        :func:`rtl.control.registers.firmware_register_map` output (or its JSON).
    """

    def __init__(self, backend: Backend, regmap: dict):
        self.backend, self.map = backend, regmap
        self.regs: dict[str, dict] = regmap["registers"]
        self.error_codes = {int(k): v for k, v in regmap.get("error_codes", {}).items()}

    def has(self, name: str) -> bool:
        return name in self.regs

    def _reg(self, name: str) -> dict:
        try:
            return self.regs[name]
        except KeyError:
            raise AcceleratorError(f"the register map has no register {name} (firmware and "
                                   f"RTL out of step?)") from None

    def offset(self, name: str) -> int:
        return int(self._reg(name)["offset"])

    def read(self, name: str) -> int:
        """The whole 32-bit register."""
        return self.backend.read32(self.offset(name))

    def write(self, name: str, value: int) -> None:
        """Write the whole 32-bit register."""
        self.backend.write32(self.offset(name), int(value) & 0xFFFF_FFFF)

    def pack(self, name: str, **fields: int) -> int:
        """The register value with ``fields`` set (others 0); refuses unknown or too-wide fields."""
        reg, value = self._reg(name), 0
        for fname, v in fields.items():
            try:
                f = reg["fields"][fname]
            except KeyError:
                raise AcceleratorError(f"register {name} has no field {fname}") from None
            v = int(v)
            if not 0 <= v < 1 << f["width"]:
                raise AcceleratorError(f"{name}.{fname} = {v:#x} does not fit {f['width']} bits")
            value |= v << f["lsb"]
        return value

    def unpack(self, name: str, value: int) -> dict[str, int]:
        return {f: (value >> d["lsb"]) & ((1 << d["width"]) - 1)
                for f, d in self._reg(name)["fields"].items()}

    def write_fields(self, name: str, **fields: int) -> None:
        self.write(name, self.pack(name, **fields))

    def read_fields(self, name: str) -> dict[str, int]:
        """All fields of ``name`` from one read."""
        return self.unpack(name, self.read(name))

    def field_width(self, name: str, fname: str) -> int:
        return int(self._reg(name)["fields"][fname]["width"])

    # -- 64-bit addresses spread over NAME_LO / NAME_HI
    def write_addr(self, base: str, addr: int) -> None:
        hi_width = self.field_width(base + "_HI", "addr")
        if addr < 0 or addr >> 32 >= 1 << hi_width:
            raise AcceleratorError(f"address {addr:#x} does not fit the accelerator's "
                                   f"{32 + hi_width}-bit {base}")
        self.write_fields(base + "_LO", addr=addr & 0xFFFF_FFFF)
        self.write_fields(base + "_HI", addr=addr >> 32)

    def read_addr(self, base: str) -> int:
        return self.read_fields(base + "_LO")["addr"] | self.read_fields(base + "_HI")["addr"] << 32

    # -- counters: every register whose fields have access "counter"
    def counter_names(self) -> list[str]:
        """Names of the 64-bit counters (without ``_LO``/``_HI``), in offset order."""
        names = [n[:-3] for n, r in self.regs.items()
                 if n.endswith("_LO") and any(f["access"] == "counter"
                                              for f in r["fields"].values())]
        return sorted(names, key=lambda n: self.offset(n + "_LO"))

    def read_counter(self, name: str) -> int:
        lo = self.read(name + "_LO")          # reading _LO snapshots _HI
        hi = self.read(name + "_HI")
        return hi << 32 | lo

    def read_counters(self) -> dict[str, int]:
        return {n: self.read_counter(n) for n in self.counter_names()}

    def const_registers(self) -> list[str]:
        """Registers whose fields are all constants (ID, version, config readback)."""
        return [n for n, r in self.regs.items()
                if r["fields"] and all(f["access"] == "const" for f in r["fields"].values())]

    def error_text(self, code: int) -> str:
        return self.error_codes.get(code, f"unknown error code {code}")


# ---------------------------------------------------------------------------- configs

def accel_config_from_meta(meta: dict) -> AccelConfig | None:
    """The accelerator config recorded in a model image's meta (``meta["accel"]``), or None."""
    accel = meta.get("accel")
    if not isinstance(accel, dict):
        return None
    try:
        return AccelConfig(**accel)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"model image meta['accel'] is not an accelerator config this "
                         f"firmware understands: {exc}") from exc


def known_accel_config(fingerprint: int, *extra: AccelConfig | None) -> AccelConfig | None:
    """The config among ``extra`` and :data:`rtl.config.CONFIGS` whose fingerprint matches."""
    for cfg in (*extra, *ACCEL_CONFIGS.values()):
        if cfg is not None and cfg.fingerprint() == fingerprint:
            return cfg
    return None


# ---------------------------------------------------------------------------- results

@dataclass
class LoadedModel:
    """Where a model image lives in DDR and what it offers."""

    fingerprint: int
    meta: dict
    tasks: list[str]
    program_addr: int
    program_bytes: int
    data_addr: int
    data_bytes: int
    input_addr: int
    input_bytes: int
    output_addr: int
    output_bytes: int
    program_crc: int
    data_crc: int
    source: str = ""

    @property
    def instructions(self) -> int:
        return self.program_bytes // 32

    def to_state(self) -> dict:
        """JSON-able description (for a persistent board ``load``)."""
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, state: dict) -> "LoadedModel":
        return cls(**state)


@dataclass
class FrameResult:
    """One frame's output and measurements.

    Attributes
    ----------
    task, task_id : str, int
        The task run.
    output : numpy.ndarray
        The head output, int16 [C, H, W] (equal to ``IntM3ViT.infer``).
    counters : dict
        Every performance counter after the run (``PERF_BUSY_CYCLES`` is the frame latency).
    start_time, done_time : float
        Backend time (seconds; simulated in simulation) when the start was written and when
        completion was observed.
    start_cycle, done_cycle : int or None
        Simulated clock cycle at the same points (None on the board).
    wall_s : float
        Host wall time of the whole frame (input write to decoded output).
    """

    task: str
    task_id: int
    output: np.ndarray
    counters: dict[str, int]
    start_time: float
    done_time: float
    start_cycle: int | None
    done_cycle: int | None
    wall_s: float
    extra: dict = field(default_factory=dict)

    @property
    def busy_cycles(self) -> int | None:
        return self.counters.get("PERF_BUSY_CYCLES")


# ---------------------------------------------------------------------------- driver

def _load_layout():
    try:
        from . import layout
    except ModuleNotFoundError as exc:
        raise AcceleratorError(f"firmware/layout.py is missing ({exc})") from exc
    return layout


class Accelerator:
    """Driver of one accelerator.

    Parameters
    ----------
    backend : Backend
        Board or simulator.
    accel_config : AccelConfig, optional
        The accelerator's configuration if known (the simulator's; on the board the one it was
        built from). When omitted, the config is found from the FINGERPRINT register among the
        known configs, and from a loaded image's meta.
    timeout : float
        Seconds of accelerator time a frame may take (simulated seconds in simulation).
    completion : str
        ``"irq"``, ``"poll"`` or ``"auto"`` (interrupt when the backend has one).
    poll_interval : float
        Seconds between two STATUS reads when polling.
    layout : module, optional
        The input/output layout functions (default :mod:`firmware.layout`).
    progress : bool
        Show a progress bar (tqdm) while a simulated frame runs.
    """

    def __init__(self, backend: Backend, accel_config: AccelConfig | None = None, *,
                 timeout: float = 10.0, completion: str = "auto", poll_interval: float = 50e-6,
                 layout: Any = None, progress: bool = False):
        if completion not in COMPLETION_MODES:
            raise UsageError(f"completion must be one of {', '.join(COMPLETION_MODES)}, "
                             f"not {completion!r}")
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, not {timeout}")
        self.backend = backend
        self.config = accel_config
        self.timeout, self.poll_interval, self.progress = timeout, poll_interval, progress
        self.use_irq = (completion == "irq" or
                        (completion == "auto" and backend.irq_available))
        if self.use_irq and not backend.irq_available:
            raise UsageError(f"interrupt completion requested but the {backend.name} backend "
                             f"has no interrupt (use polling)")
        self._layout = layout
        self.regs = RegisterFile(backend, firmware_register_map(accel_config or DEFAULT_ACCEL))
        self.fingerprint: int | None = None
        self.version: tuple[int, int] | None = None
        self.model: LoadedModel | None = None
        self._buffers: dict[str, Any] = {}
        self._needs_reset = False
        self._last_busy: dict[str, int] = {}

    # ------------------------------------------------------------------ identification
    @property
    def layout(self):
        if self._layout is None:
            self._layout = _load_layout()
        return self._layout

    def open(self) -> "Accelerator":
        """Identify the accelerator (ID, VERSION, FINGERPRINT) and soft-reset its datapath."""
        ident = self.regs.read("ID")
        expected = int(self.regs.map["id"])
        if ident != expected:
            raise AcceleratorError(
                f"no M3ViT accelerator answers: ID register reads {ident:#010x}, expected "
                f"{expected:#010x} ('M3VT') (wrong CSR address, bitstream not loaded, or PL "
                f"clock/reset off)")
        v = self.regs.read_fields("VERSION")
        self.version = (v["major"], v["minor"])
        ours = tuple(self.regs.map["version"])
        if self.version[0] != ours[0]:
            raise AcceleratorError(
                f"accelerator register-map version {self.version[0]}.{self.version[1]} is not "
                f"supported by this firmware (version {ours[0]}.{ours[1]}): update the firmware "
                f"or the bitstream")
        self.fingerprint = self.regs.read("FINGERPRINT")
        found = known_accel_config(self.fingerprint, self.config)
        if found is not None and found != self.config:
            self._use_config(found)
        self.soft_reset()
        return self

    def _use_config(self, cfg: AccelConfig) -> None:
        self.config = cfg
        self.regs = RegisterFile(self.backend, firmware_register_map(cfg))

    @property
    def config_known(self) -> bool:
        return self.config is not None and self.config.fingerprint() == self.fingerprint

    @property
    def clock_hz(self) -> float | None:
        """The accelerator clock (from its config), or None when the config is unknown."""
        return self.config.clock_mhz * 1e6 if self.config_known else None

    def soft_reset(self) -> None:
        """Reset the datapath (registers keep their values)."""
        self.regs.write_fields("CONTROL", soft_reset=1)
        self._needs_reset = False

    def info(self) -> dict:
        """Identification, config readback, status and counters, as a JSON-able dict."""
        if self.fingerprint is None:
            self.open()
        const = {n: self.regs.read_fields(n) for n in self.regs.const_registers()
                 if n not in ("ID", "VERSION", "FINGERPRINT")}
        status = self.regs.read_fields("STATUS")
        status["error_text"] = self.regs.error_text(status.get("error_code", 0))
        config_name = None
        if self.config_known:
            config_name = next((k for k, c in ACCEL_CONFIGS.items() if c == self.config),
                               "(from image)")
        return {
            "backend": self.backend.describe(),
            "id": f"{self.regs.read('ID'):#010x}",
            "version": f"{self.version[0]}.{self.version[1]}",
            "fingerprint": f"{self.fingerprint:#010x}",
            "config_name": config_name,
            "config": self.config.to_dict() if self.config_known else None,
            "readback": const,
            "status": status,
            "task_id": self.regs.read_fields("TASK_ID")["task"],
            "program_base": f"{self.regs.read_addr('PROGRAM_BASE'):#x}",
            "data_base": f"{self.regs.read_addr('DATA_BASE'):#x}",
            "counters": self.regs.read_counters(),
            "loaded": None if self.model is None else {
                "tasks": self.model.tasks, "instructions": self.model.instructions,
                "data_bytes": self.model.data_bytes, "source": self.model.source},
        }

    # ------------------------------------------------------------------ model loading
    def load(self, image: ModelImage, *, verify: bool = True, source: str = "") -> LoadedModel:
        """Check ``image`` against this accelerator and place it in DDR.

        Raises
        ------
        IncompatibleImageError
            The image was built for another accelerator config or version, or has no tasks.
        AcceleratorError
            DDR readback differs from what was written, or an address does not fit.
        """
        if self.fingerprint is None:
            self.open()
        check_compatible(image, self.fingerprint, self.version)
        if not self.config_known:
            cfg = accel_config_from_meta(image.meta)
            if cfg is not None and cfg.fingerprint() == self.fingerprint:
                self._use_config(cfg)
        tasks = task_names(image.meta)
        width = self.regs.field_width("TASK_ID", "task")
        if len(tasks) > 1 << width:
            raise IncompatibleImageError(f"the image has {len(tasks)} tasks; TASK_ID holds "
                                         f"{1 << width}")
        layout = self.layout
        try:
            in_n = int(layout.input_bytes(image.meta))
            out_n = max(int(layout.output_bytes(image.meta, t)) for t in tasks)
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleImageError(f"model image meta does not describe its input/output "
                                         f"layout: {exc!r}") from exc
        self.model = None
        self.backend.free_all()
        bufs = {"data": self.backend.alloc(len(image.data)),
                "program": self.backend.alloc(len(image.program)),
                "input": self.backend.alloc(in_n),
                "output": self.backend.alloc(out_n)}
        for name, content in (("data", image.data), ("program", image.program)):
            if content:
                bufs[name].write(0, content)
        crcs = {"data": zlib.crc32(image.data), "program": zlib.crc32(image.program)}
        if verify:
            for name in ("data", "program"):
                self._verify_ddr(bufs[name], len(getattr(image, name)), crcs[name], name)
        self.regs.write_addr("DATA_BASE", bufs["data"].addr)
        self.regs.write_addr("PROGRAM_BASE", bufs["program"].addr)
        self.regs.write_fields("PROGRAM_LEN", **{self._only_field("PROGRAM_LEN"):
                                                 image.instructions})
        self.regs.write_addr("INPUT_BASE", bufs["input"].addr)
        self.regs.write_addr("OUTPUT_BASE", bufs["output"].addr)
        model = LoadedModel(image.fingerprint, image.meta, tasks, bufs["program"].addr,
                            len(image.program), bufs["data"].addr, len(image.data),
                            bufs["input"].addr, in_n, bufs["output"].addr, out_n,
                            crcs["program"], crcs["data"], source)
        self._check_pointers(model)
        self._buffers, self.model = bufs, model
        self._last_busy.clear()
        return model

    def attach(self, model: LoadedModel, *, verify: bool = True) -> LoadedModel:
        """Use a model a previous process loaded (persistent board memory): check that the
        registers still point at it and, with ``verify``, that its DDR contents are intact."""
        if self.fingerprint is None:
            self.open()
        if model.fingerprint != self.fingerprint:
            raise IncompatibleImageError(
                f"the loaded model was built for accelerator config fingerprint "
                f"{model.fingerprint:#010x}, this accelerator reports {self.fingerprint:#010x}: "
                f"load it again")
        if not self.config_known:
            cfg = accel_config_from_meta(model.meta)
            if cfg is not None and cfg.fingerprint() == self.fingerprint:
                self._use_config(cfg)
        bufs = {name: self._buffer_at(getattr(model, name + "_addr"),
                                      getattr(model, name + "_bytes"))
                for name in ("data", "program", "input", "output")}
        self._check_pointers(model, stale=True)
        if verify:
            self._verify_ddr(bufs["data"], model.data_bytes, model.data_crc, "data")
            self._verify_ddr(bufs["program"], model.program_bytes, model.program_crc, "program")
        self._buffers, self.model = bufs, model
        return model

    def _buffer_at(self, addr: int, size: int):
        attach = getattr(self.backend, "buffer_at", None)
        if attach is None:
            raise UsageError(f"the {self.backend.name} backend keeps nothing between processes: "
                             f"load the model in the same run (--model)")
        return attach(addr, size)

    def _only_field(self, name: str) -> str:
        fields = list(self.regs._reg(name)["fields"])
        if len(fields) != 1:
            raise AcceleratorError(f"register {name} has fields {fields}; expected one")
        return fields[0]

    def _verify_ddr(self, buf, length: int, crc: int, what: str) -> None:
        got = zlib.crc32(buf.read(0, length)) if length else 0
        if got != crc:
            raise AcceleratorError(f"DDR check failed: the {what} section at {buf.addr:#x} reads "
                                   f"back with CRC {got:#010x}, expected {crc:#010x} (DDR buffer "
                                   f"not coherent or overwritten)")

    def _check_pointers(self, model: LoadedModel, stale: bool = False) -> None:
        got = {"DATA_BASE": self.regs.read_addr("DATA_BASE"),
               "PROGRAM_BASE": self.regs.read_addr("PROGRAM_BASE"),
               "INPUT_BASE": self.regs.read_addr("INPUT_BASE"),
               "OUTPUT_BASE": self.regs.read_addr("OUTPUT_BASE"),
               "PROGRAM_LEN": self.regs.read("PROGRAM_LEN")}
        want = {"DATA_BASE": model.data_addr, "PROGRAM_BASE": model.program_addr,
                "INPUT_BASE": model.input_addr, "OUTPUT_BASE": model.output_addr,
                "PROGRAM_LEN": model.instructions}
        bad = [f"{k} = {got[k]:#x} (expected {want[k]:#x})" for k in want if got[k] != want[k]]
        if bad:
            hint = ("the accelerator was reset or reloaded since: load the model again"
                    if stale else "register writes did not stick")
            raise AcceleratorError("accelerator registers do not point at the model: "
                                   + "; ".join(bad) + f" ({hint})")

    # ------------------------------------------------------------------ frames
    def task_index(self, task: str | int) -> int:
        """Index (TASK_ID) of ``task`` (a name or an index) in the loaded model."""
        model = self._require_model()
        if isinstance(task, (int, np.integer)) and not isinstance(task, bool):
            if 0 <= task < len(model.tasks):
                return int(task)
        elif task in model.tasks:
            return model.tasks.index(task)
        raise UsageError(f"unknown task {task!r}: the loaded model has tasks "
                         f"{', '.join(model.tasks)}")

    def _require_model(self) -> LoadedModel:
        if self.model is None:
            raise UsageError("no model loaded: load a model image first")
        return self.model

    def input_shape(self) -> tuple[int, int, int]:
        """(3, H, W) of the loaded model's input."""
        return input_shape(self._require_model().meta)

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` as uint8 [3, H, W] of the model's size, or a UsageError saying why not."""
        pixels = np.asarray(pixels)
        shape = self.input_shape()
        if pixels.shape != shape:
            raise UsageError(f"input is {'x'.join(map(str, pixels.shape))}, the model takes "
                             f"{'x'.join(map(str, shape))} (3 x H x W uint8)")
        if pixels.dtype != np.uint8:
            if not np.issubdtype(pixels.dtype, np.integer) or pixels.size and (
                    pixels.min() < 0 or pixels.max() > 255):
                raise UsageError(f"input pixels must be integers in 0..255, got {pixels.dtype} "
                                 f"in [{pixels.min()}, {pixels.max()}]")
            pixels = pixels.astype(np.uint8)
        return pixels

    def run_frame(self, pixels: np.ndarray, task: str | int, *,
                  progress_desc: str | None = None) -> FrameResult:
        """Run one frame of ``task`` on ``pixels`` (uint8 [3, H, W]) and return its output.

        Raises
        ------
        UsageError
            No model loaded, unknown task, or pixels of the wrong shape/type.
        AcceleratorError
            The accelerator reported an error (the message decodes STATUS.error_code).
        AcceleratorTimeout
            No done/error within ``timeout`` seconds (the datapath is then soft-reset).
        """
        wall0 = time.perf_counter()
        model = self._require_model()
        tid = self.task_index(task)
        name = model.tasks[tid]
        pixels = self.check_pixels(pixels)
        if self._needs_reset:
            self.soft_reset()
        status = self.regs.read_fields("STATUS")
        if status["busy"]:
            self._needs_reset = True
            raise AcceleratorError("the accelerator is busy before start (a previous run has "
                                   "not finished); it will be soft-reset on the next run")
        packed = bytes(self.layout.pack_input(model.meta, pixels))
        if len(packed) != model.input_bytes:
            raise AcceleratorError(f"packed input is {len(packed)} bytes, the input buffer "
                                   f"{model.input_bytes}")
        self._buffers["input"].write(0, packed)
        self.regs.write_fields("TASK_ID", task=tid)
        self.regs.write_fields("STATUS", done=1, error=1)
        self.regs.write_fields("PERF_CONTROL", clear=1)
        if self.use_irq:
            self.backend.arm_irq()
            self.regs.write_fields("CONTROL", start=1, irq_enable=1)
        else:
            self.regs.write_fields("CONTROL", start=1)
        start_time, start_cycle = self.backend.now(), self.backend.cycle
        status = self._wait(name, progress_desc)
        done_time, done_cycle = self.backend.now(), self.backend.cycle
        counters = self.regs.read_counters()
        if status["error"]:
            self._needs_reset = True
            code = status["error_code"]
            raise AcceleratorError(
                f"accelerator error {code}: {self.regs.error_text(code)} (task {name}, after "
                f"{counters.get('PERF_BUSY_CYCLES', '?')} busy cycles)", error_code=code)
        n_out = int(self.layout.output_bytes(model.meta, name))
        raw = self._buffers["output"].read(0, n_out)
        output = self.layout.decode_output(model.meta, name, raw)
        if counters.get("PERF_BUSY_CYCLES"):
            self._last_busy[name] = counters["PERF_BUSY_CYCLES"]
        return FrameResult(name, tid, output, counters, start_time, done_time, start_cycle,
                           done_cycle, time.perf_counter() - wall0)

    def _progress_bar(self, name: str, desc: str | None):
        if not (self.progress and self.backend.simulated):
            return None
        from tqdm import tqdm
        total = self._last_busy.get(name)       # this task's last frame, if any
        return tqdm(total=total, desc=desc or f"frame {name}", unit="cycle", unit_scale=True,
                    leave=False, dynamic_ncols=True)

    def _wait(self, name: str, desc: str | None) -> dict[str, int]:
        bar = self._progress_bar(name, desc)
        try:
            deadline = self.backend.now() + self.timeout
            if self.use_irq:
                self.backend.wait_irq(self.timeout, bar)
            while True:
                status = self.regs.read_fields("STATUS")
                if status["done"] or status["error"]:
                    return status
                if self.backend.now() >= deadline:
                    break
                self.backend.sleep(self.poll_interval, bar)
        finally:
            if bar is not None:
                bar.close()
        busy = self.regs.read_counter("PERF_BUSY_CYCLES") if self.regs.has(
            "PERF_BUSY_CYCLES_LO") else "?"
        self._needs_reset = True
        try:
            self.soft_reset()
        except AcceleratorError:
            pass
        self._needs_reset = True
        raise AcceleratorTimeout(
            f"timeout: task {name} did not finish within {self.timeout:g} s of accelerator "
            f"time (STATUS busy={status['busy']} done=0 error=0, {busy} busy cycles); the "
            f"datapath was soft-reset")

    def counters(self) -> dict[str, int]:
        """Every performance counter (64-bit), by register name."""
        return self.regs.read_counters()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def input_shape(meta: dict) -> tuple[int, int, int]:
    """(3, H, W) of a model image's input (``meta["model"]["img_size"]``)."""
    try:
        h, w = (meta.get("model") or {}).get("img_size") or meta["input"]["image"]
        return 3, int(h), int(w)
    except (KeyError, TypeError, ValueError) as exc:
        raise ImageError(f"model image meta gives no input size: {exc!r}") from exc
