"""Median wall time of a full default fit (optimisation, Newton polish and Hessian) over 5 runs.

Run: python experiments/benchmarks/bench_fit.py
One start (n_starts = 1), bundled data, default FitOptions. Timings are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

from carpmodel.fitting import FitOptions, build_spec, fit
from carpmodel.inputs import load_data

DATA = Path(__file__).resolve().parents[2] / "data"


def main(runs: int = 5) -> None:
    spec = build_spec(load_data(DATA), FitOptions())
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(spec, n_starts=1)
        times.append(time.perf_counter() - start)
    print(f"default fit with Hessian: median {statistics.median(times):.2f} s over {runs} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}); {spec.n_parameters} parameters, "
          f"{result.optimizer['iterations']} L-BFGS-B iterations, converged {result.converged}, "
          f"max |gradient| {result.max_abs_gradient:.1e}")


if __name__ == "__main__":
    main()
