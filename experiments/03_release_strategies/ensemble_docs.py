"""The figures this folder's README quotes, read from an ensemble run (issue #16 item 6).

    python experiments/03_release_strategies/ensemble_results.py --out results/03_ensemble --force \
        --draws 200 > results/03_ensemble.log
    python experiments/03_release_strategies/ensemble_docs.py results/03_ensemble \
        --log results/03_ensemble.log --json experiments/03_release_strategies/ensemble_docs.json \
        --write-readme
    python experiments/03_release_strategies/ensemble_docs.py \
        --from-json experiments/03_release_strategies/ensemble_docs.json

Reads ``ensemble_members.csv``, ``ensemble_metrics.csv`` and ``budget.csv`` of
``ensemble_results.py``'s output directory (and the run-time line of its printed output, or its
``timings.json``) and writes a JSON of the rows the README's tables show and of the figures its
"What this says" paragraph quotes, with the date, versions and machine load; prints
(``--write-readme``: puts into README.md) the generated block that ``tests/test_docs.py`` checks.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

from carpmodel.report.doc_blocks import docs_script, machine_record

HERE = Path(__file__).resolve().parent
YEAR = 2050
MEMBER_KEYS = ("structure", "dd_window_end_age_yr", "release_survival_prior", "mortality", "initial_state",
               "included", "release_survival", "reason_excluded")
METRIC_KEYS = ("strategy", "scenario", "structure", f"biomass_gain_median_t_{YEAR}",
               f"biomass_gain_lower_t_{YEAR}", f"biomass_gain_upper_t_{YEAR}", "cost_per_t_gained")


def _value(text: str) -> float | str | bool | None:
    if text in ("True", "False"):
        return text == "True"
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _rows(path: Path, keys: tuple[str, ...] | None = None) -> list[dict]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _value(v) for k, v in row.items() if keys is None or k in keys} for row in rows]


def _timings(directory: Path, log: Path | None) -> dict:
    if (directory / "timings.json").is_file():
        return json.loads((directory / "timings.json").read_text())
    if log is None or not log.is_file():
        return {}
    found = re.search(r"run time: fits (\d+) s, projection \+ metrics (\d+) s, budget (\d+) s, total (\d+) s",
                      log.read_text())
    heading = re.search(r"(\d+) of (\d+) members included; (\d+) draws each; seed (\d+); scenario (\w+)",
                        log.read_text())
    out = {}
    if found:
        names = ("fits_s", "projection_s", "budget_s", "total_s")
        out.update(zip(names, map(int, found.groups()), strict=True))
    if heading:
        out.update(draws=int(heading.group(3)), seed=int(heading.group(4)), scenario=heading.group(5))
    return out


def read_run(directory: Path, log: Path | None = None) -> dict:
    """The rows of the README's tables and the run's settings and times."""
    members = _rows(directory / "ensemble_members.csv", MEMBER_KEYS)
    for m in members:
        m["dd_window_end_age_yr"] = int(m["dd_window_end_age_yr"])
        m["reason_excluded"] = m["reason_excluded"] or ""
    timings = _timings(directory, log)
    scenario = timings.get("scenario", "ssp245")
    metrics = [r for r in _rows(directory / "ensemble_metrics.csv", METRIC_KEYS) if r["scenario"] == scenario]
    budget = _rows(directory / "budget.csv")
    kept = ("structure", "gain_median_t", "gain_lower_t", "gain_upper_t", "cost_per_t_gained",
            "holdout_gain_median_t", "holdout_gain_lower_t", "holdout_gain_upper_t")
    budget = [{k: v for k, v in r.items() if k in kept or k.startswith(("share_", "corner_gain_median_t_"))}
              for r in budget]
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_strategies

    problem = load_strategies(DEFAULT_STRATEGIES_FILE).budget
    question = {k: getattr(problem, k)
                for k in ("budget_per_year", "objective", "variable", "year", "scenario")}
    return {"machine": machine_record(), "source": str(directory), "run": timings, "scenario": scenario,
            "members": members, "metrics": metrics, "budget": budget, "budget_question": question}


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ensemble_results", HERE / "ensemble_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gain(record: dict, strategy: str, structure: str = "pooled") -> tuple[float, float, float]:
    row = next(r for r in record["metrics"] if r["strategy"] == strategy and r["structure"] == structure)
    return tuple(row[f"biomass_gain_{k}_t_{YEAR}"] / 1e3 for k in ("median", "lower", "upper"))


def _best(row: dict) -> str:
    corners = {k.removeprefix("corner_gain_median_t_"): v for k, v in row.items()
               if k.startswith("corner_gain_median_t_")}
    return max(corners, key=corners.get)


def figures(record: dict) -> dict:
    """The figures the "What this says" paragraph quotes."""
    included = [m for m in record["members"] if m["included"]]
    excluded = [m["structure"] for m in record["members"] if not m["included"]]
    member_gains = [_gain(record, "status_quo", m["structure"])[0] for m in included]
    winners: dict[str, list[str]] = {}
    for row in record["budget"]:
        if row["structure"] != "pooled":
            winners.setdefault(_best(row), []).append(row["structure"])
    return {"n_members": len(record["members"]), "n_included": len(included), "excluded": excluded,
            "status_quo": _gain(record, "status_quo"), "double_releases": _gain(record, "double_releases"),
            "reopen_fishing": _gain(record, "reopen_fishing"),
            "status_quo_member_range": (min(member_gains), max(member_gains)),
            "budget_best_single_size": {k: sorted(v) for k, v in winners.items()},
            "budget_holdout": _holdout(record["budget"])}


def _holdout(rows: list[dict]) -> dict:
    """The chosen splits' median gains on their own draws and on held-out ones: the pooled pair
    (kt), how many members lose on held-out draws, and the members' median ratio."""
    members = [r for r in rows if r["structure"] != "pooled" and r.get("holdout_gain_median_t") is not None]
    if not members:
        return {}
    pooled = next(r for r in rows if r["structure"] == "pooled")
    ratios = [r["holdout_gain_median_t"] / r["gain_median_t"] for r in members]
    return {"pooled_kt": (pooled["gain_median_t"] / 1e3, pooled["holdout_gain_median_t"] / 1e3),
            "members_lower": sum(r["holdout_gain_median_t"] < r["gain_median_t"] for r in members),
            "n_members": len(members),
            "median_ratio": statistics.median(ratios)}


def quoted(record: dict) -> list[str]:
    """The strings the README's "What this says" paragraph must contain, as rendered."""
    f = figures(record)
    sq, dbl, reopen = f["status_quo"], f["double_releases"], f["reopen_fishing"]
    lo, hi = f["status_quo_member_range"]
    wins = f["budget_best_single_size"]
    top = max(wins, key=lambda k: len(wins[k]))
    share = len(wins[top]) / f["n_included"]
    quotes = [f"+{sq[0]:.1f} kt by {YEAR} (90 % {sq[1]:.1f}–{sq[2]:.1f})",
            f"{f['n_included']} converged members",
            f"+{dbl[0]:.1f} kt", f"−{-reopen[0]:.0f} kt (−{-reopen[1]:.0f} to −{-reopen[2]:.0f})",
            f"spans {lo:.1f}–{hi:.1f} kt",
            f"in {len(wins[top])} of {f['n_included']} members ({100 * share:.0f} %"]
    held = f["budget_holdout"]
    if held:
        chosen_with, held_out = held["pooled_kt"]
        change = f"{100 * (held['median_ratio'] - 1):+.0f}".replace("-", "−")
        quotes += [f"+{chosen_with:.1f} kt on the draws it was chosen with, +{held_out:.1f} kt on as many "
                   "held-out draws",
                   f"lower in {held['members_lower']} of {held['n_members']} members (median {change} %)"]
    return quotes


def markdown(record: dict) -> str:
    """The README block: the run's settings and times, then the three tables of ensemble_results.py."""
    tables = _module()
    m, run = record["machine"], record["run"]
    included = sum(1 for r in record["members"] if r["included"])
    structures = list(dict.fromkeys(r["structure"] for r in record["metrics"]))
    out = [f"Read {m['date']}, carpmodel {m['carpmodel']}, numpy {m['numpy']}, python {m['python']}, load "
           f"{m['load_average'][0]:.1f} on {m['cpus']} cores, from `{record['source']}`. Run: "
           + (f"fits {run['fits_s']} s, projection and metrics {run['projection_s']} s, budget "
              f"{run['budget_s']} s, total {run['total_s']} s." if "total_s" in run else
              "run times not recorded."), "",
           f"**Structural ensemble ({included} of {len(record['members'])} members included; "
           f"{run.get('draws', '?')} draws each; seed {run.get('seed', '?')}; scenario "
           f"{record['scenario']})**", "",
           *tables.member_lines(record["members"]), "",
           f"**Gain over no_releases in {YEAR}, kt (median [90 % interval], paired by draw); cost per tonne "
           f"gained (cost 2025–{YEAR} / median gain, thousand relative units (1 = cost of one 10-g fish), "
           f"illustrative)**", "",
           *tables.strategy_lines(record["metrics"], record["scenario"], structures), ""]
    if record["budget"]:
        q = record["budget_question"]
        out += [f"**Best split of {q['budget_per_year']:,.0f} cost units a year ({q['objective']} of the "
                f"{q['variable']} gain in {q['year']}, {q['scenario']})**", "",
                *tables.budget_lines(record["budget"]), ""]
    return "\n".join(out)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _compact(record: dict) -> str:
    """The record as JSON, each row of a table on one line."""
    parts = []
    for key, value in _rounded(record).items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = ",\n  ".join(json.dumps(row, ensure_ascii=False) for row in value)
            parts.append(f" {json.dumps(key)}: [\n  {rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}"


def main() -> int:
    return docs_script(
        description=__doc__.splitlines()[0], readme=HERE / "README.md", block="ensemble_docs",
        source=("directory", "ensemble_results.py's output directory", "an ensemble output directory"),
        options=(("--log", {"type": Path, "help": "ensemble_results.py's printed output (run times)"}),),
        read_run=lambda args: read_run(args.source, args.log), markdown=markdown,
        dump=_compact,   # one table row a line; six decimals (the tables show at most two)
        after=lambda record: [print(f"quoted: {line}") for line in quoted(record)])


if __name__ == "__main__":
    raise SystemExit(main())
