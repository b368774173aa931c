"""The one robust refit used inside the diagnostics and the studies (temperature test, power, monitoring).

A refit fits a spec near an optimum that is already known: a retrospective peel from the full
fit, a profile point from its neighbour, a simulated data set from the estimates that generated
it, a model with one more parameter from the nested one. :func:`refit` does that for one spec
and :func:`refit_many` for many specs of the same structure (simulation replicates), both with
:func:`carpmodel.inference.fitting.fit` (the real fit's procedure, from the priors' centres) as the
"cold" alternative, tried first or as the fallback.

The warm fit (:func:`minimise`, in :mod:`carpmodel.inference.batch_minimise`)
    The search runs in whitened coordinates ``y``: ``θ = c + T·y`` with ``Tᵀ·H·T ≈ I``, ``H`` the
    Hessian of a related fit matched by parameter name (:func:`map_hessian`), so one unit of y
    is about one posterior SD in every direction. In θ the Hessian is badly conditioned
    (curvature ~3e5 in log initial F, whose value sets the depleted 2000 stock, against ~0.5 on
    the steepness–M–γ ridge); in y a quasi-Newton search from a warm start needs a few dozen
    gradients. A batched BFGS with backtracking (each row its own inverse-Hessian estimate, from
    the identity; steps capped at ``MAX_STEP_Y`` per coordinate) runs to max |gradient in
    y| < ``TIGHT``; then the Hessian is computed ONCE at the end point, and only a row whose
    gradient is still loose takes Newton steps. A row that needs it is re-centred at its end
    point, re-whitened with its Hessian there and descends again; a saddle point is left along
    the negative curvature. All rows of a batch (e.g. 20 self-test replicates) are evaluated in
    one engine call per iteration: the engine is data-free, so one ``predict`` serves every data
    set (:func:`stacked_objective`). The covariance in θ is ``T·H_y⁻¹·Tᵀ``.

Two Hessians
    :func:`refit` and :func:`refit_many` use :func:`carpmodel.inference.fitting.hessian` at the end point
    (``theta_hessian``): the Hessian the real fit reports, so a refit's standard errors are the
    ones ``fit`` would give there (on the ridge parameters its finite-difference error is a few
    per cent; whitened coordinates from another data set are not close enough to the identity
    for the cheaper formula below to do better). The monitoring design, whose coordinates are
    whitened at the truth for noise-free data of each design, uses the second-order central
    formula in y (:func:`central_hessian`: ``n² + n + 1`` engine runs, a quarter of
    ``fitting.hessian``'s; step ``HESSIAN_STEP_Y``), recomputed after each Newton step, and
    re-whitens a row whose Hessian in y is far from the identity (there its steps do not fit).

Convergence is judged as :func:`~carpmodel.inference.fitting.fit` does: positive definite Hessian, max
|gradient in θ| < ``GRADIENT_TOLERANCE`` and (for fit results) no logit estimate beyond
±``LOGIT_BOUND``. Gradient step in y: ``GRADIENT_STEP_Y``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import ConvergenceWarning, FitError
from carpmodel.inference.batch_minimise import (
    ENGINE_ERRORS,
    BatchObjective,
    BatchRefit,
    Coordinates,
    ThetaHessian,
    central_hessian,
    minimise,
    refine_whitening,
    safe_values,
    whitening,
)
from carpmodel.inference.fitting import GRADIENT_TOLERANCE, LOGIT_BOUND, FitResult, fit, hessian
from carpmodel.inference.likelihood import nll_components, objective
from carpmodel.inference.numdiff import (
    positive_definite,
    search_box,
)
from carpmodel.inference.spec import ModelSpec

__all__ = [
    "BatchObjective",
    "BatchRefit",
    "Coordinates",
    "better",
    "central_hessian",
    "finite_start",
    "map_hessian",
    "map_start",
    "minimise",
    "positive_definite",
    "refine_whitening",
    "refit",
    "refit_many",
    "safe_hessian",
    "spec_hessians",
    "spec_objective",
    "stacked_objective",
    "warm_fits",
    "whitening",
]


# ----------------------------------------------------------------------------- starts and scales


def map_start(source: FitResult, spec: ModelSpec) -> NDArray:
    """A start vector for ``spec`` from a fit of a related spec, matched by parameter name.

    Parameters the source does not have keep ``spec``'s start value (the prior centre, or zero
    for a recruitment deviation); parameters the target does not have are dropped.
    """
    values = dict(zip(source.parameter_names, np.asarray(source.theta, float), strict=True))
    start = spec.initial_theta()
    return np.array([values.get(name, start[i]) for i, name in enumerate(spec.parameter_names)])


def map_hessian(source: FitResult, spec: ModelSpec) -> NDArray | None:
    """The Hessian of a related fit on ``spec``'s parameters (θ scale), matched by name.

    A free parameter the source lacks gets its prior's precision ``1/sd²`` on the diagonal
    (1 without a prior or an ``sd``); a recruitment deviation it lacks gets 1. None when the
    source has no finite Hessian.
    """
    if source.hessian is None or not np.all(np.isfinite(source.hessian)):
        return None
    index = {name: i for i, name in enumerate(source.parameter_names)}
    names = spec.parameter_names
    h = np.zeros((len(names), len(names)))
    known = [(i, index[name]) for i, name in enumerate(names) if name in index]
    if known:
        rows, cols = (np.array(v, int) for v in zip(*known, strict=True))
        h[np.ix_(rows, rows)] = np.asarray(source.hessian, float)[np.ix_(cols, cols)]
    for i, name in enumerate(names):
        if name in index:
            continue
        free = spec.estimated[i] if i < len(spec.estimated) else None
        parameters = free.prior.parameters if free is not None and free.prior is not None else {}
        sd = parameters.get("sd", parameters.get("sd_log"))
        h[i, i] = 1.0 / float(sd) ** 2 if sd else 1.0
    return h


def safe_hessian(spec: ModelSpec, theta: NDArray) -> NDArray | None:
    """:func:`carpmodel.inference.fitting.hessian` (θ scale), None where the engine refuses or it is
    not finite."""
    try:
        with np.errstate(all="ignore"):
            h = hessian(spec, np.asarray(theta, float))
    except ENGINE_ERRORS:
        return None
    return h if np.all(np.isfinite(h)) else None


def finite_start(spec: ModelSpec, preferred: NDArray, seed: int = 0, n_dispersed: int = 40) -> NDArray:
    """``preferred`` (clipped to the fit's box) if the objective is finite there, else the best
    finite point among: steps from it towards the priors' centres, the centres, and
    ``n_dispersed`` points dispersed around the centres as ``fit``'s multi-start does
    (N(0, 0.5) on the estimation scale); one engine batch. FitError when none is finite (the
    model's initial state is empty at every candidate: initial F past the crash F?)."""
    low, high = search_box(spec.initial_theta(), len(spec.estimated))
    preferred = np.clip(np.asarray(preferred, float), low, high)
    centre = spec.initial_theta()
    n_free = len(spec.estimated)
    dispersed = np.repeat(centre[None], n_dispersed, axis=0)
    dispersed[:, :n_free] += np.random.default_rng(seed).normal(0.0, 0.5, (n_dispersed, n_free))
    toward = [(1 - a) * preferred + a * centre for a in (0.25, 0.5, 0.75)]
    candidates = np.vstack([preferred[None], *[t[None] for t in toward], centre[None], dispersed])
    values = safe_values(spec_objective(spec), np.array([0]), candidates[None])[0]
    if np.isfinite(values[0]):
        return preferred
    if not np.any(np.isfinite(values)):
        raise FitError("no start found where the objective is finite (the model's initial state "
                       "is empty at every candidate: initial F past the crash F?)")
    return candidates[int(np.argmin(values))]


# ----------------------------------------------------------------------------- objectives


def spec_objective(spec: ModelSpec) -> BatchObjective:
    """The :data:`BatchObjective` of one spec (row 0): :func:`carpmodel.inference.likelihood.objective`."""

    def values(rows: NDArray, thetas: NDArray) -> NDArray:
        return np.asarray(objective(spec, thetas), float).reshape(thetas.shape[:2])

    return values


def _same_but_biomass(a: ModelSpec, b: ModelSpec) -> bool:
    """True when two specs differ at most in their observed biomass values."""
    for f in fields(ModelSpec):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "observations":
            same = all(np.array_equal(getattr(x, g), getattr(y, g)) for g in ("year", "cv", "early"))
        else:
            same = x is y or (isinstance(x, tuple | bool | type(None)) and x == y)
        if not same:
            return False
    return True


def stacked_objective(specs: Sequence[ModelSpec]) -> BatchObjective:
    """The :data:`BatchObjective` of several specs of one structure, row r being ``specs[r]``.

    When the specs differ only in their observed biomass (the simulation self-test), every row
    runs in ONE engine call: the observations enter as a ``(k, 1, n_obs)`` array that broadcasts
    against the ``(k, m)`` batch, the arithmetic of :func:`~carpmodel.inference.likelihood.objective`
    unchanged. Otherwise one engine call per row.
    """
    specs = tuple(specs)
    first = specs[0]
    if all(_same_but_biomass(first, s) for s in specs[1:]):
        biomass = np.stack([np.asarray(s.observations.biomass_t, float) for s in specs])

        def stacked(rows: NDArray, thetas: NDArray) -> NDArray:
            obs = replace(first.observations, biomass_t=biomass[rows][:, None, :])
            return np.asarray(objective(replace(first, observations=obs), thetas), float)

        return stacked

    def each(rows: NDArray, thetas: NDArray) -> NDArray:
        return np.stack([np.asarray(objective(specs[r], thetas[i]), float) for i, r in enumerate(rows)])

    return each


# ----------------------------------------------------------------------------- fit results


def _at_bound(spec: ModelSpec, theta: NDArray) -> list[str]:
    """Logit-scale estimates beyond ±LOGIT_BOUND: on a bound of their range (as ``fit`` reports)."""
    return [f.name for i, f in enumerate(spec.estimated)
            if f.transform == "logit" and abs(theta[i]) > LOGIT_BOUND]


def _fit_result(spec: ModelSpec, batch: BatchRefit, r: int, runtime_s: float, method: str) -> FitResult:
    """Row ``r`` of a batch as a :class:`FitResult` with the convergence report of ``fit``."""
    theta = batch.theta[r]
    components = {k: float(v) for k, v in nll_components(spec, theta).items()}
    h = batch.hessian[r]
    positive = bool(batch.positive_definite[r])
    eigen = np.linalg.eigvalsh(0.5 * (h + h.T)) if positive else np.array([np.nan])
    grad = batch.gradient[r]
    max_grad = float(np.max(np.abs(grad)))
    bound = _at_bound(spec, theta)
    converged = bool(batch.converged[r] and not bound and np.isfinite(sum(components.values())))
    notes = []
    if max_grad >= GRADIENT_TOLERANCE:
        notes.append(f"largest |gradient| {max_grad:.2g} exceeds {GRADIENT_TOLERANCE:g}")
    if not positive:
        notes.append("the Hessian is not positive definite: no covariance, standard errors undefined")
    if bound:
        notes.append(f"estimate(s) at a bound of their range: {', '.join(bound)}")
    return FitResult(
        spec=spec, theta=theta, parameter_names=spec.parameter_names,
        nll=float(sum(components.values())), nll_components=components, gradient=grad, hessian=h,
        covariance=batch.covariance[r] if positive else None, converged=converged,
        hessian_positive_definite=positive,
        condition_number=float(eigen.max() / eigen.min()) if positive else float("inf"),
        optimizer={"method": method, "message": "", "iterations": 0,
                   "function_evaluations": int(batch.n_gradients)},
        runtime_s=runtime_s, multistart_nll=(float(batch.value[r]),), warnings=tuple(notes))


def spec_hessians(specs: Sequence[ModelSpec]) -> ThetaHessian:
    """:func:`carpmodel.inference.fitting.hessian` of ``specs[r]`` for each row r (NaN where it fails): the
    Hessian :func:`~carpmodel.inference.fitting.fit` reports, so a refit's covariance is the real fit's."""
    specs = tuple(specs)

    def hessians(rows: NDArray, thetas: NDArray) -> NDArray:
        out = np.full((rows.size, thetas.shape[1], thetas.shape[1]), np.nan)
        for i, r in enumerate(rows):
            h = safe_hessian(specs[r], thetas[i])
            if h is not None:
                out[i] = h
        return out

    return hessians


def warm_fits(specs: Sequence[ModelSpec], starts: NDArray, scale: NDArray | None) -> list[FitResult]:
    """Warm fits of specs of one structure from ``starts (R, n)``, all rows in one search.

    ``scale`` is a Hessian (θ scale) whose whitening sets the coordinates of every row (None:
    the Hessian at the first start, or the identity where that fails). Starts where the
    objective is not finite are moved to a finite point first (:func:`finite_start`). The
    Hessian at each end point is :func:`carpmodel.inference.fitting.hessian`'s, as the real fit's.
    """
    clock = time.perf_counter()
    specs = tuple(specs)
    starts = np.stack([finite_start(s, x) for s, x in zip(specs, np.atleast_2d(starts), strict=True)])
    if scale is None:
        scale = safe_hessian(specs[0], starts[0])
    transform = whitening(scale)
    if transform is None:
        transform = np.eye(starts.shape[1])
    coords = Coordinates(starts, np.repeat(transform[None], len(specs), axis=0))
    batch = minimise(stacked_objective(specs), coords, theta_hessian=spec_hessians(specs))
    runtime = (time.perf_counter() - clock) / len(specs)
    return [_fit_result(s, batch, r, runtime, "whitened BFGS from a warm start (carpmodel.inference.refit)")
            for r, s in enumerate(specs)]


def better(a: FitResult | None, b: FitResult | None) -> FitResult | None:
    """The converged one; of two converged (or two not), the one with the smaller objective."""
    if a is None or b is None:
        return a if b is None else b
    if a.converged != b.converged:
        return a if a.converged else b
    return a if a.nll <= b.nll else b


# ----------------------------------------------------------------------------- the refit


def refit_many(specs: Sequence[ModelSpec], *, start: NDArray | None = None, source: FitResult | None = None,
               n_starts: int = 1, seeds: Sequence[int] | None = None, cold_first: bool = False,
               try_both: bool = False, label: str = "refit") -> list[FitResult | None]:
    """Refit specs of one structure (e.g. simulated data sets), robustly and without per-fit warnings.

    Two attempts per spec: *warm*, :func:`warm_fits` of every spec not yet converged in one
    batched search, from ``start`` (one vector or one per spec; default
    ``map_start(source, spec)``, else the priors' centres) with the whitening of
    ``map_hessian(source, spec)``; and *cold*, :func:`carpmodel.inference.fitting.fit` with ``n_starts``
    and the spec's seed (the real fit's procedure). ``cold_first`` sets the order; the second
    attempt runs only for specs whose first did not converge, unless ``try_both``. The better
    of the two (:func:`better`) is kept. Convergence is reported in the callers' tables, so the
    ConvergenceWarnings of single fits are silenced; a spec whose refit fails outright gives
    ``None`` and one ConvergenceWarning naming ``label``.
    """
    specs = tuple(specs)
    seeds = [20260601] * len(specs) if seeds is None else list(seeds)
    results: list[FitResult | None] = [None] * len(specs)
    errors: list[list[str]] = [[] for _ in specs]
    for attempt in (("cold", "warm") if cold_first else ("warm", "cold")):
        todo = [r for r, res in enumerate(results) if try_both or res is None or not res.converged]
        if not todo:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            if attempt == "warm":
                new = _warm_attempt([specs[r] for r in todo], start, source, todo, errors)
            else:
                new = [_cold_attempt(specs[r], n_starts, seeds[r], errors[r]) for r in todo]
        for r, result in zip(todo, new, strict=True):
            results[r] = better(results[r], result)
    for r, result in enumerate(results):
        if result is None:
            name = label if len(specs) == 1 else f"{label} {r}"
            warnings.warn(f"{name}: fit failed ({'; '.join(errors[r])})", ConvergenceWarning, stacklevel=3)
    return results


def _cold_attempt(spec: ModelSpec, n_starts: int, seed: int, errors: list[str]) -> FitResult | None:
    try:
        return fit(spec, n_starts=n_starts, seed=seed)
    except ENGINE_ERRORS as error:
        errors.append(f"cold start: {type(error).__name__}: {str(error)[:160]}")
        return None


def _warm_attempt(specs: list[ModelSpec], start: NDArray | None, source: FitResult | None,
                  rows: list[int], errors: list[list[str]]) -> list[FitResult | None]:
    if start is not None:
        given = np.atleast_2d(np.asarray(start, float))
        starts = given[rows] if given.shape[0] > 1 else np.repeat(given, len(specs), axis=0)
    elif source is not None:
        starts = np.stack([map_start(source, s) for s in specs])
    else:
        starts = np.stack([s.initial_theta() for s in specs])
    scale = map_hessian(source, specs[0]) if source is not None else None
    try:
        return list(warm_fits(specs, starts, scale))
    except ENGINE_ERRORS as error:
        if len(specs) > 1:      # one bad spec must not sink the batch: each on its own
            return [_warm_attempt([s], x[None], source, [0], [errors[r]])[0]
                    for s, x, r in zip(specs, starts, rows, strict=True)]
        errors[rows[0]].append(f"warm start: {type(error).__name__}: {str(error)[:160]}")
        return [None]


def refit(spec: ModelSpec, *, start: NDArray | None = None, source: FitResult | None = None,
          n_starts: int = 1, seed: int = 20260601, cold_first: bool = True, try_both: bool = False,
          label: str = "refit") -> FitResult | None:
    """Fit one spec inside a diagnostic, robustly (:func:`refit_many` of one spec).

    ``source`` is a fit of a related spec (the full fit of a peel, the neighbouring profile
    point, the nested model): its estimates and Hessian, matched by parameter name, give the
    warm start and its whitened coordinates. ``cold_first`` tries :func:`carpmodel.inference.fitting.fit`
    first; ``try_both`` runs both attempts and keeps the better.
    """
    return refit_many([spec], start=start, source=source, n_starts=n_starts, seeds=[seed],
                      cold_first=cold_first, try_both=try_both, label=label)[0]
