"""Posterior predictive checks: reported values the fit does not use, against the model's intervals.

The reported values are rows of the data directory's ``auxiliary_observations.csv``
(:class:`~carpmodel.io.inputs.AuxiliaryObservations`), so a run on another data directory
checks that directory's numbers; a quantity the file does not hold is not checked.

What each reported value measures decides what it is compared with:

- ``mean_length_cm``, ``mean_weight_g``: the fixed-point net sample, so the mean size of what
  the net catches at its fitted selectivity (:class:`~carpmodel.inference.observations.NetMeanSize`;
  when the fit uses the sample these are fitted values, and the check says whether they are
  reproduced within their error);
- ``numbers_fish``: the acoustic biomass divided by the net's mean weight (555 million fish in
  2022 = 114,100 t / 206 g), so the model's ``q·B / W̄_net``, not a count of fish.

Intervals are posterior predictive: each draw's prediction times its observation error (the
survey's ``σ_y``; the net sample's lognormal errors), 2.5-97.5 % quantiles.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from carpmodel.inference.fitting import FitResult
from carpmodel.inference.likelihood import predict
from carpmodel.inference.observations import (
    NET_CORRELATION,
    NET_LENGTH_SD_LOG,
    NET_WEIGHT_SD_LOG,
    NetMeanSize,
)
from carpmodel.inference.spec import CV_REFERENCE

if TYPE_CHECKING:
    from carpmodel.io.inputs import AuxiliaryObservations

__all__ = ["CHECKED_QUANTITIES", "posterior_predictive", "reported_values"]

#: length CV within an age class when the fit has no net sample (life_history length_cv)
LENGTH_CV_DEFAULT = 0.1
#: auxiliary quantities checked, in report order: the number (fish), mean length (cm) and mean
#: weight (g) of the survey-age fish at the end of the year
CHECKED_QUANTITIES = ("numbers_fish", "mean_length_cm", "mean_weight_g")


def reported_values(auxiliary: AuxiliaryObservations) -> list[tuple[str, str, int, float, str]]:
    """The reported values to check: ``(key, quantity, year, value, unit)`` for each row of a
    :data:`CHECKED_QUANTITIES` quantity, in that order, then by the file's row order.

    ``key`` is the quantity's name; a quantity reported in several years gets one key per year,
    ``<quantity>_<year>``.
    """
    out = []
    for quantity in CHECKED_QUANTITIES:
        rows = [i for i, q in enumerate(auxiliary.quantity) if q == quantity]
        for i in rows:
            year = int(auxiliary.year[i])
            key = quantity if len(rows) == 1 else f"{quantity}_{year}"
            out.append((key, quantity, year, float(auxiliary.value[i]), str(auxiliary.unit[i])))
    return out


def posterior_predictive(result: FitResult, thetas: np.ndarray, auxiliary: AuxiliaryObservations, *,
                         seed: int = 20260601) -> dict[str, Any]:
    """Reported values of :func:`reported_values` against their posterior predictive intervals.

    ``thetas (n_draws, n_parameters)``: parameter draws. Returns ``{key: {year, reported, unit,
    median, lower_95, upper_95, reported_inside_95, compared_with}}``; a value outside the model
    years is not checked.
    """
    spec = result.spec
    checks = [c for c in reported_values(auxiliary) if spec.years[0] <= c[2] <= spec.years[-1]]
    if not checks:
        return {}
    years = np.array(sorted({c[2] for c in checks}))
    net = next((s for s in spec.samples if isinstance(s, NetMeanSize)), None)
    length_cv = net.length_cv if net is not None else LENGTH_CV_DEFAULT
    probe = NetMeanSize(year=years, mean_length_cm=np.ones(years.size), mean_weight_g=np.ones(years.size),
                        length_cv=length_cv)
    check_spec = replace(spec, samples=(probe,))
    thetas = np.atleast_2d(thetas)
    state, u = predict(check_spec, thetas)
    size = probe.predict(check_spec, state, u)
    biomass = (np.asarray(u.params.survey_q)[..., None]
               * state.biomass_t[..., np.searchsorted(spec.years, years)])
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = thetas.shape[0]
    eps_l = rng.standard_normal((n, years.size))
    eps_w = NET_CORRELATION * eps_l + np.sqrt(1 - NET_CORRELATION**2) * rng.standard_normal((n, years.size))
    sigma = float(spec.sigma_survey) * np.where(
        np.isin(years, spec.observations.year),
        np.interp(years, spec.observations.year, spec.observations.cv), CV_REFERENCE) / CV_REFERENCE
    eps_b = rng.standard_normal((n, years.size))
    predictive = {
        "mean_length_cm": size["mean_length_cm"] * np.exp(NET_LENGTH_SD_LOG * eps_l),
        "mean_weight_g": size["mean_weight_g"] * np.exp(NET_WEIGHT_SD_LOG * eps_w),
        "numbers_fish": biomass * 1e6 * np.exp(sigma * eps_b)
        / (size["mean_weight_g"] * np.exp(NET_WEIGHT_SD_LOG * eps_w))}
    compared = {"mean_length_cm": "mean length of the net sample at its fitted selectivity",
                "mean_weight_g": "mean weight of the net sample at its fitted selectivity",
                "numbers_fish": "acoustic biomass q·B over the net sample's mean weight"}
    out: dict[str, Any] = {}
    for key, quantity, year, reported, unit in checks:
        values = predictive[quantity][:, int(np.searchsorted(years, year))]
        lo, mid, hi = np.quantile(values, [0.025, 0.5, 0.975])
        out[key] = {"year": year, "reported": reported, "unit": unit, "median": float(mid),
                    "lower_95": float(lo), "upper_95": float(hi),
                    "reported_inside_95": bool(lo <= reported <= hi), "compared_with": compared[quantity]}
    return out
