"""Logic depth and an estimated Fmax of a synthesised netlist (no placement, no routing).

:func:`analyse_file` reads the JSON netlist that Yosys ``synth_xilinx -family xcup -flatten``
writes (``write_json``, one flattened module), builds a timing graph of it and finds the longest
register-to-register paths with an iterative (Kahn) topological pass: LUT levels, MUXF levels,
carry cells and carry bits, DSP stages and LUT-RAM reads on each path, and an estimated delay by
the :class:`DelayModel` below. Yosys's own ``ltp -noff`` cannot do this after ``synth_xilinx``
(it does not know FDRE/FDCE as flip-flops, reports millions of loops and overflows its stack).

The graph
---------
Nodes are net bits plus a few internal nodes per complex cell. Combinational arcs:
``LUT1..6``/``INV`` (every input to the output; ``LUT6_2``: ``O5`` not from ``I5``), ``MUXF7/8/9``,
``CARRY4``/``CARRY8`` (a chain node per bit: ``S[i]``/``DI[i]`` enter at bit ``i``, the carry
ripples upwards, ``O[j]`` and ``CO[j]`` leave at bit ``j``; ``CARRY_TYPE=DUAL_CY4`` restarts at
``CI_TOP``; Yosys's ``arith_map.v`` writes CARRY4 only, also for xcup), LUT-RAM asynchronous reads
(read address to data out: ``A*``/``SPO``/``O``, ``DPRA*``/``DPO``, ``ADDR<X>``/``DO<X>``) and
SRL16E/SRLC32E address to ``Q``, ``DSP48E2`` stages (below), buffers (``BUFG*``, ``IBUF``,
``OBUF``…: zero delay). Path starts: ``Q`` of ``FD[RSCP]E``, block-RAM / URAM outputs (clock-to-out
with or without the output register, ``DOA_REG``/``DOB_REG``, ``OREG_A``/``OREG_B``), LUT-RAM and
SRL outputs (write clock to out), registered DSP stages.
Path ends: every data or control input of those (``D``/``CE``/``R``/``S``/``CLR``/``PRE``;
addresses, data, enables of RAMs; the inputs of registered DSP stages). A ``DSP48E2`` is a chain
of stages ``A``/``B``/``C``/``D`` (registered when ``AREG``/``BREG``/``CREG``/``DREG`` > 0),
pre-adder ``AD`` (used when ``AMULTSEL``/``BMULTSEL`` = ``AD``; ``ADREG``), multiplier ``M``
(unless ``USE_MULT=NONE``; ``MREG``), ALU ``P`` (``PREG``); a stage without its register is
combinational, so with ``MREG=0``/``PREG=0`` the multiply lies inside the fabric path. Top-level
ports are I/O paths, reported apart and left out of the Fmax (their budget depends on what drives
them: here the PS and its SmartConnect). Cell types the model does not know are listed in the
report and treated as registers on both sides (inputs end paths, outputs start them, zero delay).
Combinational loops are found (the nodes Kahn's pass cannot order), reported with one example
cycle, and left out. Negative-edge flip-flops (``FD*_1``) are taken as positive-edge: half-cycle
paths are not modelled. Logic levels of a path = LUTs + MUXFs + carry levels (a CARRY8, or two
cascaded CARRY4s, which Vivado retargets to one CARRY8) + DSP stages + LUT-RAM/SRL reads.

Delay model (XCZU7EV, speed grade -2, VCCINT 0.85 V) — an estimate, not sign-off timing
----------------------------------------------------------------------------------------
Sourced from the Zynq UltraScale+ data sheet DS925 (DSP48 slice and clock buffer switching
characteristics, -2 at 0.85 V): DSP FMAX with all registers 775 MHz, without MREG 544 MHz,
without ADREG 565 MHz, without MREG and ADREG 410 MHz; BUFG FMAX 775 MHz. The DSP stage delays
are solved from those three figures with 0.2 ns for the internal register (clock-to-out +
setup): pre-adder 0.60 ns, multiplier 0.97 ns, ALU 0.67 ns (0.60+0.97+0.2 = 1.77 ns = 565 MHz,
0.97+0.67+0.2 = 1.84 ns = 544 MHz, all three + 0.2 = 2.44 ns = 410 MHz). The estimate is capped
at the 775 MHz of the global clock tree.

Assumed (no DS925 CLB or block-RAM delay figures were found in the material searched; Vivado
reports LUT delay as logic delay and expects routing to be at least half of an UltraScale path,
UG906/UG949; the Versal data sheet DS958 gives 0.90 / 0.26 ns block-RAM clock-to-out without /
with the output register for its -2, the slower UltraScale+ block RAM is taken as 1.40 /
0.40 ns):

* flip-flop clock-to-Q 0.10 ns, setup 0.05 ns at ``D``, 0.10 ns at ``CE``/``R``/``S`` (and
  recovery at ``CLR``/``PRE``);
* a LUT (any size, any pin) 0.125 ns; ``INV`` counts as a LUT (Vivado absorbs many);
* a net between cells 0.35 ns plus 0.05 ns per doubling of its fanout (at most 0.6 ns extra);
  dedicated connections cost nothing (LUT to ``MUXF7``, ``MUXF7`` to ``MUXF8``, ``MUXF8`` to
  ``MUXF9``, carry cascade ``CO`` to ``CI``, DSP/BRAM/URAM cascades, ``SRLC32E`` ``Q31``),
  a LUT into ``CARRY S``/``DI`` (same slice) 0.05 ns;
* ``MUXF7/8/9`` 0.10 ns each; carry: 0.10 ns to enter at ``S``/``DI``, 0.0125 ns per bit of
  ripple (0.1 ns per CARRY8), 0.05 ns for the sum ``XOR`` to ``O``;
* block RAM clock-to-out 1.40 ns without, 0.40 ns with the output register; setup 0.45 ns;
  URAM288 1.80 / 0.60 ns (``OREG``), setup 0.50 ns;
* LUT-RAM read (address to out) 0.25 ns, write clock to out 0.90 ns, write setup 0.35 ns;
  SRL address to ``Q`` 0.25 ns, clock to ``Q`` 0.90 ns, setup 0.10 ns;
* DSP pins: fabric to the first stage 0.30 ns, last stage to the fabric 0.40 ns.

Estimated Fmax = 1000 / worst register-to-register delay (ns), at most the 775 MHz cap. With no
placement the routing numbers are guesses: treat the result as a ranking of the deepest paths and
a rough frequency, to be replaced by Vivado's ``report_timing_summary`` once it has run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DelayModel", "DEFAULT_MODEL", "TimingPath", "TimingReport", "analyse",
           "analyse_file", "clean_name"]


@dataclass(frozen=True)
class DelayModel:
    """Delays in ns (see the module docstring for where each comes from)."""
    name: str = "XCZU7EV -2 estimate (DS925 DSP/BUFG figures, assumed CLB/RAM/routing delays)"
    speed_grade: str = "2"
    ff_clk_to_q: float = 0.10
    ff_setup: float = 0.05
    ff_setup_ctrl: float = 0.10
    lut: float = 0.125
    route: float = 0.35
    route_fanout: float = 0.05        # per doubling of the fanout
    route_fanout_max: float = 0.60
    route_local: float = 0.05
    muxf: float = 0.10
    carry_enter: float = 0.10
    carry_bit: float = 0.0125
    carry_xor: float = 0.05
    bram_clk_to_out: float = 1.40
    bram_clk_to_out_reg: float = 0.40
    bram_setup: float = 0.45
    uram_clk_to_out: float = 1.80
    uram_clk_to_out_reg: float = 0.60
    uram_setup: float = 0.50
    lutram_read: float = 0.25
    lutram_clk_to_out: float = 0.90
    lutram_setup: float = 0.35
    srl_read: float = 0.25
    srl_clk_to_out: float = 0.90
    srl_setup: float = 0.10
    dsp_in: float = 0.30
    dsp_out: float = 0.40
    dsp_reg: float = 0.10             # internal register clock-to-out, and setup (each)
    dsp_preadd: float = 0.60
    dsp_mult: float = 0.97
    dsp_alu: float = 0.67
    fmax_cap_mhz: float = 775.0       # DS925 BUFG / DSP FMAX, -2
    fmax_cap_source: str = "DS925 -2: BUFG FMAX 775 MHz (and DSP48E2 with all registers)"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_MODEL = DelayModel()

# Arc kinds and what each adds to a path: (LUT, MUXF, carry cells, carry bits, DSP stages,
# LUT-RAM/SRL reads, carry levels). A carry level is a CARRY8, or two cascaded CARRY4s (the
# CARRY4s Yosys writes for xcup become CARRY8s in Vivado): the cascade into the second CARRY4 of
# a pair (K_CARRY_HALF) adds a cell but no level.
K_NONE, K_LUT, K_MUXF, K_CARRY_BIT_IN, K_CARRY_IN, K_CARRY_BIT, K_DSP, K_RAM, K_CARRY_HALF = \
    range(9)
_KIND_COUNTS = ((0, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0, 0), (0, 1, 0, 0, 0, 0, 0),
                (0, 0, 1, 1, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (0, 0, 0, 1, 0, 0, 0),
                (0, 0, 0, 0, 1, 0, 0), (0, 0, 0, 0, 0, 1, 0), (0, 0, 1, 0, 0, 0, 0))
_KIND_LEVEL = tuple(c[0] + c[1] + c[4] + c[5] + c[6] for c in _KIND_COUNTS)

LUT_TYPES = frozenset({"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2", "INV"})
MUXF_TYPES = frozenset({"MUXF7", "MUXF8", "MUXF9"})
CARRY_TYPES = frozenset({"CARRY4", "CARRY8"})
FF_TYPES = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1"})
BRAM_TYPES = frozenset({"RAMB18E2", "RAMB36E2"})
URAM_TYPES = frozenset({"URAM288", "URAM288_BASE"})
LUTRAM_TYPES = frozenset({
    "RAM16X1S", "RAM32X1S", "RAM64X1S", "RAM128X1S", "RAM256X1S", "RAM512X1S", "RAM16X2S",
    "RAM32X2S", "RAM64X2S", "RAM16X4S", "RAM32X4S", "RAM16X8S", "RAM32X8S", "RAM16X1D",
    "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1D", "RAM32M", "RAM32M16", "RAM64M", "RAM64M8",
    "RAM32X16DR8", "RAM64X8SW"})
SRL_TYPES = frozenset({"SRL16E", "SRLC16E", "SRLC32E", "SRL16"})
BUF_TYPES = frozenset({"BUFG", "BUFGCE", "BUFGCTRL", "BUFG_PS", "BUFGCE_DIV", "BUFCE_LEAF",
                       "IBUF", "IBUFG", "OBUF", "OBUFT", "IOBUF", "BUFH", "BUFHCE"})
CONST_TYPES = frozenset({"VCC", "GND"})
CLOCK_PINS = frozenset({"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "RDCLK", "WRCLK"})
_DSP_CASCADE_IN = frozenset({"ACIN", "BCIN", "PCIN", "CARRYCASCIN", "MULTSIGNIN"})
_DSP_CASCADE_OUT = frozenset({"ACOUT", "BCOUT", "PCOUT", "CARRYCASCOUT", "MULTSIGNOUT"})
_BIT_SUFFIX = re.compile(r"\[\d+\]$")
_DOLLAR_SUFFIX = re.compile(r"(\$\d+)+$")
_MEM_SUFFIX = re.compile(r"(\.\d+)+$")

# Route classes: what drives a net (driver tags) and what a pin is (sink tags).
_DEDICATED = frozenset({("lut", "muxf7"), ("muxf7", "muxf8"), ("muxf8", "muxf9"),
                        ("carry_top", "carry_ci"), ("dsp_casc", "dsp_casc"),
                        ("bram_casc", "bram_casc"), ("uram_casc", "uram_casc"),
                        ("srl_q31", "srl_d")})
_LOCAL = frozenset({("lut", "carry_sd")})


def clean_name(name: str) -> str:
    """An Amaranth-level name from a Yosys net or cell name: ``accel.x.busy$1`` → ``accel.x.busy``,
    ``accel.x.mem.0.1`` (a memory's block) → ``accel.x.mem``; Yosys-internal names
    (``$abc$…``, ``$auto$…``) are returned as they are."""
    name = name[1:] if name.startswith("\\") else name      # a public name that starts with $
    if name.startswith("$"):
        return name
    return _DOLLAR_SUFFIX.sub("", name) or name


def _param(params: dict, key: str, default):
    """A cell parameter as int (binary strings, ``-compat-int`` numbers) or str. Yosys writes
    a string parameter that looks like bits with a trailing space; undefined bits give
    ``default``."""
    v = params.get(key, default)
    if isinstance(v, str) and not isinstance(default, str):
        bits = v.strip()
        if bits and set(bits) <= {"0", "1"}:
            return int(bits, 2)
        if bits and set(bits) <= {"0", "1", "x", "z"}:
            return default
    return v


def _reg_on(params: dict, key: str, default=1) -> bool:
    """Whether a register parameter is on, whatever its form: ``AREG`` 0/1/2 (a number or a
    binary string), ``DOA_REG`` 0/1, ``OREG_A`` ``"TRUE"``/``"FALSE"``."""
    v = params.get(key, default)
    if isinstance(v, str):
        s = v.strip().upper()
        if s and set(s) <= {"0", "1"}:
            return int(s, 2) != 0
        if s and set(s) <= {"0", "1", "X", "Z"}:
            return _reg_on({}, key, default)
        return s == "TRUE"
    return bool(v)


# ---- the timing graph --------------------------------------------------------------------------

def _ints(bits) -> list[int]:
    return [b for b in bits if isinstance(b, int)]


def _is_clock(ctype: str, pin: str) -> bool:
    """A clock pin (no arcs, not counted in fanout); ``C`` of a ``DSP48E2`` is its data input."""
    return pin in CLOCK_PINS and not (pin == "C" and ctype == "DSP48E2")


def _guess_direction(ctype: str, pin: str) -> str:
    """Pin direction when the netlist carries no ``port_directions`` (hand-written netlists)."""
    outs = {"O", "O5", "O6", "Q", "Q15", "Q31", "CO", "P", "SPO", "DPO", "G"}
    if pin in outs or pin.startswith(("DOUT", "CASDOUT", "CASOUT", "CAS_OUT", "DO")) or \
            pin in _DSP_CASCADE_OUT or pin in ("CARRYOUT", "OVERFLOW", "UNDERFLOW", "XOROUT",
                                                "PATTERNDETECT", "PATTERNBDETECT"):
        return "output"
    if ctype in LUTRAM_TYPES and re.fullmatch(r"O\d*", pin):
        return "output"
    return "input"


@dataclass
class _Graph:
    """Nodes (net bits, then internal nodes), arcs, path starts and path ends of one module."""
    model: DelayModel
    n: int = 0
    src: list = field(default_factory=list)
    dst: list = field(default_factory=list)
    delay: list = field(default_factory=list)
    kind: list = field(default_factory=list)
    starts: dict = field(default_factory=dict)     # node -> (t0, label, clock bit, category)
    ends: list = field(default_factory=list)       # (node, extra, label, clock bit, category)
    vnames: dict = field(default_factory=dict)     # internal node -> (cell name, stage)
    driver: dict = field(default_factory=dict)     # bit -> (cell name, pin)
    tag: dict = field(default_factory=dict)        # bit -> route class of its driver
    fanout: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)
    types: Counter = field(default_factory=Counter)

    def virtual(self, cname: str, stage: str) -> int:
        node = self.n
        self.n += 1
        self.vnames[node] = (cname, stage)
        return node

    def arc(self, a: int, b: int, delay: float, kind: int = K_NONE) -> None:
        self.src.append(a)
        self.dst.append(b)
        self.delay.append(delay)
        self.kind.append(kind)

    def route(self, bit: int, sink: str = "gen") -> float:
        """Net delay from ``bit``'s driver to a pin of class ``sink``."""
        m, drv = self.model, self.tag.get(bit, "gen")
        if sink == "pad" or (drv, sink) in _DEDICATED:
            return 0.0
        if (drv, sink) in _LOCAL:
            return m.route_local
        fo = self.fanout.get(bit, 1)
        spread = min(m.route_fanout * math.log2(fo), m.route_fanout_max) if fo > 1 else 0.0
        return m.route + spread

    def start(self, node: int, t0: float, label: tuple, clock, category: str = "reg") -> None:
        old = self.starts.get(node)
        if old is None or t0 > old[0]:
            self.starts[node] = (t0, label, clock, category)

    def end(self, node: int, extra: float, label: tuple, clock, category: str = "reg") -> None:
        self.ends.append((node, extra, label, clock, category))


class _Builder:
    """Turns the cells of a flattened Yosys JSON module into a :class:`_Graph`."""

    def __init__(self, module: dict, model: DelayModel):
        self.cells = module.get("cells", {})
        self.ports = module.get("ports", {})
        self.m = model
        top_bit = 0
        for cell in self.cells.values():
            for bits in cell.get("connections", {}).values():
                top_bit = max([top_bit, *_ints(bits)])
        for port in self.ports.values():
            top_bit = max([top_bit, *_ints(port.get("bits", []))])
        self.g = _Graph(model=model, n=top_bit + 1)
        self._carry_pos: dict[str, int] = {}

    # -- pass 1: drivers, fanout, route classes --
    def scan(self) -> None:
        g = self.g
        for cname, cell in self.cells.items():
            ctype = cell.get("type", "?")
            g.types[ctype] += 1
            for pin, bits in cell.get("connections", {}).items():
                if self.direction(cell, pin) == "output":
                    for i, b in enumerate(bits):
                        if isinstance(b, int):
                            g.driver[b] = (cname, pin)
                            g.tag[b] = self.driver_tag(cell, pin, i, len(bits))
                elif not _is_clock(ctype, pin):
                    for b in _ints(bits):
                        g.fanout[b] += 1
        for pname, port in self.ports.items():
            for b in _ints(port.get("bits", [])):
                if port.get("direction") == "input":
                    g.driver.setdefault(b, ("", pname))
                    g.tag.setdefault(b, "port")
                else:
                    g.fanout[b] += 1

    @staticmethod
    def direction(cell: dict, pin: str) -> str:
        dirs = cell.get("port_directions")
        if dirs and pin in dirs:
            return dirs[pin]
        return _guess_direction(cell.get("type", ""), pin)

    @staticmethod
    def driver_tag(cell: dict, pin: str, i: int, width: int) -> str:
        ctype = cell.get("type", "")
        if ctype in LUT_TYPES:
            return "lut"
        if ctype in ("MUXF7", "MUXF8"):
            return ctype.lower()
        if ctype in CARRY_TYPES and pin == "CO" and i == width - 1:
            return "carry_top"
        if ctype == "DSP48E2" and pin in _DSP_CASCADE_OUT:
            return "dsp_casc"
        if ctype in BRAM_TYPES and pin.startswith(("CASDOUT", "CASOUT")):
            return "bram_casc"
        if ctype in URAM_TYPES and pin.startswith("CAS_OUT"):
            return "uram_casc"
        if ctype in SRL_TYPES and pin in ("Q15", "Q31"):
            return "srl_q31"
        return "gen"

    # -- pass 2: arcs, starts, ends --
    def build(self) -> _Graph:
        self.scan()
        handlers = [(LUT_TYPES, self.lut), (MUXF_TYPES, self.muxf), (CARRY_TYPES, self.carry),
                    (FF_TYPES, self.ff), (BRAM_TYPES, self.bram), (URAM_TYPES, self.uram),
                    (LUTRAM_TYPES, self.lutram), (SRL_TYPES, self.srl),
                    (frozenset({"DSP48E2"}), self.dsp), (BUF_TYPES, self.buf),
                    (CONST_TYPES, lambda *a: None)]
        for cname, cell in self.cells.items():
            ctype = cell.get("type", "?")
            if ctype.startswith("$scopeinfo"):
                continue
            for types, handler in handlers:
                if ctype in types:
                    handler(cname, cell)
                    break
            else:
                self.unknown_cell(cname, cell)
        self.io_ports()
        return self.g

    def pins(self, cell: dict, direction: str):
        """``(pin, bits)`` of the connected pins of ``cell`` in ``direction`` (clocks left out)."""
        ctype = cell.get("type", "")
        for pin, bits in cell.get("connections", {}).items():
            if not _is_clock(ctype, pin) and self.direction(cell, pin) == direction:
                yield pin, bits

    def clock(self, cell: dict, pin: str):
        bits = _ints(cell.get("connections", {}).get(pin, []))
        return bits[0] if bits else None

    def lut(self, cname, cell):
        g, d = self.g, self.m.lut
        outs = [(pin, b) for pin, bits in self.pins(cell, "output") for b in _ints(bits)]
        for pin, bits in self.pins(cell, "input"):
            for a in _ints(bits):
                r = g.route(a)
                for out_pin, o in outs:
                    if not (pin == "I5" and out_pin == "O5"):   # LUT6_2: O5 is of I0..I4
                        g.arc(a, o, r + d, K_LUT)

    def muxf(self, cname, cell):
        g, sink = self.g, cell["type"].lower()
        outs = [b for _, bits in self.pins(cell, "output") for b in _ints(bits)]
        for pin, bits in self.pins(cell, "input"):
            for a in _ints(bits):
                r = g.route(a, sink if pin in ("I0", "I1") else "gen")
                for o in outs:
                    g.arc(a, o, r + self.m.muxf, K_MUXF)

    def carry(self, cname, cell):
        """A ripple node per bit: ``c[i]`` is the carry into bit ``i``."""
        g, m, conns = self.g, self.m, cell.get("connections", {})
        width = 8 if cell["type"] == "CARRY8" else 4
        dual = width == 8 and _param(cell.get("parameters", {}), "CARRY_TYPE",
                                     "SINGLE_CY8") == "DUAL_CY4"
        c = [g.virtual(cname, f"c{i}") for i in range(width + 1)]
        ci_kind = K_CARRY_HALF if width == 4 and self.carry4_position(cname) % 2 else K_CARRY_IN
        for pin, node in (("CI", c[0]), ("CYINIT", c[0]), ("CI_TOP", c[4] if dual else None)):
            for a in _ints(conns.get(pin, [])):
                if node is not None:
                    cascade = g.tag.get(a) == "carry_top"
                    g.arc(a, node, g.route(a, "carry_ci"), ci_kind if cascade else K_CARRY_IN)
        for i in range(width):
            if not (dual and i == 3):
                g.arc(c[i], c[i + 1], m.carry_bit, K_CARRY_BIT)
            s = conns.get("S", [])[i:i + 1] + conns.get("DI", [])[i:i + 1]
            for a in _ints(s):
                g.arc(a, c[i + 1], g.route(a, "carry_sd") + m.carry_enter, K_CARRY_BIT_IN)
            for o in _ints(conns.get("O", [])[i:i + 1]):
                g.arc(c[i], o, m.carry_xor)
                for a in _ints(conns.get("S", [])[i:i + 1]):
                    g.arc(a, o, g.route(a, "carry_sd") + m.carry_enter + m.carry_xor,
                          K_CARRY_BIT_IN)
            for o in _ints(conns.get("CO", [])[i:i + 1]):
                g.arc(c[i + 1], o, 0.0)

    def carry4_position(self, cname: str) -> int:
        """Place of a CARRY4 in its cascade (0: carry from the fabric), walked back iteratively."""
        pos, chain, cur = self._carry_pos, [], cname
        while cur not in pos:
            chain.append(cur)
            prev = self._carry4_before(cur)
            if prev is None or prev in chain:
                pos[chain.pop()] = 0
                break
            cur = prev
        for name in reversed(chain):
            pos[name] = pos[cur] + 1
            cur = name
        return pos[cname]

    def _carry4_before(self, cname: str) -> str | None:
        ci = _ints(self.cells[cname].get("connections", {}).get("CI", []))
        if not ci or self.g.tag.get(ci[0]) != "carry_top":
            return None
        prev = self.g.driver.get(ci[0], ("", ""))[0]
        return prev if self.cells.get(prev, {}).get("type") == "CARRY4" else None

    def ff(self, cname, cell):
        g, m, conns = self.g, self.m, cell.get("connections", {})
        clk = self.clock(cell, "C")
        q = _ints(conns.get("Q", []))
        reg = q[0] if q else None
        for b in q:
            g.start(b, m.ff_clk_to_q, ("net", b, "Q", cell["type"], cname), clk)
        for pin, bits in self.pins(cell, "input"):
            setup = m.ff_setup if pin == "D" else m.ff_setup_ctrl
            for a in _ints(bits):
                g.end(a, g.route(a) + setup, ("net", reg, pin, cell["type"], cname), clk)

    def _ram_ends(self, cname, cell, setup, clock_of, casc):
        g = self.g
        for pin, bits in self.pins(cell, "input"):
            sink = casc if pin.startswith(("CASDIN", "CASIN", "CAS_IN")) else "gen"
            clk = clock_of(pin)
            for i, a in enumerate(bits):
                if isinstance(a, int):
                    g.end(a, g.route(a, sink) + setup, ("cell", cname, pin, i, cell["type"]), clk)

    def bram(self, cname, cell):
        g, m, p = self.g, self.m, cell.get("parameters", {})
        clk_a, clk_b = self.clock(cell, "CLKARDCLK"), self.clock(cell, "CLKBWRCLK")
        sdp = _param(p, "READ_WIDTH_A", 0) >= (72 if cell["type"] == "RAMB36E2" else 36)
        reg_a, reg_b = _reg_on(p, "DOA_REG"), _reg_on(p, "DOB_REG")
        if sdp:
            reg_a = reg_b = reg_a and reg_b
        b_side = re.compile(r"(ADDRBWRADDR|DINB|DINPB|WEBWE|ENBWREN|RSTRAMB|RSTREGB|REGCEB|"
                            r"ADDRENB|DOUTB|DOUTPB|CAS\w*B)")
        # simple dual port (and Yosys's read-A/write-B mapping): port A's data inputs are
        # written by the write clock
        a_write_by_b = sdp or _param(p, "WRITE_WIDTH_A", 1) == 0
        a_write = re.compile(r"(DINADIN|DINPADINP|WEA)")
        for pin, bits in self.pins(cell, "output"):
            is_b = bool(b_side.match(pin)) and not sdp
            t0 = m.bram_clk_to_out_reg if (reg_b if is_b else reg_a) else m.bram_clk_to_out
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    g.start(b, t0, ("cell", cname, pin, i, cell["type"]), clk_b if is_b else clk_a)
        self._ram_ends(cname, cell, m.bram_setup,
                       lambda pin: clk_b if b_side.match(pin) or (
                           a_write_by_b and a_write.match(pin)) else clk_a, "bram_casc")

    def uram(self, cname, cell):
        g, m, p = self.g, self.m, cell.get("parameters", {})
        clk = self.clock(cell, "CLK")
        for pin, bits in self.pins(cell, "output"):
            oreg = _reg_on(p, "OREG_B" if pin.endswith("_B") else "OREG_A", "FALSE")
            t0 = m.uram_clk_to_out_reg if oreg else m.uram_clk_to_out
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    g.start(b, t0, ("cell", cname, pin, i, cell["type"]), clk)
        self._ram_ends(cname, cell, m.uram_setup, lambda pin: clk, "uram_casc")

    @staticmethod
    def _read_address(pin: str, inputs: list[str]) -> list[str]:
        if pin == "DPO":
            return [p for p in inputs if p.startswith("DPRA")]
        if pin.startswith("DO"):
            return [p for p in inputs if p == "ADDR" + pin[2:]]
        return [p for p in inputs if re.fullmatch(r"A\d*", p)]

    def lutram(self, cname, cell):
        g, m = self.g, self.m
        clk = self.clock(cell, "WCLK")
        ins = dict(self.pins(cell, "input"))
        addr_ports = sorted(p for p in ins if re.fullmatch(r"ADDR[A-H]", p))
        write = {p for p in ins if re.fullmatch(r"A\d*|D\d*|DI[A-H]?|WE|WSEL\d*", p)}
        write |= set(addr_ports[-1:])
        for pin, bits in self.pins(cell, "output"):
            outs = _ints(bits)
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    g.start(b, m.lutram_clk_to_out, ("cell", cname, pin, i, cell["type"]), clk)
            for ap in self._read_address(pin, list(ins)):
                for a in _ints(ins[ap]):
                    r = g.route(a)
                    for o in outs:
                        g.arc(a, o, r + m.lutram_read, K_RAM)
        for pin in sorted(write):          # sorted: path ends in a fixed order (ties)
            for i, a in enumerate(ins[pin]):
                if isinstance(a, int):
                    g.end(a, g.route(a) + m.lutram_setup, ("cell", cname, pin, i, cell["type"]),
                          clk)

    def srl(self, cname, cell):
        g, m = self.g, self.m
        clk = self.clock(cell, "CLK")
        ins = dict(self.pins(cell, "input"))
        for pin, bits in self.pins(cell, "output"):
            for b in _ints(bits):
                g.start(b, m.srl_clk_to_out, ("cell", cname, pin, 0, cell["type"]), clk)
                if pin == "Q":
                    for ap in (p for p in ins if re.fullmatch(r"A\d*", p)):
                        for a in _ints(ins[ap]):
                            g.arc(a, b, g.route(a) + m.srl_read, K_RAM)
        for pin in ("D", "CE"):
            for a in _ints(ins.get(pin, [])):
                g.end(a, g.route(a, "srl_d" if pin == "D" else "gen") + m.srl_setup,
                      ("cell", cname, pin, 0, cell["type"]), clk)

    def dsp(self, cname, cell):
        """``DSP48E2`` as stages (see the module docstring); a registered stage ends and starts
        paths, an unregistered one passes through."""
        g, m, p = self.g, self.m, cell.get("parameters", {})
        conns, clk = cell.get("connections", {}), self.clock(cell, "CLK")

        def stage(name, reg, pins=()):
            node_in = g.virtual(cname, name)
            fed = False
            for pin in pins:
                sink = "dsp_casc" if pin in _DSP_CASCADE_IN else "gen"
                for a in _ints(conns.get(pin, [])):
                    g.arc(a, node_in, g.route(a, sink) + m.dsp_in)
                    fed = True
            if not reg:
                return node_in, node_in
            node_out = g.virtual(cname, name + "REG")
            label = ("virt", cname, name + "REG", "DSP48E2")
            g.end(node_in, m.dsp_reg, label, clk)
            if fed or not pins:
                g.start(node_out, m.dsp_reg, label, clk)
            return node_in, node_out

        a_in, a = stage("A", _reg_on(p, "AREG"), ("A", "ACIN"))
        b_in, b = stage("B", _reg_on(p, "BREG"), ("B", "BCIN"))
        _, c = stage("C", _reg_on(p, "CREG"), ("C",))
        _, d = stage("D", _reg_on(p, "DREG"), ("D",))
        _, inmode = stage("INMODE", _reg_on(p, "INMODEREG"), ("INMODE",))
        _, ctrl = stage("OPMODE", _reg_on(p, "OPMODEREG") or _reg_on(p, "ALUMODEREG"),
                        ("OPMODE", "ALUMODE", "CARRYINSEL", "CARRYIN"))
        preadd = "AD" in (_param(p, "AMULTSEL", "A"), _param(p, "BMULTSEL", "B"))
        mult_in = [b if _param(p, "BMULTSEL", "B") == "B" else None,
                   a if _param(p, "AMULTSEL", "A") == "A" else None, inmode]
        if preadd:
            ad_in, ad = stage("AD", _reg_on(p, "ADREG"))
            pre_src = b if _param(p, "PREADDINSEL", "A") == "B" else a
            for x in (pre_src, d, inmode):
                g.arc(x, ad_in, m.dsp_preadd, K_DSP)
            mult_in.append(ad)
        alu_in = [c, ctrl]
        if _param(p, "USE_MULT", "MULTIPLY") != "NONE":
            m_in, mo = stage("M", _reg_on(p, "MREG"))
            for x in mult_in:
                if x is not None:
                    g.arc(x, m_in, m.dsp_mult, K_DSP)
            alu_in.append(mo)
        else:
            alu_in += [a, b]
        p_in, po = stage("P", _reg_on(p, "PREG"))
        for x in alu_in:
            g.arc(x, p_in, m.dsp_alu, K_DSP)
        for pin in ("PCIN", "CARRYCASCIN", "MULTSIGNIN"):
            for x in _ints(conns.get(pin, [])):
                g.arc(x, p_in, g.route(x, "dsp_casc") + m.dsp_in + m.dsp_alu, K_DSP)
        for pin, bits in self.pins(cell, "output"):
            node = a if pin == "ACOUT" else b if pin == "BCOUT" else po
            for o in _ints(bits):
                g.arc(node, o, m.dsp_out)
        for pin, bits in self.pins(cell, "input"):
            if pin.startswith(("CE", "RST")):
                for a_ in _ints(bits):
                    g.end(a_, g.route(a_) + m.dsp_in + m.dsp_reg,
                          ("virt", cname, pin, "DSP48E2"), clk)

    def buf(self, cname, cell):
        g = self.g
        outs = [b for _, bits in self.pins(cell, "output") for b in _ints(bits)]
        for _, bits in self.pins(cell, "input"):
            for a in _ints(bits):
                for o in outs:
                    g.arc(a, o, 0.0)

    def unknown_cell(self, cname, cell):
        g = self.g
        g.unknown[cell.get("type", "?")] += 1
        for pin, bits in self.pins(cell, "output"):
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    g.start(b, 0.0, ("cell", cname, pin, i, cell.get("type", "?")), None, "unknown")
        for pin, bits in self.pins(cell, "input"):
            for i, a in enumerate(bits):
                if isinstance(a, int):
                    g.end(a, g.route(a), ("cell", cname, pin, i, cell.get("type", "?")), None,
                          "unknown")

    def io_ports(self):
        g = self.g
        for pname, port in self.ports.items():
            bits = port.get("bits", [])
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                if port.get("direction") == "input":
                    g.start(b, 0.0, ("port", pname, i, len(bits)), None, "in")
                else:
                    g.end(b, 0.0, ("port", pname, i, len(bits)), None, "out")


# ---- names -------------------------------------------------------------------------------------

def _name_score(name: str) -> tuple:
    """Lower is better: Amaranth's own names before ``$n``-suffixed aliases and interface
    members (``bus__r__data``), deeper (closer to where the signal is made) before shallower."""
    return ("$" in name, "__" in name, -name.count("."), len(name), name)


class _Names:
    """Best public name of every net bit, the nearest one for the others, cell labels."""

    def __init__(self, module: dict, graph: _Graph, csr: "_CSR"):
        self.best: dict[int, tuple[str, int, int]] = {}
        for name, net in module.get("netnames", {}).items():
            if net.get("hide_name", 0):
                continue
            bits = net.get("bits", [])
            offset = net.get("offset", 0)
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    idx = (offset + len(bits) - 1 - i) if net.get("upto") else offset + i
                    cand = (name, idx, len(bits))
                    old = self.best.get(b)
                    if old is None or _name_score(name) < _name_score(old[0]):
                        self.best[b] = cand
        self.cells = module.get("cells", {})
        self.graph, self.csr = graph, csr
        self._near: dict[int, str] = {}
        self._clocks: dict[int, str] = {}

    def public(self, node: int) -> str | None:
        hit = self.best.get(node)
        if hit is None:
            return None
        name, idx, width = hit
        name = clean_name(name)
        return f"{name}[{idx}]" if width > 1 else name

    def net(self, node: int | None) -> str:
        """The name of ``node``, or ``≈`` the nearest named net (breadth-first, both ways)."""
        if node is None:
            return "?"
        own = self.public(node)
        if own is not None:
            return own
        if node in self._near:
            return self._near[node]
        seen, queue, found = {node}, deque([node]), None
        while queue and found is None and len(seen) < 2000:
            u = queue.popleft()
            for v in self.csr.neighbours(u):
                if v not in seen:
                    seen.add(v)
                    if v in self.best:
                        found = v
                        break
                    queue.append(v)
        if found is None and node in self.graph.vnames:
            text = self.cell(self.graph.vnames[node][0])
        else:
            text = "≈" + self.public(found) if found is not None else f"<net {node}>"
        self._near[node] = text
        return text

    def cell(self, cname: str) -> str:
        cell = self.cells.get(cname, {})
        ctype = cell.get("type", "?")
        if not cell.get("hide_name", cname.startswith("$")):
            name = clean_name(_MEM_SUFFIX.sub("", cname) if ctype in (
                BRAM_TYPES | URAM_TYPES | LUTRAM_TYPES) else cname)
            return name
        for pin, bits in cell.get("connections", {}).items():
            if _Builder.direction(cell, pin) == "output" and _ints(bits):
                return self.net(_ints(bits)[0])
        return cname

    def label(self, label: tuple) -> tuple[str, str, str]:
        """``(signal, pin, primitive)`` of a start or end label."""
        what = label[0]
        if what == "net":
            _, bit, pin, ctype, cname = label
            return (self.net(bit) if bit is not None else self.cell(cname)), pin, ctype
        if what == "cell":
            _, cname, pin, i, ctype = label
            return f"{self.cell(cname)}", f"{pin}[{i}]" if i else pin, ctype
        if what == "virt":
            _, cname, stage, ctype = label
            return self.cell(cname), stage, ctype
        _, pname, i, width = label
        return (f"{pname}[{i}]" if width > 1 else pname), "", "port"

    def clock(self, bit) -> str:
        """The clock net's name, followed back through clock and input buffers."""
        if bit is None:
            return "none"
        if bit in self._clocks:
            return self._clocks[bit]
        first, seen = bit, set()
        while bit not in seen:
            seen.add(bit)
            cname, _ = self.graph.driver.get(bit, ("", ""))
            cell = self.cells.get(cname)
            if cell is None or cell.get("type") not in BUF_TYPES:
                break
            conns = cell.get("connections", {})       # I (I0 of BUFGCTRL), not CE or S
            ins = _ints(conns.get("I") or conns.get("I0") or [])
            if not ins:
                break
            bit = ins[0]
        self._clocks[first] = self.public(bit) or self.net(bit)
        return self._clocks[first]


# ---- the longest-path pass ---------------------------------------------------------------------

class _CSR:
    """Arcs sorted by source (and a reverse index), as plain lists for fast Python loops."""

    def __init__(self, g: _Graph):
        n = g.n
        src = np.asarray(g.src, dtype=np.int64)
        dst = np.asarray(g.dst, dtype=np.int64)
        order = np.argsort(src, kind="stable")
        self.src = src[order].tolist()
        self.dst = dst[order].tolist()
        self.delay = np.asarray(g.delay, dtype=np.float64)[order].tolist()
        self.kind = np.asarray(g.kind, dtype=np.int8)[order].tolist()
        self.ptr = np.concatenate(([0], np.cumsum(np.bincount(src, minlength=n)))).tolist()
        rorder = np.argsort(dst, kind="stable")
        self.rsrc = src[rorder].tolist()
        self.rptr = np.concatenate(([0], np.cumsum(np.bincount(dst, minlength=n)))).tolist()
        self.indeg = np.bincount(dst, minlength=n).tolist()
        self.n = n

    def neighbours(self, u: int):
        yield from self.dst[self.ptr[u]:self.ptr[u + 1]]
        yield from self.rsrc[self.rptr[u]:self.rptr[u + 1]]


def _topological(csr: _CSR) -> tuple[list[int], list[int]]:
    """Kahn's algorithm: the nodes in topological order, and those left over (in or behind a
    combinational loop)."""
    indeg, ptr, dst = list(csr.indeg), csr.ptr, csr.dst
    queue = deque(i for i in range(csr.n) if indeg[i] == 0)
    order = []
    while queue:
        u = queue.popleft()
        order.append(u)
        for k in range(ptr[u], ptr[u + 1]):
            v = dst[k]
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    left = [i for i in range(csr.n) if indeg[i] > 0]
    return order, left


def _loop_core(csr: _CSR, left: list[int]) -> tuple[set[int], list[int]]:
    """Of the nodes Kahn's pass left, those on or between cycles (peeling the ones that lead
    nowhere inside the set), and one cycle through them."""
    core = set(left)
    outdeg = {u: sum(1 for k in range(csr.ptr[u], csr.ptr[u + 1]) if csr.dst[k] in core)
              for u in core}
    queue = deque(u for u, d in outdeg.items() if d == 0)
    while queue:
        u = queue.popleft()
        core.discard(u)
        for k in range(csr.rptr[u], csr.rptr[u + 1]):
            w = csr.rsrc[k]
            if w in core:
                outdeg[w] -= 1
                if outdeg[w] == 0:
                    queue.append(w)
    if not core:
        return core, []
    u, pos, walk = min(core), {}, []
    while u not in pos:
        pos[u] = len(walk)
        walk.append(u)
        u = next(csr.dst[k] for k in range(csr.ptr[u], csr.ptr[u + 1]) if csr.dst[k] in core)
    return core, walk[pos[u]:] + [u]


_NEG = float("-inf")


def _relax(csr: _CSR, order: list[int], init: dict[int, float], levels: bool):
    """Longest arrival at every node from the ``init`` nodes, in topological order: arrival,
    the arc it came by, the start it came from; with ``levels`` also the most logic levels."""
    n, ptr, dst, dl, kd = csr.n, csr.ptr, csr.dst, csr.delay, csr.kind
    arr, pred, origin = [_NEG] * n, [-1] * n, [-1] * n
    lvl, lpred = ([-1] * n, [-1] * n) if levels else (None, None)
    for node, t0 in init.items():
        arr[node], origin[node] = t0, node
        if levels:
            lvl[node] = 0
    klevel = _KIND_LEVEL
    for u in order:
        a = arr[u]
        if a == _NEG:
            continue
        o = origin[u]
        lu = lvl[u] if levels else 0
        for k in range(ptr[u], ptr[u + 1]):
            v = dst[k]
            t = a + dl[k]
            if t > arr[v]:
                arr[v], pred[v], origin[v] = t, k, o
            if levels:
                lv = lu + klevel[kd[k]]
                if lv > lvl[v]:
                    lvl[v], lpred[v] = lv, k
    return arr, pred, origin, lvl, lpred


# ---- the report --------------------------------------------------------------------------------

@dataclass
class TimingPath:
    """One reported path: where it starts and ends (Amaranth-level names), its logic."""
    category: str                 # "reg" (register to register), "in->reg", "reg->out", "in->out"
    delay_ns: float
    start: str
    start_pin: str
    start_cell: str
    end: str
    end_pin: str
    end_cell: str
    start_clock: str
    end_clock: str
    levels: int
    lut: int
    muxf: int
    carry: int                    # carry cells (CARRY4 or CARRY8) on the path
    carry_levels: int             # in CARRY8s (a cascaded CARRY4 pair is one)
    carry_bits: int
    dsp: int
    lutram: int
    via: list[str]
    steps: list[tuple[str, str, float]] = field(default_factory=list)   # (cell, net, ns so far)

    @property
    def domain(self) -> str:
        return _domain(self.start_clock, self.end_clock)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"domain": self.domain}

    def logic(self) -> str:
        parts = [f"LUT {self.lut}"]
        if self.carry:
            parts.append(f"CARRY8 {self.carry_levels} ({self.carry} cells, {self.carry_bits} b)")
        if self.muxf:
            parts.append(f"MUXF {self.muxf}")
        if self.dsp:
            parts.append(f"DSP {self.dsp}")
        if self.lutram:
            parts.append(f"LUTRAM/SRL {self.lutram}")
        return ", ".join(parts) if self.levels else "no logic"


def _domain(a: str, b: str) -> str:
    return a if a == b else f"{a} -> {b}"


def _fmax(ns: float | None, model: DelayModel) -> float | None:
    if ns is None:
        return None
    return min(1000.0 / ns, model.fmax_cap_mhz) if ns > 0 else model.fmax_cap_mhz


@dataclass
class TimingReport:
    """Result of :func:`analyse`: worst paths, logic levels, estimated Fmax, loops, unknowns."""
    top: str
    model: DelayModel
    paths: list[TimingPath]
    worst_levels_path: TimingPath | None
    domains: dict[str, dict]
    io_paths: list[TimingPath]
    loops: dict
    unknown_cells: dict[str, int]
    cells: dict[str, int]
    nodes: int
    arcs: int
    endpoints: int
    seconds: float = 0.0

    @property
    def worst(self) -> TimingPath | None:
        return self.paths[0] if self.paths else None

    @property
    def worst_ns(self) -> float | None:
        return self.worst.delay_ns if self.worst else None

    @property
    def estimated_fmax_mhz(self) -> float | None:
        return _fmax(self.worst_ns, self.model)

    @property
    def worst_logic_levels(self) -> int:
        return self.worst_levels_path.levels if self.worst_levels_path else 0

    def summary(self) -> dict:
        """The short form (``resources.json``'s ``timing`` key)."""
        w = self.worst
        return {"estimated_fmax_mhz": _round(self.estimated_fmax_mhz),
                "worst_path_ns": _round(self.worst_ns),
                "worst_logic_levels": self.worst_logic_levels,
                "worst_path": f"{w.start} -> {w.end}" if w else None,
                "worst_path_levels": w.levels if w else None,
                "combinational_loops": self.loops["nodes"],
                "unknown_cells": sum(self.unknown_cells.values()),
                "model": self.model.name}

    def as_dict(self) -> dict:
        return {"top": self.top, **self.summary(), "fmax_cap_mhz": self.model.fmax_cap_mhz,
                "fmax_cap_source": self.model.fmax_cap_source,
                "paths": [p.as_dict() for p in self.paths],
                "worst_levels_path": self.worst_levels_path.as_dict()
                if self.worst_levels_path else None,
                "domains": self.domains, "io_paths": [p.as_dict() for p in self.io_paths],
                "loops": self.loops, "unknown_cell_types": self.unknown_cells,
                "cells": self.cells, "graph": {"nodes": self.nodes, "arcs": self.arcs,
                                               "endpoints": self.endpoints},
                "seconds": round(self.seconds, 2), "delay_model": self.model.as_dict()}

    def to_text(self, requested_mhz: float | None = None) -> str:
        """The ``timing.txt`` report."""
        fmax, w = self.estimated_fmax_mhz, self.worst
        lines = [f"Logic depth and estimated Fmax of {self.top} (platform.timing: Yosys netlist, "
                 "no placement or routing: an estimate, not sign-off timing)",
                 f"Delay model: {self.model.name}", ""]
        if w is None:
            lines.append("No register-to-register path found.")
        else:
            cap = " (the clock-tree cap)" if fmax == self.model.fmax_cap_mhz else ""
            lines += [f"Worst register-to-register path: {w.delay_ns:.3f} ns -> estimated Fmax "
                      f"{fmax:.1f} MHz{cap}",
                      f"Worst logic levels: {self.worst_logic_levels}"
                      f" ({self.worst_levels_path.logic()}) on {self.worst_levels_path.start} -> "
                      f"{self.worst_levels_path.end}"]
        if requested_mhz is not None and fmax is not None:
            verdict = ("within the estimate" if requested_mhz <= fmax else
                       "ABOVE the estimate")
            lines.append(f"Requested clock: {requested_mhz:g} MHz ({1000 / requested_mhz:.3f} ns):"
                         f" {verdict}")
        lines += ["", "Clock domains (launch -> capture):"]
        for name, d in self.domains.items():
            lines.append(f"  {name}: {d['endpoints']:,} endpoints, worst {d['worst_ns']:.3f} ns "
                         f"({d['fmax_mhz']:.1f} MHz), most logic levels {d['worst_levels']}")
        lines += ["", f"Top {len(self.paths)} register-to-register paths (the worst per end "
                  "signal):", _path_table(self.paths)]
        if w is not None:
            lines += ["", "Worst path, step by step (cell.output pin, net, arrival ns):"]
            lines += [f"  {cell:24s} {t:7.3f}  {net}" for cell, net, t in w.steps
                      if not re.fullmatch(r"CARRY\d\.c\d", cell)]
            lines.append(f"  {('(end: ' + w.end_cell + ' ' + w.end_pin).rstrip() + ')':24s} "
                         f"{w.delay_ns:7.3f}  {w.end}")
        if self.io_paths:
            lines += ["", "I/O paths (core ports; not in the Fmax: their budget depends on the "
                      "PS side):", _path_table(self.io_paths)]
        lines += ["", _loop_text(self.loops), _unknown_text(self.unknown_cells),
                  f"Graph: {self.nodes:,} nodes, {self.arcs:,} arcs, {self.endpoints:,} path "
                  f"ends; {self.seconds:.1f} s", "", _model_text(self.model)]
        return "\n".join(lines) + "\n"


def _round(x, nd=3):
    return None if x is None else round(x, nd)


def _path_table(paths: list[TimingPath]) -> str:
    rows = [f" #     ns lvl  {'logic':44s} start -> end"]
    for i, p in enumerate(paths, 1):
        start = f"{p.start} ({p.start_cell} {p.start_pin}".rstrip() + ")"
        end = f"{p.end} ({p.end_cell} {p.end_pin}".rstrip() + ")"
        rows.append(f"{i:2d} {p.delay_ns:6.3f} {p.levels:3d}  {p.logic():44s} {start} -> {end}"
                    + (f"  [{p.domain}]" if p.category == "reg" else f"  [{p.category}]"))
        if p.via:
            rows.append(f"{'':15s}via {', '.join(p.via[:8])}" + (" …" if len(p.via) > 8 else ""))
    return "\n".join(rows)


def _loop_text(loops: dict) -> str:
    if not loops["nodes"]:
        return "Combinational loops: none."
    return (f"Combinational loops: {loops['nodes']:,} nodes on or between loops, "
            f"{loops['endpoints_skipped']:,} path ends behind them left out; one loop: "
            + " -> ".join(loops["example"]))


def _unknown_text(unknown: dict[str, int]) -> str:
    if not unknown:
        return "Unknown cell types: none."
    return ("Unknown cell types (taken as registers on both sides, zero delay): "
            + ", ".join(f"{t} x{n}" for t, n in sorted(unknown.items())))


def _model_text(m: DelayModel) -> str:
    keys = [f.name for f in dataclasses.fields(m) if isinstance(getattr(m, f.name), float)]
    return "Delay model (ns): " + ", ".join(f"{k} {getattr(m, k):g}" for k in keys)


# ---- analysis ----------------------------------------------------------------------------------

def _top_module(netlist: dict, top: str | None) -> tuple[str, dict]:
    modules = netlist.get("modules", {})
    if top is not None:
        if top not in modules:
            raise ValueError(f"module {top!r} not in the netlist (has: {', '.join(modules)})")
        return top, modules[top]
    tops = [k for k, v in modules.items() if str(v.get("attributes", {}).get("top", "0"))
            .strip("0") or len(modules) == 1]
    if len(tops) != 1:
        raise ValueError("name the top module: the netlist has " + ", ".join(modules))
    return tops[0], modules[tops[0]]


class _Walker:
    """Turns relaxation results into :class:`TimingPath` objects."""

    def __init__(self, g: _Graph, csr: _CSR, names: _Names):
        self.g, self.csr, self.names = g, csr, names

    def _trace(self, node: int, pred: list[int]) -> tuple[list[int], list[int], list[float]]:
        """Follow ``pred`` back from ``node``: element counts, nodes and arc delays, start first."""
        counts, nodes, delays = [0] * 7, [node], []
        v = node
        while pred[v] != -1:
            k = pred[v]
            for i, c in enumerate(_KIND_COUNTS[self.csr.kind[k]]):
                counts[i] += c
            delays.append(self.csr.delay[k])
            v = self.csr.src[k]
            nodes.append(v)
        return counts, nodes[::-1], delays[::-1]

    def path(self, end: tuple, total: float, pred: list[int], category: str) -> TimingPath:
        node, _, end_label, end_clock, _ = end
        counts, nodes, delays = self._trace(node, pred)
        start = self.g.starts[nodes[0]]
        return self._make(category, total, start, end_label, end_clock, counts, nodes,
                          _cumulative(start[0], delays))

    def _step(self, node: int, t: float) -> tuple[str, str, float]:
        if node in self.g.vnames:
            cname, stage = self.g.vnames[node]
            cell = self.names.cells.get(cname, {}).get("type", "?")
            return f"{cell}.{stage}", "", round(t, 3)
        cname, pin = self.g.driver.get(node, ("", "?"))
        cell = self.names.cells.get(cname, {}).get("type", "port") if cname else "port"
        return f"{cell}.{pin}", self.names.public(node) or "", round(t, 3)

    def _make(self, category, total, start, end_label, end_clock, counts, nodes, times):
        s_name, s_pin, s_cell = self.names.label(start[1])
        e_name, e_pin, e_cell = self.names.label(end_label)
        via = []
        for u in nodes[1:-1]:
            if u in self.g.vnames and self.g.vnames[u][1] in ("M", "P", "AD"):
                name = f"DSP48E2 {self.names.cell(self.g.vnames[u][0])}"
                if not via or via[-1] != name:
                    via.append(name)
                continue
            name = self.names.public(u)
            if name:
                base = _BIT_SUFFIX.sub("", name)
                if base not in (_BIT_SUFFIX.sub("", s_name), _BIT_SUFFIX.sub("", e_name)) and \
                        (not via or via[-1] != base):
                    via.append(base)
        lut, muxf, carry, bits, dsp, ram, carry_levels = counts
        steps = [self._step(u, t) for u, t in zip(nodes, times)]
        return TimingPath(category, round(total, 4), s_name, s_pin, s_cell, e_name, e_pin, e_cell,
                          self.names.clock(start[2]), self.names.clock(end_clock),
                          lut + muxf + carry_levels + dsp + ram, lut, muxf, carry, carry_levels,
                          bits, dsp, ram, via, steps)

    def levels_path(self, end, lvl, lpred) -> TimingPath:
        node, extra = end[0], end[1]
        counts, nodes, delays = self._trace(node, lpred)
        start = self.g.starts[nodes[0]]
        return self._make("reg", start[0] + sum(delays) + extra, start, end[2], end[3], counts,
                          nodes, _cumulative(start[0], delays))


def _cumulative(t0: float, delays: list[float]) -> list[float]:
    times = [t0]
    for d in delays:
        times.append(times[-1] + d)
    return times


def _worst_per_signal(ends, totals, walker, pred, category, n_paths) -> list[TimingPath]:
    """The ``n_paths`` worst paths, one per end signal (its bits and pins folded)."""
    order = sorted(range(len(ends)), key=lambda i: -totals[i])
    seen, paths = set(), []
    for i in order:
        if len(paths) >= n_paths:
            break
        name, pin, cell = walker.names.label(ends[i][2])
        key = (_BIT_SUFFIX.sub("", name), cell, pin if ends[i][2][0] == "virt" else "")
        if key in seen:
            continue
        seen.add(key)
        paths.append(walker.path(ends[i], totals[i], pred, category))
    return paths


def _sort_ends(g: _Graph, names: _Names, model: DelayModel, arr, origin, lvl, left_set):
    """Path ends reached from registers: ``(ends, totals)`` at registers and at output ports,
    how many lie behind a loop, and the per-clock-domain summary."""
    reg, out, skipped, domains = ([], []), ([], []), 0, {}
    for e in g.ends:
        node = e[0]
        if node in left_set:
            skipped += 1
            continue
        if arr[node] == _NEG:
            continue
        total = arr[node] + e[1]
        bucket = out if e[4] == "out" else reg
        bucket[0].append(e)
        bucket[1].append(total)
        if e[4] == "out":
            continue
        key = _domain(names.clock(g.starts[origin[node]][2]), names.clock(e[3]))
        d = domains.setdefault(key, {"endpoints": 0, "worst_ns": 0.0, "worst_levels": 0})
        d["endpoints"] += 1
        d["worst_ns"] = max(d["worst_ns"], total)
        d["worst_levels"] = max(d["worst_levels"], lvl[node])
    for d in domains.values():
        d["worst_ns"] = round(d["worst_ns"], 4)
        d["fmax_mhz"] = round(_fmax(d["worst_ns"], model), 2)
    return reg, out, skipped, dict(sorted(domains.items()))


def _input_paths(g: _Graph, csr: _CSR, order, walker: _Walker, left_set) -> list[TimingPath]:
    """The worst input-port-to-register and input-to-output paths (a pass of their own, so
    that they never hide a register-to-register path)."""
    init = {u: s[0] for u, s in g.starts.items() if s[3] == "in"}
    if not init:
        return []
    arr, pred, *_ = _relax(csr, order, init, levels=False)
    paths = []
    for cat in ("in->reg", "in->out"):
        sel = [e for e in g.ends if e[0] not in left_set and arr[e[0]] != _NEG
               and (e[4] == "out") == (cat == "in->out")]
        paths += _worst_per_signal(sel, [arr[e[0]] + e[1] for e in sel], walker, pred, cat, 1)
    return paths


def analyse(netlist: dict, top: str | None = None, *, model: DelayModel = DEFAULT_MODEL,
            n_paths: int = 10) -> TimingReport:
    """Timing report of the flattened module ``top`` of a Yosys JSON netlist.

    Parameters
    ----------
    netlist : dict
        ``json.load`` of Yosys ``write_json`` output (after ``synth_xilinx -flatten``).
    top : str, optional
        Module to analyse (default: the one marked ``top``, or the only one).
    model : DelayModel
        Delays (default: :data:`DEFAULT_MODEL`, XCZU7EV -2).
    n_paths : int
        How many register-to-register paths to report.

    Returns
    -------
    TimingReport
    """
    t0 = time.perf_counter()
    name, module = _top_module(netlist, top)
    g = _Builder(module, model).build()
    csr = _CSR(g)
    names = _Names(module, g, csr)
    order, left = _topological(csr)
    core, cycle = _loop_core(csr, left) if left else (set(), [])
    left_set = set(left)
    walker = _Walker(g, csr, names)

    reg_init = {u: s[0] for u, s in g.starts.items() if s[3] in ("reg", "unknown")}
    arr, pred, origin, lvl, lpred = _relax(csr, order, reg_init, levels=True)
    (reg_ends, reg_tot), (out_ends, out_tot), skipped, domains = _sort_ends(
        g, names, model, arr, origin, lvl, left_set)
    paths = _worst_per_signal(reg_ends, reg_tot, walker, pred, "reg", n_paths)
    levels_path = None
    if reg_ends:
        best = max(range(len(reg_ends)), key=lambda i: (lvl[reg_ends[i][0]], reg_tot[i]))
        levels_path = walker.levels_path(reg_ends[best], lvl, lpred)
    io = _worst_per_signal(out_ends, out_tot, walker, pred, "reg->out", 1)
    io += _input_paths(g, csr, order, walker, left_set)
    loops = {"nodes": len(core), "nodes_behind": len(left) - len(core),
             "endpoints_skipped": skipped, "example": [names.net(u) for u in cycle]}
    return TimingReport(name, model, paths, levels_path, domains, io, loops,
                        dict(g.unknown), dict(sorted(g.types.items())), g.n, len(csr.dst),
                        len(g.ends), time.perf_counter() - t0)


def analyse_file(path: Path | str, top: str | None = None, **kw) -> TimingReport:
    """:func:`analyse` of a Yosys JSON netlist file (``write_json``)."""
    with open(path, "rb") as f:
        netlist = json.load(f)
    return analyse(netlist, top, **kw)
