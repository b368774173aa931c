"""Juvenile density dependence (carpmodel.model.mortality): M_dd = ln(1 + γ·J/J0) on the window
ages, its survival factor and inverse, the abundance in the window and the fish leaving it, on
the fast path (one window for the batch) and the per-row path (a window per row).

Tolerances: exact equality where the code only selects or sums exact zeros; rel 1e-15 where a
value passes through one log or a division (one rounding), 1e-14 through an inverse (a few).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from carpmodel.model.mortality import (
    dd_mortality_per_yr,
    dd_survival,
    juvenile_abundance,
    juveniles_at_dd_survival,
    window_mask,
    window_survivors,
)

N_AGE = 7


def numbers(batch: tuple[int, ...] = (3,)) -> np.ndarray:
    """(*batch, origin, age) numbers, different everywhere."""
    return np.random.default_rng(3).uniform(1e2, 1e6, batch + (2, N_AGE))


def test_window_mortality_at_the_unfished_abundance_is_ln_one_plus_gamma():
    gamma = np.array([0.0, 0.5, 2.0])
    j0 = np.array([1e6, 3e7, 5.0])
    fast = dd_mortality_per_yr(j0, j0, gamma, 1, n_age=N_AGE)
    assert fast.shape == (3, 1, 1)
    np.testing.assert_allclose(fast[:, 0, 0], np.log(1.0 + gamma), rtol=1e-15, atol=0)
    per_row = dd_mortality_per_yr(j0, j0, gamma, np.array([0, 1, 2]), n_age=N_AGE)
    assert per_row.shape == (3, 1, N_AGE)
    np.testing.assert_allclose(per_row[:, 0, :], np.log(1.0 + gamma)[:, None] * (window_mask(
        np.array([0, 1, 2]), N_AGE)[:, 0, :]), rtol=1e-15, atol=0)
    np.testing.assert_allclose(dd_survival(j0, j0, gamma), 1.0 / (1.0 + gamma), rtol=1e-15)


def test_survival_factor_is_exp_of_minus_the_mortality_and_its_inverse_gives_back_j():
    juveniles = np.array([0.0, 1e5, 2e6, 4e7])
    j0, gamma = 2e6, 0.8
    x = dd_survival(juveniles, j0, gamma)
    assert x[0] == 1.0 and np.all(np.diff(x) < 0)          # no juveniles: no extra mortality
    np.testing.assert_allclose(np.exp(-dd_mortality_per_yr(juveniles, j0, gamma, 0, n_age=N_AGE)[:, 0, 0]),
                               x, rtol=1e-15)
    # J = J0·(1/x − 1)/γ inverts x = 1/(1 + γ·J/J0) (a few roundings: rtol 1e-14, atol for J = 0)
    np.testing.assert_allclose(juveniles_at_dd_survival(x, j0, gamma), juveniles, rtol=1e-14, atol=1e-9)


def test_mortality_is_zero_outside_the_window_of_each_row_and_float32_on_request():
    m_dd = dd_mortality_per_yr(np.array([1e6, 1e6]), 1e6, 1.0, np.array([0, 3]), n_age=N_AGE,
                               dtype=np.float32)
    assert m_dd.dtype == np.float32
    np.testing.assert_array_equal(m_dd[0, 0, 1:], 0.0)
    np.testing.assert_array_equal(m_dd[1, 0, 4:], 0.0)
    assert m_dd[1, 0, 3] == np.float32(math.log(2.0))


def test_juvenile_abundance_sums_both_origins_over_the_window_ages_on_either_path():
    n = numbers()
    by_hand = n[..., :2].sum(axis=(-2, -1))
    np.testing.assert_allclose(juvenile_abundance(n, 1), by_hand, rtol=1e-15)
    np.testing.assert_allclose(juvenile_abundance(n, np.array([1, 1, 1])), by_hand, rtol=1e-15)
    per_row = juvenile_abundance(n, np.array([0, 2, 6]))
    np.testing.assert_allclose(per_row, [n[0, :, :1].sum(), n[1, :, :3].sum(), n[2].sum()], rtol=1e-15)
    assert juvenile_abundance(n.astype(np.float32), 1).dtype == np.float32


def test_window_survivors_are_the_fish_at_the_last_window_age_on_either_path():
    survivors = numbers()
    total, wild = window_survivors(survivors, 2)
    np.testing.assert_array_equal(wild, survivors[:, 0, 2])
    np.testing.assert_array_equal(total, survivors[:, 0, 2] + survivors[:, 1, 2])
    # the per-row path selects each row's last window age; with one window it agrees exactly
    same_total, same_wild = window_survivors(survivors, np.array([2, 2, 2]))
    np.testing.assert_array_equal(same_total, total)
    np.testing.assert_array_equal(same_wild, wild)
    mixed_total, mixed_wild = window_survivors(survivors, np.array([0, 2, 5]))
    np.testing.assert_array_equal(mixed_wild, [survivors[0, 0, 0], survivors[1, 0, 2], survivors[2, 0, 5]])
    np.testing.assert_array_equal(mixed_total, survivors[[0, 1, 2], :, [0, 2, 5]].sum(axis=-1))


@pytest.mark.parametrize("window", [1, np.array([1, 1, 1])], ids=["fast", "per_row"])
def test_no_density_dependence_when_gamma_is_zero(window):
    j = juvenile_abundance(numbers(), window)
    assert np.all(dd_survival(j, 1e5, 0.0) == 1.0)
    assert np.all(dd_mortality_per_yr(j, 1e5, 0.0, window, n_age=N_AGE) == 0.0)
