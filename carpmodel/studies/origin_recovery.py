"""Can origin samples identify acute release survival? Simulate them from a known truth and refit.

A case is a truth (``release_survival``, ``lorenzen_c``) and a sampling design
(:class:`OriginDesign`: fish examined a year, years, gear, detection and false-positive rates,
unmarked or coded by release group). :func:`recovery_case` runs the engine at the truth (the
data's parameters otherwise, recruitment deviations N(0, 0.3)), draws the survey biomass
(lognormal, the fixed survey SD) and the origin counts (binomial at the gear's selectivity),
refits from the priors' centres and reports the estimate of release survival with its 90 %
interval (Wald on the logit scale) and its posterior SD over its prior SD (delta method).
Lorenzen's c is held at the truth in the refit (the structure is known; the case's c changes how
many released fish survive to be sampled).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.likelihood import predict, survey_prediction_t
from carpmodel.inference.observations import OriginSamples
from carpmodel.inference.spec import ModelSpec, Observations
from carpmodel.io.config import default_config
from carpmodel.io.origin_file import OriginSampleTable
from carpmodel.priors import Prior

__all__ = ["OriginDesign", "design_table", "recovery_case", "simulate_counts"]

#: two-sided 90 % normal quantile
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class OriginDesign:
    """Origin sampling: ``fish_per_year`` fish a year in ``years`` from ``gear`` (its selectivity),
    read with ``detection_rate``/``false_positive_rate``. ``marked``: every release carries a mark
    coded by release year and age (one row per year and mark, counts multinomial within a year);
    otherwise one row per year counting any hatchery fish (binomial)."""

    years: tuple[int, ...] = (2020, 2021, 2022, 2023, 2024)
    fish_per_year: int = 500
    gear: str = "survey_net"
    detection_rate: float = 0.98
    false_positive_rate: float = 0.0
    marked: bool = False


def design_table(design: OriginDesign, data: Any) -> OriginSampleTable:
    """The design's rows as an origin_samples table with zero counts (what the data file would
    hold); marked designs get one row per year and release still below the plus group."""
    max_age = data.life_history.integer("max_age_yr")
    rel = data.releases
    rows: list[tuple[int, str]] = []
    for year in design.years:
        if not design.marked:
            rows.append((year, ""))
            continue
        rows.extend((year, f"{int(y)}-a{int(a)}") for y, a, n in
                    zip(rel.year, rel.age_at_release_yr, rel.fish_released, strict=True)
                    if n > 0 and y <= year and a + year - y < max_age)
    m = len(rows)
    return OriginSampleTable(
        path=Path("<simulated>"), year=np.array([r[0] for r in rows], int), gear=(design.gear,) * m,
        fish_examined=np.full(m, design.fish_per_year), fish_hatchery=np.zeros(m, int),
        method=("simulated marks",) * m, detection_rate=np.full(m, design.detection_rate),
        false_positive_rate=np.full(m, design.false_positive_rate), length_min_cm=np.full(m, np.nan),
        length_max_cm=np.full(m, np.nan), release_group=tuple(r[1] for r in rows),
        design_effect=np.ones(m), source_id=("simulated",) * m, confidence=("assumed",) * m)


def simulate_counts(samples: OriginSamples, p_read: NDArray, rng: np.random.Generator) -> NDArray:
    """Hatchery readings drawn at ``p_read (m,)``: binomial per unmarked row, multinomial over the
    marks of one year (the rows of a year with a release group share the same fish)."""
    counts = np.zeros(samples.year.size, int)
    marked = samples.group_release >= 0
    for year in np.unique(samples.year):
        rows = np.flatnonzero((samples.year == year) & marked)
        if rows.size:
            p = np.clip(p_read[rows], 0.0, 1.0)
            n = int(samples.n_examined[rows[0]])
            counts[rows] = rng.multinomial(n, np.append(p, max(1.0 - p.sum(), 0.0)))[:-1]
    plain = np.flatnonzero(~marked)
    counts[plain] = rng.binomial(samples.n_examined[plain], np.clip(p_read[plain], 0.0, 1.0))
    return counts


def _truth_theta(spec: ModelSpec, release_survival: float, rng: np.random.Generator) -> np.ndarray:
    theta = spec.initial_theta()
    for i, free in enumerate(spec.estimated):
        if free.field == "release_survival":
            theta[i] = free.to_theta(release_survival)
    n_free = len(spec.estimated)
    theta[n_free:] = rng.normal(0.0, 0.3, spec.rec_dev_years.size)
    return theta


def recovery_case(data: Any, release_survival: float, lorenzen_c: float, *,
                  design: OriginDesign = OriginDesign(), seed: int = 20261214,
                  estimate: tuple[str, ...] = ("unfished_biomass_t", "max_egg_survival",
                                               "release_survival"),
                  release_survival_prior: Prior | None = None) -> dict[str, Any]:
    """Simulate one case and refit; a dict of the truth, the estimate of release survival, its
    90 % interval, its posterior/prior SD ratio, the sampled hatchery share, the fit's state and
    the estimates of the other ``estimate`` parameters (but B0).

    The model is the default configuration's (depleted 2000 start, its age deviations held at
    0) with the net sample off (the net's selectivity is known: life_history ``net_mode_cm``,
    ``net_width_cm``), the survey SD fixed, ``estimate`` free (the rest at the data's values,
    also in the truth), c = ``lorenzen_c`` in truth and refit. ``release_survival_prior``
    replaces life_history's prior of release survival (a sensitivity to the prior's weight).
    """
    if release_survival_prior is not None:
        lh = data.life_history
        entry = replace(lh["release_survival"], prior=release_survival_prior)
        data = replace(data, life_history=replace(lh, entries={**lh.entries, "release_survival": entry}))
    config = default_config().with_fit(estimate=estimate, n_starts=1, survey_sd="fixed",
                                       survey_ar1=False, net_sample=False, initial_age_deviations=0,
                                       origin_samples=True)
    spec = build_spec(replace(data, origin_samples=design_table(design, data)), config)
    spec = replace(spec, base=spec.base.replace(lorenzen_c=float(lorenzen_c)))
    rng = np.random.default_rng(seed)
    theta_true = _truth_theta(spec, release_survival, rng)
    state, u = predict(spec, theta_true)
    sigma = spec.sigma_survey * spec.observations.cv / 0.15
    observed = survey_prediction_t(spec, state, u) * np.exp(rng.normal(0.0, sigma))
    origin = spec.samples[-1]
    truth_pred = origin.predict(spec, state, u)
    counts = simulate_counts(origin, truth_pred["p_read_hatchery"], rng)
    simulated = replace(spec, observations=Observations(
        year=spec.observations.year, biomass_t=observed, cv=spec.observations.cv,
        early=spec.observations.early, ar1=False),
        samples=spec.samples[:-1] + (replace(origin, n_hatchery=counts),))
    result = fit(simulated, n_starts=1, seed=seed)
    names = [f.field for f in simulated.estimated]
    i = names.index("release_survival")
    free = simulated.estimated[i]
    theta_hat = float(result.theta[i])
    se = float(result.std_errors[i]) if result.std_errors is not None else float("nan")
    estimate_s = float(free.from_theta(theta_hat))
    lower, upper = (float(free.from_theta(theta_hat + k * Z90 * se)) for k in (-1, 1))
    lo, hi = free.bounds
    posterior_sd = se * (estimate_s - lo) * (hi - estimate_s) / (hi - lo)
    prior_sd = float(free.prior.parameters["sd"]) if free.prior is not None else float("nan")
    share = np.array([truth_pred["hatchery_share"][origin.year == y].sum() for y in design.years])
    out = {"release_survival": release_survival, "lorenzen_c": lorenzen_c,
           "hatchery_share_sampled": float(np.mean(share)), "hatchery_fish_read": int(np.sum(counts)),
           "fish_examined": int(len(design.years) * design.fish_per_year),
           "estimate": estimate_s, "lower_90": lower, "upper_90": upper,
           "inside_90": bool(lower <= release_survival <= upper),
           "posterior_prior_sd_ratio": posterior_sd / prior_sd,
           "converged": bool(result.converged), "max_abs_gradient": float(result.max_abs_gradient)}
    for j, name in enumerate(names):
        if name in estimate and name not in ("release_survival", "unfished_biomass_t"):
            out[f"{name}_estimate"] = float(simulated.estimated[j].from_theta(result.theta[j]))
    return out
