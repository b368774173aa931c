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
#: the band's level in words, from :data:`BAND` (labels never type the number themselves)
BAND_LABEL = f"{round(100 * (BAND[1] - BAND[0])):g} % band"
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


#: label of the surveys a fit with a last data year did not see
HELD_OUT_LABEL = "held out (not fitted)"


def plot_fit(ds: xr.Dataset, *, held_out: xr.Dataset | None = None, ax: Axes | None = None) -> Figure:
    """Survey biomass with 95 % error bars from the survey SD the fit uses (``biomass_obs_sd_log``,
    the estimated σ times the relative CV; the assumed CVs where a file lacks it), the fitted
    biomass on the survey's scale (q·B) and the model's absolute biomass B (what the projections
    show), each with its 95 % interval, in thousand t; a survey with its own catchability (2002)
    gets its own fitted value (a cross).

    ``held_out`` (hindcast.nc of a fit with a last data year) adds the surveys after that year as
    open diamonds labelled :data:`HELD_OUT_LABEL`, the 95 % predictive interval of a survey in
    those years, and a line at the last data year.
    """
    fig, ax = _axes(ax, (8.0, 4.4))
    years = ds.year.values
    ax.fill_between(years, ds.biomass_t_lower / 1e3, ds.biomass_t_upper / 1e3, color="tab:green",
                    alpha=0.18, label="biomass B (as projected), 95 % interval")
    ax.plot(years, ds.biomass_t / 1e3, color="tab:green", ls="--", label="biomass B (MAP)")
    ax.fill_between(years, ds.survey_biomass_t_lower / 1e3, ds.survey_biomass_t_upper / 1e3,
                    color="tab:blue", alpha=0.25, label="fitted q·B (survey scale), 95 % interval")
    ax.plot(years, ds.survey_biomass_t / 1e3, color="tab:blue", label="fitted q·B (MAP)")
    obs = ds.biomass_obs_t.values
    fitted_sd = "biomass_obs_sd_log" in ds
    sd = ds.biomass_obs_sd_log.values if fitted_sd else ds.biomass_obs_cv.values
    ok = np.isfinite(obs)
    lower, upper = obs * np.exp(-1.96 * sd), obs * np.exp(1.96 * sd)
    ax.errorbar(years[ok], obs[ok] / 1e3, yerr=[(obs - lower)[ok] / 1e3, (upper - obs)[ok] / 1e3],
                fmt="o", color="black", capsize=3,
                label="survey, fitted (95 % from the "
                + ("fitted survey SD)" if fitted_sd else "assumed CV)"))
    if "survey_predicted_t" in ds:
        predicted = ds.survey_predicted_t.values
        own_q = ok & np.isfinite(predicted) & ~np.isclose(predicted, ds.survey_biomass_t.values, rtol=1e-9)
        if own_q.any():
            ax.plot(years[own_q], predicted[own_q] / 1e3, "x", color="tab:blue", ms=8, mew=2,
                    label="fitted value of a survey with its own q")
    title = "Fit to the hydroacoustic biomass record"
    if held_out is not None:
        last = int(held_out.attrs["last_data_year"])
        title += f" (data to {last})"
        ax.axvline(last + 0.5, color="grey", ls=":", lw=1, label=f"last data year {last}")
        held = held_out["held_out"].values.astype(bool)
        later = held_out.year.values > last
        ax.fill_between(held_out.year.values[later], held_out.survey_predictive_lower.values[later] / 1e3,
                        held_out.survey_predictive_upper.values[later] / 1e3, color="tab:red", alpha=0.12,
                        label="95 % predictive interval of a survey")
        if held.any():
            h_obs, h_cv = held_out.biomass_obs_t.values[held], held_out.biomass_obs_cv.values[held]
            bars = [h_obs * (1 - np.exp(-1.96 * h_cv)) / 1e3, h_obs * (np.exp(1.96 * h_cv) - 1) / 1e3]
            ax.errorbar(held_out.year.values[held], h_obs / 1e3, yerr=bars,
                        fmt="D", mfc="white", color="tab:red", capsize=3, label=HELD_OUT_LABEL)
    ax.set_xlabel("Year")
    ax.set_ylabel("Biomass (thousand t)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=7)
    return fig


def plot_recruitment(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Wild recruits of each year class (reaching age 1 on 1 January after the year spawned) with
    their 95 % interval (log scale)."""
    fig, ax = _axes(ax)
    years = ds.year.values
    ax.fill_between(years, ds.recruits_lower, ds.recruits_upper, color="tab:green", alpha=0.25,
                    label="95 % interval")
    ax.plot(years, ds.recruits, color="tab:green", label="MAP")
    ax.set_yscale("log")
    ax.set_xlabel("Year")
    ax.set_ylabel("Recruits reaching age 1 (fish)")
    ax.set_title("Recruitment (by year spawned)")
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


#: readable names of parameters for axis labels (others: the name without its unit suffix, spaced)
PARAMETER_LABELS = {
    "unfished_biomass_t": "Unfished biomass B0", "max_egg_survival": "Maximum egg-to-recruit survival",
    "initial_depletion": "Initial biomass / B0", "initial_f_per_yr": "Initial fishing mortality F",
    "survey_q": "Survey catchability q", "survey_q_early": "Early-survey catchability q",
    "m_ref_per_yr": "Natural mortality at the reference length", "dd_strength": "Juvenile density dependence",
    "release_survival": "Acute release survival", "steepness": "Steepness h",
    "lorenzen_c": "Lorenzen exponent c", "sigma_r": "Recruitment deviation SD",
    "sigma_survey": "Survey log SD", "k_per_yr": "Growth rate K", "l_inf_cm": "Asymptotic length L∞",
    "relative_reproductive_success": "Relative reproductive success of hatchery fish",
}
_UNIT_SUFFIXES = ("_per_yr", "_t", "_cm", "_g", "_yr", "_c")


def parameter_label(name: str, unit: str | None = None) -> str:
    """A readable axis label of a parameter with its unit, e.g. ``"Unfished biomass B0 (thousand t)"``;
    dimensionless units read "dimensionless"."""
    readable = PARAMETER_LABELS.get(name)
    if readable is None and name.startswith("initial_dev_a") and name[13:].isdigit():
        readable = f"Initial log-numbers deviation, age {int(name[13:])}"
    if readable is None:
        stem = next((name[: -len(x)] for x in _UNIT_SUFFIXES if name.endswith(x)), name)
        readable = stem.replace("_", " ").capitalize()
    if unit is None:
        return readable
    return f"{readable} ({'dimensionless' if unit in ('1', '') else unit})"


def _support(prior: Any, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """Where a parameter can lie: its prior's support, within ``bounds`` (the estimation's)."""
    lo, hi = -np.inf, np.inf
    if prior is not None:
        lo, hi = float(prior.ppf(0.0)), float(prior.ppf(1.0))
    if bounds is not None:
        lo, hi = max(lo, float(bounds[0])), min(hi, float(bounds[1]))
    return lo, hi


def plot_prior_posterior(rows: Sequence[Mapping[str, Any]], samples: Mapping[str, np.ndarray],
                         priors: Mapping[str, Any], units: Mapping[str, str] | None = None,
                         supports: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Prior density (line) against posterior draws (histogram), one panel per parameter.

    Each axis stays within the parameter's support (its prior's support, within ``supports``:
    the natural-scale bounds of the estimation, e.g. (0, 1) for a survival) and is labelled with
    a readable name and unit (:func:`parameter_label`); the panel title keeps the code name.
    """
    names = [row["parameter"] for row in rows]
    cols = 3
    nrows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(10, 2.6 * nrows), layout="constrained", squeeze=False)
    for ax, row in zip(np.ravel(axes), rows, strict=False):
        name = row["parameter"]
        unit = (units or {}).get(name) or row.get("unit") or "1"
        scale, unit_label = _scale(unit)
        draws = np.asarray(samples[name])
        prior = priors.get(name)
        low, high = _support(prior, (supports or {}).get(name))
        # densities per unit of the axis: the histogram and the prior are both drawn on it
        ax.hist(draws / scale, bins=40, density=True, color="tab:blue", alpha=0.5, label="posterior")
        lo, hi = np.quantile(draws, [0.001, 0.999])
        span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
        left, right = max(lo - span, low), min(hi + span, high)
        if prior is not None:
            # a grid inside the open support (a density at its edge may be infinite)
            edge = 1e-6 * (right - left)
            grid = np.linspace(left + edge if left == low else left, right - edge if right == high else right,
                               300)
            ax.plot(grid / scale, np.exp(prior.logpdf(grid)) * scale, color="black", label="prior")
        ax.set_xlim(left / scale, right / scale)
        ratio = row.get("sd_ratio")
        ax.set_title(f"{name}" + (f" (post/prior SD {ratio:.2f})" if ratio is not None
                                  and np.isfinite(ratio) else ""), fontsize=9)
        ax.set_xlabel(parameter_label(name, unit_label), fontsize=8)
        ax.set_ylabel(f"density (per {unit_label})" if unit_label not in ("1", "") else "density")
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
                      label=name + (f" (median, {BAND_LABEL})" if banded and bands is not None else ""))
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
    # the legend says what the lines and bands are (each entry says so when only some are banded)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title=f"strategy (median, {BAND_LABEL})" if bands is None else "strategy", title_fontsize=8)
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
    lower = np.array([float(table["lower_90"].sel(quantity=n)) for n in names])   # 5 %, 95 % quantiles
    upper = np.array([float(table["upper_90"].sel(quantity=n)) for n in names])
    ax.bar(labels, median * 100, color=["tab:blue", "tab:orange", "tab:green", "tab:purple"][:len(names)],
           alpha=0.8)
    ax.errorbar(labels, median * 100, yerr=[(median - lower) * 100, (upper - median) * 100], fmt="none",
                color="black", capsize=4)
    def percent(x: float) -> str:
        return f"{100 * x:.0f} %" if abs(x) >= 0.1 else f"{100 * x:.1f} %"

    for i, (m, lo, hi) in enumerate(zip(median, lower, upper, strict=True)):
        label = f"{percent(m)}\n(90 % interval: {percent(lo)} to {percent(hi)})"
        ax.annotate(label, (i, max(hi, m, 0) * 100), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(min(0.0, float(lower.min()) * 100) - 5, float(upper.max()) * 100 + 25)
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
    ax.legend(fontsize=8, title=f"scenario (median, {BAND_LABEL})" if bands is None else "scenario",
              title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def interval_label(metrics: xr.Dataset) -> str:
    """The central interval of a metrics Dataset in words, e.g. ``"90 % interval"``, from its
    ``interval`` attribute (what was computed, never a number typed into a label)."""
    return f"{100 * float(metrics.attrs.get('interval', 0.9)):g} % interval"


def fishing_strategies(ds: xr.Dataset) -> list[str]:
    """Strategies that catch fish (fishing options such as reopen_fishing): a positive projected
    ``catch_t`` in any draw, or in metrics a positive ``total_catch_upper_t`` in any scenario.
    Their gains or losses are of another order than those of releases, so figures draw them in
    their own panel."""
    if "catch_t" in ds:
        catches = ds["catch_t"].sum("year") > 0
    elif "total_catch_upper_t" in ds:
        catches = ds["total_catch_upper_t"] > 0
    else:
        return []
    catches = catches.any([d for d in catches.dims if d != "strategy"])
    return [str(s) for s in ds.strategy.values[catches.values]]


def strategy_groups(ds: xr.Dataset, reference: str = "no_releases") -> dict[str, list[str]]:
    """``{"release strategies": [...], "fishing options": [...]}`` without the reference; a group
    without strategies is left out (:func:`fishing_strategies` says which fish); with no strategy
    but the reference, that one alone."""
    fishing = fishing_strategies(ds)
    others = [str(s) for s in ds.strategy.values if str(s) != reference]
    groups = {"release strategies": [s for s in others if s not in fishing],
              "fishing options": [s for s in others if s in fishing]}
    kept = {name: members for name, members in groups.items() if members}
    return kept or {"release strategies": [reference]}


def _grid(n_rows: int, n_cols: int, size: tuple[float, float], **kwargs: Any) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=size, layout="constrained", squeeze=False, **kwargs)
    return fig, axes


def plot_gain_fan(ds: xr.Dataset, variable: str = "biomass_t", *, reference: str = "no_releases",
                  scenarios: Sequence[str] | None = None) -> Figure:
    """Gain of each strategy over ``reference``, paired by draw (``x[s, d] − x[reference, d]``):
    median and 90 % band over draws, one row of panels per scenario, release strategies and
    fishing options (:func:`strategy_groups`) in separate columns, each on its own scale."""
    scenarios = [str(s) for s in (scenarios if scenarios is not None else ds.scenario.values)]
    groups = strategy_groups(ds, reference)
    units = ds[variable].attrs.get("units", "")
    scale, unit_label = _scale(units, variable)
    gain = ds[variable] - ds[variable].sel(strategy=reference)       # paired by draw, all at once
    q = gain.sel(scenario=scenarios).quantile([BAND[0], 0.5, BAND[1]], dim="draw") / scale
    fig, axes = _grid(len(scenarios), max(len(groups), 1),
                      (5.2 * max(len(groups), 1) + 1.5, 0.6 + 3.0 * len(scenarios)), sharex=True)
    for row, scenario in enumerate(scenarios):
        for col, (group, members) in enumerate(groups.items()):
            ax = axes[row, col]
            for strategy in members:
                cell = q.sel(scenario=scenario, strategy=strategy)
                (line,) = ax.plot(cell.year, cell.sel(quantile=0.5), lw=1.8, label=strategy)
                ax.fill_between(cell.year, cell.sel(quantile=BAND[0]), cell.sel(quantile=BAND[1]),
                                color=line.get_color(), alpha=0.12)
            ax.axhline(0, color="black", lw=0.8)
            ax.set_title(f"{group}, {scenario}", fontsize=9)
            ax.set_xlabel("Year")
            ax.set_ylabel(f"{LABELS.get(variable, variable)} gain over {reference} ({unit_label})",
                          fontsize=8)
            ax.legend(fontsize=7, loc="upper left", title=f"median, {BAND_LABEL}", title_fontsize=7)
            _plain_ticks(ax)
    fig.suptitle(f"{LABELS.get(variable, variable)} gained over {reference}, paired by draw", fontsize=10)
    return fig


def plot_fan_panels(ds: xr.Dataset, variable: str = "biomass_t", *, scenarios: Sequence[str] | None = None,
                    bands: Sequence[str] | None = None) -> Figure:
    """:func:`plot_fan` for each scenario (one panel each)."""
    scenarios = [str(s) for s in (scenarios if scenarios is not None else ds.scenario.values)]
    fig, axes = _grid(len(scenarios), 1, (8.0, 0.4 + 3.4 * len(scenarios)), sharex=True)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        plot_fan(ds, variable, ax=ax, scenario=scenario, bands=bands)
    return fig


def plot_strategy_comparison(metrics: xr.Dataset, *, scenario: str | None = None,
                             scenarios: Sequence[str] | None = None, year: int | None = None) -> Figure:
    """Biomass gained over no releases (median and the metrics' interval) and release cost per strategy: one
    row per scenario (``scenario``: that one only; default every scenario), release strategies and
    fishing options (:func:`strategy_groups`) in separate panels, each on its own scale."""
    years = metrics["metric_year"].values
    year = int(year if year is not None else (2050 if 2050 in years else years[-1]))
    if scenarios is None:
        scenarios = [scenario] if scenario is not None else [str(s) for s in metrics.scenario.values]
    reference = metrics.attrs.get("reference_strategy", "no_releases")
    groups = strategy_groups(metrics, reference)
    cost_year = metrics.attrs.get("cost_year")
    through = "cost_through_cost_year_median" in metrics and cost_year is not None
    unit = metrics["cost_total_median"].attrs.get("units", "cost units")
    heights = [len(m) for m in groups.values()] or [1]
    fig = plt.figure(figsize=(12, 0.3 + len(scenarios) * (0.9 + 0.38 * sum(heights) + 0.5 * len(heights))),
                     layout="constrained")
    rows = fig.subfigures(len(scenarios), 1, squeeze=False)[:, 0] if len(scenarios) > 1 else [fig]
    for panel, name in zip(rows, scenarios, strict=True):
        cell = metrics.sel(scenario=name)
        axes = panel.subplots(len(heights), 2, squeeze=False, width_ratios=(1.6, 1.0),
                              height_ratios=heights)
        for (left, right), (group, members) in zip(axes, groups.items(), strict=True):
            _gain_bars(left, cell.sel(strategy=members), year, reference)
            left.set_title(f"{group}, {name}: gain over {reference} in {year}, paired by draw "
                           f"(median, {interval_label(metrics)})", fontsize=9)
            cost = cell["cost_through_cost_year_median" if through else "cost_total_median"].sel(
                strategy=members).values / 1e6
            right.barh(np.arange(len(members)), cost, color="tab:orange", alpha=0.7)
            right.set_yticks(np.arange(len(members)), [])
            right.set_xlabel(f"Release cost {'up to ' + str(cost_year) if through else 'over the projection'}"
                             f" (million {unit})", fontsize=8)
            right.set_title("Cost (illustrative unless user-supplied)", fontsize=9)
            _plain_ticks(right)
    return fig


def _gain_bars(ax: Axes, cell: xr.Dataset, year: int, reference: str) -> None:
    """Horizontal bars of the median gain (kt) with their intervals and their values in words."""
    names = [str(s) for s in cell.strategy.values]
    gain, lower, upper = (cell[f"biomass_gain_{k}_t"].sel(metric_year=year).values / 1e3
                          for k in ("median", "lower", "upper"))
    positions = np.arange(len(names))
    ax.barh(positions, gain, color="tab:blue", alpha=0.7)
    ax.errorbar(gain, positions, xerr=[gain - lower, upper - gain], fmt="none", color="black", capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    span = max(float(np.nanmax(np.abs(np.r_[lower, upper, 0.0]))), 1e-9)
    for y, (g, lo, hi) in enumerate(zip(gain, lower, upper, strict=True)):
        ax.text(max(hi, 0.0) + 0.02 * span, y, f"{g:+.1f} ({lo:+.1f} to {hi:+.1f})", va="center", fontsize=7)
    ax.set_xlim(min(float(np.nanmin(lower)), 0.0) - 0.05 * span,
                max(float(np.nanmax(upper)), 0.0) + 0.6 * span)
    ax.set_yticks(positions, names)
    ax.set_xlabel(f"Biomass gained over {reference} in {year} (thousand t)", fontsize=8)


def plot_ensemble_gains(metrics: xr.Dataset, *, scenario: str, year: int | None = None,
                        ax: Axes | None = None) -> Figure:
    """Biomass gained over no releases (median and the metrics' interval) per strategy, for every member of a
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
    ax.set_title(f"Gain across model structures ({scenario}; median, {interval_label(metrics)})")
    ax.legend(fontsize=8)
    return fig


def plot_ensemble_gains_panels(metrics: xr.Dataset, *, year: int | None = None) -> Figure:
    """:func:`plot_ensemble_gains` for every scenario of ``metrics`` (one panel each)."""
    scenarios = [str(s) for s in metrics.scenario.values]
    n = metrics.sizes["strategy"]
    fig, axes = _grid(len(scenarios), 1, (8.0, len(scenarios) * (0.9 + 0.45 * n)))
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        plot_ensemble_gains(metrics, scenario=scenario, year=year, ax=ax)
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
