"""Host side of the end-to-end tests: place a model image in simulated DDR and run frames,
speaking only the register map (what the firmware does on the board)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware import layout
from firmware.image import ModelImage
from rtl.registers import firmware_register_map
from rtl.sim.accel_sim import AcceleratorSim

PAGE = 4096


def _align(n: int) -> int:
    return -(-n // PAGE) * PAGE


class Regs:
    """Register access by name through the simulated AXI4-Lite bus."""

    def __init__(self, sim: AcceleratorSim):
        self.sim = sim
        self.map = firmware_register_map(sim.cfg)["registers"]

    def off(self, name: str) -> int:
        return self.map[name]["offset"]

    def read(self, name: str) -> int:
        return self.sim.read_reg(self.off(name))

    def write(self, name: str, value: int) -> None:
        self.sim.write_reg(self.off(name), value)

    def field(self, name: str, fld: str, value: int) -> int:
        f = self.map[name]["fields"][fld]
        return (value >> f["lsb"]) & ((1 << f["width"]) - 1)

    def bits(self, name: str, **fields) -> int:
        v = 0
        for fld, val in fields.items():
            v |= int(val) << self.map[name]["fields"][fld]["lsb"]
        return v

    def counter(self, name: str) -> int:
        lo = self.read(name + "_LO")
        return lo | (self.read(name + "_HI") << 32)

    def counters(self) -> dict[str, int]:
        names = sorted({n[:-3] for n, r in self.map.items()
                        if n.endswith("_LO") and any(f["access"] == "counter"
                                                     for f in r["fields"].values())})
        return {n: self.counter(n) for n in names}


@dataclass
class Frame:
    output: bytes
    status: int
    cycles: int                    # START write → interrupt
    start_cycle: int
    done_cycle: int
    trace: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)


class Host:
    def __init__(self, sim: AcceleratorSim, image: ModelImage):
        self.sim, self.image, self.regs = sim, image, Regs(sim)
        meta = image.meta
        base = sim.ddr_base
        self.data_addr = base
        self.prog_addr = base + _align(len(image.data))
        self.in_addr = self.prog_addr + _align(len(image.program))
        self.out_addr = self.in_addr + _align(layout.input_bytes(meta))
        out_max = max(layout.output_bytes(meta, t["name"]) for t in meta["tasks"])
        if self.out_addr + out_max > base + sim.ddr_bytes:
            raise ValueError("simulated DDR too small for this image")
        sim.write_mem(self.data_addr, image.data)
        sim.write_mem(self.prog_addr, image.program)
        r = self.regs
        for name, addr in (("DATA_BASE", self.data_addr), ("PROGRAM_BASE", self.prog_addr),
                           ("INPUT_BASE", self.in_addr), ("OUTPUT_BASE", self.out_addr)):
            r.write(name + "_LO", addr & 0xFFFF_FFFF)
            r.write(name + "_HI", addr >> 32)
        r.write("PROGRAM_LEN", len(image.program) // 32)
        r.write("CONTROL", r.bits("CONTROL", irq_enable=1))

    def start(self, task: int) -> int:
        r = self.regs
        r.write("TASK_ID", task)
        r.write("STATUS", r.bits("STATUS", done=1, error=1))
        r.write("CONTROL", r.bits("CONTROL", irq_enable=1, start=1))
        return self.sim.cycle

    def wait(self, max_cycles: int, progress=None) -> int:
        self.sim.run_until(lambda: self.sim.irq, max_cycles, progress)
        return self.sim.cycle

    def run(self, pixels: np.ndarray, task: str, *, max_cycles: int = 5_000_000,
            progress=None, counters: bool = False) -> Frame:
        meta = self.image.meta
        names = [t["name"] for t in meta["tasks"]]
        self.sim.write_mem(self.in_addr, layout.pack_input(meta, pixels))
        first = len(self.sim.trace.events)
        start = self.start(names.index(task))
        done = self.wait(max_cycles, progress)
        status = self.regs.read("STATUS")
        out = self.sim.read_mem(self.out_addr, layout.output_bytes(meta, task))
        ctr = self.regs.counters() if counters else {}
        return Frame(out, status, done - start, start, done, self.sim.trace.events[first:], ctr)
