"""Median wall time of the default fit over several runs: one optimisation at a fixed survey
error (optimisation, Newton polish and Hessian), and ``fit_model`` (what ``carpmodel fit``
runs: that fit alternated with the survey error's marginal-likelihood step).

Run: python experiments/benchmarks/bench_fit.py
One start (n_starts = 1), bundled data, default config. Timings are printed, never asserted.
Runs as a command does (BLAS on one thread). Also prints the median CPU time of this process
(``time.process_time``), which is the figure to compare when other jobs share the machine's two
cores (wall time then includes waiting).
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

from carpmodel.cli import command_settings
from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit, fit_model
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data

DATA = Path(__file__).resolve().parents[2] / "data"


def main(runs: int = 5) -> None:
    spec = build_spec(load_data(DATA), default_config())
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(spec, n_starts=1)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"default fit with Hessian: median {statistics.median(times):.2f} s over {runs} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}), CPU median {statistics.median(cpu):.2f} s; "
          f"{spec.n_parameters} parameters, "
          f"{result.optimizer['iterations']} L-BFGS-B iterations, converged {result.converged}, "
          f"max |gradient| {result.max_abs_gradient:.1e}, Hessian condition number "
          f"{result.condition_number:.2g}")
    times, cpu = [], []
    config = default_config().with_fit(n_starts=1)
    for _ in range(max(1, runs // 2)):
        start, start_cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit_model(load_data(DATA), config)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    error = result.survey_error
    print(f"fit_model (survey error alternated): median {statistics.median(times):.2f} s over "
          f"{len(times)} runs, CPU median {statistics.median(cpu):.2f} s; {error.iterations} fits, "
          f"sigma_survey {error.sigma_survey:.3f}, rho {error.rho:.2f}, converged {result.converged}, "
          f"Hessian condition number {result.condition_number:.2g}")


if __name__ == "__main__":
    with command_settings():   # as every carpmodel command runs
        main()
