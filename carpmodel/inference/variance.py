"""The survey's observation error, estimated by the linearised marginal likelihood.

Recruitment deviations and the age deviations of a depleted start are random effects: with 12
surveys and ~33 deviations, a joint MAP of deviations and survey SD has no interior optimum
(the deviations fit every survey and the SD runs to 0). The SD ``σ_s`` (and the AR(1)
coefficient ρ of the residuals, when asked for) is therefore estimated from the likelihood of
the surveys with the deviations integrated out, in the linearised form of Lindstrom & Bates
(1990, Biometrics 46: 673–687):

- at the fit's mode, ``J = ∂ log(q·B_y)/∂u`` (finite differences, one engine batch) and the
  pseudo-data ``y* = log B_obs − log(q·B̂) + J·û``;
- ``y* ~ Normal(0, V)``, ``V = σ_R²·J·Jᵀ + Ω(σ_s, ρ)``, ``Ω_ij = σ_i·σ_j·ρ^|t_i − t_j|``,
  ``σ_i = σ_s·cv_i/0.15``; its NLL plus the prior of ``σ_s`` (life_history ``sigma_survey``)
  is minimised over ``(log σ_s[, atanh ρ])``;
- the model is refitted at the new ``σ_s, ρ`` and the two steps alternate until ``σ_s`` moves
  by less than :data:`RELATIVE_TOLERANCE` (:func:`fit_with_survey_error`).

The residuals to judge this by are one-step-ahead residuals (Thygesen et al. 2017, Environ.
Ecol. Stat. 24: 317–339): ``L⁻¹·y*`` with ``V = L·Lᵀ`` in time order, independent N(0, 1)
under the model, so their SD (SDNR) is near 1 and a runs test applies. Conditional residuals
``y − ŷ`` at the mode are shrunk by the deviations that fitted them and have SD < σ.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from carpmodel.errors import ConvergenceWarning
from carpmodel.inference.likelihood import predict, survey_prediction_t
from carpmodel.inference.spec import CV_REFERENCE, INITIAL_DEV_FIELD, ModelSpec

__all__ = ["SurveyError", "fit_with_survey_error", "survey_error"]

#: the alternation stops once sigma_survey moves by less than this fraction
RELATIVE_TOLERANCE = 0.01
#: at most this many refits
MAX_ALTERNATIONS = 8
#: step of the Jacobian's central differences in the deviations (log scale)
JACOBIAN_STEP = 1e-4
#: |ρ| stays below this (AR(1) of the survey residuals)
RHO_BOUND = 0.95


@dataclass(frozen=True)
class SurveyError:
    """The estimated survey observation error and what the residuals say about it.

    ``sigma_survey`` (log-scale SD at CV 0.15) and ``rho`` (AR(1) coefficient, 0 without AR) with
    their standard errors (delta method from the marginal NLL's curvature; NaN when not
    estimated); ``osa_residuals`` the one-step-ahead residuals at the survey years; ``sdnr`` their
    SD; ``conditional_sdnr`` the SD of the conditional residuals ``(log B_obs − log q·B̂)/σ_y``;
    ``iterations`` the refits made; ``converged`` whether the alternation settled.
    """

    sigma_survey: float
    sigma_survey_se: float
    rho: float
    rho_se: float
    osa_residuals: NDArray
    sdnr: float
    conditional_sdnr: float
    marginal_nll: float
    iterations: int
    converged: bool
    method: str = ("linearised marginal likelihood (Lindstrom & Bates 1990) over the recruitment and "
                   "initial-age deviations; one-step-ahead residuals (Thygesen et al. 2017)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (NaN becomes None)."""
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None
        return {"sigma_survey": num(self.sigma_survey), "sigma_survey_se": num(self.sigma_survey_se),
                "rho": num(self.rho), "rho_se": num(self.rho_se), "sdnr": num(self.sdnr),
                "conditional_sdnr": num(self.conditional_sdnr), "marginal_nll": num(self.marginal_nll),
                "iterations": self.iterations, "converged": self.converged, "method": self.method,
                "osa_residuals": [num(x) for x in self.osa_residuals]}


def _deviation_index(spec: ModelSpec) -> NDArray:
    names = spec.parameter_names
    return np.array([i for i, name in enumerate(names)
                     if name.startswith("rec_dev_") or INITIAL_DEV_FIELD.match(name)], dtype=int)


def _log_prediction(spec: ModelSpec, theta: NDArray) -> NDArray:
    state, u = predict(spec, theta)
    return np.log(survey_prediction_t(spec, state, u))


def _linearised(spec: ModelSpec, theta: NDArray) -> tuple[NDArray, NDArray, float]:
    """``(y*, J, σ_R)`` at ``theta``: pseudo-data and the Jacobian of the log survey prediction
    in the deviations (one engine batch of ``2k + 1`` rows)."""
    index = _deviation_index(spec)
    theta = np.asarray(theta, float)
    k = index.size
    points = np.repeat(theta[None], 2 * k + 1, axis=0)
    points[1 + np.arange(k), index] += JACOBIAN_STEP
    points[1 + k + np.arange(k), index] -= JACOBIAN_STEP
    with np.errstate(all="ignore"):
        values = _log_prediction(spec, points)
    jac = ((values[1:k + 1] - values[k + 1:]) / (2 * JACOBIAN_STEP)).T        # (n_obs, k)
    residual = np.log(spec.observations.biomass_t) - values[0]
    _, u = predict(spec, theta)
    sigma_r = float(np.asarray(u.params.sigma_r).reshape(-1)[0])
    return residual + jac @ theta[index], jac, sigma_r


def _covariance(spec: ModelSpec, jac: NDArray, sigma_r: float, sigma: float, rho: float) -> NDArray:
    years = np.asarray(spec.observations.year, dtype=float)
    sd = sigma * spec.observations.cv / CV_REFERENCE
    lag = np.abs(years[:, None] - years[None, :])
    omega = np.outer(sd, sd) * (np.power(rho, lag) if rho != 0.0 else np.eye(years.size))
    return sigma_r**2 * jac @ jac.T + omega


def _marginal_nll(spec: ModelSpec, pseudo: NDArray, jac: NDArray, sigma_r: float, sigma: float,
                  rho: float, prior: Any) -> float:
    v = _covariance(spec, jac, sigma_r, sigma, rho)
    try:
        chol = np.linalg.cholesky(v)
    except np.linalg.LinAlgError:
        return float("inf")
    z = np.linalg.solve(chol, pseudo)
    value = float(np.sum(np.log(np.diag(chol))) + 0.5 * z @ z + 0.5 * pseudo.size * np.log(2 * np.pi))
    return value - (float(prior.logpdf(sigma)) if prior is not None else 0.0)


def survey_error(spec: ModelSpec, theta: NDArray, *, ar1: bool, prior: Any = None,
                 start: tuple[float, float] = (0.1, 0.0)) -> tuple[float, float, float, NDArray]:
    """``(σ_s, ρ, marginal NLL, standard errors (2,))`` maximising the linearised marginal
    likelihood at the mode ``theta`` of ``spec`` (ρ = 0 unless ``ar1``)."""
    pseudo, jac, sigma_r = _linearised(spec, theta)

    def unpack_z(z: NDArray) -> tuple[float, float]:
        return float(np.exp(z[0])), (RHO_BOUND * float(np.tanh(z[1])) if ar1 else 0.0)

    def f(z: NDArray) -> float:
        sigma, rho = unpack_z(z)
        return _marginal_nll(spec, pseudo, jac, sigma_r, sigma, rho, prior)

    z0 = np.array([np.log(start[0]), np.arctanh(start[1] / RHO_BOUND) if ar1 else 0.0])
    dim = 2 if ar1 else 1
    result = minimize(lambda z: f(np.concatenate([z, [0.0]])[:2]) if dim == 1 else f(z), z0[:dim],
                      method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    z = np.concatenate([result.x, [0.0]])[:2]
    sigma, rho = unpack_z(z)
    # curvature of the marginal NLL in z: standard errors by the delta method
    step = 1e-3
    h = np.empty((dim, dim))
    fz = f(z)
    for i in range(dim):
        for j in range(dim):
            e_i, e_j = np.eye(2)[i] * step, np.eye(2)[j] * step
            h[i, j] = (f(z + e_i + e_j) - f(z + e_i - e_j) - f(z - e_i + e_j)
                       + f(z - e_i - e_j)) / (4 * step**2)
    se = np.full(2, np.nan)
    if np.all(np.isfinite(h)) and np.all(np.linalg.eigvalsh(h) > 0):
        cov = np.linalg.inv(h)
        se[0] = sigma * np.sqrt(cov[0, 0])
        if ar1:
            se[1] = RHO_BOUND * (1 - np.tanh(z[1]) ** 2) * np.sqrt(cov[1, 1])
    return sigma, rho, fz, se


def osa_residuals(spec: ModelSpec, theta: NDArray, sigma: float, rho: float) -> NDArray:
    """One-step-ahead residuals ``L⁻¹·y*`` (time order), N(0, 1) under the linearised model."""
    pseudo, jac, sigma_r = _linearised(spec, theta)
    chol = np.linalg.cholesky(_covariance(spec, jac, sigma_r, sigma, rho))
    return np.linalg.solve(chol, pseudo)


def fit_with_survey_error(spec: ModelSpec, fit_once: Any, *, ar1: bool,
                          prior: Any = None) -> tuple[Any, SurveyError]:
    """Alternate ``fit_once(spec, start) -> FitResult`` at a fixed survey error with the
    marginal-likelihood step for ``σ_s`` (and ρ), until ``σ_s`` settles; returns the last fit
    (its spec carries the estimated ``sigma_survey`` and ``survey_rho``) and the estimate, or
    ``(None, None)`` when the first fit fails (``fit_once`` returned None)."""
    sigma, rho = float(spec.sigma_survey), float(spec.survey_rho)
    result, start, converged, marginal, se = None, None, False, float("nan"), np.full(2, np.nan)
    iterations = 0
    for iterations in range(1, MAX_ALTERNATIONS + 1):          # noqa: B007
        spec = replace(spec, sigma_survey=sigma, survey_rho=rho)
        attempt = fit_once(spec, start)
        if attempt is None:                    # a refit that failed: keep the last fit
            break
        result = attempt
        start = result.theta
        new_sigma, new_rho, marginal, se = survey_error(spec, result.theta, ar1=ar1, prior=prior,
                                                        start=(sigma, rho))
        settled = abs(new_sigma / sigma - 1.0) < RELATIVE_TOLERANCE and abs(new_rho - rho) < 0.01
        sigma, rho = new_sigma, new_rho
        if settled:
            converged = True
            break
    if result is None:
        return None, None
    if not converged:
        warnings.warn(f"the survey error did not settle in {MAX_ALTERNATIONS} refits (sigma_survey "
                      f"{sigma:.3g})", ConvergenceWarning, stacklevel=2)
    state, u = predict(result.spec, result.theta)
    sd = sigma * result.spec.observations.cv / CV_REFERENCE
    predicted = survey_prediction_t(result.spec, state, u)
    residual = np.log(result.spec.observations.biomass_t) - np.log(predicted)
    osa = osa_residuals(result.spec, result.theta, result.spec.sigma_survey, result.spec.survey_rho)
    error = SurveyError(sigma_survey=float(result.spec.sigma_survey), sigma_survey_se=float(se[0]),
                        rho=float(result.spec.survey_rho), rho_se=float(se[1]), osa_residuals=osa,
                        sdnr=float(np.sqrt(np.mean(osa**2))),
                        conditional_sdnr=float(np.sqrt(np.mean((residual / sd) ** 2))),
                        marginal_nll=float(marginal), iterations=iterations, converged=converged)
    return result, error

