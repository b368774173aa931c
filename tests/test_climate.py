"""Tests of carpmodel.management.climate and .anomalies: scenario paths, ARMA anomalies, projections.

Tolerances: closed-form identities (paths at their start year, ratio scaling, base + path +
anomalies) hold to float rounding, so rtol is 1e-12 or exact; statistical checks (AR(1)
recovery, stationary SD) use a fixed seed and a tolerance of about 3 standard errors, stated at
each test.
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.management import climate
from carpmodel.management.anomalies import ARMA_BURN_IN, AnomalyModel, sample_anomalies
from carpmodel.management.climate import ClimateScenario, projected_covariates, scenario_warming_c
from carpmodel.management.draw_streams import DrawStream, seed_key
from carpmodel.management.projection import ANOMALY_STREAM
from carpmodel.model.covariates import EnvSeries
from carpmodel.model.forcing import CovariateEffect, Linear

SSPS = ("ssp126", "ssp245", "ssp370", "ssp585")


@pytest.fixture(scope="module")
def bundled():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def lake(bundled) -> EnvSeries:
    return EnvSeries.from_temperature(bundled)


@pytest.fixture(scope="module")
def scenarios(bundled) -> dict[str, ClimateScenario]:
    return dict(bundled.climate.scenarios)


def simulated_ar1(phi: float, sd: float, n: int, seed: int) -> np.ndarray:
    """Stationary AR(1) with marginal SD ``sd`` (exact start)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = sd * z[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + sd * np.sqrt(1 - phi * phi) * z[t]
    return x


# --------------------------------------------------------------------------- scenarios


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



def _loop_path(model: AnomalyModel, rng: np.random.Generator, n_years: int, conditional: bool) -> np.ndarray:
    """One path by the straightforward per-draw recursion (what sample_anomalies did before it
    filtered every draw at once): ``x_t = e_t + Σ ar_i·x_{t−i} + Σ ma_j·e_{t−j}``, term by term."""
    p, q = model.order

    def run(innovations, x_hist, e_hist):
        out = np.empty(innovations.size)
        x_hist, e_hist = list(x_hist), list(e_hist)
        for t, e in enumerate(innovations):
            value = e
            for i in range(p):
                value += model.ar[i] * x_hist[-1 - i]
            for j in range(q):
                value += model.ma[j] * e_hist[-1 - j]
            out[t] = value
            x_hist.append(value)
            e_hist.append(e)
        return out

    if conditional:
        x_recent = list(model.recent_anomalies)[-p:] if p else []
        e_recent = list(model.recent_innovations)[-q:] if q else []
        return run(rng.standard_normal(n_years) * model.innovation_sd,
                   [0.0] * (p - len(x_recent)) + x_recent, [0.0] * (q - len(e_recent)) + e_recent)
    if q == 0 and p <= 1:   # exact stationary start
        phi = model.ar[0] if p else 0.0
        z = rng.standard_normal(n_years)
        out = np.empty(n_years)
        out[0] = z[0] * model.marginal_sd
        for t in range(1, n_years):
            out[t] = phi * out[t - 1] + model.innovation_sd * z[t]
        return out
    e = rng.standard_normal(ARMA_BURN_IN + n_years) * model.innovation_sd
    return run(e, [0.0] * p, [0.0] * q)[ARMA_BURN_IN:]


ONE_LAG_MODELS = {   # at most one lagged term per step: the filter adds the same two numbers
    "ar1": AnomalyModel.ar1(0.3, 0.3),
    "white_noise": AnomalyModel((), (), 0.25),
    "ar1_with_state": AnomalyModel((0.6,), (), 0.3, recent_anomalies=(0.9,)),
}
MULTI_LAG_MODELS = {
    "arma21": AnomalyModel((0.5, -0.2), (0.4,), 0.3),
    "arma11_with_state": AnomalyModel((0.6,), (0.3,), 0.2, recent_anomalies=(0.7,),
                                      recent_innovations=(-0.1,)),
    "ar2_with_state": AnomalyModel((0.5, 0.2), (), 0.3, recent_anomalies=(0.1, -0.4)),
    "ma2_with_state": AnomalyModel((), (0.5, 0.25), 0.3, recent_innovations=(0.2, 0.3)),
}


def _both(model: AnomalyModel, beyond_series: str, n_draws: int = 40, n_years: int = 80):
    seeds = np.random.SeedSequence(123).spawn(n_draws)
    vectorised = sample_anomalies(model, [np.random.default_rng(s) for s in seeds], n_years,
                                  beyond_series=beyond_series)
    loop = np.stack([_loop_path(model, np.random.default_rng(s), n_years, beyond_series == "continue_process")
                     for s in seeds])
    return vectorised, loop


@pytest.mark.parametrize("beyond_series", ["hold_last", "continue_process"])
@pytest.mark.parametrize("name", list(ONE_LAG_MODELS))
def test_vectorised_anomalies_equal_the_loop_bitwise_for_ar1(name, beyond_series):
    # AR(1) and white noise: lfilter computes phi·x_{t−1} + e_t from the same two floats as the
    # loop, so the paths are bitwise identical (the default projection's anomalies are AR(1)).
    vectorised, loop = _both(ONE_LAG_MODELS[name], beyond_series)
    np.testing.assert_array_equal(vectorised, loop)


@pytest.mark.parametrize("beyond_series", ["hold_last", "continue_process"])
@pytest.mark.parametrize("name", list(MULTI_LAG_MODELS))
def test_vectorised_anomalies_equal_the_loop_for_arma(name, beyond_series):
    # With two or more lagged terms lfilter adds them in another order, so a step may round
    # differently by an ulp; the filter is stable and does not amplify it (measured: at most
    # 4.4e-16 on paths of size ~1 after 580 steps). atol 1e-13 keeps a wide margin and still
    # catches any real error (a wrong coefficient, sign or initial state moves paths by >= 1e-3).
    vectorised, loop = _both(MULTI_LAG_MODELS[name], beyond_series)
    assert vectorised.shape == loop.shape == (40, 80)
    np.testing.assert_allclose(vectorised, loop, rtol=0, atol=1e-13)


@pytest.mark.parametrize("model", [*ONE_LAG_MODELS.values(), *MULTI_LAG_MODELS.values()])
def test_expected_path_is_the_recursion_with_zero_innovations(model):
    # Zero innovations: only the lagged state terms remain (rounding only: atol 1e-15).
    loop = _loop_path(AnomalyModel(model.ar, model.ma, 0.0, recent_anomalies=model.recent_anomalies,
                                   recent_innovations=model.recent_innovations),
                      np.random.default_rng(0), 30, conditional=True)
    np.testing.assert_allclose(model.expected_path(30), loop, rtol=0, atol=1e-15)


def test_each_path_depends_only_on_its_own_generator():
    # Draw d of a batch equals the single path of the same generator (per-draw streams).
    model = MULTI_LAG_MODELS["arma21"]
    seeds = np.random.SeedSequence(4).spawn(5)
    batch = sample_anomalies(model, [np.random.default_rng(s) for s in seeds], 30)
    single = model.sample(np.random.default_rng(seeds[3]), 30)
    np.testing.assert_array_equal(batch[3], single)


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
    """Stand-in for projection.DrawRandomness: only the draws' anomaly stream is read."""

    def __init__(self, seed: int, n_draws: int) -> None:
        self.anomaly_normals = DrawStream(seed_key(seed), np.arange(n_draws), ANOMALY_STREAM)


def test_climate_forcing_builds_scenario_draw_year_multipliers(bundled):
    forcing_ = climate.ClimateForcing.from_data(bundled, scenario_names=["baseline", "ssp585"])
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
        climate.ClimateForcing.from_data(bundled, scenario_names=["ssp999"])


def test_fit_multipliers_extend_the_series_for_lags(lake):
    # A lag-2 recruitment effect in 1956 needs 1954: the first value is held (recorded fill),
    # so the 1956 multiplier equals the one at the 1956 temperature (exact).
    effect = CovariateEffect("recruitment", Linear(0.1, 16.0), covariate="temperature_c", lag_years=2)
    m = climate.fit_multipliers([effect], lake, np.arange(1956, 2025))
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
