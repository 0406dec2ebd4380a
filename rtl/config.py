"""The accelerator's hardware parameters: one dataclass, the single source of truth.

Every RTL component takes its sizes from an :class:`AccelConfig`; the register map the firmware
uses, the compiler's memory allocation and the on-chip memory report are generated from it.
Following Gemmini's config discipline, the config also computes every **derived size** (memory
depths, ping-pong halves, word ratios; the properties below) and states every **constraint** the
hardware relies on: a config that constructs also elaborates (``tests/rtl/test_config.py``
elaborates every named config and random valid ones, and checks that each constraint refuses
with its reason). It imports only the standard library, because the board's firmware reads it.

The widths of the instruction and register formats that bound a config (``*_BITS`` below) live
here too; :mod:`rtl.control.isa` and :mod:`rtl.control.registers` take their field widths from
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

__all__ = ["AccelConfig", "DEFAULT", "SMALL_TEST", "NANO", "CONFIGS", "WORD_ADDR_BITS",
           "CONST_ROW_BITS", "TOKEN_BITS", "KN_BITS", "ROW_WORDS_BITS", "PC_BITS", "STRIDE_BITS",
           "QUEUE_BITS",
           "CONST_RECORD_BYTES", "LNP_RECORD_BYTES", "INSTR_BYTES", "REGISTER_SPACE_BITS"]

# Instruction fields (rtl/control/isa.py) whose widths bound a config:
WORD_ADDR_BITS = 20   # on-chip word addresses and word counts (ACT, B, LNP; LOAD words)
CONST_ROW_BITS = 16   # lane-constant rows
TOKEN_BITS = 12       # token counts and indices (m, rows, row0, lengths; CONFIG2.max_tokens)
KN_BITS = 16          # reduction length K and output width N of a matmul
ROW_WORDS_BITS = 8    # words per token row (row_words, BLOAD words)
PC_BITS = 16          # instruction addresses (jump targets, PROGRAM_LEN)
STRIDE_BITS = 12      # row strides in words (a_stride, d_stride, BLOAD stride)
QUEUE_BITS = 16       # expert-queue entry indices (qstart)
INSTR_BYTES = 32      # one 256-bit instruction
# Load records (what a LOAD of CONST / LNP moves per lane or element):
CONST_RECORD_BYTES = 8    # int32 bias, uint16 multiplier, uint8 shift, pad
LNP_RECORD_BYTES = 16     # int32 gamma, 4 pad, int64 beta
REGISTER_SPACE_BITS = 9   # the register map's offsets are below 2**9 (rtl/control/registers.py)


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _bits(n: int) -> int:
    """Bits of an index into ``n`` items: ``amaranth.utils.ceil_log2(n)``, at least 1 (this
    module imports no Amaranth; ``tests/rtl/test_config.py`` checks they agree)."""
    return max(1, (n - 1).bit_length())


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one accelerator build.

    Parameters
    ----------
    array_rows, array_cols : int
        Systolic array shape R × C (int8 MACs).
    operand_width : int
        Matrix operand width in bits (8: two MACs per DSP48E2).
    acc_width : int
        Accumulator width in bits.
    axi_data_width : int
        Data width of the AXI4 master ports (the Zynq UltraScale+ HP ports are 128 bits).
    axi_addr_width : int
        Address width of the AXI4 master ports.
    axi_id_width : int
        ID width of the AXI4 master ports.
    axi_masters : int
        AXI4 master ports (HP ports): with 2 the loader reads on both (chunks alternating,
        twice one port's rate) and the output writes go on the second.
    max_burst_beats : int
        Longest INCR burst the DMA issues (1..256; bursts never cross 4 KB).
    max_outstanding_reads : int
        Read bursts in flight per master.
    csr_addr_width : int
        AXI4-Lite address width of the register block.
    weight_buffer_bytes : int
        Size of *each* of the two ping-pong weight buffers (one expert matrix must fit).
    token_buffer_bytes : int
        On-chip activation scratchpad (int8 tensors: LayerNorm outputs, q/k/v, attention
        probabilities, hidden activations), in words of ``array_cols`` bytes.
    clock_mhz : float
        Target fabric clock.
    max_tokens : int
        Largest token count of a frame (class token included): rows of the residual stream,
        the MoE accumulator and the attention-score buffer.
    max_k, max_n : int
        Largest reduction length K and output width N of one matrix multiply.
    max_dim : int
        Largest token width D (residual stream, LayerNorm).
    experts, top_k : int
        The router's expert count E and k (the model must match; ``experts <= array_cols``).
    a_word_bytes : int
        Bytes per word of each A-operand bank (divides ``array_cols``): the activation-to-array
        load moves one such word per cycle.
    const_words : int
        Rows of per-channel lane constants (one row = ``array_cols`` channels).
    imem_words : int
        Instructions the program memory holds (a program is fetched into it at start).
    ln_lanes : int
        Elements the LayerNorm unit takes per cycle.
    ln_scalar_stages : int
        Copies of LayerNorm's per-token stage (variance, square root, reciprocal: ~70 cycles
        at D = 192), taking tokens in turn so that a token leaves every
        ``max(D / ln_lanes, 71 / ln_scalar_stages)`` cycles (``ln_banks`` token banks).
    softmax_lanes : int
        Attention rows (queries) the softmax unit takes side by side, one score each per cycle
        (divides ``array_cols``: a SCORE word holds the scores of ``array_cols`` queries for one
        key, so each word feeds ``array_cols / softmax_lanes`` query groups).
    store_fifo_rows : int
        Result rows the DDR store buffers in front of its AXI writer (a row is ``2C /
        axi_bytes`` beats), so a tile's rows leaving the array one a cycle do not stall it.
    load_queue_depth : int
        LOAD commands the sequencer can hand to the DDR load engine ahead of the one it runs
        (weights and constants stream in while the sequencer goes on issuing compute).
    uram_min_bytes : int
        Memories of at least this many bytes are marked ``ram_style = "ultra"`` (UltraRAM on
        UltraScale+: the activation, score, residual and MoE-accumulator memories of the default
        config, which would not fit the XCZU7EV's block RAM beside the weight banks); 0: never.
    """

    array_rows: int = 33
    array_cols: int = 32
    operand_width: int = 8
    acc_width: int = 32
    axi_data_width: int = 128
    axi_addr_width: int = 40
    axi_id_width: int = 6
    axi_masters: int = 2
    max_burst_beats: int = 16
    max_outstanding_reads: int = 4
    csr_addr_width: int = 12
    weight_buffer_bytes: int = 384 * 384
    token_buffer_bytes: int = 512 * 1024
    clock_mhz: float = 250.0
    max_tokens: int = 129
    max_k: int = 768
    max_n: int = 1024
    max_dim: int = 192
    experts: int = 16
    top_k: int = 2
    a_word_bytes: int = 32
    const_words: int = 128
    imem_words: int = 1024
    ln_lanes: int = 8
    ln_scalar_stages: int = 4
    softmax_lanes: int = 16
    store_fifo_rows: int = 64
    load_queue_depth: int = 4
    uram_min_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError("invalid accelerator config: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """Every constraint the RTL, the ISA and the register map rely on, as messages."""
        p = []
        ints = [f.name for f in dataclasses.fields(self) if f.name != "clock_mhz"]
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                p.append(f"{name} must be an integer, not {v!r}")
        if p:
            return p
        for name in ints:
            if name != "uram_min_bytes" and getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.uram_min_bytes < 0:
            p.append("uram_min_bytes must be >= 0")
        if not (isinstance(self.clock_mhz, (int, float)) and math.isfinite(self.clock_mhz)
                and 0 < self.clock_mhz <= 1000):
            p.append(f"clock_mhz must be a number in (0, 1000], not {self.clock_mhz!r}")
        if p:
            return p
        p += self._bus_problems() + self._datapath_problems() + self._format_problems()
        return p

    def _bus_problems(self) -> list[str]:
        p = []
        if self.axi_data_width not in (32, 64, 128, 256, 512, 1024):
            p.append(f"axi_data_width {self.axi_data_width} is not an AXI width (32..1024)")
            return p
        if not 12 <= self.axi_addr_width <= 64:
            p.append(f"axi_addr_width must be in 12..64, got {self.axi_addr_width}")
        if not 1 <= self.axi_id_width <= 32:
            p.append(f"axi_id_width must be in 1..32, got {self.axi_id_width}")
        if self.axi_masters not in (1, 2):
            p.append(f"axi_masters must be 1 or 2, got {self.axi_masters}")
        if not 1 <= self.max_burst_beats <= 256:
            p.append("max_burst_beats must be in 1..256")
        elif self.max_burst_beats * self.axi_bytes > 4096:
            p.append("a maximal burst would exceed 4 KB")
        read_word = self.axi_masters * self.axi_bytes      # the loader reads on every master
        for dest, nbytes in self.load_word_bytes.items():
            if nbytes % read_word:
                p.append(f"a {dest} load word ({nbytes} bytes) is not a multiple of the "
                         f"{read_word}-byte read word ({self.axi_masters} x the "
                         f"{self.axi_bytes}-byte AXI word)")
        if (2 * self.array_cols) % self.axi_bytes:
            p.append(f"an output row (2 x array_cols = {2 * self.array_cols} bytes) is not a "
                     f"multiple of the {self.axi_bytes}-byte AXI word")
        if not REGISTER_SPACE_BITS <= self.csr_addr_width <= 32:
            p.append(f"csr_addr_width must be in {REGISTER_SPACE_BITS}..32 (the register map "
                     f"spans 2**{REGISTER_SPACE_BITS} bytes), got {self.csr_addr_width}")
        return p

    def _datapath_problems(self) -> list[str]:
        p = []
        C = self.array_cols
        if self.operand_width != 8:
            p.append("operand_width must be 8 (the array's PEs and the lanes are int8)")
        if self.acc_width < 2 * self.operand_width:
            p.append("acc_width must hold at least one product")
        if self.top_k > self.experts:
            p.append("top_k must be <= experts")
        if self.experts > min(C, 64):
            p.append(f"experts ({self.experts}) must be <= array_cols ({C}) and <= 64: a "
                     "token's gate logits are one output row")
        if not _pow2(self.a_word_bytes) or C % self.a_word_bytes:
            p.append(f"a_word_bytes ({self.a_word_bytes}) must be a power of two dividing "
                     f"array_cols ({C})")
        if self.max_dim % self.ln_lanes or C % self.ln_lanes:
            p.append(f"ln_lanes ({self.ln_lanes}) must divide max_dim ({self.max_dim}) and "
                     f"array_cols ({C})")
        if self.ln_scalar_stages > 8:
            p.append(f"ln_scalar_stages must be in 1..8, got {self.ln_scalar_stages}")
        if C % self.softmax_lanes or self.softmax_lanes > 64:
            p.append(f"softmax_lanes ({self.softmax_lanes}) must divide array_cols ({C}) and "
                     "be <= 64")
        if self.store_fifo_rows > 1024:
            p.append(f"store_fifo_rows must be in 1..1024, got {self.store_fifo_rows}")
        if self.load_queue_depth > 64:
            p.append(f"load_queue_depth must be in 1..64, got {self.load_queue_depth}")
        if self.max_dim > 1024:
            p.append("max_dim must be <= 1024 (LayerNorm's proven widths)")
        if self.weight_buffer_bytes < C:
            p.append("weight_buffer_bytes must hold at least one word (array_cols bytes)")
        if self.const_words % 2:
            p.append("const_words must be even (two ping-pong halves)")
        return p

    def _format_problems(self) -> list[str]:
        """The config must fit the instruction and register formats."""
        p = []
        limits = [
            ("array_rows", self.array_rows, 255), ("array_cols", self.array_cols, 255),
            ("max_tokens", self.max_tokens, (1 << TOKEN_BITS) - 1),
            ("max_k", self.max_k, (1 << KN_BITS) - 1), ("max_n", self.max_n, (1 << KN_BITS) - 1),
            ("max_dim / array_cols", self.res_tiles, (1 << ROW_WORDS_BITS) - 1),
            ("imem_words", self.imem_words, 1 << PC_BITS),
            ("ACT words", self.act_words, 1 << WORD_ADDR_BITS),
            ("B words", self.b_words, 1 << WORD_ADDR_BITS),
            ("lane-constant rows", self.const_rows, 1 << CONST_ROW_BITS),
            ("max_outstanding_reads", self.max_outstanding_reads, 127),
            ("weight_buffer_bytes", self.weight_buffer_bytes, (1 << 32) - 1),
            ("token_buffer_bytes", self.token_buffer_bytes, (1 << 32) - 1),
            ("experts", self.experts, 127), ("top_k", self.top_k, 63),
            ("ln_lanes", self.ln_lanes, 127), ("acc_width", self.acc_width, 255),
        ]
        for name, value, limit in limits:
            if value > limit:
                p.append(f"{name} ({value}) exceeds the format's {limit}")
        return p

    # ------------------------------------------------------------------ derived sizes
    @property
    def axi_bytes(self) -> int:
        """Bytes per AXI beat."""
        return self.axi_data_width // 8

    @property
    def b_half_words(self) -> int:
        """B-bank words of each ping-pong weight half (one word = ``array_cols`` bytes)."""
        return self.weight_buffer_bytes // self.array_cols

    @property
    def const_half_rows(self) -> int:
        """Lane-constant rows of each ping-pong half."""
        return self.const_words // 2

    @property
    def const_static_rows(self) -> int:
        """Constant rows after the two ping-pong halves: the identity row and the attention
        scalars (logits, context)."""
        C = self.array_cols
        return 1 + math.ceil(self.max_tokens / C) + math.ceil(self.max_dim / C)

    @property
    def b_scratch_words(self) -> int:
        """B words after the two weight halves: one head's attention queries (transposed, for
        ``Sᵀ = K·Qᵀ``) or values."""
        C = self.array_cols
        return max(math.ceil(self.max_tokens / C) * self.max_dim,
                   math.ceil(self.max_dim / C) * self.max_tokens)

    @property
    def act_words(self) -> int:
        return self.token_buffer_bytes // self.array_cols

    @property
    def b_words(self) -> int:
        return 2 * self.b_half_words + self.b_scratch_words

    @property
    def const_rows(self) -> int:
        return self.const_words + self.const_static_rows

    @property
    def lnp_words(self) -> int:
        return self.max_dim // self.ln_lanes

    @property
    def ln_banks(self) -> int:
        """LayerNorm token banks: one filling, one per scalar stage, one emitting."""
        return max(3, self.ln_scalar_stages + 2)

    @property
    def score_row_words(self) -> int:
        """SCORE words per attention row (``max_tokens`` scores, ``array_cols`` per word)."""
        return math.ceil(self.max_tokens / self.array_cols)

    @property
    def res_tiles(self) -> int:
        """Column tiles of a token row of width ``max_dim``."""
        return math.ceil(self.max_dim / self.array_cols)

    @property
    def token_bits(self) -> int:
        """Width of a token index (``max_tokens`` rows)."""
        return _bits(self.max_tokens)

    @property
    def tn_bits(self) -> int:
        """Width of a column-tile index (``ceil(max_n / array_cols)`` tiles)."""
        return _bits(math.ceil(self.max_n / self.array_cols))

    @property
    def a_bank_words(self) -> int:
        """Words of each A bank: every row tile of a ``max_tokens`` × ``max_k`` operand, rows
        padded to a multiple of ``array_cols`` bytes."""
        C = self.array_cols
        pitch = math.ceil(self.max_k / C) * C
        return math.ceil(self.max_tokens / self.array_rows) * pitch // self.a_word_bytes

    @property
    def store_ratio(self) -> int:
        """AXI beats per output row (``array_cols`` int16 values)."""
        return 2 * self.array_cols // self.axi_bytes

    @property
    def a_ratio(self) -> int:
        """A-bank words per ACT word (the A-operand copy moves one A word per cycle)."""
        return self.array_cols // self.a_word_bytes

    @property
    def ln_ratio(self) -> int:
        """Cycles to feed one ``array_cols``-wide residual row into LayerNorm."""
        return self.array_cols // self.ln_lanes

    @property
    def load_word_bytes(self) -> dict[str, int]:
        """Bytes of one on-chip word per LOAD destination (``rtl.control.isa.Dest`` names) and
        of one program word."""
        C = self.array_cols
        return {"B": C, "CONST": C * CONST_RECORD_BYTES, "ACT": C,
                "LNP": self.ln_lanes * LNP_RECORD_BYTES, "RES": 2 * C, "IMEM": INSTR_BYTES}

    def memory_words(self) -> dict[str, int]:
        """Depth of each on-chip memory, in its own words (the compiler allocates within these,
        the sequencer range-checks against them)."""
        return {"act": self.act_words, "b": self.b_words, "const": self.const_rows,
                "lnp": self.lnp_words, "score_rows": self.max_tokens,
                "score": self.max_tokens * self.score_row_words,
                "queue": self.max_tokens * self.top_k, "res_tiles": self.res_tiles}

    def mark_memory(self, mem) -> None:
        """Tag a ``lib.memory.Memory`` for UltraRAM when it is at least ``uram_min_bytes``."""
        from amaranth.hdl import Shape
        nbytes = Shape.cast(mem.shape).width * mem.depth // 8
        if self.uram_min_bytes and nbytes >= self.uram_min_bytes:
            mem.attrs["ram_style"] = "ultra"

    def replace(self, **changes) -> "AccelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self) -> int:
        """32-bit hash of every parameter and of the instruction set (its version and layout
        digest): a model image compiled for one config or ISA is refused by an accelerator built
        from another (the FINGERPRINT register holds this value)."""
        from rtl.control.version import ISA_DIGEST, ISA_VERSION
        text = json.dumps({"config": self.to_dict(), "isa": [ISA_VERSION, ISA_DIGEST]},
                          sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


DEFAULT = AccelConfig()
# Small parameters for unit tests (a 64-bit bus, 8-beat bursts); a whole accelerator too.
SMALL_TEST = AccelConfig(array_rows=4, array_cols=8, axi_data_width=64, axi_masters=1,
                         max_burst_beats=8, weight_buffer_bytes=4096, token_buffer_bytes=16384,
                         a_word_bytes=4, experts=4, ln_lanes=4, ln_scalar_stages=1,
                         softmax_lanes=8)
# The whole accelerator sized for the `nano` model on a 4×4 array (Amaranth-simulator e2e tests).
NANO = AccelConfig(array_rows=4, array_cols=4, axi_data_width=32, axi_masters=1,
                   max_burst_beats=16, weight_buffer_bytes=256 * 64, token_buffer_bytes=24 * 1024,
                   max_tokens=33, max_k=256, max_n=384, max_dim=64, experts=4, top_k=2,
                   a_word_bytes=2, const_words=256, imem_words=512, clock_mhz=100.0, ln_lanes=1,
                   ln_scalar_stages=1, softmax_lanes=2)
CONFIGS = {"default": DEFAULT, "nano": NANO, "small-test": SMALL_TEST}
