"""Who gets the credit for the recovery: counterfactual hindcasts from the fitted model.

Three factors are switched off and on, all eight combinations (a 2³ factorial), for every
parameter draw in one batched run of the engine:

- ``ban`` — on: the fitted F path (F solved from the recorded catch, or estimated with catch
  error; zero from the ban year); off: fishing continued from the ban year at a constant F equal
  to the pre-ban level (:func:`pre_ban_f_choice`): for a start state in the year before the ban
  (the default start in 2000) the fitted ``initial_f_per_yr``, the equilibrium F of that state;
  for a start decades earlier (``equilibrium_1986``, and ``unfished_1956``, whose initial F is 0)
  the fitted F of the last year before the ban. A constant F, not a constant catch: a constant
  catch on a stock of a few thousand tonnes would crash it, which says nothing about the ban.
  Years before the ban follow the fitted F path in every scenario.
- ``releases`` — on: the recorded releases; off: none.
- ``rec_devs`` — on: the fitted recruitment deviations; off: no deviations. By default
  (``no_devs="mean"``) recruitment then follows the stock–recruit curve, ``R = f(S)``: the
  fitted model's expected recruitment (``E[exp(ε − σ_R²/2)] = 1``) and what its equilibrium
  start state assumes. ``no_devs="median"`` sets ε = 0 inside the fit's bias-corrected form
  instead, ``R = f(S)·exp(−σ_R²/2)``, which is 16 % below the curve every year at σ_R = 0.6.

Every scenario runs the engine as :func:`carpmodel.inference.likelihood.predict` does: with the fitted
forcing multipliers (estimated temperature effects included), and with an
``unfished_change_year`` in two pieces, the years before the change at the first R0 and the rest
from that state at the changed R0, so the ``"fitted"`` scenario reproduces the fit exactly.

- ``habitat`` (a fourth factor, only when the fit estimates a habitat effect: ``habitat_slope``
  in ``[fit] estimate`` and the data's ``habitat.csv``) — on: the connectivity index as
  recorded; off: the index held at its level in the first model year (the pre-passage level,
  before the fish passages of 2008–2009), with the draw's fitted slope. The habitat effect acts
  on the logit of egg survival like a deviation, so "off" adds ``slope·(x_first − x_y)`` to the
  deviations of every year. Without a habitat effect the factorial is the 2³ of the three
  factors above and the ``factors`` / ``habitat`` attributes say why.

Scenario names: ``"fitted"`` (all on), else the switched-off factors joined by ``_``
(``"no_releases"``, ``"fishing_continued"``, ``"no_rec_devs"``,
``"fishing_continued_no_releases"``, ``"habitat_held"``, …).

The decomposition. For each scenario S (the set of factors on) let ``v(S) = B_S(last) −
B_S(first)``, the biomass increase from ``first_year`` (2002) to ``last_year`` in that world.
The change the factors explain, ``v(all) − v(none)``, is split by Shapley values
(average of each factor's marginal contribution over the k! orders of switching on), so the
k shares add to 1 exactly and every interaction is spread evenly among the factors it
involves. ``v(none)`` (the "baseline increase": fishing continued, no releases, no deviations)
is reported beside them; it is near zero because the start state is the equilibrium under the
pre-ban F. The interactions are also reported explicitly: the releases' effect with the ban and
without it (deviations as fitted) and their difference, the other two pairwise interactions,
and the three-way term.

Hatchery-origin fraction vs gain from releases. The hatchery fraction of the last year's
biomass says how many of the fish came from the hatchery; the gain ``B_fitted − B_no_releases``
says how much larger the stock is because of releases. They differ when released fish take the
place of wild fish (shared juvenile density dependence, spawner–recruit compensation). Their
difference, ``hatchery_minus_gain_t = hatchery biomass − gain``, is the wild biomass displaced
when positive; when negative the releases added more than their own biomass, through the
wild-born offspring of hatchery-origin spawners (counted as wild).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from carpmodel import __version__
from carpmodel.dims import DRAW, SCENARIO, YEAR, with_attrs
from carpmodel.errors import FitError
from carpmodel.inference.likelihood import predict, run_engine
from carpmodel.inference.spec import HABITAT_FIELD, ModelSpec, Unpacked, habitat_log_effect
from carpmodel.model.dynamics import PopulationState, ProcessMultipliers

FACTORS = ("ban", "releases", "rec_devs")
#: the fourth factor, present when the fit estimates a habitat effect
HABITAT = "habitat"
ALL_FACTORS = (*FACTORS, HABITAT)
_OFF_NAMES = {"ban": "fishing_continued", "releases": "no_releases", "rec_devs": "no_rec_devs",
              HABITAT: "habitat_held"}
#: quantiles of the two intervals reported
INTERVALS = {"90": (0.05, 0.95), "95": (0.025, 0.975)}

PreBanF = Literal["auto", "initial", "last_pre_ban"]
NoDevs = Literal["mean", "median"]


def scenario_name(on: Mapping[str, bool]) -> str:
    """``"fitted"`` when every factor is on, else the off factors' names joined by ``_``."""
    off = [_OFF_NAMES[f] for f in ALL_FACTORS if f in on and not on[f]]
    return "_".join(off) if off else "fitted"


#: the 2³ scenarios: the four named in the issue first, then the other combinations
SCENARIOS: tuple[dict[str, bool], ...] = tuple(
    dict(zip(FACTORS, combo, strict=True)) for combo in (
        (True, True, True), (True, False, True), (False, True, True), (True, True, False),
        (False, False, True), (False, True, False), (True, False, False), (False, False, False)))
SCENARIO_NAMES = tuple(scenario_name(s) for s in SCENARIOS)


def scenarios_for(factors: Sequence[str]) -> tuple[dict[str, bool], ...]:
    """The 2^k scenarios of ``factors`` (:data:`FACTORS` or :data:`ALL_FACTORS`): the 2³ of
    :data:`SCENARIOS`, then, with the habitat, the same eight with the habitat held."""
    factors = tuple(factors)
    if factors == FACTORS:
        return SCENARIOS
    if factors == ALL_FACTORS:
        return (tuple({**s, HABITAT: True} for s in SCENARIOS)
                + tuple({**s, HABITAT: False} for s in SCENARIOS))
    raise ValueError(f"factors: expected {FACTORS} or {ALL_FACTORS}, got {factors}")


def habitat_status(spec: ModelSpec) -> str | None:
    """None when the spec carries an estimated habitat effect (the attribution then has four
    factors), else why it does not (said in the ``habitat`` attribute)."""
    if not any(f.field == HABITAT_FIELD for f in spec.free):
        return (f"not in the model: {HABITAT_FIELD} is not estimated (add it to [fit] estimate with a "
                "habitat.csv in the data) - three factors")
    if spec.habitat is None:
        return "not in the model: no connectivity index (habitat.csv) - three factors"
    return None


def ban_year_of(spec: ModelSpec) -> int:
    """First year after the last year with a positive catch (2001 for the bundled data)."""
    catch = np.asarray(spec.drivers.catch_t, dtype=float)
    fished = np.flatnonzero(catch > 0)
    if fished.size == 0:
        raise FitError("no year with a positive catch: there is no fishing ban to switch off")
    if fished[-1] + 1 >= spec.years.size:
        raise FitError(f"catch is positive in the last model year {spec.years[-1]}: no ban year")
    return int(spec.years[fished[-1] + 1])


def run_like_predict(spec: ModelSpec, u: Unpacked, **inputs: Any) -> PopulationState:
    """The engine on ``inputs`` (``f_per_yr``, ``release_fish``, ``release_length_cm``,
    ``log_rec_devs``, any leading batch axes) the way :func:`carpmodel.inference.likelihood.predict` runs
    the fit: with the unpacked forcing multipliers and, with an ``unfished_change_year``, in two
    runs joined along the year axis (:func:`carpmodel.inference.likelihood.run_engine`)."""
    return run_engine(spec, u, **{"multipliers": u.multipliers or ProcessMultipliers(), **inputs})


def pre_ban_f_choice(spec: ModelSpec, initial_f_per_yr: Any, ban_year: int) -> Literal[
        "initial", "last_pre_ban"]:
    """What ``pre_ban_f="auto"`` means for this spec: for a depleted start (the default), whose
    age structure ``initial_f_per_yr`` only shapes, ``"last_pre_ban"``, the F the recorded catch
    of the year before the ban implies; for an equilibrium start in the year before the ban or
    later, ``"initial"`` (the equilibrium F of that pre-ban state) when it is positive in every
    draw; otherwise ``"last_pre_ban"``. An unfished start
    (``unfished_1956``: initial F 0) has no pre-ban F in its start state, and the equilibrium F
    of a start in 1986 is not the fishing of the late 1990s.
    """
    if spec.start == "depletion":      # initial F only shapes the start's age structure
        return "last_pre_ban"
    positive = bool(np.all(np.asarray(initial_f_per_yr, dtype=float) > 0))
    return "initial" if positive and int(spec.years[0]) >= ban_year - 1 else "last_pre_ban"


def counterfactuals(spec: ModelSpec, thetas: Any, *, ban_year: int | None = None,
                    pre_ban_f: PreBanF = "auto", no_devs: NoDevs = "mean") -> xr.Dataset:
    """Run the 2^k scenarios for every parameter vector in one batched engine call (k = 3, or 4
    with an estimated habitat effect: :func:`habitat_status`).

    Parameters
    ----------
    spec : ModelSpec
        The fitted model's spec.
    thetas : array (n_draws, n) or (n,)
        Parameter vectors on the estimation scale (posterior or normal-approximation draws, or
        the point estimate).
    ban_year : int, optional
        First year of the ban; default :func:`ban_year_of` (the year after the last catch).
    pre_ban_f : {"auto", "initial", "last_pre_ban"}
        The constant F of "fishing continued": the draw's ``initial_f_per_yr`` (equilibrium F of
        the start state), or the draw's fitted F in the year before the ban (solved from the
        catch, or estimated with catch error). ``"auto"`` (default) picks one by
        :func:`pre_ban_f_choice`: ``"initial"`` for a start in the year before the ban (the
        default 2000 start), ``"last_pre_ban"`` for earlier or unfished starts. ``"initial"``
        with an unfished start raises FitError (it would mean no fishing).
    no_devs : {"mean", "median"}
        Recruitment when deviations are off: ``"mean"`` (default) on the stock–recruit curve,
        ``R = f(S)``, the expected recruitment of the fitted model and the recruitment of its
        equilibrium start state; ``"median"`` with ε = 0 in the fit's bias-corrected form,
        ``R = f(S)·exp(−σ_R²/2)``, i.e. 16 % below the curve at σ_R = 0.6 in every year, which
        credits that constant shortfall to "recruitment variation".

    Returns
    -------
    xarray.Dataset
        Dims ``(scenario, draw, year)``: ``biomass_t``, ``hatchery_fraction_biomass``,
        ``recruits``, ``ssb_t``, ``f_per_yr``, ``catch_t``; scenario coordinates ``ban``,
        ``releases``, ``rec_devs`` (and ``habitat``; True = as in the fit). Attributes
        ``factors`` (comma-separated) and ``habitat`` (how the habitat was treated).
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    years = spec.years
    ban = ban_year_of(spec) if ban_year is None else int(ban_year)
    if not years[0] <= ban <= years[-1]:
        raise FitError(f"ban_year {ban} outside the model years {years[0]}-{years[-1]}")
    fitted, u = predict(spec, thetas)
    params = u.params
    f_fit = fitted.f_per_yr                                         # (draw, year)
    after = years >= ban
    requested = pre_ban_f
    if pre_ban_f == "auto":
        pre_ban_f = pre_ban_f_choice(spec, params.initial_f_per_yr, ban)
    if pre_ban_f == "initial":
        f_pre = np.broadcast_to(np.asarray(params.initial_f_per_yr, dtype=float), f_fit.shape[:-1])
        f_text = "the draw's initial_f_per_yr (equilibrium F of the start state)"
        if not np.all(f_pre > 0):
            raise FitError("pre_ban_f='initial': initial_f_per_yr is 0 (an unfished start state), so "
                           "'fishing continued' would be no fishing; use pre_ban_f='last_pre_ban' (the "
                           "fitted F of the year before the ban) or 'auto'")
    elif pre_ban_f == "last_pre_ban":
        if ban <= years[0]:
            raise FitError(f"pre_ban_f='last_pre_ban' needs a model year before the ban ({ban})")
        f_pre = f_fit[..., int(np.searchsorted(years, ban)) - 1]
        f_text = (f"the draw's fitted F in {ban - 1} ("
                  + ("estimated: catch with error" if spec.catch_sd_log is not None
                     else "solved from the recorded catch") + ")")
    else:
        raise ValueError(f"pre_ban_f: expected 'auto', 'initial' or 'last_pre_ban', got {pre_ban_f!r}")
    if requested == "auto":
        f_text += f" (pre_ban_f='auto': start year {int(years[0])}, ban year {ban})"
    f_continued = np.where(after, f_pre[..., None], f_fit)
    sigma_r = np.asarray(params.sigma_r, dtype=float)[..., None]
    devs_on = u.log_rec_devs - 0.5 * sigma_r**2
    if no_devs == "mean":
        devs_off = np.zeros_like(devs_on)
    elif no_devs == "median":
        devs_off = np.broadcast_to(-0.5 * sigma_r**2, devs_on.shape)
    else:
        raise ValueError(f"no_devs: expected 'mean' or 'median', got {no_devs!r}")
    no_fish = np.zeros_like(spec.drivers.release_fish, dtype=float)
    missing_habitat = habitat_status(spec)
    factors = FACTORS if missing_habitat else ALL_FACTORS
    scenarios = scenarios_for(factors)
    habitat_held = np.zeros(())
    if missing_habitat is None:
        # connectivity held at its first-year (pre-passage) level: slope·(x_first − x_y) on the logit
        slope = np.asarray(u.observation[HABITAT_FIELD], dtype=float)
        held = np.full_like(spec.habitat.values, spec.habitat.values[0])
        habitat_held = habitat_log_effect(spec, slope, held) - habitat_log_effect(spec, slope)
        habitat_text = (f"on: the connectivity index as recorded; held: at its {int(years[0])} level "
                        f"{float(held[0]):g} (before the fish passages) with the draw's {HABITAT_FIELD}")
    else:
        habitat_text = missing_habitat

    f_all = np.stack([f_fit if s["ban"] else f_continued for s in scenarios])
    devs_all = np.stack([(devs_on if s["rec_devs"] else devs_off)
                         + (0.0 if s.get(HABITAT, True) else habitat_held) for s in scenarios])
    releases_all = np.stack([spec.drivers.release_fish if s["releases"] else no_fish
                             for s in scenarios])[:, None]               # (scenario, 1, year, age)
    state = run_like_predict(spec, u, f_per_yr=f_all, release_fish=releases_all,
                             release_length_cm=spec.drivers.release_length_cm, log_rec_devs=devs_all)
    dims = (SCENARIO, DRAW, YEAR)
    ds = xr.Dataset(
        {name: (dims, getattr(state, name)) for name in (
            "biomass_t", "hatchery_fraction_biomass", "recruits", "ssb_t", "f_per_yr", "catch_t")},
        coords={SCENARIO: [scenario_name(s) for s in scenarios], DRAW: np.arange(thetas.shape[0]),
                YEAR: years, **{f: (SCENARIO, [s[f] for s in scenarios]) for f in factors}})
    ds["ban"].attrs.update(long_name="True: fitted F path (ban); False: fishing continued at the "
                                     "pre-ban F from the ban year")
    ds["releases"].attrs.update(long_name="True: recorded releases; False: none")
    ds["rec_devs"].attrs.update(long_name="True: fitted recruitment deviations; False: zero")
    if HABITAT in factors:
        ds["habitat_slope"] = (DRAW, np.broadcast_to(slope, (thetas.shape[0],)).astype(float))
        ds["habitat_slope"].attrs.update(units="1", long_name="habitat slope on the logit of egg "
                                                              "survival per unit of the index")
        ds[HABITAT].attrs.update(long_name="True: connectivity index as recorded; False: held at its "
                                           "pre-passage level")
    return with_attrs(ds, ban_year=ban, pre_ban_f=f_text, pre_ban_f_option=pre_ban_f,
                      pre_ban_f_requested=requested, no_devs=no_devs, factors=",".join(factors),
                      habitat=habitat_text,
                      description=f"counterfactual hindcasts: 2^{len(factors)} factorial of "
                                  + " x ".join(factors) + ", one engine run per draw and scenario")


# --------------------------------------------------------------------------- decomposition


def shapley_values(outcome: Mapping[frozenset[str], Any],
                   players: Sequence[str]) -> dict[str, NDArray]:
    """Shapley value of each player for a game given on every coalition.

    ``outcome[frozenset(S)]`` is the value (array-like, broadcast) with the players in S
    switched on. ``φ_i = Σ_{S ⊆ N∖{i}} |S|!·(n − |S| − 1)!/n! · (v(S ∪ {i}) − v(S))``; the
    values add up to ``v(N) − v(∅)`` (up to rounding).
    """
    n = len(players)
    out = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                s = frozenset(coalition)
                total = total + weight * (np.asarray(outcome[s | {player}], dtype=float)
                                          - np.asarray(outcome[s], dtype=float))
        out[player] = np.asarray(total, dtype=float)
    return out


def _coalition(on: Mapping[str, bool]) -> frozenset[str]:
    return frozenset(f for f in ALL_FACTORS if on.get(f, False))


def factors_of(cf: xr.Dataset) -> tuple[str, ...]:
    """The factors of a :func:`counterfactuals` Dataset (its ``factors`` attribute; three if absent)."""
    text = cf.attrs.get("factors", "")
    return tuple(text.split(",")) if text else FACTORS


def interaction(outcome: Mapping[frozenset[str], Any], factors: Iterable[str],
                fixed_on: Iterable[str] = ()) -> NDArray:
    """Factorial interaction of ``factors`` with the factors in ``fixed_on`` on and others off.

    ``Σ_{T ⊆ factors} (−1)^{|factors|−|T|}·v(T ∪ fixed_on)``: for two factors A, B this is
    ``[v(A,B) − v(B)] − [v(A) − v(∅)]``, the effect of A with B minus its effect without B.
    """
    factors = tuple(factors)
    fixed = frozenset(fixed_on)
    total = 0.0
    for size in range(len(factors) + 1):
        for subset in itertools.combinations(factors, size):
            sign = (-1) ** (len(factors) - size)
            total = total + sign * np.asarray(outcome[frozenset(subset) | fixed], dtype=float)
    return np.asarray(total, dtype=float)


#: quantity name -> (units, long_name), in the order of the table
QUANTITIES: dict[str, tuple[str, str]] = {
    "biomass_first_t": ("t", "fitted biomass in the first year"),
    "biomass_last_t": ("t", "fitted biomass in the last year"),
    "increase_t": ("t", "fitted increase B(last) - B(first)"),
    "baseline_increase_t": ("t", "increase with fishing continued, no releases, no deviations"),
    "explained_increase_t": ("t", "increase minus baseline increase: what the factors explain"),
    "shapley_ban_t": ("t", "Shapley contribution of the ban to the explained increase"),
    "shapley_releases_t": ("t", "Shapley contribution of the releases"),
    "shapley_rec_devs_t": ("t", "Shapley contribution of the recruitment deviations"),
    "shapley_habitat_t": ("t", "Shapley contribution of river connectivity (habitat)"),
    "share_ban": ("1", "share of the explained increase due to the ban (Shapley)"),
    "share_releases": ("1", "share due to the releases (Shapley)"),
    "share_rec_devs": ("1", "share due to recruitment variation (Shapley)"),
    "share_habitat": ("1", "share due to river connectivity (Shapley; habitat held at its pre-passage "
                           "level when off)"),
    "habitat_effect_t": ("t", "increase(fitted) - increase(connectivity held at its pre-passage level)"),
    "habitat_slope": ("1", "habitat slope on the logit of egg survival per unit of the index (draw)"),
    "releases_effect_with_ban_t": ("t", "increase(fitted) - increase(no releases)"),
    "releases_effect_without_ban_t": ("t", "increase(fishing continued) - increase(fishing "
                                           "continued, no releases)"),
    "interaction_ban_releases_t": ("t", "releases' effect with the ban minus without (deviations "
                                        "as fitted)"),
    "interaction_ban_rec_devs_t": ("t", "deviations' effect with the ban minus without (releases "
                                        "as recorded)"),
    "interaction_releases_rec_devs_t": ("t", "deviations' effect with releases minus without (ban "
                                             "in place)"),
    "interaction_three_way_t": ("t", "three-way factorial interaction"),
    "interaction_total_t": ("t", "explained increase minus the sum of the one-factor effects from "
                                 "the baseline"),
    "hatchery_fraction_last": ("1", "hatchery-origin fraction of the last year's biomass (fitted)"),
    "hatchery_biomass_last_t": ("t", "hatchery-origin biomass in the last year (fitted)"),
    "gain_from_releases_t": ("t", "B_fitted(last) - B_no_releases(last)"),
    "gain_from_releases_fraction": ("1", "gain from releases / B_fitted(last)"),
    "hatchery_minus_gain_t": ("t", "hatchery-origin biomass minus gain from releases: > 0 wild "
                                   "biomass the releases replaced; < 0 the releases added more than "
                                   "their own biomass (wild-born offspring of hatchery spawners)"),
}


def attribution_draws(cf: xr.Dataset, first_year: int = 2002,
                      last_year: int | None = None) -> dict[str, NDArray]:
    """Every quantity of :data:`QUANTITIES` per draw, from a :func:`counterfactuals` Dataset."""
    last = int(cf[YEAR][-1]) if last_year is None else int(last_year)
    if first_year not in cf[YEAR] or last not in cf[YEAR] or last <= first_year:
        raise FitError(f"attribution years {first_year}-{last} must lie in the model years "
                       f"{int(cf[YEAR][0])}-{int(cf[YEAR][-1])} with first < last")
    factors = factors_of(cf)
    b = cf["biomass_t"]
    increase = (b.sel(year=last) - b.sel(year=first_year)).values          # (scenario, draw)
    v = {_coalition({f: bool(cf[f].values[i]) for f in factors}): increase[i]
         for i in range(cf.sizes[SCENARIO])}
    everything, nothing = frozenset(factors), frozenset()
    phi = shapley_values(v, factors)
    explained = v[everything] - v[nothing]
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = {f: phi[f] / explained for f in factors}
    others = tuple(f for f in factors if f not in FACTORS)      # held on in the 3-factor terms
    fitted = cf.sel(scenario="fitted", year=last)
    b_last = fitted["biomass_t"].values
    b_no_rel = cf["biomass_t"].sel(scenario="no_releases", year=last).values
    fraction = fitted["hatchery_fraction_biomass"].values
    gain = b_last - b_no_rel
    first_order = sum(v[frozenset({f})] - v[nothing] for f in factors)
    out = {
        "biomass_first_t": cf["biomass_t"].sel(scenario="fitted", year=first_year).values,
        "biomass_last_t": b_last,
        "increase_t": v[everything],
        "baseline_increase_t": v[nothing],
        "explained_increase_t": explained,
        **{f"shapley_{f}_t": phi[f] for f in factors},
        **{f"share_{f}": shares[f] for f in factors},
        "releases_effect_with_ban_t": v[everything] - v[everything - {"releases"}],
        "releases_effect_without_ban_t": (v[frozenset({"releases", "rec_devs", *others})]
                                          - v[frozenset({"rec_devs", *others})]),
        "interaction_ban_releases_t": interaction(v, ("ban", "releases"), fixed_on=("rec_devs", *others)),
        "interaction_ban_rec_devs_t": interaction(v, ("ban", "rec_devs"), fixed_on=("releases", *others)),
        "interaction_releases_rec_devs_t": interaction(v, ("releases", "rec_devs"),
                                                       fixed_on=("ban", *others)),
        "interaction_three_way_t": interaction(v, FACTORS, fixed_on=others),
        "interaction_total_t": explained - first_order,
        "hatchery_fraction_last": fraction,
        "hatchery_biomass_last_t": fraction * b_last,
        "gain_from_releases_t": gain,
        "gain_from_releases_fraction": gain / b_last,
        "hatchery_minus_gain_t": fraction * b_last - gain,
    }
    if HABITAT in factors:
        out["habitat_effect_t"] = v[everything] - v[everything - {HABITAT}]
        if "habitat_slope" in cf:
            out["habitat_slope"] = cf["habitat_slope"].values
    return {k: np.asarray(out[k], dtype=float) for k in QUANTITIES if k in out}


def summarise(values: Mapping[str, NDArray], quantities: Mapping[str, tuple[str, str]] = QUANTITIES,
              dim: str = "quantity") -> xr.Dataset:
    """Median, mean and 90 % / 95 % intervals over draws of each quantity, dimension ``dim``."""
    names = [k for k in quantities if k in values]
    stats: dict[str, list[float]] = {k: [] for k in ("median", "mean", "lower_90", "upper_90",
                                                      "lower_95", "upper_95")}
    for name in names:
        x = np.asarray(values[name], dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            for key in stats:
                stats[key].append(np.nan)
            continue
        stats["median"].append(float(np.median(x)))
        stats["mean"].append(float(np.mean(x)))
        for label, (lo, hi) in INTERVALS.items():
            a, b = np.quantile(x, [lo, hi])
            stats[f"lower_{label}"].append(float(a))
            stats[f"upper_{label}"].append(float(b))
    ds = xr.Dataset({k: (dim, v) for k, v in stats.items()}, coords={dim: names})
    ds = ds.assign_coords(units=(dim, [quantities[n][0] for n in names]),
                          long_name=(dim, [quantities[n][1] for n in names]))
    for key in stats:
        ds[key].attrs.update(units="see the units coordinate",
                             long_name=f"{key.replace('_', ' ')} over draws")
    return ds


def attribution_table(spec: ModelSpec, thetas: Any, first_year: int = 2002,
                      last_year: int | None = None, *, ban_year: int | None = None,
                      pre_ban_f: PreBanF = "auto", no_devs: NoDevs = "mean") -> xr.Dataset:
    """Shares of the biomass increase due to the ban, releases, recruitment variation and, with
    an estimated habitat effect, river connectivity (attribute ``factors``; ``habitat`` says why
    it is absent when it is).

    Returns a Dataset with dimension ``quantity`` (see :data:`QUANTITIES`; ``units`` and
    ``long_name`` coordinates) holding ``median``, ``mean``, ``lower_90``, ``upper_90``,
    ``lower_95``, ``upper_95`` over the draws, and ``value(quantity, draw)``. Shares are per
    draw (Shapley contribution / explained increase, summing to 1 in every draw). Attributes give
    the years, the ban year, the pre-ban F used and the number of draws.
    """
    cf = counterfactuals(spec, thetas, ban_year=ban_year, pre_ban_f=pre_ban_f, no_devs=no_devs)
    last = int(spec.years[-1]) if last_year is None else int(last_year)
    values = attribution_draws(cf, first_year, last)
    ds = summarise(values)
    ds["value"] = (("quantity", DRAW), np.stack([values[k] for k in ds["quantity"].values]))
    ds["value"].attrs.update(units="see the units coordinate", long_name="value in each draw")
    ds.attrs.update(carpmodel_version=__version__, first_year=first_year, last_year=last,
                    ban_year=cf.attrs["ban_year"], pre_ban_f=cf.attrs["pre_ban_f"],
                    pre_ban_f_option=cf.attrs["pre_ban_f_option"], no_devs=no_devs,
                    n_draws=int(cf.sizes[DRAW]), factors=cf.attrs["factors"],
                    habitat=cf.attrs["habitat"],
                    method=f"Shapley decomposition of the 2^{len(factors_of(cf))} factorial ("
                           + ", ".join(factors_of(cf)) + ") of the increase B(last) - B(first) in "
                           "each counterfactual")
    return ds


def attribution_rows(table: xr.Dataset) -> list[dict[str, Any]]:
    """One dict per quantity: ``quantity``, ``units``, ``median``, ``lower_90`` … ``upper_95``."""
    rows = []
    for q in table["quantity"].values:
        row = table.sel(quantity=q)
        rows.append({"quantity": str(q), "units": str(row["units"].values),
                     **{k: float(row[k]) for k in ("median", "mean", "lower_90", "upper_90",
                                                   "lower_95", "upper_95")}})
    return rows


def format_attribution(table: xr.Dataset) -> str:
    """A plain-text table: quantity, units, median, 90 % and 95 % intervals."""
    lines = [f"{'quantity':<34} {'units':<5} {'median':>11} {'90 % interval':>25} {'95 % interval':>25}"]
    for r in attribution_rows(table):
        lines.append(f"{r['quantity']:<34} {r['units']:<5} {short_number(r['median']):>11} "
                     f"{short_number(r['lower_90']) + ' – ' + short_number(r['upper_90']):>25} "
                     f"{short_number(r['lower_95']) + ' – ' + short_number(r['upper_95']):>25}")
    return "\n".join(lines)


def short_number(x: float) -> str:
    """A number for the text tables: thousands with separators, small values to 3 decimals."""
    if not np.isfinite(x):
        return "nan"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3f}"
