"""Recovery of acute release survival from simulated origin samples (issue #14's acceptance table).

    python experiments/05_monitoring_design/origin_recovery.py \
        --out results/05_monitoring_design/origin_recovery.json

Truth: release survival 0.05, 0.3, 0.8 × Lorenzen c 0, 1 (the rest: the bundled data's
parameters, recruitment deviations N(0, 0.3)). Data: the 12 surveys (lognormal at the fixed
survey SD) and 500 fish a year for 2020-24 from the survey net at its known selectivity, read
with detection 0.98 and no false positives. Refit from the priors' centres
(:func:`carpmodel.studies.origin_recovery.recovery_case`), c held at the truth, in two designs:

* ``unmarked; M known``: any hatchery fish counted (one row a year); B0, egg survival and
  release survival estimated;
* ``marked; M estimated``: every release year carries its own mark (one row per year and mark);
  M_ref estimated as well (it moves the sampled share as much as release survival does);
* ``unmarked; M known; weak prior``: the first, with release survival's prior Beta(mean 0.5,
  SD 0.25) instead of life_history's Beta(0.3, 0.15) (a truth of 0.8 is 3.3 SDs out in that).

Writes one JSON (cases, the date, versions) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import carpmodel
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.priors import Prior
from carpmodel.studies.origin_recovery import OriginDesign, recovery_case

SURVIVALS = (0.05, 0.3, 0.8)
EXPONENTS = (0.0, 1.0)
BASE = ("unfished_biomass_t", "max_egg_survival", "release_survival")
WEAK_PRIOR = Prior("beta", {"mean": 0.5, "sd": 0.25})
DESIGNS = {
    "unmarked; M known": (OriginDesign(), BASE, None),
    "marked; M estimated": (OriginDesign(marked=True), BASE + ("m_ref_per_yr",), None),
    "unmarked; M known; weak prior": (OriginDesign(), BASE, WEAK_PRIOR),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/05_monitoring_design/origin_recovery.json"))
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA_DIRECTORY)
    parser.add_argument("--seed", type=int, default=20261214)
    parser.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated design names")
    parser.add_argument("--replicates", type=int, default=1,
                        help="simulated data sets per case (seed + 1000·k; replicate 0 is the table)")
    args = parser.parse_args()
    data = load_data(args.data)
    cases = []
    start = time.perf_counter()
    for design_name in args.designs.split(","):
        design, estimate, prior = DESIGNS[design_name]
        for replicate in range(args.replicates):
            for survival in SURVIVALS:
                for c in EXPONENTS:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        case = recovery_case(data, survival, c, design=design, estimate=estimate,
                                             seed=args.seed + 1000 * replicate,
                                             release_survival_prior=prior)
                    cases.append({"design": design_name, "replicate": replicate, **case})
                    print(f"{design_name} #{replicate}: s_rel {survival}, c {c}: {case['estimate']:.3f} "
                          f"[{case['lower_90']:.3f}, {case['upper_90']:.3f}]", flush=True)
    runtime = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "carpmodel": carpmodel.__version__,
        "python": platform.python_version(), "seed": args.seed, "runtime_s": runtime,
        "fish_per_year": 500, "years": [2020, 2024], "cases": cases}, indent=2))
    print()
    print("| design | true s_rel | c | sampled hatchery share | hatchery fish read "
          "| estimate (90 % interval) | inside | posterior/prior SD | M_ref est. | converged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in (case for case in cases if case["replicate"] == 0):
        m = case.get("m_ref_per_yr_estimate")
        print(f"| {case['design']} | {case['release_survival']} | {case['lorenzen_c']:g} "
              f"| {100 * case['hatchery_share_sampled']:.2f} % | {case['hatchery_fish_read']} "
              f"| {case['estimate']:.3f} ({case['lower_90']:.3f}–{case['upper_90']:.3f}) "
              f"| {'yes' if case['inside_90'] else 'no'} | {case['posterior_prior_sd_ratio']:.2f} "
              f"| {'' if m is None else f'{m:.3f} (truth 0.2)'} | {'yes' if case['converged'] else 'no'} |")
    for name in dict.fromkeys(case["design"] for case in cases):
        group = [case for case in cases if case["design"] == name and case["replicate"] == 0]
        passed = sum(case["inside_90"] and case["posterior_prior_sd_ratio"] < 0.5 for case in group)
        print(f"\n{name}: {passed} of {len(group)} cases inside the 90 % interval "
              "with posterior/prior SD < 0.5")
    if args.replicates > 1:
        print(f"\nOver {args.replicates} simulated data sets per case:\n")
        print("| design | true s_rel | c | inside 90 % | median estimate | median posterior/prior SD |")
        print("|---|---|---|---|---|---|")
        for name in dict.fromkeys(case["design"] for case in cases):
            for survival in SURVIVALS:
                for c in EXPONENTS:
                    group = [case for case in cases if case["design"] == name
                             and case["release_survival"] == survival and case["lorenzen_c"] == c]
                    inside = sum(case["inside_90"] for case in group)
                    est = sorted(case["estimate"] for case in group)[len(group) // 2]
                    ratio = sorted(case["posterior_prior_sd_ratio"] for case in group)[len(group) // 2]
                    print(f"| {name} | {survival} | {c:g} | {inside}/{len(group)} | {est:.3f} "
                          f"| {ratio:.2f} |")
    print(f"\nruntime {runtime:.0f} s; written to {args.out}")


if __name__ == "__main__":
    main()
