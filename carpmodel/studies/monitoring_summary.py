"""Summaries of a monitoring study: interval widths, coverage, narrowing, advice in words.

Works on the Datasets of :mod:`carpmodel.studies.monitoring_design`: :func:`summarise` adds the
summaries over replicates (converged refits only) and the narrowing against a reference design,
:func:`describe` their units and long names; :func:`recommend_sample_size` picks the smallest
design that meets a target, :func:`summary_table` prints the grid. :data:`QUANTITIES` and
:data:`SCALES` name the summarised quantities (figure labels too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from carpmodel.inference.fitting import GRADIENT_TOLERANCE

__all__ = ["QUANTITIES", "SCALES", "describe", "recommend_sample_size", "summarise", "summary_table"]

#: summarised quantities: (name, units, long name)
QUANTITIES = {
    "release_survival": ("1", "acute post-release survival"),
    "release_contribution": ("1", "hatchery-origin share of survey biomass in the last year"),
    "release_gain_t": ("t", "last-year biomass with minus without the historical releases"),
    "dd_strength": ("1", "juvenile density dependence γ (addition vs replacement)"),
}
#: the scale each quantity's interval is symmetric on
SCALES = {"release_survival": "logit", "release_contribution": "log", "release_gain_t": "natural (t)",
          "dd_strength": "log"}


def summarise(ds: xr.Dataset, quantities: Sequence[str], baseline: dict[str, Any]) -> xr.Dataset:
    """Summaries over replicates (converged refits only) and narrowing against ``baseline``."""
    conv = ds["converged"]
    for q in quantities:
        width = (ds[f"{q}_upper"] - ds[f"{q}_lower"]).where(conv)
        covered = ((ds[f"{q}_lower"] <= ds[f"{q}_truth"]) & (ds[f"{q}_truth"] <= ds[f"{q}_upper"]))
        ds[f"{q}_width"] = width
        ds[f"{q}_covered"] = covered.where(conv)
        n_used = np.isfinite(width).sum("replicate")
        coverage = ds[f"{q}_covered"].mean("replicate")
        ds[f"{q}_width_median"] = width.median("replicate")
        ds[f"{q}_coverage"] = coverage
        ds[f"{q}_coverage_mc_se"] = np.sqrt(coverage * (1 - coverage) / n_used.where(n_used > 0))
        ds[f"{q}_median_estimate"] = ds[f"{q}_estimate"].where(conv).median("replicate")
        reference = width.sel(baseline)
        ds[f"{q}_narrowing"] = 1.0 - (width / reference).median("replicate")
        scale_width = ds[f"{q}_scale_width"].where(conv)
        ds[f"{q}_scale_width_median"] = scale_width.median("replicate")
        ds[f"{q}_scale_narrowing"] = 1.0 - (scale_width / scale_width.sel(baseline)).median("replicate")
    ds["converged_share"] = conv.mean("replicate")
    return ds


def describe(ds: xr.Dataset, quantities: Sequence[str], baseline_text: str) -> xr.Dataset:
    """Units and long names of a study's variables (``baseline_text``: what narrowing is against)."""
    for q in quantities:
        units, long_name = QUANTITIES[q]
        for suffix, text, u in (
                ("truth", f"true {long_name}", units), ("estimate", f"MAP estimate of {long_name}", units),
                ("lower", f"lower bound of the 95 % delta-method interval of {long_name}", units),
                ("upper", f"upper bound of the 95 % delta-method interval of {long_name}", units),
                ("width", f"width of the 95 % interval of {long_name}", units),
                ("covered", "truth inside the 95 % interval (NaN if the refit did not converge)", "1"),
                ("width_median", f"median width of the 95 % interval of {long_name}", units),
                ("coverage", "fraction of converged refits whose 95 % interval holds the truth", "1"),
                ("coverage_mc_se", "Monte Carlo SE of the coverage, sqrt(p(1 - p)/n)", "1"),
                ("median_estimate", f"median MAP estimate of {long_name}", units),
                ("narrowing", f"1 - median over replicates of (width / width with {baseline_text})", "1"),
                ("scale_width", f"width of the 95 % interval on its {SCALES[q]} scale", "1"),
                ("scale_width_median", f"median width of the 95 % interval on its {SCALES[q]} scale", "1"),
                ("scale_narrowing", f"narrowing on the {SCALES[q]} scale (unaffected by a shift of the "
                                    "estimate, unlike the natural-scale narrowing)", "1")):
            if f"{q}_{suffix}" in ds:
                ds[f"{q}_{suffix}"].attrs.update(units=u, long_name=text)
    for name, units, text in (("converged", "1", "refit converged (positive definite Hessian, max |gradient| "
                                                 f"< {GRADIENT_TOLERANCE:g})"),
                              ("converged_share", "1", "share of refits that converged"),
                              ("biomass_obs_t", "t", "simulated survey biomass (same in every design)"),
                              ("n_hatchery", "fish", "fish classified hatchery-origin in a simulated sample"),
                              ("n_hatchery_mean", "fish", "mean fish classified hatchery-origin per sample")):
        if name in ds:
            ds[name].attrs.update(units=units, long_name=text)
    return ds


def recommend_sample_size(ds: xr.Dataset, target_narrowing: float = 0.5, coverage_floor: float = 0.9,
                          quantity: str = "release_survival", scale: str = "both") -> dict[str, Any]:
    """The smallest design (fewest fish in total, then fewest years) that narrows the interval of
    ``quantity`` by ``target_narrowing`` with coverage at least ``coverage_floor``, per true survival.

    ``scale``: the narrowing counted on the natural scale (``"natural"``), on the scale the
    interval is symmetric on (``"estimation"``: logit, log; immune to a shift of the estimate), or
    on both (default). Returns ``{"quantity", "target_narrowing", "coverage_floor", "scale",
    "by_true_survival": {s: {...}}, "text"}``; each entry has fish_per_year, years_of_sampling,
    total_fish (None when no design in the grid achieves it), narrowing, scale_narrowing,
    coverage and a sentence.
    """
    if scale not in ("natural", "estimation", "both"):
        raise ValueError(f"scale: expected 'natural', 'estimation' or 'both', got {scale!r}")
    _, long_name = QUANTITIES[quantity]

    def achieved(cell: xr.Dataset) -> float:
        natural = float(cell[f"{quantity}_narrowing"])
        on_scale = float(cell[f"{quantity}_scale_narrowing"])
        return {"natural": natural, "estimation": on_scale, "both": min(natural, on_scale)}[scale]

    by_survival: dict[float, dict[str, Any]] = {}
    sentences = []
    for s in ds.true_survival.values:
        best, top = None, -np.inf
        for f in ds.fish_per_year.values[ds.fish_per_year.values > 0]:
            for k in ds.years_of_sampling.values:
                cell = ds.sel(true_survival=s, fish_per_year=f, years_of_sampling=k)
                narrowing, coverage = achieved(cell), float(cell[f"{quantity}_coverage"])
                top = max(top, narrowing)
                if narrowing >= target_narrowing and coverage >= coverage_floor:
                    key = (int(f) * int(k), int(k), int(f))
                    if best is None or key < best[0]:
                        best = (key, cell)
        if best is None:
            text = (f"true survival {s:g}: no design up to {int(ds.fish_per_year.max())} fish a year for "
                    f"{int(ds.years_of_sampling.max())} years narrows the {long_name} interval by "
                    f"{target_narrowing:.0%} with coverage >= {coverage_floor:.0%} (best {top:.0%})")
            entry = {"fish_per_year": None, "years_of_sampling": None, "total_fish": None,
                     "narrowing": top, "scale_narrowing": None, "coverage": None, "text": text}
        else:
            (total, k, f), cell = best
            narrowing = float(cell[f"{quantity}_narrowing"])
            on_scale = float(cell[f"{quantity}_scale_narrowing"])
            coverage = float(cell[f"{quantity}_coverage"])
            on_text = "" if SCALES[quantity].startswith("natural") else \
                f" ({on_scale:.0%} on its {SCALES[quantity]} scale)"
            text = (f"true survival {s:g}: examine {f} fish a year for {k} year{'s' if k > 1 else ''} "
                    f"({total} fish): the {long_name} interval narrows by {narrowing:.0%}{on_text}, "
                    f"coverage {coverage:.0%}")
            entry = {"fish_per_year": f, "years_of_sampling": k, "total_fish": total, "narrowing": narrowing,
                     "scale_narrowing": on_scale, "coverage": coverage, "text": text}
        by_survival[float(s)] = entry
        sentences.append(text)
    return {"quantity": quantity, "target_narrowing": target_narrowing, "coverage_floor": coverage_floor,
            "scale": scale, "by_true_survival": by_survival, "text": "; ".join(sentences) + "."}


def summary_table(ds: xr.Dataset, quantity: str = "release_survival") -> str:
    """A compact text table per (true survival, years sampled) and fish per year: median width of
    the 95 % interval, coverage, and narrowing against no samples on the natural / estimation scale."""
    units, long_name = QUANTITIES[quantity]
    lines = [f"{long_name}: median 95 % interval width ({units}) [coverage] "
             f"narrowing natural/{SCALES[quantity]}"]
    fish = [int(f) for f in ds.fish_per_year.values]
    lines.append("true s  years " + "".join(f"{f:>23d}" for f in fish))
    fmt = "{:.3g}" if units == "1" else "{:.0f}"
    for s in ds.true_survival.values:
        for k in ds.years_of_sampling.values:
            cells = []
            for f in fish:
                c = ds.sel(true_survival=s, fish_per_year=f, years_of_sampling=k)
                width, coverage = float(c[f"{quantity}_width_median"]), float(c[f"{quantity}_coverage"])
                natural, on_scale = float(c[f"{quantity}_narrowing"]), float(c[f"{quantity}_scale_narrowing"])
                text = f"{fmt.format(width)} [{coverage:.2f}] {natural:+.0%}/{on_scale:+.0%}"
                cells.append(text.rjust(23))
            lines.append(f"{s:6.2f}  {int(k):5d} " + "".join(cells))
    return "\n".join(lines)
