"""Origin-sample design on the fitted model: how many fish, from which gear, for how many years.

Issue #14 item 5, answered analytically from a fit (no refits; seconds). Every release is taken
to carry a mark coded by release year and age at release (``YYYY-aN``, the mark codes of
origin_samples.csv) and ``n`` fish a year are examined from one gear (:data:`GEARS`: its size
selectivity, :func:`~carpmodel.inference.observations.gear_selectivity`) in the last ``k`` model
years of the fit (k = 10: 2015–2024 on the bundled data): "had every release since 2002 been
marked and sampled in those years". A future design needs a projection at the releases of that
time; the recorded years are used instead because they need none. Fish are read with the
method's detection and false-positive rates; clustered sampling counts ``n/deff`` fish
(the beta-binomial's design effect). Three questions:

(i) **Tell a 1 % from a 10 % hatchery share** (share of the survey biomass, the headline
    contribution). The gear sees the share at its own odds: ``odds_gear = λ·odds_gear,fit`` when
    the stock's hatchery odds are ``λ·odds_stock,fit`` (the fit's hatchery fish are scaled, their
    ages and sizes kept). Exact one-sided binomial test of the low share at ``α`` on the pooled
    readings of ``n·k/deff`` fish, its power at the high share (:func:`binomial_power`). Pooling
    years with different shares as one binomial at their mean is conservative (a sum of
    binomials varies less than a binomial at the mean).
(ii) **Release survival to a 20 % CV.** Expected Fisher information of the marked readings
    (multinomial per year over the marks and "no mark"; derivatives of the reading
    probabilities w.r.t. θ by central differences, one batched engine run), added to the fit's
    own information (its Hessian: biomass record and priors). CV = SD/estimate of acute release
    survival (delta method from its logit), with everything the fit estimates estimated
    (``held_known = none``), with M_ref known (its row and column removed: conditioning on
    it), and with M_ref and the survey's catchability q known. The samples measure the hatchery
    *share*; release survival is hatchery fish over fish released, so it needs the absolute
    abundance, which the survey gives only up to q (its prior, sd_log 0.5): q, not M, sets the
    floor. ``release_survival_cv_floor``: the CV at :data:`FLOOR_FISH` fish a year, more than
    the lake holds: the CV falls monotonically with fish (added information is positive
    semi-definite), so no feasible design beats it; ``..._unmarked_floor`` the same for
    unmarked samples (any hatchery fish counted, one row a year).
(iii) **Tell c = 0 from c = 1** (Lorenzen's exponent). Among the marked fish of a year, the
    share of each mark (release cohort × age) is set by the mortality since release and the
    gear's selectivity; release survival cancels (one survival for all marks). The alternative
    is the fit at c = 1; the null is c = 0 at the M_ref that makes its composition closest to
    the alternative's over the sampled years (least favourable: a grid of :data:`N_M_GRID`
    values of M_ref, the other parameters at the fit). Power of the likelihood-ratio test
    (χ², 1 df, ``α``) from its non-centrality ``2·Σ_y E[marked fish]_y·KL(q1_y ‖ q0_y)``.
    The biomass record's own, weak information on c is left out (conservative).

:func:`origin_design` returns the Dataset, :func:`smallest_designs` the smallest design meeting
each target (or "not reached in the grid"), :func:`origin_design_record` the JSON record; the
figure is :func:`carpmodel.report.study_figures.plot_origin_design`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats

from carpmodel.errors import FitError
from carpmodel.inference.likelihood import predict
from carpmodel.inference.observations import OriginSamples
from carpmodel.io.origin_file import GEARS
from carpmodel.studies.monitoring import DEFAULT_DESIGN_EFFECT, DEFAULT_MISCLASSIFICATION
from carpmodel.studies.origin_recovery import OriginDesign, design_table

__all__ = ["CV_QUESTIONS", "FLOOR_FISH", "N_M_GRID", "OriginDesignGrid", "binomial_power", "lr_power",
           "marked_information", "noncentrality_for_power", "origin_design", "origin_design_record",
           "release_survival_cv", "smallest_designs"]

#: fish a year at which the CV of release survival is reported as its floor: more than the lake
#: holds (~5e8 fish at 127,500 t and ~250 g), so no feasible design beats it (the CV falls
#: monotonically with fish: (H + nI)⁻¹ decreases with n in the Loewner order)
FLOOR_FISH = 1_000_000_000
#: values of M_ref searched for the least favourable c = 0 alternative (log-spaced, ×1/8..×8 the fit's)
N_M_GRID = 121
#: step of the central differences on the estimation scale (logit/log parameters: ~1e-4 relative)
_STEP = 1e-4


@dataclass(frozen=True)
class OriginDesignGrid:
    """The designs and targets: fish examined a year × last years sampled × gear; the reading
    method (detection and false-positive rates) and the design effect of clustered sampling;
    the two hatchery shares of question (i), the test level, and the targets."""

    fish_per_year: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 5000)
    years_sampled: tuple[int, ...] = (1, 3, 5, 10)
    gears: tuple[str, ...] = GEARS
    detection_rate: float = 1.0 - DEFAULT_MISCLASSIFICATION[0]
    false_positive_rate: float = DEFAULT_MISCLASSIFICATION[1]
    design_effect: float = DEFAULT_DESIGN_EFFECT
    low_share: float = 0.01
    high_share: float = 0.10
    alpha: float = 0.05
    target_power: float = 0.8
    target_cv: float = 0.2

    def __post_init__(self) -> None:
        if any(g not in GEARS for g in self.gears):
            raise ValueError(f"gears: expected some of {', '.join(GEARS)}, got {self.gears!r}")
        if not (self.fish_per_year and min(self.fish_per_year) >= 1):
            raise ValueError(f"fish_per_year: expected integers >= 1, got {self.fish_per_year!r}")
        if not (self.years_sampled and min(self.years_sampled) >= 1):
            raise ValueError(f"years_sampled: expected integers >= 1, got {self.years_sampled!r}")
        if not 0 <= self.false_positive_rate < self.detection_rate <= 1:
            raise ValueError("expected 0 <= false_positive_rate < detection_rate <= 1, got "
                             f"{self.false_positive_rate}, {self.detection_rate}")
        if self.design_effect < 1:
            raise ValueError(f"design_effect: expected >= 1, got {self.design_effect}")
        if not 0 < self.low_share < self.high_share < 1:
            raise ValueError(f"expected 0 < low_share < high_share < 1, got {self.low_share}, "
                             f"{self.high_share}")


# ----------------------------------------------------------------------------- the tests' power


def binomial_power(n_fish: Any, p_low: float, p_high: float, alpha: float = 0.05) -> NDArray:
    """Power of the exact one-sided binomial test of ``p_low`` against ``p_high > p_low``.

    ``n_fish`` fish (array; rounded down), each read as hatchery with probability ``p``; reject
    ``p = p_low`` when the count ``X ≥ x_c``, the smallest ``x_c`` with ``P(X ≥ x_c | p_low) ≤ α``;
    the power is ``P(X ≥ x_c | p_high)``. Not monotone in ``n`` (the test is discrete).
    """
    n = np.floor(np.asarray(n_fish, float)).astype(int)
    critical = stats.binom.isf(alpha, n, p_low) + 1          # smallest x with P(X >= x) <= alpha
    return np.asarray(stats.binom.sf(critical - 1, n, p_high), float)


def lr_power(noncentrality: Any, alpha: float = 0.05, df: int = 1) -> NDArray:
    """Power of a likelihood-ratio test (χ² with ``df``) at level ``alpha`` against an
    alternative of expected non-centrality ``noncentrality`` (non-central χ² approximation)."""
    lam = np.asarray(noncentrality, float)
    return np.asarray(stats.ncx2.sf(stats.chi2.isf(alpha, df), df, np.maximum(lam, 1e-300)), float)


def noncentrality_for_power(power: float, alpha: float = 0.05, df: int = 1) -> float:
    """The non-centrality at which the χ² likelihood-ratio test reaches ``power`` (7.85 for 0.8,
    0.05, 1 df)."""
    from scipy.optimize import brentq

    return float(brentq(lambda lam: float(lr_power(lam, alpha, df)) - power, 1e-9, 1e4))


def release_survival_cv(hessian: NDArray, info_per_fish: NDArray, n_fish: Any, index: int,
                        survival: float, bounds: tuple[float, float], *,
                        known: tuple[int, ...] = ()) -> NDArray:
    """CV of release survival with ``n_fish`` (array, effective fish a year) added to a fit.

    Posterior information ``H + n·I`` (``hessian`` of the negative log posterior and
    ``info_per_fish``, both on θ); ``known``: θ indices held known (rows and columns removed).
    SD of θ_index, times ``ds/dθ = (s − lo)(hi − s)/(hi − lo)`` (logit between ``bounds``),
    over ``s``. Returns the shape of ``n_fish``.
    """
    keep = np.setdiff1d(np.arange(hessian.shape[0]), np.asarray(known, int))
    j = int(np.flatnonzero(keep == index)[0])
    h = hessian[np.ix_(keep, keep)]
    info = info_per_fish[np.ix_(keep, keep)]
    n = np.asarray(n_fish, float)
    variance = np.array([np.linalg.solve(h + k * info, np.eye(keep.size)[j])[j] for k in n.ravel()])
    lo, hi = bounds
    slope = (survival - lo) * (hi - survival) / (hi - lo)
    return (np.sqrt(variance) * slope / survival).reshape(n.shape)


# ----------------------------------------------------------------------------- the model's side


def _samples(result: Any, data: Any, gear: str, years: tuple[int, ...], grid: OriginDesignGrid,
             marked: bool) -> OriginSamples:
    design = OriginDesign(years=years, fish_per_year=1, gear=gear, detection_rate=grid.detection_rate,
                          false_positive_rate=grid.false_positive_rate, marked=marked)
    table = design_table(design, data)
    samples = OriginSamples.from_data(replace(data, origin_samples=table), years[0], years[-1],
                                      int(result.spec.base.max_age_yr))
    assert samples is not None
    return samples


def _index(spec: Any, field: str) -> int | None:
    names = [f.field for f in spec.estimated]
    return names.index(field) if field in names else None


def _with_c(spec: Any, theta: NDArray, c: float) -> tuple[Any, NDArray]:
    """The spec and θ (any batch) with Lorenzen's c set (through its Free when estimated)."""
    i = _index(spec, "lorenzen_c")
    if i is None:
        return replace(spec, base=spec.base.replace(lorenzen_c=float(c))), theta
    theta = np.array(theta, float)
    theta[..., i] = spec.estimated[i].to_theta(c)
    return spec, theta


def _multinomial_information(p: NDArray, jac: NDArray, years: NDArray) -> dict[int, NDArray]:
    """Fisher information per fish examined, by year: cells are the marks of the year (reading
    probabilities ``p (m,)``, derivatives ``jac (m, n_θ)``) and "no mark" (the rest)."""
    out = {}
    for year in np.unique(years):
        rows = years == year
        pj, dj = np.clip(p[rows], 1e-300, None), jac[rows]
        rest, drest = max(1.0 - pj.sum(), 1e-300), -dj.sum(axis=0)
        out[int(year)] = (dj.T / pj) @ dj + np.outer(drest, drest) / rest
    return out


def _composition_noncentrality(p1: NDArray, p0: NDArray, years: NDArray) -> dict[int, NDArray]:
    """Per fish examined and year: ``2·(Σ_j p1_j)·KL(q1 ‖ q0)`` between the compositions of the
    marked readings (``p0 (..., m)``: any leading batch of nulls)."""
    out = {}
    for year in np.unique(years):
        rows = years == year
        a, b = p1[rows], p0[..., rows]
        q1 = a / a.sum()
        q0 = np.clip(b / b.sum(axis=-1, keepdims=True), 1e-300, None)
        kl = np.sum(np.where(q1 > 0, q1 * np.log(np.clip(q1, 1e-300, None) / q0), 0.0), axis=-1)
        out[int(year)] = 2.0 * a.sum() * kl
    return out


def _differences(samples: OriginSamples, spec: Any, state: Any, u: Any,
                 n_theta: int) -> tuple[NDArray, NDArray]:
    """Reading probabilities at θ̂ ``(m,)`` and their central-difference Jacobian ``(m, n_θ)``
    from a batch ``[θ̂, θ̂ + h·e_i, θ̂ − h·e_i]``."""
    p = samples.predict(spec, state, u)["p_read_hatchery"]
    return p[0], ((p[1:1 + n_theta] - p[1 + n_theta:]) / (2 * _STEP)).T


def marked_information(result: Any, data: Any, gear: str, years: tuple[int, ...],
                       grid: OriginDesignGrid = OriginDesignGrid()) -> NDArray:
    """Expected Fisher information on θ ``(n_θ, n_θ)`` of one fish examined a year from ``gear``
    in each of ``years`` (marked releases; divided by the design effect): what
    :func:`origin_design` adds to the fit's Hessian, times the fish a year."""
    theta = np.asarray(result.theta, float)
    samples = _samples(result, data, gear, tuple(years), grid, True)
    spec = replace(result.spec, samples=result.spec.samples + (samples,))
    steps = np.eye(theta.size) * _STEP
    state, u = predict(spec, np.concatenate([theta[None], theta + steps, theta - steps]))
    p, jac = _differences(samples, spec, state, u, theta.size)
    return sum(_multinomial_information(p, jac, samples.year).values()) / grid.design_effect


def origin_design(result: Any, data: Any, grid: OriginDesignGrid = OriginDesignGrid()) -> xr.Dataset:
    """The three questions on ``result`` (a :class:`~carpmodel.inference.fitting.FitResult`
    estimating release survival) and ``data`` (its data: the release record the marks code).

    Dims ``gear``, ``years_sampled`` (the last k model years), ``fish_per_year`` and, for the
    CV, ``m_ref`` (known, estimated). Variables: ``power_share`` (i), ``release_survival_cv``,
    ``release_survival_cv_floor`` and ``release_survival_cv_fit`` (ii), ``power_lorenzen`` and
    ``m_ref_c0_per_yr`` (iii), and the fit's sampled shares by gear and year.
    """
    start = time.perf_counter()
    spec = result.spec
    i_s = _index(spec, "release_survival")
    if i_s is None:
        raise FitError("release_survival is not estimated in this fit; the origin design needs it free")
    if not np.all(np.isfinite(result.hessian)):
        raise FitError("the fit has no finite Hessian (not positive definite): the origin design adds "
                       "information to the fit's own and needs it")
    i_m = _index(spec, "m_ref_per_yr")
    model_years = np.asarray(spec.years)
    if max(grid.years_sampled) > model_years.size:
        raise ValueError(f"years_sampled: expected at most {model_years.size} (the fit's years), "
                         f"got {max(grid.years_sampled)}")
    years = tuple(int(y) for y in model_years[model_years.size - max(grid.years_sampled):])
    theta = np.asarray(result.theta, float)
    n_theta = theta.size
    marked = {g: _samples(result, data, g, years, grid, True) for g in grid.gears}
    plain = {g: _samples(result, data, g, years, grid, False) for g in grid.gears}
    with_samples = replace(spec, samples=spec.samples + tuple(marked.values()) + tuple(plain.values()))

    # one batched run: θ̂ and its central differences
    steps = np.eye(n_theta) * _STEP
    batch = np.concatenate([theta[None], theta + steps, theta - steps])
    state, u = predict(with_samples, batch)
    p_fit, jac, share_fit = {}, {}, {}
    for g in grid.gears:
        p_fit[g], jac[g] = _differences(marked[g], with_samples, state, u, n_theta)
        share_fit[g] = plain[g].predict(with_samples, state, u)["hatchery_share"][0]
    stock = np.asarray(state.hatchery_fraction_biomass)[0, np.searchsorted(model_years, years)]

    # (iii) alternative c = 1 at the fit, nulls c = 0 over a grid of M_ref
    spec1, theta1 = _with_c(with_samples, theta, 1.0)
    state1, u1 = predict(spec1, theta1)
    m_fit = float(np.ravel(u.params.m_ref_per_yr)[0])
    m_grid = m_fit * np.exp(np.linspace(np.log(1 / 8), np.log(8), N_M_GRID))
    spec0, theta0 = _with_c(with_samples, np.repeat(theta[None], N_M_GRID, axis=0), 0.0)
    if i_m is not None:
        theta0[:, i_m] = spec.estimated[i_m].to_theta(m_grid)
    else:
        spec0 = replace(spec0, base=spec0.base.replace(m_ref_per_yr=m_grid))
    state0, u0 = predict(spec0, theta0)

    shape = (len(grid.gears), len(grid.years_sampled), len(grid.fish_per_year))
    power_share = np.full(shape, np.nan)
    power_c = np.full(shape, np.nan)
    m_c0 = np.full(shape[:2], np.nan)
    cv = np.full(shape + (3,), np.nan)
    cv_floor = np.full(shape[:2] + (3,), np.nan)
    cv_unmarked_floor = np.full(shape[:2] + (3,), np.nan)
    fish_for_power = np.full(shape[:2], np.nan)
    marked_per_fish = np.full(shape[:2], np.nan)
    free = spec.estimated[i_s]
    survival = float(free.from_theta(theta[i_s]))
    bounds = free.bounds if free.bounds is not None else (0.0, 1.0)
    hessian = 0.5 * (np.asarray(result.hessian, float) + np.asarray(result.hessian, float).T)
    i_q = _index(spec, "survey_q")
    m_known = () if i_m is None else (i_m,)
    known = {"none": (), "m_ref": m_known, "m_ref_and_survey_q": m_known + (() if i_q is None else (i_q,))}
    fish = np.asarray(grid.fish_per_year, float)
    cv_fit = {k: float(release_survival_cv(hessian, np.zeros_like(hessian), 0.0, i_s, survival, bounds,
                                           known=v)) for k, v in known.items()}
    d, f = grid.detection_rate, grid.false_positive_rate
    for a, g in enumerate(grid.gears):
        samples = marked[g]
        info = _multinomial_information(p_fit[g], jac[g], samples.year)
        p1 = marked[g].predict(spec1, state1, u1)["p_read_hatchery"]
        p0 = marked[g].predict(spec0, state0, u0)["p_read_hatchery"]
        lam = _composition_noncentrality(np.asarray(p1)[0] if np.ndim(p1) > 1 else p1, p0, samples.year)
        plain_info = _multinomial_information(*_differences(plain[g], with_samples, state, u, n_theta),
                                              plain[g].year)
        odds_ratio = (share_fit[g] / (1 - share_fit[g])) / (stock / (1 - stock))
        for b, k in enumerate(grid.years_sampled):
            sampled = years[len(years) - k:]
            n_eff = fish * k / grid.design_effect

            def read(h: float, sampled: tuple[int, ...] = sampled, odds_ratio: NDArray = odds_ratio) -> float:
                ratio = odds_ratio[[years.index(y) for y in sampled]]
                odds = h / (1 - h) * ratio
                pi = odds / (1 + odds)
                return float(np.mean(pi * d + (1 - pi) * f))

            power_share[a, b] = binomial_power(n_eff, read(grid.low_share), read(grid.high_share), grid.alpha)
            total = sum(lam[y] for y in sampled)                       # (N_M_GRID,) per fish a year
            best = int(np.argmin(total))
            m_c0[a, b] = m_grid[best]
            power_c[a, b] = lr_power(total[best] * fish / grid.design_effect, grid.alpha)
            fish_for_power[a, b] = noncentrality_for_power(grid.target_power, grid.alpha) \
                * grid.design_effect / max(float(total[best]), 1e-300)
            info_k = sum(info[y] for y in sampled) / grid.design_effect
            plain_k = sum(plain_info[y] for y in sampled) / grid.design_effect
            marked_per_fish[a, b] = float(np.mean([p_fit[g][samples.year == y].sum() for y in sampled]))
            for c, v in enumerate(known.values()):
                cv[a, b, :, c] = release_survival_cv(hessian, info_k, fish, i_s, survival, bounds, known=v)
                cv_floor[a, b, c] = float(release_survival_cv(hessian, info_k, FLOOR_FISH, i_s, survival,
                                                              bounds, known=v))
                cv_unmarked_floor[a, b, c] = float(release_survival_cv(hessian, plain_k, FLOOR_FISH, i_s,
                                                                       survival, bounds, known=v))
    dims = ("gear", "years_sampled", "fish_per_year")
    ds = xr.Dataset(
        {"power_share": (dims, power_share, {
            "units": "1", "long_name": f"power of the exact one-sided binomial test (alpha {grid.alpha:g}) "
                                       f"to tell a {grid.low_share:.0%} from a {grid.high_share:.0%} "
                                       "hatchery share of the survey biomass"}),
         "release_survival_cv": (dims + ("held_known",), cv, {
             "units": "1", "long_name": "expected CV of acute release survival with the marked samples "
                                        "added to the fit's information"}),
         "release_survival_cv_floor": (dims[:2] + ("held_known",), cv_floor, {
             "units": "1", "long_name": f"CV of release survival at {FLOOR_FISH:.0e} fish a year (more "
                                        "than the lake holds: the floor no design beats), marked samples"}),
         "release_survival_cv_unmarked_floor": (dims[:2] + ("held_known",), cv_unmarked_floor, {
             "units": "1", "long_name": f"CV of release survival at {FLOOR_FISH:.0e} fish a year from "
                                        "unmarked origin samples (any hatchery fish counted)"}),
         "release_survival_cv_fit": (("held_known",), [cv_fit[k] for k in known], {
             "units": "1",
             "long_name": "CV of release survival from the fit alone (biomass record, priors)"}),
         "power_lorenzen": (dims, power_c, {
             "units": "1", "long_name": f"power of the likelihood-ratio test (alpha {grid.alpha:g}, 1 df) "
                                        "to tell c = 0 from c = 1 from the marks' composition"}),
         "fish_per_year_for_power_lorenzen": (dims[:2], fish_for_power, {
             "units": "fish/yr",
             "long_name": f"fish a year for power {grid.target_power:g} to tell c = 0 from c = 1 (the "
                          "non-centrality grows linearly with fish)"}),
         "m_ref_c0_per_yr": (dims[:2], m_c0, {
             "units": "1/yr", "long_name": "M_ref of the least favourable c = 0 null"}),
         "marked_share_read": (dims[:2], marked_per_fish, {
             "units": "1", "long_name": "mean share of examined fish read as marked at the fit"}),
         "hatchery_share_gear": (("gear", "sample_year"), np.array([share_fit[g] for g in grid.gears]), {
             "units": "1", "long_name": "hatchery share of the gear's catch at the fit (end of year)"}),
         "hatchery_share_stock": (("sample_year",), stock, {
             "units": "1", "long_name": "hatchery share of the survey biomass at the fit"})},
        coords={"gear": list(grid.gears), "years_sampled": list(grid.years_sampled),
                "fish_per_year": list(grid.fish_per_year), "held_known": list(known),
                "sample_year": list(years)})
    ds["gear"].attrs.update(long_name="gear the fish are examined from (its size selectivity)")
    ds["years_sampled"].attrs.update(units="yr", long_name="last model years of the fit sampled")
    ds["fish_per_year"].attrs.update(units="fish/yr", long_name="fish examined for marks per year")
    ds["held_known"].attrs.update(long_name="parameters held known in the CV (the rest estimated): none, "
                                            "M_ref, or M_ref and the survey's catchability q")
    ds["sample_year"].attrs.update(units="yr", long_name="model year")
    ds.attrs.update(
        title="Origin-sample design: marked releases at the recorded numbers (issue #14 item 5)",
        release_survival_fit=survival, m_ref_fit_per_yr=m_fit, lorenzen_c_fit=float(spec.base.lorenzen_c),
        marks="every release coded by release year and age at release (YYYY-aN)",
        sample_years="the last k model years of the fit (recorded releases; no projection)",
        detection_rate=d, false_positive_rate=f, design_effect=grid.design_effect,
        low_share=grid.low_share, high_share=grid.high_share, alpha=grid.alpha,
        target_power=grid.target_power, target_cv=grid.target_cv,
        method_share="exact one-sided binomial test on n*k/deff pooled fish at the mean reading "
                     "probability of the sampled years; gear share from the stock share by the fit's "
                     "gear/stock odds ratio",
        method_cv="expected Fisher information of the multinomial mark readings (central differences, "
                  f"step {_STEP:g} on theta) plus the fit's Hessian; delta method from logit s",
        method_lorenzen="LR test, non-central chi-square (1 df) from 2*E[marked]*KL of the marks' "
                        "composition, c = 1 at the fit vs c = 0 at the least favourable M_ref",
        runtime_s=round(time.perf_counter() - start, 2))
    return ds


# ----------------------------------------------------------------------------- answers


def _smallest(values: xr.DataArray, ok: xr.DataArray) -> dict[str, Any] | None:
    """The design with the fewest fish in all (then fewest years) where ``ok``; None if none."""
    best = None
    for k in values["years_sampled"].values:
        for n in values["fish_per_year"].values:
            if bool(ok.sel(years_sampled=k, fish_per_year=n)):
                key = (int(n) * int(k), int(k))
                if best is None or key < best[0]:
                    best = (key, int(n), int(k), float(values.sel(years_sampled=k, fish_per_year=n)))
    if best is None:
        return None
    return {"fish_per_year": best[1], "years_sampled": best[2], "total_fish": best[0][0], "value": best[3]}


#: the CV questions: name -> parameters held known (``held_known`` coordinate)
CV_QUESTIONS = {"release_survival_cv_m_estimated": "none", "release_survival_cv_m_known": "m_ref",
                "release_survival_cv_m_and_q_known": "m_ref_and_survey_q"}


def smallest_designs(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per question and gear, the design with the fewest fish in all (then the fewest years)
    meeting the target (power ≥ ``target_power``, CV ≤ ``target_cv``), or the words "not
    reached in the grid"."""
    power, cv_target = float(ds.attrs["target_power"]), float(ds.attrs["target_cv"])
    questions = {"share_1_vs_10_percent": (ds["power_share"], ds["power_share"] >= power)}
    for name, held in CV_QUESTIONS.items():
        cv = ds["release_survival_cv"].sel(held_known=held)
        questions[name] = (cv, cv <= cv_target)
    questions["lorenzen_c0_vs_c1"] = (ds["power_lorenzen"], ds["power_lorenzen"] >= power)
    out: dict[str, dict[str, Any]] = {}
    for name, (values, ok) in questions.items():
        out[name] = {}
        for g in ds["gear"].values:
            found = _smallest(values.sel(gear=g), ok.sel(gear=g))
            out[name][str(g)] = found if found is not None else "not reached in the grid"
    return out


def origin_design_record(ds: xr.Dataset) -> dict[str, Any]:
    """The JSON record: smallest designs, the CV floors (marked and unmarked samples) and the
    fit's own CV, the fish a year for 80 % power on c, the settings and method."""
    def by_gear_years(name: str, **sel: Any) -> dict[str, dict[str, float]]:
        da = ds[name].sel(sel)
        return {str(g): {str(k): round(float(da.sel(gear=g, years_sampled=k)), 4)
                         for k in ds["years_sampled"].values} for g in ds["gear"].values}

    held = [str(h) for h in ds["held_known"].values]
    return {
        "smallest_designs": smallest_designs(ds),
        "release_survival_cv_fit": {h: round(float(ds["release_survival_cv_fit"].sel(held_known=h)), 4)
                                    for h in held},
        "release_survival_cv_floor": {h: by_gear_years("release_survival_cv_floor", held_known=h)
                                      for h in held},
        "release_survival_cv_unmarked_floor": {h: by_gear_years("release_survival_cv_unmarked_floor",
                                                                held_known=h) for h in held},
        "fish_per_year_for_power_lorenzen": {
            g: {k: round(v) for k, v in row.items()}
            for g, row in by_gear_years("fish_per_year_for_power_lorenzen").items()},
        "settings": {k: v for k, v in ds.attrs.items()},
    }
