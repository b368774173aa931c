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

from carpmodel.errors import ConfigError, ConvergenceWarning, DataError, FitError
from carpmodel.inference.likelihood import (
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
from carpmodel.inference.numdiff import central_gradient, hessian_from_gradients, search_box
from carpmodel.io.config import FitOptions, ModelOptions, RunConfig, default_config
from carpmodel.model.drivers import historical_drivers
from carpmodel.model.simulation import default_parameters
from carpmodel.priors import Prior

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
#: NLL rise (absolute) within which a Newton polish step is still accepted when it shrinks the
#: largest |gradient|: near the optimum the NLL (~10) moves by ~1e-9 per step, the level of
#: rounding and of the engine's iterative solves (equilibrium, F from catch), so it cannot
#: rank such steps; the gradient can
POLISH_NLL_NOISE = 1e-8
#: a start the model cannot evaluate has its initial F halved at most this many times
FEASIBLE_START_HALVINGS = 8
#: NLL components that are data on the stock (they enter AICc); the others are priors,
#: penalties, the recruitment deviations and the catch (see :meth:`FitResult.aicc`)
AICC_DATA_COMPONENTS = ("biomass", "biomass_upper_bound", "hatchery_fraction", "hatchery_samples",
                        "juvenile_index")
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

DEFAULT_ESTIMATED = FitOptions().estimate


def _check_estimate(names: tuple[str, ...]) -> None:
    """ConfigError naming ``fit.estimate`` unless every name is one build_spec can estimate (a
    numeric field of the engine's Parameters, B0, or a temperature-effect slope), each once."""
    from dataclasses import fields as dataclass_fields

    from carpmodel.model.params import STRUCTURAL_FIELDS, Parameters

    valid = sorted({f.name for f in dataclass_fields(Parameters) if f.name not in STRUCTURAL_FIELDS}
                   | set(EFFECT_FIELDS) | {"unfished_biomass_t"})
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ConfigError(f"fit.estimate: unknown parameter {unknown[0]!r}; valid: {', '.join(valid)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"fit.estimate: expected each parameter once, got {repeated[0]!r} twice or more")


def build_spec(data: Any, config: RunConfig | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from a loaded data directory and a run configuration (its ``[model]``
    and ``[fit]`` sections; default :func:`~carpmodel.io.config.default_config`)."""
    config = default_config() if config is None else config
    _check_estimate(tuple(config.fit.estimate))
    model, options = config.model, config.fit
    lh = data.life_history
    first = {"equilibrium_f": model.first_year, "unfished_1956": 1956,
             "equilibrium_1986": 1986}[model.initial_state]
    years = np.arange(first, model.last_year + 1)
    last_data = options.last_data_year or model.last_year
    base = default_parameters(data, model.recruitment)
    if model.initial_state == "unfished_1956":
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
        if model.initial_state == "unfished_1956" and name == "initial_f_per_yr":
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
        median, sd_log = options.early_q_prior_median, options.early_q_prior_sd_log
        free.append(Free("survey_q_early", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if options.estimate_extra_sd:
        free.append(Free("sigma_obs_extra", "log", Prior("lognormal", {"median": 0.1, "sd_log": 1.0}), 0.1))
    free.extend(_remedies(model, options, years, drivers.catch_t))

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
                     penalise_shortfall=model.initial_state != "equilibrium_f", covariate=covariate,
                     unreported_catch_years=options.unreported_catch_years,
                     unfished_change_year=model.unfished_change_year)
    return spec if options.catch_sd_log is None else with_catch_error(spec, options.catch_sd_log)


def with_catch_error(spec: ModelSpec, catch_sd_log: float) -> ModelSpec:
    """``spec`` with catch as data (lognormal, SD ``catch_sd_log`` of the log) and the F of each
    fished year a free parameter ``f_YYYY`` (log scale, no prior: the catch informs it).

    Fished years are those with a positive requested catch at the start values. Each F starts
    at the value that takes the requested catch in the catch-conditioned model at the start
    values (at least 1e-3/yr), so the fit starts where the exact-catch model would; where the
    stock cannot persist at the start values, at the start :func:`fit` moves to instead
    (:func:`feasible_start`), not at an empty stock's F of 0.
    """
    if not catch_sd_log > 0:
        raise ConfigError(f"catch_sd_log: expected a positive number, got {catch_sd_log!r}")
    try:
        start, _ = feasible_start(spec, spec.initial_theta())
    except FitError:
        start = spec.initial_theta()       # fit reports it; the F starts fall back to 1e-3/yr
    state, u = predict(spec, start)
    fished = np.flatnonzero(np.asarray(requested_catch_t(spec, u)) > 0)
    if fished.size == 0:
        raise ConfigError(f"catch_sd_log: no catch in the model years {spec.years[0]}-{spec.years[-1]}")
    f_start = np.maximum(np.asarray(state.f_per_yr)[fished], 1e-3)
    free = spec.free + tuple(Free(f"f_{int(spec.years[i])}", "log", None, float(f))
                             for i, f in zip(fished, f_start, strict=True))
    return replace(spec, free=free, catch_sd_log=float(catch_sd_log), penalise_shortfall=False)


def _remedies(model: ModelOptions, options: FitOptions, years: NDArray, catch_t: NDArray) -> list[Free]:
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
        median, sd_log = options.unreported_catch_prior_median_t, options.unreported_catch_prior_sd_log
        free.append(Free("unreported_catch_t", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if model.unfished_change_year is not None:
        if not first < model.unfished_change_year <= last:
            raise ConfigError(f"unfished_change_year: expected a year in {first + 1}-{last} (after the "
                              f"first model year), got {model.unfished_change_year}")
        median, sd_log = options.unfished_change_prior_median, options.unfished_change_prior_sd_log
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
    """NLL and its central-difference gradient at each row of ``thetas (m, n)``: one engine call
    (:func:`carpmodel.inference.numdiff.central_gradient`)."""
    return central_gradient(lambda x: objective(spec, x), np.atleast_2d(thetas), step)


def hessian(spec: ModelSpec, theta: NDArray, step: float = HESSIAN_STEP) -> NDArray:
    """Central differences of batched gradients, symmetrised, (n, n)
    (:func:`carpmodel.inference.numdiff.hessian_from_gradients`)."""
    return hessian_from_gradients(lambda x: objective(spec, x), theta, step, GRADIENT_STEP)


def aicc_parameters(spec: ModelSpec) -> int:
    """Parameters k of AICc: the estimated fixed effects, without the recruitment deviations
    and without the catch-error F's ``f_YYYY``.

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
    return sum(1 for f in spec.estimated if not F_FIELD.match(f.field))


def aicc_data_points(spec: ModelSpec) -> int:
    """Data points n of the AICc data components (:data:`AICC_DATA_COMPONENTS`): biomass
    observations, plus the hatchery-fraction points, the upper-bound statement, the
    hatchery-origin samples and the juvenile-index points when those components are on. The
    catch observations are not counted (see :func:`aicc_parameters`)."""
    return int(spec.observations.year.size + len(spec.hatchery_fractions)
               + (spec.upper_bound is not None) + len(spec.hatchery_samples)
               + len(spec.juvenile_index))


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
        if np.max(np.abs(grad[0])) < GRADIENT_TOLERANCE / 100:
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


def feasible_start(spec: ModelSpec, theta: NDArray) -> tuple[NDArray, str]:
    """``theta`` and ``""`` when the model can be evaluated there; otherwise ``theta`` with the
    initial F halved until it can, and a note saying so.

    The start state is the equilibrium under ``initial_f_per_yr``. Above the crash F of the
    structure (where spawning output per recruit falls below the reciprocal of the
    compensation) the stock cannot persist, the start biomass is 0 and the NLL +inf, and an
    optimiser started there never moves. The prior centres can be such a point for a
    structure whose fitted optimum is not: with the density-dependence window at age 0 only and
    Lorenzen c = 1, the stock at h = 0.7, γ = 1 cannot persist under the start value F = 0.5/yr
    (crash F ≈ 0.45/yr), while the fit reaches h ≈ 0.87 and F ≈ 0.76/yr, which it can. Halving
    F (at most :data:`FEASIBLE_START_HALVINGS` times) moves the start into the model without
    touching anything else. Raises FitError, naming the non-finite NLL components, when the
    start cannot be made finite that way.
    """
    theta = np.asarray(theta, dtype=float)
    if np.isfinite(objective(spec, theta)):
        return theta, ""
    names = [f.field for f in spec.estimated]
    if "initial_f_per_yr" in names and spec.estimated[names.index("initial_f_per_yr")].transform == "log":
        i = names.index("initial_f_per_yr")
        moved = theta.copy()
        for halvings in range(1, FEASIBLE_START_HALVINGS + 1):
            moved[i] = theta[i] - halvings * np.log(2.0)
            if np.isfinite(objective(spec, moved)):
                return moved, (f"start initial_f_per_yr lowered from {np.exp(theta[i]):.3g} to "
                               f"{np.exp(moved[i]):.3g}/yr: the equilibrium start state cannot persist "
                               "under the start F (NLL +inf there)")
    with np.errstate(all="ignore"):
        components = nll_components(spec, theta)
    bad = [name for name, value in components.items() if not np.all(np.isfinite(value))]
    raise FitError("the model cannot be evaluated at the start values (non-finite NLL component(s): "
                   f"{', '.join(bad) or 'none; a parameter is outside the model'})"
                   + ("; halving the initial F did not help" if "initial_f_per_yr" in names else ""))


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
    config's ``[fit] n_starts`` and ``seed`` (default :func:`~carpmodel.io.config.default_config`)."""
    config = default_config() if config is None else config
    return fit(build_spec(data, config), n_starts=config.fit.n_starts, seed=config.seed)


def with_options(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields changed (``dataclasses.replace``)."""
    return replace(spec, **changes)


def fix_parameter(spec: ModelSpec, field: str, value: float) -> ModelSpec:
    """A copy of ``spec`` with one free parameter held at ``value`` (natural scale).

    Used by likelihood profiles. Fixing ``unfished_biomass_t`` keeps the B0 → R0 mapping: it
    stays in the spec as a parameter with a one-point range (identity transform, no prior); so
    do the catch and unfished-change parameters (:data:`~carpmodel.inference.likelihood.DRIVER_FIELDS`).
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
