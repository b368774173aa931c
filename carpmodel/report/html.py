"""A self-contained HTML report of a run: figures embedded, one caption each, key tables.

:func:`render` lays out sections of HTML and embedded figures; the ``*_table`` functions turn
the run's summaries (the dicts written to fit.json and metrics.csv) into tables whose headers
carry units and whose numbers carry three significant figures; :func:`limitations` says in
words what the data cannot tell apart. Nothing here computes a model quantity.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from scipy import stats

#: one-line captions of the figures the report can show, in report order; the run replaces
#: the parts that depend on its settings (years, peels, scenario) through ``captions=``
CAPTIONS: dict[str, str] = {
    "fit": "Survey biomass (dots, 95 % bars from the assumed CVs) and the fitted biomass on the "
           "survey's scale q·B with its 95 % posterior interval, in thousand t.",
    "residuals": "Standardised log residuals of the biomass observations by year; the runs test "
                 "checks for non-random sign patterns, SDNR ≈ 1 if the assumed CVs are right.",
    "retrospective": "Fitted biomass (thousand t) with the last years of data removed (peels); "
                     "Mohn's ρ measures the systematic revision.",
    "profile": "Likelihood profile over unfished biomass B0 (thousand t), by data component: how "
               "much each source of information pulls on the stock's scale.",
    "recruitment": "Wild age-0 recruits (fish, log scale) with their 95 % posterior interval.",
    "depletion": "Biomass relative to unfished (B/B0) with its 95 % posterior interval; dashed "
                 "line 0.2·B0.",
    "prior_posterior": "Prior (line) and posterior (histogram) of each estimated parameter; a "
                       "posterior/prior SD ratio near 1 means the data are silent about it.",
    "attribution": "Shares of the explained biomass increase due to the fishing ban, the releases "
                   "and recruitment variation (Shapley decomposition; median, 90 % interval).",
    "projection_scenarios": "Biomass (thousand t) under status-quo releases in each climate "
                            "scenario: median over posterior draws and 90 % bands (temperature "
                            "effects are assumed).",
    "projection_fan": "Biomass (thousand t) under each release strategy: medians, with the 90 % "
                      "band of the reference strategies; strategy differences are compared "
                      "paired by draw in the next figure.",
    "strategy_comparison": "Biomass gained over no releases (thousand t; median, 90 % interval, "
                           "paired by draw) and release cost per strategy; costs are illustrative.",
    "hatchery_fraction": "Hatchery-origin share of the spawning stock (%) under each release "
                         "strategy: medians, with the 90 % band of the reference strategies.",
    "sensitivity_lines": "Biomass in 2100 (thousand t) against warming by 2100 (°C), one panel per "
                         "temperature effect, one line per effect strength (0 = no-effect "
                         "reference); median and 90 % band.",
    "sensitivity_heatmap": "Median change in biomass in 2100 (%) relative to the no-effect "
                           "reference, by warming (°C) and effect strength.",
}

_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.4}"
    "h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}"
    ".table-wrap{overflow-x:auto;margin:0.5em 0}"
    "table{border-collapse:collapse;font-size:0.82em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}"
    "td.text,th.text{text-align:left}"
    "th{background:#eee;font-weight:600}"
    "tr.flag td{background:#fff1d6}tr.warn td{background:#fde2e2}"
    "figure{margin:1em 0}figcaption{font-size:0.9em;color:#444;margin-top:0.2em}"
    "img{max-width:100%}"
    ".note{background:#fff6e0;padding:0.5em 0.8em;border-left:4px solid #e0a000}"
    ".summary{background:#eef4fb;padding:0.5em 1em;border-left:4px solid #3a78c2}"
    ".summary li{margin:0.25em 0}code{font-size:0.92em;color:#444}"
    "td:not(.text){white-space:nowrap}.ci{color:#666;font-size:0.9em}"
    "nav{font-size:0.9em}nav a{margin-right:1em}"
)


class Html(str):
    """Text already in HTML: a table cell holding it is not escaped."""


# --------------------------------------------------------------------------- numbers


def sig(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, thousands separated, minus as '−'; '–' for
    missing or non-finite values."""
    if value is None:
        return "–"
    x = float(value)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > math.floor(math.log10(abs(x))):
        decimals -= 1                   # 0.99996 rounds to 1.00, not 1.000
        rounded = round(x, decimals)
    text = f"{rounded:,.{max(decimals, 0)}f}"
    return text.replace("-", "−")


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage: two significant figures, at most one decimal, '%' sign."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    x = 100.0 * float(value)
    text = f"{x:.1f}" if abs(x) < 10 else sig(x, digits)
    if text.replace("−", "-") in ("-0.0", "0.0"):
        text = "0"
    return text.replace("-", "−") + " %"


def interval(lower: Any, upper: Any, scale: float = 1.0, digits: int = 3) -> str:
    """'lower to upper' after dividing by ``scale``."""
    if lower is None or upper is None:
        return "–"
    return f"{sig(float(lower) / scale, digits)} to {sig(float(upper) / scale, digits)}"


def pct_interval(lower: Any, upper: Any) -> str:
    if lower is None or upper is None:
        return "–"
    return f"{pct(lower)} to {pct(upper)}"


def binomial_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval of a proportion (exact; [0, 1] bounds at 0 and n)."""
    if n <= 0:
        return float("nan"), float("nan")
    alpha = 1.0 - level
    lower = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, n - successes + 1))
    upper = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return lower, upper


# --------------------------------------------------------------------------- layout


def figure_png_base64(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: Any) -> str:
    if isinstance(value, Html):
        return str(value)
    if isinstance(value, float):
        return html.escape(sig(value))
    return html.escape("–" if value is None else str(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
          headers: Mapping[str, str] | None = None, *, text_columns: Sequence[str] = ()) -> str:
    """An HTML table of ``rows`` restricted to ``columns``, headed by ``headers`` (default: the
    column names). Floats get three significant figures; :class:`Html` cells are not escaped;
    ``text_columns`` are left-aligned; a row's ``_class`` key sets its CSS class ('flag', 'warn')."""
    headers = headers or {}

    def cls(column: str) -> str:
        return " class='text'" if column in text_columns else ""

    head = "".join(f"<th{cls(c)}>{html.escape(headers.get(c, c))}</th>" for c in columns)
    body = "".join(
        (f"<tr class='{html.escape(row['_class'])}'>" if row.get("_class") else "<tr>")
        + "".join(f"<td{cls(c)}>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in rows)
    return (f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            "</table></div>")


def _anchor(heading: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in heading.lower()).strip("-")


def render(title: str, sections: Sequence[tuple[str, str, Sequence[str]]], figures: Mapping[str, Any],
           *, captions: Mapping[str, str] | None = None, intro: str = "") -> str:
    """HTML for ``sections`` of (heading, HTML body, figure names); figures embedded as PNG, each
    with its caption (``captions`` over :data:`CAPTIONS`); ``intro`` (HTML) after the contents."""
    captions = {**CAPTIONS, **(captions or {})}
    nav = "".join(f"<a href='#{_anchor(h)}'>{html.escape(h)}</a>" for h, _, _ in sections)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<nav>{nav}</nav>", intro]
    for heading, body, names in sections:
        parts.append(f"<h2 id='{_anchor(heading)}'>{html.escape(heading)}</h2>{body}")
        for name in names:
            if name in figures:
                parts.append(f"<figure id='fig-{name}'><img alt='{html.escape(name)}' "
                             f"src='data:image/png;base64,{figure_png_base64(figures[name])}'>"
                             f"<figcaption>{html.escape(captions.get(name, name))}</figcaption></figure>")
    parts.append("</body></html>")
    return "".join(parts)


# --------------------------------------------------------------------------- tables of a run

PARAMETER_HEADERS = {
    "parameter": "parameter", "unit": "unit", "prior": "prior", "prior_mean": "prior mean",
    "prior_sd": "prior SD", "map_estimate": "MAP estimate", "posterior_median": "posterior median",
    "interval_95": "95 % posterior interval", "sd_ratio": "posterior SD / prior SD",
    "verdict": "what the data say"}


def parameter_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Prior against posterior of each estimated parameter, in natural units; rows where the
    prior dominates (weakly informed: shaded; data silent: red) are marked."""
    out = []
    for r in rows:
        verdict = str(r.get("verdict", ""))
        out.append({
            "parameter": Html(f"<code>{html.escape(str(r['parameter']))}</code>"),
            "unit": r.get("unit") or "1", "prior": r.get("prior"),
            "prior_mean": sig(r.get("prior_mean")), "prior_sd": sig(r.get("prior_sd")),
            "map_estimate": sig(r.get("map_estimate")), "posterior_median": sig(r.get("posterior_median")),
            "interval_95": interval(r.get("lower_95"), r.get("upper_95")),
            "sd_ratio": sig(r.get("sd_ratio"), 2), "verdict": verdict,
            "_class": "warn" if verdict.startswith("data silent") else
                      "flag" if verdict.startswith("weakly") else ""})
    return table(out, list(PARAMETER_HEADERS), PARAMETER_HEADERS,
                 text_columns=("parameter", "unit", "prior", "verdict"))


#: what the posterior-predictive checks compare (fit.json ``posterior_predictive`` keys)
PREDICTIVE_LABELS = {"numbers_fish": "number of survey-age fish",
                     "mean_length_cm": "mean length of survey-age fish",
                     "mean_weight_g": "mean weight of survey-age fish"}


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
        scale, unit = (1e6, "million fish") if check["unit"] == "fish" else (1.0, check["unit"])
        inside = check.get("reported_inside_95")
        what = PREDICTIVE_LABELS.get(name, name.replace("_", " "))
        rows.append({"diagnostic": f"posterior predictive: {what} ({check['year']}, {unit})",
                     "value": sig(check["median"] / scale),
                     "note": f"reported {sig(check['reported'] / scale)}; model 95 % "
                             f"{interval(check['lower_95'], check['upper_95'], scale)}: reported value "
                             + ("inside" if inside else "OUTSIDE the interval"),
                     "_class": "" if inside else "warn"})
    return rows


def diagnostics_table(diag: Mapping[str, Any], predictive: Mapping[str, Any]) -> str:
    headers = {"diagnostic": "diagnostic", "value": "value", "note": "what it means"}
    return table(diagnostic_rows(diag, predictive), list(headers), headers,
                 text_columns=("diagnostic", "note"))


def comparison_table(comparison: Mapping[str, Any] | None) -> str:
    """AICc table of the structural variants (fit.json ``diagnostics.model_comparison``), best
    first; '' when the comparison was not run."""
    if not comparison:
        return ""
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

        rows.append({"variant": Html(f"<code>{html.escape(str(name))}</code>"),
                     "converged": "yes" if get("converged") else "NO",
                     "k": get("n_parameters"), "n": get("n_observations"),
                     "nll_data": sig(get("nll_data"), 4), "aicc": sig(get("aicc"), 4),
                     "delta": sig(get("delta_aicc"), 2) if get("delta_aicc") is not None else "not ranked",
                     "weight": pct(get("akaike_weight")),
                     "_class": "" if get("converged") else "warn"})
    headers = {"variant": "model variant", "converged": "converged", "k": "k (estimated, excl. rec devs)",
               "n": "n (data points)", "nll_data": "NLL of the data", "aicc": "AICc", "delta": "ΔAICc",
               "weight": "Akaike weight"}
    return ("<h3>Structural variants (AICc on the same data)</h3>"
            + table(rows, list(headers), headers, text_columns=("variant",)))


#: attribution rows shown in the report (fit.json has them all): name -> label, kind
ATTRIBUTION_ROWS: dict[str, tuple[str, str]] = {
    "increase_t": ("Biomass increase {first}→{last}", "kt"),
    "explained_increase_t": ("… of which explained by ban, releases and recruitment variation", "kt"),
    "share_ban": ("Share of the explained increase: fishing ban", "%"),
    "share_releases": ("Share of the explained increase: releases", "%"),
    "share_rec_devs": ("Share of the explained increase: recruitment variation", "%"),
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
                      last_year: Any = "last") -> str:
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
        out.append({"quantity": Html(html.escape(label.format(first=first_year, last=last_year))
                                     + f" <code>{html.escape(name)}</code>"),
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


def strategy_table(rows: Sequence[Mapping[str, Any]], scenario: str, *, limit_fraction: float = 0.2,
                   cost_year: int | None = None, reference: str = "no_releases") -> str:
    """One row per strategy in ``scenario``: biomass and paired gain in kt with 90 % intervals,
    hatchery share, fish released, cost, cost per tonne gained, added survivors, risk, catch."""
    rows = [r for r in rows if r.get("scenario") == scenario]
    year = metric_year(rows)
    if year is None:
        return "<p>No strategy metrics.</p>"
    last = max(int(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("biomass_median_t_"))
    def scaled(r: Mapping[str, Any], key: str, scale: float, digits: int = 3) -> str:
        value = r.get(key)
        return "–" if value is None else sig(float(value) / scale, digits)

    def with_interval(r: Mapping[str, Any], stem: str, digits: int = 3) -> Html:
        band = interval(r.get(f"{stem}_lower_t_{year}"), r.get(f"{stem}_upper_t_{year}"), 1e3, digits)
        median = scaled(r, f"{stem}_median_t_{year}", 1e3, digits)
        return Html(f"{html.escape(median)}<br><span class='ci'>{html.escape(band)}</span>")

    out = []
    for r in rows:
        is_reference = r["strategy"] == reference
        out.append({
            "strategy": Html(f"<code>{html.escape(str(r['strategy']))}</code>"),
            "biomass": with_interval(r, "biomass"),
            "biomass_last": scaled(r, f"biomass_median_t_{last}", 1e3),
            "gain": "reference" if is_reference else with_interval(r, "biomass_gain", 2),
            "hatchery": pct(r.get(f"hatchery_fraction_ssb_median_{year}")),
            "released": scaled(r, "released_fish_total_median", 1e6),
            "cost": scaled(r, "cost_through_cost_year_median", 1e6),
            "cost_per_t": scaled(r, "cost_per_t_gained", 1.0),
            "survivors": scaled(r, "added_window_survivors_per_million_released_median", 1.0),
            "risk": pct(r.get("p_ssb_below_limit_dynamic_any")),
            "catch": scaled(r, "total_catch_median_t", 1e3)})
    cost_label = f"up to {cost_year}" if cost_year is not None else "through the cost year"
    headers = {
        "strategy": "strategy",
        "biomass": f"biomass {year}, kt: median, 90 % interval",
        "biomass_last": f"biomass {last}, kt: median",
        "gain": f"gain over {reference} in {year}, kt: median, 90 % interval (paired by draw)",
        "hatchery": f"hatchery share of SSB {year}",
        "released": "fish released, million (total)",
        "cost": f"release cost {cost_label}, million cost units",
        "cost_per_t": f"cost per t gained in {year}, cost units/t",
        "survivors": "added fish past the density-dependence window per million released",
        "risk": f"P(SSB < {limit_fraction:g}·SSB0 in any year, dynamic SSB0)",
        "catch": "total catch, kt",
    }
    descriptions = "".join(f"<li><code>{html.escape(str(r['strategy']))}</code>: "
                           f"{html.escape(str(r.get('description', '')))}</li>" for r in rows
                           if r.get("description"))
    return (table(out, list(headers), headers, text_columns=("strategy",))
            + (f"<details><summary>What each strategy does</summary><ul>{descriptions}</ul></details>"
               if descriptions else ""))


def timings_table(timings: Mapping[str, float]) -> str:
    rows = [{"stage": k, "seconds": f"{v:.1f}"} for k, v in timings.items()]
    rows.append({"stage": "total so far", "seconds": f"{sum(timings.values()):.1f}"})
    return table(rows, ["stage", "seconds"], {"stage": "stage", "seconds": "wall time (s)"},
                 text_columns=("stage",))


# --------------------------------------------------------------------------- the plain words


def _sign_runs(residuals: Mapping[str, Any]) -> list[tuple[str, int, int]]:
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


def _names(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"<code>{html.escape(str(r['parameter']))}</code> ({sig(r.get('sd_ratio'), 2)})"
                     for r in rows)


def limitations(summary: Mapping[str, Any], *, recruits_ratio: float | None = None,
                recruits_year: int | None = None, informed_ratio: float = 0.5,
                silent_ratio: float = 0.9) -> list[str]:
    """Plain statements (HTML) of what the data cannot tell apart and which checks fail, from
    the fit summary (fit.json); ``recruits_ratio`` is upper/lower 95 % bound of age-0 recruits."""
    out: list[str] = []
    post = summary.get("posterior", {}).get("prior_posterior", [])
    rated = [r for r in post if r.get("sd_ratio") is not None and math.isfinite(r["sd_ratio"])]
    informed = [r for r in rated if r["sd_ratio"] < informed_ratio]
    weak = [r for r in rated if informed_ratio <= r["sd_ratio"] < silent_ratio]
    silent = [r for r in rated if r["sd_ratio"] >= silent_ratio]
    if post:
        text = (f"<b>Parameters (posterior SD / prior SD in brackets).</b> Informed by the data "
                f"(ratio &lt; {informed_ratio:g}): {_names(informed) or 'none'}. ")
        if weak:
            text += (f"Weakly informed ({informed_ratio:g}–{silent_ratio:g}): {_names(weak)}: "
                     "their priors still set much of their uncertainty. ")
        if silent:
            text += (f"<b>Data silent</b> (ratio ≥ {silent_ratio:g}): {_names(silent)}: the estimate "
                     "is the prior; results that depend on it repeat the prior's assumption.")
        out.append(text)
    diag = summary.get("diagnostics", {})
    res = diag.get("residuals", {})
    runs = res.get("runs_test", {})
    if runs and runs.get("passed") is False:
        where = {"positive": "below", "negative": "above"}
        pattern = "; ".join(f"{where[s]} the surveys in {a}–{b}" if a != b else f"{where[s]} them in {a}"
                            for s, a, b in _sign_runs(res))
        out.append(f"<b>Residuals are not random.</b> The runs test fails "
                   f"(p = {sig(runs.get('p_value'), 2)}, only {runs.get('n_runs')} runs of residual "
                   f"sign): the fitted biomass lies {pattern}. "
                   "The model's trajectory misses a systematic pattern of the record; read the "
                   "intervals as conditional on the model's form.")
    sdnr = res.get("sd")
    if sdnr is not None and sdnr < 0.5:
        out.append(f"<b>The assumed survey CVs are larger than the scatter around the fit</b> "
                   f"(SD of standardised residuals {sig(sdnr, 2)}, ≈ 1 expected). The CVs are "
                   "assumptions; intervals built on them may be too wide, and the data cannot say "
                   "which CV is right.")
    self_rows = diag.get("self_test_table", [])
    if self_rows:
        n = int(self_rows[0].get("n_used") or diag.get("self_test", {}).get("n_replicates") or 0)
        if n:
            parts, off = [], []
            for row in self_rows:
                if row.get("coverage") is None:
                    continue
                k = round(row["coverage"] * n)
                parts.append(f"{k}/{n} ({html.escape(str(row['quantity']))})")
                lo, hi = binomial_interval(k, n)
                if not lo <= 0.95 <= hi:
                    off.append(f"{html.escape(str(row['quantity']))} ({'under' if hi < 0.95 else 'over'}"
                               f"-coverage: 95 % binomial interval {pct(lo)} to {pct(hi)})")
            text = (f"<b>Self-test with {n} simulated data sets:</b> the 95 % intervals covered the "
                    f"truth in {', '.join(parts)}.")
            if off:
                text += f" Coverage differs from the nominal 95 % for {', '.join(off)}."
            if n < 100:
                lo, _ = binomial_interval(n, n)
                text += (f" With {n} replicates even {n}/{n} is consistent with a true coverage anywhere "
                         f"from {pct(lo)} to 100 % (95 % binomial interval), so this self-test detects "
                         "only gross under-coverage; the full experiment (experiments/01_fit_baseline) "
                         "runs more replicates.")
            out.append(text)
    misses = [(name, c) for name, c in summary.get("posterior_predictive", {}).items()
              if not c.get("reported_inside_95")]
    for name, c in misses:
        scale, unit = (1e6, "million fish") if c["unit"] == "fish" else (1.0, c["unit"])
        out.append(f"<b>The model misses a reported value it was not fitted to:</b> "
                   f"{html.escape(PREDICTIVE_LABELS.get(name, name.replace('_', ' ')))} in {c['year']} "
                   f"was reported as "
                   f"{sig(c['reported'] / scale)} {unit}; the model's 95 % interval is "
                   f"{interval(c['lower_95'], c['upper_95'], scale)} {unit}. The fixed growth curve "
                   "or the modelled age structure disagree with that report.")
    if recruits_ratio is not None and math.isfinite(recruits_ratio) and recruits_ratio > 10:
        out.append(f"<b>Recruit numbers are not identified.</b> The 95 % interval of age-0 recruits in "
                   f"{recruits_year} spans a factor of {sig(recruits_ratio, 2)}: the biomass record "
                   "constrains the biomass of survey-age fish, not how many age-0 fish it took to "
                   "produce it (that depends on assumed juvenile mortality and density dependence).")
    return out


def summary_box(items: Sequence[str], heading: str = "What the data can and cannot tell") -> str:
    if not items:
        return ""
    return (f"<div class='summary'><h3>{html.escape(heading)}</h3><ul>"
            + "".join(f"<li>{item}</li>" for item in items) + "</ul></div>")
