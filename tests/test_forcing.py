"""Tests of carpmodel.model.forcing: series, response functions, effects, climate scenarios, anomalies.

Tolerances: closed-form identities (responses at their reference, Q10 doubling, lag shifts,
multiplicative combination) hold to float rounding, so rtol is 1e-12 or exact; statistical
checks (AR(1) recovery, stationary SD) use a fixed seed and a tolerance of about 3 standard
errors, stated at each test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carpmodel.errors import ConfigError, DataError
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.model import forcing
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.forcing import (
    EFFECT_STRENGTH_RANGES,
    GROWTH_OPTIMUM_RANGE_C,
    Q10,
    TARGETS,
    AnomalyModel,
    Arrhenius,
    ClimateScenario,
    Covariate,
    CovariateEffect,
    EnvSeries,
    Linear,
    Logistic,
    Scaled,
    ThermalDome,
    UserResponse,
    default_effects,
    effect_multipliers,
    load_climate_reference,
    load_scenarios,
    projected_covariates,
    sample_anomalies,
    scenario_warming_c,
    sensitivity_effects,
    spawning_season_temperature,
    temperature_covariates,
)

SSPS = ("ssp126", "ssp245", "ssp370", "ssp585")


@pytest.fixture(scope="module")
def bundled():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def lake(bundled) -> EnvSeries:
    return EnvSeries.from_temperature(bundled)


@pytest.fixture(scope="module")
def scenarios(bundled) -> dict[str, ClimateScenario]:
    return load_scenarios(bundled)


def simulated_ar1(phi: float, sd: float, n: int, seed: int) -> np.ndarray:
    """Stationary AR(1) with marginal SD ``sd`` (exact start)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = sd * z[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + sd * np.sqrt(1 - phi * phi) * z[t]
    return x


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
    covariates = {"temperature_c": Covariate(np.arange(2000, 2031), t),
                  "spawning_temperature_c": Covariate(np.arange(2000, 2031), t - 4.0)}
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
    covariates = {"temperature_c": Covariate(cov_years, temperature)}
    years = np.arange(2000, 2031)
    k = 3
    lag0 = effect_multipliers([CovariateEffect("recruitment", Linear(0.2, 15.0))], covariates, years)
    lagk = effect_multipliers([CovariateEffect("recruitment", Linear(0.2, 15.0), lag_years=k)],
                              covariates, years)
    np.testing.assert_array_equal(lagk.recruitment[k:], lag0.recruitment[:-k])
    np.testing.assert_array_equal(lagk.recruitment[:k], np.exp(0.2 * (temperature[7:10] - 15.0)))


def test_lag_without_the_earlier_years_is_refused():
    covariates = {"temperature_c": Covariate(np.arange(2000, 2031), np.full(31, 15.0))}
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
    covariates = {"temperature_c": Covariate(years, t), "level_m": Covariate(years, np.linspace(0, 2, 21))}
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


def test_csv_covariate_fills_gaps_and_records_them(tmp_path: Path):
    path = tmp_path / "salinity.csv"
    path.write_text(
        "year,salinity_g_per_l,source_id,confidence\n"
        "2000,14.0,survey,measured\n"
        "2001,,survey,measured\n"          # empty cell: missing value
        "2004,12.5,survey,measured\n"      # 2002-2003 missing years
        "2005,12.0,survey,measured\n"
        "2006,,survey,measured\n",         # trailing empty cell: held at the last value
        encoding="utf-8",
    )
    series = EnvSeries.from_csv(path, "salinity_g_per_l", "salinity_g_per_l", unit="g/L")
    np.testing.assert_array_equal(series.year, np.arange(2000, 2007))
    # linear interpolation between 2000 (14.0) and 2004 (12.5): −0.375 per year (exact in binary)
    np.testing.assert_allclose(series.values, [14.0, 13.625, 13.25, 12.875, 12.5, 12.0, 12.0], rtol=1e-12)
    assert series.filled_years == (2001, 2002, 2003, 2006)
    assert "linear interpolation" in series.note and "held at the nearest value" in series.note
    assert series.observed


def test_csv_covariate_errors_name_file_and_line(tmp_path: Path):
    path = tmp_path / "level.csv"
    path.write_text("year,level_m,source_id,confidence\n2000,3194.2,gauge,measured\n"
                    "2001,high,gauge,measured\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        EnvSeries.from_csv(path, "level_m", "level_m")
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "level_m" in message
    path.write_text("year,level_m,source_id,confidence\n2001,1,gauge,measured\n2000,2,gauge,measured\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match="line 3.*ascending"):
        EnvSeries.from_csv(path, "level_m", "level_m")


def test_extend_records_filled_years(lake):
    extended = lake.extend(1950, 2030, beyond_series="mean_of_years", mean_years=5)
    assert extended.filled_years == tuple(range(1950, 1956)) + tuple(range(2025, 2031))
    np.testing.assert_allclose(extended.values[-6:], lake.values[-5:].mean(), rtol=1e-12)
    np.testing.assert_allclose(extended.values[:6], lake.values[0], rtol=1e-12)


# --------------------------------------------------------------------------- scenarios


def test_scenarios_load_with_their_labels(scenarios):
    assert set(scenarios) == {"baseline", *SSPS}
    assert scenarios["ssp245"].label == "SSP2-4.5"
    assert dict(scenarios["ssp585"].air_warming_c) == {2050: 2.30, 2090: 5.38}


def test_scenario_path_properties(scenarios):
    years = np.arange(2024, 2101)
    paths = {name: scenario_warming_c(s, years, air_to_water_ratio=0.5, start_year=2024)
             for name, s in scenarios.items()}
    np.testing.assert_array_equal(paths["baseline"], 0.0)
    for name in SSPS:
        assert paths[name][0] == 0.0, "no warming at the start year"
        assert np.all(np.diff(paths[name]) >= 0) and paths[name][-1] > 0, name
    in_2100 = [paths[name][-1] for name in SSPS]
    assert in_2100 == sorted(in_2100) and len(set(in_2100)) == 4


def test_scenario_path_values_in_2100(scenarios):
    # Hand calculation for SSP2-4.5: air(2024) = 1.72·19/45; air(2100) = 2.65 + 0.029·10;
    # water = 0.5·(air(2100) − air(2024)). Rounding only: rtol 1e-12.
    expected = 0.5 * ((2.65 + 0.29) - 1.72 * 19 / 45)
    value = scenario_warming_c(scenarios["ssp245"], [2100], air_to_water_ratio=0.5, start_year=2024)
    np.testing.assert_allclose(value, [expected], rtol=1e-12)


@pytest.mark.parametrize("start_year", [1998, 2005, 2020, 2024, 2037.5, 2050, 2075, 2095])
def test_realised_warming_is_subtracted_for_any_start_year(scenarios, start_year):
    # The path is relative to start_year, so it is 0 there whatever warming came before
    # (subtraction of two equal floats: exactly 0).
    for scenario in scenarios.values():
        path = scenario_warming_c(scenario, [start_year], air_to_water_ratio=0.7, start_year=start_year)
        assert path[0] == 0.0


def test_air_to_water_ratio_scales_the_path(scenarios):
    years = np.arange(2025, 2101)
    half = scenario_warming_c(scenarios["ssp370"], years, air_to_water_ratio=0.5, start_year=2024)
    low = scenario_warming_c(scenarios["ssp370"], years, air_to_water_ratio=0.2, start_year=2024)
    np.testing.assert_allclose(low, half * 0.4, rtol=1e-12)


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


# --------------------------------------------------------------------------- anomalies


def test_ar1_fit_recovers_phi():
    # 300 years of a stationary AR(1) with phi 0.6: the MLE has SE ≈ √((1 − φ²)/n) = 0.046, so
    # 0.15 is ~3 SE (a random seed fails with probability ~0.1 %); the seed is fixed. The
    # detrending removes a linear trend, which biases phi down by only ~O(1/n).
    years = np.arange(1725, 2025)
    values = 16.0 + 0.01 * (years - 1725) + simulated_ar1(0.6, 0.3, years.size, seed=20240611)
    series = EnvSeries("temperature_c", years, values, "degC", True, "synthetic")
    model = AnomalyModel.fit(series, orders=((1, 0),))
    assert model.order == (1, 0) and model.confidence == "measured"
    assert abs(model.phi - 0.6) < 0.15
    # marginal SD 0.3: SE of an SD from ~300·(1 − φ)/(1 + φ) ≈ 75 effective values is ~0.025
    assert abs(model.marginal_sd - 0.3) < 0.08


def test_for_series_fits_observed_and_assumes_otherwise(lake, bundled):
    assumed = AnomalyModel.for_series(lake, bundled)
    assert assumed.confidence == "assumed" and assumed.phi == pytest.approx(0.3)
    assert assumed.marginal_sd == pytest.approx(0.3, rel=1e-12)
    assert "ASSUMED" in assumed.source and "not fitted" in assumed.source
    years = np.arange(1965, 2025)
    observed = EnvSeries("temperature_c", years, 16 + simulated_ar1(0.4, 0.3, years.size, 7), "degC",
                         True, "synthetic")
    fitted = AnomalyModel.for_series(observed, bundled)
    assert fitted.confidence == "measured" and "AIC" in fitted.source


def test_anomaly_sampling_is_reproducible_for_a_generator():
    model = AnomalyModel.ar1(0.3, 0.3)
    a = model.sample(np.random.default_rng(42), 50)
    b = model.sample(np.random.default_rng(42), 50)
    c = model.sample(np.random.default_rng(43), 50)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    arma = AnomalyModel((0.5,), (0.3,), 0.2)
    np.testing.assert_array_equal(arma.sample(np.random.default_rng(1), 20),
                                  arma.sample(np.random.default_rng(1), 20))


def test_anomaly_sampling_is_stationary():
    # First-year values over 20,000 generators: SD 0.3 with SE 0.3/√40000 = 0.0015; lag-1
    # correlation of the paths ≈ phi with SE ~0.007 per year pair → tolerances 0.01 and 0.03.
    model = AnomalyModel.ar1(0.3, 0.3)
    seeds = np.random.SeedSequence(5).spawn(20000)
    paths = sample_anomalies(model, [np.random.default_rng(s) for s in seeds], 3)
    assert paths.shape == (20000, 3)
    np.testing.assert_allclose(paths.std(axis=0), 0.3, atol=0.01)
    assert abs(np.corrcoef(paths[:, 1], paths[:, 2])[0, 1] - 0.3) < 0.03


def test_conditional_sampling_starts_from_the_last_anomaly():
    # With zero innovations an AR(1) continues as phi^k · last anomaly (exact recursion).
    model = AnomalyModel((0.5,), (), 0.0, recent_anomalies=(0.8,))
    np.testing.assert_allclose(model.sample(np.random.default_rng(0), 3, conditional=True),
                               [0.4, 0.2, 0.1], rtol=1e-12)
    np.testing.assert_allclose(model.expected_path(2), [0.4, 0.2], rtol=1e-12)


# --------------------------------------------------------------------------- projected covariates


def test_projected_covariates_combine_base_path_and_anomalies(lake, scenarios):
    years = np.arange(2025, 2101)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(3).spawn(4)]
    anomalies = sample_anomalies(AnomalyModel.ar1(0.3, 0.3), rngs, years.size)
    projected = projected_covariates(lake, scenarios, years, anomalies, air_to_water_ratio=0.5)
    assert projected.values.shape == (5, 4, 2100 - 1956 + 1)
    historical = ~projected.projected
    # historical years: the series itself, identical across scenarios and draws (exact copy)
    np.testing.assert_array_equal(projected.values[:, :, historical],
                                  np.broadcast_to(lake.values, (5, 4, lake.year.size)))
    # baseline = last value + anomalies; an SSP adds its path (rounding only: rtol 1e-12)
    i_base, i_585 = projected.scenario.index("baseline"), projected.scenario.index("ssp585")
    np.testing.assert_allclose(projected.values[i_base][:, ~historical], lake.values[-1] + anomalies,
                               rtol=1e-12)
    path = scenario_warming_c(scenarios["ssp585"], years, air_to_water_ratio=0.5, start_year=2024)
    future = ~historical
    difference = projected.values[i_585][:, future] - projected.values[i_base][:, future]
    np.testing.assert_allclose(difference, np.broadcast_to(path, anomalies.shape), rtol=1e-12, atol=1e-12)
    da = projected.to_dataarray()
    assert da.dims == ("scenario", "draw", "year") and da.attrs["units"] == "degC"


def test_projected_covariates_mean_of_years_anchor(lake, scenarios):
    # mean_of_years: base = mean of the last 10 values, path anchored at their mean year 2019.5.
    years = np.arange(2025, 2031)
    projected = projected_covariates(lake, {"ssp245": scenarios["ssp245"]}, years, np.zeros((1, 6)),
                                     air_to_water_ratio=0.5, beyond_series="mean_of_years", mean_years=10)
    assert projected.anchor_year == 2019.5
    expected = lake.values[-10:].mean() + scenario_warming_c(
        scenarios["ssp245"], years, air_to_water_ratio=0.5, start_year=2019.5)
    np.testing.assert_allclose(projected.values[0, 0, -6:], expected, rtol=1e-12)


def test_projected_covariates_refuse_gaps_and_bad_shapes(lake, scenarios):
    with pytest.raises(ConfigError, match="start by 2025"):
        projected_covariates(lake, scenarios, np.arange(2030, 2041), np.zeros((2, 11)),
                             air_to_water_ratio=0.5)
    with pytest.raises(ConfigError, match="anomalies"):
        projected_covariates(lake, scenarios, np.arange(2025, 2041), np.zeros((2, 3)),
                             air_to_water_ratio=0.5)


# --------------------------------------------------------------------------- wiring helpers


class _Randomness:
    """Stand-in for projection.DrawRandomness: only the per-draw anomaly generators are read."""

    def __init__(self, seed: int, n_draws: int) -> None:
        children = np.random.SeedSequence(seed).spawn(n_draws)
        self.anomaly_rngs = tuple(np.random.default_rng(s) for s in children)


def test_climate_forcing_builds_scenario_draw_year_multipliers(bundled):
    forcing_ = forcing.ClimateForcing.from_data(bundled, scenario_names=["baseline", "ssp585"])
    years = np.arange(2025, 2101)
    multipliers, temperature = forcing_(_Randomness(11, 6), years)
    assert forcing_.scenario_names == ("baseline", "ssp585")
    assert temperature.shape == (2, 6, years.size)
    for name in ("growth_k", "natural_mortality", "recruitment"):
        assert np.shape(getattr(multipliers, name)) == (2, 6, years.size), name
    # common random numbers: within a draw the scenarios differ only by the (deterministic) path
    path = scenario_warming_c(forcing_.scenarios[1], years, air_to_water_ratio=0.5, start_year=2024)
    np.testing.assert_allclose(temperature[1] - temperature[0], np.broadcast_to(path, (6, years.size)),
                               rtol=1e-12, atol=1e-12)
    # same generators → same multipliers (reproducible per draw)
    again, _ = forcing_(_Randomness(11, 6), years)
    np.testing.assert_array_equal(again.recruitment, multipliers.recruitment)
    # by 2081-2100 SSP5-8.5 lowers recruitment and K and raises M relative to the baseline
    late = years >= 2081
    assert multipliers.recruitment[1][:, late].mean() < multipliers.recruitment[0][:, late].mean()
    assert multipliers.growth_k[1][:, late].mean() < multipliers.growth_k[0][:, late].mean()
    assert multipliers.natural_mortality[1][:, late].mean() > multipliers.natural_mortality[0][:, late].mean()


def test_climate_forcing_refuses_unknown_scenarios(bundled):
    with pytest.raises(ConfigError, match="ssp999.*valid: baseline"):
        forcing.ClimateForcing.from_data(bundled, scenario_names=["ssp999"])


def test_fit_multipliers_extend_the_series_for_lags(lake):
    # A lag-2 recruitment effect in 1956 needs 1954: the first value is held (recorded fill),
    # so the 1956 multiplier equals the one at the 1956 temperature (exact).
    effect = CovariateEffect("recruitment", Linear(0.1, 16.0), covariate="temperature_c", lag_years=2)
    m = forcing.fit_multipliers([effect], lake, np.arange(1956, 2025))
    assert np.shape(m.recruitment) == (69,)
    np.testing.assert_array_equal(m.recruitment[:3], np.exp(0.1 * (lake.values[[0, 0, 0]] - 16.0)))
    np.testing.assert_array_equal(m.recruitment[3:], np.exp(0.1 * (lake.values[1:-2] - 16.0)))


def test_continue_process_decays_the_last_departure(scenarios):
    # Series = linear trend + a last-year departure of +0.8 °C. With continue_process the base is
    # the trend level at the last year and the (noise-free) AR(1) anomaly decays as 0.5^k·0.8:
    # exact arithmetic on the recursion, rtol 1e-12 (atol for the polyfit rounding of the trend).
    years = np.arange(1990, 2025)
    values = 16.0 + 0.02 * (years - 1990)
    values[-1] += 0.8
    series = EnvSeries("temperature_c", years, values, "degC", True, "synthetic")
    intercept_slope = np.polyfit(years.astype(float), values, 1)
    level = np.polyval(intercept_slope, 2024.0)
    last_departure = values[-1] - level
    model = AnomalyModel((0.5,), (), 0.0, recent_anomalies=(last_departure,))
    future = np.arange(2025, 2029)
    anomalies = sample_anomalies(model, [np.random.default_rng(0)], future.size,
                                 beyond_series="continue_process")
    projected = projected_covariates(series, {"baseline": scenarios["baseline"]}, future, anomalies,
                                     air_to_water_ratio=0.5, beyond_series="continue_process")
    expected = level + last_departure * 0.5 ** np.arange(1, 5)
    np.testing.assert_allclose(projected.values[0, 0, -4:], expected, rtol=1e-12, atol=1e-9)
