"""Climate sensitivity of projected biomass: lake warming × the strength of each temperature effect.

:func:`climate_sensitivity` sweeps lake-water warming by 2100 (default 0-4 °C) × the strength of
each temperature effect (recruitment, growth, natural mortality, maturity;
:data:`~carpmodel.model.forcing.EFFECT_STRENGTH_RANGES`) in ONE stochastic projection: every
(effect, strength, warming) combination is a scenario of the same projection, so every
combination sees the same draws of parameters, recruitment deviations, survey errors and
temperature anomalies (common random numbers) and differences between cells are due to the
forcing alone. Each effect acts ALONE (the others off); strength 0 is the
no-temperature-effect reference, identical at every warming level. A combined row
(``all_default``: every default effect together, scaled by one strength) is optional. Every
effect and every strength is an ASSUMPTION ([A] in :mod:`carpmodel.model.forcing`): no effect has
been estimated for this species.

Whether temperature can be tested on the data is :mod:`carpmodel.studies.temperature_test`;
whether the record could ever tell, :mod:`carpmodel.studies.power`. The figures are
:func:`carpmodel.report.study_figures.plot_sensitivity_lines` and
:func:`~carpmodel.report.study_figures.plot_sensitivity_heatmap`;
:func:`carpmodel.pipeline.write_sensitivity` writes ``sensitivity.nc`` and the figures.

Units: biomass in t (figures in thousand t), temperatures and warming in °C, strengths
dimensionless.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel import __version__
from carpmodel.dims import YEAR, describe_labels
from carpmodel.errors import ConfigError
from carpmodel.inference.fitting import FitResult
from carpmodel.management.anomalies import AnomalyModel, sample_anomalies
from carpmodel.management.projection import ProjectionSetup, prepare_draws, project, simulate_strategies
from carpmodel.model.covariates import CovariateSeries, EnvSeries
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.forcing import (
    EFFECT_STRENGTH_RANGES,
    SPAWNING_OFFSET_C,
    TARGET_FIELDS,
    TARGETS,
    CovariateEffect,
    default_effects,
    effect_multipliers,
    sensitivity_effects,
    temperature_covariates,
    with_strength,
)

__all__ = [
    "COMBINED_EFFECT",
    "COMBINED_STRENGTHS",
    "DEFAULT_WARMING_LEVELS_C",
    "EFFECT_TITLES",
    "QUANTILES",
    "SENSITIVITY_EFFECTS",
    "SWEEP_BLOCK_DRAWS",
    "WARMING_END_YEAR",
    "climate_sensitivity",
]

#: Lake-water warming reached in :data:`WARMING_END_YEAR`, °C, swept by default (≥ 5 levels).
DEFAULT_WARMING_LEVELS_C: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
#: The year every warming level is reached (linear from the year before the projection).
WARMING_END_YEAR = 2100
#: Effects swept by default, each alone.
SENSITIVITY_EFFECTS: tuple[str, ...] = ("recruitment", "growth", "natural_mortality", "maturity")
#: Name of the optional combined row: every default effect together, scaled by one strength.
COMBINED_EFFECT = "all_default"
#: Strengths of the combined row (1 = the default effects of
#: :func:`~carpmodel.model.forcing.default_effects`).
COMBINED_STRENGTHS: tuple[float, ...] = (0.0, 0.5, 1.0)
#: Quantiles reported (and drawn as the 90 % band around the median).
QUANTILES = (0.05, 0.5, 0.95)
#: Readable name of each swept effect (figure titles); others are shown as named.
EFFECT_TITLES = {"natural_mortality": "natural mortality", "maturity": "maturity (L50)",
                 "growth": "growth (K)", COMBINED_EFFECT: "all default effects"}
#: Draws per engine run of an unchunked sweep (at least; about ten runs in all): a draw's
#: numbers do not depend on the block it runs in, and each block reports progress.
SWEEP_BLOCK_DRAWS = 10


@dataclass(frozen=True)
class _Combination:
    effect: str                       # a target or COMBINED_EFFECT
    strength: float
    effects: tuple[CovariateEffect, ...]


@dataclass(frozen=True)
class _SweepForcing:
    """``build_multipliers`` hook: every combination × warming level on the scenario axis.

    Scenario index ``c·W + w`` is combination ``c`` at warming level ``w``. The lake
    temperature of projection year y is ``base + level_w·(y − anchor)/(end − anchor) +
    anomaly_d(y)``: the same anomaly path for draw d in every scenario (drawn once from the
    draw's own stream), so scenarios differ only by warming and effects.
    """

    combinations: tuple[_Combination, ...]
    levels_c: NDArray
    history_years: NDArray            # series years up to the anchor, filled as recorded
    history_c: NDArray
    anomaly_model: AnomalyModel
    anchor_year: int
    end_year: int
    spawning_offset_c: float

    def offsets_c(self, years: NDArray) -> NDArray:
        """Warming offset (level, year), °C: 0 at the anchor year, the level in the end year."""
        fraction = (np.asarray(years, float) - self.anchor_year) / (self.end_year - self.anchor_year)
        return self.levels_c[:, None] * fraction[None, :]

    def lake_c(self, randomness: Any, years: NDArray) -> NDArray:
        """Lake temperature (level, draw, history + projection years), °C."""
        anomalies = sample_anomalies(self.anomaly_model, randomness.anomaly_normals, years.size,
                                     beyond_series="hold_last")
        base = float(self.history_c[-1])
        future = base + self.offsets_c(years)[:, None, :] + anomalies[None, :, :]
        history = np.broadcast_to(self.history_c, future.shape[:2] + self.history_c.shape)
        return np.concatenate([history, future], axis=-1)

    def __call__(self, randomness: Any, years: NDArray) -> tuple[ProcessMultipliers, NDArray]:
        years = np.asarray(years, dtype=np.int64)
        lake = self.lake_c(randomness, years)
        all_years = np.concatenate([self.history_years, years])
        covariates = temperature_covariates(CovariateSeries(all_years, lake),
                                            spawning_offset_c=self.spawning_offset_c)
        shape = lake.shape[:2] + (years.size,)
        stacked: dict[str, list[NDArray]] = {name: [] for name in TARGET_FIELDS.values()}
        for combination in self.combinations:
            multipliers = effect_multipliers(combination.effects, covariates, years)
            for name in stacked:
                stacked[name].append(np.broadcast_to(np.asarray(getattr(multipliers, name), float), shape))
        fields = {name: np.concatenate(arrays, axis=0) for name, arrays in stacked.items()}
        temperature = np.concatenate([lake[..., self.history_years.size:]] * len(self.combinations), axis=0)
        return ProcessMultipliers(**fields), temperature


def _levels(values: Sequence[float]) -> NDArray:
    levels = np.asarray(values, dtype=float)
    if levels.ndim != 1 or levels.size == 0 or not np.all(np.isfinite(levels)):
        raise ConfigError(f"warming_levels_c: expected a non-empty sequence of finite warmings in degC, "
                          f"got {values!r}")
    if levels.size > 1 and not np.all(np.diff(levels) > 0):
        raise ConfigError(f"warming_levels_c: expected strictly increasing warmings, got {list(levels)}")
    return levels


def _strengths(effects: Sequence[str], strengths: Mapping[str, Sequence[float]] | None,
               include_combined: bool) -> dict[str, tuple[float, ...]]:
    table = dict(EFFECT_STRENGTH_RANGES) if strengths is None else dict(strengths)
    table.setdefault(COMBINED_EFFECT, COMBINED_STRENGTHS)
    out = {}
    for effect in list(effects) + ([COMBINED_EFFECT] if include_combined else []):
        if effect not in table:
            raise ConfigError(f"strengths: no strengths given for effect {effect!r}; "
                              f"given: {', '.join(table)}")
        values = tuple(float(s) for s in table[effect])
        bad = any(not math.isfinite(s) or s < 0 for s in values)
        if not values or bad or len(set(values)) != len(values):
            raise ConfigError(f"strengths[{effect!r}]: expected distinct finite strengths >= 0, "
                              f"got {values!r}")
        if 0.0 not in values:
            raise ConfigError(f"strengths[{effect!r}]: expected 0 among the strengths (the no-temperature-"
                              f"effect reference every output is compared with), got {values!r}")
        out[effect] = tuple(sorted(values))
    return out


def _combinations(strengths: Mapping[str, tuple[float, ...]], reference_lake_c: float,
                  growth_optimum_c: float | None) -> tuple[_Combination, ...]:
    out = []
    for effect, values in strengths.items():
        for s in values:
            if effect == COMBINED_EFFECT:
                defaults = default_effects(reference_lake_c=reference_lake_c)
                effects = tuple(with_strength(e, s) for e in defaults)
            else:
                effects = sensitivity_effects(effect, s, growth_optimum_c=growth_optimum_c, others="none",
                                              reference_lake_c=reference_lake_c)
            out.append(_Combination(effect, s, effects))
    return tuple(out)


def _strategy_policy(strategy: str, strategies: Any) -> tuple[Any, Any, str]:
    """(builder of the policy, the Strategy, its description) of one named strategy."""
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
    from carpmodel.management.policy import build_policy
    from carpmodel.management.strategies import StrategySet

    strategy_set = strategies if isinstance(strategies, StrategySet) else \
        load_strategies(DEFAULT_STRATEGIES_FILE if strategies is None else strategies)
    if strategy not in strategy_set.names:
        raise ConfigError(f"strategy: unknown strategy {strategy!r}; valid: {', '.join(strategy_set.names)}")
    chosen = strategy_set[strategy]

    def build(batch: tuple[int, ...], years: NDArray, params: Any) -> Any:
        return build_policy([chosen], strategy_set.costs, years, params.n_age, params.lw_a, params.lw_b,
                            batch)

    return build, chosen, chosen.description


def _effect_notes(combinations: Sequence[_Combination]) -> dict[str, str]:
    """Provenance of each effect at its largest swept strength."""
    notes: dict[str, str] = {}
    for c in combinations:
        if c.effect == COMBINED_EFFECT:
            text = "; ".join(f"{e.target}: {type(e.response).__name__} ({e.note})" for e in c.effects)
        else:
            text = "; ".join(f"{type(e.response).__name__} of {e.covariate}, lag {e.lag_years} yr ({e.note})"
                             for e in c.effects)
        notes[c.effect] = f"strength {c.strength:g}: {text}"
    return notes


def climate_sensitivity(result: FitResult, data: Any, *,
                        warming_levels_c: Sequence[float] = DEFAULT_WARMING_LEVELS_C,
                        effects: Sequence[str] = SENSITIVITY_EFFECTS,
                        strengths: Mapping[str, Sequence[float]] | None = None,
                        strategy: str = "status_quo", strategies: Any = None,
                        n_draws: int = 200, seed: int = 20260601,
                        years: Sequence[int] = (2050, 2100), include_combined: bool = True,
                        growth_optimum_c: float | None = None,
                        spawning_offset_c: float = SPAWNING_OFFSET_C,
                        chunk_draws: int | None = None,
                        progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Projected biomass against warming by 2100 × the strength of each temperature effect.

    Method: lake temperature in projection year y is ``T(y) = T(anchor) + L·(y − anchor)/(2100
    − anchor) + a_d(y)`` for warming level ``L`` (°C by 2100), ``anchor`` the year before the
    projection (the last fit year), ``T(anchor)`` the series value there (held, as the
    ``hold_last`` climate scenarios do) and ``a_d`` the anomaly path of draw d (the series'
    :class:`~carpmodel.management.anomalies.AnomalyModel`: the ASSUMED AR(1) of ``climate_scenarios.toml``
    for the bundled series), the same in every scenario. The spawning-season temperature is
    derived from it (lake + ``spawning_offset_c``), so it warms by the same amount. Each effect
    of ``effects`` acts ALONE (others off) at each of its strengths
    (:func:`~carpmodel.model.forcing.sensitivity_effects` with ``others="none"``; strength s raises the
    multiplier to the power s, 0 = none, 1 = the default; maturity's 1 is L50 −2 %/°C); with
    ``include_combined`` the row ``all_default`` has every default effect scaled by one
    strength (:data:`COMBINED_STRENGTHS`). Responses are 1 at the fit-period mean lake
    temperature (the reference the fitted parameters describe). All combinations × levels are
    the scenarios of ONE projection under ``strategy`` (the engine runs of
    :func:`~carpmodel.management.projection.project`; common random numbers: same parameter
    draws, recruitment deviations, survey errors and anomalies; a draw's numbers do not depend
    on the block of draws it is run in).

    Parameters
    ----------
    result : FitResult
        The fit to project (its last year + 1 is the projection's first year).
    data : DataSet
        The data directory the fit used (temperature series, anomaly model).
    warming_levels_c : sequence of float
        Lake-water warming reached in 2100, °C, strictly increasing (default 0, 1, 2, 3, 4).
    effects : sequence of {"recruitment", "growth", "natural_mortality", "maturity"}
    strengths : mapping effect → strengths, optional
        Default :data:`~carpmodel.model.forcing.EFFECT_STRENGTH_RANGES` (and
        :data:`COMBINED_STRENGTHS`); each must contain 0.
    strategy : str
        Release strategy projected (default ``status_quo``) from ``strategies`` (a
        StrategySet or a TOML path; default the bundled strategies).
    n_draws, seed : int
        Draws of the projection and its seed.
    years : sequence of int
        Years reported (default 2050 and 2100), within the projection.
    growth_optimum_c : float, optional
        Optimum of the growth dome (default 15 °C; sweep
        :data:`~carpmodel.model.forcing.GROWTH_OPTIMUM_RANGE_C` by calling once per value).
    chunk_draws : int, optional
        Run the engine on chunks of this many draws (dask, as ``project``): memory is bounded
        by one chunk of (combination × warming × draw × year) state whatever ``n_draws``, and
        only the reported years are kept from each chunk. The same seed gives identical
        results chunked or not. The returned Dataset is this reduced summary, in memory.
        Unchunked, the engine runs on blocks of :data:`SWEEP_BLOCK_DRAWS` draws or more
        (about ten blocks), with the same results.
    progress : callable, optional
        ``progress(done, total)`` after each block of draws (``(0, total)`` first).

    Returns
    -------
    xarray.Dataset
        Dims ``effect, strength, warming_c, year, draw``; ``strength`` is the union of all
        effects' strengths, NaN where an effect was not run at a strength (``run`` says which).
        ``biomass_t`` per draw, its ``_median``/``_lower`` (5 %)/``_upper`` (95 %);
        ``relative_change`` = B/B_ref − 1 paired by draw against the same effect's strength-0
        row at the same warming (the no-temperature-effect reference), with its quantiles;
        ``reference_biomass_t`` (warming_c, year, draw) and its quantiles; ``warming_offset_c``
        and ``lake_temperature_median_c`` (warming_c, year). Units and long_name on each.
    """
    clock = time.perf_counter()
    spec = result.spec
    levels = _levels(warming_levels_c)
    effects = tuple(effects)
    unknown = [e for e in effects if e not in TARGETS]
    if unknown or len(set(effects)) != len(effects):
        raise ConfigError(f"effects: expected distinct names among {', '.join(TARGETS)}, got {effects!r}")
    if not effects and not include_combined:
        raise ConfigError("effects: expected at least one effect (or include_combined=True)")
    first_year, anchor = int(spec.years[-1]) + 1, int(spec.years[-1])
    report_years = np.asarray(sorted({int(y) for y in years}), dtype=np.int64)
    if report_years.size == 0 or report_years[0] < first_year or report_years[-1] > WARMING_END_YEAR:
        raise ConfigError(f"years: expected years in {first_year}-{WARMING_END_YEAR} (the projection), "
                          f"got {list(years)!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise ConfigError(f"n_draws: expected an integer >= 2, got {n_draws!r}")

    lake = EnvSeries.from_temperature(data)
    fit_years = lake.extend(int(spec.years[0]), anchor)
    reference_lake_c = float(np.mean(fit_years.values))
    strength_table = _strengths(effects, strengths, include_combined)
    combinations = _combinations(strength_table, reference_lake_c, growth_optimum_c)
    max_lag = max((e.lag_years for c in combinations for e in c.effects), default=0)
    history = lake.extend(min(lake.first_year, first_year - max_lag), anchor)
    anomaly_model = AnomalyModel.for_series(lake, data)
    forcing = _SweepForcing(combinations, levels, np.asarray(history.year), np.asarray(history.values),
                            anomaly_model, anchor, WARMING_END_YEAR, spawning_offset_c)
    policy, chosen, description = _strategy_policy(strategy, strategies)
    n_comb, n_warm = len(combinations), levels.size
    names = tuple(f"{c.effect}@{c.strength:g}+{w:g}C" for c in combinations for w in levels)
    setup = ProjectionSetup(strategy_names=(strategy,), build_policy=policy, scenario_names=names,
                            build_multipliers=forcing, first_year=first_year, last_year=WARMING_END_YEAR,
                            n_draws=int(n_draws), seed=int(seed), chunk_draws=chunk_draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        biomass, temperature = _sweep(result, setup, report_years, progress)
    biomass = biomass.astype(float).reshape(n_comb, n_warm, report_years.size, n_draws)
    temperature = temperature.reshape(n_comb, n_warm, report_years.size, n_draws)[0]

    effect_names = list(strength_table)
    strength_values = sorted({s for values in strength_table.values() for s in values})
    shape = (len(effect_names), len(strength_values), n_warm, report_years.size, n_draws)
    grid = np.full(shape, np.nan)
    run = np.zeros(shape[:2], dtype=bool)
    for i, c in enumerate(combinations):
        e, s = effect_names.index(c.effect), strength_values.index(c.strength)
        grid[e, s] = biomass[i]
        run[e, s] = True
    zero = strength_values.index(0.0)
    reference = grid[:, zero]                                           # (effect, warming, year, draw)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = grid / reference[:, None] - 1.0
    identical = all(np.array_equal(reference[0], reference[e]) for e in range(len(effect_names)))

    dims = ("effect", "strength", "warming_c", YEAR, "draw")
    ds = xr.Dataset(coords={
        "effect": effect_names, "strength": np.asarray(strength_values, float),
        "warming_c": levels, YEAR: report_years, "draw": np.arange(n_draws)})
    ds["run"] = (("effect", "strength"), run)
    ds["biomass_t"] = (dims, grid)
    ds["relative_change"] = (dims, relative)
    ds["reference_biomass_t"] = (("warming_c", YEAR, "draw"), reference[0])
    _add_quantiles(ds, "biomass_t", "t", "end-of-year survey-age biomass")
    _add_quantiles(ds, "relative_change", "1",
                   "biomass / no-temperature-effect reference - 1, paired by draw (same warming)")
    _add_quantiles(ds, "reference_biomass_t", "t",
                   "biomass with no temperature effect (strength 0): the reference of every cell")
    ds["warming_offset_c"] = (("warming_c", YEAR), forcing.offsets_c(report_years))
    ds["lake_temperature_median_c"] = (("warming_c", YEAR), np.median(temperature, axis=-1))
    ds["effect_note"] = (("effect",), [_effect_notes(combinations)[e] for e in effect_names])
    _describe(ds, {
        "run": ("1", "combination projected (False: this effect was not run at this strength)"),
        "biomass_t": ("t", "end-of-year survey-age biomass, per draw"),
        "relative_change": ("1", "biomass / no-temperature-effect reference - 1, paired by draw"),
        "reference_biomass_t": ("t", "biomass with no temperature effect (strength 0), per draw"),
        "warming_offset_c": ("degC", "warming added to the lake (and spawning-season) temperature"),
        "lake_temperature_median_c": ("degC", "median over draws of the projected lake summer surface "
                                      "temperature (offset + assumed anomalies)"),
        "effect_note": ("1", "response, covariate and provenance of the effect at its largest strength"),
        "effect": ("", f"temperature effect acting alone (others off); {COMBINED_EFFECT} = every "
                   f"default effect together"),
        "strength": ("1", "effect strength: the multiplier raised to this power (0 = no effect, "
                     "1 = the default [A])"),
        "warming_c": ("degC", f"lake-water warming reached in {WARMING_END_YEAR}, linear from "
                      f"{anchor}"),
        YEAR: ("yr", "calendar year"), "draw": ("1", "projection draw")})
    ds.attrs.update({
        "title": "Climate sensitivity of projected biomass (carpmodel)",
        "carpmodel_version": __version__,
        "assumed": ("EVERY temperature effect and strength here is an ASSUMPTION [A] (see effect_note): "
                    "none was estimated for G. przewalskii; the bundled temperature series and its "
                    "anomalies are assumed too"),
        "others_off": ("each effect acts alone, the other effects off; strength 0 is the "
                       "no-temperature-effect reference" + (f"; {COMBINED_EFFECT}: every default effect "
                                                            "together, each scaled by the strength"
                                                            if include_combined else "")),
        "reference_identical_across_effects": bool(identical),
        "warming": (f"lake T(y) = T({anchor}) [{float(history.values[-1]):.3f} degC, held] + level x "
                    f"(y - {anchor})/({WARMING_END_YEAR} - {anchor}) + anomaly; spawning-season "
                    f"temperature = lake {spawning_offset_c:+g} degC [A]"),
        "anomalies": anomaly_model.describe(),
        "reference_lake_c": reference_lake_c,
        "reference_lake_note": f"responses are 1 at the {int(spec.years[0])}-{anchor} mean lake temperature",
        "common_random_numbers": ("all (effect, strength, warming) combinations are scenarios of ONE "
                                  "projection: same parameter draws, recruitment deviations, survey "
                                  "errors and temperature anomalies per draw"),
        "strategy": strategy, "strategy_description": description,
        "n_draws": int(n_draws), "seed": int(seed),
        "quantiles": "lower = 5 %, median = 50 %, upper = 95 % over draws",
        "growth_optimum_c": float(growth_optimum_c) if growth_optimum_c is not None else "default (15 degC)",
        "runtime_s": time.perf_counter() - clock,
    })
    return ds


def _sweep(result: FitResult, setup: ProjectionSetup, report_years: NDArray,
           progress: Callable[[int, int], None] | None) -> tuple[NDArray, NDArray]:
    """Biomass (float32) and lake temperature of every scenario in the reported years,
    ``(scenario, year, draw)`` each: chunked with dask when ``setup.chunk_draws`` is set, else on
    blocks of draws (:func:`~carpmodel.management.projection.prepare_draws` and
    :func:`~carpmodel.management.projection.simulate_strategies`, as the projection runs them)."""
    if setup.chunk_draws is not None:
        if progress is not None:
            progress(0, 1)
        projected = project(result, setup)
        biomass = projected["biomass_t"].isel(strategy=0).sel(year=report_years)
        temperature = projected["temperature_c"].sel(year=report_years)
        out = (biomass.transpose("scenario", "year", "draw").values,
               temperature.transpose("scenario", "year", "draw").values)
        if progress is not None:
            progress(1, 1)
        return out
    years = np.arange(setup.first_year, setup.last_year + 1)
    index = np.searchsorted(years, report_years)
    n_draws = setup.n_draws
    block = max(SWEEP_BLOCK_DRAWS, math.ceil(n_draws / 10))
    starts = range(0, n_draws, block)
    n_scenario = len(setup.scenario_names)
    biomass = np.empty((n_scenario, report_years.size, n_draws), dtype=np.float32)
    temperature = np.empty((n_scenario, report_years.size, n_draws))
    if progress is not None:
        progress(0, len(starts))
    for done, start in enumerate(starts, start=1):
        draws = np.arange(start, min(start + block, n_draws))
        prepared = prepare_draws(result, setup, draws)
        policy = setup.build_policy((1, n_scenario, draws.size), years, prepared.params)
        state = simulate_strategies(prepared, policy, 1)
        values = np.broadcast_to(state.biomass_t, (1, n_scenario, draws.size, years.size))[0]
        biomass[:, :, draws] = np.moveaxis(values[..., index], 1, 2)
        lake = np.broadcast_to(prepared.temperature_c, (n_scenario, draws.size, years.size))
        temperature[:, :, draws] = np.moveaxis(lake[..., index], 1, 2)
        if progress is not None:
            progress(done, len(starts))
    return biomass, temperature


def _add_quantiles(ds: xr.Dataset, name: str, units: str, long_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN cells: combinations not run
        values = np.nanquantile(ds[name].values, QUANTILES, axis=-1)
    base = name[:-2] if name.endswith("_t") else name
    suffix = "_t" if name.endswith("_t") else ""
    dims = ds[name].dims[:-1]
    for label, q, v in zip(("lower", "median", "upper"), QUANTILES, values, strict=True):
        ds[f"{base}_{label}{suffix}"] = (dims, v)
        ds[f"{base}_{label}{suffix}"].attrs.update(
            units=units, long_name=f"{q:.0%} quantile over draws of {long_name}")


def _describe(ds: xr.Dataset, described: Mapping[str, tuple[str, str]]) -> None:
    for name, (units, long_name) in described.items():
        if name in ds.variables:
            ds[name].attrs.update(units=units, long_name=long_name)
    describe_labels(ds.variables)   # labels (effect names) keep their long_name and have no units
