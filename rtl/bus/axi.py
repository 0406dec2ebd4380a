"""AXI4 and AXI4-Lite interface signatures: the only place in ``rtl/`` where they are defined.

No maintained Amaranth AXI library is installable from PyPI, so the project defines its own.
Signatures are written from the **manager (master)** side: a subordinate (slave) uses
``axi4_signature(...).flip()``. Each channel is a sub-signature whose members are named after the
AXI signals without the channel prefix (``ar.addr`` is ARADDR, ``r.last`` is RLAST …); flattened
port names are therefore ``<port>__ar__addr`` in the Verilog Amaranth emits.

Only the signals the accelerator uses are present (ID, ADDR, LEN, SIZE, BURST, DATA, STRB, LAST,
RESP, and PROT for AXI4-Lite); the board top ties LOCK/CACHE/QOS/REGION to their defaults.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["Resp", "Burst", "axi4_signature", "axi4_lite_signature", "axi4_from_config",
           "axi4_lite_from_config", "AXI_4K", "size_for_width"]

AXI_4K = 4096
"""An AXI burst must not cross a 4 KB address boundary."""


class Resp(enum.Enum, shape=2):
    """xRESP encodings."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class Burst(enum.Enum, shape=2):
    """AxBURST encodings."""
    FIXED = 0
    INCR = 1
    WRAP = 2


def size_for_width(data_width: int) -> int:
    """AxSIZE for full-width beats of a ``data_width``-bit bus (log2 of the byte count)."""
    if data_width < 8 or data_width & (data_width - 1):
        raise ValueError(f"AXI data width must be a power of two >= 8, not {data_width}")
    return ceil_log2(data_width // 8)


def _check(addr_width: int, data_width: int, id_width: int | None = None) -> None:
    if not 12 <= addr_width <= 64:
        raise ValueError(f"AXI address width must be in 12..64, not {addr_width}")
    if data_width not in (8, 16, 32, 64, 128, 256, 512, 1024):
        raise ValueError(f"AXI data width must be a power of two in 8..1024, not {data_width}")
    if id_width is not None and not 1 <= id_width <= 32:
        raise ValueError(f"AXI ID width must be in 1..32, not {id_width}")


def _request(fields: dict) -> wiring.Signature:
    """A manager→subordinate channel: payload and VALID out, READY in."""
    return wiring.Signature({"valid": Out(1), "ready": In(1),
                             **{k: Out(v) for k, v in fields.items()}})


def _response(fields: dict) -> wiring.Signature:
    """A subordinate→manager channel (seen from the manager): payload and VALID in, READY out."""
    return wiring.Signature({"valid": In(1), "ready": Out(1),
                             **{k: In(v) for k, v in fields.items()}})


def axi4_signature(addr_width: int, data_width: int, id_width: int) -> wiring.Signature:
    """AXI4 manager signature (five channels ``aw, w, b, ar, r``).

    Parameters
    ----------
    addr_width, data_width, id_width : int
        AXI widths in bits (``data_width`` a power of two, 8..1024).
    """
    _check(addr_width, data_width, id_width)
    ax = {"id": unsigned(id_width), "addr": unsigned(addr_width), "len": unsigned(8),
          "size": unsigned(3), "burst": unsigned(2)}
    return wiring.Signature({
        "aw": Out(_request(ax)),
        "w": Out(_request({"data": unsigned(data_width), "strb": unsigned(data_width // 8),
                           "last": unsigned(1)})),
        "b": Out(_response({"id": unsigned(id_width), "resp": unsigned(2)})),
        "ar": Out(_request(ax)),
        "r": Out(_response({"id": unsigned(id_width), "data": unsigned(data_width),
                            "resp": unsigned(2), "last": unsigned(1)})),
    })


def axi4_lite_signature(addr_width: int, data_width: int = 32) -> wiring.Signature:
    """AXI4-Lite manager signature (``aw, w, b, ar, r``; data 32 or 64 bits)."""
    if data_width not in (32, 64):
        raise ValueError(f"AXI4-Lite data width must be 32 or 64, not {data_width}")
    if not 2 <= addr_width <= 64:
        raise ValueError(f"AXI4-Lite address width must be in 2..64, not {addr_width}")
    return wiring.Signature({
        "aw": Out(_request({"addr": unsigned(addr_width), "prot": unsigned(3)})),
        "w": Out(_request({"data": unsigned(data_width), "strb": unsigned(data_width // 8)})),
        "b": Out(_response({"resp": unsigned(2)})),
        "ar": Out(_request({"addr": unsigned(addr_width), "prot": unsigned(3)})),
        "r": Out(_response({"data": unsigned(data_width), "resp": unsigned(2)})),
    })


def axi4_from_config(cfg) -> wiring.Signature:
    """The DMA master port signature of an :class:`rtl.config.AccelConfig`."""
    return axi4_signature(cfg.axi_addr_width, cfg.axi_data_width, cfg.axi_id_width)


def axi4_lite_from_config(cfg) -> wiring.Signature:
    """The CSR port signature (manager view) of an :class:`rtl.config.AccelConfig`."""
    return axi4_lite_signature(cfg.csr_addr_width, 32)
