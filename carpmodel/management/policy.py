"""The engine-facing plan of a strategy set: release arrays, the vectorised policy, release costs.

:func:`build_plan` precomputes, once, per-strategy arrays of a
:class:`~carpmodel.management.strategies.StrategySet` over the projection years
(:class:`ReleasePlan`); :func:`build_policy` wraps them in a :class:`StrategyPolicy`, the
:class:`carpmodel.model.dynamics.Policy` of :func:`carpmodel.model.dynamics.simulate`,
vectorised over the strategy axis of the batch ``(strategy, scenario, draw)``, which hands the
compiled engine its rule as tables (:meth:`StrategyPolicy.tables`: the engine applies it inside
the kernel, every year in one call; calling the policy year by year gives the same results bit
for bit); :func:`release_cost` prices the releases that happened. What released fish then do in
the engine is :mod:`carpmodel.model.stocking`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError
from carpmodel.management.strategies import (
    CLOSURE_LAST_YEAR,
    DEFAULT_WEIGHT_G,
    BudgetReleases,
    CostModel,
    ReleaseClass,
    ReleaseComponent,
    Strategy,
    StrategySet,
)
from carpmodel.model.dynamics import PolicyTables, YearControl
from carpmodel.model.growth import length_at_weight_cm

__all__ = ["ReleasePlan", "StrategyPolicy", "build_plan", "build_policy", "component_age_max", "release_cost"]


@dataclasses.dataclass(frozen=True)
class ReleasePlan:
    """Per-strategy arrays precomputed from a strategy set for given projection years.

    A *release class* is one (age, weight) line of a strategy: one per constant, schedule or
    pulse component and one per share of a budget component; strategies with fewer classes are
    padded with empty ones (0 fish, 0 cost). Planned fish already include ``start_year`` and
    ``stop_after_year``; the biomass trigger is applied per batch member when the policy runs.

    Attributes
    ----------
    names : tuple of str (S,)
    years : ndarray of int (Y,)
    n_age : int
    class_fish : (S, C, Y) planned fish per class and year, before acute survival
    class_age_yr : (S, C) int
    class_weight_g : (S, C)
    class_cost_per_fish : (S, C) cost per fish of each class (0 for padding)
    class_labels : (S, C) tuple of str, e.g. ``"releases[0]: age 1, 10 g"``
    trigger_t : (S,) release only while the survey estimate < this (+inf: always)
    f_target_per_yr, b_trigger_t, b_limit_t, f_from_year : (S,) harvest rule (from_year +inf:
        closure continued)
    ramp : (S,) bool, whether F follows the ramp (RampHCR) or is constant from ``f_from_year``
    """

    names: tuple[str, ...]
    years: NDArray
    n_age: int
    class_fish: NDArray
    class_age_yr: NDArray
    class_weight_g: NDArray
    class_cost_per_fish: NDArray
    class_labels: tuple[tuple[str, ...], ...]
    trigger_t: NDArray
    f_target_per_yr: NDArray
    b_trigger_t: NDArray
    b_limit_t: NDArray
    f_from_year: NDArray
    ramp: NDArray

    @property
    def age_one_hot(self) -> NDArray:
        """(S, C, age) 1 where the class releases at that age."""
        return (self.class_age_yr[..., None] == np.arange(self.n_age)).astype(float)

    @property
    def planned_fish(self) -> NDArray:
        """(S, Y, age) planned fish (before the trigger), summed over classes."""
        return np.einsum("scy,sca->sya", self.class_fish, self.age_one_hot)

    @property
    def planned_total(self) -> NDArray:
        """(S, Y) planned fish summed over classes and ages."""
        return self.class_fish.sum(axis=1)

    @property
    def class_cost(self) -> NDArray:
        """(S, C, Y) planned cost per class and year."""
        return self.class_fish * self.class_cost_per_fish[..., None]

    @property
    def planned_cost(self) -> NDArray:
        """(S, Y) planned cost per year (sum over classes)."""
        return self.class_cost.sum(axis=1)


def build_plan(strategies: StrategySet | Sequence[Strategy], costs: CostModel | None, years: ArrayLike,
               n_age: int) -> ReleasePlan:
    """Precompute the per-strategy arrays of :class:`ReleasePlan` (a loop over strategies, once).

    ``costs`` defaults to the strategy set's costs. Raises ConfigError naming the strategy and
    component when an age at release is not in ``0..n_age − 1``.
    """
    if isinstance(strategies, StrategySet):
        costs = costs or strategies.costs
        strategies = strategies.strategies
    if costs is None:
        raise ConfigError("costs: expected a CostModel (no strategy set given to take it from)")
    years = np.asarray(years)
    if years.ndim != 1 or years.size == 0 or not np.issubdtype(years.dtype, np.integer):
        raise ConfigError(f"years: expected a non-empty 1-D array of integer calendar years, got {years!r}")
    per_strategy: list[list[tuple[ReleaseClass, str]]] = []
    for s in strategies:
        in_window = np.ones(years.shape, bool)
        if s.start_year is not None:
            in_window &= years >= s.start_year
        if s.stop_after_year is not None:
            in_window &= years <= s.stop_after_year
        lines = []
        for i, component in enumerate(s.releases):
            if not 0 <= component_age_max(component) < n_age:
                raise ConfigError(f"strategies.{s.name}.releases[{i}].age_yr: expected an age in "
                                  f"0..{n_age - 1} (the model's ages), got {component_age_max(component)}")
            for rc in component.classes(years, costs):
                rc = dataclasses.replace(rc, fish=np.where(in_window, rc.fish, 0.0))
                lines.append((rc, f"releases[{i}]: age {rc.age_yr}, {rc.weight_g:g} g"))
        per_strategy.append(lines)
    n_s, n_c, n_y = len(per_strategy), max([1, *(len(lines) for lines in per_strategy)]), years.size
    fish = np.zeros((n_s, n_c, n_y))
    age = np.zeros((n_s, n_c), int)
    weight = np.full((n_s, n_c), DEFAULT_WEIGHT_G)
    cost = np.zeros((n_s, n_c))
    labels = []
    for s, lines in enumerate(per_strategy):
        for c, (rc, _) in enumerate(lines):
            fish[s, c], age[s, c], weight[s, c] = rc.fish, rc.age_yr, rc.weight_g
            cost[s, c] = costs.cost_per_fish(rc.weight_g)
        labels.append(tuple(label for _, label in lines) + ("",) * (n_c - len(lines)))
    rules = np.array([s.harvest.rule() for s in strategies], dtype=float).reshape(n_s, 5)
    trigger = np.array([math.inf if s.biomass_trigger_t is None else s.biomass_trigger_t
                        for s in strategies], dtype=float)
    for array in (fish, age, weight, cost, trigger, rules):
        array.flags.writeable = False
    return ReleasePlan(names=tuple(s.name for s in strategies), years=years, n_age=int(n_age),
                       class_fish=fish, class_age_yr=age, class_weight_g=weight,
                       class_cost_per_fish=cost, class_labels=tuple(labels), trigger_t=trigger,
                       f_target_per_yr=rules[:, 0], b_trigger_t=rules[:, 1], b_limit_t=rules[:, 2],
                       f_from_year=rules[:, 3], ramp=rules[:, 4].astype(bool))


def component_age_max(component: ReleaseComponent) -> int:
    """Oldest age at release of a component."""
    if isinstance(component, BudgetReleases):
        return max(s.age_yr for s in component.shares)
    return component.age_yr


def _on_axis(values: NDArray, ndim: int, axis: int) -> NDArray:
    """Reshape ``(S, *trailing)`` so S sits at ``axis`` of ``ndim`` batch axes (ones elsewhere)."""
    shape = [1] * ndim
    shape[axis] = values.shape[0]
    return values.reshape(tuple(shape) + values.shape[1:])


#: the methods of :class:`StrategyPolicy` whose decisions :meth:`StrategyPolicy.tables` describes
_DECISION = ("__call__", "active", "f_per_yr", "release_length_cm")


class StrategyPolicy:
    """The :class:`carpmodel.model.dynamics.Policy` of a strategy set, vectorised over strategies.

    Called at the start of year index ``y`` with the previous year's survey estimate
    (shape = batch): releases ``planned[s, y, age] × active`` with
    ``active = estimate < biomass_trigger_t[s]`` (always for strategies without a trigger),
    evaluated per batch member; ``F = f_target·ramp(estimate)`` in years after
    :data:`CLOSURE_LAST_YEAR` and from the rule's ``from_year``, else 0. Release length at an age
    is the numbers-weighted mean over the strategy's classes at that age of
    ``(W/lw_a)^(1/lw_b)`` (one class per age: exactly its length). Build with :func:`build_policy`.
    """

    def __init__(self, plan: ReleasePlan, *, lw_a: ArrayLike, lw_b: ArrayLike,
                 batch_shape: tuple[int, ...], strategy_axis: int = 0) -> None:
        batch_shape = tuple(int(n) for n in batch_shape)
        ndim = len(batch_shape)
        if not -ndim <= strategy_axis < ndim:
            raise ConfigError(f"strategy_axis: expected an axis of batch_shape {batch_shape}, "
                              f"got {strategy_axis}")
        axis = strategy_axis % ndim
        if batch_shape[axis] != len(plan.names):
            raise ConfigError(f"batch_shape: expected {len(plan.names)} strategies on axis {axis}, "
                              f"got {batch_shape}")
        self.plan = plan
        self.batch_shape = batch_shape
        self.strategy_axis = axis
        lw_a, lw_b = np.asarray(lw_a, float), np.asarray(lw_b, float)
        np.broadcast_shapes(lw_a.shape, lw_b.shape, batch_shape)  # lw may vary by draw
        self._planned = plan.planned_fish                                   # (S, Y, age)
        self._class_by_age = plan.class_fish[..., None] * plan.age_one_hot[:, :, None, :]  # (S, C, Y, age)
        weight = _on_axis(plan.class_weight_g, ndim, axis)                  # (S·, C)
        self._class_length = length_at_weight_cm(weight, lw_a[..., None], lw_b[..., None])
        self._fallback_length = length_at_weight_cm(DEFAULT_WEIGHT_G, lw_a, lw_b)[..., None]
        self._trigger = _on_axis(plan.trigger_t, ndim, axis)
        self._f_target = _on_axis(plan.f_target_per_yr, ndim, axis)
        self._b_limit = _on_axis(np.where(plan.ramp, plan.b_limit_t, 0.0), ndim, axis)
        self._b_span = _on_axis(np.where(plan.ramp, plan.b_trigger_t - plan.b_limit_t, 1.0), ndim, axis)
        self._ramp = _on_axis(plan.ramp, ndim, axis)
        self._from_year = _on_axis(plan.f_from_year, ndim, axis)
        self._tables: PolicyTables | None = None

    def active(self, survey_estimate_t: ArrayLike) -> NDArray:
        """(batch) bool: releases happen (no trigger, or estimate below the trigger)."""
        estimate = np.broadcast_to(np.asarray(survey_estimate_t, float), self.batch_shape)
        return np.isinf(self._trigger) | (estimate < self._trigger)

    def f_per_yr(self, year_index: int, survey_estimate_t: ArrayLike) -> NDArray:
        """(batch) F of the harvest rules in that year, from the survey estimate."""
        year = float(self.plan.years[year_index])
        estimate = np.broadcast_to(np.asarray(survey_estimate_t, float), self.batch_shape)
        fraction = np.where(self._ramp, np.clip((estimate - self._b_limit) / self._b_span, 0.0, 1.0), 1.0)
        fishing = (year > CLOSURE_LAST_YEAR) & (year >= self._from_year)
        return np.broadcast_to(np.where(fishing, self._f_target * fraction, 0.0), self.batch_shape)

    def release_length_cm(self, year_index: int) -> NDArray:
        """(batch, age) numbers-weighted mean release length at each age in that year."""
        return np.broadcast_to(self._release_length(year_index), self.batch_shape + (self.plan.n_age,))

    def _release_length(self, year_index: int) -> NDArray:
        """:meth:`release_length_cm` before broadcasting: (S·, age), with axes of length 1 where
        the lengths do not vary (every axis but the strategies' unless lw varies)."""
        ndim = len(self.batch_shape)
        by_age = _on_axis(self._class_by_age[:, :, year_index, :], ndim, self.strategy_axis)  # (S·, C, age)
        total = by_age.sum(axis=-2)
        weighted = np.sum(self._class_length[..., None] * by_age, axis=-2)
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), self._fallback_length)

    def tables(self) -> PolicyTables | None:
        """The rule as the compiled engine's tables (:class:`carpmodel.model.dynamics.PolicyTables`):
        :func:`carpmodel.model.dynamics.simulate` then runs every year in one kernel call, with the
        results of calling this policy year by year bit for bit. One release program per
        combination of the batch axes the planned fish and release lengths vary along (the
        strategies; also the draws where the length–weight coefficients vary by draw). None for
        a policy that decides otherwise (a subclass, or an instance, with its own version of a
        decision method: ``__call__``, ``active``, ``f_per_yr``, ``release_length_cm``): it is
        then called year by year (a subclass that describes its own rule as tables overrides this
        method without calling it). Computed once per policy."""
        if any(getattr(type(self), name) is not getattr(StrategyPolicy, name) or name in vars(self)
               for name in _DECISION):
            return None
        if getattr(self, "_tables", None) is None:
            self._tables = self._build_tables()
        return self._tables

    def _build_tables(self) -> PolicyTables:
        """:meth:`tables`, computed."""
        ndim, axis = len(self.batch_shape), self.strategy_axis
        years = self.plan.years
        lengths = np.stack([self._release_length(y) for y in range(years.size)], axis=-2)  # (S·, Y, age)
        fish = _on_axis(self._planned, ndim, axis)                                         # (S·, Y, age)
        shape = np.broadcast_shapes(fish.shape[:-2], lengths.shape[:-2])
        n_programs = int(np.prod(shape, dtype=np.int64))
        tail = (years.size, self.plan.n_age)
        fishing_from = np.maximum(self.plan.f_from_year, CLOSURE_LAST_YEAR + 1)   # F in years > closure
        return PolicyTables(
            years=years, trigger_t=self._trigger, f_target_per_yr=self._f_target, b_limit_t=self._b_limit,
            b_span_t=self._b_span, ramp=self._ramp, fishing_from_year=_on_axis(fishing_from, ndim, axis),
            program=np.arange(n_programs).reshape(shape),
            release_fish=np.broadcast_to(fish, shape + tail).reshape((n_programs,) + tail),
            release_length_cm=np.broadcast_to(lengths, shape + tail).reshape((n_programs,) + tail))

    def __call__(self, year_index: int, survey_estimate_t: ArrayLike) -> YearControl:
        ndim = len(self.batch_shape)
        planned = _on_axis(self._planned[:, year_index, :], ndim, self.strategy_axis)  # (S·, age)
        fish = planned * self.active(survey_estimate_t)[..., None]
        return YearControl(release_fish=np.broadcast_to(fish, self.batch_shape + (self.plan.n_age,)),
                           release_length_cm=self.release_length_cm(year_index),
                           f_per_yr=self.f_per_yr(year_index, survey_estimate_t))


def build_policy(strategies: StrategySet | Sequence[Strategy], costs: CostModel | None, years: ArrayLike,
                 n_age: int, lw_a: ArrayLike, lw_b: ArrayLike, batch_shape: tuple[int, ...],
                 strategy_axis: int = 0) -> StrategyPolicy:
    """The policy of a strategy set for :func:`carpmodel.model.dynamics.simulate`.

    Parameters
    ----------
    strategies : StrategySet or sequence of Strategy (S strategies, in coordinate order)
    costs : CostModel or None (None: the set's costs; needed for budget components)
    years : (Y,) int, calendar year of each projection year index
    n_age : int, the model's number of ages (``params.n_age``)
    lw_a, lw_b : length–weight coefficients, scalars or arrays broadcasting to ``batch_shape``
    batch_shape : the engine's batch, e.g. ``(S, n_scenario, n_draw)``
    strategy_axis : the axis of ``batch_shape`` that holds the strategies
    """
    return StrategyPolicy(build_plan(strategies, costs, years, n_age), lw_a=lw_a, lw_b=lw_b,
                          batch_shape=batch_shape, strategy_axis=strategy_axis)


def release_cost(plan: ReleasePlan | StrategyPolicy, released_fish: Any, *, by_class: bool = False) -> Any:
    """Cost of the releases that happened, per batch member and year.

    ``cost[s, …, y] = Σ_classes fish × cost_per_fish(weight) × released[s, …, y]/planned[s, y]``:
    the planned cost scaled by the fraction of the plan released (0 or 1, as a trigger switches a
    whole strategy-year), so a year switched off costs 0. ``released_fish`` must hold the
    policy's releases only (the engine's ``released_fish`` when no other releases are passed).

    Parameters
    ----------
    plan : ReleasePlan or StrategyPolicy
    released_fish : array (S, …, Y) or xarray.DataArray with dims ``strategy`` and ``year``
    by_class : bool
        Return the cost of each release class, shape ``(S, …, C, Y)`` (dim ``release_class``);
        summed over that axis it equals the total.

    Returns
    -------
    ndarray shaped like ``released_fish`` (plus the class axis; float32 for float32 releases,
    else float64), or a DataArray named ``cost``
    with dims ``(strategy, …, [release_class,] year)`` and the input's coordinates. Units are
    the cost model's ``currency``.
    """
    plan = plan.plan if isinstance(plan, StrategyPolicy) else plan
    if _is_dataarray(released_fish):
        return _release_cost_dataarray(plan, released_fish, by_class)
    released = np.asarray(released_fish)
    # float32 releases (a float32 projection) give float32 costs: ~7 significant digits, no
    # float64 copy of a (strategy, scenario, draw, year) array; anything else is float64
    dtype = released.dtype if released.dtype in (np.float32, np.float64) else np.dtype(float)
    released = released.astype(dtype, copy=False)
    n_s, n_y = len(plan.names), plan.years.size
    if released.ndim < 2 or released.shape[0] != n_s or released.shape[-1] != n_y:
        raise ConfigError(f"released_fish: expected shape ({n_s}, …, {n_y}) (strategy first, year last), "
                          f"got {released.shape}")
    middle = released.ndim - 2
    planned = plan.planned_total.reshape((n_s,) + (1,) * middle + (n_y,)).astype(dtype)
    fraction = np.divide(released, planned,
                         out=np.zeros(np.broadcast_shapes(released.shape, planned.shape), dtype),
                         where=planned > 0)
    if by_class:
        class_cost = plan.class_cost.reshape((n_s,) + (1,) * middle + plan.class_cost.shape[1:]).astype(dtype)
        return class_cost * fraction[..., None, :]
    fraction *= plan.planned_cost.reshape(planned.shape).astype(dtype)
    return fraction


def _is_dataarray(value: Any) -> bool:
    return type(value).__name__ == "DataArray" and hasattr(value, "dims")


def _release_cost_dataarray(plan: ReleasePlan, released: Any, by_class: bool) -> Any:
    import xarray as xr

    for dim in ("strategy", "year"):
        if dim not in released.dims:
            raise ConfigError(f"released_fish: expected a dimension {dim!r}, got dims {released.dims}")
    if "strategy" in released.coords and tuple(map(str, released["strategy"].values)) != plan.names:
        raise ConfigError(f"released_fish: expected strategies {plan.names} in that order, "
                          f"got {tuple(released['strategy'].values)}")
    if "year" in released.coords and not np.array_equal(released["year"].values, plan.years):
        raise ConfigError("released_fish: expected the years of the plan "
                          f"({plan.years[0]}..{plan.years[-1]}), got others")
    ordered = released.transpose("strategy", ..., "year")
    values = release_cost(plan, ordered.values, by_class=by_class)
    dims = ordered.dims[:-1] + (("release_class",) if by_class else ()) + ("year",)
    out = xr.DataArray(values, dims=dims, coords=ordered.coords, name="cost")
    if by_class:
        out = out.assign_coords(release_class=np.arange(values.shape[-2]))
    return out
