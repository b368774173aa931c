"""Strategy comparison metrics from a projection Dataset (the decision table, metrics.csv).

Input: the projection Dataset with dims ``(strategy, scenario, draw, year)`` and variables
``biomass_t, ssb_t, catch_t, released_fish, hatchery_fraction_ssb, cost, window_survivors``
plus ``ssb0_t`` (static unfished SSB; any dims among scenario/draw), ``dynamic_ssb0_t``
(SSB projected without fishing and without releases under the same temperature path and
recruitment deviations; dims among scenario/draw/year) and ``biomass_2002_t`` (the fitted
2002 biomass; scalar or per draw). Optional: ``release_survival`` (acute post-release survival
per draw) adds :data:`added_window_survivors_per_surviving_release`.

Every metric is computed per ``(strategy, scenario)`` over the ``draw`` dimension, vectorised
with xarray; quantiles use numpy's default linear interpolation (``xarray.quantile``). Draws
share their random numbers across strategies (common random numbers), so gains over the
reference are **paired by draw**: ``gain[d] = B[s, d] − B[reference, d]``, then quantiles.

Weighted draws (``weights``, e.g. the members of a structural ensemble pooled by their weights,
:func:`carpmodel.management.ensemble.ensemble_metrics`): probabilities become weighted means and quantiles
the frequency-weighted quantiles of :func:`weighted_quantile` (a draw of weight w counts as
w / w_min draws), which equal the unweighted ones when every weight is the same (then the
unweighted code runs, so the results are identical).

Metrics (names as in the returned Dataset; ``_lower``/``_upper`` bound the central
``interval``, 90 % by default):

* ``biomass_{median,lower,upper}_t`` (metric_year): survey-age biomass in each metric year.
* ``biomass_gain_{median,lower,upper}_t`` (metric_year): gain over the reference, paired by draw.
* ``p_beats_status_quo`` (metric_year): P(B[s, d] > B[status quo, d]), the probability, paired
  by draw, that the strategy ends the metric year with more survey-age biomass than the status
  quo (``status_quo``, default ``"status_quo"``); NaN for the status quo itself and for every
  strategy when the projection has no status quo (attribute ``status_quo_strategy`` says so).
  :func:`carpmodel.management.ensemble.ensemble_metrics` adds ``robust_across_structures``.
* ``p_ssb_below_limit_static_{any,last}``: P(SSB < limit_fraction × SSB0) in any year after
  ``after_year`` / in the last year; SSB0 the static unfished SSB of the draw.
* ``p_ssb_below_limit_dynamic_{any,last}``: the same against the dynamic SSB0 (no fishing,
  no releases, same environment and recruitment deviations), which moves with the climate.
* ``p_biomass_below_2002_{any,last}``: P(biomass < the fitted 2002 biomass, the collapse level).
* ``P_mc_se`` for every probability ``P`` above: its Monte Carlo standard error,
  ``√(p(1 − p)/n)`` over the ``n`` draws (weighted draws: Kish's effective number
  ``(Σw)²/Σw²``, which assumes independent draws), and ``effective_draws``, that ``n``. Draws
  that share their random numbers (``draw_clusters``: the members of a pooled ensemble share
  each draw index's deviates, so their outcomes move together) count once per cluster: the
  error is that of a mean over independent clusters (:func:`clustered_mc_se`) and ``n`` the
  number of clusters. It says how far another seed could move the estimate (two strategies whose
  ``p_beats_status_quo`` differ by less than ~2 standard errors are not told apart by the
  draws), not how uncertain the stock is. It is 0 at p = 0 or 1: the probability is then below
  (above) about 3/n (95 %, the rule of three).
  A draw whose biomass or SSB (or the limit it is compared with) is NaN is left out of a
  probability, with a warning, rather than counted as the event not happening (the projection's
  own draws are finite: draws the model cannot run are moved back into it): a quantity's "any
  year" and "last year" probabilities are both over the draws defined in every year after
  ``after_year`` (complete cases), and its Monte Carlo error over those draws.
* ``hatchery_fraction_ssb_median`` (metric_year) and ``hatchery_fraction_ssb_last_median``.
* ``released_fish_total_median``, ``cost_total_median``: sums over all projection years.
* ``released_fish_through_cost_year_median``, ``cost_through_cost_year_median``: the same up to
  and including ``cost_year`` (the same years for fish and cost, as the report shows them).
* ``biomass_gain_per_million_cost_t``: median biomass gain in ``cost_year`` per million cost units
  spent up to it (``gain / (cost_through / 1e6)``; NaN where nothing was spent). Costs are in the
  projection's ``cost`` units (the strategies file's ``currency``), which every cost metric carries.
* ``cost_per_t_gained``: median cost of the releases up to and including ``cost_year``
  divided by the median biomass gain in ``cost_year`` (2050). Costs after ``cost_year`` cannot
  have produced that year's gain, so they are left out. NaN when the median gain is <= 0 (no
  gain to buy: the reference itself, or strategies that do not beat it) — a NaN here means
  "no tonnes gained", not a missing value.
* ``added_window_survivors_per_million_released_{median,lower,upper}``: replacement vs
  addition. ``(Σ_years window_survivors − the reference's, same draw) / (Σ_years released / 1e6)``:
  extra fish (both origins) getting through the juvenile density-dependence window per million
  fish released. If releases only added, it would equal ``1e6 × release_survival ×`` the
  released fish's own survival to the end of the window; near 0 (or below) the releases
  replace wild fish that density dependence would otherwise have let through. It counts the
  offspring of hatchery spawners too (they are wild recruits). Fish released *older* than the
  window never pass through it, so for them this ratio understates what they add: judge those
  by the biomass gain. NaN where nothing was released.
* ``added_window_survivors_per_surviving_release_median`` (only with ``release_survival``): the
  same per fish that survived the release (divide by ``1e6 × release_survival`` per draw).
* ``total_catch_{median,lower,upper}_t``: catch summed over the projection (0 under the closure).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from carpmodel.errors import ConfigError
from carpmodel.inference.samplers import kish_ess
from carpmodel.management.strategies import REFERENCE_STRATEGY

#: the strategy ``p_beats_status_quo`` compares with
STATUS_QUO_STRATEGY = "status_quo"

__all__ = ["REQUIRED_VARIABLES", "STATUS_QUO_STRATEGY", "metrics_table", "strategy_metrics", "weighted_mean",
           "weighted_quantile"]

#: Variables of the projection Dataset that :func:`strategy_metrics` reads.
REQUIRED_VARIABLES = ("biomass_t", "ssb_t", "catch_t", "released_fish", "hatchery_fraction_ssb", "cost",
                      "window_survivors", "ssb0_t", "dynamic_ssb0_t", "biomass_2002_t")
_BATCH = ("strategy", "scenario", "draw", "year")

_ATTRS: dict[str, tuple[str, str]] = {
    "biomass_median_t": ("t", "median survey-age biomass"),
    "biomass_lower_t": ("t", "lower bound of the central interval of survey-age biomass"),
    "biomass_upper_t": ("t", "upper bound of the central interval of survey-age biomass"),
    "biomass_gain_median_t": ("t", "median biomass gain over the reference strategy, paired by draw"),
    "biomass_gain_lower_t": ("t", "lower bound of the biomass gain over the reference, paired by draw"),
    "biomass_gain_upper_t": ("t", "upper bound of the biomass gain over the reference, paired by draw"),
    "p_beats_status_quo": ("1", "P(biomass > the status quo's biomass in the same draw) in the metric year"),
    "p_ssb_below_limit_static_any": ("1", "P(SSB < limit fraction x static SSB0 in any year after "
                                          "after_year)"),
    "p_ssb_below_limit_static_last": ("1", "P(SSB < limit fraction x static SSB0 in the last year)"),
    "p_ssb_below_limit_dynamic_any": ("1", "P(SSB < limit fraction x dynamic SSB0 in any year after "
                                           "after_year)"),
    "p_ssb_below_limit_dynamic_last": ("1", "P(SSB < limit fraction x dynamic SSB0 in the last year)"),
    "p_biomass_below_2002_any": ("1", "P(biomass < fitted 2002 biomass in any year after after_year)"),
    "p_biomass_below_2002_last": ("1", "P(biomass < fitted 2002 biomass in the last year)"),
    "hatchery_fraction_ssb_median": ("1", "median hatchery-origin fraction of SSB"),
    "hatchery_fraction_ssb_last_median": ("1", "median hatchery-origin fraction of SSB in the last year"),
    "released_fish_total_median": ("fish", "median total fish released over the projection"),
    "released_fish_through_cost_year_median": ("fish", "median fish released up to and including cost_year"),
    "biomass_gain_per_million_cost_t": ("t per 1e6 cost units", "median biomass gain in cost_year per "
                                        "million cost units spent up to it (NaN: nothing spent)"),
    "cost_total_median": ("cost units", "median total release cost over the projection"),
    "cost_through_cost_year_median": ("cost units", "median release cost up to and including cost_year"),
    "cost_per_t_gained": ("cost units/t", "median cost through cost_year / median biomass gain in "
                                          "cost_year (NaN: no gain)"),
    "added_window_survivors_per_million_released_median": (
        "fish per 1e6 fish", "median added fish past the density-dependence window per million released; "
                             "understates releases at or above the window's last age (they never pass "
                             "through it): not comparable across release ages, judge those by the "
                             "biomass gain"),
    "added_window_survivors_per_million_released_lower": (
        "fish per 1e6 fish", "lower bound of added window survivors per million released"),
    "added_window_survivors_per_million_released_upper": (
        "fish per 1e6 fish", "upper bound of added window survivors per million released"),
    "added_window_survivors_per_surviving_release_median": (
        "1", "median added window survivors per released fish that survived the release"),
    "total_catch_median_t": ("t", "median total catch over the projection"),
    "total_catch_lower_t": ("t", "lower bound of total catch over the projection"),
    "total_catch_upper_t": ("t", "upper bound of total catch over the projection"),
    "effective_draws": ("draws", "number of draws the probabilities are over (Kish's effective number "
                                 "(sum w)^2 / sum w^2 for weighted draws; the number of clusters for draws "
                                 "that share their random numbers; fewer for a probability that leaves out "
                                 "NaN draws)"),
}
_ATTRS.update({f"{name}_mc_se": ("1", f"Monte Carlo standard error of {name}: "
                                      "sqrt(p (1 - p) / n) over the n draws it keeps (clustered_mc_se for "
                                      "draws that share their random numbers)")
               for name in list(_ATTRS) if name.startswith("p_")})


def _check(ds: xr.Dataset, reference: str, years: Sequence[int], limit_fraction: float, interval: float,
           after_year: int, cost_year: int) -> None:
    missing = [name for name in REQUIRED_VARIABLES if name not in ds]
    if missing:
        raise ConfigError(f"projection dataset: missing variable(s) {', '.join(missing)}; strategy_metrics "
                          f"needs {', '.join(REQUIRED_VARIABLES)}")
    for name in REQUIRED_VARIABLES[:7]:
        if set(ds[name].dims) != set(_BATCH):
            raise ConfigError(f"projection dataset, variable {name}: expected dims {_BATCH}, "
                              f"got {ds[name].dims}")
    for name, allowed in (("ssb0_t", {"scenario", "draw"}), ("dynamic_ssb0_t", {"scenario", "draw", "year"}),
                          ("biomass_2002_t", {"scenario", "draw"})):
        if not set(ds[name].dims) <= allowed:
            raise ConfigError(f"projection dataset, variable {name}: expected dims among {sorted(allowed)}, "
                              f"got {ds[name].dims}")
    strategies = [str(s) for s in ds["strategy"].values]
    if reference not in strategies:
        raise ConfigError(f"reference: expected one of the strategies {strategies}, got {reference!r}")
    available = set(int(y) for y in ds["year"].values)
    absent = [y for y in (*years, cost_year) if int(y) not in available]
    if absent:
        raise ConfigError(f"years: expected metric years within the projection "
                          f"({min(available)}..{max(available)}), got {absent}")
    if not 0 < limit_fraction < 1:
        raise ConfigError(f"limit_fraction: expected a fraction in (0, 1), got {limit_fraction!r}")
    if not 0 < interval < 1:
        raise ConfigError(f"interval: expected a probability in (0, 1), got {interval!r}")
    if not any(int(y) > after_year for y in available):
        raise ConfigError(f"after_year: expected a year before the last projection year {max(available)}, "
                          f"got {after_year}")


def weighted_quantile(values: Any, weights: Any, q: Any) -> np.ndarray:
    """Quantiles ``q`` over the last axis of ``values`` with sample ``weights`` (same last axis).

    Frequency weights: a value of weight ``w`` counts as ``w / w_min`` values (``w_min`` the
    smallest positive weight of the row), and the quantile is numpy's default "linear" one
    (Hyndman & Fan type 7) of that sample — exactly ``np.quantile(np.repeat(values, counts), q)``
    when the counts are integers, and ``np.quantile(values, q)`` when every weight is the same.
    With the sorted values ``x_k``, counts ``c_k`` and ``S_k = c_1 + … + c_k``, the quantile at
    position ``h = (S_n − 1)·q`` is ``x_k`` for ``S_{k−1} <= h <= S_k − 1`` and linear from
    ``x_k`` to ``x_{k+1}`` for ``S_k − 1 < h < S_k``. NaN values and zero weights are skipped; a
    row with none left gives NaN. Returns shape ``values.shape[:-1] + (len(q),)``.
    """
    values = np.asarray(values, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), values.shape)
    probabilities = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ConfigError("weights: expected finite non-negative weights")
    rows_v = values.reshape(-1, values.shape[-1])
    rows_w = weights.reshape(-1, values.shape[-1])
    out = np.full((rows_v.shape[0], probabilities.size), np.nan)
    for i, (v, w) in enumerate(zip(rows_v, rows_w, strict=True)):
        keep = ~np.isnan(v) & (w > 0)
        if not keep.any():
            continue
        order = np.argsort(v[keep], kind="stable")
        x, counts = v[keep][order], w[keep][order]
        counts = counts / counts.min()
        upper = np.cumsum(counts)                       # S_k
        lower = upper - counts                          # S_{k-1}
        knots = np.column_stack([lower, upper - 1.0]).ravel()   # x_k held on [S_{k-1}, S_k - 1]
        out[i] = np.interp((upper[-1] - 1.0) * probabilities, knots, np.repeat(x, 2))
    return out.reshape(values.shape[:-1] + (probabilities.size,))


def weighted_mean(values: Any, weights: Any) -> np.ndarray:
    """Weighted mean over the last axis, skipping NaN values (NaN when nothing is left)."""
    values = np.asarray(values, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), values.shape)
    w = np.where(np.isnan(values), 0.0, weights)
    total = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(np.where(w > 0, values, 0.0) * w, axis=-1) / total, np.nan)


def _equal(weights: xr.DataArray | None) -> bool:
    return weights is None or bool(np.all(weights.values == weights.values.flat[0]))


def _over_draws(function: Any, x: xr.DataArray, weights: xr.DataArray, *args: Any,
                out_dim: str | None = None) -> xr.DataArray:
    core = [[out_dim]] if out_dim else [[]]
    return xr.apply_ufunc(function, x.astype(float), weights, *args, input_core_dims=[["draw"], ["draw"]],
                          output_core_dims=core)


def _quantiles(x: xr.DataArray, interval: float,
               weights: xr.DataArray | None = None) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """(median, lower, upper) over draws; NaN draws are skipped."""
    lower, upper = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    if not _equal(weights):
        q = _over_draws(lambda v, w: weighted_quantile(v, w, [0.5, lower, upper]), x, weights,
                        out_dim="quantile")
        return tuple(q.isel(quantile=i) for i in range(3))  # type: ignore[return-value]
    with warnings.catch_warnings():  # all-NaN cells (e.g. per-release ratios of the reference) stay NaN
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        q = x.quantile([0.5, lower, upper], dim="draw", skipna=True)
    return tuple(q.isel(quantile=i, drop=True) for i in range(3))  # type: ignore[return-value]


def _mean(x: xr.DataArray, weights: xr.DataArray | None) -> xr.DataArray:
    """Mean over draws, skipping NaN (NaN where none is left)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return x.mean("draw") if _equal(weights) else _over_draws(weighted_mean, x, weights)


def _event(event: xr.DataArray, defined: xr.DataArray) -> xr.DataArray:
    """``event`` per draw as 1.0 or 0.0, NaN where it is not ``defined`` (its inputs NaN): a draw
    with a NaN biomass or SSB is left out of a probability, not counted as the event not
    happening."""
    return event.astype(float).where(defined)


def _complete(defined: xr.DataArray, later: xr.DataArray) -> xr.DataArray:
    """The draws defined in every ``later`` year: the "any year" and "last year" probabilities of a
    quantity are both over them (complete cases: without bias when draws are NaN at random, and
    P(any) >= P(last) always; a draw NaN because its stock collapsed is a different matter, which
    the warning flags)."""
    return defined.where(later, True).all("year")


def _warn_undefined_draws(undefined: list[xr.DataArray]) -> None:
    """Warn when probabilities leave out draws (``undefined``: per probability, True where a
    draw's inputs are NaN), naming how many and the strategy and scenario with the most."""
    left_out = None
    for mask in undefined:
        mask = mask.any([d for d in mask.dims if d not in ("strategy", "scenario", "draw")])
        left_out = mask if left_out is None else (left_out | mask)
    counts = left_out.sum("draw").transpose("strategy", "scenario")
    if int(counts.max()) == 0:
        return
    worst = np.unravel_index(int(np.argmax(counts.values)), counts.shape)
    cell = ", ".join(f"{dim}={counts[dim].values[i]}" for dim, i in zip(counts.dims, worst, strict=True))
    warnings.warn(f"{int(counts.sum())} strategy-scenario draws have NaN biomass, SSB or reference values "
                  f"(at most {int(counts.max())} of {left_out.sizes['draw']} draws, at {cell}): they are "
                  "left out of the probabilities", RuntimeWarning, stacklevel=3)


def _median(x: xr.DataArray, weights: xr.DataArray | None) -> xr.DataArray:
    if _equal(weights):
        return x.median("draw")
    return _over_draws(lambda v, w: weighted_quantile(v, w, [0.5])[..., 0], x, weights)


def strategy_metrics(ds: xr.Dataset, *, reference: str = REFERENCE_STRATEGY,
                     years: Sequence[int] = (2035, 2050, 2100), limit_fraction: float = 0.2,
                     interval: float = 0.9, after_year: int = 2024, cost_year: int = 2050,
                     weights: xr.DataArray | None = None,
                     status_quo: str = STATUS_QUO_STRATEGY,
                     draw_clusters: xr.DataArray | None = None) -> xr.Dataset:
    """Decision-table metrics per strategy and scenario (see the module docstring for each).

    Parameters
    ----------
    ds : xarray.Dataset
        Projection with dims ``(strategy, scenario, draw, year)`` and :data:`REQUIRED_VARIABLES`.
    reference : str
        Strategy the gains are measured against (paired by draw).
    years : sequence of int
        Metric years (coordinate ``metric_year``); each must be a projection year.
    limit_fraction : float
        Limit reference point as a fraction of SSB0 (static and dynamic).
    interval : float
        Central probability of the ``_lower``/``_upper`` bounds (0.9: 5 % and 95 % quantiles).
    after_year : int
        "Any year" probabilities look at years after this one (2024: the projection years).
    cost_year : int
        Year of the gain that ``cost_per_t_gained`` divides by (costs up to it).
    weights : xarray.DataArray over ``draw``, optional
        Sample weights (any positive scale): weighted means and quantiles (module docstring).
    status_quo : str
        Strategy ``p_beats_status_quo`` compares with (NaN throughout when absent).
    draw_clusters : xarray.DataArray over ``draw``, optional
        Draws with the same value share their random numbers (the members of a pooled ensemble
        share each draw index's deviates): a probability's Monte Carlo error is then that of a
        mean over independent clusters (:func:`clustered_mc_se`), and ``effective_draws`` the
        number of clusters.

    Returns
    -------
    xarray.Dataset with dims ``(strategy, scenario[, metric_year])``; every variable has
    ``units`` and ``long_name``; attrs record the settings and the input's provenance attrs.

    Raises
    ------
    ConfigError
        Missing variable or wrong dims, unknown reference, a metric year or ``cost_year`` outside
        the projection, a fraction outside (0, 1).
    """
    years = [int(y) for y in years]
    _check(ds, reference, years, limit_fraction, interval, after_year, cost_year)
    if weights is not None:
        if tuple(weights.dims) != ("draw",) or weights.sizes["draw"] != ds.sizes["draw"]:
            raise ConfigError(f"weights: expected a DataArray over the {ds.sizes['draw']} draws, "
                              f"got dims {weights.dims} and shape {weights.shape}")
        weights = weights.astype(float).assign_coords(draw=ds["draw"].values)
        if float(weights.sum()) <= 0 or bool((weights < 0).any()):
            raise ConfigError("weights: expected non-negative weights with a positive sum")
    w = weights
    out: dict[str, xr.DataArray] = {}
    by_metric_year = {"year": years}

    biomass = ds["biomass_t"]
    out["biomass_median_t"], out["biomass_lower_t"], out["biomass_upper_t"] = _quantiles(
        biomass.sel(by_metric_year), interval, w)
    gain = biomass - biomass.sel(strategy=reference, drop=True)
    out["biomass_gain_median_t"], out["biomass_gain_lower_t"], out["biomass_gain_upper_t"] = _quantiles(
        gain.sel(by_metric_year), interval, w)

    strategies = [str(x) for x in ds["strategy"].values]
    events: dict[str, xr.DataArray] = {}   # each probability's event per draw (NaN: undefined)
    undefined: list[xr.DataArray] = []       # the draws each probability leaves out

    def probability(name: str, happened: xr.DataArray, defined: xr.DataArray,
                    keep: xr.DataArray | bool = True) -> None:
        """P(``happened``) over the draws where it is ``defined``; NaN where not ``keep``."""
        events[name] = _event(happened, defined).where(keep)
        out[name] = _mean(events[name], w)
        undefined.append(~defined & keep)

    if status_quo in strategies:
        at_years = biomass.sel(by_metric_year)
        versus = at_years.sel(strategy=status_quo, drop=True)
        probability("p_beats_status_quo", at_years > versus, at_years.notnull() & versus.notnull(),
                    keep=at_years["strategy"] != status_quo)
    else:
        nothing = xr.zeros_like(biomass.sel(by_metric_year), dtype=bool)
        probability("p_beats_status_quo", nothing, ~nothing, keep=False)

    later = ds["year"] > after_year
    last = {"year": ds["year"].values[-1]}
    ssb = ds["ssb_t"]
    for label, limit in (("static", ds["ssb0_t"]), ("dynamic", ds["dynamic_ssb0_t"])):
        below = ssb < limit_fraction * limit
        complete = _complete(ssb.notnull() & limit.notnull(), later)
        probability(f"p_ssb_below_limit_{label}_any", below.where(later, False).any("year"), complete)
        probability(f"p_ssb_below_limit_{label}_last", below.sel(last, drop=True), complete)
    below_2002 = biomass < ds["biomass_2002_t"]
    complete = _complete(biomass.notnull() & ds["biomass_2002_t"].notnull(), later)
    probability("p_biomass_below_2002_any", below_2002.where(later, False).any("year"), complete)
    probability("p_biomass_below_2002_last", below_2002.sel(last, drop=True), complete)
    _warn_undefined_draws(undefined)

    fraction = ds["hatchery_fraction_ssb"]
    out["hatchery_fraction_ssb_median"] = _median(fraction.sel(by_metric_year), w)
    out["hatchery_fraction_ssb_last_median"] = _median(fraction.sel(last, drop=True), w)

    released_total = ds["released_fish"].sum("year")
    out["released_fish_total_median"] = _median(released_total, w)
    out["cost_total_median"] = _median(ds["cost"].sum("year"), w)
    cost_through = _median(ds["cost"].where(ds["year"] <= cost_year, 0.0).sum("year"), w)
    out["cost_through_cost_year_median"] = cost_through
    # the median gain in cost_year, a metric year or not (the same computation as the metric years')
    gain_in_cost_year = _quantiles(gain.sel(year=[cost_year]), interval, w)[0].sel(year=cost_year, drop=True)
    out["cost_per_t_gained"] = (cost_through / gain_in_cost_year.where(gain_in_cost_year > 0))
    out["released_fish_through_cost_year_median"] = _median(
        ds["released_fish"].where(ds["year"] <= cost_year, 0.0).sum("year"), w)
    out["biomass_gain_per_million_cost_t"] = gain_in_cost_year / (cost_through / 1e6).where(cost_through > 0)

    survivors_total = ds["window_survivors"].sum("year")
    added = survivors_total - survivors_total.sel(strategy=reference, drop=True)
    per_million = added / (released_total / 1e6).where(released_total > 0)
    (out["added_window_survivors_per_million_released_median"],
     out["added_window_survivors_per_million_released_lower"],
     out["added_window_survivors_per_million_released_upper"]) = _quantiles(per_million, interval, w)
    if "release_survival" in ds:
        per_surviving = added / (released_total * ds["release_survival"]).where(released_total > 0)
        out["added_window_survivors_per_surviving_release_median"] = _quantiles(per_surviving, interval, w)[0]

    out["total_catch_median_t"], out["total_catch_lower_t"], out["total_catch_upper_t"] = _quantiles(
        ds["catch_t"].sum("year"), interval, w)

    if draw_clusters is None:
        n_effective = _effective_draws(ds.sizes["draw"], w)
        errors = {name: _independent_mc_se(event, out[name], w) for name, event in events.items()}
    else:
        clusters = _check_clusters(draw_clusters, ds)
        n_effective = float(np.unique(clusters.values).size)
        weights_or_equal = w if w is not None else xr.ones_like(clusters, dtype=float)
        errors = {name: clustered_mc_se(event, out[name], weights_or_equal, clusters)
                  for name, event in events.items()}
    out = _with_mc_errors(out, errors)
    out["effective_draws"] = xr.full_like(out["p_ssb_below_limit_static_last"], n_effective)
    result = xr.Dataset(out).rename({"year": "metric_year"})
    result = result.transpose("strategy", "scenario", ...)
    for name, (units, long_name) in _ATTRS.items():
        if name in result:
            result[name].attrs.update({"units": units, "long_name": long_name})
    result["metric_year"].attrs.update({"units": "yr", "long_name": "calendar year of the metric"})
    cost_unit = ds["cost"].attrs.get("units")
    if cost_unit:   # every cost metric in the projection's cost units (the strategies' currency)
        for name in ("cost_total_median", "cost_through_cost_year_median", "cost_per_t_gained",
                     "biomass_gain_per_million_cost_t"):
            units = result[name].attrs["units"]
            result[name].attrs["units"] = units.replace("cost units", cost_unit)
    result.attrs.update({key: value for key, value in ds.attrs.items()})
    lower, upper = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    result.attrs.update({
        "reference_strategy": reference,
        "status_quo_strategy": status_quo if status_quo in strategies
        else f"{status_quo} (not among the strategies: p_beats_status_quo is NaN)",
        "limit_fraction": limit_fraction,
        "interval": interval,
        "interval_quantiles": f"{lower:g}, {upper:g} (linear interpolation over draws)",
        "after_year": after_year,
        "cost_year": cost_year,
        "pairing": "gains and added window survivors are differences from the reference in the same draw",
        "nan_meaning": "cost_per_t_gained is NaN when the median gain in cost_year is <= 0; per-release "
                       "ratios are NaN when nothing was released",
        "draw_weights": "equal" if _equal(w) else "weighted (weighted means and weighted_quantile)",
        "mc_se": "Monte Carlo standard error of a probability: sqrt(p (1 - p) / effective_draws)"
                 + ("" if draw_clusters is None else " for independent draws; here over clusters of draws "
                    "that share their random numbers (clustered_mc_se), effective_draws the number of "
                    "clusters") + "; 0 at p = 0 or 1 (then p is within about 3 / effective_draws of it); "
                 "a probability that leaves out NaN draws has its error over the draws it keeps",
    })
    return result


def _effective_draws(n_draws: int, weights: xr.DataArray | None) -> float:
    """The number of draws (Kish's effective number ``(Σw)²/Σw²`` for weighted draws)."""
    return float(n_draws) if _equal(weights) else kish_ess(weights.values)


def _with_mc_errors(metrics: dict[str, xr.DataArray],
                    errors: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """``metrics`` with each probability (``p_*``) followed by its Monte Carlo standard error."""
    out: dict[str, xr.DataArray] = {}
    for name, value in metrics.items():
        out[name] = value
        if name in errors:
            out[f"{name}_mc_se"] = errors[name]
    return out


def _independent_mc_se(event: xr.DataArray, p: xr.DataArray, weights: xr.DataArray | None) -> xr.DataArray:
    """``√(p(1 − p)/n)`` over the draws where ``event`` is defined: ``n`` their number (equal
    weights) or Kish's effective number ``(Σw)²/Σw²`` of their weights."""
    defined = event.notnull()
    if _equal(weights):
        n = defined.sum("draw")
    else:
        w = weights.where(defined, 0.0)
        n = w.sum("draw") ** 2 / (w**2).sum("draw")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(p * (1.0 - p) / n)


def clustered_mc_se(event: xr.DataArray, p: xr.DataArray, weights: xr.DataArray,
                    clusters: xr.DataArray) -> xr.DataArray:
    """Monte Carlo standard error of the weighted probability ``p`` of ``event`` (1, 0 or NaN per
    draw) when the draws of a cluster share their random numbers and clusters are independent:
    ``√(Σ_k (Σ_{d∈k} w_d (e_d − p))²) / Σ_d w_d`` over the draws where the event is defined (the
    linearised variance of a ratio estimator with clusters). With one draw per cluster and equal
    weights it is ``√(p(1 − p)/n)``; members that share a draw's deviates and move together make
    it up to √(members) times the error of as many independent draws."""
    defined = event.notnull()
    w = weights.where(defined, 0.0)
    residual = (w * (event - p)).fillna(0.0)
    per_cluster = residual.groupby(clusters.rename("cluster")).sum("draw")
    return np.sqrt((per_cluster**2).sum("cluster")) / w.sum("draw")


def _check_clusters(clusters: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    if tuple(clusters.dims) != ("draw",) or clusters.sizes["draw"] != ds.sizes["draw"]:
        raise ConfigError(f"draw_clusters: expected a DataArray over the {ds.sizes['draw']} draws, "
                          f"got dims {clusters.dims} and shape {clusters.shape}")
    return clusters.assign_coords(draw=ds["draw"].values)


def metrics_table(ds: xr.Dataset, **kwargs: Any) -> list[dict[str, Any]]:
    """One row per strategy × scenario (× structure) for metrics.csv.

    ``ds`` is the result of :func:`strategy_metrics` (or of
    :func:`carpmodel.management.ensemble.ensemble_metrics`, with a ``structure`` dimension: one row per
    member and one for the pooled ensemble), or a projection Dataset (it has a ``draw``
    dimension), in which case :func:`strategy_metrics` is applied with ``kwargs``. Each row
    holds ``strategy``, ``scenario`` (then ``structure`` where there is one, and
    ``description`` when the Dataset has a ``description`` coordinate along ``strategy``), then
    every metric in Dataset order; a metric by year becomes one column per year, ``NAME_YEAR``
    (e.g. ``biomass_median_t_2050``). Values are Python floats (NaN kept), booleans for
    boolean metrics (``robust_across_structures``). Without a ``structure`` dimension the
    structure was not varied, so ``robust_across_structures_YEAR`` is None (an empty cell: not
    assessed; ``carpmodel project --ensemble`` assesses it).
    """
    if "draw" in ds.dims:
        ds = strategy_metrics(ds, **kwargs)
    elif kwargs:
        raise ConfigError(f"metrics_table: options {sorted(kwargs)} apply only to a projection Dataset")
    descriptions = ds["description"] if "description" in ds.coords else None
    structures = [str(s) for s in ds["structure"].values] if "structure" in ds.dims else [None]
    rows = []
    for strategy in ds["strategy"].values:
        for scenario in ds["scenario"].values:
            for structure in structures:
                row: dict[str, Any] = {"strategy": str(strategy), "scenario": str(scenario)}
                cell = ds.sel(strategy=strategy, scenario=scenario)
                if structure is not None:
                    row["structure"] = structure
                    cell = cell.sel(structure=structure)
                if descriptions is not None:
                    row["description"] = str(descriptions.sel(strategy=strategy).values)
                for name, var in cell.data_vars.items():
                    kind = bool if var.dtype == bool else float
                    values = np.asarray(var.values, dtype=kind)
                    if "metric_year" in var.dims:
                        for year, value in zip(var["metric_year"].values, values, strict=True):
                            row[f"{name}_{int(year)}"] = kind(value)
                    else:
                        row[name] = kind(values)
                if "robust_across_structures" not in cell and "metric_year" in ds.dims:
                    for year in ds["metric_year"].values:
                        row[f"robust_across_structures_{int(year)}"] = None   # one structure: not assessed
                rows.append(row)
    return rows
