"""Release strategies across the structural ensemble under SSP2-4.5, and the best use of a budget.

For the bundled data: the biomass gain over no_releases (paired by draw, median and 90 %
interval) in 2050 and the cost per tonne gained of every strategy of the bundled strategies file
(carpmodel/management/default_strategies.toml),
per ensemble member and pooled; then the budget optimiser's split of the [budget] question of
that file (status-quo budget over age-0 1-g, age-1 10-g and age-2 50-g fish; median gain in
2050) per member and pooled. Prints the tables as Markdown (they go into README.md) and writes
ensemble_members.csv, ensemble_metrics.csv, budget.csv, ensemble_projection.nc and figures.

Run (from the repository root):

    python experiments/03_release_strategies/ensemble_results.py --out results/03_ensemble --force

Options: --draws N (default 300), --ensemble FILE (default ensemble.toml next to this script),
--scenario NAME (default ssp245), --seed S (default: the experiment's config.toml).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from carpmodel.io.config import load_config  # noqa: E402
from carpmodel.io.ensemble_file import load_ensemble  # noqa: E402
from carpmodel.io.inputs import load_data  # noqa: E402
from carpmodel.io.outputs import (  # noqa: E402
    check_output_dir,
    prepare_output_dir,
    write_csv_atomic,
    write_figure_atomic,
    write_netcdf_atomic,
)
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies  # noqa: E402
from carpmodel.management.budget import budget_table, optimise_release_budget  # noqa: E402
from carpmodel.management.climate import ClimateForcing  # noqa: E402
from carpmodel.management.ensemble import (  # noqa: E402
    ensemble_metrics,
    fit_ensemble,
    members_table,
    project_ensemble,
)
from carpmodel.management.metrics import metrics_table  # noqa: E402
from carpmodel.management.projection import strategy_setup  # noqa: E402
from carpmodel.report import figures as plotting  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _write_rows(path: Path, rows: list[dict]) -> Path:
    header = list(rows[0])
    return write_csv_atomic(path, header, [[row.get(k) for k in header] for row in rows])


def _kt(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value / 1e3:,.1f}"


def _cost(value: float) -> str:
    return "– (no gain)" if not math.isfinite(value) else f"{value:,.0f}"


def member_lines(members: list[dict]) -> list[str]:
    lines = ["| member | window | prior | M | initial state | included | release survival "
             "| reason excluded |", "|---|---|---|---|---|---|---|---|"]
    for m in members:
        survival = f"{m['release_survival']:.2f}" if math.isfinite(m["release_survival"]) else "–"
        lines.append(f"| {m['structure']} | 1–{m['dd_window_end_age_yr']} | {m['release_survival_prior']} | "
                     f"{m['mortality']} | {m['initial_state']} | {'yes' if m['included'] else 'no'} | "
                     f"{survival} | {m['reason_excluded'][:110]} |")
    return lines


def strategy_lines(rows: list[dict], scenario: str, structures: list[str]) -> list[str]:
    """One row per member (and pooled), one column per strategy: gain in 2050 (kt, median
    [90 %]) and cost per tonne gained (thousand cost units per t)."""
    strategies = [s for s in dict.fromkeys(r["strategy"] for r in rows) if s != "no_releases"]
    cell = {(r["strategy"], r["structure"]): r for r in rows if r["scenario"] == scenario}
    lines = ["| structure | " + " | ".join(strategies) + " |", "|---|" + "---|" * len(strategies)]
    for structure in structures:
        parts = []
        for strategy in strategies:
            r = cell[(strategy, structure)]
            cost = r["cost_per_t_gained"]
            parts.append(f"{_kt(r['biomass_gain_median_t_2050'])} [{_kt(r['biomass_gain_lower_t_2050'])}, "
                         f"{_kt(r['biomass_gain_upper_t_2050'])}]; "
                         + (f"{cost / 1e3:,.0f}k/t" if math.isfinite(cost) else "no gain"))
        name = f"**{structure}**" if structure == "pooled" else structure
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    return lines


def _held_out(row: dict) -> str:
    """The chosen split's median gain [90 %] on held-out draws (kt), "-" for a run without them."""
    if row.get("holdout_gain_median_t") is None:
        return "-"
    return (f"{_kt(row['holdout_gain_median_t'])} [{_kt(row['holdout_gain_lower_t'])}, "
            f"{_kt(row['holdout_gain_upper_t'])}]")


def budget_lines(rows: list[dict]) -> list[str]:
    options = [k.removeprefix("share_") for k in rows[0] if k.startswith("share_")]
    lines = ["| structure | " + " | ".join(f"share {o}" for o in options)
             + " | gain 2050, kt (median [90 %]) | on held-out draws | cost per t "
             "| best single size (median gain, kt) |",
             "|---|" + "---|" * (len(options) + 4)]
    for r in rows:
        corners = {o: r[f"corner_gain_median_t_{o}"] for o in options}
        best = max(corners, key=corners.get)
        lines.append(f"| {r['structure']} | " + " | ".join(f"{r[f'share_{o}']:.2f}" for o in options)
                     + f" | {_kt(r['gain_median_t'])} [{_kt(r['gain_lower_t'])}, {_kt(r['gain_upper_t'])}]"
                     + f" | {_held_out(r)}"
                     + f" | {_cost(r['cost_per_t_gained'])} | {best}: {_kt(corners[best])} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--ensemble", default=str(HERE / "ensemble.toml"))
    parser.add_argument("--scenario", default="ssp245")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "03_ensemble"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    config = load_config(HERE / "config.toml")
    seed = config.seed if args.seed is None else args.seed
    data = load_data(ROOT / "data")
    check_output_dir(args.out, args.force, [ROOT / "data"])
    definition = load_ensemble(args.ensemble)
    strategies = load_strategies(DEFAULT_STRATEGIES_FILE)

    def tick(label: str, done: int, total: int) -> None:
        print(f"  {label}: {done}/{total} ({time.perf_counter() - started:.0f} s)", file=sys.stderr,
              flush=True)

    fits = fit_ensemble(data, definition, config, seed=seed, progress=tick)
    members = members_table(fits)
    fitted_s = time.perf_counter() - started
    scenarios = (args.scenario,)
    setup = strategy_setup(strategies, fits.included[0].result.spec.base.n_age, n_draws=args.draws, seed=seed,
                           scenario_names=scenarios,
                           build_multipliers=ClimateForcing.from_data(data, scenario_names=scenarios))
    dataset = project_ensemble(fits, setup)
    metrics = ensemble_metrics(dataset, years=(2035, 2050, 2100), cost_year=2050)
    rows = metrics_table(metrics)
    projected_s = time.perf_counter() - started
    budget = optimise_release_budget(fits, setup, strategies.budget, strategies.costs, progress=tick)
    budget_rows = budget_table(budget)
    total_s = time.perf_counter() - started

    out = prepare_output_dir(args.out, args.force, [ROOT / "data"])
    write_netcdf_atomic(dataset, out / "ensemble_projection.nc")
    _write_rows(out / "ensemble_members.csv", members)
    _write_rows(out / "ensemble_metrics.csv", rows)
    _write_rows(out / "budget.csv", budget_rows)
    write_netcdf_atomic(budget, out / "budget.nc")
    (out / "figures").mkdir(exist_ok=True)
    write_figure_atomic(plotting.plot_ensemble_gains(metrics, scenario=args.scenario),
                        out / "figures" / "ensemble_gains.png", dpi=110)
    write_figure_atomic(plotting.plot_budget_shares(budget), out / "figures" / "budget_shares.png", dpi=110)

    # the run's settings and times, read by ensemble_docs.py (the README's generated block)
    timings = {"fits_s": round(fitted_s), "projection_s": round(projected_s - fitted_s),
               "budget_s": round(total_s - projected_s), "total_s": round(total_s), "draws": args.draws,
               "seed": seed, "scenario": args.scenario}
    (out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    structures = [str(s) for s in metrics.structure.values]
    print(f"## Structural ensemble ({len(fits.included)} of {len(fits.members)} members included; "
          f"{args.draws} draws each; seed {seed}; scenario {args.scenario})\n")
    print("\n".join(member_lines(members)))
    print(f"\n## Gain over no_releases in 2050, kt (median [90 % interval], paired by draw); cost per "
          f"tonne gained (cost 2025–2050 / median gain, thousand {strategies.costs.currency}, "
          f"illustrative)\n")
    print("\n".join(strategy_lines(rows, args.scenario, structures)))
    problem = strategies.budget
    print(f"\n## Best split of {problem.budget_per_year:,.0f} cost units a year ({problem.objective} of the "
          f"{problem.variable} gain in {problem.year}, {problem.scenario})\n")
    print("\n".join(budget_lines(budget_rows)))
    print(f"\nrun time: fits {fitted_s:.0f} s, projection + metrics {projected_s - fitted_s:.0f} s, budget "
          f"{total_s - projected_s:.0f} s, total {total_s:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
