"""Stock–recruitment in steepness form (Beverton–Holt and Ricker).

Recruits are age-0 fish at the start of the year, produced by the spawning output ``S``
(tonnes of mature fish, hatchery-origin spawners weighted by their relative reproductive
success). With ``R0`` unfished recruitment (fish), ``S0 = R0·φ0`` unfished spawning output and
``h`` steepness (recruits at ``0.2·S0`` as a fraction of ``R0``):

- Beverton–Holt: ``R = α·S/(1 + β·S)``, ``α = 4h/((1 − h)·φ0)``, ``β = (5h − 1)/((1 − h)·S0)``;
- Ricker: ``R = α·S·exp(−β·S)``, ``α = (5h)^{5/4}/φ0``, ``β = (5/4)·ln(5h)/S0``.

Both give ``R(S0) = R0`` and ``R(0.2·S0) = h·R0``. Recruitment deviations (log scale) and
temperature multipliers are applied by the caller.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

RecruitmentForm = Literal["beverton_holt", "ricker"]


def stock_recruit_coefficients(
    steepness: ArrayLike, r0: ArrayLike, ssb0_t: ArrayLike, form: RecruitmentForm
) -> tuple[NDArray, NDArray]:
    """Coefficients ``(α, β)`` of the stock–recruit curve: α in fish/t, β in 1/t."""
    h = np.asarray(steepness, dtype=float)
    ssb0 = np.asarray(ssb0_t, dtype=float)
    phi0 = ssb0 / np.asarray(r0, dtype=float)
    if form == "beverton_holt":
        return 4.0 * h / ((1.0 - h) * phi0), (5.0 * h - 1.0) / ((1.0 - h) * ssb0)
    if form == "ricker":
        return np.power(5.0 * h, 1.25) / phi0, 1.25 * np.log(5.0 * h) / ssb0
    raise ValueError(f"unknown stock-recruit form {form!r}")


def recruits_from_spawners(
    spawning_output_t: ArrayLike, alpha: ArrayLike, beta: ArrayLike, form: RecruitmentForm
) -> NDArray:
    """Expected recruits (fish) from spawning output (t), before deviations."""
    s = np.asarray(spawning_output_t, dtype=float)
    if form == "beverton_holt":
        return alpha * s / (1.0 + beta * s)
    return alpha * s * np.exp(-beta * s)


def equilibrium_recruits(
    spawners_per_recruit_t: ArrayLike, alpha: ArrayLike, beta: ArrayLike, form: RecruitmentForm
) -> NDArray:
    """Recruits at equilibrium for spawning output per recruit φ (t/fish); 0 if the stock dies out.

    Solves ``R = f(R·φ)``: Beverton–Holt ``R = (αφ − 1)/(βφ)``, Ricker ``R = ln(αφ)/(βφ)``.
    """
    phi = np.asarray(spawners_per_recruit_t, dtype=float)
    ap = np.asarray(alpha) * phi
    bp = np.asarray(beta) * phi
    if form == "beverton_holt":
        r = (ap - 1.0) / bp
    else:
        r = np.log(np.maximum(ap, 1e-300)) / bp
    return np.maximum(r, 0.0)
