"""Monitoring design, the batched refits (carpmodel.studies.monitoring_refit): one engine batch
scores every replicate exactly as the likelihood does."""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.inference.likelihood import objective
from carpmodel.studies.monitoring import (
    DEFAULT_MISCLASSIFICATION,
    simulate_juvenile_index,
    simulate_monitoring_data,
    simulate_truths,
    truth_thetas,
)
from carpmodel.studies.monitoring_refit import (
    MISCLASSIFICATION_PRIORS,
    SamplingDesign,
    design_spec,
    evaluate_rows,
    extend_theta,
    refit_problem,
)

SEED = 20260601


@pytest.fixture(scope="module")
def result(bundled_fit):
    """The bundled default fit (session fixture)."""
    return bundled_fit


def test_batched_objective_equals_the_likelihood(result):
    # The design study scores all replicates from one engine batch; it must give exactly the NLL of
    # carpmodel.inference.likelihood.objective on each replicate's own spec (hatchery samples with estimated
    # misclassification, juvenile index with its catchability). Same arithmetic: 1e-9 relative.
    truth = simulate_truths(result, truth_thetas(result, [0.6]))
    design = SamplingDesign(500, 3, 0.3, 3)
    structure, extra = design_spec(result.spec, design, misclassification=DEFAULT_MISCLASSIFICATION,
                                        estimate_misclassification=True,
                                        priors=MISCLASSIFICATION_PRIORS, juvenile_q=1e-8)
    rng = np.random.default_rng(SEED)
    biomass, samples, juvenile = [], [], []
    for _ in range(3):
        obs, smp = simulate_monitoring_data(result, truth.theta[0], sample_years=[2022, 2023, 2024],
                                                fish_per_year=500, rng=rng)
        biomass.append(obs.biomass_t)
        samples.append(smp)
        juvenile.append(simulate_juvenile_index(result, truth.theta[0], years=[2022, 2023, 2024],
                                                    q=1e-8, rng=rng))
    problem = refit_problem(structure, np.array(biomass), samples, juvenile)
    start = extend_theta(truth.theta[0], len(result.spec.estimated), extra)[0]
    thetas = start + 0.05 * rng.standard_normal((3, 4, start.size))
    batched = evaluate_rows(problem, np.arange(3), thetas)
    for r in range(3):
        assert problem.replicate_specs[r].hatchery_samples == samples[r]
        expected = objective(problem.replicate_specs[r], thetas[r])
        np.testing.assert_allclose(batched[r], expected, rtol=1e-9)
