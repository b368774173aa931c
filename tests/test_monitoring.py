"""Monitoring design: simulated hatchery-origin samples, batched refits, intervals, advice."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from matplotlib.figure import Figure

from carpmodel.inference.fitting import build_spec, fit
from carpmodel.inference.likelihood import objective, predict
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.studies import monitoring as mon

SEED = 20260601


@pytest.fixture(scope="module")
def result():
    """The bundled default fit (2-5 s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(build_spec(load_data("data"), default_config()))


@pytest.fixture(scope="module")
def acceptance(result):
    """The acceptance design: true survival 0.6, 1,000 fish a year for 5 years, 50 replicates,
    against the biomass record alone (100 batched refits, ~1 min on the shared 2-core machine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mon.monitoring_design(result, true_survivals=(0.6,), fish_per_year=(0, 1000),
                                     years_of_sampling=(5,), n_replicates=50, seed=SEED)


def _cell(ds, fish):
    return ds.sel(true_survival=0.6, fish_per_year=fish, years_of_sampling=5)


# ----------------------------------------------------------------------------- (a) acceptance


@pytest.mark.parametrize("quantity", ["release_survival", "release_contribution"])
def test_acceptance_coverage(acceptance, quantity):
    # Nominal 95 % intervals; the floor 0.9 sits 1.6 Monte Carlo SEs (sqrt(.95·.05/50) = 0.031)
    # below nominal, the criterion. All 50 refits must be usable for it to mean anything.
    cell = _cell(acceptance, 1000)
    assert float(cell["converged_share"]) == 1.0
    assert float(cell[f"{quantity}_coverage"]) >= 0.9


def test_acceptance_contribution_narrows_by_half(acceptance):
    # The release contribution (hatchery share of survey biomass, last year): what the samples
    # measure almost directly. Narrowing = 1 − median over replicates of width/width(no samples).
    assert float(_cell(acceptance, 1000)["release_contribution_narrowing"]) >= 0.5


@pytest.mark.xfail(strict=True, reason=(
    "the issue's criterion for release survival is not met by this model: a 1 % change in natural "
    "mortality moves the hatchery share of sampled fish by ~8 %, one in release survival by ~1 % "
    "(steepness, γ and initial F move it too), so the samples pin the release contribution "
    "(narrowing 85 %) and M, but the release-survival interval narrows by 10 % (20 % on the logit "
    "scale); the expected information at the truth agrees (3 % on the logit scale even with 5,000 "
    "fish a year). Strict: it reports when a model change makes it pass."))
def test_acceptance_release_survival_narrows_by_half(acceptance):
    assert float(_cell(acceptance, 1000)["release_survival_narrowing"]) >= 0.5


def test_acceptance_design_is_paired_and_complete(acceptance):
    # Common random numbers: one biomass record per (truth, replicate), shared by both designs;
    # no sample is drawn without fish; the biomass-only design is the reference (narrowing 0).
    assert acceptance["biomass_obs_t"].dims == ("true_survival", "replicate", "obs_year")
    assert np.all(np.isnan(_cell(acceptance, 0)["n_hatchery"]))
    assert np.all(np.isfinite(_cell(acceptance, 1000)["n_hatchery"]))
    assert float(_cell(acceptance, 0)["release_survival_narrowing"]) == 0.0
    assert acceptance.attrs["n_replicates"] == 50


# ----------------------------------------------------------------------------- (b) simulated counts


@pytest.mark.parametrize("deff", [1.0, 2.0, 5.0])
def test_sample_counts_have_binomial_mean_and_inflated_variance(deff):
    # 20,000 samples of 1,000 fish at p = 0.012 (the hatchery share at survival 0.6). Mean n·p = 12;
    # variance n·p(1−p)·deff. Tolerances: 4 standard errors of the mean (SE = sqrt(var/20000),
    # 0.025-0.054 fish), and 8 % for the variance (its SE is ~1.5 % for these beta-binomials:
    # sqrt(2/N) times a kurtosis factor below 2; 8 % is > 4 SE).
    rng = np.random.default_rng(SEED)
    n, p, size = 1000, 0.012, 20000
    counts = mon.sample_hatchery_counts(p, n, deff, rng, size=size)
    variance = n * p * (1 - p) * deff
    assert abs(counts.mean() - n * p) < 4 * np.sqrt(variance / size)
    assert counts.var(ddof=1) == pytest.approx(variance, rel=0.08)


def test_simulated_samples_have_the_truths_mean_with_misclassification(result):
    # Through the public simulator: 40 data sets of 1,000 fish in each of 2020-2024 around the
    # truth at survival 0.6. Expected total per data set: Σ n·p_y with
    # p_y = π_y(1 − m_hw) + (1 − π_y)·m_wh (π the truth's hatchery share of survey-age numbers).
    # Tolerance: 4 standard errors of the mean of 40 totals (SE = sqrt(Σ n p(1−p) deff / 40)).
    truth = mon._truth_thetas(result, [0.6])[0]
    years = [2020, 2021, 2022, 2023, 2024]
    misclass = (0.05, 0.0005)
    rng = np.random.default_rng(SEED)
    totals, biomass = [], []
    for _ in range(40):
        obs, samples = mon.simulate_monitoring_data(result, truth, sample_years=years, fish_per_year=1000,
                                                    design_effect=2.0, misclassification=misclass, rng=rng)
        assert [s.year for s in samples] == years and all(s.n_examined == 1000 for s in samples)
        totals.append(sum(s.n_hatchery for s in samples))
        biomass.append(obs.biomass_t)
    state, _ = predict(result.spec, truth)
    share = state.hatchery_fraction_numbers[np.searchsorted(result.spec.years, years)]
    p = share * (1 - misclass[0]) + (1 - share) * misclass[1]
    variance = np.sum(1000 * p * (1 - p) * 2.0)
    assert abs(np.mean(totals) - np.sum(1000 * p)) < 4 * np.sqrt(variance / 40)
    # the biomass record keeps the fitted data's years and is lognormal around q·B of the truth:
    # the mean log residual / CV of 40 × 12 standard normals is within 4/sqrt(480) of 0
    assert obs.year.tolist() == result.spec.observations.year.tolist()
    state_q = float(result.theta[list(result.parameter_names).index("log_survey_q")])
    index = np.searchsorted(result.spec.years, obs.year)
    z = (np.log(np.array(biomass)) - state_q - np.log(state.biomass_t[index])) / obs.cv
    assert abs(z.mean()) < 4 / np.sqrt(z.size)


def test_juvenile_index_is_lognormal_around_wild_survivors(result):
    truth = mon._truth_thetas(result, [0.3])[0]
    rng = np.random.default_rng(SEED)
    rows = mon.simulate_juvenile_index(result, truth, years=[2022, 2023, 2024], cv=0.3, q=1e-8, rng=rng)
    assert [r[0] for r in rows] == [2022, 2023, 2024] and all(r[2] == 0.3 for r in rows)
    state, _ = predict(result.spec, truth)
    wild = state.wild_window_survivors[np.searchsorted(result.spec.years, [2022, 2023, 2024])]
    z = (np.log([r[1] for r in rows]) - np.log(1e-8 * wild)) / 0.3
    assert np.all(np.abs(z) < 4)   # each a standard normal draw


# ----------------------------------------------------------------------------- (c) equivalences


def test_batched_objective_equals_the_likelihood(result):
    # The design study scores all replicates from one engine batch; it must give exactly the NLL of
    # carpmodel.inference.likelihood.objective on each replicate's own spec (hatchery samples with estimated
    # misclassification, juvenile index with its catchability). Same arithmetic: 1e-9 relative.
    truth = mon._truths(result, mon._truth_thetas(result, [0.6]))
    design = mon._Design(500, 3, 0.3, 3)
    structure, extra = mon._design_spec(result.spec, design, misclassification=mon.DEFAULT_MISCLASSIFICATION,
                                        estimate_misclassification=True,
                                        priors=mon.MISCLASSIFICATION_PRIORS, juvenile_q=1e-8)
    rng = np.random.default_rng(SEED)
    biomass, samples, juvenile = [], [], []
    for _ in range(3):
        obs, smp = mon.simulate_monitoring_data(result, truth.theta[0], sample_years=[2022, 2023, 2024],
                                                fish_per_year=500, rng=rng)
        biomass.append(obs.biomass_t)
        samples.append(smp)
        juvenile.append(mon.simulate_juvenile_index(result, truth.theta[0], years=[2022, 2023, 2024],
                                                    q=1e-8, rng=rng))
    problem = mon._problem(structure, np.array(biomass), samples, juvenile)
    start = mon._extend(truth.theta[0], len(result.spec.estimated), extra)[0]
    thetas = start + 0.05 * rng.standard_normal((3, 4, start.size))
    batched = mon._evaluate(problem, np.arange(3), thetas)
    for r in range(3):
        assert problem.replicate_specs[r].hatchery_samples == samples[r]
        expected = objective(problem.replicate_specs[r], thetas[r])
        np.testing.assert_allclose(batched[r], expected, rtol=1e-9)


def test_no_samples_gives_the_biomass_only_interval(result, acceptance):
    # fish_per_year = 0: the refit is the biomass-only model, so its interval must equal the one
    # fit() gives on the same simulated record. Differences come only from where each optimiser
    # stops (|gradient| < 1e-3 against curvatures >= 0.4: < 3e-3 in logit s) and from the two
    # finite-difference Hessians (fit()'s steps in θ, ours in whitened coordinates; ~1e-4 here,
    # up to a few % at replicates near the initial-F cliff). Observed on replicates 0-5: <= 1.1e-3
    # relative. rtol 1e-2 on the bounds and estimate.
    ds = _cell(acceptance, 0)
    assert float(ds["release_survival_narrowing"]) == 0.0
    spec = result.spec
    for r in (0, 1):
        record = acceptance["biomass_obs_t"].sel(true_survival=0.6, replicate=r).values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = fit(replace(spec, observations=replace(spec.observations, biomass_t=record)))
        i = list(refit.parameter_names).index("logit_release_survival")
        free = spec.estimated[i]
        se = np.sqrt(refit.covariance[i, i])
        lower = free.from_theta(refit.theta[i] - mon.Z95 * se)
        upper = free.from_theta(refit.theta[i] + mon.Z95 * se)
        cell = ds.sel(replicate=r)
        assert float(cell["release_survival_lower"]) == pytest.approx(lower, rel=1e-2)
        assert float(cell["release_survival_upper"]) == pytest.approx(upper, rel=1e-2)
        assert float(cell["release_survival_estimate"]) == pytest.approx(free.from_theta(refit.theta[i]),
                                                                         rel=1e-2)


# ----------------------------------------------------------------------------- advice and figures


def test_recommendation_in_words(acceptance):
    contribution = mon.recommend_sample_size(acceptance, quantity="release_contribution")
    entry = contribution["by_true_survival"][0.6]
    assert (entry["fish_per_year"], entry["years_of_sampling"], entry["total_fish"]) == (1000, 5, 5000)
    assert "examine 1000 fish a year for 5 years" in entry["text"]
    survival = mon.recommend_sample_size(acceptance)["by_true_survival"][0.6]
    assert survival["fish_per_year"] is None and "no design" in survival["text"]


def test_figures_have_labelled_axes(acceptance):
    for fig in (mon.plot_interval_width(acceptance), mon.plot_coverage(acceptance)):
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert "(fish/yr" in ax.get_xlabel() and "(" in ax.get_ylabel()
    table = mon.summary_table(acceptance)
    assert "1000" in table and "0.60" in table


def test_outputs_are_written(acceptance, tmp_path):
    import json

    written = mon.write_monitoring(acceptance, tmp_path)
    names = {p.name for p in written}
    assert {"monitoring.nc", "monitoring.json", "monitoring_interval_width.png",
            "monitoring_coverage.png"} <= names
    record = json.loads((tmp_path / "monitoring.json").read_text())
    assert record["recommendation"]["release_contribution"]["by_true_survival"]["0.6"]["total_fish"] == 5000


def test_bad_designs_are_refused(result):
    with pytest.raises(ValueError, match="years_of_sampling"):
        mon.monitoring_design(result, years_of_sampling=(40,), n_replicates=2)
    with pytest.raises(ValueError, match="design_effect"):
        mon.sample_hatchery_counts(0.1, 3, 5.0, np.random.default_rng(0))
