"""Historical drivers (catch and releases) laid on a year grid as engine arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.errors import DataError
from carpmodel.model.growth import length_at_weight_cm


@dataclass(frozen=True)
class HistoricalDrivers:
    """Catch and releases for the years ``years``.

    ``catch_t`` is ``(year,)`` in tonnes; ``release_fish`` and ``release_length_cm`` are
    ``(year, age)``: fish released at each age (before acute survival) and their body length,
    converted from the recorded weight at release by the length–weight relation.
    """

    years: NDArray
    catch_t: NDArray
    release_fish: NDArray
    release_length_cm: NDArray


def historical_drivers(data: Any, years: NDArray, *, max_age_yr: int, lw_a: float,
                       lw_b: float) -> HistoricalDrivers:
    """Catch and releases of a loaded data directory on ``years``.

    Every year must have a catch record (a gap raises :class:`DataError` naming catch.csv);
    years without a release record have no releases.
    """
    years = np.asarray(years, dtype=int)
    catch_years = np.asarray(data.catch.year, dtype=int)
    missing = np.setdiff1d(years, catch_years)
    if missing.size:
        raise DataError(
            f"{data.directory / 'catch.csv'}: no catch for year(s) {missing.tolist()}; expected "
            f"every year {years[0]}-{years[-1]} (0 for years without fishing)")
    catch_t = np.asarray(data.catch.catch_t, dtype=float)[np.searchsorted(catch_years, years)]

    n_age = max_age_yr + 1
    fish = np.zeros((years.size, n_age))
    length_sum = np.zeros((years.size, n_age))
    rel = data.releases
    for year, age, weight, count in zip(rel.year, rel.age_at_release_yr, rel.weight_at_release_g,
                                        rel.fish_released, strict=True):
        if not years[0] <= year <= years[-1]:
            continue
        if not 0 <= age < n_age:
            raise DataError(f"{data.directory / 'releases_historical.csv'}: year {year}: "
                            f"age_at_release_yr {age} outside the model's ages 0..{max_age_yr}")
        i = int(year - years[0])
        fish[i, int(age)] += count
        length_sum[i, int(age)] += count * float(length_at_weight_cm(weight, lw_a, lw_b))
    length = np.divide(length_sum, fish, out=np.ones_like(fish), where=fish > 0)
    return HistoricalDrivers(years=years, catch_t=catch_t, release_fish=fish,
                             release_length_cm=length)
