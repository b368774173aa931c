"""The budget question in one place: how best to spend an annual release budget.

A :class:`BudgetProblem` (the ``[budget]`` table of a strategies file, or ``--budget AMOUNT``)
asks for the shares of ``budget_per_year`` over release sizes ``options`` that maximise a
statistic (median, mean or lower bound) of the gain in biomass or SSB over
:data:`~carpmodel.management.strategies.REFERENCE_STRATEGY` in one year under one scenario,
paired by draw (common random numbers, so the objective is a deterministic function of the
shares).

* :func:`resolve_problem` and :func:`check_problem` build the question from the file and the
  command line and check it against the costs, the model's ages and the projection's
  scenarios and years, before any work is done;
* :func:`budget_strategy` turns shares into a :class:`~carpmodel.management.strategies.Strategy`;
* :func:`optimise_budget` maximises any deterministic function of the shares (Nelder–Mead on
  softmax logits, or SLSQP; optional multistart and exact corners);
* :func:`optimise_release_budget` answers the question per member of an ensemble of model
  structures (:mod:`carpmodel.management.ensemble`; :func:`~carpmodel.management.ensemble.
  single_member` for one fit) and for the pooled ensemble; :func:`budget_table` makes its
  rows (budget.csv).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.optimize
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from carpmodel import __version__
from carpmodel.errors import ConfigError
from carpmodel.management.ensemble import POOLED, STRUCTURE, EnsembleFits, Progress, ensemble_attrs
from carpmodel.management.metrics import clustered_mc_se, weighted_mean, weighted_quantile
from carpmodel.management.policy import build_policy
from carpmodel.management.projection import prepare_draws, simulate_strategies
from carpmodel.management.strategies import (
    REFERENCE_STRATEGY,
    SHARE_SUM_TOLERANCE,
    BudgetReleases,
    BudgetShare,
    ClosureContinued,
    CostModel,
    Harvest,
    Strategy,
    calendar_year,
    finite_at_least,
    integer_in,
)

__all__ = [
    "BUDGET_OBJECTIVES",
    "DEFAULT_BUDGET_OPTIONS",
    "BudgetProblem",
    "BudgetResult",
    "budget_strategy",
    "budget_table",
    "check_problem",
    "optimise_budget",
    "optimise_release_budget",
    "resolve_problem",
    "softmax_shares",
]

#: Budget optimiser settings: evaluations per start; it stops when the simplex's logits agree within
#: 1e-3 and its values within 0.1 t (gains are hundreds to tens of thousands of tonnes; a median
#: over draws is a step function of the shares, so a finer value tolerance only spends evaluations)
BUDGET_MAX_EVALUATIONS, BUDGET_SHARE_TOLERANCE, BUDGET_VALUE_TOLERANCE_T = 200, 1e-3, 0.1

#: Release sizes a budget is split over by default: fry (age 0, 1 g), the status quo (age 1,
#: 10 g) and larger fish released past the default density-dependence window (age 2, 50 g).
DEFAULT_BUDGET_OPTIONS = ((0, 1.0), (1, 10.0), (2, 50.0))
BUDGET_OBJECTIVES = ("median_gain", "mean_gain", "lower_gain")


@dataclass(frozen=True)
class BudgetProblem:
    """How best to spend ``budget_per_year``: the shares over release sizes ``options`` that
    maximise the ``objective`` of the gain in ``variable`` over :data:`REFERENCE_STRATEGY` in
    ``year`` under ``scenario`` (paired by draw, common random numbers).

    Attributes
    ----------
    budget_per_year : float
        Cost units spent every projection year (> 0), with the strategy set's costs.
    options : tuple of (age_yr, weight_g)
        Release sizes; each weight must lie within the cost table (checked by :meth:`check`).
    objective : {"median_gain", "mean_gain", "lower_gain"}
        Median, mean, or lower bound of the central ``interval`` (5 % quantile at 0.9) of the
        gain over draws (pooled by weight across an ensemble).
    variable : {"biomass_t", "ssb_t"}
    year : int
        Year of the gain; the optimiser projects only up to it.
    scenario : str
        Climate scenario of the data's climate_scenarios.toml.
    interval : float
        Central probability of the reported interval (and of "lower_gain").
    method : {"nelder_mead", "slsqp"}
        See :func:`optimise_budget`.
    """

    budget_per_year: float
    options: tuple[tuple[int, float], ...] = DEFAULT_BUDGET_OPTIONS
    objective: Literal["median_gain", "mean_gain", "lower_gain"] = "median_gain"
    variable: Literal["biomass_t", "ssb_t"] = "biomass_t"
    year: int = 2050
    scenario: str = "ssp245"
    interval: float = 0.9
    method: Literal["nelder_mead", "slsqp"] = "nelder_mead"

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget_per_year",
                           finite_at_least("budget_per_year", self.budget_per_year, 0.0, strict=True))
        if isinstance(self.options, str) or not isinstance(self.options, Sequence) or not self.options:
            raise ConfigError(f"options: expected a non-empty array of (age_yr, weight_g), "
                              f"got {self.options!r}")
        options = []
        for i, item in enumerate(self.options):
            if isinstance(item, Mapping):
                extra = sorted(set(item) - {"age_yr", "weight_g"})
                if extra or len(item) != 2:
                    raise ConfigError(f"options[{i}]: expected keys age_yr and weight_g, got {sorted(item)}")
                item = (item["age_yr"], item["weight_g"])
            if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
                raise ConfigError(f"options[{i}]: expected (age_yr, weight_g), got {item!r}")
            options.append((integer_in(f"options[{i}].age_yr", item[0], 0, 200),
                            finite_at_least(f"options[{i}].weight_g", item[1], 0.0, strict=True)))
        if len(set(options)) != len(options):
            raise ConfigError(f"options: expected distinct (age_yr, weight_g) pairs, got {options}")
        object.__setattr__(self, "options", tuple(options))
        if self.objective not in BUDGET_OBJECTIVES:
            raise ConfigError(f"objective: expected one of {', '.join(BUDGET_OBJECTIVES)}, "
                              f"got {self.objective!r}")
        if self.variable not in ("biomass_t", "ssb_t"):
            raise ConfigError(f"variable: expected 'biomass_t' or 'ssb_t', got {self.variable!r}")
        object.__setattr__(self, "year", calendar_year("year", self.year))
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ConfigError(f"scenario: expected a scenario name, got {self.scenario!r}")
        interval = finite_at_least("interval", self.interval, 0.0, strict=True)
        if interval >= 1.0:
            raise ConfigError(f"interval: expected a probability in (0, 1), got {self.interval!r}")
        if self.method not in ("nelder_mead", "slsqp"):
            raise ConfigError(f"method: expected 'nelder_mead' or 'slsqp', got {self.method!r}")

    def check(self, costs: CostModel, n_age: int) -> None:
        """Refuse options outside the cost table's weights or the model's ages."""
        weights = list(costs.cost_per_fish_by_weight)
        for i, (age, weight) in enumerate(self.options):
            if not weights[0] <= weight <= weights[-1]:
                raise ConfigError(f"budget.options[{i}].weight_g: expected a weight within the cost table "
                                  f"({weights[0]:g}-{weights[-1]:g} g), got {weight:g}")
            if age >= n_age:
                raise ConfigError(f"budget.options[{i}].age_yr: expected an age in 0..{n_age - 1}, got {age}")

    def strategy(self, shares: ArrayLike, name: str = "budget_optimum") -> Strategy:
        """The strategy spending the budget with ``shares`` (closure continued)."""
        labels = ", ".join(f"age {a} {w:g} g" for a, w in self.options)
        return budget_strategy(name, self.budget_per_year, self.options, shares,
                               description=f"budget {self.budget_per_year:g}/yr over {labels}")


def resolve_problem(from_file: BudgetProblem | None, budget_per_year: float | None, *,
                    source: Any) -> BudgetProblem:
    """The budget question: ``from_file`` (a strategies file's ``[budget]`` table, None when it
    has none) with its budget replaced by ``budget_per_year`` when given; only an amount: the
    default options and objective. ``source`` names the file in the error when neither is given;
    errors in the amount start ``--budget:``."""
    problem = from_file
    if problem is None and budget_per_year is None:
        raise ConfigError(f"--budget: no amount given and {source} has no [budget] table; "
                          f"pass --budget AMOUNT")
    try:
        if problem is None:
            problem = BudgetProblem(budget_per_year)
        elif budget_per_year is not None:
            problem = dataclasses.replace(problem, budget_per_year=budget_per_year)
    except ConfigError as exc:
        raise ConfigError(f"--budget: {exc}") from None
    return problem


def check_problem(problem: BudgetProblem, costs: CostModel, n_age: int, *, scenarios: Sequence[str],
                  first_year: int, last_year: int) -> None:
    """Refuse a question the projection cannot answer: options outside the cost table's weights
    or the model's ages (:meth:`BudgetProblem.check`), a scenario not among ``scenarios``, a year
    outside ``first_year..last_year``. Messages start with the key (``budget.…``)."""
    problem.check(costs, n_age)
    if problem.scenario not in scenarios:
        raise ConfigError(f"budget.scenario: expected one of the projection's scenarios "
                          f"{list(scenarios)}, got {problem.scenario!r}")
    if not first_year <= problem.year <= last_year:
        raise ConfigError(f"budget.year: expected a projection year ({first_year}-{last_year}), "
                          f"got {problem.year}")


def budget_strategy(name: str, budget_per_year: float, options: Sequence[tuple[int, float]],
                    shares: ArrayLike, *, harvest: Harvest | None = None, description: str = "") -> Strategy:
    """A strategy spending a budget over release sizes ``options = [(age_yr, weight_g), …]``.

    Convenience for :func:`optimise_budget`: wrap ``shares → budget_strategy(…) → projection``.
    """
    shares = np.asarray(shares, dtype=float)
    if shares.shape != (len(options),):
        raise ConfigError(f"shares: expected {len(options)} shares (one per option), "
                          f"got shape {shares.shape}")
    component = BudgetReleases(budget_per_year, tuple(
        BudgetShare(int(age), float(weight), float(share))
        for (age, weight), share in zip(options, shares, strict=True)))
    return Strategy(name, (component,), harvest or ClosureContinued(), description=description)


# --------------------------------------------------------------------------- the optimiser



@dataclass(frozen=True)
class BudgetResult:
    """Outcome of :func:`optimise_budget`.

    Attributes
    ----------
    shares : (n_options,) budget shares (>= 0, sum 1) of the best point found
    value : metric at ``shares``
    n_evaluations : calls of ``evaluate``
    converged : whether the optimiser met its tolerances within ``max_evaluations`` (for a
        corner at least as good as every start: True, the corner being where the starts head)
    message : the optimiser's message
    method : ``"nelder_mead"`` or ``"slsqp"``
    corner : True when the best point puts the whole budget on one option (``multistart``; a
        corner wins ties, so shares that only approach a corner come out exactly on it)
    n_starts : optimiser runs made
    """

    shares: NDArray
    value: float
    n_evaluations: int
    converged: bool
    message: str
    method: str
    corner: bool = False
    n_starts: int = 1


def softmax_shares(logits: ArrayLike) -> NDArray:
    """Shares on the simplex from ``n − 1`` free logits (the last option's logit is fixed at 0)."""
    z = np.append(np.asarray(logits, dtype=float), 0.0)
    z = np.exp(z - z.max())
    return z / z.sum()


def optimise_budget(evaluate: Callable[[NDArray], float], n_options: int, *,
                    method: Literal["nelder_mead", "slsqp"] = "nelder_mead",
                    initial_shares: ArrayLike | None = None, max_evaluations: int = 400,
                    share_tolerance: float = 1e-4, value_tolerance: float = 1e-8,
                    multistart: bool = False) -> BudgetResult:
    """Budget shares over ``n_options`` release sizes that maximise ``evaluate(shares)``.

    ``evaluate`` maps shares (>= 0, summing to 1) to a metric to maximise (e.g. the median
    biomass gain in 2050 of a projection of :func:`budget_strategy`); it should be deterministic
    (common random numbers), and a NaN counts as the worst value. Deterministic: fixed start
    (equal shares unless ``initial_shares``) and fixed initial simplex.

    * ``"nelder_mead"`` (default, derivative-free, robust to a rough metric): Nelder–Mead on the
      ``n − 1`` softmax logits (:func:`softmax_shares`), initial simplex steps of 1 in each logit.
      Shares can approach 0 but never reach it exactly.
    * ``"slsqp"``: SLSQP on the shares with bounds [0, 1] and the constraint Σ = 1 (finite-difference
      gradients; exact zeros possible; needs a smooth metric).

    ``multistart``: also start from each option's near-corner (0.8 of the budget on it, the rest
    split equally) and evaluate every exact corner (the whole budget on one option); the best
    point found wins, a corner on ties. A rough metric (a median over draws) can have its maximum on a corner,
    which softmax logits only approach, or trap a single simplex. ``max_evaluations`` is per start.
    """
    n_options = integer_in("n_options", n_options, 1, 10_000)
    if method not in ("nelder_mead", "slsqp"):
        raise ConfigError(f"method: expected 'nelder_mead' or 'slsqp', got {method!r}")
    start = (np.full(n_options, 1.0 / n_options) if initial_shares is None
             else np.asarray(initial_shares, float))
    if start.shape != (n_options,) or np.any(start <= 0) or abs(start.sum() - 1.0) > SHARE_SUM_TOLERANCE:
        raise ConfigError(f"initial_shares: expected {n_options} positive shares summing to 1, got {start!r}")
    calls = 0

    def value_of(shares: NDArray) -> float:
        nonlocal calls
        calls += 1
        value = float(evaluate(shares))
        return value if math.isfinite(value) else -math.inf

    if n_options == 1:
        return BudgetResult(np.ones(1), value_of(np.ones(1)), calls, True, "one option: all the budget",
                            method)
    starts = [start]
    if multistart:
        for k in range(n_options):
            near = np.full(n_options, 0.2 / (n_options - 1))
            near[k] = 0.8
            starts.append(near)
    runs = [_optimise_from(value_of, x0, method, max_evaluations, share_tolerance, value_tolerance)
            for x0 in starts]
    best = max(range(len(runs)), key=lambda i: runs[i][1])
    shares, value, converged, message = runs[best]
    corner = False
    if multistart:
        for k in range(n_options):
            one_hot = np.eye(n_options)[k]
            corner_value = value_of(one_hot)
            if corner_value >= value:   # ties go to the exact corner the logits only approach
                shares, value, corner = one_hot, corner_value, True
                converged = True
                message = f"the whole budget on option {k} is at least as good as every start"
    return BudgetResult(shares=shares, value=value, n_evaluations=calls, converged=converged,
                        message=message, method=method, corner=corner, n_starts=len(runs))


def _optimise_from(value_of: Callable[[NDArray], float], start: NDArray, method: str, max_evaluations: int,
                   share_tolerance: float, value_tolerance: float) -> tuple[NDArray, float, bool, str]:
    """One optimiser run from ``start``: (shares, value, converged, message)."""
    n_options = start.size
    if method == "nelder_mead":
        x0 = np.log(start[:-1]) - np.log(start[-1])
        simplex = np.vstack([x0, x0 + np.eye(n_options - 1)])
        result = scipy.optimize.minimize(
            lambda x: -value_of(softmax_shares(x)), x0, method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": share_tolerance, "fatol": value_tolerance,
                     "maxfev": max_evaluations})
        shares = softmax_shares(result.x)
    else:
        result = scipy.optimize.minimize(
            lambda s: -value_of(np.clip(s, 0.0, 1.0) / np.clip(s, 0.0, 1.0).sum()), start, method="SLSQP",
            bounds=[(0.0, 1.0)] * n_options,
            constraints=[{"type": "eq", "fun": lambda s: np.sum(s) - 1.0}],
            options={"ftol": value_tolerance, "maxiter": max_evaluations})
        shares = np.clip(result.x, 0.0, 1.0)
        shares = shares / shares.sum()
    return shares, -float(result.fun), bool(result.success), str(result.message)


# --------------------------------------------------------------------------- per member and pooled



def _statistic(values: NDArray, weights: NDArray, objective: str, interval: float) -> float:
    if objective == "mean_gain":
        return float(weighted_mean(values, weights))
    q = 0.5 if objective == "median_gain" else (1.0 - interval) / 2.0
    if np.all(weights == weights[0]):
        return float(np.nanquantile(values, q))
    return float(weighted_quantile(values, weights, [q])[0])


#: the chosen split evaluated on held-out draws (:func:`optimise_release_budget`)
HOLDOUT_FIELDS = ("holdout_gain_median_t", "holdout_gain_lower_t", "holdout_gain_upper_t",
                  "holdout_gain_mean_t", "holdout_p_beats_status_quo", "holdout_p_beats_status_quo_mc_se")


def _summary(values: NDArray, weights: NDArray, interval: float) -> dict[str, float]:
    lower, upper = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    if np.all(weights == weights[0]):
        median, lo, hi = np.nanquantile(values, [0.5, lower, upper])
    else:
        median, lo, hi = weighted_quantile(values, weights, [0.5, lower, upper])
    return {"gain_median_t": float(median), "gain_lower_t": float(lo), "gain_upper_t": float(hi),
            "gain_mean_t": float(weighted_mean(values, weights))}


@dataclass
class _BudgetMember:
    """A member ready for repeated budget evaluations: its prepared draws, the reference's value
    per draw, and the status quo's gain over it per draw (NaN: no status quo given)."""

    name: str
    prepared: Any
    reference: NDArray
    status_quo_gain: NDArray | None = None


def _final(state: Any, variable: str) -> NDArray:
    values = np.asarray(getattr(state, variable))
    return values[..., -1].reshape(-1)


def _run(member: _BudgetMember, strategy: Strategy, costs: CostModel, variable: str) -> NDArray:
    prepared = member.prepared
    params = prepared.params
    batch = (1, *prepared.batch)
    policy = build_policy([strategy], costs, prepared.years, params.n_age, params.lw_a, params.lw_b, batch)
    state = simulate_strategies(prepared, policy, 1)
    return np.broadcast_to(_final(state, variable), (prepared.draws.size,))


def optimise_release_budget(fits: EnsembleFits, setup: Any, problem: BudgetProblem, costs: CostModel, *,
                            progress: Progress | None = None,
                            status_quo: Strategy | None = None) -> xr.Dataset:
    """Best split of ``problem.budget_per_year`` over release sizes, per member and pooled.

    For each included member, the draws of ``setup`` (its seed, draws, survey CV and climate
    forcing; projected only to ``problem.year`` under ``problem.scenario``) are prepared once;
    every evaluation then runs the engine for the budget strategy only and takes the gain in
    ``problem.variable`` in ``problem.year`` over ``no_releases`` draw by draw (the same random
    numbers: common random numbers, so the objective is a deterministic function of the shares).
    :func:`optimise_budget` (Nelder–Mead on softmax logits from equal shares and from near each
    corner, and every exact corner; the best wins) maximises ``problem.objective`` of the gains of
    one member (equal draw weights), and of the pooled ensemble (draws weighted by member weight).

    Returns
    -------
    xarray.Dataset
        Dims ``(structure, release_option)`` with structure = member names then ``"pooled"``:
        ``share``, ``fish_per_year`` and ``corner_gain_median_t`` (the median gain with the whole
        budget on that option); per structure ``gain_{median,lower,upper,mean}_t`` at the chosen
        shares (interval over draws, pooled by weight), ``objective_value``,
        ``cost_through_year`` and ``cost_per_t_gained`` (NaN when the median gain <= 0),
        ``n_evaluations``, ``converged``, ``corner``, ``structure_weight``; the chosen shares
        evaluated on held-out draws (the draw indices ``n_draws..2·n_draws − 1`` of the same seed,
        which the optimiser never saw): ``holdout_gain_{median,lower,upper,mean}_t`` and
        ``holdout_p_beats_status_quo`` with its Monte Carlo standard error (the in-sample gain and
        probability are measured on the draws the split was chosen with, so they flatter it:
        the winner's curse; with a posterior sample, held-out draws pick their parameter vectors
        from the same finite sample, so only the process and observation part of that flattery
        is removed where the sample is small); robustness:
        ``p_beats_status_quo`` (P, paired by draw, that the chosen split beats ``status_quo`` in
        ``problem.variable`` in ``problem.year``; NaN when no status quo is given),
        ``dominant_option`` (the option with the largest share), ``member_agreement`` (scalar:
        the weight of the members whose dominant option is the pooled split's; NaN for one
        member) and the attribute ``robust_across_structures`` ("true" when the agreement is at
        least :data:`~carpmodel.management.ensemble.ROBUST_FRACTION`, "false", or "not assessed").
    """
    weights = fits.weights()
    included = fits.included
    n_age = included[0].result.spec.base.n_age
    check_problem(problem, costs, n_age, scenarios=setup.scenario_names, first_year=setup.first_year,
                  last_year=setup.last_year)
    short = dataclasses.replace(setup, last_year=problem.year, chunk_draws=None)
    reference = Strategy(REFERENCE_STRATEGY)
    n_draw = setup.n_draws

    def member_draws(m: Any, draws: NDArray) -> _BudgetMember:
        prepared = prepare_draws(m.result, dataclasses.replace(short, posterior_theta=m.posterior_theta),
                                 draws, scenarios=(problem.scenario,))
        member = _BudgetMember(m.name, prepared, np.zeros(prepared.draws.size))
        member.reference = _run(member, reference, costs, problem.variable).copy()
        member.status_quo_gain = (_run(member, status_quo, costs, problem.variable) - member.reference
                                  if status_quo is not None else np.full(member.reference.shape, np.nan))
        return member

    # the optimiser's draws, and as many held-out ones (the next draw indices of the same seed)
    members = [member_draws(m, np.arange(n_draw)) for m in included]
    held_out = {m.name: member_draws(m, np.arange(n_draw, 2 * n_draw)) for m in included}

    n_options = len(problem.options)

    def gains(group: Sequence[_BudgetMember], shares: NDArray) -> NDArray:
        strategy = problem.strategy(shares)
        return np.concatenate([_run(m, strategy, costs, problem.variable) - m.reference for m in group])

    def beats(chosen: NDArray, group: Sequence[_BudgetMember], w: NDArray) -> tuple[float, float]:
        """P(the chosen split beats the status quo in the same draw) and its Monte Carlo error
        (the members of a group share each draw index's random numbers: clustered by index)."""
        if status_quo is None:
            return np.nan, np.nan
        versus = np.concatenate([m.status_quo_gain for m in group])
        # a draw with a NaN gain is left out (not counted as "does not beat"), as in metrics.csv
        event = xr.DataArray(np.where(np.isnan(chosen) | np.isnan(versus), np.nan,
                                      (chosen > versus).astype(float)), dims="draw")
        p = float(weighted_mean(event.values, w))
        clusters = xr.DataArray(np.tile(np.arange(n_draw), len(group)), dims="draw")
        return p, float(clustered_mc_se(event, xr.DataArray(p), xr.DataArray(w, dims="draw"), clusters))

    def draw_weights(group: Sequence[_BudgetMember], pooled: bool) -> NDArray:
        if not pooled:
            return np.full(n_draw * len(group), 1.0 / (n_draw * len(group)))
        return np.repeat([weights[m_fit.name] for m_fit in included], n_draw) / n_draw

    groups = [([m], False) for m in members] + ([(members, True)] if len(members) > 1 else [])
    rows = []
    for i, (group, pooled) in enumerate(groups):
        w = draw_weights(group, pooled)
        result = optimise_budget(lambda s, g=group, ww=w: _statistic(gains(g, s), ww, problem.objective,
                                                                     problem.interval),
                                 n_options, method=problem.method, multistart=True,
                                 max_evaluations=BUDGET_MAX_EVALUATIONS,
                                 share_tolerance=BUDGET_SHARE_TOLERANCE,
                                 value_tolerance=BUDGET_VALUE_TOLERANCE_T)
        chosen = gains(group, result.shares)
        summary = _summary(chosen, w, problem.interval)
        summary["p_beats_status_quo"] = beats(chosen, group, w)[0]
        # the chosen shares on draws the optimiser never saw: its own draws flatter the split it
        # picked (the winner's curse), these do not
        fresh = [held_out[m.name] for m in group]
        fresh_gain = gains(fresh, result.shares)
        summary.update({f"holdout_{k}": v for k, v in _summary(fresh_gain, w, problem.interval).items()})
        summary["holdout_p_beats_status_quo"], summary["holdout_p_beats_status_quo_mc_se"] = beats(
            fresh_gain, fresh, w)
        corners = [_summary(gains(group, np.eye(n_options)[k]), w, problem.interval)["gain_median_t"]
                   for k in range(n_options)]
        rows.append((POOLED if pooled else group[0].name, result, summary, corners))
        if progress is not None:
            progress("budget optimisation", i + 1, len(groups))
    if len(members) == 1:   # the pooled ensemble of one member is that member
        rows.append((POOLED, *rows[0][1:]))
    ds = _budget_dataset(rows, problem, costs, setup, weights, fits)
    return _with_robustness(ds, status_quo)


def _with_robustness(ds: xr.Dataset, status_quo: Strategy | None) -> xr.Dataset:
    """``dominant_option``, ``member_agreement`` and the ``robust_across_structures`` attribute."""
    from carpmodel.management.ensemble import ROBUST_FRACTION

    labels = ds["release_option"].values
    dominant = labels[np.argmax(ds["share"].values, axis=1)]
    ds["dominant_option"] = (STRUCTURE, dominant.astype(str))
    ds["dominant_option"].attrs.update(units="1", long_name="release option with the largest budget share")
    names = [str(n) for n in ds[STRUCTURE].values]
    member = [i for i, n in enumerate(names) if n != POOLED]
    pooled = dominant[names.index(POOLED)]
    if len(member) > 1:
        w = ds["structure_weight"].values[member]
        agreement = float(np.sum(w * (dominant[member] == pooled)) / np.sum(w))
        robust = "true" if agreement >= ROBUST_FRACTION - 1e-12 else "false"
    else:
        agreement, robust = np.nan, "not assessed (one structure)"
    ds["member_agreement"] = agreement
    ds["member_agreement"].attrs.update(
        units="1", long_name=f"weight of the members whose dominant option is the pooled split's ({pooled})")
    ds["p_beats_status_quo"].attrs.update(
        units="1", long_name="P(the chosen split beats the status quo in the same draw)")
    ds.attrs.update(robust_across_structures=robust, robust_fraction=ROBUST_FRACTION,
                    status_quo_strategy=status_quo.name if status_quo is not None else "none given")
    return ds


def _budget_dataset(rows: list[tuple[str, Any, dict[str, float], list[float]]], problem: BudgetProblem,
                    costs: CostModel, setup: Any, weights: Mapping[str, float],
                    fits: EnsembleFits) -> xr.Dataset:
    labels = [f"age{a}_{w:g}g" for a, w in problem.options]
    cost_per_fish = np.array([float(costs.cost_per_fish(w)) for _, w in problem.options])
    shares = np.array([r[1].shares for r in rows])
    n_years = problem.year - setup.first_year + 1
    cost_through = problem.budget_per_year * n_years
    median = np.array([r[2]["gain_median_t"] for r in rows])
    names = [r[0] for r in rows]
    ds = xr.Dataset(
        {"share": ((STRUCTURE, "release_option"), shares),
         "fish_per_year": ((STRUCTURE, "release_option"), problem.budget_per_year * shares / cost_per_fish),
         "corner_gain_median_t": ((STRUCTURE, "release_option"), np.array([r[3] for r in rows])),
         **{key: (STRUCTURE, np.array([r[2][key] for r in rows]))
            for key in ("gain_median_t", "gain_lower_t", "gain_upper_t", "gain_mean_t",
                        "p_beats_status_quo", *HOLDOUT_FIELDS)},
         "objective_value": (STRUCTURE, np.array([r[1].value for r in rows])),
         "cost_through_year": (STRUCTURE, np.full(len(rows), cost_through)),
         "cost_per_t_gained": (STRUCTURE, np.where(median > 0,
                                                   cost_through / np.where(median > 0, median, 1.0), np.nan)),
         "n_evaluations": (STRUCTURE, np.array([r[1].n_evaluations for r in rows])),
         "converged": (STRUCTURE, np.array([r[1].converged for r in rows])),
         "corner": (STRUCTURE, np.array([r[1].corner for r in rows])),
         "structure_weight": (STRUCTURE, np.array([weights.get(n, 1.0) for n in names]))},
        coords={STRUCTURE: names, "release_option": labels,
                "option_age_yr": ("release_option", [a for a, _ in problem.options]),
                "option_weight_g": ("release_option", [w for _, w in problem.options]),
                "option_cost_per_fish": ("release_option", cost_per_fish)})
    units = {"share": ("1", "share of the annual budget"), "fish_per_year": ("fish", "fish released a year"),
             "corner_gain_median_t": ("t", "median gain with the whole budget on this option"),
             "gain_median_t": ("t", "median gain over no_releases at the chosen shares, paired by draw"),
             "gain_lower_t": ("t", "lower bound of the gain's central interval"),
             "gain_upper_t": ("t", "upper bound of the gain's central interval"),
             "gain_mean_t": ("t", "mean gain over no_releases at the chosen shares"),
             "holdout_gain_median_t": ("t", "median gain at the chosen shares on held-out draws (not "
                                            "those the optimiser chose with)"),
             "holdout_gain_lower_t": ("t", "lower bound of the held-out gain's central interval"),
             "holdout_gain_upper_t": ("t", "upper bound of the held-out gain's central interval"),
             "holdout_gain_mean_t": ("t", "mean gain at the chosen shares on held-out draws"),
             "holdout_p_beats_status_quo": ("1", "P(the chosen split beats the status quo in the same "
                                                 "held-out draw)"),
             "holdout_p_beats_status_quo_mc_se": ("1", "Monte Carlo standard error of "
                                                       "holdout_p_beats_status_quo"),
             "objective_value": ("t", f"maximised {problem.objective} of the gain"),
             "cost_through_year": (costs.currency, f"release cost {setup.first_year}-{problem.year}"),
             "cost_per_t_gained": (f"{costs.currency} per t",
                                   "cost through the year / median gain (NaN: no gain)"),
             "n_evaluations": ("1", "projections evaluated by the optimiser"),
             "converged": ("1", "the optimiser met its tolerances (or a corner beat every start)"),
             "corner": ("1", "the whole budget on one option (an exact corner beat every start)"),
             "structure_weight": ("1", "member weight (1 for the pooled ensemble)")}
    for name, (unit, long_name) in units.items():
        ds[name].attrs.update(units=unit, long_name=long_name)
    ds.attrs.update(
        carpmodel_version=__version__, budget_per_year=problem.budget_per_year, objective=problem.objective,
        variable=problem.variable, year=problem.year, scenario=problem.scenario, interval=problem.interval,
        method=problem.method, seed=setup.seed, n_draws=setup.n_draws, currency=costs.currency,
        costs_assumed=int(costs.assumed),
        reference_strategy="no_releases (gains paired by draw, common random numbers)",
        holdout_draws=f"draws {setup.n_draws}-{2 * setup.n_draws - 1} of seed {setup.seed}: the chosen "
                      "shares evaluated on draws the optimiser did not see (holdout_*)",
        interval_note="the interval is over draws (pooled by member weight) of the gain at the chosen "
                      "shares; the spread of the members' optimal shares is the structural uncertainty of "
                      "the allocation",
        **ensemble_attrs(fits))
    return ds


def budget_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per structure (budget.csv): shares, fish per year and corner gains per option,
    the gain at the chosen shares with its interval, cost per tonne, optimiser status."""
    rows = []
    for name in ds[STRUCTURE].values:
        cell = ds.sel({STRUCTURE: name})
        row: dict[str, Any] = {"structure": str(name), "structure_weight": float(cell["structure_weight"]),
                               "scenario": ds.attrs["scenario"], "year": int(ds.attrs["year"]),
                               "budget_per_year": float(ds.attrs["budget_per_year"]),
                               "objective": ds.attrs["objective"]}
        for option in ds["release_option"].values:
            row[f"share_{option}"] = float(cell["share"].sel(release_option=option))
        for option in ds["release_option"].values:
            row[f"fish_per_year_{option}"] = float(cell["fish_per_year"].sel(release_option=option))
        for key in ("gain_median_t", "gain_lower_t", "gain_upper_t", "gain_mean_t", "objective_value",
                    "cost_through_year", "cost_per_t_gained", *HOLDOUT_FIELDS[:4]):
            row[key] = float(cell[key])
        for option in ds["release_option"].values:
            corner = cell["corner_gain_median_t"].sel(release_option=option)
            row[f"corner_gain_median_t_{option}"] = float(corner)
        row["n_evaluations"] = int(cell["n_evaluations"])
        row["converged"] = bool(cell["converged"])
        row["corner"] = bool(cell["corner"])
        if "dominant_option" in ds:
            row["p_beats_status_quo"] = float(cell["p_beats_status_quo"])
            row["holdout_p_beats_status_quo"] = float(cell["holdout_p_beats_status_quo"])
            row["holdout_p_beats_status_quo_mc_se"] = float(cell["holdout_p_beats_status_quo_mc_se"])
            row["dominant_option"] = str(cell["dominant_option"].values)
            agreement = float(ds["member_agreement"])
            row["member_agreement"] = agreement
            row["robust_across_structures"] = (None if not np.isfinite(agreement)
                                               else ds.attrs["robust_across_structures"] == "true")
        rows.append(row)
    return rows
