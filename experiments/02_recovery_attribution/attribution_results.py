"""The figures this folder's README quotes, read from their results files (issue #16 item 6).

    carpmodel fit --out results/main_fit
    python experiments/02_recovery_attribution/attribution_results.py results/main_fit \
        --json experiments/02_recovery_attribution/attribution_results.json --write-readme
    python experiments/02_recovery_attribution/attribution_results.py \
        --from-json experiments/02_recovery_attribution/attribution_results.json

Sources: the default fit's ``fit.json`` (``attribution``: Shapley shares over the posterior draws;
``hatchery_contribution``: release survival's posterior/prior SD ratio), the start profile of
``experiments/01_fit_baseline/assessment_core.json`` (the ban's share at each held initial
depletion), ``habitat_and_prior.txt`` beside this script (the 8-member ensemble and the
connectivity factor; ``habitat_and_prior.py`` writes it, ~16 min) and the survey record
(``data/biomass_observations.csv``). Writes a JSON with the date, versions and machine load, and
prints (``--write-readme``: puts into README.md) the generated block that ``tests/test_docs.py``
checks.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from carpmodel.report.doc_blocks import docs_script, machine_record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORE = ROOT / "experiments" / "01_fit_baseline" / "assessment_core.json"
HABITAT = HERE / "habitat_and_prior.txt"
#: ΔNLL below which a held start value is supported (χ²₁ 95 % / 2)
SUPPORTED_DELTA_NLL = 1.92
SHARES = {"share_ban": "the ban", "share_releases": "the releases",
          "share_rec_devs": "recruitment variation", "hatchery_fraction_last": "hatchery-origin share of "
                                                                             "the last year's survey biomass"}


def _survey(year: int) -> float:
    with (ROOT / "data" / "biomass_observations.csv").open(newline="") as handle:
        return next(float(r["biomass_t"]) for r in csv.DictReader(handle) if int(r["year"]) == year)


def _habitat(text: str) -> dict:
    from carpmodel.inference.build import HABITAT_SLOPE_PRIOR

    """The ensemble and connectivity figures of habitat_and_prior.txt."""
    summary = re.findall(r"releases' share: member medians ([\d.]+)-([\d.]+) %, "
                         r"pooled 90 % ([\d.]+)-([\d.]+) %, "
                         r"between-member part (\d+) %, prior's part (\d+) %", text)
    pooled = re.findall(r"^pooled\s+([-\d.]+)% \[([-\d.]+)%, ([-\d.]+)%\]", text, flags=re.M)
    slope = re.search(r"habitat_slope \{'estimate': ([-\d.e]+), "
                      r"'std_error': (?:np.float64\()?([-\d.e]+)", text)
    three = summary[0]
    return {"ensemble_members": 8,
            "releases_member_median_range_pct": [float(three[0]), float(three[1])],
            "releases_pooled_median_pct": float(pooled[2][0]),
            "releases_pooled_90_pct": [float(three[2]), float(three[3])],
            "releases_prior_part_pct": float(three[5]),
            "between_member_part_pct": float(three[4]),
            "habitat_slope": {"estimate": float(slope.group(1)), "se": float(slope.group(2)),
                              "prior_sd": HABITAT_SLOPE_PRIOR.parameters["sd"]}}


def read_run(fit_directory: Path) -> dict:
    """The quoted figures: the fit's attribution, 01's start profile, the ensemble text file."""
    fit = json.loads((fit_directory / "fit.json").read_text())
    rows = {r["quantity"]: r for r in fit["attribution"]}
    setup = fit.get("attribution_setup", {})
    record: dict = {"machine": machine_record(), "source": str(fit_directory / "fit.json"),
                    "fit_converged": fit.get("converged"), "attribution_setup": setup,
                    "survey_t": {"2002": _survey(2002), "2024": _survey(2024)}, "shares": {}}
    for name in SHARES:
        r = rows[name]
        record["shares"][name] = {k: r[k] for k in ("median", "lower_90", "upper_90")}
    record["release_survival_sd_ratio"] = fit["hatchery_contribution"]["release_survival_sd_ratio"]
    core = json.loads(CORE.read_text())
    profile = [{"initial_depletion": p["initial_depletion"], "delta_nll": p["delta_nll"], "ban": p["ban"][0],
                "releases": p["releases"][0]} for p in core["start"]["profile"] if "ban" in p]
    record["start_profile"] = {"source": "experiments/01_fit_baseline/assessment_core.json (start)",
                               "date": core["machine"]["date"], "points": profile}
    record["habitat_and_prior"] = _habitat(HABITAT.read_text())
    return record


def _pct(value: float, digits: int = 0) -> str:
    return f"{100 * value:.{digits}f}".replace("-", "−")


def _signed(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


DIGITS = {"share_ban": 0, "share_releases": 1, "share_rec_devs": 0, "hatchery_fraction_last": 1}


def _start_range(record: dict) -> tuple[list[dict], list[dict]]:
    points = record["start_profile"]["points"]
    return ([p for p in points if p["delta_nll"] < SUPPORTED_DELTA_NLL],
            [p for p in points if p["delta_nll"] >= SUPPORTED_DELTA_NLL])


def quoted(record: dict) -> list[str]:
    """The strings the README's "What the result shows" paragraph must contain, as rendered."""
    out = []
    for name, d in DIGITS.items():
        r = record["shares"][name]
        out += [f"{_pct(r['median'], d)} %", f"{_pct(r['lower_90'], d)} % to {_pct(r['upper_90'], d)} %"]
    out.append(f"posterior/prior SD {record['release_survival_sd_ratio']:.2f}")
    supported, rejected = _start_range(record)
    bans = [p["ban"] for p in supported]
    out.append(f"from {_pct(max(bans))} % to {_pct(min(bans))} %")
    out.append(f"to {_pct(min(p['ban'] for p in rejected))} % only")
    h = record["habitat_and_prior"]
    lo, hi = h["releases_member_median_range_pct"]
    plo, phi = h["releases_pooled_90_pct"]
    out += [f"{h['ensemble_members']}-member ensemble", f"{lo:.1f} % to {hi:.1f} % by member",
            f"pooled {h['releases_pooled_median_pct']:.1f} %, 90 % {plo:.1f} % to {phi:.1f} %",
            f"({h['releases_prior_part_pct']:.0f} %)",
            f"{_signed(h['habitat_slope']['estimate'])} ± {h['habitat_slope']['se']:.2f}",
            f"prior SD of {h['habitat_slope']['prior_sd']:g}"]
    return out


def markdown(record: dict) -> str:
    """The README block: every figure the 'What the result shows' paragraph quotes."""
    m = record["machine"]
    s = record["shares"]
    setup = record["attribution_setup"]
    out = [f"Read {m['date']}, carpmodel {m['carpmodel']}, numpy {m['numpy']}, python {m['python']}, "
           f"load {m['load_average'][0]:.1f} on {m['cpus']} cores, from the default fit's `fit.json` "
           f"({setup.get('n_draws', '?')} posterior draws, {setup.get('first_year', '?')}→"
           f"{setup.get('last_year', '?')}).", "",
           "| figure | median | 90 % interval | source |", "|---|---|---|---|"]
    for name, words in SHARES.items():
        r, d = s[name], DIGITS[name]
        label = f"share of the explained increase: {words}" if name.startswith("share") else words
        out.append(f"| {label} | {_pct(r['median'], d)} % | {_pct(r['lower_90'], d)} % to "
                   f"{_pct(r['upper_90'], d)} % | `fit.json` `attribution` |")
    out.append(f"| release survival, posterior SD / prior SD | {record['release_survival_sd_ratio']:.2f} | | "
               f"`fit.json` `hatchery_contribution` |")
    supported, rejected = _start_range(record)
    bans = [p["ban"] for p in supported]
    held = ", ".join(f"{p['initial_depletion']:g}" for p in supported)
    out.append(f"| the ban's share over the starts the data support (ΔNLL < {SUPPORTED_DELTA_NLL}: initial "
               f"depletion {held}) | "
               f"{_pct(max(bans))} % to {_pct(min(bans))} % | | 01's start profile |")
    for p in rejected:
        out.append(f"| the ban's share at initial depletion {p['initial_depletion']:g} (ΔNLL "
                   f"{p['delta_nll']:.2f}, rejected) | {_pct(p['ban'])} % | | 01's start profile |")
    h = record["habitat_and_prior"]
    lo, hi = h["releases_member_median_range_pct"]
    plo, phi = h["releases_pooled_90_pct"]
    out.append(f"| releases' share, {h['ensemble_members']}-member ensemble: member medians | {lo:.1f} % to "
               f"{hi:.1f} % | | `habitat_and_prior.txt` |")
    out.append(f"| releases' share, ensemble pooled | {h['releases_pooled_median_pct']:.1f} % | "
               f"{plo:.1f} % to {phi:.1f} % | `habitat_and_prior.txt` |")
    out.append(f"| prior's part of the releases' share spread | {h['releases_prior_part_pct']:.0f} % | | "
               f"`habitat_and_prior.txt` |")
    slope = h["habitat_slope"]
    out.append(f"| connectivity slope (estimate ± SE; prior SD) | {_signed(slope['estimate'])} ± "
               f"{slope['se']:.2f} (prior SD {slope['prior_sd']:g}) | | `habitat_and_prior.txt` |")
    return "\n".join(out) + "\n"


def main() -> int:
    return docs_script(
        description=__doc__.splitlines()[0], readme=HERE / "README.md", block="attribution_results",
        source=("fit", "a `carpmodel fit` (or `run`) output directory", "a fit directory"),
        read_run=lambda args: read_run(args.source), markdown=markdown)


if __name__ == "__main__":
    raise SystemExit(main())
