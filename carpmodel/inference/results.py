"""Turn engine output into self-describing xarray Datasets."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel.dims import YEAR, with_attrs
from carpmodel.model.state_dataset import state_to_dataset


def fit_draws(result: Any, n_draws: int, seed: int) -> np.ndarray:
    """Parameter vectors drawn from the fit's normal approximation ``N(θ̂, Σ)``, (n_draws, n).

    Falls back to the point estimate repeated when the covariance is undefined.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if result.covariance is None:
        return np.repeat(result.theta[None], n_draws, axis=0)
    return rng.multivariate_normal(result.theta, result.covariance, size=n_draws,
                                   method="eigh")


#: how the draws behind an interval were made, by :attr:`PosteriorSample.method` (None: fit_draws)
SAMPLERS: dict[str | None, str] = {
    None: "draws of theta from the normal approximation N(estimate, inverse Hessian)",
    "sir": "posterior draws of theta by sampling-importance-resampling (SIR)",
    "sir+smc": "posterior draws of theta by SIR continued by tempered SMC with Metropolis moves",
}


def interval_method(n_draws: int, sampler: str | None = None) -> str:
    """The words for how a 95 % interval was made: ``n_draws`` parameter vectors of ``sampler``
    (a :class:`~carpmodel.inference.posterior.PosteriorSample` ``method``, None for
    :func:`fit_draws`) run through the engine, 2.5 % and 97.5 % quantiles over the draws."""
    how = SAMPLERS.get(sampler, f"posterior draws of theta ({sampler})")
    return f"2.5 and 97.5 % quantiles over {n_draws} {how}, each run through the engine"


def fit_dataset(result: Any, *, n_draws: int = 500, seed: int = 20260601,
                draws: np.ndarray | None = None, sampler: str | None = None, **attrs: Any) -> xr.Dataset:
    """The fitted states with 95 % intervals, beside the observations (the fit.nc contract).

    Intervals come from ``n_draws`` parameter vectors drawn from ``N(θ̂, Σ)`` on the
    estimation scale (or from ``draws`` if given, e.g. posterior samples, made by ``sampler``:
    a :attr:`~carpmodel.inference.posterior.PosteriorSample.method`) run through the engine in
    one batch; the ``interval_method`` attribute (of the Dataset and of every ``_lower``/``_upper``
    variable) says which (:func:`interval_method`).
    """
    from carpmodel.inference.likelihood import predict, survey_prediction_t

    spec = result.spec
    state, u = predict(spec, result.theta, keep_numbers=True)
    years = spec.years
    ds = state_to_dataset(state, years, **attrs)
    ds = ds.drop_vars(["length_cm"]).assign(length_cm=ds["length_cm"])
    samples = fit_draws(result, n_draws, seed) if draws is None else np.asarray(draws)
    sample_state, su = predict(spec, samples)
    b0 = sample_state.reference.biomass0_t[:, None]
    q_samples = np.asarray(su.params.survey_q)[..., None]
    ds["survey_biomass_t"] = (YEAR, state.biomass_t * float(u.params.survey_q))
    for name, values in (("biomass_t", sample_state.biomass_t), ("ssb_t", sample_state.ssb_t),
                         ("survey_biomass_t", q_samples * sample_state.biomass_t),
                         ("recruits", sample_state.recruits), ("eggs", sample_state.eggs),
                         ("recruits_per_egg", sample_state.recruits_per_egg),
                         ("depletion", sample_state.biomass_t / b0),
                         ("hatchery_fraction_biomass", sample_state.hatchery_fraction_biomass)):
        lower, upper = np.nanquantile(values, [0.025, 0.975], axis=0)
        ds[f"{name}_lower"] = (YEAR, lower)
        ds[f"{name}_upper"] = (YEAR, upper)
    ds["depletion"] = (YEAR, state.biomass_t / state.reference.biomass0_t)
    obs = spec.observations
    full = np.full(years.size, np.nan)
    index = np.searchsorted(years, obs.year)
    ds["biomass_obs_t"] = (YEAR, _scatter(full, index, obs.biomass_t))
    ds["biomass_obs_cv"] = (YEAR, _scatter(full, index, obs.cv))
    ds["survey_predicted_t"] = (YEAR, _scatter(full, index, survey_prediction_t(spec, state, u)))
    ds["catch_obs_t"] = (YEAR, spec.drivers.catch_t)
    names = list(result.parameter_names)
    ds = ds.assign_coords(parameter=names, parameter_2=names)
    ds["theta"] = ("parameter", result.theta)
    cov = result.covariance if result.covariance is not None else np.full((len(names),) * 2, np.nan)
    ds["covariance"] = (("parameter", "parameter_2"), cov)
    ds["std_error"] = ("parameter", result.std_errors)
    for name, long_name in (("depletion", "end-of-year survey biomass / unfished (B/B0)"),
                            ("survey_biomass_t", "biomass on the survey's scale, q·B"),
                            ("survey_predicted_t", "predicted survey biomass q·B"),
                            ("theta", "estimates on the estimation scale"),
                            ("covariance", "covariance of theta (inverse Hessian)"),
                            ("std_error", "standard errors of theta")):
        ds[name].attrs.update(long_name=long_name, units="t" if name.endswith("_t") else "1")
    method = interval_method(samples.shape[0], None if draws is None else sampler or "unstated sampler")
    for name in list(ds.data_vars):
        for suffix in ("_lower", "_upper"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                ds[name].attrs.update(units=ds[base].attrs.get("units", "1"),
                                      long_name=f"{suffix[1:]} bound of the 95 % interval of {base}",
                                      interval_method=method)
    ds.attrs["interval_method"] = method
    return with_attrs(ds)


def _scatter(full: np.ndarray, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = full.copy()
    out[index] = values
    return out


#: derived quantities reported with intervals: name → (unit, description)
DERIVED = {
    "steepness": ("1", "R(0.2·E0)/R0 of the egg-to-recruit curve (derived from max_egg_survival)"),
    "compensation_ratio": ("1", "max_egg_survival × unfished eggs per recruit"),
    "eggs_per_recruit0": ("eggs", "unfished lifetime eggs per recruit"),
    "recruits_per_egg_max": ("1", "largest recruits per egg over the model years"),
    "depletion_first_year": ("1", "survey biomass at the end of the first model year / B0"),
    "depletion_last_year": ("1", "survey biomass at the end of the last model year / B0"),
    "hatchery_fraction_last_year": ("1", "hatchery-origin share of the survey biomass, last year"),
}


def derived_quantities(result: Any, thetas: np.ndarray) -> dict[str, dict[str, Any]]:
    """Point estimate (at the fit's θ̂) and median with 95 % interval over ``thetas`` of the
    :data:`DERIVED` quantities."""
    from carpmodel.inference.likelihood import predict

    def values(theta: np.ndarray) -> dict[str, np.ndarray]:
        state, _ = predict(result.spec, theta)
        ref = state.reference
        b0 = np.asarray(ref.biomass0_t)[..., None]
        depletion = state.biomass_t / b0
        return {"steepness": ref.steepness, "compensation_ratio": ref.compensation_ratio,
                "eggs_per_recruit0": ref.eggs_per_recruit0,
                "recruits_per_egg_max": np.max(state.recruits_per_egg, axis=-1),
                "depletion_first_year": depletion[..., 0], "depletion_last_year": depletion[..., -1],
                "hatchery_fraction_last_year": state.hatchery_fraction_biomass[..., -1]}

    point = values(result.theta)
    draws = values(np.atleast_2d(thetas))
    out = {}
    for name, (unit, description) in DERIVED.items():
        lo, mid, hi = np.nanquantile(np.asarray(draws[name], float), [0.025, 0.5, 0.975])
        out[name] = {"estimate": float(np.asarray(point[name]).reshape(-1)[0]), "median": float(mid),
                     "lower_95": float(lo), "upper_95": float(hi), "unit": unit, "description": description}
    return out
