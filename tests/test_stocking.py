"""Released fish entering the population (carpmodel.model.stocking): mass balance, mixing of
lengths by numbers, the ages that receive fish, purity and batch independence.

Tolerances: exact equality where the code only copies or selects; rel 1e-15 where a value is a
product or a short weighted mean (one or two roundings).
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.model.stocking import add_releases, stocked_ages

N_AGE = 6


def hatchery(batch: tuple[int, ...] = (3,)) -> tuple[np.ndarray, np.ndarray]:
    """Hatchery numbers and lengths at every age, different in every row."""
    rng = np.random.default_rng(7)
    numbers = rng.uniform(1e3, 1e5, batch + (N_AGE,))
    length = np.sort(rng.uniform(2.0, 40.0, batch + (N_AGE,)), axis=-1)
    return numbers, length


def test_released_fish_enter_after_acute_survival_mass_balance():
    numbers, length = hatchery()
    fish = np.zeros((3, N_AGE))
    fish[:, 1] = [2e4, 0.0, 5e3]
    fish[1, 3] = 7e3
    survival = np.array([[0.3], [0.5], [0.8]])
    entry = add_releases(numbers, length, fish, 9.0, survival)
    assert entry.ages == slice(1, 4)
    # N' = N + n·s_rel at every age of the span (rel 1e-15: one product and one sum)
    np.testing.assert_allclose(entry.numbers, numbers[:, 1:4] + fish[:, 1:4] * survival, rtol=1e-15, atol=0)
    # the fish that entered are exactly what acute survival let through
    assert (entry.numbers - numbers[:, 1:4]).sum() == pytest.approx((fish * survival).sum(), rel=1e-12)


def test_release_length_mixes_by_numbers_with_the_hatchery_fish_already_there():
    numbers, length = hatchery((1,))
    fish = np.zeros((1, N_AGE))
    fish[0, 2] = 4e4
    entry = add_releases(numbers, length, fish, 12.5, np.array([[0.25]]))
    entering = 4e4 * 0.25
    by_hand = (numbers[0, 2] * length[0, 2] + entering * 12.5) / (numbers[0, 2] + entering)
    assert entry.length_cm[0, 0] == pytest.approx(by_hand, rel=1e-15)
    # into an empty pool, released fish keep exactly their release length
    empty = add_releases(np.zeros((1, N_AGE)), length, fish, 12.5, np.array([[0.25]]))
    assert empty.length_cm[0, 0] == 12.5 and empty.numbers[0, 0] == entering


def test_zero_fish_changes_nothing():
    numbers, length = hatchery()
    assert add_releases(numbers, length, np.zeros((3, N_AGE)), 9.0, np.full((3, 1), 0.4)) is None
    assert stocked_ages(np.zeros((3, N_AGE))) is None
    # a row (or age inside the span) that receives no fish keeps its numbers and length exactly
    fish = np.zeros((3, N_AGE))
    fish[0, 1], fish[2, 4] = 1e4, 1e4
    entry = add_releases(numbers, length, fish, 9.0, np.full((3, 1), 0.4))
    assert entry.ages == slice(1, 5)
    np.testing.assert_array_equal(entry.numbers[1], numbers[1, 1:5])
    np.testing.assert_array_equal(entry.length_cm[1], length[1, 1:5])
    np.testing.assert_array_equal(entry.length_cm[0, 1:], length[0, 2:5])


def test_add_releases_is_pure_and_each_row_is_independent_of_the_batch():
    numbers, length = hatchery((4,))
    fish = np.zeros((4, N_AGE))
    fish[:, 1] = [1e4, 2e4, 0.0, 3e4]
    fish[3, 2] = 5e3
    survival = np.array([[0.2], [0.4], [0.6], [0.8]])
    kept = numbers.copy(), length.copy(), fish.copy()
    batch = add_releases(numbers, length, fish, 10.0, survival)
    for array, copy in zip((numbers, length, fish), kept, strict=True):
        np.testing.assert_array_equal(array, copy)          # inputs untouched
    for row in range(4):
        alone = add_releases(numbers[row:row + 1], length[row:row + 1], fish[row:row + 1], 10.0,
                             survival[row:row + 1])
        if alone is None:                                    # row 2 releases nothing
            np.testing.assert_array_equal(batch.numbers[row], numbers[row, batch.ages])
            continue
        # the same row computed alone or in the batch: bit for bit on its own span
        span = range(batch.ages.start, batch.ages.stop)
        for k, age in enumerate(range(alone.ages.start, alone.ages.stop)):
            j = span.index(age)
            assert batch.numbers[row, j] == alone.numbers[0, k]
            assert batch.length_cm[row, j] == alone.length_cm[0, k]


def test_float32_state_stays_float32():
    numbers, length = hatchery((2,))
    fish = np.zeros((2, N_AGE))
    fish[:, 0] = 1e4
    entry = add_releases(numbers.astype(np.float32), length.astype(np.float32), fish, 9.0,
                         np.full((2, 1), 0.4, np.float32))
    assert entry.numbers.dtype == np.float32 and entry.length_cm.dtype == np.float32
