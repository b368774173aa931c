"""The HTML report: numbers as printed, statements in words, tables and the page from the one
template, with every name from a user escaped."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from carpmodel.io.config import default_config
from carpmodel.report.captions import CAPTIONS, figure_captions
from carpmodel.report.formatting import binomial_interval, interval, pct, sig
from carpmodel.report.html import report_html
from carpmodel.report.statements import changes_since_0_1, limitations
from carpmodel.report.tables import strategy_table


def _summary(**changes):
    """A fit.json-like summary in which every check passes (changed by ``changes``)."""
    summary = {
        "posterior": {"prior_posterior": [
            {"parameter": "dd_strength", "sd_ratio": 0.1, "verdict": "informed by data"},
            {"parameter": "steepness", "sd_ratio": 0.6, "verdict": "weakly informed"}]},
        "diagnostics": {
            "residuals": {"sd": 1.0, "runs_test": {"p_value": 0.4, "passed": True, "n_runs": 7,
                                                   "n_positive": 6, "n_negative": 6},
                          "table": {"coords": {"year": {"data": [2002, 2012, 2014, 2015]}},
                                    "data_vars": {"standardised_residual": {"data": [-1, 1, -1, 1]}}}},
            "self_test_table": [{"quantity": "unfished_biomass_t", "coverage": 0.95, "n_used": 200}]},
        "posterior_predictive": {"mean_length_cm": {"year": 2024, "reported": 27.64, "unit": "cm",
                                                    "median": 27.0, "lower_95": 25.0, "upper_95": 29.0,
                                                    "reported_inside_95": True}},
    }
    for key, value in changes.items():
        summary[key] = value
    return summary


def test_limitations_say_what_fails_and_stay_quiet_when_nothing_does():
    quiet = limitations(_summary(), recruits_ratio=3.0, recruits_year=2024)
    # the parameters and the self-test (190/200 covered, consistent with 95 %) and nothing else
    assert len(quiet) == 2 and "Data silent" not in quiet[0]
    assert "190/200" in quiet[1] and "differs" not in quiet[1] and "gross" not in quiet[1]
    failing = _summary(
        posterior={"prior_posterior": [{"parameter": "release_survival", "sd_ratio": 0.97}]},
        diagnostics={
            "residuals": {"sd": 0.29, "runs_test": {"p_value": 0.0077, "passed": False, "n_runs": 2},
                          "table": {"coords": {"year": {"data": [2002, 2012, 2015, 2024]}},
                                    "data_vars": {"standardised_residual": {
                                        "data": [-0.6, -0.3, 0.3, 0.1]}}}},
            "self_test_table": [{"quantity": "unfished_biomass_t", "coverage": 1.0, "n_used": 20}]},
        posterior_predictive={"mean_length_cm": {"year": 2024, "reported": 27.64, "unit": "cm",
                                                 "median": 16.7, "lower_95": 12.0, "upper_95": 23.5,
                                                 "reported_inside_95": False}})
    text = " ".join(limitations(failing, recruits_ratio=6200.0, recruits_year=2024))
    assert "<code>release_survival</code> (0.97)" in text and "Data silent" in text
    # residual runs in words: model above the surveys while residuals are negative, then below
    assert "above the surveys in 2002–2012" in text and "below the surveys in 2015–2024" in text
    assert "SD of standardised residuals 0.29" in text
    # 20/20 covered: the exact 95 % binomial lower bound is 83.2 %, so "83 %" is printed
    assert "20/20" in text and "83 % to 100 %" in text
    assert "mean length of survey-age fish in 2024 was reported as 27.6 cm" in text
    assert "factor of 6,200" in text


def test_what_changed_since_0_1_quotes_this_run_beside_0_1():
    assert changes_since_0_1(_summary()) == []          # a run without attribution says nothing
    attribution = [{"quantity": "share_ban", "median": 1.02, "lower_90": 0.9, "upper_90": 1.2},
                   {"quantity": "share_releases", "median": 0.015, "lower_90": 0.004, "upper_90": 0.036}]
    derived = {"recruits_per_egg_max": {"median": 0.0061, "upper_95": 0.046}}
    error = {"sigma_survey": 0.065, "rho": 0.95, "sdnr": 1.05}
    [text] = changes_since_0_1(_summary(attribution=attribution, derived=derived, survey_error=error))
    assert "5.3 recruits per egg in 2000" in text and "~100 %" in text         # what 0.1.0 said
    assert "largest recruits per egg 0.0061, 95 % upper bound 0.046" in text   # this run
    assert "survey's SD is estimated (0.065, AR(1) ρ 0.95; one-step-ahead SDNR 1.05)" in text
    assert "The ban's share is 100 % (90 % to 120 %)" in text and "still explains most" in text
    attribution[0]["median"] = 0.4
    [text] = changes_since_0_1(_summary(attribution=attribution, derived=derived, survey_error=error))
    assert "no longer explains most" in text


def test_numbers_have_three_significant_figures_and_shares_are_percent():
    assert [sig(x) for x in (214005.85, 0.0559, 909967847.0, 0.99996, -77432.0)] == \
        ["214,000", "0.0559", "910,000,000", "1.00", "−77,400"]
    assert sig(None) == sig(float("nan")) == "–"
    assert [pct(x) for x in (1.0043, 0.00903, -0.0155)] == ["100 %", "0.9 %", "−1.6 %"]
    assert interval(67851.0, 209031.0, 1e3) == "67.9 to 209"
    # Clopper–Pearson: 20/20 gives (0.05/2)^(1/20) = 0.8316 as the lower bound
    lower, upper = binomial_interval(20, 20)
    assert lower == pytest.approx(0.025 ** (1 / 20), rel=1e-9) and upper == 1.0


def test_binomial_interval_is_the_clopper_pearson_interval_written_by_hand():
    """statsmodels' beta interval against the exact Clopper–Pearson formula (beta quantiles; 0 and 1
    at the ends); the two differ only in the last bits (isf against ppf), hence rel=1e-12."""

    def by_hand(k, n, level=0.95):
        alpha = 1.0 - level
        lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
        upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
        return lower, upper

    for n in (1, 2, 5, 20, 37, 200):
        for k in range(n + 1):
            for level in (0.9, 0.95):
                assert binomial_interval(k, n, level) == pytest.approx(by_hand(k, n, level), rel=1e-12, abs=0)
    assert all(np.isnan(binomial_interval(0, 0)))


def test_a_check_of_a_quantity_reported_in_several_years_keeps_its_label():
    miss = {"year": 2020, "reported": 4e8, "unit": "fish", "median": 1e8, "lower_95": 0.5e8,
            "upper_95": 2e8, "reported_inside_95": False}
    text = " ".join(limitations(_summary(posterior_predictive={"numbers_fish_2020": miss})))
    assert "number of survey-age fish in 2020 was reported as 400 million fish" in text


HOSTILE = "<script>alert('x')</script> & co"


def _page(strategy: str, scenario: str) -> str:
    """The whole page on a small made-up run whose strategy and scenario names are ``strategy`` and
    ``scenario``, with one figure per caption."""
    import matplotlib.pyplot as plt

    summary = _summary()
    summary.update(converged=True, max_abs_gradient=1.2e-5, worst_gradient_parameter="steepness",
                   hessian_positive_definite=True, nll=12.3456, n_observations=12, n_fixed_effects=7,
                   n_parameters=30, warnings=[f"a warning about {strategy}"],
                   attribution_setup={"first_year": 2002, "last_year": 2024, "ban_year": 2001, "n_draws": 50})
    config = default_config()
    config = replace(config, projection=replace(config.projection, scenarios=(scenario,)))
    fit_dataset = xr.Dataset(coords={"year": [2023, 2024]}, attrs={"data_sha256": "abc"})
    strategies = ["no_releases", strategy]
    projection = xr.Dataset(coords={"strategy": strategies, "scenario": [scenario]})
    rows = [{"strategy": name, "scenario": scenario, "description": f"what {name} does",
             "biomass_median_t_2050": 1e5 + i, "biomass_gain_median_t_2050": 10.0 * i,
             "biomass_gain_lower_t_2050": 1.0, "biomass_gain_upper_t_2050": 20.0,
             "biomass_lower_t_2050": 9e4, "biomass_upper_t_2050": 1.1e5} for i, name in enumerate(strategies)]
    figure, _ = plt.subplots(figsize=(1, 1))
    figures = dict.fromkeys(CAPTIONS, figure)
    sensitivity = xr.Dataset(attrs={"strategy": strategy})
    try:
        return report_html(summary, fit_dataset, projection, xr.Dataset(attrs={"cost_year": 2050}), rows,
                           config, figures=figures, sensitivity=sensitivity, timings={"fit": 1.25})
    finally:
        plt.close(figure)


def test_the_page_escapes_user_names_everywhere_they_appear():
    page = _page(HOSTILE, HOSTILE)
    assert "<script>" not in page and "alert(" in page
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"
    # heading, findings, strategy table and descriptions, captions, warnings, sensitivity text
    anchor = "release-strategies---script-alert--x----script----co"
    assert f"<h2 id='{anchor}'>Release strategies ({escaped})</h2>" in page
    assert f"<a href='#{anchor}'>Release strategies ({escaped})</a>" in page
    assert f"(<code>{escaped}</code>; 90 %" in page
    assert f"<td class='text'><code>{escaped}</code></td>" in page
    assert f"<li><code>{escaped}</code>: what {escaped} does</li>" in page
    assert f"one panel per scenario ({escaped}): medians" in page
    assert f"<p class='note'>a warning about {escaped}</p>" in page
    assert f"strategy {escaped}, " in page


def test_the_page_has_every_section_figure_and_table():
    page = _page("status_quo", "ssp245")
    headings = re.findall(r"<h2 id='([a-z0-9-]+)'>", page)
    assert headings == ["the-fitted-model", "diagnostics", "what-explains-the-recovery",
                        "projections-under-climate-scenarios", "release-strategies--ssp245",
                        "climate-sensitivity", "run"]
    assert re.findall(r"<a href='#([a-z0-9-]+)'>", page) == headings
    figures = re.findall(r"<figure id='fig-([a-z_]+)'>.*?<figcaption>(.*?)</figcaption></figure>", page)
    assert sorted(name for name, _ in figures) == sorted(CAPTIONS)
    assert page.count("data:image/png;base64,") == len(CAPTIONS)
    assert page.count("<table>") == 5          # parameters, diagnostics, attribution, strategies, timings
    assert "<td class='text'>fit</td><td>1.2</td>" in page          # f"{1.25:.1f}": round half to even
    assert "Converged: <b>True</b>; largest |gradient| 1.2e-05 (steepness)" in page
    assert "NLL 12.346; 12 biomass observations, 7 estimated parameters plus 23 recruitment deviations" \
        in page


def test_one_captions_table_with_the_run_settings_filled_in():
    captions = figure_captions(strategies=["a", "b", "c", "no_releases"], scenarios=["x", "y", "z"],
                               scenario="y", year=2050, cost_year=2040, n_peels=3, first_year=2002,
                               last_year=2024, heatmap_effect="growth")
    assert set(captions) == set(CAPTIONS)
    assert "with the last 1–3 years of data removed" in captions["retrospective"]
    assert "90 % bands of x and z" in captions["projection_scenarios"]
    # every scenario drawn (#16): the projection figures name all three
    assert "one row of panels per scenario (x, y, z)" in captions["projection_fan"]
    assert "for each scenario (x, y, z)" in captions["strategy_comparison"]
    assert "one panel per scenario (x, y, z)" in captions["hatchery_fraction"]
    assert "90 % band of a." in captions["hatchery_fraction"]          # no status_quo: the first
    assert "release cost up to 2040 per strategy" in captions["strategy_comparison"]
    assert "for the growth effect" in captions["sensitivity_heatmap"]
    assert "2002→2024" in captions["attribution"]
    assert all("{" not in text for text in captions.values())


def test_no_strategy_metrics_says_so():
    assert strategy_table([], "ssp245") == "<p>No strategy metrics.</p>"


def test_first_finding_is_the_hatchery_contribution_as_a_range_with_the_prior_part():
    # issue #14: the first box opens with a range and the prior's part, never a single point
    from carpmodel.report.statements import findings

    headline = {"range": [0.006, 0.081], "release_survival_sd_ratio": 0.95, "prior_part": 0.61,
                "members": {"n_members": 4}}
    out = findings(_summary(hatchery_contribution=headline), [], "baseline", None, 2002, 2024)
    first = str(out[0])
    assert "Hatchery contribution 2002→2024: 0.6 % to 8.1 %</b>" in first
    assert "4 structural members" in first and "0.95 of its prior SD" in first
    assert "about 61 % of the share's spread is prior (structure and release survival)" in first
    alone = str(findings(_summary(hatchery_contribution={**headline, "members": None}), [], "baseline",
                         None, 2002, 2024)[0])
    assert "posterior 90 % interval of this structure" in alone and "a lower bound" in alone


def test_the_first_box_says_which_recommendations_survive_the_structures():
    # issue #14: with ensemble rows, robust and non-robust winners are named with their member win
    # fraction and pooled P(beats status quo); with one structure, robustness is "not assessed"
    from carpmodel.report.statements import robustness_statement

    rows = [{"strategy": "no_releases", "scenario": "ssp245", "biomass_gain_median_t_2050": 0.0,
             "p_beats_status_quo_2050": 0.3},
            {"strategy": "status_quo", "scenario": "ssp245", "biomass_gain_median_t_2050": 900.0,
             "p_beats_status_quo_2050": float("nan")},
            {"strategy": "age2_large", "scenario": "ssp245", "biomass_gain_median_t_2050": 1500.0,
             "p_beats_status_quo_2050": 0.72}]
    one = str(robustness_statement(rows, "ssp245", 2050))
    assert "<code>age2_large</code> beats the status quo in 72 % of the draws" in one
    assert "not assessed" in one
    pooled = [{"strategy": "age2_large", "scenario": "ssp245", "structure": "pooled",
               "member_win_fraction_2050": 0.5, "robust_across_structures_2050": False,
               "p_beats_status_quo_2050": 0.6},
              {"strategy": "status_quo", "scenario": "ssp245", "structure": "pooled",
               "member_win_fraction_2050": 0.5, "robust_across_structures_2050": False,
               "p_beats_status_quo_2050": float("nan")}]
    none = str(robustness_statement(rows, "ssp245", 2050, pooled))
    assert "No strategy is the best in at least 80 %" in none
    assert "Not robust: <code>age2_large</code> (best in only 50 % of the structures" in none
    pooled[0].update(member_win_fraction_2050=0.8, robust_across_structures_2050=True)
    pooled[1].update(member_win_fraction_2050=0.2)
    some = str(robustness_statement(rows, "ssp245", 2050, pooled))
    assert "of the model structures): <code>age2_large</code> (best in 80 %" in some
    assert "beats the status quo in 60 % of the pooled draws" in some
    assert "Not robust: <code>status_quo</code>" in some


def test_the_page_shows_the_hindcast_skill_line_and_the_interval_method():
    """Old behaviour: the skill was only in fit.json and the report never said how intervals were made."""
    line = "hindcast from 2019: 5 held-out survey(s), MASE against persistence 0.80 (below 1: better " \
           "than repeating the last survey), 4 of 5 inside the 95 % predictive interval"
    summary = _summary(hindcast_held_out={"skill_line": line})
    summary.update(converged=True, max_abs_gradient=1e-5, worst_gradient_parameter="x",
                   hessian_positive_definite=True, nll=1.0, n_observations=7, n_fixed_effects=4,
                   n_parameters=20)
    method = "2.5 and 97.5 % quantiles over 2000 posterior draws of theta by SIR"
    fit = xr.Dataset(coords={"year": [2023, 2024]}, attrs={"data_sha256": "abc", "interval_method": method})
    rows = [{"strategy": "no_releases", "scenario": "ssp245", "biomass_median_t_2050": 1e5}]
    page = report_html(summary, fit, xr.Dataset(coords={"strategy": ["no_releases"], "scenario": ["ssp245"]}),
                       xr.Dataset(attrs={"cost_year": 2050}), rows, default_config(), figures={})
    assert f"<b>Hindcast skill:</b> {line}." in page
    assert f"and hindcast.nc): {method}." in page
    assert "Hindcast skill" not in _page("status_quo", "ssp245")


def test_the_page_has_a_strategy_table_for_every_projected_scenario():
    """Old behaviour: only ssp245 (a scenario fixed in code) had a strategy table."""
    rows = [{"strategy": name, "scenario": scenario, "biomass_median_t_2050": 1e5,
             "biomass_gain_median_t_2050": 1.0, "biomass_gain_lower_t_2050": 0.5,
             "biomass_gain_upper_t_2050": 2.0, "biomass_lower_t_2050": 9e4, "biomass_upper_t_2050": 1.1e5}
            for scenario in ("ssp245", "ssp585") for name in ("no_releases", "status_quo")]
    projection = xr.Dataset(coords={"strategy": ["no_releases", "status_quo"],
                                    "scenario": ["ssp245", "ssp585"]})
    config = default_config()
    config = replace(config, projection=replace(config.projection, scenarios=("ssp245", "ssp585")))
    summary = _summary()
    summary.update(converged=True, max_abs_gradient=1e-5, worst_gradient_parameter="x",
                   hessian_positive_definite=True, nll=1.0, n_observations=7, n_fixed_effects=4,
                   n_parameters=20)
    page = report_html(summary, xr.Dataset(coords={"year": [2024]}), projection,
                       xr.Dataset(attrs={"cost_year": 2050}), rows, config, figures={})
    assert "<h3>ssp245</h3>" in page and "<h3>ssp585</h3>" in page
    assert "Release strategies (ssp245, ssp585)</h2>" in page


def test_strategy_table_leads_with_gain_per_cost_and_shows_static_then_dynamic_risk():
    """Old behaviour: only the dynamic risk (0 % for every strategy, even reopening the fishery),
    the density-dependence-window column, and fish released over other years than the cost."""
    rows = [{"strategy": name, "scenario": "ssp245", "biomass_median_t_2050": 1e5,
             "biomass_gain_median_t_2050": gain, "biomass_gain_lower_t_2050": gain - 1,
             "biomass_gain_upper_t_2050": gain + 1, "biomass_lower_t_2050": 9e4,
             "biomass_upper_t_2050": 1.1e5,
             "biomass_gain_per_million_cost_t": per_cost, "released_fish_total_median": 1.5e9,
             "released_fish_through_cost_year_median": 5.2e8, "cost_through_cost_year_median": 5.2e8,
             "added_window_survivors_per_million_released_median": 1234.0,
             "p_ssb_below_limit_static_any": static, "p_ssb_below_limit_dynamic_any": 0.0}
            for name, gain, per_cost, static in (("no_releases", 0.0, None, 0.5),
                                                 ("reopen_fishing", -8e4, -153.8, 0.97))]
    html = str(strategy_table(rows, "ssp245", cost_year=2050, cost_unit="yuan"))
    headers = re.findall(r"<th[^>]*>(.*?)</th>", html)
    assert headers[1] == "gain in 2050 per million yuan spent up to 2050, t"
    static = headers.index("P(SSB &lt; 0.2·SSB0 in any year), static SSB0")
    assert headers[static + 1] == "P(SSB &lt; 0.2·SSB0 in any year), dynamic SSB0"
    assert "density-dependence window" not in html and "1,230" not in html
    assert "fish released up to 2050, million" in headers
    assert "release cost up to 2050, million yuan" in headers
    assert "<td>520</td>" in html and "1,500" not in html        # 5.2e8 fish up to 2050, not the total
    assert "97 %" in html and "<td>−154</td>" in html
    assert "Static: the chance" in html and "is the stock in danger" in html and "Dynamic: the same" in html


def test_strategy_table_gives_p_beats_with_its_monte_carlo_error():
    """Old behaviour: a bare probability, with no sign of how far another seed could move it."""
    rows = [{"strategy": name, "scenario": "ssp245", "biomass_median_t_2050": 1e5,
             "biomass_gain_median_t_2050": 10.0, "p_beats_status_quo_2050": p,
             "p_beats_status_quo_mc_se_2050": se}
            for name, p, se in (("age2_large", 0.53, 0.0158), ("status_quo", float("nan"), float("nan")))]
    html = str(strategy_table(rows, "ssp245"))
    assert "53 %" in html and "± 1.6 % (Monte Carlo)" in html
    assert html.count("(Monte Carlo)") == 1                  # none for the status quo itself
    # at p = 0 the standard error is 0: the rule of three bounds it instead, 3/n over n draws
    rows[0].update(p_beats_status_quo_2050=0.0, p_beats_status_quo_mc_se_2050=0.0, effective_draws=200.0)
    assert "below 1.5 % (95 %, 200 draws)" in str(strategy_table(rows, "ssp245"))
