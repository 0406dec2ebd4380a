"""``python -m firmware``: identify the accelerator, load a model image, run frames, benchmark.

Subcommands (each takes ``--backend board|sim``)::

    info                          accelerator ID, version, config readback, status, counters
    load MODEL_IMAGE              verify a model image and place it in the accelerator's DDR
    run --task T [IMAGE ...]      run frames, write segmentation/depth PNGs and .npy outputs
    bench                         frames/s per task, task-switch overhead, counter breakdown

Board-side module: imports numpy and the firmware only; golden (torch) only for ``--scene``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from golden.argtypes import nonneg_int, out_dir, positive_float, positive_int, size_hw

from .errors import (EXIT_CODES, EXIT_OK, EXIT_USAGE, FirmwareError, IncompatibleImageError,
                     UsageError)
from .image import ModelImage, check_compatible, task_names

__all__ = ["main", "build_parser", "DEFAULT_STATE", "DEFAULT_BOARD_TIMEOUT",
           "DEFAULT_SIM_TIMEOUT"]

DEFAULT_STATE = os.environ.get("M3VIT_FIRMWARE_STATE", "/tmp/m3vit-firmware-state.json")
DEFAULT_BOARD_TIMEOUT = 10.0           # seconds of wall time
DEFAULT_SIM_TIMEOUT = 0.2              # seconds of simulated time (20 M cycles at 100 MHz)
SIM_TIMEOUT_FACTOR = 20                # sim default: 20x the ideal cycles of the image's MACs ...
SIM_TIMEOUT_MIN_CYCLES = 1_000_000     # ... but at least this many cycles


def _default_backend() -> str:
    env = os.environ.get("M3VIT_BACKEND")
    if env:
        return env
    return "board" if os.uname().machine == "aarch64" else "sim"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


EPILOG = ("exit codes:\n" + "\n".join(f"  {k}  {v}" for k, v in EXIT_CODES.items()) +
          "\n\n" + textwrap.fill(
              "With --backend sim the simulator keeps no state between processes: run and bench "
          "take --model IMAGE and load it first. On the board, 'load' persists when the DMA "
          "memory is a u-dma-buf (the model stays in DDR and the registers keep pointing at it; "
          "the state file records where), so 'run'/'bench' without --model use it. "
          "See docs/firmware.md.", 78))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m firmware``."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("backend")
    g.add_argument("--backend", choices=("board", "sim"), default=_default_backend(),
                   help="where the accelerator is (default: board on aarch64, else sim; "
                        "env M3VIT_BACKEND)")
    g.add_argument("--sim", choices=("verilator", "amaranth"), default="verilator",
                   help="simulator for --backend sim (default verilator: builds once, cached)")
    g.add_argument("--config", default=None,
                   help="model config (nano, tiny, small) whose accelerator config the simulator "
                        "builds when no --model image says (default nano)")
    g.add_argument("--accel", default=None,
                   help="accelerator config name from rtl.config.CONFIGS (overrides --config and "
                        "the image's)")
    g.add_argument("--timeout", type=positive_float, default=None,
                   help=f"seconds of accelerator time a frame may take (board default "
                        f"{DEFAULT_BOARD_TIMEOUT:g} s wall; sim default: simulated time of "
                        f"{SIM_TIMEOUT_FACTOR}x the cycles the image's MACs need on the full "
                        f"array, at least {SIM_TIMEOUT_MIN_CYCLES:,} cycles)")
    g.add_argument("--completion", choices=("auto", "irq", "poll"), default="auto",
                   help="wait for the interrupt or poll STATUS (auto: interrupt if available)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on simulated runs (default: when stderr is a terminal)")
    b = common.add_argument_group("board")
    b.add_argument("--csr-base", type=_int, default=None,
                   help="CSR window address (default from firmware/addrmap.py)")
    b.add_argument("--csr-size", type=_int, default=None, help="CSR window size")
    b.add_argument("--registers", choices=("auto", "pynq", "devmem"), default="auto",
                   help="register access (auto: pynq.MMIO if installed, else /dev/mem)")
    b.add_argument("--memory", choices=("auto", "udmabuf", "pynq"), default="auto",
                   help="DMA memory (auto: u-dma-buf if present, else pynq.allocate)")
    b.add_argument("--udmabuf", default="udmabuf0", help="u-dma-buf device name")
    b.add_argument("--uio", default=None, help="UIO device of the interrupt (e.g. /dev/uio0)")
    b.add_argument("--state", default=DEFAULT_STATE,
                   help=f"where 'load' records the loaded model on the board (default "
                        f"{DEFAULT_STATE}; env M3VIT_FIRMWARE_STATE)")

    ap = argparse.ArgumentParser(
        prog="python -m firmware", description="Drive the M3ViT accelerator: identify it, load a "
        "model image, run frames per task, benchmark.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{info,load,run,bench,demo}")

    def add(name, help_):
        return sub.add_parser(name, parents=[common], help=help_, description=help_,
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("info", "accelerator ID, version, config readback, status and counters")
    p.add_argument("--model", help="model image (sim: selects the accelerator config)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("load", "verify a model image and place it in the accelerator's DDR")
    p.add_argument("image", metavar="MODEL_IMAGE")
    p.add_argument("--no-verify", action="store_true", help="skip the DDR read-back check")

    p = add("run", "run frames and write segmentation/depth pictures and .npy outputs")
    p.add_argument("inputs", nargs="*", metavar="IMAGE",
                   help="PNG/JPEG pictures or .npy uint8 3xHxW arrays of the model's size")
    p.add_argument("--task", action="append", required=True,
                   help="task to run (repeat or comma-separate for several; 'all')")
    p.add_argument("--model", help="model image to load first (required with --backend sim)")
    p.add_argument("--scene", type=nonneg_int, action="append", default=[], metavar="N",
                   help="also run held-out generated scene N (needs golden/torch: off-board)")
    p.add_argument("--resize", action="store_true",
                   help="resize pictures of another size to the model's (else refused)")
    p.add_argument("--output-size", type=size_hw, default=None, metavar="HxW",
                   help="upsample outputs to this size (default: the picture's original size)")
    p.add_argument("--upsample", choices=("nearest", "bilinear"), default=None,
                   help="upsampling (default nearest for segmentation, bilinear for regression)")
    p.add_argument("--out", type=out_dir, default="out/firmware",
                   help="output folder (default out/firmware)")
    p.add_argument("--no-panel", action="store_true", help="skip the per-input panel PNG")
    p.add_argument("--uphead", metavar="CHECKPOINT",
                   help="golden checkpoint whose up-heads (the original's convolutional heads) "
                        "post-process tasks the model image marks 'uphead' (needs torch)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("bench", "frames/s per task, task-switch overhead and counter breakdown")
    p.add_argument("inputs", nargs="*", metavar="IMAGE", help="inputs (default: seeded noise)")
    p.add_argument("--model", help="model image to load first (required with --backend sim)")
    p.add_argument("--task", action="append", default=None, help="tasks (default all)")
    p.add_argument("--frames", type=positive_int, default=2,
                   help="frames per task; each task's frames run back to back, tasks "
                        "alternate, so both task switches and repeats are measured (default 2)")
    p.add_argument("--rounds", type=positive_int, default=1, help="repetitions of the schedule")
    p.add_argument("--scene", type=nonneg_int, action="append", default=[], metavar="N",
                   help="use held-out generated scene N as input (off-board)")
    p.add_argument("--resize", action="store_true", help="resize pictures to the model's size")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the noise input (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("demo", help="end-to-end demo: compile a model, run both tasks on a "
                       "generated scene through the simulated accelerator, save pictures",
                       description="Compile a model into a model image (nano: the shipped "
                       "trained checkpoint on its 4x4 accelerator; tiny: the shipped trained "
                       "checkpoint on the default ZCU104 config), then 'run --backend sim --task all --scene N' "
                       "with it (off-board: needs the rtl/ and golden/ packages). tiny: ~3 min "
                       "once to build the Verilator model, ~50 s per frame.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=("nano", "tiny"), default="nano",
                   help="model config (default nano)")
    p.add_argument("--scene", type=nonneg_int, default=0, metavar="N",
                   help="held-out generated scene (default 0)")
    p.add_argument("--sim", choices=("verilator", "amaranth"), default="verilator",
                   help="simulator (default verilator; amaranth: ~15 min per nano frame)")
    p.add_argument("--out", type=out_dir, default="out/demo",
                   help="output folder (default out/demo)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")
    return ap


# ---------------------------------------------------------------------------- helpers

def _read_image(path: str) -> ModelImage:
    try:
        return ModelImage.load(path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read model image {path}: {exc}") from None


def _accel_config(args, image: ModelImage | None):
    """The accelerator config to simulate (or to generate the board's register map from)."""
    from rtl.config import CONFIGS as ACCEL
    from .driver import accel_config_from_meta
    if args.accel:
        if args.accel not in ACCEL:
            raise UsageError(f"unknown accelerator config {args.accel!r}; choose one of "
                             f"{', '.join(ACCEL)}")
        return ACCEL[args.accel]
    if image is not None:
        cfg = accel_config_from_meta(image.meta)
        if cfg is not None:
            return cfg
    name = args.config or (image.meta.get("model", {}).get("name") if image else None) or "nano"
    return _accel_for_model(name)


def _accel_for_model(name: str):
    """The accelerator config for model config ``name`` (nano → NANO, else the default)."""
    from rtl.config import CONFIGS as ACCEL, DEFAULT
    if name in ACCEL:                       # the rule python -m firmware.compiler applies
        return ACCEL[name]
    known = ("nano", "tiny", "small")
    if name not in known:
        raise UsageError(f"unknown model config {name!r}; choose one of {', '.join(known)}")
    return DEFAULT


def _timeout(args, image: ModelImage | None, cfg) -> float:
    if args.timeout is not None:
        if args.timeout <= 0:
            raise UsageError(f"--timeout must be positive, not {args.timeout}")
        return args.timeout
    if args.backend == "board":
        return DEFAULT_BOARD_TIMEOUT
    est = _ideal_cycles(image.meta) if image else None
    if est and cfg is not None:
        return max(SIM_TIMEOUT_FACTOR * est, SIM_TIMEOUT_MIN_CYCLES) / (cfg.clock_mhz * 1e6)
    return DEFAULT_SIM_TIMEOUT


def _ideal_cycles(meta: dict) -> float | None:
    """Cycles of a frame if every useful MAC the compiler counted (``meta["macs"]``) ran on a
    full array; None when the image does not say."""
    try:
        macs = sum(m for m in meta["macs"] if m > 0)
        return macs / (meta["array"]["rows"] * meta["array"]["cols"]) or None
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _progress(args) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def _note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _open(args, image: ModelImage | None, *, load: bool = True):
    """Create the backend and the driver, open it, and (with ``load``) load ``image``."""
    from .backends import open_backend
    from .driver import Accelerator
    cfg = _accel_config(args, image) if (args.backend == "sim" or args.accel or image) else None
    if image is not None and load and args.backend == "sim":
        from rtl.control.registers import VERSION
        check_compatible(image, cfg.fingerprint(), VERSION)   # refuse before building a sim
    if args.backend == "sim":
        from .backends.sim import ddr_bytes_for
        sizes = [1 << 16]
        if image is not None and load:
            from . import layout
            try:
                sizes = [len(image.data), len(image.program), layout.input_bytes(image.meta),
                         *(layout.output_bytes(image.meta, t) for t in task_names(image.meta))]
            except (KeyError, TypeError, ValueError) as exc:
                raise IncompatibleImageError(f"model image meta does not describe its "
                                             f"input/output layout: {exc!r}") from exc
        _note(f"starting the simulated accelerator ({args.sim}; a first Verilator build takes "
              f"minutes and is cached)" if args.sim == "verilator" else
              "starting the simulated accelerator (amaranth)")
        backend = open_backend("sim", accel_config=cfg, simulator=args.sim,
                               ddr_bytes=ddr_bytes_for(*sizes))
    else:
        from rtl.config import DEFAULT
        backend = open_backend("board", csr_base=args.csr_base, csr_size=args.csr_size,
                               csr_addr_width=(cfg or DEFAULT).csr_addr_width,
                               registers=args.registers, memory=args.memory,
                               udmabuf=args.udmabuf, uio=args.uio)
    try:
        accel = Accelerator(backend, cfg, timeout=_timeout(args, image, cfg),
                            completion=args.completion, progress=_progress(args))
        accel.open()
        if image is not None and load:
            t0 = time.perf_counter()
            accel.load(image, verify=not getattr(args, "no_verify", False),
                       source=getattr(args, "model", None) or getattr(args, "image", "") or "")
            _note(f"loaded {image.describe()} in {time.perf_counter() - t0:.2f} s")
    except BaseException:
        backend.close()
        raise
    return accel


def _attach_state(args, accel) -> None:
    """Use the model a previous ``load`` left on the board, or explain what to do."""
    from .driver import LoadedModel
    if args.backend == "sim" or not accel.backend.persistent:
        raise UsageError("no model loaded: pass --model IMAGE (the "
                         f"{'simulator' if args.backend == 'sim' else 'pynq buffers'} keep "
                         f"nothing between processes)")
    path = Path(args.state)
    if not path.is_file():
        raise UsageError(f"no model loaded: run 'python -m firmware load MODEL_IMAGE' first or "
                         f"pass --model ({path} does not exist)")
    try:
        state = json.loads(path.read_text())
        model = LoadedModel.from_state(state["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a firmware state file ({exc}): load the model again") \
            from None
    accel.attach(model)
    _note(f"using the model loaded from {model.source or '?'} (state {path})")


def _held_out_scene(index: int, size: tuple[int, int]):
    try:
        from golden.data import render_scene
        from golden.eval import HELD_OUT_SEED
    except ImportError as exc:
        raise UsageError(f"--scene needs the golden package and torch ({exc}); pass image "
                         f"files instead") from None
    return render_scene(HELD_OUT_SEED, index, size)


def scene_pixels(index: int, size: tuple[int, int]) -> np.ndarray:
    """Held-out procedural scene ``index`` at ``size`` = (H, W) as the accelerator's uint8 pixels."""
    from golden.quant.ptq import pixels_from_image
    image, _, _ = _held_out_scene(index, size)
    return pixels_from_image(image).astype(np.uint8)


def scene_truth(index: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Ground truth of held-out scene ``index``: ``{"semseg": classes, "depth": metres}``."""
    _, label, depth = _held_out_scene(index, size)
    return {"semseg": label, "depth": depth}


def _inputs(args, size: tuple[int, int]) -> list[tuple[str, np.ndarray, tuple[int, int] | None]]:
    """``[(stem, pixels, original size or None)]`` from the IMAGE arguments and --scene, for a
    model taking ``size`` = (H, W) pictures."""
    from .post import load_image
    h, w = size
    out, stems = [], set()
    for path in args.inputs:
        original = None
        if getattr(args, "resize", False) and not path.lower().endswith(".npy"):
            original = _picture_size(path)
        pixels = load_image(path, (h, w), resize=getattr(args, "resize", False))
        out.append((Path(path).stem, pixels, original if original != (h, w) else None))
    for n in args.scene:
        out.append((f"scene{n}", scene_pixels(n, (h, w)), None))
    unique = []
    for stem, pixels, original in out:
        s, k = stem, 1
        while s in stems:
            k += 1
            s = f"{stem}-{k}"
        stems.add(s)
        unique.append((s, pixels, original))
    return unique


def _image_size(image: ModelImage) -> tuple[int, int]:
    """The (H, W) input of a model image (its meta was validated at load)."""
    h, w = image.meta["model"]["img_size"]
    return int(h), int(w)


def _picture_size(path: str) -> tuple[int, int] | None:
    from golden.pictures import header
    try:
        _, (w, h), _ = header(path)
        return h, w
    except Exception:            # load_image reports unreadable files
        return None


def _tasks(requested: list[str] | None, available: list[str]) -> list[str]:
    if not requested:
        return list(available)
    tasks = []
    for item in requested:
        for t in (s.strip() for s in item.split(",")):
            if not t:
                continue
            if t == "all":
                tasks.extend(x for x in available if x not in tasks)
            elif t not in available:
                raise UsageError(f"unknown task {t!r}: the model has tasks "
                                 f"{', '.join(available)}")
            elif t not in tasks:
                tasks.append(t)
    if not tasks:
        raise UsageError("no task given")
    return tasks


def _frame_line(frame, clock_hz) -> str:
    r = frame.result
    cyc = r.busy_cycles
    at = f" = {cyc / clock_hz * 1e3:.3f} ms at {clock_hz / 1e6:g} MHz" if cyc and clock_hz else ""
    gap = ""
    if frame.gap_cycles is not None:
        gap = f"; {frame.gap_cycles} cycles since the previous frame" + \
            (" (task switch)" if frame.switched else "")
    tag = f"{frame.request.tag} " if frame.request.tag else ""
    return (f"{tag}{r.task}: {cyc if cyc is not None else '?':,} cycles{at}{gap}; "
            f"wall {r.wall_s:.2f} s")


# ---------------------------------------------------------------------------- commands

def cmd_info(args) -> int:
    image = _read_image(args.model) if args.model else None
    accel = _open(args, image, load=False)
    with accel:
        info = accel.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    print(f"backend      {info['backend']}")
    print(f"ID           {info['id']}  version {info['version']}  fingerprint "
          f"{info['fingerprint']}  config {info['config_name'] or 'unknown'}")
    for reg, fields in info["readback"].items():
        print(f"{reg:<12} " + ", ".join(f"{k}={v}" for k, v in fields.items()))
    st = info["status"]
    print(f"STATUS       busy={st['busy']} done={st['done']} error={st['error']} "
          f"error_code={st['error_code']} ({st['error_text']})")
    print(f"TASK_ID      {info['task_id']}   PROGRAM_BASE {info['program_base']}   "
          f"DATA_BASE {info['data_base']}")
    for name, value in info["counters"].items():
        print(f"{name:<24} {value:>16,d}")
    return EXIT_OK


def cmd_load(args) -> int:
    image = _read_image(args.image)
    print(f"{args.image}: {image.describe()}")
    accel = _open(args, image)
    with accel:
        m = accel.model
        print(f"loaded: program {m.instructions} instructions at {m.program_addr:#x}, data "
              f"{m.data_bytes} bytes at {m.data_addr:#x}, input {m.input_bytes} bytes at "
              f"{m.input_addr:#x}, output {m.output_bytes} bytes at {m.output_addr:#x}")
        if accel.backend.persistent:
            state = {"model": m.to_state(), "image": os.path.abspath(args.image),
                     "loaded_at": time.strftime("%Y-%m-%d %H:%M:%S")}
            Path(args.state).parent.mkdir(parents=True, exist_ok=True)
            Path(args.state).write_text(json.dumps(state, indent=1))
            print(f"the model stays loaded; state recorded in {args.state}")
        else:
            print(f"note: the {accel.backend.name} backend keeps nothing after this process: "
                  f"pass --model {args.image} to run and bench")
    return EXIT_OK


def _model_for(args):
    image = _read_image(args.model) if args.model else None
    if image is None and args.backend == "sim":
        raise UsageError("with --backend sim the model image must be loaded in the same "
                         "process: pass --model MODEL_IMAGE")
    return image


def _upheads(args, meta: dict, tasks: list[str]) -> dict:
    """The golden up-heads of the tasks the image marks ``"uphead"`` (``--uphead``)."""
    from .post import task_spec
    need = [t for t in tasks if task_spec(meta, t).get("head") == "uphead"]
    if not need:
        return {}
    if not args.uphead:
        raise UsageError(f"task(s) {', '.join(need)} end in the original's up-head, which runs on "
                         f"the PS: pass --uphead CHECKPOINT (a golden checkpoint with those heads)")
    try:
        from golden.checkpoint import load_model
        model = load_model(args.uphead)
    except ImportError as exc:
        raise UsageError(f"--uphead needs golden and torch on this machine: {exc}") from None
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--uphead: {exc}") from None
    if model.cfg.head_type != "uphead":
        raise UsageError(f"--uphead {args.uphead}: its heads are {model.cfg.head_type!r}, not the "
                         f"original's up-heads")
    missing = [t for t in need if t not in model.decoders]
    if missing:
        raise UsageError(f"--uphead {args.uphead} has no head for {', '.join(missing)}")
    from golden.quant.model import post_digest
    for t in need:
        want = task_spec(meta, t).get("post_sha256")
        post = {k: v.numpy() for k, v in model.decoders[t].state_dict().items()
                if not k.startswith("norm.")}
        if want is not None and post_digest(post) != want:
            raise UsageError(f"--uphead {args.uphead}: its {t!r} up-head is not the one this "
                             f"model image was compiled with (weights differ)")
    return {t: model.decoders[t] for t in need}


def _add_truth(args, inputs, meta, tasks, pictures) -> None:
    """Put each --scene input's ground truth after its task's prediction in the panel."""
    from .post import colorize, task_spec
    scenes = inputs[len(inputs) - len(args.scene):] if args.scene else []
    for (stem, pixels, _), n in zip(scenes, args.scene):
        truth = scene_truth(n, pixels.shape[1:])
        row = []
        for title, picture in pictures.get(stem, []):
            row.append((title, picture))
            if title in truth and title in tasks:
                row.append((f"{title} truth", colorize(task_spec(meta, title), truth[title])))
        pictures[stem] = row


def cmd_run(args) -> int:
    from .post import save_outputs, save_panel, task_spec, uphead_output
    from .scheduler import Scheduler
    image = _model_for(args)
    if not args.inputs and not args.scene:
        raise UsageError("no input: give IMAGE files and/or --scene N")
    inputs = upheads = None
    if image is not None:   # unknown task, bad input, no up-head: refused before a simulator
        tasks = _tasks(args.task, task_names(image.meta))
        inputs = _inputs(args, _image_size(image))
        upheads = _upheads(args, image.meta, tasks)
    accel = _open(args, image)
    with accel:
        if image is None:
            _attach_state(args, accel)
        meta = accel.model.meta
        tasks = _tasks(args.task, accel.model.tasks)
        if inputs is None:
            inputs = _inputs(args, accel.input_shape()[1:])
        out = Path(args.out)
        pictures: dict[str, list] = {}
        originals = {stem: orig for stem, _, orig in inputs}
        written = []

        if upheads is None:
            upheads = _upheads(args, meta, tasks)

        def on_frame(frame):
            stem = frame.request.tag
            spec = task_spec(meta, frame.result.task)
            size = args.output_size or originals.get(stem)
            raw = output = frame.result.output
            if spec.get("head") == "uphead":
                output, spec = uphead_output(raw, spec, upheads[spec["name"]])
            paths = save_outputs(out, stem, spec, output, size, args.upsample, raw=raw)
            pictures.setdefault(stem, []).append((frame.result.task, paths["picture"]))
            written.append(str(paths["png"]))
            print(_frame_line(frame, accel.clock_hz) + f" -> {paths['png']}", flush=True)

        sched = Scheduler(accel, on_frame=on_frame)
        for stem, pixels, _ in inputs:
            for t in tasks:
                sched.submit(pixels, t, stem)
        report = sched.run()
        if not args.no_panel:
            _add_truth(args, inputs, meta, tasks, pictures)
            for stem, pixels, _ in inputs:
                panel = save_panel(out / f"{stem}_panel.png", pixels, pictures.get(stem, []))
                written.append(str(panel))
        ov = report.switch_overhead()
        if ov["switches"] and ov["switch_gap_cycles"] is not None:
            same = (f", {ov['same_gap_cycles']:.0f} when it does not" if ov["same"] else "")
            print(f"cycles between frames: {ov['switch_gap_cycles']:.0f} when the task changes"
                  f"{same} (the host's register accesses; only TASK_ID differs)")
        print(f"wrote {len(written)} pictures and the .npy outputs in {out}/")
        if args.json:
            print(json.dumps(_report_json(report), indent=2))
    return EXIT_OK


def _report_json(report) -> dict:
    per = {}
    for name, s in report.per_task().items():
        per[name] = {"frames": s.frames, "busy_cycles": s.busy_cycles, "wall_s": s.wall_s,
                     "frame_s": s.frame_s(report.clock_hz), "fps": s.fps(report.clock_hz),
                     "wall_fps": s.wall_fps}
    return {"clock_hz": report.clock_hz, "simulated": report.simulated, "tasks": per,
            "switch": report.switch_overhead(), "counters": report.counter_totals(),
            "frames": [{"index": f.index, "task": f.result.task, "tag": f.request.tag,
                        "busy_cycles": f.result.busy_cycles, "gap_cycles": f.gap_cycles,
                        "gap_s": f.gap_s, "switched": f.switched, "wall_s": f.result.wall_s,
                        "counters": f.result.counters} for f in report.frames]}


def cmd_bench(args) -> int:
    from .scheduler import Scheduler
    if args.frames < 1 or args.rounds < 1:
        raise UsageError("--frames and --rounds must be >= 1")
    image = _model_for(args)
    inputs = None
    if image is not None:
        _tasks(args.task, task_names(image.meta))
        inputs = _inputs(args, _image_size(image)) if (args.inputs or args.scene) else []
    accel = _open(args, image)
    with accel:
        if image is None:
            _attach_state(args, accel)
        tasks = _tasks(args.task, accel.model.tasks)
        if inputs is None:
            inputs = _inputs(args, accel.input_shape()[1:]) if (args.inputs or args.scene) else []
        if not inputs:
            rng = np.random.default_rng(args.seed)
            inputs = [("noise", rng.integers(0, 256, accel.input_shape(), dtype=np.uint8), None)]
        sched = Scheduler(accel, on_frame=None if args.json else
                          (lambda f: print(_frame_line(f, accel.clock_hz), flush=True)))
        k = 0
        for _ in range(args.rounds):
            for t in tasks:
                for _ in range(args.frames):
                    stem, pixels, _ = inputs[k % len(inputs)]
                    sched.submit(pixels, t, stem)
                    k += 1
        report = sched.run()
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        print()
        print(report.format())
    return EXIT_OK


def cmd_demo(args) -> int:
    from firmware.compiler import compile_model
    from rtl.sim.models import int_model_for
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.config}.m3vimg"
    compiled = compile_model(int_model_for(args.config), _accel_for_model(args.config))
    compiled.image.save(path)
    print(f"compiled the {args.config} model: {path} ({len(compiled.listing)} instructions, "
          f"{len(compiled.image.data):,} data bytes)", flush=True)
    from golden.checkpoint import shipped_checkpoint
    if shipped_checkpoint(args.config) is None:
        print(f"note: {args.config} runs with seeded random weights (no trained checkpoint "
              "ships): its pictures show the accelerator's bits, not a prediction", flush=True)
    argv = ["run", "--backend", "sim", "--sim", args.sim, "--model", str(path), "--task", "all",
            "--scene", str(args.scene), "--out", str(out)]
    if args.progress is not None:
        argv.append("--progress" if args.progress else "--no-progress")
    code = cmd_run(build_parser().parse_args(argv))
    print("per-layer cycles, utilisation and DDR traffic: python benchmarks/frame_report.py"
          f" --config {args.config}")
    return code


COMMANDS = {"info": cmd_info, "load": cmd_load, "run": cmd_run, "bench": cmd_bench,
            "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module's ``EXIT_CODES``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:              # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except FirmwareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
