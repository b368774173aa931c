"""Analytic and invariance checks of the age-structured engine (carpmodel.model.dynamics and
carpmodel.model.equilibrium)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from carpmodel.model.dynamics import (
    HATCHERY,
    WILD,
    ProcessMultipliers,
    YearControl,
    equilibrium_state,
    reference_points,
    simulate,
)
from carpmodel.model.equilibrium import depleted_state
from carpmodel.model.growth import first_season_length_cm, grow_one_year, length_at_age_cm, weight_g
from carpmodel.model.maturity import maturity_at_length
from carpmodel.model.mortality import lorenzen_m_per_yr
from carpmodel.model.params import Parameters
from carpmodel.model.recruitment import recruits_from_eggs


def make_params(**changes) -> Parameters:
    """A small stock (A = 12) with constant M so closed forms exist; a survey that sees every
    fish (L50 0.1 cm)."""
    base = dict(r0=1e6, max_egg_survival=0.01, l_inf_cm=55.0, k_per_yr=0.12, hatch_time_yr=0.45,
                hatch_length_cm=0.9, lw_a=0.012, lw_b=3.0, maturity_l50_cm=25.0,
                maturity_slope_cm=2.0, fecundity_eggs_per_g=25.0, female_fraction=0.45,
                m_ref_per_yr=0.3, m_ref_length_cm=30.0, lorenzen_c=0.0,
                dd_strength=0.5, dd_window_end_age_yr=1, release_survival=0.4,
                relative_reproductive_success=0.8, selectivity_l50_cm=20.0,
                selectivity_slope_cm=2.0, survey_l50_cm=0.1, survey_slope_cm=0.01, f_max_per_yr=3.0,
                initial_f_per_yr=0.0, max_age_yr=12)
    base.update(changes)
    return Parameters(**base)


def closed_form_unfished(p: Parameters) -> np.ndarray:
    """Recruits enter at age 1: N_0 = 0, N_a = R0·exp(−M·(a − 1))·(1+γ)^−min(a − 1, w) for a ≥ 1
    (ages 1..w in the window); plus group divided by (1 − exp(−M))."""
    ages = np.arange(p.n_age)
    m, gamma, w = float(p.m_ref_per_yr), float(p.dd_strength), int(p.dd_window_end_age_yr)
    lived = np.maximum(ages - 1, 0)
    n = float(p.r0) * np.exp(-m * lived) * (1.0 + gamma) ** -np.minimum(lived, w)
    n[0] = 0.0
    n[-1] /= 1.0 - np.exp(-m)
    return n


def test_unfished_equilibrium_matches_closed_form():
    # Exact algebra (cumulative products of the same exponentials) plus the equilibrium solver
    # for the density-dependent factor (stops at a relative mismatch of 1e-14): only rounding
    # remains, rtol 1e-10.
    p = make_params()
    numbers, _ = equilibrium_state(p, 0.0)
    np.testing.assert_allclose(numbers[WILD], closed_form_unfished(p), rtol=1e-10)
    assert np.all(numbers[HATCHERY] == 0)


def test_simulation_converges_to_and_stays_at_unfished_equilibrium():
    p = make_params()
    numbers, length = equilibrium_state(p, 0.0)
    start = numbers.copy()
    state = simulate(p, n_years=5, initial_numbers=start, initial_length_state_cm=length)
    # Stationarity: one year maps the equilibrium onto itself; rounding only (rtol 1e-10).
    np.testing.assert_allclose(state.numbers[-1, WILD], closed_form_unfished(p), rtol=1e-10)
    # From a state at 30 % of equilibrium, the stock returns to it: after 400 years the
    # transient (contracting by at least exp(-M) per year) is far below 1e-8.
    state = simulate(p, n_years=400, initial_numbers=0.3 * start, initial_length_state_cm=length)
    np.testing.assert_allclose(state.numbers[-1, WILD], closed_form_unfished(p), rtol=1e-8)


@pytest.mark.parametrize("form", ["beverton_holt", "ricker"])
def test_egg_recruit_curve_returns_r0_at_e0_and_its_derived_steepness_at_a_fifth(form):
    # R(E0) = R0 and R(0.2·E0) = h·R0 with h derived from a·φ0: exact algebra, rtol 1e-12.
    p = make_params(recruitment=form)
    ref = reference_points(p)
    r_at = recruits_from_eggs(np.array([1.0, 0.2]) * ref.eggs0, ref.alpha, ref.beta, form)
    np.testing.assert_allclose(r_at, [1e6, float(ref.steepness) * 1e6], rtol=1e-12)
    cr = 0.01 * float(ref.eggs_per_recruit0)
    expected = cr / (4 + cr) if form == "beverton_holt" else 0.2 * cr**0.8
    assert float(ref.steepness) == pytest.approx(expected, rel=1e-12)
    # eggs are spawning biomass × 10^6 g/t × female fraction × eggs per gram
    assert float(ref.eggs0) == pytest.approx(float(ref.ssb0_t) * 1e6 * 0.45 * 25.0, rel=1e-12)


def test_recruits_per_egg_stay_below_one_whatever_the_deviation():
    # Deviations act on the logit of the egg survival, so even +30 (exp(30) ≈ 1e13 times the
    # mean) cannot make a year class larger than its eggs: by construction, not by a check.
    p = make_params(max_egg_survival=0.04)
    ref = reference_points(p)
    eggs = np.array([1e3, 1e9, ref.eggs0, 10 * ref.eggs0])
    for deviation in (-30.0, 0.0, 3.0, 30.0):
        per_egg = recruits_from_eggs(eggs, ref.alpha, ref.beta, "beverton_holt", deviation) / eggs
        assert np.all(per_egg < 1.0) and np.all(per_egg >= 0.0)
    state = simulate(p, n_years=8, log_rec_devs=np.full(8, 20.0))
    assert np.all(state.recruits_per_egg < 1.0) and np.all(state.recruits > 0)


def test_hatchery_spawners_count_at_their_relative_reproductive_success():
    # 0.1's engine picked the wild row of (1, ρ), so ρ had no effect; now spawning output is
    # SSB_wild + ρ·SSB_hatchery for ρ = 1, 0.5, 0, also batched.
    p = make_params(lorenzen_c=1.0)
    numbers, length = equilibrium_state(p, 0.0)
    numbers[HATCHERY] = 0.5 * numbers[WILD]
    rho = np.array([1.0, 0.5, 0.0])
    state = simulate(p.replace(relative_reproductive_success=rho), n_years=1,
                     initial_numbers=numbers, initial_length_state_cm=length)
    ssb_wild = state.ssb_t[0, 0] / 1.5
    np.testing.assert_allclose(state.spawning_output_t[:, 0], ssb_wild * (1 + 0.5 * rho), rtol=1e-12)
    np.testing.assert_allclose(state.eggs[:, 0], state.spawning_output_t[:, 0] * 1e6 * 0.45 * 25.0,
                               rtol=1e-12)


def test_spawning_biomass_per_recruit_by_hand():
    # Hand computation: phi0 = Σ_a l_a·W_a·mat_a / 1e6 with l_a the unfished survivorship
    # (recruits from age 1); lengths on the curve from hatching. Rounding only: rtol 1e-12.
    p = make_params()
    ages = np.arange(p.n_age)
    length = length_at_age_cm(ages, 55.0, 0.12, 0.45, 0.9)
    # plus group length: closed form of the numbers-weighted mean with constant survival s
    s = np.exp(-0.3)
    grown_prev = grow_one_year(length[-2], 55.0, 0.12)
    length[-1] = ((1 - s) * grown_prev + s * 55.0 * (1 - np.exp(-0.12))) / (1 - s * np.exp(-0.12))
    survivorship = closed_form_unfished(p) / 1e6
    phi0 = np.sum(survivorship * weight_g(length, 0.012, 3.0)
                  * maturity_at_length(length, 25.0, 2.0)) / 1e6
    np.testing.assert_allclose(reference_points(p).spr0_t, phi0, rtol=1e-12)


def test_cohort_growth_from_hatching_reproduces_the_curve():
    # The first season lived from hatching (0.45 yr, 0.9 cm) reaches the curve's age-1 length
    # (3.51 cm with the bundled growth, the reported first-year growth of 3.5 cm); year steps
    # from there follow L(a) = L∞ − (L∞ − L_h)·exp(−K(a − t_h)): rounding only, rtol 1e-12.
    length = first_season_length_cm(55.0, 0.09, 0.45, 0.9)
    assert float(length) == pytest.approx(3.51, abs=0.005)
    for age in range(1, 20):
        np.testing.assert_allclose(length, length_at_age_cm(age, 55.0, 0.09, 0.45, 0.9), rtol=1e-12)
        length = grow_one_year(length, 55.0, 0.09)


def test_lorenzen_closed_form_for_c_equal_one():
    # For c = 1, ∫0^1 M_ref·L_ref/L(t) dt = M_ref·L_ref/(K·L∞)·ln((L∞·e^K − (L∞ − L0))/L0)
    # (Lorenzen 2000) when the path starts above the hatch length. Same formula, rounding only.
    l0, l_inf, k = np.array([2.0, 10.0, 40.0]), 55.0, 0.09
    expected = 0.2 * 30.0 / (k * l_inf) * np.log((l_inf * np.exp(k) - (l_inf - l0)) / l0)
    got = lorenzen_m_per_yr(l0, l_inf_cm=l_inf, k_per_yr=k, m_ref_per_yr=0.2,
                            m_ref_length_cm=30.0, lorenzen_c=1.0, hatch_length_cm=1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("c", [1.0, 0.6])
def test_lorenzen_integral_agrees_with_fine_quadrature_across_the_hatch_floor(c):
    # Paths that start below the hatch length (age-0 growth state with t0 > 0), cross it
    # within the year, or never reach it, plus ordinary paths. 400 Gauss–Legendre nodes
    # resolve the kink at the floor to ~1e-6; the closed form (c = 1) and the default
    # 6-node quadrature (c = 0.6: error from the kink and the steep integrand) are held to
    # 1e-5 and 2e-2 of that reference.
    l0 = np.array([-1.5, 0.5, 0.99, 1.0, 2.0, 10.0, 50.0])
    kw = dict(l_inf_cm=55.0, k_per_yr=np.array([[0.09], [0.002]]), m_ref_per_yr=0.2,
              m_ref_length_cm=30.0, lorenzen_c=c, hatch_length_cm=1.0)
    reference = lorenzen_m_per_yr(l0, nodes=400, **kw)
    default = lorenzen_m_per_yr(l0, **kw)
    np.testing.assert_allclose(default, reference, rtol=1e-5 if c == 1.0 else 2e-2)


def test_lorenzen_never_uses_a_non_positive_length():
    # t0 > 0 makes the age-0 growth state negative; the floor keeps M finite and equal to
    # M at the hatch length while the path stays below it.
    got = lorenzen_m_per_yr(np.array([-3.0]), l_inf_cm=55.0, k_per_yr=0.001,
                            m_ref_per_yr=0.2, m_ref_length_cm=30.0, lorenzen_c=1.0,
                            hatch_length_cm=1.0)
    np.testing.assert_allclose(got, 0.2 * 30.0 / 1.0, rtol=1e-12)


def _releases(n_years: int, n_age: int, year: int, age: int, fish: float, length_cm: float):
    release = np.zeros((n_years, n_age))
    release[year, age] = fish
    return release, np.full((n_years, n_age), length_cm)


def test_mass_balance_per_age_origin_and_year():
    # Start numbers = survivors + natural deaths + catch, checked through next year's numbers
    # (survivors age by one; the plus group collects two ages; releases enter at their age).
    p = make_params(lorenzen_c=1.0, initial_f_per_yr=0.4)
    n_years = 12
    release, length = _releases(n_years, p.n_age, 3, 2, 5e4, 9.0)
    release[6, 1] = 8e4
    catch = np.linspace(5.0, 0.0, n_years)
    st = simulate(p, n_years=n_years, catch_t=catch, release_fish=release,
                  release_length_cm=length, keep_flows=True)
    survivors = st.numbers - st.natural_deaths - st.catch_numbers
    assert np.all(st.natural_deaths >= 0) and np.all(st.catch_numbers >= 0)
    entering = release * float(p.release_survival)
    nxt = st.numbers[1:].copy()
    nxt[:, HATCHERY, :] -= entering[1:]
    nxt[:, WILD, 1] -= st.recruits[:-1]           # the year class joins at age 1
    # relative to the numbers in each cell; float rounding only: rtol 1e-10
    np.testing.assert_allclose(nxt[:, :, 1:-1], survivors[:-1, :, :-2], rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose(nxt[:, :, -1], survivors[:-1, :, -2:].sum(-1), rtol=1e-10)
    assert np.all(st.catch_t[:-1] > 0) and st.catch_t[-1] == 0


def test_f_from_catch_takes_the_catch_and_reports_shortfall():
    p = make_params(initial_f_per_yr=0.2)
    catch = np.array([10.0, 0.0, 25.0, 1e9])
    st = simulate(p, n_years=4, catch_t=catch)
    # Newton converges quadratically; 1e-8 relative is far inside its 30 iterations.
    np.testing.assert_allclose(st.catch_t[:3], catch[:3], rtol=1e-8)
    assert st.f_per_yr[1] == 0.0 and st.catch_shortfall_t[1] == 0.0
    assert st.f_per_yr[3] == pytest.approx(3.0)            # capped at f_max_per_yr
    assert st.catch_shortfall_t[3] == pytest.approx(1e9 - st.catch_t[3])
    assert np.all(st.catch_shortfall_t[:3] == 0.0)


def test_zero_release_equals_no_release_exactly():
    p = make_params(lorenzen_c=1.0)
    release, length = _releases(10, p.n_age, 2, 1, 0.0, 9.0)
    a = simulate(p, n_years=10, catch_t=np.full(10, 2.0))
    b = simulate(p, n_years=10, catch_t=np.full(10, 2.0), release_fish=release,
                 release_length_cm=length)
    for name in ("biomass_t", "ssb_t", "recruits", "catch_t", "numbers", "length_cm"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_inputs_with_more_years_than_simulated_are_read_up_to_n_years():
    # forcing, deviations, catch and releases given for 30 years, 6 simulated: the same run as
    # with the first 6 years of each (the engine prepares every year's inputs before its loop)
    p = make_params(max_egg_survival=np.array([0.006, 0.02]))
    release, rel_len = _releases(30, p.n_age, 2, 1, 2e5, 8.0)
    devs = np.linspace(-0.5, 0.5, 30)
    growth = ProcessMultipliers(growth_k=np.linspace(0.9, 1.1, 30))
    long = simulate(p, n_years=6, release_fish=release, release_length_cm=rel_len, catch_t=np.full(30, 1.0),
                    log_rec_devs=devs, multipliers=growth)
    short = simulate(p, n_years=6, release_fish=release[:6], release_length_cm=rel_len[:6],
                     catch_t=np.full(6, 1.0), log_rec_devs=devs[:6],
                     multipliers=ProcessMultipliers(growth_k=growth.growth_k[:6]))
    for name in ("biomass_t", "recruits", "released_fish", "catch_t"):
        np.testing.assert_array_equal(getattr(long, name), getattr(short, name), err_msg=name)
    assert np.all(long.released_fish[..., 2] > 0)


def test_batch_equals_separate_runs():
    # Same arithmetic element by element: only summation order may differ, rtol 1e-12.
    steep = np.array([0.005, 0.01, 0.03])
    m = np.array([0.2, 0.3, 0.25])
    batch = simulate(make_params(max_egg_survival=steep, m_ref_per_yr=m, lorenzen_c=1.0,
                                 initial_f_per_yr=0.3), n_years=15, catch_t=np.full(15, 3.0))
    for i in range(3):
        one = simulate(make_params(max_egg_survival=steep[i], m_ref_per_yr=m[i], lorenzen_c=1.0,
                                   initial_f_per_yr=0.3), n_years=15, catch_t=np.full(15, 3.0))
        for name in ("biomass_t", "recruits", "f_per_yr", "numbers"):
            np.testing.assert_allclose(getattr(batch, name)[i], getattr(one, name), rtol=1e-12)


def test_a_row_is_identical_whatever_the_rest_of_its_batch():
    # The iterative solvers (equilibrium, plus-group length, F from catch) stop each element at
    # its own convergence, so a row run alone reproduces the same row in a batch bit for bit
    # (projections rely on this: chunked and unchunked draws must be identical). With the
    # solvers stopping when the whole batch had converged, rows 0 and 10 here differed.
    rng = np.random.default_rng(4)
    n = 12
    steep, m, f0 = rng.uniform(0.003, 0.049, n), rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 2.5, n)
    catch = rng.uniform(0.0, 40.0, 12)

    def run(rows: slice):
        return simulate(make_params(max_egg_survival=steep[rows], m_ref_per_yr=m[rows], lorenzen_c=1.0,
                                    initial_f_per_yr=f0[rows]), n_years=12, catch_t=catch)

    full = run(slice(None))
    for i in range(n):
        one = run(slice(i, i + 1))
        for name in ("biomass_t", "recruits", "f_per_yr", "numbers", "length_cm"):
            np.testing.assert_array_equal(getattr(full, name)[i:i + 1], getattr(one, name),
                                          err_msg=f"{name}, row {i}")


def test_float32_engine_agrees_with_float64_to_single_precision():
    # Same recursion in float32 (projections): 40 years of rounding at 6e-8 per operation, a
    # few dozen operations a year, measured at most 3.5e-6 relative; rtol 2e-5 leaves a margin
    # for other parameters. Catch-driven F (float64 Newton on float32 state) and releases
    # are both exercised.
    p = make_params(max_egg_survival=np.array([0.006, 0.02]), lorenzen_c=1.0, initial_f_per_yr=0.4)
    release, rel_len = _releases(40, p.n_age, 5, 1, 2e5, 8.0)
    release[5:, 1] = 2e5
    for driver in (dict(f_per_yr=np.full(40, 0.1)), dict(catch_t=np.full(40, 2.0))):
        kwargs = dict(n_years=40, release_fish=release, release_length_cm=rel_len, **driver)
        double = simulate(p, **kwargs)
        single = simulate(p, dtype=np.float32, **kwargs)
        for name in ("biomass_t", "ssb_t", "recruits", "hatchery_fraction_ssb", "catch_t", "f_per_yr"):
            assert getattr(single, name).dtype == np.float32, name
            np.testing.assert_allclose(getattr(single, name), getattr(double, name), rtol=2e-5,
                                       err_msg=name)
    with pytest.raises(ValueError, match="dtype"):
        simulate(p, n_years=2, dtype=np.float16)


def test_releases_in_some_rows_leave_the_other_rows_bit_identical():
    # A rule that stocks ages 0 and 1 in different years in different rows (growth and M differ
    # by row): each row run alone equals the same row in the batch exactly, in float64 and
    # float32, because a row's hatchery length changes only where fish enter it. (Mixing with
    # zero entering fish, (b·L)/b, is off by one ulp in ~10 % of cases: with it, rows 3 and 6
    # differed in float64 and rows 1 and 3 in float32.)
    from carpmodel.model.dynamics import YearControl

    n_rows, n_years = 8, 12
    rng = np.random.default_rng(0)
    steep, k = rng.uniform(0.005, 0.04, n_rows), rng.uniform(0.08, 0.2, n_rows)
    m = rng.uniform(0.15, 0.35, n_rows)
    plan = np.zeros((n_rows, n_years, 13))
    plan[:, :, 0] = np.where(rng.random((n_rows, n_years)) < 0.4, 3e5, 0.0)
    plan[:, :, 1] = np.where(rng.random((n_rows, n_years)) < 0.4, 1e5, 0.0)
    lengths = np.broadcast_to(np.array([4.0] + [9.0] * 12), plan.shape)

    def run(rows: slice, dtype: type):
        p = make_params(max_egg_survival=steep[rows], k_per_yr=k[rows], m_ref_per_yr=m[rows], lorenzen_c=1.0,
                        initial_f_per_yr=0.2)
        return simulate(p, n_years=n_years, dtype=dtype, policy=lambda y, estimate: YearControl(
            release_fish=plan[rows, y], release_length_cm=lengths[rows, y]))

    for dtype in (np.float64, np.float32):
        full = run(slice(None), dtype)
        for i in range(n_rows):
            one = run(slice(i, i + 1), dtype)
            for name in ("biomass_t", "numbers", "length_cm"):
                np.testing.assert_array_equal(getattr(full, name)[i:i + 1], getattr(one, name),
                                              err_msg=f"{name}, row {i}, {np.dtype(dtype)}")


def test_lorenzen_keeps_float32_and_each_element_its_own_method():
    length = np.array([[-2.0, 5.0, 20.0, 40.0]])
    kwargs = dict(l_inf_cm=45.0, k_per_yr=0.1, m_ref_per_yr=0.2, m_ref_length_cm=20.0,
                  hatch_length_cm=1.0)
    for c in (0.0, 1.0, 0.5):
        m = lorenzen_m_per_yr(length.astype(np.float32), **{k: np.float32(v) for k, v in kwargs.items()},
                              lorenzen_c=np.float32(c))
        assert m.dtype == np.float32, c
    # a c = 1 element batched with a c = 0.5 element keeps the exact closed form
    mixed = lorenzen_m_per_yr(length, **kwargs, lorenzen_c=np.array([[1.0], [0.5]]))
    np.testing.assert_array_equal(mixed[0], lorenzen_m_per_yr(length, **kwargs, lorenzen_c=1.0)[0])
    np.testing.assert_array_equal(mixed[1], lorenzen_m_per_yr(length, **kwargs, lorenzen_c=0.5)[0])


def _window_gain(p: Parameters, release_age: int, start_scale: float) -> tuple[float, float]:
    """Fish added one year after a release, per released fish, and the base DD survival.

    Released fish (wild length, acute survival 1) equal to 10 % of the wild fish at
    ``release_age`` enter in year 1; the gain is the change in numbers (both origins) at
    ``release_age + 1`` in year 2, divided by the fish released times their own one-year
    survival at the unchanged density.
    """
    n_years = 3
    numbers, length = equilibrium_state(p, 0.0)
    numbers = numbers * start_scale
    release, rel_len = _releases(n_years, p.n_age, 1, release_age, 0.0, 0.0)
    rel_len[:] = length[WILD]
    base = simulate(p, n_years=n_years, initial_numbers=numbers, initial_length_state_cm=length,
                    release_fish=release, release_length_cm=rel_len)
    released = 0.1 * base.numbers[1, WILD, release_age]
    release[1, release_age] = released
    treated = simulate(p, n_years=n_years, initial_numbers=numbers,
                       initial_length_state_cm=length, release_fish=release,
                       release_length_cm=rel_len)
    target = release_age + 1
    gain = (treated.numbers[2, :, target] - base.numbers[2, :, target]).sum()
    x = base.juvenile_survival_dd[1] if release_age <= int(p.dd_window_end_age_yr) else 1.0
    return gain / (released * np.exp(-float(p.m_ref_per_yr)) * x), float(x)


def test_releases_inside_window_replace_wild_fish_at_capacity_and_add_after_it():
    # One-age window (age 1, where wild recruits join) with strong density dependence, γ = 20,
    # at unfished density. Survivors of the window: out(J) = s·J/(1 + γ·J/J0). Releasing 0.1·J
    # at age 1 gives, per released fish and relative to its own survival at unchanged density
    # x = 1/(1+γ),
    #   [1.1/(1 + 1.1γ) − 1/(1 + γ)] / (0.1/(1 + γ)) = 0.0435  (replacement: 4 % added),
    # while releases at age 2, after the window, add exactly one for one.
    gamma = 20.0
    p = make_params(dd_strength=gamma, dd_window_end_age_yr=1, release_survival=1.0)
    inside, x = _window_gain(p, release_age=1, start_scale=1.0)
    expected = (1.1 / (1 + 1.1 * gamma) - 1 / (1 + gamma)) / (0.1 / (1 + gamma))
    # The start state comes from the equilibrium solver (relative mismatch 1e-14 at its
    # stop), so the closed forms hold to rounding amplified by the small difference of
    # ``inside``: rtol 1e-9.
    assert x == pytest.approx(1 / (1 + gamma), rel=1e-9)
    assert inside == pytest.approx(expected, rel=1e-9) and expected < 0.05
    after, _ = _window_gain(p, release_age=2, start_scale=1.0)
    assert after == pytest.approx(1.0, rel=1e-12)
    # Far below capacity the window barely bites: with the stock at 1e-4 of its unfished
    # state, juveniles are j = J/J0 ≈ 1e-3 of capacity (read back from x = 1/(1 + γj)) and
    # [1.1/(1 + 1.1γj) − 1/(1 + γj)]/(0.1/(1 + γj)) ≈ 0.98 of a fish is added per fish.
    sparse, x_sparse = _window_gain(p, release_age=1, start_scale=1e-4)
    j = (1 / x_sparse - 1) / gamma
    assert sparse == pytest.approx((1.1 / (1 + 1.1 * gamma * j) - 1 / (1 + gamma * j))
                                   / (0.1 / (1 + gamma * j)), rel=1e-9)
    assert sparse > 0.97


def test_release_late_in_a_two_age_window_adds_more_than_early():
    # Ages 1..2 share the density dependence: a fish released at age 2 faces it once, a fish
    # released at age 1 twice, and an age-1 release also crowds last year's cohort. So at
    # capacity age-2 releases add more per released fish.
    p = make_params(dd_strength=1.0, dd_window_end_age_yr=2, release_survival=1.0)
    early, _ = _window_gain(p, release_age=1, start_scale=1.0)
    late, _ = _window_gain(p, release_age=2, start_scale=1.0)
    after, _ = _window_gain(p, release_age=3, start_scale=1.0)
    assert early < late < after == pytest.approx(1.0, rel=1e-12)


def test_policy_releases_and_f_equal_the_same_given_as_arrays():
    # A policy that returns the same releases and F as arrays passed up front must give
    # identical results (same arithmetic, same order): exact equality.
    from carpmodel.model.dynamics import YearControl

    p = make_params(lorenzen_c=1.0, initial_f_per_yr=0.3)
    n_years = 8
    release, length = _releases(n_years, p.n_age, 2, 1, 5e4, 9.0)
    f = np.linspace(0.2, 0.0, n_years)
    seen = []

    def policy(y, estimate):
        seen.append(float(estimate))
        return YearControl(release_fish=release[y], release_length_cm=length[y], f_per_yr=f[y])

    a = simulate(p, n_years=n_years, f_per_yr=f, release_fish=release, release_length_cm=length)
    errors = np.full(n_years, 0.1)
    b = simulate(p, n_years=n_years, policy=policy, survey_log_errors=errors)
    for name in ("biomass_t", "numbers", "released_fish", "f_per_yr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # the rule sees last year's biomass times q·exp(error), never this year's true biomass
    np.testing.assert_allclose(seen[1:], a.biomass_t[:-1] * float(p.survey_q) * np.exp(0.1), rtol=1e-14)


def test_depleted_start_has_the_asked_biomass_and_its_age_deviations():
    # Biomass of ages >= 1 on 1 January = depletion × the unfished one (exact scaling, rtol
    # 1e-12); an age deviation ε multiplies that age's share by exp(ε) before the scaling.
    p = make_params(lorenzen_c=1.0, initial_f_per_yr=0.5)
    ref = reference_points(p)
    numbers, length = depleted_state(p, 0.02)
    _, w = length, weight_g(np.maximum(length, 0.9), 0.012, 3.0)
    assert np.sum(numbers * w) / 1e6 == pytest.approx(0.02 * float(ref.start_biomass0_t), rel=1e-12)
    assert np.all(numbers[:, 0] == 0) and np.all(numbers[HATCHERY] == 0)
    devs = np.array([0.5, 0.0, -0.5])
    shifted, _ = depleted_state(p, 0.02, age_deviations=devs)
    ratio = shifted[WILD, 1:] / numbers[WILD, 1:]
    np.testing.assert_allclose(ratio[:3] / ratio[3], np.exp(devs), rtol=1e-12)
    np.testing.assert_allclose(ratio[3:], ratio[3], rtol=1e-12)
    # under the F that shaped it and no catch taken the stock grows (it is below equilibrium)
    state = simulate(p, n_years=10, initial_numbers=numbers, initial_length_state_cm=length)
    assert state.total_biomass_t[-1] > 2 * state.total_biomass_t[0]


@pytest.mark.parametrize(("change", "message"), [
    ({"r0": np.array([1e6, np.nan])}, "r0: expected finite values"),
    ({"max_egg_survival": 1.5}, "max_egg_survival: expected values in (0, 1)"),
    ({"dd_window_end_age_yr": 30.0}, "dd_window_end_age_yr: expected integers in 1..11"),
    ({"max_age_yr": 2}, "max_age_yr: expected an integer >= 3"),
    ({"recruitment": "hockey_stick"}, "recruitment: expected 'beverton_holt' or 'ricker'"),
])
def test_replace_checks_the_fields_it_changes(change, message):
    from carpmodel.errors import ConfigError

    p = make_params()
    with pytest.raises(ConfigError, match=re.escape(message)):
        p.replace(**change)
    with pytest.raises(TypeError, match="no field growth"):
        p.replace(growth=1.0)
    q = p.replace(r0=np.array([1e6, 2e6]))
    assert q.batch_shape == (2,) and not q.r0.flags.writeable and p.r0.shape == ()
    assert q.max_egg_survival is p.max_egg_survival     # unchanged fields are shared, not copied
    with pytest.raises(ConfigError, match=re.escape("expected integers in 1..3")):  # window vs new A
        make_params(dd_window_end_age_yr=5).replace(max_age_yr=4)


def test_the_first_survey_estimate_a_policy_reads_does_not_depend_on_the_batch():
    # Computed by simulate from the start state when not given: each row's cells are summed in
    # the same order whatever the batch (a sum over a strided view of the batch added them in
    # another order for 10 of 23 rows: last-bit differences that a trigger or ramp can act on).
    rng = np.random.default_rng(7)
    n = 23
    steep, m, f0 = rng.uniform(0.003, 0.049, n), rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 1.5, n)

    class Recorder:
        def __init__(self):
            self.first = None

        def __call__(self, year_index, survey_estimate_t):
            if year_index == 0:
                self.first = np.array(survey_estimate_t)
            return YearControl()

    for dtype in (np.float64, np.float32):
        def first_estimate(rows: slice, dtype=dtype):
            policy = Recorder()
            simulate(make_params(max_egg_survival=steep[rows], m_ref_per_yr=m[rows], lorenzen_c=1.0,
                                 initial_f_per_yr=f0[rows]), n_years=2, policy=policy, dtype=dtype)
            return policy.first

        full = first_estimate(slice(None))
        alone = np.concatenate([first_estimate(slice(i, i + 1)) for i in range(n)])
        np.testing.assert_array_equal(full, alone)


def test_zero_years_and_forcing_longer_than_the_run_with_deviations():
    # per-year inputs are cut to the simulated years before they are combined: recruitment
    # multipliers for 30 years and deviations for 5, 4 years run; and a run of no years at all
    p = make_params(max_egg_survival=np.array([0.006, 0.02]))
    forcing = ProcessMultipliers(recruitment=np.linspace(0.9, 1.1, 30), growth_k=np.linspace(0.9, 1.1, 30))
    devs = np.zeros((2, 5))
    short = simulate(p, n_years=4, multipliers=forcing, log_rec_devs=devs)
    same = simulate(p, n_years=4, multipliers=ProcessMultipliers(recruitment=forcing.recruitment[:4],
                                                                 growth_k=forcing.growth_k[:4]))
    np.testing.assert_array_equal(short.biomass_t, same.biomass_t)
    none = simulate(p, n_years=0, multipliers=forcing, log_rec_devs=devs, catch_t=np.ones(30))
    assert none.biomass_t.shape == (2, 0)
    np.testing.assert_array_equal(none.final_numbers, simulate(p, n_years=0).final_numbers)


def test_releases_given_by_age_only_are_the_same_every_year_with_a_python_policy():
    # release_fish of shape (age,) means every year; the year loop of a policy written in Python
    # (called between years) reads it as the whole run does
    p = make_params()
    fish, length = np.zeros(p.n_age), np.zeros(p.n_age)
    fish[1], length[1] = 2e5, 8.0
    every_year = dict(release_fish=np.tile(fish, (5, 1)), release_length_cm=np.tile(length, (5, 1)))

    def no_decision(year_index, survey_estimate_t):
        return YearControl()

    by_age = simulate(p, n_years=5, release_fish=fish, release_length_cm=length, policy=no_decision)
    by_year = simulate(p, n_years=5, policy=no_decision, **every_year)
    np.testing.assert_array_equal(by_age.biomass_t, by_year.biomass_t)
    np.testing.assert_array_equal(by_age.released_fish, 2e5)
