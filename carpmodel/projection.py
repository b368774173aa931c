"""Stochastic projections over (strategy, scenario, draw, year).

Each draw has its own random stream: ``numpy.random.SeedSequence(seed, spawn_key=(draw,))``.
From it come, in this order, the parameter deviate ``z`` (θ = θ̂ + Σ^{1/2}·z, the fit's normal
approximation on the estimation scale), the recruitment deviates of the projection years
(σ_R from the model), the errors of the simulated survey that management rules read, and the
temperature anomalies. The same numbers are broadcast over every strategy and scenario
(common random numbers), so strategies differ only by strategy, and a draw's result does not
depend on how draws are batched or chunked.

The historical years of the fit are re-run for every draw (so each draw starts 2025 from its
own state), then the projection years run as ONE engine call over the batch
``(strategy, scenario, draw)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.dims import DRAW, SCENARIO, STRATEGY, YEAR, with_attrs
from carpmodel.dynamics import Policy, ProcessMultipliers, simulate
from carpmodel.errors import ConfigError
from carpmodel.likelihood import predict
from carpmodel.params import STRUCTURAL_FIELDS, Parameters

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
    anomaly_rngs: tuple[np.random.Generator, ...]  # per-draw generators, positioned after the above


def draw_randomness(seed: int, draws: Sequence[int], n_parameters: int, n_years: int) -> DrawRandomness:
    """Random numbers for ``draws`` from one SeedSequence, spawn key = draw index."""
    draws = np.asarray(draws, dtype=int)
    parameter_z = np.empty((draws.size, n_parameters))
    posterior_u = np.empty(draws.size)
    recruitment_z = np.empty((draws.size, n_years))
    survey_z = np.empty((draws.size, n_years))
    rngs = []
    for i, d in enumerate(draws):   # one generator per draw: only random numbers, no dynamics
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(d),))))
        parameter_z[i] = rng.standard_normal(n_parameters)
        posterior_u[i] = rng.uniform()
        recruitment_z[i] = rng.standard_normal(n_years)
        survey_z[i] = rng.standard_normal(n_years)
        rngs.append(rng)
    return DrawRandomness(draws, parameter_z, posterior_u, recruitment_z, survey_z, tuple(rngs))


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
    return with_attrs(ds, seed=setup.seed, n_draws=setup.n_draws, survey_cv=setup.survey_cv,
                      sigma_r_used="model sigma_r (life_history sigma_r, fixed in the fit)",
                      parameter_uncertainty=setup.parameter_uncertainty)


def _project_draws(result: Any, setup: ProjectionSetup, years: NDArray, draws: NDArray) -> xr.Dataset:
    spec = result.spec
    randomness = draw_randomness(setup.seed, draws, result.theta.size, years.size)
    if setup.posterior_theta is not None:
        pool = np.asarray(setup.posterior_theta)
        thetas = pool[np.minimum((randomness.posterior_u * len(pool)).astype(int), len(pool) - 1)]
    else:
        thetas = parameter_draws(result, randomness.parameter_z)
    history, unpacked = predict(spec, thetas)
    params = unpacked.params
    sigma_r = np.broadcast_to(np.asarray(params.sigma_r), (draws.size,))[:, None]
    log_devs = sigma_r * randomness.recruitment_z - 0.5 * sigma_r**2
    survey_errors = setup.survey_cv * randomness.survey_z
    multipliers, temperature = (ProcessMultipliers(), None) if setup.build_multipliers is None \
        else setup.build_multipliers(randomness, years)
    n_strategy, n_scenario = len(setup.strategy_names), len(setup.scenario_names)
    batch = (n_strategy, n_scenario, draws.size)
    q = np.asarray(params.survey_q)
    last_estimate = q * history.biomass_t[..., -1] * np.exp(setup.survey_cv * randomness.survey_z[:, -1])
    state = simulate(
        _lead(params, 2), n_years=years.size, log_rec_devs=log_devs[None, None],
        multipliers=_lead_multipliers(multipliers, 1),
        initial_numbers=history.final_numbers[None, None],
        initial_length_state_cm=history.final_length_state_cm[None, None],
        policy=setup.build_policy(batch, years, params), survey_log_errors=survey_errors[None, None],
        initial_survey_estimate_t=last_estimate[None, None], keep_numbers=False, batch_shape=batch)
    unfished = simulate(
        _lead(params, 1), n_years=years.size, log_rec_devs=log_devs[None],
        multipliers=multipliers, initial_numbers=history.final_numbers[None],
        initial_length_state_cm=history.final_length_state_cm[None], keep_numbers=False)
    coords = {STRATEGY: list(setup.strategy_names), SCENARIO: list(setup.scenario_names),
              DRAW: draws, YEAR: years}
    data = {name: ((STRATEGY, SCENARIO, DRAW, YEAR),
                   np.broadcast_to(getattr(state, name), batch + (years.size,)).astype(np.float32))
            for name in PROJECTED}
    if setup.cost is not None:
        released = np.broadcast_to(state.released_fish, batch + (years.size,))
        data["cost"] = ((STRATEGY, SCENARIO, DRAW, YEAR), setup.cost(released))
    data["release_survival"] = ((DRAW,), np.broadcast_to(np.asarray(params.release_survival), (draws.size,)))
    data["dynamic_ssb0_t"] = ((SCENARIO, DRAW, YEAR),
                              np.broadcast_to(unfished.ssb_t, (n_scenario, draws.size, years.size)))
    data["ssb0_t"] = ((DRAW,), np.broadcast_to(history.reference.ssb0_t, (draws.size,)))
    data["biomass0_t"] = ((DRAW,), np.broadcast_to(history.reference.biomass0_t, (draws.size,)))
    if temperature is not None:
        data["temperature_c"] = ((SCENARIO, DRAW, YEAR), temperature)
    ds = xr.Dataset(data, coords=coords)
    ds["dynamic_ssb0_t"].attrs.update(units="t", long_name="SSB projected without fishing and "
                                      "without releases under the same temperature path and deviations")
    ds["ssb0_t"].attrs.update(units="t", long_name="unfished spawning biomass (static)")
    ds["biomass0_t"].attrs.update(units="t", long_name="unfished survey biomass (static)")
    ds["release_survival"].attrs.update(units="1", long_name="acute post-release survival of the draw")
    if "cost" in ds:
        ds["cost"].attrs.update(dict(setup.cost_attrs))
    return ds


def strategy_setup(strategy_set: Any, n_age: int, **options: Any) -> ProjectionSetup:
    """A :class:`ProjectionSetup` for a :class:`carpmodel.releases.StrategySet`: its policy, costs
    (with their provenance in the ``cost`` attributes) and descriptions; ``options`` are the other
    ProjectionSetup fields (scenarios, years, draws, seed, chunking …)."""
    from carpmodel.releases import build_plan, build_policy, release_cost

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
    ds = _project_draws(result, setup, years, draws)
    return {name: variable.values for name, variable in ds.data_vars.items()}


def _lead_multipliers(multipliers: ProcessMultipliers, n_lead: int) -> ProcessMultipliers:
    changes = {}
    for f in fields(multipliers):
        value = np.asarray(getattr(multipliers, f.name))
        changes[f.name] = value.reshape((1,) * n_lead + value.shape) if value.ndim else value
    return ProcessMultipliers(**changes)
