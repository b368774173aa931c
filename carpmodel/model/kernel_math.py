"""exp, log, log1p and pow in plain arithmetic, in float64 and in float32, for the compiled engine.

numba calls the C library for ``math.exp`` and ``math.log``, and a loop with a library call is
not vectorised; these versions are additions, multiplications, one division and bit moves, so
LLVM turns a loop over a block of batch rows into SIMD instructions. They are also the same
arithmetic in every lane: a row's result does not depend on whether its loop ran as SIMD or
one row at a time (no fast-math, so no reassociation or fused multiply-adds).

Each function keeps its argument's precision (``overload`` picks the float64 or float32
version inside compiled code; called from Python they are the C library's). :func:`like` casts a
constant to the precision of a value, so one kernel source serves both precisions.

Accuracy (tests/test_kernel.py): float64 within 2 ulp of numpy's ``exp``/``log``/``log1p``,
float32 within 2 ulp of float32; ``pow`` = ``exp(b·ln x)``. Inputs: ``exp`` clamps to
[−708, 709] (float32: [−87, 88]): no infinities, no subnormals; ``log`` and ``log1p`` expect
finite positive arguments (``log1p``: ``x > −1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

__all__ = ["fast_exp", "fast_log", "fast_log1p", "fast_pow", "like"]


def _bitcast(source: types.Type, target: types.Type):  # noqa: ANN202
    @intrinsic
    def cast(typingctx, value):  # noqa: ANN001, ANN202
        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            return builder.bitcast(args[0], context.get_value_type(target))
        return target(source), codegen
    return cast


_f64_from_bits = _bitcast(types.int64, types.float64)
_bits_of_f64 = _bitcast(types.float64, types.int64)
_f32_from_bits = _bitcast(types.int32, types.float32)
_bits_of_f32 = _bitcast(types.float32, types.int32)

# float64 constants
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_SQRT2 = 1.4142135623730951
_E = tuple(1.0 / math.factorial(k) for k in range(15))        # Taylor series of e^r
_A = tuple(1.0 / (2 * k + 1) for k in range(12))                # atanh(s)/s in s²
# float32 constants (ln 2 split so k·LN2_HI is exact for |k| < 2^9)
_F = np.float32
_LN2_HI32, _LN2_LO32 = _F(0.693359375), _F(-2.12194440e-4)
_LOG2E32, _SQRT2_32 = _F(_LOG2E), _F(_SQRT2)
_E32 = tuple(_F(c) for c in _E[:9])
_A32 = tuple(_F(c) for c in _A[:6])
_HALF32, _ONE32, _TWO32 = _F(0.5), _F(1.0), _F(2.0)
_EXP_LOW32, _EXP_HIGH32 = _F(-87.0), _F(88.0)


def _exp64(x):  # noqa: ANN001, ANN202
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _E[14]
    p = p * r + _E[13]
    p = p * r + _E[12]
    p = p * r + _E[11]
    p = p * r + _E[10]
    p = p * r + _E[9]
    p = p * r + _E[8]
    p = p * r + _E[7]
    p = p * r + _E[6]
    p = p * r + _E[5]
    p = p * r + _E[4]
    p = p * r + _E[3]
    p = p * r + _E[2]
    p = p * r + _E[1]
    p = p * r + _E[0]
    return p * _f64_from_bits((np.int64(k) + 1023) << 52)


def _log64(u):  # noqa: ANN001, ANN202
    e = (_bits_of_f64(u * _SQRT2) >> 52) - 1023
    m = _f64_from_bits(_bits_of_f64(u) - (e << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    t = _A[11]
    t = t * s2 + _A[10]
    t = t * s2 + _A[9]
    t = t * s2 + _A[8]
    t = t * s2 + _A[7]
    t = t * s2 + _A[6]
    t = t * s2 + _A[5]
    t = t * s2 + _A[4]
    t = t * s2 + _A[3]
    t = t * s2 + _A[2]
    t = t * s2 + _A[1]
    t = t * s2
    exponent = np.float64(e)
    return exponent * _LN2_HI + (exponent * _LN2_LO + (2.0 * s + 2.0 * s * t))


def _exp32(x):  # noqa: ANN001, ANN202
    x = min(max(x, _EXP_LOW32), _EXP_HIGH32)
    k = np.floor(x * _LOG2E32 + _HALF32)   # a float: math.floor's int64 cost two conversions per lane
    r = (x - k * _LN2_HI32) - k * _LN2_LO32
    p = _E32[8]
    p = p * r + _E32[7]
    p = p * r + _E32[6]
    p = p * r + _E32[5]
    p = p * r + _E32[4]
    p = p * r + _E32[3]
    p = p * r + _E32[2]
    p = p * r + _E32[1]
    p = p * r + _E32[0]
    return p * _f32_from_bits(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))


def _log32(u):  # noqa: ANN001, ANN202
    e = np.int32((_bits_of_f32(u * _SQRT2_32) >> np.int32(23)) - np.int32(127))
    m = _f32_from_bits(np.int32(_bits_of_f32(u) - (e << np.int32(23))))
    f = m - _ONE32
    s = f / (_TWO32 + f)
    s2 = s * s
    t = _A32[5]
    t = t * s2 + _A32[4]
    t = t * s2 + _A32[3]
    t = t * s2 + _A32[2]
    t = t * s2 + _A32[1]
    t = t * s2
    exponent = np.float32(e)
    return exponent * _LN2_HI32 + (exponent * _LN2_LO32 + (_TWO32 * s + _TWO32 * s * t))


def fast_exp(x: float) -> float:
    """``e^x``: ``x = k·ln 2 + r`` (Cody–Waite), a Taylor polynomial in ``|r| ≤ ln 2 / 2`` (degree 14
    in float64, 8 in float32), times ``2^k`` built from its bits."""
    return math.exp(x)


def fast_log(u: float) -> float:
    """``ln u`` for finite ``u > 0``: ``u = 2^e·m`` with ``m ∈ [1/√2, √2)``, then
    ``ln m = 2·atanh(s)``, ``s = (m − 1)/(m + 1)``, by its series (``|s| ≤ 0.172``)."""
    return math.log(u)


def fast_log1p(x: float) -> float:
    """``ln(1 + x)`` for ``x > −1``, with the rounding of ``1 + x`` corrected to first order."""
    return math.log1p(x)


def fast_pow(base: float, exponent: float) -> float:
    """``base^exponent`` for finite ``base > 0``: ``exp(exponent·ln base)``."""
    return base ** exponent


def like(value: float, reference: float) -> float:
    """``value`` in the precision of ``reference`` (float32 or float64)."""
    return value


@overload(fast_exp, inline="always")
def _fast_exp(x):  # noqa: ANN001, ANN202
    return _exp32 if x == types.float32 else _exp64


@overload(fast_log, inline="always")
def _fast_log(u):  # noqa: ANN001, ANN202
    return _log32 if u == types.float32 else _log64


@overload(fast_log1p, inline="always")
def _fast_log1p(x):  # noqa: ANN001, ANN202
    def impl(x):  # noqa: ANN001, ANN202
        one = like(1.0, x)
        u = one + x
        return fast_log(u) - ((u - one) - x) / u
    return impl


@overload(fast_pow, inline="always")
def _fast_pow(base, exponent):  # noqa: ANN001, ANN202
    return lambda base, exponent: fast_exp(exponent * fast_log(base))


@overload(like, inline="always")
def _like(value, reference):  # noqa: ANN001, ANN202
    if reference == types.float32:
        return lambda value, reference: np.float32(value)
    return lambda value, reference: np.float64(value)
