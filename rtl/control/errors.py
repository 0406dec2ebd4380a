"""The run error codes (STATUS.error_code), declared once: the sequencer raises them, the register
map documents them, the firmware decodes them and the tests match them. A plain
:class:`enum.IntEnum` (Amaranth takes it as a shape; the board imports it without Amaranth)."""

from __future__ import annotations

from rtl.control.textenum import TextIntEnum

__all__ = ["ErrorCode"]


class ErrorCode(TextIntEnum):
    """STATUS.error_code values; ``text`` is the documented meaning."""

    NONE = 0, "none"
    DMA_READ = 1, "DMA read error (RRESP not OKAY: address outside DDR or not mapped)"
    DMA_WRITE = 2, "DMA write error (BRESP not OKAY: address outside DDR or not mapped)"
    MALFORMED = 3, "malformed program (unknown opcode, field out of range, or ran past the end)"
    PROGRAM_SIZE = 4, "PROGRAM_LEN is 0 or larger than the instruction memory"
    BAD_TASK = 5, "TASK_ID is not a task of the loaded program"
    START_WHILE_BUSY = 6, "START written while a program was running (the run was stopped)"
    ONCHIP_RANGE = 7, "on-chip address out of range in an instruction"
    UNIT_OVERFLOW = 8, ("unit overflow (a LayerNorm row, softmax row or router frame exceeded "
                        "its size)")
