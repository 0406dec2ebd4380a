"""The matrix engine: tiling front end + R×C mesh + vector lanes, driven by one command stream."""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig
from .gather import RowGather, gather_cycles
from .tiler import TiledMatmul, matmul_cycles
from .vector import VECTOR_LATENCY, VectorLanes, lane_mode_layout

__all__ = ["MatrixEngine", "engine_cycles"]


def engine_cycles(m: int, k: int, n: int, rows: int, cols: int, gather: bool = False) -> int:
    """Cycles from accepting a command to its last output row without back-pressure (a stalled
    output cycle adds at most one): the optional row gather, the mesh's
    :func:`rtl.tiler.matmul_cycles` and the vector pipeline, plus one cycle for the command
    register between the engine and the tiler."""
    pre = gather_cycles(m, k) if gather else 0
    return 1 + pre + matmul_cycles(m, k, n, rows, cols) + VECTOR_LATENCY


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
    b_depth : int, optional
        Words per weight bank (see :class:`rtl.tiler.TiledMatmul`).

    Attributes
    ----------
    a_load, b_load, const_load, queue_load, token_load : In(stream) of ``{[bank,] addr, value}``:
        how the DMA / program loader fills the operand, constant, queue and token memories
    cmd : In(stream) of ``{mm: command_layout, lanes: lane_mode_layout, gather}``, accepted when
        idle. With ``gather``, A row ``m`` is first copied from token ``queue[m].token`` of
        ``tokens`` (the expert's token queue, in the lanes' queue memory).
    out : Out(stream) of the lanes' rows ``{m, tn, values[C]}``
    busy : Out(1)
    tiler, lanes, gather : the parts (their memories are the operand/constant/state stores)
    tokens : Memory, the token matrix gathered from
    """

    def __init__(self, cfg: AccelConfig, max_m: int, max_k: int, max_n: int,
                 const_depth: int, max_tokens: int | None = None, b_depth: int | None = None):
        self.cfg = cfg
        self.tiler = TiledMatmul(cfg.array_rows, cfg.array_cols, max_m, max_k, max_n,
                                 cfg.acc_width, b_depth=b_depth)
        row = self.tiler.out.payload
        self.lanes = VectorLanes(cfg.array_cols, max_m, math.ceil(max_n / cfg.array_cols),
                                 const_depth, max_tokens,
                                 m_width=max(len(row.m), (max(max_tokens or 1, max_m) - 1).bit_length()),
                                 tn_width=len(row.tn), acc_width=cfg.acc_width)
        self.max_tokens = max_tokens or max_m
        self.gather = RowGather(cfg.array_rows, max_m, max_k, self.max_tokens,
                                self.tiler.a_depth)
        # Token matrix (int8, row-major, one byte per word) that expert queues gather from.
        self.tokens = memory.Memory(shape=unsigned(8), depth=self.max_tokens * max_k, init=[])
        self.cmd_layout = data.StructLayout({"mm": self.tiler.cmd.payload.shape(),
                                             "lanes": lane_mode_layout(const_depth),
                                             "gather": 1})
        t, l = self.tiler, self.lanes
        super().__init__({
            "a_load": In(stream.Signature(t.a_load.payload.shape())),
            "b_load": In(stream.Signature(t.b_load.payload.shape())),
            "const_load": In(stream.Signature(l.const_load.payload.shape())),
            "queue_load": In(stream.Signature(l.queue_load.payload.shape())),
            "token_load": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, (self.max_tokens * max_k - 1).bit_length())),
                "value": unsigned(8)}))),
            "cmd": In(stream.Signature(self.cmd_layout)),
            "out": Out(stream.Signature(self.lanes.out.payload.shape())),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tiler = tiler = self.tiler
        m.submodules.lanes = lanes = self.lanes
        m.submodules.gather = gather = self.gather
        m.submodules.tokens = self.tokens
        mode = Signal(lane_mode_layout(self.lanes.const_depth))
        mm = Signal(self.cmd.payload.mm.shape())
        idle = Signal()
        gathering = Signal()
        issue = Signal()               # a matmul waits to be handed to the tiler
        m.d.comb += [
            idle.eq(~tiler.busy & ~lanes.busy & ~tiler.out.valid & ~gathering & ~issue),
            self.cmd.ready.eq(idle),
            tiler.cmd.valid.eq(issue),
            tiler.cmd.payload.eq(mm),
            lanes.mode.eq(mode),
            lanes.i.valid.eq(tiler.out.valid),
            lanes.i.payload.m.eq(tiler.out.payload.m),
            lanes.i.payload.tn.eq(tiler.out.payload.tn),
            lanes.i.payload.acc.eq(tiler.out.payload.acc),
            tiler.out.ready.eq(lanes.i.ready),
        ]
        # Row gather: token memory → A banks, before the matmul starts.
        token_rd = self.tokens.read_port(transparent_for=())
        queue_rd = lanes.queue.read_port(domain="comb")
        m.d.comb += [
            gather.cmd.payload.m.eq(self.cmd.payload.mm.m),
            gather.cmd.payload.k.eq(self.cmd.payload.mm.k),
            gather.cmd.valid.eq(self.cmd.valid & idle & self.cmd.payload.gather),
            queue_rd.addr.eq(gather.queue_addr),
            gather.queue_token.eq(queue_rd.data.token),
            token_rd.addr.eq(gather.mem_addr), token_rd.en.eq(gather.mem_en),
            gather.mem_data.eq(token_rd.data),
            # The gather unit has priority on the A banks; external loads wait while it runs.
            tiler.a_load.valid.eq(gather.a_load.valid | (self.a_load.valid & ~gather.busy)),
            tiler.a_load.payload.eq(Mux(gather.busy, gather.a_load.payload, self.a_load.payload)),
            gather.a_load.ready.eq(tiler.a_load.ready),
            self.a_load.ready.eq(tiler.a_load.ready & ~gather.busy),
        ]
        wiring.connect(m, wiring.flipped(self.b_load), tiler.b_load)
        wiring.connect(m, wiring.flipped(self.const_load), lanes.const_load)
        wiring.connect(m, wiring.flipped(self.queue_load), lanes.queue_load)
        token_wr = self.tokens.write_port()
        m.d.comb += [self.token_load.ready.eq(1), token_wr.addr.eq(self.token_load.payload.addr),
                     token_wr.data.eq(self.token_load.payload.value),
                     token_wr.en.eq(self.token_load.valid)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [mode.eq(self.cmd.payload.lanes), mm.eq(self.cmd.payload.mm)]
            with m.If(self.cmd.payload.gather):
                m.d.sync += gathering.eq(1)
            with m.Else():
                m.d.sync += issue.eq(1)
        with m.If(gathering & ~gather.busy & ~gather.cmd.valid):
            m.d.sync += [gathering.eq(0), issue.eq(1)]
        with m.If(issue & tiler.cmd.ready):
            m.d.sync += issue.eq(0)
        wiring.connect(m, wiring.flipped(self.out), lanes.out)
        m.d.comb += self.busy.eq(~idle | lanes.out.valid)
        return m
