"""The accelerator's hardware parameters: one dataclass, the single source of truth.

Every RTL component takes its sizes from an :class:`AccelConfig`; the register map the firmware
uses and the on-chip memory report are generated from it. Never copy one of these numbers into a
second place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["AccelConfig", "DEFAULT", "SMALL_TEST", "NANO", "CONFIGS"]


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
        Number of AXI4 master ports (HP ports) the DMA spreads over.
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
    uram_min_bytes : int
        Memories of at least this many bytes are marked ``ram_style = "ultra"`` (UltraRAM on
        UltraScale+: the activation, score, residual and MoE-accumulator memories of the default
        config, which would not fit the XCZU7EV's block RAM beside the weight banks); 0: never.
    """

    array_rows: int = 32
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
    a_word_bytes: int = 8
    const_words: int = 128
    imem_words: int = 1024
    ln_lanes: int = 4
    uram_min_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        problems = []
        for name in ("array_rows", "array_cols", "operand_width", "acc_width", "axi_masters",
                     "max_outstanding_reads", "weight_buffer_bytes", "token_buffer_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.axi_data_width not in (32, 64, 128, 256, 512, 1024):
            problems.append(f"axi_data_width {self.axi_data_width} is not an AXI width")
        if not 1 <= self.max_burst_beats <= 256:
            problems.append("max_burst_beats must be in 1..256")
        if self.max_burst_beats * self.axi_data_width // 8 > 4096:
            problems.append("a maximal burst would exceed 4 KB")
        if self.acc_width < 2 * self.operand_width:
            problems.append("acc_width must hold at least one product")
        for name in ("max_tokens", "max_k", "max_n", "max_dim", "experts", "top_k",
                     "a_word_bytes", "const_words", "imem_words", "ln_lanes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.uram_min_bytes < 0:
            problems.append("uram_min_bytes must be >= 0")
        if self.top_k > self.experts:
            problems.append("top_k must be <= experts")
        if self.array_cols % max(1, self.a_word_bytes):
            problems.append("a_word_bytes must divide array_cols")
        if self.max_dim % max(1, self.ln_lanes):
            problems.append("ln_lanes must divide max_dim")
        if problems:
            raise ValueError("invalid accelerator config: " + "; ".join(problems))

    @property
    def axi_bytes(self) -> int:
        return self.axi_data_width // 8

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
        """32-bit hash of every parameter: a model image compiled for one config is refused by
        an accelerator built from another (the FINGERPRINT register holds this value)."""
        text = json.dumps(self.to_dict(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


DEFAULT = AccelConfig()
# Small parameters for Amaranth-simulator unit tests.
SMALL_TEST = AccelConfig(array_rows=4, array_cols=4, axi_data_width=64, axi_masters=1,
                         max_burst_beats=8, weight_buffer_bytes=4096, token_buffer_bytes=16384,
                         a_word_bytes=4, experts=4)
# The whole accelerator sized for the `nano` model on a 4×4 array (Amaranth-simulator e2e tests).
NANO = AccelConfig(array_rows=4, array_cols=4, axi_data_width=32, axi_masters=1,
                   max_burst_beats=16, weight_buffer_bytes=256 * 64, token_buffer_bytes=24 * 1024,
                   max_tokens=33, max_k=256, max_n=384, max_dim=64, experts=4, top_k=2,
                   a_word_bytes=2, const_words=256, imem_words=512, clock_mhz=100.0, ln_lanes=1)
CONFIGS = {"default": DEFAULT, "nano": NANO, "small-test": SMALL_TEST}
