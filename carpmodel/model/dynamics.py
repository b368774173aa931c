"""The age-structured engine: one pure numpy recursion over years.

Arrays are ``(*batch, origin, age)`` with ``origin = (wild, hatchery)`` and ages ``0..A``
(``A`` a plus group). Any number of leading batch axes run at once (a fit, a batch of
gradient perturbations, projection draws × strategies × scenarios); the loop over years is
the only Python loop. Wild fish join at age 1 (the age-0 slot holds only hatchery fish
released in their first year).

Order of events within year y (annual step, birthday on 1 January):

1. spawning (spring): spawning output ``S = Σ (N_w + ρ·N_h)·W·mat`` from 1 January numbers, ρ
   the relative reproductive success of hatchery-origin spawners; eggs ``E = S·10⁶·f_fem·fec``;
2. recruitment of the year class: ``R_y = a_y·E/(1 + βE)`` (or Ricker) with the egg survival
   ``a_y = expit(logit(a) + ε_y + ln g_R)`` (:mod:`carpmodel.model.recruitment`: recruits per
   egg stay below 1 by construction); they join the wild age-1 class on 1 January of y + 1 at
   the length of their first season (hatching at ``t_h``, growth for ``1 − t_h`` of the year);
3. releases (summer): ``n·s_rel`` hatchery fish enter at their age and release length
   (numbers-weighted mean length with hatchery fish already at that age;
   :func:`carpmodel.model.stocking.add_releases`, whose module describes the release biology);
4. mortality through the year: ``Z = M(L) + M_dd + F·sel(L)`` where ``M(L)`` is Lorenzen
   mortality integrated along the growth path and ``M_dd = ln(1 + γ·J/J0)`` is juvenile
   density-dependent mortality on every age ``1 ≤ a ≤ w`` of the window, driven by the total
   abundance ``J`` of wild plus hatchery fish in the window (``J0`` its unfished value;
   :func:`carpmodel.model.mortality.dd_mortality_per_yr`);
   catch follows the Baranov equation, with F solved from the observed catch;
5. growth along each cohort (von Bertalanffy, K times a forcing multiplier), the end-of-year
   biomass the survey sees (size selectivity ``sel_s(L)``), and ageing, the plus group keeping
   a numbers-weighted mean length.

Reference points, equilibria and the depleted start of a fit are in
:mod:`carpmodel.model.equilibrium`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from carpmodel.model.equilibrium import (
    ReferencePoints,
    age_dot,
    equilibrium_state,
    expand,
    reference_points,
)
from carpmodel.model.growth import body_length_cm, first_season_length_cm, grow_one_year, weight_g
from carpmodel.model.maturity import maturity_at_length
from carpmodel.model.mortality import (
    baranov_catch_fraction,
    dd_mortality_per_yr,
    dd_survival,
    juvenile_abundance,
    logistic_selectivity,
    lorenzen_m_per_yr,
    solve_f_from_catch,
    window_survivors,
)
from carpmodel.model.params import Parameters
from carpmodel.model.recruitment import eggs_per_tonne, recruits_from_eggs
from carpmodel.model.stocking import add_releases, release_survival_at_weight

__all__ = [
    "HATCHERY",
    "ORIGINS",
    "WILD",
    "PopulationState",
    "Policy",
    "ProcessMultipliers",
    "ReferencePoints",
    "YearControl",
    "equilibrium_state",
    "reference_points",
    "simulate",
]

WILD, HATCHERY = 0, 1
ORIGINS = ("wild", "hatchery")

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
class PopulationState:
    """What :func:`simulate` returns; arrays are ``(*batch, year[, origin, age])``.

    ``numbers`` and ``length_cm`` are on 1 January of each year after releases (``keep_numbers``);
    ``biomass_t`` is the end-of-year biomass the hydroacoustic survey sees with q = 1
    (``Σ N·W·sel_s(L)``); ``ssb_t`` the 1 January spawning biomass of both origins;
    ``spawning_output_t`` the same with hatchery-origin spawners weighted by their RRS;
    ``eggs`` the eggs they spawn; ``recruits`` the year class spawned that year, counted when it
    reaches age 1 on 1 January of the next year; ``window_survivors`` the fish of both origins
    that survive the last age of the juvenile density-dependence window;
    ``hatchery_fraction_numbers`` the hatchery-origin share of the end-of-year numbers the
    survey sees (what a sample of fish examined for marks estimates). ``end_numbers`` and
    ``end_length_cm`` ``(*batch, k, origin, age)`` are the end-of-year survivors and their body
    lengths in the years asked for by ``keep_end_years`` (the state that net samples see).
    """

    biomass_t: NDArray
    total_biomass_t: NDArray
    ssb_t: NDArray
    spawning_output_t: NDArray
    eggs: NDArray
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
    end_numbers: NDArray | None
    end_length_cm: NDArray | None
    final_numbers: NDArray
    final_length_state_cm: NDArray
    reference: ReferencePoints

    @property
    def recruits_per_egg(self) -> NDArray:
        """Recruits of each year class per egg that produced it (0 where no eggs)."""
        return np.divide(self.recruits, self.eggs, out=np.zeros_like(self.recruits), where=self.eggs > 0)


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
    keep_end_years: Any = (),
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
        Recruitment deviations ε on the logit of the egg survival of each year class (any bias
        correction is the caller's).
    multipliers : ProcessMultipliers, optional
        Per-year forcing multipliers of growth, M, recruitment and maturity.
    initial_numbers, initial_length_state_cm : array (*batch, origin, age), optional
        1 January state of the first year (the wild age-0 slot empty); default: equilibrium
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
    keep_end_years : sequence of int
        Indices of the years whose end-of-year survivors and body lengths are kept
        (``end_numbers``, ``end_length_cm``).
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
    p = expand(params, dtype)
    ref = reference_points(params)
    rrs = np.asarray(params.relative_reproductive_success, dtype=dtype)
    eggs_per_t = eggs_per_tonne(params.female_fraction, params.fecundity_eggs_per_g)
    gamma = np.asarray(params.dd_strength)
    j0 = ref.juveniles0
    ends = np.asarray(params.dd_window_end_age_yr)
    # one window for the whole batch: the fast path of the density-dependence functions
    window = int(ends.flat[0]) if np.all(ends == ends.flat[0]) else ends
    release_survival = np.asarray(params.release_survival, dtype=dtype)[..., None]
    size_slope = np.asarray(params.release_survival_size_slope)[..., None]
    reference_weight = np.asarray(params.release_reference_weight_g)[..., None]
    size_dependent = bool(np.any(size_slope != 0))
    hatch_length = p["hatch_length_cm"][..., 0, 0]
    keep_end = [int(i) for i in keep_end_years]

    if initial_numbers is None:
        initial_numbers, initial_length_state_cm = equilibrium_state(params, params.initial_f_per_yr,
                                                                     reference=ref)
    numbers = np.broadcast_to(np.asarray(initial_numbers, dtype=dtype), batch + (2, n_age)).copy()
    length = np.broadcast_to(np.asarray(initial_length_state_cm, dtype=dtype),
                             batch + (2, n_age)).copy()
    numbers[..., WILD, 0] = 0.0

    out = {name: np.zeros(batch + (n_years,), dtype) for name in (
        "biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "eggs", "recruits", "catch_t",
        "catch_shortfall_t", "f_per_yr", "released_fish", "hatchery_fraction_biomass",
        "hatchery_fraction_ssb", "hatchery_fraction_numbers", "juvenile_survival_dd",
        "window_survivors", "wild_window_survivors")}
    grid = batch + (n_years, 2, n_age)
    kept_numbers = np.zeros(grid, dtype) if keep_numbers else None
    kept_length = np.zeros(grid, dtype) if keep_numbers else None
    kept_natural = np.zeros(grid, dtype) if keep_flows else None
    kept_catch = np.zeros(grid, dtype) if keep_flows else None
    end_shape = batch + (len(keep_end), 2, n_age)
    end_numbers = np.zeros(end_shape, dtype) if keep_end else None
    end_length = np.zeros(end_shape, dtype) if keep_end else None

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
        seen = logistic_selectivity(body0, p["survey_l50_cm"], p["survey_slope_cm"])
        initial_survey_estimate_t = q * np.sum(numbers * w0 * seen, axis=(-2, -1)) / 1e6
    for y in range(n_years):
        control = YearControl()
        if policy is not None:
            if y == 0:
                estimate = np.broadcast_to(np.asarray(initial_survey_estimate_t, dtype=float), batch)
            else:
                error = 0.0 if survey_log_errors is None else np.asarray(survey_log_errors)[..., y - 1]
                estimate = q * out["biomass_t"][..., y - 1] * np.exp(error)
            control = policy(y, estimate)
        # 1. spawning from 1 January numbers; hatchery-origin spawners weighted by their RRS
        body, w = body_and_weight(length)
        mature = maturity_at_length(body, p["maturity_l50_cm"], p["maturity_slope_cm"],
                                    in_year("maturity_l50", y))
        ssb_by_origin = age_dot(numbers * w, mature) / 1e6
        ssb = ssb_by_origin[..., WILD] + ssb_by_origin[..., HATCHERY]
        spawning = ssb_by_origin[..., WILD] + rrs * ssb_by_origin[..., HATCHERY]
        eggs = spawning * eggs_per_t
        # 2. the year class: eggs -> recruits at age 1 (next 1 January); deviation and forcing on
        # the logit of the egg survival
        deviation = np.log(multipliers.in_year("recruitment", y))
        if log_rec_devs is not None:
            deviation = deviation + np.asarray(log_rec_devs)[..., y]
        recruits = recruits_from_eggs(eggs, ref.alpha, ref.beta, params.recruitment, deviation)
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
            survival = release_survival
            if size_dependent:
                weight = (p["lw_a"][..., 0, 0, None]
                          * np.asarray(release_len, float) ** p["lw_b"][..., 0, 0, None])
                survival = release_survival_at_weight(release_survival, size_slope, weight,
                                                      reference_weight).astype(dtype)
            entry = add_releases(numbers[..., HATCHERY, :], length[..., HATCHERY, :], fish, release_len,
                                 survival)
            if entry is None:
                continue
            numbers[..., HATCHERY, entry.ages] = entry.numbers
            length[..., HATCHERY, entry.ages] = entry.length_cm
            body[..., HATCHERY, entry.ages], w[..., HATCHERY, entry.ages] = body_and_weight(
                length[..., HATCHERY, entry.ages], (..., 0, slice(None)))
        # 4. mortality: Lorenzen M along the growth path, juvenile density dependence, fishing
        k_mult = in_year("growth_k", y)
        m_mult = in_year("natural_mortality", y)
        m = natural_mortality(length, k_mult, m_mult).astype(dtype, copy=False)
        juveniles = juvenile_abundance(numbers, window)
        m_dd = dd_mortality_per_yr(juveniles, j0, gamma, window, n_age=n_age, dtype=dtype)
        if isinstance(window, int):
            m[..., : window + 1] += m_dd
        else:
            m = m + m_dd
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
        # 5. growth, the end-of-year biomass the survey sees, ageing
        grown = grow_one_year(length, p["l_inf_cm"], p["k_per_yr"], k_mult)
        grown_body, w_end = body_and_weight(grown)
        seen = survivors * logistic_selectivity(grown_body, p["survey_l50_cm"], p["survey_slope_cm"])
        survey_by_origin = age_dot(seen, w_end) / 1e6
        biomass = survey_by_origin[..., WILD] + survey_by_origin[..., HATCHERY]
        seen_fish = np.sum(seen, axis=-1)
        all_fish = seen_fish[..., WILD] + seen_fish[..., HATCHERY]
        out["hatchery_fraction_numbers"][..., y] = np.divide(
            seen_fish[..., HATCHERY], all_fish, out=np.zeros(batch, dtype), where=all_fish > 0)
        out["biomass_t"][..., y] = biomass
        out["total_biomass_t"][..., y] = np.sum(numbers * w, axis=(-2, -1)) / 1e6
        out["ssb_t"][..., y] = ssb
        out["spawning_output_t"][..., y] = spawning
        out["eggs"][..., y] = eggs
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
        if y in keep_end:
            end_numbers[..., keep_end.index(y), :, :] = survivors
            end_length[..., keep_end.index(y), :, :] = grown_body

        plus = survivors[..., -2] + survivors[..., -1]
        plus_length = np.divide(survivors[..., -2] * grown[..., -2] + survivors[..., -1] * grown[..., -1],
                                plus,
                                out=grown[..., -1].copy(), where=plus > 0)
        numbers[..., 1:] = survivors[..., :-1]
        numbers[..., -1] = plus
        numbers[..., 0] = 0.0
        numbers[..., WILD, 1] += recruits
        length[..., 1:] = grown[..., :-1]
        length[..., -1] = plus_length
        length[..., WILD, 1] = first_season_length_cm(p["l_inf_cm"], p["k_per_yr"], p["hatch_time_yr"],
                                                      p["hatch_length_cm"], k_mult)[..., 0, 0]
        length[..., :, 0] = hatch_length[..., None]

    return PopulationState(**out, numbers=kept_numbers, length_cm=kept_length,
                           natural_deaths=kept_natural, catch_numbers=kept_catch,
                           end_numbers=end_numbers, end_length_cm=end_length,
                           final_numbers=numbers, final_length_state_cm=length, reference=ref)
