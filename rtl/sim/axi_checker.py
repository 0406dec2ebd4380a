"""AXI4 / AXI4-Lite protocol checker: a passive cycle model that raises on the first violation.

Checks (ARM IHI 0022 rules the accelerator relies on):

* on every channel, once VALID is high it stays high, with a stable payload, until READY;
* AR/AW: burst type legal (no reserved 3), AxSIZE not wider than the bus, INCR ≤ 256 beats, WRAP
  length 2/4/8/16 with an aligned address, FIXED ≤ 16, and no burst crossing a 4 KB boundary;
* W: WLAST exactly on the last beat of its burst (write data may lead its AW), no W beat without
  a burst to belong to once all AWs are known;
* R: RID belongs to an outstanding read, RLAST exactly on the last beat; per ID, bursts complete
  in issue order (beats of a burst are counted against the oldest outstanding read of that ID);
* B: BID belongs to a write whose AW and last W beat have both been seen;
* AXI4-Lite: responses only for outstanding requests, at most one per request.
"""

from __future__ import annotations

from collections import defaultdict, deque

from .bench import IO, Model

__all__ = ["AxiChecker", "AxiProtocolError"]


class AxiProtocolError(AssertionError):
    """An AXI rule was broken; the message names the port, channel, cycle and rule."""


_FIELDS = {
    "aw": ("id", "addr", "len", "size", "burst"),
    "w": ("data", "strb", "last"),
    "b": ("id", "resp"),
    "ar": ("id", "addr", "len", "size", "burst"),
    "r": ("id", "data", "resp", "last"),
}
_LITE_FIELDS = {"aw": ("addr",), "w": ("data", "strb"), "b": ("resp",), "ar": ("addr",),
                "r": ("data", "resp")}


class AxiChecker(Model):
    """Watches ``<prefix>__{aw,w,b,ar,r}__*`` and raises :class:`AxiProtocolError`.

    Parameters
    ----------
    prefix : str
        Flattened port name.
    data_width : int
        Bus width in bits.
    lite : bool
        Check AXI4-Lite rules instead of AXI4.
    """

    def __init__(self, prefix: str, data_width: int, *, lite: bool = False):
        self.p, self.nbytes, self.lite = prefix, data_width // 8, lite
        self.fields = _LITE_FIELDS if lite else _FIELDS
        self.pending = {}                       # channel -> payload tuple waiting for READY
        self.reads = defaultdict(deque)         # id -> deque of remaining beats
        self.aw_bursts = deque()                # (id, beats) AWs whose W is not complete
        self.w_count = 0                        # beats of the current (oldest) W burst
        self.w_done_early = deque()             # beat counts of W bursts completed before AW
        self.writes_done = defaultdict(int)     # id -> writes ready for a B response
        self.lite_reads = self.lite_writes_aw = self.lite_writes_w = 0
        self.transfers = 0

    def _fail(self, io: IO, channel: str, msg: str):
        raise AxiProtocolError(f"AXI protocol violation on {self.p}.{channel} at cycle "
                               f"{io.cycle}: {msg}")

    def _payload(self, io: IO, ch: str) -> tuple:
        return tuple(io.get(f"{self.p}__{ch}__{f}") for f in self.fields[ch])

    def sample(self, io: IO) -> None:
        for ch in ("aw", "w", "b", "ar", "r"):
            valid = io.get(f"{self.p}__{ch}__valid")
            pay = self._payload(io, ch) if valid else None
            if ch in self.pending:
                if not valid:
                    self._fail(io, ch, "VALID dropped before READY")
                if pay != self.pending[ch]:
                    diff = [f"{f}: {a:#x} -> {b:#x}" for f, a, b in
                            zip(self.fields[ch], self.pending[ch], pay) if a != b]
                    self._fail(io, ch, "payload changed while VALID and not READY ("
                               + ", ".join(diff) + ")")
            if not valid:
                continue
            if io.get(f"{self.p}__{ch}__ready"):
                self.pending.pop(ch, None)
                self.transfers += 1
                (self._lite if self.lite else self._full)(io, ch, dict(zip(self.fields[ch], pay)))
            else:
                self.pending[ch] = pay

    # -- AXI4 --------------------------------------------------------------------------------
    def _check_ax(self, io, ch, t):
        beats, size, burst, addr = t["len"] + 1, 1 << t["size"], t["burst"], t["addr"]
        if burst == 3:
            self._fail(io, ch, "reserved burst type 3")
        if size > self.nbytes:
            self._fail(io, ch, f"AxSIZE {size} bytes wider than the {self.nbytes}-byte bus")
        if burst == 1:
            start = addr & ~(size - 1)
            last = start + beats * size - 1
            if addr // 4096 != last // 4096:
                self._fail(io, ch, f"INCR burst {addr:#x}+{beats}x{size}B crosses a 4 KB "
                                   "boundary")
        elif burst == 2:
            if beats not in (2, 4, 8, 16) or addr % size:
                self._fail(io, ch, f"illegal WRAP burst ({beats} beats at {addr:#x})")
        elif beats > 16:
            self._fail(io, ch, f"FIXED burst of {beats} beats (max 16)")

    def _full(self, io, ch, t):
        if ch == "ar":
            self._check_ax(io, ch, t)
            self.reads[t["id"]].append(t["len"] + 1)
        elif ch == "r":
            q = self.reads.get(t["id"])
            if not q:
                self._fail(io, ch, f"R beat with RID {t['id']} but no outstanding read")
            q[0] -= 1
            if t["last"] != (q[0] == 0):
                self._fail(io, ch, f"RLAST={t['last']} with {q[0]} beats left in the burst")
            if q[0] == 0:
                q.popleft()
        elif ch == "aw":
            self._check_ax(io, ch, t)
            if self.w_done_early:
                beats = self.w_done_early.popleft()
                if beats != t["len"] + 1:
                    self._fail(io, ch, f"earlier W burst had {beats} beats, AW says "
                                       f"{t['len'] + 1}")
                self.writes_done[t["id"]] += 1
            else:
                self.aw_bursts.append((t["id"], t["len"] + 1))
        elif ch == "w":
            self.w_count += 1
            # W bursts in AW order; the current one is the oldest AW without complete data.
            if self.aw_bursts:
                wid, beats = self.aw_bursts[0]
                if t["last"] != (self.w_count == beats):
                    self._fail(io, ch, f"WLAST={t['last']} on beat {self.w_count} of a "
                                       f"{beats}-beat burst")
                if t["last"]:
                    self.aw_bursts.popleft()
                    self.writes_done[wid] += 1
                    self.w_count = 0
            elif t["last"]:
                self.w_done_early.append(self.w_count)
                self.w_count = 0
            elif self.w_count > 256:
                self._fail(io, ch, "more than 256 W beats without WLAST")
        elif ch == "b":
            if self.writes_done[t["id"]] == 0:
                self._fail(io, ch, f"B response with BID {t['id']} before its AW and last W")
            self.writes_done[t["id"]] -= 1

    # -- AXI4-Lite ---------------------------------------------------------------------------
    def _lite(self, io, ch, t):
        if ch == "ar":
            self.lite_reads += 1
        elif ch == "r":
            if self.lite_reads == 0:
                self._fail(io, ch, "read response without an outstanding read")
            self.lite_reads -= 1
        elif ch == "aw":
            self.lite_writes_aw += 1
        elif ch == "w":
            self.lite_writes_w += 1
        elif ch == "b":
            if min(self.lite_writes_aw, self.lite_writes_w) == 0:
                self._fail(io, ch, "write response before both address and data")
            self.lite_writes_aw -= 1
            self.lite_writes_w -= 1

    def idle(self) -> bool:
        return not self.pending and not any(self.reads.values()) and not self.aw_bursts
