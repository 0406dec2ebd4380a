"""Drive :class:`rtl.datapath.compute.Compute` one instruction at a time in Amaranth's simulator:
load its memories through the loader's streams, issue compute commands as the sequencer would
(operands resolved), read back every on-chip memory, and count each instruction's busy cycles."""

from __future__ import annotations

from collections import Counter

import numpy as np

from rtl.config import NANO
from rtl.control.causes import Cause
from rtl.control.isa import Dest, Op, compute_cmd_layout, encode
from rtl.datapath.compute import Compute
from rtl.sim import AxiChecker, DDRModel, StreamSource
from rtl.sim.bench import AmaranthBench, Model
from tests.rtl.datapath.harness import Driver, Recorder, pack_value, unpack_value

IDENTITY = {"bias": 0, "mult": 1 << 14, "shift": 14}     # requantisation by 1


class CauseTally(Model):
    """Cycles per :class:`~rtl.control.causes.Cause` on the ``cause`` port (``counts``, NONE
    left out) and the sum of the ``macs`` port, since the last :meth:`clear`."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.counts: Counter = Counter()
        self.macs = 0

    def sample(self, io):
        cause = Cause(io.get("cause"))
        if cause is not Cause.NONE:
            self.counts[cause] += 1
        self.macs += io.get("macs")


class ComputeRig:
    """One Compute under test with its streams, a DDR model and a checker on its AXI port."""

    def __init__(self, cfg=NANO):
        self.cfg = cfg
        self.dut = Compute(cfg)
        self.bench = AmaranthBench(self.dut)
        self.src = {n: StreamSource(n) for n in ("cmd", "b_wr", "act_wr", "const_wr", "lnp_wr",
                                                 "res_row")}
        self.drv = Driver(loader_busy=0)
        self.ddr = DDRModel("axi", 1 << 16, cfg.axi_data_width)
        self.rec = Recorder(("cmd__valid", "cmd__ready"), "busy")
        self.tally = CauseTally()
        self.bench.add(self.drv, *self.src.values(), self.ddr,
                       AxiChecker("axi", cfg.axi_data_width), self.rec, self.tally)

    # ---- streams
    def _push(self, name: str, payloads: list) -> None:
        layout = getattr(self.dut, name).payload.shape()
        src = self.src[name]
        for p in payloads:
            src.push(pack_value(layout, p))
        self.bench.run(lambda: src.idle(), max_cycles=100_000)

    def instr(self, op: Op, *, m: int = 0, qstart: int = 0, b_offset: int | None = None,
              const_base: int | None = None, ddr_addr: int = 0, **fields) -> int:
        """Run one instruction to completion; returns its busy cycles (accept to idle)."""
        word = int.from_bytes(encode(op, **fields), "little")
        payload = {"instr": word, "m": m, "qstart": qstart, "ddr_addr": ddr_addr,
                   "b_offset": fields.get("b_offset", 0) if b_offset is None else b_offset,
                   "const_base": fields.get("const_base", 0) if const_base is None
                   else const_base}
        start = len(self.rec.high["busy"])
        self.tally.clear()
        self.src["cmd"].push(pack_value(compute_cmd_layout(self.cfg), payload))
        self.bench.run(lambda: self.src["cmd"].idle(), max_cycles=1000)
        self.bench.run(lambda: not self._busy_now(), max_cycles=200_000)
        return len(self.rec.high["busy"]) - start

    def _busy_now(self) -> bool:
        return bool(self.rec.high["busy"]) and self.rec.high["busy"][-1] == self.bench.cycle

    # ---- memories in
    def load_b(self, addr: int, weights: np.ndarray) -> None:
        """Weights ``[N, K]`` at B word ``addr``: column tile by tile, a word per k."""
        C = self.cfg.array_cols
        n, k = weights.shape
        tiles = -(-n // C)
        pad = np.zeros((tiles * C, k), np.int64)
        pad[:n] = weights
        self._push("b_wr", [{"addr": addr + t * k + j, "data": list(pad[t * C:(t + 1) * C, j])}
                            for t in range(tiles) for j in range(k)])

    def load_const(self, row: int, bias, mult, shift) -> None:
        """Per-channel constants for ``len(bias)`` channels from constant row ``row``."""
        C = self.cfg.array_cols
        n = len(bias)
        rows = []
        for t in range(-(-n // C)):
            vals = []
            for j in range(C):
                c = t * C + j
                vals.append({"bias": int(bias[c]), "mult": int(mult[c]), "shift": int(shift[c])}
                            if c < n else IDENTITY)
            rows.append({"addr": row + t, "value": vals})
        self._push("const_wr", rows)

    def load_act(self, addr: int, rows: np.ndarray, stride: int | None = None) -> None:
        """Rows of bytes into ACT: row ``r`` at word ``addr + r·stride`` (``ceil(width / C)``
        words), through a LOAD to ACT as the sequencer issues it."""
        C = self.cfg.array_cols
        rows = np.asarray(rows)
        kw = -(-rows.shape[1] // C)
        stride = stride or kw
        words = []
        for r, row in enumerate(rows):
            pad = np.zeros(kw * C, np.int64)
            pad[:len(row)] = row
            words += [{"addr": addr + r * stride + w, "data": [int(b) & 0xFF for b in
                                                                 pad[w * C:(w + 1) * C]]}
                      for w in range(kw)]
        self._loaded(Dest.ACT, "act_wr", words)

    def load_residual(self, values: np.ndarray, identity_row: int) -> None:
        """int16 residual rows ``[T, D]`` through the lanes (LOAD to RES, requantised by the
        identity constant row ``identity_row``, which this loads)."""
        C = self.cfg.array_cols
        self.load_const(identity_row, [0] * C, [1 << 14] * C, [14] * C)
        t, d = values.shape
        words = [{"m": m, "tn": tn, "acc": [int(v) for v in values[m, tn * C:(tn + 1) * C]]}
                 for m in range(t) for tn in range(-(-d // C))]
        self._loaded(Dest.RES, "res_row", words, const_row=identity_row,
                     row_words=-(-d // C))

    def load_lnp(self, gamma, beta) -> None:
        lanes = self.cfg.ln_lanes
        self._push("lnp_wr", [{"addr": a, "gamma": list(gamma[a * lanes:(a + 1) * lanes]),
                               "beta": list(beta[a * lanes:(a + 1) * lanes])}
                              for a in range(len(gamma) // lanes)])

    def _loaded(self, dest, stream, words, **fields):
        self.drv.set(loader_busy=1)
        word = int.from_bytes(encode(Op.LOAD, dest=dest, words=len(words), **fields), "little")
        self.src["cmd"].push(pack_value(compute_cmd_layout(self.cfg), {"instr": word}))
        self.bench.run(lambda: self.src["cmd"].idle(), max_cycles=1000)
        self._push(stream, words)
        self.drv.set(loader_busy=0)
        self.bench.run(lambda: not self._busy_now(), max_cycles=10_000)

    # ---- memories out
    def settle(self) -> None:
        """One more cycle, so the last run's final clock edge (its writes) has happened."""
        self.bench.run(lambda: True, max_cycles=1)

    def _peek(self, value):
        v = self.bench.peek(value)
        if hasattr(v, "as_bits"):
            return v.as_bits()
        return int(getattr(v, "value", v))

    def act_rows(self, addr: int, rows: int, width: int, stride: int | None = None,
                 signed: bool = True) -> np.ndarray:
        C = self.cfg.array_cols
        kw = -(-width // C)
        stride = stride or kw
        mem = self.dut.act.mem
        self.settle()
        out = np.zeros((rows, kw * C), np.int64)
        for r in range(rows):
            for w in range(kw):
                raw = self._peek(mem.data[addr + r * stride + w])
                out[r, w * C:(w + 1) * C] = [(raw >> (8 * j)) & 0xFF for j in range(C)]
        out = out[:, :width]
        return np.where(out > 127, out - 256, out) if signed else out

    def _rows(self, mem, shape, addr_of, rows, width):
        C = self.cfg.array_cols
        self.settle()
        out = np.zeros((rows, -(-width // C) * C), np.int64)
        for r in range(rows):
            for tn in range(-(-width // C)):
                out[r, tn * C:(tn + 1) * C] = unpack_value(shape, self._peek(
                    mem.data[addr_of(r, tn)]))
        return out[:, :width]

    def residual(self, rows: int, width: int) -> np.ndarray:
        lanes = self.dut.lanes
        return self._rows(lanes.residual, lanes.residual.shape,
                          lambda r, tn: (r << lanes.tn_bits) | tn, rows, width)

    def moe_acc(self, rows: int, width: int) -> np.ndarray:
        lanes = self.dut.lanes
        return self._rows(lanes.moe_acc, lanes.moe_acc.shape,
                          lambda r, tn: (r << lanes.tn_bits) | tn, rows, width)

    def scores(self, rows: int, width: int) -> np.ndarray:
        W = self.cfg.score_row_words
        return self._rows(self.dut.score.mem, self.dut.score.mem.shape,
                          lambda r, tn: r * W + tn, rows, width)

    def b_words(self, addr: int, count: int) -> np.ndarray:
        """``count`` B words from ``addr``: ``[count, C]`` signed bytes."""
        banks = self.dut.tiler.b_banks
        self.settle()
        out = np.array([[self._peek(b.data[addr + i]) for b in banks] for i in range(count)])
        return np.where(out > 127, out - 256, out)

    def queue(self, count: int) -> list[tuple[int, int]]:
        mem = self.dut.queue.mem
        self.settle()
        return [tuple(unpack_value(mem.shape, self._peek(mem.data[i])).values())
                for i in range(count)]
