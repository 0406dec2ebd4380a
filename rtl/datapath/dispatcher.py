"""The dispatcher: decodes one compute instruction at a time and runs it on the engines.

On accepting an instruction it only latches it (a pipeline register: nothing downstream sees the
sequencer's decode logic); in the next cycle, DECODE, it sets the lanes' mode and the selectors
(lanes source, result sink, ACT ports) and starts the engines the instruction uses, with their
operands from that register; then it steps through the instruction's phases, each ending on an
engine's ``done``::

    MATMUL     ISSUE (A-operand loader and tiler command; the tiler starts each row tile as
               soon as its A rows are in) -> FINISH (array, lanes, sink)
    BLOAD      BMOVE (B-mover) -> FINISH
    LAYERNORM  ROWGEN (row generator -> lanes -> LayerNorm -> packer) -> FINISH (packer done)
    LANES      ROWGEN -> FINISH
    SOFTMAX    FEED (score feeder -> softmax -> transposing packer) -> FINISH (packer done)
    LOAD       FINISH (the loader's words reach ACT or the lanes) -> loader idle

and accepts the next instruction when FINISH sees everything drained.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import Aux, OutBits, lane_mode_layout
from rtl.array.tiler import command_layout
from rtl.config import AccelConfig
from rtl.control.isa import Dest, Op, OutDest, compute_cmd_layout
from rtl.datapath.a_loader import a_load_layout
from rtl.datapath.act_sink import act_sink_layout
from rtl.datapath.b_mover import b_move_layout
from rtl.datapath.ddr_store import store_layout
from rtl.datapath.lanes_input import LanesSource
from rtl.datapath.ln_sink import ln_sink_layout
from rtl.datapath.packer import pack_layout
from rtl.datapath.router_sink import router_sink_layout
from rtl.datapath.row_gen import row_gen_layout
from rtl.datapath.score_feeder import feed_layout

__all__ = ["Dispatcher", "Phase", "Sink", "ActReader", "ActWriter"]


class Sink(enum.Enum, shape=3):
    """Where the lanes' rows go (the sink demultiplexer's select)."""
    ACT = 0
    SCORE = 1
    ROUTER = 2
    DDR = 3
    LN = 4
    NONE = 5


class ActReader(enum.Enum, shape=1):
    ALOADER = 0
    BMOVER = 1


class ActWriter(enum.Enum, shape=2):
    SINK = 0
    PACKER = 1
    LOADER = 2


class Phase(enum.Enum, shape=3):
    """The dispatcher's phase of the instruction at hand."""
    IDLE = 0
    ISSUE = 1
    BMOVE = 2
    ROWGEN = 3
    FEED = 4
    FINISH = 5
    DECODE = 6


# The opcodes the dispatcher runs (any other compute command only passes through FINISH).
_DECODED = (Op.MATMUL, Op.LAYERNORM, Op.LANES, Op.LOAD, Op.BLOAD, Op.SOFTMAX)

_SINKS = ((OutDest.NONE, Sink.NONE), (OutDest.ACT, Sink.ACT), (OutDest.SCORE, Sink.SCORE),
          (OutDest.ROUTER, Sink.ROUTER), (OutDest.DDR, Sink.DDR))


class Dispatcher(wiring.Component):
    """Instruction decode and phase control of the compute datapath.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`rtl.control.isa.compute_cmd_layout`, accepted when idle
    mode : Out(lanes mode); lanes_src : Out(LanesSource); m_offset : Out(8)
    sink : Out(Sink); act_rd_sel : Out(ActReader); act_wr_sel : Out(ActWriter)
    aload, bmove, rowgen, feed, pack, act_sink, router_sink, ln_sink, store : Out(stream), the
        engines' commands (valid in the DECODE cycle; the DDR store's one cycle later, its
        length a registered product)
    route_start : Out(1), a routing begins; pack_enable : Out(1), the packer takes its input;
        pack_from_ln : Out(1), its input is LayerNorm's (else the softmax's)
    tiler : Out(stream) of the array's command
    bmove_done, rowgen_done, feed_done, pack_done, store_done, route_done : In(1)
    tiler_busy, tiler_out_valid, lanes_busy, lanes_in_valid, loader_busy : In(1)
    busy : Out(1); layernorm_busy, softmax_busy, router_busy, mover_busy : Out(1) (counters)
    op : Out(Op), phase : Out(Phase), pc : Out(16) — the instruction at hand (cycle causes)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        engines = {"aload": a_load_layout(cfg), "bmove": b_move_layout(cfg),
                   "rowgen": row_gen_layout(cfg), "feed": feed_layout(cfg),
                   "pack": pack_layout(cfg), "act_sink": act_sink_layout(cfg),
                   "router_sink": router_sink_layout(cfg), "ln_sink": ln_sink_layout(cfg),
                   "store": store_layout(cfg)}
        done = ("bmove_done", "rowgen_done", "feed_done", "pack_done",
                "store_done", "route_done", "tiler_busy", "tiler_out_valid", "lanes_busy",
                "lanes_in_valid", "loader_busy")
        super().__init__({
            "cmd": In(stream.Signature(compute_cmd_layout(cfg))),
            "mode": Out(lane_mode_layout(cfg.const_rows)),
            "lanes_src": Out(LanesSource), "m_offset": Out(8),
            "sink": Out(Sink), "act_rd_sel": Out(ActReader), "act_wr_sel": Out(ActWriter),
            **{name: Out(stream.Signature(layout)) for name, layout in engines.items()},
            "route_start": Out(1), "pack_enable": Out(1), "pack_from_ln": Out(1),
            "tiler": Out(stream.Signature(command_layout(cfg.max_tokens, cfg.max_k, cfg.max_n,
                                                         cfg.b_words))),
            **{name: In(1) for name in done},
            "busy": Out(1), "layernorm_busy": Out(1), "softmax_busy": Out(1),
            "router_busy": Out(1), "mover_busy": Out(1),
            "op": Out(Op), "phase": Out(Phase), "pc": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        state = Signal(Phase)
        cmd = Signal.like(self.cmd.payload)
        op = cmd.instr.op
        mm = cmd.instr.args.matmul
        sink = Signal(Sink, init=Sink.NONE)
        mode = Signal.like(self.mode)
        lsrc = Signal(LanesSource)
        # ACT's port selectors: registered with the command (decoded from the incoming opcode),
        # so no decode lies in front of ACT's address multiplexers.
        rd_sel = Signal(ActReader, init=ActReader.ALOADER)
        wr_sel = Signal(ActWriter, init=ActWriter.SINK)
        # The packers' enable likewise: set with the command, cleared when the instruction
        # ends, so no opcode compare lies in front of their ready (their input selector is
        # ``is_op[Op.LAYERNORM]``).
        pack_en = Signal()
        # The opcode decoded one-hot with the command (and a MATMUL's emptiness): DECODE starts
        # the engines from these registers, not from a compare on the opcode field.
        is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in _DECODED}
        mm_empty = Signal(name="mm_empty")
        m.d.comb += [self.cmd.ready.eq(state == Phase.IDLE), self.mode.eq(mode),
                     self.lanes_src.eq(lsrc), self.m_offset.eq(mm.m_offset), self.sink.eq(sink),
                     self.act_rd_sel.eq(rd_sel), self.act_wr_sel.eq(wr_sel)]
        with m.If(self.cmd.valid & (state == Phase.IDLE)):
            new_op = self.cmd.payload.instr.op
            new_mm = self.cmd.payload.instr.args.matmul
            m.d.sync += [cmd.eq(self.cmd.payload), state.eq(Phase.DECODE),
                         pack_en.eq((new_op == Op.LAYERNORM) | (new_op == Op.SOFTMAX)),
                         *(f.eq(new_op == o) for o, f in is_op.items()),
                         mm_empty.eq((self.cmd.payload.m == 0) | (new_mm.k == 0)
                                     | (new_mm.n == 0)),
                         rd_sel.eq(Mux(new_op == Op.BLOAD, ActReader.BMOVER, ActReader.ALOADER)),
                         wr_sel.eq(Mux(new_op == Op.LOAD, ActWriter.LOADER,
                                       Mux((new_op == Op.LAYERNORM) | (new_op == Op.SOFTMAX),
                                           ActWriter.PACKER, ActWriter.SINK)))]
        go = Signal(name="store_go")
        store = (go, Signal.like(self.store.payload.length, name="store_length"),
                 Signal.like(self.store.payload.beats, name="store_beats"))
        with m.If(state == Phase.DECODE):
            self._accept(m, cmd, is_op, mm_empty, state, mode, sink, lsrc, store)
        self._phases(m, state, cmd, is_op, sink, go, pack_en)
        with m.If(go):
            m.d.sync += go.eq(0)
            self._start(m, self.store, ddr_addr=cmd.ddr_addr, length=store[1], beats=store[2])
        active = state != Phase.IDLE
        m.d.comb += [self.busy.eq(active),
                     self.pack_enable.eq(pack_en), self.pack_from_ln.eq(is_op[Op.LAYERNORM]),
                     self.layernorm_busy.eq(active & is_op[Op.LAYERNORM]),
                     self.softmax_busy.eq(active & is_op[Op.SOFTMAX]),
                     self.router_busy.eq(active & (state != Phase.DECODE)
                                         & (sink == Sink.ROUTER)),
                     self.mover_busy.eq(state == Phase.BMOVE),
                     self.op.eq(op), self.phase.eq(state), self.pc.eq(cmd.pc)]
        return m

    def _accept(self, m, new, is_op, mm_empty, state, mode, sink, lsrc, store):
        """Decode ``new`` (its opcode one-hot in ``is_op``): lanes mode, selectors, first
        phase, engine commands."""
        na = new.instr.args
        with m.If(is_op[Op.MATMUL]):
            nm = na.matmul
            m.d.sync += [mode.const_base.eq(new.const_base), mode.out_bits.eq(nm.out_bits),
                         mode.gelu.eq(nm.gelu), mode.act_mult.eq(nm.act_mult),
                         mode.act_shift.eq(nm.act_shift), mode.residual.eq(nm.residual),
                         mode.scatter.eq(nm.scatter), mode.aux.eq(Aux.NONE),
                         lsrc.eq(LanesSource.TILER)]
            with m.Switch(nm.dest):
                for od, sk in _SINKS:
                    with m.Case(od):
                        m.d.sync += sink.eq(sk)
            m.d.sync += state.eq(Mux(mm_empty, Phase.FINISH, Phase.ISSUE))
            self._start_matmul(m, new, mm_empty, store)
        with m.Elif(is_op[Op.LAYERNORM]):
            ln = na.layernorm
            self._start_rows(m, ln, Aux.RES_READ, Sink.LN, state, mode, sink, lsrc)
            self._start(m, self.pack, d_addr=ln.d_addr, d_stride=ln.d_stride, rows=ln.rows)
            self._start(m, self.ln_sink, row_words=ln.row_words, eps=ln.eps)
        with m.Elif(is_op[Op.LANES]):
            la = na.lanes
            self._start_rows(m, la, la.aux, Sink.NONE, state, mode, sink, lsrc)
        with m.Elif(is_op[Op.LOAD]):
            ld = na.load
            m.d.sync += [mode.residual.eq(0), mode.scatter.eq(0), mode.gelu.eq(0),
                         mode.const_base.eq(ld.const_row), mode.out_bits.eq(OutBits.INT16),
                         mode.aux.eq(Mux(ld.dest == Dest.RES, Aux.RES_SET, Aux.NONE)),
                         lsrc.eq(LanesSource.LOADER), sink.eq(Sink.NONE),
                         state.eq(Phase.FINISH)]
        with m.Elif(is_op[Op.BLOAD]):
            bl = na.bload
            m.d.sync += state.eq(Phase.BMOVE)
            self._start(m, self.bmove, src=bl.src, stride=bl.stride, rows=bl.rows,
                        words=bl.words, transpose=bl.transpose, b_offset=new.b_offset)
        with m.Elif(is_op[Op.SOFTMAX]):
            sm = na.softmax
            m.d.sync += state.eq(Phase.FEED)
            self._start(m, self.feed, rows=sm.rows, length=sm.length)
            self._start(m, self.pack, d_addr=sm.d_addr, d_stride=sm.d_stride,
                        rows=Mux(sm.length == 0, 0, sm.rows))   # no keys: nothing to write
        with m.Else():
            m.d.sync += state.eq(Phase.FINISH)

    def _start_rows(self, m, args, aux, to, state, mode, sink, lsrc):
        """LAYERNORM and LANES: the row generator feeds the lanes (``aux`` on the state
        memories, no matrix arithmetic) and their rows go to ``to``."""
        m.d.sync += [mode.residual.eq(0), mode.scatter.eq(0), mode.gelu.eq(0), mode.aux.eq(aux),
                     lsrc.eq(LanesSource.ROWGEN), sink.eq(to), state.eq(Phase.ROWGEN)]
        self._start(m, self.rowgen, row0=args.row0, rows=args.rows, row_words=args.row_words)

    def _start_matmul(self, m, new, empty, store):
        """The engines of a MATMUL; ``store`` = (go, length, beats), the DDR store's command
        registered for the next cycle."""
        C = self.cfg.array_cols
        nm = new.instr.args.matmul
        with m.If(~empty):
            self._start(m, self.aload, m=new.m, k=nm.k, a_addr=nm.a_addr, a_stride=nm.a_stride,
                        gather=nm.gather, qstart=new.qstart)
        self._start(m, self.act_sink, d_addr=nm.d_addr, d_stride=nm.d_stride)
        self._start(m, self.router_sink, m=new.m)
        # The store starts one cycle later, from registers: the products stay off the
        # engines' command paths (its first row leaves the array many cycles later).
        tiles_n = (nm.n + C - 1) // C
        go, length, beats = store
        m.d.sync += [go.eq(nm.dest == OutDest.DDR), length.eq(new.m * tiles_n * (2 * C)),
                     beats.eq(new.m * tiles_n * self.cfg.store_ratio)]
        with m.If(nm.dest == OutDest.ROUTER):
            m.d.comb += self.route_start.eq(1)

    @staticmethod
    def _start(module, port, **fields):
        module.d.comb += port.valid.eq(1)
        module.d.comb += [getattr(port.payload, k).eq(v) for k, v in fields.items()]

    def _phases(self, m, state, cmd, is_op, sink, store_go, pack_en):
        mm = cmd.instr.args.matmul
        with m.Switch(state):
            with m.Case(Phase.ISSUE):
                t = self.tiler
                m.d.comb += [t.valid.eq(1), t.payload.m.eq(cmd.m), t.payload.k.eq(mm.k),
                             t.payload.n.eq(mm.n), t.payload.a_signed.eq(mm.a_signed),
                             t.payload.b_offset.eq(cmd.b_offset)]
                with m.If(t.ready):
                    m.d.sync += state.eq(Phase.FINISH)
            with m.Case(Phase.BMOVE):
                with m.If(self.bmove_done):
                    m.d.sync += state.eq(Phase.FINISH)
            with m.Case(Phase.ROWGEN):
                with m.If(self.rowgen_done):
                    m.d.sync += state.eq(Phase.FINISH)
            with m.Case(Phase.FEED):
                with m.If(self.feed_done):
                    m.d.sync += state.eq(Phase.FINISH)
            with m.Case(Phase.FINISH):
                with m.If(self._drained(is_op, sink) & ~store_go):
                    m.d.sync += [state.eq(Phase.IDLE), pack_en.eq(0)]

    def _drained(self, is_op, sink):
        """The instruction's last effects are done (FINISH may end)."""
        lanes_idle = ~self.lanes_busy & ~self.lanes_in_valid
        matmul = (~self.tiler_busy & ~self.tiler_out_valid & lanes_idle
                  & ((sink != Sink.DDR) | self.store_done)
                  & ((sink != Sink.ROUTER) | self.route_done))
        return Mux(is_op[Op.MATMUL], matmul,
                   Mux(is_op[Op.LAYERNORM] | is_op[Op.SOFTMAX], self.pack_done & lanes_idle,
                       Mux(is_op[Op.LOAD], ~self.loader_busy & lanes_idle, lanes_idle)))
