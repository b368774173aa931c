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
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from carpmodel.drivers import historical_drivers
from carpmodel.errors import ConvergenceWarning, DataError, FitError
from carpmodel.likelihood import (
    EFFECT_FIELDS,
    Covariate,
    Free,
    ModelSpec,
    Observations,
    nll_components,
    objective,
)
from carpmodel.priors import Prior
from carpmodel.simulation import default_parameters

#: step of the central-difference gradient on the estimation scale
GRADIENT_STEP = 1e-5
#: step of the central difference of gradients that gives the Hessian
HESSIAN_STEP = 1e-4
#: a fit counts as converged when the largest |gradient| is below this (FIMS uses 1e-2)
GRADIENT_TOLERANCE = 1e-3
#: a logit-scale estimate beyond ±this sits on a bound of its range (natural value within
#: 5e-5 of the range's width from the bound): reported, and the fit is not called converged
LOGIT_BOUND = 10.0
#: condition numbers above this are reported as a warning (FIMS threshold)
CONDITION_WARNING = 1e8
#: fields whose natural range is (0, 1): estimated on a logit scale
_FRACTIONS = {"steepness": (0.2, 1.0), "release_survival": (0.0, 1.0),
              "relative_reproductive_success": (0.0, 1.0)}

#: prior of an estimated log-linear temperature-effect slope, 1/degC (assumed: ±2 per degC
#: covers a tenfold change in the rate over ~1 degC; no species data)
EFFECT_SLOPE_PRIOR = Prior("normal", {"mean": 0.0, "sd": 1.0})
#: the dossier's flat prior on acute release survival (§7.3), the alternative to the default Beta
FLAT_RELEASE_SURVIVAL = Prior("uniform", {"lower": 0.05, "upper": 0.8})

InitialState = Literal["equilibrium_f", "unfished_1956", "equilibrium_1986"]
DEFAULT_ESTIMATED = ("unfished_biomass_t", "steepness", "initial_f_per_yr", "survey_q", "m_ref_per_yr",
                     "dd_strength", "release_survival")


@dataclass(frozen=True)
class FitOptions:
    """What to estimate and which data components to use (defaults: the documented base case)."""

    first_year: int = 2000
    last_year: int = 2024
    last_data_year: int | None = None
    recruitment: Literal["beverton_holt", "ricker"] = "beverton_holt"
    initial_state: InitialState = "equilibrium_f"
    estimate: tuple[str, ...] = DEFAULT_ESTIMATED
    early_survey_last_year: int | None = None
    early_q_prior: tuple[float, float] = (0.3, 1.0)   # lognormal (median, sd_log) of early q
    estimate_extra_sd: bool = False
    cv_multiplier: float = 1.0
    use_upper_bound: bool = False
    use_hatchery_fractions: bool = False
    release_survival_prior: Literal["informative", "flat"] = "informative"
    dd_window_end_age_yr: int | None = None
    n_starts: int = 3
    seed: int = 20260601


def fit_options(config: Any) -> FitOptions:
    """FitOptions from a RunConfig's ``[model]`` and ``[fit]`` sections and its seed."""
    model, settings = config.model, config.fit
    return FitOptions(
        first_year=model.first_year, last_year=model.last_year,
        last_data_year=settings.last_data_year, recruitment=model.recruitment,
        initial_state=model.initial_state, estimate=tuple(settings.estimate),
        early_survey_last_year=settings.early_survey_last_year,
        early_q_prior=(settings.early_q_prior_median, settings.early_q_prior_sd_log),
        estimate_extra_sd=settings.estimate_extra_sd, cv_multiplier=settings.cv_multiplier,
        use_upper_bound=settings.use_upper_bound, use_hatchery_fractions=settings.use_hatchery_fractions,
        release_survival_prior=settings.release_survival_prior,
        dd_window_end_age_yr=settings.dd_window_end_age_yr, n_starts=settings.n_starts,
        seed=config.seed)


def build_spec(data: Any, options: FitOptions = FitOptions()) -> ModelSpec:
    """A :class:`ModelSpec` from a loaded data directory and fit options."""
    lh = data.life_history
    first = {"equilibrium_f": options.first_year, "unfished_1956": 1956,
             "equilibrium_1986": 1986}[options.initial_state]
    years = np.arange(first, options.last_year + 1)
    last_data = options.last_data_year or options.last_year
    base = default_parameters(data, options.recruitment)
    if options.initial_state == "unfished_1956":
        base = base.replace(initial_f_per_yr=0.0)
    if options.dd_window_end_age_yr is not None:
        base = base.replace(dd_window_end_age_yr=options.dd_window_end_age_yr)
    drivers = historical_drivers(data, years, max_age_yr=base.max_age_yr,
                                 lw_a=float(base.lw_a), lw_b=float(base.lw_b))
    keep = (data.biomass.year >= years[0]) & (data.biomass.year <= last_data)
    if not np.any(keep):
        raise FitError(f"no biomass observations in {years[0]}-{last_data}")
    obs_year = np.asarray(data.biomass.year)[keep]
    early_last = options.early_survey_last_year
    observations = Observations(
        year=obs_year, biomass_t=np.asarray(data.biomass.biomass_t, dtype=float)[keep],
        cv=np.asarray(data.biomass.cv, dtype=float)[keep] * options.cv_multiplier,
        early=obs_year <= early_last if early_last is not None else np.zeros(obs_year.size, bool))

    free = []
    covariate = None
    for name in options.estimate:
        if options.initial_state == "unfished_1956" and name == "initial_f_per_yr":
            continue
        if name in EFFECT_FIELDS:
            free.append(Free(name, "identity", EFFECT_SLOPE_PRIOR, 0.0))
            covariate = covariate or lake_temperature_covariate(data, years)
            continue
        entry = lh[name] if name in lh else None
        prior = entry.prior if entry is not None else None
        if name == "release_survival" and options.release_survival_prior == "flat":
            prior = FLAT_RELEASE_SURVIVAL
        init = float(lh.value(name) if name == "unfished_biomass_t" else getattr(base, name))
        if prior is not None and prior.distribution == "uniform":
            lo, hi = prior.parameters["lower"], prior.parameters["upper"]
            free.append(Free(name, "logit", None, float(np.clip(init, lo + 1e-3, hi - 1e-3)), (lo, hi)))
        elif name in _FRACTIONS:
            free.append(Free(name, "logit", prior, init, _FRACTIONS[name]))
        else:
            free.append(Free(name, "log", prior, init))
    if early_last is not None:
        median, sd_log = options.early_q_prior
        free.append(Free("survey_q_early", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if options.estimate_extra_sd:
        free.append(Free("sigma_obs_extra", "log", Prior("lognormal", {"median": 0.1, "sd_log": 1.0}), 0.1))

    upper = None
    hatchery: tuple[tuple[int, float], ...] = ()
    aux = data.auxiliary
    if options.use_upper_bound:
        y, v = aux.select("biomass_upper_bound_t")
        inside = [(int(a), float(b)) for a, b in zip(y, v, strict=True) if years[0] <= a <= last_data]
        upper = inside[0] if inside else None
    if options.use_hatchery_fractions:
        y, v = aux.select("hatchery_fraction_biomass")
        hatchery = tuple((int(a), float(b)) for a, b in zip(y, v, strict=True)
                         if years[0] <= a <= last_data)
    b0_entry = lh["unfished_biomass_t"]
    return ModelSpec(base=base, free=tuple(free), years=years, drivers=drivers,
                     observations=observations, rec_dev_years=np.arange(years[0], last_data + 1),
                     b0_prior=b0_entry.prior, upper_bound=upper, hatchery_fractions=hatchery,
                     penalise_shortfall=options.initial_state != "equilibrium_f", covariate=covariate)


def lake_temperature_covariate(data: Any, years: NDArray) -> Covariate:
    """The data's lake temperature on ``years`` with its mean over those years as reference.

    Estimated effects are log-linear, ``exp(b·(T − T_ref))``, so a constant offset between
    covariates (the assumed spawning-season river temperature is the lake temperature − 4 °C)
    cancels: one covariate serves every target. Years without a temperature raise DataError.
    """
    temperature = data.temperature
    index = {int(y): float(v) for y, v in zip(temperature.year, temperature.temperature_c, strict=True)}
    missing = [int(y) for y in years if int(y) not in index]
    if missing:
        raise DataError(f"{data.directory / 'temperature.csv'}: no temperature for year(s) {missing}; "
                        "expected every modelled year when a temperature effect is estimated")
    values = np.array([index[int(y)] for y in years])
    return Covariate(values=values, reference=float(values.mean()))


def batched_gradient(spec: ModelSpec, thetas: NDArray,
                     step: float = GRADIENT_STEP) -> tuple[NDArray, NDArray]:
    """NLL and its central-difference gradient at each row of ``thetas (m, n)``: one engine call."""
    thetas = np.atleast_2d(thetas)
    m, n = thetas.shape
    offsets = np.concatenate([np.zeros((1, n)), step * np.eye(n), -step * np.eye(n)])
    values = objective(spec, thetas[:, None, :] + offsets[None]).reshape(m, 2 * n + 1)
    centre, plus, minus = values[:, :1], values[:, 1:n + 1], values[:, n + 1:]
    with np.errstate(invalid="ignore"):
        central = (plus - minus) / (2 * step)
        # next to the edge of the model (one side infinite) fall back to a one-sided difference
        grad = np.where(np.isfinite(plus) & np.isfinite(minus), central,
                        np.where(np.isfinite(plus), (plus - centre) / step, (centre - minus) / step))
    return values[:, 0], grad


def hessian(spec: ModelSpec, theta: NDArray, step: float = HESSIAN_STEP) -> NDArray:
    """Central differences of batched gradients, symmetrised, (n, n)."""
    n = theta.size
    points = np.concatenate([theta + step * np.eye(n), theta - step * np.eye(n)])
    _, grads = batched_gradient(spec, points)
    h = (grads[:n] - grads[n:]) / (2 * step)
    return 0.5 * (h + h.T)


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
        return 2.0 * self.nll + 2.0 * self.n_parameters

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
    def fun(theta: NDArray) -> tuple[float, NDArray]:
        value, grad = batched_gradient(spec, theta)
        if not np.isfinite(value[0]):
            return 1e10, np.zeros_like(theta)
        return float(value[0]), grad[0]

    centre = spec.initial_theta()[: len(spec.estimated)]
    bounds = [(c - 15.0, c + 15.0) for c in centre] + [(-6.0, 6.0)] * len(spec.rec_dev_years)
    res = minimize(fun, start, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-8, "maxcor": 30})
    return res.x, res


def _newton_polish(spec: ModelSpec, theta: NDArray, max_steps: int = 4) -> tuple[NDArray, NDArray, NDArray]:
    """Polish with Newton steps (chord method: the Hessian is reused between steps and
    recomputed once at the end if any step was taken); step-halving if the NLL rises."""
    value, grad = batched_gradient(spec, theta)
    h = hessian(spec, theta)
    moved = False
    for _ in range(max_steps):
        if np.max(np.abs(grad[0])) < GRADIENT_TOLERANCE / 100:
            break
        try:
            direction = -np.linalg.solve(h, grad[0])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(direction)):
            break
        for scale in (1.0, 0.5, 0.25, 0.125):
            candidate = theta + scale * direction
            v_new, g_new = batched_gradient(spec, candidate)
            if v_new[0] <= value[0] + 1e-10:
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
    priors' centres, the others dispersed around it), polished by Newton steps; never mutates
    ``spec``."""
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    first = spec.initial_theta() if start is None else np.asarray(start, dtype=float)
    starts = [first]
    for _ in range(n_starts - 1):
        s = first.copy()
        s[: len(spec.estimated)] += rng.normal(0.0, 0.5, len(spec.estimated))
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
                   "iterations": int(res.nit), "function_evaluations": int(res.nfev)},
        runtime_s=time.perf_counter() - start_time, multistart_nll=tuple(ends),
        warnings=tuple(notes))


def with_options(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields changed (``dataclasses.replace``)."""
    return replace(spec, **changes)


def fix_parameter(spec: ModelSpec, field: str, value: float) -> ModelSpec:
    """A copy of ``spec`` with one free parameter held at ``value`` (natural scale).

    Used by likelihood profiles. Fixing ``unfished_biomass_t`` keeps the B0 → R0 mapping: it
    stays in the spec as a parameter with a one-point range (identity transform, no prior).
    """
    names = [f.field for f in spec.free]
    if field not in names:
        raise FitError(f"{field} is not estimated in this spec; estimated: {', '.join(names)}")
    if field == "unfished_biomass_t":
        free = tuple(Free(field, "fixed", None, value) if f.field == field else f for f in spec.free)
        return replace(spec, free=free)
    free = tuple(f for f in spec.free if f.field != field)
    if field in ("survey_q_early", "sigma_obs_extra"):
        raise FitError(f"{field} cannot be fixed by fix_parameter; drop it from the options instead")
    return replace(spec, free=free, base=spec.base.replace(**{field: value}))
