"""``python -m golden.quant``: quantise a checkpoint and evaluate the integer model beside it.

Subcommands
-----------
eval      quantise (or load ``--int-model``) and compare with the float model on held-out scenes:
          task metrics of both (configs with a checkpoint), final-token cosine similarity,
          top-k expert-set agreement per MoE layer, segmentation pixel agreement
quantize  quantise and save the integer model (``.npz``: every integer constant the hardware needs)
units     max/mean error of each nonlinear unit against its float function
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..argtypes import nonneg_int, out_file, positive_int
from ..checkpoint import load_model, shipped_checkpoint
from ..config import config_names, get_config
from ..data import SceneDataset
from ..eval import HELD_OUT_SEED, TRAIN_SEED
from ..model import M3ViT
from .accuracy import format_unit_errors, unit_errors
from .compare import compare
from .model import IntM3ViT
from .ptq import quantize_model


def _float_model(args) -> tuple[M3ViT, str]:
    if args.checkpoint:
        return load_model(args.checkpoint), args.checkpoint
    shipped = shipped_checkpoint(args.config)
    if shipped is not None and not args.random:
        return load_model(shipped), str(shipped)
    torch.manual_seed(args.seed)
    return M3ViT(get_config(args.config)).eval(), f"random weights (seed {args.seed})"


def _int_model(args, model: M3ViT) -> IntM3ViT:
    if getattr(args, "int_model", None):
        int_model = IntM3ViT.load(args.int_model)
        if int_model.cfg != model.cfg:
            raise ValueError(f"{args.int_model} was quantised from config {int_model.cfg.name!r}, "
                             f"not from this {model.cfg.name!r} model")
        return int_model
    calib, _ = SceneDataset(args.calib, TRAIN_SEED, model.cfg.img_size).tensors()
    return quantize_model(model, calib)


def _format_eval(result: dict) -> str:
    lines = []
    for task, r in result.items():
        lines.append(f"{task}: cosine(final tokens) {r['cosine_final_tokens']:.4f} "
                     f"(worst token {r['min_token_cosine']:.4f}); top-k set match per MoE layer "
                     + ", ".join(f"{v * 100:.1f}%" for v in r["topk_set_match_per_moe_layer"])
                     + (f"; pixel agreement {r['pixel_agreement'] * 100:.2f}%"
                        if "pixel_agreement" in r else ""))
    rows = [(t, k, r["float"][k], r["int"][k]) for t, r in result.items() if "float" in r
            for k in r["float"]]
    if rows:
        lines += ["", "| task | metric | float | integer | difference |", "|---|---|---|---|---|"]
        for task, key, f, i in rows:
            diff = i - f
            rel = f" ({diff / f * 100:+.1f}%)" if key in ("rmse", "abs_rel") else ""
            lines.append(f"| {task} | {key} | {f:.3f} | {i:.3f} | {diff:+.3f}{rel} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.quant",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p):
        p.add_argument("--config", default="nano", choices=config_names(),
                       help="model config (default nano; nano and tiny: their shipped checkpoints)")
        p.add_argument("--checkpoint", help="float checkpoint (default: shipped one, else random)")
        p.add_argument("--random", action="store_true", help="random weights even if one ships")
        p.add_argument("--seed", type=nonneg_int, default=0, help="seed for random weights")
        p.add_argument("--calib", type=positive_int, default=32,
                       help="calibration scenes from the training family (default 32)")

    ev = sub.add_parser("eval", help="compare float and integer models")
    model_args(ev)
    ev.add_argument("--int-model", help="use this saved integer model instead of quantising")
    ev.add_argument("--scenes", type=positive_int, default=200, help="held-out scenes (default 200)")
    ev.add_argument("--json", action="store_true")
    qz = sub.add_parser("quantize", help="quantise and save the integer model")
    model_args(qz)
    qz.add_argument("--out", type=out_file, required=True, help="output .npz")
    un = sub.add_parser("units", help="error of each nonlinear unit")
    un.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    try:
        if args.command == "units":
            rows = unit_errors()
            print(json.dumps([r.__dict__ for r in rows], indent=2) if args.json
                  else format_unit_errors(rows))
            return 0
        if args.calib < 1:
            parser.error("--calib must be >= 1")
        model, source = _float_model(args)
        int_model = _int_model(args, model)
        if args.command == "quantize":
            int_model.save(args.out)
            print(f"quantised {model.cfg.name} ({source}) on {args.calib} scenes → {args.out}")
            return 0
        images, targets = SceneDataset(args.scenes, HELD_OUT_SEED, model.cfg.img_size).tensors()
        with_targets = "random" not in source
        result = compare(model, int_model, images, targets if with_targets else None,
                         progress=sys.stderr.isatty())
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"model": source, "config": model.cfg.name, "scenes": args.scenes,
                          "results": result}, indent=2))
    else:
        print(f"{model.cfg.name} from {source}: float vs integer on {args.scenes} held-out scenes "
              f"(calibrated on {args.calib})")
        print(_format_eval(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
