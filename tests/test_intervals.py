"""One interval method for fit.nc and hindcast.nc (issue #16): the same draws give the same
interval in a fitted year, and each file says how its intervals were made.

A light fit (4 parameters, one start, survey SD fixed; ~3 s) to the bundled surveys up to 2019.
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel import diagnostics as diag
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.results import fit_dataset, fit_draws
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data

TO_2019 = default_config().with_fit(n_starts=1, survey_sd="fixed", last_data_year=2019,
                                    estimate=("unfished_biomass_t", "max_egg_survival",
                                              "initial_depletion", "survey_q"))


@pytest.fixture(scope="module")
def to_2019():
    data = load_data(BUNDLED_DATA_DIRECTORY)
    result = fit(build_spec(data, TO_2019), n_starts=1, seed=TO_2019.seed)
    assert result.converged, result.warnings
    return data, result


def test_fit_and_hindcast_intervals_agree_when_made_from_the_same_draws(to_2019):
    """Old behaviour: hindcast_predictions drew its own N(θ̂, Σ) sample whatever fit.nc used
    (posterior draws), so the two files disagreed for the same fitted year."""
    data, result = to_2019
    draws = fit_draws(result, 80, seed=5)            # stands in for the posterior draws of fit.nc
    fitted = fit_dataset(result, draws=draws, sampler="sir")
    held = diag.hindcast_predictions(result, TO_2019, data, draws=draws, sampler="sir")
    assert held.attrs["interval_method"] == fitted.attrs["interval_method"]
    assert "sampling-importance-resampling" in fitted.attrs["interval_method"]
    assert "MCMC" not in fitted.attrs["interval_method"]          # the sampler it never was
    assert held.attrs["predictive_interval_method"].startswith(held.attrs["interval_method"])
    assert fitted["biomass_t_lower"].attrs["interval_method"] == fitted.attrs["interval_method"]
    # 2015–2019: fitted years after the early survey; same draws, same engine: rounding only
    years = slice(2015, 2019)
    np.testing.assert_allclose(held["survey_predicted_lower"].sel(year=years),
                               fitted["survey_biomass_t_lower"].sel(year=years), rtol=1e-12)
    np.testing.assert_allclose(held["survey_predicted_upper"].sel(year=years),
                               fitted["survey_biomass_t_upper"].sel(year=years), rtol=1e-12)


def test_default_intervals_name_the_normal_approximation(to_2019):
    data, result = to_2019
    fitted = fit_dataset(result, n_draws=40)
    held = diag.hindcast_predictions(result, TO_2019, data, n_draws=40)
    for ds in (fitted, held):
        assert "normal approximation N(estimate, inverse Hessian)" in ds.attrs["interval_method"]
        assert "40 " in ds.attrs["interval_method"]
    summary = diag.held_out_summary(held)
    assert summary["skill_line"] == diag.hindcast_skill_line(held)
    assert summary["skill_line"].startswith("hindcast from 2019: 5 held-out survey(s)")
    assert summary["years"] == [2020, 2021, 2022, 2023, 2024]


def test_string_coordinates_have_a_long_name_and_no_units(to_2019, tmp_path):
    """Old behaviour: origin, parameter and strategy labels had no long_name, some units = '1'."""
    import xarray as xr

    from carpmodel.io.outputs import write_netcdf_atomic

    _, result = to_2019
    fitted = fit_dataset(result, n_draws=10)
    for name in ("origin", "parameter", "parameter_2"):
        assert fitted[name].attrs.get("long_name") and "units" not in fitted[name].attrs, name
    # any Dataset written by carpmodel: labels described on the way out, the input left as it was
    ds = xr.Dataset({"x": ("strategy", [1.0, 2.0], {"units": "t", "long_name": "x"}),
                     "note": ("strategy", ["a", "b"], {"units": "1"})},
                    coords={"strategy": ["no_releases", "status_quo"], "member": ("strategy", ["m1", "m2"])})
    back = xr.open_dataset(write_netcdf_atomic(ds, tmp_path / "labels.nc"))
    for name in ("strategy", "member", "note"):
        assert back[name].attrs.get("long_name") and "units" not in back[name].attrs, name
    assert back["strategy"].attrs["long_name"].startswith("release strategy")
    assert back["x"].attrs["units"] == "t" and ds["note"].attrs == {"units": "1"}
    back.close()
