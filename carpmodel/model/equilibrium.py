"""Unfished reference points, equilibrium states and the depleted start of a fit.

Wild recruits enter at age 1 (:mod:`carpmodel.model.recruitment`), so per-recruit schedules
start there: ``n[0] = 0``, ``n[1] = 1``, ``n[a + 1] = n[a]·s[a]`` with the plus group summed,
``s[a] = exp(−M(L_a) − F·sel(L_a))·x`` and ``x`` the density-dependent survival factor at the
ages of the juvenile window. Lengths on 1 January follow the curve from hatching
(:func:`carpmodel.model.growth.length_at_age_cm`); the plus group's length is a fixed point.

How the stock–recruit curve and the window share compensation: for a one-age window (w = 1)
the survivors of the window follow a Beverton–Holt curve of eggs whose compensation ratio is
``CR_SR·(1 + γ)`` (a composition of two Beverton–Holt maps is Beverton–Holt; their slopes at
the origin multiply). So γ moves compensation from the egg-to-recruit stage, before any release
can interact, into the window, which decides whether releases into the window add fish or
replace wild ones. For longer windows the equilibrium is solved numerically
(:func:`equilibrium_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.model.kernel_cells import (
    NODES,
    SCHEDULE_FIELDS,
    SCHEDULE_OUTPUTS,
    WEIGHTS,
    per_recruit_rows,
)
from carpmodel.model.mortality import (
    dd_survival,
    juveniles_at_dd_survival,
    window_mask,
)
from carpmodel.model.params import STRUCTURAL_FIELDS, Parameters
from carpmodel.model.recruitment import (
    compensation_ratio,
    eggs_per_tonne,
    equilibrium_recruits,
    steepness,
    stock_recruit_coefficients,
)

__all__ = [
    "ReferencePoints",
    "age_dot",
    "depleted_state",
    "effective_compensation_ratio",
    "equilibrium_state",
    "expand",
    "per_recruit_schedule",
    "reference_points",
]

#: bisection steps of the equilibrium solver before regula falsi takes over (bracket 1/256)
EQUILIBRIUM_BISECTIONS = 8
#: most Illinois regula-falsi steps of the equilibrium solver (it stops at machine precision)
EQUILIBRIUM_ITERATIONS = 60
#: fixed-point passes for the plus-group length (its mortality depends on its length weakly)
PLUS_GROUP_PASSES = 8
#: the plus-group fixed point stops once its length moves by less than this, cm
PLUS_GROUP_TOLERANCE_CM = 1e-12


@dataclass(frozen=True)
class ReferencePoints:
    """Unfished quantities that scale the stock–recruit curve and the density dependence.

    All arrays have the parameters' batch shape.
    """

    ssb0_t: NDArray              # unfished spawning biomass, t
    spr0_t: NDArray              # unfished spawning biomass per recruit, t/fish
    eggs0: NDArray               # unfished egg production, eggs/yr
    eggs_per_recruit0: NDArray   # unfished lifetime eggs per recruit φ0, eggs/fish
    juveniles0: NDArray          # unfished abundance inside the density-dependence window, fish
    biomass0_t: NDArray          # unfished end-of-year biomass the survey sees (q = 1), t
    start_biomass0_t: NDArray    # unfished 1 January biomass of ages >= 1, t
    alpha: NDArray               # egg -> recruit survival at low density, recruits/egg
    beta: NDArray                # stock-recruit density coefficient, 1/egg
    steepness: NDArray           # derived steepness R(0.2·E0)/R0
    compensation_ratio: NDArray  # a·φ0 (> 1 for a stock that persists unfished)


def age_dot(values: NDArray, weights: NDArray) -> NDArray:
    """``Σ_a values[..., a]·weights[..., a]`` over the last (age) axis in one pass (``einsum``)."""
    return np.einsum("...a,...a->...", values, weights)


def expand(params: Parameters, dtype: Any = np.float64) -> dict[str, NDArray]:
    """Batched fields with two trailing axes added, ready to broadcast with (origin, age)."""
    return {name: np.asarray(value, dtype=dtype)[..., None, None]
            for name, value in vars(params).items() if name not in STRUCTURAL_FIELDS}


def per_recruit_schedule(params: Parameters, f_per_yr: Any) -> tuple[NDArray, ...]:
    """Per-recruit schedule of wild fish under a constant F, shapes ``(*batch, 1, age)``:
    ``(length_state, weight, maturity, survival without density dependence, end-of-year weight,
    end-of-year survey selectivity)``, on 1 January (end-of-year: after a year's growth).

    Lengths follow :func:`carpmodel.model.growth.length_at_age_cm`; survival is
    ``exp(−M(L) − F·sel(L))`` with M of :func:`carpmodel.model.mortality.lorenzen_m_per_yr`. The
    plus group's length is a fixed point (its survival depends on its length weakly): iterated at
    most :data:`PLUS_GROUP_PASSES` times, each row stopping once it moves by less than
    :data:`PLUS_GROUP_TOLERANCE_CM`. Computed in compiled code, rows in SIMD lanes
    (:func:`carpmodel.model.kernel_cells.per_recruit_rows`).
    """
    f = np.asarray(f_per_yr, dtype=float)
    values = [f if name == "f_per_yr" else np.asarray(getattr(params, name), dtype=float)
              for name in SCHEDULE_FIELDS]
    batch = np.broadcast_shapes(params.batch_shape, f.shape)   # every field's batch, as the callers expect
    table = np.empty((len(values), int(np.prod(batch))))
    columns = table.reshape(len(values), *batch)
    for column, value in enumerate(values):
        columns[column] = value
    out = np.empty((len(SCHEDULE_OUTPUTS), params.n_age, table.shape[1]))
    per_recruit_rows(table, PLUS_GROUP_PASSES, PLUS_GROUP_TOLERANCE_CM, NODES, WEIGHTS, out)
    by_row = np.ascontiguousarray(np.moveaxis(out, 1, -1))     # (output, row, age)
    return tuple(by_row.reshape(len(SCHEDULE_OUTPUTS), *batch, 1, params.n_age))


def _numbers_per_recruit(survival: NDArray, window: NDArray, x: NDArray) -> NDArray:
    """1 January numbers at age per recruit (recruits enter at age 1); ``x`` multiplies survival
    at the window ages; plus group summed."""
    s = survival * np.where(window, x, 1.0)
    lead = np.cumprod(s[..., 1:-1], axis=-1)
    n = np.concatenate([np.zeros_like(lead[..., :1]), np.ones_like(lead[..., :1]), lead], axis=-1)
    n[..., -1] = n[..., -1] / (1.0 - s[..., -1])
    return n


def reference_points(params: Parameters, *, per_recruit: ReferencePoints | None = None) -> ReferencePoints:
    """Unfished egg production, spawning, juvenile and survey biomass, and the S–R coefficients.

    ``per_recruit``: this function's result for the same parameters at ``r0 = 1``, when the
    caller has it (a fit computes it to turn B0 into R0); the per-recruit schedule is then not
    recomputed, only scaled by ``params.r0`` (the same values bit for bit).
    """
    if per_recruit is None:
        spr0, juveniles_per_recruit, bpr0, start_bpr0 = _unfished_per_recruit(params)
    else:
        spr0, juveniles_per_recruit = per_recruit.spr0_t, per_recruit.juveniles0
        bpr0, start_bpr0 = per_recruit.biomass0_t, per_recruit.start_biomass0_t
    r0 = np.asarray(params.r0)
    eggs_per_recruit = spr0 * eggs_per_tonne(params.female_fraction, params.fecundity_eggs_per_g)
    eggs0 = r0 * eggs_per_recruit
    alpha, beta = stock_recruit_coefficients(params.max_egg_survival, r0, eggs0, params.recruitment)
    return ReferencePoints(
        ssb0_t=r0 * spr0, spr0_t=spr0, eggs0=eggs0, eggs_per_recruit0=eggs_per_recruit,
        juveniles0=r0 * juveniles_per_recruit, biomass0_t=r0 * bpr0, start_biomass0_t=r0 * start_bpr0,
        alpha=np.broadcast_to(alpha, eggs0.shape), beta=beta,
        steepness=steepness(params.max_egg_survival, eggs_per_recruit, params.recruitment),
        compensation_ratio=compensation_ratio(params.max_egg_survival, eggs_per_recruit))


def _unfished_per_recruit(params: Parameters) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Unfished spawning biomass (t), window juveniles (fish), end-of-year survey biomass (t)
    and 1 January biomass of ages >= 1 (t), each per recruit."""
    length_state, w, mat, survival, w_end, survey = per_recruit_schedule(params, 0.0)
    window = window_mask(params.dd_window_end_age_yr, params.n_age)
    gamma = np.asarray(params.dd_strength)[..., None, None]
    x0 = dd_survival(1.0, 1.0, gamma)      # at J = J0: 1/(1 + γ)
    n = _numbers_per_recruit(survival, window, x0)
    spr0 = np.sum(n * w * mat, axis=(-2, -1)) / 1e6
    juveniles_per_recruit = np.sum(np.where(window, n, 0.0), axis=(-2, -1))
    survivors = n * survival * np.where(window, x0, 1.0)
    bpr0 = np.sum(survivors * w_end * survey, axis=(-2, -1)) / 1e6
    start_bpr0 = np.sum(n * w, axis=(-2, -1)) / 1e6
    return spr0, juveniles_per_recruit, bpr0, start_bpr0


def equilibrium_state(params: Parameters, f_per_yr: Any = 0.0, *,
                      reference: ReferencePoints | None = None) -> tuple[NDArray, NDArray]:
    """1 January numbers and length state in equilibrium under a constant F.

    Wild fish only (no releases). Solves for the density-dependent survival factor ``x`` of
    the juvenile window on ``(0, 1]`` (bisection, then regula falsi): recruitment implied by the
    window (``J = J0·(1/x − 1)/γ`` juveniles) must equal the stock–recruit equilibrium at the
    eggs per recruit that ``x`` and F imply. Returns ``(numbers, length_state_cm)``, each
    ``(*batch, origin, age)``; a stock that cannot persist under F returns zeros.
    ``reference`` saves recomputing :func:`reference_points` when the caller has them.
    """
    ref = reference_points(params) if reference is None else reference
    length_state, w, mat, survival, _, _ = per_recruit_schedule(params, f_per_yr)
    window = window_mask(params.dd_window_end_age_yr, params.n_age)
    gamma = np.asarray(params.dd_strength)[..., None, None]
    j0 = ref.juveniles0[..., None, None]
    alpha = ref.alpha[..., None, None]
    beta = ref.beta[..., None, None]
    eggs_per_fish = w * mat * eggs_per_tonne(params.female_fraction, params.fecundity_eggs_per_g)[
        ..., None, None] / 1e6
    safe_gamma = np.where(gamma > 0, gamma, 1.0)
    in_window = np.where(window, 1.0, 0.0)

    def recruits_both_ways(x: NDArray) -> tuple[NDArray, NDArray]:
        """(stock-recruit equilibrium, recruitment the window's density implies) at factor x."""
        n = _numbers_per_recruit(survival, window, x)
        phi = age_dot(n, eggs_per_fish)[..., None]
        from_sr = equilibrium_recruits(phi, alpha, beta, params.recruitment)
        per_recruit = age_dot(n, in_window)[..., None]
        from_window = juveniles_at_dd_survival(x, j0, safe_gamma) / per_recruit
        return from_sr, from_window

    def excess(x: NDArray) -> NDArray:
        """Relative excess of the window's recruitment over the stock–recruit one (decreasing)."""
        from_sr, from_window = recruits_both_ways(x)
        total = from_window + from_sr
        return np.divide(from_window - from_sr, total, out=np.zeros_like(total), where=total > 0)

    shape = np.broadcast_shapes(survival.shape[:-1] + (1,), gamma.shape)
    x = np.where(gamma > 0, _decreasing_root(excess, np.full(shape, 1e-12), np.ones(shape)), 1.0)
    recruits = recruits_both_ways(x)[0]
    wild = recruits * _numbers_per_recruit(survival, window, x)
    numbers = np.concatenate([wild, np.zeros_like(wild)], axis=-2)
    length = np.concatenate([length_state, length_state], axis=-2)
    return numbers, np.broadcast_to(length, numbers.shape).copy()


def depleted_state(params: Parameters, depletion: Any, *, age_deviations: Any = None,
                   reference: ReferencePoints | None = None) -> tuple[NDArray, NDArray]:
    """1 January numbers and lengths of a stock at ``depletion`` × its unfished biomass of ages
    ≥ 1, shaped by the history that brought it there.

    The age structure is the per-recruit survival under ``params.initial_f_per_yr`` (no density
    dependence: a depleted stock's juveniles are far below J0), times ``exp(ε_a)`` at ages
    ``1..k`` for ``age_deviations (*batch, k)`` (year classes stronger or weaker than average;
    the caller penalises them like recruitment deviations), scaled so that the biomass of ages
    ≥ 1 is ``depletion · R0 · Σ n0_a·W_a``. The start need not be an equilibrium: under the F of
    its first year it may grow or decline. Wild fish only; shapes ``(*batch, origin, age)``.
    """
    ref = reference_points(params) if reference is None else reference
    length_state, w, _, survival, _, _ = per_recruit_schedule(params, params.initial_f_per_yr)
    window = window_mask(params.dd_window_end_age_yr, params.n_age)
    shape = _numbers_per_recruit(survival, window, np.ones(()))
    if age_deviations is not None:
        devs = np.asarray(age_deviations, dtype=float)
        k = devs.shape[-1]
        factor = np.ones(devs.shape[:-1] + (1, params.n_age))
        factor[..., 0, 1:k + 1] = np.exp(devs)
        shape = shape * factor
    total = np.asarray(depletion, dtype=float) * ref.start_biomass0_t
    scale = total[..., None, None] / (np.sum(shape * w, axis=(-2, -1), keepdims=True) / 1e6)
    wild = scale * shape
    numbers = np.concatenate([wild, np.zeros_like(wild)], axis=-2)
    length = np.broadcast_to(length_state, wild.shape)
    return numbers, np.concatenate([length, length], axis=-2).copy()


def effective_compensation_ratio(reference: ReferencePoints, dd_strength: Any) -> NDArray:
    """Compensation of the egg-to-recruit curve and a one-age window combined,
    ``CR_SR·(1 + γ)`` (exact for a window of one age; see the module notes)."""
    return reference.compensation_ratio * (1.0 + np.asarray(dd_strength))


def _decreasing_root(g: Any, lo: NDArray, hi: NDArray) -> NDArray:
    """Root of a decreasing function with ``g(lo) > 0 ≥ g(hi)``, elementwise; ``|g| ≤ 1``.

    :data:`EQUILIBRIUM_BISECTIONS` bisection steps narrow the bracket to 1/256 of its width, then
    Illinois-modified regula falsi (superlinear, and the bracket is kept) runs on each element
    until its ``|g| ≤ 1e-14`` or its bracket is narrower than 4e-16 of its upper end (at most
    :data:`EQUILIBRIUM_ITERATIONS` steps); converged elements stop, so the result of an element
    never depends on the others in the batch.
    """
    for _ in range(EQUILIBRIUM_BISECTIONS):
        mid = 0.5 * (lo + hi)
        above = g(mid) > 0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    g_lo, g_hi = g(lo), g(hi)
    best, g_best = np.where(g_lo < -g_hi, lo, hi), np.minimum(g_lo, -g_hi)
    last = np.zeros(lo.shape)
    for _ in range(EQUILIBRIUM_ITERATIONS):
        # a converged element stops moving, so its root does not depend on the rest of the batch
        active = (g_best > 1e-14) & (hi - lo > 4e-16 * hi)
        if not np.any(active):
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            x = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        x = np.where(np.isfinite(x) & (x > lo) & (x < hi), x, 0.5 * (lo + hi))
        g_x = g(x)
        better = active & (np.abs(g_x) < g_best)
        best, g_best = np.where(better, x, best), np.where(better, np.abs(g_x), g_best)
        above = g_x > 0
        # Illinois: an end kept twice in a row has its value halved, so both ends move
        g_lo = np.where(active & ~above & (last < 0), 0.5 * g_lo, g_lo)
        g_hi = np.where(active & above & (last > 0), 0.5 * g_hi, g_hi)
        move_lo, move_hi = active & above, active & ~above
        lo, g_lo = np.where(move_lo, x, lo), np.where(move_lo, g_x, g_lo)
        hi, g_hi = np.where(move_hi, x, hi), np.where(move_hi, g_x, g_hi)
        last = np.where(active, np.where(above, 1.0, -1.0), last)
    return np.where(np.isnan(g_best), np.nan, best)
