"""Helpers shared by the diagnostics: JSON-ready results, described Datasets, the terminal year."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.dims import with_attrs
from carpmodel.io.config import RunConfig


def json_ready(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN and ±inf to None, xarray to dicts."""
    if isinstance(value, xr.Dataset | xr.DataArray):
        return json_ready(value.to_dict(data="list"))
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def describe(ds: xr.Dataset, described: Mapping[str, tuple[str, str]], **attrs: Any) -> xr.Dataset:
    """Set ``(units, long_name)`` on the named variables, then carpmodel's dataset attrs."""
    for name, (units, long_name) in described.items():
        if name in ds:
            ds[name].attrs.update(units=units, long_name=long_name)
    return with_attrs(ds, **attrs)


def terminal_year(config: RunConfig) -> int:
    """The last data year: ``config.fit.last_data_year``, else ``config.model.last_year``."""
    return int(config.fit.last_data_year if config.fit.last_data_year is not None else config.model.last_year)


def depletion(state: Any) -> NDArray:
    """Survey biomass over unfished survey biomass, B/B0, per year (``state`` from the engine)."""
    return state.biomass_t / np.asarray(state.reference.biomass0_t)[..., None]
