"""How far each integer unit is from the float function it replaces (measured, not assumed).

Every figure compares the unit's integer output, converted to real units, with the exact float
function evaluated on the *same* (already quantised) input, over the unit's whole input range or
a dense random sweep of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf, sqrt

import numpy as np

from . import ops

__all__ = ["UnitError", "unit_errors", "format_unit_errors"]


@dataclass
class UnitError:
    unit: str
    domain: str
    max_err: float
    mean_err: float
    unit_of_error: str


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2)))


def _gelu_error() -> UnitError:
    x = np.arange(-(1 << 15), 1 << 15)                       # every int16 Q10 input
    err = np.abs(ops.gelu_q10(x) / 2 ** ops.GELU_OUT_FRAC - _gelu(x / 2 ** ops.GELU_FRAC))
    return UnitError("GELU (513-entry table, linear interp.)", "all int16 Q10 inputs, [-32, 32)",
                     float(err.max()), float(err.mean()), "absolute")


def _exp2_error() -> UnitError:
    u = np.arange(0, 18 << ops.EXP_FRAC)                      # every Q16 input until it rounds to 0
    err = np.abs(ops.exp2_neg(u) / 2 ** ops.EXP_FRAC - np.exp2(-u / 2 ** ops.EXP_FRAC))
    return UnitError("exp2 (257-entry table, linear interp.)", "all Q16 inputs, 2^-u for u in [0, 18)",
                     float(err.max()), float(err.mean()), "absolute")


def _softmax_error(out_frac: int, out_bits: int, length: int, rows: int, seed: int) -> UnitError:
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.1, 8.0, (rows, 1))                  # from flat to very peaked rows
    logits = rng.normal(0, 1, (rows, length)) * sigma
    t = np.round(logits / np.log(2) * 2 ** ops.EXP_FRAC).astype(np.int64)
    exact = np.exp2(t / 2 ** ops.EXP_FRAC - (t / 2 ** ops.EXP_FRAC).max(-1, keepdims=True))
    exact /= exact.sum(-1, keepdims=True)
    got = ops.softmax_online(t, out_frac, out_bits) / 2 ** out_frac
    err = np.abs(got - exact)
    what = "attention, uint8 Q8" if out_bits == 8 else "gate, Q16"
    return UnitError(f"softmax ({what})", f"{rows} random rows of {length}, logit σ 0.1–8",
                     float(err.max()), float(err.mean()), "absolute probability")


def _layer_norm_error(d: int, rows: int, seed: int) -> UnitError:
    rng = np.random.default_rng(seed)
    spread = rng.uniform(50, 12000, (rows, 1))
    r = np.clip(np.round(rng.normal(rng.uniform(-3000, 3000, (rows, 1)), spread, (rows, d))),
                -32768, 32767).astype(np.int64)
    gamma = rng.uniform(0.5, 2.0, d)
    beta = rng.uniform(-0.5, 0.5, d)
    s_out, gfrac = 4.0 / 127, 10
    gq = np.round(gamma / s_out * 2 ** gfrac).astype(np.int64)
    bq = np.round(beta / s_out * 2 ** (ops.LN_FRAC + gfrac)).astype(np.int64)
    got = ops.layer_norm(r, gq, bq, 1, gfrac)
    x = r.astype(np.float64)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1.0 / d ** 2)
    ref = (ref * gamma + beta) / s_out
    inside = np.abs(ref) < 127
    err = np.abs(got - ref)[inside]
    return UnitError("LayerNorm (isqrt + 2^40 reciprocal)", f"{rows} random int16 rows of {d}",
                     float(err.max()), float(err.mean()), "int8 output LSB (0.5 = ideal rounding)")


def _requant_error(seed: int) -> UnitError:
    from .ptq import quantize_multiplier
    rng = np.random.default_rng(seed)
    m = 2.0 ** rng.uniform(-20, 0, 2000)
    acc = rng.integers(-(1 << 31), 1 << 31, 2000)
    mult, shift = quantize_multiplier(m)
    got = ops.round_shift(acc * mult, shift)
    ref = acc * m
    keep = np.abs(ref) < 2 ** 15
    err = np.abs(got - ref)[keep]
    return UnitError("requantise (15-bit multiplier, shift)", "2000 random int32 × multipliers "
                     "2^-20–1", float(err.max()), float(err.mean()), "output LSB (0.5 = ideal)")


def unit_errors(seed: int = 0) -> list[UnitError]:
    return [_gelu_error(), _exp2_error(),
            _softmax_error(8, 8, 129, 2000, seed), _softmax_error(16, 16, 16, 5000, seed + 1),
            _layer_norm_error(192, 2000, seed + 2), _requant_error(seed + 3)]


def format_unit_errors(rows: list[UnitError]) -> str:
    lines = ["| unit | input range | max error | mean error | measured in |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.unit} | {r.domain} | {r.max_err:.3g} | {r.mean_err:.3g} | "
                     f"{r.unit_of_error} |")
    return "\n".join(lines)
