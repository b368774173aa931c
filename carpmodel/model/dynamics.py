"""The age-structured engine: a recursion over years in the compiled kernel.

Arrays are ``(*batch, origin, age)`` with ``origin = (wild, hatchery)`` and ages ``0..A``
(``A`` a plus group). Any number of leading batch axes run at once (a fit, a batch of
gradient perturbations, projection draws × strategies × scenarios); :func:`simulate` flattens
them to rows and prepares every year's inputs. With releases the same for every row and no
policy, or a policy that hands the kernel its rule as tables (:class:`PolicyTables`: the
strategy policies of :mod:`carpmodel.management.policy`), one call of
:func:`carpmodel.model.kernel.run_years` runs every year; otherwise the year loop is the only
Python loop: each year it reads a policy's decision and calls
:func:`carpmodel.model.kernel.year_step`. Either way every row follows the same arithmetic
(rows are independent: a row's result never depends on its batch or on the path). Wild fish
join at age 1 (the age-0 slot holds only hatchery fish released in their first year).

Order of events within year y (annual step, birthday on 1 January):

1. spawning (spring): spawning output ``S = Σ (N_w + ρ·N_h)·W·mat`` from 1 January numbers, ρ
   the relative reproductive success of hatchery-origin spawners; eggs ``E = S·10⁶·f_fem·fec``;
2. recruitment of the year class: ``R_y = a_y·E/(1 + βE)`` (or Ricker) with the egg survival
   ``a_y = expit(logit(a) + ε_y + ln g_R)`` (:mod:`carpmodel.model.recruitment`: recruits per
   egg stay below 1 by construction); they join the wild age-1 class on 1 January of y + 1 at
   the length of their first season (hatching at ``t_h``, growth for ``1 − t_h`` of the year);
3. releases (summer): ``n·s_rel`` hatchery fish enter at their age and release length
   (numbers-weighted mean length with hatchery fish already at that age;
   :func:`carpmodel.model.stocking.add_releases`, whose module describes the release biology);
4. mortality through the year: ``Z = M(L) + M_dd + F·sel(L)`` where ``M(L)`` is Lorenzen
   mortality integrated along the growth path and ``M_dd = ln(1 + γ·J/J0)`` is juvenile
   density-dependent mortality on every age ``1 ≤ a ≤ w`` of the window, driven by the total
   abundance ``J`` of wild plus hatchery fish in the window (``J0`` its unfished value;
   :func:`carpmodel.model.mortality.dd_mortality_per_yr`);
   catch follows the Baranov equation, with F solved from the observed catch;
5. growth along each cohort (von Bertalanffy, K times a forcing multiplier), the end-of-year
   biomass the survey sees (size selectivity ``sel_s(L)``), and ageing, the plus group keeping
   a numbers-weighted mean length.

Reference points, equilibria and the depleted start of a fit are in
:mod:`carpmodel.model.equilibrium`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from carpmodel.model import kernel
from carpmodel.model.equilibrium import (
    ReferencePoints,
    equilibrium_state,
    expand,
    reference_points,
    wild_equilibrium,
)
from carpmodel.model.growth import body_length_cm, weight_g
from carpmodel.model.kernel_cells import row_table
from carpmodel.model.mortality import logistic_selectivity
from carpmodel.model.params import Parameters
from carpmodel.model.recruitment import eggs_per_tonne

__all__ = [
    "HATCHERY",
    "ORIGINS",
    "WILD",
    "PopulationState",
    "Policy",
    "PolicyTables",
    "ProcessMultipliers",
    "ReferencePoints",
    "YearControl",
    "equilibrium_state",
    "reference_points",
    "simulate",
]

WILD, HATCHERY = 0, 1
ORIGINS = ("wild", "hatchery")

@dataclass(frozen=True)
class ProcessMultipliers:
    """Per-year multipliers of the processes that forcing can act on (1 = reference).

    Each is a scalar or an array ``(*batch, year)``: ``growth_k`` multiplies K,
    ``natural_mortality`` multiplies M, ``recruitment`` multiplies expected recruits,
    ``maturity_l50`` multiplies the length at 50 % maturity.
    """

    growth_k: Any = 1.0
    natural_mortality: Any = 1.0
    recruitment: Any = 1.0
    maturity_l50: Any = 1.0

    def in_year(self, name: str, year_index: int) -> NDArray:
        value = np.asarray(getattr(self, name), dtype=float)
        return value if value.ndim == 0 else value[..., year_index]

    def batch_shapes(self) -> list[tuple[int, ...]]:
        out = []
        for name in ("growth_k", "natural_mortality", "recruitment", "maturity_l50"):
            value = np.asarray(getattr(self, name))
            if value.ndim:
                out.append(value.shape[:-1])
        return out


@dataclass(frozen=True)
class YearControl:
    """What a management policy decides for one year (see :class:`Policy`).

    ``release_fish`` and ``release_length_cm`` are ``(*batch, age)`` (fish before acute survival,
    cm), added to any ``release_fish`` given to :func:`simulate`; ``f_per_yr`` is ``(*batch)``
    and replaces the catch or F given to :func:`simulate` for that year.
    """

    release_fish: Any = None
    release_length_cm: Any = None
    f_per_yr: Any = None


class Policy(Protocol):
    """A rule evaluated inside the year loop from what a manager could know.

    Called at the start of year index ``y`` with the survey estimate of the previous year's
    biomass (t, shape ``(*batch)``): true end-of-year biomass × q × exp(survey error), so a rule
    never reads the true biomass and acts with a one-year lag. :func:`simulate` then calls the
    compiled kernel once a year. A policy whose rule is the one :class:`PolicyTables` describes
    may also offer ``tables()`` returning it: :func:`simulate` then applies the rule inside the
    kernel and runs every year in one call, and never calls the policy (so ``tables()`` must
    describe exactly what ``__call__`` decides); ``tables()`` returning None says the policy is
    to be called year by year.
    """

    def __call__(self, year_index: int, survey_estimate_t: NDArray) -> YearControl: ...


@dataclass(frozen=True)
class PolicyTables:
    """A policy's rule as data, which the compiled kernel applies inside a whole run.

    At the start of year index ``y`` each batch member reads the survey estimate ``e`` of year
    ``y − 1`` (as :class:`Policy` does); it releases ``release_fish[program, y, age]`` fish at
    ``release_length_cm[program, y, age]`` when ``trigger_t`` is infinite or ``e < trigger_t``
    (else none), and fishes at ``F = f_target_per_yr × fraction`` in years with
    ``years[y] >= fishing_from_year`` (else F = 0), with ``fraction = clip((e − b_limit_t)/b_span_t,
    0, 1)`` where ``ramp`` and 1 elsewhere; F replaces the catch or F given to :func:`simulate`
    and the releases add to its ``release_fish``.

    ``years`` is ``(Y,)`` calendar years (at least the simulated years); ``release_fish`` and
    ``release_length_cm`` are ``(program, Y, age)`` float64 (fish before acute survival, cm); the
    other fields broadcast to the batch, ``program`` (int) indexing the release arrays.
    """

    years: NDArray
    trigger_t: Any
    f_target_per_yr: Any
    b_limit_t: Any
    b_span_t: Any
    ramp: Any
    fishing_from_year: Any
    program: Any
    release_fish: NDArray
    release_length_cm: NDArray


@dataclass(frozen=True)
class PopulationState:
    """What :func:`simulate` returns; arrays are ``(*batch, year[, origin, age])``.

    ``numbers`` and ``length_cm`` are on 1 January of each year after releases (``keep_numbers``);
    ``biomass_t`` is the end-of-year biomass the hydroacoustic survey sees with q = 1
    (``Σ N·W·sel_s(L)``); ``ssb_t`` the 1 January spawning biomass of both origins;
    ``spawning_output_t`` the same with hatchery-origin spawners weighted by their RRS;
    ``eggs`` the eggs they spawn; ``recruits`` the year class spawned that year, counted when it
    reaches age 1 on 1 January of the next year; ``window_survivors`` the fish of both origins
    that survive the last age of the juvenile density-dependence window;
    ``hatchery_fraction_numbers`` the hatchery-origin share of the end-of-year numbers the
    survey sees (what a sample of fish examined for marks estimates). ``end_numbers`` and
    ``end_length_cm`` ``(*batch, k, origin, age)`` are the end-of-year survivors and their body
    lengths in the years asked for by ``keep_end_years`` (the state that net samples see).
    """

    biomass_t: NDArray
    # each series below is None where ``simulate(outputs=...)`` did not keep it
    total_biomass_t: NDArray | None
    ssb_t: NDArray | None
    spawning_output_t: NDArray | None
    eggs: NDArray | None
    recruits: NDArray | None
    catch_t: NDArray | None
    catch_shortfall_t: NDArray | None
    f_per_yr: NDArray | None
    released_fish: NDArray | None
    hatchery_fraction_biomass: NDArray | None
    hatchery_fraction_ssb: NDArray | None
    juvenile_survival_dd: NDArray | None
    window_survivors: NDArray | None
    wild_window_survivors: NDArray | None
    hatchery_fraction_numbers: NDArray | None
    numbers: NDArray | None
    length_cm: NDArray | None
    natural_deaths: NDArray | None
    catch_numbers: NDArray | None
    end_numbers: NDArray | None
    end_length_cm: NDArray | None
    final_numbers: NDArray
    final_length_state_cm: NDArray
    reference: ReferencePoints

    @property
    def recruits_per_egg(self) -> NDArray:
        """Recruits of each year class per egg that produced it (0 where no eggs)."""
        if self.recruits is None or self.eggs is None:
            raise ValueError("recruits_per_egg needs the recruits and eggs series: simulate(outputs=...) "
                             "did not keep them")
        return np.divide(self.recruits, self.eggs, out=np.zeros_like(self.recruits), where=self.eggs > 0)


def _batch_shape(params: Parameters, *arrays_with_trailing: tuple[Any, int],
                 multipliers: ProcessMultipliers) -> tuple[int, ...]:
    shapes = [params.batch_shape, *multipliers.batch_shapes()]
    for array, trailing in arrays_with_trailing:
        if array is not None:
            shapes.append(np.shape(array)[: np.ndim(array) - trailing])
    return np.broadcast_shapes(*shapes)


def simulate(
    params: Parameters,
    *,
    n_years: int,
    catch_t: Any = None,
    f_per_yr: Any = None,
    release_fish: Any = None,
    release_length_cm: Any = None,
    log_rec_devs: Any = None,
    multipliers: ProcessMultipliers | None = None,
    initial_numbers: Any = None,
    initial_length_state_cm: Any = None,
    keep_numbers: bool = True,
    keep_flows: bool = False,
    policy: Policy | None = None,
    survey_log_errors: Any = None,
    initial_survey_estimate_t: Any = None,
    batch_shape: tuple[int, ...] = (),
    dtype: Any = np.float64,
    keep_end_years: Any = (),
    reference: ReferencePoints | None = None,
    outputs: str | Sequence[str] = kernel.OUTPUT_FIELDS,
) -> PopulationState:
    """Run the population forward ``n_years`` years.

    Parameters
    ----------
    params : Parameters
        Natural-scale parameters; array fields add leading batch axes.
    n_years : int
        Number of annual steps.
    catch_t : array (*batch, year), t, optional
        Observed catch; F is solved each year to take it (capped at ``f_max_per_yr``).
    f_per_yr : array (*batch, year), 1/yr, optional
        Fully selected fishing mortality instead of catch. Neither given: no fishing.
    release_fish : array (*batch, year, age), fish, optional
        Hatchery fish released at each age (before acute survival ``release_survival``).
    release_length_cm : array (*batch, year, age), cm, optional
        Body length of the released fish (required with ``release_fish``).
    log_rec_devs : array (*batch, year), optional
        Recruitment deviations ε on the logit of the egg survival of each year class (any bias
        correction is the caller's).
    multipliers : ProcessMultipliers, optional
        Per-year forcing multipliers of growth, M, recruitment and maturity.
    initial_numbers, initial_length_state_cm : array (*batch, origin, age), optional
        1 January state of the first year (the wild age-0 slot empty); default: equilibrium
        under ``params.initial_f_per_yr``.
    keep_numbers : bool
        Store numbers and body length by (year, origin, age).
    keep_flows : bool
        Store natural deaths and catch in numbers by (year, origin, age).
    policy : Policy, optional
        Management rule applied each year from the previous year's survey estimate (float64:
        ``q × biomass × exp(error)``); its releases add to ``release_fish`` and its F replaces
        the catch or F of that year. A policy whose ``tables()`` gives its rule runs inside the
        kernel (one call for every year, when ``release_fish`` is the same for every row); any
        other is called between years.
    survey_log_errors : array (*batch, year), optional
        Log-normal errors of the simulated survey the policy reads (0 if not given).
    initial_survey_estimate_t : array (*batch), optional
        The survey estimate the policy sees in the first year (default: the initial state's
        biomass of the survey ages, without error).
    batch_shape : tuple of int
        Extra batch shape to broadcast with (e.g. a strategy axis that only the policy's
        arrays carry).
    dtype : numpy float dtype
        Precision of the state arrays and outputs: float64 (default; fits and their finite
        differences need it) or float32 (projections: half the memory traffic, ~7 significant
        digits, ample for biomass in tonnes). Reference points and the initial equilibrium
        are always computed in float64.
    keep_end_years : sequence of int
        Indices of the years whose end-of-year survivors and body lengths are kept
        (``end_numbers``, ``end_length_cm``).
    reference : ReferencePoints, optional
        ``reference_points(params)`` when the caller has them (a fit's objective does).
    outputs : str or sequence of str
        The yearly series to keep (default: all of :data:`carpmodel.model.kernel.OUTPUT_FIELDS`);
        the others are None in the result and are neither stored nor allocated (a projection
        keeps the nine it reports). ``biomass_t`` is always kept: a policy reads it.
    """
    if catch_t is not None and f_per_yr is not None:
        raise ValueError("give catch_t or f_per_yr, not both")
    if release_fish is not None and release_length_cm is None:
        raise ValueError("release_length_cm is required with release_fish")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    multipliers = multipliers or ProcessMultipliers()
    batch = _batch_shape(params, (catch_t, 1), (f_per_yr, 1), (release_fish, 2),
                         (release_length_cm, 2), (log_rec_devs, 1), (initial_numbers, 2),
                         (survey_log_errors, 1), (initial_survey_estimate_t, 0),
                         multipliers=multipliers)
    batch = np.broadcast_shapes(batch, tuple(batch_shape))
    n_rows = int(np.prod(batch, dtype=np.int64))
    lanes = kernel.padded_rows(n_rows)   # the kernel's rows: padded with copies of the first
    n_age = params.n_age
    ref = reference_points(params) if reference is None else reference
    keep_end = [int(i) for i in keep_end_years]

    if initial_numbers is None:   # wild fish in equilibrium, laid out for the kernel as they come
        wild, wild_length = wild_equilibrium(params, params.initial_f_per_yr, reference=ref)
        numbers = np.zeros((2, n_age, lanes), dtype)
        numbers[WILD] = _to_lanes(_by_row(wild[..., 0, :], batch, (n_age,)), lanes)
        length = np.empty((2, n_age, lanes), dtype)
        length[WILD] = length[HATCHERY] = _to_lanes(_by_row(wild_length[..., 0, :], batch, (n_age,)), lanes)
    else:   # the kernel's own copies (the caller's arrays are never written)
        numbers, length = (_to_lanes(_by_row(np.asarray(values, dtype=dtype), batch, (2, n_age)), lanes)
                           for values in (initial_numbers, initial_length_state_cm))
    numbers[WILD, 0] = 0.0
    rows = _to_lanes(_row_table(params, ref, batch), lanes).astype(dtype)

    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    unknown = sorted(set(outputs) - set(kernel.OUTPUT_FIELDS))
    if unknown:
        raise ValueError(f"outputs: unknown {unknown}; expected names from {kernel.OUTPUT_FIELDS}")
    kept_series = [name for name in kernel.OUTPUT_FIELDS if name in outputs or name == "biomass_t"]
    slots = np.array([kept_series.index(name) if name in kept_series else -1
                      for name in kernel.OUTPUT_FIELDS], dtype=np.int64)
    out = np.zeros((len(kept_series), lanes, n_years), dtype)
    kept = np.zeros((2, n_years, 2, n_age, lanes) if keep_numbers else (0,) * 5, dtype)
    flows = np.zeros((2, n_years, 2, n_age, lanes) if keep_flows else (0,) * 5, dtype)
    end = np.zeros((2, len(keep_end), 2, n_age, lanes) if keep_end else (0,) * 5, dtype)

    def from_lanes(values: NDArray, trailing: tuple[int, ...] = ()) -> NDArray:
        """``(..., lanes)`` kernel array → ``(*batch, ...)`` (the padding dropped): a view, not a
        copy (a transposing copy of the outputs cost a quarter of a large projection's time)."""
        return np.moveaxis(values[..., :n_rows], -1, 0).reshape(batch + trailing)

    q = np.asarray(params.survey_q, dtype=float)
    if policy is not None and initial_survey_estimate_t is None:
        p = expand(params, dtype)
        start_numbers = from_lanes(numbers, (2, n_age))
        body0 = body_length_cm(from_lanes(length, (2, n_age)), p["hatch_length_cm"])
        w0 = weight_g(body0, p["lw_a"], p["lw_b"])
        seen = logistic_selectivity(body0, p["survey_l50_cm"], p["survey_slope_cm"])
        # each row's cells summed as one contiguous row, so the order of the additions (numpy's
        # pairwise sum) is the same whatever the batch
        seen_biomass = np.ascontiguousarray(start_numbers * w0 * seen).reshape(batch + (2 * n_age,))
        initial_survey_estimate_t = q * np.sum(seen_biomass, axis=-1) / 1e6
    if catch_t is not None:
        mode, fishing = kernel.CATCH_GIVEN, catch_t
    elif f_per_yr is not None:
        mode, fishing = kernel.F_GIVEN, f_per_yr
    else:
        mode, fishing = kernel.NO_FISHING, 0.0
    year_table = _year_table(batch, lanes, n_years, dtype, multipliers, log_rec_devs, fishing)
    given = _given_releases(release_fish, release_length_cm, n_years, n_age)
    ricker = params.recruitment == "ricker"
    end_index = np.full(n_years, -1, dtype=np.int64)   # the slot of `end` each year fills, or -1
    for slot, year in enumerate(keep_end):
        end_index[year] = slot
    offered = getattr(policy, "tables", None)
    tables = offered() if offered is not None and given is not None else None
    whole_run = (policy is None or tables is not None) and given is not None
    if whole_run:
        # nothing decided in Python between years: every year in one kernel call
        rule = () if policy is None else _rule(tables, batch, lanes, n_years, q,
                                                initial_survey_estimate_t, survey_log_errors)
        kernel.run_years(numbers, length, rows, year_table, mode, *given, ricker, out, slots, kept, flows,
                         end, end_index, rule)
    for y in range(0 if whole_run else n_years):
        year_in, year_mode = year_table[:, :, y], mode
        control = YearControl()
        if policy is not None:
            if y == 0:
                estimate = np.broadcast_to(np.asarray(initial_survey_estimate_t, dtype=float), batch)
            else:
                error = 0.0 if survey_log_errors is None else \
                    np.asarray(survey_log_errors, dtype=float)[..., y - 1]
                # in float64 whatever the state's precision (as the kernel's rule reads it)
                estimate = q * out[0, :n_rows, y - 1].astype(float).reshape(batch) * np.exp(error)
            control = policy(y, estimate)
            if control.f_per_yr is not None:
                year_mode = kernel.F_GIVEN
                _put_rows(year_in[kernel.Y_FISHING], control.f_per_yr, batch)
        if control.release_fish is None and given is not None:
            releases = (given[0][y], given[1])
        else:
            releases = _release_sets(
                batch, n_rows, lanes, n_age,
                (None, None) if release_fish is None else
                (_in_year(release_fish, y), _in_year(release_length_cm, y)),
                (control.release_fish, control.release_length_cm))
        kernel.year_step(numbers, length, rows, year_in, year_mode, *releases, ricker, out, slots, y, kept,
                         flows, end, int(end_index[y]))

    years = (n_years, 2, n_age)
    kept_years = (len(keep_end), 2, n_age)
    return PopulationState(
        # each row's years are contiguous in ``out``: a field's series are a view, not a copy
        **{name: out[slot, :n_rows].reshape(batch + (n_years,)) if slot >= 0 else None
           for name, slot in zip(kernel.OUTPUT_FIELDS, slots, strict=True)},
        numbers=from_lanes(kept[0], years) if keep_numbers else None,
        length_cm=from_lanes(kept[1], years) if keep_numbers else None,
        natural_deaths=from_lanes(flows[0], years) if keep_flows else None,
        catch_numbers=from_lanes(flows[1], years) if keep_flows else None,
        end_numbers=from_lanes(end[0], kept_years) if keep_end else None,
        end_length_cm=from_lanes(end[1], kept_years) if keep_end else None,
        final_numbers=from_lanes(numbers, (2, n_age)),
        final_length_state_cm=from_lanes(length, (2, n_age)), reference=ref)


def _rule(tables: PolicyTables, batch: tuple[int, ...], lanes: int, n_years: int,
          q: Any, initial_estimate_t: Any, survey_log_errors: Any) -> tuple:
    """A policy's tables as the kernel's ``rule`` (:func:`carpmodel.model.kernel.run_years`):
    per-row columns, the survey's error factors ``exp(error)`` of every year (computed here, as
    the year loop does, so both paths read the same estimates), and the releases at the ages
    any program releases into."""
    years = np.asarray(tables.years, dtype=float)
    if years.shape[0] < n_years:
        raise ValueError(f"policy tables: expected at least {n_years} years, got {years.shape[0]}")
    columns = {"trigger_t": tables.trigger_t, "f_target_per_yr": tables.f_target_per_yr,
               "b_limit_t": tables.b_limit_t, "b_span_t": tables.b_span_t, "ramp": tables.ramp,
               "fishing_from_year": tables.fishing_from_year, "program": tables.program,
               "survey_q": q, "initial_estimate_t": initial_estimate_t}
    table = _to_lanes(row_table([columns[name] for name in kernel.RULE_FIELDS], batch), lanes)
    # the estimate of year y − 1 is read in year y: the errors of the first n_years − 1 years
    n_read = max(n_years - 1, 0)
    errors = np.zeros(n_read) if survey_log_errors is None else np.asarray(survey_log_errors, dtype=float)
    factor = np.empty((lanes, n_read))   # (row, year): each row's years contiguous, as the kernel reads them
    _put_rows(factor, np.exp(errors[..., :n_read]), batch)
    fish = np.asarray(tables.release_fish, dtype=float)[:, :n_years]
    lengths = np.asarray(tables.release_length_cm, dtype=float)[:, :n_years]
    releases, ages = _at_release_ages(fish, lengths)
    return table, factor, releases, ages, years[:n_years].copy()


def _in_year(values: Any, y: int) -> NDArray:
    """Year ``y`` of releases given as ``(*batch, year, age)``; an array of fewer than two axes
    (a scalar or ``(age,)``) is the same every year, as :func:`_given_releases` reads it."""
    values = np.asarray(values, dtype=float)
    return values if values.ndim < 2 else values[..., y, :]


def _put_rows(target: NDArray, value: Any, batch: tuple[int, ...]) -> None:
    """``value`` broadcast to ``(*batch, *target.shape[1:])`` into the kernel rows of ``target``
    ``(lanes, ...)``, the padding rows copies of the first. ``target``'s rows are a leading
    slice of a C-ordered array, or one axis of any strides: reshaped in place, never copied."""
    n_rows = int(np.prod(batch, dtype=np.int64))
    target[:n_rows].reshape(batch + target.shape[1:])[...] = value
    target[n_rows:] = target[:1]


def _year_table(batch: tuple[int, ...], lanes: int, n_years: int, dtype: Any,
                multipliers: ProcessMultipliers, log_rec_devs: Any, fishing: Any) -> NDArray:
    """Every year's kernel inputs, ``(len(kernel.YEAR_FIELDS), lanes, year)`` in the state's
    dtype: the forcing multipliers, the logit deviation of egg survival (``ln g_R + ε``) and the
    catch or F (a policy may overwrite a year's F). Each row's years are contiguous, as the
    inputs come (``(*batch, year)``), so a column is filled by broadcasting, without a
    transposing copy."""
    table = np.empty((len(kernel.YEAR_FIELDS), lanes, n_years), dtype)

    def simulated_years(value: Any) -> NDArray:
        """A scalar, or a per-year array cut to the simulated years (it may run past them)."""
        value = np.asarray(value, dtype=float)
        return value if value.ndim == 0 else value[..., :n_years]

    deviation = np.log(simulated_years(multipliers.recruitment))
    if log_rec_devs is not None:
        deviation = deviation + simulated_years(log_rec_devs)
    columns = {kernel.Y_KMULT: multipliers.growth_k, kernel.Y_MMULT: multipliers.natural_mortality,
               kernel.Y_MATMULT: multipliers.maturity_l50, kernel.Y_DEV: deviation,
               kernel.Y_FISHING: fishing}
    for column, value in columns.items():
        _put_rows(table[column], simulated_years(value), batch)
    return table


def _given_releases(release_fish: Any, release_length_cm: Any, n_years: int,
                    n_age: int) -> tuple[NDArray, NDArray] | None:
    """The releases given to :func:`simulate` for the kernel when they are the same for every
    row: ``(year, set, 2, k, 1)`` float64 fish and lengths at the ``k`` ages released into in
    any year, and those ages (no set when nothing is released; a year without releases holds
    zeros, which the kernel skips); None when they differ across the batch (they are then laid
    out year by year)."""
    if release_fish is None:
        return np.zeros((n_years, 0, 2, 0, 1)), NO_RELEASES[1]
    fish = np.asarray(release_fish, dtype=float)
    lengths = np.asarray(release_length_cm, dtype=float)
    if fish.ndim > 2 or lengths.ndim > 2:
        return None
    # a year axis may run past n_years (the years after are not simulated)
    fish = np.broadcast_to(fish[:n_years] if fish.ndim == 2 else fish, (n_years, n_age))
    lengths = np.broadcast_to(lengths[:n_years] if lengths.ndim == 2 else lengths, (n_years, n_age))
    stacked, ages = _at_release_ages(fish, lengths)
    stacked = stacked[:, None, :, :, None]
    return np.ascontiguousarray(stacked if ages.size else stacked[:, :0]), ages


def _at_release_ages(fish: NDArray, lengths: NDArray) -> tuple[NDArray, NDArray]:
    """Fish and their lengths ``(..., age)`` at the ``k`` ages released into anywhere in
    ``fish``: ``(..., 2, k)`` float64, C-contiguous, and those ages (int64)."""
    ages = np.flatnonzero(np.any(fish != 0, axis=tuple(range(fish.ndim - 1)))).astype(np.int64)
    return np.ascontiguousarray(np.stack([fish[..., ages], lengths[..., ages]], axis=-2)), ages


def _by_row(values: NDArray, batch: tuple[int, ...], trailing: tuple[int, ...]) -> NDArray:
    """``values`` broadcast to ``(*batch, *trailing)``, as ``(row, *trailing)``."""
    return np.broadcast_to(values, batch + trailing).reshape((-1,) + trailing)


def _to_lanes(values: NDArray, lanes: int) -> NDArray:
    """``(row, ...)`` → the kernel's ``(..., lanes)`` layout, C-contiguous, padded with copies of
    the first row."""
    moved = np.moveaxis(values, 0, -1)
    padded = np.empty(moved.shape[:-1] + (lanes,), values.dtype)
    padded[..., : values.shape[0]] = moved
    padded[..., values.shape[0]:] = moved[..., :1]
    return padded


def _row_table(params: Parameters, ref: ReferencePoints, batch: tuple[int, ...]) -> NDArray:
    """The kernel's per-row parameters, ``(row, len(kernel.ROW_FIELDS))`` float64."""
    derived = {
        "eggs_per_t": eggs_per_tonne(params.female_fraction, params.fecundity_eggs_per_g),
        "juveniles0": ref.juveniles0, "alpha": ref.alpha, "beta": ref.beta,
    }
    return row_table([derived[name] if name in derived else getattr(params, name)
                      for name in kernel.ROW_FIELDS], batch)


def _release_sets(batch: tuple[int, ...], n_rows: int, lanes: int, n_age: int,
                  *sets: tuple[Any, Any]) -> tuple[NDArray, NDArray]:
    """Releases of one year for the kernel: ``(set, 2, k, lanes or 1)`` float64 fish before acute
    survival and their length (cm) at the ``k`` ages any set releases into, and those ages
    (int64); one column serves every row when no set varies across the batch. Only the ages
    with releases are laid out (a policy's arrays hold every age, nearly all zero)."""
    given = [(np.asarray(fish, dtype=float), np.asarray(lengths, dtype=float))
             for fish, lengths in sets if fish is not None]
    used = [np.any(fish != 0, axis=tuple(range(fish.ndim - 1))) if fish.ndim else np.full(n_age, fish != 0)
            for fish, _ in given]
    given = [pair for pair, ages in zip(given, used, strict=True) if np.any(ages)]
    if not given:
        return NO_RELEASES
    ages = np.flatnonzero(np.logical_or.reduce([np.broadcast_to(u, (n_age,)) for u in used]))
    k = ages.size
    if all(fish.ndim <= 1 and lengths.ndim <= 1 for fish, lengths in given):
        out = np.empty((len(given), 2, k, 1))
        for s, (fish, lengths) in enumerate(given):
            out[s, 0, :, 0] = np.broadcast_to(fish, (n_age,))[ages]
            out[s, 1, :, 0] = np.broadcast_to(lengths, (n_age,))[ages]
        return out, ages
    out = np.empty((len(given), 2, k, lanes))
    shape = batch + (k,)
    for s, (fish, lengths) in enumerate(given):
        for i, values in enumerate((fish, lengths)):
            at_ages = np.broadcast_to(values, values.shape[:-1] + (n_age,))[..., ages]
            out[s, i] = _to_lanes(np.broadcast_to(at_ages, shape).reshape(n_rows, k), lanes)
    return out, ages


#: the kernel's releases of a year without any
NO_RELEASES = (np.zeros((0, 2, 0, 1)), np.zeros(0, dtype=np.int64))
