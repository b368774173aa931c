"""Does temperature help explain the record? Fits with and without an estimated slope.

:func:`temperature_effect_test` fits the model with and without an estimated log-linear
recruitment–temperature slope on the data's own temperature series and reports ΔAICc, the
slope and its SE, the likelihood-ratio statistic and (optionally) hindcast MASE. With the
bundled ASSUMED series it says so: the effect is not testable on those data. Both models are
fitted by the project's optimisers (:func:`carpmodel.inference.refit.refit`: the warm whitened
search and :func:`carpmodel.inference.fitting.fit`) and compared with
:func:`carpmodel.inference.fitting.aicc_value`. :mod:`carpmodel.studies.power` asks whether a
record like this one could ever detect such a slope.

Units: temperatures in °C, slopes per °C on the log scale (``exp(b·(T − T_ref))``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from carpmodel.errors import ConfigError, FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import FitResult, aicc_value
from carpmodel.inference.refit import refit, safe_hessian
from carpmodel.inference.spec import Covariate as LikelihoodCovariate
from carpmodel.inference.spec import Free, ModelSpec
from carpmodel.io.config import RunConfig, default_config
from carpmodel.model.covariates import EnvSeries
from carpmodel.model.forcing import temperature_covariates
from carpmodel.priors import Prior

__all__ = [
    "DEFAULT_SLOPE_PRIOR_SD",
    "NOT_TESTABLE_ASSUMED",
    "SLOPE_FIELDS",
    "data_only_se",
    "slope_prior_nll",
    "temperature_effect_test",
    "with_slopes",
]

#: [A] SD of the Normal(0, σ) prior of an estimated temperature slope, per °C on the log scale:
#: weakly informative (±1 = recruitment ×0.37-2.7 per °C, a strong effect). It keeps the
#: estimate finite when the data say almost nothing: with a flat prior the estimate runs to
#: |b| > 5 on these data and the χ²₁ test is far from calibrated (type-I error 2 of 9 = 22 % in
#: a trial power run with 10 replicates).
DEFAULT_SLOPE_PRIOR_SD = 1.0
#: What :func:`temperature_effect_test` says for an assumed linear series.
NOT_TESTABLE_ASSUMED = "not testable: the temperature series is an assumption (a linear trend), not data"
#: Largest |residual| (°C) from a straight line for a series to count as "a linear trend".
_LINEAR_TOLERANCE_C = 0.02
#: Estimated slope field (1/°C) per target of an effect model.
SLOPE_FIELDS = {"recruitment": "recruitment_slope_per_c", "growth": "growth_slope_per_c"}


def _covariate_series(data: Any, years: NDArray, covariate: str) -> tuple[EnvSeries, NDArray]:
    """(the lake series, covariate values on ``years``) — lag 0: year y uses year y's value."""
    lake = EnvSeries.from_temperature(data)
    covariates = temperature_covariates(lake.extend(int(years[0]), int(years[-1])))
    if covariate not in covariates:
        raise ConfigError(f"covariate: expected one of {', '.join(covariates)}, got {covariate!r}")
    return lake, np.asarray(covariates[covariate].values, dtype=float)


def with_slopes(spec: ModelSpec, values: NDArray, reference: float, targets: Sequence[str],
                prior_sd: float | None) -> ModelSpec:
    """``spec`` with estimated log-linear slopes on ``values − reference`` (inserted before the
    recruitment deviations), each with a Normal(0, prior_sd) prior (None: flat)."""
    prior = Prior("normal", {"mean": 0.0, "sd": float(prior_sd)}) if prior_sd is not None else None
    added = tuple(Free(SLOPE_FIELDS[t], "identity", prior, 0.0) for t in targets)
    return replace(spec, free=tuple(spec.free) + added,
                   covariate=LikelihoodCovariate(np.asarray(values, float), float(reference)))


def slope_prior_nll(spec: ModelSpec, theta: NDArray) -> float:
    """The slopes' share of the priors component (−log prior density at theta)."""
    total = 0.0
    for i, free in enumerate(spec.estimated):
        if free.field in SLOPE_FIELDS.values() and free.prior is not None:
            total -= float(free.prior.logpdf(free.from_theta(theta[i])))
    return total


def data_only_se(h: NDArray | None, k: int, prior_sd: float | None) -> float:
    """SE of parameter ``k`` (1/°C for a slope) from the data (and the other parameters' priors)
    alone: inverse of the Hessian ``h`` (θ scale, e.g. :func:`~carpmodel.inference.refit.safe_hessian`
    at the fit) with the Normal(0, prior_sd) curvature 1/prior_sd² removed; inf when the
    remainder is not positive definite (the data do not bound the slope), NaN without a
    Hessian (None)."""
    if h is None:
        return float("nan")
    h = np.array(h, float)
    if prior_sd is not None:
        h[k, k] -= 1.0 / prior_sd**2
    if not np.all(np.linalg.eigvalsh(0.5 * (h + h.T)) > 0):
        return float("inf")
    return float(np.sqrt(np.linalg.inv(h)[k, k]))


def _is_linear(series: EnvSeries) -> bool:
    use = ~series.filled_mask
    if use.sum() < 3:
        return True
    slope, intercept = np.polyfit(series.year[use].astype(float), series.values[use], 1)
    residual = series.values[use] - (intercept + slope * series.year[use])
    return bool(np.max(np.abs(residual)) <= _LINEAR_TOLERANCE_C)


def _data_nll(result: FitResult, components: Sequence[str]) -> float:
    return float(sum(v for k, v in result.nll_components.items() if k in components))


def temperature_effect_test(data: Any, config: RunConfig | None = None, *,
                            covariate: str = "spawning_temperature_c",
                            targets: Sequence[str] = ("recruitment",),
                            slope_prior_sd: float | None = DEFAULT_SLOPE_PRIOR_SD,
                            baseline: FitResult | None = None,
                            hindcast_peels: int | None = None, cold_start: bool = True,
                            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Fit with and without an estimated temperature effect and compare (ΔAICc, LR, MASE).

    Method: the covariate is the data's temperature series on the model years at lag 0
    (recruits of year y respond to the spawning-season temperature of year y; years outside
    the series are held at its end values, recorded), centred on its fit-period mean. The
    effect model adds ``recruitment_slope_per_c`` (and ``growth_slope_per_c`` if ``"growth"``
    is in ``targets``; K then follows the same anomalies) — log-linear, ``exp(b·(T − T̄))``,
    identity transform, Normal(0, ``slope_prior_sd``) prior. Both models are fitted as
    :func:`carpmodel.inference.fitting.fit` does (``config.fit.n_starts``); the effect model also from the
    no-effect optimum with slope 0 (nested start: its estimates and Hessian,
    :func:`carpmodel.inference.refit.refit`), the better kept (``cold_start=False``: the nested start
    only, with the cold fit as the fallback if it does not converge; several times faster).
    ``baseline`` is a finished fit of ``build_spec(data, config)`` to reuse.

    Reported: ΔAICc (effect − no effect; > 0 favours no effect) with AICc = 2·NLL_data + 2k +
    2k(k+1)/(n − k − 1) (:func:`carpmodel.diagnostics.compare_fits`: data components only, k
    without the recruitment deviations, n the biomass observations), also on the penalised
    NLL (data + recruitment-deviation penalty, where a recruitment covariate acts); the
    slope, its SE (with the prior; and from the data alone, the prior's curvature removed);
    the likelihood-ratio statistic 2·ΔNLL (total objective, slope prior excluded) and its χ²₁
    p-value; with ``hindcast_peels`` > 0 (default: 5 when the series is observed, else 0) the
    one-step hindcast MASE of both models (:func:`carpmodel.diagnostics.hindcast`, peels
    warm-started from the full fits, the cold fit as the fallback).

    ``testable`` is ``EnvSeries.observed``: only a measured series can test an effect. For the
    bundled ASSUMED linear series ``statement`` is :data:`NOT_TESTABLE_ASSUMED`; the fits are
    still reported but measure only how a straight line in time lines up with the record.
    ``progress(done, total)`` is called before the first fit and after each (the models, then
    the hindcast peels).
    """
    from carpmodel.diagnostics import DATA_COMPONENTS, compare_fits, hindcast

    clock = time.perf_counter()
    config = default_config() if config is None else config
    targets = tuple(targets)
    if not targets or any(t not in SLOPE_FIELDS for t in targets) or len(set(targets)) != len(targets):
        raise ConfigError(f"targets: expected distinct names among {', '.join(SLOPE_FIELDS)}, "
                          f"got {targets!r}")
    spec0 = build_spec(data, config)
    lake, values = _covariate_series(data, spec0.years, covariate)
    reference = float(np.mean(values))
    spec1 = with_slopes(spec0, values, reference, targets, slope_prior_sd)
    testable = bool(lake.observed)
    levels = sorted(set(data.temperature.confidence))
    if testable:
        statement = (f"testable: {lake.name} is observed (confidence measured, source {lake.source_id}); "
                     f"the comparison below tests the effect on these data")
    elif _is_linear(lake):
        statement = NOT_TESTABLE_ASSUMED
    else:
        statement = (f"not testable: the temperature series is not observed (confidence "
                     f"{', '.join(levels)}), so it is not data an effect can be tested on")
    peels = (5 if testable else 0) if hindcast_peels is None else int(hindcast_peels)
    steps = [0, int(baseline is None) + 1 + 2 * max(peels, 0)]

    def step() -> None:
        if progress is not None:
            progress(steps[0], steps[1])
        steps[0] += 1

    step()
    if baseline is None:
        baseline = refit(spec0, n_starts=config.fit.n_starts, seed=config.seed, label="no-effect model")
        step()
    effect = None if baseline is None else refit(
        spec1, source=baseline, n_starts=config.fit.n_starts, seed=config.seed, cold_first=False,
        try_both=cold_start, label="effect model")
    step()
    if baseline is None or effect is None:
        raise FitError("temperature_effect_test: the fit failed from every start")
    comparison = compare_fits({"no_effect": baseline, "effect": effect})
    table = comparison.table
    k = {name: int(table["n_parameters"].sel(variant=name)) for name in ("no_effect", "effect")}
    n = int(table["n_observations"].sel(variant="effect"))
    penalised = DATA_COMPONENTS + ("recruitment_deviations",)
    aicc_penalised = {name: aicc_value(_data_nll(r, penalised), k[name], n)
                      for name, r in (("no_effect", baseline), ("effect", effect))}
    slope_prior = slope_prior_nll(spec1, effect.theta)
    lr = 2.0 * (baseline.nll - (effect.nll - slope_prior))
    slopes = {}
    n_free = len(spec1.estimated)
    for target in targets:
        i = [f.field for f in spec1.estimated].index(SLOPE_FIELDS[target])
        se = float(effect.std_errors[i])
        slopes[target] = {"estimate_per_c": float(effect.theta[i]), "std_error_per_c": se,
                          "std_error_data_only_per_c": data_only_se(safe_hessian(spec1, effect.theta), i,
                                                                   slope_prior_sd)}
    models = {}
    for name, r in (("no_effect", baseline), ("effect", effect)):
        models[name] = {"nll_total": float(r.nll), "nll_data": _data_nll(r, DATA_COMPONENTS),
                        "nll_recruitment_deviations":
                            float(r.nll_components.get("recruitment_deviations", 0.0)),
                        "k": k[name], "n": n, "aicc": float(table["aicc"].sel(variant=name)),
                        "aicc_penalised": aicc_penalised[name], "converged": bool(r.converged),
                        "max_abs_gradient": float(r.max_abs_gradient)}
    hindcasts: dict[str, Any] = {"n_peels": peels}
    if peels > 0:
        for name, full, add in (("no_effect", baseline, False), ("effect", effect, True)):
            fits = {}
            terminal = int(config.fit.last_data_year or config.model.last_year)
            for j in range(1, peels + 1):
                year = terminal - j
                peel_spec = build_spec(data, config.with_fit(last_data_year=year))
                if add:
                    peel_spec = with_slopes(peel_spec, values, reference, targets, slope_prior_sd)
                fits[year] = refit(peel_spec, source=full, n_starts=config.fit.n_starts, seed=config.seed,
                                   cold_first=False, label=f"{name} peel {j} (last data year {year})")
                step()
            h = hindcast(data, config, peels, fits=fits)
            hindcasts[name] = {"mase_persistence": h.mase_persistence, "mase_drift": h.mase_drift,
                               "mase_persistence_adjusted": h.mase_persistence_adjusted,
                               "n_predictions": h.n_predictions}
    else:
        hindcasts["note"] = "not run (hindcast_peels = 0)"
    small_sample = aicc_value(0, k["effect"], n) - aicc_value(0, k["no_effect"], n)
    return {
        "testable": testable,
        "statement": statement,
        "covariate": covariate,
        "lag_years": 0,
        "reference_c": reference,
        "series": {"name": lake.name, "observed": lake.observed, "source_id": lake.source_id,
                   "confidence": levels, "linear_trend": _is_linear(lake),
                   "years": [lake.first_year, lake.last_year], "note": lake.note},
        "targets": list(targets),
        "slope_prior": (f"Normal(0, {slope_prior_sd:g}) per degC" if slope_prior_sd is not None else "flat"),
        "slopes": slopes,
        "models": models,
        "delta_aicc": models["effect"]["aicc"] - models["no_effect"]["aicc"],
        "delta_aicc_penalised": aicc_penalised["effect"] - aicc_penalised["no_effect"],
        "aicc_note": (f"AICc = 2 NLL + 2k + 2k(k+1)/(n-k-1), n = {n}: with n = {n} the small-sample "
                      f"term alone costs {small_sample:.1f} "
                      f"for one more parameter; 'aicc' uses the data components only "
                      f"(diagnostics.compare_fits), 'aicc_penalised' adds the recruitment-deviation "
                      f"penalty, which is where a recruitment covariate acts"),
        "lr_statistic": lr,
        "lr_p_value": float(stats.chi2.sf(max(lr, 0.0), len(targets))),
        "lr_note": "2 x (NLL without - NLL with), total objective, the slope prior excluded; chi2 with "
                   f"{len(targets)} df",
        "hindcast": hindcasts,
        "n_free_parameters": n_free,
        "runtime_s": time.perf_counter() - clock,
    }
