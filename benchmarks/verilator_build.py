"""What each Verilator build option buys: build time and simulation speed of one accelerator
config under several option sets (the measurement behind ``rtl/sim/verilator.py``'s defaults).

    python benchmarks/verilator_build.py                       # default config, every variant
    python benchmarks/verilator_build.py --variant chosen --variant o2
    python benchmarks/verilator_build.py --config nano --cycles 200000

Each variant builds into a fresh cache folder (a cold build: Verilog conversion, Verilator,
g++), then starts a ``tiny`` (or ``nano``) semseg frame through the firmware driver and
simulates ``--cycles`` cycles of it on the compiled harness. Variants that take long to build
(the old defaults) are listed but run only when named.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtl.sim import verilator as vl  # noqa: E402

CHOSEN = list(vl.VERILATOR_FLAGS)


def _without(flags, *names):
    out, skip = [], 0
    for f in flags:
        if skip:
            skip -= 1
            continue
        if f in names:
            skip = 1 if f.startswith("--output-split") else 0
            continue
        out.append(f)
    return out


# name: (Verilator flags, g++ fast, g++ slow, keep zero initialisers, run by default)
VARIANTS = {
    "chosen": (CHOSEN, vl.CXX_FAST, vl.CXX_SLOW, False, True),
    "o2": (CHOSEN, "-O2", vl.CXX_SLOW, False, True),
    "o2-threads2": (CHOSEN + ["--threads", "2"], "-O2", vl.CXX_SLOW, False, False),
    "o3-native": (CHOSEN, "-O3 -march=native", vl.CXX_SLOW, False, False),
    "no-split": (_without(CHOSEN, "--output-split", "--output-split-cfuncs"), vl.CXX_FAST,
                 vl.CXX_SLOW, False, False),
    "merge-cond": ([f for f in CHOSEN if f != "-fno-merge-cond"], vl.CXX_FAST, vl.CXX_SLOW,
                   False, False),
    "wave1": (["-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
               "--x-initial", "fast"], "-O2", "-O2", True, False),
}


def measure(name: str, config: str, cycles: int) -> dict:
    import numpy as np

    from firmware.backends.sim import SIM_DDR_BASE, SimBackend
    from firmware.driver import Accelerator as Driver
    from firmware.compiler import compile_model
    from rtl.config import CONFIGS
    from rtl.sim.accel_sim import AcceleratorSim
    from rtl.sim.models import int_model_for

    flags, fast, slow, keep_zero, _ = VARIANTS[name]
    accel = CONFIGS["nano" if config == "nano" else "default"]
    model = int_model_for(config)
    image = compile_model(model, accel).image
    saved = (vl.VERILATOR_FLAGS, vl.CXX_FAST, vl.CXX_SLOW, vl.prepare_verilog)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["M3VIT_VERILATOR_CACHE"] = cache
        vl.VERILATOR_FLAGS, vl.CXX_FAST, vl.CXX_SLOW = flags, fast, slow
        if keep_zero:
            vl.prepare_verilog = lambda text: text
        try:
            t0 = time.time()
            ddr = 1 << 25
            sim = AcceleratorSim(accel, backend="verilator", ddr_base=SIM_DDR_BASE,
                                 ddr_bytes=ddr)
            build_s = time.time() - t0
        finally:
            vl.VERILATOR_FLAGS, vl.CXX_FAST, vl.CXX_SLOW, vl.prepare_verilog = saved
            del os.environ["M3VIT_VERILATOR_CACHE"]
        backend = SimBackend(accel, simulator="verilator", ddr_base=SIM_DDR_BASE,
                             ddr_bytes=ddr, sim=sim)
        driver = Driver(backend, accel, timeout=1.0).open()
        loaded = driver.load(image)
        h, w = model.cfg.img_size
        pixels = np.random.default_rng(1).integers(0, 256, (3, h, w), dtype=np.uint8)
        backend.mem_write(loaded.input_addr,
                          bytes(driver.layout.pack_input(loaded.meta, pixels)))
        driver.regs.write_fields("TASK_ID", task=0)
        driver.regs.write_fields("CONTROL", start=1)
        t0 = time.time()
        sim.step(cycles)
        run_s = time.time() - t0
    return {"variant": name, "build_s": round(build_s, 1), "cycles": cycles,
            "cycles_per_s": round(cycles / run_s)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", choices=["tiny", "nano"],
                   help="model (tiny runs on the default config, nano on its own)")
    p.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                   help="option set (repeat; default: " +
                   ", ".join(k for k, v in VARIANTS.items() if v[4]) + ")")
    p.add_argument("--cycles", type=int, default=300_000, help="cycles simulated per variant")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.cycles < 1:
        p.error("--cycles must be >= 1")
    names = args.variant or [k for k, v in VARIANTS.items() if v[4]]
    rows = []
    for name in names:
        print(f"building variant '{name}' (cold) ...", flush=True)
        r = measure(name, args.config, args.cycles)
        print(f"  build {r['build_s']} s, {r['cycles_per_s']:,} cycles/s", flush=True)
        rows.append(r)
    print(f"\n{'variant':<12}{'cold build (s)':>16}{'cycles/s':>12}  options")
    for r in rows:
        flags, fast, slow, keep_zero, _ = VARIANTS[r["variant"]]
        opts = " ".join(flags) + f"; g++ {fast} / {slow}" + ("; zero inits kept" if keep_zero
                                                             else "")
        print(f"{r['variant']:<12}{r['build_s']:>16}{r['cycles_per_s']:>12,}  {opts}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
