"""Router vs ``ops.gate_top_k``: top-k, Q16 probabilities and per-expert queues bit for bit,
the non-empty expert list in ascending order, and the cycle formula."""

import gc
import warnings

import numpy as np
import pytest

from golden.quant import ops
from rtl.units.router import Router
from tests.rtl.helpers import run

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def simulate(dut: Router, frames, ready_prob=1.0, seed=0):
    """Stream each frame's logits [N, E]; collect the expert list and queue entries per frame."""
    results = []
    info = {"first": [], "last": [], "stalls": 0}

    async def feeder(ctx):
        cyc = 0
        for logits in frames:
            n, e = logits.shape
            first = True
            for tok in range(n):
                for x in range(e):
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, {"t": int(logits[tok, x]),
                                            "last": int(tok == n - 1 and x == e - 1)})
                    while True:
                        *_, ready = await ctx.tick().sample(dut.i.ready)
                        cyc += 1
                        if ready:
                            break
                    if first:
                        info["first"].append(cyc - 1)
                        first = False
            ctx.set(dut.i.valid, 0)

    async def experts_collector(ctx):
        rng = np.random.default_rng(seed + 100)
        for f in range(len(frames)):
            lst = []
            while True:
                ready = ready_prob >= 1.0 or rng.random() < ready_prob
                ctx.set(dut.experts_out.ready, ready)
                *_, valid, p = await ctx.tick().sample(dut.experts_out.valid,
                                                       dut.experts_out.payload)
                if valid and ready:
                    lst.append((int(p.expert), int(p.length)))
                    if p.last:
                        break
            ctx.set(dut.experts_out.ready, 0)
            results.append({"experts": lst})

    async def queue_collector(ctx):
        rng = np.random.default_rng(seed)
        cyc = 0
        for f in range(len(frames)):
            entries = []
            while True:
                ready = ready_prob >= 1.0 or rng.random() < ready_prob
                ctx.set(dut.queue.ready, ready)
                *_, valid, p = await ctx.tick().sample(dut.queue.valid, dut.queue.payload)
                cyc += 1
                if valid and ready:
                    entries.append((int(p.expert), int(p.token), int(p.prob), int(p.last),
                                    int(p.final)))
                    if p.final:
                        info["last"].append(cyc - 1)
                        info.setdefault("queue_len", []).append(
                            [int(v) for v in ctx.get(dut.queue_len)])
                        info.setdefault("tokens", []).append(ctx.get(dut.tokens))
                        break
                elif valid:
                    info["stalls"] += 1
            info.setdefault("entries", []).append(entries)
        ctx.set(dut.queue.ready, 0)

    budget = sum(dut.frame_cycles(len(f_)) + 2 for f_ in frames)
    run(dut, feeder, experts_collector, queue_collector, name="router",
        deadline=(3 * budget + 500) * 1e-8)
    assert len(results) == len(frames) and len(info["entries"]) == len(frames), \
        "the router did not finish every frame"
    for f, r in enumerate(results):
        r["entries"] = info["entries"][f]
        r["queue_len"] = info["queue_len"][f]
        r["tokens"] = info["tokens"][f]
    return results, info


def expected(logits, k):
    idx, probs = ops.gate_top_k(logits, k)
    n, e = logits.shape
    queues = {x: [] for x in range(e)}
    for tok in range(n):
        for s in range(k):
            queues[int(idx[tok, s])].append((tok, int(probs[tok, s])))
    return queues


def check(dut, frames, ready_prob=1.0, seed=0):
    results, info = simulate(dut, frames, ready_prob, seed)
    for f, (logits, got) in enumerate(zip(frames, results)):
        queues = expected(logits, dut.top_k)
        want_list = [(x, len(q)) for x, q in queues.items() if q]
        assert got["experts"] == want_list, f"frame {f}: experts {got['experts']} != {want_list}"
        assert got["queue_len"] == [len(queues[x]) for x in range(dut.experts)], f"frame {f}"
        assert got["tokens"] == len(logits)
        want_entries = []
        for pos, (x, length) in enumerate(want_list):
            for i, (tok, p) in enumerate(queues[x]):
                end = i == length - 1
                want_entries.append((x, tok, p, int(end), int(end and pos == len(want_list) - 1)))
        for i, (g, w) in enumerate(zip(got["entries"], want_entries)):
            assert g == w, (f"frame {f}: first mismatching queue entry {i}: got (expert, token, "
                            f"prob, last, final) {g}, want {w}")
        assert len(got["entries"]) == len(want_entries)
    for f, logits in enumerate(frames):
        formula = dut.frame_cycles(len(logits))
        cycles = info["last"][f] - info["first"][f] + 1
        if ready_prob >= 1.0:
            assert cycles == formula, f"frame {f}: {cycles} cycles, formula {formula}"
        else:
            assert cycles >= formula, f"frame {f}: {cycles} cycles < formula {formula}"
    if ready_prob >= 1.0 and len(frames) > 1:
        gaps = [info["first"][f + 1] - info["last"][f] for f in range(len(frames) - 1)]
        assert gaps == [2] * len(gaps), f"frame-to-frame gaps {gaps}"
    return info


def gate_logits(rng, n, e, sigma=2.0):
    return np.round(rng.normal(0, sigma, (n, e)) * 65536 * np.log2(np.e)).astype(np.int64)


def test_random_frames_k2():
    rng = np.random.default_rng(30)
    dut = Router(experts=6, top_k=2, max_tokens=12)
    check(dut, [gate_logits(rng, 12, 6), gate_logits(rng, 5, 6, 0.2), gate_logits(rng, 1, 6)])


def test_ties_and_all_tokens_to_one_expert():
    rng = np.random.default_rng(31)
    E, N = 5, 8
    dut = Router(experts=E, top_k=2, max_tokens=N)
    ties = np.zeros((N, E), np.int64)                       # all equal: experts 0 and 1
    one = np.full((N, E), -100000)
    one[:, 3] = 500000                                      # expert 3 always first
    one[:, 1] = 400000
    mixed = rng.integers(-3, 3, (N, E)) * 65536            # many ties
    extremes = rng.choice([I32_MIN, I32_MAX, 0], (N, E))
    check(dut, [ties, one, mixed, extremes])


@pytest.mark.parametrize("k", [1, 4])
def test_k1_and_k_equals_e(k):
    rng = np.random.default_rng(32 + k)
    E, N = 4, 7
    dut = Router(experts=E, top_k=k, max_tokens=N)
    frames = [gate_logits(rng, N, E), np.full((3, E), I32_MIN)]
    if k == 1:
        f = gate_logits(rng, N, E, 0.5)
        f[:, 2] += 10 << 16                                 # only expert 2 non-empty
        frames.append(f)
    check(dut, frames)


def test_back_pressure_and_empty_experts():
    rng = np.random.default_rng(34)
    E, N = 8, 9
    dut = Router(experts=E, top_k=2, max_tokens=N, banks=2)
    sparse = gate_logits(rng, N, E, 0.3)
    sparse[:, [0, 5]] += 6 << 16                            # only experts 0, 5 used
    sparse[3, 7] += 12 << 16                                # ... and 7 once
    check(dut, [gate_logits(rng, N, E), sparse, gate_logits(rng, 2, E)],
          ready_prob=0.5, seed=3)


def test_single_expert():
    dut = Router(experts=1, top_k=1, max_tokens=3)
    check(dut, [np.array([[5], [-7], [I32_MAX]])])


def test_parameter_validation():
    """Bad parameters raise ValueError (the half-built components are discarded quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"experts": 0, "top_k": 1, "max_tokens": 4},
                   {"experts": 4, "top_k": 5, "max_tokens": 4},
                   {"experts": 4, "top_k": 0, "max_tokens": 4},
                   {"experts": 4, "top_k": 2, "max_tokens": 0}):
            with pytest.raises(ValueError):
                Router(**kw)
        gc.collect()


def test_tiny_gate():
    """tiny: E = 16, k = 2, 129 tokens."""
    rng = np.random.default_rng(35)
    dut = Router(experts=16, top_k=2, max_tokens=129)
    check(dut, [gate_logits(rng, 129, 16)])


def test_tiny_gate_frames_back_pressure():
    """Several tiny-size frames (E = 16, k = 2) of different lengths, with back-pressure."""
    rng = np.random.default_rng(36)
    dut = Router(experts=16, top_k=2, max_tokens=129)
    frames = [gate_logits(rng, 129, 16, 1.0), gate_logits(rng, 40, 16, 6.0),
              rng.integers(-4, 4, (129, 16)) * 65536]
    check(dut, frames, ready_prob=0.7, seed=8)
