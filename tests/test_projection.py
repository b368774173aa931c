"""Stochastic projections: reproducible per-draw streams, common random numbers, invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.management.projection import ProjectionSetup, draw_randomness, load_projection, project
from carpmodel.model.dynamics import YearControl


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = build_spec(load_data("data"), default_config())
        return fit(spec)


def fixed_policy(fish_by_strategy, start_index=0):
    """Policy releasing the given numbers of age-1, 10-g fish per strategy from a year index."""
    def build(batch, years, params):
        fish = np.zeros((len(fish_by_strategy), 1, 1, params.n_age))
        fish[:, 0, 0, 1] = fish_by_strategy
        length = np.full_like(fish, 9.41)

        def policy(y, estimate):
            return YearControl(release_fish=fish if y >= start_index else 0.0 * fish,
                               release_length_cm=length, f_per_yr=0.0)
        return policy
    return build


def test_per_draw_streams_do_not_depend_on_which_draws_are_asked_for():
    whole = draw_randomness(7, range(6), 4, 10)
    part = draw_randomness(7, [4, 5], 4, 10)
    np.testing.assert_array_equal(whole.parameter_z[4:], part.parameter_z)
    np.testing.assert_array_equal(whole.recruitment_z[4:], part.recruitment_z)


def test_chunked_equals_unchunked_and_seed_reproduces(fitted):
    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=6, last_year=2040)
    a = project(fitted, setup)
    b = project(fitted, ProjectionSetup(**{**setup.__dict__, "chunk_draws": 4}))
    for name in ("biomass_t", "ssb_t", "recruits", "released_fish"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    c = project(fitted, setup)
    np.testing.assert_array_equal(a["biomass_t"].values, c["biomass_t"].values)


def test_an_in_memory_projection_keeps_only_its_own_arrays(fitted):
    # the engine's series are views of one buffer of the projected series of every strategy: an
    # unchunked projection copies them out (its result must not keep the buffer alive), and the
    # dynamic SSB0, read from the idle strategy's SSB, is a copy, not a view of every strategy's
    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=6, last_year=2040)
    ds = project(fitted, setup)
    for name, variable in ds.data_vars.items():
        values = variable.values
        owner = values if values.base is None else values.base
        assert owner.nbytes <= values.nbytes, name
    assert not np.shares_memory(ds["dynamic_ssb0_t"].values, ds["ssb_t"].values)


def test_a_chunked_projection_loads_into_memory_running_each_chunk_once(fitted, monkeypatch):
    from carpmodel.management import projection

    calls = []
    chunk_arrays = projection._chunk_arrays
    monkeypatch.setattr(projection, "_chunk_arrays", lambda *args: calls.append(1) or chunk_arrays(*args))
    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=7, last_year=2032)
    eager = project(fitted, setup)
    lazy = project(fitted, ProjectionSetup(**{**setup.__dict__, "chunk_draws": 3}))
    calls.clear()                                          # the template run of project() aside
    loaded = load_projection(lazy)
    assert len(calls) == 3                                 # chunks of 3, 3 and 1 draws, each run once
    assert not loaded.chunks and set(loaded.data_vars) == set(eager.data_vars)
    for name, variable in eager.data_vars.items():
        np.testing.assert_array_equal(loaded[name].values, variable.values, err_msg=name)
        assert loaded[name].dims == variable.dims and loaded[name].attrs == variable.attrs, name
    assert load_projection(eager) is eager      # in memory already: as it is


def test_zero_release_strategy_equals_no_releases_exactly(fitted):
    setup = ProjectionSetup(strategy_names=("no_releases", "zero"),
                            build_policy=fixed_policy([0.0, 0.0]), n_draws=4, last_year=2035)
    ds = project(fitted, setup)
    np.testing.assert_array_equal(ds.biomass_t.sel(strategy="no_releases").values,
                                  ds.biomass_t.sel(strategy="zero").values)


def test_strategies_identical_before_their_first_difference(fitted):
    # releases differ only from the 4th projection year (2028): every earlier year is equal
    # to the last bit, because the draws share all random numbers (common random numbers)
    setup = ProjectionSetup(strategy_names=("no_releases", "late"),
                            build_policy=fixed_policy([0.0, 2e7], start_index=3), n_draws=4,
                            last_year=2035)
    ds = project(fitted, setup)
    before = ds.biomass_t.sel(year=slice(2025, 2027))
    np.testing.assert_array_equal(before.sel(strategy="no_releases").values,
                                  before.sel(strategy="late").values)
    later = ds.biomass_t.sel(year=2035)
    assert np.all(later.sel(strategy="late").values > later.sel(strategy="no_releases").values)


def test_chunked_projection_is_dask_backed_and_runs_on_a_local_cluster(fitted, monkeypatch):
    pytest.importorskip("distributed")
    from carpmodel.cluster import connect

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)

    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=5, last_year=2032)
    eager = project(fitted, setup)
    lazy = project(fitted, ProjectionSetup(**{**setup.__dict__, "chunk_draws": 2}))
    assert lazy["biomass_t"].chunks is not None           # dask-backed until computed
    client = connect("local")
    try:
        computed = lazy.compute()                          # runs on the 2-worker LocalCluster
        # its workers run numpy on ordinary pages, as commands do (the switch returns the
        # setting it replaces), and this process's environment is as it was
        settings = client.run(lambda: __import__("carpmodel.cli", fromlist=["_"])._hugepage_setter()(False))
        assert set(settings.values()) == {False}
        assert "NUMPY_MADVISE_HUGEPAGE" not in __import__("os").environ
        loaded = load_projection(lazy)                     # falls back to compute() there
    finally:
        client.close()
        client.cluster.close()
    for name in ("biomass_t", "recruits", "dynamic_ssb0_t"):
        np.testing.assert_array_equal(eager[name].values, computed[name].values, err_msg=name)
        np.testing.assert_array_equal(eager[name].values, loaded[name].values, err_msg=name)


def test_process_deviates_do_not_depend_on_the_number_of_parameters_or_the_horizon():
    # ensemble members have different parameter counts (e.g. 69 recruitment deviations from
    # 1956 instead of 25 from 2000): their recruitment, survey and temperature deviates must
    # still be the same draw by draw, and a shorter horizon must see the first years unchanged
    short = draw_randomness(7, [0, 3], 32, 26)
    long = draw_randomness(7, [0, 3], 75, 76)
    np.testing.assert_array_equal(short.recruitment_z, long.recruitment_z[:, :26])
    np.testing.assert_array_equal(short.survey_z, long.survey_z[:, :26])
    np.testing.assert_array_equal(short.last_survey_z, long.last_survey_z)
    np.testing.assert_array_equal(short.parameter_z, long.parameter_z[:, :32])
    np.testing.assert_array_equal(short.anomaly_normals.standard_normal(5),
                                  long.anomaly_normals.standard_normal(5))
    # and they are not the parameter stream's numbers
    assert not np.array_equal(short.recruitment_z[:, :5], short.parameter_z[:, :5])


def test_a_shorter_projection_equals_the_first_years_of_a_longer_one(fitted):
    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=3, last_year=2045)
    long = project(fitted, setup)
    short = project(fitted, ProjectionSetup(**{**setup.__dict__, "last_year": 2033}))
    np.testing.assert_array_equal(short["biomass_t"].values,
                                  long["biomass_t"].sel(year=slice(2025, 2033)).values)


def test_a_survey_reading_rule_sees_the_same_first_estimate_whatever_the_horizon(fitted):
    # the rule's first decision reads the last fitted year's survey estimate: its error comes
    # from its own stream, not from the last projection year's deviate
    def proportional(batch, years, params):
        def policy(y, estimate):
            fish = np.zeros(np.shape(estimate) + (params.n_age,))
            fish[..., 1] = 100.0 * np.asarray(estimate)      # releases grow with the estimate
            return YearControl(release_fish=fish, release_length_cm=np.full_like(fish, 9.41))
        return policy

    setup = ProjectionSetup(strategy_names=("rule",), build_policy=proportional, n_draws=3,
                            last_year=2045)
    long = project(fitted, setup)
    short = project(fitted, ProjectionSetup(**{**setup.__dict__, "last_year": 2030}))
    for name in ("released_fish", "biomass_t"):
        np.testing.assert_array_equal(short[name].values, long[name].sel(year=slice(2025, 2030)).values,
                                      err_msg=name)


def test_prepared_draws_reused_for_another_policy_give_the_projection(fitted):
    # the budget optimiser prepares the draws once and reruns only the strategy part
    from carpmodel.management.projection import prepare_draws, simulate_strategies

    setup = ProjectionSetup(strategy_names=("no_releases", "status_quo"),
                            build_policy=fixed_policy([0.0, 2e7]), n_draws=4, last_year=2035)
    ds = project(fitted, setup)
    prepared = prepare_draws(fitted, setup)
    state = simulate_strategies(prepared, setup.build_policy((2, 1, 4), prepared.years, prepared.params), 2)
    np.testing.assert_array_equal(ds["biomass_t"].values, state.biomass_t.astype(np.float32))


def test_a_normal_draw_outside_the_model_is_pulled_towards_the_estimate(bundled_fit):
    # egg survival far below what one recruit needs to replace itself: no stock, R0 undefined,
    # the engine gives NaN; the draw is pulled halfway to the estimate until it runs, the
    # feasible draw beside it is left exactly as it is
    from carpmodel.inference.likelihood import objective, predict
    from carpmodel.management.projection import feasible_draws, outside_model

    theta = bundled_fit.theta
    i = bundled_fit.parameter_names.index("logit_max_egg_survival")
    outside = theta.copy()
    outside[i] = -14.0
    thetas = np.stack([theta + 0.01, outside])
    with np.errstate(all="ignore"):
        assert not np.isfinite(objective(bundled_fit.spec, outside))
    flagged = outside_model(*predict(bundled_fit.spec, thetas))
    np.testing.assert_array_equal(flagged, [False, True])
    moved = feasible_draws(bundled_fit, thetas, flagged)
    np.testing.assert_array_equal(moved[0], thetas[0])
    assert np.isfinite(objective(bundled_fit.spec, moved[1]))
    assert theta[i] > moved[1, i] > outside[i]          # between the draw and the estimate
    np.testing.assert_allclose(moved[1] - theta, (outside - theta) * (moved[1, i] - theta[i])
                               / (outside[i] - theta[i]), atol=1e-12)


def test_projected_cost_carries_the_strategies_currency(bundled_fit):
    """Issue #16 item 5: metrics.csv, the figures and the report read the cost's units; they
    must be the strategies file's currency, not a generic label (0.1.0 wrote "currency units")."""
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
    from carpmodel.management.projection import strategy_setup

    strategies = load_strategies(DEFAULT_STRATEGIES_FILE)
    setup = strategy_setup(strategies, bundled_fit.spec.base.n_age, n_draws=4, last_year=2030, seed=3)
    ds = project(bundled_fit, setup)
    assert ds["cost"].attrs["units"] == strategies.costs.currency
    assert "illustrative" in ds["cost"].attrs["long_name"]


def test_the_dynamic_ssb0_of_an_idle_strategy_is_the_separate_run_bit_for_bit(bundled_fit, monkeypatch):
    """A strategy that neither releases nor fishes (no_releases, closure continued) stands for the
    run without fishing and releases; it must give that run's SSB exactly, with strategies that
    release, trigger and fish in the same batch, and in float64 as in float32."""
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
    from carpmodel.management import projection
    from carpmodel.management.strategies import Strategy, StrategySet

    full = load_strategies(DEFAULT_STRATEGIES_FILE)
    fishing = [s for s in full.strategies if s.name == "reopen_fishing"]
    assert fishing, "the bundled strategies should include a fishing strategy"
    chosen = StrategySet(tuple([fishing[0]] + [s for s in full.strategies if s.name != "reopen_fishing"][:6]),
                         full.costs)
    assert isinstance(chosen.strategies[0], Strategy) and chosen.names[0] == "reopen_fishing"
    for dtype in ("float32", "float64"):
        setup = projection.strategy_setup(chosen, bundled_fit.spec.base.n_age, n_draws=5, last_year=2060,
                                          seed=11, scenario_names=("baseline",), dtype=dtype)
        batch = (len(chosen.names), 1, 5)
        policy = setup.build_policy(batch, np.arange(2025, 2061), bundled_fit.spec.base)
        assert projection.idle_strategy(policy, batch, 36) == chosen.names.index("no_releases")
        shared = project(bundled_fit, setup)
        monkeypatch.setattr(projection, "idle_strategy", lambda *args: None)
        separate = project(bundled_fit, setup)
        monkeypatch.undo()
        np.testing.assert_array_equal(shared["dynamic_ssb0_t"].values, separate["dynamic_ssb0_t"].values)
        assert float(shared["catch_t"].sel(strategy="reopen_fishing").sum()) > 0   # fishing in the batch


def test_a_policy_that_always_releases_or_fishes_has_no_idle_strategy(bundled_fit):
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
    from carpmodel.management.policy import build_policy
    from carpmodel.management.projection import idle_strategy

    full = load_strategies(DEFAULT_STRATEGIES_FILE)
    busy = [s for s in full.strategies if s.name in ("status_quo", "reopen_fishing")]
    base = bundled_fit.spec.base
    years = np.arange(2025, 2041)
    policy = build_policy(busy, full.costs, years, base.n_age, base.lw_a, base.lw_b, (2, 1, 2))
    assert idle_strategy(policy, (2, 1, 2), 16) is None
    python_policy = fixed_policy([0.0, 0.0])((2, 1, 2), years, base)   # not compiled: no tables
    assert idle_strategy(python_policy, (2, 1, 2), 16) is None
