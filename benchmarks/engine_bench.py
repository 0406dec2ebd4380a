"""Matrix-engine cycles and utilisation for the `tiny` model's matmul shapes.

    python benchmarks/engine_bench.py                 # formula table at 8x8 and the default size,
                                                      # plus Amaranth-simulator runs at 8x8
    python benchmarks/engine_bench.py --no-sim        # formula only

Utilisation = useful MACs / (cycles x R x C). "Steady state" is one full tile's K useful steps
over its tile period (what back-to-back tiles sustain); "overall" includes padding of partial
tiles and the one-off fill/drain, which is reported separately. The cycle formula is the one the
tests assert against the RTL (rtl.matrix_engine.engine_cycles).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.config import get_config  # noqa: E402
from rtl.config import DEFAULT, AccelConfig  # noqa: E402
from rtl.matrix_engine import MatrixEngine, engine_cycles  # noqa: E402
from rtl.tiler import tile_period  # noqa: E402


def tiny_shapes() -> list[tuple[str, int, int, int]]:
    c = get_config("tiny")
    n, d, hd = c.num_tokens, c.dim, c.dim // c.heads
    return [
        ("patch embed", c.num_patches, 3 * c.patch_size ** 2, d),
        ("QKV", n, d, 3 * d),
        ("QKᵀ (per head)", n, hd, n),
        ("P·V (per head)", n, n, hd),
        ("attn proj", n, d, d),
        ("MLP fc1", n, d, c.mlp_hidden),
        ("MLP fc2", n, c.mlp_hidden, d),
        ("gate", n, d, c.experts),
        ("expert fc1 (16-token queue)", 16, d, c.expert_hidden),
        ("expert fc2 (16-token queue)", 16, c.expert_hidden, d),
    ]


def row(name, m, k, n, rows, cols):
    cycles = engine_cycles(m, k, n, rows, cols)
    tiles = math.ceil(m / rows) * math.ceil(n / cols)
    p = tile_period(k, rows, cols)
    fill = cycles - tiles * p
    macs = m * k * n
    return {"name": name, "shape": f"{m}×{k}×{n}", "cycles": cycles, "tiles": tiles,
            "steady": k / p, "overall": macs / (cycles * rows * cols), "fill": fill}


def table(rows, cols):
    out = [f"**{rows}×{cols} array**", "",
           "| matmul | M×K×N | cycles | tiles | steady-state util. | overall util. | fill/drain cycles |",
           "|---|---|---|---|---|---|---|"]
    for name, m, k, n in tiny_shapes():
        r = row(name, m, k, n, rows, cols)
        out.append(f"| {r['name']} | {r['shape']} | {r['cycles']:,} | {r['tiles']} | "
                   f"{r['steady'] * 100:.1f}% | {r['overall'] * 100:.1f}% | {r['fill']} |")
    return "\n".join(out)


def simulate_8x8(shapes):
    from tests.rtl.engine_harness import Job, simulate
    cfg = AccelConfig(array_rows=8, array_cols=8)
    out = ["| matmul (Amaranth sim, 8×8) | cycles measured | formula | sim speed |",
           "|---|---|---|---|"]
    for name, m, k, n in shapes:
        rng = np.random.default_rng(0)
        eng = MatrixEngine(cfg, max_m=m, max_k=k, max_n=n, const_depth=math.ceil(n / 8))
        job = Job(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (n, k)),
                  np.zeros(n, np.int64), np.full(n, 1 << 14), np.full(n, 14))
        t0 = time.perf_counter()
        got = simulate(eng, [job])[0]
        dt = time.perf_counter() - t0
        out.append(f"| {name} {m}×{k}×{n} | {got.cycles:,} | {engine_cycles(m, k, n, 8, 8):,} | "
                   f"{got.cycles / dt:,.0f} cycles/s (incl. loading) |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-sim", action="store_true", help="skip the Amaranth-simulator runs")
    args = parser.parse_args(argv)
    print(table(8, 8))
    print()
    print(table(DEFAULT.array_rows, DEFAULT.array_cols))
    if not args.no_sim:
        print()
        shapes = [s for s in tiny_shapes() if s[0].startswith(("expert fc1", "attn proj"))]
        print(simulate_8x8(shapes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
