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
from scipy.special import betaln, gammaln, ndtr

from carpmodel.model.maturity import maturity_at_length
from carpmodel.model.mortality import logistic_selectivity
from carpmodel.model.stocking import release_survival_at_weight

__all__ = ["NET_CORRELATION", "NET_LENGTH_SD_LOG", "NET_WEIGHT_SD_LOG", "NetMeanSize", "OriginSamples",
           "beta_binomial_nll", "gear_selectivity", "net_selected_size", "survey_nll"]

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


def beta_binomial_nll(k: NDArray, n: NDArray, p: NDArray, design_effect: NDArray) -> NDArray:
    """NLL of ``k`` of ``n`` fish (both ``(m,)``) at probability ``p (*batch, m)``, summed over
    the ``m`` samples: binomial where ``design_effect`` is 1, else beta-binomial with intra-class
    correlation ``ρ = (deff − 1)/(n − 1)`` (``α = p(1 − ρ)/ρ``, ``β = (1 − p)(1 − ρ)/ρ``)."""
    n, k = np.asarray(n, float), np.asarray(k, float)
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    rho = np.where(n > 1, (np.asarray(design_effect, float) - 1.0) / np.maximum(n - 1.0, 1.0), 0.0)
    binomial = log_choose + k * np.log(p) + (n - k) * np.log1p(-p)
    safe = np.where(rho > 0, np.minimum(rho, 1.0 - 1e-9), 0.5)
    a, b = p * (1.0 - safe) / safe, (1.0 - p) * (1.0 - safe) / safe
    beta_binomial = log_choose + betaln(k + a, n - k + b) - betaln(a, b)
    return -np.sum(np.where(rho > 0, beta_binomial, binomial), axis=-1)


def gear_selectivity(gear: tuple[str, ...], length_cm: NDArray, length_cv: float, params: Any,
                     net_mode_cm: Any, net_width_cm: Any, length_min_cm: NDArray,
                     length_max_cm: NDArray) -> NDArray:
    """Relative catchability of length classes ``length_cm (*batch, m, origin, age)`` by the gear
    of each of ``m`` samples.

    ``survey_net``: the net's normal selectivity (mode ``net_mode_cm``, SD ``net_width_cm``,
    ``(*batch)``) integrated over the class's normal length spread (SD ``cv·L``), as in
    :func:`net_selected_size`; ``spawning_run``: the maturity ogive (mature fish run);
    ``angler``: the fishery's logistic selectivity. A length window ``[min, max)`` (NaN: open)
    multiplies by the share of the class inside it, ``Φ((max − L)/s) − Φ((min − L)/s)``.
    """
    gear = np.asarray(gear)[:, None, None]
    mu = np.asarray(net_mode_cm, float)[..., None, None, None]
    w2 = np.asarray(net_width_cm, float)[..., None, None, None] ** 2
    spread = np.maximum(length_cv * length_cm, 1e-9)
    total = w2 + spread**2
    net = np.sqrt(w2 / total) * np.exp(-0.5 * (length_cm - mu) ** 2 / total)
    mature = maturity_at_length(length_cm, np.asarray(params.maturity_l50_cm)[..., None, None, None],
                                np.asarray(params.maturity_slope_cm)[..., None, None, None])
    fishery = logistic_selectivity(length_cm, np.asarray(params.selectivity_l50_cm)[..., None, None, None],
                                   np.asarray(params.selectivity_slope_cm)[..., None, None, None])
    sel = np.where(gear == "survey_net", net, np.where(gear == "spawning_run", mature, fishery))
    lo = np.nan_to_num(np.asarray(length_min_cm, float), nan=-np.inf)[:, None, None]
    hi = np.nan_to_num(np.asarray(length_max_cm, float), nan=np.inf)[:, None, None]
    window = ndtr((hi - length_cm) / spread) - ndtr((lo - length_cm) / spread)
    return sel * window


@dataclass(frozen=True)
class OriginSamples:
    """Fish examined for hatchery origin (origin_samples.csv), fitted as data.

    For each sample (year ``y``, gear, length window) the share of hatchery fish among the fish
    the gear catches from the end-of-year numbers is
    ``π = Σ_a sel·N_h,a·g_a / Σ_{o,a} sel·N_o,a`` (:func:`gear_selectivity`); ``g_a`` = 1 for an
    unmarked sample and, for a release group (mark code ``YYYY-aN``), its share of the hatchery
    fish at its age in year ``y``: the group's fish entering after acute survival at their release
    weight over those of every release feeding the same age cell (fish released in other years
    at other ages that reach that age in that year; later differences in their mortality are
    ignored). The method reads a fish as hatchery with probability
    ``p = π·d + (1 − π)·f`` (detection rate ``d``, false-positive rate ``f``); counts are
    binomial, or beta-binomial with the design effect (:func:`beta_binomial_nll`).
    """

    year: NDArray
    gear: tuple[str, ...]
    n_examined: NDArray
    n_hatchery: NDArray
    detection_rate: NDArray
    false_positive_rate: NDArray
    length_min_cm: NDArray
    length_max_cm: NDArray
    design_effect: NDArray
    group_age: NDArray                  # (m,) age index of the release group in the sample year, −1: all
    group_release: NDArray              # (m,) index into release_* of the group's release, −1: none
    feeding: NDArray                    # (m, r) releases feeding the group's age cell in the sample year
    release_fish: NDArray               # (r,) fish released in each release row
    release_weight_g: NDArray           # (r,) their weight at release, g
    length_cv: float = 0.1
    name: str = "origin_samples"

    @property
    def end_years(self) -> tuple[int, ...]:
        return tuple(int(y) for y in self.year)

    @property
    def n_data(self) -> int:
        return int(np.size(self.year))

    @classmethod
    def from_data(cls, data: Any, first_year: int, last_year: int,
                  max_age_yr: int) -> OriginSamples | None:
        """The samples of ``data.origin_samples`` in ``first_year..last_year``; None when none."""
        from carpmodel.io.origin_file import parse_release_group

        table = data.origin_samples
        if table is None:
            return None
        keep = np.flatnonzero((table.year >= first_year) & (table.year <= last_year))
        if keep.size == 0:
            return None
        rel = data.releases
        rows = np.flatnonzero(np.asarray(rel.fish_released) > 0)
        rel_year = np.asarray(rel.year)[rows]
        rel_age = np.asarray(rel.age_at_release_yr)[rows]
        group_age = np.full(keep.size, -1)
        group_release = np.full(keep.size, -1)
        feeding = np.zeros((keep.size, rows.size), dtype=bool)
        for j, i in enumerate(keep):
            code = table.release_group[i]
            if not code:
                continue
            year, age = parse_release_group(code)
            group_release[j] = int(np.flatnonzero((rel_year == year) & (rel_age == age))[0])
            group_age[j] = min(age + int(table.year[i]) - year, max_age_yr)
            feeding[j] = (rel_year <= table.year[i]) & (
                np.minimum(rel_age + table.year[i] - rel_year, max_age_yr) == group_age[j])
        return cls(year=table.year[keep], gear=tuple(table.gear[i] for i in keep),
                   n_examined=table.fish_examined[keep], n_hatchery=table.fish_hatchery[keep],
                   detection_rate=table.detection_rate[keep],
                   false_positive_rate=table.false_positive_rate[keep],
                   length_min_cm=table.length_min_cm[keep], length_max_cm=table.length_max_cm[keep],
                   design_effect=table.design_effect[keep], group_age=group_age,
                   group_release=group_release, feeding=feeding,
                   release_fish=np.asarray(rel.fish_released, float)[rows],
                   release_weight_g=np.asarray(rel.weight_at_release_g, float)[rows],
                   length_cv=float(data.life_history.value("length_cv")))

    def _group_share(self, params: Any, n_age: int) -> NDArray:
        """``g (*batch, m, age)``: the share of the hatchery fish at each age that a sample counts."""
        m = self.year.size
        share = np.ones((m, n_age))
        marked = np.flatnonzero(self.group_release >= 0)
        if marked.size == 0:
            return share
        survival = release_survival_at_weight(np.asarray(params.release_survival)[..., None],
                                              np.asarray(params.release_survival_size_slope)[..., None],
                                              self.release_weight_g,
                                              np.asarray(params.release_reference_weight_g)[..., None])
        entering = self.release_fish * survival                               # (*batch, r)
        cell = np.sum(np.where(self.feeding, entering[..., None, :], 0.0), axis=-1)   # (*batch, m)
        own = np.take(entering, np.maximum(self.group_release, 0), axis=-1)           # (*batch, m)
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(cell > 0, own / cell, 0.0)
        at_age = np.arange(n_age) == self.group_age[:, None]                  # (m, age)
        marked_rows = (self.group_release >= 0)[:, None]
        return np.where(marked_rows, np.where(at_age, fraction[..., None], 0.0), share)

    def predict(self, spec: Any, state: Any, u: Any) -> dict[str, NDArray]:
        """``hatchery_share`` (π) and ``p_read_hatchery`` (p), ``(*batch, m)``."""
        index = np.searchsorted(spec.end_state_years, self.year)
        numbers = state.end_numbers[..., index, :, :]                        # (*batch, m, origin, age)
        length = state.end_length_cm[..., index, :, :]
        params = u.params
        sel = gear_selectivity(self.gear, length, self.length_cv, params, u.observation["net_mode_cm"],
                               u.observation["net_width_cm"], self.length_min_cm, self.length_max_cm)
        caught = np.where(numbers > 0, sel * numbers, 0.0)
        group = self._group_share(params, numbers.shape[-1])
        hatchery = np.sum(caught[..., 1, :] * group, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = hatchery / np.sum(caught, axis=(-2, -1))
        p = share * self.detection_rate + (1.0 - share) * self.false_positive_rate
        return {"hatchery_share": share, "p_read_hatchery": p}

    def nll(self, spec: Any, state: Any, u: Any) -> NDArray:
        """Binomial / beta-binomial NLL of the hatchery readings, summed over samples."""
        p = self.predict(spec, state, u)["p_read_hatchery"]
        p = np.where(np.isfinite(p), p, 0.5)
        return beta_binomial_nll(self.n_hatchery, self.n_examined, p, self.design_effect)
