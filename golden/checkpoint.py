"""Checkpoints: one file holding the model config and the state dict (plus training state)."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ModelConfig
from .model import M3ViT, load_state_dict_resized

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "DEFAULT_CHECKPOINTS",
           "default_checkpoint"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINTS = {"nano": CHECKPOINT_DIR / "nano.pt"}
FORMAT_VERSION = 1


def default_checkpoint(config: str) -> Path:
    """The checkpoint shipped in the repository for ``config``."""
    try:
        return DEFAULT_CHECKPOINTS[config]
    except KeyError:
        raise FileNotFoundError(f"no checkpoint ships for config {config!r} (only for "
                                f"{', '.join(DEFAULT_CHECKPOINTS)}); train one with "
                                f"python -m golden.train --config {config}") from None


def save_checkpoint(path: str | Path, model: M3ViT, **extra) -> None:
    """Write ``{format, config, state_dict, **extra}`` atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT_VERSION, "config": model.cfg.to_dict(),
                "state_dict": model.state_dict(), **extra}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not an M3ViT checkpoint (no config/state_dict)")
    if ckpt.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {ckpt.get('format')} is not the supported "
                         f"{FORMAT_VERSION}")
    return ckpt


def load_model(path: str | Path, img_size: tuple[int, int] | None = None) -> M3ViT:
    """Model from a checkpoint, in eval mode; built for ``img_size`` if given (position embeddings
    resized once here)."""
    ckpt = load_checkpoint(path)
    cfg = ModelConfig.from_dict(ckpt["config"])
    target = cfg.replace(img_size=tuple(img_size)) if img_size else cfg
    model = M3ViT(target)
    load_state_dict_resized(model, ckpt["state_dict"], cfg)
    return model.eval()
