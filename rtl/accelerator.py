"""The whole accelerator: registers, sequencer, DDR load engine and compute datapath.

Ports (what the board top connects): ``csr`` (AXI4-Lite subordinate, the register map of
:mod:`rtl.control.registers`), ``m_axi0`` (AXI4 manager: reads — program, weights, input — and, with one
master, also the output writes), ``m_axi1`` when ``cfg.axi_masters == 2`` (half the reads and the
output writes), ``irq``
(level: ``CONTROL.irq_enable & (STATUS.done | STATUS.error)``), ``trace`` (the program counter
of every issued instruction) and ``work`` (every change of the cycle's instruction and cause),
both for simulation reports; leave them unconnected on a board.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetInserter, Shape, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import axi4_from_config, axi4_lite_from_config
from rtl.bus.loader import Loader
from rtl.config import AccelConfig
from rtl.control.causes import Cause, cause_counter, counted_causes
from rtl.control.csr import CSR
from rtl.control.isa import load_cmd_layout
from rtl.control.sequencer import Sequencer
from rtl.datapath.compute import Compute

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """M³ViT accelerator top level, parametric through one :class:`AccelConfig`.

    Parameters
    ----------
    cfg : AccelConfig

    Attributes
    ----------
    csr : In(AXI4-Lite)
    m_axi0, m_axi1 : Out(AXI4) (``m_axi1`` only with two masters)
    irq : Out(1)
    trace : Out(stream) of the issued instruction's index (always accepted)
    work : Out(stream) of ``pc | cause << 16`` whenever the pair changes: the instruction that
        the cycle's :class:`~rtl.control.causes.Cause` belongs to (the compute datapath's, or
        the sequencer's when it is idle), for per-layer cycle reports (always accepted)
    """

    def __init__(self, cfg: AccelConfig):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"expected an AccelConfig, not {cfg!r}")
        self.cfg = cfg
        self.csr_block = CSR(cfg)
        self.loader = Loader(cfg)
        self.compute = Compute(cfg)
        self.sequencer = Sequencer(cfg)
        members = {"csr": In(axi4_lite_from_config(cfg)),
                   "m_axi0": Out(axi4_from_config(cfg)),
                   "irq": Out(1),
                   "trace": Out(stream.Signature(16)),
                   "work": Out(stream.Signature(20))}
        if cfg.axi_masters == 2:
            members["m_axi1"] = Out(axi4_from_config(cfg))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.csr = csr = self.csr_block
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)
        m.d.comb += self.irq.eq(csr.irq)

        # The datapath restarts on CONTROL.soft_reset; the registers keep their values.
        soft = csr.control_soft_reset
        seq, ld, cp = self.sequencer, self.loader, self.compute
        m.submodules.sequencer = ResetInserter(soft)(seq)
        m.submodules.loader = ResetInserter(soft)(ld)
        m.submodules.compute = ResetInserter(soft)(cp)

        hi = cfg.axi_addr_width - 32
        def addr(lo, hi_sig):
            return lo if hi <= 0 else (hi_sig[:hi] << 32) | lo
        m.d.comb += [
            seq.start.eq(csr.control_start),
            seq.program_base.eq(addr(csr.program_base_lo_addr, csr.program_base_hi_addr)),
            seq.data_base.eq(addr(csr.data_base_lo_addr, csr.data_base_hi_addr)),
            seq.input_base.eq(addr(csr.input_base_lo_addr, csr.input_base_hi_addr)),
            seq.output_base.eq(addr(csr.output_base_lo_addr, csr.output_base_hi_addr)),
            seq.program_len.eq(csr.program_len_words),
            seq.task.eq(csr.task_id_task),
        ]
        # The status follows the sequencer one cycle late, in step with the registered cycle
        # cause (``_causes``): when STATUS says done, every cause counter has its last cycle.
        busy, done, error = Signal(), Signal(), Signal()
        code = Signal.like(seq.error_code)
        m.d.sync += [busy.eq(seq.busy), done.eq(seq.done), error.eq(seq.error),
                     code.eq(seq.error_code)]
        m.d.comb += [csr.status_busy.eq(busy), csr.status_done_set.eq(done),
                     csr.status_error_set.eq(error), csr.status_error_code.eq(code)]
        # sequencer → load queue → loader; the queue counts as the loader being busy
        m.submodules.load_queue = queue = ResetInserter(soft)(fifo.SyncFIFO(
            width=Shape.cast(load_cmd_layout(cfg)).width, depth=cfg.load_queue_depth))
        loader_busy = Signal()
        m.d.comb += [queue.w_stream.valid.eq(seq.load.valid),
                     queue.w_stream.payload.eq(seq.load.payload.as_value()),
                     seq.load.ready.eq(queue.w_stream.ready),
                     ld.cmd.valid.eq(queue.r_stream.valid),
                     ld.cmd.payload.eq(queue.r_stream.payload),
                     queue.r_stream.ready.eq(ld.cmd.ready),
                     loader_busy.eq(ld.busy | (queue.level != 0))]
        wiring.connect(m, seq.compute, cp.cmd)
        wiring.connect(m, ld.imem_wr, seq.imem_wr)
        for name in ("b_wr", "act_wr", "const_wr", "lnp_wr", "res_row"):
            wiring.connect(m, getattr(ld, name), getattr(cp, name))
        m.d.comb += [
            cp.loader_busy.eq(loader_busy),
            seq.compute_busy.eq(cp.busy), seq.loader_busy.eq(loader_busy),
            seq.loader_error.eq(ld.error), seq.write_error.eq(cp.write_error),
            seq.unit_error.eq(cp.unit_error),
            seq.ne_count.eq(cp.ne_count), seq.ne_expert.eq(cp.ne_expert),
            seq.ne_length.eq(cp.ne_length),
            ld.clear_error.eq(csr.control_start),
        ]
        wiring.connect(m, seq.trace, wiring.flipped(self.trace))

        # AXI ports: reads on m_axi0 (and m_axi1 with two masters); writes on the last one.
        rd_ports = [self.m_axi0] + ([self.m_axi1] if cfg.axi_masters == 2 else [])
        wr_port = rd_ports[-1]
        for port, ld_port in zip(rd_ports, (ld.axi, getattr(ld, "axi1", None))):
            wiring.connect(m, ld_port.ar, wiring.flipped(port.ar))
            wiring.connect(m, ld_port.r, wiring.flipped(port.r))
        wiring.connect(m, cp.axi.aw, wiring.flipped(wr_port.aw))
        wiring.connect(m, cp.axi.w, wiring.flipped(wr_port.w))
        wiring.connect(m, cp.axi.b, wiring.flipped(wr_port.b))
        if cfg.axi_masters == 2:
            m.d.comb += [self.m_axi0.aw.valid.eq(0), self.m_axi0.w.valid.eq(0),
                         self.m_axi0.b.ready.eq(1)]

        # performance counters
        nb = cfg.axi_bytes
        rbytes = Signal(range(len(rd_ports) * nb + 1))
        wbytes = Signal(range(nb + 1))
        m.d.comb += [
            rbytes.eq(sum(Mux(p.r.valid & p.r.ready, nb, 0) for p in rd_ports)),
            wbytes.eq(Mux(wr_port.w.valid & wr_port.w.ready, nb, 0)),
            csr.perf_cycles_inc.eq(1),
            csr.perf_busy_cycles_inc.eq(busy),
            csr.perf_bytes_moved_inc.eq(rbytes + wbytes),
            csr.perf_read_bytes_inc.eq(rbytes),
            csr.perf_write_bytes_inc.eq(wbytes),
            csr.perf_matmul_cycles_inc.eq(cp.matmul_busy),
            csr.perf_layernorm_cycles_inc.eq(cp.layernorm_busy),
            csr.perf_softmax_cycles_inc.eq(cp.softmax_busy),
            csr.perf_router_cycles_inc.eq(cp.router_busy),
            csr.perf_mover_cycles_inc.eq(cp.mover_busy),
            csr.perf_loader_cycles_inc.eq(ld.busy),
            csr.perf_instructions_inc.eq(seq.trace.valid),
        ]
        self._causes(m, csr, seq, cp)
        return m

    def _causes(self, m, csr, seq, cp):
        """Each busy cycle's cause (the compute datapath's, else the sequencer's) into its
        counter; ``work`` reports every change of (instruction, cause). The cause and its
        instruction are registered (one cycle late, like the status and the busy counter): the
        cause encoder's inputs reach the counters over a flip-flop."""
        cause = Signal(Cause)
        pc = Signal(16)
        with m.If(cp.cause != Cause.NONE):
            m.d.sync += [cause.eq(cp.cause), pc.eq(cp.pc)]
        with m.Elif(seq.busy):
            m.d.sync += [cause.eq(Mux(seq.stall, Cause.WEIGHT_STALL,
                                      Mux(seq.fetching, Cause.FETCH, Cause.SEQUENCER))),
                         pc.eq(seq.pc)]
        with m.Else():
            m.d.sync += [cause.eq(Cause.NONE), pc.eq(0)]
        for c in counted_causes():
            m.d.comb += getattr(csr, cause_counter(c).lower() + "_inc").eq(cause == c)
        m.d.comb += csr.perf_macs_inc.eq(cp.macs)     # registered in the CSR block
        work = Signal.like(self.work.payload)
        last = Signal.like(work)
        m.d.comb += [work.eq(pc | (cause << 16)), self.work.payload.eq(work),
                     self.work.valid.eq(work != last)]
        m.d.sync += last.eq(work)


