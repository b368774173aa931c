"""Tests of carpmodel.model.forcing and carpmodel.model.covariates: series, responses, effects.

Tolerances: closed-form identities (responses at their reference, Q10 doubling, lag shifts,
multiplicative combination) hold to float rounding, so rtol is 1e-12 or exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.management.climate import projected_covariates
from carpmodel.model import forcing
from carpmodel.model.covariates import CovariateSeries, EnvSeries
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.forcing import (
    EFFECT_STRENGTH_RANGES,
    GROWTH_OPTIMUM_RANGE_C,
    Q10,
    TARGETS,
    Arrhenius,
    CovariateEffect,
    Linear,
    Logistic,
    Scaled,
    ThermalDome,
    UserResponse,
    default_effects,
    effect_multipliers,
    sensitivity_effects,
    spawning_season_temperature,
    temperature_covariates,
)


@pytest.fixture(scope="module")
def bundled():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def lake(bundled) -> EnvSeries:
    return EnvSeries.from_temperature(bundled)


@pytest.fixture(scope="module")
def scenarios(bundled):
    return dict(bundled.climate.scenarios)


# --------------------------------------------------------------------------- responses

RESPONSES = [
    Linear(0.08, 16.5),
    Q10(2.3, 16.5),
    Arrhenius(0.65, 16.5),
    ThermalDome(15.0, 6.0, 16.5),
    ThermalDome(12.55, 2.5, 12.5, strength=0.4),
    Logistic(18.0, 1.0, 16.5, -0.6),
    UserResponse(lambda t: 1.0 + 0.1 * (t - 16.5) ** 2, "quadratic"),
    Scaled(Q10(2.0, 16.5), 1.7),
]


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_each_response_is_one_at_its_reference(response):
    # Each form is algebraically 1 at its reference (exp(0), q^0, g(ref)/g(ref)); only rounding
    # of the reference subtraction remains, so rtol = 1e-12.
    reference = getattr(response, "reference_c", getattr(response, "reference", 16.5))
    if isinstance(response, Scaled):
        reference = response.response.reference_c
    value = response(np.array([reference]))
    np.testing.assert_allclose(value, 1.0, rtol=1e-12)


def test_q10_of_two_doubles_the_rate_for_ten_degrees():
    # 2 ** (10/10) = 2 exactly; the subtraction 26.5 − 16.5 is exact in binary floating point.
    q10 = Q10(2.0, 16.5)
    np.testing.assert_allclose(q10(np.array([26.5, 6.5])), [2.0, 0.5], rtol=1e-12)


def test_arrhenius_matches_the_boltzmann_factor():
    # exp(E/k (1/T_ref − 1/T)) written out independently; rounding only (rtol 1e-12).
    response = Arrhenius(0.65, 10.0)
    expected = np.exp(0.65 / 8.617333262e-5 * (1 / 283.15 - 1 / 293.15))
    np.testing.assert_allclose(response(np.array([20.0])), [expected], rtol=1e-12)
    assert 1.0 < expected < 3.0, "0.65 eV over 10-20 degC is a metabolic Q10 of ~2.5"


def test_thermal_dome_with_strength_zero_is_exactly_one():
    dome = ThermalDome(12.55, 2.5, 12.5, strength=0.0)
    t = np.linspace(-5.0, 40.0, 91)
    np.testing.assert_array_equal(dome(t), np.ones_like(t))


def test_thermal_dome_strength_blends_on_the_log_scale():
    # strength s gives full_dome ** s: log-multipliers scale linearly (rounding only).
    t = np.linspace(5.0, 22.0, 35)
    full = ThermalDome(15.0, 6.0, 16.5)(t)
    half = ThermalDome(15.0, 6.0, 16.5, strength=0.5)(t)
    np.testing.assert_allclose(np.log(half), 0.5 * np.log(full), rtol=1e-12, atol=1e-15)


def test_logistic_is_a_bounded_threshold_response():
    # Far below/above the threshold f → 1 and 1 + max_effect; normalised by f(ref).
    r = Logistic(threshold=18.0, scale=0.5, reference=16.5, max_effect=-0.6)
    f_ref = 1.0 - 0.6 / (1.0 + np.exp(-(16.5 - 18.0) / 0.5))
    np.testing.assert_allclose(r(np.array([-50.0, 80.0])), [1.0 / f_ref, 0.4 / f_ref], rtol=1e-12)
    values = r(np.linspace(10, 25, 50))
    assert np.all(np.diff(values) < 0) and np.all(values > 0)


@pytest.mark.parametrize("cls,kwargs,field", [
    (ThermalDome, dict(optimum_c=15, width_c=0, reference_c=16), "ThermalDome.width_c"),
    (ThermalDome, dict(optimum_c=15, width_c=2, reference_c=16, strength=1.5), "ThermalDome.strength"),
    (Q10, dict(q10=-1, reference_c=16), "Q10.q10"),
    (Logistic, dict(threshold=1, scale=1, reference=0, max_effect=-1), "Logistic.max_effect"),
])
def test_invalid_response_parameters_name_the_field(cls, kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        cls(**kwargs)


def test_user_callable_works_and_can_be_normalised():
    r = UserResponse(lambda t: np.exp(0.1 * t), "exp_growth", normalise_at=16.5)
    np.testing.assert_allclose(r(np.array([16.5, 26.5])), [1.0, np.e], rtol=1e-12)


@pytest.mark.parametrize("function,what", [
    (lambda t: t[:-1], "shape"),
    (lambda t: t - 100.0, "non-negative"),
    (lambda t: np.full_like(t, np.nan), "finite"),
    (lambda t: 1 / 0, "ZeroDivisionError"),
])
def test_bad_user_callable_raises_config_error_naming_it(function, what):
    r = UserResponse(function, "my_bad_response")
    with pytest.raises(ConfigError) as info:
        r(np.array([10.0, 12.0, 14.0]))
    assert "my_bad_response" in str(info.value) and what in str(info.value)


# --------------------------------------------------------------------------- default effects


def test_default_recruitment_dome_at_baseline_and_warming(lake):
    # Baseline spawning-season temperature of the bundled series (2000-2024 mean − 4 °C) lies
    # inside the lab optimum 10.8-14.3 °C; the dome is 1 at its reference (12.5 °C) by
    # construction and within 1 % of its peak there (documented: ≥ 0.999).
    (recruitment,) = [e for e in default_effects() if e.target == "recruitment"]
    spawning = spawning_season_temperature(lake)
    baseline = spawning.values[(spawning.year >= 2000)].mean()
    assert 10.8 <= baseline <= 14.3
    dome = recruitment.response
    peak = dome(np.array([dome.optimum_c]))[0]
    assert dome(np.array([dome.reference_c]))[0] == pytest.approx(1.0, rel=1e-12)
    assert 1.0 <= peak <= 1.01
    # +1 °C costs < 50 % (no collapse from a hard zero), and the multiplier is > 0 everywhere
    # in the physically possible range of river water.
    assert dome(np.array([baseline + 1.0]))[0] > 0.5
    assert np.all(dome(np.linspace(-2.0, 35.0, 371)) > 0)
    # Documented values relative to the peak: 6 °C → 0.032, 17 °C → 0.205 (small, non-zero).
    at_limits = dome(np.array([6.0, 17.0])) / peak
    np.testing.assert_allclose(at_limits, [0.032, 0.205], atol=0.001)


def test_default_effect_table_values():
    # The docstring table of default_effects, to its printed 3 decimals (atol 5e-4).
    table = {"recruitment": (0.738, 0.287), "growth": (0.870, 0.678),
             "natural_mortality": (1.084, 1.176), "maturity": (1.0, 1.0)}
    for effect in default_effects():
        r = effect.response
        ref = getattr(r, "reference_c", getattr(r, "reference", None))
        values = r(np.array([ref, ref + 2.0, ref + 4.0]))
        np.testing.assert_allclose(values, (1.0, *table[effect.target]), atol=5e-4, err_msg=effect.target)


def test_growth_optimum_range_spans_benefit_and_harm():
    # Warming by 2 °C must lower K for the lowest optimum and raise it for the highest.
    k_change = []
    for optimum in (GROWTH_OPTIMUM_RANGE_C[0], GROWTH_OPTIMUM_RANGE_C[-1]):
        (growth,) = [e for e in sensitivity_effects("growth", 1.0, growth_optimum_c=optimum)
                     if e.target == "growth"]
        k_change.append(growth.response(np.array([18.5]))[0])
    assert k_change[0] < 1.0 < k_change[1]


def test_strength_ranges_include_no_effect_and_zero_strength_is_flat():
    t = np.linspace(10.0, 25.0, 31)
    covariates = {"temperature_c": CovariateSeries(np.arange(2000, 2031), t),
                  "spawning_temperature_c": CovariateSeries(np.arange(2000, 2031), t - 4.0)}
    for target in TARGETS:
        strengths = EFFECT_STRENGTH_RANGES[target]
        assert len(strengths) >= 3 and 0.0 in strengths
        effects = sensitivity_effects(target, 0.0, others="none")
        m = effect_multipliers(effects, covariates, np.arange(2000, 2031))
        field = forcing.TARGET_FIELDS[target]
        np.testing.assert_array_equal(np.asarray(getattr(m, field)), 1.0)
        # strength 1 of every target is an actual effect (maturity uses the sensitivity slope)
        full = effect_multipliers(sensitivity_effects(target, 1.0, others="none"), covariates,
                                  np.arange(2000, 2031))
        assert np.ptp(np.asarray(getattr(full, field))) > 0.01, target


# --------------------------------------------------------------------------- effects


def test_lag_shifts_the_multiplier_by_k_years():
    # lag k: year y uses the covariate of y − k, so the lagged multiplier equals the unlagged
    # one k positions earlier (same arithmetic on the same numbers: exact).
    cov_years = np.arange(1990, 2031)
    temperature = 15.0 + np.sin(np.arange(cov_years.size))
    covariates = {"temperature_c": CovariateSeries(cov_years, temperature)}
    years = np.arange(2000, 2031)
    k = 3
    lag0 = effect_multipliers([CovariateEffect("recruitment", Linear(0.2, 15.0))], covariates, years)
    lagk = effect_multipliers([CovariateEffect("recruitment", Linear(0.2, 15.0), lag_years=k)],
                              covariates, years)
    np.testing.assert_array_equal(lagk.recruitment[k:], lag0.recruitment[:-k])
    np.testing.assert_array_equal(lagk.recruitment[:k], np.exp(0.2 * (temperature[7:10] - 15.0)))


def test_lag_without_the_earlier_years_is_refused():
    covariates = {"temperature_c": CovariateSeries(np.arange(2000, 2031), np.full(31, 15.0))}
    with pytest.raises(ConfigError, match=r"temperature_c.*1999"):
        effect_multipliers([CovariateEffect("growth", Q10(2.0, 15.0), lag_years=1)], covariates,
                           np.arange(2000, 2031))
    with pytest.raises(ConfigError, match="covariate 'salinity' not given"):
        effect_multipliers([CovariateEffect("growth", Q10(2.0, 15.0), covariate="salinity")],
                           covariates, np.arange(2000, 2031))


def test_two_effects_on_one_target_multiply():
    # The engine receives the product of both multipliers (rounding only: rtol 1e-12).
    years = np.arange(2000, 2021)
    t = np.linspace(14.0, 19.0, years.size)
    covariates = {"temperature_c": CovariateSeries(years, t),
                  "level_m": CovariateSeries(years, np.linspace(0, 2, 21))}
    a = CovariateEffect("natural_mortality", Q10(1.5, 16.5))
    b = CovariateEffect("natural_mortality", Linear(-0.1, 1.0), covariate="level_m")
    combined = effect_multipliers([a, b], covariates, years)
    assert isinstance(combined, ProcessMultipliers)
    np.testing.assert_allclose(combined.natural_mortality,
                               a.response(t) * b.response(np.linspace(0, 2, 21)), rtol=1e-12)
    assert combined.growth_k == 1.0 and combined.recruitment == 1.0 and combined.maturity_l50 == 1.0


def test_effect_multipliers_keep_batch_axes(lake, scenarios):
    years = np.arange(2025, 2041)
    anomalies = np.zeros((3, years.size))
    projected = projected_covariates(lake, scenarios, years, anomalies, air_to_water_ratio=0.5)
    m = effect_multipliers(default_effects(), temperature_covariates(projected), np.arange(2000, 2041))
    assert np.shape(m.recruitment) == (len(scenarios), 3, 41)
    assert np.shape(m.growth_k) == (len(scenarios), 3, 41)


def test_covariate_effect_validates_its_fields():
    with pytest.raises(ConfigError, match="CovariateEffect.target"):
        CovariateEffect("fecundity", Linear(0.0, 0.0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CovariateEffect.lag_years"):
        CovariateEffect("growth", Linear(0.0, 0.0), lag_years=-1)


# --------------------------------------------------------------------------- series


def test_bundled_temperature_is_assumed(lake):
    assert lake.name == "temperature_c" and lake.unit == "degC"
    assert not lake.observed and lake.filled_years == ()
    assert lake.source_id == "assumption_temperature_series"
    assert lake.first_year == 1956 and lake.last_year == 2024


def test_spawning_covariate_is_lake_minus_offset_and_assumed(lake):
    spawning = spawning_season_temperature(lake, offset_c=-4.0)
    np.testing.assert_allclose(spawning.values, lake.values - 4.0, rtol=1e-12)
    assert not spawning.observed and "ASSUMED" in spawning.note



def test_extend_records_filled_years(lake):
    extended = lake.extend(1950, 2030, beyond_series="mean_of_years", mean_years=5)
    assert extended.filled_years == tuple(range(1950, 1956)) + tuple(range(2025, 2031))
    np.testing.assert_allclose(extended.values[-6:], lake.values[-5:].mean(), rtol=1e-12)
    np.testing.assert_allclose(extended.values[:6], lake.values[0], rtol=1e-12)

