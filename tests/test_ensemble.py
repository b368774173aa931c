"""Structural ensembles: one member is the plain projection, weights and pooling by hand,
non-converged members excluded and reported. The budget optimiser over an ensemble is tested in
test_budget.py, ensemble files in test_ensemble_file.py."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import carpmodel.inference.build
import carpmodel.inference.fitting
from carpmodel.errors import ConfigError, FitError
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
from carpmodel.management.ensemble import (
    EnsembleDefinition,
    EnsembleFits,
    MortalityStructure,
    Structure,
    ensemble_attrs,
    ensemble_metrics,
    fit_ensemble,
    fit_member,
    flat_prior_bounds,
    members_table,
    pool_draws,
    project_ensemble,
    single_member,
)
from carpmodel.management.metrics import strategy_metrics
from carpmodel.management.projection import project, strategy_setup
from carpmodel.management.strategies import REFERENCE_STRATEGY, StrategySet

C1, C0 = MortalityStructure("c1", lorenzen_c=1.0), MortalityStructure("c0", lorenzen_c=0.0)
#: two real structures that converge on the bundled data: the base case and constant M (the
#: definition of the session fixture two_fits in conftest.py, fitted once for this file and test_budget.py)
TWO = EnsembleDefinition(dd_windows=(1,), release_survival_priors=("informative",), mortality=(C1, C0),
                         initial_states=("depletion",))


@pytest.fixture(scope="module")
def data():
    return load_data("data")


@pytest.fixture(scope="module")
def strategies() -> StrategySet:
    bundled = load_strategies(DEFAULT_STRATEGIES_FILE)
    return StrategySet(bundled.strategies[:3], bundled.costs)   # no_releases, status_quo, double_releases


def small_setup(strategies, n_age, **options):
    options = {"n_draws": 12, "last_year": 2040, "seed": 11, **options}
    return strategy_setup(strategies, n_age, **options)


def test_both_real_structures_converge_and_are_weighted_equally(two_fits):
    assert [m.name for m in two_fits.included] == ["w1_informative_c1_depletion",
                                                    "w1_informative_c0_depletion"]
    weights = two_fits.weights()
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-15)
    assert set(weights.values()) == {0.5}


def test_an_ensemble_of_one_member_equals_the_plain_projection_exactly(two_fits, strategies):
    member = two_fits.included[0]
    one = EnsembleFits(TWO, (member,))
    setup = small_setup(strategies, member.result.spec.base.n_age)
    plain = project(member.result, setup)
    ensemble = project_ensemble(one, setup)
    assert ensemble.sizes["structure"] == 1 and ensemble["structure_weight"].values.tolist() == [1.0]
    for name, variable in plain.data_vars.items():
        np.testing.assert_array_equal(ensemble[name].isel(structure=0).values, variable.values, err_msg=name)
    # the pooled metrics of one member are that member's metrics, bit for bit
    pooled = ensemble_metrics(ensemble, years=(2035, 2040), cost_year=2040).sel(structure="pooled")
    direct = strategy_metrics(plain, years=(2035, 2040), cost_year=2040)
    for name, variable in direct.data_vars.items():
        np.testing.assert_array_equal(pooled[name].values, variable.values, err_msg=name)
    # an existing fit wrapped as an ensemble does the same
    wrapped = project_ensemble(single_member(member.result), setup)
    np.testing.assert_array_equal(wrapped["biomass_t"].isel(structure=0).values, plain["biomass_t"].values)


def test_members_share_the_draws_random_streams(two_fits, strategies, data):
    # the same seed gives every member the same temperature anomalies, recruitment and survey
    # deviates; only the structure (and each fit's own parameter draws) differ
    from carpmodel.management.climate import ClimateForcing

    setup = small_setup(strategies, 26, scenario_names=("ssp245",),
                        build_multipliers=ClimateForcing.from_data(data, scenario_names=("ssp245",)))
    ds = project_ensemble(two_fits, setup)
    temperature = ds["temperature_c"]
    np.testing.assert_array_equal(temperature.isel(structure=0).values, temperature.isel(structure=1).values)
    biomass = ds["biomass_t"]
    assert not np.array_equal(biomass.isel(structure=0).values, biomass.isel(structure=1).values)
    assert list(ds["mortality"].values) == ["c1", "c0"]
    assert json.loads(ds.attrs["excluded_members"]) == {}
    assert "equal weights" in ds.attrs["ensemble_weighting"]


# --------------------------------------------------------------------------- weights and pooling by hand


def two_member_dataset(weights=(0.75, 0.25)) -> xr.Dataset:
    """2 members × 2 strategies × 1 scenario × 4 draws × 2 years, small exact numbers."""
    dims = ("structure", "strategy", "scenario", "draw", "year")
    # (member, draw, year)
    reference = np.array([[[100.0, 200.0], [100.0, 150.0], [100.0, 120.0], [100.0, 300.0]],
                          [[100.0, 400.0], [100.0, 500.0], [100.0, 50.0], [100.0, 250.0]]])
    gain = np.array([[[0.0, 10.0], [0.0, 20.0], [0.0, 30.0], [0.0, 40.0]],
                     [[0.0, -8.0], [0.0, 4.0], [0.0, 100.0], [0.0, 60.0]]])
    biomass = np.stack([reference, reference + gain], axis=1)[:, :, None]   # member, strategy, 1, draw, year
    zeros = np.zeros_like(biomass)
    released = zeros.copy()
    released[:, 1] = 1e6
    return xr.Dataset(
        {"biomass_t": (dims, biomass), "ssb_t": (dims, biomass), "recruits": (dims, zeros + 1.0),
         "catch_t": (dims, zeros), "released_fish": (dims, released),
         "hatchery_fraction_biomass": (dims, zeros),
         "hatchery_fraction_ssb": (dims, zeros), "cost": (dims, released), "window_survivors": (dims, zeros),
         "f_per_yr": (dims, zeros),
         "ssb0_t": (("structure", "draw"), np.full((2, 4), 600.0)),
         "dynamic_ssb0_t": (("structure", "scenario", "draw", "year"), np.full((2, 1, 4, 2), 600.0)),
         "biomass_2002_t": ("structure", [90.0, 95.0]),
         "structure_weight": ("structure", list(weights))},
        coords={"structure": ["a", "b"], "strategy": [REFERENCE_STRATEGY, "more"], "scenario": ["base"],
                "draw": np.arange(4), "year": [2030, 2050]})


def test_pooled_quantiles_and_probabilities_match_a_hand_computation():
    ds = two_member_dataset()
    pooled, weights = pool_draws(ds)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(weights.values, [0.1875] * 4 + [0.0625] * 4, rtol=1e-15)
    m = ensemble_metrics(ds, years=(2050,), cost_year=2050, after_year=2029, interval=0.5)
    gains_a, gains_b = [10.0, 20.0, 30.0, 40.0], [-8.0, 4.0, 100.0, 60.0]
    # weight 0.75 vs 0.25 with 4 draws each: every draw of a counts 3 times a draw of b, so the
    # pooled quantiles are numpy's linear quantiles of a's gains repeated 3 times and b's once
    by_hand = np.quantile(np.repeat(gains_a, 3).tolist() + gains_b, [0.5, 0.25, 0.75])
    got = [float(m[f"biomass_gain_{k}_t"].sel(structure="pooled", strategy="more", scenario="base",
                                              metric_year=2050)) for k in ("median", "lower", "upper")]
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    # members on their own: plain quantiles of their 4 draws
    got_b = float(m["biomass_gain_median_t"].sel(structure="b", strategy="more", scenario="base",
                                                  metric_year=2050))
    assert got_b == pytest.approx(np.quantile(gains_b, 0.5), rel=1e-12)
    # P(biomass < the 2002 level of each member) in any year after 2029: only b's draw 2 (50 < 95)
    p = float(m["p_biomass_below_2002_any"].sel(structure="pooled", strategy=REFERENCE_STRATEGY,
                                                 scenario="base"))
    assert p == pytest.approx(0.0625, rel=1e-12)
    # its Monte Carlo error over the 4 draw indices the members share: the residuals
    # w·(e − p) summed per index, a's draws 0.1875·(0 − 0.0625), b's 0.0625·(e − 0.0625):
    # −0.015625 at indices 0, 1, 3 and 0.046875 at index 2 (each member over its own 4 draws)
    effective = m["effective_draws"].sel(strategy=REFERENCE_STRATEGY, scenario="base")
    np.testing.assert_allclose(effective.values, [4.0, 4.0, 4.0], rtol=1e-12)
    se = float(m["p_biomass_below_2002_any_mc_se"].sel(structure="pooled", strategy=REFERENCE_STRATEGY,
                                                       scenario="base"))
    assert se == pytest.approx(np.sqrt(3 * 0.015625**2 + 0.046875**2), rel=1e-12)
    assert list(m["structure"].values) == ["a", "b", "pooled"]
    np.testing.assert_allclose(m["structure_weight"].values, [0.75, 0.25, 1.0])


def test_pooled_monte_carlo_error_counts_members_that_share_draws_once():
    # two members with the same outcomes in every draw (they share each draw's random numbers):
    # the pooled probability is no better known than one member's, sqrt(p(1 − p)/4), not
    # sqrt(p(1 − p)/8) as for 8 independent draws
    ds = two_member_dataset(weights=(0.5, 0.5))
    same = ds.copy(deep=True)
    for name in ("biomass_t", "ssb_t"):
        same[name].values[1] = same[name].values[0]
    same["biomass_2002_t"].values[:] = 160.0   # a's draws 1 and 2 fall below it in 2050
    m = ensemble_metrics(same, years=(2050,), cost_year=2050, after_year=2030)
    cell = {"strategy": REFERENCE_STRATEGY, "scenario": "base"}
    p = m["p_biomass_below_2002_any"].sel(**cell).values
    np.testing.assert_allclose(p, [0.5, 0.5, 0.5], rtol=1e-12)
    se = m["p_biomass_below_2002_any_mc_se"].sel(**cell).values
    np.testing.assert_allclose(se, [np.sqrt(0.25 / 4)] * 3, rtol=1e-12)


def test_equal_member_weights_pool_like_concatenated_draws():
    ds = two_member_dataset(weights=(0.5, 0.5))
    m = ensemble_metrics(ds, years=(2050,), cost_year=2050, after_year=2029)
    concatenated = [10.0, 20.0, 30.0, 40.0, -8.0, 4.0, 100.0, 60.0]
    got = float(m["biomass_gain_median_t"].sel(structure="pooled", strategy="more", scenario="base",
                                                metric_year=2050))
    assert got == np.quantile(concatenated, 0.5)


def test_user_weights_are_renormalised_over_the_converged_members():
    definition = dataclasses.replace(TWO, mortality=(C1, C0, MortalityStructure("c0.5", lorenzen_c=0.5)),
                                     weights={"w1_informative_c1_depletion": 3.0,
                                              "w1_informative_c0_depletion": 1.0,
                                              "w1_informative_c0.5_depletion": 4.0})
    from carpmodel.management.ensemble import MemberFit

    members = tuple(MemberFit(s, object(), s.mortality.name != "c0.5", "" if s.mortality.name != "c0.5"
                              else "not converged: test") for s in definition.members())
    weights = EnsembleFits(definition, members).weights()
    assert weights == {"w1_informative_c1_depletion": 0.75, "w1_informative_c0_depletion": 0.25}
    with pytest.raises(ConfigError, match="weights.nobody"):
        dataclasses.replace(TWO, weights={"nobody": 1.0})


# --------------------------------------------------------------------------- exclusion


def test_a_member_that_does_not_converge_or_cannot_be_fitted_is_excluded_and_reported(
        two_fits, data, strategies, monkeypatch):
    base = two_fits.included[0].result
    real_fit = carpmodel.inference.fitting.fit

    def fake_fit(spec, **kwargs):
        c = float(np.asarray(spec.base.lorenzen_c))
        if c == 0.5:   # pretend the optimiser stalls
            return dataclasses.replace(base, converged=False,
                                       warnings=("largest |gradient| 3 exceeds 0.001",))
        if int(spec.base.dd_window_end_age_yr) == 2:
            raise FitError("every start ended at a non-finite NLL")
        return base if c == 1.0 else real_fit(spec, **kwargs)

    monkeypatch.setattr(carpmodel.inference.fitting, "fit", fake_fit)
    definition = EnsembleDefinition(dd_windows=(1, 2), release_survival_priors=("informative",),
                                    mortality=(C1, MortalityStructure("c0.5", lorenzen_c=0.5)),
                                    initial_states=("depletion",), design="one_at_a_time")
    fits = fit_ensemble(data, definition)
    assert [m.name for m in fits.included] == ["w1_informative_c1_depletion"]
    assert fits.excluded == {
        "w2_informative_c1_depletion": "fit failed: FitError: every start ended at a non-finite NLL",
        "w1_informative_c0.5_depletion": "not converged: largest |gradient| 3 exceeds 0.001"}
    rows = {r["structure"]: r for r in members_table(fits)}
    assert rows["w1_informative_c0.5_depletion"]["included"] is False
    assert rows["w1_informative_c0.5_depletion"]["weight"] == 0.0
    assert rows["w1_informative_c1_depletion"]["weight"] == 1.0
    ds = project_ensemble(fits, small_setup(strategies, base.spec.base.n_age, n_draws=3))
    assert list(ds["structure"].values) == ["w1_informative_c1_depletion"]
    assert json.loads(ds.attrs["excluded_members"]) == fits.excluded
    assert ds.attrs["n_members_defined"] == 3 and ds.attrs["n_members_included"] == 1


def test_members_that_start_before_2000_fit_catch_as_data_and_say_so(data):
    # the 1956 and 1986 starts converge only with catch error (experiments/01): the ensemble
    # gives them catch_sd_log 0.2 (F per fished year estimated), the 2000 start keeps exact catch
    definition = EnsembleDefinition(dd_windows=(1,), release_survival_priors=("informative",),
                                    mortality=(C1,))
    members = {m.initial_state: m for m in definition.members()}
    assert members["depletion"].catch_sd_log is None
    assert members["unfished_1956"].catch_sd_log == 0.2 == members["equilibrium_1986"].catch_sd_log
    base = default_config()
    assert members["equilibrium_1986"].config(base).fit.catch_sd_log == 0.2
    assert members["depletion"].config(base).fit.catch_sd_log is None
    # a catch error in the base config applies to every member
    with_error = base.with_fit(catch_sd_log=0.3)
    assert members["depletion"].config(with_error).fit.catch_sd_log == 0.3
    spec = members["equilibrium_1986"].spec(data, base)
    assert spec.catch_sd_log == 0.2 and "log_f_1986" in spec.parameter_names
    from carpmodel.management.ensemble import MemberFit

    described = MemberFit(members["equilibrium_1986"], None, False, "x").describe()
    assert described["catch"] == "lognormal sd_log 0.2, F per fished year estimated"
    assert MemberFit(members["depletion"], None, False, "x").describe()["catch"] == "exact"
    included = tuple(MemberFit(members[name], None, True, "")
                     for name in ("equilibrium_1986", "depletion"))
    attrs = ensemble_attrs(EnsembleFits(definition, included))
    catch = json.loads(attrs["ensemble_catch"])      # what each included member actually used
    assert catch == {m.structure.name: m.catch for m in included}
    assert "sd_log 0.2" in catch[members["equilibrium_1986"].name]
    assert catch[members["depletion"].name] == "exact"
    assert json.loads(attrs["ensemble_definition"])["pre_2000_catch_sd_log"] == 0.2
    with pytest.raises(ConfigError, match="pre_2000_catch_sd_log"):
        EnsembleDefinition(pre_2000_catch_sd_log=0.0)


FLAT = Structure(1, "flat", C1, "depletion")
#: small posterior sample: enough to see the spread of release survival, quick to draw
SMALL_POSTERIOR = {"posterior_samples": 80, "posterior_proposals": 800}


@pytest.fixture(scope="module")
def flat_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return carpmodel.inference.fitting.fit(FLAT.spec(data, default_config()))


def test_a_flat_prior_member_on_its_bound_is_included_with_posterior_draws(data, flat_fit, monkeypatch):
    # the flat release-survival prior's MAP sits on its bound 0.8 (the likelihood is nearly flat
    # in survival): not `converged`, but the rest of the fit is. Included with posterior draws,
    # whose release survival spreads over the prior's range instead of sitting at 0.8
    assert not flat_fit.converged and flat_fit.interior_converged
    assert flat_prior_bounds(flat_fit) == ("logit_release_survival",)
    monkeypatch.setattr(carpmodel.inference.fitting, "fit", lambda spec, **kwargs: flat_fit)
    definition = EnsembleDefinition(dd_windows=(1,), release_survival_priors=("flat",), mortality=(C1,),
                                    initial_states=("depletion",), **SMALL_POSTERIOR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        member = fit_member(data, FLAT, default_config(), definition, seed=3)
    assert member.included and member.parameter_draws == "posterior"
    assert member.posterior_theta.shape == (80, flat_fit.theta.size)
    assert "on the bound of its flat prior U(0.05, 0.8)" in member.note
    row = members_table(EnsembleFits(definition, (member,)))[0]
    assert row["included"] and not row["converged"] and row["release_survival"] > 0.79
    lo, hi = row["release_survival_draws_lower_90"], row["release_survival_draws_upper_90"]
    # flat prior's 90 % interval is [0.09, 0.76]; the data barely move it (a 0.3 width is far
    # from a point mass at the bound, and from the informative prior's [0.06, 0.59])
    assert lo < 0.3 and hi > 0.6 and hi - lo > 0.3
    # the other choice: keep such members out, saying why
    excluded = fit_member(data, FLAT, default_config(),
                          dataclasses.replace(definition, on_bound="exclude"), seed=3)
    assert not excluded.included
    assert "logit_release_survival on the bound of a flat prior" in excluded.reason


def test_a_member_whose_posterior_draws_are_not_a_posterior_sample_is_excluded(data, flat_fit, monkeypatch):
    """Old behaviour: a member was projected from whatever particles the sampler returned, even a
    cloud it said had not spread over the posterior (intervals a few hundredths wide)."""
    from carpmodel.inference import posterior

    monkeypatch.setattr(carpmodel.inference.fitting, "fit", lambda spec, **kwargs: flat_fit)
    real = posterior.sample_posterior

    def failed(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), failure="final Metropolis acceptance 0.99: "
                                   "the particles have not spread over the target (a collapsed cloud)")

    monkeypatch.setattr(posterior, "sample_posterior", failed)
    definition = EnsembleDefinition(dd_windows=(1,), release_survival_priors=("flat",), mortality=(C1,),
                                    initial_states=("depletion",), **SMALL_POSTERIOR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        member = fit_member(data, FLAT, default_config(), definition, seed=3)
    assert not member.included and member.posterior_theta is None
    assert member.reason.startswith("posterior sampling did not reach the posterior: final Metropolis")


def test_proposal_scale_from_a_hessian_that_is_not_positive_definite():
    # where the posterior mode search ends on a curved ridge (flat prior, c = 1.5) its Hessian
    # has a negative eigenvalue; the proposal then takes |H|^-1: same eigenvectors, absolute
    # eigenvalues (exact linear algebra: 1e-12), and the plain inverse when H is positive definite
    from carpmodel.inference.posterior import absolute_inverse

    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    h = rotation @ np.diag([-2.0, 0.5, 4.0]) @ rotation.T
    expected = rotation @ np.diag([0.5, 2.0, 0.25]) @ rotation.T
    np.testing.assert_allclose(absolute_inverse(h), expected, atol=1e-12)
    positive = rotation @ np.diag([2.0, 0.5, 4.0]) @ rotation.T
    np.testing.assert_allclose(absolute_inverse(positive), np.linalg.inv(positive), atol=1e-12)
    with pytest.raises(FitError, match="zero or not finite"):
        absolute_inverse(np.zeros((2, 2)))


def test_an_estimate_on_a_bound_with_a_stated_prior_is_not_excused(flat_fit):
    # only a flat prior's bound is the prior's, not the model's: the same bound estimate with a
    # stated prior on the parameter does not qualify
    i = flat_fit.parameter_names.index("logit_release_survival")
    prior = carpmodel.inference.build.FLAT_RELEASE_SURVIVAL
    free = tuple(dataclasses.replace(f, prior=prior) if f.field == "release_survival" else f
                 for f in flat_fit.spec.free)
    stated = dataclasses.replace(flat_fit, spec=dataclasses.replace(flat_fit.spec, free=free))
    assert stated.at_bound == (flat_fit.parameter_names[i],)
    assert flat_prior_bounds(stated) == ()


def test_an_ensemble_with_no_converged_member_refuses_and_lists_why(two_fits):
    from carpmodel.management.ensemble import MemberFit

    member = dataclasses.replace(two_fits.members[0], included=False, reason="not converged: test")
    with pytest.raises(FitError, match="no member converged.*not converged: test"):
        failed = MemberFit(two_fits.members[1].structure, None, False, "fit failed: x")
        EnsembleFits(TWO, (member, failed)).weights()


def test_mortality_structure_changes_the_lorenzen_exponent_or_recentres_the_m_prior(data):
    from carpmodel.inference.build import build_spec
    from carpmodel.io.config import default_config

    spec = build_spec(data, default_config())
    assert float(C0.apply(spec).base.lorenzen_c) == 0.0
    recentred = MortalityStructure("m", m_ref_prior_median_per_yr=0.3).apply(spec)
    free = {f.field: f for f in recentred.free}["m_ref_per_yr"]
    assert free.prior.parameters["median"] == 0.3 and free.init == 0.3
    original = {f.field: f for f in spec.free}["m_ref_per_yr"].prior
    assert free.prior.parameters["sd_log"] == original.parameters["sd_log"]


def test_default_definition_crosses_the_four_axes():
    members = EnsembleDefinition().members()
    assert len(members) == 3 * 2 * 3 * 3
    assert members[0].name == "w1_informative_c1_depletion"     # the base case first
    assert len(EnsembleDefinition(design="one_at_a_time").members()) == 1 + 2 + 1 + 2 + 2
    # initial states varied alone around the base, the other three axes crossed: 18 + 2
    partly = [m.name for m in EnsembleDefinition(vary_alone=("initial_states",)).members()]
    assert len(partly) == 3 * 2 * 3 + 2 and len(set(partly)) == len(partly)
    assert partly[-2:] == ["w1_informative_c1_unfished_1956", "w1_informative_c1_equilibrium_1986"]
    assert sum(name.endswith("depletion") for name in partly) == 18
    with pytest.raises(ConfigError, match="vary_alone"):
        EnsembleDefinition(vary_alone=("everything",))


def test_an_ensemble_result_writes_to_netcdf(two_fits, strategies, tmp_path):
    from carpmodel.io.outputs import write_netcdf_atomic

    ds = project_ensemble(two_fits, small_setup(strategies, 26, n_draws=2))
    path = write_netcdf_atomic(ds, Path(tmp_path) / "e.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = xr.open_dataset(path, engine="h5netcdf").load()
    np.testing.assert_array_equal(back["biomass_t"].values, ds["biomass_t"].values)
    assert list(back["structure"].values) == list(ds["structure"].values)
