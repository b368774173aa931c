"""The engine's year step as one compiled kernel (numba): every batch row, one year, one call.

:func:`carpmodel.model.dynamics.simulate` prepares flat arrays — the state ``(row, origin, age)``,
one row of parameters per batch row (:data:`ROW_FIELDS`), the year's inputs (:data:`YEAR_FIELDS`)
and releases — and calls :func:`year_step` once per simulated year. The kernel follows the
order of events documented in :mod:`carpmodel.model.dynamics`, cell by cell, with the same
formulas as :mod:`carpmodel.model.growth`, :mod:`~carpmodel.model.mortality`,
:mod:`~carpmodel.model.recruitment` and :mod:`~carpmodel.model.stocking` (the numpy functions
there remain the documented definitions; ``tests/reference_engine.py`` runs them year by year to
check the kernel).

Rows are independent: a row's result never depends on the other rows, on how a batch is
chunked or on the number of threads (rows run in blocks of :data:`BLOCK` rows, blocks in
parallel; arithmetic is strict IEEE, no fast-math). Arithmetic is float64 throughout; the state
and outputs are stored in the state's dtype (float32 projections round once per year).

Compilation: the first call of a process compiles or loads the kernel from numba's cache
(``__pycache__`` beside this file, or the directory in ``NUMBA_CACHE_DIR`` where the package
directory is not writable). A cold compile takes ~10-40 s CPU once per installation and
dtype; :func:`announce_compile` says so on stderr.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from numba import njit, prange

from carpmodel.model.mortality import TIME_NODES, TIME_WEIGHTS

__all__ = ["BLOCK", "OUTPUT_FIELDS", "ROW_FIELDS", "YEAR_FIELDS", "announce_compile", "year_step"]

#: rows per parallel block (each block allocates its scratch once)
BLOCK = 64
#: batches with at least this many rows run on numba's threads
PARALLEL_ROWS = 512

#: columns of the per-row parameter table (float64)
ROW_FIELDS = (
    "l_inf_cm", "k_per_yr", "hatch_time_yr", "hatch_length_cm", "lw_a", "lw_b",
    "maturity_l50_cm", "maturity_slope_cm", "eggs_per_t", "selectivity_l50_cm",
    "selectivity_slope_cm", "survey_l50_cm", "survey_slope_cm", "m_ref_per_yr",
    "m_ref_length_cm", "lorenzen_c", "dd_strength", "juveniles0", "dd_window_end_age_yr",
    "release_survival", "release_survival_size_slope", "release_reference_weight_g",
    "relative_reproductive_success", "f_max_per_yr", "alpha", "beta",
)
(L_INF, K, HATCH_T, HATCH_L, LW_A, LW_B, MAT_L50, MAT_SLOPE, EGGS_PER_T, SEL_L50, SEL_SLOPE,
 SUR_L50, SUR_SLOPE, M_REF, M_REF_L, LOR_C, GAMMA, J0, WINDOW, REL_S, REL_SLOPE, REL_WREF, RRS,
 F_MAX, ALPHA, BETA) = range(len(ROW_FIELDS))

#: columns of the per-row inputs of one year (float64): multipliers of K, M and maturity L50,
#: the deviation on the logit of the egg survival, and the catch (t) or F (1/yr)
YEAR_FIELDS = ("growth_k", "natural_mortality", "maturity_l50", "logit_deviation", "fishing")
Y_KMULT, Y_MMULT, Y_MATMULT, Y_DEV, Y_FISHING = range(len(YEAR_FIELDS))

#: fishing modes of a year: none, F given (``fishing`` column, 1/yr), catch given (t, F solved)
NO_FISHING, F_GIVEN, CATCH_GIVEN = 0, 1, 2

#: the kernel's scalar outputs per row and year, in the order of its ``out`` array
OUTPUT_FIELDS = (
    "biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "eggs", "recruits", "catch_t",
    "catch_shortfall_t", "f_per_yr", "released_fish", "hatchery_fraction_biomass",
    "hatchery_fraction_ssb", "hatchery_fraction_numbers", "juvenile_survival_dd",
    "window_survivors", "wild_window_survivors",
)

#: Newton iterations and relative tolerance of the F-from-catch solver
#: (:func:`carpmodel.model.mortality.solve_f_from_catch`)
F_NEWTON_ITERATIONS = 30
F_TOLERANCE = 1e-14


@njit(cache=True, inline="always")
def _weight(body: float, lw_a: float, lw_b: float) -> float:
    if lw_b == 3.0:
        return lw_a * (body * body * body)
    return lw_a * body ** lw_b


@njit(cache=True, inline="always")
def _logistic(x: float, l50: float, slope: float) -> float:
    return 1.0 / (1.0 + math.exp(-(x - l50) / slope))


@njit(cache=True, inline="always")
def _lorenzen(length: float, p: np.ndarray, rate: float, scale: float, growth_span: float,
              nodes: np.ndarray, weights: np.ndarray) -> float:
    """Lorenzen M integrated over the year along the growth path (1/yr); ``growth_span`` is
    ``L∞·(e^rate − 1)``, the same for every cell of a row."""
    c = p[LOR_C]
    if c == 0.0:
        return scale
    l_inf = p[L_INF]
    hatch = p[HATCH_L]
    if c == 1.0:
        if length >= hatch:
            integral = math.log1p(growth_span / length) / (rate * l_inf)
        else:
            ratio = (l_inf - length) / max(l_inf - hatch, 1e-12)
            t_a = min(max(math.log(max(ratio, 1.0)) / rate, 0.0), 1.0)
            rest = math.log1p(l_inf * math.expm1(rate * (1.0 - t_a)) / max(length, hatch)) / (rate * l_inf)
            integral = t_a / hatch + rest
        return scale * p[M_REF_L] * integral
    total = 0.0
    for j in range(nodes.shape[0]):
        path = max(l_inf - (l_inf - length) * math.exp(-rate * nodes[j]), hatch)
        total += (path / p[M_REF_L]) ** (-c) * weights[j]
    return scale * total


@njit(cache=True)
def _release_survival(p: np.ndarray, length: float) -> float:
    """Acute survival of fish released at ``length`` (cm) (:func:`release_survival_at_weight`)."""
    s_ref = p[REL_S]
    slope = p[REL_SLOPE]
    if slope == 0.0 or s_ref <= 0.0 or s_ref >= 1.0:
        return s_ref
    weight = p[LW_A] * length ** p[LW_B]
    shift = slope * math.log(weight / p[REL_WREF])
    if not math.isfinite(shift):
        return s_ref
    return 1.0 / (1.0 + math.exp(-((math.log(s_ref) - math.log1p(-s_ref)) + shift)))


@njit(cache=True)
def _f_from_catch(catch: float, numbers: np.ndarray, weight: np.ndarray, sel: np.ndarray,
                  m: np.ndarray, f_max: float) -> tuple[float, float]:
    """F taking ``catch`` (t) by Newton from 0, capped at ``f_max``; and the shortfall (t)."""
    if not catch > 0.0:
        return 0.0, 0.0
    n_origin, n_age = numbers.shape
    f = 0.0
    for _ in range(F_NEWTON_ITERATIONS):
        predicted = 0.0
        slope = 0.0
        for o in range(n_origin):
            for a in range(n_age):
                vuln = numbers[o, a] * weight[o, a] * sel[o, a] / 1e6
                z = m[o, a] + f * sel[o, a]
                survive = math.exp(-z)
                predicted += vuln * f / z * (1.0 - survive)
                slope += vuln * (m[o, a] / z ** 2 * (1.0 - survive) + f * sel[o, a] / z * survive)
        step = (catch - predicted) / slope if slope > 0.0 else 0.0
        f_next = min(max(f + step, 0.0), f_max)
        done = abs(f_next - f) <= F_TOLERANCE * f_next
        f = f_next
        if done:
            break
    taken = 0.0
    for o in range(n_origin):
        for a in range(n_age):
            f_sel = f * sel[o, a]
            z = m[o, a] + f_sel
            fraction = f_sel / z * (1.0 - math.exp(-z)) if z > 0.0 else 0.0
            taken += numbers[o, a] * weight[o, a] * sel[o, a] / 1e6 * fraction
    shortfall = max(catch - taken, 0.0) if f >= f_max * (1.0 - 1e-12) else 0.0
    return f, shortfall


def year_step(numbers: np.ndarray, length: np.ndarray, rows: np.ndarray, year_in: np.ndarray,
              fishing_mode: int, releases: np.ndarray, ricker: bool, out: np.ndarray, y: int,
              kept: np.ndarray, flows: np.ndarray, end: np.ndarray, end_index: int) -> None:
    """Advance every row one year in place and write its outputs of year ``y``.

    numbers, length : (row, origin, age) fish and cm (1 January, updated to the next 1 January)
    rows : (row, len(ROW_FIELDS)) float64 parameters; year_in : (row, len(YEAR_FIELDS)) float64
    fishing_mode : NO_FISHING, F_GIVEN or CATCH_GIVEN (the ``fishing`` column's meaning)
    releases : (set, 2, row, age) float64 fish released (before acute survival) and their length,
        cm; a single row serves every row
    out : (len(OUTPUT_FIELDS), row, year) outputs; kept : (2, row, year, origin, age) numbers and
    body length after releases, or a size-0 array; flows : (2, row, year, origin, age) natural
    deaths and catch in numbers, or size 0; end : (2, row, k, origin, age) end-of-year survivors
    and body length, written at ``end_index`` when it is >= 0.

    Batches of at least :data:`PARALLEL_ROWS` rows run their blocks on numba's threads, smaller
    ones on the calling thread (a thread launch costs more than a small batch's work); the
    results are the same bit for bit.
    """
    args = (numbers, length, rows, year_in, fishing_mode, releases, ricker, _NODES, _WEIGHTS,
            out, y, kept, flows, end, end_index)
    if numbers.shape[0] >= PARALLEL_ROWS:
        _year_parallel(*args)
    else:
        _year_serial(*args)


@njit(cache=True, parallel=True)
def _year_parallel(numbers, length, rows, year_in, fishing_mode, releases, ricker, nodes, weights,
                   out, y, kept, flows, end, end_index):  # noqa: ANN001, ANN202
    n_blocks = (numbers.shape[0] + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _advance_rows(block * BLOCK, min((block + 1) * BLOCK, numbers.shape[0]), numbers, length,
                      rows, year_in, fishing_mode, releases, ricker, nodes, weights, out, y, kept,
                      flows, end, end_index)


@njit(cache=True)
def _year_serial(numbers, length, rows, year_in, fishing_mode, releases, ricker, nodes, weights,
                 out, y, kept, flows, end, end_index):  # noqa: ANN001, ANN202
    _advance_rows(0, numbers.shape[0], numbers, length, rows, year_in, fishing_mode, releases,
                  ricker, nodes, weights, out, y, kept, flows, end, end_index)


@njit(cache=True)
def _advance_rows(start, stop, numbers, length, rows, year_in, fishing_mode, releases, ricker,
                  nodes, weights, out, y, kept, flows, end, end_index):  # noqa: ANN001, ANN202
    """Rows ``start..stop`` of :func:`year_step` (one block's scratch arrays)."""
    n_origin, n_age = numbers.shape[1], numbers.shape[2]
    keep = kept.size > 0
    keep_flows = flows.size > 0
    body = np.empty((n_origin, n_age))
    weight = np.empty((n_origin, n_age))
    m = np.empty((n_origin, n_age))
    sel = np.empty((n_origin, n_age))
    state = np.empty((n_origin, n_age))
    survivors = np.empty((n_origin, n_age))
    grown = np.empty((n_origin, n_age))
    for b in range(start, stop):
        p = rows[b]
        yr = year_in[b]
        hatch = p[HATCH_L]
        l_inf = p[L_INF]
        # 1. spawning from 1 January numbers
        mat_l50 = p[MAT_L50] * yr[Y_MATMULT]
        ssb_w = 0.0
        ssb_h = 0.0
        for o in range(n_origin):
            for a in range(n_age):
                bd = max(length[b, o, a], hatch)
                mature = _logistic(bd, mat_l50, p[MAT_SLOPE])
                value = numbers[b, o, a] * _weight(bd, p[LW_A], p[LW_B]) * mature
                if o == 0:
                    ssb_w += value
                else:
                    ssb_h += value
        ssb_w /= 1e6
        ssb_h /= 1e6
        ssb = ssb_w + ssb_h
        spawning = ssb_w + p[RRS] * ssb_h
        eggs = spawning * p[EGGS_PER_T]
        # 2. the year class (recruits at age 1 next 1 January)
        alpha = p[ALPHA]
        logit_a = math.log(alpha / (1.0 - alpha)) + yr[Y_DEV]
        survival_a = 1.0 / (1.0 + math.exp(-logit_a))
        if ricker:
            recruits = survival_a * eggs * math.exp(-p[BETA] * eggs)
        else:
            recruits = survival_a * eggs / (1.0 + p[BETA] * eggs)
        # 3. releases into the hatchery origin (numbers-weighted mean length)
        released = 0.0
        rb = b if releases.shape[2] > 1 else 0
        for s in range(releases.shape[0]):
            for a in range(n_age):
                fish = releases[s, 0, rb, a]
                released += fish
                if fish == 0.0:
                    continue
                release_length = releases[s, 1, rb, a]
                entering = fish * _release_survival(p, release_length)
                if entering > 0.0:
                    before = numbers[b, 1, a]
                    total = before + entering
                    length[b, 1, a] = (before * length[b, 1, a] + entering * release_length) / total
                    numbers[b, 1, a] = total
        # 4. mortality: Lorenzen M, juvenile density dependence, fishing
        rate = p[K] * yr[Y_KMULT]
        scale = p[M_REF] * yr[Y_MMULT]
        growth_span = l_inf * math.expm1(rate)
        window = int(p[WINDOW])
        juveniles = 0.0
        total_biomass = 0.0
        for o in range(n_origin):
            for a in range(n_age):
                n = numbers[b, o, a]
                state[o, a] = n
                bd = max(length[b, o, a], hatch)
                body[o, a] = bd
                weight[o, a] = _weight(bd, p[LW_A], p[LW_B])
                total_biomass += n * weight[o, a]
                m[o, a] = _lorenzen(length[b, o, a], p, rate, scale, growth_span, nodes, weights)
                if a <= window:
                    juveniles += n
        relative = p[GAMMA] * juveniles / p[J0]
        m_dd = math.log1p(relative)
        for o in range(n_origin):
            for a in range(window + 1):
                m[o, a] += m_dd
        f = 0.0
        shortfall = 0.0
        if fishing_mode != NO_FISHING:
            for o in range(n_origin):
                for a in range(n_age):
                    sel[o, a] = _logistic(body[o, a], p[SEL_L50], p[SEL_SLOPE])
            if fishing_mode == F_GIVEN:
                f = yr[Y_FISHING]
            else:
                f, shortfall = _f_from_catch(yr[Y_FISHING], state, weight, sel, m, p[F_MAX])
        # 5. survival and catch, growth, the survey's end-of-year biomass
        growth = 1.0 - math.exp(-rate)
        catch = 0.0
        survey_w = 0.0
        survey_h = 0.0
        seen_w = 0.0
        seen_h = 0.0
        for o in range(n_origin):
            for a in range(n_age):
                n = state[o, a]
                z = m[o, a]
                caught = 0.0
                if f > 0.0:
                    f_sel = f * sel[o, a]
                    z += f_sel
                    caught = n * ((f_sel / z if z > 0.0 else 0.0) * (1.0 - math.exp(-z)))
                    catch += caught * weight[o, a]
                alive = n * math.exp(-z)
                survivors[o, a] = alive
                grown[o, a] = length[b, o, a] + (l_inf - length[b, o, a]) * growth
                grown_body = max(grown[o, a], hatch)
                seen = alive * _logistic(grown_body, p[SUR_L50], p[SUR_SLOPE])
                if o == 0:
                    survey_w += seen * _weight(grown_body, p[LW_A], p[LW_B])
                    seen_w += seen
                else:
                    survey_h += seen * _weight(grown_body, p[LW_A], p[LW_B])
                    seen_h += seen
                if keep:
                    kept[0, b, y, o, a] = n
                    kept[1, b, y, o, a] = body[o, a]
                if keep_flows:
                    flows[1, b, y, o, a] = caught
                    flows[0, b, y, o, a] = n - alive - caught
                if end_index >= 0:
                    end[0, b, end_index, o, a] = alive
                    end[1, b, end_index, o, a] = grown_body
        survey_w /= 1e6
        survey_h /= 1e6
        biomass = survey_w + survey_h
        all_seen = seen_w + seen_h
        out[0, b, y] = biomass
        out[1, b, y] = total_biomass / 1e6
        out[2, b, y] = ssb
        out[3, b, y] = spawning
        out[4, b, y] = eggs
        out[5, b, y] = recruits
        out[6, b, y] = catch / 1e6
        out[7, b, y] = shortfall
        out[8, b, y] = f
        out[9, b, y] = released
        out[10, b, y] = survey_h / biomass if biomass > 0.0 else 0.0
        out[11, b, y] = ssb_h / ssb if ssb > 0.0 else 0.0
        out[12, b, y] = seen_h / all_seen if all_seen > 0.0 else 0.0
        out[13, b, y] = 1.0 / (1.0 + relative)
        out[14, b, y] = survivors[0, window] + survivors[1, window]
        out[15, b, y] = survivors[0, window]
        # ageing into the next 1 January; the plus group keeps a numbers-weighted length
        first_season = l_inf - (l_inf - hatch) * math.exp(-(rate * (1.0 - p[HATCH_T])))
        last = n_age - 1
        for o in range(n_origin):
            plus = survivors[o, last - 1] + survivors[o, last]
            if plus > 0.0:
                plus_length = (survivors[o, last - 1] * grown[o, last - 1]
                               + survivors[o, last] * grown[o, last]) / plus
            else:
                plus_length = grown[o, last]
            for a in range(last - 1, 0, -1):
                numbers[b, o, a] = survivors[o, a - 1]
                length[b, o, a] = grown[o, a - 1]
            numbers[b, o, last] = plus
            length[b, o, last] = plus_length
            numbers[b, o, 0] = 0.0
            length[b, o, 0] = hatch
        numbers[b, 0, 1] += recruits
        length[b, 0, 1] = first_season


_NODES = np.ascontiguousarray(TIME_NODES, dtype=np.float64)
_WEIGHTS = np.ascontiguousarray(TIME_WEIGHTS, dtype=np.float64)

_announced: set[str] = set()


def announce_compile(dtype: np.dtype) -> None:
    """Say on stderr, once per process and dtype, that the kernel is being compiled when numba's
    cache holds no compiled kernel yet (a fresh installation)."""
    if dtype.name in _announced:
        return
    _announced.add(dtype.name)
    path = getattr(getattr(_year_serial, "_cache", None), "_cache_path", None)
    if path is None or not any(Path(path).glob("kernel._year_serial-*.nbi")):
        print(f"carpmodel: compiling the engine for {dtype.name} (once per installation, ~10-40 s)",
              file=sys.stderr, flush=True)
