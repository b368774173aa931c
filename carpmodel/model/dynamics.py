"""The age-structured engine: one pure numpy recursion over years.

Arrays are ``(*batch, origin, age)`` with ``origin = (wild, hatchery)`` and ages ``0..A``
(``A`` a plus group). Any number of leading batch axes run at once (a fit, a batch of
gradient perturbations, projection draws × strategies × scenarios); the loop over years is
the only Python loop.

Order of events within year y (annual step, birthday on 1 January):

1. spawning (spring): spawning output ``S = Σ (N_w + ρ·N_h)·W·mat`` from start-of-year numbers,
   ρ the relative reproductive success of hatchery-origin spawners;
2. recruitment: wild age-0 ``R = f(S)·g_R·exp(ε)`` (f Beverton–Holt or Ricker in steepness
   form, g_R a forcing multiplier, ε the log deviation passed in by the caller);
3. releases (summer): ``n·s_rel`` hatchery fish enter at their age and release length
   (numbers-weighted mean length with hatchery fish already at that age;
   :func:`carpmodel.model.stocking.add_releases`, whose module describes the release biology);
4. mortality through the year: ``Z = M(L) + M_dd + F·sel(L)`` where ``M(L)`` is Lorenzen
   mortality integrated along the growth path and ``M_dd = ln(1 + γ·J/J0)`` is juvenile
   density-dependent mortality on every age ``a ≤ w`` of the window, driven by the total
   abundance ``J`` of wild plus hatchery fish in the window (``J0`` its unfished value;
   :func:`carpmodel.model.mortality.dd_mortality_per_yr`);
   catch follows the Baranov equation, with F solved from the observed catch;
5. growth along each cohort (von Bertalanffy, K times a forcing multiplier) and ageing,
   the plus group keeping a numbers-weighted mean length.

How steepness and the window share compensation: for a one-age window (w = 0) the
survivors of the window follow a Beverton–Holt curve of spawning output whose Goodyear
compensation ratio is ``CR = CR_SR·(1 + γ)``, with ``CR_SR = 4h/(1 − h)`` that of the
stock–recruit relation (a composition of two Beverton–Holt maps is Beverton–Holt; their
slopes at the origin multiply). So γ moves compensation from "before any release can
interact" to "inside the window", which is what decides whether releases into the window add
fish or replace wild ones; :func:`effective_steepness` gives the combined steepness. For
longer windows the equilibrium is solved numerically (:func:`equilibrium_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from carpmodel.model.growth import body_length_cm, grow_one_year, von_bertalanffy_length_cm, weight_g
from carpmodel.model.maturity import maturity_at_length
from carpmodel.model.mortality import (
    baranov_catch_fraction,
    dd_mortality_per_yr,
    dd_survival,
    juvenile_abundance,
    juveniles_at_dd_survival,
    logistic_selectivity,
    lorenzen_m_per_yr,
    solve_f_from_catch,
    window_mask,
    window_survivors,
)
from carpmodel.model.params import STRUCTURAL_FIELDS, Parameters
from carpmodel.model.recruitment import (
    equilibrium_recruits,
    recruits_from_spawners,
    stock_recruit_coefficients,
)
from carpmodel.model.stocking import add_releases

WILD, HATCHERY = 0, 1
ORIGINS = ("wild", "hatchery")
#: bisection steps of the equilibrium solver before regula falsi takes over (bracket 1/256)
EQUILIBRIUM_BISECTIONS = 8
#: most Illinois regula-falsi steps of the equilibrium solver (it stops at machine precision)
EQUILIBRIUM_ITERATIONS = 60
#: fixed-point passes for the plus-group length (its mortality depends on its length weakly)
PLUS_GROUP_PASSES = 8
#: the plus-group fixed point stops once its length moves by less than this, cm
PLUS_GROUP_TOLERANCE_CM = 1e-12


@dataclass(frozen=True)
class ProcessMultipliers:
    """Per-year multipliers of the processes that forcing can act on (1 = reference).

    Each is a scalar or an array ``(*batch, year)``: ``growth_k`` multiplies K,
    ``natural_mortality`` multiplies M, ``recruitment`` multiplies expected recruits,
    ``maturity_l50`` multiplies the length at 50 % maturity.
    """

    growth_k: Any = 1.0
    natural_mortality: Any = 1.0
    recruitment: Any = 1.0
    maturity_l50: Any = 1.0

    def in_year(self, name: str, year_index: int) -> NDArray:
        value = np.asarray(getattr(self, name), dtype=float)
        return value if value.ndim == 0 else value[..., year_index]

    def batch_shapes(self) -> list[tuple[int, ...]]:
        out = []
        for name in ("growth_k", "natural_mortality", "recruitment", "maturity_l50"):
            value = np.asarray(getattr(self, name))
            if value.ndim:
                out.append(value.shape[:-1])
        return out


@dataclass(frozen=True)
class YearControl:
    """What a management policy decides for one year (see :class:`Policy`).

    ``release_fish`` and ``release_length_cm`` are ``(*batch, age)`` (fish before acute survival,
    cm), added to any ``release_fish`` given to :func:`simulate`; ``f_per_yr`` is ``(*batch)``
    and replaces the catch or F given to :func:`simulate` for that year.
    """

    release_fish: Any = None
    release_length_cm: Any = None
    f_per_yr: Any = None


class Policy(Protocol):
    """A rule evaluated inside the year loop from what a manager could know.

    Called at the start of year index ``y`` with the survey estimate of the previous year's
    biomass (t, shape ``(*batch)``): true end-of-year biomass × q × exp(survey error), so a rule
    never reads the true biomass and acts with a one-year lag.
    """

    def __call__(self, year_index: int, survey_estimate_t: NDArray) -> YearControl: ...


@dataclass(frozen=True)
class ReferencePoints:
    """Unfished quantities that scale the stock–recruit curve and the density dependence.

    All arrays have the parameters' batch shape.
    """

    ssb0_t: NDArray              # unfished spawning biomass, t
    spr0_t: NDArray              # unfished spawning biomass per recruit, t/fish
    juveniles0: NDArray          # unfished abundance inside the density-dependence window, fish
    biomass0_t: NDArray          # unfished end-of-year biomass of the survey ages, t
    alpha: NDArray               # stock-recruit slope coefficient, fish/t
    beta: NDArray                # stock-recruit density coefficient, 1/t


@dataclass(frozen=True)
class PopulationState:
    """What :func:`simulate` returns; arrays are ``(*batch, year[, origin, age])``.

    ``numbers`` and ``length_cm`` are at the start of each year after recruitment and releases;
    ``biomass_t`` is the end-of-year biomass of the survey ages (what a survey with q = 1
    sees); ``ssb_t`` the start-of-year spawning biomass of both origins; ``window_survivors``
    the fish of both origins that survive the last age of the juvenile density-dependence
    window (the recruits the window lets through); ``hatchery_fraction_numbers`` the
    hatchery-origin share of the end-of-year numbers of the survey ages (what a sample of fish
    examined for marks estimates).
    """

    biomass_t: NDArray
    total_biomass_t: NDArray
    ssb_t: NDArray
    spawning_output_t: NDArray
    recruits: NDArray
    catch_t: NDArray
    catch_shortfall_t: NDArray
    f_per_yr: NDArray
    released_fish: NDArray
    hatchery_fraction_biomass: NDArray
    hatchery_fraction_ssb: NDArray
    juvenile_survival_dd: NDArray
    window_survivors: NDArray
    wild_window_survivors: NDArray
    hatchery_fraction_numbers: NDArray
    numbers: NDArray | None
    length_cm: NDArray | None
    natural_deaths: NDArray | None
    catch_numbers: NDArray | None
    final_numbers: NDArray
    final_length_state_cm: NDArray
    reference: ReferencePoints


def _age_dot(values: NDArray, weights: NDArray) -> NDArray:
    """``Σ_a values[..., a]·weights[..., a]`` over the last (age) axis; ``weights`` may be a 1-D
    vector of per-age weights. ``einsum`` does it in one pass without a product temporary,
    several times faster than ``np.sum(values * weights, axis=-1)`` over a short last axis."""
    return np.einsum("...a,...a->...", values, weights)


def _origin_sum(values: NDArray) -> NDArray:
    """Sum over the origin axis (wild + hatchery), the last axis of ``values``."""
    return values[..., WILD] + values[..., HATCHERY]


def _expand(params: Parameters, dtype: Any = np.float64) -> dict[str, NDArray]:
    """Batched fields with two trailing axes added, ready to broadcast with (origin, age)."""
    out = {}
    for name, value in vars(params).items():
        if name not in STRUCTURAL_FIELDS:
            out[name] = np.asarray(value, dtype=dtype)[..., None, None]
    return out


def _ages(params: Parameters) -> NDArray:
    return np.arange(params.n_age, dtype=float)


def _window_mask(params: Parameters) -> NDArray:
    """(…, 1, age) boolean: ages inside the juvenile density-dependence window."""
    return window_mask(params.dd_window_end_age_yr, params.n_age)


def _equilibrium_per_recruit(params: Parameters, f_per_yr: Any):
    """Per-recruit equilibrium schedule for wild fish (shapes (*batch, 1, age)).

    Returns length states, weights, maturity, survival excluding density dependence, and
    end-of-year weights. The plus group's length is a fixed point (its survival depends on its
    length weakly): iterated on the plus-group column only, at most :data:`PLUS_GROUP_PASSES`
    times, stopping once it moves by less than :data:`PLUS_GROUP_TOLERANCE_CM`.
    """
    p = _expand(params)
    ages = _ages(params)
    f = np.asarray(f_per_yr, dtype=float)[..., None, None]
    length_state = von_bertalanffy_length_cm(ages, p["l_inf_cm"], p["k_per_yr"], p["t0_yr"])
    full = np.broadcast_shapes(length_state.shape, f.shape, *(v.shape for v in p.values()))
    length_state = np.broadcast_to(length_state, full).copy()
    k = p["k_per_yr"]
    decay = np.exp(-k)
    grown_prev = grow_one_year(length_state[..., -2:-1], p["l_inf_cm"], k)
    survival = _survival_no_dd(p, length_state, f)
    done = np.zeros(full[:-1] + (1,), bool)    # a row stops once converged: batch-independent
    for _ in range(PLUS_GROUP_PASSES):
        s_plus = survival[..., -1:]
        plus = ((1.0 - s_plus) * grown_prev + s_plus * p["l_inf_cm"] * (1.0 - decay)) / (1.0 - s_plus * decay)
        plus = np.where(done, length_state[..., -1:], plus)
        done |= np.abs(plus - length_state[..., -1:]) <= PLUS_GROUP_TOLERANCE_CM
        length_state[..., -1:] = plus
        survival[..., -1:] = _survival_no_dd(p, length_state[..., -1:], f)
        if np.all(done):
            break
    body = body_length_cm(length_state, p["hatch_length_cm"])
    w = weight_g(body, p["lw_a"], p["lw_b"])
    mat = maturity_at_length(body, p["maturity_l50_cm"], p["maturity_slope_cm"])
    grown = body_length_cm(grow_one_year(length_state, p["l_inf_cm"], k), p["hatch_length_cm"])
    w_end = weight_g(grown, p["lw_a"], p["lw_b"])
    return length_state, w, mat, survival, w_end


def _survival_no_dd(p: dict, length_state: NDArray, f: NDArray) -> NDArray:
    m = lorenzen_m_per_yr(length_state, l_inf_cm=p["l_inf_cm"], k_per_yr=p["k_per_yr"],
                          m_ref_per_yr=p["m_ref_per_yr"], m_ref_length_cm=p["m_ref_length_cm"],
                          lorenzen_c=p["lorenzen_c"], hatch_length_cm=p["hatch_length_cm"])
    sel = logistic_selectivity(body_length_cm(length_state, p["hatch_length_cm"]),
                               p["selectivity_l50_cm"], p["selectivity_slope_cm"])
    return np.exp(-(m + f * sel))


def _numbers_per_recruit(survival: NDArray, window: NDArray, x: NDArray) -> NDArray:
    """Numbers at age per age-0 recruit; x multiplies survival at window ages; plus group summed."""
    s = survival * np.where(window, x, 1.0)
    lead = np.cumprod(s[..., :-1], axis=-1)
    n = np.concatenate([np.ones_like(lead[..., :1]), lead], axis=-1)
    n[..., -1] = n[..., -1] / (1.0 - s[..., -1])
    return n


def reference_points(params: Parameters) -> ReferencePoints:
    """Unfished spawning biomass, juvenile abundance and survey biomass, and the S–R coefficients."""
    length_state, w, mat, survival, w_end = _equilibrium_per_recruit(params, 0.0)
    window = _window_mask(params)
    gamma = np.asarray(params.dd_strength)[..., None, None]
    x0 = dd_survival(1.0, 1.0, gamma)      # at J = J0: 1/(1 + γ)
    n = _numbers_per_recruit(survival, window, x0)
    r0 = np.asarray(params.r0)
    spr0 = np.sum(n * w * mat, axis=(-2, -1)) / 1e6
    juveniles_per_recruit = np.sum(np.where(window, n, 0.0), axis=(-2, -1))
    survivors = n * survival * np.where(window, x0, 1.0)
    survey = _ages(params) >= params.survey_min_age_yr
    bpr0 = np.sum(np.where(survey, survivors * w_end, 0.0), axis=(-2, -1)) / 1e6
    ssb0 = r0 * spr0
    alpha, beta = stock_recruit_coefficients(params.steepness, r0, ssb0, params.recruitment)
    return ReferencePoints(ssb0_t=ssb0, spr0_t=spr0, juveniles0=r0 * juveniles_per_recruit,
                           biomass0_t=r0 * bpr0, alpha=alpha, beta=beta)


def equilibrium_state(params: Parameters, f_per_yr: Any = 0.0, *,
                      reference: ReferencePoints | None = None) -> tuple[NDArray, NDArray]:
    """Start-of-year numbers and length state in equilibrium under a constant F.

    Wild fish only (no releases). Solves for the density-dependent survival factor ``x`` of
    the juvenile window on ``(0, 1]`` (bisection, then regula falsi): recruitment implied by the window
    (``J = J0·(1/x − 1)/γ`` juveniles) must equal the stock–recruit equilibrium at the
    spawning output per recruit that ``x`` and F imply. Returns ``(numbers, length_state_cm)``,
    each ``(*batch, origin, age)``; a stock that cannot persist under F returns zeros.
    ``reference`` saves recomputing :func:`reference_points` when the caller has them.
    """
    ref = reference_points(params) if reference is None else reference
    length_state, w, mat, survival, _ = _equilibrium_per_recruit(params, f_per_yr)
    window = _window_mask(params)
    gamma = np.asarray(params.dd_strength)[..., None, None]
    j0 = ref.juveniles0[..., None, None]
    alpha = ref.alpha[..., None, None]
    beta = ref.beta[..., None, None]

    safe_gamma = np.where(gamma > 0, gamma, 1.0)
    spawning_per_fish = w * mat
    in_window = np.where(window, 1.0, 0.0)

    def recruits_both_ways(x: NDArray) -> tuple[NDArray, NDArray]:
        """(stock-recruit equilibrium, recruitment the window's density implies) at factor x."""
        n = _numbers_per_recruit(survival, window, x)
        phi = _age_dot(n, spawning_per_fish)[..., None] / 1e6
        from_sr = equilibrium_recruits(phi, alpha, beta, params.recruitment)
        per_recruit = _age_dot(n, in_window)[..., None]
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


def effective_steepness(steepness: Any, dd_strength: Any) -> NDArray:
    """Beverton–Holt steepness of stock–recruit plus a one-age window, combined.

    ``CR = 4h/(1 − h)·(1 + γ)``, ``h_eff = CR/(4 + CR)`` (exact for ``w = 0``; see module notes).
    """
    cr = 4.0 * np.asarray(steepness) / (1.0 - np.asarray(steepness)) * (1.0 + np.asarray(dd_strength))
    return cr / (4.0 + cr)


def _batch_shape(params: Parameters, *arrays_with_trailing: tuple[Any, int],
                 multipliers: ProcessMultipliers) -> tuple[int, ...]:
    shapes = [params.batch_shape, *multipliers.batch_shapes()]
    for array, trailing in arrays_with_trailing:
        if array is not None:
            shapes.append(np.shape(array)[: np.ndim(array) - trailing])
    return np.broadcast_shapes(*shapes)


def simulate(
    params: Parameters,
    *,
    n_years: int,
    catch_t: Any = None,
    f_per_yr: Any = None,
    release_fish: Any = None,
    release_length_cm: Any = None,
    log_rec_devs: Any = None,
    multipliers: ProcessMultipliers | None = None,
    initial_numbers: Any = None,
    initial_length_state_cm: Any = None,
    keep_numbers: bool = True,
    keep_flows: bool = False,
    policy: Policy | None = None,
    survey_log_errors: Any = None,
    initial_survey_estimate_t: Any = None,
    batch_shape: tuple[int, ...] = (),
    dtype: Any = np.float64,
) -> PopulationState:
    """Run the population forward ``n_years`` years.

    Parameters
    ----------
    params : Parameters
        Natural-scale parameters; array fields add leading batch axes.
    n_years : int
        Number of annual steps.
    catch_t : array (*batch, year), t, optional
        Observed catch; F is solved each year to take it (capped at ``f_max_per_yr``).
    f_per_yr : array (*batch, year), 1/yr, optional
        Fully selected fishing mortality instead of catch. Neither given: no fishing.
    release_fish : array (*batch, year, age), fish, optional
        Hatchery fish released at each age (before acute survival ``release_survival``).
    release_length_cm : array (*batch, year, age), cm, optional
        Body length of the released fish (required with ``release_fish``).
    log_rec_devs : array (*batch, year), optional
        Log recruitment deviations ε (any bias correction is the caller's).
    multipliers : ProcessMultipliers, optional
        Per-year forcing multipliers of growth, M, recruitment and maturity.
    initial_numbers, initial_length_state_cm : array (*batch, origin, age), optional
        Start-of-year state of the first year with the age-0 slot empty; default: equilibrium
        under ``params.initial_f_per_yr``.
    keep_numbers : bool
        Store numbers and body length by (year, origin, age).
    keep_flows : bool
        Store natural deaths and catch in numbers by (year, origin, age).
    policy : Policy, optional
        Management rule called each year with the previous year's survey estimate; its
        releases add to ``release_fish`` and its F replaces the catch or F of that year.
    survey_log_errors : array (*batch, year), optional
        Log-normal errors of the simulated survey the policy reads (0 if not given).
    initial_survey_estimate_t : array (*batch), optional
        The survey estimate the policy sees in the first year (default: the initial state's
        biomass of the survey ages, without error).
    batch_shape : tuple of int
        Extra batch shape to broadcast with (e.g. a strategy axis that only the policy's
        arrays carry).
    dtype : numpy float dtype
        Precision of the state arrays and outputs: float64 (default; fits and their finite
        differences need it) or float32 (projections: half the memory traffic, ~7 significant
        digits, ample for biomass in tonnes). Reference points and the initial equilibrium
        are always computed in float64.
    """
    if catch_t is not None and f_per_yr is not None:
        raise ValueError("give catch_t or f_per_yr, not both")
    if release_fish is not None and release_length_cm is None:
        raise ValueError("release_length_cm is required with release_fish")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    multipliers = multipliers or ProcessMultipliers()
    batch = _batch_shape(params, (catch_t, 1), (f_per_yr, 1), (release_fish, 2),
                         (release_length_cm, 2), (log_rec_devs, 1), (initial_numbers, 2),
                         (survey_log_errors, 1), (initial_survey_estimate_t, 0),
                         multipliers=multipliers)
    batch = np.broadcast_shapes(batch, tuple(batch_shape))
    n_age = params.n_age
    p = _expand(params, dtype)
    ref = reference_points(params)
    survey_age = params.survey_min_age_yr
    rrs = np.stack(np.broadcast_arrays(np.ones_like(p["relative_reproductive_success"]),
                                       p["relative_reproductive_success"]), axis=-2)[..., 0, :]
    gamma = np.asarray(params.dd_strength)
    j0 = ref.juveniles0
    ends = np.asarray(params.dd_window_end_age_yr)
    # one window for the whole batch: the fast path of the density-dependence functions
    window = int(ends.flat[0]) if np.all(ends == ends.flat[0]) else ends
    ages = _ages(params)
    # 0/1 weights over age for the sums below
    survey_ages = (ages >= survey_age).astype(dtype)
    release_survival = np.asarray(params.release_survival, dtype=dtype)[..., None]
    age0_length = von_bertalanffy_length_cm(0.0, p["l_inf_cm"], p["k_per_yr"], p["t0_yr"])[..., 0, 0]
    age0_body = body_length_cm(age0_length, p["hatch_length_cm"][..., 0, 0])
    age0_weight = weight_g(age0_body, p["lw_a"][..., 0, 0], p["lw_b"][..., 0, 0])

    if initial_numbers is None:
        initial_numbers, initial_length_state_cm = equilibrium_state(params, params.initial_f_per_yr,
                                                                     reference=ref)
        initial_numbers[..., :, 0] = 0.0
    numbers = np.broadcast_to(np.asarray(initial_numbers, dtype=dtype), batch + (2, n_age)).copy()
    length = np.broadcast_to(np.asarray(initial_length_state_cm, dtype=dtype),
                             batch + (2, n_age)).copy()

    out = {name: np.zeros(batch + (n_years,), dtype) for name in (
        "biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "recruits", "catch_t",
        "catch_shortfall_t", "f_per_yr", "released_fish", "hatchery_fraction_biomass",
        "hatchery_fraction_ssb", "hatchery_fraction_numbers", "juvenile_survival_dd",
        "window_survivors", "wild_window_survivors")}
    grid = batch + (n_years, 2, n_age)
    kept_numbers = np.zeros(grid, dtype) if keep_numbers else None
    kept_length = np.zeros(grid, dtype) if keep_numbers else None
    kept_natural = np.zeros(grid, dtype) if keep_flows else None
    kept_catch = np.zeros(grid, dtype) if keep_flows else None

    def in_year(name: str, y: int) -> NDArray:
        """A forcing multiplier of year y, shaped to broadcast with (*batch, origin, age)."""
        return np.asarray(multipliers.in_year(name, y), dtype=dtype)[..., None, None]

    def body_and_weight(length_state: NDArray, index: Any = ...) -> tuple[NDArray, NDArray]:
        body = body_length_cm(length_state, p["hatch_length_cm"][index])
        return body, weight_g(body, p["lw_a"][index], p["lw_b"][index])

    def selectivity(body: NDArray) -> NDArray:
        return logistic_selectivity(body, p["selectivity_l50_cm"], p["selectivity_slope_cm"])

    def natural_mortality(length_state: NDArray, k_mult: Any, m_mult: Any) -> NDArray:
        return lorenzen_m_per_yr(
            length_state, l_inf_cm=p["l_inf_cm"], k_per_yr=p["k_per_yr"], k_multiplier=k_mult,
            m_ref_per_yr=p["m_ref_per_yr"], m_ref_length_cm=p["m_ref_length_cm"],
            lorenzen_c=p["lorenzen_c"], hatch_length_cm=p["hatch_length_cm"], m_multiplier=m_mult)

    q = np.asarray(params.survey_q)
    if policy is not None and initial_survey_estimate_t is None:
        body0, w0 = body_and_weight(length)
        start_t = np.sum(numbers[..., survey_age:] * w0[..., survey_age:], axis=(-2, -1)) / 1e6
        initial_survey_estimate_t = q * start_t
    for y in range(n_years):
        control = YearControl()
        if policy is not None:
            if y == 0:
                estimate = np.broadcast_to(np.asarray(initial_survey_estimate_t, dtype=float), batch)
            else:
                error = 0.0 if survey_log_errors is None else np.asarray(survey_log_errors)[..., y - 1]
                estimate = q * out["biomass_t"][..., y - 1] * np.exp(error)
            control = policy(y, estimate)
        # 1. spawning from start-of-year numbers (the age-0 slot is empty)
        body, w = body_and_weight(length)
        mature = maturity_at_length(body, p["maturity_l50_cm"], p["maturity_slope_cm"],
                                    in_year("maturity_l50", y))
        ssb_by_origin = _age_dot(numbers * w, mature) / 1e6
        ssb = _origin_sum(ssb_by_origin)
        spawning = np.sum(ssb_by_origin * rrs, axis=-1)
        # 2. recruitment of wild age-0 fish
        recruits = recruits_from_spawners(spawning, ref.alpha, ref.beta, params.recruitment)
        recruits = recruits * multipliers.in_year("recruitment", y)
        if log_rec_devs is not None:
            recruits = recruits * np.exp(np.asarray(log_rec_devs)[..., y])
        numbers[..., WILD, 0] = recruits
        length[..., :, 0] = age0_length[..., None]
        body[..., :, 0] = age0_body[..., None]
        w[..., :, 0] = age0_weight[..., None]
        # 3. releases into the hatchery origin
        released = np.zeros(batch)
        for fish, release_len in (
                (None, None) if release_fish is None else
                (np.asarray(release_fish)[..., y, :], np.asarray(release_length_cm)[..., y, :]),
                (control.release_fish, control.release_length_cm)):
            if fish is None:
                continue
            fish = np.asarray(fish, dtype=float)
            released = released + np.sum(fish, axis=-1)
            entry = add_releases(numbers[..., HATCHERY, :], length[..., HATCHERY, :], fish, release_len,
                                 release_survival)
            if entry is None:
                continue
            numbers[..., HATCHERY, entry.ages] = entry.numbers
            length[..., HATCHERY, entry.ages] = entry.length_cm
            body[..., HATCHERY, entry.ages], w[..., HATCHERY, entry.ages] = body_and_weight(
                length[..., HATCHERY, entry.ages], (..., 0, slice(None)))
        # 4. mortality: Lorenzen M along the growth path, juvenile density dependence, fishing.
        # Age 0 apart: usually only its growth state starts below the hatch length, so the
        # other ages take the closed form's fast path (the branch is chosen from the data).
        k_mult = in_year("growth_k", y)
        m_mult = in_year("natural_mortality", y)
        m = np.empty(batch + (2, n_age), dtype)
        m[..., 1:] = natural_mortality(length[..., 1:], k_mult, m_mult)
        m[..., :1] = natural_mortality(length[..., :1], k_mult, m_mult)
        juveniles = juvenile_abundance(numbers, window)
        m_dd = dd_mortality_per_yr(juveniles, j0, gamma, window, n_age=n_age, dtype=dtype)
        if isinstance(window, int):
            m[..., : window + 1] += m_dd
        else:
            m += m_dd
        sel = None
        shortfall = np.zeros(batch)
        if control.f_per_yr is not None:
            f = np.broadcast_to(np.asarray(control.f_per_yr, dtype=float), batch)
        elif catch_t is not None:
            c_y = np.broadcast_to(np.asarray(catch_t, dtype=float)[..., y], batch)
            f = np.zeros(batch)
            if np.any(c_y > 0):
                sel = selectivity(body)
                f, shortfall = solve_f_from_catch(c_y, numbers=numbers, weight_g=w,
                                                  selectivity=sel, m_per_yr=m,
                                                  f_max_per_yr=params.f_max_per_yr)
        elif f_per_yr is not None:
            f = np.broadcast_to(np.asarray(f_per_yr, dtype=float)[..., y], batch)
        else:
            f = np.zeros(batch)
        if np.any(f > 0):
            f_sel = np.asarray(f, dtype)[..., None, None] * (selectivity(body) if sel is None else sel)
            z = m + f_sel
            survivors = numbers * np.exp(-z)
            caught = numbers * baranov_catch_fraction(f_sel, z)
        else:
            survivors = numbers * np.exp(-m)
            caught = None
        # 5. growth, end-of-year biomass, ageing
        grown = grow_one_year(length, p["l_inf_cm"], p["k_per_yr"], k_mult)
        _, w_end = body_and_weight(grown)
        survey_by_origin = _age_dot(survivors, w_end * survey_ages) / 1e6
        biomass = _origin_sum(survey_by_origin)
        survey_fish = _age_dot(survivors, survey_ages)
        all_fish = _origin_sum(survey_fish)
        out["hatchery_fraction_numbers"][..., y] = np.divide(
            survey_fish[..., HATCHERY], all_fish, out=np.zeros(batch, dtype), where=all_fish > 0)
        out["biomass_t"][..., y] = biomass
        out["total_biomass_t"][..., y] = _origin_sum(_age_dot(numbers, w)) / 1e6
        out["ssb_t"][..., y] = ssb
        out["spawning_output_t"][..., y] = spawning
        out["recruits"][..., y] = recruits
        out["catch_t"][..., y] = 0.0 if caught is None else np.sum(caught * w, axis=(-2, -1)) / 1e6
        out["catch_shortfall_t"][..., y] = shortfall
        out["f_per_yr"][..., y] = f
        out["released_fish"][..., y] = released
        out["hatchery_fraction_biomass"][..., y] = np.divide(
            survey_by_origin[..., HATCHERY], biomass, out=np.zeros(batch, dtype), where=biomass > 0)
        out["hatchery_fraction_ssb"][..., y] = np.divide(
            ssb_by_origin[..., HATCHERY], ssb, out=np.zeros(batch, dtype), where=ssb > 0)
        out["juvenile_survival_dd"][..., y] = dd_survival(juveniles, j0, gamma)
        out["window_survivors"][..., y], out["wild_window_survivors"][..., y] = window_survivors(
            survivors, window)
        if keep_numbers:
            kept_numbers[..., y, :, :] = numbers
            kept_length[..., y, :, :] = body
        if keep_flows:
            kept_catch[..., y, :, :] = 0.0 if caught is None else caught
            kept_natural[..., y, :, :] = numbers - survivors - kept_catch[..., y, :, :]

        plus = survivors[..., -2] + survivors[..., -1]
        plus_length = np.divide(survivors[..., -2] * grown[..., -2] + survivors[..., -1] * grown[..., -1],
                                plus,
                                out=grown[..., -1].copy(), where=plus > 0)
        numbers[..., 1:] = survivors[..., :-1]
        numbers[..., -1] = plus
        numbers[..., 0] = 0.0
        length[..., 1:] = grown[..., :-1]
        length[..., -1] = plus_length

    return PopulationState(**out, numbers=kept_numbers, length_cm=kept_length,
                           natural_deaths=kept_natural, catch_numbers=kept_catch,
                           final_numbers=numbers, final_length_state_cm=length, reference=ref)
