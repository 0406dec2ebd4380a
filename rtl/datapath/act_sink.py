"""The ACT sink: int8 result rows of a matmul into the activation memory.

Row ``m``, column tile ``tn`` lands at ACT word ``d_addr + m·d_stride + tn`` (the low byte of each
lane's value: the lanes saturated it to 8 bits). It takes a row every cycle and writes it
:data:`ACT_SINK_LATENCY` cycles later (the row and its ``m·d_stride`` product registered, then the
address), so no lanes' output reaches the memory's address in the cycle it leaves them;
``busy`` covers the rows in flight (the dispatcher counts them as the lanes').
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.config import AccelConfig, STRIDE_BITS, WORD_ADDR_BITS
from rtl.datapath.scratchpad import act_write_signature

__all__ = ["ActSink", "act_sink_layout", "ACT_SINK_LATENCY"]

#: Cycles from a row accepted to its ACT write (the write port's enable).
ACT_SINK_LATENCY = 2


def act_sink_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({"d_addr": unsigned(WORD_ADDR_BITS),
                              "d_stride": unsigned(STRIDE_BITS)})


class ActSink(wiring.Component):
    """Lanes rows → ACT words.

    Attributes
    ----------
    cmd : In(stream) of :func:`act_sink_layout` (always accepted; sets the destination)
    i : In(stream) of :func:`rtl.array.lanes.lane_out_layout` (always ready)
    act : Out(write) of ACT words
    busy : Out(1), rows accepted and not yet written
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C = cfg.array_cols
        super().__init__({
            "cmd": In(stream.Signature(act_sink_layout(cfg))),
            "i": In(stream.Signature(lane_out_layout(C, cfg.token_bits, cfg.tn_bits))),
            "act": Out(act_write_signature(cfg)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        job = Signal.like(self.cmd.payload)
        m.d.comb += [self.cmd.ready.eq(1), self.i.ready.eq(1)]
        with m.If(self.cmd.valid):
            m.d.sync += job.eq(self.cmd.payload)
        row, C = self.i.payload, self.cfg.array_cols
        v1, v2 = Signal(), Signal()
        prod1 = Signal(len(row.m) + len(job.d_stride))
        tn1 = Signal.like(row.tn)
        data1, data2 = Signal.like(self.act.data), Signal.like(self.act.data)
        addr2 = Signal.like(self.act.addr)
        m.d.sync += [v1.eq(self.i.valid), prod1.eq(row.m * job.d_stride), tn1.eq(row.tn),
                     *[data1[j].eq(row.values[j][:8]) for j in range(C)],
                     v2.eq(v1), addr2.eq(job.d_addr + prod1 + tn1), data2.eq(data1)]
        m.d.comb += [self.act.en.eq(v2), self.act.addr.eq(addr2), self.act.data.eq(data2),
                     self.busy.eq(v1 | v2)]
        return m
