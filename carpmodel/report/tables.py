"""The report's tables, from the run's summaries (the dicts written to fit.json and metrics.csv):
headers carry units, numbers three significant figures, failed checks a CSS class.

Each ``*_table`` returns HTML rendered by the template's ``table`` macro, which escapes every
cell; :class:`Cell` sets a name in ``<code>`` or a 90 % interval under its median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text``, then ``code`` (a name, set in ``<code>``), then ``interval`` on a
    second, grey line."""

    text: str = ""
    code: str = ""
    interval: str = ""


def _cell(value: Any) -> Cell:
    if isinstance(value, Cell):
        return value
    if isinstance(value, float):
        return Cell(sig(value))
    return Cell("–" if value is None else str(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
          headers: Mapping[str, str] | None = None, *, text_columns: Sequence[str] = ()) -> Markup:
    """An HTML table of ``rows`` restricted to ``columns``, headed by ``headers`` (default: the
    column names). Floats get three significant figures, None '–'; ``text_columns`` are
    left-aligned; a row's ``_class`` key sets its CSS class ('flag', 'warn')."""
    headers = headers or {}
    head = [{"label": headers.get(c, c), "left": c in text_columns} for c in columns]
    body = [{"css": row.get("_class") or "",
             "cells": [{**vars(_cell(row.get(c))), "left": c in text_columns} for c in columns]}
            for row in rows]
    return macro("table")(head, body)


PARAMETER_HEADERS = {
    "parameter": "parameter", "unit": "unit", "prior": "prior", "prior_mean": "prior mean",
    "prior_sd": "prior SD", "map_estimate": "MAP estimate", "posterior_median": "posterior median",
    "interval_95": "95 % posterior interval", "sd_ratio": "posterior SD / prior SD",
    "verdict": "what the data say"}


def parameter_table(rows: Sequence[Mapping[str, Any]]) -> Markup:
    """Prior against posterior of each estimated parameter, in natural units; rows where the
    prior dominates (weakly informed: shaded; data silent: red) are marked."""
    out = []
    for r in rows:
        verdict = str(r.get("verdict", ""))
        out.append({
            "parameter": Cell(code=str(r["parameter"])),
            "unit": r.get("unit") or "1", "prior": r.get("prior"),
            "prior_mean": sig(r.get("prior_mean")), "prior_sd": sig(r.get("prior_sd")),
            "map_estimate": sig(r.get("map_estimate")), "posterior_median": sig(r.get("posterior_median")),
            "interval_95": interval(r.get("lower_95"), r.get("upper_95")),
            "sd_ratio": sig(r.get("sd_ratio"), 2), "verdict": verdict,
            "_class": "warn" if verdict.startswith("data silent") else
                      "flag" if verdict.startswith("weakly") else ""})
    return table(out, list(PARAMETER_HEADERS), PARAMETER_HEADERS,
                 text_columns=("parameter", "unit", "prior", "verdict"))


def diagnostic_rows(diag: Mapping[str, Any], predictive: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows (diagnostic, value, meaning) of the residual, retrospective, hindcast, profile,
    self-test and posterior-predictive checks; a failed check has ``_class`` 'warn'."""
    rows: list[dict[str, Any]] = []
    res = diag.get("residuals", {})
    runs = res.get("runs_test", {})
    if runs:
        passed = runs.get("passed")
        n_signs = runs.get("n_positive", 0) + runs.get("n_negative", 0)
        verdict = "passes at 5 %" if passed else "FAILS at 5 %: residual signs come in long runs"
        rows.append({"diagnostic": "runs test of residual signs (p-value)",
                     "value": sig(runs.get("p_value"), 2),
                     "note": f"{runs.get('n_runs')} runs in {n_signs} residuals; {verdict}",
                     "_class": "" if passed or passed is None else "warn"})
    if res.get("sd") is not None:
        sdnr = float(res["sd"])
        rows.append({"diagnostic": "SD of standardised residuals (SDNR)", "value": sig(sdnr, 2),
                     "note": "≈ 1 if the assumed CVs match the scatter; "
                             + ("well below 1: the record scatters less around the fit than the CVs assume"
                                if sdnr < 0.5 else "above 2: the CVs understate the scatter" if sdnr > 2
                                else "consistent with the assumed CVs"),
                     "_class": "flag" if sdnr < 0.5 or sdnr > 2 else ""})
    retro = diag.get("retrospective", {})
    within = retro.get("within_rule_of_thumb", {})
    low, high = retro.get("rule_of_thumb_range", (-0.15, 0.2))
    for name, value in retro.get("mohns_rho", {}).items():
        ok = within.get(name)
        rows.append({"diagnostic": f"Mohn's ρ ({name}), {retro.get('n_peels', '?')} peels",
                     "value": sig(value, 2),
                     "note": f"{'inside' if ok else 'outside'} {sig(low, 2)} to {sig(high, 2)} "
                             "(Hurtado-Ferro et al. 2015, longer-lived species)",
                     "_class": "" if ok or ok is None else "warn"})
    hind = diag.get("hindcast", {})
    for key, naive in (("mase_persistence", "persistence (last value)"), ("mase_drift", "drift")):
        if hind.get(key) is not None:
            rows.append({"diagnostic": f"hindcast MASE vs {naive}, "
                                       f"{hind.get('n_predictions', '?')} predictions",
                         "value": sig(hind[key], 2),
                         "note": "< 1: the model predicts the held-out surveys better than the "
                                 "naive forecast",
                         "_class": "" if hind[key] < 1 else "warn"})
    prof = diag.get("profile_unfished_biomass", {})
    if prof:
        lo, hi = (prof.get("interval_95") or [None, None])[:2]
        lower = "< grid" if lo is None else sig(lo / 1e3)
        upper = "> grid" if hi is None else sig(hi / 1e3)
        rows.append({"diagnostic": "profile 95 % interval of B0 (kt)", "value": f"{lower} to {upper}",
                     "note": "where the total ΔNLL reaches 1.92; '< grid'/'> grid': not reached in the "
                             "profiled range, the data do not bound B0 on that side"})
    n_self = diag.get("self_test", {}).get("n_replicates")
    for row in diag.get("self_test_table", []):
        n = int(row.get("n_used") or n_self or 0)
        coverage = row.get("coverage")
        bias = row.get("median_relative_bias")
        if coverage is None or n == 0:
            continue
        k = round(coverage * n)
        lo, hi = binomial_interval(k, n)
        rows.append({"diagnostic": f"self-test 95 % interval coverage ({row['quantity']})",
                     "value": f"{k}/{n} ({pct(coverage)})",
                     "note": f"95 % binomial interval {pct(lo)} to {pct(hi)}"
                             + (f"; median relative bias {pct(bias)}" if bias is not None else ""),
                     "_class": "" if lo <= 0.95 <= hi else "warn"})
    for name, check in predictive.items():
        scale, unit = predictive_scale(check)
        inside = check.get("reported_inside_95")
        what = predictive_label(name, check)
        rows.append({"diagnostic": f"posterior predictive: {what} ({check['year']}, {unit})",
                     "value": sig(check["median"] / scale),
                     "note": f"reported {sig(check['reported'] / scale)}; model 95 % "
                             f"{interval(check['lower_95'], check['upper_95'], scale)}: reported value "
                             + ("inside" if inside else "OUTSIDE the interval"),
                     "_class": "" if inside else "warn"})
    return rows


def diagnostics_table(diag: Mapping[str, Any], predictive: Mapping[str, Any]) -> Markup:
    """The diagnostics of :func:`diagnostic_rows` as a table (diagnostic, value, what it means)."""
    headers = {"diagnostic": "diagnostic", "value": "value", "note": "what it means"}
    return table(diagnostic_rows(diag, predictive), list(headers), headers,
                 text_columns=("diagnostic", "note"))


def comparison_table(comparison: Mapping[str, Any] | None) -> Markup:
    """AICc table of the structural variants (fit.json ``diagnostics.model_comparison``), best
    first; '' when the comparison was not run."""
    if not comparison:
        return Markup("")
    table_dict = comparison.get("table", {})
    names = table_dict.get("coords", {}).get("variant", {}).get("data", [])
    columns = {k: v.get("data", []) for k, v in table_dict.get("data_vars", {}).items()}
    order = list(comparison.get("ranking", [])) + [n for n in names if n not in comparison.get("ranking", [])]
    rows = []
    for name in order:
        i = names.index(name)

        def get(key: str, i: int = i) -> Any:
            values = columns.get(key, [])
            return values[i] if i < len(values) else None

        rows.append({"variant": Cell(code=str(name)),
                     "converged": "yes" if get("converged") else "NO",
                     "k": get("n_parameters"), "n": get("n_observations"),
                     "nll_data": sig(get("nll_data"), 4), "aicc": sig(get("aicc"), 4),
                     "delta": sig(get("delta_aicc"), 2) if get("delta_aicc") is not None else "not ranked",
                     "weight": pct(get("akaike_weight")),
                     "_class": "" if get("converged") else "warn"})
    headers = {"variant": "model variant", "converged": "converged", "k": "k (estimated, excl. rec devs)",
               "n": "n (data points)", "nll_data": "NLL of the data", "aicc": "AICc", "delta": "ΔAICc",
               "weight": "Akaike weight"}
    return macro("comparison")(table(rows, list(headers), headers, text_columns=("variant",)))


#: attribution rows shown in the report (fit.json has them all): name -> label, kind
ATTRIBUTION_ROWS: dict[str, tuple[str, str]] = {
    "increase_t": ("Biomass increase {first}→{last}", "kt"),
    "explained_increase_t": ("… of which explained by the factors below", "kt"),
    "share_ban": ("Share of the explained increase: fishing ban", "%"),
    "share_releases": ("Share of the explained increase: releases", "%"),
    "share_rec_devs": ("Share of the explained increase: recruitment variation", "%"),
    "share_habitat": ("Share of the explained increase: river connectivity (habitat, assumed index)", "%"),
    "habitat_effect_t": ("Connectivity's effect on the increase (index held at its pre-passage level)", "kt"),
    "releases_effect_with_ban_t": ("Releases' effect on the increase, ban in place", "kt"),
    "releases_effect_without_ban_t": ("Releases' effect on the increase, fishing continued", "kt"),
    "interaction_total_t": ("Interaction (explained increase minus one-factor effects)", "kt"),
    "hatchery_fraction_last": ("Hatchery-origin share of biomass in {last}", "%"),
    "gain_from_releases_t": ("Biomass in {last} that the releases added", "kt"),
    "gain_from_releases_fraction": ("… as a share of the {last} biomass", "%"),
    "hatchery_minus_gain_t": ("Hatchery-origin biomass minus that gain (> 0: releases replaced wild fish)",
                              "kt"),
}


def attribution_table(rows: Sequence[Mapping[str, Any]], first_year: Any = 2002,
                      last_year: Any = "last") -> Markup:
    """The recovery attribution in kt and % with its 90 % and 95 % intervals."""
    by_name = {r["quantity"]: r for r in rows}
    out = []
    for name, (label, kind) in ATTRIBUTION_ROWS.items():
        r = by_name.get(name)
        if r is None:
            continue
        if kind == "%":
            values = {"median": pct(r.get("median")),
                      "i90": pct_interval(r.get("lower_90"), r.get("upper_90")),
                      "i95": pct_interval(r.get("lower_95"), r.get("upper_95"))}
        else:
            values = {"median": sig(r["median"] / 1e3),
                      "i90": interval(r.get("lower_90"), r.get("upper_90"), 1e3),
                      "i95": interval(r.get("lower_95"), r.get("upper_95"), 1e3)}
        out.append({"quantity": Cell(text=label.format(first=first_year, last=last_year), code=name),
                    "unit": "thousand t" if kind == "kt" else "%", **values})
    headers = {"quantity": "quantity (fit.json name)", "unit": "unit", "median": "median",
               "i90": "90 % interval", "i95": "95 % interval"}
    return table(out, list(headers), headers, text_columns=("quantity", "unit"))


def metric_year(rows: Sequence[Mapping[str, Any]], preferred: int = 2050) -> int | None:
    """The metric year the strategy table shows: ``preferred`` if the metrics have it, else the
    latest year with a biomass gain."""
    years = sorted(int(k.rsplit("_", 1)[1]) for k in (rows[0] if rows else {})
                   if k.startswith("biomass_gain_median_t_"))
    if not years:
        return None
    return preferred if preferred in years else years[-1]


#: what the two risk columns of the strategy table mean (one sentence each), static first
RISK_MEANING = (
    "Static: the chance that spawning biomass falls below {f}·SSB0 in any projection year, SSB0 being "
    "the unfished spawning biomass of the draw's parameters, a fixed reference: it answers "
    "\"is the stock in danger\". "
    "Dynamic: the same against the spawning biomass the draw would have with no fishing and no "
    "releases under the same climate and recruitment, a reference that moves with the climate: "
    "it says how far fishing and releases push the stock below what the environment allows, "
    "and stays near 0 when the climate itself lowers the stock.")


def strategy_table(rows: Sequence[Mapping[str, Any]], scenario: str, *, limit_fraction: float = 0.2,
                   cost_year: int | None = None, reference: str = "no_releases",
                   cost_unit: str = "cost units") -> Markup:
    """One row per strategy in ``scenario``, led by the biomass gained per million ``cost_unit``:
    gain and biomass in kt with 90 % intervals, hatchery share, fish released and cost over the
    same years (up to ``cost_year``), cost per tonne gained, the risk against static then dynamic
    SSB0 (with :data:`RISK_MEANING` below the table), catch."""
    rows = [r for r in rows if r.get("scenario") == scenario]
    year = metric_year(rows)
    if year is None:
        return macro("no_strategy_metrics")()
    last = max(int(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("biomass_median_t_"))
    def scaled(r: Mapping[str, Any], key: str, scale: float, digits: int = 3) -> str:
        value = r.get(key)
        return "–" if value is None else sig(float(value) / scale, digits)

    def with_interval(r: Mapping[str, Any], stem: str, digits: int = 3) -> Cell:
        band = interval(r.get(f"{stem}_lower_t_{year}"), r.get(f"{stem}_upper_t_{year}"), 1e3, digits)
        return Cell(text=scaled(r, f"{stem}_median_t_{year}", 1e3, digits), interval=band)

    def with_mc_se(r: Mapping[str, Any], stem: str, year: int) -> Cell:
        """A probability of ``year``, with its Monte Carlo standard error on the second line (at
        p = 0 or 1, where it is 0: the rule of three's 95 % bound, 3/n over the n draws)."""
        p, se, n = r.get(f"{stem}_{year}"), r.get(f"{stem}_mc_se_{year}"), r.get("effective_draws")
        if p is None or se is None or not (math.isfinite(p) and math.isfinite(se)):
            return Cell(text=pct(p))
        if se == 0.0 and n:
            bound = f"below {pct(3.0 / n)}" if p == 0.0 else f"above {pct(1.0 - 3.0 / n)}"
            return Cell(text=pct(p), interval=f"{bound} (95 %, {n:.0f} draws)")
        return Cell(text=pct(p), interval=f"± {pct(se)} (Monte Carlo)")

    # fish released over the same years as the cost (0.1 files have only the total)
    released = "released_fish_through_cost_year_median"
    released = released if any(released in r for r in rows) else "released_fish_total_median"
    out = []
    for r in rows:
        is_reference = r["strategy"] == reference
        out.append({
            "strategy": Cell(code=str(r["strategy"])),
            "gain_per_cost": ("reference" if is_reference
                              else scaled(r, "biomass_gain_per_million_cost_t", 1.0)),
            "gain": "reference" if is_reference else with_interval(r, "biomass_gain", 2),
            "cost_per_t": scaled(r, "cost_per_t_gained", 1.0),
            "cost": scaled(r, "cost_through_cost_year_median", 1e6),
            "released": scaled(r, released, 1e6),
            "biomass": with_interval(r, "biomass"),
            "biomass_last": scaled(r, f"biomass_median_t_{last}", 1e3),
            "p_beats": with_mc_se(r, "p_beats_status_quo", year),
            "hatchery": pct(r.get(f"hatchery_fraction_ssb_median_{year}")),
            "risk_static": pct(r.get("p_ssb_below_limit_static_any")),
            "risk_dynamic": pct(r.get("p_ssb_below_limit_dynamic_any")),
            "catch": scaled(r, "total_catch_median_t", 1e3)})
    cost_label = f"up to {cost_year}" if cost_year is not None else "through the cost year"
    released_label = (f"fish released {cost_label}, million" if released.endswith("cost_year_median")
                      else "fish released, million (whole projection)")
    headers = {
        "strategy": "strategy",
        "gain_per_cost": f"gain in {year} per million {cost_unit} spent {cost_label}, t",
        "gain": f"gain over {reference} in {year}, kt: median, 90 % interval (paired by draw)",
        "cost_per_t": f"cost per t gained in {year}, {cost_unit}/t",
        "cost": f"release cost {cost_label}, million {cost_unit}",
        "released": released_label,
        "biomass": f"biomass {year}, kt: median, 90 % interval",
        "biomass_last": f"biomass {last}, kt: median",
        "p_beats": f"P(beats the status quo in {year}), paired by draw",
        "hatchery": f"hatchery share of SSB {year}",
        "risk_static": f"P(SSB < {limit_fraction:g}·SSB0 in any year), static SSB0",
        "risk_dynamic": f"P(SSB < {limit_fraction:g}·SSB0 in any year), dynamic SSB0",
        "catch": "total catch, kt",
    }
    descriptions = [(str(r["strategy"]), str(r["description"])) for r in rows if r.get("description")]
    return (table(out, list(headers), headers, text_columns=("strategy",))
            + macro("risk_note")(RISK_MEANING.format(f=f"{limit_fraction:g}"))
            + macro("strategy_descriptions")(descriptions))


def timings_table(timings: Mapping[str, float]) -> Markup:
    """Wall time of each stage (s) and their total so far."""
    rows = [{"stage": k, "seconds": f"{v:.1f}"} for k, v in timings.items()]
    rows.append({"stage": "total so far", "seconds": f"{sum(timings.values()):.1f}"})
    return table(rows, ["stage", "seconds"], {"stage": "stage", "seconds": "wall time (s)"},
                 text_columns=("stage",))
