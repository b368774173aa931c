"""Maximum a-posteriori fitting with batched finite-difference gradients and Hessian.

The gradient of the NLL is computed by central differences evaluated as ONE batch of
``2n + 1`` perturbed parameter vectors through the engine; the Hessian by central differences
of those gradients (one batch of ``2n·(2n + 1)`` vectors). scipy's L-BFGS-B finds the optimum,
then Newton steps with the Hessian polish it. The covariance is the inverse Hessian on the
estimation scale (``theta``), which is what projections draw from.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from carpmodel.errors import ConvergenceWarning, FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.likelihood import feasible_start, nll_components, objective
from carpmodel.inference.numdiff import central_gradient, hessian_from_gradients, search_box
from carpmodel.inference.spec import F_FIELD, INITIAL_DEV_FIELD, ModelSpec
from carpmodel.io.config import RunConfig, default_config

#: step of the central-difference gradient on the estimation scale
GRADIENT_STEP = 1e-5
#: step of the central difference of gradients that gives the Hessian
HESSIAN_STEP = 1e-4
#: a fit counts as converged when the largest |gradient| is below this (FIMS uses 1e-2)
GRADIENT_TOLERANCE = 1e-3
#: a logit-scale estimate beyond ±this sits on a bound of its range (natural value within
#: 5e-5 of the range's width from the bound): reported, and the fit is not called converged
LOGIT_BOUND = 10.0
#: L-BFGS-B stops once the largest |gradient| is below this (:data:`GRADIENT_TOLERANCE`/100, where
#: the Newton polish would stop too); a tighter tolerance is below the finite-difference gradient's
#: noise (~1e-7 at the default fit), and L-BFGS-B then spent a fifth of its evaluations failing
#: line searches there
LBFGS_GRADIENT_TOLERANCE = GRADIENT_TOLERANCE / 100
#: L-BFGS-B ending with a larger |gradient| (or failing its line search) gets a rescaled second pass
RESCALE_GRADIENT = 1e-2
#: condition numbers above this are reported as a warning (FIMS threshold)
CONDITION_WARNING = 1e8
#: NLL rise (absolute) within which a Newton polish step is still accepted when it shrinks the
#: largest |gradient|: near the optimum the NLL (~10) moves by ~1e-9 per step, the level of
#: rounding and of the engine's iterative solves (equilibrium, F from catch), so it cannot
#: rank such steps; the gradient can
POLISH_NLL_NOISE = 1e-8
#: NLL components that are data on the stock (they enter AICc); the others are priors,
#: penalties, the recruitment deviations and the catch (see :meth:`FitResult.aicc`)
AICC_DATA_COMPONENTS = ("biomass", "net_sample", "biomass_upper_bound", "hatchery_fraction",
                        "hatchery_samples", "juvenile_index", "origin_samples")



def batched_gradient(spec: ModelSpec, thetas: NDArray,
                     step: float = GRADIENT_STEP) -> tuple[NDArray, NDArray]:
    """NLL and its central-difference gradient at each row of ``thetas (m, n)``: one engine call
    (:func:`carpmodel.inference.numdiff.central_gradient`)."""
    return central_gradient(lambda x: objective(spec, x), np.atleast_2d(thetas), step)


def hessian(spec: ModelSpec, theta: NDArray, step: float = HESSIAN_STEP) -> NDArray:
    """Central differences of batched gradients, symmetrised, (n, n)
    (:func:`carpmodel.inference.numdiff.hessian_from_gradients`)."""
    return hessian_from_gradients(lambda x: objective(spec, x), theta, step, GRADIENT_STEP)


def aicc_parameters(spec: ModelSpec) -> int:
    """Parameters k of AICc: the estimated fixed effects, without the recruitment deviations,
    the age deviations of a depleted start (``initial_dev_aN``, penalised like them) and the
    catch-error F's ``f_YYYY``.

    Recruitment deviations are penalised random effects (integrated out in a state-space
    model), not free parameters. The F's of catch with error (``ModelSpec.catch_sd_log``) are
    nuisance parameters of the catch component: each is matched to the one catch observation
    of its year, which the survey does not see, and with sd_log 0.2 the fitted catches stay
    within a few per cent of the record. The two other counts are worse. With the F's in k but
    the catches not in n, k exceeds n (the 1956 start estimates 45 F's; there are 12 surveys)
    and AICc is +inf. With the catches in n and the catch NLL in NLL_data as well, each fished
    year adds one to n and one to k, so ``n − k − 1`` stays 5 while k grows from 6 to 51: the
    small-sample term grows from 17 to ~1,060 for parameters that only reproduce their own
    catch, and AICc then ranks starts by how many fished years they include. Left out
    together, every variant is scored on the same data (the surveys, n = 12 by default) with k
    its structural parameters: a catch-error fit has the k of the exact-catch fit of the same
    structure (where F is solved from the catch, not estimated). What it leaves uncounted is
    the small freedom the catch errors give the survey fit; the ``catch`` component of
    ``nll_components`` shows its cost.
    """
    return sum(1 for f in spec.estimated if not (F_FIELD.match(f.field) or INITIAL_DEV_FIELD.match(f.field)))


def aicc_data_points(spec: ModelSpec) -> int:
    """Data points n of the AICc data components (:data:`AICC_DATA_COMPONENTS`): biomass
    observations, plus the hatchery-fraction points, the upper-bound statement, the
    hatchery-origin samples and the juvenile-index points when those components are on. The
    catch observations are not counted (see :func:`aicc_parameters`)."""
    return int(spec.observations.year.size + len(spec.hatchery_fractions)
               + (spec.upper_bound is not None) + len(spec.hatchery_samples)
               + len(spec.juvenile_index) + sum(s.n_data for s in spec.samples))


def aicc_value(nll_data: float, k: int, n: int) -> float:
    """``2·NLL + 2k + 2k(k+1)/(n − k − 1)``; +inf when ``n − k − 1 ≤ 0`` (Burnham & Anderson
    2002, Model Selection and Multimodel Inference, §2.4)."""
    if n - k - 1 <= 0:
        return float("inf")
    return float(2.0 * nll_data + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1))


@dataclass(frozen=True)
class FitResult:
    """A finished fit: estimates on the estimation scale, uncertainty, and how it went."""

    spec: ModelSpec
    theta: NDArray
    parameter_names: tuple[str, ...]
    nll: float
    nll_components: dict[str, float]
    gradient: NDArray
    hessian: NDArray
    covariance: NDArray | None
    converged: bool
    hessian_positive_definite: bool
    condition_number: float
    optimizer: dict[str, Any]
    runtime_s: float
    multistart_nll: tuple[float, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    survey_error: Any = None     # carpmodel.inference.variance.SurveyError when estimated

    @property
    def max_abs_gradient(self) -> float:
        return float(np.max(np.abs(self.gradient)))

    @property
    def worst_gradient_parameter(self) -> str:
        return self.parameter_names[int(np.argmax(np.abs(self.gradient)))]

    @property
    def std_errors(self) -> NDArray:
        if self.covariance is None:
            return np.full(self.theta.size, np.nan)
        return np.sqrt(np.diag(self.covariance))

    @property
    def n_parameters(self) -> int:
        return int(self.theta.size)

    @property
    def aic(self) -> float:
        """``2·NLL + 2·n_parameters`` of the whole MAP objective (priors, recruitment deviations
        and, with catch error, the catch and its F's included; fit.json ``aic``). Priors make
        it no model-selection criterion; compare models by :attr:`aicc`."""
        return 2.0 * self.nll + 2.0 * self.n_parameters

    @property
    def nll_data(self) -> float:
        """NLL of the data components that enter AICc (:data:`AICC_DATA_COMPONENTS`)."""
        return float(sum(v for c, v in self.nll_components.items() if c in AICC_DATA_COMPONENTS))

    @property
    def n_data(self) -> int:
        """Data points n of :attr:`nll_data` (:func:`aicc_data_points`)."""
        return aicc_data_points(self.spec)

    @property
    def k_aicc(self) -> int:
        """Parameters k counted by :attr:`aicc` (:func:`aicc_parameters`)."""
        return aicc_parameters(self.spec)

    @property
    def aicc(self) -> float:
        """Small-sample AIC on the data components: ``2·NLL_data + 2k + 2k(k+1)/(n − k − 1)``,
        +inf when ``n − k − 1 ≤ 0`` (Hurvich & Tsai 1989, Biometrika 76: 297–307).

        n and k are those of :func:`aicc_data_points` and :func:`aicc_parameters`: the survey
        (and other data components) against the structural parameters. The catch component and
        the catch-error F's ``f_YYYY`` are left out together, see :func:`aicc_parameters`.
        """
        return aicc_value(self.nll_data, self.k_aicc, self.n_data)

    @property
    def at_bound(self) -> tuple[str, ...]:
        """Logit-scale estimates beyond ±:data:`LOGIT_BOUND` (on a bound of their range)."""
        return tuple(f.name for i, f in enumerate(self.spec.estimated)
                     if f.transform == "logit" and abs(float(self.theta[i])) > LOGIT_BOUND)

    @property
    def interior_converged(self) -> bool:
        """Converged on the parameters inside their range: what ``converged`` says with the
        estimates at a bound (:attr:`at_bound`) left out — largest |gradient| of the others
        below :data:`GRADIENT_TOLERANCE`, the Hessian restricted to them positive definite, a
        finite NLL. At a bound the gradient of that coordinate vanishes (the logistic is flat
        there) and its curvature is ~0, so the full Hessian is singular whatever the others do;
        this says whether the rest of the fit is sound."""
        names = self.parameter_names
        bound = set(self.at_bound)
        keep = np.array([i for i, name in enumerate(names) if name not in bound], dtype=int)
        if keep.size == 0 or not np.isfinite(self.nll):
            return False
        if float(np.max(np.abs(self.gradient[keep]))) >= GRADIENT_TOLERANCE:
            return False
        return bool(np.all(np.linalg.eigvalsh(self.hessian[np.ix_(keep, keep)]) > 0))

    @property
    def multistart_agree(self) -> bool:
        return bool(self.multistart_nll) and float(np.ptp(self.multistart_nll)) < 1e-3

    def natural_estimates(self) -> dict[str, dict[str, float]]:
        """Each free parameter on its natural scale: estimate and delta-method SE."""
        out = {}
        se = self.std_errors
        for i, free in enumerate(self.spec.estimated):
            value = float(free.from_theta(self.theta[i]))
            # d(natural)/d(theta) for the delta method
            eps = 1e-6
            slope = float((free.from_theta(self.theta[i] + eps) - free.from_theta(self.theta[i] - eps))
                          / (2 * eps))
            out[free.field] = {"estimate": value, "std_error": abs(slope) * se[i]}
        return out


def _minimise(spec: ModelSpec, start: NDArray, max_iter: int) -> tuple[NDArray, Any]:
    """L-BFGS-B from ``start``; when it stops short (line-search failure, or |gradient| above
    :data:`RESCALE_GRADIENT`), a second pass from where it stopped on a diagonally rescaled
    theta (:func:`diagonal_scale`), keeping whichever end is lower."""
    res = _lbfgsb(spec, start, None, max_iter)
    if res.success and np.max(np.abs(res.jac)) <= RESCALE_GRADIENT:
        return res.x, res
    again = _lbfgsb(spec, res.x, diagonal_scale(spec, res.x), max_iter)
    if again.fun <= res.fun:
        again.nit += res.nit
        again.nfev += res.nfev
        return again.x, again
    return res.x, res


def _lbfgsb(spec: ModelSpec, start: NDArray, scale: NDArray | None, max_iter: int) -> Any:
    """L-BFGS-B on theta (``scale`` None) or on ``z = (theta − start)/scale``, within the usual
    box; ``x`` and ``jac`` of the result are on the theta scale."""
    origin = np.zeros_like(start) if scale is None else start
    factor = np.ones_like(start) if scale is None else scale

    def to_theta(z: NDArray) -> NDArray:
        return z if scale is None else origin + factor * z

    def fun(z: NDArray) -> tuple[float, NDArray]:
        value, grad = batched_gradient(spec, to_theta(z))
        if not np.isfinite(value[0]):
            return 1e10, np.zeros_like(z)
        return float(value[0]), grad[0] * factor

    lower, upper = search_box(spec.initial_theta(), len(spec.estimated))
    bounds = list(zip((lower - origin) / factor, (upper - origin) / factor, strict=True))
    res = minimize(fun, (start - origin) / factor, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "ftol": 1e-15, "gtol": LBFGS_GRADIENT_TOLERANCE,
                            "maxcor": 30})
    res.x = to_theta(res.x)
    res.jac = res.jac / factor
    return res


def diagonal_scale(spec: ModelSpec, theta: NDArray, step: float = 1e-2) -> NDArray:
    """``1/sqrt(|H_ii|)`` from second differences of the NLL (one batch), at most 1: each theta
    coordinate measured in units of its curvature, so the optimiser's first steps have sensible
    lengths. Coordinates where the difference is not finite keep scale 1."""
    n = theta.size
    points = np.concatenate([theta[None], theta + step * np.eye(n), theta - step * np.eye(n)])
    values = objective(spec, points)
    with np.errstate(invalid="ignore"):
        curvature = np.abs(values[1:n + 1] - 2.0 * values[0] + values[n + 1:]) / step**2
    curvature = np.where(np.isfinite(curvature), curvature, 1.0)
    return 1.0 / np.sqrt(np.maximum(curvature, 1.0))


def _newton_polish(spec: ModelSpec, theta: NDArray, max_steps: int = 4) -> tuple[NDArray, NDArray, NDArray]:
    """Polish with Newton steps (chord method: the Hessian is reused between steps and
    recomputed once at the end if any step was taken); step-halving if the NLL rises by more
    than 1e-10, or by more than :data:`POLISH_NLL_NOISE` when the step shrinks the gradient.

    Logit estimates on a bound of their range (beyond ±:data:`LOGIT_BOUND`) are held where they
    are and the step is solved for the others: there the curvature is ~0 (the logistic is flat),
    so a full Newton step would run off along that coordinate, be rejected, and leave the other
    parameters unpolished (a flat release-survival prior with Lorenzen c = 1.5 ended with
    |gradient| 1.3e-3 in log M that way)."""
    value, grad = batched_gradient(spec, theta)
    h = hessian(spec, theta)
    n_free = len(spec.estimated)
    held = np.zeros(theta.size, dtype=bool)
    held[:n_free] = [f.transform == "logit" and abs(float(theta[i])) > LOGIT_BOUND
                     for i, f in enumerate(spec.estimated)]
    moved = False
    for _ in range(max_steps):
        if np.max(np.abs(grad[0])) < LBFGS_GRADIENT_TOLERANCE:
            break
        try:
            if np.any(held):
                free = ~held
                direction = np.zeros(theta.size)
                direction[free] = -np.linalg.solve(h[np.ix_(free, free)], grad[0][free])
            else:
                direction = -np.linalg.solve(h, grad[0])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(direction)):
            break
        for scale in (1.0, 0.5, 0.25, 0.125):
            candidate = theta + scale * direction
            v_new, g_new = batched_gradient(spec, candidate)
            lower = v_new[0] <= value[0] + 1e-10
            # within the NLL's noise floor a step that shrinks the gradient is the better point
            flatter = (v_new[0] <= value[0] + POLISH_NLL_NOISE
                       and np.max(np.abs(g_new[0])) < np.max(np.abs(grad[0])))
            if lower or flatter:
                theta, value, grad, moved = candidate, v_new, g_new, True
                break
        else:
            break
    if moved:
        h = hessian(spec, theta)
    return theta, grad[0], h


def fit(spec: ModelSpec, *, n_starts: int = 1, seed: int = 20260601, max_iter: int = 2000,
        start: NDArray | None = None) -> FitResult:
    """Fit ``spec``: the best of ``n_starts`` optimisations (the first from ``start`` or the
    priors' centres, made finite by :func:`feasible_start` when the model cannot be evaluated
    there, the others dispersed around it, N(0, 0.5) on the estimation scale, and moved halfway
    back while the NLL cannot be evaluated there), polished by Newton steps; never mutates
    ``spec``."""
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    first = spec.initial_theta() if start is None else np.asarray(start, dtype=float)
    first, start_note = feasible_start(spec, first)
    starts = [first]
    for _ in range(n_starts - 1):
        s = first.copy()
        s[: len(spec.estimated)] += rng.normal(0.0, 0.5, len(spec.estimated))
        for _ in range(10):       # a start the model cannot evaluate moves halfway back
            if np.isfinite(objective(spec, s)):
                break
            s = first + 0.5 * (s - first)
        starts.append(s)
    runs = [_minimise(spec, s, max_iter) for s in starts]
    ends = [float(objective(spec, x)) for x, _ in runs]
    if not np.any(np.isfinite(ends)):
        raise FitError("every start ended at a non-finite NLL: the model cannot be evaluated there")
    best = int(np.nanargmin(np.where(np.isfinite(ends), ends, np.nan)))
    theta, res = runs[best]
    theta, gradient, h = _newton_polish(spec, theta)
    components = {k: float(v) for k, v in nll_components(spec, theta).items()}
    eigen = np.linalg.eigvalsh(h)
    positive = bool(np.all(eigen > 0))
    covariance = np.linalg.inv(h) if positive else None
    condition = float(eigen.max() / eigen.min()) if positive else float("inf")
    max_grad = float(np.max(np.abs(gradient)))
    converged = bool(positive and max_grad < GRADIENT_TOLERANCE and np.isfinite(sum(components.values())))
    names = spec.parameter_names
    notes = []
    if max_grad >= GRADIENT_TOLERANCE:
        notes.append(f"largest |gradient| {max_grad:.2g} at {names[int(np.argmax(np.abs(gradient)))]} "
                     f"exceeds {GRADIENT_TOLERANCE:g}")
    if not positive:
        notes.append("the Hessian is not positive definite: no covariance, standard errors undefined")
    elif condition > CONDITION_WARNING:
        notes.append(f"Hessian condition number {condition:.2g} exceeds {CONDITION_WARNING:g}")
    finite_ends = [e for e in ends if np.isfinite(e)]
    if n_starts > 1 and float(np.ptp(finite_ends)) >= 1e-3:
        notes.append(f"multi-start optima differ: NLL {', '.join(f'{e:.4f}' for e in ends)}")
    at_bound = [f.name for i, f in enumerate(spec.estimated)
                if f.transform == "logit" and abs(theta[i]) > LOGIT_BOUND]
    if at_bound:
        converged = False
        notes.append(f"estimate(s) at a bound of their range: {', '.join(at_bound)} (logit beyond "
                     f"±{LOGIT_BOUND:g}); the optimum is not interior, so its Hessian says little")
    for note in notes:
        warnings.warn(note, ConvergenceWarning, stacklevel=2)
    return FitResult(
        spec=spec, theta=theta, parameter_names=names, nll=float(sum(components.values())),
        nll_components=components, gradient=gradient, hessian=h, covariance=covariance,
        converged=converged, hessian_positive_definite=positive, condition_number=condition,
        optimizer={"method": "L-BFGS-B + Newton", "message": str(res.message),
                   "iterations": int(res.nit), "function_evaluations": int(res.nfev),
                   **({"start": start_note} if start_note else {})},
        runtime_s=time.perf_counter() - start_time, multistart_nll=tuple(ends),
        warnings=tuple(notes) + ((start_note,) if start_note else ()))


def fit_model(data: Any, config: RunConfig | None = None) -> FitResult:
    """The fit ``carpmodel fit`` makes: :func:`fit` of ``build_spec(data, config)`` with the
    config's ``[fit] n_starts`` and ``seed`` (default :func:`~carpmodel.io.config.default_config`),
    alternating with the survey error's marginal-likelihood step when ``[fit] survey_sd =
    "estimated"`` (:func:`carpmodel.inference.variance.fit_with_survey_error`; the result's
    spec carries the estimated ``sigma_survey``, ``survey_error`` the estimate)."""
    config = default_config() if config is None else config
    runs = iter(range(10_000))

    def fit_once(current: ModelSpec, start: NDArray | None) -> FitResult:
        # the first fit is the configured multi-start one; later fits start from the last optimum
        if next(runs) == 0:
            return fit(current, n_starts=config.fit.n_starts, seed=config.seed)
        return fit(current, n_starts=1, seed=config.seed, start=start)

    return with_survey_error(build_spec(data, config), config, fit_once)


def with_survey_error(spec: ModelSpec, config: RunConfig, fit_once: Any) -> FitResult:
    """``fit_once(spec, start) -> FitResult`` as the config asks for the survey error: once at
    the spec's ``sigma_survey`` (``[fit] survey_sd = "fixed"``), or alternating with its
    marginal-likelihood step (:func:`carpmodel.inference.variance.fit_with_survey_error`); every
    fit of a model structure (the main fit, ensemble members, compared variants) goes through
    here, so each estimates its own survey error."""
    if config.fit.survey_sd == "fixed":
        return fit_once(spec, None)
    from carpmodel.inference.variance import fit_with_survey_error

    started = time.perf_counter()
    result, error = fit_with_survey_error(spec, fit_once, ar1=config.fit.survey_ar1,
                                          prior=spec.sigma_survey_prior)
    if result is None:
        return None
    return replace(result, survey_error=error, runtime_s=time.perf_counter() - started)


