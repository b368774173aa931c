"""Simulation recovery: fit data simulated from known parameters and recover what matters."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.likelihood import predict, survey_prediction_t
from carpmodel.inference.spec import Observations
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data


def test_fit_recovers_biomass_and_depletion_from_simulated_data():
    # Truth: the default fit's estimates with known recruitment deviations. Data: the same 12
    # survey years, CVs 0.10, lognormal errors (seed 20240601). Refit from the priors' centres
    # (not from the truth). With 12 points and CV 0.10 the survey-scale biomass in the last year
    # is pinned to about ±10 % (2 SE of the mean of the last few points), and the depletion
    # B/B0 to about ±30 % (B0 is held mostly by its prior, sd_log 0.5, so we check the
    # data-informed quantities and that the truth lies inside the fit's 95 % interval).
    data = load_data("data")
    spec = build_spec(data, default_config())
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


def test_catch_error_fit_of_the_1986_start_converges_and_recovers_the_stock():
    # Truth: the 1986 start near the bundled data's catch-error fit (B0 271 kt, egg survival
    # 0.0037, equilibrium F 0.31, q 1.15, M 0.16, F by year rising to ~0.6 in 1994-95),
    # recruitment deviations N(0, 0.3) (seed 20240602): the stock is fished down to ~2 % of B0
    # in 2000, the knife edge of the real data. Data: the 12 survey years with CV 0.10 and the
    # 15 catches with lognormal error sd 0.2, as the model assumes. Refit from the start values
    # (F solved from the recorded, not the simulated, catch). The fit must converge (gradient
    # < 1e-3, Hessian positive definite) and recover what the survey pins: the last year's
    # survey-scale biomass to ±10 % (as in the 2000-start test) and the 2000 depletion to ±30 %
    # (B0 rests mostly on its prior).
    data = load_data("data")
    spec = build_spec(data, default_config().with_fit(initial_state="equilibrium_1986", catch_sd_log=0.2))
    rng = np.random.default_rng(20240602)
    truth = {"unfished_biomass_t": 271000.0, "max_egg_survival": 0.0037, "initial_f_per_yr": 0.31,
             "survey_q": 1.15, "m_ref_per_yr": 0.16, "dd_strength": 0.37}
    f_path = (0.52, 0.39, 0.41, 0.43, 0.45, 0.48, 0.55, 0.59, 0.62, 0.62, 0.58, 0.5, 0.38, 0.25, 0.13)
    truth.update({f"f_{1986 + i}": f for i, f in enumerate(f_path)})
    theta_true = spec.initial_theta()
    n_free = len(spec.estimated)
    for i, free in enumerate(spec.estimated):
        if free.field in truth:
            theta_true[i] = free.to_theta(truth[free.field])
    theta_true[n_free:] = rng.normal(0.0, 0.3, spec.rec_dev_years.size)
    state, u = predict(spec, theta_true)
    i2000 = int(np.searchsorted(spec.years, 2000))
    depletion_true = float(state.biomass_t[i2000] / state.reference.biomass0_t)
    assert depletion_true < 0.05                      # the truth sits near the knife edge
    cv = np.full(spec.observations.year.size, 0.10)
    observed = survey_prediction_t(spec, state, u) * np.exp(rng.normal(0.0, cv))
    fished = spec.drivers.catch_t > 0
    catch = np.where(fished, state.catch_t * np.exp(rng.normal(0.0, 0.2, state.catch_t.size)), 0.0)
    simulated = replace(spec, drivers=replace(spec.drivers, catch_t=catch),
                        observations=Observations(year=spec.observations.year, biomass_t=observed,
                                                  cv=cv, early=spec.observations.early))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = fit(simulated, n_starts=1)
    assert refit.converged, refit.warnings
    est, u_est = predict(simulated, refit.theta)
    qb_true = float(state.biomass_t[-1] * u.params.survey_q)
    assert float(est.biomass_t[-1] * u_est.params.survey_q) == pytest.approx(qb_true, rel=0.10)
    assert float(est.biomass_t[i2000] / est.reference.biomass0_t) == pytest.approx(depletion_true, rel=0.30)
