"""Calendar-year retrospective peels and Mohn's ρ.

Peels are calendar-year peels, as SS3 retrospectives are (``retro_yr``): peel ``k`` fits the
data up to ``last_data_year = T − k`` with ``T`` the terminal data year
(``config.fit.last_data_year`` or ``config.model.last_year``). With gaps in the survey record a peel
can remove no observation (only the recruitment deviations of the peeled years); that peel is
still a retrospective peel.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.diagnostics.common import depletion, describe, json_ready, terminal_year
from carpmodel.dims import YEAR
from carpmodel.errors import FitError
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import FitResult
from carpmodel.inference.likelihood import predict
from carpmodel.inference.refit import refit
from carpmodel.io.config import RunConfig, default_config

#: Mohn's ρ rule of thumb for longer-lived species (Hurtado-Ferro et al. 2015, ICES J. Mar. Sci.
#: 72: 99–110): values outside (−0.15, 0.20) indicate a retrospective pattern worth acting on
HURTADO_FERRO_RHO_RANGE = (-0.15, 0.20)


def peel_fits(data: Any, config: RunConfig, n_peels: int = 5, *,
              full: FitResult | None = None) -> dict[int, FitResult | None]:
    """Refits for calendar-year peels ``Y = T − k``, k = 1..n_peels, keyed by ``Y`` (descending).

    ``T`` is ``config.fit.last_data_year`` or ``config.model.last_year``. Each refit uses
    ``config.with_fit(last_data_year=Y)``: observations up to Y, recruitment deviations up to
    Y, the engine run to ``config.model.last_year`` with the historical catch and releases. With
    ``full`` (the fit with ``config``) each peel starts from the full fit's estimates (its own
    parameters matched by name) in the coordinates its Hessian whitens
    (:func:`carpmodel.inference.refit.refit`): a peel drops one year of data, so its optimum is close
    (a warm start reached the same NLL as the cold fit to 1e-6 on the bundled data, in a tenth of
    the time); the real fit's procedure (:func:`carpmodel.inference.fitting.fit`, ``config.fit.n_starts``,
    ``config.seed``) is the fallback when that does not converge, and the first attempt when
    ``full`` is not given. Pass the result to :func:`retrospective` and :func:`hindcast` to fit
    the peels once for both. A refit that fails outright is ``None`` (with a ConvergenceWarning).
    """
    if n_peels < 1:
        raise FitError(f"n_peels: expected at least 1, got {n_peels}")
    terminal = terminal_year(config)
    out: dict[int, FitResult | None] = {}
    for k in range(1, n_peels + 1):
        year = terminal - k
        spec = build_spec(data, config.with_fit(last_data_year=year))
        if full is not None:   # conditional on the full fit's survey error
            spec = replace(spec, sigma_survey=full.spec.sigma_survey, survey_rho=full.spec.survey_rho)
        out[year] = refit(spec, source=full, n_starts=config.fit.n_starts, seed=config.seed,
                          cold_first=full is None, label=f"peel {k} (last data year {year})")
    return out


def mohns_rho(trajectories: xr.DataArray) -> float:
    """Mohn's ρ of a retrospective: ``mean_p (X_p(Y_p) − X_0(Y_p)) / X_0(Y_p)``.

    ``trajectories`` has dims ``(peel, year)``; peel index 0 is the reference (full) run and a
    coordinate ``terminal_year`` along ``peel`` gives each peel's terminal year ``Y_p``. Peels
    whose value is not finite are left out. Reference: Mohn (1999) ICES J. Mar. Sci. 56:
    473–488; the averaged form of Hurtado-Ferro et al. (2015) ICES J. Mar. Sci. 72: 99–110.
    """
    reference = trajectories.isel(peel=0)
    terms = []
    for p in range(1, trajectories.sizes["peel"]):
        year = int(trajectories["terminal_year"].values[p])
        full = float(reference.sel(year=year))
        value = float(trajectories.isel(peel=p).sel(year=year))
        term = (value - full) / full
        if np.isfinite(term):
            terms.append(term)
    return float(np.mean(terms)) if terms else float("nan")


@dataclass(frozen=True)
class RetrospectiveResult:
    """Calendar-year retrospective: trajectories per peel and Mohn's ρ of each quantity.

    ``trajectories`` (dims ``peel, year``; peel 0 the full fit): ``biomass_t``, ``ssb_t``,
    ``depletion`` (B/B0), each NaN after the peel's ``terminal_year``; per peel ``converged``,
    ``max_abs_gradient``, ``nll``, ``n_observations`` and ``relative_error_<quantity>`` (the
    terms Mohn's ρ averages). ``mohns_rho`` maps quantity to ρ over the converged peels;
    ``within_rule_of_thumb`` to whether ρ lies in Hurtado-Ferro et al.'s (2015) range for
    longer-lived species, −0.15 to 0.20.
    """

    trajectories: xr.Dataset
    mohns_rho: dict[str, float]
    within_rule_of_thumb: dict[str, bool | None]
    n_peels: int
    n_converged: int
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"peel_type": "calendar year", "mohns_rho": self.mohns_rho,
                      "rule_of_thumb_range": HURTADO_FERRO_RHO_RANGE,
                      "within_rule_of_thumb": self.within_rule_of_thumb, "n_peels": self.n_peels,
                      "n_converged": self.n_converged, "runtime_s": self.runtime_s,
                      "trajectories": self.trajectories})


def _trajectory(result: FitResult | None, n_years: int) -> dict[str, NDArray]:
    if result is None:
        return {name: np.full(n_years, np.nan) for name in ("biomass_t", "ssb_t", "depletion")}
    state, _ = predict(result.spec, result.theta)
    return {"biomass_t": np.asarray(state.biomass_t, float), "ssb_t": np.asarray(state.ssb_t, float),
            "depletion": np.asarray(depletion(state), float)}


def retrospective(data: Any, config: RunConfig | None = None, n_peels: int = 5, *,
                  full: FitResult | None = None,
                  fits: Mapping[int, FitResult | None] | None = None) -> RetrospectiveResult:
    """Retrospective analysis with calendar-year peels and Mohn's ρ.

    Method: refit with ``config.with_fit(last_data_year=T − k)`` for k = 1..n_peels
    (:func:`peel_fits`; SS3 ``retro_yr`` convention: calendar years, so with gaps a peel may
    remove no observation), collect survey biomass, SSB and depletion ``B/B0`` per peel and
    compute :func:`mohns_rho` of each at the peels' terminal years. ``full`` (the fit with
    ``config``) and ``fits`` (from :func:`peel_fits`) are reused when given. References: Mohn
    (1999) ICES J. Mar. Sci. 56: 473–488; Hurtado-Ferro et al. (2015) ICES J. Mar. Sci. 72:
    99–110; Carvalho et al. (2021) Fish. Res. 240: 105959.
    """
    start = time.perf_counter()
    config = default_config() if config is None else config
    if full is None:
        full = refit(build_spec(data, config), n_starts=config.fit.n_starts, seed=config.seed,
                     label="full fit")
        if full is None:
            raise FitError("retrospective: the full fit failed, so there is no reference run")
    if fits is None:
        fits = peel_fits(data, config, n_peels, full=full)
    terminal = terminal_year(config)
    years = np.asarray(full.spec.years)
    peels = [(terminal, full)] + sorted(fits.items(), reverse=True)[:n_peels]
    for year, result in peels:
        if result is not None and not np.array_equal(result.spec.years, years):
            raise FitError(f"retrospective: the fit for last data year {year} runs "
                           f"{result.spec.years[0]}-{result.spec.years[-1]}, the full fit "
                           f"{years[0]}-{years[-1]}: peels must share the full fit's years")
    series: dict[str, list[NDArray]] = {"biomass_t": [], "ssb_t": [], "depletion": []}
    for year, result in peels:
        traj = _trajectory(result, years.size)
        for name in series:
            values = traj[name].copy()
            values[years > year] = np.nan
            series[name].append(values)
    peel_index = np.arange(len(peels))
    ds = xr.Dataset({name: (("peel", YEAR), np.stack(v)) for name, v in series.items()},
                    coords={"peel": peel_index, YEAR: years,
                            "terminal_year": ("peel", [y for y, _ in peels])})
    ds["converged"] = ("peel", [bool(r is not None and r.converged) for _, r in peels])
    ds["max_abs_gradient"] = ("peel", [r.max_abs_gradient if r else np.nan for _, r in peels])
    ds["nll"] = ("peel", [r.nll if r else np.nan for _, r in peels])
    ds["n_observations"] = ("peel", [r.spec.observations.year.size if r else 0 for _, r in peels])
    # a peel that has not converged has no meaningful estimate: kept in the table, not in rho
    usable = ds["converged"] | (ds["peel"] == 0)
    rho = {name: mohns_rho(ds[name].where(usable)) for name in series}
    for name in series:
        full_at = np.array([float(ds[name].isel(peel=0).sel(year=y)) for y, _ in peels])
        peel_at = np.array([float(ds[name].isel(peel=p).sel(year=y)) for p, (y, _) in enumerate(peels)])
        ds[f"relative_error_{name}"] = ("peel", (peel_at - full_at) / full_at)
    low, high = HURTADO_FERRO_RHO_RANGE
    within = {k: (bool(low <= v <= high) if np.isfinite(v) else None) for k, v in rho.items()}
    ds = describe(ds, {
        "biomass_t": ("t", "end-of-year survey biomass per peel (NaN after its terminal year)"),
        "ssb_t": ("t", "spawning stock biomass per peel (NaN after its terminal year)"),
        "depletion": ("1", "survey biomass / unfished survey biomass B0 per peel"),
        "converged": ("1", "fit converged"), "max_abs_gradient": ("1", "largest |gradient| of the fit"),
        "nll": ("1", "total negative log posterior of the fit"),
        "n_observations": ("1", "biomass observations in the fit"),
        **{f"relative_error_{n}": ("1", f"(peel − full)/full of {n} at the peel's terminal year")
           for n in series}},
        peel_type="calendar year: peel k fits data up to terminal year - k; peel 0 is the full fit")
    return RetrospectiveResult(
        trajectories=ds, mohns_rho=rho, within_rule_of_thumb=within, n_peels=len(peels) - 1,
        n_converged=int(ds["converged"].values[1:].sum()), runtime_s=time.perf_counter() - start)
