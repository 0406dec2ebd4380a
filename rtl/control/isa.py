"""The sequencer's instruction set: one 256-bit word per instruction, declared once.

The layouts below are what the sequencer decodes (:mod:`rtl.control.sequencer`) and what the compiler
(:mod:`firmware.compiler`) encodes with :func:`encode`; ``docs/program.md`` describes the semantics.
Every instruction is ``{op: Op, args: <the op's layout>}``, the op in the low 8 bits.

Addresses are in **words** of the memory they name: ACT and B words are ``array_cols`` bytes
(one byte per column), CONST rows are ``array_cols`` lane constants, RES rows are addressed by
token; DDR addresses are byte offsets from one of the three base registers (:class:`Base`).
"""

from __future__ import annotations

import hashlib

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from rtl.config import (CONST_ROW_BITS, INSTR_BYTES, KN_BITS, PC_BITS, QUEUE_BITS,
                        ROW_WORDS_BITS, STRIDE_BITS, TOKEN_BITS)
from rtl.config import WORD_ADDR_BITS as _WA
from rtl.control.version import ISA_VERSION

__all__ = ["Op", "Dest", "OutDest", "Base", "Unit", "INSTR_BITS", "INSTR_BYTES", "instr_layout",
           "args_layout", "encode", "decode", "MAX_TASKS", "DDR_FIELDS", "isa_digest",
           "ISA_VERSION", "load_cmd_layout", "compute_cmd_layout"]

INSTR_BITS = INSTR_BYTES * 8
MAX_TASKS = 8


class Op(enum.Enum, shape=8):
    END = 0           # finish: STATUS.done, interrupt
    LOAD = 1          # DDR → on-chip memory (weights, constants, LayerNorm γ/β, activations, residual)
    MATMUL = 2        # ACT rows → A banks, A·B on the array, lanes, result to a sink
    BLOAD = 3         # ACT → B banks (keys transposed, values direct): attention's second operand
    LAYERNORM = 4     # residual rows → LayerNorm → ACT
    SOFTMAX = 5       # SCORE (keys × queries) → softmax per query row → ACT rows
    LANES = 6         # residual / MoE-accumulator pass over rows (commit or clear)
    WAIT = 7          # until the units in ``mask`` are idle
    TASK_JUMP = 8     # pc = targets[TASK_ID] (error if TASK_ID >= tasks)
    EXPERT_FIRST = 9  # start the loop over the router's non-empty experts; none: pc = target
    EXPERT_NEXT = 10  # next non-empty expert, flip the ping-pong parity, pc = target; else fall through


class Dest(enum.Enum, shape=3):
    """Where a LOAD writes."""
    B = 0      # weight banks, word = C bytes (one per column)
    CONST = 1  # lane constants, word = C × 8 bytes: int32 bias, u16 multiplier, u8 shift, pad
    ACT = 2    # activation scratchpad, word = C bytes
    LNP = 3    # LayerNorm γ/β, word = ln_lanes × 16 bytes: int32 γ, pad, int64 β
    RES = 4    # residual stream through the lanes (RES_SET), word = C × int16


class OutDest(enum.Enum, shape=3):
    """Where MATMUL results go."""
    NONE = 0    # only the lanes' state memories change (residual add, MoE accumulate)
    ACT = 1     # int8 rows into the scratchpad
    SCORE = 2   # int32 rows into the attention-score buffer
    ROUTER = 3  # the first ``experts`` values of each row to the router
    DDR = 4     # int16 rows to DDR, in emission order (see firmware.layout)


class Base(enum.Enum, shape=2):
    DATA = 0
    INPUT = 1
    OUTPUT = 2


class Unit(enum.IntFlag):
    """WAIT mask bits."""
    LOADER = 1     # the DDR load engine (asynchronous prefetch)
    COMPUTE = 2    # array, lanes, movers, softmax, LayerNorm, router, store


_U = unsigned
DDR_FIELDS = {"base": Base, "offset": _U(32)}
_TOK, _KN, _RW, _CR, _PC = _U(TOKEN_BITS), _U(KN_BITS), _U(ROW_WORDS_BITS), _U(CONST_ROW_BITS), \
    _U(PC_BITS)

_LAYOUTS = {
    Op.END: {},
    Op.LOAD: {
        "dest": Dest, "addr": _U(_WA), "words": _U(_WA), "row_words": _RW, "const_row": _CR,
        **DDR_FIELDS, "expert_stride": _U(32), "task_stride": _U(32),
        "per_expert": 1, "next_expert": 1, "parity": 1,
    },
    # gather: A row r is ACT row ``a_addr + token · a_stride`` for the r-th entry (token, prob)
    # of the current expert's router queue (entries qstart … qstart + m - 1), and the lanes copy
    # those entries into their own queue memory. scatter: result row r is accumulated, scaled by
    # the entry's prob, into moe_acc[token] of entry r of that copy -- the one the most recent
    # gather MATMUL made (docs/program.md, "expert queue state").
    Op.MATMUL: {
        "m": _TOK, "m_from_queue": 1, "gather": 1, "m_offset": _U(8),
        "a_addr": _U(_WA), "a_stride": _U(STRIDE_BITS), "a_signed": 1,
        "k": _KN, "n": _KN, "b_offset": _U(_WA), "const_base": _CR, "parity": 1,
        "out_bits": _U(2), "gelu": 1, "act_mult": _U(15), "act_shift": _U(6),
        "residual": 1, "scatter": 1,
        "dest": OutDest, "d_addr": _U(_WA), "d_stride": _U(STRIDE_BITS), **DDR_FIELDS,
    },
    Op.BLOAD: {
        "src": _U(_WA), "stride": _U(STRIDE_BITS), "rows": _TOK, "words": _RW, "transpose": 1,
        "b_offset": _U(_WA), "parity": 1,
    },
    Op.LAYERNORM: {
        "row0": _TOK, "rows": _TOK, "row_words": _RW, "d_addr": _U(_WA),
        "d_stride": _U(STRIDE_BITS),
        "eps": _U(32),
    },
    Op.SOFTMAX: {
        "rows": _TOK, "length": _TOK, "d_addr": _U(_WA), "d_stride": _U(STRIDE_BITS),
    },
    Op.LANES: {"aux": _U(3), "row0": _TOK, "rows": _TOK, "row_words": _RW},
    Op.WAIT: {"mask": _U(8)},
    Op.TASK_JUMP: {"tasks": _U(4), "targets": data.ArrayLayout(_PC, MAX_TASKS)},
    Op.EXPERT_FIRST: {"target": _PC},
    Op.EXPERT_NEXT: {"target": _PC},
}


def load_cmd_layout(cfg) -> data.StructLayout:
    """A LOAD as the sequencer hands it to the load engine: destination, on-chip word address
    (ping-pong parity applied) and count, words per residual row, the DDR byte address (the
    expert / task strides applied). ``dest`` may also be the program memory
    (:class:`rtl.bus.loader.LoadTarget`)."""
    return data.StructLayout({"dest": _U(3), "addr": _U(_WA), "words": _U(_WA),
                              "row_words": _RW, "ddr_addr": _U(cfg.axi_addr_width)})


def compute_cmd_layout(cfg) -> data.StructLayout:
    """An instruction for the compute datapath with its run-time operands resolved by the
    sequencer."""
    return data.StructLayout({
        "instr": instr_layout(),
        "m": _TOK,                    # rows (MATMUL: the expert's queue length when m_from_queue)
        "qstart": _U(QUEUE_BITS),             # first queue entry of the current expert
        "b_offset": _U(_WA),          # parity applied
        "const_base": _CR,            # parity applied
        "ddr_addr": _U(cfg.axi_addr_width),
        "pc": _U(16),                 # the instruction's index (for the cycle-cause trace)
    })


def args_layout(op: Op) -> data.StructLayout:
    return data.StructLayout(_LAYOUTS[op])


def instr_layout() -> data.StructLayout:
    """``{op, args}`` with ``args`` the union of every op's fields, padded to 256 bits."""
    union = data.UnionLayout({op.name.lower(): args_layout(op) for op in Op if _LAYOUTS[op]})
    if 8 + union.size > INSTR_BITS:
        raise AssertionError(f"instruction fields need {8 + union.size} bits")
    return data.StructLayout({"op": Op, "args": union,
                              "pad": unsigned(INSTR_BITS - 8 - union.size)})


def _pack(layout, fields: dict, where: str) -> int:
    value = 0
    for name, field in layout:
        if name not in fields:
            continue
        v = fields.pop(name)
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            v = _pack_array(shape, v, f"{where}.{name}")
        else:
            v = int(v.value if isinstance(v, enum.Enum) else v)
            width = field.width
            if not 0 <= v < (1 << width):
                raise ValueError(f"{where}.{name} = {v} does not fit {width} unsigned bits")
        value |= v << field.offset
    if fields:
        raise KeyError(f"{where}: unknown fields {sorted(fields)}")
    return value


def _pack_array(layout: data.ArrayLayout, values, where: str) -> int:
    values = list(values)
    if len(values) > layout.length:
        raise ValueError(f"{where}: {len(values)} elements, at most {layout.length}")
    width = data.Layout.cast(layout.elem_shape).size if isinstance(layout.elem_shape, data.Layout) \
        else layout.elem_shape.width
    out = 0
    for i, v in enumerate(values):
        if not 0 <= int(v) < (1 << width):
            raise ValueError(f"{where}[{i}] = {v} does not fit {width} bits")
        out |= int(v) << (i * width)
    return out


def encode(op: Op, **fields) -> bytes:
    """One instruction as 32 little-endian bytes. Unknown fields and values that do not fit
    raise (no silent truncation)."""
    args = _pack(args_layout(op), dict(fields), op.name)
    return (int(op.value) | (args << 8)).to_bytes(INSTR_BYTES, "little")


def decode(word: bytes) -> tuple[Op, dict]:
    """Inverse of :func:`encode` (for listings and tests)."""
    if len(word) != INSTR_BYTES:
        raise ValueError(f"an instruction is {INSTR_BYTES} bytes, got {len(word)}")
    value = int.from_bytes(word, "little")
    op = Op(value & 0xFF)
    out = {}
    for name, field in args_layout(op):
        raw = (value >> (8 + field.offset)) & ((1 << field.width) - 1)
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            w = shape.elem_shape.width
            raw = [(raw >> (i * w)) & ((1 << w) - 1) for i in range(shape.length)]
        elif isinstance(shape, type) and issubclass(shape, enum.Enum):
            raw = shape(raw)
        out[name] = raw
    return op, out


def isa_digest() -> str:
    """A digest of every instruction's bit layout and of the enums' values (what
    ``rtl.control.version.ISA_DIGEST`` must hold)."""
    text = [f"bits={INSTR_BITS}"]
    for op in Op:
        text.append(f"{op.name}={op.value}")
        if _LAYOUTS[op]:
            for name, field in args_layout(op):
                text.append(f"{op.name}.{name}@{field.offset}:{field.width}")
    for e in (Dest, OutDest, Base, Unit):
        text += [f"{e.__name__}.{m.name}={int(m.value)}" for m in e]
    return hashlib.sha256("\n".join(text).encode()).hexdigest()[:16]


def fields_markdown() -> str:
    """The bit layout of every instruction as Markdown tables (``docs/program.md`` embeds it)."""
    lines = []
    for op in Op:
        lines += [f"### `{op.name}` (op = {op.value})", ""]
        layout = args_layout(op) if _LAYOUTS[op] else None
        if layout is None:
            lines += ["No operands.", ""]
            continue
        lines += ["| field | bits | width | type |", "|---|---|---|---|"]
        for name, field in layout:
            shape = field.shape
            if isinstance(shape, data.ArrayLayout):
                kind = f"{shape.length} × u{shape.elem_shape.width}"
            elif isinstance(shape, type) and issubclass(shape, enum.Enum):
                kind = f"`{shape.__name__}`"
            else:
                kind = f"u{field.width}"
            lo = 8 + field.offset
            lines.append(f"| `{name}` | {lo + field.width - 1}:{lo} | {field.width} | {kind} |")
        lines.append("")
    for enum_cls in (Dest, OutDest, Base):
        lines.append(f"`{enum_cls.__name__}`: " +
                     ", ".join(f"{m.name} = {m.value}" for m in enum_cls) + ".  ")
    lines.append("`WAIT.mask` bits: " + ", ".join(f"{u.name} = {u.value}" for u in Unit) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(prog="python -m rtl.control.isa",
                                 description="Print the instruction bit layouts.")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables (the default)")
    ap.add_argument("--digest", action="store_true",
                    help="print the layout digest (rtl/control/version.py's ISA_DIGEST)")
    args = ap.parse_args()
    print(isa_digest() if args.digest else fields_markdown(), end="\n" if args.digest else "")
