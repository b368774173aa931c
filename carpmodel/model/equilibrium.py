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
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.model.kernel_cells import (
    EQUILIBRIUM_FIELDS,
    NODES,
    SCHEDULE_FIELDS,
    SCHEDULE_OUTPUTS,
    WEIGHTS,
    equilibrium_rows,
    per_recruit_rows,
    row_table,
)
from carpmodel.model.mortality import (
    dd_survival,
    window_mask,
)
from carpmodel.model.params import STRUCTURAL_FIELDS, Parameters
from carpmodel.model.recruitment import (
    compensation_ratio,
    eggs_per_tonne,
    steepness,
    stock_recruit_coefficients,
)
from carpmodel.model.row_threads import row_ranges, run_parts

__all__ = [
    "ReferencePoints",
    "age_dot",
    "depleted_state",
    "effective_compensation_ratio",
    "equilibrium_state",
    "expand",
    "per_recruit_schedule",
    "reference_points",
    "wild_equilibrium",
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
    (:func:`carpmodel.model.kernel_cells.per_recruit_rows`); a large batch's rows shared among
    threads (:mod:`carpmodel.model.row_threads`).
    """
    f = np.asarray(f_per_yr, dtype=float)
    batch = np.broadcast_shapes(params.batch_shape, f.shape)   # every field's batch, as the callers expect
    table = row_table([f if name == "f_per_yr" else getattr(params, name) for name in SCHEDULE_FIELDS], batch)
    by_row = np.empty((len(SCHEDULE_OUTPUTS), table.shape[0], params.n_age))

    def rows(first: int, stop: int) -> None:
        out = np.empty((len(SCHEDULE_OUTPUTS), params.n_age, stop - first))
        per_recruit_rows(np.ascontiguousarray(table[first:stop].T),    # rows innermost
                         PLUS_GROUP_PASSES, PLUS_GROUP_TOLERANCE_CM, NODES, WEIGHTS, out)
        by_row[:, first:stop] = np.moveaxis(out, 1, -1)             # (output, row, age)

    run_parts([partial(rows, *bounds) for bounds in row_ranges(table.shape[0])])
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
    """1 January numbers and length state in equilibrium under a constant F, each
    ``(*batch, origin, age)``: :func:`wild_equilibrium`'s wild fish, and no hatchery fish."""
    wild, length_state = wild_equilibrium(params, f_per_yr, reference=reference)
    numbers = np.concatenate([wild, np.zeros_like(wild)], axis=-2)
    length = np.concatenate([length_state, length_state], axis=-2)
    return numbers, length if length.shape == numbers.shape else np.broadcast_to(length, numbers.shape).copy()


def wild_equilibrium(params: Parameters, f_per_yr: Any = 0.0, *,
                     reference: ReferencePoints | None = None) -> tuple[NDArray, NDArray]:
    """1 January numbers and length state of wild fish in equilibrium under a constant F.

    Wild fish only (no releases). Solves for the density-dependent survival factor ``x`` of
    the juvenile window on ``(0, 1]`` (bisection, then regula falsi): recruitment implied by the
    window (``J = J0·(1/x − 1)/γ`` juveniles) must equal the stock–recruit equilibrium at the
    eggs per recruit that ``x`` and F imply (each row on its own, in compiled code:
    :func:`carpmodel.model.kernel_cells.equilibrium_rows`, a large batch on several threads; it stops at
    ``|relative excess| ≤ 1e-14`` or a bracket of 4e-16). Returns ``(numbers, length_state_cm)``,
    shapes ``(*batch, 1, age)`` and ``(*batch of params and f_per_yr, 1, age)``; a stock that
    cannot persist under F has no fish.
    ``reference`` saves recomputing :func:`reference_points` when the caller has them.
    """
    ref = reference_points(params) if reference is None else reference
    length_state, w, mat, survival, _, _ = per_recruit_schedule(params, f_per_yr)
    eggs_per_fish = w * mat * eggs_per_tonne(params.female_fraction, params.fecundity_eggs_per_g)[
        ..., None, None] / 1e6
    values = {"dd_strength": params.dd_strength, "dd_window_end_age_yr": params.dd_window_end_age_yr,
              "juveniles0": ref.juveniles0, "alpha": ref.alpha, "beta": ref.beta}
    columns = [np.asarray(values[name], dtype=float) for name in EQUILIBRIUM_FIELDS]
    batch = np.broadcast_shapes(survival.shape[:-2], eggs_per_fish.shape[:-2], *(c.shape for c in columns))
    n_rows, n_age = int(np.prod(batch)), params.n_age
    table = row_table(columns, batch)
    by_row = [np.ascontiguousarray(np.broadcast_to(a[..., 0, :], batch + (n_age,)).reshape(n_rows, n_age))
              for a in (survival, eggs_per_fish)]
    wild = np.empty((n_rows, n_age))
    ricker = params.recruitment == "ricker"
    run_parts([partial(equilibrium_rows, *(a[first:stop] for a in by_row), table[first:stop], ricker,
                       EQUILIBRIUM_BISECTIONS, EQUILIBRIUM_ITERATIONS, wild[first:stop])
               for first, stop in row_ranges(n_rows)])
    return wild.reshape(batch + (1, n_age)), length_state


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
