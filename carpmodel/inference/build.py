"""A :class:`~carpmodel.inference.spec.ModelSpec` from a data directory and a run configuration.

What is estimated comes from ``[fit] estimate`` (priors from ``life_history.toml``), plus what
the configuration implies: the early survey's own catchability, the survey's AR(1) coefficient,
the deviations of the depleted start (``initial_dev_a1..k``, penalised like recruitment
deviations), the net sample's selectivity when the data hold a net sample
(:class:`~carpmodel.inference.observations.NetMeanSize`), catch-error F's and the remedies of the
starts before 2000.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import ConfigError, DataError, FitError
from carpmodel.inference.likelihood import feasible_start, predict, requested_catch_t
from carpmodel.inference.observations import NetMeanSize, OriginSamples
from carpmodel.inference.spec import (
    EFFECT_FIELDS,
    HABITAT_FIELD,
    Covariate,
    Free,
    ModelSpec,
    Observations,
)
from carpmodel.io.config import FitOptions, ModelOptions, RunConfig, default_config
from carpmodel.model.drivers import historical_drivers
from carpmodel.model.recruitment import MAX_EGG_SURVIVAL_BOUND
from carpmodel.model.simulation import default_parameters
from carpmodel.priors import Prior

#: fields whose natural range is (0, 1): estimated on a logit scale
_FRACTIONS = {"max_egg_survival": (0.0, MAX_EGG_SURVIVAL_BOUND), "release_survival": (0.0, 1.0),
              "relative_reproductive_success": (0.0, 1.0), "initial_depletion": (0.0, 1.0)}

#: prior of an estimated log-linear temperature-effect slope, 1/degC (assumed: ±2 per degC
#: covers a tenfold change in the rate over ~1 degC; no species data)
EFFECT_SLOPE_PRIOR = Prior("normal", {"mean": 0.0, "sd": 1.0})
#: prior of the habitat slope on the logit of egg survival per unit of the connectivity index
#: (data/SOURCES.md, assumption_habitat_index; assumed): centred on no effect; SD 0.5 puts the
#: full 0 -> 1 change within x0.37-x2.7 of egg survival at 95 % and spans at one SD the +0.43 to
#: +0.55 (log) recruitment pulse of 2011-2014 the science review found with narrower survey CVs
HABITAT_SLOPE_PRIOR = Prior("normal", {"mean": 0.0, "sd": 0.5})
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

#: estimable values that live in life_history.toml but not in Parameters (their start is the file's)
LIFE_HISTORY_ONLY = ("unfished_biomass_t", "initial_depletion")
#: what ``[fit] estimate`` may name besides the Parameters fields
ESTIMABLE_EXTRA = ("unfished_biomass_t", "initial_depletion", HABITAT_FIELD) + tuple(EFFECT_FIELDS)
#: Parameters fields that cannot be estimated (structure, not values)
NOT_ESTIMABLE = ("r0", "max_age_yr", "recruitment", "dd_window_end_age_yr", "f_max_per_yr",
                 "release_reference_weight_g")
#: Parameters fields estimated on their natural scale (they can be negative or zero)
_IDENTITY = ("release_survival_size_slope",)


def estimable_names(life_history: Any) -> tuple[str, ...]:
    """Names ``[fit] estimate`` accepts: the population model's parameters that have a value in
    the data's life_history.toml, and :data:`ESTIMABLE_EXTRA`."""
    from carpmodel.model.params import Parameters

    fields = [f for f in Parameters.__dataclass_fields__ if f not in NOT_ESTIMABLE]
    return tuple(sorted(set(fields) | set(ESTIMABLE_EXTRA)))


def check_estimable(names: Any, life_history: Any) -> None:
    """ConfigError naming ``fit.estimate`` for a name the fit cannot estimate, with the valid names."""
    valid = estimable_names(life_history)
    names = tuple(names)
    for name in names:
        if name not in valid:
            raise ConfigError(f"fit.estimate: unknown parameter {name!r}; valid: {', '.join(valid)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"fit.estimate: expected each parameter once, got {repeated[0]!r} twice or more")


def build_spec(data: Any, config: RunConfig | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from a loaded data directory and a run configuration (its ``[model]``
    and ``[fit]`` sections; default :func:`~carpmodel.io.config.default_config`)."""
    config = default_config() if config is None else config
    model, options = config.model, config.fit
    lh = data.life_history
    first = {"equilibrium_f": model.first_year, "depletion": model.first_year, "unfished_1956": 1956,
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
        early=early if options.early_separate_q else np.zeros(obs_year.size, bool),
        ar1=options.survey_ar1)
    depletion = model.initial_state == "depletion"
    check_estimable(options.estimate, lh)

    free = []
    covariate = habitat = None
    for name in options.estimate:
        if model.initial_state == "unfished_1956" and name == "initial_f_per_yr":
            continue
        if name == "initial_depletion" and not depletion:
            continue
        if name in EFFECT_FIELDS:
            free.append(Free(name, "identity", EFFECT_SLOPE_PRIOR, 0.0))
            covariate = covariate or lake_temperature_covariate(data, years)
            continue
        if name == HABITAT_FIELD:
            free.append(Free(name, "identity", HABITAT_SLOPE_PRIOR, 0.0))
            habitat = habitat_covariate(data, years)
            continue
        entry = lh[name] if name in lh else None
        prior = entry.prior if entry is not None else None
        if name == "release_survival" and options.release_survival_prior == "flat":
            prior = FLAT_RELEASE_SURVIVAL
        init = float(lh.value(name) if name in LIFE_HISTORY_ONLY else getattr(base, name))
        if prior is not None and prior.distribution == "uniform":
            lo, hi = prior.parameters["lower"], prior.parameters["upper"]
            free.append(Free(name, "logit", None, float(np.clip(init, lo + 1e-3, hi - 1e-3)), (lo, hi)))
        elif name in _FRACTIONS:
            free.append(Free(name, "logit", prior, init, _FRACTIONS[name]))
        elif name in _IDENTITY:
            free.append(Free(name, "identity", prior, init))
        else:
            free.append(Free(name, "log", prior, init))
    if early_last is not None and options.early_separate_q:
        median, sd_log = options.early_q_prior_median, options.early_q_prior_sd_log
        free.append(Free("survey_q_early", "log",
                         Prior("lognormal", {"median": median, "sd_log": sd_log}), median))
    if options.estimate_extra_sd:
        free.append(Free("sigma_obs_extra", "log", Prior("lognormal", {"median": 0.1, "sd_log": 1.0}), 0.1))
    if depletion and "initial_depletion" not in options.estimate:     # held at its life-history value
        free.append(Free("initial_depletion", "fixed", None, float(lh.value("initial_depletion"))))
    if depletion:
        free.extend(Free(f"initial_dev_a{age}", "identity", None, 0.0)
                    for age in range(1, options.initial_age_deviations + 1))
    samples = []
    net = NetMeanSize.from_data(data, years[0], last_data) if options.net_sample else None
    if net is not None:
        samples.append(net)
        free.extend([Free("net_mode_cm", "log", lh["net_mode_cm"].prior, lh.value("net_mode_cm")),
                     Free("net_width_cm", "log", lh["net_width_cm"].prior, lh.value("net_width_cm"))])
    origin = (OriginSamples.from_data(data, years[0], last_data, base.max_age_yr)
              if options.origin_samples else None)
    if origin is not None:
        samples.append(origin)
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
                     penalise_shortfall=model.initial_state not in ("equilibrium_f", "depletion"),
                     covariate=covariate, habitat=habitat,
                     unreported_catch_years=options.unreported_catch_years,
                     unfished_change_year=model.unfished_change_year,
                     start="depletion" if depletion else "equilibrium",
                     sigma_survey=float(lh.value("sigma_survey")), samples=tuple(samples),
                     net_selectivity=(float(lh.value("net_mode_cm")), float(lh.value("net_width_cm"))),
                     sigma_survey_prior=lh["sigma_survey"].prior)
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




def habitat_covariate(data: Any, years: NDArray) -> Covariate:
    """The data's connectivity index (``habitat.csv``) on ``years``; reference = its value in the
    last of ``years`` (today's connectivity). Years before the series hold its first value
    (the pre-passage level); a missing file or a missing later year raises DataError."""
    series = getattr(data, "habitat", None)
    if series is None:
        raise DataError(f"{data.directory / 'habitat.csv'}: {HABITAT_FIELD} is estimated but the data "
                        "have no habitat.csv (year, passage_index, source_id, confidence)")
    index = {int(y): float(v) for y, v in zip(series.year, series.passage_index, strict=True)}
    first = int(series.year[0])
    missing = [int(y) for y in years if int(y) >= first and int(y) not in index]
    if missing:
        raise DataError(f"{series.path}: no passage_index for year(s) {missing}; expected every modelled "
                        f"year from {first} when {HABITAT_FIELD} is estimated")
    values = np.array([index.get(int(y), index[first]) for y in years])
    return Covariate(values=values, reference=float(values[-1]))
