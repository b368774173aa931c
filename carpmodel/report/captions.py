"""What each figure shows: the scenario and the strategies whose bands the projection figures
draw, and the one-line caption of every figure the report can show.

:data:`CAPTIONS` is the one captions table; the parts that depend on a run's settings (years,
peels, scenario, bands) are ``{fields}`` that :func:`figure_captions` fills in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: one-line captions of the figures the report can show, in report order; ``{fields}`` are the
#: run's settings (:func:`figure_captions`)
CAPTIONS: dict[str, str] = {
    "fit": "Survey biomass (dots, 95 % bars from the assumed CVs), the fitted biomass on the survey's "
           "scale q·B and the model's absolute biomass B (dashed: the quantity the projections show), "
           "each with its 95 % posterior interval, in thousand t; in a hindcast the surveys after the "
           "last data year are open diamonds (held out, not fitted) with the 95 % predictive interval "
           "of a survey.",
    "recruitment": "Wild age-0 recruits (fish, log scale) with their 95 % posterior interval.",
    "depletion": "Biomass relative to unfished (B/B0) with its 95 % posterior interval; dashed "
                 "line 0.2·B0.",
    "prior_posterior": "Prior (line) and posterior (histogram) of each estimated parameter; a "
                       "posterior/prior SD ratio near 1 means the data are silent about it.",
    "residuals": "Standardised log residuals of the biomass observations by year; the runs test "
                 "checks for non-random sign patterns, SDNR ≈ 1 if the assumed CVs are right.",
    "retrospective": "Fitted biomass (thousand t) from the full fit and with the last {peels_removed} of "
                     "data removed (peels); Mohn's ρ measures the systematic revision.",
    "profile": "Likelihood profile over unfished biomass B0 (thousand t), by data component: how "
               "much each source of information pulls on the stock's scale.",
    "attribution": "Shares of the explained {first_year}→{last_year} biomass increase due to the fishing "
                   "ban, the releases and recruitment variation (Shapley decomposition; median, 90 % "
                   "interval).",
    "projection_scenarios": "Biomass (thousand t) under status-quo releases in each climate scenario: "
                            "medians over posterior draws{scenario_bands} (temperature effects are "
                            "assumed).",
    "projection_fan": "Biomass gained over no releases (thousand t), paired by draw: median and 90 % band "
                      "of each strategy, one row of panels per scenario ({scenarios}); release "
                      "strategies and fishing options in separate panels, each on its own scale.",
    "strategy_comparison": "Biomass gained over no releases in {year} (thousand t, median and 90 % interval, "
                           "paired by draw) and release cost{cost_years} per strategy, for each scenario "
                           "({scenarios}); release strategies and fishing options in separate panels, each "
                           "on its own scale; costs are illustrative.",
    "hatchery_fraction": "Hatchery-origin share of the spawning stock (%) under each release strategy, one "
                         "panel per scenario ({scenarios}): medians, and the 90 % band of {hatchery_bands}.",
    "sensitivity_lines": "Biomass in 2100 (thousand t) against warming by 2100 (°C), one panel per "
                         "temperature effect, one line per effect strength (0 = no-effect "
                         "reference); median and 90 % band.",
    "sensitivity_heatmap": "Median change in biomass in 2100 (%) relative to the no-effect reference for "
                           "the {heatmap_effect} effect, by warming by 2100 (°C) and effect strength.",
}


def figure_scenario(scenarios: Sequence[str]) -> str:
    """The scenario the report's headline findings use: ``ssp245`` if projected, else the first
    (the figures and the strategy tables show every scenario)."""
    return "ssp245" if "ssp245" in scenarios else scenarios[0]


def band_strategies(strategies: Sequence[str], variable: str) -> list[str] | None:
    """Strategies whose 90 % band a projection figure draws: all of up to three (None); of more,
    only one (the bands of strategies sharing the draws cover each other): for biomass the
    reference no_releases, for hatchery shares status_quo (no_releases has none); else the first."""
    if len(strategies) <= 3:
        return None
    preferred = "status_quo" if variable.startswith("hatchery") else "no_releases"
    return [preferred if preferred in strategies else strategies[0]]


def figure_captions(*, strategies: Sequence[str], scenarios: Sequence[str], scenario: str,
                    year: int | None, cost_year: int | None, n_peels: int | None, first_year: Any,
                    last_year: Any, heatmap_effect: str) -> dict[str, str]:
    """:data:`CAPTIONS` with a run's settings filled in: the projection's ``strategies`` and
    ``scenarios``, the figures' ``scenario``, the metric ``year`` and ``cost_year``, the
    retrospective's ``n_peels``, the attribution's years and the heat map's effect."""

    def bands(variable: str) -> str:
        chosen = band_strategies(strategies, variable)
        return "every strategy" if chosen is None else " and ".join(chosen)

    values = {
        "peels_removed": "years" if n_peels is None else "year" if n_peels == 1 else f"1–{n_peels} years",
        "first_year": first_year, "last_year": last_year, "scenario": scenario, "year": year,
        "scenarios": ", ".join(scenarios),
        "scenario_bands": (f", 90 % bands of {scenarios[0]} and {scenarios[-1]}" if len(scenarios) > 2
                           else ", 90 % bands"),
        "biomass_bands": bands("biomass_t"), "hatchery_bands": bands("hatchery_fraction_ssb"),
        "cost_years": f" up to {cost_year}" if cost_year else "", "heatmap_effect": heatmap_effect,
    }
    return {name: text.format_map(values) for name, text in CAPTIONS.items()}
