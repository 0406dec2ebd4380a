"""The sequencer: fetches the layer program into its instruction memory, then decodes and issues
instructions in order to the load engine and the compute datapath, runs the expert loop over the
router's non-empty experts, and stops with an error code instead of hanging on anything bad.

Each instruction goes READ (instruction memory) -> DECODE (the word into a register) -> CHECK
(its resolved compute command into a register; the operand check's products and the load's DDR
address terms) -> VERIFY (the operand check's verdict, what ISSUE is to do with the instruction,
the load command, ``pc + 1`` and a jump's target into registers) -> ISSUE, so the commands the units see and the issue
decision come straight from registers."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.bus.loader import LoadTarget
from rtl.config import AccelConfig
from rtl.control.checks import LATENCY as CHECK_LATENCY, OperandCheck
from rtl.control.errors import ErrorCode
from rtl.control.isa import (INSTR_BITS, MAX_TASKS, Base, Dest, Op, compute_cmd_layout,
                             instr_layout, load_cmd_layout)

__all__ = ["Sequencer"]


class _Kind(enum.Enum, shape=4):
    """The decoded instruction as ISSUE handles it."""
    END = 0
    LOAD_SKIP = 1       # a next-expert prefetch with no next expert: a no-op
    LOAD_COMPUTE = 2    # ACT / RES loads: the load engine and the compute datapath together
    LOAD_QUEUE = 3      # B, CONST, LNP loads: into the load queue
    COMPUTE = 4
    WAIT = 5
    TASK_JUMP = 6
    EXPERT_FIRST = 7
    EXPERT_NEXT = 8
    OTHER = 9           # an unknown opcode (the check calls it MALFORMED)


class _S(enum.Enum, shape=3):
    IDLE = 0
    FETCH = 1
    READ = 2
    DECODE = 3
    ISSUE = 4
    DRAIN = 5
    CHECK = 6
    VERIFY = 7


class Sequencer(wiring.Component):
    """Program fetch, decode, issue, expert loop, error handling.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    start : In(1) pulse (CONTROL.start)
    program_base, data_base, input_base, output_base : In(addr), program_len, task : In
    busy : Out(1); done, error : Out(1) one-cycle pulses; error_code : Out(ErrorCode) (held)
    load : Out(stream) to :class:`rtl.bus.loader.Loader` ``cmd``
    imem_wr : In(stream) from the loader (program words)
    compute : Out(stream) of :func:`compute_cmd_layout`
    compute_busy, loader_busy, loader_error, unit_error, write_error : In(1); ``loader_busy`` is
        registered on entry (the sequencer sees the loader go idle one cycle late)
    ne_count, ne_expert, ne_length : In — the router's non-empty experts (ascending)
    stall : Out(1) — waiting for the load engine while the compute datapath is idle
    fetching : Out(1) — copying the program from DDR; pc : Out(16) — the instruction at hand
    trace : Out(stream) of the issued instruction's ``pc`` (always ready; for simulation reports)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.imem = memory.Memory(shape=unsigned(INSTR_BITS), depth=cfg.imem_words, init=[])
        self.b_half = cfg.b_half_words
        self.const_half = cfg.const_half_rows
        aw = cfg.axi_addr_width
        E = cfg.experts
        ew = max(1, ceil_log2(E))
        lw = max(1, ceil_log2(cfg.max_tokens + 1))
        super().__init__({
            "start": In(1),
            "program_base": In(aw), "program_len": In(16), "data_base": In(aw),
            "input_base": In(aw), "output_base": In(aw), "task": In(8),
            "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(8),
            "load": Out(stream.Signature(load_cmd_layout(cfg))),
            "imem_wr": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(cfg.imem_words))),
                "data": unsigned(INSTR_BITS)}))),
            "compute": Out(stream.Signature(compute_cmd_layout(cfg))),
            "compute_busy": In(1), "loader_busy": In(1), "loader_error": In(1),
            "write_error": In(1), "unit_error": In(1),
            "ne_count": In(range(E + 1)),
            "ne_expert": In(data.ArrayLayout(unsigned(ew), E)),
            "ne_length": In(data.ArrayLayout(unsigned(lw), E)),
            "stall": Out(1), "fetching": Out(1), "pc": Out(16),
            "trace": Out(stream.Signature(unsigned(16))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.imem = self.imem
        wr = self.imem.write_port()
        m.d.comb += [self.imem_wr.ready.eq(1), wr.addr.eq(self.imem_wr.payload.addr),
                     wr.data.eq(self.imem_wr.payload.data), wr.en.eq(self.imem_wr.valid)]
        rd = self.imem.read_port(transparent_for=())
        r = _Regs(cfg)
        m.d.sync += r.loader_busy.eq(self.loader_busy | (self.load.valid & self.load.ready))
        m.d.comb += [self.busy.eq(r.state != _S.IDLE), self.error_code.eq(r.code),
                     rd.addr.eq(r.pc), rd.en.eq(r.state == _S.READ), self.trace.payload.eq(r.pc),
                     self.pc.eq(r.pc), self.fetching.eq(r.state == _S.FETCH)]
        self._expert_loop(m, r)
        self._resolve(m, r)
        m.submodules.check = check = OperandCheck(cfg)
        assert CHECK_LATENCY == 1, "CHECK -> VERIFY gives the operand check one cycle"
        m.d.comb += [check.instr.eq(r.instr), check.parity.eq(r.parity), check.m.eq(r.mm_m),
                     check.ld_addr.eq(r.ld_addr), check.task.eq(r.task), check.plen.eq(r.plen)]
        m.d.comb += self.stall.eq(0)
        with m.Switch(r.state):
            with m.Case(_S.IDLE):
                self._start(m, r)
            with m.Case(_S.FETCH):
                self._fetch(m, r)
            with m.Case(_S.READ):
                with m.If(r.pc >= r.plen):
                    r.fail(m, ErrorCode.MALFORMED)
                with m.Else():
                    m.d.sync += r.state.eq(_S.DECODE)
            with m.Case(_S.DECODE):
                m.d.sync += [r.instr.eq(rd.data), r.state.eq(_S.CHECK)]
            with m.Case(_S.CHECK):         # the check's products (LATENCY = 1) are registered
                m.d.sync += [r.ccmd.eq(r.ccmd_next), r.state.eq(_S.VERIFY)]
            with m.Case(_S.VERIFY):
                m.d.sync += [r.error.eq(check.error), r.bad.eq(check.bad),
                             r.kind.eq(self._kind(m, r)), r.lcmd.eq(r.lcmd_next),
                             r.pc_inc.eq(r.pc + 1), r.target.eq(self._target(m, r)),
                             r.qstart_inc.eq(r.qstart + r.cur_len), r.state.eq(_S.ISSUE)]
            with m.Case(_S.ISSUE):
                self._issue(m, r)
            with m.Case(_S.DRAIN):
                with m.If(self._idle_all(r)):
                    m.d.sync += r.state.eq(_S.IDLE)
                    m.d.comb += self.error.eq(1)
        # Unit errors stop the run (after the switch: they win over an issue in the same cycle).
        # The units still finish what they hold, so no AXI transaction is abandoned.
        with m.If((r.state != _S.IDLE) & (r.state != _S.DRAIN)):
            with m.If(self.loader_error):
                r.fail(m, ErrorCode.DMA_READ)
            with m.Elif(self.write_error):
                r.fail(m, ErrorCode.DMA_WRITE)
            with m.Elif(self.unit_error):
                r.fail(m, ErrorCode.UNIT_OVERFLOW)
            with m.Elif(self.start):
                r.fail(m, ErrorCode.START_WHILE_BUSY)
        return m

    def _idle_all(self, r):
        return ~self.compute_busy & ~r.loader_busy & ~self.compute.valid & ~self.load.valid

    def _expert_loop(self, m, r):
        """The router's non-empty experts: current, next, and whether there is a next;
        registered (they follow ``loop_i`` one cycle later, long before the CHECK of the next
        instruction that reads them, and the router is done before EXPERT_FIRST issues)."""
        E = self.cfg.experts
        idx = max(1, ceil_log2(E))
        r.ne_expert = Array(self.ne_expert[i] for i in range(E))
        r.ne_length = Array(self.ne_length[i] for i in range(E))
        m.d.sync += [r.has_next.eq(r.loop_i + 1 < self.ne_count),
                     r.cur_e.eq(r.ne_expert[r.loop_i[:idx]]),
                     r.next_e.eq(r.ne_expert[(r.loop_i + 1)[:idx]]),
                     r.cur_len.eq(r.ne_length[r.loop_i[:idx]])]

    def _resolve(self, m, r):
        """Operands resolved from the decoded instruction: the expert and ping-pong half of a
        LOAD, its on-chip and DDR addresses, a MATMUL's rows and offsets; the commands."""
        cfg = self.cfg
        a = r.instr.args
        ld, mm, bl = a.load, a.matmul, a.bload
        expert = Signal(range(cfg.experts))
        m.d.comb += expert.eq(Mux(ld.next_expert, r.next_e, Mux(ld.per_expert, r.cur_e, 0)))
        ld_parity = Signal()
        m.d.comb += ld_parity.eq(ld.parity & (r.parity ^ ld.next_expert))
        # The DDR address's base sum and products are registered in CHECK, their sum in
        # VERIFY (with the load command): no multiplier and adder chain in one cycle.
        ld_ddr = Signal(cfg.axi_addr_width)
        terms = (r.bases[ld.base] + ld.offset, expert * ld.expert_stride,
                 r.task[:3] * ld.task_stride)
        with m.If(r.state == _S.CHECK):
            m.d.sync += [t.eq(v) for t, v in zip(r.ld_terms, terms)]
        m.d.comb += ld_ddr.eq(r.ld_terms[0] + r.ld_terms[1] + r.ld_terms[2])
        with m.Switch(ld.dest):
            with m.Case(Dest.B):
                m.d.comb += r.ld_addr.eq(ld.addr + Mux(ld_parity, self.b_half, 0))
            with m.Case(Dest.CONST):
                m.d.comb += r.ld_addr.eq(ld.addr + Mux(ld_parity, self.const_half, 0))
            with m.Default():
                m.d.comb += r.ld_addr.eq(ld.addr)
        mm_par = Signal()
        m.d.comb += [mm_par.eq(mm.parity & r.parity),
                     r.mm_m.eq(Mux(mm.m_from_queue, r.cur_len, mm.m))]
        ccmd = r.ccmd_next
        m.d.comb += [ccmd.instr.eq(r.instr), ccmd.qstart.eq(r.qstart), ccmd.m.eq(r.mm_m),
                     ccmd.pc.eq(r.pc),
                     ccmd.ddr_addr.eq(r.bases[mm.base] + mm.offset)]
        with m.If(r.instr.op == Op.BLOAD):
            m.d.comb += ccmd.b_offset.eq(bl.b_offset + Mux(bl.parity & r.parity, self.b_half, 0))
        with m.Else():
            m.d.comb += [ccmd.b_offset.eq(mm.b_offset + Mux(mm_par, self.b_half, 0)),
                         ccmd.const_base.eq(mm.const_base + Mux(mm_par, self.const_half, 0))]
        lcmd = r.lcmd_next
        m.d.comb += [lcmd.dest.eq(ld.dest), lcmd.addr.eq(r.ld_addr), lcmd.words.eq(ld.words),
                     lcmd.row_words.eq(ld.row_words), lcmd.ddr_addr.eq(ld_ddr),
                     self.compute.payload.eq(r.ccmd), self.load.payload.eq(r.lcmd)]

    def _start(self, m, r):
        with m.If(self.start):
            m.d.sync += [r.plen.eq(self.program_len), r.task.eq(self.task), r.pc.eq(0),
                         r.fetch_sent.eq(0), r.code.eq(ErrorCode.NONE), r.loop_i.eq(0),
                         r.qstart.eq(0), r.parity.eq(0)]
            m.d.sync += [r.bases[b.value].eq(s) for b, s in (
                (Base.DATA, self.data_base), (Base.INPUT, self.input_base),
                (Base.OUTPUT, self.output_base))]
            with m.If((self.program_len == 0) | (self.program_len > self.cfg.imem_words)):
                m.d.sync += [r.code.eq(ErrorCode.PROGRAM_SIZE), r.state.eq(_S.DRAIN)]
            with m.Else():
                m.d.sync += r.state.eq(_S.FETCH)

    def _fetch(self, m, r):
        """One load of the whole program; then wait for its last word."""
        lcmd = self.load.payload
        with m.If(~r.fetch_sent):
            m.d.comb += [self.load.valid.eq(1), lcmd.dest.eq(LoadTarget.IMEM), lcmd.addr.eq(0),
                         lcmd.words.eq(r.plen), lcmd.ddr_addr.eq(self.program_base)]
            with m.If(self.load.ready):
                m.d.sync += r.fetch_sent.eq(1)
        with m.Elif(~r.loader_busy):
            m.d.sync += r.state.eq(_S.READ)

    def _kind(self, m, r):
        """What ISSUE does with the decoded instruction (registered in VERIFY, so ISSUE
        switches on four register bits instead of decoding the opcode and the load's fields)."""
        ld = r.instr.args.load
        kind = Signal(_Kind)
        with m.Switch(r.instr.op):
            with m.Case(Op.END):
                m.d.comb += kind.eq(_Kind.END)
            with m.Case(Op.LOAD):
                with m.If(ld.next_expert & ~r.has_next):      # no next expert to prefetch
                    m.d.comb += kind.eq(_Kind.LOAD_SKIP)
                with m.Elif((ld.dest == Dest.ACT) | (ld.dest == Dest.RES)):
                    m.d.comb += kind.eq(_Kind.LOAD_COMPUTE)
                with m.Else():
                    m.d.comb += kind.eq(_Kind.LOAD_QUEUE)
            with m.Case(Op.MATMUL, Op.BLOAD, Op.LAYERNORM, Op.SOFTMAX, Op.LANES):
                m.d.comb += kind.eq(_Kind.COMPUTE)
            with m.Case(Op.WAIT):
                m.d.comb += kind.eq(_Kind.WAIT)
            with m.Case(Op.TASK_JUMP):
                m.d.comb += kind.eq(_Kind.TASK_JUMP)
            with m.Case(Op.EXPERT_FIRST):
                m.d.comb += kind.eq(_Kind.EXPERT_FIRST)
            with m.Case(Op.EXPERT_NEXT):
                m.d.comb += kind.eq(_Kind.EXPERT_NEXT)
            with m.Default():
                m.d.comb += kind.eq(_Kind.OTHER)
        return kind

    def _target(self, m, r):
        """A jump's target (TASK_JUMP: the running task's entry), registered in VERIFY with
        ``pc + 1``, so ISSUE's next program counter is a two-way choice of registers."""
        a = r.instr.args
        target = Signal(16)
        with m.Switch(r.instr.op):
            with m.Case(Op.TASK_JUMP):
                targets = Array(a.task_jump.targets[i] for i in range(MAX_TASKS))
                m.d.comb += target.eq(targets[r.task[:3]])
            with m.Case(Op.EXPERT_FIRST):
                m.d.comb += target.eq(a.expert_first.target)
            with m.Case(Op.EXPERT_NEXT):
                m.d.comb += target.eq(a.expert_next.target)
        return target

    def _issue(self, m, r):
        """One instruction: stop on a bad operand (``r.bad``), else issue it when its unit
        takes it; the program counter advances or jumps."""
        advance = Signal()
        m.d.comb += self.trace.valid.eq(advance)
        with m.If(advance):
            m.d.sync += [r.pc.eq(r.pc_inc), r.state.eq(_S.READ)]
        a = r.instr.args
        with m.If(r.kind == _Kind.WAIT):    # counted also in the cycle a bad WAIT stops
            m.d.comb += self.stall.eq(a.wait.mask[0] & r.loader_busy & ~self.compute_busy)
        with m.If(r.bad):                   # OTHER (an unknown opcode) is always bad
            r.fail(m, r.error)
        with m.Else():
            with m.Switch(r.kind):
                with m.Case(_Kind.END):
                    with m.If(self._idle_all(r)):
                        m.d.sync += r.state.eq(_S.IDLE)
                        m.d.comb += [self.done.eq(1), self.trace.valid.eq(1)]
                with m.Case(_Kind.LOAD_SKIP):
                    m.d.comb += advance.eq(1)
                with m.Case(_Kind.LOAD_COMPUTE):
                    # ACT/RES loads also occupy the compute datapath (lanes / ACT port).
                    m.d.comb += self.stall.eq(~self.compute_busy & r.loader_busy)
                    with m.If(self.load.ready & self.compute.ready & ~r.loader_busy):
                        m.d.comb += [self.load.valid.eq(1), self.compute.valid.eq(1),
                                     advance.eq(1)]
                with m.Case(_Kind.LOAD_QUEUE):   # B, CONST, LNP: behind the loads before
                    m.d.comb += [self.stall.eq(~self.compute_busy & ~self.load.ready),
                                 self.load.valid.eq(1), advance.eq(self.load.ready)]
                with m.Case(_Kind.COMPUTE):
                    m.d.comb += [self.compute.valid.eq(1), advance.eq(self.compute.ready)]
                with m.Case(_Kind.WAIT):
                    wait_l = a.wait.mask[0] & (r.loader_busy | self.load.valid)
                    wait_c = a.wait.mask[1] & (self.compute_busy | self.compute.valid)
                    with m.If(~wait_l & ~wait_c):
                        m.d.comb += advance.eq(1)
                with m.Case(_Kind.TASK_JUMP):
                    m.d.comb += self.trace.valid.eq(1)
                    m.d.sync += [r.pc.eq(r.target), r.state.eq(_S.READ)]
                with m.Case(_Kind.EXPERT_FIRST):
                    self._expert_first(m, r, advance)
                with m.Case(_Kind.EXPERT_NEXT):
                    self._expert_next(m, r, advance)
                with m.Default():
                    r.fail(m, r.error)

    def _expert_first(self, m, r, advance):
        """EXPERT_FIRST, once the router is done: the loop over the router's non-empty
        experts starts (or jumps past the loop when there are none)."""
        with m.If(~self.compute_busy):
            m.d.sync += [r.loop_i.eq(0), r.qstart.eq(0), r.parity.eq(0)]
            with m.If(self.ne_count == 0):
                m.d.comb += self.trace.valid.eq(1)
                m.d.sync += [r.pc.eq(r.target), r.state.eq(_S.READ)]
            with m.Else():
                m.d.comb += advance.eq(1)

    def _expert_next(self, m, r, advance):
        """EXPERT_NEXT: the next non-empty expert, flipping the ping-pong half, or fall out of
        the loop."""
        with m.If(r.has_next):
            m.d.comb += self.trace.valid.eq(1)
            m.d.sync += [r.loop_i.eq(r.loop_i + 1), r.parity.eq(~r.parity),
                         r.qstart.eq(r.qstart_inc), r.pc.eq(r.target), r.state.eq(_S.READ)]
        with m.Else():
            m.d.comb += advance.eq(1)


class _Regs:
    """The sequencer's registers and the combinational values the helpers share."""

    def __init__(self, cfg: AccelConfig):
        E = cfg.experts
        self.state = Signal(_S, name="state")
        self.pc = Signal(16, name="pc")
        self.plen = Signal(16, name="plen")
        self.task = Signal(8, name="task")
        self.instr = Signal(instr_layout(), name="instr")
        self.code = Signal(8, name="code")
        self.fetch_sent = Signal(name="fetch_sent")
        self.bases = Array([Signal(cfg.axi_addr_width, name=f"base_{b.name.lower()}")
                            for b in Base])
        self.loop_i = Signal(range(E + 1), name="loop_i")
        self.qstart = Signal(16, name="qstart")
        self.parity = Signal(name="parity")
        self.has_next = Signal(name="has_next")
        self.cur_e = Signal(range(E), name="cur_e")
        self.next_e = Signal(range(E), name="next_e")
        self.cur_len = Signal(max(1, ceil_log2(cfg.max_tokens + 1)), name="cur_len")
        self.ld_addr = Signal(21, name="ld_addr")
        self.mm_m = Signal(12, name="mm_m")
        self.error = Signal(8, name="check_error")      # CHECK's verdict, for ISSUE
        self.bad = Signal(name="check_bad")             # error != NONE
        self.kind = Signal(_Kind, name="issue_kind")
        self.pc_inc = Signal(16, name="pc_inc")         # VERIFY: pc + 1, a jump's target
        self.target = Signal(16, name="jump_target")    # and qstart + cur_len, for ISSUE
        self.qstart_inc = Signal(16, name="qstart_inc")
        self.ccmd_next = Signal(compute_cmd_layout(cfg), name="ccmd_next")
        self.lcmd_next = Signal(load_cmd_layout(cfg), name="lcmd_next")
        self.ccmd = Signal(compute_cmd_layout(cfg), name="ccmd")
        self.lcmd = Signal(load_cmd_layout(cfg), name="lcmd")
        self.ld_terms = [Signal(cfg.axi_addr_width, name=f"ld_ddr_term{i}") for i in range(3)]
        # ``loader_busy`` one cycle late, ORed with the load issued in that cycle (the loader
        # only becomes busy through one), so it never reads idle before the loader is.
        self.loader_busy = Signal(name="loader_busy_q")

    def fail(self, m, reason):
        m.d.sync += [self.code.eq(reason), self.state.eq(_S.DRAIN)]
