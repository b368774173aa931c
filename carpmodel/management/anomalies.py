"""Inter-annual anomalies of a covariate: an ARMA process, fitted or assumed, and its simulation.

:class:`AnomalyModel` is a zero-mean ARMA(p, q) process. It is fitted by maximum likelihood
(statsmodels ``ARIMA``) to a linearly detrended observed series (:meth:`AnomalyModel.fit`), or
is the ASSUMED AR(1) of the data directory's ``climate_scenarios.toml`` ``[anomalies]``
(:meth:`AnomalyModel.from_climate_file`); :meth:`AnomalyModel.for_series` chooses.

Simulation draws each path's innovations from its own random stream (a generator per path, or
one row per draw of a :class:`~carpmodel.management.draw_streams.DrawStream`, as the
projection's random streams require) and then filters every path at once with
``scipy.signal.lfilter`` (what statsmodels' ``arma_generate_sample`` does), so 5,000 paths cost
one filter call instead of 5,000 Python recursions. :func:`sample_anomalies` gives the
``(draw, year)`` array :func:`carpmodel.management.climate.projected_covariates` adds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter, lfiltic

from carpmodel.errors import ConfigError, DataError
from carpmodel.management.draw_streams import DrawStream
from carpmodel.model.checks import finite_float
from carpmodel.model.covariates import BEYOND_SERIES, BeyondSeries, EnvSeries

__all__ = ["ARMA_BURN_IN", "DEFAULT_ARMA_ORDERS", "AnomalyModel", "sample_anomalies"]

#: ARMA orders (p, q) compared by AIC when an anomaly model is fitted to an observed series.
DEFAULT_ARMA_ORDERS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (2, 0), (0, 1), (1, 1))
#: Burn-in steps for a stationary start of an ARMA process other than AR(1)/white noise.
ARMA_BURN_IN = 500

#: where anomaly paths get their standard normals: one generator per path, or a draw stream
#: (one row per draw)
Paths = Sequence[np.random.Generator] | DrawStream


@dataclass(frozen=True)
class AnomalyModel:
    """Inter-annual anomalies of a covariate: a zero-mean ARMA(p, q) process.

    ``x_t = Σ ar_i·x_{t−i} + e_t + Σ ma_j·e_{t−j}``, ``e_t ~ N(0, innovation_sd²)``.

    Attributes
    ----------
    ar, ma : tuple of float
        AR and MA coefficients (statsmodels sign convention for ``arparams``/``maparams``).
    innovation_sd : float
        SD of the innovations e, in the covariate's unit.
    source : str
        How the model was obtained (fitted order and AIC, or the assumed TOML values).
    confidence : str
        ``measured`` when fitted to an observed series, ``assumed`` otherwise.
    recent_anomalies : tuple of float
        Last ``p`` anomalies of the series (oldest first): the state a conditional path
        (``beyond_series = "continue_process"``) starts from.
    recent_innovations : tuple of float
        Last ``q`` innovations of the series (oldest first).
    aic : float or None
        AIC of the chosen fit.
    """

    ar: tuple[float, ...] = ()
    ma: tuple[float, ...] = ()
    innovation_sd: float = 0.0
    source: str = ""
    confidence: str = "assumed"
    recent_anomalies: tuple[float, ...] = ()
    recent_innovations: tuple[float, ...] = ()
    aic: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ar", tuple(float(a) for a in self.ar))
        object.__setattr__(self, "ma", tuple(float(m) for m in self.ma))
        object.__setattr__(self, "recent_anomalies", tuple(float(a) for a in self.recent_anomalies))
        object.__setattr__(self, "recent_innovations", tuple(float(a) for a in self.recent_innovations))
        sd = finite_float(self.innovation_sd, "AnomalyModel.innovation_sd", "a non-negative SD")
        if sd < 0:
            raise ConfigError(f"AnomalyModel.innovation_sd: expected a non-negative SD, got {sd!r}")
        if self.ar:
            roots = np.roots(np.r_[-np.asarray(self.ar)[::-1], 1.0])   # 1 − Σ ar_i z^i = 0
            if np.any(np.abs(roots) <= 1.0 + 1e-9):
                raise ConfigError(f"AnomalyModel.ar: expected a stationary AR part, got {self.ar}")

    @property
    def order(self) -> tuple[int, int]:
        return len(self.ar), len(self.ma)

    @property
    def phi(self) -> float:
        """The AR(1) coefficient (0 for white noise); refused for other orders."""
        if self.ma or len(self.ar) > 1:
            raise ConfigError(f"AnomalyModel.phi: defined for AR(1) or white noise, this is ARMA{self.order}")
        return self.ar[0] if self.ar else 0.0

    @cached_property
    def marginal_sd(self) -> float:
        """Stationary SD of the anomalies (computed once per model: projections ask per draw)."""
        from statsmodels.tsa.arima_process import arma_acovf

        if self.innovation_sd == 0:
            return 0.0
        acov = arma_acovf(np.r_[1.0, -np.asarray(self.ar)], np.r_[1.0, np.asarray(self.ma)], nobs=1,
                          sigma2=self.innovation_sd ** 2)
        return float(np.sqrt(acov[0]))

    def describe(self) -> str:
        p, q = self.order
        return f"ARMA({p},{q}), innovation sd {self.innovation_sd:.3g}, {self.confidence}: {self.source}"

    @classmethod
    def ar1(cls, phi: float, marginal_sd: float, *, source: str = "", confidence: str = "assumed",
            recent_anomaly: float = 0.0) -> AnomalyModel:
        """AR(1) with stationary SD ``marginal_sd`` (innovation SD ``marginal_sd·√(1 − φ²)``)."""
        phi = finite_float(phi, "AnomalyModel.ar1.phi", "a coefficient in (-1, 1)")
        if not -1 < phi < 1:
            raise ConfigError(f"AnomalyModel.ar1.phi: expected a coefficient in (-1, 1), got {phi!r}")
        sd = finite_float(marginal_sd, "AnomalyModel.ar1.marginal_sd", "a non-negative SD")
        return cls((phi,) if phi else (), (), sd * math.sqrt(1 - phi * phi), source, confidence,
                   (recent_anomaly,) if phi else ())

    @classmethod
    def from_climate_file(cls, data: Any, series: EnvSeries | None = None) -> AnomalyModel:
        """The ASSUMED AR(1) of ``[anomalies]`` (``ar1_phi`` 0.3, ``sd_c`` 0.3 °C marginal SD).

        ``data`` is a loaded data directory; its ``climate_scenarios.toml`` is validated on
        first use (:attr:`carpmodel.io.inputs.DataSet.climate`). With ``series`` the last
        detrended value of the series is recorded as the state a conditional
        (``continue_process``) path starts from.

        Raises
        ------
        DataError
            The file has no ``[anomalies]`` table, or (from the file's validation) an invalid one.
        """
        climate = data.climate
        model = climate.anomalies
        if model is None:
            raise DataError(f"{climate.path}, key anomalies: expected a table with ar1_phi and sd_c, "
                            f"got None")
        if series is None:
            return model
        return replace(model, recent_anomalies=(float(series.detrended()[-1]),) if model.ar else ())

    @classmethod
    def fit(cls, series: EnvSeries, *,
            orders: Sequence[tuple[int, int]] = DEFAULT_ARMA_ORDERS) -> AnomalyModel:
        """Fit ARMA(p, q) by maximum likelihood to the linearly detrended series; lowest AIC wins.

        Uses ``statsmodels.tsa.arima.model.ARIMA(order=(p, 0, q), trend="n")``. Filled years
        enter as missing values (the Kalman filter skips them), so interpolation does not
        shrink the variance. ``confidence`` is ``measured`` for an observed series, else the
        series' label is kept as ``derived`` (a model of assumed numbers is still assumed —
        prefer :meth:`from_climate_file` then).
        """
        from statsmodels.tsa.arima.model import ARIMA

        if not orders:
            raise ConfigError("AnomalyModel.fit.orders: expected at least one (p, q) order")
        x = series.detrended()
        x = np.where(series.filled_mask, np.nan, x)
        best = None
        for p, q in orders:
            if p < 0 or q < 0:
                raise ConfigError(f"AnomalyModel.fit.orders: expected non-negative (p, q), got {(p, q)}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # optimiser chatter; the AIC comparison decides
                result = ARIMA(x, order=(p, 0, q), trend="n").fit()
            if not np.isfinite(result.aic):
                continue
            if best is None or result.aic < best[0].aic:
                best = (result, p, q)
        if best is None:
            raise ConfigError(f"AnomalyModel.fit: no ARMA order could be fitted to {series.name!r}")
        result, p, q = best
        sigma2 = float(result.params[-1])
        innovations = np.asarray(result.resid, dtype=float)
        observed_x = x[~np.isnan(x)]
        source = (f"ARMA({p},{q}) fitted by statsmodels ARIMA to the linearly detrended {series.name} "
                  f"{series.first_year}-{series.last_year} ({observed_x.size} values), lowest AIC "
                  f"{result.aic:.2f} among {', '.join(f'({a},{b})' for a, b in orders)}")
        return cls(tuple(result.arparams), tuple(result.maparams), math.sqrt(max(sigma2, 0.0)), source,
                   "measured" if series.observed else "derived",
                   tuple(np.nan_to_num(x[len(x) - p:])) if p else (),
                   tuple(innovations[len(innovations) - q:]) if q else (), float(result.aic))

    @classmethod
    def for_series(cls, series: EnvSeries, data: Any = None, *, min_years: int = 20,
                   orders: Sequence[tuple[int, int]] = DEFAULT_ARMA_ORDERS) -> AnomalyModel:
        """Fitted where the series is observed (≥ ``min_years`` values), assumed otherwise.

        The assumed model (``[anomalies]`` of the data directory's ``climate_scenarios.toml``)
        describes summer water temperature anomalies, so it is refused for a covariate whose
        unit is not ``degC``; build one with :meth:`ar1` instead. ``source`` says which was
        used and why.
        """
        n_values = int((~series.filled_mask).sum())
        if series.observed and n_values >= min_years:
            return cls.fit(series, orders=orders)
        if series.unit != "degC":
            raise ConfigError(f"AnomalyModel.for_series: {series.name!r} ({series.unit!r}) is not observed "
                              f"with >= {min_years} values and the assumed [anomalies] describe water "
                              f"temperature; give AnomalyModel.ar1(phi, sd) for it")
        if data is None:
            raise ConfigError("AnomalyModel.for_series: the series is not observed; pass the data "
                              "(climate_scenarios.toml [anomalies]) for the assumed AR(1)")
        model = cls.from_climate_file(data, series)
        why = "assumed series" if not series.observed else f"only {n_values} observed values (< {min_years})"
        return replace(model, source=f"{model.source}; not fitted: {why}")

    # ----------------------------------------------------------------------- simulation

    def _history(self) -> tuple[list[float], list[float]]:
        """The last p anomalies and q innovations (oldest first), zero-padded."""
        p, q = self.order
        x_recent, e_recent = list(self.recent_anomalies)[-p:] if p else [], \
            list(self.recent_innovations)[-q:] if q else []
        return [0.0] * (p - len(x_recent)) + x_recent, [0.0] * (q - len(e_recent)) + e_recent

    def _filter(self, innovations: NDArray, x_hist: Sequence[float], e_hist: Sequence[float]) -> NDArray:
        """ARMA recursion along the last axis of ``innovations`` (every path at once).

        ``x_t = e_t + Σ ar_i·x_{t−i} + Σ ma_j·e_{t−j}``, continuing from the anomalies
        ``x_hist`` and innovations ``e_hist`` before the first step (oldest first), through
        ``scipy.signal.lfilter`` with the initial state of ``lfiltic``.
        """
        p, q = self.order
        if p == 0 and q == 0:
            return innovations
        b, a = np.r_[1.0, self.ma], np.r_[1.0, -np.asarray(self.ar)]
        state = lfiltic(b, a, y=np.asarray(x_hist, float)[::-1], x=np.asarray(e_hist, float)[::-1])
        out, _ = lfilter(b, a, innovations, axis=-1,
                         zi=np.broadcast_to(state, innovations.shape[:-1] + state.shape))
        return out

    def sample_paths(self, rngs: Paths, n_years: int, *, conditional: bool = False) -> NDArray:
        """One anomaly path per generator, or per draw of a
        :class:`~carpmodel.management.draw_streams.DrawStream`: shape (len(rngs), n_years),
        covariate unit.

        Each path's standard normals come from its own generator (or its draw's stream), in the
        same number and order whatever the other paths, so path d depends only on ``rngs[d]``.
        ``conditional=False`` (default): stationary start — exact for AR(1) and white noise
        (first value drawn from the stationary distribution), otherwise after
        :data:`ARMA_BURN_IN` burn-in steps from zero. ``conditional=True``: continues from the
        series' last state (``recent_anomalies``, ``recent_innovations``), for
        ``beyond_series = "continue_process"``. The same generator state gives the same path.
        """
        if isinstance(n_years, bool) or not isinstance(n_years, int | np.integer) or n_years < 0:
            raise ConfigError(f"AnomalyModel.sample.n_years: expected a non-negative integer, "
                              f"got {n_years!r}")
        p, q = self.order

        def normals(n: int) -> NDArray:
            if isinstance(rngs, DrawStream):
                return rngs.standard_normal(n)
            return np.stack([rng.standard_normal(n) for rng in rngs]) if rngs else np.zeros((0, n))

        if conditional:
            return self._filter(normals(n_years) * self.innovation_sd, *self._history())
        if q == 0 and p <= 1:
            z = normals(n_years)
            innovations = self.innovation_sd * z
            if n_years:
                innovations[:, 0] = z[:, 0] * self.marginal_sd   # the stationary first value
            return self._filter(innovations, [0.0] * p, [])
        e = normals(ARMA_BURN_IN + n_years) * self.innovation_sd
        return self._filter(e, [0.0] * p, [0.0] * q)[:, ARMA_BURN_IN:]

    def sample(self, rng: np.random.Generator, n_years: int, *, conditional: bool = False) -> NDArray:
        """One anomaly path of ``n_years`` from ``rng``, shape (n_years,): see :meth:`sample_paths`."""
        return self.sample_paths([rng], n_years, conditional=conditional)[0]

    def expected_path(self, n_years: int) -> NDArray:
        """Forecast mean of the next ``n_years`` anomalies from the last state (innovations 0)."""
        return self._filter(np.zeros((1, int(n_years))), *self._history())[0]


def sample_anomalies(model: AnomalyModel, rngs: Paths, n_years: int, *,
                     beyond_series: BeyondSeries = "hold_last") -> NDArray:
    """Anomaly paths ``(draw, year)``, one per generator (one generator per draw) or per draw of a
    :class:`~carpmodel.management.draw_streams.DrawStream`.

    Conditional on the series' last state for ``continue_process``, stationary otherwise, so
    the array matches what :func:`~carpmodel.management.climate.projected_covariates` expects
    for that ``beyond_series``.
    """
    if beyond_series not in BEYOND_SERIES:
        raise ConfigError(f"beyond_series: expected one of {', '.join(BEYOND_SERIES)}, got {beyond_series!r}")
    if not rngs:
        return np.zeros((0, n_years))
    return model.sample_paths(rngs, n_years, conditional=beyond_series == "continue_process")
