"""The recovery attribution repeated across model structures: the hatchery share and the gain
from releases for each structure of the default comparison variants (Beverton–Holt/Ricker,
density-dependence windows, initial states), fitted on the same data, each with posterior draws
(:func:`carpmodel.studies.attribution.attribution_table` per structure)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from carpmodel import __version__
from carpmodel.errors import CarpmodelError
from carpmodel.studies.attribution import QUANTITIES, attribution_table, short_number, summarise

#: quantities tabulated across structures (the release-related rows and the ban for reference)
STRUCTURE_QUANTITIES = ("hatchery_fraction_last", "hatchery_biomass_last_t", "gain_from_releases_t",
                        "gain_from_releases_fraction", "hatchery_minus_gain_t", "share_releases",
                        "share_ban", "share_rec_devs", "interaction_ban_releases_t", "increase_t")
#: posterior parameters tabulated beside them
STRUCTURE_PARAMETERS = ("release_survival", "dd_strength", "steepness")


def attribution_across_structures(data: Any, draws_per_fit: int = 500, seed: int = 20260601, *,
                                  config: Any = None, priors: Sequence[str] = ("informative", "flat"),
                                  windows: Sequence[int] = (0, 1, 2), n_proposals: int = 10000,
                                  method: str = "smc", n_starts: int | None = None,
                                  first_year: int = 2002) -> xr.Dataset:
    """Refit and attribute for each release-survival prior × density-dependence window.

    For every structure: ``build_spec`` with ``config.with_fit(release_survival_prior=p,
    dd_window_end_age_yr=w)`` (``config`` a RunConfig, default the defaults), ``fit``, posterior draws by
    :func:`carpmodel.inference.posterior.sample_posterior` (``draws_per_fit`` samples from ``n_proposals``
    proposals; ``method="smc"`` by default so every structure is sampled the same way — SIR
    followed by tempering with moves), and :func:`attribution_table` on those draws. The flat
    prior's fit has no covariance (its MAP without the Jacobian runs to the upper bound of
    release survival); its proposal is then centred on the Jacobian-adjusted posterior mode.

    Returns
    -------
    xarray.Dataset
        Dims ``(release_survival_prior, dd_window_end_age_yr, quantity)``: ``median``,
        ``lower_90``, ``upper_90``, ``lower_95``, ``upper_95`` of the release-related quantities
        (:data:`STRUCTURE_QUANTITIES`) and the posterior of :data:`STRUCTURE_PARAMETERS`; per
        structure ``converged``, ``max_abs_gradient``, ``hessian_positive_definite``, ``nll``,
        ``sir_ess``, ``sampling_method``, ``fit_runtime_s``, ``sampling_runtime_s``, ``warnings``
        (the fit's and the sampler's; a structure whose fit or sampling raised a carpmodel error
        keeps NaN rows, ``converged`` False and ``"failed: …"`` here).
    """
    from carpmodel.inference.build import build_spec
    from carpmodel.inference.fitting import fit, with_survey_error
    from carpmodel.inference.posterior import sample_posterior
    from carpmodel.io.config import default_config

    base = config if config is not None else default_config()
    quantities = {**{k: QUANTITIES[k] for k in STRUCTURE_QUANTITIES},
                  **{p: ("natural", f"posterior {p}") for p in STRUCTURE_PARAMETERS}}
    shape = (len(priors), len(windows))
    stat_names = ("median", "lower_90", "upper_90", "lower_95", "upper_95")
    stats = {k: np.full(shape + (len(quantities),), np.nan) for k in stat_names}
    diag: dict[str, Any] = {k: np.full(shape, np.nan) for k in (
        "converged", "max_abs_gradient", "hessian_positive_definite", "nll", "sir_ess",
        "fit_runtime_s", "sampling_runtime_s")}
    diag["sampling_method"] = np.full(shape, "", dtype=object)
    diag["warnings"] = np.full(shape, "", dtype=object)
    seeds = np.random.SeedSequence(seed).spawn(len(priors) * len(windows))
    for i, prior in enumerate(priors):
        for j, window in enumerate(windows):
            opts = base.with_fit(release_survival_prior=prior, dd_window_end_age_yr=window)
            sub_seed = int(seeds[i * len(windows) + j].generate_state(1)[0])
            try:
                starts = opts.fit.n_starts if n_starts is None else n_starts
                result = with_survey_error(
                    build_spec(data, opts), opts,
                    lambda s, start, k=starts, seed=opts.seed: fit(s, n_starts=k, seed=seed, start=start))
                spec = result.spec
                started = time.perf_counter()
                sample = sample_posterior(result, n_proposals=n_proposals, n_samples=draws_per_fit,
                                          seed=sub_seed, method=method)
                table = attribution_table(spec, sample.theta, first_year=first_year)
            except (CarpmodelError, np.linalg.LinAlgError) as error:
                # one failed structure leaves its row NaN and says why; the others still run
                diag["converged"][i, j] = 0.0
                diag["hessian_positive_definite"][i, j] = 0.0
                diag["warnings"][i, j] = f"failed: {type(error).__name__}: {error}"[:500]
                continue
            values = {k: table["value"].sel(quantity=k).values for k in STRUCTURE_QUANTITIES}
            values.update({p: sample.natural[p] for p in STRUCTURE_PARAMETERS if p in sample.natural})
            summary = summarise(values, quantities)
            for k in stat_names:
                stats[k][i, j] = summary[k].reindex(quantity=list(quantities)).values
            diag["converged"][i, j] = float(result.converged)
            diag["max_abs_gradient"][i, j] = result.max_abs_gradient
            diag["hessian_positive_definite"][i, j] = float(result.hessian_positive_definite)
            diag["nll"][i, j] = result.nll
            diag["sir_ess"][i, j] = sample.ess
            diag["fit_runtime_s"][i, j] = result.runtime_s
            diag["sampling_runtime_s"][i, j] = time.perf_counter() - started
            diag["sampling_method"][i, j] = sample.method
            diag["warnings"][i, j] = "; ".join([*result.warnings, *([sample.warning] if sample.warning
                                                                     else [])])
    dims = ("release_survival_prior", "dd_window_end_age_yr")
    ds = xr.Dataset({k: (dims + ("quantity",), v) for k, v in stats.items()},
                    coords={"release_survival_prior": list(priors), "dd_window_end_age_yr": list(windows),
                            "quantity": list(quantities),
                            "units": ("quantity", [quantities[q][0] for q in quantities]),
                            "long_name": ("quantity", [quantities[q][1] for q in quantities])})
    for key in ("converged", "hessian_positive_definite"):
        ds[key] = (dims, diag[key].astype(bool))
    for key in ("max_abs_gradient", "nll", "sir_ess", "fit_runtime_s", "sampling_runtime_s"):
        ds[key] = (dims, diag[key])
    ds["sampling_method"] = (dims, diag["sampling_method"].astype(str))
    ds["warnings"] = (dims, diag["warnings"].astype(str))
    ds.attrs.update(carpmodel_version=__version__, seed=seed, draws_per_fit=draws_per_fit,
                    n_proposals=n_proposals, first_year=first_year,
                    description="attribution of the recovery across release-survival prior x "
                                "density-dependence window end age; draws from sample_posterior")
    return ds


def structures_rows(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One dict per structure: diagnostics and ``"<quantity>"`` → (median, lower_95, upper_95)."""
    rows = []
    for prior in ds["release_survival_prior"].values:
        for window in ds["dd_window_end_age_yr"].values:
            cell = ds.sel(release_survival_prior=prior, dd_window_end_age_yr=window)
            row: dict[str, Any] = {"release_survival_prior": str(prior),
                                   "dd_window_end_age_yr": int(window)}
            for key in ("converged", "hessian_positive_definite"):
                row[key] = bool(cell[key])
            for key in ("max_abs_gradient", "nll", "sir_ess", "fit_runtime_s", "sampling_runtime_s"):
                row[key] = float(cell[key])
            row["sampling_method"] = str(cell["sampling_method"].values)
            for q in ds["quantity"].values:
                c = cell.sel(quantity=q)
                row[str(q)] = (float(c["median"]), float(c["lower_95"]), float(c["upper_95"]))
            rows.append(row)
    return rows


def format_structures(ds: xr.Dataset, quantities: Sequence[str] = (
        "hatchery_fraction_last", "gain_from_releases_t", "gain_from_releases_fraction",
        "share_releases", "release_survival")) -> str:
    """A plain-text table: one line per structure, median [95 % interval] of ``quantities``."""
    head = f"{'prior':<12} {'w':>2} {'conv':>5} {'ESS':>6} " + " ".join(f"{q:>30}" for q in quantities)
    lines = [head]
    for r in structures_rows(ds):
        cells = []
        for q in quantities:
            m, lo, hi = r[q]
            cells.append(f"{short_number(m)} [{short_number(lo)}, {short_number(hi)}]".rjust(30))
        lines.append(f"{r['release_survival_prior']:<12} {r['dd_window_end_age_yr']:>2} "
                     f"{str(r['converged']):>5} {r['sir_ess']:>6.0f} " + " ".join(cells))
    return "\n".join(lines)
