"""Initial states before 2000 and their remedies: rows the model cannot evaluate, catch with
error, unreported catch, a step in the unfished level, and the early-survey options."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from carpmodel.errors import ConfigError, ConvergenceWarning, FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import (
    FitResult,
    aicc_data_points,
    aicc_parameters,
    aicc_value,
    diagonal_scale,
    fit,
    hessian,
    objective,
)
from carpmodel.inference.likelihood import feasible_start, nll_components, predict, requested_catch_t
from carpmodel.inference.spec import fix_parameter, unpack
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data

CONFIG = default_config()


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
    spec = build_spec(data, default_config().with_fit(initial_state="unfished_1956"))
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
    plain = build_spec(data, default_config())
    stepped = build_spec(data, default_config().with_fit(unfished_change_year=2010))
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
    spec = build_spec(data, default_config().with_fit(unfished_change_year=2010))
    theta = spec.initial_theta()
    ratio_prior = next(f.prior for f in spec.free if f.field == "unfished_change")
    one = float(nll_components(spec, _with(spec, theta, unfished_change=1.0))["priors"])
    half = float(nll_components(spec, _with(spec, theta, unfished_change=0.5))["priors"])
    assert half - one == pytest.approx(ratio_prior.logpdf(1.0) - ratio_prior.logpdf(0.5), rel=1e-9)


def test_catch_scale_and_unreported_catch_set_the_catch_the_model_takes(data):
    options = default_config().with_fit(initial_state="equilibrium_1986", catch_scale_sd_log=0.3,
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


@pytest.mark.parametrize("changes, key", [
    ({"initial_state": "unfished_1956", "unfished_change_year": 1956}, "unfished_change_year"),
    ({"unfished_change_year": 2030}, "unfished_change_year"),
    ({"initial_state": "equilibrium_1986", "unreported_catch_years": (1980, 1990)}, "unreported_catch_years"),
    ({"catch_scale_sd_log": -0.3, "initial_state": "equilibrium_1986"}, "catch_scale_sd_log"),
    ({"early_survey_last_year": 2012, "early_cv_multiplier": 0.0}, "early_cv_multiplier"),
    ({"initial_state": "equilibrium_1986", "catch_sd_log": 0.0}, "catch_sd_log"),
])
def test_remedies_the_model_years_cannot_carry_are_refused(data, changes, key):
    # refused when the config is made (bad values) or when the spec is built (years the model
    # does not have), never later
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        build_spec(data, CONFIG.with_fit(**changes))


def test_the_default_estimates_no_remedy(data):
    # The default spec must stay the pinned one: no remedy parameter, no change year.
    spec = build_spec(data, default_config())
    remedies = {"log_catch_scale", "log_unreported_catch_t", "log_unfished_change"}
    assert not remedies & set(spec.parameter_names)
    assert spec.unfished_change_year is None and spec.unreported_catch_years is None
    np.testing.assert_array_equal(requested_catch_t(spec, unpack(spec, spec.initial_theta())),
                                  spec.drivers.catch_t)


def test_early_cv_multiplier_with_a_shared_catchability(data):
    base = build_spec(data, default_config().with_fit(early_survey_last_year=None))
    spec = build_spec(data, default_config().with_fit(early_survey_last_year=2012, early_separate_q=False,
                                       early_cv_multiplier=2.0))
    assert spec.parameter_names == base.parameter_names        # no survey_q_early
    early = spec.observations.year <= 2012
    np.testing.assert_array_equal(spec.observations.cv[early], 2.0 * base.observations.cv[early])
    np.testing.assert_array_equal(spec.observations.cv[~early], base.observations.cv[~early])
    assert not np.any(spec.observations.early)
    separate = build_spec(data, default_config().with_fit(early_survey_last_year=2012))
    assert "log_survey_q_early" in separate.parameter_names
    np.testing.assert_array_equal(separate.observations.early, early)


def test_catch_error_starts_where_exact_catch_is_and_scores_catch_as_lognormal(data):
    # With catch as data, F of every fished year is free and starts at the F that takes the
    # recorded catch at the start values: the start reproduces the exact-catch run (the F solve
    # converges to ~1e-10; 1e-8 allowed), and the catch component is scipy's lognormal.
    exact = build_spec(data, default_config().with_fit(initial_state="equilibrium_1986"))
    spec = build_spec(data, default_config().with_fit(initial_state="equilibrium_1986", catch_sd_log=0.2))
    fished = spec.years[spec.drivers.catch_t > 0]
    assert [n for n in spec.parameter_names if n.startswith("log_f_")] == [f"log_f_{y}" for y in fished]
    assert fished.tolist() == list(range(1986, 2001))
    # the prior centres' F 0.5/yr empties the 1986 stock: both start where fit() moves them
    a, _ = predict(exact, feasible_start(exact, exact.initial_theta())[0])
    theta, note = feasible_start(spec, spec.initial_theta())
    assert "lowered from 0.5 to 0.25" in note
    b, _ = predict(spec, theta)
    np.testing.assert_allclose(b.biomass_t, a.biomass_t, rtol=1e-8)
    # the same catch as the exact-catch run: the recorded catch while the stock supplies it
    np.testing.assert_allclose(b.catch_t, a.catch_t, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(b.catch_t[:4], spec.drivers.catch_t[:4], rtol=1e-8)
    doubled = _with(spec, theta, f_1987=2.0 * float(b.f_per_yr[1]))
    c, _ = predict(spec, doubled)
    assert c.catch_t[1] > 1.5 * b.catch_t[1] and np.all(c.catch_shortfall_t == 0)
    expected = -np.sum(stats.norm.logpdf(np.log(spec.drivers.catch_t[:15]), np.log(c.catch_t[:15]), 0.2))
    assert float(nll_components(spec, doubled)["catch"]) == pytest.approx(expected, rel=1e-10)
    assert "catch_shortfall" not in nll_components(spec, doubled)
    # a counterfactual catch still overrides the estimated F
    none, _ = predict(spec, theta, catch_t=np.zeros_like(spec.drivers.catch_t))
    assert np.all(none.catch_t == 0)


def test_catch_error_f_starts_come_from_a_start_the_stock_survives(data):
    # the 1986 stock cannot persist under the prior-centre F of 0.5/yr (an empty start that the
    # releases refill later): the F starts must come from the start fit() moves to (a lower
    # initial F), not from an empty stock's F = 0
    options = CONFIG.with_fit(initial_state="equilibrium_1986", catch_sd_log=0.2)
    spec = build_spec(data, options)
    exact = build_spec(data, options.with_fit(catch_sd_log=None))
    empty, _ = predict(exact, exact.initial_theta())
    assert float(empty.biomass_t[0]) == 0.0
    f_starts = np.array([f.init for f in spec.free if f.field.startswith("f_")])
    assert f_starts.size == 15 and np.all(f_starts > 5e-3) and f_starts[0] > 0.1


def test_diagonal_scale_is_the_inverse_root_curvature(data):
    # At the prior centre of the default spec, each coordinate's scale must be 1/sqrt(H_ii)
    # (floored at curvature 1, i.e. scale <= 1), H from the batched finite-difference Hessian.
    # Different steps (1e-2 vs 1e-4) and third-order terms: agreement to 5 %.
    spec = build_spec(data, default_config())
    theta = spec.initial_theta()
    scale = diagonal_scale(spec, theta)
    h = np.diag(hessian(spec, theta))
    expected = 1.0 / np.sqrt(np.maximum(np.abs(h), 1.0))
    assert np.all(scale <= 1.0)
    np.testing.assert_allclose(scale, expected, rtol=0.05)
    assert replace(spec) == spec          # the spec is not mutated by the scale computation


def _result(spec, theta, components, gradient=None, h=None, converged=True):
    """A FitResult without fitting (the properties under test read only these fields)."""
    n = theta.size
    return FitResult(spec=spec, theta=np.asarray(theta, float), parameter_names=spec.parameter_names,
                     nll=float(sum(components.values())), nll_components=components,
                     gradient=np.zeros(n) if gradient is None else gradient,
                     hessian=np.eye(n) if h is None else h, covariance=None, converged=converged,
                     hessian_positive_definite=True, condition_number=1.0, optimizer={}, runtime_s=0.0)


def test_aicc_counts_the_survey_against_structural_parameters_not_the_catch_fs(data):
    # The 1956 start with catch error estimates 45 F's (1956-2000) beside 9 other parameters
    # (B0, egg survival, q, M, γ, release survival, the 2002 survey's q, the net's mode and
    # width). Counting the F's against the 14 data points (12 surveys, the net sample's mean
    # length and weight) made k > n and AICc +inf. AICc scores the survey and the net sample
    # with k = 9, the k of the exact-catch fit of the same structure, and leaves the catch
    # component out with the F's.
    exact = build_spec(data, default_config().with_fit(initial_state="unfished_1956"))
    spec = build_spec(data, default_config().with_fit(initial_state="unfished_1956", catch_sd_log=0.2))
    assert len(spec.estimated) == 54 and aicc_parameters(spec) == 9 == aicc_parameters(exact)
    assert aicc_data_points(spec) == 14 == spec.observations.year.size + 2
    result = _result(spec, spec.initial_theta(), {"biomass": -7.49, "net_sample": -2.0,
                                                  "recruitment_deviations": 28.2, "priors": 11.3,
                                                  "catch": -31.05})
    assert result.nll_data == pytest.approx(-9.49)
    assert result.aicc == pytest.approx(2 * -9.49 + 2 * 9 + 2 * 9 * 10 / (14 - 9 - 1))
    assert np.isfinite(result.aicc) and result.k_aicc == 9 and result.n_data == 14
    # the default 2000 start: k = 11 (the 8 named in [fit] estimate, early q, net mode and
    # width; not the 8 initial-age deviations, penalised like recruitment deviations), n = 14
    default = build_spec(data, default_config())
    base = _result(default, default.initial_theta(), {"biomass": -7.38, "priors": 10.8})
    assert base.k_aicc == 11 and base.aicc == pytest.approx(2 * -7.38 + 22 + 2 * 11 * 12 / 2)
    # optional data components add their points to n (here the upper bound and two shares)
    more = build_spec(data, default_config().with_fit(use_upper_bound=True, use_hatchery_fractions=True))
    assert aicc_data_points(more) == 14 + 1 + 2
    assert aicc_value(0.0, 11, 12) == float("inf")


def test_estimate_on_a_flat_bound_with_the_rest_converged_is_interior_converged(data):
    # release survival at logit 14 (its flat prior's upper bound): the full Hessian is singular
    # in that direction, so `converged` is False, but the other parameters can still be judged
    spec = build_spec(data, default_config().with_fit(release_survival_prior="flat"))
    i = spec.parameter_names.index("logit_release_survival")
    theta = spec.initial_theta()
    theta[i] = 14.0
    h = np.eye(theta.size)
    h[i, i] = -1e-6                     # the flat, slightly negative curvature at the bound
    result = _result(spec, theta, {"biomass": 0.0}, h=h, converged=False)
    assert result.at_bound == ("logit_release_survival",)
    assert result.interior_converged
    gradient = np.zeros(theta.size)
    gradient[0] = 5e-3                  # another parameter not at its optimum
    assert not _result(spec, theta, {"biomass": 0.0}, gradient=gradient, h=h).interior_converged
    h2 = h.copy()
    h2[0, 0] = -1.0                     # or a saddle in another direction
    assert not _result(spec, theta, {"biomass": 0.0}, h=h2).interior_converged


def test_a_start_whose_equilibrium_cannot_persist_is_moved_into_the_model(data):
    # 0.1's equilibrium start in 2000: at the prior centres (egg survival 0.005, so h ~0.67,
    # γ 1) the stock cannot persist under the start F 0.5/yr, so the start stock is empty; the
    # releases refill the lake, which kept the NLL finite and the optimiser stuck at an empty
    # start. fit() halves the start F until the start stock exists.
    spec = build_spec(data, default_config().with_fit(initial_state="equilibrium_f"))
    theta = spec.initial_theta()
    empty, _ = predict(spec, theta)
    assert float(empty.biomass_t[0]) == 0.0
    moved, note = feasible_start(spec, theta)
    i = spec.parameter_names.index("log_initial_f_per_yr")
    assert np.exp(moved[i]) == pytest.approx(0.25) and "lowered from 0.5 to 0.25" in note
    np.testing.assert_array_equal(np.delete(moved, i), np.delete(theta, i))
    started, _ = predict(spec, moved)
    assert float(started.biomass_t[0]) > 0 and np.isfinite(objective(spec, moved))
    result = fit(spec)
    assert result.converged and result.optimizer["start"] == note
    # an evaluable start is left alone, and one that cannot be repaired is refused in words
    default = build_spec(data, default_config())
    same, empty = feasible_start(default, default.initial_theta())
    assert empty == "" and np.array_equal(same, default.initial_theta())
    broken = default.initial_theta()
    broken[-1] = np.nan
    with pytest.raises(FitError, match="cannot be evaluated at the start values"):
        feasible_start(default, broken)


def test_newton_polish_finishes_the_interior_when_an_estimate_sits_on_a_flat_bound(data):
    # window 0-2, flat release-survival prior, Lorenzen c = 1.5 (an ensemble member): survival
    # runs to its bound 0.8, and the polish used to stop with |gradient| 1.3e-3 in log M (a full
    # Newton step ran off along the flat bound coordinate; the interior step raised the NLL by
    # 4e-9, rounding level, and was refused). Now the interior is polished below 1e-3.
    spec = build_spec(data, default_config().with_fit(release_survival_prior="flat", dd_window_end_age_yr=2))
    spec = replace(spec, base=spec.base.replace(lorenzen_c=1.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = fit(spec)
    assert any("at a bound of their range" in str(w.message) for w in caught)
    assert result.at_bound == ("logit_release_survival",) and not result.converged
    assert result.interior_converged
    interior = [i for i, name in enumerate(result.parameter_names) if name != "logit_release_survival"]
    assert np.max(np.abs(result.gradient[interior])) < 1e-4
