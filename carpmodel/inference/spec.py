"""The parameter map θ in one place: what is estimated, on which scale, and how a batch of
estimation-scale vectors becomes natural-scale parameters (:func:`unpack`).

A :class:`ModelSpec` holds everything the objective needs: the fixed parameters, the free ones
with their transforms and priors, the historical drivers and the observations. It is built
from a data directory and a run configuration by :func:`carpmodel.inference.build.build_spec`;
:func:`fix_parameter` holds one free parameter at a value (profiles).

Free fields are :class:`~carpmodel.model.params.Parameters` fields, or one of
:data:`OBSERVATION_FIELDS` (observation-model parameters), :data:`DRIVER_FIELDS` (catch, the
unfished level and the depleted start, applied by :func:`carpmodel.inference.likelihood.predict`),
``f_YYYY`` (the F of a fished year, catch with error), ``initial_dev_aN`` (a deviation of age
``N`` in the depleted start) or an estimated covariate-effect slope (:data:`EFFECT_FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from carpmodel.errors import ConfigError, FitError
from carpmodel.model.drivers import HistoricalDrivers
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.equilibrium import ReferencePoints, reference_points
from carpmodel.model.params import Parameters
from carpmodel.priors import Prior

Transform = Literal["log", "logit", "identity", "fixed"]
#: free parameters that live in the observation model rather than in the population model
OBSERVATION_FIELDS = ("survey_q_early", "sigma_obs_extra", "net_mode_cm",
                      "net_width_cm", "misclass_hatchery_as_wild", "misclass_wild_as_hatchery",
                      "recruitment_slope_per_c", "growth_slope_per_c", "natural_mortality_slope_per_c",
                      "maturity_slope_per_c", "juvenile_index_q", "habitat_slope")
#: free parameters that change the drivers, the unfished level or the start (applied by predict)
DRIVER_FIELDS = ("catch_scale", "unreported_catch_t", "unfished_change", "initial_depletion")
#: free fields ``f_YYYY``: fully selected F of year YYYY, 1/yr (catch with error)
F_FIELD = re.compile(r"^f_(\d{4})$")
#: free fields ``initial_dev_aN``: deviation (log scale) of age N in the depleted start
INITIAL_DEV_FIELD = re.compile(r"^initial_dev_a(\d+)$")
#: estimated log-linear covariate effects: free field → ProcessMultipliers field it drives
EFFECT_FIELDS = {"recruitment_slope_per_c": "recruitment", "growth_slope_per_c": "growth_k",
                 "natural_mortality_slope_per_c": "natural_mortality",
                 "maturity_slope_per_c": "maturity_l50"}
#: estimated habitat effect: slope on the logit of egg survival per unit of the connectivity index
HABITAT_FIELD = "habitat_slope"
#: CV of the surveys whose SD is ``sigma_survey``: ``σ_y = sigma_survey·cv_y/CV_REFERENCE``
CV_REFERENCE = 0.15
#: how the first model year's numbers are set: "equilibrium" under initial_f_per_yr (an
#: unfished start has F = 0), or "depletion": at an estimated depletion with age deviations
StartKind = Literal["equilibrium", "depletion"]


@dataclass(frozen=True)
class Free:
    """A parameter estimated on a transformed scale, with its prior on the natural scale.

    ``field`` names a :class:`~carpmodel.model.params.Parameters` field or one of
    :data:`OBSERVATION_FIELDS`; ``bounds`` (natural scale) are required for ``logit``.
    """

    field: str
    transform: Transform = "log"
    prior: Prior | None = None
    init: float = 1.0
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.transform == "fixed":
            return
        if self.transform == "logit" and self.bounds is None:
            raise ConfigError(f"{self.field}: a logit transform needs bounds (lower, upper)")

    @property
    def name(self) -> str:
        return self.field if self.transform in ("identity", "fixed") else f"{self.transform}_{self.field}"

    @property
    def estimated(self) -> bool:
        """False for a parameter held at ``init`` (a profile point); it takes no slot in theta."""
        return self.transform != "fixed"

    def to_theta(self, value: Any) -> NDArray:
        value = np.asarray(value, dtype=float)
        if self.transform == "log":
            return np.log(value)
        if self.transform == "logit":
            lo, hi = self.bounds
            return logit((value - lo) / (hi - lo))
        return value

    def from_theta(self, theta: Any) -> NDArray:
        theta = np.asarray(theta, dtype=float)
        if self.transform == "log":
            return np.exp(theta)
        if self.transform == "logit":
            lo, hi = self.bounds
            return lo + (hi - lo) * expit(theta)
        return theta


@dataclass(frozen=True)
class Observations:
    """The hydroacoustic survey: biomass observations on the model's years (t), their reported
    CVs (relative weights of the estimated survey SD, :func:`observation_weights`), the
    early-survey flag (own catchability) and whether residuals are AR(1)."""

    year: NDArray
    biomass_t: NDArray
    cv: NDArray
    early: NDArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    ar1: bool = False


@dataclass(frozen=True)
class HatcherySample:
    """Fish examined for hatchery origin in one survey year (marks or otolith chemistry).

    ``design_effect`` ≥ 1 inflates the binomial variance for clustered sampling (fish from few
    hauls): the beta-binomial intra-class correlation is ``(deff − 1)/(n − 1)``.
    """

    year: int
    n_examined: int
    n_hatchery: int
    design_effect: float = 1.0


@dataclass(frozen=True)
class Covariate:
    """An environmental covariate on the model years (already lagged), and its reference value."""

    values: NDArray
    reference: float


@dataclass(frozen=True)
class ModelSpec:
    """Everything the objective needs; build it with :func:`carpmodel.inference.build.build_spec`."""

    base: Parameters
    free: tuple[Free, ...]
    years: NDArray
    drivers: HistoricalDrivers
    observations: Observations
    rec_dev_years: NDArray
    b0_prior: Prior | None = None
    upper_bound: tuple[int, float] | None = None          # (year, tonnes)
    hatchery_fractions: tuple[tuple[int, float], ...] = ()  # ((year, fraction), ...)
    penalise_shortfall: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    multipliers: ProcessMultipliers | None = None      # fixed forcing of the historical years
    covariate: Covariate | None = None                 # what estimated effect slopes act on
    habitat: Covariate | None = None                   # connectivity index (habitat_slope acts on it)
    hatchery_samples: tuple[HatcherySample, ...] = ()
    juvenile_index: tuple[tuple[int, float, float], ...] = ()   # (year, index, cv) of wild juveniles
    misclassification: tuple[float, float] = (0.0, 0.0)   # fixed (hatchery→wild, wild→hatchery)
    unreported_catch_years: tuple[int, int] | None = None  # inclusive years of unreported_catch_t
    unfished_change_year: int | None = None    # first year of the changed R0 (unfished_change)
    catch_sd_log: float | None = None          # catch with error: F free (f_YYYY), catch lognormal
    start: StartKind = "equilibrium"            # how the first year's numbers are set
    sigma_survey: float = CV_REFERENCE          # survey log SD at CV 0.15 (inference.variance)
    survey_rho: float = 0.0                     # AR(1) coefficient of the survey residuals (with ar1)
    net_selectivity: tuple[float, float] = (27.0, 3.5)   # (mode, SD) of the net, cm, when not estimated
    sigma_survey_prior: Prior | None = None     # prior of sigma_survey in its marginal-likelihood step
    samples: tuple[Any, ...] = ()              # further observation types (carpmodel.inference.observations)

    @property
    def end_state_years(self) -> NDArray:
        """Years whose end-of-year numbers and lengths the observation types need (sorted)."""
        return np.array(sorted({int(y) for s in self.samples for y in s.end_years}), dtype=int)

    @property
    def initial_dev_ages(self) -> tuple[int, ...]:
        """Ages with an estimated deviation in the depleted start (``initial_dev_aN``)."""
        return tuple(int(INITIAL_DEV_FIELD.match(f.field).group(1)) for f in self.free
                     if INITIAL_DEV_FIELD.match(f.field))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.estimated) + tuple(f"rec_dev_{y}" for y in self.rec_dev_years)

    @property
    def estimated(self) -> tuple[Free, ...]:
        """The free parameters that take a slot in theta (profiles hold some fixed)."""
        return tuple(f for f in self.free if f.estimated)

    @property
    def n_parameters(self) -> int:
        return len(self.estimated) + len(self.rec_dev_years)

    def initial_theta(self) -> NDArray:
        """Start values: each estimated parameter's ``init`` and zero recruitment deviations."""
        return np.concatenate([[float(f.to_theta(f.init)) for f in self.estimated],
                               np.zeros(len(self.rec_dev_years))])


@dataclass(frozen=True)
class Unpacked:
    """Natural-scale values of one batch of parameter vectors."""

    params: Parameters
    log_rec_devs: NDArray          # (*batch, year), zero outside rec_dev_years
    rec_devs: NDArray              # (*batch, n_rec_devs)
    observation: dict[str, NDArray]
    multipliers: ProcessMultipliers | None = None
    invalid: NDArray | None = None  # (*batch) bool: rows the model cannot evaluate (NLL +inf)
    f_per_yr: NDArray | None = None  # (*batch, year) estimated F (catch with error), else None
    initial_devs: NDArray | None = None  # (*batch, k) deviations of ages 1..k in the depleted start
    per_recruit: ReferencePoints | None = None  # reference_points(params) at r0 = 1 (scaled by R0 on use)


def unpack(spec: ModelSpec, theta: Any) -> Unpacked:
    """Natural-scale parameters from estimation-scale vectors ``theta (*batch, n)``."""
    theta = np.asarray(theta, dtype=float)
    if theta.shape[-1] != spec.n_parameters:
        raise ValueError(f"theta has {theta.shape[-1]} values, the spec {spec.n_parameters}")
    batch = theta.shape[:-1]
    model_changes: dict[str, NDArray] = {}
    observation: dict[str, Any] = {name: np.zeros(batch) for name in OBSERVATION_FIELDS}
    observation.update(catch_scale=np.ones(batch), unreported_catch_t=np.zeros(batch),
                       unfished_change=np.ones(batch))
    observation["survey_q_early"] = None
    observation["juvenile_index_q"] = np.ones(batch)
    observation["sigma_survey"] = np.full(batch, spec.sigma_survey)
    observation["survey_rho"] = np.full(batch, spec.survey_rho)
    observation["net_mode_cm"] = np.full(batch, spec.net_selectivity[0])
    observation["net_width_cm"] = np.full(batch, spec.net_selectivity[1])
    observation["initial_depletion"] = np.full(batch, np.nan)
    observation["misclass_hatchery_as_wild"] = np.full(batch, spec.misclassification[0])
    observation["misclass_wild_as_hatchery"] = np.full(batch, spec.misclassification[1])
    fixed = {f.field: np.full(batch, f.init) for f in spec.free if not f.estimated}
    f_path: dict[int, NDArray] = {}
    age_devs: dict[int, NDArray] = {}
    for field_name in [name for name in fixed if F_FIELD.match(name)]:
        f_path[int(F_FIELD.match(field_name).group(1))] = fixed.pop(field_name)
    for field_name in [name for name in fixed if INITIAL_DEV_FIELD.match(name)]:
        age_devs[int(INITIAL_DEV_FIELD.match(field_name).group(1))] = fixed.pop(field_name)
    for field_name, value in fixed.items():
        if field_name in OBSERVATION_FIELDS + DRIVER_FIELDS:
            observation[field_name] = value
        else:
            model_changes[field_name] = value
    for i, free in enumerate(spec.estimated):
        value = free.from_theta(theta[..., i])
        if F_FIELD.match(free.field):
            f_path[int(free.field[2:])] = value
        elif INITIAL_DEV_FIELD.match(free.field):
            age_devs[int(INITIAL_DEV_FIELD.match(free.field).group(1))] = value
        elif free.field in OBSERVATION_FIELDS + DRIVER_FIELDS:
            observation[free.field] = value
        else:
            model_changes[free.field] = value
    # rows the model cannot evaluate (a natural value that overflowed, or a scale R0 that does
    # not follow from B0) run at the spec's start values and are marked invalid: the NLL of an
    # invalid row is +inf, so optimisers and samplers reject it instead of raising
    invalid = np.zeros(batch, dtype=bool)
    start = {f.field: f.init for f in spec.free}
    for name, value in model_changes.items():
        bad = ~np.isfinite(value)
        if np.any(bad):
            invalid |= bad
            model_changes[name] = np.where(bad, start[name], value)
    for name in DRIVER_FIELDS:
        if name == "initial_depletion" and spec.start != "depletion":
            continue
        bad = ~(np.isfinite(observation[name]) & (observation[name] >= 0))
        if np.any(bad):
            invalid |= bad
            observation[name] = np.where(bad, start.get(name, 1.0), observation[name])
    f_per_yr = None
    if f_path:
        f_per_yr = np.zeros(batch + (spec.years.size,))
        for year, value in f_path.items():
            f_per_yr[..., int(np.searchsorted(spec.years, year))] = value
        bad = ~np.all(np.isfinite(f_per_yr), axis=-1)
        if np.any(bad):
            invalid |= bad
            f_per_yr = np.where(bad[..., None], 0.0, f_per_yr)
    b0 = model_changes.pop("unfished_biomass_t", None)
    params = spec.base.replace(**model_changes)
    per_recruit = reference_points(params.replace(r0=1.0))
    # a stock whose recruits do not replace themselves unfished (compensation ratio <= 1)
    # cannot be the unfished stock the data scale: outside the model
    viable = per_recruit.compensation_ratio > 1.0
    if not np.all(viable):
        invalid |= ~np.broadcast_to(viable, batch)
    if b0 is not None:
        # R0 follows from the unfished biomass: B0 = R0 · (unfished biomass per recruit)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r0 = b0 / per_recruit.biomass0_t
        bad = ~(np.isfinite(r0) & (r0 > 0))
        if np.any(bad):
            invalid |= bad
            r0 = np.where(bad, spec.base.r0, r0)
        params = params.replace(r0=r0)
    if spec.unfished_change_year is not None:
        # R0 so far is the first year's; params carry the changed (current) level, which is
        # what projections continue from; predict runs the years before the change at R0/ratio
        params = params.replace(r0=np.asarray(params.r0) * observation["unfished_change"])
    rec_devs = theta[..., len(spec.estimated):]
    log_devs = np.zeros(batch + (spec.years.size,))
    index = np.searchsorted(spec.years, spec.rec_dev_years)
    log_devs[..., index] = rec_devs
    initial_devs = None
    if age_devs:
        initial_devs = np.zeros(batch + (max(age_devs),))
        for age, value in age_devs.items():
            initial_devs[..., age - 1] = value
    return Unpacked(params=params, log_rec_devs=log_devs, rec_devs=rec_devs,
                    observation=observation, multipliers=_multipliers(spec, observation),
                    invalid=invalid, f_per_yr=f_per_yr, initial_devs=initial_devs,
                    per_recruit=per_recruit)


def _multipliers(spec: ModelSpec, observation: Mapping[str, Any]) -> ProcessMultipliers | None:
    """The spec's fixed forcing times any estimated log-linear covariate effects and the
    habitat effect (:func:`habitat_log_effect`)."""
    estimated = [f.field for f in spec.free if f.field in EFFECT_FIELDS]
    with_habitat = any(f.field == HABITAT_FIELD for f in spec.free)
    if not estimated and not with_habitat:
        return spec.multipliers
    if estimated and spec.covariate is None:
        raise ConfigError(f"{', '.join(estimated)}: an estimated covariate effect needs a covariate")
    base = spec.multipliers or ProcessMultipliers()
    changes = {}
    for name in estimated:
        target = EFFECT_FIELDS[name]
        slope = np.asarray(observation[name])[..., None]
        anomaly = spec.covariate.values - spec.covariate.reference
        changes[target] = np.asarray(changes.get(target, getattr(base, target))) * np.exp(slope * anomaly)
    if with_habitat:
        effect = np.exp(habitat_log_effect(spec, observation[HABITAT_FIELD]))
        changes["recruitment"] = np.asarray(changes.get("recruitment", base.recruitment)) * effect
    return replace(base, **changes)


def habitat_log_effect(spec: ModelSpec, slope: Any, index: Any = None) -> NDArray:
    """The habitat effect on the logit of egg survival, ``(*batch, year)``:
    ``slope·(x_y − x_ref)`` with ``x`` the connectivity index (``index``, default the spec's
    series on the model years) and ``x_ref`` its value in the last model year (so R0 and the
    egg survival describe today's connectivity, which projections hold)."""
    if spec.habitat is None:
        raise ConfigError(f"{HABITAT_FIELD}: a habitat effect needs the connectivity index (habitat.csv)")
    x = spec.habitat.values if index is None else np.asarray(index, dtype=float)
    return np.asarray(slope, dtype=float)[..., None] * (x - spec.habitat.reference)


def with_options(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields changed (``dataclasses.replace``)."""
    return replace(spec, **changes)


def fix_parameter(spec: ModelSpec, field: str, value: float) -> ModelSpec:
    """A copy of ``spec`` with one free parameter held at ``value`` (natural scale).

    Used by likelihood profiles. A population-model parameter moves into the fixed ``base``;
    every other one (``unfished_biomass_t``, which keeps the B0 → R0 mapping, the observation,
    driver and start parameters, ``f_YYYY``, ``initial_dev_aN``) stays in the spec held at the
    value (transform ``"fixed"``, no slot in θ, no prior).
    """
    names = [f.field for f in spec.free]
    if field not in names:
        raise FitError(f"{field} is not estimated in this spec; estimated: {', '.join(names)}")
    parameter_fields = set(vars(spec.base)) - {"r0"}
    if field in parameter_fields:
        free = tuple(f for f in spec.free if f.field != field)
        return replace(spec, free=free, base=spec.base.replace(**{field: value}))
    free = tuple(Free(field, "fixed", None, value) if f.field == field else f for f in spec.free)
    return replace(spec, free=free)
