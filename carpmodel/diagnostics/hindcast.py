"""One-step-ahead hindcast cross-validation (MASE) and the predictions of held-out years.

The hindcast reuses the calendar-year peels of :func:`carpmodel.diagnostics.retrospective.peel_fits`;
with gaps in the survey record a peel's first held-out observation may lie more than one year
ahead (``horizon_yr`` says so).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.diagnostics.common import depletion, describe, json_ready, terminal_year
from carpmodel.diagnostics.retrospective import peel_fits
from carpmodel.dims import YEAR
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import FitResult
from carpmodel.inference.likelihood import predict, survey_prediction_t
from carpmodel.inference.results import fit_draws, interval_method
from carpmodel.inference.spec import CV_REFERENCE, Observations
from carpmodel.io.config import RunConfig, default_config

#: floor of the naive forecast's mean absolute error in the adjusted MASE (ss3diags ``MAE.base.adj``)
MASE_NAIVE_FLOOR = 0.1


def mase(observed: Any, predicted: Any, naive: Any, *, naive_floor: float = 0.0) -> float:
    """Mean absolute scaled error on the log scale.

    ``MASE = mean|log predicted − log observed| / max(mean|log naive − log observed|, floor)``
    over the entries where all three are finite and positive. MASE < 1: the model predicts
    better than the naive forecast. Reference: Kell et al. (2021) "Validation of stock
    assessment methods: is it me or my model talking?", ICES J. Mar. Sci. 78: 2244–2255
    (after Hyndman & Koehler 2006); ss3diags ``SSmase`` uses ``naive_floor = 0.1`` for its
    ``MASE.adj``.
    """
    obs, pred, base = (np.asarray(v, dtype=float) for v in (observed, predicted, naive))
    ok = np.isfinite(obs) & np.isfinite(pred) & np.isfinite(base) & (obs > 0) & (pred > 0) & (base > 0)
    if not np.any(ok):
        return float("nan")
    model_error = float(np.mean(np.abs(np.log(pred[ok]) - np.log(obs[ok]))))
    naive_error = max(float(np.mean(np.abs(np.log(base[ok]) - np.log(obs[ok])))), naive_floor)
    return model_error / naive_error if naive_error > 0 else float("inf")


@dataclass(frozen=True)
class HindcastResult:
    """One-step-ahead hindcast cross-validation and its MASE against two naive forecasts.

    ``table`` (dim ``peel``, k = 1..n): ``terminal_year`` Y, ``target_year`` (the first
    observation after Y), ``horizon_yr``, ``observed_t``, ``predicted_t`` (q·B of the peel's
    fit), ``naive_persistence_t`` (last observation ≤ Y), ``naive_drift_t`` (OLS log-linear
    trend through the observations ≤ Y), ``converged``. ``predictions`` (dims ``peel, year``):
    each peel's predicted survey biomass ``survey_predicted_t`` over all years, with
    ``biomass_obs_t(year)`` beside it (the SS3 HCxval plot). MASE values < 1 mean the model
    beats that naive forecast; ``mase_persistence_adjusted`` floors the naive error at 0.1 as
    ss3diags does.
    """

    table: xr.Dataset
    predictions: xr.Dataset
    mase_persistence: float
    mase_drift: float
    mase_persistence_adjusted: float
    mae_model: float
    mae_persistence: float
    mae_drift: float
    n_predictions: int
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


def _survey_at(result: FitResult, years: NDArray, cv: NDArray, early: NDArray,
               theta: NDArray | None = None) -> NDArray:
    """Predicted survey biomass q·B of a fit at arbitrary model years (batch of ``theta``)."""
    observations = Observations(year=np.asarray(years), biomass_t=np.ones(len(years)),
                                cv=np.asarray(cv, float), early=np.asarray(early, bool))
    spec = replace(result.spec, observations=observations)
    state, u = predict(spec, result.theta if theta is None else theta)
    return np.asarray(survey_prediction_t(spec, state, u), dtype=float)


def _drift_forecast(years: NDArray, biomass_t: NDArray, target: int) -> float:
    if years.size < 2:
        return float("nan")
    slope, intercept = np.polyfit(years.astype(float), np.log(biomass_t), 1)
    return float(np.exp(intercept + slope * target))


def hindcast(data: Any, config: RunConfig | None = None, n_peels: int = 5, *,
             fits: Mapping[int, FitResult | None] | None = None,
             drift_last_n: int | None = None) -> HindcastResult:
    """Hindcast cross-validation (one step ahead) with MASE.

    Method: for each calendar-year peel Y = T − k (:func:`peel_fits`, reused when ``fits`` is
    given) the model fitted to observations ≤ Y predicts the first observation after Y
    (≤ T): the spec built with ``last_data_year = Y`` has recruitment deviations up to Y only,
    so the prediction has zero deviations after Y, with the historical catch and releases.
    Peels with no observation in (Y, T], and peels whose fit did not converge, are kept in the
    table and left out of MASE.
    MASE (:func:`mase`) of the log prediction errors against (a) persistence, the last
    observation ≤ Y (the naive forecast of Kell et al. 2021 and ss3diags ``SSmase``) and
    (b) drift, an OLS log-linear trend through the observations ≤ Y (the last ``drift_last_n``
    of them when given) extrapolated to the target year. Reference: Kell et al. (2021) ICES J.
    Mar. Sci. 78: 2244–2255.
    """
    start = time.perf_counter()
    config = default_config() if config is None else config
    if fits is None:
        fits = peel_fits(data, config, n_peels)
    terminal = terminal_year(config)
    everything = build_spec(data, config.with_fit(last_data_year=terminal)).observations
    obs_years = np.asarray(everything.year)
    peels = sorted(fits.items(), reverse=True)[:n_peels]
    columns: dict[str, list[Any]] = {k: [] for k in (
        "terminal_year", "target_year", "horizon_yr", "observed_t", "predicted_t",
        "naive_persistence_t", "naive_drift_t", "converged")}
    trajectories = []
    model_years = None
    for year, result in peels:
        later = np.flatnonzero((obs_years > year) & (obs_years <= terminal))
        target = int(obs_years[later[0]]) if later.size else -1
        columns["terminal_year"].append(year)
        columns["target_year"].append(target)
        columns["horizon_yr"].append(target - year if later.size else -1)
        columns["converged"].append(bool(result is not None and result.converged))
        columns["observed_t"].append(float(everything.biomass_t[later[0]]) if later.size else np.nan)
        if result is None:
            columns["predicted_t"].append(np.nan)
            columns["naive_persistence_t"].append(np.nan)
            columns["naive_drift_t"].append(np.nan)
            trajectories.append(None)
            continue
        model_years = np.asarray(result.spec.years)
        fitted = result.spec.observations
        if later.size:
            i = later[0]
            predicted = _survey_at(result, obs_years[i:i + 1], everything.cv[i:i + 1],
                                   everything.early[i:i + 1])
            columns["predicted_t"].append(float(predicted[0]))
            columns["naive_persistence_t"].append(float(fitted.biomass_t[-1]))
            window = slice(-drift_last_n if drift_last_n else None, None)
            columns["naive_drift_t"].append(_drift_forecast(np.asarray(fitted.year)[window],
                                                            np.asarray(fitted.biomass_t, float)[window],
                                                            target))
        else:
            columns["predicted_t"].append(np.nan)
            columns["naive_persistence_t"].append(np.nan)
            columns["naive_drift_t"].append(np.nan)
        early_last = config.fit.early_survey_last_year
        early = model_years <= early_last if early_last is not None else np.zeros(model_years.size, bool)
        trajectories.append(_survey_at(result, model_years, np.ones(model_years.size), early))
    table = xr.Dataset({k: ("peel", np.asarray(v)) for k, v in columns.items()},
                       coords={"peel": np.arange(1, len(peels) + 1)})
    obs, pred = table["observed_t"].values, table["predicted_t"].values
    persistence, drift = table["naive_persistence_t"].values, table["naive_drift_t"].values
    for name, values in (("model", pred), ("persistence", persistence), ("drift", drift)):
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"log_error_{name}"] = ("peel", np.log(values) - np.log(obs))
    ok = np.isfinite(obs) & np.isfinite(pred) & table["converged"].values   # only converged peels
    if model_years is None:
        model_years = np.arange(config.model.first_year, config.model.last_year + 1)
    survey = np.stack([t if t is not None else np.full(model_years.size, np.nan) for t in trajectories])
    observed_full = np.full(model_years.size, np.nan)
    inside = np.isin(obs_years, model_years)
    observed_full[np.searchsorted(model_years, obs_years[inside])] = everything.biomass_t[inside]
    predictions = xr.Dataset(
        {"survey_predicted_t": (("peel", YEAR), survey), "biomass_obs_t": (YEAR, observed_full)},
        coords={"peel": table["peel"].values, YEAR: model_years,
                "terminal_year": ("peel", table["terminal_year"].values)})
    described = {
        "terminal_year": ("yr", "last data year of the peel"),
        "target_year": ("yr", "first observation year after the peel (-1: none)"),
        "horizon_yr": ("yr", "target year - terminal year (-1: none)"),
        "observed_t": ("t", "held-out observation at the target year"),
        "predicted_t": ("t", "model prediction q·B at the target year"),
        "naive_persistence_t": ("t", "naive forecast: last observation <= terminal year"),
        "naive_drift_t": ("t", "naive forecast: OLS log-linear trend of observations <= terminal year"),
        "converged": ("1", "peel fit converged"),
        "survey_predicted_t": ("t", "predicted survey biomass q·B of the peel's fit"),
        "biomass_obs_t": ("t", "observed biomass (hydroacoustic survey)"),
        **{f"log_error_{n}": ("1", f"log {n} forecast − log observed") for n in
           ("model", "persistence", "drift")}}
    table, predictions = describe(table, described), describe(predictions, described)

    def mean_abs(values: NDArray) -> float:
        sel = ok & np.isfinite(values)
        return float(np.mean(np.abs(np.log(values[sel]) - np.log(obs[sel])))) if sel.any() else np.nan

    return HindcastResult(
        table=table, predictions=predictions,
        mase_persistence=mase(obs[ok], pred[ok], persistence[ok]),
        mase_drift=mase(obs[ok], pred[ok], drift[ok]),
        mase_persistence_adjusted=mase(obs[ok], pred[ok], persistence[ok], naive_floor=MASE_NAIVE_FLOOR),
        mae_model=mean_abs(pred), mae_persistence=mean_abs(persistence), mae_drift=mean_abs(drift),
        n_predictions=int(ok.sum()), runtime_s=time.perf_counter() - start)


def hindcast_predictions(result: FitResult, config: RunConfig, data: Any, *,
                         n_draws: int = 500, seed: int = 20260601, draws: NDArray | None = None,
                         sampler: str | None = None) -> xr.Dataset:
    """A fit to the observations ≤ ``config.fit.last_data_year`` and the observations it did not see.

    What ``carpmodel fit --last-data-year Y`` reports. ``result`` is the fit of
    ``build_spec(data, config)``. Dims ``year`` (the model years): ``biomass_t``, ``ssb_t``,
    ``depletion`` and ``survey_predicted_t`` (q·B; zero recruitment deviations after Y) with a
    95 % interval of the survey prediction (``survey_predicted_lower/upper``, from ``n_draws``
    parameter vectors of ``N(θ̂, Σ)``, :func:`carpmodel.inference.results.fit_draws`, or from
    ``draws (n, parameter)`` made by ``sampler`` when given: pass fit.nc's posterior draws and
    the intervals of both files are made the same way; parameter uncertainty only, no observation
    error), the 95 % predictive interval of a survey
    (``survey_predictive_lower/upper``: the same draws times the survey's observation error
    ``σ_s·cv/0.15``), ``biomass_obs_t``, ``biomass_obs_cv``, ``used_in_fit`` and ``held_out``
    (bool) and ``log_prediction_error`` (log q·B − log obs at held-out years). Attributes give the
    skill on the held-out surveys: ``n_held_out``, ``mase_persistence`` (:func:`mase` against the
    last survey used, held for every later year) and ``held_out_inside_95``/``coverage_95`` (held-out
    surveys inside the predictive interval); ``interval_method`` and ``predictive_interval_method``
    say how each interval was made.
    """
    spec = result.spec
    years = np.asarray(spec.years)
    last = terminal_year(config)
    everything = build_spec(data, config.with_fit(last_data_year=int(years[-1]))).observations
    early_last = config.fit.early_survey_last_year
    early = years <= early_last if early_last is not None else np.zeros(years.size, bool)
    state, _ = predict(spec, result.theta)
    survey = _survey_at(result, years, np.ones(years.size), early)
    if draws is None:
        draws, method = fit_draws(result, n_draws, seed), interval_method(n_draws)
    else:
        draws = np.asarray(draws, dtype=float)
        n_draws = draws.shape[0]
        method = interval_method(n_draws, sampler or "unstated sampler")
    index = np.searchsorted(years, everything.year)
    obs = np.full(years.size, np.nan)
    cv = np.full(years.size, np.nan)
    obs[index] = everything.biomass_t
    cv[index] = everything.cv
    has_obs = np.isfinite(obs)
    # the survey's observation SD (σ_s·cv/0.15, at CV 0.15 where no survey was made)
    obs_sd = float(spec.sigma_survey) * np.where(has_obs, cv, CV_REFERENCE) / CV_REFERENCE
    noise = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]).standard_normal(
        (n_draws, years.size))
    with np.errstate(all="ignore"):
        sample = _survey_at(result, years, np.ones(years.size), early, theta=draws)
        lower, upper = np.nanquantile(sample, [0.025, 0.975], axis=0)
        pred_lower, pred_upper = np.nanquantile(sample * np.exp(obs_sd * noise), [0.025, 0.975], axis=0)
    held = has_obs & (years > last)
    before = has_obs & (years <= last)
    skill = {"n_held_out": int(held.sum())}
    if held.any() and before.any():
        persistence = np.full(int(held.sum()), obs[before][-1])
        skill["mase_persistence"] = mase(obs[held], survey[held], persistence)
        inside = (pred_lower[held] <= obs[held]) & (obs[held] <= pred_upper[held])
        skill["held_out_inside_95"] = int(inside.sum())
        skill["coverage_95"] = float(inside.mean())
    ds = xr.Dataset(
        {"biomass_t": (YEAR, state.biomass_t), "ssb_t": (YEAR, state.ssb_t),
         "depletion": (YEAR, depletion(state)), "survey_predicted_t": (YEAR, survey),
         "survey_predicted_lower": (YEAR, lower), "survey_predicted_upper": (YEAR, upper),
         "survey_predictive_lower": (YEAR, pred_lower), "survey_predictive_upper": (YEAR, pred_upper),
         "biomass_obs_t": (YEAR, obs), "biomass_obs_cv": (YEAR, cv),
         "used_in_fit": (YEAR, has_obs & (years <= last)), "held_out": (YEAR, has_obs & (years > last)),
         "log_prediction_error": (YEAR, np.where(has_obs & (years > last),
                                                 np.log(survey) - np.log(np.where(has_obs, obs, 1.0)),
                                                 np.nan))},
        coords={YEAR: years})
    return describe(ds, {
        "depletion": ("1", "end-of-year survey biomass / unfished (B/B0)"),
        "survey_predicted_t": ("t", "predicted survey biomass q·B (rec devs zero after last data year)"),
        "survey_predicted_lower": ("t", "lower bound of the 95 % interval of q·B (parameter uncertainty)"),
        "survey_predicted_upper": ("t", "upper bound of the 95 % interval of q·B (parameter uncertainty)"),
        "survey_predictive_lower": ("t", "lower bound of the 95 % predictive interval of a survey "
                                         "(parameter uncertainty and observation error)"),
        "survey_predictive_upper": ("t", "upper bound of the 95 % predictive interval of a survey "
                                         "(parameter uncertainty and observation error)"),
        "used_in_fit": ("1", "observation used in the fit"),
        "held_out": ("1", "observation after the last data year, not used in the fit"),
        "log_prediction_error": ("1", "log predicted − log observed at held-out years")},
        last_data_year=last, interval_method=method,
        predictive_interval_method=f"{method}, each times a lognormal survey error "
                                   f"exp(sigma_survey * cv / {CV_REFERENCE:g} * z), z ~ N(0, 1)",
        **skill)


def hindcast_skill_line(held_out: xr.Dataset) -> str:
    """One line: the held-out surveys, MASE against persistence, those inside the 95 % interval
    (``held_out`` from :func:`hindcast_predictions`)."""
    attrs = held_out.attrs
    n = int(attrs.get("n_held_out", 0))
    if n == 0 or "mase_persistence" not in attrs:
        return f"hindcast from {attrs['last_data_year']}: no held-out survey to score"
    return (f"hindcast from {attrs['last_data_year']}: {n} held-out survey(s), MASE against persistence "
            f"{attrs['mase_persistence']:.2f} (below 1: better than repeating the last survey), "
            f"{int(attrs['held_out_inside_95'])} of {n} inside the 95 % predictive interval")


def held_out_summary(held_out: xr.Dataset) -> dict[str, Any]:
    """fit.json's ``hindcast_held_out``: held-out years, log errors (log predicted − log observed),
    the skill attributes, the one-line summary and how the intervals were made."""
    errors = held_out["log_prediction_error"].values
    finite = np.isfinite(errors)
    skill = {k: float(held_out.attrs[k]) for k in ("mase_persistence", "held_out_inside_95", "coverage_95")
             if k in held_out.attrs}
    return {"years": [int(y) for y in held_out.year.values[finite]],
            "log_prediction_error": [float(e) for e in errors[finite]],
            "mean_abs_log_error": float(np.mean(np.abs(errors[finite]))) if finite.any() else None,
            **skill, "skill_line": hindcast_skill_line(held_out),
            "interval_method": held_out.attrs.get("interval_method"),
            "predictive_interval_method": held_out.attrs.get("predictive_interval_method")}
