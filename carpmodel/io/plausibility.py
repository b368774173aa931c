"""Physical plausibility bounds: values that parse but cannot be meant.

A value beyond its hard bound is refused where it is read (a :class:`~carpmodel.errors.DataError`
for data files, a :class:`~carpmodel.errors.ConfigError` for configs and strategies files),
with the bound and its reason in the message; a value beyond the softer ``note_above`` is legal
but suspicious and gives a ``carpmodel: note:`` line instead. The README's "Commands" section
lists these bounds (keep them in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["BOUNDS", "Bound", "bound"]


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
