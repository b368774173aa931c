"""The shared robust refit (carpmodel.inference.refit): starts and scales matched by name, the batched
objective, the whitened search on a known quadratic, and warm refits of the bundled data
against the real fit's procedure.

Refits of the bundled data use the light model of test_diagnostics (4 estimated parameters
plus the recruitment deviations, one start): about 2 s per cold fit, well under 1 s warm.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from carpmodel import diagnostics as diag
from carpmodel.errors import ConvergenceWarning
from carpmodel.inference import refit as rf
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.likelihood import objective
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data

LIGHT = default_config().with_fit(n_starts=1, estimate=("unfished_biomass_t", "max_egg_survival",
                                                       "initial_depletion", "survey_q"), survey_sd="fixed")


@pytest.fixture(scope="module")
def data():
    return load_data(BUNDLED_DATA_DIRECTORY)


@pytest.fixture(scope="module")
def light_fit(data):
    result = fit(build_spec(data, LIGHT), n_starts=1, seed=LIGHT.seed)
    assert result.converged, result.warnings
    return result


@pytest.fixture(scope="module")
def replicates(light_fit):
    return diag.simulate_replicates(light_fit, 3, seed=5)


# ----------------------------------------------------------------------------- starts and scales


def test_map_start_and_map_hessian_match_parameters_by_name(data, light_fit):
    peel = build_spec(data, LIGHT.with_fit(last_data_year=2022))
    names = peel.parameter_names
    assert "rec_dev_2024" in light_fit.parameter_names and "rec_dev_2024" not in names
    start = rf.map_start(light_fit, peel)
    h = rf.map_hessian(light_fit, peel)
    index = [light_fit.parameter_names.index(name) for name in names]
    # every parameter of the peel exists in the full fit: values and Hessian block copied exactly
    np.testing.assert_array_equal(start, light_fit.theta[index])
    np.testing.assert_array_equal(h, light_fit.hessian[np.ix_(index, index)])
    # a parameter the source lacks: its start value, and its prior's precision on the diagonal
    wider = build_spec(data, LIGHT.with_fit(estimate=LIGHT.fit.estimate + ("m_ref_per_yr",)))
    i = wider.parameter_names.index("log_m_ref_per_yr")
    h_wider = rf.map_hessian(light_fit, wider)
    assert rf.map_start(light_fit, wider)[i] == wider.initial_theta()[i]
    prior = wider.estimated[i].prior.parameters
    sd = prior.get("sd", prior.get("sd_log"))
    assert h_wider[i, i] == pytest.approx(1.0 / sd**2, rel=1e-12)
    assert np.all(h_wider[i, np.arange(h_wider.shape[0]) != i] == 0.0)


def test_whitening_makes_the_matrix_the_identity():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    matrix = q @ np.diag([3e5, 10.0, 1.0, 0.5, 0.01]) @ q.T      # the fit's range of curvatures
    t = rf.whitening(matrix)
    # Tᵀ·M·T = I up to rounding of a condition number 3e7 (eigendecomposition: ~1e-9 relative)
    np.testing.assert_allclose(t.T @ matrix @ t, np.eye(5), atol=1e-6)
    # curvatures below 1e-8 of the largest are floored there (a flat direction gets a finite scale)
    flat = q @ np.diag([3e5, 10.0, 1.0, 0.5, 0.0]) @ q.T
    t = rf.whitening(flat)
    np.testing.assert_allclose(np.linalg.eigvalsh(t.T @ positive_part(flat) @ t), [0, 1, 1, 1, 1], atol=1e-6)
    # an indefinite matrix is whitened by its absolute eigenvalues
    indefinite = q @ np.diag([4.0, -1.0, 1.0, 1.0, 1.0]) @ q.T
    np.testing.assert_allclose(np.abs(np.linalg.eigvalsh(rf.whitening(indefinite).T @ indefinite
                                                         @ rf.whitening(indefinite))), 1.0, rtol=1e-10)
    assert rf.whitening(None) is None and rf.whitening(np.full((2, 2), np.nan)) is None


def positive_part(matrix):
    """``matrix`` with its eigenvalues below 1e-8 of the largest set to 0 (what the floor replaces)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.where(values >= 1e-8 * values.max(), values, 0.0)) @ vectors.T


# ----------------------------------------------------------------------------- objectives


def test_stacked_objective_is_the_objective_of_each_spec(light_fit, replicates):
    _, specs, _ = replicates
    rng = np.random.default_rng(2)
    thetas = light_fit.theta + 0.05 * rng.standard_normal((3, 4, light_fit.theta.size))
    stacked = rf.stacked_objective(specs)(np.arange(3), thetas)
    # one engine call for the three data sets: the same arithmetic as objective() on each spec
    # (the biomass data broadcast over the batch), so agreement to rounding only
    for r in range(3):
        np.testing.assert_allclose(stacked[r], objective(specs[r], thetas[r]), rtol=1e-12)
    # specs that differ in more than the biomass values: one call per spec, same numbers
    other = replace(specs[1], upper_bound=(2000, 3000.0))
    mixed = rf.stacked_objective([specs[0], other])(np.arange(2), thetas[:2])
    np.testing.assert_allclose(mixed[1], objective(other, thetas[1]), rtol=1e-12)
    assert not np.allclose(mixed[1], stacked[1])      # the bound does enter


# ----------------------------------------------------------------------------- the whitened search


def test_minimise_finds_each_rows_optimum_and_covariance_of_a_quadratic():
    # f_r(θ) = ½(θ − μ_r)ᵀ A (θ − μ_r) with curvatures 3e5 to 0.5, as the fit's, and optima a few
    # posterior SDs from the start (as a warm start is); the coordinates come from a Hessian that
    # is up to 40 % off. The central formulas are exact for a quadratic, so the optimum and A⁻¹
    # are recovered to the optimiser's tolerance (|g_y| < 1e-7: θ within ~1e-7 SDs).
    rng = np.random.default_rng(3)
    n = 6
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    curvature = np.array([3e5, 300.0, 10.0, 2.0, 1.0, 0.5])
    a = q @ np.diag(curvature) @ q.T
    mu = (3.0 * rng.standard_normal((4, n)) / np.sqrt(curvature)) @ q.T

    def values(rows, thetas):
        d = thetas - mu[rows][:, None, :]
        return 0.5 * np.einsum("kmi,ij,kmj->km", d, a, d)

    wrong = q @ np.diag(curvature * [0.7, 1.3, 0.7, 1.3, 0.6, 1.4]) @ q.T
    coords = rf.Coordinates(np.zeros((4, n)), np.repeat(rf.whitening(wrong)[None], 4, axis=0))
    batch = rf.minimise(values, coords)
    assert batch.converged.all()
    np.testing.assert_allclose(batch.theta, mu, rtol=0, atol=1e-6)
    for r in range(4):
        np.testing.assert_allclose(batch.covariance[r], np.linalg.inv(a), rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(batch.hessian[r], a, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- refits of the data


def test_warm_peel_refit_reaches_the_cold_fits_optimum(data, light_fit):
    spec = build_spec(data, LIGHT.with_fit(last_data_year=2022))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = fit(spec, n_starts=1, seed=LIGHT.seed)
    warm = rf.refit(spec, source=light_fit, cold_first=False, label="peel")
    assert warm.converged and "carpmodel.inference.refit" in warm.optimizer["method"]
    # same optimum: |gradient| < 1e-3 against curvatures >= 0.4 bounds the NLL difference by ~1e-6
    assert warm.nll == pytest.approx(cold.nll, abs=1e-5)
    np.testing.assert_allclose(warm.theta, cold.theta, atol=5e-3)
    # the covariance is fitting.hessian's at the end point, as the real fit reports it: at points
    # this close the standard errors agree to ~1e-3
    np.testing.assert_allclose(warm.std_errors, cold.std_errors, rtol=2e-2)


def test_refit_many_does_not_depend_on_the_batch(light_fit, replicates):
    _, specs, seeds = replicates
    batch = rf.refit_many(specs, source=light_fit, seeds=seeds)
    alone = rf.refit_many(specs[1:2], source=light_fit, seeds=seeds[1:2])[0]
    assert all(r.converged for r in batch)
    # each row of the batched search takes its own steps from the same numbers: the replicate's
    # result is the same whether refitted with others or alone (rounding only)
    np.testing.assert_allclose(batch[1].theta, alone.theta, rtol=0, atol=1e-9)
    assert batch[1].nll == pytest.approx(alone.nll, abs=1e-10)
    # and it is the optimum of its own data: the cold fit from the priors' centres agrees
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = fit(specs[1], n_starts=1, seed=seeds[1])
    assert batch[1].nll <= cold.nll + 1e-5


def test_a_refit_that_fails_outright_is_none_with_one_warning(light_fit):
    spec = light_fit.spec
    broken = replace(spec, observations=replace(spec.observations,
                                                biomass_t=-np.abs(spec.observations.biomass_t)))
    with pytest.warns(ConvergenceWarning, match="broken refit: fit failed") as caught:
        assert rf.refit(broken, source=light_fit, cold_first=False, label="broken refit") is None
    assert len([w for w in caught if "broken refit" in str(w.message)]) == 1


def test_better_prefers_converged_then_smaller_objective(light_fit):
    worse = replace(light_fit, nll=light_fit.nll + 1.0)
    stuck = replace(light_fit, nll=light_fit.nll - 1.0, converged=False)
    assert rf.better(worse, light_fit) is light_fit
    assert rf.better(stuck, worse) is worse
    assert rf.better(None, stuck) is stuck and rf.better(None, None) is None
