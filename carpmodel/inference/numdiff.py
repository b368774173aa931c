"""Finite differences, the search box and eigenvalue floors: the one home of the numerical
derivatives every optimiser and sampler uses.

Every function takes a *batched* function ``f: (..., n) → (...)`` (the objective evaluates any
number of parameter vectors in one engine call), so a gradient costs one call of ``2n + 1``
rows and a Hessian one call of ``n² + n + 1`` (from values) or ``2n·(2n + 1)`` rows (central
differences of gradients), whatever the batch.

- :func:`central_gradient`: ``(f(x + h·eᵢ) − f(x − h·eᵢ))/2h``; one-sided next to the edge of the
  region where ``f`` is finite, 0 where neither side is.
- :func:`hessian_from_gradients`: central differences of central gradients, symmetrised (what
  :func:`carpmodel.inference.fitting.fit` reports its covariance from).
- :func:`hessian_from_values`: the ``n² + n + 1``-point second-order formulas (Abramowitz &
  Stegun 25.3.23, 25.3.27), a quarter of the engine runs (the batched refit's).
- :func:`search_box` / :func:`clip_to_box`: the box on the estimation scale every optimiser
  searches in: ±:data:`FREE_HALF_WIDTH` around the start value of each free parameter,
  ±:data:`REC_DEV_BOUND` for a recruitment deviation.
- :func:`positive_definite` and :func:`floor_eigenvalues`: symmetric matrices made usable as
  curvature or proposal scales (eigenvalues floored at :data:`EIGENVALUE_FLOOR` of the largest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "EIGENVALUE_FLOOR",
    "FREE_HALF_WIDTH",
    "REC_DEV_BOUND",
    "central_gradient",
    "clip_to_box",
    "floor_eigenvalues",
    "hessian_from_gradients",
    "hessian_from_values",
    "positive_definite",
    "search_box",
]

#: ``(..., n) → (...)``: a function evaluated on any number of points at once
BatchFunction = Callable[[NDArray], NDArray]

#: half-width of the search box around each free parameter's start value (estimation scale)
FREE_HALF_WIDTH = 15.0
#: bound of a recruitment deviation in the search box (log scale)
REC_DEV_BOUND = 6.0
#: eigenvalues below this fraction of the largest are floored there
EIGENVALUE_FLOOR = 1e-8


def central_gradient(f: BatchFunction, x: Any, step: float) -> tuple[NDArray, NDArray]:
    """Values and central-difference gradients of ``f`` at points ``x (..., n)``: ONE call of
    ``f`` on ``(..., 2n + 1, n)`` points. Returns ``(f(x) (...), gradient (..., n))``.

    Next to the edge of the region where ``f`` is finite the difference is one-sided; where
    neither neighbour (or the centre) is finite the gradient is 0, so an optimiser sees a flat
    wall rather than NaN.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    offsets = np.concatenate([np.zeros((1, n)), step * np.eye(n), -step * np.eye(n)])
    values = np.asarray(f(x[..., None, :] + offsets))
    centre, plus, minus = values[..., :1], values[..., 1:n + 1], values[..., n + 1:]
    with np.errstate(invalid="ignore"):
        grad = np.where(np.isfinite(plus) & np.isfinite(minus), (plus - minus) / (2 * step),
                        np.where(np.isfinite(plus), (plus - centre) / step,
                                 np.where(np.isfinite(minus), (centre - minus) / step, 0.0)))
    grad = np.where(np.isfinite(centre), grad, 0.0)
    return values[..., 0], grad


def hessian_from_gradients(f: BatchFunction, x: Any, step: float, gradient_step: float) -> NDArray:
    """Hessian ``(n, n)`` of ``f`` at ``x (n,)`` from central differences (step ``step``) of central
    gradients (step ``gradient_step``), symmetrised: one call of ``f`` on ``2n·(2n + 1)`` points."""
    x = np.asarray(x, dtype=float)
    n = x.size
    points = np.concatenate([x + step * np.eye(n), x - step * np.eye(n)])
    _, grads = central_gradient(f, points, gradient_step)
    h = (grads[:n] - grads[n:]) / (2 * step)
    return 0.5 * (h + h.T)


def hessian_from_values(f: BatchFunction, x: Any, step: float) -> NDArray:
    """Hessians ``(..., n, n)`` of ``f`` at points ``x (..., n)`` from ``n² + n + 1`` values each
    (O(h²) central formulas): ``H_ii = (f₊ᵢ − 2f₀ + f₋ᵢ)/h²``,
    ``H_ij = (f₊ᵢ₊ⱼ + f₋ᵢ₋ⱼ − f₊ᵢ − f₋ᵢ − f₊ⱼ − f₋ⱼ + 2f₀)/(2h²)``; NaN where a point is not finite."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    h = step
    iu, ju = np.triu_indices(n, k=1)
    eye = np.eye(n)
    pairs = eye[iu] + eye[ju]
    offsets = np.concatenate([np.zeros((1, n)), h * eye, -h * eye, h * pairs, -h * pairs])
    values = np.asarray(f(x[..., None, :] + offsets))
    values = np.where(np.isfinite(values), values, np.nan)
    f0, fp, fm = values[..., 0], values[..., 1:n + 1], values[..., n + 1:2 * n + 1]
    fpp, fmm = values[..., 2 * n + 1:2 * n + 1 + iu.size], values[..., 2 * n + 1 + iu.size:]
    hess = np.empty(x.shape[:-1] + (n, n))
    hess[..., np.arange(n), np.arange(n)] = (fp - 2 * f0[..., None] + fm) / h**2
    off = (fpp + fmm - fp[..., iu] - fm[..., iu] - fp[..., ju] - fm[..., ju] + 2 * f0[..., None]) / (2 * h**2)
    hess[..., iu, ju] = off
    hess[..., ju, iu] = off
    return hess


def search_box(start: Any, n_free: int) -> tuple[NDArray, NDArray]:
    """Lower and upper bounds of the search on the estimation scale: ``start ± FREE_HALF_WIDTH``
    for the first ``n_free`` (free) parameters, ``±REC_DEV_BOUND`` for the rest (recruitment
    deviations, centred on 0)."""
    start = np.asarray(start, dtype=float)
    free = np.arange(start.size) < n_free
    centre = np.where(free, start, 0.0)
    half = np.where(free, FREE_HALF_WIDTH, REC_DEV_BOUND)
    return centre - half, centre + half


def clip_to_box(x: Any, start: Any, n_free: int) -> NDArray:
    """``x`` clipped to :func:`search_box`."""
    low, high = search_box(start, n_free)
    return np.clip(np.asarray(x, dtype=float), low, high)


def floor_eigenvalues(matrix: Any, floor: float = EIGENVALUE_FLOOR) -> NDArray:
    """A symmetric ``matrix`` with its eigenvalues raised to at least ``floor`` × the largest: a
    usable covariance or proposal shape from a nearly singular one (returned unchanged when no
    eigenvalue is below that). ValueError when no eigenvalue is positive."""
    matrix = np.asarray(matrix, float)
    values, vectors = np.linalg.eigh(matrix)
    low = floor * max(float(values.max()), 0.0)
    if low <= 0:
        raise ValueError("the matrix has no positive eigenvalue")
    if values.min() >= low:
        return matrix
    return (vectors * np.maximum(values, low)) @ vectors.T


def positive_definite(matrix: Any, floor: float = EIGENVALUE_FLOOR) -> NDArray:
    """A positive definite matrix with the same eigenvectors: eigenvalues replaced by their
    absolute values, floored at ``floor`` × the largest |eigenvalue| (a Newton step on a saddle
    then goes downhill in every direction)."""
    values, vectors = np.linalg.eigh(0.5 * (np.asarray(matrix, float) + np.asarray(matrix, float).T))
    low = floor * max(float(np.max(np.abs(values))), 1e-12)
    return (vectors * np.maximum(np.abs(values), low)) @ vectors.T
