"""Climate sensitivity sweep, temperature-effect test and power analysis (carpmodel.studies.sensitivity).

One fit of the bundled data (module fixture, ~8 s) and one small sweep (16 draws, ~2 s) serve
most tests; the temperature-effect test reuses the fit as its no-effect model; the power
analysis runs at tiny settings (2 slopes × 2 replicates, ~20 s), so its statistical check is
weak and the test is mainly structural (said where it is asserted).
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.inference.fitting import build_spec, fit
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.studies.sensitivity import (
    COMBINED_EFFECT,
    LR_CRITICAL_VALUE,
    NOT_TESTABLE_ASSUMED,
    _smallest_detectable,
    climate_sensitivity,
    plot_sensitivity_heatmap,
    plot_sensitivity_lines,
    power_analysis,
    temperature_effect_test,
)

CONFIG = default_config()


@pytest.fixture(scope="module")
def data():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def fitted(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(build_spec(data, default_config()))


@pytest.fixture(scope="module")
def sweep(fitted, data):
    return climate_sensitivity(fitted, data, n_draws=16, seed=11)


def test_strength_zero_is_the_same_reference_at_every_warming_level(sweep):
    # exact: strength 0 makes every multiplier exactly 1, and all cells share the draws' random
    # numbers (common random numbers), so warming cannot change anything — to the last bit
    for effect in sweep["effect"].values:
        zero = sweep["biomass_t"].sel(effect=effect, strength=0.0)
        for level in sweep["warming_c"].values:
            np.testing.assert_array_equal(zero.sel(warming_c=level).values,
                                          sweep["reference_biomass_t"].sel(warming_c=0.0).values)
        assert np.all(sweep["relative_change"].sel(effect=effect, strength=0.0).values == 0.0)
    assert sweep.attrs["reference_identical_across_effects"]
    # not vacuous: with an effect on, warming does change biomass
    on = sweep["biomass_t"].sel(effect="natural_mortality", strength=1.0, year=2100)
    assert not np.array_equal(on.sel(warming_c=0.0).values, on.sel(warming_c=4.0).values)


def test_default_natural_mortality_effect_lowers_median_biomass_monotonically(sweep):
    # Q10 = 1.5 raises M in every year of every draw and the draws share their random numbers,
    # so each step of warming lowers each draw's biomass: the median falls strictly (no tolerance)
    median = sweep["biomass_median_t"].sel(effect="natural_mortality", strength=1.0)
    for year in sweep["year"].values:
        assert np.all(np.diff(median.sel(year=year).values) < 0), year
    # and the paired change against the no-effect reference is negative once warming is added
    change = sweep["relative_change_median"].sel(effect="natural_mortality", strength=1.0, year=2100)
    assert np.all(change.sel(warming_c=slice(1.0, None)).values < 0)


def test_dataset_has_the_sweep_units_and_the_exact_warming_path(sweep):
    assert sweep.sizes["warming_c"] >= 5 and float(sweep["warming_c"].min()) == 0.0
    assert float(sweep["warming_c"].max()) == 4.0
    for effect in sweep["effect"].values:
        strengths = sweep["strength"].values[sweep["run"].sel(effect=effect).values]
        assert strengths.size >= 3 and 0.0 in strengths, effect
    assert {"recruitment", "growth", "natural_mortality", "maturity", COMBINED_EFFECT} <= set(
        sweep["effect"].values)
    for name, variable in sweep.variables.items():
        assert "units" in variable.attrs and "long_name" in variable.attrs, name
    assert "ASSUMPTION" in sweep.attrs["assumed"] and "alone" in sweep.attrs["others_off"]
    # the offset is exactly linear and reaches the level in 2100 (floating-point rounding only)
    np.testing.assert_allclose(sweep["warming_offset_c"].sel(year=2100).values, sweep["warming_c"].values,
                               rtol=0, atol=1e-12)
    # the levels share one anomaly path per draw, so the median lake temperatures differ by
    # exactly the offsets (1e-9 °C: rounding of sums of ~17 °C values)
    lake = sweep["lake_temperature_median_c"]
    np.testing.assert_allclose((lake - lake.sel(warming_c=0.0)).values, sweep["warming_offset_c"].values,
                               rtol=0, atol=1e-9)


def test_figures_label_their_axes_and_show_the_reference(sweep):
    fig = plot_sensitivity_lines(sweep, 2100)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(axes) == sweep.sizes["effect"]
    assert {ax.get_xlabel() for ax in axes} >= {"Warming by 2100 (°C)"}
    assert any(ax.get_ylabel() == "Biomass in 2100 (thousand t)" for ax in axes)
    # one shared legend (in the spare panel, off the data) names the reference and every strength
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + fig.legends
    assert len(legends) == 1 and all(ax.get_legend() is None for ax in axes)
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert any("reference" in t for t in texts)
    strengths = {f"strength {s:g}" for s in sweep["strength"].values if s > 0}
    assert strengths <= set(texts)
    plt.close(fig)
    fig = plot_sensitivity_heatmap(sweep, 2050, "recruitment")
    main, bar = fig.axes
    assert "%" in bar.get_ylabel() and "reference" in bar.get_ylabel()
    assert main.get_xlabel() == "Warming by 2100 (°C)"
    assert any("reference" in t.get_text() for t in main.get_yticklabels())
    plt.close(fig)


def test_chunked_sweep_equals_the_unchunked_one(fitted, data, sweep):
    # per-draw random streams: chunks of 5 draws (the last one short) give the same numbers
    pytest.importorskip("dask")
    chunked = climate_sensitivity(fitted, data, n_draws=16, seed=11, chunk_draws=5)
    for name in ("biomass_t", "relative_change", "reference_biomass_t"):
        np.testing.assert_array_equal(chunked[name].values, sweep[name].values, err_msg=name)


def test_a_strength_set_without_zero_is_refused(fitted, data):
    with pytest.raises(ConfigError, match="expected 0 among the strengths"):
        climate_sensitivity(fitted, data, effects=("growth",), strengths={"growth": (0.5, 1.0, 2.0)},
                            include_combined=False, n_draws=2)


def test_temperature_effect_is_not_testable_on_the_bundled_assumed_series(data, fitted):
    out = temperature_effect_test(data, CONFIG.with_fit(n_starts=1), baseline=fitted, hindcast_peels=0,
                                  cold_start=False)
    assert out["testable"] is False
    assert out["statement"] == NOT_TESTABLE_ASSUMED
    slope = out["slopes"]["recruitment"]
    assert np.isfinite(slope["estimate_per_c"]) and slope["std_error_per_c"] > 0
    # nested fits (the slope model starts from the no-effect optimum): the likelihood-ratio
    # statistic cannot be negative; 1e-9 allows the rounding of objectives of ~14
    assert out["lr_statistic"] >= -1e-9
    # one more parameter with n = 12 costs 22 AICc units in the small-sample term alone
    assert out["delta_aicc"] > 0
    assert out["models"]["no_effect"]["k"] + 1 == out["models"]["effect"]["k"]


def test_power_analysis_tiny_run_is_well_formed(fitted, data):
    ds = power_analysis(fitted, data, slopes_per_c=(0.0, 1.0), n_replicates=2, seed=3, wald=False)
    assert ds.sizes == {"slope_per_c": 2, "replicate": 2, "year": fitted.spec.years.size}
    power = ds["power"].values
    assert np.all((power >= 0) & (power <= 1))
    statistic = ds["statistic"].values
    assert np.all(statistic >= -1e-9)          # nested start: never negative (rounding only)
    np.testing.assert_array_equal(ds["detected"].values,
                                  ds["converged"].values & (statistic > LR_CRITICAL_VALUE))
    assert int(ds["n_used"].sel(slope_per_c=0.0)) >= 1
    # Weak at 2 replicates (structural in effect): the type-I rate must lie within 3 binomial SEs
    # of 5 % at this n (sqrt(0.05·0.95/2) = 0.15); fails only if every replicate "detects" at b = 0
    assert abs(float(ds["type_i_error"]) - 0.05) <= 3 * float(ds["type_i_error_nominal_se"])
    assert ds.attrs["smallest_detectable"]


def test_smallest_detectable_slope_interpolates_the_first_crossing():
    slopes = np.array([0.0, 1.0, 2.0])
    assert _smallest_detectable(slopes, np.array([0.05, 0.6, 1.0]), 0.8) == pytest.approx(1.5, abs=1e-12)
    assert _smallest_detectable(slopes, np.array([0.05, 0.3, 0.5]), 0.8) == np.inf
    assert _smallest_detectable(slopes[::-1], np.array([0.9, 0.8, 0.05]), 0.8) == pytest.approx(1.0)
