"""Figures of issue #16, checked by what they draw (artists, labels, limits, panels) on small
made-up Datasets: no fit, no projection, well under a second each."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from carpmodel.report import figures as plots  # noqa: E402

YEARS = np.arange(2000, 2025)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit_dataset() -> xr.Dataset:
    """fit.nc's variables that plot_fit reads: B rising 1 → 100 kt, q = 0.8, surveys in 2002..2024."""
    b = np.geomspace(1e3, 1e5, YEARS.size)
    obs = np.where(np.isin(YEARS, [2002, 2012, 2015, 2019, 2020, 2024]), 0.8 * b * 1.1, np.nan)
    obs[YEARS > 2019] = np.nan          # a fit to data up to 2019: later surveys are not in fit.nc
    return xr.Dataset({"biomass_t": ("year", b), "biomass_t_lower": ("year", 0.7 * b),
                       "biomass_t_upper": ("year", 1.4 * b), "survey_biomass_t": ("year", 0.8 * b),
                       "survey_biomass_t_lower": ("year", 0.6 * b), "survey_biomass_t_upper": ("year", b),
                       "biomass_obs_t": ("year", obs), "biomass_obs_cv": ("year", np.full(YEARS.size, 0.2))},
                      coords={"year": YEARS})


def _held_out() -> xr.Dataset:
    b = np.geomspace(1e3, 1e5, YEARS.size)
    held = np.isin(YEARS, [2020, 2024])
    return xr.Dataset({"biomass_obs_t": ("year", np.where(held, 0.9 * b, np.nan)),
                       "biomass_obs_cv": ("year", np.where(held, 0.2, np.nan)),
                       "held_out": ("year", held),
                       "survey_predictive_lower": ("year", 0.5 * b),
                       "survey_predictive_upper": ("year", 1.2 * b)},
                      coords={"year": YEARS}, attrs={"last_data_year": 2019})


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_fit_figure_draws_held_out_surveys_apart_from_the_fitted_ones():
    """Old behaviour: plot_fit took no held-out surveys, so a hindcast drew nothing after 2019."""
    fig = plots.plot_fit(_fit_dataset(), held_out=_held_out())
    ax = fig.axes[0]
    assert plots.HELD_OUT_LABEL in _labels(ax) and "last data year 2019" in _labels(ax)
    held = [c.lines[0] for c in ax.containers if c.get_label() == plots.HELD_OUT_LABEL]
    fitted = [c.lines[0] for c in ax.containers if c.get_label().startswith("survey, fitted")]
    assert len(held) == 1 and len(fitted) == 1
    assert held[0].get_marker() != fitted[0].get_marker()
    np.testing.assert_array_equal(held[0].get_xdata(), [2020, 2024])
    assert all(x <= 2019 for x in fitted[0].get_xdata())
    assert "data to 2019" in ax.get_title()


def test_fit_figure_shows_absolute_biomass_with_its_interval_on_the_projection_axis():
    """Old behaviour: only the survey-scale q·B was drawn, so B jumped by 1/q at the projection."""
    ds = _fit_dataset()
    ax = plots.plot_fit(ds).axes[0]
    absolute = [line for line in ax.get_lines() if line.get_label() == "biomass B (MAP)"]
    assert len(absolute) == 1
    np.testing.assert_allclose(absolute[0].get_ydata(), ds.biomass_t.values / 1e3)
    assert "biomass B (as projected), 95 % interval" in _labels(ax)
    assert ax.get_ylabel() == "Biomass (thousand t)"            # the projection figures' label
    assert plots.HELD_OUT_LABEL not in _labels(ax)               # nothing held out: nothing drawn
