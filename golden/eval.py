"""Evaluate a checkpoint per task: mIoU / pixel accuracy (segmentation), RMSE / abs-rel (depth).

``python -m golden.eval [--checkpoint PATH] [--scenes N] [--data FOLDER]`` evaluates on held-out
procedural scenes (a seed the training never uses) or a user's folder, using the per-task sparse
inference path, and prints the trivial baselines beside the model: the training set's majority
class everywhere (mIoU) and its mean depth everywhere (RMSE), then how many scenes and valid
pixels each task's metrics used. A metric over no valid pixel is "n/a" (null in JSON) with a line
saying why. A folder whose labels do not match the documented formats or their image's size is
refused (exit 2, ``error: ...``); ``--resize-labels`` resizes mismatched labels instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
from tqdm import tqdm

from .argtypes import nonneg_int, out_dir, positive_int
from .checkpoint import default_checkpoint, load_checkpoint, load_model
from .data import FolderDataset, SceneDataset
from .metrics import RegressionMeter, SegmentationMeter
from .model import M3ViT

__all__ = ["evaluate", "baseline_metrics", "task_coverage", "coverage_lines", "expert_loads",
           "load_summary", "format_loads", "plot_loads", "HELD_OUT_SEED", "TRAIN_SEED"]

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
             batch_size: int = 64, sparse: bool = True, progress: bool = False,
             loads: dict | None = None) -> dict:
    """Metrics per task over ``images`` [N, 3, H, W] with ``targets[task]`` [N, H, W].

    ``sparse`` selects the per-task sparse path (:meth:`M3ViT.infer`); otherwise every expert runs
    on every token (:meth:`M3ViT.dense_moe`). With ``sparse``, a ``loads`` dict is filled with
    :func:`expert_loads`' result from the same inference passes.
    """
    _check_targets(model, targets)
    model.eval()
    meters = {t.name: _meter(t) for t in model.cfg.tasks}
    starts = range(0, len(images), batch_size)
    if progress:
        starts = tqdm(starts, desc="evaluating", unit="batch", leave=False)
    for s in starts:
        x = images[s : s + batch_size]
        if sparse:
            outs = {}
            for t in model.cfg.task_names:
                outs[t], routings = model.infer(x, t, return_routing=True)
                if loads is not None:
                    loads.setdefault(t, []).append(_frame_loads(routings, len(x), model.cfg.experts))
        else:
            with model.dense_moe():
                outs = model(x)
        for task in model.cfg.tasks:
            pred = M3ViT.predictions(task.kind, outs[task.name])
            meters[task.name].update(pred, targets[task.name][s : s + batch_size])
    if loads is not None:
        loads.update({t: torch.cat(per) for t, per in loads.items()})
    return {name: m.summary() for name, m in meters.items()}


def _frame_loads(routings, frames: int, experts: int) -> torch.Tensor:
    """Tokens per expert [frames, MoE layers, experts] from a batch's pooled routings (exact per
    image: the gate decides per token)."""
    return torch.stack([torch.nn.functional.one_hot(r.indices.reshape(frames, -1), experts).sum(1)
                        for r in routings], dim=1)


@torch.no_grad()
def expert_loads(model: M3ViT, images: torch.Tensor, batch_size: int = 64) -> dict:
    """Tokens per expert of every frame: ``{task: LongTensor [frames, MoE layers, experts]}``.

    Each image is one frame (the hardware runs one at a time): a batch's pooled routing is split
    back per image, which is exact since the gate decides per token.
    """
    model.eval()
    out = {}
    for task in model.cfg.task_names:
        frames = []
        for s in range(0, len(images), batch_size):
            x = images[s : s + batch_size]
            _, routings = model.infer(x, task, return_routing=True)
            frames.append(_frame_loads(routings, len(x), model.cfg.experts))
        out[task] = torch.cat(frames)
    return out


def load_summary(loads: dict) -> dict:
    """Per task and MoE layer: experts that receive tokens (mean, min, max over frames), the
    largest queue (mean, max) and the mean tokens per expert per frame."""
    out = {}
    for task, per in loads.items():
        used = (per > 0).sum(-1).float()  # [frames, layers]
        largest = per.max(-1).values.float()
        out[task] = [{"layer": l, "experts_used_mean": round(used[:, l].mean().item(), 2),
                      "experts_used_min": int(used[:, l].min()),
                      "experts_used_max": int(used[:, l].max()),
                      "largest_queue_mean": round(largest[:, l].mean().item(), 1),
                      "largest_queue_max": int(largest[:, l].max()),
                      "mean_tokens_per_expert": [round(v, 2) for v in
                                                 per[:, l].float().mean(0).tolist()]}
                     for l in range(per.shape[1])]
    return out


def format_loads(summary: dict, experts: int, frames: int) -> str:
    """Markdown table of :func:`load_summary`."""
    rows = [f"expert load over {frames} frames ({experts} experts per MoE layer):",
            "| task | MoE layer | experts used (mean, min–max) | largest queue (mean, max) |",
            "|---|---|---|---|"]
    for task, layers in summary.items():
        for r in layers:
            rows.append(f"| {task} | {r['layer']} | {r['experts_used_mean']:.1f} "
                        f"({r['experts_used_min']}–{r['experts_used_max']}) | "
                        f"{r['largest_queue_mean']:.1f}, {r['largest_queue_max']} |")
    return "\n".join(rows)


def plot_loads(summary: dict, title: str, path) -> None:
    """Bar charts of the mean tokens per expert per frame: one row per task, one panel per layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = list(summary)
    layers = len(summary[tasks[0]])
    fig, axes = plt.subplots(len(tasks), layers, figsize=(2.3 * layers, 2.0 * len(tasks)),
                             squeeze=False, sharey=True)
    for i, task in enumerate(tasks):
        for r in summary[task]:
            ax = axes[i][r["layer"]]
            mean = r["mean_tokens_per_expert"]
            ax.bar(range(len(mean)), mean, color="tab:blue")
            ax.set_title(f"{task} · MoE {r['layer']}\nused {r['experts_used_mean']:.1f}, "
                         f"max queue {r['largest_queue_max']}", fontsize=7)
            ax.set_xticks(range(0, len(mean), max(1, len(mean) // 4)))
            ax.tick_params(labelsize=6)
        axes[i][0].set_ylabel("tokens / frame", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def _undefined(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value) -> str:
    return "n/a" if _undefined(value) else f"{value:.3f}"


def format_table(metrics: dict, baselines: dict | None = None) -> str:
    """Markdown table; an undefined metric (NaN: no valid pixel) shows as ``n/a``."""
    rows = ["| task | metric | model | trivial baseline |", "|---|---|---|---|"]
    for task, m in metrics.items():
        for key, value in m.items():
            base = baselines[task][key] if baselines else float("nan")
            rows.append(f"| {task} | {key} | {_fmt(value)} | {_fmt(base)} |")
    return "\n".join(rows)


def task_coverage(model: M3ViT, targets: dict[str, torch.Tensor]) -> dict:
    """Per task: scenes (``images``), scenes with a valid pixel (``scenes``), valid ``pixels``."""
    out = {}
    for task in model.cfg.tasks:
        tgt = targets[task.name]
        per = _meter(task).valid(tgt).flatten(1).sum(1)
        out[task.name] = {"images": len(tgt), "scenes": int((per > 0).sum()),
                          "pixels": int(per.sum())}
    return out


def coverage_lines(model: M3ViT, metrics: dict, coverage: dict,
                   label_files: dict | None = None) -> dict[str, str]:
    """One line per task saying what its metrics used, or why they are undefined.

    ``label_files`` (from :class:`FolderDataset`) counts the label files per task, to tell "no
    files" from "files holding no valid pixel".
    """
    lines = {}
    for task in model.cfg.tasks:
        c = coverage[task.name]
        n, keys = c["images"], ", ".join(metrics[task.name])
        invalid = "255 = ignore" if task.kind == "segmentation" else "0 = invalid"
        if c["pixels"] == 0:
            files = None if label_files is None else label_files.get(task.name, 0)
            if files == 0:
                why = f"no {task.name}/ label files"
            elif files:
                why = f"its {files} {task.name}/ file(s) hold only {invalid}"
            else:
                why = f"every pixel {invalid}"
            lines[task.name] = (f"{task.name}: no valid pixels in any of the {n} scenes ({why}): "
                                f"{keys} undefined (n/a)")
        else:
            line = (f"{task.name} ({keys}): {c['scenes']} of {n} scenes, "
                    f"{c['pixels']:,} valid pixels")
            if c["scenes"] < n:
                line += (f"; {n - c['scenes']} scene(s) without a valid {task.name} pixel "
                         f"not counted")
            lines[task.name] = line
    return lines


def _json_safe(metrics: dict) -> dict:
    return {task: {k: (None if _undefined(v) else v) for k, v in m.items()}
            for task, m in metrics.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint file (default: the shipped one for --config)")
    parser.add_argument("--config", default="nano", help="config whose shipped checkpoint to use "
                        "when --checkpoint is not given (default nano)")
    parser.add_argument("--scenes", type=positive_int, default=500, help="held-out scenes (default 500)")
    parser.add_argument("--seed", type=nonneg_int, default=HELD_OUT_SEED,
                        help=f"held-out scene family (default {HELD_OUT_SEED})")
    parser.add_argument("--data", help="evaluate on a folder (images/, semseg/, depth/) instead")
    parser.add_argument("--resize-labels", action="store_true",
                        help="with --data: resize labels whose size differs from their image's "
                        "(nearest neighbour) instead of refusing the folder")
    parser.add_argument("--dense", action="store_true",
                        help="run every expert on every token (the dense reference) instead of "
                        "the per-task sparse path")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", type=out_dir, help="write the expert-load plot "
                        "(expert_load_<config>_eval.png) into this folder")
    args = parser.parse_args(argv)

    label_files, notes = None, []
    try:
        path = args.checkpoint or default_checkpoint(args.config)
        ckpt = load_checkpoint(path)
        model = load_model(path)
        if args.data:
            ds = FolderDataset.for_config(args.data, model.cfg, resize_labels=args.resize_labels)
            images, targets = ds.tensors()
            label_files, notes = ds.label_files, ds.notes
        else:
            if args.resize_labels:
                raise ValueError("--resize-labels applies to --data FOLDER only")
            images, targets = SceneDataset(args.scenes, args.seed, model.cfg.img_size).tensors(
                progress=sys.stderr.isatty())
        per_frame = None if args.dense else {}
        metrics = evaluate(model, images, targets, sparse=not args.dense,
                           progress=sys.stderr.isatty(), loads=per_frame)
        loads = load_summary(expert_loads(model, images) if per_frame is None else per_frame)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = ckpt.get("train_stats") or training_stats(targets, model)
    baselines = baseline_metrics(model, targets, stats)
    coverage = task_coverage(model, targets)
    lines = coverage_lines(model, metrics, coverage, label_files)
    if args.json:
        for note in notes:
            print(note, file=sys.stderr)
        print(json.dumps({"checkpoint": str(path), "data": args.data,
                          "metrics": _json_safe(metrics), "baselines": _json_safe(baselines),
                          "expert_load": loads,
                          "coverage": {t: c | {"note": lines[t]} for t, c in coverage.items()}},
                         indent=2))
    else:
        source = f" from {args.data}" if args.data else " (held-out scenes)"
        print(f"checkpoint {path} ({model.cfg.name}), {len(images)} images{source}, "
              f"{'dense' if args.dense else 'per-task sparse'} path")
        for note in notes:
            print(note)
        print(format_table(metrics, baselines))
        print("scenes and valid pixels used:")
        for line in lines.values():
            print(f"  {line}")
        print(format_loads(loads, model.cfg.experts, len(images)))
    if args.plot:
        from pathlib import Path
        plot = Path(args.plot) / f"expert_load_{model.cfg.name}_eval.png"
        plot_loads(loads, f"{model.cfg.name} ({Path(path).name}): mean tokens per expert per "
                   f"frame, {len(images)} frames, top-{model.cfg.top_k}", plot)
        print(f"wrote {plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
