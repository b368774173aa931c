"""The engine's year step as one compiled kernel (numba): every batch row, one year (or all), one call.

:func:`carpmodel.model.dynamics.simulate` prepares flat arrays — the state ``(row, origin, age)``,
one row of parameters per batch row (:data:`ROW_FIELDS`), each year's inputs (:data:`YEAR_FIELDS`)
and releases — and calls :func:`run_years` once for a run whose policy, if any, is compiled (a
:class:`carpmodel.model.dynamics.PolicyTables`; each block of rows then runs all its years in
turn), or :func:`year_step` once per simulated year when a Python policy decides between years.
The kernel follows the order of events documented in :mod:`carpmodel.model.dynamics`, cell by
cell, with the same formulas as :mod:`carpmodel.model.growth`, :mod:`~carpmodel.model.mortality`,
:mod:`~carpmodel.model.recruitment` and :mod:`~carpmodel.model.stocking` (the numpy functions
there remain the documented definitions; ``tests/reference_engine.py`` runs them year by year to
check the kernel).

Rows are independent: a row's result never depends on the other rows, on how a batch is
chunked or on the number of threads (rows run in blocks of at most :data:`BLOCK` rows, blocks in
parallel; arithmetic is strict IEEE, no fast-math). The cell arithmetic is in the state's
precision (float64 for fits, float32 for projections: twice the SIMD lanes), and so are the
per-row scalars a block keeps; recruitment is computed in float64 from them, and the F solved
from catch by Newton in float64 (:func:`carpmodel.model.kernel_cells.f_from_catch_lane`).

Compilation: the first call of a process compiles or loads the kernel from numba's cache
(``__pycache__`` beside this file, or the directory in ``NUMBA_CACHE_DIR`` where the package
directory is not writable). A cold compile takes ~20-60 s CPU once per installation and
dtype; :func:`announce_compile` says so on stderr. The cache entries of the engine's modules are
cleared whenever one of their sources changes (:func:`carpmodel.model.kernel_cells.clear_stale_engine_cache`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np
from numba import njit, prange

from carpmodel.model.kernel_cells import (
    NODES,
    WEIGHTS,
    every_cube,
    f_from_catch_lane,
    logistic_rate_cell,
    lorenzen_coefficient,
    lorenzen_lanes,
    lorenzen_mode,
    release_survival_cell,
    weight_cell,
)
from carpmodel.model.kernel_math import fast_exp, fast_log, fast_log1p
from carpmodel.model.row_threads import thread_count

__all__ = ["BLOCK", "LANES", "NO_RULE", "OUTPUT_FIELDS", "ROW_FIELDS", "RULE_FIELDS", "YEAR_FIELDS",
           "announce_compile", "padded_rows", "run_years", "year_step"]

#: numba's OpenMP threads sleep between parallel calls rather than spin (GNU OpenMP spins for
#: ~0.1-1 ms by default, so an idle thread burned a core while the main thread ran the Python
#: between calls: a fit took twice its CPU time); an ``OMP_WAIT_POLICY`` already set is kept.
#: GNU OpenMP reads it once, when it loads: at the engine's first parallel call, unless another
#: library loaded it earlier (then this does nothing). Child processes inherit the variable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: rows per parallel block
BLOCK = 256
#: rows are padded to a multiple of this (a SIMD register of float64)
LANES = 8
#: batches with at least this many kernel rows (padded to :data:`LANES`) run on numba's threads
PARALLEL_ROWS = 512
#: whole runs (:func:`run_years`) with at least this many kernel rows (17 or more rows, padded)
#: run on numba's threads: their work is every year of every row, so a fit's 89-row gradient
#: already outweighs a thread launch
PARALLEL_RUN_ROWS = 3 * LANES

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

#: columns of a compiled policy's per-row table (float64; :class:`carpmodel.model.dynamics.PolicyTables`):
#: the release trigger (t, inf: none), the harvest rule's target F (1/yr), ramp limit (t) and
#: span (t), whether F ramps (1) or is constant (0), the first calendar year F may be nonzero,
#: the row's release program, the survey q and the survey estimate read in the first year (t)
RULE_FIELDS = ("trigger_t", "f_target_per_yr", "b_limit_t", "b_span_t", "ramp", "fishing_from_year",
               "program", "survey_q", "initial_estimate_t")
(R_TRIGGER, R_F_TARGET, R_B_LIMIT, R_B_SPAN, R_RAMP, R_FROM_YEAR, R_PROGRAM, R_Q,
 R_ESTIMATE0) = range(len(RULE_FIELDS))

#: fishing modes of a year: none, F given (``fishing`` column, 1/yr), catch given (t, F solved)
NO_FISHING, F_GIVEN, CATCH_GIVEN = 0, 1, 2

#: the ``rule`` of a run without a compiled policy (see :func:`run_years`)
NO_RULE = (np.zeros((len(RULE_FIELDS), 0)), np.zeros((0, 0)), np.zeros((0, 0, 2, 0)),
           np.zeros(0, dtype=np.int64), np.zeros(0))

#: the kernel's scalar outputs per row and year, in the order of its ``out`` array
OUTPUT_FIELDS = (
    "biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "eggs", "recruits", "catch_t",
    "catch_shortfall_t", "f_per_yr", "released_fish", "hatchery_fraction_biomass",
    "hatchery_fraction_ssb", "hatchery_fraction_numbers", "juvenile_survival_dd",
    "window_survivors", "wild_window_survivors",
)

def year_step(numbers: np.ndarray, length: np.ndarray, rows: np.ndarray, year_in: np.ndarray,
              fishing_mode: int, releases: np.ndarray, release_ages: np.ndarray, ricker: bool,
              out: np.ndarray, slots: np.ndarray, y: int,
              kept: np.ndarray, flows: np.ndarray, end: np.ndarray, end_index: int) -> None:
    """Advance every row one year in place and write its outputs of year ``y``.

    Rows are the last axis, ``R`` of them (``out``: the middle one), a multiple of :data:`LANES`
    (the caller pads a batch with copies of a row), all in the state's dtype except ``releases``.

    numbers, length : (origin, age, R) fish and cm (1 January, updated to the next 1 January)
    rows : (len(ROW_FIELDS), R) parameters; year_in : (len(YEAR_FIELDS), R) the year's inputs
    fishing_mode : NO_FISHING, F_GIVEN or CATCH_GIVEN (the ``fishing`` column's meaning)
    releases : (set, 2, k, R or 1) float64 fish released (before acute survival) and their
        length, cm, at the ``k`` ages ``release_ages`` (int64; the ages any set releases into);
        a single column serves every row
    out : (k, R, year) the outputs kept, each row's years contiguous (the batch's series without a
    transposing copy); slots : (len(OUTPUT_FIELDS),) int64, the index in ``out`` of each output
    of :data:`OUTPUT_FIELDS`, or -1 where it is not kept (slot 0 must be ``biomass_t``, which a
    compiled policy reads); kept : (2, year, origin, age, R) numbers and body length after
    releases, or size 0; flows : (2, year, origin, age, R) natural deaths and catch in numbers, or
    size 0; end : (2, k, origin, age, R) end-of-year survivors and body length, written at
    ``end_index`` when it is >= 0.

    Batches of at least :data:`PARALLEL_ROWS` rows called from the main thread run their blocks
    on numba's threads; smaller ones (a thread launch costs more than their work), and calls
    from other threads (dask's workers, which already run chunks in parallel), run on the
    calling thread without the GIL. The results are the same bit for bit.
    """
    # one year of a whole run, at year ``y`` of the outputs: the same compiled code (two entry
    # points per precision rather than four: each compiles its own copy of the year step)
    _run(numbers, length, rows, np.ascontiguousarray(year_in[:, :, None]), fishing_mode, releases[None],
         release_ages, ricker, out, slots, kept, flows, end, np.array([end_index], dtype=np.int64), NO_RULE,
         y, PARALLEL_ROWS, BLOCK)


#: the process whose calls started numba's threads (None: not yet)
_threads_pid: int | None = None


def _on_threads(n_rows: int, threshold: int = PARALLEL_ROWS) -> bool:
    """Whether a call runs its blocks on numba's threads: at least ``threshold`` kernel rows,
    called from the main thread (see :func:`year_step`), in the process that started the threads
    or before any did. A process forked after GNU OpenMP started its threads cannot use them
    (numba stops it: "fork() called from a process already using GNU OpenMP"), so a forked
    child (``multiprocessing``'s default on Linux) runs on its calling thread."""
    global _threads_pid
    if n_rows < threshold or threading.current_thread() is not threading.main_thread():
        return False
    if _threads_pid is None:
        _threads_pid = os.getpid()
    return _threads_pid == os.getpid()


def run_years(numbers: np.ndarray, length: np.ndarray, rows: np.ndarray, year_table: np.ndarray,
              fishing_mode: int, releases: np.ndarray, release_ages: np.ndarray, ricker: bool,
              out: np.ndarray, slots: np.ndarray, kept: np.ndarray, flows: np.ndarray, end: np.ndarray,
              end_index: np.ndarray, rule: tuple = ()) -> None:
    """Every year of a run in one call: each block of rows runs all its years before the next
    block starts (its state stays in the CPU's caches, and one thread launch serves the run).
    The same arithmetic, row by row, as :func:`year_step` once a year.

    year_table : (len(YEAR_FIELDS), R, year) each year's inputs; releases : (year, set, 2, k, 1)
    float64 the same for every row, at the ages ``release_ages``; end_index : (year,) int64, the
    slot of ``end`` written in that year or -1; the other arrays as in :func:`year_step`.
    rule : a compiled policy, applied at the start of every year (default: none):
    ``(table, survey_factor, rule_releases, rule_ages, calendar_years)`` with ``table``
    ``(len(RULE_FIELDS), R)`` float64, ``survey_factor (R, year − 1)`` float64 the multiplicative
    error of each year's survey estimate (read the year after), ``rule_releases (program, year,
    2, k)`` float64 fish and their length at the ages ``rule_ages`` (int64), and
    ``calendar_years (year,)`` float64;
    see :func:`_apply_rule`. Its releases follow the ``releases`` of the year.
    """
    n_rows = numbers.shape[2]
    _run(numbers, length, rows, year_table, fishing_mode, releases, release_ages, ricker, out, slots, kept,
         flows, end, end_index, rule or NO_RULE, 0, PARALLEL_RUN_ROWS,
         run_block_rows(n_rows, thread_count()))


def _run(numbers, length, rows, year_table, fishing_mode, releases, release_ages, ricker, out, slots,  # noqa: ANN001
         kept, flows, end, end_index, rule, first_year: int, threshold: int, width: int) -> None:
    """Years ``first_year..`` (``year_table``'s last axis) of every row, threaded in blocks of
    ``width`` rows from ``threshold`` kernel rows (see :func:`_on_threads`), else serial."""
    args = (numbers, length, rows, year_table, fishing_mode, releases, release_ages, rule, ricker, NODES,
            WEIGHTS, out, slots, kept, flows, end, end_index, first_year)
    if _on_threads(numbers.shape[2], threshold):
        announce_compile(numbers.dtype, _years_parallel)
        _years_parallel(*args, width)
    else:
        announce_compile(numbers.dtype, _years_serial)
        _years_serial(*args)


def run_block_rows(n_rows: int, n_threads: int) -> int:
    """Rows per block of a whole run on ``n_threads`` threads: the rows shared evenly among the
    threads, rounded up to a multiple of :data:`LANES`, at most :data:`BLOCK` (a row's result
    does not depend on its block)."""
    return min(BLOCK, padded_rows(-(-n_rows // max(n_threads, 1))))


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _years_parallel(numbers, length, rows, year_table, fishing_mode, releases, release_ages, rule, ricker,
                    nodes, weights, out, slots, kept, flows, end, end_index, first_year,
                    width):  # noqa: ANN001, ANN202
    n_rows = numbers.shape[2]
    n_blocks = (n_rows + width - 1) // width
    n_years = year_table.shape[2]
    for block in prange(n_blocks):
        work = _block_arrays(numbers, rows.shape[0], year_table.shape[0])
        for i in range(n_years):
            _advance_rows(block * width, min((block + 1) * width, n_rows), numbers, length, rows,
                          year_table, i, fishing_mode, releases[i], release_ages, rule, ricker, nodes,
                          weights, out, slots, first_year + i, kept, flows, end, end_index[i], work,
                          i == 0, i == n_years - 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _years_serial(numbers, length, rows, year_table, fishing_mode, releases, release_ages, rule, ricker,
                  nodes, weights, out, slots, kept, flows, end, end_index, first_year):  # noqa: ANN001, ANN202
    n_rows, n_years = numbers.shape[2], year_table.shape[2]
    work = _block_arrays(numbers, rows.shape[0], year_table.shape[0])
    for start in range(0, n_rows, BLOCK):
        for i in range(n_years):
            _advance_rows(start, min(start + BLOCK, n_rows), numbers, length, rows, year_table, i,
                          fishing_mode, releases[i], release_ages, rule, ricker, nodes, weights, out,
                          slots, first_year + i, kept, flows, end, end_index[i], work, i == 0,
                          i == n_years - 1)


#: per-row scalars of a block's work space (see :func:`_advance_rows`)
N_ROW_SCRATCH = 23


def padded_rows(n_rows: int) -> int:
    """Rows rounded up to a multiple of :data:`LANES`."""
    return -(-n_rows // LANES) * LANES


@njit(cache=True, inline="always", error_model="numpy")
def _fill_body_weight(body, weight, length_state, first, p, cube, start, width):  # noqa: ANN001, ANN202
    """Body length (the state floored at the hatch length, cm) and weight (g) of rows
    ``start..start + width`` into a block's work arrays, from lengths at columns
    ``first..first + width`` of ``length_state``; the loop without a branch when every row has
    ``b = 3`` (same values)."""
    for o in range(body.shape[0]):
        for a in range(body.shape[1]):
            _body_weight_cell(body, weight, length_state, o, a, first, p, cube, start, width)


@njit(cache=True, inline="always", error_model="numpy")
def _body_weight_cell(body, weight, length_state, o, a, first, p, cube, start, width):  # noqa: ANN001, ANN202
    """:func:`_fill_body_weight` of the cell ``(o, a)`` alone."""
    for lane in range(width):
        b = start + lane
        body[o, a, lane] = max(length_state[o, a, first + lane], p[HATCH_L, b])
    if cube:
        for lane in range(width):
            weight[o, a, lane] = weight_cell(body[o, a, lane], p[LW_A, start + lane], 3.0)
    else:
        for lane in range(width):
            b = start + lane
            weight[o, a, lane] = weight_cell(body[o, a, lane], p[LW_A, b], p[LW_B, b])


@njit(cache=True, inline="always", error_model="numpy")
def _egg_survival(alpha, deviation):  # noqa: ANN001, ANN202
    """Egg-to-recruit survival at low density of a year class: ``alpha`` (the row's, in the
    state's precision) with ``deviation`` added on its logit, in float64."""
    return 1.0 / (1.0 + fast_exp(-(fast_log(alpha / (1.0 - alpha)) + deviation)))


@njit(cache=True, inline="always", error_model="numpy")
def _apply_rule(rule, out, y, start, width, yl, active):  # noqa: ANN001, ANN202
    """A compiled policy's decisions for year ``y`` in lanes ``0..width`` of a block (rows
    ``start..``), from the survey estimate of the year before (``q·B_{y−1}·survey_factor_{y−1}``,
    float64; the table's initial estimate in the first year): ``active`` 1 where the rule
    releases (no trigger, or the estimate below it), else 0; the year's F into ``yl``: the
    target F, times the ramp ``clip((estimate − limit)/span, 0, 1)`` where it ramps, in years
    from ``fishing_from_year`` on, else 0. The same arithmetic as
    :class:`carpmodel.management.policy.StrategyPolicy` in numpy."""
    table, survey_factor, calendar_year = rule[0], rule[1], rule[4][y]
    ustart = np.uint64(start)
    for lane in range(width):
        b = ustart + np.uint64(lane)
        if y == 0:
            estimate = table[R_ESTIMATE0, b]
        else:
            estimate = table[R_Q, b] * np.float64(out[0, b, y - 1]) * survey_factor[b, y - 1]
        trigger = table[R_TRIGGER, b]
        active[lane] = 1.0 if (math.isinf(trigger) or estimate < trigger) else 0.0
        f = 0.0
        if calendar_year >= table[R_FROM_YEAR, b]:
            fraction = 1.0
            if table[R_RAMP, b] != 0.0:
                fraction = (estimate - table[R_B_LIMIT, b]) / table[R_B_SPAN, b]
                if fraction < 0.0:
                    fraction = 0.0
                elif fraction > 1.0:
                    fraction = 1.0
            f = table[R_F_TARGET, b] * fraction
        yl[Y_FISHING, lane] = f


@njit(cache=True, error_model="numpy")
def _block_arrays(numbers, n_fields, n_year_fields):  # noqa: ANN001, ANN202
    """A block's work space (see :func:`_advance_rows`), in the state's precision: its state and
    parameters lane-innermost, nine per-cell arrays, the per-row scalars, three per-origin sums
    and, in float64, one row's outputs and a release's lanes (fish entering, their length)."""
    n_origin, n_age = numbers.shape[0], numbers.shape[1]
    dtype = numbers.dtype
    cells = (n_origin, n_age, BLOCK)
    return (np.empty(cells, dtype), np.empty(cells, dtype), np.empty((n_fields, BLOCK), dtype),
            np.empty((n_year_fields, BLOCK), dtype),
            np.empty(cells, dtype), np.empty(cells, dtype), np.empty(cells, dtype), np.empty(cells, dtype),
            np.empty(cells, dtype), np.empty(cells, dtype), np.empty(cells, dtype), np.empty(cells, dtype),
            np.empty(cells, dtype), np.empty((N_ROW_SCRATCH, BLOCK), dtype),
            np.empty((3, n_origin, BLOCK), dtype), np.empty(len(OUTPUT_FIELDS)), np.empty((2, BLOCK)))


@njit(cache=True, error_model="numpy")
def _advance_rows(start, stop, numbers, length, p, year_table, year_index, fishing_mode, releases,
                  release_ages, rule, ricker, nodes, weights, out, slots, y, kept, flows, end, end_index,
                  work, load, store):  # noqa: ANN001, ANN202, C901
    """One year ``y`` of rows ``start..stop`` (at most :data:`BLOCK`) of a run (:func:`run_years`,
    :func:`year_step`): loops over rows are innermost, so they run as SIMD; every row follows the
    same arithmetic either way.

    ``work`` is the block's :func:`_block_arrays`; its state (numbers, lengths, parameters) is
    read from ``numbers``, ``length`` and ``p`` when ``load``, and written back to ``numbers``
    and ``length`` when ``store`` (a whole run loads once, in its first year, and stores once, in
    its last; the years between stay in the block's own arrays)."""
    n_origin, n_age, n_rows = numbers.shape
    dtype = numbers.dtype   # the precision of the state is the precision of the arithmetic
    zero = dtype.type(0.0)
    one = dtype.type(1.0)
    width = stop - start
    # unsigned global row indices: numba corrects a negative signed index at every access, which
    # kept LLVM from vectorising the loops that read or write the global arrays
    ustart = np.uint64(start)
    (n_l, len_l, pl, yl, body, weight, m, sel, z, alive, grown, grown_body, end_weight, lanes,
     sums, values, release_lanes) = work
    lanes[:] = 0.0
    sums[:] = 0.0
    ssb_by_origin, survey_by_origin, seen_by_origin = sums[0], sums[1], sums[2]
    ssb, spawning, eggs, recruits, released = lanes[0], lanes[1], lanes[2], lanes[3], lanes[4]
    rate, scale, growth_span, juveniles, relative = lanes[5], lanes[6], lanes[7], lanes[8], lanes[9]
    m_dd, f, shortfall, growth, total_biomass = lanes[10], lanes[11], lanes[12], lanes[13], lanes[14]
    catch, hatchery_share_ssb, active = lanes[15], lanes[16], lanes[17]
    # per-row factors of the cell formulas, once per block: maturity L50 this year, the logistic
    # curves' 1/slope, Lorenzen's M coefficient (one division per row rather than per cell)
    mat_l50, inv_mat, inv_sel, inv_sur, m_coef = lanes[18], lanes[19], lanes[20], lanes[21], lanes[22]
    # the block's rows copied lane-innermost into its own arrays (contiguous copies)
    if load:
        for i in range(p.shape[0]):
            for lane in range(width):
                pl[i, lane] = p[i, ustart + np.uint64(lane)]
        for o in range(n_origin):
            for a in range(n_age):
                for lane in range(width):
                    n_l[o, a, lane] = numbers[o, a, ustart + np.uint64(lane)]
                    len_l[o, a, lane] = length[o, a, ustart + np.uint64(lane)]
    for i in range(year_table.shape[0]):
        for lane in range(width):
            yl[i, lane] = year_table[i, ustart + np.uint64(lane), year_index]
    cube = every_cube(pl[LW_B, :width])
    # Lorenzen M for the whole block: constant (c = 0), closed form (c = 1) or row by row
    c_mode = lorenzen_mode(pl[LOR_C, :width])
    has_rule = rule[0].shape[1] > 0
    if has_rule:
        _apply_rule(rule, out, y, start, width, yl, active)
        fishing_mode = F_GIVEN

    for lane in range(width):
        mat_l50[lane] = pl[MAT_L50, lane] * yl[Y_MATMULT, lane]
        inv_mat[lane] = one / pl[MAT_SLOPE, lane]
        inv_sel[lane] = one / pl[SEL_SLOPE, lane]
        inv_sur[lane] = one / pl[SUR_SLOPE, lane]

    # 1. spawning from 1 January numbers
    _fill_body_weight(body, weight, len_l, 0, pl, cube, 0, width)
    for o in range(n_origin):
        for a in range(n_age):
            for lane in range(width):
                mature = logistic_rate_cell(body[o, a, lane], mat_l50[lane], inv_mat[lane])
                ssb_by_origin[o, lane] += n_l[o, a, lane] * weight[o, a, lane] * mature
    for lane in range(width):
        ssb_w = ssb_by_origin[0, lane] / 1e6
        ssb_h = ssb_by_origin[1, lane] / 1e6
        ssb[lane] = ssb_w + ssb_h
        spawning[lane] = ssb_w + pl[RRS, lane] * ssb_h
        hatchery_share_ssb[lane] = ssb_h / ssb[lane] if ssb[lane] > 0.0 else 0.0
        eggs[lane] = spawning[lane] * pl[EGGS_PER_T, lane]
    # 2. the year class (recruits at age 1 next 1 January), the deviation on the logit; one loop
    # per form and short loops, so LLVM vectorises them (one loop with the branch and the stores
    # above ran one row at a time)
    if ricker:
        for lane in range(width):
            recruits[lane] = (_egg_survival(pl[ALPHA, lane], yl[Y_DEV, lane]) * eggs[lane]
                              * fast_exp(-pl[BETA, lane] * eggs[lane]))
    else:
        for lane in range(width):
            recruits[lane] = (_egg_survival(pl[ALPHA, lane], yl[Y_DEV, lane]) * eggs[lane]
                              / (1.0 + pl[BETA, lane] * eggs[lane]))
    for lane in range(width):
        rate[lane] = pl[K, lane] * yl[Y_KMULT, lane]
        scale[lane] = pl[M_REF, lane] * yl[Y_MMULT, lane]
        decay = fast_exp(-rate[lane])
        growth_span[lane] = pl[L_INF, lane] * (fast_exp(rate[lane]) - 1.0)
        growth[lane] = 1.0 - decay
        m_coef[lane] = lorenzen_coefficient(scale[lane], pl[M_REF_L, lane], rate[lane], pl[L_INF, lane])
    # 3. releases into the hatchery origin (numbers-weighted mean length): the year's sets, then
    # the rule's releases (a last set, per program, where the rule is active). For each set and
    # age: the fish and their length in lanes, their acute survival (row by row only where it
    # depends on size), then the mixing without a branch, so that loop runs in SIMD lanes
    rule_table, rule_releases, rule_ages = rule[0], rule[2], rule[3]
    n_given = releases.shape[0]
    entering, release_length = release_lanes[0], release_lanes[1]
    size_dependent = False
    for lane in range(width):
        size_dependent |= pl[REL_SLOPE, lane] != 0.0
    for s in range(n_given + (1 if has_rule else 0)):
        ages = release_ages if s < n_given else rule_ages
        for j in range(ages.shape[0]):
            a = ages[j]
            for lane in range(width):
                if s < n_given:
                    column = ustart + np.uint64(lane) if releases.shape[3] > 1 else np.uint64(0)
                    entering[lane] = releases[s, 0, j, column]
                    release_length[lane] = releases[s, 1, j, column]
                else:
                    program = int(rule_table[R_PROGRAM, ustart + np.uint64(lane)])
                    entering[lane] = rule_releases[program, y, 0, j] if active[lane] > zero else 0.0
                    release_length[lane] = rule_releases[program, y, 1, j]
                released[lane] += entering[lane]
            if size_dependent:
                for lane in range(width):
                    if entering[lane] != 0.0:
                        entering[lane] *= release_survival_cell(pl[REL_S, lane], pl[REL_SLOPE, lane],
                                                                pl[LW_A, lane], pl[LW_B, lane],
                                                                pl[REL_WREF, lane], release_length[lane])
            else:
                for lane in range(width):   # release_survival_cell without a size effect
                    entering[lane] *= pl[REL_S, lane]
            for lane in range(width):
                before = n_l[1, a, lane]
                total = before + entering[lane]
                mixed = (before * len_l[1, a, lane] + entering[lane] * release_length[lane]) / total
                adds = entering[lane] > 0.0
                len_l[1, a, lane] = mixed if adds else len_l[1, a, lane]
                n_l[1, a, lane] = total if adds else before
            # the cell's body length and weight follow its length
            _body_weight_cell(body, weight, len_l, 1, a, 0, pl, cube, 0, width)

    # 4. mortality: Lorenzen M along the growth path, juvenile density dependence, fishing
    for o in range(n_origin):
        for a in range(n_age):
            for lane in range(width):
                total_biomass[lane] += n_l[o, a, lane] * weight[o, a, lane]
                juveniles[lane] += n_l[o, a, lane] if a <= pl[WINDOW, lane] else zero
    n_cells = n_origin * n_age
    lorenzen_lanes(c_mode, width, len_l.reshape(n_cells, BLOCK), 0, n_cells, pl[LOR_C], pl[HATCH_L],
                   pl[L_INF], pl[M_REF_L], rate, scale, growth_span, m_coef, nodes, weights,
                   m.reshape(n_cells, BLOCK))
    for lane in range(width):
        relative[lane] = pl[GAMMA, lane] * juveniles[lane] / pl[J0, lane]
        m_dd[lane] = fast_log1p(relative[lane])
    for o in range(n_origin):
        for a in range(n_age):
            for lane in range(width):
                m[o, a, lane] += m_dd[lane] if a <= pl[WINDOW, lane] else zero
    # fishing in this block: any row with F > 0 or a catch to take (else every F is 0 and the
    # loops below skip selectivity and catch: the same values, less work)
    fishing = False
    for lane in range(width):
        fishing |= fishing_mode != NO_FISHING and yl[Y_FISHING, lane] > 0.0
    if fishing:
        for o in range(n_origin):
            for a in range(n_age):
                for lane in range(width):
                    sel[o, a, lane] = logistic_rate_cell(body[o, a, lane], pl[SEL_L50, lane], inv_sel[lane])
        for lane in range(width):
            if fishing_mode == F_GIVEN:
                f[lane] = yl[Y_FISHING, lane]
            else:
                f[lane], shortfall[lane] = f_from_catch_lane(
                    yl[Y_FISHING, lane], n_l, weight, sel, m, lane, pl[F_MAX, lane])

    # 5. survival and catch, growth, the survey's end-of-year biomass
    for o in range(n_origin):
        for a in range(n_age):
            if fishing:
                for lane in range(width):
                    f_sel = f[lane] * sel[o, a, lane]
                    total = m[o, a, lane] + f_sel
                    z[o, a, lane] = total
                    caught = n_l[o, a, lane] * ((f_sel / total if total > zero else zero)
                                                 * (one - fast_exp(-total)))
                    catch[lane] += caught * weight[o, a, lane]
            else:
                for lane in range(width):
                    z[o, a, lane] = m[o, a, lane]
            for lane in range(width):
                alive[o, a, lane] = n_l[o, a, lane] * fast_exp(-z[o, a, lane])
                grown[o, a, lane] = len_l[o, a, lane] + (pl[L_INF, lane] - len_l[o, a, lane]) * growth[lane]
    _fill_body_weight(grown_body, end_weight, grown, 0, pl, cube, 0, width)
    for o in range(n_origin):
        for a in range(n_age):
            for lane in range(width):
                seen = alive[o, a, lane] * logistic_rate_cell(grown_body[o, a, lane], pl[SUR_L50, lane],
                                                              inv_sur[lane])
                survey_by_origin[o, lane] += seen * end_weight[o, a, lane]
                seen_by_origin[o, lane] += seen
    if kept.size > 0 or flows.size > 0 or end_index >= 0:
        for o in range(n_origin):
            for a in range(n_age):
                for lane in range(width):
                    b = ustart + np.uint64(lane)
                    if kept.size > 0:
                        kept[0, y, o, a, b] = n_l[o, a, lane]
                        kept[1, y, o, a, b] = body[o, a, lane]
                    if flows.size > 0:
                        f_sel = f[lane] * sel[o, a, lane] if fishing else zero
                        total = m[o, a, lane] + f_sel
                        caught = n_l[o, a, lane] * ((f_sel / total if total > zero else zero)
                                                     * (one - fast_exp(-total)))
                        flows[1, y, o, a, b] = caught
                        flows[0, y, o, a, b] = n_l[o, a, lane] - alive[o, a, lane] - caught
                    if end_index >= 0:
                        end[0, end_index, o, a, b] = alive[o, a, lane]
                        end[1, end_index, o, a, b] = grown_body[o, a, lane]
    for lane in range(width):
        b = ustart + np.uint64(lane)
        survey_w = survey_by_origin[0, lane] / 1e6
        survey_h = survey_by_origin[1, lane] / 1e6
        biomass = survey_w + survey_h
        all_seen = seen_by_origin[0, lane] + seen_by_origin[1, lane]
        window = int(pl[WINDOW, lane])
        values[0] = biomass
        values[1] = total_biomass[lane] / 1e6
        values[2] = ssb[lane]
        values[3] = spawning[lane]
        values[4] = eggs[lane]
        values[5] = recruits[lane]
        values[6] = catch[lane] / 1e6
        values[7] = shortfall[lane]
        values[8] = f[lane]
        values[9] = released[lane]
        values[10] = survey_h / biomass if biomass > 0.0 else 0.0
        values[11] = hatchery_share_ssb[lane]
        values[12] = seen_by_origin[1, lane] / all_seen if all_seen > 0.0 else 0.0
        values[13] = 1.0 / (1.0 + relative[lane])
        values[14] = alive[0, window, lane] + alive[1, window, lane]
        values[15] = alive[0, window, lane]
        # the outputs kept (each rounded once to the state's precision, as before)
        for i in range(len(OUTPUT_FIELDS)):
            if slots[i] >= 0:
                out[slots[i], b, y] = values[i]
    # ageing into the next 1 January; the plus group keeps a numbers-weighted length
    last = n_age - 1
    for o in range(n_origin):
        for lane in range(width):
            plus = alive[o, last - 1, lane] + alive[o, last, lane]
            n_l[o, last, lane] = plus
            len_l[o, last, lane] = ((alive[o, last - 1, lane] * grown[o, last - 1, lane]
                                     + alive[o, last, lane] * grown[o, last, lane]) / plus
                                    if plus > zero else grown[o, last, lane])
        for a in range(1, last):
            for lane in range(width):
                n_l[o, a, lane] = alive[o, a - 1, lane]
            for lane in range(width):   # loops of their own, ages ascending: LLVM vectorises them
                len_l[o, a, lane] = grown[o, a - 1, lane]
        for lane in range(width):
            n_l[o, 0, lane] = zero
            len_l[o, 0, lane] = pl[HATCH_L, lane]
    for lane in range(width):
        n_l[0, 1, lane] += recruits[lane]
        len_l[0, 1, lane] = pl[L_INF, lane] - (pl[L_INF, lane] - pl[HATCH_L, lane]) * math.exp(
            -(rate[lane] * (1.0 - pl[HATCH_T, lane])))
    if store:
        for o in range(n_origin):
            for a in range(n_age):
                for lane in range(width):
                    numbers[o, a, ustart + np.uint64(lane)] = n_l[o, a, lane]
                    length[o, a, ustart + np.uint64(lane)] = len_l[o, a, lane]


_announced: set[tuple[str, str]] = set()


def announce_compile(dtype: np.dtype, entry: Any) -> None:
    """Say on stderr, at most once per process and dtype, that the kernel is being compiled when
    numba's cache holds no version of ``entry`` for ``dtype`` yet (a fresh installation): the
    compiled function a call is about to run (serial or threaded, one year or whole runs)."""
    key = (dtype.name, entry.__name__)
    if key in _announced:
        return
    _announced.add(key)
    said = (dtype.name, "said")   # one notice per dtype, however many entry points compile
    if dtype.name not in cached_dtypes(entry) and said not in _announced:
        _announced.add(said)
        print(f"carpmodel: compiling the engine for {dtype.name} (once per installation, ~20-60 s)",
              file=sys.stderr, flush=True)


def cached_dtypes(entry: Any) -> set[str]:
    """The state precisions (``"float32"``, ``"float64"``) numba's cache holds compiled versions of
    ``entry`` for, read from the cache's index (each version's key starts with its argument types,
    the first the state array's)."""
    try:
        index = entry._cache._cache_file._load_index()
    except Exception:   # no cache, or numba's internals changed: nothing known to be cached
        return set()
    return {str(getattr(signature[0][0], "dtype", "")) for signature in index if signature and signature[0]}
