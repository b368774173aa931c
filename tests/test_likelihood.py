"""The statistical model: NLL components against scipy, regression at stored parameters."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logit

from carpmodel.inference.build import build_spec
from carpmodel.inference.likelihood import nll_components, predict
from carpmodel.inference.spec import Covariate, Free, HatcherySample
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.priors import Prior

REFERENCE = Path(__file__).parent / "reference" / "default_fit.json"


@pytest.fixture(scope="module")
def spec():
    return build_spec(load_data("data"), default_config())


def test_nll_at_stored_parameters_is_pinned(spec):
    # Regression (no re-fit): the objective at the stored theta must reproduce the stored
    # components. Same code path and data, so only summation-order rounding is allowed: 1e-9.
    record = json.loads(REFERENCE.read_text())
    assert record["parameter_names"] == list(spec.parameter_names)
    got = nll_components(spec, np.array(record["theta"]))
    for name, value in record["nll_components"].items():
        assert float(got[name]) == pytest.approx(value, rel=1e-9, abs=1e-9), name


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_biomass_component_equals_scipy_multivariate_normal(spec, rho):
    # −log N(log obs; log qB, Σ) written out with scipy: Σ_ij = σ_i σ_j ρ^|y_i − y_j| (AR(1) over
    # the gaps between survey years), σ_y = σ_s·cv_y/0.15, the 2002 survey with its own q
    s = replace(spec, survey_rho=rho)
    theta = s.initial_theta()
    state, u = predict(s, theta)
    obs = s.observations
    index = np.searchsorted(s.years, obs.year)
    q = np.where(obs.early, float(u.observation["survey_q_early"]), float(u.params.survey_q))
    mean = np.log(q * state.biomass_t[index])
    sd = s.sigma_survey * obs.cv / 0.15
    lag = np.abs(obs.year[:, None] - obs.year[None, :])
    covariance = np.outer(sd, sd) * rho**lag
    expected = -stats.multivariate_normal(mean, covariance).logpdf(np.log(obs.biomass_t))
    assert float(nll_components(s, theta)["biomass"]) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("deff", [1.0, 3.0])
def test_hatchery_samples_are_beta_binomial_with_misclassification(spec, deff):
    samples = (HatcherySample(2020, 500, 60, deff), HatcherySample(2024, 800, 150, deff))
    misclass = (0.05, 0.01)
    s = replace(spec, hatchery_samples=samples, misclassification=misclass)
    theta = s.initial_theta()
    state, _ = predict(s, theta)
    share = state.hatchery_fraction_numbers[np.searchsorted(s.years, [2020, 2024])]
    p = share * (1 - misclass[0]) + (1 - share) * misclass[1]
    expected = 0.0
    for sample, prob in zip(samples, p, strict=True):
        if deff == 1.0:
            expected -= stats.binom.logpmf(sample.n_hatchery, sample.n_examined, prob)
        else:
            rho = (deff - 1) / (sample.n_examined - 1)
            a, b = prob * (1 - rho) / rho, (1 - prob) * (1 - rho) / rho
            expected -= stats.betabinom.logpmf(sample.n_hatchery, sample.n_examined, a, b)
    # scipy's own log pmf: agreement to rounding (1e-10)
    assert float(nll_components(s, theta)["hatchery_samples"]) == pytest.approx(expected, rel=1e-10)


def test_estimated_covariate_effect_of_zero_changes_nothing(spec):
    covariate = Covariate(values=np.linspace(16.0, 17.0, spec.years.size), reference=16.5)
    free = spec.free + (Free("recruitment_slope_per_c", "identity",
                             Prior("normal", {"mean": 0.0, "sd": 0.5}), 0.0),)
    with_effect = replace(spec, free=free, covariate=covariate)
    theta = np.insert(spec.initial_theta(), len(spec.estimated), 0.0)
    a, _ = predict(spec, spec.initial_theta())
    b, _ = predict(with_effect, theta)
    np.testing.assert_array_equal(a.biomass_t, b.biomass_t)
    theta[len(spec.estimated)] = 0.3      # warm years: odds of egg survival times exp(0.3·(T − 16.5))
    c, _ = predict(with_effect, theta)
    ratio = c.recruits[0] / a.recruits[0]  # same eggs in the first year, recruits ∝ egg survival
    eggs = float(a.eggs[0])                # the year's egg survival a_y (bias correction included)
    survival = float(a.recruits[0]) * (1.0 + float(a.reference.beta) * eggs) / eggs
    expected = expit(logit(survival) + 0.3 * (16.0 - 16.5)) / survival
    assert ratio == pytest.approx(expected, rel=1e-10)
    assert ratio == pytest.approx(np.exp(0.3 * (16.0 - 16.5)), rel=1e-3)   # ≈ a log effect, a small
