"""Scheduler: back-to-back frames, per-task latency, task-switch overhead, counter breakdown."""

import numpy as np
import pytest

from firmware.errors import UsageError
from firmware.scheduler import Scheduler, format_counters

from .conftest import make_accel

PIX = np.random.default_rng(5).integers(0, 256, (3, 8, 16), dtype=np.uint8)


def test_schedule_and_switch_overhead(image):
    accel, fake = make_accel(frame_cycles=300)
    accel.open()
    accel.load(image)
    seen = []
    sched = Scheduler(accel, on_frame=seen.append)
    for task in ("semseg", "semseg", "depth", "depth", "semseg"):
        sched.submit(PIX, task, tag="x")
    assert len(sched) == 5
    report = sched.run()
    assert len(sched) == 0 and len(seen) == 5 and fake.starts == 5
    assert [f.switched for f in report.frames] == [None, False, True, False, True]
    gaps = [f.gap_cycles for f in report.frames[1:]]
    assert all(g > 0 for g in gaps) and len(set(gaps)) == 1     # same register writes each time
    ov = report.switch_overhead()
    assert ov["switches"] == 2 and ov["same"] == 2 and ov["overhead_cycles"] == 0
    assert ov["switch_gap_s"] == pytest.approx(gaps[0] / accel.clock_hz)
    per = report.per_task()
    assert per["semseg"].frames == 3 and per["depth"].busy_cycles == [300, 300]
    assert per["depth"].frame_s(accel.clock_hz) == pytest.approx(300 / accel.clock_hz)
    assert per["depth"].fps(None) is None
    totals = report.counter_totals()
    assert totals["PERF_BUSY_CYCLES"] == 5 * 300
    text = report.format()
    assert "overhead +0.0 cycles (2 switches, 2 repeats)" in text
    assert "PERF_BUSY_CYCLES" in text and "(switch)" in text


def test_submit_checks_requests(image):
    accel, _ = make_accel()
    accel.load(image)
    sched = Scheduler(accel)
    with pytest.raises(UsageError, match="unknown task 'edges'"):
        sched.submit(PIX, "edges")
    with pytest.raises(UsageError, match="the model takes 3x8x16"):
        sched.submit(PIX[:, :4], "depth")
    assert len(sched) == 0


def test_format_counters():
    text = format_counters({"PERF_CYCLES": 1200, "PERF_BUSY_CYCLES": 1000,
                            "PERF_MATMUL_CYCLES": 250, "PERF_READ_BYTES": 4000}, frames=2)
    assert "25.0 %" in text and "4.00 B/cyc" in text and "500" in text
