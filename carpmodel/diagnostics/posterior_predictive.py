"""Posterior predictive checks: reported values the fit does not use, against the model's intervals.

The reported values are rows of the data directory's ``auxiliary_observations.csv``
(:class:`~carpmodel.io.inputs.AuxiliaryObservations`), so a run on another data directory
checks that directory's numbers; a quantity the file does not hold is not checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from carpmodel.inference.fitting import FitResult
from carpmodel.inference.likelihood import predict
from carpmodel.model.growth import weight_g

if TYPE_CHECKING:
    from carpmodel.io.inputs import AuxiliaryObservations

__all__ = ["CHECKED_QUANTITIES", "posterior_predictive", "reported_values"]

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


def posterior_predictive(result: FitResult, thetas: np.ndarray,
                         auxiliary: AuxiliaryObservations) -> dict[str, Any]:
    """Reported quantities the fit does not use, against their posterior predictive intervals.

    For each reported value of :func:`reported_values` in a model year: the number of survey-age
    fish (ages above ``survey_min_age_yr``) at the end of that year, or their mean length (cm) or
    mean weight (g, ``W = a·L^b`` at each cohort's length), for every parameter vector of
    ``thetas (n_draws, n_parameters)``. Returns ``{key: {year, reported, unit, median, lower_95,
    upper_95, reported_inside_95}}`` (2.5, 50 and 97.5 % quantiles over the draws); a value
    outside the model years is not checked. On the bundled data: 555 million fish at the end of
    2022, 27.64 cm and 262.39 g at the end of 2024.
    """
    spec = result.spec
    checks = reported_values(auxiliary)
    if not checks:
        return {}
    state, u = predict(spec, thetas, keep_numbers=True)
    amin = spec.base.survey_min_age_yr
    out: dict[str, Any] = {}

    def end_of_year(year: int) -> tuple[np.ndarray, np.ndarray] | None:
        if year == spec.years[-1]:
            numbers, length_state = state.final_numbers, state.final_length_state_cm
            body = np.maximum(length_state, np.asarray(u.params.hatch_length_cm)[..., None, None])
        elif year in spec.years[:-1]:
            i = int(np.searchsorted(spec.years, year)) + 1
            numbers, body = state.numbers[..., i, :, :], state.length_cm[..., i, :, :]
        else:
            return None
        return numbers[..., amin + 1:], body[..., amin + 1:]

    for key, quantity, year, reported, unit in checks:
        got = end_of_year(year)
        if got is None:
            continue
        numbers, body = got
        total = numbers.sum(axis=(-2, -1))
        if quantity == "numbers_fish":
            values = total
        elif quantity == "mean_length_cm":
            values = (numbers * body).sum(axis=(-2, -1)) / total
        else:
            weight = weight_g(body, np.asarray(u.params.lw_a)[..., None, None],
                              np.asarray(u.params.lw_b)[..., None, None])
            values = (numbers * weight).sum(axis=(-2, -1)) / total
        lo, mid, hi = np.quantile(values, [0.025, 0.5, 0.975])
        out[key] = {"year": year, "reported": reported, "unit": unit, "median": float(mid),
                    "lower_95": float(lo), "upper_95": float(hi),
                    "reported_inside_95": bool(lo <= reported <= hi)}
    return out
