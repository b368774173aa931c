"""The engine-facing plan of a strategy set: release arrays, trigger switching, harvest rules,
release costs, and the policy run by the engine.

Tolerances: exact equality where the code only copies, masks or multiplies by 0/1 (release
arrays, trigger switching, F = 0); rel 1e-14 where a value passes through a few float
operations (power, log/exp interpolation, a short sum in another order): a few ulps, so any
formula error fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.management.policy import build_plan, build_policy, release_cost
from carpmodel.management.strategies import (
    BudgetReleases,
    ClosureContinued,
    ConstantF,
    ConstantReleases,
    CostModel,
    PulseReleases,
    RampHCR,
    ScheduledReleases,
    Strategy,
    StrategySet,
)
from carpmodel.model.dynamics import simulate
from carpmodel.model.growth import length_at_weight_cm
from carpmodel.model.params import Parameters

YEARS = np.arange(2025, 2041)
N_AGE = 8
LW_A, LW_B = 0.012, 3.0
#: (W/10 g)^0.7 on two points: log-log interpolation between them is exactly that power law
COSTS = CostModel({10.0: 1.0, 100.0: 10.0 ** 0.7}, currency="units", assumed=True, source="test")


def policy_for(*strategies: Strategy, batch: tuple[int, ...] | None = None, costs: CostModel = COSTS):
    batch = batch or (len(strategies),)
    return build_policy(StrategySet(strategies, costs), None, YEARS, N_AGE, LW_A, LW_B, batch)


REFERENCE = Strategy("no_releases")


def engine_params() -> Parameters:
    """A stock of N_AGE ages the policy tests run the engine on (~100 t, Lorenzen c = 1)."""
    return Parameters(r0=1e9, max_egg_survival=0.01, l_inf_cm=55.0, k_per_yr=0.12, hatch_time_yr=0.45,
                      hatch_length_cm=0.9, lw_a=LW_A, lw_b=LW_B, maturity_l50_cm=25.0, maturity_slope_cm=2.0,
                      fecundity_eggs_per_g=25.0, female_fraction=0.5, m_ref_per_yr=0.3,
                      m_ref_length_cm=30.0, lorenzen_c=1.0, dd_strength=0.5, dd_window_end_age_yr=1,
                      release_survival=0.4, relative_reproductive_success=0.8, selectivity_l50_cm=20.0,
                      selectivity_slope_cm=2.0, survey_l50_cm=3.0, survey_slope_cm=0.85,
                      max_age_yr=N_AGE - 1)


def test_release_age_beyond_the_model_ages_is_refused_naming_the_component():
    s = Strategy("old", (ConstantReleases(1.0), ConstantReleases(1.0, age_yr=N_AGE)))
    with pytest.raises(ConfigError, match=r"strategies\.old\.releases\[1\]\.age_yr"):
        build_plan(StrategySet((REFERENCE, s), COSTS), None, YEARS, N_AGE)


# --------------------------------------------------------------------------- policy: releases


def test_a_strategy_releasing_zero_fish_gives_exactly_zero_arrays():
    zero = Strategy("zero", (ConstantReleases(0.0), PulseReleases(0.0, 2, 2025, age_yr=3),
                             BudgetReleases(0.0, ((1, 10.0, 1.0),))))
    policy = policy_for(REFERENCE, zero, batch=(2, 3))
    for y in range(YEARS.size):
        control = policy(y, np.full((2, 3), 1e4))
        assert control.release_fish.shape == (2, 3, N_AGE)
        assert np.all(control.release_fish == 0.0)
        assert np.all(control.f_per_yr == 0.0)
    assert np.all(release_cost(policy, np.zeros((2, 3, YEARS.size))) == 0.0)


def test_constant_releases_at_their_age_and_length_from_weight():
    s = Strategy("sq", (ConstantReleases(20e6, age_yr=1, weight_g=10.0),
                        ConstantReleases(5e6, age_yr=2, weight_g=50.0)))
    control = policy_for(REFERENCE, s)(0, np.zeros(2))
    expected = np.zeros(N_AGE)
    expected[1], expected[2] = 20e6, 5e6
    np.testing.assert_array_equal(control.release_fish[1], expected)
    # the length the engine receives is the length-weight inverse of the release weight
    assert control.release_length_cm[1, 1] == pytest.approx((10.0 / LW_A) ** (1 / LW_B), rel=1e-14)
    assert control.release_length_cm[1, 2] == pytest.approx((50.0 / LW_A) ** (1 / LW_B), rel=1e-14)


def test_two_sizes_at_one_age_enter_at_their_numbers_weighted_mean_length():
    s = Strategy("mix", (ConstantReleases(3.0, weight_g=10.0), ConstantReleases(1.0, weight_g=80.0)))
    control = policy_for(REFERENCE, s)(0, np.zeros(2))
    lengths = length_at_weight_cm(np.array([10.0, 80.0]), LW_A, LW_B)
    assert control.release_length_cm[1, 1] == pytest.approx((3 * lengths[0] + lengths[1]) / 4, rel=1e-14)


def test_release_length_follows_a_length_weight_relation_that_varies_by_draw():
    s = Strategy("sq", (ConstantReleases(1.0),))
    lw_b = np.array([2.9, 3.0, 3.1])[None, None, :]
    policy = build_policy(StrategySet((REFERENCE, s), COSTS), None, YEARS, N_AGE, LW_A, lw_b, (2, 1, 3))
    length = policy(0, np.zeros((2, 1, 3))).release_length_cm[1, 0, :, 1]
    np.testing.assert_allclose(length, (10.0 / LW_A) ** (1 / lw_b.ravel()), rtol=1e-14)


def test_biomass_trigger_switches_releases_off_exactly_at_the_threshold_and_back_on_below():
    threshold = 100_000.0
    s = Strategy("trig", (ConstantReleases(20e6),), biomass_trigger_t=threshold)
    free = Strategy("free", (ConstantReleases(20e6),))
    policy = policy_for(REFERENCE, s, free, batch=(3, 5))
    # the policy reads only the estimate it is passed (the simulated survey), per batch member
    just_below = np.nextafter(threshold, 0.0)
    estimate = np.tile([threshold - 1e-6, threshold, threshold + 1.0, 0.0, just_below], (3, 1))
    released = policy(3, estimate).release_fish.sum(axis=-1)
    np.testing.assert_array_equal(released[1], [20e6, 0.0, 0.0, 20e6, 20e6])
    np.testing.assert_array_equal(released[2], [20e6] * 5)  # no trigger: always
    # back on when the estimate falls below again
    below = policy(4, np.full((3, 5), threshold / 2)).release_fish.sum(axis=-1)
    np.testing.assert_array_equal(below[1], [20e6] * 5)


def test_pulses_occur_every_k_years_from_the_first_year():
    s = Strategy("pulse", (PulseReleases(9e6, every_years=3, first_year=2027),))
    policy = policy_for(REFERENCE, s)
    released = np.array([policy(y, np.zeros(2)).release_fish[1].sum() for y in range(YEARS.size)])
    pulse_years = YEARS[released > 0]
    np.testing.assert_array_equal(pulse_years, [2027, 2030, 2033, 2036, 2039])
    assert np.all(released[released > 0] == 9e6)


def test_schedule_releases_only_in_listed_years_and_ignores_years_outside_the_projection():
    s = Strategy("sched", (ScheduledReleases({2020: 1.0, 2026: 2.0, 2031: 3.0}),))
    plan = build_plan(StrategySet((REFERENCE, s), COSTS), None, YEARS, N_AGE)
    expected = np.zeros(YEARS.size)
    expected[YEARS == 2026], expected[YEARS == 2031] = 2.0, 3.0
    np.testing.assert_array_equal(plan.planned_total[1], expected)


def test_start_year_and_stop_after_year_bound_the_release_years():
    s = Strategy("window", (ConstantReleases(1e6),), start_year=2027, stop_after_year=2030)
    policy = policy_for(REFERENCE, s)
    released = np.array([policy(y, np.zeros(2)).release_fish[1].sum() for y in range(YEARS.size)])
    np.testing.assert_array_equal(YEARS[released > 0], [2027, 2028, 2029, 2030])


def test_budget_buys_fish_at_their_cost_and_spends_exactly_the_budget():
    s = Strategy("budget", (BudgetReleases(1000.0, ((1, 10.0, 0.4), (3, 100.0, 0.6))),))
    plan = build_plan(StrategySet((REFERENCE, s), COSTS), None, YEARS, N_AGE)
    fish = plan.planned_fish[1, 0]
    assert fish[1] == pytest.approx(400.0, rel=1e-14)                  # 0.4 × 1000 / 1.0
    assert fish[3] == pytest.approx(600.0 / 10.0 ** 0.7, rel=1e-14)   # 0.6 × 1000 / 100^0.7·10^-0.7
    np.testing.assert_allclose(plan.planned_cost[1], 1000.0, rtol=1e-14)


# --------------------------------------------------------------------------- policy: harvest


def test_ramp_hcr_is_zero_below_the_limit_linear_between_and_f_target_above_the_trigger():
    s = Strategy("ramp", harvest=RampHCR(0.1, b_trigger_t=60_000.0, b_limit_t=30_000.0))
    policy = policy_for(REFERENCE, s, batch=(2, 6))
    estimate = np.tile([0.0, 30_000.0, 37_500.0, 45_000.0, 60_000.0, 90_000.0], (2, 1))
    f = policy(int(np.flatnonzero(YEARS == 2031)[0]), estimate).f_per_yr
    # by hand: 0.1·(B − 30000)/30000 between the points
    np.testing.assert_allclose(f[1], [0.0, 0.0, 0.025, 0.05, 0.1, 0.1], rtol=1e-14, atol=0)
    np.testing.assert_array_equal(f[0], 0.0)


@pytest.mark.parametrize("harvest", [ClosureContinued(), ConstantF(0.3), RampHCR(0.2, 2.0, 1.0)],
                         ids=["closure", "constant_f", "ramp_hcr"])
def test_no_fishing_through_2030_under_every_rule(harvest):
    policy = policy_for(REFERENCE, Strategy("h", harvest=harvest))
    big = np.full(2, 1e9)
    for y, year in enumerate(YEARS):
        f = policy(y, big).f_per_yr[1]
        if year <= 2030 or isinstance(harvest, ClosureContinued):
            assert f == 0.0, year
        else:
            assert f == pytest.approx(0.3 if isinstance(harvest, ConstantF) else 0.2, rel=1e-15), year


def test_constant_f_starts_in_its_from_year():
    policy = policy_for(REFERENCE, Strategy("f", harvest=ConstantF(0.2, from_year=2035)))
    f = np.array([policy(y, np.zeros(2)).f_per_yr[1] for y in range(YEARS.size)])
    np.testing.assert_array_equal(f, np.where(YEARS >= 2035, 0.2, 0.0))


# --------------------------------------------------------------------------- costs


def test_cost_adds_up_over_classes_and_is_zero_when_a_trigger_switches_a_year_off():
    s = Strategy("two", (ConstantReleases(1e6, weight_g=10.0),
                         ConstantReleases(2e5, age_yr=3, weight_g=100.0),
                         BudgetReleases(50.0, ((1, 40.0, 0.5), (2, 10.0, 0.5)))), biomass_trigger_t=1000.0)
    policy = policy_for(REFERENCE, s, batch=(2, 4))
    # estimates per batch member and year: member 0 always low, 3 always high, 1 and 2 alternate
    estimate = np.zeros((2, 4, YEARS.size))
    estimate[:, 1, ::2] = estimate[:, 2, 1::2] = estimate[:, 3] = 5000.0
    released = np.stack([policy(y, estimate[..., y]).release_fish.sum(axis=-1) for y in range(YEARS.size)],
                        axis=-1)
    total = release_cost(policy, released)
    by_class = release_cost(policy, released, by_class=True)
    assert by_class.shape == (2, 4, 4, YEARS.size)
    # the parts sum to the total (rel 1e-14: a four-term float sum in another order)
    np.testing.assert_allclose(by_class.sum(axis=-2), total, rtol=1e-14, atol=0)
    # planned cost per year by hand: 1e6·1 + 2e5·10^0.7 + the whole budget (50)
    per_year = 1e6 + 2e5 * 10.0 ** 0.7 + 50.0
    np.testing.assert_allclose(total[1, 0], per_year, rtol=1e-14)
    assert np.all(total[1, 3] == 0.0) and np.all(total[0] == 0.0)
    np.testing.assert_array_equal(total[1, 1] == 0.0, estimate[1, 1] >= 1000.0)
    np.testing.assert_array_equal(total[1, 2] == 0.0, estimate[1, 2] >= 1000.0)


def test_release_cost_of_a_dataarray_keeps_its_labels():
    xr = pytest.importorskip("xarray")
    s = Strategy("sq", (ConstantReleases(10.0, weight_g=100.0),))
    plan = build_plan(StrategySet((REFERENCE, s), COSTS), None, YEARS, N_AGE)
    released = xr.DataArray(np.broadcast_to(plan.planned_total[:, None, :], (2, 3, YEARS.size)),
                            dims=("strategy", "draw", "year"),
                            coords={"strategy": ["no_releases", "sq"], "year": YEARS})
    cost = release_cost(plan, released)
    assert cost.dims == ("strategy", "draw", "year")
    np.testing.assert_allclose(cost.sel(strategy="sq").values, 10.0 * 10.0 ** 0.7, rtol=1e-14)


# --------------------------------------------------------------------------- with the engine


def test_engine_runs_the_policy_over_a_strategy_axis_and_releases_what_was_planned():
    # A trigger far above any biomass releases every year; one at 1 t (the stock holds ~100 t)
    # never releases; the
    # engine's released_fish (fish before acute survival) equals the plan exactly.
    p = engine_params()
    strategies = (REFERENCE, Strategy("always", (ConstantReleases(2e5),), biomass_trigger_t=1e12),
                  Strategy("never", (ConstantReleases(2e5),), biomass_trigger_t=1.0),
                  Strategy("fished", harvest=ConstantF(0.2)))
    policy = build_policy(StrategySet(strategies, COSTS), None, YEARS, p.n_age, p.lw_a, p.lw_b, (4, 2))
    # the engine's batch comes from its array arguments: survey errors carry the strategy axis
    errors = np.zeros((4, 2, YEARS.size))
    out = simulate(p, n_years=YEARS.size, policy=policy, survey_log_errors=errors, keep_numbers=False)
    np.testing.assert_array_equal(out.released_fish[1], 2e5)
    np.testing.assert_array_equal(out.released_fish[[0, 2, 3]], 0.0)
    np.testing.assert_array_equal(out.f_per_yr[3], np.broadcast_to(np.where(YEARS > 2030, 0.2, 0.0), (2, 16)))
    np.testing.assert_allclose(release_cost(policy, out.released_fish)[1], 2e5, rtol=1e-14)
    assert out.biomass_t[1, 0, -1] > out.biomass_t[0, 0, -1]  # releases of an unfished stock add biomass


class _YearByYear:
    """The same policy without its tables: simulate calls it between years (the Python path)."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, year_index, survey_estimate_t):
        return self.policy(year_index, survey_estimate_t)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_compiled_rule_gives_the_year_by_year_policy_bit_for_bit(dtype):
    # Triggers and a ramp set between the stock's biomass values (so decisions switch during
    # the run, driven by random survey errors in the state's precision), constant F, two release
    # sizes at one age, a length-weight exponent that varies by draw (one release program per
    # strategy and draw), a survey q that is not 1, and the strategies on the middle axis of the
    # batch. The survey errors stop a year short: the last year's estimate is never read.
    p = Parameters(r0=1e9, max_egg_survival=0.01, l_inf_cm=55.0, k_per_yr=0.12, hatch_time_yr=0.45,
                   hatch_length_cm=0.9, lw_a=LW_A, lw_b=np.array([2.95, 3.0, 3.05])[:, None, None],
                   maturity_l50_cm=25.0, maturity_slope_cm=2.0, fecundity_eggs_per_g=25.0,
                   female_fraction=0.5, m_ref_per_yr=0.3, m_ref_length_cm=30.0, lorenzen_c=1.0,
                   dd_strength=0.5, dd_window_end_age_yr=1, release_survival=0.4,
                   relative_reproductive_success=0.8, selectivity_l50_cm=20.0, selectivity_slope_cm=2.0,
                   survey_l50_cm=3.0, survey_slope_cm=0.85, survey_q=0.7, max_age_yr=N_AGE - 1)
    errors = (0.3 * np.random.default_rng(5).standard_normal((3, 1, 4, YEARS.size - 1))).astype(dtype)
    level = 0.7 * float(np.median(simulate(p, n_years=YEARS.size, keep_numbers=False).biomass_t))
    strategies = (
        Strategy("triggered", (ConstantReleases(2e5, age_yr=1, weight_g=10.0),
                               ConstantReleases(1e5, age_yr=1, weight_g=40.0)), biomass_trigger_t=level),
        Strategy("ramp", (PulseReleases(3e5, every_years=3, first_year=2026, age_yr=2),),
                 harvest=RampHCR(f_target_per_yr=0.4, b_trigger_t=1.2 * level, b_limit_t=0.8 * level)),
        Strategy("constant_f", harvest=ConstantF(0.2, from_year=2033)),
        REFERENCE,
    )
    policy = build_policy(StrategySet(strategies, COSTS), None, YEARS, p.n_age, p.lw_a, p.lw_b, (3, 4, 4),
                          strategy_axis=1)
    kwargs = dict(n_years=YEARS.size, survey_log_errors=errors, keep_numbers=True, keep_flows=True,
                  batch_shape=(3, 4, 4), dtype=dtype)
    compiled = simulate(p, policy=policy, **kwargs)
    year_by_year = simulate(p, policy=_YearByYear(policy), **kwargs)
    for name in ("biomass_t", "released_fish", "f_per_yr", "catch_t", "numbers", "length_cm",
                 "catch_numbers"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(year_by_year, name), err_msg=name)
    # the decisions did switch: some strategy-years released, some not; some fished under the ramp
    released = compiled.released_fish[:, 0]
    assert 0 < np.count_nonzero(released) < released.size
    ramp_f = compiled.f_per_yr[:, 1]
    assert np.any((ramp_f > 0) & (ramp_f < 0.4)) and np.any(ramp_f == 0.4)


def test_a_subclass_that_decides_otherwise_is_called_year_by_year():
    """A StrategyPolicy subclass that changes a decision method but not tables() must not run
    its parent's compiled rule: tables() says so (None) and simulate calls it between years."""
    from carpmodel.management.policy import StrategyPolicy

    class Doubled(StrategyPolicy):
        calls = 0

        def __call__(self, year_index, survey_estimate_t):
            Doubled.calls += 1
            control = super().__call__(year_index, survey_estimate_t)
            return type(control)(release_fish=2 * control.release_fish,
                                 release_length_cm=control.release_length_cm, f_per_yr=control.f_per_yr)

    class NeverActive(StrategyPolicy):
        def active(self, survey_estimate_t):
            return np.zeros(np.shape(survey_estimate_t))

    strategies = StrategySet((REFERENCE, Strategy("s", (ConstantReleases(2e5),))), COSTS)
    plan = build_plan(strategies, None, YEARS, N_AGE)
    p = engine_params()
    kwargs = dict(n_years=YEARS.size, keep_numbers=False, batch_shape=(2,))
    assert StrategyPolicy(plan, lw_a=LW_A, lw_b=LW_B, batch_shape=(2,)).tables() is not None
    doubled = Doubled(plan, lw_a=LW_A, lw_b=LW_B, batch_shape=(2,))
    assert doubled.tables() is None
    out = simulate(p, policy=doubled, **kwargs)
    assert Doubled.calls == YEARS.size
    np.testing.assert_array_equal(out.released_fish[1], 4e5)
    never = NeverActive(plan, lw_a=LW_A, lw_b=LW_B, batch_shape=(2,))
    assert never.tables() is None
    np.testing.assert_array_equal(simulate(p, policy=never, **kwargs).released_fish, 0.0)
    # a decision method replaced on one instance (found by a review) counts the same
    patched = StrategyPolicy(plan, lw_a=LW_A, lw_b=LW_B, batch_shape=(2,))
    patched.active = lambda survey_estimate_t: np.zeros(np.shape(survey_estimate_t))
    assert patched.tables() is None
    np.testing.assert_array_equal(simulate(p, policy=patched, **kwargs).released_fish, 0.0)
    # the tables of a policy are computed once
    plain = StrategyPolicy(plan, lw_a=LW_A, lw_b=LW_B, batch_shape=(2,))
    assert plain.tables() is plain.tables()
