"""Climate sensitivity sweep (carpmodel.studies.sensitivity).

One fit of the bundled data (the session fixture ``bundled_fit``, ~8 s) and one small sweep
(16 draws, ~2 s) serve the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.studies.sensitivity import COMBINED_EFFECT, SWEEP_BLOCK_DRAWS, climate_sensitivity


@pytest.fixture(scope="module")
def data(bundled_data):
    return bundled_data


@pytest.fixture(scope="module")
def fitted(bundled_fit):
    return bundled_fit


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
        assert "long_name" in variable.attrs, name
        # numbers carry units; labels (effect names) have none (#16: no units = "1" on strings)
        assert ("units" in variable.attrs) == (variable.dtype.kind not in "USO"), name
    assert "ASSUMPTION" in sweep.attrs["assumed"] and "alone" in sweep.attrs["others_off"]
    # the offset is exactly linear and reaches the level in 2100 (floating-point rounding only)
    np.testing.assert_allclose(sweep["warming_offset_c"].sel(year=2100).values, sweep["warming_c"].values,
                               rtol=0, atol=1e-12)
    # the levels share one anomaly path per draw, so the median lake temperatures differ by
    # exactly the offsets (1e-9 °C: rounding of sums of ~17 °C values)
    lake = sweep["lake_temperature_median_c"]
    np.testing.assert_allclose((lake - lake.sel(warming_c=0.0)).values, sweep["warming_offset_c"].values,
                               rtol=0, atol=1e-9)


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


def test_progress_reports_every_block_of_draws(fitted, data, sweep):
    # 25 draws in blocks of SWEEP_BLOCK_DRAWS (10): 0/3 first, then one call per block; the first
    # 16 draws equal the 16-draw sweep's (a draw's numbers do not depend on its block)
    calls = []
    more = climate_sensitivity(fitted, data, n_draws=25, seed=11, progress=lambda d, t: calls.append((d, t)))
    assert SWEEP_BLOCK_DRAWS == 10
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(more["biomass_t"].isel(draw=slice(0, 16)).values, sweep["biomass_t"].values)
