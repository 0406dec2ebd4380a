"""The main job (until the accelerator exists): golden per-task inference of the shipped model.

``python -m golden.demo`` renders a held-out procedural scene, runs the per-task sparse inference
of the shipped ``nano`` checkpoint for every task, writes pictures (input, coloured segmentation,
depth heat map, beside the ground truth) and the raw outputs (``.npy``), and prints each task's
MACs and the metrics on that scene.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .argtypes import nonneg_int, out_dir
from .checkpoint import default_checkpoint, load_model
from .cost import count_macs
from .data import render_scene
from .eval import HELD_OUT_SEED
from .metrics import RegressionMeter, SegmentationMeter
from .model import M3ViT
from .visualize import colorize_depth, colorize_segmentation, image_to_uint8, save_panel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="nano", help="config of the shipped checkpoint")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the shipped one)")
    parser.add_argument("--scene", type=nonneg_int, default=0,
                        help="held-out scene index (default 0)")
    parser.add_argument("--out", type=out_dir, default="out/demo",
                        help="output folder (default out/demo)")
    args = parser.parse_args(argv)

    try:
        path = args.checkpoint or default_checkpoint(args.config)
        model = load_model(path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = model.cfg
    image, label, depth = render_scene(HELD_OUT_SEED, args.scene, cfg.img_size)
    x = torch.from_numpy(image)[None]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = {"semseg": label, "depth": depth}
    print(f"model {cfg.name} from {path}: {cfg.img_size[0]}x{cfg.img_size[1]} input, "
          f"{cfg.num_tokens} tokens, {len(cfg.moe_blocks)} MoE layers of {cfg.experts} experts "
          f"(top-{cfg.top_k})")
    tiles = [("input", image_to_uint8(image))]
    for task in cfg.tasks:
        macs, parts = count_macs(lambda: model.infer(x, task.name))
        output, routings = model.infer(x, task.name, return_routing=True)
        pred = M3ViT.predictions(task.kind, output)[0]
        np.save(out / f"{task.name}.npy", output[0].numpy())
        used = [int((r.load(cfg.experts) > 0).sum()) for r in routings]
        line = (f"  {task.name:<8} {macs / 1e6:8.2f} M MACs (MoE {parts['moe'] / 1e6:.2f} M); "
                f"experts used per MoE layer: {used}")
        truth = targets.get(task.name)
        if task.kind == "segmentation":
            if truth is not None:
                meter = SegmentationMeter(task.channels)
                meter.update(pred, torch.from_numpy(truth))
                line += f"; mIoU on this scene {meter.summary()['mIoU']:.1f}"
                tiles.append((f"{task.name} truth", colorize_segmentation(truth)))
            tiles.append((f"{task.name}", colorize_segmentation(pred.numpy())))
        else:
            if truth is not None and task.channels == 1:
                meter = RegressionMeter()
                meter.update(pred, torch.from_numpy(truth))
                line += f"; RMSE on this scene {meter.summary()['rmse']:.2f} m"
                vmax = float(truth.max()) or None
                tiles.append((f"{task.name} truth", colorize_depth(truth, vmax)))
                shown = np.where(truth > 0, pred.numpy(), 0)  # sky has no depth
                tiles.append((f"{task.name}", colorize_depth(shown, vmax)))
        print(line)
    panel = out / "panel.png"
    save_panel(panel, tiles, scale=4)
    print(f"wrote {panel} and per-task .npy outputs in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
