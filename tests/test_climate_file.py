"""Tests of carpmodel.io.climate_file: reading and validating climate_scenarios.toml.

Every error is a DataError naming the file and the dotted key; validation runs when the
climate is first used (``DataSet.climate``), not when a data directory is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carpmodel.errors import DataError
from carpmodel.io.climate_file import CLIMATE_FILE, load_climate, load_climate_reference, load_scenarios
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.management.anomalies import AnomalyModel
from carpmodel.management.climate import ClimateScenario
from carpmodel.model.covariates import EnvSeries

SSPS = ("ssp126", "ssp245", "ssp370", "ssp585")


@pytest.fixture(scope="module")
def bundled():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def scenarios(bundled) -> dict[str, ClimateScenario]:
    return load_scenarios(bundled)


def test_scenarios_load_with_their_labels(scenarios):
    assert set(scenarios) == {"baseline", *SSPS}
    assert scenarios["ssp245"].label == "SSP2-4.5"
    assert dict(scenarios["ssp585"].air_warming_c) == {2050: 2.30, 2090: 5.38}


def test_bad_scenario_key_is_named(bundled):
    document = {k: dict(v) if isinstance(v, dict) else v for k, v in bundled.climate_scenarios.items()}
    document["scenarios"] = {k: dict(v) for k, v in document["scenarios"].items()}
    document["scenarios"]["ssp245"]["air_warming_c"] = {"2050": 1.72, "twenty-ninety": 2.65}
    with pytest.raises(DataError, match=r"scenarios\.ssp245\.air_warming_c\.twenty-ninety"):
        load_scenarios(document)
    document["scenarios"]["ssp245"] = {"label": "x", "air_warming_c": {}, "trend_c_per_decade": 0.1,
                                       "source_id": "s", "confidence": "assumed", "colour": "red"}
    with pytest.raises(DataError, match=r"scenarios\.ssp245\.colour"):
        load_scenarios(document)
    del document["scenarios"]["ssp245"]["colour"], document["scenarios"]["ssp245"]["trend_c_per_decade"]
    with pytest.raises(DataError, match=r"scenarios\.ssp245\.trend_c_per_decade"):
        load_scenarios(document)


def test_climate_reference(bundled):
    reference = load_climate_reference(bundled)
    assert reference.air_to_water_ratio == 0.5 and reference.air_to_water_range == (0.2, 0.8)
    assert reference.reference_year == 2005



def test_dataset_climate_is_the_typed_file(bundled, scenarios):
    climate = bundled.climate
    assert climate is bundled.climate, "validated once, on first use"
    assert dict(climate.scenarios) == scenarios and list(climate.scenarios) == list(scenarios)
    assert climate.reference == load_climate_reference(bundled)
    assert climate.path == str(bundled.files[CLIMATE_FILE])
    # the assumed AR(1) of [anomalies]: phi 0.3, marginal SD 0.3 degC (rounding only: rel 1e-12)
    assert climate.anomalies.phi == pytest.approx(0.3) and climate.anomalies.confidence == "assumed"
    assert climate.anomalies.marginal_sd == pytest.approx(0.3, rel=1e-12)
    assert "[anomalies]" in climate.anomalies.source and CLIMATE_FILE in climate.anomalies.source


def _document(bundled) -> dict:
    """A deep-enough copy of the bundled file's tables to corrupt one key at a time."""
    return {k: {n: dict(v) if isinstance(v, dict) else v for n, v in t.items()}
            for k, t in bundled.climate_scenarios.items()}


@pytest.mark.parametrize("table,key,value,fragment", [
    ("anomalies", "ar1_phi", {"value": 1.5}, "anomalies.ar1_phi.value"),
    ("anomalies", "sd_c", {"value": -0.1}, "anomalies.sd_c.value"),
    ("anomalies", "sd_c", "warm", "anomalies.sd_c"),
    ("reference", "period", [2014, 1995], "reference.period"),
    ("reference", "air_to_water_ratio", {"value": 0.5, "lower": 0.6}, "reference.air_to_water_ratio"),
])
def test_invalid_tables_name_the_key(bundled, table, key, value, fragment):
    document = _document(bundled)
    document[table][key] = value
    with pytest.raises(DataError, match=fragment.replace(".", r"\.")):
        load_climate(document)


def test_unknown_table_is_named(bundled):
    document = {**_document(bundled), "scenario": {}}
    with pytest.raises(DataError, match="key scenario: unknown table"):
        load_climate(document)


def test_invalid_climate_file_fails_on_first_use_not_on_load(make_data_dir):
    directory: Path = make_data_dir("hot")
    path = directory / CLIMATE_FILE
    path.write_text(path.read_text().replace("air_warming_c = { 2050 = 1.72, 2090 = 2.7 }",
                                             'air_warming_c = "hot"'), encoding="utf-8")
    data = load_data(directory)          # a fit does not need the climate file
    with pytest.raises(DataError) as info:
        _ = data.climate
    assert str(path) in str(info.value) and "scenarios.ssp245.air_warming_c" in str(info.value)


def test_assumed_anomalies_need_the_anomalies_table(make_data_dir):
    directory: Path = make_data_dir("no_anomalies")
    path = directory / CLIMATE_FILE
    text = path.read_text()
    path.write_text(text[:text.index("[anomalies]")], encoding="utf-8")
    data = load_data(directory)
    assert data.climate.anomalies is None and set(data.climate.scenarios) == {"baseline", "ssp245"}
    lake = EnvSeries.from_temperature(data)
    with pytest.raises(DataError, match=r"climate_scenarios\.toml, key anomalies: expected a table"):
        AnomalyModel.for_series(lake, data)
    # an observed series is fitted and does not need [anomalies]
    years = np.arange(1965, 2025)
    observed = EnvSeries("temperature_c", years, 16 + 0.3 * np.sin(years * 1.3), "degC", True, "synthetic")
    assert AnomalyModel.for_series(observed, data).confidence == "measured"
