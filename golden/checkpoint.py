"""Checkpoints: one file holding the model config and the state dict (plus training state)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .argtypes import out_file, size_hw
from .config import ModelConfig
from .model import M3ViT, load_state_dict_resized
from .original import first_line, import_original, looks_like_ours

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "DEFAULT_CHECKPOINTS",
           "default_checkpoint", "shipped_checkpoint", "file_digest"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINTS = {"nano": CHECKPOINT_DIR / "nano.pt", "tiny": CHECKPOINT_DIR / "tiny.pt"}
"""The trained checkpoints the repository ships, by config (commands default to them)."""
FORMAT_VERSION = 1


def shipped_checkpoint(config: str) -> Path | None:
    """The checkpoint shipped for ``config``, or None when none ships (random weights then)."""
    path = DEFAULT_CHECKPOINTS.get(config)
    return path if path is not None and path.is_file() else None


def default_checkpoint(config: str) -> Path:
    """The checkpoint shipped in the repository for ``config``.

    Raises
    ------
    FileNotFoundError
        If none ships for ``config`` (the message says how to train one).
    """
    path = shipped_checkpoint(config)
    if path is None:
        have = [name for name in DEFAULT_CHECKPOINTS if shipped_checkpoint(name)]
        raise FileNotFoundError(f"no checkpoint ships for config {config!r} (only for "
                                f"{', '.join(have) or 'none'}); train one with "
                                f"python -m golden.train --config {config}")
    return path


def file_digest(path: str | Path, length: int = 12) -> str:
    """The first ``length`` hex digits of a file's SHA-256 (cache keys of derived models)."""
    import hashlib
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:length]


def save_checkpoint(path: str | Path, model: M3ViT, *, half: bool = False, **extra) -> None:
    """Write ``{format, config, state_dict, **extra}`` atomically (a crash never leaves half a file).

    With ``half`` the floating-point tensors are stored as float16 (half the file; loading
    widens them back to float32, so every consumer sees the same fp16-rounded weights)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"format": FORMAT_VERSION, "config": model.cfg.to_dict(), "state_dict": state,
                "storage_dtype": "float16" if half else "float32", **extra}, tmp)
    tmp.replace(path)


def _read(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise ValueError(f"{path} is not a readable checkpoint ({first_line(exc)})") from None


def load_checkpoint(path: str | Path) -> dict:
    """Our own checkpoint file as a dict (``format``, ``config``, ``state_dict``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist"
                                + (" as a file (a directory: an original per-rank checkpoint? "
                                   "use load_model(path, config=NAME))" if path.is_dir() else ""))
    return _check_ours(_read(path), path)


def _check_ours(ckpt: object, path: Path) -> dict:
    if not looks_like_ours(ckpt):
        raise ValueError(f"{path} is not one of our M3ViT checkpoints (no format/config/"
                         f"state_dict); if it is the original repository's, load it with "
                         f"load_model(path, config=NAME) or python -m golden.checkpoint import")
    if ckpt.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {ckpt.get('format')} is not the supported "
                         f"{FORMAT_VERSION}")
    return ckpt


def load_model(path: str | Path, img_size: tuple[int, int] | None = None, *,
               config: str | None = None, backbone_only: bool = False,
               overrides: dict | None = None, source_img_size=None,
               trust: bool = False) -> M3ViT:
    """Model from a checkpoint, in eval mode; built for ``img_size`` if given (position embeddings
    resized once here).

    ``path`` is one of our checkpoints, or (with ``config``) the original repository's: a single
    file or a directory of per-rank files, mapped by :func:`golden.original.import_original`
    (``backbone_only``, ``overrides``, ``source_img_size`` and ``trust`` are passed on; the
    position embeddings are resized once, from the checkpoint's grid to ``img_size``'s).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    obj = _read(path) if path.is_file() and not trust else None
    if obj is not None and looks_like_ours(obj):
        ckpt = _check_ours(obj, path)
        cfg = ModelConfig.from_dict(ckpt["config"])
        state = ckpt["state_dict"]
    elif config is None:
        raise ValueError(f"{path} is not one of our M3ViT checkpoints; if it is the original "
                         f"repository's (a file or a directory of per-rank files), convert it "
                         f"once: python -m golden.checkpoint import {path} --config NAME --out "
                         f"OURS.pt (in Python: load_model(path, config=NAME))")
    else:
        overrides = dict(overrides or {})
        if img_size is not None:
            overrides["img_size"] = tuple(img_size)
        return import_original(path, config, backbone_only=backbone_only, overrides=overrides,
                               source_img_size=source_img_size, trust=trust).model
    target = cfg.replace(img_size=tuple(img_size)) if img_size else cfg
    model = M3ViT(target)
    load_state_dict_resized(model, state, cfg)
    return model.eval()


# ----------------------------------------------------------------------------------------- CLI

def _override_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def build_parser() -> argparse.ArgumentParser:
    from .config import config_names
    p = argparse.ArgumentParser(prog="python -m golden.checkpoint",
                                description="Checkpoint tools: convert the original M3ViT "
                                "repository's checkpoints to ours.")
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import", help="convert an original checkpoint (file or per-rank "
                         "directory) into one of ours, printing what was mapped")
    imp.add_argument("original", help="checkpoint.pth.tar / best_model.pth.tar (file or "
                     "directory of 0.pth, 1.pth, ...)")
    imp.add_argument("--config", required=True, choices=config_names(),
                     help="our model config to map onto (heads become the original's up-heads)")
    imp.add_argument("--out", type=out_file, required=True, help="our checkpoint to write (.pt)")
    imp.add_argument("--backbone-only", action="store_true",
                     help="load backbone and gates only; heads keep the config's type, fresh")
    imp.add_argument("--override", action="append", type=_override_arg, default=[],
                     metavar="FIELD=VALUE", help="change a config field to fit the checkpoint "
                     "(e.g. expert_hidden=192, semseg.channels=7); repeatable")
    imp.add_argument("--source-size", type=size_hw, metavar="HxW",
                     help="image size the checkpoint was trained at (only needed when its patch "
                     "grid is not square and differs from the config's)")
    imp.add_argument("--trust", action="store_true",
                     help="allow arbitrary pickled objects (only for files you trust)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        imported = import_original(args.original, args.config, backbone_only=args.backbone_only,
                                   overrides=dict(args.override),
                                   source_img_size=args.source_size, trust=args.trust)
        save_checkpoint(out, imported.model, imported_from=str(args.original))
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(imported.summary())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
