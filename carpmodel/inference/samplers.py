"""Importance sampling and tempering for any log target: the samplers behind
:func:`carpmodel.inference.posterior.sample_posterior`, independent of the model.

:func:`sir` draws proposals from a multivariate t (or normal) around a centre, weights them
by the target and resamples; :func:`resample_move` tempers from that proposal to the target
with adaptive steps (the next temperature keeps the ESS at a target) and random-walk
Metropolis moves (Del Moral, Doucet & Jasra 2006; Chopin 2002).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from carpmodel.errors import FitError
from carpmodel.inference.numdiff import EIGENVALUE_FLOOR, floor_eigenvalues

#: degrees of freedom of the multivariate-t proposal
PROPOSAL_DF = 5.0
#: the proposal covariance is the fit's covariance times this factor squared
PROPOSAL_INFLATION = 1.5
#: proposals evaluated per engine call (bounds memory: ~2000 × 32 parameters × engine arrays)
CHUNK_SIZE = 2000
#: warn when the Kish ESS of the importance weights is below this fraction of n_samples
ESS_WARNING_FRACTION = 0.10

ProposalKind = Literal["t", "normal"]
LogTarget = Callable[[NDArray], NDArray]


# --------------------------------------------------------------------------- core SIR


@dataclass(frozen=True)
class SIRResult:
    """Output of :func:`sir`.

    ``theta (n_samples, n)`` are the resampled vectors; ``proposals (n_proposals, n)`` all drawn
    vectors with ``log_target_values`` and ``log_proposal_values``; ``weights (n_proposals,)``
    the normalised importance weights (zero where the target is not finite); ``indices`` which
    proposal each resampled vector is; ``distribution`` the frozen scipy proposal.
    """

    theta: NDArray
    proposals: NDArray
    log_target_values: NDArray
    log_proposal_values: NDArray
    weights: NDArray
    indices: NDArray
    ess: float
    max_weight: float
    n_proposals: int
    n_samples: int
    n_finite: int
    proposal: str
    warning: str | None
    distribution: Any = field(repr=False, compare=False, default=None)

    @property
    def ess_fraction(self) -> float:
        """ESS as a fraction of the number of resampled vectors."""
        return self.ess / self.n_samples

    @property
    def n_distinct(self) -> int:
        """Distinct proposals among the resampled vectors."""
        return int(np.unique(self.indices).size)


def kish_ess(weights: Any) -> float:
    """Kish effective sample size ``(Σw)² / Σw²`` of non-negative weights (any normalisation)."""
    w = np.asarray(weights, dtype=float)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return 0.0
    return float(total**2 / np.sum(w**2))


def normalised_weights(log_weights: Any) -> NDArray:
    """Weights ``exp(log w − max)`` normalised to sum 1 (non-finite log weights get 0)."""
    lw = np.asarray(log_weights, dtype=float)
    finite = np.isfinite(lw)
    if not np.any(finite):
        raise FitError("SIR: every proposal has a non-finite target density; the proposal misses "
                       "the posterior entirely (check the fit and its covariance)")
    w = np.where(finite, np.exp(np.where(finite, lw, 0.0) - np.max(lw[finite])), 0.0)
    return w / w.sum()




def _floor_eigenvalues(matrix: NDArray) -> NDArray:
    try:
        return floor_eigenvalues(matrix, EIGENVALUE_FLOOR)
    except ValueError:
        raise FitError("proposal covariance has no positive eigenvalue") from None


def _proposal(centre: NDArray, covariance: NDArray, kind: ProposalKind, df: float,
              inflation: float) -> Any:
    shape = inflation**2 * np.asarray(covariance, dtype=float)
    shape = _floor_eigenvalues(0.5 * (shape + shape.T))
    if kind == "t":
        return stats.multivariate_t(loc=centre, shape=shape, df=df)
    if kind == "normal":
        return stats.multivariate_normal(mean=centre, cov=shape)
    raise ValueError(f"proposal: expected 't' or 'normal', got {kind!r}")


def _evaluate(log_target: LogTarget, x: NDArray, chunk_size: int) -> NDArray:
    """``log_target`` over the rows of ``x`` in chunks; NaN becomes −inf."""
    out = np.empty(x.shape[0])
    with np.errstate(all="ignore"):
        for start in range(0, x.shape[0], chunk_size):
            stop = min(start + chunk_size, x.shape[0])
            out[start:stop] = np.asarray(log_target(x[start:stop]), dtype=float)
    return np.where(np.isnan(out), -np.inf, out)


def _logpdf(distribution: Any, x: NDArray) -> NDArray:
    return np.asarray(distribution.logpdf(x), dtype=float).reshape(x.shape[0])


def sir(log_target: LogTarget, centre: Any, covariance: Any, *, n_proposals: int = 20000,
        n_samples: int = 2000, seed: int | np.random.SeedSequence = 20260601,
        proposal: ProposalKind = "t", df: float = PROPOSAL_DF,
        inflation: float = PROPOSAL_INFLATION, chunk_size: int = CHUNK_SIZE) -> SIRResult:
    """Sampling-importance-resampling from an unnormalised log density.

    Parameters
    ----------
    log_target : callable
        ``log_target(theta (m, n)) -> (m,)``: log density up to a constant (−inf allowed).
    centre, covariance : arrays (n,), (n, n)
        Location and scale of the proposal before inflation.
    n_proposals, n_samples : int
        Vectors drawn from the proposal; vectors resampled (with replacement) from them.
    seed : int or SeedSequence
        One ``SeedSequence``; two streams are spawned, one for the proposals, one for the
        resampling, so the result does not depend on ``chunk_size``.
    proposal : {"t", "normal"}
        Multivariate t with ``df`` degrees of freedom, or normal; shape ``inflation²·covariance``.
    chunk_size : int
        Proposals per call of ``log_target``.

    Returns
    -------
    SIRResult
    """
    if n_proposals < 2 or n_samples < 1:
        raise ValueError("SIR needs n_proposals >= 2 and n_samples >= 1")
    centre = np.asarray(centre, dtype=float)
    q = _proposal(centre, covariance, proposal, df, inflation)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    draw_ss, resample_ss = ss.spawn(2)
    draws = np.asarray(q.rvs(size=n_proposals, random_state=np.random.default_rng(draw_ss)))
    draws = draws.reshape(n_proposals, centre.size)
    log_q = _logpdf(q, draws)
    log_p = _evaluate(log_target, draws, chunk_size)
    weights = normalised_weights(log_p - log_q)
    rng = np.random.default_rng(resample_ss)
    indices = rng.choice(n_proposals, size=n_samples, replace=True, p=weights)
    ess = kish_ess(weights)
    warning = None
    if ess < ESS_WARNING_FRACTION * n_samples:
        warning = (f"importance-sampling ESS {ess:.0f} is below {ESS_WARNING_FRACTION:.0%} of the "
                   f"{n_samples} resampled vectors (largest weight {weights.max():.3f}): the proposal "
                   "fits the posterior badly; the resample repeats few distinct vectors")
    label = (f"multivariate t (df {df:g})" if proposal == "t" else "multivariate normal") + (
        f", scale = {inflation:g}² × covariance")
    return SIRResult(theta=draws[indices], proposals=draws, log_target_values=log_p,
                     log_proposal_values=log_q, weights=weights, indices=indices, ess=ess,
                     max_weight=float(weights.max()), n_proposals=n_proposals, n_samples=n_samples,
                     n_finite=int(np.sum(np.isfinite(log_p))), proposal=label, warning=warning,
                     distribution=q)


# --------------------------------------------------------------------------- tempering + moves

#: a final Metropolis acceptance outside these bounds means the particles are not a sample of the
#: target: below, the moves barely mix (particles repeat); above, the moves are far smaller than
#: the target's spread (the cloud has not spread out)
MIN_ACCEPTANCE, MAX_ACCEPTANCE = 0.05, 0.9
#: the move scale (times the particles' covariance, over √n) adapts up to this: far above the
#: optimal 2.38, so a cloud much narrower than its target can still spread out (with a cap of 5
#: a cloud a hundred times too narrow kept an acceptance of ~1 and stayed narrow)
MAX_MOVE_SCALE = 500.0
#: blocks of final sweeps run at most to check that the particles' spread has settled
SETTLE_BLOCKS = 10
#: a block that changes the per-parameter SDs by a median factor within exp(±this) has settled
#: (set for ~500 particles, whose SDs are uncertain by ~3 % each; the median over many
#: parameters far less; heavier tails and one or two parameters give more false alarms)
SETTLED_SPREAD = 0.02
#: ... and no parameter's SD by a factor outside exp(±this) (the SDs of 500 particles move by
#: ~4.5 % each between blocks, the largest of 44 by ~11 %)
SETTLED_SPREAD_ANY = 0.25
#: once past the first block, no parameter's SD may have moved by a factor outside exp(±
#: SETTLED_SPREAD_ANY) over this many blocks either (a parameter still widening by ~25 % a
#: block passes a block-to-block comparison but not this one)
SETTLE_WINDOW = 3
#: a block whose moves were accepted less often than this cannot confirm that the spread settled
#: (its particles barely moved)
SETTLE_MIN_ACCEPTANCE = 0.1


def _move_covariance(x: NDArray, proposal: Any) -> NDArray:
    """Covariance that scales the random-walk moves: the particles' own, or the SIR proposal's
    shape matrix when the particles are too few distinct points to span every direction (after
    resampling from weights dominated by one proposal the cloud is a single point, and moves
    scaled by its covariance could never spread it)."""
    n = x.shape[1]
    if np.unique(x, axis=0).shape[0] <= n:
        shape = proposal.shape if hasattr(proposal, "shape") else proposal.cov
        return np.asarray(shape, dtype=float).reshape(n, n)
    return np.cov(x.T).reshape(n, n)


@dataclass(frozen=True)
class SMCResult:
    """Output of :func:`resample_move`: particles from the target after tempering.

    ``betas`` are the tempering exponents reached (the last is 1), ``stage_ess`` the ESS of the
    incremental weights at each step (as a count out of the particles or proposals weighted),
    ``acceptance`` the mean Metropolis acceptance rate of each stage's moves (the settling
    blocks not included), ``settle_blocks`` the blocks of sweeps run after tempering to check the
    particles' spread.
    """

    theta: NDArray
    betas: tuple[float, ...]
    stage_ess: tuple[float, ...]
    acceptance: tuple[float, ...]
    n_evaluations: int
    warning: str | None
    settle_blocks: int = 0

    @property
    def n_stages(self) -> int:
        return len(self.betas)


def _next_beta(log_w: NDArray, beta: float, target_ess: float) -> float:
    """Largest b in (beta, 1] whose incremental weights exp((b − beta)·log_w) keep ESS ≥ target."""
    def ess(b: float) -> float:
        return kish_ess(normalised_weights((b - beta) * log_w))

    if ess(1.0) >= target_ess:
        return 1.0
    lo, hi = beta, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if ess(mid) >= target_ess:
            lo = mid
        else:
            hi = mid
    return max(lo, beta + 1e-6)


def _sweeps(log_target: LogTarget, q: Any, cloud: list[NDArray], beta: float, scale: float, sweeps: int,
            rng: np.random.Generator, chunk_size: int) -> tuple[float, list[float]]:
    """``sweeps`` random-walk Metropolis sweeps of every particle targeting ``π_β``, moves scaled by
    ``scale`` times the Cholesky factor of :func:`_move_covariance` (computed once); ``cloud`` =
    ``[x, log π, log q]`` is updated in place. Returns the adapted scale and each sweep's
    acceptance rate."""
    x, lp, lq = cloud
    n_particles, n = x.shape
    cov = _move_covariance(x, q)
    chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / n * np.eye(n))
    rates = []
    for _ in range(sweeps):
        proposal_x = x + scale * rng.standard_normal(x.shape) @ chol.T
        lp_new = _evaluate(log_target, proposal_x, chunk_size)
        lq_new = _logpdf(q, proposal_x)
        with np.errstate(invalid="ignore"):
            log_ratio = beta * (lp_new - lp) + (1.0 - beta) * (lq_new - lq)
        log_ratio = np.where(np.isfinite(lp_new), log_ratio, -np.inf)
        accept = np.log(rng.uniform(size=n_particles)) < log_ratio
        x[accept], lp[accept], lq[accept] = proposal_x[accept], lp_new[accept], lq_new[accept]
        rate = float(accept.mean())
        rates.append(rate)
        scale = float(np.clip(scale * np.exp(rate - 0.25), 0.02 / np.sqrt(n), MAX_MOVE_SCALE / np.sqrt(n)))
    return scale, rates


def _settled(log_sds: list[NDArray], acceptance: float) -> bool:
    """Whether the last block of sweeps left the particles' spread as it was, from the log SD of
    every parameter before each block and after the last (``log_sds``) and the block's mean
    acceptance: the SDs moved by a median factor within exp(±:data:`SETTLED_SPREAD`) (a cloud
    still widening moves them all the same way; noise moves them either way and cancels in the
    median), none by more than exp(±:data:`SETTLED_SPREAD_ANY`) in the block nor, past the first
    block, over the last :data:`SETTLE_WINDOW` blocks (one direction still opening up), and the
    block moved the particles (acceptance at least :data:`SETTLE_MIN_ACCEPTANCE`)."""
    change = log_sds[-1] - log_sds[-2]
    drift = log_sds[-1] - log_sds[max(len(log_sds) - 1 - SETTLE_WINDOW, 0)]
    if not (np.all(np.isfinite(change)) and np.all(np.isfinite(drift))):
        return False
    return (acceptance >= SETTLE_MIN_ACCEPTANCE and abs(float(np.median(change))) <= SETTLED_SPREAD
            and float(np.max(np.abs(change))) <= SETTLED_SPREAD_ANY
            and (len(log_sds) == 2 or float(np.max(np.abs(drift))) <= SETTLED_SPREAD_ANY))


def resample_move(log_target: LogTarget, start: SIRResult, *, n_particles: int,
                  seed: int | np.random.SeedSequence = 20260601, ess_fraction: float = 0.5,
                  moves_per_stage: int = 10, final_moves: int = 30, max_stages: int = 60,
                  chunk_size: int = CHUNK_SIZE, settle_blocks: int = SETTLE_BLOCKS) -> SMCResult:
    """Continue an SIR whose weights are too uneven: tempering with Metropolis moves (SMC).

    The target path is ``π_β ∝ q^(1−β)·π^β`` from the SIR proposal ``q`` (β = 0) to the target
    ``π`` (β = 1) (Del Moral, Doucet & Jasra 2006, J. R. Stat. Soc. B 68: 411). Each step picks
    the next β so that the incremental weights ``(π/q)^(Δβ)`` keep an ESS of ``ess_fraction``
    of the particles, resamples, then moves every particle by ``moves_per_stage`` random-walk
    Metropolis steps targeting ``π_β`` with covariance ``c²·Cov(particles)`` (``c`` starts at
    ``2.38/√n`` and adapts to an acceptance of about 0.25, up to :data:`MAX_MOVE_SCALE`/√n; the
    proposal's shape matrix while the particles are too few distinct points to span every
    direction). The first step weights all SIR proposals and resamples ``n_particles`` of them;
    at β = 1 ``final_moves`` sweeps follow, so the particles are distinct.

    Then the spread is checked: blocks of ``max(final_moves, n)`` more sweeps (covariance
    recomputed, scale restarted at ``2.38/√n``) run until one leaves the particles' spread as it
    was (:func:`_settled`), at most ``settle_blocks`` blocks (0: no check); the particles returned
    are those before that last block (so a cloud already spread out is returned as the final
    sweeps left it). A cloud still spreading after them is reported (``warning``): tempering can
    leave the particles far narrower than the target, in every direction or in one, and a random
    walk scaled by their own covariance widens them only slowly. The check is a net, not a
    proof: a parameter widening by less than ~25 % a block, or one locked to the others by
    correlations tempering left, can pass it (a review found both in synthetic tests with 44 and
    80 parameters); and moves scaled by the covariance of the particles they move leave the
    cloud ~n/(2N) too narrow in variance (2.5 % in SD for 44 parameters and 500 particles). All
    evaluations are batched over particles.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    q = start.distribution
    log_w_all = start.log_target_values - start.log_proposal_values
    beta = _next_beta(log_w_all, 0.0, ess_fraction * start.n_proposals)
    w = normalised_weights(beta * log_w_all)
    betas, stage_ess, acceptance = [beta], [kish_ess(w)], []
    idx = rng.choice(start.n_proposals, size=n_particles, replace=True, p=w)
    cloud = [start.proposals[idx].copy(), start.log_target_values[idx].copy(),
             start.log_proposal_values[idx].copy()]
    n = cloud[0].shape[1]
    scale = 2.38 / np.sqrt(n)
    evaluations = 0
    for _stage in range(max_stages):
        sweeps = final_moves if beta >= 1.0 else moves_per_stage
        scale, rates = _sweeps(log_target, q, cloud, beta, scale, sweeps, rng, chunk_size)
        evaluations += sweeps * n_particles
        acceptance.append(float(np.mean(rates)))
        if beta >= 1.0:
            break
        x, lp, lq = cloud
        log_w = lp - lq
        new_beta = _next_beta(log_w, beta, ess_fraction * n_particles)
        w = normalised_weights((new_beta - beta) * log_w)
        stage_ess.append(kish_ess(w))
        betas.append(new_beta)
        beta = new_beta
        idx = rng.choice(n_particles, size=n_particles, replace=True, p=w)
        cloud = [x[idx], lp[idx], lq[idx]]
    settled, blocks = settle_blocks == 0, 0
    block = max(final_moves, n)   # a random walk needs ~n sweeps to cross its target once
    with np.errstate(divide="ignore"):
        log_sds = [np.log(cloud[0].std(axis=0))]
    while betas[-1] >= 1.0 and not settled and blocks < settle_blocks:
        before = [a.copy() for a in cloud]
        _, rates = _sweeps(log_target, q, cloud, 1.0, 2.38 / np.sqrt(n), block, rng, chunk_size)
        evaluations += block * n_particles
        blocks += 1
        with np.errstate(divide="ignore"):
            log_sds.append(np.log(cloud[0].std(axis=0)))
        if _settled(log_sds, float(np.mean(rates))):
            settled, cloud = True, before
    x = cloud[0]
    warning = None
    if betas[-1] < 1.0:
        warning = (f"tempering stopped at beta = {betas[-1]:.3g} after {max_stages} stages: "
                   "the particles are not from the target")
    elif not settled:
        warning = (f"the particles were still spreading after {blocks} more blocks of {block} "
                   "sweeps at beta = 1: they are narrower than the target")
    elif acceptance[-1] < MIN_ACCEPTANCE:
        warning = (f"final Metropolis acceptance {acceptance[-1]:.2f}: the moves barely mix; "
                   "particles may repeat")
    elif acceptance[-1] > MAX_ACCEPTANCE:
        warning = (f"final Metropolis acceptance {acceptance[-1]:.2f}: the moves are accepted almost "
                   "always, so they are far smaller than the target's spread; the particles have not "
                   "spread over the target (a collapsed cloud)")
    return SMCResult(theta=x, betas=tuple(betas), stage_ess=tuple(stage_ess),
                     acceptance=tuple(acceptance), n_evaluations=evaluations, warning=warning,
                     settle_blocks=blocks)
