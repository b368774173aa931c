"""Model comparison by AICc: the default structural variants, their fits and the table."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr

from carpmodel.diagnostics.common import describe, json_ready
from carpmodel.inference.build import CATCH_SD_LOG, build_spec
from carpmodel.inference.fitting import AICC_DATA_COMPONENTS, FitResult, aicc_value, with_survey_error
from carpmodel.inference.likelihood import nll_components
from carpmodel.inference.refit import refit
from carpmodel.inference.spec import ModelSpec
from carpmodel.io.config import RunConfig, default_config

#: NLL components that are data (enter AICc); the others are priors and penalties
DATA_COMPONENTS = AICC_DATA_COMPONENTS
#: a spec builder: data → ModelSpec (for variants that RunConfig cannot express)
SpecBuilder = Callable[[Any], ModelSpec]


#: AICc as fitting defines it (one formula for the package)
aicc = aicc_value


def default_variants(config: RunConfig | None = None) -> dict[str, RunConfig | SpecBuilder]:
    """The structural alternatives compared by default (all on the same biomass data).

    ``beverton_holt`` (the base case), ``ricker``, ``dd_window_2`` and ``dd_window_3`` (last age
    of the juvenile density-dependence window; base case 1 from life_history.toml),
    ``initial_equilibrium_2000`` (0.1's equilibrium start in 2000), ``initial_unfished_1956`` and
    ``initial_equilibrium_1986`` (``ModelOptions.initial_state``,
    with catch error ``catch_sd_log`` = :data:`~carpmodel.inference.fitting.CATCH_SD_LOG`: with exact
    catches these starts do not converge, experiments/01_fit_baseline).
    """
    config = default_config() if config is None else config
    return {
        "beverton_holt": config.with_fit(recruitment="beverton_holt"),
        "ricker": config.with_fit(recruitment="ricker"),
        "dd_window_2": config.with_fit(dd_window_end_age_yr=2),
        "dd_window_3": config.with_fit(dd_window_end_age_yr=3),
        "initial_equilibrium_2000": config.with_fit(initial_state="equilibrium_f"),
        "initial_unfished_1956": config.with_fit(initial_state="unfished_1956", catch_sd_log=CATCH_SD_LOG),
        "initial_equilibrium_1986": config.with_fit(initial_state="equilibrium_1986",
                                            catch_sd_log=CATCH_SD_LOG),
    }


@dataclass(frozen=True)
class ModelComparison:
    """AICc table of model variants on the same data.

    ``table`` (dim ``variant``): ``nll_data`` (the data components, :data:`DATA_COMPONENTS`),
    ``nll_total`` (the MAP objective, priors and rec-dev penalty included),
    ``nll_catch_shortfall``, ``n_parameters`` k (estimated parameters excluding recruitment
    deviations), ``n_observations`` n, ``aicc``, ``delta_aicc``, ``akaike_weight``,
    ``converged``, ``max_abs_gradient``. ``best`` is the converged variant of least AICc;
    ``ranking`` lists the converged variants from best to worst (the others are not ranked).
    """

    table: xr.Dataset
    best: str | None
    ranking: tuple[str, ...]
    runtime_s: float = 0.0
    fits: Mapping[str, FitResult | None] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"best": self.best, "ranking": self.ranking, "runtime_s": self.runtime_s,
                      "data_components": DATA_COMPONENTS,
                      "k_excludes": "recruitment deviations (penalised random effects) and, with "
                                    "catch error, the F of each fished year with its catch component "
                                    "(fitting.aicc_parameters)",
                      "table": self.table})


def compare_fits(fits: Mapping[str, FitResult | None], runtime_s: float = 0.0) -> ModelComparison:
    """AICc table of finished fits (method: :func:`compare_models`).

    Only converged fits with a finite AICc are ranked and get ``delta_aicc`` and an Akaike
    weight (a fit that has not reached its optimum has no meaningful likelihood); the others
    keep their AICc for the record, with NaN delta and weight 0. A ``None`` fit gets NaN.
    """
    names = list(fits)
    rows = []
    for name in names:
        result = fits[name]
        if result is None:
            rows.append((np.nan, np.nan, np.nan, -1, -1, np.nan, False, np.nan))
            continue
        rows.append((result.nll_data, result.nll, result.nll_components.get("catch_shortfall", 0.0),
                     result.k_aicc, result.n_data, result.aicc, result.converged, result.max_abs_gradient))
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    values = np.asarray(columns[5], float)
    converged = np.asarray(columns[6], bool)
    rankable = np.isfinite(values) & converged
    delta = np.where(rankable, values - (values[rankable].min() if rankable.any() else np.nan), np.nan)
    weights = np.where(rankable, np.exp(-0.5 * np.where(rankable, delta, 0.0)), 0.0)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(values.size, np.nan)
    n_obs = np.asarray(columns[4], int)
    table = xr.Dataset(
        {"nll_data": ("variant", np.asarray(columns[0], float)),
         "nll_total": ("variant", np.asarray(columns[1], float)),
         "nll_catch_shortfall": ("variant", np.asarray(columns[2], float)),
         "n_parameters": ("variant", np.asarray(columns[3], int)),
         "n_observations": ("variant", n_obs),
         "aicc": ("variant", values), "delta_aicc": ("variant", delta),
         "akaike_weight": ("variant", weights), "converged": ("variant", converged),
         "max_abs_gradient": ("variant", np.asarray(columns[7], float))},
        coords={"variant": names})
    table = describe(table, {
        "nll_data": ("1", f"NLL of the data components ({', '.join(DATA_COMPONENTS)})"),
        "nll_total": ("1", "MAP objective: data + recruitment-deviation penalty + priors"),
        "nll_catch_shortfall": ("1", "catch-shortfall penalty (not in AICc; > 0: the catch history "
                                     "is not met, the variant is not comparable)"),
        "n_parameters": ("1", "estimated parameters k, recruitment deviations excluded"),
        "n_observations": ("1", "data points n in the data NLL"),
        "aicc": ("1", "2 NLL_data + 2k + 2k(k+1)/(n-k-1)"),
        "delta_aicc": ("1", "AICc minus the smallest AICc of the converged fits (NaN: not ranked)"),
        "akaike_weight": ("1", "exp(-delta/2) normalised over the ranked variants"),
        "converged": ("1", "fit converged"), "max_abs_gradient": ("1", "largest |gradient| of the fit")},
        comparable=str(bool(np.unique(n_obs[rankable]).size <= 1)))
    order = [names[i] for i in np.argsort(np.where(rankable, values, np.inf), kind="stable") if rankable[i]]
    return ModelComparison(table=table, best=order[0] if order else None, ranking=tuple(order),
                           runtime_s=runtime_s, fits=dict(fits))


def compare_models(data: Any, variants: Mapping[str, RunConfig | SpecBuilder] | None = None, *,
                   n_starts: int | None = None, base_result: FitResult | None = None) -> ModelComparison:
    """Fit each variant and compare them by AICc on the data component.

    Method: ``AICc = 2·NLL_data + 2k + 2k(k+1)/(n − k − 1)`` (:func:`aicc`), NLL_data the biomass
    NLL plus the optional data components when on (:data:`DATA_COMPONENTS`: upper bound,
    hatchery fractions, hatchery-origin samples, juvenile index), k the
    number of estimated parameters EXCLUDING the recruitment deviations (they are penalised
    random effects, integrated out in a state-space model and not counted as free parameters
    here) and n the number of data points in NLL_data (the 12 biomass observations by default).
    Priors and the rec-dev penalty are left out of AICc; ``nll_total`` shows them. A variant is
    a :class:`~carpmodel.io.config.RunConfig` or a builder ``data → ModelSpec``; ``None`` uses
    :func:`default_variants`. Each fit uses the variant's
    ``n_starts`` and ``seed`` (builders: the RunConfig defaults) unless ``n_starts`` is given;
    a variant whose fit does not converge is refitted from the first variant's estimates and
    Hessian (matched by parameter name, :func:`carpmodel.inference.refit.refit`) and the better fit kept.
    The cold fit comes first because variants are different models: warm-started from the
    base case, ``initial_unfished_1956`` converges to a local optimum at twice the NLL the
    cold fit reaches (Ricker and the density-dependence windows reach the cold optimum warm).
    ``base_result``, a fit of the FIRST variant already made (e.g. the run's main fit, same data
    and config), is used as that variant's fit instead of fitting it again; it must be a fit
    of the first variant's spec: its objective there must reproduce ``base_result.nll``
    (ValueError otherwise).
    Reference: Burnham & Anderson (2002); Hurvich & Tsai (1989) Biometrika 76: 297–307.
    """
    start = time.perf_counter()
    variants = default_variants() if variants is None else variants
    fits: dict[str, FitResult | None] = {}
    first: FitResult | None = None
    for name, variant in variants.items():
        config = variant if isinstance(variant, RunConfig) else getattr(variant, "config", default_config())
        spec = build_spec(data, variant) if isinstance(variant, RunConfig) else variant(data)
        if first is None and base_result is not None:
            # the survey error is the fit's (estimated with it, or the same fixed value): not part
            # of what makes a variant
            spec = replace(spec, sigma_survey=base_result.spec.sigma_survey,
                           survey_rho=base_result.spec.survey_rho)
            _check_same_model(spec, base_result, name)
            fits[name] = base_result
        else:
            def fit_once(current: ModelSpec, start: Any, config: RunConfig = config, name: str = name,
                         first: FitResult | None = first) -> FitResult | None:
                return refit(current, start=start, source=first if start is None else None,
                             n_starts=n_starts or config.fit.n_starts, seed=config.seed,
                             label=f"variant {name}")
            fits[name] = with_survey_error(spec, config, fit_once)
        first = first or fits[name]
    return compare_fits(fits, runtime_s=time.perf_counter() - start)


def _check_same_model(spec: ModelSpec, result: FitResult, name: str) -> None:
    """ValueError unless ``result`` is a fit of ``spec``: same parameters, and the objective of
    ``spec`` at ``result.theta`` reproduces ``result.nll`` (to 1e-8 relative: the same model on
    the same data and priors gives the same number; any other difference changes it)."""
    if tuple(spec.parameter_names) != tuple(result.parameter_names):
        raise ValueError(f"compare_models: base_result is not a fit of variant {name!r} "
                         f"(parameters {list(result.parameter_names)} vs {list(spec.parameter_names)})")
    nll = float(sum(float(np.asarray(v)) for v in nll_components(spec, result.theta).values()))
    if not np.isclose(nll, result.nll, rtol=1e-8, atol=1e-8):
        raise ValueError(f"compare_models: base_result is not a fit of variant {name!r}: that variant's "
                         f"objective at its estimates is {nll:.6g}, the fit reports {result.nll:.6g}")
