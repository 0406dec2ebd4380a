"""Checkpoints written by the original M³ViT repository (VITA-Group/M3ViT), mapped onto ours.

What the original writes (``train_fastmoe.py`` → ``utils/moe_utils.save_checkpoint``):

* a **directory** (``checkpoint.pth.tar/``, ``best_model.pth.tar/``) holding one file per GPU
  rank, ``0.pth`` … ``<W-1>.pth``, when FastMoE spreads the experts over W ranks: ``0.pth`` has the
  whole state dict with rank 0's experts, every other file only its rank's expert tensors
  (``mlp.experts.htoh4/h4toh``); global expert ``g`` lives on rank ``g // E_local``, so the experts
  are concatenated along dim 0 in rank order;
* a **single file** otherwise;
* each file a dict ``{epoch, backbone, state_dict, best_result, optimizer}`` whose keys carry the
  ``module.`` prefix of the data-parallel wrapper. Dicts with ``model`` instead of
  ``state_dict``, and bare state dicts, are accepted too.

The backbone's names are ours (``backbone.*``); per-task gates are ``mlp.gate.<id>.w_gate`` with
the task ids in the original's fixed task order (:data:`ORIGINAL_TASK_ORDER`); the heads are the
original's ``VisionTransformerUpHead`` (:class:`golden.model.UpHead`); the training-only TAM
modules (``tam_model*``) are dropped and reported. Anything else is an error naming the keys:
a load is never silently partial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ModelConfig, TaskSpec, get_config
from .model import M3ViT, resize_pos_embed

__all__ = ["ORIGINAL_TASK_ORDER", "OriginalImport", "read_original", "import_original",
           "looks_like_ours"]

# utils/config.py of the original builds TASKS.NAMES in this order, whatever the yml says; the
# multi-gate ids are positions in it.
ORIGINAL_TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge", "depth")
EXPERT_KEY = re.compile(r"mlp\.experts\.(htoh4|h4toh)\.(weight|bias)$")
RANK_FILE = re.compile(r"^(\d+)\.pth$")
TRAINING_ONLY = ("tam_model",)


@dataclass
class OriginalImport:
    """What :func:`import_original` did.

    Attributes
    ----------
    model : M3ViT
        The converted model, in eval mode.
    files : list of Path
        The files read (rank order for a directory).
    ranks : int
        Expert shards concatenated (1 for a single file).
    mapped : int
        Tensors loaded into the model.
    dropped : dict
        Keys not loaded, by reason (training-only modules, heads under ``backbone_only``).
    resized : str or None
        How the position embeddings were resized, if they were.
    """

    model: M3ViT
    files: list[Path]
    ranks: int
    mapped: int
    dropped: dict[str, list[str]] = field(default_factory=dict)
    resized: str | None = None

    def summary(self) -> str:
        lines = [f"read {len(self.files)} file(s): {', '.join(str(f) for f in self.files)}",
                 f"experts: {self.model.cfg.experts} per MoE layer"
                 + (f", concatenated from {self.ranks} rank shards" if self.ranks > 1 else ""),
                 f"mapped {self.mapped} tensors onto config {self.model.cfg.name!r} "
                 f"(heads: {self.model.cfg.head_type})"]
        c = self.model.cfg
        lines.append(f"taken from the config, not the checkpoint: heads {c.heads}, top-{c.top_k}, "
                     f"noise_std {c.noise_std}, LayerNorm eps {c.layer_norm_eps}, input "
                     f"normalisation {c.input_norm!r}")
        if self.resized:
            lines.append(f"position embeddings: {self.resized}")
        for reason, keys in self.dropped.items():
            lines.append(f"not loaded ({reason}): {len(keys)} tensors, e.g. {keys[0]}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- reading

def first_line(exc: Exception) -> str:
    """An exception's first line (torch's messages run to paragraphs), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _torch_load(path: Path, trust: bool) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:  # corrupt, foreign, or needs pickle globals
        hint = ("" if trust else "; if you trust the file (it can run code when unpickled), "
                "pass trust=True (--trust)")
        raise ValueError(f"{path} is not a readable checkpoint ({first_line(exc)}){hint}") \
            from None


def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside one original file (``state_dict`` / ``model`` / bare)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path} holds no state dict (expected a dict with 'state_dict' or "
                         f"'model', or a dict of tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"{path}: not a state dict: {len(bad)} entries are not named tensors "
                         f"(first: {bad[0]!r})")
    return {_strip(k): v for k, v in obj.items()}


def _strip(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _rank_files(directory: Path) -> list[Path]:
    ranks = {}
    for f in directory.iterdir():
        m = RANK_FILE.match(f.name)
        if m:
            ranks[int(m.group(1))] = f
    if not ranks:
        raise ValueError(f"{directory} is a directory but holds no per-rank files "
                         f"(0.pth, 1.pth, ...): is it an original M3ViT checkpoint?")
    missing = sorted(set(range(max(ranks) + 1)) - set(ranks))
    if missing:
        raise ValueError(f"{directory}: rank file(s) {', '.join(f'{r}.pth' for r in missing)} "
                         f"missing (found {len(ranks)} of {max(ranks) + 1}); the experts of a "
                         f"missing rank cannot be recovered")
    return [ranks[r] for r in range(len(ranks))]


def _merge_shards(shards: list[dict[str, torch.Tensor]], files: list[Path]) -> dict:
    """Rank 0's state dict with every MoE layer's experts concatenated in rank order."""
    merged = dict(shards[0])
    expert_keys = sorted(k for k in merged if EXPERT_KEY.search(k))
    for r, (shard, f) in enumerate(zip(shards[1:], files[1:]), start=1):
        got = sorted(k for k in shard if EXPERT_KEY.search(k))
        if got != expert_keys:
            extra, lack = sorted(set(got) - set(expert_keys)), sorted(set(expert_keys) - set(got))
            raise ValueError(f"{f}: rank {r}'s expert tensors do not match rank 0's "
                             f"(missing {lack[:3]}, unexpected {extra[:3]})")
        for k in expert_keys:
            if shard[k].shape != shards[0][k].shape:
                raise ValueError(f"{f}: {k} has shape {list(shard[k].shape)} but rank 0's is "
                                 f"{list(shards[0][k].shape)}: ranks hold different numbers of "
                                 f"experts")
    for k in expert_keys:
        merged[k] = torch.cat([s[k] for s in shards], dim=0)
    return merged


def read_original(path: str | Path, *, trust: bool = False
                  ) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """One un-prefixed state dict from an original checkpoint file or per-rank directory.

    Returns the state dict (experts of all ranks concatenated) and the files read.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unreadable file, no state dict, a missing rank file, or ranks holding different expert
        counts.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    files = _rank_files(path) if path.is_dir() else [path]
    shards = [_state_dict_of(_torch_load(f, trust), f) for f in files]
    return (_merge_shards(shards, files) if len(shards) > 1 else shards[0]), files


def looks_like_ours(obj: object) -> bool:
    return isinstance(obj, dict) and "config" in obj and "state_dict" in obj and "format" in obj


# ---------------------------------------------------------------------------------------- mapping

def _original_tasks(state: dict, cfg: ModelConfig, backbone_only: bool) -> list[str]:
    """The original run's task names in gate-id order."""
    heads = {k.split(".")[1] for k in state if k.startswith("decoders.")}
    ours = set(cfg.task_names)
    unknown = sorted(heads - set(ORIGINAL_TASK_ORDER))
    if unknown:
        raise ValueError(f"checkpoint has heads for {', '.join(unknown)}, which the original "
                         f"does not define (tasks: {', '.join(ORIGINAL_TASK_ORDER)})")
    if heads:
        if not backbone_only and heads != ours:
            raise ValueError(f"checkpoint has heads for {', '.join(sorted(heads))}, config "
                             f"{cfg.name!r} has tasks {', '.join(cfg.task_names)}; choose a "
                             f"config with the same tasks, or pass backbone_only (--backbone-only)")
        return [t for t in ORIGINAL_TASK_ORDER if t in heads]
    not_original = sorted(ours - set(ORIGINAL_TASK_ORDER))
    if not_original:
        raise ValueError(f"config {cfg.name!r} has tasks the original does not define "
                         f"({', '.join(not_original)}); cannot map the gates' task ids")
    return [t for t in ORIGINAL_TASK_ORDER if t in ours]


def _map_gates(state: dict, cfg: ModelConfig, tasks: list[str]) -> tuple[dict, list[str]]:
    """Gate keys renamed from the original's task ids to ours (and the shared-gate forms), and
    the gates of tasks the config does not have."""
    out, other = {}, []
    gate = re.compile(r"^(backbone\.blocks\.\d+\.mlp\.gate)\.(?:(\d+)\.)?w_gate$")
    gate_ids = {}
    for k, v in state.items():
        m = gate.match(k)
        if not m:
            out[k] = v
            continue
        prefix, tid = m.groups()
        if tid is None:  # one gate for every task: [D, E] (no one-hot) or [D + T, E]
            if v.shape[0] == cfg.dim:
                v = torch.cat([v, v.new_zeros(len(cfg.tasks), v.shape[1])], 0)
            out[f"{prefix}.w_gate"] = v
            continue
        gate_ids.setdefault(prefix, set()).add(int(tid))
        tid = int(tid)
        if tid >= len(tasks):
            raise ValueError(f"{k}: gate for task id {tid}, but the tasks mapped are "
                             f"{', '.join(tasks)} (ids 0..{len(tasks) - 1}, in the original's "
                             f"task order)")
        if tasks[tid] in cfg.task_names:
            out[f"{prefix}.{cfg.task_index(tasks[tid])}.w_gate"] = v
        else:
            other.append(k)
    for prefix, ids in gate_ids.items():
        if ids != set(range(len(tasks))):
            raise ValueError(f"{prefix}: gates for task ids {sorted(ids)}, expected "
                             f"0..{len(tasks) - 1} ({', '.join(tasks)})")
    return out, other


def _structure(state: dict, cfg: ModelConfig, backbone_only: bool) -> dict:
    """The config fields the checkpoint's shapes imply, where they differ from ``cfg``."""
    want = {}

    def check(field_name, key, dim, current):
        if key in state and state[key].shape[dim] != current:
            want[field_name] = int(state[key].shape[dim])

    check("dim", "backbone.cls_token", 2, cfg.dim)
    moe = [k for k in state if k.endswith("mlp.experts.htoh4.weight")]
    dense = [k for k in state if k.endswith("mlp.fc1.weight") and k.startswith("backbone.")]
    if moe:
        check("experts", moe[0], 0, cfg.experts)
        check("expert_hidden", moe[0], 1, cfg.expert_hidden)
    if dense:
        check("mlp_hidden", dense[0], 0, cfg.mlp_hidden)
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("backbone.blocks.")}
    if blocks and max(blocks) + 1 != cfg.depth:
        want["depth"] = max(blocks) + 1
    if any(re.match(r"backbone\.blocks\.\d+\.mlp\.gate\.w_gate$", k) for k in state):
        if cfg.gate_type != "shared":
            want["gate_type"] = "shared"
    elif cfg.gate_type != "multi" and moe:
        want["gate_type"] = "multi"
    if not backbone_only:
        for t in cfg.tasks:
            check(f"{t.name}.channels", f"decoders.{t.name}.conv_4.weight", 0, t.channels)
    return want


def _override(cfg: ModelConfig, overrides: dict) -> ModelConfig:
    """``cfg`` with fields and ``<task>.channels`` entries replaced."""
    fields, channels = {}, {}
    for k, v in overrides.items():
        if k.endswith(".channels"):
            channels[k[: -len(".channels")]] = int(v)
        else:
            fields[k] = v
    unknown = sorted(set(channels) - set(cfg.task_names))
    if unknown:
        raise ValueError(f"config {cfg.name!r} has no task {', '.join(unknown)}")
    if channels:
        fields["tasks"] = tuple(TaskSpec(t.name, t.kind, channels.get(t.name, t.channels))
                                for t in cfg.tasks)
    try:
        return cfg.replace(**fields)
    except TypeError as exc:
        raise ValueError(f"bad override: {exc}") from None


def _pos_embed(state: dict, cfg: ModelConfig, source_img_size, named_grid) -> str | None:
    """Resize ``backbone.pos_embed`` in place to ``cfg``'s grid, as the original would. The
    source grid: ``source_img_size``'s, else the named config's when the count fits it, else
    square."""
    key = "backbone.pos_embed"
    if key not in state:
        return None
    n = state[key].shape[1] - 1
    if n == cfg.num_patches and source_img_size is None:
        return None
    if source_img_size is not None:
        old = (source_img_size[0] // cfg.patch_size, source_img_size[1] // cfg.patch_size)
    elif named_grid[0] * named_grid[1] == n:
        old = tuple(named_grid)
    else:
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"{key} has {n} patch positions, config {cfg.name!r} needs "
                             f"{cfg.num_patches} ({cfg.grid[0]}x{cfg.grid[1]}); the source grid is "
                             f"not square, so give the image size it was trained at "
                             f"(source_img_size, --source-size HxW)")
        old = (side, side)
    if old[0] * old[1] != n:
        raise ValueError(f"{key} has {n} patch positions, not the {old[0]}x{old[1]} of source "
                         f"size {source_img_size}")
    if tuple(old) == tuple(cfg.grid):
        return None
    state[key] = resize_pos_embed(state[key], old, cfg.grid)
    return (f"resized from a {old[0]}x{old[1]} to a {cfg.grid[0]}x{cfg.grid[1]} grid "
            f"(bilinear, align_corners=False, class token kept)")


def _split_keys(state: dict, model: M3ViT, backbone_only: bool) -> tuple[dict, dict]:
    """(keys to load, keys dropped by reason); an unknown key is an error."""
    ours = model.state_dict()
    load, dropped = {}, {}
    unknown = []
    for k, v in state.items():
        if k.startswith(TRAINING_ONLY):
            dropped.setdefault("training-only TAM modules", []).append(k)
        elif backbone_only and k.startswith("decoders."):
            dropped.setdefault("heads, backbone_only", []).append(k)
        elif k in ours:
            load[k] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) of the checkpoint have no place in config "
                         f"{model.cfg.name!r}: {', '.join(unknown[:6])}"
                         + (" ..." if len(unknown) > 6 else ""))
    need = [k for k in ours if not (backbone_only and k.startswith("decoders."))]
    missing = [k for k in need if k not in load]
    if missing:
        raise ValueError(f"{len(missing)} tensor(s) of config {model.cfg.name!r} are not in the "
                         f"checkpoint: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else "")
                         + ("" if backbone_only else "; pass backbone_only (--backbone-only) to "
                            "load the backbone alone"))
    bad = [f"{k}: checkpoint {list(v.shape)}, model {list(ours[k].shape)}"
           for k, v in load.items() if v.shape != ours[k].shape]
    if bad:
        raise ValueError(f"{len(bad)} tensor(s) have the wrong shape: " + "; ".join(bad[:4]))
    return load, dropped


def import_original(path: str | Path, config: str | ModelConfig, *, backbone_only: bool = False,
                    overrides: dict | None = None, source_img_size=None,
                    trust: bool = False) -> OriginalImport:
    """Build our model from an original M³ViT checkpoint (file or per-rank directory).

    Parameters
    ----------
    path : str or Path
        ``checkpoint.pth.tar`` / ``best_model.pth.tar`` file or directory, or any single file.
    config : str or ModelConfig
        Our model config to map onto (``--config``); its heads become the original's up-heads.
    backbone_only : bool
        Load the backbone and gates only; the heads keep the config's own type and a fresh init.
    overrides : dict, optional
        Config fields to change (``{"expert_hidden": 192, "semseg.channels": 7}``).
    source_img_size : (int, int), optional
        The image size the checkpoint was trained at, when its patch grid is not square and
        differs from the config's (position embeddings are then resized as the original does).
    trust : bool
        Unpickle arbitrary objects (``weights_only=False``); only for files you trust.

    Raises
    ------
    ValueError
        The checkpoint does not fit the config: every structural difference is listed with the
        override that would fix it; unknown or missing keys are named.
    """
    state, files = read_original(path, trust=trust)
    cfg = get_config(config) if isinstance(config, str) else config
    named_grid = cfg.grid
    cfg = _override(cfg, overrides or {})
    if not backbone_only:
        cfg = cfg.replace(head_type="uphead")
    want = _structure(state, cfg, backbone_only)
    if want:
        fix = " ".join(f"--override {k}={v}" for k, v in want.items())
        raise ValueError(f"{path} does not match config {cfg.name!r}: "
                         + ", ".join(f"{k} is {v} in the checkpoint" for k, v in want.items())
                         + f"; rerun with {fix}")
    tasks = _original_tasks(state, cfg, backbone_only)
    state, other_gates = _map_gates(state, cfg, tasks)
    resized = _pos_embed(state, cfg, source_img_size, named_grid)
    model = M3ViT(cfg)
    load, dropped = _split_keys(state, model, backbone_only)
    if other_gates:
        dropped["gates of tasks not in the config"] = other_gates
    model.load_state_dict(load, strict=not backbone_only)
    ranks = len(files)
    return OriginalImport(model.eval(), files, ranks, len(load), dropped, resized)
