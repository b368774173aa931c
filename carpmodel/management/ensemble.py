"""Structural uncertainty: fit, project and pool an ensemble of model structures.

Whether releases add fish or replace wild ones depends on model structure more than on
anything the biomass record says (Lorenzen 2005, Phil. Trans. R. Soc. B 360), so a projection
can run over an ensemble of structures (issue #6, item 4). A member is one combination of

* **density-dependence window** — last age of the juvenile window after recruitment at age 1,
  ``[fit] dd_window_end_age_yr`` (default 1 = the data's base, 2, 3: age-1 releases share
  the window with wild recruits; a longer window also holds the older juveniles);
* **release-survival prior** — ``[fit] release_survival_prior``: the informative
  Beta(0.3, 0.15) of life_history.toml or the dossier's flat U(0.05, 0.8);
* **natural mortality** — a :class:`MortalityStructure`. The default axis is the Lorenzen
  exponent ``c`` of ``M(L) = M_ref·(L/L_ref)^−c``: it is fixed in every fit (never estimated),
  so the parameter draws never carry its uncertainty, and it sets how much faster small
  released fish die than large ones — the crux of release size. Values 1 (the base, Lorenzen
  2022's length-inverse M), 0 (constant M, the documented alternative) and 1.5 (the upper end
  of the documented range U(0, 1.5) in life_history.toml). A MortalityStructure can instead, or
  as well, move the centre of the M_ref prior (``m_ref_prior_median_per_yr``), which the fit
  then updates;
* **initial state** — ``[model] initial_state``: ``depletion`` (2000, the default),
  ``equilibrium_f`` (0.1's 2000 equilibrium; accepted, not in the default axis), ``unfished_1956``
  (catch history from 1956), ``equilibrium_1986``. The starts before 2000 are fitted with catch
  as data (``[fit] catch_sd_log`` = ``EnsembleDefinition.pre_2000_catch_sd_log``, 0.2 as in
  experiments/01, unless the base config sets one): F of every fished year estimated, the
  recorded catch lognormal around the model's. With exact catches they do not converge (a stock
  fished down by exact catches sits on a knife edge, see :mod:`carpmodel.inference.likelihood`). Each
  member states its catch treatment (``catch`` in :meth:`MemberFit.describe`, the members
  table and the ``catch`` coordinate of projections).

``design = "factorial"`` (default) takes every combination (3 × 2 × 3 × 3 = 54 fits by
default), except that axes listed in ``vary_alone`` are varied one at a time around the base
(e.g. ``vary_alone = ["initial_states"]``: 18 crossed members + 2); ``"one_at_a_time"`` the
base member (the first value of every axis) and each alternative value on its own
(1 + 2 + 1 + 2 + 2 = 8). See :meth:`EnsembleDefinition.members`.

**Inclusion rule.** Every member is fitted (:func:`carpmodel.inference.fitting.fit`). A member is included
if its fit converged (``FitResult.converged``: largest |gradient| < 1e-3, positive-definite
Hessian, no estimate on a bound of its range), with one stated exception below. Members whose
fit did not converge or could not run are excluded and listed with the reason
(:attr:`EnsembleFits.excluded`, :func:`members_table`, the ``excluded_members`` attribute of
every result), never silently included.

*A MAP on the bound of a flat prior* (``EnsembleDefinition.on_bound``). With the flat
release-survival prior U(0.05, 0.8) the MAP of release survival sits on its upper bound 0.8,
so ``fit`` does not call the fit converged. That is not a failed fit but a flat likelihood: on
the bundled data (window 0–1, c = 1) the profile NLL falls by only 0.06 from survival 0.05 to
0.8 (the biomass record cannot tell them apart; the survey component even prefers low
survival, the priors and deviations of the other parameters prefer high), and the posterior
under the flat prior is spread over the whole range — only the MAP on the logit scale, which
leaves out the Jacobian of the transform, runs to the bound. A Hessian at that bound says
nothing (its curvature in that direction is ~0), so a normal approximation there is useless;
but dropping the member would drop the flat prior from the ensemble, i.e. pretend the
informative prior is known. So
with ``on_bound = "posterior"`` (default) such a member is **included with its parameter draws
from the posterior sampler** (:func:`carpmodel.inference.posterior.sample_posterior`: SIR from the
Jacobian-adjusted posterior mode, continued by tempering with moves when its ESS is low,
``posterior_samples`` from ``posterior_proposals``), on two conditions: every estimate at a bound
is a logit parameter without a stated prior (a flat prior: the bound is the prior's, not the
model's), and the rest of the fit converged (``FitResult.interior_converged``: gradient and
Hessian criteria on the parameters inside their range). Its ``parameter_draws`` is
``"posterior"`` and its ``note`` gives the bound estimate and the posterior median and 90 %
interval of the parameter beside the flat prior's. ``on_bound = "exclude"`` keeps such members
out (with that in the reason). A member whose posterior draws are not a sample of its posterior
(:attr:`carpmodel.inference.posterior.PosteriorSample.failure`: tempering that stopped short,
particles still spreading after the sampler's checks, or final moves that barely mix or are
almost always accepted) is excluded with that reason.

**Weights.** ``weights = "equal"`` (default): every included member the same weight; or a table
``{member name = weight}`` (unlisted members weigh 0), renormalised over the included members.
The rule is written into the ``ensemble_weighting`` attribute of every result.

**Projection.** Every included member is projected with the same
:class:`~carpmodel.management.projection.ProjectionSetup` — the same seed and therefore the same per-draw
streams: recruitment, survey and temperature deviates are identical across members (they do not
depend on a member's number of parameters, see :mod:`carpmodel.management.projection`), parameter draws
are each member's own (``parameter_draws = "normal"``: θ ~ N(θ̂, Σ) of the member's fit, except
members included with a MAP on a bound, which use posterior draws; ``"posterior"``:
:func:`carpmodel.inference.posterior.sample_posterior` per member, slower). Results are concatenated along
a ``structure`` dimension with a ``structure_weight`` and per-member coordinates of the four
choices, the catch treatment and the parameter draws.

**Metrics** (:func:`ensemble_metrics`): per member, and for the pooled ensemble, whose draws are
the members' draws each weighted ``structure_weight / n_draws`` (weighted quantiles and
probabilities, :func:`carpmodel.management.metrics.weighted_quantile`).

**Best use of a budget**: :func:`carpmodel.management.budget.optimise_release_budget` (the
shares of an annual budget over release sizes that maximise a chosen statistic of the gain over
``no_releases``, paired by draw, per member and for the pooled ensemble) builds on this module.

Ensemble files are read by :func:`carpmodel.io.ensemble_file.load_ensemble`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel.errors import CarpmodelError, ConfigError, ConvergenceWarning, FitError
from carpmodel.management.ensemble_definition import (
    DEFAULT_MORTALITY,
    POOLED,
    STRUCTURE,
    EnsembleDefinition,
    MortalityStructure,
    Progress,
    Structure,
)
from carpmodel.management.metrics import strategy_metrics

__all__ = [
    "DEFAULT_MORTALITY",
    "EnsembleDefinition",
    "EnsembleFits",
    "MemberFit",
    "MortalityStructure",
    "Structure",
    "ROBUST_FRACTION",
    "ensemble_attrs",
    "ensemble_metrics",
    "fit_ensemble",
    "fit_member",
    "flat_prior_bounds",
    "members_table",
    "pool_draws",
    "shared_draws",
    "project_ensemble",
    "single_member",
]

# --------------------------------------------------------------------------- fitting the members


@dataclass(frozen=True)
class MemberFit:
    """One member's fit and whether it is included (``reason`` says why not).

    ``structure`` is None for a fit given as it is (:func:`single_member`); ``label`` replaces
    the structure's name when set. ``posterior_theta`` holds the member's posterior draws when
    it is projected from them (``parameter_draws`` says which); ``note`` a caveat of an
    included member (an estimate on a bound of a flat prior).
    """

    structure: Structure | None
    result: Any | None             # FitResult, None when the fit could not run
    included: bool
    reason: str = ""
    posterior_theta: NDArray | None = None
    runtime_s: float = 0.0
    label: str = ""
    note: str = ""

    @property
    def name(self) -> str:
        return self.label or (self.structure.name if self.structure is not None else "fit")

    @property
    def parameter_draws(self) -> str:
        """``"posterior"`` (projected from ``posterior_theta``) or ``"normal"`` (θ ~ N(θ̂, Σ))."""
        return "normal" if self.posterior_theta is None else "posterior"

    @property
    def catch(self) -> str:
        """How the member treats the catch: ``"exact"`` (F solved to take the recorded catch) or
        ``"lognormal sd_log S, F per fished year estimated"``; what its spec says when fitted."""
        if self.result is not None:
            sd = self.result.spec.catch_sd_log
        else:
            sd = self.structure.catch_sd_log if self.structure is not None else None
        return "exact" if sd is None else f"lognormal sd_log {sd:g}, F per fished year estimated"

    def describe(self) -> dict[str, Any]:
        """The four structural choices (for a given fit: what its spec says, else "as fitted"),
        the catch treatment and the parameter draws."""
        if self.structure is not None:
            s = self.structure
            choices = {"dd_window_end_age_yr": s.dd_window_end_age_yr,
                       "release_survival_prior": s.release_survival_prior, "mortality": s.mortality.name,
                       "initial_state": s.initial_state}
        else:
            base = self.result.spec.base
            choices = {"dd_window_end_age_yr": int(base.dd_window_end_age_yr),
                       "release_survival_prior": "as fitted",
                       "mortality": f"c{float(np.asarray(base.lorenzen_c)):g}", "initial_state": "as fitted"}
        return {**choices, "catch": self.catch, "parameter_draws": self.parameter_draws}


@dataclass(frozen=True)
class EnsembleFits:
    """Every member's fit, the definition and the weights over the included members."""

    definition: EnsembleDefinition
    members: tuple[MemberFit, ...]
    weighting: str = field(default="")

    @property
    def included(self) -> tuple[MemberFit, ...]:
        return tuple(m for m in self.members if m.included)

    @property
    def excluded(self) -> dict[str, str]:
        """Member name → why it is excluded."""
        return {m.name: m.reason for m in self.members if not m.included}

    def weights(self) -> dict[str, float]:
        """Weight of each included member (sum 1)."""
        included = self.included
        if not included:
            raise FitError("ensemble: no member converged, so there is nothing to weight; excluded: "
                           + "; ".join(f"{k}: {v}" for k, v in self.excluded.items()))
        rule = self.definition.weights
        raw = np.array([1.0 if isinstance(rule, str) else float(rule.get(m.name, 0.0)) for m in included])
        if raw.sum() <= 0:
            raise ConfigError("weights: no converged member has a positive weight (converged: "
                              f"{', '.join(m.name for m in included)})")
        return {m.name: float(w) for m, w in zip(included, raw / raw.sum(), strict=True)}

    def rule(self) -> str:
        return self.weighting or self.definition.weighting_rule()


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def flat_prior_bounds(result: Any) -> tuple[str, ...]:
    """Estimates of ``result`` on a bound of their range whose prior is flat (a logit parameter
    with no stated prior: the uniform on its bounds, e.g. the flat release-survival prior).
    Empty when any estimate sits on a bound for another reason, or none does."""
    at_bound = set(result.at_bound)
    flat = {f.name for f in result.spec.estimated if f.transform == "logit" and f.prior is None}
    return tuple(sorted(at_bound)) if at_bound and at_bound <= flat else ()


def _bound_note(result: Any, names: Sequence[str], sample: Any) -> str:
    """What a flat-prior bound estimate is, and what the posterior draws say beside the prior."""
    parts = []
    for name in names:
        i = result.parameter_names.index(name)
        free = result.spec.estimated[i]
        lo, hi = free.bounds
        value = float(free.from_theta(result.theta[i]))
        q05, q50, q95 = np.quantile(sample.natural[free.field], [0.05, 0.5, 0.95])
        width = hi - lo
        parts.append(f"MAP of {free.field} {value:.3g} on the bound of its flat prior U({lo:g}, {hi:g}); "
                     f"posterior median {q50:.2f} [{q05:.2f}, {q95:.2f}] (90 %) vs the prior's "
                     f"{lo + 0.5 * width:.2f} [{lo + 0.05 * width:.2f}, {lo + 0.95 * width:.2f}]")
    return "; ".join(parts) + f"; parameter draws from the posterior sampler ({sample.method})"


def fit_member(data: Any, structure: Structure, base: Any, definition: EnsembleDefinition, *,
               seed: int) -> MemberFit:
    """Fit one member; never raises for a structure that cannot be fitted (it is excluded).

    A fit whose only failure is an estimate on the bound of a flat prior (:func:`flat_prior_bounds`,
    the rest ``interior_converged``) is included with posterior draws when
    ``definition.on_bound == "posterior"`` (module docstring, "Inclusion rule")."""
    from carpmodel.inference.fitting import fit, with_survey_error

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            spec = structure.spec(data, base)
            result = with_survey_error(spec, structure.config(base),
                                       lambda s, start: fit(s, n_starts=definition.n_starts, seed=seed,
                                                            start=start))
    except (CarpmodelError, ValueError, ArithmeticError) as error:
        return MemberFit(structure, None, False, _one_line(f"fit failed: {type(error).__name__}: {error}"),
                         runtime_s=time.perf_counter() - started)
    bounds = () if result.converged else flat_prior_bounds(result)
    on_flat_bound = bool(bounds) and bool(result.interior_converged)
    if not result.converged and not (on_flat_bound and definition.on_bound == "posterior"):
        why = "; ".join(result.warnings) or "the fit did not meet its convergence criteria"
        if on_flat_bound:
            why = (f"{', '.join(bounds)} on the bound of a flat prior (the rest converged; on_bound = "
                   f"'exclude'); {why}")
        return MemberFit(structure, result, False, _one_line(f"not converged: {why}"),
                         runtime_s=time.perf_counter() - started)
    posterior, note = None, ""
    if definition.parameter_draws == "posterior" or on_flat_bound:
        from carpmodel.inference.posterior import sample_posterior

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sample = sample_posterior(result, n_proposals=definition.posterior_proposals,
                                          n_samples=definition.posterior_samples, seed=seed)
        except (CarpmodelError, ValueError, ArithmeticError) as error:
            return MemberFit(structure, result, False,
                             _one_line(f"posterior sampling failed: {type(error).__name__}: {error}"),
                             runtime_s=time.perf_counter() - started)
        if sample.failure is not None:
            return MemberFit(structure, result, False,
                             _one_line(f"posterior sampling did not reach the posterior: {sample.failure}"),
                             runtime_s=time.perf_counter() - started)
        posterior = sample.theta
        if on_flat_bound:
            note = _bound_note(result, bounds, sample)
    return MemberFit(structure, result, True, "", posterior, time.perf_counter() - started, note=note)


def fit_ensemble(data: Any, definition: EnsembleDefinition | None = None, base: Any = None, *,
                 seed: int = 20260601, progress: Progress | None = None) -> EnsembleFits:
    """Fit every member of ``definition`` on ``data`` (other fit options from ``base``, a
    RunConfig; default the documented base case). Members are fitted one after another."""
    from carpmodel.io.config import default_config

    definition = definition or EnsembleDefinition()
    base = base if base is not None else default_config()
    structures = definition.members()
    fits = []
    for i, structure in enumerate(structures):
        fits.append(fit_member(data, structure, base, definition, seed=seed))
        if progress is not None:
            progress("ensemble fits", i + 1, len(structures))
    return EnsembleFits(definition, tuple(fits))


def single_member(result: Any, *, name: str = "fit", posterior_theta: NDArray | None = None) -> EnsembleFits:
    """An ensemble of one already-fitted model (weight 1): the plain projection as an ensemble,
    and the budget optimiser for one fit."""
    member = MemberFit(None, result, True, "", posterior_theta, label=name)
    return EnsembleFits(EnsembleDefinition(design="one_at_a_time"), (member,),
                        weighting="one model (the given fit), weight 1")


def members_table(fits: EnsembleFits) -> list[dict[str, Any]]:
    """One row per member (ensemble_members.csv): its structure, inclusion, reason, weight and fit."""
    try:
        weights = fits.weights() if fits.included else {}
    except ConfigError:              # every included member has weight 0: the table still says so
        weights = {}
    rows = []
    for m in fits.members:
        mortality = m.structure.mortality if m.structure is not None else None
        row: dict[str, Any] = {
            "structure": m.name, **m.describe(),
            "lorenzen_c": mortality.lorenzen_c if mortality is not None else None,
            "m_ref_prior_median_per_yr": (mortality.m_ref_prior_median_per_yr if mortality is not None
                                          else None),
            "included": m.included, "weight": weights.get(m.name, 0.0),
            "reason_excluded": m.reason, "note": m.note, "fit_runtime_s": round(m.runtime_s, 2)}
        r = m.result
        row.update({"converged": bool(r.converged) if r is not None else False,
                    "max_abs_gradient": r.max_abs_gradient if r is not None else float("nan"),
                    "nll": r.nll if r is not None else float("nan")})
        natural = r.natural_estimates() if r is not None else {}
        for name in ("release_survival", "dd_strength", "max_egg_survival", "m_ref_per_yr",
                     "unfished_biomass_t"):
            row[name] = natural.get(name, {}).get("estimate", float("nan"))
        row.update(_release_survival_interval(m))
        rows.append(row)
    return rows


def _release_survival_interval(m: MemberFit) -> dict[str, float]:
    """Median and 90 % interval of release survival in the member's parameter draws: quantiles
    of the posterior draws, or of the normal approximation (exact through the monotone logit
    transform); NaN for an excluded member or one without release survival."""
    keys = ("release_survival_draws_median", "release_survival_draws_lower_90",
            "release_survival_draws_upper_90")
    r = m.result
    names = list(r.parameter_names) if r is not None else []
    if not m.included or "logit_release_survival" not in names:
        return dict.fromkeys(keys, float("nan"))
    i = names.index("logit_release_survival")
    free = r.spec.estimated[i]
    if m.posterior_theta is not None:
        values = np.quantile(free.from_theta(m.posterior_theta[:, i]), [0.5, 0.05, 0.95])
    else:
        se = float(r.std_errors[i])
        values = free.from_theta(r.theta[i] + 1.6448536269514722 * se * np.array([0.0, -1.0, 1.0]))
    return {k: float(v) for k, v in zip(keys, values, strict=True)}


# --------------------------------------------------------------------------- projection


def project_ensemble(fits: EnsembleFits, setup: Any) -> xr.Dataset:
    """Project every included member with the same setup (same seed: the same per-draw streams)
    and combine along ``structure`` with ``structure_weight`` (sum 1).

    ``setup.posterior_theta`` is replaced by each member's posterior draws (None with
    ``parameter_draws = "normal"``). Excluded members are not projected; they are listed in the
    ``excluded_members`` attribute (JSON: name → reason).
    """
    from carpmodel.management.projection import project

    weights = fits.weights()
    datasets, names = [], []
    for m in fits.included:
        member_setup = dataclasses.replace(setup, posterior_theta=m.posterior_theta)
        datasets.append(project(m.result, member_setup))
        names.append(m.name)
    attrs = dict(datasets[0].attrs)
    ds = xr.concat(datasets, dim=STRUCTURE, combine_attrs="override").assign_coords({STRUCTURE: names})
    ds["structure_weight"] = (STRUCTURE, [weights[m.name] for m in fits.included])
    ds["structure_weight"].attrs.update(units="1", long_name="weight of the member in the pooled ensemble")
    ds = ds.assign_coords(_structure_coords(fits))
    attrs.update(ensemble_attrs(fits))
    attrs["parameter_uncertainty"] = "per member (coordinate parameter_draws): " + "; ".join(
        f"{m.name}: " + ("theta ~ N(estimate, inverse Hessian)" if m.posterior_theta is None
                         else "posterior draws") for m in fits.included)
    ds.attrs = attrs
    return ds


def _structure_coords(fits: EnsembleFits) -> dict[str, Any]:
    described = [m.describe() for m in fits.included]
    return {key: (STRUCTURE, [d[key] for d in described])
            for key in ("dd_window_end_age_yr", "release_survival_prior", "mortality", "initial_state",
                        "catch", "parameter_draws")}


def ensemble_attrs(fits: EnsembleFits) -> dict[str, Any]:
    """Dataset attributes recording the ensemble: rule, members, exclusions with reasons."""
    d = fits.definition
    return {
        "ensemble_weighting": fits.rule(),
        "ensemble_design": d.design,
        "ensemble_members_included": ", ".join(m.name for m in fits.included),
        "excluded_members": json.dumps(fits.excluded),
        "n_members_defined": len(fits.members),
        "n_members_included": len(fits.included),
        "ensemble_catch": json.dumps({m.name: m.catch for m in fits.included}),   # as fitted
        "ensemble_notes": json.dumps({m.name: m.note for m in fits.included if m.note}),
        "ensemble_definition": json.dumps({
            "dd_windows": list(d.dd_windows), "release_survival_priors": list(d.release_survival_priors),
            "mortality": [dataclasses.asdict(m) for m in d.mortality],
            "initial_states": list(d.initial_states),
            "design": d.design, "vary_alone": list(d.vary_alone),
            "weights": d.weights if isinstance(d.weights, str) else dict(d.weights),
            "n_starts": d.n_starts, "parameter_draws": d.parameter_draws,
            "pre_2000_catch_sd_log": d.pre_2000_catch_sd_log, "on_bound": d.on_bound}),
    }


# --------------------------------------------------------------------------- metrics


def pool_draws(ds: xr.Dataset) -> tuple[xr.Dataset, xr.DataArray]:
    """The members' draws stacked into one ``draw`` dimension and their weights
    (``structure_weight / n_draws`` each; sum 1)."""
    n_draw = ds.sizes["draw"]
    members = ds.sizes[STRUCTURE]
    variables = {}
    for name, var in ds.data_vars.items():
        if name == "structure_weight":
            continue
        if STRUCTURE not in var.dims:
            var = var.expand_dims({STRUCTURE: ds[STRUCTURE].values})
        if "draw" not in var.dims:
            var = var.expand_dims({"draw": ds["draw"].values})
        variables[name] = var
    weight = (ds["structure_weight"] / n_draw).expand_dims({"draw": ds["draw"].values})
    variables["_weight"] = weight
    pooled = xr.Dataset(variables, attrs=ds.attrs).drop_vars(
        [c for c in ds.coords if c not in ("strategy", "scenario", "year", "draw", STRUCTURE)
         and STRUCTURE in ds[c].dims])
    stacked = pooled.stack(_sample=(STRUCTURE, "draw"))
    stacked = stacked.drop_vars(["_sample", STRUCTURE, "draw"]).rename({"_sample": "draw"})
    stacked = stacked.assign_coords(draw=np.arange(members * n_draw))
    weights = stacked["_weight"]
    return stacked.drop_vars("_weight"), weights


def shared_draws(ds: xr.Dataset) -> xr.DataArray:
    """The member draw index of each draw of :func:`pool_draws` (members in turn, draws in order
    within each): the pooled draws with the same value share their random numbers."""
    index = np.tile(np.arange(ds.sizes["draw"]), ds.sizes[STRUCTURE])
    return xr.DataArray(index, dims="draw", coords={"draw": np.arange(index.size)}, name="shared_draw")


#: a strategy is robust across structures when it wins in at least this fraction of the members
ROBUST_FRACTION = 0.8


def robustness(gain_median: xr.DataArray, weights: Any,
               threshold: float = ROBUST_FRACTION) -> tuple[xr.DataArray, xr.DataArray]:
    """Which strategy wins in each member, and whether one wins across structures.

    ``gain_median`` has dims ``strategy`` and ``structure`` (members only) and any others
    (scenario, metric year); ``weights`` the members' weights. The winner of a member is the
    strategy with the largest value (NaN never wins; ties go to the first). Returns
    ``member_win_fraction`` (weighted fraction of members a strategy wins) and
    ``robust_across_structures`` (fraction ≥ ``threshold``), both without ``structure``.
    """
    w = xr.DataArray(np.asarray(weights, dtype=float), dims=STRUCTURE,
                     coords={STRUCTURE: gain_median[STRUCTURE].values})
    filled = gain_median.fillna(-np.inf)
    best = filled.max("strategy")
    # the first strategy reaching the maximum: cumulative count of maxima equal to 1 at it
    is_max = (filled == best) & np.isfinite(best)
    first = is_max & (is_max.cumsum("strategy") == 1)
    fraction = (first * w).sum(STRUCTURE) / w.sum()
    fraction.attrs.update(units="1", long_name="fraction of the members (by weight) in which the strategy "
                                               "has the largest median biomass gain")
    robust = fraction >= threshold - 1e-12
    robust.attrs.update(units="1", long_name=f"the strategy wins in at least {threshold:.0%} of the members")
    return fraction, robust


def ensemble_metrics(ds: xr.Dataset, **kwargs: Any) -> xr.Dataset:
    """:func:`carpmodel.management.metrics.strategy_metrics` per member and for the pooled ensemble (its
    draws weighted by ``structure_weight``), along ``structure`` (the last entry ``"pooled"``);
    ``structure_weight`` is 1 for the pooled row; ``member_win_fraction`` and
    ``robust_across_structures`` (:func:`robustness`) are across the members (no ``structure``
    dim). ``kwargs`` go to strategy_metrics."""
    per_member_coords = [c for c in ds.coords if STRUCTURE in ds[c].dims and c != STRUCTURE]
    plain = ds.drop_vars(per_member_coords)
    tables = [strategy_metrics(plain.sel({STRUCTURE: name}, drop=True).drop_vars("structure_weight"),
                               **kwargs) for name in ds[STRUCTURE].values]
    pooled, weights = pool_draws(ds)
    # the members share each draw index's random numbers: Monte Carlo errors over draw indices
    tables.append(strategy_metrics(pooled, weights=weights, draw_clusters=shared_draws(ds), **kwargs))
    names = [str(n) for n in ds[STRUCTURE].values] + [POOLED]
    out = xr.concat(tables, dim=STRUCTURE, combine_attrs="override").assign_coords({STRUCTURE: names})
    out["structure_weight"] = (STRUCTURE, [*ds["structure_weight"].values.tolist(), 1.0])
    out["structure_weight"].attrs.update(units="1", long_name="member weight (1 for the pooled ensemble)")
    out["member_win_fraction"], out["robust_across_structures"] = robustness(
        out["biomass_gain_median_t"].drop_sel({STRUCTURE: POOLED}), ds["structure_weight"].values)
    out.attrs["robust_rule"] = (
        "a strategy wins a member when its median biomass gain over the reference is the largest in "
        "that member (metric year, scenario); robust_across_structures: it wins in at least "
        f"{ROBUST_FRACTION:.0%} of the members (by member weight)")
    out.attrs["draw_weights"] = ("members: equal over their own draws; pooled: each draw weighted "
                                 "structure_weight / n_draws (weighted means and weighted quantiles)")
    return out.transpose("strategy", "scenario", STRUCTURE, ...)
