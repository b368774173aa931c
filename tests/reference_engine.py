"""The engine as plain numpy, year by year: the reference that tests check the compiled kernel
(:mod:`carpmodel.model.kernel`) against.

This is carpmodel 0.2's numpy engine, kept only here. It calls the documented numpy functions of
:mod:`carpmodel.model.growth`, :mod:`~carpmodel.model.mortality`,
:mod:`~carpmodel.model.recruitment` and :mod:`~carpmodel.model.stocking`, so the kernel is
checked against the model's definitions, not against itself. Tolerance (tests/test_kernel.py):
float64 agrees to ~1e-12 relative (the same formulas in another order of summation); float32
to ~1e-4 relative over 76 years (numpy's float32 state arithmetic against the kernel's float64
arithmetic rounded once a year).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.model.dynamics import (
    HATCHERY,
    WILD,
    Policy,
    PopulationState,
    ProcessMultipliers,
    YearControl,
)
from carpmodel.model.equilibrium import (
    EQUILIBRIUM_BISECTIONS,
    EQUILIBRIUM_ITERATIONS,
    PLUS_GROUP_PASSES,
    PLUS_GROUP_TOLERANCE_CM,
    _numbers_per_recruit,
    age_dot,
    expand,
    reference_points,
)
from carpmodel.model.growth import (
    body_length_cm,
    first_season_length_cm,
    grow_one_year,
    length_at_age_cm,
    weight_g,
)
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
from carpmodel.model.params import Parameters
from carpmodel.model.recruitment import eggs_per_tonne, equilibrium_recruits, recruits_from_eggs
from carpmodel.model.stocking import add_releases, release_survival_at_weight


def _batch_shape(params: Parameters, *arrays_with_trailing: tuple[Any, int],
                 multipliers: ProcessMultipliers) -> tuple[int, ...]:
    shapes = [params.batch_shape, *multipliers.batch_shapes()]
    for array, trailing in arrays_with_trailing:
        if array is not None:
            shapes.append(np.shape(array)[: np.ndim(array) - trailing])
    return np.broadcast_shapes(*shapes)



def reference_simulate(
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
    """:func:`carpmodel.model.dynamics.simulate`, in numpy (same arguments and result)."""
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
        initial_numbers, initial_length_state_cm = reference_equilibrium_state(
            params, params.initial_f_per_yr)
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


def _survival_no_dd(p: dict, length_state: NDArray, f: NDArray) -> NDArray:
    m = lorenzen_m_per_yr(length_state, l_inf_cm=p["l_inf_cm"], k_per_yr=p["k_per_yr"],
                          m_ref_per_yr=p["m_ref_per_yr"], m_ref_length_cm=p["m_ref_length_cm"],
                          lorenzen_c=p["lorenzen_c"], hatch_length_cm=p["hatch_length_cm"])
    sel = logistic_selectivity(body_length_cm(length_state, p["hatch_length_cm"]),
                               p["selectivity_l50_cm"], p["selectivity_slope_cm"])
    return np.exp(-(m + f * sel))


def reference_per_recruit_schedule(params: Parameters, f_per_yr: Any) -> tuple[NDArray, ...]:
    """:func:`carpmodel.model.equilibrium.per_recruit_schedule` written with the model's numpy
    functions (carpmodel 0.2's version, before the schedule was compiled).

    The plus group's length is a fixed point (its survival depends on its length weakly):
    iterated on the plus-group column only, at most :data:`PLUS_GROUP_PASSES` times, each row
    stopping once it moves by less than :data:`PLUS_GROUP_TOLERANCE_CM`.
    """
    p = expand(params)
    f = np.asarray(f_per_yr, dtype=float)[..., None, None]
    ages = np.arange(params.n_age, dtype=float)
    length_state = length_at_age_cm(ages, p["l_inf_cm"], p["k_per_yr"], p["hatch_time_yr"],
                                    p["hatch_length_cm"])
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
    survey = logistic_selectivity(grown, p["survey_l50_cm"], p["survey_slope_cm"])
    return length_state, w, mat, survival, w_end, survey


def reference_equilibrium_state(params: Parameters, f_per_yr: Any = 0.0) -> tuple[NDArray, NDArray]:
    """:func:`carpmodel.model.equilibrium.equilibrium_state` written with the model's numpy
    functions over the whole batch (carpmodel 0.2's version, before the root was compiled)."""
    ref = reference_points(params)
    length_state, w, mat, survival, _, _ = reference_per_recruit_schedule(params, f_per_yr)
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
