"""Figures. Each function draws from a Dataset (or a small table), labels its axes with units,
and returns the Figure; it never computes a model quantity and never saves (outputs does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

#: quantiles of the 90 % band drawn around projected medians
BAND = (0.05, 0.95)
#: short axis labels of projected variables
LABELS = {"biomass_t": "Biomass", "ssb_t": "Spawning biomass", "catch_t": "Catch",
          "hatchery_fraction_ssb": "Hatchery-origin share of SSB",
          "hatchery_fraction_biomass": "Hatchery-origin share of biomass", "recruits": "Recruits"}


#: readable names of likelihood components (profile legend)
COMPONENT_LABELS = {"biomass": "biomass survey", "priors": "priors of estimated parameters",
                    "recruitment_deviations": "recruitment-deviation penalty",
                    "fixed_parameter_prior": "prior of the profiled parameter", "total": "total"}


def _scale(units: str, variable: str = "") -> tuple[float, str]:
    """Divisor and axis unit of a variable: tonnes in thousand t, fractions in %."""
    if units == "t":
        return 1e3, "thousand t"
    if units == "1" and "fraction" in variable:
        return 0.01, "%"
    return 1.0, units or "1"


def _plain_ticks(ax: Axes) -> None:
    """No offset or scientific multiplier on a linear axis (a '1e6' corner label is easy to miss)."""
    for axis in (ax.xaxis, ax.yaxis):
        formatter = axis.get_major_formatter()
        if axis.get_scale() == "linear" and isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)
            formatter.set_scientific(False)


def _axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.2)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def plot_fit(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Observed survey biomass with 95 % error bars from the assumed CVs, and the fitted
    biomass on the survey's scale (q·B) with its 95 % band."""
    fig, ax = _axes(ax)
    years = ds.year.values
    ax.fill_between(years, ds.survey_biomass_t_lower / 1e3, ds.survey_biomass_t_upper / 1e3,
                    color="tab:blue", alpha=0.25, label="fitted q·B, 95 % interval")
    ax.plot(years, ds.survey_biomass_t / 1e3, color="tab:blue", label="fitted q·B (MAP)")
    obs = ds.biomass_obs_t.values
    cv = ds.biomass_obs_cv.values
    ok = np.isfinite(obs)
    lower, upper = obs * np.exp(-1.96 * cv), obs * np.exp(1.96 * cv)
    ax.errorbar(years[ok], obs[ok] / 1e3, yerr=[(obs - lower)[ok] / 1e3, (upper - obs)[ok] / 1e3],
                fmt="o", color="black", capsize=3, label="survey (95 % from assumed CV)")
    ax.set_xlabel("Year")
    ax.set_ylabel("Biomass (thousand t)")
    ax.set_title("Fit to the hydroacoustic biomass record")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_recruitment(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Wild age-0 recruits with their 95 % interval (log scale)."""
    fig, ax = _axes(ax)
    years = ds.year.values
    ax.fill_between(years, ds.recruits_lower, ds.recruits_upper, color="tab:green", alpha=0.25,
                    label="95 % interval")
    ax.plot(years, ds.recruits, color="tab:green", label="MAP")
    ax.set_yscale("log")
    ax.set_xlabel("Year")
    ax.set_ylabel("Age-0 recruits (fish)")
    ax.set_title("Recruitment")
    ax.legend(fontsize=8)
    return fig


def plot_depletion(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Biomass relative to unfished (B/B0) with its 95 % interval."""
    fig, ax = _axes(ax)
    years = ds.year.values
    ax.fill_between(years, ds.depletion_lower, ds.depletion_upper, color="tab:purple", alpha=0.25,
                    label="95 % interval")
    ax.plot(years, ds.depletion, color="tab:purple", label="MAP")
    ax.axhline(0.2, color="grey", ls="--", lw=1, label="0.2·B0")
    ax.set_xlabel("Year")
    ax.set_ylabel("B / B0 (dimensionless)")
    ax.set_title("Depletion")
    ax.legend(fontsize=8)
    return fig


def plot_residuals(years: Sequence[int], residuals: Sequence[float], *, runs_p_value: float | None = None,
                   sdnr: float | None = None, alpha: float = 0.05, ax: Axes | None = None) -> Figure:
    """Standardised log residuals of the biomass observations with the ±2 band; the title gives
    the runs test (fails when p < ``alpha``) and the SD of the standardised residuals (SDNR)."""
    fig, ax = _axes(ax)
    ax.axhspan(-2, 2, color="lightgrey", alpha=0.5, label="±2 (95 % if the assumed CVs are right)")
    ax.axhline(0, color="black", lw=0.8)
    ax.vlines(years, 0, residuals, color="tab:red")
    ax.plot(years, residuals, "o", color="tab:red", label="(log obs − log q·B) / SD")
    parts = []
    if runs_p_value is not None and np.isfinite(runs_p_value):
        verdict = "fails" if runs_p_value < alpha else "passes"
        parts.append(f"runs test p = {runs_p_value:.3f}, {verdict} at {100 * alpha:g} %")
    if sdnr is not None and np.isfinite(sdnr):
        parts.append(f"SDNR = {sdnr:.2f}")
    ax.set_title("Standardised residuals" + (f" ({'; '.join(parts)})" if parts else ""))
    ax.set_xlabel("Year")
    ax.set_ylabel("Standardised log residual (SD units)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_retrospective(peels: xr.DataArray, *, rho: float | None = None, ax: Axes | None = None) -> Figure:
    """Trajectories of one quantity from each retrospective peel (dims peel, year)."""
    fig, ax = _axes(ax)
    units = peels.attrs.get("units", "")
    scale, unit_label = _scale(units)
    terminal = peels["terminal_year"].values if "terminal_year" in peels.coords else None
    for i, peel in enumerate(peels.peel.values):
        line = peels.sel(peel=peel)
        if terminal is not None:
            label = f"data to {int(terminal[i])}" + (" (full fit)" if int(peel) == 0 else "")
        else:
            label = "full fit" if int(peel) == 0 else f"peel {int(peel)}"
        ax.plot(line.year, line / scale, label=label, lw=2.5 if int(peel) == 0 else 1.2,
                color="black" if int(peel) == 0 else None)
    ax.set_xlabel("Year")
    ax.set_ylabel(f"{LABELS.get(str(peels.name), peels.name)} ({unit_label})")
    ax.set_title("Retrospective analysis" + (f" (Mohn's ρ = {rho:.3f})" if rho is not None else ""))
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_prior_posterior(rows: Sequence[Mapping[str, Any]], samples: Mapping[str, np.ndarray],
                         priors: Mapping[str, Any], units: Mapping[str, str] | None = None) -> Figure:
    """Prior density (line) against posterior draws (histogram), one panel per parameter."""
    names = [row["parameter"] for row in rows]
    cols = 3
    nrows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(10, 2.6 * nrows), layout="constrained")
    for ax, row in zip(np.ravel(axes), rows, strict=False):
        name = row["parameter"]
        unit = (units or {}).get(name) or row.get("unit") or "1"
        scale, unit_label = _scale(unit)
        draws = np.asarray(samples[name])
        # densities per unit of the axis: the histogram and the prior are both drawn on it
        ax.hist(draws / scale, bins=40, density=True, color="tab:blue", alpha=0.5, label="posterior")
        prior = priors.get(name)
        if prior is not None:
            lo, hi = np.quantile(draws, [0.001, 0.999])
            span = hi - lo
            grid = np.linspace(max(lo - span, 1e-9 if lo > 0 else lo - span), hi + span, 300)
            ax.plot(grid / scale, np.exp(prior.logpdf(grid)) * scale, color="black", label="prior")
        ratio = row.get("sd_ratio")
        ax.set_title(f"{name}" + (f" (post/prior SD {ratio:.2f})" if ratio is not None
                                  and np.isfinite(ratio) else ""), fontsize=9)
        ax.set_xlabel(f"{name} ({unit_label})")
        ax.set_ylabel("density")
        _plain_ticks(ax)
    for ax in np.ravel(axes)[len(names):]:
        ax.set_visible(False)
    np.ravel(axes)[0].legend(fontsize=7)
    return fig


def _median_and_band(ax: Axes, series: xr.DataArray, scale: float, name: str,
                     bands: Sequence[str] | None) -> None:
    """Median over draws of ``series (draw, year)`` divided by ``scale``, labelled ``name``, and
    its 90 % band when ``bands`` is None or names it (the legend then says which are banded)."""
    q = series.quantile([BAND[0], 0.5, BAND[1]], dim="draw") / scale
    banded = bands is None or name in bands
    (line,) = ax.plot(series.year, q.sel(quantile=0.5), lw=2 if banded else 1.3,
                      label=name + (" (median, 90 % band)" if banded and bands is not None else ""))
    if banded:
        ax.fill_between(series.year, q.sel(quantile=BAND[0]), q.sel(quantile=BAND[1]),
                        color=line.get_color(), alpha=0.15)


def plot_fan(ds: xr.Dataset, variable: str = "biomass_t", *, ax: Axes | None = None,
             strategies: Sequence[str] | None = None, scenario: str | None = None,
             bands: Sequence[str] | None = None) -> Figure:
    """Median and 90 % band over draws of a projected variable, one colour per strategy.

    ``bands`` names the strategies whose band is drawn (default: all); with many strategies the
    bands of strategies that share the parameter draws cover each other, so a figure can show
    the medians of all and the bands of a few (the legend says which).
    """
    fig, ax = _axes(ax, (8.0, 4.4))
    scenario = scenario or str(ds.scenario.values[0])
    units = ds[variable].attrs.get("units", "")
    scale, unit_label = _scale(units, variable)
    for strategy in strategies or [str(s) for s in ds.strategy.values]:
        _median_and_band(ax, ds[variable].sel(strategy=strategy, scenario=scenario), scale, strategy, bands)
    ax.set_xlabel("Year")
    ax.set_ylabel(f"{LABELS.get(variable, variable)} ({unit_label})")
    ax.set_title(f"{LABELS.get(variable, variable)} by release strategy, {scenario}", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="strategy",
              title_fontsize=8)
    return fig


def plot_profile(table: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Likelihood profile: ΔNLL by data component against the profiled parameter."""
    fig, ax = _axes(ax)
    field = table.attrs.get("profiled_field", "parameter")
    values = table.value.values
    scale, unit = (1e3, "thousand t") if field.endswith("_t") else (1.0, "")
    for component in table.component.values:
        total = str(component) == "total"
        ax.plot(values / scale, table.delta_nll.sel(component=component), marker="o", ms=3,
                label=COMPONENT_LABELS.get(str(component), str(component)), lw=2.5 if total else 1.2,
                color="black" if total else None)
    ax.axhline(1.92, color="grey", ls="--", lw=1, label="ΔNLL = 1.92 (95 % limit)")
    ax.set_xlabel(f"{field} held fixed" + (f" ({unit})" if unit else ""))
    ax.set_ylabel("ΔNLL (negative log-likelihood units)")
    ax.set_title("Likelihood profile by component")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="component",
              title_fontsize=7)
    return fig


def plot_attribution(table: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Shares of the explained 2002→last-year biomass increase with their 90 % intervals."""
    fig, ax = _axes(ax, (6.5, 3.6))
    names = ["share_ban", "share_releases", "share_rec_devs"]
    labels = ["fishing ban", "releases", "recruitment variation"]
    if "share_habitat" in table["quantity"].values:      # four factors: river connectivity
        names.append("share_habitat")
        labels.append("river connectivity")
    median = np.array([float(table["median"].sel(quantity=n)) for n in names])
    lower = np.array([float(table["lower_90"].sel(quantity=n)) for n in names])
    upper = np.array([float(table["upper_90"].sel(quantity=n)) for n in names])
    ax.bar(labels, median * 100, color=["tab:blue", "tab:orange", "tab:green", "tab:purple"][:len(names)],
           alpha=0.8)
    ax.errorbar(labels, median * 100, yerr=[(median - lower) * 100, (upper - median) * 100], fmt="none",
                color="black", capsize=4)
    def percent(x: float) -> str:
        return f"{100 * x:.0f} %" if abs(x) >= 0.1 else f"{100 * x:.1f} %"

    for i, (m, lo, hi) in enumerate(zip(median, lower, upper, strict=True)):
        ax.annotate(f"{percent(m)} ({percent(lo)} to {percent(hi)})", (i, max(hi, m, 0) * 100),
                    xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(min(0.0, float(lower.min()) * 100) - 5, float(upper.max()) * 100 + 15)
    ax.set_ylabel("Share of the explained increase (%)")
    first, last = table.attrs.get("first_year"), table.attrs.get("last_year")
    years = f" {first}→{last}" if first is not None and last is not None else ""
    ax.set_title(f"What explains the{years} recovery (Shapley shares, median, 90 % interval)",
                 fontsize=10)
    return fig


def plot_scenarios(ds: xr.Dataset, variable: str = "biomass_t", *, strategy: str | None = None,
                   ax: Axes | None = None, bands: Sequence[str] | None = None) -> Figure:
    """One strategy's projected median and 90 % band under each climate scenario (``bands``: the
    scenarios whose band is drawn, default all)."""
    fig, ax = _axes(ax, (8.0, 4.4))
    strategy = strategy or str(ds.strategy.values[0])
    units = ds[variable].attrs.get("units", "")
    scale, unit_label = _scale(units, variable)
    for scenario in ds.scenario.values:
        _median_and_band(ax, ds[variable].sel(strategy=strategy, scenario=scenario), scale, str(scenario),
                         bands)
    ax.set_xlabel("Year")
    ax.set_ylabel(f"{LABELS.get(variable, variable)} ({unit_label})")
    ax.set_title(f"{LABELS.get(variable, variable)} by climate scenario, strategy {strategy}", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, title="scenario", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_strategy_comparison(metrics: xr.Dataset, *, scenario: str, year: int | None = None) -> Figure:
    """Biomass gained over no releases (median, 90 % interval) and total cost, per strategy."""
    years = metrics["metric_year"].values
    year = int(year if year is not None else (2050 if 2050 in years else years[-1]))
    cell = metrics.sel(scenario=scenario)
    names = [str(s) for s in cell.strategy.values]
    gain = cell["biomass_gain_median_t"].sel(metric_year=year).values / 1e3
    lower = cell["biomass_gain_lower_t"].sel(metric_year=year).values / 1e3
    upper = cell["biomass_gain_upper_t"].sel(metric_year=year).values / 1e3
    cost_year = metrics.attrs.get("cost_year")
    through = "cost_through_cost_year_median" in cell and cost_year is not None
    cost = cell["cost_through_cost_year_median" if through else "cost_total_median"].values / 1e6
    reference = metrics.attrs.get("reference_strategy", "no_releases")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.9 + 0.42 * len(names)), layout="constrained",
                                      width_ratios=(1.6, 1.0))
    positions = np.arange(len(names))
    left.barh(positions, gain, color="tab:blue", alpha=0.7)
    left.errorbar(gain, positions, xerr=[gain - lower, upper - gain], fmt="none", color="black", capsize=3)
    left.axvline(0, color="black", lw=0.8)
    # the value of every bar in words: small gains are invisible next to a large loss
    span = max(float(np.nanmax(np.abs(np.r_[lower, upper, 0.0]))), 1e-9)
    for y, (g, lo, hi) in enumerate(zip(gain, lower, upper, strict=True)):
        if names[y] == reference:
            text, x = "reference", 0.0
        else:
            text, x = f"{g:+.1f} ({lo:+.1f} to {hi:+.1f})", max(hi, 0.0)
        left.text(x + 0.02 * span, y, text, va="center", fontsize=7)
    left.set_xlim(min(float(np.nanmin(lower)), 0.0) - 0.05 * span,
                  max(float(np.nanmax(upper)), 0.0) + 0.6 * span)
    left.set_yticks(positions, names)
    left.set_xlabel(f"Biomass gained over {reference} in {year} (thousand t)")
    left.set_title(f"Gain paired by draw, {scenario}: median (90 % interval), kt", fontsize=10)
    right.barh(positions, cost, color="tab:orange", alpha=0.7)
    right.set_yticks(positions, [])
    unit = metrics["cost_total_median"].attrs.get("units", "cost units")
    right.set_xlabel(f"Release cost {'up to ' + str(cost_year) if through else 'over the projection'} "
                     f"(million {unit})")
    right.set_title("Cost (illustrative unless user-supplied)", fontsize=10)
    _plain_ticks(right)
    return fig


def plot_ensemble_gains(metrics: xr.Dataset, *, scenario: str, year: int | None = None,
                        ax: Axes | None = None) -> Figure:
    """Biomass gained over no releases (median, 90 % interval) per strategy, for every member of a
    structural ensemble (grey) and the pooled ensemble (black); ``metrics`` from
    :func:`carpmodel.management.ensemble.ensemble_metrics`."""
    years = metrics["metric_year"].values
    year = int(year if year is not None else (2050 if 2050 in years else years[-1]))
    cell = metrics.sel(scenario=scenario, metric_year=year)
    names = [str(s) for s in cell.strategy.values]
    structures = [str(s) for s in cell.structure.values]
    fig, ax = _axes(ax, (8.0, 0.5 + 0.45 * len(names)))
    positions = np.arange(len(names))
    offsets = np.linspace(-0.3, 0.3, len(structures)) if len(structures) > 1 else np.zeros(1)
    for offset, structure in zip(offsets, structures, strict=True):
        c = cell.sel(structure=structure)
        gain, lower, upper = (c[f"biomass_gain_{k}_t"].values / 1e3 for k in ("median", "lower", "upper"))
        pooled = structure == "pooled"
        ax.errorbar(gain, positions + offset, xerr=[gain - lower, upper - gain], fmt="o",
                    color="black" if pooled else "0.6", ms=5 if pooled else 3, capsize=2,
                    lw=1.4 if pooled else 0.8, label="pooled ensemble" if pooled else None)
    ax.plot([], [], "o", color="0.6", ms=3, label=f"members ({len(structures) - 1})")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(positions, names)
    ax.set_xlabel(f"Biomass gained over no_releases in {year} (thousand t)")
    ax.set_title(f"Gain across model structures ({scenario}; median, 90 % interval)")
    ax.legend(fontsize=8)
    return fig


def plot_budget_shares(budget: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Best split of the budget over release sizes per member and pooled (stacked bars), with the
    median gain at that split; ``budget`` from
    :func:`carpmodel.management.budget.optimise_release_budget`."""
    structures = [str(s) for s in budget.structure.values]
    fig, ax = _axes(ax, (8.0, 0.8 + 0.4 * len(structures)))
    positions = np.arange(len(structures))
    left = np.zeros(len(structures))
    for option in budget.release_option.values:
        share = budget["share"].sel(release_option=option).values
        ax.barh(positions, share, left=left, label=str(option), alpha=0.8)
        left += share
    for i, structure in enumerate(structures):
        gain = float(budget["gain_median_t"].sel(structure=structure))
        ax.text(1.01, i, f"{gain / 1e3:.1f} kt", va="center", fontsize=7)
    ax.set_yticks(positions, structures, fontsize=7)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("Share of the annual budget")
    ax.set_title(f"Best use of {budget.attrs['budget_per_year']:g}/yr: {budget.attrs['objective']} in "
                 f"{budget.attrs['year']} ({budget.attrs['scenario']})")
    ax.legend(fontsize=7, loc="lower right")
    return fig
