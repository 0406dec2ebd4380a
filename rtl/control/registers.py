"""The accelerator's register map, declared once as data built from an :class:`AccelConfig`.

Everything else is generated from :func:`register_map`: the AXI4-Lite slave
(:class:`rtl.control.csr.CSR`), the firmware's map (:func:`firmware_register_map`, also as JSON) and the
Markdown table in ``docs/registers.md``::

    python -m rtl.control.registers --markdown > docs/registers.md
    python -m rtl.control.registers --json

Field access kinds
------------------
``const``  read-only constant (the reset value; ID, version, config readback)
``ro``     read-only, driven by hardware (status inputs)
``rw``     read/write, value visible to hardware
``w1p``    write 1 to pulse for one cycle (start, soft reset); reads 0
``w1c``    set by a hardware pulse, sticky, write 1 to clear (done, error)
``counter`` 64-bit performance counter spread over ``<NAME>_LO`` / ``<NAME>_HI``; reading ``_LO``
           snapshots the upper half so that a ``_LO`` then ``_HI`` read pair is coherent

Bus rules (documented in the generated table): 32-bit registers at 4-byte aligned offsets,
decoded by word (``addr & ~3``), so 8- and 16-bit accesses at any byte address are accepted: a
read returns the containing word, a write acts through its strobes (WSTRB lanes are the truth;
lanes with WSTRB=0 are untouched for ``rw`` and have no effect for ``w1p``/``w1c``, whose fields
each lie in one byte lane); WSTRB=0 is an OKAY no-op. An unmapped address answers DECERR; a
write strobing any lane of a register without a writable field answers SLVERR and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from rtl.config import DEFAULT, REGISTER_SPACE_BITS, TOKEN_BITS, AccelConfig
from rtl.control.causes import cause_counter, counted_causes
from rtl.control.errors import ErrorCode
from rtl.control.version import VERSION

__all__ = ["Field", "Register", "register_map", "firmware_register_map", "markdown",
           "ACCESS_KINDS", "ID_MAGIC", "VERSION", "ERROR_CODES"]

ACCESS_KINDS = ("const", "ro", "rw", "w1p", "w1c", "counter")
ID_MAGIC = 0x4D335654          # "M3VT"
CAUSE_COUNTERS_BASE = 0x180    # PERF_<CAUSE>_CYCLES, 8 bytes each (rtl.control.causes)
ERROR_CODES = {int(c): c.text for c in ErrorCode}


@dataclass(frozen=True)
class Field:
    """A bit field of a register."""
    name: str
    lsb: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""

    def __post_init__(self):
        if self.access not in ACCESS_KINDS:
            raise ValueError(f"field {self.name}: access {self.access!r} not in {ACCESS_KINDS}")
        if self.width < 1 or self.lsb < 0 or self.lsb + self.width > 32:
            raise ValueError(f"field {self.name}: bits {self.lsb}+{self.width} outside 0..31")
        if not 0 <= self.reset < (1 << self.width):
            raise ValueError(f"field {self.name}: reset {self.reset} does not fit {self.width} bits")

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """A 32-bit register at a byte ``offset`` (a ``counter`` occupies ``offset`` and ``+4``)."""
    name: str
    offset: int
    doc: str
    fields: tuple[Field, ...] = field(default_factory=tuple)
    counter_inc_width: int = 0      # counters only: width of the increment input

    @property
    def is_counter(self) -> bool:
        return any(f.access == "counter" for f in self.fields)

    @property
    def reset(self) -> int:
        return sum(f.reset << f.lsb for f in self.fields)

    @property
    def writable(self) -> bool:
        return any(f.access in ("rw", "w1p", "w1c") for f in self.fields)

    def words(self) -> list[tuple[str, int]]:
        """The bus words: ``[(name, offset)]`` (two for counters)."""
        if self.is_counter:
            return [(self.name + "_LO", self.offset), (self.name + "_HI", self.offset + 4)]
        return [(self.name, self.offset)]


def _const(name, value, width, lsb=0, doc=""):
    return Field(name, lsb, width, "const", value, doc)


def _counter(name: str, offset: int, doc: str, inc_width: int = 1) -> Register:
    """A 64-bit performance counter (``<name>_LO`` / ``_HI``) added to by ``inc_width`` bits."""
    return Register(name, offset, doc, (Field("count", 0, 32, "counter"),),
                    counter_inc_width=inc_width)


def _address_pair(name: str, offset: int, lo_doc: str, hi_what: str,
                  cfg: AccelConfig) -> tuple[Register, Register]:
    """``<name>_LO``/``<name>_HI``: a DDR byte address split over two 32-bit registers."""
    hi_bits = max(1, cfg.axi_addr_width - 32)
    return (Register(name + "_LO", offset, lo_doc + ", bits 31..0.", (Field("addr", 0, 32, "rw"),)),
            Register(name + "_HI", offset + 4,
                     f"{hi_what} address bits {cfg.axi_addr_width - 1}..32.",
                     (Field("addr", 0, hi_bits, "rw"),)))


def register_map(cfg: AccelConfig = DEFAULT) -> tuple[Register, ...]:
    """The register declaration for ``cfg`` (the single source of truth)."""
    if cfg.array_rows > 255 or cfg.array_cols > 255:
        raise ValueError("CONFIG0 reports array_rows/cols in 8 bits: at most 255")
    regs = [
        Register("ID", 0x000, "Identification constant 'M3VT'.",
                 (_const("magic", ID_MAGIC, 32, doc="0x4D335654"),)),
        Register("VERSION", 0x004, "Register-map / RTL version.",
                 (_const("minor", VERSION[1], 16), _const("major", VERSION[0], 16, 16))),
        Register("CONFIG0", 0x008, "Array shape and AXI geometry of this build.",
                 (_const("array_rows", cfg.array_rows, 8), _const("array_cols", cfg.array_cols, 8, 8),
                  _const("axi_bytes", cfg.axi_bytes, 8, 16, "AXI4 data bytes per beat"),
                  _const("axi_masters", cfg.axi_masters, 4, 24),
                  _const("operand_width", cfg.operand_width // 4, 4, 28, "operand bits / 4"))),
        Register("CONFIG1", 0x00C, "DMA limits of this build.",
                 (_const("max_burst_beats", cfg.max_burst_beats, 9),
                  _const("max_outstanding_reads", cfg.max_outstanding_reads, 7, 9),
                  _const("axi_addr_width", cfg.axi_addr_width, 7, 16),
                  _const("acc_width", cfg.acc_width, 8, 24))),
        Register("WEIGHT_BUF_BYTES", 0x010, "Bytes of each ping-pong weight buffer.",
                 (_const("bytes", cfg.weight_buffer_bytes, 32),)),
        Register("TOKEN_BUF_BYTES", 0x014, "Bytes of on-chip token memory.",
                 (_const("bytes", cfg.token_buffer_bytes, 32),)),
        Register("FINGERPRINT", 0x018, "Hash of every AccelConfig parameter (model images "
                 "carry the value they were compiled for).",
                 (_const("hash", cfg.fingerprint(), 32),)),
        Register("CONFIG2", 0x01C, "Model limits of this build.",
                 (_const("max_tokens", cfg.max_tokens, TOKEN_BITS),
                  _const("experts", cfg.experts, 7, TOKEN_BITS),
                  _const("top_k", cfg.top_k, 6, 19), _const("ln_lanes", cfg.ln_lanes, 7, 25))),
        Register("CONTROL", 0x020, "Start, soft reset and interrupt enable.",
                 (Field("start", 0, 1, "w1p", doc="write 1: start the program at PROGRAM_BASE"),
                  Field("soft_reset", 1, 1, "w1p", doc="write 1: reset the datapath (not the CSRs)"),
                  Field("irq_enable", 2, 1, "rw", doc="raise the interrupt on done/error"))),
        Register("STATUS", 0x024, "Run state; done and error are sticky, write 1 to clear.",
                 (Field("busy", 0, 1, "ro", doc="a program is running"),
                  Field("done", 1, 1, "w1c", doc="set when a program finishes"),
                  Field("error", 2, 1, "w1c", doc="set when a run stops on an error"),
                  Field("error_code", 8, 8, "ro",
                        doc="; ".join(f"{k}: {v}" for k, v in ERROR_CODES.items())))),
        *_address_pair("PROGRAM_BASE", 0x030, "DDR byte address of the layer program",
                       "Program", cfg),
        *_address_pair("DATA_BASE", 0x038, "DDR byte address of the model image / data",
                       "Data", cfg),
        Register("TASK_ID", 0x040, "Task whose gate the next run uses.",
                 (Field("task", 0, 8, "rw"),)),
        Register("PROGRAM_LEN", 0x044, "Instructions (32 bytes each) of the program.",
                 (Field("words", 0, 16, "rw"),)),
        *_address_pair("INPUT_BASE", 0x048, "DDR byte address of the frame input", "Input", cfg),
        *_address_pair("OUTPUT_BASE", 0x050, "DDR byte address of the frame output", "Output",
                       cfg),
        Register("PERF_CONTROL", 0x080, "Performance counter control.",
                 (Field("clear", 0, 1, "w1p", doc="write 1: zero all performance counters"),)),
        _counter("PERF_CYCLES", 0x100, "Clock cycles since the counters were cleared."),
        _counter("PERF_BUSY_CYCLES", 0x108, "Cycles with a program running."),
        _counter("PERF_BYTES_MOVED", 0x110, "Bytes moved over the AXI4 masters (read + write).",
                 (cfg.axi_bytes * cfg.axi_masters * 2).bit_length()),
        _counter("PERF_MATMUL_CYCLES", 0x120, "Cycles the systolic array was busy."),
        _counter("PERF_LAYERNORM_CYCLES", 0x128, "Cycles spent in LayerNorm instructions."),
        _counter("PERF_SOFTMAX_CYCLES", 0x130, "Cycles spent in softmax instructions."),
        _counter("PERF_ROUTER_CYCLES", 0x138, "Cycles spent in gate matmuls feeding the router."),
        _counter("PERF_MOVER_CYCLES", 0x140, "Cycles spent moving activations into B (BLOAD)."),
        _counter("PERF_LOADER_CYCLES", 0x148, "Cycles the DDR load engine was busy."),
        _counter("PERF_READ_BYTES", 0x150, "Bytes read from DDR (program, weights, input).",
                 (cfg.axi_bytes * cfg.axi_masters).bit_length()),
        _counter("PERF_WRITE_BYTES", 0x158, "Bytes written to DDR (outputs).",
                 (cfg.axi_bytes + 1).bit_length()),
        _counter("PERF_INSTRUCTIONS", 0x160, "Instructions issued."),
        _counter("PERF_MACS", 0x168, "Useful multiply-accumulates of the array (padding rows "
                 "and columns of a tile not counted).",
                 (cfg.array_rows * cfg.array_cols).bit_length()),
        *(_counter(cause_counter(c), CAUSE_COUNTERS_BASE + 8 * i,
                   f"Cycles attributed to {c.name}: {c.text}.")
          for i, c in enumerate(counted_causes())),
    ]
    _check_map(cfg, regs)
    return tuple(regs)


def _check_map(cfg: AccelConfig, regs) -> None:
    seen = {}
    for r in regs:
        for name, off in r.words():
            if off % 4:
                raise ValueError(f"register {name} at misaligned offset {off:#x}")
            if off >= 1 << min(cfg.csr_addr_width, REGISTER_SPACE_BITS):
                raise ValueError(f"register {name} at {off:#x} outside the "
                                 f"{REGISTER_SPACE_BITS}-bit register space")
            if off in seen:
                raise ValueError(f"registers {seen[off]} and {name} share offset {off:#x}")
            seen[off] = name
        bits = 0
        for f in r.fields:
            if bits & f.mask:
                raise ValueError(f"register {r.name}: field {f.name} overlaps another")
            bits |= f.mask


def firmware_register_map(cfg: AccelConfig = DEFAULT) -> dict:
    """The map the firmware imports: ``{"registers": {NAME: {offset, access, reset, fields}}}``.

    Counters appear as their two words ``NAME_LO``/``NAME_HI`` (read ``_LO`` first).
    """
    out = {}
    for r in register_map(cfg):
        for name, off in r.words():
            out[name] = {
                "offset": off,
                "reset": 0 if r.is_counter else r.reset,
                "doc": r.doc,
                "fields": {f.name: {"lsb": f.lsb, "width": f.width, "access": f.access,
                                    "reset": f.reset} for f in r.fields},
            }
    return {"version": list(VERSION), "id": ID_MAGIC, "csr_addr_width": cfg.csr_addr_width,
            "error_codes": ERROR_CODES, "registers": out,
            "bus_errors": {"unmapped": "DECERR", "write_to_read_only": "SLVERR"}}


def markdown(cfg: AccelConfig = DEFAULT) -> str:
    """The register table as Markdown (``docs/registers.md``)."""
    lines = [
        "# Register map",
        "",
        "Generated by `python -m rtl.control.registers --markdown` from `rtl/control/registers.py` for the "
        "default `AccelConfig`; do not edit by hand.",
        "",
        "All registers are 32 bits wide at 4-byte aligned offsets of the AXI4-Lite CSR port.",
        "",
        "Bus behaviour:",
        "",
        "- addresses are decoded by word (`addr & ~3`), so address bits 1:0 never cause an "
        "error: 8- and 16-bit accesses at any byte address (the byte address on AxADDR, the "
        "sub-word's byte lanes in WSTRB, as CPUs and standard AXI4-Lite masters issue them) "
        "are handled like word accesses to the containing register — a read returns the "
        "containing word, a write acts through its strobes;",
        "- write strobes: each byte lane with WSTRB=0 is left unchanged (`rw`) or has no "
        "effect (`w1p`, `w1c`; each such field lies in one byte lane, so a sub-word store "
        "triggers a side effect only if it strobes that field's lane and writes 1 to it); "
        "WSTRB=0 is an **OKAY** no-op;",
        "- address with no register: **DECERR**, no effect (reads return 0);",
        "- write strobing any byte lane of a register without writable fields (the constants "
        "and the counters): **SLVERR**, no effect;",
        "- AW and W may arrive in either order or together; reads and writes proceed "
        "independently; one transaction of each kind is accepted at a time.",
        "- counters are 64-bit: read `_LO` first, which snapshots the upper half returned by "
        "the next `_HI` read.",
        "",
        "| offset | register | field | bits | access | reset | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in register_map(cfg):
        for name, off in r.words():
            for f in r.fields:
                bits = f"{f.lsb + f.width - 1}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
                reset = "0" if f.access == "counter" else f"{f.reset:#x}"
                doc = r.doc + (" — " + f.doc if f.doc else "")
                lines.append(f"| `{off:#05x}` | {name} | {f.name} | {bits} | {f.access} | "
                             f"{reset} | {doc} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtl.control.registers",
                                 description="Print the register map generated from AccelConfig.")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--markdown", action="store_true")
    g.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    else:
        json.dump(firmware_register_map(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
