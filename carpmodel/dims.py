"""Dimension names and variable metadata shared by every xarray result.

Batch dimensions come first, in the order ``strategy, scenario, draw``, then ``year``,
``origin``, ``age``. Every variable written by carpmodel carries ``units`` and ``long_name``
from :data:`VARIABLE_ATTRS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel import __version__

STRATEGY, SCENARIO, DRAW, YEAR, ORIGIN, AGE = "strategy", "scenario", "draw", "year", "origin", "age"
ORIGINS = ("wild", "hatchery")

VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "biomass_t": {"units": "t", "long_name": "end-of-year biomass the hydroacoustic survey sees (q = 1)"},
    "biomass_obs_t": {"units": "t", "long_name": "observed biomass (hydroacoustic survey)"},
    "biomass_obs_cv": {"units": "1", "long_name": "assumed CV (lognormal SD) of the observation"},
    "total_biomass_t": {"units": "t", "long_name": "start-of-year biomass of all ages"},
    "ssb_t": {"units": "t", "long_name": "spawning stock biomass (both origins)"},
    "spawning_output_t": {"units": "t",
                          "long_name": "spawning output (hatchery spawners weighted by RRS)"},
    "recruits": {"units": "fish",
                 "long_name": "wild recruits of the year class spawned this year "
                              "(age 1 on 1 January next year)"},
    "eggs": {"units": "eggs", "long_name": "eggs spawned (hatchery-origin spawners weighted by RRS)"},
    "recruits_per_egg": {"units": "1", "long_name": "recruits of the year class per egg spawned"},
    "catch_t": {"units": "t", "long_name": "catch"},
    "catch_obs_t": {"units": "t", "long_name": "observed or reconstructed catch"},
    "catch_shortfall_t": {"units": "t", "long_name": "catch the stock could not supply at F_max"},
    "f_per_yr": {"units": "1/yr", "long_name": "fully selected fishing mortality"},
    "released_fish": {"units": "fish", "long_name": "hatchery fish released (before acute survival)"},
    "hatchery_fraction_biomass": {"units": "1",
                                  "long_name": "hatchery-origin fraction of survey biomass"},
    "hatchery_fraction_ssb": {"units": "1",
                              "long_name": "hatchery-origin fraction of spawning biomass"},
    "hatchery_fraction_numbers": {"units": "1",
                                  "long_name": "hatchery-origin fraction of survey-age numbers"},
    "juvenile_survival_dd": {"units": "1",
                             "long_name": "density-dependent survival factor per window age"},
    "window_survivors": {"units": "fish",
                         "long_name": "fish surviving past the juvenile density-dependence window"},
    "wild_window_survivors": {"units": "fish",
                              "long_name": "wild fish surviving past the density-dependence window"},
    "cost": {"units": "currency units", "long_name": "release cost (illustrative unless user-supplied)"},
    "numbers": {"units": "fish", "long_name": "numbers at age, start of year"},
    "length_cm": {"units": "cm", "long_name": "mean body length at age, start of year"},
    "natural_deaths": {"units": "fish", "long_name": "natural deaths during the year"},
    "catch_numbers": {"units": "fish", "long_name": "catch in numbers during the year"},
    "temperature_c": {"units": "degC", "long_name": "lake summer surface water temperature"},
}


#: long names of the string (label) coordinates of carpmodel's Datasets
LABEL_LONG_NAMES: dict[str, str] = {
    "strategy": "release strategy (name in the strategies file)",
    "scenario": "climate scenario (name in climate_scenarios.toml)",
    "origin": "origin of the fish (wild or hatchery)",
    "parameter": "estimated parameter, on the estimation scale",
    "parameter_2": "estimated parameter, on the estimation scale (second axis of the covariance)",
    "description": "what the strategy does",
    "structure": "model structure (an ensemble member, or the pooled ensemble)",
    "effect": "temperature effect",
    "quantity": "reported quantity",
    "component": "likelihood component",
    "release_option": "release size (age and weight)",
    "option": "monitoring option",
}


def describe_labels(variables: Any) -> None:
    """Give every string-valued variable or coordinate of ``variables`` (a Dataset's
    ``.variables``, or any mapping of name → Variable) a ``long_name`` and no ``units``: labels
    have no unit. Known names take :data:`LABEL_LONG_NAMES`; others "NAME (label)"."""
    for name, variable in variables.items():
        if variable.dtype.kind not in "USO":
            continue
        variable.attrs.pop("units", None)
        if not variable.attrs.get("long_name"):
            fallback = f"{str(name).replace('_', ' ')} (label)"
            variable.attrs["long_name"] = LABEL_LONG_NAMES.get(str(name), fallback)


def with_attrs(ds: xr.Dataset, **dataset_attrs: Any) -> xr.Dataset:
    """Attach units/long_name to known variables, a long_name (and no units) to string labels
    (:func:`describe_labels`) and carpmodel's dataset attributes."""
    for name, attrs in VARIABLE_ATTRS.items():
        if name in ds:
            ds[name].attrs.update(attrs)
    describe_labels(ds.variables)
    ds.attrs.update({"carpmodel_version": __version__, **dataset_attrs})
    if YEAR in ds.coords:
        ds[YEAR].attrs.update({"units": "yr", "long_name": "calendar year"})
    if AGE in ds.coords:
        ds[AGE].attrs.update({"units": "yr", "long_name": "age (last age is a plus group)"})
    return ds


def year_coord(first_year: int, n_years: int) -> np.ndarray:
    """Calendar years ``first_year .. first_year + n_years − 1``."""
    return np.arange(first_year, first_year + n_years)

#: confidence labels of every data value, most to least certain (data/SOURCES.md)
CONFIDENCE_LEVELS: tuple[str, ...] = ("measured", "reported", "derived", "assumed")
