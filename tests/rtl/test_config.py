"""AccelConfig is the one home of the hardware parameters: every named config and random valid
ones elaborate (a config that constructs also elaborates), every constraint refuses with its
reason, and the derived sizes are the ones the components build."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment
from amaranth.utils import ceil_log2
from hypothesis import HealthCheck, given, settings, strategies as st

from rtl.accelerator import Accelerator
from rtl.array.tiler import TiledMatmul
from rtl.config import CONFIGS, DEFAULT, NANO, SMALL_TEST, AccelConfig, _bits
from rtl.control.registers import register_map


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_named_config_elaborates(name):
    cfg = CONFIGS[name]
    Fragment.get(Accelerator(cfg), None)
    register_map(cfg)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_valid_configs_elaborate(data):
    cols = data.draw(st.sampled_from([4, 8, 16]))
    axi = data.draw(st.sampled_from([w for w in (32, 64, 128) if w // 8 <= cols]))
    kw = dict(
        array_rows=data.draw(st.sampled_from([2, 4])), array_cols=cols, axi_data_width=axi,
        axi_masters=data.draw(st.sampled_from([1, 2])),
        a_word_bytes=data.draw(st.sampled_from([a for a in (1, 2, 4) if cols % a == 0])),
        ln_lanes=data.draw(st.sampled_from([1, 2, 4])),
        max_tokens=data.draw(st.sampled_from([9, 17])), max_dim=2 * cols, max_k=4 * cols,
        max_n=4 * cols, experts=data.draw(st.sampled_from([2, 4])), top_k=1,
        weight_buffer_bytes=16 * cols * cols, token_buffer_bytes=64 * cols, const_words=64,
        imem_words=64, max_burst_beats=4)
    try:
        cfg = AccelConfig(**kw)
    except ValueError:
        return                      # refused: nothing to elaborate
    Fragment.get(Accelerator(cfg), None)


@pytest.mark.parametrize("change, message", [
    ({"array_cols": 0}, "array_cols must be >= 1"),
    ({"max_tokens": 1.5}, "max_tokens must be an integer"),
    ({"clock_mhz": 0}, "clock_mhz must be a number in (0, 1000]"),
    ({"clock_mhz": float("nan")}, "clock_mhz must be a number"),
    ({"axi_data_width": 48}, "is not an AXI width"),
    ({"axi_masters": 3}, "axi_masters must be 1 or 2"),
    ({"max_burst_beats": 512}, "max_burst_beats must be in 1..256"),
    ({"array_cols": 8}, "a B load word (8 bytes) is not a multiple of the 32-byte read word"),
    ({"experts": 40}, "experts (40) must be <= array_cols (32)"),
    ({"top_k": 17}, "top_k must be <= experts"),
    ({"a_word_bytes": 3}, "a_word_bytes (3) must be a power of two"),
    ({"ln_lanes": 5}, "ln_lanes (5) must divide"),
    ({"ln_scalar_stages": 9}, "ln_scalar_stages must be in 1..8"),
    ({"ln_scalar_stages": 0}, "ln_scalar_stages must be >= 1"),
    ({"load_queue_depth": 0}, "load_queue_depth must be >= 1"),
    ({"load_queue_depth": 65}, "load_queue_depth must be in 1..64"),
    ({"operand_width": 16}, "operand_width must be 8"),
    ({"const_words": 127}, "const_words must be even"),
    ({"max_tokens": 4096}, "max_tokens (4096) exceeds the format's 4095"),
    ({"token_buffer_bytes": 64 << 20}, "ACT words (2097152) exceeds"),
    ({"csr_addr_width": 8}, "csr_addr_width must be in 9..32"),
    ({"axi_addr_width": 70}, "axi_addr_width must be in 12..64"),
])
def test_init_wrong(change, message):
    with pytest.raises(ValueError, match="invalid accelerator config: .*" +
                       message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        DEFAULT.replace(**change)


def test_bits_is_ceil_log2():
    assert all(_bits(n) == max(1, ceil_log2(n)) for n in range(1, 5000))


@pytest.mark.parametrize("cfg", [DEFAULT, NANO, SMALL_TEST], ids=["default", "nano", "small"])
def test_derived_sizes_are_what_the_components_build(cfg):
    t = TiledMatmul(cfg.array_rows, cfg.array_cols, cfg.max_tokens, cfg.max_k, cfg.max_n,
                    cfg.acc_width, b_depth=cfg.b_words, a_word_bytes=cfg.a_word_bytes,
                    a_align=cfg.array_cols)
    assert t.a_depth == cfg.a_bank_words
    assert len(t.out.payload.m) == cfg.token_bits and len(t.out.payload.tn) == cfg.tn_bits
    words = cfg.memory_words()
    assert words["b"] == 2 * cfg.b_half_words + cfg.b_scratch_words
    assert cfg.store_ratio * cfg.axi_bytes == 2 * cfg.array_cols
    for obj in (t, *t.a_banks, *t.b_banks):     # built for its sizes, not elaborated
        obj._MustUse__silence = True


def test_fingerprint_covers_config_and_isa(monkeypatch):
    import rtl.control.version as version
    fp = DEFAULT.fingerprint()
    assert DEFAULT.replace(clock_mhz=300.0).fingerprint() != fp
    monkeypatch.setattr(version, "ISA_DIGEST", "0" * 16)
    assert DEFAULT.fingerprint() != fp
