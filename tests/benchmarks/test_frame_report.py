"""The frame report on nano (Verilator): every cycle of each frame has exactly one cause
(``unattributed_cycles`` 0), the per-layer work trace adds up to the cause counters, and the
array's MAC counter equals the reference's MAC count."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import frame_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "nano.json"
    rc = frame_report.main(["--config", "nano", "--json", str(out), "--no-progress"])
    assert rc == 0, "a frame was not bit-exact"
    return json.loads(out.read_text())


def test_every_cycle_has_one_cause(report):
    for f in report["frames"]:
        assert f["unattributed_cycles"] == 0, f"{f['task']}: {f['unattributed_cycles']} cycles"
        assert math.isclose(sum(f["causes"].values()), f["cycles"], abs_tol=1e-6)
        assert f["work_trace_matches_counters"], f["task"]


def test_layers_are_work_done_and_add_up(report):
    for f in report["frames"]:
        assert sum(f["layers"].values()) == f["cycles"]
        for layer, row in f["layer_causes"].items():
            assert sum(row.values()) == f["layers"][layer], layer
        assert any(k.startswith("block") for k in f["layers"])


def test_mac_counter_equals_the_reference(report):
    for f in report["frames"]:
        assert f["macs"] == f["macs_reference"], f["task"]
        assert 0 < f["utilisation_frame"] <= f["utilisation_array_cycles"] <= 1


def test_frame_time_is_at_the_config_clock(report):
    from rtl.config import CONFIGS
    assert report["clock_mhz_report"] == CONFIGS[report["accel"]].clock_mhz
    for f in report["frames"]:
        assert f["frame_ms_at_clock"] == pytest.approx(f["cycles"] / (report["clock_mhz_report"] * 1e3))


def test_layernorm_after_moe_does_not_wait_for_the_next_weights(report):
    """After a MoE layer the next block's LN1 parameters load before its qkv weights are
    prefetched, so the LayerNorm never waits behind that prefetch (nano: block 1 is MoE)."""
    for f in report["frames"]:
        stalls = f["weight_stall_by_instruction"]
        assert not any(k.endswith("block2.ln1.params") for k in stalls), stalls


def test_next_expert_weights_load_behind_compute(report):
    """The next expert's LOADs go into the load queue: the sequencer never waits at them, so
    the current expert's matmuls issue while they stream."""
    for f in report["frames"]:
        stalls = f["weight_stall_by_instruction"]
        assert any(".expert." in k or ".wait" in k for k in stalls), stalls
        at_next = {k: v for k, v in stalls.items() if ".next." in k}
        assert not at_next, f"{f['task']}: the sequencer waited at {at_next}"
