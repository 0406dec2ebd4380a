"""Cycle report of whole frames on the simulated accelerator (the issue-7 report).

    python benchmarks/frame_report.py                       # tiny on the default ZCU104 config,
                                                            # both tasks, Verilator
    python benchmarks/frame_report.py --config nano         # nano on its 4x4 config (~1 min)
    python benchmarks/frame_report.py --json out/report.json

Weights: the config's shipped trained checkpoint (``nano``, ``tiny``) and a held-out procedural
scene as input (``--scene N``), so routing and expert loads are the trained model's;
``--random-weights`` gives the seeded random-weight model on a random image (``--seed``), the
model of the figures quoted before a trained ``tiny`` shipped.

For each task (run back to back on the same image, through the firmware driver) it checks
the output against the integer reference bit for bit and prints: cycles per cause (the cause
counters, ``rtl.control.causes``: every busy cycle has exactly one cause, so ``unattributed`` is
0), cycles per layer as work done and their causes (the ``work`` trace: each cycle goes to the
layer of the instruction it was spent on), the weight-stall cycles per instruction, cycles per
unit (the busy counters, which overlap), utilisation (``PERF_MACS`` / (cycles x R x C), checked
against the reference's MAC count), DDR bytes, the gap between frames (task switch), the on-chip
memory of this design beside a naive one that keeps every expert of a MoE layer on chip, and the
frame time at the accelerator config's clock (``clock_mhz``; ``--clock-mhz`` for another,
labelled as such) beside published ZCU102 accelerators. Frames run on the compiled Verilator
harness (``rtl/sim/compiled.py``): a cold build of the default config takes ~3-5 min (cached
afterwards), a ``tiny`` frame ~1.5-2.5 min.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware.backends.sim import SIM_DDR_BASE, SimBackend  # noqa: E402
from firmware.driver import Accelerator as Driver  # noqa: E402
from golden.argtypes import nonneg_int, positive_float  # noqa: E402
from rtl.config import CONFIGS  # noqa: E402
from rtl.control.causes import Cause, cause_counter, counted_causes  # noqa: E402
from rtl.sim.accel_sim import work_spans  # noqa: E402

# Published single-frame latencies of M3ViT-class accelerators on the ZCU102 (ms).
ANCHORS_MS = {"Edge-MoE": 34.64, "UbiMoE": 25.76, "CoQMoE": 6.47}
UNIT_COUNTERS = ["MATMUL", "ROUTER", "LAYERNORM", "SOFTMAX", "MOVER", "LOADER"]


def layer_of(note: str) -> str:
    """Report row of an instruction, from its compiler note: ``blockN.attention`` (LN1 to proj),
    ``blockN.ffn`` (LN2, dense MLP or gate + experts, the next block's prefetch), ``embed``,
    ``head``."""
    parts = note.split("->")[0].split(".")
    if parts[0].startswith("block"):
        attention = len(parts) > 1 and parts[1] in ("ln1", "qkv", "attn", "proj") or \
            len(parts) > 1 and parts[1].startswith("head")
        return f"{parts[0]}.{'attention' if attention else 'ffn'}"
    if parts[0].startswith("head"):
        return "head"
    return parts[0]


def on_chip_memories(cfg) -> list[tuple[str, int]]:
    """``[(path, bytes)]`` of every memory in the elaborated accelerator."""
    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance

    from rtl.accelerator import Accelerator

    out = []

    def walk(frag, path):
        if isinstance(frag, MemoryInstance):
            out.append((".".join(path), Shape.cast(frag._data.shape).width * frag._data.depth // 8))
        for sub, name, _ in frag.subfragments:
            walk(sub, path + [str(name)])
    walk(Fragment.get(Accelerator(cfg), None), [])
    return out


def cause_cycles(ctr: dict, array_macs: int) -> dict:
    """Cycles per cause from the counters, ``ARRAY`` split into useful work
    (``PERF_MACS / (R x C)``, fractional) and tile padding."""
    out = {}
    for c in counted_causes():
        n = ctr[cause_counter(c)]
        if c is Cause.ARRAY:
            useful = ctr["PERF_MACS"] / array_macs
            out["array_useful"], out["tile_padding"] = useful, n - useful
        else:
            out[c.name.lower()] = n
    return out


def work_by_layer(spans: dict, names: list[str]) -> tuple[dict, dict]:
    """Work-trace spans → (cycles per layer, {layer: {cause: cycles}}), in program order."""
    layers: OrderedDict[str, int] = OrderedDict()
    detail: OrderedDict[str, dict] = OrderedDict()
    for (pc, cause), n in sorted(spans.items()):
        key = layer_of(names[pc]) if pc < len(names) else "end"
        layers[key] = layers.get(key, 0) + n
        row = detail.setdefault(key, {})
        row[cause.name.lower()] = row.get(cause.name.lower(), 0) + n
    return layers, detail


def stall_by_instruction(spans: dict, names: list[str]) -> dict:
    """Every instruction the sequencer waited at for the loader (weight-stall cycles, largest
    first): ``{"pc name": cycles}``."""
    stalls = sorted(((n, pc) for (pc, cause), n in spans.items()
                     if cause is Cause.WEIGHT_STALL), reverse=True)
    return {f"{pc} {names[pc] if pc < len(names) else '?'}": n for n, pc in stalls}


def trace_matches(spans: dict, ctr: dict) -> bool:
    """The work trace's cycles per cause equal the cause counters."""
    per = {c: 0 for c in counted_causes()}
    for (_, cause), n in spans.items():
        per[cause] += n
    return all(per[c] == ctr[cause_counter(c)] for c in per)


def expert_macs(model, routings) -> int:
    """Useful MACs of the MoE experts in one frame (from the reference's routing)."""
    d, h = model.cfg.dim, model.cfg.expert_hidden
    return sum(int(r.load(model.cfg.experts).sum()) * 2 * d * h for r in routings)


def run(args) -> dict:
    from firmware.compiler import compile_model
    from rtl.sim.accel_sim import AcceleratorSim
    from rtl.sim.models import int_model_for

    from golden.checkpoint import shipped_checkpoint

    checkpoint = None if args.random_weights else shipped_checkpoint(args.config)
    model = int_model_for(args.config, random_weights=args.random_weights)
    accel_name = args.accel or (args.config if args.config in CONFIGS else "default")
    cfg = CONFIGS[accel_name]
    compiled = compile_model(model, cfg)
    image = compiled.image
    names = [line.split()[1] for line in compiled.listing]
    ddr_bytes = 1 << max(22, math.ceil(math.log2(len(image.data) + len(image.program) + (8 << 20))))
    t0 = time.time()
    print(f"building the {args.sim} model of accelerator config '{accel_name}' "
          f"(cached after the first build) ...", flush=True)
    sim = AcceleratorSim(cfg, backend=args.sim, harness=args.harness, ddr_base=SIM_DDR_BASE,
                         ddr_bytes=ddr_bytes)
    backend = SimBackend(cfg, simulator=args.sim, ddr_base=SIM_DDR_BASE, ddr_bytes=ddr_bytes,
                         sim=sim)
    driver = Driver(backend, cfg, timeout=1.0, progress=not args.no_progress).open()
    driver.load(image)
    build_s = time.time() - t0
    h, w = model.cfg.img_size
    if checkpoint is not None:
        from firmware.cli import scene_pixels
        pixels = scene_pixels(args.scene, (h, w))
        weights, source = str(checkpoint), f"held-out scene {args.scene}"
    else:
        pixels = np.random.default_rng(args.seed).integers(0, 256, (3, h, w), dtype=np.uint8)
        weights, source = "random (seed 0)", f"random pixels (seed {args.seed})"
    tasks = args.task or list(model.cfg.task_names)
    R, C = cfg.array_rows, cfg.array_cols

    clock = args.clock_mhz or cfg.clock_mhz
    report = {"model": args.config, "weights": weights, "input": source,
              "accel": accel_name, "simulator": args.sim,
              "harness": sim.harness, "array": [R, C], "read_ports": cfg.axi_masters,
              "clock_mhz_report": clock,
              "clock_is_config": args.clock_mhz is None or args.clock_mhz == cfg.clock_mhz,
              "build_or_load_s": round(build_s, 1), "frames": []}
    prev_done = None
    for task in tasks:
        first_event, first_work = len(sim.trace.events), len(sim.work.events)
        t = time.time()
        f = driver.run_frame(pixels, task)
        wall = time.time() - t
        want, routings = model.infer(pixels, task, return_routing=True)
        exact = bool(np.array_equal(f.output, want))
        spans = work_spans(sim.work.events[first_work:])
        layers, layer_causes = work_by_layer(spans, names)
        static_macs = sum(max(0, compiled.macs[pc]) for _, pc in sim.trace.events[first_event:])
        macs = static_macs + expert_macs(model, routings)
        ctr = f.counters
        busy = ctr["PERF_BUSY_CYCLES"]
        causes = cause_cycles(ctr, R * C)
        frame = {
            "task": task, "bit_exact": exact, "cycles": busy,
            "gap_after_previous_frame": None if prev_done is None else f.start_cycle - prev_done,
            "layers": layers, "layer_causes": layer_causes, "causes": causes,
            "unattributed_cycles": busy - sum(ctr[cause_counter(c)] for c in counted_causes()),
            "work_trace_matches_counters": trace_matches(spans, ctr),
            "weight_stall_by_instruction": stall_by_instruction(spans, names),
            "units": {u.lower(): ctr[f"PERF_{u}_CYCLES"] for u in UNIT_COUNTERS},
            "macs": ctr["PERF_MACS"], "macs_reference": macs,
            "utilisation_frame": ctr["PERF_MACS"] / (busy * R * C),
            "utilisation_array_cycles": ctr["PERF_MACS"] / max(1, ctr["PERF_ARRAY_CYCLES"] * R * C),
            "ddr_read_bytes": ctr["PERF_READ_BYTES"], "ddr_write_bytes": ctr["PERF_WRITE_BYTES"],
            "weight_stall_cycles": ctr["PERF_WEIGHT_STALL_CYCLES"],
            "instructions": ctr["PERF_INSTRUCTIONS"],
            "frame_ms_at_clock": busy / (clock * 1e3),
            "ddr_floor_ms": ctr["PERF_READ_BYTES"] / (cfg.axi_bytes * cfg.axi_masters
                                                      * clock * 1e3),
            "sim_wall_s": round(wall, 1), "sim_cycles_per_s": round(busy / wall),
        }
        report["frames"].append(frame)
        prev_done = f.done_cycle

    mems = on_chip_memories(cfg)
    ours = sum(b for _, b in mems)
    b_buffer = sum(b for p, b in mems if re.search(r"\.b_bank_\d+$", p))
    scratch = b_buffer - 2 * cfg.weight_buffer_bytes
    expert_bytes = 2 * model.cfg.dim * model.cfg.expert_hidden
    naive = ours - b_buffer + scratch + model.cfg.experts * expert_bytes
    report["memory"] = {"on_chip_bytes": ours, "weight_double_buffer_bytes": 2 * cfg.weight_buffer_bytes,
                        "naive_all_experts_bytes": naive, "ratio": naive / ours,
                        "largest": sorted(mems, key=lambda x: -x[1])[:8]}
    return report


# Columns of the per-layer table: causes, shortened.
_SHORT = {"array": "array", "tile_period": "period", "fill_drain": "fill", "a_move": "A-move",
          "softmax": "softmax", "layernorm": "LN", "b_mover": "B-move", "router": "router",
          "lanes": "lanes", "store": "store", "weight_stall": "w-stall", "act_load": "act-ld",
          "sequencer": "seq", "fetch": "fetch"}


def print_layers(f: dict) -> None:
    """One frame's cycles per layer (work done) and cause."""
    used = [c for c in _SHORT if any(row.get(c) for row in f["layer_causes"].values())]
    print(f"\n{f['task']}: cycles per layer (work done: each cycle to the layer of the instruction"
          " it was spent on) and cause")
    print(f"{'layer':<18}{'total':>10}" + "".join(f"{_SHORT[c]:>9}" for c in used))
    for layer, row in f["layer_causes"].items():
        print(f"{layer:<18}{f['layers'][layer]:>10,}" + "".join(f"{row.get(c, 0):>9,}" for c in used))


def print_report(r: dict) -> None:
    R, C = r["array"]
    print(f"\n{r['model']} on accelerator '{r['accel']}' ({R}x{C} array), {r['simulator']}; "
          f"weights {r['weights']}, input {r['input']}")
    frames = r["frames"]
    print("\ncycles per cause (performance counters: each busy cycle has exactly one cause)")
    print(f"{'cause':<20}" + "".join(f"{f['task']:>20}" for f in frames))
    for c in frames[0]["causes"]:
        print(f"{c:<20}" + "".join(f"{f['causes'][c]:>12,.0f} {100 * f['causes'][c] / f['cycles']:5.1f}%"
                                   for f in frames))
    print(f"{'total':<20}" + "".join(f"{f['cycles']:>12,} 100.0%" for f in frames))
    print(f"{'unattributed':<20}" + "".join(f"{f['unattributed_cycles']:>20,}" for f in frames))
    for f in frames:
        print_layers(f)
        print(f"{f['task']}: weight stalls by instruction: " +
              (", ".join(f"{k} {v:,}" for k, v in list(f["weight_stall_by_instruction"].items())[:6])
               or "none"))
    print("\ncycles per unit (busy counters; units overlap)")
    for u in frames[0]["units"]:
        print(f"{u:<20}" + "".join(f"{f['units'][u]:>10,} {100 * f['units'][u] / f['cycles']:3.0f}%"
                                   for f in frames))
    rows = [("bit-exact vs integer reference", lambda f: "yes" if f["bit_exact"] else "NO"),
            ("useful MACs (PERF_MACS)", lambda f: f"{f['macs']:,}" +
             ("" if f["macs"] == f["macs_reference"] else f" (reference {f['macs_reference']:,})")),
            ("utilisation (frame)", lambda f: f"{100 * f['utilisation_frame']:.1f} %"),
            ("utilisation (ARRAY cycles)", lambda f: f"{100 * f['utilisation_array_cycles']:.1f} %"),
            ("work trace = counters", lambda f: "yes" if f["work_trace_matches_counters"] else "NO"),
            ("DDR read bytes", lambda f: f"{f['ddr_read_bytes']:,}"),
            ("DDR write bytes", lambda f: f"{f['ddr_write_bytes']:,}"),
            ("weight-stall cycles", lambda f: f"{f['weight_stall_cycles']:,}"),
            ("instructions issued", lambda f: f"{f['instructions']:,}"),
            ("cycles since previous frame", lambda f: "-" if f["gap_after_previous_frame"] is None
             else f"{f['gap_after_previous_frame']:,} (register writes)"),
            (f"frame time at {r['clock_mhz_report']:g} MHz" +
             (" (config)" if r["clock_is_config"] else " (NOT the config's)"),
             lambda f: f"{f['frame_ms_at_clock']:.3f} ms"),
            (f"DDR read floor ({r['read_ports']} read port{'s' * (r['read_ports'] > 1)})",
             lambda f: f"{f['ddr_floor_ms']:.3f} ms"),
            (f"simulation wall ({r['harness']} harness)",
             lambda f: f"{f['sim_wall_s']} s ({f['sim_cycles_per_s']:,} cycles/s)")]
    print()
    for name, fn in rows:
        print(f"{name:<32}" + "".join(f"{fn(f):>28}" for f in frames))
    print("\npublished ZCU102 frame times: " + ", ".join(f"{k} {v} ms" for k, v in ANCHORS_MS.items()))
    m = r["memory"]
    print(f"\non-chip memory: {m['on_chip_bytes']:,} bytes (weights: two {m['weight_double_buffer_bytes'] // 2:,}-byte"
          f" halves, expert by expert); a design keeping every expert of a MoE layer on chip: "
          f"{m['naive_all_experts_bytes']:,} bytes = {m['ratio']:.2f}x")
    print("largest memories: " + ", ".join(f"{p} {b:,}" for p, b in m["largest"]))
    print(f"\nsimulator build or cache load: {r['build_or_load_s']} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="model config (default tiny)")
    p.add_argument("--accel", choices=sorted(CONFIGS), help="accelerator config (default: the one "
                   "named like the model, else 'default')")
    p.add_argument("--sim", choices=["verilator", "amaranth"], default="verilator")
    p.add_argument("--harness", choices=["compiled", "python"], default=None,
                   help="where the DDR/AXI models run (default: compiled on Verilator; python "
                        "samples every cycle from Python, ~5x slower)")
    p.add_argument("--task", action="append", help="task (repeat; default: every task)")
    p.add_argument("--random-weights", action="store_true",
                   help="seeded random weights on a random image instead of the shipped trained "
                        "checkpoint on a held-out scene (the model of the earlier figures)")
    p.add_argument("--scene", type=nonneg_int, default=0,
                   help="held-out scene used as input with trained weights (default 0)")
    p.add_argument("--seed", type=nonneg_int, default=1,
                   help="random input image seed (random weights, or no checkpoint ships)")
    p.add_argument("--clock-mhz", type=positive_float, default=None,
                   help="clock for the reported frame times (default: the accelerator "
                        "config's clock_mhz)")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.clock_mhz is not None and not (math.isfinite(args.clock_mhz) and
                                           args.clock_mhz > 0):
        p.error(f"--clock-mhz must be a positive number, not {args.clock_mhz}")
    if args.harness == "compiled" and args.sim != "verilator":
        p.error("--harness compiled runs on Verilator only")
    report = run(args)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if all(f["bit_exact"] for f in report["frames"]) else 1


if __name__ == "__main__":
    sys.exit(main())
