"""Environmental covariates on years: the first layer of the forcing chain.

Three types hold covariate values with their years, so effects with a lag can reach back:

- :class:`EnvSeries`: one annual series with unit, provenance and the years that were filled
  (never silently), e.g. the lake summer surface water temperature of a data directory
  (:meth:`EnvSeries.from_temperature`; other covariates are read from a CSV file by
  :func:`carpmodel.io.covariate_file.read_covariate_file`). :meth:`EnvSeries.extend` fills the
  years beyond it (``hold_last``, ``mean_of_years``, ``continue_process``).
- :class:`CovariateSeries`: bare values ``(*batch, year)`` on their years.
- :class:`ProjectedCovariate`: a series continued into the future by scenario and draw
  (built by :func:`carpmodel.management.climate.projected_covariates`).

The responses and effects that turn covariates into process multipliers are
:mod:`carpmodel.model.forcing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.dims import CONFIDENCE_LEVELS
from carpmodel.errors import ConfigError
from carpmodel.model.checks import read_only_array, year_array

__all__ = [
    "BEYOND_SERIES",
    "OBSERVED_CONFIDENCE",
    "AnomalyProcess",
    "BeyondSeries",
    "CovariateSeries",
    "EnvSeries",
    "ProjectedCovariate",
]

BeyondSeries = Literal["hold_last", "mean_of_years", "continue_process"]
#: How a covariate continues after the last year of its series (WHAM's projection options).
BEYOND_SERIES: tuple[str, ...] = get_args(BeyondSeries)

#: Confidence labels that count as an observed (not assumed) series.
OBSERVED_CONFIDENCE: tuple[str, ...] = ("measured",)


class AnomalyProcess(Protocol):
    """What ``beyond_series = "continue_process"`` needs of an anomaly model
    (:class:`carpmodel.management.anomalies.AnomalyModel`)."""

    def expected_path(self, n_years: int) -> NDArray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class EnvSeries:
    """One annual environmental covariate on contiguous years.

    Attributes
    ----------
    name : str
        Covariate name that effects refer to (e.g. ``temperature_c``, ``spawning_temperature_c``).
    year : ndarray of int, shape (n,)
        Contiguous ascending calendar years.
    values : ndarray, shape (n,), ``unit``
        Covariate values, finite; filled years hold the filled value.
    unit : str
        Unit of ``values`` (``degC`` for temperatures).
    observed : bool
        True when every non-filled row has confidence ``measured`` (:data:`OBSERVED_CONFIDENCE`);
        False for assumed, reported-only or derived series (the bundled temperature is assumed).
    source_id : str
        The series' source_ids (``data/SOURCES.md``), joined by ``+`` when several.
    filled_years : tuple of int
        Years whose value was filled, not read (see ``note`` for the method).
    note : str
        How the series was made and filled, one sentence per step.
    """

    name: str
    year: NDArray
    values: NDArray
    unit: str
    observed: bool
    source_id: str
    filled_years: tuple[int, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        year = year_array(self.year, f"EnvSeries {self.name!r}.year")
        values = np.asarray(self.values, dtype=float)
        if values.shape != year.shape:
            raise ConfigError(f"EnvSeries {self.name!r}.values: expected shape {year.shape} like year, "
                              f"got {values.shape}")
        if not np.all(np.isfinite(values)):
            bad = int(year[~np.isfinite(values)][0])
            raise ConfigError(f"EnvSeries {self.name!r}.values: expected finite values, got "
                              f"{values[year == bad][0]!r} in {bad}")
        filled = tuple(sorted(int(y) for y in self.filled_years))
        if any(y < year[0] or y > year[-1] for y in filled):
            raise ConfigError(f"EnvSeries {self.name!r}.filled_years: expected years within "
                              f"{year[0]}-{year[-1]}, got {filled}")
        object.__setattr__(self, "year", read_only_array(year, np.int64))
        object.__setattr__(self, "values", read_only_array(values))
        object.__setattr__(self, "filled_years", filled)

    @property
    def first_year(self) -> int:
        return int(self.year[0])

    @property
    def last_year(self) -> int:
        return int(self.year[-1])

    @property
    def filled_mask(self) -> NDArray:
        """Boolean array (n,): True where the value was filled."""
        return np.isin(self.year, np.asarray(self.filled_years, dtype=np.int64))

    @classmethod
    def from_temperature(cls, data: Any) -> EnvSeries:
        """The lake summer (Jun-Aug) mean surface water temperature of a data directory, °C.

        ``data`` is a loaded data directory (:class:`carpmodel.io.inputs.DataSet`).
        ``observed`` is True only if every row of ``temperature.csv`` has confidence
        ``measured``; the bundled series is an ASSUMED linear series (16 °C in 1980 +
        0.015 °C/yr, source_id ``assumption_temperature_series``), so it is False there.
        """
        t = data.temperature
        observed = all(c in OBSERVED_CONFIDENCE for c in t.confidence)
        levels = sorted(set(t.confidence), key=CONFIDENCE_LEVELS.index)
        note = (f"lake summer (Jun-Aug) mean surface water temperature from {t.path}; "
                f"confidence {', '.join(levels)}")
        return cls("temperature_c", t.year, t.temperature_c, "degC", observed,
                   "+".join(dict.fromkeys(t.source_id)), (), note)

    def trend_level(self) -> float:
        """Value of the series' least-squares linear trend (non-filled years) at its last year."""
        intercept, slope = _linear_trend(self.year, self.values, ~self.filled_mask)
        return intercept + slope * self.last_year

    def detrended(self) -> NDArray:
        """Series minus its least-squares linear trend (fitted on the non-filled years), shape (n,)."""
        intercept, slope = _linear_trend(self.year, self.values, ~self.filled_mask)
        return self.values - (intercept + slope * self.year)

    def mean_of_last(self, mean_years: int) -> tuple[float, float]:
        """Mean of the last ``mean_years`` values and the mean year they describe."""
        n = len(self.year)
        if isinstance(mean_years, bool) or not isinstance(mean_years, int) or not 1 <= mean_years <= n:
            raise ConfigError(f"mean_years: expected an integer in 1..{len(self.year)} (the length of "
                              f"{self.name!r}), got {mean_years!r}")
        return float(self.values[-mean_years:].mean()), float(self.year[-mean_years:].mean())

    def extend(self, first_year: int, last_year: int, *, beyond_series: BeyondSeries = "hold_last",
               mean_years: int = 10, anomaly_model: AnomalyProcess | None = None) -> EnvSeries:
        """The series on ``first_year..last_year``, filling years outside it (recorded).

        Before the first year the first value is held. After the last year (e.g. fit years past
        the end of a dataset) the deterministic continuation ``beyond_series`` is used:

        - ``hold_last``: the last value;
        - ``mean_of_years``: the mean of the last ``mean_years`` values;
        - ``continue_process``: the linear-trend level at the last year plus the anomaly
          process's expected path from its last state (``anomaly_model``, which must be
          given), i.e. the last departure decays as the fitted ARMA forecasts. The historical
          trend itself is not continued (future warming is the scenarios' job).

        Years inside the series are returned unchanged. Use for the fit years; projections use
        :func:`carpmodel.management.climate.projected_covariates`.
        """
        if beyond_series not in BEYOND_SERIES:
            raise ConfigError(f"beyond_series: expected one of {', '.join(BEYOND_SERIES)}, "
                              f"got {beyond_series!r}")
        first_year, last_year = int(first_year), int(last_year)
        if last_year < first_year:
            raise ConfigError(f"extend: expected first_year <= last_year, got {first_year}, {last_year}")
        years = np.arange(first_year, last_year + 1)
        values = np.empty(years.size)
        before, after = years < self.first_year, years > self.last_year
        inside = ~(before | after)
        values[inside] = self.values[years[inside] - self.first_year]
        values[before] = self.values[0]
        n_after = int(after.sum())
        if n_after:
            base, path, how = self._continuation(n_after, beyond_series, mean_years, anomaly_model)
            values[after] = base + path
        notes = [self.note] if self.note else []
        if before.any():
            notes.append(f"{int(before.sum())} year(s) before {self.first_year} hold the first value")
        if n_after:
            notes.append(f"{n_after} year(s) after {self.last_year}: {how}")
        filled = {y for y in self.filled_years if first_year <= y <= last_year}
        filled |= {int(y) for y in years[~inside]}
        return EnvSeries(self.name, years, values, self.unit, self.observed, self.source_id,
                         tuple(sorted(filled)), "; ".join(notes))

    def _continuation(self, n_years: int, beyond_series: str, mean_years: int,
                      anomaly_model: AnomalyProcess | None) -> tuple[float, NDArray, str]:
        """Base level and deterministic path after the series end, and a sentence saying how."""
        if beyond_series == "hold_last":
            return float(self.values[-1]), np.zeros(n_years), f"held at the {self.last_year} value"
        if beyond_series == "mean_of_years":
            base, _ = self.mean_of_last(mean_years)
            return base, np.zeros(n_years), f"held at the mean of the last {mean_years} years"
        if anomaly_model is None:
            raise ConfigError("beyond_series = 'continue_process' needs an anomaly_model "
                              "(AnomalyModel.for_series(series, data))")
        return (self.trend_level(), anomaly_model.expected_path(n_years),
                f"trend level at {self.last_year} plus the expected path of the anomaly process "
                f"({anomaly_model.describe()})")


def _linear_trend(year: NDArray, values: NDArray, use: NDArray) -> tuple[float, float]:
    """Least-squares (intercept at year 0, slope per year) on the rows where ``use`` is True."""
    x, y = year[use].astype(float), values[use]
    if x.size < 2:
        return float(y.mean()), 0.0
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


@dataclass(frozen=True)
class CovariateSeries:
    """Covariate values on their own years: ``values`` (*batch, year) over ``year`` (year,)."""

    year: NDArray
    values: NDArray

    def __post_init__(self) -> None:
        year = year_array(self.year, "CovariateSeries.year")
        values = np.asarray(self.values, dtype=float)
        if values.ndim == 0 or values.shape[-1] != year.size:
            raise ConfigError(f"CovariateSeries.values: expected a last (year) axis of length {year.size}, "
                              f"got shape {values.shape}")
        object.__setattr__(self, "year", read_only_array(year, np.int64))
        object.__setattr__(self, "values", read_only_array(values))


@dataclass(frozen=True)
class ProjectedCovariate:
    """A covariate over the historical and projected years, by scenario and draw.

    Attributes
    ----------
    name, unit : str
    scenario : tuple of str
        Scenario names, in the order of the first axis.
    year : ndarray of int, shape (year,)
        First series year .. last projected year, contiguous.
    values : ndarray, shape (scenario, draw, year)
        Historical years: the series (identical across scenarios and draws); later years:
        ``base + scenario path + anomaly``.
    last_series_year : int
        Last year of the series; later years are projected.
    base : float
        The level the projection starts from (see ``beyond_series``).
    anchor_year : float
        The year ``base`` describes; every scenario path is 0 there.
    beyond_series : str
    note : str
    """

    name: str
    unit: str
    scenario: tuple[str, ...]
    year: NDArray
    values: NDArray
    last_series_year: int
    base: float
    anchor_year: float
    beyond_series: str
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "year", read_only_array(self.year, np.int64))
        object.__setattr__(self, "values", read_only_array(self.values))

    @property
    def projected(self) -> NDArray:
        """Boolean (year,): True for projected years."""
        return self.year > self.last_series_year

    def to_dataarray(self) -> xr.DataArray:
        """The values as ``DataArray(scenario, draw, year)`` with units and provenance attrs."""
        return xr.DataArray(
            self.values, dims=("scenario", "draw", "year"),
            coords={"scenario": list(self.scenario), "draw": np.arange(self.values.shape[1]),
                    "year": self.year},
            name=self.name,
            attrs={"units": self.unit, "long_name": self.name, "last_series_year": self.last_series_year,
                   "base": self.base, "anchor_year": self.anchor_year, "beyond_series": self.beyond_series,
                   "note": self.note},
        )
