"""Dense-prediction metrics: mIoU and pixel accuracy for segmentation, RMSE and abs-rel for depth.

A metric over no valid pixels is undefined: :meth:`summary` then reports NaN (never a value that
looks perfect or plain bad, such as RMSE 0.0), and :meth:`coverage` says how many scenes and
valid pixels the metrics used, so a report can explain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import IGNORE_INDEX

__all__ = ["SegmentationMeter", "RegressionMeter"]


def _scenes_with_valid(valid: torch.Tensor) -> tuple[int, int]:
    """(scenes, scenes with at least one valid pixel): [N, H, W] is N scenes, else one."""
    if valid.dim() >= 3:
        per = valid.flatten(1).any(1)
        return len(per), int(per.sum())
    return 1, int(bool(valid.any()))


@dataclass
class SegmentationMeter:
    """Accumulates a confusion matrix; mIoU averages over classes present in prediction or truth.

    Valid pixels are those whose target is not :data:`IGNORE_INDEX` (255).
    """

    classes: int
    confusion: np.ndarray = field(init=False)
    images: int = field(init=False, default=0)
    scenes: int = field(init=False, default=0)

    def __post_init__(self):
        self.confusion = np.zeros((self.classes, self.classes), np.int64)

    @staticmethod
    def valid(target: torch.Tensor) -> torch.Tensor:
        return target != IGNORE_INDEX

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = self.valid(target)
        t = target[valid].to(torch.int64).numpy()
        p = pred[valid].to(torch.int64).numpy()
        if t.size and (t.max() >= self.classes or t.min() < 0):
            raise ValueError(f"label {int(t.max())} outside 0..{self.classes - 1}")
        self.confusion += np.bincount(t * self.classes + p,
                                      minlength=self.classes ** 2).reshape(self.classes, -1)
        images, scenes = _scenes_with_valid(valid)
        self.images += images
        self.scenes += scenes

    @property
    def pixels(self) -> int:
        return int(self.confusion.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU, NaN for classes absent from both prediction and truth."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def summary(self) -> dict[str, float]:
        """mIoU and pixel accuracy in %, both NaN when there was no valid pixel."""
        total = self.pixels
        if total == 0:
            return {"mIoU": float("nan"), "pixel_acc": float("nan")}
        return {"mIoU": float(np.nanmean(self.iou()) * 100),
                "pixel_acc": float(np.diag(self.confusion).sum() / total * 100)}

    def coverage(self) -> dict[str, int]:
        """Scenes seen, scenes with at least one valid pixel, valid pixels."""
        return {"images": self.images, "scenes": self.scenes, "pixels": self.pixels}


@dataclass
class RegressionMeter:
    """RMSE and mean absolute relative error over valid pixels (target > 0)."""

    sq_err: float = 0.0
    abs_rel: float = 0.0
    count: int = 0
    images: int = 0
    scenes: int = 0

    @staticmethod
    def valid(target: torch.Tensor) -> torch.Tensor:
        return target > 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = self.valid(target)
        p, t = pred[valid].double(), target[valid].double()
        self.sq_err += float(((p - t) ** 2).sum())
        self.abs_rel += float(((p - t).abs() / t).sum())
        self.count += int(valid.sum())
        images, scenes = _scenes_with_valid(valid)
        self.images += images
        self.scenes += scenes

    @property
    def pixels(self) -> int:
        return self.count

    def summary(self) -> dict[str, float]:
        """RMSE and abs-rel, both NaN when there was no valid pixel (not 0.0)."""
        if self.count == 0:
            return {"rmse": float("nan"), "abs_rel": float("nan")}
        return {"rmse": (self.sq_err / self.count) ** 0.5, "abs_rel": self.abs_rel / self.count}

    def coverage(self) -> dict[str, int]:
        """Scenes seen, scenes with at least one valid pixel, valid pixels."""
        return {"images": self.images, "scenes": self.scenes, "pixels": self.pixels}
