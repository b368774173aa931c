"""Monitoring design, the simulated data (carpmodel.studies.monitoring): hatchery-origin counts,
the biomass record and the juvenile index around a truth."""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.inference.likelihood import observation_sd, predict, survey_prediction_t
from carpmodel.studies.monitoring import (
    sample_hatchery_counts,
    simulate_juvenile_index,
    simulate_monitoring_data,
    truth_thetas,
)

SEED = 20260601


@pytest.fixture(scope="module")
def result(bundled_fit):
    """The bundled default fit (session fixture)."""
    return bundled_fit


@pytest.mark.parametrize("deff", [1.0, 2.0, 5.0])
def test_sample_counts_have_binomial_mean_and_inflated_variance(deff):
    # 20,000 samples of 1,000 fish at p = 0.012 (the hatchery share at survival 0.6). Mean n·p = 12;
    # variance n·p(1−p)·deff. Tolerances: 4 standard errors of the mean (SE = sqrt(var/20000),
    # 0.025-0.054 fish), and 8 % for the variance (its SE is ~1.5 % for these beta-binomials:
    # sqrt(2/N) times a kurtosis factor below 2; 8 % is > 4 SE).
    rng = np.random.default_rng(SEED)
    n, p, size = 1000, 0.012, 20000
    counts = sample_hatchery_counts(p, n, deff, rng, size=size)
    variance = n * p * (1 - p) * deff
    assert abs(counts.mean() - n * p) < 4 * np.sqrt(variance / size)
    assert counts.var(ddof=1) == pytest.approx(variance, rel=0.08)


def test_simulated_samples_have_the_truths_mean_with_misclassification(result):
    # Through the public simulator: 40 data sets of 1,000 fish in each of 2020-2024 around the
    # truth at survival 0.6. Expected total per data set: Σ n·p_y with
    # p_y = π_y(1 − m_hw) + (1 − π_y)·m_wh (π the truth's hatchery share of survey-age numbers).
    # Tolerance: 4 standard errors of the mean of 40 totals (SE = sqrt(Σ n p(1−p) deff / 40)).
    truth = truth_thetas(result, [0.6])[0]
    years = [2020, 2021, 2022, 2023, 2024]
    misclass = (0.05, 0.0005)
    rng = np.random.default_rng(SEED)
    totals, biomass = [], []
    for _ in range(40):
        obs, samples = simulate_monitoring_data(result, truth, sample_years=years, fish_per_year=1000,
                                                    design_effect=2.0, misclassification=misclass, rng=rng)
        assert [s.year for s in samples] == years and all(s.n_examined == 1000 for s in samples)
        totals.append(sum(s.n_hatchery for s in samples))
        biomass.append(obs.biomass_t)
    state, _ = predict(result.spec, truth)
    share = state.hatchery_fraction_numbers[np.searchsorted(result.spec.years, years)]
    p = share * (1 - misclass[0]) + (1 - share) * misclass[1]
    variance = np.sum(1000 * p * (1 - p) * 2.0)
    assert abs(np.mean(totals) - np.sum(1000 * p)) < 4 * np.sqrt(variance / 40)
    # the biomass record keeps the fitted data's years and is lognormal around q·B of the truth
    # (the 2002 survey's own q) with the likelihood's SD σ_s·cv/0.15: the mean standardised log
    # residual of 40 × 12 standard normals is within 4/sqrt(480) of 0, their SD near 1
    assert obs.year.tolist() == result.spec.observations.year.tolist()
    state, u = predict(result.spec, truth)
    predicted = survey_prediction_t(result.spec, state, u)
    z = (np.log(np.array(biomass)) - np.log(predicted)) / observation_sd(result.spec, u)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert 0.85 < z.std() < 1.15


def test_juvenile_index_is_lognormal_around_wild_survivors(result):
    truth = truth_thetas(result, [0.3])[0]
    rng = np.random.default_rng(SEED)
    rows = simulate_juvenile_index(result, truth, years=[2022, 2023, 2024], cv=0.3, q=1e-8, rng=rng)
    assert [r[0] for r in rows] == [2022, 2023, 2024] and all(r[2] == 0.3 for r in rows)
    state, _ = predict(result.spec, truth)
    wild = state.wild_window_survivors[np.searchsorted(result.spec.years, [2022, 2023, 2024])]
    z = (np.log([r[1] for r in rows]) - np.log(1e-8 * wild)) / 0.3
    assert np.all(np.abs(z) < 4)   # each a standard normal draw
