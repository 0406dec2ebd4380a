"""Train an M³ViT on procedural multi-task scenes (or a folder) on the CPU.

``python -m golden.train --config nano --out runs/nano.pt`` — seeded, with a progress bar, and
resumable: the checkpoint written every ``--save-every`` steps holds config, state dict, optimizer,
schedule position and RNG state; ``--resume runs/nano.pt`` continues exactly where it stopped.

Loss: per task, cross-entropy (segmentation, ignore 255) or L1 over valid pixels (depth, weight
``--depth-weight``), plus each MoE gate's balancing loss (cv²(importance) + cv²(load)) × 0.01.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .argtypes import nonneg_float, nonneg_int, out_file, positive_float, positive_int
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig, config_names, get_config
from .data import IGNORE_INDEX, FolderDataset, SceneDataset
from .eval import HELD_OUT_SEED, TRAIN_SEED, baseline_metrics, evaluate, format_table, training_stats
from .model import M3ViT

__all__ = ["task_loss", "train", "main"]


def task_loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "segmentation":
        if not (target != IGNORE_INDEX).any():  # every pixel ignored: cross_entropy gives NaN
            return output.sum() * 0.0
        return F.cross_entropy(output, target, ignore_index=IGNORE_INDEX)
    valid = target > 0
    if not valid.any():
        return output.sum() * 0.0
    return F.l1_loss(output[:, 0][valid], target[valid])


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _flip(images, targets, mask):
    images = torch.where(mask[:, None, None, None], images.flip(-1), images)
    targets = {k: torch.where(mask[:, None, None], v.flip(-1), v) for k, v in targets.items()}
    return images, targets


def train(cfg: ModelConfig, images: torch.Tensor, targets: dict, *, steps: int, batch_size: int,
          lr: float, weight_decay: float, depth_weight: float, seed: int, out: Path,
          save_every: int, resume: dict | None = None, stop_at: int | None = None,
          init: dict | None = None, log=None) -> M3ViT:
    log = log or (lambda message: print(message, flush=True))
    torch.manual_seed(seed)
    model = M3ViT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    start, elapsed = 0, 0.0
    stages = []  # earlier runs these weights continue (``init``): their commands and steps
    if init is not None:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in init["state_dict"].items()})
        stages = list(init.get("stages", [])) + [
            {k: init.get(k) for k in ("command", "steps", "train_seconds", "train_args")}]
        log(f"starting from the weights of {len(stages)} earlier run(s), "
            f"{sum(stage['steps'] or 0 for stage in stages)} steps")
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        start, elapsed = resume["step"], resume["train_seconds"]
        stages = list(resume.get("stages", []))
        log(f"resumed at step {start}/{steps}")
    stats = training_stats(targets, model)
    history = list(resume.get("history", [])) if resume is not None else []
    warmup = min(200, steps // 10 + 1)

    def checkpoint(step):
        save_checkpoint(out, model, optimizer=opt.state_dict(), generator=gen.get_state(),
                        torch_rng=torch.get_rng_state(), step=step, steps=steps,
                        train_seconds=elapsed + time.perf_counter() - t0, train_stats=stats,
                        history=history, stages=stages,
                        train_args={"batch_size": batch_size, "lr": lr, "seed": seed,
                                    "weight_decay": weight_decay, "depth_weight": depth_weight,
                                    "train_images": len(images)})

    t0 = time.perf_counter()
    model.train()
    end = min(steps, stop_at) if stop_at else steps
    bar = tqdm(range(start, end), initial=start, total=steps, desc=f"train {cfg.name}",
               unit="step", disable=None)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        flip = torch.rand(batch_size, generator=gen) < 0.5
        x, y = _flip(images[idx], {k: v[idx] for k, v in targets.items()}, flip)
        outputs = model(x)
        losses = {t.name: task_loss(t.kind, outputs[t.name], y[t.name]) for t in cfg.tasks}
        loss = sum(losses[t.name] * (depth_weight if t.kind == "regression" else 1.0)
                   for t in cfg.tasks) + model.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0:
            record = {k: round(v.item(), 4) for k, v in losses.items()}
            record["balance"] = round(model.aux_loss().item(), 5)
            history.append({"step": step, **record})
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()})
            if bar.disable and step % 100 == 0:  # no terminal (a log file): a line per 100 steps
                log(f"step {step}/{steps} " + " ".join(f"{k} {v:.3f}" for k, v in record.items())
                    + f" ({elapsed + time.perf_counter() - t0:.0f} s)")
        if (step + 1) % save_every == 0 or step + 1 == end:
            checkpoint(step + 1)
    bar.close()
    log(f"trained {end - start} steps in {time.perf_counter() - t0:.1f} s "
        f"(total {elapsed + time.perf_counter() - t0:.1f} s); checkpoint {out}")
    return model.eval()


def _load_folder(root: str, cfg: ModelConfig, resize_labels: bool):
    """A training folder as tensors; refuses one where a task has no valid pixel at all."""
    ds = FolderDataset.for_config(root, cfg, resize_labels=resize_labels)
    images, targets = ds.tensors()
    for note in ds.notes:
        print(note)
    for task in cfg.tasks:
        if task.name not in targets:
            raise ValueError(f"{root}: the folder has no targets for task {task.name} "
                             f"(it has {', '.join(targets)})")
        tgt = targets[task.name]
        valid = tgt != IGNORE_INDEX if task.kind == "segmentation" else tgt > 0
        if not valid.any():
            files = ds.label_files.get(task.name, 0)
            why = (f"no {task.name}/ label files" if not files else
                   f"its {files} {task.name}/ file(s) hold no valid pixel")
            raise ValueError(f"{root}: no valid {task.name} pixels in any of the {len(tgt)} "
                             f"scenes ({why}); nothing to train the {task.name} head on")
    return images, targets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.train",
                                     description="Train an M3ViT on procedural scenes or a folder.")
    parser.add_argument("--config", default="nano", choices=config_names(),
                        help="model configuration (default nano)")
    parser.add_argument("--out", type=out_file, default="runs/nano.pt", help="checkpoint to write")
    parser.add_argument("--resume", help="continue from this checkpoint (same arguments)")
    parser.add_argument("--init", help="start from this checkpoint's weights (e.g. an exported "
                        "golden/checkpoints/*.pt) with a fresh optimizer and schedule; the earlier "
                        "run's command is kept in the new checkpoint's stages")
    parser.add_argument("--steps", type=positive_int, default=9000, help="optimizer steps (default 9000)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--weight-decay", type=nonneg_float, default=0.05)
    parser.add_argument("--depth-weight", type=nonneg_float, default=0.2,
                        help="weight of the depth L1 loss (metres) against cross-entropy")
    parser.add_argument("--scenes", type=positive_int, default=20000,
                        help="procedural training scenes (default 20000)")
    parser.add_argument("--data", help="train on a folder (images/, semseg/, depth/) instead")
    parser.add_argument("--resize-labels", action="store_true",
                        help="with --data: resize labels whose size differs from their image's "
                        "(nearest neighbour) instead of refusing the folder")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="initialisation/sampling seed")
    parser.add_argument("--stop-at", type=positive_int, help="stop (with a checkpoint) at this step, "
                        "keeping the schedule of --steps; continue later with --resume")
    parser.add_argument("--save-every", type=positive_int, default=500)
    parser.add_argument("--eval-scenes", type=nonneg_int, default=500,
                        help="held-out scenes evaluated at the end (0: skip)")
    parser.add_argument("--export", type=out_file, help="also write a weights-only checkpoint (config, state "
                        "dict, provenance; no optimizer) here, e.g. golden/checkpoints/nano.pt")
    parser.add_argument("--export-dtype", choices=("float16", "float32"), default="float16",
                        help="storage of the exported weights (default float16: half the file)")
    parser.add_argument("--threads", type=nonneg_int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)

    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_config(args.config)
    resume = None
    if args.resume:
        try:
            resume = load_checkpoint(args.resume)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if "optimizer" not in resume:
            print(f"error: {args.resume} holds no training state (not written by golden.train)",
                  file=sys.stderr)
            return 2
        cfg = ModelConfig.from_dict(resume["config"])
    init = None
    if args.init:
        if args.resume:
            print("error: --init starts a new run; --resume continues one (give one of them)",
                  file=sys.stderr)
            return 2
        try:
            init = load_checkpoint(args.init)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if ModelConfig.from_dict(init["config"]) != cfg:
            print(f"error: {args.init} holds a {init['config'].get('name')!r} model whose "
                  f"configuration differs from --config {args.config}", file=sys.stderr)
            return 2
    if args.resize_labels and not args.data:
        print("error: --resize-labels applies to --data FOLDER only", file=sys.stderr)
        return 2
    if args.data:
        try:
            images, targets = _load_folder(args.data, cfg, args.resize_labels)
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        images, targets = SceneDataset(args.scenes, TRAIN_SEED, cfg.img_size).tensors(progress=True)
    model = train(cfg, images, targets, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  weight_decay=args.weight_decay, depth_weight=args.depth_weight, seed=args.seed,
                  out=Path(args.out), save_every=args.save_every, resume=resume,
                  stop_at=args.stop_at, init=init)
    if args.export:
        full = load_checkpoint(args.out)
        save_checkpoint(args.export, model, half=args.export_dtype == "float16",
                        train_stats=full["train_stats"], history=full.get("history", []),
                        train_seconds=full["train_seconds"], steps=full["steps"],
                        train_args=full["train_args"], stages=full.get("stages", []),
                        command="python -m golden.train " + " ".join(argv or sys.argv[1:]))
        print(f"exported weights-only checkpoint {args.export}")
    if args.eval_scenes:
        ev_images, ev_targets = SceneDataset(args.eval_scenes, HELD_OUT_SEED,
                                             cfg.img_size).tensors()
        metrics = evaluate(model, ev_images, ev_targets)
        base = baseline_metrics(model, ev_targets, training_stats(targets, model))
        print(f"held-out scenes ({args.eval_scenes}):")
        print(format_table(metrics, base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
