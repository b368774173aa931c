"""The adaptive Metropolis sampler recovers a known target; R̂ and ESS behave."""

from __future__ import annotations

import numpy as np

from carpmodel.mcmc import effective_sample_size, metropolis, split_rhat


def test_metropolis_recovers_a_correlated_gaussian():
    mean = np.array([1.0, -2.0])
    cov = np.array([[1.0, 0.8], [0.8, 2.0]])
    precision = np.linalg.inv(cov)

    def log_target(theta):
        d = theta - mean
        return -0.5 * np.einsum("...i,ij,...j->...", d, precision, d)

    # start from a deliberately wrong proposal covariance: adaptation must fix it
    sample = metropolis(log_target, mean + 0.5, np.eye(2) * 0.1, n_chains=32, n_steps=1600,
                        burn_in=600, thin=2, seed=3, adapt_at=(100, 250, 400))
    draws = sample.flat
    # 16,000 kept draws with ESS in the thousands: the Monte Carlo SE of the mean is about
    # sqrt(2/ESS) < 0.05 and of the covariance entries similar, so 0.15 is > 3 SE.
    assert sample.ess.min() > 1000, sample.ess
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.15)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, atol=0.15)
    assert sample.converged and 0.1 < sample.acceptance_rate < 0.6


def test_rhat_flags_chains_that_disagree_and_ess_of_independent_draws():
    rng = np.random.default_rng(0)
    good = rng.standard_normal((4, 1000, 1))
    # independent draws: R̂ within 1% of 1 and ESS within 15% of the number of draws
    # (sampling error of the autocorrelation sum at these sizes is a few %)
    assert abs(split_rhat(good)[0] - 1.0) < 0.01
    assert abs(effective_sample_size(good)[0] / 4000 - 1.0) < 0.15
    bad = good + np.arange(4)[:, None, None]          # chains centred 0, 1, 2, 3
    assert split_rhat(bad)[0] > 1.5
