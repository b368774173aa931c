"""Counterfactual hindcasts and the Shapley attribution of the recovery."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from carpmodel.errors import FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.likelihood import objective, predict
from carpmodel.inference.spec import Covariate, Free, fix_parameter
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.model.dynamics import simulate
from carpmodel.priors import Prior
from carpmodel.studies.attribution import (
    FACTORS,
    SCENARIO_NAMES,
    attribution_table,
    ban_year_of,
    counterfactuals,
    interaction,
    pre_ban_f_choice,
    shapley_values,
)
from carpmodel.studies.attribution_structures import attribution_across_structures


def _all_coalitions(value) -> dict[frozenset[str], float]:
    out = {}
    for mask in range(8):
        s = frozenset(f for i, f in enumerate(FACTORS) if mask >> i & 1)
        out[s] = value(s)
    return out


def test_shapley_of_an_additive_game_is_each_factors_own_effect():
    # additive outcome: 5 + 100·ban + 7·releases − 3·devs. Shapley values equal the one-factor
    # effects exactly (float rounding only, hence 1e-12) and add up to v(all) − v(none)
    effect = {"ban": 100.0, "releases": 7.0, "rec_devs": -3.0}
    v = _all_coalitions(lambda s: 5.0 + sum(effect[f] for f in s))
    phi = shapley_values(v, FACTORS)
    for f in FACTORS:
        assert phi[f] == pytest.approx(effect[f], abs=1e-12)
    assert sum(phi.values()) == pytest.approx(v[frozenset(FACTORS)] - v[frozenset()], abs=1e-12)
    assert interaction(v, ("ban", "releases"), fixed_on=("rec_devs",)) == pytest.approx(0.0, abs=1e-12)


def test_shapley_spreads_interactions_and_shares_sum_to_one():
    # releases only work with the ban (pure interaction 30), plus main effects; hand result:
    # φ_ban = 100 + 15, φ_releases = 2 + 15, φ_devs = −4; the shares sum to 1 up to rounding
    def value(s):
        return 100.0 * ("ban" in s) + 2.0 * ("releases" in s) - 4.0 * ("rec_devs" in s) + 30.0 * (
            {"ban", "releases"} <= s)

    v = _all_coalitions(value)
    phi = shapley_values(v, FACTORS)
    assert [float(phi[f]) for f in FACTORS] == pytest.approx([115.0, 17.0, -4.0], abs=1e-12)
    explained = v[frozenset(FACTORS)] - v[frozenset()]
    assert sum(phi[f] / explained for f in FACTORS) == pytest.approx(1.0, abs=1e-14)
    assert interaction(v, ("ban", "releases"), fixed_on=("rec_devs",)) == pytest.approx(30.0)
    assert interaction(v, FACTORS) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- on the engine
# Any parameter vector will do for these properties: the prior centres plus small perturbations
# (no fit needed, which keeps the module fast).


@pytest.fixture(scope="module")
def spec_and_thetas():
    spec = build_spec(load_data("data"), default_config())
    rng = np.random.default_rng(0)
    base = spec.initial_theta()
    thetas = base + 0.05 * rng.standard_normal((6, base.size))
    thetas[:, len(spec.estimated):] = 0.3 * rng.standard_normal((6, len(spec.rec_dev_years)))
    return spec, thetas


def test_fitted_scenario_reproduces_predict_exactly(spec_and_thetas):
    # the counterfactuals call the engine with the fitted F path instead of the catch; the F
    # solved from the catch fed back as F must give bit-identical dynamics (guards against
    # predict and counterfactuals drifting apart)
    spec, thetas = spec_and_thetas
    cf = counterfactuals(spec, thetas)
    state, _ = predict(spec, thetas)
    fitted = cf.sel(scenario="fitted")
    np.testing.assert_array_equal(fitted["biomass_t"].values, state.biomass_t)
    np.testing.assert_array_equal(fitted["hatchery_fraction_biomass"].values,
                                  state.hatchery_fraction_biomass)
    assert list(cf["scenario"].values) == list(SCENARIO_NAMES)
    assert dict(cf.sizes) == {"scenario": 8, "draw": 6, "year": spec.years.size}
    assert cf["biomass_t"].attrs["units"] == "t"


def test_fishing_continued_holds_the_pre_ban_f(spec_and_thetas):
    # the default depleted start: fishing continues at the F the recorded 2000 catch implies in
    # each draw (the initial F only shapes the start's age structure)
    spec, thetas = spec_and_thetas
    cf = counterfactuals(spec, thetas)
    ban = ban_year_of(spec)
    assert ban == 2001  # catch.csv: last positive catch in 2000
    f = cf["f_per_yr"]
    f_2000 = f.sel(scenario="fitted", year=ban - 1).values
    assert np.all(f_2000 > 0)
    after = f.sel(scenario="fishing_continued", year=slice(ban, None)).values
    np.testing.assert_allclose(after, np.broadcast_to(f_2000[:, None], after.shape), rtol=1e-12)
    np.testing.assert_array_equal(f.sel(scenario="fitted", year=slice(ban, None)).values, 0.0)
    np.testing.assert_array_equal(f.sel(year=slice(None, ban - 1)).values,
                                  np.broadcast_to(f.sel(scenario="fitted", year=slice(None, ban - 1)).values,
                                                  f.sel(year=slice(None, ban - 1)).shape))


def test_default_depleted_start_uses_the_last_pre_ban_f_and_says_so(spec_and_thetas):
    # "auto" for the depleted start means the F of the last fished year, and says so
    spec, thetas = spec_and_thetas
    cf = counterfactuals(spec, thetas)
    assert cf.attrs["pre_ban_f_option"] == "last_pre_ban"
    explicit = counterfactuals(spec, thetas, pre_ban_f="last_pre_ban")
    np.testing.assert_array_equal(cf["biomass_t"].values, explicit["biomass_t"].values)


@pytest.fixture(scope="module")
def data():
    return load_data("data")


def _perturbed(spec, n=4, seed=1, scale=0.02, dev_scale=0.1):
    """Prior centres plus small perturbations; every row evaluable (checked)."""
    rng = np.random.default_rng(seed)
    base = spec.initial_theta()
    thetas = base + scale * rng.standard_normal((n, base.size))
    thetas[:, len(spec.estimated):] = dev_scale * rng.standard_normal((n, len(spec.rec_dev_years)))
    assert np.all(np.isfinite(objective(spec, thetas)))
    return thetas


def test_unfished_start_continues_fishing_at_the_last_pre_ban_f(data):
    # The reported failure: `carpmodel fit` with initial_state = "unfished_1956" exited 1 in the
    # attribution stage because the unfished start's initial F is 0. "auto" (the default) must
    # continue fishing at the F of 2000, which with catch error is the estimated f_2000 itself
    spec = build_spec(data, default_config().with_fit(initial_state="unfished_1956", catch_sd_log=0.2))
    thetas = _perturbed(spec)
    # at the prior centres the stock is large and F(2000) tiny; set it to a pre-ban level
    thetas[:, spec.parameter_names.index("log_f_2000")] = np.log([0.5, 0.6, 0.7, 0.8])
    table = attribution_table(spec, thetas)
    assert table.attrs["pre_ban_f_option"] == "last_pre_ban"
    assert "2000" in table.attrs["pre_ban_f"] and "estimated" in table.attrs["pre_ban_f"]
    cf = counterfactuals(spec, thetas)
    f_2000 = np.exp(thetas[:, spec.parameter_names.index("log_f_2000")])
    continued = cf["f_per_yr"].sel(scenario="fishing_continued", year=slice(2001, None)).values
    np.testing.assert_allclose(continued, np.broadcast_to(f_2000[:, None], continued.shape), rtol=1e-12)
    # fishing continued at F 0.5-0.8/yr ends with far less biomass than the ban
    last = cf["biomass_t"].sel(year=2024)
    assert np.all(last.sel(scenario="fishing_continued").values < 0.5 * last.sel(scenario="fitted").values)
    shares = sum(table["value"].sel(quantity=f"share_{f}").values for f in FACTORS)
    np.testing.assert_allclose(shares, 1.0, atol=1e-9)
    # asking for the initial F of an unfished start is refused in words, not with a crash
    with pytest.raises(FitError, match="unfished start state.*last_pre_ban"):
        counterfactuals(spec, thetas, pre_ban_f="initial")


def test_auto_uses_the_last_pre_ban_f_for_a_start_decades_before_the_ban(data):
    # the 1986 start's equilibrium F is the fishing of 1986, not of the late 1990s
    spec = build_spec(data, default_config().with_fit(initial_state="equilibrium_1986", catch_sd_log=0.2))
    assert pre_ban_f_choice(spec, 0.4, 2001) == "last_pre_ban"
    default = build_spec(data, default_config())
    assert pre_ban_f_choice(default, 0.4, 2001) == "last_pre_ban"     # depleted start: always
    at_2000 = build_spec(data, default_config().with_fit(initial_state="equilibrium_f"))
    assert pre_ban_f_choice(at_2000, 0.4, 2001) == "initial"
    assert pre_ban_f_choice(at_2000, 0.0, 2001) == "last_pre_ban"


def test_fitted_scenario_follows_predicts_two_piece_run_with_an_unfished_change(data):
    # With [model] unfished_change_year the fit runs the years before the change at R0/ratio and
    # the rest at R0; the counterfactuals must do the same (before the fix they ran every year at
    # the changed R0). Bit-identical to predict, and far from the one-piece run (ratio 0.6)
    spec = build_spec(data, default_config().with_fit(unfished_change_year=2010))
    thetas = _perturbed(spec, n=3)
    thetas[:, spec.parameter_names.index("log_unfished_change")] = np.log(0.6)
    cf = counterfactuals(spec, thetas)
    state, u = predict(spec, thetas)
    fitted = cf.sel(scenario="fitted")
    np.testing.assert_array_equal(fitted["biomass_t"].values, state.biomass_t)
    np.testing.assert_array_equal(fitted["recruits"].values, state.recruits)
    one_piece = simulate(u.params, n_years=spec.years.size, f_per_yr=state.f_per_yr,
                         release_fish=spec.drivers.release_fish,
                         release_length_cm=spec.drivers.release_length_cm,
                         log_rec_devs=u.log_rec_devs - 0.5 * np.asarray(u.params.sigma_r)[..., None] ** 2,
                         keep_numbers=False)
    before = spec.years < 2010
    # at R0 × 0.6 throughout, the pre-change years differ by tens of per cent
    change = np.abs(one_piece.biomass_t[:, before] / state.biomass_t[:, before] - 1.0)
    assert np.all(change.max(axis=-1) > 0.1)
    # every scenario runs in two pieces: before the ban year (2001) the F path is the fitted one
    # everywhere, so with releases and deviations as fitted the years to 2000 agree with "fitted"
    np.testing.assert_array_equal(cf["biomass_t"].sel(scenario="fishing_continued", year=2000).values,
                                  fitted["biomass_t"].sel(year=2000).values)


def test_fitted_scenario_applies_estimated_temperature_effects(spec_and_thetas):
    # an estimated recruitment-temperature slope acts through the forcing multipliers; the
    # counterfactuals must run with them (they used to run with none)
    spec, thetas = spec_and_thetas
    covariate = Covariate(values=np.linspace(15.5, 17.5, spec.years.size), reference=16.5)
    free = spec.free + (Free("recruitment_slope_per_c", "identity",
                             Prior("normal", {"mean": 0.0, "sd": 1.0}), 0.0),)
    with_effect = dataclasses.replace(spec, free=free, covariate=covariate)
    theta = np.insert(thetas, len(spec.estimated), 0.5, axis=1)
    cf = counterfactuals(with_effect, theta)
    state, _ = predict(with_effect, theta)
    np.testing.assert_array_equal(cf["biomass_t"].sel(scenario="fitted").values, state.biomass_t)
    without, _ = predict(spec, thetas)
    assert np.max(np.abs(state.recruits / without.recruits - 1.0)) > 0.3   # the effect is large


def test_batch_result_equals_one_draw_at_a_time(spec_and_thetas):
    # vectorised over draws: a draw's trajectory must not depend on the others in the batch
    spec, thetas = spec_and_thetas
    batch = counterfactuals(spec, thetas)["biomass_t"].values
    single = counterfactuals(spec, thetas[2])["biomass_t"].values
    np.testing.assert_allclose(batch[:, 2], single[:, 0], rtol=1e-12)


def test_without_releases_the_no_releases_scenario_equals_fitted_exactly(spec_and_thetas):
    spec, thetas = spec_and_thetas
    drivers = dataclasses.replace(spec.drivers, release_fish=np.zeros_like(spec.drivers.release_fish))
    cf = counterfactuals(dataclasses.replace(spec, drivers=drivers), thetas)
    for name in ("biomass_t", "recruits", "hatchery_fraction_biomass"):
        np.testing.assert_array_equal(cf[name].sel(scenario="no_releases").values,
                                      cf[name].sel(scenario="fitted").values)


def test_gain_from_releases_vanishes_with_tiny_release_survival(spec_and_thetas):
    # gain scales with the surviving released fish: at survival 1e-9 it is ~1e-9 of the ~10^3 t
    # gain at survival 0.3 (so < 1e-3 t); the contrast shows the test can fail
    spec, thetas = spec_and_thetas
    i = spec.parameter_names.index("logit_release_survival")
    tiny = fix_parameter(spec, "release_survival", 1e-9)
    table = attribution_table(tiny, np.delete(thetas, i, axis=1))
    gain = table["value"].sel(quantity="gain_from_releases_t").values
    assert np.all(np.abs(gain) < 1e-3)
    assert np.all(table["value"].sel(quantity="hatchery_fraction_last").values < 1e-9)
    assert np.all(np.abs(table["value"].sel(quantity="share_releases").values) < 1e-8)
    usual = attribution_table(spec, thetas)["value"].sel(quantity="gain_from_releases_t").values
    assert np.all(usual > 100.0)


def test_attribution_shares_sum_to_one_in_every_draw(spec_and_thetas):
    # Shapley efficiency: exact up to floating-point rounding of sums of ~10^5 t (1e-9)
    spec, thetas = spec_and_thetas
    table = attribution_table(spec, thetas)
    value = table["value"]
    shares = sum(value.sel(quantity=f"share_{f}").values for f in FACTORS)
    np.testing.assert_allclose(shares, 1.0, atol=1e-9)
    parts = value.sel(quantity="baseline_increase_t") + sum(
        value.sel(quantity=f"shapley_{f}_t") for f in FACTORS)
    np.testing.assert_allclose(parts.values, value.sel(quantity="increase_t").values, rtol=1e-10)
    gain = value.sel(quantity="gain_from_releases_t").values
    for stat in ("lower_95", "lower_90", "median", "upper_90", "upper_95"):
        assert np.isfinite(table[stat].sel(quantity="share_ban"))
    assert np.all(table["lower_95"] <= table["lower_90"]) and np.all(table["upper_90"] <= table["upper_95"])
    np.testing.assert_allclose(gain / value.sel(quantity="biomass_last_t").values,
                               value.sel(quantity="gain_from_releases_fraction").values)


def test_attribution_across_structures_runs_one_structure():
    # wiring only (one small structure); the full 2 × 3 table takes minutes and is in the report
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = attribution_across_structures(load_data("data"), draws_per_fit=40, seed=1,
                                           priors=("informative",), windows=(1,), n_proposals=400,
                                           n_starts=1)
    assert dict(ds.sizes) == {"release_survival_prior": 1, "dd_window_end_age_yr": 1,
                              "quantity": ds.sizes["quantity"]}
    cell = ds.sel(release_survival_prior="informative", dd_window_end_age_yr=1)
    assert 0.0 <= float(cell["median"].sel(quantity="hatchery_fraction_last")) < 1.0
    assert 0.0 < float(cell["median"].sel(quantity="release_survival")) < 1.0
    assert bool(cell["converged"])
    assert str(cell["sampling_method"].values) == "sir+smc"
    assert ds["converged"].dtype == bool
