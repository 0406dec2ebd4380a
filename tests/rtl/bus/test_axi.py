"""AXI4 / AXI4-Lite signatures: widths, directions, validation, connectability."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import (Burst, Resp, axi4_from_config, axi4_lite_from_config, axi4_lite_signature,
                     axi4_signature, size_for_width)
from rtl.config import DEFAULT, SMALL_TEST


def test_axi4_widths_and_directions():
    sig = axi4_signature(40, 128, 6)
    m = sig.members
    ar, r, w = m["ar"].signature.members, m["r"].signature.members, m["w"].signature.members
    assert (ar["addr"].shape.width, ar["id"].shape.width, ar["len"].shape.width) == (40, 6, 8)
    assert ar["valid"].flow == Out and ar["ready"].flow == In
    assert r["valid"].flow == In and r["ready"].flow == Out and r["data"].flow == In
    assert w["strb"].shape.width == 16 and r["data"].shape.width == 128
    assert m["b"].signature.members["resp"].shape.width == 2


def test_from_config_matches_config():
    s = axi4_from_config(DEFAULT).members
    assert s["r"].signature.members["data"].shape.width == DEFAULT.axi_data_width
    assert s["aw"].signature.members["addr"].shape.width == DEFAULT.axi_addr_width
    lite = axi4_lite_from_config(SMALL_TEST).members
    assert lite["ar"].signature.members["addr"].shape.width == SMALL_TEST.csr_addr_width
    assert lite["r"].signature.members["data"].shape.width == 32


@pytest.mark.parametrize("args", [(40, 100, 4), (8, 64, 4), (40, 64, 0), (40, 2048, 4)])
def test_axi4_rejects_bad_widths(args):
    with pytest.raises(ValueError):
        axi4_signature(*args)


def test_lite_rejects_bad_width():
    with pytest.raises(ValueError):
        axi4_lite_signature(12, 128)


def test_enums_and_size():
    assert (Resp.OKAY.value, Resp.SLVERR.value, Resp.DECERR.value) == (0, 2, 3)
    assert Burst.INCR.value == 1
    assert [size_for_width(w) for w in (8, 64, 128)] == [0, 3, 4]
    with pytest.raises(ValueError):
        size_for_width(96)


def test_manager_connects_to_subordinate():
    sig = axi4_signature(32, 64, 4)
    m = Module()
    # Raises if the two sides are not compatible.
    wiring.connect(m, sig.create(), sig.flip().create())
    Fragment.get(m, None)
    with pytest.raises(wiring.ConnectionError):
        wiring.connect(m2 := Module(), sig.create(), axi4_signature(32, 32, 4).flip().create())
    Fragment.get(m2, None)
    assert sig.flip().flip() == sig
