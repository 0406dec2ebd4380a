"""The ACT sink: int8 result rows of a matmul into the activation memory.

Row ``m``, column tile ``tn`` lands at ACT word ``d_addr + m·d_stride + tn`` (the low byte of each
lane's value: the lanes saturated it to 8 bits). It takes a row every cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.array.lanes import lane_out_layout
from rtl.config import AccelConfig, STRIDE_BITS, WORD_ADDR_BITS
from rtl.datapath.scratchpad import act_write_signature

__all__ = ["ActSink", "act_sink_layout"]


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
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        C = cfg.array_cols
        super().__init__({
            "cmd": In(stream.Signature(act_sink_layout(cfg))),
            "i": In(stream.Signature(lane_out_layout(C, cfg.token_bits, cfg.tn_bits))),
            "act": Out(act_write_signature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        job = Signal.like(self.cmd.payload)
        m.d.comb += [self.cmd.ready.eq(1), self.i.ready.eq(1)]
        with m.If(self.cmd.valid):
            m.d.sync += job.eq(self.cmd.payload)
        row = self.i.payload
        m.d.comb += [self.act.en.eq(self.i.valid),
                     self.act.addr.eq(job.d_addr + row.m * job.d_stride + row.tn)]
        for j in range(self.cfg.array_cols):
            m.d.comb += self.act.data[j].eq(row.values[j][:8])
        return m
