"""Checks before any long work: everything a command will need, validated in the first second.

The CLI calls these after reading the configs and the data and checking ``--out``, before the
first stage, so that a run that cannot finish stops at once with one line naming the option,
file or key (a :class:`~carpmodel.errors.CarpmodelError`, exit 2), never after minutes of
fitting. What each checks:

- :func:`check_fit_request`: the model can be built (``[fit] estimate`` names, the data cover
  the model years), ``last_data_year`` lies inside the observations, the diagnostics' peels
  leave observations to fit, the profiled parameter is estimated.
- :func:`check_projection_request`: the strategies file and its release sizes, the climate
  scenarios and anomalies, declared effects, the first projection year, dask (chunking) and
  dask.distributed (``--scheduler``) installed.
- :func:`check_sensitivity_request`: the climate file and anomalies the sweep needs, dask.
- :func:`check_work`: an estimate of the memory and time of the projection, the climate
  sensitivity and the posterior sample; a request that cannot fit in the memory available (or
  would take more than :data:`MAX_HOURS`) is refused naming the option and the chunking option
  that would make it fit; a long one gives a note with the estimate.

The work estimates are calibrated constants (:data:`PROJECTION_BYTES_PER_CELL` …), measured on
the bundled data on two cores; they are meant to be right within a factor of two.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carpmodel.errors import ConfigError
from carpmodel.io.config import RunConfig

__all__ = [
    "MAX_HOURS",
    "Workload",
    "available_memory_bytes",
    "check_budget",
    "check_data_directory",
    "check_diagnostics",
    "check_fit_request",
    "check_last_data_year",
    "check_projection_request",
    "check_run_request",
    "check_sensitivity_request",
    "check_years_covered",
    "check_work",
    "monitoring_workload",
    "posterior_workload",
    "projection_workload",
    "refit_workloads",
    "sensitivity_workload",
]

#: the parameter the likelihood profile of the fit diagnostics varies
PROFILED = "unfished_biomass_t"
#: fewest survey observations a fit (or a peel of the retrospective) may keep
MIN_FITTED_OBSERVATIONS = 2
#: refuse work estimated to take longer than this on one core
MAX_HOURS = 7 * 24.0
#: a stage estimated to take longer than this (s) gives a note with the estimate
NOTE_SECONDS = 60.0
#: share of the available memory a request may plan to use
MEMORY_SHARE = 0.8
#: projection, measured (peak resident memory and time of project + metrics, unchunked, per
#: strategy × scenario × year × draw "cell"): 123 B and 3.2 µs at 1,600 draws of the default config
PROJECTION_BYTES_PER_CELL = 128
PROJECTION_SECONDS_PER_CELL = 3.5e-6
#: chunked, the engine holds one chunk (PROJECTION_BYTES_PER_CELL per cell of it) but the
#: projection and its metrics hold every draw: 74 B per cell measured (1,600 draws in chunks of 200)
PROJECTION_CHUNKED_BYTES_PER_CELL = 80
#: climate sensitivity at 5 warming levels: engine memory per draw of a block (1.3 MB measured),
#: summary kept per draw, time per draw (9 ms measured); scaled by the number of levels
SENSITIVITY_BLOCK_BYTES_PER_DRAW = 1.5e6
SENSITIVITY_KEPT_BYTES_PER_DRAW = 4e3
SENSITIVITY_SECONDS_PER_DRAW = 0.012
#: the chunk size a refusal suggests when the draws do not fit even in chunks of the requested size
CHUNK_SUGGESTION = 1000
#: posterior sample: memory per proposal and parameter (the proposals and their densities)
POSTERIOR_BYTES_PER_VALUE = 32


# --------------------------------------------------------------------------- fit


def observation_years(data: Any, config: RunConfig) -> np.ndarray:
    """Years of the biomass observations inside the model years (what a fit can use)."""
    years = np.asarray(data.biomass.year)
    return years[(years >= _first_model_year(config)) & (years <= config.model.last_year)]


def _first_model_year(config: RunConfig) -> int:
    return {"equilibrium_f": config.model.first_year, "depletion": config.model.first_year,
            "unfished_1956": 1956, "equilibrium_1986": 1986}[config.model.initial_state]


def check_last_data_year(data: Any, config: RunConfig, *, option: str = "fit.last_data_year",
                         hold_out: bool = False) -> None:
    """``last_data_year`` must keep :data:`MIN_FITTED_OBSERVATIONS` observations in the fit and,
    with ``hold_out`` (``fit --last-data-year``), leave at least one to predict; ConfigError
    naming ``option`` with the valid range otherwise."""
    year = config.fit.last_data_year
    if year is None:
        return
    observed = observation_years(data, config)
    if observed.size < MIN_FITTED_OBSERVATIONS + hold_out:
        raise ConfigError(f"{option}: the data have {observed.size} biomass observation(s) in the model "
                          f"years "
                          f"{config.model.first_year}-{config.model.last_year}, too few to fit and hold out")
    lowest = int(observed[MIN_FITTED_OBSERVATIONS - 1])
    highest = int(observed[-2]) if hold_out else config.model.last_year
    if not lowest <= year <= highest:
        held = " and at least one held out" if hold_out else ""
        raise ConfigError(f"{option}: expected a year in {lowest}..{highest} (the biomass observations span "
                          f"{observed[0]}-{observed[-1]}; at least {MIN_FITTED_OBSERVATIONS} must be "
                          f"fitted{held}), "
                          f"got {year}")


def check_years_covered(data: Any, first_year: int, last_year: int, option: str) -> None:
    """Modelled years ``first_year..last_year`` need a catch record each: ConfigError naming
    ``option`` and the years catch.csv covers otherwise."""
    years = np.asarray(data.catch.year)
    low, high = int(years[0]), int(years[-1])
    if not low <= first_year <= last_year <= high:
        raise ConfigError(f"{option}: expected years within {low}..{high}, got {first_year}-{last_year}: "
                          f"every modelled year needs its catch and {data.catch.path} covers {low}-{high}")


def check_fit_request(data: Any, config: RunConfig, *, option: str = "fit.last_data_year",
                      hold_out: bool = False, diagnostics: bool = True) -> Any:
    """Build the fit's ModelSpec (every ``[model]``/``[fit]`` value checked against the data)
    and, with ``diagnostics``, check the ``[diagnostics]`` sizes against the observations.
    Returns the spec."""
    from carpmodel.inference.build import build_spec

    check_years_covered(data, _first_model_year(config), config.model.last_year,
                        f"model.first_year/last_year (initial_state {config.model.initial_state})")
    check_last_data_year(data, config, option=option, hold_out=hold_out)
    spec = build_spec(data, config)
    if diagnostics:
        check_diagnostics(data, config, spec)
    return spec


def check_diagnostics(data: Any, config: RunConfig, spec: Any) -> None:
    """The ``[diagnostics]`` sizes against the observations and the fit's ModelSpec ``spec``."""
    settings = config.diagnostics
    peels = max(settings.retrospective_peels, settings.hindcast_peels)
    if peels:
        observed = observation_years(data, config)
        terminal = config.fit.last_data_year or config.model.last_year
        kept = [int(np.sum(observed <= terminal - k)) for k in range(1, peels + 1)]
        if kept[-1] < MIN_FITTED_OBSERVATIONS:
            most = sum(1 for n in kept if n >= MIN_FITTED_OBSERVATIONS)
            name = "retrospective_peels" if settings.retrospective_peels == peels else "hindcast_peels"
            raise ConfigError(f"diagnostics.{name}: expected at most {most} peels (each removes a year up to "
                              f"{terminal}; the last must keep {MIN_FITTED_OBSERVATIONS} of the "
                              f"{observed.size} observations), got {peels}")
    profiled = [free for free in spec.free if free.field == PROFILED]
    if settings.profile_points and (not profiled or profiled[0].prior is None):
        why = "fit.estimate does not include it" if not profiled else "it has no prior in the data"
        raise ConfigError(f"diagnostics.profile_points: the likelihood profile is of {PROFILED} and {why}; "
                          f"estimate it with a prior or set profile_points = 0")


# --------------------------------------------------------------------------- projection and sensitivity


def _require(module: str, option: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{option} needs {module}, which is not installed: "
                          f"pip install 'carpmodel[distributed]', or leave {option} unset")


@dataclass(frozen=True)
class ProjectionPlan:
    """What a projection request will run: the strategy set and the scenario names."""

    strategies: Any
    scenarios: tuple[str, ...]


def check_projection_request(data: Any, config: RunConfig, *, fit_last_year: int,
                             scheduler: str | None = None) -> ProjectionPlan:
    """Everything ``[projection]`` needs from files and the installation, before any draw."""
    from carpmodel.io.strategies_file import load_strategies
    from carpmodel.management.climate import ClimateForcing
    from carpmodel.pipeline import declared_effect, resolve_path

    settings = config.projection
    if settings.first_year != fit_last_year + 1:
        raise ConfigError(f"projection.first_year: expected {fit_last_year + 1} (the year after the fit's "
                          f"last "
                          f"year {fit_last_year}), got {settings.first_year}")
    path = resolve_path(settings.strategies)
    strategies = load_strategies(path)
    _check_release_sizes(strategies, data, path)
    effects = tuple(declared_effect(e, i) for i, e in enumerate(settings.effect))
    options: dict[str, Any] = {"scenario_names": tuple(settings.scenarios),
                               "beyond_series": settings.beyond_series}
    if effects:
        options["effects"] = effects
    try:
        ClimateForcing.from_data(data, **options)
    except ConfigError as exc:
        raise ConfigError(f"projection.{exc}") from None
    if settings.chunk_draws is not None:
        _require("dask", "projection.chunk_draws (--chunk-draws)")
    if scheduler:
        _require("distributed", "--scheduler")
    return ProjectionPlan(strategies, tuple(settings.scenarios))


def _check_release_sizes(strategies: Any, data: Any, path: Path) -> None:
    """No strategy releases fish heavier than the asymptotic weight of the data's growth model."""
    from carpmodel.io.plausibility import asymptotic_weight_g

    life = data.life_history
    w_inf = asymptotic_weight_g(life)
    for strategy in strategies.strategies:
        for i, component in enumerate(strategy.releases):
            sizes = [component.weight_g] if hasattr(component, "weight_g") else \
                [share.weight_g for share in getattr(component, "shares", ())]
            for weight in sizes:
                if weight > w_inf:
                    raise ConfigError(f"{path}, key strategies.{strategy.name}.releases[{i}]: expected "
                                      f"release "
                                      f"weights up to the asymptotic weight {w_inf:,.0f} g of {life.path} "
                                      f"(no fish grows heavier), got {weight:g} g")


def check_sensitivity_request(data: Any, config: RunConfig) -> None:
    """What the climate-sensitivity sweep needs (if configured): the climate file, dask."""
    from carpmodel.management.climate import ClimateForcing

    settings = config.sensitivity
    if settings.draws == 0:
        return
    ClimateForcing.from_data(data)
    if settings.chunk_draws is not None:
        _require("dask", "sensitivity.chunk_draws (--chunk-draws)")


# --------------------------------------------------------------------------- work


@dataclass(frozen=True)
class Workload:
    """Estimated size of one piece of work of ``units`` draws (or proposals).

    Its peak memory is ``units × held`` (outputs, summaries; ``held_chunked`` when computed in
    chunks) plus ``at once × bytes_per_unit_at_once`` for the units computed together: all of
    them, ``chunk`` of them when chunked, or blocks of ``max(block, units / 10)`` when the code
    works in blocks by itself; its time on one core is ``units × seconds_per_unit``.
    """

    label: str
    option: str
    units: int
    chunk: int | None
    chunk_option: str | None
    held: float
    held_chunked: float
    bytes_per_unit_at_once: float
    seconds_per_unit: float
    block: int | None = None

    def memory_bytes(self, chunk: int | None | bool = False) -> float:
        """Peak memory with ``chunk`` (default: the workload's own)."""
        chunk = self.chunk if chunk is False else chunk
        if chunk is not None:
            return self.units * self.held_chunked + min(int(chunk), self.units) * self.bytes_per_unit_at_once
        at_once = self.units if self.block is None else \
            min(self.units, max(self.block, math.ceil(self.units / 10)))
        return self.units * self.held + at_once * self.bytes_per_unit_at_once

    @property
    def seconds(self) -> float:
        return self.units * self.seconds_per_unit

    def largest(self, budget: float) -> int:
        """The most units that fit in ``budget`` bytes without chunking."""
        per_unit = self.held + self.bytes_per_unit_at_once / (1 if self.block is None else 10)
        return max(int(budget // per_unit), 0) if per_unit else self.units

    def largest_chunk(self, budget: float) -> int:
        """The largest chunk that fits in ``budget`` bytes (0: chunking cannot make it fit)."""
        room = budget - self.units * self.held_chunked
        return int(room // self.bytes_per_unit_at_once) if self.bytes_per_unit_at_once and room > 0 else 0


def projection_workload(config: RunConfig, n_strategies: int, n_scenarios: int) -> Workload:
    """The projection of ``n_strategies`` × ``n_scenarios`` × years × ``projection.draws``."""
    settings = config.projection
    n_years = settings.last_year - settings.first_year + 1
    cells = n_strategies * n_scenarios * n_years
    return Workload(f"projection ({n_strategies} strategies x {n_scenarios} scenarios x {n_years} years x "
                    f"{settings.draws:,} draws)", "projection.draws (--draws)", settings.draws,
                    settings.chunk_draws, "projection.chunk_draws (--chunk-draws)",
                    0.0, PROJECTION_CHUNKED_BYTES_PER_CELL * cells,
                    PROJECTION_BYTES_PER_CELL * cells, PROJECTION_SECONDS_PER_CELL * cells)


def sensitivity_workload(config: RunConfig) -> Workload:
    """The climate-sensitivity sweep of ``sensitivity.draws``."""
    from carpmodel.studies.sensitivity import SWEEP_BLOCK_DRAWS

    settings = config.sensitivity
    scale = len(settings.warming_levels_c) / 5
    return Workload(f"climate sensitivity ({len(settings.warming_levels_c)} warming levels x "
                    f"{settings.draws:,} draws)", "sensitivity.draws (--draws)", settings.draws,
                    settings.chunk_draws, "sensitivity.chunk_draws (--chunk-draws)",
                    SENSITIVITY_KEPT_BYTES_PER_DRAW * scale, SENSITIVITY_KEPT_BYTES_PER_DRAW * scale,
                    SENSITIVITY_BLOCK_BYTES_PER_DRAW * scale,
                    SENSITIVITY_SECONDS_PER_DRAW * scale, block=SWEEP_BLOCK_DRAWS)


def posterior_workload(config: RunConfig, n_parameters: int) -> Workload:
    """The posterior sample's proposals (``diagnostics.posterior_proposals``)."""
    proposals = config.diagnostics.posterior_proposals
    return Workload(f"posterior sample ({proposals:,} proposals x {n_parameters} parameters)",
                    "diagnostics.posterior_proposals", proposals, None, None,
                    POSTERIOR_BYTES_PER_VALUE * n_parameters, 0.0, 0.0, 2e-4)


#: one refit of the monitoring design, s of CPU (measured on the 0.2 model: the quick default's
#: 30 refits in about a minute; the full study's 1,160 refits in about 45 min)
MONITORING_SECONDS_PER_REFIT = 2.3


def monitoring_workload(design: dict[str, Any], juvenile_option: bool) -> Workload:
    """The refits of the monitoring design (``design``: the monitoring_design options)."""
    designs = len(design["true_survivals"]) * len(design["fish_per_year"]) * len(design["years_of_sampling"])
    per_replicate = designs + (4 if juvenile_option else 0)
    replicates = design["n_replicates"]
    return Workload(f"monitoring design ({per_replicate} designs x {replicates:,} replicates, one refit "
                    f"each)",
                    "--replicates", replicates, None, None, 0.0, 0.0, 0.0,
                    per_replicate * MONITORING_SECONDS_PER_REFIT)


#: one refit of a diagnostic or of the power analysis, s (warm-started; measured ~0.5-1 s)
SECONDS_PER_REFIT = 1.0


def refit_workloads(config: RunConfig, *, diagnostics: bool = True, power: bool = True) -> list[Workload]:
    """Time of what refits the model once per unit: the self-test's replicates and the profile's
    points (with ``diagnostics``), the power analysis, four slopes per replicate (with ``power``,
    when the sweep runs)."""
    settings, replicates = config.diagnostics, config.sensitivity.power_replicates
    work = []
    if diagnostics:
        work += [Workload(f"self-test ({settings.self_test_replicates:,} refits)",
                          "diagnostics.self_test_replicates", settings.self_test_replicates, None, None,
                          0.0, 0.0, 0.0, SECONDS_PER_REFIT),
                 Workload(f"likelihood profile ({settings.profile_points:,} refits)",
                          "diagnostics.profile_points", settings.profile_points, None, None, 0.0, 0.0, 0.0,
                          SECONDS_PER_REFIT)]
    if power and config.sensitivity.draws:
        work.append(Workload(f"power analysis ({replicates:,} replicates x 4 slopes)",
                             "sensitivity.power_replicates (--power-replicates)", replicates, None, None,
                             0.0, 0.0, 0.0, 4 * SECONDS_PER_REFIT))
    return work


def check_budget(problem: Any, costs: Any, option: str) -> None:
    """The budget must not buy more fish a year than the plausibility bound, at any of its sizes."""
    from carpmodel.io.plausibility import bound

    limit = bound("fish_released")
    for age, weight in problem.options:
        fish = problem.budget_per_year / float(costs.cost_per_fish(weight))
        if fish > limit.upper:
            raise ConfigError(f"{option}: a budget of {problem.budget_per_year:g} a year buys "
                              f"{fish:.3g} fish of age {age}, {weight:g} g; expected at most "
                              f"{limit.upper:g} fish ({limit.reason})")


def available_memory_bytes() -> int | None:
    """Memory this process may still use: the system's available memory, or less under a cgroup
    (container) limit; None when unknown."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            room = int(limit) - used
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes / 2**10:,.0f} kB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def check_work(workloads: list[Workload], *, available: int | None = None,
               chunking: bool = True) -> list[str]:
    """Refuse work that cannot fit in memory or would take more than :data:`MAX_HOURS`; notes
    (one sentence each) for work estimated above :data:`NOTE_SECONDS`.

    ``available`` defaults to :func:`available_memory_bytes`; ``chunking`` says whether dask is
    installed (whether the chunking option can be suggested).
    """
    available = available_memory_bytes() if available is None else available
    notes = []
    for work in workloads:
        if work.units == 0:
            continue
        memory, seconds = work.memory_bytes(), work.seconds
        if available is not None and memory > MEMORY_SHARE * available:
            budget = MEMORY_SHARE * available
            advice = f"use at most {work.largest(budget):,} for {work.option}"
            if work.chunk_option and work.bytes_per_unit_at_once:
                chunk = work.largest_chunk(budget)
                if chunk:
                    advice = (f"set {work.chunk_option} to at most {chunk:,} (that many at a time), "
                              f"or {advice}")
                else:
                    size = min(work.chunk or CHUNK_SUGGESTION, CHUNK_SUGGESTION)
                    most = int((budget - size * work.bytes_per_unit_at_once) // work.held_chunked) \
                        if work.held_chunked else 0
                    if most > work.largest(budget):
                        advice += f", or at most {most:,} with {work.chunk_option} = {size:,}"
                if not chunking:
                    advice += " (chunking needs dask: pip install 'carpmodel[distributed]')"
            raise ConfigError(f"{work.option} = {work.units:,}: the {work.label} would need about "
                              f"{_size(memory)} "
                              f"of memory and {_size(available)} are available; {advice}")
        if seconds > MAX_HOURS * 3600:
            most = int(MAX_HOURS * 3600 / work.seconds_per_unit)
            raise ConfigError(f"{work.option} = {work.units:,}: the {work.label} would take about "
                              f"{_duration(seconds)} (limit {MAX_HOURS:.0f} h); use at most {most:,}")
        if seconds > NOTE_SECONDS:
            size = f" and {_size(memory)} of memory" if memory >= 2**20 else ""
            notes.append(f"the {work.label} will take about {_duration(seconds)}{size}")
    return notes


def check_data_directory(data: Any, config: RunConfig, *, explicit_config: bool = False) -> list[str]:
    """What ``carpmodel check-data`` adds to :func:`~carpmodel.io.inputs.load_data`: every check a
    command runs on the directory (the fit's model and diagnostics, the climate file, anomalies
    and scenarios, the strategies' release sizes, the sensitivity's needs), for ``config``.

    With the default config (``explicit_config`` False), scenarios the config names that the
    directory lacks give a note rather than an error (``--scenarios`` or a config chooses them).
    Returns notes.
    """
    import dataclasses

    from carpmodel.io.climate_file import load_climate

    notes: list[str] = []

    def attempt(check: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a check; with the default config, its ConfigError (a choice of the config, not a
        fault of the data) becomes a note."""
        try:
            return check(*args, **kwargs)
        except ConfigError as exc:
            if explicit_config:
                raise
            notes.append(f"with the default run config: {exc}")
            return None

    load_climate(data)
    spec = check_fit_request(data, config, diagnostics=False)
    attempt(check_diagnostics, data, config, spec)
    if not explicit_config:
        available = tuple(load_climate(data).scenarios)
        missing = [name for name in config.projection.scenarios if name not in available]
        if missing:
            notes.append(f"the default projection scenarios {', '.join(missing)} are not in "
                         f"{data.files.get('climate_scenarios.toml')}; choose from {', '.join(available)} "
                         f"(project --scenarios, or [projection] scenarios)")
            kept = tuple(name for name in config.projection.scenarios if name in available) or available
            config = dataclasses.replace(config, projection=dataclasses.replace(config.projection,
                                                                                scenarios=kept))
    attempt(check_projection_request, data, config, fit_last_year=int(spec.years[-1]))
    attempt(check_sensitivity_request, data, config)
    return notes


def check_run_request(data: Any, config: RunConfig) -> list[str]:
    """Every check of ``carpmodel run`` (fit, diagnostics, projection, sensitivity, work);
    returns the notes of :func:`check_work`."""
    spec = check_fit_request(data, config)
    plan = check_projection_request(data, config, fit_last_year=int(spec.years[-1]))
    check_sensitivity_request(data, config)
    return check_work([posterior_workload(config, len(spec.parameter_names)), *refit_workloads(config),
                       projection_workload(config, len(plan.strategies.strategies), len(plan.scenarios)),
                       sensitivity_workload(config)],
                      chunking=importlib.util.find_spec("dask") is not None)
