"""Board-level wrapper of the accelerator for the ZCU104 block design.

:class:`ZCU104Top` turns the accelerator's Amaranth interfaces into the ports a Vivado block
design expects from an RTL module reference:

* ``clk`` / ``rst_n`` — the PL clock (``pl_clk0``) and the active-low, clock-synchronous
  ``peripheral_aresetn`` of a ``proc_sys_reset``; they drive the accelerator's ``sync`` domain
  (``rst = ~rst_n``);
* ``s_axi_csr_*`` — the AXI4-Lite register port (``csr``), driven by ``M_AXI_HPM0_FPD`` through a
  SmartConnect;
* ``m_axi_hp<i>_*`` — AXI4 manager ``m_axi<i>`` for PS port ``S_AXI_HP<i>_FPD``, with the signals
  the accelerator does not have tied here: ``AxLOCK = 0`` (normal), ``AxCACHE = 0b0011``
  (normal non-cacheable bufferable, what Xilinx DMA engines drive on HP ports), ``AxPROT = 0``,
  ``AxQOS = 0``;
* ``irq`` — level-high interrupt for ``pl_ps_irq0``;
* ``led[3:0]`` — ZCU104 user LEDs: 0 heartbeat (≈1 Hz from the PL clock), 1 out of reset,
  2 interrupt line, 3 AXI master activity (stretched to be visible).

Other members of the accelerator (e.g. its simulation-only ``trace`` stream) stay unconnected:
their outputs are unused and their inputs keep their reset values.

Port names follow Xilinx conventions (``<bus>_awaddr`` …, lower case) **and** every port carries
``X_INTERFACE_INFO`` (plus one ``X_INTERFACE_PARAMETER`` per interface), so Vivado infers the AXI
interfaces, the clock (``ASSOCIATED_BUSIF``/``ASSOCIATED_RESET``), the reset polarity and the
interrupt either way. The attributes sit in a small hand-readable Verilog-2001 shell with ANSI
port declarations (:meth:`ZCU104Top.shell_verilog`, module :data:`TOP_NAME`) that instantiates the
Amaranth-generated core (module :data:`CORE_NAME`): Amaranth keys signal attributes by net, so two
ports driven by the same constant (``awlock``/``arlock`` …) would share one attribute set if they
were put on the Amaranth signals. No vendor primitive is instantiated: the PS, SmartConnect and
reset block live in the block design, around this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import axi4_from_config, axi4_lite_from_config
from rtl.config import AccelConfig

__all__ = ["ZCU104Top", "Port", "TOP_NAME", "CORE_NAME", "CSR_BUS", "hp_bus", "AXCACHE",
           "LED_COUNT", "check_accelerator"]

TOP_NAME = "m3vit_zcu104"
"""Verilog module name of the shell (the block design's module reference)."""

CORE_NAME = "m3vit_zcu104_core"
"""Verilog module name of the Amaranth-generated wrapper inside the shell."""

CSR_BUS = "s_axi_csr"
LED_COUNT = 4
AXCACHE = 0b0011
"""AxCACHE driven on the HP ports: normal non-cacheable bufferable."""

_AXIMM = "xilinx.com:interface:aximm:1.0"


@dataclass(frozen=True)
class Port:
    """One port of the shell: Verilog name, width, direction and Vivado attributes."""
    name: str
    width: int
    direction: str                  # "input" | "output"
    attrs: tuple[tuple[str, str], ...]


def hp_bus(master: int) -> str:
    """Name of the wrapper's AXI4 bus for accelerator master ``m_axi<master>``."""
    return f"m_axi_hp{master}"


class ZCU104Top(Elaboratable):
    """The accelerator with Vivado-friendly ports (see the module docstring).

    Parameters
    ----------
    accelerator : wiring.Component
        The accelerator: ``csr: In(axi4_lite_from_config(cfg))``, ``m_axi0`` (and ``m_axi1`` when
        ``cfg.axi_masters == 2`` …) ``: Out(axi4_from_config(cfg))``, ``irq: Out(1)``, clocked by
        the ``sync`` domain.
    cfg : AccelConfig
        The accelerator's configuration (port widths, number of masters, clock target).

    Attributes
    ----------
    ports : list of Signal
        Every port of the core, for ``amaranth.back.rtlil.convert(top, ports=top.ports)``.
    port_specs : list of Port
        The same ports with direction and Vivado attributes (for :meth:`shell_verilog`).
    port_signals : dict of str to Signal
        The port signals by Verilog name.
    buses : dict of str to str
        ``{bus name: "AXI4LITE" | "AXI4"}``.
    clk, rst_n, irq, led : Signal

    Raises
    ------
    TypeError
        If ``accelerator`` lacks a member or has one of the wrong signature.
    """

    def __init__(self, accelerator: wiring.Component, cfg: AccelConfig):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"expected an AccelConfig, not {cfg!r}")
        check_accelerator(accelerator, cfg)
        self.accelerator = accelerator
        self.cfg = cfg
        self.buses = {CSR_BUS: "AXI4LITE",
                      **{hp_bus(i): "AXI4" for i in range(cfg.axi_masters)}}
        busif = ":".join(self.buses)
        self.port_specs: list[Port] = []
        self.port_signals: dict[str, Signal] = {}
        self.clk = self._port("clk", 1, "input", (
            ("X_INTERFACE_INFO", "xilinx.com:signal:clock:1.0 clk CLK"),
            ("X_INTERFACE_PARAMETER", f"XIL_INTERFACENAME clk, ASSOCIATED_BUSIF {busif}, "
                                      "ASSOCIATED_RESET rst_n")))
        self.rst_n = self._port("rst_n", 1, "input", (
            ("X_INTERFACE_INFO", "xilinx.com:signal:reset:1.0 rst_n RST"),
            ("X_INTERFACE_PARAMETER", "XIL_INTERFACENAME rst_n, POLARITY ACTIVE_LOW")))
        # (port signal, accelerator signal or constant, port is an output)
        self._links: list[tuple[Signal, object, bool]] = []
        self._bus_ports: dict[str, list[Signal]] = {}
        self._expose(accelerator.csr, CSR_BUS, {
            "PROTOCOL": "AXI4LITE", "DATA_WIDTH": 32, "ADDR_WIDTH": cfg.csr_addr_width,
            "READ_WRITE_MODE": "READ_WRITE"}, tie={})
        tie = {f"{ch}{name}": (width, value) for ch in ("aw", "ar")
               for name, width, value in (("lock", 1, 0), ("cache", 4, AXCACHE), ("prot", 3, 0),
                                          ("qos", 4, 0))}
        for i in range(cfg.axi_masters):
            self._expose(getattr(accelerator, f"m_axi{i}"), hp_bus(i), {
                "PROTOCOL": "AXI4", "DATA_WIDTH": cfg.axi_data_width,
                "ADDR_WIDTH": cfg.axi_addr_width, "ID_WIDTH": cfg.axi_id_width,
                "MAX_BURST_LENGTH": cfg.max_burst_beats,
                "NUM_READ_OUTSTANDING": cfg.max_outstanding_reads,
                "SUPPORTS_NARROW_BURST": 0, "READ_WRITE_MODE": "READ_WRITE"}, tie=tie)
        self.irq = self._port("irq", 1, "output", (
            ("X_INTERFACE_INFO", "xilinx.com:signal:interrupt:1.0 irq INTERRUPT"),
            ("X_INTERFACE_PARAMETER", "XIL_INTERFACENAME irq, SENSITIVITY LEVEL_HIGH")))
        self.led = self._port("led", LED_COUNT, "output", ())
        self.ports = [self.port_signals[p.name] for p in self.port_specs]

    def _port(self, name: str, width: int, direction: str, attrs: tuple) -> Signal:
        if name in self.port_signals:
            raise ValueError(f"port {name} declared twice")
        sig = self.port_signals[name] = Signal(width, name=name)
        self.port_specs.append(Port(name, width, direction, tuple(attrs)))
        return sig

    def _expose(self, iface, bus: str, params: dict, tie: dict) -> None:
        """Create ``<bus>_<chan><field>`` ports for every signal of ``iface`` plus tie-offs."""
        ports = self._bus_ports[bus] = []
        param = ", ".join([f"XIL_INTERFACENAME {bus}"] + [f"{k} {v}" for k, v in params.items()])

        def port(name: str, width: int, output: bool) -> Signal:
            attrs = [("X_INTERFACE_INFO", f"{_AXIMM} {bus} {name.upper()}")]
            if not ports:
                attrs.append(("X_INTERFACE_PARAMETER", param))
            sig = self._port(f"{bus}_{name}", width, "output" if output else "input", attrs)
            ports.append(sig)
            return sig

        present = set()
        for path, member, value in iface.signature.flatten(iface):
            chan, field = path
            out = member.flow == Out
            present.add(f"{chan}{field}")
            self._links.append((port(f"{chan}{field}", len(value), out), value, out))
        for name, (width, const) in tie.items():
            if name not in present:     # the accelerator may drive some of these itself
                self._links.append((port(name, width, True), const, True))

    def bus_ports(self, bus: str) -> list[Signal]:
        """The ports of one bus, in declaration order."""
        return list(self._bus_ports[bus])

    def shell_verilog(self, core_name: str = CORE_NAME, top_name: str = TOP_NAME) -> str:
        """Verilog-2001 module ``top_name``: ANSI ports with Vivado attributes, one instance of
        ``core_name`` (this elaboratable converted with ``name=core_name``)."""
        lines = [f"// {top_name}: ZCU104 block-design shell around {core_name} (Amaranth).",
                 "// Generated by platform/zcu104_top.py; the attributes let Vivado infer the",
                 "// AXI interfaces, clock, reset and interrupt of this module reference.",
                 f"module {top_name} ("]
        decls = []
        for p in self.port_specs:
            attrs = "".join(f'  (* {k} = "{v}" *)\n' for k, v in p.attrs)
            rng = f"[{p.width - 1}:0] " if p.width > 1 else ""
            decls.append(f"{attrs}  {p.direction} wire {rng}{p.name}")
        lines.append(",\n".join(decls))
        lines.append(");")
        conns = ",\n".join(f"    .{p.name}({p.name})" for p in self.port_specs)
        lines += [f"  {core_name} core (", conns, "  );", "endmodule", ""]
        return "\n".join(lines)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.clk), ResetSignal("sync").eq(~self.rst_n)]
        m.submodules.accel = self.accelerator
        for port, value, is_output in self._links:
            m.d.comb += port.eq(value) if is_output else value.eq(port)
        m.d.comb += self.irq.eq(self.accelerator.irq)

        # LEDs: heartbeat, out of reset, interrupt, stretched AXI master activity.
        hz = self.cfg.clock_mhz * 1e6
        beat = Signal(max(2, round(math.log2(hz))))
        m.d.sync += beat.eq(beat + 1)
        stretch = Signal(max(2, len(beat) - 3))
        activity = Signal()
        for i in range(self.cfg.axi_masters):
            bus = getattr(self.accelerator, f"m_axi{i}")
            for ch in (bus.ar, bus.aw):
                with m.If(ch.valid & ch.ready):
                    m.d.comb += activity.eq(1)
        with m.If(activity):
            m.d.sync += stretch.eq(~0)
        with m.Elif(stretch != 0):
            m.d.sync += stretch.eq(stretch - 1)
        m.d.comb += self.led.eq(
            beat[-1] | (self.rst_n << 1) | (self.accelerator.irq << 2) | ((stretch != 0) << 3))
        return m


def check_accelerator(accelerator, cfg: AccelConfig) -> None:
    """Raise ``TypeError`` unless ``accelerator`` has the top-level interface the board needs."""
    if not isinstance(accelerator, wiring.Component):
        raise TypeError(f"the accelerator must be an amaranth wiring.Component, not "
                        f"{type(accelerator).__name__}")
    expected = {"csr": In(axi4_lite_from_config(cfg)), "irq": Out(1)}
    expected.update({f"m_axi{i}": Out(axi4_from_config(cfg)) for i in range(cfg.axi_masters)})
    members = accelerator.signature.members
    problems = []
    for name, member in expected.items():
        if name not in members:
            problems.append(f"missing member {name!r}")
        elif members[name] != member:
            problems.append(f"member {name!r} is {members[name]!r}, expected {member!r}")
    if f"m_axi{cfg.axi_masters}" in members:
        problems.append(f"has m_axi{cfg.axi_masters} but cfg.axi_masters == {cfg.axi_masters}")
    if problems:
        raise TypeError(f"{type(accelerator).__name__} does not fit the ZCU104 top: "
                        + "; ".join(problems))
