"""The model's per-cell formulas as compiled scalar functions (numba), and the per-recruit
computations built from them.

The engine's year step (:mod:`carpmodel.model.kernel`) calls the cell formulas for every
(origin, age, row), the acute survival of released fish (:func:`release_survival_cell`) and the
F that takes a catch (:func:`f_from_catch_lane`); :func:`per_recruit_rows` runs the per-recruit schedule of
:func:`carpmodel.model.equilibrium.per_recruit_schedule` (lengths, weights, maturity, survival
under a constant F, with the plus group's length a fixed point) and :func:`equilibrium_rows` the
equilibrium root of :func:`~carpmodel.model.equilibrium.equilibrium_state`, so a fit's
reference points and a projection's start cost microseconds per row rather than a hundred numpy
calls per batch. The numpy functions of
:mod:`carpmodel.model.growth`, :mod:`~carpmodel.model.mortality` and
:mod:`~carpmodel.model.maturity` remain the documented definitions; ``tests/reference_engine.py``
holds the schedule and the equilibrium written with them, and the tests check the compiled ones
against it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from carpmodel.model.kernel_math import fast_exp, fast_log, fast_log1p, fast_pow, like
from carpmodel.model.mortality import F_NEWTON_ITERATIONS, F_TOLERANCE, TIME_NODES, TIME_WEIGHTS

__all__ = ["ANY_EXPONENT_M", "CLOSED_FORM_M", "CONSTANT_M", "ENGINE_CACHE_MARKER", "ENGINE_CONSTANT_MODULES",
           "ENGINE_MODULES",
           "EQUILIBRIUM_FIELDS", "NODES", "SCHEDULE_FIELDS", "SCHEDULE_OUTPUTS", "WEIGHTS",
           "clear_stale_engine_cache", "engine_sources_digest", "equilibrium_rows", "every_cube",
           "f_from_catch_lane",
           "logistic_cell",
           "logistic_rate_cell", "lorenzen_below_hatch", "lorenzen_cell", "lorenzen_coefficient",
           "lorenzen_lanes", "lorenzen_mode", "per_recruit_rows", "release_survival_cell", "row_table",
           "weight_cell"]

#: Gauss–Legendre nodes on [0, 1] and their weights (:data:`carpmodel.model.mortality.TIME_NODES`)
NODES = np.ascontiguousarray(TIME_NODES, dtype=np.float64)
WEIGHTS = np.ascontiguousarray(TIME_WEIGHTS, dtype=np.float64)

#: columns of :func:`per_recruit_rows`'s table: parameter fields, then the constant F (1/yr)
SCHEDULE_FIELDS = (
    "l_inf_cm", "k_per_yr", "hatch_time_yr", "hatch_length_cm", "lw_a", "lw_b", "maturity_l50_cm",
    "maturity_slope_cm", "selectivity_l50_cm", "selectivity_slope_cm", "survey_l50_cm",
    "survey_slope_cm", "m_ref_per_yr", "m_ref_length_cm", "lorenzen_c", "f_per_yr",
)
(_L_INF, _K, _HATCH_T, _HATCH_L, _LW_A, _LW_B, _MAT_L50, _MAT_SLOPE, _SEL_L50, _SEL_SLOPE, _SUR_L50,
 _SUR_SLOPE, _M_REF, _M_REF_L, _LOR_C, _F) = range(len(SCHEDULE_FIELDS))
#: what :func:`per_recruit_rows` writes, in the order of its ``out`` array's first axis
SCHEDULE_OUTPUTS = ("length_state_cm", "weight_g", "maturity", "survival", "end_weight_g",
                    "end_survey_selectivity")


def row_table(values: Sequence[Any], batch: tuple[int, ...]) -> np.ndarray:
    """The per-row inputs of a compiled function, ``(row, len(values))`` float64: each value
    broadcast to ``batch`` and flattened (C order) into its column."""
    table = np.empty((int(np.prod(batch, dtype=np.int64)), len(values)))
    by_batch = table.reshape(batch + (len(values),))    # a view: each column broadcast into place
    for column, value in enumerate(values):
        by_batch[..., column] = value
    return table


@njit(cache=True, inline="always", error_model="numpy")
def weight_cell(body: float, lw_a: float, lw_b: float) -> float:
    """Weight at body length, g (:func:`carpmodel.model.growth.weight_g`)."""
    if lw_b == 3.0:
        return lw_a * (body * body * body)
    return lw_a * fast_pow(body, lw_b)


@njit(cache=True, inline="always", error_model="numpy")
def every_cube(lw_b: np.ndarray) -> bool:
    """Whether every row's length–weight exponent is 3: its weights then take
    :func:`weight_cell`'s cube in a loop without a branch (``weight_cell(L, a, 3.0)``: the
    same values)."""
    cube = True
    for row in range(lw_b.shape[0]):
        cube &= lw_b[row] == 3.0
    return cube


@njit(cache=True, inline="always", error_model="numpy")
def logistic_cell(x: float, l50: float, slope: float) -> float:
    """``1/(1 + exp(−(x − l50)/slope))``: selectivity and maturity at length."""
    one = like(1.0, x)
    return one / (one + fast_exp(-(x - l50) / slope))


@njit(cache=True, inline="always", error_model="numpy")
def logistic_rate_cell(x: float, l50: float, inverse_slope: float) -> float:
    """:func:`logistic_cell` given ``1/slope`` (a row's reciprocal, computed once: one division
    fewer per cell)."""
    one = like(1.0, x)
    return one / (one + fast_exp(-(x - l50) * inverse_slope))


@njit(cache=True, inline="always", error_model="numpy")
def lorenzen_coefficient(scale: float, m_ref_length: float, rate: float, l_inf: float) -> float:
    """``M_ref·L_ref/(κ·L∞)`` (1/yr): Lorenzen M with c = 1 over a year from a length ``L`` at or
    above the hatch length is this times ``ln(1 + growth_span/L)`` (``∫₀¹ dt/L(t)`` in closed
    form, ``growth_span = L∞·(e^κ − 1)``); once per row."""
    return scale * m_ref_length / (rate * l_inf)


@njit(cache=True, error_model="numpy")
def lorenzen_below_hatch(length: float, hatch: float, rate: float, l_inf: float) -> float:
    """``∫₀¹ dt/max(L(t), L_h)`` from a start below the hatch length (1/cm): ``1/L_h`` until the
    path reaches ``L_h``, then the closed form over the rest of the year."""
    ratio = (l_inf - length) / max(l_inf - hatch, 1e-12)
    t_a = min(max(fast_log(max(ratio, 1.0)) / rate, 0.0), 1.0)
    span = l_inf * math.expm1(rate * (1.0 - t_a))
    return t_a / hatch + fast_log1p(span / max(length, hatch)) / (rate * l_inf)


@njit(cache=True, error_model="numpy")
def lorenzen_cell(length: float, c: float, hatch: float, l_inf: float, m_ref_length: float, rate: float,
                  scale: float, growth_span: float, nodes: np.ndarray, weights: np.ndarray) -> float:
    """Lorenzen M integrated over the year along the growth path (1/yr), any exponent ``c``
    (:func:`carpmodel.model.mortality.lorenzen_m_per_yr`: closed form for c = 1, Gauss–Legendre
    quadrature otherwise)."""
    if c == 0.0:
        return scale
    if c == 1.0:
        if length >= hatch:
            return lorenzen_coefficient(scale, m_ref_length, rate, l_inf) * fast_log1p(growth_span / length)
        return scale * m_ref_length * lorenzen_below_hatch(length, hatch, rate, l_inf)
    total = 0.0
    for j in range(nodes.shape[0]):
        path = max(l_inf - (l_inf - length) * fast_exp(-rate * nodes[j]), hatch)
        total += fast_pow(path / m_ref_length, -c) * weights[j]
    return scale * total


@njit(cache=True, error_model="numpy")
def release_survival_cell(s_ref: float, slope: float, lw_a: float, lw_b: float, reference_weight: float,
                          length: float) -> float:
    """Acute survival of fish released at ``length`` (cm)
    (:func:`carpmodel.model.stocking.release_survival_at_weight`). Scalars only: an array passed
    to a compiled function that is not inlined costs two atomic reference-count updates per call."""
    if slope == 0.0 or s_ref <= 0.0 or s_ref >= 1.0:
        return s_ref
    weight = lw_a * length ** lw_b
    shift = slope * math.log(weight / reference_weight)
    if not math.isfinite(shift):
        return s_ref
    return 1.0 / (1.0 + math.exp(-((math.log(s_ref) - math.log1p(-s_ref)) + shift)))


@njit(cache=True, error_model="numpy")
def f_from_catch_lane(catch: float, numbers: np.ndarray, weight: np.ndarray, sel: np.ndarray,
                      m: np.ndarray, lane: int, f_max: float) -> tuple[float, float]:
    """F taking ``catch`` (t) from lane ``lane`` of a block's ``(origin, age, lane)`` arrays by
    Newton from 0, capped at ``f_max`` (:func:`carpmodel.model.mortality.solve_f_from_catch`:
    the same iterations and tolerance); and the shortfall (t)."""
    if not catch > 0.0:
        return 0.0, 0.0
    n_origin, n_age = numbers.shape[0], numbers.shape[1]
    f = 0.0
    for _ in range(F_NEWTON_ITERATIONS):
        predicted = 0.0
        slope = 0.0
        for o in range(n_origin):
            for a in range(n_age):
                vuln = numbers[o, a, lane] * weight[o, a, lane] * sel[o, a, lane] / 1e6
                z = m[o, a, lane] + f * sel[o, a, lane]
                survive = math.exp(-z)
                predicted += vuln * f / z * (1.0 - survive)
                slope += vuln * (m[o, a, lane] / z ** 2 * (1.0 - survive) + f * sel[o, a, lane] / z * survive)
        step = (catch - predicted) / slope if slope > 0.0 else 0.0
        f_next = min(max(f + step, 0.0), f_max)
        done = abs(f_next - f) <= F_TOLERANCE * f_next
        f = f_next
        if done:
            break
    taken = 0.0
    for o in range(n_origin):
        for a in range(n_age):
            f_sel = f * sel[o, a, lane]
            z = m[o, a, lane] + f_sel
            fraction = f_sel / z * (1.0 - math.exp(-z)) if z > 0.0 else 0.0
            taken += numbers[o, a, lane] * weight[o, a, lane] * sel[o, a, lane] / 1e6 * fraction
    shortfall = max(catch - taken, 0.0) if f >= f_max * (1.0 - 1e-12) else 0.0
    return f, shortfall


#: how :func:`lorenzen_lanes` computes M for a set of lanes: every lane c = 0 (constant M), every
#: lane c = 1 (closed form, in one vectorisable loop) or lane by lane (:func:`lorenzen_cell`)
CONSTANT_M, CLOSED_FORM_M, ANY_EXPONENT_M = 0, 1, 2


@njit(cache=True, inline="always", error_model="numpy")
def lorenzen_lanes(mode: int, width: int, length: np.ndarray, first: int, last: int, c: np.ndarray,
                   hatch: np.ndarray, l_inf: np.ndarray, m_ref_length: np.ndarray, rate: np.ndarray,
                   scale: np.ndarray, growth_span: np.ndarray, coefficient: np.ndarray, nodes: np.ndarray,
                   weights: np.ndarray, m: np.ndarray) -> None:
    """Lorenzen M (1/yr) of cells ``first..last`` and lanes ``0..width`` at length states
    ``length (cell, lane)`` into ``m (cell, lane)``, computed as ``mode`` says
    (:data:`CONSTANT_M`, :data:`CLOSED_FORM_M`: lanes below the hatch length redone with their own
    formula, :data:`ANY_EXPONENT_M`); the other arrays hold each lane's parameters, ``rate`` its
    K (1/yr), ``scale`` its M_ref (1/yr), ``growth_span`` ``L∞·(e^K − 1)`` and ``coefficient`` its
    :func:`lorenzen_coefficient`. One call serves many cells: each call of a compiled function
    with array arguments, inlined or not, costs atomic reference-count updates per array."""
    for cell in range(first, last):
        if mode == CONSTANT_M:
            for lane in range(width):
                m[cell, lane] = scale[lane]
        elif mode == CLOSED_FORM_M:
            below_hatch = False
            for lane in range(width):
                m[cell, lane] = coefficient[lane] * fast_log1p(growth_span[lane] / length[cell, lane])
                below_hatch |= length[cell, lane] < hatch[lane]
            for lane in range(width if below_hatch else 0):
                if length[cell, lane] < hatch[lane]:
                    m[cell, lane] = scale[lane] * m_ref_length[lane] * lorenzen_below_hatch(
                        length[cell, lane], hatch[lane], rate[lane], l_inf[lane])
        else:
            for lane in range(width):
                m[cell, lane] = lorenzen_cell(length[cell, lane], c[lane], hatch[lane], l_inf[lane],
                                              m_ref_length[lane], rate[lane], scale[lane], growth_span[lane],
                                              nodes, weights)


@njit(cache=True, inline="always", error_model="numpy")
def lorenzen_mode(c: np.ndarray) -> int:
    """The :func:`lorenzen_lanes` mode of lanes with exponents ``c``."""
    all_c0, all_c1 = True, True
    for lane in range(c.shape[0]):
        all_c0 &= c[lane] == 0.0
        all_c1 &= c[lane] == 1.0
    return CONSTANT_M if all_c0 else (CLOSED_FORM_M if all_c1 else ANY_EXPONENT_M)


@njit(cache=True, error_model="numpy")
def _survival(length: np.ndarray, a: int, p: np.ndarray, growth_span: np.ndarray, coefficient: np.ndarray,
              mode: int, nodes: np.ndarray, weights: np.ndarray, m: np.ndarray, survival: np.ndarray) -> None:
    """``exp(−M(L) − F·sel(L))`` over one year of every row at age ``a`` from length states
    ``length (age, row)`` into ``survival (age, row)``; ``m (age, row)`` is work space."""
    n_rows = length.shape[1]
    lorenzen_lanes(mode, n_rows, length, a, a + 1, p[_LOR_C], p[_HATCH_L], p[_L_INF], p[_M_REF_L], p[_K],
                   p[_M_REF], growth_span, coefficient, nodes, weights, m)
    for r in range(n_rows):
        body = max(length[a, r], p[_HATCH_L, r])
        fished = p[_F, r] * logistic_cell(body, p[_SEL_L50, r], p[_SEL_SLOPE, r])
        survival[a, r] = fast_exp(-(m[a, r] + fished))


@njit(cache=True, nogil=True, error_model="numpy")
def per_recruit_rows(table: np.ndarray, passes: int, tolerance_cm: float, nodes: np.ndarray,
                     weights: np.ndarray, out: np.ndarray) -> None:
    """The per-recruit schedule of each row (column) of ``table (len(SCHEDULE_FIELDS), row)`` into
    ``out (len(SCHEDULE_OUTPUTS), age, row)`` (see
    :func:`carpmodel.model.equilibrium.per_recruit_schedule`): lengths on 1 January from
    hatching, the plus group's length a fixed point (at most ``passes`` passes, each row stopping
    once it moves by at most ``tolerance_cm``), and at each age weight, maturity, survival under
    the row's F, and weight and survey selectivity after a year's growth. Rows are innermost,
    so the loops over them run in SIMD lanes; a row's values never depend on the others."""
    n_rows, n_age = table.shape[1], out.shape[1]
    p = table
    mode = lorenzen_mode(p[_LOR_C])
    decay, growth_span, m = np.empty(n_rows), np.empty(n_rows), np.empty((n_age, n_rows))
    coefficient = np.empty(n_rows)
    for r in range(n_rows):
        decay[r] = math.exp(-p[_K, r])
        growth_span[r] = p[_L_INF, r] * math.expm1(p[_K, r])
        coefficient[r] = lorenzen_coefficient(p[_M_REF, r], p[_M_REF_L, r], p[_K, r], p[_L_INF, r])
    length, survival = out[0], out[3]
    for a in range(n_age):
        for r in range(n_rows):
            lived = max(a - p[_HATCH_T, r], 0.0)
            length[a, r] = p[_L_INF, r] - (p[_L_INF, r] - p[_HATCH_L, r]) * fast_exp(-p[_K, r] * lived)
        _survival(length, a, p, growth_span, coefficient, mode, nodes, weights, m, survival)
    plus = n_age - 1
    grown_prev = np.empty(n_rows)
    done = np.zeros(n_rows, np.bool_)
    for r in range(n_rows):
        grown_prev[r] = length[plus - 1, r] + (p[_L_INF, r] - length[plus - 1, r]) * (1.0 - decay[r])
    for _ in range(passes):
        all_done = True
        for r in range(n_rows):
            s, d = survival[plus, r], decay[r]
            fixed = ((1.0 - s) * grown_prev[r] + s * p[_L_INF, r] * (1.0 - d)) / (1.0 - s * d)
            fixed = length[plus, r] if done[r] else fixed
            done[r] |= abs(fixed - length[plus, r]) <= tolerance_cm
            all_done &= done[r]
            length[plus, r] = fixed
        _survival(length, plus, p, growth_span, coefficient, mode, nodes, weights, m, survival)
        if all_done:
            break
    # the cube's branch taken once for all rows: with the branch inside the loop, LLVM vectorised
    # it by computing the general power (a log and an exp) for every row besides the cube, at 2.5
    # times the time
    cube = every_cube(p[_LW_B])
    body, grown = np.empty(n_rows), np.empty(n_rows)
    for a in range(n_age):
        for r in range(n_rows):
            body[r] = max(length[a, r], p[_HATCH_L, r])
            grown[r] = max(length[a, r] + (p[_L_INF, r] - length[a, r]) * (1.0 - decay[r]), p[_HATCH_L, r])
        for k, at in ((1, body), (4, grown)):
            if cube:
                for r in range(n_rows):
                    out[k, a, r] = weight_cell(at[r], p[_LW_A, r], 3.0)   # the branch folds away
            else:
                for r in range(n_rows):
                    out[k, a, r] = weight_cell(at[r], p[_LW_A, r], p[_LW_B, r])
        for r in range(n_rows):
            out[2, a, r] = logistic_cell(body[r], p[_MAT_L50, r], p[_MAT_SLOPE, r])
        for r in range(n_rows):
            out[5, a, r] = logistic_cell(grown[r], p[_SUR_L50, r], p[_SUR_SLOPE, r])


#: columns of :func:`equilibrium_rows`'s per-row table
EQUILIBRIUM_FIELDS = ("dd_strength", "dd_window_end_age_yr", "juveniles0", "alpha", "beta")


@njit(cache=True, inline="always", error_model="numpy")
def _recruits_both_ways(x: float, survival: np.ndarray, eggs_per_fish: np.ndarray, row: np.ndarray,
                        ricker: bool, n: np.ndarray) -> tuple[float, float]:
    """Numbers per recruit at window survival factor ``x`` into ``n (age)``, and the recruits
    (stock–recruit equilibrium at their eggs per recruit, recruitment the window's density
    implies) of :func:`carpmodel.model.equilibrium.equilibrium_state`."""
    n_age = n.shape[0]
    gamma, window, j0, alpha, beta = row[0], row[1], row[2], row[3], row[4]
    n[0] = 0.0
    n[1] = 1.0
    for a in range(2, n_age):
        n[a] = n[a - 1] * (survival[a - 1] * (x if a - 1 <= window else 1.0))
    n[n_age - 1] /= 1.0 - survival[n_age - 1] * (x if n_age - 1 <= window else 1.0)
    phi, per_recruit = 0.0, 0.0
    for a in range(n_age):
        phi += n[a] * eggs_per_fish[a]
        per_recruit += n[a] if a <= window else 0.0
    ap, bp = alpha * phi, beta * phi
    from_sr = 0.0
    if ap > 1.0:
        r = (ap - 1.0) / bp if not ricker else math.log(ap) / bp
        from_sr = 0.0 if r < 0.0 else r
    safe_gamma = gamma if gamma > 0.0 else 1.0
    return from_sr, j0 * (1.0 / x - 1.0) / safe_gamma / per_recruit


@njit(cache=True, inline="always", error_model="numpy")
def _excess(x: float, survival: np.ndarray, eggs_per_fish: np.ndarray, row: np.ndarray, ricker: bool,
            n: np.ndarray) -> float:
    """Relative excess of the window's recruitment over the stock–recruit one (decreasing in x)."""
    from_sr, from_window = _recruits_both_ways(x, survival, eggs_per_fish, row, ricker, n)
    total = from_window + from_sr
    return (from_window - from_sr) / total if total > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _decreasing_root(survival: np.ndarray, eggs_per_fish: np.ndarray, row: np.ndarray, ricker: bool,
                     n: np.ndarray, bisections: int, iterations: int) -> float:
    """Root in (1e-12, 1] of :func:`_excess` for one row: bisections, then Illinois regula falsi
    (:func:`carpmodel.model.equilibrium._decreasing_root`, element by element)."""
    lo, hi = 1e-12, 1.0
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        if _excess(mid, survival, eggs_per_fish, row, ricker, n) > 0.0:
            lo = mid
        else:
            hi = mid
    g_lo = _excess(lo, survival, eggs_per_fish, row, ricker, n)
    g_hi = _excess(hi, survival, eggs_per_fish, row, ricker, n)
    best = lo if g_lo < -g_hi else hi
    g_best = math.nan if math.isnan(g_lo) or math.isnan(g_hi) else min(g_lo, -g_hi)
    last = 0.0
    for _ in range(iterations):
        if not (g_best > 1e-14 and hi - lo > 4e-16 * hi):
            break
        x = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        if not (math.isfinite(x) and lo < x < hi):
            x = 0.5 * (lo + hi)
        g_x = _excess(x, survival, eggs_per_fish, row, ricker, n)
        if abs(g_x) < g_best:
            best, g_best = x, abs(g_x)
        above = g_x > 0.0
        # Illinois: an end kept twice in a row has its value halved, so both ends move
        if not above and last < 0.0:
            g_lo *= 0.5
        if above and last > 0.0:
            g_hi *= 0.5
        if above:
            lo, g_lo = x, g_x
        else:
            hi, g_hi = x, g_x
        last = 1.0 if above else -1.0
    return math.nan if math.isnan(g_best) else best


@njit(cache=True, nogil=True, error_model="numpy")
def equilibrium_rows(survival: np.ndarray, eggs_per_fish: np.ndarray, table: np.ndarray, ricker: bool,
                     bisections: int, iterations: int, wild: np.ndarray) -> None:
    """Wild 1 January numbers at age in equilibrium, ``wild (row, age)``, from each row's survival
    and eggs per fish at age ``(row, age)`` and its ``table (row, len(EQUILIBRIUM_FIELDS))``: the
    window's survival factor solved where the window's recruitment equals the stock–recruit
    equilibrium's (1 where there is no density dependence), see
    :func:`carpmodel.model.equilibrium.equilibrium_state`."""
    n = np.empty(survival.shape[1])
    for r in range(survival.shape[0]):
        row = table[r]
        x = 1.0
        if row[0] > 0.0:
            x = _decreasing_root(survival[r], eggs_per_fish[r], row, ricker, n, bisections, iterations)
        recruits, _ = _recruits_both_ways(x, survival[r], eggs_per_fish[r], row, ricker, n)
        for a in range(n.shape[0]):
            wild[r, a] = recruits * n[a]


#: the engine's compiled modules. numba keys a cached function on its own source file only, so
#: an edit of a module it calls (kernel.py inlines this module's and kernel_math's functions)
#: would leave stale machine code in the cache (a documented limitation of numba's caching): an
#: editable install updated by ``git pull`` could then run old formulas. Their cache entries are
#: cleared together whenever any of them changes (:func:`clear_stale_engine_cache`).
ENGINE_MODULES = ("kernel", "kernel_cells", "kernel_math")
#: modules the compiled code takes constants from (numba freezes a global when it compiles): the
#: F solver's iterations and tolerance. A change in them clears the cache too.
ENGINE_CONSTANT_MODULES = ("mortality",)
#: the file beside the cache entries that records the sources they were compiled from
ENGINE_CACHE_MARKER = "carpmodel_engine.sha256"


def engine_sources_digest(directory: Path) -> str:
    """SHA-256 of the source files of :data:`ENGINE_MODULES` and :data:`ENGINE_CONSTANT_MODULES`
    in ``directory``."""
    digest = hashlib.sha256()
    for name in ENGINE_MODULES + ENGINE_CONSTANT_MODULES:
        digest.update((directory / f"{name}.py").read_bytes())
    return digest.hexdigest()


def clear_stale_engine_cache(cache_dir: Path, digest: str) -> bool:
    """Delete the cached functions of :data:`ENGINE_MODULES` in ``cache_dir`` unless its marker
    records ``digest``, then record it; True when entries were cleared. Other modules' entries
    are left alone; a directory that cannot be read or written is left as it is (numba then
    compiles or loads as usual)."""
    marker = cache_dir / ENGINE_CACHE_MARKER
    try:
        if marker.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for name in ENGINE_MODULES:
            for entry in cache_dir.glob(f"{name}.*.nb[ic]"):
                entry.unlink(missing_ok=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"{ENGINE_CACHE_MARKER}.{os.getpid()}.tmp"
        partial.write_text(digest)
        os.replace(partial, marker)
    except OSError:
        return False
    return True


# before any compiled function of the engine loads from the cache (this module is imported by
# both kernel.py and equilibrium.py, before either calls one)
clear_stale_engine_cache(Path(per_recruit_rows._cache._cache_path),
                         engine_sources_digest(Path(__file__).parent))
