"""Posterior sampling by random-walk Metropolis, many chains advanced as one engine batch.

The fit's normal approximation is a poor posterior here: steepness and juvenile density
dependence trade off along a curved ridge that the biomass record cannot resolve, so draws
from ``N(θ̂, Σ)`` land far out in the tails. Each of ``n_chains`` chains proposes
``θ' = θ + s·Σ^{1/2}·z`` (``s = 2.38/√d`` by default, Roberts & Rosenthal 2001) and accepts with
probability ``min(1, exp(NLL(θ) − NLL(θ')))``; all chains are evaluated in one call of the
batched objective per step. Convergence is judged by split-R̂ and the effective sample size
(Gelman et al. 2013, BDA3 §11.4–11.5; Geyer's initial positive sequence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carpmodel.likelihood import ModelSpec, objective


@dataclass(frozen=True)
class McmcSample:
    """Posterior draws of theta and how well the chains mixed."""

    theta: NDArray              # (n_chains, n_kept, n_parameters) after burn-in and thinning
    nll: NDArray                # (n_chains, n_kept)
    acceptance_rate: float
    rhat: NDArray               # (n_parameters,) split-R̂
    ess: NDArray                # (n_parameters,) effective sample size
    parameter_names: tuple[str, ...]

    @property
    def flat(self) -> NDArray:
        """All kept draws, (n_chains·n_kept, n_parameters)."""
        return self.theta.reshape(-1, self.theta.shape[-1])

    @property
    def converged(self) -> bool:
        """R̂ < 1.05 for every parameter (a common threshold; Vehtari et al. 2021 suggest 1.01)."""
        return bool(np.all(self.rhat < 1.05))


def sample_posterior(spec: ModelSpec, theta_hat: NDArray, covariance: NDArray, **options: Any) -> McmcSample:
    """Posterior draws of a fitted spec's theta: :func:`metropolis` on ``−NLL``."""
    sample = metropolis(lambda theta: -objective(spec, theta), theta_hat, covariance, **options)
    return replace(sample, parameter_names=spec.parameter_names)


def metropolis(log_target: Callable[[NDArray], NDArray], theta_hat: NDArray, covariance: NDArray, *,
               n_chains: int = 48, n_steps: int = 1200, burn_in: int = 600, thin: int = 3,
               seed: int = 20260601, adapt_at: tuple[int, ...] = (150, 300, 450)) -> McmcSample:
    """Adaptive random-walk Metropolis from ``theta_hat``.

    The proposal starts as ``(2.38/√d)²·covariance`` (the fit's inverse Hessian); at each step in
    ``adapt_at`` (all inside the burn-in) it is replaced by the covariance of the chains' draws so
    far (pooled over chains, second half of the elapsed steps) and its scale is nudged towards an
    acceptance rate of 0.23 (Haario et al. 2001; Roberts & Rosenthal 2001). Adaptation stops at
    the end of burn-in, so the kept draws come from a fixed Markov kernel.
    """
    if max(adapt_at, default=0) >= burn_in:
        raise ValueError("adaptation must end inside the burn-in")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = theta_hat.size
    root = _square_root(covariance)
    scale = 2.38 / np.sqrt(n)
    theta = theta_hat + 0.1 * scale * rng.standard_normal((n_chains, n)) @ root.T
    nll = -log_target(theta)
    history, kept_theta, kept_nll = [], [], []
    accepted = recent = 0
    for i in range(n_steps):
        if i in adapt_at:
            pooled = np.concatenate(history[len(history) // 2:], axis=0)
            root = _square_root(np.cov(pooled, rowvar=False) + 1e-10 * np.eye(n))
            rate = recent / (n_chains * (i - (max((a for a in adapt_at if a < i), default=0))))
            scale *= float(np.exp(rate - 0.23))
            recent = 0
        proposal = theta + scale * rng.standard_normal((n_chains, n)) @ root.T
        proposal_nll = -log_target(proposal)
        accept = np.log(rng.uniform(size=n_chains)) < nll - proposal_nll
        theta = np.where(accept[:, None], proposal, theta)
        nll = np.where(accept, proposal_nll, nll)
        if i < burn_in:
            history.append(theta)
            recent += int(accept.sum())
        else:
            accepted += int(accept.sum())
            if (i - burn_in) % thin == 0:
                kept_theta.append(theta)
                kept_nll.append(nll)
    draws = np.stack(kept_theta, axis=1)
    return McmcSample(theta=draws, nll=np.stack(kept_nll, axis=1),
                      acceptance_rate=accepted / (n_chains * max(n_steps - burn_in, 1)),
                      rhat=split_rhat(draws), ess=effective_sample_size(draws),
                      parameter_names=tuple(f"theta_{i}" for i in range(n)))


def _square_root(covariance: NDArray) -> NDArray:
    values, vectors = np.linalg.eigh(covariance)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def split_rhat(draws: NDArray) -> NDArray:
    """Split-R̂ per parameter for ``draws (chains, iterations, parameters)`` (BDA3 §11.4)."""
    half = draws.shape[1] // 2
    chains = np.concatenate([draws[:, :half], draws[:, half:2 * half]], axis=0)
    n = chains.shape[1]
    within = chains.var(axis=1, ddof=1).mean(axis=0)
    between = n * chains.mean(axis=1).var(axis=0, ddof=1)
    pooled = (n - 1) / n * within + between / n
    return np.sqrt(np.divide(pooled, within, out=np.ones_like(pooled), where=within > 0))


def effective_sample_size(draws: NDArray) -> NDArray:
    """ESS per parameter (BDA3 §11.5): m·n / (1 + 2·Σ ρ_t), Geyer's initial positive sequence."""
    m, n, _ = draws.shape
    centred = draws - draws.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=1)
    autocov = np.fft.irfft(spectrum * np.conj(spectrum), axis=1)[:, :n] / n   # (m, n, p)
    within = draws.var(axis=1, ddof=1).mean(axis=0)
    between = n * draws.mean(axis=1).var(axis=0, ddof=1) if m > 1 else np.zeros_like(within)
    var_plus = (n - 1) / n * within + between / n
    rho = 1.0 - (within - autocov.mean(axis=0)) / np.where(var_plus > 0, var_plus, 1.0)   # (n, p)
    rho[0] = 1.0
    pairs = rho[: (n // 2) * 2].reshape(n // 2, 2, -1).sum(axis=1)   # Γ_k = ρ_2k + ρ_2k+1
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)
    tau = -1.0 + 2.0 * np.sum(np.where(positive, pairs, 0.0), axis=0)
    return m * n / np.maximum(tau, 1.0 / np.log10(max(m * n, 10)))
