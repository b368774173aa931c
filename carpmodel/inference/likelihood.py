"""The statistical model: what is estimated, on which scale, and the NLL by component.

A :class:`ModelSpec` holds everything the objective needs (fixed parameters, the free ones
with their transforms and priors, the historical drivers and the observations). The
objective is pure and batched: ``theta`` of shape ``(*batch, n_parameters)`` gives NLL
components of shape ``batch`` from one call of the engine, which is how gradients and
Hessians are computed (a batch of perturbed parameter vectors, one engine call).

Components (negative log densities; constants included so AIC compares like with like):

- ``biomass``: ``log B_obs ~ Normal(log(q_s·B_y), σ_y)``, ``σ_y² = cv_y² + σ_extra²``,
  with ``q_s`` the survey catchability (a separate early-survey q when configured);
- ``recruitment_deviations``: ``ε_y ~ Normal(0, σ_R)``; recruits are ``f(S)·exp(ε − σ_R²/2)``
  (bias-corrected so the mean, not the median, of recruitment follows the curve);
- ``priors``: minus the log prior density of every free parameter on its natural scale;
  the scale is estimated as the unfished survey biomass ``B0`` (life_history
  ``unfished_biomass_t``, with its prior) and R0 follows as ``B0`` over the unfished biomass per
  recruit (estimating R0 directly instead is allowed: its prior is then the B0 prior it implies);
- optional ``biomass_upper_bound``: a one-sided lognormal bound (the "under 3,000 t in 2000");
- optional ``hatchery_fraction``: reported hatchery shares of biomass, lognormal with CV 0.5;
- optional ``hatchery_samples``: fish examined for hatchery origin, beta-binomial with
  misclassification (:func:`hatchery_sample_nll`);
- optional ``juvenile_index``: a lognormal index of wild juveniles leaving the
  density-dependence window (catchability ``juvenile_index_q``), the monitoring that can tell
  addition from replacement;
- ``catch_shortfall``: a steep penalty on catch the stock could not supply.

Catch and the unfished level can carry error (the remedies for starts before 2000, whose
catch history and survey record conflict when catch is taken as exact): an estimated
multiplicative ``catch_scale`` on every recorded catch, an estimated ``unreported_catch_t``
added to each year of ``ModelSpec.unreported_catch_years``, and an estimated step
``unfished_change`` (ratio new/old of R0, hence of B0, J0 and SSB0) from
``ModelSpec.unfished_change_year`` on (spawning-habitat loss). Each has its prior in
``priors``; :func:`requested_catch_t` is the catch the model is asked to take. Without
``ModelSpec.catch_sd_log`` the engine solves F to take that catch exactly; with it, the F of
each fished year is a free parameter (``f_YYYY``) and the catch is data:

- optional ``catch``: ``log C_y ~ Normal(log Ĉ_y, catch_sd_log)`` over the fished years, C the
  requested catch and Ĉ the model's Baranov catch. A stock fished down by exact catches sits on
  a knife edge (its 2000 level is a small difference of large numbers, so the NLL's curvature
  reaches ~1e7 in one direction); estimated F with catch error removes that edge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln, expit, gammaln, logit, ndtr

from carpmodel.errors import ConfigError
from carpmodel.model.drivers import HistoricalDrivers
from carpmodel.model.dynamics import PopulationState, ProcessMultipliers, reference_points, simulate
from carpmodel.model.params import Parameters
from carpmodel.priors import Prior

Transform = Literal["log", "logit", "identity", "fixed"]
#: free parameters that live in the likelihood rather than in the population model
OBSERVATION_FIELDS = ("survey_q_early", "sigma_obs_extra", "misclass_hatchery_as_wild",
                      "misclass_wild_as_hatchery", "recruitment_slope_per_c", "growth_slope_per_c",
                      "natural_mortality_slope_per_c", "maturity_slope_per_c", "juvenile_index_q")
#: free parameters that change the drivers or the unfished level (applied by :func:`predict`)
DRIVER_FIELDS = ("catch_scale", "unreported_catch_t", "unfished_change")
#: free fields ``f_YYYY``: fully selected F of year YYYY, 1/yr (catch with error)
F_FIELD = re.compile(r"^f_(\d{4})$")
#: estimated log-linear covariate effects: free field → ProcessMultipliers field it drives
EFFECT_FIELDS = {"recruitment_slope_per_c": "recruitment", "growth_slope_per_c": "growth_k",
                 "natural_mortality_slope_per_c": "natural_mortality",
                 "maturity_slope_per_c": "maturity_l50"}
_LOG_2PI = float(np.log(2.0 * np.pi))
#: SD (log scale) of the one-sided upper bound; assumed: "under 3,000 t" is a rounded statement
UPPER_BOUND_SD_LOG = 0.2
#: CV given to the reported hatchery shares (addendum §F: method unknown, CV 0.5)
HATCHERY_FRACTION_CV = 0.5
#: relative SD of the catch-shortfall penalty (catch treated as nearly exact when on)
SHORTFALL_RELATIVE_SD = 0.05


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
    """Biomass observations on the model's years (t), their CVs, and the early-survey flag."""

    year: NDArray
    biomass_t: NDArray
    cv: NDArray
    early: NDArray = field(default_factory=lambda: np.zeros(0, dtype=bool))


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
    """Everything the objective needs; build it with :func:`carpmodel.inference.fitting.build_spec`."""

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
    hatchery_samples: tuple[HatcherySample, ...] = ()
    juvenile_index: tuple[tuple[int, float, float], ...] = ()   # (year, index, cv) of wild juveniles
    misclassification: tuple[float, float] = (0.0, 0.0)   # fixed (hatchery→wild, wild→hatchery)
    unreported_catch_years: tuple[int, int] | None = None  # inclusive years of unreported_catch_t
    unfished_change_year: int | None = None    # first year of the changed R0 (unfished_change)
    catch_sd_log: float | None = None          # catch with error: F free (f_YYYY), catch lognormal

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
    observation["misclass_hatchery_as_wild"] = np.full(batch, spec.misclassification[0])
    observation["misclass_wild_as_hatchery"] = np.full(batch, spec.misclassification[1])
    fixed = {f.field: np.full(batch, f.init) for f in spec.free if not f.estimated}
    f_path: dict[int, NDArray] = {}
    for field_name in [name for name in fixed if F_FIELD.match(name)]:
        f_path[int(F_FIELD.match(field_name).group(1))] = fixed.pop(field_name)
    for field_name, value in fixed.items():
        if field_name in OBSERVATION_FIELDS + DRIVER_FIELDS:
            observation[field_name] = value
        else:
            model_changes[field_name] = value
    for i, free in enumerate(spec.estimated):
        value = free.from_theta(theta[..., i])
        if F_FIELD.match(free.field):
            f_path[int(free.field[2:])] = value
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
    if b0 is not None:
        # R0 follows from the unfished biomass: B0 = R0 · (unfished biomass per recruit)
        per_recruit = reference_points(params.replace(r0=1.0)).biomass0_t
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r0 = b0 / per_recruit
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
    return Unpacked(params=params, log_rec_devs=log_devs, rec_devs=rec_devs,
                    observation=observation, multipliers=_multipliers(spec, observation),
                    invalid=invalid, f_per_yr=f_per_yr)


def _multipliers(spec: ModelSpec, observation: Mapping[str, Any]) -> ProcessMultipliers | None:
    """The spec's fixed forcing times any estimated log-linear covariate effects."""
    estimated = [f.field for f in spec.free if f.field in EFFECT_FIELDS]
    if not estimated:
        return spec.multipliers
    if spec.covariate is None:
        raise ConfigError(f"{', '.join(estimated)}: an estimated covariate effect needs a covariate")
    base = spec.multipliers or ProcessMultipliers()
    anomaly = spec.covariate.values - spec.covariate.reference
    changes = {}
    for name in estimated:
        target = EFFECT_FIELDS[name]
        slope = np.asarray(observation[name])[..., None]
        changes[target] = np.asarray(getattr(base, target)) * np.exp(slope * anomaly)
    return replace(base, **changes)


def predict(spec: ModelSpec, theta: Any, *, keep_numbers: bool = False,
            log_rec_devs: Any = None, release_fish: Any = None,
            catch_t: Any = None) -> tuple[PopulationState, Unpacked]:
    """Run the engine for ``theta``; optional overrides serve counterfactual hindcasts.

    The catch is :func:`requested_catch_t` unless ``catch_t`` overrides it; with catch error
    (estimated F, ``u.f_per_yr``) the engine runs on that F instead, unless ``catch_t`` is
    given. With an
    ``unfished_change_year`` the engine runs twice: the years before the change at the first
    R0 (``u.params.r0 / unfished_change``) and, from the first run's end state, the rest at
    ``u.params.r0``; the two runs are joined along the year axis (``reference`` is the
    changed level's).
    """
    u = unpack(spec, theta)
    sigma_r = np.asarray(u.params.sigma_r)[..., None]
    devs = u.log_rec_devs if log_rec_devs is None else np.asarray(log_rec_devs)
    fishing = ({"f_per_yr": u.f_per_yr} if u.f_per_yr is not None and catch_t is None else
               {"catch_t": requested_catch_t(spec, u) if catch_t is None else catch_t})
    inputs = dict(
        multipliers=u.multipliers or ProcessMultipliers(), **fishing,
        release_fish=spec.drivers.release_fish if release_fish is None else release_fish,
        release_length_cm=spec.drivers.release_length_cm,
        log_rec_devs=devs - 0.5 * sigma_r**2)
    return run_engine(spec, u, keep_numbers=keep_numbers, **inputs), u


def run_engine(spec: ModelSpec, u: Unpacked, *, keep_numbers: bool = False, **inputs: Any) -> PopulationState:
    """The engine over the spec's years for unpacked parameters ``u`` and engine ``inputs``
    (catch or F, releases, ``log_rec_devs``, ``multipliers``; any leading batch axes).

    With an ``unfished_change_year`` it runs twice: the years before the change at the first R0
    (``u.params.r0 / unfished_change``) and, from the first run's end state, the rest at
    ``u.params.r0``; the two runs are joined along the year axis (``reference`` is the changed
    level's). :func:`predict` and the attribution's counterfactuals both run through here.
    """
    n_years = spec.years.size
    if spec.unfished_change_year is None:
        return simulate(u.params, n_years=n_years, keep_numbers=keep_numbers, **inputs)
    split = int(np.searchsorted(spec.years, spec.unfished_change_year))
    before = u.params.replace(r0=np.asarray(u.params.r0) / np.asarray(u.observation["unfished_change"]))
    first = simulate(before, n_years=split, keep_numbers=keep_numbers,
                     **{k: _years(k, v, 0, split) for k, v in inputs.items()})
    second = simulate(u.params, n_years=n_years - split, keep_numbers=keep_numbers,
                      initial_numbers=first.final_numbers,
                      initial_length_state_cm=first.final_length_state_cm,
                      **{k: _years(k, v, split, n_years) for k, v in inputs.items()})
    return _join(first, second)


def requested_catch_t(spec: ModelSpec, u: Unpacked) -> NDArray:
    """Catch the model is asked to take, t, ``(*batch, year)``: the recorded catch times
    ``catch_scale`` plus ``unreported_catch_t`` in the years of ``spec.unreported_catch_years``."""
    recorded = np.asarray(spec.drivers.catch_t, dtype=float)
    if not any(f.field in ("catch_scale", "unreported_catch_t") for f in spec.free):
        return recorded
    catch = recorded * np.asarray(u.observation["catch_scale"])[..., None]
    if spec.unreported_catch_years is not None:
        first, last = spec.unreported_catch_years
        inside = (spec.years >= first) & (spec.years <= last)
        catch = catch + np.where(inside, np.asarray(u.observation["unreported_catch_t"])[..., None], 0.0)
    return catch


#: position of the year axis of each simulate input, counted from the end
_YEAR_AXIS = {"catch_t": -1, "f_per_yr": -1, "log_rec_devs": -1, "release_fish": -2,
              "release_length_cm": -2}


def _years(name: str, value: Any, start: int, stop: int) -> Any:
    """Years ``start:stop`` of the simulate input ``name``."""
    if isinstance(value, ProcessMultipliers):
        return ProcessMultipliers(**{
            key: v if np.ndim(v) == 0 else np.asarray(v)[..., start:stop]
            for key, v in vars(value).items()})
    if value is None:
        return None
    axis = _YEAR_AXIS[name]
    index = (Ellipsis, slice(start, stop)) + (slice(None),) * (-1 - axis)
    return np.asarray(value)[index]


def _join(first: PopulationState, second: PopulationState) -> PopulationState:
    """Two consecutive engine runs as one: series joined along the year axis; end state and
    reference points of the second."""
    joined = {}
    for name, a in vars(first).items():
        b = getattr(second, name)
        if name in ("final_numbers", "final_length_state_cm", "reference") or a is None:
            joined[name] = b
            continue
        axis = -3 if name in ("numbers", "length_cm", "natural_deaths", "catch_numbers") else -1
        a, b = np.asarray(a), np.asarray(b)
        shape = np.broadcast_shapes(a.shape[:axis], b.shape[:axis])
        joined[name] = np.concatenate([np.broadcast_to(a, shape + a.shape[axis:]),
                                       np.broadcast_to(b, shape + b.shape[axis:])], axis=axis)
    return PopulationState(**joined)


def survey_prediction_t(spec: ModelSpec, state: PopulationState, u: Unpacked) -> NDArray:
    """Predicted survey biomass ``q·B`` at the observation years, t, shape (*batch, n_obs)."""
    index = np.searchsorted(spec.years, spec.observations.year)
    q = np.asarray(u.params.survey_q)[..., None]
    if u.observation["survey_q_early"] is not None:
        q = np.where(spec.observations.early, np.asarray(u.observation["survey_q_early"])[..., None], q)
    return q * state.biomass_t[..., index]


def observation_sd(spec: ModelSpec, u: Unpacked) -> NDArray:
    """SD of log biomass observations, (*batch, n_obs)."""
    extra = np.asarray(u.observation["sigma_obs_extra"])[..., None]
    return np.sqrt(spec.observations.cv**2 + extra**2)


def nll_components(spec: ModelSpec, theta: Any) -> dict[str, NDArray]:
    """Negative log-likelihood by component, each of the batch shape of ``theta``."""
    state, u = predict(spec, theta)
    return nll_from_state(spec, state, u)


def nll_from_state(spec: ModelSpec, state: PopulationState, u: Unpacked) -> dict[str, NDArray]:
    """:func:`nll_components` of an engine run already made: ``(state, u) = predict(spec, theta)``.

    Lets a caller that scores many data sets against one engine batch (the monitoring design's
    refits) reuse the run; ``spec`` supplies the data, so its observations may broadcast
    against the batch. Each component has the batch shape of ``state``.
    """
    obs = spec.observations
    predicted = survey_prediction_t(spec, state, u)
    sd = observation_sd(spec, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = (np.log(obs.biomass_t) - np.log(predicted)) / sd
    out = {"biomass": np.sum(0.5 * _LOG_2PI + np.log(sd) + 0.5 * resid**2, axis=-1)}
    sigma_r = np.asarray(u.params.sigma_r)[..., None]
    out["recruitment_deviations"] = np.sum(
        0.5 * _LOG_2PI + np.log(sigma_r) + 0.5 * (u.rec_devs / sigma_r) ** 2, axis=-1)
    prior = np.zeros(state.biomass_t.shape[:-1])
    # the B0 prior is on the first year's unfished level (before any unfished_change)
    first_b0 = state.reference.biomass0_t / np.asarray(u.observation["unfished_change"])
    for free in spec.free:
        if free.field == "r0":
            if spec.b0_prior is not None:
                prior = prior - spec.b0_prior.logpdf(first_b0)
        elif free.field == "unfished_biomass_t":
            if free.prior is not None:
                prior = prior - free.prior.logpdf(first_b0)
        elif free.prior is not None:
            value = (u.observation[free.field] if free.field in OBSERVATION_FIELDS + DRIVER_FIELDS
                     else getattr(u.params, free.field))
            prior = prior - free.prior.logpdf(value)
    out["priors"] = prior
    if spec.upper_bound is not None:
        year, bound_t = spec.upper_bound
        b = state.biomass_t[..., int(np.searchsorted(spec.years, year))]
        z = (np.log(bound_t) - np.log(b * np.asarray(u.params.survey_q))) / UPPER_BOUND_SD_LOG
        out["biomass_upper_bound"] = -np.log(np.maximum(ndtr(z), 1e-300))
    if spec.hatchery_fractions:
        years = np.array([y for y, _ in spec.hatchery_fractions])
        reported = np.array([f for _, f in spec.hatchery_fractions])
        model = state.hatchery_fraction_biomass[..., np.searchsorted(spec.years, years)]
        r = (np.log(reported) - np.log(np.maximum(model, 1e-12))) / HATCHERY_FRACTION_CV
        out["hatchery_fraction"] = np.sum(0.5 * _LOG_2PI + np.log(HATCHERY_FRACTION_CV)
                                          + 0.5 * r**2, axis=-1)
    if spec.hatchery_samples:
        out["hatchery_samples"] = hatchery_sample_nll(spec, state, u)
    if spec.juvenile_index:
        years = np.array([row[0] for row in spec.juvenile_index])
        index = np.array([row[1] for row in spec.juvenile_index], dtype=float)
        cv = np.array([row[2] for row in spec.juvenile_index], dtype=float)
        predicted = (np.asarray(u.observation["juvenile_index_q"])[..., None]
                     * state.wild_window_survivors[..., np.searchsorted(spec.years, years)])
        r = (np.log(index) - np.log(np.maximum(predicted, 1e-300))) / cv
        out["juvenile_index"] = np.sum(0.5 * _LOG_2PI + np.log(cv) + 0.5 * r**2, axis=-1)
    if spec.catch_sd_log is not None:
        requested = requested_catch_t(spec, u)
        fished = np.broadcast_to(requested, state.catch_t.shape) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (np.log(np.where(fished, requested, 1.0))
                 - np.log(np.where(fished, np.maximum(state.catch_t, 1e-300), 1.0))) / spec.catch_sd_log
        out["catch"] = np.sum(np.where(fished, 0.5 * _LOG_2PI + np.log(spec.catch_sd_log) + 0.5 * r**2, 0.0),
                              axis=-1)
    if spec.penalise_shortfall:
        scale = SHORTFALL_RELATIVE_SD * np.maximum(requested_catch_t(spec, u), 1.0)
        out["catch_shortfall"] = 0.5 * np.sum((state.catch_shortfall_t / scale) ** 2, axis=-1)
    if u.invalid is not None and np.any(u.invalid):
        out = {name: np.where(u.invalid, np.inf, value) for name, value in out.items()}
    return out


def hatchery_sample_nll(spec: ModelSpec, state: PopulationState, u: Unpacked) -> NDArray:
    """Beta-binomial NLL of the hatchery-origin samples (batch shape).

    The probability that an examined fish is classified hatchery is
    ``p = π·(1 − m_hw) + (1 − π)·m_wh`` with π the model's hatchery share of survey-age numbers
    and ``m_hw``/``m_wh`` the misclassification rates; over-dispersion from clustered sampling
    enters through the intra-class correlation ``ρ = (deff − 1)/(n − 1)``
    (``α = p(1 − ρ)/ρ``, ``β = (1 − p)(1 − ρ)/ρ``; ρ = 0 is the binomial).
    """
    samples = spec.hatchery_samples
    years = np.array([s.year for s in samples])
    n = np.array([s.n_examined for s in samples], dtype=float)
    k = np.array([s.n_hatchery for s in samples], dtype=float)
    deff = np.array([s.design_effect for s in samples], dtype=float)
    share = state.hatchery_fraction_numbers[..., np.searchsorted(spec.years, years)]
    m_hw = np.asarray(u.observation["misclass_hatchery_as_wild"])[..., None]
    m_wh = np.asarray(u.observation["misclass_wild_as_hatchery"])[..., None]
    p = np.clip(share * (1.0 - m_hw) + (1.0 - share) * m_wh, 1e-9, 1.0 - 1e-9)
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    rho = np.where(n > 1, (deff - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
    binomial = log_choose + k * np.log(p) + (n - k) * np.log1p(-p)
    safe_rho = np.where(rho > 0, rho, 0.5)
    a = p * (1.0 - safe_rho) / safe_rho
    b = (1.0 - p) * (1.0 - safe_rho) / safe_rho
    beta_binomial = log_choose + betaln(k + a, n - k + b) - betaln(a, b)
    return -np.sum(np.where(rho > 0, beta_binomial, binomial), axis=-1)


#: estimation-scale values beyond ±this (exp(50) ≈ 5e21) are treated as outside the model
THETA_LIMIT = 50.0


def objective(spec: ModelSpec, theta: Any) -> NDArray:
    """Total NLL (sum of :func:`nll_components`), batch shape of ``theta``.

    Rows that are not finite, lie beyond ±:data:`THETA_LIMIT`, or give a non-finite NLL get
    ``inf`` (an optimiser or sampler then simply rejects them).
    """
    theta = np.asarray(theta, dtype=float)
    bad = ~np.all(np.isfinite(theta) & (np.abs(theta) <= THETA_LIMIT), axis=-1)
    if np.any(bad):
        theta = np.where(bad[..., None], spec.initial_theta(), theta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        total = sum(nll_components(spec, theta).values())
    return np.where(np.isfinite(total) & ~bad, total, np.inf)
