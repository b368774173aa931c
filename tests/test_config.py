"""Tests of carpmodel.io.config: TOML run configs into frozen dataclasses and back."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from carpmodel.errors import ConfigError
from carpmodel.inference.build import build_spec
from carpmodel.io.config import (
    DataOptions,
    FitOptions,
    ModelOptions,
    RunConfig,
    SensitivitySettings,
    SimulateOptions,
    config_sha256,
    default_config,
    from_mapping,
    load_config,
    to_toml,
)
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    config = default_config()
    assert config == RunConfig()
    assert config.seed == 20260601
    assert config.data == DataOptions(directory="data")
    assert config.model.recruitment == "beverton_holt"
    assert (config.model.first_year, config.model.last_year) == (2000, 2024)
    assert config.model.initial_state == "depletion"
    assert (config.simulate.first_year, config.simulate.last_year) == (2000, 2024)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


def test_partial_file_keeps_defaults_for_missing_keys(tmp_path: Path) -> None:
    path = write(tmp_path, 'seed = 7\n[model]\nrecruitment = "ricker"\n')
    config = load_config(path)
    assert config.seed == 7 and config.model.recruitment == "ricker"
    assert config.model.first_year == 2000 and config.simulate == SimulateOptions()


def test_default_toml_round_trips(tmp_path: Path) -> None:
    text = to_toml(default_config())
    assert load_config(write(tmp_path, text)) == default_config()
    assert tomllib.loads(text)["model"]["initial_state"] == "depletion"


def test_changed_config_round_trips(tmp_path: Path) -> None:
    config = RunConfig(
        seed=1,
        data=DataOptions(directory='C:\\data "quoted"\n\u00e9\U0001f41f'),
        model=ModelOptions(recruitment="ricker", first_year=1956, initial_state="unfished_1956"),
        simulate=SimulateOptions(first_year=2010, last_year=2050),
    )
    assert load_config(write(tmp_path, to_toml(config))) == config


def test_initial_state_remedies_round_trip_and_reach_the_spec(tmp_path: Path) -> None:
    config = RunConfig(
        model=ModelOptions(initial_state="unfished_1956", unfished_change_year=1975),
        fit=FitOptions(catch_sd_log=0.2, catch_scale_sd_log=0.3, unreported_catch_years=(1963, 2000),
                        unreported_catch_prior_median_t=500.0, unfished_change_prior_sd_log=0.4,
                        early_survey_last_year=2012, early_separate_q=False, early_cv_multiplier=2.0),
    )
    text = to_toml(config)
    assert tomllib.loads(text)["fit"]["unreported_catch_years"] == [1963, 2000]
    assert load_config(write(tmp_path, text)) == config
    # the spec is built from the config itself (one options type): its priors are the config's
    spec = build_spec(load_data(BUNDLED_DATA_DIRECTORY), config)
    free = {f.field: f for f in spec.free}
    assert spec.unfished_change_year == 1975 and spec.catch_sd_log == 0.2
    assert spec.unreported_catch_years == (1963, 2000)
    assert free["unreported_catch_t"].prior.parameters == {"median": 500.0, "sd_log": 1.0}
    assert free["unfished_change"].prior.parameters == {"median": 1.0, "sd_log": 0.4}
    assert free["catch_scale"].prior.parameters == {"median": 1.0, "sd_log": 0.3}
    assert not spec.observations.early.any()   # early_separate_q = False: one q for every survey


def test_with_fit_routes_each_key_to_its_section_and_refuses_unknown_keys() -> None:
    config = default_config().with_fit(initial_state="equilibrium_1986", catch_sd_log=0.2, seed=7)
    assert config.model.initial_state == "equilibrium_1986" and config.fit.catch_sd_log == 0.2
    assert config.seed == 7 and config.projection == default_config().projection
    with pytest.raises(ConfigError, match="n_start"):
        default_config().with_fit(n_start=2)


def test_config_sha256_identifies_the_configuration() -> None:
    assert config_sha256(default_config()) == config_sha256(RunConfig())
    assert len(config_sha256(default_config())) == 64
    assert config_sha256(default_config()) != config_sha256(RunConfig(seed=1))


def test_unknown_top_level_key_lists_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "sede = 3\n")
    message = config_error(path)
    assert message == (
        f"{path}, key sede: unknown key; valid top-level keys: seed, data, model, fit, diagnostics, "
        "projection, sensitivity, simulate"
    )


def test_unknown_nested_key_names_dotted_key_and_section(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nrecruitmnet = "ricker"\n')
    message = config_error(path)
    assert f"{path}, key model.recruitmnet: unknown key" in message
    assert ("valid keys in [model]: recruitment, first_year, last_year, initial_state, "
            "unfished_change_year") in message


@pytest.mark.parametrize(
    "text, key, fragment",
    [
        ('seed = "abc"', "seed", "expected an integer, got 'abc' (str)"),
        ("seed = true", "seed", "expected an integer, got True (bool)"),
        ("seed = 1.5", "seed", "expected an integer, got 1.5 (float)"),
        ("seed = -1", "seed", "expected a non-negative integer, got -1"),
        ('[model]\nrecruitment = "logistic"', "model.recruitment",
         "expected one of 'beverton_holt', 'ricker', got 'logistic'"),
        ('[model]\ninitial_state = 3', "model.initial_state", "expected one of"),
        ('[simulate]\nfirst_year = "2000"', "simulate.first_year", "expected an integer"),
        ("[simulate]\nfirst_year = 2030", "simulate.first_year",
         "expected first_year <= last_year (2024), got 2030"),
        ("[model]\nlast_year = 2500", "model.last_year", "expected a year in 1900..2100"),
        ("data = 3", "data", "expected a table, got 3"),
        ("[data]\ndirectory = 5", "data.directory", "expected a string, got 5 (int)"),
        ("[model]\nunfished_change_year = 1800", "model.unfished_change_year",
         "expected a year in 1900..2100, got 1800"),
        ('[model]\nunfished_change_year = "1975"', "model.unfished_change_year", "expected an integer"),
        ("[fit]\ncatch_scale_sd_log = -0.3", "fit.catch_scale_sd_log",
         "expected a positive number, got -0.3"),
        ("[fit]\nunreported_catch_years = [2000, 1963]", "fit.unreported_catch_years",
         "expected [first, last] with first <= last"),
        ("[fit]\nunreported_catch_years = [1963]", "fit.unreported_catch_years",
         "expected an array of 2 values"),
        ("[fit]\nunfished_change_prior_sd_log = 0", "fit.unfished_change_prior_sd_log",
         "expected a positive number"),
        ("[fit]\nearly_cv_multiplier = 0", "fit.early_cv_multiplier", "expected a positive number"),
        ("[fit]\ncatch_sd_log = 0.0", "fit.catch_sd_log", "expected a positive number, got 0.0"),
        ("[fit]\ncatch_error = 0.3", "fit.catch_error", "unknown key"),
    ],
)
def test_wrong_type_or_value_names_file_key_expected_and_got(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text + "\n")
    message = config_error(path)
    assert message.startswith(f"{path}, key {key}: ")
    assert fragment in message


def test_bad_toml_syntax_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'seed = 1\n[model]\nrecruitment = "ricker\n')
    message = config_error(path)
    assert str(path) in message and "invalid TOML" in message and "line 3" in message


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    assert "config file does not exist" in config_error(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"seed = 1\n# caf\xe9\n")
    assert f"{path}, line 2: expected UTF-8" in config_error(path)


def test_constructing_in_python_checks_choices_and_years() -> None:
    with pytest.raises(ConfigError, match="recruitment: expected one of"):
        ModelOptions(recruitment="logistic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="first_year: expected first_year <= last_year"):
        SimulateOptions(first_year=2030, last_year=2020)
    with pytest.raises(ConfigError, match="chunk_draws: expected an integer >= 1, got 0"):
        SensitivitySettings(chunk_draws=0)


# A future section shape (strategies as [[arrays of tables]], tuples, mappings, optionals):
# from_mapping and to_toml must handle it without new code.
@dataclass(frozen=True)
class _Rule:
    kind: Literal["always", "below_biomass"] = "always"
    threshold_t: float = 0.0


@dataclass(frozen=True)
class _Strategy:
    name: str
    fish_per_year: float
    years: tuple[int, ...] = ()
    rule: _Rule = field(default_factory=_Rule)


@dataclass(frozen=True)
class _Future:
    seed: int = 1
    weights: Mapping[str, float] = field(default_factory=dict)
    label: str | None = None
    strategies: tuple[_Strategy, ...] = ()


def test_generic_mechanism_handles_nested_tables_arrays_and_mappings() -> None:
    text = """
seed = 3
weights = {a = 1, b = 0.5}

[[strategies]]
name = "status_quo"
fish_per_year = 20000000
years = [2025, 2026]

[[strategies]]
name = "trigger"
fish_per_year = 1e7
[strategies.rule]
kind = "below_biomass"
threshold_t = 50000
"""
    config = from_mapping(_Future, tomllib.loads(text), "future.toml")
    assert config.strategies[0] == _Strategy("status_quo", 2e7, (2025, 2026))
    assert config.strategies[1].rule == _Rule("below_biomass", 50000.0)
    assert isinstance(config.strategies[0].fish_per_year, float)  # int in TOML → float field
    assert dict(config.weights) == {"a": 1.0, "b": 0.5} and config.label is None
    again = from_mapping(_Future, tomllib.loads(to_toml(config)), "round-trip")
    assert again == config


def test_generic_mechanism_error_paths_name_nested_keys() -> None:
    bad_rule = {"strategies": [{"name": "x", "fish_per_year": 1, "rule": {"kind": "never"}}]}
    with pytest.raises(ConfigError, match=r"^f.toml, key strategies\[0\].rule.kind: expected"):
        from_mapping(_Future, bad_rule, "f.toml")
    with pytest.raises(ConfigError, match=r"key strategies\[0\].name: missing; expected a str"):
        from_mapping(_Future, {"strategies": [{"fish_per_year": 1}]}, "f.toml")
    with pytest.raises(ConfigError, match=r"key weights.b: expected a number, got 'x'"):
        from_mapping(_Future, {"weights": {"b": "x"}}, "f.toml")
    with pytest.raises(ConfigError, match=r"key strategies\[0\].years\[1\]: expected an integer"):
        from_mapping(_Future, {"strategies": [{"name": "x", "fish_per_year": 1,
                                               "years": [2025, "2026"]}]}, "f.toml")
