"""Natural-scale parameters of the population model.

Every field is a float or an array; arrays broadcast against each other and define the
engine's leading batch axes (one fit, a batch of gradient perturbations, or draws of a
projection all run through the same :func:`carpmodel.model.dynamics.simulate`).
Integers that shape the arrays (``max_age_yr``, ``survey_min_age_yr``) and the stock–recruit
form are not batched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from carpmodel.errors import ConfigError
from carpmodel.model.recruitment import RecruitmentForm

#: fields that are structural (not batched) and must be plain Python values
STRUCTURAL_FIELDS = ("max_age_yr", "survey_min_age_yr", "recruitment")


class HasValues(Protocol):
    """Anything that returns a life-history value by name (e.g. inputs.LifeHistory)."""

    def value(self, name: str) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Parameters:
    """Population-model parameters on their natural scale (units in each comment)."""

    r0: Any                      # unfished age-0 recruitment, fish/yr
    steepness: Any               # stock-recruit steepness h, dimensionless
    l_inf_cm: Any                # von Bertalanffy L∞, cm
    k_per_yr: Any                # von Bertalanffy K, 1/yr
    t0_yr: Any                   # von Bertalanffy t0, yr
    hatch_length_cm: Any         # floor of body length (age-0 at hatching), cm
    lw_a: Any                    # weight-length coefficient, g/cm^b
    lw_b: Any                    # weight-length exponent
    maturity_l50_cm: Any         # length at 50 % maturity, cm
    maturity_slope_cm: Any       # logistic scale of the maturity ogive, cm
    m_ref_per_yr: Any            # natural mortality at the reference length, 1/yr
    m_ref_length_cm: Any         # Lorenzen reference length, cm
    lorenzen_c: Any              # Lorenzen exponent c (0 = constant M)
    dd_strength: Any             # juvenile density dependence γ (extra mortality factor at unfished density)
    dd_window_end_age_yr: Any    # last age inside the density-dependence window (integer-valued)
    release_survival: Any        # acute post-release survival, proportion
    relative_reproductive_success: Any  # hatchery-origin spawner RRS, proportion
    selectivity_l50_cm: Any      # fishery logistic selectivity L50, cm
    selectivity_slope_cm: Any    # fishery logistic scale, cm
    f_max_per_yr: Any = 3.0      # cap on F solved from catch, 1/yr
    initial_f_per_yr: Any = 0.0  # F of the equilibrium initial state, 1/yr
    survey_q: Any = 1.0          # survey catchability
    sigma_r: Any = 0.6           # SD of log recruitment deviations
    max_age_yr: int = 25         # plus-group age A
    survey_min_age_yr: int = 1   # youngest age the biomass survey sees
    recruitment: RecruitmentForm = "beverton_holt"

    def __post_init__(self) -> None:
        if self.recruitment not in ("beverton_holt", "ricker"):
            raise ConfigError(
                f"recruitment: expected 'beverton_holt' or 'ricker', got {self.recruitment!r}")
        if int(self.max_age_yr) != self.max_age_yr or self.max_age_yr < 3:
            raise ConfigError(f"max_age_yr: expected an integer >= 3, got {self.max_age_yr!r}")
        if not 0 <= self.survey_min_age_yr <= self.max_age_yr:
            raise ConfigError(
                f"survey_min_age_yr: expected an integer in 0..{self.max_age_yr}, "
                f"got {self.survey_min_age_yr!r}")
        for f in fields(self):
            if f.name in STRUCTURAL_FIELDS:
                continue
            value = np.array(getattr(self, f.name), dtype=float)
            if not np.all(np.isfinite(value)):
                raise ConfigError(f"{f.name}: expected finite values, got {value!r}")
            value.flags.writeable = False
            object.__setattr__(self, f.name, value)
        window = self.dd_window_end_age_yr
        if np.any(window != np.round(window)) or np.any(window < 0) or np.any(
                window >= self.max_age_yr):
            raise ConfigError(
                f"dd_window_end_age_yr: expected integers in 0..{self.max_age_yr - 1}, "
                f"got {window!r}")

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
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_life_history(cls, life_history: HasValues, *, r0: float,
                          recruitment: RecruitmentForm = "beverton_holt") -> Parameters:
        """Default parameters from a data directory's life_history.toml, with a given R0."""
        names = [f.name for f in fields(cls) if f.name not in ("r0", "recruitment")]
        values: dict[str, Any] = {name: life_history.value(name) for name in names}
        for name in ("max_age_yr", "survey_min_age_yr"):
            values[name] = int(values[name])
        return cls(r0=r0, recruitment=recruitment, **values)
