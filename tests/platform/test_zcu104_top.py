"""The board wrapper: port names, Vivado attributes, tie-offs, and a register read through it."""

import gc
import re
import warnings

import pytest
from amaranth.hdl import Signal, UnusedElaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from platform.zcu104_top import (AXCACHE, CORE_NAME, TOP_NAME, ZCU104Top, check_accelerator,
                                 hp_bus)
from rtl.bus.axi import axi4_lite_from_config
from rtl.config import SMALL_TEST
from rtl.control.registers import ID_MAGIC
from tests.platform.standin import StandInAccelerator

TWO = SMALL_TEST.replace(axi_masters=2, axi_data_width=128, array_cols=32)



@pytest.fixture(autouse=True)
def _inspected_not_elaborated():
    """Most designs here are inspected, never elaborated: drop Amaranth's UnusedElaboratable
    warnings when they are garbage-collected."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


def _names(top):
    return [p.name for p in top.port_specs]


def _top(accelerator, cfg):
    """A wrapper that is only inspected, never elaborated."""
    return ZCU104Top(accelerator, cfg)


@pytest.mark.parametrize("cfg", [SMALL_TEST, TWO], ids=["one-master", "two-masters"])
def test_ports_and_attributes(cfg):
    top = _top(StandInAccelerator(cfg), cfg)
    names = _names(top)
    assert names[:2] == ["clk", "rst_n"] and names[-2:] == ["irq", "led"]
    assert len(names) == len(set(names)) == len(top.ports)
    assert list(top.buses) == ["s_axi_csr"] + [hp_bus(i) for i in range(cfg.axi_masters)]
    for bus in [hp_bus(i) for i in range(cfg.axi_masters)]:
        for sig in ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot",
                    "awqos", "awvalid", "awready", "wdata", "wstrb", "wlast", "wvalid", "wready",
                    "bid", "bresp", "bvalid", "bready", "arid", "araddr", "arlen", "arsize",
                    "arburst", "arlock", "arcache", "arprot", "arqos", "arvalid", "arready",
                    "rid", "rdata", "rresp", "rlast", "rvalid", "rready"):
            assert f"{bus}_{sig}" in names
    for spec in top.port_specs:
        attrs = dict(spec.attrs)
        if spec.name == "led":
            assert attrs == {}
            continue
        info = attrs["X_INTERFACE_INFO"].split()
        bus = next((b for b in top.buses if spec.name.startswith(b + "_")), None)
        if bus:   # every bus port names its own interface and logical signal
            assert info == ["xilinx.com:interface:aximm:1.0", bus,
                            spec.name[len(bus) + 1:].upper()]
    params = {s.name: dict(s.attrs)["X_INTERFACE_PARAMETER"] for s in top.port_specs
              if "X_INTERFACE_PARAMETER" in dict(s.attrs)}
    assert f"ASSOCIATED_BUSIF {':'.join(top.buses)}" in params["clk"]
    assert "POLARITY ACTIVE_LOW" in params["rst_n"]
    assert "SENSITIVITY LEVEL_HIGH" in params["irq"]
    hp0 = next(v for k, v in params.items() if k.startswith("m_axi_hp0_"))
    assert f"DATA_WIDTH {cfg.axi_data_width}," in hp0 and "PROTOCOL AXI4," in hp0
    assert f"ID_WIDTH {cfg.axi_id_width}," in hp0 and "ADDR_WIDTH 40," in hp0
    csr = next(v for k, v in params.items() if k.startswith("s_axi_csr_"))
    assert "PROTOCOL AXI4LITE" in csr and f"ADDR_WIDTH {cfg.csr_addr_width}," in csr


def test_shell_verilog_is_ansi_with_attributes():
    top = _top(StandInAccelerator(SMALL_TEST), SMALL_TEST)
    text = top.shell_verilog()
    assert f"module {TOP_NAME} (" in text and f"  {CORE_NAME} core (" in text
    decls = re.findall(r"^  (input|output) wire (?:\[(\d+):0\] )?(\w+)", text, re.M)
    assert [(d, int(w or 0) + 1, n) for d, w, n in decls] == [
        (p.direction, p.width, p.name) for p in top.port_specs]
    assert text.count("(* X_INTERFACE_INFO") == len(top.port_specs) - 1   # all but led


def _sim(cfg, bench):
    top = ZCU104Top(StandInAccelerator(cfg), cfg)
    sim = Simulator(top)

    async def clock(ctx):
        while True:
            ctx.set(top.clk, 0)
            await ctx.delay(5e-9)
            ctx.set(top.clk, 1)
            await ctx.delay(5e-9)

    async def run(ctx):
        await bench(ctx, top, top.port_signals)

    sim.add_process(clock)
    sim.add_testbench(run)
    sim.run()


async def _edge(ctx, top):
    await ctx.posedge(top.clk)


def test_register_read_ties_and_leds():
    seen = {}

    async def bench(ctx, top, s):
        ctx.set(top.rst_n, 0)
        for _ in range(3):
            await _edge(ctx, top)
        seen["led_in_reset"] = ctx.get(top.led)
        ctx.set(top.rst_n, 1)
        await _edge(ctx, top)
        # AXI4-Lite read of the ID register through the shell-level names.
        ctx.set(s["s_axi_csr_araddr"], 0)
        ctx.set(s["s_axi_csr_arvalid"], 1)
        ctx.set(s["s_axi_csr_rready"], 1)
        for _ in range(20):          # handshake: ARVALID & ARREADY before a rising edge
            ready = ctx.get(s["s_axi_csr_arready"])
            await _edge(ctx, top)
            if ready:
                break
        else:
            raise AssertionError("no ARREADY")
        ctx.set(s["s_axi_csr_arvalid"], 0)
        for _ in range(20):
            if ctx.get(s["s_axi_csr_rvalid"]):
                seen["rdata"] = ctx.get(s["s_axi_csr_rdata"])
                seen["rresp"] = ctx.get(s["s_axi_csr_rresp"])
                break
            await _edge(ctx, top)
        else:
            raise AssertionError("no RVALID")
        seen["ties"] = {n: ctx.get(s[f"m_axi_hp0_{n}"]) for n in
                        ("awlock", "arlock", "awcache", "arcache", "awprot", "arprot",
                         "awqos", "arqos")}
        seen["led_running"] = ctx.get(top.led)

    _sim(SMALL_TEST, bench)
    assert seen["rdata"] == ID_MAGIC and seen["rresp"] == 0
    assert seen["ties"] == {"awlock": 0, "arlock": 0, "awcache": AXCACHE, "arcache": AXCACHE,
                            "awprot": 0, "arprot": 0, "awqos": 0, "arqos": 0}
    assert seen["led_in_reset"] & 0b0110 == 0     # not out of reset, no interrupt
    assert seen["led_running"] & 0b0110 == 0b0010


class _NoIrq(wiring.Component):
    def __init__(self, cfg):
        super().__init__({"csr": In(axi4_lite_from_config(cfg))})

    def elaborate(self, platform):
        raise NotImplementedError


def test_check_accelerator_names_the_problem():
    with pytest.raises(TypeError, match="missing member 'irq'.*missing member 'm_axi0'"):
        check_accelerator(_NoIrq(SMALL_TEST), SMALL_TEST)
    with pytest.raises(TypeError, match="has m_axi1 but cfg.axi_masters == 1"):
        check_accelerator(StandInAccelerator(TWO), TWO.replace(axi_masters=1))
    with pytest.raises(TypeError, match="member 'm_axi0'"):
        check_accelerator(StandInAccelerator(SMALL_TEST), SMALL_TEST.replace(axi_data_width=128, array_cols=16))
    with pytest.raises(TypeError, match="wiring.Component"):
        check_accelerator(Signal(), SMALL_TEST)


def test_real_accelerator_fits_the_wrapper():
    accelerator = pytest.importorskip("rtl.accelerator")
    from rtl.config import CONFIGS
    cfg = CONFIGS["nano"]
    top = _top(accelerator.Accelerator(cfg), cfg)
    assert "s_axi_csr_araddr" in _names(top) and "m_axi_hp0_rdata" in _names(top)
    cfg2 = cfg.replace(axi_masters=2, array_cols=8)      # two read ports: 8-byte read words
    top2 = _top(accelerator.Accelerator(cfg2), cfg2)
    assert "m_axi_hp1_awaddr" in _names(top2)


@pytest.mark.parametrize("member", [Out(1), In(1)])
def test_extra_members_are_left_alone(member):
    class Extra(StandInAccelerator):
        def __init__(self, cfg):
            wiring.Component.__init__(self, {
                **StandInAccelerator(cfg).signature.members, "debug": member})
            self.cfg = cfg
    top = _top(Extra(SMALL_TEST), SMALL_TEST)
    assert "debug" not in _names(top)
