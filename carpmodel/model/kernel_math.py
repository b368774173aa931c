"""exp, log, log1p and pow in plain float64 arithmetic, for the compiled engine.

numba calls the C library for ``math.exp`` and ``math.log``, and a loop with a library call is
not vectorised; these versions are additions, multiplications, one division and bit moves, so
LLVM turns a loop over a block of batch rows into SIMD instructions. They are also the same
arithmetic in every lane: a row's result does not depend on whether its loop ran as SIMD or
one row at a time (no fast-math, so no reassociation or fused multiply-adds).

Accuracy (tests/test_kernel.py): within 2 ulp of numpy's ``exp``/``log``/``log1p`` on the
ranges the engine uses. Inputs: ``exp`` clamps to [−708, 709] (no infinities, no subnormals);
``log`` and ``log1p`` expect finite positive arguments (``log1p``: ``x > −1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["fast_exp", "fast_log", "fast_log1p", "fast_pow"]

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_SQRT2 = 1.4142135623730951
#: 1/k!, k = 0..14: the Taylor series of e^r
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(15))
#: 1/(2k + 1), k = 0..11: the series of atanh(s)/s in s²
_ATANH_SERIES = tuple(1.0 / (2 * k + 1) for k in range(12))


@intrinsic
def _as_float(typingctx, bits):  # noqa: ANN001, ANN202
    """The float64 whose IEEE bits are the int64 ``bits``."""
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@intrinsic
def _as_bits(typingctx, value):  # noqa: ANN001, ANN202
    """The IEEE bits of the float64 ``value`` as an int64."""
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@njit(cache=True, inline="always", error_model="numpy")
def fast_exp(x: float) -> float:
    """``e^x``: ``x = k·ln 2 + r`` (Cody–Waite), Taylor to ``r^14`` on ``|r| ≤ ln 2 / 2``
    (truncation < 1e-18), times ``2^k`` built from its bits."""
    x = min(max(x, -708.0), 709.0)
    k = math.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _EXP_TAYLOR[14]
    p = p * r + _EXP_TAYLOR[13]
    p = p * r + _EXP_TAYLOR[12]
    p = p * r + _EXP_TAYLOR[11]
    p = p * r + _EXP_TAYLOR[10]
    p = p * r + _EXP_TAYLOR[9]
    p = p * r + _EXP_TAYLOR[8]
    p = p * r + _EXP_TAYLOR[7]
    p = p * r + _EXP_TAYLOR[6]
    p = p * r + _EXP_TAYLOR[5]
    p = p * r + _EXP_TAYLOR[4]
    p = p * r + _EXP_TAYLOR[3]
    p = p * r + _EXP_TAYLOR[2]
    p = p * r + _EXP_TAYLOR[1]
    p = p * r + _EXP_TAYLOR[0]
    return p * _as_float((np.int64(k) + 1023) << 52)


@njit(cache=True, inline="always", error_model="numpy")
def fast_log(u: float) -> float:
    """``ln u`` for finite ``u > 0``: ``u = 2^e·m`` with ``m ∈ [1/√2, √2)``, then
    ``ln m = 2·atanh(s)``, ``s = (m − 1)/(m + 1)``, by its series to ``s^23`` (``|s| ≤ 0.172``)."""
    e = (_as_bits(u * _SQRT2) >> 52) - 1023
    m = _as_float(_as_bits(u) - (e << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    t = _ATANH_SERIES[11]
    t = t * s2 + _ATANH_SERIES[10]
    t = t * s2 + _ATANH_SERIES[9]
    t = t * s2 + _ATANH_SERIES[8]
    t = t * s2 + _ATANH_SERIES[7]
    t = t * s2 + _ATANH_SERIES[6]
    t = t * s2 + _ATANH_SERIES[5]
    t = t * s2 + _ATANH_SERIES[4]
    t = t * s2 + _ATANH_SERIES[3]
    t = t * s2 + _ATANH_SERIES[2]
    t = t * s2 + _ATANH_SERIES[1]
    t = t * s2
    exponent = np.float64(e)
    return exponent * _LN2_HI + (exponent * _LN2_LO + (2.0 * s + 2.0 * s * t))


@njit(cache=True, inline="always", error_model="numpy")
def fast_log1p(x: float) -> float:
    """``ln(1 + x)`` for ``x > −1``, with the rounding of ``1 + x`` corrected to first order."""
    u = 1.0 + x
    return fast_log(u) - ((u - 1.0) - x) / u


@njit(cache=True, inline="always", error_model="numpy")
def fast_pow(base: float, exponent: float) -> float:
    """``base^exponent`` for finite ``base > 0``."""
    return fast_exp(exponent * fast_log(base))


