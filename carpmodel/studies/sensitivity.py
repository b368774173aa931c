"""Climate sensitivity of projected biomass, and whether temperature can be tested on the data.

Three questions, three tools:

1. **How much could warming matter?** :func:`climate_sensitivity` sweeps lake-water warming
   by 2100 (default 0-4 °C) × the strength of each temperature effect (recruitment, growth,
   natural mortality, maturity; :data:`~carpmodel.model.forcing.EFFECT_STRENGTH_RANGES`) in ONE
   stochastic projection: every (effect, strength, warming) combination is a scenario of the
   same :func:`~carpmodel.management.projection.project` call, so every combination sees the same draws
   of parameters, recruitment deviations, survey errors and temperature anomalies (common
   random numbers) and differences between cells are due to the forcing alone. Each effect
   acts ALONE (the others off); strength 0 is the no-temperature-effect reference, identical
   at every warming level. A combined row (``all_default``: every default effect together,
   scaled by one strength) is optional. Every effect and every strength is an ASSUMPTION
   ([A] in :mod:`carpmodel.model.forcing`): no effect has been estimated for this species.
   :func:`plot_sensitivity_lines` and :func:`plot_sensitivity_heatmap` draw the result and
   :func:`write_sensitivity` writes ``sensitivity.nc`` and the figures.
2. **Does temperature help explain the record?** :func:`temperature_effect_test` fits the
   model with and without an estimated log-linear recruitment–temperature slope on the data's
   own temperature series and reports ΔAICc, the slope and its SE, the likelihood-ratio
   statistic and (optionally) hindcast MASE. With the bundled ASSUMED series it says so:
   the effect is not testable on those data.
3. **Could the record ever tell?** :func:`power_analysis` simulates temperature series as an
   observed record would look (the trend plus AR(1) anomalies), recruitment with a known
   slope, and the 12-point biomass record, refits with and without the slope, and reports the
   power of the likelihood-ratio test per slope, the type-I error and the smallest slope
   detected with 80 % power.

Units: biomass in t (figures in thousand t), temperatures and warming in °C, slopes per °C
on the log scale (``exp(b·(T − T_ref))``), strengths dimensionless.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats
from scipy.optimize import minimize

from carpmodel import __version__
from carpmodel.dims import YEAR
from carpmodel.errors import CarpmodelError, ConfigError, FitError
from carpmodel.inference.fitting import (
    FitResult,
    batched_gradient,
    build_spec,
    hessian,
)
from carpmodel.inference.likelihood import Covariate as LikelihoodCovariate
from carpmodel.inference.likelihood import (
    Free,
    ModelSpec,
    observation_sd,
    predict,
    survey_prediction_t,
)
from carpmodel.inference.refit import refit, safe_hessian
from carpmodel.io.config import RunConfig, default_config
from carpmodel.management.anomalies import AnomalyModel, sample_anomalies
from carpmodel.management.projection import ProjectionSetup, project
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
from carpmodel.priors import Prior

__all__ = [
    "COMBINED_EFFECT",
    "COMBINED_STRENGTHS",
    "DEFAULT_SLOPE_PRIOR_SD",
    "DEFAULT_WARMING_LEVELS_C",
    "LR_CRITICAL_VALUE",
    "NOT_TESTABLE_ASSUMED",
    "SENSITIVITY_EFFECTS",
    "WARMING_END_YEAR",
    "climate_sensitivity",
    "plot_sensitivity_heatmap",
    "plot_sensitivity_lines",
    "power_analysis",
    "temperature_effect_test",
    "write_sensitivity",
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
#: [A] SD of the Normal(0, σ) prior of an estimated temperature slope, per °C on the log scale:
#: weakly informative (±1 = recruitment ×0.37-2.7 per °C, a strong effect). It keeps the
#: estimate finite when the data say almost nothing: with a flat prior the estimate runs to
#: |b| > 5 on these data and the χ²₁ test is far from calibrated (type-I error 2 of 9 = 22 % in
#: a trial power run with 10 replicates).
DEFAULT_SLOPE_PRIOR_SD = 1.0
#: χ²₁ 95 % point: the likelihood-ratio statistic 2·ΔNLL above which a slope counts as detected.
LR_CRITICAL_VALUE = float(stats.chi2.ppf(0.95, 1))
#: What :func:`temperature_effect_test` says for an assumed linear series.
NOT_TESTABLE_ASSUMED = "not testable: the temperature series is an assumption (a linear trend), not data"
#: Largest |residual| (°C) from a straight line for a series to count as "a linear trend".
_LINEAR_TOLERANCE_C = 0.02
#: Estimated slope field per target of :func:`temperature_effect_test`.
_SLOPE_FIELDS = {"recruitment": "recruitment_slope_per_c", "growth": "growth_slope_per_c"}
#: A power-analysis refit counts as converged when the objective's predicted remaining decrease
#: ½·gᵀH⁻¹g (H from the preconditioner) is below this: the test needs the NLL to ~1e-3, and a
#: gradient test is misleading along the stiff directions (Hessian eigenvalues up to ~2e5).
_POWER_DECREMENT_TOLERANCE = 1e-4


# ============================================================================ 1. sensitivity


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
    draw's own generator), so scenarios differ only by warming and effects.
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
        rngs = tuple(randomness.anomaly_rngs)
        anomalies = sample_anomalies(self.anomaly_model, rngs, years.size, beyond_series="hold_last")
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
                        chunk_draws: int | None = None) -> xr.Dataset:
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
    the scenarios of ONE :func:`~carpmodel.management.projection.project` call under ``strategy`` (common
    random numbers: same parameter draws, recruitment deviations, survey errors and anomalies).

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
        projected = project(result, setup)
    biomass = projected["biomass_t"].isel(strategy=0).sel(year=report_years)
    biomass = biomass.transpose("scenario", "year", "draw")
    biomass = biomass.values.astype(float).reshape(n_comb, n_warm, report_years.size, n_draws)
    temperature = projected["temperature_c"].sel(year=report_years).transpose("scenario", "year", "draw")
    temperature = temperature.values.reshape(n_comb, n_warm, report_years.size, n_draws)[0]

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
        "effect": ("1", f"temperature effect acting alone (others off); {COMBINED_EFFECT} = every "
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


# ---------------------------------------------------------------------------- figures


def _effect_title(effect: str) -> str:
    return {"natural_mortality": "natural mortality", "maturity": "maturity (L50)", "growth": "growth (K)",
            COMBINED_EFFECT: "all default effects"}.get(effect, effect)


def plot_sensitivity_lines(ds: xr.Dataset, year: int) -> Any:
    """Biomass in ``year`` against warming by 2100: one panel per effect, one line per strength.

    Each line is the median over draws with its 90 % band (5-95 %); the strength-0 line (black,
    dashed, grey band) is the no-temperature-effect reference, the same in every panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = ds.sel({YEAR: int(year)})
    effects = list(ds["effect"].values)
    n = len(effects)
    n_cols = min(n, 3)
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), sharex=True,
                             sharey=True, layout="constrained", squeeze=False)
    warming = ds["warming_c"].values
    colours = plt.get_cmap("plasma")
    positive = [s for s in ds["strength"].values if s > 0]
    for ax, effect in zip(axes.flat, effects, strict=False):
        for strength in ds["strength"].values:
            if not bool(sel["run"].sel(effect=effect, strength=strength)):
                continue
            cell = sel.sel(effect=effect, strength=strength)
            median, lower, upper = (cell[f"biomass_{k}_t"].values / 1e3 for k in ("median", "lower", "upper"))
            if strength == 0:
                ax.fill_between(warming, lower, upper, color="0.6", alpha=0.25, lw=0)
                ax.plot(warming, median, color="black", ls="--", marker="o", ms=3, zorder=5,
                        label="strength 0: no temperature effect (reference)")
            else:
                c = colours(0.15 + 0.7 * positive.index(strength) / max(len(positive) - 1, 1))
                ax.fill_between(warming, lower, upper, color=c, alpha=0.15, lw=0)
                ax.plot(warming, median, color=c, marker="o", ms=3, label=f"strength {strength:g}")
        ax.set_title(_effect_title(str(effect)) + " alone" * (effect != COMBINED_EFFECT), fontsize=10)
        ax.grid(alpha=0.3)
    legend: dict[str, Any] = {}                 # one legend for all panels: labels are shared
    for ax in axes.flat[:n]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if n < axes.size:                             # in the first empty panel, off the data
        spare = axes.flat[n]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(legend.values(), legend.keys(), loc="center", fontsize=8, title="effect strength")
    else:
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4, fontsize=8)
    for column in range(n_cols):                 # the lowest visible panel of each column
        shown = [row for row in range(n_rows) if row * n_cols + column < n]
        if shown:
            ax = axes[shown[-1], column]
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(f"Warming by {WARMING_END_YEAR} (°C)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"Biomass in {int(year)} (thousand t)")
    fig.suptitle(f"Biomass in {int(year)} against lake warming (median, 90 % band; "
                 f"{ds.attrs.get('n_draws', '?')} draws, strategy {ds.attrs.get('strategy', '?')}); "
                 "all effects assumed", fontsize=10)
    return fig


def plot_sensitivity_heatmap(ds: xr.Dataset, year: int, effect: str) -> Any:
    """Warming × strength for one effect; colour = median change in biomass in ``year`` relative
    to the no-temperature-effect reference (paired by draw), in %; the strength-0 row is the
    reference (0 %). Cells are annotated with their value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if effect not in ds["effect"].values:
        raise ConfigError(f"effect: expected one of {', '.join(map(str, ds['effect'].values))}, "
                          f"got {effect!r}")
    sel = ds.sel({YEAR: int(year), "effect": effect})
    strengths = [s for s in ds["strength"].values if bool(sel["run"].sel(strength=s))]
    change = sel["relative_change_median"].sel(strength=strengths).transpose("strength", "warming_c")
    values = 100.0 * change.values
    warming = ds["warming_c"].values
    fig, ax = plt.subplots(figsize=(1.2 * warming.size + 2.5, 0.7 * len(strengths) + 1.8),
                           layout="constrained")
    limit = max(float(np.nanmax(np.abs(values))), 1e-9)
    mesh = ax.pcolormesh(np.arange(warming.size + 1), np.arange(len(strengths) + 1), values, cmap="RdBu",
                         norm=TwoSlopeNorm(0.0, -limit, limit), shading="flat")
    for i in range(len(strengths)):
        for j in range(warming.size):
            v = values[i, j]
            ax.text(j + 0.5, i + 0.5, f"{v:+.1f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(v) > 0.6 * limit else "black")
    ax.set_xticks(np.arange(warming.size) + 0.5, [f"{w:g}" for w in warming])
    ax.set_yticks(np.arange(len(strengths)) + 0.5,
                  [f"{s:g} (reference)" if s == 0 else f"{s:g}" for s in strengths])
    ax.set_xlabel(f"Warming by {WARMING_END_YEAR} (°C)")
    ax.set_ylabel("Effect strength (0 = no effect, 1 = default)")
    reference = float(ds["reference_biomass_median_t"].sel({YEAR: int(year)}).mean()) / 1e3
    ax.set_title(f"{_effect_title(effect)}: biomass in {int(year)} vs no-temperature-effect reference\n"
                 f"(reference median {reference:,.1f} thousand t; effects assumed)", fontsize=9)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(f"Median change in biomass in {int(year)} vs reference (%)")
    return fig


def write_sensitivity(ds: xr.Dataset, directory: str | Path, *, figure_format: str = "png") -> list[Path]:
    """Write ``sensitivity.nc``, the line figure for every reported year and a heat map for every
    year × effect into an existing ``directory``; returns the paths written."""
    import matplotlib.pyplot as plt

    from carpmodel.io.outputs import write_figure_atomic, write_netcdf_atomic

    directory = Path(directory)
    written = [write_netcdf_atomic(ds, directory / "sensitivity.nc")]
    for year in ds[YEAR].values:
        fig = plot_sensitivity_lines(ds, int(year))
        written.append(write_figure_atomic(fig, directory / f"sensitivity_lines_{int(year)}.{figure_format}"))
        plt.close(fig)
        for effect in ds["effect"].values:
            fig = plot_sensitivity_heatmap(ds, int(year), str(effect))
            written.append(write_figure_atomic(
                fig, directory / f"sensitivity_heatmap_{int(year)}_{effect}.{figure_format}"))
            plt.close(fig)
    return written


# ============================================================================ 2. temperature test


def _covariate_series(data: Any, years: NDArray, covariate: str) -> tuple[EnvSeries, NDArray]:
    """(the lake series, covariate values on ``years``) — lag 0: year y uses year y's value."""
    lake = EnvSeries.from_temperature(data)
    covariates = temperature_covariates(lake.extend(int(years[0]), int(years[-1])))
    if covariate not in covariates:
        raise ConfigError(f"covariate: expected one of {', '.join(covariates)}, got {covariate!r}")
    return lake, np.asarray(covariates[covariate].values, dtype=float)


def _with_slopes(spec: ModelSpec, values: NDArray, reference: float, targets: Sequence[str],
                 prior_sd: float | None) -> ModelSpec:
    """``spec`` with estimated log-linear slopes on ``values − reference`` (inserted before the
    recruitment deviations), each with a Normal(0, prior_sd) prior (None: flat)."""
    prior = Prior("normal", {"mean": 0.0, "sd": float(prior_sd)}) if prior_sd is not None else None
    added = tuple(Free(_SLOPE_FIELDS[t], "identity", prior, 0.0) for t in targets)
    return replace(spec, free=tuple(spec.free) + added,
                   covariate=LikelihoodCovariate(np.asarray(values, float), float(reference)))


def _slope_prior_nll(spec: ModelSpec, theta: NDArray) -> float:
    """The slopes' share of the priors component (−log prior density at theta)."""
    total = 0.0
    for i, free in enumerate(spec.estimated):
        if free.field in _SLOPE_FIELDS.values() and free.prior is not None:
            total -= float(free.prior.logpdf(free.from_theta(theta[i])))
    return total


def _value_gradient(spec: ModelSpec, theta: NDArray) -> tuple[float, NDArray]:
    """Objective and its batched central-difference gradient; 1e10 where the engine refuses."""
    try:
        with np.errstate(all="ignore"):
            value, grad = batched_gradient(spec, theta)
    except (CarpmodelError, ValueError, FloatingPointError):
        return 1e10, np.zeros_like(theta)
    if not (np.isfinite(value[0]) and np.all(np.isfinite(grad[0]))):
        return 1e10, np.zeros_like(theta)
    return float(value[0]), grad[0]


def _bounds(spec: ModelSpec) -> list[tuple[float, float]]:
    """The box of :func:`carpmodel.inference.fitting.fit`: ±15 around each start on the estimation scale,
    ±6 for a recruitment deviation."""
    centre = spec.initial_theta()[: len(spec.estimated)]
    return [(c - 15.0, c + 15.0) for c in centre] + [(-6.0, 6.0)] * len(spec.rec_dev_years)


def _preconditioner(h: Any, n: int) -> NDArray | None:
    """``L`` with ``Lᵀ·H·L ≈ I`` from a Hessian ``H`` (n, n), eigenvalues floored; None if unusable."""
    if h is None:
        return None
    h = np.asarray(h, dtype=float)
    if h.shape != (n, n) or not np.all(np.isfinite(h)):
        return None
    w, v = np.linalg.eigh(0.5 * (h + h.T))
    if not w.max() > 0:
        return None
    return v / np.sqrt(np.maximum(w, 1e-8 * w.max()))


def _lbfgs(spec: ModelSpec, start: NDArray, max_iter: int, scale: NDArray | None) -> NDArray:
    """One L-BFGS-B run from ``start``, on ``theta`` in the fit's box, or on ``z`` with
    ``theta = start + scale·z`` (no box: the engine's refusals, objective 1e10, keep it valid)."""
    options = {"maxiter": max_iter, "ftol": 1e-10, "gtol": 1e-6, "maxcor": 30}
    if scale is None:
        bounds = _bounds(spec)
        low, high = np.array(bounds).T
        start = np.clip(np.asarray(start, float), low, high)
        res = minimize(lambda x: _value_gradient(spec, x), start, jac=True, method="L-BFGS-B", bounds=bounds,
                       options=options)
        return res.x
    start = np.asarray(start, float)

    def fun(z: NDArray) -> tuple[float, NDArray]:
        value, grad = _value_gradient(spec, start + scale @ z)
        return value, scale.T @ grad

    res = minimize(fun, np.zeros(start.size), jac=True, method="L-BFGS-B", options=options)
    return start + scale @ res.x


def _decrement(grad: NDArray, scale: NDArray | None) -> float:
    """Predicted remaining decrease ½·gᵀH⁻¹g with ``H⁻¹ ≈ scale·scaleᵀ``; ½·|g|² without a scale."""
    z = np.asarray(grad, float) if scale is None else scale.T @ np.asarray(grad, float)
    return float(0.5 * z @ z)


def _minimise_from(spec: ModelSpec, start: NDArray, max_iter: int = 2000, scale: NDArray | None = None,
                   restarts: int = 2) -> tuple[NDArray, float, NDArray, NDArray | None]:
    """Warm-started L-BFGS-B; returns (theta, objective, gradient, the preconditioner last used).

    With ``scale`` (:func:`_preconditioner` of the Hessian of a similar problem) the search runs
    where the objective is close to a unit quadratic: 2-4 times fewer iterations than on
    ``theta`` (Hessian condition number ~1e5). When the predicted remaining decrease is still
    above :data:`_POWER_DECREMENT_TOLERANCE`, up to ``restarts`` times: the batched Hessian at
    the end point becomes the preconditioner and the search restarts there (a flat valley, e.g.
    M against steepness, can differ from the problem the first preconditioner came from).
    """
    theta = _lbfgs(spec, start, max_iter, scale)
    value, grad = _value_gradient(spec, theta)
    for _ in range(restarts):
        if value < 1e10 and _decrement(grad, scale) < _POWER_DECREMENT_TOLERANCE:
            break
        try:
            fresh = _preconditioner(hessian(spec, theta), theta.size)
        except (CarpmodelError, ValueError, FloatingPointError):
            break
        if fresh is None:
            break
        candidate = _lbfgs(spec, theta, max_iter, fresh)
        new_value, new_grad = _value_gradient(spec, candidate)
        scale = fresh
        if new_value <= value:
            theta, value, grad = candidate, new_value, new_grad
    return theta, value, grad, scale


def _data_only_se(spec: ModelSpec, theta: NDArray, k: int, prior_sd: float | None) -> float:
    """SE of parameter ``k`` from the data (and the other parameters' priors) alone: inverse of the
    batched Hessian with the Normal(0, prior_sd) curvature 1/prior_sd² removed; inf when the
    remainder is not positive definite (the data do not bound the slope), NaN if it fails."""
    h = safe_hessian(spec, theta)
    if h is None:
        return float("nan")
    h = np.array(h, float)
    if prior_sd is not None:
        h[k, k] -= 1.0 / prior_sd**2
    if not np.all(np.linalg.eigvalsh(0.5 * (h + h.T)) > 0):
        return float("inf")
    return float(np.sqrt(np.linalg.inv(h)[k, k]))


def _augmented_scale(spec: ModelSpec, theta: NDArray, base_h: NDArray, k: int,
                     step: float = 1e-4) -> NDArray | None:
    """Preconditioner of a model that adds parameter ``k`` to one with Hessian ``base_h``: the
    new row and column are this problem's own, central differences of two batched gradients
    at ``theta`` (the coupling of a slope with the recruitment deviations is what slows the search)."""
    n = theta.size
    h = np.insert(np.insert(np.asarray(base_h, float), k, 0.0, axis=0), k, 0.0, axis=1)
    try:
        with np.errstate(all="ignore"):
            unit = np.eye(n)[k]
            _, grads = batched_gradient(spec, np.stack([theta + step * unit, theta - step * unit]))
    except (CarpmodelError, ValueError, FloatingPointError):
        return _preconditioner(h + np.eye(n)[k][:, None] * np.eye(n)[k][None, :], n)
    column = (grads[0] - grads[1]) / (2 * step)
    if not np.all(np.isfinite(column)):
        return None
    h[k, :], h[:, k] = column, column
    return _preconditioner(h, n)


def _is_linear(series: EnvSeries) -> bool:
    use = ~series.filled_mask
    if use.sum() < 3:
        return True
    slope, intercept = np.polyfit(series.year[use].astype(float), series.values[use], 1)
    residual = series.values[use] - (intercept + slope * series.year[use])
    return bool(np.max(np.abs(residual)) <= _LINEAR_TOLERANCE_C)


def _data_nll(result: FitResult, components: Sequence[str]) -> float:
    return float(sum(v for k, v in result.nll_components.items() if k in components))


def temperature_effect_test(data: Any, config: RunConfig | None = None, *,
                            covariate: str = "spawning_temperature_c",
                            targets: Sequence[str] = ("recruitment",),
                            slope_prior_sd: float | None = DEFAULT_SLOPE_PRIOR_SD,
                            baseline: FitResult | None = None,
                            hindcast_peels: int | None = None, cold_start: bool = True) -> dict[str, Any]:
    """Fit with and without an estimated temperature effect and compare (ΔAICc, LR, MASE).

    Method: the covariate is the data's temperature series on the model years at lag 0
    (recruits of year y respond to the spawning-season temperature of year y; years outside
    the series are held at its end values, recorded), centred on its fit-period mean. The
    effect model adds ``recruitment_slope_per_c`` (and ``growth_slope_per_c`` if ``"growth"``
    is in ``targets``; K then follows the same anomalies) — log-linear, ``exp(b·(T − T̄))``,
    identity transform, Normal(0, ``slope_prior_sd``) prior. Both models are fitted as
    :func:`carpmodel.inference.fitting.fit` does (``config.fit.n_starts``); the effect model also from the
    no-effect optimum with slope 0 (nested start: its estimates and Hessian,
    :func:`carpmodel.inference.refit.refit`), the better kept (``cold_start=False``: the nested start
    only, with the cold fit as the fallback if it does not converge; several times faster).
    ``baseline`` is a finished fit of ``build_spec(data, config)`` to reuse.

    Reported: ΔAICc (effect − no effect; > 0 favours no effect) with AICc = 2·NLL_data + 2k +
    2k(k+1)/(n − k − 1) (:func:`carpmodel.diagnostics.compare_fits`: data components only, k
    without the recruitment deviations, n the biomass observations), also on the penalised
    NLL (data + recruitment-deviation penalty, where a recruitment covariate acts); the
    slope, its SE (with the prior; and from the data alone, the prior's curvature removed);
    the likelihood-ratio statistic 2·ΔNLL (total objective, slope prior excluded) and its χ²₁
    p-value; with ``hindcast_peels`` > 0 (default: 5 when the series is observed, else 0) the
    one-step hindcast MASE of both models (:func:`carpmodel.diagnostics.hindcast`, peels
    warm-started from the full fits, the cold fit as the fallback).

    ``testable`` is ``EnvSeries.observed``: only a measured series can test an effect. For the
    bundled ASSUMED linear series ``statement`` is :data:`NOT_TESTABLE_ASSUMED`; the fits are
    still reported but measure only how a straight line in time lines up with the record.
    """
    from carpmodel.diagnostics import DATA_COMPONENTS, compare_fits, hindcast

    clock = time.perf_counter()
    config = default_config() if config is None else config
    targets = tuple(targets)
    if not targets or any(t not in _SLOPE_FIELDS for t in targets) or len(set(targets)) != len(targets):
        raise ConfigError(f"targets: expected distinct names among {', '.join(_SLOPE_FIELDS)}, "
                          f"got {targets!r}")
    spec0 = build_spec(data, config)
    lake, values = _covariate_series(data, spec0.years, covariate)
    reference = float(np.mean(values))
    spec1 = _with_slopes(spec0, values, reference, targets, slope_prior_sd)
    testable = bool(lake.observed)
    levels = sorted(set(data.temperature.confidence))
    if testable:
        statement = (f"testable: {lake.name} is observed (confidence measured, source {lake.source_id}); "
                     f"the comparison below tests the effect on these data")
    elif _is_linear(lake):
        statement = NOT_TESTABLE_ASSUMED
    else:
        statement = (f"not testable: the temperature series is not observed (confidence "
                     f"{', '.join(levels)}), so it is not data an effect can be tested on")
    if baseline is None:
        baseline = refit(spec0, n_starts=config.fit.n_starts, seed=config.seed, label="no-effect model")
    effect = None if baseline is None else refit(
        spec1, source=baseline, n_starts=config.fit.n_starts, seed=config.seed, cold_first=False,
        try_both=cold_start, label="effect model")
    if baseline is None or effect is None:
        raise FitError("temperature_effect_test: the fit failed from every start")
    comparison = compare_fits({"no_effect": baseline, "effect": effect})
    table = comparison.table
    k = {name: int(table["n_parameters"].sel(variant=name)) for name in ("no_effect", "effect")}
    n = int(table["n_observations"].sel(variant="effect"))
    penalised = DATA_COMPONENTS + ("recruitment_deviations",)
    aicc_penalised = {name: _aicc(_data_nll(r, penalised), k[name], n)
                      for name, r in (("no_effect", baseline), ("effect", effect))}
    slope_prior = _slope_prior_nll(spec1, effect.theta)
    lr = 2.0 * (baseline.nll - (effect.nll - slope_prior))
    slopes = {}
    n_free = len(spec1.estimated)
    for target in targets:
        i = [f.field for f in spec1.estimated].index(_SLOPE_FIELDS[target])
        se = float(effect.std_errors[i])
        slopes[target] = {"estimate_per_c": float(effect.theta[i]), "std_error_per_c": se,
                          "std_error_data_only_per_c": _data_only_se(spec1, effect.theta, i, slope_prior_sd)}
    models = {}
    for name, r in (("no_effect", baseline), ("effect", effect)):
        models[name] = {"nll_total": float(r.nll), "nll_data": _data_nll(r, DATA_COMPONENTS),
                        "nll_recruitment_deviations":
                            float(r.nll_components.get("recruitment_deviations", 0.0)),
                        "k": k[name], "n": n, "aicc": float(table["aicc"].sel(variant=name)),
                        "aicc_penalised": aicc_penalised[name], "converged": bool(r.converged),
                        "max_abs_gradient": float(r.max_abs_gradient)}
    peels = (5 if testable else 0) if hindcast_peels is None else int(hindcast_peels)
    hindcasts: dict[str, Any] = {"n_peels": peels}
    if peels > 0:
        for name, full, add in (("no_effect", baseline, False), ("effect", effect, True)):
            fits = {}
            terminal = int(config.fit.last_data_year or config.model.last_year)
            for j in range(1, peels + 1):
                year = terminal - j
                peel_spec = build_spec(data, config.with_fit(last_data_year=year))
                if add:
                    peel_spec = _with_slopes(peel_spec, values, reference, targets, slope_prior_sd)
                fits[year] = refit(peel_spec, source=full, n_starts=config.fit.n_starts, seed=config.seed,
                                   cold_first=False, label=f"{name} peel {j} (last data year {year})")
            h = hindcast(data, config, peels, fits=fits)
            hindcasts[name] = {"mase_persistence": h.mase_persistence, "mase_drift": h.mase_drift,
                               "mase_persistence_adjusted": h.mase_persistence_adjusted,
                               "n_predictions": h.n_predictions}
    else:
        hindcasts["note"] = "not run (hindcast_peels = 0)"
    return {
        "testable": testable,
        "statement": statement,
        "covariate": covariate,
        "lag_years": 0,
        "reference_c": reference,
        "series": {"name": lake.name, "observed": lake.observed, "source_id": lake.source_id,
                   "confidence": levels, "linear_trend": _is_linear(lake),
                   "years": [lake.first_year, lake.last_year], "note": lake.note},
        "targets": list(targets),
        "slope_prior": (f"Normal(0, {slope_prior_sd:g}) per degC" if slope_prior_sd is not None else "flat"),
        "slopes": slopes,
        "models": models,
        "delta_aicc": models["effect"]["aicc"] - models["no_effect"]["aicc"],
        "delta_aicc_penalised": aicc_penalised["effect"] - aicc_penalised["no_effect"],
        "aicc_note": (f"AICc = 2 NLL + 2k + 2k(k+1)/(n-k-1), n = {n}: with n = {n} the small-sample "
                      f"term alone costs {_aicc(0, k['effect'], n) - _aicc(0, k['no_effect'], n):.1f} "
                      f"for one more parameter; 'aicc' uses the data components only "
                      f"(diagnostics.compare_fits), 'aicc_penalised' adds the recruitment-deviation "
                      f"penalty, which is where a recruitment covariate acts"),
        "lr_statistic": lr,
        "lr_p_value": float(stats.chi2.sf(max(lr, 0.0), len(targets))),
        "lr_note": "2 x (NLL without - NLL with), total objective, the slope prior excluded; chi2 with "
                   f"{len(targets)} df",
        "hindcast": hindcasts,
        "n_free_parameters": n_free,
        "runtime_s": time.perf_counter() - clock,
    }


def _aicc(nll: float, k: int, n: int) -> float:
    return float(2.0 * nll + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1)) if n - k - 1 > 0 else float("inf")


# ============================================================================ 3. power


def _linear_trend_values(series: EnvSeries, years: NDArray) -> NDArray:
    use = ~series.filled_mask
    slope, intercept = np.polyfit(series.year[use].astype(float), series.values[use], 1)
    return intercept + slope * np.asarray(years, float)


def _smallest_detectable(slopes: NDArray, power: NDArray, target: float) -> float:
    """Linear interpolation of the first crossing of ``target`` by power over increasing slopes;
    +inf when it is never reached."""
    order = np.argsort(slopes)
    s, p = slopes[order], power[order]
    for j in range(s.size):
        if np.isfinite(p[j]) and p[j] >= target:
            if j == 0 or not np.isfinite(p[j - 1]) or p[j - 1] >= target:
                return float(s[j])
            return float(s[j - 1] + (target - p[j - 1]) * (s[j] - s[j - 1]) / (p[j] - p[j - 1]))
    return float("inf")


def power_analysis(result: FitResult, data: Any, *,
                   slopes_per_c: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
                   n_replicates: int = 20, seed: int = 20260601,
                   anomaly_sd_c: float | None = 0.3,
                   covariate: str = "spawning_temperature_c",
                   slope_prior_sd: float | None = DEFAULT_SLOPE_PRIOR_SD,
                   alpha: float = 0.05, target_power: float = 0.8,
                   max_iter: int = 2000, wald: bool = True) -> xr.Dataset:
    """Power of the biomass record to detect a recruitment–temperature slope, by simulation.

    Method, per replicate r (one random stream each, shared by every slope: common random
    numbers, so the power curve is smooth in the slope):

    1. temperature: the series' least-squares linear trend on the model years plus a stationary
       AR(1) anomaly path (φ from ``climate_scenarios.toml`` ``[anomalies]`` via
       :meth:`~carpmodel.management.anomalies.AnomalyModel.from_climate_file`, marginal SD ``anomaly_sd_c``,
       None = the file's) — what an observed record could look like; the covariate is the
       spawning-season temperature derived from it (lake − 4 °C, lag 0), centred on its mean;
    2. truth: the fitted model (``result.theta``) with recruitment ×exp(b·(T − T̄)) for each
       slope b and new recruitment deviations ε ~ N(0, σ_R) for every deviation year (all
       truths run through the engine as one batch);
    3. data: the biomass record on the same years with the same CVs, log B_obs = log(q·B) + σ·z;
    4. refits: without the slope from the truth (the true parameters and deviations); with the
       slope (Normal(0, ``slope_prior_sd``) prior, as :func:`temperature_effect_test`) from the
       no-slope optimum with slope 0, so the statistic cannot be negative; L-BFGS-B on the
       batched gradient, preconditioned by the fit's Hessian (bordered by the replicate's own
       slope row), converged when the predicted remaining decrease ½·gᵀH⁻¹g < 1e-4;
    5. detected when 2·(NLL_without − (NLL_with − slope prior)) > χ²₁(1 − alpha) (3.84).

    Starting the slope model from the truth instead reached the same optimum (to 1e-4 in the
    objective) in 8 trial replicates at b = 1 and 4 /°C, so only the nested start is used.

    Power per slope over the replicates whose two fits converged, with its Monte Carlo SE
    √(p(1 − p)/n); the type-I error is the power at slope 0 (its SE also at the nominal rate,
    √(α(1 − α)/n)); the smallest slope with ``target_power`` is interpolated linearly between
    the slopes tried (+inf and the text "> largest slope tried" when never reached).
    With ``wald`` the refit's Hessian also gives the slope's SE from the data alone (prior
    curvature removed) and ``wald_detectable_slope_per_c`` = (z₀.₉₇₅ + z₀.₈)·median SE, the
    normal-approximation counterpart for a flat-prior fit. Run time: see ``runtime_s``
    (roughly 4-9 s per replicate per slope on one core: two refits and one Hessian).
    """
    clock = time.perf_counter()
    slopes = np.asarray(slopes_per_c, dtype=float)
    if slopes.ndim != 1 or slopes.size == 0 or not np.all(np.isfinite(slopes)):
        raise ConfigError(f"slopes_per_c: expected a non-empty sequence of finite slopes, "
                          f"got {slopes_per_c!r}")
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer) or n_replicates < 1:
        raise ConfigError(f"n_replicates: expected an integer >= 1, got {n_replicates!r}")
    if not 0 < alpha < 1 or not 0 < target_power < 1:
        raise ConfigError(f"alpha, target_power: expected values in (0, 1), got {alpha!r}, {target_power!r}")
    spec = result.spec
    years = np.asarray(spec.years)
    lake = EnvSeries.from_temperature(data)
    trend = _linear_trend_values(lake, years)
    assumed = AnomalyModel.from_climate_file(data)
    sd = assumed.marginal_sd if anomaly_sd_c is None else float(anomaly_sd_c)
    model = AnomalyModel.ar1(assumed.phi, sd,
                             source=f"AR(1) phi {assumed.phi:g} from [anomalies], sd {sd:g} degC")
    offset = {"spawning_temperature_c": SPAWNING_OFFSET_C, "temperature_c": 0.0}
    if covariate not in offset:
        raise ConfigError(f"covariate: expected one of {', '.join(offset)}, got {covariate!r}")
    n_free, n_dev, n_obs = len(spec.estimated), len(spec.rec_dev_years), spec.observations.year.size
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_replicates)]
    anomalies = np.empty((n_replicates, years.size))
    devs_z = np.empty((n_replicates, n_dev))
    obs_z = np.empty((n_replicates, n_obs))
    for r, rng in enumerate(streams):                         # fixed draw order per replicate
        anomalies[r] = model.sample(rng, years.size)
        devs_z[r] = rng.standard_normal(n_dev)
        obs_z[r] = rng.standard_normal(n_obs)
    covariate_values = trend[None, :] + offset[covariate] + anomalies
    centred = covariate_values - covariate_values.mean(axis=1, keepdims=True)   # reference = own mean

    sigma_r = float(np.asarray(predict(spec, result.theta)[1].params.sigma_r).reshape(-1)[0])
    n_s = slopes.size
    batch_values = np.tile(centred, (n_s, 1))                 # (slope·replicate, year)
    spec_truth = _with_slopes(spec, batch_values, 0.0, ("recruitment",), slope_prior_sd)
    truths = np.empty((n_s * n_replicates, n_free + 1 + n_dev))
    truths[:, :n_free] = result.theta[:n_free]
    truths[:, n_free] = np.repeat(slopes, n_replicates)
    truths[:, n_free + 1:] = sigma_r * np.tile(devs_z, (n_s, 1))
    with np.errstate(all="ignore"):
        state, u = predict(spec_truth, truths)
        survey = np.asarray(survey_prediction_t(spec_truth, state, u), float)
        obs_sd = np.asarray(observation_sd(spec_truth, u), float) * np.ones_like(survey)
    observed = survey * np.exp(obs_sd * np.tile(obs_z, (n_s, 1)))

    shape = (n_s, n_replicates)
    statistic, estimate = np.full(shape, np.nan), np.full(shape, np.nan)
    nll0, nll1 = np.full(shape, np.nan), np.full(shape, np.nan)
    converged = np.zeros(shape, dtype=bool)
    decrement, seconds, se_data = np.full(shape, np.nan), np.zeros(shape), np.full(shape, np.nan)
    # preconditioners (see _minimise_from): the fit's Hessian for the model without the slope; for
    # the model with it, that Hessian bordered by the replicate's own slope row (_augmented_scale)
    scale0 = _preconditioner(result.hessian, n_free + n_dev)
    for i in range(n_s):
        for r in range(n_replicates):
            tick = time.perf_counter()
            row = i * n_replicates + r
            obs = replace(spec.observations, biomass_t=observed[row])
            spec0 = replace(spec, observations=obs)
            spec1 = _with_slopes(spec0, centred[r], 0.0, ("recruitment",), slope_prior_sd)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                start0 = np.delete(truths[row], n_free)
                theta0, value0, grad0, used0 = _minimise_from(spec0, start0, max_iter, scale0)
                start1 = np.insert(theta0, n_free, 0.0)
                scale1 = _augmented_scale(spec1, start1, result.hessian, n_free) \
                    if scale0 is not None else None
                theta1, value1, grad1, used1 = _minimise_from(spec1, start1, max_iter, scale1)
            if value0 < 1e10 and value1 < 1e10:
                nll0[i, r], nll1[i, r] = value0, value1
                statistic[i, r] = 2.0 * (value0 - (value1 - _slope_prior_nll(spec1, theta1)))
                estimate[i, r] = theta1[n_free]
                decrement[i, r] = max(_decrement(grad0, used0), _decrement(grad1, used1))
                converged[i, r] = bool(decrement[i, r] < _POWER_DECREMENT_TOLERANCE)
                if wald:
                    se_data[i, r] = _data_only_se(spec1, theta1, n_free, slope_prior_sd)
            seconds[i, r] = time.perf_counter() - tick
    critical = float(stats.chi2.ppf(1.0 - alpha, 1))
    usable = converged & np.isfinite(statistic)
    detected = usable & (statistic > critical)
    n_used = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(n_used > 0, detected.sum(axis=1) / np.maximum(n_used, 1), np.nan)
    mc_se = np.where(n_used > 0, np.sqrt(power * (1.0 - power) / np.maximum(n_used, 1)), np.nan)
    smallest = _smallest_detectable(slopes, power, target_power)
    zero = np.flatnonzero(slopes == 0.0)
    type_i = float(power[zero[0]]) if zero.size else float("nan")
    type_i_se = float(mc_se[zero[0]]) if zero.size else float("nan")
    n_zero = int(n_used[zero[0]]) if zero.size else 0
    type_i_nominal_se = float(np.sqrt(alpha * (1 - alpha) / n_zero)) if n_zero else float("nan")
    z_sum = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(target_power))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median_se = float(np.nanmedian(np.where(usable, se_data, np.nan))) if wald else float("nan")
    text = (f"{smallest:.3g} per degC" if np.isfinite(smallest)
            else f"> largest slope tried ({slopes.max():g} per degC): power never reached {target_power:.0%}")
    ds = xr.Dataset(
        {"statistic": (("slope_per_c", "replicate"), statistic),
         "detected": (("slope_per_c", "replicate"), detected),
         "converged": (("slope_per_c", "replicate"), converged),
         "slope_estimate_per_c": (("slope_per_c", "replicate"), estimate),
         "nll_without": (("slope_per_c", "replicate"), nll0),
         "nll_with": (("slope_per_c", "replicate"), nll1),
         "predicted_decrease": (("slope_per_c", "replicate"), decrement),
         "runtime_per_replicate_s": (("slope_per_c", "replicate"), seconds),
         "power": (("slope_per_c",), power), "power_mc_se": (("slope_per_c",), mc_se),
         "n_used": (("slope_per_c",), n_used),
         "mean_slope_estimate_per_c": (("slope_per_c",),
                                       np.array([np.nanmean(estimate[i][usable[i]]) if n_used[i] else np.nan
                                                 for i in range(n_s)])),
         "type_i_error": ((), type_i), "type_i_error_mc_se": ((), type_i_se),
         "type_i_error_nominal_se": ((), type_i_nominal_se),
         "smallest_detectable_slope_per_c": ((), smallest),
         "slope_se_data_only_per_c": (("slope_per_c", "replicate"), se_data),
         "wald_detectable_slope_per_c": ((), z_sum * median_se),
         "temperature_anomaly_example_c": (("replicate", YEAR), anomalies)},
        coords={"slope_per_c": slopes, "replicate": np.arange(n_replicates), YEAR: years})
    _describe(ds, {
        "statistic": ("1", "likelihood-ratio statistic 2 x (NLL without - (NLL with - slope prior))"),
        "detected": ("1", f"statistic > chi2_1({1 - alpha:g}) = {critical:.2f} and both fits converged"),
        "converged": ("1", f"both refits: predicted remaining decrease < {_POWER_DECREMENT_TOLERANCE:g}"),
        "predicted_decrease": ("1", "larger of the two refits' predicted remaining decrease 0.5 g'H^-1 g"),
        "slope_estimate_per_c": ("1/degC", "estimated recruitment-temperature slope (with its prior)"),
        "nll_without": ("1", "objective of the refit without the slope"),
        "nll_with": ("1", "objective of the refit with the slope (its prior included)"),
        "runtime_per_replicate_s": ("s", "wall time of the two refits (and the Hessian with wald=True)"),
        "power": ("1", "fraction of usable replicates in which the slope was detected"),
        "power_mc_se": ("1", "Monte Carlo SE of power, sqrt(p(1-p)/n)"),
        "n_used": ("1", "replicates whose two refits converged"),
        "mean_slope_estimate_per_c": ("1/degC", "mean estimated slope over usable replicates"),
        "type_i_error": ("1", "detection rate at slope 0"),
        "type_i_error_mc_se": ("1", "Monte Carlo SE of the type-I error estimate, sqrt(p(1-p)/n)"),
        "type_i_error_nominal_se": ("1", f"binomial SE at the nominal rate, sqrt({alpha:g}(1-{alpha:g})/n)"),
        "smallest_detectable_slope_per_c": ("1/degC", f"smallest slope with {target_power:.0%} power "
                                            f"(linear interpolation; inf = not reached)"),
        "temperature_anomaly_example_c": ("degC", "simulated AR(1) temperature anomaly of each replicate"),
        "slope_se_data_only_per_c": ("1/degC", "SE of the slope from the data alone: inverse Hessian at the "
                                     "refit, the prior's curvature removed (wald=False: not computed)"),
        "wald_detectable_slope_per_c": ("1/degC", f"(z_{{1-alpha/2}} + z_{{{target_power:g}}}) x median "
                                        f"data-only SE = {z_sum:.2f} x SE: the slope a Wald test of "
                                        f"a flat-prior fit would detect with {target_power:.0%} power "
                                        f"(normal approximation)"),
        "slope_per_c": ("1/degC", "true recruitment-temperature slope b: recruits x exp(b (T - mean T))"),
        "replicate": ("1", "simulation replicate (one random stream, shared by every slope)"),
        YEAR: ("yr", "calendar year")})
    ds.attrs.update({
        "title": "Power of the biomass record to detect a recruitment-temperature effect (carpmodel)",
        "carpmodel_version": __version__,
        "smallest_detectable": text,
        "wald_detectable": ("not computed" if not wald else
                            f"{z_sum * median_se:.3g} per degC = {z_sum:.2f} x median data-only SE "
                            f"{median_se:.3g} (normal approximation, flat prior)" if np.isfinite(median_se)
                            else "none: in most replicates the data alone do not bound the slope (the "
                                 "Hessian without the slope prior is not positive definite)"),
        "target_power": target_power, "alpha": alpha, "critical_value": critical,
        "n_replicates": int(n_replicates), "seed": int(seed),
        "covariate": f"{covariate}, lag 0 (recruits of year y respond to year y), centred on each "
                     f"replicate's own mean",
        "temperature": (f"linear trend of {lake.name} ({lake.source_id}) on {years[0]}-{years[-1]} + "
                        f"{model.source}"),
        "slope_prior": f"Normal(0, {slope_prior_sd:g}) per degC" if slope_prior_sd is not None else "flat",
        "truth": "fitted parameters (result.theta), new recruitment deviations N(0, sigma_R) per replicate",
        "biomass_record": (f"{n_obs} observations ({', '.join(str(int(y)) for y in spec.observations.year)}) "
                           f"with the data's CVs"),
        "refits": ("start from the truth (no-slope model) and from the no-slope optimum with slope 0 (slope "
                   "model); L-BFGS-B on the batched central-difference gradient"),
        "runtime_s": time.perf_counter() - clock,
    })
    return ds
