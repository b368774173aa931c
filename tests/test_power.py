"""Power analysis (carpmodel.studies.power).

The power analysis runs at tiny settings (2 slopes × 2 replicates, ~20 s) on the bundled
default fit (session fixture ``bundled_fit``), so its statistical check is weak and the test is
mainly structural (said where it is asserted).
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.studies.power import LR_CRITICAL_VALUE, power_analysis, smallest_detectable_slope


def test_power_analysis_tiny_run_is_well_formed(bundled_fit, bundled_data):
    ds = power_analysis(bundled_fit, bundled_data, slopes_per_c=(0.0, 1.0), n_replicates=2, seed=3,
                        wald=False)
    assert ds.sizes == {"slope_per_c": 2, "replicate": 2, "year": bundled_fit.spec.years.size}
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
    assert smallest_detectable_slope(slopes, np.array([0.05, 0.6, 1.0]), 0.8) == pytest.approx(1.5, abs=1e-12)
    assert smallest_detectable_slope(slopes, np.array([0.05, 0.3, 0.5]), 0.8) == np.inf
    assert smallest_detectable_slope(slopes[::-1], np.array([0.9, 0.8, 0.05]), 0.8) == pytest.approx(1.0)
