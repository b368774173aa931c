"""Process forcing: covariates → response functions → per-year process multipliers.

The covariate chain follows WHAM (``R/set_ecov.R``) with its layers kept apart, written as
types instead of option strings:

1. **Covariate** on its years (:mod:`carpmodel.model.covariates`: an :class:`EnvSeries`, a
   :class:`CovariateSeries` or a :class:`ProjectedCovariate`).
   :func:`spawning_season_temperature` derives the ASSUMED spawning-season river temperature
   used by the recruitment effect; :func:`temperature_covariates` gives both.
2. **Response** (:mod:`carpmodel.model.responses`: :class:`Linear`, :class:`Q10`,
   :class:`Arrhenius`, :class:`ThermalDome`, :class:`Logistic`, :class:`UserResponse`):
   covariate → multiplier, each equal to 1 at its reference value, so parameters estimated
   at the reference keep their meaning.
3. **Effect** (:class:`CovariateEffect`): a response on a named process (``growth`` = von
   Bertalanffy K, ``natural_mortality`` = M, ``recruitment`` = expected recruits,
   ``maturity`` = length at 50 % maturity) with a lag. :func:`effect_multipliers` turns a set
   of effects and covariates into the :class:`~carpmodel.model.dynamics.ProcessMultipliers`
   the engine takes. Growth acts on K year by year; because the engine grows every cohort
   with that year's K, a warm year changes every later year of that cohort's length and
   weight ("acting by cohort").

Climate scenarios and their anomalies, which give the future covariates, are
:mod:`carpmodel.management.climate` and :mod:`carpmodel.management.anomalies`.

Provenance labels used in docstrings: [M] measured, [R] reported, [D] derived, [A] assumed;
source_ids refer to ``data/SOURCES.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal, get_args

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError
from carpmodel.model.checks import finite_float, year_array, year_list
from carpmodel.model.covariates import (
    CovariateSeries,
    EnvSeries,
    ProjectedCovariate,
)
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.responses import (
    ARRHENIUS_BOLTZMANN_EV_PER_K,
    Q10,
    Arrhenius,
    Linear,
    Logistic,
    Response,
    Scaled,
    ThermalDome,
    UserResponse,
)

__all__ = [
    "ARRHENIUS_BOLTZMANN_EV_PER_K",
    "EFFECT_STRENGTH_RANGES",
    "GROWTH_OPTIMUM_RANGE_C",
    "MATURITY_SENSITIVITY_SLOPE_PER_C",
    "REFERENCE_LAKE_C",
    "SPAWNING_OFFSET_C",
    "SPAWNING_OPTIMUM_C",
    "TARGETS",
    "TARGET_FIELDS",
    "Arrhenius",
    "CovariateEffect",
    "Linear",
    "Logistic",
    "Q10",
    "Response",
    "Scaled",
    "ThermalDome",
    "UserResponse",
    "default_effects",
    "effect_multipliers",
    "sensitivity_effects",
    "spawning_season_temperature",
    "temperature_covariates",
    "with_strength",
]


Target = Literal["growth", "natural_mortality", "recruitment", "maturity"]
#: Processes an effect can act on.
TARGETS: tuple[str, ...] = get_args(Target)
#: Target → field of :class:`~carpmodel.model.dynamics.ProcessMultipliers` it multiplies.
TARGET_FIELDS: Mapping[str, str] = MappingProxyType({
    "growth": "growth_k",
    "natural_mortality": "natural_mortality",
    "recruitment": "recruitment",
    "maturity": "maturity_l50",
})



#: [A] Reference lake summer surface water temperature, °C: mean of the bundled (assumed) series
#: over the fit years 2000-2024 (16 + 0.015·(2012 − 1980) = 16.48, rounded). Responses equal 1
#: here, so R0, K and M estimated by the fit describe this temperature.
REFERENCE_LAKE_C = 16.5
#: [A] Spawning-season (May-July) river temperature minus lake summer surface temperature, °C.
#: Lake summer surface mean ~16 °C [R, historic_limnology_text]; the lab spawning optimum is
#: 10.8-14.3 °C [M, Zhou et al. 2022]; river water in May-July is colder than the lake's
#: Jun-Aug surface. −4 °C puts the 2000-2024 baseline at 12.5 °C, the middle of the optimum.
SPAWNING_OFFSET_C = -4.0
#: [M] Midpoint of the suitable spawning temperature 10.8-14.3 °C (Zhou et al. 2022, lab).
SPAWNING_OPTIMUM_C = 12.55
#: [A] Width (Gaussian SD) of the recruitment dome, °C.
RECRUITMENT_WIDTH_C = 2.5
#: [A] Optimum of the growth dome, °C (proxy: Schizopygopsis younghusbandi grew best at 15 °C).
GROWTH_OPTIMUM_C = 15.0
#: [A] Width (Gaussian SD) of the growth dome, °C.
GROWTH_WIDTH_C = 6.0
#: [A] Q10 of natural mortality (metabolic scaling).
M_Q10 = 1.5
#: [A] Growth optima spanned by the climate sensitivity: 14-15 °C makes warming harmful,
#: 17 °C roughly neutral near today's ~16.5 °C, 20 °C beneficial.
GROWTH_OPTIMUM_RANGE_C: tuple[float, ...] = (14.0, 15.0, 17.0, 20.0)
#: [A] Slope of log L50 on lake temperature used by the maturity sensitivity (the default has no
#: maturity effect): −0.02/°C = L50 2 % smaller per °C, the direction of the temperature-size
#: rule (warm ectotherms mature earlier and smaller); the magnitude is illustrative.
MATURITY_SENSITIVITY_SLOPE_PER_C = -0.02

#: Strengths of each target's effect in the climate sensitivity sweep (0 = no effect). A
#: strength ``s`` raises the multiplier to the power ``s`` (scales the log-effect), see
#: :func:`with_strength`; for maturity it scales :data:`MATURITY_SENSITIVITY_SLOPE_PER_C`.
EFFECT_STRENGTH_RANGES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "recruitment": (0.0, 0.5, 1.0),
    "growth": (0.0, 0.5, 1.0),
    "natural_mortality": (0.0, 0.5, 1.0, 2.0),
    "maturity": (0.0, 0.5, 1.0),
})


# --------------------------------------------------------------------------- covariates


def spawning_season_temperature(lake: EnvSeries | ProjectedCovariate | CovariateSeries, *,
                                offset_c: float = SPAWNING_OFFSET_C) -> Any:
    """ASSUMED spawning-season (May-July) river temperature derived from the lake series, °C.

    No river temperature series exists. The lake summer surface mean is ~16 °C
    [R, historic_limnology_text] while the lab spawning optimum is 10.8-14.3 °C [M, Zhou et al.
    2022]; spawning-river water in May-July is colder than the lake's Jun-Aug surface. The
    covariate is the lake value plus ``offset_c`` (default −4 °C, [A]): the 2000-2024 baseline
    of the bundled series (16.5 °C) becomes 12.5 °C, the middle of the optimum. A constant
    offset carries the lake's warming and anomalies one-for-one into the rivers (assumed).

    Returns the same type as ``lake`` (an :class:`EnvSeries` is marked ``observed = False``),
    named ``spawning_temperature_c``.
    """
    offset_c = finite_float(offset_c, "spawning_season_temperature.offset_c", "a finite offset in degC")
    unit = getattr(lake, "unit", "degC")
    if unit != "degC":
        raise ConfigError(f"spawning_season_temperature: expected a lake temperature in degC, got "
                          f"{lake.name!r} in {unit!r}")  # type: ignore[union-attr]
    note = (f"ASSUMED spawning-season (May-July) river temperature = lake summer surface "
            f"temperature {offset_c:+g} degC (no river series exists)")
    if isinstance(lake, EnvSeries):
        return EnvSeries("spawning_temperature_c", lake.year, lake.values + offset_c, "degC", False,
                         f"{lake.source_id}+assumption_spawning_temperature", lake.filled_years,
                         f"{lake.note}; {note}" if lake.note else note)
    if isinstance(lake, ProjectedCovariate):
        return replace(lake, name="spawning_temperature_c", values=lake.values + offset_c,
                       base=lake.base + offset_c, note=f"{lake.note}; {note}")
    if isinstance(lake, CovariateSeries):
        return CovariateSeries(lake.year, np.asarray(lake.values) + offset_c)
    raise ConfigError(f"spawning_season_temperature: expected an EnvSeries, ProjectedCovariate or "
                      f"CovariateSeries, got {type(lake).__name__}")


def temperature_covariates(lake: Any, *, spawning_offset_c: float = SPAWNING_OFFSET_C) -> dict[str, Any]:
    """The covariates :func:`default_effects` refers to, from one lake temperature series.

    Returns ``{"temperature_c": lake, "spawning_temperature_c": spawning_season_temperature(lake)}``
    for an :class:`EnvSeries`, :class:`ProjectedCovariate` or :class:`CovariateSeries`.
    """
    return {"temperature_c": lake,
            "spawning_temperature_c": spawning_season_temperature(lake, offset_c=spawning_offset_c)}
# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class CovariateEffect:
    """A response to a named covariate acting on one process, with a lag.

    Attributes
    ----------
    target : {"growth", "natural_mortality", "recruitment", "maturity"}
        Multiplies von Bertalanffy K of the year (every cohort), M, expected recruits, or the
        length at 50 % maturity.
    response : Response
        Covariate → multiplier.
    covariate : str
        Key of the covariate in the mapping given to :func:`effect_multipliers`.
    lag_years : int
        Year y uses the covariate of year ``y − lag_years`` (>= 0).
    note : str
        Provenance of the choice ([M]/[R]/[A] and source_ids).
    """

    target: Target
    response: Response
    covariate: str = "temperature_c"
    lag_years: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"CovariateEffect.target: expected one of {', '.join(TARGETS)}, "
                              f"got {self.target!r}")
        if not callable(self.response):
            raise ConfigError(f"CovariateEffect.response: expected a response function, "
                              f"got {self.response!r}")
        if not isinstance(self.covariate, str) or not self.covariate:
            raise ConfigError(f"CovariateEffect.covariate: expected a covariate name, got {self.covariate!r}")
        lag = self.lag_years
        if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
            raise ConfigError(f"CovariateEffect.lag_years: expected a non-negative integer, got {lag!r}")


def _as_covariate(name: str, value: Any, years: NDArray) -> tuple[NDArray | None, NDArray]:
    """(years or None, values with year last) of one entry of the covariates mapping."""
    if isinstance(value, xr.DataArray):
        if "year" not in value.dims:
            raise ConfigError(f"covariates[{name!r}]: expected a DataArray with a 'year' dimension, "
                              f"got dims {value.dims}")
        value = value.transpose(..., "year")
        return year_array(value["year"].values, f"covariates[{name!r}].year"), value.values.astype(float)
    if isinstance(value, EnvSeries | CovariateSeries | ProjectedCovariate):
        return np.asarray(value.year), np.asarray(value.values, dtype=float)
    array = np.asarray(value, dtype=float)
    if array.ndim == 0 or array.shape[-1] != years.size:
        raise ConfigError(f"covariates[{name!r}]: an array without a year coordinate must have a last "
                          f"axis of length {years.size} (the model years), got shape {array.shape}; "
                          f"pass a CovariateSeries(year, values), EnvSeries or DataArray to align by year")
    return None, array


def _aligned(name: str, value: Any, years: NDArray, effect: CovariateEffect) -> NDArray:
    """Covariate values (*batch, len(years)) at the years ``years − lag``."""
    own_years, array = _as_covariate(name, value, years)
    needed = years - int(effect.lag_years)
    if own_years is None:
        if effect.lag_years:
            raise ConfigError(f"covariates[{name!r}]: the {effect.target} effect has lag {effect.lag_years}, "
                              f"which needs the covariate in {needed[0]}-{needed[-1]}; give it with its "
                              f"years (CovariateSeries, EnvSeries, ProjectedCovariate or DataArray)")
        out = array
    else:
        index = needed - own_years[0]
        missing = needed[(index < 0) | (index >= own_years.size)]
        if missing.size:
            raise ConfigError(
                f"covariates[{name!r}] covers {own_years[0]}-{own_years[-1]}; the {effect.target} effect "
                f"(lag {effect.lag_years} yr) needs {needed[0]}-{needed[-1]}, "
                f"missing {year_list(missing.tolist())}"
            )
        out = array[..., index]
    if not np.all(np.isfinite(out)):
        raise ConfigError(f"covariates[{name!r}]: expected finite values in {needed[0]}-{needed[-1]}")
    return out


def effect_multipliers(effects: Sequence[CovariateEffect], covariates: Mapping[str, Any],
                       years: ArrayLike) -> ProcessMultipliers:
    """Per-year process multipliers of a set of effects.

    Parameters
    ----------
    effects : sequence of CovariateEffect
        Several effects on one target multiply.
    covariates : mapping name → covariate
        Each an :class:`EnvSeries`, :class:`CovariateSeries`, :class:`ProjectedCovariate` or
        ``xarray.DataArray`` with a ``year`` dimension (aligned by year, so the covariate may
        start earlier for lags), or a bare array ``(*batch, year)`` already on ``years``
        (lag 0 only). Batch shapes of different covariates broadcast.
    years : sequence of int, shape (year,)
        The simulated years (contiguous), in the engine's order.

    Returns
    -------
    ProcessMultipliers
        ``growth_k``, ``natural_mortality``, ``recruitment``, ``maturity_l50``: each 1.0 when no
        effect acts on it, else an array ``(*batch, year)``. Year index i uses covariate year
        ``years[i] − lag``.

    Raises
    ------
    ConfigError
        A covariate is missing, lacks the years an effect (and its lag) needs, is not finite,
        or a response returns a negative or non-finite multiplier (the message names it).
    """
    years = year_array(years, "effect_multipliers.years")
    products: dict[str, NDArray] = {}
    for effect in effects:
        if not isinstance(effect, CovariateEffect):
            raise ConfigError(f"effect_multipliers: expected CovariateEffect items, got {effect!r}")
        if effect.covariate not in covariates:
            raise ConfigError(f"effect on {effect.target}: covariate {effect.covariate!r} not given; "
                              f"available: {', '.join(covariates) or 'none'}")
        x = _aligned(effect.covariate, covariates[effect.covariate], years, effect)
        m = np.asarray(effect.response(x), dtype=float)
        if m.shape != x.shape or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ConfigError(f"effect on {effect.target} ({type(effect.response).__name__} of "
                              f"{effect.covariate!r}): expected finite non-negative multipliers of shape "
                              f"{x.shape}, got shape {m.shape}")
        products[effect.target] = m if effect.target not in products else products[effect.target] * m
    return ProcessMultipliers(**{TARGET_FIELDS[t]: products.get(t, 1.0) for t in TARGETS})


def default_effects(*, reference_lake_c: float = REFERENCE_LAKE_C,
                    spawning_offset_c: float = SPAWNING_OFFSET_C) -> tuple[CovariateEffect, ...]:
    """The default temperature effects, all at lag 0, each 1 at the reference temperature.

    ``reference_lake_c`` [A] is the lake temperature the fitted parameters describe (default
    16.5 °C, the 2000-2024 mean of the bundled assumed series; use the fit-period mean of a
    real series). Multipliers at the reference (spawning 12.5 °C, lake 16.5 °C) and at +2 /
    +4 °C warming of both:

    ==================  ===========================================  ======  ======  ======
    target              response                                     +0      +2 °C   +4 °C
    ==================  ===========================================  ======  ======  ======
    recruitment         ThermalDome(12.55, 2.5) on spawning temp.    1       0.738   0.287
    growth (K)          ThermalDome(15.0, 6.0) on lake temp.         1       0.870   0.678
    natural_mortality   Q10(1.5) on lake temp.                       1       1.084   1.176
    maturity (L50)      Linear(0) — none                             1       1       1
    ==================  ===========================================  ======  ======  ======

    - **recruitment** — ThermalDome on ``spawning_temperature_c``: optimum 12.55 °C, the
      midpoint of the suitable spawning temperature 10.8-14.3 °C [M, lab, Zhou et al. 2022];
      width 2.5 °C [A], strength 1 [A]. Relative to the peak: 6 °C → 0.032, 17 °C → 0.205
      (lab: no spawning at ≤6 or ≥17 °C). The covariate is a season mean and daily river
      temperatures spread around it, so a season mean of 17 °C still has spawning days; hence
      small but non-zero, never a hard zero. The baseline 12.5 °C is within 0.05 °C of the
      optimum (≥ 0.999 of the peak).
    - **growth** — ThermalDome on ``temperature_c`` (lake summer surface): optimum 15 °C [A,
      proxy: the congener Schizopygopsis younghusbandi grew best at 15 °C of 10/15/20 °C, not
      measured for G. przewalskii]; width 6 °C [A] (the proxy still grew at 20 °C: 0.71 of the
      peak at +5 °C); with the lake at ~16.5 °C warming is mildly harmful. The sensitivity
      must span benefit and harm: :data:`GROWTH_OPTIMUM_RANGE_C` (14-20 °C).
    - **natural_mortality** — Q10 = 1.5 on M [A, metabolic scaling; no species data].
    - **maturity** — none by default (Linear with slope 0); :func:`sensitivity_effects` uses
      :data:`MATURITY_SENSITIVITY_SLOPE_PER_C`.
    """
    ref = finite_float(reference_lake_c, "default_effects.reference_lake_c", "a finite temperature in degC")
    spawn_ref = ref + finite_float(spawning_offset_c, "default_effects.spawning_offset_c")
    return (
        CovariateEffect("recruitment", ThermalDome(SPAWNING_OPTIMUM_C, RECRUITMENT_WIDTH_C, spawn_ref, 1.0),
                        "spawning_temperature_c", 0,
                        "optimum 12.55 degC [M] Zhou et al. 2022 (lab, 10.8-14.3 degC); width 2.5 degC [A]"),
        CovariateEffect("growth", ThermalDome(GROWTH_OPTIMUM_C, GROWTH_WIDTH_C, ref, 1.0), "temperature_c", 0,
                        "optimum 15 degC [A] proxy S. younghusbandi; width 6 degC [A]"),
        CovariateEffect("natural_mortality", Q10(M_Q10, ref), "temperature_c", 0,
                        "Q10 = 1.5 [A] metabolic"),
        CovariateEffect("maturity", Linear(0.0, ref), "temperature_c", 0, "no effect by default [A]"),
    )


def with_strength(effect: CovariateEffect, strength: float) -> CovariateEffect:
    """The effect with its log-multiplier scaled by ``strength`` (multiplier ** strength).

    0 = no effect, 1 = unchanged. Written back into the response's own parameter where that is
    exact (ThermalDome strength ≤ 1, Linear slope, Q10 exponent), else wrapped in :class:`Scaled`.
    """
    s = finite_float(strength, "strength", "a non-negative strength")
    if s < 0:
        raise ConfigError(f"strength: expected a non-negative strength, got {s!r}")
    r = effect.response
    if s == 1.0:
        return effect
    if isinstance(r, ThermalDome) and r.strength * s <= 1.0:
        new: Response = replace(r, strength=r.strength * s)
    elif isinstance(r, Linear):
        new = replace(r, slope_per_unit=r.slope_per_unit * s)
    elif isinstance(r, Q10):
        new = replace(r, q10=r.q10 ** s)
    else:
        new = Scaled(r, s)
    suffix = f"strength x{s:g}"
    return replace(effect, response=new, note=f"{effect.note}; {suffix}" if effect.note else suffix)


def sensitivity_effects(target: Target, strength: float = 1.0, *, growth_optimum_c: float | None = None,
                        others: Literal["default", "none"] = "default",
                        reference_lake_c: float = REFERENCE_LAKE_C,
                        spawning_offset_c: float = SPAWNING_OFFSET_C) -> tuple[CovariateEffect, ...]:
    """Effects for one cell of the climate sensitivity sweep.

    The effect on ``target`` is scaled by ``strength`` (see :func:`with_strength`; the
    strengths to sweep are :data:`EFFECT_STRENGTH_RANGES`); for ``maturity``, whose default is
    no effect, strength 1 is ``Linear(MATURITY_SENSITIVITY_SLOPE_PER_C)``. For ``growth``,
    ``growth_optimum_c`` replaces the dome optimum (sweep :data:`GROWTH_OPTIMUM_RANGE_C`: warming
    harms growth for an optimum below ~16.5 °C and helps above). The other targets keep their
    default effects (``others="default"``) or have none (``others="none"``: one pathway alone).
    """
    if target not in TARGETS:
        raise ConfigError(f"target: expected one of {', '.join(TARGETS)}, got {target!r}")
    if others not in ("default", "none"):
        raise ConfigError(f"others: expected 'default' or 'none', got {others!r}")
    out = []
    for effect in default_effects(reference_lake_c=reference_lake_c, spawning_offset_c=spawning_offset_c):
        if effect.target != target:
            if others == "default":
                out.append(effect)
            continue
        if target == "maturity":
            effect = replace(effect, response=Linear(MATURITY_SENSITIVITY_SLOPE_PER_C, reference_lake_c),
                             note="L50 -2 %/degC [A] temperature-size rule, magnitude illustrative")
        if target == "growth" and growth_optimum_c is not None:
            optimum = finite_float(growth_optimum_c, "growth_optimum_c", "a finite temperature in degC")
            effect = replace(effect, response=replace(effect.response, optimum_c=optimum),
                             note=f"optimum {optimum:g} degC [A] sensitivity; width 6 degC [A]")
        out.append(with_strength(effect, strength))
    return tuple(out)
