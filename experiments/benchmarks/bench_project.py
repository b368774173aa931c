"""Wall time and peak memory of 10,000 draws × 2025–2100 × 5 scenarios × 6 strategies.

Run: python experiments/benchmarks/bench_project.py [--draws N] [--chunk-draws N]

Draws are processed in chunks of 1,000 by default (``--chunk-draws 0``: one batch): results are
identical either way, and 1,000-draw chunks keep memory bounded and the engine's arrays small
enough for the CPU caches (on the 2-core machine, 2026-11-26, load average ~3.5 from other jobs:
27.7 s and 1.9 GiB chunked, 43 s and 2.6 GiB in one batch).
Fits the default model first (not timed), then projects the first six strategies of
the bundled strategies file (carpmodel/management/default_strategies.toml) under the five
bundled climate scenarios with the default
temperature effects (engine in float32, the projection default). Peak memory is the process's
peak resident set size (ru_maxrss), which includes the interpreter and libraries. Also prints
the CPU time of this process (``time.process_time``) and the load average: on a shared machine
the wall time depends on the other jobs, the CPU time much less. Timings are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings
from pathlib import Path

from carpmodel.cli import command_settings
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies
from carpmodel.management.climate import ClimateForcing
from carpmodel.management.projection import load_projection, project, strategy_setup
from carpmodel.management.strategies import StrategySet

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("baseline", "ssp126", "ssp245", "ssp370", "ssp585")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--chunk-draws", type=int, default=1000, help="0: one batch")
    args = parser.parse_args()
    args.chunk_draws = args.chunk_draws or None
    data = load_data(ROOT / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(build_spec(data, default_config()), n_starts=1)
    full = load_strategies(DEFAULT_STRATEGIES_FILE)
    strategies = StrategySet(full.strategies[:6], full.costs)
    setup = strategy_setup(strategies, result.spec.base.n_age, n_draws=args.draws,
                           scenario_names=SCENARIOS, chunk_draws=args.chunk_draws,
                           build_multipliers=ClimateForcing.from_data(data, scenario_names=SCENARIOS))
    before = peak_rss_gib()
    start, start_cpu = time.perf_counter(), time.process_time()
    ds = load_projection(project(result, setup))   # as `carpmodel run` does
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    n_traj = len(strategies.strategies) * len(SCENARIOS) * args.draws
    cells = n_traj * ds.sizes["year"] * result.spec.base.n_age * 2
    print(f"{args.draws:,} draws x {ds.sizes['year']} years x {len(SCENARIOS)} scenarios x "
          f"{len(strategies.strategies)} strategies ({', '.join(strategies.names)}): "
          f"{elapsed:.1f} s (CPU {cpu:.1f} s), peak RSS {peak_rss_gib():.2f} GiB (before projecting "
          f"{before:.2f} GiB), {cells / elapsed:.3g} cell-updates/s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    with command_settings():   # as every carpmodel command runs
        main()
