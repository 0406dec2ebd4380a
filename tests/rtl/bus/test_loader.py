"""The load engine alone: DDR bytes regrouped into each destination's words (weights, lane
constants, activations, LayerNorm parameters, residual rows, program words) under DDR stalls and
random back-pressure, with the protocol checker on its AXI port."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl.bus.loader import LoadTarget, Loader, dest_word_bytes
from rtl.config import NANO, SMALL_TEST
from rtl.control.isa import Dest, load_cmd_layout
from rtl.units.layernorm import GAMMA_WIDTH
from rtl.sim import AxiChecker, DDRModel, StreamSource, make_bench
from tests.rtl.datapath.harness import ReadySink, pack_value, unpack_value

STREAMS = {Dest.B.value: "b_wr", Dest.ACT.value: "act_wr", Dest.CONST.value: "const_wr",
           Dest.LNP.value: "lnp_wr", Dest.RES.value: "res_row", LoadTarget.IMEM: "imem_wr"}


def _bytes_of(dut, name, payload) -> bytes:
    """The DDR bytes a delivered word came from (inverse of the loader's regrouping)."""
    v = unpack_value(getattr(dut, name).payload.shape(), payload)
    if name in ("b_wr", "act_wr"):
        return bytes(x & 0xFF for x in v["data"])
    if name == "imem_wr":
        return v["data"].to_bytes(32, "little")
    if name == "res_row":
        return b"".join((x & 0xFFFF).to_bytes(2, "little") for x in v["acc"])
    if name == "const_wr":
        return b"".join((c["bias"] & 0xFFFF_FFFF).to_bytes(4, "little") +
                        c["mult"].to_bytes(2, "little") + c["shift"].to_bytes(1, "little") +
                        bytes(1) for c in v["value"])
    return b"".join((g & 0xFFFF_FFFF).to_bytes(4, "little") + bytes(4) +
                    (b & (2**64 - 1)).to_bytes(8, "little") for g, b in zip(v["gamma"], v["beta"]))


def _mask(name, raw: bytes, cfg) -> bytes:
    """What of a record the loader keeps: const records drop their pad byte, the multiplier's
    and the shift's top bits; LNP records keep gamma's low GAMMA_WIDTH and beta's low 48 bits
    (sign-extended)."""
    if name == "const_wr":
        out = bytearray()
        for i in range(0, len(raw), 8):
            rec = raw[i:i + 8]
            out += rec[:4] + (int.from_bytes(rec[4:6], "little") & 0x7FFF).to_bytes(2, "little")
            out += bytes([rec[6] & 0x3F, 0])
        return bytes(out)
    if name == "lnp_wr":
        out = bytearray()
        for i in range(0, len(raw), 16):
            rec = raw[i:i + 16]
            g = int.from_bytes(rec[:4], "little") & ((1 << GAMMA_WIDTH) - 1)
            g = (g - (1 << GAMMA_WIDTH) if g >> (GAMMA_WIDTH - 1) else g) & 0xFFFF_FFFF
            b = int.from_bytes(rec[8:14], "little")
            b = b - (1 << 48) if b >> 47 else b
            out += g.to_bytes(4, "little") + bytes(4) + (b & (2**64 - 1)).to_bytes(8, "little")
        return bytes(out)
    return raw


TWO_PORTS = dataclasses.replace(SMALL_TEST, axi_masters=2, axi_data_width=32)


@pytest.mark.parametrize("cfg", [NANO, SMALL_TEST, TWO_PORTS],
                         ids=["nano", "small-test", "two-read-ports"])
@pytest.mark.parametrize("dest", list(STREAMS), ids=list(STREAMS.values()))
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no-stall", "stalls"])
def test_words_of_every_destination(cfg, dest, stall):
    name = STREAMS[dest]
    wb = dest_word_bytes(cfg)[dest]
    words, addr, ddr_addr = 5, 3, 0x130
    rng = np.random.default_rng(dest)
    dut = Loader(cfg)
    bench = make_bench(dut, "amaranth")
    ports = ["axi"] + (["axi1"] if cfg.axi_masters == 2 else [])
    ddrs = [DDRModel(p, 1 << 14, cfg.axi_data_width, stall=stall, seed=4 + i)
            for i, p in enumerate(ports)]
    for ddr in ddrs[1:]:
        ddr.mem = ddrs[0].mem                 # one memory behind both ports
    raw = rng.integers(0, 256, words * wb, dtype=np.uint8)
    ddrs[0].load(ddr_addr, raw.tobytes())
    sink = ReadySink(name, stall=stall, seed=5)
    row_words = 2
    cmd = pack_value(load_cmd_layout(cfg), {"dest": dest, "addr": addr, "words": words,
                                            "row_words": row_words, "ddr_addr": ddr_addr})
    bench.add(StreamSource("cmd", [cmd]), *ddrs, *[AxiChecker(p, cfg.axi_data_width)
                                                    for p in ports], sink)
    bench.run(lambda: len(sink.items) == words, max_cycles=20_000)
    for i, payload in enumerate(sink.items):
        want = _mask(name, raw[i * wb:(i + 1) * wb].tobytes(), cfg)
        got = _mask(name, _bytes_of(dut, name, payload), cfg)
        assert got == want, f"word {i}: first differing byte " \
                            f"{next(j for j in range(len(want)) if got[j] != want[j])}"
        v = unpack_value(getattr(dut, name).payload.shape(), payload)
        if name == "res_row":
            assert (v["m"], v["tn"]) == (addr + i // row_words, i % row_words)
        else:
            assert v["addr"] == addr + i


def test_init():
    Fragment.get(Loader(NANO), None)
