"""The compute datapath: the array with its lanes, LayerNorm, softmax, router, the on-chip
activation / score / queue memories, the movers between them and the output store.

It executes one compute instruction at a time (:mod:`rtl.control.isa`); operands were resolved by the
sequencer. Data paths (all on chip except the store)::

    ACT ──A-loader (optional expert-queue gather)──> A banks ─┐
    ACT ──B-mover (direct or transposed)──> B banks <── loader│(DDR weights)
                                                              v
    loader (RES rows) ─┐           row generator ─┐       tiler (R×C)
                       └──────────────> lanes <───┴──────────┘
                                         │ (residual / MoE accumulator live inside)
          ┌──────────┬────────┬──────────┼──────────┐
          v          v        v          v          v
         ACT       SCORE    router    LayerNorm   DDR store
                      │       │          │
                 softmax    QUEUE       ACT
                      │
                     ACT
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out


from golden.quant import ops
from rtl.bus.axi import axi4_from_config
from rtl.config import AccelConfig
from rtl.bus.dma import DMAWriter
from rtl.control.isa import Dest, Op, OutDest
from rtl.units.layernorm import LayerNorm
from rtl.units.router import Router
from rtl.control.sequencer import compute_cmd_layout
from rtl.units.softmax import Softmax
from rtl.array.tiler import TiledMatmul
from rtl.array.lanes import Aux, OutBits, VectorLanes

__all__ = ["Compute", "memory_words", "const_static_rows", "b_scratch_words"]


def bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def const_static_rows(cfg: AccelConfig) -> int:
    """Constant rows after the two ping-pong halves of ``const_words``: the identity row and the
    attention scalars (logits, context)."""
    C = cfg.array_cols
    return 1 + math.ceil(cfg.max_tokens / C) + math.ceil(cfg.max_dim / C)


def b_scratch_words(cfg: AccelConfig) -> int:
    """B words after the two weight halves: attention keys (transposed) or values of one head."""
    C = cfg.array_cols
    return max(math.ceil(cfg.max_tokens / C) * cfg.max_dim,
               math.ceil(cfg.max_dim / C) * cfg.max_tokens)


def memory_words(cfg: AccelConfig) -> dict[str, int]:
    """Depth of each on-chip memory, in its own words (the compiler allocates within these)."""
    C = cfg.array_cols
    sw = math.ceil(cfg.max_tokens / C)
    return {
        "act": cfg.token_buffer_bytes // C,
        "b": 2 * (cfg.weight_buffer_bytes // C) + b_scratch_words(cfg),
        "const": cfg.const_words + const_static_rows(cfg),
        "lnp": cfg.max_dim // cfg.ln_lanes,
        "score_rows": cfg.max_tokens,
        "score": cfg.max_tokens * sw,
        "queue": cfg.max_tokens * cfg.top_k,
        "res_tiles": math.ceil(cfg.max_dim / C),
    }


class _Sink(enum.Enum, shape=3):
    NONE = 0
    ACT = 1
    SCORE = 2
    ROUTER = 3
    DDR = 4
    LN = 5


class _S(enum.Enum, shape=3):
    IDLE = 0
    ALOAD = 1
    ISSUE = 2
    BMOVE = 3
    ROWGEN = 4
    FEED = 5
    FINISH = 6


class Compute(wiring.Component):
    """Everything that computes, behind one command stream.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`rtl.control.sequencer.compute_cmd_layout`, accepted when idle
    b_wr, act_wr, const_wr, lnp_wr, res_row : In(stream) from :class:`rtl.bus.loader.Loader`
    loader_busy : In(1)
    axi : Out(AXI4 manager) — the output store (write channels only)
    busy : Out(1)
    ne_count, ne_expert, ne_length : Out — the last routing's non-empty experts
    write_error, unit_error : Out(1) (sticky until reset)
    matmul_busy, layernorm_busy, softmax_busy, router_busy, mover_busy : Out(1), for counters
    """

    def __init__(self, cfg: AccelConfig, loader_ports: dict):
        self.cfg = cfg
        C, R = cfg.array_cols, cfg.array_rows
        if C % cfg.ln_lanes:
            raise ValueError("ln_lanes must divide array_cols")
        if cfg.experts > C:
            raise ValueError(f"experts ({cfg.experts}) must be <= array_cols ({C}): a token's "
                             "gate logits are one output row")
        self.words = memory_words(cfg)
        self.b_half = cfg.weight_buffer_bytes // C
        self.tiler = TiledMatmul(R, C, cfg.max_tokens, cfg.max_k, cfg.max_n, cfg.acc_width,
                                 b_depth=self.words["b"], a_word_bytes=cfg.a_word_bytes,
                                 a_align=C)
        row = self.tiler.out.payload
        self.lanes = VectorLanes(C, cfg.max_tokens, self.words["res_tiles"], self.words["const"],
                                 cfg.max_tokens, m_width=len(row.m), tn_width=len(row.tn),
                                 acc_width=cfg.acc_width)
        self.layernorm = LayerNorm(cfg.max_dim, lanes=cfg.ln_lanes, gamma_frac=ops.LN_GAMMA_FRAC)
        self.softmax = Softmax(max_len=cfg.max_tokens, out_frac=8, out_bits=8, in_width=32)
        self.router = Router(cfg.experts, cfg.top_k, cfg.max_tokens, in_width=32)
        self.writer = DMAWriter(cfg)
        self.act = memory.Memory(shape=data.ArrayLayout(unsigned(8), C),
                                 depth=self.words["act"], init=[])
        self.score = memory.Memory(shape=data.ArrayLayout(signed(32), C),
                                   depth=self.words["score"], init=[])
        entry = data.StructLayout({"token": unsigned(len(row.m)), "prob": unsigned(16)})
        self.queue = memory.Memory(shape=entry, depth=self.words["queue"], init=[])
        for mem in (self.act, self.score, self.queue, self.lanes.residual, self.lanes.moe_acc,
                    self.lanes.constants):
            cfg.mark_memory(mem)
        E = cfg.experts
        super().__init__({
            "cmd": In(stream.Signature(compute_cmd_layout(cfg))),
            **{name: In(sig) for name, sig in loader_ports.items()},
            "loader_busy": In(1),
            "axi": Out(axi4_from_config(cfg)),
            "busy": Out(1),
            "ne_count": Out(range(E + 1)),
            "ne_expert": Out(data.ArrayLayout(unsigned(bits(E)), E)),
            "ne_length": Out(data.ArrayLayout(unsigned(max(1, cfg.max_tokens.bit_length())), E)),
            "write_error": Out(1), "unit_error": Out(1),
            "matmul_busy": Out(1), "layernorm_busy": Out(1), "softmax_busy": Out(1),
            "router_busy": Out(1), "mover_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, R = cfg.array_cols, cfg.array_rows
        E = cfg.experts
        m.submodules.tiler = tiler = self.tiler
        m.submodules.lanes = lanes = self.lanes
        m.submodules.layernorm = ln = self.layernorm
        m.submodules.softmax = sm = self.softmax
        m.submodules.router = router = self.router
        m.submodules.writer = writer = self.writer
        m.submodules.act = self.act
        m.submodules.score = self.score
        m.submodules.queue = self.queue
        wiring.connect(m, writer.axi, wiring.flipped(self.axi))
        m.d.comb += [self.write_error.eq(writer.error),
                     self.unit_error.eq(ln.overflow | sm.overflow | router.error)]

        # ---- latched command
        state = Signal(_S)
        cmd = Signal.like(self.cmd.payload)
        a = cmd.instr.args
        op = cmd.instr.op
        mm = a.matmul
        sink = Signal(_Sink)
        m.d.comb += self.cmd.ready.eq(state == _S.IDLE)
        accept = self.cmd.valid & self.cmd.ready
        new = self.cmd.payload
        na = new.instr.args

        # ---- lanes mode and input source
        mode = Signal.like(lanes.mode)
        m.d.comb += lanes.mode.eq(mode)

        class _Src(enum.Enum, shape=2):
            TILER = 0
            ROWGEN = 1
            LOADER = 2
        lsrc = Signal(_Src)

        with m.If(accept):
            m.d.sync += cmd.eq(new)
            with m.Switch(new.instr.op):
                with m.Case(Op.MATMUL):
                    nm = na.matmul
                    m.d.sync += [
                        mode.const_base.eq(new.const_base), mode.out_bits.eq(nm.out_bits),
                        mode.gelu.eq(nm.gelu), mode.act_mult.eq(nm.act_mult),
                        mode.act_shift.eq(nm.act_shift), mode.residual.eq(nm.residual),
                        mode.scatter.eq(nm.scatter), mode.aux.eq(Aux.NONE), lsrc.eq(_Src.TILER),
                    ]
                    with m.Switch(nm.dest):
                        for od, sk in ((OutDest.NONE, _Sink.NONE), (OutDest.ACT, _Sink.ACT),
                                       (OutDest.SCORE, _Sink.SCORE),
                                       (OutDest.ROUTER, _Sink.ROUTER), (OutDest.DDR, _Sink.DDR)):
                            with m.Case(od):
                                m.d.sync += sink.eq(sk)
                    with m.If((new.m == 0) | (nm.k == 0) | (nm.n == 0)):
                        m.d.sync += state.eq(_S.FINISH)
                    with m.Else():
                        m.d.sync += state.eq(_S.ALOAD)
                with m.Case(Op.LAYERNORM):
                    m.d.sync += [mode.residual.eq(0), mode.scatter.eq(0), mode.gelu.eq(0),
                                 mode.aux.eq(Aux.RES_READ), lsrc.eq(_Src.ROWGEN),
                                 sink.eq(_Sink.LN), state.eq(_S.ROWGEN)]
                with m.Case(Op.LANES):
                    m.d.sync += [mode.residual.eq(0), mode.scatter.eq(0), mode.gelu.eq(0),
                                 mode.aux.eq(na.lanes.aux), lsrc.eq(_Src.ROWGEN),
                                 sink.eq(_Sink.NONE), state.eq(_S.ROWGEN)]
                with m.Case(Op.LOAD):
                    m.d.sync += [mode.residual.eq(0), mode.scatter.eq(0), mode.gelu.eq(0),
                                 mode.const_base.eq(na.load.const_row),
                                 mode.out_bits.eq(OutBits.INT16),
                                 mode.aux.eq(Mux(na.load.dest == Dest.RES, Aux.RES_SET, Aux.NONE)),
                                 lsrc.eq(_Src.LOADER), sink.eq(_Sink.NONE),
                                 state.eq(_S.FINISH)]
                with m.Case(Op.BLOAD):
                    m.d.sync += state.eq(_S.BMOVE)
                with m.Case(Op.SOFTMAX):
                    m.d.sync += state.eq(_S.FEED)
                with m.Default():
                    m.d.sync += state.eq(_S.FINISH)

        # ---- memory ports
        act_rd = self.act.read_port(transparent_for=())
        act_wr = self.act.write_port()
        score_rd = self.score.read_port(transparent_for=())
        score_wr = self.score.write_port()
        queue_rd = self.queue.read_port(transparent_for=())
        queue_wr = self.queue.write_port()
        m.d.comb += [act_rd.en.eq(0), score_rd.en.eq(0), queue_rd.en.eq(0)]

        # ---- A-loader: rows of ACT (optionally gathered through the expert queue) → A banks
        ratio = C // cfg.a_word_bytes
        kw = Signal(range(cfg.max_k // C + 2))
        m.d.comb += kw.eq((mm.k + C - 1) // C)
        al_row = Signal(range(cfg.max_tokens + 1))
        al_bank = Signal(range(R))
        al_tile_base = Signal(tiler.a_load.payload.addr.shape().width + 1)
        al_word = Signal(range(cfg.max_k // C + 2))
        al_sub = Signal(range(ratio))
        al_row_addr = Signal(24)
        al_lin_addr = Signal(24)          # a_addr + row × a_stride, kept as a running sum
        al_phase = Signal(2)              # 0: read queue, 1: row address, 2: words
        al_word_addr = Signal(tiler.a_load.payload.addr.shape().width + 1)
        m.d.comb += al_word_addr.eq(al_tile_base + al_word * ratio + al_sub)
        token = Signal(len(tiler.out.payload.m))
        m.d.comb += [
            tiler.a_load.payload.bank.eq(al_bank),
            tiler.a_load.payload.addr.eq(al_word_addr),
            tiler.a_load.payload.value.eq(act_rd.data.as_value().word_select(
                al_sub, 8 * cfg.a_word_bytes) if ratio > 1 else act_rd.data.as_value()),
            lanes.queue_load.payload.addr.eq(al_row),
            lanes.queue_load.payload.value.eq(queue_rd.data),
        ]

        # ---- B-mover: ACT → B banks (values direct, keys transposed)
        bl = a.bload
        bm_row = Signal(range(4096 + C))
        bm_word = Signal(8)
        bm_byte = Signal(range(C + 1))
        bm_row_addr = Signal(24)
        bm_have = Signal()
        bm_waddr = Signal(24)        # direct: b_offset + word*rows + row
        bm_tbase = Signal(24)        # transposed: b_offset + (first token // C) * words * C
        # Transposed (keys): C tokens at a time — read their C words (one per token), then write
        # byte b of every token into bank (token mod C) at once: 2C cycles per C×C block.
        tp_buf = [Signal(data.ArrayLayout(unsigned(8), C), name=f"tp_buf_{j}") for j in range(C)]
        tp_write = Signal()          # block phase: 0 reading the tokens' words, 1 writing bytes
        tp_rd_addr = Signal(24)      # ACT address of the next token's word to read
        tp_have = Signal()           # a read was issued last cycle: its word is on act_rd.data
        tp_have_i = Signal(range(C))
        tp_left = Signal(13)         # tokens of the block still to come (mask of valid banks)
        m.d.comb += tp_left.eq(bl.rows - bm_row)
        mover_b = Signal()           # the B-mover writes this cycle (wins over the loader)
        bword = tiler.b_word.payload
        with m.If(mover_b):
            m.d.comb += tiler.b_word.valid.eq(1)
            with m.If(bl.transpose):
                m.d.comb += bword.addr.eq(bm_tbase + bm_word * C + bm_byte)
                for j in range(C):
                    m.d.comb += [bword.mask[j].eq(tp_left > j),
                                 bword.data[j].eq(tp_buf[j][bm_byte])]
            with m.Else():
                m.d.comb += [bword.addr.eq(bm_waddr), bword.mask.eq((1 << C) - 1)]
                for j in range(C):
                    m.d.comb += bword.data[j].eq(act_rd.data[j])
        with m.Else():
            m.d.comb += [tiler.b_word.valid.eq(self.b_wr.valid),
                         bword.addr.eq(self.b_wr.payload.addr), bword.mask.eq((1 << C) - 1),
                         bword.data.eq(self.b_wr.payload.data)]
        m.d.comb += self.b_wr.ready.eq(~mover_b)

        # ---- loader streams: constants, LayerNorm parameters, activations, residual rows
        m.d.comb += [lanes.const_load.valid.eq(self.const_wr.valid),
                     lanes.const_load.payload.addr.eq(self.const_wr.payload.addr),
                     lanes.const_load.payload.value.eq(self.const_wr.payload.value),
                     self.const_wr.ready.eq(lanes.const_load.ready),
                     ln.params.valid.eq(self.lnp_wr.valid),
                     ln.params.payload.addr.eq(self.lnp_wr.payload.addr),
                     self.lnp_wr.ready.eq(ln.params.ready)]
        for j in range(cfg.ln_lanes):
            m.d.comb += [ln.params.payload.gamma_beta.gamma[j].eq(self.lnp_wr.payload.gamma[j]),
                         ln.params.payload.gamma_beta.beta[j].eq(self.lnp_wr.payload.beta[j])]
        m.d.comb += ln.eps.eq(a.layernorm.eps)

        # ---- row generator (LayerNorm input, MoE commit/clear)
        rg_row = Signal(12)
        rg_tn = Signal(8)
        rg_rows = Mux(op == Op.LAYERNORM, a.layernorm.rows, a.lanes.rows)
        rg_row0 = Mux(op == Op.LAYERNORM, a.layernorm.row0, a.lanes.row0)
        rg_words = Mux(op == Op.LAYERNORM, a.layernorm.row_words, a.lanes.row_words)

        # ---- lanes input
        with m.Switch(lsrc):
            with m.Case(_Src.TILER):
                m.d.comb += [lanes.i.valid.eq(tiler.out.valid),
                             lanes.i.payload.m.eq(tiler.out.payload.m + mm.m_offset),
                             lanes.i.payload.tn.eq(tiler.out.payload.tn),
                             lanes.i.payload.acc.eq(tiler.out.payload.acc),
                             tiler.out.ready.eq(lanes.i.ready),
                             self.res_row.ready.eq(0)]
            with m.Case(_Src.ROWGEN):
                m.d.comb += [lanes.i.valid.eq(state == _S.ROWGEN),
                             lanes.i.payload.m.eq(rg_row0 + rg_row),
                             lanes.i.payload.tn.eq(rg_tn), self.res_row.ready.eq(0)]
            with m.Default():
                m.d.comb += [lanes.i.valid.eq(self.res_row.valid),
                             lanes.i.payload.m.eq(self.res_row.payload.m),
                             lanes.i.payload.tn.eq(self.res_row.payload.tn),
                             lanes.i.payload.acc.eq(self.res_row.payload.acc),
                             self.res_row.ready.eq(lanes.i.ready)]

        # ---- lanes output sinks
        out = lanes.out
        tiles_n = Signal(range(cfg.max_n // C + 2))
        m.d.comb += tiles_n.eq((mm.n + C - 1) // C)
        sw = self.words["score"] // cfg.max_tokens
        # Router serialiser
        r_e = Signal(range(E))
        r_final = Signal()
        # DDR store down-converter
        store_ratio = 2 * C // cfg.axi_bytes
        if 2 * C % cfg.axi_bytes:
            raise ValueError("2 × array_cols must be a multiple of the AXI word bytes")
        st_sub = Signal(range(max(2, store_ratio)))
        st_desc = Signal()
        st_left = Signal(32)
        # LayerNorm serialiser
        ln_ratio = C // cfg.ln_lanes
        ln_sub = Signal(range(max(2, ln_ratio)))
        packed = Cat(*(out.payload.values[j][:16] for j in range(C)))
        with m.Switch(sink):
            with m.Case(_Sink.ACT):
                m.d.comb += [out.ready.eq(1), act_wr.en.eq(out.valid),
                             act_wr.addr.eq(mm.d_addr + out.payload.m * mm.d_stride
                                            + out.payload.tn)]
                for j in range(C):
                    m.d.comb += act_wr.data[j].eq(out.payload.values[j][:8])
            with m.Case(_Sink.SCORE):
                m.d.comb += [out.ready.eq(1), score_wr.en.eq(out.valid),
                             score_wr.addr.eq(out.payload.m * sw + out.payload.tn),
                             score_wr.data.eq(out.payload.values)]
            with m.Case(_Sink.ROUTER):
                vals = [out.payload.values[e] for e in range(E)]
                sel = Signal(signed(32))
                with m.Switch(r_e):
                    for e in range(E):
                        with m.Case(e):
                            m.d.comb += sel.eq(vals[e])
                m.d.comb += [router.i.valid.eq(out.valid), router.i.payload.t.eq(sel),
                             router.i.payload.last.eq((out.payload.m == cmd.m - 1) &
                                                      (r_e == E - 1)),
                             out.ready.eq(router.i.ready & (r_e == E - 1))]
                with m.If(router.i.valid & router.i.ready):
                    m.d.sync += r_e.eq(Mux(r_e == E - 1, 0, r_e + 1))
            with m.Case(_Sink.DDR):
                m.d.comb += [writer.data.valid.eq(out.valid),
                             writer.data.payload.data.eq(
                                 packed.word_select(st_sub, 8 * cfg.axi_bytes)
                                 if store_ratio > 1 else packed),
                             writer.data.payload.keep.eq((1 << cfg.axi_bytes) - 1),
                             writer.data.payload.last.eq(st_left == 1),
                             out.ready.eq(writer.data.ready & (st_sub == store_ratio - 1))]
                with m.If(writer.data.valid & writer.data.ready):
                    m.d.sync += [st_sub.eq(Mux(st_sub == store_ratio - 1, 0, st_sub + 1)),
                                 st_left.eq(st_left - 1)]
            with m.Case(_Sink.LN):
                last_sub = ln_sub == ln_ratio - 1
                for j in range(cfg.ln_lanes):
                    vals = [out.payload.values[s * cfg.ln_lanes + j][:16] for s in range(ln_ratio)]
                    with m.Switch(ln_sub):
                        for s in range(ln_ratio):
                            with m.Case(s):
                                m.d.comb += ln.i.payload.r[j].eq(vals[s])
                m.d.comb += [ln.i.valid.eq(out.valid),
                             ln.i.payload.last.eq(last_sub &
                                                  (out.payload.tn == a.layernorm.row_words - 1)),
                             out.ready.eq(ln.i.ready & last_sub)]
                with m.If(ln.i.valid & ln.i.ready):
                    m.d.sync += ln_sub.eq(Mux(last_sub, 0, ln_sub + 1))
            with m.Default():
                m.d.comb += out.ready.eq(1)
        # Store descriptor: the whole result in emission order.
        m.d.comb += [writer.desc.payload.addr.eq(cmd.ddr_addr),
                     writer.desc.payload.length.eq(cmd.m * tiles_n * (2 * C))]

        # Router outputs: non-empty experts and the queue entries.
        ne_count = Signal.like(self.ne_count)
        qwr = Signal(range(self.words["queue"] + 1))
        m.d.comb += [router.experts_out.ready.eq(1), router.queue.ready.eq(1),
                     self.ne_count.eq(ne_count),
                     queue_wr.addr.eq(qwr), queue_wr.data.token.eq(router.queue.payload.token),
                     queue_wr.data.prob.eq(router.queue.payload.prob),
                     queue_wr.en.eq(router.queue.valid)]
        with m.If(router.queue.valid):
            m.d.sync += qwr.eq(qwr + 1)
            with m.If(router.queue.payload.final):
                m.d.sync += r_final.eq(1)
        with m.If(router.experts_out.valid):
            m.d.sync += ne_count.eq(ne_count + 1)
            for i in range(E):
                with m.If(ne_count == i):
                    m.d.sync += [self.ne_expert[i].eq(router.experts_out.payload.expert),
                                 self.ne_length[i].eq(router.experts_out.payload.length)]

        # ---- packer: LayerNorm / softmax bytes → ACT words
        pk_lanes = cfg.ln_lanes
        pk_word = Signal(data.ArrayLayout(unsigned(8), C))
        pk_pos = Signal(range(C + 1))
        pk_w = Signal(16)
        pk_row = Signal(12)
        pk_row_base = Signal(24)
        pk_valid = Signal()
        pk_last = Signal()
        pk_bytes = [Signal(8, name=f"pk_byte_{j}") for j in range(pk_lanes)]
        pk_n = Signal(range(pk_lanes + 1))
        use_ln = op == Op.LAYERNORM
        d_addr = Mux(use_ln, a.layernorm.d_addr, a.softmax.d_addr)
        d_stride = Mux(use_ln, a.layernorm.d_stride, a.softmax.d_stride)
        m.d.comb += [ln.o.ready.eq(1), sm.o.ready.eq(1)]
        with m.If(use_ln):
            m.d.comb += [pk_valid.eq(ln.o.valid), pk_last.eq(ln.o.payload.last),
                         pk_n.eq(pk_lanes)]
            m.d.comb += [pk_bytes[j].eq(ln.o.payload.y[j]) for j in range(pk_lanes)]
        with m.Else():
            m.d.comb += [pk_valid.eq(sm.o.valid), pk_last.eq(sm.o.payload.last), pk_n.eq(1),
                         pk_bytes[0].eq(sm.o.payload.p[0])]
        merged = Signal.like(pk_word)
        m.d.comb += merged.eq(pk_word)
        for j in range(C):
            for lane in range(pk_lanes):
                with m.If((pk_pos + lane == j) & (lane < pk_n)):
                    m.d.comb += merged[j].eq(pk_bytes[lane])
        pk_full = (pk_pos + pk_n >= C) | pk_last
        with m.If(pk_valid & ((state == _S.ROWGEN) | (state == _S.FEED) | (state == _S.FINISH))
                  & ((sink == _Sink.LN) | (op == Op.SOFTMAX))):
            m.d.sync += pk_word.eq(merged)
            with m.If(pk_full):
                m.d.comb += [act_wr.en.eq(1), act_wr.addr.eq(d_addr + pk_row_base + pk_w),
                             act_wr.data.eq(merged)]
                m.d.sync += [pk_pos.eq(0), pk_w.eq(pk_w + 1)]
                with m.If(pk_last):
                    m.d.sync += [pk_w.eq(0), pk_row.eq(pk_row + 1),
                                 pk_row_base.eq(pk_row_base + d_stride)]
            with m.Else():
                m.d.sync += pk_pos.eq(pk_pos + pk_n)

        # Loader → ACT (image loads)
        with m.If((op == Op.LOAD) & self.act_wr.valid):
            m.d.comb += [act_wr.en.eq(1), act_wr.addr.eq(self.act_wr.payload.addr),
                         act_wr.data.eq(self.act_wr.payload.data)]
        m.d.comb += self.act_wr.ready.eq(1)

        # ---- softmax feeder: SCORE rows → softmax
        sm_row = Signal(12)
        sm_word = Signal(8)
        sm_j = Signal(range(C))
        sm_base = Signal(24)
        sm_have = Signal()
        sm_col = Signal(12)
        m.d.comb += sm_col.eq(sm_word * C + sm_j)
        sel_score = Signal(signed(32))
        with m.Switch(sm_j):
            for j in range(C):
                with m.Case(j):
                    m.d.comb += sel_score.eq(score_rd.data[j])
        m.d.comb += [sm.i.payload.t[0].eq(sel_score),
                     sm.i.payload.last.eq(sm_col == a.softmax.length - 1)]

        # ---- the state machine
        pk_done = pk_row == Mux(use_ln, a.layernorm.rows, a.softmax.rows)
        with m.Switch(state):
            with m.Case(_S.IDLE):
                with m.If(accept):
                    m.d.sync += [
                        # A-loader
                        al_row.eq(0), al_bank.eq(0), al_tile_base.eq(0), al_word.eq(0),
                        al_sub.eq(0), al_phase.eq(0), al_lin_addr.eq(na.matmul.a_addr),
                        # B-mover
                        bm_row.eq(0), bm_word.eq(0), bm_byte.eq(0), bm_have.eq(0),
                        bm_row_addr.eq(na.bload.src), bm_tbase.eq(new.b_offset),
                        bm_waddr.eq(new.b_offset), tp_write.eq(0), tp_have.eq(0),
                        tp_rd_addr.eq(na.bload.src),
                        # row generator, packer, softmax feeder
                        rg_row.eq(0), rg_tn.eq(0), pk_pos.eq(0), pk_w.eq(0), pk_row.eq(0),
                        pk_row_base.eq(0), sm_row.eq(0), sm_word.eq(0), sm_j.eq(0),
                        sm_base.eq(0), sm_have.eq(0),
                        # sinks
                        r_e.eq(0), st_sub.eq(0), ln_sub.eq(0), st_desc.eq(0),
                        st_left.eq(new.m * ((na.matmul.n + C - 1) // C) * store_ratio),
                    ]
                    with m.If((new.instr.op == Op.MATMUL) & (na.matmul.dest == OutDest.ROUTER)):
                        m.d.sync += [r_final.eq(0), ne_count.eq(0), qwr.eq(0)]
            with m.Case(_S.ALOAD):
                with m.Switch(al_phase):
                    with m.Case(0):
                        m.d.comb += [queue_rd.addr.eq(cmd.qstart + al_row), queue_rd.en.eq(1)]
                        m.d.sync += al_phase.eq(1)
                    with m.Case(1):
                        m.d.comb += token.eq(Mux(mm.gather, queue_rd.data.token, al_row))
                        row_addr = Signal(24)
                        m.d.comb += row_addr.eq(Mux(mm.gather, mm.a_addr + token * mm.a_stride,
                                                    al_lin_addr))
                        m.d.sync += [al_row_addr.eq(row_addr), al_word.eq(0), al_sub.eq(0),
                                     al_phase.eq(2)]
                        m.d.comb += [act_rd.addr.eq(row_addr), act_rd.en.eq(1),
                                     lanes.queue_load.valid.eq(mm.gather)]
                    with m.Default():
                        m.d.comb += tiler.a_load.valid.eq(1)
                        last_sub = al_sub == ratio - 1
                        with m.If(~last_sub):
                            m.d.sync += al_sub.eq(al_sub + 1)
                        with m.Elif(al_word + 1 < kw):
                            m.d.sync += [al_sub.eq(0), al_word.eq(al_word + 1)]
                            m.d.comb += [act_rd.addr.eq(al_row_addr + al_word + 1),
                                         act_rd.en.eq(1)]
                        with m.Else():
                            m.d.sync += [al_row.eq(al_row + 1), al_phase.eq(0),
                                         al_lin_addr.eq(al_lin_addr + mm.a_stride)]
                            with m.If(al_bank == R - 1):
                                m.d.sync += [al_bank.eq(0),
                                             al_tile_base.eq(al_tile_base + kw * ratio)]
                            with m.Else():
                                m.d.sync += al_bank.eq(al_bank + 1)
                            with m.If(al_row + 1 == cmd.m):
                                m.d.sync += state.eq(_S.ISSUE)
            with m.Case(_S.ISSUE):
                m.d.comb += [tiler.cmd.valid.eq(1), tiler.cmd.payload.m.eq(cmd.m),
                             tiler.cmd.payload.k.eq(mm.k), tiler.cmd.payload.n.eq(mm.n),
                             tiler.cmd.payload.a_signed.eq(mm.a_signed),
                             tiler.cmd.payload.b_offset.eq(cmd.b_offset)]
                with m.If(tiler.cmd.ready):
                    m.d.sync += state.eq(_S.FINISH)
            with m.Case(_S.BMOVE):
                m.d.comb += self.mover_busy.eq(1)
                with m.If(bl.rows == 0):
                    m.d.sync += state.eq(_S.FINISH)
                with m.Elif(bl.transpose & ~tp_write):
                    with m.If(tp_have):
                        m.d.sync += Array(tp_buf)[tp_have_i].eq(act_rd.data)
                    reading = (bm_byte < C) & (bm_byte < tp_left)
                    with m.If(reading):
                        m.d.comb += [act_rd.addr.eq(tp_rd_addr + bm_word), act_rd.en.eq(1)]
                        m.d.sync += [tp_have.eq(1), tp_have_i.eq(bm_byte),
                                     bm_byte.eq(bm_byte + 1),
                                     tp_rd_addr.eq(tp_rd_addr + bl.stride)]
                    with m.Else():
                        m.d.sync += tp_have.eq(0)
                        with m.If(~tp_have):
                            m.d.sync += [tp_write.eq(1), bm_byte.eq(0)]
                with m.Elif(bl.transpose):
                    m.d.comb += mover_b.eq(1)
                    with m.If(bm_byte != C - 1):
                        m.d.sync += bm_byte.eq(bm_byte + 1)
                    with m.Else():
                        m.d.sync += [tp_write.eq(0), bm_byte.eq(0)]
                        with m.If(bm_word + 1 < bl.words):
                            m.d.sync += [bm_word.eq(bm_word + 1), tp_rd_addr.eq(bm_row_addr)]
                        with m.Else():
                            m.d.sync += [bm_word.eq(0), bm_row.eq(bm_row + C),
                                         bm_row_addr.eq(bm_row_addr + bl.stride * C),
                                         tp_rd_addr.eq(bm_row_addr + bl.stride * C),
                                         bm_tbase.eq(bm_tbase + bl.words * C)]
                            with m.If(tp_left <= C):
                                m.d.sync += state.eq(_S.FINISH)
                with m.Elif(~bm_have):
                    m.d.comb += [act_rd.addr.eq(bm_row_addr + bm_word), act_rd.en.eq(1)]
                    m.d.sync += bm_have.eq(1)
                with m.Else():
                    # direct (values): one token's word per cycle into all banks
                    m.d.comb += mover_b.eq(1)
                    m.d.sync += bm_have.eq(0)
                    with m.If(bm_word + 1 < bl.words):
                        m.d.sync += [bm_word.eq(bm_word + 1), bm_waddr.eq(bm_waddr + bl.rows)]
                    with m.Else():
                        # next token: its words restart at column 0
                        m.d.sync += [bm_word.eq(0), bm_row.eq(bm_row + 1),
                                     bm_row_addr.eq(bm_row_addr + bl.stride),
                                     bm_waddr.eq(cmd.b_offset + bm_row + 1)]
                        with m.If(bm_row + 1 == bl.rows):
                            m.d.sync += state.eq(_S.FINISH)
            with m.Case(_S.ROWGEN):
                with m.If(lanes.i.ready):
                    with m.If(rg_tn + 1 < rg_words):
                        m.d.sync += rg_tn.eq(rg_tn + 1)
                    with m.Else():
                        m.d.sync += [rg_tn.eq(0), rg_row.eq(rg_row + 1)]
                        with m.If(rg_row + 1 >= rg_rows):
                            m.d.sync += state.eq(_S.FINISH)
                with m.If((rg_rows == 0) | (rg_words == 0)):
                    m.d.comb += lanes.i.valid.eq(0)
                    m.d.sync += state.eq(_S.FINISH)
            with m.Case(_S.FEED):
                sa = a.softmax
                with m.If(~sm_have):
                    m.d.comb += [score_rd.addr.eq(sm_base + sm_word), score_rd.en.eq(1)]
                    m.d.sync += [sm_have.eq(1), sm_j.eq(0)]
                    with m.If((sa.rows == 0) | (sa.length == 0)):
                        m.d.sync += state.eq(_S.FINISH)
                with m.Else():
                    m.d.comb += sm.i.valid.eq(1)
                    with m.If(sm.i.ready):
                        with m.If(sm_col == sa.length - 1):
                            m.d.sync += [sm_have.eq(0), sm_word.eq(0), sm_row.eq(sm_row + 1),
                                         sm_base.eq(sm_base + sw)]
                            with m.If(sm_row + 1 == sa.rows):
                                m.d.sync += state.eq(_S.FINISH)
                        with m.Elif(sm_j == C - 1):
                            m.d.sync += [sm_have.eq(0), sm_word.eq(sm_word + 1)]
                        with m.Else():
                            m.d.sync += sm_j.eq(sm_j + 1)
            with m.Case(_S.FINISH):
                lanes_idle = ~lanes.busy & ~lanes.i.valid
                done = Signal()
                with m.Switch(op):
                    with m.Case(Op.MATMUL):
                        store_done = (sink != _Sink.DDR) | (st_desc & (st_left == 0) &
                                                            ~writer.busy)
                        route_done = (sink != _Sink.ROUTER) | r_final
                        m.d.comb += done.eq(~tiler.busy & ~tiler.out.valid & lanes_idle &
                                            store_done & route_done)
                    with m.Case(Op.LAYERNORM, Op.SOFTMAX):
                        m.d.comb += done.eq(pk_done & lanes_idle)
                    with m.Case(Op.LOAD):
                        m.d.comb += done.eq(~self.loader_busy & lanes_idle)
                    with m.Default():
                        m.d.comb += done.eq(lanes_idle)
                with m.If(done):
                    m.d.sync += state.eq(_S.IDLE)
        # The store descriptor goes out as soon as a DDR-bound matmul starts.
        m.d.comb += writer.desc.valid.eq((sink == _Sink.DDR) & (op == Op.MATMUL) &
                                         (state != _S.IDLE) & ~st_desc)
        with m.If(writer.desc.valid & writer.desc.ready):
            m.d.sync += st_desc.eq(1)

        m.d.comb += [self.busy.eq(state != _S.IDLE),
                     self.matmul_busy.eq(tiler.busy),
                     self.layernorm_busy.eq((state != _S.IDLE) & use_ln),
                     self.softmax_busy.eq((state != _S.IDLE) & (op == Op.SOFTMAX)),
                     self.router_busy.eq((state != _S.IDLE) & (sink == _Sink.ROUTER))]
        return m
