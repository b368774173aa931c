"""Likelihood profiles by NLL component over one parameter, and their default grid."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats

from carpmodel.diagnostics.common import describe, json_ready
from carpmodel.errors import FitError
from carpmodel.inference.fitting import FitResult
from carpmodel.inference.refit import better, refit
from carpmodel.inference.spec import Free, ModelSpec, fix_parameter
from carpmodel.priors import Prior

#: Δ(total NLL) bounding an approximate 95 % profile interval: χ²₁(0.95)/2
PROFILE_CHI2_HALF = 0.5 * float(stats.chi2.ppf(0.95, 1))


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
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


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
    parameter :func:`~carpmodel.inference.spec.fix_parameter` can fix, e.g. ``"max_egg_survival"``.
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
    table = describe(table, {
        "nll": ("1", "negative log density by component at the profile fit"),
        "delta_nll": ("1", "nll minus its minimum over the grid, per component"),
        "converged": ("1", "profile fit converged"),
        "max_abs_gradient": ("1", "largest |gradient| of the profile fit")}, profiled_field=field)
    table["value"].attrs.update(long_name=f"value of {field} held fixed", units="natural scale")
    return ProfileResult(field=field, table=table, estimate=estimate, estimate_nll=float(start.nll),
                         minimum_value=float(grid[best]), interval_95=(lower, upper),
                         runtime_s=time.perf_counter() - clock)
