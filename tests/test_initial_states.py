"""Initial states before 2000 and their remedies: rows the model cannot evaluate, catch with
error, unreported catch, a step in the unfished level, and the early-survey options."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from carpmodel.errors import ConfigError
from carpmodel.fitting import (
    FitOptions,
    build_spec,
    diagonal_scale,
    fix_parameter,
    hessian,
    objective,
)
from carpmodel.inputs import load_data
from carpmodel.likelihood import nll_components, predict, requested_catch_t, unpack


@pytest.fixture(scope="module")
def data():
    return load_data("data")


def _with(spec, theta, **values):
    """``theta`` with the named free parameters set to natural-scale values."""
    theta = np.array(theta, dtype=float)
    for i, free in enumerate(spec.estimated):
        if free.field in values:
            theta[..., i] = free.to_theta(values[free.field])
    return theta


def test_rows_whose_r0_overflows_get_inf_instead_of_an_error(data):
    # The reported crash: in the 1956 start the optimiser stepped to log M = centre + 15
    # (M ~ 6.5e5/yr), where the unfished biomass per recruit underflows to 0 and R0 = B0/0 = inf;
    # Parameters refused it with ConfigError. Such a row must cost +inf and leave the other rows
    # of the batch exactly as they are alone.
    spec = build_spec(data, FitOptions(initial_state="unfished_1956"))
    good = spec.initial_theta()
    bad = _with(spec, good, m_ref_per_yr=0.2 * np.exp(15.0))
    values = objective(spec, np.stack([good, bad, good]))
    assert np.isinf(values[1]) and values[1] > 0
    assert values[0] == values[2] == float(objective(spec, good))
    assert np.isfinite(values[0])
    components = nll_components(spec, np.stack([good, bad]))
    assert all(np.isinf(v[1]) and np.isfinite(v[0]) for v in components.values())
    assert bool(unpack(spec, bad).invalid)


def test_unfished_change_of_one_changes_nothing_and_a_step_rescales_r0(data):
    # The change runs the engine in two pieces joined at the change year: with ratio 1 the
    # joined run must reproduce the single run (same arithmetic, so to rounding: 1e-12).
    plain = build_spec(data, FitOptions())
    stepped = build_spec(data, FitOptions(unfished_change_year=2010))
    assert stepped.parameter_names[len(plain.estimated)] == "log_unfished_change"
    theta = np.insert(plain.initial_theta(), len(plain.estimated), 0.0)
    a, _ = predict(plain, plain.initial_theta(), keep_numbers=True)
    b, _ = predict(stepped, theta, keep_numbers=True)
    np.testing.assert_allclose(b.biomass_t, a.biomass_t, rtol=1e-12)
    np.testing.assert_allclose(b.numbers, a.numbers, rtol=1e-12, atol=1e-6)
    # ratio 0.5: before 2010 nothing changes; the reference (unfished) level is halved
    half = _with(stepped, theta, unfished_change=0.5)
    c, u = predict(stepped, half)
    split = int(np.searchsorted(stepped.years, 2010))
    np.testing.assert_allclose(c.biomass_t[:split], a.biomass_t[:split], rtol=1e-12)
    assert not np.allclose(c.recruits[split:], a.recruits[split:], rtol=1e-3)
    assert float(c.reference.biomass0_t) == pytest.approx(0.5 * float(a.reference.biomass0_t), rel=1e-12)
    r0_plain = float(predict(plain, plain.initial_theta())[1].params.r0)
    assert float(u.params.r0) == pytest.approx(0.5 * r0_plain, rel=1e-12)


def test_b0_prior_stays_on_the_first_unfished_level(data):
    # Changing only the ratio must change the priors component by the ratio's own prior alone:
    # the B0 prior is evaluated at the first year's level, which the ratio leaves unchanged.
    spec = build_spec(data, FitOptions(unfished_change_year=2010))
    theta = spec.initial_theta()
    ratio_prior = next(f.prior for f in spec.free if f.field == "unfished_change")
    one = float(nll_components(spec, _with(spec, theta, unfished_change=1.0))["priors"])
    half = float(nll_components(spec, _with(spec, theta, unfished_change=0.5))["priors"])
    assert half - one == pytest.approx(ratio_prior.logpdf(1.0) - ratio_prior.logpdf(0.5), rel=1e-9)


def test_catch_scale_and_unreported_catch_set_the_catch_the_model_takes(data):
    options = FitOptions(initial_state="equilibrium_1986", catch_scale_sd_log=0.3,
                         unreported_catch_years=(1990, 1995))
    spec = build_spec(data, options)
    theta = _with(spec, spec.initial_theta(), catch_scale=1.2, unreported_catch_t=300.0,
                  initial_f_per_yr=0.2)
    u = unpack(spec, theta)
    requested = requested_catch_t(spec, u)
    inside = (spec.years >= 1990) & (spec.years <= 1995)
    expected = 1.2 * spec.drivers.catch_t + np.where(inside, 300.0, 0.0)
    np.testing.assert_allclose(requested, expected, rtol=1e-12)
    state, _ = predict(spec, theta)
    # F is solved to take the requested catch (Newton, 30 iterations): to 1e-6 where no shortfall
    assert np.all(state.catch_shortfall_t == 0)
    np.testing.assert_allclose(state.catch_t, expected, rtol=1e-6, atol=1e-6)
    # a counterfactual catch given to predict still overrides the model's catch
    none, _ = predict(spec, theta, catch_t=np.zeros_like(spec.drivers.catch_t))
    assert np.all(none.catch_t == 0)
    # fixing a remedy keeps it in the spec at that value, without a slot in theta
    fixed = fix_parameter(spec, "catch_scale", 0.8)
    assert fixed.n_parameters == spec.n_parameters - 1
    assert "log_catch_scale" not in fixed.parameter_names
    theta_fixed = np.delete(theta, spec.parameter_names.index("log_catch_scale"))
    np.testing.assert_allclose(requested_catch_t(fixed, unpack(fixed, theta_fixed)),
                               0.8 * spec.drivers.catch_t + np.where(inside, 300.0, 0.0), rtol=1e-12)


@pytest.mark.parametrize("options, key", [
    (FitOptions(initial_state="unfished_1956", unfished_change_year=1956), "unfished_change_year"),
    (FitOptions(unfished_change_year=2030), "unfished_change_year"),
    (FitOptions(initial_state="equilibrium_1986", unreported_catch_years=(1980, 1990)),
     "unreported_catch_years"),
    (FitOptions(catch_scale_sd_log=-0.3, initial_state="equilibrium_1986"), "catch_scale_sd_log"),
    (FitOptions(early_survey_last_year=2012, early_cv_multiplier=0.0), "early_cv_multiplier"),
    (FitOptions(initial_state="equilibrium_1986", catch_sd_log=0.0), "catch_sd_log"),
])
def test_remedies_the_model_years_cannot_carry_are_refused(data, options, key):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        build_spec(data, options)


def test_the_default_estimates_no_remedy(data):
    # The default spec must stay the pinned one: no remedy parameter, no change year.
    spec = build_spec(data, FitOptions())
    remedies = {"log_catch_scale", "log_unreported_catch_t", "log_unfished_change"}
    assert not remedies & set(spec.parameter_names)
    assert spec.unfished_change_year is None and spec.unreported_catch_years is None
    np.testing.assert_array_equal(requested_catch_t(spec, unpack(spec, spec.initial_theta())),
                                  spec.drivers.catch_t)


def test_early_cv_multiplier_with_a_shared_catchability(data):
    base = build_spec(data, FitOptions())
    spec = build_spec(data, FitOptions(early_survey_last_year=2012, early_separate_q=False,
                                       early_cv_multiplier=2.0))
    assert spec.parameter_names == base.parameter_names        # no survey_q_early
    early = spec.observations.year <= 2012
    np.testing.assert_array_equal(spec.observations.cv[early], 2.0 * base.observations.cv[early])
    np.testing.assert_array_equal(spec.observations.cv[~early], base.observations.cv[~early])
    assert not np.any(spec.observations.early)
    separate = build_spec(data, FitOptions(early_survey_last_year=2012))
    assert "log_survey_q_early" in separate.parameter_names
    np.testing.assert_array_equal(separate.observations.early, early)


def test_catch_error_starts_where_exact_catch_is_and_scores_catch_as_lognormal(data):
    # With catch as data, F of every fished year is free and starts at the F that takes the
    # recorded catch at the start values: the start reproduces the exact-catch run (the F solve
    # converges to ~1e-10; 1e-8 allowed), and the catch component is scipy's lognormal.
    exact = build_spec(data, FitOptions(initial_state="equilibrium_1986"))
    spec = build_spec(data, FitOptions(initial_state="equilibrium_1986", catch_sd_log=0.2))
    fished = spec.years[spec.drivers.catch_t > 0]
    assert [n for n in spec.parameter_names if n.startswith("log_f_")] == [f"log_f_{y}" for y in fished]
    assert fished.tolist() == list(range(1986, 2001))
    a, _ = predict(exact, exact.initial_theta())
    theta = spec.initial_theta()
    b, _ = predict(spec, theta)
    np.testing.assert_allclose(b.biomass_t, a.biomass_t, rtol=1e-8)
    np.testing.assert_allclose(b.catch_t, spec.drivers.catch_t, rtol=1e-8, atol=1e-8)
    doubled = _with(spec, theta, f_1990=2.0 * float(b.f_per_yr[4]))
    c, _ = predict(spec, doubled)
    assert c.catch_t[4] > 1.5 * b.catch_t[4] and np.all(c.catch_shortfall_t == 0)
    expected = -np.sum(stats.norm.logpdf(np.log(spec.drivers.catch_t[:15]), np.log(c.catch_t[:15]), 0.2))
    assert float(nll_components(spec, doubled)["catch"]) == pytest.approx(expected, rel=1e-10)
    assert "catch_shortfall" not in nll_components(spec, doubled)
    # a counterfactual catch still overrides the estimated F
    none, _ = predict(spec, theta, catch_t=np.zeros_like(spec.drivers.catch_t))
    assert np.all(none.catch_t == 0)


def test_diagonal_scale_is_the_inverse_root_curvature(data):
    # At the prior centre of the default spec, each coordinate's scale must be 1/sqrt(H_ii)
    # (floored at curvature 1, i.e. scale <= 1), H from the batched finite-difference Hessian.
    # Different steps (1e-2 vs 1e-4) and third-order terms: agreement to 5 %.
    spec = build_spec(data, FitOptions())
    theta = spec.initial_theta()
    scale = diagonal_scale(spec, theta)
    h = np.diag(hessian(spec, theta))
    expected = 1.0 / np.sqrt(np.maximum(np.abs(h), 1.0))
    assert np.all(scale <= 1.0)
    np.testing.assert_allclose(scale, expected, rtol=0.05)
    assert replace(spec) == spec          # the spec is not mutated by the scale computation
