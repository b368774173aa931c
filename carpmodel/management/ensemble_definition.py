"""What a structural ensemble is made of: the axes (density-dependence window, release-survival
prior, natural mortality, initial state), each member's :class:`Structure` and how it changes a
run config and a spec, and the :class:`EnsembleDefinition` that crosses them (the ``[ensemble]``
table). Fitting, projecting and pooling the members is :mod:`carpmodel.management.ensemble`."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from carpmodel.errors import ConfigError
from carpmodel.inference.build import CATCH_SD_LOG
from carpmodel.priors import Prior

STRUCTURE = "structure"
POOLED = "pooled"
INITIAL_STATES = ("depletion", "unfished_1956", "equilibrium_1986")
InitialState = Literal["depletion", "equilibrium_f", "unfished_1956", "equilibrium_1986"]
Progress = Callable[[str, int, int], None]
#: SD of the log catch for members that start before 2000 (experiments/01: with it the 1956 and
#: 1986 starts converge; fitted catches within 1-3 % of the record)
PRE_2000_CATCH_SD_LOG = CATCH_SD_LOG


@dataclass(frozen=True)
class MortalityStructure:
    """A natural-mortality structure: the Lorenzen exponent and/or the centre of the M_ref prior.

    Attributes
    ----------
    name : str
        Label in member names (letters, digits, ``.``, ``_``, ``-``).
    lorenzen_c : float or None
        Exponent c of ``M(L) = M_ref·(L/L_ref)^−c`` (0 = constant M); None keeps the data's.
    m_ref_prior_median_per_yr : float or None, 1/yr
        Median of the lognormal prior on M_ref (its sd_log kept) and the fit's start value;
        when M_ref is not estimated, its fixed value. None keeps the data's prior.
    """

    name: str
    lorenzen_c: float | None = None
    m_ref_prior_median_per_yr: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(
                ch.isalnum() or ch in "._-" for ch in self.name):
            raise ConfigError(f"name: expected letters, digits, '.', '_' or '-', got {self.name!r}")
        if self.lorenzen_c is not None and not (np.isfinite(self.lorenzen_c) and self.lorenzen_c >= 0):
            raise ConfigError(f"lorenzen_c: expected a finite number >= 0, got {self.lorenzen_c!r}")
        median = self.m_ref_prior_median_per_yr
        if median is not None and not (np.isfinite(median) and median > 0):
            raise ConfigError(f"m_ref_prior_median_per_yr: expected a number > 0, got {median!r}")

    def apply(self, spec: Any) -> Any:
        """A copy of a ModelSpec with this mortality structure."""
        base = spec.base if self.lorenzen_c is None else spec.base.replace(lorenzen_c=self.lorenzen_c)
        free = spec.free
        median = self.m_ref_prior_median_per_yr
        if median is not None:
            if any(f.field == "m_ref_per_yr" for f in free):
                free = tuple(dataclasses.replace(f, prior=_recentred(f.prior, median), init=median)
                             if f.field == "m_ref_per_yr" else f for f in free)
            else:
                base = base.replace(m_ref_per_yr=median)
        return dataclasses.replace(spec, base=base, free=free)


def _recentred(prior: Prior | None, median: float) -> Prior:
    sd_log = prior.parameters["sd_log"] if prior is not None and prior.distribution == "lognormal" else 0.4
    return Prior("lognormal", {"median": median, "sd_log": sd_log})


#: The default natural-mortality axis: Lorenzen exponent 1 (the base), 0 (constant M) and 1.5
#: (the upper end of the documented range).
DEFAULT_MORTALITY = (MortalityStructure("c1", lorenzen_c=1.0), MortalityStructure("c0", lorenzen_c=0.0),
                     MortalityStructure("c1.5", lorenzen_c=1.5))
#: The four axes of an ensemble, in the order of a member's name.
AXES = ("dd_windows", "release_survival_priors", "mortality", "initial_states")
Axis = Literal["dd_windows", "release_survival_priors", "mortality", "initial_states"]


@dataclass(frozen=True)
class Structure:
    """One member of the ensemble: the four structural choices, and the catch treatment.

    ``catch_sd_log`` (set by :meth:`EnsembleDefinition.members` for starts before 2000) fits
    catch as data with that lognormal SD and an F per fished year; None keeps the base config's.
    """

    dd_window_end_age_yr: int
    release_survival_prior: Literal["informative", "flat"]
    mortality: MortalityStructure
    initial_state: Literal["depletion", "equilibrium_f", "unfished_1956", "equilibrium_1986"]
    catch_sd_log: float | None = None

    @property
    def name(self) -> str:
        """e.g. ``w1_informative_c1_equilibrium_f``."""
        return (f"w{self.dd_window_end_age_yr}_{self.release_survival_prior}_{self.mortality.name}_"
                f"{self.initial_state}")

    def config(self, base: Any) -> Any:
        """``base`` (a RunConfig) with this member's window, prior and initial state, and its
        ``catch_sd_log`` when the base gives none (a catch error set in the base applies to every
        member)."""
        catch = base.fit.catch_sd_log if base.fit.catch_sd_log is not None else self.catch_sd_log
        return base.with_fit(dd_window_end_age_yr=self.dd_window_end_age_yr,
                             release_survival_prior=self.release_survival_prior,
                             initial_state=self.initial_state, catch_sd_log=catch)

    def spec(self, data: Any, base: Any) -> Any:
        """The member's ModelSpec (build_spec with its config, then its mortality structure)."""
        from carpmodel.inference.build import build_spec

        return self.mortality.apply(build_spec(data, self.config(base)))


@dataclass(frozen=True)
class EnsembleDefinition:
    """Which structures to fit and how to weight them (``[ensemble]`` of an ensemble TOML file).

    Attributes
    ----------
    dd_windows : tuple of int
        Last ages of the juvenile density-dependence window.
    release_survival_priors : tuple of {"informative", "flat"}
    mortality : tuple of MortalityStructure
    initial_states : tuple of {"depletion", "equilibrium_f", "unfished_1956", "equilibrium_1986"}
    design : {"factorial", "one_at_a_time"}
        Every combination, or the base (first value of each axis, see :meth:`members`) plus each
        alternative value on its own.
    vary_alone : tuple of axis names (``factorial`` only)
        Axes varied one at a time around the base instead of crossed with the others.
    weights : "equal" or {member name: weight}
        Weighting rule over the included (converged) members (module docstring).
    n_starts : int
        Optimisations per member fit (the main fit uses more; a member refits dozens of times).
    parameter_draws : {"normal", "posterior"}
        θ ~ N(θ̂, Σ) of each member's fit, or ``sample_posterior`` draws per member.
    posterior_samples, posterior_proposals : int
        Sizes of the per-member posterior sample (``parameter_draws = "posterior"``, and members
        included with a MAP on a bound).
    pre_2000_catch_sd_log : float
        SD of the log catch of members starting before 2000 (``unfished_1956``,
        ``equilibrium_1986``): catch as data, F per fished year estimated (module docstring).
    on_bound : {"posterior", "exclude"}
        A member whose only failed criterion is an estimate on the bound of a flat prior: include
        it with posterior draws, or exclude it (module docstring, "Inclusion rule").
    """

    dd_windows: tuple[int, ...] = (1, 2, 3)
    release_survival_priors: tuple[Literal["informative", "flat"], ...] = ("informative", "flat")
    mortality: tuple[MortalityStructure, ...] = DEFAULT_MORTALITY
    initial_states: tuple[InitialState, ...] = INITIAL_STATES
    design: Literal["factorial", "one_at_a_time"] = "factorial"
    vary_alone: tuple[Axis, ...] = ()
    weights: Literal["equal"] | Mapping[str, float] = "equal"
    n_starts: int = 1
    parameter_draws: Literal["normal", "posterior"] = "normal"
    posterior_samples: int = 500
    posterior_proposals: int = 5000
    pre_2000_catch_sd_log: float = PRE_2000_CATCH_SD_LOG
    on_bound: Literal["posterior", "exclude"] = "posterior"

    def __post_init__(self) -> None:
        for name in ("dd_windows", "release_survival_priors", "mortality", "initial_states"):
            values = tuple(getattr(self, name))
            if not values:
                raise ConfigError(f"{name}: expected at least one value")
            object.__setattr__(self, name, values)
        if any(isinstance(w, bool) or not isinstance(w, int | np.integer) or not 1 <= w <= 50
               for w in self.dd_windows):
            raise ConfigError(f"dd_windows: expected ages in 1..50, got {list(self.dd_windows)}")
        for name, valid in (("release_survival_priors", ("informative", "flat")),
                            ("initial_states", INITIAL_STATES + ("equilibrium_f",))):
            bad = [v for v in getattr(self, name) if v not in valid]
            if bad:
                raise ConfigError(f"{name}: expected values among {', '.join(valid)}, got {bad}")
        labels = [m.name for m in self.mortality]
        for name, values in (("dd_windows", self.dd_windows), ("release_survival_priors",
                             self.release_survival_priors), ("mortality", labels),
                             ("initial_states", self.initial_states)):
            if len(set(values)) != len(values):
                raise ConfigError(f"{name}: expected distinct values, got {list(values)}")
        if self.design not in ("factorial", "one_at_a_time"):
            raise ConfigError(f"design: expected 'factorial' or 'one_at_a_time', got {self.design!r}")
        object.__setattr__(self, "vary_alone", tuple(self.vary_alone))
        bad = [a for a in self.vary_alone if a not in AXES]
        if bad:
            raise ConfigError(f"vary_alone: expected axis names among {', '.join(AXES)}, got {bad}")
        if self.parameter_draws not in ("normal", "posterior"):
            raise ConfigError(f"parameter_draws: expected 'normal' or 'posterior', "
                              f"got {self.parameter_draws!r}")
        if self.on_bound not in ("posterior", "exclude"):
            raise ConfigError(f"on_bound: expected 'posterior' or 'exclude', got {self.on_bound!r}")
        sd = self.pre_2000_catch_sd_log
        if isinstance(sd, bool) or not isinstance(sd, int | float) or not (np.isfinite(sd) and sd > 0):
            raise ConfigError(f"pre_2000_catch_sd_log: expected a number > 0, got {sd!r}")
        if isinstance(self.weights, str):
            if self.weights != "equal":
                raise ConfigError(f"weights: expected 'equal' or a table member = weight, "
                                  f"got {self.weights!r}")
        else:
            names = {m.name for m in self.members()}
            for key, value in self.weights.items():
                if key not in names:
                    raise ConfigError(f"weights.{key}: not a member of this ensemble; members are named "
                                      f"like {sorted(names)[0]!r}")
                if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                    raise ConfigError(f"weights.{key}: expected a number >= 0, got {value!r}")
        for name in ("n_starts", "posterior_samples", "posterior_proposals"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)!r}")

    def members(self) -> tuple[Structure, ...]:
        """The member structures, in order: the crossed axes' combinations (at the base value of
        the ``vary_alone`` axes, itertools.product order, so the base member — the first value of
        every axis — comes first), then each other value of each axis varied alone, the rest at the
        base. ``one_at_a_time`` varies every axis alone."""
        axes = {name: tuple(getattr(self, name)) for name in AXES}
        alone = AXES if self.design == "one_at_a_time" else self.vary_alone
        crossed = [axes[name] if name not in alone else axes[name][:1] for name in AXES]
        combos = list(itertools.product(*crossed))
        base = [values[0] for values in axes.values()]
        for i, name in enumerate(AXES):
            if name in alone:
                for value in axes[name][1:]:
                    combo = list(base)
                    combo[i] = value
                    combos.append(tuple(combo))
        return tuple(Structure(*combo, catch_sd_log=self.catch_sd_log_for(combo[3])) for combo in combos)

    def catch_sd_log_for(self, initial_state: str) -> float | None:
        """The catch error of a member with this initial state: ``pre_2000_catch_sd_log`` for the
        starts before 2000, None (the base options' treatment) for ``equilibrium_f``."""
        return None if initial_state in ("depletion", "equilibrium_f") else float(self.pre_2000_catch_sd_log)

    def weighting_rule(self) -> str:
        bound = ("; members whose only failure is an estimate on the bound of a flat prior are "
                 "included with posterior draws" if self.on_bound == "posterior" else
                 "; members with an estimate on a bound are excluded")
        if isinstance(self.weights, str):
            return ("equal weights over the members whose fit converged; non-converged members excluded"
                    + bound)
        return ("user weights by member (unlisted members 0), renormalised over the members whose fit "
                "converged; non-converged members excluded" + bound)
