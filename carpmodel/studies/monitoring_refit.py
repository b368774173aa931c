"""Batched refits of the replicates of one monitoring design, and their intervals.

The likelihood of a design (:func:`design_spec`): the biomass record, hatchery-origin samples
(beta-binomial; misclassification rates estimated with Beta priors,
:data:`MISCLASSIFICATION_PRIORS`) and, where sampled, a wild juvenile index with an estimated
catchability (lognormal prior, :data:`JUVENILE_Q_SD_LOG`). Every replicate is refitted with
the likelihood of :mod:`carpmodel.inference.likelihood` from the truth (standard in simulation
studies, e.g. WHAM's ``self_test``; faster). Intervals: delta method from the inverse Hessian
(MCMC is too slow for thousands of refits): release survival on its logit scale, the release
contribution (hatchery share of survey biomass in the last year) on the log scale, and the
counterfactual gain from releases (last-year biomass with minus without the historical
releases, same recruitment deviations; t) on the natural scale.

How the refits are computed
    All replicates of one design are refitted together: every engine call evaluates the
    perturbed parameter vectors of all replicates at once (the engine is data-free, so one
    :func:`~carpmodel.inference.likelihood.predict` serves all data sets; each replicate's data then
    score its rows, with the same arithmetic as :func:`~carpmodel.inference.likelihood.objective`).
    The optimiser is :func:`carpmodel.inference.refit.minimise` (shared with the diagnostics' and the
    power study's refits); it works in whitened coordinates y, θ = c + T·y with
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import CarpmodelError
from carpmodel.inference.batch_minimise import (
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
from carpmodel.inference.fitting import GRADIENT_STEP
from carpmodel.inference.likelihood import hatchery_sample_nll, nll_from_state, predict
from carpmodel.inference.spec import Free, HatcherySample, ModelSpec
from carpmodel.priors import Prior

__all__ = [
    "INTERVAL_PARTS",
    "JUVENILE_Q_SD_LOG",
    "MISCLASSIFICATION_PRIORS",
    "MISCLASS_FIELDS",
    "Z95",
    "RefitProblem",
    "SamplingDesign",
    "design_spec",
    "evaluate_rows",
    "extend_theta",
    "interval_table",
    "refit_problem",
    "refit_replicates",
    "whitening_transform",
]

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: Beta priors of the misclassification rates, centred on the true values (what a validation
#: study of known-origin fish would give); both shape parameters a > 1 so the MAP stays off 0
MISCLASSIFICATION_PRIORS = (Prior("beta", {"mean": 0.05, "sd": 0.02}),
                            Prior("beta", {"mean": 0.0005, "sd": 0.0003}))
#: SD (log scale) of the prior of the juvenile-index catchability: a relative index
JUVENILE_Q_SD_LOG = 2.0
#: the estimated misclassification rates (hatchery read as wild, wild read as hatchery)
MISCLASS_FIELDS = ("misclass_hatchery_as_wild", "misclass_wild_as_hatchery")
#: per-replicate results of each quantity (columns of :func:`interval_table`'s arrays)
INTERVAL_PARTS = ("estimate", "lower", "upper", "scale_width")


@dataclass(frozen=True)
class SamplingDesign:
    """One monitoring design (what is sampled: fish per year, survey years; an optional juvenile
    index with its CV and years); data are drawn per replicate."""

    fish_per_year: int
    years_of_sampling: int
    juvenile_cv: float | None = None
    juvenile_years_of_sampling: int = 0


@dataclass(frozen=True)
class RefitProblem:
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


def design_spec(spec: ModelSpec, design: SamplingDesign, *, misclassification: tuple[float, float],
                estimate_misclassification: bool, priors: tuple[Prior, Prior],
                juvenile_q: float | None) -> tuple[ModelSpec, NDArray]:
    """The refit spec's structure (extra Frees appended) and the truth of the extra parameters."""
    free = list(spec.free)
    extra: list[float] = []
    changes: dict[str, Any] = {"hatchery_samples": (), "juvenile_index": ()}
    if design.fish_per_year > 0:
        changes["misclassification"] = tuple(float(m) for m in misclassification)
        if estimate_misclassification:
            for field_name, prior, value in zip(MISCLASS_FIELDS, priors, misclassification, strict=True):
                free.append(Free(field_name, "logit", prior, float(value), (0.0, 1.0)))
                extra.append(float(free[-1].to_theta(value)))
    if design.juvenile_cv is not None:
        prior = Prior("lognormal", {"median": juvenile_q, "sd_log": JUVENILE_Q_SD_LOG})
        free.append(Free("juvenile_index_q", "log", prior, juvenile_q))
        extra.append(float(np.log(juvenile_q)))
    return replace(spec, free=tuple(free), **changes), np.asarray(extra)


def extend_theta(theta: NDArray, n_free: int, extra: NDArray) -> NDArray:
    """Insert the extra parameters between the free parameters and the recruitment deviations."""
    theta = np.atleast_2d(theta)
    extra = np.broadcast_to(extra, theta.shape[:1] + extra.shape)
    return np.concatenate([theta[:, :n_free], extra, theta[:, n_free:]], axis=1)


def refit_problem(structure: ModelSpec, biomass: NDArray, samples: Sequence[tuple[HatcherySample, ...]],
                  juvenile: Sequence[tuple[tuple[int, float, float], ...]] | None) -> RefitProblem:
    """The refit of R replicates of ``structure`` (:func:`design_spec`): their biomass records
    ``(R, n_obs)`` in t, hatchery samples and juvenile indices (None: no index)."""
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
    return RefitProblem(spec=specs[0], biomass_t=biomass, replicate_specs=tuple(specs), juvenile=index,
                        juvenile_cv=cv, juvenile_years=years)


def _objective_rows(problem: RefitProblem, rows: NDArray, thetas: NDArray) -> NDArray:
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


def _objective_batch(problem: RefitProblem, rows: NDArray, thetas: NDArray) -> NDArray:
    spec = problem.spec
    obs = replace(spec.observations, biomass_t=problem.biomass_t[rows][:, None, :])
    base = replace(spec, observations=obs, hatchery_samples=(), juvenile_index=())
    with np.errstate(all="ignore"):
        state, u = predict(base, thetas)
        total = sum(nll_from_state(base, state, u).values())
        if problem.has_samples:
            for i, r in enumerate(rows):
                view_state = SimpleNamespace(hatchery_fraction_numbers=state.hatchery_fraction_numbers[i])
                view_u = SimpleNamespace(observation={k: np.asarray(u.observation[k])[i]
                                                      for k in MISCLASS_FIELDS})
                total[i] = total[i] + hatchery_sample_nll(problem.replicate_specs[r], view_state, view_u)
        if problem.juvenile is not None:
            index = problem.juvenile[rows][:, None, :]
            cv = problem.juvenile_cv
            wild = state.wild_window_survivors[..., np.searchsorted(spec.years, problem.juvenile_years)]
            predicted = np.asarray(u.observation["juvenile_index_q"])[..., None] * wild
            z = (np.log(index) - np.log(np.maximum(predicted, 1e-300))) / cv
            total = total + np.sum(0.5 * np.log(2.0 * np.pi) + np.log(cv) + 0.5 * z**2, axis=-1)
    return np.where(np.isfinite(total), total, np.inf)


def evaluate_rows(problem: RefitProblem, rows: NDArray, thetas: NDArray) -> NDArray:
    """:func:`_objective_rows` at ``thetas (k, m, n)``, in chunks of at most ``MAX_BATCH``
    engine evaluations."""
    k, m, _ = thetas.shape
    chunk = max(1, MAX_BATCH // m)
    out = np.empty((k, m))
    for start in range(0, k, chunk):
        out[start:start + chunk] = _objective_rows(problem, rows[start:start + chunk],
                                                   thetas[start:start + chunk])
    return out


def _objective(problem: RefitProblem) -> BatchObjective:
    """The problem's NLL as the :data:`~carpmodel.inference.refit.BatchObjective` of
    :func:`carpmodel.inference.refit.minimise`."""
    return lambda rows, thetas: _objective_rows(problem, rows, thetas)


def whitening_transform(noise_free: RefitProblem, theta: NDArray) -> NDArray:
    """The refits' coordinates: whiten the Hessian at the truth for noise-free data. A first
    Hessian in θ (step ``GRADIENT_STEP``; rough in the stiff direction) gives ``T₁``; the Hessian
    in ``T₁``'s coordinates (step ``HESSIAN_STEP_Y``) refines it: ``T = T₁·W``."""
    values = _objective(noise_free)
    identity = Coordinates(theta[None], np.eye(theta.size)[None])
    rough = central_hessian(values, identity, np.array([0]), np.zeros((1, theta.size)), step=GRADIENT_STEP)[0]
    return refine_whitening(values, theta, whitening(rough))


def refit_replicates(problem: RefitProblem, centre: NDArray, transform: NDArray) -> BatchRefit:
    """Refit every replicate from ``centre (R, n)`` (the truth) in the coordinates of ``transform
    (n, n)``: :func:`carpmodel.inference.refit.minimise` with the Hessians in whitened coordinates (the
    module notes say why); re-whitened where a replicate's Hessian there is far from the identity.
    Convergence is judged in θ, as :func:`~carpmodel.inference.fitting.fit` does."""
    n_rep = centre.shape[0]
    transforms = np.repeat(np.asarray(transform, float)[None], n_rep, axis=0)
    coords = Coordinates(np.asarray(centre, float), transforms)
    return minimise(_objective(problem), coords)


def interval_table(problem: RefitProblem, refits: BatchRefit) -> dict[str, NDArray]:
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
