"""Figures of the studies (carpmodel.report.study_figures): labels, legends, and drawing into
given Axes. The sensitivity figures draw a small sweep of the bundled default fit (16 draws,
~2 s); the monitoring figures a synthetic summary Dataset (their labels on a real design study
are checked in test_monitoring_design.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from carpmodel.report.study_figures import (
    plot_coverage,
    plot_interval_width,
    plot_sensitivity_heatmap,
    plot_sensitivity_lines,
)
from carpmodel.studies.sensitivity import climate_sensitivity


@pytest.fixture(scope="module")
def sweep(bundled_fit, bundled_data):
    return climate_sensitivity(bundled_fit, bundled_data, n_draws=16, seed=11)


def test_figures_label_their_axes_and_show_the_reference(sweep):
    fig = plot_sensitivity_lines(sweep, 2100)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(axes) == sweep.sizes["effect"]
    assert {ax.get_xlabel() for ax in axes} >= {"Warming by 2100 (°C)"}
    assert any(ax.get_ylabel() == "Biomass in 2100 (thousand t)" for ax in axes)
    # one shared legend (in the spare panel, off the data) names the reference and every strength
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + fig.legends
    assert len(legends) == 1 and all(ax.get_legend() is None for ax in axes)
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert any("reference" in t for t in texts)
    strengths = {f"strength {s:g}" for s in sweep["strength"].values if s > 0}
    assert strengths <= set(texts)
    plt.close(fig)
    fig = plot_sensitivity_heatmap(sweep, 2050, "recruitment")
    main, bar = fig.axes
    assert "%" in bar.get_ylabel() and "reference" in bar.get_ylabel()
    assert main.get_xlabel() == "Warming by 2100 (°C)"
    assert any("reference" in t.get_text() for t in main.get_yticklabels())
    plt.close(fig)


def test_sensitivity_figures_draw_into_given_axes(sweep):
    # one Axes per effect: the lines go there (no new figure), with one figure legend
    n = sweep.sizes["effect"]
    fig, axes = plt.subplots(1, n + 1)
    assert plot_sensitivity_lines(sweep, 2050, ax=axes[:n]) is fig
    assert all(len(ax.get_lines()) >= 2 for ax in axes[:n]) and not axes[n].get_lines()
    assert len(fig.legends) == 1 and axes[0].get_xlabel() == "Warming by 2100 (°C)"
    with pytest.raises(ValueError, match="one per panel"):
        plot_sensitivity_lines(sweep, 2050, ax=axes[:2])
    plt.close(fig)
    fig, ax = plt.subplots()
    assert plot_sensitivity_heatmap(sweep, 2100, "growth", ax=ax) is fig
    assert ax.collections and len(fig.axes) == 2          # the mesh, and its colour bar beside it
    plt.close(fig)


def _design_summary() -> xr.Dataset:
    """The summary variables the monitoring figures read, for 2 true survivals × 3 × 2 designs."""
    coords = {"true_survival": [0.3, 0.6], "fish_per_year": [0, 200, 1000], "years_of_sampling": [1, 5]}
    shape = (2, 3, 2)
    ds = xr.Dataset(coords=coords)
    for q in ("release_survival", "release_contribution"):
        ds[f"{q}_width_median"] = (tuple(coords), np.linspace(0.5, 0.1, 12).reshape(shape))
        ds[f"{q}_coverage"] = (tuple(coords), np.full(shape, 0.9))
        ds[f"{q}_coverage_mc_se"] = (tuple(coords), np.full(shape, 0.05))
    return ds


def test_monitoring_figures_draw_one_panel_per_true_survival():
    ds = _design_summary()
    for plot in (plot_interval_width, plot_coverage):
        fig = plot(ds)
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        assert "(fish/yr" in fig.axes[0].get_xlabel() and "(" in fig.axes[0].get_ylabel()
        plt.close(fig)
        fig, axes = plt.subplots(1, 2)
        assert plot(ds, ax=axes) is fig
        # interval width: a line per years sampled plus the biomass-only reference; coverage:
        # the nominal and floor lines plus an error-bar line per years sampled
        assert all(len(ax.get_lines()) >= 3 for ax in axes)
        plt.close(fig)
