"""Anomaly simulation: 5,000 draws × 80 years, one generator per draw, CPU time.

Run: python experiments/benchmarks/bench_anomalies.py
Prints, for an ARMA(2,1) (500 burn-in steps) and the default AR(1), the CPU time
(``time.process_time``, best of 3) of :func:`carpmodel.management.anomalies.sample_anomalies`
(all draws filtered at once with ``scipy.signal.lfilter``) and of the per-draw Python recursion
it replaced, and the largest absolute difference between the two. Timings are printed, never
asserted.
"""

from __future__ import annotations

import time

import numpy as np

from carpmodel.management.anomalies import ARMA_BURN_IN, AnomalyModel, sample_anomalies

N_DRAWS, N_YEARS = 5_000, 80


def loop_path(model: AnomalyModel, rng: np.random.Generator, n_years: int) -> np.ndarray:
    """One stationary path by the per-draw recursion (the implementation before lfilter)."""
    p, q = model.order
    if q == 0 and p <= 1:
        phi, z = (model.ar[0] if p else 0.0), rng.standard_normal(n_years)
        out = np.empty(n_years)
        out[0] = z[0] * model.marginal_sd
        for t in range(1, n_years):
            out[t] = phi * out[t - 1] + model.innovation_sd * z[t]
        return out
    e = rng.standard_normal(ARMA_BURN_IN + n_years) * model.innovation_sd
    x = np.zeros(e.size + p)
    for t in range(e.size):
        value = e[t]
        for i in range(p):
            value += model.ar[i] * x[p + t - 1 - i]
        for j in range(q):
            value += model.ma[j] * (e[t - 1 - j] if t - 1 - j >= 0 else 0.0)
        x[p + t] = value
    return x[p + ARMA_BURN_IN:]


def best_cpu_s(function, repeats: int = 3) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.process_time()
        result = function()
        times.append(time.process_time() - start)
    return min(times), result


def main() -> None:
    models = {"ARMA(2,1)": AnomalyModel((0.5, -0.2), (0.4,), 0.3), "AR(1)": AnomalyModel.ar1(0.3, 0.3)}
    seeds = np.random.SeedSequence(7).spawn(N_DRAWS)
    for name, model in models.items():
        vectorised_s, vectorised = best_cpu_s(
            lambda m=model: sample_anomalies(m, [np.random.default_rng(s) for s in seeds], N_YEARS))
        loop_s, loop = best_cpu_s(
            lambda m=model: np.stack([loop_path(m, np.random.default_rng(s), N_YEARS) for s in seeds]))
        print(f"{name:10s} {N_DRAWS} draws x {N_YEARS} yr: per-draw loop {loop_s:6.3f} s CPU, "
              f"lfilter {vectorised_s:6.3f} s CPU ({loop_s / vectorised_s:5.1f}x); "
              f"max |difference| {np.max(np.abs(vectorised - loop)):.2g}")


if __name__ == "__main__":
    main()
