"""The statistical model: the NLL by component, from one batched engine run.

The objective is pure and batched: ``theta`` of shape ``(*batch, n_parameters)`` (the map is
:mod:`carpmodel.inference.spec`) gives NLL components of shape ``batch`` from one call of the
engine, which is how gradients and Hessians are computed (a batch of perturbed parameter
vectors, one engine call).

Components (negative log densities; constants included so AIC compares like with like):

- ``biomass``: the hydroacoustic survey, ``log B_obs ~ Normal(log(q·B_y), σ_y)`` with ``B_y``
  what its size selectivity sees at the end of the year, ``σ_y = σ_s·cv_y/0.15`` (``σ_s``
  estimated, the reported CVs relative weights; ``σ_extra`` in quadrature when estimated),
  a separate early-survey q when configured, independent or AR(1) errors
  (:func:`carpmodel.inference.observations.survey_nll`);
- ``recruitment_deviations``: ``ε_y ~ Normal(0, σ_R)`` on the logit of each year class's egg
  survival, bias-corrected by ``−σ_R²/2`` (for small survivals the mean, not the median,
  follows the curve);
- ``initial_age_deviations``: the deviations of ages ``1..k`` in a depleted start, also
  ``Normal(0, σ_R)``;
- ``priors``: minus the log prior density of every free parameter on its natural scale;
  the scale is estimated as the unfished survey biomass ``B0`` (life_history
  ``unfished_biomass_t``, with its prior) and R0 follows as ``B0`` over the unfished biomass per
  recruit (estimating R0 directly instead is allowed: its prior is then the B0 prior it implies);
- every further observation type of ``spec.samples`` under its own name (e.g. ``net_sample``,
  :class:`carpmodel.inference.observations.NetMeanSize`);
- optional ``biomass_upper_bound``: a one-sided lognormal bound (the "under 3,000 t in 2000");
- optional ``hatchery_fraction``: reported hatchery shares of biomass, lognormal with CV 0.5;
- optional ``hatchery_samples``: fish examined for hatchery origin, beta-binomial with
  misclassification (:func:`hatchery_sample_nll`);
- optional ``juvenile_index``: a lognormal index of wild juveniles leaving the
  density-dependence window (catchability ``juvenile_index_q``);
- ``catch_shortfall``: a steep penalty on catch the stock could not supply.

Catch and the unfished level can carry error (the remedies for starts before 2000): an
estimated multiplicative ``catch_scale``, an estimated ``unreported_catch_t`` added to each year
of ``ModelSpec.unreported_catch_years``, an estimated step ``unfished_change`` (ratio new/old of
R0) from ``ModelSpec.unfished_change_year`` on. Without ``ModelSpec.catch_sd_log`` the engine
solves F to take the catch exactly; with it, the F of each fished year is a free parameter
(``f_YYYY``) and the catch is data (``catch``: ``log C_y ~ Normal(log Ĉ_y, catch_sd_log)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln, gammaln, ndtr

from carpmodel.errors import FitError
from carpmodel.inference.observations import survey_nll
from carpmodel.inference.spec import (
    CV_REFERENCE,
    DRIVER_FIELDS,
    OBSERVATION_FIELDS,
    ModelSpec,
    Unpacked,
    unpack,
)
from carpmodel.model.dynamics import PopulationState, ProcessMultipliers, simulate
from carpmodel.model.equilibrium import ReferencePoints, depleted_state, reference_points
from carpmodel.model.params import Parameters

_LOG_2PI = float(np.log(2.0 * np.pi))
#: SD (log scale) of the one-sided upper bound; assumed: "under 3,000 t" is a rounded statement
UPPER_BOUND_SD_LOG = 0.2
#: CV given to the reported hatchery shares (addendum §F: method unknown, CV 0.5)
HATCHERY_FRACTION_CV = 0.5
#: relative SD of the catch-shortfall penalty (catch treated as nearly exact when on)
SHORTFALL_RELATIVE_SD = 0.05


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


def start_state(spec: ModelSpec, u: Unpacked) -> dict[str, NDArray]:
    """The ``initial_numbers``/``initial_length_state_cm`` of the first model year for a
    depleted start (:func:`carpmodel.model.equilibrium.depleted_state` at the unpacked depletion
    and age deviations, bias-corrected by ``−σ_R²/2``); empty for an equilibrium start, which
    the engine builds itself."""
    if spec.start != "depletion":
        return {}
    params = u.params
    if spec.unfished_change_year is not None:
        params = params.replace(r0=np.asarray(params.r0) / np.asarray(u.observation["unfished_change"]))
    devs = None
    if u.initial_devs is not None:
        devs = u.initial_devs - 0.5 * np.asarray(params.sigma_r)[..., None] ** 2
    numbers, length = depleted_state(params, u.observation["initial_depletion"], age_deviations=devs,
                                     reference=_reference(params, u))
    return {"initial_numbers": numbers, "initial_length_state_cm": length}


def run_engine(spec: ModelSpec, u: Unpacked, *, keep_numbers: bool = False, **inputs: Any) -> PopulationState:
    """The engine over the spec's years for unpacked parameters ``u`` and engine ``inputs``
    (catch or F, releases, ``log_rec_devs``, ``multipliers``; any leading batch axes).

    With an ``unfished_change_year`` it runs twice: the years before the change at the first R0
    (``u.params.r0 / unfished_change``) and, from the first run's end state, the rest at
    ``u.params.r0``; the two runs are joined along the year axis (``reference`` is the changed
    level's). :func:`predict` and the attribution's counterfactuals both run through here.
    """
    n_years = spec.years.size
    end_years = np.searchsorted(spec.years, spec.end_state_years)
    start = {k: v for k, v in start_state(spec, u).items() if k not in inputs}
    if spec.unfished_change_year is None:
        return simulate(u.params, n_years=n_years, keep_numbers=keep_numbers, keep_end_years=end_years,
                        reference=_reference(u.params, u), **start, **inputs)
    split = int(np.searchsorted(spec.years, spec.unfished_change_year))
    before = u.params.replace(r0=np.asarray(u.params.r0) / np.asarray(u.observation["unfished_change"]))
    first = simulate(before, n_years=split, keep_numbers=keep_numbers,
                     keep_end_years=end_years[end_years < split], reference=_reference(before, u), **start,
                     **{k: _years(k, v, 0, split) for k, v in inputs.items()})
    second = simulate(u.params, n_years=n_years - split, keep_numbers=keep_numbers,
                      keep_end_years=end_years[end_years >= split] - split,
                      reference=_reference(u.params, u),
                      initial_numbers=first.final_numbers,
                      initial_length_state_cm=first.final_length_state_cm,
                      **{k: _years(k, v, split, n_years) for k, v in inputs.items()})
    return _join(first, second)


def _reference(params: Parameters, u: Unpacked) -> ReferencePoints:
    """Reference points of ``params`` (``u.params`` at any R0) from the per-recruit ones
    :func:`unpack` computed."""
    return reference_points(params, per_recruit=u.per_recruit)


def _years_outermost(series: NDArray) -> NDArray:
    """``series (*batch, year)`` with its years as the outermost axis in memory, as the engine's
    series were laid out until 7309b36: numpy's sum over years then adds them in the same order
    (in turn for a batch, pairwise for one row), so fits stay the same bit for bit (the plain fit
    from ``unfished_1956``, which stops unconverged, moved by 0.04 in NLL with that order changed)."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(series, -1, 0)), 0, -1)


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
        if name in ("final_numbers", "final_length_state_cm", "reference") or (a is None and b is None):
            joined[name] = b
            continue
        if name in ("end_numbers", "end_length_cm") and (a is None or b is None):
            joined[name] = b if a is None else a
            continue
        axis = -3 if name in ("numbers", "length_cm", "natural_deaths", "catch_numbers", "end_numbers",
                              "end_length_cm") else -1
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
    """SD of log biomass observations, (*batch, n_obs): ``σ_s·cv_y/0.15`` (the reported CVs are
    relative weights of the survey SD ``sigma_survey``), and ``σ_extra`` in quadrature."""
    sigma = np.asarray(u.observation["sigma_survey"])[..., None] * spec.observations.cv / CV_REFERENCE
    extra = np.asarray(u.observation["sigma_obs_extra"])[..., None]
    return np.sqrt(sigma**2 + extra**2)


def survey_log_residuals(spec: ModelSpec, state: PopulationState, u: Unpacked) -> NDArray:
    """``log B_obs − log(q·B)`` at the survey years, (*batch, n_obs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(spec.observations.biomass_t) - np.log(survey_prediction_t(spec, state, u))


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
    rho = np.asarray(u.observation["survey_rho"]) if obs.ar1 else None
    out = {"biomass": survey_nll(survey_log_residuals(spec, state, u), observation_sd(spec, u), obs.year,
                                 rho)}
    sigma_r = np.asarray(u.params.sigma_r)[..., None]
    out["recruitment_deviations"] = np.sum(
        0.5 * _LOG_2PI + np.log(sigma_r) + 0.5 * (u.rec_devs / sigma_r) ** 2, axis=-1)
    if u.initial_devs is not None:
        out["initial_age_deviations"] = np.sum(
            0.5 * _LOG_2PI + np.log(sigma_r) + 0.5 * (u.initial_devs / sigma_r) ** 2, axis=-1)
    for sample in spec.samples:
        out[sample.name] = sample.nll(spec, state, u)
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
        shortfall = _years_outermost(state.catch_shortfall_t)
        out["catch_shortfall"] = 0.5 * np.sum((shortfall / scale) ** 2, axis=-1)
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


def _within_limits(theta: NDArray) -> NDArray:
    """Rows of ``theta`` that are finite and inside ±:data:`THETA_LIMIT`, batch shape."""
    return np.all(np.isfinite(theta) & (np.abs(theta) <= THETA_LIMIT), axis=-1)


def objective(spec: ModelSpec, theta: Any) -> NDArray:
    """Total NLL (sum of :func:`nll_components`), batch shape of ``theta``.

    Rows that are not finite, lie beyond ±:data:`THETA_LIMIT`, or give a non-finite NLL get
    ``inf`` (an optimiser or sampler then simply rejects them).
    """
    theta = np.asarray(theta, dtype=float)
    bad = ~_within_limits(theta)
    if np.any(bad):
        theta = np.where(bad[..., None], spec.initial_theta(), theta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        total = sum(nll_components(spec, theta).values())
    return np.where(np.isfinite(total) & ~bad, total, np.inf)


#: a start the model cannot evaluate has its initial F halved at most this many times
FEASIBLE_START_HALVINGS = 8
#: ... and its egg survival doubled at most this many times
FEASIBLE_START_DOUBLINGS = 3


def _evaluable(spec: ModelSpec, theta: NDArray) -> bool:
    """A finite objective and a stock in the first year: an empty start stock can still give a
    finite NLL once releases refill the lake, but the fit cannot move from it."""
    if not _within_limits(theta):
        return False
    with np.errstate(all="ignore"):          # one engine run: the objective's, and its first year
        state, u = predict(spec, theta)
        total = sum(nll_from_state(spec, state, u).values())
    return bool(np.isfinite(total) and np.asarray(state.biomass_t)[..., 0] > 0)


def feasible_start(spec: ModelSpec, theta: NDArray) -> tuple[NDArray, str]:
    """``theta`` and ``""`` when the model can be evaluated there; otherwise ``theta`` moved
    into the model (egg survival doubled, then the initial F halved), and a note saying so.

    Two start values can lie outside a structure whose fitted optimum does not:

    * the egg survival: a structure with heavy juvenile mortality (Lorenzen c = 1.5, a wider
      density-dependence window) can need more than the prior's median 0.005 for one recruit
      to replace itself (steepness below 0.2: no stock at all). The start egg survival is
      doubled (at most :data:`FEASIBLE_START_DOUBLINGS` times, staying below the bound).
    * the initial F of an equilibrium start: above the crash F of the structure the stock
      cannot persist, the start stock is empty, and an optimiser started there never moves
      (the releases refill the lake later, so the NLL can still be finite). Halving F (at most
      :data:`FEASIBLE_START_HALVINGS` times) moves the start into the model.

    Nothing else is touched. Raises FitError, naming the non-finite NLL components, when the
    start cannot be made evaluable that way.
    """
    theta = np.asarray(theta, dtype=float)
    if _evaluable(spec, theta):
        return theta, ""
    names = [f.field for f in spec.estimated]
    egg = names.index("max_egg_survival") if "max_egg_survival" in names else None
    f_index = (names.index("initial_f_per_yr") if "initial_f_per_yr" in names
               and spec.estimated[names.index("initial_f_per_yr")].transform == "log" else None)
    egg_steps = range(FEASIBLE_START_DOUBLINGS + 1) if egg is not None else range(1)
    f_steps = range(FEASIBLE_START_HALVINGS + 1) if f_index is not None else range(1)
    for doublings in egg_steps:
        for halvings in f_steps:
            if doublings == halvings == 0:
                continue
            moved = theta.copy()
            notes = []
            if doublings:
                free = spec.estimated[egg]
                start = float(free.from_theta(theta[egg]))
                value = min(start * 2.0**doublings, 0.8 * free.bounds[1] if free.bounds else np.inf)
                moved[egg] = free.to_theta(value)
                notes.append(f"start max_egg_survival raised from {start:.3g} to {value:.3g}: too few "
                             "recruits per egg for a stock at the start values")
            if halvings:
                moved[f_index] = theta[f_index] - halvings * np.log(2.0)
                notes.append(f"start initial_f_per_yr lowered from {np.exp(theta[f_index]):.3g} to "
                             f"{np.exp(moved[f_index]):.3g}/yr: the equilibrium start state cannot "
                             "persist under the start F (empty stock there)")
            if _evaluable(spec, moved):
                return moved, "; ".join(notes)
    with np.errstate(all="ignore"):
        components = nll_components(spec, theta)
    bad = [name for name, value in components.items() if not np.all(np.isfinite(value))]
    raise FitError("the model cannot be evaluated at the start values (non-finite NLL component(s): "
                   f"{', '.join(bad) or 'none; the start stock is empty'})"
                   + ("; raising the egg survival and halving the initial F did not help"
                      if egg is not None or f_index is not None else ""))
