"""Model configurations: the one place where ``nano``, ``tiny`` and ``small`` are defined.

Every CLI flag (``--config NAME``), test and later the integer reference / compiler pick a model by
name through :func:`get_config`. Nothing else in the project may repeat these numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

HEAD_TYPES = ("linear", "uphead")
LOAD_ESTIMATES = ("original", "logit")

__all__ = ["HEAD_TYPES", "LOAD_ESTIMATES", "TaskSpec", "ModelConfig", "CONFIGS", "get_config", "config_names"]


@dataclass(frozen=True)
class TaskSpec:
    """One dense-prediction task and its per-token head.

    Parameters
    ----------
    name : str
        Task name, also the key under ``decoders.<name>`` in the state dict.
    kind : str
        ``"segmentation"`` (per-pixel class logits, cross-entropy, mIoU) or ``"regression"``
        (per-pixel values, e.g. metric depth; L1 loss, RMSE).
    channels : int
        Output channels per pixel (number of classes for segmentation).
    """

    name: str
    kind: str
    channels: int

    def __post_init__(self) -> None:
        if self.kind not in ("segmentation", "regression"):
            raise ValueError(f"task {self.name!r}: kind must be 'segmentation' or 'regression', "
                             f"not {self.kind!r}")
        if self.channels < 1:
            raise ValueError(f"task {self.name!r}: channels must be >= 1, not {self.channels}")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one M³ViT.

    Parameters
    ----------
    name : str
        Configuration name (``nano``, ``tiny``, ``small``).
    img_size : tuple of int
        Input (height, width) in pixels; both multiples of ``patch_size``.
    patch_size : int
        Side of the square patches (the patch-embedding convolution's kernel and stride).
    dim : int
        Token width D.
    depth : int
        Number of transformer blocks. Odd-indexed blocks (1, 3, …) are MoE blocks.
    heads : int
        Attention heads; ``dim`` must divide evenly.
    experts : int
        Experts per MoE layer (E).
    top_k : int
        Experts kept per token (k).
    expert_hidden : int
        Hidden width of each expert's MLP.
    mlp_hidden : int
        Hidden width of the dense MLP of even blocks.
    tasks : tuple of TaskSpec
        The tasks, each with its gate in every MoE layer and its own head.
    head_hidden : int
        Hidden width of each task head's per-token MLP (0: a single linear layer). Only for
        ``head_type="linear"``.
    head_type : str
        ``"linear"``: our per-token head (LayerNorm → MLP → pixel shuffle), run on the accelerator;
        ``"uphead"``: the original's convolutional up-head (``VisionTransformerUpHead``, its
        state-dict names kept): the accelerator runs its LayerNorm, the PS/CPU its convolutions.
    gate_type : str
        ``"multi"``: one gate per task (``mlp.gate.<t>.w_gate`` of shape [D, E], the original's
        ``multi_gate``); ``"shared"``: one gate on the token concatenated with a one-hot task
        vector (``mlp.gate.w_gate`` of shape [D + T, E]).
    noise_std : float
        Training-time gate noise; each logit gets N(0, (noise_std / E)²) as in the original's
        V-MoE gate. No noise at inference.
    balance_weight : float
        Weight of the load-balancing loss (cv²(importance) + cv²(load)) per gate.
    load_estimate : str
        How the balancing loss estimates each expert's load while the gate noise is on.
        ``"original"`` (default): exactly as the original's ``NoisyGate_VMoE._prob_in_top_k``,
        which compares the raw logits with thresholds taken from the softmax *probabilities* (so
        training statistics match the original's); ``"logit"``: thresholds in logit space, the
        consistent form of Shazeer et al. (2017). Without noise both count routed tokens.
    input_norm : str
        ``"imagenet"`` (mean/std normalisation) or ``"none"`` (raw [0, 1] pixels).
    layer_norm_eps : float
        LayerNorm epsilon of every norm.
    """

    name: str
    img_size: tuple[int, int]
    patch_size: int
    dim: int
    depth: int
    heads: int
    experts: int
    top_k: int
    expert_hidden: int
    mlp_hidden: int
    tasks: tuple[TaskSpec, ...]
    head_hidden: int = 0
    head_type: str = "linear"
    gate_type: str = "multi"
    noise_std: float = 1.0
    balance_weight: float = 0.01
    load_estimate: str = "original"
    input_norm: str = "imagenet"
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        h, w = self.img_size
        problems = []
        if h % self.patch_size or w % self.patch_size:
            problems.append(f"img_size {self.img_size} is not a multiple of patch_size "
                            f"{self.patch_size}")
        if self.dim % self.heads:
            problems.append(f"dim {self.dim} is not divisible by heads {self.heads}")
        if not 1 <= self.top_k <= self.experts:
            problems.append(f"top_k {self.top_k} must be in 1..experts ({self.experts})")
        if self.depth < 1:
            problems.append(f"depth {self.depth} must be >= 1")
        if not self.tasks:
            problems.append("at least one task is needed")
        if len({t.name for t in self.tasks}) != len(self.tasks):
            problems.append("task names must be unique")
        if self.gate_type not in ("multi", "shared"):
            problems.append(f"gate_type must be 'multi' or 'shared', not {self.gate_type!r}")
        if self.head_type not in HEAD_TYPES:
            problems.append(f"head_type must be one of {', '.join(HEAD_TYPES)}, not "
                            f"{self.head_type!r}")
        if self.load_estimate not in LOAD_ESTIMATES:
            problems.append(f"load_estimate must be one of {', '.join(LOAD_ESTIMATES)}, not "
                            f"{self.load_estimate!r}")
        if self.input_norm not in ("imagenet", "none"):
            problems.append(f"input_norm must be 'imagenet' or 'none', not {self.input_norm!r}")
        if problems:
            raise ValueError(f"invalid model config {self.name!r}: " + "; ".join(problems))

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, columns)."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        """Patches plus the class token."""
        return self.num_patches + 1

    @property
    def moe_blocks(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.depth) if i % 2 == 1)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"model {self.name!r} has no task {name!r}; "
                       f"its tasks are {', '.join(self.task_names)}")

    def task_index(self, name: str) -> int:
        return self.task_names.index(self.task(name).name)

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["img_size"] = tuple(d["img_size"])
        d["tasks"] = tuple(TaskSpec(**t) for t in d["tasks"])
        return cls(**d)


# Classes of the procedural scenes (golden.data): one source for the dataset and the nano head.
SCENE_CLASSES = ("sky", "ground", "sphere", "box", "cylinder", "cone")

CONFIGS: dict[str, ModelConfig] = {
    "nano": ModelConfig(
        name="nano", img_size=(32, 64), patch_size=8, dim=64, depth=4, heads=2,
        experts=4, top_k=2, expert_hidden=128, mlp_hidden=256, head_hidden=64,
        tasks=(TaskSpec("semseg", "segmentation", len(SCENE_CLASSES)),
               TaskSpec("depth", "regression", 1)),
        input_norm="imagenet",
    ),
    # Edge-MoE / UbiMoE / CoQMoE reference point: Cityscapes 128x256, raw [0, 1] pixels.
    "tiny": ModelConfig(
        name="tiny", img_size=(128, 256), patch_size=16, dim=192, depth=12, heads=3,
        experts=16, top_k=2, expert_hidden=384, mlp_hidden=768, head_hidden=192,
        tasks=(TaskSpec("semseg", "segmentation", 19),
               TaskSpec("depth", "regression", 1)),
        input_norm="none",
    ),
    # The M3ViT paper's hardware table: ViT-S, PASCAL-Context's five tasks.
    "small": ModelConfig(
        name="small", img_size=(512, 512), patch_size=16, dim=384, depth=12, heads=12,
        experts=16, top_k=4, expert_hidden=384, mlp_hidden=1536, head_hidden=384,
        tasks=(TaskSpec("semseg", "segmentation", 59),
               TaskSpec("human_parts", "segmentation", 7),
               TaskSpec("sal", "segmentation", 2),
               TaskSpec("normals", "regression", 3),
               TaskSpec("edge", "regression", 1)),
        input_norm="imagenet",
    ),
}


def config_names() -> tuple[str, ...]:
    return tuple(CONFIGS)


def get_config(name: str, **overrides) -> ModelConfig:
    """The named configuration, optionally with fields overridden (e.g. ``img_size``)."""
    try:
        cfg = CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; choose one of "
                       f"{', '.join(CONFIGS)}") from None
    return cfg.replace(**overrides) if overrides else cfg


def summary_table() -> str:
    """Markdown table of every configuration (``python -m golden.config``)."""
    rows = ["| name | image | patch | tokens | dim | depth | heads | experts | top-k | expert hidden "
            "| MLP hidden | head hidden | tasks (channels) | gate | input |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in CONFIGS.values():
        tasks = ", ".join(f"{t.name} ({t.channels})" for t in c.tasks)
        rows.append(f"| `{c.name}` | {c.img_size[0]}×{c.img_size[1]} | {c.patch_size} | "
                    f"{c.num_tokens} | {c.dim} | {c.depth} | {c.heads} | {c.experts} | {c.top_k} | "
                    f"{c.expert_hidden} | {c.mlp_hidden} | {c.head_hidden} | {tasks} | "
                    f"{c.gate_type} | {c.input_norm} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary_table())
