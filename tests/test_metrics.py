"""Strategy metrics on a hand-built projection Dataset whose answers are computed by hand.

2 strategies × 1 scenario × 4 draws × 3 years (2025, 2050, 2100). Quantiles are numpy's
linear interpolation over the 4 draws: the 5 % quantile sits at position 0.15 between the two
smallest values, the 95 % at 2.85 between the two largest. Values are small exact floats, so
hand results agree to rounding: rel 1e-12 everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from carpmodel.errors import ConfigError
from carpmodel.management.metrics import (
    REQUIRED_VARIABLES,
    metrics_table,
    strategy_metrics,
    weighted_mean,
    weighted_quantile,
)

YEARS = [2025, 2050, 2100]
DIMS = ("strategy", "scenario", "draw", "year")
REL = 1e-12


def q(values, p):
    """Linear-interpolation quantile by hand (what the module should reproduce)."""
    v = sorted(values)
    pos = p * (len(v) - 1)
    lo = math.floor(pos)
    return v[lo] + (pos - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def tiny_dataset() -> xr.Dataset:
    ref_biomass = np.array([[100.0, 200.0, 300.0],
                            [100.0, 150.0, 250.0],
                            [100.0, 100.0, 50.0],
                            [100.0, 300.0, 400.0]])
    gain = np.array([[0.0, 10.0, -5.0],
                     [0.0, 20.0, 5.0],
                     [0.0, 30.0, 15.0],
                     [0.0, 40.0, 25.0]])
    ref_ssb = np.array([[200.0, 400.0, 600.0],
                        [150.0, 300.0, 500.0],   # below 0.2 × 1000 in 2025 only
                        [200.0, 200.0, 100.0],   # below in 2100 (static and dynamic limits)
                        [200.0, 600.0, 800.0]])
    sq_ssb = ref_ssb + np.array([[0.0, 0.0, 0.0], [60.0, 0.0, 0.0], [0.0, 0.0, 30.0], [0.0, 0.0, 0.0]])
    released = np.array([[20e6, 20e6, 0.0],     # a trigger switched 2100 off in draws 0 and 1
                         [20e6, 20e6, 0.0],
                         [20e6, 20e6, 20e6],
                         [20e6, 20e6, 20e6]])
    added_survivors = np.array([4000.0, 6000.0, 9000.0, 15000.0])
    ref_survivors = np.full((4, 3), 1000.0)
    sq_survivors = ref_survivors.copy()
    sq_survivors[:, 1] += added_survivors
    hatchery = np.array([[0.0, 0.1, 0.5], [0.0, 0.2, 0.5], [0.0, 0.3, 0.6], [0.0, 0.4, 0.7]])
    catch = np.zeros((4, 3))
    catch[:, 2] = [0.0, 10.0, 20.0, 30.0]

    def both(ref, sq):
        return (DIMS, np.stack([ref, sq])[:, None])

    ds = xr.Dataset(
        {
            "biomass_t": both(ref_biomass, ref_biomass + gain),
            "ssb_t": both(ref_ssb, sq_ssb),
            "recruits": both(np.ones((4, 3)), np.ones((4, 3))),
            "catch_t": both(np.zeros((4, 3)), catch),
            "released_fish": both(np.zeros((4, 3)), released),
            "hatchery_fraction_biomass": both(np.zeros((4, 3)), hatchery),
            "hatchery_fraction_ssb": both(np.zeros((4, 3)), hatchery),
            "cost": both(np.zeros((4, 3)), released * 1.0),   # 1 unit per fish
            "window_survivors": both(ref_survivors, sq_survivors),
            "f_per_yr": both(np.zeros((4, 3)), np.zeros((4, 3))),
            "ssb0_t": ("draw", np.full(4, 1000.0)),
            "dynamic_ssb0_t": (("scenario", "draw", "year"), np.full((1, 4, 3), 600.0)),
            "biomass_2002_t": ((), 90.0),
            "release_survival": ("draw", np.full(4, 0.5)),
        },
        coords={"strategy": ["no_releases", "status_quo"], "scenario": ["base"], "draw": np.arange(4),
                "year": YEARS},
        attrs={"seed": 7},
    )
    return ds


@pytest.fixture(scope="module")
def metrics() -> xr.Dataset:
    return strategy_metrics(tiny_dataset(), years=(2050, 2100))


def cell(m: xr.Dataset, name: str, strategy: str = "status_quo", **sel) -> float:
    return float(m[name].sel(strategy=strategy, scenario="base", **sel))


def test_biomass_medians_and_interval_by_hand(metrics):
    sq_2050 = [210.0, 170.0, 130.0, 340.0]
    assert cell(metrics, "biomass_median_t", metric_year=2050) == pytest.approx(190.0, rel=REL)
    assert cell(metrics, "biomass_lower_t", metric_year=2050) == pytest.approx(q(sq_2050, 0.05), rel=REL)
    assert cell(metrics, "biomass_upper_t", metric_year=2050) == pytest.approx(q(sq_2050, 0.95), rel=REL)
    assert q(sq_2050, 0.05) == pytest.approx(136.0) and q(sq_2050, 0.95) == pytest.approx(320.5)
    assert cell(metrics, "biomass_median_t", "no_releases", metric_year=2100) == pytest.approx(275.0, rel=REL)


def test_gains_are_paired_by_draw(metrics):
    # paired median gain in 2050 = median(10, 20, 30, 40) = 25, whereas the difference of the
    # medians would be 190 − 175 = 15: the test fails if the pairing is lost
    assert cell(metrics, "biomass_gain_median_t", metric_year=2050) == pytest.approx(25.0, rel=REL)
    assert cell(metrics, "biomass_gain_lower_t", metric_year=2050) == pytest.approx(11.5, rel=REL)
    assert cell(metrics, "biomass_gain_upper_t", metric_year=2050) == pytest.approx(38.5, rel=REL)
    assert cell(metrics, "biomass_gain_median_t", metric_year=2100) == pytest.approx(10.0, rel=REL)
    assert cell(metrics, "biomass_gain_lower_t", metric_year=2100) == pytest.approx(-3.5, rel=REL)
    np.testing.assert_array_equal(metrics["biomass_gain_median_t"].sel(strategy="no_releases"), 0.0)


def test_limit_probabilities_by_hand(metrics):
    # static limit 0.2 × 1000 = 200 (strictly below): reference draws 1 (2025) and 2 (2100) →
    # any 2/4, last 1/4; status quo: draw 1 lifted to 210 in 2025, draw 2 at 130 in 2100 → 1/4, 1/4
    assert cell(metrics, "p_ssb_below_limit_static_any", "no_releases") == 0.5
    assert cell(metrics, "p_ssb_below_limit_static_last", "no_releases") == 0.25
    assert cell(metrics, "p_ssb_below_limit_static_any") == 0.25
    # dynamic limit 0.2 × 600 = 120: reference draw 2 in 2100 (100); status quo 130 is not below
    assert cell(metrics, "p_ssb_below_limit_dynamic_any", "no_releases") == 0.25
    assert cell(metrics, "p_ssb_below_limit_dynamic_last", "no_releases") == 0.25
    assert cell(metrics, "p_ssb_below_limit_dynamic_any") == 0.0
    # biomass below the 2002 level (90 t): reference draw 2 in 2100 (50 t), status quo 65 t
    assert cell(metrics, "p_biomass_below_2002_any", "no_releases") == 0.25
    assert cell(metrics, "p_biomass_below_2002_last") == 0.25


def test_a_draw_with_nan_biomass_is_left_out_of_probabilities_with_a_warning():
    ds = tiny_dataset()
    biomass, ssb = ds["biomass_t"].values.copy(), ds["ssb_t"].values.copy()
    biomass[:, :, 2:, 1] = np.nan       # draws 2 (below the limit in 2100) and 3 have no 2050 values
    ssb[:, :, 2:, 1] = np.nan
    ds["biomass_t"].values, ds["ssb_t"].values = biomass, ssb
    with pytest.warns(RuntimeWarning, match=r"4 strategy-scenario draws have NaN biomass, SSB or reference "
                                            r"values \(at most 2 of 4 draws, at strategy=no_releases, "
                                            r"scenario=base\): they are left out of the probabilities"):
        m = strategy_metrics(ds, years=(2050, 2100))
    # any year and last year, both over the complete draws 0 and 1 (not 4 draws with two
    # counted as never below): draw 1 dips below in 2025, neither is below in 2100
    p = cell(m, "p_ssb_below_limit_static_any", "no_releases")
    assert p == 0.5
    se = cell(m, "p_ssb_below_limit_static_any_mc_se", "no_releases")
    assert se == pytest.approx(np.sqrt(0.25 / 2))
    assert cell(m, "p_ssb_below_limit_static_last", "no_releases") == 0.0
    assert cell(m, "p_beats_status_quo", "no_releases", metric_year=2050) == 0.0
    assert np.isnan(cell(m, "p_beats_status_quo", "status_quo", metric_year=2050))


def test_nan_years_at_random_leave_the_any_year_probability_unbiased():
    # a review's case: below the limit with probability 1/2 in each year independently, half the
    # draws NaN in 2050 at random: the complete draws give the same P(any) as all draws would
    rng = np.random.default_rng(3)
    n = 4000
    ssb = np.where(rng.random((n, 3)) < 0.5, 100.0, 500.0)
    dims = ("strategy", "scenario", "draw", "year")
    full = xr.Dataset({"ssb_t": (dims, np.stack([ssb, ssb])[:, None])},
                      coords={"strategy": ["no_releases", "status_quo"], "scenario": ["base"],
                              "draw": np.arange(n), "year": YEARS})
    ds = tiny_dataset().isel(draw=[0] * n).assign_coords(draw=np.arange(n))
    ds["ssb_t"] = full["ssb_t"]
    holed = ds.copy(deep=True)
    holed["ssb_t"].values[:, :, : n // 2, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="left out of the probabilities"):
        m = strategy_metrics(holed, years=(2050, 2100), after_year=2025)
    every = strategy_metrics(ds, years=(2050, 2100), after_year=2025)
    for name in ("p_ssb_below_limit_static_any", "p_ssb_below_limit_static_last"):
        got, truth = cell(m, name, "no_releases"), cell(every, name, "no_releases")
        assert abs(got - truth) < 4 * cell(m, f"{name}_mc_se", "no_releases"), name
    assert cell(m, "p_ssb_below_limit_static_any", "no_releases") >= cell(m, "p_ssb_below_limit_static_last",
                                                                           "no_releases")


def test_any_year_counts_only_years_after_after_year():
    m = strategy_metrics(tiny_dataset(), years=(2050,), after_year=2025)
    # the reference's 2025 dip no longer counts: only draw 2 in 2100
    assert cell(m, "p_ssb_below_limit_static_any", "no_releases") == 0.25


def test_hatchery_fraction_released_cost_and_cost_per_tonne_by_hand(metrics):
    assert cell(metrics, "hatchery_fraction_ssb_median", metric_year=2050) == pytest.approx(0.25, rel=REL)
    assert cell(metrics, "hatchery_fraction_ssb_last_median") == pytest.approx(0.55, rel=REL)
    # totals per draw 40, 40, 60, 60 M → median 50 M; cost 1 unit per fish
    assert cell(metrics, "released_fish_total_median") == pytest.approx(50e6, rel=REL)
    assert cell(metrics, "cost_total_median") == pytest.approx(50e6, rel=REL)
    # cost through 2050 = 40 M in every draw; median gain in 2050 = 25 t → 1.6 M units/t
    assert cell(metrics, "cost_through_cost_year_median") == pytest.approx(40e6, rel=REL)
    assert cell(metrics, "cost_per_t_gained") == pytest.approx(1.6e6, rel=REL)
    assert math.isnan(cell(metrics, "cost_per_t_gained", "no_releases"))  # no gain: NaN


def test_fish_released_and_cost_cover_the_same_years_and_gain_per_cost_by_hand(metrics):
    """Issue #16: fish released up to cost_year (as the cost is), and the gain per unit cost the
    report leads with. Released through 2050: 40 M in every draw (2100 is past cost_year)."""
    assert cell(metrics, "released_fish_through_cost_year_median") == pytest.approx(40e6, rel=REL)
    # median gain in 2050 = 25 t per 40 M units spent up to 2050 → 25 / 40 t per million units
    assert cell(metrics, "biomass_gain_per_million_cost_t") == pytest.approx(25.0 / 40.0, rel=REL)
    assert math.isnan(cell(metrics, "biomass_gain_per_million_cost_t", "no_releases"))   # nothing spent


def test_cost_metrics_carry_the_projection_cost_units_and_the_window_ratio_its_limits():
    ds = tiny_dataset()
    ds["cost"].attrs["units"] = "yuan"
    m = strategy_metrics(ds, years=(2050,))
    assert m["cost_total_median"].attrs["units"] == "yuan"
    assert m["cost_per_t_gained"].attrs["units"] == "yuan/t"
    assert m["biomass_gain_per_million_cost_t"].attrs["units"] == "t per 1e6 yuan"
    long_name = m["added_window_survivors_per_million_released_median"].attrs["long_name"]
    assert "understates releases at or above the window" in long_name and "biomass gain" in long_name


def test_cost_per_tonne_is_nan_when_the_median_gain_is_not_positive():
    ds = tiny_dataset()
    ds["biomass_t"].loc[{"strategy": "status_quo"}] = ds["biomass_t"].sel(strategy="no_releases") - 1.0
    m = strategy_metrics(ds, years=(2050,))
    assert math.isnan(cell(m, "cost_per_t_gained"))
    assert "NaN" in m["cost_per_t_gained"].attrs["long_name"]


def test_added_window_survivors_per_million_released_by_hand(metrics):
    # added per draw 4000, 6000, 9000, 15000 over 40, 40, 60, 60 M released → 100, 150, 150, 250
    per_million = [100.0, 150.0, 150.0, 250.0]
    assert cell(metrics, "added_window_survivors_per_million_released_median") == pytest.approx(
        150.0, rel=REL)
    assert cell(metrics, "added_window_survivors_per_million_released_lower") == pytest.approx(
        q(per_million, 0.05), rel=REL)
    assert cell(metrics, "added_window_survivors_per_million_released_upper") == pytest.approx(
        q(per_million, 0.95), rel=REL)
    # per fish surviving the release (release_survival 0.5): 150 / (1e6 × 0.5)
    assert cell(metrics, "added_window_survivors_per_surviving_release_median") == pytest.approx(
        3e-4, rel=REL)
    assert math.isnan(cell(metrics, "added_window_survivors_per_million_released_median", "no_releases"))


def test_total_catch_by_hand(metrics):
    assert cell(metrics, "total_catch_median_t") == pytest.approx(15.0, rel=REL)
    assert cell(metrics, "total_catch_lower_t") == pytest.approx(1.5, rel=REL)
    assert cell(metrics, "total_catch_upper_t") == pytest.approx(28.5, rel=REL)
    assert cell(metrics, "total_catch_median_t", "no_releases") == 0.0


def test_every_metric_has_units_and_the_dataset_records_its_settings(metrics):
    for name, var in metrics.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
        assert var.dims[:2] == ("strategy", "scenario"), name
    assert metrics.attrs["reference_strategy"] == "no_releases" and metrics.attrs["seed"] == 7


def test_metrics_table_has_one_row_per_strategy_and_scenario(metrics):
    rows = metrics_table(metrics)
    assert [(r["strategy"], r["scenario"]) for r in rows] == [("no_releases", "base"), ("status_quo", "base")]
    assert rows[1]["biomass_gain_median_t_2050"] == pytest.approx(25.0, rel=REL)
    assert rows[1]["cost_per_t_gained"] == pytest.approx(1.6e6, rel=REL)
    assert all(isinstance(v, float) for r in rows for k, v in r.items()
               if k not in ("strategy", "scenario") and not k.startswith("robust_across_structures"))
    # one structure: robustness across structures is not assessed (an empty cell), never a claim
    assert all(r[f"robust_across_structures_{y}"] is None for r in rows for y in (2050, 2100))
    # a projection Dataset is summarised first, with the options passed on
    direct = metrics_table(tiny_dataset(), years=(2050, 2100))
    assert all(_same_row(a, b) for a, b in zip(direct, rows, strict=True))


def _same_row(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize(("change", "match"), [
    (lambda ds: ds.drop_vars("window_survivors"), "missing variable.*window_survivors"),
    (lambda ds: ds.sel(strategy=["status_quo"]), "reference: expected one of the strategies"),
])
def test_bad_dataset_is_refused_in_words(change, match):
    with pytest.raises(ConfigError, match=match):
        strategy_metrics(change(tiny_dataset()), years=(2050,))


def test_metric_years_outside_the_projection_are_refused_naming_them():
    with pytest.raises(ConfigError, match=r"years: expected metric years within the projection "
                                          r"\(2025\.\.2100\), got \[2035\]"):
        strategy_metrics(tiny_dataset())   # default years include 2035


def test_required_variables_are_the_documented_contract():
    assert set(REQUIRED_VARIABLES) == {
        "biomass_t", "ssb_t", "catch_t", "released_fish", "hatchery_fraction_ssb", "cost", "window_survivors",
        "ssb0_t", "dynamic_ssb0_t", "biomass_2002_t"}


# --------------------------------------------------------------------------- weighted draws


def test_weighted_quantile_repeats_each_value_by_its_weight():
    # frequency weights: with integer weight ratios the result is numpy's linear quantile of the
    # sample with each value repeated that many times (an independent hand computation); the
    # weights' scale does not matter. rel 1e-12: interpolation of exact floats.
    values = np.array([5.0, -1.0, 3.0, 12.0, 7.5])
    counts = np.array([1, 3, 2, 1, 4])
    probabilities = [0.0, 0.05, 0.25, 0.5, 0.9, 1.0]
    by_hand = np.quantile(np.repeat(values, counts), probabilities)
    np.testing.assert_allclose(weighted_quantile(values, counts * 0.01, probabilities), by_hand, rtol=1e-12)
    np.testing.assert_allclose(weighted_quantile(values, np.ones(5), probabilities),
                               np.quantile(values, probabilities), rtol=1e-12)
    # NaN values and zero weights are skipped
    assert weighted_quantile([1.0, np.nan, 3.0, 100.0], [1, 1, 1, 0], [0.5]).tolist() == [2.0]
    assert np.isnan(weighted_quantile([np.nan, np.nan], [1, 1], [0.5])).all()


def test_weighted_mean_skips_nan():
    assert weighted_mean([1.0, np.nan, 4.0], [3.0, 5.0, 1.0]) == pytest.approx(7.0 / 4.0, rel=REL)


def test_equal_weights_give_exactly_the_unweighted_metrics(metrics):
    weighted = strategy_metrics(tiny_dataset(), years=(2050, 2100), weights=xr.DataArray(np.full(4, 0.25),
                                                                                         dims="draw"))
    for name, variable in metrics.data_vars.items():
        np.testing.assert_array_equal(weighted[name].values, variable.values, err_msg=name)


def test_weighted_draws_by_hand():
    # draw weights 3:1:1:2 — the status quo's 2050 biomass (210, 170, 130, 340) counts as
    # 210×3, 170, 130, 340×2; P(SSB < 0.2·SSB0 in any year) for the reference = (1 + 1)/7
    ds = tiny_dataset()
    m = strategy_metrics(ds, years=(2050,), weights=xr.DataArray([3.0, 1.0, 1.0, 2.0], dims="draw"))
    sample = [210.0] * 3 + [170.0, 130.0] + [340.0] * 2
    median = float(m["biomass_median_t"].sel(strategy="status_quo", scenario="base", metric_year=2050))
    assert median == pytest.approx(q(sample, 0.5), rel=REL)
    lower = float(m["biomass_lower_t"].sel(strategy="status_quo", scenario="base", metric_year=2050))
    assert lower == pytest.approx(q(sample, 0.05), rel=REL)
    p = float(m["p_ssb_below_limit_static_any"].sel(strategy="no_releases", scenario="base"))
    assert p == pytest.approx(2.0 / 7.0, rel=REL)   # draw 1 (2025) and draw 2 (2100): weights 1 + 1
    assert "weighted" in m.attrs["draw_weights"]
    with pytest.raises(ConfigError, match="weights"):
        strategy_metrics(ds, years=(2050,), weights=xr.DataArray([1.0, 1.0], dims="draw"))


def test_every_probability_carries_its_monte_carlo_standard_error(metrics):
    # binomial: sqrt(p (1 - p) / n) over the 4 draws; p = 0.5 → 0.25, p = 0.25 → sqrt(3)/8, p = 0 → 0
    assert cell(metrics, "p_ssb_below_limit_static_any_mc_se", "no_releases") == pytest.approx(0.25, rel=REL)
    assert cell(metrics, "p_ssb_below_limit_static_last_mc_se", "no_releases") == pytest.approx(
        np.sqrt(3) / 8, rel=REL)
    assert cell(metrics, "p_ssb_below_limit_dynamic_any_mc_se") == 0.0
    probabilities = [n for n in metrics.data_vars if n.startswith("p_") and not n.endswith("_mc_se")]
    names = list(metrics.data_vars)
    for name in probabilities:   # each right after its probability, in the same units and shape
        assert names[names.index(name) + 1] == f"{name}_mc_se"
        assert metrics[f"{name}_mc_se"].dims == metrics[name].dims
        assert metrics[f"{name}_mc_se"].attrs["units"] == "1"
    np.testing.assert_array_equal(metrics["effective_draws"], 4.0)
    # weighted draws 3:1:1:2 count as (Σw)²/Σw² = 49/15 draws
    weights = xr.DataArray([3.0, 1.0, 1.0, 2.0], dims="draw")
    m = strategy_metrics(tiny_dataset(), years=(2050,), weights=weights)
    p = float(m["p_ssb_below_limit_static_any"].sel(strategy="no_releases", scenario="base"))
    se = float(m["p_ssb_below_limit_static_any_mc_se"].sel(strategy="no_releases", scenario="base"))
    np.testing.assert_allclose(m["effective_draws"], 49 / 15, rtol=REL)
    assert se == pytest.approx(np.sqrt(p * (1 - p) * 15 / 49), rel=REL)
    # NaN where the probability is NaN (the status quo against itself)
    assert np.isnan(cell(metrics, "p_beats_status_quo_mc_se", metric_year=2050))


def test_metrics_table_has_a_structure_column_for_ensemble_metrics():
    m = strategy_metrics(tiny_dataset(), years=(2050,))
    stacked = xr.concat([m, m], dim="structure").assign_coords(structure=["a", "pooled"])
    rows = metrics_table(stacked)
    assert len(rows) == 2 * 1 * 2
    assert [r["structure"] for r in rows[:2]] == ["a", "pooled"]
    assert list(rows[0])[:3] == ["strategy", "scenario", "structure"]


def test_p_beats_status_quo_by_hand_paired_by_draw(metrics):
    # status_quo − no_releases in draws 0..3: 2050 [+10, +20, +30, +40], 2100 [−5, +5, +15, +25]. So
    # no_releases beats the status quo in no draw in 2050 and in draw 0 only in 2100 (1/4); the
    # status quo is not compared with itself (NaN). Exact fractions, hence 1e-12
    assert cell(metrics, "p_beats_status_quo", "no_releases", metric_year=2050) == 0.0
    p_2100 = cell(metrics, "p_beats_status_quo", "no_releases", metric_year=2100)
    assert p_2100 == pytest.approx(0.25, abs=1e-12)
    assert np.isnan(cell(metrics, "p_beats_status_quo", "status_quo", metric_year=2100))
    # weighted draws (1, 1, 1, 3): draw 0 weighs 1/6
    weights = xr.DataArray([1.0, 1.0, 1.0, 3.0], dims="draw")
    weighted = strategy_metrics(tiny_dataset(), years=(2050, 2100), weights=weights)
    p_weighted = cell(weighted, "p_beats_status_quo", "no_releases", metric_year=2100)
    assert p_weighted == pytest.approx(1 / 6, abs=1e-12)
    # without a status quo strategy every value is NaN and the attribute says why
    alone = strategy_metrics(tiny_dataset().sel(strategy=["no_releases"]), years=(2050,))
    assert np.isnan(alone["p_beats_status_quo"]).all() and "not among" in alone.attrs["status_quo_strategy"]


def test_robust_across_structures_by_hand():
    # median gains of three strategies in five members (equal weights): "a" wins members 0-3, "b"
    # member 4 -> a wins 4/5 = 80 % (robust), b 20 %, c 0 %; with member 0 down-weighted to 0.2
    # a wins 3.2/4.2 < 80 % (not robust). NaN never wins; ties go to the first strategy
    from carpmodel.management.ensemble import robustness

    gains = xr.DataArray([[5.0, 6.0, 7.0, 1.0, 0.0], [4.0, 2.0, 3.0, 1.0, 9.0], [1.0, np.nan, 0.0, 0.5, 2.0]],
                         dims=("strategy", "structure"),
                         coords={"strategy": ["a", "b", "c"], "structure": list("vwxyz")})
    fraction, robust = robustness(gains, np.ones(5))
    np.testing.assert_allclose(fraction.values, [0.8, 0.2, 0.0], atol=1e-12)
    assert robust.values.tolist() == [True, False, False]
    fraction, robust = robustness(gains, [0.2, 1.0, 1.0, 1.0, 1.0])
    assert float(fraction.sel(strategy="a")) == pytest.approx(3.2 / 4.2, abs=1e-12)
    assert not bool(robust.any())


def test_cost_year_need_not_be_a_metric_year():
    # a review found a KeyError when cost_year (default 2050) was not among the metric years
    with_2050 = strategy_metrics(tiny_dataset(), years=(2050, 2100))
    without = strategy_metrics(tiny_dataset(), years=(2025, 2100))
    for name in ("cost_per_t_gained", "biomass_gain_per_million_cost_t"):
        assert cell(without, name) == cell(with_2050, name)
