"""A deterministic run of the engine at the default parameters of a data directory."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel.model.drivers import historical_drivers
from carpmodel.model.dynamics import reference_points, simulate
from carpmodel.model.params import Parameters
from carpmodel.model.recruitment import RecruitmentForm
from carpmodel.model.state_dataset import state_to_dataset


def default_parameters(data: Any, recruitment: RecruitmentForm = "beverton_holt") -> Parameters:
    """Parameters from life_history.toml, with R0 set so unfished survey biomass equals the
    ``unfished_biomass_t`` value (the median of its prior)."""
    lh = data.life_history
    unit = Parameters.from_life_history(lh, r0=1.0, recruitment=recruitment)
    biomass_per_recruit = float(reference_points(unit).biomass0_t)
    return unit.replace(r0=lh.value("unfished_biomass_t") / biomass_per_recruit)


def simulate_default(data: Any, *, first_year: int = 2000, last_year: int = 2024,
                     recruitment: RecruitmentForm = "beverton_holt") -> xr.Dataset:
    """Run the engine over ``first_year..last_year`` with the data's catch and releases.

    The initial state is the equilibrium under ``initial_f_per_yr``; recruitment deviations
    are zero. Observations sit beside the predictions as ``biomass_obs_t``.
    """
    params = default_parameters(data, recruitment)
    years = np.arange(first_year, last_year + 1)
    drivers = historical_drivers(data, years, max_age_yr=params.max_age_yr,
                                 lw_a=float(params.lw_a), lw_b=float(params.lw_b))
    state = simulate(params, n_years=years.size, catch_t=drivers.catch_t,
                     release_fish=drivers.release_fish,
                     release_length_cm=drivers.release_length_cm, keep_numbers=True)
    ds = state_to_dataset(
        state, years, description="deterministic run at the default parameters "
        "(life_history.toml values, R0 from unfished_biomass_t, recruitment deviations zero)",
        recruitment=recruitment, r0=float(params.r0), data_sha256=data.sha256)
    obs = xr.DataArray(np.asarray(data.biomass.biomass_t, dtype=float), dims="year",
                       coords={"year": np.asarray(data.biomass.year)})
    ds["biomass_obs_t"] = obs.reindex(year=years)
    ds["catch_obs_t"] = ("year", drivers.catch_t)
    ds["biomass_obs_t"].attrs.update(units="t", long_name="observed biomass (hydroacoustic survey)")
    ds["catch_obs_t"].attrs.update(units="t", long_name="observed or reconstructed catch")
    return ds


def summarise_simulation(ds: xr.Dataset) -> str:
    """A few lines: biomass, SSB and hatchery share at the first and last year."""
    first, last = int(ds.year[0]), int(ds.year[-1])
    lines = [f"deterministic simulation {first}-{last} ({ds.attrs.get('recruitment')}, "
             f"R0 = {ds.attrs.get('r0', float('nan')):.3g} age-0 fish/yr)"]
    for year in (first, last):
        row = ds.sel(year=year)
        lines.append(
            f"  {year}: biomass {float(row.biomass_t):,.0f} t, SSB {float(row.ssb_t):,.0f} t, "
            f"hatchery share of biomass {100 * float(row.hatchery_fraction_biomass):.1f} %")
    return "\n".join(lines)
