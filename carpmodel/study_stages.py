"""Stages of the commands beyond the main job: the structural ensemble and the release budget
(``carpmodel project --ensemble/--budget``) and the monitoring design (``carpmodel
monitoring``). Same contract as :mod:`carpmodel.pipeline`: each stage returns what it made,
``write_*`` puts it on disk atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from carpmodel.errors import ConfigError
from carpmodel.io.config import RunConfig, config_sha256, to_toml
from carpmodel.io.outputs import write_json_atomic, write_netcdf_atomic
from carpmodel.io.plausibility import bound
from carpmodel.pipeline import (
    LoadedFit,
    Progress,
    RunLog,
    close_figures,
    metric_options,
    projection_setup,
    resolve_path,
    write_figures,
)

# --------------------------------------------------------------------------- structural ensemble and budget


@dataclass(frozen=True)
class EnsembleArtifacts:
    """A structural ensemble: its fits, projection, metrics (per member and pooled), figures."""

    fits: Any                      # carpmodel.management.ensemble.EnsembleFits
    dataset: xr.Dataset
    metrics: xr.Dataset
    rows: list[dict[str, Any]]
    members: list[dict[str, Any]]
    figures: dict[str, Any]
    attribution: list[dict[str, Any]] = field(default_factory=list)   # attribution_members.csv
    hatchery_contribution: dict[str, Any] = field(default_factory=dict)


def ensemble_stage(loaded: LoadedFit, config: RunConfig, definition: Any, log: RunLog,
                   progress: Progress) -> EnsembleArtifacts:
    """Fit every structure of ``definition`` (other options from the fit's config), project the
    converged members with the projection settings of ``config``, and pool them by weight.

    Raises FitError (listing every member's reason) when no member converged.
    """
    from carpmodel.management.ensemble import ensemble_metrics, fit_ensemble, members_table, project_ensemble
    from carpmodel.management.metrics import metrics_table
    from carpmodel.report import figures as plots

    with log.stage("ensemble_fits", progress):
        fits = fit_ensemble(loaded.data, definition, config, seed=config.seed,
                            progress=progress.tick)
    members = members_table(fits)
    for member in members:
        if not member["included"]:
            log.warnings.append(f"ensemble member {member['structure']} excluded: "
                                f"{member['reason_excluded']}")
    with log.stage("ensemble_projection", progress):
        dataset = project_ensemble(fits, projection_setup(loaded, config))
        dataset.attrs.update(config_toml=to_toml(config), config_sha256=config_sha256(config),
                             data_sha256=loaded.data.sha256)
    with log.stage("ensemble_metrics", progress):
        metrics = ensemble_metrics(dataset, **metric_options(config))
        rows = metrics_table(metrics)
    with log.stage("ensemble_attribution", progress):
        # the recovery attribution per member and pooled: how much of each share is prior
        from carpmodel.studies.attribution import attribution_table
        from carpmodel.studies.attribution_prior import (
            attribution_across_members,
            hatchery_headline,
            members_rows,
        )

        across = attribution_across_members(fits, n_draws=min(config.diagnostics.posterior_samples, 200),
                                            seed=config.seed)
        theta = loaded.posterior_theta if loaded.posterior_theta is not None else loaded.result.theta
        own = attribution_table(loaded.result.spec, theta)
        headline = hatchery_headline(own, members=across)
    figures = {"ensemble_gains": plots.plot_ensemble_gains_panels(metrics)}   # every scenario
    return EnsembleArtifacts(fits, dataset, metrics, rows, members, figures, members_rows(across), headline)


def budget_problem(config: RunConfig, budget_per_year: float | None, n_age: int) -> Any:
    """The budget question: the strategies file's ``[budget]`` table, its budget replaced by
    ``budget_per_year`` when given; only an amount: the default options and objective. Checked
    against the costs, the model's ``n_age`` and the projection's years and scenarios (before any
    work is done)."""
    from carpmodel.errors import ConfigError
    from carpmodel.io.strategies_file import load_budget, load_strategies
    from carpmodel.management.budget import check_problem, resolve_problem

    path = resolve_path(config.projection.strategies)
    problem = resolve_problem(load_budget(path), budget_per_year, source=path)
    settings = config.projection
    try:
        check_problem(problem, load_strategies(path).costs, n_age, scenarios=settings.scenarios,
                      first_year=settings.first_year, last_year=settings.last_year)
    except ConfigError as exc:
        raise ConfigError(f"{path}, key {exc}") from None
    return problem


@dataclass(frozen=True)
class BudgetArtifacts:
    """The budget optimiser's choice per member and pooled."""

    dataset: xr.Dataset
    rows: list[dict[str, Any]]
    figures: dict[str, Any]


def budget_stage(loaded: LoadedFit, config: RunConfig, fits: Any, problem: Any, log: RunLog,
                 progress: Progress) -> BudgetArtifacts:
    """Best split of ``problem.budget_per_year`` over release sizes for each member of ``fits``
    (an EnsembleFits; :func:`carpmodel.management.ensemble.single_member` for the loaded fit) and pooled."""
    from carpmodel.io.strategies_file import load_strategies
    from carpmodel.management.budget import budget_table, optimise_release_budget
    from carpmodel.management.metrics import STATUS_QUO_STRATEGY
    from carpmodel.report import figures as plots

    strategy_set = load_strategies(resolve_path(config.projection.strategies))
    costs = strategy_set.costs
    status_quo = next((s for s in strategy_set.strategies if s.name == STATUS_QUO_STRATEGY), None)
    with log.stage("budget", progress):
        dataset = optimise_release_budget(fits, projection_setup(loaded, config), problem, costs,
                                          progress=progress.tick, status_quo=status_quo)
        dataset.attrs.update(config_sha256=config_sha256(config), data_sha256=loaded.data.sha256)
    figures = {"budget_shares": plots.plot_budget_shares(dataset)}
    return BudgetArtifacts(dataset, budget_table(dataset), figures)


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    from carpmodel.io.outputs import write_csv_atomic

    header = list(rows[0].keys())
    return write_csv_atomic(path, header, [[row.get(k) for k in header] for row in rows])


def write_ensemble(artifacts: EnsembleArtifacts, out: Path, log: RunLog, *, svg: bool = False) -> None:
    """ensemble_projection.nc, ensemble_metrics.csv, ensemble_members.csv and the figure."""
    log.wrote(write_netcdf_atomic(artifacts.dataset, out / "ensemble_projection.nc"))
    log.wrote(_write_rows(out / "ensemble_metrics.csv", artifacts.rows))
    log.wrote(_write_rows(out / "ensemble_members.csv", artifacts.members))
    if artifacts.attribution:
        log.wrote(_write_rows(out / "attribution_members.csv", artifacts.attribution))
        log.wrote(write_json_atomic(out / "hatchery_contribution.json", artifacts.hatchery_contribution))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)


def write_budget(artifacts: BudgetArtifacts, out: Path, log: RunLog, *, svg: bool = False) -> None:
    """budget.nc, budget.csv and the figure."""
    log.wrote(write_netcdf_atomic(artifacts.dataset, out / "budget.nc"))
    log.wrote(_write_rows(out / "budget.csv", artifacts.rows))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)


# --------------------------------------------------------------------------- monitoring design


@dataclass(frozen=True)
class MonitoringArtifacts:
    """What the monitoring stage produced: the design study, the juvenile-index comparison (or
    None), the monitoring.json record (recommendations, tables, method) and the figures."""

    design: xr.Dataset
    options: xr.Dataset | None
    record: dict[str, Any]
    figures: dict[str, Any]


def monitoring_stage(loaded: LoadedFit, log: RunLog, progress: Progress, *, seed: int | None = None,
                     juvenile_option: bool = True, **design: Any) -> MonitoringArtifacts:
    """``carpmodel monitoring``: the design study of hatchery-origin sampling on the loaded fit
    and, with ``juvenile_option``, the juvenile-index comparison (same replicates).

    ``design`` are :func:`~carpmodel.studies.monitoring_design.monitoring_design` options; those not
    given are :data:`~carpmodel.studies.monitoring_design.QUICK_DESIGN` (about a minute), not the
    function's full grid (:data:`~carpmodel.studies.monitoring_design.FULL_DESIGN`). ``seed``
    defaults to the fit's config's.
    """
    from carpmodel.studies.monitoring_design import QUICK_DESIGN, monitoring_design, monitoring_options

    settings = {**QUICK_DESIGN, **design}
    check_monitoring_design(settings, int(loaded.result.spec.observations.year.size))
    seed = loaded.config.seed if seed is None else int(seed)
    n, each = len(settings["true_survivals"]), f"{settings['n_replicates']} replicates each"
    with log.stage("monitoring_design", progress):
        ds = monitoring_design(loaded.result, seed=seed, **settings, progress=progress.ticker(
            f"sampling designs ({n} true survival{'s' * (n > 1)}, {each})"))
    options = None
    if juvenile_option:
        with log.stage("monitoring_options", progress):
            options = monitoring_options(loaded.result, n_replicates=settings["n_replicates"], seed=seed,
                                         progress=progress.ticker(f"juvenile-index comparison (4 designs, "
                                                                  f"{each})"))
    return monitoring_artifacts(ds, options)


_EXAMINED = bound("fish_examined")


def check_monitoring_design(settings: dict[str, Any], n_surveys: int) -> None:
    """ConfigError naming the option when a design cannot run (before any refit)."""
    checks = (("n_replicates", [settings["n_replicates"]], lambda v: v >= 2, "an integer >= 2"),
              ("true_survivals", settings["true_survivals"], lambda v: 0 < v < 1, "values in (0, 1)"),
              ("fish_per_year", settings["fish_per_year"], lambda v: 0 <= v <= _EXAMINED.upper,
               f"values in 0..{_EXAMINED.upper:g} ({_EXAMINED.reason})"),
              ("years_of_sampling", settings["years_of_sampling"], lambda v: 1 <= v <= n_surveys,
               f"survey years in 1..{n_surveys} (the surveys of the fit)"))
    for name, values, ok, expected in checks:
        bad = [v for v in values if not ok(v)]
        if bad or not len(values):
            raise ConfigError(f"monitoring {name}: expected {expected}, got {list(values)!r}")


def monitoring_artifacts(design: xr.Dataset, options: xr.Dataset | None = None) -> MonitoringArtifacts:
    """The monitoring.json record and the figures of a finished design study (and comparison)."""
    from carpmodel.report import study_figures as plots
    from carpmodel.studies.monitoring_summary import recommend_sample_size, summary_table

    quantities = ("release_survival", "release_contribution", "release_gain_t")
    record: dict[str, Any] = {
        "recommendation": {q: recommend_sample_size(design, quantity=q) for q in quantities},
        "tables": {q: summary_table(design, q) for q in quantities},
        "method": {k: v for k, v in design.attrs.items()}}
    if options is not None:
        record["options"] = {str(o): {q: {name: float(options[f"{q}_{name}"].sel(option=o))
                                          for name in ("width_median", "narrowing", "scale_narrowing",
                                                       "coverage", "median_estimate")}
                                      for q in quantities + ("dd_strength",)}
                             for o in options.option.values}
    figures = {"monitoring_interval_width": plots.plot_interval_width(design),
               "monitoring_contribution_width": plots.plot_interval_width(design, "release_contribution"),
               "monitoring_coverage": plots.plot_coverage(design)}
    return MonitoringArtifacts(design, options, record, figures)


def write_monitoring(artifacts: MonitoringArtifacts, out: Path, log: RunLog, *, svg: bool = False) -> None:
    """monitoring.nc, monitoring_options.nc (with the comparison), monitoring.json and the figures
    (closed once written)."""
    log.wrote(write_netcdf_atomic(artifacts.design, out / "monitoring.nc"))
    if artifacts.options is not None:
        log.wrote(write_netcdf_atomic(artifacts.options, out / "monitoring_options.nc"))
    log.wrote(write_json_atomic(out / "monitoring.json", artifacts.record))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)
    close_figures(artifacts.figures)




# --------------------------------------------------------------------------- origin-sample design (analytic)


@dataclass(frozen=True)
class OriginDesignArtifacts:
    """The analytic origin-sample design: its Dataset, origin_design.json record and figure."""

    dataset: xr.Dataset
    record: dict[str, Any]
    figures: dict[str, Any]


def origin_design_stage(loaded: LoadedFit, log: RunLog, progress: Progress) -> OriginDesignArtifacts:
    """``carpmodel monitoring``'s analytic part (seconds): marked releases at the recorded numbers,
    fish a year × gear × years sampled for the three questions of issue #14 item 5
    (:func:`carpmodel.studies.origin_design.origin_design`)."""
    from carpmodel.report.study_figures import plot_origin_design
    from carpmodel.studies.origin_design import origin_design, origin_design_record

    with log.stage("origin_design", progress):
        ds = origin_design(loaded.result, loaded.data)
    figures = {"origin_design_power": plot_origin_design(ds)}
    return OriginDesignArtifacts(ds, origin_design_record(ds), figures)


def write_origin_design(artifacts: OriginDesignArtifacts, out: Path, log: RunLog, *,
                        svg: bool = False) -> None:
    """origin_design.nc, origin_design.json and the figure (closed once written)."""
    log.wrote(write_netcdf_atomic(artifacts.dataset, out / "origin_design.nc"))
    log.wrote(write_json_atomic(out / "origin_design.json", artifacts.record))
    write_figures(artifacts.figures, out / "figures", log, svg=svg)
    close_figures(artifacts.figures)
