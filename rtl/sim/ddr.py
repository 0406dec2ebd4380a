"""AXI4 subordinate memory model (the simulated DDR), a cycle model for either simulator.

Backed by a numpy ``uint8`` array. Configurable read latency (cycles from the AR handshake to the
first R beat offered), write-response latency, seeded random stalls on every channel (READY
withheld on AR/AW/W, VALID withheld on R/B), and a bandwidth cap in bytes per cycle shared by
read and write beats (a token bucket). Reads are answered in order (legal: per-ID in order).
Addresses outside ``[base, base + size)`` answer DECERR; ``error_ranges`` answer SLVERR, which lets
tests prove that error responses are latched.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from .bench import IO, Model

__all__ = ["DDRModel"]


class DDRModel(Model):
    """Simulated DDR behind an AXI4 port.

    Parameters
    ----------
    prefix : str
        Flattened name of the DUT's AXI4 manager port (e.g. ``"axi"``).
    size : int
        Memory size in bytes.
    data_width : int
        Bus width in bits.
    base : int
        Address of byte 0.
    read_latency, write_latency : int
        Cycles between AR (last W) and the first R beat (B).
    stall : float
        Probability that each channel idles in a given cycle (0: never).
    bytes_per_cycle : float or None
        Bandwidth cap (None: one beat per cycle per direction).
    seed : int
        Random seed (runs are deterministic).
    error_ranges : list of (start, end)
        Address ranges answering SLVERR.

    Attributes
    ----------
    mem : numpy.ndarray
        The memory contents (read and written in place).
    read_beats, write_beats, read_bursts : int
        Traffic counters.
    """

    def __init__(self, prefix: str, size: int, data_width: int, *, base: int = 0,
                 read_latency: int = 10, write_latency: int = 4, stall: float = 0.0,
                 bytes_per_cycle: float | None = None, seed: int = 0,
                 error_ranges: list[tuple[int, int]] = ()):
        if read_latency < 1 or write_latency < 1:
            raise ValueError("latencies must be >= 1 cycle")
        self.p = prefix
        self.mem = np.zeros(size, dtype=np.uint8)
        self.base, self.nbytes = base, data_width // 8
        self.read_latency, self.write_latency = read_latency, write_latency
        self.stall, self.rng = stall, random.Random(seed)
        self.bpc = bytes_per_cycle
        self.tokens = 0.0
        self.error_ranges = list(error_ranges)
        self.reads: deque = deque()      # [ready_cycle, id, addr, beats_left, resp]
        self.writes: deque = deque()     # AW accepted, waiting for W: [id, addr, beats, resp]
        self.wbeats: deque = deque()     # W beats accepted before their AW
        self.bresp: deque = deque()      # [ready_cycle, id, resp]
        self.read_beats = self.write_beats = self.read_bursts = 0
        self._o = {}

    # -- helpers ---------------------------------------------------------------------------
    def load(self, addr: int, data: bytes | np.ndarray) -> None:
        a = addr - self.base
        self.mem[a:a + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def read(self, addr: int, length: int) -> np.ndarray:
        a = addr - self.base
        return self.mem[a:a + length].copy()

    def _resp(self, addr: int, beats: int) -> int:
        lo, hi = addr, addr + beats * self.nbytes
        if lo < self.base or hi > self.base + len(self.mem):
            return 3
        if any(s < hi and lo < e for s, e in self.error_ranges):
            return 2
        return 0

    def _go(self) -> bool:
        return self.stall <= 0 or self.rng.random() >= self.stall

    def _beat_budget(self) -> bool:
        return self.bpc is None or self.tokens >= self.nbytes

    def idle(self) -> bool:
        return not (self.reads or self.writes or self.wbeats or self.bresp)

    # -- cycle model -----------------------------------------------------------------------
    def drive(self, io: IO) -> None:
        p, o, cyc = self.p, self._o, io.cycle
        if self.bpc is not None:
            self.tokens = min(self.tokens + self.bpc, max(self.bpc, self.nbytes) * 2)
        o["ar"] = self._go()
        o["aw"] = self._go()
        o["w"] = self._go() and self._beat_budget()
        io.set(p + "__ar__ready", o["ar"])
        io.set(p + "__aw__ready", o["aw"])
        io.set(p + "__w__ready", o["w"])
        # R: keep offering a beat once offered (VALID must not drop before READY).
        if not o.get("rv"):
            r = self.reads[0] if self.reads else None
            o["rv"] = bool(r and r[0] <= cyc and self._go() and self._beat_budget())
            if o["rv"]:
                _, rid, addr, left, resp = r
                a = addr - self.base
                data = 0
                if resp == 0:
                    data = int.from_bytes(self.mem[a:a + self.nbytes].tobytes(), "little")
                o["rpay"] = (rid, data, resp, int(left == 1))
                if self.bpc is not None:
                    self.tokens -= self.nbytes
        io.set(p + "__r__valid", int(o["rv"]))
        if o["rv"]:
            rid, data, resp, last = o["rpay"]
            io.set(p + "__r__id", rid)
            io.set(p + "__r__data", data)
            io.set(p + "__r__resp", resp)
            io.set(p + "__r__last", last)
        if not o.get("bv"):
            b = self.bresp[0] if self.bresp else None
            o["bv"] = bool(b and b[0] <= cyc and self._go())
        io.set(p + "__b__valid", int(o["bv"]))
        if o["bv"]:
            io.set(p + "__b__id", self.bresp[0][1])
            io.set(p + "__b__resp", self.bresp[0][2])

    def sample(self, io: IO) -> None:
        p, o, cyc, g = self.p, self._o, io.cycle, io.get
        if o["ar"] and g(p + "__ar__valid"):
            addr, beats = g(p + "__ar__addr"), g(p + "__ar__len") + 1
            size = 1 << g(p + "__ar__size")
            if size != self.nbytes or g(p + "__ar__burst") != 1:
                raise AssertionError("DDR model only serves full-width INCR bursts "
                                     f"(ARSIZE={size} bytes, ARBURST={g(p + '__ar__burst')})")
            self.reads.append([cyc + self.read_latency, g(p + "__ar__id"), addr, beats,
                               self._resp(addr, beats)])
            self.read_bursts += 1
        if o["rv"] and g(p + "__r__ready"):
            r = self.reads[0]
            r[2] += self.nbytes
            r[3] -= 1
            self.read_beats += 1
            if r[3] == 0:
                self.reads.popleft()
            o["rv"] = False
        if o["aw"] and g(p + "__aw__valid"):
            addr, beats = g(p + "__aw__addr"), g(p + "__aw__len") + 1
            if (1 << g(p + "__aw__size")) != self.nbytes or g(p + "__aw__burst") != 1:
                raise AssertionError("DDR model only serves full-width INCR bursts")
            self.writes.append([g(p + "__aw__id"), addr, beats, self._resp(addr, beats)])
        if o["w"] and g(p + "__w__valid"):
            if self.bpc is not None:
                self.tokens -= self.nbytes
            self.wbeats.append((g(p + "__w__data"), g(p + "__w__strb"), g(p + "__w__last")))
        while self.writes and self.wbeats:
            w = self.writes[0]
            data, strb, last = self.wbeats.popleft()
            if w[3] == 0:
                a = w[1] - self.base
                raw = data.to_bytes(self.nbytes, "little")
                for lane in range(self.nbytes):
                    if strb >> lane & 1:
                        self.mem[a + lane] = raw[lane]
            w[1] += self.nbytes
            w[2] -= 1
            self.write_beats += 1
            if w[2] == 0:
                self.writes.popleft()
                self.bresp.append([cyc + self.write_latency, w[0], w[3]])
        if o["bv"] and g(p + "__b__ready"):
            self.bresp.popleft()
            o["bv"] = False
