"""Scaling of chunked projections: in-process vs a 2-worker dask LocalCluster.

Run: python experiments/benchmarks/bench_scale.py [--sizes 10000 100000 1000000] [--chunk-draws N]

For each number of draws (× 2025–2100 × 5 scenarios × 2 strategies: no_releases, status_quo)
the projection is built lazily in chunks of draws and reduced chunk by chunk to the biomass in
2050 and 2100 (what metrics need), so memory stays bounded. Prints wall time, peak resident
memory (of this process; for the cluster, the largest worker's peak), cell-updates per second,
and the machine's memory bandwidth measured by copying a 512 MiB array, with the engine's
estimated array traffic as a fraction of it. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import numpy as np

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
from carpmodel.management.climate import ClimateForcing
from carpmodel.management.projection import project, strategy_setup
from carpmodel.management.strategies import StrategySet

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("baseline", "ssp126", "ssp245", "ssp370", "ssp585")
#: state-sized arrays read or written per simulated year in dynamics.simulate without fishing:
#: about 41 elementwise operations on (batch, origin, age) arrays, each reading ~1.5 arrays and
#: writing one (counted by hand; an estimate, ±30 %, used only to express throughput as traffic)
PASSES_PER_YEAR = 100
#: bytes per state value: projections run the engine in float32
BYTES_PER_VALUE = 4


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory_bandwidth_gb_s(size_mib: int = 512, repeats: int = 5) -> float:
    source = np.ones(size_mib * 2**20 // 8)
    target = np.empty_like(source)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best / 1e9        # read + write


def _own_peak_rss_gib() -> float:
    """This process's peak resident set size since it started (VmHWM), GiB. Unlike ru_maxrss it
    is not inherited: a spawned worker's ru_maxrss starts at its parent's RSS at fork time."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20      # kB
    return float("nan")


def worker_peak_rss_gib(client) -> float:
    """Largest peak resident set size over the cluster's worker processes, GiB."""
    return max(client.run(_own_peak_rss_gib).values())


def run(result, data, draws: int, chunk: int, client=None) -> tuple[float, float]:
    full = load_strategies(DEFAULT_STRATEGIES_FILE)
    strategies = StrategySet(tuple(s for s in full.strategies if s.name in ("no_releases", "status_quo")),
                             full.costs)
    setup = strategy_setup(strategies, result.spec.base.n_age, n_draws=draws, scenario_names=SCENARIOS,
                           chunk_draws=min(chunk, draws),
                           build_multipliers=ClimateForcing.from_data(data, scenario_names=SCENARIOS))
    start = time.perf_counter()
    ds = project(result, setup)
    reduced = ds["biomass_t"].sel(year=[2050, 2100])
    values = reduced.compute() if client is None else client.compute(reduced).result()
    elapsed = time.perf_counter() - start
    assert np.all(np.isfinite(values.values))
    return elapsed, 2 * len(SCENARIOS) * draws * ds.sizes["year"] * result.spec.base.n_age * 2 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk-draws", type=int, default=500)
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()
    data = load_data(ROOT / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(build_spec(data, default_config()), n_starts=1)
    bandwidth = memory_bandwidth_gb_s()
    print(f"memory bandwidth (numpy copy of 512 MiB, read + write): {bandwidth:.1f} GB/s")
    print("engine        draws     wall s   peak GiB   cell-updates/s   traffic/bandwidth")
    client = None
    if not args.no_cluster:
        from carpmodel.cluster import connect

        client = connect("local")
    for draws in args.sizes:
        import dask

        with dask.config.set(scheduler="synchronous"):
            elapsed, rate = run(result, data, draws, args.chunk_draws)
        traffic = rate * BYTES_PER_VALUE * PASSES_PER_YEAR / 1e9
        print(f"in-process {draws:>10,} {elapsed:10.1f} {peak_rss_gib():10.2f} {rate:16.3g} "
              f"{traffic / bandwidth:18.2f}")
        if client is not None:
            elapsed, rate = run(result, data, draws, args.chunk_draws, client)
            traffic = rate * BYTES_PER_VALUE * PASSES_PER_YEAR / 1e9
            peak = worker_peak_rss_gib(client)
            print(f"LocalCluster2 {draws:>7,} {elapsed:10.1f} {peak:10.2f} {rate:16.3g} "
                  f"{traffic / bandwidth:18.2f}")
    if client is not None:
        client.close()
        client.cluster.close()


if __name__ == "__main__":
    main()
