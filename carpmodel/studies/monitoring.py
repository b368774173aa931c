"""Monitoring design: which samples would tell how many released fish survive.

The biomass record alone does not inform acute release survival (its posterior equals its
prior). The monitoring study asks what monitoring would: it simulates data from known truths,
refits, and reports how the 95 % intervals narrow and whether they cover the truth. It is
four modules, one job each:

- this module: the truths and the simulated data (biomass record, hatchery-origin samples,
  juvenile index);
- :mod:`carpmodel.studies.monitoring_refit`: the batched refits of the replicates of one design
  and their delta-method intervals;
- :mod:`carpmodel.studies.monitoring_design`: the studies (``monitoring_design``,
  ``monitoring_options``), which simulate, refit and summarise;
- :mod:`carpmodel.studies.monitoring_summary`: summaries over replicates, the recommendation
  and the text table.

The figures are in :mod:`carpmodel.report.study_figures`; ``carpmodel monitoring`` is
:func:`carpmodel.study_stages.monitoring_stage` and :func:`carpmodel.study_stages.write_monitoring`.

Truths and data
    Truth: the fitted ``theta`` with ``release_survival`` set to each true value (through the
    spec's :class:`~carpmodel.inference.spec.Free`, i.e. on its logit scale). The other parameters
    then no longer fit the real record as well; that is fine for a design study, which needs a
    plausible truth, not the best one. Recruitment deviations are those of the fit (the truth's).
    Data of one replicate: the biomass record on the fitted data's years and CVs,
    ``log B_obs = log(q·B_true) + σ_y·z`` (the likelihood's median-unbiased lognormal), and
    hatchery-origin samples in the last k survey years (k = 5: 2020–2024; 3: 2022–2024;
    1: 2024): ``n`` fish examined, classified hatchery with probability
    ``p = π(1 − m_hw) + (1 − π)m_wh``, beta-binomial with intra-class correlation
    ``ρ = (deff − 1)/(n − 1)`` (π the truth's hatchery share of survey-age numbers, end of year).
    The sampled years are the real survey years: the study asks "had the rescue centre examined
    n fish a year in those years, as if every release since 2002 had carried a mass mark".
    The juvenile index is lognormal around the truth's wild fish leaving the density-dependence
    window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import FitError
from carpmodel.inference.likelihood import observation_sd, predict, survey_prediction_t
from carpmodel.inference.spec import HatcherySample, ModelSpec, Observations

__all__ = [
    "DEFAULT_DESIGN_EFFECT",
    "DEFAULT_MISCLASSIFICATION",
    "Truth",
    "check_spec",
    "classified_probability",
    "draw_biomass",
    "draw_juvenile",
    "draw_samples",
    "last_survey_years",
    "sample_hatchery_counts",
    "simulate_juvenile_index",
    "simulate_monitoring_data",
    "truth_thetas",
    "simulate_truths",
]

#: design effect of the simulated samples: fish come from a few hauls (assumed: 2 is a common
#: value for cluster samples of fish; it halves the effective sample size)
DEFAULT_DESIGN_EFFECT = 2.0
#: true misclassification rates (hatchery read as wild, wild read as hatchery) of a mass otolith
#: mark (e.g. alizarin red S or calcein) read under fluorescence: marks are sometimes missed,
#: false marks are rare (assumed values; a validation study should measure them)
DEFAULT_MISCLASSIFICATION = (0.05, 0.0005)


@dataclass(frozen=True)
class Truth:
    """Engine output of S truths (one batch), what the data are simulated around."""

    theta: NDArray            # (S, n) on the fitted spec's layout
    survival: NDArray         # (S,)
    survey_t: NDArray         # (S, n_obs) q·B at the observation years
    obs_sd: NDArray           # (S, n_obs)
    share: NDArray            # (S, year) hatchery share of survey-age numbers
    wild_window: NDArray      # (S, year) wild fish leaving the density-dependence window
    contribution: NDArray     # (S,)
    gain_t: NDArray           # (S,)
    dd_strength: NDArray      # (S,)


def _survival_index(spec: ModelSpec) -> int:
    names = [f.field for f in spec.estimated]
    if "release_survival" not in names:
        raise FitError("release_survival is not estimated in this fit; the monitoring design needs it free")
    return names.index("release_survival")


def check_spec(spec: ModelSpec) -> None:
    """Refuse (FitError) a fit that uses data the study does not simulate."""
    present = [name for name, value in (("hatchery_fractions", spec.hatchery_fractions),
                                        ("upper_bound", spec.upper_bound),
                                        ("hatchery_samples", spec.hatchery_samples),
                                        ("juvenile_index", spec.juvenile_index)) if value]
    if present:
        raise FitError(f"the monitoring design simulates only the biomass record; the fit also uses "
                       f"{', '.join(present)}: refit without them first")


def simulate_truths(result: Any, thetas: NDArray) -> Truth:
    """Run the engine once for S truths ``thetas (S, n)`` of ``result.spec`` (and once more
    without the historical releases, for the gain)."""
    spec = result.spec
    i = _survival_index(spec)
    thetas = np.atleast_2d(thetas)
    state, u = predict(spec, thetas)
    without, _ = predict(spec, thetas, release_fish=np.zeros_like(spec.drivers.release_fish))
    survey = np.asarray(survey_prediction_t(spec, state, u), float)
    sd = np.asarray(observation_sd(spec, u), float) * np.ones_like(survey)
    return Truth(theta=thetas, survival=spec.estimated[i].from_theta(thetas[:, i]), survey_t=survey,
                 obs_sd=sd, share=state.hatchery_fraction_numbers, wild_window=state.wild_window_survivors,
                 contribution=state.hatchery_fraction_biomass[:, -1],
                 gain_t=state.biomass_t[:, -1] - without.biomass_t[:, -1],
                 dd_strength=np.broadcast_to(np.asarray(u.params.dd_strength, float),
                                             thetas.shape[:1]).copy())


def truth_thetas(result: Any, survivals: Sequence[float]) -> NDArray:
    """The fitted theta with release survival set to each value (through its Free)."""
    i = _survival_index(result.spec)
    free = result.spec.estimated[i]
    thetas = np.repeat(np.asarray(result.theta, float)[None], len(survivals), axis=0)
    thetas[:, i] = free.to_theta(np.asarray(survivals, float))
    return thetas


def sample_hatchery_counts(p: Any, n_examined: Any, design_effect: float, rng: np.random.Generator,
                           size: Any = None) -> NDArray:
    """Fish classified hatchery among ``n_examined``: beta-binomial with mean ``n·p``.

    ``ρ = (deff − 1)/(n − 1)``; the probability of a sample is ``P ~ Beta(p(1 − ρ)/ρ, (1 − p)(1 − ρ)/ρ)``
    and the count ``Binomial(n, P)`` (the model of
    :func:`~carpmodel.inference.likelihood.hatchery_sample_nll`);
    ``deff = 1`` is the binomial. Needs ``1 ≤ deff < n`` where ``n > 1``.
    """
    p = np.asarray(p, float)
    n = np.asarray(n_examined, dtype=np.int64)
    if design_effect < 1.0:
        raise ValueError(f"design_effect: expected >= 1, got {design_effect}")
    if np.any((n > 1) & (design_effect >= n)):
        raise ValueError(f"design_effect {design_effect} needs more than {design_effect:g} fish per sample")
    shape = np.broadcast_shapes(p.shape, n.shape) if size is None else size
    rho = np.where(n > 1, (design_effect - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
    prob = np.broadcast_to(p, shape)
    if np.any(rho > 0):
        safe = np.where(rho > 0, rho, 0.5)
        a = np.clip(p * (1.0 - safe) / safe, 1e-12, None)
        b = np.clip((1.0 - p) * (1.0 - safe) / safe, 1e-12, None)
        prob = np.where(rho > 0, rng.beta(a, b, size=shape), prob)
    return rng.binomial(np.broadcast_to(n, shape), prob)


def classified_probability(share: NDArray, misclassification: tuple[float, float]) -> NDArray:
    """Probability that an examined fish is read as hatchery: ``π(1 − m_hw) + (1 − π)m_wh``."""
    m_hw, m_wh = misclassification
    return share * (1.0 - m_hw) + (1.0 - share) * m_wh


def draw_biomass(truth: Truth, s: int, rng: np.random.Generator) -> NDArray:
    """A biomass record (t) around truth ``s``: ``q·B·exp(σ·z)`` at the observation years."""
    return truth.survey_t[s] * np.exp(truth.obs_sd[s] * rng.standard_normal(truth.survey_t.shape[1]))


def draw_samples(truth: Truth, s: int, years: NDArray, sample_years: Sequence[int], fish_per_year: int,
                 design_effect: float, misclassification: tuple[float, float],
                 rng: np.random.Generator) -> tuple[HatcherySample, ...]:
    """Hatchery-origin samples of ``fish_per_year`` fish in each of ``sample_years`` around truth
    ``s`` (``years``: the model years); empty without fish or years."""
    if fish_per_year <= 0 or not len(sample_years):
        return ()
    share = truth.share[s, np.searchsorted(years, sample_years)]
    p = classified_probability(share, misclassification)
    counts = sample_hatchery_counts(p, np.full(len(sample_years), fish_per_year), design_effect, rng)
    return tuple(HatcherySample(int(y), int(fish_per_year), int(k), float(design_effect))
                 for y, k in zip(sample_years, counts, strict=True))


def draw_juvenile(truth: Truth, s: int, years: NDArray, index_years: Sequence[int], cv: float, q: float,
                  rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    """A lognormal juvenile index ``q·W·exp(cv·z)`` around truth ``s``: ``((year, index, cv), ...)``."""
    true = q * truth.wild_window[s, np.searchsorted(years, index_years)]
    noisy = true * np.exp(cv * rng.standard_normal(len(index_years)))
    return tuple((int(y), float(v), float(cv)) for y, v in zip(index_years, noisy, strict=True))


def last_survey_years(spec: ModelSpec, k: int) -> NDArray:
    """The last ``k`` survey years of the fitted record (ValueError beyond the record)."""
    years = np.asarray(spec.observations.year)
    if not 0 <= k <= years.size:
        raise ValueError(f"years_of_sampling: expected 0..{years.size} (survey years), got {k}")
    return years[years.size - k:] if k else years[:0]


def simulate_monitoring_data(result: Any, truth_theta: Any, *, sample_years: Sequence[int],
                             fish_per_year: int,
                             design_effect: float = DEFAULT_DESIGN_EFFECT,
                             misclassification: tuple[float, float] = DEFAULT_MISCLASSIFICATION,
                             rng: np.random.Generator) -> tuple[Observations, tuple[HatcherySample, ...]]:
    """A simulated biomass record and hatchery-origin samples around one truth.

    ``truth_theta`` is a parameter vector of ``result.spec`` (e.g. the fit with another release
    survival). Biomass: the fitted data's years and CVs, lognormal errors around the truth's
    ``q·B`` (median-unbiased, as the likelihood). Samples: ``fish_per_year`` fish in each of
    ``sample_years`` (use the last k survey years, e.g. 2020–2024 for k = 5), counts from
    :func:`sample_hatchery_counts` around the truth's hatchery share of survey-age numbers with
    ``misclassification = (hatchery read as wild, wild read as hatchery)``.
    Draw order from ``rng``: the biomass errors, then per sample year a beta and a binomial draw.
    """
    spec = result.spec
    check_spec(spec)
    truth = simulate_truths(result, np.asarray(truth_theta, float)[None])
    obs = replace(spec.observations, biomass_t=draw_biomass(truth, 0, rng))
    bad = [int(y) for y in sample_years if int(y) not in set(spec.years.tolist())]
    if bad:
        raise ValueError(f"sample_years outside the model years {spec.years[0]}-{spec.years[-1]}: {bad}")
    samples = draw_samples(truth, 0, spec.years, [int(y) for y in sample_years], int(fish_per_year),
                            design_effect, misclassification, rng)
    return obs, samples


def simulate_juvenile_index(result: Any, truth_theta: Any, *, years: Sequence[int], cv: float = 0.3,
                            q: float | None = None,
                            rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    """A lognormal index ``q·W·exp(cv·z)`` of wild fish leaving the density-dependence window.

    ``q`` defaults to one over the truth's mean number over ``years`` (an index near 1).
    Returns ``((year, index, cv), ...)``, the form of ``ModelSpec.juvenile_index``.
    """
    spec = result.spec
    truth = simulate_truths(result, np.asarray(truth_theta, float)[None])
    years = [int(y) for y in years]
    if q is None:
        q = 1.0 / float(np.mean(truth.wild_window[0, np.searchsorted(spec.years, years)]))
    return draw_juvenile(truth, 0, spec.years, years, cv, q, rng)
