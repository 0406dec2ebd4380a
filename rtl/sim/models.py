"""Integer models for simulation and compilation, built once and cached.

``nano`` and ``tiny`` use their shipped trained checkpoints (``random_weights=True``: seeded
random weights instead, the old figures' model); configs without a checkpoint use seeded random
weights (what matters for the hardware is that every bit agrees, not accuracy). A trained model's
cache entry is keyed by the checkpoint file's SHA-256, so a new checkpoint is never served stale. Calibration uses
the training scenes, as ``python -m golden.quant quantize`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

from golden.quant.model import IntM3ViT

from .cache import models_cache_root

__all__ = ["int_model_for", "cache_dir"]


def cache_dir() -> Path:
    """:func:`rtl.sim.cache.models_cache_root`, created."""
    root = Path(models_cache_root())
    root.mkdir(parents=True, exist_ok=True)
    return root


def int_model_for(config: str, *, calib: int = 8, seed: int = 0,
                  random_weights: bool = False) -> IntM3ViT:
    """The integer model of ``config`` (cached under :func:`cache_dir`): its shipped checkpoint
    quantised, or seeded random weights (``random_weights``, or no checkpoint ships)."""
    import torch

    from golden.checkpoint import file_digest, load_model, shipped_checkpoint
    from golden.config import get_config
    from golden.data import SceneDataset
    from golden.eval import TRAIN_SEED
    from golden.model import M3ViT
    from golden.quant.ptq import quantize_model

    checkpoint = None if random_weights else shipped_checkpoint(config)
    source = f"trained-{file_digest(checkpoint)}" if checkpoint else f"random{seed}"
    path = cache_dir() / f"{config}-{source}-c{calib}.npz"
    if path.is_file():
        try:
            return IntM3ViT.load(path)
        except ValueError:
            path.unlink()
    if checkpoint:
        model = load_model(checkpoint)
    else:
        torch.manual_seed(seed)
        model = M3ViT(get_config(config)).eval()
    images, _ = SceneDataset(calib, TRAIN_SEED, model.cfg.img_size).tensors()
    int_model = quantize_model(model, images)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        int_model.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return int_model
