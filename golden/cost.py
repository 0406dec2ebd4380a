"""Cost accounting: what one task's sparse inference costs against running the model densely.

``python -m golden.cost --config tiny small`` measures, with PyTorch's own FLOP counter
(``torch.utils.flop_counter.FlopCounterMode``; MACs = FLOPs / 2, matmuls and convolutions only),
for every task of each config at batch 1:

* **sparse**: :meth:`M3ViT.infer` — that task's gate, only experts with tokens, only its head;
* **dense, all tasks**: :meth:`M3ViT.forward` over every task with every expert on every token
  (what a naive multi-task MoE implementation computes);

and the parameters a single-task inference touches (shared weights + that task's gate + experts
that received tokens + that head) against all parameters. It also prints the per-layer expert-load
histograms (tokens per expert) and can plot them (``--plot DIR``).

Weights are the config's shipped checkpoint (``nano``, ``tiny``) unless ``--checkpoint`` or
``--random`` is given, random (seeded) for configs without one; the input is a procedural scene at
the config's image size. Routing, and so the set of touched experts, depends on weights and input;
MACs of a top-k MoE do not (every token visits exactly k experts).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from .argtypes import nonneg_int, out_dir
from .checkpoint import load_model, shipped_checkpoint
from .config import config_names, get_config
from .data import render_scene
from .model import M3ViT

__all__ = ["TaskCost", "measure", "count_macs", "main"]

# Module classes the FLOP counter attributes work to; the rest (gate + experts) is the MoE.
_PARTS = {"PatchEmbed": "patch_embed", "Attention": "attention", "Mlp": "dense_mlp",
          "TaskHead": "head", "UpHead": "head"}


def count_macs(fn) -> tuple[int, dict[str, int]]:
    """MACs of ``fn()`` (FLOPs / 2 from FlopCounterMode) and their split by model part."""
    with FlopCounterMode(display=False) as counter:
        fn()
    total = counter.get_total_flops() // 2
    counts = counter.get_flop_counts()
    parts = dict.fromkeys(_PARTS.values(), 0)
    for cls, name in _PARTS.items():
        parts[name] += sum(counts.get(cls, {}).values()) // 2
    parts["moe"] = total - sum(parts.values())
    return total, parts


@dataclass
class TaskCost:
    config: str
    task: str
    sparse_macs: int
    sparse_parts: dict[str, int]
    dense_single_macs: int       # this task, every expert on every token
    dense_all_macs: int          # every task, every expert on every token
    params_total: int
    params_task: int             # touched by this task's sparse inference
    loads: list[list[int]]       # tokens per expert, per MoE layer


def _params_touched(model: M3ViT, task: str, routings) -> int:
    cfg = model.cfg
    t = cfg.task_index(task)
    total = 0
    for name, p in model.named_parameters():
        if name.startswith("decoders."):
            total += p.numel() if name.startswith(f"decoders.{task}.") else 0
        elif ".mlp.gate" in name or ".mlp.experts." in name:
            continue  # counted per layer below
        else:
            total += p.numel()
    for moe, routing in zip(model.moe_layers(), routings):
        w, b = moe.gate_weight_and_bias(t)
        total += w.numel() + (b.numel() if b is not None else 0)
        used = int((routing.load(cfg.experts) > 0).sum())
        per_expert = sum(p[0].numel() for p in moe.experts.parameters())
        total += used * per_expert
    return total


@torch.no_grad()
def measure(model: M3ViT, image: torch.Tensor) -> list[TaskCost]:
    """Costs of every task of ``model`` on one image [1, 3, H, W]."""
    model.eval()
    cfg = model.cfg
    with model.dense_moe():
        dense_all, _ = count_macs(lambda: model(image))
    params_total = sum(p.numel() for p in model.parameters())
    out = []
    for task in cfg.task_names:
        sparse, parts = count_macs(lambda: model.infer(image, task))
        with model.dense_moe():
            dense_single, _ = count_macs(lambda: model(image, tasks=[task]))
        _, routings = model.infer(image, task, return_routing=True)
        loads = [r.load(cfg.experts).tolist() for r in routings]
        out.append(TaskCost(cfg.name, task, sparse, parts, dense_single, dense_all, params_total,
                            _params_touched(model, task, routings), loads))
    return out


def _g(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _m(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def markdown_table(costs: list[TaskCost]) -> str:
    rows = ["| config | task | sparse MACs (this task) | of which MoE | of which head | dense MACs, this task, all "
            "experts | dense MACs, all tasks, all experts | sparse ÷ dense-all | params touched "
            "| params total |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in costs:
        rows.append(f"| {c.config} | {c.task} | {_g(c.sparse_macs)} | {_g(c.sparse_parts['moe'])} "
                    f"| {_g(c.sparse_parts['head'])} | {_g(c.dense_single_macs)} | {_g(c.dense_all_macs)} | "
                    f"{c.sparse_macs / c.dense_all_macs * 100:.1f}% | {_m(c.params_task)} | "
                    f"{_m(c.params_total)} |")
    return "\n".join(rows)


def text_histograms(c: TaskCost, width: int = 30) -> str:
    lines = [f"expert load, {c.config}/{c.task} (tokens per expert, per MoE layer):"]
    for i, load in enumerate(c.loads):
        peak = max(max(load), 1)
        lines.append(f"  layer {i}: " + " ".join(f"{n:4d}" for n in load))
        lines.append("           " + " ".join(f"{'#' * round(4 * n / peak):<4}" for n in load))
    return "\n".join(lines)


def plot_histograms(costs: list[TaskCost], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = len(costs[0].loads)
    fig, axes = plt.subplots(len(costs), layers, figsize=(2.2 * layers, 1.8 * len(costs)),
                             squeeze=False, sharey="row")
    for r, c in enumerate(costs):
        for l, load in enumerate(c.loads):
            ax = axes[r][l]
            ax.bar(range(len(load)), load, color="tab:blue")
            ax.set_title(f"{c.task} · MoE {l}", fontsize=8)
            ax.set_xticks(range(0, len(load), max(1, len(load) // 8)))
            ax.tick_params(labelsize=6)
        axes[r][0].set_ylabel("tokens", fontsize=8)
    fig.suptitle(f"{costs[0].config}: tokens per expert (top-{get_config(costs[0].config).top_k})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.cost",
                                     description="MACs and parameters: per-task sparse vs dense.")
    parser.add_argument("--config", nargs="+", default=["tiny", "small"], choices=config_names(),
                        help="configs to measure (default: tiny small)")
    parser.add_argument("--checkpoint", help="use these trained weights (only with a single "
                        "--config; default: the config's shipped checkpoint, if one ships)")
    parser.add_argument("--random", action="store_true",
                        help="seeded random weights even where a checkpoint ships")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="weight-init and scene seed")
    parser.add_argument("--plot", type=out_dir, help="folder for expert-load histogram PNGs")
    parser.add_argument("--no-histograms", action="store_true", help="skip the text histograms")
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.config) != 1:
        parser.error("--checkpoint needs exactly one --config")
    if args.checkpoint and args.random:
        parser.error("--checkpoint and --random exclude each other")

    all_costs = []
    for name in args.config:
        torch.manual_seed(args.seed)
        path = args.checkpoint or (None if args.random else shipped_checkpoint(name))
        try:
            model = load_model(path) if path else M3ViT(get_config(name))
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.checkpoint and model.cfg.name != name:
            print(f"error: --checkpoint {args.checkpoint} holds a {model.cfg.name!r} model, not "
                  f"{name!r}", file=sys.stderr)
            return 2
        image = torch.from_numpy(render_scene(args.seed, 0, model.cfg.img_size)[0])[None]
        weights = f"weights {path}" if path else f"random weights (seed {args.seed})"
        print(f"measuring {name} ({model.cfg.img_size[0]}x{model.cfg.img_size[1]}, "
              f"{model.cfg.num_tokens} tokens, {weights}) ...", file=sys.stderr)
        costs = measure(model, image)
        all_costs += costs
        if not args.no_histograms:
            for c in costs:
                print(text_histograms(c))
        if args.plot:
            path = Path(args.plot) / f"expert_load_{name}.png"
            plot_histograms(costs, path)
            print(f"wrote {path}", file=sys.stderr)
    print(markdown_table(all_costs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
