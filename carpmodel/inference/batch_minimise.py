"""Batched quasi-Newton minimisation in whitened coordinates: many related problems (peels,
profile points, simulated data sets) searched at once, each row in its own coordinates
``θ = centre + L·y`` where one unit of ``y`` is about one posterior SD.

Each row runs BFGS with a backtracking line search, then Newton steps with central-difference
Hessians, re-whitening at its end point and stepping off saddle points along negative
curvature; every objective call evaluates all active rows in one engine batch.
:func:`carpmodel.inference.refit.refit_many` is the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import CarpmodelError
from carpmodel.inference.fitting import GRADIENT_TOLERANCE
from carpmodel.inference.numdiff import central_gradient, hessian_from_values, positive_definite

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

#: ``(rows (k,), thetas (k, m, n)) → NLL (k, m)``: the objective of problem rows ``rows`` at
#: ``m`` parameter vectors each; +inf where the engine refuses a vector
BatchObjective = Callable[[NDArray, NDArray], NDArray]

#: engine evaluations per call (memory: about 0.4 kB per evaluation per year and age array)
MAX_BATCH = 12000
#: errors that mean "the engine refuses these parameters" (the objective is then +inf)
ENGINE_ERRORS = (CarpmodelError, FloatingPointError, ValueError, np.linalg.LinAlgError)
#: ``(rows (k,), thetas (k, n)) → Hessians (k, n, n)`` on the estimation scale (NaN where refused)
ThetaHessian = Callable[[NDArray, NDArray], NDArray]


def whitening(matrix: NDArray | None) -> NDArray | None:
    """``T`` with ``Tᵀ·M·T = I`` for the positive definite version of ``M`` (:func:`positive_definite`);
    None when ``M`` is None or not finite."""
    if matrix is None or not np.all(np.isfinite(matrix)):
        return None
    values, vectors = np.linalg.eigh(positive_definite(matrix))
    return vectors / np.sqrt(values)


def safe_values(values: BatchObjective, rows: NDArray, thetas: NDArray) -> NDArray:
    """``values(rows, thetas)`` with +inf where not finite; a batch the engine refuses is split
    (rows, then points) until the refused vectors are found."""
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(values(rows, thetas), float)
    except ENGINE_ERRORS:
        k, m = thetas.shape[:2]
        if k > 1:
            half = k // 2
            return np.concatenate([safe_values(values, rows[:half], thetas[:half]),
                                   safe_values(values, rows[half:], thetas[half:])])
        if m > 1:
            half = m // 2
            return np.concatenate([safe_values(values, rows, thetas[:, :half]),
                                   safe_values(values, rows, thetas[:, half:])], axis=1)
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
        out[start:start + chunk] = safe_values(values, rows[start:start + chunk], thetas[start:start + chunk])
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
