"""Growth: cohort-based von Bertalanffy length, the hatch-length floor, and length–weight.

Length is carried per origin and age, ``L[..., origin, age]``, and advanced one year at a
time along each cohort, so a year's growth multiplier (temperature) changes every later
year of that cohort, and a release cohort keeps its release size.

Symbols: L length (cm), L∞ asymptotic length (cm), K growth coefficient (1/yr),
g_y growth multiplier of year y (1 at reference conditions), W weight (g).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def von_bertalanffy_length_cm(
    age_yr: ArrayLike, l_inf_cm: ArrayLike, k_per_yr: ArrayLike, t0_yr: ArrayLike
) -> NDArray[np.float64]:
    """Length at age on the von Bertalanffy curve, cm.

    ``L(a) = L∞·(1 − exp(−K·(a − t0)))``. Negative where ``a < t0``: callers that need a body
    length use :func:`body_length_cm`, which applies the hatch-length floor.
    """
    return np.asarray(l_inf_cm) * (1.0 - np.exp(-np.asarray(k_per_yr) * (np.asarray(age_yr) - t0_yr)))


def grow_one_year(
    length_cm: ArrayLike, l_inf_cm: ArrayLike, k_per_yr: ArrayLike, k_multiplier: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """Length one year later along the cohort, cm.

    ``L[a+1, y+1] = L[a, y] + (L∞ − L[a, y])·(1 − exp(−K·g_y))``. Starting from the curve's own
    (possibly negative) age-0 value this reproduces :func:`von_bertalanffy_length_cm` exactly
    when ``g_y = 1``.
    """
    length_cm = np.asarray(length_cm)
    return length_cm + (np.asarray(l_inf_cm) - length_cm) * (
        1.0 - np.exp(-np.asarray(k_per_yr) * np.asarray(k_multiplier))
    )


def body_length_cm(length_state_cm: ArrayLike, hatch_length_cm: ArrayLike) -> NDArray[np.float64]:
    """Body length used for weight, mortality, maturity and selectivity, cm.

    The growth state of age-0 fish is the von Bertalanffy extrapolation, which is negative when
    ``t0 > 0``; every biological use of length goes through this floor at the hatch length,
    so no rate is ever evaluated at a non-positive length.
    """
    return np.maximum(length_state_cm, hatch_length_cm)


def weight_g(length_cm: ArrayLike, lw_a: ArrayLike, lw_b: ArrayLike) -> NDArray[np.float64]:
    """Weight at length, g: ``W = a·L^b`` (b = 3 exactly is computed as L·L·L, which is faster)."""
    length_cm = np.asarray(length_cm)
    if np.all(np.asarray(lw_b) == 3.0):
        return np.asarray(lw_a) * (length_cm * length_cm * length_cm)
    return np.asarray(lw_a) * np.power(length_cm, lw_b)


def length_at_weight_cm(weight_g: ArrayLike, lw_a: ArrayLike, lw_b: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`weight_g`: the length of a fish of the given weight, cm."""
    return np.power(np.asarray(weight_g) / lw_a, 1.0 / np.asarray(lw_b))
