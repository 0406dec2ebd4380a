"""Small helpers for Amaranth-simulator tests (async testbenches, Amaranth 0.5).

* :func:`stream_put` / :func:`stream_get` move one payload over a ``lib.stream`` interface;
* :func:`run` simulates a design with testbenches and, when the run fails, simulates it again
  with a VCD trace written to a temporary folder whose path is added to the failure message.
"""

from __future__ import annotations

import os
import tempfile

from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "collect_beats", "run"]


async def stream_put(ctx, stream, payload) -> None:
    """Offer ``payload`` on ``stream`` until the sink takes it (one transfer)."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload from ``stream``."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def collect_beats(ctx, stream, count: int, field: str, lanes: int, info: dict,
                        ready_prob: float = 1.0, seed: int = 0) -> list:
    """Accept ``count`` beats of a ``{field: [lanes], last}`` stream under seeded random
    back-pressure (``ready`` high with probability ``ready_prob``).

    Returns ``[(values, last), …]``; sets ``info["last"]`` to the cycle of the last transfer
    (counted from the first cycle) and adds the cycles with ``valid`` but not ``ready`` to
    ``info["stalls"]``.
    """
    import numpy as np
    rng = np.random.default_rng(seed)
    cycle, beats = 0, []
    while len(beats) < count:
        ready = ready_prob >= 1.0 or rng.random() < ready_prob
        ctx.set(stream.ready, ready)
        *_, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid and ready:
            values = getattr(payload, field)
            beats.append(([int(values[j]) for j in range(lanes)], int(payload.last)))
            info["last"] = cycle
        elif valid:
            info["stalls"] += 1
        cycle += 1
    return beats


def run(dut, *testbenches, processes=(), name: str = "sim", clock_period: float = 1e-8,
        deadline: float | None = None) -> None:
    """Simulate ``dut`` with the given async testbenches (and background processes).

    On any failure the simulation is repeated with a VCD trace (tests are deterministic), and
    the trace's path is appended to the error.
    """
    def build():
        sim = Simulator(dut)
        sim.add_clock(clock_period)
        for tb in testbenches:
            sim.add_testbench(tb)
        for proc in processes:
            sim.add_process(proc)
        return sim

    try:
        build().run_until(deadline) if deadline else build().run()
    except Exception as exc:
        folder = tempfile.mkdtemp(prefix="m3vit-vcd-")
        path = os.path.join(folder, f"{name}.vcd")
        sim = build()
        try:
            with sim.write_vcd(path):
                sim.run_until(deadline) if deadline else sim.run()
        except Exception:
            pass
        raise AssertionError(f"{exc}\n(VCD of the failing run: {path})") from exc
