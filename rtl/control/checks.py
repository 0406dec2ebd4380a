"""The sequencer's operand checks: is the decoded instruction legal on this accelerator?

Every field that names an on-chip memory range, a row count, a task or a jump target is checked
before the instruction issues; a bad one stops the run with its error code (``MALFORMED`` for a
field out of its range, ``ONCHIP_RANGE`` for an address range outside its memory, ``BAD_TASK``
for a task the program does not have) instead of corrupting state or hanging. One component,
one function per opcode; the products of the range checks are registered (:data:`LATENCY` = 1:
``error`` is valid one cycle after the inputs, which must hold for both cycles).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.config import AccelConfig
from rtl.control.errors import ErrorCode
from rtl.control.isa import MAX_TASKS, Dest, Op, OutDest, instr_layout

__all__ = ["OperandCheck", "LATENCY"]

#: Cycles from stable inputs to a valid ``error`` (the registered products).
LATENCY = 1


class OperandCheck(wiring.Component):
    """``error`` = the :class:`~rtl.control.errors.ErrorCode` the instruction stops with.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    instr : In(instruction); parity : In(1), the expert loop's ping-pong half
    m : In(12), the resolved row count (the expert's queue length when ``m_from_queue``)
    ld_addr : In(21), the resolved LOAD address (parity applied)
    task : In(8), TASK_ID; plen : In(16), the program length
    error : Out(8), ``ErrorCode.NONE`` when the instruction may issue (:data:`LATENCY` cycles
        after the inputs)
    bad : Out(1), ``error != ErrorCode.NONE``, decided beside ``error`` (no comparison after it)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.depths = cfg.memory_words()
        super().__init__({"instr": In(instr_layout()), "parity": In(1), "m": In(12),
                          "ld_addr": In(21), "task": In(8), "plen": In(16), "error": Out(8),
                          "bad": Out(1)})

    def elaborate(self, platform):
        m = Module()
        code = self.error
        checks = {Op.LOAD: self._load, Op.MATMUL: self._matmul, Op.BLOAD: self._bload,
                  Op.LAYERNORM: self._layernorm, Op.SOFTMAX: self._softmax, Op.LANES: self._lanes,
                  Op.WAIT: self._wait, Op.TASK_JUMP: self._task_jump,
                  Op.EXPERT_FIRST: self._expert_target, Op.EXPERT_NEXT: self._expert_target}
        m.d.comb += code.eq(ErrorCode.NONE)
        with m.Switch(self.instr.op):
            with m.Case(Op.END):
                pass
            for op, check in checks.items():
                with m.Case(op):
                    for i, (bad, reason) in enumerate(check(m, op)):   # the first failing wins
                        with (m.If if i == 0 else m.Elif)(bad):
                            m.d.comb += [code.eq(reason), self.bad.eq(1)]
            with m.Default():
                m.d.comb += [code.eq(ErrorCode.MALFORMED), self.bad.eq(1)]
        return m

    def _load(self, m, op):
        cfg, ld, C = self.cfg, self.instr.args.load, self.cfg.array_cols
        depth = Signal(21)
        m.d.comb += depth.eq((1 << 21) - 1)
        with m.Switch(ld.dest):
            for dest, key in ((Dest.B, "b"), (Dest.CONST, "const"), (Dest.ACT, "act"),
                              (Dest.LNP, "lnp")):
                with m.Case(dest):
                    m.d.comb += depth.eq(self.depths[key])
        return [(ld.dest.as_value() > Dest.RES.value, ErrorCode.MALFORMED),
                ((ld.dest != Dest.RES) & (self.ld_addr + ld.words > depth),
                 ErrorCode.ONCHIP_RANGE),
                ((ld.dest == Dest.RES) & ((ld.row_words == 0) | (ld.row_words * C > cfg.max_dim)),
                 ErrorCode.MALFORMED)]

    def _matmul(self, m, op):
        cfg, mm, C, d = self.cfg, self.instr.args.matmul, self.cfg.array_cols, self.depths
        rows = self.m
        tiles_n = (mm.n + C - 1) // C
        kw = (mm.k + C - 1) // C
        half = Mux(mm.parity & self.parity, cfg.b_half_words, 0)
        reg = _Registered(m, "matmul")
        bad = ((mm.k > cfg.max_k) | (mm.n > cfg.max_n) | (rows + mm.m_offset > cfg.max_tokens)
               | (mm.dest.as_value() > OutDest.DDR.value) | (mm.out_bits > 2)
               | ((mm.dest == OutDest.ROUTER) & (mm.n != cfg.experts)))
        out_of_range = ((mm.b_offset + half + reg(tiles_n * mm.k) > d["b"])
                        | (~mm.gather & (rows != 0) &
                           (mm.a_addr + reg((rows - 1) * mm.a_stride) + kw > d["act"]))
                        | ((mm.dest == OutDest.ACT) & (rows != 0) &
                           (mm.d_addr + reg((rows - 1) * mm.d_stride) + tiles_n > d["act"]))
                        | ((mm.dest == OutDest.SCORE) & ((rows > d["score_rows"])
                                                         | (mm.n > d["score_rows"]))))
        return [(bad, ErrorCode.MALFORMED), (out_of_range, ErrorCode.ONCHIP_RANGE)]

    def _bload(self, m, op):
        cfg, bl, C, d = self.cfg, self.instr.args.bload, self.cfg.array_cols, self.depths
        half = Mux(bl.parity & self.parity, cfg.b_half_words, 0)
        reg = _Registered(m, "bload")
        out_of_range = (((bl.rows != 0) & (bl.src + reg((bl.rows - 1) * bl.stride) + bl.words
                                           > d["act"]))
                        | (bl.b_offset + half + reg(bl.rows * bl.words) > d["b"])
                        | (bl.words * C > cfg.max_k))
        return [(out_of_range, ErrorCode.ONCHIP_RANGE)]

    def _layernorm(self, m, op):
        cfg, ln, C = self.cfg, self.instr.args.layernorm, self.cfg.array_cols
        bad = ((ln.row_words * C > cfg.max_dim) | (ln.row0 + ln.rows > cfg.max_tokens)
               | ((ln.rows != 0) & (ln.d_addr + _Registered(m, "layernorm")(
                   (ln.rows - 1) * ln.d_stride) + ln.row_words
                                    > self.depths["act"])))
        return [(bad, ErrorCode.MALFORMED)]

    def _softmax(self, m, op):
        sm, C, d = self.instr.args.softmax, self.cfg.array_cols, self.depths
        words = (sm.length + C - 1) // C
        bad = ((sm.length > d["score_rows"]) | (sm.rows > d["score_rows"])
               | ((sm.rows != 0) & (sm.d_addr + _Registered(m, "softmax")(
                   (sm.rows - 1) * sm.d_stride) + words > d["act"])))
        return [(bad, ErrorCode.MALFORMED)]

    def _lanes(self, m, op):
        cfg, la, C = self.cfg, self.instr.args.lanes, self.cfg.array_cols
        bad = (((la.aux != 3) & (la.aux != 4)) | (la.row0 + la.rows > cfg.max_tokens)
               | (la.row_words * C > cfg.max_dim))
        return [(bad, ErrorCode.MALFORMED)]

    def _wait(self, m, op):
        return [(self.instr.args.wait.mask[2:] != 0, ErrorCode.MALFORMED)]

    def _task_jump(self, m, op):
        tj = self.instr.args.task_jump
        targets = Array(tj.targets[i] for i in range(MAX_TASKS))
        return [((tj.tasks == 0) | (tj.tasks > MAX_TASKS), ErrorCode.MALFORMED),
                (self.task >= tj.tasks, ErrorCode.BAD_TASK),
                (targets[self.task[:3]] >= self.plen, ErrorCode.MALFORMED)]

    def _expert_target(self, m, op):
        args = self.instr.args.expert_first if op == Op.EXPERT_FIRST else \
            self.instr.args.expert_next
        return [(args.target >= self.plen, ErrorCode.MALFORMED)]


class _Registered:
    """``reg(expr)``: a register holding ``expr`` (named ``<prefix>_product<i>``)."""

    def __init__(self, m, prefix: str):
        self.m, self.prefix, self.n = m, prefix, 0

    def __call__(self, expr):
        r = Signal(expr.shape(), name=f"{self.prefix}_product{self.n}")
        self.n += 1
        self.m.d.sync += r.eq(expr)
        return r
