"""Monitoring design: which samples would tell how many released fish survive.

The biomass record alone does not inform acute release survival (its posterior equals its
prior). This module asks what monitoring would: it simulates data from known truths, refits,
and reports how the 95 % intervals narrow and whether they cover the truth.

Design study (:func:`monitoring_design`)
    Truth: the fitted ``theta`` with ``release_survival`` set to each true value (through the
    spec's :class:`~carpmodel.inference.likelihood.Free`, i.e. on its logit scale). The other parameters
    then no longer fit the real record as well; that is fine for a design study, which needs a
    plausible truth, not the best one. Recruitment deviations are those of the fit (the truth's).
    Data of one replicate: the biomass record on the fitted data's years and CVs,
    ``log B_obs = log(q·B_true) + σ_y·z`` (the likelihood's median-unbiased lognormal), and
    hatchery-origin samples in the last k survey years (k = 5: 2020–2024; 3: 2022–2024;
    1: 2024): ``n`` fish examined, classified hatchery with probability
    ``p = π(1 − m_hw) + (1 − π)m_wh``, beta-binomial with intra-class correlation
    ``ρ = (deff − 1)/(n − 1)`` (π the truth's hatchery share of survey-age numbers, end of year).
    The sampled years are the real survey years: the study asks "had the rescue centre examined
    n fish a year in those years, as if every release since 2002 had carried a mass mark".
    Refit: every replicate is refitted with the likelihood of :mod:`carpmodel.inference.likelihood`
    (hatchery samples beta-binomial; misclassification rates estimated with Beta priors).
    Refits start from the truth (standard in simulation studies, e.g. WHAM's ``self_test``;
    faster). Intervals: delta method from the inverse Hessian (MCMC is too slow for thousands
    of refits): release survival on its logit scale, the release contribution (hatchery share
    of survey biomass in the last year) on the log scale, and the counterfactual gain from
    releases (last-year biomass with minus without the historical releases, same recruitment
    deviations; t) on the natural scale.

How the refits are computed
    All replicates of one design are refitted together: every engine call evaluates the
    perturbed parameter vectors of all replicates at once (the engine is data-free, so one
    :func:`~carpmodel.inference.likelihood.predict` serves all data sets; each replicate's data then
    score its rows, with the same arithmetic as :func:`~carpmodel.inference.likelihood.objective`).
    The optimiser is :func:`carpmodel.inference.refit.minimise` (shared with the diagnostics' and the
    sensitivity module's refits); it works in whitened coordinates y, θ = c + T·y with
    Tᵀ·H·T = I, one unit of y being about one posterior SD in every direction: the Hessian is
    badly conditioned in θ
    (curvature ~3e5 in log initial F, whose value sets the depleted 2000 stock, against ~0.5 on
    the steepness–M–γ ridge) and no single step in θ gives an accurate finite-difference Hessian
    (at 1e-5 ours turned indefinite and the SE of the fit's own Hessian wanders by ~5 %).
    c and T start at the truth with the Hessian for noise-free data of the design; a batched
    BFGS with backtracking (each replicate its own inverse-Hessian estimate, from the identity)
    and Newton steps with each replicate's Hessian follow. A replicate whose Hessian at its end
    point is far from the identity (its stiff direction lies elsewhere, e.g. near the cliff where
    the 2000 stock could not sustain its initial F) is re-centred and re-whitened there and
    descends again; a saddle point is left along the negative curvature. In y, gradients are
    central differences (step ``refit.GRADIENT_STEP_Y``) and Hessians the second-order central
    formula (Abramowitz & Stegun 25.3.23/25.3.27: ``n² + n + 1`` points, a quarter of the points of
    :func:`carpmodel.inference.fitting.hessian`; step ``refit.HESSIAN_STEP_Y``); the covariance in θ is
    ``T·H_y⁻¹·Tᵀ``. A refit is converged by the criterion of :func:`carpmodel.inference.fitting.fit`:
    positive definite Hessian and max |gradient in θ| < ``GRADIENT_TOLERANCE``. Refits that do
    not converge count in ``converged_share`` and are left out of widths and coverages. On the
    replicates checked, these refits reach an NLL at or below :func:`~carpmodel.inference.fitting.fit`'s
    (which stops short of its tolerance on several of them) and their SEs agree with its
    Hessian's where it converges.

Randomness
    ``SeedSequence(seed)`` spawns one stream per (true survival, replicate), shared by every
    design (common random numbers); each spawns three: biomass errors, hatchery draws, juvenile
    index errors. So designs differ by design only, and the biomass record of a replicate is the
    same in every design.

What this identifies and what it does not
    Hatchery-origin samples measure the hatchery share of the fish: survivors of releases
    relative to wild fish. In this model a 1 % change in natural mortality (the Lorenzen M that
    kills small wild fish) moves that share by ~8 %, a 1 % change in release survival by ~1 %,
    and steepness, γ and initial F move it too; so the samples pin the release *contribution* (the
    hatchery share of the stock) and M, not release survival: on the bundled fit the survival
    interval narrows by ~10 % whatever the sample size, and a truth in the prior's tail (0.8) is
    never covered. Separating survival from M needs a direct measure of acute post-release
    survival (the fate of marked fish in the days after release) or of M. Neither tells addition
    from replacement (whether released fish add to the wild ones or take their place in the
    density-dependent juvenile window): that needs the wild juveniles themselves, the index of
    :func:`monitoring_options`. On the bundled fit a relative index (free catchability) of five
    years narrows the interval of γ by ~13 % on the log scale, and the question is moot there: the
    window is counted in numbers and dominated by wild age-0 fish (~5e11 in 2024 against ~6e6
    surviving released fish, a share of ~1e-5), so releases cannot displace wild fish whatever γ
    is; they add. Whether that is right is a question for the model's window, not for monitoring.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.errors import CarpmodelError, FitError
from carpmodel.inference.fitting import GRADIENT_STEP, GRADIENT_TOLERANCE
from carpmodel.inference.likelihood import (
    Free,
    HatcherySample,
    ModelSpec,
    Observations,
    _components,
    hatchery_sample_nll,
    observation_sd,
    predict,
    survey_prediction_t,
)
from carpmodel.inference.refit import (
    GRADIENT_STEP_Y,
    MAX_BATCH,
    BatchObjective,
    BatchRefit,
    Coordinates,
    central_hessian,
    minimise,
    refine_whitening,
    whitening,
)
from carpmodel.priors import Prior

__all__ = [
    "DEFAULT_DESIGN_EFFECT",
    "DEFAULT_MISCLASSIFICATION",
    "MISCLASSIFICATION_PRIORS",
    "QUANTITIES",
    "monitoring_design",
    "monitoring_options",
    "plot_coverage",
    "plot_interval_width",
    "recommend_sample_size",
    "run_monitoring",
    "sample_hatchery_counts",
    "simulate_juvenile_index",
    "simulate_monitoring_data",
    "summary_table",
    "write_monitoring",
]

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: design effect of the simulated samples: fish come from a few hauls (assumed: 2 is a common
#: value for cluster samples of fish; it halves the effective sample size)
DEFAULT_DESIGN_EFFECT = 2.0
#: true misclassification rates (hatchery read as wild, wild read as hatchery) of a mass otolith
#: mark (e.g. alizarin red S or calcein) read under fluorescence: marks are sometimes missed,
#: false marks are rare (assumed values; a validation study should measure them)
DEFAULT_MISCLASSIFICATION = (0.05, 0.0005)
#: Beta priors of the misclassification rates, centred on the true values (what a validation
#: study of known-origin fish would give); both shape parameters a > 1 so the MAP stays off 0
MISCLASSIFICATION_PRIORS = (Prior("beta", {"mean": 0.05, "sd": 0.02}),
                            Prior("beta", {"mean": 0.0005, "sd": 0.0003}))
#: SD (log scale) of the prior of the juvenile-index catchability: a relative index
JUVENILE_Q_SD_LOG = 2.0
#: summarised quantities: (name, units, long name)
QUANTITIES = {
    "release_survival": ("1", "acute post-release survival"),
    "release_contribution": ("1", "hatchery-origin share of survey biomass in the last year"),
    "release_gain_t": ("t", "last-year biomass with minus without the historical releases"),
    "dd_strength": ("1", "juvenile density dependence γ (addition vs replacement)"),
}
_MISCLASS_FIELDS = ("misclass_hatchery_as_wild", "misclass_wild_as_hatchery")
#: per-replicate results of each quantity
_PARTS = ("estimate", "lower", "upper", "scale_width")
#: the scale each quantity's interval is symmetric on
SCALES = {"release_survival": "logit", "release_contribution": "log", "release_gain_t": "natural (t)",
          "dd_strength": "log"}


# ----------------------------------------------------------------------------- truths and data


@dataclass(frozen=True)
class _Truth:
    """Engine output of S truths (one batch), what the data are simulated around."""

    theta: NDArray            # (S, n) on the fitted spec's layout
    survival: NDArray         # (S,)
    survey_t: NDArray         # (S, n_obs) q·B at the observation years
    obs_sd: NDArray           # (S, n_obs)
    share: NDArray            # (S, year) hatchery share of survey-age numbers
    wild_window: NDArray      # (S, year) wild fish leaving the density-dependence window
    contribution: NDArray     # (S,)
    gain_t: NDArray           # (S,)
    dd_strength: NDArray      # (S,)


def _survival_index(spec: ModelSpec) -> int:
    names = [f.field for f in spec.estimated]
    if "release_survival" not in names:
        raise FitError("release_survival is not estimated in this fit; the monitoring design needs it free")
    return names.index("release_survival")


def _check_spec(spec: ModelSpec) -> None:
    present = [name for name, value in (("hatchery_fractions", spec.hatchery_fractions),
                                        ("upper_bound", spec.upper_bound),
                                        ("hatchery_samples", spec.hatchery_samples),
                                        ("juvenile_index", spec.juvenile_index)) if value]
    if present:
        raise FitError(f"the monitoring design simulates only the biomass record; the fit also uses "
                       f"{', '.join(present)}: refit without them first")


def _truths(result: Any, thetas: NDArray) -> _Truth:
    spec = result.spec
    i = _survival_index(spec)
    thetas = np.atleast_2d(thetas)
    state, u = predict(spec, thetas)
    without, _ = predict(spec, thetas, release_fish=np.zeros_like(spec.drivers.release_fish))
    survey = np.asarray(survey_prediction_t(spec, state, u), float)
    sd = np.asarray(observation_sd(spec, u), float) * np.ones_like(survey)
    return _Truth(theta=thetas, survival=spec.estimated[i].from_theta(thetas[:, i]), survey_t=survey,
                  obs_sd=sd, share=state.hatchery_fraction_numbers, wild_window=state.wild_window_survivors,
                  contribution=state.hatchery_fraction_biomass[:, -1],
                  gain_t=state.biomass_t[:, -1] - without.biomass_t[:, -1],
                  dd_strength=np.broadcast_to(np.asarray(u.params.dd_strength, float),
                                              thetas.shape[:1]).copy())


def _truth_thetas(result: Any, survivals: Sequence[float]) -> NDArray:
    """The fitted theta with release survival set to each value (through its Free)."""
    i = _survival_index(result.spec)
    free = result.spec.estimated[i]
    thetas = np.repeat(np.asarray(result.theta, float)[None], len(survivals), axis=0)
    thetas[:, i] = free.to_theta(np.asarray(survivals, float))
    return thetas


def sample_hatchery_counts(p: Any, n_examined: Any, design_effect: float, rng: np.random.Generator,
                           size: Any = None) -> NDArray:
    """Fish classified hatchery among ``n_examined``: beta-binomial with mean ``n·p``.

    ``ρ = (deff − 1)/(n − 1)``; the probability of a sample is ``P ~ Beta(p(1 − ρ)/ρ, (1 − p)(1 − ρ)/ρ)``
    and the count ``Binomial(n, P)`` (the model of
    :func:`~carpmodel.inference.likelihood.hatchery_sample_nll`);
    ``deff = 1`` is the binomial. Needs ``1 ≤ deff < n`` where ``n > 1``.
    """
    p = np.asarray(p, float)
    n = np.asarray(n_examined, dtype=np.int64)
    if design_effect < 1.0:
        raise ValueError(f"design_effect: expected >= 1, got {design_effect}")
    if np.any((n > 1) & (design_effect >= n)):
        raise ValueError(f"design_effect {design_effect} needs more than {design_effect:g} fish per sample")
    shape = np.broadcast_shapes(p.shape, n.shape) if size is None else size
    rho = np.where(n > 1, (design_effect - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
    prob = np.broadcast_to(p, shape)
    if np.any(rho > 0):
        safe = np.where(rho > 0, rho, 0.5)
        a = np.clip(p * (1.0 - safe) / safe, 1e-12, None)
        b = np.clip((1.0 - p) * (1.0 - safe) / safe, 1e-12, None)
        prob = np.where(rho > 0, rng.beta(a, b, size=shape), prob)
    return rng.binomial(np.broadcast_to(n, shape), prob)


def _classified_probability(share: NDArray, misclassification: tuple[float, float]) -> NDArray:
    m_hw, m_wh = misclassification
    return share * (1.0 - m_hw) + (1.0 - share) * m_wh


def _draw_biomass(truth: _Truth, s: int, rng: np.random.Generator) -> NDArray:
    return truth.survey_t[s] * np.exp(truth.obs_sd[s] * rng.standard_normal(truth.survey_t.shape[1]))


def _draw_samples(truth: _Truth, s: int, years: NDArray, sample_years: Sequence[int], fish_per_year: int,
                  design_effect: float, misclassification: tuple[float, float],
                  rng: np.random.Generator) -> tuple[HatcherySample, ...]:
    if fish_per_year <= 0 or not len(sample_years):
        return ()
    share = truth.share[s, np.searchsorted(years, sample_years)]
    p = _classified_probability(share, misclassification)
    counts = sample_hatchery_counts(p, np.full(len(sample_years), fish_per_year), design_effect, rng)
    return tuple(HatcherySample(int(y), int(fish_per_year), int(k), float(design_effect))
                 for y, k in zip(sample_years, counts, strict=True))


def _draw_juvenile(truth: _Truth, s: int, years: NDArray, index_years: Sequence[int], cv: float, q: float,
                   rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    true = q * truth.wild_window[s, np.searchsorted(years, index_years)]
    noisy = true * np.exp(cv * rng.standard_normal(len(index_years)))
    return tuple((int(y), float(v), float(cv)) for y, v in zip(index_years, noisy, strict=True))


def _last_survey_years(spec: ModelSpec, k: int) -> NDArray:
    years = np.asarray(spec.observations.year)
    if not 0 <= k <= years.size:
        raise ValueError(f"years_of_sampling: expected 0..{years.size} (survey years), got {k}")
    return years[years.size - k:] if k else years[:0]


def simulate_monitoring_data(result: Any, truth_theta: Any, *, sample_years: Sequence[int],
                             fish_per_year: int,
                             design_effect: float = DEFAULT_DESIGN_EFFECT,
                             misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                             rng: np.random.Generator) -> tuple[Observations, tuple[HatcherySample, ...]]:
    """A simulated biomass record and hatchery-origin samples around one truth.

    ``truth_theta`` is a parameter vector of ``result.spec`` (e.g. the fit with another release
    survival). Biomass: the fitted data's years and CVs, lognormal errors around the truth's
    ``q·B`` (median-unbiased, as the likelihood). Samples: ``fish_per_year`` fish in each of
    ``sample_years`` (use the last k survey years, e.g. 2020–2024 for k = 5), counts from
    :func:`sample_hatchery_counts` around the truth's hatchery share of survey-age numbers with
    ``misclassification = (hatchery read as wild, wild read as hatchery)``.
    Draw order from ``rng``: the biomass errors, then per sample year a beta and a binomial draw.
    """
    spec = result.spec
    _check_spec(spec)
    truth = _truths(result, np.asarray(truth_theta, float)[None])
    obs = replace(spec.observations, biomass_t=_draw_biomass(truth, 0, rng))
    bad = [int(y) for y in sample_years if int(y) not in set(spec.years.tolist())]
    if bad:
        raise ValueError(f"sample_years outside the model years {spec.years[0]}-{spec.years[-1]}: {bad}")
    samples = _draw_samples(truth, 0, spec.years, [int(y) for y in sample_years], int(fish_per_year),
                            design_effect, misclassification, rng)
    return obs, samples


def simulate_juvenile_index(result: Any, truth_theta: Any, *, years: Sequence[int], cv: float = 0.3,
                            q: float | None = None,
                            rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    """A lognormal index ``q·W·exp(cv·z)`` of wild fish leaving the density-dependence window.

    ``q`` defaults to one over the truth's mean number over ``years`` (an index near 1).
    Returns ``((year, index, cv), ...)``, the form of ``ModelSpec.juvenile_index``.
    """
    spec = result.spec
    truth = _truths(result, np.asarray(truth_theta, float)[None])
    years = [int(y) for y in years]
    if q is None:
        q = 1.0 / float(np.mean(truth.wild_window[0, np.searchsorted(spec.years, years)]))
    return _draw_juvenile(truth, 0, spec.years, years, cv, q, rng)


# ----------------------------------------------------------------------------- refit problems


@dataclass(frozen=True)
class _Design:
    """One monitoring design (what is sampled); data are drawn per replicate."""

    fish_per_year: int
    years_of_sampling: int
    juvenile_cv: float | None = None
    juvenile_years_of_sampling: int = 0


@dataclass(frozen=True)
class _Problem:
    """The refit of R replicates of one design: structure and the replicates' data."""

    spec: ModelSpec                          # structure; data fields are those of replicate 0
    biomass_t: NDArray                       # (R, n_obs)
    replicate_specs: tuple[ModelSpec, ...]   # full spec of each replicate (what fit() would get)
    juvenile: NDArray | None                 # (R, n_index) index values
    juvenile_cv: NDArray | None              # (n_index,)
    juvenile_years: NDArray | None

    @property
    def has_samples(self) -> bool:
        return bool(self.spec.hatchery_samples)


def _design_spec(spec: ModelSpec, design: _Design, *, misclassification: tuple[float, float],
                 estimate_misclassification: bool, priors: tuple[Prior, Prior],
                 juvenile_q: float | None) -> tuple[ModelSpec, NDArray]:
    """The refit spec's structure (extra Frees appended) and the truth of the extra parameters."""
    free = list(spec.free)
    extra: list[float] = []
    changes: dict[str, Any] = {"hatchery_samples": (), "juvenile_index": ()}
    if design.fish_per_year > 0:
        changes["misclassification"] = tuple(float(m) for m in misclassification)
        if estimate_misclassification:
            for field_name, prior, value in zip(_MISCLASS_FIELDS, priors, misclassification, strict=True):
                free.append(Free(field_name, "logit", prior, float(value), (0.0, 1.0)))
                extra.append(float(free[-1].to_theta(value)))
    if design.juvenile_cv is not None:
        prior = Prior("lognormal", {"median": juvenile_q, "sd_log": JUVENILE_Q_SD_LOG})
        free.append(Free("juvenile_index_q", "log", prior, juvenile_q))
        extra.append(float(np.log(juvenile_q)))
    return replace(spec, free=tuple(free), **changes), np.asarray(extra)


def _extend(theta: NDArray, n_free: int, extra: NDArray) -> NDArray:
    """Insert the extra parameters between the free parameters and the recruitment deviations."""
    theta = np.atleast_2d(theta)
    extra = np.broadcast_to(extra, theta.shape[:1] + extra.shape)
    return np.concatenate([theta[:, :n_free], extra, theta[:, n_free:]], axis=1)


def _problem(structure: ModelSpec, biomass: NDArray, samples: Sequence[tuple[HatcherySample, ...]],
             juvenile: Sequence[tuple[tuple[int, float, float], ...]] | None) -> _Problem:
    specs = []
    for r in range(biomass.shape[0]):
        changes: dict[str, Any] = {"observations": replace(structure.observations, biomass_t=biomass[r]),
                                   "hatchery_samples": tuple(samples[r])}
        if juvenile is not None:
            changes["juvenile_index"] = tuple(juvenile[r])
        specs.append(replace(structure, **changes))
    index = cv = years = None
    if juvenile is not None:
        index = np.array([[row[1] for row in rows] for rows in juvenile], float)
        cv = np.array([row[2] for row in juvenile[0]], float)
        years = np.array([row[0] for row in juvenile[0]], int)
    return _Problem(spec=specs[0], biomass_t=biomass, replicate_specs=tuple(specs), juvenile=index,
                    juvenile_cv=cv, juvenile_years=years)


def _objective_rows(problem: _Problem, rows: NDArray, thetas: NDArray) -> NDArray:
    """Total NLL of replicates ``rows`` at ``thetas (k, m, n)`` → ``(k, m)``: one engine call.

    The same components as :func:`carpmodel.inference.likelihood.objective` on each replicate's spec
    (tests check equality): the biomass data enter as a ``(k, 1, n_obs)`` array that broadcasts
    against the batch; the hatchery samples are scored by
    :func:`~carpmodel.inference.likelihood.hatchery_sample_nll` per replicate on its slice of the batch.
    A parameter vector the engine rejects (e.g. steepness rounding to 1) gives ``inf`` for its
    replicate's rows, which the line searches treat as a failed step.
    """
    try:
        return _objective_batch(problem, rows, thetas)
    except CarpmodelError:
        if rows.size == 1:
            return np.full(thetas.shape[:2], np.inf)
        half = rows.size // 2
        return np.concatenate([_objective_rows(problem, rows[:half], thetas[:half]),
                               _objective_rows(problem, rows[half:], thetas[half:])])


def _objective_batch(problem: _Problem, rows: NDArray, thetas: NDArray) -> NDArray:
    spec = problem.spec
    obs = replace(spec.observations, biomass_t=problem.biomass_t[rows][:, None, :])
    base = replace(spec, observations=obs, hatchery_samples=(), juvenile_index=())
    with np.errstate(all="ignore"):
        state, u = predict(base, thetas)
        total = sum(_components(base, state, u).values())
        if problem.has_samples:
            for i, r in enumerate(rows):
                view_state = SimpleNamespace(hatchery_fraction_numbers=state.hatchery_fraction_numbers[i])
                view_u = SimpleNamespace(observation={k: np.asarray(u.observation[k])[i]
                                                      for k in _MISCLASS_FIELDS})
                total[i] = total[i] + hatchery_sample_nll(problem.replicate_specs[r], view_state, view_u)
        if problem.juvenile is not None:
            index = problem.juvenile[rows][:, None, :]
            cv = problem.juvenile_cv
            wild = state.wild_window_survivors[..., np.searchsorted(spec.years, problem.juvenile_years)]
            predicted = np.asarray(u.observation["juvenile_index_q"])[..., None] * wild
            z = (np.log(index) - np.log(np.maximum(predicted, 1e-300))) / cv
            total = total + np.sum(0.5 * np.log(2.0 * np.pi) + np.log(cv) + 0.5 * z**2, axis=-1)
    return np.where(np.isfinite(total), total, np.inf)


def _evaluate(problem: _Problem, rows: NDArray, thetas: NDArray) -> NDArray:
    """:func:`_objective_rows` at ``thetas (k, m, n)``, in chunks of at most ``MAX_BATCH``
    engine evaluations."""
    k, m, _ = thetas.shape
    chunk = max(1, MAX_BATCH // m)
    out = np.empty((k, m))
    for start in range(0, k, chunk):
        out[start:start + chunk] = _objective_rows(problem, rows[start:start + chunk],
                                                   thetas[start:start + chunk])
    return out


def _objective(problem: _Problem) -> BatchObjective:
    """The problem's NLL as the :data:`~carpmodel.inference.refit.BatchObjective` of
    :func:`carpmodel.inference.refit.minimise`."""
    return lambda rows, thetas: _objective_rows(problem, rows, thetas)


def _whitening_transform(noise_free: _Problem, theta: NDArray) -> NDArray:
    """The refits' coordinates: whiten the Hessian at the truth for noise-free data. A first
    Hessian in θ (step ``GRADIENT_STEP``; rough in the stiff direction) gives ``T₁``; the Hessian
    in ``T₁``'s coordinates (step ``HESSIAN_STEP_Y``) refines it: ``T = T₁·W``."""
    values = _objective(noise_free)
    identity = Coordinates(theta[None], np.eye(theta.size)[None])
    rough = central_hessian(values, identity, np.array([0]), np.zeros((1, theta.size)), step=GRADIENT_STEP)[0]
    return refine_whitening(values, theta, whitening(rough))


def _refit(problem: _Problem, centre: NDArray, transform: NDArray) -> BatchRefit:
    """Refit every replicate from ``centre (R, n)`` (the truth) in the coordinates of ``transform
    (n, n)``: :func:`carpmodel.inference.refit.minimise` with the Hessians in whitened coordinates (the
    module notes say why); re-whitened where a replicate's Hessian there is far from the identity.
    Convergence is judged in θ, as :func:`~carpmodel.inference.fitting.fit` does."""
    n_rep = centre.shape[0]
    transforms = np.repeat(np.asarray(transform, float)[None], n_rep, axis=0)
    coords = Coordinates(np.asarray(centre, float), transforms)
    return minimise(_objective(problem), coords)


def _intervals(problem: _Problem, refits: BatchRefit) -> dict[str, NDArray]:
    """Estimate and 95 % delta-method interval of each quantity, (R, 4) = (estimate, lower, upper,
    width on the estimation scale: logit for survival, log for contribution and γ, t for gain)."""
    spec = problem.spec
    names = [f.field for f in spec.estimated]
    theta, cov = refits.theta, refits.covariance
    rows = theta.shape[0]
    out: dict[str, NDArray] = {}
    for name in ("release_survival", "dd_strength"):
        if name not in names:
            continue
        i = names.index(name)
        free = spec.estimated[i]
        se = np.sqrt(cov[:, i, i])
        out[name] = np.stack([free.from_theta(theta[:, i]), free.from_theta(theta[:, i] - Z95 * se),
                              free.from_theta(theta[:, i] + Z95 * se), 2 * Z95 * se], axis=1)
    # release contribution (log scale) and gain (natural scale): central-difference Jacobians
    # in the whitened coordinates, with the covariance there
    n = theta.shape[1]
    step = GRADIENT_STEP_Y * 10
    offsets = np.concatenate([np.zeros((1, n)), step * np.eye(n), -step * np.eye(n)])
    points = refits.coordinates.to_theta(refits.y[:, None, :] + offsets[None], np.arange(rows))
    chunk = max(1, MAX_BATCH // points.shape[1])
    log_share = np.empty(points.shape[:2])
    gain = np.empty(points.shape[:2])
    for s in range(0, rows, chunk):
        with_releases, _ = predict(spec, points[s:s + chunk])
        without, _ = predict(spec, points[s:s + chunk], release_fish=np.zeros_like(spec.drivers.release_fish))
        log_share[s:s + chunk] = np.log(with_releases.hatchery_fraction_biomass[..., -1])
        gain[s:s + chunk] = with_releases.biomass_t[..., -1] - without.biomass_t[..., -1]
    for name, values, log_scale in (("release_contribution", log_share, True),
                                    ("release_gain_t", gain, False)):
        jac = (values[:, 1:n + 1] - values[:, n + 1:]) / (2 * step)
        sd = np.sqrt(np.maximum(np.einsum("ri,rij,rj->r", jac, refits.covariance_y, jac), 0.0))
        centre = values[:, 0]
        lower, upper = centre - Z95 * sd, centre + Z95 * sd
        if log_scale:
            centre, lower, upper = np.exp(centre), np.exp(lower), np.exp(upper)
        out[name] = np.stack([centre, lower, upper, 2 * Z95 * sd], axis=1)
    for name in out:
        out[name][~refits.converged] = np.nan
    return out


# ----------------------------------------------------------------------------- running designs


@dataclass(frozen=True)
class _Settings:
    design_effect: float
    misclassification: tuple[float, float]
    estimate_misclassification: bool
    priors: tuple[Prior, Prior]


def _streams(seed: int, n_truths: int, n_replicates: int) -> list[list[list[np.random.SeedSequence]]]:
    """streams[s][r] = [biomass, hatchery, juvenile] seed sequences (common random numbers)."""
    children = np.random.SeedSequence(seed).spawn(n_truths * n_replicates)
    return [[children[s * n_replicates + r].spawn(3) for r in range(n_replicates)] for s in range(n_truths)]


def _run_design(result: Any, truth: _Truth, s: int, design: _Design,
                streams: list[list[np.random.SeedSequence]], settings: _Settings) -> dict[str, Any]:
    """Simulate R replicates of one design around truth s, refit them, return per-replicate results."""
    spec = result.spec
    n_free_fit = len(spec.estimated)
    sample_years = _last_survey_years(spec, design.years_of_sampling) if design.fish_per_year > 0 else []
    juvenile_years = _last_survey_years(spec, design.juvenile_years_of_sampling)
    q_j = None
    if design.juvenile_cv is not None:
        q_j = 1.0 / float(np.mean(truth.wild_window[s, np.searchsorted(spec.years, juvenile_years)]))
    structure, extra = _design_spec(spec, design, misclassification=settings.misclassification,
                                    estimate_misclassification=settings.estimate_misclassification,
                                    priors=settings.priors, juvenile_q=q_j)
    biomass, samples, juvenile = [], [], []
    for bio_seq, hatch_seq, juv_seq in streams:
        biomass.append(_draw_biomass(truth, s, np.random.default_rng(bio_seq)))
        samples.append(_draw_samples(truth, s, spec.years, [int(y) for y in sample_years],
                                     design.fish_per_year, settings.design_effect,
                                     settings.misclassification, np.random.default_rng(hatch_seq)))
        if design.juvenile_cv is not None:
            juvenile.append(_draw_juvenile(truth, s, spec.years, [int(y) for y in juvenile_years],
                                           design.juvenile_cv, q_j, np.random.default_rng(juv_seq)))
    biomass_arr = np.array(biomass)
    problem = _problem(structure, biomass_arr, samples, juvenile if design.juvenile_cv is not None else None)
    start = _extend(truth.theta[s], n_free_fit, extra)[0]
    # chord matrix: the Hessian at the truth for noise-free data of this design
    expected_samples = tuple(replace(h, n_hatchery=float(h.n_examined) * float(p)) for h, p in zip(
        samples[0], _classified_probability(truth.share[s, np.searchsorted(spec.years, sample_years)],
                                            settings.misclassification), strict=True))
    expected_juvenile = None
    if design.juvenile_cv is not None:
        expected_juvenile = [tuple((y, q_j * float(truth.wild_window[s, np.searchsorted(spec.years, y)]), cv)
                                   for y, _, cv in juvenile[0])]
    noise_free = _problem(structure, truth.survey_t[s][None], [expected_samples], expected_juvenile)
    transform = _whitening_transform(noise_free, start)
    refits = _refit(problem, np.repeat(start[None], len(streams), axis=0), transform)
    counts = np.full((len(streams), len(sample_years)), np.nan)
    for r, rows in enumerate(samples):
        counts[r, :len(rows)] = [h.n_hatchery for h in rows]
    return {"intervals": _intervals(problem, refits), "converged": refits.converged,
            "biomass": biomass_arr, "counts": counts,
            "sample_years": sample_years, "problem": problem, "refits": refits}


def _settings(design_effect: float, misclassification: tuple[float, float], estimate_misclassification: bool,
              misclassification_priors: tuple[Prior, Prior] | None) -> _Settings:
    return _Settings(design_effect=float(design_effect),
                     misclassification=(float(misclassification[0]), float(misclassification[1])),
                     estimate_misclassification=estimate_misclassification,
                     priors=misclassification_priors or MISCLASSIFICATION_PRIORS)


def _summaries(ds: xr.Dataset, quantities: Sequence[str], baseline: dict[str, Any]) -> xr.Dataset:
    """Summaries over replicates (converged refits only) and narrowing against ``baseline``."""
    conv = ds["converged"]
    for q in quantities:
        width = (ds[f"{q}_upper"] - ds[f"{q}_lower"]).where(conv)
        covered = ((ds[f"{q}_lower"] <= ds[f"{q}_truth"]) & (ds[f"{q}_truth"] <= ds[f"{q}_upper"]))
        ds[f"{q}_width"] = width
        ds[f"{q}_covered"] = covered.where(conv)
        n_used = np.isfinite(width).sum("replicate")
        coverage = ds[f"{q}_covered"].mean("replicate")
        ds[f"{q}_width_median"] = width.median("replicate")
        ds[f"{q}_coverage"] = coverage
        ds[f"{q}_coverage_mc_se"] = np.sqrt(coverage * (1 - coverage) / n_used.where(n_used > 0))
        ds[f"{q}_median_estimate"] = ds[f"{q}_estimate"].where(conv).median("replicate")
        reference = width.sel(baseline)
        ds[f"{q}_narrowing"] = 1.0 - (width / reference).median("replicate")
        scale_width = ds[f"{q}_scale_width"].where(conv)
        ds[f"{q}_scale_width_median"] = scale_width.median("replicate")
        ds[f"{q}_scale_narrowing"] = 1.0 - (scale_width / scale_width.sel(baseline)).median("replicate")
    ds["converged_share"] = conv.mean("replicate")
    return ds


def _describe(ds: xr.Dataset, quantities: Sequence[str], baseline_text: str) -> xr.Dataset:
    for q in quantities:
        units, long_name = QUANTITIES[q]
        for suffix, text, u in (
                ("truth", f"true {long_name}", units), ("estimate", f"MAP estimate of {long_name}", units),
                ("lower", f"lower bound of the 95 % delta-method interval of {long_name}", units),
                ("upper", f"upper bound of the 95 % delta-method interval of {long_name}", units),
                ("width", f"width of the 95 % interval of {long_name}", units),
                ("covered", "truth inside the 95 % interval (NaN if the refit did not converge)", "1"),
                ("width_median", f"median width of the 95 % interval of {long_name}", units),
                ("coverage", "fraction of converged refits whose 95 % interval holds the truth", "1"),
                ("coverage_mc_se", "Monte Carlo SE of the coverage, sqrt(p(1 - p)/n)", "1"),
                ("median_estimate", f"median MAP estimate of {long_name}", units),
                ("narrowing", f"1 - median over replicates of (width / width with {baseline_text})", "1"),
                ("scale_width", f"width of the 95 % interval on its {SCALES[q]} scale", "1"),
                ("scale_width_median", f"median width of the 95 % interval on its {SCALES[q]} scale", "1"),
                ("scale_narrowing", f"narrowing on the {SCALES[q]} scale (unaffected by a shift of the "
                                    "estimate, unlike the natural-scale narrowing)", "1")):
            if f"{q}_{suffix}" in ds:
                ds[f"{q}_{suffix}"].attrs.update(units=u, long_name=text)
    for name, units, text in (("converged", "1", "refit converged (positive definite Hessian, max |gradient| "
                                                 f"< {GRADIENT_TOLERANCE:g})"),
                              ("converged_share", "1", "share of refits that converged"),
                              ("biomass_obs_t", "t", "simulated survey biomass (same in every design)"),
                              ("n_hatchery", "fish", "fish classified hatchery-origin in a simulated sample"),
                              ("n_hatchery_mean", "fish", "mean fish classified hatchery-origin per sample")):
        if name in ds:
            ds[name].attrs.update(units=units, long_name=text)
    return ds


def monitoring_design(result: Any, *, true_survivals: Sequence[float] = (0.05, 0.3, 0.8),
                      fish_per_year: Sequence[int] = (0, 50, 200, 500, 1000, 2000),
                      years_of_sampling: Sequence[int] = (1, 3, 5), n_replicates: int = 20,
                      seed: int = 20260601, design_effect: float = DEFAULT_DESIGN_EFFECT,
                      misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                      estimate_misclassification: bool = True,
                      misclassification_priors: tuple[Prior, Prior] | None = None,
                      juvenile_index_cv: float | None = None, progress: Any = None) -> xr.Dataset:
    """Simulate-and-refit study of hatchery-origin sampling (module notes give the method).

    Returns a Dataset with dims ``(true_survival, fish_per_year, years_of_sampling, replicate)``:
    per replicate the estimate and 95 % interval of release survival, release contribution and
    release gain (and dd_strength with a juvenile index), their truth, ``converged``, the
    simulated data; summaries over converged replicates (``*_width_median``, ``*_coverage`` with
    ``*_coverage_mc_se``, ``*_narrowing`` against fish_per_year = 0, the biomass record alone,
    ``*_median_estimate``, ``converged_share``). ``fish_per_year = 0`` is one design (nothing is
    sampled), shown for every ``years_of_sampling``. ``juvenile_index_cv`` adds a wild juvenile
    index in the same years to every design (0 fish then means the index alone).
    ``progress(done, total)`` is called after each design.
    """
    start_time = time.perf_counter()
    spec = result.spec
    _check_spec(spec)
    if n_replicates < 2:
        raise ValueError(f"n_replicates: expected at least 2, got {n_replicates}")
    fish = sorted({int(f) for f in fish_per_year} | {0})
    years = sorted({int(k) for k in years_of_sampling})
    for k in years:
        _last_survey_years(spec, k)
    if any(k < 1 for k in years):
        raise ValueError("years_of_sampling: expected values >= 1")
    settings = _settings(design_effect, misclassification, estimate_misclassification,
                         misclassification_priors)
    survivals = [float(s) for s in true_survivals]
    truth = _truths(result, _truth_thetas(result, survivals))
    streams = _streams(seed, len(survivals), n_replicates)
    shape = (len(survivals), len(fish), len(years), n_replicates)
    quantities = ["release_survival", "release_contribution", "release_gain_t"]
    if juvenile_index_cv is not None:
        quantities.append("dd_strength")
    values = {q: np.full(shape + (len(_PARTS),), np.nan) for q in quantities}
    converged = np.zeros(shape, bool)
    max_k = max(years)
    sample_year_coord = _last_survey_years(spec, max_k)
    counts = np.full(shape + (max_k,), np.nan)
    biomass = np.full((len(survivals), n_replicates, spec.observations.year.size), np.nan)
    jobs = [(s, f, k) for s in range(len(survivals)) for f in range(len(fish))
            for k in ([0] if fish[f] == 0 and juvenile_index_cv is None else range(len(years)))]
    for done, (s, f, k) in enumerate(jobs, start=1):
        design = _Design(fish[f], years[k], juvenile_index_cv,
                         years[k] if juvenile_index_cv is not None else 0)
        out = _run_design(result, truth, s, design, streams[s], settings)
        target = (s, f, slice(None)) if fish[f] == 0 and juvenile_index_cv is None else (s, f, k)
        for q in quantities:
            values[q][target] = out["intervals"][q]
        converged[target] = out["converged"]
        if fish[f] > 0:
            counts[s, f, k, :, max_k - years[k]:] = out["counts"]
        biomass[s] = out["biomass"]
        if progress is not None:
            progress(done, len(jobs))
    dims = ("true_survival", "fish_per_year", "years_of_sampling", "replicate")
    truths = {"release_survival": truth.survival, "release_contribution": truth.contribution,
              "release_gain_t": truth.gain_t, "dd_strength": truth.dd_strength}
    data_vars: dict[str, Any] = {"converged": (dims, converged),
                                 "n_hatchery": ((*dims, "sample_year"), counts),
                                 "biomass_obs_t": (("true_survival", "replicate", "obs_year"), biomass)}
    for q in quantities:
        data_vars[f"{q}_truth"] = ("true_survival", truths[q])
        for j, part in enumerate(_PARTS):
            data_vars[f"{q}_{part}"] = (dims, values[q][..., j])
    coords = {"true_survival": survivals, "fish_per_year": fish, "years_of_sampling": years,
              "replicate": np.arange(n_replicates), "sample_year": sample_year_coord,
              "obs_year": np.asarray(spec.observations.year)}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["n_hatchery_mean"] = ds["n_hatchery"].mean(("replicate", "sample_year"))
    ds = _summaries(ds, quantities, {"fish_per_year": 0})
    ds = _describe(ds, quantities, "no hatchery samples" if juvenile_index_cv is None
                   else "the juvenile index but no hatchery samples")
    ds["true_survival"].attrs.update(units="1", long_name="true acute post-release survival")
    ds["fish_per_year"].attrs.update(units="fish/yr", long_name="fish examined for hatchery origin per year")
    ds["years_of_sampling"].attrs.update(units="yr", long_name="survey years sampled (the last k)")
    ds.attrs.update(_method_attrs(spec, settings, seed, n_replicates, juvenile_index_cv,
                                  time.perf_counter() - start_time))
    return ds


def _method_attrs(spec: ModelSpec, settings: _Settings, seed: int, n_replicates: int,
                  juvenile_index_cv: float | None, runtime_s: float) -> dict[str, Any]:
    years = np.asarray(spec.observations.year)
    return {
        "title": "Monitoring design: hatchery-origin samples and release survival",
        "truth": "fitted theta with release_survival set to each true value (logit scale via its Free); "
                 "the other parameters and the recruitment deviations are the fit's, so a truth does "
                 "not fit the real record as well as the fit (fine for a design study)",
        "sample_years": f"the last k survey years of {', '.join(str(y) for y in years)}",
        "biomass_data": "fitted data's years and CVs, lognormal errors around q*B of the truth",
        "hatchery_samples": f"beta-binomial, design effect {settings.design_effect:g}, misclassification "
                            f"(hatchery read as wild, wild read as hatchery) = {settings.misclassification}; "
                            + ("rates estimated with Beta priors "
                               + ", ".join(f"{p.parameters['mean']:g} (sd {p.parameters['sd']:g})"
                                           for p in settings.priors)
                               if settings.estimate_misclassification else "rates fixed at the truth"),
        "juvenile_index_cv": "none" if juvenile_index_cv is None else float(juvenile_index_cv),
        "refit": "from the truth, batched BFGS then Newton in whitened coordinates (Hessian at the truth for "
                 "noise-free data, re-whitened at a replicate's end point when far from the identity); "
                 "converged as fit(): positive definite Hessian, max |gradient| < 1e-3; refits that do not "
                 "converge are left out of the summaries",
        "interval_method": "delta method from the inverse Hessian: release survival on its logit scale, "
                           "release contribution on the log scale, release gain on the natural scale",
        "narrowing": "1 - median over replicates of width(design)/width(no hatchery samples), paired "
                     "by replicate (common random numbers)",
        "randomness": "SeedSequence(seed).spawn(n_true_survivals * n_replicates), one stream per (true "
                      "survival, replicate) shared by all designs; each spawns biomass, hatchery, juvenile",
        "seed": int(seed), "n_replicates": int(n_replicates), "runtime_s": round(runtime_s, 1),
    }


def monitoring_options(result: Any, *, true_survival: float = 0.3, fish_per_year: int = 1000,
                       years_of_sampling: int = 5, juvenile_index_cv: float = 0.3, n_replicates: int = 20,
                       seed: int = 20260601, design_effect: float = DEFAULT_DESIGN_EFFECT,
                       misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                       estimate_misclassification: bool = True) -> xr.Dataset:
    """Hatchery samples versus a wild juvenile index, the second monitoring option.

    Four designs on the same replicates (common random numbers): the biomass record only;
    hatchery samples (``fish_per_year`` for ``years_of_sampling`` years); a lognormal index of
    wild fish leaving the density-dependence window (CV ``juvenile_index_cv``, same years,
    catchability estimated with a vague lognormal prior, sd_log 2: a relative index); both.
    Dims ``(option, replicate)``; quantities as in :func:`monitoring_design` plus dd_strength
    (log-scale interval), which decides addition versus replacement. Narrowing is against the
    biomass record only.
    """
    start_time = time.perf_counter()
    spec = result.spec
    _check_spec(spec)
    settings = _settings(design_effect, misclassification, estimate_misclassification, None)
    truth = _truths(result, _truth_thetas(result, [true_survival]))
    streams = _streams(seed, 1, n_replicates)[0]
    options = {"biomass record only": _Design(0, years_of_sampling),
               "hatchery samples": _Design(fish_per_year, years_of_sampling),
               "juvenile index": _Design(0, years_of_sampling, juvenile_index_cv, years_of_sampling),
               "samples + juvenile index": _Design(fish_per_year, years_of_sampling, juvenile_index_cv,
                                                   years_of_sampling)}
    quantities = ["release_survival", "release_contribution", "release_gain_t", "dd_strength"]
    values = {q: np.full((len(options), n_replicates, len(_PARTS)), np.nan) for q in quantities}
    converged = np.zeros((len(options), n_replicates), bool)
    for o, design in enumerate(options.values()):
        out = _run_design(result, truth, 0, design, streams, settings)
        for q in quantities:
            values[q][o] = out["intervals"][q]
        converged[o] = out["converged"]
    truths = {"release_survival": truth.survival[0], "release_contribution": truth.contribution[0],
              "release_gain_t": truth.gain_t[0], "dd_strength": truth.dd_strength[0]}
    data_vars: dict[str, Any] = {"converged": (("option", "replicate"), converged)}
    for q in quantities:
        data_vars[f"{q}_truth"] = ((), truths[q])
        for j, part in enumerate(_PARTS):
            data_vars[f"{q}_{part}"] = (("option", "replicate"), values[q][..., j])
    ds = xr.Dataset(data_vars, coords={"option": list(options), "replicate": np.arange(n_replicates)})
    ds = _summaries(ds, quantities, {"option": "biomass record only"})
    ds = _describe(ds, quantities, "the biomass record only")
    ds.attrs.update(_method_attrs(spec, settings, seed, n_replicates, juvenile_index_cv,
                                  time.perf_counter() - start_time))
    ds.attrs.update(true_survival=float(true_survival), fish_per_year=int(fish_per_year),
                    years_of_sampling=int(years_of_sampling))
    return ds


# ----------------------------------------------------------------------------- recommendation, tables


def recommend_sample_size(ds: xr.Dataset, target_narrowing: float = 0.5, coverage_floor: float = 0.9,
                          quantity: str = "release_survival", scale: str = "both") -> dict[str, Any]:
    """The smallest design (fewest fish in total, then fewest years) that narrows the interval of
    ``quantity`` by ``target_narrowing`` with coverage at least ``coverage_floor``, per true survival.

    ``scale``: the narrowing counted on the natural scale (``"natural"``), on the scale the
    interval is symmetric on (``"estimation"``: logit, log; immune to a shift of the estimate), or
    on both (default). Returns ``{"quantity", "target_narrowing", "coverage_floor", "scale",
    "by_true_survival": {s: {...}}, "text"}``; each entry has fish_per_year, years_of_sampling,
    total_fish (None when no design in the grid achieves it), narrowing, scale_narrowing,
    coverage and a sentence.
    """
    if scale not in ("natural", "estimation", "both"):
        raise ValueError(f"scale: expected 'natural', 'estimation' or 'both', got {scale!r}")
    _, long_name = QUANTITIES[quantity]

    def achieved(cell: xr.Dataset) -> float:
        natural = float(cell[f"{quantity}_narrowing"])
        on_scale = float(cell[f"{quantity}_scale_narrowing"])
        return {"natural": natural, "estimation": on_scale, "both": min(natural, on_scale)}[scale]

    by_survival: dict[float, dict[str, Any]] = {}
    sentences = []
    for s in ds.true_survival.values:
        best, top = None, -np.inf
        for f in ds.fish_per_year.values[ds.fish_per_year.values > 0]:
            for k in ds.years_of_sampling.values:
                cell = ds.sel(true_survival=s, fish_per_year=f, years_of_sampling=k)
                narrowing, coverage = achieved(cell), float(cell[f"{quantity}_coverage"])
                top = max(top, narrowing)
                if narrowing >= target_narrowing and coverage >= coverage_floor:
                    key = (int(f) * int(k), int(k), int(f))
                    if best is None or key < best[0]:
                        best = (key, cell)
        if best is None:
            text = (f"true survival {s:g}: no design up to {int(ds.fish_per_year.max())} fish a year for "
                    f"{int(ds.years_of_sampling.max())} years narrows the {long_name} interval by "
                    f"{target_narrowing:.0%} with coverage >= {coverage_floor:.0%} (best {top:.0%})")
            entry = {"fish_per_year": None, "years_of_sampling": None, "total_fish": None,
                     "narrowing": top, "scale_narrowing": None, "coverage": None, "text": text}
        else:
            (total, k, f), cell = best
            narrowing = float(cell[f"{quantity}_narrowing"])
            on_scale = float(cell[f"{quantity}_scale_narrowing"])
            coverage = float(cell[f"{quantity}_coverage"])
            on_text = "" if SCALES[quantity].startswith("natural") else \
                f" ({on_scale:.0%} on its {SCALES[quantity]} scale)"
            text = (f"true survival {s:g}: examine {f} fish a year for {k} year{'s' if k > 1 else ''} "
                    f"({total} fish): the {long_name} interval narrows by {narrowing:.0%}{on_text}, "
                    f"coverage {coverage:.0%}")
            entry = {"fish_per_year": f, "years_of_sampling": k, "total_fish": total, "narrowing": narrowing,
                     "scale_narrowing": on_scale, "coverage": coverage, "text": text}
        by_survival[float(s)] = entry
        sentences.append(text)
    return {"quantity": quantity, "target_narrowing": target_narrowing, "coverage_floor": coverage_floor,
            "scale": scale, "by_true_survival": by_survival, "text": "; ".join(sentences) + "."}


def summary_table(ds: xr.Dataset, quantity: str = "release_survival") -> str:
    """A compact text table per (true survival, years sampled) and fish per year: median width of
    the 95 % interval, coverage, and narrowing against no samples on the natural / estimation scale."""
    units, long_name = QUANTITIES[quantity]
    lines = [f"{long_name}: median 95 % interval width ({units}) [coverage] "
             f"narrowing natural/{SCALES[quantity]}"]
    fish = [int(f) for f in ds.fish_per_year.values]
    lines.append("true s  years " + "".join(f"{f:>23d}" for f in fish))
    fmt = "{:.3g}" if units == "1" else "{:.0f}"
    for s in ds.true_survival.values:
        for k in ds.years_of_sampling.values:
            cells = []
            for f in fish:
                c = ds.sel(true_survival=s, fish_per_year=f, years_of_sampling=k)
                width, coverage = float(c[f"{quantity}_width_median"]), float(c[f"{quantity}_coverage"])
                natural, on_scale = float(c[f"{quantity}_narrowing"]), float(c[f"{quantity}_scale_narrowing"])
                text = f"{fmt.format(width)} [{coverage:.2f}] {natural:+.0%}/{on_scale:+.0%}"
                cells.append(text.rjust(23))
            lines.append(f"{s:6.2f}  {int(k):5d} " + "".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


def plot_interval_width(ds: xr.Dataset, quantity: str = "release_survival") -> Any:
    """Median width of the 95 % interval against fish examined per year: one line per number of
    years sampled, one panel per true survival; dashed, the biomass record alone."""
    import matplotlib.pyplot as plt

    units, long_name = QUANTITIES[quantity]
    survivals = ds.true_survival.values
    fig, axes = plt.subplots(1, len(survivals), figsize=(3.6 * len(survivals), 3.6), layout="constrained",
                             sharey=True, squeeze=False)
    fish = ds.fish_per_year.values
    positive = fish[fish > 0]
    scale, unit_label = (1e3, "thousand t") if units == "t" else (1.0, "proportion")
    for ax, s in zip(axes[0], survivals, strict=True):
        cell = ds.sel(true_survival=s)
        for k in ds.years_of_sampling.values:
            width = cell[f"{quantity}_width_median"].sel(years_of_sampling=k, fish_per_year=positive) / scale
            ax.plot(positive, width, "o-", label=f"{int(k)} year{'s' if k > 1 else ''} sampled")
        base = float(cell[f"{quantity}_width_median"].sel(fish_per_year=0).isel(years_of_sampling=0)) / scale
        ax.axhline(base, color="black", ls="--", lw=1, label="biomass record only")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0.0)
        ax.set_title(f"true release survival {s:g}", fontsize=10)
        ax.set_xlabel("Fish examined per year (fish/yr)")
    axes[0, 0].set_ylabel(f"Width of 95 % interval of\n{quantity.replace('_', ' ')} ({unit_label})")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Interval width of {long_name} by monitoring design", fontsize=11)
    return fig


def plot_coverage(ds: xr.Dataset, quantity: str = "release_survival", floor: float = 0.9) -> Any:
    """Coverage of the truth by the 95 % interval (±2 Monte Carlo SE) against fish per year."""
    import matplotlib.pyplot as plt

    _, long_name = QUANTITIES[quantity]
    survivals = ds.true_survival.values
    fig, axes = plt.subplots(1, len(survivals), figsize=(3.6 * len(survivals), 3.4), layout="constrained",
                             sharey=True, squeeze=False)
    fish = ds.fish_per_year.values
    for ax, s in zip(axes[0], survivals, strict=True):
        cell = ds.sel(true_survival=s)
        for j, k in enumerate(ds.years_of_sampling.values):
            c = cell.sel(years_of_sampling=k)
            x = np.where(fish > 0, fish, 20.0) * (1 + 0.06 * (j - 1))
            ax.errorbar(x, c[f"{quantity}_coverage"], yerr=2 * c[f"{quantity}_coverage_mc_se"], fmt="o-",
                        capsize=2, label=f"{int(k)} year{'s' if k > 1 else ''} sampled")
        ax.axhline(0.95, color="black", lw=1, label="nominal 0.95")
        ax.axhline(floor, color="grey", ls="--", lw=1, label=f"floor {floor:g}")
        ax.set_xscale("log")
        ax.set_ylim(0.0, 1.05)
        ax.set_title(f"true release survival {s:g}", fontsize=10)
        ax.set_xlabel("Fish examined per year (fish/yr; 0 drawn at 20)")
    axes[0, 0].set_ylabel("Coverage of the truth (proportion)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Coverage of the 95 % interval of {long_name}", fontsize=11)
    return fig


# ----------------------------------------------------------------------------- outputs


def write_monitoring(ds: xr.Dataset, out: str | Path, *, options: xr.Dataset | None = None) -> list[Path]:
    """monitoring.nc, monitoring.json (recommendations and tables) and figures in ``out``."""
    import matplotlib.pyplot as plt

    from carpmodel.io.outputs import write_figure_atomic, write_json_atomic, write_netcdf_atomic

    out = Path(out)
    written = [write_netcdf_atomic(ds, out / "monitoring.nc")]
    record: dict[str, Any] = {
        "recommendation": {q: recommend_sample_size(ds, quantity=q)
                           for q in ("release_survival", "release_contribution", "release_gain_t")},
        "tables": {q: summary_table(ds, q) for q in ("release_survival", "release_contribution",
                                                     "release_gain_t")},
        "method": {k: v for k, v in ds.attrs.items()}}
    if options is not None:
        written.append(write_netcdf_atomic(options, out / "monitoring_options.nc"))
        record["options"] = {str(o): {q: {name: float(options[f"{q}_{name}"].sel(option=o))
                                          for name in ("width_median", "narrowing", "scale_narrowing",
                                                       "coverage", "median_estimate")}
                                      for q in ("release_survival", "release_contribution", "release_gain_t",
                                                "dd_strength")}
                             for o in options.option.values}
    written.append(write_json_atomic(out / "monitoring.json", record))
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, fig in (("monitoring_interval_width", plot_interval_width(ds)),
                      ("monitoring_contribution_width", plot_interval_width(ds, "release_contribution")),
                      ("monitoring_coverage", plot_coverage(ds))):
        written.append(write_figure_atomic(fig, figures / f"{name}.png", dpi=110))
        plt.close(fig)
    return written


def run_monitoring(fit_dir: str | Path, out: str | Path, *, data_dir: str | Path | None = None,
                   force: bool = False, n_replicates: int = 20, seed: int | None = None,
                   juvenile_option: bool = True, **design: Any) -> list[Path]:
    """``carpmodel monitoring --fit DIR --out DIR``: load the fit, run the design study (and the
    juvenile-index comparison), write the outputs. To be wired into :mod:`carpmodel.cli`."""
    from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY
    from carpmodel.io.outputs import check_output_dir, prepare_output_dir
    from carpmodel.pipeline import load_fit

    loaded = load_fit(fit_dir, data_dir)
    protected = [loaded.data.directory, BUNDLED_DATA_DIRECTORY, Path(fit_dir)]
    check_output_dir(out, force, protected)
    seed = loaded.config.seed if seed is None else seed
    ds = monitoring_design(loaded.result, n_replicates=n_replicates, seed=seed, **design)
    options = (monitoring_options(loaded.result, n_replicates=n_replicates, seed=seed)
               if juvenile_option else None)
    directory = prepare_output_dir(out, force, protected)
    return write_monitoring(ds, directory, options=options)
