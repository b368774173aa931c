"""Climate scenarios and the projected covariates they give.

A scenario (:class:`ClimateScenario`) is a future air-warming path (CMIP6 Tibetan-Plateau
ensemble means, or assumed); :func:`scenario_warming_c` turns it into lake-water warming
relative to the projection start through the air-to-water ratio of :class:`ClimateReference`.
:func:`projected_covariates` assembles base level + scenario path + anomalies
(:mod:`carpmodel.management.anomalies`) into an array ``(scenario, draw, year)`` that also holds
the historical years, so lags can reach back. :class:`ClimateForcing` is the projection's
``build_multipliers`` hook: random generators → process multipliers by scenario and draw.

The scenarios, reference and assumed anomalies of a data directory come from its
``climate_scenarios.toml``, read and validated by :mod:`carpmodel.io.climate_file` into a
:class:`ClimateData` (``DataSet.climate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError
from carpmodel.management.anomalies import AnomalyModel, Paths, sample_anomalies
from carpmodel.model.checks import finite_float, year_array
from carpmodel.model.covariates import BEYOND_SERIES, BeyondSeries, EnvSeries, ProjectedCovariate
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.forcing import (
    SPAWNING_OFFSET_C,
    CovariateEffect,
    default_effects,
    effect_multipliers,
    temperature_covariates,
)

__all__ = [
    "ClimateData",
    "ClimateForcing",
    "ClimateReference",
    "ClimateScenario",
    "fit_multipliers",
    "projected_covariates",
    "scenario_warming_c",
]


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ClimateScenario:
    """A future air-warming path (CMIP6 Tibetan-Plateau ensemble means, or assumed).

    Attributes
    ----------
    name, label : str
        Key in ``climate_scenarios.toml`` (``ssp245``) and display label (``SSP2-4.5``).
    air_warming_c : Mapping[int, float]
        Annual mean surface air warming, °C, relative to the reference period (1995-2014), at
        period midpoints (2050 = 2041-2060, 2090 = 2081-2100). Empty for the baseline.
    trend_c_per_decade : float
        Reported linear air trend 2015-2100, °C/decade: continues the path after the last
        midpoint.
    source_id, confidence : str
        Provenance (``data/SOURCES.md``).
    """

    name: str
    label: str
    air_warming_c: Mapping[int, float]
    trend_c_per_decade: float
    source_id: str
    confidence: str
    note: str = ""

    def __post_init__(self) -> None:
        warming = {int(k): float(v) for k, v in sorted(dict(self.air_warming_c).items())}
        object.__setattr__(self, "air_warming_c", MappingProxyType(warming))


@dataclass(frozen=True)
class ClimateReference:
    """The ``[reference]`` table: CMIP reference period and the air-to-water warming ratio.

    ``air_to_water_ratio`` [A] 0.5 (range 0.2-0.8): lake summer surface water warms less than
    air (MODIS 2001-2010 for Qinghai Lake: water ≈ 0.2 × air trend, xiao_2013).
    """

    period: tuple[int, int] = (1995, 2014)
    air_to_water_ratio: float = 0.5
    air_to_water_range: tuple[float, float] = (0.2, 0.8)
    source_id: str = "assumption_air_to_water"
    confidence: str = "assumed"

    @property
    def reference_year(self) -> int:
        """Midpoint year of the reference period (1995-2014 → 2005), warming 0 there."""
        return (self.period[0] + self.period[1] + 1) // 2




@dataclass(frozen=True)
class ClimateData:
    """The typed contents of a data directory's ``climate_scenarios.toml``.

    Built by :func:`carpmodel.io.climate_file.load_climate` (``DataSet.climate``).

    Attributes
    ----------
    path : str
        The file, as named in messages.
    reference : ClimateReference
        The ``[reference]`` table (defaults where absent).
    scenarios : Mapping[str, ClimateScenario]
        One entry per ``[scenarios.<name>]`` table, in file order.
    anomalies : AnomalyModel or None
        The ASSUMED AR(1) of ``[anomalies]`` (starting state 0), None if the file has none.
    """

    path: str
    reference: ClimateReference
    scenarios: Mapping[str, ClimateScenario]
    anomalies: AnomalyModel | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenarios", MappingProxyType(dict(self.scenarios)))


def _air_warming_c(scenario: ClimateScenario, years: NDArray, reference_year: float) -> NDArray:
    """Air warming vs the reference period, piecewise linear through (reference, 0) and the midpoints."""
    knots_year = np.array([reference_year, *scenario.air_warming_c.keys()], dtype=float)
    knots_c = np.array([0.0, *scenario.air_warming_c.values()], dtype=float)
    y = np.asarray(years, dtype=float)
    air = np.interp(y, knots_year, knots_c)
    trend_per_yr = scenario.trend_c_per_decade / 10.0
    after = y > knots_year[-1]
    air = np.where(after, knots_c[-1] + trend_per_yr * (y - knots_year[-1]), air)
    first_slope = ((knots_c[1] - knots_c[0]) / (knots_year[1] - knots_year[0]) if knots_year.size > 1
                   else trend_per_yr)
    before = y < knots_year[0]
    return np.where(before, first_slope * (y - knots_year[0]), air)


def scenario_warming_c(scenario: ClimateScenario, years: ArrayLike, *, air_to_water_ratio: float,
                       start_year: float, reference_year: float = 2005) -> NDArray:
    """Lake-water warming of a scenario relative to ``start_year``, °C, shape (year,).

    ``ΔW(y) = r·(ΔA(y) − ΔA(start_year))`` where ΔA is the scenario's air warming relative to
    the CMIP reference period, linear through ``(reference_year, 0)``, ``(2050, Δ_mid)`` and
    ``(2090, Δ_end)``, continued after the last midpoint at ``trend_c_per_decade`` (and before
    the reference year along the first segment), and ``r`` the air-to-water ratio [A].
    Subtracting ``ΔA(start_year)`` removes the warming already realised between the reference
    period and the projection start, which the base level of the series already contains, so
    it is not counted twice: the path is 0 at ``start_year``. The baseline scenario (no
    midpoints, trend 0) is 0 everywhere.
    """
    ratio = finite_float(air_to_water_ratio, "air_to_water_ratio", "a ratio >= 0")
    if ratio < 0:
        raise ConfigError(f"air_to_water_ratio: expected a ratio >= 0, got {ratio!r}")
    start = finite_float(start_year, "start_year", "a finite year")
    y = np.asarray(years, dtype=float)
    air = _air_warming_c(scenario, y, reference_year)
    air_start = _air_warming_c(scenario, np.array([start]), reference_year)[0]
    return ratio * (air - air_start)


# --------------------------------------------------------------------------- projection


def projected_covariates(series: EnvSeries,
                         scenarios: Sequence[ClimateScenario] | Mapping[str, ClimateScenario],
                         years: ArrayLike, anomalies: ArrayLike, *, air_to_water_ratio: float,
                         beyond_series: BeyondSeries = "hold_last", mean_years: int = 10,
                         reference_year: float = 2005) -> ProjectedCovariate:
    """Covariate paths ``(scenario, draw, year)`` over the series years and the projection years.

    For every year ``y`` after the last series year::

        value[s, d, y] = base + scenario_warming_c(s, y; start_year=anchor) + anomalies[d, y]

    with ``base`` and ``anchor`` set by ``beyond_series``:

    - ``hold_last``: the last value of the series, anchored at the last year;
    - ``mean_of_years``: the mean of the last ``mean_years`` values, anchored at their mean year;
    - ``continue_process``: the series' linear-trend level at the last year, anchored there;
      the anomalies must then be drawn conditional on the last state (:func:`sample_anomalies`
      does so), so the last observed departure decays as the process says.

    The path is 0 at the anchor, so the warming already in the series is not counted twice.
    Series years keep their values (identical for all scenarios and draws), so lags reach back.

    Parameters
    ----------
    series : EnvSeries
        Historical covariate; must be in ``degC`` unless every scenario's path is 0.
    scenarios : sequence or mapping of ClimateScenario
    years : sequence of int, shape (year,)
        Contiguous projection years; must include every year after the series up to the last
        (years inside the series are allowed and keep the series values).
    anomalies : array (draw, year)
        Anomalies aligned with ``years``, e.g. :func:`sample_anomalies` (zeros for none).
    air_to_water_ratio : float
        Lake-water warming per unit air warming [A] (``ClimateReference.air_to_water_ratio``).

    Raises
    ------
    ConfigError
        Bad years, anomalies shape, non-finite anomalies, or a non-temperature series with a
        warming scenario.
    """
    if beyond_series not in BEYOND_SERIES:
        raise ConfigError(f"beyond_series: expected one of {', '.join(BEYOND_SERIES)}, got {beyond_series!r}")
    scenario_list = list(scenarios.values()) if isinstance(scenarios, Mapping) else list(scenarios)
    if not scenario_list:
        raise ConfigError("projected_covariates.scenarios: expected at least one scenario")
    years = year_array(years, "projected_covariates.years")
    end = series.last_year
    if years[-1] <= end:
        raise ConfigError(f"projected_covariates.years: expected years after the series' last year {end}, "
                          f"got {years[0]}-{years[-1]}")
    if years[0] > end + 1:
        raise ConfigError(f"projected_covariates.years: expected the years to start by {end + 1} (the "
                          f"year after the series {series.name!r}), got {years[0]}; include the gap years")
    anomalies = np.asarray(anomalies, dtype=float)
    if anomalies.ndim != 2 or anomalies.shape[1] != years.size:
        raise ConfigError(f"projected_covariates.anomalies: expected shape (draw, {years.size}), got "
                          f"{anomalies.shape}")
    if not np.all(np.isfinite(anomalies)):
        raise ConfigError("projected_covariates.anomalies: expected finite values")
    if beyond_series == "hold_last":
        base, anchor = float(series.values[-1]), float(end)
    elif beyond_series == "mean_of_years":
        base, anchor = series.mean_of_last(mean_years)
    else:
        base, anchor = series.trend_level(), float(end)
    out_year = np.arange(series.first_year, years[-1] + 1)
    future = out_year > end
    future_years = out_year[future]
    future_anomalies = anomalies[:, years > end]
    n_draw = anomalies.shape[0]
    n_hist = out_year.size - future_years.size
    values = np.empty((len(scenario_list), n_draw, out_year.size))
    values[..., :n_hist] = series.values
    for i, scenario in enumerate(scenario_list):
        path = scenario_warming_c(scenario, future_years, air_to_water_ratio=air_to_water_ratio,
                                  start_year=anchor, reference_year=reference_year)
        if series.unit != "degC" and np.any(path != 0):
            raise ConfigError(f"projected_covariates: scenario {scenario.name!r} is a temperature path "
                              f"(degC) but {series.name!r} is in {series.unit!r}; project it with the "
                              f"baseline scenario or supply its own series")
        values[i, :, n_hist:] = (base + path)[None, :] + future_anomalies
    note = (f"{series.name}: series to {end}; after: base {base:.3f} {series.unit} ({beyond_series}, "
            f"anchor {anchor:g}) + scenario warming x air-to-water ratio {air_to_water_ratio:g} "
            f"+ anomalies")
    return ProjectedCovariate(series.name, series.unit, tuple(s.name for s in scenario_list), out_year,
                              values, end, base, anchor, beyond_series, note)


# --------------------------------------------------------------------------- wiring helpers


def _max_lag(effects: Sequence[CovariateEffect]) -> int:
    return max((int(e.lag_years) for e in effects), default=0)


def fit_multipliers(effects: Sequence[CovariateEffect], lake: EnvSeries, years: ArrayLike, *,
                    spawning_offset_c: float = SPAWNING_OFFSET_C, beyond_series: BeyondSeries = "hold_last",
                    mean_years: int = 10, anomaly_model: AnomalyModel | None = None,
                    extra_covariates: Mapping[str, Any] | None = None) -> ProcessMultipliers:
    """Multipliers ``(year,)`` of the historical (fit) years from the lake temperature series.

    The series is extended to ``years[0] − max lag .. years[-1]`` (:meth:`EnvSeries.extend`:
    first value held before it, ``beyond_series`` after it, the filled years recorded), the
    spawning-season covariate derived from it, and :func:`effect_multipliers` applied.
    ``extra_covariates`` (e.g. a user's salinity series) are added to the mapping as given.
    """
    years = year_array(years, "fit_multipliers.years")
    extended = lake.extend(int(years[0]) - _max_lag(effects), int(years[-1]), beyond_series=beyond_series,
                           mean_years=mean_years, anomaly_model=anomaly_model)
    covariates = {**temperature_covariates(extended, spawning_offset_c=spawning_offset_c),
                  **dict(extra_covariates or {})}
    return effect_multipliers(effects, covariates, years)


@dataclass(frozen=True)
class ClimateForcing:
    """Everything the projection needs to turn random generators into multipliers.

    Call it as ``forcing(randomness, years)`` — the ``build_multipliers`` hook of
    ``projection.ProjectionSetup``: ``randomness.anomaly_normals`` is the draws' anomaly stream
    (:class:`~carpmodel.management.draw_streams.DrawStream`, one row per draw). Returns
    ``(ProcessMultipliers with arrays (scenario, draw, year), lake temperature (scenario, draw,
    year))`` over the projection ``years``, scenarios in the order of :attr:`scenario_names`.
    The anomalies of a draw are the same in every scenario (common random numbers), so
    scenarios differ only by their warming path.

    Attributes
    ----------
    lake : EnvSeries
        Lake summer surface water temperature (historical).
    scenarios : tuple of ClimateScenario
    effects : tuple of CovariateEffect
    anomaly_model : AnomalyModel
    air_to_water_ratio : float
    beyond_series : {"hold_last", "mean_of_years", "continue_process"}
    mean_years : int
    spawning_offset_c : float
    extra_covariates : Mapping[str, Any]
        Other covariates, passed to :func:`effect_multipliers` as given (must cover the years).
    """

    lake: EnvSeries
    scenarios: tuple[ClimateScenario, ...]
    effects: tuple[CovariateEffect, ...]
    anomaly_model: AnomalyModel
    air_to_water_ratio: float
    beyond_series: BeyondSeries = "hold_last"
    mean_years: int = 10
    spawning_offset_c: float = SPAWNING_OFFSET_C
    extra_covariates: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        object.__setattr__(self, "effects", tuple(self.effects))
        object.__setattr__(self, "extra_covariates", MappingProxyType(dict(self.extra_covariates)))
        if not self.scenarios:
            raise ConfigError("ClimateForcing.scenarios: expected at least one scenario")
        if self.beyond_series not in BEYOND_SERIES:
            raise ConfigError(f"ClimateForcing.beyond_series: expected one of {', '.join(BEYOND_SERIES)}, "
                              f"got {self.beyond_series!r}")

    @property
    def scenario_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.scenarios)

    @classmethod
    def from_data(cls, data: Any, *, scenario_names: Sequence[str] | None = None,
                  effects: Sequence[CovariateEffect] | None = None, air_to_water_ratio: float | None = None,
                  beyond_series: BeyondSeries = "hold_last", mean_years: int = 10,
                  spawning_offset_c: float = SPAWNING_OFFSET_C) -> ClimateForcing:
        """Lake series, scenarios, anomaly model and ratio from a data directory.

        ``data`` is a loaded data directory (:class:`carpmodel.io.inputs.DataSet`); its
        ``climate_scenarios.toml`` is validated when first used (``data.climate``).
        ``scenario_names`` selects and orders scenarios (default: all, file order); unknown
        names raise a ConfigError listing the valid ones. ``effects`` defaults to
        :func:`default_effects`; ``air_to_water_ratio`` to ``[reference]`` of the file.
        """
        lake = EnvSeries.from_temperature(data)
        climate = data.climate
        available = climate.scenarios
        names = list(available) if scenario_names is None else list(scenario_names)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ConfigError(f"scenarios: unknown scenario(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(available)}")
        ratio = climate.reference.air_to_water_ratio if air_to_water_ratio is None \
            else air_to_water_ratio
        return cls(lake, tuple(available[n] for n in names),
                   tuple(default_effects() if effects is None else effects),
                   AnomalyModel.for_series(lake, data), ratio, beyond_series, mean_years, spawning_offset_c)

    def covariates(self, rngs: Paths, years: ArrayLike) -> dict[str, Any]:
        """Projected covariates (lake and spawning season), history included, for these draws."""
        years = year_array(years, "ClimateForcing.years")
        future = np.arange(min(int(years[0]), self.lake.last_year + 1), int(years[-1]) + 1)
        anomalies = sample_anomalies(self.anomaly_model, rngs, future.size, beyond_series=self.beyond_series)
        lake = projected_covariates(self.lake, self.scenarios, future, anomalies,
                                    air_to_water_ratio=self.air_to_water_ratio,
                                    beyond_series=self.beyond_series, mean_years=self.mean_years)
        return {**temperature_covariates(lake, spawning_offset_c=self.spawning_offset_c),
                **dict(self.extra_covariates)}

    def __call__(self, randomness: Any, years: ArrayLike) -> tuple[ProcessMultipliers, NDArray]:
        years = year_array(years, "ClimateForcing.years")
        covariates = self.covariates(randomness.anomaly_normals, years)
        multipliers = effect_multipliers(self.effects, covariates, years)
        lake: ProjectedCovariate = covariates["temperature_c"]
        temperature = lake.values[..., np.searchsorted(lake.year, years)]
        return multipliers, temperature

    def fit_multipliers(self, years: ArrayLike) -> ProcessMultipliers:
        """Multipliers of the historical years (see :func:`fit_multipliers`)."""
        return fit_multipliers(self.effects, self.lake, years, spawning_offset_c=self.spawning_offset_c,
                               beyond_series=self.beyond_series, mean_years=self.mean_years,
                               anomaly_model=self.anomaly_model, extra_covariates=self.extra_covariates)
