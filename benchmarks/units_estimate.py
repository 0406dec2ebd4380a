"""Softmax, LayerNorm and router units at `tiny` sizes: Verilog conversion, Verilator lint,
Yosys ``synth_xilinx -family xcup`` resource estimate, and cycles per row/token.

    python benchmarks/units_estimate.py               # all three units
    python benchmarks/units_estimate.py --no-synth    # Verilog + lint + cycle formulas only
    python benchmarks/units_estimate.py --unit softmax

Sizes: attention rows of 129 scores (Q8 out), LayerNorm over D = 192, router with E = 16,
k = 2 and 129 tokens; one lane each unless ``--lanes`` is given. Lint and synthesis reuse the
helpers of ``platform/estimate.py`` (shared with the board build) so every design is estimated the
same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from amaranth.back import rtlil, verilog  # noqa: E402

from platform.estimate import XCZU7EV, verilator_lint, yosys_estimate  # noqa: E402
from rtl.units.layernorm import LayerNorm  # noqa: E402
from rtl.units.router import Router  # noqa: E402
from rtl.units.softmax import Softmax  # noqa: E402

TOKENS, DIM, EXPERTS, TOP_K = 129, 192, 16, 2


def build(unit: str, lanes: int, banks: int):
    if unit == "softmax":
        return Softmax(max_len=TOKENS, lanes=lanes, out_frac=8, out_bits=8, banks=banks)
    if unit == "layernorm":
        return LayerNorm(max_dim=DIM, lanes=lanes, banks=banks)
    if unit == "router":
        return Router(experts=EXPERTS, top_k=TOP_K, max_tokens=TOKENS, banks=banks)
    raise ValueError(unit)


def cycles(unit: str, dut, lanes: int) -> str:
    """The units' own cycle formulas at tiny sizes (the tests assert them against simulation)."""
    if unit == "softmax":
        one = dut.schedule([TOKENS])[0][1] + 1
        many = dut.schedule([TOKENS] * 64)
        period = (many[-1][1] - many[-33][1]) / 32
        return (f"row of {TOKENS}: {one} cycles alone, {period:g} cycles/row in steady state "
                f"({lanes} row(s) in parallel)")
    if unit == "layernorm":
        beats = DIM // lanes
        one = dut.schedule([beats])[0][1] + 1
        many = dut.schedule([beats] * 64)
        period = (many[-1][1] - many[-33][1]) / 32
        return (f"token of D={DIM}: {one} cycles alone, {period:g} cycles/token in steady "
                f"state (scalar stage {dut.scalar_cycles()} cycles)")
    frame = dut.frame_cycles(TOKENS)
    return (f"frame of {TOKENS} tokens: {frame} cycles to the last queue entry "
            f"({frame / TOKENS:.1f} cycles/token incl. the {TOKENS * TOP_K}-entry drain)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unit", choices=("softmax", "layernorm", "router"), action="append")
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--banks", type=int, default=3)
    parser.add_argument("--out", default="build/units", help="folder for Verilog and logs")
    parser.add_argument("--no-synth", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    rows = []
    for unit in args.unit or ("softmax", "layernorm", "router"):
        dut = build(unit, args.lanes, args.banks)
        print(f"== {unit}: {cycles(unit, dut, args.lanes)}")
        t0 = time.perf_counter()
        path = out / f"{unit}.v"
        path.write_text(verilog.convert(dut, name="top"))
        code, errors, warnings = verilator_lint(path)
        print(f"   Verilog {path} ({time.perf_counter() - t0:.0f} s); verilator --lint-only "
              f"-Wall: exit {code}, {len(errors)} errors, {len(warnings)} warnings")
        for line in errors[:10]:
            print("     " + line)
        failed |= bool(errors)
        if args.no_synth:
            continue
        t0 = time.perf_counter()
        il = out / f"{unit}.il"
        il.write_text(rtlil.convert(build(unit, args.lanes, args.banks), name="top"))
        est = yosys_estimate(il, out / f"yosys_{unit}.log")
        print(f"   Yosys synth_xilinx -family xcup: {time.perf_counter() - t0:.0f} s")
        rows.append((unit, est))
    if rows:
        print(f"\n| unit (lanes={args.lanes}, banks={args.banks}) | LUT | FF | DSP | BRAM36 | "
              "LUTRAM cells |")
        print("|---|---|---|---|---|---|")
        for unit, est in rows:
            print(f"| {unit} | {est['LUT']:,} | {est['FF']:,} | {est['DSP']} | {est['BRAM36']} "
                  f"| {est['LUTRAM']} |")
        print(f"| XCZU7EV | {XCZU7EV['LUT']:,} | {XCZU7EV['FF']:,} | {XCZU7EV['DSP']:,} | "
              f"{XCZU7EV['BRAM36']} | |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
