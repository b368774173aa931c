"""Mortality: size-dependent natural mortality, juvenile density dependence, fishery
selectivity, and F solved from catch.

Natural mortality is Lorenzen's allometric form ``M(L) = M_ref·(L/L_ref)^−c`` (Lorenzen 2000,
2005; ``c = 0`` gives constant M), integrated over the year along the cohort's von Bertalanffy
growth path ``L(t) = L∞ − (L∞ − L_0)·exp(−K·g·t)``, ``0 ≤ t ≤ 1``, by Gauss–Legendre
quadrature on :data:`QUADRATURE_NODES` points. Length along the path is floored at the hatch
length, so M is never evaluated at a non-positive length.

Juvenile density dependence adds ``M_dd = ln(1 + γ·J/J0)`` to every age ``0..w`` of the window
(``w`` = ``dd_window_end_age_yr``), ``J`` the abundance of wild plus hatchery fish in the window
at the start of the year and ``J0`` its unfished value; its survival factor is
``x = exp(−M_dd) = 1/(1 + γ·J/J0)``. A batch whose rows share one window takes the fast path
(an integer ``w``); rows with different windows take the per-row path (an array of ``w``).

Fishing follows the Baranov catch equation with a logistic selectivity in length.

The engine's year step (:mod:`carpmodel.model.kernel`) computes these formulas in compiled code;
``tests/test_kernel.py`` checks it against the functions here, which stay the model's definition
(and serve the equilibrium, the observation models and the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUADRATURE_NODES = 6
_nodes, _weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
#: quadrature abscissae on [0, 1] (fraction of the year) and their weights (sum to 1)
TIME_NODES = 0.5 * (_nodes + 1.0)
TIME_WEIGHTS = 0.5 * _weights

#: Newton iterations of the F-from-catch solver; the catch function is increasing and concave
#: in F, so Newton from F = 0 rises monotonically to the root (quadratic near it).
F_NEWTON_ITERATIONS = 30
#: the solver stops once no F changes by more than this fraction of itself in a step
F_TOLERANCE = 1e-14


def lorenzen_m_per_yr(
    length_start_cm: ArrayLike,
    *,
    l_inf_cm: ArrayLike,
    k_per_yr: ArrayLike,
    k_multiplier: ArrayLike = 1.0,
    m_ref_per_yr: ArrayLike,
    m_ref_length_cm: ArrayLike,
    lorenzen_c: ArrayLike,
    hatch_length_cm: ArrayLike,
    m_multiplier: ArrayLike = 1.0,
    nodes: int | None = None,
) -> NDArray[np.float64]:
    """Natural mortality integrated over one year of growth, 1/yr.

    ``M_year = ∫₀¹ M_ref·g_M·(max(L(t), L_hatch)/L_ref)^−c dt`` with
    ``L(t) = L∞ − (L∞ − L₀)·exp(−K·g_K·t)``. Shapes broadcast. ``c = 0`` is constant M;
    ``c = 1`` (the default, M ∝ 1/L) has the closed form of :func:`_inverse_length_integral`;
    other exponents use Gauss–Legendre quadrature (``nodes`` points, default
    :data:`QUADRATURE_NODES`; ``nodes`` given forces quadrature). In a batch that mixes
    exponents every element with ``c = 1`` keeps its closed form, so an element's M never
    depends on the others. The result keeps the inputs' floating type (float32 stays float32).
    """
    c = np.asarray(lorenzen_c)
    scale = np.asarray(m_ref_per_yr) * np.asarray(m_multiplier)
    rate = np.asarray(k_per_yr) * np.asarray(k_multiplier)
    dtype = np.result_type(np.asarray(length_start_cm), np.asarray(l_inf_cm), np.asarray(m_ref_per_yr))
    if nodes is None and np.all(c == 0.0):
        return np.broadcast_to(scale, np.broadcast_shapes(np.shape(length_start_cm), scale.shape,
                                                          c.shape)).astype(dtype)
    closed_form = None
    if nodes is None and np.any(c == 1.0):
        integral = _inverse_length_integral(np.asarray(length_start_cm), np.asarray(l_inf_cm), rate,
                                            np.asarray(hatch_length_cm))
        closed_form = scale * np.asarray(m_ref_length_cm) * integral
        if np.all(c == 1.0):
            return closed_form.astype(dtype, copy=False)
    t, w = (TIME_NODES, TIME_WEIGHTS) if nodes is None else _gauss_legendre(nodes)
    t, w = t.astype(dtype), w.astype(dtype)
    l0 = np.asarray(length_start_cm)[..., None]
    l_inf = np.asarray(l_inf_cm)[..., None]
    path = l_inf - (l_inf - l0) * np.exp(-rate[..., None] * t)
    path = np.maximum(path, np.asarray(hatch_length_cm)[..., None])
    relative = np.power(path / np.asarray(m_ref_length_cm)[..., None], -c[..., None])
    quadrature = scale * (relative @ w)
    # a batch mixing exponents: every element with c = 1 keeps its exact closed form
    out = quadrature if closed_form is None else np.where(c == 1.0, closed_form, quadrature)
    return out.astype(dtype, copy=False)


def _gauss_legendre(nodes: int) -> tuple[NDArray, NDArray]:
    x, w = np.polynomial.legendre.leggauss(nodes)
    return 0.5 * (x + 1.0), 0.5 * w


def _inverse_length_integral(l0: NDArray, l_inf: NDArray, rate: NDArray, hatch: NDArray) -> NDArray:
    """``∫₀¹ dt / max(L(t), L_h)`` along ``L(t) = L∞ − D·exp(−κt)``, ``D = L∞ − L₀``, 1/cm.

    From a start above the hatch length, ``∫₀¹ dt/L = ln(1 + L∞·(e^κ − 1)/L₀)/(κ·L∞)``
    (Lorenzen 2000, for M ∝ 1/L along von Bertalanffy growth). A path that starts below the
    hatch length (age-0 growth state when t0 > 0) has integrand ``1/L_h`` until it reaches
    ``L_h`` at ``t_a = ln(D/(L∞ − L_h))/κ``, then the same formula from ``L_h`` over the rest
    of the year.
    """
    if not np.any(l0 < hatch):
        return np.log1p(l_inf * np.expm1(rate) / l0) / (rate * l_inf)
    # t_a = 0 wherever the path starts at or above the hatch length: one formula serves both
    t_a = np.clip(np.log(np.maximum((l_inf - l0) / np.maximum(l_inf - hatch, 1e-12), 1.0)) / rate, 0.0, 1.0)
    rest = np.log1p(l_inf * np.expm1(rate * (1.0 - t_a)) / np.maximum(l0, hatch)) / (rate * l_inf)
    return t_a / hatch + rest


# --------------------------------------------------------------------------- juvenile density dependence


def window_mask(window_end_age_yr: ArrayLike, n_age: int) -> NDArray[np.bool_]:
    """``(*batch, 1, age)`` True at the ages ``0..w`` of the juvenile window of each row."""
    return np.arange(n_age, dtype=float) <= np.asarray(window_end_age_yr)[..., None, None]


def juvenile_abundance(numbers: NDArray, window_end_age_yr: int | NDArray) -> NDArray:
    """Fish of both origins in the juvenile window, ``J = Σ_origin Σ_{a ≤ w} N[origin, a]``.

    Parameters
    ----------
    numbers : (*batch, origin, age) fish
    window_end_age_yr : int or (*batch) int array
        ``w``, the last age of the window: an int for the whole batch (fast path: in the dtype of
        ``numbers``), or one per row (per-row path: float64).

    Returns
    -------
    (*batch) fish
    """
    n_age = numbers.shape[-1]
    if isinstance(window_end_age_yr, int | np.integer):
        in_window = (np.arange(n_age, dtype=float) <= window_end_age_yr).astype(numbers.dtype)
        by_origin = np.einsum("...a,...a->...", numbers, in_window)
        return by_origin[..., 0] + by_origin[..., 1]
    return np.sum(np.where(window_mask(window_end_age_yr, n_age), numbers, 0.0), axis=(-2, -1))


def dd_survival(juveniles: ArrayLike, juveniles0: ArrayLike, dd_strength: ArrayLike) -> NDArray:
    """Density-dependent survival factor of the window ages, ``x = 1/(1 + γ·J/J0)`` (0–1].

    ``juveniles`` J and ``juveniles0`` J0 (fish, or any common unit: only J/J0 matters),
    ``dd_strength`` γ (dimensionless); shapes broadcast. ``x = exp(−M_dd)``; at J = J0,
    ``x = 1/(1 + γ)``.
    """
    return 1.0 / (1.0 + np.asarray(dd_strength) * juveniles / juveniles0)


def juveniles_at_dd_survival(survival: ArrayLike, juveniles0: ArrayLike, dd_strength: ArrayLike) -> NDArray:
    """The abundance J at which the window's survival factor is ``x``: ``J = J0·(1/x − 1)/γ``
    (the inverse of :func:`dd_survival`, for γ > 0; fish, in the unit of ``juveniles0``)."""
    return juveniles0 * (1.0 / survival - 1.0) / dd_strength


def dd_mortality_per_yr(juveniles: ArrayLike, juveniles0: ArrayLike, dd_strength: ArrayLike,
                        window_end_age_yr: int | NDArray, *, n_age: int, dtype: Any = np.float64) -> NDArray:
    """Juvenile density-dependent mortality to add to ``M`` (1/yr), ``M_dd = ln(1 + γ·J/J0)``.

    Parameters
    ----------
    juveniles, juveniles0 : (*batch) fish
        J (:func:`juvenile_abundance`) and its unfished value J0.
    dd_strength : (*batch) or scalar
        γ, dimensionless.
    window_end_age_yr : int or (*batch) int array
        ``w``, as in :func:`juvenile_abundance`.
    n_age : int
        Number of ages (the per-row result's last axis).
    dtype : float dtype of the result (the engine's state precision)

    Returns
    -------
    ndarray
        Fast path (int ``w``): ``(*batch, 1, 1)``, ``log1p(γ·J/J0)``, to add to ages ``0..w`` of
        both origins. Per-row path: ``(*batch, 1, age)``, ``−ln x`` (x from :func:`dd_survival`)
        at each row's window ages and 0 elsewhere, to add to every age.
    """
    dtype = np.dtype(dtype)
    if isinstance(window_end_age_yr, int | np.integer):
        return np.log1p(np.asarray(dd_strength) * juveniles / juveniles0).astype(dtype)[..., None, None]
    log_survival = np.log(dd_survival(juveniles, juveniles0, dd_strength)).astype(dtype)[..., None, None]
    return -np.where(window_mask(window_end_age_yr, n_age), log_survival, dtype.type(0))


def window_survivors(survivors: NDArray, window_end_age_yr: int | NDArray) -> tuple[NDArray, NDArray]:
    """Fish that survive the last age ``w`` of the juvenile window (the recruits it lets through).

    Parameters
    ----------
    survivors : (*batch, origin, age) fish
        End-of-year survivors, origin axis (wild, hatchery).
    window_end_age_yr : int or (*batch) int array
        ``w``, as in :func:`juvenile_abundance`.

    Returns
    -------
    (both origins, wild) : two (*batch) arrays, fish
    """
    if isinstance(window_end_age_yr, int | np.integer):
        at_end = survivors[..., window_end_age_yr]
        return at_end[..., 0] + at_end[..., 1], survivors[..., 0, window_end_age_yr]
    ages = np.arange(survivors.shape[-1], dtype=float)
    leaving = np.where(np.asarray(window_end_age_yr)[..., None, None] == ages, survivors, 0.0)
    return np.sum(leaving, axis=(-2, -1)), np.sum(leaving[..., 0, :], axis=-1)


def logistic_selectivity(length_cm: ArrayLike, l50_cm: ArrayLike, slope_cm: ArrayLike) -> NDArray:
    """Fishery selectivity at length (0–1): ``1 / (1 + exp(−(L − L50)/s))``."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(length_cm) - l50_cm) / np.asarray(slope_cm)))


def baranov_catch_fraction(f_sel: NDArray, z: NDArray) -> NDArray:
    """Fraction of start-of-year numbers caught: ``F·s/Z·(1 − exp(−Z))`` (0 where F·s = 0)."""
    out = np.zeros(np.broadcast_shapes(f_sel.shape, z.shape), np.result_type(f_sel, z))
    return np.divide(f_sel, z, out=out, where=z > 0) * (1.0 - np.exp(-z))


def solve_f_from_catch(
    catch_t: NDArray,
    *,
    numbers: NDArray,
    weight_g: NDArray,
    selectivity: NDArray,
    m_per_yr: NDArray,
    f_max_per_yr: ArrayLike,
) -> tuple[NDArray, NDArray]:
    """Fishing mortality that takes the observed catch, and the catch it could not take.

    Solves ``Σ N·W·s·F/Z·(1 − exp(−Z)) = C`` with ``Z = M + F·s`` for F by Newton's method
    (each F until it moves by under :data:`F_TOLERANCE` of itself, at most
    :data:`F_NEWTON_ITERATIONS` steps),
    vectorised over leading axes. ``catch_t`` has the batch shape; the other arrays have
    ``(*batch, origin, age)``. F is capped at ``f_max_per_yr``; where even the cap cannot take
    the catch, the shortfall (t) is returned rather than silently absorbed. Zero catch gives F = 0.

    Returns ``(f_per_yr, shortfall_t)``, both of the batch shape.
    """
    catch_t = np.asarray(catch_t, dtype=float)
    f_max = np.broadcast_to(np.asarray(f_max_per_yr, dtype=float), catch_t.shape)
    vuln_t = numbers * weight_g * selectivity / 1e6
    f = np.zeros_like(catch_t)
    done = np.zeros(catch_t.shape, bool)   # a converged F stops moving: batch-independent results
    for _ in range(F_NEWTON_ITERATIONS):
        fb = f[..., None, None]
        z = m_per_yr + fb * selectivity
        survive = np.exp(-z)
        predicted = np.sum(vuln_t * fb / z * (1.0 - survive), axis=(-2, -1))
        slope = np.sum(vuln_t * (m_per_yr / z**2 * (1.0 - survive) + fb * selectivity / z * survive),
                       axis=(-2, -1))
        step = np.divide(catch_t - predicted, slope, out=np.zeros_like(f), where=slope > 0)
        f_next = np.where(done, f, np.clip(f + step, 0.0, f_max))
        done |= np.abs(f_next - f) <= F_TOLERANCE * f_next
        f = f_next
        if np.all(done):
            break
    fb = f[..., None, None]
    z = m_per_yr + fb * selectivity
    taken = np.sum(vuln_t * baranov_catch_fraction(fb * selectivity, z), axis=(-2, -1))
    shortfall = np.where(f >= f_max * (1 - 1e-12), np.maximum(catch_t - taken, 0.0), 0.0)
    f = np.where(catch_t > 0, f, 0.0)
    return f, shortfall
