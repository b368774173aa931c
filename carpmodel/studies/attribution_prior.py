"""How much of the recovery attribution is prior: the same Shapley decomposition across the
structural ensemble, and the hatchery contribution stated as a range (issue #14, items 3–4).

The biomass record does not inform acute release survival (its posterior SD is 0.9–1 of its
prior SD), the Lorenzen exponent c (fixed in every fit) or the density-dependence window (a
structural choice), yet these set the releases' share (×4.2, ×2.1 and ×1.4 over their ranges,
``research/science_review_2026-12.md`` §2). So a share from one fit is not a finding. This module

- runs :func:`carpmodel.studies.attribution.attribution_table` for every fitted member of an
  ensemble (:class:`carpmodel.management.ensemble.EnsembleFits`, e.g. release-survival prior ×
  c × window) and pools the members' draws by member weight
  (:func:`attribution_across_members`);
- measures the prior's part of each quantity: the between-member fraction of the pooled
  variance (law of total variance: ``Var_pooled = E_m[Var_m] + Var_m[E_m]``; the second term is
  what the structural and prior choices add, which no data in the fit moved), plus the part of
  the within-member spread that follows release survival (the rank R² across draws, averaged
  over members; release survival's posterior is its prior; for the habitat share, the habitat
  slope, whose posterior is close to its prior too): ``prior_part = between + (1 − between)·R²``.
  An approximation — other prior-dominated parameters add to it, so it is a lower bound when
  they matter — reported beside the range of the member medians;
- states the hatchery contribution as a range with the prior's part
  (:func:`hatchery_headline`: fit.json ``hatchery_contribution``, the report's first box).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel import __version__
from carpmodel.inference.spec import unpack
from carpmodel.management.metrics import weighted_quantile
from carpmodel.studies.attribution import INTERVALS, QUANTITIES, attribution_table

__all__ = [
    "MEMBER_QUANTITIES",
    "POOLED",
    "attribution_across_members",
    "format_members",
    "hatchery_headline",
    "members_rows",
]

#: quantities compared across members (those a member lacks, e.g. the habitat share of a
#: member without a habitat effect, are NaN there and left out of the pool)
MEMBER_QUANTITIES = ("share_ban", "share_releases", "share_rec_devs", "share_habitat",
                     "hatchery_fraction_last", "gain_from_releases_t", "gain_from_releases_fraction",
                     "increase_t", "release_survival", "habitat_slope")
#: the prior-dominated parameter whose draws the within-member part follows (default
#: ``release_survival``, whose posterior is its prior); the habitat share follows the habitat slope
PRIOR_DRIVER = {"share_habitat": "habitat_slope"}
POOLED = "pooled"
_STATS = ("median", "mean", "lower_90", "upper_90", "lower_95", "upper_95")


def _member_draws(member: Any, n_draws: int, rng: np.random.Generator) -> NDArray:
    """``n_draws`` parameter vectors of a member: resampled from its posterior draws when it has
    them, else θ ~ N(θ̂, Σ) of its fit (θ̂ repeated when Σ is undefined)."""
    from carpmodel.management.projection import parameter_draws

    result = member.result
    if member.posterior_theta is not None:
        pool = np.asarray(member.posterior_theta)
        return pool[rng.integers(0, len(pool), n_draws)]
    return parameter_draws(result, rng.standard_normal((n_draws, result.theta.size)))


def attribution_across_members(fits: Any, n_draws: int = 200, seed: int = 20260601, *,
                               first_year: int = 2002) -> xr.Dataset:
    """The recovery attribution of every included member of ``fits`` and of their pool.

    Parameters
    ----------
    fits : EnsembleFits
        Fitted members (:func:`carpmodel.management.ensemble.fit_ensemble`, or
        :func:`~carpmodel.management.ensemble.single_member`); only included members are used,
        weighted by ``fits.weights()``.
    n_draws : int
        Parameter draws per member (one stream per member from ``seed``).
    first_year : int
        First year of the increase (the last is each member's last model year).

    Returns
    -------
    xarray.Dataset
        Dims ``(structure, quantity)`` — the members then ``"pooled"`` — with ``median``,
        ``mean``, ``lower_90``, ``upper_90``, ``lower_95``, ``upper_95`` (pooled: weighted, each
        draw ``weight / n_draws``); per quantity ``member_median_min`` / ``member_median_max``
        (range of the member medians) and ``between_member_fraction`` (share of the pooled
        variance between members: the part set by the structural and prior choices); per
        member ``structure_weight``, ``factors`` and the structural choices as coordinates.
    """
    members = fits.included
    weights = fits.weights()
    streams = np.random.SeedSequence(seed).spawn(len(members))
    values = np.full((len(members), len(MEMBER_QUANTITIES), n_draws), np.nan)
    factors = []
    for m, (member, stream) in enumerate(zip(members, streams, strict=True)):
        spec = member.result.spec
        thetas = _member_draws(member, n_draws, np.random.default_rng(stream))
        table = attribution_table(spec, thetas, first_year=first_year)
        factors.append(table.attrs["factors"])
        present = set(map(str, table["quantity"].values))
        for q, name in enumerate(MEMBER_QUANTITIES):
            if name in present:
                values[m, q] = table["value"].sel(quantity=name).values
        values[m, MEMBER_QUANTITIES.index("release_survival")] = np.broadcast_to(
            np.asarray(unpack(spec, thetas).params.release_survival, dtype=float), (n_draws,))
    w = np.array([weights[member.name] for member in members])
    stats = {k: np.full((len(members) + 1, len(MEMBER_QUANTITIES)), np.nan) for k in _STATS}
    probabilities = [0.5, *[p for pair in INTERVALS.values() for p in pair]]
    for m in range(len(members)):
        with np.errstate(invalid="ignore"), _quiet():
            stats["mean"][m] = np.nanmean(values[m], axis=-1)
            qs = np.nanquantile(values[m], probabilities, axis=-1)
        _put(stats, m, qs)
    pooled = values.transpose(1, 0, 2).reshape(len(MEMBER_QUANTITIES), -1)     # (quantity, member·draw)
    draw_w = np.repeat(w / n_draws, n_draws)
    qs = weighted_quantile(pooled, draw_w, probabilities).T
    _put(stats, len(members), qs)
    present = ~np.isnan(pooled)
    norm = np.sum(np.where(present, draw_w, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled_mean = np.sum(np.where(present, pooled * draw_w, 0.0), axis=-1) / norm
        pooled_var = np.sum(np.where(present, (pooled - pooled_mean[:, None]) ** 2 * draw_w, 0.0),
                            axis=-1) / norm
        means = stats["mean"][:-1]                                             # (member, quantity)
        has = ~np.isnan(means)
        member_w = np.where(has, w[:, None], 0.0)
        between = np.sum(np.where(has, (means - pooled_mean) ** 2, 0.0) * member_w, axis=0) \
            / member_w.sum(axis=0)
        fraction = np.where(pooled_var > 0, between / pooled_var, 0.0)
    stats["mean"][-1] = pooled_mean
    driver = [MEMBER_QUANTITIES.index(PRIOR_DRIVER.get(q, "release_survival")) for q in MEMBER_QUANTITIES]
    follows = np.array([[_rank_r2(values[m, driver[q]], values[m, q])
                         for q in range(len(MEMBER_QUANTITIES))]
                        for m in range(len(members))])                         # (member, quantity)
    with _quiet():
        known = ~np.isnan(follows)
        within = np.sum(np.where(known, follows * w[:, None], 0.0), axis=0) \
            / np.sum(np.where(known, w[:, None], 0.0), axis=0)
    names = [member.name for member in members] + [POOLED]
    described = [member.describe() for member in members]
    ds = xr.Dataset({k: (("structure", "quantity"), v) for k, v in stats.items()},
                    coords={"structure": names, "quantity": list(MEMBER_QUANTITIES)})
    medians = stats["median"][:-1]
    with _quiet():
        ds["member_median_min"] = ("quantity", np.nanmin(medians, axis=0))
        ds["member_median_max"] = ("quantity", np.nanmax(medians, axis=0))
    ds["between_member_fraction"] = ("quantity", np.where(np.isnan(pooled_mean), np.nan, fraction))
    ds["within_following_release_survival"] = ("quantity", within)
    ds["within_following_release_survival"].attrs.update(
        units="1", long_name="rank R^2 of the quantity on release survival (the habitat share: on the "
                             "habitat slope) across a member's draws, weighted mean over members")
    ds["prior_part"] = ("quantity", ds["between_member_fraction"].values
                        + (1 - ds["between_member_fraction"].values) * within)
    ds["prior_part"].attrs.update(units="1", long_name="between + (1 - between) x within R^2 on release "
                                                       "survival: the part of the pooled spread set by "
                                                       "structure and prior (approximate)")
    ds["structure_weight"] = ("structure", [*w.tolist(), 1.0])
    ds["factors"] = ("structure", [*factors, ""])
    for key in ("dd_window_end_age_yr", "release_survival_prior", "mortality", "initial_state"):
        ds.coords[key] = ("structure", [str(d[key]) for d in described] + [POOLED])
    units = {**QUANTITIES, "release_survival": ("1", "acute post-release survival (draws)")}
    ds = ds.assign_coords(units=("quantity", [units[q][0] for q in MEMBER_QUANTITIES]),
                          long_name=("quantity", [units[q][1] for q in MEMBER_QUANTITIES]))
    ds["between_member_fraction"].attrs.update(
        units="1", long_name="between-member variance / pooled variance: the part of the spread set by "
                             "the structural and prior choices (law of total variance)")
    ds.attrs.update(carpmodel_version=__version__, seed=seed, n_draws_per_member=n_draws,
                    first_year=first_year, ensemble_weighting=fits.rule(),
                    description="recovery attribution per ensemble member and pooled (members' draws "
                                "weighted by member weight)")
    return ds


class _quiet:
    """Silence numpy's all-NaN warnings inside a block (a member without a habitat share)."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)


def _rank_r2(x: NDArray, y: NDArray) -> float:
    """Squared Spearman correlation of finite pairs (NaN when either is constant or absent)."""
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return np.nan
    rx, ry = np.argsort(np.argsort(x[keep])), np.argsort(np.argsort(y[keep]))
    return float(np.corrcoef(rx, ry)[0, 1] ** 2)


def _put(stats: dict[str, NDArray], row: int, qs: NDArray) -> None:
    """Median and interval bounds from quantiles in the order 0.5, 90 % pair, 95 % pair."""
    stats["median"][row] = qs[0]
    for k, label in enumerate(INTERVALS):
        stats[f"lower_{label}"][row] = qs[1 + 2 * k]
        stats[f"upper_{label}"][row] = qs[2 + 2 * k]


def members_rows(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per member and pooled × quantity (attribution_members.csv)."""
    rows = []
    for s in ds["structure"].values:
        cell = ds.sel(structure=s)
        for q in ds["quantity"].values:
            c = cell.sel(quantity=q)
            rows.append({"structure": str(s), "weight": float(cell["structure_weight"]),
                         **{k: str(cell[k].values) for k in ("dd_window_end_age_yr",
                                                             "release_survival_prior", "mortality")},
                         "quantity": str(q), **{k: _f(c[k]) for k in _STATS},
                         **{k: _f(ds[k].sel(quantity=q)) for k in (
                             "between_member_fraction", "within_following_release_survival",
                             "prior_part")}})
    return rows


def format_members(ds: xr.Dataset, quantities: Sequence[str] = (
        "share_releases", "hatchery_fraction_last", "share_ban", "share_habitat")) -> str:
    """Plain text: median [90 %] of ``quantities`` per member and pooled, then the prior's part."""
    shown = [q for q in quantities if q in ds["quantity"].values]
    lines = [f"{'structure':<34} " + " ".join(f"{q:>26}" for q in shown)]
    for s in ds["structure"].values:
        cells = []
        for q in shown:
            c = ds.sel(structure=s, quantity=q)
            cells.append(f"{_pc(c['median'])} [{_pc(c['lower_90'])}, {_pc(c['upper_90'])}]".rjust(26))
        lines.append(f"{str(s):<34} " + " ".join(cells))
    for key, label in (("between_member_fraction", "between-member part of variance"),
                       ("prior_part", "prior's part (approximate)")):
        lines.append(f"{label:<34} " + " ".join(f"{_pc(ds[key].sel(quantity=q)):>26}" for q in shown))
    return "\n".join(lines)


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _pc(x: Any) -> str:
    x = float(x)
    return "nan" if not np.isfinite(x) else f"{100 * x:.1f}%"


# --------------------------------------------------------------------------- the headline


def hatchery_headline(attribution: xr.Dataset, release_survival: Any = None,
                      prior_rows: Sequence[Mapping[str, Any]] = (),
                      members: xr.Dataset | None = None) -> dict[str, Any]:
    """The hatchery contribution as a range with the prior's part (fit.json
    ``hatchery_contribution``; the report's first box).

    Parameters
    ----------
    attribution : Dataset
        :func:`~carpmodel.studies.attribution.attribution_table` of the fit's posterior draws.
    release_survival : array (draw,), optional
        Release survival in the same draws; with it ``spread_following_release_survival`` is the
        R² of the releases' share on release survival across draws (rank correlation squared).
    prior_rows : rows of :func:`carpmodel.inference.posterior.prior_posterior_table`
        ``release_survival_sd_ratio`` (posterior SD / prior SD) is read from them.
    members : Dataset, optional
        :func:`attribution_across_members`; adds the member range and the between-member part.

    Returns
    -------
    dict
        ``share_releases`` and ``hatchery_fraction_last`` as ``{median, lower_90, upper_90}``
        over the posterior draws; ``range`` (lowest and highest bound over the posterior interval
        and the member medians); ``release_survival_sd_ratio``; ``prior_part`` (the
        between-member fraction of the share's variance when members are given);
        ``statement`` (one sentence).
    """
    def row(name: str) -> dict[str, float | None]:
        r = attribution.sel(quantity=name)
        return {k: _f(r[k]) for k in ("median", "lower_90", "upper_90")}

    share, fraction = row("share_releases"), row("hatchery_fraction_last")
    ratio = next((r.get("sd_ratio") for r in prior_rows if r.get("parameter") == "release_survival"), None)
    out: dict[str, Any] = {
        "quantity": "share_releases: Shapley share of the explained increase due to releases",
        "years": [int(attribution.attrs.get("first_year", 2002)), int(attribution.attrs.get("last_year", 0))],
        "share_releases": share, "hatchery_fraction_last": fraction,
        "release_survival_sd_ratio": _f(ratio) if ratio is not None else None,
        "spread_following_release_survival": None, "members": None, "prior_part": None,
    }
    if release_survival is not None:
        x = np.asarray(release_survival, dtype=float)
        y = attribution["value"].sel(quantity="share_releases").values
        if x.size == y.size:
            out["spread_following_release_survival"] = _f(_rank_r2(x, y))
            out["prior_part"] = out["spread_following_release_survival"]
    lows, highs = [share["lower_90"]], [share["upper_90"]]
    if members is not None and "share_releases" in members["quantity"].values:
        m = members.sel(quantity="share_releases")
        pooled = m.sel(structure=POOLED)
        out["members"] = {
            "n_members": int(members.sizes["structure"] - 1),
            "member_median_min": _f(m["member_median_min"]), "member_median_max": _f(m["member_median_max"]),
            "pooled": {k: _f(pooled[k]) for k in ("median", "lower_90", "upper_90")}}
        out["prior_part"] = _f(m["prior_part"])
        out["members"]["between_member_fraction"] = _f(m["between_member_fraction"])
        lows += [_f(m["member_median_min"]), _f(pooled["lower_90"])]
        highs += [_f(m["member_median_max"]), _f(pooled["upper_90"])]
    lows = [v for v in lows if v is not None]
    highs = [v for v in highs if v is not None]
    out["range"] = [min(lows), max(highs)] if lows and highs else None
    out["statement"] = _statement(out)
    return out


def _statement(h: Mapping[str, Any]) -> str:
    """One sentence: the range, where it comes from, and the prior's part."""
    if h["range"] is None:
        return "The releases' share could not be computed."
    lo, hi = h["range"]
    first, last = h["years"]
    text = (f"Releases account for {100 * lo:.1f}-{100 * hi:.1f} % of the explained {first}-{last} biomass "
            "increase")
    if h["members"] is not None:
        m = h["members"]
        text += (f" (posterior 90 % interval and the medians and pooled interval of {m['n_members']} "
                 "structural members)")
        if m["between_member_fraction"] is not None:
            text += (f"; {100 * m['between_member_fraction']:.0f} % of the pooled variance lies between "
                     "members")
    else:
        text += " (posterior 90 % interval of this one structure; the structural ensemble widens it)"
    ratio = h["release_survival_sd_ratio"]
    if ratio is not None:
        text += (f". Release survival's posterior SD is {ratio:.2f} of its prior SD"
                 + (": the data do not inform it, so this range is the prior's" if ratio >= 0.9 else ""))
    if h["prior_part"] is not None:
        text += (f"; about {100 * h['prior_part']:.0f} % of the share's spread is prior ("
                 + ("structure and release survival)" if h["members"] is not None else
                    "release survival only: a lower bound, the structure is not varied)"))
    return (text + ". Not identified by the biomass record; marked releases and origin samples "
            "would settle it.")
