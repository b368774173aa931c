"""Read and validate ``climate_scenarios.toml`` into the typed climate of a data directory.

The file (parsed by :func:`carpmodel.io.inputs.load_data`, kept as
``DataSet.climate_scenarios``) has three tables::

    [reference]                     # optional: CMIP reference period, air-to-water ratio
    period = [1995, 2014]
    air_to_water_ratio = { value = 0.5, lower = 0.2, upper = 0.8, source_id = "...", confidence = "assumed" }

    [scenarios.ssp245]              # one table per scenario
    label = "SSP2-4.5"
    air_warming_c = { 2050 = 1.72, 2090 = 2.65 }   # degC vs the reference period, at period midpoints
    trend_c_per_decade = 0.29
    source_id = "..."
    confidence = "reported"

    [anomalies]                     # the ASSUMED AR(1) of summer water temperature anomalies
    ar1_phi = { value = 0.3, source_id = "...", confidence = "assumed" }
    sd_c = { value = 0.3, source_id = "...", confidence = "assumed" }

:func:`load_climate` gives all of it as a :class:`~carpmodel.management.climate.ClimateData`
(``DataSet.climate`` calls it on first use); :func:`load_scenarios` and
:func:`load_climate_reference` give one part, also from a plain parsed mapping. Every error
is a :class:`~carpmodel.errors.DataError` naming the file and the dotted key
(``scenarios.ssp245.air_warming_c.2050``) with what was expected and found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from carpmodel.errors import DataError
from carpmodel.io.tables import CONFIDENCE_LEVELS
from carpmodel.management.anomalies import AnomalyModel
from carpmodel.management.climate import ClimateData, ClimateReference, ClimateScenario

__all__ = ["CLIMATE_FILE", "load_climate", "load_climate_reference", "load_scenarios"]

#: File name of the climate scenarios in a data directory.
CLIMATE_FILE = "climate_scenarios.toml"

_SCENARIO_KEYS = ("label", "air_warming_c", "trend_c_per_decade", "source_id", "confidence", "note")
_SCENARIO_REQUIRED = ("label", "air_warming_c", "trend_c_per_decade", "source_id", "confidence")
_CLIMATE_TABLES = ("reference", "scenarios", "anomalies")


def _climate_document(data: Any) -> tuple[str, Mapping[str, Any]]:
    """(file name for messages, parsed TOML) of a DataSet or a plain mapping."""
    if not isinstance(data, Mapping):
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


def load_climate(data: Any) -> ClimateData:
    """Every table of ``climate_scenarios.toml``, typed and validated.

    ``data`` is a loaded data directory (its ``climate_scenarios``) or a parsed mapping.
    ``anomalies`` is None when the file has no ``[anomalies]`` table (an observed series does
    not need it; an assumed one does, and :meth:`AnomalyModel.from_climate_file` says so).

    Raises
    ------
    DataError
        No climate file was found, or a table is invalid: the message names the file and key.
    """
    where, document = _climate_document(data)
    reference = _reference(where, document)
    return ClimateData(where, reference, _scenarios(where, document, reference.reference_year),
                       _anomalies(where, document) if "anomalies" in document else None)


def load_climate_reference(data: Any) -> ClimateReference:
    """The ``[reference]`` table of ``climate_scenarios.toml`` (defaults where absent)."""
    return _reference(*_climate_document(data))


def load_scenarios(data: Any) -> dict[str, ClimateScenario]:
    """Typed climate scenarios from ``data.climate_scenarios`` (the parsed TOML) or a mapping.

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
    return _scenarios(where, document, _reference(where, document).reference_year)


def _reference(where: str, document: Mapping[str, Any]) -> ClimateReference:
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


def _scenarios(where: str, document: Mapping[str, Any], reference_year: int) -> dict[str, ClimateScenario]:
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


def _anomalies(where: str, document: Mapping[str, Any]) -> AnomalyModel:
    """The ASSUMED AR(1) of ``[anomalies]`` (``ar1_phi``, ``sd_c`` the marginal SD), state 0."""
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
    source = (f"ASSUMED AR(1) phi {values['ar1_phi']:g} [{values['ar1_phi_source']}], marginal sd "
              f"{values['sd_c']:g} degC [{values['sd_c_source']}] from {where} [anomalies]")
    return AnomalyModel.ar1(values["ar1_phi"], values["sd_c"], source=source, confidence="assumed")
