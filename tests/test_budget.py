"""The budget question: building and checking it, the optimiser on known functions, and the
optimiser wired to projections of an ensemble (per member and pooled).

Tolerances: the optimisers stop at share tolerances of ~1e-4, so 2e-3 on the shares is a pass
with margin; rel 1e-12 where spending is a product of floats; rel 1e-4 where a float32
projection is compared with the optimiser's float64 gains.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
from carpmodel.management.budget import (
    BudgetProblem,
    budget_strategy,
    budget_table,
    check_problem,
    optimise_budget,
    optimise_release_budget,
    resolve_problem,
    softmax_shares,
)
from carpmodel.management.policy import build_plan
from carpmodel.management.projection import project, strategy_setup
from carpmodel.management.strategies import REFERENCE_STRATEGY, CostModel, Strategy, StrategySet

YEARS = np.arange(2025, 2041)
N_AGE = 8
#: (W/10 g)^0.7 on two points: log-log interpolation between them is exactly that power law
COSTS = CostModel({10.0: 1.0, 100.0: 10.0 ** 0.7}, currency="units", assumed=True, source="test")


REFERENCE = Strategy("no_releases")


# --------------------------------------------------------------------------- the question


def test_resolve_problem_takes_the_file_or_the_amount_and_refuses_neither():
    from_file = BudgetProblem(1e6, options=((1, 10.0), (2, 50.0)), year=2040)
    assert resolve_problem(from_file, None, source="s.toml") == from_file
    replaced = BudgetProblem(3e6, options=((1, 10.0), (2, 50.0)), year=2040)
    assert resolve_problem(from_file, 3e6, source="s.toml") == replaced
    assert resolve_problem(None, 2e6, source="s.toml") == BudgetProblem(2e6)
    with pytest.raises(ConfigError, match=r"^--budget: no amount given and s\.toml has no \[budget\] table"):
        resolve_problem(None, None, source="s.toml")
    with pytest.raises(ConfigError, match="^--budget: budget_per_year"):
        resolve_problem(from_file, -1.0, source="s.toml")


def test_check_problem_refuses_a_scenario_or_year_the_projection_does_not_have():
    problem = BudgetProblem(1e6, options=((1, 10.0), (2, 50.0)), year=2040, scenario="ssp245")
    check_problem(problem, COSTS, N_AGE, scenarios=("ssp245",), first_year=2025, last_year=2040)
    with pytest.raises(ConfigError, match=r"^budget.scenario: expected one of the projection's scenarios "
                                          r"\['baseline'\], got 'ssp245'"):
        check_problem(problem, COSTS, N_AGE, scenarios=("baseline",), first_year=2025, last_year=2040)
    with pytest.raises(ConfigError, match=r"^budget.year: expected a projection year \(2025-2039\), "
                                          r"got 2040"):
        check_problem(problem, COSTS, N_AGE, scenarios=("ssp245",), first_year=2025, last_year=2039)
    with pytest.raises(ConfigError, match=r"^budget.options\[1\].age_yr"):
        check_problem(problem, COSTS, 2, scenarios=("ssp245",), first_year=2025, last_year=2040)


def test_budget_options_must_lie_within_the_cost_table_and_the_model_ages():
    with pytest.raises(ConfigError, match=r"budget.options\[0\].weight_g: expected a weight within the cost "
                                          r"table \(10-100 g\), got 5"):
        BudgetProblem(1e6, options=((0, 5.0), (1, 10.0))).check(COSTS, N_AGE)
    with pytest.raises(ConfigError, match=r"budget.options\[1\].age_yr"):
        BudgetProblem(1e6, options=((1, 10.0), (9, 50.0))).check(COSTS, N_AGE)


# --------------------------------------------------------------------------- the optimiser


def test_softmax_shares_lie_on_the_simplex():
    shares = softmax_shares([2.0, -1.0, 0.5])
    assert shares.shape == (4,) and np.all(shares > 0) and shares.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(shares / shares[-1], np.exp([2.0, -1.0, 0.5, 0.0]), rtol=1e-14)


@pytest.mark.parametrize("method", ["nelder_mead", "slsqp"])
def test_optimise_budget_finds_the_optimum_of_a_concave_function_of_shares(method):
    # Σ w_i·log(s_i) on the simplex is maximised at s = w/Σw (Lagrange); the optimisers stop at
    # share tolerances of ~1e-4, so 2e-3 on the shares is a pass with margin, not a loose check.
    weights = np.array([0.5, 0.3, 0.2])

    def evaluate(shares):
        return float(np.sum(weights * np.log(np.maximum(shares, 1e-300))))

    result = optimise_budget(evaluate, 3, method=method)
    np.testing.assert_allclose(result.shares, weights, atol=2e-3)
    assert result.shares.sum() == pytest.approx(1.0, abs=1e-12)
    assert result.value == pytest.approx(evaluate(weights), abs=1e-5)
    assert result.converged and result.n_evaluations > 0
    # deterministic: the same call gives the same answer bit for bit
    again = optimise_budget(evaluate, 3, method=method)
    np.testing.assert_array_equal(again.shares, result.shares)


def test_optimise_budget_through_budget_strategy_finds_the_hand_computed_split():
    # evaluate through budget_strategy → plan (as the lead's projection wrapper will): a concave
    # value of the fish bought at each size, whose optimal split is known by hand; 2e-3 as above.
    options = [(1, 10.0), (2, 100.0)]

    def evaluate(shares):
        s = budget_strategy("opt", 1000.0, options, shares)
        plan = build_plan(StrategySet((REFERENCE, s), COSTS), None, YEARS[:1], N_AGE)
        fish = plan.planned_fish[1, 0]
        # value = sqrt(n1) + sqrt(n2) with n1 = 1000·s (1 unit per 10-g fish) and
        # n2 = 1000·(1 − s)/k (k = 10^0.7 per 100-g fish): sqrt(s) + sqrt((1 − s)/k) peaks at s* = k/(1 + k)
        return math.sqrt(fish[1]) + math.sqrt(fish[2])

    k = 10.0 ** 0.7
    result = optimise_budget(evaluate, 2)
    assert result.shares[0] == pytest.approx(k / (1 + k), abs=2e-3)


def test_optimise_budget_refuses_bad_starting_shares():
    with pytest.raises(ConfigError, match="initial_shares"):
        optimise_budget(lambda s: 0.0, 2, initial_shares=[0.9, 0.2])
    one = optimise_budget(lambda s: 7.0, 1)
    assert one.shares.tolist() == [1.0] and one.value == 7.0 and one.n_evaluations == 1


def test_optimise_budget_multistart_reaches_a_corner_and_escapes_a_local_optimum():
    # a linear value is maximised on a corner, which softmax logits only approach: multistart
    # evaluates the exact corners, so the answer is the corner itself, value exact
    result = optimise_budget(lambda s: float(s @ [1.0, 3.0, 2.0]), 3, multistart=True)
    assert result.shares.tolist() == [0.0, 1.0, 0.0] and result.value == 3.0 and result.corner
    # two bumps, the higher one near option 0: from equal shares the simplex climbs the lower
    # bump (near option 1); a start near option 0 finds the higher one
    def bumps(s):
        return float(np.exp(-((s[0] - 0.85) / 0.05) ** 2) * 2.0 + np.exp(-((s[1] - 0.6) / 0.2) ** 2))

    single = optimise_budget(bumps, 2)
    multi = optimise_budget(bumps, 2, multistart=True)
    assert single.value < 1.5 < multi.value
    assert multi.shares[0] == pytest.approx(0.85, abs=2e-3) and multi.n_starts == 3


# --------------------------------------------------------------------------- wired to projections
# two_fits (conftest): the base structure and constant M fitted on the bundled data, shared with
# test_ensemble.py


@pytest.fixture(scope="module")
def strategies() -> StrategySet:
    bundled = load_strategies(DEFAULT_STRATEGIES_FILE)
    return StrategySet(bundled.strategies[:3], bundled.costs)   # no_releases, status_quo, double_releases


def small_setup(strategies, n_age, **options):
    options = {"n_draws": 12, "last_year": 2040, "seed": 11, **options}
    return strategy_setup(strategies, n_age, **options)


def test_budget_optimiser_wired_to_a_projection_spends_the_budget_and_pairs_by_draw(two_fits, strategies):
    problem = BudgetProblem(2e7, options=((1, 10.0), (2, 50.0)), year=2035, scenario="baseline")
    setup = small_setup(strategies, 26, n_draws=20, last_year=2045)
    result = optimise_release_budget(two_fits, setup, problem, strategies.costs)
    assert list(result["structure"].values) == [*(m.name for m in two_fits.included), "pooled"]
    shares = result["share"].values
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(shares >= 0)
    # spending: planned cost of the chosen split is the budget every year, never more
    for row in shares:
        plan = build_plan([Strategy(REFERENCE_STRATEGY), problem.strategy(row)], strategies.costs,
                          np.arange(2025, 2036), 26)
        assert np.all(plan.planned_cost[1] <= 2e7 * (1 + 1e-12))
        np.testing.assert_allclose(plan.planned_cost[1], 2e7, rtol=1e-12)
    spent = (result["fish_per_year"] * result["option_cost_per_fish"]).sum("release_option")
    np.testing.assert_allclose(spent, 2e7, rtol=1e-12)
    # the optimum is at least as good as putting the whole budget on either size
    best_corner = result["corner_gain_median_t"].max("release_option").values
    assert np.all(result["objective_value"].values >= best_corner)
    # the reported gain is the paired gain of a full projection with the same seed (float32 there)
    member = two_fits.included[0]
    chosen = problem.strategy(shares[0])
    full = project(member.result, strategy_setup(StrategySet((Strategy(REFERENCE_STRATEGY), chosen),
                                                             strategies.costs), 26,
                                                 n_draws=20, last_year=2045, seed=11))
    gain = (full["biomass_t"].sel(strategy=chosen.name) - full["biomass_t"].sel(strategy=REFERENCE_STRATEGY))
    by_projection = float(np.quantile(gain.sel(year=2035, scenario="baseline").values.astype(float), 0.5))
    assert float(result["gain_median_t"].isel(structure=0)) == pytest.approx(by_projection, rel=1e-4)
    rows = budget_table(result)
    assert len(rows) == 3 and {"share_age1_10g", "share_age2_50g", "cost_per_t_gained"} <= set(rows[0])


def test_budget_reports_p_beats_status_quo_and_agreement_across_structures(two_fits, strategies):
    # the chosen split against the status quo, paired by draw: by hand from a full projection of
    # member 0 with the same seed (float32 there, so one of 20 draws may flip at a near tie);
    # agreement by hand from the dominant options and the member weights (0.5 each)
    problem = BudgetProblem(2e7, options=((1, 10.0), (2, 50.0)), year=2035, scenario="baseline")
    setup = small_setup(strategies, 26, n_draws=20, last_year=2045)
    status_quo = strategies.strategies[1]
    result = optimise_release_budget(two_fits, setup, problem, strategies.costs, status_quo=status_quo)
    p = result["p_beats_status_quo"].values
    assert np.all((p >= 0) & (p <= 1))
    member = two_fits.included[0]
    chosen = problem.strategy(result["share"].values[0])
    three = StrategySet((Strategy(REFERENCE_STRATEGY), status_quo, chosen), strategies.costs)
    full = project(member.result, strategy_setup(three, 26, n_draws=20, last_year=2045, seed=11))
    b = full["biomass_t"].sel(year=2035, scenario="baseline")
    by_hand = float((b.sel(strategy=chosen.name) > b.sel(strategy=status_quo.name)).mean())
    assert float(p[0]) == pytest.approx(by_hand, abs=1 / 20 + 1e-12)
    dominant = result["dominant_option"].values
    shares = result["share"].values
    assert list(dominant) == [str(result["release_option"].values[i]) for i in shares.argmax(axis=1)]
    agreement = float(np.mean(dominant[:2] == dominant[2]))
    assert float(result["member_agreement"]) == pytest.approx(agreement, abs=1e-12)
    assert result.attrs["robust_across_structures"] == ("true" if agreement >= 0.8 else "false")
    row = budget_table(result)[0]
    assert row["robust_across_structures"] is (agreement >= 0.8) and "p_beats_status_quo" in row


def test_budget_evaluates_the_chosen_split_on_draws_the_optimiser_did_not_see(two_fits, strategies):
    # held out: draws 20-39 of the same seed, i.e. the last 20 of a 40-draw projection (a draw's
    # random numbers depend only on the seed and its index); in-sample: the first 20
    problem = BudgetProblem(2e7, options=((1, 10.0), (2, 50.0)), year=2035, scenario="baseline")
    setup = small_setup(strategies, 26, n_draws=20, last_year=2045)
    status_quo = strategies.strategies[1]
    result = optimise_release_budget(two_fits, setup, problem, strategies.costs, status_quo=status_quo)
    member = two_fits.included[0]
    chosen = problem.strategy(result["share"].values[0])
    three = StrategySet((Strategy(REFERENCE_STRATEGY), status_quo, chosen), strategies.costs)
    full = project(member.result, strategy_setup(three, 26, n_draws=40, last_year=2045, seed=11))
    b = full["biomass_t"].sel(year=2035, scenario="baseline").astype(float)
    gain = b.sel(strategy=chosen.name) - b.sel(strategy=REFERENCE_STRATEGY)
    cell = result.isel(structure=0)
    for key, draws in (("gain_median_t", slice(0, 20)), ("holdout_gain_median_t", slice(20, 40))):
        assert float(cell[key]) == pytest.approx(float(np.median(gain.values[draws])), rel=1e-4)
    assert float(cell["holdout_gain_median_t"]) != pytest.approx(float(cell["gain_median_t"]), rel=1e-3)
    beats = (b.sel(strategy=chosen.name) > b.sel(strategy=status_quo.name)).values[20:]
    p = float(cell["holdout_p_beats_status_quo"])
    assert p == pytest.approx(beats.mean(), abs=1 / 20 + 1e-12)   # float32 there: a near tie may flip
    assert float(cell["holdout_p_beats_status_quo_mc_se"]) == pytest.approx(np.sqrt(p * (1 - p) / 20))
    row = budget_table(result)[0]
    assert {"holdout_gain_median_t", "holdout_p_beats_status_quo",
            "holdout_p_beats_status_quo_mc_se"} <= set(row)


def test_budget_refuses_an_option_outside_the_cost_table_and_an_unprojected_scenario(two_fits, strategies):
    setup = small_setup(strategies, 26, n_draws=2)
    with pytest.raises(ConfigError, match=r"budget.options\[1\].weight_g"):
        outside = BudgetProblem(1e6, options=((1, 10.0), (3, 900.0)), scenario="baseline", year=2030)
        optimise_release_budget(two_fits, setup, outside, strategies.costs)
    with pytest.raises(ConfigError, match="budget.scenario"):
        optimise_release_budget(two_fits, setup, BudgetProblem(1e6, scenario="ssp585", year=2030),
                                strategies.costs)
