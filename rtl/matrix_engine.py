"""The matrix engine: tiling front end + R×C mesh + vector lanes, driven by one command stream."""

from __future__ import annotations

import math

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig
from .tiler import TiledMatmul, command_layout, matmul_cycles
from .vector import VECTOR_LATENCY, VectorLanes, lane_mode_layout

__all__ = ["MatrixEngine", "engine_cycles"]


def engine_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles from accepting a command to its last output row, with no back-pressure (each
    stalled output cycle adds exactly one): the mesh's :func:`rtl.tiler.matmul_cycles` plus the
    vector pipeline."""
    return matmul_cycles(m, k, n, rows, cols) + VECTOR_LATENCY


class MatrixEngine(wiring.Component):
    """C = lanes(A·B) for any M×K×N.

    Parameters
    ----------
    cfg : AccelConfig
        Supplies the array shape (``array_rows`` × ``array_cols``) and accumulator width.
    max_m, max_k, max_n : int
        Largest problem (sizes the operand memories).
    const_depth : int
        Rows of per-channel lane constants.
    max_tokens : int
        Rows of the residual / MoE accumulator memories (default ``max_m``).

    Attributes
    ----------
    cmd : In(stream) of ``{mm: command_layout, lanes: lane_mode_layout}``; accepted when idle
    out : Out(stream) of the lanes' rows ``{m, tn, values[C]}``
    busy : Out(1)
    tiler, lanes : the two halves (their memories are the operand/constant/state stores)
    """

    def __init__(self, cfg: AccelConfig, max_m: int, max_k: int, max_n: int,
                 const_depth: int, max_tokens: int | None = None):
        self.cfg = cfg
        self.tiler = TiledMatmul(cfg.array_rows, cfg.array_cols, max_m, max_k, max_n,
                                 cfg.acc_width)
        row = self.tiler.out.payload
        self.lanes = VectorLanes(cfg.array_cols, max_m, math.ceil(max_n / cfg.array_cols),
                                 const_depth, max_tokens,
                                 m_width=max(len(row.m), (max(max_tokens or 1, max_m) - 1).bit_length()),
                                 tn_width=len(row.tn), acc_width=cfg.acc_width)
        self.cmd_layout = data.StructLayout({"mm": command_layout(max_m, max_k, max_n),
                                             "lanes": lane_mode_layout(const_depth)})
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "out": Out(stream.Signature(self.lanes.out.payload.shape())),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tiler = tiler = self.tiler
        m.submodules.lanes = lanes = self.lanes
        mode = Signal(lane_mode_layout(self.lanes.const_depth))
        idle = Signal()
        m.d.comb += [
            idle.eq(~tiler.busy & ~lanes.busy & ~tiler.out.valid),
            self.cmd.ready.eq(idle & tiler.cmd.ready),
            tiler.cmd.valid.eq(self.cmd.valid & idle),
            tiler.cmd.payload.eq(self.cmd.payload.mm),
            lanes.mode.eq(mode),
            lanes.i.valid.eq(tiler.out.valid),
            lanes.i.payload.m.eq(tiler.out.payload.m),
            lanes.i.payload.tn.eq(tiler.out.payload.tn),
            lanes.i.payload.acc.eq(tiler.out.payload.acc),
            tiler.out.ready.eq(lanes.i.ready),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += mode.eq(self.cmd.payload.lanes)
        wiring.connect(m, wiring.flipped(self.out), lanes.out)
        m.d.comb += self.busy.eq(~idle | lanes.out.valid)
        return m
