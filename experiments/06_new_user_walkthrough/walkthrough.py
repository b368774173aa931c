"""A new user's three everyday tasks, end to end through the command line (issue #16).

    python experiments/06_new_user_walkthrough/walkthrough.py --out results/06_new_user_walkthrough --force \
        --json experiments/06_new_user_walkthrough/walkthrough.json
    python experiments/06_new_user_walkthrough/walkthrough.py \
        --from-json experiments/06_new_user_walkthrough/walkthrough.json --write-readme

Runs, each as a subprocess of the installed package (``python -m carpmodel``, what the console
script ``carpmodel`` runs):

0. ``carpmodel fit --out OUT/fit`` — the default fit on the bundled data (what tasks a and b start from);
a. ``carpmodel project --fit OUT/fit --strategies OUT/my_strategies.toml --scenarios ssp245,ssp585``:
   the user's own release strategy (20 M age-1 10-g fish a year in 2026-2035 only) against the
   status quo and no releases, under SSP2-4.5 and SSP5-8.5;
b. ``carpmodel sensitivity --fit OUT/fit``: the climate-sensitivity sweep;
c. ``carpmodel fit --last-data-year 2019``: a refit with the surveys after 2019 held out, and
   its hindcast skill line.

Small draw counts (``--draws``, 100 by default) keep it to a few minutes on two cores. Writes
``walkthrough.json`` (each task's command, exit status, run time, the files it wrote, the skill
line, the strategy table of both scenarios; with the date, versions and machine load) and checks
that every expected output exists; ``--from-json FILE`` prints the README block of a saved run.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from carpmodel.report.doc_blocks import machine_record, replace_block

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: the user's strategies file (the README's "Strategies file" section documents every key)
MY_STRATEGIES = """\
# A new user's question: is a ten-year release programme (2026-2035) worth it, against the
# status quo (releases every year) and no releases at all? Costs: the bundled illustrative ones.

[strategies.no_releases]
description = "Reference: no releases from 2025; closure continued"

[strategies.status_quo]
description = "20 M age-1 10-g fish every year (the 2021-2024 level); closure continued"

[[strategies.status_quo.releases]]
type = "constant"
fish_per_year = 20_000_000.0
age_yr = 1
weight_g = 10.0

[strategies.ten_years_2026_2035]
description = "20 M age-1 10-g fish a year in 2026-2035 only; closure continued"
start_year = 2026
stop_after_year = 2035

[[strategies.ten_years_2026_2035.releases]]
type = "constant"
fish_per_year = 20_000_000.0
age_yr = 1
weight_g = 10.0
"""

SCENARIOS = ("ssp245", "ssp585")
HINDCAST_YEAR = 2019

#: files each task must write (relative to its output directory)
EXPECTED = {
    "fit": ("fit.json", "fit.nc", "run.json", "figures/fit.png"),
    "project": ("projection.nc", "metrics.csv", "run.json", "figures/strategy_comparison.png",
                "figures/projection_fan.png", "figures/hatchery_fraction.png",
                "figures/projection_scenarios.png"),
    "sensitivity": ("sensitivity.nc", "run.json", "figures/sensitivity_lines.png",
                    "figures/sensitivity_heatmap.png"),
    "fit_2019": ("fit.json", "fit.nc", "hindcast.nc", "run.json", "figures/fit.png"),
}

#: metrics.csv columns the walk-through keeps (the strategy table a user reads first)
METRIC_COLUMNS = (
    "strategy", "scenario", "biomass_gain_median_t_2050", "biomass_gain_lower_t_2050",
    "biomass_gain_upper_t_2050", "biomass_gain_per_million_cost_t", "cost_per_t_gained",
    "p_beats_status_quo_2050", "p_ssb_below_limit_static_any", "p_ssb_below_limit_dynamic_any",
    "released_fish_through_cost_year_median", "cost_through_cost_year_median", "released_fish_total_median",
    "cost_total_median",
)


def _run(name: str, arguments: list[str], out: Path) -> dict:
    """Run ``python -m carpmodel ARGUMENTS`` and record what it did."""
    command = [sys.executable, "-m", "carpmodel", *arguments]
    print(f"[{name}] carpmodel {' '.join(arguments)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # stderr (progress, one line per stage off a terminal) goes to a file as it comes
    with (out / f"{name}.stderr.txt").open("w") as log:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    (out / f"{name}.stdout.txt").write_text(done.stdout)
    stderr = (out / f"{name}.stderr.txt").read_text()
    print(f"[{name}] exit {done.returncode} in {seconds:.0f} s", file=sys.stderr, flush=True)
    directory = out / name
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) \
        if directory.is_dir() else []
    missing = [f for f in EXPECTED[name] if f not in files]
    return {"command": "carpmodel " + " ".join(str(a).replace(str(out), "OUT") for a in arguments),
            "exit_status": done.returncode, "runtime_s": seconds, "files": files,
            "missing": missing, "stdout": done.stdout.strip().splitlines(),
            "notes": [line for line in stderr.splitlines() if line.startswith("carpmodel:")],
            "stages": [line for line in stderr.splitlines() if line.startswith("[") and " done in " in line]}


def _number(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def strategy_rows(metrics_csv: Path) -> list[dict]:
    """The kept columns of metrics.csv, one row per strategy x scenario."""
    with metrics_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(row[k]) if k not in ("strategy", "scenario") else row[k]
             for k in METRIC_COLUMNS if k in row} for row in rows]


def walk(out: Path, draws: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    strategies = out / "my_strategies.toml"
    strategies.write_text(MY_STRATEGIES)
    record: dict = {"machine": machine_record(), "draws": draws, "scenarios": list(SCENARIOS),
                    "strategies_toml": MY_STRATEGIES, "tasks": {}}
    tasks = record["tasks"]
    tasks["fit"] = _run("fit", ["fit", "--out", str(out / "fit"), "--force"], out)
    tasks["project"] = _run("project", ["project", "--fit", str(out / "fit"), "--strategies", str(strategies),
                                        "--scenarios", ",".join(SCENARIOS), "--draws", str(draws),
                                        "--out", str(out / "project"), "--force"], out)
    tasks["sensitivity"] = _run("sensitivity", ["sensitivity", "--fit", str(out / "fit"),
                                                "--draws", str(draws), "--out", str(out / "sensitivity"),
                                                "--force"], out)
    tasks["fit_2019"] = _run("fit_2019", ["fit", "--last-data-year", str(HINDCAST_YEAR),
                                          "--out", str(out / "fit_2019"), "--force"], out)
    if (out / "project" / "metrics.csv").is_file():
        record["strategy_table"] = strategy_rows(out / "project" / "metrics.csv")
        drawn = {}
        for figure in ("strategy_comparison", "projection_fan", "hatchery_fraction"):
            drawn[figure] = _figure_size(out / "project" / "figures" / f"{figure}.png")
        record["figure_sizes_px"] = drawn
    skill = [line for line in tasks["fit_2019"]["stdout"] if "MASE" in line or "held-out" in line]
    record["hindcast_skill_line"] = skill[0] if skill else None
    fit_json = out / "fit_2019" / "fit.json"
    if fit_json.is_file():
        record["hindcast_held_out"] = json.loads(fit_json.read_text()).get("hindcast_held_out")
    record["total_runtime_s"] = sum(t["runtime_s"] for t in tasks.values())
    record["ok"] = all(t["exit_status"] == 0 and not t["missing"] for t in tasks.values())
    return record


def _figure_size(png: Path) -> list[int] | None:
    """Pixel size of a figure, width and height (one row of panels per scenario: taller)."""
    if not png.is_file():
        return None
    import matplotlib.image

    height, width = matplotlib.image.imread(png).shape[:2]
    return [int(width), int(height)]


def _kt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value / 1e3:,.1f}"


def quoted(record: dict) -> list[str]:
    """The strings the README's closing note must contain, as rendered from the record."""
    held = record["hindcast_held_out"]
    static = [r["p_ssb_below_limit_static_any"] for r in record["strategy_table"]
              if r["scenario"] == "ssp585"]
    gains = {(r["scenario"], r["strategy"]): r["biomass_gain_per_million_cost_t"]
             for r in record["strategy_table"]}
    return [f"MASE against persistence {held['mase_persistence']:.2f}",
            f"{held['held_out_inside_95']:.0f} of {len(held['years'])} held-out surveys",
            f"{min(static):.2f}–{max(static):.2f}",
            f"{gains[('ssp245', 'ten_years_2026_2035')]:.1f} t per million cost units against "
            f"{gains[('ssp245', 'status_quo')]:.1f}",
            f"{record['total_runtime_s']:.0f} s"]


def _value(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    return "–" if v is None or v != v else format(v, fmt)


def markdown(record: dict) -> str:
    """The README block of a walk-through record."""
    m = record["machine"]
    out = [f"Run {m['date']}, carpmodel {m['carpmodel']}, numpy {m['numpy']}, scipy {m['scipy']}, "
           f"python {m['python']}, load {m['load_average'][0]:.1f} on {m['cpus']} cores; "
           f"{record['draws']} draws; all outputs present: {'yes' if record['ok'] else 'NO'}.", "",
           "| task | command | exit | time (s) | files written |", "|---|---|---|---|---|"]
    for name, task in record["tasks"].items():
        missing = f" (missing: {', '.join(task['missing'])})" if task["missing"] else ""
        out.append(f"| {name} | `{task['command']}` | {task['exit_status']} | {task['runtime_s']:.0f} | "
                   f"{len(task['files'])}{missing} |")
    out.append(f"| total | | | {record['total_runtime_s']:.0f} | |")
    out.append("")
    out.append(f"Hindcast skill line printed by the refit with data to {HINDCAST_YEAR}:")
    out.append("")
    out.append(f"    {record.get('hindcast_skill_line')}")
    out.append("")
    rows = record.get("strategy_table", [])
    if rows:
        rows = sorted(rows, key=lambda r: (r["scenario"], r["strategy"]))
        out.append("| scenario | strategy | gain over no_releases in 2050, kt (median [90 %]) | "
                   "gain per million cost units, t | cost units per t gained | P(beats status quo, 2050) | "
                   "P(SSB < 0.2 SSB0 in any year), static SSB0 | dynamic SSB0 | fish released to 2050 (M) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            gain = (f"{_kt(r.get('biomass_gain_median_t_2050'))} [{_kt(r.get('biomass_gain_lower_t_2050'))}, "
                    f"{_kt(r.get('biomass_gain_upper_t_2050'))}]")
            fish = r.get("released_fish_through_cost_year_median")
            cells = [r["scenario"], r["strategy"], gain, _value(r, "biomass_gain_per_million_cost_t", ",.1f"),
                     _value(r, "cost_per_t_gained", ",.0f"), _value(r, "p_beats_status_quo_2050", ".2f"),
                     _value(r, "p_ssb_below_limit_static_any", ".2f"),
                     _value(r, "p_ssb_below_limit_dynamic_any", ".2f"),
                     "–" if fish is None else format(fish / 1e6, ",.0f")]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "06_new_user_walkthrough")
    parser.add_argument("--force", action="store_true", help="reuse an existing --out directory")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the record here (OUT/walkthrough.json always)")
    parser.add_argument("--from-json", type=Path, help="print the README block of a saved record")
    parser.add_argument("--write-readme", action="store_true", help="with --from-json: put the block "
                        "into README.md")
    args = parser.parse_args()
    if args.from_json:
        block = markdown(json.loads(args.from_json.read_text()))
        if args.write_readme:
            readme = HERE / "README.md"
            readme.write_text(replace_block(readme.read_text(), "walkthrough", block + "\n"))
        print(block)
        return 0
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; --force reuses it")
    record = walk(args.out, args.draws)
    text = json.dumps(record, indent=1, default=float) + "\n"
    (args.out / "walkthrough.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    print(markdown(record))
    if not record["ok"]:
        print("walkthrough: a task failed or an expected output is missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
