"""The compiled engine (carpmodel.model.kernel) against the numpy reference (reference_engine.py),
and its independence of chunking and thread count.

Tolerance: float64 rtol 1e-10 (same formulas, other order of summation: observed ≤ ~1e-13 over
40 years; the margin covers F solved by Newton to 1e-14 and chaotic-free but long recursions);
float32 rtol 2e-4 (both engines compute in float32, with different exp/log approximations and
orders of operations; observed ≤ 1e-6 of the largest value over 40 years).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest
from reference_engine import reference_equilibrium_state, reference_per_recruit_schedule, reference_simulate
from test_dynamics import make_params

from carpmodel.model import kernel
from carpmodel.model.dynamics import ProcessMultipliers, YearControl, simulate
from carpmodel.model.equilibrium import equilibrium_state, per_recruit_schedule, reference_points
from carpmodel.model.row_threads import SPLIT_ROWS, row_ranges, run_parts
from carpmodel.model.state_dataset import state_to_dataset

OUTPUTS = ("biomass_t", "total_biomass_t", "ssb_t", "spawning_output_t", "eggs", "recruits",
           "catch_t", "catch_shortfall_t", "f_per_yr", "released_fish",
           "hatchery_fraction_biomass", "hatchery_fraction_ssb", "hatchery_fraction_numbers",
           "juvenile_survival_dd", "window_survivors", "wild_window_survivors", "numbers",
           "length_cm", "natural_deaths", "catch_numbers", "end_numbers", "end_length_cm",
           "final_numbers", "final_length_state_cm")

N_YEARS = 40


def _case(n_rows: int = 12, seed: int = 3) -> tuple:
    """A batch that exercises every process: Lorenzen c 0, 1 and 0.6 (quadrature), windows 1-3,
    size-dependent release survival, Ricker-free BH, catch in early years then F, forcing
    multipliers and deviations, releases at ages 0, 1 and 3 that differ across rows."""
    rng = np.random.default_rng(seed)
    c = np.resize([0.0, 1.0, 0.6], n_rows)
    params = make_params(
        max_egg_survival=rng.uniform(0.003, 0.02, n_rows), lorenzen_c=c,
        dd_window_end_age_yr=np.resize([1, 2, 3], n_rows).astype(float),
        dd_strength=rng.uniform(0.2, 2.0, n_rows), m_ref_per_yr=rng.uniform(0.15, 0.4, n_rows),
        release_survival_size_slope=np.resize([0.0, 0.8], n_rows), survey_l50_cm=12.0,
        survey_slope_cm=1.5, initial_f_per_yr=rng.uniform(0.0, 0.6, n_rows))
    n_age = params.n_age
    release = np.zeros((n_rows, N_YEARS, n_age))
    release[:, 3:20, 0] = 2e4
    release[::2, 5:30, 1] = rng.uniform(1e4, 5e4, (n_rows + 1) // 2)[:, None]
    release[1::3, 10:, 3] = 3e3
    length = np.zeros_like(release)
    length[..., 0], length[..., 1], length[..., 3] = 2.0, 9.4, 18.0
    catch = np.zeros((n_rows, N_YEARS))
    catch[:, :6] = rng.uniform(0.5, 30.0, (n_rows, 1))
    multipliers = ProcessMultipliers(
        growth_k=1.0 + 0.1 * np.sin(np.arange(N_YEARS)), natural_mortality=rng.uniform(0.9, 1.1, N_YEARS),
        recruitment=rng.uniform(0.8, 1.2, N_YEARS), maturity_l50=rng.uniform(0.95, 1.05, N_YEARS))
    devs = rng.normal(0.0, 0.5, (n_rows, N_YEARS))
    kwargs = dict(n_years=N_YEARS, catch_t=catch, release_fish=release, release_length_cm=length,
                  log_rec_devs=devs, multipliers=multipliers, keep_flows=True,
                  keep_end_years=(5, 39))
    return params, kwargs


def _assert_close(a, b, rtol: float, atol_share: float = 1e-30) -> None:
    for name in OUTPUTS:
        x, y = getattr(a, name), getattr(b, name)
        scale = np.max(np.abs(y)) if np.size(y) else 0.0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale * 1e-3 + atol_share, err_msg=name)


def test_kernel_matches_the_numpy_reference_in_float64():
    params, kwargs = _case()
    _assert_close(simulate(params, **kwargs), reference_simulate(params, **kwargs), rtol=1e-10)


def test_kernel_matches_the_numpy_reference_in_float32():
    params, kwargs = _case()
    kernel = simulate(params, dtype=np.float32, **kwargs)
    reference = reference_simulate(params, dtype=np.float32, **kwargs)
    assert kernel.biomass_t.dtype == np.float32
    _assert_close(kernel, reference, rtol=2e-4)


@pytest.mark.parametrize("lw_b", [3.0, 3.1])
def test_the_compiled_per_recruit_schedule_matches_the_numpy_reference(lw_b):
    # Lorenzen c 0, 1 and 0.6 across the rows, F a (2, rows) grid broadcast against them; the same
    # formulas with the kernel's exp/log (<= 2 ulp): observed <= 1e-15 relative
    params, _ = _case(n_rows=12)
    params = params.replace(lw_b=lw_b, hatch_time_yr=0.3)
    f = np.stack([np.zeros(12), np.linspace(0.0, 1.5, 12)])
    got = per_recruit_schedule(params, f)
    expected = reference_per_recruit_schedule(params, f)
    assert len(got) == len(expected) == 6
    for name, a, b in zip(("length", "weight", "maturity", "survival", "end weight", "survey"), got, expected,
                          strict=True):
        assert a.shape == b.shape == (2, 12, 1, params.n_age), name
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0.0, err_msg=name)
    assert np.all(got[3][1, 1:] < got[3][0, 1:])    # fishing lowers survival wherever F > 0


@pytest.mark.parametrize("recruitment", ["beverton_holt", "ricker"])
def test_the_compiled_equilibrium_matches_the_numpy_reference(recruitment):
    # windows 1-3, c 0/1/0.6, F from 0 to 3 (the last rows fished out: zeros in both), and a row
    # without density dependence (γ = 0: no root to solve); observed <= 1e-14 relative
    params, _ = _case(n_rows=12)
    gamma = np.asarray(params.dd_strength).copy()
    gamma[4] = 0.0
    params = params.replace(recruitment=recruitment, dd_strength=gamma)
    f = np.linspace(0.0, 3.0, 12)
    numbers, length = equilibrium_state(params, f)
    expected_numbers, expected_length = reference_equilibrium_state(params, f)
    assert numbers.shape == expected_numbers.shape == (12, 2, params.n_age)
    scale = np.max(expected_numbers, axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(numbers, expected_numbers, rtol=1e-12, atol=1e-12 * np.max(scale))
    np.testing.assert_allclose(length, expected_length, rtol=1e-13)
    assert np.all(numbers[:, 1] == 0.0) and np.all(numbers[:3, 0, 1] > 0.0)


def test_kernel_matches_the_reference_with_f_given_ricker_and_a_policy():
    params, kwargs = _case(n_rows=6, seed=5)
    params = params.replace(recruitment="ricker")
    f = np.linspace(0.4, 0.0, N_YEARS)
    n_age = params.n_age

    def policy(y: int, estimate: np.ndarray) -> YearControl:
        fish = np.zeros(estimate.shape + (n_age,))
        fish[..., 2] = np.where(estimate < np.median(estimate), 1e4, 0.0)
        return YearControl(release_fish=fish, release_length_cm=np.full(n_age, 14.0),
                           f_per_yr=np.where(y % 3 == 0, 0.1, f[y]) + 0.0 * estimate)

    kwargs.update(catch_t=None, f_per_yr=f, policy=policy,
                  survey_log_errors=np.full((6, N_YEARS), 0.05))
    _assert_close(simulate(params, **kwargs), reference_simulate(params, **kwargs), rtol=1e-10)


@pytest.mark.parametrize("releases", ["per row", "shared"])
@pytest.mark.parametrize("fishing", ["catch", "f", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_are_bit_identical_whatever_the_chunking(dtype, fishing, releases):
    # BLOCK + 150 rows cross a block boundary: run whole, in chunks of 7 and 64, and row by row,
    # under each fishing mode (catch: F solved by Newton; F given, then 0; none); releases that
    # differ across rows (run year by year) or the same for every row (every year in one call)
    n_rows = kernel.BLOCK + 150
    params, kwargs = _case(n_rows=n_rows)
    if fishing != "catch":
        f = np.zeros((n_rows, N_YEARS))
        f[:, :8] = np.linspace(0.05, 0.5, n_rows)[:, None]
        kwargs.update(catch_t=None, f_per_yr=f if fishing == "f" else None)
    per_row = ["catch_t", "f_per_yr", "log_rec_devs"]
    if releases == "shared":
        kwargs.update(release_fish=kwargs["release_fish"][0],
                      release_length_cm=kwargs["release_length_cm"][0])
    else:
        per_row += ["release_fish", "release_length_cm"]
    whole = simulate(params, dtype=dtype, **kwargs)

    def rows(sl: slice):
        p = params.replace(**{name: getattr(params, name)[sl] for name in (
            "max_egg_survival", "lorenzen_c", "dd_window_end_age_yr", "dd_strength",
            "m_ref_per_yr", "release_survival_size_slope", "initial_f_per_yr")})
        kw = dict(kwargs, **{name: kwargs[name][sl] for name in per_row if kwargs.get(name) is not None})
        return simulate(p, dtype=dtype, **kw)

    for size in (7, 64, 1):
        for start in range(0, n_rows, size if size > 1 else 37):
            sl = slice(start, min(start + size, n_rows))
            part = rows(sl)
            for name in OUTPUTS:
                np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[sl],
                                              err_msg=f"{name}, chunk {sl}")


def test_results_are_bit_identical_for_one_and_two_threads():
    # enough rows for the parallel path (at least PARALLEL_ROWS, more than one block)
    params, kwargs = _case(n_rows=max(kernel.PARALLEL_ROWS, kernel.BLOCK) + 150)
    assert params.batch_shape[0] >= kernel.PARALLEL_ROWS and params.batch_shape[0] > kernel.BLOCK
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(params, dtype=np.float32, **kwargs)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = simulate(params, dtype=np.float32, **kwargs)
    finally:
        numba.set_num_threads(before)
    for name in OUTPUTS:
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)


@pytest.mark.parametrize("lw_b", [3.0, "mixed"])
def test_the_start_is_bit_identical_when_its_rows_are_shared_among_threads(lw_b):
    # a batch large enough to split (row_threads): per-recruit schedules, reference points and the
    # equilibrium, and a whole run from it, on one thread against two. The first half of the rows
    # has Lorenzen c = 1 (and, "mixed", a cube for the weight), the second c 0, 1 and 0.6 (and
    # b 3 and 3.1), so each thread's rows take another code path than the whole batch's
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    n_rows = SPLIT_ROWS + 77
    params, kwargs = _case(n_rows=n_rows)
    first_half = np.arange(n_rows) < n_rows // 2
    params = params.replace(lorenzen_c=np.where(first_half, 1.0, params.lorenzen_c))
    if lw_b == "mixed":
        params = params.replace(lw_b=np.where(first_half, 3.0, np.resize([3.0, 3.1], n_rows)))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            assert len(row_ranges(n_rows)) == threads
            ref = reference_points(params)
            results.append([*per_recruit_schedule(params, params.initial_f_per_yr), *vars(ref).values(),
                            *equilibrium_state(params, params.initial_f_per_yr, reference=ref),
                            simulate(params, dtype=np.float32, **kwargs).biomass_t])
    finally:
        numba.set_num_threads(before)
    for index, (one, two) in enumerate(zip(*results, strict=True)):
        np.testing.assert_array_equal(one, two, err_msg=f"value {index}")


def test_row_ranges_cover_the_batch_and_stay_whole_off_the_main_thread():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        assert row_ranges(SPLIT_ROWS - 1) == [(0, SPLIT_ROWS - 1)]
        assert row_ranges(2049) == [(0, 1024), (1024, 2049)]
        seen = []
        worker = threading.Thread(target=lambda: seen.append(row_ranges(5000)))
        worker.start()
        worker.join()
        assert seen == [[(0, 5000)]]     # dask's workers already run chunks in parallel
    finally:
        numba.set_num_threads(before)


def test_run_parts_runs_every_part_and_raises_the_first_error():
    done = []

    def fail() -> None:
        raise ValueError("part failed")

    run_parts([lambda: done.append(0), lambda: done.append(1)])
    assert sorted(done) == [0, 1]
    with pytest.raises(ValueError, match="part failed"):
        run_parts([lambda: done.append(2), fail])
    assert 2 in done

    def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):      # not swallowed on the worker's thread either
        run_parts([lambda: None, leave])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_math_is_within_two_ulp_of_numpy(dtype):
    from numba import njit

    from carpmodel.model.kernel_math import fast_exp, fast_log, fast_log1p, fast_pow

    @njit(error_model="numpy")
    def apply(which: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i in range(x.size):
            if which == 0:
                out[i] = fast_exp(x[i])
            elif which == 1:
                out[i] = fast_log(x[i])
            elif which == 2:
                out[i] = fast_log1p(x[i])
            else:
                out[i] = fast_pow(x[i], y[i])
        return out

    rng = np.random.default_rng(7)
    span = 80.0 if dtype == np.float32 else 700.0
    x_exp = rng.uniform(-span, span, 200_000)
    x_log = np.exp(rng.uniform(-span, span, 200_000))
    x_log1p = np.concatenate([rng.uniform(-0.9, 100.0, 100_000), np.exp(rng.uniform(-15, 0, 100_000))])
    base, exponent = rng.uniform(0.5, 60.0, 200_000), rng.uniform(-3.0, 3.0, 200_000)
    # pow = exp(b·ln x): the error of ln x is multiplied by |b·ln x| (≤ 13 here): observed 18 ulp
    cases = ((0, x_exp, x_exp, np.exp, 2), (1, x_log, x_log, np.log, 2),
             (2, x_log1p, x_log1p, np.log1p, 2), (3, base, exponent, np.power, 40))
    for which, x, y, function, ulps in cases:
        x, y = x.astype(dtype), y.astype(dtype)
        expected = (function(x.astype(float), y.astype(float)) if which == 3
                    else function(x.astype(float))).astype(dtype)
        got = apply(which, x, y)
        ulp = np.spacing(np.abs(expected)).astype(float)
        error = np.abs(got.astype(float) - expected.astype(float)) / ulp
        assert got.dtype == dtype and np.max(error) <= ulps, (which, np.max(error))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows", [12, 89, kernel.PARALLEL_ROWS + 100])
def test_a_run_without_policy_in_one_call_equals_the_year_by_year_run(dtype, n_rows):
    # releases the same for every row and no policy: kernel.run_years runs every year in one
    # call (block by block: 12 rows, 16 padded, on the calling thread; 89 rows (a fit's
    # gradient) in two blocks of 48 and 41 rows on numba's threads; 612 in blocks of BLOCK); the
    # same releases laid out per row take the year-by-year path
    assert kernel.run_block_rows(89, 2) == 48 and kernel.run_block_rows(10_000, 2) == kernel.BLOCK
    assert not kernel._on_threads(kernel.padded_rows(12), kernel.PARALLEL_RUN_ROWS)
    params, kwargs = _case(n_rows=n_rows)
    release = np.zeros((N_YEARS, params.n_age))
    release[3:20, 0], release[5:30, 1], release[10:, 3] = 2e4, 3e4, 3e3
    length = np.zeros_like(release)
    length[:, 0], length[:, 1], length[:, 3] = 2.0, 9.4, 18.0
    at_once = simulate(params, dtype=dtype, **dict(kwargs, release_fish=release, release_length_cm=length))
    per_row = dict(kwargs, release_fish=np.broadcast_to(release, (n_rows, *release.shape)),
                   release_length_cm=np.broadcast_to(length, (n_rows, *length.shape)))
    by_year = simulate(params, dtype=dtype, **per_row)
    for name in (*OUTPUTS, "final_numbers", "final_length_state_cm"):
        np.testing.assert_array_equal(getattr(at_once, name), getattr(by_year, name), err_msg=name)
    assert np.all(at_once.released_fish[:, 5] == 2e4 + 3e4)


@pytest.mark.parametrize("path", ["whole run", "year by year with a policy"])
def test_a_run_keeping_some_series_gives_them_bit_for_bit_and_allocates_no_others(path):
    # a projection keeps the nine series it reports: the engine stores only those (biomass
    # always: a policy reads it, from the first slot), in a buffer of just those, the same values
    assert kernel.OUTPUT_FIELDS[0] == "biomass_t"
    params, kwargs = _case(n_rows=20)
    if path == "whole run":
        kwargs.update(release_fish=kwargs["release_fish"][0],
                      release_length_cm=kwargs["release_length_cm"][0])
    else:
        kwargs.update(policy=lambda y, estimate: YearControl(f_per_yr=np.where(estimate < 50.0, 0.0, 0.2)),
                      catch_t=None)
    full = simulate(params, dtype=np.float32, **kwargs)
    kept = ("ssb_t", "window_survivors", "f_per_yr")
    part = simulate(params, dtype=np.float32, outputs=kept, **kwargs)
    for name in kernel.OUTPUT_FIELDS:
        if name in (*kept, "biomass_t"):
            np.testing.assert_array_equal(getattr(part, name), getattr(full, name), err_msg=name)
            assert getattr(part, name).base.shape[0] == len(kept) + 1, name
        else:
            assert getattr(part, name) is None, name
    with pytest.raises(ValueError, match=r"outputs: unknown \['ssb'\]"):
        simulate(params, dtype=np.float32, outputs=("ssb",), **kwargs)
    one = simulate(params, dtype=np.float32, outputs="ssb_t", **kwargs)   # a name alone, not its letters
    np.testing.assert_array_equal(one.ssb_t, full.ssb_t)
    with pytest.raises(ValueError, match="recruits_per_egg needs the recruits and eggs"):
        _ = part.recruits_per_egg
    ds = state_to_dataset(part, np.arange(N_YEARS), ("row",))
    assert set(ds.data_vars) & {*kernel.OUTPUT_FIELDS, "recruits_per_egg"} == {"biomass_t", *kept}


ENTRY_POINTS = ("_years_serial", "_years_parallel")


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_the_compile_notice_is_said_once_per_dtype_when_the_entry_point_lacks_that_dtype(name, monkeypatch,
                                                                                          capsys):
    entry = getattr(kernel, name)
    cached = {"float32"}   # the entry point compiled for float32 only
    monkeypatch.setattr(kernel, "cached_dtypes", lambda e: cached if e is entry else {"float32", "float64"})
    monkeypatch.setattr(kernel, "_announced", set())
    kernel.announce_compile(np.dtype(np.float32), entry)
    assert capsys.readouterr().err == ""
    kernel.announce_compile(np.dtype(np.float64), entry)
    assert "compiling the engine for float64" in capsys.readouterr().err
    kernel.announce_compile(np.dtype(np.float64), kernel._years_serial)   # once per dtype and process
    assert capsys.readouterr().err == ""


def test_the_compile_cache_index_names_the_dtypes_compiled():
    params, kwargs = _case(n_rows=12)
    kwargs.update(release_fish=kwargs["release_fish"][0], release_length_cm=kwargs["release_length_cm"][0])
    simulate(params, **kwargs)   # float64, whole run, serial: compiled or loaded, so in the cache
    assert "float64" in kernel.cached_dtypes(kernel._years_serial)


def test_a_run_announces_the_entry_point_it_runs(monkeypatch):
    # releases the same for every row: a whole run, threaded from 17 rows on the main thread;
    # releases that differ across rows: year by year (one-year runs), threaded from 512 rows
    announced = []
    monkeypatch.setattr(kernel, "announce_compile", lambda dtype, entry: announced.append(entry.__name__))
    for n_rows, same_releases, expected in ((89, True, "_years_parallel"), (12, True, "_years_serial"),
                                             (12, False, "_years_serial"), (200, False, "_years_serial"),
                                             (600, False, "_years_parallel")):
        params, kwargs = _case(n_rows=n_rows)
        if same_releases:
            kwargs.update(release_fish=kwargs["release_fish"][0],
                          release_length_cm=kwargs["release_length_cm"][0])
        simulate(params, **kwargs)
        assert announced[-1] == expected, (n_rows, same_releases)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_after_the_threads_started_runs_on_its_calling_thread():
    # GNU OpenMP cannot be used in a child forked after it started its threads (numba stops the
    # child); fit, then a multiprocessing Pool (fork: Linux's default) must still work
    params, kwargs = _case(n_rows=89)
    release = np.zeros((N_YEARS, params.n_age))
    release[3:20, 0] = 2e4
    kwargs = dict(kwargs, release_fish=release, release_length_cm=np.full_like(release, 2.0))
    parent = simulate(params, **kwargs).biomass_t       # on numba's threads (89 rows)
    assert kernel._threads_pid == os.getpid()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_biomass_in_child, (params, kwargs)).get(timeout=300)
    np.testing.assert_array_equal(child[0], parent)
    assert child[1] != os.getpid() and not child[2]      # the child ran on its calling thread


FORK_AFTER_SERIAL_WORK = """
import multiprocessing, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_kernel import _case
from carpmodel.model import kernel
from carpmodel.model.dynamics import simulate
from carpmodel.model.equilibrium import reference_points
from carpmodel.model.row_threads import SPLIT_ROWS

def child(n_rows):
    biomass = simulate(_case(n_rows=n_rows)[0], n_years=5).biomass_t   # a whole run, threaded
    return float(np.sum(biomass)), kernel._threads_pid == os.getpid()

simulate(_case(n_rows=12)[0], n_years=5)           # a whole run, serial (too few rows for threads)
reference_points(_case(n_rows=SPLIT_ROWS + 1)[0])  # rows shared among plain threads
with multiprocessing.get_context("fork").Pool(1) as pool:
    total, threaded = pool.apply_async(child, (600,)).get(timeout=120)
print(threaded, total)
"""


def test_work_without_numbas_threads_leaves_a_forked_child_free_to_start_them():
    # asking numba for its thread count starts its threading layer (GNU OpenMP), after which a
    # forked child that starts threads is killed: serial runs and the start's plain threads must
    # not ask; run in a fresh interpreter, since this one has started the layer
    done = subprocess.run([sys.executable, "-c", FORK_AFTER_SERIAL_WORK, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    threaded, total = done.stdout.split()[-2:]
    assert threaded == "True" and np.isfinite(float(total))    # the child ran on numba's threads


def _biomass_in_child(params, kwargs):
    return (simulate(params, **kwargs).biomass_t, os.getpid(),
            kernel._on_threads(kernel.PARALLEL_ROWS, kernel.PARALLEL_RUN_ROWS))


def test_the_engine_cache_is_cleared_when_any_engine_source_changes(tmp_path):
    # numba keys a cached function on its own file only: kernel.py's machine code inlines
    # kernel_cells' and kernel_math's functions and mortality's constants, so a change in any must
    # clear it too
    from carpmodel.model.kernel_cells import (
        ENGINE_CACHE_MARKER,
        clear_stale_engine_cache,
        engine_sources_digest,
    )

    sources, cache = tmp_path / "src", tmp_path / "cache"
    sources.mkdir()
    cache.mkdir()
    for name in ("kernel", "kernel_cells", "kernel_math", "mortality"):
        (sources / f"{name}.py").write_text(f"# {name}\n")
    entries = ("kernel._advance_rows-10.py311.nbi", "kernel._advance_rows-10.py311.1.nbc",
               "kernel_cells.per_recruit_rows-5.py311.nbi", "kernel_math._exp64-3.py311.1.nbc")
    other = cache / "growth.other-1.py311.nbi"          # another module's entry stays

    def fill() -> None:
        for entry in (*entries, other.name):
            (cache / entry).write_bytes(b"")

    fill()
    first = engine_sources_digest(sources)
    assert clear_stale_engine_cache(cache, first)        # no record yet: cleared, recorded
    assert sorted(p.name for p in cache.iterdir()) == sorted([ENGINE_CACHE_MARKER, other.name])
    fill()
    assert not clear_stale_engine_cache(cache, first)    # same sources: kept
    assert all((cache / entry).exists() for entry in entries)
    (sources / "kernel_math.py").write_text("# kernel_math, edited\n")   # only a callee changes
    second = engine_sources_digest(sources)
    assert second != first and clear_stale_engine_cache(cache, second)
    assert not any((cache / entry).exists() for entry in entries) and other.exists()
    assert (cache / ENGINE_CACHE_MARKER).read_text() == second
    fill()
    (sources / "mortality.py").write_text("# mortality, F_TOLERANCE edited\n")   # constants frozen in
    third = engine_sources_digest(sources)
    assert third != second and clear_stale_engine_cache(cache, third)
    assert not any((cache / entry).exists() for entry in entries) and other.exists()
