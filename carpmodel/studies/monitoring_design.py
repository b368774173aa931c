"""The monitoring studies: simulate replicates of each design, refit them, summarise.

:func:`monitoring_design` runs a grid of hatchery-origin sampling designs (fish examined per
year × survey years sampled) for each true release survival; :func:`monitoring_options`
compares hatchery samples with a wild juvenile index. The data come from
:mod:`carpmodel.studies.monitoring`, the refits and intervals from
:mod:`carpmodel.studies.monitoring_refit`, the summaries from
:mod:`carpmodel.studies.monitoring_summary`. :data:`QUICK_DESIGN` is the small grid
``carpmodel monitoring`` runs by default (about a minute); the functions' defaults are the
full study.

Randomness
    ``SeedSequence(seed)`` spawns one stream per (true survival, replicate), shared by every
    design (common random numbers); each spawns three: biomass errors, hatchery draws, juvenile
    index errors. So designs differ by design only, and the biomass record of a replicate is the
    same in every design.

What this identifies and what it does not
    Hatchery-origin samples measure the hatchery share of the fish: survivors of releases
    relative to wild fish. In this model a 1 % change in natural mortality (the Lorenzen M that
    kills small wild fish) moves that share by ~8 %, a 1 % change in release survival by ~1 %,
    and steepness, γ and initial F move it too; so the samples pin the release *contribution* (the
    hatchery share of the stock) and M, not release survival: on the bundled fit the survival
    interval narrows by ~10 % whatever the sample size, and a truth in the prior's tail (0.8) is
    never covered. Separating survival from M needs a direct measure of acute post-release
    survival (the fate of marked fish in the days after release) or of M. Neither tells addition
    from replacement (whether released fish add to the wild ones or take their place in the
    density-dependent juvenile window): that needs the wild juveniles themselves, the index of
    :func:`monitoring_options`. On the bundled fit a relative index (free catchability) of five
    years narrows the interval of γ by ~13 % on the log scale, and the question is moot there: the
    window is counted in numbers and dominated by wild age-0 fish (~5e11 in 2024 against ~6e6
    surviving released fish, a share of ~1e-5), so releases cannot displace wild fish whatever γ
    is; they add. Whether that is right is a question for the model's window, not for monitoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr

from carpmodel.inference.spec import ModelSpec
from carpmodel.priors import Prior
from carpmodel.studies.monitoring import (
    DEFAULT_DESIGN_EFFECT,
    DEFAULT_MISCLASSIFICATION,
    Truth,
    check_spec,
    classified_probability,
    draw_biomass,
    draw_juvenile,
    draw_samples,
    last_survey_years,
    simulate_truths,
    truth_thetas,
)
from carpmodel.studies.monitoring_refit import (
    INTERVAL_PARTS,
    MISCLASSIFICATION_PRIORS,
    SamplingDesign,
    design_spec,
    extend_theta,
    interval_table,
    refit_problem,
    refit_replicates,
    whitening_transform,
)
from carpmodel.studies.monitoring_summary import describe, summarise

__all__ = ["FULL_DESIGN", "QUICK_DESIGN", "monitoring_design", "monitoring_options"]

#: The design grid and replicates of the full study: the defaults of :func:`monitoring_design`
#: (3 true survivals × 16 designs × 20 replicates, and the four options of
#: :func:`monitoring_options` × 20; about 16 min on two quiet cores). experiments/05_monitoring_design
#: runs it.
FULL_DESIGN: dict[str, Any] = {"true_survivals": (0.05, 0.3, 0.8),
                               "fish_per_year": (0, 50, 200, 500, 1000, 2000),
                               "years_of_sampling": (1, 3, 5), "n_replicates": 20}
#: The small grid ``carpmodel monitoring`` runs by default, about a minute on two quiet cores
#: with the juvenile-index comparison (30 refits at ~2.3 s of CPU each on the 0.2 model; that
#: comparison is two thirds of them): one true survival (the prior's centre), 1,000 fish a year
#: or none, in the last five survey years, 5 replicates (coverage then has a Monte Carlo SE of
#: ~0.1: a first look, not an answer; run :data:`FULL_DESIGN` for that).
QUICK_DESIGN: dict[str, Any] = {"true_survivals": (0.3,), "fish_per_year": (0, 1000),
                                "years_of_sampling": (5,), "n_replicates": 5}


@dataclass(frozen=True)
class _Settings:
    design_effect: float
    misclassification: tuple[float, float]
    estimate_misclassification: bool
    priors: tuple[Prior, Prior]


def _streams(seed: int, n_truths: int, n_replicates: int) -> list[list[list[np.random.SeedSequence]]]:
    """streams[s][r] = [biomass, hatchery, juvenile] seed sequences (common random numbers)."""
    children = np.random.SeedSequence(seed).spawn(n_truths * n_replicates)
    return [[children[s * n_replicates + r].spawn(3) for r in range(n_replicates)] for s in range(n_truths)]


def _run_design(result: Any, truth: Truth, s: int, design: SamplingDesign,
                streams: list[list[np.random.SeedSequence]], settings: _Settings) -> dict[str, Any]:
    """Simulate R replicates of one design around truth s, refit them, return per-replicate results."""
    spec = result.spec
    n_free_fit = len(spec.estimated)
    sample_years = last_survey_years(spec, design.years_of_sampling) if design.fish_per_year > 0 else []
    juvenile_years = last_survey_years(spec, design.juvenile_years_of_sampling)
    q_j = None
    if design.juvenile_cv is not None:
        q_j = 1.0 / float(np.mean(truth.wild_window[s, np.searchsorted(spec.years, juvenile_years)]))
    structure, extra = design_spec(spec, design, misclassification=settings.misclassification,
                                   estimate_misclassification=settings.estimate_misclassification,
                                   priors=settings.priors, juvenile_q=q_j)
    biomass, samples, juvenile = [], [], []
    for bio_seq, hatch_seq, juv_seq in streams:
        biomass.append(draw_biomass(truth, s, np.random.default_rng(bio_seq)))
        samples.append(draw_samples(truth, s, spec.years, [int(y) for y in sample_years],
                                    design.fish_per_year, settings.design_effect,
                                    settings.misclassification, np.random.default_rng(hatch_seq)))
        if design.juvenile_cv is not None:
            juvenile.append(draw_juvenile(truth, s, spec.years, [int(y) for y in juvenile_years],
                                          design.juvenile_cv, q_j, np.random.default_rng(juv_seq)))
    biomass_arr = np.array(biomass)
    problem = refit_problem(structure, biomass_arr, samples,
                            juvenile if design.juvenile_cv is not None else None)
    start = extend_theta(truth.theta[s], n_free_fit, extra)[0]
    # chord matrix: the Hessian at the truth for noise-free data of this design
    expected_samples = tuple(replace(h, n_hatchery=float(h.n_examined) * float(p)) for h, p in zip(
        samples[0], classified_probability(truth.share[s, np.searchsorted(spec.years, sample_years)],
                                           settings.misclassification), strict=True))
    expected_juvenile = None
    if design.juvenile_cv is not None:
        expected_juvenile = [tuple((y, q_j * float(truth.wild_window[s, np.searchsorted(spec.years, y)]), cv)
                                   for y, _, cv in juvenile[0])]
    noise_free = refit_problem(structure, truth.survey_t[s][None], [expected_samples], expected_juvenile)
    transform = whitening_transform(noise_free, start)
    refits = refit_replicates(problem, np.repeat(start[None], len(streams), axis=0), transform)
    counts = np.full((len(streams), len(sample_years)), np.nan)
    for r, rows in enumerate(samples):
        counts[r, :len(rows)] = [h.n_hatchery for h in rows]
    return {"intervals": interval_table(problem, refits), "converged": refits.converged,
            "biomass": biomass_arr, "counts": counts,
            "sample_years": sample_years, "problem": problem, "refits": refits}


def _settings(design_effect: float, misclassification: tuple[float, float], estimate_misclassification: bool,
              misclassification_priors: tuple[Prior, Prior] | None) -> _Settings:
    return _Settings(design_effect=float(design_effect),
                     misclassification=(float(misclassification[0]), float(misclassification[1])),
                     estimate_misclassification=estimate_misclassification,
                     priors=misclassification_priors or MISCLASSIFICATION_PRIORS)


def monitoring_design(result: Any, *, true_survivals: Sequence[float] = (0.05, 0.3, 0.8),
                      fish_per_year: Sequence[int] = (0, 50, 200, 500, 1000, 2000),
                      years_of_sampling: Sequence[int] = (1, 3, 5), n_replicates: int = 20,
                      seed: int = 20260601, design_effect: float = DEFAULT_DESIGN_EFFECT,
                      misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                      estimate_misclassification: bool = True,
                      misclassification_priors: tuple[Prior, Prior] | None = None,
                      juvenile_index_cv: float | None = None,
                      progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Simulate-and-refit study of hatchery-origin sampling (module notes give the method).

    Returns a Dataset with dims ``(true_survival, fish_per_year, years_of_sampling, replicate)``:
    per replicate the estimate and 95 % interval of release survival, release contribution and
    release gain (and dd_strength with a juvenile index), their truth, ``converged``, the
    simulated data; summaries over converged replicates (``*_width_median``, ``*_coverage`` with
    ``*_coverage_mc_se``, ``*_narrowing`` against fish_per_year = 0, the biomass record alone,
    ``*_median_estimate``, ``converged_share``). ``fish_per_year = 0`` is one design (nothing is
    sampled), shown for every ``years_of_sampling``. ``juvenile_index_cv`` adds a wild juvenile
    index in the same years to every design (0 fish then means the index alone).
    ``progress(done, total)`` is called before the first design and after each.
    """
    start_time = time.perf_counter()
    spec = result.spec
    check_spec(spec)
    if n_replicates < 2:
        raise ValueError(f"n_replicates: expected at least 2, got {n_replicates}")
    fish = sorted({int(f) for f in fish_per_year} | {0})
    years = sorted({int(k) for k in years_of_sampling})
    for k in years:
        last_survey_years(spec, k)
    if any(k < 1 for k in years):
        raise ValueError("years_of_sampling: expected values >= 1")
    settings = _settings(design_effect, misclassification, estimate_misclassification,
                         misclassification_priors)
    survivals = [float(s) for s in true_survivals]
    truth = simulate_truths(result, truth_thetas(result, survivals))
    streams = _streams(seed, len(survivals), n_replicates)
    shape = (len(survivals), len(fish), len(years), n_replicates)
    quantities = ["release_survival", "release_contribution", "release_gain_t"]
    if juvenile_index_cv is not None:
        quantities.append("dd_strength")
    values = {q: np.full(shape + (len(INTERVAL_PARTS),), np.nan) for q in quantities}
    converged = np.zeros(shape, bool)
    max_k = max(years)
    sample_year_coord = last_survey_years(spec, max_k)
    counts = np.full(shape + (max_k,), np.nan)
    biomass = np.full((len(survivals), n_replicates, spec.observations.year.size), np.nan)
    jobs = [(s, f, k) for s in range(len(survivals)) for f in range(len(fish))
            for k in ([0] if fish[f] == 0 and juvenile_index_cv is None else range(len(years)))]
    if progress is not None:
        progress(0, len(jobs))
    for done, (s, f, k) in enumerate(jobs, start=1):
        design = SamplingDesign(fish[f], years[k], juvenile_index_cv,
                         years[k] if juvenile_index_cv is not None else 0)
        out = _run_design(result, truth, s, design, streams[s], settings)
        target = (s, f, slice(None)) if fish[f] == 0 and juvenile_index_cv is None else (s, f, k)
        for q in quantities:
            values[q][target] = out["intervals"][q]
        converged[target] = out["converged"]
        if fish[f] > 0:
            counts[s, f, k, :, max_k - years[k]:] = out["counts"]
        biomass[s] = out["biomass"]
        if progress is not None:
            progress(done, len(jobs))
    dims = ("true_survival", "fish_per_year", "years_of_sampling", "replicate")
    true_values = {"release_survival": truth.survival, "release_contribution": truth.contribution,
              "release_gain_t": truth.gain_t, "dd_strength": truth.dd_strength}
    data_vars: dict[str, Any] = {"converged": (dims, converged),
                                 "n_hatchery": ((*dims, "sample_year"), counts),
                                 "biomass_obs_t": (("true_survival", "replicate", "obs_year"), biomass)}
    for q in quantities:
        data_vars[f"{q}_truth"] = ("true_survival", true_values[q])
        for j, part in enumerate(INTERVAL_PARTS):
            data_vars[f"{q}_{part}"] = (dims, values[q][..., j])
    coords = {"true_survival": survivals, "fish_per_year": fish, "years_of_sampling": years,
              "replicate": np.arange(n_replicates), "sample_year": sample_year_coord,
              "obs_year": np.asarray(spec.observations.year)}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["n_hatchery_mean"] = ds["n_hatchery"].mean(("replicate", "sample_year"))
    ds = summarise(ds, quantities, {"fish_per_year": 0})
    ds = describe(ds, quantities, "no hatchery samples" if juvenile_index_cv is None
                   else "the juvenile index but no hatchery samples")
    ds["true_survival"].attrs.update(units="1", long_name="true acute post-release survival")
    ds["fish_per_year"].attrs.update(units="fish/yr", long_name="fish examined for hatchery origin per year")
    ds["years_of_sampling"].attrs.update(units="yr", long_name="survey years sampled (the last k)")
    ds.attrs.update(_method_attrs(spec, settings, seed, n_replicates, juvenile_index_cv,
                                  time.perf_counter() - start_time))
    return ds


def _method_attrs(spec: ModelSpec, settings: _Settings, seed: int, n_replicates: int,
                  juvenile_index_cv: float | None, runtime_s: float) -> dict[str, Any]:
    years = np.asarray(spec.observations.year)
    return {
        "title": "Monitoring design: hatchery-origin samples and release survival",
        "truth": "fitted theta with release_survival set to each true value (logit scale via its Free); "
                 "the other parameters and the recruitment deviations are the fit's, so a truth does "
                 "not fit the real record as well as the fit (fine for a design study)",
        "sample_years": f"the last k survey years of {', '.join(str(y) for y in years)}",
        "biomass_data": "fitted data's years and CVs, lognormal errors around q*B of the truth",
        "hatchery_samples": f"beta-binomial, design effect {settings.design_effect:g}, misclassification "
                            f"(hatchery read as wild, wild read as hatchery) = {settings.misclassification}; "
                            + ("rates estimated with Beta priors "
                               + ", ".join(f"{p.parameters['mean']:g} (sd {p.parameters['sd']:g})"
                                           for p in settings.priors)
                               if settings.estimate_misclassification else "rates fixed at the truth"),
        "juvenile_index_cv": "none" if juvenile_index_cv is None else float(juvenile_index_cv),
        "refit": "from the truth, batched BFGS then Newton in whitened coordinates (Hessian at the truth for "
                 "noise-free data, re-whitened at a replicate's end point when far from the identity); "
                 "converged as fit(): positive definite Hessian, max |gradient| < 1e-3; refits that do not "
                 "converge are left out of the summaries",
        "interval_method": "delta method from the inverse Hessian: release survival on its logit scale, "
                           "release contribution on the log scale, release gain on the natural scale",
        "narrowing": "1 - median over replicates of width(design)/width(no hatchery samples), paired "
                     "by replicate (common random numbers)",
        "randomness": "SeedSequence(seed).spawn(n_true_survivals * n_replicates), one stream per (true "
                      "survival, replicate) shared by all designs; each spawns biomass, hatchery, juvenile",
        "seed": int(seed), "n_replicates": int(n_replicates), "runtime_s": round(runtime_s, 1),
    }


def monitoring_options(result: Any, *, true_survival: float = 0.3, fish_per_year: int = 1000,
                       years_of_sampling: int = 5, juvenile_index_cv: float = 0.3, n_replicates: int = 20,
                       seed: int = 20260601, design_effect: float = DEFAULT_DESIGN_EFFECT,
                       misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                       estimate_misclassification: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Hatchery samples versus a wild juvenile index, the second monitoring option.

    Four designs on the same replicates (common random numbers): the biomass record only;
    hatchery samples (``fish_per_year`` for ``years_of_sampling`` years); a lognormal index of
    wild fish leaving the density-dependence window (CV ``juvenile_index_cv``, same years,
    catchability estimated with a vague lognormal prior, sd_log 2: a relative index); both.
    Dims ``(option, replicate)``; quantities as in :func:`monitoring_design` plus dd_strength
    (log-scale interval), which decides addition versus replacement. Narrowing is against the
    biomass record only. ``progress(done, total)`` is called before the first design and after each.
    """
    start_time = time.perf_counter()
    spec = result.spec
    check_spec(spec)
    settings = _settings(design_effect, misclassification, estimate_misclassification, None)
    truth = simulate_truths(result, truth_thetas(result, [true_survival]))
    streams = _streams(seed, 1, n_replicates)[0]
    options = {"biomass record only": SamplingDesign(0, years_of_sampling),
               "hatchery samples": SamplingDesign(fish_per_year, years_of_sampling),
               "juvenile index": SamplingDesign(0, years_of_sampling, juvenile_index_cv, years_of_sampling),
               "samples + juvenile index": SamplingDesign(fish_per_year, years_of_sampling, juvenile_index_cv,
                                                   years_of_sampling)}
    quantities = ["release_survival", "release_contribution", "release_gain_t", "dd_strength"]
    values = {q: np.full((len(options), n_replicates, len(INTERVAL_PARTS)), np.nan) for q in quantities}
    converged = np.zeros((len(options), n_replicates), bool)
    if progress is not None:
        progress(0, len(options))
    for o, design in enumerate(options.values()):
        out = _run_design(result, truth, 0, design, streams, settings)
        if progress is not None:
            progress(o + 1, len(options))
        for q in quantities:
            values[q][o] = out["intervals"][q]
        converged[o] = out["converged"]
    true_values = {"release_survival": truth.survival[0], "release_contribution": truth.contribution[0],
              "release_gain_t": truth.gain_t[0], "dd_strength": truth.dd_strength[0]}
    data_vars: dict[str, Any] = {"converged": (("option", "replicate"), converged)}
    for q in quantities:
        data_vars[f"{q}_truth"] = ((), true_values[q])
        for j, part in enumerate(INTERVAL_PARTS):
            data_vars[f"{q}_{part}"] = (("option", "replicate"), values[q][..., j])
    ds = xr.Dataset(data_vars, coords={"option": list(options), "replicate": np.arange(n_replicates)})
    ds = summarise(ds, quantities, {"option": "biomass record only"})
    ds = describe(ds, quantities, "the biomass record only")
    ds.attrs.update(_method_attrs(spec, settings, seed, n_replicates, juvenile_index_cv,
                                  time.perf_counter() - start_time))
    ds.attrs.update(true_survival=float(true_survival), fish_per_year=int(fish_per_year),
                    years_of_sampling=int(years_of_sampling))
    return ds
