"""Tests of carpmodel.io.inputs (data directory loading and validation) and carpmodel.priors.

Error-message tests check that the message names the file and the line (CSV) or the key (TOML),
the expected value and what was found, as DESIGN.md "Validate at the boundary" asks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from carpmodel.errors import ConfigError, DataError
from carpmodel.io import inputs
from carpmodel.io.inputs import (
    BUNDLED_DATA_DIRECTORY,
    LIFE_HISTORY_PARAMETERS,
    REQUIRED_FILES,
    DataSet,
    load_data,
    summarise,
)
from carpmodel.io.life_history_file import OPTIONAL_LIFE_HISTORY_PARAMETERS
from carpmodel.priors import Prior

BIOMASS = "biomass_observations.csv"
CATCH = "catch.csv"
RELEASES = "releases_historical.csv"
TEMPERATURE = "temperature.csv"
AUXILIARY = "auxiliary_observations.csv"
LIFE = "life_history.toml"


# --------------------------------------------------------------------------- helpers


def load_error(directory: Path) -> str:
    with pytest.raises(DataError) as info:
        load_data(directory)
    message = str(info.value)
    assert "\n" not in message, "error messages are one line"
    return message


def set_line(path: Path, number: int, text: str | None) -> None:
    """Replace 1-based line ``number`` of ``path`` with ``text`` (None deletes it)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if text is None:
        del lines[number - 1]
    else:
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def rewrite_columns(path: Path, drop: str | None = None, add: tuple[str, str] | None = None) -> None:
    """Drop a column, or add one (name, value in every row)."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if drop is not None:
        index = rows[0].index(drop)
        rows = [row[:index] + row[index + 1:] for row in rows]
    if add is not None:
        rows = [rows[0] + [add[0]]] + [row + [add[1]] for row in rows[1:]]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def edit_table(path: Path, table: str, old: str, new: str) -> None:
    """In life_history.toml, replace the first ``old`` after the ``[table]`` header."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"[{table}]\n")
    position = text.index(old, start)
    path.write_text(text[:position] + new + text[position + len(old):], encoding="utf-8")


def line_of(path: Path, needle: str, table: str | None = None) -> int:
    """1-based line of the first ``needle`` (after ``[table]`` if given)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"[{table}]\n") if table else 0
    return text[: text.index(needle, start)].count("\n") + 1


def file_digests(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


# --------------------------------------------------------------------------- valid directory


def test_valid_directory_loads_into_typed_read_only_objects(data_dir: Path) -> None:
    data = load_data(data_dir)
    assert isinstance(data, DataSet)
    assert data.directory == data_dir
    np.testing.assert_array_equal(data.biomass.year, [2002, 2012, 2015, 2020, 2024])
    np.testing.assert_array_equal(data.biomass.biomass_t, [2592, 33569, 62100, 100400, 127500])
    assert data.biomass.year.dtype == np.int64 and data.biomass.biomass_t.dtype == np.float64
    assert data.biomass.source_id == ("survey_report",) * 5
    assert data.biomass.cv_confidence == ("assumed",) * 5
    assert data.catch.year[0] == 1956 and data.catch.year[-1] == 2024
    assert np.all(np.diff(data.catch.year) == 1)
    assert data.releases.age_at_release_yr.dtype == np.int64
    assert data.releases.fish_released.sum() == 23 * 5_000_000
    assert data.temperature.note[0] == "trend, no noise"  # quoted comma survives
    assert len(data.auxiliary) == 2
    years, values = data.auxiliary.select("hatchery_fraction_biomass")
    assert years.tolist() == [2015] and values.tolist() == [0.23]
    assert data.climate_scenarios["scenarios"]["ssp245"]["air_warming_c"]["2090"] == 2.7
    assert data.notes == ()
    for array in (data.biomass.year, data.biomass.cv, data.catch.catch_t,
                  data.releases.weight_at_release_g, data.temperature.temperature_c):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


def test_life_history_values_units_and_priors(data_dir: Path) -> None:
    life = load_data(data_dir).life_history
    # the synthetic directory leaves out the optional entries (size-independent release survival)
    assert set(life) == set(LIFE_HISTORY_PARAMETERS) - set(OPTIONAL_LIFE_HISTORY_PARAMETERS)
    assert life.value("k_per_yr") == 0.09
    assert life.integer("max_age_yr") == 25 and isinstance(life.integer("max_age_yr"), int)
    rrs = life["relative_reproductive_success"]
    assert (rrs.unit, rrs.source_id, rrs.confidence) == ("1", "modeller_assumption", "assumed")
    assert rrs.assumption and rrs.reasoning == "synthetic test value"
    assert rrs.prior == Prior("beta", {"mean": 0.7, "sd": 0.15})
    assert life["k_per_yr"].prior is None
    with pytest.raises(KeyError, match="valid: max_age_yr"):
        life.value("growth_rate")


def test_sources_are_the_level_two_identifier_headings(data_dir: Path) -> None:
    # "## Conflicts and choices" is prose, not a source; "###" headings are ignored.
    (data_dir / "SOURCES.md").write_text(
        (data_dir / "SOURCES.md").read_text() + "\n## extra_src: Title\n### not_a_source\n"
    )
    sources = load_data(data_dir).sources
    assert sources == {"survey_report", "catch_record", "assumption_cv", "modeller_assumption",
                       "extra_src"}


def test_sha256_depends_on_file_bytes_only(make_data_dir) -> None:
    first, second = make_data_dir("a"), make_data_dir("b")
    assert load_data(first).sha256 == load_data(second).sha256  # same bytes, other directory
    assert len(load_data(first).sha256) == 64
    set_line(second / CATCH, 2, "1956,201,catch_record,derived,")
    assert load_data(first).sha256 != load_data(second).sha256


def test_loading_never_modifies_the_files(data_dir: Path) -> None:
    before = file_digests(data_dir)
    load_data(data_dir)
    assert file_digests(data_dir) == before
    set_line(data_dir / BIOMASS, 3, "2012,-1,0.3,survey_report,reported,,,,")
    before = file_digests(data_dir)
    with pytest.raises(DataError):
        load_data(data_dir)
    assert file_digests(data_dir) == before


def test_summarise_reports_years_totals_and_provenance(data_dir: Path) -> None:
    text = summarise(load_data(data_dir))
    assert "5 observations in 2002-2024" in text
    assert "biomass 2,592-127,500 t" in text
    assert "catch.csv: 1956-2024 (69 years), total catch" in text
    assert "total 115,000,000 fish released" in text
    assert "33 with assumption = true" in text
    rrs_line = next(line for line in text.splitlines() if "relative_reproductive_success" in line)
    for part in ("0.7", "modeller_assumption", "assumed", "prior beta"):
        assert part in rrs_line
    assert "1/yr" in next(line for line in text.splitlines() if "k_per_yr" in line)


@pytest.mark.skipif(not (BUNDLED_DATA_DIRECTORY / LIFE).is_file(), reason="no bundled data yet")
def test_bundled_data_directory_is_valid() -> None:
    data = load_data(BUNDLED_DATA_DIRECTORY)
    assert len(data.biomass) > 0 and data.notes == ()


# --------------------------------------------------------------------------- optional files


def test_missing_optional_files_fall_back_to_bundled_data(make_data_dir, monkeypatch) -> None:
    user, bundled = make_data_dir("user"), make_data_dir("bundled")
    (user / AUXILIARY).unlink()
    (user / "climate_scenarios.toml").unlink()
    monkeypatch.setattr(inputs, "BUNDLED_DATA_DIRECTORY", bundled)
    data = load_data(user)
    assert data.files[AUXILIARY] == bundled / AUXILIARY
    assert len(data.auxiliary) == 2
    assert data.climate_scenarios["scenarios"]["ssp245"]["air_warming_c"]["2090"] == 2.7
    assert len(data.notes) == 2
    assert AUXILIARY in data.notes[0] and str(bundled) in data.notes[0]
    assert "Notes:" in summarise(data) and data.notes[0] in summarise(data)


def test_missing_optional_files_without_bundled_copy_are_empty(data_dir, tmp_path,
                                                               monkeypatch) -> None:
    (data_dir / AUXILIARY).unlink()
    monkeypatch.setattr(inputs, "BUNDLED_DATA_DIRECTORY", tmp_path / "nowhere")
    data = load_data(data_dir)
    assert len(data.auxiliary) == 0 and data.auxiliary.path is None
    assert AUXILIARY not in data.files
    assert any(AUXILIARY in note and "without it" in note for note in data.notes)


# --------------------------------------------------------------------------- file-level errors


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_required_file(data_dir: Path, name: str) -> None:
    (data_dir / name).unlink()
    message = load_error(data_dir)
    assert str(data_dir / name) in message and "required file is missing" in message


def test_missing_directory(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nope")
    assert "nope" in message and "does not exist" in message


def test_missing_column_lists_expected_columns(data_dir: Path) -> None:
    rewrite_columns(data_dir / BIOMASS, drop="cv")
    message = load_error(data_dir)
    assert f"{BIOMASS}, line 1: missing column(s) cv" in message
    assert "expected columns year, biomass_t, cv, source_id, confidence" in message


def test_unknown_column_lists_allowed_columns(data_dir: Path) -> None:
    rewrite_columns(data_dir / CATCH, add=("colour", "red"))
    message = load_error(data_dir)
    assert f"{CATCH}, line 1: unknown column 'colour'" in message
    assert "allowed columns: year, catch_t, source_id, confidence, note" in message


def test_duplicate_column(data_dir: Path) -> None:
    rewrite_columns(data_dir / CATCH, add=("catch_t", "1"))
    assert f"{CATCH}, line 1: column 'catch_t' appears twice" in load_error(data_dir)


def test_empty_file(data_dir: Path) -> None:
    (data_dir / TEMPERATURE).write_text("")
    message = load_error(data_dir)
    assert f"{TEMPERATURE}, line 1: file is empty" in message
    assert "year,temperature_c,source_id,confidence" in message


def test_header_only(data_dir: Path) -> None:
    path = data_dir / RELEASES
    path.write_text(path.read_text().splitlines()[0] + "\n")
    message = load_error(data_dir)
    assert f"{RELEASES}, line 2: expected at least one data row" in message


def test_non_utf8_bytes_name_the_line(data_dir: Path) -> None:
    path = data_dir / BIOMASS
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3] + b"caf\xe9"  # Latin-1 e-acute in the note of line 4
    path.write_bytes(b"\n".join(lines))
    message = load_error(data_dir)
    assert f"{BIOMASS}, line 4: expected UTF-8 text" in message and "0xe9" in message


def test_blank_lines_are_ignored(data_dir: Path) -> None:
    path = data_dir / BIOMASS
    path.write_text(path.read_text() + "\n\n")
    assert len(load_data(data_dir).biomass) == 5


def test_sources_file_without_headings(data_dir: Path) -> None:
    (data_dir / "SOURCES.md").write_text("# Sources\n\nnone here\n")
    message = load_error(data_dir)
    assert "SOURCES.md, line 1" in message and "## source_id" in message


# --------------------------------------------------------------------------- value errors (CSV)

B = "survey_report,reported,hydroacoustic,assumption_cv,assumed,"  # biomass provenance tail
R = "survey_report,reported"  # releases provenance tail

# (file, line to replace, new line (None deletes it), fragments the message must contain)
CSV_CASES = {
    "non_numeric_biomass": (BIOMASS, 3, f"2012,abc,0.3,{B}",
                            ["line 3, column biomass_t", "positive number of tonnes", "'abc'"]),
    "nan_biomass": (BIOMASS, 4, f"2015,nan,0.3,{B}", ["line 4, column biomass_t", "finite",
                                                      "'nan'"]),
    "inf_cv": (BIOMASS, 4, f"2015,62100,inf,{B}", ["line 4, column cv", "finite", "'inf'"]),
    "negative_biomass": (BIOMASS, 5, f"2020,-3.1,0.3,{B}", ["line 5, column biomass_t",
                                                            "positive", "'-3.1'"]),
    "zero_biomass": (BIOMASS, 2, f"2002,0,0.3,{B}", ["line 2, column biomass_t", "'0'"]),
    "zero_cv": (BIOMASS, 2, f"2002,2592,0,{B}", ["line 2, column cv", "cv > 0", "'0'"]),
    "negative_cv": (BIOMASS, 6, f"2024,127500,-0.2,{B}", ["line 6, column cv", "'-0.2'"]),
    "empty_value": (BIOMASS, 3, f"2012,,0.3,{B}", ["line 3, column biomass_t", "got ''"]),
    "duplicate_year": (BIOMASS, 4, f"2012,62100,0.3,{B}",
                       ["line 4, column year", "duplicate year 2012", "also on line 3"]),
    "unsorted_years": (BIOMASS, 4, f"2010,62100,0.3,{B}",
                       ["line 4, column year", "ascending", "got 2010 after 2012"]),
    "year_too_early": (BIOMASS, 2, f"1850,2592,0.3,{B}",
                       ["line 2, column year", "1900..2100", "'1850'"]),
    "year_too_late": (BIOMASS, 6, f"2200,127500,0.3,{B}", ["line 6, column year", "'2200'"]),
    "fractional_year": (BIOMASS, 2, f"2002.5,2592,0.3,{B}", ["line 2, column year",
                                                             "integer year"]),
    "bad_confidence": (BIOMASS, 3, "2012,33569,0.3,survey_report,guess,,,,",
                       ["line 3, column confidence", "measured, reported, derived, assumed",
                        "'guess'"]),
    "empty_source": (BIOMASS, 3, "2012,33569,0.3,,reported,,,,",
                     ["line 3, column source_id", "non-empty source_id", "SOURCES.md"]),
    "unknown_source": (BIOMASS, 3, "2012,33569,0.3,survey_reprot,reported,,,,",
                       ["line 3, column source_id", "SOURCES.md", "'survey_reprot'",
                        "did you mean 'survey_report'"]),
    "unknown_cv_source": (BIOMASS, 3, "2012,33569,0.3,survey_report,reported,,nope,,",
                          ["line 3, column cv_source_id", "'nope'"]),
    "bad_cv_confidence": (BIOMASS, 3, "2012,33569,0.3,survey_report,reported,,,maybe,",
                          ["line 3, column cv_confidence", "'maybe'"]),
    "too_few_fields": (BIOMASS, 3, "2012,33569", ["line 3", "expected 9 fields", "found 2"]),
    "negative_catch": (CATCH, 10, "1964,-5,catch_record,derived,",
                       ["line 10, column catch_t", "non-negative", "'-5'"]),
    "inf_catch": (CATCH, 10, "1964,inf,catch_record,derived,", ["line 10, column catch_t",
                                                                "finite"]),
    "gap_in_catch": (CATCH, 10, None, ["line 10, column year", "gap in years",
                                       "expected 1964 after 1963, got 1965"]),
    "gap_in_temperature": (TEMPERATURE, 20, None, ["line 20, column year",
                                                   "expected 1974 after 1973"]),
    "duplicate_temperature_year": (TEMPERATURE, 10, "1963,14.0,modeller_assumption,assumed,",
                                   ["line 10, column year", "duplicate year 1963"]),
    "temperature_out_of_range": (TEMPERATURE, 3, "1957,45,modeller_assumption,assumed,",
                                 ["line 3, column temperature_c", "between -5 and 40", "'45'"]),
    "negative_releases": (RELEASES, 3, f"2003,1,5.0,-10,{R}",
                          ["line 3, column fish_released", "non-negative", "'-10'"]),
    "zero_release_weight": (RELEASES, 3, f"2003,1,0,5000000,{R}",
                            ["line 3, column weight_at_release_g", "positive weight"]),
    "negative_release_age": (RELEASES, 4, f"2004,-1,5.0,5000000,{R}",
                             ["line 4, column age_at_release_yr", "'-1'"]),
    "fractional_release_age": (RELEASES, 4, f"2004,1.5,5.0,5000000,{R}",
                               ["line 4, column age_at_release_yr", "integer age"]),
    "duplicate_release_year_age": (RELEASES, 3, f"2002,1,5.0,5000000,{R}",
                                   ["line 3, column year",
                                    "duplicate (year, age_at_release_yr) = (2002, 1)",
                                    "also on line 2"]),
    "unsorted_release_years": (RELEASES, 4, f"2001,0,5.0,5000000,{R}",
                               ["line 4, column year", "got 2001 after 2003"]),
    "unknown_release_source": (RELEASES, 2, "2002,1,5.0,5000000,hatchery_x,reported",
                               ["line 2, column source_id", "'hatchery_x'"]),
    "unknown_auxiliary_quantity": (AUXILIARY, 2, "2015,hatchery_share,0.2,fraction,"
                                   "survey_report,reported,",
                                   ["line 2, column quantity", "hatchery_fraction_biomass",
                                    "'hatchery_share'"]),
    "auxiliary_unit_mismatch": (AUXILIARY, 3, "2022,numbers_fish,555,million fish,"
                                "survey_report,reported,",
                                ["line 3, column unit", "expected 'fish'", "'million fish'"]),
    "auxiliary_fraction_above_one": (AUXILIARY, 2, "2015,hatchery_fraction_biomass,1.5,"
                                     "fraction,survey_report,reported,",
                                     ["line 2, column value", "[0, 1]", "1.5"]),
}


@pytest.mark.parametrize("case", CSV_CASES.values(), ids=CSV_CASES.keys())
def test_invalid_csv_value_is_refused_naming_file_line_column(data_dir: Path, case) -> None:
    name, line, text, fragments = case
    set_line(data_dir / name, line, text)
    message = load_error(data_dir)
    assert message.startswith(str(data_dir / name) + ", line ")
    for fragment in fragments:
        assert fragment in message


# --------------------------------------------------------------------------- life_history.toml


def test_unknown_life_history_parameter_lists_valid_ones(data_dir: Path) -> None:
    path = data_dir / LIFE
    path.write_text(path.read_text() + '\n[growth_rate]\nvalue = 1.0\nunit = "1/yr"\n')
    message = load_error(data_dir)
    assert f"{LIFE}, line {line_of(path, '[growth_rate]')}, key growth_rate" in message
    assert "unknown parameter 'growth_rate'" in message
    assert "valid parameters: max_age_yr, l_inf_cm, k_per_yr" in message


def test_missing_life_history_parameter(data_dir: Path) -> None:
    path = data_dir / LIFE
    text = path.read_text()
    start = text.index("[sigma_r]")
    path.write_text(text[:start] + text[text.index("[dd_strength]"):])
    message = load_error(data_dir)
    assert f"{LIFE}, key sigma_r: missing parameter(s) sigma_r" in message


@pytest.mark.parametrize("field", ["value", "unit", "source_id", "confidence"])
def test_missing_life_history_field(data_dir: Path, field: str) -> None:
    path = data_dir / LIFE
    name = "relative_reproductive_success"
    line = line_of(path, f"{field} =", table=name)
    set_line(path, line, None)
    message = load_error(data_dir)
    assert f"{LIFE}, line {line_of(path, f'[{name}]')}, key {name}" in message
    assert f"missing key {name}.{field}" in message


def test_unknown_life_history_field_lists_valid_keys(data_dir: Path) -> None:
    path = data_dir / LIFE
    edit_table(path, "k_per_yr", "unit =", 'notes = "x"\nunit =')
    message = load_error(data_dir)
    assert f"line {line_of(path, 'notes =', 'k_per_yr')}, key k_per_yr.notes" in message
    assert "valid keys: value, unit, source_id, confidence, assumption, reasoning" in message


def test_wrong_unit_names_expected_and_found(data_dir: Path) -> None:
    path = data_dir / LIFE
    edit_table(path, "k_per_yr", 'unit = "1/yr"', 'unit = "1/d"')
    message = load_error(data_dir)
    assert f"{LIFE}, line {line_of(path, 'unit =', 'k_per_yr')}, key k_per_yr.unit" in message
    assert "expected unit '1/yr', got '1/d'" in message


def test_assumption_without_reasoning(data_dir: Path) -> None:
    path = data_dir / LIFE
    edit_table(path, "l_inf_cm", 'reasoning = "synthetic test value"', 'reasoning = " "')
    message = load_error(data_dir)
    assert f"{LIFE}, line" in message and "key l_inf_cm.assumption" in message
    assert "needs a non-empty l_inf_cm.reasoning" in message


LIFE_HISTORY_VALUE_CASES = {
    "non_integer_max_age": ("max_age_yr", "value = 25", "value = 20.5", "integer"),
    "non_integer_dd_window": ("dd_window_end_age_yr", "value = 1", "value = 1.5", "integer"),
    "hatch_time_after_the_year": ("hatch_time_yr", "value = 0.45", "value = 1.2", "in (0, 1)"),
    "egg_survival_zero": ("max_egg_survival", "value = 0.005", "value = 0.0", "in (0, 0.05]"),
    "egg_survival_above_bound": ("max_egg_survival", "value = 0.005", "value = 0.06", "got 0.06"),
    "fraction_above_1": ("release_survival", "value = 0.3", "value = 1.5", "in [0, 1]"),
    "negative_fraction": ("female_fraction", "value = 0.45", "value = -0.1", "in [0, 1]"),
    "negative_length": ("l_inf_cm", "value = 55.0", "value = -1.0", "in (0, 200] cm"),
    "zero_k": ("k_per_yr", "value = 0.09", "value = 0.0", "got 0.0"),
    "string_value": ("k_per_yr", "value = 0.09", 'value = "fast"', "expected a finite number"),
    "bool_value": ("survey_q", "value = 1.0", "value = true", "expected a finite number"),
    "nan_value": ("survey_q", "value = 1.0", "value = nan", "expected a finite number"),
    "window_beyond_max_age": ("dd_window_end_age_yr", "value = 1", "value = 30",
                              "age < max_age_yr (25)"),
    "unknown_source": ("lw_b", 'source_id = "modeller_assumption"', 'source_id = "fishbase"',
                       "SOURCES.md"),
    "bad_confidence": ("lw_b", 'confidence = "assumed"', 'confidence = "guessed"',
                       "one of measured, reported, derived, assumed"),
    "assumption_not_bool": ("lw_b", "assumption = true", 'assumption = "yes"', "true or false"),
}


@pytest.mark.parametrize("case", LIFE_HISTORY_VALUE_CASES.values(),
                         ids=LIFE_HISTORY_VALUE_CASES.keys())
def test_invalid_life_history_value(data_dir: Path, case) -> None:
    name, old, new, fragment = case
    path = data_dir / LIFE
    edit_table(path, name, old, new)
    key = new.split(" =")[0]
    message = load_error(data_dir)
    line = line_of(path, new, table=name)
    assert f"{LIFE}, line {line}, key {name}.{key}" in message
    assert fragment in message


PRIOR_CASES = {
    "unknown_distribution": ('{distribution = "gamma", mean = 0.7, sd = 0.1}',
                             "expected one of normal, lognormal, beta, uniform, got 'gamma'"),
    "missing_distribution": ("{mean = 0.7, sd = 0.1}", "missing key 'distribution'"),
    "missing_parameter": ('{distribution = "beta", mean = 0.7}', "missing key 'sd'"),
    "unknown_parameter": ('{distribution = "beta", mean = 0.7, sd = 0.1, median = 0.7}',
                          "unknown key 'median'"),
    "zero_sd": ('{distribution = "normal", mean = 0.7, sd = 0.0}', "sd > 0"),
    "infeasible_beta_sd": ('{distribution = "beta", mean = 0.7, sd = 0.5}',
                           "sqrt(mean*(1-mean))"),
    "beta_mean_outside": ('{distribution = "beta", mean = 1.2, sd = 0.1}', "in (0, 1)"),
    "uniform_reversed": ('{distribution = "uniform", lower = 0.9, upper = 0.3}',
                         "lower < upper"),
    "lognormal_median": ('{distribution = "lognormal", median = -1.0, sd_log = 0.3}',
                         "median > 0"),
}


@pytest.mark.parametrize("case", PRIOR_CASES.values(), ids=PRIOR_CASES.keys())
def test_invalid_prior(data_dir: Path, case) -> None:
    prior, fragment = case
    path = data_dir / LIFE
    name = "relative_reproductive_success"
    edit_table(path, name, '{distribution = "beta", mean = 0.7, sd = 0.15}', prior)
    message = load_error(data_dir)
    assert f"{LIFE}, line {line_of(path, 'prior =', name)}, key {name}.prior" in message
    assert fragment in message


def test_life_history_toml_syntax_error_names_line(data_dir: Path) -> None:
    path = data_dir / LIFE
    edit_table(path, "lw_a", "value = 0.012", "value = 0.012 0.013")
    message = load_error(data_dir)
    assert f"{LIFE}: invalid TOML" in message
    assert f"line {line_of(path, 'value = 0.012 0.013')}" in message


def test_life_history_non_utf8(data_dir: Path) -> None:
    path = data_dir / LIFE
    path.write_bytes(b"# caf\xe9\n" + path.read_bytes())
    assert f"{LIFE}, line 1: expected UTF-8 text" in load_error(data_dir)


# --------------------------------------------------------------------------- priors


def test_normal_and_lognormal_logpdf_match_closed_form() -> None:
    # Closed-form densities written out independently of scipy; only rounding differs.
    x = np.array([0.05, 0.2, 0.7, 1.5])
    normal = Prior("normal", {"mean": 0.7, "sd": 0.15})
    expected = -0.5 * np.log(2 * np.pi) - np.log(0.15) - (x - 0.7) ** 2 / (2 * 0.15**2)
    np.testing.assert_allclose(normal.logpdf(x), expected, rtol=1e-12)
    lognormal = Prior("lognormal", {"median": 0.2, "sd_log": 0.3})
    expected = (-np.log(x) - np.log(0.3) - 0.5 * np.log(2 * np.pi)
                - (np.log(x) - np.log(0.2)) ** 2 / (2 * 0.3**2))
    np.testing.assert_allclose(lognormal.logpdf(x), expected, rtol=1e-12)
    assert isinstance(normal.logpdf(0.7), float)


@pytest.mark.parametrize("table", [
    {"distribution": "normal", "mean": -0.3, "sd": 0.4},
    {"distribution": "lognormal", "median": 2e5, "sd_log": 0.5},
    {"distribution": "beta", "mean": 0.3, "sd": 0.15},
    {"distribution": "beta", "mean": 0.5, "sd": 0.35},     # a, b < 1: infinite at the ends
    {"distribution": "uniform", "lower": 0.05, "upper": 0.8},
])
def test_logpdf_is_scipys_inside_outside_and_on_the_edges_of_the_support(table) -> None:
    # the objective's written-out densities against scipy.stats' frozen distributions
    prior = Prior.from_mapping(table, where="test")
    x = np.concatenate([[-1.0, 0.0, 1e-300, 0.05, 0.8, 1.0, 1.5], prior.ppf(np.linspace(0.01, 0.99, 9)),
                        [2e5, 1e7]])
    expected = prior._scipy.logpdf(x)
    got = prior.logpdf(x)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)
    assert prior.logpdf(float(x[10])) == pytest.approx(float(expected[10]), rel=1e-12)


def test_beta_prior_is_parameterised_by_mean_and_sd() -> None:
    # mean 0.5, sd sqrt(1/12) is Beta(1, 1) = Uniform(0, 1): log density 0 inside.
    flat = Prior("beta", {"mean": 0.5, "sd": math.sqrt(1 / 12)})
    np.testing.assert_allclose(flat.beta_shape(), (1.0, 1.0), rtol=1e-12)
    np.testing.assert_allclose(flat.logpdf(np.array([0.1, 0.9])), [0.0, 0.0], atol=1e-12)
    steep = Prior("beta", {"mean": 0.7, "sd": 0.15})
    assert steep.mean() == pytest.approx(0.7, rel=1e-12)
    assert steep.sd() == pytest.approx(0.15, rel=1e-12)
    assert steep.logpdf(1.5) == -np.inf


def test_prior_sd_is_on_the_natural_scale() -> None:
    lognormal = Prior("lognormal", {"median": 200000.0, "sd_log": 0.5})
    expected = 200000.0 * math.exp(0.5**2 / 2) * math.sqrt(math.exp(0.5**2) - 1)
    assert lognormal.sd() == pytest.approx(expected, rel=1e-12)
    assert lognormal.sd() == pytest.approx(stats.lognorm(0.5, scale=2e5).std(), rel=1e-12)
    uniform = Prior("uniform", {"lower": 45.0, "upper": 70.0})
    assert uniform.sd() == pytest.approx(25 / math.sqrt(12), rel=1e-12)
    assert uniform.logpdf(50.0) == pytest.approx(-math.log(25.0), rel=1e-12)
    assert uniform.logpdf(80.0) == -np.inf


def test_prior_samples_are_seeded_and_have_the_prior_moments() -> None:
    prior = Prior("beta", {"mean": 0.7, "sd": 0.15})
    draws = prior.sample(np.random.default_rng(20260601), 20000)
    again = prior.sample(np.random.default_rng(20260601), 20000)
    np.testing.assert_array_equal(draws, again)
    assert draws.shape == (20000,) and np.all((draws > 0) & (draws < 1))
    # Standard error of the mean is 0.15/sqrt(20000) ≈ 0.001; 5 SE keeps a false failure
    # below 1e-6 while a wrong shape conversion (e.g. a, b swapped: mean 0.3) fails clearly.
    assert abs(draws.mean() - 0.7) < 5 * 0.15 / math.sqrt(20000)
    assert abs(draws.std() - 0.15) < 0.01


def test_prior_from_mapping_errors_name_where_and_key() -> None:
    with pytest.raises(ConfigError, match=r"^cfg.toml, key x.prior: unknown key 'mu'.*mean, sd"):
        Prior.from_mapping({"distribution": "normal", "mu": 1, "sd": 1}, "cfg.toml, key x.prior")
    with pytest.raises(DataError, match="here: missing key 'upper'"):
        Prior.from_mapping({"distribution": "uniform", "lower": 1}, "here", error=DataError)
    with pytest.raises(ConfigError, match="prior: sd: expected sd > 0"):
        Prior("normal", {"mean": 0.0, "sd": -1.0})
    prior = Prior.from_mapping({"distribution": "uniform", "lower": 1, "upper": 2}, "x")
    assert Prior.from_mapping(prior.to_mapping(), "x") == prior
    assert hash(prior) == hash(Prior("uniform", {"upper": 2.0, "lower": 1.0}))


def test_copy_of_bundled_layout_with_extra_files_still_loads(data_dir: Path) -> None:
    # Files other than the known ones (README, figures) are ignored, not refused.
    (data_dir / "README.md").write_text("about these data\n")
    shutil.copy(data_dir / CATCH, data_dir / "catch_backup.csv")
    assert len(load_data(data_dir).catch.year) == 69
