"""The model image's metadata schema: types, ranges and consistency, checked before anything is
allocated or simulated.

A checksum only proves the file is what the compiler wrote; this proves what it says is
something the firmware can act on. Every rule names the field it checks
(``meta['tasks'][1]['chunks'][0]['bytes']``) in the :class:`ImageError` it raises. The sizes it
admits are the accelerator's: images up to :data:`MAX_IMAGE_SIDE` pixels a side, outputs and
inputs bounded by what the layouts of :mod:`firmware.layout` derive from them — so a hostile
image can neither crash a helper with a wrong type nor make the firmware allocate more than the
model needs.
"""

from __future__ import annotations

import math

from rtl.config import INSTR_BYTES, AccelConfig

from .errors import ImageError

__all__ = ["validate_meta", "MAX_IMAGE_SIDE", "MAX_TASKS", "MAX_CHANNELS", "MAX_DATA_BYTES",
           "MAX_OUTPUT_BYTES"]

MAX_IMAGE_SIDE = 8192          # pixels per side of the model's input
MAX_TASKS = 64
MAX_CHANNELS = 65536           # output channels (classes) of one task
MAX_DATA_BYTES = 1 << 31       # weights + constants (the ZCU104's PS DDR is 2 GiB per bank)
MAX_OUTPUT_BYTES = 1 << 28     # one task's output buffer per frame
HEAD_KINDS = ("linear", "uphead")
TASK_KINDS = ("segmentation", "regression")


def _where(path: tuple) -> str:
    return "meta" + "".join(f"[{p!r}]" for p in path)


def _get(obj: dict, path: tuple, key: str, kind, *, optional=False):
    if not isinstance(obj, dict):
        raise ImageError(f"{_where(path)} must be an object, not {type(obj).__name__}")
    if key not in obj:
        if optional:
            return None
        raise ImageError(f"{_where(path + (key,))} is missing")
    value = obj[key]
    ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))
          if kind is not float else
          isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise ImageError(f"{_where(path + (key,))} must be {kind.__name__}, not "
                         f"{type(value).__name__} {value!r:.40}")
    return value


def _int(obj, path, key, lo, hi, *, optional=False):
    value = _get(obj, path, key, int, optional=optional)
    if value is not None and not lo <= value <= hi:
        raise ImageError(f"{_where(path + (key,))} = {value} is outside {lo}..{hi}")
    return value


def _pair(obj, path, key, lo, hi) -> tuple[int, int]:
    value = _get(obj, path, key, list)
    if len(value) != 2:
        raise ImageError(f"{_where(path + (key,))} must be [height, width], got {value!r:.60}")
    return tuple(_int({0: v}, path + (key,), 0, lo, hi) for v in value)  # type: ignore[arg-type]


def _accel(meta: dict) -> AccelConfig:
    accel = _get(meta, (), "accel", dict)
    try:
        return AccelConfig(**accel)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"meta['accel'] is not an accelerator config this firmware "
                         f"understands: {exc}") from None


def _model(meta: dict) -> tuple[tuple[int, int], int]:
    path = ("model",)
    model = _get(meta, (), "model", dict)
    _get(model, path, "name", str)
    img = _pair(model, path, "img_size", 1, MAX_IMAGE_SIDE)
    patch = _int(model, path, "patch_size", 1, 256)
    if img[0] % patch or img[1] % patch:
        raise ImageError(f"meta['model']['img_size'] {list(img)} is not a multiple of "
                         f"patch_size {patch}")
    return img, patch


def _input(meta: dict, img, patch, cfg: AccelConfig) -> int:
    cols = cfg.array_cols
    path = ("input",)
    spec = _get(meta, (), "input", dict)
    if _pair(spec, path, "image", 1, MAX_IMAGE_SIDE) != img:
        raise ImageError(f"meta['input']['image'] differs from meta['model']['img_size'] "
                         f"{list(img)}")
    if _int(spec, path, "patch", 1, 256) != patch:
        raise ImageError(f"meta['input']['patch'] differs from meta['model']['patch_size'] "
                         f"{patch}")
    tokens = (img[0] // patch) * (img[1] // patch)
    if tokens + 1 > cfg.max_tokens:
        raise ImageError(f"meta['model']: {img[0]}x{img[1]} pixels in {patch}-pixel patches are "
                         f"{tokens} + 1 tokens, the accelerator holds max_tokens {cfg.max_tokens}")
    _int(spec, path, "rows", tokens, tokens)
    need = 3 * patch * patch
    if need > cfg.max_k:
        raise ImageError(f"meta['model']['patch_size'] {patch}: a patch row of {need} values is "
                         f"longer than max_k {cfg.max_k}")
    row_bytes = _int(spec, path, "row_bytes", need, need + cols)
    if row_bytes % cols:
        raise ImageError(f"meta['input']['row_bytes'] = {row_bytes} is not a multiple of the "
                         f"array's {cols} columns")
    return tokens


def _chunks(spec: dict, path: tuple, width: int, tokens: int, cfg: AccelConfig,
            instructions: int) -> int:
    """Check the output chunks (one matmul each); returns the task's output bytes."""
    cols = cfg.array_cols
    chunks = _get(spec, path, "chunks", list)
    if not 1 <= len(chunks) <= max(instructions, 1):
        raise ImageError(f"{_where(path + ('chunks',))} has {len(chunks)} entries; each is one "
                         f"instruction, the program has {instructions}")
    n0 = offset = 0
    for i, chunk in enumerate(chunks):
        cp = path + ("chunks", i)
        _int(chunk, cp, "n0", n0, n0)
        n = _int(chunk, cp, "n", 1, min(width - n0, cfg.max_n))
        _int(chunk, cp, "offset", offset, offset)
        nbytes = tokens * math.ceil(n / cols) * 2 * cols
        _int(chunk, cp, "bytes", nbytes, nbytes)
        n0, offset = n0 + n, offset + nbytes
    if n0 != width:
        raise ImageError(f"{_where(path + ('chunks',))} cover channels 0..{n0}, the head's "
                         f"width is {width}")
    if offset > MAX_OUTPUT_BYTES:
        raise ImageError(f"{_where(path)}: {offset} output bytes per frame, more than "
                         f"{MAX_OUTPUT_BYTES}")
    return offset


def _task(spec: dict, path: tuple, grid, patch: int, tokens: int, cfg: AccelConfig,
          instructions: int) -> str:
    name = _get(spec, path, "name", str)
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise ImageError(f"{_where(path + ('name',))} {name!r:.70} is not a task name")
    kind = _get(spec, path, "kind", str)
    if kind not in TASK_KINDS:
        raise ImageError(f"{_where(path + ('kind',))} {kind!r:.40} is not one of "
                         f"{', '.join(TASK_KINDS)}")
    head = _get(spec, path, "head", str, optional=True) or "linear"
    if head not in HEAD_KINDS:
        raise ImageError(f"{_where(path + ('head',))} {head!r:.40} is not one of "
                         f"{', '.join(HEAD_KINDS)}")
    channels = _int(spec, path, "channels", 1, MAX_CHANNELS)
    scale = _get(spec, path, "out_scale", float)
    if not (math.isfinite(scale) and scale > 0):
        raise ImageError(f"{_where(path + ('out_scale',))} = {scale!r} must be finite and > 0")
    _int(spec, path, "tokens", tokens, tokens)
    if _pair(spec, path, "grid", 1, MAX_IMAGE_SIDE) != grid:
        raise ImageError(f"{_where(path + ('grid',))} differs from the model's {list(grid)}")
    task_patch = _int(spec, path, "patch", 1 if head == "uphead" else patch,
                      1 if head == "uphead" else patch)
    width = _int(spec, path, "width", channels * task_patch ** 2, channels * task_patch ** 2)
    if head == "uphead":
        _int(spec, path, "classes", 1, MAX_CHANNELS)
        if width > cfg.max_dim:
            raise ImageError(f"{_where(path + ('width',))} = {width}: up-head features are the "
                             f"token width, at most max_dim {cfg.max_dim}")
    _chunks(spec, path, width, tokens, cfg, instructions)
    return name


def validate_meta(meta: dict, *, program_bytes: int, data_bytes: int) -> AccelConfig:
    """Check a model image's metadata against the schema; returns its accelerator config.

    Raises
    ------
    ImageError
        The first rule broken, naming the field.
    """
    if not isinstance(meta, dict):
        raise ImageError(f"meta must be an object, not {type(meta).__name__}")
    cfg = _accel(meta)
    cols = cfg.array_cols
    array = _get(meta, (), "array", dict)
    _int(array, ("array",), "rows", cfg.array_rows, cfg.array_rows)
    _int(array, ("array",), "cols", cols, cols)
    img, patch = _model(meta)
    tokens = _input(meta, img, patch, cfg)
    grid = (img[0] // patch, img[1] // patch)
    tasks = _get(meta, (), "tasks", list)
    if not 1 <= len(tasks) <= MAX_TASKS:
        raise ImageError(f"meta['tasks'] has {len(tasks)} entries; 1..{MAX_TASKS} allowed")
    instructions = program_bytes // INSTR_BYTES
    names = [_task(t, ("tasks", i), grid, patch, tokens, cfg, instructions)
             for i, t in enumerate(tasks)]
    if len(set(names)) != len(names):
        raise ImageError(f"meta['tasks'] names are not unique: {names}")
    hw = _get(meta, (), "hw_version", list, optional=True)
    if hw is not None:
        if len(hw) != 2:
            raise ImageError(f"meta['hw_version'] must be [major, minor], got {hw!r:.60}")
        for i in range(2):
            _int({i: hw[i]}, ("hw_version",), i, 0, 1 << 16)
    isa = _get(meta, (), "isa", list, optional=True)
    if isa is not None and (len(isa) != 2 or not isinstance(isa[0], int)
                            or not isinstance(isa[1], str)):
        raise ImageError(f"meta['isa'] must be [version, digest], got {isa!r:.60}")
    macs = _get(meta, (), "macs", list, optional=True)   # per instruction (timeout estimates)
    if macs is not None:
        if len(macs) != program_bytes // INSTR_BYTES:
            raise ImageError(f"meta['macs'] has {len(macs)} entries, the program "
                             f"{program_bytes // INSTR_BYTES} instructions")
        for i in range(len(macs)):
            _int({i: macs[i]}, ("macs",), i, 0, 1 << 40)
    if program_bytes // INSTR_BYTES > cfg.imem_words:
        raise ImageError(f"the program has {program_bytes // INSTR_BYTES} instructions, the "
                         f"accelerator's instruction memory holds {cfg.imem_words}")
    if data_bytes > MAX_DATA_BYTES:
        raise ImageError(f"the data section is {data_bytes} bytes, more than {MAX_DATA_BYTES}")
    return cfg
