"""Shared fixtures: a small valid data directory written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # no display in tests or CI

SOURCES_MD = """# Sources

## survey_report
Hydroacoustic standing-stock survey (synthetic test source).

## catch_record
Catch statistics (synthetic test source).

## assumption_cv
CVs are assumed.

## modeller_assumption
Values chosen by the modeller.

## Conflicts and choices
None in this test directory.
"""

# name: (value, unit); realistic values for G. przewalskii so the lead's engine can run on them.
LIFE_HISTORY = {
    "max_age_yr": (25, "yr"),
    "l_inf_cm": (55.0, "cm"),
    "k_per_yr": (0.09, "1/yr"),
    "hatch_time_yr": (0.45, "yr"),
    "hatch_length_cm": (0.8, "cm"),
    "lw_a": (0.012, "g/cm^b"),
    "lw_b": (3.0, "1"),
    "maturity_l50_cm": (26.0, "cm"),
    "maturity_slope_cm": (2.0, "cm"),
    "fecundity_eggs_per_g": (25.0, "eggs/g"),
    "female_fraction": (0.45, "1"),
    "m_ref_per_yr": (0.2, "1/yr"),
    "m_ref_length_cm": (30.0, "cm"),
    "lorenzen_c": (1.0, "1"),
    "max_egg_survival": (0.005, "1"),
    "unfished_biomass_t": (200000.0, "t"),
    "sigma_r": (0.6, "1"),
    "dd_strength": (1.0, "1"),
    "dd_window_end_age_yr": (1, "yr"),
    "release_survival": (0.3, "1"),
    "relative_reproductive_success": (0.7, "1"),
    "selectivity_l50_cm": (25.0, "cm"),
    "selectivity_slope_cm": (2.0, "cm"),
    "survey_l50_cm": (3.0, "cm"),
    "survey_slope_cm": (0.85, "cm"),
    "net_mode_cm": (27.0, "cm"),
    "net_width_cm": (3.5, "cm"),
    "length_cv": (0.1, "1"),
    "sigma_survey": (0.1, "1"),
    "initial_depletion": (0.02, "1"),
    "survey_q": (1.0, "1"),
    "f_max_per_yr": (3.0, "1/yr"),
    "initial_f_per_yr": (0.5, "1/yr"),
}

PRIORS = {
    "relative_reproductive_success": '{distribution = "beta", mean = 0.7, sd = 0.15}',
    "max_egg_survival": '{distribution = "lognormal", median = 0.005, sd_log = 0.8}',
    "net_mode_cm": '{distribution = "normal", mean = 27.0, sd = 3.0}',
    "net_width_cm": '{distribution = "lognormal", median = 3.5, sd_log = 0.3}',
    "sigma_survey": '{distribution = "lognormal", median = 0.1, sd_log = 1.0}',
    "initial_depletion": '{distribution = "lognormal", median = 0.02, sd_log = 1.0}',
}

BIOMASS_ROWS = [(2002, 2592), (2012, 33569), (2015, 62100), (2020, 100400), (2024, 127500)]


def _life_history_toml() -> str:
    tables = []
    for name, (value, unit) in LIFE_HISTORY.items():
        table = (
            f'[{name}]\nvalue = {value!r}\nunit = "{unit}"\nsource_id = "modeller_assumption"\n'
            'confidence = "assumed"\nassumption = true\nreasoning = "synthetic test value"\n'
        )
        if name in PRIORS:
            table += f"prior = {PRIORS[name]}\n"
        tables.append(table)
    return "\n".join(tables)


def write_data_dir(directory: Path) -> Path:
    """Write a minimal valid data directory (all required and optional files) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    biomass = "year,biomass_t,cv,source_id,confidence,method,cv_source_id,cv_confidence,note\n"
    biomass += "".join(
        f"{y},{b},0.3,survey_report,reported,hydroacoustic,assumption_cv,assumed,\n"
        for y, b in BIOMASS_ROWS
    )
    catch = "year,catch_t,source_id,confidence,note\n" + "".join(
        f"{y},{200 if y < 1959 else (5000 if y <= 2000 else 0)},catch_record,derived,\n"
        for y in range(1956, 2025)
    )
    releases = "year,age_at_release_yr,weight_at_release_g,fish_released,source_id,confidence\n"
    releases += "".join(
        f"{y},1,5.0,5000000,survey_report,reported\n" for y in range(2002, 2025)
    )
    temperature = "year,temperature_c,source_id,confidence,note\n" + "".join(
        f"{y},{14 + 0.02 * (y - 2000):.2f},modeller_assumption,assumed,\"trend, no noise\"\n"
        for y in range(1956, 2025)
    )
    auxiliary = (
        "year,quantity,value,unit,source_id,confidence,note\n"
        "2015,hatchery_fraction_biomass,0.23,fraction,survey_report,reported,\n"
        "2022,numbers_fish,555000000,fish,survey_report,reported,\n"
    )
    habitat = "year,passage_index,source_id,confidence\n" + "".join(
        f"{y},{0.0 if y < 2008 else 1.0},modeller_assumption,assumed\n" for y in range(1956, 2025)
    )
    climate = (
        "[scenarios.baseline]\n"
        'label = "no further warming"\nair_warming_c = {}\ntrend_c_per_decade = 0.0\n'
        'source_id = "modeller_assumption"\nconfidence = "assumed"\n\n'
        "[scenarios.ssp245]\n"
        'label = "SSP2-4.5"\nair_warming_c = { 2050 = 1.72, 2090 = 2.7 }\ntrend_c_per_decade = 0.29\n'
        'source_id = "modeller_assumption"\nconfidence = "assumed"\n\n'
        "[anomalies]\n"
        'ar1_phi = { value = 0.3, source_id = "modeller_assumption", confidence = "assumed" }\n'
        'sd_c = { value = 0.3, source_id = "modeller_assumption", confidence = "assumed" }\n'
    )
    files = {
        "biomass_observations.csv": biomass,
        "catch.csv": catch,
        "releases_historical.csv": releases,
        "temperature.csv": temperature,
        "auxiliary_observations.csv": auxiliary,
        "habitat.csv": habitat,
        "life_history.toml": _life_history_toml(),
        "climate_scenarios.toml": climate,
        "SOURCES.md": SOURCES_MD,
    }
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def make_data_dir(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: ``make_data_dir("name")`` writes a valid data directory under tmp_path."""
    return lambda name="data": write_data_dir(tmp_path / name)


@pytest.fixture
def data_dir(make_data_dir: Callable[[str], Path]) -> Path:
    """A valid data directory in tmp_path (tests corrupt it one way at a time)."""
    return make_data_dir("data")


@pytest.fixture(scope="session")
def two_fits():
    """Two real structures fitted on the bundled data, both converging: the base case and constant
    M (test_ensemble.TWO). Fitted once for test_ensemble.py and test_budget.py."""
    from carpmodel.io.inputs import load_data
    from carpmodel.management.ensemble import EnsembleDefinition, MortalityStructure, fit_ensemble

    definition = EnsembleDefinition(
        dd_windows=(1,), release_survival_priors=("informative",),
        mortality=(MortalityStructure("c1", lorenzen_c=1.0), MortalityStructure("c0", lorenzen_c=0.0)),
        initial_states=("depletion",))
    return fit_ensemble(load_data("data"), definition)


@pytest.fixture(scope="session")
def bundled_data():
    """The bundled data directory, loaded once per session."""
    from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data

    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="session")
def bundled_fit(bundled_data):
    """The default fit of the bundled data (``fit(build_spec(data, default_config()))``, 1 start),
    computed once per session (~8 s) for the studies' tests; FitResult is frozen."""
    import warnings

    from carpmodel.inference.build import build_spec
    from carpmodel.inference.fitting import fit
    from carpmodel.io.config import default_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(build_spec(bundled_data, default_config()))
