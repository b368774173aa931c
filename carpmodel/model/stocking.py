"""Stocking: hatchery fish entering the population (Lorenzen 2005, "Population dynamics and
potential of fisheries stock enhancement", Phil. Trans. R. Soc. B 360:171–189).

What happens to released fish in the engine (:func:`carpmodel.model.dynamics.simulate`):

* **Entry.** Released fish are counted *before* acute post-release survival: of ``n`` fish
  released at weight ``W``, ``n·s(W)`` enter the hatchery origin at their age at release, in
  summer: after that year's spawning and wild recruitment, so a released fish never spawns in
  its release year. Acute survival depends on release weight
  (:func:`release_survival_at_weight`): ``logit s(W) = logit s_ref + β·log(W/W_ref)``, with
  ``s_ref`` = ``release_survival`` at ``W_ref`` = ``release_reference_weight_g`` and β =
  ``release_survival_size_slope`` (0 by default: one survival for every release size). Their
  length is the release length ``L_rel = (W/α)^(1/β)`` from
  the release weight through the length–weight relation
  (:func:`carpmodel.model.growth.length_at_weight_cm`); hatchery fish already at that age are
  merged with them at the numbers-weighted mean length (the hatchery origin is one pool per
  age), and so are two release classes of one strategy at the same age but different weights
  (:class:`carpmodel.management.policy.StrategyPolicy`). :func:`add_releases` is this step.
* **Size-dependent mortality.** From then on they die at the Lorenzen rate
  ``M(L) = M_ref·(L/L_ref)^−c`` integrated over the year along their own von Bertalanffy growth
  path (:func:`carpmodel.model.mortality.lorenzen_m_per_yr`), so a release cohort keeps its size
  advantage and larger fish survive better. At the bundled life history (M_ref 0.2/yr at 30 cm,
  c = 1, α = 0.012, β = 3) a 10-g fish (9.4 cm) has M ≈ 0.53/yr in its first year, a 50-g fish
  (16.1 cm) ≈ 0.34/yr, a wild age-1 fish (3.4 cm) ≈ 1.1/yr.
* **Shared density dependence.** While inside the juvenile window (ages ``0..w``,
  ``dd_window_end_age_yr``) hatchery fish add to the abundance ``J`` of wild plus hatchery
  juveniles that drives the extra mortality ``M_dd = ln(1 + γ·J/J0)`` of *every* fish in the
  window (:func:`carpmodel.model.mortality.dd_mortality_per_yr`): releases into the window lower
  the survival of wild juveniles too, so part of what they add is taken back from wild recruits
  (replacement). Fish released older than ``w`` escape it and add, at a higher cost per fish.
  How much is added and how much replaced is set by γ and w (parameters with priors), never
  fixed by this module.
* **Spawning.** Mature hatchery fish spawn with relative reproductive success ρ
  (``relative_reproductive_success``): spawning output ``S = Σ (N_w + ρ·N_h)·W·mat``; their
  offspring are wild-origin recruits.
* **Harvest.** ``Z = M(L) + M_dd + F·sel(L)``; fishing takes hatchery and wild fish alike.

Historical releases come from the data (:mod:`carpmodel.model.drivers`), projected ones from a
strategy's policy (:mod:`carpmodel.management.policy`).

The engine's year step (:mod:`carpmodel.model.kernel`) computes these formulas in compiled code;
``tests/test_kernel.py`` checks it against the functions here, which stay the model's definition
(and serve the equilibrium, the observation models and the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Entry", "add_releases", "release_survival_at_weight", "stocked_ages"]


@dataclass(frozen=True)
class Entry:
    """The hatchery origin at the ages that received fish, after a release (:func:`add_releases`).

    Attributes
    ----------
    ages : slice
        From the first to the last age that receives fish in any batch row.
    numbers : (*batch, n) fish, hatchery numbers at those ages after the release
    length_cm : (*batch, n) cm, their length state (numbers-weighted mean of the fish already
        there and the fish entering; unchanged in a row and age that received none)
    """

    ages: slice
    numbers: NDArray
    length_cm: NDArray


def release_survival_at_weight(release_survival: ArrayLike, slope: ArrayLike, weight_g: ArrayLike,
                               reference_weight_g: ArrayLike) -> NDArray:
    """Acute post-release survival of fish released at ``weight_g`` (g), 0–1.

    ``logit s(W) = logit s_ref + β·log(W/W_ref)`` with ``s_ref`` = ``release_survival`` (the
    survival at ``reference_weight_g``) and β = ``slope``; exactly ``s_ref`` where β = 0 (and
    where ``s_ref`` is 0 or 1). All arguments broadcast; the result has their broadcast shape.
    """
    s_ref = np.asarray(release_survival, dtype=float)
    beta = np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = beta * np.log(np.asarray(weight_g, dtype=float) / np.asarray(reference_weight_g, dtype=float))
        logit_ref = np.log(s_ref) - np.log1p(-s_ref)
        moved = 1.0 / (1.0 + np.exp(-(logit_ref + shift)))
    inside = (beta != 0) & (s_ref > 0) & (s_ref < 1) & np.isfinite(shift)
    return np.where(inside, moved, s_ref)


def stocked_ages(fish: ArrayLike) -> slice | None:
    """The ages from the first to the last that receive fish in any batch row (None: none do).

    ``fish`` is ``(*batch, age)``. Working on this span only saves work; a row's state changes
    only where fish enter it, so no row depends on the others.
    """
    fish = np.asarray(fish)
    stocked = np.flatnonzero(np.any(fish != 0, axis=tuple(range(fish.ndim - 1))))
    return None if stocked.size == 0 else slice(stocked[0], stocked[-1] + 1)


def add_releases(numbers: NDArray, length_cm: NDArray, fish: ArrayLike, release_length_cm: ArrayLike,
                 release_survival: ArrayLike) -> Entry | None:
    """Hatchery fish entering the population in one year: acute survival, then mixing by numbers.

    ``N' = N + n·s_rel`` and ``L' = (N·L + n·s_rel·L_rel)/N'`` at each age that receives fish
    (``L' = L`` where none enter), computed only on :func:`stocked_ages`. Pure: the inputs are
    not modified; the caller writes :attr:`Entry.numbers` and :attr:`Entry.length_cm` back at
    :attr:`Entry.ages`.

    Parameters
    ----------
    numbers : (*batch, age) fish
        Hatchery-origin numbers before the release (after spawning and recruitment); its dtype
        (float64 or float32) is the precision of the result.
    length_cm : (*batch, age) cm
        Their length state.
    fish : (*batch, age) fish
        Fish released at each age, before acute survival.
    release_length_cm : cm, broadcasting to ``fish``
        Length of the released fish at each age.
    release_survival : (*batch, 1) or (*batch, age), 0–1
        Acute post-release survival ``s_rel`` (per age: at each age's release weight,
        :func:`release_survival_at_weight`), in the dtype of ``numbers``.

    Returns
    -------
    Entry or None
        None when no fish are released at any age.
    """
    fish = np.asarray(fish)
    ages = stocked_ages(fish)
    if ages is None:
        return None
    dtype = numbers.dtype
    survival = np.asarray(release_survival)
    if survival.ndim and survival.shape[-1] == fish.shape[-1] > 1:
        survival = survival[..., ages]
    entering = fish[..., ages].astype(dtype) * survival
    entering_length = np.broadcast_to(np.asarray(release_length_cm, dtype), fish.shape)[..., ages]
    before = numbers[..., ages]
    before_length = length_cm[..., ages]
    total = before + entering
    mixed = (before * before_length + entering * entering_length) / np.where(total > 0, total, 1.0)
    return Entry(ages, total, np.where(entering > 0, mixed, before_length))
