"""Figures of issue #16, checked by what they draw (artists, labels, limits, panels) on small
made-up Datasets: no fit, no projection, well under a second each."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from carpmodel.report import figures as plots  # noqa: E402

YEARS = np.arange(2000, 2025)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit_dataset() -> xr.Dataset:
    """fit.nc's variables that plot_fit reads: B rising 1 → 100 kt, q = 0.8, surveys in 2002..2024."""
    b = np.geomspace(1e3, 1e5, YEARS.size)
    obs = np.where(np.isin(YEARS, [2002, 2012, 2015, 2019, 2020, 2024]), 0.8 * b * 1.1, np.nan)
    obs[YEARS > 2019] = np.nan          # a fit to data up to 2019: later surveys are not in fit.nc
    return xr.Dataset({"biomass_t": ("year", b), "biomass_t_lower": ("year", 0.7 * b),
                       "biomass_t_upper": ("year", 1.4 * b), "survey_biomass_t": ("year", 0.8 * b),
                       "survey_biomass_t_lower": ("year", 0.6 * b), "survey_biomass_t_upper": ("year", b),
                       "biomass_obs_t": ("year", obs), "biomass_obs_cv": ("year", np.full(YEARS.size, 0.2))},
                      coords={"year": YEARS})


def _held_out() -> xr.Dataset:
    b = np.geomspace(1e3, 1e5, YEARS.size)
    held = np.isin(YEARS, [2020, 2024])
    return xr.Dataset({"biomass_obs_t": ("year", np.where(held, 0.9 * b, np.nan)),
                       "biomass_obs_cv": ("year", np.where(held, 0.2, np.nan)),
                       "held_out": ("year", held),
                       "survey_predictive_lower": ("year", 0.5 * b),
                       "survey_predictive_upper": ("year", 1.2 * b)},
                      coords={"year": YEARS}, attrs={"last_data_year": 2019})


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_fit_figure_draws_held_out_surveys_apart_from_the_fitted_ones():
    """Old behaviour: plot_fit took no held-out surveys, so a hindcast drew nothing after 2019."""
    fig = plots.plot_fit(_fit_dataset(), held_out=_held_out())
    ax = fig.axes[0]
    assert plots.HELD_OUT_LABEL in _labels(ax) and "last data year 2019" in _labels(ax)
    held = [c.lines[0] for c in ax.containers if c.get_label() == plots.HELD_OUT_LABEL]
    fitted = [c.lines[0] for c in ax.containers if c.get_label().startswith("survey, fitted")]
    assert len(held) == 1 and len(fitted) == 1
    assert held[0].get_marker() != fitted[0].get_marker()
    np.testing.assert_array_equal(held[0].get_xdata(), [2020, 2024])
    assert all(x <= 2019 for x in fitted[0].get_xdata())
    assert "data to 2019" in ax.get_title()


def test_fit_figure_shows_absolute_biomass_with_its_interval_on_the_projection_axis():
    """Old behaviour: only the survey-scale q·B was drawn, so B jumped by 1/q at the projection."""
    ds = _fit_dataset()
    ax = plots.plot_fit(ds).axes[0]
    absolute = [line for line in ax.get_lines() if line.get_label() == "biomass B (MAP)"]
    assert len(absolute) == 1
    np.testing.assert_allclose(absolute[0].get_ydata(), ds.biomass_t.values / 1e3)
    assert "biomass B (as projected), 95 % interval" in _labels(ax)
    assert ax.get_ylabel() == "Biomass (thousand t)"            # the projection figures' label
    assert plots.HELD_OUT_LABEL not in _labels(ax)               # nothing held out: nothing drawn


STRATEGIES = ["no_releases", "status_quo", "double_releases", "reopen_fishing"]
SCENARIOS = ["ssp245", "ssp585"]
PROJECTED = np.arange(2025, 2051)


def _projection() -> xr.Dataset:
    """20 draws: releases add 2 and 4 kt (+ draw noise), reopen_fishing loses 80 kt and catches."""
    rng = np.random.default_rng(0)
    base = 1e5 + 1e4 * rng.standard_normal((1, 1, 20, 1)) + 0 * PROJECTED
    effect = np.array([0.0, 2e3, 4e3, -8e4])[:, None, None, None] * np.ones((1, 2, 1, 1))
    biomass = base + effect + 100 * rng.standard_normal((4, 2, 20, PROJECTED.size))
    catch = np.zeros_like(biomass)
    catch[3] = 5e3
    dims = ("strategy", "scenario", "draw", "year")
    return xr.Dataset({"biomass_t": (dims, biomass, {"units": "t"}), "catch_t": (dims, catch, {"units": "t"}),
                       "hatchery_fraction_ssb": (dims, np.full(biomass.shape, 0.02), {"units": "1"})},
                      coords={"strategy": STRATEGIES, "scenario": SCENARIOS, "draw": np.arange(20),
                              "year": PROJECTED})


def _metrics() -> xr.Dataset:
    gain = np.array([0.0, 2e3, 4e3, -8e4])[:, None, None] * np.ones((1, 2, 1))
    dims = ("strategy", "scenario", "metric_year")
    cost = np.array([0.0, 5e8, 1e9, 5e8])[:, None] * np.ones((1, 2))
    return xr.Dataset({"biomass_gain_median_t": (dims, gain), "biomass_gain_lower_t": (dims, gain - 500),
                       "biomass_gain_upper_t": (dims, gain + 500),
                       "cost_through_cost_year_median": (("strategy", "scenario"), cost),
                       "cost_total_median": (("strategy", "scenario"), 2 * cost, {"units": "cost units"}),
                       "total_catch_upper_t": (("strategy", "scenario"),
                                               np.array([0, 0, 0, 1e5])[:, None] * np.ones((1, 2)))},
                      coords={"strategy": STRATEGIES, "scenario": SCENARIOS, "metric_year": [2050]},
                      attrs={"cost_year": 2050, "reference_strategy": "no_releases"})


def test_fishing_options_are_told_apart_from_release_strategies():
    assert plots.fishing_strategies(_projection()) == ["reopen_fishing"]
    assert plots.fishing_strategies(_metrics()) == ["reopen_fishing"]
    assert plots.strategy_groups(_projection()) == {
        "release strategies": ["status_quo", "double_releases"], "fishing options": ["reopen_fishing"]}


def test_strategy_comparison_draws_every_scenario_and_releases_on_their_own_scale():
    """Old behaviour: one scenario per figure, and one axis for all strategies, so reopen_fishing's
    −80 kt set the scale and the 2–4 kt release gains were slivers."""
    fig = plots.plot_strategy_comparison(_metrics())
    gain_axes = [ax for ax in fig.axes if "gain over no_releases" in ax.get_title()]
    titles = [ax.get_title() for ax in gain_axes]
    for scenario in SCENARIOS:           # every scenario, each with both groups
        assert any(t.startswith(f"release strategies, {scenario}:") for t in titles)
        assert any(t.startswith(f"fishing options, {scenario}:") for t in titles)
    for ax in gain_axes:
        names = [t.get_text() for t in ax.get_yticklabels()]
        lo, hi = ax.get_xlim()
        if ax.get_title().startswith("release strategies"):
            assert names == ["status_quo", "double_releases"]
            assert lo > -1 and 4.5 < hi < 10            # kt: the release gains fill the panel
        else:
            assert names == ["reopen_fishing"] and lo < -80
    one = plots.plot_strategy_comparison(_metrics(), scenario="ssp585")
    assert all("ssp245" not in ax.get_title() for ax in one.axes)


def test_projection_fan_shows_paired_gains_with_bands_one_row_per_scenario():
    """Old behaviour: absolute medians of every strategy in one scenario, no_releases hidden under
    them; now gains over no_releases (paired by draw) with bands, per scenario and group."""
    ds = _projection()
    fig = plots.plot_gain_fan(ds)
    assert len(fig.axes) == 4                            # 2 scenarios x (releases, fishing)
    release = fig.axes[0]
    assert release.get_title() == "release strategies, ssp245"
    assert fig.axes[2].get_title() == "release strategies, ssp585"
    lines = {line.get_label(): line for line in release.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"status_quo", "double_releases"}
    paired = (ds.biomass_t.sel(strategy="double_releases") - ds.biomass_t.sel(strategy="no_releases")).sel(
        scenario="ssp245").median("draw") / 1e3
    np.testing.assert_allclose(lines["double_releases"].get_ydata(), paired.values, rtol=1e-12)
    assert len(release.collections) == 2                 # one band per strategy
    assert "gain over no_releases" in release.get_ylabel()


def test_hatchery_share_is_drawn_for_every_scenario():
    fig = plots.plot_fan_panels(_projection(), "hatchery_fraction_ssb")
    assert [ax.get_title().rsplit(", ", 1)[1] for ax in fig.axes] == SCENARIOS


def test_fan_and_scenario_figures_say_what_the_band_is():
    """The walk-through of issue #16 found hatchery_fraction.png and projection_scenarios.png
    drawing bands that no label named; the legend title now says median and 90 % band."""
    fig = plots.plot_fan_panels(_projection(), "hatchery_fraction_ssb")
    for ax in fig.axes:
        assert "90 % band" in ax.get_legend().get_title().get_text()
    fig = plots.plot_scenarios(_projection())
    assert "90 % band" in fig.axes[0].get_legend().get_title().get_text()


def test_prior_posterior_axes_stay_in_the_support_with_readable_labels():
    """Old behaviour: axes ran past a parameter's support (survival to 1.45) and the x label was
    the code name (release_survival)."""
    from carpmodel.priors import Prior

    rng = np.random.default_rng(2)
    draws = {"release_survival": rng.beta(40, 2, 500),          # piled up near 1
             "steepness": rng.beta(30, 3, 500), "m_ref_per_yr": rng.lognormal(np.log(0.2), 0.2, 500)}
    priors = {"release_survival": Prior("beta", {"mean": 0.7, "sd": 0.15}),
              "m_ref_per_yr": Prior("lognormal", {"median": 0.2, "sd_log": 0.3})}
    rows = [{"parameter": name, "sd_ratio": 0.5} for name in draws]
    fig = plots.plot_prior_posterior(rows, draws, priors, {"release_survival": "1", "m_ref_per_yr": "1/yr"},
                                     supports={"steepness": (0.2, 1.0)})
    survival, steepness, mortality = fig.axes[:3]
    assert survival.get_xlim()[1] <= 1.0 and steepness.get_xlim()[1] <= 1.0
    assert steepness.get_xlim()[0] >= 0.2 and mortality.get_xlim()[0] >= 0.0
    assert max(survival.get_lines()[0].get_xdata()) < 1.0                  # the prior's grid too
    assert survival.get_xlabel() == "Acute release survival (dimensionless)"
    assert mortality.get_xlabel() == "Natural mortality at the reference length (1/yr)"
    assert all("_" not in ax.get_xlabel() for ax in fig.axes[:3])


def test_interval_labels_come_from_the_metrics_not_a_typed_number():
    """Old behaviour: '90 %' typed into titles whatever interval the metrics held."""
    metrics = _metrics()
    metrics.attrs["interval"] = 0.95
    fig = plots.plot_strategy_comparison(metrics)
    titles = [ax.get_title() for ax in fig.axes if "gain over" in ax.get_title()]
    assert titles and all("95 % interval" in t and "90 %" not in t for t in titles)
    assert plots.BAND_LABEL == "90 % band"                          # BAND = 5 % and 95 % quantiles


def test_ensemble_gains_are_drawn_for_every_scenario():
    """Old behaviour: `project --ensemble` drew ensemble_gains.png for ssp245 only."""
    one = _metrics()[["biomass_gain_median_t", "biomass_gain_lower_t", "biomass_gain_upper_t"]]
    metrics = xr.concat([one, one], dim=xr.DataArray(["m1", "pooled"], dims="structure", name="structure"))
    metrics.attrs["interval"] = 0.9
    fig = plots.plot_ensemble_gains_panels(metrics)
    assert [ax.get_title() for ax in fig.axes] == [
        f"Gain across model structures ({s}; median, 90 % interval)" for s in SCENARIOS]


def test_parameter_labels_are_readable_for_every_kind_of_name():
    assert plots.parameter_label("survey_q_early", "1") == "Early-survey catchability q (dimensionless)"
    assert plots.parameter_label("initial_dev_a3", "1") == \
        "Initial log-numbers deviation, age 3 (dimensionless)"
    assert plots.parameter_label("hatch_length_cm", "cm") == "Hatch length (cm)"      # the fallback
