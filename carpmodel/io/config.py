"""Run configuration: TOML files loaded into frozen dataclasses.

A run config is a TOML file whose tables mirror the dataclasses below; every key is optional
and falls back to its default (``carpmodel config --show-defaults`` prints them all)::

    seed = 20260601

    [data]
    directory = "data"

    [model]
    recruitment = "beverton_holt"     # or "ricker"
    first_year = 2000
    last_year = 2024
    initial_state = "depletion"       # or "equilibrium_f", "unfished_1956", "equilibrium_1986"

    [simulate]
    first_year = 2000
    last_year = 2024

Unknown keys and wrong types are refused with a :class:`ConfigError` naming the file, the full
dotted key and what was expected. To add a section, define a frozen dataclass and add it as a
field of :class:`RunConfig`; :func:`from_mapping` and :func:`to_toml`
(:mod:`carpmodel.io.toml_schema`) handle nested dataclasses, tuples (of scalars or of
dataclasses, written as ``[[section]]``), ``Literal`` choices and ``Mapping[str, ...]`` tables
without further code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from carpmodel.errors import ConfigError
from carpmodel.io.plausibility import bound
from carpmodel.io.toml_schema import check_choices, from_mapping, read_toml, to_toml

__all__ = [
    "DataOptions",
    "DiagnosticsSettings",
    "EffectSettings",
    "FitOptions",
    "ProjectionSettings",
    "SensitivitySettings",
    "ModelOptions",
    "RunConfig",
    "SimulateOptions",
    "check_choices",
    "config_sha256",
    "default_config",
    "check_seed",
    "from_mapping",
    "load_config",
    "to_toml",
]

YEAR_MIN, YEAR_MAX = 1900, 2100
#: seeds are stored as 64-bit integers in every output file
SEED_MAX = 2**63 - 1


def check_seed(value: Any, key: str = "seed") -> int:
    """``value`` as a seed, an integer from 0 to :data:`SEED_MAX`; a :class:`ConfigError` naming
    ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{key}: expected a non-negative integer, got {value!r}")
    if value > SEED_MAX:
        raise ConfigError(f"{key}: expected at most {SEED_MAX} (2**63 - 1: seeds are stored as 64-bit "
                          f"integers in every output), got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- validation helpers


def _check_counts(obj: Any, minimum: dict[str, int]) -> None:
    """ConfigError unless each named integer field is >= its minimum (the message says what 0 does)."""
    for name, lower in minimum.items():
        value = getattr(obj, name)
        if value < lower:
            off = " (0 switches it off)" if lower == 0 else ""
            raise ConfigError(f"{name}: expected an integer >= {lower}{off}, got {value!r}")


def _check_bounded(obj: Any, fields: dict[str, str]) -> None:
    """ConfigError when a field exceeds the plausibility bound of its quantity (carpmodel.io.plausibility)."""
    for name, quantity in fields.items():
        value = getattr(obj, name)
        problem = None if value is None else bound(quantity).problem(float(value))
        if problem:
            raise ConfigError(f"{name}: expected {problem}")


def _check_years(first_year: int, last_year: int) -> None:
    for name, year in (("first_year", first_year), ("last_year", last_year)):
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise ConfigError(f"{name}: expected a year in {YEAR_MIN}..{YEAR_MAX}, got {year!r}")
    if first_year > last_year:
        raise ConfigError(
            f"first_year: expected first_year <= last_year ({last_year}), got {first_year}"
        )


# --------------------------------------------------------------------------- the run config


@dataclass(frozen=True)
class DataOptions:
    """Where the data come from.

    ``directory`` is a data directory (relative paths resolve against the working directory;
    the default ``"data"`` means the bundled data when no ``./data`` exists).
    """

    directory: str = "data"


@dataclass(frozen=True)
class ModelOptions:
    """Model structure.

    Attributes
    ----------
    recruitment : {"beverton_holt", "ricker"}
        Stock–recruit relation (steepness form).
    first_year, last_year : int
        Calendar years of the modelled period (inclusive).
    initial_state : {"depletion", "equilibrium_f", "unfished_1956", "equilibrium_1986"}
        How numbers-at-age in the first year are set: ``depletion`` (default): the first year
        (2000) at an estimated depletion of its unfished biomass, age structure shaped by
        ``initial_f_per_yr`` and estimated age deviations; ``equilibrium_f``: 0.1's equilibrium
        under ``initial_f_per_yr`` in the first year; unfished in 1956 then driven by the catch
        history; or equilibrium in 1986.
    unfished_change_year : int or None
        From this year on the unfished level (R0, hence B0) is the earlier one times an
        estimated ratio ``unfished_change`` (spawning-habitat loss); its prior is in ``[fit]``.
        Must fall after the first modelled year. None: one unfished level throughout.
    """

    recruitment: Literal["beverton_holt", "ricker"] = "beverton_holt"
    first_year: int = 2000
    last_year: int = 2024
    initial_state: Literal["depletion", "equilibrium_f", "unfished_1956", "equilibrium_1986"] = (
        "depletion"
    )
    unfished_change_year: int | None = None

    def __post_init__(self) -> None:
        check_choices(self)
        _check_years(self.first_year, self.last_year)
        year = self.unfished_change_year
        if year is not None and not YEAR_MIN <= year <= YEAR_MAX:
            raise ConfigError(
                f"unfished_change_year: expected a year in {YEAR_MIN}..{YEAR_MAX}, got {year!r}")


@dataclass(frozen=True)
class FitOptions:
    """What the fit estimates and which data components it uses (``[fit]``).

    Attributes
    ----------
    estimate : tuple of str
        Parameters estimated (with their priors from life_history.toml); the rest are fixed.
    last_data_year : int or None
        Fit observations up to this year and predict through the last data year (hindcast).
    early_survey_last_year : int or None
        Surveys up to this year get their own catchability with a lognormal prior
        (``early_q_prior_median``, ``early_q_prior_sd_log``) when ``early_separate_q``, and
        their CVs multiplied by ``early_cv_multiplier``.
    estimate_extra_sd : bool
        Estimate an extra observation SD added in quadrature to the CVs.
    cv_multiplier : float
        Multiplies every assumed survey CV (sensitivity to the assumed CVs).
    use_upper_bound, use_hatchery_fractions : bool
        Add the one-sided "under 3,000 t in 2000" bound / the reported hatchery shares. The
        shares (23 % 2015, 26 % 2024) are a "contribution rate" with no stated method, not a
        measured hatchery-origin share: a labelled sensitivity, off by default.
    origin_samples : bool
        Fit ``origin_samples.csv`` (fish examined for hatchery origin by gear, binomial or
        beta-binomial with the method's detection and false-positive rates) when the data
        directory has one.
    release_survival_prior : {"informative", "flat"}
        Beta(0.3, 0.15) from life_history.toml, or the dossier's U(0.05, 0.8).
    dd_window_end_age_yr : int or None
        Overrides the last age of the juvenile density-dependence window.
    n_starts : int
        Optimisations from dispersed starting points (multi-start check).
    survey_sd : {"estimated", "fixed"}
        The survey's log SD (at CV 0.15; the reported CVs are relative weights): estimated by
        the linearised marginal likelihood with the deviations integrated out
        (:mod:`carpmodel.inference.variance`), or fixed at life_history ``sigma_survey``.
    survey_ar1 : bool
        Survey residuals AR(1), their coefficient estimated with the SD.
    initial_age_deviations : int
        With ``initial_state = "depletion"``: estimated deviations of ages 1..k of the first
        year's numbers (penalised like recruitment deviations); 0 for none.
    net_sample : bool
        Fit the net sample's mean length and weight (auxiliary_observations.csv) with the net's
        estimated selectivity.
    catch_sd_log : float or None
        Catch with error: the catch is data, lognormal with this SD of the log, and the F of
        every fished year is estimated. None: F is solved to take the catch exactly.
    catch_scale_sd_log : float or None
        Estimate one multiplicative scale of the recorded catch, prior lognormal with median 1
        and this SD of the log (0.3 suggested). None: no scale.
    unreported_catch_years : [first, last] or None
        Estimate an unreported catch (t/yr) added to each of these years, prior lognormal
        (``unreported_catch_prior_median_t``, ``unreported_catch_prior_sd_log``).
    unfished_change_prior_median, unfished_change_prior_sd_log : float
        Lognormal prior of the ratio of R0 after ``model.unfished_change_year`` to R0 before.
    """

    estimate: tuple[str, ...] = ("unfished_biomass_t", "max_egg_survival", "initial_depletion",
                                 "initial_f_per_yr", "survey_q", "m_ref_per_yr",
                                 "dd_strength", "release_survival")
    last_data_year: int | None = None
    early_survey_last_year: int | None = 2002
    early_q_prior_median: float = 0.3
    early_q_prior_sd_log: float = 1.0
    early_separate_q: bool = True
    early_cv_multiplier: float = 1.0
    estimate_extra_sd: bool = False
    cv_multiplier: float = 1.0
    use_upper_bound: bool = False
    use_hatchery_fractions: bool = False
    release_survival_prior: Literal["informative", "flat"] = "informative"
    dd_window_end_age_yr: int | None = None
    n_starts: int = 2
    survey_sd: Literal["estimated", "fixed"] = "estimated"
    survey_ar1: bool = True
    initial_age_deviations: int = 8
    net_sample: bool = True
    origin_samples: bool = True
    catch_sd_log: float | None = None
    catch_scale_sd_log: float | None = None
    unreported_catch_years: tuple[int, int] | None = None
    unreported_catch_prior_median_t: float = 1000.0
    unreported_catch_prior_sd_log: float = 1.0
    unfished_change_prior_median: float = 1.0
    unfished_change_prior_sd_log: float = 0.5

    def __post_init__(self) -> None:
        check_choices(self)
        if self.cv_multiplier <= 0:
            raise ConfigError(f"cv_multiplier: expected a positive number, got {self.cv_multiplier!r}")
        if self.n_starts < 1:
            raise ConfigError(f"n_starts: expected an integer >= 1, got {self.n_starts!r}")
        if not 0 <= self.initial_age_deviations <= 20:
            raise ConfigError("initial_age_deviations: expected an integer in 0..20, got "
                              f"{self.initial_age_deviations!r}")
        positive = ("early_cv_multiplier", "catch_sd_log", "catch_scale_sd_log",
                    "unreported_catch_prior_median_t", "unreported_catch_prior_sd_log",
                    "unfished_change_prior_median", "unfished_change_prior_sd_log")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name}: expected a positive number, got {value!r}")
        _check_bounded(self, {"cv_multiplier": "cv_multiplier", "early_cv_multiplier": "cv_multiplier",
                              "early_q_prior_sd_log": "sd_log", "catch_sd_log": "sd_log",
                              "catch_scale_sd_log": "sd_log", "unreported_catch_prior_sd_log": "sd_log",
                              "unfished_change_prior_sd_log": "sd_log",
                              "unreported_catch_prior_median_t": "catch_t"})
        if not 0 < self.early_q_prior_median <= 10:
            raise ConfigError(f"early_q_prior_median: expected a catchability in (0, 10] (the plausible "
                              f"range of survey_q), got {self.early_q_prior_median!r}")
        if self.n_starts > 100:
            raise ConfigError(f"n_starts: expected at most 100 starts (each is a full optimisation), "
                              f"got {self.n_starts!r}")
        for name in ("last_data_year", "early_survey_last_year"):
            year = getattr(self, name)
            if year is not None and not YEAR_MIN <= year <= YEAR_MAX:
                raise ConfigError(f"{name}: expected a year in {YEAR_MIN}..{YEAR_MAX}, got {year!r}")
        if self.dd_window_end_age_yr is not None and not 0 <= self.dd_window_end_age_yr <= 80:
            raise ConfigError(f"dd_window_end_age_yr: expected an age in 0..80 years, "
                              f"got {self.dd_window_end_age_yr!r}")
        years = self.unreported_catch_years
        if years is not None and not YEAR_MIN <= years[0] <= years[1] <= YEAR_MAX:
            raise ConfigError(f"unreported_catch_years: expected [first, last] with first <= last "
                              f"in {YEAR_MIN}..{YEAR_MAX}, got {list(years)!r}")


@dataclass(frozen=True)
class DiagnosticsSettings:
    """Sizes of the fit diagnostics (``[diagnostics]``); 0 switches one off.

    ``model_comparison`` refits Ricker, density-dependence windows 0 and 2 and the other
    initial states and ranks them by AICc; ``attribution_structures`` refits every
    release-survival prior × density-dependence window and attributes the recovery for each.
    Both are off in the default run (each costs several refits) and on in experiments/.
    """

    retrospective_peels: int = 3
    hindcast_peels: int = 3
    self_test_replicates: int = 20
    profile_points: int = 5
    posterior_samples: int = 1000
    posterior_proposals: int = 10000
    interval_draws: int = 500
    model_comparison: bool = False
    attribution_structures: bool = False

    def __post_init__(self) -> None:
        _check_counts(self, {"retrospective_peels": 0, "hindcast_peels": 0, "self_test_replicates": 0,
                             "profile_points": 0, "posterior_samples": 1, "posterior_proposals": 2,
                             "interval_draws": 1})
        if self.profile_points == 1:
            raise ConfigError("profile_points: expected 0 (no profile) or at least 2 points, got 1")


@dataclass(frozen=True)
class EffectSettings:
    """One temperature effect declared in a config (``[[projection.effect]]``).

    ``response`` names a response type of :mod:`carpmodel.model.forcing` and ``parameters`` its
    fields, e.g. ``{optimum_c = 12.55, width_c = 2.5, reference_c = 12.5}`` for
    ``thermal_dome``; ``covariate`` is ``temperature_c`` (lake summer surface) or
    ``spawning_temperature_c`` (the assumed spawning-season river temperature).
    """

    target: Literal["growth", "natural_mortality", "recruitment", "maturity"]
    response: Literal["linear", "q10", "arrhenius", "thermal_dome", "logistic"]
    parameters: Mapping[str, float] = field(default_factory=dict)
    covariate: Literal["temperature_c", "spawning_temperature_c"] = "temperature_c"
    lag_years: int = 0

    def __post_init__(self) -> None:
        check_choices(self)
        if self.lag_years < 0:
            raise ConfigError(
                f"lag_years: expected an integer >= 0, got {self.lag_years!r}")


@dataclass(frozen=True)
class ProjectionSettings:
    """Stochastic projections (``[projection]``).

    ``strategies`` is a strategies TOML (relative paths resolve against the working directory,
    then the carpmodel checkout); ``scenarios`` name tables of the data's climate_scenarios.toml;
    ``parameter_draws`` "posterior" resamples the fit's posterior draws, "normal" draws from the
    normal approximation at the MAP; ``survey_cv`` is the CV of the simulated survey that
    triggered release rules and harvest rules read; ``effects`` "default" applies the assumed
    temperature effects of carpmodel.model.forcing.default_effects, "none" switches them off; effects
    declared as ``[[projection.effect]]`` tables replace them.
    """

    draws: int = 200
    first_year: int = 2025
    last_year: int = 2100
    scenarios: tuple[str, ...] = ("baseline", "ssp126", "ssp245", "ssp370", "ssp585")
    strategies: str = "default"
    chunk_draws: int | None = None
    parameter_draws: Literal["posterior", "normal"] = "posterior"
    survey_cv: float = 0.15
    effects: Literal["default", "none"] = "default"
    effect: tuple[EffectSettings, ...] = ()
    beyond_series: Literal["hold_last", "mean_of_years", "continue_process"] = "hold_last"
    metric_years: tuple[int, ...] = (2035, 2050, 2100)
    limit_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_choices(self)
        _check_years(self.first_year, self.last_year)
        if self.draws < 1:
            raise ConfigError(f"draws: expected an integer >= 1, got {self.draws!r}")
        if self.chunk_draws is not None and self.chunk_draws < 1:
            raise ConfigError(f"chunk_draws: expected an integer >= 1, got {self.chunk_draws!r}")
        if not self.scenarios:
            raise ConfigError("scenarios: expected at least one scenario name")
        if len(set(self.scenarios)) != len(self.scenarios):
            raise ConfigError(f"scenarios: expected each scenario once, got {list(self.scenarios)!r}")
        if not 0 <= self.survey_cv <= bound("biomass_cv").upper:
            raise ConfigError(f"survey_cv: expected a CV in 0..{bound('biomass_cv').upper:g} "
                              f"({bound('biomass_cv').reason}), got {self.survey_cv!r}")
        if not 0 < self.limit_fraction < 1:
            raise ConfigError(f"limit_fraction: expected a fraction of SSB0 in (0, 1), "
                              f"got {self.limit_fraction!r}")


@dataclass(frozen=True)
class SensitivitySettings:
    """Climate sensitivity sweep (``[sensitivity]``): warming by 2100 × effect strength; draws 0
    switches it off. ``temperature_test`` fits with and without an estimated recruitment–
    temperature slope (ΔAICc; says whether the series is observed, i.e. testable);
    ``power_replicates`` > 0 runs the power analysis with that many replicates per slope;
    ``chunk_draws`` runs the sweep's engine in chunks of that many draws (memory bounded)."""

    draws: int = 100
    warming_levels_c: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    heatmap_effect: Literal["recruitment", "growth", "natural_mortality", "maturity"] = "recruitment"
    temperature_test: bool = False
    power_replicates: int = 0
    chunk_draws: int | None = None

    def __post_init__(self) -> None:
        check_choices(self)
        if len(self.warming_levels_c) < 2:
            raise ConfigError("warming_levels_c: expected at least two levels")
        levels = self.warming_levels_c
        if any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
            raise ConfigError(f"warming_levels_c: expected strictly increasing levels, got {list(levels)!r}")
        limit = bound("warming_c")
        if any(abs(w) > limit.upper for w in levels):
            raise ConfigError(f"warming_levels_c: expected levels within +-{limit.upper:g} degC "
                              f"({limit.reason}), "
                              f"got {list(levels)!r}")
        _check_counts(self, {"draws": 0, "power_replicates": 0})
        if self.chunk_draws is not None and self.chunk_draws < 1:
            raise ConfigError(f"chunk_draws: expected an integer >= 1, got {self.chunk_draws!r}")


@dataclass(frozen=True)
class SimulateOptions:
    """Years of ``carpmodel simulate`` (engine at default parameters), inclusive."""

    first_year: int = 2000
    last_year: int = 2024

    def __post_init__(self) -> None:
        _check_years(self.first_year, self.last_year)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the data; one section per dataclass field.

    Attributes
    ----------
    seed : int
        Seed of the single ``numpy.random.SeedSequence`` of the run (>= 0).
    """

    seed: int = 20260601
    data: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    simulate: SimulateOptions = field(default_factory=SimulateOptions)

    def __post_init__(self) -> None:
        check_seed(self.seed)

    def with_fit(self, **changes: Any) -> RunConfig:
        """A copy with keys of ``[model]`` and ``[fit]`` (and ``seed``) changed, each in the section
        that has it: ``default_config().with_fit(initial_state="unfished_1956", catch_sd_log=0.2)``.
        An unknown key raises ConfigError naming it."""
        model_keys = {f.name for f in dataclasses.fields(ModelOptions)}
        fit_keys = {f.name for f in dataclasses.fields(FitOptions)}
        unknown = sorted(set(changes) - model_keys - fit_keys - {"seed"})
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: expected keys of [model] or [fit] or seed")
        model = {k: v for k, v in changes.items() if k in model_keys}
        fit = {k: v for k, v in changes.items() if k in fit_keys}
        seed = changes.get("seed", self.seed)
        return dataclasses.replace(self, seed=seed, model=dataclasses.replace(self.model, **model),
                                   fit=dataclasses.replace(self.fit, **fit))


def default_config() -> RunConfig:
    """Return the configuration used when no file is given."""
    return RunConfig()


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML run config; keys not given take their defaults.

    Raises
    ------
    ConfigError
        Missing or unreadable file, invalid TOML (message names file, line and column),
        unknown key, wrong type or refused value (message names file and dotted key).
    """
    path = Path(path)
    document = read_toml(path, "config file")
    return from_mapping(RunConfig, document, str(path))


def config_sha256(config: Any) -> str:
    """Hex SHA-256 of :func:`to_toml` of the config (identifies a configuration in outputs)."""
    return hashlib.sha256(to_toml(config).encode("utf-8")).hexdigest()
