"""The typed, frozen contents of a data directory: one class per data file and the
:class:`DataSet` that holds them all (read by :func:`carpmodel.io.inputs.load_data`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from carpmodel.io.climate_file import load_climate
from carpmodel.io.life_history_file import (
    LifeHistory,
)
from carpmodel.io.origin_file import OriginSampleTable
from carpmodel.management.climate import ClimateData

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
class HabitatSeries(_Frozen):
    """Annual river-connectivity index of the spawning rivers (``habitat.csv``).

    Attributes
    ----------
    year : ndarray of int, shape (n,)
        Contiguous, ascending calendar years.
    passage_index : ndarray, shape (n,), dimensionless
        Connectivity in [0, 1]: 0 before the fish passages (built 2008-2009), 1 at full
        connectivity. The bundled series is ASSUMED (source_id ``assumption_habitat_index``).
    """

    _int_fields = ("year",)

    path: Path
    year: np.ndarray
    passage_index: np.ndarray
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
    habitat : HabitatSeries or None
        The river-connectivity index of ``habitat.csv`` (None when no file was found); used
        only when a habitat effect is estimated (``habitat_slope`` in ``[fit] estimate``).
    climate_scenarios : Mapping[str, Any]
        The parsed ``climate_scenarios.toml`` (empty if none was found), as read; typed in
        :attr:`climate`.
    origin_samples : OriginSampleTable or None
        ``origin_samples.csv`` when the directory has one (:mod:`carpmodel.io.origin_file`).
    notes : tuple of str
        One sentence per fallback to bundled data or missing optional file, and per legal but
        suspicious value (:func:`carpmodel.io.plausibility.plausibility_notes`).
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
    habitat: HabitatSeries | None = None
    origin_samples: OriginSampleTable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(
            self, "climate_scenarios", MappingProxyType(dict(self.climate_scenarios))
        )

    @cached_property
    def climate(self) -> ClimateData:
        """``climate_scenarios.toml`` typed: reference, scenarios, assumed anomalies.

        Validated on first use (:func:`carpmodel.io.climate_file.load_climate`), not by
        :func:`load_data`: a fit does not need the file, so an invalid one stops only what uses
        it (projections, the climate sensitivity, ``carpmodel check-data``), with a
        :class:`DataError` naming the file and key.
        """
        return load_climate(self)
