"""The sequencer: fetches the layer program into its instruction memory, then decodes and issues
instructions in order to the load engine and the compute datapath, runs the expert loop over the
router's non-empty experts, and stops with an error code instead of hanging on anything bad."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig
from rtl.control.isa import INSTR_BITS, MAX_TASKS, Base, Dest, Op, OutDest, instr_layout
from rtl.bus.loader import LoadTarget

__all__ = ["Sequencer", "ErrorCode", "compute_cmd_layout"]


class ErrorCode(enum.Enum, shape=8):
    """STATUS.error_code values (documented in :data:`rtl.control.registers.ERROR_CODES`)."""
    NONE = 0
    DMA_READ = 1
    DMA_WRITE = 2
    MALFORMED = 3
    PROGRAM_SIZE = 4
    BAD_TASK = 5
    START_WHILE_BUSY = 6
    ONCHIP_RANGE = 7
    UNIT_OVERFLOW = 8


def compute_cmd_layout(cfg: AccelConfig) -> data.StructLayout:
    """An instruction for the compute datapath with its run-time operands resolved."""
    return data.StructLayout({
        "instr": instr_layout(),
        "m": unsigned(12),            # rows (MATMUL: the expert's queue length when m_from_queue)
        "qstart": unsigned(16),       # first queue entry of the current expert
        "b_offset": unsigned(20),     # parity applied
        "const_base": unsigned(16),   # parity applied
        "ddr_addr": unsigned(cfg.axi_addr_width),
    })


class _S(enum.Enum, shape=3):
    IDLE = 0
    FETCH = 1
    READ = 2
    DECODE = 3
    ISSUE = 4
    DRAIN = 5


class Sequencer(wiring.Component):
    """Program fetch, decode, issue, expert loop, error handling.

    Parameters
    ----------
    cfg : AccelConfig
    depths : dict
        Words of each on-chip memory, for the range checks (keys ``"act"``, ``"b"``, ``"const"``,
        ``"lnp"``, ``"score_rows"``).

    Attributes
    ----------
    start : In(1) pulse (CONTROL.start)
    program_base, data_base, input_base, output_base : In(addr), program_len, task : In
    busy : Out(1); done, error : Out(1) one-cycle pulses; error_code : Out(ErrorCode) (held)
    load : Out(stream) to :class:`rtl.bus.loader.Loader` ``cmd``
    imem_wr : In(stream) from the loader (program words)
    compute : Out(stream) of :func:`compute_cmd_layout`
    compute_busy, loader_busy, loader_error, unit_error, write_error : In(1)
    ne_count, ne_expert, ne_length : In — the router's non-empty experts (ascending)
    stall : Out(1) — waiting for the load engine while the compute datapath is idle
    trace : Out(stream) of the issued instruction's ``pc`` (always ready; for simulation reports)
    """

    def __init__(self, cfg: AccelConfig, depths: dict[str, int]):
        self.cfg = cfg
        self.depths = depths
        self.imem = memory.Memory(shape=unsigned(INSTR_BITS), depth=cfg.imem_words, init=[])
        self.b_half = cfg.weight_buffer_bytes // cfg.array_cols
        self.const_half = cfg.const_words // 2
        aw = cfg.axi_addr_width
        E = cfg.experts
        ew = max(1, (E - 1).bit_length())
        lw = max(1, cfg.max_tokens.bit_length())
        super().__init__({
            "start": In(1),
            "program_base": In(aw), "program_len": In(16), "data_base": In(aw),
            "input_base": In(aw), "output_base": In(aw), "task": In(8),
            "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(ErrorCode),
            "load": Out(stream.Signature(data.StructLayout({
                "dest": unsigned(3), "addr": unsigned(20), "words": unsigned(20),
                "row_words": unsigned(8), "ddr_addr": unsigned(aw)}))),
            "imem_wr": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, (cfg.imem_words - 1).bit_length())),
                "data": unsigned(INSTR_BITS)}))),
            "compute": Out(stream.Signature(compute_cmd_layout(cfg))),
            "compute_busy": In(1), "loader_busy": In(1), "loader_error": In(1),
            "write_error": In(1), "unit_error": In(1),
            "ne_count": In(range(E + 1)),
            "ne_expert": In(data.ArrayLayout(unsigned(ew), E)),
            "ne_length": In(data.ArrayLayout(unsigned(lw), E)),
            "stall": Out(1),
            "trace": Out(stream.Signature(unsigned(16))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C = cfg.array_cols
        m.submodules.imem = self.imem
        wr = self.imem.write_port()
        m.d.comb += [self.imem_wr.ready.eq(1), wr.addr.eq(self.imem_wr.payload.addr),
                     wr.data.eq(self.imem_wr.payload.data), wr.en.eq(self.imem_wr.valid)]
        rd = self.imem.read_port(transparent_for=())

        state = Signal(_S)
        pc = Signal(16)
        plen = Signal(16)
        task = Signal(8)
        instr = Signal(instr_layout())
        code = Signal(ErrorCode)
        fetch_sent = Signal()
        bases = Array([Signal(cfg.axi_addr_width, name=f"base_{b.name.lower()}") for b in Base])
        # expert loop
        E = cfg.experts
        loop_i = Signal(range(E + 1))
        qstart = Signal(16)
        parity = Signal()
        ne_expert = Array(self.ne_expert[i] for i in range(E))
        ne_length = Array(self.ne_length[i] for i in range(E))
        has_next = Signal()
        cur_e = Signal(range(E))
        next_e = Signal(range(E))
        m.d.comb += [has_next.eq(loop_i + 1 < self.ne_count),
                     cur_e.eq(ne_expert[loop_i[:max(1, (E - 1).bit_length())]]),
                     next_e.eq(ne_expert[(loop_i + 1)[:max(1, (E - 1).bit_length())]])]

        m.d.comb += [self.busy.eq(state != _S.IDLE), self.error_code.eq(code),
                     rd.addr.eq(pc), rd.en.eq(state == _S.READ)]
        m.d.comb += [self.trace.payload.eq(pc)]

        def fail(reason):
            m.d.sync += [code.eq(reason), state.eq(_S.DRAIN)]

        a = instr.args
        op = instr.op
        idle_all = ~self.compute_busy & ~self.loader_busy & ~self.compute.valid & ~self.load.valid

        # ---- resolved operands (combinational from the decoded instruction)
        ld = a.load
        ld_expert = Signal(range(E))
        m.d.comb += ld_expert.eq(Mux(ld.next_expert, next_e, Mux(ld.per_expert, cur_e, 0)))
        ld_parity = Signal()
        m.d.comb += ld_parity.eq(ld.parity & (parity ^ ld.next_expert))
        ld_ddr = Signal(cfg.axi_addr_width)
        m.d.comb += ld_ddr.eq(bases[ld.base] + ld.offset + ld_expert * ld.expert_stride
                              + task[:3] * ld.task_stride)
        ld_addr = Signal(21)
        with m.Switch(ld.dest):
            with m.Case(Dest.B):
                m.d.comb += ld_addr.eq(ld.addr + Mux(ld_parity, self.b_half, 0))
            with m.Case(Dest.CONST):
                m.d.comb += ld_addr.eq(ld.addr + Mux(ld_parity, self.const_half, 0))
            with m.Default():
                m.d.comb += ld_addr.eq(ld.addr)
        ld_depth = Signal(21)
        with m.Switch(ld.dest):
            for dest, key in ((Dest.B, "b"), (Dest.CONST, "const"), (Dest.ACT, "act"),
                              (Dest.LNP, "lnp")):
                with m.Case(dest):
                    m.d.comb += ld_depth.eq(self.depths[key])
            with m.Default():
                m.d.comb += ld_depth.eq((1 << 21) - 1)
        ld_skip = ld.next_expert & ~has_next
        ld_compute = (ld.dest == Dest.ACT) | (ld.dest == Dest.RES)

        mm = a.matmul
        mm_par = Signal()
        m.d.comb += mm_par.eq(mm.parity & parity)
        mm_m = Signal(12)
        m.d.comb += mm_m.eq(Mux(mm.m_from_queue, ne_length[loop_i[:max(1, (E - 1).bit_length())]],
                                mm.m))
        bl = a.bload

        ccmd = self.compute.payload
        m.d.comb += [ccmd.instr.eq(instr), ccmd.qstart.eq(qstart), ccmd.m.eq(mm_m),
                     ccmd.ddr_addr.eq(bases[mm.base] + mm.offset)]
        with m.If(op == Op.BLOAD):
            m.d.comb += ccmd.b_offset.eq(bl.b_offset + Mux(bl.parity & parity, self.b_half, 0))
        with m.Else():
            m.d.comb += [ccmd.b_offset.eq(mm.b_offset + Mux(mm_par, self.b_half, 0)),
                         ccmd.const_base.eq(mm.const_base + Mux(mm_par, self.const_half, 0))]
        lcmd = self.load.payload
        m.d.comb += [lcmd.dest.eq(ld.dest), lcmd.addr.eq(ld_addr), lcmd.words.eq(ld.words),
                     lcmd.row_words.eq(ld.row_words), lcmd.ddr_addr.eq(ld_ddr)]

        tiles_n = (mm.n + C - 1) // C
        kw = (mm.k + C - 1) // C
        mm_bad = ((mm.k > cfg.max_k) | (mm.n > cfg.max_n) | (mm_m + mm.m_offset > cfg.max_tokens)
                  | (mm.dest.as_value() > OutDest.DDR.value) | (mm.out_bits > 2)
                  | ((mm.dest == OutDest.ROUTER) & (mm.n != E)))
        mm_range = ((mm.b_offset + Mux(mm_par, self.b_half, 0) + tiles_n * mm.k
                     > self.depths["b"])
                    | (~mm.gather & (mm_m != 0) &
                       (mm.a_addr + (mm_m - 1) * mm.a_stride + kw > self.depths["act"]))
                    | ((mm.dest == OutDest.ACT) & (mm_m != 0) &
                       (mm.d_addr + (mm_m - 1) * mm.d_stride + tiles_n > self.depths["act"]))
                    | ((mm.dest == OutDest.SCORE) & ((mm_m > self.depths["score_rows"])
                                                     | (mm.n > self.depths["score_rows"]))))
        bl_range = ((bl.rows != 0) & (bl.src + (bl.rows - 1) * bl.stride + bl.words
                                      > self.depths["act"])) | \
            (bl.b_offset + Mux(bl.parity & parity, self.b_half, 0) + bl.rows * bl.words
             > self.depths["b"]) | (bl.words * C > cfg.max_k)
        ln = a.layernorm
        ln_bad = (ln.row_words * C > cfg.max_dim) | (ln.row0 + ln.rows > cfg.max_tokens) | \
            ((ln.rows != 0) & (ln.d_addr + (ln.rows - 1) * ln.d_stride + ln.row_words
                               > self.depths["act"]))
        sm = a.softmax
        sm_words = (sm.length + C - 1) // C
        sm_bad = (sm.length > self.depths["score_rows"]) | (sm.rows > self.depths["score_rows"]) | \
            ((sm.rows != 0) & (sm.d_addr + (sm.rows - 1) * sm.d_stride + sm_words
                               > self.depths["act"]))
        la = a.lanes
        la_bad = (la.aux != 3) & (la.aux != 4) | (la.row0 + la.rows > cfg.max_tokens) | \
            (la.row_words * C > cfg.max_dim)
        tj = a.task_jump
        targets = Array(tj.targets[i] for i in range(MAX_TASKS))

        m.d.comb += self.stall.eq(0)
        with m.Switch(state):
            with m.Case(_S.IDLE):
                with m.If(self.start):
                    m.d.sync += [plen.eq(self.program_len), task.eq(self.task), pc.eq(0),
                                 fetch_sent.eq(0),
                                 code.eq(ErrorCode.NONE), loop_i.eq(0), qstart.eq(0),
                                 parity.eq(0)]
                    m.d.sync += [bases[b.value].eq(s) for b, s in (
                        (Base.DATA, self.data_base), (Base.INPUT, self.input_base),
                        (Base.OUTPUT, self.output_base))]
                    with m.If((self.program_len == 0) | (self.program_len > cfg.imem_words)):
                        m.d.sync += [code.eq(ErrorCode.PROGRAM_SIZE), state.eq(_S.DRAIN)]
                    with m.Else():
                        m.d.sync += state.eq(_S.FETCH)
            with m.Case(_S.FETCH):
                # One load of the whole program; then wait for its last word.
                with m.If(~fetch_sent):
                    m.d.comb += [self.load.valid.eq(1), lcmd.dest.eq(LoadTarget.IMEM),
                                 lcmd.addr.eq(0), lcmd.words.eq(plen),
                                 lcmd.ddr_addr.eq(self.program_base)]
                    with m.If(self.load.ready):
                        m.d.sync += fetch_sent.eq(1)
                with m.Elif(~self.loader_busy):
                    m.d.sync += state.eq(_S.READ)
            with m.Case(_S.READ):
                with m.If(pc >= plen):
                    fail(ErrorCode.MALFORMED)
                with m.Else():
                    m.d.sync += state.eq(_S.DECODE)
            with m.Case(_S.DECODE):
                m.d.sync += [instr.eq(rd.data), state.eq(_S.ISSUE)]
            with m.Case(_S.ISSUE):
                advance = Signal()
                m.d.comb += self.trace.valid.eq(advance)

                def dispatch():
                    """Hand the instruction to the compute datapath; advance once accepted."""
                    m.d.comb += [self.compute.valid.eq(1), advance.eq(self.compute.ready)]
                with m.If(advance):
                    m.d.sync += [pc.eq(pc + 1), state.eq(_S.READ)]
                with m.Switch(op):
                    with m.Case(Op.END):
                        with m.If(idle_all):
                            m.d.sync += state.eq(_S.IDLE)
                            m.d.comb += self.done.eq(1)
                            m.d.comb += self.trace.valid.eq(1)
                    with m.Case(Op.LOAD):
                        with m.If(ld.dest.as_value() > Dest.RES.value):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif((ld.dest != Dest.RES) & (ld_addr + ld.words > ld_depth)):
                            fail(ErrorCode.ONCHIP_RANGE)
                        with m.Elif((ld.dest == Dest.RES) & ((ld.row_words == 0) |
                                    (ld.row_words * C > cfg.max_dim))):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(ld_skip):
                            m.d.comb += advance.eq(1)
                        with m.Elif(ld_compute):
                            # ACT/RES loads also occupy the compute datapath (lanes / ACT port).
                            with m.If(self.load.ready & self.compute.ready & ~self.loader_busy):
                                m.d.comb += [self.load.valid.eq(1), self.compute.valid.eq(1),
                                             advance.eq(1)]
                        with m.Else():
                            m.d.comb += self.stall.eq(~self.compute_busy & self.loader_busy)
                            with m.If(self.load.ready & ~self.loader_busy):
                                m.d.comb += [self.load.valid.eq(1), advance.eq(1)]
                    with m.Case(Op.MATMUL):
                        with m.If(mm_bad):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(mm_range):
                            fail(ErrorCode.ONCHIP_RANGE)
                        with m.Else():
                            dispatch()
                    for case, bad, reason in ((Op.BLOAD, bl_range, ErrorCode.ONCHIP_RANGE),
                                              (Op.LAYERNORM, ln_bad, ErrorCode.MALFORMED),
                                              (Op.SOFTMAX, sm_bad, ErrorCode.MALFORMED),
                                              (Op.LANES, la_bad, ErrorCode.MALFORMED)):
                        with m.Case(case):
                            with m.If(bad):
                                fail(reason)
                            with m.Else():
                                dispatch()
                    with m.Case(Op.WAIT):
                        wait_l = a.wait.mask[0] & (self.loader_busy | self.load.valid)
                        wait_c = a.wait.mask[1] & (self.compute_busy | self.compute.valid)
                        m.d.comb += self.stall.eq(a.wait.mask[0] & self.loader_busy
                                                  & ~self.compute_busy)
                        with m.If((a.wait.mask[2:] != 0)):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(~wait_l & ~wait_c):
                            m.d.comb += advance.eq(1)
                    with m.Case(Op.TASK_JUMP):
                        with m.If((tj.tasks == 0) | (tj.tasks > MAX_TASKS)):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(task >= tj.tasks):
                            fail(ErrorCode.BAD_TASK)
                        with m.Elif(targets[task[:3]] >= plen):
                            fail(ErrorCode.MALFORMED)
                        with m.Else():
                            m.d.comb += self.trace.valid.eq(1)
                            m.d.sync += [pc.eq(targets[task[:3]]), state.eq(_S.READ)]
                    with m.Case(Op.EXPERT_FIRST):
                        with m.If(a.expert_first.target >= plen):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(~self.compute_busy):
                            m.d.sync += [loop_i.eq(0), qstart.eq(0), parity.eq(0)]
                            with m.If(self.ne_count == 0):
                                m.d.comb += self.trace.valid.eq(1)
                                m.d.sync += [pc.eq(a.expert_first.target), state.eq(_S.READ)]
                            with m.Else():
                                m.d.comb += advance.eq(1)
                    with m.Case(Op.EXPERT_NEXT):
                        with m.If(a.expert_next.target >= plen):
                            fail(ErrorCode.MALFORMED)
                        with m.Elif(has_next):
                            m.d.comb += self.trace.valid.eq(1)
                            m.d.sync += [loop_i.eq(loop_i + 1), parity.eq(~parity),
                                         qstart.eq(qstart + ne_length[
                                             loop_i[:max(1, (E - 1).bit_length())]]),
                                         pc.eq(a.expert_next.target), state.eq(_S.READ)]
                        with m.Else():
                            m.d.comb += advance.eq(1)
                    with m.Default():
                        fail(ErrorCode.MALFORMED)
            with m.Case(_S.DRAIN):
                with m.If(idle_all):
                    m.d.sync += state.eq(_S.IDLE)
                    m.d.comb += self.error.eq(1)
        # Unit errors stop the run (after the switch: they win over an issue in the same cycle).
        # The units still finish what they hold, so no AXI transaction is abandoned.
        running = (state != _S.IDLE) & (state != _S.DRAIN)
        with m.If(running):
            with m.If(self.loader_error):
                fail(ErrorCode.DMA_READ)
            with m.Elif(self.write_error):
                fail(ErrorCode.DMA_WRITE)
            with m.Elif(self.unit_error):
                fail(ErrorCode.UNIT_OVERFLOW)
            with m.Elif(self.start):
                fail(ErrorCode.START_WHILE_BUSY)
        return m
