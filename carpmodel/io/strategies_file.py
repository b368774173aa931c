"""Strategies files: read a TOML file into a :class:`~carpmodel.management.strategies.StrategySet`.

Errors name the file and the dotted key (``ConfigError``, exit 2 at the CLI). The types and
their checks are :mod:`carpmodel.management.strategies` (strategies, release components,
harvest rules, costs) and :mod:`carpmodel.management.budget` (the ``[budget]`` question).

Strategies file (TOML; the bundled one, :data:`DEFAULT_STRATEGIES_FILE`, is
``carpmodel/management/default_strategies.toml``, named ``"default"`` in a run config)::

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

A release component's other keys are the fields of its type (:data:`~carpmodel.management.
strategies.RELEASE_TYPES`), a harvest rule's those of :data:`~carpmodel.management.strategies.
HARVEST_TYPES`; a strategy also takes ``biomass_trigger_t``, ``start_year`` and
``stop_after_year``. Every file must define ``[strategies.no_releases]`` with no releases.
The README's "Strategies file" section lists every key with its unit and a complete example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from carpmodel.errors import ConfigError
from carpmodel.io.config import from_mapping, read_toml
from carpmodel.io.plausibility import bound
from carpmodel.management.budget import BudgetProblem
from carpmodel.management.strategies import (
    HARVEST_TYPES,
    REFERENCE_STRATEGY,
    RELEASE_TYPES,
    ClosureContinued,
    CostModel,
    Strategy,
    StrategySet,
)

__all__ = ["DEFAULT_STRATEGIES_FILE", "load_budget", "load_costs", "load_strategies"]

#: The bundled strategies (and illustrative costs), package data of carpmodel.management.
DEFAULT_STRATEGIES_FILE = Path(str(resources.files("carpmodel.management") / "default_strategies.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, "strategies file")


#: keys a user may put inside a release or harvest table that belong to the strategy: the strategy
#: key meant (a year window, a trigger and a description apply to all of a strategy's releases)
_STRATEGY_LEVEL = {"start_year": "start_year", "first_year": "start_year", "from_year": "start_year",
                   "begin_year": "start_year", "stop_after_year": "stop_after_year",
                   "stop_year": "stop_after_year", "last_year": "stop_after_year",
                   "end_year": "stop_after_year", "until_year": "stop_after_year",
                   "biomass_trigger_t": "biomass_trigger_t", "trigger_t": "biomass_trigger_t",
                   "description": "description"}


def _check_keys(table: Any, valid: Sequence[str], where: str, key: str,
                strategy_key: str | None = None) -> Mapping[str, Any]:
    """Refuse keys not in ``valid`` (``key`` is the table's dotted key, "" for the top level).

    Inside a release or harvest table of the strategy ``strategy_key``, a key that names a
    strategy-level setting (:data:`_STRATEGY_LEVEL`) is refused with where it belongs.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}, key {key or '(top level)'}: expected a table, got {table!r}")
    for name in table:
        if name not in valid:
            listing = f"valid keys in [{key}]" if key else "valid top-level keys"
            hint = ""
            if strategy_key is not None and name in _STRATEGY_LEVEL:
                meant = _STRATEGY_LEVEL[name]
                hint = (f"; did you mean the strategy-level key {meant}? It belongs in [{strategy_key}] "
                        f"(above its [[{strategy_key}.releases]] tables) and applies to all its releases; "
                        f"strategy-level keys: {', '.join(_STRATEGY_KEYS)}")
            raise ConfigError(f"{where}, key {f'{key}.{name}' if key else name}: unknown key{hint}; "
                              f"{listing}: {', '.join(valid)}")
    return table


def _typed(table: Any, types: Mapping[str, type], where: str, key: str,
           strategy_key: str | None = None) -> Any:
    """Build the dataclass named by the table's ``type`` key (fields checked by from_mapping);
    ``strategy_key``: the strategy it belongs to (unknown keys that are its keys say so)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}, key {key}: expected a table, got {table!r}")
    choices = ", ".join(repr(t) for t in types)
    if "type" not in table:
        raise ConfigError(f"{where}, key {key}.type: missing; expected one of {choices}")
    kind = table["type"]
    if not isinstance(kind, str) or kind not in types:
        raise ConfigError(f"{where}, key {key}.type: expected one of {choices}, got {kind!r}")
    cls = types[kind]
    _check_keys(table, ("type", *(f.name for f in dataclasses.fields(cls))), where, key, strategy_key)
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
    releases = tuple(_typed(item, RELEASE_TYPES, where, f"{key}.releases[{i}]", key)
                     for i, item in enumerate(raw_releases))
    harvest = (_typed(table["harvest"], HARVEST_TYPES, where, f"{key}.harvest", key)
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
        strategy_set = StrategySet(strategies, costs, tuple(notes), budget)
    except ConfigError as exc:
        raise ConfigError(f"{where}, key {exc}") from None
    _check_plausible(strategy_set, where)
    return strategy_set


#: fields of release components and harvest rules, and the plausibility bound of each
_BOUNDED_FIELDS = {"fish_per_year": "fish_released", "fish_per_pulse": "fish_released",
                   "weight_g": "release_weight_g", "f_per_yr": "f_per_yr", "f_target_per_yr": "f_per_yr",
                   "b_trigger_t": "biomass_t", "b_limit_t": "biomass_t"}


def _check_plausible(strategy_set: StrategySet, where: str) -> None:
    """ConfigError naming the key of a value beyond its plausibility bound
    (:mod:`carpmodel.io.plausibility`); budgets are checked by the fish they buy."""
    for strategy in strategy_set.strategies:
        key = f"strategies.{strategy.name}"
        checks: list[tuple[str, str, float]] = []
        if strategy.biomass_trigger_t is not None:
            checks.append((f"{key}.biomass_trigger_t", "biomass_t", strategy.biomass_trigger_t))
        for i, component in enumerate(strategy.releases):
            prefix = f"{key}.releases[{i}]"
            for name, quantity in _BOUNDED_FIELDS.items():
                if hasattr(component, name):
                    checks.append((f"{prefix}.{name}", quantity, getattr(component, name)))
            for year, fish in getattr(component, "fish_by_year", {}).items():
                checks.append((f"{prefix}.fish_by_year.{year}", "fish_released", fish))
            for j, share in enumerate(getattr(component, "shares", ())):
                cost = float(strategy_set.costs.cost_per_fish(share.weight_g))
                fish = component.budget_per_year * share.share / cost
                checks.append((f"{prefix}.shares[{j}] (budget_per_year x share / cost per fish)",
                               "fish_released",
                               fish))
                checks.append((f"{prefix}.shares[{j}].weight_g", "release_weight_g", share.weight_g))
        for name, quantity in _BOUNDED_FIELDS.items():
            if hasattr(strategy.harvest, name):
                checks.append((f"{key}.harvest.{name}", quantity, getattr(strategy.harvest, name)))
        for dotted, quantity, value in checks:
            problem = bound(quantity).problem(float(value))
            if problem:
                raise ConfigError(f"{where}, key {dotted}: expected {problem}")
