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
habitat.csv                    no        year, passage_index, source_id, confidence
origin_samples.csv             no        year, gear, fish_examined, fish_hatchery, method, ...
climate_scenarios.toml         no        named climate scenarios
=============================  ========  ===============================================

Every CSV may also carry a free-text ``note`` column. :func:`load_data` reads the files once
(never writes them), checks every value at this boundary and raises :class:`DataError` with a
one-line message naming the file, the 1-based line (header = line 1), the column or TOML key,
what was expected and what was found.

Values that parse but cannot be meant (a catch of 1e308 t, a survey CV of 50, a release
heavier than the fish can grow, a value outside its prior's support) are refused with the bound
and its reason (:mod:`carpmodel.io.plausibility`); legal but suspicious ones give a note.

``origin_samples.csv`` (:mod:`carpmodel.io.origin_file`) is read only from the directory itself:
there is no bundled one (no marking study of this stock is public).

Optional files missing from the directory fall back to the bundled ``data/`` directory of the
package. Such fallbacks are not warnings: they are recorded in :attr:`DataSet.notes`, one
sentence each (as are the plausibility notes), and :func:`summarise` (so ``carpmodel
check-data``) prints them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from carpmodel.errors import DataError
from carpmodel.io.climate_file import CLIMATE_FILE
from carpmodel.io.data_types import (
    AUXILIARY_UNITS,
    AuxiliaryObservations,
    BiomassObservations,
    CatchHistory,
    DataSet,
    HabitatSeries,
    ReleaseHistory,
    TemperatureSeries,
)
from carpmodel.io.life_history_file import (
    LIFE_HISTORY_PARAMETERS,
    LifeHistory,
    LifeHistoryValue,
    ParameterSpec,
    read_life_history,
)
from carpmodel.io.origin_file import ORIGIN_FILE, read_origin_samples
from carpmodel.io.plausibility import bound, check_release_weights, plausibility_notes
from carpmodel.io.tables import (
    CONFIDENCE_LEVELS,
    InvalidCell,
    Parser,
    blank_or,
    check_unique_keys,
    check_years,
    confidence_cell,
    decode_utf8,
    integer_cell,
    load_toml,
    number_cell,
    read_bytes,
    read_table,
    source_cell,
    text_cell,
    year_cell,
)

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
    "HabitatSeries",
    "ReleaseHistory",
    "TemperatureSeries",
    "load_data",
    "summarise",
]

#: The data directory shipped with the package (package data ``carpmodel.data``, built from the
#: repository's top-level ``data/``; used by default and for missing optional files).
BUNDLED_DATA_DIRECTORY = Path(str(resources.files("carpmodel.data")))

BIOMASS_FILE = "biomass_observations.csv"
CATCH_FILE = "catch.csv"
RELEASES_FILE = "releases_historical.csv"
TEMPERATURE_FILE = "temperature.csv"
LIFE_HISTORY_FILE = "life_history.toml"
SOURCES_FILE = "SOURCES.md"
AUXILIARY_FILE = "auxiliary_observations.csv"
HABITAT_FILE = "habitat.csv"

REQUIRED_FILES = (
    BIOMASS_FILE,
    CATCH_FILE,
    RELEASES_FILE,
    TEMPERATURE_FILE,
    LIFE_HISTORY_FILE,
    SOURCES_FILE,
)
OPTIONAL_FILES = (AUXILIARY_FILE, CLIMATE_FILE, HABITAT_FILE)



# --------------------------------------------------------------------------- file readers


def _provenance(sources: frozenset[str], sources_path: Path) -> dict[str, Parser]:
    return {"source_id": source_cell(sources, sources_path), "confidence": confidence_cell}


def _bounded(expected: str, quantity: str, check: Any) -> Parser:
    """number_cell for ``check`` and the plausibility bound of ``quantity`` (named in the message)."""
    limit = bound(quantity)
    unit = "" if limit.unit == "1" else f" {limit.unit}"
    return number_cell(f"{expected}, at most {limit.upper:g}{unit} ({limit.reason})",
                       lambda x: check(x) and x <= limit.upper)


def _read_biomass(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                  ) -> BiomassObservations:
    required = {
        "year": year_cell,
        "biomass_t": _bounded("a positive number of tonnes", "biomass_t", lambda x: x > 0),
        "cv": _bounded("a coefficient of variation cv > 0", "biomass_cv", lambda x: x > 0),
        **_provenance(sources, sources_path),
    }
    optional = {
        "method": text_cell,
        "cv_source_id": blank_or(source_cell(sources, sources_path)),
        "cv_confidence": blank_or(confidence_cell),
        "note": text_cell,
    }
    table = read_table(path, raw, required, optional)
    check_years(table, contiguous=False)
    c = table.columns
    return BiomassObservations(path, c["year"], c["biomass_t"], c["cv"], c["source_id"],
                               c["confidence"], c["method"], c["cv_source_id"],
                               c["cv_confidence"], c["note"])


def _read_catch(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                ) -> CatchHistory:
    required = {
        "year": year_cell,
        "catch_t": _bounded("a non-negative number of tonnes", "catch_t", lambda x: x >= 0),
        **_provenance(sources, sources_path),
    }
    table = read_table(path, raw, required, {"note": text_cell})
    check_years(table, contiguous=True)
    c = table.columns
    return CatchHistory(path, c["year"], c["catch_t"], c["source_id"], c["confidence"], c["note"])


def _read_releases(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                   ) -> ReleaseHistory:
    required = {
        "year": year_cell,
        "age_at_release_yr": integer_cell("an integer age in years, 0..80", 0, 80),
        "weight_at_release_g": _bounded("a positive weight in grams", "release_weight_g", lambda x: x > 0),
        "fish_released": _bounded("a non-negative number of fish", "fish_released", lambda x: x >= 0),
        **_provenance(sources, sources_path),
    }
    table = read_table(path, raw, required, {"note": text_cell})
    check_unique_keys(table, ("year", "age_at_release_yr"), None)
    c = table.columns
    return ReleaseHistory(path, c["year"], c["age_at_release_yr"], c["weight_at_release_g"],
                          c["fish_released"], c["source_id"], c["confidence"], c["note"])


def _read_temperature(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                      ) -> TemperatureSeries:
    required = {
        "year": year_cell,
        "temperature_c": number_cell("a temperature in degrees C between -5 and 40",
                                 lambda x: -5 < x < 40),
        **_provenance(sources, sources_path),
    }
    table = read_table(path, raw, required, {"note": text_cell})
    check_years(table, contiguous=True)
    c = table.columns
    return TemperatureSeries(path, c["year"], c["temperature_c"], c["source_id"],
                             c["confidence"], c["note"])


def _read_habitat(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                  ) -> HabitatSeries:
    required = {
        "year": year_cell,
        "passage_index": number_cell("a connectivity index between 0 and 1",
                                     lambda x: 0 <= x <= 1),
        **_provenance(sources, sources_path),
    }
    table = read_table(path, raw, required, {"note": text_cell})
    check_years(table, contiguous=True)
    c = table.columns
    return HabitatSeries(path, c["year"], c["passage_index"], c["source_id"], c["confidence"],
                         c["note"])


#: the plausibility bound (carpmodel.io.plausibility) of each auxiliary quantity but the fraction
_AUXILIARY_BOUNDS = {"biomass_upper_bound_t": "biomass_t", "numbers_fish": "numbers_fish",
                     "mean_length_cm": "length_cm", "mean_weight_g": "weight_g"}


def _quantity(text: str) -> str:
    if text not in AUXILIARY_UNITS:
        raise InvalidCell(f"one of {', '.join(AUXILIARY_UNITS)}")
    return text


def _read_auxiliary(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                    ) -> AuxiliaryObservations:
    required = {
        "year": year_cell,
        "quantity": _quantity,
        "value": number_cell("a number"),
        "unit": text_cell,
        **_provenance(sources, sources_path),
    }
    table = read_table(path, raw, required, {"note": text_cell})
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
        problem = None if fraction else bound(_AUXILIARY_BOUNDS[quantity]).problem(value)
        if problem:
            raise DataError(f"{path}, line {line}, column value: expected {quantity} {problem}")
    check_unique_keys(table, ("quantity", "year"), "quantity")
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
    ids = {m.group(1) for line in decode_utf8(path, raw).splitlines()
           if (m := _SOURCE_HEADING.match(line))}
    if not ids:
        raise DataError(
            f"{path}, line 1: expected one '## source_id' heading per source, found none"
        )
    return frozenset(ids)


# --------------------------------------------------------------------------- load_data


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
    raw = {name: read_bytes(path) for name, path in files.items()}
    sources_path = files[SOURCES_FILE]
    sources = _read_sources(sources_path, raw[SOURCES_FILE])
    readers = {
        BIOMASS_FILE: _read_biomass,
        CATCH_FILE: _read_catch,
        RELEASES_FILE: _read_releases,
        TEMPERATURE_FILE: _read_temperature,
        LIFE_HISTORY_FILE: read_life_history,
    }
    parsed = {
        name: read(files[name], raw[name], sources, sources_path)
        for name, read in readers.items()
    }

    all_sources = set(sources)
    auxiliary = AuxiliaryObservations.empty()
    aux_path = _optional_path(directory, AUXILIARY_FILE, notes)
    if aux_path is not None:
        files[AUXILIARY_FILE], raw[AUXILIARY_FILE] = aux_path, read_bytes(aux_path)
        aux_sources, aux_sources_path = _sources_for(aux_path, directory, sources)
        all_sources |= aux_sources
        auxiliary = _read_auxiliary(aux_path, raw[AUXILIARY_FILE], aux_sources, aux_sources_path)
    climate: dict[str, Any] = {}
    climate_path = _optional_path(directory, CLIMATE_FILE, notes)
    if climate_path is not None:
        files[CLIMATE_FILE], raw[CLIMATE_FILE] = climate_path, read_bytes(climate_path)
        climate = load_toml(climate_path, raw[CLIMATE_FILE])[1]

    habitat = None
    habitat_path = _optional_path(directory, HABITAT_FILE, notes)
    if habitat_path is not None:
        files[HABITAT_FILE], raw[HABITAT_FILE] = habitat_path, read_bytes(habitat_path)
        habitat_sources, habitat_sources_path = _sources_for(habitat_path, directory, sources)
        all_sources |= habitat_sources
        habitat = _read_habitat(habitat_path, raw[HABITAT_FILE], habitat_sources,
                                habitat_sources_path)
    origin = None
    if (directory / ORIGIN_FILE).is_file():
        files[ORIGIN_FILE] = directory / ORIGIN_FILE
        raw[ORIGIN_FILE] = read_bytes(files[ORIGIN_FILE])
        origin = read_origin_samples(files[ORIGIN_FILE], raw[ORIGIN_FILE], sources, sources_path,
                                     parsed[RELEASES_FILE])
    check_release_weights(parsed[RELEASES_FILE], parsed[LIFE_HISTORY_FILE])
    data = DataSet(
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
        habitat=habitat,
        origin_samples=origin,
    )
    suspicious = plausibility_notes(data)
    return replace(data, notes=(*data.notes, *suspicious)) if suspicious else data


def _sources_for(
    path: Path, directory: Path, sources: frozenset[str]
) -> tuple[frozenset[str], Path]:
    """Sources that a (possibly bundled) optional file is checked against."""
    if path.parent == directory:
        return sources, directory / SOURCES_FILE
    bundled_sources = path.parent / SOURCES_FILE
    if not bundled_sources.is_file():
        return sources, directory / SOURCES_FILE
    return _read_sources(bundled_sources, read_bytes(bundled_sources)), bundled_sources


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
    if data.habitat is not None:
        h = data.habitat
        levels = sorted(set(h.confidence), key=CONFIDENCE_LEVELS.index)
        lines.append(f"  {HABITAT_FILE}: {_years(h.year)}, passage index "
                     f"{h.passage_index.min():.2g}-{h.passage_index.max():.2g} "
                     f"(confidence {', '.join(levels)})")
    else:
        lines.append(f"  {HABITAT_FILE}: none")
    origin = data.origin_samples
    if origin is not None:
        marked = sum(bool(code) for code in origin.release_group)
        lines.append(
            f"  {ORIGIN_FILE}: {len(origin)} samples in {origin.year.min()}-{origin.year.max()} "
            f"({', '.join(sorted(set(origin.gear)))}), {int(origin.fish_hatchery.sum())} of "
            f"{int(origin.fish_examined.sum())} fish read as hatchery, {marked} by release group")
    else:
        lines.append(f"  {ORIGIN_FILE}: none")
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
