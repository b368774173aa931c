"""Release strategies: what to release, when, under which harvest rule, and at what cost.

A :class:`Strategy` is a declarative, comparable unit (release components, a biomass trigger,
start and stop years, a harvest rule after the closure); :func:`build_policy` turns a set of
strategies into one :class:`StrategyPolicy` that :func:`carpmodel.model.dynamics.simulate` calls inside
its year loop, vectorised over the strategy axis of the batch ``(strategy, scenario, draw)``.

Release biology as the engine implements it
--------------------------------------------
(:mod:`carpmodel.model.dynamics`, following Lorenzen 2005, "Population dynamics and potential of
fisheries stock enhancement", Phil. Trans. R. Soc. B 360:171–189.)

* **Entry.** Released fish are counted *before* acute post-release survival: of ``n`` fish
  released, ``n·s_rel`` enter the hatchery origin (``s_rel`` = ``release_survival``, one value
  for every release size — the engine has no size-dependent acute survival) at their age at
  release, in summer: after that year's spawning and wild recruitment, so a released fish never
  spawns in its release year. Their length is the release length ``L_rel = (W/α)^(1/β)`` from
  the release weight through the length–weight relation (:func:`carpmodel.model.growth.length_at_weight_cm`);
  hatchery fish already at that age are merged with them at the numbers-weighted mean length
  (the hatchery origin is one pool per age), and so are two release classes of one strategy at
  the same age but different weights (see :class:`StrategyPolicy`).
* **Size-dependent mortality.** From then on they die at the Lorenzen rate
  ``M(L) = M_ref·(L/L_ref)^−c`` integrated over the year along their own von Bertalanffy growth
  path, so a release cohort keeps its size advantage and larger fish survive better. At the
  bundled life history (M_ref 0.2/yr at 30 cm, c = 1, α = 0.012, β = 3) a 10-g fish (9.4 cm)
  has M ≈ 0.53/yr in its first year, a 50-g fish (16.1 cm) ≈ 0.34/yr, a wild age-1 fish
  (3.4 cm) ≈ 1.1/yr.
* **Shared density dependence.** While inside the juvenile window (ages ``0..w``,
  ``dd_window_end_age_yr``) hatchery fish add to the abundance ``J`` of wild plus hatchery
  juveniles that drives the extra mortality ``M_dd = ln(1 + γ·J/J0)`` of *every* fish in the
  window: releases into the window lower the survival of wild juveniles too, so part of what
  they add is taken back from wild recruits (replacement). Fish released older than ``w`` escape
  it and add, at a higher cost per fish. How much is added and how much replaced is set by γ
  and w (parameters with priors), never fixed by this module.
* **Spawning.** Mature hatchery fish spawn with relative reproductive success ρ
  (``relative_reproductive_success``): spawning output ``S = Σ (N_w + ρ·N_h)·W·mat``; their
  offspring are wild-origin recruits.
* **Harvest.** ``Z = M(L) + M_dd + F·sel(L)``; fishing takes hatchery and wild fish alike.

Decision timing: the policy is called at the start of projection year index ``y`` with the
*simulated survey estimate* of the previous year's biomass (true biomass × q × exp(survey
error)), never the true biomass, so triggers and harvest rules act on what a manager could
know, one year late. The lake is closed to fishing through :data:`CLOSURE_LAST_YEAR` (2030):
F is 0 in those years whatever the harvest rule, and a rule cannot start earlier.

Strategies file (TOML; the bundled one is ``carpmodel/management/default_strategies.toml``, named
``"default"`` in a run config)::

    [strategies.status_quo]
    description = "20 M age-1 10-g fish a year; closure continued"

    [[strategies.status_quo.releases]]
    type = "constant"               # "constant" | "schedule" | "pulse" | "budget"
    fish_per_year = 20_000_000.0
    age_yr = 1
    weight_g = 10.0

    [strategies.status_quo.harvest]
    type = "closure"                # "closure" | "constant_f" | "ramp_hcr"

    [costs]
    cost_per_fish_by_weight = { 10 = 1.0, 50 = 3.09 }
    currency = "relative units"
    assumed = true
    source = "..."

    [budget]                        # optional: the question of the budget optimiser
    budget_per_year = 20_000_000.0  # cost units a year
    options = [{ age_yr = 1, weight_g = 10.0 }, { age_yr = 2, weight_g = 50.0 }]
    objective = "median_gain"       # "median_gain" | "mean_gain" | "lower_gain"
    variable = "biomass_t"          # "biomass_t" | "ssb_t"
    year = 2050
    scenario = "ssp245"

Every strategy set must contain :data:`REFERENCE_STRATEGY` (``no_releases``, releasing
nothing): gains are measured against it, paired by draw.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import scipy.optimize
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError
from carpmodel.io.config import from_mapping, read_toml
from carpmodel.model.dynamics import YearControl
from carpmodel.model.growth import length_at_weight_cm

__all__ = [
    "CLOSURE_LAST_YEAR",
    "DEFAULT_STRATEGIES_FILE",
    "HARVEST_TYPES",
    "REFERENCE_STRATEGY",
    "RELEASE_TYPES",
    "BudgetReleases",
    "BudgetProblem",
    "BudgetResult",
    "BudgetShare",
    "ClosureContinued",
    "ConstantF",
    "ConstantReleases",
    "CostModel",
    "PulseReleases",
    "RampHCR",
    "ReleasePlan",
    "ScheduledReleases",
    "Strategy",
    "StrategyPolicy",
    "StrategySet",
    "budget_strategy",
    "build_plan",
    "build_policy",
    "load_budget",
    "load_costs",
    "load_strategies",
    "optimise_budget",
    "release_cost",
    "softmax_shares",
]

#: Last calendar year of the current fishing closure (closed since 2001; current term ends 31 Dec 2030).
CLOSURE_LAST_YEAR = 2030
#: First year a harvest rule may act.
FIRST_HARVEST_YEAR = CLOSURE_LAST_YEAR + 1
#: The strategy gains are measured against; every strategy set must hold it, releasing nothing.
REFERENCE_STRATEGY = "no_releases"
#: The bundled strategies (and illustrative costs), package data of carpmodel.management.
DEFAULT_STRATEGIES_FILE = Path(str(resources.files("carpmodel.management") / "default_strategies.toml"))
#: Current release size (data/releases_historical.csv, 2016–2024: age 1, 10 g).
DEFAULT_AGE_YR, DEFAULT_WEIGHT_G = 1, 10.0
#: Shares of a budget must sum to 1 within this (softmax shares sum to 1 within ~1e-15).
SHARE_SUM_TOLERANCE = 1e-6
YEAR_MIN, YEAR_MAX = 1900, 2200
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


# --------------------------------------------------------------------------- validation helpers


def _finite_at_least(name: str, value: Any, lower: float, *, strict: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < lower or (
            strict and number == lower):
        relation = ">" if strict else ">="
        raise ConfigError(f"{name}: expected a finite number {relation} {lower:g}, got {value!r}")
    return number


def _integer_in(name: str, value: Any, lower: int, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lower <= value <= upper:
        raise ConfigError(f"{name}: expected an integer in {lower}..{upper}, got {value!r}")
    return int(value)


def _year(name: str, value: Any) -> int:
    return _integer_in(name, value, YEAR_MIN, YEAR_MAX)


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
        _set(self, "fish_per_year", _finite_at_least("fish_per_year", self.fish_per_year, 0.0))
        _set(self, "age_yr", _integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", _finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

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
            year = _year(f"fish_by_year.{key}", year)
            schedule[year] = _finite_at_least(f"fish_by_year.{key}", fish, 0.0)
        _set(self, "fish_by_year", MappingProxyType(dict(sorted(schedule.items()))))
        _set(self, "age_yr", _integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", _finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

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
        _set(self, "fish_per_pulse", _finite_at_least("fish_per_pulse", self.fish_per_pulse, 0.0))
        _set(self, "every_years", _integer_in("every_years", self.every_years, 1, 1000))
        _set(self, "first_year", _year("first_year", self.first_year))
        _set(self, "age_yr", _integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", _finite_at_least("weight_g", self.weight_g, 0.0, strict=True))

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
        _set(self, "age_yr", _integer_in("age_yr", self.age_yr, 0, 200))
        _set(self, "weight_g", _finite_at_least("weight_g", self.weight_g, 0.0, strict=True))
        share = _finite_at_least("share", self.share, 0.0)
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
        _set(self, "budget_per_year", _finite_at_least("budget_per_year", self.budget_per_year, 0.0))
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
        _set(self, "f_per_yr", _finite_at_least("f_per_yr", self.f_per_yr, 0.0))
        _set(self, "from_year", _integer_in("from_year", self.from_year, FIRST_HARVEST_YEAR, YEAR_MAX))

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
        _set(self, "f_target_per_yr", _finite_at_least("f_target_per_yr", self.f_target_per_yr, 0.0))
        _set(self, "b_limit_t", _finite_at_least("b_limit_t", self.b_limit_t, 0.0))
        _set(self, "b_trigger_t", _finite_at_least("b_trigger_t", self.b_trigger_t, 0.0))
        if self.b_trigger_t <= self.b_limit_t:
            raise ConfigError(f"b_trigger_t: expected a value > b_limit_t ({self.b_limit_t:g}), "
                              f"got {self.b_trigger_t!r}")
        _set(self, "from_year", _integer_in("from_year", self.from_year, FIRST_HARVEST_YEAR, YEAR_MAX))

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
                 _finite_at_least("biomass_trigger_t", self.biomass_trigger_t, 0.0, strict=True))
        for name in ("stop_after_year", "start_year"):
            if getattr(self, name) is not None:
                _year(name, getattr(self, name))
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
            points[weight] = _finite_at_least(f"cost_per_fish_by_weight.{key}", cost, 0.0, strict=True)
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
        _set(self, "budget_per_year", _finite_at_least("budget_per_year", self.budget_per_year, 0.0,
                                                       strict=True))
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
            options.append((_integer_in(f"options[{i}].age_yr", item[0], 0, 200),
                            _finite_at_least(f"options[{i}].weight_g", item[1], 0.0, strict=True)))
        if len(set(options)) != len(options):
            raise ConfigError(f"options: expected distinct (age_yr, weight_g) pairs, got {options}")
        _set(self, "options", tuple(options))
        if self.objective not in BUDGET_OBJECTIVES:
            raise ConfigError(f"objective: expected one of {', '.join(BUDGET_OBJECTIVES)}, "
                              f"got {self.objective!r}")
        if self.variable not in ("biomass_t", "ssb_t"):
            raise ConfigError(f"variable: expected 'biomass_t' or 'ssb_t', got {self.variable!r}")
        _set(self, "year", _year("year", self.year))
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ConfigError(f"scenario: expected a scenario name, got {self.scenario!r}")
        interval = _finite_at_least("interval", self.interval, 0.0, strict=True)
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


@dataclass(frozen=True)
class StrategySet:
    """Strategies to compare (unique names, :data:`REFERENCE_STRATEGY` among them) and their costs.

    ``notes`` records what was not taken from the file (e.g. costs from the bundled file);
    ``budget`` is the file's ``[budget]`` question, if any (:class:`BudgetProblem`).
    """

    strategies: tuple[Strategy, ...]
    costs: CostModel
    notes: tuple[str, ...] = ()
    budget: BudgetProblem | None = None

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


# --------------------------------------------------------------------------- TOML


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, "strategies file")


def _check_keys(table: Any, valid: Sequence[str], where: str, key: str) -> Mapping[str, Any]:
    """Refuse keys not in ``valid`` (``key`` is the table's dotted key, "" for the top level)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}, key {key or '(top level)'}: expected a table, got {table!r}")
    for name in table:
        if name not in valid:
            listing = f"valid keys in [{key}]" if key else "valid top-level keys"
            raise ConfigError(f"{where}, key {f'{key}.{name}' if key else name}: unknown key; {listing}: "
                              f"{', '.join(valid)}")
    return table


def _typed(table: Any, types: Mapping[str, type], where: str, key: str) -> Any:
    """Build the dataclass named by the table's ``type`` key (fields checked by from_mapping)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}, key {key}: expected a table, got {table!r}")
    choices = ", ".join(repr(t) for t in types)
    if "type" not in table:
        raise ConfigError(f"{where}, key {key}.type: missing; expected one of {choices}")
    kind = table["type"]
    if not isinstance(kind, str) or kind not in types:
        raise ConfigError(f"{where}, key {key}.type: expected one of {choices}, got {kind!r}")
    cls = types[kind]
    _check_keys(table, ("type", *(f.name for f in dataclasses.fields(cls))), where, key)
    return from_mapping(cls, {k: v for k, v in table.items() if k != "type"}, where, prefix=key)


@dataclass(frozen=True)
class _StrategyOptions:
    """Scalar keys of a ``[strategies.NAME]`` table (types checked by from_mapping)."""

    description: str = ""
    biomass_trigger_t: float | None = None
    stop_after_year: int | None = None
    start_year: int | None = None


_STRATEGY_KEYS = ("description", "releases", "harvest", "biomass_trigger_t", "stop_after_year", "start_year")


def _strategy(name: str, table: Any, where: str) -> Strategy:
    key = f"strategies.{name}"
    table = _check_keys(table, _STRATEGY_KEYS, where, key)
    scalars = {k: v for k, v in table.items() if k not in ("releases", "harvest")}
    options = from_mapping(_StrategyOptions, scalars, where, prefix=key)
    raw_releases = table.get("releases", [])
    if not isinstance(raw_releases, list):
        raise ConfigError(f"{where}, key {key}.releases: expected an array of tables "
                          f"([[{key}.releases]]), got {raw_releases!r}")
    releases = tuple(_typed(item, RELEASE_TYPES, where, f"{key}.releases[{i}]")
                     for i, item in enumerate(raw_releases))
    harvest = (_typed(table["harvest"], HARVEST_TYPES, where, f"{key}.harvest")
               if "harvest" in table else ClosureContinued())
    try:
        return Strategy(name, releases, harvest, **dataclasses.asdict(options))
    except ConfigError as exc:
        raise ConfigError(f"{where}, key {key}.{exc}") from None


def load_costs(path: str | Path) -> CostModel:
    """Read the ``[costs]`` table of a TOML file (a strategies file or a costs-only file)."""
    path = Path(path)
    document = _read_toml(path)
    if "costs" not in document:
        raise ConfigError(f"{path}, key costs: missing; expected a [costs] table")
    return from_mapping(CostModel, document["costs"], str(path), prefix="costs")


def _budget(table: Any, where: str) -> BudgetProblem:
    _check_keys(table, tuple(f.name for f in dataclasses.fields(BudgetProblem)), where, "budget")
    if "budget_per_year" not in table:
        raise ConfigError(f"{where}, key budget.budget_per_year: missing; expected the annual budget "
                          f"(cost units)")
    try:
        return BudgetProblem(**table)
    except ConfigError as exc:
        raise ConfigError(f"{where}, key budget.{exc}") from None


def load_budget(path: str | Path) -> BudgetProblem | None:
    """The ``[budget]`` table of a strategies file (None when it has none)."""
    path = Path(path)
    document = _read_toml(path)
    return _budget(document["budget"], str(path)) if "budget" in document else None


def load_strategies(path: str | Path, *, costs: CostModel | None = None) -> StrategySet:
    """Read a strategies TOML file into a :class:`StrategySet` (strategies in file order).

    Parameters
    ----------
    path : path
        TOML with ``[strategies.NAME]`` tables (and optionally ``[costs]`` and ``[budget]``).
    costs : CostModel, optional
        Replaces the file's ``[costs]``. Neither given: the bundled illustrative costs of
        :data:`DEFAULT_STRATEGIES_FILE`, recorded in ``StrategySet.notes``.

    Raises
    ------
    ConfigError
        Missing/unreadable file, invalid TOML, unknown key or ``type``, wrong value, duplicate
        name or no ``no_releases`` strategy; the message names the file and the dotted key.
    """
    path = Path(path)
    where = str(path)
    document = _check_keys(_read_toml(path), ("strategies", "costs", "budget"), where, "")
    notes: list[str] = []
    if costs is None:
        if "costs" in document:
            costs = from_mapping(CostModel, document["costs"], where, prefix="costs")
        else:
            costs = load_costs(DEFAULT_STRATEGIES_FILE)
            notes.append(f"{path} has no [costs]: release costs are the bundled illustrative costs of "
                         f"{DEFAULT_STRATEGIES_FILE} ({costs.currency}, assumed = {costs.assumed}).")
    elif "costs" in document:
        notes.append(f"the [costs] of {path} were replaced by user-supplied costs ({costs.currency}).")
    if "strategies" not in document:
        raise ConfigError(f"{where}, key strategies: missing; expected [strategies.NAME] tables, "
                          f"including [strategies.{REFERENCE_STRATEGY}]")
    tables = document["strategies"]
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}, key strategies: expected a table of strategies, got {tables!r}")
    strategies = tuple(_strategy(name, table, where) for name, table in tables.items())
    budget = _budget(document["budget"], where) if "budget" in document else None
    try:
        return StrategySet(strategies, costs, tuple(notes), budget)
    except ConfigError as exc:
        raise ConfigError(f"{where}, key {exc}") from None


# --------------------------------------------------------------------------- vectorised plan and policy


@dataclass(frozen=True)
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
        ndim = len(self.batch_shape)
        by_age = _on_axis(self._class_by_age[:, :, year_index, :], ndim, self.strategy_axis)  # (S·, C, age)
        total = by_age.sum(axis=-2)
        weighted = np.sum(self._class_length[..., None] * by_age, axis=-2)
        length = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), self._fallback_length)
        return np.broadcast_to(length, self.batch_shape + (self.plan.n_age,))

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


# --------------------------------------------------------------------------- budget optimisation


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
    n_options = _integer_in("n_options", n_options, 1, 10_000)
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
