"""The MoE router: top-k over one task's gate logits, gate probabilities, per-expert queues.

Per token, the E gate logits (base-2 Q16, ascending expert index) stream in one per cycle.
A k-slot insertion list keeps the top-k (a new logit is inserted only *before* strictly smaller
ones, so ties keep the lower expert index, as ``ops.gate_top_k``'s stable sort). The same
logits feed a :class:`rtl.units.softmax.Softmax` (Q16 in 16 bits): the gate probabilities are the
softmax over all E experts, kept values not renormalised. As a token's probabilities come back,
the selected experts' ones are appended — with the token index — to per-expert queues. After
the frame's last token the unit emits the list of non-empty experts in ascending order (the
order the MoE schedule visits them, with their queue lengths) and, in parallel, the queues
themselves expert by expert, tokens ascending. This is M³ViT's "patch reordering".
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import ops
from rtl.units.arith import bits_for
from rtl.units.softmax import Softmax

__all__ = ["Router", "drain_latency"]


def drain_latency(experts: int) -> int:
    """Cycles from the frame's last probability to its first queue entry on ``queue``: its
    queue append (two stages), the listing of the non-empty experts (one a cycle), then the
    first queue-memory read."""
    return experts + 4


class _State(enum.Enum, shape=2):
    FILL = 0      # accepting the frame's logits
    WAIT = 1      # last logit accepted, probabilities still in flight
    LIST = 2      # listing the non-empty experts (E cycles)
    DRAIN = 3     # emitting the expert list and the queues


class Router(wiring.Component):
    """Top-k routing of one frame's tokens into per-expert queues.

    Parameters
    ----------
    experts : int
        E, gate outputs per token (1..64).
    top_k : int
        k, experts kept per token (1..E).
    max_tokens : int
        Tokens per frame (each expert's queue holds up to this many entries).
    in_width : int
        Width of the signed Q16 logits (32: int32).
    banks : int
        Row banks of the internal softmax (see :class:`rtl.units.softmax.Softmax`).

    Attributes
    ----------
    i : In(stream) of ``{t: signed(in_width), last}``: logits token after token, experts
        ascending; ``last`` marks the frame's final logit (its token's expert E-1).
    experts_out : Out(stream) of ``{expert, length, last}``: the non-empty experts ascending.
    queue : Out(stream) of ``{expert, token, prob, last, final}``: every queue entry, expert by
        expert (ascending), tokens ascending; ``last`` ends an expert's queue, ``final`` the
        frame. ``prob`` is the token's gate probability for that expert (uint16 Q16).
    queue_len : Out(ArrayLayout(unsigned, E)): queue lengths of the last frame (valid once its
        queues are being emitted, until the next frame's first logit).
    tokens : Out: tokens of the last frame.
    error : Out(1), sticky: a frame ended mid-token or had more than ``max_tokens`` tokens.
    queues : Memory of ``{token, prob}``, ``E * max_tokens`` entries (expert-major).
    """

    def __init__(self, experts: int, top_k: int, max_tokens: int, in_width: int = 32,
                 banks: int = 3):
        problems = []
        if not 1 <= experts <= 64:
            problems.append(f"experts must be in 1..64, got {experts}")
        if not 1 <= top_k <= max(1, experts):
            problems.append(f"top_k must be in 1..experts, got {top_k}")
        if max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {max_tokens}")
        if problems:
            raise ValueError("Router: " + "; ".join(problems))
        self.experts, self.top_k, self.max_tokens = experts, top_k, max_tokens
        self.in_width = in_width
        self.softmax = Softmax(max_len=experts, out_frac=ops.EXP_FRAC, out_bits=16,
                               in_width=in_width, banks=banks)
        self.tok_width = bits_for(max_tokens)
        entry = data.StructLayout({"token": unsigned(self.tok_width), "prob": unsigned(16)})
        self.queues = memory.Memory(shape=entry, depth=experts * max_tokens, init=[])
        exp_shape = range(experts)
        len_shape = unsigned(bits_for(max_tokens))
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"t": signed(in_width), "last": 1}))),
            "experts_out": Out(stream.Signature(data.StructLayout({
                "expert": exp_shape, "length": len_shape, "last": 1}))),
            "queue": Out(stream.Signature(data.StructLayout({
                "expert": exp_shape, "token": unsigned(self.tok_width), "prob": unsigned(16),
                "last": 1, "final": 1}))),
            "queue_len": Out(data.ArrayLayout(len_shape, experts)),
            "tokens": Out(len_shape),
            "error": Out(1),
        })

    def frame_cycles(self, tokens: int) -> int:
        """Cycles from a frame's first accepted logit to its last queue entry (input always
        valid, outputs always ready): the softmax's schedule for ``tokens`` rows of E, plus the
        listing of the non-empty experts (:func:`drain_latency`) and the drain of the
        ``tokens * k`` queue entries, one a cycle. The next frame's first logit is accepted two
        cycles after that last entry."""
        last_prob = self.softmax.schedule([self.experts] * tokens)[-1][1]
        return last_prob + drain_latency(self.experts) + tokens * self.top_k

    def elaborate(self, platform):
        m = Module()
        E, K, NT = self.experts, self.top_k, self.max_tokens
        m.submodules.softmax = sm = self.softmax
        m.submodules.queues = self.queues
        idx_shape = range(E)
        head_layout = data.StructLayout({"idx": data.ArrayLayout(idx_shape, K), "final": 1})
        m.submodules.pending = pend = fifo.SyncFIFO(width=head_layout.size,
                                                    depth=self.softmax.banks + 2)
        state = Signal(_State)
        counts = Array([Signal(len(self.queue_len[e]), name=f"count{e}") for e in range(E)])
        m.d.comb += [self.queue_len[e].eq(counts[e]) for e in range(E)]

        # ------------------------------------------------ input: top-k and the softmax
        j = Signal(idx_shape)                  # expert index of the incoming logit
        frame_open = Signal()
        tok_in = Signal(range(NT + 2))
        accept = Signal()
        token_end = Signal()
        m.d.comb += [
            self.i.ready.eq((state == _State.FILL) & sm.i.ready & pend.w_rdy),
            sm.i.valid.eq(self.i.valid & (state == _State.FILL) & pend.w_rdy),
            sm.i.payload.t[0].eq(self.i.payload.t), sm.i.payload.last.eq(token_end),
            accept.eq(self.i.valid & self.i.ready), token_end.eq(j == E - 1),
        ]
        t = self.i.payload.t
        val = [Signal(signed(self.in_width), name=f"top_val{s}") for s in range(K)]
        idx = [Signal(idx_shape, name=f"top_idx{s}") for s in range(K)]
        full = [Signal(name=f"top_full{s}") for s in range(K)]
        first = j == 0
        held = [full[s] & ~first for s in range(K)]
        ins = [~held[s] | (t > val[s]) for s in range(K)]
        new_val = [Signal.like(val[s], name=f"new_val{s}") for s in range(K)]
        new_idx = [Signal.like(idx[s], name=f"new_idx{s}") for s in range(K)]
        new_full = [Signal(name=f"new_full{s}") for s in range(K)]
        for s in range(K):
            here = ins[s] if s == 0 else ins[s] & ~ins[s - 1]      # the new logit's slot
            shifted = Const(0) if s == 0 else ins[s - 1]           # slot s-1 moves down
            with m.If(here):
                m.d.comb += [new_val[s].eq(t), new_idx[s].eq(j), new_full[s].eq(1)]
            with m.Elif(shifted):
                m.d.comb += [new_val[s].eq(val[s - 1]), new_idx[s].eq(idx[s - 1]),
                             new_full[s].eq(held[s - 1])]
            with m.Else():
                m.d.comb += [new_val[s].eq(val[s]), new_idx[s].eq(idx[s]),
                             new_full[s].eq(held[s])]
        head_in = Signal(head_layout)
        m.d.comb += [head_in.idx[s].eq(new_idx[s]) for s in range(K)]
        m.d.comb += [head_in.final.eq(self.i.payload.last), pend.w_data.eq(head_in),
                     pend.w_en.eq(accept & token_end)]
        with m.If(accept):
            m.d.sync += [val[s].eq(new_val[s]) for s in range(K)]
            m.d.sync += [idx[s].eq(new_idx[s]) for s in range(K)]
            m.d.sync += [full[s].eq(new_full[s]) for s in range(K)]
            m.d.sync += [j.eq(Mux(token_end, 0, j + 1)), frame_open.eq(~self.i.payload.last)]
            with m.If(~frame_open):                # a new frame: forget the last one's queues
                m.d.sync += [counts[e].eq(0) for e in range(E)]
                m.d.sync += tok_in.eq(0)
            with m.If(token_end):
                m.d.sync += tok_in.eq(Mux(frame_open, tok_in, 0) + 1)
                with m.If(Mux(frame_open, tok_in, 0) >= NT):
                    m.d.sync += self.error.eq(1)
            with m.If(self.i.payload.last):
                m.d.sync += state.eq(_State.WAIT)
                with m.If(~token_end):
                    m.d.sync += self.error.eq(1)

        # ------------------------------------- probabilities back: append to the queues
        jo = Signal(idx_shape)
        tok_out = Signal(unsigned(self.tok_width))
        head = Signal(head_layout)
        m.d.comb += [head.eq(pend.r_data), sm.o.ready.eq(1)]
        # Two stages: a probability's expert match and its queue's count are registered
        # (stage 1), the queue write and the count's increment follow (stage 2). Consecutive
        # probabilities are for different experts (E >= 2), so stage 1 never reads a count that
        # stage 2 is about to change; with one expert the pending increment is forwarded.
        s1 = {"v": Signal(name="ap_valid"), "hit": Signal(name="ap_hit"),
              "jo": Signal(idx_shape, name="ap_jo"), "token": Signal.like(tok_out, name="ap_token"),
              "prob": Signal(16, name="ap_prob"), "count": Signal.like(counts[0], name="ap_count"),
              "final": Signal(name="ap_final")}
        take = Signal()
        m.d.comb += take.eq(s1["v"] & s1["hit"] & (s1["count"] < NT))
        count = counts[jo] + (take if E == 1 else 0)
        m.d.sync += [s1["v"].eq(sm.o.valid),
                     s1["hit"].eq(Cat(head.idx[s] == jo for s in range(K)).any()),
                     s1["jo"].eq(jo), s1["token"].eq(tok_out), s1["prob"].eq(sm.o.payload.p[0]),
                     s1["count"].eq(count),
                     s1["final"].eq(sm.o.valid & sm.o.payload.last & head.final)]
        bases = Array([e * NT for e in range(E)])
        wr = self.queues.write_port()
        m.d.comb += [wr.addr.eq(bases[s1["jo"]] + s1["count"]), wr.data.token.eq(s1["token"]),
                     wr.data.prob.eq(s1["prob"]), wr.en.eq(take)]
        with m.If(take):
            m.d.sync += counts[s1["jo"]].eq(s1["count"] + 1)
        with m.If(s1["final"]):
            m.d.sync += state.eq(_State.LIST)      # after the frame's last count is in
        with m.If(sm.o.valid):
            m.d.sync += jo.eq(Mux(sm.o.payload.last, 0, jo + 1))
            with m.If(sm.o.payload.last):
                m.d.comb += pend.r_en.eq(1)
                m.d.sync += tok_out.eq(tok_out + 1)
                with m.If(head.final):
                    m.d.sync += [self.tokens.eq(tok_out + 1), tok_out.eq(0)]

        # ------------------------------------------------- list, then drain
        # LIST (E cycles, one expert a cycle): the non-empty experts go into a short list of
        # registers (expert, queue base, length); the drain reads it by registered pointers, so
        # no priority encoder or count multiplexer lies between two drain registers.
        listing = state == _State.LIST
        draining = state == _State.DRAIN
        ent = data.StructLayout({"expert": idx_shape, "base": range(E * NT),
                                 "length": unsigned(bits_for(NT))})
        lst = Array([Signal(ent, name=f"list{k}") for k in range(E)])
        n_list = Signal(range(E + 1))
        scan = Signal(range(E))
        scan_base = Signal(range(E * NT))
        with m.If(listing):
            m.d.sync += [scan.eq(scan + 1), scan_base.eq(scan_base + NT)]
            with m.If(counts[scan] != 0):
                m.d.sync += [lst[n_list].expert.eq(scan), lst[n_list].base.eq(scan_base),
                             lst[n_list].length.eq(counts[scan]), n_list.eq(n_list + 1)]
            with m.If(scan == E - 1):
                m.d.sync += [state.eq(_State.DRAIN), scan.eq(0), scan_base.eq(0)]

        # The expert list: a registered stream walking the list.
        xo = self.experts_out
        e_ptr = Signal(range(E + 1))
        with m.If(draining & (~xo.valid | xo.ready)):
            m.d.sync += [xo.valid.eq(e_ptr != n_list), xo.payload.expert.eq(lst[e_ptr].expert),
                         xo.payload.length.eq(lst[e_ptr].length),
                         xo.payload.last.eq(e_ptr + 1 == n_list)]
            with m.If(e_ptr != n_list):
                m.d.sync += e_ptr.eq(e_ptr + 1)

        # The queues: the current expert's entry in registers, the next one's list index.
        q = self.queue
        cur = Signal(ent, name="q_cur")
        cur_valid = Signal()
        q_next = Signal(range(E + 1))
        q_i = Signal(range(NT + 1))
        advance = Signal()
        m.d.comb += advance.eq(~q.valid | q.ready)
        rd = self.queues.read_port(transparent_for=())
        m.d.comb += [rd.addr.eq(cur.base + q_i), rd.en.eq(advance),
                     q.payload.token.eq(rd.data.token), q.payload.prob.eq(rd.data.prob)]
        q_end = Signal()
        m.d.comb += q_end.eq(q_i + 1 == cur.length)
        with m.If(listing & (scan == E - 1)):       # the first entry (list[0] once written)
            m.d.sync += [cur_valid.eq(0), q_next.eq(0), q_i.eq(0)]
        with m.If(draining & advance):
            m.d.sync += q.valid.eq(cur_valid)
            with m.If(cur_valid):
                m.d.sync += [q.payload.expert.eq(cur.expert), q.payload.last.eq(q_end),
                             q.payload.final.eq(q_end & (q_next == n_list))]
            with m.If(~cur_valid | q_end):
                m.d.sync += [cur.eq(lst[q_next]), cur_valid.eq(q_next != n_list), q_i.eq(0)]
                with m.If(q_next != n_list):
                    m.d.sync += q_next.eq(q_next + 1)
            with m.Else():
                m.d.sync += q_i.eq(q_i + 1)
        with m.If(draining & (e_ptr == n_list) & ~xo.valid & ~cur_valid & (q_next == n_list)
                  & ~q.valid):
            m.d.sync += [state.eq(_State.FILL), e_ptr.eq(0), q_next.eq(0), n_list.eq(0)]
        return m
