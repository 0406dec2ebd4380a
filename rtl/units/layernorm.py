"""Per-token LayerNorm on int16 residual rows → int8, bit for bit ``ops.layer_norm``.

A token streams in ``lanes`` elements per cycle; the unit accumulates ``S1 = Σ r`` and
``S2 = Σ r²`` and writes the elements into a token bank. A sequential per-token stage then forms
``V = D·S2 − S1² + eps``, its floor square root ``q`` (digit by digit) and ``R = floor(2**40 /
q)`` (restoring divider); a second pass re-reads the bank with γ/β and emits
``sat8(round_shift(round_shift((D·r − S1)·R, 24)·γ + β, 16 + G))``, ``lanes`` per cycle. With
``banks >= 2`` the next tokens stream in while earlier ones are finished.

Widths: ``|D·r − S1| ≤ sqrt(D−1)·sqrt(V) < sqrt(D)·(q+1)`` (Samuelson's inequality), so
``|(D·r − S1)·R| < 2·sqrt(D)·2**40`` and ``|n| ≤ 2·sqrt(D)·2**16``: the datapath keeps exactly
the bits these bounds need, so no truncation ever changes a value.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.units.arith import banked_row_schedule, bits_for, round_shift, saturate
from rtl.units.divider import ReciprocalDivider
from rtl.units.rowbank import BankState, RowBankRing
from rtl.units.isqrt import IntSqrt

__all__ = ["LayerNorm", "LN_FILL_LATENCY", "LN_OUT_LATENCY", "gamma_beta_layout"]

LN_FILL_LATENCY = 3   # last accepted beat → bank filled (visible)
LN_OUT_LATENCY = 6    # emit pass load cycle → first output beat
GAMMA_WIDTH = 25      # |γ_q| < 2**24


def gamma_beta_layout(lanes: int, beta_width: int) -> data.StructLayout:
    """One word of the γ/β memory: ``lanes`` consecutive elements' constants."""
    return data.StructLayout({"gamma": data.ArrayLayout(signed(GAMMA_WIDTH), lanes),
                              "beta": data.ArrayLayout(signed(beta_width), lanes)})


class _Scalar(enum.Enum, shape=3):
    IDLE = 0
    VAR = 1
    SQRT = 2
    WAIT_SQRT = 3
    WAIT_DIV = 4


class LayerNorm(wiring.Component):
    """LayerNorm over tokens of up to ``max_dim`` int16 elements, ``lanes`` elements per cycle.

    Parameters
    ----------
    max_dim : int
        Largest token width D (a multiple of ``lanes``; D itself is the token's beat count
        times ``lanes``, taken from ``last``).
    lanes : int
        Elements per beat.
    gamma_frac : int
        G of ``ops.layer_norm`` (``golden.quant.ops.LN_GAMMA_FRAC`` = 10).
    eps_width : int
        Width of the unsigned ``eps`` input (``eps_q >= 1``).
    beta_width : int
        Width of the signed β_q constants (β_q = round(β/s_out·2**(16+G)); 48 bits hold
        ``|β/s_out| < 2**21``).
    banks : int
        Token buffers (>= 2; the default 3 streams tokens of ``B >= scalar_cycles + 1`` beats
        at full rate).
    scalar_stages : int
        Copies of the per-token stage (variance, square root, reciprocal), taking tokens in
        turn: with ``P`` of them and enough banks a token leaves every
        ``max(B, (scalar_cycles + 1) / P)`` cycles.

    Attributes
    ----------
    i : In(stream) of ``{r: ArrayLayout(signed(16), lanes), last}``, ``last`` on a token's
        final beat.
    o : Out(stream) of ``{y: ArrayLayout(signed(8), lanes), last}``, tokens in order.
    params : In(stream) of ``{addr, gamma_beta}``: writes γ/β word ``addr`` (elements
        ``addr*lanes …``); always ready. Do not write while tokens are in flight.
    eps : In(unsigned(eps_width)), ``eps_q``, held while tokens are in flight.
    overflow : Out(1), sticky: a token had more than ``max_dim`` elements.
    tokens : Memory of the token banks; ``gamma_beta`` : Memory of γ/β words.
    """

    def __init__(self, max_dim: int, lanes: int = 1, gamma_frac: int = 10, eps_width: int = 32,
                 beta_width: int = 48, banks: int = 3, scalar_stages: int = 1):
        problems = []
        if lanes < 1:
            problems.append(f"lanes must be >= 1, got {lanes}")
        elif max_dim < 1 or max_dim % lanes:
            problems.append(f"max_dim must be a positive multiple of lanes, got {max_dim}")
        elif max_dim > 1024:
            problems.append("max_dim must be <= 1024 (the reference's proven widths)")
        if not 0 <= gamma_frac <= 40:
            problems.append("gamma_frac must be in 0..40")
        if not 1 <= eps_width <= 48:
            problems.append("eps_width must be in 1..48")
        if not 2 <= beta_width <= 60:
            problems.append("beta_width must be in 2..60")
        if banks < 2:
            problems.append("banks must be >= 2")
        if not 1 <= scalar_stages <= banks:
            problems.append(f"scalar_stages must be in 1..banks ({banks}), got {scalar_stages}")
        if problems:
            raise ValueError("LayerNorm: " + "; ".join(problems))
        self.max_dim, self.lanes, self.banks = max_dim, lanes, banks
        self.scalar_stages = scalar_stages
        self.gamma_frac, self.eps_width, self.beta_width = gamma_frac, eps_width, beta_width
        self.max_beats = max_dim // lanes
        self.s1_width = bits_for(max_dim << 15) + 1                  # signed
        self.s2_width = bits_for(max_dim << 30)
        self.v_width = max(bits_for((max_dim * max_dim) << 30), eps_width) + 1
        self.sqrts = [IntSqrt(self.v_width) for _ in range(scalar_stages)]
        self.sqrt = self.sqrts[0]
        self.q_width = self.sqrt.digits
        self.recip_bits = ops.LN_RECIP_BITS + 1                      # q >= 1: R <= 2**40
        self.d_width = bits_for(max_dim << 16) + 2                   # D·r − S1, signed
        self.n_width = bits_for((2 * math.isqrt(max_dim) + 2) << ops.LN_FRAC) + 1
        self.prod_width = self.n_width + ops.LN_RECIP_BITS - ops.LN_FRAC + 1
        self.y_width = max(self.n_width + GAMMA_WIDTH, beta_width) + 1
        self.tokens = memory.Memory(shape=data.ArrayLayout(signed(16), lanes),
                                    depth=banks * self.max_beats, init=[])
        self.gamma_beta = memory.Memory(shape=gamma_beta_layout(lanes, beta_width),
                                        depth=self.max_beats, init=[])
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "r": data.ArrayLayout(signed(16), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(signed(8), lanes), "last": 1}))),
            "params": In(stream.Signature(data.StructLayout({
                "addr": range(self.max_beats),
                "gamma_beta": gamma_beta_layout(lanes, beta_width)}))),
            "eps": In(unsigned(eps_width)),
            "overflow": Out(1),
        })

    def scalar_cycles(self) -> int:
        """Per-token sequential stage: 2 (products, V) + isqrt + reciprocal."""
        return 2 + self.sqrt.cycles() + self.recip_bits + 1

    def schedule(self, beats: list[int]) -> list[tuple[int, int]]:
        """Cycle formula (:func:`rtl.units.arith.banked_row_schedule`, fill latency 3, output latency
        6) for tokens of ``beats[r]`` beats: per token, (first beat accepted, last beat out).

        One token alone takes ``2 B + 9 + scalar_cycles`` cycles from its first beat to its
        last output beat (B = D / lanes beats); in steady state the average period is
        ``max(B, (scalar_cycles + 1) / P, (2 B + 4 + scalar_cycles) / banks)`` cycles per token
        (P = ``scalar_stages``).
        """
        return banked_row_schedule(beats, self.banks, LN_FILL_LATENCY, self.scalar_cycles(),
                                   LN_OUT_LATENCY, scalar_stages=self.scalar_stages)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tokens = self.tokens
        m.submodules.gamma_beta = self.gamma_beta
        NL, NB, MB = self.lanes, self.banks, self.max_beats
        beats_shape = range(MB + 1)


        ring = RowBankRing(NB, MB, beats_shape)
        bstate = ring.state
        b_beats = Array([Signal(beats_shape, name=f"bank{b}_beats") for b in range(NB)])
        b_s1 = Array([Signal(signed(self.s1_width), name=f"bank{b}_S1") for b in range(NB)])
        b_s2 = Array([Signal(self.s2_width, name=f"bank{b}_S2") for b in range(NB)])
        b_r = Array([Signal(self.recip_bits, name=f"bank{b}_R") for b in range(NB)])

        # γ/β writes.
        gb_wr = self.gamma_beta.write_port()
        m.d.comb += [self.params.ready.eq(1), gb_wr.addr.eq(self.params.payload.addr),
                     gb_wr.data.eq(self.params.payload.gamma_beta),
                     gb_wr.en.eq(self.params.valid)]

        # ---------------------------------------------------------- pass 1: statistics
        a_bank = Signal(range(NB))
        a_idx = Signal(beats_shape)
        a_open = Signal()
        accept = Signal()
        m.d.comb += [self.i.ready.eq(a_open | (bstate[a_bank] == BankState.FREE)),
                     accept.eq(self.i.valid & self.i.ready)]
        wr = self.tokens.write_port()
        m.d.comb += [wr.addr.eq(ring.base(a_bank) + a_idx), wr.data.eq(self.i.payload.r),
                     wr.en.eq(accept & (a_idx < MB))]
        last_in = self.i.payload.last
        with m.If(accept):
            m.d.sync += [a_idx.eq(Mux(last_in, 0, a_idx + 1)), a_open.eq(~last_in)]
            with m.If(~a_open):
                m.d.sync += bstate[a_bank].eq(BankState.FILLING)
            with m.If(last_in):
                m.d.sync += a_bank.eq(ring.next(a_bank))
            with m.If(a_idx >= MB):
                m.d.sync += self.overflow.eq(1)

        # The accepted beat is registered (stage 0) before its sum and its squares (stage 1):
        # the input's multiplexers and the squares' multipliers are in different cycles.
        a0 = {"v": Signal(name="a_valid0"), "first": Signal(name="a_first0"),
              "last": Signal(name="a_last0"), "bank": Signal(range(NB), name="a_bank0"),
              "beats": Signal(beats_shape, name="a_beats0")}
        r0 = Signal.like(self.i.payload.r, name="a_r0")
        m.d.sync += [a0["v"].eq(accept), a0["first"].eq(~a_open), a0["last"].eq(last_in),
                     a0["bank"].eq(a_bank), a0["beats"].eq(a_idx + 1), r0.eq(self.i.payload.r)]
        beat_sum = Signal(signed(16 + bits_for(NL)), name="beat_sum")
        beat_sq = Signal(30 + bits_for(NL), name="beat_sq")
        a1 = {k: Signal.like(v, name=v.name.replace("0", "1")) for k, v in a0.items()}
        m.d.sync += [a1[k].eq(v) for k, v in a0.items()]
        m.d.sync += [beat_sum.eq(sum(r0[j] for j in range(NL))),
                     beat_sq.eq(sum(r0[j] * r0[j] for j in range(NL)))]
        s1 = Signal(signed(self.s1_width))
        s2 = Signal(self.s2_width)
        s1_new = Signal(signed(self.s1_width))
        s2_new = Signal(self.s2_width)
        m.d.comb += [s1_new.eq(Mux(a1["first"], 0, s1) + beat_sum),
                     s2_new.eq(Mux(a1["first"], 0, s2) + beat_sq)]
        with m.If(a1["v"]):
            m.d.sync += [s1.eq(s1_new), s2.eq(s2_new)]
            with m.If(a1["last"]):
                m.d.sync += [b_s1[a1["bank"]].eq(s1_new), b_s2[a1["bank"]].eq(s2_new),
                             b_beats[a1["bank"]].eq(a1["beats"]),
                             bstate[a1["bank"]].eq(BankState.FILLED)]

        # ------------------------------------------ per token: V, isqrt, reciprocal
        # Filled banks go, in ring order, to the scalar stages in turn.
        s_bank = Signal(range(NB))
        s_next = Signal(range(self.scalar_stages))
        idle = [self._scalar_stage(m, k, s_bank, s_next, ring, b_s1, b_s2, b_beats, b_r)
                for k in range(self.scalar_stages)]
        with m.If((bstate[s_bank] == BankState.FILLED) & Array(idle)[s_next]):
            m.d.sync += [s_bank.eq(ring.next(s_bank)),
                         s_next.eq(Mux(s_next == self.scalar_stages - 1, 0, s_next + 1))]

        # ------------------------------------------------------------- pass 2: emit
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        row_d = Signal(range(self.max_dim + 1))
        row_s1 = Signal(signed(self.s1_width))
        row_r = Signal(self.recip_bits)
        rd = self.tokens.read_port(transparent_for=())
        gb_rd = self.gamma_beta.read_port(transparent_for=())
        m.d.comb += [rd.addr.eq(ring.read_addr()), rd.en.eq(advance),
                     gb_rd.addr.eq(ring.idx), gb_rd.en.eq(advance)]
        ev = [Signal(name=f"e_valid{s}") for s in (1, 2, 3, 4)]
        el = [Signal(name=f"e_last{s}") for s in (1, 2, 3, 4)]
        d1 = Signal.like(row_d, name="e_D1")
        s1_1 = Signal.like(row_s1, name="e_S1_1")
        r1 = Signal.like(row_r, name="e_R1")
        r2 = Signal.like(row_r, name="e_R2")
        gb2 = Signal(gamma_beta_layout(NL, self.beta_width), name="e_gb2")
        gb3 = Signal(gamma_beta_layout(NL, self.beta_width), name="e_gb3")
        with m.If(advance):
            m.d.sync += [ev[0].eq(ring.active), el[0].eq(ring.final),
                         d1.eq(row_d), s1_1.eq(row_s1), r1.eq(row_r), r2.eq(r1),
                         gb2.eq(gb_rd.data), gb3.eq(gb2),
                         self.o.valid.eq(ev[3]), self.o.payload.last.eq(el[3])]
            m.d.sync += [ev[s + 1].eq(ev[s]) for s in range(3)]
            m.d.sync += [el[s + 1].eq(el[s]) for s in range(3)]
        # Read-out (after the block above so that its assignments win), then this unit's
        # per-row registers for the row being loaded.
        ring.readout(m, advance, b_beats)
        with m.If(ring.load):
            m.d.sync += [row_d.eq(b_beats[ring.cand] * NL),
                         row_s1.eq(b_s1[ring.cand]), row_r.eq(b_r[ring.cand])]
        shift_out = ops.LN_FRAC + self.gamma_frac
        for j in range(NL):
            dev = Signal(signed(self.d_width), name=f"e_dev{j}")           # stage 2
            n = Signal(signed(self.n_width), name=f"e_n{j}")               # stage 3
            y = Signal(signed(self.y_width), name=f"e_y{j}")               # stage 4
            prod = Signal(signed(self.prod_width), name=f"e_prod{j}")
            m.d.comb += prod.eq(dev * r2)
            with m.If(advance):
                m.d.sync += [dev.eq(d1 * rd.data[j] - s1_1),
                             n.eq(round_shift(prod, ops.LN_RECIP_BITS - ops.LN_FRAC)),
                             y.eq(n * gb3.gamma[j] + gb3.beta[j]),
                             self.o.payload.y[j].eq(saturate(round_shift(y, shift_out), 8))]
        return m

    def _scalar_stage(self, m, k, s_bank, s_next, ring, b_s1, b_s2, b_beats, b_r):
        """Scalar stage ``k``: takes the filled bank ``s_bank`` when it is idle and its turn
        (``s_next == k``), forms V, its square root and the reciprocal, marks the bank READY.
        Returns its idle flag."""
        NL = self.lanes
        sqrt = m.submodules[f"sqrt{k}" if k else "sqrt"] = self.sqrts[k]
        div = m.submodules[f"recip{k}" if k else "recip"] = ReciprocalDivider(
            ops.LN_RECIP_BITS, self.q_width, self.recip_bits)
        bank = Signal(range(self.banks), name=f"s{k}_bank")
        state = Signal(_Scalar, name=f"s{k}_state")
        d_s2 = Signal(self.s2_width + bits_for(self.max_dim), name=f"s{k}_dS2")
        s1_sq = Signal(2 * self.s1_width, name=f"s{k}_S1sq")
        v = Signal(self.v_width, name=f"s{k}_V")
        bstate = ring.state
        m.d.comb += [sqrt.i.payload.eq(v), sqrt.i.valid.eq(state == _Scalar.SQRT),
                     div.i.payload.eq(sqrt.o.payload),
                     div.i.valid.eq(sqrt.o.valid & (state == _Scalar.WAIT_SQRT)),
                     sqrt.o.ready.eq(div.i.ready & (state == _Scalar.WAIT_SQRT)),
                     div.o.ready.eq(state == _Scalar.WAIT_DIV)]
        with m.Switch(state):
            with m.Case(_Scalar.IDLE):
                with m.If((bstate[s_bank] == BankState.FILLED) & (s_next == k)):
                    s1b = b_s1[s_bank]
                    m.d.sync += [d_s2.eq(b_s2[s_bank] * (b_beats[s_bank] * NL)),
                                 s1_sq.eq(s1b * s1b), bank.eq(s_bank), state.eq(_Scalar.VAR)]
            with m.Case(_Scalar.VAR):
                m.d.sync += [v.eq(d_s2 - s1_sq + self.eps), state.eq(_Scalar.SQRT)]
            with m.Case(_Scalar.SQRT):
                with m.If(sqrt.i.ready):
                    m.d.sync += state.eq(_Scalar.WAIT_SQRT)
            with m.Case(_Scalar.WAIT_SQRT):
                with m.If(div.i.valid & div.i.ready):
                    m.d.sync += state.eq(_Scalar.WAIT_DIV)
            with m.Case(_Scalar.WAIT_DIV):
                with m.If(div.o.valid):
                    m.d.sync += [b_r[bank].eq(div.o.payload),
                                 bstate[bank].eq(BankState.READY), state.eq(_Scalar.IDLE)]
        return state == _Scalar.IDLE
