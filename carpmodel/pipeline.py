"""Stages of a carpmodel analysis, shared by the CLI commands (fit, project, run …).

Each stage takes loaded inputs and returns what it made; ``write_*`` functions put it on disk
atomically. :class:`RunLog` records the time of each stage and which stages completed, so an
interrupted run can say how far it got (run.json: :func:`~carpmodel.runlog.run_record`);
:class:`Progress` reports long steps on stderr.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from carpmodel import __version__
from carpmodel.errors import ConfigError, ConvergenceWarning, FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import FitResult, batched_gradient, fit_model
from carpmodel.inference.likelihood import nll_components
from carpmodel.inference.results import derived_quantities, fit_dataset
from carpmodel.io.config import RunConfig, config_sha256, from_mapping, to_toml
from carpmodel.io.outputs import write_figure_atomic, write_json_atomic, write_netcdf_atomic
from carpmodel.runlog import Progress, RunLog, run_record

# --------------------------------------------------------------------------- fit stage


@dataclass(frozen=True)
class FitArtifacts:
    """Everything the fit stage produced."""

    result: FitResult
    dataset: xr.Dataset
    summary: dict[str, Any]
    posterior_theta: np.ndarray
    figures: dict[str, Any]
    #: hindcast.nc when the fit stops at ``[fit] last_data_year`` (else None)
    held_out: xr.Dataset | None = None


def fit_stage(data: Any, config: RunConfig, log: RunLog, progress: Progress) -> FitArtifacts:
    """Fit, posterior, diagnostics and attribution as configured; nothing is written."""
    from carpmodel import diagnostics
    from carpmodel.inference import posterior, prior_posterior
    from carpmodel.report import figures as plots
    from carpmodel.studies import attribution, attribution_structures
    from carpmodel.studies.attribution_prior import hatchery_headline

    settings = config.diagnostics
    with log.stage("fit", progress):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = fit_model(data, config)
        log.warnings.extend(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))
    summary: dict[str, Any] = fit_summary(result)
    figures: dict[str, Any] = {}

    with log.stage("posterior", progress):
        sample = posterior.sample_posterior(result, n_proposals=settings.posterior_proposals,
                                            n_samples=settings.posterior_samples, seed=config.seed)
        if sample.failure is not None:
            log.warnings.append(f"posterior draws are not a sample of the posterior: {sample.failure}")
        rows = prior_posterior.prior_posterior_table(result, sample)
        for row in rows:
            name = row["parameter"]
            row["unit"] = (data.life_history[name].unit if name in data.life_history else None) or "1"
        summary["posterior"] = {
            "method": sample.method, "n_samples": sample.n_samples, "sir_ess": sample.ess,
            "warning": sample.warning, "failure": sample.failure, "runtime_s": sample.runtime_s,
            "prior_posterior": rows}
        priors = {f.field: f.prior for f in result.spec.estimated if f.prior is not None}
        units = {name: data.life_history[name].unit for name in sample.natural if name in data.life_history}
        supports = {f.field: f.bounds if f.bounds is not None else
                    ((0.0, np.inf) if f.transform == "log" else (-np.inf, np.inf))
                    for f in result.spec.estimated}
        figures["prior_posterior"] = plots.plot_prior_posterior(rows, sample.natural, priors, units,
                                                                supports=supports)
    dataset = fit_dataset(result, draws=sample.theta, seed=config.seed, sampler=sample.method)
    dataset = dataset.assign_coords(posterior_draw=np.arange(sample.theta.shape[0]))
    dataset["posterior_theta"] = (("posterior_draw", "parameter"), sample.theta)
    dataset["posterior_theta"].attrs.update(units="1",
                                            long_name=f"posterior draws of theta ({sample.method})")
    summary["posterior_predictive"] = diagnostics.posterior_predictive(result, sample.theta, data.auxiliary,
                                                                      seed=config.seed)
    summary["derived"] = derived_quantities(result, sample.theta)
    held_out = None
    if config.fit.last_data_year is not None:
        # the same posterior draws as fit.nc: one interval method for fitted and held-out years
        held_out = diagnostics.hindcast_predictions(result, config, data, seed=config.seed,
                                                    draws=sample.theta, sampler=sample.method)
        for name, meaning in {**FIT_MISSING,
                              "log_prediction_error": "NaN except in held-out survey years"}.items():
            if name in held_out:
                held_out[name].attrs["missing_values"] = meaning
        summary["hindcast_held_out"] = diagnostics.held_out_summary(held_out)
    figures["fit"] = plots.plot_fit(dataset, held_out=held_out)
    figures["recruitment"] = plots.plot_recruitment(dataset)
    figures["depletion"] = plots.plot_depletion(dataset)

    with log.stage("diagnostics", progress):
        summary["diagnostics"] = {}
        res = diagnostics.residuals(result)
        summary["diagnostics"]["residuals"] = res.to_dict()
        figures["residuals"] = plots.plot_residuals(res.table.year.values,
                                                    res.table["osa_residual"].values,
                                                    runs_p_value=res.runs.p_value, sdnr=res.sdnr,
                                                    alpha=res.runs.alpha)
        n_peels = max(settings.retrospective_peels, settings.hindcast_peels)
        # peels are refitted from one start (warm-started from the full fit if that fails)
        fits = diagnostics.peel_fits(data, config.with_fit(n_starts=1), n_peels, full=result) \
            if n_peels else {}
        if settings.retrospective_peels:
            retro = diagnostics.retrospective(data, config, settings.retrospective_peels, full=result,
                                              fits=fits)
            summary["diagnostics"]["retrospective"] = retro.to_dict()
            figures["retrospective"] = plots.plot_retrospective(
                retro.trajectories["biomass_t"], rho=retro.mohns_rho.get("biomass_t"))
        if settings.hindcast_peels:
            hind = diagnostics.hindcast(data, config, settings.hindcast_peels, fits=fits)
            summary["diagnostics"]["hindcast"] = hind.to_dict()
        if settings.profile_points:
            prof = diagnostics.profile(result.spec, "unfished_biomass_t", start=result,
                                       n_values=settings.profile_points)
            summary["diagnostics"]["profile_unfished_biomass"] = prof.to_dict()
            figures["profile"] = plots.plot_profile(prof.table)
        if settings.self_test_replicates:
            selftest = diagnostics.self_test(result, settings.self_test_replicates, seed=config.seed)
            summary["diagnostics"]["self_test"] = selftest.to_dict()
            table = selftest.summary
            summary["diagnostics"]["self_test_table"] = [
                {"quantity": str(q), **{name: _float(table[name].sel(quantity=q))
                                        for name in ("median_relative_bias", "coverage", "coverage_mc_se",
                                                     "coverage_mc_se_nominal", "n_used")
                                        if name in table}}
                for q in table["quantity"].values]
        if settings.model_comparison:
            variants = diagnostics.default_variants(config)
            # the base variant is the main fit when its options are the run's: not fitted again
            base = result if next(iter(variants.values())) == config else None
            comparison = diagnostics.compare_models(data, variants, base_result=base)
            summary["diagnostics"]["model_comparison"] = comparison.to_dict()

    with log.stage("attribution", progress):
        table = attribution.attribution_table(result.spec, sample.theta)
        summary["attribution"] = attribution.attribution_rows(table)
        summary["attribution_setup"] = {key: table.attrs[key] for key in
                                        ("first_year", "last_year", "ban_year", "n_draws", "method",
                                         "factors", "habitat")
                                        if key in table.attrs}
        # the releases' share as a range with the prior's part, not a point (issue #14)
        summary["hatchery_contribution"] = hatchery_headline(
            table, sample.natural.get("release_survival"), rows)
        figures["attribution"] = plots.plot_attribution(table)
        if settings.attribution_structures:
            structures = attribution_structures.attribution_across_structures(
                data, draws_per_fit=min(settings.posterior_samples, 1000), seed=config.seed, config=config)
            summary["attribution_across_structures"] = attribution_structures.structures_rows(structures)
    for name, meaning in FIT_MISSING.items():
        if name in dataset:
            dataset[name].attrs["missing_values"] = meaning
    dataset.attrs.update(config_toml=to_toml(config), config_sha256=config_sha256(config),
                         data_sha256=data.sha256, data_directory=str(Path(data.directory).resolve()),
                         seed=config.seed, fit_converged=int(result.converged),
                         sigma_survey=float(result.spec.sigma_survey),
                         survey_rho=float(result.spec.survey_rho))
    return FitArtifacts(result, dataset, summary, sample.theta, figures, held_out)


def fit_summary(result: FitResult) -> dict[str, Any]:
    """The fit.json core: convergence, NLL, AIC, estimates with standard errors."""
    spec = result.spec
    n_obs = len(spec.observations.year)
    k = len(spec.estimated)
    names = result.parameter_names
    se = result.std_errors
    parameters = {name: {"estimate": float(result.theta[i]), "std_error": _float(se[i]),
                         "scale": "estimation"} for i, name in enumerate(names)}
    natural = {name: {"estimate": v["estimate"], "std_error": _float(v["std_error"])}
               for name, v in result.natural_estimates().items()}
    return {
        "carpmodel_version": __version__,
        "converged": bool(result.converged),
        "max_abs_gradient": result.max_abs_gradient,
        "worst_gradient_parameter": result.worst_gradient_parameter,
        "hessian_positive_definite": bool(result.hessian_positive_definite),
        "hessian_condition_number": _float(result.condition_number),
        "nll": result.nll,
        "nll_components": result.nll_components,
        "aic": result.aic,
        "aicc_data": _float(result.aicc),
        "aicc_k": result.k_aicc,
        "aicc_n": result.n_data,
        "n_parameters": result.n_parameters,
        "n_fixed_effects": k,
        "n_observations": n_obs,
        "runtime_s": result.runtime_s,
        "multistart_nll": list(result.multistart_nll),
        "multistart_agree": result.multistart_agree,
        "optimizer": result.optimizer,
        "warnings": list(result.warnings),
        "parameters": parameters,
        "natural_parameters": natural,
        "survey_error": (result.survey_error.to_dict() if result.survey_error is not None else
                         {"sigma_survey": float(spec.sigma_survey), "rho": float(spec.survey_rho),
                          "method": "fixed ([fit] survey_sd = 'fixed')"}),
    }


def _float(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def write_fit(artifacts: FitArtifacts, out: Path, log: RunLog, *, svg: bool = False) -> None:
    """fit.json, fit.nc, hindcast.nc (a fit with a last data year) and the fit figures (PNG, and SVG
    on request)."""
    if artifacts.held_out is not None:
        log.wrote(write_netcdf_atomic(artifacts.held_out, out / "hindcast.nc"))
    log.wrote(write_json_atomic(out / "fit.json", artifacts.summary))
    log.wrote(write_netcdf_atomic(artifacts.dataset, out / "fit.nc"))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)


def write_figures(figures: dict[str, Any], directory: Path, log: RunLog, *, svg: bool = False) -> None:
    """PNG (and SVG) files of ``figures``; the figures stay open (the report embeds them)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        log.wrote(write_figure_atomic(fig, directory / f"{name}.png", dpi=110))
        if svg:
            log.wrote(write_figure_atomic(fig, directory / f"{name}.svg"))


# --------------------------------------------------------------------------- reading a fit back


@dataclass(frozen=True)
class LoadedFit:
    """A fit read from a fit directory: the result rebuilt on its data, and its posterior draws."""

    result: FitResult
    config: RunConfig
    data: Any
    posterior_theta: np.ndarray | None


def load_fit(fit_dir: str | Path, data_dir: str | Path | None = None) -> LoadedFit:
    """Rebuild a FitResult from ``fit_dir/fit.nc`` (its config, data and estimates).

    The fit directory is checked as it is read (:func:`carpmodel.io.results_file.read_fit_directory`):
    a damaged or foreign file is a DataError naming it.
    """
    from carpmodel.io.inputs import load_data
    from carpmodel.io.results_file import read_fit_directory

    files = read_fit_directory(fit_dir)
    path, ds = files.path / "fit.nc", files.dataset
    config = from_mapping(RunConfig, files.config, f"{path} (config_toml)")
    if data_dir is None and not Path(ds.attrs["data_directory"]).is_dir():
        raise FitError(f"{path}: the fit's data directory {ds.attrs['data_directory']} is gone; "
                       f"pass --data DIR")
    data = load_data(data_dir or ds.attrs["data_directory"])
    if data.sha256 != ds.attrs.get("data_sha256"):
        warnings.warn(f"{path}: the data directory changed since the fit (sha256 differs)", stacklevel=2)
    spec = replace(build_spec(data, config), sigma_survey=float(ds.attrs.get("sigma_survey", 0.15)),
                   survey_rho=float(ds.attrs.get("survey_rho", 0.0)))
    names = tuple(str(n) for n in ds.parameter.values)
    if names != spec.parameter_names:
        raise FitError(f"{path}: its parameters do not match the rebuilt model "
                       f"({len(names)} vs {len(spec.parameter_names)})")
    theta = ds["theta"].values
    covariance = ds["covariance"].values
    covariance = None if not np.all(np.isfinite(covariance)) else covariance
    _, gradient = batched_gradient(spec, theta)
    components = {k: float(v) for k, v in nll_components(spec, theta).items()}
    hessian = np.linalg.inv(covariance) if covariance is not None else np.full((theta.size,) * 2, np.nan)
    result = FitResult(spec=spec, theta=theta, parameter_names=names, nll=sum(components.values()),
                       nll_components=components, gradient=gradient[0], hessian=hessian,
                       covariance=covariance, converged=bool(ds.attrs.get("fit_converged", 0)),
                       hessian_positive_definite=covariance is not None,
                       condition_number=float(np.linalg.cond(hessian)) if covariance is not None else np.inf,
                       optimizer={"method": "read from fit.nc"}, runtime_s=0.0)
    posterior_theta = ds["posterior_theta"].values if "posterior_theta" in ds else None
    return LoadedFit(result, config, data, posterior_theta)


def json_dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=float)


def with_seed(config: RunConfig, seed: int | None) -> RunConfig:
    return config if seed is None else replace(config, seed=seed)


# --------------------------------------------------------------------------- projection stage


@dataclass(frozen=True)
class ProjectionArtifacts:
    """A projection, its metrics and figures."""

    dataset: xr.Dataset
    metrics: xr.Dataset
    rows: list[dict[str, Any]]
    figures: dict[str, Any]


#: the strategies file of 0.1 configs (now the bundled one, carpmodel/management/default_strategies.toml)
LEGACY_STRATEGIES = "experiments/strategies.toml"


def resolve_path(path: str) -> Path:
    """The strategies file a config names: ``"default"`` (or 0.1's ``experiments/strategies.toml``
    where no such file exists) is the bundled one; any other path is relative to the working
    directory."""
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE

    if path == "default" or (path == LEGACY_STRATEGIES and not Path(path).exists()):
        return DEFAULT_STRATEGIES_FILE
    return Path(path)


def projection_setup(loaded: LoadedFit, config: RunConfig, **overrides: Any) -> Any:
    """The ProjectionSetup of a run config: strategies, climate forcing, draws, seed."""
    from carpmodel.io.strategies_file import load_strategies
    from carpmodel.management.climate import ClimateForcing
    from carpmodel.management.projection import strategy_setup

    settings = config.projection
    strategy_set = load_strategies(resolve_path(settings.strategies))
    forcing_options: dict[str, Any] = {"scenario_names": tuple(settings.scenarios),
                                       "beyond_series": settings.beyond_series}
    if settings.effect:
        forcing_options["effects"] = tuple(declared_effect(e, i) for i, e in enumerate(settings.effect))
    elif settings.effects == "none":
        forcing_options["effects"] = ()
    forcing = ClimateForcing.from_data(loaded.data, **forcing_options)
    posterior_theta = loaded.posterior_theta if settings.parameter_draws == "posterior" else None
    options = dict(scenario_names=tuple(settings.scenarios), build_multipliers=forcing,
                   first_year=settings.first_year, last_year=settings.last_year,
                   n_draws=settings.draws, seed=config.seed, survey_cv=settings.survey_cv,
                   chunk_draws=settings.chunk_draws, posterior_theta=posterior_theta)
    options.update(overrides)
    return strategy_setup(strategy_set, loaded.result.spec.base.n_age, **options)


def declared_effect(settings: Any, index: int) -> Any:
    """A forcing.CovariateEffect from a ``[[projection.effect]]`` table (ConfigError naming it)."""
    from carpmodel.model import forcing

    types = {"linear": forcing.Linear, "q10": forcing.Q10, "arrhenius": forcing.Arrhenius,
             "thermal_dome": forcing.ThermalDome, "logistic": forcing.Logistic}
    response_type = types[settings.response]
    where = f"projection.effect[{index}].parameters"
    try:
        response = response_type(**dict(settings.parameters))
    except TypeError as exc:
        import dataclasses as dc

        valid = ", ".join(f.name for f in dc.fields(response_type))
        raise ConfigError(f"{where}: {exc}; valid for {settings.response}: {valid}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return forcing.CovariateEffect(target=settings.target, response=response,
                                   covariate=settings.covariate, lag_years=settings.lag_years)


def metric_options(config: RunConfig) -> dict[str, Any]:
    settings = config.projection
    cost_year = min(2050, settings.last_year)
    years = sorted({y for y in settings.metric_years if settings.first_year <= y <= settings.last_year}
                   | {cost_year})
    return {"years": years, "limit_fraction": settings.limit_fraction, "cost_year": cost_year}




def project_stage(loaded: LoadedFit, config: RunConfig, log: RunLog,
                  progress: Progress) -> ProjectionArtifacts:
    """Project every strategy × scenario, summarise into metrics, draw the figures."""
    from carpmodel.management.metrics import metrics_table, strategy_metrics
    from carpmodel.management.projection import load_projection, project
    from carpmodel.report import figures as plots
    from carpmodel.report.captions import band_strategies

    settings = config.projection
    with log.stage("projection", progress):
        setup = projection_setup(loaded, config)
        # chunked (dask): every chunk runs once, not once per metric and figure
        dataset = load_projection(project(loaded.result, setup))
        check_finite(dataset, "projection")
        dataset.attrs.update(config_toml=to_toml(config), config_sha256=config_sha256(config),
                             data_sha256=loaded.data.sha256, effects=settings.effects,
                             effects_note="temperature effects are assumed (no species data); "
                                          "their defaults set the sign of the scenario differences")
    with log.stage("metrics", progress):
        metrics = strategy_metrics(dataset, **metric_options(config))
        rows = metrics_table(metrics)
    figures: dict[str, Any] = {}
    strategies = [str(s) for s in dataset.strategy.values]
    scenarios = [str(s) for s in dataset.scenario.values]
    # every requested scenario is drawn: one panel (or row of panels) per scenario
    figures["projection_fan"] = plots.plot_gain_fan(dataset, "biomass_t")
    figures["projection_scenarios"] = plots.plot_scenarios(
        dataset, strategy="status_quo" if "status_quo" in strategies else None,
        bands=None if len(scenarios) <= 2 else [scenarios[0], scenarios[-1]])
    figures["strategy_comparison"] = plots.plot_strategy_comparison(metrics)
    figures["hatchery_fraction"] = plots.plot_fan_panels(
        dataset, "hatchery_fraction_ssb", bands=band_strategies(strategies, "hatchery_fraction_ssb"))
    return ProjectionArtifacts(dataset, metrics, rows, figures)


def check_finite(ds: xr.Dataset, what: str) -> None:
    """NumericalError naming the variable and where, when a per-draw variable of ``ds`` holds a
    NaN or an infinity (so no such value reaches a file without a named cause)."""
    from carpmodel.errors import NumericalError

    for name, variable in ds.data_vars.items():
        if "draw" not in variable.dims or variable.dtype.kind != "f":
            continue
        bad = ~np.isfinite(variable.values)
        if bad.any():
            first = dict(zip(variable.dims, (int(i[0]) for i in np.nonzero(bad)), strict=True))
            where = ", ".join(f"{dim} {variable[dim].values[i]}" for dim, i in first.items()
                              if dim in variable.coords)
            raise NumericalError(f"{what}: {name} is not finite in {int(bad.sum())} of {bad.size} values "
                                 f"(first at {where}): a value of the inputs (a release number, a parameter "
                                 f"draw) is "
                                 f"beyond what the engine can represent; check that strategy and the fit; "
                                 f"nothing was written")


#: why a NaN may stand in fit.nc (every other NaN is an error: :func:`check_finite`)
FIT_MISSING = {name: "NaN in years without a biomass survey"
               for name in ("biomass_obs_t", "biomass_obs_cv", "biomass_obs_sd_log", "survey_predicted_t")}


def write_projection(artifacts: ProjectionArtifacts, out: Path, log: RunLog, *, svg: bool = False) -> None:
    """projection.nc, metrics.csv and the projection figures."""
    from carpmodel.io.outputs import write_csv_atomic

    log.wrote(write_netcdf_atomic(artifacts.dataset, out / "projection.nc"))
    rows = artifacts.rows
    header = list(rows[0].keys())
    log.wrote(write_csv_atomic(out / "metrics.csv", header, [[row[k] for k in header] for row in rows]))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)


# --------------------------------------------------------------------------- the main job


#: the stages of `carpmodel run`, in order
RUN_STAGES = ("fit", "posterior", "diagnostics", "attribution", "projection", "metrics", "sensitivity",
              "report")


def run_all(data: Any, config: RunConfig, out: Path, log: RunLog, progress: Progress, *,
            svg: bool = False, config_path: str | None = None,
            command_line: str | None = None) -> dict[str, Any]:
    """The full analysis into ``out`` (which must exist): every stage writes as soon as it is done.

    Returns the run record, run.json (:func:`~carpmodel.runlog.run_record`): written before the
    first stage (status ``running``), rewritten after every stage and every file written, and at
    the end with status ``complete``, ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` and the
    error; so after any stop, even SIGKILL, it lists the stages completed and the (complete)
    files written.
    """
    with run_record(out / "run.json", config, log, command="run", command_line=command_line,
                    config_file=config_path) as record:
        artifacts = fit_stage(data, config, log, progress)
        write_fit(artifacts, out, log, svg=svg)
        loaded = LoadedFit(artifacts.result, config, data, artifacts.posterior_theta)
        projection = project_stage(loaded, config, log, progress)
        write_projection(projection, out, log, svg=svg)
        sensitivity = sensitivity_stage(loaded, config, log, progress)
        if sensitivity is not None:
            log.wrote(write_netcdf_atomic(sensitivity[0], out / "sensitivity.nc"))
            write_figures(dict(sensitivity[1]), out / "figures", log, svg=svg)
        with log.stage("report", progress):
            from carpmodel.io.outputs import write_text_atomic
            from carpmodel.report.html import report_html

            figures = {**artifacts.figures, **projection.figures,
                       **(dict(sensitivity[1]) if sensitivity is not None else {})}
            html_text = report_html(artifacts.summary, artifacts.dataset, projection.dataset,
                                    projection.metrics, projection.rows, config, figures=figures,
                                    sensitivity=sensitivity[0] if sensitivity is not None else None,
                                    timings=dict(log.stages))
            log.wrote(write_text_atomic(out / "report.html", html_text))
            close_figures(figures)
    return record


def close_figures(figures: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)


def sensitivity_stage(loaded: LoadedFit, config: RunConfig, log: RunLog,
                      progress: Progress) -> tuple[xr.Dataset, dict[str, Any]] | None:
    """Climate sensitivity sweep (warming × effect strength) with its figures, if configured;
    the temperature-effect test and power analysis go into the Dataset's ``tests`` attribute.
    Each part reports its progress (blocks of draws, fits, batches of refits)."""
    settings = config.sensitivity
    if settings.draws == 0:
        return None
    from carpmodel.report import study_figures as plots
    from carpmodel.studies.sensitivity import climate_sensitivity

    with log.stage("sensitivity", progress):
        ds = climate_sensitivity(loaded.result, loaded.data,
                                 warming_levels_c=tuple(settings.warming_levels_c),
                                 n_draws=settings.draws, seed=config.seed,
                                 chunk_draws=settings.chunk_draws,
                                 progress=progress.ticker(f"sweep, {settings.draws} draws"))
        figures = {"sensitivity_lines": plots.plot_sensitivity_lines(ds, 2100),
                   "sensitivity_heatmap": plots.plot_sensitivity_heatmap(ds, 2100, settings.heatmap_effect)}
        tests: dict[str, Any] = {}
        if settings.temperature_test:
            from carpmodel.studies.temperature_test import temperature_effect_test

            tests["temperature_effect_test"] = temperature_effect_test(
                loaded.data, config, baseline=loaded.result,
                progress=progress.ticker("temperature-effect fits"))
        if settings.power_replicates:
            from carpmodel.studies.power import power_analysis

            power = power_analysis(loaded.result, loaded.data, n_replicates=settings.power_replicates,
                                   seed=config.seed,
                                   progress=progress.ticker(f"power analysis, {settings.power_replicates} "
                                                            f"replicates per slope"))
            tests["power_analysis"] = {k: (v.item() if hasattr(v, "item") else v)
                                       for k, v in power.attrs.items()}
        ds.attrs["tests_json"] = json.dumps(tests, default=_json_default)
        for variable in ds.data_vars.values():
            if variable.dtype.kind == "f" and "strength" in variable.dims and bool(variable.isnull().any()):
                variable.attrs["missing_values"] = ("NaN for the (effect, strength) combinations not run "
                                                    "(variable run is false there: each effect has its own "
                                                    "strengths)")
    return ds, figures


def write_sensitivity(ds: xr.Dataset, directory: str | Path, *, figure_format: str = "png") -> list[Path]:
    """Write ``sensitivity.nc``, the line figure for every reported year and a heat map for every
    year × effect of a :func:`~carpmodel.studies.sensitivity.climate_sensitivity` Dataset into an
    existing ``directory``; returns the paths written."""
    import matplotlib.pyplot as plt

    from carpmodel.report import study_figures as plots

    directory = Path(directory)
    written = [write_netcdf_atomic(ds, directory / "sensitivity.nc")]
    for year in ds["year"].values:
        fig = plots.plot_sensitivity_lines(ds, int(year))
        written.append(write_figure_atomic(fig, directory / f"sensitivity_lines_{int(year)}.{figure_format}"))
        plt.close(fig)
        for effect in ds["effect"].values:
            fig = plots.plot_sensitivity_heatmap(ds, int(year), str(effect))
            written.append(write_figure_atomic(
                fig, directory / f"sensitivity_heatmap_{int(year)}_{effect}.{figure_format}"))
            plt.close(fig)
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
