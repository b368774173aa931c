"""Fit diagnostics: residuals and runs test, retrospective (Mohn's ρ), hindcast skill (MASE),
likelihood profiles, simulation self-test and model comparison (AICc).

What users of Stock Synthesis (r4ss, ss3diags), WHAM and SAM expect to see after a fit
(Carvalho et al. 2021, "A cookbook for using model diagnostics in integrated stock
assessments", Fish. Res. 240: 105959). Every function is pure: it takes a fit or the data and
:class:`~carpmodel.io.config.RunConfig`, refits where the method needs it, and returns a frozen
result with a ``to_dict()`` of JSON-ready numbers (NaN and ±inf become ``None``) and xarray
objects for the tables that have dimensions. No file I/O and no plotting here.

Randomness (only :func:`self_test`) comes from one ``numpy.random.SeedSequence(seed)`` with one
spawned stream per replicate, so a replicate's data do not depend on how many were asked for.

Peels are calendar-year peels, as SS3 retrospectives are (``retro_yr``): peel ``k`` fits the
data up to ``last_data_year = T − k`` with ``T`` the terminal data year
(``config.fit.last_data_year`` or ``config.model.last_year``). With gaps in the survey record a peel
can remove no observation (only the recruitment deviations of the peeled years); that peel is
still a retrospective peel, and in the hindcast its first held-out observation may lie more than
one year ahead (``horizon_yr`` says so).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats
from statsmodels.sandbox.stats.runs import runstest_1samp

from carpmodel.dims import YEAR, with_attrs
from carpmodel.errors import FitError
from carpmodel.inference.fitting import (
    AICC_DATA_COMPONENTS,
    CATCH_SD_LOG,
    GRADIENT_STEP,
    FitResult,
    aicc_value,
    build_spec,
    fix_parameter,
)
from carpmodel.inference.likelihood import (
    HATCHERY_FRACTION_CV,
    UPPER_BOUND_SD_LOG,
    Free,
    ModelSpec,
    Observations,
    nll_components,
    observation_sd,
    predict,
    survey_prediction_t,
)
from carpmodel.inference.refit import better, refit, refit_many
from carpmodel.inference.refit import map_start as map_theta
from carpmodel.inference.results import fit_draws
from carpmodel.io.config import RunConfig, default_config
from carpmodel.priors import Prior

__all__ = [
    "DATA_COMPONENTS",
    "HURTADO_FERRO_RHO_RANGE",
    "HindcastResult",
    "ModelComparison",
    "ProfileResult",
    "ResidualDiagnostics",
    "RetrospectiveResult",
    "RunsTest",
    "SelfTestResult",
    "aicc",
    "compare_fits",
    "compare_models",
    "coverage_mc_se",
    "default_variants",
    "hindcast",
    "hindcast_predictions",
    "map_theta",
    "mase",
    "mohns_rho",
    "peel_fits",
    "profile",
    "profile_grid",
    "residuals",
    "retrospective",
    "runs_test",
    "self_test",
    "simulate_replicates",
]

#: NLL components that are data (enter AICc); the others are priors and penalties
DATA_COMPONENTS = AICC_DATA_COMPONENTS
#: Mohn's ρ rule of thumb for longer-lived species (Hurtado-Ferro et al. 2015, ICES J. Mar. Sci.
#: 72: 99–110): values outside (−0.15, 0.20) indicate a retrospective pattern worth acting on
HURTADO_FERRO_RHO_RANGE = (-0.15, 0.20)
#: floor of the naive forecast's mean absolute error in the adjusted MASE (ss3diags ``MAE.base.adj``)
MASE_NAIVE_FLOOR = 0.1
#: Δ(total NLL) bounding an approximate 95 % profile interval: χ²₁(0.95)/2
PROFILE_CHI2_HALF = 0.5 * float(stats.chi2.ppf(0.95, 1))
#: nominal coverage of the self-test's intervals (95 %)
NOMINAL_COVERAGE = 0.95
#: derived quantities of the self-test, in table order
SELF_TEST_QUANTITIES = ("biomass_last_year_t", "unfished_biomass_t", "depletion_last_year")
_Z95 = float(stats.norm.ppf(0.975))

#: a spec builder: data → ModelSpec (for variants that RunConfig cannot express)
SpecBuilder = Callable[[Any], ModelSpec]


# ----------------------------------------------------------------------------- helpers


def _json(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN and ±inf to None, xarray to dicts."""
    if isinstance(value, xr.Dataset | xr.DataArray):
        return _json(value.to_dict(data="list"))
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _attrs(ds: xr.Dataset, described: Mapping[str, tuple[str, str]], **attrs: Any) -> xr.Dataset:
    """Set ``(units, long_name)`` on the named variables, then carpmodel's dataset attrs."""
    for name, (units, long_name) in described.items():
        if name in ds:
            ds[name].attrs.update(units=units, long_name=long_name)
    return with_attrs(ds, **attrs)


def _terminal_year(config: RunConfig) -> int:
    return int(config.fit.last_data_year if config.fit.last_data_year is not None else config.model.last_year)


def _depletion(state: Any) -> NDArray:
    return state.biomass_t / np.asarray(state.reference.biomass0_t)[..., None]


# ----------------------------------------------------------------------------- 1. residuals


@dataclass(frozen=True)
class RunsTest:
    """Wald–Wolfowitz runs test of residual signs and the 3-sigma control limits.

    ``p_value`` is one-sided (fewer runs than expected, i.e. positive autocorrelation), as
    ss3diags' default ``mixing = "less"``; ``passed`` is ``p_value >= alpha``. ``sigma`` is the
    process SD from the average moving range (AMR / 1.128, moving ranges above 3.267·AMR
    dropped; Montgomery), and the limits are ``±3·sigma`` around zero (Carvalho et al. 2021).
    """

    z: float
    p_value: float
    passed: bool | None
    n_runs: int
    n_positive: int
    n_negative: int
    sigma: float
    lower_limit: float
    upper_limit: float
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return _json({f: getattr(self, f) for f in self.__dataclass_fields__})


def _three_sigma(x: NDArray) -> float:
    """SD from the average moving range, with Nelson's (1982) screen of large moving ranges."""
    if x.size < 2:
        return float("nan")
    moving_range = np.abs(np.diff(x))
    amr = float(np.mean(moving_range))
    kept = moving_range[moving_range < 3.267 * amr]
    if kept.size:
        amr = float(np.mean(kept))
    return amr / 1.128


def runs_test(x: Any, alpha: float = 0.05) -> RunsTest:
    """Runs test of the signs of ``x`` (cutoff 0) and its 3-sigma limits.

    Method: Wald–Wolfowitz runs test by ``statsmodels.sandbox.stats.runs.runstest_1samp(x,
    cutoff=0, correction=False)`` (the normal approximation without continuity correction,
    as R's ``randtests::runs.test`` that ss3diags calls), one-sided for too few runs:
    ``p = Φ(z)``. Values exactly 0 carry no sign and are dropped. All residuals of one sign
    give the exact probability of one run, ``2^{1−n}``. Limits ±3σ with σ from the average
    moving range (ss3diags ``ssruns_sig3``). Reference: Carvalho et al. (2021) Fish. Res. 240:
    105959, §2.2 and Fig. 3.
    """
    values = np.asarray(x, dtype=float)
    values = values[np.isfinite(values)]
    sigma = _three_sigma(values)
    signs = values[values != 0.0]
    n_pos, n_neg = int(np.sum(signs > 0)), int(np.sum(signs < 0))
    n_runs = int(1 + np.count_nonzero(np.diff(np.sign(signs)))) if signs.size else 0
    if signs.size < 2:
        z, p, passed = float("nan"), float("nan"), None
    else:
        z = float(runstest_1samp(signs, cutoff=0.0, correction=False)[0])
        p = float(stats.norm.cdf(z))
        passed = bool(p >= alpha)
    return RunsTest(z=z, p_value=p, passed=passed, n_runs=n_runs, n_positive=n_pos,
                    n_negative=n_neg, sigma=sigma, lower_limit=-3.0 * sigma,
                    upper_limit=3.0 * sigma, alpha=alpha)


@dataclass(frozen=True)
class ResidualDiagnostics:
    """Standardised log residuals of the biomass observations, their summary and runs test.

    ``table`` (dim ``year``): ``observed_t``, ``predicted_t`` (q·B), ``sd_log``,
    ``log_residual`` (log obs − log q·B), ``standardised_residual`` (log residual / σ) and
    ``outside_three_sigma``. ``mean``, ``sd`` (ddof 1; the SDNR) and ``rmse`` are of the
    standardised residuals, and the runs test and 3-sigma limits are computed on them too.
    """

    table: xr.Dataset
    mean: float
    sd: float
    rmse: float
    runs: RunsTest

    @property
    def standardised(self) -> NDArray:
        return self.table["standardised_residual"].values

    def to_dict(self) -> dict[str, Any]:
        return _json({"mean": self.mean, "sd": self.sd, "rmse": self.rmse,
                      "runs_test": self.runs.to_dict(), "table": self.table})


def residuals(result: FitResult) -> ResidualDiagnostics:
    """Standardised log residuals ``(log obs − log q·B)/σ`` per observation year, and a runs test.

    σ is the observation SD the likelihood uses (CV, plus ``sigma_obs_extra`` when estimated).
    Runs test and 3-sigma limits as :func:`runs_test` (Carvalho et al. 2021, Fish. Res. 240:
    105959; ss3diags ``SSplotRunstest``) on the standardised residuals: ss3diags uses the raw
    log residuals of one index, whose CVs are usually similar; here the CVs run from 0.15 to
    0.5, so the standardised scale lets one pair of limits serve every year (the signs, hence
    the runs test, are the same on either scale). A residual outside the limits is flagged.
    """
    spec = result.spec
    state, u = predict(spec, result.theta)
    predicted = np.asarray(survey_prediction_t(spec, state, u), dtype=float)
    sd = np.asarray(observation_sd(spec, u), dtype=float) * np.ones_like(predicted)
    observed = np.asarray(spec.observations.biomass_t, dtype=float)
    log_resid = np.log(observed) - np.log(predicted)
    standardised = log_resid / sd
    runs = runs_test(standardised)
    outside = (standardised < runs.lower_limit) | (standardised > runs.upper_limit)
    table = xr.Dataset(
        {"observed_t": (YEAR, observed), "predicted_t": (YEAR, predicted), "sd_log": (YEAR, sd),
         "log_residual": (YEAR, log_resid), "standardised_residual": (YEAR, standardised),
         "outside_three_sigma": (YEAR, outside)},
        coords={YEAR: np.asarray(spec.observations.year)})
    table = _attrs(table, {
        "observed_t": ("t", "observed survey biomass"),
        "predicted_t": ("t", "predicted survey biomass q·B"),
        "sd_log": ("1", "SD of log observation used in the likelihood"),
        "log_residual": ("1", "log observed − log predicted"),
        "standardised_residual": ("1", "log residual / SD"),
        "outside_three_sigma": ("1", "standardised residual outside the 3-sigma limits")})
    n = standardised.size
    return ResidualDiagnostics(
        table=table, mean=float(np.mean(standardised)),
        sd=float(np.std(standardised, ddof=1)) if n > 1 else float("nan"),
        rmse=float(np.sqrt(np.mean(standardised**2))), runs=runs)


# ----------------------------------------------------------------------------- 2. retrospective


def peel_fits(data: Any, config: RunConfig, n_peels: int = 5, *,
              full: FitResult | None = None) -> dict[int, FitResult | None]:
    """Refits for calendar-year peels ``Y = T − k``, k = 1..n_peels, keyed by ``Y`` (descending).

    ``T`` is ``config.fit.last_data_year`` or ``config.model.last_year``. Each refit uses
    ``config.with_fit(last_data_year=Y)``: observations up to Y, recruitment deviations up to
    Y, the engine run to ``config.model.last_year`` with the historical catch and releases. With
    ``full`` (the fit with ``config``) each peel starts from the full fit's estimates (its own
    parameters matched by name) in the coordinates its Hessian whitens
    (:func:`carpmodel.inference.refit.refit`): a peel drops one year of data, so its optimum is close
    (a warm start reached the same NLL as the cold fit to 1e-6 on the bundled data, in a tenth of
    the time); the real fit's procedure (:func:`carpmodel.inference.fitting.fit`, ``config.fit.n_starts``,
    ``config.seed``) is the fallback when that does not converge, and the first attempt when
    ``full`` is not given. Pass the result to :func:`retrospective` and :func:`hindcast` to fit
    the peels once for both. A refit that fails outright is ``None`` (with a ConvergenceWarning).
    """
    if n_peels < 1:
        raise FitError(f"n_peels: expected at least 1, got {n_peels}")
    terminal = _terminal_year(config)
    out: dict[int, FitResult | None] = {}
    for k in range(1, n_peels + 1):
        year = terminal - k
        spec = build_spec(data, config.with_fit(last_data_year=year))
        out[year] = refit(spec, source=full, n_starts=config.fit.n_starts, seed=config.seed,
                          cold_first=full is None, label=f"peel {k} (last data year {year})")
    return out


def mohns_rho(trajectories: xr.DataArray) -> float:
    """Mohn's ρ of a retrospective: ``mean_p (X_p(Y_p) − X_0(Y_p)) / X_0(Y_p)``.

    ``trajectories`` has dims ``(peel, year)``; peel index 0 is the reference (full) run and a
    coordinate ``terminal_year`` along ``peel`` gives each peel's terminal year ``Y_p``. Peels
    whose value is not finite are left out. Reference: Mohn (1999) ICES J. Mar. Sci. 56:
    473–488; the averaged form of Hurtado-Ferro et al. (2015) ICES J. Mar. Sci. 72: 99–110.
    """
    reference = trajectories.isel(peel=0)
    terms = []
    for p in range(1, trajectories.sizes["peel"]):
        year = int(trajectories["terminal_year"].values[p])
        full = float(reference.sel(year=year))
        value = float(trajectories.isel(peel=p).sel(year=year))
        term = (value - full) / full
        if np.isfinite(term):
            terms.append(term)
    return float(np.mean(terms)) if terms else float("nan")


@dataclass(frozen=True)
class RetrospectiveResult:
    """Calendar-year retrospective: trajectories per peel and Mohn's ρ of each quantity.

    ``trajectories`` (dims ``peel, year``; peel 0 the full fit): ``biomass_t``, ``ssb_t``,
    ``depletion`` (B/B0), each NaN after the peel's ``terminal_year``; per peel ``converged``,
    ``max_abs_gradient``, ``nll``, ``n_observations`` and ``relative_error_<quantity>`` (the
    terms Mohn's ρ averages). ``mohns_rho`` maps quantity to ρ over the converged peels;
    ``within_rule_of_thumb`` to whether ρ lies in Hurtado-Ferro et al.'s (2015) range for
    longer-lived species, −0.15 to 0.20.
    """

    trajectories: xr.Dataset
    mohns_rho: dict[str, float]
    within_rule_of_thumb: dict[str, bool | None]
    n_peels: int
    n_converged: int
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return _json({"peel_type": "calendar year", "mohns_rho": self.mohns_rho,
                      "rule_of_thumb_range": HURTADO_FERRO_RHO_RANGE,
                      "within_rule_of_thumb": self.within_rule_of_thumb, "n_peels": self.n_peels,
                      "n_converged": self.n_converged, "runtime_s": self.runtime_s,
                      "trajectories": self.trajectories})


def _trajectory(result: FitResult | None, n_years: int) -> dict[str, NDArray]:
    if result is None:
        return {name: np.full(n_years, np.nan) for name in ("biomass_t", "ssb_t", "depletion")}
    state, _ = predict(result.spec, result.theta)
    return {"biomass_t": np.asarray(state.biomass_t, float), "ssb_t": np.asarray(state.ssb_t, float),
            "depletion": np.asarray(_depletion(state), float)}


def retrospective(data: Any, config: RunConfig | None = None, n_peels: int = 5, *,
                  full: FitResult | None = None,
                  fits: Mapping[int, FitResult | None] | None = None) -> RetrospectiveResult:
    """Retrospective analysis with calendar-year peels and Mohn's ρ.

    Method: refit with ``config.with_fit(last_data_year=T − k)`` for k = 1..n_peels
    (:func:`peel_fits`; SS3 ``retro_yr`` convention: calendar years, so with gaps a peel may
    remove no observation), collect survey biomass, SSB and depletion ``B/B0`` per peel and
    compute :func:`mohns_rho` of each at the peels' terminal years. ``full`` (the fit with
    ``config``) and ``fits`` (from :func:`peel_fits`) are reused when given. References: Mohn
    (1999) ICES J. Mar. Sci. 56: 473–488; Hurtado-Ferro et al. (2015) ICES J. Mar. Sci. 72:
    99–110; Carvalho et al. (2021) Fish. Res. 240: 105959.
    """
    start = time.perf_counter()
    config = default_config() if config is None else config
    if full is None:
        full = refit(build_spec(data, config), n_starts=config.fit.n_starts, seed=config.seed,
                     label="full fit")
        if full is None:
            raise FitError("retrospective: the full fit failed, so there is no reference run")
    if fits is None:
        fits = peel_fits(data, config, n_peels, full=full)
    terminal = _terminal_year(config)
    years = np.asarray(full.spec.years)
    peels = [(terminal, full)] + sorted(fits.items(), reverse=True)[:n_peels]
    for year, result in peels:
        if result is not None and not np.array_equal(result.spec.years, years):
            raise FitError(f"retrospective: the fit for last data year {year} runs "
                           f"{result.spec.years[0]}-{result.spec.years[-1]}, the full fit "
                           f"{years[0]}-{years[-1]}: peels must share the full fit's years")
    series: dict[str, list[NDArray]] = {"biomass_t": [], "ssb_t": [], "depletion": []}
    for year, result in peels:
        traj = _trajectory(result, years.size)
        for name in series:
            values = traj[name].copy()
            values[years > year] = np.nan
            series[name].append(values)
    peel_index = np.arange(len(peels))
    ds = xr.Dataset({name: (("peel", YEAR), np.stack(v)) for name, v in series.items()},
                    coords={"peel": peel_index, YEAR: years,
                            "terminal_year": ("peel", [y for y, _ in peels])})
    ds["converged"] = ("peel", [bool(r is not None and r.converged) for _, r in peels])
    ds["max_abs_gradient"] = ("peel", [r.max_abs_gradient if r else np.nan for _, r in peels])
    ds["nll"] = ("peel", [r.nll if r else np.nan for _, r in peels])
    ds["n_observations"] = ("peel", [r.spec.observations.year.size if r else 0 for _, r in peels])
    # a peel that has not converged has no meaningful estimate: kept in the table, not in rho
    usable = ds["converged"] | (ds["peel"] == 0)
    rho = {name: mohns_rho(ds[name].where(usable)) for name in series}
    for name in series:
        full_at = np.array([float(ds[name].isel(peel=0).sel(year=y)) for y, _ in peels])
        peel_at = np.array([float(ds[name].isel(peel=p).sel(year=y)) for p, (y, _) in enumerate(peels)])
        ds[f"relative_error_{name}"] = ("peel", (peel_at - full_at) / full_at)
    low, high = HURTADO_FERRO_RHO_RANGE
    within = {k: (bool(low <= v <= high) if np.isfinite(v) else None) for k, v in rho.items()}
    ds = _attrs(ds, {
        "biomass_t": ("t", "end-of-year survey biomass per peel (NaN after its terminal year)"),
        "ssb_t": ("t", "spawning stock biomass per peel (NaN after its terminal year)"),
        "depletion": ("1", "survey biomass / unfished survey biomass B0 per peel"),
        "converged": ("1", "fit converged"), "max_abs_gradient": ("1", "largest |gradient| of the fit"),
        "nll": ("1", "total negative log posterior of the fit"),
        "n_observations": ("1", "biomass observations in the fit"),
        **{f"relative_error_{n}": ("1", f"(peel − full)/full of {n} at the peel's terminal year")
           for n in series}},
        peel_type="calendar year: peel k fits data up to terminal year - k; peel 0 is the full fit")
    return RetrospectiveResult(
        trajectories=ds, mohns_rho=rho, within_rule_of_thumb=within, n_peels=len(peels) - 1,
        n_converged=int(ds["converged"].values[1:].sum()), runtime_s=time.perf_counter() - start)


# ----------------------------------------------------------------------------- 3. hindcast


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
        return _json({f: getattr(self, f) for f in self.__dataclass_fields__})


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
    terminal = _terminal_year(config)
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
    table, predictions = _attrs(table, described), _attrs(predictions, described)

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
                         n_draws: int = 500, seed: int = 20260601) -> xr.Dataset:
    """A fit to the observations ≤ ``config.fit.last_data_year`` and the observations it did not see.

    What ``carpmodel fit --last-data-year Y`` reports. ``result`` is the fit of
    ``build_spec(data, config)``. Dims ``year`` (the model years): ``biomass_t``, ``ssb_t``,
    ``depletion`` and ``survey_predicted_t`` (q·B; zero recruitment deviations after Y) with a
    95 % interval of the survey prediction (``survey_predicted_lower/upper``, from ``n_draws``
    parameter vectors of ``N(θ̂, Σ)``, :func:`carpmodel.inference.results.fit_draws`; parameter
    uncertainty only, no observation error), ``biomass_obs_t``, ``biomass_obs_cv``, ``used_in_fit``
    and ``held_out`` (bool) and ``log_prediction_error`` (log q·B − log obs at held-out years).
    """
    spec = result.spec
    years = np.asarray(spec.years)
    last = _terminal_year(config)
    everything = build_spec(data, config.with_fit(last_data_year=int(years[-1]))).observations
    early_last = config.fit.early_survey_last_year
    early = years <= early_last if early_last is not None else np.zeros(years.size, bool)
    state, _ = predict(spec, result.theta)
    survey = _survey_at(result, years, np.ones(years.size), early)
    draws = fit_draws(result, n_draws, seed)
    with np.errstate(all="ignore"):
        sample = _survey_at(result, years, np.ones(years.size), early, theta=draws)
        lower, upper = np.nanquantile(sample, [0.025, 0.975], axis=0)
    index = np.searchsorted(years, everything.year)
    obs = np.full(years.size, np.nan)
    cv = np.full(years.size, np.nan)
    obs[index] = everything.biomass_t
    cv[index] = everything.cv
    has_obs = np.isfinite(obs)
    ds = xr.Dataset(
        {"biomass_t": (YEAR, state.biomass_t), "ssb_t": (YEAR, state.ssb_t),
         "depletion": (YEAR, _depletion(state)), "survey_predicted_t": (YEAR, survey),
         "survey_predicted_lower": (YEAR, lower), "survey_predicted_upper": (YEAR, upper),
         "biomass_obs_t": (YEAR, obs), "biomass_obs_cv": (YEAR, cv),
         "used_in_fit": (YEAR, has_obs & (years <= last)), "held_out": (YEAR, has_obs & (years > last)),
         "log_prediction_error": (YEAR, np.where(has_obs & (years > last),
                                                 np.log(survey) - np.log(np.where(has_obs, obs, 1.0)),
                                                 np.nan))},
        coords={YEAR: years})
    return _attrs(ds, {
        "depletion": ("1", "end-of-year survey biomass / unfished (B/B0)"),
        "survey_predicted_t": ("t", "predicted survey biomass q·B (rec devs zero after last data year)"),
        "survey_predicted_lower": ("t", "lower bound of the 95 % interval of q·B (parameter uncertainty)"),
        "survey_predicted_upper": ("t", "upper bound of the 95 % interval of q·B (parameter uncertainty)"),
        "used_in_fit": ("1", "observation used in the fit"),
        "held_out": ("1", "observation after the last data year, not used in the fit"),
        "log_prediction_error": ("1", "log predicted − log observed at held-out years")},
        last_data_year=last, interval_method=f"{n_draws} draws of theta from N(estimate, covariance)")


# ----------------------------------------------------------------------------- 4. profile


def _prior_quantile(prior: Prior, q: Any) -> NDArray:
    """Quantiles of a prior (the four families of :mod:`carpmodel.priors`)."""
    q = np.asarray(q, dtype=float)
    p = prior.parameters
    if prior.distribution == "normal":
        return stats.norm.ppf(q, loc=p["mean"], scale=p["sd"])
    if prior.distribution == "lognormal":
        return p["median"] * np.exp(p["sd_log"] * stats.norm.ppf(q))
    if prior.distribution == "beta":
        return stats.beta.ppf(q, *prior.beta_shape())
    return p["lower"] + q * (p["upper"] - p["lower"])


def _free(spec: ModelSpec, name: str) -> Free:
    for free in spec.free:
        if free.field == name:
            return free
    raise FitError(f"{name} is not estimated in this spec; estimated: "
                   f"{', '.join(f.field for f in spec.free)}")


def profile_grid(spec: ModelSpec, field: str, n_values: int = 9) -> NDArray:
    """``n_values`` values spanning the 5–95 % range of the field's prior, evenly spaced on the
    parameter's estimation scale (log for log-transformed, logit for logit-transformed)."""
    free = _free(spec, field)
    if free.prior is None:
        raise FitError(f"{field} has no prior in this spec: give the profile values explicitly")
    lo, hi = (float(v) for v in _prior_quantile(free.prior, [0.05, 0.95]))
    if free.bounds is not None and free.transform == "logit":
        eps = 1e-6 * (free.bounds[1] - free.bounds[0])
        lo, hi = max(lo, free.bounds[0] + eps), min(hi, free.bounds[1] - eps)
    if free.transform in ("log", "logit"):
        return np.asarray(free.from_theta(np.linspace(free.to_theta(lo), free.to_theta(hi), n_values)))
    return np.linspace(lo, hi, n_values)


@dataclass(frozen=True)
class ProfileResult:
    """Likelihood profile over one parameter, by NLL component.

    ``table`` (dims ``value, component``): ``nll`` and ``delta_nll`` (each component minus its
    minimum over the grid), components the fit's ``nll_components`` (0 where absent) plus
    ``fixed_parameter_prior`` (−log prior density of the profiled value, which the fixed spec no
    longer carries) and ``total``; per value ``converged`` and ``max_abs_gradient``.
    ``estimate`` and ``estimate_nll`` are the field's MAP estimate and the objective there (the
    fit the profile starts from); ``minimum_value`` is the grid value of least total;
    ``interval_95`` the values where the linearly interpolated Δtotal crosses
    χ²₁(0.95)/2 = 1.92 (None where the grid does not reach it).
    """

    field: str
    table: xr.Dataset
    estimate: float
    estimate_nll: float
    minimum_value: float
    interval_95: tuple[float | None, float | None]
    runtime_s: float

    @property
    def values(self) -> NDArray:
        return self.table["value"].values

    def to_dict(self) -> dict[str, Any]:
        return _json({f: getattr(self, f) for f in self.__dataclass_fields__})


def _crossing(x: NDArray, y: NDArray, level: float) -> float | None:
    """x where y (monotone stretch from its minimum outwards) first reaches ``level``."""
    for i in range(1, x.size):
        if np.isfinite(y[i - 1]) and np.isfinite(y[i]) and y[i - 1] < level <= y[i]:
            return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    return None


def profile(spec: ModelSpec, field: str = "unfished_biomass_t", values: Any = None, *,
            start: FitResult | None = None, n_values: int = 9, n_starts: int = 1,
            seed: int = 20260601) -> ProfileResult:
    """Likelihood profile: refit with ``fix_parameter(spec, field, v)`` at each value.

    Method: the profile of a global scale parameter by likelihood component (Lee et al. 2014,
    Fish. Res. 158: 138–146; r4ss ``SSplotProfile``; FIMS ``run_fims_likelihood``). The
    profiled parameter's prior is reported as its own component so that ``total`` is the
    objective the MAP fit minimises: its minimum over a fine grid is at the MAP estimate.
    Default grid: :func:`profile_grid` (9 values over the prior's 5–95 % range). Works for any
    parameter :func:`~carpmodel.inference.fitting.fix_parameter` can fix, e.g. ``"steepness"``.
    Continuation: ``start`` is the fit of ``spec`` (fitted here when not given); grid values
    above its estimate are fitted in increasing order, those below in decreasing order, each
    starting from the previous converged point (its estimates and Hessian, matched by name:
    :func:`carpmodel.inference.refit.refit`), with a fit from the priors' centres (``n_starts``) as the
    fallback, keeping the better; a point still not converged is tried once more from each
    converged neighbour on the grid.
    """
    clock = time.perf_counter()
    free = _free(spec, field)
    grid = profile_grid(spec, field, n_values) if values is None else np.asarray(values, float)
    if start is None:
        start = refit(spec, n_starts=n_starts, seed=seed, label="profile reference fit")
        if start is None:
            raise FitError("profile: the fit of the spec failed, so there is no start for the profile")
    estimate = float(start.natural_estimates()[field]["estimate"])
    results: list[FitResult | None] = [None] * grid.size
    above = [i for i in np.argsort(grid, kind="stable") if grid[i] >= estimate]
    below = [i for i in np.argsort(-grid, kind="stable") if grid[i] < estimate]
    for chain in (above, below):
        previous = start
        for i in chain:
            fixed = fix_parameter(spec, field, float(grid[i]))
            results[i] = refit(fixed, source=previous, n_starts=n_starts, seed=seed, cold_first=False,
                               label=f"profile {field} = {grid[i]:.6g}")
            if results[i] is not None and results[i].converged:
                previous = results[i]
    # second pass: a point that did not converge is tried again from its converged neighbours
    order = list(np.argsort(grid, kind="stable"))
    for position, i in enumerate(order):
        if results[i] is not None and results[i].converged:
            continue
        fixed = fix_parameter(spec, field, float(grid[i]))
        for j in (order[position - 1] if position > 0 else None,
                  order[position + 1] if position + 1 < len(order) else None):
            if j is None or results[j] is None or not results[j].converged:
                continue
            results[i] = better(results[i], refit(fixed, source=results[j], n_starts=n_starts, seed=seed,
                                                  cold_first=False, label=f"profile {field} = {grid[i]:.6g}"))
            if results[i] is not None and results[i].converged:
                break
    rows: list[dict[str, float]] = []
    converged, gradients = [], []
    for v, result in zip(grid, results, strict=True):
        row = dict(result.nll_components) if result is not None else {}
        prior = float(-free.prior.logpdf(float(v))) if free.prior is not None else 0.0
        row["fixed_parameter_prior"] = prior if result is not None else np.nan
        rows.append(row)
        converged.append(bool(result is not None and result.converged))
        gradients.append(result.max_abs_gradient if result is not None else np.nan)
    names = sorted({k for row in rows for k in row} - {"fixed_parameter_prior"})
    names += ["fixed_parameter_prior"]
    nll = np.array([[row.get(k, 0.0) if row else np.nan for k in names] for row in rows], float)
    failed = np.array([not row or not np.isfinite(row["fixed_parameter_prior"]) for row in rows])
    nll[failed] = np.nan
    nll = np.concatenate([nll, nll.sum(axis=1, keepdims=True)], axis=1)
    names.append("total")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        delta = nll - np.nanmin(nll, axis=0, keepdims=True)
    table = xr.Dataset(
        {"nll": (("value", "component"), nll), "delta_nll": (("value", "component"), delta),
         "converged": ("value", converged), "max_abs_gradient": ("value", gradients)},
        coords={"value": grid, "component": names})
    total = delta[:, -1]
    best = int(np.nanargmin(total)) if np.any(np.isfinite(total)) else 0
    lower = _crossing(grid[best::-1], total[best::-1], PROFILE_CHI2_HALF)
    upper = _crossing(grid[best:], total[best:], PROFILE_CHI2_HALF)
    table = _attrs(table, {
        "nll": ("1", "negative log density by component at the profile fit"),
        "delta_nll": ("1", "nll minus its minimum over the grid, per component"),
        "converged": ("1", "profile fit converged"),
        "max_abs_gradient": ("1", "largest |gradient| of the profile fit")}, profiled_field=field)
    table["value"].attrs.update(long_name=f"value of {field} held fixed", units="natural scale")
    return ProfileResult(field=field, table=table, estimate=estimate, estimate_nll=float(start.nll),
                         minimum_value=float(grid[best]), interval_95=(lower, upper),
                         runtime_s=time.perf_counter() - clock)


# ----------------------------------------------------------------------------- 5. self-test


@dataclass(frozen=True)
class SelfTestResult:
    """Simulation self-test: bias and interval coverage of refits to data simulated from the fit.

    ``replicates`` (dims ``replicate, quantity``): ``truth``, ``estimate``, ``lower``,
    ``upper`` (95 % delta-method interval on the log scale), ``relative_error``, ``covered``;
    per replicate ``converged``. ``summary`` (dim ``quantity``): ``median_relative_bias``,
    ``coverage``, ``coverage_mc_se`` = sqrt(p(1 − p)/n), ``coverage_mc_se_nominal`` =
    sqrt(0.95·0.05/n) (the yardstick of a departure from 95 %, where p = 1 gives an SE of 0) and
    ``n_used``, over the converged refits with a covariance. Quantities: survey biomass in the
    last model year, unfished survey biomass B0 and depletion B/B0 in the last year.
    """

    replicates: xr.Dataset
    summary: xr.Dataset
    n_replicates: int
    n_converged: int
    seed: int
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return _json({f: getattr(self, f) for f in self.__dataclass_fields__})


def coverage_mc_se(p: float, n: int) -> float:
    """Monte Carlo standard error of a coverage proportion: sqrt(p(1 − p)/n)."""
    return float(np.sqrt(p * (1.0 - p) / n)) if n > 0 else float("nan")


def _quantities(state: Any) -> NDArray:
    """(*batch, 3): biomass in the last year, B0, depletion in the last year."""
    b_last = np.asarray(state.biomass_t)[..., -1]
    b0 = np.asarray(state.reference.biomass0_t) * np.ones_like(b_last)
    return np.stack([b_last, b0, b_last / b0], axis=-1)


def _delta_log_intervals(result: FitResult) -> tuple[NDArray, NDArray, NDArray]:
    """Estimate and 95 % delta-method interval of :func:`_quantities` on the log scale.

    Var(log g) = J Σ Jᵀ with J the central-difference Jacobian of log g w.r.t. θ (one batch of
    2n engine runs). NaN intervals when the fit has no covariance.
    """
    state, _ = predict(result.spec, result.theta)
    estimate = _quantities(state)
    if result.covariance is None:
        nan = np.full(estimate.shape, np.nan)
        return estimate, nan, nan
    n = result.theta.size
    step = GRADIENT_STEP * 10
    points = np.concatenate([result.theta + step * np.eye(n), result.theta - step * np.eye(n)])
    shifted, _ = predict(result.spec, points)
    logs = np.log(_quantities(shifted))
    jacobian = (logs[:n] - logs[n:]).T / (2 * step)            # (quantity, parameter)
    sd = np.sqrt(np.maximum(np.einsum("qi,ij,qj->q", jacobian, result.covariance, jacobian), 0.0))
    return estimate, estimate * np.exp(-_Z95 * sd), estimate * np.exp(_Z95 * sd)


def _simulated_spec(spec: ModelSpec, truth_state: Any, truth_u: Any, index: int,
                    survey_t: NDArray, sd: NDArray, rng: np.random.Generator) -> ModelSpec:
    """Spec with data simulated around replicate ``index`` of the truth (draw order fixed)."""
    obs = spec.observations
    biomass = survey_t[index] * np.exp(sd[index] * rng.standard_normal(obs.year.size))
    changes: dict[str, Any] = {"observations": replace(obs, biomass_t=biomass)}
    if spec.hatchery_fractions:
        years = np.array([y for y, _ in spec.hatchery_fractions])
        true = truth_state.hatchery_fraction_biomass[index, np.searchsorted(spec.years, years)]
        noisy = true * np.exp(HATCHERY_FRACTION_CV * rng.standard_normal(years.size))
        changes["hatchery_fractions"] = tuple((int(y), float(f)) for y, f in zip(years, noisy, strict=True))
    if spec.upper_bound is not None:
        year, _ = spec.upper_bound
        q = float(np.broadcast_to(np.asarray(truth_u.params.survey_q), survey_t.shape[:1])[index])
        true = q * truth_state.biomass_t[index, int(np.searchsorted(spec.years, year))]
        changes["upper_bound"] = (int(year), float(true * np.exp(UPPER_BOUND_SD_LOG * rng.standard_normal())))
    n_rep = survey_t.shape[0]

    def observed(name: str) -> float:
        return float(np.broadcast_to(np.asarray(truth_u.observation[name], float), (n_rep,))[index])

    if spec.hatchery_samples:
        samples = spec.hatchery_samples
        at = np.searchsorted(spec.years, [s.year for s in samples])
        share = np.asarray(truth_state.hatchery_fraction_numbers)[index, at]
        m_hw, m_wh = observed("misclass_hatchery_as_wild"), observed("misclass_wild_as_hatchery")
        p = np.clip(share * (1.0 - m_hw) + (1.0 - share) * m_wh, 1e-9, 1.0 - 1e-9)
        n = np.array([s.n_examined for s in samples])
        deff = np.array([s.design_effect for s in samples], float)
        rho = np.where(n > 1, (deff - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
        safe = np.where(rho > 0, rho, 0.5)
        p_draw = np.where(rho > 0, rng.beta(p * (1 - safe) / safe, (1 - p) * (1 - safe) / safe), p)
        k = rng.binomial(n, p_draw)
        changes["hatchery_samples"] = tuple(replace(s, n_hatchery=int(k_i))
                                            for s, k_i in zip(samples, k, strict=True))
    if spec.juvenile_index:
        years = np.array([row[0] for row in spec.juvenile_index])
        cv = np.array([row[2] for row in spec.juvenile_index], float)
        true = observed("juvenile_index_q") * np.asarray(truth_state.wild_window_survivors)[
            index, np.searchsorted(spec.years, years)]
        noisy = true * np.exp(cv * rng.standard_normal(years.size))
        changes["juvenile_index"] = tuple((int(y), float(v), float(c))
                                          for y, v, c in zip(years, noisy, cv, strict=True))
    return replace(spec, **changes)


def simulate_replicates(result: FitResult, n_replicates: int,
                        seed: int = 20260601) -> tuple[NDArray, list[ModelSpec], list[int]]:
    """The simulated truths and data sets of :func:`self_test`, without refitting.

    Returns ``truth (n_replicates, 3)`` (:data:`SELF_TEST_QUANTITIES` of each simulated truth),
    one spec per replicate holding its simulated data, and each refit's multistart seed. All
    truths run through the engine as one batch; replicate r draws from stream r of
    ``SeedSequence(seed).spawn(n_replicates)``: rec devs, observation errors, the refit seed.
    """
    if n_replicates < 1:
        raise FitError(f"n_replicates: expected at least 1, got {n_replicates}")
    spec = result.spec
    n_free = len(spec.estimated)
    n_dev = len(spec.rec_dev_years)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_replicates)]
    sigma_r = float(np.asarray(predict(spec, result.theta)[1].params.sigma_r).reshape(-1)[0])
    thetas = np.repeat(np.asarray(result.theta, float)[None, :], n_replicates, axis=0)
    for r, rng in enumerate(streams):
        thetas[r, n_free:] = sigma_r * rng.standard_normal(n_dev)
    truth_state, truth_u = predict(spec, thetas)
    survey_t = np.asarray(survey_prediction_t(spec, truth_state, truth_u), float)
    sd = np.asarray(observation_sd(spec, truth_u), float) * np.ones_like(survey_t)
    specs = [_simulated_spec(spec, truth_state, truth_u, r, survey_t, sd, rng)
             for r, rng in enumerate(streams)]
    seeds = [int(rng.integers(2**31)) for rng in streams]
    return _quantities(truth_state), specs, seeds


def self_test(result: FitResult, n_replicates: int = 20, seed: int = 20260601, *,
              n_starts: int = 1, warm_start: bool = True) -> SelfTestResult:
    """Simulation self-test of the fitted model (WHAM ``self_test``; SS3 bootstrap/ss3sim).

    Method (:func:`simulate_replicates`): the truth of replicate r is the fitted model with new
    recruitment deviations ``ε_y ~ N(0, σ_R)`` for every rec-dev year (WHAM's
    ``conditional = FALSE``; its default keeps the fitted random effects); all truths run
    through the engine as ONE batch (``predict(spec, thetas)``, ``thetas (n_replicates, n)``).
    Data: the same years and CVs, ``log B_obs = log(q·B_true) + σ_y·z``, ``z ~ N(0, 1)``, σ_y
    the fit's observation SD (the likelihood's median-unbiased lognormal); optional data are
    simulated from the truth by their own likelihoods (hatchery fractions, upper bound and
    juvenile index lognormal; hatchery-origin samples beta-binomial). Each data set is refitted
    with the same spec (``replace(spec, observations=...)``), by default from the original
    estimates θ̂ (``warm_start``; WHAM's ``self_test`` sets ``sim_input$par <- fit$parList``):
    all replicates in ONE batched search (:func:`carpmodel.inference.refit.refit_many`: whitened by the
    fit's Hessian, every iteration one engine call for all data sets; the Hessian of
    :func:`carpmodel.inference.fitting.fit` once at each end point), with a fit from the priors' centres
    (``n_starts`` starts) as the fallback for a replicate that does not converge, and the other
    way round with ``warm_start=False``. Converged as :func:`~carpmodel.inference.fitting.fit` says.
    For B in the last year, B0 and depletion in the last year: the median relative bias
    ``(estimate − truth)/truth``, the coverage of the 95 % delta-method interval on the log
    scale (``result.covariance`` of each refit and a central-difference Jacobian of
    log(quantity) w.r.t. θ) and its Monte Carlo SE ``sqrt(p(1 − p)/n)``, over the converged
    refits with a covariance. Randomness: ``SeedSequence(seed).spawn(n_replicates)``, one
    stream per replicate (rec devs, observation errors, then the refit's multistart seed).
    References: Stock & Miller (2021) Fish. Res. 240: 105967 (WHAM); Deroba et al. (2015) ICES
    J. Mar. Sci. 72: 19–30.
    """
    start = time.perf_counter()
    truth, simulated, refit_seeds = simulate_replicates(result, n_replicates, seed)
    n_q = len(SELF_TEST_QUANTITIES)
    estimate = np.full((n_replicates, n_q), np.nan)
    lower, upper = estimate.copy(), estimate.copy()
    converged = np.zeros(n_replicates, bool)
    refits = refit_many(simulated, source=result, n_starts=n_starts, seeds=refit_seeds,
                        cold_first=not warm_start, label="self-test replicate")
    for r, refitted in enumerate(refits):
        if refitted is None:
            continue
        converged[r] = refitted.converged
        estimate[r], lower[r], upper[r] = _delta_log_intervals(refitted)
    covered = (lower <= truth) & (truth <= upper)
    usable = converged[:, None] & np.isfinite(lower) & np.isfinite(upper)
    relative_error = (estimate - truth) / truth
    n_used = usable.sum(axis=0)
    coverage = np.array([covered[usable[:, q], q].mean() if n_used[q] else np.nan for q in range(n_q)])
    bias = np.array([np.median(relative_error[usable[:, q], q]) if n_used[q] else np.nan
                     for q in range(n_q)])
    mc_se = np.array([coverage_mc_se(coverage[q], int(n_used[q])) for q in range(n_q)])
    nominal_se = np.array([coverage_mc_se(NOMINAL_COVERAGE, int(n_used[q])) for q in range(n_q)])
    coords = {"replicate": np.arange(n_replicates), "quantity": list(SELF_TEST_QUANTITIES)}
    rep = xr.Dataset({"truth": (("replicate", "quantity"), truth),
                      "estimate": (("replicate", "quantity"), estimate),
                      "lower": (("replicate", "quantity"), lower),
                      "upper": (("replicate", "quantity"), upper),
                      "relative_error": (("replicate", "quantity"), relative_error),
                      "covered": (("replicate", "quantity"), covered & usable),
                      "converged": ("replicate", converged)}, coords=coords)
    summary = xr.Dataset({"median_relative_bias": ("quantity", bias), "coverage": ("quantity", coverage),
                          "coverage_mc_se": ("quantity", mc_se),
                          "coverage_mc_se_nominal": ("quantity", nominal_se), "n_used": ("quantity", n_used)},
                         coords={"quantity": coords["quantity"]})
    described = {
        "truth": ("natural units (t or 1)", "value in the simulated truth"),
        "estimate": ("natural units (t or 1)", "estimate of the refit"),
        "lower": ("natural units (t or 1)", "lower bound of the 95 % delta-method interval (log scale)"),
        "upper": ("natural units (t or 1)", "upper bound of the 95 % delta-method interval (log scale)"),
        "relative_error": ("1", "(estimate - truth) / truth"),
        "covered": ("1", "truth inside the 95 % interval (false if the refit is not usable)"),
        "converged": ("1", "refit converged"),
        "median_relative_bias": ("1", "median relative error over usable refits"),
        "coverage": ("1", "fraction of usable refits whose 95 % interval holds the truth"),
        "coverage_mc_se": ("1", "Monte Carlo SE of coverage, sqrt(p(1-p)/n)"),
        "coverage_mc_se_nominal": ("1", "Monte Carlo SE at the nominal coverage, sqrt(0.95*0.05/n): "
                                        "the scale of a departure from 95 % (p(1-p) is 0 at p = 1)"),
        "n_used": ("1", "converged refits with a covariance")}
    return SelfTestResult(replicates=_attrs(rep, described, seed=seed),
                          summary=_attrs(summary, described, seed=seed), n_replicates=n_replicates,
                          n_converged=int(converged.sum()), seed=seed,
                          runtime_s=time.perf_counter() - start)


# ----------------------------------------------------------------------------- 6. model comparison


#: AICc as fitting defines it (one formula for the package)
aicc = aicc_value


def default_variants(config: RunConfig | None = None) -> dict[str, RunConfig | SpecBuilder]:
    """The structural alternatives compared by default (all on the same biomass data).

    ``beverton_holt`` (the base case), ``ricker``, ``dd_window_0`` and ``dd_window_2`` (last age
    of the juvenile density-dependence window; base case 1 from life_history.toml),
    ``initial_unfished_1956`` and ``initial_equilibrium_1986`` (``ModelOptions.initial_state``,
    with catch error ``catch_sd_log`` = :data:`~carpmodel.inference.fitting.CATCH_SD_LOG`: with exact
    catches these starts do not converge, experiments/01_fit_baseline).
    """
    config = default_config() if config is None else config
    return {
        "beverton_holt": config.with_fit(recruitment="beverton_holt"),
        "ricker": config.with_fit(recruitment="ricker"),
        "dd_window_0": config.with_fit(dd_window_end_age_yr=0),
        "dd_window_2": config.with_fit(dd_window_end_age_yr=2),
        "initial_unfished_1956": config.with_fit(initial_state="unfished_1956", catch_sd_log=CATCH_SD_LOG),
        "initial_equilibrium_1986": config.with_fit(initial_state="equilibrium_1986",
                                            catch_sd_log=CATCH_SD_LOG),
    }


@dataclass(frozen=True)
class ModelComparison:
    """AICc table of model variants on the same data.

    ``table`` (dim ``variant``): ``nll_data`` (the data components, :data:`DATA_COMPONENTS`),
    ``nll_total`` (the MAP objective, priors and rec-dev penalty included),
    ``nll_catch_shortfall``, ``n_parameters`` k (estimated parameters excluding recruitment
    deviations), ``n_observations`` n, ``aicc``, ``delta_aicc``, ``akaike_weight``,
    ``converged``, ``max_abs_gradient``. ``best`` is the converged variant of least AICc;
    ``ranking`` lists the converged variants from best to worst (the others are not ranked).
    """

    table: xr.Dataset
    best: str | None
    ranking: tuple[str, ...]
    runtime_s: float = 0.0
    fits: Mapping[str, FitResult | None] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _json({"best": self.best, "ranking": self.ranking, "runtime_s": self.runtime_s,
                      "data_components": DATA_COMPONENTS,
                      "k_excludes": "recruitment deviations (penalised random effects) and, with "
                                    "catch error, the F of each fished year with its catch component "
                                    "(fitting.aicc_parameters)",
                      "table": self.table})


def compare_fits(fits: Mapping[str, FitResult | None], runtime_s: float = 0.0) -> ModelComparison:
    """AICc table of finished fits (method: :func:`compare_models`).

    Only converged fits with a finite AICc are ranked and get ``delta_aicc`` and an Akaike
    weight (a fit that has not reached its optimum has no meaningful likelihood); the others
    keep their AICc for the record, with NaN delta and weight 0. A ``None`` fit gets NaN.
    """
    names = list(fits)
    rows = []
    for name in names:
        result = fits[name]
        if result is None:
            rows.append((np.nan, np.nan, np.nan, -1, -1, np.nan, False, np.nan))
            continue
        rows.append((result.nll_data, result.nll, result.nll_components.get("catch_shortfall", 0.0),
                     result.k_aicc, result.n_data, result.aicc, result.converged, result.max_abs_gradient))
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    values = np.asarray(columns[5], float)
    converged = np.asarray(columns[6], bool)
    rankable = np.isfinite(values) & converged
    delta = np.where(rankable, values - (values[rankable].min() if rankable.any() else np.nan), np.nan)
    weights = np.where(rankable, np.exp(-0.5 * np.where(rankable, delta, 0.0)), 0.0)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(values.size, np.nan)
    n_obs = np.asarray(columns[4], int)
    table = xr.Dataset(
        {"nll_data": ("variant", np.asarray(columns[0], float)),
         "nll_total": ("variant", np.asarray(columns[1], float)),
         "nll_catch_shortfall": ("variant", np.asarray(columns[2], float)),
         "n_parameters": ("variant", np.asarray(columns[3], int)),
         "n_observations": ("variant", n_obs),
         "aicc": ("variant", values), "delta_aicc": ("variant", delta),
         "akaike_weight": ("variant", weights), "converged": ("variant", converged),
         "max_abs_gradient": ("variant", np.asarray(columns[7], float))},
        coords={"variant": names})
    table = _attrs(table, {
        "nll_data": ("1", f"NLL of the data components ({', '.join(DATA_COMPONENTS)})"),
        "nll_total": ("1", "MAP objective: data + recruitment-deviation penalty + priors"),
        "nll_catch_shortfall": ("1", "catch-shortfall penalty (not in AICc; > 0: the catch history "
                                     "is not met, the variant is not comparable)"),
        "n_parameters": ("1", "estimated parameters k, recruitment deviations excluded"),
        "n_observations": ("1", "data points n in the data NLL"),
        "aicc": ("1", "2 NLL_data + 2k + 2k(k+1)/(n-k-1)"),
        "delta_aicc": ("1", "AICc minus the smallest AICc of the converged fits (NaN: not ranked)"),
        "akaike_weight": ("1", "exp(-delta/2) normalised over the ranked variants"),
        "converged": ("1", "fit converged"), "max_abs_gradient": ("1", "largest |gradient| of the fit")},
        comparable=str(bool(np.unique(n_obs[rankable]).size <= 1)))
    order = [names[i] for i in np.argsort(np.where(rankable, values, np.inf), kind="stable") if rankable[i]]
    return ModelComparison(table=table, best=order[0] if order else None, ranking=tuple(order),
                           runtime_s=runtime_s, fits=dict(fits))


def compare_models(data: Any, variants: Mapping[str, RunConfig | SpecBuilder] | None = None, *,
                   n_starts: int | None = None, base_result: FitResult | None = None) -> ModelComparison:
    """Fit each variant and compare them by AICc on the data component.

    Method: ``AICc = 2·NLL_data + 2k + 2k(k+1)/(n − k − 1)`` (:func:`aicc`), NLL_data the biomass
    NLL plus the optional data components when on (:data:`DATA_COMPONENTS`: upper bound,
    hatchery fractions, hatchery-origin samples, juvenile index), k the
    number of estimated parameters EXCLUDING the recruitment deviations (they are penalised
    random effects, integrated out in a state-space model and not counted as free parameters
    here) and n the number of data points in NLL_data (the 12 biomass observations by default).
    Priors and the rec-dev penalty are left out of AICc; ``nll_total`` shows them. A variant is
    a :class:`~carpmodel.io.config.RunConfig` or a builder ``data → ModelSpec``; ``None`` uses
    :func:`default_variants`. Each fit uses the variant's
    ``n_starts`` and ``seed`` (builders: the RunConfig defaults) unless ``n_starts`` is given;
    a variant whose fit does not converge is refitted from the first variant's estimates and
    Hessian (matched by parameter name, :func:`carpmodel.inference.refit.refit`) and the better fit kept.
    The cold fit comes first because variants are different models: warm-started from the
    base case, ``initial_unfished_1956`` converges to a local optimum at twice the NLL the
    cold fit reaches (Ricker and the density-dependence windows reach the cold optimum warm).
    ``base_result``, a fit of the FIRST variant already made (e.g. the run's main fit, same data
    and config), is used as that variant's fit instead of fitting it again; it must be a fit
    of the first variant's spec: its objective there must reproduce ``base_result.nll``
    (ValueError otherwise).
    Reference: Burnham & Anderson (2002); Hurvich & Tsai (1989) Biometrika 76: 297–307.
    """
    start = time.perf_counter()
    variants = default_variants() if variants is None else variants
    fits: dict[str, FitResult | None] = {}
    first: FitResult | None = None
    for name, variant in variants.items():
        config = variant if isinstance(variant, RunConfig) else getattr(variant, "config", default_config())
        spec = build_spec(data, variant) if isinstance(variant, RunConfig) else variant(data)
        if first is None and base_result is not None:
            _check_same_model(spec, base_result, name)
            fits[name] = base_result
        else:
            fits[name] = refit(spec, source=first, n_starts=n_starts or config.fit.n_starts, seed=config.seed,
                               label=f"variant {name}")
        first = first or fits[name]
    return compare_fits(fits, runtime_s=time.perf_counter() - start)


def _check_same_model(spec: ModelSpec, result: FitResult, name: str) -> None:
    """ValueError unless ``result`` is a fit of ``spec``: same parameters, and the objective of
    ``spec`` at ``result.theta`` reproduces ``result.nll`` (to 1e-8 relative: the same model on
    the same data and priors gives the same number; any other difference changes it)."""
    if tuple(spec.parameter_names) != tuple(result.parameter_names):
        raise ValueError(f"compare_models: base_result is not a fit of variant {name!r} "
                         f"(parameters {list(result.parameter_names)} vs {list(spec.parameter_names)})")
    nll = float(sum(float(np.asarray(v)) for v in nll_components(spec, result.theta).values()))
    if not np.isclose(nll, result.nll, rtol=1e-8, atol=1e-8):
        raise ValueError(f"compare_models: base_result is not a fit of variant {name!r}: that variant's "
                         f"objective at its estimates is {nll:.6g}, the fit reports {result.nll:.6g}")
