"""Temperature effects declared in the run config ([[projection.effect]])."""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.config import load_config
from carpmodel.model.forcing import Q10, ThermalDome
from carpmodel.pipeline import declared_effect

CONFIG = """
[[projection.effect]]
target = "natural_mortality"
response = "q10"
parameters = {q10 = 2.0, reference_c = 16.5}

[[projection.effect]]
target = "recruitment"
response = "thermal_dome"
covariate = "spawning_temperature_c"
lag_years = 1
parameters = {optimum_c = 12.55, width_c = 2.5, reference_c = 12.5}
"""


def test_declared_effects_build_the_forcing_types(tmp_path):
    path = tmp_path / "effects.toml"
    path.write_text(CONFIG)
    settings = load_config(path).projection.effect
    first, second = (declared_effect(e, i) for i, e in enumerate(settings))
    assert first.target == "natural_mortality" and isinstance(first.response, Q10)
    # Q10 = 2 doubles the rate for +10 degC: the declared parameters reach the response
    assert float(first.response(np.array([26.5]))[0]) == pytest.approx(2.0, rel=1e-12)
    assert isinstance(second.response, ThermalDome) and second.lag_years == 1
    assert second.covariate == "spawning_temperature_c"


def test_a_wrong_response_parameter_names_the_table_and_the_valid_fields(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[projection.effect]]\ntarget = "growth"\nresponse = "q10"\n'
                    'parameters = {q_10 = 2.0, reference_c = 16.5}\n')
    settings = load_config(path).projection.effect
    with pytest.raises(ConfigError, match=r"projection.effect\[0\].parameters.*q10, reference_c"):
        declared_effect(settings[0], 0)


def test_an_unknown_response_is_refused_when_the_config_loads(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[projection.effect]]\ntarget = "growth"\nresponse = "cubic"\n')
    with pytest.raises(ConfigError, match="response"):
        load_config(path)


def test_an_estimated_recruitment_temperature_slope_is_declared_in_the_fit_config():
    # [fit] estimate = [..., "recruitment_slope_per_c"] adds the slope with its N(0, 1) prior and
    # the lake temperature as covariate (reference = its mean over the fitted years)
    from carpmodel.inference.build import build_spec
    from carpmodel.io.config import default_config
    from carpmodel.io.inputs import load_data

    data = load_data("data")
    base = default_config()
    spec = build_spec(data, base.with_fit(estimate=base.fit.estimate + ("recruitment_slope_per_c",)))
    assert "recruitment_slope_per_c" in spec.parameter_names
    assert spec.covariate is not None and spec.covariate.values.size == spec.years.size
    assert spec.covariate.reference == pytest.approx(spec.covariate.values.mean(), rel=1e-12)
