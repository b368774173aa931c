"""The one robust refit used inside the diagnostics and the studies (temperature test, power, monitoring).

A refit fits a spec near an optimum that is already known: a retrospective peel from the full
fit, a profile point from its neighbour, a simulated data set from the estimates that generated
it, a model with one more parameter from the nested one. :func:`refit` does that for one spec
and :func:`refit_many` for many specs of the same structure (simulation replicates), both with
:func:`carpmodel.inference.fitting.fit` (the real fit's procedure, from the priors' centres) as the
"cold" alternative, tried first or as the fallback.

The warm fit (:func:`minimise`)
    The search runs in whitened coordinates ``y``: ``θ = c + T·y`` with ``Tᵀ·H·T ≈ I``, ``H`` the
    Hessian of a related fit matched by parameter name (:func:`map_hessian`), so one unit of y
    is about one posterior SD in every direction. In θ the Hessian is badly conditioned
    (curvature ~3e5 in log initial F, whose value sets the depleted 2000 stock, against ~0.5 on
    the steepness–M–γ ridge); in y a quasi-Newton search from a warm start needs a few dozen
    gradients. A batched BFGS with backtracking (each row its own inverse-Hessian estimate, from
    the identity; steps capped at :data:`MAX_STEP_Y` per coordinate) runs to max |gradient in
    y| < :data:`TIGHT`; then the Hessian is computed ONCE at the end point, and only a row whose
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
    ``fitting.hessian``'s; step :data:`HESSIAN_STEP_Y`), recomputed after each Newton step, and
    re-whitens a row whose Hessian in y is far from the identity (there its steps do not fit).

Convergence is judged as :func:`~carpmodel.inference.fitting.fit` does: positive definite Hessian, max
|gradient in θ| < ``GRADIENT_TOLERANCE`` and (for fit results) no logit estimate beyond
±``LOGIT_BOUND``. Gradient step in y: :data:`GRADIENT_STEP_Y`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import CarpmodelError, ConvergenceWarning, FitError
from carpmodel.inference.fitting import GRADIENT_TOLERANCE, LOGIT_BOUND, FitResult, fit, hessian
from carpmodel.inference.likelihood import nll_components, objective
from carpmodel.inference.numdiff import (
    central_gradient,
    hessian_from_values,
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

#: engine evaluations per call (memory: about 0.4 kB per evaluation per year and age array)
MAX_BATCH = 12000
#: central-difference step of gradients in whitened coordinates y (one unit ≈ one posterior SD)
GRADIENT_STEP_Y = 1e-4
#: step of the second-order central Hessian formula in y
HESSIAN_STEP_Y = 1e-2
#: max |gradient in y| at which the quasi-Newton iterations stop (θ-gradients well below 1e-3)
TIGHT = 1e-7
#: BFGS iterations per descent, and Newton steps after it at most
BFGS_ITERATIONS = 80
NEWTON_ITERATIONS = 12
#: largest change of one coordinate of y in a step (about 3 posterior SDs; a trust cap)
MAX_STEP_Y = 3.0
#: step lengths (y scale) tried along negative curvature at a saddle point
ESCAPE_SCALES = (1.0, 0.3, 0.1, 0.03, 0.01)
#: rounds of re-centring and re-whitening a row at its end point
REWHITEN_ROUNDS = 3
#: a Hessian in y is "well scaled" (finite-difference steps accurate) with eigenvalues in this range
WELL_SCALED = (1.0 / 50.0, 50.0)
#: errors that mean "the engine refuses these parameters" (the objective is then +inf)
ENGINE_ERRORS = (CarpmodelError, FloatingPointError, ValueError, np.linalg.LinAlgError)

#: ``(rows (k,), thetas (k, m, n)) → NLL (k, m)``: the objective of problem rows ``rows`` at
#: ``m`` parameter vectors each; +inf where the engine refuses a vector
BatchObjective = Callable[[NDArray, NDArray], NDArray]
#: ``(rows (k,), thetas (k, n)) → Hessians (k, n, n)`` on the estimation scale (NaN where refused)
ThetaHessian = Callable[[NDArray, NDArray], NDArray]


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


def whitening(matrix: NDArray | None) -> NDArray | None:
    """``T`` with ``Tᵀ·M·T = I`` for the positive definite version of ``M`` (:func:`positive_definite`);
    None when ``M`` is None or not finite."""
    if matrix is None or not np.all(np.isfinite(matrix)):
        return None
    values, vectors = np.linalg.eigh(positive_definite(matrix))
    return vectors / np.sqrt(values)


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
    values = _safe(spec_objective(spec), np.array([0]), candidates[None])[0]
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


def _safe(values: BatchObjective, rows: NDArray, thetas: NDArray) -> NDArray:
    """``values(rows, thetas)`` with +inf where not finite; a batch the engine refuses is split
    (rows, then points) until the refused vectors are found."""
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(values(rows, thetas), float)
    except ENGINE_ERRORS:
        k, m = thetas.shape[:2]
        if k > 1:
            half = k // 2
            return np.concatenate([_safe(values, rows[:half], thetas[:half]),
                                   _safe(values, rows[half:], thetas[half:])])
        if m > 1:
            half = m // 2
            return np.concatenate([_safe(values, rows, thetas[:, :half]),
                                   _safe(values, rows, thetas[:, half:])], axis=1)
        return np.full((k, m), np.inf)
    return np.where(np.isfinite(out), out, np.inf)


# ----------------------------------------------------------------------------- whitened search


@dataclass(frozen=True)
class Coordinates:
    """Whitened coordinates of R rows: ``θ = centre[r] + transform[r]·y`` (θ on the estimation scale)."""

    centre: NDArray      # (R, n)
    transform: NDArray   # (R, n, n)

    def to_theta(self, y: NDArray, rows: NDArray) -> NDArray:
        """θ of points ``y (k, [m,] n)`` of rows ``rows (k,)``."""
        centre, transform = self.centre[rows], self.transform[rows]
        if y.ndim == 2:
            return centre + np.einsum("kij,kj->ki", transform, y)
        return centre[:, None, :] + np.einsum("kij,kmj->kmi", transform, y)

    def recentred(self, rows: NDArray, centre: NDArray, local: NDArray) -> Coordinates:
        """Rows ``rows`` re-centred at ``centre (k, n)`` (θ) with ``transform·local`` as transform."""
        new_centre, new_transform = self.centre.copy(), self.transform.copy()
        new_centre[rows] = centre
        new_transform[rows] = np.einsum("kij,kjl->kil", self.transform[rows], local)
        return Coordinates(new_centre, new_transform)


@dataclass(frozen=True)
class BatchRefit:
    """The end of :func:`minimise` for each of R rows.

    ``y``, ``value``, ``gradient_y``, ``hessian_y`` and ``covariance_y`` (NaN where the Hessian is
    not positive definite) are in the final ``coordinates``; ``theta``, ``gradient`` (``T⁻ᵀ·g_y``),
    ``hessian`` (``T⁻ᵀ·H_y·T⁻¹``) and ``covariance`` (``T·H_y⁻¹·Tᵀ``) on the estimation scale.
    ``converged`` as :func:`carpmodel.inference.fitting.fit`: positive definite Hessian and max |gradient
    in θ| < GRADIENT_TOLERANCE (logit bounds are checked by :func:`warm_fits`).
    """

    coordinates: Coordinates
    y: NDArray
    value: NDArray
    gradient_y: NDArray
    hessian_y: NDArray
    covariance_y: NDArray
    theta: NDArray
    gradient: NDArray
    hessian: NDArray
    covariance: NDArray
    positive_definite: NDArray
    converged: NDArray
    n_gradients: int


@dataclass
class _Counter:
    gradients: int = 0


def _evaluate(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray) -> NDArray:
    """Objective at points ``y (k, m, n)`` of rows ``rows``, in chunks of at most MAX_BATCH runs."""
    thetas = coords.to_theta(y, rows)
    k, m, _ = thetas.shape
    chunk = max(1, MAX_BATCH // m)
    out = np.empty((k, m))
    for start in range(0, k, chunk):
        out[start:start + chunk] = _safe(values, rows[start:start + chunk], thetas[start:start + chunk])
    return out


def _gradient(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray,
              counter: _Counter) -> tuple[NDArray, NDArray]:
    """NLL and central-difference gradient in y of each row, ``(k,)``, ``(k, n)``
    (:func:`carpmodel.inference.numdiff.central_gradient`)."""
    counter.gradients += rows.size
    return central_gradient(lambda points: _evaluate(values, coords, rows, points), y, GRADIENT_STEP_Y)


def central_hessian(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray,
                    step: float = HESSIAN_STEP_Y) -> NDArray:
    """Hessian in y of each row from ``n² + n + 1`` points
    (:func:`carpmodel.inference.numdiff.hessian_from_values`); NaN where a point is not finite."""
    return hessian_from_values(lambda points: _evaluate(values, coords, rows, points), y, step)


def _line_search_step(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray,
                      value: NDArray, grad: NDArray, direction: NDArray, alpha: NDArray,
                      counter: _Counter) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Try ``y + α·d`` (d capped at MAX_STEP_Y per coordinate); Armijo acceptance."""
    cap = np.minimum(1.0, MAX_STEP_Y / np.maximum(np.max(np.abs(direction), axis=1), 1e-300))
    step = (alpha * cap)[:, None] * direction
    trial = y + step
    v_new, g_new = _gradient(values, coords, rows, trial, counter)
    slope = np.sum(grad * step, axis=1)
    decrease = v_new <= value + 1e-4 * np.minimum(slope, 0) + 1e-10
    ok = np.isfinite(v_new) & np.all(np.isfinite(g_new), axis=1) & decrease
    return ok, trial, v_new, g_new


def _bfgs(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray, value: NDArray,
          grad: NDArray, counter: _Counter) -> tuple[NDArray, NDArray, NDArray]:
    """Batched BFGS with backtracking from the identity (each row its own inverse-Hessian
    estimate); stops at max |gradient| < TIGHT or when a row's step shrinks below 1e-4."""
    y, value, grad = y.copy(), value.copy(), grad.copy()
    k, n = y.shape
    inv = np.repeat(np.eye(n)[None], k, axis=0)
    alpha = np.ones(k)
    failed = ~np.isfinite(value)
    eye = np.eye(n)
    for _ in range(BFGS_ITERATIONS):
        active = (np.max(np.abs(grad), axis=1) > TIGHT) & ~failed
        if not active.any():
            break
        a = np.flatnonzero(active)
        direction = -np.einsum("kij,kj->ki", inv[a], grad[a])
        ok, trial, v_new, g_new = _line_search_step(values, coords, rows[a], y[a], value[a], grad[a],
                                                    direction, alpha[a], counter)
        for j in np.flatnonzero(ok):
            r = a[j]
            s_vec, y_vec = trial[j] - y[r], g_new[j] - grad[r]
            sy = float(s_vec @ y_vec)
            if sy > 1e-12:
                rho = 1.0 / sy
                left = eye - rho * np.outer(s_vec, y_vec)
                inv[r] = left @ inv[r] @ left.T + rho * np.outer(s_vec, s_vec)
        good, bad = a[ok], a[~ok]
        y[good], value[good], grad[good] = trial[ok], v_new[ok], g_new[ok]
        alpha[good] = 1.0
        alpha[bad] /= 4.0
        failed[bad] = alpha[bad] < 1e-4
    return y, value, grad


def _newton(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray, value: NDArray,
            grad: NDArray, hessians: NDArray, counter: _Counter) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """One Newton step per row with its (positive-definite-modified) Hessian and step-halving."""
    y, value, grad = y.copy(), value.copy(), grad.copy()
    direction = -np.linalg.solve(np.stack([positive_definite(h) for h in hessians]), grad[..., None])[..., 0]
    alpha = np.ones(rows.size)
    moved = np.zeros(rows.size, bool)
    pending = np.ones(rows.size, bool)
    for _ in range(8):
        if not pending.any():
            break
        a = np.flatnonzero(pending)
        ok, trial, v_new, g_new = _line_search_step(values, coords, rows[a], y[a], value[a], grad[a],
                                                    direction[a], alpha[a], counter)
        good = a[ok]
        y[good], value[good], grad[good] = trial[ok], v_new[ok], g_new[ok]
        moved[good] = True
        pending[good] = False
        alpha[a[~ok]] /= 2.0
    return y, value, grad, moved


def _hessians(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray,
              theta_hessian: ThetaHessian | None) -> NDArray:
    """Hessian in y of each row: the central formula in y, or ``Tᵀ·H_θ·T`` from ``theta_hessian``."""
    if theta_hessian is None:
        return central_hessian(values, coords, rows, y)
    h_theta = np.asarray(theta_hessian(rows, coords.to_theta(y, rows)), float)
    transform = coords.transform[rows]
    return np.einsum("kji,kjl,klm->kim", transform, h_theta, transform)


def _descend(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray, counter: _Counter,
             theta_hessian: ThetaHessian | None) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """BFGS, then the Hessian once; Newton steps only for rows whose gradient is still above
    TIGHT. With the central formula in y (cheap) the Hessian is recomputed after every Newton
    step; with ``theta_hessian`` the steps reuse it (chord method) and it is recomputed once at
    the end for the rows that moved. Returns y, NLL, gradient and Hessian (in y) per row."""
    value, grad = _gradient(values, coords, rows, y, counter)
    y, value, grad = _bfgs(values, coords, rows, y, value, grad, counter)
    hess = _hessians(values, coords, rows, y, theta_hessian)
    moved_any = np.zeros(rows.size, bool)
    for _ in range(NEWTON_ITERATIONS):
        loose = np.flatnonzero((np.max(np.abs(grad), axis=1) > TIGHT) & np.isfinite(value)
                               & np.all(np.isfinite(hess), axis=(1, 2)))
        if not loose.size:
            break
        y2, v2, g2, moved = _newton(values, coords, rows[loose], y[loose], value[loose], grad[loose],
                                    hess[loose], counter)
        y[loose], value[loose], grad[loose] = y2, v2, g2
        again = loose[moved]
        if not again.size:
            break
        moved_any[again] = True
        if theta_hessian is None:
            hess[again] = central_hessian(values, coords, rows[again], y[again])
    if theta_hessian is not None and moved_any.any():
        hess[moved_any] = _hessians(values, coords, rows[moved_any], y[moved_any], theta_hessian)
    return y, value, grad, hess


def _escape_saddles(values: BatchObjective, coords: Coordinates, rows: NDArray, y: NDArray,
                    value: NDArray, hess: NDArray) -> tuple[NDArray, NDArray]:
    """Step along ± the eigenvector of the most negative Hessian eigenvalue (ESCAPE_SCALES; one
    engine batch); returns the new y and whether the NLL fell."""
    candidates = []
    for h in hess:
        vector = np.linalg.eigh(h)[1][:, 0]
        candidates.append(np.concatenate([c * vector[None] for c in ESCAPE_SCALES]
                                         + [-c * vector[None] for c in ESCAPE_SCALES]))
    points = y[:, None, :] + np.stack(candidates)
    f = _evaluate(values, coords, rows, points)
    best = np.argmin(f, axis=1)
    lowest = f[np.arange(rows.size), best]
    moved = lowest < value - 1e-8
    return np.where(moved[:, None], points[np.arange(rows.size), best], y), moved


def _well_scaled(hess: NDArray) -> NDArray:
    """Rows whose Hessian in y is finite with eigenvalues in WELL_SCALED (the steps fit)."""
    out = np.zeros(hess.shape[0], bool)
    for r, h in enumerate(hess):
        if np.all(np.isfinite(h)):
            eig = np.linalg.eigvalsh(h)
            out[r] = eig[0] >= WELL_SCALED[0] and eig[-1] <= WELL_SCALED[1]
    return out


def minimise(values: BatchObjective, coords: Coordinates, *,
             theta_hessian: ThetaHessian | None = None) -> BatchRefit:
    """Minimise every row from y = 0 (θ = ``coords.centre``) in whitened coordinates (module notes).

    :func:`_descend` from the identity, then up to REWHITEN_ROUNDS rounds for the rows that need
    it: re-centred at their end point and re-whitened with their Hessian there, they descend
    again, and a row stopped at a saddle point steps off it along the negative curvature and
    descends once more. Which rows need it: with the central formula in y (``theta_hessian``
    None), those whose Hessian in y is not well scaled (its finite-difference steps do not fit,
    :data:`WELL_SCALED`); with ``theta_hessian`` (e.g. :func:`carpmodel.inference.fitting.hessian`, whose
    accuracy does not depend on the coordinates) those not yet converged.
    """
    n_rows, n = coords.centre.shape
    rows = np.arange(n_rows)
    counter = _Counter()
    y, value, grad, hess = _descend(values, coords, rows, np.zeros((n_rows, n)), counter, theta_hessian)
    for _ in range(REWHITEN_ROUNDS):
        finite = np.all(np.isfinite(hess), axis=(1, 2)) & np.isfinite(value)
        if theta_hessian is None:
            redo = np.flatnonzero(finite & ~_well_scaled(hess))
        else:
            done = _batch_refit(coords, rows, y, value, grad, hess, 0).converged
            redo = np.flatnonzero(finite & ~done)
        if not redo.size:
            break
        local = np.stack([whitening(h) for h in hess[redo]])
        coords = coords.recentred(redo, coords.to_theta(y[redo], redo), local)
        y[redo] = 0.0
        y[redo], value[redo], grad[redo], hess[redo] = _descend(values, coords, redo, y[redo], counter,
                                                                theta_hessian)
        saddle = redo[[bool(np.all(np.isfinite(h)) and np.linalg.eigvalsh(h)[0] <= 0) for h in hess[redo]]]
        if saddle.size:
            moved_y, moved = _escape_saddles(values, coords, saddle, y[saddle], value[saddle], hess[saddle])
            again = saddle[moved]
            if again.size:
                y[again], value[again], grad[again], hess[again] = _descend(
                    values, coords, again, moved_y[moved], counter, theta_hessian)
    return _batch_refit(coords, rows, y, value, grad, hess, counter.gradients)


def _batch_refit(coords: Coordinates, rows: NDArray, y: NDArray, value: NDArray, grad: NDArray,
                 hess: NDArray, n_gradients: int) -> BatchRefit:
    n_rows, n = y.shape
    transform = coords.transform
    inverse = np.linalg.inv(transform)                                   # T⁻¹
    grad_theta = np.einsum("kji,kj->ki", inverse, grad)                  # T⁻ᵀ·g
    hess_theta = np.einsum("kji,kjl,klm->kim", inverse, hess, inverse)   # T⁻ᵀ·H·T⁻¹
    covariance_y = np.full_like(hess, np.nan)
    positive = np.zeros(n_rows, bool)
    for r in rows:
        if np.all(np.isfinite(hess[r])) and np.all(np.linalg.eigvalsh(0.5 * (hess[r] + hess[r].T)) > 0):
            covariance_y[r] = np.linalg.inv(hess[r])
            positive[r] = True
    covariance = np.einsum("kij,kjl,kml->kim", transform, covariance_y, transform)
    converged = positive & np.isfinite(value) & (np.max(np.abs(grad_theta), axis=1) < GRADIENT_TOLERANCE)
    return BatchRefit(coordinates=coords, y=y, value=value, gradient_y=grad, hessian_y=hess,
                      covariance_y=covariance_y, theta=coords.to_theta(y, rows), gradient=grad_theta,
                      hessian=hess_theta, covariance=covariance, positive_definite=positive,
                      converged=converged, n_gradients=n_gradients)


def refine_whitening(values: BatchObjective, theta: NDArray, transform: NDArray) -> NDArray:
    """``T·W`` with ``W`` whitening the Hessian in ``T``'s coordinates at ``theta`` (row 0 of
    ``values``; one Hessian in y): a rough Hessian in θ gives ``T``, this makes ``Tᵀ·H·T`` ≈ I
    at the Hessian step that suits it. ``transform`` itself when the Hessian is not finite."""
    coords = Coordinates(np.asarray(theta, float)[None], np.asarray(transform, float)[None])
    local = whitening(central_hessian(values, coords, np.array([0]), np.zeros((1, theta.size)))[0])
    return transform if local is None else transform @ local


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
