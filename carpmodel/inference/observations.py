"""Observation models: how each kind of data is predicted from the population state.

The hydroacoustic survey (:class:`~carpmodel.inference.spec.Observations`, component
``biomass``) is scored by :func:`survey_nll`: ``log B_obs,y ~ Normal(log(q·B_y), σ_y)`` with
``B_y`` the end-of-year biomass the survey's size selectivity sees, ``σ_y = σ_s·cv_y/0.15``
(the reported CVs are relative weights; ``σ_s`` is estimated) and, as an option, AR(1)
residuals: the standardised residuals ``z_y = r_y/σ_y`` follow ``z_i | z_{i−1} ~
Normal(ρ^Δ·z_{i−1}, 1 − ρ^{2Δ})`` for a gap of ``Δ`` years (the Markov form of a correlation
``ρ^|t − s|``, so missing years need no special case).

Other data are pluggable observation types: a frozen dataclass with

- ``name``: its NLL component;
- ``end_years``: the years whose end-of-year numbers and lengths it needs from the engine;
- ``n_data``: its number of data points (AICc);
- ``nll(spec, state, u) -> (*batch)``: its negative log-likelihood;
- ``predict(spec, state, u) -> dict``: its predictions, for checks and figures;
- a ``from_data(data, first_year, last_year)`` constructor reading its rows from a data file.

Adding a length composition, a juvenile index or an origin sample is one such class, its
reader, and a line in :func:`carpmodel.inference.build.build_spec` that adds it (with any free
parameter it needs) to ``ModelSpec.samples``. :class:`NetMeanSize` is the example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["NET_CORRELATION", "NET_LENGTH_SD_LOG", "NET_WEIGHT_SD_LOG", "NetMeanSize",
           "net_selected_size", "survey_nll"]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: SD of log mean length of a net sample (assumed: sampling error of a few hundred fish ~1 %,
#: plus the spatial spread of a fixed-point sample and a selectivity the model simplifies)
NET_LENGTH_SD_LOG = 0.05
#: SD of log mean weight of a net sample (assumed: ~3 x the length SD, weight ~ length^3)
NET_WEIGHT_SD_LOG = 0.15
#: correlation of the two errors (assumed: mean weight and mean length of one sample move together)
NET_CORRELATION = 0.9


def survey_nll(log_residual: NDArray, sd: NDArray, years: NDArray, rho: Any = None) -> NDArray:
    """Negative log-likelihood of survey log residuals ``(*batch, n)`` with SDs ``(*batch, n)``;
    independent errors, or AR(1) in the standardised residuals with coefficient ``rho (*batch)``
    over the gaps between ``years (n,)``. Batch shape."""
    z = log_residual / sd
    base = np.sum(0.5 * _LOG_2PI + np.log(sd), axis=-1)
    if rho is None:
        return base + 0.5 * np.sum(z**2, axis=-1)
    gaps = np.diff(np.asarray(years, dtype=int))
    phi = np.power(np.asarray(rho, dtype=float)[..., None], gaps)
    variance = 1.0 - phi**2
    innovation = z[..., 1:] - phi * z[..., :-1]
    return (base + 0.5 * z[..., 0] ** 2
            + np.sum(0.5 * np.log(variance) + 0.5 * innovation**2 / variance, axis=-1))


def survey_innovations(log_residual: NDArray, sd: NDArray, years: NDArray, rho: float) -> NDArray:
    """The standardised AR(1) innovations ``(z_i − ρ^Δ·z_{i−1})/√(1 − ρ^{2Δ})`` (first: ``z_1``),
    independent N(0, 1) under the model: what a runs test of AR(1) residuals should look at."""
    z = np.asarray(log_residual, float) / np.asarray(sd, float)
    phi = float(rho) ** np.diff(np.asarray(years, dtype=int))
    return np.concatenate([z[:1], (z[1:] - phi * z[:-1]) / np.sqrt(1.0 - phi**2)])


def net_selected_size(numbers: NDArray, length_cm: NDArray, mode_cm: Any, width_cm: Any,
                      length_cv: Any, lw_a: Any, lw_b: Any) -> tuple[NDArray, NDArray]:
    """Mean length (cm) and weight (g) of the fish a net with normal selectivity in length
    catches from classes of ``numbers`` at mean ``length_cm`` (both ``(*batch, origin, age)``).

    Within a class length is normal with SD ``cv·L``; the net's selectivity ``exp(−(L − μ)²/2w²)``
    times that density is a normal of mean ``m = (L·w² + μ·s²)/(w² + s²)`` and variance
    ``v = w²s²/(w² + s²)``, caught in proportion to ``w/√(w² + s²)·exp(−(L − μ)²/2(w² + s²))``.
    Mean weight uses ``E[a·L^b] ≈ a·m^b·(1 + b(b − 1)·v/(2m²))``. Returns two ``(*batch)`` arrays.
    """
    mu = np.asarray(mode_cm, dtype=float)[..., None, None]
    w2 = np.asarray(width_cm, dtype=float)[..., None, None] ** 2
    s2 = (np.asarray(length_cv, dtype=float)[..., None, None] * length_cm) ** 2
    total = w2 + s2
    caught = numbers * np.sqrt(w2 / total) * np.exp(-0.5 * (length_cm - mu) ** 2 / total)
    mean = (length_cm * w2 + mu * s2) / total
    variance = w2 * s2 / total
    b = np.asarray(lw_b, dtype=float)[..., None, None]
    weight = np.asarray(lw_a, dtype=float)[..., None, None] * mean**b * (
        1.0 + 0.5 * b * (b - 1.0) * variance / mean**2)
    n = np.sum(caught, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.sum(caught * mean, axis=(-2, -1)) / n, np.sum(caught * weight, axis=(-2, -1)) / n)


@dataclass(frozen=True)
class NetMeanSize:
    """Mean length and weight of the fixed-point net sample (end of year), fitted as data.

    Predicted by :func:`net_selected_size` at the net's estimated selectivity (``net_mode_cm``,
    ``net_width_cm``) from the end-of-year numbers and lengths; errors bivariate lognormal,
    SDs :data:`NET_LENGTH_SD_LOG`, :data:`NET_WEIGHT_SD_LOG`, correlation :data:`NET_CORRELATION`
    (assumed). The sample informs the net's selectivity, hardly the stock: it is the reason the
    reported 27.6 cm is not the mean length of the fish the survey sees.
    """

    year: NDArray
    mean_length_cm: NDArray
    mean_weight_g: NDArray
    length_cv: float = 0.1
    name: str = "net_sample"

    @property
    def end_years(self) -> tuple[int, ...]:
        return tuple(int(y) for y in self.year)

    @property
    def n_data(self) -> int:
        return 2 * int(np.size(self.year))

    @classmethod
    def from_data(cls, data: Any, first_year: int, last_year: int) -> NetMeanSize | None:
        """The years of ``data.auxiliary`` (auxiliary_observations.csv) with both
        ``mean_length_cm`` and ``mean_weight_g`` in ``first_year..last_year``; None when none."""
        aux = data.auxiliary
        length = dict(zip(*(np.asarray(v) for v in aux.select("mean_length_cm")), strict=True))
        weight = dict(zip(*(np.asarray(v) for v in aux.select("mean_weight_g")), strict=True))
        years = sorted(int(y) for y in set(length) & set(weight) if first_year <= y <= last_year)
        if not years:
            return None
        return cls(year=np.array(years), mean_length_cm=np.array([float(length[y]) for y in years]),
                   mean_weight_g=np.array([float(weight[y]) for y in years]),
                   length_cv=float(data.life_history.value("length_cv")))

    def predict(self, spec: Any, state: Any, u: Any) -> dict[str, NDArray]:
        """``mean_length_cm`` and ``mean_weight_g`` ``(*batch, n_years)`` of the net's catch."""
        index = np.searchsorted(spec.end_state_years, self.year)
        numbers = np.moveaxis(state.end_numbers[..., index, :, :], -3, 0)
        length = np.moveaxis(state.end_length_cm[..., index, :, :], -3, 0)
        params = u.params
        mean_l, mean_w = net_selected_size(numbers, length, u.observation["net_mode_cm"],
                                           u.observation["net_width_cm"], self.length_cv,
                                           params.lw_a, params.lw_b)
        return {"mean_length_cm": np.moveaxis(mean_l, 0, -1), "mean_weight_g": np.moveaxis(mean_w, 0, -1)}

    def nll(self, spec: Any, state: Any, u: Any) -> NDArray:
        """Bivariate normal NLL of (log mean length, log mean weight), summed over years."""
        predicted = self.predict(spec, state, u)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (np.log(self.mean_length_cm) - np.log(predicted["mean_length_cm"])) / NET_LENGTH_SD_LOG
            y = (np.log(self.mean_weight_g) - np.log(predicted["mean_weight_g"])) / NET_WEIGHT_SD_LOG
        r = NET_CORRELATION
        quad = (x**2 - 2 * r * x * y + y**2) / (1.0 - r**2)
        const = _LOG_2PI + np.log(NET_LENGTH_SD_LOG * NET_WEIGHT_SD_LOG) + 0.5 * np.log(1.0 - r**2)
        return np.sum(const + 0.5 * quad, axis=-1)
