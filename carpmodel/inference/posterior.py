"""Posterior uncertainty by sampling-importance-resampling (SIR), and how much of it is prior.

The fit gives the posterior mode and a normal approximation on the estimation scale. With about
twelve biomass values most parameters are held by their priors, so the normal approximation
says little about what the *data* added. This module draws from the posterior itself (the
samplers are in :mod:`carpmodel.inference.samplers`); :mod:`carpmodel.inference.prior_posterior`
sets each parameter's posterior beside its prior.

SIR (Rubin 1988; McAllister & Ianelli 1997 for stock assessment):

1. draw ``n_proposals`` vectors θ from a proposal ``q``: a multivariate t (df 5) centred on the
   mode with the mode's covariance inflated by ``inflation² = 1.5²`` (heavier tails than the
   target, so the weights stay bounded), or the normal approximation itself;
2. weight each by ``w ∝ π(θ) / q(θ)`` with ``log π(θ) = −objective(θ) + log|J(θ)|``, evaluated
   through the engine in chunks (one batched call per chunk);
3. resample ``n_samples`` vectors with replacement with probabilities ``w / Σw``.

The Jacobian term. The objective adds minus the log prior density of each parameter on its
*natural* scale, evaluated at the transformed value (``x = exp θ``, ``x = lo + (hi − lo)·expit θ``).
As a density on θ, ``exp(−objective)`` is therefore prior × likelihood only after multiplying by
``|dx/dθ|``; without it the sampled natural-scale values would follow ``prior(x)·L(x)/|dx/dθ|``
(for a lognormal prior with SD-log s the median shrinks by ``exp(−s²)``, and a bounded parameter
without a prior — the flat release-survival option — would have an improper posterior, flat on
the logit scale). ``jacobian=True`` (the default) samples the posterior of the natural-scale
parameters under the stated priors; a parameter on a logit scale with no prior then has a
uniform prior on its bounds. The fit's MAP omits the Jacobian (it is the mode on θ), so the
proposal centre is close to, not at, the posterior mode; the t tails and the inflation cover
the difference, and the effective sample size says when they do not.

Effective sample size (Kish): ``ESS = (Σw)² / Σw²``; a warning is returned when it is below
:data:`ESS_WARNING_FRACTION` of ``n_samples`` (the resample then repeats few distinct vectors).

When SIR fails. On the bundled data the posterior is a thin curved ridge: the start state is the
equilibrium under the pre-ban F at about 1 % of B0, close to the F that would extinguish the
stock, so steepness, density dependence, M and F trade off along a curved valley (the log
posterior drops by ~35 one approximate SD across it, where the quadratic approximation says
0.5). A t proposal in 32 dimensions then gives an ESS of ~50–120 of 20,000, whatever its
centre or covariance. ``sample_posterior(method="auto")`` therefore continues an SIR whose ESS
is below half of ``n_samples`` by tempering from the SIR proposal to the posterior with
random-walk Metropolis moves between stages (:func:`resample_move`, a sequential Monte Carlo
sampler; all evaluations batched through the engine) and says so in ``warning``. Checked on the
default fit against a long random-walk Metropolis run (400 chains × 5,000 iterations, its two
halves agreeing): medians agree within 0.08 on the estimation scale; the SMC's 97.5 % quantiles
of logit steepness, log dd_strength and log initial F are 0.05–0.4 lower (upper tails slightly
too short: steepness 0.946 vs 0.953, dd_strength 1.10 vs 1.21, initial F 1.30 vs 1.42).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import log_expit

from carpmodel import __version__
from carpmodel.errors import CarpmodelError, FitError
from carpmodel.inference.fitting import GRADIENT_STEP, HESSIAN_STEP
from carpmodel.inference.likelihood import objective
from carpmodel.inference.numdiff import (
    EIGENVALUE_FLOOR,
    central_gradient,
    clip_to_box,
    hessian_from_gradients,
)
from carpmodel.inference.samplers import (
    CHUNK_SIZE,
    PROPOSAL_DF,
    PROPOSAL_INFLATION,
    LogTarget,
    ProposalKind,
    resample_move,
    sir,
)
from carpmodel.inference.spec import ModelSpec

#: method="auto" continues SIR by tempering when its ESS is below this fraction of n_samples
#: (a resample of n_samples from fewer effective draws repeats draws and thins the tails)
AUTO_SMC_FRACTION = 0.5
#: centre="auto" uses the fit's covariance only below this Hessian condition number (the fit's
#: own warning threshold); above it, typically a parameter at a bound, the posterior mode's
MAX_CONDITION_FOR_FIT_CENTRE = 1e8

Centre = Literal["auto", "fit", "mode"]


# --------------------------------------------------------------------------- model posterior


def log_jacobian(spec: ModelSpec, theta: Any) -> NDArray:
    """``log |dx/dθ|`` summed over the estimated parameters (rec devs are identity), batch shape."""
    theta = np.asarray(theta, dtype=float)
    out = np.zeros(theta.shape[:-1])
    for i, free in enumerate(spec.estimated):
        t = theta[..., i]
        if free.transform == "log":
            out = out + t
        elif free.transform == "logit":
            lo, hi = free.bounds
            out = out + np.log(hi - lo) + log_expit(t) + log_expit(-t)
    return out


def log_posterior(spec: ModelSpec, theta: Any, *, jacobian: bool = True) -> NDArray:
    """Unnormalised log posterior density of ``theta (*batch, n)`` on the estimation scale.

    ``−objective(θ)`` plus, with ``jacobian``, ``log|dx/dθ|`` (see the module notes); ``−inf``
    where the objective is not finite.
    """
    value = -objective(spec, theta)
    if jacobian:
        value = value + log_jacobian(spec, theta)
    return np.where(np.isfinite(value), value, -np.inf)


def _rowwise_on_error(f: LogTarget, theta: NDArray) -> NDArray:
    """``f(theta)``; if the batch is refused (a proposal far in the tails can give parameters the
    engine rejects, e.g. R0 overflowing when M is huge), split it and give refused rows ``−inf``."""
    try:
        return np.asarray(f(theta), dtype=float)
    except CarpmodelError:
        if theta.shape[0] == 1:
            return np.array([-np.inf])
        half = theta.shape[0] // 2
        return np.concatenate([_rowwise_on_error(f, theta[:half]), _rowwise_on_error(f, theta[half:])])


def _mode_and_hessian(spec: ModelSpec, start: Any, *, jacobian: bool,
                      max_iter: int) -> tuple[NDArray, NDArray]:
    """Mode of :func:`log_posterior` on θ (L-BFGS-B from ``start``) and the finite-difference
    Hessian of its negative there (:mod:`carpmodel.inference.numdiff`)."""
    def neg(points: NDArray) -> NDArray:
        with np.errstate(all="ignore"):
            v = -_rowwise_on_error(lambda x: log_posterior(spec, x, jacobian=jacobian), points)
        return np.where(np.isfinite(v), v, 1e10)

    def fun(x: NDArray) -> tuple[float, NDArray]:
        value, grad = central_gradient(neg, x, GRADIENT_STEP)
        return float(value), grad

    x0 = clip_to_box(start, spec.initial_theta(), len(spec.estimated))
    res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": 1e-14, "gtol": 1e-7, "maxcor": 20})
    return res.x, hessian_from_gradients(neg, res.x, HESSIAN_STEP, GRADIENT_STEP)


def posterior_mode(spec: ModelSpec, start: Any, *, jacobian: bool = True,
                   max_iter: int = 500) -> tuple[NDArray, NDArray | None]:
    """Mode of :func:`log_posterior` on θ and the inverse of its finite-difference Hessian.

    Used as the SIR centre when the fit has no covariance (for example the flat release-survival
    prior, whose fit without the Jacobian runs to a bound) or when ``centre="mode"``. Returns
    ``(mode, covariance)``; the covariance is None if the Hessian is not positive definite.
    """
    x, h = _mode_and_hessian(spec, start, jacobian=jacobian, max_iter=max_iter)
    if np.all(np.linalg.eigvalsh(h) > 0):
        return x, np.linalg.inv(h)
    return x, None


def absolute_inverse(matrix: NDArray) -> NDArray:
    """Inverse of ``|M|``: the symmetric part of ``M`` with its eigenvalues replaced by their
    absolute values, floored at :data:`EIGENVALUE_FLOOR` of the largest. For a Hessian that is
    not positive definite (a point on a curved ridge short of the mode) it is a proposal scale
    that keeps each direction's width as the local curvature says, not a posterior covariance."""
    values, vectors = np.linalg.eigh(0.5 * (np.asarray(matrix, float) + np.asarray(matrix, float).T))
    top = float(np.max(np.abs(values)))
    if not np.isfinite(top) or top <= 0:
        raise FitError("the Hessian at the posterior mode is zero or not finite; no proposal scale")
    return (vectors / np.maximum(np.abs(values), EIGENVALUE_FLOOR * top)) @ vectors.T


@dataclass(frozen=True)
class PosteriorSample:
    """Posterior draws of a fit, with the SIR (and, if it ran, tempering) diagnostics.

    ``theta (n_samples, n)`` on the estimation scale (what :func:`carpmodel.inference.results.fit_dataset`
    and :mod:`carpmodel.studies.attribution` take as draws); ``natural`` maps each estimated free
    parameter's field to its ``(n_samples,)`` natural-scale values. ``ess`` and ``max_weight``
    are always those of the SIR importance weights; ``method`` says whether the draws are the
    SIR resample (``"sir"``) or the particles after tempering with moves (``"sir+smc"``), with
    ``smc_betas``, ``smc_acceptance`` and ``n_evaluations`` describing that stage.
    """

    theta: NDArray
    parameter_names: tuple[str, ...]
    natural: dict[str, NDArray]
    ess: float
    max_weight: float
    n_proposals: int
    n_samples: int
    n_distinct: int
    seed: int
    proposal: str
    centre: str
    jacobian: bool
    method: str
    runtime_s: float
    warning: str | None
    smc_betas: tuple[float, ...] = ()
    smc_acceptance: tuple[float, ...] = ()
    n_evaluations: int = 0
    #: why the draws are not a sample of the posterior (tempering that stopped short, a cloud
    #: still spreading, moves that barely mix or are almost always accepted; with method="sir",
    #: a resample with too few effective draws), None when nothing says so
    failure: str | None = None

    @property
    def ess_fraction(self) -> float:
        """SIR ESS as a fraction of ``n_samples`` (the warning threshold is 10 %)."""
        return self.ess / self.n_samples

    def to_dataset(self) -> xr.Dataset:
        """``theta(draw, parameter)`` and one ``(draw,)`` variable per natural-scale parameter."""
        ds = xr.Dataset({"theta": (("draw", "parameter"), self.theta)},
                        coords={"draw": np.arange(self.n_samples), "parameter": list(self.parameter_names)})
        ds["theta"].attrs.update(units="1", long_name="posterior draws on the estimation scale")
        for name, values in self.natural.items():
            ds[name] = ("draw", values)
            ds[name].attrs.update(units="natural units of the parameter",
                                  long_name=f"posterior draws of {name} (natural scale)")
        ds.attrs.update(carpmodel_version=__version__, method=self.method, seed=self.seed,
                        proposal=self.proposal, centre=self.centre, jacobian=int(self.jacobian),
                        sir_ess=self.ess, sir_max_weight=self.max_weight,
                        n_proposals=self.n_proposals, n_evaluations=self.n_evaluations,
                        smc_betas=list(self.smc_betas), smc_acceptance=list(self.smc_acceptance),
                        warning=self.warning or "")
        return ds


Method = Literal["auto", "sir", "smc"]


def sample_posterior(result: Any, n_proposals: int = 20000, n_samples: int = 2000,
                     seed: int = 20260601, *, method: Method = "auto", proposal: ProposalKind = "t",
                     centre: Centre = "auto", df: float = PROPOSAL_DF,
                     inflation: float = PROPOSAL_INFLATION, jacobian: bool = True,
                     chunk_size: int = CHUNK_SIZE, moves_per_stage: int = 10,
                     final_moves: int = 30) -> PosteriorSample:
    """Posterior draws of a :class:`~carpmodel.inference.fitting.FitResult` by SIR.

    Parameters
    ----------
    result : FitResult
        Supplies the spec, the mode ``theta`` and ``covariance``.
    n_proposals, n_samples, seed, proposal, df, inflation, chunk_size
        See :func:`sir`. ``seed`` seeds one ``SeedSequence``: one stream for the SIR, one for
        the tempering.
    method : {"auto", "sir", "smc"}
        ``"sir"``: the SIR resample, whatever its ESS (a warning below 10 %). ``"smc"``: always
        continue from the SIR proposals by tempering with Metropolis moves
        (:func:`resample_move`). ``"auto"``: SIR, continued by tempering when its ESS is below
        :data:`AUTO_SMC_FRACTION` (50 %) of ``n_samples``; ``warning`` is set when the SIR ESS is
        below 10 % of ``n_samples`` whichever draws are returned.
    centre : {"auto", "fit", "mode"}
        Proposal location and scale: ``"fit"`` the fit's θ̂ and covariance; ``"mode"`` the mode of
        the Jacobian-adjusted posterior and its inverse Hessian (:func:`posterior_mode`);
        ``"auto"`` the fit's when it has a covariance and a Hessian condition number below
        :data:`MAX_CONDITION_FOR_FIT_CENTRE` (1e8), else the mode's.
    jacobian : bool
        Include ``log|dx/dθ|`` in the target (see the module notes); False samples
        ``exp(−objective(θ))`` on θ as it stands.
    moves_per_stage, final_moves : int
        Metropolis sweeps per tempering stage and at β = 1 (see :func:`resample_move`).

    When the Hessian where the posterior mode search ends is not positive definite (the
    search stopped on a curved ridge: flat release-survival prior with Lorenzen c = 1.5 on the
    bundled data), the proposal scale is the inverse of that Hessian's absolute eigenvalues
    (:func:`absolute_inverse`) and ``warning`` says so; the importance weights, and the tempering
    with moves when they are uneven, target the posterior whatever the proposal.

    Raises
    ------
    FitError
        If no proposal scale can be formed (that Hessian is zero or not finite).
    """
    started = time.perf_counter()
    spec = result.spec
    if centre not in ("auto", "fit", "mode"):
        raise ValueError(f"centre: expected 'auto', 'fit' or 'mode', got {centre!r}")
    if method not in ("auto", "sir", "smc"):
        raise ValueError(f"method: expected 'auto', 'sir' or 'smc', got {method!r}")
    use_fit = centre == "fit" or (centre == "auto" and result.covariance is not None
                                  and result.condition_number < MAX_CONDITION_FOR_FIT_CENTRE)
    proposal_note = None
    if use_fit:
        if result.covariance is None:
            raise FitError("sample_posterior(centre='fit'): the fit has no covariance (Hessian not "
                           "positive definite); use centre='mode'")
        location, covariance = np.asarray(result.theta, float), np.asarray(result.covariance, float)
        centre_text = "fit: MAP theta and inverse Hessian of the objective"
    else:
        location, h = _mode_and_hessian(spec, result.theta, jacobian=jacobian, max_iter=500)
        why = (" (the fit has no covariance)" if result.covariance is None else
               f" (fit Hessian condition {result.condition_number:.2g})" if centre == "auto" else "")
        if np.all(np.linalg.eigvalsh(h) > 0):
            covariance = np.linalg.inv(h)
            centre_text = "mode of the Jacobian-adjusted posterior and its inverse Hessian" + why
        else:
            # the mode search stopped on a curved ridge (negative curvature across it): the
            # proposal takes |H|^-1 as its scale; importance weights and tempering correct it
            covariance = absolute_inverse(h)
            proposal_note = ("the Hessian where the posterior mode search ended is not positive "
                             "definite (a curved ridge): the proposal scale is the inverse of its "
                             "absolute eigenvalues; the importance weights (and tempering with moves "
                             "when they are uneven) correct for it")
            centre_text = ("end of the posterior mode search and the inverse of its Hessian's absolute "
                           "eigenvalues" + why)

    def target(theta: NDArray) -> NDArray:
        return _rowwise_on_error(lambda x: log_posterior(spec, x, jacobian=jacobian), theta)

    sir_ss, smc_ss = np.random.SeedSequence(seed).spawn(2)
    out = sir(target, location, covariance, n_proposals=n_proposals, n_samples=n_samples, seed=sir_ss,
              proposal=proposal, df=df, inflation=inflation, chunk_size=chunk_size)
    theta, warning, used = out.theta, out.warning, "sir"
    betas: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()
    failure = None
    evaluations = n_proposals
    n_distinct = out.n_distinct
    if method == "smc" or (method == "auto" and out.ess < AUTO_SMC_FRACTION * n_samples):
        smc = resample_move(target, out, n_particles=n_samples, seed=smc_ss, chunk_size=chunk_size,
                            moves_per_stage=moves_per_stage, final_moves=final_moves)
        theta, used, betas, rates = smc.theta, "sir+smc", smc.betas, smc.acceptance
        evaluations += smc.n_evaluations
        n_distinct = int(np.unique(theta, axis=0).shape[0])
        notes = [f"SIR ESS {out.ess:.0f} ({out.ess_fraction:.1%} of {n_samples}; largest weight "
                 f"{out.max_weight:.3f}); draws are the particles of tempering from the SIR proposal "
                 f"in {smc.n_stages} stages with Metropolis moves (final acceptance "
                 f"{smc.acceptance[-1]:.2f})"]
        if smc.warning:
            notes.append(smc.warning)
            failure = smc.warning
        warning = "; ".join(notes) if (out.warning or smc.warning) else None
    elif out.warning is not None:
        warning = out.warning + "; draws are this SIR resample (method='sir')"
        failure = warning
    if proposal_note is not None:
        warning = proposal_note + (f"; {warning}" if warning else "")
    natural = {free.field: np.asarray(free.from_theta(theta[:, i]), dtype=float)
               for i, free in enumerate(spec.estimated)}
    return PosteriorSample(theta=theta, parameter_names=tuple(spec.parameter_names),
                           natural=natural, ess=out.ess, max_weight=out.max_weight,
                           n_proposals=n_proposals, n_samples=n_samples, n_distinct=n_distinct,
                           seed=int(seed), proposal=out.proposal, centre=centre_text,
                           jacobian=jacobian, method=used, runtime_s=time.perf_counter() - started,
                           warning=warning, smc_betas=betas, smc_acceptance=rates,
                           n_evaluations=evaluations, failure=failure)


