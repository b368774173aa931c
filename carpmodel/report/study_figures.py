"""Figures of the studies: the climate-sensitivity sweep and the monitoring design.

Each function draws from a study's Dataset (:func:`carpmodel.studies.sensitivity.climate_sensitivity`,
:func:`carpmodel.studies.monitoring_design.monitoring_design`), labels its axes with units from the
constants those modules expose, and returns the Figure; it never computes a model quantity and
never saves (:mod:`carpmodel.pipeline` writes). The multi-panel figures (one panel per effect or
per true survival) take ``ax=None`` for a new figure, or one Axes per panel to draw into.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from carpmodel.dims import YEAR  # noqa: E402
from carpmodel.errors import ConfigError  # noqa: E402
from carpmodel.studies.monitoring_summary import QUANTITIES  # noqa: E402
from carpmodel.studies.sensitivity import COMBINED_EFFECT, EFFECT_TITLES, WARMING_END_YEAR  # noqa: E402

__all__ = ["plot_coverage", "plot_interval_width", "plot_origin_design", "plot_sensitivity_heatmap",
           "plot_sensitivity_lines"]


def _panels(ax: Axes | Sequence[Axes] | None, n: int) -> list[Axes]:
    """The Axes given for ``n`` panels (one Axes when n is 1); ValueError when too few."""
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) < n:
        raise ValueError(f"ax: expected {n} Axes (one per panel), got {len(axes)}")
    return axes[:n]


# ----------------------------------------------------------------------------- climate sensitivity


def plot_sensitivity_lines(ds: xr.Dataset, year: int, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Biomass in ``year`` against warming by 2100: one panel per effect, one line per strength.

    Each line is the median over draws with its 90 % band (5-95 %); the strength-0 line (black,
    dashed, grey band) is the no-temperature-effect reference, the same in every panel.
    ``ax``: one Axes per effect (the figure's legend then goes below them), or None.
    """
    sel = ds.sel({YEAR: int(year)})
    effects = list(ds["effect"].values)
    n = len(effects)
    n_cols = min(n, 3)
    n_rows = math.ceil(n / n_cols)
    if ax is None:
        fig, grid = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), sharex=True,
                                 sharey=True, layout="constrained", squeeze=False)
        panels = list(grid.flat)
    else:
        panels = _panels(ax, n)
        fig, grid = panels[0].figure, None
    warming = ds["warming_c"].values
    colours = plt.get_cmap("plasma")
    positive = [s for s in ds["strength"].values if s > 0]
    for panel, effect in zip(panels, effects, strict=False):
        for strength in ds["strength"].values:
            if not bool(sel["run"].sel(effect=effect, strength=strength)):
                continue
            cell = sel.sel(effect=effect, strength=strength)
            median, lower, upper = (cell[f"biomass_{k}_t"].values / 1e3 for k in ("median", "lower", "upper"))
            if strength == 0:
                panel.fill_between(warming, lower, upper, color="0.6", alpha=0.25, lw=0)
                panel.plot(warming, median, color="black", ls="--", marker="o", ms=3, zorder=5,
                           label="strength 0: no temperature effect (reference)")
            else:
                c = colours(0.15 + 0.7 * positive.index(strength) / max(len(positive) - 1, 1))
                panel.fill_between(warming, lower, upper, color=c, alpha=0.15, lw=0)
                panel.plot(warming, median, color=c, marker="o", ms=3, label=f"strength {strength:g}")
        panel.set_title(EFFECT_TITLES.get(str(effect), str(effect)) + " alone" * (effect != COMBINED_EFFECT),
                        fontsize=10)
        panel.grid(alpha=0.3)
    legend: dict[str, Any] = {}                 # one legend for all panels: labels are shared
    for panel in panels[:n]:
        for handle, label in zip(*panel.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if grid is None:
        for panel in panels:
            panel.set_xlabel(f"Warming by {WARMING_END_YEAR} (°C)")
            panel.set_ylabel(f"Biomass in {int(year)} (thousand t)")
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4, fontsize=8)
    else:
        for panel in panels[n:]:
            panel.set_visible(False)
        if n < grid.size:                             # in the first empty panel, off the data
            spare = panels[n]
            spare.set_visible(True)
            spare.axis("off")
            spare.legend(legend.values(), legend.keys(), loc="center", fontsize=8, title="effect strength")
        else:
            fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4, fontsize=8)
        for column in range(n_cols):                 # the lowest visible panel of each column
            shown = [row for row in range(n_rows) if row * n_cols + column < n]
            if shown:
                lowest = grid[shown[-1], column]
                lowest.xaxis.set_tick_params(labelbottom=True)
                lowest.set_xlabel(f"Warming by {WARMING_END_YEAR} (°C)")
        for panel in grid[:, 0]:
            panel.set_ylabel(f"Biomass in {int(year)} (thousand t)")
    fig.suptitle(f"Biomass in {int(year)} against lake warming (median, 90 % band; "
                 f"{ds.attrs.get('n_draws', '?')} draws, strategy {ds.attrs.get('strategy', '?')}); "
                 "all effects assumed", fontsize=10)
    return fig


def plot_sensitivity_heatmap(ds: xr.Dataset, year: int, effect: str, *, ax: Axes | None = None) -> Figure:
    """Warming × strength for one effect; colour = median change in biomass in ``year`` relative
    to the no-temperature-effect reference (paired by draw), in %; the strength-0 row is the
    reference (0 %). Cells are annotated with their value; the colour bar sits beside ``ax``."""
    if effect not in ds["effect"].values:
        raise ConfigError(f"effect: expected one of {', '.join(map(str, ds['effect'].values))}, "
                          f"got {effect!r}")
    sel = ds.sel({YEAR: int(year), "effect": effect})
    strengths = [s for s in ds["strength"].values if bool(sel["run"].sel(strength=s))]
    change = sel["relative_change_median"].sel(strength=strengths).transpose("strength", "warming_c")
    values = 100.0 * change.values
    warming = ds["warming_c"].values
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * warming.size + 2.5, 0.7 * len(strengths) + 1.8),
                               layout="constrained")
    else:
        fig = ax.figure
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
    ax.set_title(f"{EFFECT_TITLES.get(effect, effect)}: biomass in {int(year)} vs no-temperature-effect "
                 f"reference\n(reference median {reference:,.1f} thousand t; effects assumed)", fontsize=9)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(f"Median change in biomass in {int(year)} vs reference (%)")
    return fig


# ----------------------------------------------------------------------------- monitoring design


def _survival_panels(ds: xr.Dataset, ax: Axes | Sequence[Axes] | None,
                     height: float) -> tuple[Figure, list[Axes]]:
    survivals = ds.true_survival.values
    if ax is None:                      # one panel still leaves room for the title and labels
        fig, axes = plt.subplots(1, len(survivals), figsize=(max(3.6 * len(survivals), 6.4), height),
                                 layout="constrained", sharey=True, squeeze=False)
        return fig, list(axes[0])
    panels = _panels(ax, len(survivals))
    return panels[0].figure, panels


def _fish_ticks(panel: Axes, positions: Any, fish: Any) -> None:
    """Log x axis labelled at the fish numbers drawn (no minor labels, which crowd a short axis)."""
    positions = np.asarray(positions, float)
    panel.set_xscale("log")
    # explicit limits: a panel whose values are all missing (every refit failed) would otherwise
    # autoscale to [0, 1], which a log axis cannot draw
    panel.set_xlim(positions.min() / 1.5, positions.max() * 1.5)
    panel.set_xticks(positions, [f"{int(f)}" for f in fish])
    panel.xaxis.set_minor_formatter(NullFormatter())


def plot_interval_width(ds: xr.Dataset, quantity: str = "release_survival", *,
                        ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Median width of the 95 % interval against fish examined per year: one line per number of
    years sampled, one panel per true survival (``ax``: one Axes each, or None); dashed, the
    biomass record alone."""
    units, long_name = QUANTITIES[quantity]
    fig, panels = _survival_panels(ds, ax, 3.6)
    fish = ds.fish_per_year.values
    positive = fish[fish > 0]
    scale, unit_label = (1e3, "thousand t") if units == "t" else (1.0, "proportion")
    for panel, s in zip(panels, ds.true_survival.values, strict=True):
        cell = ds.sel(true_survival=s)
        for k in ds.years_of_sampling.values:
            width = cell[f"{quantity}_width_median"].sel(years_of_sampling=k, fish_per_year=positive) / scale
            panel.plot(positive, width, "o-", label=f"{int(k)} year{'s' if k > 1 else ''} sampled")
        base = float(cell[f"{quantity}_width_median"].sel(fish_per_year=0).isel(years_of_sampling=0)) / scale
        panel.axhline(base, color="black", ls="--", lw=1, label="biomass record only")
        _fish_ticks(panel, positive, positive)
        panel.set_ylim(bottom=0.0)
        panel.set_title(f"true release survival {s:g}", fontsize=10)
        panel.set_xlabel("Fish examined per year (fish/yr)")
    panels[0].set_ylabel(f"Width of 95 % interval of\n{quantity.replace('_', ' ')} ({unit_label})")
    panels[0].legend(fontsize=8)
    fig.suptitle(f"Interval width of {long_name} by monitoring design", fontsize=11)
    return fig


def plot_coverage(ds: xr.Dataset, quantity: str = "release_survival", floor: float = 0.9, *,
                  ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Coverage of the truth by the 95 % interval (±2 Monte Carlo SE) against fish per year, one
    panel per true survival (``ax``: one Axes each, or None); ``floor`` drawn dashed."""
    _, long_name = QUANTITIES[quantity]
    fig, panels = _survival_panels(ds, ax, 3.4)
    fish = ds.fish_per_year.values
    for panel, s in zip(panels, ds.true_survival.values, strict=True):
        cell = ds.sel(true_survival=s)
        for j, k in enumerate(ds.years_of_sampling.values):
            c = cell.sel(years_of_sampling=k)
            x = np.where(fish > 0, fish, 20.0) * (1 + 0.06 * (j - 1))
            panel.errorbar(x, c[f"{quantity}_coverage"], yerr=2 * c[f"{quantity}_coverage_mc_se"], fmt="o-",
                           capsize=2, label=f"{int(k)} year{'s' if k > 1 else ''} sampled")
        panel.axhline(0.95, color="black", lw=1, label="nominal 0.95")
        panel.axhline(floor, color="grey", ls="--", lw=1, label=f"floor {floor:g}")
        _fish_ticks(panel, np.where(fish > 0, fish, 20.0), fish)
        panel.set_ylim(0.0, 1.05)
        panel.set_title(f"true release survival {s:g}", fontsize=10)
        panel.set_xlabel("Fish examined per year (fish/yr; 0 drawn at 20)")
    panels[0].set_ylabel("Coverage of the truth (proportion)")
    panels[0].legend(fontsize=7)
    fig.suptitle(f"Coverage of the 95 % interval of {long_name}", fontsize=11)
    return fig


# ----------------------------------------------------------------------------- origin-sample design

#: line style of the CV curves by what is held known (carpmodel.studies.origin_design)
_HELD_STYLE = {"none": ("-", "all estimated"), "m_ref": ("--", "M_ref known"),
               "m_ref_and_survey_q": (":", "M_ref and survey q known")}


def plot_origin_design(ds: xr.Dataset, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Power curves of the origin-sample design against fish examined per year: one row per gear,
    one column per question — (i) power to tell the two hatchery shares, (ii) CV of release
    survival (line style: what is held known; grey line the target), (iii) power to tell c = 0
    from c = 1 — one colour per number of years sampled. ``ax``: 3 Axes per gear (row-major)."""
    gears = [str(g) for g in ds["gear"].values]
    if ax is None:
        fig, grid = plt.subplots(len(gears), 3, figsize=(12.6, 3.2 * len(gears)), sharex=True,
                                 layout="constrained", squeeze=False)
        panels = list(grid.ravel())
    else:
        panels = _panels(ax, 3 * len(gears))
        fig = panels[0].figure
    fish = ds["fish_per_year"].values
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    power, cv = float(ds.attrs["target_power"]), float(ds.attrs["target_cv"])
    low, high = float(ds.attrs["low_share"]), float(ds.attrs["high_share"])
    for row, gear in enumerate(gears):
        share_ax, cv_ax, c_ax = panels[3 * row:3 * row + 3]
        cell = ds.sel(gear=gear)
        for j, k in enumerate(ds["years_sampled"].values):
            colour = colours[j % len(colours)]
            label = f"{int(k)} year{'s' if k > 1 else ''} sampled"
            share_ax.plot(fish, cell["power_share"].sel(years_sampled=k), "o-", color=colour, label=label)
            c_ax.plot(fish, cell["power_lorenzen"].sel(years_sampled=k), "o-", color=colour, label=label)
            for held in ds["held_known"].values:
                style, text = _HELD_STYLE.get(str(held), ("-.", str(held)))
                cv_ax.plot(fish, cell["release_survival_cv"].sel(years_sampled=k, held_known=held), style,
                           color=colour, label=text if j == 0 else None)
        for panel in (share_ax, c_ax):
            panel.axhline(power, color="grey", lw=1)
            panel.set_ylim(0.0, 1.02)
            panel.set_ylabel("Power (probability)")
        cv_ax.axhline(cv, color="grey", lw=1)
        cv_ax.set_ylim(bottom=0.0)
        cv_ax.set_ylabel("CV of release survival (proportion)")
        share_ax.set_title(f"{gear}: (i) {low:.0%} vs {high:.0%} hatchery share", fontsize=10)
        cv_ax.set_title(f"{gear}: (ii) release survival, target CV {cv:g}", fontsize=10)
        c_ax.set_title(f"{gear}: (iii) Lorenzen c = 0 vs c = 1", fontsize=10)
        for panel in (share_ax, cv_ax, c_ax):
            _fish_ticks(panel, fish, fish)
            if row == len(gears) - 1:
                panel.set_xlabel("Fish examined per year (fish/yr)")
    panels[0].legend(fontsize=7, title="colour", title_fontsize=7)
    panels[1].legend(fontsize=7, title="line style", title_fontsize=7)
    fig.suptitle("Origin-sample design with marked releases: power and CV by fish, gear and years sampled",
                 fontsize=11)
    return fig
