"""A ring of row banks shared by the row-at-a-time units (softmax, LayerNorm).

Rows are written into banks in ring order (``FREE → FILLING → FILLED``), a per-row scalar
stage (reciprocal, square root) makes them ``READY``, and the read-out pass empties them again in
ring order. With three banks, filling the next row overlaps the scalar stage and the read-out of
earlier ones, so rows leave back to back.
"""

from __future__ import annotations

from amaranth.hdl import Array, Mux, Signal

__all__ = ["BankState", "RowBankRing"]


class BankState:
    FREE, FILLING, FILLED, READY = range(4)


class RowBankRing:
    """Bank bookkeeping and the read-out controller.

    Parameters
    ----------
    banks : int
        Number of row banks.
    stride : int
        Words per bank in the shared row memory (bank ``b`` starts at ``b * stride``).
    idx_shape : shape
        Shape of the read-out index / row length.

    Attributes
    ----------
    state : Array of per-bank :class:`BankState` signals
    bank, active, idx, n : read-out position: bank, busy flag, element index, row length
    final : comb, ``idx`` is the row's last element
    load : comb, the next ``READY`` bank starts reading in this cycle
    cand : comb, the bank ``load`` takes
    """

    def __init__(self, banks: int, stride: int, idx_shape):
        self.banks, self.stride = banks, stride
        self.state = Array([Signal(range(4), name=f"bank{b}_state") for b in range(banks)])
        self.bank = Signal(range(banks), name="out_bank")
        self.active = Signal(name="out_active")
        self.idx = Signal(idx_shape, name="out_idx")
        self.n = Signal(idx_shape, name="out_len")
        self.final = Signal(name="out_final")
        self.cand = Signal(range(banks), name="out_cand")
        self.load = Signal(name="out_load")

    def next(self, bank):
        return Mux(bank == self.banks - 1, 0, bank + 1)

    def base(self, bank):
        return Array([b * self.stride for b in range(self.banks)])[bank]

    def read_addr(self):
        return self.base(self.bank) + self.idx

    def readout(self, m, advance, lengths) -> None:
        """Step the read-out while ``advance``: free a bank after its last element, and load the
        next ``READY`` bank (length from ``lengths[bank]``) when idle or in the cycle of the
        current row's last read, so there is no bubble between rows. Call it after any other
        ``sync`` assignment to these signals so that its assignments win."""
        m.d.comb += self.final.eq(self.idx == self.n - 1)
        with m.If(advance & self.active):
            m.d.sync += self.idx.eq(self.idx + 1)
            with m.If(self.final):
                m.d.sync += [self.active.eq(0), self.state[self.bank].eq(BankState.FREE),
                             self.bank.eq(self.next(self.bank))]
        m.d.comb += [self.cand.eq(Mux(self.active, self.next(self.bank), self.bank)),
                     self.load.eq((~self.active | (advance & self.final)) &
                                  (self.state[self.cand] == BankState.READY))]
        with m.If(self.load):
            m.d.sync += [self.active.eq(1), self.idx.eq(0), self.n.eq(lengths[self.cand]),
                         self.bank.eq(self.cand)]
