"""What the data add to each prior: posterior vs prior SD, mean and verdict per parameter."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from carpmodel import __version__
from carpmodel.inference.posterior import PosteriorSample
from carpmodel.inference.spec import INITIAL_DEV_FIELD, Free

#: posterior SD / prior SD below this: the data inform the parameter
INFORMED_RATIO = 0.5
#: posterior SD / prior SD at or above this: the data are silent (posterior ≈ prior)
SILENT_RATIO = 0.9


# --------------------------------------------------------------------------- prior vs posterior


def effective_prior(free: Free) -> tuple[Any, str]:
    """The prior a free parameter is sampled under, and where it comes from.

    Returns ``(prior, source)``: the spec's prior (``"stated"``); for ``r0`` the B0 prior of the
    spec, which is on unfished biomass, not R0 (``None``, ``"prior on B0, not on r0"``); for a
    logit parameter without a prior the uniform on its bounds that the Jacobian-adjusted target
    implies (``"implied uniform on the logit bounds"``); otherwise ``None`` (``"none (flat,
    improper)"``).
    """
    from carpmodel.priors import Prior

    if free.field == "r0":
        return None, "prior is on B0 (spec.b0_prior), not on r0"
    if free.prior is not None:
        return free.prior, "stated"
    if free.transform == "logit" and free.bounds is not None:
        lo, hi = free.bounds
        return Prior("uniform", {"lower": lo, "upper": hi}), "implied uniform on the logit bounds"
    return None, "none (flat, improper)"


def prior_posterior_table(result: Any, sample: PosteriorSample) -> list[dict[str, Any]]:
    """Prior and posterior of every estimated free parameter (recruitment deviations and the
    depleted start's age deviations excluded: both are penalised by σ_R, not given a prior).

    One dict per parameter: ``parameter``, ``prior`` (text), ``prior_source``, ``prior_mean``,
    ``prior_sd``, ``map_estimate``, ``posterior_mean``, ``posterior_sd``, ``posterior_median``,
    ``lower_95``, ``upper_95`` (2.5 and 97.5 % quantiles of the sample), ``sd_ratio`` (posterior
    SD / prior SD), ``mean_shift_prior_sd`` ((posterior mean − prior mean) / prior SD),
    ``informed_by_data`` (``sd_ratio < 0.5``) and ``verdict``: "informed by data" (ratio < 0.5),
    "weakly informed" (0.5 ≤ ratio < 0.9) or "data silent: posterior ≈ prior" (ratio ≥ 0.9).
    Parameters without a proper prior get NaN ratios and a verdict saying so. With
    ``sample.jacobian`` False the posterior is not prior × likelihood on the natural scale and
    the verdict says so.
    """
    spec = result.spec
    rows = []
    for i, free in enumerate(spec.estimated):
        if INITIAL_DEV_FIELD.match(free.field):
            continue
        values = sample.natural[free.field]
        prior, source = effective_prior(free)
        p_mean = prior.mean() if prior is not None else np.nan
        p_sd = prior.sd() if prior is not None else np.nan
        post_sd = float(np.std(values, ddof=1))
        post_mean = float(np.mean(values))
        ratio = post_sd / p_sd if prior is not None else np.nan
        shift = (post_mean - p_mean) / p_sd if prior is not None else np.nan
        if prior is None:
            verdict = "no proper prior: ratio undefined (" + source + ")"
        elif ratio < INFORMED_RATIO:
            verdict = "informed by data"
        elif ratio < SILENT_RATIO:
            verdict = "weakly informed"
        else:
            verdict = "data silent: posterior ≈ prior"
        if not sample.jacobian:
            verdict += "; sampled without the Jacobian, so this is not prior × likelihood"
        lo, med, hi = np.quantile(values, [0.025, 0.5, 0.975])
        rows.append({
            "parameter": free.field, "prior": _prior_text(prior), "prior_source": source,
            "prior_mean": p_mean, "prior_sd": p_sd,
            "map_estimate": float(free.from_theta(result.theta[i])),
            "posterior_mean": post_mean, "posterior_sd": post_sd, "posterior_median": float(med),
            "lower_95": float(lo), "upper_95": float(hi), "sd_ratio": float(ratio),
            "mean_shift_prior_sd": float(shift),
            "informed_by_data": bool(prior is not None and ratio < INFORMED_RATIO),
            "verdict": verdict})
    return rows


def prior_posterior_dataset(result: Any, sample: PosteriorSample) -> xr.Dataset:
    """:func:`prior_posterior_table` as a Dataset with dimension ``parameter``."""
    rows = prior_posterior_table(result, sample)
    names = [r["parameter"] for r in rows]
    ds = xr.Dataset(coords={"parameter": names})
    meta = {
        "prior_mean": "prior mean (natural scale)", "prior_sd": "prior SD (natural scale)",
        "map_estimate": "fit estimate (MAP on the estimation scale)",
        "posterior_mean": "posterior mean (SIR sample)", "posterior_sd": "posterior SD (SIR sample)",
        "posterior_median": "posterior median", "lower_95": "2.5 % posterior quantile",
        "upper_95": "97.5 % posterior quantile", "sd_ratio": "posterior SD / prior SD",
        "mean_shift_prior_sd": "(posterior mean - prior mean) / prior SD",
        "informed_by_data": f"posterior SD / prior SD < {INFORMED_RATIO}",
        "prior": "prior distribution", "prior_source": "where the prior comes from",
        "verdict": f"informed (< {INFORMED_RATIO}), weakly informed, or silent (>= {SILENT_RATIO})"}
    for key, long_name in meta.items():
        ds[key] = ("parameter", [r[key] for r in rows])
        ds[key].attrs.update(long_name=long_name, units="1" if key in (
            "sd_ratio", "mean_shift_prior_sd", "informed_by_data", "prior", "prior_source",
            "verdict") else "natural units of the parameter")
    ds.attrs.update(carpmodel_version=__version__, informed_ratio=INFORMED_RATIO,
                    silent_ratio=SILENT_RATIO, ess=sample.ess, n_samples=sample.n_samples,
                    seed=sample.seed, jacobian=int(sample.jacobian))
    return ds


def _prior_text(prior: Any) -> str:
    if prior is None:
        return "none"
    args = ", ".join(f"{k}={v:g}" for k, v in prior.parameters.items())
    return f"{prior.distribution}({args})"


def format_prior_posterior(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`prior_posterior_table` rows."""
    head = (f"{'parameter':<22} {'prior':<34} {'prior mean':>11} {'prior sd':>10} {'post mean':>11} "
            f"{'post sd':>10} {'95 % interval':>23} {'ratio':>6}  verdict")
    lines = [head]
    for r in rows:
        interval = f"{_g(r['lower_95'])} – {_g(r['upper_95'])}"
        lines.append(f"{r['parameter']:<22} {r['prior']:<34} {_g(r['prior_mean']):>11} "
                     f"{_g(r['prior_sd']):>10} {_g(r['posterior_mean']):>11} {_g(r['posterior_sd']):>10} "
                     f"{interval:>23} {r['sd_ratio']:>6.2f}  {r['verdict']}")
    return "\n".join(lines)


def _g(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.4g}"
