"""Growth: cohort-based von Bertalanffy length from hatching, and length–weight.

Length is carried per origin and age, ``L[..., origin, age]``, and advanced one year at a
time along each cohort, so a year's growth multiplier (temperature) changes every later
year of that cohort, and a release cohort keeps its release size.

The first season is lived, not assumed: a wild fish hatches at ``t_h`` (fraction of the year,
mid-June) at the hatch length ``L_h`` and grows along the von Bertalanffy path for the
``1 − t_h`` of the year it is alive, reaching :func:`first_season_length_cm` on 1 January,
when it joins the model as a recruit of age 1. The curve through ``(t_h, L_h)`` is
``L(a) = L∞ − (L∞ − L_h)·exp(−K·(a − t_h))`` (:func:`length_at_age_cm`); no t0 and no floor.

Symbols: L length (cm), L∞ asymptotic length (cm), K growth coefficient (1/yr),
g_y growth multiplier of year y (1 at reference conditions), W weight (g).

The engine's year step (:mod:`carpmodel.model.kernel`) computes these formulas in compiled code;
``tests/test_kernel.py`` checks it against the functions here, which stay the model's definition
(and serve the equilibrium, the observation models and the tests).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def length_at_age_cm(age_yr: ArrayLike, l_inf_cm: ArrayLike, k_per_yr: ArrayLike,
                     hatch_time_yr: ArrayLike, hatch_length_cm: ArrayLike) -> NDArray[np.float64]:
    """Length on 1 January at age ``a`` (years since the 1 January before hatching), cm.

    ``L(a) = L∞ − (L∞ − L_h)·exp(−K·(a − t_h))`` for ``a ≥ t_h``; ``L_h`` at earlier ages (an age-0
    slot on 1 January holds no wild fish yet).
    """
    l_inf = np.asarray(l_inf_cm)
    lived = np.maximum(np.asarray(age_yr) - np.asarray(hatch_time_yr), 0.0)
    return l_inf - (l_inf - np.asarray(hatch_length_cm)) * np.exp(-np.asarray(k_per_yr) * lived)


def first_season_length_cm(l_inf_cm: ArrayLike, k_per_yr: ArrayLike, hatch_time_yr: ArrayLike,
                           hatch_length_cm: ArrayLike, k_multiplier: ArrayLike = 1.0) -> NDArray[np.float64]:
    """Length of a wild fish on its first 1 January (age 1), cm: the hatch length grown for the
    ``1 − t_h`` of its first year, ``L∞ − (L∞ − L_h)·exp(−K·g_y·(1 − t_h))``."""
    l_inf = np.asarray(l_inf_cm)
    rate = np.asarray(k_per_yr) * np.asarray(k_multiplier) * (1.0 - np.asarray(hatch_time_yr))
    return l_inf - (l_inf - np.asarray(hatch_length_cm)) * np.exp(-rate)


def grow_one_year(
    length_cm: ArrayLike, l_inf_cm: ArrayLike, k_per_yr: ArrayLike, k_multiplier: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """Length one year later along the cohort, cm.

    ``L[a+1, y+1] = L[a, y] + (L∞ − L[a, y])·(1 − exp(−K·g_y))``; from ``L(a)`` of
    :func:`length_at_age_cm` it gives ``L(a + 1)`` exactly when ``g_y = 1``.
    """
    length_cm = np.asarray(length_cm)
    return length_cm + (np.asarray(l_inf_cm) - length_cm) * (
        1.0 - np.exp(-np.asarray(k_per_yr) * np.asarray(k_multiplier))
    )


def body_length_cm(length_state_cm: ArrayLike, hatch_length_cm: ArrayLike) -> NDArray[np.float64]:
    """Body length used for weight, mortality, maturity and selectivity, cm: the growth state,
    never below the hatch length (a guard: no fish in the model is younger than hatching)."""
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
