"""The draws' counter-based random streams: numpy's Philox bit for bit, independent of the batch,
standard normals that are standard normal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from carpmodel.errors import ConfigError
from carpmodel.management.anomalies import AnomalyModel, sample_anomalies
from carpmodel.management.draw_streams import DrawStream, philox4x64, seed_key
from carpmodel.management.projection import ProjectionSetup, draw_randomness


def _numpy_philox(key, counter):
    # as uint64 arrays: numpy converts a list of Python ints above 2^63 through float64
    return np.random.Philox(key=np.array(key, dtype=np.uint64), counter=np.array(counter, dtype=np.uint64))


@pytest.mark.parametrize("seed", [0, 7, 20260601, 2**70 + 3])
def test_a_draws_stream_is_numpys_philox_from_counter_zero_draw_stream(seed):
    key = seed_key(seed)
    draws = np.array([0, 1, 999, 2**40 + 5])
    words = DrawStream(key, draws, 3).words(11)
    for row, draw in enumerate(draws):
        reference = _numpy_philox(key, [0, int(draw), 3, 0]).random_raw(11)
        np.testing.assert_array_equal(words[row], reference)


def test_philox_rounds_carry_across_64_bits():
    # counters and keys near 2^64 exercise the 128-bit products and the key's wrap-around
    top = np.uint64(2**64 - 1)
    counter = np.array([[top, top, top, top], [top - np.uint64(1), 0, top, 1]], dtype=np.uint64)
    key = (2**64 - 1, 2**63 + 11)
    blocks = philox4x64(counter, key)
    for block, c in zip(blocks, counter, strict=True):
        # numpy adds one to the 256-bit counter before a block: start one below (with the borrow)
        value = sum(int(word) << (64 * i) for i, word in enumerate(c)) - 1
        start = [(value >> (64 * i)) & (2**64 - 1) for i in range(4)]
        np.testing.assert_array_equal(block, _numpy_philox(key, start).random_raw(4))


def test_a_draws_numbers_do_not_depend_on_the_other_draws_or_how_many_are_drawn():
    key = seed_key(11)
    whole = DrawStream(key, np.arange(50), 2).standard_normal(30)
    part = DrawStream(key, np.array([7, 42]), 2).standard_normal(9)
    np.testing.assert_array_equal(part, whole[[7, 42], :9])
    other_stream = DrawStream(key, np.arange(50), 3).standard_normal(30)
    assert not np.any(other_stream == whole)


def test_uniforms_lie_strictly_inside_the_unit_interval_and_normals_are_standard():
    stream = DrawStream(seed_key(5), np.arange(400), 0)
    u = stream.uniform(500)
    assert u.min() > 0.0 and u.max() < 1.0
    z = stream.standard_normal(500).ravel()            # 200,000 values
    assert stats.kstest(z, "norm").pvalue > 0.01
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1.0) < 5 * np.sqrt(2 / z.size)
    # neighbouring draws and neighbouring positions are uncorrelated
    grid = stream.standard_normal(500)
    assert abs(np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]) < 0.01


def test_anomaly_paths_from_a_draw_stream_are_the_paths_of_its_rows():
    model = AnomalyModel.ar1(0.4, 0.3)
    stream = DrawStream(seed_key(3), np.arange(8), 4)
    paths = sample_anomalies(model, stream, 20)
    alone = sample_anomalies(model, DrawStream(seed_key(3), np.array([5]), 4), 20)
    np.testing.assert_array_equal(paths[5], alone[0])
    z = stream.standard_normal(20)
    expected = z * model.innovation_sd
    expected[:, 0] = z[:, 0] * model.marginal_sd
    for t in range(1, 20):
        expected[:, t] += 0.4 * expected[:, t - 1]
    np.testing.assert_allclose(paths, expected, rtol=1e-12, atol=1e-15)


def test_the_extreme_words_give_uniforms_inside_the_interval_and_finite_normals(monkeypatch):
    extremes = np.array([[0, 2**11 - 1, 2**63, 2**64 - 2**11, 2**64 - 1]], dtype=np.uint64)
    monkeypatch.setattr(DrawStream, "words", lambda self, n: extremes[:, :n])
    stream = DrawStream(seed_key(1), np.array([0]), 0)
    u = stream.uniform(5)
    assert np.all((u > 0.0) & (u < 1.0))
    assert u[0, 0] == 2.0**-54 and u[0, -1] == 1.0 - 2.0**-53
    z = stream.standard_normal(5)
    assert np.all(np.isfinite(z)) and z[0, 0] < -8.2 and z[0, -1] > 8.1


@pytest.mark.parametrize("model", [AnomalyModel((), (), 0.3), AnomalyModel((0.5, -0.2), (0.3,), 0.2),
                                   AnomalyModel.ar1(0.4, 0.3, recent_anomaly=0.5)])
@pytest.mark.parametrize("beyond", ["hold_last", "continue_process"])
def test_anomaly_paths_of_every_order_are_those_of_each_draw_alone(model, beyond):
    stream = DrawStream(seed_key(9), np.arange(5), 4)
    together = sample_anomalies(model, stream, 12, beyond_series=beyond)
    for draw in range(5):
        single = DrawStream(seed_key(9), np.array([draw]), 4)
        alone = sample_anomalies(model, single, 12, beyond_series=beyond)
        np.testing.assert_array_equal(together[draw], alone[0])


@pytest.mark.parametrize("draws", [np.array([-1, 0]), np.array([1.5]), np.array([True]), np.array([[0, 1]]),
                                   np.array([2**63], dtype=np.uint64)])
def test_bad_draw_indices_are_refused_naming_them(draws):
    with pytest.raises(ConfigError, match="draws"):
        draw_randomness(1, draws, 3, 4)


def test_a_bad_stream_or_count_is_refused():
    with pytest.raises(ConfigError, match="stream"):
        DrawStream(seed_key(1), np.arange(2), -1)
    with pytest.raises(ConfigError, match="non-negative integer"):
        DrawStream(seed_key(1), np.arange(2), 0).words(-1)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7", True, None])
def test_a_projection_refuses_a_seed_that_is_not_a_64_bit_index(seed):
    with pytest.raises(ConfigError, match="seed"):
        ProjectionSetup(strategy_names=("a",), build_policy=lambda *args: None, seed=seed)
