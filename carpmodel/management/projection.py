"""Stochastic projections over (strategy, scenario, draw, year).

Each draw has its own random streams, all from one seed
(:mod:`carpmodel.management.draw_streams`: a counter-based generator, every number a function of
seed, draw, stream and position, so a chunk's numbers come from one vectorised call): stream
:data:`PARAMETER_STREAM` gives the parameter deviate ``z`` (θ = θ̂ + Σ^{1/2}·z, the fit's normal
approximation on the estimation scale), :data:`POSTERIOR_STREAM` the uniform that picks a
posterior draw, :data:`RECRUITMENT_STREAM`, :data:`SURVEY_STREAM` and :data:`ANOMALY_STREAM`
the recruitment deviates of the projection years (σ_R from the model), the errors of the
simulated survey that management rules read, and the temperature anomalies;
:data:`LAST_SURVEY_STREAM` the error of the last fitted year's survey, which a rule reads in the
first projection year.
Keeping the process deviates on their own streams makes them independent of how many
parameters a model has (so every member of a structural ensemble sees the same recruitment,
survey and temperature deviates, :mod:`carpmodel.management.ensemble`) and of the last projection year
(a draw's first years do not change when the horizon does). The same numbers are broadcast
over every strategy and scenario (common random numbers), so strategies differ only by
strategy, and a draw's result does not depend on how draws are batched or chunked.

What does not depend on the strategy is computed once (:func:`prepare_draws`): the historical
years of the fit re-run for every draw (so each draw starts 2025 from its own state), the
deviates and the climate multipliers. Then the projection years run as ONE engine call over
the batch ``(strategy, scenario, draw)`` (:func:`simulate_strategies`), without per-age arrays
and in float32 (``ProjectionSetup.dtype``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.dims import DRAW, SCENARIO, STRATEGY, YEAR, with_attrs
from carpmodel.errors import ConfigError
from carpmodel.inference.likelihood import predict
from carpmodel.io.config import check_seed
from carpmodel.management.draw_streams import DrawStream, draw_indices, seed_key
from carpmodel.model.dynamics import Policy, PopulationState, ProcessMultipliers, simulate
from carpmodel.model.params import STRUCTURAL_FIELDS, Parameters

#: CV of the simulated survey that biomass-triggered rules and harvest rules read (assumed:
#: the CV assumed for the recent surveys in data/biomass_observations.csv)
DEFAULT_SURVEY_CV = 0.15

PROJECTED = ("biomass_t", "ssb_t", "recruits", "catch_t", "released_fish",
             "hatchery_fraction_biomass", "hatchery_fraction_ssb", "f_per_yr", "window_survivors")


@dataclass(frozen=True)
class DrawRandomness:
    """The random numbers of a set of draws, each row from its own stream."""

    draws: NDArray          # (n,) draw indices
    parameter_z: NDArray    # (n, n_parameters) standard normals
    posterior_u: NDArray    # (n,) uniforms that pick a posterior draw
    recruitment_z: NDArray  # (n, n_years) standard normals
    survey_z: NDArray       # (n, n_years) standard normals
    last_survey_z: NDArray  # (n,) standard normal: error of the last fitted year's survey
    anomaly_normals: DrawStream  # the draws' stream of temperature-anomaly innovations


#: the streams of a draw (:class:`carpmodel.management.draw_streams.DrawStream`)
(PARAMETER_STREAM, POSTERIOR_STREAM, RECRUITMENT_STREAM, SURVEY_STREAM, ANOMALY_STREAM,
 LAST_SURVEY_STREAM) = range(6)


def draw_randomness(seed: int, draws: Sequence[int], n_parameters: int, n_years: int) -> DrawRandomness:
    """Random numbers for ``draws``, each draw's on its own streams of the seed (so a draw's numbers
    do not depend on the other draws, the process deviates not on ``n_parameters``, and the
    first k years not on ``n_years``)."""
    draws = draw_indices(draws)
    key = seed_key(seed)

    def stream(name: int) -> DrawStream:
        return DrawStream(key, draws, name)

    return DrawRandomness(
        draws, parameter_z=stream(PARAMETER_STREAM).standard_normal(n_parameters),
        posterior_u=stream(POSTERIOR_STREAM).uniform(1)[:, 0],
        recruitment_z=stream(RECRUITMENT_STREAM).standard_normal(n_years),
        survey_z=stream(SURVEY_STREAM).standard_normal(n_years),
        last_survey_z=stream(LAST_SURVEY_STREAM).standard_normal(1)[:, 0],
        anomaly_normals=stream(ANOMALY_STREAM))


def parameter_draws(result: Any, parameter_z: NDArray) -> NDArray:
    """θ = θ̂ + Σ^{1/2}·z (symmetric square root); θ̂ for every draw when Σ is undefined."""
    if result.covariance is None:
        return np.repeat(result.theta[None], parameter_z.shape[0], axis=0)
    values, vectors = np.linalg.eigh(result.covariance)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    # an elementwise product and a last-axis sum, not a BLAS matmul: BLAS rounds a row
    # differently depending on how many rows it is given, which would make a draw depend on
    # its chunk
    return result.theta + np.sum(parameter_z[:, None, :] * root[None, :, :], axis=-1)


#: a normal-approximation draw outside the model is pulled halfway to the estimate at most this
#: many times
FEASIBLE_DRAW_HALVINGS = 8


def outside_model(history: PopulationState, unpacked: Any) -> NDArray:
    """Rows of a batched :func:`predict` the model cannot run: marked invalid by the parameter
    map (e.g. too few recruits per egg for a stock, so R0 is undefined) or with a non-finite
    history."""
    invalid = np.zeros(history.biomass_t.shape[:-1], bool) if unpacked.invalid is None else unpacked.invalid
    return np.asarray(invalid, bool) | ~np.all(np.isfinite(history.biomass_t), axis=-1)


def feasible_draws(result: Any, thetas: NDArray, outside: NDArray) -> NDArray:
    """``thetas (n_draws, n)`` with every draw in ``outside`` (:func:`outside_model`) pulled
    halfway towards θ̂ until the model can run it (θ̂ itself after
    :data:`FEASIBLE_DRAW_HALVINGS` halvings). The normal approximation is unbounded where the
    model is not; each draw is moved on its own (the result does not depend on the other draws or
    the chunking), and draws the model can run are left exactly as they are."""
    thetas = np.array(thetas, dtype=float)
    bad = np.array(outside, bool)
    with np.errstate(all="ignore"):
        for _ in range(FEASIBLE_DRAW_HALVINGS):
            if not bad.any():
                break
            rows = np.flatnonzero(bad)
            thetas[rows] = result.theta + 0.5 * (thetas[rows] - result.theta)
            bad[rows] = outside_model(*predict(result.spec, thetas[rows]))
    thetas[bad] = result.theta
    return thetas


def _lead(params: Parameters, n_lead: int) -> Parameters:
    """Parameters with ``n_lead`` length-1 axes put in front of the batched fields."""
    changes = {}
    for f in fields(params):
        if f.name in STRUCTURAL_FIELDS:
            continue
        value = np.asarray(getattr(params, f.name))
        if value.ndim:
            changes[f.name] = value.reshape((1,) * n_lead + value.shape)
    return params.replace(**changes)


PolicyBuilder = Callable[[tuple[int, ...], NDArray, Parameters], Policy]
MultiplierBuilder = Callable[[DrawRandomness, NDArray], tuple[ProcessMultipliers, NDArray | None]]


@dataclass(frozen=True)
class ProjectionSetup:
    """What to project: strategies (names and a policy builder), scenarios, years, draws."""

    strategy_names: tuple[str, ...]
    build_policy: PolicyBuilder
    scenario_names: tuple[str, ...] = ("baseline",)
    build_multipliers: MultiplierBuilder | None = None
    first_year: int = 2025
    last_year: int = 2100
    n_draws: int = 100
    seed: int = 20260601
    survey_cv: float = DEFAULT_SURVEY_CV
    chunk_draws: int | None = None
    cost: Callable[[NDArray], NDArray] | None = None
    cost_attrs: tuple[tuple[str, str], ...] = ()
    strategy_descriptions: tuple[str, ...] = ()
    posterior_theta: NDArray | None = None   # (n_samples, n_parameters): draw θ from these
    dtype: str = "float32"   # engine precision of the projection years ("float64" for checks)

    @property
    def parameter_uncertainty(self) -> str:
        if self.posterior_theta is not None:
            return f"theta resampled per draw from {len(self.posterior_theta)} posterior draws"
        return "theta ~ N(estimate, inverse Hessian) per draw"

    def __post_init__(self) -> None:
        if self.last_year < self.first_year:
            raise ConfigError(f"projection: last_year {self.last_year} < first_year {self.first_year}")
        if self.n_draws < 1:
            raise ConfigError(f"projection: draws must be >= 1, got {self.n_draws}")
        check_seed(self.seed, "projection.seed")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"projection: dtype must be 'float32' or 'float64', got {self.dtype!r}")


def project(result: Any, setup: ProjectionSetup) -> xr.Dataset:
    """Project the fitted model under every strategy × scenario for ``setup.n_draws`` draws."""
    spec = result.spec
    if setup.first_year != spec.years[-1] + 1:
        raise ConfigError(f"projection.first_year must follow the fit's last year "
                          f"{spec.years[-1]}, got {setup.first_year}")
    years = np.arange(setup.first_year, setup.last_year + 1)
    if setup.chunk_draws is None:
        ds = _project_draws(result, setup, years, np.arange(setup.n_draws))
    else:
        ds = _lazy_projection(result, setup, years)
    state, _ = predict(spec, result.theta)
    ds["biomass_2002_t"] = float(state.biomass_t[..., int(np.searchsorted(spec.years, 2002))]) \
        if 2002 in spec.years else np.nan
    ds["biomass_2002_t"].attrs.update(units="t", long_name="fitted biomass in 2002 (reference level)")
    if setup.strategy_descriptions:
        ds = ds.assign_coords(description=(STRATEGY, list(setup.strategy_descriptions)))
    ds = with_attrs(ds, seed=setup.seed, n_draws=setup.n_draws, survey_cv=setup.survey_cv,
                    sigma_r_used="model sigma_r (life_history sigma_r, fixed in the fit)",
                    parameter_uncertainty=setup.parameter_uncertainty, engine_dtype=setup.dtype)
    if "cost" in ds:   # the strategies' currency, not with_attrs' generic "currency units"
        ds["cost"].attrs.update(dict(setup.cost_attrs))
    return ds


@dataclass(frozen=True)
class PreparedDraws:
    """Everything a set of draws needs before any strategy acts (see :func:`prepare_draws`).

    Arrays are per draw (leading axis ``draw``); ``multipliers`` and ``temperature_c`` are
    ``(scenario, draw, year)`` (or scalars); ``history`` is the historical run of each draw.
    """

    years: NDArray
    draws: NDArray
    scenario_names: tuple[str, ...]
    params: Parameters
    history: Any                  # dynamics.PopulationState of the fitted years, batch (draw,)
    log_rec_devs: NDArray         # (draw, year), bias-corrected
    survey_log_errors: NDArray    # (draw, year)
    last_estimate_t: NDArray      # (draw,) survey estimate of the last fitted year
    multipliers: ProcessMultipliers
    temperature_c: NDArray | None
    dtype: str = "float32"

    @property
    def batch(self) -> tuple[int, int]:
        """(scenario, draw)"""
        return len(self.scenario_names), self.draws.size


def prepare_draws(result: Any, setup: ProjectionSetup, draws: NDArray | None = None, *,
                  scenarios: Sequence[str] | None = None) -> PreparedDraws:
    """Parameter draws, historical re-run, deviates and climate multipliers of ``draws``.

    Computed once and shared by every strategy (and by every call of a budget optimiser).
    ``scenarios`` keeps a subset of ``setup.scenario_names`` (multipliers are sliced, not
    recomputed, so their random numbers are those of the full set).
    """
    years = np.arange(setup.first_year, setup.last_year + 1)
    draws = np.arange(setup.n_draws) if draws is None else np.asarray(draws, dtype=int)
    randomness = draw_randomness(setup.seed, draws, result.theta.size, years.size)
    if setup.posterior_theta is not None:
        pool = np.asarray(setup.posterior_theta)
        thetas = pool[np.minimum((randomness.posterior_u * len(pool)).astype(int), len(pool) - 1)]
    else:
        thetas = parameter_draws(result, randomness.parameter_z)
    history, unpacked = predict(result.spec, thetas)
    outside = outside_model(history, unpacked)
    if setup.posterior_theta is None and outside.any():     # the normal approximation only
        thetas = feasible_draws(result, thetas, outside)
        history, unpacked = predict(result.spec, thetas)
    params = unpacked.params
    sigma_r = np.broadcast_to(np.asarray(params.sigma_r), (draws.size,))[:, None]
    log_devs = sigma_r * randomness.recruitment_z - 0.5 * sigma_r**2
    survey_errors = setup.survey_cv * randomness.survey_z
    multipliers, temperature = (ProcessMultipliers(), None) if setup.build_multipliers is None \
        else setup.build_multipliers(randomness, years)
    names = tuple(setup.scenario_names)
    if scenarios is not None:
        unknown = [n for n in scenarios if n not in names]
        if unknown:
            raise ConfigError(f"scenario: expected one of the projection's scenarios {list(names)}, "
                              f"got {unknown}")
        index = [names.index(n) for n in scenarios]
        multipliers = ProcessMultipliers(**{
            f.name: _scenarios(getattr(multipliers, f.name), index, len(names)) for f in fields(multipliers)})
        temperature = None if temperature is None else _scenarios(temperature, index, len(names))
        names = tuple(scenarios)
    q = np.asarray(params.survey_q)
    last_estimate = q * history.biomass_t[..., -1] * np.exp(setup.survey_cv * randomness.last_survey_z)
    return PreparedDraws(years=years, draws=draws, scenario_names=names, params=params, history=history,
                         log_rec_devs=log_devs, survey_log_errors=survey_errors,
                         last_estimate_t=np.broadcast_to(last_estimate, (draws.size,)),
                         multipliers=multipliers, temperature_c=temperature, dtype=setup.dtype)


def _scenarios(value: Any, index: list[int], n_scenario: int) -> Any:
    """Keep scenarios ``index`` of a ``(scenario, draw, year)`` array (others pass through)."""
    array = np.asarray(value)
    if array.ndim < 3 or array.shape[-3] != n_scenario:
        return value
    return array[..., index, :, :]


def simulate_strategies(prepared: PreparedDraws, policy: Policy, n_strategy: int) -> Any:
    """The projection years of every strategy × scenario × draw in ONE engine call.

    ``policy`` is built for the batch ``(n_strategy, n_scenario, n_draw)``; returns the
    engine's PopulationState with the series of :data:`PROJECTED` only (the engine neither
    stores nor allocates the others) and without per-age arrays (``keep_numbers=False``), in the setup's
    precision (float32 by default: ~7 significant digits, ample for tonnes, half the memory
    traffic of float64; the historical re-run and reference points stay float64).
    """
    batch = (n_strategy, *prepared.batch)
    history = prepared.history
    return simulate(
        _lead(prepared.params, 2), n_years=prepared.years.size,
        log_rec_devs=prepared.log_rec_devs[None, None],
        multipliers=_lead_multipliers(prepared.multipliers, 1),
        initial_numbers=history.final_numbers[None, None],
        initial_length_state_cm=history.final_length_state_cm[None, None],
        policy=policy, survey_log_errors=prepared.survey_log_errors[None, None],
        initial_survey_estimate_t=prepared.last_estimate_t[None, None], keep_numbers=False,
        batch_shape=batch, dtype=np.dtype(prepared.dtype), outputs=PROJECTED)


def _project_draws(result: Any, setup: ProjectionSetup, years: NDArray, draws: NDArray,
                   compact: bool = True) -> xr.Dataset:
    """The projection of ``draws``; ``compact``: its series copied out of the engine's buffer of
    the projected series of every strategy (padded to whole SIMD lanes), else views of it (a
    chunk whose arrays are copied into the result and dropped)."""
    prepared = prepare_draws(result, setup, draws)
    params, history = prepared.params, prepared.history
    n_strategy, n_scenario = len(setup.strategy_names), len(setup.scenario_names)
    batch = (n_strategy, n_scenario, draws.size)
    policy = setup.build_policy(batch, years, params)
    state = simulate_strategies(prepared, policy, n_strategy)
    idle = idle_strategy(policy, batch, years.size)
    if idle is not None:   # its rows are the run without fishing or releases, bit for bit
        unfished_ssb = state.ssb_t[idle]
    else:
        unfished_ssb = simulate(
            _lead(params, 1), n_years=years.size, log_rec_devs=prepared.log_rec_devs[None],
            multipliers=prepared.multipliers, initial_numbers=history.final_numbers[None],
            initial_length_state_cm=history.final_length_state_cm[None], keep_numbers=False,
            dtype=np.dtype(prepared.dtype), outputs=("ssb_t",)).ssb_t
    coords = {STRATEGY: list(setup.strategy_names), SCENARIO: list(setup.scenario_names),
              DRAW: draws, YEAR: years}
    dims = (STRATEGY, SCENARIO, DRAW, YEAR)
    shape = batch + (years.size,)
    data = {name: (dims, _float32(getattr(state, name), shape, compact)) for name in PROJECTED}
    if setup.cost is not None:
        released = np.broadcast_to(state.released_fish, shape)
        data["cost"] = (dims, setup.cost(released))
    data["release_survival"] = ((DRAW,), np.broadcast_to(np.asarray(params.release_survival), (draws.size,)))
    # a copy: the engine's series are views of its buffer of every strategy's series
    data["dynamic_ssb0_t"] = ((SCENARIO, DRAW, YEAR), np.broadcast_to(
        np.array(unfished_ssb), (n_scenario, draws.size, years.size)))
    data["ssb0_t"] = ((DRAW,), np.broadcast_to(history.reference.ssb0_t, (draws.size,)))
    data["biomass0_t"] = ((DRAW,), np.broadcast_to(history.reference.biomass0_t, (draws.size,)))
    if prepared.temperature_c is not None:
        data["temperature_c"] = ((SCENARIO, DRAW, YEAR), prepared.temperature_c)
    ds = xr.Dataset(data, coords=coords)
    ds["dynamic_ssb0_t"].attrs.update(units="t", long_name="SSB projected without fishing and "
                                      "without releases under the same temperature path and deviations")
    ds["ssb0_t"].attrs.update(units="t", long_name="unfished spawning biomass (static)")
    ds["biomass0_t"].attrs.update(units="t", long_name="unfished survey biomass (static)")
    ds["release_survival"].attrs.update(units="1", long_name="acute post-release survival of the draw")
    if "cost" in ds:
        ds["cost"].attrs.update(dict(setup.cost_attrs))
    return ds


def idle_strategy(policy: Policy, batch: tuple[int, ...], n_years: int) -> int | None:
    """The first strategy (axis 0 of ``batch``) whose compiled rule neither releases fish nor
    fishes in any of the ``n_years`` years (a closure without releases, like ``no_releases``),
    or None (also for a policy without :meth:`~carpmodel.model.dynamics.Policy.tables`).

    Its rows are the dynamic-SSB0 run (no fishing, no releases; the same parameters, deviations,
    forcing and start) year by year: a zero F or release gives the engine's arithmetic the same
    values as none (0·selectivity = 0, M + 0 = M, nothing added to a cell), so their SSB is the
    same bit for bit and that run need not be made."""
    tables = policy.tables() if hasattr(policy, "tables") else None
    if tables is None:
        return None
    f_target = np.broadcast_to(tables.f_target_per_yr, batch)
    ramp = np.broadcast_to(tables.ramp, batch)
    program = np.broadcast_to(tables.program, batch)
    for s in range(batch[0]):
        programs = np.unique(program[s])
        if np.all(f_target[s] == 0.0) and np.all(ramp[s] == 0) and \
                not np.any(tables.release_fish[programs, :n_years] != 0.0):
            return s
    return None


def _float32(values: NDArray, shape: tuple[int, ...], copy: bool = True) -> NDArray:
    """``values`` broadcast to ``shape`` as float32, C-ordered; a copy when ``copy`` or when they
    are not so already."""
    values = np.asarray(values)
    if values.shape == shape and values.dtype == np.float32 and values.flags.c_contiguous and not copy:
        return values
    out = np.empty(shape, dtype=np.float32)
    out[...] = values
    return out


def strategy_setup(strategy_set: Any, n_age: int, **options: Any) -> ProjectionSetup:
    """A :class:`ProjectionSetup` for a :class:`carpmodel.management.strategies.StrategySet`: its
    policy, costs
    (with their provenance in the ``cost`` attributes) and descriptions; ``options`` are the other
    ProjectionSetup fields (scenarios, years, draws, seed, chunking …)."""
    from carpmodel.management.policy import build_plan, build_policy, release_cost

    years = np.arange(options.get("first_year", 2025), options.get("last_year", 2100) + 1)
    costs = strategy_set.costs

    def build(batch: tuple[int, ...], policy_years: NDArray, params: Parameters) -> Policy:
        return build_policy(strategy_set, None, policy_years, params.n_age, params.lw_a, params.lw_b, batch)

    plan = build_plan(strategy_set, None, years, n_age)

    def cost(released: NDArray) -> NDArray:
        return release_cost(plan, released)

    return ProjectionSetup(
        strategy_names=tuple(strategy_set.names), build_policy=build, cost=cost,
        cost_attrs=(("units", costs.currency),
                    ("long_name", "release cost" + (" (illustrative, assumed)" if costs.assumed else "")),
                    ("source", costs.source)),
        strategy_descriptions=tuple(s.description for s in strategy_set.strategies), **options)


def _lazy_projection(result: Any, setup: ProjectionSetup, years: NDArray) -> xr.Dataset:
    """A dask-backed Dataset: one delayed engine run per chunk of draws, computed on demand.

    Every variable of a chunk comes from the same delayed task, so a chunk is simulated once
    however many variables are read; results equal the unchunked projection exactly, because
    each draw's random numbers depend only on (seed, draw).
    """
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ConfigError("chunked projections (--chunk-draws) need dask: "
                          "pip install 'carpmodel[distributed]'") from None
    template = _project_draws(result, setup, years, np.arange(1))   # names, dims and dtypes
    chunk = int(setup.chunk_draws)
    starts = range(0, setup.n_draws, chunk)
    tasks = [dask.delayed(_chunk_arrays, pure=True)(result, setup, years,
                                                   np.arange(s, min(s + chunk, setup.n_draws)))
             for s in starts]
    data = {}
    for name, variable in template.data_vars.items():
        axis = variable.dims.index(DRAW)
        blocks = []
        for s, task in zip(starts, tasks, strict=True):
            shape = list(variable.shape)
            shape[axis] = min(s + chunk, setup.n_draws) - s
            blocks.append(da.from_delayed(task[name], shape=tuple(shape), dtype=variable.dtype))
        data[name] = (variable.dims, da.concatenate(blocks, axis=axis), variable.attrs)
    coords = {k: v for k, v in template.coords.items() if k != DRAW}
    coords[DRAW] = np.arange(setup.n_draws)
    return xr.Dataset(data, coords=coords)


def _chunk_arrays(result: Any, setup: ProjectionSetup, years: NDArray, draws: NDArray) -> dict[str, NDArray]:
    """A chunk's arrays: its series are views of the engine's buffer of them (not copied:
    :func:`load_projection` copies them into the result and drops the chunk; a
    dask.distributed worker sends only the views' data)."""
    ds = _project_draws(result, setup, years, draws, compact=False)
    return {name: variable.values for name, variable in ds.data_vars.items()}


def load_projection(dataset: xr.Dataset) -> xr.Dataset:
    """A chunked projection (:func:`project` with ``chunk_draws``) computed into memory; an
    in-memory one is returned as it is.

    On dask's local schedulers (threads, the default, or synchronous) every chunk runs once and
    its arrays are written into their slices of the result as the chunk finishes
    (``dask.array.store``), so the peak memory is the result plus the chunks in flight;
    ``Dataset.compute()`` gives the same values but keeps every chunk's arrays until it
    concatenates them: about twice the result at its peak. On other
    schedulers (a dask.distributed cluster, processes), whose workers cannot write into this
    process's arrays, it is ``Dataset.compute()``.
    """
    if not dataset.chunks:
        return dataset
    import dask
    import dask.array as da
    import dask.local
    import dask.threaded

    if dask.base.get_scheduler(collections=[dataset]) not in (dask.threaded.get, dask.local.get_sync):
        return dataset.compute()
    lazy = [name for name, variable in dataset.data_vars.items() if variable.chunks is not None]
    targets = [np.empty(dataset[name].shape, dataset[name].dtype) for name in lazy]
    # one graph for every variable, so each chunk's task runs once; each block has its own
    # slice of its target, so no lock is needed
    da.store([dataset[name].data for name in lazy], targets, lock=False)
    loaded = dict(zip(lazy, targets, strict=True))
    result = dataset.copy(data={name: loaded[name] if name in loaded else variable.values
                                for name, variable in dataset.data_vars.items()})
    return result.compute() if result.chunks else result   # coordinates backed by dask, if any


def _lead_multipliers(multipliers: ProcessMultipliers, n_lead: int) -> ProcessMultipliers:
    changes = {}
    for f in fields(multipliers):
        value = np.asarray(getattr(multipliers, f.name))
        changes[f.name] = value.reshape((1,) * n_lead + value.shape) if value.ndim else value
    return ProcessMultipliers(**changes)
