"""Engine throughput: age × year × batch cell-updates per second, and one historical run.

Run: python experiments/benchmarks/bench_simulate.py
Prints (1) a batch of 10,000 parameter sets over 76 years (2025–2100) with releases, in float64
(fits) and float32 (projections), and
(2) the median wall time of one single-batch simulation of 2000–2024 on the bundled data.
Timings are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from carpmodel.io.inputs import load_data
from carpmodel.model.dynamics import simulate
from carpmodel.model.simulation import default_parameters, simulate_default

DATA = Path(__file__).resolve().parents[2] / "data"


def main() -> None:
    data = load_data(DATA)
    params = default_parameters(data)
    n_batch, n_years = 10_000, 76
    rng = np.random.default_rng(1)
    batch = params.replace(max_egg_survival=rng.uniform(0.002, 0.02, n_batch),
                           m_ref_per_yr=rng.lognormal(np.log(0.2), 0.2, n_batch))
    release = np.zeros((n_years, params.n_age))
    release[:, 1] = 2e7
    release_length = np.full((n_years, params.n_age), 9.4)
    warm = batch.replace(max_egg_survival=batch.max_egg_survival[:10], m_ref_per_yr=batch.m_ref_per_yr[:10])
    simulate(warm, n_years=3)  # warm-up
    for dtype in (np.float64, np.float32):
        start = time.perf_counter()
        simulate(batch, n_years=n_years, release_fish=release, release_length_cm=release_length,
                 keep_numbers=False, dtype=dtype)
        elapsed = time.perf_counter() - start
        cells = n_batch * n_years * params.n_age * 2
        print(f"batch {n_batch:,} x {n_years} years x {params.n_age} ages x 2 origins, "
              f"{np.dtype(dtype).name}: {elapsed:.2f} s, {cells / elapsed:.3g} cell-updates/s "
              f"({n_batch * n_years * params.n_age / elapsed:.3g} age x year x batch updates/s)")

    times = []
    for _ in range(20):
        start = time.perf_counter()
        simulate_default(data, first_year=2000, last_year=2024)
        times.append(time.perf_counter() - start)
    print(f"single simulation 2000-2024 on the bundled data (incl. Dataset build): "
          f"median {1e3 * statistics.median(times):.1f} ms over {len(times)} runs")


if __name__ == "__main__":
    main()
