"""Recruitment from egg production, bounded by the survival of an egg.

A recruit is a wild fish of age 1 on 1 January: the year class spawned in year ``y`` (eggs
``E_y``) reaches age 1 on 1 January of ``y + 1``. Egg-to-recruit survival covers incubation, the
first summer (hatching mid-June, growth along the von Bertalanffy path) and the first winter.

Eggs: ``E = S·10⁶·f_fem·fec`` with ``S`` the spawning output in tonnes (hatchery-origin
spawners weighted by their relative reproductive success), ``f_fem`` the fraction female and
``fec`` the relative fecundity (eggs per gram of female).

Stock–recruit curves in eggs, with ``a`` the density-independent egg-to-recruit survival
(recruits per egg as eggs → 0; :data:`MAX_EGG_SURVIVAL_BOUND` bounds it) and ``φ0 = E0/R0``
the unfished eggs per recruit:

- Beverton–Holt: ``R = a·E/(1 + β·E)``, ``β = (a·φ0 − 1)/E0``;
- Ricker: ``R = a·E·exp(−β·E)``, ``β = ln(a·φ0)/E0``.

Both give ``R(E0) = R0``. The compensation ratio is ``CR = a·φ0`` and steepness is derived:
Beverton–Holt ``h = CR/(4 + CR)``, Ricker ``h = 0.2·CR^0.8``. Recruitment deviations and
forcing act on the LOGIT of ``a`` (:func:`recruits_from_eggs`), so the survival of a year
class stays in (0, 1) whatever the deviation: recruits per egg are below ``a_y/(1 + βE) < 1``
in every year and every draw, by construction.

The engine's year step (:mod:`carpmodel.model.kernel`) computes these formulas in compiled code;
``tests/test_kernel.py`` checks it against the functions here, which stay the model's definition
(and serve the equilibrium, the observation models and the tests).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logit

RecruitmentForm = Literal["beverton_holt", "ricker"]

#: hard upper bound of the density-independent egg -> age-1 survival (data/SOURCES.md,
#: assumption_egg_survival: the best egg-to-autumn survival of wild brook trout, 4.7-8.6 %,
#: whose eggs are far larger; 25x the 0.2 %/week field anecdote for this species)
MAX_EGG_SURVIVAL_BOUND = 0.05


def eggs_per_tonne(female_fraction: ArrayLike, fecundity_eggs_per_g: ArrayLike) -> NDArray:
    """Eggs per tonne of spawning output: ``10⁶ g/t · f_fem · fec``."""
    return 1e6 * np.asarray(female_fraction, dtype=float) * np.asarray(fecundity_eggs_per_g, dtype=float)


def stock_recruit_coefficients(max_egg_survival: ArrayLike, r0: ArrayLike, eggs0: ArrayLike,
                               form: RecruitmentForm) -> tuple[NDArray, NDArray]:
    """Coefficients ``(a, β)``: ``a`` recruits per egg at low density, ``β`` in 1/egg."""
    a = np.asarray(max_egg_survival, dtype=float)
    e0 = np.asarray(eggs0, dtype=float)
    compensation = a * e0 / np.asarray(r0, dtype=float)
    if form == "beverton_holt":
        return a, (compensation - 1.0) / e0
    if form == "ricker":
        with np.errstate(divide="ignore", invalid="ignore"):
            return a, np.log(compensation) / e0
    raise ValueError(f"unknown stock-recruit form {form!r}")


def compensation_ratio(max_egg_survival: ArrayLike, eggs_per_recruit0: ArrayLike) -> NDArray:
    """Goodyear's compensation ratio ``CR = a·φ0``: lifetime eggs of a recruit times the egg's
    survival at low density; the stock can persist unfished only if ``CR > 1``."""
    return np.asarray(max_egg_survival, dtype=float) * np.asarray(eggs_per_recruit0, dtype=float)


def steepness(max_egg_survival: ArrayLike, eggs_per_recruit0: ArrayLike, form: RecruitmentForm) -> NDArray:
    """Derived steepness ``R(0.2·E0)/R0``: Beverton–Holt ``CR/(4 + CR)``, Ricker ``0.2·CR^0.8``."""
    cr = compensation_ratio(max_egg_survival, eggs_per_recruit0)
    if form == "beverton_holt":
        return cr / (4.0 + cr)
    return 0.2 * np.power(np.maximum(cr, 0.0), 0.8)


def recruits_from_eggs(eggs: ArrayLike, alpha: ArrayLike, beta: ArrayLike, form: RecruitmentForm,
                       logit_deviation: ArrayLike = 0.0) -> NDArray:
    """Recruits (fish at age 1) from eggs, with a deviation on the logit of the egg survival.

    ``a_y = expit(logit(a) + ε)``; Beverton–Holt ``a_y·E/(1 + βE)``, Ricker ``a_y·E·exp(−βE)``.
    For small ``a`` the logit deviation is a log deviation: ``a_y ≈ a·exp(ε)``.
    """
    e = np.asarray(eggs, dtype=float)
    a_y = expit(logit(np.asarray(alpha, dtype=float)) + np.asarray(logit_deviation, dtype=float))
    if form == "beverton_holt":
        return a_y * e / (1.0 + beta * e)
    return a_y * e * np.exp(-beta * e)


def equilibrium_recruits(eggs_per_recruit: ArrayLike, alpha: ArrayLike, beta: ArrayLike,
                         form: RecruitmentForm) -> NDArray:
    """Recruits at equilibrium for eggs per recruit φ; 0 if the stock dies out.

    Solves ``R = f(R·φ)``: Beverton–Holt ``R = (aφ − 1)/(βφ)``, Ricker ``R = ln(aφ)/(βφ)``.
    """
    phi = np.asarray(eggs_per_recruit, dtype=float)
    ap = np.asarray(alpha) * phi
    bp = np.asarray(beta) * phi
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "beverton_holt":
            r = (ap - 1.0) / bp
        else:
            r = np.log(np.maximum(ap, 1e-300)) / bp
    return np.where(ap > 1.0, np.maximum(r, 0.0), 0.0)
