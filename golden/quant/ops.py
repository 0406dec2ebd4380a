"""One function per hardware operation, in integer arithmetic only.

These functions *are* the specification of the accelerator's arithmetic: the RTL reproduces them
bit for bit. Inputs and outputs are numpy integer arrays (computed in int64, which every
intermediate provably fits: the bounds are stated per function and in ``docs/numerics.md``). No
floating point is used inside an operation; floats appear only in :mod:`golden.quant.ptq`, where
the integer constants are chosen, and in :mod:`golden.quant.accuracy`, which measures errors.

Shared conventions
------------------
* ``>>`` is an arithmetic shift (floor division by a power of two, also for negative values).
* ``round_shift(v, s) = (v + 2**(s-1)) >> s`` for ``s >= 1``: round to nearest, ties toward +inf.
* ``saturate(v, bits, signed)`` clamps to the two's-complement (or unsigned) range of ``bits``.
* Requantisation multipliers are 15-bit unsigned integers ``M`` (``2**14 <= M < 2**15`` unless
  the real multiplier is tiny) with shifts ``1 <= sh <= 62``: ``real ≈ M * 2**-sh``.
* Fixed-point formats are named Qn: an integer ``v`` stands for ``v * 2**-n``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MULT_BITS", "GELU_FRAC", "GELU_OUT_FRAC", "EXP_FRAC", "LN_RECIP_BITS", "LN_FRAC",
    "LN_GAMMA_FRAC", "round_shift", "saturate", "requantize", "matmul", "gelu_table", "gelu_q10", "exp2_table",
    "exp2_neg", "softmax_online", "layer_norm", "isqrt", "residual_add", "gate_top_k",
    "moe_accumulate", "argmax_lowest", "patch_rows",
]

MULT_BITS = 15          # requantisation multiplier width (unsigned)
GELU_FRAC = 10          # GELU unit input format: int16 Q10 (range ±32)
GELU_OUT_FRAC = 14      # GELU unit output format: Q14 in 20 bits (range ±32)
GELU_RANGE = 8          # table covers [-8, 8); outside, GELU(x) = 0 or x
GELU_STEP_BITS = 5      # table step 2**-5: 513 entries, linear interpolation on 5 low bits
EXP_FRAC = 16           # base-2 logits and exp2 results in Q16
EXP_TABLE_BITS = 8      # exp2 table indexed by the top 8 fractional bits: 257 entries
LN_RECIP_BITS = 40      # LayerNorm reciprocal: floor(2**40 / sqrt(V))
LN_FRAC = 16            # normalised LayerNorm values in Q16
LN_GAMMA_FRAC = 10      # LayerNorm gamma in Q10 (beta in Q(LN_FRAC + LN_GAMMA_FRAC))
SOFTMAX_RECIP_BITS = 40  # softmax reciprocal: floor(2**40 / S)

_I64 = np.int64


def _as_int(x, name: str = "input") -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got {a.dtype}")
    return a.astype(_I64, copy=False)


def round_shift(v, shift) -> np.ndarray:
    """Round-to-nearest right shift, ties toward +inf: ``(v + 2**(shift-1)) >> shift``.

    ``shift`` (scalar or broadcastable array) must be >= 1. ``|v| < 2**62`` so the addition
    cannot overflow int64.
    """
    v = _as_int(v, "v")
    shift = _as_int(shift, "shift")
    if np.any(shift < 1):
        raise ValueError("round_shift needs shift >= 1")
    return (v + (np.int64(1) << (shift - 1))) >> shift


def saturate(v, bits: int, signed: bool = True) -> np.ndarray:
    """Clamp to the ``bits``-wide signed (two's complement) or unsigned range."""
    v = _as_int(v, "v")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return np.clip(v, lo, hi)


def requantize(acc, mult, shift, bits: int, signed: bool = True) -> np.ndarray:
    """Per-output-channel requantisation: ``saturate(round_shift(acc * M, sh), bits)``.

    Parameters
    ----------
    acc : int array [..., C]
        Accumulators, ``|acc| < 2**47`` (an int32 matmul accumulator or a wider sum).
    mult, shift : int arrays [C] or scalars
        ``M < 2**15`` and ``1 <= sh <= 62`` (so ``|acc * M| < 2**62``).
    bits, signed : output width and signedness (saturating).
    """
    acc = _as_int(acc, "acc")
    mult = _as_int(mult, "mult")
    if np.any(mult < 0) or np.any(mult >= (1 << MULT_BITS)):
        raise ValueError(f"requantisation multiplier outside 0..{(1 << MULT_BITS) - 1}")
    if np.any(np.abs(acc) >= (1 << 47)):
        raise OverflowError("requantize: |acc| >= 2**47 would overflow the 62-bit product")
    return saturate(round_shift(acc * mult, shift), bits, signed)


def matmul(a, b, bias=None, a_signed: bool = True) -> np.ndarray:
    """8-bit × 8-bit → int32 matrix multiply with an int32 bias per output column.

    ``a`` [M, K] is int8 (or uint8 with ``a_signed=False``: pixels, attention probabilities),
    ``b`` [K, N] int8, ``bias`` [N] int32. The sum is exact; it must fit int32, which holds for
    ``K * 255 * 128 + |bias| < 2**31`` (K < 65,000 with the bias bounded by 2**30); an overflow
    raises rather than wrapping, because the hardware's accumulator is 32 bits.
    """
    a, b = _as_int(a, "a"), _as_int(b, "b")
    lo, hi = (-128, 127) if a_signed else (0, 255)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"operand a outside {lo}..{hi}")
    if b.size and (b.min() < -128 or b.max() > 127):
        raise ValueError("operand b outside -128..127")
    # Exact in float64 (BLAS speed): every partial sum is an integer of magnitude
    # < K * 255 * 128 < 2**31, far below the 2**53 up to which doubles are exact integers.
    acc = (a.astype(np.float64) @ b.astype(np.float64)).astype(_I64)
    if bias is not None:
        acc = acc + _as_int(bias, "bias")
    if acc.size and (acc.min() < -(1 << 31) or acc.max() >= (1 << 31)):
        raise OverflowError("matmul accumulator overflows int32")
    return acc


# --------------------------------------------------------------------------------------- GELU

def _gelu_exact(x: np.ndarray) -> np.ndarray:
    from math import erf, sqrt
    return np.array([0.5 * v * (1 + erf(v / sqrt(2))) for v in np.ravel(x)]).reshape(np.shape(x))


def gelu_table() -> np.ndarray:
    """The GELU table: ``round(GELU(x) * 2**14)`` at x = -8 + i/32, i = 0..512 (Q14, 18 bits).

    Built once from the exact (erf) GELU; it is a constant of the hardware, not of the model.
    """
    step = 1 << GELU_STEP_BITS
    xs = -GELU_RANGE + np.arange(2 * GELU_RANGE * step + 1) / step
    return np.round(_gelu_exact(xs) * (1 << GELU_OUT_FRAC)).astype(_I64)


_GELU_TABLE = gelu_table()


def gelu_q10(x) -> np.ndarray:
    """GELU on int16 Q10 inputs → Q14 outputs (20-bit signed), by table + linear interpolation.

    For ``x < -8`` the result is 0, for ``x >= 8`` it is ``x << 4`` (GELU differs from those by
    less than 2**-40 there). Inside, with ``u = x + 8*2**10`` (0 ≤ u < 2**14), index ``i = u >> 5``
    and ``f = u & 31``: ``T[i] + round_shift((T[i+1] - T[i]) * f, 5)``. Inputs must already be
    saturated to int16 (the requantisation into Q10 saturates).
    """
    x = _as_int(x, "x")
    if x.size and (x.min() < -(1 << 15) or x.max() >= (1 << 15)):
        raise ValueError("gelu_q10 input outside int16")
    lo = -GELU_RANGE << GELU_FRAC
    hi = GELU_RANGE << GELU_FRAC
    u = np.clip(x - lo, 0, hi - lo - 1)
    i = u >> (GELU_FRAC - GELU_STEP_BITS)
    f = u & ((1 << (GELU_FRAC - GELU_STEP_BITS)) - 1)
    t0, t1 = _GELU_TABLE[i], _GELU_TABLE[i + 1]
    inner = t0 + round_shift((t1 - t0) * f, GELU_FRAC - GELU_STEP_BITS)
    return np.where(x < lo, 0, np.where(x >= hi, x << (GELU_OUT_FRAC - GELU_FRAC), inner))


# ------------------------------------------------------------------------------- exp, softmax

def exp2_table() -> np.ndarray:
    """``round(2**(-i/256) * 2**16)`` for i = 0..256: 2**-f on the top 8 bits of a Q16 fraction."""
    i = np.arange((1 << EXP_TABLE_BITS) + 1)
    return np.round(np.exp2(-i / (1 << EXP_TABLE_BITS)) * (1 << EXP_FRAC)).astype(_I64)


_EXP2_TABLE = exp2_table()


def exp2_neg(u) -> np.ndarray:
    """``2**(-u)`` for Q16 ``u >= 0`` → Q16 result in [0, 2**16], shift-based.

    ``n = u >> 16`` (integer part), ``f = u & 0xFFFF``: the fraction's top 8 bits index the table,
    the low 8 bits interpolate linearly (rounded), and the result is shifted right by ``n``
    (rounded; ``n >= 18`` gives 0).
    """
    u = _as_int(u, "u")
    if u.size and u.min() < 0:
        raise ValueError("exp2_neg needs u >= 0")
    n = u >> EXP_FRAC
    f = u & ((1 << EXP_FRAC) - 1)
    low_bits = EXP_FRAC - EXP_TABLE_BITS
    i = f >> low_bits
    lo = f & ((1 << low_bits) - 1)
    t0, t1 = _EXP2_TABLE[i], _EXP2_TABLE[i + 1]
    frac = t0 + round_shift((t1 - t0) * lo, low_bits)         # 2**-f in Q16, (2**15, 2**16]
    n = np.minimum(n, 18)  # frac <= 2**16, so any shift >= 18 rounds to 0
    return np.where(n == 0, frac, round_shift(frac, np.maximum(n, 1)))


def _ceil_q(t: np.ndarray) -> np.ndarray:
    """ceil(t / 2**16) for int arrays."""
    return -((-t) >> EXP_FRAC)


def softmax_online(t, out_frac: int, out_bits: int) -> np.ndarray:
    """Row softmax over base-2 logits, single pass with a running integer maximum.

    Parameters
    ----------
    t : int array [..., L]
        Logits already converted to base 2 in Q16: ``t = round(logit * log2(e) * 2**16)``
        (the requantisation before the unit does this). ``|t| < 2**40``.
    out_frac, out_bits : output format: unsigned Q``out_frac`` saturated to ``out_bits``
        (attention probabilities: Q8 in 8 bits; gate probabilities: Q16 in 16 bits).

    Algorithm (j = 0 … L-1 in order; K is an integer exponent, S a Q16 sum)::

        K = ceil(t_0 / 2**16); S = exp2_neg(K*2**16 - t_0)
        for j >= 1: K' = max(K, ceil(t_j / 2**16))
                    S = (S >> (K' - K)) + exp2_neg(K'*2**16 - t_j); K = K'
        R = floor(2**40 / S)                        # one reciprocal per row
        p_j = saturate(round_shift(exp2_neg(K*2**16 - t_j) * R, 40 - out_frac), out_bits)

    The rescaling shift of S floors, so the result depends on the order of the row (defined here
    as ascending j). ``S >= 2**15`` (the maximum's term is >= 1/2) and ``S <= L * 2**16``.
    """
    t = _as_int(t, "t")
    if t.shape[-1] < 1:
        raise ValueError("softmax of an empty row")
    k = _ceil_q(t[..., 0])
    s = exp2_neg((k << EXP_FRAC) - t[..., 0])
    for j in range(1, t.shape[-1]):
        k_new = np.maximum(k, _ceil_q(t[..., j]))
        s = (s >> np.minimum(k_new - k, 62)) + exp2_neg((k_new << EXP_FRAC) - t[..., j])
        k = k_new
    recip = (np.int64(1) << SOFTMAX_RECIP_BITS) // s
    e = exp2_neg((k[..., None] << EXP_FRAC) - t)
    return saturate(round_shift(e * recip[..., None], SOFTMAX_RECIP_BITS - out_frac),
                    out_bits, signed=False)


# ----------------------------------------------------------------------------- LayerNorm

def isqrt(v) -> np.ndarray:
    """floor(sqrt(v)) exactly, for 0 <= v < 2**62 (the hardware computes it digit by digit)."""
    v = _as_int(v, "v")
    if v.size and (v.min() < 0 or v.max() >= (1 << 62)):
        raise ValueError("isqrt needs 0 <= v < 2**62")
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(_I64)
    # Correct the float estimate to the exact integer root.
    for _ in range(3):
        r = np.where(r * r > v, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def layer_norm(r, gamma_q, beta_q, eps_q: int, gamma_frac: int) -> np.ndarray:
    """LayerNorm of int16 residual rows → int8, with the output scale folded into γ and β.

    Parameters
    ----------
    r : int16 array [N, D] (residual stream, any scale: LayerNorm is scale-invariant).
    gamma_q : int [D], ``round(γ / s_out * 2**gamma_frac)``, |γ_q| < 2**24.
    beta_q : int [D], ``round(β / s_out * 2**(16 + gamma_frac))``, |β_q| < 2**47.
    eps_q : int >= 1, ``max(1, round(D**2 * eps / s_res**2))``.

    Formula (all exact integers)::

        S1 = Σ r_i,  S2 = Σ r_i²,  V = D*S2 - S1² + eps_q          (= D² (var + eps) in r units²)
        q = isqrt(V),  R = floor(2**40 / q)
        n_i = round_shift((D*r_i - S1) * R, 40 - 16)                (normalised value, Q16)
        y_i = saturate(round_shift(n_i * γ_q,i + β_q,i, 16 + gamma_frac), 8)

    Widths for D <= 1024: |S1| < 2**25, S2 < 2**40, V < 2**51, |D r_i - S1| < 2**26,
    ``|n_i| < 2 * sqrt(D) * 2**16 <= 2**22`` (``sqrt(D-1)`` for the exact standardised value, up
    to twice that because ``q = floor(sqrt(V))`` may be as small as ``sqrt(V)/2`` when V is tiny),
    ``|β_q| < 2**47`` (checked by the quantiser), products < 2**62.
    """
    r = _as_int(r, "r")
    if r.size and (r.min() < -(1 << 15) or r.max() >= (1 << 15)):
        raise ValueError("layer_norm input outside int16")
    if eps_q < 1:
        raise ValueError("eps_q must be >= 1 (it keeps the reciprocal finite)")
    d = r.shape[-1]
    s1 = r.sum(-1, keepdims=True)
    s2 = (r * r).sum(-1, keepdims=True)
    v = d * s2 - s1 * s1 + eps_q
    q = isqrt(v)
    recip = (np.int64(1) << LN_RECIP_BITS) // q
    n = round_shift((d * r - s1) * recip, LN_RECIP_BITS - LN_FRAC)
    y = round_shift(n * _as_int(gamma_q) + _as_int(beta_q), LN_FRAC + gamma_frac)
    return saturate(y, 8)


# ---------------------------------------------------------------------- residual, MoE, heads

def residual_add(r, y) -> np.ndarray:
    """Residual stream update: ``saturate(r + y, 16)`` (r int16, y already in residual format)."""
    return saturate(_as_int(r, "r") + _as_int(y, "y"), 16)


def gate_top_k(t, k: int, prob_frac: int = 16):
    """The router: top-k experts per token and their gate probabilities.

    ``t`` [N, E] are the task's gate logits in base-2 Q16 (requantised from the gate matmul).
    Selection is on ``t`` (softmax is monotonic); ties go to the lower expert index. The
    probabilities are :func:`softmax_online` over all E experts in Q16 (saturated to 16 bits),
    and the kept ones are not renormalised.

    Returns ``indices`` [N, k] (best first) and ``probs`` [N, k] (uint16 Q16).
    """
    t = _as_int(t, "t")
    e = t.shape[-1]
    if not 1 <= k <= e:
        raise ValueError(f"k must be in 1..{e}, got {k}")
    order = np.argsort(-t, axis=-1, kind="stable")[..., :k]  # stable: lower index first on ties
    p = softmax_online(t, prob_frac, 16)
    return order, np.take_along_axis(p, order, -1)


def moe_accumulate(acc, tokens, y, p) -> np.ndarray:
    """Probability-weighted scatter-accumulate of one expert's outputs into the MoE accumulator.

    ``acc`` [N, D] int32 accumulator (per token, residual format), ``tokens`` [n] the expert's
    queue, ``y`` [n, D] int16 expert outputs (residual format), ``p`` [n] Q16 probabilities:
    ``acc[tokens] += round_shift(y * p, 16)``. Integer addition is associative, so the result does
    not depend on the order experts are visited. |acc| <= k * 2**15.
    """
    acc = _as_int(acc, "acc").copy()
    contrib = round_shift(_as_int(y, "y") * _as_int(p, "p")[:, None], 16)
    np.add.at(acc, _as_int(tokens, "tokens"), contrib)
    return acc


def argmax_lowest(x, axis: int = 0) -> np.ndarray:
    """Index of the maximum along ``axis``; ties go to the lowest index (segmentation argmax)."""
    return np.argmax(_as_int(x, "x"), axis=axis)


def patch_rows(pixels: np.ndarray, patch: int) -> np.ndarray:
    """uint8 image ``[3, H, W]`` → patch rows ``[(H/p)·(W/p), 3·p·p]`` (row-major patches;
    channel, row, column order inside a patch: the patch-embedding convolution flattened)."""
    c, h, w = pixels.shape
    gh, gw = h // patch, w // patch
    x = np.asarray(pixels).reshape(c, gh, patch, gw, patch).transpose(1, 3, 0, 2, 4)
    return x.reshape(gh * gw, c * patch * patch)
