"""Dense-prediction metrics: mIoU and pixel accuracy for segmentation, RMSE and abs-rel for depth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import IGNORE_INDEX

__all__ = ["SegmentationMeter", "RegressionMeter"]


@dataclass
class SegmentationMeter:
    """Accumulates a confusion matrix; mIoU averages over classes present in prediction or truth."""

    classes: int
    confusion: np.ndarray = field(init=False)

    def __post_init__(self):
        self.confusion = np.zeros((self.classes, self.classes), np.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != IGNORE_INDEX
        t = target[valid].to(torch.int64).numpy()
        p = pred[valid].to(torch.int64).numpy()
        if t.size and (t.max() >= self.classes or t.min() < 0):
            raise ValueError(f"label {int(t.max())} outside 0..{self.classes - 1}")
        self.confusion += np.bincount(t * self.classes + p,
                                      minlength=self.classes ** 2).reshape(self.classes, -1)

    def iou(self) -> np.ndarray:
        """Per-class IoU, NaN for classes absent from both prediction and truth."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def summary(self) -> dict[str, float]:
        total = self.confusion.sum()
        return {"mIoU": float(np.nanmean(self.iou()) * 100),
                "pixel_acc": float(np.diag(self.confusion).sum() / max(total, 1) * 100)}


@dataclass
class RegressionMeter:
    """RMSE and mean absolute relative error over valid pixels (target > 0)."""

    sq_err: float = 0.0
    abs_rel: float = 0.0
    count: int = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target > 0
        p, t = pred[valid].double(), target[valid].double()
        self.sq_err += float(((p - t) ** 2).sum())
        self.abs_rel += float(((p - t).abs() / t).sum())
        self.count += int(valid.sum())

    def summary(self) -> dict[str, float]:
        n = max(self.count, 1)
        return {"rmse": (self.sq_err / n) ** 0.5, "abs_rel": self.abs_rel / n}
