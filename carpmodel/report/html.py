"""report.html: one self-contained page of a run, from the template ``templates/report.html.j2``.

:func:`report_html` gathers what the page shows (the fit summary, the strategy metrics, the
sensitivity settings, the figures embedded as PNG with their captions, the stage timings),
builds the tables (:mod:`~carpmodel.report.tables`) and statements
(:mod:`~carpmodel.report.statements`), and renders the page. Nothing here computes a model
quantity.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr

from carpmodel import __version__
from carpmodel.inference.prior_posterior import INFORMED_RATIO, SILENT_RATIO
from carpmodel.io.config import RunConfig, config_sha256
from carpmodel.report.captions import figure_captions, figure_scenario
from carpmodel.report.statements import changes_since_0_1, findings, limitations
from carpmodel.report.tables import (
    attribution_table,
    comparison_table,
    diagnostics_table,
    metric_year,
    parameter_table,
    strategy_table,
    timings_table,
)
from carpmodel.report.template import render_page

#: the page's title
TITLE = "carpmodel: Qinghai Lake naked carp"

def figure_png_base64(fig: Any) -> str:
    """A matplotlib Figure as base64 PNG text (100 dpi), for an embedded ``<img>``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def report_html(summary: Mapping[str, Any], fit_dataset: xr.Dataset, projection: xr.Dataset,
                metrics: xr.Dataset, metric_rows: Sequence[Mapping[str, Any]], config: RunConfig, *,
                figures: Mapping[str, Any], sensitivity: xr.Dataset | None = None,
                timings: Mapping[str, float] | None = None,
                ensemble_rows: Sequence[Mapping[str, Any]] | None = None) -> str:
    """report.html: what the data can and cannot tell, the fitted model, diagnostics, attribution,
    projections, strategies, climate sensitivity, and the run's record.

    ``summary`` is fit.json's content, ``fit_dataset`` fit.nc's, ``projection`` projection.nc's
    with its ``metrics`` Dataset and ``metric_rows`` (metrics.csv); ``figures`` the run's
    matplotlib figures by name (those the page shows are embedded); ``sensitivity`` the
    sensitivity Dataset (None: not run); ``timings`` the stages finished before the report (s;
    run.json has them all); ``ensemble_rows`` the ensemble metrics rows (ensemble_metrics.csv),
    when a structural ensemble was run: the first box then says which recommendations survive it.
    """
    setup = summary.get("attribution_setup", {})
    first_year, last_year = setup.get("first_year", 2002), setup.get("last_year", config.model.last_year)
    scenario = figure_scenario(config.projection.scenarios)
    projected = [str(x) for x in projection.scenario.values] or [scenario]
    rows = list(metric_rows)
    year = metric_year([r for r in rows if r["scenario"] == scenario])
    cost_year = metrics.attrs.get("cost_year")
    cost_unit = (metrics["cost_total_median"].attrs.get("units", "cost units")
                 if "cost_total_median" in metrics else "cost units")
    diag = summary.get("diagnostics", {})
    posterior = summary.get("posterior", {})
    recruits_ratio = None
    if "recruits_lower" in fit_dataset and "recruits_upper" in fit_dataset:
        lower = float(fit_dataset["recruits_lower"].isel(year=-1))
        upper = float(fit_dataset["recruits_upper"].isel(year=-1))
        recruits_ratio = upper / lower if lower > 0 else None
    sens = config.sensitivity
    shown = {name: figure_png_base64(fig) for name, fig in figures.items()}
    captions = figure_captions(
        strategies=[str(x) for x in projection.strategy.values],
        scenarios=[str(x) for x in projection.scenario.values], scenario=scenario, year=year,
        cost_year=cost_year, n_peels=diag.get("retrospective", {}).get("n_peels"), first_year=first_year,
        last_year=last_year, heatmap_effect=sens.heatmap_effect)
    return render_page(
        title=TITLE, scenario=", ".join(projected), figures=shown, captions=captions,
        findings=findings(summary, rows, scenario, year, first_year, last_year, ensemble_rows),
        limitations=limitations(summary, recruits_ratio=recruits_ratio,
                                recruits_year=int(fit_dataset.year.values[-1]),
                                informed_ratio=INFORMED_RATIO, silent_ratio=SILENT_RATIO),
        changes=changes_since_0_1(summary),
        fit=summary, warnings=summary.get("warnings", []),
        hindcast_line=summary.get("hindcast_held_out", {}).get("skill_line"),
        interval_method=fit_dataset.attrs.get("interval_method"),
        posterior_samples=posterior.get("n_samples", "?"), posterior_method=posterior.get("method", "?"),
        informed_ratio=f"{INFORMED_RATIO:g}", silent_ratio=f"{SILENT_RATIO:g}",
        silent=[r["parameter"] for r in posterior.get("prior_posterior", [])
                if r.get("sd_ratio") is not None and r["sd_ratio"] >= SILENT_RATIO],
        parameter_table=parameter_table(posterior.get("prior_posterior", [])),
        diagnostics_table=diagnostics_table(diag, summary.get("posterior_predictive", {})),
        comparison_table=comparison_table(diag.get("model_comparison")),
        first_year=first_year, last_year=last_year,
        attribution={"n_draws": setup.get("n_draws", "?"), "ban_year": setup.get("ban_year", "?")},
        attribution_table=attribution_table(summary.get("attribution", []), first_year, last_year),
        strategy_tables=[(name, strategy_table(rows, name, limit_fraction=config.projection.limit_fraction,
                                               cost_year=cost_year, cost_unit=cost_unit))
                         for name in projected],
        sensitivity=None if sensitivity is None else {
            "warming_levels_c": [f"{w:g}" for w in sens.warming_levels_c],
            "strategy": sensitivity.attrs.get("strategy", "status_quo"), "draws": sens.draws},
        run={"version": __version__, "seed": config.seed, "config_sha256": config_sha256(config),
             "data_sha256": fit_dataset.attrs.get("data_sha256", "?")},
        timings_table=timings_table(timings) if timings else None)
