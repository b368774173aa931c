"""Engine throughput: age × year × batch × origin cell-updates per second, beside a yardstick.

Run: python experiments/benchmarks/bench_simulate.py [--batch N] [--repeats K]

Prints (1) a batch of 10,000 parameter sets over 76 years (2025–2100) with releases, in float64
(fits) and float32 (projections), keeping all 16 yearly series (``simulate``'s default), and in
float32 keeping the nine a projection keeps (``PROJECTED``: a fresh output buffer of 10,000 × 76
× 16 float32 values is 48.6 MB, whose first touch costs ~12,000 page faults, ~20 ms of system
CPU): the median wall and CPU time of ``--repeats`` runs after a
warm-up (compilation is not timed), cell-updates/s counting both origins, and how much of a run
is the kernel (the rest: reference points, the equilibrium start, input tables); (2) the yardstick: a
naive numpy loop over ages (one survival update ``N·exp(−(M + F·s))`` per age, numpy over the
batch) on the same cells in the same run, and ``engine/naive ratio`` (the engine does a whole
year of the model per cell, the yardstick one multiply-exp); (3) on one thread, the CPU time per
row and year at 26 ages, split into a per-cell and a per-row part (runs at 13 and 51 ages);
(4) the share of the memory bandwidth the engine's state traffic reaches: each cell-update reads
and writes the cell's numbers and length (4 values; the parameters and year inputs are per row,
not per cell), against a one-thread copy of 512 MiB (bytes read plus bytes written per second);
(5) the median wall time of one single-batch simulation of 2000–2024 on the bundled data. Also
prints numba's thread count and the load average: on a shared machine compare CPU times or
ratios from the same run. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numba
import numpy as np

from carpmodel.cli import command_settings
from carpmodel.io.inputs import load_data
from carpmodel.management.projection import PROJECTED
from carpmodel.model import kernel
from carpmodel.model.dynamics import simulate
from carpmodel.model.kernel import OUTPUT_FIELDS
from carpmodel.model.simulation import default_parameters, simulate_default

DATA = Path(__file__).resolve().parents[2] / "data"


def timed(run, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``run()`` over ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


class KernelClock:
    """Wall seconds spent in the kernel (``kernel.run_years``) while active: the rest of a
    ``simulate`` call is its start (reference points, equilibrium) and set-up. Counts only runs
    whose years go to the kernel in one call (no Python policy, releases the same for every row,
    as here); a run year by year (``kernel.year_step``) is not counted."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._run_years = kernel.run_years

    def __enter__(self) -> KernelClock:
        def timed_run_years(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return self._run_years(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        kernel.run_years = timed_run_years
        return self

    def __exit__(self, *exc: object) -> None:
        kernel.run_years = self._run_years


def naive_age_loop(n_batch: int, n_years: int, n_age: int, dtype: type) -> None:
    """The yardstick: per year and age, one numpy survival update over the batch (both origins)."""
    rng = np.random.default_rng(0)
    numbers = rng.uniform(1.0, 2.0, (2, n_age, n_batch)).astype(dtype)
    m = rng.uniform(0.1, 0.5, (2, n_age, n_batch)).astype(dtype)
    sel = rng.uniform(0.0, 1.0, (2, n_age, n_batch)).astype(dtype)
    f = dtype(0.1)
    for _ in range(n_years):
        for a in range(n_age - 1, 0, -1):
            numbers[:, a] = numbers[:, a - 1] * np.exp(-(m[:, a - 1] + f * sel[:, a - 1]))


def per_row_cost(base, n_batch: int, dtype: type) -> tuple[float, float, float]:
    """One thread: CPU ns per row and year at 26 ages, per cell and per row (fit over 13 and 51
    ages; 30 years minus 2 years, so fixed costs cancel; the best of 3)."""
    rng = np.random.default_rng(1)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    costs = []
    try:
        for max_age in (12, 50):
            params = base.replace(max_age_yr=max_age, max_egg_survival=rng.uniform(0.002, 0.02, n_batch))
            release = np.zeros((30, params.n_age))
            release[:, 1] = 2e7
            kwargs = dict(release_fish=release, release_length_cm=np.full_like(release, 9.4),
                          keep_numbers=False, dtype=dtype)
            simulate(params, n_years=30, **kwargs)
            best = []
            for _ in range(3):
                _, long_cpu = timed(lambda p=params, k=kwargs: simulate(p, n_years=30, **k), 1)
                _, short_cpu = timed(lambda p=params, k=kwargs: simulate(p, n_years=2, **k), 1)
                best.append((long_cpu - short_cpu) / 28 / n_batch * 1e9)
            costs.append((params.n_age, min(best)))
    finally:
        numba.set_num_threads(before)
    (ages_1, cost_1), (ages_2, cost_2) = costs
    per_cell = (cost_2 - cost_1) / (ages_2 - ages_1) / 2
    per_row = cost_1 - per_cell * 2 * ages_1
    return per_row + per_cell * 2 * 26, per_cell, per_row


def copy_bandwidth(n_bytes: int = 2**29, repeats: int = 5) -> float:
    """Bytes read plus written per second by a one-thread copy of ``n_bytes`` (the best of
    ``repeats``; the arrays are touched first, so page faults are not timed)."""
    source = np.ones(n_bytes // 4, dtype=np.float32)
    target = np.zeros_like(source)
    best = min(timed(lambda: np.copyto(target, source), 1)[0] for _ in range(repeats))
    return 2 * n_bytes / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_data(DATA)
    params = default_parameters(data)
    n_batch, n_years = args.batch, 76
    rng = np.random.default_rng(1)
    batch = params.replace(max_egg_survival=rng.uniform(0.002, 0.02, n_batch),
                           m_ref_per_yr=rng.lognormal(np.log(0.2), 0.2, n_batch))
    release = np.zeros((n_years, params.n_age))
    release[:, 1] = 2e7
    release_length = np.full((n_years, params.n_age), 9.4)
    cells = n_batch * n_years * params.n_age * 2
    rates: dict[str, float] = {}
    naive: dict[str, tuple[float, float]] = {}
    print(f"numba {numba.__version__}, {numba.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for dtype, outputs in ((np.float64, OUTPUT_FIELDS), (np.float32, OUTPUT_FIELDS), (np.float32, PROJECTED)):
        name = np.dtype(dtype).name
        simulate(batch, n_years=2, release_fish=release[:2], release_length_cm=release_length[:2],
                 keep_numbers=False, dtype=dtype)   # warm-up: compile or load the kernel
        walls, cpus, kernels = [], [], []
        with KernelClock() as clock:
            for _ in range(args.repeats):
                before, start, start_cpu = clock.seconds, time.perf_counter(), time.process_time()
                simulate(batch, n_years=n_years, release_fish=release, release_length_cm=release_length,
                         keep_numbers=False, dtype=dtype, outputs=outputs)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - start_cpu)
                kernels.append(clock.seconds - before)
        wall, cpu, in_kernel = (statistics.median(v) for v in (walls, cpus, kernels))
        rest = statistics.median(w - k for w, k in zip(walls, kernels, strict=True))
        if name not in naive:   # the yardstick once per precision
            naive[name] = timed(lambda dtype=dtype: naive_age_loop(n_batch, n_years, params.n_age, dtype),
                                args.repeats)
        naive_wall, naive_cpu = naive[name]
        if outputs == OUTPUT_FIELDS:
            rates[name] = cells / wall
        kept = (f"all {len(outputs)} yearly series" if outputs == OUTPUT_FIELDS
                else f"the {len(outputs)} series a projection keeps")
        print(f"batch {n_batch:,} x {n_years} years x {params.n_age} ages x 2 origins, {name}, {kept}: "
              f"engine {wall:.2f} s (CPU {cpu:.2f} s), {cells / wall:.3g} cell-updates/s; naive numpy "
              f"age loop {naive_wall:.2f} s (CPU {naive_cpu:.2f} s), {cells / naive_wall:.3g} "
              f"cell-updates/s; engine/naive ratio {naive_wall / wall:.2f}; of a run (medians), the "
              f"kernel {in_kernel:.3f} s ({cells / max(in_kernel, 1e-9):.3g} cell-updates/s), the start "
              f"and set-up {rest:.3f} s")

    for dtype in (np.float32, np.float64):
        total, per_cell, per_row = per_row_cost(params, n_batch, dtype)
        print(f"one thread, {np.dtype(dtype).name}: {total:.0f} ns CPU per row and year at 26 ages "
              f"({per_cell:.1f} ns per cell, {per_row:.0f} ns per row)")

    bandwidth = copy_bandwidth()
    traffic = {name: rate * 4 * np.dtype(name).itemsize for name, rate in rates.items()}   # bytes/s
    shares = ", ".join(f"{name} {moved / 1e9:.2f} GB/s = {moved / bandwidth:.0%}"
                       for name, moved in traffic.items())
    print(f"memory: a one-thread copy moves {bandwidth / 1e9:.1f} GB/s (read + written); the engine's "
          f"state traffic (4 values per cell-update): {shares} of it")

    times = []
    for _ in range(20):
        start = time.perf_counter()
        simulate_default(data, first_year=2000, last_year=2024)
        times.append(time.perf_counter() - start)
    print(f"single simulation 2000-2024 on the bundled data (incl. Dataset build): "
          f"median {1e3 * statistics.median(times):.1f} ms over {len(times)} runs")


if __name__ == "__main__":
    with command_settings():   # as every carpmodel command runs
        main()
