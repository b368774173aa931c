"""Engine output (:class:`~carpmodel.model.dynamics.PopulationState`) as a self-describing
xarray Dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel.dims import AGE, ORIGIN, ORIGINS, YEAR, with_attrs
from carpmodel.model.dynamics import PopulationState

SERIES = ("biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "eggs", "recruits", "catch_t",
           "catch_shortfall_t", "f_per_yr", "released_fish", "hatchery_fraction_biomass",
           "hatchery_fraction_ssb", "hatchery_fraction_numbers", "juvenile_survival_dd", "window_survivors",
           "wild_window_survivors")
GRIDS = ("numbers", "length_cm", "natural_deaths", "catch_numbers")


def state_to_dataset(state: PopulationState, years: np.ndarray,
                     batch_dims: tuple[str, ...] = (), **attrs: Any) -> xr.Dataset:
    """Dataset with dims ``(*batch_dims, year[, origin, age])`` from a :class:`PopulationState`."""
    data_vars = {name: ((*batch_dims, YEAR), getattr(state, name)) for name in SERIES}
    data_vars["recruits_per_egg"] = ((*batch_dims, YEAR), state.recruits_per_egg)
    for name in GRIDS:
        grid = getattr(state, name)
        if grid is not None:
            data_vars[name] = ((*batch_dims, YEAR, ORIGIN, AGE), grid)
    n_age = state.final_numbers.shape[-1]
    coords = {YEAR: np.asarray(years), ORIGIN: list(ORIGINS), AGE: np.arange(n_age)}
    return with_attrs(xr.Dataset(data_vars, coords=coords), **attrs)
