"""Simulation self-test: refits to data simulated from the fit, their bias and interval coverage.

Randomness comes from one ``numpy.random.SeedSequence(seed)`` with one spawned stream per
replicate, so a replicate's data do not depend on how many were asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats

from carpmodel.diagnostics.common import describe, json_ready
from carpmodel.errors import FitError
from carpmodel.inference.fitting import GRADIENT_STEP, FitResult
from carpmodel.inference.likelihood import (
    HATCHERY_FRACTION_CV,
    UPPER_BOUND_SD_LOG,
    observation_sd,
    predict,
    survey_prediction_t,
)
from carpmodel.inference.observations import (
    NET_CORRELATION,
    NET_LENGTH_SD_LOG,
    NET_WEIGHT_SD_LOG,
    NetMeanSize,
    OriginSamples,
)
from carpmodel.inference.refit import refit_many
from carpmodel.inference.spec import ModelSpec

#: nominal coverage of the self-test's intervals (95 %)
NOMINAL_COVERAGE = 0.95
#: derived quantities of the self-test, in table order
SELF_TEST_QUANTITIES = ("biomass_last_year_t", "unfished_biomass_t", "depletion_last_year")
_Z95 = float(stats.norm.ppf(0.975))


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
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


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
    z = rng.standard_normal(obs.year.size)
    if obs.ar1:      # the survey errors' AR(1): z_i = ρ^Δ·z_{i−1} + √(1 − ρ^{2Δ})·e_i
        phi = float(spec.survey_rho) ** np.diff(np.asarray(obs.year, dtype=int))
        for i in range(1, z.size):
            z[i] = phi[i - 1] * z[i - 1] + np.sqrt(1.0 - phi[i - 1] ** 2) * z[i]
    biomass = survey_t[index] * np.exp(sd[index] * z)
    changes: dict[str, Any] = {"observations": replace(obs, biomass_t=biomass)}
    samples = []
    for sample in spec.samples:
        if isinstance(sample, NetMeanSize):
            predicted = sample.predict(spec, truth_state, truth_u)
            k = sample.year.size
            e_l = rng.standard_normal(k)
            e_w = NET_CORRELATION * e_l + np.sqrt(1 - NET_CORRELATION**2) * rng.standard_normal(k)
            length = predicted["mean_length_cm"][index] * np.exp(NET_LENGTH_SD_LOG * e_l)
            weight = predicted["mean_weight_g"][index] * np.exp(NET_WEIGHT_SD_LOG * e_w)
            sample = replace(sample, mean_length_cm=length, mean_weight_g=weight)
        elif isinstance(sample, OriginSamples):       # beta-binomial at the truth's reading probability
            p = np.clip(sample.predict(spec, truth_state, truth_u)["p_read_hatchery"][index], 1e-9, 1 - 1e-9)
            n = np.asarray(sample.n_examined)
            rho = np.where(n > 1, (np.asarray(sample.design_effect) - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
            safe = np.where(rho > 0, np.minimum(rho, 1.0 - 1e-9), 0.5)
            p_draw = np.where(rho > 0, rng.beta(p * (1 - safe) / safe, (1 - p) * (1 - safe) / safe), p)
            sample = replace(sample, n_hatchery=rng.binomial(n, p_draw))
        samples.append(sample)
    changes["samples"] = tuple(samples)
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


def simulate_replicates(result: FitResult, n_replicates: int, seed: int = 20260601, *,
                        truths: str = "posterior") -> tuple[NDArray, list[ModelSpec], list[int]]:
    """The simulated truths and data sets of :func:`self_test`, without refitting.

    ``truths = "posterior"`` (default) draws each replicate's fixed effects from the fit's normal
    approximation ``N(θ̂, Σ)``: the intervals are Bayesian, so they are calibrated averaged over
    what the fit believes, and a single truth at the centre of the priors (``"estimate"``, WHAM's
    choice) over-covers wherever a prior dominates. Returns ``truth (n_replicates, 3)``
    (:data:`SELF_TEST_QUANTITIES` of each simulated truth),
    one spec per replicate holding its simulated data, and each refit's multistart seed. All
    truths run through the engine as one batch; replicate r draws from stream r of
    ``SeedSequence(seed).spawn(n_replicates)``: rec devs, observation errors, the refit seed.
    """
    if n_replicates < 1:
        raise FitError(f"n_replicates: expected at least 1, got {n_replicates}")
    if truths not in ("posterior", "estimate"):
        raise FitError(f"truths: expected 'posterior' or 'estimate', got {truths!r}")
    spec = result.spec
    n_free = len(spec.estimated)
    n_dev = len(spec.rec_dev_years)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_replicates)]
    sigma_r = float(np.asarray(predict(spec, result.theta)[1].params.sigma_r).reshape(-1)[0])
    thetas = np.repeat(np.asarray(result.theta, float)[None, :], n_replicates, axis=0)
    fixed = result.covariance[:n_free, :n_free] if result.covariance is not None else None
    for r, rng in enumerate(streams):
        thetas[r, n_free:] = sigma_r * rng.standard_normal(n_dev)
        if truths == "posterior" and fixed is not None:
            thetas[r, :n_free] = rng.multivariate_normal(result.theta[:n_free], fixed, method="eigh")
    truth_state, truth_u = predict(spec, thetas)
    survey_t = np.asarray(survey_prediction_t(spec, truth_state, truth_u), float)
    sd = np.asarray(observation_sd(spec, truth_u), float) * np.ones_like(survey_t)
    specs = [_simulated_spec(spec, truth_state, truth_u, r, survey_t, sd, rng)
             for r, rng in enumerate(streams)]
    seeds = [int(rng.integers(2**31)) for rng in streams]
    return _quantities(truth_state), specs, seeds


def self_test(result: FitResult, n_replicates: int = 20, seed: int = 20260601, *,
              n_starts: int = 1, warm_start: bool = True, truths: str = "posterior") -> SelfTestResult:
    """Simulation self-test of the fitted model (WHAM ``self_test``; SS3 bootstrap/ss3sim).

    Method (:func:`simulate_replicates`): the truth of replicate r has fixed effects drawn from
    ``N(θ̂, Σ)`` (``truths = "posterior"``; ``"estimate"``: the fit itself) and new recruitment
    deviations ``ε_y ~ N(0, σ_R)`` for every rec-dev year (WHAM's ``conditional = FALSE``); all truths run
    through the engine as ONE batch (``predict(spec, thetas)``, ``thetas (n_replicates, n)``).
    Data: the same years and CVs, ``log B_obs = log(q·B_true) + σ_y·z`` with ``z`` N(0, 1),
    AR(1) with the fit's ρ when the survey errors are AR(1), σ_y the fit's observation SD (the
    likelihood's median-unbiased lognormal); the net sample from its own bivariate lognormal; other data are
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
    truth, simulated, refit_seeds = simulate_replicates(result, n_replicates, seed, truths=truths)
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
    return SelfTestResult(replicates=describe(rep, described, seed=seed),
                          summary=describe(summary, described, seed=seed), n_replicates=n_replicates,
                          n_converged=int(converged.sum()), seed=seed,
                          runtime_s=time.perf_counter() - start)
