"""Evaluate a checkpoint per task: mIoU / pixel accuracy (segmentation), RMSE / abs-rel (depth).

``python -m golden.eval [--checkpoint PATH] [--scenes N] [--data FOLDER]`` evaluates on held-out
procedural scenes (a seed the training never uses) or a user's folder, using the per-task sparse
inference path, and prints the trivial baselines beside the model: the training set's majority
class everywhere (mIoU) and its mean depth everywhere (RMSE).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from tqdm import tqdm

from .checkpoint import default_checkpoint, load_checkpoint, load_model
from .data import FolderDataset, SceneDataset
from .metrics import RegressionMeter, SegmentationMeter
from .model import M3ViT

__all__ = ["evaluate", "baseline_metrics", "HELD_OUT_SEED", "TRAIN_SEED"]

TRAIN_SEED = 0
HELD_OUT_SEED = 1_000_003  # scene family never used for training


def _meter(task):
    if task.kind == "segmentation":
        return SegmentationMeter(task.channels)
    return RegressionMeter()


def _check_targets(model: M3ViT, targets: dict) -> None:
    missing = [t for t in model.cfg.task_names if t not in targets]
    if missing:
        raise ValueError(f"the data has no targets for task(s) {', '.join(missing)} "
                         f"(it has {', '.join(targets)})")


@torch.no_grad()
def evaluate(model: M3ViT, images: torch.Tensor, targets: dict[str, torch.Tensor],
             batch_size: int = 64, sparse: bool = True, progress: bool = False) -> dict:
    """Metrics per task over ``images`` [N, 3, H, W] with ``targets[task]`` [N, H, W].

    ``sparse`` selects the per-task sparse path (:meth:`M3ViT.infer`) instead of the training path.
    """
    _check_targets(model, targets)
    model.eval()
    meters = {t.name: _meter(t) for t in model.cfg.tasks}
    starts = range(0, len(images), batch_size)
    if progress:
        starts = tqdm(starts, desc="evaluating", unit="batch", leave=False)
    for s in starts:
        x = images[s : s + batch_size]
        outs = ({t: model.infer(x, t) for t in model.cfg.task_names} if sparse else model(x))
        for task in model.cfg.tasks:
            pred = M3ViT.predictions(task.kind, outs[task.name])
            meters[task.name].update(pred, targets[task.name][s : s + batch_size])
    return {name: m.summary() for name, m in meters.items()}


def baseline_metrics(model: M3ViT, targets: dict[str, torch.Tensor], stats: dict) -> dict:
    """Metrics of the trivial predictors: majority class / mean depth of the training set."""
    out = {}
    for task in model.cfg.tasks:
        tgt = targets[task.name]
        meter = _meter(task)
        if task.kind == "segmentation":
            meter.update(torch.full_like(tgt, stats[task.name]), tgt)
        else:
            meter.update(torch.full(tgt.shape, float(stats[task.name])), tgt)
        out[task.name] = meter.summary()
    return out


def training_stats(targets: dict[str, torch.Tensor], model: M3ViT) -> dict:
    """Majority class (segmentation) and mean valid value (regression) per task."""
    stats = {}
    for task in model.cfg.tasks:
        tgt = targets[task.name]
        if task.kind == "segmentation":
            valid = tgt[tgt < task.channels]
            stats[task.name] = int(torch.bincount(valid.flatten(), minlength=task.channels).argmax())
        else:
            stats[task.name] = float(tgt[tgt > 0].mean())
    return stats


def format_table(metrics: dict, baselines: dict | None = None) -> str:
    rows = ["| task | metric | model | trivial baseline |", "|---|---|---|---|"]
    for task, m in metrics.items():
        for key, value in m.items():
            base = baselines[task][key] if baselines else float("nan")
            rows.append(f"| {task} | {key} | {value:.3f} | {base:.3f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint file (default: the shipped one for --config)")
    parser.add_argument("--config", default="nano", help="config whose shipped checkpoint to use "
                        "when --checkpoint is not given (default nano)")
    parser.add_argument("--scenes", type=int, default=500, help="held-out scenes (default 500)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED,
                        help=f"held-out scene family (default {HELD_OUT_SEED})")
    parser.add_argument("--data", help="evaluate on a folder (images/, semseg/, depth/) instead")
    parser.add_argument("--dense", action="store_true",
                        help="use the training (dense) path instead of the per-task sparse one")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    try:
        path = args.checkpoint or default_checkpoint(args.config)
        ckpt = load_checkpoint(path)
        model = load_model(path)
        if args.data:
            ds = FolderDataset(args.data, model.cfg.img_size)
            samples = [ds[i] for i in range(len(ds))]
            images = torch.stack([s[0] for s in samples])
            targets = {k: torch.stack([s[1][k] for s in samples]) for k in samples[0][1]}
        else:
            images, targets = SceneDataset(args.scenes, args.seed, model.cfg.img_size).tensors(
                progress=sys.stderr.isatty())
        metrics = evaluate(model, images, targets, sparse=not args.dense,
                           progress=sys.stderr.isatty())
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = ckpt.get("train_stats") or training_stats(targets, model)
    baselines = baseline_metrics(model, targets, stats)
    if args.json:
        print(json.dumps({"checkpoint": str(path), "metrics": metrics, "baselines": baselines},
                         indent=2))
    else:
        print(f"checkpoint {path} ({model.cfg.name}), {len(images)} images, "
              f"{'dense' if args.dense else 'per-task sparse'} path")
        print(format_table(metrics, baselines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
