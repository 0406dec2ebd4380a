"""DDR load engine: an AXI4 read DMA — one engine, or with two masters a
:class:`~rtl.bus.split_reader.SplitReader` reading on both ports at twice the rate — whose packed
words are regrouped into the words of the on-chip memory a LOAD names (weights, lane constants,
activations, LayerNorm γ/β, residual rows, program instructions)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.quant import ops
from rtl.array.lanes import LaneConstant
from rtl.bus.axi import axi4_from_config
from rtl.bus.dma import DMAReader
from rtl.bus.register_slice import RegisterSlice
from rtl.bus.split_reader import SplitReader
from rtl.config import CONST_RECORD_BYTES, LNP_RECORD_BYTES, AccelConfig
from rtl.control.isa import INSTR_BITS, Dest, load_cmd_layout
from rtl.units.layernorm import GAMMA_WIDTH

__all__ = ["Loader", "WordResizer", "LoadTarget", "dest_word_bytes", "load_port_signatures",
           "BETA_WIDTH"]

BETA_WIDTH = 48          # LayerNorm beta as loaded (int64 in DDR, range-checked by the compiler)


class LoadTarget:
    """Loader destination codes: the ISA's :class:`rtl.control.isa.Dest` plus the program
    memory."""
    IMEM = 7


def dest_word_bytes(cfg: AccelConfig) -> dict[int, int]:
    """Bytes of one destination word, per destination code (from the config's
    ``load_word_bytes``)."""
    codes = {"B": Dest.B.value, "CONST": Dest.CONST.value, "ACT": Dest.ACT.value,
             "LNP": Dest.LNP.value, "RES": Dest.RES.value, "IMEM": LoadTarget.IMEM}
    return {codes[name]: nbytes for name, nbytes in cfg.load_word_bytes.items()}


def load_port_signatures(cfg: AccelConfig) -> dict[str, wiring.Signature]:
    """The loader's output streams as the loader sees them (``Out``): the one definition the
    loader and the datapath (``In``) both build their ports from."""
    C = cfg.array_cols
    lanes = cfg.ln_lanes

    def w(depth):
        return unsigned(max(1, ceil_log2(depth)))
    return {
        "b_wr": stream.Signature(data.StructLayout({
            "addr": w(cfg.b_words), "data": data.ArrayLayout(signed(8), C)})),
        "act_wr": stream.Signature(data.StructLayout({
            "addr": w(cfg.act_words), "data": data.ArrayLayout(unsigned(8), C)})),
        "const_wr": stream.Signature(data.StructLayout({
            "addr": w(cfg.const_rows), "value": data.ArrayLayout(LaneConstant, C)})),
        "lnp_wr": stream.Signature(data.StructLayout({
            "addr": w(cfg.lnp_words),
            "gamma": data.ArrayLayout(signed(GAMMA_WIDTH), lanes),
            "beta": data.ArrayLayout(signed(BETA_WIDTH), lanes)})),
        "res_row": stream.Signature(data.StructLayout({
            "m": unsigned(cfg.token_bits), "tn": unsigned(cfg.tn_bits),
            "acc": data.ArrayLayout(signed(32), C)})),
    }


class WordResizer(wiring.Component):
    """Groups ``ratio`` consecutive input words into one output word (first word in the low
    bits), with no added latency: the output is valid in the cycle the last part arrives."""

    def __init__(self, in_bits: int, ratio: int):
        if ratio < 1:
            raise ValueError(f"ratio must be >= 1, got {ratio}")
        self.in_bits, self.ratio = in_bits, ratio
        super().__init__({"i": In(stream.Signature(unsigned(in_bits))),
                          "o": Out(stream.Signature(unsigned(in_bits * ratio)))})

    def elaborate(self, platform):
        m = Module()
        if self.ratio == 1:
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                         self.i.ready.eq(self.o.ready)]
            return m
        parts = [Signal(self.in_bits, name=f"part_{p}") for p in range(self.ratio - 1)]
        count = Signal(range(self.ratio))
        full = count == self.ratio - 1
        m.d.comb += [self.o.payload.eq(Cat(*parts, self.i.payload)),
                     self.o.valid.eq(self.i.valid & full),
                     self.i.ready.eq(~full | self.o.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(full, 0, count + 1))
            with m.Switch(count):
                for p in range(self.ratio - 1):
                    with m.Case(p):
                        m.d.sync += parts[p].eq(self.i.payload)
        return m


class Loader(wiring.Component):
    """Executes one load at a time: ``length = words × word_bytes(dest)`` bytes from ``addr``.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    cmd : In(stream) of :func:`rtl.control.isa.load_cmd_layout`; accepted when idle
    axi : Out(AXI4 manager) (read channels only); axi1 : likewise, the second read port (only
        with ``cfg.axi_masters == 2``: each load is read half on each port)
    b_wr, act_wr : Out(stream) of ``{addr, data[C bytes]}`` (``b_wr`` through a register slice)
    const_wr : Out(stream) of ``{addr, value: C × LaneConstant}`` (the lanes' ``const_load``)
    lnp_wr : Out(stream) of ``{addr, gamma, beta}`` per LayerNorm word (``ln_lanes`` elements)
    res_row : Out(stream) of ``{m, tn, acc[C]}`` int16 values sign-extended (into the lanes)
    imem_wr : Out(stream) of ``{addr, data[256]}``
    busy, error : Out(1) (``error``: a non-OKAY read response, sticky until ``clear_error``)
    beats : Out(range(3)), AXI words that arrived this cycle
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.word_bytes = dest_word_bytes(cfg)     # multiples of the AXI word (the config says)
        self.ports = cfg.axi_masters          # read ports
        self.reader = SplitReader(cfg) if self.ports == 2 else DMAReader(cfg)
        ports = load_port_signatures(cfg)
        self.addr_width = max(max(1, ceil_log2(d)) for d in (
            cfg.b_words, cfg.act_words, cfg.const_rows, cfg.lnp_words, cfg.max_tokens,
            cfg.imem_words))
        super().__init__({
            "cmd": In(stream.Signature(load_cmd_layout(cfg))),
            "axi": Out(axi4_from_config(cfg)),
            **({"axi1": Out(axi4_from_config(cfg))} if self.ports == 2 else {}),
            **{name: Out(sig) for name, sig in ports.items()},
            "imem_wr": Out(stream.Signature(data.StructLayout({
                "addr": unsigned(max(1, ceil_log2(cfg.imem_words))),
                "data": unsigned(INSTR_BITS)}))),
            "busy": Out(1),
            "error": Out(1),
            "clear_error": In(1),
            "beats": Out(range(3)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C = cfg.array_cols
        nb = cfg.axi_bytes * self.ports          # bytes of the reader's words
        m.submodules.reader = reader = self.reader
        if self.ports == 2:
            wiring.connect(m, reader.axi0, wiring.flipped(self.axi))
            wiring.connect(m, reader.axi1, wiring.flipped(self.axi1))
        else:
            wiring.connect(m, reader.axi, wiring.flipped(self.axi))
        # The read words pass a register slice: the reader's realigner (combinational from the
        # AXI R channel) and the destinations' decode are in different cycles.
        m.submodules.read_slice = words = RegisterSlice(unsigned(8 * nb))
        m.d.comb += [words.i.valid.eq(reader.data.valid), reader.data.ready.eq(words.i.ready),
                     words.i.payload.eq(reader.data.payload if self.ports == 2
                                        else reader.data.payload.data)]
        m.d.comb += [self.error.eq(reader.error), reader.clear_error.eq(self.clear_error),
                     self.beats.eq(reader.beats)]

        dest = Signal(3)
        addr = Signal(self.addr_width)
        words_left = Signal(20)
        row_words = Signal(8)
        res_m = Signal(len(self.res_row.payload.m))
        res_tn = Signal(len(self.res_row.payload.tn))
        running = Signal()
        desc_sent = Signal()

        # The destination decoded once, into registers, when the command is taken: one flag
        # per destination and per word size, so no compare lies in front of the words' handshake.
        sizes = sorted(set(self.word_bytes.values()))
        is_dest = {code: Signal(name=f"dest_is_{code}") for code in self.word_bytes}
        is_size = {wb: Signal(name=f"size_is_{wb}") for wb in sizes}
        m.d.comb += self.cmd.ready.eq(~running)
        with m.If(self.cmd.valid & ~running):
            cmd = self.cmd.payload
            m.d.sync += [flag.eq(cmd.dest == code) for code, flag in is_dest.items()]
            m.d.sync += [flag.eq(Cat(cmd.dest == code for code, b in self.word_bytes.items()
                                     if b == wb).any()) for wb, flag in is_size.items()]
            m.d.sync += [dest.eq(cmd.dest), addr.eq(cmd.addr), words_left.eq(cmd.words),
                         row_words.eq(cmd.row_words), res_m.eq(cmd.addr), res_tn.eq(0),
                         running.eq(cmd.words != 0), desc_sent.eq(0)]
        # Descriptor: length = words × word bytes of the destination.
        length = Signal(32)
        with m.Switch(dest):
            for code, wb in self.word_bytes.items():
                with m.Case(code):
                    m.d.comb += length.eq(words_left * wb)
        ddr_addr = Signal(cfg.axi_addr_width)
        with m.If(self.cmd.valid & ~running):
            m.d.sync += ddr_addr.eq(self.cmd.payload.ddr_addr)
        m.d.comb += [reader.desc.valid.eq(running & ~desc_sent),
                     reader.desc.payload.addr.eq(ddr_addr),
                     reader.desc.payload.length.eq(length)]
        with m.If(reader.desc.valid & reader.desc.ready):
            m.d.sync += desc_sent.eq(1)

        # One resizer per distinct word size; the reader's words go to the current one.
        resizers = {}
        for wb in sizes:
            rs = WordResizer(8 * nb, wb // nb)
            m.submodules[f"resize_{wb}"] = rs
            resizers[wb] = rs
        word_valid = Signal()
        word_ready = Signal()
        word = Signal(8 * max(sizes))
        for wb, rs in resizers.items():
            with m.If(is_size[wb]):
                m.d.comb += [rs.i.valid.eq(words.o.valid & running),
                             rs.i.payload.eq(words.o.payload),
                             words.o.ready.eq(rs.i.ready & running),
                             word_valid.eq(rs.o.valid), word.eq(rs.o.payload),
                             rs.o.ready.eq(word_ready)]

        # B words pass a register slice too: the B-mover's writes take the weight banks' port
        # first, and its 'valid' would otherwise reach back through this realigner and the
        # read slice's enables in one cycle.
        m.submodules.b_slice = b_slice = RegisterSlice(self.b_wr.payload.shape())
        wiring.connect(m, b_slice.o, wiring.flipped(self.b_wr))
        targets = {
            Dest.B.value: b_slice.i, Dest.ACT.value: self.act_wr, Dest.CONST.value: self.const_wr,
            Dest.LNP.value: self.lnp_wr, Dest.RES.value: self.res_row,
            LoadTarget.IMEM: self.imem_wr,
        }
        for code, port in targets.items():
            with m.If(is_dest[code]):
                m.d.comb += [port.valid.eq(word_valid), word_ready.eq(port.ready)]
        m.d.comb += [b_slice.i.payload.addr.eq(addr), b_slice.i.payload.data.eq(word),
                     self.act_wr.payload.addr.eq(addr), self.act_wr.payload.data.eq(word),
                     self.imem_wr.payload.addr.eq(addr), self.imem_wr.payload.data.eq(word),
                     self.const_wr.payload.addr.eq(addr), self.lnp_wr.payload.addr.eq(addr)]
        rec = CONST_RECORD_BYTES * 8
        for j in range(C):
            k = self.const_wr.payload.value[j]
            m.d.comb += [k.bias.eq(word[j * rec: j * rec + 32].as_signed()),
                         k.mult.eq(word[j * rec + 32: j * rec + 32 + ops.MULT_BITS]),
                         k.shift.eq(word[j * rec + 48: j * rec + 54])]
        rec = LNP_RECORD_BYTES * 8
        for j in range(cfg.ln_lanes):
            m.d.comb += [self.lnp_wr.payload.gamma[j].eq(word[j * rec: j * rec + 32].as_signed()),
                         self.lnp_wr.payload.beta[j].eq(word[j * rec + 64: j * rec + 128].as_signed())]
        m.d.comb += [self.res_row.payload.m.eq(res_m), self.res_row.payload.tn.eq(res_tn)]
        for j in range(C):
            m.d.comb += self.res_row.payload.acc[j].eq(word[16 * j: 16 * j + 16].as_signed())

        with m.If(word_valid & word_ready):
            m.d.sync += [addr.eq(addr + 1), words_left.eq(words_left - 1)]
            with m.If(res_tn + 1 == row_words):
                m.d.sync += [res_tn.eq(0), res_m.eq(res_m + 1)]
            with m.Else():
                m.d.sync += res_tn.eq(res_tn + 1)
            with m.If(words_left == 1):
                m.d.sync += running.eq(0)
        m.d.comb += self.busy.eq(running | reader.busy | words.busy | b_slice.busy)
        return m
