"""The compute datapath: the array with its lanes, LayerNorm, softmax, router, the on-chip
activation / score / queue memories and the engines that move data between them.

It executes one compute instruction at a time (:mod:`rtl.control.isa`; operands were resolved by
the sequencer): the :class:`~rtl.datapath.dispatcher.Dispatcher` decodes it and starts the
engines; this module only instantiates and connects them::

    ACT ──ALoader (expert gather)──> A banks ──┐
    ACT ──BMover (direct/transposed)──┐        │
    loader B words ──PriorityMerge────┴> B banks
                                               v
    loader RES rows ──┐   RowGen ──┐        tiler (R×C)
                      └──LanesInput┴────────────┘
                             v
                           lanes (residual / MoE accumulator inside)
                             │  StreamDemux by the instruction's sink
       ┌─────────┬──────────┼───────────┬────────────┐
    ActSink   ScoreSink  RouterSink   DdrStore      LnSink
       │          │          │        (AXI writes)    │
      ACT       SCORE      router ──RouterCapture── QUEUE, expert list
                  │                                   LayerNorm ──┐
           ScoreFeeder ── softmax ── TransposePacker ──> ACT  Packer <─┘ ──> ACT

ACT, SCORE and QUEUE are :class:`~rtl.datapath.scratchpad.Scratchpad`\\ s: each port has one
owner, or a selector the dispatcher sets per instruction.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.array.lanes import VectorLanes, lane_out_layout
from rtl.array.tiler import TiledMatmul
from rtl.bus.axi import axi4_from_config
from rtl.bus.loader import load_port_signatures
from rtl.config import AccelConfig
from rtl.control.causes import Cause
from rtl.control.isa import compute_cmd_layout
from rtl.datapath.a_loader import ALoader, queue_entry_layout
from rtl.datapath.act_sink import ActSink
from rtl.datapath.attribution import CauseEncoder
from rtl.datapath.b_mover import BMover, b_word_layout
from rtl.datapath.ddr_store import DdrStore
from rtl.datapath.dispatcher import Dispatcher, Sink
from rtl.datapath.lanes_input import LanesInput
from rtl.datapath.ln_sink import LnSink
from rtl.datapath.packer import Packer
from rtl.datapath.router_capture import RouterCapture
from rtl.datapath.router_sink import RouterSink
from rtl.datapath.row_gen import RowGen
from rtl.datapath.score_feeder import ScoreFeeder, score_word_layout
from rtl.datapath.score_sink import ScoreSink
from rtl.datapath.transpose_packer import TransposePacker
from rtl.datapath.scratchpad import Scratchpad
from rtl.datapath.streams import PriorityMerge, StreamDemux
from rtl.units.layernorm import LayerNorm
from rtl.units.router import Router
from rtl.units.softmax import Softmax

__all__ = ["Compute"]


class Compute(wiring.Component):
    """Everything that computes, behind one command stream.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`rtl.control.isa.compute_cmd_layout`, accepted when idle
    b_wr, act_wr, const_wr, lnp_wr, res_row : In(stream) from :class:`rtl.bus.loader.Loader`
        (:func:`rtl.bus.loader.load_port_signatures`)
    loader_busy : In(1)
    axi : Out(AXI4 manager) — the output store (write channels only)
    busy : Out(1)
    ne_count, ne_expert, ne_length : Out — the last routing's non-empty experts
    write_error, unit_error : Out(1) (sticky until reset)
    matmul_busy, layernorm_busy, softmax_busy, router_busy, mover_busy : Out(1), for counters
    cause : Out(Cause), this cycle's cause (:mod:`rtl.datapath.attribution`; NONE when idle)
    macs : Out, the array's useful MACs this cycle; pc : Out(16), the instruction at hand
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C, R = cfg.array_cols, cfg.array_rows
        self.tiler = TiledMatmul(R, C, cfg.max_tokens, cfg.max_k, cfg.max_n, cfg.acc_width,
                                 b_depth=cfg.b_words, a_word_bytes=cfg.a_word_bytes, a_align=C)
        self.lanes = VectorLanes(C, cfg.max_tokens, cfg.res_tiles, cfg.const_rows,
                                 cfg.max_tokens, m_width=cfg.token_bits, tn_width=cfg.tn_bits,
                                 acc_width=cfg.acc_width)
        self.layernorm = LayerNorm(cfg.max_dim, lanes=cfg.ln_lanes, gamma_frac=ops.LN_GAMMA_FRAC,
                                   banks=cfg.ln_banks, scalar_stages=cfg.ln_scalar_stages)
        self.softmax = Softmax(max_len=cfg.max_tokens, lanes=cfg.softmax_lanes, out_frac=8,
                               out_bits=8, in_width=32)
        self.router = Router(cfg.experts, cfg.top_k, cfg.max_tokens, in_width=32)
        self.act = Scratchpad(cfg, data.ArrayLayout(unsigned(8), C), cfg.act_words,
                              readers=("aload", "bmove"), writers=("sink", "packer", "loader"))
        self.score = Scratchpad(cfg, score_word_layout(cfg), cfg.max_tokens * cfg.score_row_words,
                                readers=("feed",), writers=("sink",))
        self.queue = Scratchpad(cfg, queue_entry_layout(cfg), cfg.max_tokens * cfg.top_k,
                                readers=("aload",), writers=("router",))
        for mem in (self.lanes.residual, self.lanes.moe_acc, self.lanes.constants):
            cfg.mark_memory(mem)
        self.engines = {
            "dispatch": Dispatcher(cfg), "aloader": ALoader(cfg), "bmover": BMover(cfg),
            "rowgen": RowGen(cfg), "feeder": ScoreFeeder(cfg),
            "packer": Packer(cfg, lanes=cfg.ln_lanes), "tpacker": TransposePacker(cfg),
            "act_sink": ActSink(cfg),
            "score_sink": ScoreSink(cfg), "router_sink": RouterSink(cfg),
            "store": DdrStore(cfg), "ln_sink": LnSink(cfg), "capture": RouterCapture(cfg),
            "lanes_in": LanesInput(cfg),
            "sinks": StreamDemux(lane_out_layout(C, cfg.token_bits, cfg.tn_bits), 5),
            "b_merge": PriorityMerge(b_word_layout(cfg)),
            "causes": CauseEncoder(),
        }
        E = cfg.experts
        capture = self.engines["capture"].signature.members
        super().__init__({
            "cmd": In(stream.Signature(compute_cmd_layout(cfg))),
            **{name: In(sig) for name, sig in load_port_signatures(cfg).items()},
            "loader_busy": In(1),
            "axi": Out(axi4_from_config(cfg)),
            "busy": Out(1),
            "ne_count": Out(range(E + 1)),
            "ne_expert": Out(capture["ne_expert"].shape),
            "ne_length": Out(capture["ne_length"].shape),
            "write_error": Out(1), "unit_error": Out(1),
            "matmul_busy": Out(1), "layernorm_busy": Out(1), "softmax_busy": Out(1),
            "router_busy": Out(1), "mover_busy": Out(1),
            "cause": Out(Cause), "macs": Out(range(R * C + 1)), "pc": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        e = self.engines
        for name in ("tiler", "lanes", "layernorm", "softmax", "router", "act", "score",
                     "queue"):
            m.submodules[name] = getattr(self, name)
        for name, engine in e.items():
            m.submodules[name] = engine
        self._control(m, e["dispatch"])
        self._operands(m, e)
        self._lanes(m, e)
        self._sinks(m, e)
        self._units(m, e)
        self._cause(m, e)
        return m

    def _cause(self, m, e):
        """This cycle's cause, for the counters and the cycle-cause trace."""
        d, enc, t, lanes = e["dispatch"], e["causes"], self.tiler, self.lanes
        m.d.comb += [enc.busy.eq(d.busy), enc.op.eq(d.op), enc.phase.eq(d.phase),
                     enc.sink.eq(d.sink), enc.tiler_busy.eq(t.busy), enc.k_step.eq(t.k_step),
                     enc.period_pad.eq(t.period_pad), enc.stalled.eq(t.stalled),
                     enc.a_wait.eq(t.a_wait),
                     enc.lanes_busy.eq(lanes.busy | lanes.i.valid),
                     enc.lanes_held.eq(lanes.held),
                     self.cause.eq(enc.cause), self.macs.eq(t.macs), self.pc.eq(d.pc)]

    def _control(self, m, d):
        """Instructions in, the dispatcher's status out."""
        wiring.connect(m, wiring.flipped(self.cmd), d.cmd)
        wiring.connect(m, d.tiler, self.tiler.cmd)
        m.d.comb += [
            self.lanes.mode.eq(d.mode), self.busy.eq(d.busy),
            d.tiler_busy.eq(self.tiler.busy), d.tiler_out_valid.eq(self.tiler.out.valid),
            d.lanes_busy.eq(self.lanes.busy | self.engines["act_sink"].busy),
            d.lanes_in_valid.eq(self.lanes.i.valid),
            d.loader_busy.eq(self.loader_busy),
            self.act.rd_sel.eq(d.act_rd_sel), self.act.wr_sel.eq(d.act_wr_sel),
            self.matmul_busy.eq(self.tiler.busy),
            *[getattr(self, f"{u}_busy").eq(getattr(d, f"{u}_busy"))
              for u in ("layernorm", "softmax", "router", "mover")],
        ]

    def _operands(self, m, e):
        """A operand: ACT (or the expert queue) → A banks; B: the B-mover or the loader."""
        d, al, bm, merge = e["dispatch"], e["aloader"], e["bmover"], e["b_merge"]
        wiring.connect(m, d.aload, al.cmd)
        wiring.connect(m, d.bmove, bm.cmd)
        wiring.connect(m, al.act, self.act.rd_aload)
        wiring.connect(m, al.queue, self.queue.rd_aload)
        wiring.connect(m, bm.act, self.act.rd_bmove)
        wiring.connect(m, al.a_load, self.tiler.a_load)
        wiring.connect(m, al.queue_load, self.lanes.queue_load)
        m.d.comb += [d.bmove_done.eq(bm.done), self.tiler.a_rows.eq(al.rows),
                     self.tiler.a_gated.eq(1)]
        wiring.connect(m, bm.b_word, merge.hi)
        b_wr = self.b_wr
        m.d.comb += [merge.lo.valid.eq(b_wr.valid), b_wr.ready.eq(merge.lo.ready),
                     merge.lo.payload.addr.eq(b_wr.payload.addr),
                     merge.lo.payload.mask.eq((1 << self.cfg.array_cols) - 1),
                     merge.lo.payload.data.eq(b_wr.payload.data)]
        wiring.connect(m, merge.o, self.tiler.b_word)
        m.d.comb += self.tiler.b_load.valid.eq(0)

    def _lanes(self, m, e):
        """Lanes input (array rows, generated rows or loaded residual rows), lane constants."""
        d, li, rg = e["dispatch"], e["lanes_in"], e["rowgen"]
        wiring.connect(m, d.rowgen, rg.cmd)
        m.d.comb += [li.sel.eq(d.lanes_src), li.m_offset.eq(d.m_offset),
                     d.rowgen_done.eq(rg.done)]
        wiring.connect(m, self.tiler.out, li.tiler)
        wiring.connect(m, rg.o, li.rows)
        wiring.connect(m, wiring.flipped(self.res_row), li.loader)
        wiring.connect(m, li.o, self.lanes.i)
        c = self.const_wr
        m.d.comb += [self.lanes.const_load.valid.eq(c.valid), c.ready.eq(self.lanes.const_load.ready),
                     self.lanes.const_load.payload.addr.eq(c.payload.addr),
                     self.lanes.const_load.payload.value.eq(c.payload.value)]

    def _sinks(self, m, e):
        """The lanes' rows to the instruction's sink."""
        d, dm = e["dispatch"], e["sinks"]
        wiring.connect(m, self.lanes.out, dm.i)
        m.d.comb += dm.sel.eq(d.sink)
        for k, name in ((Sink.ACT, "act_sink"), (Sink.SCORE, "score_sink"),
                        (Sink.ROUTER, "router_sink"), (Sink.DDR, "store"), (Sink.LN, "ln_sink")):
            wiring.connect(m, dm.o[k.value], e[name].i)
        for name in ("act_sink", "router_sink", "ln_sink", "store"):
            wiring.connect(m, getattr(d, name), e[name].cmd)
        wiring.connect(m, e["act_sink"].act, self.act.wr_sink)
        wiring.connect(m, e["score_sink"].score, self.score.wr_sink)
        wiring.connect(m, e["router_sink"].o, self.router.i)
        wiring.connect(m, e["ln_sink"].o, self.layernorm.i)
        wiring.connect(m, e["store"].axi, wiring.flipped(self.axi))
        m.d.comb += [d.store_done.eq(e["store"].done), self.write_error.eq(e["store"].error)]
        act_wr = self.act_wr
        m.d.comb += [self.act.wr_loader.en.eq(act_wr.valid),
                     self.act.wr_loader.addr.eq(act_wr.payload.addr),
                     self.act.wr_loader.data.eq(act_wr.payload.data), act_wr.ready.eq(1)]

    def _units(self, m, e):
        """Router capture, LayerNorm parameters, the softmax's feeder and transposing packer,
        LayerNorm's byte packer."""
        cfg = self.cfg
        d, cap, fd, pk = e["dispatch"], e["capture"], e["feeder"], e["packer"]
        ln, sm, router = self.layernorm, self.softmax, self.router
        wiring.connect(m, router.queue, cap.queue_in)
        wiring.connect(m, router.experts_out, cap.experts_in)
        wiring.connect(m, cap.queue, self.queue.wr_router)
        m.d.comb += [cap.start.eq(d.route_start), d.route_done.eq(cap.done),
                     self.ne_count.eq(cap.ne_count), self.ne_expert.eq(cap.ne_expert),
                     self.ne_length.eq(cap.ne_length),
                     self.unit_error.eq(ln.overflow | sm.overflow | router.error)]
        p = self.lnp_wr
        m.d.comb += [ln.params.valid.eq(p.valid), p.ready.eq(ln.params.ready),
                     ln.params.payload.addr.eq(p.payload.addr), ln.eps.eq(e["ln_sink"].eps)]
        for j in range(cfg.ln_lanes):
            m.d.comb += [ln.params.payload.gamma_beta.gamma[j].eq(p.payload.gamma[j]),
                         ln.params.payload.gamma_beta.beta[j].eq(p.payload.beta[j])]
        wiring.connect(m, d.feed, fd.cmd)
        wiring.connect(m, fd.score, self.score.rd_feed)
        wiring.connect(m, fd.o, sm.i)
        m.d.comb += d.feed_done.eq(fd.done)
        tp, from_ln = e["tpacker"], d.pack_from_ln
        for packer in (pk, tp):            # both take the command; the op picks the one in use
            m.d.comb += [packer.cmd.valid.eq(d.pack.valid),
                         packer.cmd.payload.eq(d.pack.payload)]
        m.d.comb += d.pack.ready.eq(1)
        wiring.connect(m, sm.o, tp.i)
        wr = self.act.wr_packer
        for f in ("en", "addr", "data"):
            m.d.comb += getattr(wr, f).eq(Mux(from_ln, getattr(pk.act, f), getattr(tp.act, f)))
        m.d.comb += [pk.enable.eq(d.pack_enable & from_ln),
                     tp.enable.eq(d.pack_enable & ~from_ln),
                     d.pack_done.eq(Mux(from_ln, pk.done, tp.done)), ln.o.ready.eq(1)]
        i = pk.i                           # LayerNorm's ``ln_lanes`` bytes a beat
        m.d.comb += [i.valid.eq(ln.o.valid), i.payload.last.eq(ln.o.payload.last),
                     i.payload.n.eq(cfg.ln_lanes)]
        m.d.comb += [i.payload.bytes[j].eq(ln.o.payload.y[j]) for j in range(cfg.ln_lanes)]
