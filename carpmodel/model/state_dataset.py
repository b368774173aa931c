"""Engine output (:class:`~carpmodel.model.dynamics.PopulationState`) as a self-describing
xarray Dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel.dims import AGE, ORIGIN, ORIGINS, YEAR, with_attrs
from carpmodel.model.dynamics import PopulationState
from carpmodel.model.kernel import OUTPUT_FIELDS as SERIES

GRIDS = ("numbers", "length_cm", "natural_deaths", "catch_numbers")


def state_to_dataset(state: PopulationState, years: np.ndarray,
                     batch_dims: tuple[str, ...] = (), **attrs: Any) -> xr.Dataset:
    """Dataset with dims ``(*batch_dims, year[, origin, age])`` from a :class:`PopulationState`:
    the series it kept (:func:`carpmodel.model.dynamics.simulate`'s ``outputs``) and the grids."""
    data_vars = {name: ((*batch_dims, YEAR), getattr(state, name)) for name in SERIES
                 if getattr(state, name) is not None}
    if state.recruits is not None and state.eggs is not None:
        data_vars["recruits_per_egg"] = ((*batch_dims, YEAR), state.recruits_per_egg)
    for name in GRIDS:
        grid = getattr(state, name)
        if grid is not None:
            data_vars[name] = ((*batch_dims, YEAR, ORIGIN, AGE), grid)
    n_age = state.final_numbers.shape[-1]
    coords = {YEAR: np.asarray(years), ORIGIN: list(ORIGINS), AGE: np.arange(n_age)}
    return with_attrs(xr.Dataset(data_vars, coords=coords), **attrs)
