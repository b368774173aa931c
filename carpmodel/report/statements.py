"""The report's statements in words: the headline findings, and what the data cannot tell
apart and which checks fail.

These functions decide what to say from the run's summaries (fit.json, metrics.csv rows) and
format its numbers; the template's ``finding_*`` and ``limitation_*`` macros word it, escaping
every name. Each statement is returned as HTML (Markup).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from carpmodel.report.formatting import (
    binomial_interval,
    interval,
    pct,
    pct_interval,
    predictive_label,
    predictive_scale,
    sig,
)
from carpmodel.report.template import macro


def findings(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], scenario: str,
             year: int | None, first_year: Any, last_year: Any,
             ensemble_rows: Sequence[Mapping[str, Any]] | None = None) -> list[Markup]:
    """Headline results: the recovery's attribution (fit.json ``attribution``), the largest
    median gain of a strategy over no releases in ``scenario`` and ``year`` (metrics rows), and
    the spread of status-quo biomass over the climate scenarios in the last metric year."""
    out = []
    headline = summary.get("hatchery_contribution") or {}
    if headline.get("range"):
        members = headline.get("members")
        source = (f"posterior 90 % interval and {members['n_members']} structural members"
                  if members else "posterior 90 % interval of this structure")
        ratio, prior = headline.get("release_survival_sd_ratio"), headline.get("prior_part")
        out.append(macro("finding_hatchery")(
            first_year, last_year, pct(headline["range"][0]), pct(headline["range"][1]), source,
            None if ratio is None else f"{ratio:.2f}", None if prior is None else pct(prior),
            bool(members)))
    by_name = {r["quantity"]: r for r in summary.get("attribution", [])}
    if {"increase_t", "share_ban", "share_releases", "share_rec_devs"} <= set(by_name):
        inc = by_name["increase_t"]

        def share(name: str) -> str:
            r = by_name[name]
            return f"{pct(r['median'])} ({pct_interval(r['lower_90'], r['upper_90'])})"

        out.append(macro("finding_recovery")(
            first_year, last_year, sig(inc["median"] / 1e3), interval(inc["lower_90"], inc["upper_90"], 1e3),
            share("share_ban"), share("share_releases"), share("share_rec_devs"),
            share("share_habitat") if "share_habitat" in by_name else None))
    cell = [r for r in rows if r["scenario"] == scenario and r["strategy"] != "no_releases"]
    key = f"biomass_gain_median_t_{year}"
    if year is not None and cell and all(key in r for r in cell):
        best = max(cell, key=lambda r: r[key])
        reference = next((r for r in rows if r["scenario"] == scenario and r["strategy"] == "no_releases"),
                         None)
        biomass_key = f"biomass_median_t_{year}"
        base = sig(reference[biomass_key] / 1e3) if reference and biomass_key in reference else None
        band = interval(best[f"biomass_gain_lower_t_{year}"], best[f"biomass_gain_upper_t_{year}"], 1e3, 2)
        out.append(macro("finding_strategies")(scenario, year, sig(best[key] / 1e3, 2), best["strategy"],
                                               band, base))
    robust = robustness_statement(rows, scenario, year, ensemble_rows)
    if robust is not None:
        out.append(robust)
    last = [int(k.rsplit("_", 1)[1]) for k in (rows[0] if rows else {}) if k.startswith("biomass_median_t_")]
    if last:
        key = f"biomass_median_t_{max(last)}"
        sq = [r for r in rows if r["strategy"] == "status_quo" and key in r]
        if len(sq) > 1:
            low, high = min(sq, key=lambda r: r[key]), max(sq, key=lambda r: r[key])
            out.append(macro("finding_climate")(max(last), sig(low[key] / 1e3), low["scenario"],
                                                sig(high[key] / 1e3), high["scenario"]))
    return out


def robustness_statement(rows: Sequence[Mapping[str, Any]], scenario: str, year: int | None,
                         ensemble_rows: Sequence[Mapping[str, Any]] | None = None) -> Markup | None:
    """In words: which strategy recommendations survive the structural uncertainty and which do not.

    With ``ensemble_rows`` (ensemble_metrics.csv rows: per member and ``pooled``) a strategy that
    wins some member survives when ``robust_across_structures`` (it wins in >= 80 % of members)
    and does not otherwise; each with its member win fraction and its pooled
    ``p_beats_status_quo``. Without them (one structure) the best strategy's probability of
    beating the status quo is given and the ranking is said to be unassessed across structures.
    """
    if year is None:
        return None
    p_key, gain_key = f"p_beats_status_quo_{year}", f"biomass_gain_median_t_{year}"
    win_key, robust_key = f"member_win_fraction_{year}", f"robust_across_structures_{year}"
    pooled = [r for r in (ensemble_rows or []) if r.get("structure") == "pooled" and r["scenario"] == scenario
              and win_key in r]
    if pooled:
        ranked = sorted((r for r in pooled if (r.get(win_key) or 0) > 0), key=lambda r: -r[win_key])
        survive = [(r["strategy"], pct(r[win_key]), pct(r.get(p_key))) for r in ranked if r.get(robust_key)]
        fail = [(r["strategy"], pct(r[win_key]), pct(r.get(p_key))) for r in ranked if not r.get(robust_key)]
        return macro("finding_robustness")(scenario, year, True, survive, fail, None)
    cell = [r for r in rows if r["scenario"] == scenario and r["strategy"] != "no_releases"
            and gain_key in r and r.get(p_key) is not None and math.isfinite(r[p_key])]
    if not cell:
        return None
    best = max(cell, key=lambda r: r[gain_key])
    return macro("finding_robustness")(scenario, year, False, [], [], (best["strategy"], pct(best[p_key])))


#: what 0.1.0 reported (its report and README, bundled data): the ban's share of the 2002→2024
#: increase, the releases' share, recruits per egg in 2000 and the assumed survey CVs' SDNR
V0_1 = {"share_ban": "~100 %", "share_releases": "~1 %", "recruits_per_egg_2000": "5.3", "sdnr": "0.29"}


def changes_since_0_1(summary: Mapping[str, Any]) -> list[Markup]:
    """What changed since 0.1.0 and why, with this run's numbers beside 0.1.0's (fit.json
    ``attribution``, ``derived``, ``survey_error``); empty when the run lacks them."""
    by_name = {r["quantity"]: r for r in summary.get("attribution", [])}
    derived = summary.get("derived", {})
    error = summary.get("survey_error", {})
    if not ({"share_ban", "share_releases"} <= set(by_name) and "recruits_per_egg_max" in derived
            and error.get("sigma_survey") is not None):
        return []

    def share(name: str) -> str:
        r = by_name[name]
        return f"{pct(r['median'])} ({pct_interval(r['lower_90'], r['upper_90'])})"

    rpe = derived["recruits_per_egg_max"]
    rho = error.get("rho")
    ban = by_name["share_ban"]["median"]
    verdict = ("the ban still explains most of the recovery, now within a structure that cannot make "
               "recruits from nothing" if ban > 0.5 else
               "the ban no longer explains most of the recovery")
    return [macro("change_since_0_1")(
        V0_1, share("share_ban"), share("share_releases"), sig(rpe["median"], 2), sig(rpe["upper_95"], 2),
        f"{error['sigma_survey']:.3g}", None if rho is None else f"{rho:.2f}",
        None if error.get("sdnr") is None else f"{error['sdnr']:.2f}", verdict)]


def sign_runs(residuals: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(sign, first year, last year) of each run of residual signs, from fit.json's table."""
    table_dict = residuals.get("table", {})
    years = table_dict.get("coords", {}).get("year", {}).get("data", [])
    values = table_dict.get("data_vars", {}).get("standardised_residual", {}).get("data", [])
    runs: list[tuple[str, int, int]] = []
    for year, value in zip(years, values, strict=False):
        if value is None or value == 0:
            continue
        sign = "positive" if value > 0 else "negative"
        if runs and runs[-1][0] == sign:
            runs[-1] = (sign, runs[-1][1], int(year))
        else:
            runs.append((sign, int(year), int(year)))
    return runs


def _ratios(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [(str(r["parameter"]), sig(r.get("sd_ratio"), 2)) for r in rows]


def limitations(summary: Mapping[str, Any], *, recruits_ratio: float | None = None,
                recruits_year: int | None = None, informed_ratio: float = 0.5,
                silent_ratio: float = 0.9) -> list[Markup]:
    """Plain statements (HTML) of what the data cannot tell apart and which checks fail, from
    the fit summary (fit.json); ``recruits_ratio`` is upper/lower 95 % bound of the recruits (age 1)."""
    out: list[Markup] = []
    post = summary.get("posterior", {}).get("prior_posterior", [])
    rated = [r for r in post if r.get("sd_ratio") is not None and math.isfinite(r["sd_ratio"])]
    informed = [r for r in rated if r["sd_ratio"] < informed_ratio]
    weak = [r for r in rated if informed_ratio <= r["sd_ratio"] < silent_ratio]
    silent = [r for r in rated if r["sd_ratio"] >= silent_ratio]
    if post:
        out.append(macro("limitation_parameters")(_ratios(informed), _ratios(weak), _ratios(silent),
                                                  f"{informed_ratio:g}", f"{silent_ratio:g}"))
    diag = summary.get("diagnostics", {})
    res = diag.get("residuals", {})
    runs = res.get("runs_test", {})
    if runs and runs.get("passed") is False:
        where = {"positive": "below", "negative": "above"}
        out.append(macro("limitation_runs")(sig(runs.get("p_value"), 2), runs.get("n_runs"),
                                            [(where[s], a, b) for s, a, b in sign_runs(res)]))
    sdnr = res.get("sd")
    if sdnr is not None and sdnr < 0.5:
        out.append(macro("limitation_cvs")(sig(sdnr, 2)))
    self_rows = diag.get("self_test_table", [])
    if self_rows:
        n = int(self_rows[0].get("n_used") or diag.get("self_test", {}).get("n_replicates") or 0)
        if n:
            covered, off = [], []
            for row in self_rows:
                if row.get("coverage") is None:
                    continue
                k = round(row["coverage"] * n)
                covered.append((k, str(row["quantity"])))
                lo, hi = binomial_interval(k, n)
                if not lo <= 0.95 <= hi:
                    off.append((str(row["quantity"]), "under" if hi < 0.95 else "over", pct(lo), pct(hi)))
            small_lower = pct(binomial_interval(n, n)[0]) if n < 100 else None
            out.append(macro("limitation_self_test")(n, covered, off, small_lower))
    misses = [(name, c) for name, c in summary.get("posterior_predictive", {}).items()
              if not c.get("reported_inside_95")]
    for name, c in misses:
        scale, unit = predictive_scale(c)
        out.append(macro("limitation_predictive")(predictive_label(name, c), c["year"],
                                                  sig(c["reported"] / scale),
                                                  interval(c["lower_95"], c["upper_95"], scale), unit))
    if recruits_ratio is not None and math.isfinite(recruits_ratio) and recruits_ratio > 10:
        out.append(macro("limitation_recruits")(recruits_year, sig(recruits_ratio, 2)))
    return out
