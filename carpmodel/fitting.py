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
from carpmodel.errors import ConfigError, ConvergenceWarning, DataError, FitError
from carpmodel.likelihood import (
    DRIVER_FIELDS,
    EFFECT_FIELDS,
    F_FIELD,
    Covariate,
    Free,
    ModelSpec,
    Observations,
    nll_components,
    objective,
    predict,
    requested_catch_t,
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
#: L-BFGS-B ending with a larger |gradient| (or failing its line search) gets a rescaled second pass
RESCALE_GRADIENT = 1e-2
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

# Priors of the remedies for starts before 2000 (catch error, unreported catch, a changed
# unfished level). They are options, not life_history.toml entries (the data loader accepts only
# the population model's parameters there); each is an assumption stated in data/SOURCES.md
# (assumption_catch_error, assumption_unreported_catch, assumption_unfished_change).
#: SD of the log catch scale (assumed): the catch series is a reconstruction (reported anchors,
#: cumulative totals spread uniformly, 1993-2000 assumed) whose 1977-85 level differs by ~2x
#: between sources (5,857 t/yr vs FAO's "stable ~3,000 t/yr"); 0.3 lets the whole series move
#: by ±35 % at one SD
CATCH_SCALE_SD_LOG = 0.3
#: SD of the log of each year's catch when catch is data (assumed; used in experiments): annual
#: values are spread from cumulative totals or interpolated, so single years are uncertain even
#: where the totals are matched; 0.2 is a moderate error for a poorly recorded fishery
CATCH_SD_LOG = 0.2
#: unreported catch, t/yr, lognormal (median, sd_log) (assumed): ~1,000 t/yr illegal catch was
#: reported from 1987 (walker_1996; already inside the 3,000 t/yr of 1987-92); sd_log 1.0 spans
#: ~140-7,000 t/yr (95 %)
UNREPORTED_CATCH_PRIOR = (1000.0, 1.0)
#: ratio of R0 after the change year to R0 before, lognormal (median, sd_log) (assumed): no
#: measurement of spawning-habitat loss; centred on no change so the data, not the prior, move
#: it; sd_log 0.5 reaches 0.47 (the dossier's ~150 kt current K over the reported ~320 kt
#: virgin stock) at 1.5 SD
UNFISHED_CHANGE_PRIOR = (1.0, 0.5)

InitialState = Literal["equilibrium_f", "unfished_1956", "equilibrium_1986"]
DEFAULT_ESTIMATED = ("unfished_biomass_t", "steepness", "initial_f_per_yr", "survey_q", "m_ref_per_yr",
                     "dd_strength", "release_survival")


@dataclass(frozen=True)
class FitOptions:
    """What to estimate and which data components to use (defaults: the documented base case).

    Remedies for starts before 2000 (off by default): ``catch_sd_log`` treats catch as data
    with lognormal error of that SD and estimates the F of every fished year (``f_YYYY``)
    instead of solving F to take the catch exactly; ``catch_scale_sd_log`` estimates one
    multiplicative scale of the recorded catch with a lognormal prior (median 1);
    ``unreported_catch_years`` (first, last) estimates a catch ``unreported_catch_t`` (t/yr)
    added to each of those years, prior lognormal ``unreported_catch_prior``;
    ``unfished_change_year`` estimates the ratio ``unfished_change`` of R0 (hence B0) from that
    year on to R0 before it, prior lognormal ``unfished_change_prior`` (spawning-habitat loss).
    """

    first_year: int = 2000
    last_year: int = 2024
    last_data_year: int | None = None
    recruitment: Literal["beverton_holt", "ricker"] = "beverton_holt"
    initial_state: InitialState = "equilibrium_f"
    estimate: tuple[str, ...] = DEFAULT_ESTIMATED
    early_survey_last_year: int | None = None
    early_q_prior: tuple[float, float] = (0.3, 1.0)   # lognormal (median, sd_log) of early q
    early_separate_q: bool = True       # surveys up to early_survey_last_year get their own q
    early_cv_multiplier: float = 1.0    # and/or their CVs multiplied by this
    estimate_extra_sd: bool = False
    cv_multiplier: float = 1.0
    use_upper_bound: bool = False
    use_hatchery_fractions: bool = False
    release_survival_prior: Literal["informative", "flat"] = "informative"
    dd_window_end_age_yr: int | None = None
    n_starts: int = 3
    seed: int = 20260601
    catch_sd_log: float | None = None                 # catch with error: F free, catch lognormal
    catch_scale_sd_log: float | None = None           # estimate catch_scale ~ LN(1, sd_log)
    unreported_catch_years: tuple[int, int] | None = None   # estimate unreported_catch_t then
    unreported_catch_prior: tuple[float, float] = UNREPORTED_CATCH_PRIOR   # (median t/yr, sd_log)
    unfished_change_year: int | None = None           # estimate unfished_change from this year
    unfished_change_prior: tuple[float, float] = UNFISHED_CHANGE_PRIOR     # (median, sd_log)


def fit_options(config: Any) -> FitOptions:
    """FitOptions from a RunConfig's ``[model]`` and ``[fit]`` sections and its seed."""
    model, settings = config.model, config.fit
    return FitOptions(
        first_year=model.first_year, last_year=model.last_year,
        last_data_year=settings.last_data_year, recruitment=model.recruitment,
        initial_state=model.initial_state, estimate=tuple(settings.estimate),
        early_survey_last_year=settings.early_survey_last_year,
        early_q_prior=(settings.early_q_prior_median, settings.early_q_prior_sd_log),
        early_separate_q=settings.early_separate_q, early_cv_multiplier=settings.early_cv_multiplier,
        estimate_extra_sd=settings.estimate_extra_sd, cv_multiplier=settings.cv_multiplier,
        use_upper_bound=settings.use_upper_bound, use_hatchery_fractions=settings.use_hatchery_fractions,
        release_survival_prior=settings.release_survival_prior,
        dd_window_end_age_yr=settings.dd_window_end_age_yr, n_starts=settings.n_starts,
        seed=config.seed, catch_sd_log=settings.catch_sd_log,
        catch_scale_sd_log=settings.catch_scale_sd_log,
        unreported_catch_years=settings.unreported_catch_years,
        unreported_catch_prior=(settings.unreported_catch_prior_median_t,
                                settings.unreported_catch_prior_sd_log),
        unfished_change_year=model.unfished_change_year,
        unfished_change_prior=(settings.unfished_change_prior_median,
                               settings.unfished_change_prior_sd_log))


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
    early = obs_year <= early_last if early_last is not None else np.zeros(obs_year.size, bool)
    if options.early_cv_multiplier <= 0:
        raise ConfigError("early_cv_multiplier: expected a positive number, "
                          f"got {options.early_cv_multiplier!r}")
    cv = np.asarray(data.biomass.cv, dtype=float)[keep] * options.cv_multiplier
    if options.early_cv_multiplier != 1.0:
        cv = np.where(early, cv * options.early_cv_multiplier, cv)
    observations = Observations(
        year=obs_year, biomass_t=np.asarray(data.biomass.biomass_t, dtype=float)[keep], cv=cv,
        early=early if options.early_separate_q else np.zeros(obs_year.size, bool))

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
    if early_last is not None and options.early_separate_q:
        median, sd_log = options.early_q_prior
        free.append(Free("survey_q_early", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if options.estimate_extra_sd:
        free.append(Free("sigma_obs_extra", "log", Prior("lognormal", {"median": 0.1, "sd_log": 1.0}), 0.1))
    free.extend(_remedies(options, years, drivers.catch_t))

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
    spec = ModelSpec(base=base, free=tuple(free), years=years, drivers=drivers,
                     observations=observations, rec_dev_years=np.arange(years[0], last_data + 1),
                     b0_prior=b0_entry.prior, upper_bound=upper, hatchery_fractions=hatchery,
                     penalise_shortfall=options.initial_state != "equilibrium_f", covariate=covariate,
                     unreported_catch_years=options.unreported_catch_years,
                     unfished_change_year=options.unfished_change_year)
    return spec if options.catch_sd_log is None else with_catch_error(spec, options.catch_sd_log)


def with_catch_error(spec: ModelSpec, catch_sd_log: float) -> ModelSpec:
    """``spec`` with catch as data (lognormal, SD ``catch_sd_log`` of the log) and the F of each
    fished year a free parameter ``f_YYYY`` (log scale, no prior: the catch informs it).

    Fished years are those with a positive requested catch at the start values. Each F starts
    at the value that takes the requested catch in the catch-conditioned model at the start
    values (at least 1e-3/yr), so the fit starts where the exact-catch model would.
    """
    if not catch_sd_log > 0:
        raise ConfigError(f"catch_sd_log: expected a positive number, got {catch_sd_log!r}")
    state, u = predict(spec, spec.initial_theta())
    fished = np.flatnonzero(np.asarray(requested_catch_t(spec, u)) > 0)
    if fished.size == 0:
        raise ConfigError(f"catch_sd_log: no catch in the model years {spec.years[0]}-{spec.years[-1]}")
    f_start = np.maximum(np.asarray(state.f_per_yr)[fished], 1e-3)
    free = spec.free + tuple(Free(f"f_{int(spec.years[i])}", "log", None, float(f))
                             for i, f in zip(fished, f_start, strict=True))
    return replace(spec, free=free, catch_sd_log=float(catch_sd_log), penalise_shortfall=False)


def _remedies(options: FitOptions, years: NDArray, catch_t: NDArray) -> list[Free]:
    """Free parameters of the catch-error, unreported-catch and unfished-change options.

    Refuses (ConfigError) a remedy the modelled years cannot carry: a catch scale without any
    catch, unreported-catch years outside the model years, a change year that is not after
    the first model year.
    """
    free = []
    first, last = int(years[0]), int(years[-1])
    if options.catch_scale_sd_log is not None:
        if options.catch_scale_sd_log <= 0:
            raise ConfigError("catch_scale_sd_log: expected a positive number, "
                              f"got {options.catch_scale_sd_log!r}")
        if not np.any(np.asarray(catch_t) > 0):
            raise ConfigError(f"catch_scale_sd_log: no catch in the model years {first}-{last} to scale")
        free.append(Free("catch_scale", "log",
                         Prior("lognormal", {"median": 1.0, "sd_log": options.catch_scale_sd_log}), 1.0))
    if options.unreported_catch_years is not None:
        lo, hi = options.unreported_catch_years
        if not first <= lo <= hi <= last:
            raise ConfigError(f"unreported_catch_years: expected first <= last inside the model years "
                              f"{first}-{last}, got [{lo}, {hi}]")
        median, sd_log = options.unreported_catch_prior
        free.append(Free("unreported_catch_t", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if options.unfished_change_year is not None:
        if not first < options.unfished_change_year <= last:
            raise ConfigError(f"unfished_change_year: expected a year in {first + 1}-{last} (after the "
                              f"first model year), got {options.unfished_change_year}")
        median, sd_log = options.unfished_change_prior
        free.append(Free("unfished_change", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    return free


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

    centre = spec.initial_theta()[: len(spec.estimated)]
    lower = np.concatenate([centre - 15.0, np.full(len(spec.rec_dev_years), -6.0)])
    upper = np.concatenate([centre + 15.0, np.full(len(spec.rec_dev_years), 6.0)])
    bounds = list(zip((lower - origin) / factor, (upper - origin) / factor, strict=True))
    res = minimize(fun, (start - origin) / factor, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-8, "maxcor": 30})
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
    priors' centres, the others dispersed around it, N(0, 0.5) on the estimation scale, and
    moved halfway back while the NLL cannot be evaluated there), polished by Newton steps;
    never mutates ``spec``."""
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    first = spec.initial_theta() if start is None else np.asarray(start, dtype=float)
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
                   "iterations": int(res.nit), "function_evaluations": int(res.nfev)},
        runtime_s=time.perf_counter() - start_time, multistart_nll=tuple(ends),
        warnings=tuple(notes))


def with_options(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields changed (``dataclasses.replace``)."""
    return replace(spec, **changes)


def fix_parameter(spec: ModelSpec, field: str, value: float) -> ModelSpec:
    """A copy of ``spec`` with one free parameter held at ``value`` (natural scale).

    Used by likelihood profiles. Fixing ``unfished_biomass_t`` keeps the B0 → R0 mapping: it
    stays in the spec as a parameter with a one-point range (identity transform, no prior); so
    do the catch and unfished-change parameters (:data:`~carpmodel.likelihood.DRIVER_FIELDS`).
    """
    names = [f.field for f in spec.free]
    if field not in names:
        raise FitError(f"{field} is not estimated in this spec; estimated: {', '.join(names)}")
    if field == "unfished_biomass_t" or field in DRIVER_FIELDS or F_FIELD.match(field):
        free = tuple(Free(field, "fixed", None, value) if f.field == field else f for f in spec.free)
        return replace(spec, free=free)
    free = tuple(f for f in spec.free if f.field != field)
    if field in ("survey_q_early", "sigma_obs_extra"):
        raise FitError(f"{field} cannot be fixed by fix_parameter; drop it from the options instead")
    return replace(spec, free=free, base=spec.base.replace(**{field: value}))
