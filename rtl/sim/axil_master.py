"""AXI4-Lite manager cycle model: drives register reads and writes into a DUT's CSR port.

Reads and writes run on independent queues, so a read and a write can be in flight at once.
Each write may delay its AW and W channels independently (``aw_delay``/``w_delay`` cycles), which
exercises address-before-data, data-before-address and same-cycle arrival; READY on R and B can be
withheld at random.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from .bench import IO, Model

__all__ = ["AxiLiteMaster", "LiteOp"]


@dataclass
class LiteOp:
    kind: str                 # "read" or "write"
    addr: int
    data: int = 0
    strb: int = 0xF
    aw_delay: int = 0
    w_delay: int = 0
    resp: int | None = None   # filled in on completion
    rdata: int | None = None
    done_cycle: int | None = None
    _aw: bool = field(default=False, repr=False)
    _w: bool = field(default=False, repr=False)
    _age: int = field(default=0, repr=False)


class AxiLiteMaster(Model):
    """Issues queued :class:`LiteOp`s on ``<prefix>__{aw,w,b,ar,r}``; results land in the ops."""

    def __init__(self, prefix: str, *, stall: float = 0.0, seed: int = 0):
        self.p = prefix
        self.rq: deque[LiteOp] = deque()
        self.wq: deque[LiteOp] = deque()
        self.done: list[LiteOp] = []
        self.rng, self.stall = random.Random(seed), stall
        self._ar_sent = False
        self._o = {}

    def read(self, addr: int) -> LiteOp:
        op = LiteOp("read", addr)
        self.rq.append(op)
        return op

    def write(self, addr: int, data: int, strb: int = 0xF, *, aw_delay: int = 0,
              w_delay: int = 0) -> LiteOp:
        op = LiteOp("write", addr, data, strb, aw_delay, w_delay)
        self.wq.append(op)
        return op

    def idle(self) -> bool:
        return not self.rq and not self.wq

    def _go(self) -> int:
        return int(self.stall <= 0 or self.rng.random() >= self.stall)

    def drive(self, io: IO) -> None:
        p, o = self.p, self._o
        r = self.rq[0] if self.rq else None
        o["ar"] = bool(r and not self._ar_sent)
        io.set(p + "__ar__valid", int(o["ar"]))
        if r:
            io.set(p + "__ar__addr", r.addr)
        o["rr"] = self._go()
        io.set(p + "__r__ready", o["rr"])
        w = self.wq[0] if self.wq else None
        o["aw"] = bool(w and not w._aw and w._age >= w.aw_delay)
        o["w"] = bool(w and not w._w and w._age >= w.w_delay)
        io.set(p + "__aw__valid", int(o["aw"]))
        io.set(p + "__w__valid", int(o["w"]))
        if w:
            io.set(p + "__aw__addr", w.addr)
            io.set(p + "__w__data", w.data)
            io.set(p + "__w__strb", w.strb)
        o["br"] = self._go()
        io.set(p + "__b__ready", o["br"])

    def sample(self, io: IO) -> None:
        p, o, g = self.p, self._o, io.get
        if o["ar"] and g(p + "__ar__ready"):
            self._ar_sent = True
        if o["rr"] and g(p + "__r__valid"):
            op = self.rq.popleft()
            op.resp, op.rdata, op.done_cycle = g(p + "__r__resp"), g(p + "__r__data"), io.cycle
            self.done.append(op)
            self._ar_sent = False
        if self.wq:
            w = self.wq[0]
            w._age += 1
            if o["aw"] and g(p + "__aw__ready"):
                w._aw = True
            if o["w"] and g(p + "__w__ready"):
                w._w = True
            if o["br"] and g(p + "__b__valid"):
                w.resp, w.done_cycle = g(p + "__b__resp"), io.cycle
                self.done.append(self.wq.popleft())
