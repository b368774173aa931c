"""Natural-scale parameters of the population model.

Every field is a float or an array; arrays broadcast against each other and define the
engine's leading batch axes (one fit, a batch of gradient perturbations, or draws of a
projection all run through the same :func:`carpmodel.model.dynamics.simulate`).
The integer that shapes the arrays (``max_age_yr``) and the stock–recruit form are not batched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from carpmodel.errors import ConfigError
from carpmodel.model.recruitment import RecruitmentForm

#: fields that are structural (not batched) and must be plain Python values
STRUCTURAL_FIELDS = ("max_age_yr", "recruitment")
#: fields a life_history.toml may leave out (the dataclass default applies: the size-independent
#: acute release survival of carpmodel 0.1)
OPTIONAL_FIELDS = ("release_survival_size_slope", "release_reference_weight_g")


class HasValues(Protocol):
    """Anything that returns a life-history value by name (e.g. inputs.LifeHistory)."""

    def value(self, name: str) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Parameters:
    """Population-model parameters on their natural scale (units in each comment)."""

    r0: Any                      # unfished recruitment (fish reaching age 1 per year), fish/yr
    max_egg_survival: Any        # density-independent survival egg -> age 1 (recruits per egg at low density)
    l_inf_cm: Any                # von Bertalanffy L∞, cm
    k_per_yr: Any                # von Bertalanffy K, 1/yr
    hatch_time_yr: Any           # time of hatching as a fraction of the calendar year (0.45: mid-June)
    hatch_length_cm: Any         # length at hatching, cm
    lw_a: Any                    # weight-length coefficient, g/cm^b
    lw_b: Any                    # weight-length exponent
    maturity_l50_cm: Any         # length at 50 % maturity, cm
    maturity_slope_cm: Any       # logistic scale of the maturity ogive, cm
    fecundity_eggs_per_g: Any    # eggs per gram of female body weight
    female_fraction: Any         # fraction of spawners that are female
    m_ref_per_yr: Any            # natural mortality at the reference length, 1/yr
    m_ref_length_cm: Any         # Lorenzen reference length, cm
    lorenzen_c: Any              # Lorenzen exponent c (0 = constant M)
    dd_strength: Any             # juvenile density dependence γ (extra mortality factor at unfished density)
    dd_window_end_age_yr: Any    # last age inside the density-dependence window (integer-valued)
    release_survival: Any        # acute post-release survival at release_reference_weight_g, proportion
    relative_reproductive_success: Any  # hatchery-origin spawner RRS, proportion
    selectivity_l50_cm: Any      # fishery logistic selectivity L50, cm
    selectivity_slope_cm: Any    # fishery logistic scale, cm
    survey_l50_cm: Any           # hydroacoustic survey logistic selectivity L50, cm
    survey_slope_cm: Any         # hydroacoustic survey logistic scale, cm
    f_max_per_yr: Any = 3.0      # cap on F solved from catch, 1/yr
    initial_f_per_yr: Any = 0.0  # F of an equilibrium initial state (or the age-structure shape), 1/yr
    survey_q: Any = 1.0          # survey catchability
    sigma_r: Any = 0.6           # SD of recruitment deviations (logit of egg survival)
    max_age_yr: int = 25         # plus-group age A
    recruitment: RecruitmentForm = "beverton_holt"
    release_survival_size_slope: Any = 0.0   # β of logit s(W) = logit s_ref + β·log(W/W_ref), 1
    release_reference_weight_g: Any = 10.0   # W_ref, the release weight at which s = release_survival, g

    def __post_init__(self) -> None:
        self._validate(tuple(f.name for f in fields(self)))

    def _validate(self, names: tuple[str, ...]) -> None:
        """Check the fields ``names`` (and the rules that involve them); store numeric fields as
        read-only float arrays."""
        if "recruitment" in names and self.recruitment not in ("beverton_holt", "ricker"):
            raise ConfigError(
                f"recruitment: expected 'beverton_holt' or 'ricker', got {self.recruitment!r}")
        if "max_age_yr" in names and (int(self.max_age_yr) != self.max_age_yr or self.max_age_yr < 3):
            raise ConfigError(f"max_age_yr: expected an integer >= 3, got {self.max_age_yr!r}")
        for name in names:
            if name in STRUCTURAL_FIELDS:
                continue
            value = np.array(getattr(self, name), dtype=float)
            if not np.all(np.isfinite(value)):
                raise ConfigError(f"{name}: expected finite values, got {value!r}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        survival = self.max_egg_survival
        if "max_egg_survival" in names and (np.any(survival <= 0) or np.any(survival >= 1)):
            raise ConfigError(f"max_egg_survival: expected values in (0, 1), got {survival!r}")
        window = self.dd_window_end_age_yr
        window_checked = "dd_window_end_age_yr" in names or "max_age_yr" in names
        if window_checked and (np.any(window != np.round(window)) or np.any(window < 1)
                               or np.any(window >= self.max_age_yr)):
            raise ConfigError(
                f"dd_window_end_age_yr: expected integers in 1..{self.max_age_yr - 1} (wild fish "
                f"join at age 1), got {window!r}")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Broadcast shape of all batched fields."""
        return np.broadcast_shapes(*(getattr(self, f.name).shape for f in fields(self)
                                     if f.name not in STRUCTURAL_FIELDS))

    @property
    def n_age(self) -> int:
        """Number of age classes, 0..A."""
        return int(self.max_age_yr) + 1

    def replace(self, **changes: Any) -> Parameters:
        """A copy with some fields changed (like ``dataclasses.replace``); only the changed fields
        are checked again (the others were checked when this instance was made)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"Parameters has no field {', '.join(unknown)}")
        new = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(new, name, value)
        new._validate(tuple(changes))
        return new

    @classmethod
    def from_life_history(cls, life_history: HasValues, *, r0: float,
                          recruitment: RecruitmentForm = "beverton_holt") -> Parameters:
        """Default parameters from a data directory's life_history.toml, with a given R0."""
        names = [f.name for f in fields(cls) if f.name not in ("r0", "recruitment")]
        # optional entries (OPTIONAL_LIFE_HISTORY) absent from a data directory keep their defaults
        values: dict[str, Any] = {name: life_history.value(name) for name in names
                                  if name in life_history or name not in OPTIONAL_FIELDS}
        values["max_age_yr"] = int(values["max_age_yr"])
        return cls(r0=r0, recruitment=recruitment, **values)
