"""Environmental forcing: covariate series, response functions, effects on processes, climate scenarios.

The covariate chain follows WHAM (``R/set_ecov.R``) with its three layers kept apart, written
as types instead of option strings:

1. **Series** (:class:`EnvSeries`): one annual environmental covariate with its unit,
   provenance and which years were filled (never silently). The lake summer surface water
   temperature comes from ``temperature.csv`` (:meth:`EnvSeries.from_temperature`); any other
   covariate a user has (river temperature, days inside the spawning window, salinity, lake
   level) is read by :meth:`EnvSeries.from_csv`. :func:`spawning_season_temperature` derives
   the ASSUMED spawning-season river temperature used by the recruitment effect.
2. **Response** (:class:`Linear`, :class:`Q10`, :class:`Arrhenius`, :class:`ThermalDome`,
   :class:`Logistic`, :class:`UserResponse`): covariate → multiplier, each equal to 1 at its
   reference value, so parameters estimated at the reference keep their meaning.
3. **Effect** (:class:`CovariateEffect`): a response on a named process (``growth`` = von
   Bertalanffy K, ``natural_mortality`` = M, ``recruitment`` = expected recruits,
   ``maturity`` = length at 50 % maturity) with a lag. :func:`effect_multipliers` turns a set
   of effects and covariate arrays into the :class:`~carpmodel.model.dynamics.ProcessMultipliers`
   the engine takes. Growth acts on K year by year; because the engine grows every cohort
   with that year's K, a warm year changes every later year of that cohort's length and
   weight ("acting by cohort").

Climate scenarios (:class:`ClimateScenario`, :func:`load_scenarios`,
:func:`scenario_warming_c`) give the future lake-water warming path; :class:`AnomalyModel`
gives inter-annual anomalies (fitted ARMA for an observed series, assumed AR(1) otherwise);
:func:`projected_covariates` assembles base level + scenario path + anomalies into an array
``(scenario, draw, year)`` that also holds the historical years, so lags can reach back.

Provenance labels used in docstrings: [M] measured, [R] reported, [D] derived, [A] assumed;
source_ids refer to ``data/SOURCES.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError, DataError
from carpmodel.io.inputs import (
    _YEAR,
    CLIMATE_FILE,
    CONFIDENCE_LEVELS,
    DataSet,
    _blank_or,
    _check_years,
    _confidence,
    _Invalid,
    _number,
    _read_bytes,
    _read_table,
    _source,
    _text,
)
from carpmodel.model.dynamics import ProcessMultipliers

__all__ = [
    "ARRHENIUS_BOLTZMANN_EV_PER_K",
    "BEYOND_SERIES",
    "DEFAULT_ARMA_ORDERS",
    "EFFECT_STRENGTH_RANGES",
    "GROWTH_OPTIMUM_RANGE_C",
    "MATURITY_SENSITIVITY_SLOPE_PER_C",
    "REFERENCE_LAKE_C",
    "SPAWNING_OFFSET_C",
    "SPAWNING_OPTIMUM_C",
    "TARGETS",
    "AnomalyModel",
    "Arrhenius",
    "ClimateForcing",
    "ClimateReference",
    "ClimateScenario",
    "Covariate",
    "CovariateEffect",
    "EnvSeries",
    "Linear",
    "Logistic",
    "ProjectedCovariate",
    "Q10",
    "Response",
    "Scaled",
    "ThermalDome",
    "UserResponse",
    "default_effects",
    "effect_multipliers",
    "fit_multipliers",
    "load_climate_reference",
    "load_scenarios",
    "projected_covariates",
    "sample_anomalies",
    "scenario_warming_c",
    "sensitivity_effects",
    "spawning_season_temperature",
    "temperature_covariates",
    "with_strength",
]

Target = Literal["growth", "natural_mortality", "recruitment", "maturity"]
#: Processes an effect can act on.
TARGETS: tuple[str, ...] = get_args(Target)
#: Target → field of :class:`~carpmodel.model.dynamics.ProcessMultipliers` it multiplies.
TARGET_FIELDS: Mapping[str, str] = MappingProxyType({
    "growth": "growth_k",
    "natural_mortality": "natural_mortality",
    "recruitment": "recruitment",
    "maturity": "maturity_l50",
})

BeyondSeries = Literal["hold_last", "mean_of_years", "continue_process"]
#: How a covariate continues after the last year of its series (WHAM's projection options).
BEYOND_SERIES: tuple[str, ...] = get_args(BeyondSeries)

#: Boltzmann constant, eV/K (CODATA 2018, exact).
ARRHENIUS_BOLTZMANN_EV_PER_K = 8.617333262e-5
KELVIN_OFFSET = 273.15

#: [A] Reference lake summer surface water temperature, °C: mean of the bundled (assumed) series
#: over the fit years 2000-2024 (16 + 0.015·(2012 − 1980) = 16.48, rounded). Responses equal 1
#: here, so R0, K and M estimated by the fit describe this temperature.
REFERENCE_LAKE_C = 16.5
#: [A] Spawning-season (May-July) river temperature minus lake summer surface temperature, °C.
#: Lake summer surface mean ~16 °C [R, historic_limnology_text]; the lab spawning optimum is
#: 10.8-14.3 °C [M, Zhou et al. 2022]; river water in May-July is colder than the lake's
#: Jun-Aug surface. −4 °C puts the 2000-2024 baseline at 12.5 °C, the middle of the optimum.
SPAWNING_OFFSET_C = -4.0
#: [M] Midpoint of the suitable spawning temperature 10.8-14.3 °C (Zhou et al. 2022, lab).
SPAWNING_OPTIMUM_C = 12.55
#: [A] Width (Gaussian SD) of the recruitment dome, °C.
RECRUITMENT_WIDTH_C = 2.5
#: [A] Optimum of the growth dome, °C (proxy: Schizopygopsis younghusbandi grew best at 15 °C).
GROWTH_OPTIMUM_C = 15.0
#: [A] Width (Gaussian SD) of the growth dome, °C.
GROWTH_WIDTH_C = 6.0
#: [A] Q10 of natural mortality (metabolic scaling).
M_Q10 = 1.5
#: [A] Growth optima spanned by the climate sensitivity: 14-15 °C makes warming harmful,
#: 17 °C roughly neutral near today's ~16.5 °C, 20 °C beneficial.
GROWTH_OPTIMUM_RANGE_C: tuple[float, ...] = (14.0, 15.0, 17.0, 20.0)
#: [A] Slope of log L50 on lake temperature used by the maturity sensitivity (the default has no
#: maturity effect): −0.02/°C = L50 2 % smaller per °C, the direction of the temperature-size
#: rule (warm ectotherms mature earlier and smaller); the magnitude is illustrative.
MATURITY_SENSITIVITY_SLOPE_PER_C = -0.02

#: Strengths of each target's effect in the climate sensitivity sweep (0 = no effect). A
#: strength ``s`` raises the multiplier to the power ``s`` (scales the log-effect), see
#: :func:`with_strength`; for maturity it scales :data:`MATURITY_SENSITIVITY_SLOPE_PER_C`.
EFFECT_STRENGTH_RANGES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "recruitment": (0.0, 0.5, 1.0),
    "growth": (0.0, 0.5, 1.0),
    "natural_mortality": (0.0, 0.5, 1.0, 2.0),
    "maturity": (0.0, 0.5, 1.0),
})

#: ARMA orders (p, q) compared by AIC when an anomaly model is fitted to an observed series.
DEFAULT_ARMA_ORDERS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (2, 0), (0, 1), (1, 1))
#: Burn-in steps for a stationary start of an ARMA process other than AR(1)/white noise.
ARMA_BURN_IN = 500
#: Confidence labels that count as an observed (not assumed) series.
OBSERVED_CONFIDENCE: tuple[str, ...] = ("measured",)


# --------------------------------------------------------------------------- helpers


def _finite_float(value: Any, where: str, expected: str = "a finite number") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


def _read_only(values: ArrayLike, dtype: type = np.float64) -> NDArray:
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


def _year_array(years: ArrayLike, where: str) -> NDArray:
    """Validate a 1-D ascending contiguous integer year vector."""
    array = np.asarray(years)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"{where}: expected a non-empty 1-D sequence of years, got shape {array.shape}")
    if not np.all(np.equal(np.mod(array, 1), 0)):
        raise ConfigError(f"{where}: expected integer years, got {array!r}")
    array = array.astype(np.int64)
    if array.size > 1 and not np.all(np.diff(array) == 1):
        raise ConfigError(f"{where}: expected contiguous ascending years, got {array[0]}..{array[-1]} "
                          f"with gaps or disorder")
    return array


def _linear_trend(year: NDArray, values: NDArray, use: NDArray) -> tuple[float, float]:
    """Least-squares (intercept at year 0, slope per year) on the rows where ``use`` is True."""
    x, y = year[use].astype(float), values[use]
    if x.size < 2:
        return float(y.mean()), 0.0
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


# --------------------------------------------------------------------------- series


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
        year = _year_array(self.year, f"EnvSeries {self.name!r}.year")
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
        object.__setattr__(self, "year", _read_only(year, np.int64))
        object.__setattr__(self, "values", _read_only(values))
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
    def from_temperature(cls, data: DataSet) -> EnvSeries:
        """The lake summer (Jun-Aug) mean surface water temperature of a data directory, °C.

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

    @classmethod
    def from_csv(cls, path: str | Path, name: str, column: str, *, unit: str = "",
                 sources: frozenset[str] | None = None, sources_path: Path | None = None) -> EnvSeries:
        """Read a user-supplied covariate ``year,<column>,source_id,confidence[,note]``.

        Same conventions as the data directory: UTF-8, header on line 1, years ascending and
        unique, ``confidence`` one of measured/reported/derived/assumed, a non-empty
        ``source_id`` (checked against ``sources`` when given). Years may have gaps and a value
        cell may be empty (an explicit missing value). Gaps and empty cells are filled:

        - inside the series, by linear interpolation between the nearest years with values;
        - an empty cell before the first (after the last) value holds the first (last) value.

        Filled years are listed in ``filled_years`` and described in ``note``.

        Raises
        ------
        DataError
            Naming the file, the 1-based line and column: bad header, unparsable or non-finite
            value, duplicate or unordered year, unknown confidence, no value at all.
        """
        path = Path(path)
        source = _source(sources, sources_path or path.parent / "SOURCES.md") if sources is not None \
            else _nonempty("a non-empty source_id")
        required = {
            "year": _YEAR,
            column: _blank_or(_number(f"a finite number{' in ' + unit if unit else ''} or an empty cell")),
            "source_id": source,
            "confidence": _confidence,
        }
        table = _read_table(path, _read_bytes(path), required, {"note": _text})
        _check_years(table, contiguous=False)
        years = np.asarray(table.columns["year"], dtype=np.int64)
        cells = table.columns[column]
        present = np.array([cell != "" for cell in cells])
        if not present.any():
            raise DataError(f"{path}, line 2, column {column}: expected at least one value, "
                            f"found only empty cells")
        known_year = years[present]
        known = np.array([cells[i] for i in np.flatnonzero(present)], dtype=float)
        full_year = np.arange(years[0], years[-1] + 1)
        values = np.interp(full_year, known_year, known)   # holds the end values outside
        filled = tuple(int(y) for y in full_year if y not in set(known_year.tolist()))
        inside = [y for y in filled if known_year[0] < y < known_year[-1]]
        outside = [y for y in filled if y < known_year[0] or y > known_year[-1]]
        notes = [f"{column} read from {path}"]
        if inside:
            notes.append(f"{len(inside)} missing year(s) inside the series filled by linear "
                         f"interpolation: {_year_list(inside)}")
        if outside:
            notes.append(f"{len(outside)} empty year(s) at the ends held at the nearest value: "
                         f"{_year_list(outside)}")
        confidences = [table.columns["confidence"][i] for i in np.flatnonzero(present)]
        observed = all(c in OBSERVED_CONFIDENCE for c in confidences)
        source_id = "+".join(dict.fromkeys(table.columns["source_id"][i] for i in np.flatnonzero(present)))
        return cls(name, full_year, values, unit, observed, source_id, filled, "; ".join(notes))

    def extend(self, first_year: int, last_year: int, *, beyond_series: BeyondSeries = "hold_last",
               mean_years: int = 10, anomaly_model: AnomalyModel | None = None) -> EnvSeries:
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
        :func:`projected_covariates`.
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
            base, path, how = _continuation(self, n_after, beyond_series, mean_years, anomaly_model)
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


def _nonempty(expected: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text:
            raise _Invalid(expected)
        return text

    return parse


def _year_list(years: Sequence[int]) -> str:
    return ", ".join(str(y) for y in years[:10]) + (" …" if len(years) > 10 else "")


def _continuation(series: EnvSeries, n_years: int, beyond_series: str, mean_years: int,
                  anomaly_model: AnomalyModel | None) -> tuple[float, NDArray, str]:
    """Base level and deterministic path after the series end, and a sentence saying how."""
    if beyond_series == "hold_last":
        return float(series.values[-1]), np.zeros(n_years), f"held at the {series.last_year} value"
    if beyond_series == "mean_of_years":
        base, _ = _mean_of_years(series, mean_years)
        return base, np.zeros(n_years), f"held at the mean of the last {mean_years} years"
    if anomaly_model is None:
        raise ConfigError("beyond_series = 'continue_process' needs an anomaly_model "
                          "(AnomalyModel.for_series(series, data))")
    level = _trend_level(series)
    return (level, anomaly_model.expected_path(n_years),
            f"trend level at {series.last_year} plus the expected path of the anomaly process "
            f"({anomaly_model.describe()})")


def _mean_of_years(series: EnvSeries, mean_years: int) -> tuple[float, float]:
    """Mean of the last ``mean_years`` values and the mean year they describe."""
    n = len(series.year)
    if isinstance(mean_years, bool) or not isinstance(mean_years, int) or not 1 <= mean_years <= n:
        raise ConfigError(f"mean_years: expected an integer in 1..{len(series.year)} (the length of "
                          f"{series.name!r}), got {mean_years!r}")
    return float(series.values[-mean_years:].mean()), float(series.year[-mean_years:].mean())


def _trend_level(series: EnvSeries) -> float:
    """Value of the series' least-squares linear trend (non-filled years) at its last year."""
    intercept, slope = _linear_trend(series.year, series.values, ~series.filled_mask)
    return intercept + slope * series.last_year


def spawning_season_temperature(lake: EnvSeries | ProjectedCovariate | Covariate, *,
                                offset_c: float = SPAWNING_OFFSET_C) -> Any:
    """ASSUMED spawning-season (May-July) river temperature derived from the lake series, °C.

    No river temperature series exists. The lake summer surface mean is ~16 °C
    [R, historic_limnology_text] while the lab spawning optimum is 10.8-14.3 °C [M, Zhou et al.
    2022]; spawning-river water in May-July is colder than the lake's Jun-Aug surface. The
    covariate is the lake value plus ``offset_c`` (default −4 °C, [A]): the 2000-2024 baseline
    of the bundled series (16.5 °C) becomes 12.5 °C, the middle of the optimum. A constant
    offset carries the lake's warming and anomalies one-for-one into the rivers (assumed).

    Returns the same type as ``lake`` (an :class:`EnvSeries` is marked ``observed = False``),
    named ``spawning_temperature_c``.
    """
    offset_c = _finite_float(offset_c, "spawning_season_temperature.offset_c", "a finite offset in degC")
    unit = getattr(lake, "unit", "degC")
    if unit != "degC":
        raise ConfigError(f"spawning_season_temperature: expected a lake temperature in degC, got "
                          f"{lake.name!r} in {unit!r}")  # type: ignore[union-attr]
    note = (f"ASSUMED spawning-season (May-July) river temperature = lake summer surface "
            f"temperature {offset_c:+g} degC (no river series exists)")
    if isinstance(lake, EnvSeries):
        return EnvSeries("spawning_temperature_c", lake.year, lake.values + offset_c, "degC", False,
                         f"{lake.source_id}+assumption_spawning_temperature", lake.filled_years,
                         f"{lake.note}; {note}" if lake.note else note)
    if isinstance(lake, ProjectedCovariate):
        return replace(lake, name="spawning_temperature_c", values=lake.values + offset_c,
                       base=lake.base + offset_c, note=f"{lake.note}; {note}")
    if isinstance(lake, Covariate):
        return Covariate(lake.year, np.asarray(lake.values) + offset_c)
    raise ConfigError(f"spawning_season_temperature: expected an EnvSeries, ProjectedCovariate or "
                      f"Covariate, got {type(lake).__name__}")


def temperature_covariates(lake: Any, *, spawning_offset_c: float = SPAWNING_OFFSET_C) -> dict[str, Any]:
    """The covariates :func:`default_effects` refers to, from one lake temperature series.

    Returns ``{"temperature_c": lake, "spawning_temperature_c": spawning_season_temperature(lake)}``
    for an :class:`EnvSeries`, :class:`ProjectedCovariate` or :class:`Covariate`.
    """
    return {"temperature_c": lake,
            "spawning_temperature_c": spawning_season_temperature(lake, offset_c=spawning_offset_c)}


# --------------------------------------------------------------------------- responses


@runtime_checkable
class Response(Protocol):
    """Covariate → multiplier (non-negative, finite), equal to 1 at the response's reference."""

    def __call__(self, covariate: NDArray) -> NDArray: ...


def _positive(value: float, where: str, expected: str) -> float:
    value = _finite_float(value, where, expected)
    if value <= 0:
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


@dataclass(frozen=True)
class Linear:
    """Log-linear response: ``exp(slope_per_unit·(x − reference))``.

    WHAM's linear effect "on the transformed parameter (log)"; a slope of 0 is no effect.
    ``slope_per_unit`` is per unit of the covariate (per °C for temperature).
    """

    slope_per_unit: float
    reference: float

    def __post_init__(self) -> None:
        _finite_float(self.slope_per_unit, "Linear.slope_per_unit")
        _finite_float(self.reference, "Linear.reference")

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        return np.exp(self.slope_per_unit * (x - self.reference))


@dataclass(frozen=True)
class Q10:
    """Metabolic Q10 scaling: ``q10 ** ((T − reference_c)/10)``; ``q10 = 1`` is no effect."""

    q10: float
    reference_c: float

    def __post_init__(self) -> None:
        _positive(self.q10, "Q10.q10", "a positive Q10")
        _finite_float(self.reference_c, "Q10.reference_c", "a finite temperature in degC")

    def __call__(self, covariate: NDArray) -> NDArray:
        t = np.asarray(covariate, dtype=float)
        return np.power(self.q10, (t - self.reference_c) / 10.0)


@dataclass(frozen=True)
class Arrhenius:
    """Boltzmann-Arrhenius scaling: ``exp(E/k·(1/T_ref − 1/T))`` with T in kelvin.

    ``activation_energy_ev`` E in eV (metabolic theory: ~0.65 eV); k is
    :data:`ARRHENIUS_BOLTZMANN_EV_PER_K`. E = 0 is no effect.
    """

    activation_energy_ev: float
    reference_c: float

    def __post_init__(self) -> None:
        _finite_float(self.activation_energy_ev, "Arrhenius.activation_energy_ev", "a finite energy in eV")
        _finite_float(self.reference_c, "Arrhenius.reference_c", "a finite temperature in degC")
        if self.reference_c <= -KELVIN_OFFSET:
            raise ConfigError(f"Arrhenius.reference_c: expected a temperature above absolute zero, "
                              f"got {self.reference_c!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        t_k = np.asarray(covariate, dtype=float) + KELVIN_OFFSET
        if np.any(t_k <= 0):
            raise ConfigError("Arrhenius: covariate below absolute zero; expected temperatures in degC")
        ref_k = self.reference_c + KELVIN_OFFSET
        return np.exp(self.activation_energy_ev / ARRHENIUS_BOLTZMANN_EV_PER_K * (1.0 / ref_k - 1.0 / t_k))


@dataclass(frozen=True)
class ThermalDome:
    """Gaussian thermal-performance curve normalised to 1 at ``reference_c``.

    ``g(T) = exp(−½((T − optimum_c)/width_c)²)``; multiplier ``(g(T)/g(reference_c))**strength``.
    ``strength`` in [0, 1] blends towards no effect on the log scale (0 = exactly 1, 1 = the
    full dome; equivalently the dome widens to ``width_c/√strength``). The Gaussian has no
    hard zero: far from the optimum it is small but positive, so a warm year never makes a
    process impossible (floating-point underflow aside, beyond ~38 widths).
    """

    optimum_c: float
    width_c: float
    reference_c: float
    strength: float = 1.0

    def __post_init__(self) -> None:
        _finite_float(self.optimum_c, "ThermalDome.optimum_c", "a finite temperature in degC")
        _positive(self.width_c, "ThermalDome.width_c", "a positive width in degC")
        _finite_float(self.reference_c, "ThermalDome.reference_c", "a finite temperature in degC")
        s = _finite_float(self.strength, "ThermalDome.strength", "a strength in [0, 1]")
        if not 0.0 <= s <= 1.0:
            raise ConfigError(f"ThermalDome.strength: expected a strength in [0, 1], got {s!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        t = np.asarray(covariate, dtype=float)
        if self.strength == 0.0:
            return np.ones_like(t)
        z, z_ref = (t - self.optimum_c) / self.width_c, (self.reference_c - self.optimum_c) / self.width_c
        return np.exp(-0.5 * self.strength * (z * z - z_ref * z_ref))


@dataclass(frozen=True)
class Logistic:
    """Threshold response normalised to 1 at ``reference``.

    ``f(x) = 1 + max_effect·σ((x − threshold)/scale)`` with σ the logistic function, and the
    multiplier ``f(x)/f(reference)``. Far above the threshold the rate is ``1 + max_effect``
    times the rate far below (``max_effect`` > −1: −0.5 halves, +1 doubles); ``scale`` > 0 is
    the width of the transition in covariate units.
    """

    threshold: float
    scale: float
    reference: float
    max_effect: float

    def __post_init__(self) -> None:
        _finite_float(self.threshold, "Logistic.threshold")
        _positive(self.scale, "Logistic.scale", "a positive scale in covariate units")
        _finite_float(self.reference, "Logistic.reference")
        m = _finite_float(self.max_effect, "Logistic.max_effect", "a number > -1")
        if m <= -1.0:
            raise ConfigError(f"Logistic.max_effect: expected a number > -1 (the multiplier must stay "
                              f"positive), got {m!r}")

    def _f(self, x: NDArray | float) -> NDArray:
        z = (np.asarray(x, dtype=float) - self.threshold) / self.scale
        return 1.0 + self.max_effect * (0.5 * (1.0 + np.tanh(0.5 * z)))   # σ(z) without overflow

    def __call__(self, covariate: NDArray) -> NDArray:
        return self._f(covariate) / self._f(self.reference)


@dataclass(frozen=True)
class UserResponse:
    """Any Python callable ``array → multiplier``, checked at every call.

    The output must have the input's shape, be finite and be non-negative; otherwise a
    :class:`ConfigError` names ``name``. With ``normalise_at`` the output is divided by the
    function's value there, so the multiplier is 1 at that reference.
    """

    function: Callable[[NDArray], ArrayLike]
    name: str
    normalise_at: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise ConfigError(f"UserResponse {self.name!r}: expected a callable, got {self.function!r}")
        if self.normalise_at is not None:
            _finite_float(self.normalise_at, f"UserResponse {self.name!r}.normalise_at")

    def _evaluate(self, x: NDArray) -> NDArray:
        try:
            out = np.asarray(self.function(x), dtype=float)
        except Exception as exc:   # a user's function: report it as a configuration error
            raise ConfigError(f"UserResponse {self.name!r}: the function raised "
                              f"{type(exc).__name__}: {exc}") from exc
        if out.shape != x.shape:
            raise ConfigError(f"UserResponse {self.name!r}: expected an output of the input's shape "
                              f"{x.shape}, got {out.shape}")
        if not np.all(np.isfinite(out)):
            raise ConfigError(f"UserResponse {self.name!r}: expected finite multipliers, got "
                              f"{out[~np.isfinite(out)].ravel()[0]!r}")
        if np.any(out < 0):
            raise ConfigError(f"UserResponse {self.name!r}: expected non-negative multipliers, got "
                              f"{out[out < 0].ravel()[0]!r}")
        return out

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        out = self._evaluate(x)
        if self.normalise_at is None:
            return out
        ref = self._evaluate(np.asarray([self.normalise_at], dtype=float))[0]
        if ref <= 0:
            raise ConfigError(f"UserResponse {self.name!r}: expected a positive value at normalise_at = "
                              f"{self.normalise_at!r}, got {ref!r}")
        return out / ref


@dataclass(frozen=True)
class Scaled:
    """A response with its log-effect scaled: ``response(x) ** strength`` (0 = no effect)."""

    response: Response
    strength: float

    def __post_init__(self) -> None:
        s = _finite_float(self.strength, "Scaled.strength", "a non-negative strength")
        if s < 0:
            raise ConfigError(f"Scaled.strength: expected a non-negative strength, got {s!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        if self.strength == 0.0:
            return np.ones_like(x)
        return np.power(np.asarray(self.response(x), dtype=float), self.strength)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class CovariateEffect:
    """A response to a named covariate acting on one process, with a lag.

    Attributes
    ----------
    target : {"growth", "natural_mortality", "recruitment", "maturity"}
        Multiplies von Bertalanffy K of the year (every cohort), M, expected recruits, or the
        length at 50 % maturity.
    response : Response
        Covariate → multiplier.
    covariate : str
        Key of the covariate in the mapping given to :func:`effect_multipliers`.
    lag_years : int
        Year y uses the covariate of year ``y − lag_years`` (>= 0).
    note : str
        Provenance of the choice ([M]/[R]/[A] and source_ids).
    """

    target: Target
    response: Response
    covariate: str = "temperature_c"
    lag_years: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"CovariateEffect.target: expected one of {', '.join(TARGETS)}, "
                              f"got {self.target!r}")
        if not callable(self.response):
            raise ConfigError(f"CovariateEffect.response: expected a response function, "
                              f"got {self.response!r}")
        if not isinstance(self.covariate, str) or not self.covariate:
            raise ConfigError(f"CovariateEffect.covariate: expected a covariate name, got {self.covariate!r}")
        lag = self.lag_years
        if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
            raise ConfigError(f"CovariateEffect.lag_years: expected a non-negative integer, got {lag!r}")


@dataclass(frozen=True)
class Covariate:
    """Covariate values on their own years: ``values`` (*batch, year) over ``year`` (year,)."""

    year: NDArray
    values: NDArray

    def __post_init__(self) -> None:
        year = _year_array(self.year, "Covariate.year")
        values = np.asarray(self.values, dtype=float)
        if values.ndim == 0 or values.shape[-1] != year.size:
            raise ConfigError(f"Covariate.values: expected a last (year) axis of length {year.size}, "
                              f"got shape {values.shape}")
        object.__setattr__(self, "year", _read_only(year, np.int64))
        object.__setattr__(self, "values", _read_only(values))


def _as_covariate(name: str, value: Any, years: NDArray) -> tuple[NDArray | None, NDArray]:
    """(years or None, values with year last) of one entry of the covariates mapping."""
    if isinstance(value, xr.DataArray):
        if "year" not in value.dims:
            raise ConfigError(f"covariates[{name!r}]: expected a DataArray with a 'year' dimension, "
                              f"got dims {value.dims}")
        value = value.transpose(..., "year")
        return _year_array(value["year"].values, f"covariates[{name!r}].year"), value.values.astype(float)
    if isinstance(value, EnvSeries | Covariate | ProjectedCovariate):
        return np.asarray(value.year), np.asarray(value.values, dtype=float)
    array = np.asarray(value, dtype=float)
    if array.ndim == 0 or array.shape[-1] != years.size:
        raise ConfigError(f"covariates[{name!r}]: an array without a year coordinate must have a last "
                          f"axis of length {years.size} (the model years), got shape {array.shape}; "
                          f"pass a Covariate(year, values), EnvSeries or DataArray to align by year")
    return None, array


def _aligned(name: str, value: Any, years: NDArray, effect: CovariateEffect) -> NDArray:
    """Covariate values (*batch, len(years)) at the years ``years − lag``."""
    own_years, array = _as_covariate(name, value, years)
    needed = years - int(effect.lag_years)
    if own_years is None:
        if effect.lag_years:
            raise ConfigError(f"covariates[{name!r}]: the {effect.target} effect has lag {effect.lag_years}, "
                              f"which needs the covariate in {needed[0]}-{needed[-1]}; give it with its "
                              f"years (Covariate, EnvSeries, ProjectedCovariate or DataArray)")
        out = array
    else:
        index = needed - own_years[0]
        missing = needed[(index < 0) | (index >= own_years.size)]
        if missing.size:
            raise ConfigError(
                f"covariates[{name!r}] covers {own_years[0]}-{own_years[-1]}; the {effect.target} effect "
                f"(lag {effect.lag_years} yr) needs {needed[0]}-{needed[-1]}, "
                f"missing {_year_list(missing.tolist())}"
            )
        out = array[..., index]
    if not np.all(np.isfinite(out)):
        raise ConfigError(f"covariates[{name!r}]: expected finite values in {needed[0]}-{needed[-1]}")
    return out


def effect_multipliers(effects: Sequence[CovariateEffect], covariates: Mapping[str, Any],
                       years: ArrayLike) -> ProcessMultipliers:
    """Per-year process multipliers of a set of effects.

    Parameters
    ----------
    effects : sequence of CovariateEffect
        Several effects on one target multiply.
    covariates : mapping name → covariate
        Each an :class:`EnvSeries`, :class:`Covariate`, :class:`ProjectedCovariate` or
        ``xarray.DataArray`` with a ``year`` dimension (aligned by year, so the covariate may
        start earlier for lags), or a bare array ``(*batch, year)`` already on ``years``
        (lag 0 only). Batch shapes of different covariates broadcast.
    years : sequence of int, shape (year,)
        The simulated years (contiguous), in the engine's order.

    Returns
    -------
    ProcessMultipliers
        ``growth_k``, ``natural_mortality``, ``recruitment``, ``maturity_l50``: each 1.0 when no
        effect acts on it, else an array ``(*batch, year)``. Year index i uses covariate year
        ``years[i] − lag``.

    Raises
    ------
    ConfigError
        A covariate is missing, lacks the years an effect (and its lag) needs, is not finite,
        or a response returns a negative or non-finite multiplier (the message names it).
    """
    years = _year_array(years, "effect_multipliers.years")
    products: dict[str, NDArray] = {}
    for effect in effects:
        if not isinstance(effect, CovariateEffect):
            raise ConfigError(f"effect_multipliers: expected CovariateEffect items, got {effect!r}")
        if effect.covariate not in covariates:
            raise ConfigError(f"effect on {effect.target}: covariate {effect.covariate!r} not given; "
                              f"available: {', '.join(covariates) or 'none'}")
        x = _aligned(effect.covariate, covariates[effect.covariate], years, effect)
        m = np.asarray(effect.response(x), dtype=float)
        if m.shape != x.shape or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ConfigError(f"effect on {effect.target} ({type(effect.response).__name__} of "
                              f"{effect.covariate!r}): expected finite non-negative multipliers of shape "
                              f"{x.shape}, got shape {m.shape}")
        products[effect.target] = m if effect.target not in products else products[effect.target] * m
    return ProcessMultipliers(**{TARGET_FIELDS[t]: products.get(t, 1.0) for t in TARGETS})


def default_effects(*, reference_lake_c: float = REFERENCE_LAKE_C,
                    spawning_offset_c: float = SPAWNING_OFFSET_C) -> tuple[CovariateEffect, ...]:
    """The default temperature effects, all at lag 0, each 1 at the reference temperature.

    ``reference_lake_c`` [A] is the lake temperature the fitted parameters describe (default
    16.5 °C, the 2000-2024 mean of the bundled assumed series; use the fit-period mean of a
    real series). Multipliers at the reference (spawning 12.5 °C, lake 16.5 °C) and at +2 /
    +4 °C warming of both:

    ==================  ===========================================  ======  ======  ======
    target              response                                     +0      +2 °C   +4 °C
    ==================  ===========================================  ======  ======  ======
    recruitment         ThermalDome(12.55, 2.5) on spawning temp.    1       0.738   0.287
    growth (K)          ThermalDome(15.0, 6.0) on lake temp.         1       0.870   0.678
    natural_mortality   Q10(1.5) on lake temp.                       1       1.084   1.176
    maturity (L50)      Linear(0) — none                             1       1       1
    ==================  ===========================================  ======  ======  ======

    - **recruitment** — ThermalDome on ``spawning_temperature_c``: optimum 12.55 °C, the
      midpoint of the suitable spawning temperature 10.8-14.3 °C [M, lab, Zhou et al. 2022];
      width 2.5 °C [A], strength 1 [A]. Relative to the peak: 6 °C → 0.032, 17 °C → 0.205
      (lab: no spawning at ≤6 or ≥17 °C). The covariate is a season mean and daily river
      temperatures spread around it, so a season mean of 17 °C still has spawning days; hence
      small but non-zero, never a hard zero. The baseline 12.5 °C is within 0.05 °C of the
      optimum (≥ 0.999 of the peak).
    - **growth** — ThermalDome on ``temperature_c`` (lake summer surface): optimum 15 °C [A,
      proxy: the congener Schizopygopsis younghusbandi grew best at 15 °C of 10/15/20 °C, not
      measured for G. przewalskii]; width 6 °C [A] (the proxy still grew at 20 °C: 0.71 of the
      peak at +5 °C); with the lake at ~16.5 °C warming is mildly harmful. The sensitivity
      must span benefit and harm: :data:`GROWTH_OPTIMUM_RANGE_C` (14-20 °C).
    - **natural_mortality** — Q10 = 1.5 on M [A, metabolic scaling; no species data].
    - **maturity** — none by default (Linear with slope 0); :func:`sensitivity_effects` uses
      :data:`MATURITY_SENSITIVITY_SLOPE_PER_C`.
    """
    ref = _finite_float(reference_lake_c, "default_effects.reference_lake_c", "a finite temperature in degC")
    spawn_ref = ref + _finite_float(spawning_offset_c, "default_effects.spawning_offset_c")
    return (
        CovariateEffect("recruitment", ThermalDome(SPAWNING_OPTIMUM_C, RECRUITMENT_WIDTH_C, spawn_ref, 1.0),
                        "spawning_temperature_c", 0,
                        "optimum 12.55 degC [M] Zhou et al. 2022 (lab, 10.8-14.3 degC); width 2.5 degC [A]"),
        CovariateEffect("growth", ThermalDome(GROWTH_OPTIMUM_C, GROWTH_WIDTH_C, ref, 1.0), "temperature_c", 0,
                        "optimum 15 degC [A] proxy S. younghusbandi; width 6 degC [A]"),
        CovariateEffect("natural_mortality", Q10(M_Q10, ref), "temperature_c", 0,
                        "Q10 = 1.5 [A] metabolic"),
        CovariateEffect("maturity", Linear(0.0, ref), "temperature_c", 0, "no effect by default [A]"),
    )


def with_strength(effect: CovariateEffect, strength: float) -> CovariateEffect:
    """The effect with its log-multiplier scaled by ``strength`` (multiplier ** strength).

    0 = no effect, 1 = unchanged. Written back into the response's own parameter where that is
    exact (ThermalDome strength ≤ 1, Linear slope, Q10 exponent), else wrapped in :class:`Scaled`.
    """
    s = _finite_float(strength, "strength", "a non-negative strength")
    if s < 0:
        raise ConfigError(f"strength: expected a non-negative strength, got {s!r}")
    r = effect.response
    if s == 1.0:
        return effect
    if isinstance(r, ThermalDome) and r.strength * s <= 1.0:
        new: Response = replace(r, strength=r.strength * s)
    elif isinstance(r, Linear):
        new = replace(r, slope_per_unit=r.slope_per_unit * s)
    elif isinstance(r, Q10):
        new = replace(r, q10=r.q10 ** s)
    else:
        new = Scaled(r, s)
    suffix = f"strength x{s:g}"
    return replace(effect, response=new, note=f"{effect.note}; {suffix}" if effect.note else suffix)


def sensitivity_effects(target: Target, strength: float = 1.0, *, growth_optimum_c: float | None = None,
                        others: Literal["default", "none"] = "default",
                        reference_lake_c: float = REFERENCE_LAKE_C,
                        spawning_offset_c: float = SPAWNING_OFFSET_C) -> tuple[CovariateEffect, ...]:
    """Effects for one cell of the climate sensitivity sweep.

    The effect on ``target`` is scaled by ``strength`` (see :func:`with_strength`; the
    strengths to sweep are :data:`EFFECT_STRENGTH_RANGES`); for ``maturity``, whose default is
    no effect, strength 1 is ``Linear(MATURITY_SENSITIVITY_SLOPE_PER_C)``. For ``growth``,
    ``growth_optimum_c`` replaces the dome optimum (sweep :data:`GROWTH_OPTIMUM_RANGE_C`: warming
    harms growth for an optimum below ~16.5 °C and helps above). The other targets keep their
    default effects (``others="default"``) or have none (``others="none"``: one pathway alone).
    """
    if target not in TARGETS:
        raise ConfigError(f"target: expected one of {', '.join(TARGETS)}, got {target!r}")
    if others not in ("default", "none"):
        raise ConfigError(f"others: expected 'default' or 'none', got {others!r}")
    out = []
    for effect in default_effects(reference_lake_c=reference_lake_c, spawning_offset_c=spawning_offset_c):
        if effect.target != target:
            if others == "default":
                out.append(effect)
            continue
        if target == "maturity":
            effect = replace(effect, response=Linear(MATURITY_SENSITIVITY_SLOPE_PER_C, reference_lake_c),
                             note="L50 -2 %/degC [A] temperature-size rule, magnitude illustrative")
        if target == "growth" and growth_optimum_c is not None:
            optimum = _finite_float(growth_optimum_c, "growth_optimum_c", "a finite temperature in degC")
            effect = replace(effect, response=replace(effect.response, optimum_c=optimum),
                             note=f"optimum {optimum:g} degC [A] sensitivity; width 6 degC [A]")
        out.append(with_strength(effect, strength))
    return tuple(out)


# --------------------------------------------------------------------------- climate scenarios


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


_SCENARIO_KEYS = ("label", "air_warming_c", "trend_c_per_decade", "source_id", "confidence", "note")
_SCENARIO_REQUIRED = ("label", "air_warming_c", "trend_c_per_decade", "source_id", "confidence")
_CLIMATE_TABLES = ("reference", "scenarios", "anomalies")


def _climate_document(data: DataSet | Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(file name for messages, parsed TOML) of a DataSet or a plain mapping."""
    if isinstance(data, DataSet):
        path = data.files.get(CLIMATE_FILE)
        if path is None or not data.climate_scenarios:
            raise DataError(f"{data.directory / CLIMATE_FILE}: no climate scenarios file was found "
                            f"(nor a bundled one); expected tables {', '.join(_CLIMATE_TABLES)}")
        document = data.climate_scenarios
        where = str(path)
    else:
        where, document = CLIMATE_FILE, data
    for key in document:
        if key not in _CLIMATE_TABLES:
            raise DataError(f"{where}, key {key}: unknown table; valid tables: {', '.join(_CLIMATE_TABLES)}")
    return where, document


def _toml_number(value: Any, where: str, expected: str = "a finite number") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: expected {expected}, got {value!r}")
    return float(value)


def _valued(table: Any, where: str) -> Mapping[str, Any]:
    """A ``{value, source_id, confidence, ...}`` table (or a bare number)."""
    if isinstance(table, int | float) and not isinstance(table, bool):
        return {"value": table}
    if not isinstance(table, Mapping) or "value" not in table:
        raise DataError(f"{where}: expected a table with keys value, source_id, confidence, got {table!r}")
    return table


def load_climate_reference(data: DataSet | Mapping[str, Any]) -> ClimateReference:
    """The ``[reference]`` table of ``climate_scenarios.toml`` (defaults where absent)."""
    where, document = _climate_document(data)
    table = document.get("reference", {})
    if not isinstance(table, Mapping):
        raise DataError(f"{where}, key reference: expected a table, got {table!r}")
    period = table.get("period", [1995, 2014])
    if (not isinstance(period, list | tuple) or len(period) != 2
            or not all(isinstance(y, int) and not isinstance(y, bool) for y in period)
            or period[0] > period[1]):
        raise DataError(f"{where}, key reference.period: expected [first_year, last_year], got {period!r}")
    ratio_table = _valued(table.get("air_to_water_ratio", {"value": 0.5}),
                          f"{where}, key reference.air_to_water_ratio")
    ratio = _toml_number(ratio_table["value"], f"{where}, key reference.air_to_water_ratio.value",
                         "a ratio >= 0")
    lower = _toml_number(ratio_table.get("lower", ratio), f"{where}, key reference.air_to_water_ratio.lower")
    upper = _toml_number(ratio_table.get("upper", ratio), f"{where}, key reference.air_to_water_ratio.upper")
    if not 0 <= lower <= ratio <= upper:
        raise DataError(f"{where}, key reference.air_to_water_ratio: expected 0 <= lower <= value <= upper, "
                        f"got {lower!r}, {ratio!r}, {upper!r}")
    return ClimateReference((int(period[0]), int(period[1])), ratio, (lower, upper),
                            str(ratio_table.get("source_id", "")), str(ratio_table.get("confidence", "")))


def load_scenarios(data: DataSet | Mapping[str, Any]) -> dict[str, ClimateScenario]:
    """Typed climate scenarios from ``data.climate_scenarios`` (the parsed TOML).

    Each ``[scenarios.<name>]`` needs ``label``, ``air_warming_c`` (``{year = °C}``, years after
    the reference midpoint and ≤ 2100), ``trend_c_per_decade``, ``source_id``, ``confidence``;
    ``note`` is optional.

    Raises
    ------
    DataError
        Naming the file and the dotted key (``scenarios.ssp245.air_warming_c.2050``) with what
        was expected and found.
    """
    where, document = _climate_document(data)
    reference_year = load_climate_reference(data).reference_year
    tables = document.get("scenarios")
    if not isinstance(tables, Mapping) or not tables:
        raise DataError(f"{where}, key scenarios: expected one [scenarios.<name>] table per scenario, "
                        f"got {tables!r}")
    out: dict[str, ClimateScenario] = {}
    for name, table in tables.items():
        key = f"scenarios.{name}"
        if not isinstance(table, Mapping):
            raise DataError(f"{where}, key {key}: expected a table with keys "
                            f"{', '.join(_SCENARIO_REQUIRED)}, got {table!r}")
        for k in table:
            if k not in _SCENARIO_KEYS:
                raise DataError(f"{where}, key {key}.{k}: unknown key; valid keys: "
                                f"{', '.join(_SCENARIO_KEYS)}")
        for k in _SCENARIO_REQUIRED:
            if k not in table:
                raise DataError(f"{where}, key {key}.{k}: missing; every scenario needs "
                                f"{', '.join(_SCENARIO_REQUIRED)}")
        for k in ("label", "source_id", "note"):
            if not isinstance(table.get(k, ""), str) or (k != "note" and not table[k]):
                raise DataError(f"{where}, key {key}.{k}: expected a non-empty string, got {table.get(k)!r}")
        if table["confidence"] not in CONFIDENCE_LEVELS:
            raise DataError(f"{where}, key {key}.confidence: expected one of {', '.join(CONFIDENCE_LEVELS)}, "
                            f"got {table['confidence']!r}")
        warming_table = table["air_warming_c"]
        if not isinstance(warming_table, Mapping):
            raise DataError(f"{where}, key {key}.air_warming_c: expected a table {{year = degC}}, "
                            f"got {warming_table!r}")
        warming: dict[int, float] = {}
        for year_text, value in warming_table.items():
            k = f"{key}.air_warming_c.{year_text}"
            try:
                year = int(year_text)
            except ValueError:
                year = None
            if year is None or not reference_year < year <= 2100:
                raise DataError(f"{where}, key {k}: expected a year in {reference_year + 1}..2100 "
                                f"(period midpoint), got {year_text!r}")
            warming[year] = _toml_number(value, f"{where}, key {k}", "a finite warming in degC")
        trend = _toml_number(table["trend_c_per_decade"], f"{where}, key {key}.trend_c_per_decade",
                             "a finite trend in degC/decade")
        out[name] = ClimateScenario(name, table["label"], warming, trend, table["source_id"],
                                    table["confidence"], table.get("note", ""))
    return out


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
    ratio = _finite_float(air_to_water_ratio, "air_to_water_ratio", "a ratio >= 0")
    if ratio < 0:
        raise ConfigError(f"air_to_water_ratio: expected a ratio >= 0, got {ratio!r}")
    start = _finite_float(start_year, "start_year", "a finite year")
    y = np.asarray(years, dtype=float)
    air = _air_warming_c(scenario, y, reference_year)
    air_start = _air_warming_c(scenario, np.array([start]), reference_year)[0]
    return ratio * (air - air_start)


# --------------------------------------------------------------------------- anomalies


@dataclass(frozen=True)
class AnomalyModel:
    """Inter-annual anomalies of a covariate: a zero-mean ARMA(p, q) process.

    ``x_t = Σ ar_i·x_{t−i} + e_t + Σ ma_j·e_{t−j}``, ``e_t ~ N(0, innovation_sd²)``.

    Attributes
    ----------
    ar, ma : tuple of float
        AR and MA coefficients (statsmodels sign convention for ``arparams``/``maparams``).
    innovation_sd : float
        SD of the innovations e, in the covariate's unit.
    source : str
        How the model was obtained (fitted order and AIC, or the assumed TOML values).
    confidence : str
        ``measured`` when fitted to an observed series, ``assumed`` otherwise.
    recent_anomalies : tuple of float
        Last ``p`` anomalies of the series (oldest first): the state a conditional path
        (``beyond_series = "continue_process"``) starts from.
    recent_innovations : tuple of float
        Last ``q`` innovations of the series (oldest first).
    aic : float or None
        AIC of the chosen fit.
    """

    ar: tuple[float, ...] = ()
    ma: tuple[float, ...] = ()
    innovation_sd: float = 0.0
    source: str = ""
    confidence: str = "assumed"
    recent_anomalies: tuple[float, ...] = ()
    recent_innovations: tuple[float, ...] = ()
    aic: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ar", tuple(float(a) for a in self.ar))
        object.__setattr__(self, "ma", tuple(float(m) for m in self.ma))
        object.__setattr__(self, "recent_anomalies", tuple(float(a) for a in self.recent_anomalies))
        object.__setattr__(self, "recent_innovations", tuple(float(a) for a in self.recent_innovations))
        sd = _finite_float(self.innovation_sd, "AnomalyModel.innovation_sd", "a non-negative SD")
        if sd < 0:
            raise ConfigError(f"AnomalyModel.innovation_sd: expected a non-negative SD, got {sd!r}")
        if self.ar:
            roots = np.roots(np.r_[-np.asarray(self.ar)[::-1], 1.0])   # 1 − Σ ar_i z^i = 0
            if np.any(np.abs(roots) <= 1.0 + 1e-9):
                raise ConfigError(f"AnomalyModel.ar: expected a stationary AR part, got {self.ar}")

    @property
    def order(self) -> tuple[int, int]:
        return len(self.ar), len(self.ma)

    @property
    def phi(self) -> float:
        """The AR(1) coefficient (0 for white noise); refused for other orders."""
        if self.ma or len(self.ar) > 1:
            raise ConfigError(f"AnomalyModel.phi: defined for AR(1) or white noise, this is ARMA{self.order}")
        return self.ar[0] if self.ar else 0.0

    @cached_property
    def marginal_sd(self) -> float:
        """Stationary SD of the anomalies (computed once per model: projections ask per draw)."""
        from statsmodels.tsa.arima_process import arma_acovf

        if self.innovation_sd == 0:
            return 0.0
        acov = arma_acovf(np.r_[1.0, -np.asarray(self.ar)], np.r_[1.0, np.asarray(self.ma)], nobs=1,
                          sigma2=self.innovation_sd ** 2)
        return float(np.sqrt(acov[0]))

    def describe(self) -> str:
        p, q = self.order
        return f"ARMA({p},{q}), innovation sd {self.innovation_sd:.3g}, {self.confidence}: {self.source}"

    @classmethod
    def ar1(cls, phi: float, marginal_sd: float, *, source: str = "", confidence: str = "assumed",
            recent_anomaly: float = 0.0) -> AnomalyModel:
        """AR(1) with stationary SD ``marginal_sd`` (innovation SD ``marginal_sd·√(1 − φ²)``)."""
        phi = _finite_float(phi, "AnomalyModel.ar1.phi", "a coefficient in (-1, 1)")
        if not -1 < phi < 1:
            raise ConfigError(f"AnomalyModel.ar1.phi: expected a coefficient in (-1, 1), got {phi!r}")
        sd = _finite_float(marginal_sd, "AnomalyModel.ar1.marginal_sd", "a non-negative SD")
        return cls((phi,) if phi else (), (), sd * math.sqrt(1 - phi * phi), source, confidence,
                   (recent_anomaly,) if phi else ())

    @classmethod
    def from_climate_file(cls, data: DataSet | Mapping[str, Any],
                          series: EnvSeries | None = None) -> AnomalyModel:
        """The ASSUMED AR(1) of ``[anomalies]`` (``ar1_phi`` 0.3, ``sd_c`` 0.3 °C marginal SD).

        With ``series`` the last detrended value of the series is recorded as the state a
        conditional (``continue_process``) path starts from.
        """
        where, document = _climate_document(data)
        table = document.get("anomalies")
        if not isinstance(table, Mapping):
            raise DataError(f"{where}, key anomalies: expected a table with ar1_phi and sd_c, got {table!r}")
        values = {}
        for key in ("ar1_phi", "sd_c"):
            if key not in table:
                raise DataError(f"{where}, key anomalies.{key}: missing; [anomalies] needs ar1_phi and sd_c")
            entry = _valued(table[key], f"{where}, key anomalies.{key}")
            values[key] = _toml_number(entry["value"], f"{where}, key anomalies.{key}.value")
            sid = entry.get("source_id", "")
            values[key + "_source"] = f"{sid} ({entry.get('confidence', 'assumed')})" if sid else "assumed"
        if not -1 < values["ar1_phi"] < 1:
            raise DataError(f"{where}, key anomalies.ar1_phi.value: expected a coefficient in (-1, 1), "
                            f"got {values['ar1_phi']!r}")
        if values["sd_c"] < 0:
            raise DataError(f"{where}, key anomalies.sd_c.value: expected an SD >= 0 degC, "
                            f"got {values['sd_c']!r}")
        recent = float(_detrended(series)[-1]) if series is not None else 0.0
        source = (f"ASSUMED AR(1) phi {values['ar1_phi']:g} [{values['ar1_phi_source']}], marginal sd "
                  f"{values['sd_c']:g} degC [{values['sd_c_source']}] from {where} [anomalies]")
        return cls.ar1(values["ar1_phi"], values["sd_c"], source=source, confidence="assumed",
                       recent_anomaly=recent)

    @classmethod
    def fit(cls, series: EnvSeries, *,
            orders: Sequence[tuple[int, int]] = DEFAULT_ARMA_ORDERS) -> AnomalyModel:
        """Fit ARMA(p, q) by maximum likelihood to the linearly detrended series; lowest AIC wins.

        Uses ``statsmodels.tsa.arima.model.ARIMA(order=(p, 0, q), trend="n")``. Filled years
        enter as missing values (the Kalman filter skips them), so interpolation does not
        shrink the variance. ``confidence`` is ``measured`` for an observed series, else the
        series' label is kept as ``derived`` (a model of assumed numbers is still assumed —
        prefer :meth:`from_climate_file` then).
        """
        from statsmodels.tsa.arima.model import ARIMA

        if not orders:
            raise ConfigError("AnomalyModel.fit.orders: expected at least one (p, q) order")
        x = _detrended(series)
        x = np.where(series.filled_mask, np.nan, x)
        best = None
        for p, q in orders:
            if p < 0 or q < 0:
                raise ConfigError(f"AnomalyModel.fit.orders: expected non-negative (p, q), got {(p, q)}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # optimiser chatter; the AIC comparison decides
                result = ARIMA(x, order=(p, 0, q), trend="n").fit()
            if not np.isfinite(result.aic):
                continue
            if best is None or result.aic < best[0].aic:
                best = (result, p, q)
        if best is None:
            raise ConfigError(f"AnomalyModel.fit: no ARMA order could be fitted to {series.name!r}")
        result, p, q = best
        sigma2 = float(result.params[-1])
        innovations = np.asarray(result.resid, dtype=float)
        observed_x = x[~np.isnan(x)]
        source = (f"ARMA({p},{q}) fitted by statsmodels ARIMA to the linearly detrended {series.name} "
                  f"{series.first_year}-{series.last_year} ({observed_x.size} values), lowest AIC "
                  f"{result.aic:.2f} among {', '.join(f'({a},{b})' for a, b in orders)}")
        return cls(tuple(result.arparams), tuple(result.maparams), math.sqrt(max(sigma2, 0.0)), source,
                   "measured" if series.observed else "derived",
                   tuple(np.nan_to_num(x[len(x) - p:])) if p else (),
                   tuple(innovations[len(innovations) - q:]) if q else (), float(result.aic))

    @classmethod
    def for_series(cls, series: EnvSeries, data: DataSet | Mapping[str, Any] | None = None, *,
                   min_years: int = 20,
                   orders: Sequence[tuple[int, int]] = DEFAULT_ARMA_ORDERS) -> AnomalyModel:
        """Fitted where the series is observed (≥ ``min_years`` values), assumed otherwise.

        The assumed model (``[anomalies]`` of ``climate_scenarios.toml``) describes summer water
        temperature anomalies, so it is refused for a covariate whose unit is not ``degC``;
        build one with :meth:`ar1` instead. ``source`` says which was used and why.
        """
        n_values = int((~series.filled_mask).sum())
        if series.observed and n_values >= min_years:
            return cls.fit(series, orders=orders)
        if series.unit != "degC":
            raise ConfigError(f"AnomalyModel.for_series: {series.name!r} ({series.unit!r}) is not observed "
                              f"with >= {min_years} values and the assumed [anomalies] describe water "
                              f"temperature; give AnomalyModel.ar1(phi, sd) for it")
        if data is None:
            raise ConfigError("AnomalyModel.for_series: the series is not observed; pass the data "
                              "(climate_scenarios.toml [anomalies]) for the assumed AR(1)")
        model = cls.from_climate_file(data, series)
        why = "assumed series" if not series.observed else f"only {n_values} observed values (< {min_years})"
        return replace(model, source=f"{model.source}; not fitted: {why}")

    def _run(self, innovations: NDArray, x_hist: list[float], e_hist: list[float]) -> NDArray:
        p, q = self.order
        out = np.empty(innovations.size)
        x_hist, e_hist = list(x_hist), list(e_hist)
        for t, e in enumerate(innovations):
            value = e
            for i in range(p):
                value += self.ar[i] * x_hist[-1 - i]
            for j in range(q):
                value += self.ma[j] * e_hist[-1 - j]
            out[t] = value
            x_hist.append(value)
            e_hist.append(e)
        return out

    def _history(self) -> tuple[list[float], list[float]]:
        p, q = self.order
        x_recent, e_recent = list(self.recent_anomalies)[-p:] if p else [], \
            list(self.recent_innovations)[-q:] if q else []
        return [0.0] * (p - len(x_recent)) + x_recent, [0.0] * (q - len(e_recent)) + e_recent

    def sample(self, rng: np.random.Generator, n_years: int, *, conditional: bool = False) -> NDArray:
        """One anomaly path of ``n_years`` from ``rng``, shape (n_years,), covariate unit.

        ``conditional=False`` (default): stationary start — exact for AR(1) and white noise
        (first value drawn from the stationary distribution), otherwise after
        :data:`ARMA_BURN_IN` burn-in steps from zero. ``conditional=True``: continues from the
        series' last state (``recent_anomalies``, ``recent_innovations``), for
        ``beyond_series = "continue_process"``. The same generator state gives the same path.
        """
        if isinstance(n_years, bool) or not isinstance(n_years, int | np.integer) or n_years < 0:
            raise ConfigError(f"AnomalyModel.sample.n_years: expected a non-negative integer, "
                              f"got {n_years!r}")
        p, q = self.order
        if conditional:
            x_hist, e_hist = self._history()
            return self._run(rng.standard_normal(n_years) * self.innovation_sd, x_hist, e_hist)
        if q == 0 and p <= 1:
            phi = self.ar[0] if p else 0.0
            z = rng.standard_normal(n_years)
            out = np.empty(n_years)
            if n_years:
                out[0] = z[0] * self.marginal_sd
            for t in range(1, n_years):
                out[t] = phi * out[t - 1] + self.innovation_sd * z[t]
            return out
        e = rng.standard_normal(ARMA_BURN_IN + n_years) * self.innovation_sd
        return self._run(e, [0.0] * p, [0.0] * q)[ARMA_BURN_IN:]

    def expected_path(self, n_years: int) -> NDArray:
        """Forecast mean of the next ``n_years`` anomalies from the last state (innovations 0)."""
        x_hist, e_hist = self._history()
        return self._run(np.zeros(int(n_years)), x_hist, e_hist)


def _detrended(series: EnvSeries) -> NDArray:
    """Series minus its least-squares linear trend (fitted on the non-filled years)."""
    intercept, slope = _linear_trend(series.year, series.values, ~series.filled_mask)
    return series.values - (intercept + slope * series.year)


def sample_anomalies(model: AnomalyModel, rngs: Sequence[np.random.Generator], n_years: int, *,
                     beyond_series: BeyondSeries = "hold_last") -> NDArray:
    """Anomaly paths ``(draw, year)``, one per generator (one generator per draw).

    Conditional on the series' last state for ``continue_process``, stationary otherwise, so
    the array matches what :func:`projected_covariates` expects for that ``beyond_series``.
    """
    if beyond_series not in BEYOND_SERIES:
        raise ConfigError(f"beyond_series: expected one of {', '.join(BEYOND_SERIES)}, got {beyond_series!r}")
    conditional = beyond_series == "continue_process"
    return np.stack([model.sample(rng, n_years, conditional=conditional) for rng in rngs]) if rngs \
        else np.zeros((0, n_years))


# --------------------------------------------------------------------------- projection


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
        object.__setattr__(self, "year", _read_only(self.year, np.int64))
        object.__setattr__(self, "values", _read_only(self.values))

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
    years = _year_array(years, "projected_covariates.years")
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
        base, anchor = _mean_of_years(series, mean_years)
    else:
        base, anchor = _trend_level(series), float(end)
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
    years = _year_array(years, "fit_multipliers.years")
    extended = lake.extend(int(years[0]) - _max_lag(effects), int(years[-1]), beyond_series=beyond_series,
                           mean_years=mean_years, anomaly_model=anomaly_model)
    covariates = {**temperature_covariates(extended, spawning_offset_c=spawning_offset_c),
                  **dict(extra_covariates or {})}
    return effect_multipliers(effects, covariates, years)


@dataclass(frozen=True)
class ClimateForcing:
    """Everything the projection needs to turn random generators into multipliers.

    Call it as ``forcing(randomness, years)`` — the ``build_multipliers`` hook of
    ``projection.ProjectionSetup``: ``randomness.anomaly_rngs`` holds one generator per draw,
    its own child stream (``SeedSequence(seed, spawn_key=(draw, 2))``). Returns
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
    def from_data(cls, data: DataSet, *, scenario_names: Sequence[str] | None = None,
                  effects: Sequence[CovariateEffect] | None = None, air_to_water_ratio: float | None = None,
                  beyond_series: BeyondSeries = "hold_last", mean_years: int = 10,
                  spawning_offset_c: float = SPAWNING_OFFSET_C) -> ClimateForcing:
        """Lake series, scenarios, anomaly model and ratio from a data directory.

        ``scenario_names`` selects and orders scenarios (default: all, file order); unknown
        names raise a ConfigError listing the valid ones. ``effects`` defaults to
        :func:`default_effects`; ``air_to_water_ratio`` to ``[reference]`` of the file.
        """
        lake = EnvSeries.from_temperature(data)
        available = load_scenarios(data)
        names = list(available) if scenario_names is None else list(scenario_names)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ConfigError(f"scenarios: unknown scenario(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(available)}")
        ratio = load_climate_reference(data).air_to_water_ratio if air_to_water_ratio is None \
            else air_to_water_ratio
        return cls(lake, tuple(available[n] for n in names),
                   tuple(default_effects() if effects is None else effects),
                   AnomalyModel.for_series(lake, data), ratio, beyond_series, mean_years, spawning_offset_c)

    def covariates(self, rngs: Sequence[np.random.Generator], years: ArrayLike) -> dict[str, Any]:
        """Projected covariates (lake and spawning season), history included, for these draws."""
        years = _year_array(years, "ClimateForcing.years")
        future = np.arange(min(int(years[0]), self.lake.last_year + 1), int(years[-1]) + 1)
        anomalies = sample_anomalies(self.anomaly_model, rngs, future.size, beyond_series=self.beyond_series)
        lake = projected_covariates(self.lake, self.scenarios, future, anomalies,
                                    air_to_water_ratio=self.air_to_water_ratio,
                                    beyond_series=self.beyond_series, mean_years=self.mean_years)
        return {**temperature_covariates(lake, spawning_offset_c=self.spawning_offset_c),
                **dict(self.extra_covariates)}

    def __call__(self, randomness: Any, years: ArrayLike) -> tuple[ProcessMultipliers, NDArray]:
        years = _year_array(years, "ClimateForcing.years")
        covariates = self.covariates(tuple(randomness.anomaly_rngs), years)
        multipliers = effect_multipliers(self.effects, covariates, years)
        lake: ProjectedCovariate = covariates["temperature_c"]
        temperature = lake.values[..., np.searchsorted(lake.year, years)]
        return multipliers, temperature

    def fit_multipliers(self, years: ArrayLike) -> ProcessMultipliers:
        """Multipliers of the historical years (see :func:`fit_multipliers`)."""
        return fit_multipliers(self.effects, self.lake, years, spawning_offset_c=self.spawning_offset_c,
                               beyond_series=self.beyond_series, mean_years=self.mean_years,
                               anomaly_model=self.anomaly_model, extra_covariates=self.extra_covariates)

