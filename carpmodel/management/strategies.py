"""Release strategies, declared: what to release, when, under which harvest rule, and at what cost.

A :class:`Strategy` is a declarative, comparable unit (release components, a biomass trigger,
start and stop years, a harvest rule after the closure); a :class:`StrategySet` holds the
strategies to compare with their :class:`CostModel`. This module only declares and validates
them; elsewhere:

* :mod:`carpmodel.io.strategies_file` reads them from a strategies TOML file (the file's keys
  are documented there; the bundled file is ``carpmodel/management/default_strategies.toml``);
* :mod:`carpmodel.management.policy` turns a strategy set into the arrays and the policy that
  :func:`carpmodel.model.dynamics.simulate` applies each year (inside the compiled kernel), and
  prices releases;
* :mod:`carpmodel.management.budget` asks how best to spend a release budget;
* :mod:`carpmodel.model.stocking` is what happens to released fish in the engine (entry, acute
  survival, release length; Lorenzen 2005).

Decision timing: the policy is applied at the start of projection year index ``y`` with the
*simulated survey estimate* of the previous year's biomass (true biomass × q × exp(survey
error)), never the true biomass, so triggers and harvest rules act on what a manager could
know, one year late. The lake is closed to fishing through :data:`CLOSURE_LAST_YEAR` (2030):
F is 0 in those years whatever the harvest rule, and a rule cannot start earlier.

Every strategy set must contain :data:`REFERENCE_STRATEGY` (``no_releases``, releasing
nothing): gains are measured against it, paired by draw.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError

__all__ = [
    "CLOSURE_LAST_YEAR",
    "DEFAULT_AGE_YR",
    "DEFAULT_WEIGHT_G",
    "FIRST_HARVEST_YEAR",
    "HARVEST_TYPES",
    "REFERENCE_STRATEGY",
    "RELEASE_TYPES",
    "SHARE_SUM_TOLERANCE",
    "BudgetReleases",
    "BudgetShare",
    "ClosureContinued",
    "ConstantF",
    "ConstantReleases",
    "CostModel",
    "Harvest",
    "PulseReleases",
    "RampHCR",
    "ReleaseClass",
    "ReleaseComponent",
    "ScheduledReleases",
    "Strategy",
    "StrategySet",
    "calendar_year",
    "finite_at_least",
    "integer_in",
]

#: Last calendar year of the current fishing closure (closed since 2001; current term ends 31 Dec 2030).
CLOSURE_LAST_YEAR = 2030
#: First year a harvest rule may act.
FIRST_HARVEST_YEAR = CLOSURE_LAST_YEAR + 1
#: The strategy gains are measured against; every strategy set must hold it, releasing nothing.
REFERENCE_STRATEGY = "no_releases"
#: Current release size (data/releases_historical.csv, 2016–2024: age 1, 10 g).
DEFAULT_AGE_YR, DEFAULT_WEIGHT_G = 1, 10.0
#: Shares of a budget must sum to 1 within this (softmax shares sum to 1 within ~1e-15).
SHARE_SUM_TOLERANCE = 1e-6
YEAR_MIN, YEAR_MAX = 1900, 2200
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


# --------------------------------------------------------------------------- validation helpers


def finite_at_least(name: str, value: Any, lower: float, *, strict: bool = False) -> float:
    """``value`` as a float if it is finite and ``>= lower`` (``> lower`` when ``strict``), else
    a ConfigError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < lower or (
            strict and number == lower):
        relation = ">" if strict else ">="
        raise ConfigError(f"{name}: expected a finite number {relation} {lower:g}, got {value!r}")
    return number


def integer_in(name: str, value: Any, lower: int, upper: int) -> int:
    """``value`` as an int if it is an integer in ``lower..upper``, else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lower <= value <= upper:
        raise ConfigError(f"{name}: expected an integer in {lower}..{upper}, got {value!r}")
    return int(value)


def calendar_year(name: str, value: Any) -> int:
    """``value`` as a calendar year in ``YEAR_MIN..YEAR_MAX``, else a ConfigError naming ``name``."""
    return integer_in(name, value, YEAR_MIN, YEAR_MAX)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------- release components


@dataclass(frozen=True)
class ReleaseClass:
    """One (age, weight) line of a component, with its planned fish per projection year."""

    age_yr: int
    weight_g: float
    fish: NDArray  # (year,), fish before acute survival


@dataclass(frozen=True)
class ConstantReleases:
    """The same number of fish every year (before acute survival), at one age and weight."""

    fish_per_year: float
    age_yr: int = DEFAULT_AGE_YR
    weight_g: float = DEFAULT_WEIGHT_G

    def __post_init__(self) -> None:
        _set(self, "fish_per_year", finite_at_least("fish_per_year", self.fish_per_year, 0.0))
        _set(self, "age_yr", integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

    def classes(self, years: NDArray, costs: CostModel) -> list[ReleaseClass]:
        return [ReleaseClass(self.age_yr, self.weight_g, np.full(years.shape, self.fish_per_year))]


@dataclass(frozen=True)
class ScheduledReleases:
    """Fish released in listed calendar years only (years outside the projection are ignored).

    In TOML: ``fish_by_year = { 2025 = 2e7, 2026 = 1.5e7 }``.
    """

    fish_by_year: Mapping[int, float]
    age_yr: int = DEFAULT_AGE_YR
    weight_g: float = DEFAULT_WEIGHT_G

    def __post_init__(self) -> None:
        if not isinstance(self.fish_by_year, Mapping) or not self.fish_by_year:
            raise ConfigError(f"fish_by_year: expected a non-empty table year = fish, "
                              f"got {self.fish_by_year!r}")
        schedule = {}
        for key, fish in self.fish_by_year.items():
            year = int(key) if isinstance(key, str) and re.fullmatch(r"\d{1,4}", key) else key
            year = calendar_year(f"fish_by_year.{key}", year)
            schedule[year] = finite_at_least(f"fish_by_year.{key}", fish, 0.0)
        _set(self, "fish_by_year", MappingProxyType(dict(sorted(schedule.items()))))
        _set(self, "age_yr", integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

    def classes(self, years: NDArray, costs: CostModel) -> list[ReleaseClass]:
        fish = np.array([self.fish_by_year.get(int(y), 0.0) for y in years], dtype=float)
        return [ReleaseClass(self.age_yr, self.weight_g, fish)]


@dataclass(frozen=True)
class PulseReleases:
    """``fish_per_pulse`` fish in ``first_year``, ``first_year + every_years``, … and none between."""

    fish_per_pulse: float
    every_years: int
    first_year: int
    age_yr: int = DEFAULT_AGE_YR
    weight_g: float = DEFAULT_WEIGHT_G

    def __post_init__(self) -> None:
        _set(self, "fish_per_pulse", finite_at_least("fish_per_pulse", self.fish_per_pulse, 0.0))
        _set(self, "every_years", integer_in("every_years", self.every_years, 1, 1000))
        _set(self, "first_year", calendar_year("first_year", self.first_year))
        _set(self, "age_yr", integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

    def classes(self, years: NDArray, costs: CostModel) -> list[ReleaseClass]:
        offset = years - self.first_year
        pulse = (offset >= 0) & (offset % self.every_years == 0)
        return [ReleaseClass(self.age_yr, self.weight_g, np.where(pulse, self.fish_per_pulse, 0.0))]


@dataclass(frozen=True)
class BudgetShare:
    """One release size of a budget: age, weight and the share of the budget spent on it."""

    age_yr: int
    weight_g: float
    share: float

    def __post_init__(self) -> None:
        _set(self, "age_yr", integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", finite_at_least("weight_g", self.weight_g, 0.0, strict=True))
        share = finite_at_least("share", self.share, 0.0)
        if share > 1.0:
            raise ConfigError(f"share: expected a fraction in 0..1, got {self.share!r}")
        _set(self, "share", share)


@dataclass(frozen=True)
class BudgetReleases:
    """Spend ``budget_per_year`` (cost units) every year, split by ``shares`` over release sizes.

    Fish of size i per year = budget × share_i / cost_per_fish(weight_i), with the strategy
    set's :class:`CostModel`; so replacing the costs changes the numbers released, not the
    spending. ``shares`` are :class:`BudgetShare` or plain ``(age_yr, weight_g, share)`` tuples
    and must sum to 1. In TOML: ``shares = [{ age_yr = 1, weight_g = 10.0, share = 0.5 }, …]``.
    """

    budget_per_year: float
    shares: tuple[BudgetShare, ...]

    def __post_init__(self) -> None:
        _set(self, "budget_per_year", finite_at_least("budget_per_year", self.budget_per_year, 0.0))
        if isinstance(self.shares, BudgetShare) or not isinstance(self.shares, Sequence) or not self.shares:
            raise ConfigError(f"shares: expected a non-empty array of (age_yr, weight_g, share), "
                              f"got {self.shares!r}")
        shares = []
        for i, item in enumerate(self.shares):
            if isinstance(item, BudgetShare):
                shares.append(item)
                continue
            if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 3:
                raise ConfigError(f"shares[{i}]: expected (age_yr, weight_g, share), got {item!r}")
            try:
                shares.append(BudgetShare(*item))
            except ConfigError as exc:
                raise ConfigError(f"shares[{i}].{exc}") from None
        total = sum(s.share for s in shares)
        if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
            raise ConfigError(f"shares: expected shares summing to 1, got a sum of {total!r}")
        _set(self, "shares", tuple(shares))

    def classes(self, years: NDArray, costs: CostModel) -> list[ReleaseClass]:
        return [ReleaseClass(s.age_yr, s.weight_g, np.full(
            years.shape, self.budget_per_year * s.share / float(costs.cost_per_fish(s.weight_g))))
            for s in self.shares]


ReleaseComponent = ConstantReleases | ScheduledReleases | PulseReleases | BudgetReleases
#: TOML ``type`` of each release component.
RELEASE_TYPES: dict[str, type] = {"constant": ConstantReleases, "schedule": ScheduledReleases,
                                  "pulse": PulseReleases, "budget": BudgetReleases}


# --------------------------------------------------------------------------- harvest after the closure


@dataclass(frozen=True)
class ClosureContinued:
    """No fishing: the closure is renewed through the whole projection."""

    def rule(self) -> tuple[float, float, float, float, bool]:
        """(f_target, b_trigger, b_limit, from_year, uses_ramp) of the vectorised policy."""
        return 0.0, 0.0, 0.0, math.inf, False


@dataclass(frozen=True)
class ConstantF:
    """Constant fully selected F (1/yr) from ``from_year`` (>= 2031, after the closure)."""

    f_per_yr: float
    from_year: int = FIRST_HARVEST_YEAR

    def __post_init__(self) -> None:
        _set(self, "f_per_yr", finite_at_least("f_per_yr", self.f_per_yr, 0.0))
        _set(self, "from_year", integer_in("from_year", self.from_year, FIRST_HARVEST_YEAR, YEAR_MAX))

    def rule(self) -> tuple[float, float, float, float, bool]:
        return self.f_per_yr, 0.0, 0.0, float(self.from_year), False


@dataclass(frozen=True)
class RampHCR:
    """Hockey-stick harvest control rule on the survey estimate, from ``from_year`` (>= 2031).

    ``F = 0`` for ``B <= b_limit_t``, ``F = f_target·(B − b_limit)/(b_trigger − b_limit)``
    between, ``F = f_target`` for ``B >= b_trigger_t``; B is the survey estimate the policy sees.
    """

    f_target_per_yr: float
    b_trigger_t: float
    b_limit_t: float
    from_year: int = FIRST_HARVEST_YEAR

    def __post_init__(self) -> None:
        _set(self, "f_target_per_yr", finite_at_least("f_target_per_yr", self.f_target_per_yr, 0.0))
        _set(self, "b_limit_t", finite_at_least("b_limit_t", self.b_limit_t, 0.0))
        _set(self, "b_trigger_t", finite_at_least("b_trigger_t", self.b_trigger_t, 0.0))
        if self.b_trigger_t <= self.b_limit_t:
            raise ConfigError(f"b_trigger_t: expected a value > b_limit_t ({self.b_limit_t:g}), "
                              f"got {self.b_trigger_t!r}")
        _set(self, "from_year", integer_in("from_year", self.from_year, FIRST_HARVEST_YEAR, YEAR_MAX))

    def rule(self) -> tuple[float, float, float, float, bool]:
        return self.f_target_per_yr, self.b_trigger_t, self.b_limit_t, float(self.from_year), True


Harvest = ClosureContinued | ConstantF | RampHCR
#: TOML ``type`` of each harvest rule.
HARVEST_TYPES: dict[str, type] = {"closure": ClosureContinued, "constant_f": ConstantF,
                                  "ramp_hcr": RampHCR}


# --------------------------------------------------------------------------- strategies and costs


@dataclass(frozen=True)
class Strategy:
    """A release strategy: components, modifiers and the harvest rule after the closure.

    Attributes
    ----------
    name : str
        Letters, digits, ``_`` and ``-`` (it labels the ``strategy`` coordinate and CSV rows).
    releases : tuple of release components
        :class:`ConstantReleases`, :class:`ScheduledReleases`, :class:`PulseReleases`,
        :class:`BudgetReleases`; their fish add up. Empty: no releases.
    harvest : ClosureContinued, ConstantF or RampHCR
        Fishing after the closure (F = 0 through 2030 whatever the rule).
    biomass_trigger_t : float or None
        Release only in years when the survey estimate the policy sees is *below* this (t).
    stop_after_year, start_year : int or None
        Release only in years ``start_year <= year <= stop_after_year``.
    description : str
        One line for tables and reports.
    """

    name: str
    releases: tuple[ReleaseComponent, ...] = ()
    harvest: Harvest = field(default_factory=ClosureContinued)
    _: KW_ONLY
    biomass_trigger_t: float | None = None
    stop_after_year: int | None = None
    start_year: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"name: expected letters, digits, '_' or '-', got {self.name!r}")
        releases = (self.releases,) if isinstance(self.releases, tuple(RELEASE_TYPES.values())) \
            else tuple(self.releases)
        for i, component in enumerate(releases):
            if not isinstance(component, tuple(RELEASE_TYPES.values())):
                raise ConfigError(f"releases[{i}]: expected a release component "
                                  f"({', '.join(c.__name__ for c in RELEASE_TYPES.values())}), "
                                  f"got {component!r}")
        _set(self, "releases", releases)
        if not isinstance(self.harvest, tuple(HARVEST_TYPES.values())):
            raise ConfigError(f"harvest: expected ClosureContinued, ConstantF or RampHCR, "
                              f"got {self.harvest!r}")
        if self.biomass_trigger_t is not None:
            _set(self, "biomass_trigger_t",
                 finite_at_least("biomass_trigger_t", self.biomass_trigger_t, 0.0, strict=True))
        for name in ("stop_after_year", "start_year"):
            if getattr(self, name) is not None:
                calendar_year(name, getattr(self, name))
        if self.start_year is not None and self.stop_after_year is not None and (
                self.start_year > self.stop_after_year):
            raise ConfigError(f"start_year: expected a year <= stop_after_year ({self.stop_after_year}), "
                              f"got {self.start_year}")
        if not isinstance(self.description, str):
            raise ConfigError(f"description: expected a string, got {self.description!r}")


@dataclass(frozen=True)
class CostModel:
    """Cost of producing and releasing one fish, as a function of its weight.

    ``cost_per_fish(w)`` interpolates the table linearly in (log weight, log cost) between the
    given points and is flat beyond them (one point: the same cost for every size).

    Attributes
    ----------
    cost_per_fish_by_weight : Mapping[float, float]
        Weight at release (g) → cost per fish released (``currency``), both > 0.
    currency : str
        Unit of the costs (e.g. ``"relative units (1 = one 10-g fish)"`` or ``"CNY"``).
    assumed : bool
        True when the costs are illustrative assumptions rather than hatchery accounts.
    source : str
        Where the numbers come from.
    reasoning : str
        Why these numbers (for assumed costs).
    """

    cost_per_fish_by_weight: Mapping[float, float]
    currency: str
    assumed: bool
    source: str
    reasoning: str = ""

    def __post_init__(self) -> None:
        table = self.cost_per_fish_by_weight
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"cost_per_fish_by_weight: expected a non-empty table weight_g = cost, "
                              f"got {table!r}")
        points = {}
        for key, cost in table.items():
            try:
                weight = float(key)
            except (TypeError, ValueError):
                weight = math.nan
            if not math.isfinite(weight) or weight <= 0:
                raise ConfigError(f"cost_per_fish_by_weight.{key}: expected a positive weight in g as the "
                                  f"key, got {key!r}")
            points[weight] = finite_at_least(f"cost_per_fish_by_weight.{key}", cost, 0.0, strict=True)
        _set(self, "cost_per_fish_by_weight", MappingProxyType(dict(sorted(points.items()))))
        for name in ("currency", "source", "reasoning"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if not isinstance(self.assumed, bool):
            raise ConfigError(f"assumed: expected true or false, got {self.assumed!r}")

    def cost_per_fish(self, weight_g: ArrayLike) -> NDArray[np.float64]:
        """Cost of one fish of ``weight_g`` (log–log linear between points, flat beyond)."""
        log_w = np.log(np.fromiter(self.cost_per_fish_by_weight.keys(), float))
        log_c = np.log(np.fromiter(self.cost_per_fish_by_weight.values(), float))
        return np.exp(np.interp(np.log(np.asarray(weight_g, dtype=float)), log_w, log_c))


@dataclass(frozen=True)
class StrategySet:
    """Strategies to compare (unique names, :data:`REFERENCE_STRATEGY` among them) and their costs.

    ``notes`` records what was not taken from the file (e.g. costs from the bundled file);
    ``budget`` is the file's ``[budget]`` question, if any: a
    :class:`carpmodel.management.budget.BudgetProblem` (typed ``Any`` here because the budget
    module builds on this one, never the reverse).
    """

    strategies: tuple[Strategy, ...]
    costs: CostModel
    notes: tuple[str, ...] = ()
    budget: Any = None

    def __post_init__(self) -> None:
        _set(self, "strategies", tuple(self.strategies))
        names = [s.name for s in self.strategies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"strategies: expected unique names, got {', '.join(duplicates)} "
                              f"more than once")
        if REFERENCE_STRATEGY not in names:
            raise ConfigError(f"strategies.{REFERENCE_STRATEGY}: missing; the reference strategy for gains "
                              f"(no releases) must be defined")
        if self[REFERENCE_STRATEGY].releases:
            raise ConfigError(f"strategies.{REFERENCE_STRATEGY}.releases: expected no releases in the "
                              f"reference strategy, got {len(self[REFERENCE_STRATEGY].releases)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strategies)

    def __getitem__(self, name: str) -> Strategy:
        for strategy in self.strategies:
            if strategy.name == name:
                return strategy
        raise KeyError(name)
