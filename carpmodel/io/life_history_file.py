"""``life_history.toml``: what each parameter must hold (unit, plausible range), the typed
values with their sources and priors, and the reader whose errors name file, line and key."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from carpmodel.errors import DataError
from carpmodel.io.plausibility import check_prior_support
from carpmodel.io.tables import InvalidCell, TomlWhere, confidence_cell, load_toml, source_cell
from carpmodel.priors import Prior


@dataclass(frozen=True)
class ParameterSpec:
    """What ``life_history.toml`` must hold for one parameter: unit and plausible range."""

    unit: str
    description: str
    lower: float
    upper: float
    lower_closed: bool = False
    upper_closed: bool = True
    integer: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the plausible range."""
        above = value >= self.lower if self.lower_closed else value > self.lower
        below = value <= self.upper if self.upper_closed else value < self.upper
        return above and below

    def interval(self) -> str:
        """The range written as an interval, e.g. ``(0.2, 1]``."""
        left = "[" if self.lower_closed else "("
        right = "]" if self.upper_closed else ")"
        return f"{left}{self.lower:g}, {self.upper:g}{right}"


def _p(unit: str, description: str, lower: float, upper: float, *, closed: str = "(]",
       integer: bool = False) -> ParameterSpec:
    return ParameterSpec(unit, description, lower, upper, closed[0] == "[", closed[1] == "]",
                         integer)


#: Required life-history parameters: unit and plausible range (values outside are refused).
LIFE_HISTORY_PARAMETERS: Mapping[str, ParameterSpec] = MappingProxyType(
    {
        "max_age_yr": _p("yr", "plus-group age A", 2, 80, closed="[]", integer=True),
        "l_inf_cm": _p("cm", "von Bertalanffy asymptotic length", 0, 200),
        "k_per_yr": _p("1/yr", "von Bertalanffy K", 0, 2),
        "hatch_time_yr": _p("yr", "time of hatching as a fraction of the year", 0, 1, closed="()"),
        "hatch_length_cm": _p("cm", "length at hatching", 0, 20),
        "lw_a": _p("g/cm^b", "weight-length coefficient a", 0, 1),
        "lw_b": _p("1", "weight-length exponent b", 2, 4, closed="[]"),
        "maturity_l50_cm": _p("cm", "length at 50 % maturity", 0, 200),
        "maturity_slope_cm": _p("cm", "maturity logistic scale", 0, 100),
        "fecundity_eggs_per_g": _p("eggs/g", "relative fecundity", 0, 1e6),
        "female_fraction": _p("1", "fraction female", 0, 1, closed="[]"),
        "m_ref_per_yr": _p("1/yr", "natural mortality at reference length", 0, 5),
        "m_ref_length_cm": _p("cm", "Lorenzen reference length", 0, 200),
        "lorenzen_c": _p("1", "Lorenzen exponent c", 0, 3, closed="[]"),
        "max_egg_survival": _p("1", "egg-to-recruit survival at low density", 0, 0.05),
        "unfished_biomass_t": _p("t", "unfished biomass B0", 0, 1e8),
        "sigma_r": _p("1", "SD of log recruitment deviations", 0, 5),
        "dd_strength": _p("1", "juvenile density-dependence strength", 0, 1e3, closed="[]"),
        "dd_window_end_age_yr": _p("yr", "last age of the density-dependence window", 1, 80,
                                   closed="[]", integer=True),
        "release_survival": _p("1", "acute post-release survival", 0, 1, closed="[]"),
        "relative_reproductive_success": _p("1", "hatchery spawner RRS", 0, 2, closed="[]"),
        "selectivity_l50_cm": _p("cm", "fishery selectivity L50", 0, 200),
        "selectivity_slope_cm": _p("cm", "fishery selectivity scale", 0, 100),
        "survey_l50_cm": _p("cm", "survey selectivity L50", 0, 200),
        "survey_slope_cm": _p("cm", "survey selectivity scale", 0, 100),
        "net_mode_cm": _p("cm", "net sample selectivity mode", 0, 200),
        "net_width_cm": _p("cm", "net sample selectivity SD", 0, 100),
        "length_cv": _p("1", "CV of length within an age class", 0, 1),
        "sigma_survey": _p("1", "survey log-scale SD", 0, 5),
        "initial_depletion": _p("1", "biomass of the first model year over its unfished level", 0, 1),
        "survey_q": _p("1", "survey catchability", 0, 10),
        "f_max_per_yr": _p("1/yr", "cap on fishing mortality", 0, 20),
        "initial_f_per_yr": _p("1/yr", "fishing mortality of the initial state", 0, 10,
                               closed="[]"),
        "release_survival_size_slope": _p("1", "slope of logit acute release survival on log release weight",
                                          -10, 10, closed="[]"),
        "release_reference_weight_g": _p("g", "release weight at which acute survival is release_survival",
                                         0, 1e4),
    }
)
#: life-history parameters a data directory may leave out: the engine's default applies (the
#: size-independent acute release survival of carpmodel 0.1), with a note
OPTIONAL_LIFE_HISTORY_PARAMETERS = ("release_survival_size_slope", "release_reference_weight_g")

_LIFE_HISTORY_FIELDS = (
    "value", "unit", "source_id", "confidence", "assumption", "reasoning", "prior",
    "alternatives",
)
_LIFE_HISTORY_REQUIRED_FIELDS = ("value", "unit", "source_id", "confidence")


@dataclass(frozen=True)
class LifeHistoryValue:
    """One life-history value with its unit and provenance.

    ``assumption`` is True when the value is the modeller's choice (then ``reasoning`` says
    why); ``prior`` is the prior used when the parameter is estimated or varied.
    """

    name: str
    value: float
    unit: str
    source_id: str
    confidence: str
    assumption: bool = False
    reasoning: str = ""
    prior: Prior | None = None
    alternatives: str = ""


@dataclass(frozen=True)
class LifeHistory(Mapping[str, LifeHistoryValue]):
    """Life-history values by name (a read-only mapping name → :class:`LifeHistoryValue`)."""

    path: Path
    entries: Mapping[str, LifeHistoryValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

    def __getitem__(self, name: str) -> LifeHistoryValue:
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(
                f"unknown life-history parameter {name!r}; valid: {', '.join(self.entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def value(self, name: str) -> float:
        """Return the value of parameter ``name`` in its unit (see ``self[name].unit``)."""
        return self[name].value

    def integer(self, name: str) -> int:
        """Return an integer-valued parameter (ages such as ``max_age_yr``) as int."""
        return int(self[name].value)


# --------------------------------------------------------------------------- TOML reading


def read_life_history(path: Path, raw: bytes, sources: frozenset[str], sources_path: Path
                       ) -> LifeHistory:
    text, document = load_toml(path, raw)
    where = TomlWhere(path, text)
    valid = ", ".join(LIFE_HISTORY_PARAMETERS)
    for name, table in document.items():
        if name not in LIFE_HISTORY_PARAMETERS:
            raise DataError(f"{where(name)}: unknown parameter {name!r}; valid parameters: {valid}")
        if not isinstance(table, dict):
            raise DataError(
                f"{where(name)}: expected a table with keys {', '.join(_LIFE_HISTORY_FIELDS)}, "
                f"got {table!r}"
            )
    missing = [name for name in LIFE_HISTORY_PARAMETERS
               if name not in document and name not in OPTIONAL_LIFE_HISTORY_PARAMETERS]
    if missing:
        raise DataError(
            f"{path}, key {missing[0]}: missing parameter(s) {', '.join(missing)}; "
            f"required parameters: {valid}"
        )
    values = {
        name: _life_history_value(name, document[name], where, sources, sources_path)
        for name in LIFE_HISTORY_PARAMETERS if name in document
    }
    check_life_history_consistency(values, where)
    return LifeHistory(path, values)


def _life_history_value(
    name: str,
    table: Mapping[str, Any],
    where: TomlWhere,
    sources: frozenset[str],
    sources_path: Path,
) -> LifeHistoryValue:
    spec = LIFE_HISTORY_PARAMETERS[name]
    for key in table:
        if key not in _LIFE_HISTORY_FIELDS:
            raise DataError(
                f"{where(name, key)}: unknown key {key!r}; valid keys: "
                f"{', '.join(_LIFE_HISTORY_FIELDS)}"
            )
    for key in _LIFE_HISTORY_REQUIRED_FIELDS:
        if key not in table:
            raise DataError(
                f"{where(name)}: missing key {name}.{key}; every parameter needs "
                f"{', '.join(_LIFE_HISTORY_REQUIRED_FIELDS)}"
            )
    value = table["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where(name, 'value')}: expected a finite number, got {value!r}")
    if spec.integer and not float(value).is_integer():
        raise DataError(f"{where(name, 'value')}: expected an integer number of years, "
                        f"got {value!r}")
    if not spec.contains(value):
        raise DataError(
            f"{where(name, 'value')}: expected {spec.description} in {spec.interval()}"
            f"{'' if spec.unit == '1' else ' ' + spec.unit}, got {value!r}"
        )
    unit = table["unit"]
    if unit != spec.unit:
        raise DataError(f"{where(name, 'unit')}: expected unit {spec.unit!r}, got {unit!r}")
    checks = {"source_id": source_cell(sources, sources_path), "confidence": confidence_cell}
    for key, check in checks.items():
        try:
            check(table[key] if isinstance(table[key], str) else "")
        except InvalidCell as exc:
            raise DataError(f"{where(name, key)}: expected {exc}, got {table[key]!r}") from None
    source_id = table["source_id"]
    assumption = table.get("assumption", False)
    if not isinstance(assumption, bool):
        raise DataError(f"{where(name, 'assumption')}: expected true or false, got {assumption!r}")
    reasoning = table.get("reasoning", "")
    alternatives = table.get("alternatives", "")
    for key, text in (("reasoning", reasoning), ("alternatives", alternatives)):
        if not isinstance(text, str):
            raise DataError(f"{where(name, key)}: expected a string, got {text!r}")
    if assumption and not reasoning.strip():
        raise DataError(
            f"{where(name, 'assumption')}: assumption = true needs a non-empty "
            f"{name}.reasoning saying why, got none"
        )
    prior = None
    if "prior" in table:
        prior = Prior.from_mapping(table["prior"], where(name, "prior"), error=DataError)
        check_prior_support(float(value), prior, spec, where(name, "value"), where(name, "prior"))
    return LifeHistoryValue(name, float(value), unit, source_id, table["confidence"],
                            assumption, reasoning, prior, alternatives)


def check_life_history_consistency(
    values: Mapping[str, LifeHistoryValue], where: TomlWhere
) -> None:
    max_age_yr = values["max_age_yr"].value
    for name in ("dd_window_end_age_yr",):
        if values[name].value >= max_age_yr:
            raise DataError(
                f"{where(name, 'value')}: expected an age < max_age_yr ({max_age_yr:g}), "
                f"got {values[name].value:g}"
            )
    l_inf_cm = values["l_inf_cm"].value
    if values["hatch_length_cm"].value >= l_inf_cm:
        raise DataError(
            f"{where('hatch_length_cm', 'value')}: expected a length below l_inf_cm "
            f"({l_inf_cm:g}), got {values['hatch_length_cm'].value:g}"
        )
