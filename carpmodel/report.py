"""A self-contained HTML report of a run: figures embedded, one caption each, key tables."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

#: one-line captions of the figures the report can show, in report order
CAPTIONS: dict[str, str] = {
    "fit": "Survey biomass (dots, 95 % bars from the assumed CVs) and the fitted biomass on the "
           "survey's scale q·B with its 95 % posterior interval.",
    "residuals": "Standardised log residuals of the biomass observations; the runs test checks "
                 "for non-random sign patterns.",
    "retrospective": "Biomass estimated with the last 1–5 years of data removed (peels); "
                     "Mohn's ρ measures the systematic revision.",
    "profile": "Likelihood profile over unfished biomass B0, by data component: how much each "
               "source of information pulls on the stock's scale.",
    "recruitment": "Wild age-0 recruits with their 95 % posterior interval (log scale).",
    "depletion": "Biomass relative to unfished (B/B0) with its 95 % posterior interval.",
    "prior_posterior": "Prior (line) and posterior (histogram) of each estimated parameter; the "
                       "ratio of SDs near 1 means the data are silent about it.",
    "attribution": "Shares of the 2002→2024 biomass increase due to the fishing ban, the "
                   "releases and recruitment variation (Shapley decomposition, 90 % intervals).",
    "projection_scenarios": "Status-quo releases under each climate scenario: median and 90 % "
                            "band over posterior draws (temperature effects are assumed).",
    "projection_fan": "Biomass under each release strategy (SSP2-4.5): median and 90 % band.",
    "strategy_comparison": "Biomass gained over no releases (paired by draw) and total release "
                           "cost per strategy; costs are illustrative.",
    "hatchery_fraction": "Hatchery-origin share of the spawning stock under each strategy.",
    "sensitivity_lines": "Biomass in 2100 against warming by 2100, one panel per temperature "
                         "effect, one line per effect strength (0 = no-effect reference).",
    "sensitivity_heatmap": "Median biomass relative to the no-effect reference, warming × "
                           "effect strength.",
}


def figure_png_base64(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        magnitude = abs(value)
        text = f"{value:,.0f}" if magnitude >= 1000 else f"{value:.3g}"
        return html.escape(text)
    return html.escape("–" if value is None else str(value))


def render(title: str, sections: Sequence[tuple[str, str, Sequence[str]]],
           figures: Mapping[str, Any]) -> str:
    """HTML for ``sections`` of (heading, HTML body, figure names); figures embedded as PNG."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
             "th{background:#eee}figure{margin:1em 0}figcaption{font-size:0.9em;color:#444}"
             "img{max-width:100%}.note{background:#fff6e0;padding:0.5em;border-left:4px solid #e0a000}"
             "</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for heading, body, names in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
        for name in names:
            if name in figures:
                parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,"
                             f"{figure_png_base64(figures[name])}'><figcaption>"
                             f"{html.escape(CAPTIONS.get(name, name))}</figcaption></figure>")
    parts.append("</body></html>")
    return "".join(parts)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` restricted to ``columns``."""
    return _table(rows, columns)
