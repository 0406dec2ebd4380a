"""Wall time of one training step, sparse MoE (the training path) against the dense reference.

    python benchmarks/train_step.py                  # tiny, batch 16, both paths
    python benchmarks/train_step.py --config nano --batch-size 32

Each path runs ``--steps`` optimizer steps (forward over every task, losses, backward, AdamW) on
random pixels and labels after one warm-up step, and prints the median step time. The sparse path
runs each token through its top-k experts only; ``M3ViT.dense_moe`` runs every expert on every
token (same loss and gradients, ``tests/golden/test_model.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.argtypes import positive_int  # noqa: E402
from golden.config import config_names, get_config  # noqa: E402
from golden.model import M3ViT  # noqa: E402
from golden.train import task_loss  # noqa: E402


def step_times(cfg, batch: int, steps: int, dense: bool) -> list[float]:
    """Seconds per optimizer step (after one warm-up step)."""
    torch.manual_seed(0)
    model = M3ViT(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, *cfg.img_size)
    y = {t.name: (torch.randint(0, t.channels, (batch, *cfg.img_size))
                  if t.kind == "segmentation" else torch.rand(batch, *cfg.img_size) * 10)
         for t in cfg.tasks}
    times = []
    with model.dense_moe() if dense else nullcontext():
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            out = model(x)
            loss = sum(task_loss(t.kind, out[t.name], y[t.name]) for t in cfg.tasks)
            opt.zero_grad(set_to_none=True)
            (loss + model.aux_loss()).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
    return times[1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny", choices=config_names())
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps per path")
    args = p.parse_args(argv)
    cfg = get_config(args.config)
    print(f"{cfg.name}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    result = {}
    for name, dense in (("sparse", False), ("dense", True)):
        result[name] = statistics.median(step_times(cfg, args.batch_size, args.steps, dense))
        print(f"{name:>6}: {result[name]:.2f} s per step", flush=True)
    print(f"dense / sparse: {result['dense'] / result['sparse']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
