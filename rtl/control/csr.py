"""AXI4-Lite register block generated from :func:`rtl.control.registers.register_map`.

The ports toward the accelerator are generated from the declaration too, one per field:

=========  =====================================================================
access     ports (``<reg>_<field>``, lower case)
=========  =====================================================================
``ro``     ``In(width)`` — the value read back
``rw``     ``Out(width)`` — the register's value
``w1p``    ``Out(width)`` — high for the one cycle after a write of 1
``w1c``    ``Out(width)`` value and ``In(width)`` ``…_set`` (set pulses win over a clear)
counter    ``In(inc_width)`` ``<reg>_inc`` — added every cycle (registered: one cycle later)
=========  =====================================================================

plus ``irq`` = ``CONTROL.irq_enable & (STATUS.done | STATUS.error)``. Writing ``PERF_CONTROL.clear``
zeroes every counter. Bus rules are listed in :mod:`rtl.control.registers`; in short, addresses
are decoded by word (``addr & ~3``), so the 8- and 16-bit stores of CPUs and standard masters
(byte address on AWADDR, the sub-word's lanes in WSTRB) act on the containing register through
their strobes and sub-word reads return the containing word, answered exactly as word accesses
(no error from address bits 1:0).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import Resp, axi4_lite_from_config
from rtl.config import AccelConfig
from rtl.control.registers import Register, register_map

__all__ = ["CSR", "port_name"]


def port_name(reg: Register, field_name: str, suffix: str = "") -> str:
    """Name of the hardware port of ``reg.field`` (e.g. ``status_done_set``)."""
    return f"{reg.name.lower()}_{field_name}{suffix}"


class CSR(wiring.Component):
    """The register block: an AXI4-Lite subordinate plus one port per register field.

    One read and one write are handled at a time each, independently: AW and W are latched
    separately (either order, any delay, or together), the write happens when both are present
    and no B response is pending; a read answers one cycle after its AR handshake. Every request
    gets exactly one response, so a correct manager can never hang it.

    Parameters
    ----------
    cfg : AccelConfig
        Supplies ``csr_addr_width`` and the register map's constants.

    Attributes
    ----------
    bus : In(AXI4-Lite) — subordinate port
    irq : Out(1)
    registers : tuple of Register — the declaration this block implements
    (one port per field, see the module docstring)
    """

    def __init__(self, cfg: AccelConfig):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"expected an AccelConfig, not {cfg!r}")
        self.cfg = cfg
        self.registers = register_map(cfg)
        for r in self.registers:
            for f in r.fields:
                # Side effects act per strobed byte lane: a field spanning lanes could fire on a
                # half-written value from a sub-word store.
                if f.access in ("w1p", "w1c") and f.lsb // 8 != (f.lsb + f.width - 1) // 8:
                    raise ValueError(f"{r.name}.{f.name}: {f.access} fields must lie within "
                                     "one byte lane")
        members = {"bus": In(axi4_lite_from_config(cfg)), "irq": Out(1)}
        for r in self.registers:
            if r.is_counter:
                members[port_name(r, "inc")] = In(r.counter_inc_width)
                continue
            for f in r.fields:
                if f.access == "ro":
                    members[port_name(r, f.name)] = In(f.width)
                elif f.access in ("rw", "w1p"):
                    members[port_name(r, f.name)] = Out(f.width, init=f.reset)
                elif f.access == "w1c":
                    members[port_name(r, f.name)] = Out(f.width, init=f.reset)
                    members[port_name(r, f.name, "_set")] = In(f.width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus, aw = self.bus, self.cfg.csr_addr_width

        # -- write channel latches --------------------------------------------------------------
        aw_full, w_full = Signal(), Signal()
        aw_addr = Signal(aw)
        w_data, w_strb = Signal(32), Signal(4)
        m.d.comb += [bus.aw.ready.eq(~aw_full), bus.w.ready.eq(~w_full)]
        with m.If(bus.aw.valid & bus.aw.ready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.aw.addr)]
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.w.data), w_strb.eq(bus.w.strb)]
        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bus.b.valid)
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.b.valid.eq(1)]
        with m.If(bus.b.valid & bus.b.ready):
            m.d.sync += bus.b.valid.eq(0)
        bitmask = Signal(32)
        m.d.comb += bitmask.eq(Cat(*[w_strb[i].replicate(8) for i in range(4)]))
        wbits = Signal(32)
        m.d.comb += wbits.eq(w_data & bitmask)

        # -- read channel -----------------------------------------------------------------------
        m.d.comb += bus.ar.ready.eq(~bus.r.valid)
        ar_fire = Signal()
        m.d.comb += ar_fire.eq(bus.ar.valid & bus.ar.ready)
        with m.If(ar_fire):
            m.d.sync += bus.r.valid.eq(1)
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += bus.r.valid.eq(0)

        # -- registers ----------------------------------------------------------------------------
        clear_counters = Signal()
        irq_en = Signal()
        done_err = []
        # Default response: unmapped → DECERR. Addresses are decoded by word (bits 1:0 ignored):
        # a sub-word access acts on its containing register, the write through its strobes.
        w_resp, r_resp, r_data = Signal(2), Signal(2), Signal(32)
        m.d.comb += [w_resp.eq(Resp.DECERR), r_resp.eq(Resp.DECERR), r_data.eq(0)]
        # A write to a register without writable fields is refused (SLVERR) only if it strobes a
        # byte lane; with WSTRB = 0 it writes nothing and answers OKAY.
        ro_resp = Signal(2)
        m.d.comb += ro_resp.eq(Resp.OKAY)
        with m.If(w_strb.any()):
            m.d.comb += ro_resp.eq(Resp.SLVERR)
        w_match = {}
        r_match = {}
        for r in self.registers:
            for name, off in r.words():
                w_match[name] = Signal(name=f"wsel_{name}")
                r_match[name] = Signal(name=f"rsel_{name}")
                m.d.comb += [w_match[name].eq(aw_addr[2:] == off >> 2),
                             r_match[name].eq(bus.ar.addr[2:] == off >> 2)]

        for r in self.registers:
            if r.is_counter:
                cnt = Signal(64, name=f"{r.name.lower()}_count")
                snap = Signal(32, name=f"{r.name.lower()}_hi_snapshot")
                # The increment is registered (the sources' logic stays off the 64-bit carry
                # chain): a counter lags its events by one cycle; a clear drops both.
                inc = Signal.like(getattr(self, port_name(r, "inc")),
                                  name=f"{r.name.lower()}_inc_q")
                m.d.sync += inc.eq(getattr(self, port_name(r, "inc")))
                with m.If(clear_counters):
                    m.d.sync += [cnt.eq(0), inc.eq(0)]
                with m.Else():
                    m.d.sync += cnt.eq(cnt + inc)
                lo, hi = r.words()
                with m.If(r_match[lo[0]]):
                    m.d.comb += [r_data.eq(cnt[:32]), r_resp.eq(Resp.OKAY)]
                    with m.If(ar_fire):
                        m.d.sync += snap.eq(cnt[32:])
                with m.If(r_match[hi[0]]):
                    m.d.comb += [r_data.eq(snap), r_resp.eq(Resp.OKAY)]
                for name, _ in r.words():
                    with m.If(w_match[name]):
                        m.d.comb += w_resp.eq(ro_resp)
                continue

            value = []
            sel_w = w_match[r.name] & do_write
            for f in r.fields:
                bits = slice(f.lsb, f.lsb + f.width)
                if f.access == "const":
                    value.append((f, Const(f.reset, f.width)))
                elif f.access == "ro":
                    value.append((f, getattr(self, port_name(r, f.name))))
                elif f.access == "rw":
                    reg = getattr(self, port_name(r, f.name))
                    value.append((f, reg))
                    with m.If(sel_w):
                        m.d.sync += reg.eq((reg & ~bitmask[bits]) | wbits[bits])
                    if (r.name, f.name) == ("CONTROL", "irq_enable"):
                        m.d.comb += irq_en.eq(reg)
                elif f.access == "w1p":
                    pulse = getattr(self, port_name(r, f.name))
                    m.d.sync += pulse.eq(0)
                    with m.If(sel_w):
                        m.d.sync += pulse.eq(wbits[bits])
                    value.append((f, Const(0, f.width)))
                    if (r.name, f.name) == ("PERF_CONTROL", "clear"):
                        m.d.comb += clear_counters.eq(pulse)
                elif f.access == "w1c":
                    reg = getattr(self, port_name(r, f.name))
                    setp = getattr(self, port_name(r, f.name, "_set"))
                    clr = Signal(f.width, name=f"{port_name(r, f.name)}_clr")
                    with m.If(sel_w):
                        m.d.comb += clr.eq(wbits[bits])
                    m.d.sync += reg.eq((reg & ~clr) | setp)
                    value.append((f, reg))
                    if r.name == "STATUS" and f.name in ("done", "error"):
                        done_err.append(reg)
            word = Signal(32, name=f"{r.name.lower()}_value")
            for f, v in value:
                m.d.comb += word[f.lsb:f.lsb + f.width].eq(v)
            with m.If(r_match[r.name]):
                m.d.comb += [r_data.eq(word), r_resp.eq(Resp.OKAY)]
            with m.If(w_match[r.name]):
                m.d.comb += w_resp.eq(Resp.OKAY if r.writable else ro_resp)

        with m.If(do_write):
            m.d.sync += bus.b.resp.eq(w_resp)
        with m.If(ar_fire):
            m.d.sync += [bus.r.resp.eq(r_resp), bus.r.data.eq(r_data)]
        if done_err:
            m.d.comb += self.irq.eq(irq_en & Cat(*done_err).any())
        return m
