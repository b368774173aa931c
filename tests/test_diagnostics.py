"""Tests of carpmodel.diagnostics: each formula against a hand computation, each diagnostic on
real (small) refits of the bundled data.

Refits use a light model (4 estimated parameters: B0, maximum egg survival, initial depletion, q, plus the
recruitment deviations) with one start: about 2 s per fit instead of 7 s for the default
7-parameter fit. None of the properties tested depends on which parameters are free.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from carpmodel import diagnostics as diag
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.likelihood import predict, survey_prediction_t
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data

LIGHT = default_config().with_fit(n_starts=1, estimate=("unfished_biomass_t", "max_egg_survival",
                                                       "initial_depletion", "survey_q"), survey_sd="fixed")


def _json_ok(result) -> dict:
    """to_dict() must survive strict JSON (no NaN/inf tokens): the fit.json writer relies on it."""
    out = result.to_dict()
    json.dumps(out, allow_nan=False)
    return out


@pytest.fixture(scope="module")
def data():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def light_fit(data):
    result = fit(build_spec(data, LIGHT), n_starts=1, seed=LIGHT.seed)
    assert result.converged, result.warnings
    return result


@pytest.fixture(scope="module")
def peels(data, light_fit):
    return diag.peel_fits(data, LIGHT, 2, full=light_fit)


# ----------------------------------------------------------------------------- residuals


def test_residuals_are_zero_when_the_observations_are_the_predictions(light_fit):
    spec = light_fit.spec
    state, u = predict(spec, light_fit.theta)
    predicted = survey_prediction_t(spec, state, u)
    exact = replace(light_fit, spec=replace(spec, observations=replace(spec.observations,
                                                                       biomass_t=predicted)))
    res = diag.residuals(exact)
    # same deterministic computation twice: log(x) - log(x) is exactly 0 in floating point
    np.testing.assert_array_equal(res.standardised, 0.0)
    assert res.conditional_sdnr == 0.0
    # the one-step-ahead residuals integrate the deviations out: observations at the mode's
    # prediction are not zero residuals there, but they are smaller than the real data's
    assert np.all(np.isfinite(res.table["osa_residual"].values))
    assert res.sdnr < diag.residuals(light_fit).sdnr
    _json_ok(res)


def test_residuals_reproduce_the_biomass_likelihood(light_fit):
    res = diag.residuals(light_fit)
    sd = res.table["sd_log"].values
    nll = np.sum(0.5 * np.log(2 * np.pi) + np.log(sd) + 0.5 * res.standardised**2)
    # same formula as likelihood.nll_from_state on the same numbers: agreement to rounding error
    assert nll == pytest.approx(light_fit.nll_components["biomass"], abs=1e-10)
    np.testing.assert_array_equal(res.table["year"].values, light_fit.spec.observations.year)
    out = _json_ok(res)
    assert set(out["runs_test"]) >= {"p_value", "passed", "lower_limit", "upper_limit"}


def test_runs_test_passes_alternating_signs_and_fails_a_monotone_sequence():
    alternating = np.array([1.0, -1.0] * 6)
    assert diag.runs_test(alternating).passed is True
    monotone = np.linspace(-1.0, 1.0, 12)  # 6 negative then 6 positive, no zero: 2 runs
    result = diag.runs_test(monotone)
    assert result.passed is False
    # hand computation (n1 = n2 = 6, R = 2): mean 2·36/12 + 1 = 7, var 2·36·60/(144·11),
    # z = (2 − 7)/sqrt(var), one-sided p = Φ(z); statsmodels vs closed form: rounding only
    z = (2 - 7) / math.sqrt(2 * 36 * 60 / (144 * 11))
    assert result.n_runs == 2 and result.z == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-9)


def test_three_sigma_limits_use_the_average_moving_range():
    # moving ranges all 1 (none above 3.267·AMR): σ = AMR / 1.128 exactly
    result = diag.runs_test([0.5, -0.5, 0.5, -0.5])
    assert result.sigma == pytest.approx(1.0 / 1.128, rel=1e-12)
    assert result.upper_limit == pytest.approx(3.0 / 1.128, rel=1e-12) == -result.lower_limit
    # one outlying moving range (10 > 3.267·AMR) is dropped before σ is computed (Nelson 1982)
    x = np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 10.1])
    assert diag.runs_test(x).sigma == pytest.approx(0.1 / 1.128, rel=1e-12)


# ----------------------------------------------------------------------------- Mohn's rho


def _trajectories(full, peel_values, terminal):
    """(peel, year) array: row 0 the full run, row p equal to full except at its terminal year."""
    years = np.arange(2020, 2025)
    rows = [np.asarray(full, float)]
    for value, year in zip(peel_values, terminal, strict=True):
        row = np.asarray(full, float).copy()
        row[years == year] = value
        row[years > year] = 1e9  # after the terminal year: must not matter
        rows.append(row)
    return xr.DataArray(np.stack(rows), dims=("peel", "year"),
                        coords={"peel": np.arange(len(rows)), "year": years,
                                "terminal_year": ("peel", [2024, *terminal])})


def test_mohns_rho_is_zero_when_peels_reproduce_the_full_fit():
    full = [100.0, 110.0, 120.0, 130.0, 140.0]
    traj = _trajectories(full, [130.0, 120.0, 110.0], [2023, 2022, 2021])
    assert diag.mohns_rho(traj) == 0.0


def test_mohns_rho_equals_a_hand_computed_value():
    full = [100.0, 110.0, 120.0, 130.0, 140.0]
    traj = _trajectories(full, [143.0, 96.0], [2023, 2022])
    # ((143 − 130)/130 + (96 − 120)/120) / 2 = (0.1 − 0.2)/2
    assert diag.mohns_rho(traj) == pytest.approx(-0.05, rel=1e-12)


def test_retrospective_on_two_calendar_year_peels(data, light_fit, peels):
    retro = diag.retrospective(data, LIGHT, 2, full=light_fit, fits=peels)
    ds = retro.trajectories
    np.testing.assert_array_equal(ds["terminal_year"].values, [2024, 2023, 2022])
    # calendar-year peels of a record with observations in 2022-2024: one observation each
    np.testing.assert_array_equal(ds["n_observations"].values, [12, 11, 10])
    assert bool(ds["converged"].all()) and retro.n_converged == 2
    # peel trajectories end at their terminal year
    assert np.isnan(ds["biomass_t"].sel(peel=2, year=2023))
    assert np.isfinite(ds["biomass_t"].sel(peel=2, year=2022))
    for name in ("biomass_t", "ssb_t", "depletion"):
        terms = ds[f"relative_error_{name}"].values
        assert terms[0] == 0.0
        # rho is the mean of the per-peel terms: same numbers, rounding only
        assert retro.mohns_rho[name] == pytest.approx(terms[1:].mean(), rel=1e-12)
    # the peel-0 depletion is B/B0 of the full fit
    state, _ = predict(light_fit.spec, light_fit.theta)
    np.testing.assert_allclose(ds["depletion"].sel(peel=0).values,
                               state.biomass_t / state.reference.biomass0_t, rtol=1e-12)
    _json_ok(retro)


# ----------------------------------------------------------------------------- hindcast


def test_mase_equals_a_hand_computed_value():
    observed, predicted, naive = [100.0, 200.0], [110.0, 180.0], [80.0, 250.0]
    expected = (math.log(1.1) + math.log(200 / 180)) / (math.log(100 / 80) + math.log(250 / 200))
    assert diag.mase(observed, predicted, naive) == pytest.approx(expected, rel=1e-12)
    # a naive forecast that is exact gives an infinite MASE; the ss3diags floor keeps it finite
    assert diag.mase(observed, predicted, observed) == math.inf
    floored = diag.mase(observed, predicted, observed, naive_floor=0.1)
    assert floored == pytest.approx((math.log(1.1) + math.log(200 / 180)) / 2 / 0.1, rel=1e-12)


def test_hindcast_one_step_ahead_against_both_naive_forecasts(data, peels):
    result = diag.hindcast(data, LIGHT, 2, fits=peels)
    table = result.table
    np.testing.assert_array_equal(table["terminal_year"].values, [2023, 2022])
    np.testing.assert_array_equal(table["target_year"].values, [2024, 2023])
    obs = dict(zip(data.biomass.year, data.biomass.biomass_t, strict=True))
    np.testing.assert_array_equal(table["observed_t"].values, [obs[2024], obs[2023]])
    np.testing.assert_array_equal(table["naive_persistence_t"].values, [obs[2023], obs[2022]])
    # drift: OLS of log biomass on year through the observations <= 2023, extrapolated to 2024
    years = np.array([y for y in obs if y <= 2023], float)
    slope, intercept = np.polyfit(years, np.log([obs[int(y)] for y in years]), 1)
    assert table["naive_drift_t"].values[0] == pytest.approx(math.exp(intercept + 2024 * slope), rel=1e-10)
    assert result.n_predictions == 2
    # MASE from the table's numbers by the hand formula: rounding only
    assert result.mase_persistence == pytest.approx(
        float(diag.mase(table["observed_t"].values, table["predicted_t"].values,
                        table["naive_persistence_t"].values)), rel=1e-12)
    assert result.mase_drift == pytest.approx(
        float(np.mean(np.abs(table["log_error_model"].values))
              / np.mean(np.abs(table["log_error_drift"].values))), rel=1e-12)
    _json_ok(result)

    # what `carpmodel fit --last-data-year 2023` reports agrees with the hindcast table
    ds = diag.hindcast_predictions(peels[2023], LIGHT.with_fit(last_data_year=2023), data, n_draws=50)
    assert ds["held_out"].sel(year=2024) and not ds["held_out"].sel(year=2023)
    assert int(ds["used_in_fit"].sum()) == 11
    assert float(ds["survey_predicted_t"].sel(year=2024)) == pytest.approx(
        float(table["predicted_t"][0]), rel=1e-12)
    assert float(ds["log_prediction_error"].sel(year=2024)) == pytest.approx(
        float(table["log_error_model"][0]), rel=1e-10)
    # the skill on the held-out survey: MASE against the 2023 survey held for 2024, by hand, and
    # whether 2024 lies inside the predictive interval (wider than the parameter-only one)
    obs = ds["biomass_obs_t"]
    by_hand = abs(math.log(float(ds["survey_predicted_t"].sel(year=2024)) / float(obs.sel(year=2024)))) / abs(
        math.log(float(obs.sel(year=2023)) / float(obs.sel(year=2024))))
    assert ds.attrs["n_held_out"] == 1 and ds.attrs["mase_persistence"] == pytest.approx(by_hand, rel=1e-12)
    inside = float(ds["survey_predictive_lower"].sel(year=2024)) <= float(obs.sel(year=2024)) <= float(
        ds["survey_predictive_upper"].sel(year=2024))
    assert ds.attrs["held_out_inside_95"] == int(inside) and ds.attrs["coverage_95"] == float(inside)
    widths = np.log(ds["survey_predictive_upper"] / ds["survey_predictive_lower"]) / np.log(
        ds["survey_predicted_upper"] / ds["survey_predicted_lower"])
    assert float(widths.mean()) > 1.0           # observation error widens it (50 draws: on average)
    from carpmodel.cli import hindcast_skill_line

    line = hindcast_skill_line(ds)
    assert line.startswith("hindcast from 2023: 1 held-out survey(s), MASE against persistence ")
    assert f"{int(inside)} of 1 inside the 95 % predictive interval" in line


# ----------------------------------------------------------------------------- profile


def test_default_profile_grid_spans_the_prior_5_to_95_percent(light_fit):
    spec = light_fit.spec
    grid = diag.profile_grid(spec, "unfished_biomass_t")
    # lognormal(median 200,000 t, sd_log 0.5): quantiles exp(±1.6449·0.5)·median, geometric steps
    z = 1.6448536269514722
    assert grid.size == 9
    assert grid[0] == pytest.approx(200000 * math.exp(-0.5 * z), rel=1e-9)
    assert grid[-1] == pytest.approx(200000 * math.exp(0.5 * z), rel=1e-9)
    np.testing.assert_allclose(np.diff(np.log(grid)), np.log(grid[1] / grid[0]), rtol=1e-9)
    survival = diag.profile_grid(spec, "max_egg_survival")
    assert survival.size == 9 and 0.0 < survival[0] < survival[-1] < 0.05


def test_profile_minimum_is_at_the_map_estimate(light_fit):
    mle = light_fit.natural_estimates()["unfished_biomass_t"]["estimate"]
    result = diag.profile(light_fit.spec, "unfished_biomass_t", [0.8 * mle, mle, 1.25 * mle],
                          start=light_fit)
    total = result.table["nll"].sel(component="total").values
    assert result.estimate == pytest.approx(mle, rel=1e-12)
    assert int(np.argmin(total)) == 1 and result.minimum_value == pytest.approx(mle, rel=1e-12)
    # at the MAP value the profile refit reproduces the MAP objective (prior of the fixed
    # parameter included); the difference is optimiser tolerance (|gradient| < 1e-3 on a
    # near-quadratic objective gives errors ~1e-6), hence 1e-4
    assert total[1] == pytest.approx(light_fit.nll, abs=1e-4)
    delta = result.table["delta_nll"]
    assert float(delta.min()) == 0.0 and np.allclose(delta.min("value"), 0.0)
    assert {"biomass", "priors", "recruitment_deviations", "fixed_parameter_prior", "total"} <= set(
        result.table["component"].values)
    assert bool(result.table["converged"].all())
    _json_ok(result)


# ----------------------------------------------------------------------------- self-test


def test_self_test_runs_and_reports_coverage_with_its_mc_se(light_fit):
    result = diag.self_test(light_fit, n_replicates=3, seed=11, truths="estimate")
    summary = result.summary
    assert result.n_replicates == 3 and 0 <= result.n_converged <= 3
    coverage = summary["coverage"].values
    n_used = summary["n_used"].values
    assert np.all((coverage >= 0) & (coverage <= 1))
    np.testing.assert_allclose(summary["coverage_mc_se"].values,
                               np.sqrt(coverage * (1 - coverage) / n_used), rtol=1e-12)
    np.testing.assert_allclose(summary["coverage_mc_se_nominal"].values, np.sqrt(0.95 * 0.05 / n_used),
                               rtol=1e-12)
    assert diag.coverage_mc_se(0.9, 100) == pytest.approx(0.03, rel=1e-12)
    truth = result.replicates["truth"]
    # rec devs do not change unfished biomass: every truth has the fitted B0
    state, _ = predict(light_fit.spec, light_fit.theta)
    np.testing.assert_allclose(truth.sel(quantity="unfished_biomass_t"),
                               state.reference.biomass0_t, rtol=1e-12)
    # ...but they do change the last year's biomass
    assert np.ptp(truth.sel(quantity="biomass_last_year_t").values) > 0
    _json_ok(result)
    # one spawned stream per replicate: replicate 0 is the same whether 1 or 3 are asked for
    truth_1, specs_1, seeds_1 = diag.simulate_replicates(light_fit, 1, seed=11, truths="estimate")
    truth_3, specs_3, seeds_3 = diag.simulate_replicates(light_fit, 3, seed=11, truths="estimate")
    np.testing.assert_array_equal(truth_1[0], truth_3[0])
    np.testing.assert_array_equal(truth_3, truth.values)
    np.testing.assert_array_equal(specs_1[0].observations.biomass_t, specs_3[0].observations.biomass_t)
    assert seeds_1[0] == seeds_3[0]
    # same years and CVs as the real data, new values
    obs = light_fit.spec.observations
    np.testing.assert_array_equal(specs_3[1].observations.cv, obs.cv)
    assert not np.array_equal(specs_3[1].observations.biomass_t, obs.biomass_t)


def test_simulated_optional_data_follow_their_likelihoods(light_fit):
    from carpmodel.inference.spec import HatcherySample

    spec = replace(light_fit.spec,
                   hatchery_samples=(HatcherySample(2015, 200, 50, 2.0), HatcherySample(2022, 100, 30)),
                   juvenile_index=((2016, 1.0e6, 0.3), (2020, 2.0e6, 0.3)))
    source = replace(light_fit, spec=spec)
    n_rep = 400
    _, specs, _ = diag.simulate_replicates(source, n_rep, seed=3, truths="estimate")
    k = np.array([[h.n_hatchery for h in s.hatchery_samples] for s in specs], float)
    assert np.all((k >= 0) & (k <= [200, 100]))
    # E[k/n] is the model's hatchery share of survey-age numbers (no misclassification);
    # beta-binomial variance p(1-p)·deff/n per draw, so the mean over 400 draws has
    # SE sqrt(p(1-p)·deff/n/400): 4 SE is a 6e-5 false-alarm rate per sample
    state, _ = predict(spec, light_fit.theta)
    share = state.hatchery_fraction_numbers[np.searchsorted(spec.years, [2015, 2022])]
    se = np.sqrt(share * (1 - share) * np.array([2.0, 1.0]) / np.array([200, 100]) / n_rep)
    np.testing.assert_array_less(np.abs(k.mean(axis=0) / [200, 100] - share), 4 * se)
    index = np.array([[row[1] for row in s.juvenile_index] for s in specs])
    assert np.all(index > 0) and np.unique(index[:, 0]).size == n_rep
    # log index = log(truth) + 0.3 z: the SD of the log over replicates is 0.3 (rec devs before
    # 2016 also vary the truth, so only a lower bound is exact); 400 draws: SD within ±15 %
    assert np.std(np.log(index[:, 0]), ddof=1) > 0.3 * 0.85


# ----------------------------------------------------------------------------- model comparison


def test_aicc_formula_by_hand():
    # 2·(−7.4) + 2·4 + 2·4·5/(12 − 4 − 1)
    assert diag.aicc(-7.4, 4, 12) == pytest.approx(-14.8 + 8 + 40 / 7, rel=1e-12)
    assert diag.aicc(1.0, 11, 12) == math.inf  # n − k − 1 = 0: undefined


def test_compare_fits_ranks_a_worse_fit_lower_and_ignores_priors(light_fit):
    worse = replace(light_fit, nll_components={**light_fit.nll_components,
                                               "biomass": light_fit.nll_components["biomass"] + 5.0})
    more_prior = replace(light_fit, nll_components={**light_fit.nll_components,
                                                    "priors": light_fit.nll_components["priors"] + 100.0})
    result = diag.compare_fits({"worse": worse, "base": light_fit, "base_priors": more_prior})
    table = result.table
    # k counts the 7 estimated parameters (the 4 named, the 2002 survey's q, the net's mode and
    # width), not the recruitment or initial-age deviations; n the 12 surveys and the net
    # sample's mean length and weight
    assert int(table["n_parameters"].sel(variant="base")) == 7 < light_fit.n_parameters
    assert int(table["n_observations"].sel(variant="base")) == 14
    assert result.ranking[-1] == "worse"
    # 5 NLL units more data misfit at equal k: ΔAICc = 10 exactly (up to rounding)
    assert float(table["delta_aicc"].sel(variant="worse")) == pytest.approx(10.0, abs=1e-9)
    # priors are not data: they leave AICc unchanged
    assert float(table["aicc"].sel(variant="base_priors")) == float(table["aicc"].sel(variant="base"))
    assert float(table["akaike_weight"].sum()) == pytest.approx(1.0, abs=1e-12)
    _json_ok(result)
    # a fit that has not converged has no meaningful likelihood: reported, never ranked
    stuck = replace(light_fit, converged=False, nll_components={
        **light_fit.nll_components, "biomass": light_fit.nll_components["biomass"] - 50.0})
    result = diag.compare_fits({"base": light_fit, "stuck": stuck})
    assert result.ranking == ("base",) and result.best == "base"
    assert np.isnan(result.table["delta_aicc"].sel(variant="stuck"))
    assert float(result.table["akaike_weight"].sel(variant="stuck")) == 0.0


def test_default_variants_and_compare_models_end_to_end(data, light_fit):
    variants = diag.default_variants(LIGHT)
    assert list(variants) == ["beverton_holt", "ricker", "dd_window_2", "dd_window_3",
                              "initial_equilibrium_2000", "initial_unfished_1956", "initial_equilibrium_1986"]
    spec = build_spec(data, variants["dd_window_2"])
    assert int(spec.base.dd_window_end_age_yr) == 2
    assert variants["initial_unfished_1956"].model.initial_state == "unfished_1956"
    result = diag.compare_models(data, {"beverton_holt": variants["beverton_holt"],
                                        "dd_window_2": variants["dd_window_2"]})
    table = result.table
    assert bool(table["converged"].all())
    # the base-case variant is the fit already made: same data NLL up to optimiser tolerance
    assert float(table["nll_data"].sel(variant="beverton_holt")) == pytest.approx(
        light_fit.nll_components["biomass"] + light_fit.nll_components["net_sample"], abs=1e-3)
    assert sorted(result.ranking) == ["beverton_holt", "dd_window_2"]
    assert float(table["delta_aicc"].min()) == 0.0
    _json_ok(result)
