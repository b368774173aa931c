"""Simulation recovery: fit data simulated from known parameters and recover what matters."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from carpmodel.fitting import FitOptions, build_spec, fit
from carpmodel.inputs import load_data
from carpmodel.likelihood import Observations, predict, survey_prediction_t


def test_fit_recovers_biomass_and_depletion_from_simulated_data():
    # Truth: the default fit's estimates with known recruitment deviations. Data: the same 12
    # survey years, CVs 0.10, lognormal errors (seed 20240601). Refit from the priors' centres
    # (not from the truth). With 12 points and CV 0.10 the survey-scale biomass in the last year
    # is pinned to about ±10 % (2 SE of the mean of the last few points), and the depletion
    # B/B0 to about ±30 % (B0 is held mostly by its prior, sd_log 0.5, so we check the
    # data-informed quantities and that the truth lies inside the fit's 95 % interval).
    data = load_data("data")
    spec = build_spec(data, FitOptions())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = fit(spec)
    rng = np.random.default_rng(20240601)
    theta_true = truth.theta.copy()
    n_free = len(spec.estimated)
    theta_true[n_free:] = rng.normal(0.0, 0.3, spec.rec_dev_years.size)
    state, u = predict(spec, theta_true)
    cv = np.full(spec.observations.year.size, 0.10)
    observed = survey_prediction_t(spec, state, u) * np.exp(rng.normal(0.0, cv))
    simulated = replace(spec, observations=Observations(year=spec.observations.year, biomass_t=observed,
                                                        cv=cv, early=spec.observations.early))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = fit(simulated, n_starts=2, seed=5)
    # FIMS's convergence threshold (1e-2): the stiff initial-F direction (Hessian eigenvalues span
    # ~1e6) can leave |gradient| ~1e-3 after the finite-difference Newton polish
    assert refit.max_abs_gradient < 1e-2 and refit.hessian_positive_definite
    est, u_est = predict(simulated, refit.theta)
    qb_true = float(state.biomass_t[-1] * u.params.survey_q)
    qb_est = float(est.biomass_t[-1] * u_est.params.survey_q)
    assert qb_est == pytest.approx(qb_true, rel=0.10)
    depletion_true = float(state.biomass_t[-1] / state.reference.biomass0_t)
    depletion_est = float(est.biomass_t[-1] / est.reference.biomass0_t)
    assert depletion_est == pytest.approx(depletion_true, rel=0.30)
    # the truth of the scale parameter lies inside the refit's 95 % interval (log scale)
    i = refit.parameter_names.index("log_unfished_biomass_t")
    se = refit.std_errors[i]
    assert abs(refit.theta[i] - theta_true[i]) < 1.96 * se
