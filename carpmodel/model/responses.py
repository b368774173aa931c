"""Response functions: a covariate (e.g. lake temperature, °C) → a process multiplier equal to 1
at the covariate's reference value, so parameters estimated at the reference keep their meaning.

:class:`Linear` (log-linear), :class:`Q10`, :class:`Arrhenius`, :class:`ThermalDome`,
:class:`Logistic`, :class:`UserResponse` (any callable, checked), :class:`Scaled` (a response
raised to a strength). :mod:`carpmodel.model.forcing` puts them on processes. Provenance labels
as in that module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError
from carpmodel.model.checks import finite_float, positive_float

#: Boltzmann constant, eV/K (CODATA 2018, exact).
ARRHENIUS_BOLTZMANN_EV_PER_K = 8.617333262e-5
KELVIN_OFFSET = 273.15


# --------------------------------------------------------------------------- responses


@runtime_checkable
class Response(Protocol):
    """Covariate → multiplier (non-negative, finite), equal to 1 at the response's reference."""

    def __call__(self, covariate: NDArray) -> NDArray: ...


@dataclass(frozen=True)
class Linear:
    """Log-linear response: ``exp(slope_per_unit·(x − reference))``.

    WHAM's linear effect "on the transformed parameter (log)"; a slope of 0 is no effect.
    ``slope_per_unit`` is per unit of the covariate (per °C for temperature).
    """

    slope_per_unit: float
    reference: float

    def __post_init__(self) -> None:
        finite_float(self.slope_per_unit, "Linear.slope_per_unit")
        finite_float(self.reference, "Linear.reference")

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        return np.exp(self.slope_per_unit * (x - self.reference))


@dataclass(frozen=True)
class Q10:
    """Metabolic Q10 scaling: ``q10 ** ((T − reference_c)/10)``; ``q10 = 1`` is no effect."""

    q10: float
    reference_c: float

    def __post_init__(self) -> None:
        positive_float(self.q10, "Q10.q10", "a positive Q10")
        finite_float(self.reference_c, "Q10.reference_c", "a finite temperature in degC")

    def __call__(self, covariate: NDArray) -> NDArray:
        t = np.asarray(covariate, dtype=float)
        return np.power(self.q10, (t - self.reference_c) / 10.0)


@dataclass(frozen=True)
class Arrhenius:
    """Boltzmann-Arrhenius scaling: ``exp(E/k·(1/T_ref − 1/T))`` with T in kelvin.

    ``activation_energy_ev`` E in eV (metabolic theory: ~0.65 eV); k is
    :data:`ARRHENIUS_BOLTZMANN_EV_PER_K`. E = 0 is no effect.
    """

    activation_energy_ev: float
    reference_c: float

    def __post_init__(self) -> None:
        finite_float(self.activation_energy_ev, "Arrhenius.activation_energy_ev", "a finite energy in eV")
        finite_float(self.reference_c, "Arrhenius.reference_c", "a finite temperature in degC")
        if self.reference_c <= -KELVIN_OFFSET:
            raise ConfigError(f"Arrhenius.reference_c: expected a temperature above absolute zero, "
                              f"got {self.reference_c!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        t_k = np.asarray(covariate, dtype=float) + KELVIN_OFFSET
        if np.any(t_k <= 0):
            raise ConfigError("Arrhenius: covariate below absolute zero; expected temperatures in degC")
        ref_k = self.reference_c + KELVIN_OFFSET
        return np.exp(self.activation_energy_ev / ARRHENIUS_BOLTZMANN_EV_PER_K * (1.0 / ref_k - 1.0 / t_k))


@dataclass(frozen=True)
class ThermalDome:
    """Gaussian thermal-performance curve normalised to 1 at ``reference_c``.

    ``g(T) = exp(−½((T − optimum_c)/width_c)²)``; multiplier ``(g(T)/g(reference_c))**strength``.
    ``strength`` in [0, 1] blends towards no effect on the log scale (0 = exactly 1, 1 = the
    full dome; equivalently the dome widens to ``width_c/√strength``). The Gaussian has no
    hard zero: far from the optimum it is small but positive, so a warm year never makes a
    process impossible (floating-point underflow aside, beyond ~38 widths).
    """

    optimum_c: float
    width_c: float
    reference_c: float
    strength: float = 1.0

    def __post_init__(self) -> None:
        finite_float(self.optimum_c, "ThermalDome.optimum_c", "a finite temperature in degC")
        positive_float(self.width_c, "ThermalDome.width_c", "a positive width in degC")
        finite_float(self.reference_c, "ThermalDome.reference_c", "a finite temperature in degC")
        s = finite_float(self.strength, "ThermalDome.strength", "a strength in [0, 1]")
        if not 0.0 <= s <= 1.0:
            raise ConfigError(f"ThermalDome.strength: expected a strength in [0, 1], got {s!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        t = np.asarray(covariate, dtype=float)
        if self.strength == 0.0:
            return np.ones_like(t)
        z, z_ref = (t - self.optimum_c) / self.width_c, (self.reference_c - self.optimum_c) / self.width_c
        return np.exp(-0.5 * self.strength * (z * z - z_ref * z_ref))


@dataclass(frozen=True)
class Logistic:
    """Threshold response normalised to 1 at ``reference``.

    ``f(x) = 1 + max_effect·σ((x − threshold)/scale)`` with σ the logistic function, and the
    multiplier ``f(x)/f(reference)``. Far above the threshold the rate is ``1 + max_effect``
    times the rate far below (``max_effect`` > −1: −0.5 halves, +1 doubles); ``scale`` > 0 is
    the width of the transition in covariate units.
    """

    threshold: float
    scale: float
    reference: float
    max_effect: float

    def __post_init__(self) -> None:
        finite_float(self.threshold, "Logistic.threshold")
        positive_float(self.scale, "Logistic.scale", "a positive scale in covariate units")
        finite_float(self.reference, "Logistic.reference")
        m = finite_float(self.max_effect, "Logistic.max_effect", "a number > -1")
        if m <= -1.0:
            raise ConfigError(f"Logistic.max_effect: expected a number > -1 (the multiplier must stay "
                              f"positive), got {m!r}")

    def _f(self, x: NDArray | float) -> NDArray:
        z = (np.asarray(x, dtype=float) - self.threshold) / self.scale
        return 1.0 + self.max_effect * (0.5 * (1.0 + np.tanh(0.5 * z)))   # σ(z) without overflow

    def __call__(self, covariate: NDArray) -> NDArray:
        return self._f(covariate) / self._f(self.reference)


@dataclass(frozen=True)
class UserResponse:
    """Any Python callable ``array → multiplier``, checked at every call.

    The output must have the input's shape, be finite and be non-negative; otherwise a
    :class:`ConfigError` names ``name``. With ``normalise_at`` the output is divided by the
    function's value there, so the multiplier is 1 at that reference.
    """

    function: Callable[[NDArray], ArrayLike]
    name: str
    normalise_at: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise ConfigError(f"UserResponse {self.name!r}: expected a callable, got {self.function!r}")
        if self.normalise_at is not None:
            finite_float(self.normalise_at, f"UserResponse {self.name!r}.normalise_at")

    def _evaluate(self, x: NDArray) -> NDArray:
        try:
            out = np.asarray(self.function(x), dtype=float)
        except Exception as exc:   # a user's function: report it as a configuration error
            raise ConfigError(f"UserResponse {self.name!r}: the function raised "
                              f"{type(exc).__name__}: {exc}") from exc
        if out.shape != x.shape:
            raise ConfigError(f"UserResponse {self.name!r}: expected an output of the input's shape "
                              f"{x.shape}, got {out.shape}")
        if not np.all(np.isfinite(out)):
            raise ConfigError(f"UserResponse {self.name!r}: expected finite multipliers, got "
                              f"{out[~np.isfinite(out)].ravel()[0]!r}")
        if np.any(out < 0):
            raise ConfigError(f"UserResponse {self.name!r}: expected non-negative multipliers, got "
                              f"{out[out < 0].ravel()[0]!r}")
        return out

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        out = self._evaluate(x)
        if self.normalise_at is None:
            return out
        ref = self._evaluate(np.asarray([self.normalise_at], dtype=float))[0]
        if ref <= 0:
            raise ConfigError(f"UserResponse {self.name!r}: expected a positive value at normalise_at = "
                              f"{self.normalise_at!r}, got {ref!r}")
        return out / ref


@dataclass(frozen=True)
class Scaled:
    """A response with its log-effect scaled: ``response(x) ** strength`` (0 = no effect)."""

    response: Response
    strength: float

    def __post_init__(self) -> None:
        s = finite_float(self.strength, "Scaled.strength", "a non-negative strength")
        if s < 0:
            raise ConfigError(f"Scaled.strength: expected a non-negative strength, got {s!r}")

    def __call__(self, covariate: NDArray) -> NDArray:
        x = np.asarray(covariate, dtype=float)
        if self.strength == 0.0:
            return np.ones_like(x)
        return np.power(np.asarray(self.response(x), dtype=float), self.strength)
