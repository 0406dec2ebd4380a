"""Float vs integer: task metrics, final-token cosine similarity and routing agreement."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..metrics import RegressionMeter, SegmentationMeter
from ..model import M3ViT
from .model import IntM3ViT
from .ptq import pixels_from_image

__all__ = ["compare", "TaskFidelity"]


class TaskFidelity:
    """Accumulates one task's float-vs-integer statistics over images."""

    def __init__(self, model: M3ViT, task: str, with_targets: bool):
        spec = model.cfg.task(task)
        self.task, self.kind = task, spec.kind
        self.cosines: list[float] = []
        self.token_cosines: list[np.ndarray] = []
        self.topk_match = np.zeros(len(model.cfg.moe_blocks))
        self.tokens = 0
        self.meters = None
        if with_targets:
            make = (lambda: SegmentationMeter(spec.channels)) if spec.kind == "segmentation" \
                else RegressionMeter
            self.meters = {"float": make(), "int": make()}
        self.pred_agreement: list[float] = []

    def summary(self) -> dict:
        tok = np.concatenate(self.token_cosines)
        out = {"cosine_final_tokens": float(np.mean(self.cosines)),
               "min_token_cosine": float(tok.min()),
               "topk_set_match_per_moe_layer": (self.topk_match / self.tokens).tolist()}
        if self.kind == "segmentation":
            out["pixel_agreement"] = float(np.mean(self.pred_agreement))
        if self.meters:
            out["float"] = self.meters["float"].summary()
            out["int"] = self.meters["int"].summary()
        return out


def _cos(a: np.ndarray, b: np.ndarray, axis=None) -> np.ndarray:
    return (a * b).sum(axis) / (np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis) + 1e-30)


@torch.no_grad()
def compare(model: M3ViT, int_model: IntM3ViT, images: torch.Tensor,
            targets: dict[str, torch.Tensor] | None = None, progress: bool = False) -> dict:
    """Per task: cosine of the final encoder tokens (float vs dequantised integer residual),
    fraction of tokens whose top-k expert *set* matches the float gate's (per MoE layer), pixel
    agreement of segmentation maps, and — with ``targets`` — both models' task metrics.

    Both models see the same 8-bit pixels; each follows its own routing.
    """
    model.eval()
    cfg = model.cfg
    stats = {t: TaskFidelity(model, t, targets is not None and t in targets) for t in cfg.task_names}
    it = range(len(images))
    if progress:
        it = tqdm(it, desc="float vs integer", unit="image", leave=False)
    for i in it:
        pixels = pixels_from_image(images[i])
        x = torch.from_numpy(pixels / 255.0).float()[None]
        for task in cfg.task_names:
            st = stats[task]
            f_out, f_routing = model.infer(x, task, return_routing=True)
            f_tokens = model.encode(x, task)[0].double().numpy()
            r, i_routing = int_model.encode(pixels, task)
            i_tokens = r * int_model.res_scale
            st.cosines.append(float(_cos(f_tokens, i_tokens)))
            st.token_cosines.append(_cos(f_tokens, i_tokens, axis=-1))
            for layer, (fr, ir) in enumerate(zip(f_routing, i_routing)):
                fs = np.sort(fr.indices.numpy(), -1)
                is_ = np.sort(ir.indices, -1)
                st.topk_match[layer] += (fs == is_).all(-1).sum()
            st.tokens += cfg.num_tokens
            i_pred = int_model.prediction(task, int_model.head_output(task, r))
            f_pred = M3ViT.predictions(st.kind, f_out)[0].numpy()
            if st.kind == "segmentation":
                st.pred_agreement.append(float((i_pred == f_pred).mean()))
            if st.meters:
                tgt = targets[task][i]
                st.meters["float"].update(torch.from_numpy(f_pred), tgt)
                st.meters["int"].update(torch.from_numpy(np.asarray(i_pred)), tgt)
    return {t: s.summary() for t, s in stats.items()}
