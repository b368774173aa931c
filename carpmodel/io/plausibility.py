"""Physical plausibility bounds: values that parse but cannot be meant.

Also the plausibility checks of a data directory that span files or priors
(:func:`check_release_weights`, :func:`check_prior_support`, :func:`plausibility_notes`).

A value beyond its hard bound is refused where it is read (a :class:`~carpmodel.errors.DataError`
for data files, a :class:`~carpmodel.errors.ConfigError` for configs and strategies files),
with the bound and its reason in the message; a value beyond the softer ``note_above`` is legal
but suspicious and gives a ``carpmodel: note:`` line instead. The README's "Commands" section
lists these bounds (keep them in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from carpmodel.errors import DataError

__all__ = ["BOUNDS", "PRIOR_TAIL", "Bound", "asymptotic_weight_g", "bound", "check_prior_support",
           "check_release_weights", "describe_prior", "plausibility_notes"]


@dataclass(frozen=True)
class Bound:
    """Upper bound of one kind of quantity (the lower bounds are the readers' own, e.g. > 0)."""

    unit: str
    upper: float
    reason: str
    note_above: float | None = None
    note_reason: str = ""

    def problem(self, value: float) -> str | None:
        """What a message says after ``expected …`` when ``value`` is above the bound, else None."""
        if value > self.upper:
            unit = f" {self.unit}" if self.unit != "1" else ""
            return f"at most {self.upper:g}{unit} ({self.reason}), got {value:g}"
        return None

    def suspicious(self, value: float) -> bool:
        """Whether ``value`` is legal but above ``note_above``."""
        return self.note_above is not None and self.upper >= value > self.note_above


#: Bounds by quantity. Reasons are what the message says; the numbers are deliberately far
#: beyond anything real, so that they catch typing errors (a missing decimal point, a value in
#: the wrong unit), not surprises.
BOUNDS = MappingProxyType({
    "biomass_t": Bound("t", 1e7, "ten million tonnes is more fish than any lake holds; Lake Victoria's whole "
                       "fish stock is a few million tonnes"),
    "catch_t": Bound("t", 1e6, "a million tonnes a year is more than any lake fishery lands; Lake Victoria, "
                     "the largest, lands about one million tonnes of all species"),
    "biomass_cv": Bound("1", 3.0, "a lognormal SD above 3 means the survey is uncertain by a factor of 20 at "
                        "one "
                        "SD and carries no information; was it written in percent (0.5 for 50 %)?",
                        note_above=1.0, note_reason="a CV above 1 gives the survey almost no weight"),
    "fish_released": Bound("fish", 1e10, "ten billion fish a year is twice what all Pacific salmon "
                           "hatcheries "
                           "release together", note_above=1e9,
                           note_reason="more than a billion fish a year is 50 times the largest release "
                                       "recorded at Qinghai Lake"),
    "release_weight_g": Bound("g", 10000.0, "no hatchery releases fish heavier than 10 kg"),
    "numbers_fish": Bound("fish", 1e12, "a trillion fish would not fit in any lake"),
    "fish_examined": Bound("fish", 1e7, "ten million fish a year is about 2 % of the lake's 555 million fish "
                           "(2022), far beyond any sampling programme"),
    "length_cm": Bound("cm", 200.0, "longer than any cyprinid"),
    "weight_g": Bound("g", 1e5, "heavier than any cyprinid"),
    "f_per_yr": Bound("1/yr", 10.0, "F = 10/yr removes 99.995 % of the fish in a year"),
    "sd_log": Bound("1", 5.0, "an SD of the log above 5 spans more than four orders of magnitude at one SD"),
    "cv_multiplier": Bound("1", 20.0, "more than 20 times the assumed CVs makes every survey uninformative"),
    "warming_c": Bound("degC", 10.0, "10 degC of lake warming by 2100 is twice the most extreme SSP "
                       "scenario"),
})


def bound(quantity: str) -> Bound:
    """The :class:`Bound` of ``quantity`` (a key of :data:`BOUNDS`)."""
    return BOUNDS[quantity]


# --------------------------------------------------------------------------- data directories


#: a life-history value beyond these quantiles of its prior is legal but noted
PRIOR_TAIL = 1e-4


def asymptotic_weight_g(life: Any) -> float:
    """``lw_a · l_inf_cm ** lw_b`` of a life history (g): no fish of the model grows heavier."""
    return float(life.value("lw_a") * life.value("l_inf_cm") ** life.value("lw_b"))


def describe_prior(prior: Any) -> str:
    """``beta mean 0.7, sd 0.15``."""
    return prior.distribution + " " + ", ".join(f"{k} {v:g}" for k, v in prior.parameters.items())


def check_prior_support(value: float, prior: Any, spec: Any, where_value: str, where_prior: str) -> None:
    """DataError unless ``value`` lies where ``prior`` has density and a uniform prior lies inside
    the plausible range of the parameter (``spec``, an :class:`~carpmodel.io.inputs.ParameterSpec`)."""
    if not np.isfinite(prior.logpdf(value)):
        raise DataError(f"{where_value}: expected a value inside the support of its prior "
                        f"({describe_prior(prior)}): the fit could never reach it, got {value!r}")
    if prior.distribution == "uniform":
        lower, upper = prior.parameters["lower"], prior.parameters["upper"]
        if lower < spec.lower or upper > spec.upper:
            raise DataError(f"{where_prior}: expected a uniform prior inside the plausible range "
                            f"of {spec.description} {spec.interval()}, got {lower:g}..{upper:g}")


def check_release_weights(releases: Any, life: Any) -> None:
    """DataError naming the row of a release heavier than the asymptotic weight of ``life``."""
    w_inf = asymptotic_weight_g(life)
    heavy = np.flatnonzero(releases.weight_at_release_g > w_inf)
    if heavy.size:
        i = int(heavy[0])
        raise DataError(f"{releases.path}, year {releases.year[i]}, age {releases.age_at_release_yr[i]}, "
                        f"column weight_at_release_g: expected at most the asymptotic weight {w_inf:,.0f} g "
                        f"(lw_a x l_inf_cm^lw_b of {life.path}: no fish grows heavier), "
                        f"got {releases.weight_at_release_g[i]:g}")


def plausibility_notes(data: Any) -> list[str]:
    """Note sentences for legal but suspicious values of a loaded data directory: survey CVs
    above 1, releases above a billion fish a year, life-history values beyond the
    :data:`PRIOR_TAIL` quantiles of their prior."""
    notes = []
    cv_bound, fish_bound = bound("biomass_cv"), bound("fish_released")
    b, r = data.biomass, data.releases
    for year, cv in zip(b.year, b.cv, strict=True):
        if cv_bound.suspicious(cv):
            notes.append(f"{b.path}, year {year}: cv {cv:g} > {cv_bound.note_above:g}: "
                         f"{cv_bound.note_reason}")
    for year, age, fish in zip(r.year, r.age_at_release_yr, r.fish_released, strict=True):
        if fish_bound.suspicious(fish):
            notes.append(f"{r.path}, year {year}, age {age}: {fish:g} fish released > "
                         f"{fish_bound.note_above:g}: {fish_bound.note_reason}")
    for entry in data.life_history.values():
        if entry.prior is None:
            continue
        low, high = (float(q) for q in entry.prior.ppf([PRIOR_TAIL, 1 - PRIOR_TAIL]))
        if not low <= entry.value <= high:
            side = "below" if entry.value < low else "above"
            notes.append(f"{data.life_history.path}, key {entry.name}.value: {entry.value:g} is {side} the "
                         f"{PRIOR_TAIL:g} tail of its prior ({describe_prior(entry.prior)}): legal, but the "
                         f"prior says it is nearly impossible")
    return notes
