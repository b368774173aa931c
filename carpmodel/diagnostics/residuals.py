"""Residuals of the biomass observations and the runs test of their signs.

Two kinds: conditional residuals ``(log obs − log q·B̂)/σ_y`` at the fit's mode, which the
recruitment deviations that fitted the data have shrunk (their SD is below 1 even for a right
model), and one-step-ahead (OSA) residuals (Thygesen et al. 2017, Environ. Ecol. Stat. 24:
317–339; :func:`carpmodel.inference.variance.osa_residuals`), independent N(0, 1) under the
model with the deviations integrated out and the survey's AR(1) errors accounted for. The SDNR
and the runs test are of the OSA residuals.

Runs test and 3-sigma control limits as ss3diags computes them (Carvalho et al. 2021, "A
cookbook for using model diagnostics in integrated stock assessments", Fish. Res. 240: 105959).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy import stats
from statsmodels.sandbox.stats.runs import runstest_1samp

from carpmodel.diagnostics.common import describe, json_ready
from carpmodel.dims import YEAR
from carpmodel.inference.fitting import FitResult
from carpmodel.inference.likelihood import observation_sd, predict, survey_prediction_t
from carpmodel.inference.variance import osa_residuals


@dataclass(frozen=True)
class RunsTest:
    """Wald–Wolfowitz runs test of residual signs and the 3-sigma control limits.

    ``p_value`` is one-sided (fewer runs than expected, i.e. positive autocorrelation), as
    ss3diags' default ``mixing = "less"``; ``passed`` is ``p_value >= alpha``. ``sigma`` is the
    process SD from the average moving range (AMR / 1.128, moving ranges above 3.267·AMR
    dropped; Montgomery), and the limits are ``±3·sigma`` around zero (Carvalho et al. 2021).
    """

    z: float
    p_value: float
    passed: bool | None
    n_runs: int
    n_positive: int
    n_negative: int
    sigma: float
    lower_limit: float
    upper_limit: float
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return json_ready({f: getattr(self, f) for f in self.__dataclass_fields__})


def _three_sigma(x: NDArray) -> float:
    """SD from the average moving range, with Nelson's (1982) screen of large moving ranges."""
    if x.size < 2:
        return float("nan")
    moving_range = np.abs(np.diff(x))
    amr = float(np.mean(moving_range))
    kept = moving_range[moving_range < 3.267 * amr]
    if kept.size:
        amr = float(np.mean(kept))
    return amr / 1.128


def runs_test(x: Any, alpha: float = 0.05) -> RunsTest:
    """Runs test of the signs of ``x`` (cutoff 0) and its 3-sigma limits.

    Method: Wald–Wolfowitz runs test by ``statsmodels.sandbox.stats.runs.runstest_1samp(x,
    cutoff=0, correction=False)`` (the normal approximation without continuity correction,
    as R's ``randtests::runs.test`` that ss3diags calls), one-sided for too few runs:
    ``p = Φ(z)``. Values exactly 0 carry no sign and are dropped. All residuals of one sign
    give the exact probability of one run, ``2^{1−n}``. Limits ±3σ with σ from the average
    moving range (ss3diags ``ssruns_sig3``). Reference: Carvalho et al. (2021) Fish. Res. 240:
    105959, §2.2 and Fig. 3.
    """
    values = np.asarray(x, dtype=float)
    values = values[np.isfinite(values)]
    sigma = _three_sigma(values)
    signs = values[values != 0.0]
    n_pos, n_neg = int(np.sum(signs > 0)), int(np.sum(signs < 0))
    n_runs = int(1 + np.count_nonzero(np.diff(np.sign(signs)))) if signs.size else 0
    if signs.size < 2:
        z, p, passed = float("nan"), float("nan"), None
    else:
        z = float(runstest_1samp(signs, cutoff=0.0, correction=False)[0])
        p = float(stats.norm.cdf(z))
        passed = bool(p >= alpha)
    return RunsTest(z=z, p_value=p, passed=passed, n_runs=n_runs, n_positive=n_pos,
                    n_negative=n_neg, sigma=sigma, lower_limit=-3.0 * sigma,
                    upper_limit=3.0 * sigma, alpha=alpha)


@dataclass(frozen=True)
class ResidualDiagnostics:
    """Standardised log residuals of the biomass observations, their summary and runs test.

    ``table`` (dim ``year``): ``observed_t``, ``predicted_t`` (q·B), ``sd_log``,
    ``log_residual`` (log obs − log q·B), ``standardised_residual`` (log residual / σ, the
    conditional residual), ``osa_residual`` (one-step-ahead) and ``outside_three_sigma``.
    ``mean``, ``sd`` (ddof 1) and ``rmse`` are of the OSA residuals, ``sdnr`` their root mean
    square, ``conditional_sdnr`` that of the conditional residuals; the runs test and 3-sigma
    limits are computed on the OSA residuals. ``ar_coefficient`` is the survey errors' AR(1)
    coefficient (0 without AR), ``sigma_survey`` their SD at CV 0.15.
    """

    table: xr.Dataset
    mean: float
    sd: float
    rmse: float
    runs: RunsTest
    sdnr: float = float("nan")
    conditional_sdnr: float = float("nan")
    sigma_survey: float = float("nan")
    ar_coefficient: float = 0.0

    @property
    def standardised(self) -> NDArray:
        return self.table["standardised_residual"].values

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"sdnr": self.sdnr, "conditional_sdnr": self.conditional_sdnr,
                           "sigma_survey": self.sigma_survey, "ar_coefficient": self.ar_coefficient,
                           "mean": self.mean, "sd": self.sd, "rmse": self.rmse,
                           "runs_test": self.runs.to_dict(), "table": self.table})


def residuals(result: FitResult) -> ResidualDiagnostics:
    """Standardised log residuals ``(log obs − log q·B)/σ`` per observation year, and a runs test.

    σ is the observation SD the likelihood uses (CV, plus ``sigma_obs_extra`` when estimated).
    Runs test and 3-sigma limits as :func:`runs_test` (Carvalho et al. 2021, Fish. Res. 240:
    105959; ss3diags ``SSplotRunstest``) on the standardised residuals: ss3diags uses the raw
    log residuals of one index, whose CVs are usually similar; here the CVs run from 0.15 to
    0.5, so the standardised scale lets one pair of limits serve every year (the signs, hence
    the runs test, are the same on either scale). A residual outside the limits is flagged.
    """
    spec = result.spec
    state, u = predict(spec, result.theta)
    predicted = np.asarray(survey_prediction_t(spec, state, u), dtype=float)
    sd = np.asarray(observation_sd(spec, u), dtype=float) * np.ones_like(predicted)
    observed = np.asarray(spec.observations.biomass_t, dtype=float)
    log_resid = np.log(observed) - np.log(predicted)
    standardised = log_resid / sd
    rho = float(spec.survey_rho) if spec.observations.ar1 else 0.0
    osa = np.asarray(osa_residuals(spec, result.theta, float(spec.sigma_survey), rho), dtype=float)
    runs = runs_test(osa)
    outside = (osa < runs.lower_limit) | (osa > runs.upper_limit)
    table = xr.Dataset(
        {"observed_t": (YEAR, observed), "predicted_t": (YEAR, predicted), "sd_log": (YEAR, sd),
         "log_residual": (YEAR, log_resid), "standardised_residual": (YEAR, standardised),
         "osa_residual": (YEAR, osa), "outside_three_sigma": (YEAR, outside)},
        coords={YEAR: np.asarray(spec.observations.year)})
    table = describe(table, {
        "observed_t": ("t", "observed survey biomass"),
        "predicted_t": ("t", "predicted survey biomass q·B"),
        "sd_log": ("1", "SD of log observation used in the likelihood"),
        "log_residual": ("1", "log observed − log predicted"),
        "standardised_residual": ("1", "log residual / SD (conditional residual at the mode)"),
        "osa_residual": ("1", "one-step-ahead residual (deviations integrated out; N(0, 1) under the model)"),
        "outside_three_sigma": ("1", "OSA residual outside the 3-sigma limits")})
    n = osa.size
    return ResidualDiagnostics(
        table=table, mean=float(np.mean(osa)), sd=float(np.std(osa, ddof=1)) if n > 1 else float("nan"),
        rmse=float(np.sqrt(np.mean(osa**2))), runs=runs, sdnr=float(np.sqrt(np.mean(osa**2))),
        conditional_sdnr=float(np.sqrt(np.mean(standardised**2))), sigma_survey=float(spec.sigma_survey),
        ar_coefficient=rho)
