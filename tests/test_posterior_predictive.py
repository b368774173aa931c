"""Posterior predictive checks read their reported values from the data directory's
auxiliary_observations.csv: other values are checked against, absent quantities are not checked."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from carpmodel.diagnostics import posterior_predictive
from carpmodel.inference.build import build_spec
from carpmodel.inference.likelihood import predict
from carpmodel.inference.observations import NetMeanSize
from carpmodel.io.config import default_config
from carpmodel.io.inputs import AUXILIARY_FILE, BUNDLED_DATA_DIRECTORY, load_data

#: the module (its function of the same name shadows it in carpmodel.diagnostics)
pp = importlib.import_module("carpmodel.diagnostics.posterior_predictive")

HEADER = "year,quantity,value,unit,source_id,confidence,note\n"


def _data_with_auxiliary(tmp_path, rows: str):
    directory = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA_DIRECTORY, directory)
    (directory / AUXILIARY_FILE).write_text(HEADER + rows, encoding="utf-8")
    return load_data(directory)


def _fit_and_draws(data):
    """The bundled model at its start values and three nearby parameter vectors: the checks only
    need a spec and draws (no fit), so the test runs in a second."""
    spec = build_spec(data, default_config())
    theta = spec.initial_theta()
    steps = np.random.default_rng(1).normal(0.0, 0.01, (3, theta.size))
    return SimpleNamespace(spec=spec), theta[None, :] + steps


def test_bundled_data_checks_the_reported_2022_numbers_and_2024_sizes():
    data = load_data(BUNDLED_DATA_DIRECTORY)
    result, thetas = _fit_and_draws(data)
    checks = posterior_predictive(result, thetas, data.auxiliary)
    assert list(checks) == ["numbers_fish", "mean_length_cm", "mean_weight_g"]
    numbers = checks["numbers_fish"]
    assert (numbers["year"], numbers["reported"], numbers["unit"]) == (2022, 555e6, "fish")
    assert (checks["mean_length_cm"]["year"], checks["mean_length_cm"]["reported"]) == (2024, 27.64)
    assert (checks["mean_weight_g"]["year"], checks["mean_weight_g"]["reported"]) == (2024, 262.39)
    for check in checks.values():
        assert check["lower_95"] <= check["median"] <= check["upper_95"]
        assert check["reported_inside_95"] == (check["lower_95"] <= check["reported"] <= check["upper_95"])


def test_another_data_directory_is_checked_against_its_own_values(tmp_path, monkeypatch):
    data = _data_with_auxiliary(tmp_path, "2020,numbers_fish,400000000,fish,chinanews_2022_12_07,reported,\n"
                                          "2023,mean_length_cm,30.5,cm,qinghai_agri_2025_04_07,reported,\n")
    result, thetas = _fit_and_draws(data)
    checks = posterior_predictive(result, thetas, data.auxiliary)
    # only what the file reports: no weight check, and the years and values are the file's
    assert list(checks) == ["numbers_fish", "mean_length_cm"]
    assert (checks["numbers_fish"]["year"], checks["numbers_fish"]["reported"]) == (2020, 4e8)
    assert (checks["mean_length_cm"]["year"], checks["mean_length_cm"]["reported"]) == (2023, 30.5)
    # the model side of the count is 2020's acoustic biomass q·B over the net sample's mean weight
    # (the count is derived that way); without observation noise it is exact, by hand
    monkeypatch.setattr(pp, "NET_LENGTH_SD_LOG", 0.0)
    monkeypatch.setattr(pp, "NET_WEIGHT_SD_LOG", 0.0)
    quiet = SimpleNamespace(spec=replace(result.spec, sigma_survey=0.0))
    exact = posterior_predictive(quiet, thetas, data.auxiliary)
    spec = quiet.spec
    probe = NetMeanSize(year=np.array([2020]), mean_length_cm=np.ones(1), mean_weight_g=np.ones(1),
                        length_cv=pp.LENGTH_CV_DEFAULT)  # no net sample in this file
    probe_spec = replace(spec, samples=(probe,))
    state, u = predict(probe_spec, thetas)
    weight = probe.predict(probe_spec, state, u)["mean_weight_g"][:, 0]
    i = int(np.searchsorted(spec.years, 2020))
    by_hand = np.asarray(u.params.survey_q) * state.biomass_t[:, i] * 1e6 / weight
    assert exact["numbers_fish"]["median"] == pytest.approx(float(np.median(by_hand)), rel=1e-12)
    assert 0.9 < by_hand.min() / checks["numbers_fish"]["lower_95"]
    assert by_hand.max() / checks["numbers_fish"]["upper_95"] < 1.1


def test_a_quantity_reported_in_two_years_is_checked_in_each():
    data = load_data(BUNDLED_DATA_DIRECTORY)
    aux = data.auxiliary
    doubled = type(aux)(aux.path, np.append(aux.year, 2020), aux.quantity + ("numbers_fish",),
                        np.append(aux.value, 4e8), aux.unit + ("fish",), aux.source_id + ("x",),
                        aux.confidence + ("reported",), aux.note + ("",))
    result, thetas = _fit_and_draws(data)
    checks = posterior_predictive(result, thetas, doubled)
    assert list(checks) == ["numbers_fish_2022", "numbers_fish_2020", "mean_length_cm", "mean_weight_g"]
    assert checks["numbers_fish_2020"]["reported"] == 4e8 and checks["numbers_fish_2022"]["reported"] == 555e6


def test_without_the_rows_nothing_is_checked(tmp_path):
    data = _data_with_auxiliary(tmp_path, "2000,biomass_upper_bound_t,3000,t,qi_hongfang_2022,reported,\n")
    result, thetas = _fit_and_draws(data)
    assert posterior_predictive(result, thetas, data.auxiliary) == {}
