"""Could the record ever tell? Power of the biomass record to detect a temperature effect.

:func:`power_analysis` simulates temperature series as an observed record would look (the
trend plus AR(1) anomalies), recruitment with a known slope, and the 12-point biomass record,
refits with and without the slope (:func:`carpmodel.inference.refit.refit_many`), and reports
the power of the likelihood-ratio test per slope, the type-I error and the smallest slope
detected with 80 % power. The slope model is that of :mod:`carpmodel.studies.temperature_test`.

Units: temperatures in °C, slopes per °C on the log scale (``exp(b·(T − T_ref))``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats

from carpmodel import __version__
from carpmodel.dims import YEAR
from carpmodel.errors import ConfigError
from carpmodel.inference.fitting import GRADIENT_TOLERANCE, FitResult
from carpmodel.inference.likelihood import observation_sd, predict, survey_prediction_t
from carpmodel.inference.refit import refit_many
from carpmodel.management.anomalies import AnomalyModel
from carpmodel.model.covariates import EnvSeries
from carpmodel.model.forcing import SPAWNING_OFFSET_C
from carpmodel.studies.temperature_test import (
    DEFAULT_SLOPE_PRIOR_SD,
    data_only_se,
    slope_prior_nll,
    with_slopes,
)

__all__ = ["LR_CRITICAL_VALUE", "power_analysis", "smallest_detectable_slope"]

#: χ²₁ 95 % point: the likelihood-ratio statistic 2·ΔNLL above which a slope counts as detected.
LR_CRITICAL_VALUE = float(stats.chi2.ppf(0.95, 1))
#: A power-analysis refit counts as converged when, besides ``fit``'s criterion, the objective's
#: predicted remaining decrease ½·gᵀH⁻¹g is below this: the test needs the NLL to ~1e-3, and a
#: gradient test is misleading along the stiff directions (Hessian eigenvalues up to ~2e5).
_POWER_DECREMENT_TOLERANCE = 1e-4


def _linear_trend_values(series: EnvSeries, years: NDArray) -> NDArray:
    use = ~series.filled_mask
    slope, intercept = np.polyfit(series.year[use].astype(float), series.values[use], 1)
    return intercept + slope * np.asarray(years, float)


def smallest_detectable_slope(slopes: NDArray, power: NDArray, target: float) -> float:
    """The slope (1/°C) at which ``power`` first reaches ``target``: linear interpolation of the
    first crossing over increasing ``slopes``; +inf when it is never reached."""
    order = np.argsort(slopes)
    s, p = slopes[order], power[order]
    for j in range(s.size):
        if np.isfinite(p[j]) and p[j] >= target:
            if j == 0 or not np.isfinite(p[j - 1]) or p[j - 1] >= target:
                return float(s[j])
            return float(s[j - 1] + (target - p[j - 1]) * (s[j] - s[j - 1]) / (p[j] - p[j - 1]))
    return float("inf")



def _decrement(fitted: FitResult) -> float:
    """Predicted remaining decrease ½·gᵀH⁻¹g of a refit (its covariance as H⁻¹); inf without one."""
    if fitted.covariance is None:
        return float("inf")
    g = np.asarray(fitted.gradient, float)
    return float(0.5 * g @ fitted.covariance @ g)


def _describe(ds: xr.Dataset, described: Mapping[str, tuple[str, str]]) -> None:
    for name, (units, long_name) in described.items():
        if name in ds.variables:
            ds[name].attrs.update(units=units, long_name=long_name)


def power_analysis(result: FitResult, data: Any, *,
                   slopes_per_c: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
                   n_replicates: int = 20, seed: int = 20260601,
                   anomaly_sd_c: float | None = 0.3,
                   covariate: str = "spawning_temperature_c",
                   slope_prior_sd: float | None = DEFAULT_SLOPE_PRIOR_SD,
                   alpha: float = 0.05, target_power: float = 0.8, wald: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Power of the biomass record to detect a recruitment–temperature slope, by simulation.

    Method, per replicate r (one random stream each, shared by every slope: common random
    numbers, so the power curve is smooth in the slope):

    1. temperature: the series' least-squares linear trend on the model years plus a stationary
       AR(1) anomaly path (φ from ``climate_scenarios.toml`` ``[anomalies]`` via
       :meth:`~carpmodel.model.forcing.AnomalyModel.from_climate_file`, marginal SD ``anomaly_sd_c``,
       None = the file's) — what an observed record could look like; the covariate is the
       spawning-season temperature derived from it (lake − 4 °C, lag 0), centred on its mean;
    2. truth: the fitted model (``result.theta``) with recruitment ×exp(b·(T − T̄)) for each
       slope b and new recruitment deviations ε ~ N(0, σ_R) for every deviation year (all
       truths run through the engine as one batch);
    3. data: the biomass record on the same years with the same CVs, log B_obs = log(q·B) + σ·z;
    4. refits (:func:`carpmodel.inference.refit.refit_many`, the project's refit: the replicates
       of one slope in one batched search in coordinates whitened by the fit's Hessian, and
       :func:`carpmodel.inference.fitting.fit` from the priors' centres for a replicate whose warm
       search does not converge): without the slope from the truth (the true parameters and
       deviations); with the slope (Normal(0, ``slope_prior_sd``) prior, as
       :func:`~carpmodel.studies.temperature_test.temperature_effect_test`) from the no-slope
       optimum with slope 0, so the statistic cannot be negative; converged when both refits
       converged as ``fit`` judges it (positive definite Hessian, max |gradient| < 1e-3) and
       the predicted remaining decrease ½·gᵀH⁻¹g is below 1e-4 (the test needs the NLL to
       ~1e-3);
    5. detected when 2·(NLL_without − (NLL_with − slope prior)) > χ²₁(1 − alpha) (3.84).

    Starting the slope model from the truth instead reached the same optimum (to 1e-4 in the
    objective) in 8 trial replicates at b = 1 and 4 /°C, so only the nested start is used.

    Power per slope over the replicates whose two fits converged, with its Monte Carlo SE
    √(p(1 − p)/n); the type-I error is the power at slope 0 (its SE also at the nominal rate,
    √(α(1 − α)/n)); the smallest slope with ``target_power`` is interpolated linearly between
    the slopes tried (+inf and the text "> largest slope tried" when never reached).
    With ``wald`` the refit's Hessian also gives the slope's SE from the data alone (prior
    curvature removed) and ``wald_detectable_slope_per_c`` = (z₀.₉₇₅ + z₀.₈)·median SE, the
    normal-approximation counterpart for a flat-prior fit. Run time: see ``runtime_s``
    (roughly 1-2 s per replicate per slope on one core: two batched refits, each with its Hessian).
    ``progress(done, total)`` is called before the first batch of refits and after each (two
    per slope).
    """
    clock = time.perf_counter()
    slopes = np.asarray(slopes_per_c, dtype=float)
    if slopes.ndim != 1 or slopes.size == 0 or not np.all(np.isfinite(slopes)):
        raise ConfigError(f"slopes_per_c: expected a non-empty sequence of finite slopes, "
                          f"got {slopes_per_c!r}")
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer) or n_replicates < 1:
        raise ConfigError(f"n_replicates: expected an integer >= 1, got {n_replicates!r}")
    if not 0 < alpha < 1 or not 0 < target_power < 1:
        raise ConfigError(f"alpha, target_power: expected values in (0, 1), got {alpha!r}, {target_power!r}")
    spec = result.spec
    years = np.asarray(spec.years)
    lake = EnvSeries.from_temperature(data)
    trend = _linear_trend_values(lake, years)
    assumed = AnomalyModel.from_climate_file(data)
    sd = assumed.marginal_sd if anomaly_sd_c is None else float(anomaly_sd_c)
    model = AnomalyModel.ar1(assumed.phi, sd,
                             source=f"AR(1) phi {assumed.phi:g} from [anomalies], sd {sd:g} degC")
    offset = {"spawning_temperature_c": SPAWNING_OFFSET_C, "temperature_c": 0.0}
    if covariate not in offset:
        raise ConfigError(f"covariate: expected one of {', '.join(offset)}, got {covariate!r}")
    n_free, n_dev, n_obs = len(spec.estimated), len(spec.rec_dev_years), spec.observations.year.size
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_replicates)]
    anomalies = np.empty((n_replicates, years.size))
    devs_z = np.empty((n_replicates, n_dev))
    obs_z = np.empty((n_replicates, n_obs))
    for r, rng in enumerate(streams):                         # fixed draw order per replicate
        anomalies[r] = model.sample(rng, years.size)
        devs_z[r] = rng.standard_normal(n_dev)
        obs_z[r] = rng.standard_normal(n_obs)
    covariate_values = trend[None, :] + offset[covariate] + anomalies
    centred = covariate_values - covariate_values.mean(axis=1, keepdims=True)   # reference = own mean

    sigma_r = float(np.asarray(predict(spec, result.theta)[1].params.sigma_r).reshape(-1)[0])
    n_s = slopes.size
    batch_values = np.tile(centred, (n_s, 1))                 # (slope·replicate, year)
    spec_truth = with_slopes(spec, batch_values, 0.0, ("recruitment",), slope_prior_sd)
    truths = np.empty((n_s * n_replicates, n_free + 1 + n_dev))
    truths[:, :n_free] = result.theta[:n_free]
    truths[:, n_free] = np.repeat(slopes, n_replicates)
    truths[:, n_free + 1:] = sigma_r * np.tile(devs_z, (n_s, 1))
    with np.errstate(all="ignore"):
        state, u = predict(spec_truth, truths)
        survey = np.asarray(survey_prediction_t(spec_truth, state, u), float)
        obs_sd = np.asarray(observation_sd(spec_truth, u), float) * np.ones_like(survey)
    observed = survey * np.exp(obs_sd * np.tile(obs_z, (n_s, 1)))

    shape = (n_s, n_replicates)
    statistic, estimate = np.full(shape, np.nan), np.full(shape, np.nan)
    nll0, nll1 = np.full(shape, np.nan), np.full(shape, np.nan)
    converged = np.zeros(shape, dtype=bool)
    decrement, seconds, se_data = np.full(shape, np.nan), np.zeros(shape), np.full(shape, np.nan)
    if progress is not None:
        progress(0, 2 * n_s)
    for i in range(n_s):
        tick = time.perf_counter()
        rows = i * n_replicates + np.arange(n_replicates)
        specs0 = [replace(spec, observations=replace(spec.observations, biomass_t=observed[row]))
                  for row in rows]
        fits0 = refit_many(specs0, start=np.delete(truths[rows], n_free, axis=1), source=result,
                           seeds=[int(seed)] * n_replicates,
                           label=f"power: slope {slopes[i]:g} without the slope")
        if progress is not None:
            progress(2 * i + 1, 2 * n_s)
        specs1 = [with_slopes(s0, centred[r], 0.0, ("recruitment",), slope_prior_sd)
                  for r, s0 in enumerate(specs0)]
        nested = [f0.theta if f0 is not None else np.delete(truths[row], n_free)
                  for f0, row in zip(fits0, rows, strict=True)]
        starts1 = np.stack([np.insert(theta0, n_free, 0.0) for theta0 in nested])
        fits1 = refit_many(specs1, start=starts1, source=result, seeds=[int(seed)] * n_replicates,
                           label=f"power: slope {slopes[i]:g} with the slope")
        for r, (f0, f1) in enumerate(zip(fits0, fits1, strict=True)):
            if f0 is None or f1 is None:
                continue
            nll0[i, r], nll1[i, r] = f0.nll, f1.nll
            statistic[i, r] = 2.0 * (f0.nll - (f1.nll - slope_prior_nll(specs1[r], f1.theta)))
            estimate[i, r] = f1.theta[n_free]
            decrement[i, r] = max(_decrement(f0), _decrement(f1))
            converged[i, r] = bool(f0.converged and f1.converged
                                   and decrement[i, r] < _POWER_DECREMENT_TOLERANCE)
            if wald:
                se_data[i, r] = data_only_se(f1.hessian, n_free, slope_prior_sd)
        seconds[i] = (time.perf_counter() - tick) / n_replicates
        if progress is not None:
            progress(2 * i + 2, 2 * n_s)
    critical = float(stats.chi2.ppf(1.0 - alpha, 1))
    usable = converged & np.isfinite(statistic)
    detected = usable & (statistic > critical)
    n_used = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(n_used > 0, detected.sum(axis=1) / np.maximum(n_used, 1), np.nan)
    mc_se = np.where(n_used > 0, np.sqrt(power * (1.0 - power) / np.maximum(n_used, 1)), np.nan)
    smallest = smallest_detectable_slope(slopes, power, target_power)
    zero = np.flatnonzero(slopes == 0.0)
    type_i = float(power[zero[0]]) if zero.size else float("nan")
    type_i_se = float(mc_se[zero[0]]) if zero.size else float("nan")
    n_zero = int(n_used[zero[0]]) if zero.size else 0
    type_i_nominal_se = float(np.sqrt(alpha * (1 - alpha) / n_zero)) if n_zero else float("nan")
    z_sum = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(target_power))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median_se = float(np.nanmedian(np.where(usable, se_data, np.nan))) if wald else float("nan")
    text = (f"{smallest:.3g} per degC" if np.isfinite(smallest)
            else f"> largest slope tried ({slopes.max():g} per degC): power never reached {target_power:.0%}")
    ds = xr.Dataset(
        {"statistic": (("slope_per_c", "replicate"), statistic),
         "detected": (("slope_per_c", "replicate"), detected),
         "converged": (("slope_per_c", "replicate"), converged),
         "slope_estimate_per_c": (("slope_per_c", "replicate"), estimate),
         "nll_without": (("slope_per_c", "replicate"), nll0),
         "nll_with": (("slope_per_c", "replicate"), nll1),
         "predicted_decrease": (("slope_per_c", "replicate"), decrement),
         "runtime_per_replicate_s": (("slope_per_c", "replicate"), seconds),
         "power": (("slope_per_c",), power), "power_mc_se": (("slope_per_c",), mc_se),
         "n_used": (("slope_per_c",), n_used),
         "mean_slope_estimate_per_c": (("slope_per_c",),
                                       np.array([np.nanmean(estimate[i][usable[i]]) if n_used[i] else np.nan
                                                 for i in range(n_s)])),
         "type_i_error": ((), type_i), "type_i_error_mc_se": ((), type_i_se),
         "type_i_error_nominal_se": ((), type_i_nominal_se),
         "smallest_detectable_slope_per_c": ((), smallest),
         "slope_se_data_only_per_c": (("slope_per_c", "replicate"), se_data),
         "wald_detectable_slope_per_c": ((), z_sum * median_se),
         "temperature_anomaly_example_c": (("replicate", YEAR), anomalies)},
        coords={"slope_per_c": slopes, "replicate": np.arange(n_replicates), YEAR: years})
    _describe(ds, {
        "statistic": ("1", "likelihood-ratio statistic 2 x (NLL without - (NLL with - slope prior))"),
        "detected": ("1", f"statistic > chi2_1({1 - alpha:g}) = {critical:.2f} and both fits converged"),
        "converged": ("1", f"both refits converged (positive definite Hessian, max |gradient| < "
                           f"{GRADIENT_TOLERANCE:g}) with predicted remaining decrease < "
                           f"{_POWER_DECREMENT_TOLERANCE:g}"),
        "predicted_decrease": ("1", "larger of the two refits' predicted remaining decrease 0.5 g'H^-1 g"),
        "slope_estimate_per_c": ("1/degC", "estimated recruitment-temperature slope (with its prior)"),
        "nll_without": ("1", "objective of the refit without the slope"),
        "nll_with": ("1", "objective of the refit with the slope (its prior included)"),
        "runtime_per_replicate_s": ("s", "wall time of the two batched refits of the slope (with their "
                                    "Hessians) divided by the replicates"),
        "power": ("1", "fraction of usable replicates in which the slope was detected"),
        "power_mc_se": ("1", "Monte Carlo SE of power, sqrt(p(1-p)/n)"),
        "n_used": ("1", "replicates whose two refits converged"),
        "mean_slope_estimate_per_c": ("1/degC", "mean estimated slope over usable replicates"),
        "type_i_error": ("1", "detection rate at slope 0"),
        "type_i_error_mc_se": ("1", "Monte Carlo SE of the type-I error estimate, sqrt(p(1-p)/n)"),
        "type_i_error_nominal_se": ("1", f"binomial SE at the nominal rate, sqrt({alpha:g}(1-{alpha:g})/n)"),
        "smallest_detectable_slope_per_c": ("1/degC", f"smallest slope with {target_power:.0%} power "
                                            f"(linear interpolation; inf = not reached)"),
        "temperature_anomaly_example_c": ("degC", "simulated AR(1) temperature anomaly of each replicate"),
        "slope_se_data_only_per_c": ("1/degC", "SE of the slope from the data alone: inverse Hessian at the "
                                     "refit, the prior's curvature removed (wald=False: not computed)"),
        "wald_detectable_slope_per_c": ("1/degC", f"(z_{{1-alpha/2}} + z_{{{target_power:g}}}) x median "
                                        f"data-only SE = {z_sum:.2f} x SE: the slope a Wald test of "
                                        f"a flat-prior fit would detect with {target_power:.0%} power "
                                        f"(normal approximation)"),
        "slope_per_c": ("1/degC", "true recruitment-temperature slope b: recruits x exp(b (T - mean T))"),
        "replicate": ("1", "simulation replicate (one random stream, shared by every slope)"),
        YEAR: ("yr", "calendar year")})
    ds.attrs.update({
        "title": "Power of the biomass record to detect a recruitment-temperature effect (carpmodel)",
        "carpmodel_version": __version__,
        "smallest_detectable": text,
        "wald_detectable": ("not computed" if not wald else
                            f"{z_sum * median_se:.3g} per degC = {z_sum:.2f} x median data-only SE "
                            f"{median_se:.3g} (normal approximation, flat prior)" if np.isfinite(median_se)
                            else "none: in most replicates the data alone do not bound the slope (the "
                                 "Hessian without the slope prior is not positive definite)"),
        "target_power": target_power, "alpha": alpha, "critical_value": critical,
        "n_replicates": int(n_replicates), "seed": int(seed),
        "covariate": f"{covariate}, lag 0 (recruits of year y respond to year y), centred on each "
                     f"replicate's own mean",
        "temperature": (f"linear trend of {lake.name} ({lake.source_id}) on {years[0]}-{years[-1]} + "
                        f"{model.source}"),
        "slope_prior": f"Normal(0, {slope_prior_sd:g}) per degC" if slope_prior_sd is not None else "flat",
        "truth": "fitted parameters (result.theta), new recruitment deviations N(0, sigma_R) per replicate",
        "biomass_record": (f"{n_obs} observations ({', '.join(str(int(y)) for y in spec.observations.year)}) "
                           f"with the data's CVs"),
        "refits": ("start from the truth (no-slope model) and from the no-slope optimum with slope 0 (slope "
                   "model); carpmodel.inference.refit.refit_many: whitened batched BFGS from the start, "
                   "fit() from the priors' centres where it does not converge"),
        "runtime_s": time.perf_counter() - clock,
    })
    return ds
