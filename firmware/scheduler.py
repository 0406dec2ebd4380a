"""Task scheduler: a queue of (frame, task) requests run back to back on one loaded model.

Switching task between two frames changes only TASK_ID (the gate and head the program points
at); the scheduler measures what that costs. For every frame it records the accelerator's busy
cycles (the frame latency from its counters), the host wall time, and the gap from the previous
frame's completion to this frame's start — in clock cycles in simulation, in backend seconds
everywhere. The task-switch overhead is the mean gap before frames that change task minus the
mean gap before frames that keep it.

Board-side module: standard library and numpy only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .driver import Accelerator, FrameResult

__all__ = ["Request", "ScheduledFrame", "Scheduler", "ScheduleReport", "TaskStats",
           "format_counters"]


@dataclass
class Request:
    """One frame to run: ``pixels`` (uint8 [3, H, W]) through ``task``; ``tag`` names it."""

    pixels: np.ndarray
    task: str
    tag: str = ""


@dataclass
class ScheduledFrame:
    """A request and its result, with the gap since the previous frame's completion."""

    index: int
    request: Request
    result: FrameResult
    switched: bool | None          # None for the first frame
    gap_s: float | None            # backend seconds, previous done → this start
    gap_cycles: int | None         # clock cycles (simulation), previous done → this start


@dataclass
class TaskStats:
    """Per-task latency summary."""

    task: str
    frames: int
    busy_cycles: list[int]
    wall_s: list[float]

    @property
    def mean_cycles(self) -> float | None:
        return statistics.fmean(self.busy_cycles) if self.busy_cycles else None

    def frame_s(self, clock_hz: float | None) -> float | None:
        """Frame latency in seconds at ``clock_hz`` (from the busy cycles)."""
        if clock_hz and self.busy_cycles:
            return self.mean_cycles / clock_hz
        return None

    def fps(self, clock_hz: float | None) -> float | None:
        s = self.frame_s(clock_hz)
        return 1.0 / s if s else None

    @property
    def wall_fps(self) -> float | None:
        return len(self.wall_s) / sum(self.wall_s) if self.wall_s and sum(self.wall_s) else None


@dataclass
class ScheduleReport:
    """Everything measured over one schedule."""

    frames: list[ScheduledFrame]
    clock_hz: float | None
    simulated: bool
    stats: dict = field(default_factory=dict)

    def per_task(self) -> dict[str, TaskStats]:
        out: dict[str, TaskStats] = {}
        for f in self.frames:
            s = out.setdefault(f.result.task, TaskStats(f.result.task, 0, [], []))
            s.frames += 1
            if f.result.busy_cycles is not None:
                s.busy_cycles.append(f.result.busy_cycles)
            s.wall_s.append(f.result.wall_s)
        return out

    def switch_overhead(self) -> dict:
        """Mean gaps before task-switching and task-keeping frames, and their difference.

        Returns
        -------
        dict
            ``switch_gap_cycles``, ``same_gap_cycles``, ``overhead_cycles`` (simulation; None
            on the board), ``switch_gap_s``, ``same_gap_s``, ``overhead_s`` (backend seconds),
            ``switches``, ``same`` (how many gaps of each kind); None where a kind is missing.
        """
        def mean(values):
            values = [v for v in values if v is not None]
            return statistics.fmean(values) if values else None

        sw = [f for f in self.frames if f.switched is True]
        same = [f for f in self.frames if f.switched is False]
        out = {"switches": len(sw), "same": len(same)}
        for unit, attr in (("cycles", "gap_cycles"), ("s", "gap_s")):
            a = mean(getattr(f, attr) for f in sw)
            b = mean(getattr(f, attr) for f in same)
            out[f"switch_gap_{unit}"], out[f"same_gap_{unit}"] = a, b
            out[f"overhead_{unit}"] = a - b if a is not None and b is not None else None
        return out

    def counter_totals(self) -> dict[str, int]:
        """Each counter summed over all frames."""
        totals: dict[str, int] = {}
        for f in self.frames:
            for k, v in f.result.counters.items():
                totals[k] = totals.get(k, 0) + v
        return totals

    def format(self) -> str:
        """Human-readable report: per-frame lines, per-task table, switch overhead, counters."""
        lines = ["frame  task          busy cycles   at clock      gap before    wall"]
        for f in self.frames:
            r = f.result
            at = _fmt_s(r.busy_cycles / self.clock_hz) if self.clock_hz and r.busy_cycles \
                else "-"
            gap = (f"{f.gap_cycles} cyc" if f.gap_cycles is not None
                   else _fmt_s(f.gap_s) if f.gap_s is not None else "-")
            mark = " (switch)" if f.switched else ""
            lines.append(f"{f.index:5d}  {r.task:<12} {_fmt_int(r.busy_cycles):>12}   "
                         f"{at:>10}   {gap + mark:>18}  {_fmt_s(r.wall_s)}")
        lines.append("")
        clock = f"{self.clock_hz / 1e6:g} MHz" if self.clock_hz else "unknown clock"
        lines.append(f"task          frames  mean busy cycles  frame time ({clock})  "
                     f"frames/s (clock)  frames/s (wall{', simulator' if self.simulated else ''})")
        for s in self.per_task().values():
            fs, fps = s.frame_s(self.clock_hz), s.fps(self.clock_hz)
            lines.append(f"{s.task:<12} {s.frames:7d}  {_fmt_int(s.mean_cycles):>16}  "
                         f"{_fmt_s(fs) if fs else '-':>22}  "
                         f"{f'{fps:.1f}' if fps else '-':>16}  "
                         f"{f'{s.wall_fps:.3g}' if s.wall_fps else '-':>10}")
        ov = self.switch_overhead()
        if ov["switches"] and ov["same"]:
            if ov["overhead_cycles"] is not None:
                lines.append(f"\ntask switch: {ov['switch_gap_cycles']:.1f} cycles between frames "
                             f"when the task changes vs {ov['same_gap_cycles']:.1f} when it does "
                             f"not: overhead {ov['overhead_cycles']:+.1f} cycles "
                             f"({ov['switches']} switches, {ov['same']} repeats)")
            else:
                lines.append(f"\ntask switch: {_fmt_s(ov['switch_gap_s'])} between frames when "
                             f"the task changes vs {_fmt_s(ov['same_gap_s'])}: overhead "
                             f"{ov['overhead_s'] * 1e6:+.1f} us (host time)")
        elif ov["switches"]:
            g = ov["switch_gap_cycles"]
            lines.append(f"\ntask switch: {g:.1f} cycles between frames" if g is not None else
                         f"\ntask switch: {_fmt_s(ov['switch_gap_s'])} between frames")
        lines.append("")
        lines.append(format_counters(self.counter_totals(), len(self.frames)))
        return "\n".join(lines)


def format_counters(counters: dict[str, int], frames: int = 1) -> str:
    """Counter breakdown: per frame, and cycle counters as a share of PERF_BUSY_CYCLES."""
    busy = counters.get("PERF_BUSY_CYCLES")
    lines = ["counter                         total         per frame     of busy"]
    for name, total in counters.items():
        per = total / max(frames, 1)
        share = ""
        if busy and "BYTES" not in name and name != "PERF_CYCLES":
            share = f"{100.0 * total / busy:6.1f} %"
        elif busy and "BYTES" in name:
            share = f"{total / busy:6.2f} B/cyc"
        lines.append(f"{name:<28} {total:>14,d}  {per:>14,.0f}  {share:>10}")
    return "\n".join(lines)


def _fmt_int(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} us"


class Scheduler:
    """Runs queued requests back to back on an :class:`Accelerator` with a loaded model.

    Parameters
    ----------
    accel : Accelerator
        Opened, with a model loaded.
    on_frame : callable, optional
        Called with each :class:`ScheduledFrame` as soon as it completes (for streaming output).
    """

    def __init__(self, accel: Accelerator,
                 on_frame: Callable[[ScheduledFrame], None] | None = None):
        self.accel, self.on_frame = accel, on_frame
        self.queue: list[Request] = []

    def submit(self, pixels: np.ndarray, task: str, tag: str = "") -> Request:
        """Queue one frame; the task and the pixels are checked now (UsageError if bad)."""
        self.accel.task_index(task)
        req = Request(self.accel.check_pixels(pixels), task, tag)
        self.queue.append(req)
        return req

    def __len__(self) -> int:
        return len(self.queue)

    def run(self) -> ScheduleReport:
        """Run every queued request in order; the queue is empty afterwards."""
        frames: list[ScheduledFrame] = []
        prev: FrameResult | None = None
        total = len(self.queue)
        while self.queue:
            req = self.queue.pop(0)
            i = len(frames)
            desc = f"frame {i + 1}/{total} {req.task}" + (f" {req.tag}" if req.tag else "")
            res = self.accel.run_frame(req.pixels, req.task, progress_desc=desc)
            gap_s = gap_c = switched = None
            if prev is not None:
                switched = res.task != prev.task
                gap_s = res.start_time - prev.done_time
                if res.start_cycle is not None and prev.done_cycle is not None:
                    gap_c = res.start_cycle - prev.done_cycle
            frame = ScheduledFrame(i, req, res, switched, gap_s, gap_c)
            frames.append(frame)
            if self.on_frame is not None:
                self.on_frame(frame)
            prev = res
        return ScheduleReport(frames, self.accel.clock_hz, self.accel.backend.simulated)
