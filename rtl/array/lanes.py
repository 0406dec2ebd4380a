"""Vector lanes behind the mesh: bias, requantise, GELU, residual add, MoE scatter-accumulate.

Each lane handles one output column; a row of C lanes is processed per cycle, in a fixed-length
pipeline that stalls as a whole on output back-pressure. Every stage reproduces the integer
reference (:mod:`golden.quant.ops`) bit for bit:

=========  ===============================================================================
stage      operation (``golden.quant.ops`` name)
=========  ===============================================================================
1–2        ``acc + bias[n]``, then ``× M[n]`` (``matmul`` bias, ``requantize``)
3–4        ``round_shift(·, sh[n])`` (the variable shift, then the rounding increment) and
           saturation to 8/16/32 bits (``requantize``)
5–7        optional ``gelu_q10`` (one read of a table holding each entry and its difference
           to the next, the difference times the fraction, then the interpolation)
8–10       optional second requantisation ``× M_act``, then ``round_shift`` (shift, then
           increment) and ``sat8``
11–14      optional ``residual_add`` (read-modify-write of the residual memory) or
           ``moe_accumulate`` (``round_shift(y·p, 16)`` added to the token's accumulator row):
           read, register the read row, update, then write back from the output register
=========  ===============================================================================

A variable ``round_shift`` and its saturation take two stages (:func:`_shift_stage`,
:func:`_round_saturate`): the barrel shift in one, the increment and the range checks (on the
shifted value, beside the adder rather than after it) in the next.

Without a matrix multiply, ``mode.aux`` (:class:`Aux`) uses the same pipeline on the state
memories: ``RES_SET`` writes loaded rows into the residual (requantised by one constant row),
``RES_READ`` streams residual rows out (LayerNorm's input), ``ACC_COMMIT`` adds the MoE
accumulator into the residual and clears it, ``ACC_CLEAR`` only clears it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.quant import ops
from rtl.bus.register_slice import output_skid
from rtl.units.arith import interpolation_rom, round_saturate, round_shift, saturate, shift_for_round

__all__ = ["VectorLanes", "Aux", "LaneConstant", "OutBits", "lane_mode_layout", "VECTOR_LATENCY",
           "lane_in_layout", "lane_out_layout"]

# Cycles from a row entering the lanes to its result on ``out`` (without back-pressure).
VECTOR_LATENCY = 14


class OutBits(enum.Enum, shape=2):
    """Saturation width of the first requantisation."""
    INT8 = 0
    INT16 = 1
    INT32 = 2


class Aux(enum.Enum, shape=3):
    """State-memory operations that use the lanes without a matrix multiply (the input row's
    ``m``/``tn`` address the row; its accumulators are ignored except by ``RES_SET``)."""
    NONE = 0
    RES_SET = 1       # residual[m] = value requantised by constant row const_base (every tn)
    RES_READ = 2      # emit residual[m] (feeding LayerNorm)
    ACC_COMMIT = 3    # residual[m] = sat16(residual[m] + moe_acc[m]); moe_acc[m] = 0
    ACC_CLEAR = 4     # moe_acc[m] = 0


# Per output channel: int32 bias (accumulator units), 15-bit multiplier, shift.
LaneConstant = data.StructLayout({
    "bias": signed(32),
    "mult": unsigned(ops.MULT_BITS),
    "shift": unsigned(6),
})


def lane_mode_layout(const_depth: int) -> data.StructLayout:
    """What the lanes do for one operation (held constant while it runs)."""
    return data.StructLayout({
        "const_base": unsigned(max(1, ceil_log2(const_depth))),
        "out_bits": OutBits,
        "gelu": 1,
        "act_mult": unsigned(ops.MULT_BITS),
        "act_shift": unsigned(6),
        "residual": 1,
        "scatter": 1,
        "aux": Aux,
    })


def lane_in_layout(cols: int, m_width: int, tn_width: int, acc_width: int = 32):
    """A row into the lanes: row (or token) ``m``, column tile ``tn``, C accumulators."""
    return data.StructLayout({"m": unsigned(m_width), "tn": unsigned(tn_width),
                              "acc": data.ArrayLayout(signed(acc_width), cols)})


def lane_out_layout(cols: int, m_width: int, tn_width: int):
    """A row out of the lanes: ``m`` (the token for scatter rows), ``tn``, C values."""
    return data.StructLayout({"m": unsigned(m_width), "tn": unsigned(tn_width),
                              "values": data.ArrayLayout(signed(32), cols)})


class VectorLanes(wiring.Component):
    """C lanes turning int32 accumulator rows into the next layer's values.

    Parameters
    ----------
    cols : int
        Lanes (the mesh's C).
    max_m : int
        Largest row index + 1 (tokens of a frame, or an expert queue).
    max_tn : int
        Column tiles per row (ceil(max N / C)).
    const_depth : int
        Rows of per-channel constants (one per column tile of every layer the program uses).
    max_tokens : int
        Rows of the residual and MoE accumulator memories.

    Attributes
    ----------
    i : In(stream) of rows ``{m, tn, acc[C]}`` (from :class:`rtl.array.tiler.TiledMatmul`)
    out : Out(stream) of rows ``{m, tn, values[C]}``: ``m`` is the token for scatter rows
    mode : In(:func:`lane_mode_layout`)
    busy : Out(1), a row is in the pipeline
    held : Out(1), the pipeline waits for the sink (its output buffer holds a row: a register)
    const_load, queue_load : In(stream) of ``{addr, value}``, always ready: how the program
        loader fills the constant and queue memories
    constants : Memory of ``ArrayLayout(LaneConstant, C)``, address ``const_base + tn``
    residual : Memory of ``ArrayLayout(signed(16), C)``, address ``(m << tn_bits) | tn``
    moe_acc : Memory of ``ArrayLayout(signed(32), C)``, address ``(token << tn_bits) | tn``
    queue : Memory of ``{token, prob}`` per row ``m`` (the expert's token queue, Q16 probs)
    """

    def __init__(self, cols: int, max_m: int, max_tn: int, const_depth: int,
                 max_tokens: int | None = None, m_width: int | None = None,
                 tn_width: int | None = None, acc_width: int = 32):
        for name, v in (("cols", cols), ("max_m", max_m), ("max_tn", max_tn),
                        ("const_depth", const_depth)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.cols = cols
        self.max_m, self.max_tn, self.const_depth = max_m, max_tn, const_depth
        self.max_tokens = max_tokens or max_m
        self.tn_bits = max(1, ceil_log2(max_tn))
        m_width = m_width or max(1, ceil_log2(max(max_m, self.max_tokens)))
        tn_width = tn_width or self.tn_bits
        self.constants = memory.Memory(shape=data.ArrayLayout(LaneConstant, cols),
                                       depth=const_depth, init=[])
        self.residual = memory.Memory(shape=data.ArrayLayout(signed(16), cols),
                                      depth=self.max_tokens << self.tn_bits, init=[])
        self.moe_acc = memory.Memory(shape=data.ArrayLayout(signed(32), cols),
                                     depth=self.max_tokens << self.tn_bits, init=[])
        queue_entry = data.StructLayout({"token": unsigned(m_width), "prob": unsigned(16)})
        self.queue = memory.Memory(shape=queue_entry, depth=max_m, init=[])
        self.gelu_tables = [interpolation_rom(ops.gelu_table(), signed(20)) for _ in range(cols)]
        row_in = lane_in_layout(cols, m_width, tn_width, acc_width)
        row_out = lane_out_layout(cols, m_width, tn_width)
        super().__init__({
            "i": In(stream.Signature(row_in)),
            "out": Out(stream.Signature(row_out)),
            "mode": In(lane_mode_layout(const_depth)),
            "busy": Out(1), "held": Out(1),
            "const_load": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(const_depth))),
                "value": data.ArrayLayout(LaneConstant, cols)}))),
            "queue_load": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(max_m))), "value": queue_entry}))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.constants = self.constants
        m.submodules.residual = self.residual
        m.submodules.moe_acc = self.moe_acc
        m.submodules.queue = self.queue
        for j, t in enumerate(self.gelu_tables):
            m.submodules[f"gelu_table_{j}"] = t
        for port, mem in ((self.const_load, self.constants), (self.queue_load, self.queue)):
            wr = mem.write_port()
            m.d.comb += [port.ready.eq(1), wr.addr.eq(port.payload.addr),
                         wr.data.eq(port.payload.value), wr.en.eq(port.valid)]
        # The pipeline advances unless the output buffer holds a row (a register: the sink's
        # ready reaches neither this enable nor, through it, the array's).
        p = SimpleNamespace(en=Signal(name="en"), skid_full=Signal(name="skid_full"))
        m.d.comb += [p.en.eq(~p.skid_full), self.i.ready.eq(p.en), self.held.eq(p.skid_full)]
        self._front(m, p)
        self._requantise(m, p)
        self._gelu(m, p)
        self._state_update(m, p)
        return m

    def _stage(self, shape, s, name):
        return [Signal(shape, name=f"{name}_{j}_s{s}") for j in range(self.cols)]

    def _front(self, m, p):
        """Row bookkeeping through the pipeline; stage 0 → 1: latch the accumulators, read the
        constants and the queue entry."""
        C, en, mode = self.cols, p.en, self.mode
        n_stages = VECTOR_LATENCY
        p.valid = [Signal(name=f"valid_{s}") for s in range(n_stages + 1)]
        m.d.comb += p.valid[0].eq(self.i.valid)
        p.row_m = [Signal.like(self.i.payload.m, name=f"m_{s}") for s in range(n_stages + 1)]
        p.row_tn = [Signal.like(self.i.payload.tn, name=f"tn_{s}") for s in range(n_stages + 1)]
        m.d.comb += [p.row_m[0].eq(self.i.payload.m), p.row_tn[0].eq(self.i.payload.tn)]
        with m.If(en):
            for s in range(n_stages):
                m.d.sync += [p.valid[s + 1].eq(p.valid[s]), p.row_m[s + 1].eq(p.row_m[s]),
                             p.row_tn[s + 1].eq(p.row_tn[s])]
        p.const_rd = self.constants.read_port(transparent_for=())
        p.queue_rd = self.queue.read_port(transparent_for=())
        # RES_SET rows share one constant row (the loader's identity requantisation) for every tn.
        const_tn = Mux(mode.aux == Aux.RES_SET, 0, self.i.payload.tn)
        m.d.comb += [p.const_rd.addr.eq(mode.const_base + const_tn), p.const_rd.en.eq(en),
                     p.queue_rd.addr.eq(self.i.payload.m), p.queue_rd.en.eq(en)]
        p.acc1 = self._stage(signed(32), 1, "acc")
        with m.If(en):
            m.d.sync += [p.acc1[j].eq(self.i.payload.acc[j]) for j in range(C)]

    def _requantise(self, m, p):
        """Stage 1 → 2: bias (the constants word as it leaves the memory); 2 → 3: multiplier;
        3 → 4: the variable shift; 4 → 5: round and saturate."""
        C, en, mode = self.cols, p.en, self.mode
        n_stages = VECTOR_LATENCY
        biased2 = self._stage(signed(33), 2, "biased")
        mult2 = self._stage(unsigned(ops.MULT_BITS), 2, "mult")
        shift2 = self._stage(unsigned(6), 2, "shift")
        p.token = [Signal.like(p.queue_rd.data.token, name=f"token_s{s}")
                   for s in range(n_stages + 1)]
        p.prob = [Signal(16, name=f"prob_s{s}") for s in range(n_stages + 1)]
        with m.If(en):
            for j in range(C):
                k = p.const_rd.data[j]
                m.d.sync += [biased2[j].eq(p.acc1[j] + k.bias), mult2[j].eq(k.mult),
                             shift2[j].eq(k.shift)]
            m.d.sync += [p.token[2].eq(p.queue_rd.data.token), p.prob[2].eq(p.queue_rd.data.prob)]
            for s in range(2, n_stages):
                m.d.sync += [p.token[s + 1].eq(p.token[s]), p.prob[s + 1].eq(p.prob[s])]
        prod3 = self._stage(signed(49), 3, "prod")
        shift3 = self._stage(unsigned(6), 3, "shift")
        with m.If(en):
            m.d.sync += [prod3[j].eq(biased2[j] * mult2[j]) for j in range(C)]
            m.d.sync += [shift3[j].eq(shift2[j]) for j in range(C)]
        shifted4 = self._stage(signed(49), 4, "shifted")
        with m.If(en):
            m.d.sync += [shifted4[j].eq(shift_for_round(prod3[j], shift3[j])) for j in range(C)]
        p.y5 = self._stage(signed(32), 5, "y")
        with m.If(en):
            for j in range(C):
                with m.Switch(mode.out_bits):
                    with m.Case(OutBits.INT8):
                        m.d.sync += p.y5[j].eq(round_saturate(shifted4[j], 8))
                    with m.Case(OutBits.INT16):
                        m.d.sync += p.y5[j].eq(round_saturate(shifted4[j], 16))
                    with m.Default():
                        m.d.sync += p.y5[j].eq(round_saturate(shifted4[j], 32))

    def _gelu(self, m, p):
        """Stage 5 → 6: GELU table read (an entry and its difference to the next) for int16
        Q10 inputs; 6 → 7: the difference times the fraction; 7 → 8: interpolate, choose GELU
        or pass-through; 8 → 9: second multiplier; 9 → 10: its variable shift; 10 → 11: round
        and saturate to int8 (GELU) or pass-through."""
        C, en, mode, y5 = self.cols, p.en, self.mode, p.y5
        lo = -ops.GELU_RANGE << ops.GELU_FRAC
        hi = ops.GELU_RANGE << ops.GELU_FRAC
        frac_bits = ops.GELU_FRAC - ops.GELU_STEP_BITS
        x6 = self._stage(signed(32), 6, "x")
        f6 = self._stage(unsigned(frac_bits), 6, "f")
        tables = []
        for j in range(C):
            rd = self.gelu_tables[j].read_port(transparent_for=())
            u = Signal(range(hi - lo), name=f"gelu_u_{j}")
            m.d.comb += u.eq(Mux(y5[j] < lo, 0, Mux(y5[j] >= hi, hi - lo - 1, y5[j] - lo)))
            m.d.comb += [rd.addr.eq(u >> frac_bits), rd.en.eq(en)]
            with m.If(en):
                m.d.sync += [x6[j].eq(y5[j]), f6[j].eq(u[:frac_bits])]
            tables.append(rd.data)
        # The table word is used as it leaves the block RAM: only the product of its difference.
        y7 = self._stage(signed(32), 7, "y")
        t7 = self._stage(signed(20), 7, "gelu_t")
        dprod7 = self._stage(signed(len(tables[0].d) + frac_bits + 1), 7, "gelu_dprod")
        with m.If(en):
            for j in range(C):
                m.d.sync += [y7[j].eq(x6[j]), t7[j].eq(tables[j].t),
                             dprod7[j].eq(tables[j].d * f6[j])]
        y8 = self._stage(signed(32), 8, "y")
        g8 = self._stage(signed(22), 8, "gelu")
        with m.If(en):
            for j in range(C):
                inner = Signal(signed(21), name=f"gelu_inner_{j}")
                m.d.comb += inner.eq(t7[j] + round_shift(dprod7[j], frac_bits))
                m.d.sync += [y8[j].eq(y7[j]), g8[j].eq(
                    Mux(y7[j] < lo, 0,
                        Mux(y7[j] >= hi, y7[j] << (ops.GELU_OUT_FRAC - ops.GELU_FRAC), inner)))]
        y9 = self._stage(signed(32), 9, "y")
        prod9 = self._stage(signed(40), 9, "act_prod")
        with m.If(en):
            for j in range(C):
                m.d.sync += [y9[j].eq(y8[j]), prod9[j].eq(g8[j] * mode.act_mult)]
        y10 = self._stage(signed(32), 10, "y")
        shifted10 = self._stage(signed(40), 10, "act_shifted")
        with m.If(en):
            for j in range(C):
                m.d.sync += [y10[j].eq(y9[j]),
                             shifted10[j].eq(shift_for_round(prod9[j], mode.act_shift))]
        p.y11 = self._stage(signed(32), 11, "y")
        with m.If(en):
            for j in range(C):
                m.d.sync += p.y11[j].eq(Mux(mode.gelu, round_saturate(shifted10[j], 8), y10[j]))

    def _state_update(self, m, p):
        """Stage 11 → 12: read the residual / accumulator row, weight by the gate probability;
        12 → 13: register the row as it leaves the memories; 13 → 14: update and emit; in the
        cycle after, write the updated row back from that output register.

        The memories' outputs and inputs each meet only a register (the read data is not
        forwarded from a pending write): rows of one instruction address distinct entries (a
        matmul's ``(m, tn)`` tiles, an aux pass over rows, an expert queue's distinct tokens),
        and an instruction starts only after the previous one has left the lanes, its writes
        done."""
        C, en, mode = self.cols, p.en, self.mode
        res_wr = self.residual.write_port()
        acc_wr = self.moe_acc.write_port()
        res_rd = self.residual.read_port(transparent_for=())
        acc_rd = self.moe_acc.read_port(transparent_for=())
        addr11 = Signal(len(res_rd.addr))
        m.d.comb += addr11.eq(Cat(p.row_tn[11][:self.tn_bits],
                                  Mux(mode.scatter, p.token[11], p.row_m[11])))
        m.d.comb += [res_rd.addr.eq(addr11), acc_rd.addr.eq(addr11),
                     res_rd.en.eq(en), acc_rd.en.eq(en)]
        y12 = self._stage(signed(32), 12, "y")
        contrib12 = self._stage(signed(33), 12, "contrib")
        addr12 = Signal.like(addr11)
        with m.If(en):
            m.d.sync += addr12.eq(addr11)
            for j in range(C):
                m.d.sync += [y12[j].eq(p.y11[j]),
                             contrib12[j].eq(round_shift(p.y11[j] * p.prob[11], 16))]
        y13 = self._stage(signed(32), 13, "y")
        contrib13 = self._stage(signed(33), 13, "contrib")
        res13 = self._stage(signed(16), 13, "res")
        acc13 = self._stage(signed(32), 13, "moe_acc")
        addr13 = Signal.like(addr11)
        with m.If(en):
            m.d.sync += addr13.eq(addr12)
            for j in range(C):
                m.d.sync += [y13[j].eq(y12[j]), contrib13[j].eq(contrib12[j]),
                             res13[j].eq(res_rd.data[j]), acc13[j].eq(acc_rd.data[j])]
        values = [Signal(signed(32), name=f"value_{j}") for j in range(C)]
        sel = self._update_select(m)
        for j in range(C):
            with m.If(sel.read):
                m.d.comb += values[j].eq(res13[j])
            with m.Elif(sel.commit):
                m.d.comb += values[j].eq(saturate(res13[j] + acc13[j], 16))
            with m.Elif(sel.residual):
                m.d.comb += values[j].eq(saturate(res13[j] + y13[j], 16))
            with m.Elif(sel.scatter):
                m.d.comb += values[j].eq(acc13[j] + contrib13[j])
            with m.Else():
                m.d.comb += values[j].eq(y13[j])
        pipe = Signal.like(self.out.payload, name="pipe_out")
        wr_addr = Signal.like(addr11)
        res_pending, acc_pending = Signal(), Signal()
        last = VECTOR_LATENCY - 1
        m.d.sync += [res_pending.eq(en & p.valid[last] & sel.res_write),
                     acc_pending.eq(en & p.valid[last] & sel.acc_write)]
        with m.If(en):
            m.d.sync += [pipe.values[j].eq(values[j]) for j in range(C)]
            m.d.sync += [pipe.m.eq(Mux(mode.scatter, p.token[last], p.row_m[last])),
                         pipe.tn.eq(p.row_tn[last]), wr_addr.eq(addr13)]
        m.d.comb += [res_wr.addr.eq(wr_addr), acc_wr.addr.eq(wr_addr),
                     res_wr.en.eq(Mux(res_pending, -1, 0)),
                     acc_wr.en.eq(Mux(acc_pending, -1, 0))]
        for j in range(C):
            m.d.comb += [res_wr.data[j].eq(pipe.values[j]),
                         acc_wr.data[j].eq(Mux(sel.zero_acc, 0, pipe.values[j]))]
        output_skid(m, self.out, pipe, p.valid[VECTOR_LATENCY], p.skid_full)
        m.d.comb += self.busy.eq(Cat(p.valid[1:]).any() | p.skid_full)

    def _update_select(self, m):
        """The state update's selects, decoded from ``mode`` into registers. ``mode`` only
        changes between instructions, with the lanes idle, and a row reaches stage 13 at least
        13 cycles after its instruction began, so the one-cycle lag is never seen; the update's
        multiplexers and write enables see no comparison on ``mode.aux``."""
        mode, aux = self.mode, self.mode.aux
        names = ("read", "commit", "residual", "scatter", "zero_acc", "res_write", "acc_write")
        sel = SimpleNamespace(**{n: Signal(name=f"sel_{n}") for n in names})
        zero_acc = (aux == Aux.ACC_COMMIT) | (aux == Aux.ACC_CLEAR)
        m.d.sync += [sel.read.eq(aux == Aux.RES_READ), sel.commit.eq(aux == Aux.ACC_COMMIT),
                     sel.residual.eq(mode.residual), sel.scatter.eq(mode.scatter),
                     sel.zero_acc.eq(zero_acc),
                     sel.res_write.eq(mode.residual | (aux == Aux.RES_SET)
                                      | (aux == Aux.ACC_COMMIT)),
                     sel.acc_write.eq(mode.scatter | zero_acc)]
        return sel
