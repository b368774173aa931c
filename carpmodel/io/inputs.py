"""Read and validate a carpmodel data directory into frozen, typed inputs.

A data directory holds (see DESIGN.md "Contracts" and the data schema):

=============================  ========  ===============================================
file                           required  contents
=============================  ========  ===============================================
biomass_observations.csv       yes       year, biomass_t, cv, source_id, confidence, ...
catch.csv                      yes       year, catch_t, source_id, confidence
releases_historical.csv        yes       year, age_at_release_yr, weight_at_release_g, ...
temperature.csv                yes       year, temperature_c, source_id, confidence
life_history.toml              yes       one table per parameter (value, unit, source, ...)
SOURCES.md                     yes       one ``## source_id`` heading per source
auxiliary_observations.csv     no        year, quantity, value, unit, source_id, confidence
climate_scenarios.toml         no        named climate scenarios
=============================  ========  ===============================================

Every CSV may also carry a free-text ``note`` column. :func:`load_data` reads the files once
(never writes them), checks every value at this boundary and raises :class:`DataError` with a
one-line message naming the file, the 1-based line (header = line 1), the column or TOML key,
what was expected and what was found.

Optional files missing from the directory fall back to the bundled ``data/`` directory of the
package. Such fallbacks are not warnings: they are recorded in :attr:`DataSet.notes`, one
sentence each, and :func:`summarise` (so ``carpmodel check-data``) prints them.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from carpmodel.errors import DataError
from carpmodel.priors import Prior

__all__ = [
    "BUNDLED_DATA_DIRECTORY",
    "CONFIDENCE_LEVELS",
    "LIFE_HISTORY_PARAMETERS",
    "AuxiliaryObservations",
    "BiomassObservations",
    "CatchHistory",
    "DataSet",
    "LifeHistory",
    "LifeHistoryValue",
    "ParameterSpec",
    "ReleaseHistory",
    "TemperatureSeries",
    "load_data",
    "summarise",
]

#: The data directory shipped with the package (package data ``carpmodel.data``, built from the
#: repository's top-level ``data/``; used by default and for missing optional files).
BUNDLED_DATA_DIRECTORY = Path(str(resources.files("carpmodel.data")))

#: How a value is known, from best to weakest.
CONFIDENCE_LEVELS: tuple[str, ...] = ("measured", "reported", "derived", "assumed")

YEAR_MIN, YEAR_MAX = 1900, 2100

BIOMASS_FILE = "biomass_observations.csv"
CATCH_FILE = "catch.csv"
RELEASES_FILE = "releases_historical.csv"
TEMPERATURE_FILE = "temperature.csv"
LIFE_HISTORY_FILE = "life_history.toml"
SOURCES_FILE = "SOURCES.md"
AUXILIARY_FILE = "auxiliary_observations.csv"
CLIMATE_FILE = "climate_scenarios.toml"

REQUIRED_FILES = (
    BIOMASS_FILE,
    CATCH_FILE,
    RELEASES_FILE,
    TEMPERATURE_FILE,
    LIFE_HISTORY_FILE,
    SOURCES_FILE,
)
OPTIONAL_FILES = (AUXILIARY_FILE, CLIMATE_FILE)

#: Units of the auxiliary observation quantities.
AUXILIARY_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "biomass_upper_bound_t": "t",
        "numbers_fish": "fish",
        "mean_length_cm": "cm",
        "mean_weight_g": "g",
        "hatchery_fraction_biomass": "fraction",
    }
)


# --------------------------------------------------------------------------- typed inputs


def _read_only(values: Any, dtype: type) -> np.ndarray:
    """Return a read-only 1-D copy of ``values`` with the given dtype."""
    array = np.array(values, dtype=dtype).reshape(-1)
    array.flags.writeable = False
    return array


class _Frozen:
    """Mixin: in ``__post_init__`` turn array fields into read-only copies, sequences to tuples."""

    _int_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._int_fields:
                object.__setattr__(self, f.name, _read_only(value, np.int64))
            elif isinstance(value, np.ndarray) or f.type == "np.ndarray":
                object.__setattr__(self, f.name, _read_only(value, np.float64))
            elif isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))


@dataclass(frozen=True)
class BiomassObservations(_Frozen):
    """Survey estimates of standing stock (end of year), one per observed year.

    Attributes
    ----------
    path : Path
        File the values came from.
    year : ndarray of int, shape (n,)
        Calendar year, ascending and unique (gaps allowed).
    biomass_t : ndarray, shape (n,), tonnes
        Estimated biomass, > 0.
    cv : ndarray, shape (n,)
        Lognormal SD of the observation (log scale), > 0.
    source_id, confidence, method, cv_source_id, cv_confidence, note : tuple of str
        Provenance per row (optional columns are "" when absent).
    """

    _int_fields = ("year",)

    path: Path
    year: np.ndarray
    biomass_t: np.ndarray
    cv: np.ndarray
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]
    method: tuple[str, ...]
    cv_source_id: tuple[str, ...]
    cv_confidence: tuple[str, ...]
    note: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.year)


@dataclass(frozen=True)
class CatchHistory(_Frozen):
    """Annual catch (tonnes), contiguous years.

    Attributes
    ----------
    year : ndarray of int, shape (n,)
        Contiguous, ascending calendar years.
    catch_t : ndarray, shape (n,), tonnes
        Catch, >= 0.
    """

    _int_fields = ("year",)

    path: Path
    year: np.ndarray
    catch_t: np.ndarray
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]
    note: tuple[str, ...]


@dataclass(frozen=True)
class ReleaseHistory(_Frozen):
    """Hatchery releases: one row per year and age at release.

    Attributes
    ----------
    year : ndarray of int, shape (n,)
        Calendar year of release (ascending; several rows per year allowed, one per age).
    age_at_release_yr : ndarray of int, shape (n,), years
        Age the released fish enter the population at, >= 0.
    weight_at_release_g : ndarray, shape (n,), g
        Mean weight of a released fish, > 0.
    fish_released : ndarray, shape (n,), fish
        Number released, >= 0.
    """

    _int_fields = ("year", "age_at_release_yr")

    path: Path
    year: np.ndarray
    age_at_release_yr: np.ndarray
    weight_at_release_g: np.ndarray
    fish_released: np.ndarray
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]
    note: tuple[str, ...]


@dataclass(frozen=True)
class TemperatureSeries(_Frozen):
    """Annual lake-temperature covariate (summer mean surface water temperature, °C).

    Attributes
    ----------
    year : ndarray of int, shape (n,)
        Contiguous, ascending calendar years.
    temperature_c : ndarray, shape (n,), °C
        Temperature, in (−5, 40).
    """

    _int_fields = ("year",)

    path: Path
    year: np.ndarray
    temperature_c: np.ndarray
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]
    note: tuple[str, ...]


@dataclass(frozen=True)
class AuxiliaryObservations(_Frozen):
    """Other observations (bounds, counts, mean sizes, hatchery fractions), long format.

    ``path`` is None and every array is empty when no auxiliary file was found.

    Attributes
    ----------
    year : ndarray of int, shape (n,)
    quantity : tuple of str
        One of :data:`AUXILIARY_UNITS`.
    value : ndarray, shape (n,)
        In ``unit`` (the unit fixed for the quantity).
    """

    _int_fields = ("year",)

    path: Path | None
    year: np.ndarray
    quantity: tuple[str, ...]
    value: np.ndarray
    unit: tuple[str, ...]
    source_id: tuple[str, ...]
    confidence: tuple[str, ...]
    note: tuple[str, ...]

    @classmethod
    def empty(cls) -> AuxiliaryObservations:
        """Return an object holding no observations."""
        e = np.zeros(0)
        return cls(None, e, (), e, (), (), (), ())

    def __len__(self) -> int:
        return len(self.year)

    def select(self, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (year, value) arrays of one quantity (empty arrays if none)."""
        if quantity not in AUXILIARY_UNITS:
            raise KeyError(f"unknown quantity {quantity!r}; valid: {', '.join(AUXILIARY_UNITS)}")
        mask = np.array([q == quantity for q in self.quantity], dtype=bool)
        return self.year[mask], self.value[mask]


@dataclass(frozen=True)
class ParameterSpec:
    """What ``life_history.toml`` must hold for one parameter: unit and plausible range."""

    unit: str
    description: str
    lower: float
    upper: float
    lower_closed: bool = False
    upper_closed: bool = True
    integer: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the plausible range."""
        above = value >= self.lower if self.lower_closed else value > self.lower
        below = value <= self.upper if self.upper_closed else value < self.upper
        return above and below

    def interval(self) -> str:
        """The range written as an interval, e.g. ``(0.2, 1]``."""
        left = "[" if self.lower_closed else "("
        right = "]" if self.upper_closed else ")"
        return f"{left}{self.lower:g}, {self.upper:g}{right}"


def _p(unit: str, description: str, lower: float, upper: float, *, closed: str = "(]",
       integer: bool = False) -> ParameterSpec:
    return ParameterSpec(unit, description, lower, upper, closed[0] == "[", closed[1] == "]",
                         integer)


#: Required life-history parameters: unit and plausible range (values outside are refused).
LIFE_HISTORY_PARAMETERS: Mapping[str, ParameterSpec] = MappingProxyType(
    {
        "max_age_yr": _p("yr", "plus-group age A", 2, 80, closed="[]", integer=True),
        "l_inf_cm": _p("cm", "von Bertalanffy asymptotic length", 0, 200),
        "k_per_yr": _p("1/yr", "von Bertalanffy K", 0, 2),
        "t0_yr": _p("yr", "von Bertalanffy t0", -10, 5, closed="[]"),
        "hatch_length_cm": _p("cm", "length at hatching (age-0 floor)", 0, 20),
        "lw_a": _p("g/cm^b", "weight-length coefficient a", 0, 1),
        "lw_b": _p("1", "weight-length exponent b", 2, 4, closed="[]"),
        "maturity_l50_cm": _p("cm", "length at 50 % maturity", 0, 200),
        "maturity_slope_cm": _p("cm", "maturity logistic scale", 0, 100),
        "fecundity_eggs_per_g": _p("eggs/g", "relative fecundity", 0, 1e6),
        "female_fraction": _p("1", "fraction female", 0, 1, closed="[]"),
        "m_ref_per_yr": _p("1/yr", "natural mortality at reference length", 0, 5),
        "m_ref_length_cm": _p("cm", "Lorenzen reference length", 0, 200),
        "lorenzen_c": _p("1", "Lorenzen exponent c", 0, 3, closed="[]"),
        "steepness": _p("1", "Beverton-Holt steepness h", 0.2, 1),
        "unfished_biomass_t": _p("t", "unfished biomass B0", 0, 1e8),
        "sigma_r": _p("1", "SD of log recruitment deviations", 0, 5),
        "dd_strength": _p("1", "juvenile density-dependence strength", 0, 1e3, closed="[]"),
        "dd_window_end_age_yr": _p("yr", "last age of the density-dependence window", 0, 80,
                                   closed="[]", integer=True),
        "release_survival": _p("1", "acute post-release survival", 0, 1, closed="[]"),
        "relative_reproductive_success": _p("1", "hatchery spawner RRS", 0, 2, closed="[]"),
        "selectivity_l50_cm": _p("cm", "fishery selectivity L50", 0, 200),
        "selectivity_slope_cm": _p("cm", "fishery selectivity scale", 0, 100),
        "survey_min_age_yr": _p("yr", "youngest age seen by the survey", 0, 80, closed="[]",
                                integer=True),
        "survey_q": _p("1", "survey catchability", 0, 10),
        "f_max_per_yr": _p("1/yr", "cap on fishing mortality", 0, 20),
        "initial_f_per_yr": _p("1/yr", "fishing mortality of the initial state", 0, 10,
                               closed="[]"),
    }
)

_LIFE_HISTORY_FIELDS = (
    "value", "unit", "source_id", "confidence", "assumption", "reasoning", "prior",
    "alternatives",
)
_LIFE_HISTORY_REQUIRED_FIELDS = ("value", "unit", "source_id", "confidence")


@dataclass(frozen=True)
class LifeHistoryValue:
    """One life-history value with its unit and provenance.

    ``assumption`` is True when the value is the modeller's choice (then ``reasoning`` says
    why); ``prior`` is the prior used when the parameter is estimated or varied.
    """

    name: str
    value: float
    unit: str
    source_id: str
    confidence: str
    assumption: bool = False
    reasoning: str = ""
    prior: Prior | None = None
    alternatives: str = ""


@dataclass(frozen=True)
class LifeHistory(Mapping[str, LifeHistoryValue]):
    """Life-history values by name (a read-only mapping name → :class:`LifeHistoryValue`)."""

    path: Path
    entries: Mapping[str, LifeHistoryValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

    def __getitem__(self, name: str) -> LifeHistoryValue:
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(
                f"unknown life-history parameter {name!r}; valid: {', '.join(self.entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def value(self, name: str) -> float:
        """Return the value of parameter ``name`` in its unit (see ``self[name].unit``)."""
        return self[name].value

    def integer(self, name: str) -> int:
        """Return an integer-valued parameter (ages such as ``max_age_yr``) as int."""
        return int(self[name].value)


@dataclass(frozen=True)
class DataSet:
    """Everything read from one data directory.

    Attributes
    ----------
    directory : Path
        The directory given to :func:`load_data`.
    files : Mapping[str, Path]
        File name → the path actually read (a bundled path when an optional file fell back).
    sha256 : str
        Hex SHA-256 of the files read, in order of file name (name and bytes of each).
    sources : frozenset of str
        The source_ids defined in SOURCES.md (plus the bundled ones if a fallback file used them).
    climate_scenarios : Mapping[str, Any]
        The parsed ``climate_scenarios.toml`` (empty if none was found); not yet typed.
    notes : tuple of str
        One sentence per fallback to bundled data or missing optional file.
    """

    directory: Path
    biomass: BiomassObservations
    catch: CatchHistory
    releases: ReleaseHistory
    temperature: TemperatureSeries
    auxiliary: AuxiliaryObservations
    life_history: LifeHistory
    sources: frozenset[str]
    sha256: str
    files: Mapping[str, Path] = field(default_factory=dict)
    climate_scenarios: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(
            self, "climate_scenarios", MappingProxyType(dict(self.climate_scenarios))
        )


# --------------------------------------------------------------------------- CSV reading


class _Invalid(ValueError):
    """A cell does not parse; the argument says what was expected."""


Parser = Callable[[str], Any]


def _integer(expected: str, lower: int, upper: int) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _Invalid(expected) from None
        if not lower <= value <= upper:
            raise _Invalid(expected)
        return value

    return parse


def _number(expected: str, check: Callable[[float], bool] = lambda x: True) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _Invalid(expected) from None
        if not math.isfinite(value):
            raise _Invalid(f"{expected} (finite)")
        if not check(value):
            raise _Invalid(expected)
        return value

    return parse


def _text(text: str) -> str:
    return text


def _confidence(text: str) -> str:
    if text not in CONFIDENCE_LEVELS:
        raise _Invalid(f"one of {', '.join(CONFIDENCE_LEVELS)}")
    return text


def _source(sources: frozenset[str], sources_path: Path) -> Parser:
    def parse(text: str) -> str:
        if not text:
            raise _Invalid(f"a non-empty source_id defined in {sources_path}")
        if text not in sources:
            hint = difflib.get_close_matches(text, sorted(sources), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise _Invalid(f"a source_id with a '## {text}' heading in {sources_path}{suffix}")
        return text

    return parse


def _blank_or(parser: Parser) -> Parser:
    def parse(text: str) -> Any:
        return "" if text == "" else parser(text)

    return parse


_YEAR = _integer(f"an integer year in {YEAR_MIN}..{YEAR_MAX}", YEAR_MIN, YEAR_MAX)


@dataclass(frozen=True)
class _Table:
    """Parsed CSV: column name → list of values, and the 1-based line of each row."""

    path: Path
    lines: list[int]
    columns: dict[str, list[Any]]


def _decode(path: Path, raw: bytes) -> str:
    """Decode UTF-8 (a byte-order mark is allowed), naming the line of any invalid byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: expected UTF-8 text, got invalid byte "
            f"0x{raw[exc.start]:02x} at byte {exc.start}"
        ) from None


def _read_table(
    path: Path, raw: bytes, required: Mapping[str, Parser], optional: Mapping[str, Parser]
) -> _Table:
    """Parse and check every cell of a CSV file against its column parsers."""
    expected_header = ",".join(required)
    text = _decode(path, raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: cannot parse the CSV header: {exc}") from None
    if not any(header):
        raise DataError(f"{path}, line 1: file is empty; expected a header line {expected_header}")
    _check_header(path, header, required, optional)
    parsers = {**required, **optional}
    columns: dict[str, list[Any]] = {name: [] for name in header}
    lines: list[int] = []
    previous_line = 1
    try:
        for row in reader:
            line, previous_line = previous_line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {line}: expected {len(header)} fields ({','.join(header)}), "
                    f"found {len(row)}"
                )
            for name, cell in zip(header, row, strict=True):
                cell = cell.strip()
                try:
                    columns[name].append(parsers[name](cell))
                except _Invalid as exc:
                    raise DataError(
                        f"{path}, line {line}, column {name}: expected {exc}, got {cell!r}"
                    ) from None
            lines.append(line)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: cannot parse CSV: {exc}") from None
    if not lines:
        raise DataError(
            f"{path}, line 2: expected at least one data row after the header, found none"
        )
    for name in optional:
        columns.setdefault(name, [""] * len(lines))
    return _Table(path, lines, columns)


def _check_header(
    path: Path, header: list[str], required: Mapping[str, Parser], optional: Mapping[str, Parser]
) -> None:
    allowed = [*required, *optional]
    listing = f"expected columns {', '.join(required)} (optional: {', '.join(optional)})"
    for index, name in enumerate(header):
        if name in header[:index]:
            raise DataError(f"{path}, line 1: column {name!r} appears twice; {listing}")
        if name not in allowed:
            raise DataError(
                f"{path}, line 1: unknown column {name!r}; allowed columns: {', '.join(allowed)}"
            )
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}, line 1: missing column(s) {', '.join(missing)}; {listing}")


def _check_years(table: _Table, *, contiguous: bool) -> None:
    """Years must be ascending and unique; with ``contiguous`` also without gaps."""
    years, lines = table.columns["year"], table.lines
    for i in range(1, len(years)):
        year, previous = years[i], years[i - 1]
        where = f"{table.path}, line {lines[i]}, column year"
        if year == previous:
            raise DataError(f"{where}: duplicate year {year} (also on line {lines[i - 1]})")
        if year < previous:
            raise DataError(
                f"{where}: expected years in ascending order, got {year} after {previous}"
            )
        if contiguous and year != previous + 1:
            raise DataError(
                f"{where}: gap in years: expected {previous + 1} after {previous}, got {year}"
            )


def _check_unique_keys(
    table: _Table, key_columns: Sequence[str], group_column: str | None
) -> None:
    """Rows must be unique in ``key_columns``; years ascend within each ``group_column`` value."""
    seen: dict[tuple[Any, ...], int] = {}
    last_year: dict[Any, int] = {}
    for i, line in enumerate(table.lines):
        key = tuple(table.columns[c][i] for c in key_columns)
        where = f"{table.path}, line {line}, column year"
        if key in seen:
            raise DataError(
                f"{where}: duplicate ({', '.join(key_columns)}) = {key} (also on line {seen[key]})"
            )
        seen[key] = line
        group = table.columns[group_column][i] if group_column else None
        year = table.columns["year"][i]
        if group in last_year and year < last_year[group]:
            raise DataError(
                f"{where}: expected years in ascending order, got {year} after {last_year[group]}"
            )
        last_year[group] = year


# --------------------------------------------------------------------------- file readers


def _provenance(sources: frozenset[str], sources_path: Path) -> dict[str, Parser]:
    return {"source_id": _source(sources, sources_path), "confidence": _confidence}


def _read_biomass(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                  ) -> BiomassObservations:
    required = {
        "year": _YEAR,
        "biomass_t": _number("a positive number of tonnes", lambda x: x > 0),
        "cv": _number("a coefficient of variation cv > 0", lambda x: x > 0),
        **_provenance(sources, sources_path),
    }
    optional = {
        "method": _text,
        "cv_source_id": _blank_or(_source(sources, sources_path)),
        "cv_confidence": _blank_or(_confidence),
        "note": _text,
    }
    table = _read_table(path, raw, required, optional)
    _check_years(table, contiguous=False)
    c = table.columns
    return BiomassObservations(path, c["year"], c["biomass_t"], c["cv"], c["source_id"],
                               c["confidence"], c["method"], c["cv_source_id"],
                               c["cv_confidence"], c["note"])


def _read_catch(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                ) -> CatchHistory:
    required = {
        "year": _YEAR,
        "catch_t": _number("a non-negative number of tonnes", lambda x: x >= 0),
        **_provenance(sources, sources_path),
    }
    table = _read_table(path, raw, required, {"note": _text})
    _check_years(table, contiguous=True)
    c = table.columns
    return CatchHistory(path, c["year"], c["catch_t"], c["source_id"], c["confidence"], c["note"])


def _read_releases(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                   ) -> ReleaseHistory:
    required = {
        "year": _YEAR,
        "age_at_release_yr": _integer("an integer age in years, 0..80", 0, 80),
        "weight_at_release_g": _number("a positive weight in grams", lambda x: x > 0),
        "fish_released": _number("a non-negative number of fish", lambda x: x >= 0),
        **_provenance(sources, sources_path),
    }
    table = _read_table(path, raw, required, {"note": _text})
    _check_unique_keys(table, ("year", "age_at_release_yr"), None)
    c = table.columns
    return ReleaseHistory(path, c["year"], c["age_at_release_yr"], c["weight_at_release_g"],
                          c["fish_released"], c["source_id"], c["confidence"], c["note"])


def _read_temperature(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                      ) -> TemperatureSeries:
    required = {
        "year": _YEAR,
        "temperature_c": _number("a temperature in degrees C between -5 and 40",
                                 lambda x: -5 < x < 40),
        **_provenance(sources, sources_path),
    }
    table = _read_table(path, raw, required, {"note": _text})
    _check_years(table, contiguous=True)
    c = table.columns
    return TemperatureSeries(path, c["year"], c["temperature_c"], c["source_id"],
                             c["confidence"], c["note"])


def _quantity(text: str) -> str:
    if text not in AUXILIARY_UNITS:
        raise _Invalid(f"one of {', '.join(AUXILIARY_UNITS)}")
    return text


def _read_auxiliary(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                    ) -> AuxiliaryObservations:
    required = {
        "year": _YEAR,
        "quantity": _quantity,
        "value": _number("a number"),
        "unit": _text,
        **_provenance(sources, sources_path),
    }
    table = _read_table(path, raw, required, {"note": _text})
    c = table.columns
    for i, line in enumerate(table.lines):
        quantity, value, unit = c["quantity"][i], c["value"][i], c["unit"][i]
        expected_unit = AUXILIARY_UNITS[quantity]
        if unit != expected_unit:
            raise DataError(
                f"{path}, line {line}, column unit: expected {expected_unit!r} for "
                f"{quantity}, got {unit!r}"
            )
        fraction = quantity == "hatchery_fraction_biomass"
        if (fraction and not 0 <= value <= 1) or (not fraction and value <= 0):
            expected = "a fraction in [0, 1]" if fraction else f"a positive number of {unit}"
            raise DataError(
                f"{path}, line {line}, column value: expected {expected} for {quantity}, "
                f"got {value!r}"
            )
    _check_unique_keys(table, ("quantity", "year"), "quantity")
    return AuxiliaryObservations(path, c["year"], c["quantity"], c["value"], c["unit"],
                                 c["source_id"], c["confidence"], c["note"])


_SOURCE_HEADING = re.compile(
    r"^##[ \t]+`?([A-Za-z0-9_][A-Za-z0-9_.\-]*)`?[ \t]*(?:$|[:(|\u2014\u2013]|-[ \t])"
)


def _read_sources(path: Path, raw: bytes) -> frozenset[str]:
    """Return the source_ids of SOURCES.md.

    A source heading is a level-2 heading that is a single identifier, optionally followed by
    a separator and a title: ``## zhang2021``, ``## zhang2021: Zhang et al.``,
    ``## zhang2021 — Zhang et al.``. Other headings (``## Conflicts and choices``) are prose.
    """
    ids = {m.group(1) for line in _decode(path, raw).splitlines()
           if (m := _SOURCE_HEADING.match(line))}
    if not ids:
        raise DataError(
            f"{path}, line 1: expected one '## source_id' heading per source, found none"
        )
    return frozenset(ids)


# --------------------------------------------------------------------------- TOML reading


def _load_toml(path: Path, raw: bytes) -> tuple[str, dict[str, Any]]:
    text = _decode(path, raw)
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: invalid TOML: {exc}") from None


def _toml_line(text: str, table: str, key: str | None = None) -> int | None:
    """Best-effort 1-based line of ``[table]`` (or of ``key = ...`` inside it)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table) + r"\s*\]")
    inline = re.compile(r"^\s*" + re.escape(table) + r"\s*[.=]")
    start = next((i for i, s in enumerate(lines) if header.match(s)), None)
    if start is None:
        return next((i + 1 for i, s in enumerate(lines) if inline.match(s)), None)
    if key is not None:
        assignment = re.compile(r"^\s*" + re.escape(key) + r"\s*[.=]")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if assignment.match(lines[i]):
                return i + 1
    return start + 1


@dataclass(frozen=True)
class _TomlWhere:
    path: Path
    text: str

    def __call__(self, table: str, key: str | None = None) -> str:
        line = _toml_line(self.text, table, key)
        dotted = table if key is None else f"{table}.{key}"
        return f"{self.path}, line {line}, key {dotted}" if line else f"{self.path}, key {dotted}"


def _read_life_history(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                       ) -> LifeHistory:
    text, document = _load_toml(path, raw)
    where = _TomlWhere(path, text)
    valid = ", ".join(LIFE_HISTORY_PARAMETERS)
    for name, table in document.items():
        if name not in LIFE_HISTORY_PARAMETERS:
            raise DataError(f"{where(name)}: unknown parameter {name!r}; valid parameters: {valid}")
        if not isinstance(table, dict):
            raise DataError(
                f"{where(name)}: expected a table with keys {', '.join(_LIFE_HISTORY_FIELDS)}, "
                f"got {table!r}"
            )
    missing = [name for name in LIFE_HISTORY_PARAMETERS if name not in document]
    if missing:
        raise DataError(
            f"{path}, key {missing[0]}: missing parameter(s) {', '.join(missing)}; "
            f"required parameters: {valid}"
        )
    values = {
        name: _life_history_value(name, document[name], where, sources, sources_path)
        for name in LIFE_HISTORY_PARAMETERS
    }
    _check_life_history_consistency(values, where)
    return LifeHistory(path, values)


def _life_history_value(
    name: str,
    table: Mapping[str, Any],
    where: _TomlWhere,
    sources: frozenset[str],
    sources_path: Path,
) -> LifeHistoryValue:
    spec = LIFE_HISTORY_PARAMETERS[name]
    for key in table:
        if key not in _LIFE_HISTORY_FIELDS:
            raise DataError(
                f"{where(name, key)}: unknown key {key!r}; valid keys: "
                f"{', '.join(_LIFE_HISTORY_FIELDS)}"
            )
    for key in _LIFE_HISTORY_REQUIRED_FIELDS:
        if key not in table:
            raise DataError(
                f"{where(name)}: missing key {name}.{key}; every parameter needs "
                f"{', '.join(_LIFE_HISTORY_REQUIRED_FIELDS)}"
            )
    value = table["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where(name, 'value')}: expected a finite number, got {value!r}")
    if spec.integer and not float(value).is_integer():
        raise DataError(f"{where(name, 'value')}: expected an integer number of years, "
                        f"got {value!r}")
    if not spec.contains(value):
        raise DataError(
            f"{where(name, 'value')}: expected {spec.description} in {spec.interval()}"
            f"{'' if spec.unit == '1' else ' ' + spec.unit}, got {value!r}"
        )
    unit = table["unit"]
    if unit != spec.unit:
        raise DataError(f"{where(name, 'unit')}: expected unit {spec.unit!r}, got {unit!r}")
    checks = {"source_id": _source(sources, sources_path), "confidence": _confidence}
    for key, check in checks.items():
        try:
            check(table[key] if isinstance(table[key], str) else "")
        except _Invalid as exc:
            raise DataError(f"{where(name, key)}: expected {exc}, got {table[key]!r}") from None
    source_id = table["source_id"]
    assumption = table.get("assumption", False)
    if not isinstance(assumption, bool):
        raise DataError(f"{where(name, 'assumption')}: expected true or false, got {assumption!r}")
    reasoning = table.get("reasoning", "")
    alternatives = table.get("alternatives", "")
    for key, text in (("reasoning", reasoning), ("alternatives", alternatives)):
        if not isinstance(text, str):
            raise DataError(f"{where(name, key)}: expected a string, got {text!r}")
    if assumption and not reasoning.strip():
        raise DataError(
            f"{where(name, 'assumption')}: assumption = true needs a non-empty "
            f"{name}.reasoning saying why, got none"
        )
    prior = None
    if "prior" in table:
        prior = Prior.from_mapping(table["prior"], where(name, "prior"), error=DataError)
    return LifeHistoryValue(name, float(value), unit, source_id, table["confidence"],
                            assumption, reasoning, prior, alternatives)


def _check_life_history_consistency(
    values: Mapping[str, LifeHistoryValue], where: _TomlWhere
) -> None:
    max_age_yr = values["max_age_yr"].value
    for name in ("dd_window_end_age_yr", "survey_min_age_yr"):
        if values[name].value > max_age_yr:
            raise DataError(
                f"{where(name, 'value')}: expected an age <= max_age_yr ({max_age_yr:g}), "
                f"got {values[name].value:g}"
            )
    l_inf_cm = values["l_inf_cm"].value
    if values["hatch_length_cm"].value >= l_inf_cm:
        raise DataError(
            f"{where('hatch_length_cm', 'value')}: expected a length below l_inf_cm "
            f"({l_inf_cm:g}), got {values['hatch_length_cm'].value:g}"
        )


# --------------------------------------------------------------------------- load_data


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror}") from None


def _optional_path(directory: Path, name: str, notes: list[str]) -> Path | None:
    """Path of an optional file: in ``directory``, else bundled (noted), else None (noted)."""
    path = directory / name
    if path.is_file():
        return path
    bundled = BUNDLED_DATA_DIRECTORY / name
    if bundled.is_file() and bundled.resolve() != path.resolve():
        notes.append(f"{name} is not in {directory}; using the bundled {bundled}")
        return bundled
    notes.append(f"{name} is not in {directory} nor in the bundled data; proceeding without it")
    return None


def load_data(directory: str | Path) -> DataSet:
    """Read and validate every file of a data directory.

    Parameters
    ----------
    directory : str or Path
        Directory holding the files listed in the module docstring.

    Returns
    -------
    DataSet
        Frozen typed inputs; arrays are read-only. Fallbacks to bundled optional files are
        listed in ``DataSet.notes``.

    Raises
    ------
    DataError
        For a missing directory or file, or any invalid value; the one-line message names the
        file, line and column (or TOML key), what was expected and what was found.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise DataError(f"{directory}: data directory {what}")
    for name in REQUIRED_FILES:
        if not (directory / name).is_file():
            raise DataError(
                f"{directory / name}: required file is missing; a data directory needs "
                f"{', '.join(REQUIRED_FILES)}"
            )
    notes: list[str] = []
    files = {name: directory / name for name in REQUIRED_FILES}
    raw = {name: _read_bytes(path) for name, path in files.items()}
    sources_path = files[SOURCES_FILE]
    sources = _read_sources(sources_path, raw[SOURCES_FILE])
    readers = {
        BIOMASS_FILE: _read_biomass,
        CATCH_FILE: _read_catch,
        RELEASES_FILE: _read_releases,
        TEMPERATURE_FILE: _read_temperature,
        LIFE_HISTORY_FILE: _read_life_history,
    }
    parsed = {
        name: read(files[name], raw[name], sources, sources_path)
        for name, read in readers.items()
    }

    all_sources = set(sources)
    auxiliary = AuxiliaryObservations.empty()
    aux_path = _optional_path(directory, AUXILIARY_FILE, notes)
    if aux_path is not None:
        files[AUXILIARY_FILE], raw[AUXILIARY_FILE] = aux_path, _read_bytes(aux_path)
        aux_sources, aux_sources_path = _sources_for(aux_path, directory, sources)
        all_sources |= aux_sources
        auxiliary = _read_auxiliary(aux_path, raw[AUXILIARY_FILE], aux_sources, aux_sources_path)
    climate: dict[str, Any] = {}
    climate_path = _optional_path(directory, CLIMATE_FILE, notes)
    if climate_path is not None:
        files[CLIMATE_FILE], raw[CLIMATE_FILE] = climate_path, _read_bytes(climate_path)
        climate = _load_toml(climate_path, raw[CLIMATE_FILE])[1]

    return DataSet(
        directory=directory,
        biomass=parsed[BIOMASS_FILE],
        catch=parsed[CATCH_FILE],
        releases=parsed[RELEASES_FILE],
        temperature=parsed[TEMPERATURE_FILE],
        auxiliary=auxiliary,
        life_history=parsed[LIFE_HISTORY_FILE],
        sources=frozenset(all_sources),
        sha256=_sha256(raw),
        files=files,
        climate_scenarios=climate,
        notes=tuple(notes),
    )


def _sources_for(
    path: Path, directory: Path, sources: frozenset[str]
) -> tuple[frozenset[str], Path]:
    """Sources that a (possibly bundled) optional file is checked against."""
    if path.parent == directory:
        return sources, directory / SOURCES_FILE
    bundled_sources = path.parent / SOURCES_FILE
    if not bundled_sources.is_file():
        return sources, directory / SOURCES_FILE
    return _read_sources(bundled_sources, _read_bytes(bundled_sources)), bundled_sources


def _sha256(raw: Mapping[str, bytes]) -> str:
    """Hash of the files read: for each file by name, its name, size and bytes."""
    digest = hashlib.sha256()
    for name in sorted(raw):
        digest.update(name.encode() + b"\0" + len(raw[name]).to_bytes(8, "little"))
        digest.update(raw[name])
    return digest.hexdigest()


# --------------------------------------------------------------------------- summary


def _years(year: np.ndarray) -> str:
    return f"{year[0]}-{year[-1]} ({len(year)} years)" if len(year) else "none"


def summarise(data: DataSet) -> str:
    """Return a short human-readable summary of a loaded data directory.

    Lists years covered per file, the biomass observations and their range, total catch and
    releases, each life-history value with unit, source_id and confidence, the number of
    assumed values, and any fallback notes.
    """
    b, c, r, t = data.biomass, data.catch, data.releases, data.temperature
    release_years = np.unique(r.year)
    lines = [
        f"Data directory {data.directory} (sha256 {data.sha256[:12]})",
        f"  {BIOMASS_FILE}: {len(b)} observations in {b.year[0]}-{b.year[-1]}, "
        f"biomass {b.biomass_t.min():,.0f}-{b.biomass_t.max():,.0f} t, "
        f"cv {b.cv.min():.2g}-{b.cv.max():.2g}",
        f"  {CATCH_FILE}: {_years(c.year)}, total catch {c.catch_t.sum():,.0f} t",
        f"  {RELEASES_FILE}: {len(r.year)} rows in {release_years[0]}-{release_years[-1]}, "
        f"total {r.fish_released.sum():,.0f} fish released, ages "
        f"{r.age_at_release_yr.min()}-{r.age_at_release_yr.max()} yr",
        f"  {TEMPERATURE_FILE}: {_years(t.year)}, "
        f"{t.temperature_c.min():.1f}-{t.temperature_c.max():.1f} degC",
    ]
    if len(data.auxiliary):
        counts = {q: data.auxiliary.quantity.count(q) for q in dict.fromkeys(data.auxiliary.quantity)}
        lines.append(
            f"  {AUXILIARY_FILE}: {len(data.auxiliary)} observations ("
            + ", ".join(f"{q} {n}" for q, n in counts.items()) + ")"
        )
    else:
        lines.append(f"  {AUXILIARY_FILE}: none")
    lines.append(f"  {SOURCES_FILE}: {len(data.sources)} sources")
    life = data.life_history
    assumed = sum(v.assumption for v in life.values())
    levels = [v.confidence for v in life.values()]
    by_level = ", ".join(f"{levels.count(c)} {c}" for c in CONFIDENCE_LEVELS if c in levels)
    lines.append(
        f"Life history ({len(life)} values; {assumed} with assumption = true; "
        f"confidence: {by_level}):"
    )
    width = max(len(name) for name in life)
    for v in life.values():
        flag = ", assumption" if v.assumption else ""
        prior = f", prior {v.prior.distribution}" if v.prior is not None else ""
        lines.append(
            f"  {v.name:<{width}}  {v.value:<10.6g} {v.unit:<7} {v.source_id} "
            f"({v.confidence}{flag}{prior})"
        )
    if data.notes:
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in data.notes)
    return "\n".join(lines)
