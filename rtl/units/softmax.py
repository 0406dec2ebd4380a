"""Single-pass (online) row softmax on base-2 Q16 logits, bit for bit ``ops.softmax_online``.

A row streams in one score per cycle per lane. While it arrives, each lane keeps the running
integer exponent ``K`` and the Q16 sum ``S`` (rescaled by a shift whenever ``K`` grows) and writes
the score into a row bank. When the row's last score has been folded in, a sequential divider
computes the row's reciprocal ``R = floor(2**40 / S)``; a second pass then reads the bank back
and emits ``saturate(round_shift(exp2_neg(K*2**16 - t) * R, 40 - out_frac), out_bits)`` one per
cycle. With ``banks >= 2`` row banks, the next rows stream in while earlier rows are divided
and emitted.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.units.arith import banked_row_schedule, bits_for, ceil_q16, round_shift, saturate_unsigned
from rtl.bus.register_slice import output_skid
from rtl.units.divider import ReciprocalDivider
from rtl.units.rowbank import BankState, RowBankRing
from rtl.units.exp2 import Exp2Neg

__all__ = ["Softmax", "softmax_schedule", "SOFTMAX_FILL_LATENCY", "SOFTMAX_OUT_LATENCY"]

# Cycles from a row's last accepted score to its bank being marked filled (visible): the input
# register, the exp2 pipeline, then the bank's state register.
SOFTMAX_FILL_LATENCY = Exp2Neg.LATENCY + 2
# Cycles from the emit pass's start (its load cycle) to the first probability on ``o``: the row
# read and its register, the exp2 pipeline, the product register and the load cycle itself.
SOFTMAX_OUT_LATENCY = Exp2Neg.LATENCY + 4
# Reciprocal quotient width: S >= 2**15, so floor(2**40 / S) <= 2**25.
RECIP_BITS = ops.SOFTMAX_RECIP_BITS - ops.EXP_FRAC + 2


def softmax_schedule(lengths: list[int], banks: int = 3,
                     recip_cycles: int = RECIP_BITS + 1, spans: list[int] | None = None,
                     gap: int = 0) -> list[tuple[int, int]]:
    """The unit's cycle formula: :func:`rtl.units.arith.banked_row_schedule` with fill latency 5,
    ``recip_cycles`` (27) for the reciprocal and output latency 7 (both follow
    ``Exp2Neg.LATENCY`` = 3).

    For rows ``r`` of ``L_r`` scores offered back to back (input always valid, output always
    ready), first score accepted in cycle 0, it returns per row the cycle of its first accepted
    score and of its last probability on ``o``. One row alone takes ``2 L + 39`` cycles from
    first score to last probability. In steady state with equal rows the average period is
    ``max(L, recip_cycles + 1, (2 L + 33) / banks)`` cycles per row (per lane): ``L + 16.5``
    with 2 banks, ``L`` (one score per cycle per lane) with 3 banks once ``L >= 33``.
    Back-pressure on ``o`` stalls the emit pipeline as a whole; each stalled cycle delays
    completion by at most one.
    """
    return banked_row_schedule(lengths, banks, SOFTMAX_FILL_LATENCY, recip_cycles,
                               SOFTMAX_OUT_LATENCY, spans, gap)


class Softmax(wiring.Component):
    """Online row softmax, ``lanes`` rows side by side (lock-step, equal lengths).

    Parameters
    ----------
    max_len : int
        Longest row (scores per lane); longer rows set ``overflow`` and are not valid.
    lanes : int
        Independent rows processed in parallel, one score each per cycle.
    out_frac, out_bits : int
        Output format, unsigned Q``out_frac`` saturated to ``out_bits`` (attention: Q8 in 8
        bits, gate probabilities: Q16 in 16 bits).
    in_width : int
        Width of the signed Q16 base-2 scores (32 for int32 logits; at most 41).
    banks : int
        Row buffers (>= 2). 2 overlaps input and output; 3 (default) also hides the divider,
        so rows of 28 or more scores stream at one score per cycle per lane.

    Attributes
    ----------
    i : In(stream) of ``{t: ArrayLayout(signed(in_width), lanes), last}``; ``last`` marks a
        row's final score.
    o : Out(stream) of ``{p: ArrayLayout(unsigned(out_bits), lanes), last}``, rows in order.
    overflow : Out(1), sticky: a row had more than ``max_len`` scores.
    rows : Memory of ``ArrayLayout(signed(in_width), lanes)``, ``banks * max_len`` words.
    """

    def __init__(self, max_len: int, lanes: int = 1, out_frac: int = 8, out_bits: int = 8,
                 in_width: int = 32, banks: int = 3):
        problems = []
        if max_len < 1:
            problems.append(f"max_len must be >= 1, got {max_len}")
        if lanes < 1:
            problems.append(f"lanes must be >= 1, got {lanes}")
        if not 0 <= out_frac < ops.SOFTMAX_RECIP_BITS:
            problems.append(f"out_frac must be in 0..{ops.SOFTMAX_RECIP_BITS - 1}")
        if not 1 <= out_bits <= 32:
            problems.append("out_bits must be in 1..32")
        if not 17 <= in_width <= 41:
            problems.append("in_width must be in 17..41 (|t| < 2**40)")
        if banks < 2:
            problems.append("banks must be >= 2")
        if problems:
            raise ValueError("Softmax: " + "; ".join(problems))
        self.max_len, self.lanes, self.banks = max_len, lanes, banks
        self.out_frac, self.out_bits, self.in_width = out_frac, out_bits, in_width
        self.s_width = bits_for(max_len << ops.EXP_FRAC)        # S <= L * 2**16
        self.k_width = in_width - ops.EXP_FRAC + 2             # ceil(t / 2**16), signed
        self.u_width = in_width + 1                            # K*2**16 - t >= 0
        self.rows = memory.Memory(shape=data.ArrayLayout(signed(in_width), lanes),
                                  depth=banks * max_len, init=[])
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "t": data.ArrayLayout(signed(in_width), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "p": data.ArrayLayout(unsigned(out_bits), lanes), "last": 1}))),
            "overflow": Out(1),
        })

    def recip_cycles(self) -> int:
        """Divider cycles per row (acceptance to quotient)."""
        return RECIP_BITS + 1

    def schedule(self, lengths: list[int], spans: list[int] | None = None,
                 gap: int = 0) -> list[tuple[int, int]]:
        """:func:`softmax_schedule` for this unit's parameters (``spans``/``gap``: rows offered
        with idle cycles, see :func:`rtl.units.arith.banked_row_schedule`)."""
        return softmax_schedule(lengths, self.banks, self.recip_cycles(), spans, gap)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rows = self.rows
        NL, NB = self.lanes, self.banks
        kw, sw, uw = self.k_width, self.s_width, self.u_width
        len_shape = range(self.max_len + 1)


        # Per-bank row state and results.
        ring = RowBankRing(NB, self.max_len, len_shape)
        bstate = ring.state
        b_len = Array([Signal(len_shape, name=f"bank{b}_len") for b in range(NB)])
        b_k = Array([Array([Signal(signed(kw), name=f"bank{b}_K{j}") for j in range(NL)])
                     for b in range(NB)])
        b_s = Array([Array([Signal(sw, name=f"bank{b}_S{j}") for j in range(NL)])
                     for b in range(NB)])
        b_r = Array([Array([Signal(RECIP_BITS, name=f"bank{b}_R{j}") for j in range(NL)])
                     for b in range(NB)])

        # ---------------------------------------------------------------- pass 1: accumulate
        a_bank = Signal(range(NB))
        a_idx = Signal(len_shape)
        a_open = Signal()                     # a row is being written into a_bank
        accept = Signal()
        m.d.comb += [self.i.ready.eq(a_open | (bstate[a_bank] == BankState.FREE)),
                     accept.eq(self.i.valid & self.i.ready)]
        wr = self.rows.write_port()
        m.d.comb += [wr.addr.eq(ring.base(a_bank) + a_idx), wr.data.eq(self.i.payload.t),
                     wr.en.eq(accept & (a_idx < self.max_len))]
        last_in = self.i.payload.last
        with m.If(accept):
            m.d.sync += [a_idx.eq(Mux(last_in, 0, a_idx + 1)), a_open.eq(~last_in)]
            with m.If(~a_open):
                m.d.sync += bstate[a_bank].eq(BankState.FILLING)
            with m.If(last_in):
                m.d.sync += a_bank.eq(ring.next(a_bank))
            with m.If(a_idx >= self.max_len):
                m.d.sync += self.overflow.eq(1)

        # Stage 1 holds the accepted score with its ceiling; the exp2 pipeline runs in stages
        # 2 .. LAT + 1. Stages 1 .. LAT + 1 carry the row bookkeeping.
        LAT = Exp2Neg.LATENCY
        stages = range(1, LAT + 2)
        a_v = [Signal(name=f"a_valid{s}") for s in stages]
        a_first = [Signal(name=f"a_first{s}") for s in stages]
        a_last = [Signal(name=f"a_last{s}") for s in stages]
        a_bk = [Signal(range(NB), name=f"a_bank{s}") for s in stages]
        a_n = [Signal(len_shape, name=f"a_len{s}") for s in stages]
        m.d.sync += [a_v[0].eq(accept), a_first[0].eq(~a_open), a_last[0].eq(last_in),
                     a_bk[0].eq(a_bank), a_n[0].eq(a_idx + 1)]
        for regs in (a_v, a_first, a_last, a_bk, a_n):
            m.d.sync += [b.eq(a) for a, b in zip(regs, regs[1:])]
        with m.If(a_v[-1] & a_last[-1]):
            m.d.sync += [b_len[a_bk[-1]].eq(a_n[-1]), bstate[a_bk[-1]].eq(BankState.FILLED)]

        for j in range(NL):
            # Stage 1: c = ceil(t / 2**16) and f = c * 2**16 - t = (-t) mod 2**16, side by side.
            t = self.i.payload.t[j]
            c = Signal(signed(kw), name=f"ceil{j}")
            f = Signal(ops.EXP_FRAC, name=f"frac{j}")
            m.d.sync += [c.eq(ceil_q16(t)), f.eq((-t)[:ops.EXP_FRAC])]
            # Stage 1 -> 2: the running K (the row's first score restarts it) and the exp2
            # input u = K * 2**16 - t = (K - c) * 2**16 + f, with K - c >= 0.
            k = Signal(signed(kw), name=f"K{j}")
            kn = Signal(signed(kw), name=f"K_new{j}")
            k_c, c_k = Signal(signed(kw + 1), name=f"K_c{j}"), Signal(signed(kw + 1), name=f"c_K{j}")
            use_c = Signal(name=f"use_c{j}")
            m.d.comb += [k_c.eq(k - c), c_k.eq(c - k), use_c.eq(a_first[0] | (k_c < 0)),
                         kn.eq(Mux(use_c, c, k))]
            with m.If(a_v[0]):
                m.d.sync += k.eq(kn)
            exp = m.submodules[f"exp_in{j}"] = Exp2Neg(uw)
            m.d.comb += [exp.u.eq(Cat(f, Mux(use_c, 0, k_c))[:uw]), exp.en.eq(1)]
            # S >> (K - K_prev), K - K_prev >= 0 (saturated one stage later: shifts of S beyond
            # its width give 0).
            delta = Signal(kw + 1, name=f"delta{j}")
            m.d.sync += delta.eq(Mux(use_c, c_k, 0)[:kw + 1])
            sh = [Signal(range(sw + 1), name=f"shift{j}_{s_}") for s_ in stages[2:]]
            kp = [Signal(signed(kw), name=f"K{j}_{s_}") for s_ in stages[1:]]
            m.d.sync += [sh[0].eq(Mux(delta > sw, sw, delta)), kp[0].eq(kn)]
            for regs in (sh, kp):
                m.d.sync += [b.eq(a) for a, b in zip(regs, regs[1:])]
            s = Signal(sw, name=f"S{j}")
            s_new = Signal(sw + 1, name=f"S_new{j}")
            m.d.comb += s_new.eq(Mux(a_first[-1], 0, s >> sh[-1]) + exp.result)
            with m.If(a_v[-1]):
                m.d.sync += s.eq(s_new)
                with m.If(a_last[-1]):
                    m.d.sync += [b_k[a_bk[-1]][j].eq(kp[-1]), b_s[a_bk[-1]][j].eq(s_new)]

        # ------------------------------------------------------------ reciprocal, per row
        s_bank = Signal(range(NB))
        divs = []
        for j in range(NL):
            div = m.submodules[f"recip{j}"] = ReciprocalDivider(
                ops.SOFTMAX_RECIP_BITS, sw, RECIP_BITS)
            divs.append(div)
            m.d.comb += [div.i.valid.eq(bstate[s_bank] == BankState.FILLED),
                         div.i.payload.eq(b_s[s_bank][j]), div.o.ready.eq(1)]
            with m.If(div.o.valid):
                m.d.sync += b_r[s_bank][j].eq(div.o.payload)
        with m.If(divs[0].o.valid):          # the lanes' dividers run in lock-step
            m.d.sync += [bstate[s_bank].eq(BankState.READY), s_bank.eq(ring.next(s_bank))]

        # --------------------------------------------------------------- pass 2: emit
        advance = Signal()
        pipe = Signal.like(self.o.payload, name="out_pipe")     # the pipeline's last stage
        pipe_valid = Signal(name="out_pipe_valid")
        # A skid buffer on the output: the consumer's ready reaches no pipeline enable.
        skid_full = Signal(name="out_skid_full")
        m.d.comb += advance.eq(~skid_full)
        output_skid(m, self.o, pipe, pipe_valid, skid_full)
        b_row_k = [Signal(signed(kw), name=f"emit_K{j}") for j in range(NL)]
        b_row_r = [Signal(RECIP_BITS, name=f"emit_R{j}") for j in range(NL)]
        rd = self.rows.read_port(transparent_for=())
        m.d.comb += [rd.addr.eq(ring.read_addr()), rd.en.eq(advance)]
        e_stages = range(1, LAT + 3)        # the row read, its register, the exp2 pipeline
        e_v = [Signal(name=f"e_valid{s}") for s in e_stages]
        e_last = [Signal(name=f"e_last{s}") for s in e_stages]
        with m.If(advance):
            m.d.sync += [e_v[0].eq(ring.active), e_last[0].eq(ring.final),
                         pipe_valid.eq(e_v[-1]), pipe.last.eq(e_last[-1])]
            for regs in (e_v, e_last):
                m.d.sync += [b.eq(a) for a, b in zip(regs, regs[1:])]
        # Read-out (after the block above so that its assignments win), then this unit's
        # per-row registers for the row being loaded.
        ring.readout(m, advance, b_len)
        with m.If(ring.load):
            m.d.sync += [b_row_k[j].eq(b_k[ring.cand][j]) for j in range(NL)]
            m.d.sync += [b_row_r[j].eq(b_r[ring.cand][j]) for j in range(NL)]
        for j in range(NL):
            kr = [Signal(signed(kw), name=f"e_K{j}_{s}") for s in (1, 2)]
            rr = [Signal(RECIP_BITS, name=f"e_R{j}_{s}") for s in e_stages]
            score = Signal.like(rd.data[j], name=f"e_score{j}")   # the block RAM's word, registered
            exp = m.submodules[f"exp_out{j}"] = Exp2Neg(uw)
            m.d.comb += [exp.u.eq(((kr[1] << ops.EXP_FRAC) - score)[:uw]),
                         exp.en.eq(advance)]
            with m.If(advance):
                m.d.sync += [score.eq(rd.data[j]), kr[1].eq(kr[0])]
            prod = Signal(ops.EXP_FRAC + 1 + RECIP_BITS, name=f"prod{j}")
            m.d.comb += prod.eq(exp.result * rr[-1])
            with m.If(advance):
                m.d.sync += [b.eq(a) for a, b in zip(rr, rr[1:])]
                m.d.sync += [kr[0].eq(b_row_k[j]), rr[0].eq(b_row_r[j]),
                             pipe.p[j].eq(saturate_unsigned(
                                 round_shift(prod, ops.SOFTMAX_RECIP_BITS - self.out_frac),
                                 self.out_bits))]
        return m
