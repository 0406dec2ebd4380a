"""Tiling front end: C = A·B for any M×K×N on the R×C mesh, operands from on-chip memories."""

from __future__ import annotations

from types import SimpleNamespace

import math

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.array.mesh import Mesh
from rtl.array.pe import PE_LATENCY

__all__ = ["TiledMatmul", "command_layout", "a_pitch", "acc_row_layout", "matmul_cycles", "tile_period",
           "OPERAND_STAGES"]


def tile_period(k: int, rows: int, cols: int) -> int:
    """Cycles between two tiles: K steps, but at least R (draining R rows, one per cycle) and C
    (a row's last column must finish before the row is read)."""
    return max(k, rows, cols)


#: Registers between the operand memories' read data and the array's edge (the block RAMs'
#: outputs reach the first PE's multiplier over a flip-flop).
OPERAND_STAGES = 1


def matmul_cycles(m: int, k: int, n: int, rows: int, cols: int,
                  a_ready: list[int] | None = None) -> int:
    """Cycles from accepting a command up to the transfer of its last result row, without
    output back-pressure (each stalled cycle adds exactly one).

    Tiles start every :func:`tile_period` cycles from cycle 1; the last tile's step K-1 reaches
    PE(0, C-1) ``K + C + OPERAND_STAGES`` cycles after that tile started (memory read, operand
    register, column skew), row 0 is read ``PE_LATENCY`` cycles later and its last emitted row
    ``(M-1) mod R`` that many cycles after row 0.
    With ``a_ready`` (``a_gated``: the cycle, counted from the command's acceptance, from which
    ``a_rows`` covers row tile ``tm``, per row tile) a row tile's first tile starts no earlier
    than that; a stalled cycle while a row tile waits may then cost nothing.
    """
    tiles_m, tiles_n = math.ceil(m / rows), math.ceil(n / cols)
    period = tile_period(k, rows, cols)
    start = 1 - period                     # "the previous tile's start"
    for tm in range(tiles_m):
        start = max(start + period, a_ready[tm] if a_ready else 0)
        start += (tiles_n - 1) * period
    return start + k + cols + OPERAND_STAGES + PE_LATENCY - 1 + (m - 1) % rows


def command_layout(max_m: int, max_k: int, max_n: int, b_depth: int = 1) -> data.StructLayout:
    """One matrix multiply: A is M×K (rows of the A banks), B is N×K (weight rows); ``a_signed``
    selects int8 or uint8 (pixels, probabilities) for A; B starts at word ``b_offset`` of the
    weight banks (a ping-pong half, or a matrix inside it)."""
    return data.StructLayout({
        "m": unsigned(ceil_log2(max_m + 1)),
        "k": unsigned(ceil_log2(max_k + 1)),
        "n": unsigned(ceil_log2(max_n + 1)),
        "a_signed": 1,
        "b_offset": unsigned(max(1, ceil_log2(b_depth))),
    })


def a_pitch(k: int, align: int) -> int:
    """Bytes between two A rows of one bank: K rounded up to ``align``."""
    return -(-k // align) * align


def acc_row_layout(rows: int, cols: int, max_m: int, max_n: int, acc_width: int):
    """One result row: A row ``m``, column tile ``tn`` (columns ``tn*C …``), C int32 sums."""
    return data.StructLayout({
        "m": unsigned(max(1, ceil_log2(max_m))),
        "tn": unsigned(max(1, ceil_log2(math.ceil(max_n / cols)))),
        "acc": data.ArrayLayout(signed(acc_width), cols),
    })


class _State(enum.Enum, shape=2):
    IDLE = 0
    RUN = 1


class TiledMatmul(wiring.Component):
    """Streams the tiles of one M×K×N product through the mesh, back to back.

    Operand layout (what the DMA or a test writes): row ``m`` of A lives in bank ``m % R`` at
    byte addresses ``(m // R) * a_pitch(K, a_align) + k``, packed ``a_word_bytes`` to a bank
    word (little-endian); weight row ``n`` (output channel, torch ``[N, K]`` layout) of B
    in bank ``n % C`` at ``(n // C) * K + k``. Tiles are visited row-tile major; each tile feeds
    K steps, then idles to :func:`tile_period`. Rows beyond M and columns beyond N compute zeros;
    rows beyond M are not emitted, columns beyond N are ignored by the consumer.

    Output: one row of C int32 sums per cycle (``m``, column tile ``tn``). Back-pressure stalls
    the whole engine (one clock enable), so ``cycles = matmul_cycles(...) + stalled cycles``.

    Parameters
    ----------
    rows, cols : int
        Mesh shape R × C.
    max_m, max_k, max_n : int
        Largest supported problem (sizes the operand memories and counters).
    b_depth : int, optional
        Words per weight bank when the weight buffer is smaller than ``max_n × max_k`` (e.g. the
        config's ``weight_buffer_bytes / C``: one expert or MLP matrix).
    acc_width : int
        Accumulator width.
    a_word_bytes : int
        Bytes per A-bank word (a power of two): a load writes one word per cycle.
    a_align : int
        A rows are padded to a multiple of this many bytes (a multiple of ``a_word_bytes``).

    Attributes
    ----------
    a_load : In(stream) of ``{bank, addr, value}``: writes one A word (``a_word_bytes`` bytes at
        word address ``addr``; the gather unit or the activation loader fill the A banks through
        it; always ready)
    b_load : In(stream) of ``{bank, addr, value}``: writes one weight byte (always ready)
    b_word : In(stream) of ``{addr, mask, data[C]}``: writes ``data[j]`` into bank ``j`` at
        ``addr`` for every set ``mask`` bit (always ready; wins over ``b_load``). Both B writes
        land in the banks one cycle after they are accepted: a command must not read them
        earlier (the dispatcher's decode and issue cycles lie between)
    cmd : In(stream) of :func:`command_layout`
    out : Out(stream) of :func:`acc_row_layout`
    a_rows : In(range(max_m + 1)), A rows written so far; a_gated : In(1), honour it: a row
        tile starts only once ``a_rows`` covers its rows (the A-operand loader fills the banks
        while earlier row tiles compute)
    busy : Out(1)
    a_wait : Out(1), a row tile waits for its A rows
    k_step : Out(1), a cycle that feeds one of a tile's K steps (not stalled)
    period_pad : Out(1), a cycle that pads a tile to its period (K < R or C; not stalled)
    stalled : Out(1), busy but held by output back-pressure
    macs : Out(range(R * C + 1)), the useful MACs of a ``k_step`` cycle: the tile's rows below
        M times its columns below N (0 in other cycles)
    a_banks : list of :class:`amaranth.lib.memory.Memory` (``a_word_bytes``-byte words)
    b_banks : list of :class:`amaranth.lib.memory.Memory` (8-bit words)
    """

    def __init__(self, rows: int, cols: int, max_m: int, max_k: int, max_n: int,
                 acc_width: int = 32, b_depth: int | None = None, a_word_bytes: int = 1,
                 a_align: int = 1):
        for name, v in (("rows", rows), ("cols", cols), ("max_m", max_m), ("max_k", max_k),
                        ("max_n", max_n)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if a_word_bytes < 1 or a_word_bytes & (a_word_bytes - 1):
            raise ValueError(f"a_word_bytes must be a power of two, got {a_word_bytes}")
        if a_align < 1 or a_align % a_word_bytes:
            raise ValueError(f"a_align ({a_align}) must be a multiple of a_word_bytes")
        self.rows, self.cols = rows, cols
        self.max_m, self.max_k, self.max_n = max_m, max_k, max_n
        self.acc_width = acc_width
        self.a_word_bytes, self.a_align = a_word_bytes, a_align
        self.a_depth = math.ceil(max_m / rows) * a_pitch(max_k, a_align) // a_word_bytes
        # B holds one weight matrix (N*K <= C * b_depth): by default the largest max_n x max_k.
        self.b_depth = b_depth or math.ceil(max_n / cols) * max_k
        self.a_banks = [memory.Memory(shape=unsigned(8 * a_word_bytes), depth=self.a_depth,
                                      init=[]) for _ in range(rows)]
        self.b_banks = [memory.Memory(shape=signed(8), depth=self.b_depth, init=[])
                        for _ in range(cols)]
        super().__init__({
            "a_load": In(stream.Signature(data.StructLayout({
                "bank": unsigned(max(1, ceil_log2(rows))),
                "addr": unsigned(max(1, ceil_log2(self.a_depth))),
                "value": unsigned(8 * a_word_bytes)}))),
            "b_load": In(stream.Signature(data.StructLayout({
                "bank": unsigned(max(1, ceil_log2(cols))),
                "addr": unsigned(max(1, ceil_log2(self.b_depth))),
                "value": signed(8)}))),
            "b_word": In(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(self.b_depth))),
                "mask": unsigned(cols),
                "data": data.ArrayLayout(signed(8), cols)}))),
            "cmd": In(stream.Signature(command_layout(max_m, max_k, max_n, self.b_depth))),
            "out": Out(stream.Signature(acc_row_layout(rows, cols, max_m, max_n, acc_width))),
            "a_rows": In(range(max_m + 1)), "a_gated": In(1),
            "busy": Out(1), "a_wait": Out(1),
            "k_step": Out(1), "period_pad": Out(1), "stalled": Out(1),
            "macs": Out(range(rows * cols + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        p = SimpleNamespace()
        p.mesh = m.submodules.mesh = Mesh(self.rows, self.cols, a_width=9, b_width=8,
                                          acc_width=self.acc_width)
        for i, mem in enumerate(self.a_banks):
            m.submodules[f"a_bank_{i}"] = mem
        for j, mem in enumerate(self.b_banks):
            m.submodules[f"b_bank_{j}"] = mem
        p.en = Signal(name="en")           # array-wide clock enable (stall on back-pressure)
        m.d.comb += [p.en.eq(~self.out.valid | self.out.ready), p.mesh.en.eq(p.en)]
        self._registers(m, p)
        self._operands(m, p)
        self._skew(m, p)
        self._feeder(m, p)
        self._drain(m, p)
        self._activity(m, p)
        return m

    def _activity(self, m, p):
        """What each cycle is spent on (for the cycle-cause counters)."""
        R, C = self.rows, self.cols
        run = p.en & p.feeding
        rows_left = Signal(range(p.n_tiles_m * R + self.max_m + 1))
        cols_left = Signal(range(p.n_tiles_n * C + self.max_n + 1))
        m.d.comb += [rows_left.eq(p.m_len - p.m_base_wide), cols_left.eq(p.n_len - p.tn * C)]
        tile_rows = Mux(rows_left < R, rows_left, R)
        tile_cols = Mux(cols_left < C, cols_left, C)
        k_step = run & (p.step < p.k_len)
        m.d.comb += [self.k_step.eq(k_step), self.period_pad.eq(run & (p.step >= p.k_len)),
                     self.stalled.eq(self.busy & ~p.en),
                     self.macs.eq(Mux(k_step, tile_rows[:ceil_log2(R + 1)] *
                                      tile_cols[:ceil_log2(C + 1)], 0))]

    def _registers(self, m, p):
        """The command registers and the tile counters."""
        R, C = self.rows, self.cols
        p.k_len = Signal.like(self.cmd.payload.k)
        p.m_len = Signal.like(self.cmd.payload.m)
        p.n_len = Signal.like(self.cmd.payload.n)
        p.a_signed = Signal()
        p.pitch = Signal(range(a_pitch(self.max_k, self.a_align) + 1))
        p.b_offset = Signal.like(self.cmd.payload.b_offset)
        p.period = Signal(range(max(self.max_k, R, C) + 1))
        p.n_tiles_m = math.ceil(self.max_m / R)
        p.n_tiles_n = math.ceil(self.max_n / C)
        p.tm = Signal(range(p.n_tiles_m + 1))
        p.tn = Signal(range(p.n_tiles_n + 1))
        p.step = Signal(range(max(self.max_k, R, C) + 1))
        p.a_base = Signal(range(self.a_depth * self.a_word_bytes + self.max_k + 1))   # bytes
        p.b_base = Signal(range(self.b_depth + self.max_k + 1))
        p.tiles_m = Signal(range(p.n_tiles_m + 1))
        p.tiles_n = Signal(range(p.n_tiles_n + 1))
        p.pending = Signal(range(p.n_tiles_m * p.n_tiles_n + 1))   # tiles fed, not yet drained
        p.state = Signal(_State)
        m.d.comb += self.cmd.ready.eq(p.state == _State.IDLE)
        p.feeding = Signal()             # running and the row tile's A rows are in
        # The rows the current row tile needs, min(m_base + R, m): a register, set with m_base
        # (the command, each next row tile), so only a compare lies before ``feeding``.
        p.need = Signal(range(p.n_tiles_m * R + 1))
        p.m_base_wide = Signal(range(p.n_tiles_m * R + 1))
        a_ready = ~self.a_gated | (self.a_rows >= p.need)
        m.d.comb += [p.feeding.eq((p.state == _State.RUN) & a_ready),
                     self.a_wait.eq((p.state == _State.RUN) & ~a_ready)]

    def _operands(self, m, p):
        """Operand memories: writes from the load streams, synchronous reads held while
        stalled, and the step flags delayed to line up with the read data."""
        R, en = self.rows, p.en
        m.d.comb += self.a_load.ready.eq(1)
        for i, mem in enumerate(self.a_banks):
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.a_load.payload.addr), wr.data.eq(self.a_load.payload.value),
                         wr.en.eq(self.a_load.valid & (self.a_load.payload.bank == i))]
        # B writes are registered (they land one cycle after they are accepted): the loader's
        # and the B-mover's logic does not reach the banks' write enables in the same cycle.
        m.d.comb += [self.b_load.ready.eq(1), self.b_word.ready.eq(1)]
        bw, bw_valid = Signal.like(self.b_word.payload, name="bw"), Signal(name="bw_valid")
        bl, bl_valid = Signal.like(self.b_load.payload, name="bl"), Signal(name="bl_valid")
        m.d.sync += [bw.eq(self.b_word.payload), bw_valid.eq(self.b_word.valid),
                     bl.eq(self.b_load.payload), bl_valid.eq(self.b_load.valid)]
        for j, mem in enumerate(self.b_banks):
            wr = mem.write_port()
            with m.If(bw_valid):
                m.d.comb += [wr.addr.eq(bw.addr), wr.data.eq(bw.data[j]), wr.en.eq(bw.mask[j])]
            with m.Else():
                m.d.comb += [wr.addr.eq(bl.addr), wr.data.eq(bl.value),
                             wr.en.eq(bl_valid & (bl.bank == j))]
        a_reads = [mem.read_port(transparent_for=()) for mem in self.a_banks]
        p.b_reads = [mem.read_port(transparent_for=()) for mem in self.b_banks]
        aw_bits = ceil_log2(self.a_word_bytes)
        a_byte = Signal.like(p.a_base)
        a_sel = Signal(max(1, aw_bits))              # byte of the word being read, one cycle on
        m.d.comb += a_byte.eq(p.a_base + p.step)
        with m.If(en):
            m.d.sync += a_sel.eq(a_byte[:aw_bits] if aw_bits else 0)
        for port in a_reads:
            m.d.comb += [port.addr.eq(a_byte >> aw_bits), port.en.eq(en)]
        for port in p.b_reads:
            m.d.comb += [port.addr.eq(p.b_base + p.step), port.en.eq(en)]
        p.valid_q, p.first_q, p.last_q = Signal(), Signal(), Signal()
        p.tile_start = Signal()
        with m.If(en):
            m.d.sync += [
                p.valid_q.eq(p.feeding & (p.step < p.k_len)),
                p.first_q.eq(p.feeding & (p.step == 0)),
                p.last_q.eq(p.feeding & (p.step == p.k_len - 1)),
            ]
        m.d.comb += p.tile_start.eq(p.feeding & (p.step == 0))
        p.a_vals = [Signal(signed(9), name=f"a_val_{i}") for i in range(R)]
        for i in range(R):
            raw = a_reads[i].data.word_select(a_sel, 8) if aw_bits else a_reads[i].data
            m.d.comb += p.a_vals[i].eq(Mux(p.a_signed, raw.as_signed(), raw.as_unsigned()))

    def _skew(self, m, p):
        """Input skew: row i delayed by i cycles, column j by j cycles."""
        en, mesh = p.en, p.mesh

        def delayed(sig, cycles, name):
            cur = sig
            for d in range(cycles):
                nxt = Signal.like(sig, name=f"{name}_d{d}")
                with m.If(en):
                    m.d.sync += nxt.eq(cur)
                cur = nxt
            return cur

        # OPERAND_STAGES registers behind the operand memories, then the skew.
        s = OPERAND_STAGES
        for i in range(self.rows):
            m.d.comb += [
                mesh.a[i].eq(delayed(p.a_vals[i], i + s, f"a{i}")),
                mesh.valid[i].eq(delayed(p.valid_q, i + s, f"v{i}")),
                mesh.first[i].eq(delayed(p.first_q, i + s, f"f{i}")),
                mesh.last[i].eq(delayed(p.last_q, i + s, f"l{i}")),
            ]
        for j in range(self.cols):
            m.d.comb += mesh.b[j].eq(delayed(p.b_reads[j].data, j + s, f"b{j}"))

    def _feeder(self, m, p):
        """Tile bookkeeping for the drain, and the feeder FSM: K steps per tile, tiles row-tile
        major, each padded to the tile period."""
        R, C = self.rows, self.cols
        p.info = m.submodules.tile_info = fifo.SyncFIFO(
            width=len(self.out.payload.m) + len(self.out.payload.tn) + 1, depth=4)
        m.d.comb += [
            p.info.w_en.eq(p.en & p.tile_start),
            p.info.w_data.eq(p.m_base_wide | (p.tn << len(self.out.payload.m))),
        ]
        with m.Switch(p.state):
            with m.Case(_State.IDLE):
                with m.If(self.cmd.valid):
                    cmd = self.cmd.payload
                    m.d.sync += [
                        p.k_len.eq(cmd.k), p.m_len.eq(cmd.m), p.n_len.eq(cmd.n),
                        p.a_signed.eq(cmd.a_signed),
                        p.period.eq(Mux(cmd.k > max(R, C), cmd.k, max(R, C))),
                        p.tiles_m.eq((cmd.m + R - 1) // R), p.tiles_n.eq((cmd.n + C - 1) // C),
                        p.pitch.eq((cmd.k + self.a_align - 1) // self.a_align * self.a_align),
                        p.b_offset.eq(cmd.b_offset),
                        p.tm.eq(0), p.tn.eq(0), p.step.eq(0), p.a_base.eq(0),
                        p.b_base.eq(cmd.b_offset), p.m_base_wide.eq(0),
                        p.need.eq(Mux(cmd.m > R, R, cmd.m)),
                    ]
                    with m.If((cmd.m != 0) & (cmd.n != 0) & (cmd.k != 0)):
                        m.d.sync += p.state.eq(_State.RUN)
            with m.Case(_State.RUN):
                with m.If(p.en & p.feeding):
                    with m.If(p.step + 1 < p.period):
                        m.d.sync += p.step.eq(p.step + 1)
                    with m.Else():
                        m.d.sync += p.step.eq(0)
                        with m.If(p.tn + 1 < p.tiles_n):
                            m.d.sync += [p.tn.eq(p.tn + 1), p.b_base.eq(p.b_base + p.k_len)]
                        with m.Else():
                            m.d.sync += [p.tn.eq(0), p.b_base.eq(p.b_offset)]
                            with m.If(p.tm + 1 < p.tiles_m):
                                m.d.sync += [p.tm.eq(p.tm + 1), p.a_base.eq(p.a_base + p.pitch),
                                             p.m_base_wide.eq(p.m_base_wide + R),
                                             p.need.eq(Mux(p.m_base_wide + 2 * R > p.m_len,
                                                           p.m_len, p.m_base_wide + 2 * R))]
                            with m.Else():
                                m.d.sync += p.state.eq(_State.IDLE)

    def _drain(self, m, p):
        """Drain: read row r of the finished tile each cycle; busy until the last tile is out."""
        R, en, mesh, info = self.rows, p.en, p.mesh, p.info
        draining = Signal()
        row = Signal(range(R + 1))
        cur_m_base = Signal.like(p.m_base_wide)
        cur_tn = Signal.like(p.tn)
        row_m = Signal.like(p.m_base_wide)
        m.d.comb += row_m.eq(cur_m_base + row)
        start_drain = Signal()
        m.d.comb += [start_drain.eq(en & mesh.row0_done), info.r_en.eq(start_drain)]
        info_m = info.r_data[:len(self.out.payload.m)]
        info_tn = info.r_data[len(self.out.payload.m):]
        # Row 0 is read in the cycle row0_done pulses (from the FIFO head), later rows from regs.
        sel_row = Signal(range(R))
        sel_m = Signal.like(p.m_base_wide)
        sel_tn = Signal.like(p.tn)
        emit = Signal()
        with m.If(mesh.row0_done):
            m.d.comb += [sel_row.eq(0), sel_m.eq(info_m), sel_tn.eq(info_tn), emit.eq(1)]
        with m.Else():
            m.d.comb += [sel_row.eq(row), sel_m.eq(row_m), sel_tn.eq(cur_tn), emit.eq(draining)]
        # Whether the next row lies inside the matrix, registered: the array's clock enable
        # (``~out.valid | out.ready``) then comes from registers, not through the tile FIFO's
        # read data. A tile's row 0 always does (tiles exist only below m).
        next_in = Signal()
        with m.If(en):
            with m.If(mesh.row0_done):
                m.d.sync += [draining.eq(R > 1), row.eq(1), cur_m_base.eq(info_m),
                             cur_tn.eq(info_tn), next_in.eq(info_m + 1 < p.m_len)]
            with m.Elif(draining):
                m.d.sync += [row.eq(row + 1), next_in.eq(row_m + 1 < p.m_len)]
                with m.If(row == R - 1):
                    m.d.sync += draining.eq(0)
        m.d.comb += [
            self.out.valid.eq(Mux(mesh.row0_done, 1, draining & next_in)),
            self.out.payload.m.eq(sel_m),
            self.out.payload.tn.eq(sel_tn),
        ]
        with m.Switch(sel_row):
            for i in range(R):
                with m.Case(i):
                    m.d.comb += self.out.payload.acc.eq(mesh.results[i])
        last_row = Signal()
        m.d.comb += last_row.eq(en & ((draining & (row == R - 1)) |
                                      (mesh.row0_done & (R == 1))))
        with m.If(en):
            m.d.sync += p.pending.eq(p.pending + p.tile_start - last_row)
        m.d.comb += self.busy.eq((p.state != _State.IDLE) | (p.pending != 0))
